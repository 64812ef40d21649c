#include "connectors/mysql/my_target.h"

#include "connectors/mysql/my_binlog.h"
#include "connectors/mysql/my_drift.h"
#include "connectors/mysql/my_netrows.h"

#include <inttypes.h>
#include <mysql.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connectors/mysql/my_sql.h"
#include "log.h"

#define DEFAULT_STMT_BYTES (1024 * 1024)
#define BATCH_STMTS 2000   /* statements per multi-statement batch */
#define SAVEPOINT "SAVEPOINT ls_txn"
#define ROLLBACK_TXN "ROLLBACK TO SAVEPOINT ls_txn"

static const char SQL_MODE[] =
	"SET SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,"
	"NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'";

/* One connection with its last error number; shared by the apply side and
 * copy sessions. */
struct sess {
	MYSQL *conn;
	const char *target;        /* borrowed name, for messages */
	unsigned last_errno;
	bool mariadb;
	uint32_t origin_id;        /* session server id tagging lockstep's writes */
	bool untagged;             /* the server refused the tag */
};

/* Where a statement came from, for error messages. */
struct where {
	const char *qname;         /* `db`.`t` or NULL */
	const char *op;            /* "INSERT", ... */
	const char *key;           /* "(id)=(5)", or NULL */
	const char *row_keys;      /* multi-row INSERT: NUL-separated key per row */
	int nrows;
	bool ddl;                  /* warnings allowed (IF NOT EXISTS notes) */
};

/* What a batched statement checks when its result comes back. */
enum bkind {
	BK_PLAIN = 0,              /* START TRANSACTION, SAVEPOINT, ...: nothing */
	BK_INSERT,                 /* stores exactly nrows rows; no warning */
	BK_ROWS,                   /* UPDATE/DELETE: 0 rows counts as missing; no warning */
	BK_TRUNC,                  /* DELETE FROM t: no warning */
	BK_CKPT,                   /* checkpoint UPDATE: exactly 1 row */
	BK_NETDEL,                 /* DELETE .. IN of nrows keys: fewer count as missing */
	BK_UPSERT,                 /* INSERT .. ON DUPLICATE KEY UPDATE: no warning */
};

/* One statement of a batch, with what names it in an error. */
struct bstmt {
	size_t off, len;           /* text in batch.sql */
	size_t qname, key, keys;   /* in batch.str (NUL-terminated); SIZE_MAX: none */
	int nrows;                 /* INSERT rows (keys holds nrows keys) */
	uint8_t kind;              /* enum bkind */
	const char *op;            /* static: "INSERT", ... */
};

/* Statements sent together in one multi-statement round trip, separated
 * by ';' (bounded by max_stmt bytes and BATCH_STMTS statements). */
struct batch {
	struct ls_mysql_buf sql, str;
	struct bstmt *st;
	int n, cap;
};

struct trel {
	struct trel *next;
	struct ls_relation *src;   /* owned: last definition handed over */
	char *qname;               /* owned: `db`.`t` */
	struct ls_mysql_coltype *ct;   /* owned, per source column */
	bool checked;              /* table verified on this connection */
	bool net;                  /* changes fold into net rows (my_netrows.h) */
};

struct ls_mytarget {
	struct ls_mytarget_opts o; /* strings below are owned copies */
	char *pipeline, *target, *conninfo;
	struct ls_mysql_conninfo ci;
	struct sess s;
	struct ls_drift_conn *drift;       /* drift checks' own connection (my_drift.h) */
	size_t max_stmt;
	bool failed, in_group, in_txn;
	struct trel *rels;

	/* the open group and source transaction */
	int64_t group_start_ms;
	int group_rows, group_txns, group_missing, group_stmts;
	int64_t group_offset;
	struct ls_pos group_pos;
	int txn_rows;
	uint64_t txn_seq;
	uint64_t ddl_replay_seq;   /* txn that already failed once for mid-txn DDL */

	/* bat[cur]: statements not yet sent; bat[!cur]: the batch sent last,
	 * its results not read yet when outstanding.  The current source
	 * transaction's start in bat[cur] (its SAVEPOINT is only sent once part
	 * of it goes to the server). */
	struct batch bat[2];
	int cur;
	bool outstanding;
	size_t txn_mark, txn_str_mark;
	int txn_stmt_mark;
	bool txn_sent;

	/* pending multi-row INSERT into ins_rel */
	struct trel *ins_rel;
	int ins_rows;
	struct ls_mysql_buf ins, ins_keys;

	/* net row changes of the group (my_netrows.h); net_shadow: the group's
	 * part as it was before the current transaction spilled the net rows
	 * into the batch, so dropping that transaction can restore it */
	struct ls_mynet *net, *net_shadow;
	struct ls_mysql_buf nkey, nkey2, nrow;

	struct ls_mysql_buf sql, val;
	struct ls_target_ckpt ckpt;
	struct ls_mytarget_stats stats;
	uint64_t copy_rows;        /* atomic: copy sessions add */
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static void lib_init(void)
{
	mysql_library_init(0, NULL, NULL);
}

/* ---- errors ---------------------------------------------------------------- */

/* Retryable: the same input may apply later (the connection or the server's
 * concurrency control failed, not the data). */
static bool errno_retryable(unsigned e)
{
	switch (e) {
	case 1040:   /* too many connections */
	case 1053:   /* server shutdown */
	case 1205:   /* lock wait timeout */
	case 1213:   /* deadlock */
	case 1317:   /* query interrupted */
	case 1927:   /* connection killed (MariaDB) */
	case 2002: case 2003: case 2006: case 2013: case 2055:
	case 4031:   /* disconnected by the server (MySQL) */
		return true;
	default:
		return false;
	}
}

/* The column a server message names: "column 'c'", "Column 'c'" or
 * "column `db`.`t`.`c`". */
static void msg_column(const char *msg, char *out, size_t size)
{
	out[0] = '\0';
	const char *p = strcasestr(msg, "column '");
	if (p) {
		p += 8;
		const char *e = strchr(p, '\'');
		if (e)
			snprintf(out, size, "%.*s", (int)(e - p), p);
		return;
	}
	p = strcasestr(msg, "column `");
	if (p == NULL)
		return;
	p += 7;
	const char *last = NULL, *last_end = NULL;
	while (*p == '`') {
		const char *e = strchr(p + 1, '`');
		if (e == NULL)
			break;
		last = p + 1;
		last_end = e;
		p = e + 1;
		if (*p != '.')
			break;
		p++;
	}
	if (last)
		snprintf(out, size, "%.*s", (int)(last_end - last), last);
}

/* Whether display key k ("(a, b)=(1, x)") shows the values the server
 * names in a duplicate-key error ("1-x", n bytes). */
static bool key_shows(const char *k, const char *v, size_t n)
{
	const char *p = strstr(k, ")=(");
	if (p == NULL)
		return false;
	p += 3;
	size_t i = 0;
	for (; *p && *p != ')' && i < n; i++) {
		if (p[0] == ',' && p[1] == ' ') {
			if (v[i] != '-')
				return false;
			p += 2;
		} else if (*p++ != v[i]) {
			return false;
		}
	}
	return i == n && (*p == ')' || *p == '\0');
}

/* The key of the row a multi-row statement failed on: row N ("at row N"),
 * or the one a duplicate-key error names ("Duplicate entry '1-x'"). */
static const char *row_key(const struct where *w, const char *msg)
{
	const char *p = strstr(msg, " at row ");
	if (w->row_keys == NULL)
		return NULL;
	const char *dup = strstr(msg, "Duplicate entry '"), *dend = NULL;
	if (p == NULL && dup && (dend = strstr(dup + 17, "' for key")) != NULL) {
		const char *k = w->row_keys;
		for (int i = 0; i < w->nrows; i++, k += strlen(k) + 1)
			if (key_shows(k, dup + 17, (size_t)(dend - dup - 17)))
				return k;
		return NULL;
	}
	if (p == NULL)
		return NULL;
	long n = strtol(p + 8, NULL, 10);
	if (n < 1 || n > w->nrows)
		return NULL;
	const char *k = w->row_keys;
	for (long i = 1; i < n; i++)
		k += strlen(k) + 1;
	return k;
}

/* Fills err from a server error (errno e, message msg). */
static int server_error(struct sess *s, unsigned e, const char *msg, const struct where *w,
			struct ls_err *err)
{
	s->last_errno = e;
	char col[80], where[400] = "";
	msg_column(msg, col, sizeof col);
	const char *key = w ? (w->key ? w->key : row_key(w, msg)) : NULL;
	if (w && w->qname)
		snprintf(where, sizeof where, "%s %s%s%s%s%s: ", w->qname, w->op ? w->op : "",
			 key ? " key " : "", key ? key : "", col[0] ? " column " : "", col);
	return ls_err_set(err, e == 0 || errno_retryable(e), "target %s: %s%s (MySQL error %u)",
			  s->target, where, msg, e);
}

static int sess_error(struct sess *s, const struct where *w, struct ls_err *err)
{
	if (s->conn == NULL)
		return ls_err_set(err, true, "target %s: not connected", s->target);
	return server_error(s, mysql_errno(s->conn), mysql_error(s->conn), w, err);
}

/* After a data statement: any warning (a rounded decimal, a truncated
 * value) is an error, except "unsafe for statement-based binlog". */
static int check_warnings(struct sess *s, const struct where *w, struct ls_err *err)
{
	if (mysql_warning_count(s->conn) == 0)
		return 0;
	if (mysql_real_query(s->conn, "SHOW WARNINGS", 13) != 0)
		return sess_error(s, NULL, err);
	MYSQL_RES *res = mysql_store_result(s->conn);
	if (res == NULL)
		return sess_error(s, NULL, err);
	MYSQL_ROW row;
	int rc = 0;
	while (rc == 0 && (row = mysql_fetch_row(res)) != NULL) {
		unsigned code = row[1] ? (unsigned)strtoul(row[1], NULL, 10) : 0;
		if (code == 1592)
			continue;
		rc = server_error(s, code, row[2] ? row[2] : "warning", w, err);
		err->retryable = false;
	}
	mysql_free_result(res);
	return rc;
}

/* Runs one statement; *res (when res is non-NULL) gets its result set. */
static int sess_query(struct sess *s, const char *sql, size_t len, const struct where *w,
		      MYSQL_RES **res, struct ls_err *err)
{
	if (s->conn == NULL)
		return ls_err_set(err, true, "target %s: not connected", s->target);
	if (mysql_real_query(s->conn, sql, (unsigned long)len) != 0)
		return sess_error(s, w, err);
	if (res) {
		*res = mysql_store_result(s->conn);
		if (*res == NULL)
			return sess_error(s, w, err);
		return 0;
	}
	return w && !w->ddl ? check_warnings(s, w, err) : 0;
}

static int sess_exec(struct sess *s, const char *sql, struct ls_err *err)
{
	return sess_query(s, sql, strlen(sql), NULL, NULL, err);
}

/* Appends a quoted string literal escaped by the client library. */
static void put_literal(struct sess *s, struct ls_mysql_buf *b, const char *p, size_t n)
{
	char *d = ls_mysql_buf_room(b, 2 * n + 3);
	if (d == NULL)
		return;
	d[0] = '\'';
	unsigned long k = mysql_real_escape_string(s->conn, d + 1, p, (unsigned long)n);
	d[1 + k] = '\'';
	d[2 + k] = '\0';
	b->len += k + 2;
}

/* Writes with session server id origin_id, so a source reading this
 * server's binlog skips them (a cutover's reverse direction: no loop).  A
 * server that refuses (no SUPER / BINLOG REPLAY, or MySQL, whose server_id
 * is global only) still gets the data; the cutover checks the tag first. */
static int sess_tag(struct sess *s, struct ls_err *err)
{
	if (s->origin_id == 0)
		return 0;
	char sql[64];
	snprintf(sql, sizeof sql, "SET SESSION server_id = %" PRIu32, s->origin_id);
	if (mysql_query(s->conn, sql) == 0) {
		s->untagged = false;
		return 0;
	}
	unsigned e = mysql_errno(s->conn);
	if (e != 1227 && e != 1228 && e != 1238)
		return sess_error(s, NULL, err);
	if (!s->untagged)
		ls_warn("mysql target %s: cannot tag lockstep's writes with a session "
			"server_id (%s): a cutover's reverse direction would send them back",
			s->target ? s->target : "", mysql_error(s->conn));
	s->untagged = true;
	return 0;
}

/* flags: extra client flags (the apply connection sends multi-statement
 * batches). */
static int sess_connect(struct sess *s, const struct ls_mysql_conninfo *ci, unsigned long flags,
			struct ls_err *err)
{
	pthread_once(&lib_once, lib_init);
	s->last_errno = 0;
	s->conn = mysql_init(NULL);
	if (s->conn == NULL)
		return ls_err_set(err, false, "out of memory");
	unsigned timeout = ci->connect_timeout ? ci->connect_timeout : 10;
	mysql_options(s->conn, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	mysql_options(s->conn, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	if (!mysql_real_connect(s->conn, ci->host ? ci->host : "localhost", ci->user,
				ci->password, ci->database, ci->port, ci->socket,
				CLIENT_FOUND_ROWS | flags)) {
		int rc = sess_error(s, NULL, err);
		ls_err_prefix(err, "cannot connect to %s:%u", ci->host ? ci->host : "localhost",
			      ci->port ? ci->port : 3306);
		err->retryable = true;
		mysql_close(s->conn);
		s->conn = NULL;
		return rc;
	}
	s->mariadb = strstr(mysql_get_server_info(s->conn), "MariaDB") != NULL;
	if (sess_exec(s, SQL_MODE, err) < 0 ||
	    sess_exec(s, "SET SESSION time_zone = '+00:00'", err) < 0 ||
	    sess_exec(s, "SET SESSION foreign_key_checks = 0", err) < 0 ||
	    sess_tag(s, err) < 0) {
		mysql_close(s->conn);
		s->conn = NULL;
		return -1;
	}
	return 0;
}

static void sess_close(struct sess *s)
{
	if (s->conn)
		mysql_close(s->conn);
	s->conn = NULL;
}

/* "(a, b)=(1, x)" for messages. */
static void key_text(char *out, size_t size, const struct ls_relation *s,
		     const struct ls_tuple *tup)
{
	char names[100] = "", vals[100] = "";
	size_t nl = 0, vl = 0;
	bool full = s->replident == LS_REPLIDENT_FULL;
	int shown = 0;
	for (int i = 0; i < s->ncols && i < tup->ncols && shown < 4; i++) {
		if (!full && !(s->cols[i].flags & LS_COL_KEY))
			continue;
		const struct ls_value *v = &tup->vals[i];
		const char *txt = v->kind == LS_VAL_TEXT ? v->data
				  : v->kind == LS_VAL_NULL ? "NULL" : "?";
		nl += (size_t)snprintf(names + nl, nl < sizeof names ? sizeof names - nl : 0,
				       "%s%s", shown ? ", " : "", s->cols[i].name);
		vl += (size_t)snprintf(vals + vl, vl < sizeof vals ? sizeof vals - vl : 0,
				       "%s%.30s", shown ? ", " : "", txt);
		shown++;
	}
	if (snprintf(out, size, "(%s)=(%s)", names, vals) >= (int)size && size > 4)
		memcpy(out + size - 4, "...", 4);   /* visibly cut */
}

/* Appends value v of column col as an SQL literal. */
static int put_value(struct sess *s, struct ls_mysql_buf *b, struct ls_mysql_buf *tmp,
		     const struct ls_relation *rel, const struct ls_mysql_coltype *ct, int col,
		     const struct ls_value *v, const char *key, struct ls_err *err)
{
	if (v->kind == LS_VAL_NULL) {
		ls_mysql_put(b, "NULL");
		return 0;
	}
	if (v->kind == LS_VAL_BINARY) {
		ls_mysql_hex(b, v->data, v->len);
		return 0;
	}
	if (v->kind != LS_VAL_TEXT)
		return ls_err_set(err, false, "target %s: %s.%s key %s column %s: unexpected "
				  "unchanged value", s->target, rel->schema, rel->name, key,
				  rel->cols[col].name);
	if (ct->conv == LS_MYCONV_NONE) {
		put_literal(s, b, v->data, v->len);
		return 0;
	}
	ls_mysql_buf_reset(tmp);
	if (ls_mysql_convert(ct->conv, ct->elem, v->data, v->len, tmp, err) < 0)
		return ls_err_prefix(err, "target %s: %s.%s key %s column %s", s->target,
				     rel->schema, rel->name, key, rel->cols[col].name);
	if (ct->binary)
		ls_mysql_hex(b, tmp->data ? tmp->data : "", tmp->len);
	else
		put_literal(s, b, ls_mysql_buf_str(tmp), tmp->len);
	return 0;
}

/* ---- connection and checkpoint ------------------------------------------------ */

static const char *const CKPT_DDL[] = {
	"CREATE DATABASE IF NOT EXISTS lockstep",
	"CREATE TABLE IF NOT EXISTS lockstep.checkpoint ("
	" pipeline VARCHAR(64) NOT NULL, target VARCHAR(64) NOT NULL,"
	" buffer_offset BIGINT NOT NULL DEFAULT -1,"
	" source_seq BIGINT UNSIGNED NOT NULL DEFAULT 0,"
	" source_pos VARCHAR(512) NOT NULL DEFAULT '',"
	" applied_at DATETIME(6) NULL,"
	" PRIMARY KEY (pipeline, target)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
	"CREATE TABLE IF NOT EXISTS lockstep.snapshot ("
	" pipeline VARCHAR(64) NOT NULL, target VARCHAR(64) NOT NULL,"
	" table_schema VARCHAR(64) NOT NULL, table_name VARCHAR(64) NOT NULL,"
	" copied_at_seq BIGINT UNSIGNED NOT NULL, `rows` BIGINT UNSIGNED NOT NULL,"
	" done_at DATETIME(6) NOT NULL,"
	" PRIMARY KEY (pipeline, target, table_schema, table_name))"
	" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
};

/* " WHERE pipeline = '..' AND target = '..'" */
static void ckpt_where(struct ls_mytarget *t, struct ls_mysql_buf *b)
{
	ls_mysql_put(b, " WHERE pipeline = ");
	put_literal(&t->s, b, t->pipeline, strlen(t->pipeline));
	ls_mysql_put(b, " AND target = ");
	put_literal(&t->s, b, t->target, strlen(t->target));
}

static int read_checkpoint(struct ls_mytarget *t, struct ls_err *err)
{
	ls_mysql_buf_reset(&t->sql);
	ls_mysql_put(&t->sql, "SELECT buffer_offset, source_seq, source_pos, applied_at IS NOT NULL"
		     " FROM lockstep.checkpoint");
	ckpt_where(t, &t->sql);
	MYSQL_RES *res;
	if (sess_query(&t->s, ls_mysql_buf_str(&t->sql), t->sql.len, NULL, &res, err) < 0)
		return -1;
	MYSQL_ROW row = mysql_fetch_row(res);
	if (row == NULL) {
		mysql_free_result(res);
		return ls_err_set(err, false, "target %s: checkpoint row missing", t->target);
	}
	t->ckpt.buffer_offset = strtoll(row[0], NULL, 10);
	t->ckpt.source_seq = strtoull(row[1], NULL, 10);
	snprintf(t->ckpt.source_pos, sizeof t->ckpt.source_pos, "%s", row[2] ? row[2] : "");
	t->ckpt.present = row[3] && row[3][0] == '1';
	mysql_free_result(res);
	return 0;
}

static int connect_target(struct ls_mytarget *t, struct ls_err *err)
{
	t->failed = false;
	if (sess_connect(&t->s, &t->ci, CLIENT_MULTI_STATEMENTS, err) < 0)
		goto fail;
	for (size_t i = 0; i < sizeof CKPT_DDL / sizeof CKPT_DDL[0]; i++)
		if (sess_exec(&t->s, CKPT_DDL[i], err) < 0)
			goto fail;
	ls_mysql_buf_reset(&t->sql);
	ls_mysql_put(&t->sql, "INSERT IGNORE INTO lockstep.checkpoint (pipeline, target) VALUES (");
	put_literal(&t->s, &t->sql, t->pipeline, strlen(t->pipeline));
	ls_mysql_put(&t->sql, ", ");
	put_literal(&t->s, &t->sql, t->target, strlen(t->target));
	ls_mysql_put(&t->sql, ")");
	if (sess_exec(&t->s, ls_mysql_buf_str(&t->sql), err) < 0 || read_checkpoint(t, err) < 0)
		goto fail;
	MYSQL_RES *res;
	if (sess_query(&t->s, "SELECT @@max_allowed_packet", 27, NULL, &res, err) < 0)
		goto fail;
	MYSQL_ROW row = mysql_fetch_row(res);
	size_t packet = row && row[0] ? strtoull(row[0], NULL, 10) : 0;
	mysql_free_result(res);
	t->max_stmt = t->o.max_stmt_bytes ? t->o.max_stmt_bytes : DEFAULT_STMT_BYTES;
	if (packet > 4096 && t->max_stmt > packet / 2)
		t->max_stmt = packet / 2;
	return 0;
fail:
	sess_close(&t->s);
	t->failed = true;
	return -1;
}

static void batch_clear(struct batch *b)
{
	ls_mysql_buf_reset(&b->sql);
	ls_mysql_buf_reset(&b->str);
	b->n = 0;
}

static void batch_free(struct batch *b)
{
	ls_mysql_buf_free(&b->sql);
	ls_mysql_buf_free(&b->str);
	free(b->st);
}

static void net_forget(struct ls_mytarget *t);
static void net_drop_txn(struct ls_mytarget *t);
static int catalog(struct ls_mytarget *t, const char *head, const struct ls_relation *rel,
		   const char *tail, MYSQL_RES **res, struct ls_err *err);

/* Drops the connection after an error: the server rolls the open group
 * back (and nothing of an unsent batch exists).  Table checks belong to
 * the connection. */
static void fail(struct ls_mytarget *t)
{
	sess_close(&t->s);
	t->failed = true;
	t->in_group = t->in_txn = false;
	t->ins_rel = NULL;
	t->ins_rows = 0;
	net_forget(t);
	batch_clear(&t->bat[0]);
	batch_clear(&t->bat[1]);
	t->outstanding = false;
	for (struct trel *r = t->rels; r; r = r->next)
		r->checked = false;
}

static int usable(struct ls_mytarget *t, struct ls_err *err)
{
	if (!t->failed && t->s.conn)
		return 0;
	return ls_err_set(err, true, "target %s: failed earlier; reset and resume from the "
			  "checkpoint", t->target);
}

int ls_mytarget_new(const struct ls_mytarget_opts *opts, struct ls_mytarget **out,
		    struct ls_err *err)
{
	*out = NULL;
	struct ls_mytarget *t = calloc(1, sizeof *t);
	if (t == NULL)
		return ls_err_set(err, false, "out of memory");
	t->o = *opts;
	t->pipeline = strdup(opts->pipeline ? opts->pipeline : "");
	t->target = strdup(opts->target ? opts->target : "");
	t->conninfo = strdup(opts->conninfo ? opts->conninfo : "");
	if (t->o.batch_rows <= 0)
		t->o.batch_rows = 5000;
	if (t->o.batch_ms <= 0)
		t->o.batch_ms = 100;
	t->net = ls_mynet_new();
	if (!t->pipeline || !t->target || !t->conninfo || !t->net) {
		ls_mytarget_free(t);
		return ls_err_set(err, false, "out of memory");
	}
	t->s.target = t->target;
	char origin[96];
	snprintf(origin, sizeof origin, "lockstep_%s", t->pipeline);
	t->s.origin_id = ls_mybinlog_origin_id(origin);
	if (ls_mysql_conninfo_parse(t->conninfo, &t->ci, err) < 0) {
		ls_err_prefix(err, "target %s", t->target);
		ls_mytarget_free(t);
		return -1;
	}
	if (connect_target(t, err) < 0) {
		ls_mytarget_free(t);
		return -1;
	}
	*out = t;
	return 0;
}

static void free_rel(struct trel *r)
{
	ls_relation_free(r->src);
	free(r->qname);
	free(r->ct);
	free(r);
}

void ls_mytarget_free(struct ls_mytarget *t)
{
	if (t == NULL)
		return;
	sess_close(&t->s);
	ls_mydrift_close(t->drift);
	while (t->rels) {
		struct trel *r = t->rels;
		t->rels = r->next;
		free_rel(r);
	}
	batch_free(&t->bat[0]);
	batch_free(&t->bat[1]);
	ls_mysql_buf_free(&t->ins);
	ls_mysql_buf_free(&t->ins_keys);
	ls_mysql_buf_free(&t->sql);
	ls_mysql_buf_free(&t->val);
	ls_mysql_buf_free(&t->nkey);
	ls_mysql_buf_free(&t->nkey2);
	ls_mysql_buf_free(&t->nrow);
	ls_mynet_free(t->net);
	ls_mynet_free(t->net_shadow);
	ls_mysql_conninfo_free(&t->ci);
	free(t->pipeline);
	free(t->target);
	free(t->conninfo);
	free(t);
}

int ls_mytarget_reset(struct ls_mytarget *t, struct ls_err *err)
{
	fail(t);
	return connect_target(t, err);
}

void ls_mytarget_checkpoint(const struct ls_mytarget *t, struct ls_target_ckpt *out)
{
	*out = t->ckpt;
}

void ls_mytarget_stats(const struct ls_mytarget *t, struct ls_mytarget_stats *out)
{
	*out = t->stats;
	out->copy_rows = __atomic_load_n(&t->copy_rows, __ATOMIC_RELAXED);
}

unsigned ls_mytarget_errno(const struct ls_mytarget *t)
{
	return t->s.last_errno;
}

unsigned long ls_mytarget_connection_id(const struct ls_mytarget *t)
{
	return t->s.conn ? mysql_thread_id(t->s.conn) : 0;
}

/* ---- statement batches ---------------------------------------------------------
 * Data statements of a group are not sent one by one: they collect in
 * t->bat[cur] and go to the server as one multi-statement query when the
 * batch is full, at source transaction ends while the server is idle,
 * before any other statement and at commit.  One batch may be outstanding:
 * its results are read before the next one is sent, so building the next
 * batch overlaps with the server executing the last one.  The server stops
 * at the first failing statement; its position in the batch names table,
 * operation and key.  A failure of any kind fails the target, so the
 * server rolls the whole group back. */

/* Copies string p (may be NULL) into b->str; its offset or SIZE_MAX. */
static size_t batch_str(struct batch *b, const char *p, size_t n)
{
	if (p == NULL)
		return SIZE_MAX;
	size_t off = b->str.len;
	ls_mysql_putn(&b->str, p, n);
	ls_mysql_putn(&b->str, "", 1);
	return off;
}

/* The where of statement i, pointing into b. */
static void batch_where(const struct batch *b, int i, struct where *w)
{
	const struct bstmt *e = &b->st[i];
	const char *str = b->str.data;
	*w = (struct where){
		.qname = e->qname == SIZE_MAX ? NULL : str + e->qname,
		.op = e->op,
		.key = e->key == SIZE_MAX ? NULL : str + e->key,
		.row_keys = e->keys == SIZE_MAX ? NULL : str + e->keys,
		.nrows = e->nrows,
	};
}

/* Makes room for statement n of b and returns it (NULL: out of memory). */
static struct bstmt *batch_slot(struct batch *b)
{
	if (b->n == b->cap) {
		int cap = b->cap ? 2 * b->cap : 64;
		struct bstmt *st = realloc(b->st, (size_t)cap * sizeof *st);
		if (st == NULL)
			return NULL;
		b->st = st;
		b->cap = cap;
	}
	return &b->st[b->n];
}

/* The current source transaction's statements are about to reach the
 * server: a SAVEPOINT must go first, so abort_txn and mid-transaction DDL
 * can still drop them alone.  Inserted where the transaction started. */
static int batch_savepoint(struct ls_mytarget *t, struct ls_err *err)
{
	struct batch *b = &t->bat[t->cur];
	if (!t->in_txn || t->txn_sent || t->txn_stmt_mark == b->n)
		return 0;   /* no transaction, already covered, or none of it here yet */
	static const char SP_LAST[] = ";" SAVEPOINT, SP_FIRST[] = SAVEPOINT ";";
	const char *sp = t->txn_stmt_mark ? SP_LAST : SP_FIRST;
	size_t n = sizeof SP_LAST - 1, at = t->txn_mark;
	if (ls_mysql_buf_room(&b->sql, n + 1) == NULL || batch_slot(b) == NULL)
		return ls_err_set(err, false, "out of memory");
	memmove(b->sql.data + at + n, b->sql.data + at, b->sql.len - at + 1);
	memcpy(b->sql.data + at, sp, n);
	b->sql.len += n;
	int m = t->txn_stmt_mark;
	memmove(&b->st[m + 1], &b->st[m], (size_t)(b->n - m) * sizeof b->st[0]);
	for (int i = m + 1; i <= b->n; i++)
		b->st[i].off += n;
	b->st[m] = (struct bstmt){ .off = at + (m ? 1 : 0), .len = sizeof SAVEPOINT - 1,
				   .qname = SIZE_MAX, .key = SIZE_MAX, .keys = SIZE_MAX };
	b->n++;
	t->txn_sent = true;
	return 0;
}

/* Statement i warned (a warning is an error here).  SHOW WARNINGS only
 * reports a batch's last statement, so an earlier one runs again alone, in
 * a transaction rolled back after, to name the warning. */
static int batch_warning(struct ls_mytarget *t, const struct batch *b, int i, int last,
			 unsigned count, struct ls_err *err)
{
	struct where w;
	batch_where(b, i, &w);
	int rc = 0;
	if (i != last) {
		const struct bstmt *e = &b->st[i];
		if (mysql_query(t->s.conn, "ROLLBACK") != 0 ||
		    mysql_query(t->s.conn, "START TRANSACTION") != 0 ||
		    mysql_real_query(t->s.conn, b->sql.data + e->off, (unsigned long)e->len) != 0)
			rc = 1;
	}
	if (rc == 0 && mysql_warning_count(t->s.conn) > 0 && check_warnings(&t->s, &w, err) < 0)
		return -1;
	return ls_err_set(err, false, "target %s: %s %s%s%s: %u warning(s) (a warning is an "
			  "error here; not repeated when run alone)", t->target,
			  w.qname ? w.qname : "", w.op ? w.op : "", w.key ? " key " : "",
			  w.key ? w.key : "", count);
}

/* Checks result i (the current one on the connection) of batch b. */
static int batch_check(struct ls_mytarget *t, const struct batch *b, int i, int *warned,
		       unsigned *nwarn, struct ls_err *err)
{
	const struct bstmt *e = &b->st[i];
	my_ulonglong rows = mysql_affected_rows(t->s.conn);
	if (e->kind == BK_INSERT && rows != (my_ulonglong)e->nrows)
		return ls_err_set(err, false, "target %s: %s INSERT of %d rows stored %llu",
				  t->target, b->str.data + e->qname, e->nrows,
				  (unsigned long long)rows);
	if (e->kind == BK_CKPT && rows != 1)
		return ls_err_set(err, false, "target %s: checkpoint row for pipeline %s vanished",
				  t->target, t->pipeline);
	if (e->kind == BK_ROWS && rows == 0)
		t->group_missing++;
	if (e->kind == BK_NETDEL && rows < (my_ulonglong)e->nrows)
		t->group_missing += e->nrows - (int)rows;
	if (e->kind == BK_UPSERT) {
		/* "Records: N  Duplicates: D ...": rows not there before were
		 * missing (and now hold the source's full row) */
		const char *info = mysql_info(t->s.conn), *d = info ? strstr(info, "Duplicates: ") : NULL;
		long dups = d ? strtol(d + 12, NULL, 10) : e->nrows;
		if (dups < e->nrows)
			t->group_missing += e->nrows - (int)dups;
	}
	unsigned wc = mysql_warning_count(t->s.conn);
	if (*warned < 0 && wc > 0 && e->kind != BK_PLAIN && e->kind != BK_CKPT) {
		*warned = i;
		*nwarn = wc;
	}
	return 0;
}

/* Reads every result of the batch just sent; the first failure (a server
 * error, a row count, a warning) is the batch's error. */
static int batch_results(struct ls_mytarget *t, const struct batch *b, struct ls_err *err)
{
	MYSQL *c = t->s.conn;
	int rc = mysql_read_query_result(c) ? 1 : 0, i = 0, warned = -1, bad = 0;
	unsigned nwarn = 0;
	for (;;) {
		if (rc > 0 && bad < 0)
			return -1;   /* an earlier statement's row count failed first */
		if (rc > 0) {
			struct where w;
			if (i < b->n)
				batch_where(b, i, &w);
			return sess_error(&t->s, i < b->n ? &w : NULL, err);
		}
		if (mysql_field_count(c) > 0)
			mysql_free_result(mysql_store_result(c));
		if (i < b->n && bad == 0)
			bad = batch_check(t, b, i, &warned, &nwarn, err);
		i++;
		rc = mysql_next_result(c);
		if (rc < 0)
			break;
	}
	if (bad < 0)
		return -1;
	if (i != b->n)
		return ls_err_set(err, false, "target %s: a batch of %d statements returned %d "
				  "results", t->target, b->n, i);
	if (warned >= 0)
		return batch_warning(t, b, warned, i - 1, nwarn, err);
	return 0;
}

/* Reads the results of the outstanding batch, if any. */
static int batch_wait(struct ls_mytarget *t, struct ls_err *err)
{
	if (!t->outstanding)
		return 0;
	struct batch *b = &t->bat[!t->cur];
	if (batch_results(t, b, err) < 0) {
		fail(t);
		return -1;
	}
	t->outstanding = false;
	batch_clear(b);
	return 0;
}

/* Whether the outstanding batch's reply has arrived (reading it would not
 * wait for the server). */
static bool batch_ready(struct ls_mytarget *t)
{
	if (!t->outstanding || t->s.conn == NULL)
		return false;
	struct pollfd p = { .fd = (int)mysql_get_socket(t->s.conn), .events = POLLIN };
	return poll(&p, 1, 0) > 0;
}

/* Sends bat[cur] (after reading the outstanding batch) without waiting for
 * its results. */
static int batch_send(struct ls_mytarget *t, struct ls_err *err)
{
	struct batch *b = &t->bat[t->cur];
	if (b->n == 0 || t->failed)
		return 0;
	if (batch_wait(t, err) < 0)
		return -1;
	int rc = batch_savepoint(t, err);
	if (rc == 0 && (b->sql.oom || b->str.oom))
		rc = ls_err_set(err, false, "out of memory");
	if (rc == 0 && t->s.conn == NULL)
		rc = ls_err_set(err, true, "target %s: not connected", t->target);
	if (rc == 0 && mysql_send_query(t->s.conn, b->sql.data, (unsigned long)b->sql.len) != 0)
		rc = sess_error(&t->s, NULL, err);
	if (rc < 0) {
		fail(t);
		return -1;
	}
	t->stats.batches++;
	t->outstanding = true;
	t->cur = !t->cur;
	if (t->in_txn && !t->txn_sent)
		t->txn_mark = t->txn_str_mark = 0, t->txn_stmt_mark = 0;
	return 0;
}

/* Sends the batch and reads every result. */
static int batch_sync(struct ls_mytarget *t, struct ls_err *err)
{
	if (batch_send(t, err) < 0)
		return -1;
	return batch_wait(t, err);
}

/* Adds a statement (sql: len bytes, copied) to the batch, sending the batch
 * first when it would grow past its bounds.  keys_len: bytes of
 * w->row_keys. */
static int batch_add(struct ls_mytarget *t, enum bkind kind, const struct where *w,
		     size_t keys_len, const char *sql, size_t len, struct ls_err *err)
{
	struct batch *b = &t->bat[t->cur];
	if (b->n > 0 && (b->sql.len + 1 + len > t->max_stmt || b->n >= BATCH_STMTS)) {
		if (batch_send(t, err) < 0)
			return -1;
		b = &t->bat[t->cur];
	}
	struct bstmt *e = batch_slot(b);
	if (e == NULL) {
		fail(t);
		return ls_err_set(err, false, "out of memory");
	}
	if (b->n)
		ls_mysql_putn(&b->sql, ";", 1);
	*e = (struct bstmt){ .off = b->sql.len, .len = len, .kind = (uint8_t)kind,
			     .op = w ? w->op : NULL, .nrows = w ? w->nrows : 0,
			     .qname = batch_str(b, w ? w->qname : NULL, w && w->qname ? strlen(w->qname) : 0),
			     .key = batch_str(b, w ? w->key : NULL, w && w->key ? strlen(w->key) : 0),
			     .keys = SIZE_MAX };
	if (w && w->row_keys) {
		e->keys = b->str.len;
		ls_mysql_putn(&b->str, w->row_keys, keys_len);
	}
	ls_mysql_putn(&b->sql, sql, len);
	b->n++;
	return 0;
}

static int batch_add_str(struct ls_mytarget *t, const char *sql, struct ls_err *err)
{
	return batch_add(t, BK_PLAIN, NULL, 0, sql, strlen(sql), err);
}

/* Marks where the current source transaction starts in the batch. */
static void txn_mark(struct ls_mytarget *t)
{
	struct batch *b = &t->bat[t->cur];
	t->txn_mark = b->sql.len;
	t->txn_str_mark = b->str.len;
	t->txn_stmt_mark = b->n;
	t->txn_sent = false;
}

/* Drops the current source transaction's statements: still in the batch,
 * they are cut off; once sent, the batch rolls back to its savepoint. */
static int txn_drop(struct ls_mytarget *t, struct ls_err *err)
{
	t->ins_rel = NULL;   /* pending rows belong to this transaction */
	t->ins_rows = 0;
	net_drop_txn(t);
	if (t->txn_sent)
		return batch_add_str(t, ROLLBACK_TXN, err);
	struct batch *b = &t->bat[t->cur];
	b->sql.len = t->txn_mark;
	if (b->sql.data)
		b->sql.data[t->txn_mark] = '\0';
	b->str.len = t->txn_str_mark;
	b->n = t->txn_stmt_mark;
	return 0;
}

/* Runs a statement of the apply connection (after the batch); fails the
 * target on error. */
static int run(struct ls_mytarget *t, const char *sql, size_t len, const struct where *w,
	       MYSQL_RES **res, struct ls_err *err)
{
	if (batch_sync(t, err) < 0)
		return -1;
	if (sess_query(&t->s, sql, len, w, res, err) < 0) {
		fail(t);
		return -1;
	}
	return 0;
}

static int run_str(struct ls_mytarget *t, const char *sql, struct ls_err *err)
{
	return run(t, sql, strlen(sql), NULL, NULL, err);
}

/* ---- pending multi-row INSERT ------------------------------------------------- */

static int flush_inserts(struct ls_mytarget *t, struct ls_err *err)
{
	if (t->ins_rel == NULL)
		return 0;
	struct trel *r = t->ins_rel;
	t->ins_rel = NULL;
	if (t->ins.oom || t->ins_keys.oom)
		return ls_err_set(err, false, "out of memory");
	struct where w = { .qname = r->qname, .op = "INSERT", .row_keys = t->ins_keys.data,
			   .nrows = t->ins_rows };
	if (t->ins_rows == 1)
		w.key = t->ins_keys.data;
	t->group_stmts++;
	t->ins_rows = 0;
	return batch_add(t, BK_INSERT, &w, t->ins_keys.len, t->ins.data, t->ins.len, err);
}

static void insert_head(struct ls_mysql_buf *b, const struct trel *r)
{
	ls_mysql_printf(b, "INSERT INTO %s (", r->qname);
	for (int i = 0; i < r->src->ncols; i++) {
		if (i)
			ls_mysql_put(b, ", ");
		ls_mysql_ident(b, r->src->cols[i].name);
	}
	ls_mysql_put(b, ") VALUES ");
}

/* Appends "(v1, v2, ...)" for tup. */
static int row_values(struct sess *s, struct ls_mysql_buf *b, struct ls_mysql_buf *tmp,
		      const struct ls_relation *rel, const struct ls_mysql_coltype *ct,
		      const struct ls_tuple *tup, const char *key, struct ls_err *err)
{
	ls_mysql_put(b, "(");
	for (int i = 0; i < rel->ncols; i++) {
		if (i)
			ls_mysql_put(b, ", ");
		if (put_value(s, b, tmp, rel, &ct[i], i, &tup->vals[i], key, err) < 0)
			return -1;
	}
	ls_mysql_put(b, ")");
	return 0;
}

static int insert_row(struct ls_mytarget *t, struct trel *r, const struct ls_change *ch,
		      struct ls_err *err)
{
	if (t->ins_rel != r && flush_inserts(t, err) < 0)
		return -1;
	char key[100];
	key_text(key, sizeof key, r->src, &ch->new_tup);
	if (t->ins_rel == NULL) {
		ls_mysql_buf_reset(&t->ins);
		ls_mysql_buf_reset(&t->ins_keys);
		insert_head(&t->ins, r);
		t->ins_rel = r;
	} else {
		ls_mysql_put(&t->ins, ", ");
	}
	if (row_values(&t->s, &t->ins, &t->val, r->src, r->ct, &ch->new_tup, key, err) < 0)
		return -1;
	ls_mysql_putn(&t->ins_keys, key, strlen(key) + 1);
	t->ins_rows++;
	return t->ins.len >= t->max_stmt ? flush_inserts(t, err) : 0;
}

/* ---- net row changes (my_netrows.h) ---------------------------------------------- */

/* A group's net rows go out at commit, or earlier when this many keys (or
 * four statements' worth of bytes) collected. */
#define NET_MAX_KEYS 8192

static void net_forget(struct ls_mytarget *t)
{
	ls_mynet_clear(t->net);
	ls_mynet_free(t->net_shadow);
	t->net_shadow = NULL;
}

/* The current source transaction is dropped: its net changes go; when it
 * had spilled the net rows into the batch (dropped with it), the group's
 * part comes back from the shadow. */
static void net_drop_txn(struct ls_mytarget *t)
{
	if (t->net_shadow == NULL) {
		ls_mynet_drop_txn(t->net);
		return;
	}
	ls_mynet_free(t->net);
	t->net = t->net_shadow;
	t->net_shadow = NULL;
}

/* The current source transaction ended: its changes join the group's. */
static void net_end_txn(struct ls_mytarget *t)
{
	ls_mynet_end_txn(t->net);
	ls_mynet_free(t->net_shadow);
	t->net_shadow = NULL;
}

/* Whether tables keyed like r may fold: a key, and the target table has no
 * other unique index (rows with different keys then never collide, so
 * their changes commute). */
static int net_eligible(struct ls_mytarget *t, struct trel *r, struct ls_err *err)
{
	r->net = false;
	if (r->src->replident == LS_REPLIDENT_FULL || ls_relation_nkeys(r->src) == 0)
		return 0;
	MYSQL_RES *res;
	if (catalog(t, "SELECT COUNT(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS",
		    r->src, " AND NON_UNIQUE = 0", &res, err) < 0)
		return -1;
	MYSQL_ROW row = mysql_fetch_row(res);
	r->net = row && row[0] && strcmp(row[0], "1") == 0;
	mysql_free_result(res);
	return 0;
}

/* The key columns' values of tup as SQL literals, ", "-separated: the
 * key's identity (the same values always render the same bytes). */
static int net_key(struct ls_mytarget *t, struct trel *r, const struct ls_tuple *tup,
		   const char *key, struct ls_mysql_buf *b, struct ls_err *err)
{
	const struct ls_relation *s = r->src;
	ls_mysql_buf_reset(b);
	bool first = true;
	for (int i = 0; i < s->ncols; i++) {
		if (!(s->cols[i].flags & LS_COL_KEY))
			continue;
		const struct ls_value *v = &tup->vals[i];
		if (v->kind == LS_VAL_NULL || v->kind == LS_VAL_UNCHANGED)
			return ls_err_set(err, false, "target %s: %s key column %s has no value",
					  t->target, r->qname, s->cols[i].name);
		if (!first)
			ls_mysql_put(b, ", ");
		first = false;
		if (put_value(&t->s, b, &t->val, s, &r->ct[i], i, v, key, err) < 0)
			return -1;
	}
	return b->oom ? ls_err_set(err, false, "out of memory") : 0;
}

/* Statements being built from the net rows of one table. */
struct netb {
	struct ls_mytarget *t;
	struct trel *r;
	struct ls_mysql_buf del, ins, ups, ins_keys, ups_keys;
	int ndel, nins, nups;
	struct ls_err *err;
};

static void net_key_cols(struct ls_mysql_buf *b, const struct ls_relation *s)
{
	int nk = ls_relation_nkeys(s), k = 0;
	if (nk > 1)
		ls_mysql_put(b, "(");
	for (int i = 0; i < s->ncols; i++) {
		if (!(s->cols[i].flags & LS_COL_KEY))
			continue;
		if (k++)
			ls_mysql_put(b, ", ");
		ls_mysql_ident(b, s->cols[i].name);
	}
	if (nk > 1)
		ls_mysql_put(b, ")");
}

/* MySQL 8.0.20 deprecates VALUES() in ON DUPLICATE KEY UPDATE (a warning,
 * an error here); the row alias replaces it from 8.0.19. */
static void upsert_tail(struct ls_mytarget *t, struct ls_mysql_buf *b, const struct ls_relation *s)
{
	bool alias = !t->s.mariadb && mysql_get_server_version(t->s.conn) >= 80019;
	ls_mysql_put(b, alias ? " AS ls_new ON DUPLICATE KEY UPDATE " : " ON DUPLICATE KEY UPDATE ");
	int n = 0;
	for (int i = 0; i < s->ncols; i++) {
		if (s->cols[i].flags & LS_COL_KEY)
			continue;
		if (n++)
			ls_mysql_put(b, ", ");
		ls_mysql_ident(b, s->cols[i].name);
		ls_mysql_put(b, alias ? " = ls_new." : " = VALUES(");
		ls_mysql_ident(b, s->cols[i].name);
		if (!alias)
			ls_mysql_put(b, ")");
	}
	if (n == 0) {   /* only key columns: an existing row is already right */
		for (int i = 0; i < s->ncols && n == 0; i++)
			if (s->cols[i].flags & LS_COL_KEY) {
				ls_mysql_ident(b, s->cols[i].name);
				ls_mysql_put(b, " = ");
				ls_mysql_ident(b, s->cols[i].name);
				n++;
			}
	}
}

/* Adds what collected for nb->r to the batch. */
static int netb_emit(struct netb *nb)
{
	struct ls_mytarget *t = nb->t;
	struct trel *r = nb->r;
	int rc = 0;
	if (nb->del.oom || nb->ins.oom || nb->ups.oom || nb->ins_keys.oom || nb->ups_keys.oom)
		return ls_err_set(nb->err, false, "out of memory");
	if (nb->ndel) {
		ls_mysql_put(&nb->del, ")");
		struct where w = { .qname = r->qname, .op = "DELETE", .nrows = nb->ndel };
		rc = nb->del.oom ? ls_err_set(nb->err, false, "out of memory")
				 : batch_add(t, BK_NETDEL, &w, 0, nb->del.data, nb->del.len, nb->err);
		t->group_stmts++;
	}
	if (rc == 0 && nb->nins) {
		struct where w = { .qname = r->qname, .op = "INSERT", .row_keys = nb->ins_keys.data,
				   .nrows = nb->nins };
		rc = batch_add(t, BK_INSERT, &w, nb->ins_keys.len, nb->ins.data, nb->ins.len, nb->err);
		t->group_stmts++;
	}
	if (rc == 0 && nb->nups) {
		upsert_tail(t, &nb->ups, r->src);
		struct where w = { .qname = r->qname, .op = "UPDATE", .row_keys = nb->ups_keys.data,
				   .nrows = nb->nups };
		rc = nb->ups.oom ? ls_err_set(nb->err, false, "out of memory")
				 : batch_add(t, BK_UPSERT, &w, nb->ups_keys.len, nb->ups.data,
					     nb->ups.len, nb->err);
		t->group_stmts++;
	}
	ls_mysql_buf_reset(&nb->del);
	ls_mysql_buf_reset(&nb->ins);
	ls_mysql_buf_reset(&nb->ups);
	ls_mysql_buf_reset(&nb->ins_keys);
	ls_mysql_buf_reset(&nb->ups_keys);
	nb->ndel = nb->nins = nb->nups = 0;
	return rc;
}

static int netb_row(const struct ls_mynet_row *row, void *ctx)
{
	struct netb *nb = ctx;
	if (nb->r != row->rel && nb->r != NULL && netb_emit(nb) < 0)
		return -1;
	nb->r = (struct trel *)row->rel;
	const struct ls_relation *s = nb->r->src;
	bool multi = ls_relation_nkeys(s) > 1;
	if (row->state == LS_MYNET_DEL) {
		if (nb->ndel++ == 0) {
			ls_mysql_printf(&nb->del, "DELETE FROM %s WHERE ", nb->r->qname);
			net_key_cols(&nb->del, s);
			ls_mysql_put(&nb->del, " IN (");
		} else {
			ls_mysql_put(&nb->del, ", ");
		}
		ls_mysql_put(&nb->del, multi ? "(" : "");
		ls_mysql_putn(&nb->del, row->key, row->klen);
		ls_mysql_put(&nb->del, multi ? ")" : "");
	} else {
		/* row bytes: the key as errors show it, NUL, the value list */
		size_t dl = strlen(row->row);
		struct ls_mysql_buf *b = row->fresh ? &nb->ins : &nb->ups;
		struct ls_mysql_buf *keys = row->fresh ? &nb->ins_keys : &nb->ups_keys;
		int *n = row->fresh ? &nb->nins : &nb->nups;
		if ((*n)++ == 0)
			insert_head(b, nb->r);
		else
			ls_mysql_put(b, ", ");
		ls_mysql_putn(b, row->row + dl + 1, row->rlen - dl - 1);
		ls_mysql_putn(keys, row->row, dl + 1);
	}
	if (nb->del.len >= nb->t->max_stmt || nb->ins.len >= nb->t->max_stmt ||
	    nb->ups.len >= nb->t->max_stmt)
		return netb_emit(nb) < 0 ? -1 : 0;
	return 0;
}

/* Puts the net rows into the batch and forgets them.  Inside a source
 * transaction the batch then holds the group's part after that
 * transaction's start, so the group's part is kept (net_shadow) until the
 * transaction ends, in case it is dropped. */
static int net_flush(struct ls_mytarget *t, struct ls_err *err)
{
	if (ls_mynet_count(t->net) == 0)
		return 0;
	struct netb nb = { .t = t, .err = err };
	int rc = ls_mynet_each(t->net, netb_row, &nb);
	if (rc == 0 && nb.r != NULL)
		rc = netb_emit(&nb);
	ls_mysql_buf_free(&nb.del);
	ls_mysql_buf_free(&nb.ins);
	ls_mysql_buf_free(&nb.ups);
	ls_mysql_buf_free(&nb.ins_keys);
	ls_mysql_buf_free(&nb.ups_keys);
	if (rc < 0) {
		fail(t);
		return -1;
	}
	if (!t->in_txn || t->net_shadow != NULL) {
		ls_mynet_clear(t->net);
		return 0;
	}
	struct ls_mynet *fresh = ls_mynet_new();
	if (fresh == NULL) {
		fail(t);
		return ls_err_set(err, false, "out of memory");
	}
	ls_mynet_drop_txn(t->net);
	t->net_shadow = t->net;
	t->net = fresh;
	return 0;
}

static int net_put(struct ls_mytarget *t, struct trel *r, const struct ls_mysql_buf *key,
		   enum ls_mynet_state state, const struct ls_mysql_buf *row, bool inserted,
		   struct ls_err *err)
{
	if (ls_mynet_put(t->net, r, key->data, key->len, state, row ? row->data : NULL,
			 row ? row->len : 0, inserted) < 0)
		return ls_err_set(err, false, "out of memory");
	if (ls_mynet_count(t->net) >= NET_MAX_KEYS || ls_mynet_bytes(t->net) >= 4 * t->max_stmt)
		return net_flush(t, err);
	return 0;
}

/* Whether ch can fold: a full new row (no unchanged TOASTed column) and
 * an old identity where one is needed. */
static bool net_can_fold(const struct trel *r, const struct ls_change *ch)
{
	if (!r->net)
		return false;
	if (ch->op == LS_OP_DELETE)
		return ch->old_kind != LS_OLD_NONE && ch->old_tup.ncols == r->src->ncols;
	if (ch->new_tup.ncols != r->src->ncols ||
	    (ch->old_kind != LS_OLD_NONE && ch->old_tup.ncols != r->src->ncols))
		return false;
	for (uint32_t i = 0; i < ch->new_tup.ncols; i++)
		if (ch->new_tup.vals[i].kind == LS_VAL_UNCHANGED)
			return false;
	return true;
}

/* Folds an INSERT, UPDATE or DELETE (net_can_fold) into the net rows. */
static int net_change(struct ls_mytarget *t, struct trel *r, const struct ls_change *ch,
		      struct ls_err *err)
{
	const struct ls_relation *s = r->src;
	const struct ls_tuple *old = ch->old_kind != LS_OLD_NONE ? &ch->old_tup : &ch->new_tup;
	char key[100];
	key_text(key, sizeof key, s, ch->op == LS_OP_INSERT ? &ch->new_tup : old);
	if (ch->op == LS_OP_DELETE)
		return net_key(t, r, old, key, &t->nkey, err) < 0 ? -1
			: net_put(t, r, &t->nkey, LS_MYNET_DEL, NULL, false, err);
	ls_mysql_buf_reset(&t->nrow);
	ls_mysql_putn(&t->nrow, key, strlen(key) + 1);   /* see netb_row */
	if (row_values(&t->s, &t->nrow, &t->val, s, r->ct, &ch->new_tup, key, err) < 0 ||
	    net_key(t, r, &ch->new_tup, key, &t->nkey, err) < 0)
		return -1;
	if (t->nrow.oom)
		return ls_err_set(err, false, "out of memory");
	if (ch->op == LS_OP_INSERT || old == &ch->new_tup)   /* no old tuple: same key */
		return net_put(t, r, &t->nkey, LS_MYNET_ROW, &t->nrow, ch->op == LS_OP_INSERT,
			       err);
	if (net_key(t, r, old, key, &t->nkey2, err) < 0)
		return -1;
	bool moved = t->nkey.len != t->nkey2.len ||
		     memcmp(t->nkey.data, t->nkey2.data, t->nkey.len) != 0;
	if (!moved)
		return net_put(t, r, &t->nkey, LS_MYNET_ROW, &t->nrow, false, err);
	/* the key changed: the old key's row is gone, the new key's is born */
	if (net_put(t, r, &t->nkey2, LS_MYNET_DEL, NULL, false, err) < 0)
		return -1;
	return net_put(t, r, &t->nkey, LS_MYNET_ROW, &t->nrow, true, err);
}

/* ---- groups ----------------------------------------------------------------------- */

static int open_group(struct ls_mytarget *t, struct ls_err *err)
{
	if (t->in_group)
		return 0;
	if (batch_add_str(t, "START TRANSACTION", err) < 0)
		return -1;
	t->in_group = true;
	t->group_start_ms = now_ms();
	t->group_rows = t->group_txns = t->group_missing = t->group_stmts = 0;
	return 0;
}

/* Updates the checkpoint, commits, reports the committed position. */
static int commit_group(struct ls_mytarget *t, struct ls_err *err)
{
	if (!t->in_group)
		return 0;
	if (flush_inserts(t, err) < 0 || net_flush(t, err) < 0)
		return -1;
	if (t->group_txns > 0) {
		ls_mysql_buf_reset(&t->sql);
		ls_mysql_printf(&t->sql, "UPDATE lockstep.checkpoint SET buffer_offset = %lld,"
				" source_seq = %llu, source_pos = ", (long long)t->group_offset,
				(unsigned long long)t->group_pos.seq);
		put_literal(&t->s, &t->sql, t->group_pos.text, strlen(t->group_pos.text));
		ls_mysql_put(&t->sql, ", applied_at = UTC_TIMESTAMP(6)");
		ckpt_where(t, &t->sql);
		if (t->sql.oom) {
			fail(t);
			return ls_err_set(err, false, "out of memory");
		}
		if (batch_add(t, BK_CKPT, NULL, 0, t->sql.data, t->sql.len, err) < 0)
			return -1;
	}
	/* COMMIT goes alone, after every result of the batch was checked: a
	 * row count or a warning does not stop a multi-statement batch */
	if (run_str(t, "COMMIT", err) < 0)
		return -1;
	t->in_group = false;
	t->stats.commits++;
	t->stats.rows += (uint64_t)t->group_rows;
	t->stats.missing_rows += (uint64_t)t->group_missing;
	t->stats.statements += (uint64_t)t->group_stmts;
	if (t->group_txns == 0)
		return 0;
	t->stats.txns += (uint64_t)t->group_txns;
	t->ckpt.present = true;
	t->ckpt.buffer_offset = t->group_offset;
	t->ckpt.source_seq = t->group_pos.seq;
	snprintf(t->ckpt.source_pos, sizeof t->ckpt.source_pos, "%s", t->group_pos.text);
	if (t->o.on_commit)
		t->o.on_commit(t->o.ctx, t->group_offset, &t->group_pos);
	return 0;
}

int ls_mytarget_begin(struct ls_mytarget *t, const struct ls_txn *txn, struct ls_err *err)
{
	if (usable(t, err) < 0)
		return -1;
	if (t->in_txn)
		return ls_err_set(err, false, "target %s: begin inside a transaction", t->target);
	if (open_group(t, err) < 0)
		return -1;
	txn_mark(t);
	t->in_txn = true;
	t->txn_rows = 0;
	t->txn_seq = txn ? txn->commit.seq : 0;
	return 0;
}

int ls_mytarget_abort_txn(struct ls_mytarget *t, struct ls_err *err)
{
	if (usable(t, err) < 0)
		return -1;
	if (!t->in_txn)
		return ls_err_set(err, false, "target %s: abort outside a transaction", t->target);
	if (txn_drop(t, err) < 0)
		return -1;
	t->group_rows -= t->txn_rows;
	t->txn_rows = 0;
	t->in_txn = false;
	t->stats.aborted_txns++;
	return 0;
}

int ls_mytarget_end(struct ls_mytarget *t, const struct ls_txn *txn, int64_t buffer_offset,
		    struct ls_err *err)
{
	if (usable(t, err) < 0)
		return -1;
	if (!t->in_txn)
		return ls_err_set(err, false, "target %s: end outside a transaction", t->target);
	/* a later transaction's savepoint or drop must not cover these rows */
	if (flush_inserts(t, err) < 0)
		return -1;
	net_end_txn(t);
	t->in_txn = false;
	t->group_txns++;
	t->group_offset = buffer_offset;
	t->group_pos = txn->commit;
	if (t->group_rows >= t->o.batch_rows || now_ms() - t->group_start_ms >= t->o.batch_ms)
		return commit_group(t, err);
	/* keep the server busy: send what collected as soon as it is idle */
	if (!t->outstanding || batch_ready(t))
		return batch_send(t, err);
	return 0;
}

int ls_mytarget_flush(struct ls_mytarget *t, struct ls_err *err)
{
	if (usable(t, err) < 0)
		return -1;
	if (t->in_txn)
		return ls_err_set(err, false, "target %s: flush inside a transaction", t->target);
	return commit_group(t, err);
}

int ls_mytarget_tick(struct ls_mytarget *t, int *wait_ms, struct ls_err *err)
{
	if (wait_ms)
		*wait_ms = -1;
	if (usable(t, err) < 0)
		return -1;
	if (!t->in_group)
		return 0;
	int64_t left = t->group_start_ms + t->o.batch_ms - now_ms();
	if (left <= 0 && !t->in_txn)
		return commit_group(t, err);
	if (wait_ms)
		*wait_ms = left > 0 ? (int)left : 0;
	return 0;
}

/* ---- DDL outside groups ---------------------------------------------------------- */

/* Runs NUL-separated DDL statements (n of them) outside any group, since
 * MySQL commits implicitly before DDL.  The group's finished transactions
 * commit first; a current source transaction that already changed rows is
 * rolled back and the call fails retryably so it is replayed. */
static int run_ddl(struct ls_mytarget *t, struct trel *r, const char *stmts, int n,
		   struct ls_err *err)
{
	bool was_txn = t->in_txn, mid = t->in_txn && (t->txn_rows > 0 || t->ins_rel);
	if (mid && t->ddl_replay_seq == t->txn_seq && t->txn_seq != 0) {
		fail(t);
		return ls_err_set(err, false, "target %s: table %s changed again while replaying "
				  "source transaction %llu; MySQL DDL commits implicitly, so it "
				  "cannot be applied inside that transaction", t->target, r->qname,
				  (unsigned long long)t->txn_seq);
	}
	if (mid) {
		if (txn_drop(t, err) < 0)
			return -1;
		t->group_rows -= t->txn_rows;
	}
	t->in_txn = false;
	if (commit_group(t, err) < 0)
		return -1;
	struct where w = { .qname = r->qname, .op = "DDL", .ddl = true };
	for (const char *p = stmts; n-- > 0; p += strlen(p) + 1) {
		if (run(t, p, strlen(p), &w, NULL, err) < 0)
			return -1;
		t->stats.ddl++;
	}
	if (mid) {
		t->ddl_replay_seq = t->txn_seq;
		fail(t);
		return ls_err_set(err, true, "target %s: table %s changed in the middle of source "
				  "transaction %llu; the DDL is applied, replaying the transaction "
				  "from the checkpoint", t->target, r->qname,
				  (unsigned long long)t->txn_seq);
	}
	if (was_txn) {
		if (open_group(t, err) < 0)
			return -1;
		txn_mark(t);
		t->in_txn = true;
	}
	return 0;
}

/* ---- relations ----------------------------------------------------------------------- */

static struct trel *find_rel(struct ls_mytarget *t, uint32_t id)
{
	for (struct trel *r = t->rels; r; r = r->next)
		if (r->src->id == id)
			return r;
	return NULL;
}

static bool rel_equal(const struct ls_relation *a, const struct ls_relation *b)
{
	if (a->ncols != b->ncols || a->replident != b->replident ||
	    strcmp(a->schema, b->schema) != 0 || strcmp(a->name, b->name) != 0)
		return false;
	for (int i = 0; i < a->ncols; i++)
		if (strcmp(a->cols[i].name, b->cols[i].name) != 0 ||
		    strcmp(a->cols[i].type_name ? a->cols[i].type_name : "",
			   b->cols[i].type_name ? b->cols[i].type_name : "") != 0 ||
		    a->cols[i].flags != b->cols[i].flags)
			return false;
	return true;
}

static bool key_flag(const struct ls_relation *rel, int i)
{
	return rel->replident != LS_REPLIDENT_FULL && (rel->cols[i].flags & LS_COL_KEY);
}

/* Column types of rel (malloc'd array), or NULL with err. */
static struct ls_mysql_coltype *coltypes(const char *target, const struct ls_relation *rel,
					 struct ls_err *err)
{
	struct ls_mysql_coltype *ct = calloc((size_t)rel->ncols + 1, sizeof *ct);
	if (ct == NULL) {
		ls_err_set(err, false, "out of memory");
		return NULL;
	}
	for (int i = 0; i < rel->ncols; i++)
		if (ls_mysql_coltype(&rel->cols[i], key_flag(rel, i), &ct[i], err) < 0) {
			ls_err_prefix(err, "target %s: table %s.%s column %s", target, rel->schema,
				      rel->name, rel->cols[i].name);
			free(ct);
			return NULL;
		}
	return ct;
}

/* Makes r describe rel. */
static int set_def(struct ls_mytarget *t, struct trel *r, const struct ls_relation *rel,
		   struct ls_err *err)
{
	struct ls_mysql_coltype *ct = coltypes(t->target, rel, err);
	if (ct == NULL)
		return -1;
	struct ls_relation *d = ls_relation_dup(rel);
	struct ls_mysql_buf q;
	ls_mysql_buf_init(&q);
	ls_mysql_qualified(&q, rel->schema, rel->name);
	if (d == NULL || q.oom) {
		ls_relation_free(d);
		ls_mysql_buf_free(&q);
		free(ct);
		return ls_err_set(err, false, "out of memory");
	}
	ls_relation_free(r->src);
	free(r->qname);
	free(r->ct);
	r->src = d;
	r->qname = q.data;
	r->ct = ct;
	return 0;
}

/* Runs "head WHERE TABLE_SCHEMA = '..' AND TABLE_NAME = '..' tail" for rel. */
static int catalog(struct ls_mytarget *t, const char *head, const struct ls_relation *rel,
		   const char *tail, MYSQL_RES **res, struct ls_err *err)
{
	struct ls_mysql_buf *q = &t->sql;
	ls_mysql_buf_reset(q);
	ls_mysql_put(q, head);
	ls_mysql_put(q, " WHERE TABLE_SCHEMA = ");
	put_literal(&t->s, q, rel->schema, strlen(rel->schema));
	ls_mysql_put(q, " AND TABLE_NAME = ");
	put_literal(&t->s, q, rel->name, strlen(rel->name));
	ls_mysql_put(q, tail);
	if (q->oom)
		return ls_err_set(err, false, "out of memory");
	return run(t, q->data, q->len, NULL, res, err);
}

static int table_exists(struct ls_mytarget *t, const struct ls_relation *rel, bool *exists,
			struct ls_err *err)
{
	MYSQL_RES *res;
	if (catalog(t, "SELECT 1 FROM information_schema.TABLES", rel, "", &res, err) < 0)
		return -1;
	*exists = mysql_num_rows(res) > 0;
	mysql_free_result(res);
	return 0;
}

/* Whether some unique index covers exactly rel's key columns. */
static int key_matches(struct ls_mytarget *t, const struct ls_relation *rel, bool *ok,
		       struct ls_err *err)
{
	MYSQL_RES *res;
	if (catalog(t, "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS", rel,
		    " AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX", &res, err) < 0)
		return -1;
	unsigned nkeys = ls_relation_nkeys(rel), cols = 0, hits = 0;
	char idx[80] = "";
	*ok = false;
	MYSQL_ROW row;
	for (;;) {
		row = mysql_fetch_row(res);
		if (row == NULL || strcmp(row[0], idx) != 0) {
			if (idx[0] && cols == nkeys && hits == nkeys)
				*ok = true;
			if (row == NULL)
				break;
			snprintf(idx, sizeof idx, "%s", row[0]);
			cols = hits = 0;
		}
		cols++;
		for (int i = 0; i < rel->ncols; i++)
			hits += (rel->cols[i].flags & LS_COL_KEY) && strcmp(rel->cols[i].name, row[1]) == 0;
	}
	mysql_free_result(res);
	return 0;
}

/* Compares the live table with r's definition: every mismatch goes to mism
 * ("; "-separated); columns missing on the target are counted in *missing
 * and their ADD COLUMN statements appended to adds; *extra counts target
 * columns that `gone` (may be NULL) has and r's definition does not. */
static int compare_table(struct ls_mytarget *t, struct trel *r, const struct ls_relation *gone,
			 struct ls_mysql_buf *mism, int *missing, struct ls_mysql_buf *adds,
			 int *extra, struct ls_err *err)
{
	const struct ls_relation *s = r->src;
	MYSQL_RES *res;
	if (catalog(t, "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS", s,
		    " ORDER BY ORDINAL_POSITION", &res, err) < 0)
		return -1;
	*missing = *extra = 0;
	unsigned nrows = (unsigned)mysql_num_rows(res);
	char **names = calloc(nrows + 1, sizeof *names), **types = calloc(nrows + 1, sizeof *types);
	MYSQL_ROW row;
	for (unsigned j = 0; names && types && (row = mysql_fetch_row(res)) != NULL; j++) {
		names[j] = strdup(row[0]);
		types[j] = strdup(row[1] ? row[1] : "");
	}
	mysql_free_result(res);
	for (int i = 0; names && types && i < s->ncols; i++) {
		int found = -1;
		for (unsigned j = 0; j < nrows && found < 0; j++)
			if (names[j] && strcmp(names[j], s->cols[i].name) == 0)
				found = (int)j;
		const char *sep = mism->len ? "; " : "";
		if (found < 0) {
			ls_mysql_printf(mism, "%scolumn %s (%s) missing", sep, s->cols[i].name,
					s->cols[i].type_name);
			(*missing)++;
			ls_mysql_printf(adds, "ALTER TABLE %s ADD COLUMN ", r->qname);
			ls_mysql_ident(adds, s->cols[i].name);
			ls_mysql_printf(adds, " %s", r->ct[i].sql);
			ls_mysql_putn(adds, "", 1);
		} else if (types[found] && !ls_mysql_type_compatible(r->ct[i].sql, types[found])) {
			ls_mysql_printf(mism, "%scolumn %s is %s, source has %s (needs %s)", sep,
					s->cols[i].name, types[found], s->cols[i].type_name,
					r->ct[i].sql);
		}
	}
	for (unsigned j = 0; gone && names && j < nrows; j++) {
		bool in_new = false, in_old = false;
		for (int i = 0; i < s->ncols; i++)
			in_new |= names[j] && strcmp(names[j], s->cols[i].name) == 0;
		for (int i = 0; i < gone->ncols; i++)
			in_old |= names[j] && strcmp(names[j], gone->cols[i].name) == 0;
		*extra += in_old && !in_new;
	}
	bool oom = names == NULL || types == NULL;
	for (unsigned j = 0; names && types && j < nrows; j++) {
		oom |= names[j] == NULL || types[j] == NULL;
		free(names[j]);
		free(types[j]);
	}
	free(names);
	free(types);
	if (oom)
		return ls_err_set(err, false, "out of memory");
	if (s->replident == LS_REPLIDENT_FULL)
		return 0;
	bool ok;
	if (key_matches(t, s, &ok, err) < 0)
		return -1;
	if (!ok) {
		ls_mysql_printf(mism, "%sno primary key or unique index on (", mism->len ? "; " : "");
		bool first = true;
		for (int i = 0; i < s->ncols; i++)
			if (s->cols[i].flags & LS_COL_KEY) {
				ls_mysql_printf(mism, "%s%s", first ? "" : ", ", s->cols[i].name);
				first = false;
			}
		ls_mysql_put(mism, ")");
	}
	return 0;
}

/* First sight on this connection: create the table or check it. */
static int check_table(struct ls_mytarget *t, struct trel *r, struct ls_err *err)
{
	const struct ls_relation *s = r->src;
	if (s->replident != LS_REPLIDENT_FULL && ls_relation_nkeys(s) == 0)
		return ls_err_set(err, false, "target %s: table %s.%s has no primary key or replica "
				  "identity index; add one or set REPLICA IDENTITY FULL on the "
				  "source", t->target, s->schema, s->name);
	bool exists;
	if (table_exists(t, s, &exists, err) < 0)
		return -1;
	if (!exists && !t->o.create_tables)
		return ls_err_set(err, false, "target %s: table %s.%s does not exist and "
				  "create_tables is off", t->target, s->schema, s->name);
	struct ls_mysql_buf ddl, mism;
	ls_mysql_buf_init(&ddl);
	ls_mysql_buf_init(&mism);
	int rc = 0;
	if (!exists) {
		ls_mysql_put(&ddl, "CREATE DATABASE IF NOT EXISTS ");
		ls_mysql_ident(&ddl, s->schema);
		ls_mysql_putn(&ddl, "", 1);
		rc = ls_mysql_create_table(&ddl, s, t->s.mariadb ? "utf8mb4_nopad_bin" : "utf8mb4_bin",
					   err);
		if (rc < 0)
			ls_err_prefix(err, "target %s", t->target);
		else
			rc = run_ddl(t, r, ddl.data, 2, err);
	} else {
		int missing, extra;
		rc = compare_table(t, r, NULL, &mism, &missing, &ddl, &extra, err);
		/* only missing columns under ddl = apply: add them, compare again */
		bool only_missing = rc == 0 && missing > 0 && t->o.ddl == LS_DDL_APPLY &&
				    strstr(ls_mysql_buf_str(&mism), " is ") == NULL &&
				    strstr(ls_mysql_buf_str(&mism), "no primary key") == NULL;
		if (only_missing) {
			rc = run_ddl(t, r, ddl.data, missing, err);
			ls_mysql_buf_reset(&mism);
			ls_mysql_buf_reset(&ddl);
			if (rc == 0)
				rc = compare_table(t, r, NULL, &mism, &missing, &ddl, &extra, err);
		}
		if (rc == 0 && mism.len)
			rc = ls_err_set(err, false, "target %s: table %s.%s does not match the "
					"source: %s", t->target, s->schema, s->name,
					ls_mysql_buf_str(&mism));
	}
	if (rc == 0 && (ddl.oom || mism.oom))
		rc = ls_err_set(err, false, "out of memory");
	ls_mysql_buf_free(&ddl);
	ls_mysql_buf_free(&mism);
	if (rc == 0)
		rc = net_eligible(t, r, err);
	if (rc == 0)
		r->checked = true;
	return rc;
}

/* A known relation changed: DDL on the source.  Skipped when the live
 * table already has the new shape (a replay after the DDL ran). */
static int apply_ddl(struct ls_mytarget *t, struct trel *r, const struct ls_relation *rel,
		     struct ls_err *err)
{
	struct ls_relation *old = ls_relation_dup(r->src);
	struct ls_mysql_buf stmts, descr, mism, adds;
	ls_mysql_buf_init(&stmts);
	ls_mysql_buf_init(&descr);
	ls_mysql_buf_init(&mism);
	ls_mysql_buf_init(&adds);
	int n = 0, rc = old ? 0 : ls_err_set(err, false, "out of memory");
	if (rc == 0 && ls_mysql_ddl(&stmts, &descr, old, rel, t->s.mariadb, &n, err) < 0)
		rc = ls_err_prefix(err, "target %s", t->target);
	if (rc == 0 && n > 0 && t->o.ddl == LS_DDL_STOP)
		rc = ls_err_set(err, false, "target %s: table %s.%s changed on the source (%s) "
				"and ddl = stop; stopped at the checkpoint (source position %s)",
				t->target, rel->schema, rel->name, ls_mysql_buf_str(&descr),
				t->ckpt.present ? t->ckpt.source_pos : "none");
	if (rc == 0)
		rc = set_def(t, r, rel, err);
	if (rc == 0 && n > 0) {
		int missing, extra;
		rc = compare_table(t, r, old, &mism, &missing, &adds, &extra, err);
		bool done = rc == 0 && mism.len == 0 && extra == 0;
		if (rc == 0 && !done)
			rc = run_ddl(t, r, stmts.data, n, err);
	}
	if (rc == 0 && (stmts.oom || descr.oom || mism.oom || adds.oom))
		rc = ls_err_set(err, false, "out of memory");
	ls_mysql_buf_free(&stmts);
	ls_mysql_buf_free(&descr);
	ls_mysql_buf_free(&mism);
	ls_mysql_buf_free(&adds);
	ls_relation_free(old);
	if (rc < 0)
		return -1;
	r->checked = false;
	return check_table(t, r, err);
}

static int see_relation(struct ls_mytarget *t, const struct ls_relation *rel, struct ls_err *err)
{
	struct trel *r = find_rel(t, rel->id);
	if (r && r->checked && rel_equal(r->src, rel))
		return 0;
	if (flush_inserts(t, err) < 0)
		return -1;
	if (r && r->checked)   /* net rows were rendered with the old columns */
		return net_flush(t, err) < 0 ? -1 : apply_ddl(t, r, rel, err);
	if (r == NULL) {
		r = calloc(1, sizeof *r);
		if (r == NULL)
			return ls_err_set(err, false, "out of memory");
		if (set_def(t, r, rel, err) < 0) {
			free(r);
			return -1;
		}
		r->next = t->rels;
		t->rels = r;
	} else if (!rel_equal(r->src, rel) && set_def(t, r, rel, err) < 0) {
		return -1;
	}
	return check_table(t, r, err);
}

int ls_mytarget_relation(struct ls_mytarget *t, const struct ls_relation *rel,
			 struct ls_err *err)
{
	if (usable(t, err) < 0)
		return -1;
	if (see_relation(t, rel, err) < 0) {
		fail(t);
		return -1;
	}
	return 0;
}

/* ---- changes ---------------------------------------------------------------------- */

/* Appends the WHERE clause identifying the row of w (old or new tuple). */
static int where_sql(struct ls_mytarget *t, struct trel *r, const struct ls_tuple *w,
		     const char *key, struct ls_mysql_buf *b, struct ls_err *err)
{
	const struct ls_relation *s = r->src;
	bool full = s->replident == LS_REPLIDENT_FULL, first = true;
	ls_mysql_put(b, " WHERE ");
	for (int i = 0; i < s->ncols; i++) {
		const struct ls_value *v = &w->vals[i];
		if (full ? v->kind == LS_VAL_UNCHANGED : !(s->cols[i].flags & LS_COL_KEY))
			continue;
		if (!full && (v->kind == LS_VAL_NULL || v->kind == LS_VAL_UNCHANGED))
			return ls_err_set(err, false, "target %s: %s key column %s has no value",
					  t->target, r->qname, s->cols[i].name);
		if (!first)
			ls_mysql_put(b, " AND ");
		first = false;
		ls_mysql_ident(b, s->cols[i].name);
		ls_mysql_put(b, full ? " <=> " : " = ");
		if (put_value(&t->s, b, &t->val, s, &r->ct[i], i, v, key, err) < 0)
			return -1;
	}
	if (first)
		return ls_err_set(err, false, "target %s: %s: nothing identifies the row",
				  t->target, r->qname);
	if (full)
		ls_mysql_put(b, " LIMIT 1");
	return 0;
}

static int update_delete(struct ls_mytarget *t, struct trel *r, const struct ls_change *ch,
			 struct ls_err *err)
{
	const struct ls_relation *s = r->src;
	bool full = s->replident == LS_REPLIDENT_FULL;
	const struct ls_tuple *w = ch->old_kind != LS_OLD_NONE ? &ch->old_tup : &ch->new_tup;
	const char *op = ch->op == LS_OP_UPDATE ? "UPDATE" : "DELETE";
	if (ch->old_kind == LS_OLD_NONE && (ch->op == LS_OP_DELETE || full))
		return ls_err_set(err, false, "target %s: %s %s without the old row's identity",
				  t->target, op, r->qname);
	if (w->ncols != s->ncols || (ch->op == LS_OP_UPDATE && ch->new_tup.ncols != s->ncols))
		return ls_err_set(err, false, "target %s: %s %s: tuple has %u columns, relation %u",
				  t->target, op, r->qname, w->ncols, s->ncols);
	char key[100];
	key_text(key, sizeof key, s, w);
	struct ls_mysql_buf *b = &t->sql;
	ls_mysql_buf_reset(b);
	if (ch->op == LS_OP_UPDATE) {
		ls_mysql_printf(b, "UPDATE %s SET ", r->qname);
		int nset = 0;
		for (int i = 0; i < s->ncols; i++) {
			const struct ls_value *v = &ch->new_tup.vals[i];
			if (v->kind == LS_VAL_UNCHANGED)
				continue;
			if (nset++)
				ls_mysql_put(b, ", ");
			ls_mysql_ident(b, s->cols[i].name);
			ls_mysql_put(b, " = ");
			if (put_value(&t->s, b, &t->val, s, &r->ct[i], i, v, key, err) < 0)
				return -1;
		}
		if (nset == 0)
			return 0;   /* only unchanged columns: nothing to set */
	} else {
		ls_mysql_printf(b, "DELETE FROM %s", r->qname);
	}
	if (where_sql(t, r, w, key, b, err) < 0)
		return -1;
	if (b->oom)
		return ls_err_set(err, false, "out of memory");
	struct where wh = { .qname = r->qname, .op = op, .key = key };
	t->group_stmts++;
	return batch_add(t, BK_ROWS, &wh, 0, b->data, b->len, err);
}

static int truncate_rels(struct ls_mytarget *t, const struct ls_change *ch, struct ls_err *err)
{
	for (uint32_t i = 0; i < ch->nrelids; i++) {
		struct trel *r = find_rel(t, ch->relids[i]);
		if (r == NULL)
			return ls_err_set(err, false, "target %s: TRUNCATE of unknown relation id %u",
					  t->target, ch->relids[i]);
		ls_mysql_buf_reset(&t->sql);
		ls_mysql_printf(&t->sql, "DELETE FROM %s", r->qname);
		struct where w = { .qname = r->qname, .op = "TRUNCATE" };
		if (t->sql.oom)
			return ls_err_set(err, false, "out of memory");
		if (batch_add(t, BK_TRUNC, &w, 0, t->sql.data, t->sql.len, err) < 0)
			return -1;
	}
	t->group_rows++;
	t->txn_rows++;
	return 0;
}

static int change_in_txn(struct ls_mytarget *t, const struct ls_relation *rel,
			 const struct ls_change *ch, struct ls_err *err)
{
	if (ch->op == LS_OP_TRUNCATE)
		return flush_inserts(t, err) < 0 || net_flush(t, err) < 0 ? -1
			: truncate_rels(t, ch, err);
	if (rel && see_relation(t, rel, err) < 0)
		return -1;
	struct trel *r = find_rel(t, rel ? rel->id : ch->relid);
	if (r == NULL || !r->checked)
		return ls_err_set(err, false, "target %s: change for unknown relation id %u",
				  t->target, ch->relid);
	if ((ch->op == LS_OP_INSERT || ch->op == LS_OP_UPDATE || ch->op == LS_OP_DELETE) &&
	    net_can_fold(r, ch)) {
		t->group_rows++;
		t->txn_rows++;
		return net_change(t, r, ch, err);
	}
	/* this table's earlier changes must reach the server first */
	if (r->net && net_flush(t, err) < 0)
		return -1;
	if (ch->op == LS_OP_INSERT) {
		if (ch->new_tup.ncols != r->src->ncols)
			return ls_err_set(err, false, "target %s: INSERT %s: tuple has %u columns, "
					  "relation %u", t->target, r->qname, ch->new_tup.ncols,
					  r->src->ncols);
		t->group_rows++;
		t->txn_rows++;
		return insert_row(t, r, ch, err);
	}
	if (ch->op != LS_OP_UPDATE && ch->op != LS_OP_DELETE)
		return ls_err_set(err, false, "target %s: unknown change op %d", t->target, ch->op);
	if (flush_inserts(t, err) < 0)
		return -1;
	t->group_rows++;
	t->txn_rows++;
	return update_delete(t, r, ch, err);
}

int ls_mytarget_change(struct ls_mytarget *t, const struct ls_relation *rel,
		       const struct ls_change *ch, struct ls_err *err)
{
	if (usable(t, err) < 0)
		return -1;
	if (!t->in_txn)
		return ls_err_set(err, false, "target %s: change outside a transaction", t->target);
	if (ch->op == LS_OP_MESSAGE)
		return 0;
	if (change_in_txn(t, rel, ch, err) < 0) {
		fail(t);
		return -1;
	}
	return 0;
}

int ls_mytarget_snapshot_state(struct ls_mytarget *t, const char *schema, const char *name,
			       bool *copied, uint64_t *copied_at, struct ls_err *err)
{
	*copied = false;
	*copied_at = 0;
	if (usable(t, err) < 0)
		return -1;
	struct ls_mysql_buf q;
	ls_mysql_buf_init(&q);
	ls_mysql_put(&q, "SELECT copied_at_seq FROM lockstep.snapshot");
	ckpt_where(t, &q);
	ls_mysql_put(&q, " AND table_schema = ");
	put_literal(&t->s, &q, schema, strlen(schema));
	ls_mysql_put(&q, " AND table_name = ");
	put_literal(&t->s, &q, name, strlen(name));
	MYSQL_RES *res = NULL;
	int rc = q.oom ? ls_err_set(err, false, "out of memory")
		       : run(t, q.data, q.len, NULL, &res, err);
	ls_mysql_buf_free(&q);
	if (rc < 0)
		return -1;
	MYSQL_ROW row = mysql_fetch_row(res);
	if (row && row[0]) {
		*copied = true;
		*copied_at = strtoull(row[0], NULL, 10);
	}
	mysql_free_result(res);
	return 0;
}

/* ---- snapshot copy sessions ----------------------------------------------------- */

struct ls_mytarget_copy {
	struct ls_mytarget *t;     /* borrowed: names, conninfo, copy_rows */
	struct sess s;
	bool failed, in_table;
	struct ls_relation *rel;   /* owned */
	char *qname;               /* owned */
	struct ls_mysql_coltype *ct;   /* owned */
	struct ls_mysql_buf line, fields, stmt, keys, val;
	size_t *off, *len;
	int stmt_rows;
	uint64_t lines, stored;
};

static void copy_drop(struct ls_mytarget_copy *c)
{
	sess_close(&c->s);
	c->failed = true;
	c->in_table = false;
}

static int copy_fail(struct ls_mytarget_copy *c)
{
	copy_drop(c);
	return -1;
}

int ls_mytarget_copy_open(struct ls_mytarget *t, struct ls_mytarget_copy **out,
			  struct ls_err *err)
{
	*out = NULL;
	struct ls_mytarget_copy *c = calloc(1, sizeof *c);
	if (c == NULL)
		return ls_err_set(err, false, "out of memory");
	c->t = t;
	c->s.target = t->target;
	c->s.origin_id = t->s.origin_id;
	if (sess_connect(&c->s, &t->ci, 0, err) < 0) {
		free(c);
		return -1;
	}
	*out = c;
	return 0;
}

static void copy_forget_table(struct ls_mytarget_copy *c)
{
	ls_relation_free(c->rel);
	free(c->qname);
	free(c->ct);
	free(c->off);
	free(c->len);
	c->rel = NULL;
	c->qname = NULL;
	c->ct = NULL;
	c->off = NULL;
	c->len = NULL;
}

void ls_mytarget_copy_close(struct ls_mytarget_copy *c)
{
	if (c == NULL)
		return;
	sess_close(&c->s);
	copy_forget_table(c);
	ls_mysql_buf_free(&c->line);
	ls_mysql_buf_free(&c->fields);
	ls_mysql_buf_free(&c->stmt);
	ls_mysql_buf_free(&c->keys);
	ls_mysql_buf_free(&c->val);
	free(c);
}

static int copy_usable(struct ls_mytarget_copy *c, bool want_table, struct ls_err *err)
{
	if (c->failed || c->s.conn == NULL)
		return ls_err_set(err, true, "target %s: copy session failed earlier", c->s.target);
	if (c->in_table != want_table)
		return ls_err_set(err, false, "target %s: copy %s", c->s.target,
				  want_table ? "data without an open table" : "table already open");
	return 0;
}

int ls_mytarget_copy_table_begin(struct ls_mytarget_copy *c, const struct ls_relation *rel,
				 struct ls_err *err)
{
	if (copy_usable(c, false, err) < 0)
		return -1;
	copy_forget_table(c);
	c->rel = ls_relation_dup(rel);
	struct ls_mysql_buf q;
	ls_mysql_buf_init(&q);
	ls_mysql_qualified(&q, rel->schema, rel->name);
	c->qname = q.data;
	c->off = calloc((size_t)rel->ncols + 1, sizeof *c->off);
	c->len = calloc((size_t)rel->ncols + 1, sizeof *c->len);
	if (c->rel == NULL || q.oom || c->off == NULL || c->len == NULL)
		return ls_err_set(err, false, "out of memory");
	c->ct = coltypes(c->s.target, rel, err);
	if (c->ct == NULL)
		return -1;
	ls_mysql_buf_reset(&c->line);
	ls_mysql_buf_reset(&c->stmt);
	c->stmt_rows = 0;
	c->lines = c->stored = 0;
	struct where w = { .qname = c->qname, .op = "DELETE (copy)" };
	ls_mysql_buf_reset(&c->val);
	ls_mysql_printf(&c->val, "DELETE FROM %s", c->qname);
	if (sess_exec(&c->s, "START TRANSACTION", err) < 0 ||
	    sess_query(&c->s, ls_mysql_buf_str(&c->val), c->val.len, &w, NULL, err) < 0)
		return copy_fail(c);
	c->in_table = true;
	return 0;
}

static int copy_flush(struct ls_mytarget_copy *c, struct ls_err *err)
{
	if (c->stmt_rows == 0)
		return 0;
	if (c->stmt.oom || c->keys.oom)
		return ls_err_set(err, false, "out of memory");
	struct where w = { .qname = c->qname, .op = "INSERT (copy)", .row_keys = c->keys.data,
			   .nrows = c->stmt_rows };
	int rc = sess_query(&c->s, c->stmt.data, c->stmt.len, &w, NULL, err);
	c->stmt_rows = 0;
	if (rc < 0)
		return copy_fail(c);
	c->stored += mysql_affected_rows(c->s.conn);
	return 0;
}

/* One COPY text line -> one row of the pending INSERT. */
static int copy_line(struct ls_mytarget_copy *c, const char *p, size_t n, struct ls_err *err)
{
	if (n == 2 && p[0] == '\\' && p[1] == '.')
		return 0;   /* end-of-data marker */
	const struct ls_relation *rel = c->rel;
	int nf = ls_mysql_pgtext_fields(p, n, &c->fields, c->off, c->len, rel->ncols, err);
	if (nf < 0 || nf != rel->ncols) {
		if (nf >= 0)
			ls_err_set(err, false, "line has %d fields, table has %u", nf, rel->ncols);
		return ls_err_prefix(err, "target %s: copy %s line %llu", c->s.target, c->qname,
				     (unsigned long long)c->lines + 1);
	}
	c->lines++;
	struct ls_value *vals = calloc((size_t)nf + 1, sizeof *vals);
	if (vals == NULL)
		return ls_err_set(err, false, "out of memory");
	for (int i = 0; i < nf; i++)
		vals[i] = c->len[i] == SIZE_MAX
			? (struct ls_value){ .kind = LS_VAL_NULL }
			: (struct ls_value){ .kind = LS_VAL_TEXT, .len = (uint32_t)c->len[i],
					     .data = c->fields.data + c->off[i] };
	struct ls_tuple tup = { .ncols = (uint16_t)nf, .vals = vals };
	char key[100];
	key_text(key, sizeof key, rel, &tup);
	if (c->stmt_rows == 0) {
		ls_mysql_buf_reset(&c->stmt);
		ls_mysql_buf_reset(&c->keys);
		struct trel tr = { .src = c->rel, .qname = c->qname };
		insert_head(&c->stmt, &tr);
	} else {
		ls_mysql_put(&c->stmt, ", ");
	}
	int rc = row_values(&c->s, &c->stmt, &c->val, rel, c->ct, &tup, key, err);
	free(vals);
	if (rc < 0)
		return -1;
	ls_mysql_putn(&c->keys, key, strlen(key) + 1);
	c->stmt_rows++;
	size_t max = c->t->max_stmt ? c->t->max_stmt : DEFAULT_STMT_BYTES;
	return c->stmt.len >= max ? copy_flush(c, err) : 0;
}

int ls_mytarget_copy_data(struct ls_mytarget_copy *c, const char *data, size_t len,
			  struct ls_err *err)
{
	if (copy_usable(c, true, err) < 0)
		return -1;
	while (len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;
		if (nl == NULL) {   /* a partial line: keep it for the next call */
			ls_mysql_putn(&c->line, data, take);
			return c->line.oom ? ls_err_set(err, false, "out of memory") : 0;
		}
		const char *p = data;
		size_t n = take;
		if (c->line.len) {
			ls_mysql_putn(&c->line, data, take);
			if (c->line.oom)
				return ls_err_set(err, false, "out of memory");
			p = c->line.data;
			n = c->line.len;
		}
		int rc = copy_line(c, p, n, err);
		ls_mysql_buf_reset(&c->line);
		if (rc < 0)
			return copy_fail(c);
		data += take + 1;
		len -= take + 1;
	}
	return 0;
}

int ls_mytarget_copy_table_end(struct ls_mytarget_copy *c, const struct ls_relation *rel,
			       uint64_t rows, uint64_t copied_at_seq, struct ls_err *err)
{
	if (copy_usable(c, true, err) < 0)
		return -1;
	if (c->line.len) {   /* the last line had no newline */
		int rc = copy_line(c, c->line.data, c->line.len, err);
		ls_mysql_buf_reset(&c->line);
		if (rc < 0)
			return copy_fail(c);
	}
	if (copy_flush(c, err) < 0)
		return -1;
	if (c->stored != rows || c->lines != rows) {
		ls_err_set(err, false, "target %s: copy %s: the source sent %llu rows, the target "
			   "read %llu and stored %llu", c->s.target, c->qname,
			   (unsigned long long)rows, (unsigned long long)c->lines,
			   (unsigned long long)c->stored);
		return copy_fail(c);
	}
	struct ls_mysql_buf *q = &c->val;
	ls_mysql_buf_reset(q);
	ls_mysql_put(q, "INSERT INTO lockstep.snapshot (pipeline, target, table_schema, table_name,"
		     " copied_at_seq, `rows`, done_at) VALUES (");
	const char *v[4] = { c->t->pipeline, c->t->target, rel->schema, rel->name };
	for (int i = 0; i < 4; i++) {
		put_literal(&c->s, q, v[i], strlen(v[i]));
		ls_mysql_put(q, ", ");
	}
	ls_mysql_printf(q, "%llu, %llu, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE"
			" copied_at_seq = VALUES(copied_at_seq), `rows` = VALUES(`rows`),"
			" done_at = VALUES(done_at)", (unsigned long long)copied_at_seq,
			(unsigned long long)rows);
	if (q->oom)
		return ls_err_set(err, false, "out of memory");
	if (sess_query(&c->s, q->data, q->len, NULL, NULL, err) < 0 ||
	    sess_exec(&c->s, "COMMIT", err) < 0)
		return copy_fail(c);
	c->in_table = false;
	__atomic_add_fetch(&c->t->copy_rows, rows, __ATOMIC_RELAXED);
	return 0;
}

/* ---- drift checks ---------------------------------------------------------------- */

static int drift_conn(struct ls_mytarget *t, struct ls_err *err)
{
	if (t->drift == NULL && ls_mydrift_open(t->conninfo, &t->drift, err) < 0)
		return ls_err_prefix(err, "target %s: drift check", t->target);
	return 0;
}

int ls_mytarget_chunk_checksum(struct ls_mytarget *t, const struct ls_relation *rel,
			       const char *lo, const char *hi, uint64_t *rows, char *hash,
			       size_t hashlen, struct ls_err *err)
{
	if (drift_conn(t, err) < 0)
		return -1;
	return ls_mydrift_checksum(t->drift, rel, lo, hi, rows, hash, hashlen, err);
}

int ls_mytarget_chunk_rows(struct ls_mytarget *t, const struct ls_relation *rel, const char *lo,
			   const char *hi, int (*row)(void *ctx, const char *key, const char *hash),
			   void *ctx, struct ls_err *err)
{
	if (drift_conn(t, err) < 0)
		return -1;
	return ls_mydrift_rows(t->drift, rel, lo, hi, row, ctx, err);
}
