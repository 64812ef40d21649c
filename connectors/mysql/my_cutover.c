#include "connectors/mysql/my_cutover.h"

#include <ctype.h>
#include <inttypes.h>
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "connectors/mysql/my_sql.h"
#include "pos.h"
#include "sbuf.h"

#define SESSION_WAIT_MS 10000
#define MAX_ROLES 32                 /* roles followed per account (nesting included) */
#define ER_NO_SUCH_THREAD 1094

struct ls_cutover_conn {
	MYSQL *m;
	bool mariadb;
	char where[160];               /* host:port, for messages */
};

struct account {
	char user[160];
	char host[288];
};

/* ---- helpers -------------------------------------------------------------------- */

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int my_fail(struct ls_cutover_conn *c, const char *what, struct ls_err *err)
{
	unsigned e = mysql_errno(c->m);
	/* lost connections, lock waits, deadlocks, too many connections */
	bool retry = e == 0 || e >= 2000 || e == 1205 || e == 1213 || e == 1040 || e == 1053;
	return ls_err_set(err, retry, "%s: %s: %s (MySQL error %u)", c->where, what,
			  mysql_error(c->m), e);
}

static int oom(struct ls_err *err)
{
	return ls_err_set(err, false, "out of memory");
}

static int run(struct ls_cutover_conn *c, const char *what, const char *sql, struct ls_err *err)
{
	if (mysql_real_query(c->m, sql, strlen(sql)) != 0)
		return my_fail(c, what, err);
	MYSQL_RES *r = mysql_store_result(c->m);
	mysql_free_result(r);
	if (r == NULL && mysql_field_count(c->m) != 0)
		return my_fail(c, what, err);
	return 0;
}

/* Runs a query returning rows; *out (never NULL on success) is the result. */
static int rows(struct ls_cutover_conn *c, const char *what, const char *sql, MYSQL_RES **out,
		struct ls_err *err)
{
	*out = NULL;
	if (mysql_real_query(c->m, sql, strlen(sql)) != 0 ||
	    (*out = mysql_store_result(c->m)) == NULL)
		return my_fail(c, what, err);
	return 0;
}

/* First column of the first row into out ("" for NULL); *found says
 * whether there was a row (may be NULL). */
static int one(struct ls_cutover_conn *c, const char *what, const char *sql, char *out,
	       size_t size, bool *found, struct ls_err *err)
{
	MYSQL_RES *r;
	if (rows(c, what, sql, &r, err) < 0)
		return -1;
	MYSQL_ROW row = mysql_fetch_row(r);
	if (found)
		*found = row != NULL;
	snprintf(out, size, "%s", row && row[0] ? row[0] : "");
	mysql_free_result(r);
	return 0;
}

/* Copies s into d (size n), truncating: the contract's fixed-size fields
 * are far longer than real names. */
static void copy_str(char *d, size_t n, const char *s)
{
	size_t k = strlen(s);
	if (k >= n)
		k = n - 1;
	memcpy(d, s, k);
	d[k] = '\0';
}

/* A string literal, escaped for this connection. */
static void lit(struct ls_cutover_conn *c, struct ls_sbuf *b, const char *s)
{
	size_t n = strlen(s);
	char *d = ls_sbuf_room(b, 2 * n + 3);
	if (d == NULL)
		return;
	d[0] = '\'';
	unsigned long k = mysql_real_escape_string(c->m, d + 1, s, (unsigned long)n);
	d[1 + k] = '\'';
	d[2 + k] = '\0';
	b->len += k + 2;
}

/* 'user'@'host' */
static void put_account(struct ls_cutover_conn *c, struct ls_sbuf *b, const struct account *a)
{
	lit(c, b, a->user);
	ls_sbuf_putc(b, '@');
	lit(c, b, a->host);
}

/* "WHERE User = 'u' AND Host = 'h'" with the given column names. */
static void where_acct(struct ls_cutover_conn *c, struct ls_sbuf *b, const char *ucol,
		       const char *hcol, const struct account *a)
{
	ls_sbuf_printf(b, " WHERE %s = ", ucol);
	lit(c, b, a->user);
	ls_sbuf_printf(b, " AND %s = ", hcol);
	lit(c, b, a->host);
}

/* Strips one pair of matching quotes ('x', "x", `x`) in place. */
static void unquote(char *s)
{
	size_t n = strlen(s);
	if (n >= 2 && (s[0] == '\'' || s[0] == '"' || s[0] == '`') && s[n - 1] == s[0]) {
		memmove(s, s + 1, n - 2);
		s[n - 2] = '\0';
	}
}

/* "user" (host NULL: every host) or "user@host". */
static void split_role(const char *role, struct account *a, bool *any_host)
{
	snprintf(a->user, sizeof a->user, "%s", role);
	char *at = strrchr(a->user, '@');
	*any_host = at == NULL;
	a->host[0] = '\0';
	if (at) {
		*at = '\0';
		snprintf(a->host, sizeof a->host, "%s", at + 1);
		unquote(a->host);
	}
	unquote(a->user);
}

/* ---- connection ------------------------------------------------------------------- */

static void mc_close(struct ls_cutover_conn *c)
{
	if (c == NULL)
		return;
	if (c->m)
		mysql_close(c->m);
	free(c);
}

static int mc_open(const char *conninfo, struct ls_cutover_conn **out, struct ls_err *err)
{
	*out = NULL;
	struct ls_mysql_conninfo ci;
	if (ls_mysql_conninfo_parse(conninfo, &ci, err) < 0)
		return -1;
	struct ls_cutover_conn *c = calloc(1, sizeof *c);
	if (c == NULL || (c->m = mysql_init(NULL)) == NULL) {
		free(c);
		ls_mysql_conninfo_free(&ci);
		return oom(err);
	}
	const char *host = ci.host ? ci.host : "localhost";
	if (ci.socket && !ci.host)
		snprintf(c->where, sizeof c->where, "%s", ci.socket);
	else
		snprintf(c->where, sizeof c->where, "%s:%u", host, ci.port ? ci.port : 3306);
	unsigned timeout = ci.connect_timeout ? ci.connect_timeout : 10;
	mysql_options(c->m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	mysql_options(c->m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	bool ok = mysql_real_connect(c->m, host, ci.user, ci.password, ci.database, ci.port,
				     ci.socket, 0) != NULL;
	ls_mysql_conninfo_free(&ci);
	if (!ok) {
		my_fail(c, "cannot connect", err);
		if (err)
			err->retryable = true;
		mc_close(c);
		return -1;
	}
	c->mariadb = strstr(mysql_get_server_info(c->m), "MariaDB") != NULL;
	/* MySQL 8 caches information_schema.TABLES statistics (AUTO_INCREMENT
	 * included) for a day by default; MariaDB has no such variable */
	if (!c->mariadb)
		mysql_query(c->m, "SET SESSION information_schema_stats_expiry = 0");
	*out = c;
	return 0;
}

/* CURRENT_USER() split into user and host. */
static int own_account(struct ls_cutover_conn *c, struct account *a, struct ls_err *err)
{
	char cu[sizeof a->user + sizeof a->host];
	if (one(c, "current user", "SELECT CURRENT_USER()", cu, sizeof cu, NULL, err) < 0)
		return -1;
	bool any;
	split_role(cu, a, &any);
	return 0;
}

static int mc_whoami(struct ls_cutover_conn *c, char *role, size_t size, struct ls_err *err)
{
	return one(c, "current user", "SELECT CURRENT_USER()", role, size, NULL, err);
}

/* The accounts a role names (malloc'd, *n of them; 0 when none). */
static int accounts(struct ls_cutover_conn *c, const char *role, struct account **out, int *n,
		    struct ls_err *err)
{
	*out = NULL;
	*n = 0;
	struct account want;
	bool any;
	split_role(role, &want, &any);
	struct ls_sbuf b;
	ls_sbuf_init(&b);
	ls_sbuf_put(&b, "SELECT User, Host FROM mysql.user WHERE User = ");
	lit(c, &b, want.user);
	if (!any) {
		ls_sbuf_put(&b, " AND Host = ");
		lit(c, &b, want.host);
	}
	if (c->mariadb)
		ls_sbuf_put(&b, " AND is_role = 'N'");
	ls_sbuf_put(&b, " ORDER BY Host");
	MYSQL_RES *r = NULL;
	int rc = b.oom ? oom(err) : rows(c, "listing accounts", ls_sbuf_str(&b), &r, err);
	ls_sbuf_free(&b);
	if (rc < 0)
		return -1;
	unsigned long nr = (unsigned long)mysql_num_rows(r);
	*out = calloc(nr ? nr : 1, sizeof **out);
	if (*out == NULL) {
		mysql_free_result(r);
		return oom(err);
	}
	for (MYSQL_ROW row; (row = mysql_fetch_row(r)) != NULL; (*n)++) {
		snprintf((*out)[*n].user, sizeof (*out)[*n].user, "%s", row[0]);
		snprintf((*out)[*n].host, sizeof (*out)[*n].host, "%s", row[1]);
	}
	mysql_free_result(r);
	return 0;
}

/* 1 (with why) when account a holds a privilege on *.* that lets it
 * ignore or lift a fence. */
static int unfenceable(struct ls_cutover_conn *c, const struct account *a, char *why,
		       size_t size, struct ls_err *err)
{
	static const char *const mighty[] = { "ALL PRIVILEGES", "SUPER", "READ_ONLY ADMIN",
					      "CONNECTION_ADMIN", NULL };
	struct ls_sbuf b;
	ls_sbuf_init(&b);
	ls_sbuf_put(&b, "SHOW GRANTS FOR ");
	put_account(c, &b, a);
	MYSQL_RES *r = NULL;
	int rc = b.oom ? oom(err) : rows(c, "reading grants", ls_sbuf_str(&b), &r, err);
	ls_sbuf_free(&b);
	if (rc < 0)
		return -1;
	for (MYSQL_ROW row; rc == 0 && (row = mysql_fetch_row(r)) != NULL;) {
		const char *on = row[0] ? strstr(row[0], " ON *.* TO ") : NULL;
		for (int i = 0; on && mighty[i]; i++) {
			const char *hit = strstr(row[0], mighty[i]);
			if (hit && hit < on) {
				snprintf(why, size, "%s", mighty[i]);
				rc = 1;
				break;
			}
		}
	}
	mysql_free_result(r);
	return rc;
}

static int mc_check_roles(struct ls_cutover_conn *c, const char *const *roles, int n,
			  struct ls_err *err)
{
	struct account self;
	if (own_account(c, &self, err) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		struct account *as = NULL;
		int na = 0;
		if (accounts(c, roles[i], &as, &na, err) < 0)
			return -1;
		int rc = 0;
		struct account want;
		bool any;
		split_role(roles[i], &want, &any);
		if (na == 0) {
			ls_err_set(err, false, "%s: application account %s does not exist", c->where,
				   roles[i]);
			rc = LS_CUTOVER_NO;
		} else if (strcmp(want.user, self.user) == 0) {
			ls_err_set(err, false, "%s: application account %s is lockstep's own user "
				   "(%s@%s): it cannot be fenced", c->where, roles[i], self.user,
				   self.host);
			rc = LS_CUTOVER_NO;
		}
		for (int k = 0; rc == 0 && k < na; k++) {
			char why[32];
			rc = unfenceable(c, &as[k], why, sizeof why, err);
			if (rc == 1) {
				ls_err_set(err, false, "%s: application account '%s'@'%s' holds %s on "
					   "*.*: it can lift or ignore a fence (use a fence_hook)",
					   c->where, as[k].user, as[k].host, why);
				rc = LS_CUTOVER_NO;
			}
		}
		free(as);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int mc_origin_exists(struct ls_cutover_conn *c, const char *name, bool *exists,
			    struct ls_err *err)
{
	*exists = mysql_query(c->m, "SET SESSION server_id = @@global.server_id") == 0;
	if (!*exists)
		ls_err_set(err, false, "%s: lockstep's account cannot set its session server_id, "
			   "which the apply uses to tag its writes as %s so that the reverse "
			   "direction skips them: %s (MySQL error %u)%s", c->where, name,
			   mysql_error(c->m), mysql_errno(c->m),
			   c->mariadb ? "; grant it SUPER or BINLOG ADMIN"
				      : "; MySQL's server_id is global only");
	return 0;
}

/* ---- positions ------------------------------------------------------------------------ */

static int mc_position(struct ls_cutover_conn *c, struct ls_pos *out, struct ls_err *err)
{
	MYSQL_RES *r;
	if (rows(c, "binlog position", "SHOW MASTER STATUS", &r, err) < 0)
		return -1;
	MYSQL_ROW row = mysql_fetch_row(r);
	if (row == NULL || row[0] == NULL || row[1] == NULL) {
		mysql_free_result(r);
		return ls_err_set(err, false, "%s: SHOW MASTER STATUS is empty: the binary log is "
				  "off (set log_bin)", c->where);
	}
	char text[LS_BINLOG_FILE_MAX + 32];
	snprintf(text, sizeof text, "%s:%s", row[0], row[1]);
	char gtid[LS_POS_TEXT_MAX + 1] = "";
	bool mysql_gtid = !c->mariadb && mysql_num_fields(r) >= 5 && row[4];
	if (mysql_gtid)
		snprintf(gtid, sizeof gtid, "%s", row[4]);
	mysql_free_result(r);
	struct ls_binlog_pos bp;
	if (ls_binlog_pos_parse(text, &bp, err) < 0 || ls_binlog_pos_seq(&bp, &out->seq, err) < 0)
		return ls_err_prefix(err, "%s: binlog position %s", c->where, text);
	if (c->mariadb && one(c, "GTID position", "SELECT @@global.gtid_binlog_pos", gtid,
			      sizeof gtid, NULL, err) < 0)
		return -1;
	/* MySQL prints long GTID sets over several lines */
	for (char *p = gtid; *p; p++)
		if (*p == '\n')
			*p = ' ';
	bool fits = gtid[0] && strlen(gtid) < sizeof out->text;
	copy_str(out->text, sizeof out->text, fits ? gtid : text);
	return 0;
}

/* ---- write watch --------------------------------------------------------------------- */

static int mc_watch_start(struct ls_cutover_conn *c, const char *watch_name, const char *pub,
			  struct ls_err *err)
{
	(void)watch_name;
	(void)pub;
	char on[8];
	if (one(c, "binlog", "SELECT @@global.log_bin", on, sizeof on, NULL, err) < 0)
		return -1;
	if (strcmp(on, "1") != 0)
		return ls_err_set(err, false, "%s: the binary log is off: writes cannot be "
				  "watched (set log_bin)", c->where);
	return 0;
}

struct tmap {
	uint64_t id;
	int slice;                     /* index in tables, -1 another table */
};

struct watch {
	const struct ls_relation *const *tables;
	int ntables;
	struct tmap *map;
	size_t nmap, cap;
	uint64_t n;
	char *first;
	size_t size;
};

static int slice_index(const struct watch *w, const char *dbt)
{
	for (int i = 0; i < w->ntables; i++) {
		size_t k = strlen(w->tables[i]->schema);
		if (strncmp(dbt, w->tables[i]->schema, k) == 0 && dbt[k] == '.' &&
		    strcmp(dbt + k + 1, w->tables[i]->name) == 0)
			return i;
	}
	return -1;
}

static int map_set(struct watch *w, uint64_t id, int slice)
{
	for (size_t i = 0; i < w->nmap; i++)
		if (w->map[i].id == id) {
			w->map[i].slice = slice;
			return 0;
		}
	if (w->nmap == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 16;
		struct tmap *m = realloc(w->map, cap * sizeof *m);
		if (m == NULL)
			return -1;
		w->map = m;
		w->cap = cap;
	}
	w->map[w->nmap++] = (struct tmap){ id, slice };
	return 0;
}

static int map_get(const struct watch *w, uint64_t id)
{
	for (size_t i = 0; i < w->nmap; i++)
		if (w->map[i].id == id)
			return w->map[i].slice;
	return -1;
}

/* "use `db`; TRUNCATE [TABLE] [`db`.]`t`" -> the slice index, or -1. */
static int truncated(const struct watch *w, const char *info)
{
	char db[256] = "", name[512] = "";
	const char *p = info;
	if (strncmp(p, "use `", 5) == 0) {
		const char *e = strstr(p + 5, "`; ");
		if (e == NULL || (size_t)(e - p - 5) >= sizeof db)
			return -1;
		memcpy(db, p + 5, (size_t)(e - p - 5));
		db[e - p - 5] = '\0';
		p = e + 3;
	}
	if (strncasecmp(p, "TRUNCATE", 8) != 0 || !isspace((unsigned char)p[8]))
		return -1;
	p += 9;
	while (isspace((unsigned char)*p))
		p++;
	if (strncasecmp(p, "TABLE", 5) == 0 && isspace((unsigned char)p[5]))
		p += 6;
	while (isspace((unsigned char)*p))
		p++;
	size_t k = 0;
	for (; *p && !isspace((unsigned char)*p) && *p != ';' && k + 1 < sizeof name; p++)
		if (*p != '`')
			name[k++] = *p;
	name[k] = '\0';
	if (strchr(name, '.') == NULL) {
		char full[sizeof db + sizeof name + 2];
		snprintf(full, sizeof full, "%s.%s", db, name);
		return slice_index(w, full);
	}
	return slice_index(w, name);
}

static uint64_t table_id(const char *info)
{
	const char *p = info ? strstr(info, "table_id: ") : NULL;
	return p ? strtoull(p + 10, NULL, 10) : UINT64_MAX;
}

/* Reads one binlog file's events from offset (0: the start). */
static int watch_file(struct ls_cutover_conn *c, struct watch *w, const char *file,
		      uint64_t offset, struct ls_err *err)
{
	struct ls_sbuf b;
	ls_sbuf_init(&b);
	ls_sbuf_put(&b, "SHOW BINLOG EVENTS IN ");
	lit(c, &b, file);
	if (offset > 0)
		ls_sbuf_printf(&b, " FROM %" PRIu64, offset);
	if (b.oom) {
		ls_sbuf_free(&b);
		return oom(err);
	}
	int rc = mysql_real_query(c->m, b.data, b.len) != 0 ? my_fail(c, "reading the binlog", err)
	       : 0;
	ls_sbuf_free(&b);
	MYSQL_RES *r = rc == 0 ? mysql_use_result(c->m) : NULL;
	if (rc == 0 && r == NULL)
		return my_fail(c, "reading the binlog", err);
	for (MYSQL_ROW row; r && (row = mysql_fetch_row(r)) != NULL;) {
		const char *type = row[2] ? row[2] : "", *info = row[5] ? row[5] : "";
		int hit = -1;
		if (rc < 0)
			continue;          /* the rest of the result is read, not used */
		if (strcmp(type, "Table_map") == 0) {
			const char *open = strchr(info, '(');
			char dbt[1024] = "";
			if (open)
				snprintf(dbt, sizeof dbt, "%s", open + 1);
			char *close = strrchr(dbt, ')');
			if (close)
				*close = '\0';
			if (map_set(w, table_id(info), slice_index(w, dbt)) < 0)
				rc = oom(err);
			continue;
		}
		if (strncmp(type, "Write_rows", 10) == 0 || strncmp(type, "Update_rows", 11) == 0 ||
		    strncmp(type, "Delete_rows", 11) == 0)
			hit = map_get(w, table_id(info));
		else if (strcmp(type, "Query") == 0)
			hit = truncated(w, info);
		if (hit < 0)
			continue;
		if (w->n++ == 0)
			snprintf(w->first, w->size, "%s on %s.%s at %s:%s", type,
				 w->tables[hit]->schema, w->tables[hit]->name, file,
				 row[1] ? row[1] : "?");
	}
	if (r && rc == 0 && mysql_errno(c->m) != 0)
		rc = my_fail(c, "reading the binlog", err);
	mysql_free_result(r);
	return rc;
}

static int mc_watch_count(struct ls_cutover_conn *c, const struct ls_relation *const *tables,
			  int ntables, uint64_t after, uint64_t *n, char *first, size_t size,
			  struct ls_err *err)
{
	*n = 0;
	first[0] = '\0';
	MYSQL_RES *r;
	if (rows(c, "listing binlogs", "SHOW BINARY LOGS", &r, err) < 0)
		return -1;
	uint32_t afile = (uint32_t)(after >> 32);
	uint64_t aoff = after & 0xffffffffu;
	size_t nf = 0;
	char (*files)[LS_BINLOG_FILE_MAX] = calloc(mysql_num_rows(r) + 1, sizeof *files);
	bool seen = after == 0;
	int rc = files ? 0 : oom(err);
	for (MYSQL_ROW row; rc == 0 && (row = mysql_fetch_row(r)) != NULL;) {
		char text[LS_BINLOG_FILE_MAX + 4];
		struct ls_binlog_pos bp;
		snprintf(text, sizeof text, "%s:0", row[0] ? row[0] : "");
		if (ls_binlog_pos_parse(text, &bp, err) < 0) {
			rc = ls_err_prefix(err, "%s: binlog file", c->where);
			break;
		}
		if (bp.fileno < afile)
			continue;
		seen = seen || bp.fileno == afile;
		snprintf(files[nf++], LS_BINLOG_FILE_MAX, "%s", bp.file);
	}
	mysql_free_result(r);
	if (rc == 0 && !seen)
		rc = ls_err_set(err, false, "%s: the binlog file of position %" PRIu32 ":%" PRIu64
				" is gone (purged)", c->where, afile, aoff);
	struct watch w = { .tables = tables, .ntables = ntables, .first = first, .size = size };
	for (size_t i = 0; rc == 0 && i < nf; i++) {
		struct ls_binlog_pos bp;
		char text[LS_BINLOG_FILE_MAX + 4];
		snprintf(text, sizeof text, "%s:0", files[i]);
		if (ls_binlog_pos_parse(text, &bp, NULL) < 0)
			continue;
		rc = watch_file(c, &w, files[i], bp.fileno == afile ? aoff : 0, err);
	}
	free(files);
	free(w.map);
	*n = w.n;
	return rc;
}

static int mc_watch_stop(struct ls_cutover_conn *c, struct ls_err *err)
{
	(void)c;
	(void)err;
	return 0;
}

/* ---- fence ------------------------------------------------------------------------------ */

/* Runs undo text line by line; every line is tried, the first failure is
 * reported. */
static int run_undo(struct ls_cutover_conn *c, const char *undo, struct ls_err *err)
{
	int rc = 0;
	for (const char *p = undo; p && *p;) {
		const char *e = strchr(p, '\n');
		size_t k = e ? (size_t)(e - p) : strlen(p);
		while (k > 0 && (p[k - 1] == ';' || p[k - 1] == ' ' || p[k - 1] == '\r'))
			k--;
		if (k > 0 && mysql_real_query(c->m, p, k) != 0 && rc == 0) {
			rc = my_fail(c, "lifting the fence", err);
		} else if (k > 0) {
			MYSQL_RES *r = mysql_store_result(c->m);
			mysql_free_result(r);
		}
		p = e ? e + 1 : p + k;
		if (!e)
			break;
	}
	return rc;
}

/* SQL listing the write privileges of a mysql.user / mysql.db row. */
#define PRIV_LIST "CONCAT_WS(', ', IF(Insert_priv = 'Y', 'INSERT', NULL)," \
	" IF(Update_priv = 'Y', 'UPDATE', NULL), IF(Delete_priv = 'Y', 'DELETE', NULL)," \
	" IF(Drop_priv = 'Y', 'DROP', NULL))"
#define PRIV_ANY "(Insert_priv = 'Y' OR Update_priv = 'Y' OR Delete_priv = 'Y' OR Drop_priv = 'Y')"
#define TABLE_WRITE "(FIND_IN_SET('Insert', Table_priv) OR FIND_IN_SET('Update', Table_priv)" \
	" OR FIND_IN_SET('Delete', Table_priv) OR FIND_IN_SET('Drop', Table_priv)" \
	" OR FIND_IN_SET('Insert', Column_priv) OR FIND_IN_SET('Update', Column_priv))"

/* 1 (how = the grant) when a can write table t through a grant on *.* or
 * on its database (with table_level: also on the table itself). */
static int write_grant(struct ls_cutover_conn *c, const struct account *a,
		       const struct ls_relation *t, bool table_level, char *how, size_t size,
		       struct ls_err *err)
{
	struct ls_sbuf b;
	ls_sbuf_init(&b);
	ls_sbuf_put(&b, "SELECT CONCAT(" PRIV_LIST ", ' ON *.*') FROM mysql.user");
	where_acct(c, &b, "User", "Host", a);
	ls_sbuf_put(&b, " AND " PRIV_ANY " UNION ALL SELECT CONCAT(" PRIV_LIST
		    ", ' ON `', Db, '`.*') FROM mysql.db");
	where_acct(c, &b, "User", "Host", a);
	ls_sbuf_put(&b, " AND " PRIV_ANY " AND ");
	lit(c, &b, t->schema);
	ls_sbuf_put(&b, " LIKE Db");
	if (table_level) {
		ls_sbuf_put(&b, " UNION ALL SELECT CONCAT_WS(', ', NULLIF(Table_priv, ''),"
			    " IF(Column_priv = '', NULL, CONCAT('columns: ', Column_priv)),"
			    " CONCAT(' ON `', Db, '`.`', Table_name, '`')) FROM mysql.tables_priv");
		where_acct(c, &b, "User", "Host", a);
		ls_sbuf_put(&b, " AND Db = ");
		lit(c, &b, t->schema);
		ls_sbuf_put(&b, " AND Table_name = ");
		lit(c, &b, t->name);
		ls_sbuf_put(&b, " AND " TABLE_WRITE);
	}
	bool found = false;
	int rc = b.oom ? oom(err) : one(c, "reading grants", ls_sbuf_str(&b), how, size, &found,
					  err);
	ls_sbuf_free(&b);
	return rc < 0 ? -1 : found;
}

/* The roles granted to a, nested ones included, plus PUBLIC (MariaDB). */
static int granted_roles(struct ls_cutover_conn *c, const struct account *a,
			 struct account *out, int *n, struct ls_err *err)
{
	*n = 0;
	if (c->mariadb) {
		snprintf(out[0].user, sizeof out[0].user, "PUBLIC");
		out[0].host[0] = '\0';
		*n = 1;
	}
	for (int i = -1; i < *n; i++) {
		const struct account *from = i < 0 ? a : &out[i];
		struct ls_sbuf b;
		ls_sbuf_init(&b);
		if (c->mariadb) {
			ls_sbuf_put(&b, "SELECT Role, '' FROM mysql.roles_mapping");
			where_acct(c, &b, "User", "Host", from);
		} else {
			ls_sbuf_put(&b, "SELECT FROM_USER, FROM_HOST FROM mysql.role_edges");
			where_acct(c, &b, "TO_USER", "TO_HOST", from);
		}
		MYSQL_RES *r = NULL;
		int rc = b.oom ? oom(err) : rows(c, "reading roles", ls_sbuf_str(&b), &r, err);
		ls_sbuf_free(&b);
		if (rc < 0)
			return -1;
		for (MYSQL_ROW row; (row = mysql_fetch_row(r)) != NULL;) {
			bool dup = false;
			for (int k = 0; k < *n; k++)
				dup = dup || (strcmp(out[k].user, row[0]) == 0 &&
					      strcmp(out[k].host, row[1] ? row[1] : "") == 0);
			if (dup || *n >= MAX_ROLES)
				continue;
			snprintf(out[*n].user, sizeof out[*n].user, "%s", row[0]);
			snprintf(out[*n].host, sizeof out[*n].host, "%s", row[1] ? row[1] : "");
			(*n)++;
		}
		mysql_free_result(r);
	}
	return 0;
}

/* LS_CUTOVER_NO when a table-level revoke cannot fence a on t. */
static int check_fenceable(struct ls_cutover_conn *c, const struct account *a,
			   const struct ls_relation *t, struct ls_err *err)
{
	char how[512];
	int rc = write_grant(c, a, t, false, how, sizeof how, err);
	if (rc == 1)
		ls_err_set(err, false, "%s: account '%s'@'%s' can write %s.%s through the grant "
			   "%s, which a table-level revoke cannot fence: narrow its grants, or use "
			   "[cutover] fence = read_only or a fence_hook", c->where, a->user, a->host,
			   t->schema, t->name, how);
	if (rc != 0)
		return rc == 1 ? LS_CUTOVER_NO : rc;
	struct account roles[MAX_ROLES];
	int nroles;
	if (granted_roles(c, a, roles, &nroles, err) < 0)
		return -1;
	for (int i = 0; i < nroles; i++) {
		rc = write_grant(c, &roles[i], t, true, how, sizeof how, err);
		if (rc == 1) {
			ls_err_set(err, false, "%s: account '%s'@'%s' can write %s.%s through role "
				   "%s (%s), which revoking from the account cannot fence: use "
				   "[cutover] fence = read_only or a fence_hook", c->where, a->user,
				   a->host, t->schema, t->name, roles[i].user, how);
			return LS_CUTOVER_NO;
		}
		if (rc < 0)
			return -1;
	}
	return 0;
}

static const struct {
	const char *stored, *grant;
} TABLE_PRIVS[] = {
	{ "Insert", "INSERT" }, { "Update", "UPDATE" }, { "Delete", "DELETE" },
	{ "Drop", "DROP" }, { "Alter", "ALTER" }, { "Delete versioning rows", "DELETE HISTORY" },
};

static bool in_set(const char *set, const char *item)
{
	size_t k = strlen(item);
	for (const char *p = set; p && *p;) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == k && strncmp(p, item, k) == 0)
			return true;
		p = e ? e + 1 : NULL;
	}
	return false;
}

/* Appends to privs the column-level "INSERT (`a`, `b`)" / "UPDATE (...)"
 * grants of a on t. */
static int column_privs(struct ls_cutover_conn *c, const struct account *a,
			const struct ls_relation *t, struct ls_sbuf *privs, struct ls_err *err)
{
	struct ls_sbuf b;
	ls_sbuf_init(&b);
	ls_sbuf_put(&b, "SELECT Column_name, Column_priv FROM mysql.columns_priv");
	where_acct(c, &b, "User", "Host", a);
	ls_sbuf_put(&b, " AND Db = ");
	lit(c, &b, t->schema);
	ls_sbuf_put(&b, " AND Table_name = ");
	lit(c, &b, t->name);
	ls_sbuf_put(&b, " ORDER BY Column_name");
	MYSQL_RES *r = NULL;
	int rc = b.oom ? oom(err) : rows(c, "reading column grants", ls_sbuf_str(&b), &r, err);
	ls_sbuf_free(&b);
	if (rc < 0)
		return -1;
	static const char *const kinds[][2] = { { "Insert", "INSERT" }, { "Update", "UPDATE" } };
	for (int k = 0; k < 2; k++) {
		int cols = 0;
		mysql_data_seek(r, 0);
		for (MYSQL_ROW row; (row = mysql_fetch_row(r)) != NULL;) {
			if (!in_set(row[1], kinds[k][0]))
				continue;
			if (cols++ == 0)
				ls_sbuf_printf(privs, "%s%s (", privs->len ? ", " : "", kinds[k][1]);
			else
				ls_sbuf_put(privs, ", ");
			ls_mysql_ident(privs, row[0]);
		}
		if (cols)
			ls_sbuf_putc(privs, ')');
	}
	mysql_free_result(r);
	return 0;
}

/* Revokes a's table- and column-level write privileges on t; the GRANT
 * giving them back goes to undo. */
static int revoke_one(struct ls_cutover_conn *c, const struct account *a,
		      const struct ls_relation *t, struct ls_sbuf *undo, struct ls_err *err)
{
	struct ls_sbuf b, privs;
	ls_sbuf_init(&b);
	ls_sbuf_init(&privs);
	ls_sbuf_put(&b, "SELECT Table_priv, Column_priv FROM mysql.tables_priv");
	where_acct(c, &b, "User", "Host", a);
	ls_sbuf_put(&b, " AND Db = ");
	lit(c, &b, t->schema);
	ls_sbuf_put(&b, " AND Table_name = ");
	lit(c, &b, t->name);
	MYSQL_RES *r = NULL;
	int rc = b.oom ? oom(err) : rows(c, "reading table grants", ls_sbuf_str(&b), &r, err);
	MYSQL_ROW row = rc == 0 ? mysql_fetch_row(r) : NULL;
	bool cols = row && (in_set(row[1], "Insert") || in_set(row[1], "Update"));
	for (size_t i = 0; row && i < sizeof TABLE_PRIVS / sizeof *TABLE_PRIVS; i++)
		if (in_set(row[0], TABLE_PRIVS[i].stored))
			ls_sbuf_printf(&privs, "%s%s", privs.len ? ", " : "", TABLE_PRIVS[i].grant);
	mysql_free_result(r);
	if (rc == 0 && cols)
		rc = column_privs(c, a, t, &privs, err);
	if (rc == 0 && privs.len > 0) {
		struct ls_sbuf on;
		ls_sbuf_init(&on);
		ls_sbuf_put(&on, " ON ");
		ls_mysql_qualified(&on, t->schema, t->name);
		ls_sbuf_reset(&b);
		ls_sbuf_printf(&b, "REVOKE %s%s FROM ", ls_sbuf_str(&privs), ls_sbuf_str(&on));
		put_account(c, &b, a);
		if (b.oom || on.oom || privs.oom)
			rc = oom(err);
		else
			rc = run(c, "revoking", ls_sbuf_str(&b), err);
		if (rc == 0) {
			ls_sbuf_printf(undo, "GRANT %s%s TO ", ls_sbuf_str(&privs), ls_sbuf_str(&on));
			put_account(c, undo, a);
			ls_sbuf_put(undo, ";\n");
		}
		ls_sbuf_free(&on);
	}
	ls_sbuf_free(&b);
	ls_sbuf_free(&privs);
	return rc;
}

/* Ends the sessions of the accounts' users (not this one) and waits until
 * they are gone. */
static int end_sessions(struct ls_cutover_conn *c, const struct account *as, int na,
			uint64_t *ended, struct ls_err *err)
{
	struct ls_sbuf b, ids;
	ls_sbuf_init(&b);
	ls_sbuf_init(&ids);
	ls_sbuf_put(&b, "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()"
		    " AND USER IN (");
	for (int i = 0; i < na; i++) {
		ls_sbuf_put(&b, i ? ", " : "");
		lit(c, &b, as[i].user);
	}
	ls_sbuf_put(&b, ")");
	MYSQL_RES *r = NULL;
	int rc = b.oom ? oom(err) : rows(c, "listing sessions", ls_sbuf_str(&b), &r, err);
	for (MYSQL_ROW row; rc == 0 && (row = mysql_fetch_row(r)) != NULL;) {
		char kill[64];
		snprintf(kill, sizeof kill, "KILL CONNECTION %s", row[0]);
		if (mysql_query(c->m, kill) != 0) {
			if (mysql_errno(c->m) != ER_NO_SUCH_THREAD)   /* gone meanwhile */
				rc = my_fail(c, "ending a session", err);
			continue;
		}
		ls_sbuf_printf(&ids, "%s%s", ids.len ? ", " : "", row[0]);
		(*ended)++;
	}
	mysql_free_result(r);
	ls_sbuf_reset(&b);
	ls_sbuf_printf(&b, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID IN (%s)",
		       ls_sbuf_str(&ids));
	if (rc == 0 && (b.oom || ids.oom))
		rc = oom(err);
	uint64_t deadline = now_ms() + SESSION_WAIT_MS;
	while (rc == 0 && ids.len > 0) {
		char left[24];
		rc = one(c, "waiting for sessions to end", ls_sbuf_str(&b), left, sizeof left, NULL,
			 err);
		if (rc < 0 || strcmp(left, "0") == 0)
			break;
		if (now_ms() > deadline)
			rc = ls_err_set(err, false, "%s: %s of the application's sessions did not end "
					"within %d s", c->where, left, SESSION_WAIT_MS / 1000);
		else
			nap_ms(20);
	}
	ls_sbuf_free(&b);
	ls_sbuf_free(&ids);
	return rc;
}

static int fence_revoke(struct ls_cutover_conn *c, const struct account *as, int na,
			const struct ls_relation *const *tables, int ntables, struct ls_sbuf *undo,
			struct ls_err *err)
{
	for (int t = 0; t < ntables; t++) {
		if (strchr(tables[t]->schema, '\n') || strchr(tables[t]->name, '\n'))
			return ls_err_set(err, false, "table name with a newline: not fenced");
		for (int i = 0; i < na; i++) {
			int rc = check_fenceable(c, &as[i], tables[t], err);
			if (rc != 0)
				return rc;
		}
	}
	for (int t = 0; t < ntables; t++)
		for (int i = 0; i < na; i++)
			if (revoke_one(c, &as[i], tables[t], undo, err) < 0) {
				struct ls_err e2 = { 0 };
				if (run_undo(c, ls_sbuf_str(undo), &e2) < 0 && err) {
					char first[LS_ERR_MSG_MAX];
					memcpy(first, err->msg, sizeof first);
					ls_err_set(err, false, "%.200s; putting back what was revoked "
						   "failed too: %.200s", first, e2.msg);
				}
				return -1;
			}
	return 0;
}

static int fence_read_only(struct ls_cutover_conn *c, struct ls_sbuf *undo, struct ls_err *err)
{
	char prev[32];
	if (one(c, "read_only", "SELECT @@global.read_only", prev, sizeof prev, NULL, err) < 0)
		return -1;
	const char *was = strcmp(prev, "0") == 0 ? "OFF" : strcmp(prev, "1") == 0 ? "ON" : prev;
	for (const char *p = was; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return ls_err_set(err, false, "%s: unexpected read_only value", c->where);
	/* a running write holds the global read lock back; wait for it a
	 * bounded time */
	if (run(c, "read_only fence", "SET SESSION lock_wait_timeout = 10", err) < 0 ||
	    run(c, "read_only fence", "SET GLOBAL read_only = ON", err) < 0)
		return -1;
	ls_sbuf_printf(undo, "SET GLOBAL read_only = %s;\n", was);
	return 0;
}

static int mc_fence(struct ls_cutover_conn *c, const char *const *roles, int nroles,
		    const struct ls_relation *const *tables, int ntables, bool read_only,
		    char **undo, uint64_t *ended, struct ls_err *err)
{
	*undo = NULL;
	*ended = 0;
	struct account self, *as = NULL;
	int na = 0;
	if (own_account(c, &self, err) < 0)
		return -1;
	for (int i = 0; i < nroles; i++) {
		struct account *more = NULL;
		int nm = 0;
		if (accounts(c, roles[i], &more, &nm, err) < 0) {
			free(as);
			return -1;
		}
		struct account *all = realloc(as, (size_t)(na + nm + 1) * sizeof *all);
		if (all == NULL) {
			free(more);
			free(as);
			return oom(err);
		}
		as = all;
		memcpy(as + na, more, (size_t)nm * sizeof *more);
		na += nm;
		free(more);
		struct account want;
		bool any;
		split_role(roles[i], &want, &any);
		if (nm == 0 || strcmp(want.user, self.user) == 0) {
			free(as);
			ls_err_set(err, false, "%s: application account %s %s: not fenced", c->where,
				   roles[i], nm ? "is lockstep's own user" : "does not exist");
			return LS_CUTOVER_NO;
		}
	}
	struct ls_sbuf u;
	ls_sbuf_init(&u);
	int rc = read_only ? fence_read_only(c, &u, err)
		 : fence_revoke(c, as, na, tables, ntables, &u, err);
	if (rc == 0 && u.oom)
		rc = oom(err);
	if (rc == 0 && (*undo = strdup(ls_sbuf_str(&u))) == NULL)
		rc = oom(err);
	ls_sbuf_free(&u);
	if (rc == 0)
		rc = end_sessions(c, as, na, ended, err);
	free(as);
	return rc;
}

static int mc_unfence(struct ls_cutover_conn *c, const char *undo, struct ls_err *err)
{
	return run_undo(c, undo, err);
}

/* ---- sequences ------------------------------------------------------------------------------ */

/* The auto_increment column and counter of t; *exists false when the
 * table is missing, col "" when it has no such column. */
static int autoinc(struct ls_cutover_conn *c, const struct ls_relation *t, bool *exists,
		   char *col, size_t csize, uint64_t *next, struct ls_err *err)
{
	struct ls_sbuf b;
	ls_sbuf_init(&b);
	ls_sbuf_put(&b, "SELECT t.AUTO_INCREMENT, (SELECT c.COLUMN_NAME FROM"
		    " information_schema.COLUMNS c WHERE c.TABLE_SCHEMA = t.TABLE_SCHEMA AND"
		    " c.TABLE_NAME = t.TABLE_NAME AND c.EXTRA LIKE '%auto_increment%' LIMIT 1)"
		    " FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = ");
	lit(c, &b, t->schema);
	ls_sbuf_put(&b, " AND t.TABLE_NAME = ");
	lit(c, &b, t->name);
	MYSQL_RES *r = NULL;
	int rc = b.oom ? oom(err) : rows(c, "reading AUTO_INCREMENT", ls_sbuf_str(&b), &r, err);
	ls_sbuf_free(&b);
	if (rc < 0)
		return -1;
	MYSQL_ROW row = mysql_fetch_row(r);
	*exists = row != NULL;
	snprintf(col, csize, "%s", row && row[1] ? row[1] : "");
	*next = row && row[0] ? strtoull(row[0], NULL, 10) : 0;
	mysql_free_result(r);
	return 0;
}

static int add_seq(struct ls_cutover_seq **v, int *n, const char *name, const char *owner,
		   uint64_t value)
{
	struct ls_cutover_seq *nv = realloc(*v, (size_t)(*n + 1) * sizeof *nv);
	if (nv == NULL)
		return -1;
	*v = nv;
	memset(&nv[*n], 0, sizeof nv[*n]);
	copy_str(nv[*n].name, sizeof nv[*n].name, name);
	copy_str(nv[*n].owner, sizeof nv[*n].owner, owner);
	snprintf(nv[*n].value, sizeof nv[*n].value, "%" PRIu64, value);
	(*n)++;
	return 0;
}

static int carry_autoinc(struct ls_cutover_conn *from, struct ls_cutover_conn *to,
			 const struct ls_relation *t, bool dry_run, struct ls_cutover_seq **seqs,
			 int *nseqs, struct ls_err *err)
{
	bool exists;
	char col[256], tcol[256];
	uint64_t next, tnext;
	if (autoinc(from, t, &exists, col, sizeof col, &next, err) < 0)
		return -1;
	if (!exists)
		return ls_err_set(err, false, "%s: table %s.%s does not exist", from->where,
				  t->schema, t->name);
	if (col[0] == '\0' || next == 0)
		return 0;
	if (autoinc(to, t, &exists, tcol, sizeof tcol, &tnext, err) < 0)
		return -1;
	if (!exists || tcol[0] == '\0') {
		ls_err_set(err, false, "%s: table %s.%s %s on the new side: create it with its "
			   "AUTO_INCREMENT column %s first", to->where, t->schema, t->name,
			   exists ? "has no AUTO_INCREMENT column" : "does not exist", col);
		return LS_CUTOVER_NO;
	}
	char name[600], owner[900];
	snprintf(name, sizeof name, "%s.%s", t->schema, t->name);
	snprintf(owner, sizeof owner, "%s.%s.%s", t->schema, t->name, col);
	if (add_seq(seqs, nseqs, name, owner, next) < 0)
		return oom(err);
	if (dry_run || tnext >= next)      /* never lowered */
		return 0;
	struct ls_sbuf b;
	ls_sbuf_init(&b);
	ls_sbuf_put(&b, "ALTER TABLE ");
	ls_mysql_qualified(&b, t->schema, t->name);
	ls_sbuf_printf(&b, " AUTO_INCREMENT = %" PRIu64, next);
	int rc = b.oom ? oom(err) : run(to, "raising AUTO_INCREMENT", ls_sbuf_str(&b), err);
	ls_sbuf_free(&b);
	return rc;
}

/* Reads a SEQUENCE's next_not_cached_value and cycle option on c;
 * *is_seq false when db.s is not a sequence. */
static int seq_read(struct ls_cutover_conn *c, const char *db, const char *s, bool *is_seq,
		    char *next, size_t size, bool *cycle, struct ls_err *err)
{
	struct ls_sbuf b;
	ls_sbuf_init(&b);
	ls_sbuf_put(&b, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_TYPE ="
		    " 'SEQUENCE' AND TABLE_SCHEMA = ");
	lit(c, &b, db);
	ls_sbuf_put(&b, " AND TABLE_NAME = ");
	lit(c, &b, s);
	char n[24];
	int rc = b.oom ? oom(err) : one(c, "sequences", ls_sbuf_str(&b), n, sizeof n, NULL, err);
	*is_seq = rc == 0 && strcmp(n, "0") != 0;
	ls_sbuf_reset(&b);
	ls_sbuf_put(&b, "SELECT next_not_cached_value, cycle_option FROM ");
	ls_mysql_qualified(&b, db, s);
	MYSQL_RES *r = NULL;
	if (rc == 0 && *is_seq)
		rc = b.oom ? oom(err) : rows(c, "reading a sequence", ls_sbuf_str(&b), &r, err);
	MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
	snprintf(next, size, "%s", row && row[0] ? row[0] : "");
	*cycle = row && row[1] && strcmp(row[1], "0") != 0;
	mysql_free_result(r);
	ls_sbuf_free(&b);
	return rc;
}

static int carry_sequence(struct ls_cutover_conn *from, struct ls_cutover_conn *to,
			  const char *item, bool dry_run, struct ls_cutover_seq **seqs,
			  int *nseqs, struct ls_err *err)
{
	if (!from->mariadb) {
		ls_err_set(err, false, "[cutover] sequences: %s: MySQL has no SEQUENCE objects",
			   item);
		return LS_CUTOVER_NO;
	}
	char db[256], s[256];
	const char *dot = strchr(item, '.');
	if (dot) {
		snprintf(db, sizeof db, "%.*s", (int)(dot - item), item);
		snprintf(s, sizeof s, "%s", dot + 1);
	} else {
		if (one(from, "current database", "SELECT DATABASE()", db, sizeof db, NULL, err) < 0)
			return -1;
		snprintf(s, sizeof s, "%s", item);
	}
	unquote(db);
	unquote(s);
	bool is_seq, cycle, tcycle;
	char next[32], tnext[32];
	if (seq_read(from, db, s, &is_seq, next, sizeof next, &cycle, err) < 0)
		return -1;
	if (!is_seq || cycle) {
		ls_err_set(err, false, "%s: [cutover] sequences: %s.%s %s", from->where, db, s,
			   is_seq ? "cycles: carrying its value could move it back (carry it by hand)"
				  : "is not a sequence");
		return LS_CUTOVER_NO;
	}
	if (seq_read(to, db, s, &is_seq, tnext, sizeof tnext, &tcycle, err) < 0)
		return -1;
	if (!is_seq) {
		ls_err_set(err, false, "sequence %s.%s does not exist on %s: create it there first",
			   db, s, to->where);
		return LS_CUTOVER_NO;
	}
	char name[600];
	snprintf(name, sizeof name, "%s.%s", db, s);
	if (add_seq(seqs, nseqs, name, "", strtoull(next, NULL, 10)) < 0)
		return oom(err);
	snprintf((*seqs)[*nseqs - 1].value, sizeof (*seqs)[0].value, "%s", next);
	if (dry_run)
		return 0;
	struct ls_sbuf b;
	ls_sbuf_init(&b);
	ls_sbuf_put(&b, "SELECT SETVAL(");
	ls_mysql_qualified(&b, db, s);
	ls_sbuf_printf(&b, ", %lld, 0)", strtoll(next, NULL, 10));
	char got[32];
	int rc = b.oom ? oom(err) : one(to, "setting a sequence", ls_sbuf_str(&b), got, sizeof got,
					 NULL, err);
	ls_sbuf_free(&b);
	return rc;
}

static int mc_sequences(struct ls_cutover_conn *from, struct ls_cutover_conn *to,
			const struct ls_relation *const *tables, int ntables, const char *extra,
			bool dry_run, struct ls_cutover_seq **seqs, int *nseqs, struct ls_err *err)
{
	*seqs = NULL;
	*nseqs = 0;
	int rc = 0;
	for (int t = 0; rc == 0 && t < ntables; t++)
		rc = carry_autoinc(from, to, tables[t], dry_run, seqs, nseqs, err);
	char *copy = extra ? strdup(extra) : NULL;
	if (rc == 0 && extra && copy == NULL)
		rc = oom(err);
	for (char *save = NULL, *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok && rc == 0;
	     tok = strtok_r(NULL, ",", &save)) {
		while (isspace((unsigned char)*tok))
			tok++;
		size_t k = strlen(tok);
		while (k > 0 && isspace((unsigned char)tok[k - 1]))
			tok[--k] = '\0';
		if (*tok)
			rc = carry_sequence(from, to, tok, dry_run, seqs, nseqs, err);
	}
	free(copy);
	return rc;
}

/* ---- counters across engines ------------------------------------------------------------------ */

static int mc_counters(struct ls_cutover_conn *c, const struct ls_relation *const *tables,
		       int ntables, const char *extra, struct ls_cutover_seq **seqs, int *nseqs,
		       struct ls_err *err)
{
	*seqs = NULL;
	*nseqs = 0;
	if (extra && extra[strspn(extra, " ,")] != '\0') {
		ls_err_set(err, false, "[cutover] sequences: named sequences are not carried to "
			   "another engine (%s): carry them by hand", extra);
		return LS_CUTOVER_NO;
	}
	for (int t = 0; t < ntables; t++) {
		bool exists;
		char col[256], name[600], owner[900];
		uint64_t next;
		if (autoinc(c, tables[t], &exists, col, sizeof col, &next, err) < 0)
			return -1;
		if (!exists || col[0] == '\0' || next == 0)
			continue;
		snprintf(name, sizeof name, "%s.%s", tables[t]->schema, tables[t]->name);
		snprintf(owner, sizeof owner, "%s.%s.%s", tables[t]->schema, tables[t]->name, col);
		if (add_seq(seqs, nseqs, name, owner, next) < 0)
			return oom(err);
	}
	return 0;
}

/* Raises the AUTO_INCREMENT of each owner's table ("schema.table.column",
 * the column being the table's AUTO_INCREMENT one). */
static int mc_raise(struct ls_cutover_conn *c, const struct ls_cutover_seq *seqs, int nseqs,
		    bool dry_run, struct ls_err *err)
{
	for (int i = 0; i < nseqs; i++) {
		const struct ls_cutover_seq *s = &seqs[i];
		char part[3][256] = { "", "", "" };
		const char *p = s->owner;
		for (int k = 0; k < 3; k++) {
			size_t n = k < 2 ? strcspn(p, ".") : strlen(p);
			snprintf(part[k], sizeof part[k], "%.*s", (int)n, p);
			unquote(part[k]);
			p += n + (p[n] == '.');
		}
		struct ls_relation t = { .schema = part[0], .name = part[1] };
		bool exists;
		char col[256];
		uint64_t next, want = strtoull(s->value, NULL, 10);
		if (s->owner[0] == '\0' || autoinc(c, &t, &exists, col, sizeof col, &next, err) < 0) {
			if (s->owner[0] == '\0')
				ls_err_set(err, false, "sequence %s: named sequences are not carried "
					   "from another engine", s->name);
			return s->owner[0] == '\0' ? LS_CUTOVER_NO : -1;
		}
		if (!exists || strcmp(col, part[2]) != 0) {
			ls_err_set(err, false, "%s: %s.%s %s: make %s its AUTO_INCREMENT column first",
				   c->where, part[0], part[1], !exists ? "does not exist"
				   : col[0] ? "has another AUTO_INCREMENT column" : "has no AUTO_INCREMENT "
				   "column", part[2]);
			return LS_CUTOVER_NO;
		}
		if (dry_run || next >= want)   /* never lowered */
			continue;
		struct ls_sbuf b;
		ls_sbuf_init(&b);
		ls_sbuf_put(&b, "ALTER TABLE ");
		ls_mysql_qualified(&b, part[0], part[1]);
		ls_sbuf_printf(&b, " AUTO_INCREMENT = %" PRIu64, want);
		int rc = b.oom ? oom(err) : run(c, "raising AUTO_INCREMENT", ls_sbuf_str(&b), err);
		ls_sbuf_free(&b);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- reverse ------------------------------------------------------------------------------ */

static int mc_reverse_prepare(struct ls_cutover_conn *c, const char *conninfo, const char *slot,
			      const char *pub, const struct ls_relation *const *tables,
			      int ntables, struct ls_pos *at, struct ls_err *err)
{
	(void)conninfo;
	(void)slot;
	(void)pub;
	(void)tables;
	(void)ntables;
	return mc_position(c, at, err);
}

static int mc_reverse_drop(struct ls_cutover_conn *c, const char *slot, const char *pub,
			   struct ls_err *err)
{
	(void)c;
	(void)slot;
	(void)pub;
	(void)err;
	return 0;
}

const struct ls_cutover_ops ls_my_cutover_ops = {
	.engine = "mysql",
	.open = mc_open,
	.close = mc_close,
	.whoami = mc_whoami,
	.check_roles = mc_check_roles,
	.origin_exists = mc_origin_exists,
	.position = mc_position,
	.watch_start = mc_watch_start,
	.watch_count = mc_watch_count,
	.watch_stop = mc_watch_stop,
	.fence = mc_fence,
	.unfence = mc_unfence,
	.sequences = mc_sequences,
	.counters = mc_counters,
	.raise = mc_raise,
	.reverse_prepare = mc_reverse_prepare,
	.reverse_drop = mc_reverse_drop,
};
