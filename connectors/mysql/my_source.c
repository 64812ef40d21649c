#include "connectors/mysql/my_source.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "pos.h"
#include "statefile.h"
#include "connectors/mysql/my_binlog.h"
#include "connectors/mysql/my_binwatch.h"
#include "connectors/mysql/my_drift.h"
#include "connectors/mysql/my_rows.h"
#include "connectors/mysql/my_setup.h"
#include "connectors/mysql/my_snapshot.h"

#define SNAP_POLL_MS 20
#define COPY_CHUNK (64 * 1024)

/* OPEN -> PREPARED -> SNAPSHOT -> SNAPSHOT_DONE -> STREAMING <->
 * RECONNECTING; FAILED after a fatal stream error. */
enum state {
	ST_OPEN = 0,
	ST_PREPARED,
	ST_SNAPSHOT,
	ST_SNAPSHOT_DONE,
	ST_STREAMING,
	ST_RECONNECTING,
	ST_FAILED,
};

/* A committed transaction waiting for its ack: the GTID set after it. */
struct pend_ack {
	uint64_t seq;
	char text[LS_POS_TEXT_MAX];
};

/* Binlog table id -> index of the captured table, TM_IGNORED: not
 * captured, TM_MARKER: the drift marker table (open addressing; the slot
 * with used == false is empty). */
#define TM_IGNORED (-1)
#define TM_MARKER (-3)
struct tment {
	bool used;
	uint64_t table_id;
	int idx;
};

/* Streamed text arrives in the column's charset (the snapshot reads
 * utf8mb4): columns in another charset are converted to UTF-8.  cs codes
 * per column: CS_NONE, CS_LATIN1 (MySQL's latin1 is cp1252), or CS_ICONV +
 * index into the source's iconv handles. */
enum { CS_NONE = 0, CS_LATIN1 = 1, CS_ICONV = 2 };
#define MAX_ICONV 16

struct csconv {
	char name[32];             /* MySQL charset name */
	iconv_t cd;                /* to UTF-8 */
};

/* One snapshot worker's pending COPY text. */
struct wbuf {
	char *data;
	size_t len, cap;
	bool oom;
};

struct ls_source {
	uv_loop_t *loop;
	struct ls_myconn conn;         /* password: secret */
	char *include, *exclude, *name, *state_dir, *state_path;
	bool snapshot_never;
	int workers;
	uint32_t server_id;
	/* Transactions written with these session server ids are lockstep's
	 * own apply (skip_origins, one id per origin name): not captured. */
	char *skip_origins;
	uint32_t skip_ids[16];
	int nskip_ids;
	char *start_from;              /* [source] start_gtid, NULL = server's now */
	int hb_ms, base_ms, cap_ms;
	enum state state;

	/* prepare */
	bool prepared;
	struct ls_myserver server;
	struct ls_mytables tables;
	bool **json;                   /* per table, per column: MariaDB JSON */
	struct ls_relation **rels;     /* prepared; what the pipeline sees */
	double *est_rows;
	char start_gtid[LS_POS_TEXT_MAX];

	/* snapshot */
	bool snap_started;
	struct ls_source_snapshot_sink sink;
	char **skip;
	int nskip;
	pthread_mutex_t mu;            /* guards snap and prog */
	struct ls_mysnap *snap;
	struct ls_mysnap_progress *prog;
	struct wbuf *wb;               /* one per worker */
	uv_timer_t timer;

	/* stream: the catalog as the stream knows it */
	struct ls_mytables *live;      /* per table: refreshed after DDL (owned), or n == 0 */
	struct ls_relation **cur;      /* per table: relation handed with changes */
	bool *stale;                   /* re-send catalog info at the next map */
	uint8_t **cs;                  /* per table, per column: CS_* */
	struct csconv iconvs[MAX_ICONV];
	int niconv;
	MYSQL *cat;                    /* ordinary conn for catalog refreshes */

	struct ls_source_cb cb;
	struct ls_mybinlog *bl;
	struct ls_mybw *bw;            /* lag: what the server keeps for us */
	struct ls_myr *dec;
	struct ls_arena arena;
	struct tment *tm;
	size_t tm_cap, tm_n;
	struct ls_gtid_set done;       /* after the last complete group */
	char done_text[LS_POS_TEXT_MAX];
	struct ls_binlog_pos last_pos;
	bool paused;

	/* the group being read */
	bool in_grp, begun;
	uint8_t grp_flags;
	struct ls_gtid_set after;
	struct ls_txn txn;
	bool skip_grp;                 /* the open group is lockstep's own apply */
	uint64_t skipped_txns;

	/* acknowledgements and the state file */
	struct pend_ack *acks;
	size_t ack_head, ack_n, ack_cap;
	uint64_t acked_seq, idle_seq, persisted_seq;
	char acked_text[LS_POS_TEXT_MAX], idle_text[LS_POS_TEXT_MAX];
	char persisted_text[LS_POS_TEXT_MAX];
	uv_timer_t persist_timer;
	uv_work_t persist_work;
	bool persist_busy, persist_warned;
	char w_text[LS_POS_TEXT_MAX];
	uint64_t w_seq;
	int w_rc;
	struct ls_err w_err;

	/* close */
	bool closing, bl_closed;
	int handles;
	void (*close_cb)(void *arg);
	void *close_arg;
};

/* ---- small helpers ------------------------------------------------------------------ */

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t pos_seq(const struct ls_binlog_pos *p)
{
	uint64_t seq = 0;
	if (ls_binlog_pos_seq(p, &seq, NULL) < 0)
		return 0;
	return seq;
}

/* ---- the state file ---------------------------------------------------------------- */

/* Writes "gtid=...\nseq=...\n" to path durably: temporary file, fsync,
 * rename, fsync of the directory.  Runs on any thread. */
static int state_write(const char *dir, const char *path, const char *gtid, uint64_t seq,
		       struct ls_err *err)
{
	char text[LS_POS_TEXT_MAX + 64];
	int n = snprintf(text, sizeof text, "gtid=%s\nseq=%llu\n", gtid,
			 (unsigned long long)seq);
	return ls_statefile_write(dir, path, text, (size_t)n, err);
}

/* Reads the state file: 1 when present (gtid and seq set), 0 when absent,
 * -1 with err when unreadable or malformed. */
static int state_read(const char *path, char *gtid, size_t size, uint64_t *seq,
		      struct ls_err *err)
{
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		if (errno == ENOENT)
			return 0;
		return ls_err_set(err, false, "cannot read %s: %s", path, strerror(errno));
	}
	char line[LS_POS_TEXT_MAX + 64];
	bool have_gtid = false;
	*seq = 0;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "gtid=", 5) == 0) {
			size_t n = strlen(line + 5);
			if (n >= size)
				break;
			memcpy(gtid, line + 5, n + 1);
			have_gtid = true;
		} else if (strncmp(line, "seq=", 4) == 0) {
			*seq = strtoull(line + 4, NULL, 10);
		}
	}
	fclose(f);
	struct ls_gtid_set set;
	if (!have_gtid || ls_gtid_set_parse(gtid, &set, err) < 0)
		return ls_err_set(err, false, "%s is malformed (remove it to snapshot again)",
				  path);
	return 1;
}

static void mkdirs(const char *dir)
{
	char p[4096];
	snprintf(p, sizeof p, "%s", dir);
	for (char *s = p + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			(void)mkdir(p, 0750);
			*s = '/';
		}
	(void)mkdir(p, 0750);
}

/* ---- open -------------------------------------------------------------------------- */

static void free_source(struct ls_source *s);

/* The drift marker table is lockstep's own: never captured as a table (its
 * inserts become MESSAGE changes, see marker_rows). */
static char *marker_excluded(const char *exclude)
{
	const char *m = LS_MYDRIFT_MARKER_DB "." LS_MYDRIFT_MARKER_TABLE;
	if (exclude == NULL || exclude[0] == '\0')
		return strdup(m);
	size_t n = strlen(exclude) + strlen(m) + 2;
	char *x = malloc(n);
	if (x != NULL)
		snprintf(x, n, "%s,%s", exclude, m);
	return x;
}

/* skip_origins (default lockstep_<name>_rev, a cutover's reverse apply)
 * as the server ids my_target tags lockstep's writes with. */
static int skip_ids_init(struct ls_source *s, const struct ls_config_source *c,
			 struct ls_err *err)
{
	char def[96];
	snprintf(def, sizeof def, "lockstep_%s_rev", s->name);
	s->skip_origins = strdup(c->skip_origins ? c->skip_origins : def);
	s->start_from = c->start_gtid ? strdup(c->start_gtid) : NULL;
	if (s->skip_origins == NULL || (c->start_gtid && s->start_from == NULL))
		return ls_err_set(err, false, "mysql source: out of memory");
	for (const char *p = s->skip_origins; *p != '\0';) {
		p += strspn(p, " ,");
		size_t len = strcspn(p, ","), l = len;
		while (l > 0 && p[l - 1] == ' ')
			l--;
		char name[128];
		if (l >= sizeof name || s->nskip_ids == 16)
			return ls_err_set(err, false, "mysql source: skip_origins: at most 16 "
					  "names of at most 127 characters");
		if (l > 0) {
			memcpy(name, p, l);
			name[l] = '\0';
			s->skip_ids[s->nskip_ids++] = ls_mybinlog_origin_id(name);
		}
		p += len;
	}
	return 0;
}

static bool skipped_id(const struct ls_source *s, uint32_t server_id)
{
	for (int i = 0; i < s->nskip_ids; i++)
		if (s->skip_ids[i] == server_id)
			return true;
	return false;
}

static int my_open(uv_loop_t *loop, const struct ls_config *cfg, struct ls_source **out,
		   struct ls_err *err)
{
	const struct ls_config_source *c = &cfg->source;
	*out = NULL;
	if (!c->present || c->type != LS_ENGINE_MYSQL || c->conninfo == NULL)
		return ls_err_set(err, false, "mysql source: the config needs a [source] "
				  "with type = mysql and a conninfo");
	struct ls_source *s = calloc(1, sizeof *s);
	if (s == NULL)
		return ls_err_set(err, false, "mysql source: out of memory");
	pthread_mutex_init(&s->mu, NULL);
	ls_arena_init(&s->arena);
	s->loop = loop;
	if (ls_mysetup_conn_parse(c->conninfo, &s->conn, err) < 0) {
		free_source(s);
		return ls_err_prefix(err, "mysql source: conninfo");
	}
	const char *dir = cfg->state_dir ? cfg->state_dir : ".";
	size_t pl = strlen(dir) + sizeof LS_MY_SOURCE_STATE_FILE + 2;
	s->state_path = malloc(pl);
	s->state_dir = strdup(dir);
	s->include = strdup(c->tables ? c->tables : "*.*");
	s->exclude = marker_excluded(c->exclude);
	s->name = strdup(cfg->name ? cfg->name : "lockstep");
	if (!s->state_path || !s->state_dir || !s->include || !s->name || !s->exclude) {
		free_source(s);
		return ls_err_set(err, false, "mysql source: out of memory");
	}
	snprintf(s->state_path, pl, "%s/%s", dir, LS_MY_SOURCE_STATE_FILE);
	s->snapshot_never = c->snapshot == LS_SNAPSHOT_NEVER;
	s->workers = c->snapshot_workers > 0 ? c->snapshot_workers : 1;
	s->server_id = c->server_id;
	if (skip_ids_init(s, c, err) < 0) {
		free_source(s);
		return -1;
	}
	uv_timer_init(loop, &s->timer);
	uv_timer_init(loop, &s->persist_timer);
	s->timer.data = s->persist_timer.data = s;
	s->persist_work.data = s;
	s->handles = 2;
	*out = s;
	return 0;
}

void ls_my_source_set_intervals(struct ls_source *s, int heartbeat_ms, int reconnect_base_ms,
				int reconnect_cap_ms)
{
	s->hb_ms = heartbeat_ms;
	s->base_ms = reconnect_base_ms;
	s->cap_ms = reconnect_cap_ms;
}

/* ---- catalog ------------------------------------------------------------------------- */

/* MariaDB's JSON is LONGTEXT with a column CHECK json_valid(`col`): finds
 * those columns of t (none when the server has no such catalog). */
static void find_json(MYSQL *m, const struct ls_mytable *t, bool *json)
{
	char sch[200], tab[200], sql[700];
	if (strlen(t->schema) > 64 || strlen(t->name) > 64)
		return;
	mysql_real_escape_string(m, sch, t->schema, (unsigned long)strlen(t->schema));
	mysql_real_escape_string(m, tab, t->name, (unsigned long)strlen(t->name));
	snprintf(sql, sizeof sql, "SELECT CONSTRAINT_NAME FROM information_schema.CHECK_CONSTRAINTS"
		 " WHERE CONSTRAINT_SCHEMA = '%s' AND TABLE_NAME = '%s' AND LEVEL = 'Column'"
		 " AND CHECK_CLAUSE = CONCAT('json_valid(`', CONSTRAINT_NAME, '`)')", sch, tab);
	if (mysql_query(m, sql) != 0)
		return;
	MYSQL_RES *r = mysql_store_result(m);
	MYSQL_ROW row;
	while (r && (row = mysql_fetch_row(r)) != NULL)
		for (int i = 0; row[0] && i < t->ncols; i++)
			if (strcmp(t->cols[i].name, row[0]) == 0 &&
			    strcasecmp(t->cols[i].data_type, "longtext") == 0)
				json[i] = true;
	mysql_free_result(r);
}

/* The relation of t with id; JSON columns named "json". */
static struct ls_relation *build_rel(const struct ls_mytable *t, uint32_t id, const bool *json)
{
	struct ls_relation *r = ls_mysetup_table_relation(t, id);
	for (int i = 0; r != NULL && json != NULL && i < t->ncols; i++) {
		if (!json[i])
			continue;
		char *n = strdup("json");
		if (n == NULL) {
			ls_relation_free(r);
			return NULL;
		}
		free(r->cols[i].type_name);
		r->cols[i].type_name = n;
	}
	return r;
}

struct ls_relation *ls_my_source_relation(MYSQL *m, const struct ls_mytable *t, uint32_t id)
{
	bool *json = calloc((size_t)t->ncols + 1, sizeof *json);
	if (json == NULL)
		return NULL;
	find_json(m, t, json);
	struct ls_relation *r = build_rel(t, id, json);
	free(json);
	return r;
}

static int table_charsets(struct ls_source *s, int i, struct ls_err *err);

static const struct ls_mytable *live_table(const struct ls_source *s, int i)
{
	return s->live[i].n > 0 ? &s->live[i].t[0] : &s->tables.t[i];
}

/* Reads table i's catalog entry again (after DDL).  Blocks the loop: DDL on
 * a captured table is rare.  A table that vanished (DROP, RENAME) keeps its
 * last description: it has no more changes under this name. */
static int refresh_table(struct ls_source *s, int i, struct ls_err *err)
{
	const struct ls_mytable *old = live_table(s, i);
	if (s->cat != NULL && mysql_ping(s->cat) != 0) {
		mysql_close(s->cat);
		s->cat = NULL;
	}
	if (s->cat == NULL && (s->cat = ls_mysetup_connect(&s->conn, 10, err)) == NULL)
		return ls_err_prefix(err, "catalog refresh of %s.%s", old->schema, old->name);
	char pat[300];
	snprintf(pat, sizeof pat, "%s.%s", old->schema, old->name);
	struct ls_mytables nt = { 0 };
	struct ls_err e2 = { 0 };
	if (ls_mysetup_select_tables(s->cat, pat, NULL, &nt, &e2) < 0 || nt.n != 1) {
		ls_warn("mysql source: table %s is gone or no longer capturable after DDL (%s); "
			"its later changes are not captured", pat, e2.msg);
		ls_mysetup_tables_free(&nt);
		return 0;
	}
	struct ls_relation *r = ls_my_source_relation(s->cat, &nt.t[0], (uint32_t)i + 1);
	if (r == NULL) {
		ls_mysetup_tables_free(&nt);
		return ls_err_set(err, false, "catalog refresh of %s: out of memory", pat);
	}
	ls_mysetup_tables_free(&s->live[i]);
	s->live[i] = nt;
	ls_relation_free(s->cur[i]);
	s->cur[i] = r;
	s->stale[i] = true;
	if (table_charsets(s, i, err) < 0)
		return -1;
	ls_info("mysql source: table %s changed by DDL; %u column(s) now", pat, r->ncols);
	return 0;
}

/* ---- charsets ------------------------------------------------------------------------ */

static const struct {
	const char *my, *iconv;
} charset_names[] = {
	{ "latin2", "ISO-8859-2" }, { "latin5", "ISO-8859-9" }, { "latin7", "ISO-8859-13" },
	{ "greek", "ISO-8859-7" }, { "hebrew", "ISO-8859-8" }, { "koi8r", "KOI8-R" },
	{ "koi8u", "KOI8-U" }, { "ujis", "EUC-JP" }, { "eucjpms", "EUC-JP-MS" },
	{ "sjis", "SHIFT_JIS" }, { "ucs2", "UCS-2BE" }, { "utf16", "UTF-16BE" },
	{ "utf16le", "UTF-16LE" }, { "utf32", "UTF-32BE" }, { "tis620", "TIS-620" },
};

/* The CS_* code for a MySQL charset; -1 with err when none converts it. */
static int charset_code(struct ls_source *s, const char *cs, struct ls_err *err)
{
	if (strncmp(cs, "utf8", 4) == 0 || strcmp(cs, "ascii") == 0 || strcmp(cs, "binary") == 0)
		return CS_NONE;
	if (strcmp(cs, "latin1") == 0)
		return CS_LATIN1;
	for (int i = 0; i < s->niconv; i++)
		if (strcmp(s->iconvs[i].name, cs) == 0)
			return CS_ICONV + i;
	if (s->niconv == MAX_ICONV)
		return ls_err_set(err, false, "too many character sets");
	const char *name = cs;
	char up[40];
	for (size_t i = 0; i < sizeof charset_names / sizeof charset_names[0]; i++)
		if (strcmp(charset_names[i].my, cs) == 0)
			name = charset_names[i].iconv;
	snprintf(up, sizeof up, "%s", name);
	for (char *p = up; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	iconv_t cd = iconv_open("UTF-8", up);
	if (cd == (iconv_t)-1)
		return ls_err_set(err, false, "character set %s cannot be converted to UTF-8", cs);
	snprintf(s->iconvs[s->niconv].name, sizeof s->iconvs[0].name, "%s", cs);
	s->iconvs[s->niconv].cd = cd;
	return CS_ICONV + s->niconv++;
}

/* Which text columns of table i need converting to UTF-8. */
static int table_charsets(struct ls_source *s, int i, struct ls_err *err)
{
	const struct ls_mytable *t = live_table(s, i);
	uint8_t *cs = calloc((size_t)t->ncols + 1, 1);
	if (cs == NULL)
		return ls_err_set(err, false, "out of memory");
	for (int k = 0; k < t->ncols; k++) {
		const struct ls_mycolumn *c = &t->cols[k];
		if (c->binary || c->charset == NULL || c->nmembers > 0)
			continue;
		int code = charset_code(s, c->charset, err);
		if (code < 0) {
			free(cs);
			return ls_err_prefix(err, "column %s.%s.%s", t->schema, t->name, c->name);
		}
		cs[k] = (uint8_t)code;
	}
	free(s->cs[i]);
	s->cs[i] = cs;
	return 0;
}

/* MySQL's latin1 is Windows-1252; its five undefined bytes map to the C1
 * controls, as MySQL does. */
static const uint16_t cp1252_80[32] = {
	0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030,
	0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C,
	0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D,
	0x017E, 0x0178,
};

static char *latin1_to_utf8(struct ls_arena *a, const char *in, uint32_t n, uint32_t *outn)
{
	char *o = ls_arena_alloc(a, (size_t)n * 3 + 1);
	if (o == NULL)
		return NULL;
	uint32_t k = 0;
	for (uint32_t i = 0; i < n; i++) {
		unsigned c = (unsigned char)in[i];
		unsigned u = c >= 0x80 && c < 0xA0 ? cp1252_80[c - 0x80] : c;
		if (u < 0x80) {
			o[k++] = (char)u;
		} else if (u < 0x800) {
			o[k++] = (char)(0xC0 | u >> 6);
			o[k++] = (char)(0x80 | (u & 0x3F));
		} else {
			o[k++] = (char)(0xE0 | u >> 12);
			o[k++] = (char)(0x80 | ((u >> 6) & 0x3F));
			o[k++] = (char)(0x80 | (u & 0x3F));
		}
	}
	o[k] = '\0';
	*outn = k;
	return o;
}

static char *iconv_to_utf8(struct ls_arena *a, iconv_t cd, const char *in, uint32_t n,
			   uint32_t *outn)
{
	size_t cap = (size_t)n * 4 + 4;
	char *o = ls_arena_alloc(a, cap + 1);
	if (o == NULL)
		return NULL;
	char *ip = (char *)in, *op = o;
	size_t il = n, ol = cap;
	iconv(cd, NULL, NULL, NULL, NULL);
	if (iconv(cd, &ip, &il, &op, &ol) == (size_t)-1)
		return NULL;
	*op = '\0';
	*outn = (uint32_t)(op - o);
	return o;
}

/* Converts the text values of a decoded tuple of table i to UTF-8. */
static int tuple_to_utf8(struct ls_source *s, int i, struct ls_tuple *tup, struct ls_err *err)
{
	const struct ls_mytable *t = live_table(s, i);
	for (uint16_t k = 0; k < tup->ncols && k < t->ncols; k++) {
		struct ls_value *v = &tup->vals[k];
		uint8_t cs = s->cs[i][k];
		if (cs == CS_NONE || v->kind != LS_VAL_TEXT)
			continue;
		uint32_t n = 0;
		char *o = cs == CS_LATIN1 ? latin1_to_utf8(&s->arena, v->data, v->len, &n)
			  : iconv_to_utf8(&s->arena, s->iconvs[cs - CS_ICONV].cd, v->data, v->len, &n);
		if (o == NULL)
			return ls_err_set(err, false, "table %s.%s column %s: value not valid in "
					  "character set %s", t->schema, t->name, t->cols[k].name,
					  t->cols[k].charset);
		v->data = o;
		v->len = n;
	}
	return 0;
}

/* ---- prepare ------------------------------------------------------------------------- */

static int alloc_tables(struct ls_source *s, struct ls_err *err)
{
	size_t n = (size_t)s->tables.n + 1;
	s->json = calloc(n, sizeof *s->json);
	s->rels = calloc(n, sizeof *s->rels);
	s->cur = calloc(n, sizeof *s->cur);
	s->stale = calloc(n, sizeof *s->stale);
	s->live = calloc(n, sizeof *s->live);
	s->cs = calloc(n, sizeof *s->cs);
	s->est_rows = calloc(n, sizeof *s->est_rows);
	s->prog = calloc(n, sizeof *s->prog);
	if (!s->json || !s->rels || !s->cur || !s->stale || !s->live || !s->cs || !s->est_rows || !s->prog)
		return ls_err_set(err, false, "mysql source: out of memory");
	return 0;
}

static int build_relations(struct ls_source *s, MYSQL *m, struct ls_err *err)
{
	if (alloc_tables(s, err) < 0)
		return -1;
	for (int i = 0; i < s->tables.n; i++) {
		const struct ls_mytable *t = &s->tables.t[i];
		s->json[i] = calloc((size_t)t->ncols + 1, sizeof **s->json);
		if (s->json[i] == NULL)
			return ls_err_set(err, false, "mysql source: out of memory");
		find_json(m, t, s->json[i]);
		s->rels[i] = build_rel(t, (uint32_t)i + 1, s->json[i]);
		s->cur[i] = build_rel(t, (uint32_t)i + 1, s->json[i]);
		if (s->rels[i] == NULL || s->cur[i] == NULL)
			return ls_err_set(err, false, "mysql source: out of memory");
		s->est_rows[i] = t->est_rows;
		s->prog[i].est_rows = (uint64_t)(t->est_rows > 0 ? t->est_rows : 0);
	}
	return 0;
}

/* The stream's start: the saved resume point, or (first start) the
 * server's current GTID position, saved at once. */
static int decide_start(struct ls_source *s, MYSQL *m, struct ls_err *err)
{
	uint64_t seq = 0;
	int rc = state_read(s->state_path, s->start_gtid, sizeof s->start_gtid, &seq, err);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		struct ls_gtid_set set;
		if (ls_gtid_set_parse(s->start_gtid, &set, err) < 0 ||
		    ls_mysetup_check_resume(m, &set, err) < 0)
			return ls_err_prefix(err, "resuming from %s", s->state_path);
		ls_info("mysql source: resuming after GTID %s (%s)", s->start_gtid,
			s->state_path);
	} else if (s->start_from != NULL) {
		struct ls_gtid_set set;
		snprintf(s->start_gtid, sizeof s->start_gtid, "%s", s->start_from);
		if (ls_gtid_set_parse(s->start_gtid, &set, err) < 0 ||
		    ls_mysetup_check_resume(m, &set, err) < 0)
			return ls_err_prefix(err, "start_gtid %s", s->start_gtid);
		mkdirs(s->state_dir);
		if (state_write(s->state_dir, s->state_path, s->start_gtid, 0, err) < 0)
			return -1;
		ls_info("mysql source: first start; streaming after start_gtid %s",
			s->start_gtid);
	} else {
		snprintf(s->start_gtid, sizeof s->start_gtid, "%s", s->server.gtid_pos);
		mkdirs(s->state_dir);
		if (state_write(s->state_dir, s->state_path, s->start_gtid, 0, err) < 0)
			return -1;
		ls_info("mysql source: first start; streaming from GTID %s", s->start_gtid);
	}
	snprintf(s->acked_text, sizeof s->acked_text, "%s", s->start_gtid);
	snprintf(s->persisted_text, sizeof s->persisted_text, "%s", s->start_gtid);
	s->acked_seq = s->persisted_seq = seq;
	return 0;
}

static int my_prepare(struct ls_source *s, struct ls_source_tables *tables, struct ls_err *err)
{
	if (s->prepared || s->closing)
		return ls_err_set(err, false, "mysql source: already prepared");
	MYSQL *m = ls_mysetup_connect(&s->conn, 30, err);
	if (m == NULL)
		return ls_err_prefix(err, "mysql source");
	int rc = ls_mysetup_check_ready(m, &s->server, err);
	if (rc == 0)
		rc = ls_mysetup_select_tables(m, s->include, s->exclude, &s->tables, err);
	if (rc == 0)
		rc = build_relations(s, m, err);
	if (rc == 0)
		rc = decide_start(s, m, err);
	if (rc == 0 && (s->dec = ls_myr_new(0)) == NULL)
		rc = ls_err_set(err, false, "out of memory");
	mysql_close(m);
	if (rc < 0)
		return ls_err_prefix(err, "mysql source");
	ls_info("mysql source: %s %s, server_id %u, %d table(s)", s->server.mariadb ?
		"MariaDB" : "MySQL", s->server.version, s->server.server_id, s->tables.n);
	s->prepared = true;
	s->state = ST_PREPARED;
	tables->n = s->tables.n;
	tables->rels = (const struct ls_relation *const *)s->rels;
	tables->est_rows = s->est_rows;
	return 0;
}

/* ---- snapshot ------------------------------------------------------------------------- */

static int tindex(const struct ls_source *s, const struct ls_mytable *t)
{
	return (int)(t - s->tables.t);
}

static void wb_put(struct wbuf *b, const char *p, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t c = b->cap ? b->cap : COPY_CHUNK * 2;
		while (c < b->len + n)
			c *= 2;
		char *d = realloc(b->data, c);
		if (d == NULL) {
			b->oom = true;
			return;
		}
		b->data = d;
		b->cap = c;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

/* COPY text escaping: backslash, tab, newline, carriage return. */
static void wb_text(struct wbuf *b, const char *p, size_t n)
{
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		const char *e = p[i] == '\\' ? "\\\\" : p[i] == '\t' ? "\\t" :
				p[i] == '\n' ? "\\n" : p[i] == '\r' ? "\\r" : NULL;
		if (e == NULL)
			continue;
		wb_put(b, p + run, i - run);
		wb_put(b, e, 2);
		run = i + 1;
	}
	wb_put(b, p + run, n - run);
}

static void wb_value(struct wbuf *b, const struct ls_mycolumn *c, const struct ls_value *v)
{
	static const char hex[] = "0123456789abcdef";
	if (v->kind == LS_VAL_NULL) {
		wb_put(b, "\\N", 2);
	} else if (v->kind == LS_VAL_BINARY && c->type_code == 16 /* MYSQL_TYPE_BIT */) {
		/* the number, as the binlog decoder streams it */
		uint64_t n = 0;
		for (uint32_t i = 0; i < v->len; i++)
			n = n << 8 | (uint8_t)v->data[i];
		char t[24];
		wb_put(b, t, (size_t)snprintf(t, sizeof t, "%llu", (unsigned long long)n));
	} else if (v->kind == LS_VAL_BINARY) {
		/* bytea hex input, its backslash escaped for COPY */
		wb_put(b, "\\\\x", 3);
		char t[128];
		size_t k = 0;
		for (uint32_t i = 0; i < v->len; i++) {
			t[k++] = hex[(uint8_t)v->data[i] >> 4];
			t[k++] = hex[(uint8_t)v->data[i] & 15];
			if (k == sizeof t) {
				wb_put(b, t, k);
				k = 0;
			}
		}
		wb_put(b, t, k);
	} else {
		wb_text(b, v->data, v->len);
	}
}

static int flush_wb(struct ls_source *s, int worker, int i)
{
	struct wbuf *b = &s->wb[worker];
	if (b->oom)
		return -1;
	int rc = b->len ? s->sink.on_copy_data(s->sink.ctx, worker, s->rels[i], b->data, b->len)
			: 0;
	b->len = 0;
	return rc;
}

static int snk_start(void *ctx, int worker, const struct ls_mytable *t,
		     const struct ls_mysnap_pos *pos)
{
	struct ls_source *s = ctx;
	s->wb[worker].len = 0;
	ls_info("snapshot: %s.%s at %s:%llu (GTID %s)", t->schema, t->name, pos->file_pos.file,
		(unsigned long long)pos->file_pos.offset, pos->gtid);
	if (s->sink.on_table_start == NULL)
		return 0;
	return s->sink.on_table_start(s->sink.ctx, worker, s->rels[tindex(s, t)], pos->seq);
}

static int snk_row(void *ctx, int worker, const struct ls_mytable *t,
		   const struct ls_value *vals)
{
	struct ls_source *s = ctx;
	struct wbuf *b = &s->wb[worker];
	for (int i = 0; i < t->ncols; i++) {
		if (i)
			wb_put(b, "\t", 1);
		wb_value(b, &t->cols[i], &vals[i]);
	}
	wb_put(b, "\n", 1);
	return b->len >= COPY_CHUNK ? flush_wb(s, worker, tindex(s, t)) : b->oom ? -1 : 0;
}

static int snk_done(void *ctx, int worker, const struct ls_mytable *t, uint64_t rows,
		    const struct ls_mysnap_pos *pos)
{
	struct ls_source *s = ctx;
	int i = tindex(s, t);
	if (flush_wb(s, worker, i) < 0)
		return -1;
	return s->sink.on_table_done(s->sink.ctx, worker, s->rels[i], rows, pos->seq);
}

static void snapshot_end(struct ls_source *s)
{
	struct ls_err err = { 0 };
	int rc = 0;
	uv_timer_stop(&s->timer);
	if (s->snap != NULL) {
		rc = ls_mysnap_wait(s->snap, &err);
		pthread_mutex_lock(&s->mu);
		for (int i = 0; i < s->tables.n; i++)
			ls_mysnap_progress(s->snap, i, &s->prog[i]);
		ls_mysnap_free(s->snap);
		s->snap = NULL;
		pthread_mutex_unlock(&s->mu);
	}
	if (s->closing)
		return;
	s->state = ST_SNAPSHOT_DONE;
	if (rc < 0)
		ls_err_prefix(&err, "mysql source: snapshot");
	if (s->sink.on_finished != NULL)
		s->sink.on_finished(s->sink.ctx, rc < 0 ? &err : NULL);
}

static void on_snap_timer(uv_timer_t *t)
{
	struct ls_source *s = t->data;
	if (s->snap != NULL && !ls_mysnap_finished(s->snap))
		return;
	snapshot_end(s);
}

static int plan(struct ls_source *s, struct ls_err *err)
{
	s->skip = calloc((size_t)s->tables.n + 1, sizeof *s->skip);
	if (s->skip == NULL)
		return ls_err_set(err, false, "mysql source: out of memory");
	for (int i = 0; i < s->tables.n; i++) {
		const struct ls_mytable *t = &s->tables.t[i];
		bool copied = s->snapshot_never || (s->sink.plan_copied != NULL &&
			s->sink.plan_copied(s->sink.ctx, s->rels[i]));
		if (!copied)
			continue;
		size_t len = strlen(t->schema) + strlen(t->name) + 2;
		char *name = malloc(len);
		if (name == NULL)
			return ls_err_set(err, false, "mysql source: out of memory");
		snprintf(name, len, "%s.%s", t->schema, t->name);
		s->skip[s->nskip++] = name;
		s->prog[i].state = LS_MYSNAP_SKIPPED;
	}
	return 0;
}

static int my_snapshot(struct ls_source *s, const struct ls_source_snapshot_sink *sink,
		       struct ls_err *err)
{
	if (!s->prepared || s->snap_started || s->closing)
		return ls_err_set(err, false, "mysql source: snapshot needs a prepared source "
				  "and runs once");
	if (sink->on_copy_data == NULL || sink->on_table_done == NULL)
		return ls_err_set(err, false, "mysql source: snapshot sink needs on_copy_data "
				  "and on_table_done");
	s->sink = *sink;
	if (plan(s, err) < 0)
		return -1;
	s->snap_started = true;
	s->state = ST_SNAPSHOT;
	if (s->nskip == s->tables.n) {
		uv_timer_start(&s->timer, on_snap_timer, 0, 0);
		return 0;
	}
	s->wb = calloc((size_t)s->workers, sizeof *s->wb);
	if (s->wb == NULL)
		return ls_err_set(err, false, "mysql source: out of memory");
	struct ls_mysnap_opts o = {
		.conn = &s->conn, .workers = s->workers,
		.skip = (const char *const *)s->skip, .nskip = s->nskip,
	};
	static const struct ls_mysnap_sink msink = {
		.on_table_start = snk_start, .on_row = snk_row, .on_table_done = snk_done,
	};
	struct ls_mysnap_sink ms = msink;
	ms.ctx = s;
	ls_info("snapshot: copying %d table(s) with %d worker(s)", s->tables.n - s->nskip,
		s->workers);
	pthread_mutex_lock(&s->mu);
	s->snap = ls_mysnap_start(&o, &s->tables, &ms, err);
	pthread_mutex_unlock(&s->mu);
	if (s->snap == NULL)
		return ls_err_prefix(err, "mysql source: snapshot");
	uv_timer_start(&s->timer, on_snap_timer, SNAP_POLL_MS, SNAP_POLL_MS);
	return 0;
}

static const char *const snap_states[] = {
	[LS_MYSNAP_PENDING] = "pending", [LS_MYSNAP_COPYING] = "copying",
	[LS_MYSNAP_DONE] = "done", [LS_MYSNAP_SKIPPED] = "skipped",
	[LS_MYSNAP_FAILED] = "failed",
};

static int my_snapshot_progress(struct ls_source *s, int i, struct ls_source_progress *out)
{
	if (!s->prepared || i < 0 || i >= s->tables.n)
		return -1;
	struct ls_mysnap_progress p;
	pthread_mutex_lock(&s->mu);
	if (s->snap != NULL && s->prog[i].state != LS_MYSNAP_SKIPPED)
		ls_mysnap_progress(s->snap, i, &p);
	else
		p = s->prog[i];
	pthread_mutex_unlock(&s->mu);
	out->schema = s->tables.t[i].schema;
	out->name = s->tables.t[i].name;
	out->state = (unsigned)p.state < sizeof snap_states / sizeof snap_states[0] ?
		     snap_states[p.state] : "unknown";
	out->rows = p.rows;
	out->est_rows = p.est_rows ? p.est_rows : s->prog[i].est_rows;
	return 0;
}

/* ---- stream: table ids ------------------------------------------------------------------- */

static size_t tm_slot(const struct ls_source *s, uint64_t id)
{
	size_t i = (size_t)(id * 0x9E3779B97F4A7C15ull) & (s->tm_cap - 1);
	while (s->tm[i].used && s->tm[i].table_id != id)
		i = (i + 1) & (s->tm_cap - 1);
	return i;
}

/* Forgets every table id (table maps come again in every group). */
static void tm_clear(struct ls_source *s)
{
	if (s->tm != NULL)
		memset(s->tm, 0, s->tm_cap * sizeof *s->tm);
	s->tm_n = 0;
}

static int tm_put(struct ls_source *s, uint64_t id, int idx)
{
	if ((s->tm_n + 1) * 2 > s->tm_cap) {
		size_t cap = s->tm_cap ? s->tm_cap * 2 : 64;
		struct tment *old = s->tm;
		size_t oldcap = s->tm_cap;
		s->tm = calloc(cap, sizeof *s->tm);
		if (s->tm == NULL) {
			s->tm = old;
			return -1;
		}
		s->tm_cap = cap;
		for (size_t i = 0; i < oldcap; i++)
			if (old[i].used)
				s->tm[tm_slot(s, old[i].table_id)] = old[i];
		free(old);
	}
	struct tment *e = &s->tm[tm_slot(s, id)];
	if (!e->used)
		s->tm_n++;
	*e = (struct tment){ .used = true, .table_id = id, .idx = idx };
	return 0;
}

/* -2 when the id was never mapped. */
static int tm_get(const struct ls_source *s, uint64_t id)
{
	if (s->tm_cap == 0)
		return -2;
	const struct tment *e = &s->tm[tm_slot(s, id)];
	return e->used ? e->idx : -2;
}

static int find_table(const struct ls_source *s, const char *db, size_t dbl, const char *t,
		      size_t tl)
{
	for (int i = 0; i < s->tables.n; i++) {
		const struct ls_mytable *x = &s->tables.t[i];
		if (strlen(x->schema) == dbl && strncmp(x->schema, db, dbl) == 0 &&
		    strlen(x->name) == tl && strncmp(x->name, t, tl) == 0)
			return i;
	}
	return -1;
}

/* ---- stream: acks ---------------------------------------------------------------------------- */

static int push_ack(struct ls_source *s, uint64_t seq, const char *text)
{
	if (s->ack_n == s->ack_cap) {
		size_t cap = s->ack_cap ? s->ack_cap * 2 : 256;
		struct pend_ack *a = malloc(cap * sizeof *a);
		if (a == NULL)
			return -1;
		for (size_t i = 0; i < s->ack_n; i++)
			a[i] = s->acks[(s->ack_head + i) % s->ack_cap];
		free(s->acks);
		s->acks = a;
		s->ack_cap = cap;
		s->ack_head = 0;
	}
	struct pend_ack *e = &s->acks[(s->ack_head + s->ack_n++) % s->ack_cap];
	e->seq = seq;
	snprintf(e->text, sizeof e->text, "%s", text);
	return 0;
}

/* Durable downstream up to seq: the GTID set after that transaction
 * becomes the resume point (persisted by the timer). */
static void my_ack(struct ls_source *s, uint64_t ack)
{
	const struct pend_ack *last = NULL;
	while (s->ack_n > 0 && s->acks[s->ack_head].seq <= ack) {
		last = &s->acks[s->ack_head];
		s->ack_head = (s->ack_head + 1) % s->ack_cap;
		s->ack_n--;
	}
	if (last != NULL && last->seq > s->acked_seq) {
		s->acked_seq = last->seq;
		snprintf(s->acked_text, sizeof s->acked_text, "%s", last->text);
	}
}

/* Nothing is in flight: the position last reported idle is consumed. */
static void my_ack_idle(struct ls_source *s)
{
	if (s->in_grp || s->ack_n > 0 || s->idle_seq <= s->acked_seq)
		return;
	s->acked_seq = s->idle_seq;
	snprintf(s->acked_text, sizeof s->acked_text, "%s", s->idle_text);
}

static void persist_work(uv_work_t *w)
{
	struct ls_source *s = w->data;
	s->w_rc = state_write(s->state_dir, s->state_path, s->w_text, s->w_seq, &s->w_err);
}

static void persist_done(uv_work_t *w, int status)
{
	struct ls_source *s = w->data;
	s->persist_busy = false;
	if (status == 0 && s->w_rc == 0) {
		s->persisted_seq = s->w_seq;
		snprintf(s->persisted_text, sizeof s->persisted_text, "%s", s->w_text);
		s->persist_warned = false;
	} else if (!s->persist_warned) {
		/* the resume point lags; a restart re-sends more and the targets
		 * skip it, so this is not fatal */
		ls_warn("mysql source: %s", status == 0 ? s->w_err.msg : uv_strerror(status));
		s->persist_warned = true;
	}
}

static void on_persist_timer(uv_timer_t *t)
{
	struct ls_source *s = t->data;
	if (s->persist_busy || s->closing || s->acked_seq <= s->persisted_seq)
		return;
	s->w_seq = s->acked_seq;
	snprintf(s->w_text, sizeof s->w_text, "%s", s->acked_text);
	if (uv_queue_work(s->loop, &s->persist_work, persist_work, persist_done) == 0)
		s->persist_busy = true;
}

/* ---- stream: events ---------------------------------------------------------------------- */

static void stream_fatal(struct ls_source *s, struct ls_err *err)
{
	if (s->state == ST_FAILED)
		return;
	s->state = ST_FAILED;
	s->in_grp = s->begun = false;
	if (s->bl != NULL)
		ls_mybinlog_pause(s->bl);
	ls_err_prefix(err, "mysql source");
	if (s->cb.on_error != NULL)
		s->cb.on_error(s->cb.ctx, err);
}

static void ensure_begun(struct ls_source *s)
{
	if (s->begun)
		return;
	s->begun = true;
	s->cb.on_begin(s->cb.ctx, &s->txn);
}

static void report_idle(struct ls_source *s, uint64_t seq, int64_t time_us)
{
	if (seq > s->idle_seq) {
		s->idle_seq = seq;
		snprintf(s->idle_text, sizeof s->idle_text, "%s", s->done_text);
	}
	if (s->cb.on_idle == NULL)
		return;
	struct ls_pos pos = { .seq = seq };
	snprintf(pos.text, sizeof pos.text, "%s", s->done_text);
	s->cb.on_idle(s->cb.ctx, &pos, time_us);
}

static int ev_gtid(struct ls_source *s, const struct ls_mybinlog_event *ev, struct ls_err *err)
{
	struct ls_mybinlog_gtid g;
	if (ls_mybinlog_parse_gtid(ev, &g) < 0)
		return ls_err_set(err, false, "short GTID event");
	if (s->in_grp)
		return ls_err_set(err, false, "GTID %u-%u-%llu inside an unfinished group",
				  g.gtid.domain, g.gtid.server, (unsigned long long)g.gtid.seq);
	if (s->tm_n > 1024)
		tm_clear(s);
	s->after = s->done;
	if (ls_gtid_set_add(&s->after, &g.gtid, err) < 0)
		return -1;
	s->in_grp = true;
	s->begun = false;
	s->skip_grp = skipped_id(s, g.gtid.server);
	s->grp_flags = g.flags;
	s->txn.xid = g.gtid.seq;
	s->txn.commit.seq = pos_seq(&ev->pos);
	if (ls_gtid_set_format(&s->after, s->txn.commit.text, sizeof s->txn.commit.text) < 0)
		return ls_err_set(err, false, "GTID set too long for a position");
	s->txn.commit_time_us = (int64_t)ev->timestamp * 1000000;
	return 0;
}

/* The group is complete: commit what was captured, or report the new
 * position as idle. */
static int end_group(struct ls_source *s, struct ls_err *err)
{
	if (!s->in_grp)
		return 0;
	ls_debug("mysql source: GTID group %s at seq %llu %s", s->txn.commit.text,
		 (unsigned long long)s->txn.commit.seq, s->begun ? "captured" : "not captured");
	s->in_grp = false;
	if (s->skip_grp && !s->begun)
		s->skipped_txns++;
	s->skip_grp = false;
	s->done = s->after;
	snprintf(s->done_text, sizeof s->done_text, "%s", s->txn.commit.text);
	(void)ls_mybinlog_set_resume(s->bl, s->done_text);
	if (s->begun) {
		s->begun = false;
		if (push_ack(s, s->txn.commit.seq, s->txn.commit.text) < 0)
			return ls_err_set(err, false, "out of memory");
		s->cb.on_commit(s->cb.ctx, &s->txn, s->txn.commit.seq);
		return 0;
	}
	report_idle(s, s->txn.commit.seq, s->txn.commit_time_us);
	return 0;
}

static int set_info(struct ls_source *s, int idx, uint64_t table_id, struct ls_err *err)
{
	const struct ls_mytable *t = live_table(s, idx);
	struct ls_myr_col_info *ci = calloc((size_t)t->ncols + 1, sizeof *ci);
	if (ci == NULL)
		return ls_err_set(err, false, "out of memory");
	for (int i = 0; i < t->ncols; i++) {
		const struct ls_mycolumn *c = &t->cols[i];
		ci[i] = (struct ls_myr_col_info){
			.name = c->name, .type_name = c->column_type,
			.is_unsigned = c->is_unsigned, .is_binary = c->binary,
			.is_key = c->key, .nmembers = (uint32_t)c->nmembers,
			.members = (const char *const *)c->members,
		};
	}
	struct ls_myr_table_info info = { .relid = (uint32_t)idx + 1,
		.ncols = (uint16_t)t->ncols, .cols = ci };
	int rc = ls_myr_set_table_info(s->dec, table_id, &info, err);
	free(ci);
	if (rc < 0)
		return ls_err_prefix(err, "table %s.%s: the binlog and the catalog disagree (DDL "
				     "since this position?)", t->schema, t->name);
	s->stale[idx] = false;
	return 0;
}

static bool is_marker_table(const struct ls_mybinlog_table_map *tm)
{
	return tm->db_len == strlen(LS_MYDRIFT_MARKER_DB) &&
	       memcmp(tm->db, LS_MYDRIFT_MARKER_DB, tm->db_len) == 0 &&
	       tm->table_len == strlen(LS_MYDRIFT_MARKER_TABLE) &&
	       memcmp(tm->table, LS_MYDRIFT_MARKER_TABLE, tm->table_len) == 0;
}

/* The marker table's map: its columns are known (my_drift.h), so the
 * payload decodes as bytes whatever binlog_row_metadata says.  A table of
 * another shape under that name is not ours: ignored, with a warning. */
static int marker_map(struct ls_source *s, uint64_t table_id, const struct ls_myr_event *mev,
		      struct ls_err *err)
{
	if (mev->map_change == LS_MYR_MAP_SAME)
		return 0;
	static const struct ls_myr_col_info cols[] = {
		{ .name = "id", .is_unsigned = -1, .is_binary = -1, .is_key = 1 },
		{ .name = "payload", .is_unsigned = -1, .is_binary = 1, .is_key = 0 },
	};
	struct ls_myr_table_info info = { .ncols = 2, .cols = cols };
	struct ls_err e = { 0 };
	if (ls_myr_set_table_info(s->dec, table_id, &info, &e) == 0)
		return 0;
	ls_warn("mysql source: %s.%s is not lockstep's drift marker table (%s); its rows "
		"are ignored", LS_MYDRIFT_MARKER_DB, LS_MYDRIFT_MARKER_TABLE, e.msg);
	return tm_put(s, table_id, TM_IGNORED) < 0 ? ls_err_set(err, false, "out of memory") : 0;
}

static int ev_table_map(struct ls_source *s, const struct ls_mybinlog_event *ev,
			struct ls_err *err)
{
	struct ls_mybinlog_table_map tm;
	if (ls_mybinlog_parse_table_map(ev, &tm) < 0)
		return ls_err_set(err, false, "short TABLE_MAP event");
	int idx = find_table(s, tm.db, tm.db_len, tm.table, tm.table_len);
	if (idx < 0 && is_marker_table(&tm))
		idx = TM_MARKER;
	if (tm_put(s, tm.table_id, idx) < 0)
		return ls_err_set(err, false, "out of memory");
	if (idx == TM_IGNORED)
		return 0;
	struct ls_myr_event mev;
	if (ls_myr_decode(s->dec, ev->type, ev->data + LS_MYEV_HEADER_LEN,
			  ev->len - LS_MYEV_HEADER_LEN, &s->arena, &mev, err) < 0)
		return -1;
	if (idx == TM_MARKER)
		return marker_map(s, tm.table_id, &mev, err);
	if (mev.map_change != LS_MYR_MAP_SAME || s->stale[idx])
		return set_info(s, idx, tm.table_id, err);
	return 0;
}

/* Rows of the drift marker table: each inserted row is a drift marker
 * (lib/drift.h), handed on as a MESSAGE change of its transaction, which
 * is what a PostgreSQL source makes of pg_logical_emit_message.  The
 * marker's own delete (same transaction) and anything else are ignored. */
static int marker_rows(struct ls_source *s, const struct ls_mybinlog_event *ev,
		       struct ls_err *err)
{
	if (!s->in_grp)
		return ls_err_set(err, false, "drift marker outside a GTID group");
	if (s->skip_grp)
		return 0;
	struct ls_myr_event mev;
	if (ls_myr_decode(s->dec, ev->type, ev->data + LS_MYEV_HEADER_LEN,
			  ev->len - LS_MYEV_HEADER_LEN, &s->arena, &mev, err) < 0)
		return -1;
	for (uint32_t i = 0; i < mev.nchanges; i++) {
		const struct ls_tuple *t = &mev.changes[i].new_tup;
		if (mev.changes[i].op != LS_OP_INSERT || t->ncols < 2 ||
		    (t->vals[1].kind != LS_VAL_BINARY && t->vals[1].kind != LS_VAL_TEXT))
			continue;
		ensure_begun(s);
		if (s->state == ST_FAILED || s->closing)
			return 0;
		struct ls_change m = {
			.op = LS_OP_MESSAGE, .msg_prefix = LS_DRIFT_PREFIX,
			.msg_len = t->vals[1].len, .msg_data = t->vals[1].data,
		};
		s->cb.on_change(s->cb.ctx, &m, NULL, 0);
	}
	return 0;
}

static int ev_rows(struct ls_source *s, const struct ls_mybinlog_event *ev, struct ls_err *err)
{
	uint64_t id;
	if (ls_mybinlog_rows_table_id(ev, &id) < 0)
		return ls_err_set(err, false, "short rows event");
	int idx = tm_get(s, id);
	if (idx == TM_IGNORED)
		return 0;             /* a table we do not capture */
	if (idx == TM_MARKER)
		return marker_rows(s, ev, err);
	if (idx == -2) {
		ls_debug("mysql source: rows event for unmapped table id %llu ignored",
			 (unsigned long long)id);
		return 0;
	}
	const struct ls_relation *rel = s->cur[idx];
	if (!s->in_grp)
		return ls_err_set(err, false, "rows of %s.%s outside a GTID group", rel->schema,
				  rel->name);
	if (s->skip_grp)
		return 0;             /* lockstep's own apply: no replication loop */
	if (!(s->grp_flags & LS_MYGTID_TRANSACTIONAL))
		return ls_err_set(err, false, "table %s.%s was changed by a non-transactional "
				  "statement (GTID %s): its changes cannot be captured "
				  "consistently; make it InnoDB (ALTER TABLE ... ENGINE=InnoDB)",
				  rel->schema, rel->name, s->txn.commit.text);
	struct ls_myr_event mev;
	if (ls_myr_decode(s->dec, ev->type, ev->data + LS_MYEV_HEADER_LEN,
			  ev->len - LS_MYEV_HEADER_LEN, &s->arena, &mev, err) < 0)
		return -1;
	for (uint32_t i = 0; i < mev.nchanges; i++) {
		if (mev.changes[i].new_tup.ncols > rel->ncols ||
		    mev.changes[i].old_tup.ncols > rel->ncols)
			return ls_err_set(err, false, "table %s.%s: rows have more columns than "
					  "the catalog", rel->schema, rel->name);
		if (tuple_to_utf8(s, idx, &mev.changes[i].new_tup, err) < 0 ||
		    tuple_to_utf8(s, idx, &mev.changes[i].old_tup, err) < 0)
			return -1;
		ensure_begun(s);
		if (s->state == ST_FAILED || s->closing)
			return 0;
		s->cb.on_change(s->cb.ctx, &mev.changes[i], &rel, 1);
	}
	return 0;
}

/* Skips spaces and comments; returns the next word's length (letters). */
static size_t next_word(const char **p, const char *end)
{
	const char *s = *p;
	for (;;) {
		while (s < end && isspace((unsigned char)*s))
			s++;
		if (end - s >= 2 && s[0] == '/' && s[1] == '*') {
			const char *c = s + 2;
			while (end - c >= 2 && !(c[0] == '*' && c[1] == '/'))
				c++;
			s = end - c >= 2 ? c + 2 : end;
			continue;
		}
		break;
	}
	*p = s;
	size_t n = 0;
	while (s + n < end && (isalpha((unsigned char)s[n]) || s[n] == '_'))
		n++;
	return n;
}

static bool word_is(const char *p, size_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(p, w, n) == 0;
}

/* Reads an identifier (`quoted` or bare) into out; returns its length or
 * 0. */
static size_t read_ident(const char **p, const char *end, char *out, size_t size)
{
	const char *s = *p;
	size_t n = 0;
	if (s < end && *s == '`') {
		for (s++; s < end; s++) {
			if (*s == '`' && s + 1 < end && s[1] == '`')
				s++;
			else if (*s == '`')
				break;
			if (n + 1 < size)
				out[n++] = *s;
		}
		if (s < end)
			s++;
	} else {
		while (s < end && (isalnum((unsigned char)*s) || *s == '_' || *s == '$')) {
			if (n + 1 < size)
				out[n++] = *s;
			s++;
		}
	}
	out[n] = '\0';
	*p = s;
	return n;
}

/* TRUNCATE [TABLE] [db.]t of a captured table: one TRUNCATE change. */
static int truncate_table(struct ls_source *s, const char *p, const char *end,
			  const struct ls_mybinlog_query *q)
{
	size_t n = next_word(&p, end);
	if (word_is(p, n, "TABLE"))
		p += n;
	next_word(&p, end);
	char a[200], b[200];
	if (read_ident(&p, end, a, sizeof a) == 0)
		return -1;
	int idx;
	if (p < end && *p == '.') {
		p++;
		if (read_ident(&p, end, b, sizeof b) == 0)
			return -1;
		idx = find_table(s, a, strlen(a), b, strlen(b));
	} else {
		idx = find_table(s, q->db, q->db_len, a, strlen(a));
	}
	if (idx < 0)
		return -1;
	ensure_begun(s);
	uint32_t relid = (uint32_t)idx + 1;
	struct ls_change ch = { .op = LS_OP_TRUNCATE, .nrelids = 1, .relids = &relid };
	const struct ls_relation *rel = s->cur[idx];
	s->cb.on_change(s->cb.ctx, &ch, &rel, 1);
	return 0;
}

/* DDL naming a captured table: its catalog entry is read again. */
static int table_ddl(struct ls_source *s, const char *sql, size_t len,
		     const struct ls_mybinlog_query *q, struct ls_err *err)
{
	for (int i = 0; i < s->tables.n; i++) {
		const struct ls_mytable *t = &s->tables.t[i];
		size_t tl = strlen(t->name);
		bool named = false;
		for (size_t k = 0; k + tl <= len && !named; k++)
			named = strncasecmp(sql + k, t->name, tl) == 0;
		bool db_ok = (q->db_len == strlen(t->schema) &&
			      strncmp(q->db, t->schema, q->db_len) == 0);
		for (size_t k = 0; !db_ok && k + strlen(t->schema) <= len; k++)
			db_ok = strncmp(sql + k, t->schema, strlen(t->schema)) == 0;
		if (named && db_ok && refresh_table(s, i, err) < 0)
			return -1;
	}
	return 0;
}

static int ev_query(struct ls_source *s, const struct ls_mybinlog_event *ev, struct ls_err *err)
{
	struct ls_mybinlog_query q;
	if (ls_mybinlog_parse_query(ev, &q) < 0)
		return ls_err_set(err, false, "short QUERY event");
	const char *p = q.sql, *end = q.sql + q.sql_len;
	size_t n = next_word(&p, end);
	if (word_is(p, n, "COMMIT"))
		return end_group(s, err);
	if (word_is(p, n, "BEGIN") || word_is(p, n, "XA"))
		return 0;
	if (word_is(p, n, "ROLLBACK")) {
		if (s->begun)
			return ls_err_set(err, false, "group %s with captured changes ended in "
					  "ROLLBACK", s->txn.commit.text);
		return end_group(s, err);
	}
	const char *w = p + n;
	if (word_is(p, n, "TRUNCATE"))
		(void)truncate_table(s, w, end, &q);
	else if ((word_is(p, n, "ALTER") || word_is(p, n, "CREATE") || word_is(p, n, "DROP") ||
		  word_is(p, n, "RENAME")) && table_ddl(s, q.sql, q.sql_len, &q, err) < 0)
		return -1;
	if (s->state == ST_FAILED || s->closing)
		return 0;
	if (s->in_grp && (s->grp_flags & LS_MYGTID_STANDALONE))
		return end_group(s, err);
	return 0;
}

static void on_event(struct ls_mybinlog *b, const struct ls_mybinlog_event *ev)
{
	struct ls_source *s = ls_mybinlog_data(b);
	if (s->closing || s->state == ST_FAILED)
		return;
	if (s->state == ST_RECONNECTING) {
		s->state = ST_STREAMING;
		ls_info("mysql source: streaming again from GTID %s", s->done_text);
	}
	s->last_pos = ev->pos;
	struct ls_err err = { 0 };
	int rc = 0;
	switch (ev->type) {
	case LS_MYEV_GTID:
		rc = ev_gtid(s, ev, &err);
		break;
	case LS_MYEV_TABLE_MAP:
		rc = ev_table_map(s, ev, &err);
		break;
	case LS_MYEV_WRITE_ROWS_V1:
	case LS_MYEV_UPDATE_ROWS_V1:
	case LS_MYEV_DELETE_ROWS_V1:
	case LS_MYEV_WRITE_ROWS:
	case LS_MYEV_UPDATE_ROWS:
	case LS_MYEV_DELETE_ROWS:
		rc = ev_rows(s, ev, &err);
		break;
	case LS_MYEV_XID:
		rc = end_group(s, &err);
		break;
	case LS_MYEV_QUERY:
		rc = ev_query(s, ev, &err);
		break;
	case LS_MYEV_HEARTBEAT:
		if (!s->in_grp)
			report_idle(s, pos_seq(&ev->pos), now_us());
		break;
	default:
		break;
	}
	/* decoded values were borrowed for the callbacks only */
	ls_arena_reset(&s->arena);
	if (rc < 0) {
		ls_err_prefix(&err, "at %s:%llu", ev->pos.file, (unsigned long long)ev->pos.offset);
		stream_fatal(s, &err);
	}
}

static void on_bl_error(struct ls_mybinlog *b, const struct ls_err *e)
{
	struct ls_source *s = ls_mybinlog_data(b);
	if (s->closing || s->state == ST_FAILED)
		return;
	if (!e->retryable) {
		struct ls_err err = *e;
		stream_fatal(s, &err);
		return;
	}
	ls_warn("mysql source: %s; reconnecting", e->msg);
	s->state = ST_RECONNECTING;
}

static void on_bl_reconnect(struct ls_mybinlog *b, const char *from)
{
	struct ls_source *s = ls_mybinlog_data(b);
	if (s->closing || s->state == ST_FAILED)
		return;
	ls_info("mysql source: reconnecting from GTID %s", from);
	/* an unfinished group comes again whole */
	bool had = s->in_grp;
	s->in_grp = s->begun = false;
	tm_clear(s);
	ls_arena_reset(&s->arena);
	if (had && s->cb.on_restart != NULL)
		s->cb.on_restart(s->cb.ctx);
}

static int my_stream(struct ls_source *s, const struct ls_source_cb *cb, struct ls_err *err)
{
	if (!s->prepared || s->bl != NULL || s->closing)
		return ls_err_set(err, false, "mysql source: stream needs a prepared source and "
				  "runs once");
	if (cb->on_begin == NULL || cb->on_change == NULL || cb->on_commit == NULL)
		return ls_err_set(err, false, "mysql source: stream needs on_begin, on_change "
				  "and on_commit");
	s->cb = *cb;
	if (ls_gtid_set_parse(s->start_gtid, &s->done, err) < 0)
		return ls_err_prefix(err, "mysql source: start position");
	snprintf(s->done_text, sizeof s->done_text, "%s", s->start_gtid);
	for (int i = 0; i < s->tables.n; i++)
		if (table_charsets(s, i, err) < 0)
			return ls_err_prefix(err, "mysql source");
	struct ls_mybinlog_opts o = {
		.conn = &s->conn, .server_id = s->server_id, .name = s->name,
		.source_server_id = s->server.server_id, .start_gtid = s->start_gtid,
		.heartbeat_ms = s->hb_ms, .reconnect_base_ms = s->base_ms,
		.reconnect_cap_ms = s->cap_ms,
	};
	static const struct ls_mybinlog_cbs cbs = {
		.on_event = on_event, .on_error = on_bl_error, .on_reconnect = on_bl_reconnect,
	};
	s->bl = ls_mybinlog_start(s->loop, &o, &cbs, s, err);
	if (s->bl == NULL) {
		s->state = ST_FAILED;
		return ls_err_prefix(err, "mysql source");
	}
	if (s->paused)
		ls_mybinlog_pause(s->bl);
	s->state = ST_STREAMING;
	uv_timer_start(&s->persist_timer, on_persist_timer, LS_MY_SOURCE_PERSIST_MS,
		       LS_MY_SOURCE_PERSIST_MS);
	ls_info("mysql source: streaming from GTID %s", s->start_gtid[0] ? s->start_gtid :
		"(the start of the binlog)");
	return 0;
}

static void my_pause(struct ls_source *s)
{
	s->paused = true;
	if (s->bl != NULL)
		ls_mybinlog_pause(s->bl);
}

static void my_resume(struct ls_source *s)
{
	s->paused = false;
	if (s->bl != NULL && s->state != ST_FAILED)
		ls_mybinlog_resume(s->bl);
}

/* ---- status ------------------------------------------------------------------------------- */

static const char *state_name(const struct ls_source *s)
{
	switch (s->state) {
	case ST_OPEN:
	case ST_PREPARED:
		return "preparing";
	case ST_SNAPSHOT:
		return "snapshot";
	case ST_SNAPSHOT_DONE:
		return "snapshot_done";
	case ST_STREAMING:
		return s->paused ? "paused" : "streaming";
	case ST_RECONNECTING:
		return "reconnecting";
	case ST_FAILED:
		return "failed";
	}
	return "unknown";
}

static void my_status(struct ls_source *s, struct ls_json *j)
{
	struct ls_mybinlog_stats st = { 0 };
	if (s->bl != NULL)
		ls_mybinlog_stats(s->bl, &st);
	char pos[LS_BINLOG_FILE_MAX + 32] = "";
	if (s->last_pos.file[0])
		ls_binlog_pos_format(&s->last_pos, pos, sizeof pos);
	ls_json_kv_string(j, "engine", s->server.mariadb ? "mariadb" : "mysql");
	ls_json_kv_string(j, "state", state_name(s));
	ls_json_kv_string(j, "received_gtid", s->done_text);
	ls_json_kv_string(j, "acked_gtid", s->acked_text);
	ls_json_kv_string(j, "saved_gtid", s->persisted_text);
	ls_json_kv_string(j, "binlog_pos", pos);
	ls_json_kv_uint(j, "pending_acks", s->ack_n);
	ls_json_kv_uint(j, "events", st.events);
	ls_json_kv_uint(j, "reconnects", st.reconnects);
	ls_json_kv_uint(j, "replica_server_id", st.server_id);
	ls_json_kv_bool(j, "connected", st.connected);
	ls_json_kv_string(j, "skip_origins", s->skip_origins);
	ls_json_kv_uint(j, "skipped_origin_txns", s->skipped_txns);
}

/* ---- close ------------------------------------------------------------------------------- */

static void free_source(struct ls_source *s)
{
	free(s->skip_origins);
	free(s->start_from);
	for (int i = 0; i < s->tables.n; i++) {
		if (s->rels)
			ls_relation_free(s->rels[i]);
		if (s->cur)
			ls_relation_free(s->cur[i]);
		if (s->live)
			ls_mysetup_tables_free(&s->live[i]);
		if (s->json)
			free(s->json[i]);
		if (s->cs)
			free(s->cs[i]);
	}
	free(s->rels);
	free(s->cur);
	free(s->live);
	free(s->json);
	free(s->stale);
	free(s->cs);
	for (int i = 0; i < s->niconv; i++)
		iconv_close(s->iconvs[i].cd);
	free(s->est_rows);
	free(s->prog);
	for (int i = 0; i < s->nskip; i++)
		free(s->skip[i]);
	free(s->skip);
	for (int i = 0; s->wb != NULL && i < s->workers; i++)
		free(s->wb[i].data);
	free(s->wb);
	ls_mysetup_tables_free(&s->tables);
	ls_myr_free(s->dec);
	if (s->cat != NULL)
		mysql_close(s->cat);
	ls_arena_free(&s->arena);
	free(s->tm);
	free(s->acks);
	ls_mysetup_conn_free(&s->conn);
	pthread_mutex_destroy(&s->mu);
	free(s->include);
	free(s->exclude);
	free(s->name);
	free(s->state_dir);
	free(s->state_path);
	free(s);
}

static void maybe_done(struct ls_source *s)
{
	if (!s->bl_closed || s->handles > 0)
		return;
	void (*cb)(void *) = s->close_cb;
	void *arg = s->close_arg;
	free_source(s);
	if (cb != NULL)
		cb(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct ls_source *s = h->data;
	s->handles--;
	maybe_done(s);
}

static void on_bw_closed(void *data)
{
	struct ls_source *s = data;
	s->handles--;
	maybe_done(s);
}

static void on_bl_closed(void *data)
{
	struct ls_source *s = data;
	s->bl_closed = true;
	maybe_done(s);
}

/* Waits (polling) for the copy workers and a state write in flight, then
 * saves the last acknowledged position and releases the handles. */
static void on_close_timer(uv_timer_t *t)
{
	struct ls_source *s = t->data;
	if (s->persist_busy || (s->snap != NULL && !ls_mysnap_finished(s->snap)))
		return;
	snapshot_end(s);
	if (s->prepared && s->acked_seq > s->persisted_seq) {
		struct ls_err err = { 0 };
		if (state_write(s->state_dir, s->state_path, s->acked_text, s->acked_seq,
				&err) < 0)
			ls_warn("mysql source: %s", err.msg);
		else
			ls_info("mysql source: saved resume GTID %s", s->acked_text);
	}
	uv_close((uv_handle_t *)&s->timer, on_handle_closed);
	uv_close((uv_handle_t *)&s->persist_timer, on_handle_closed);
}

static void my_close(struct ls_source *s, void (*cb)(void *arg), void *arg)
{
	if (s->closing)
		return;
	s->closing = true;
	s->close_cb = cb;
	s->close_arg = arg;
	if (s->snap != NULL)
		ls_mysnap_cancel(s->snap);
	uv_timer_stop(&s->persist_timer);
	uv_timer_stop(&s->timer);
	uv_timer_start(&s->timer, on_close_timer, 0, SNAP_POLL_MS);
	if (s->bw != NULL) {
		struct ls_mybw *w = s->bw;
		s->bw = NULL;
		s->handles++;
		ls_mybw_close(w, on_bw_closed, s);
	}
	if (s->bl != NULL) {
		struct ls_mybinlog *b = s->bl;
		s->bl = NULL;
		ls_mybinlog_close(b, on_bl_closed);
	} else {
		s->bl_closed = true;
	}
}

/* ---- lag (my_binwatch) ---------------------------------------------------------------- */

/* The restart point a crash would resume from: the saved one. */
static uint64_t bw_needed(void *ctx)
{
	const struct ls_source *s = ctx;
	return s->persisted_seq;
}

/* The binlog needs no heartbeat of ours (the server sends HEARTBEAT events
 * to an idle reader); this starts the watch of the server's position,
 * clock and binlog files. */
static int my_heartbeat(struct ls_source *s, int interval_ms, struct ls_err *err)
{
	if (s->bw != NULL || s->closing || !s->prepared)
		return ls_err_set(err, false, "mysql source: heartbeat needs a prepared "
				  "source and starts once");
	size_t n = strlen(s->name) + 16;
	char *wname = malloc(n);
	if (wname == NULL)
		return ls_err_set(err, false, "out of memory");
	snprintf(wname, n, "%s.binwatch", s->name);
	uint32_t id = ls_mybinlog_server_id(wname, s->server.server_id);
	free(wname);
	uint32_t reader = s->server_id ? s->server_id :
		ls_mybinlog_server_id(s->name, s->server.server_id);
	while (id == reader || id == s->server.server_id || id < 2)
		id = id + 1 >= (1u << 31) ? 2 : id + 1;
	struct ls_mybw_opts o = {
		.conn = &s->conn, .name = LS_MY_SOURCE_STATE_FILE, .dump_server_id = id,
		.interval_ms = interval_ms, .needed = bw_needed, .ctx = s,
	};
	return ls_mybw_new(s->loop, &o, &s->bw, err);
}

static void my_lag_sample(struct ls_source *s, struct ls_source_lag *out)
{
	if (s->bw != NULL)
		ls_mybw_sample(s->bw, out);
	else
		memset(out, 0, sizeof *out);
}

const struct ls_source_ops ls_my_source_ops = {
	.engine = "mysql",
	.copy_format = "pg-text",
	.open = my_open,
	.prepare = my_prepare,
	.snapshot = my_snapshot,
	.snapshot_progress = my_snapshot_progress,
	.stream = my_stream,
	.ack = my_ack,
	.ack_idle = my_ack_idle,
	.pause = my_pause,
	.resume = my_resume,
	.status = my_status,
	.close = my_close,
	.heartbeat = my_heartbeat,
	.lag_sample = my_lag_sample,
};
