#include "connectors/mysql/my_drift.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mysql.h>

#include "log.h"
#include "connectors/mysql/my_setup.h"
#include "connectors/mysql/my_source.h"
#include "connectors/mysql/my_sql.h"

#define LOCKED " LOCK IN SHARE MODE"

struct ls_drift_conn {
	MYSQL *m;
	struct ls_mysql_conninfo ci;       /* secret */
};

/* ---- types -------------------------------------------------------------------- */

static bool word(const char *t, const char *w)
{
	size_t n = strlen(w);
	return strncasecmp(t, w, n) == 0 && !isalnum((unsigned char)t[n]) && t[n] != '_';
}

int ls_mydrift_class(const char *t)
{
	static const char *const num[] = { "tinyint", "smallint", "mediumint", "int", "integer",
		"bigint", "year", "decimal", "numeric", "dec", "fixed", "float", "double", "real" };
	static const char *const text[] = { "char", "varchar", "tinytext", "text", "mediumtext",
		"longtext", "enum", "set", "json" };
	static const char *const bin[] = { "binary", "varbinary", "tinyblob", "blob",
		"mediumblob", "longblob", "geometry", "point", "linestring", "polygon",
		"multipoint", "multilinestring", "multipolygon", "geometrycollection" };
	for (size_t i = 0; i < sizeof num / sizeof num[0]; i++)
		if (word(t, num[i]))
			return LS_MYD_NUMBER;
	for (size_t i = 0; i < sizeof text / sizeof text[0]; i++)
		if (word(t, text[i]))
			return LS_MYD_TEXT;
	for (size_t i = 0; i < sizeof bin / sizeof bin[0]; i++)
		if (word(t, bin[i]))
			return LS_MYD_BINARY;
	if (word(t, "bit"))
		return LS_MYD_BIT;
	if (word(t, "date"))
		return LS_MYD_DATE;
	if (word(t, "datetime") || word(t, "timestamp"))
		return LS_MYD_DATETIME;
	if (word(t, "time"))
		return LS_MYD_TIME;
	return 0;
}

/* ---- connection ------------------------------------------------------------------ */

static int my_fail(struct ls_drift_conn *c, const char *what, struct ls_err *err)
{
	unsigned e = mysql_errno(c->m);
	/* lost connections, lock waits, deadlocks, read-only: try again */
	bool retry = e == 0 || e >= 2000 || e == 1205 || e == 1213 || e == 1040 ||
		     e == 1053 || e == 1927;
	return ls_err_set(err, retry, "%s: %s (MySQL error %u)", what, mysql_error(c->m), e);
}

static int run(struct ls_drift_conn *c, const char *sql, const char *what, struct ls_err *err)
{
	if (mysql_query(c->m, sql) != 0)
		return my_fail(c, what, err);
	return 0;
}

static int connect_conn(struct ls_drift_conn *c, struct ls_err *err)
{
	if (c->m)
		mysql_close(c->m);
	if ((c->m = mysql_init(NULL)) == NULL)
		return ls_err_set(err, false, "out of memory");
	unsigned timeout = c->ci.connect_timeout ? c->ci.connect_timeout : 10;
	mysql_options(c->m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	mysql_options(c->m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	if (!mysql_real_connect(c->m, c->ci.host ? c->ci.host : "localhost", c->ci.user,
				c->ci.password, c->ci.database, c->ci.port, c->ci.socket, 0)) {
		my_fail(c, "drift connection", err);
		err->retryable = true;
		mysql_close(c->m);
		c->m = NULL;
		return -1;
	}
	/* UTC timestamps; a whole chunk's row hashes fit in GROUP_CONCAT; the
	 * source's locking reads take next-key locks (REPEATABLE READ) and
	 * give up quickly when writers hold them (a retryable error) */
	if (run(c, "SET SESSION time_zone = '+00:00', SESSION group_concat_max_len = 1073741824,"
		" SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION', SESSION innodb_lock_wait_timeout = 2",
		"session setup", err) < 0 ||
	    run(c, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", "session setup",
		err) < 0) {
		mysql_close(c->m);
		c->m = NULL;
		return -1;
	}
	return 0;
}

static int ensure(struct ls_drift_conn *c, struct ls_err *err)
{
	if (c->m && mysql_ping(c->m) == 0)
		return 0;
	return connect_conn(c, err);
}

int ls_mydrift_open(const char *conninfo, struct ls_drift_conn **out, struct ls_err *err)
{
	*out = NULL;
	struct ls_drift_conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return ls_err_set(err, false, "out of memory");
	if (ls_mysql_conninfo_parse(conninfo, &c->ci, err) < 0 || connect_conn(c, err) < 0) {
		ls_mydrift_close(c);
		return -1;
	}
	*out = c;
	return 0;
}

void ls_mydrift_close(struct ls_drift_conn *c)
{
	if (c == NULL)
		return;
	if (c->m)
		mysql_close(c->m);
	ls_mysql_conninfo_free(&c->ci);
	free(c);
}

/* ---- SQL --------------------------------------------------------------------------- */

/* The canonical value of column col (not NULL-safe). */
static void value_expr(struct ls_mysql_buf *b, const struct ls_column *col)
{
	switch (ls_mydrift_class(col->type_name)) {
	case LS_MYD_BIT:
		ls_mysql_put(b, "CAST(");
		ls_mysql_ident(b, col->name);
		ls_mysql_put(b, " + 0 AS CHAR)");
		return;
	case LS_MYD_BINARY:
		ls_mysql_put(b, "LOWER(HEX(");
		ls_mysql_ident(b, col->name);
		ls_mysql_put(b, "))");
		return;
	case LS_MYD_DATE:
	case LS_MYD_DATETIME:
		ls_mysql_put(b, "DATE_FORMAT(");
		ls_mysql_ident(b, col->name);
		ls_mysql_put(b, ls_mydrift_class(col->type_name) == LS_MYD_DATE ? ", '%Y-%m-%d')"
			     : ", '%Y-%m-%d %H:%i:%s.%f')");
		return;
	case LS_MYD_TEXT:
		ls_mysql_put(b, "CONVERT(");
		ls_mysql_ident(b, col->name);
		ls_mysql_put(b, " USING utf8mb4)");
		return;
	default:
		ls_mysql_put(b, "CAST(");
		ls_mysql_ident(b, col->name);
		ls_mysql_put(b, " AS CHAR)");
	}
}

/* "value" with \ and " escaped (X'5C' = \, X'22' = "; hex literals keep the
 * SQL free of backslashes whatever sql_mode says). */
static void quoted(struct ls_mysql_buf *b, const struct ls_column *col)
{
	ls_mysql_put(b, "CONCAT(X'22', REPLACE(REPLACE(");
	value_expr(b, col);
	ls_mysql_put(b, ", X'5C', X'5C5C'), X'22', X'5C22'), X'22')");
}

static void row_text(struct ls_mysql_buf *b, const struct ls_relation *rel)
{
	ls_mysql_put(b, "CONCAT(");
	for (uint16_t i = 0; i < rel->ncols; i++) {
		if (i)
			ls_mysql_put(b, ", ',', ");
		ls_mysql_put(b, "IF(");
		ls_mysql_ident(b, rel->cols[i].name);
		ls_mysql_put(b, " IS NULL, 'N', ");
		quoted(b, &rel->cols[i]);
		ls_mysql_put(b, ")");
	}
	ls_mysql_put(b, ")");
}

static void key_text(struct ls_mysql_buf *b, const struct ls_relation *rel)
{
	ls_mysql_put(b, "CONCAT('['");
	bool first = true;
	for (uint16_t i = 0; i < rel->ncols; i++) {
		if (!(rel->cols[i].flags & LS_COL_KEY))
			continue;
		ls_mysql_put(b, first ? ", " : ", ', ', ");
		first = false;
		quoted(b, &rel->cols[i]);
	}
	ls_mysql_put(b, ", ']')");
}

static bool text_key(const struct ls_column *col)
{
	return ls_mydrift_class(col->type_name) == LS_MYD_TEXT;
}

static void key_col(struct ls_mysql_buf *b, const struct ls_column *col)
{
	if (text_key(col)) {
		ls_mysql_put(b, "CONVERT(");
		ls_mysql_ident(b, col->name);
		ls_mysql_put(b, " USING utf8mb4) COLLATE utf8mb4_bin");
	} else {
		ls_mysql_ident(b, col->name);
	}
}

static void key_list_dir(struct ls_mysql_buf *b, const struct ls_relation *rel, bool desc)
{
	bool first = true;
	for (uint16_t i = 0; i < rel->ncols; i++) {
		if (!(rel->cols[i].flags & LS_COL_KEY))
			continue;
		if (!first)
			ls_mysql_put(b, ", ");
		first = false;
		key_col(b, &rel->cols[i]);
		if (desc)
			ls_mysql_put(b, " DESC");
	}
}

static void key_list(struct ls_mysql_buf *b, const struct ls_relation *rel)
{
	key_list_dir(b, rel, false);
}

/* The k-th value of key text lit, typed like col. */
static void key_value(struct ls_mysql_buf *b, const struct ls_column *col, const char *lit, int k)
{
	char path[32];
	snprintf(path, sizeof path, "$[%d]", k);
	struct ls_mysql_buf v;
	ls_mysql_buf_init(&v);
	ls_mysql_put(&v, "JSON_UNQUOTE(JSON_EXTRACT(");
	ls_mysql_literal(&v, lit, strlen(lit));
	ls_mysql_printf(&v, ", '%s'))", path);
	const char *x = ls_mysql_buf_str(&v);
	int cls = ls_mydrift_class(col->type_name);
	bool uns = strstr(col->type_name, "unsigned") != NULL;
	if (cls == LS_MYD_TEXT)
		ls_mysql_printf(b, "CONVERT(%s USING utf8mb4) COLLATE utf8mb4_bin", x);
	else if (cls == LS_MYD_BINARY)
		ls_mysql_printf(b, "UNHEX(%s)", x);
	else if (cls == LS_MYD_DATE)
		ls_mysql_printf(b, "CAST(%s AS DATE)", x);
	else if (cls == LS_MYD_DATETIME)
		ls_mysql_printf(b, "CAST(%s AS DATETIME(6))", x);
	else if (cls == LS_MYD_NUMBER && (strncasecmp(col->type_name, "dec", 3) == 0 ||
					  strncasecmp(col->type_name, "num", 3) == 0 ||
					  strncasecmp(col->type_name, "fixed", 5) == 0))
		ls_mysql_printf(b, "CAST(%s AS DECIMAL(65,30))", x);
	else if (cls == LS_MYD_NUMBER || cls == LS_MYD_BIT)
		ls_mysql_printf(b, "CAST(%s AS %s)", x, uns || cls == LS_MYD_BIT ? "UNSIGNED"
											: "SIGNED");
	else
		ls_mysql_put(b, x);
	ls_mysql_buf_free(&v);
}

static void bound(struct ls_mysql_buf *b, const struct ls_relation *rel, const char *lit,
		  const char *op)
{
	ls_mysql_put(b, "(");
	key_list(b, rel);
	ls_mysql_printf(b, ") %s (", op);
	int k = 0;
	for (uint16_t i = 0; i < rel->ncols; i++) {
		if (!(rel->cols[i].flags & LS_COL_KEY))
			continue;
		if (k)
			ls_mysql_put(b, ", ");
		key_value(b, &rel->cols[i], lit, k++);
	}
	ls_mysql_put(b, ")");
}

static void range_where(struct ls_mysql_buf *b, const struct ls_relation *rel, const char *lo,
			const char *hi)
{
	if (lo)
		bound(b, rel, lo, ">");
	if (lo && hi)
		ls_mysql_put(b, " AND ");
	if (hi)
		bound(b, rel, hi, "<=");
	if (!lo && !hi)
		ls_mysql_put(b, "TRUE");
}

static int check_rel(const struct ls_relation *rel, struct ls_err *err)
{
	if (ls_relation_nkeys(rel) == 0)
		return ls_err_set(err, false, "%s.%s has no key", rel->schema, rel->name);
	for (uint16_t i = 0; i < rel->ncols; i++)
		if (ls_mydrift_class(rel->cols[i].type_name) == 0)
			return ls_err_set(err, false, "%s.%s column %s: type %s cannot be checked "
					  "on MySQL (drift checks on a MySQL target need a MySQL "
					  "source)", rel->schema, rel->name, rel->cols[i].name,
					  rel->cols[i].type_name);
	return 0;
}

/* ---- calls --------------------------------------------------------------------------- */

/* lock: a locking read (the source's transactions, see the header). */
static int do_checksum(struct ls_drift_conn *c, const struct ls_relation *rel, const char *lo,
		       const char *hi, bool lock, uint64_t *rows, char *hash, size_t hashlen,
		       struct ls_err *err)
{
	struct ls_mysql_buf b;
	ls_mysql_buf_init(&b);
	ls_mysql_put(&b, "SELECT COUNT(*), COALESCE(MD5(GROUP_CONCAT(MD5(");
	row_text(&b, rel);
	ls_mysql_put(&b, ") ORDER BY ");
	key_list(&b, rel);
	ls_mysql_put(&b, " SEPARATOR '')), '') FROM ");
	ls_mysql_qualified(&b, rel->schema, rel->name);
	ls_mysql_put(&b, " WHERE ");
	range_where(&b, rel, lo, hi);
	if (lock)
		ls_mysql_put(&b, LOCKED);
	if (b.oom) {
		ls_mysql_buf_free(&b);
		return ls_err_set(err, false, "out of memory");
	}
	int rc = run(c, ls_mysql_buf_str(&b), "chunk checksum", err);
	ls_mysql_buf_free(&b);
	if (rc < 0)
		return -1;
	MYSQL_RES *res = mysql_store_result(c->m);
	MYSQL_ROW r = res ? mysql_fetch_row(res) : NULL;
	if (r == NULL) {
		mysql_free_result(res);
		return my_fail(c, "chunk checksum", err);
	}
	*rows = strtoull(r[0] ? r[0] : "0", NULL, 10);
	snprintf(hash, hashlen, "%s", r[1] ? r[1] : "");
	mysql_free_result(res);
	return 0;
}

static int do_rows(struct ls_drift_conn *c, const struct ls_relation *rel, const char *lo,
		   const char *hi, bool lock,
		   int (*row)(void *ctx, const char *key, const char *hash), void *ctx,
		   struct ls_err *err)
{
	struct ls_mysql_buf b;
	ls_mysql_buf_init(&b);
	ls_mysql_put(&b, "SELECT ");
	key_text(&b, rel);
	ls_mysql_put(&b, ", MD5(");
	row_text(&b, rel);
	ls_mysql_put(&b, ") FROM ");
	ls_mysql_qualified(&b, rel->schema, rel->name);
	ls_mysql_put(&b, " WHERE ");
	range_where(&b, rel, lo, hi);
	ls_mysql_put(&b, " ORDER BY ");
	key_list(&b, rel);
	if (lock)
		ls_mysql_put(&b, LOCKED);
	if (b.oom) {
		ls_mysql_buf_free(&b);
		return ls_err_set(err, false, "out of memory");
	}
	int rc = run(c, ls_mysql_buf_str(&b), "chunk rows", err);
	ls_mysql_buf_free(&b);
	if (rc < 0)
		return -1;
	MYSQL_RES *res = mysql_use_result(c->m);
	if (res == NULL)
		return my_fail(c, "chunk rows", err);
	MYSQL_ROW r;
	while (rc == 0 && (r = mysql_fetch_row(res)) != NULL)
		if (row(ctx, r[0] ? r[0] : "", r[1] ? r[1] : "") < 0)
			rc = ls_err_set(err, false, "out of memory");
	if (rc == 0 && mysql_errno(c->m) != 0)
		rc = my_fail(c, "chunk rows", err);
	while (rc < 0 && mysql_fetch_row(res) != NULL)
		;
	mysql_free_result(res);
	return rc;
}

/* A copy of rel in which each column whose type is not MySQL's (a
 * PostgreSQL source's relation) has the MySQL type its target column got
 * (my_sql.h's mapping), so the canonical text is the target column's. */
static struct ls_relation *target_types(const struct ls_relation *rel, struct ls_err *err)
{
	struct ls_relation *m = ls_relation_dup(rel);
	if (m == NULL)
		return ls_err_set(err, false, "out of memory"), NULL;
	for (uint16_t i = 0; i < m->ncols; i++) {
		struct ls_column *col = &m->cols[i];
		struct ls_mysql_coltype ct;
		struct ls_err e;
		if (ls_mydrift_class(col->type_name) != 0 ||
		    ls_mysql_coltype(col, (col->flags & LS_COL_KEY) != 0, &ct, &e) < 0)
			continue;   /* check_rel names a type left without a class */
		char *t = strdup(ct.sql);
		if (t == NULL) {
			ls_relation_free(m);
			return ls_err_set(err, false, "out of memory"), NULL;
		}
		free(col->type_name);
		col->type_name = t;
	}
	return m;
}

int ls_mydrift_checksum(struct ls_drift_conn *c, const struct ls_relation *rel, const char *lo,
			const char *hi, uint64_t *rows, char *hash, size_t hashlen,
			struct ls_err *err)
{
	struct ls_relation *m = target_types(rel, err);
	if (m == NULL)
		return -1;
	int rc = check_rel(m, err) < 0 || ensure(c, err) < 0 ? -1 :
		 do_checksum(c, m, lo, hi, false, rows, hash, hashlen, err);
	ls_relation_free(m);
	return rc;
}

int ls_mydrift_rows(struct ls_drift_conn *c, const struct ls_relation *rel, const char *lo,
		    const char *hi, int (*row)(void *ctx, const char *key, const char *hash),
		    void *ctx, struct ls_err *err)
{
	struct ls_relation *m = target_types(rel, err);
	if (m == NULL)
		return -1;
	int rc = check_rel(m, err) < 0 || ensure(c, err) < 0 ? -1 :
		 do_rows(c, m, lo, hi, false, row, ctx, err);
	ls_relation_free(m);
	return rc;
}

/* ---- source side (see the header) ------------------------------------------------------- */

static void rollback(struct ls_drift_conn *c)
{
	if (c->m != NULL)
		(void)mysql_query(c->m, "ROLLBACK");
}

/* The marker table, created when missing (checked first: a CREATE ... IF
 * NOT EXISTS would still go to the binlog on every open). */
static int marker_table(struct ls_drift_conn *c, struct ls_err *err)
{
	if (run(c, "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = '"
		LS_MYDRIFT_MARKER_DB "' AND TABLE_NAME = '" LS_MYDRIFT_MARKER_TABLE "'",
		"looking for the marker table", err) < 0)
		return -1;
	MYSQL_RES *r = mysql_store_result(c->m);
	bool have = r != NULL && mysql_num_rows(r) > 0;
	mysql_free_result(r);
	if (have)
		return 0;
	if (run(c, "CREATE DATABASE IF NOT EXISTS `" LS_MYDRIFT_MARKER_DB "`",
		"creating the marker database", err) < 0 ||
	    run(c, "CREATE TABLE IF NOT EXISTS `" LS_MYDRIFT_MARKER_DB "`.`"
		LS_MYDRIFT_MARKER_TABLE "` (id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,"
		" payload longblob NOT NULL) ENGINE=InnoDB", "creating the marker table", err) < 0)
		return -1;
	ls_info("drift: created %s.%s on the source for drift markers", LS_MYDRIFT_MARKER_DB,
		LS_MYDRIFT_MARKER_TABLE);
	return 0;
}

static int src_open(const struct ls_config *cfg, struct ls_drift_conn **out, struct ls_err *err)
{
	if (cfg->source.conninfo == NULL)
		return ls_err_set(err, false, "no source conninfo");
	if (ls_mydrift_open(cfg->source.conninfo, out, err) < 0)
		return ls_err_prefix(err, "drift source");
	if (marker_table(*out, err) < 0) {
		ls_mydrift_close(*out);
		*out = NULL;
		return ls_err_prefix(err, "drift source");
	}
	return 0;
}

static int begin(struct ls_drift_conn *c, const struct ls_relation *rel, struct ls_err *err)
{
	if (check_rel(rel, err) < 0 || ensure(c, err) < 0)
		return -1;
	return run(c, "START TRANSACTION", "begin", err);
}

/* Writes the marker (insert + delete of its row, see the header) and
 * commits; rolls back on failure. */
static int marker_commit(struct ls_drift_conn *c, const struct ls_drift_marker *m,
			 struct ls_err *err)
{
	struct ls_drift_buf p = { 0 };
	struct ls_mysql_buf b;
	ls_mysql_buf_init(&b);
	if (ls_drift_marker_encode(m, &p) < 0) {
		ls_drift_buf_free(&p);
		rollback(c);
		return ls_err_set(err, false, "out of memory");
	}
	ls_mysql_put(&b, "INSERT INTO `" LS_MYDRIFT_MARKER_DB "`.`" LS_MYDRIFT_MARKER_TABLE
		     "` (payload) VALUES (");
	ls_mysql_hex(&b, p.data ? p.data : "", p.len);
	ls_mysql_put(&b, ")");
	ls_drift_buf_free(&p);
	int rc = b.oom ? ls_err_set(err, false, "out of memory")
		 : run(c, ls_mysql_buf_str(&b), "writing the marker", err);
	ls_mysql_buf_free(&b);
	if (rc == 0)
		rc = run(c, "DELETE FROM `" LS_MYDRIFT_MARKER_DB "`.`" LS_MYDRIFT_MARKER_TABLE
			 "` WHERE id = LAST_INSERT_ID()", "removing the marker row", err);
	if (rc == 0)
		rc = run(c, "COMMIT", "commit", err);
	if (rc < 0)
		rollback(c);
	return rc;
}

/* The chunk_rows-th key after lo (locking every row up to it), or NULL
 * (*hi) when fewer rows remain (then up to the end of the table). */
/* The first key text of the result of sql, or NULL (*out) for no rows. */
static int first_key(struct ls_drift_conn *c, const char *sql, const char *what, char **out,
		     struct ls_err *err)
{
	*out = NULL;
	if (run(c, sql, what, err) < 0)
		return -1;
	MYSQL_RES *res = mysql_store_result(c->m);
	if (res == NULL)
		return my_fail(c, what, err);
	int rc = 0;
	MYSQL_ROW r = mysql_fetch_row(res);
	if (r != NULL && r[0] != NULL && (*out = strdup(r[0])) == NULL)
		rc = ls_err_set(err, false, "out of memory");
	mysql_free_result(res);
	return rc;
}

/* The key text of the offset-th row in key order (descending: desc) with a
 * key in (lo, bound] (either may be NULL), or NULL (*out) when there is
 * none; lock: a locking read (inside the source's transactions). */
static int key_at(struct ls_drift_conn *c, const struct ls_relation *rel, const char *lo,
		  const char *bound, bool desc, int offset, bool lock, char **out,
		  struct ls_err *err)
{
	*out = NULL;
	struct ls_mysql_buf b;
	ls_mysql_buf_init(&b);
	ls_mysql_put(&b, "SELECT ");
	key_text(&b, rel);
	ls_mysql_put(&b, " FROM ");
	ls_mysql_qualified(&b, rel->schema, rel->name);
	ls_mysql_put(&b, " WHERE ");
	range_where(&b, rel, lo, bound);
	ls_mysql_put(&b, " ORDER BY ");
	key_list_dir(&b, rel, desc);
	ls_mysql_printf(&b, " LIMIT %d, 1%s", offset, lock ? LOCKED : "");
	if (b.oom) {
		ls_mysql_buf_free(&b);
		return ls_err_set(err, false, "out of memory");
	}
	int rc = first_key(c, ls_mysql_buf_str(&b), desc ? "greatest key" : "chunk bound", out, err);
	ls_mysql_buf_free(&b);
	return rc;
}

/* The chunk_rows-th key after lo (and not after bound, when given), or
 * NULL (*hi) when fewer rows remain. */
static int upper_key(struct ls_drift_conn *c, const struct ls_relation *rel, const char *lo,
		     const char *bound, int chunk_rows, char **hi, struct ls_err *err)
{
	return key_at(c, rel, lo, bound, false, chunk_rows > 0 ? chunk_rows - 1 : 0, true, hi, err);
}

static int src_chunk(struct ls_drift_conn *c, const struct ls_relation *rel,
		     struct ls_drift_marker *m, const char *bound, int chunk_rows, char **hi,
		     uint64_t *rows, char *hash, struct ls_err *err)
{
	*hi = NULL;
	if (begin(c, rel, err) < 0)
		return -1;
	if (ls_drift_chunk_end(c, rel, m->lo, bound, chunk_rows, upper_key, hi, err) < 0 ||
	    do_checksum(c, rel, m->lo, *hi, true, rows, hash, LS_DRIFT_HASH_MAX, err) < 0) {
		rollback(c);
		goto fail;
	}
	m->hi = *hi;
	if (marker_commit(c, m, err) == 0)
		return 0;
fail:
	free(*hi);
	*hi = NULL;
	m->hi = NULL;
	return -1;
}

/* The table's greatest key now (the end of a check's walk). */
static int src_max_key(struct ls_drift_conn *c, const struct ls_relation *rel, char **out,
		       struct ls_err *err)
{
	*out = NULL;
	if (check_rel(rel, err) < 0 || ensure(c, err) < 0)
		return -1;
	return key_at(c, rel, NULL, NULL, true, 0, false, out, err);
}

static int src_rows(struct ls_drift_conn *c, const struct ls_relation *rel,
		    struct ls_drift_marker *m,
		    int (*row)(void *ctx, const char *key, const char *hash), void *ctx,
		    struct ls_err *err)
{
	if (begin(c, rel, err) < 0)
		return -1;
	if (do_rows(c, rel, m->lo, m->hi, true, row, ctx, err) < 0) {
		rollback(c);
		return -1;
	}
	return marker_commit(c, m, err);
}

/* ---- repair ------------------------------------------------------------------------------ */

/* Column col as the snapshot writes it (my_source.h): the form a target
 * takes for a MySQL-typed column's text value. */
static void repair_value(struct ls_mysql_buf *b, const struct ls_column *col)
{
	int cls = ls_mydrift_class(col->type_name);
	if (cls == LS_MYD_BINARY) {
		ls_mysql_put(b, "CONCAT(X'5C78', LOWER(HEX(");   /* \x */
		ls_mysql_ident(b, col->name);
		ls_mysql_put(b, ")))");
	} else if (cls == LS_MYD_BIT) {
		ls_mysql_put(b, "CAST(");
		ls_mysql_ident(b, col->name);
		ls_mysql_put(b, " + 0 AS CHAR)");
	} else {
		ls_mysql_ident(b, col->name);
	}
}

/* SELECT key text, every column (repair_value) of the rows with these keys,
 * locking them (and the gaps of absent keys). */
static int repair_sql(struct ls_mysql_buf *b, const struct ls_relation *rel,
		      const char *const *keys, size_t nkeys)
{
	ls_mysql_put(b, "SELECT ");
	key_text(b, rel);
	for (uint16_t i = 0; i < rel->ncols; i++) {
		ls_mysql_put(b, ", ");
		repair_value(b, &rel->cols[i]);
	}
	ls_mysql_put(b, " FROM ");
	ls_mysql_qualified(b, rel->schema, rel->name);
	ls_mysql_put(b, " WHERE ");
	for (size_t k = 0; k < nkeys; k++) {
		if (k)
			ls_mysql_put(b, " OR ");
		bound(b, rel, keys[k], "=");
	}
	if (nkeys == 0)
		ls_mysql_put(b, "FALSE");
	ls_mysql_put(b, LOCKED);
	return b->oom ? -1 : 0;
}

/* Splits key text ["v", "w"] (my_drift.h) into its values, unescaped in
 * place in buf (a copy of the key); -1 when malformed or not n values. */
static int key_split(char *buf, char **vals, unsigned n)
{
	char *p = buf, *o;
	unsigned k = 0;
	if (*p++ != '[')
		return -1;
	while (*p == '"' && k < n) {
		vals[k++] = o = ++p;
		for (; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			*o++ = *p;
		}
		if (*p != '"')
			return -1;
		p++;
		*o = '\0';
		if (p[0] == ',' && p[1] == ' ')
			p += 2;
	}
	return k == n && *p == ']' ? 0 : -1;
}

/* An absent row: its key columns from the key text (binary ones as "\x"
 * hex, like repair_value), the rest NULL. */
static int absent_row(const struct ls_relation *rel, const char *key, struct ls_value *vals,
		      struct ls_drift_buf *out, struct ls_err *err)
{
	unsigned nk = ls_relation_nkeys(rel);
	size_t len = strlen(key);
	char *buf = malloc(len + 1), **kv = calloc(nk + 1, sizeof *kv);
	char *hex = malloc(len + 3);
	int rc = 0;
	if (buf == NULL || kv == NULL || hex == NULL) {
		rc = ls_err_set(err, false, "out of memory");
		goto out;
	}
	memcpy(buf, key, len + 1);
	if (key_split(buf, kv, nk) < 0) {
		rc = ls_err_set(err, false, "%s.%s: malformed key %s", rel->schema, rel->name, key);
		goto out;
	}
	unsigned k = 0;
	for (uint16_t i = 0; i < rel->ncols; i++) {
		vals[i] = (struct ls_value){ .kind = LS_VAL_NULL };
		if (!(rel->cols[i].flags & LS_COL_KEY))
			continue;
		const char *v = kv[k++];
		if (ls_mydrift_class(rel->cols[i].type_name) == LS_MYD_BINARY) {
			snprintf(hex, len + 3, "\\x%s", v);
			v = hex;
		}
		vals[i] = (struct ls_value){ .kind = LS_VAL_TEXT, .data = v,
					     .len = (uint32_t)strlen(v) };
	}
	ls_drift_repair_row_add(out, false, vals, rel->ncols);
out:
	free(buf);
	free(kv);
	free(hex);
	return rc;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The REPAIR rows: one per row found, one absent row per key not found. */
static int repair_rows(struct ls_drift_conn *c, const struct ls_relation *rel,
		       const char *const *keys, size_t nkeys, struct ls_drift_buf *out,
		       struct ls_err *err)
{
	MYSQL_RES *res = mysql_store_result(c->m);
	if (res == NULL)
		return my_fail(c, "repair rows", err);
	const char **sorted = calloc(nkeys + 1, sizeof *sorted);
	bool *found = calloc(nkeys + 1, sizeof *found);
	struct ls_value *vals = calloc(rel->ncols + 1u, sizeof *vals);
	int rc = 0;
	if (sorted == NULL || found == NULL || vals == NULL) {
		rc = ls_err_set(err, false, "out of memory");
		goto out;
	}
	memcpy(sorted, keys, nkeys * sizeof *sorted);
	qsort(sorted, nkeys, sizeof *sorted, str_cmp);
	MYSQL_ROW r;
	while ((r = mysql_fetch_row(res)) != NULL) {
		unsigned long *lens = mysql_fetch_lengths(res);
		const char **hit = r[0] ? bsearch(&r[0], sorted, nkeys, sizeof *sorted, str_cmp)
					: NULL;
		if (hit != NULL)
			found[hit - sorted] = true;
		for (uint16_t i = 0; i < rel->ncols; i++)
			vals[i] = r[i + 1] == NULL ? (struct ls_value){ .kind = LS_VAL_NULL }
				  : (struct ls_value){ .kind = LS_VAL_TEXT, .data = r[i + 1],
						       .len = (uint32_t)lens[i + 1] };
		ls_drift_repair_row_add(out, true, vals, rel->ncols);
	}
	for (size_t k = 0; k < nkeys && rc == 0; k++)
		if (!found[k])
			rc = absent_row(rel, sorted[k], vals, out, err);
	if (rc == 0 && out->oom)
		rc = ls_err_set(err, false, "out of memory");
out:
	mysql_free_result(res);
	free(sorted);
	free(found);
	free(vals);
	return rc;
}

static int src_repair(struct ls_drift_conn *c, const struct ls_relation *rel,
		      struct ls_drift_marker *m, const char *const *keys, size_t nkeys,
		      struct ls_err *err)
{
	struct ls_mysql_buf b;
	ls_mysql_buf_init(&b);
	struct ls_drift_buf rows = { 0 };
	int rc = -1;
	if (check_rel(rel, err) < 0)
		goto out;
	if (repair_sql(&b, rel, keys, nkeys) < 0) {
		ls_err_set(err, false, "out of memory");
		goto out;
	}
	if (begin(c, rel, err) < 0)
		goto out;
	if (run(c, ls_mysql_buf_str(&b), "repair rows", err) < 0 ||
	    repair_rows(c, rel, keys, nkeys, &rows, err) < 0) {
		rollback(c);
		goto out;
	}
	m->rows = rows.data ? rows.data : "";
	m->rows_len = rows.len;
	rc = marker_commit(c, m, err);
out:
	m->rows = NULL;
	m->rows_len = 0;
	ls_drift_buf_free(&rows);
	ls_mysql_buf_free(&b);
	return rc;
}

/* ---- describe ------------------------------------------------------------------------------ */

/* The table as the catalog describes it now, built as the stream builds it
 * (my_source), so key flags and type names match the stream's. */
static int src_describe(struct ls_drift_conn *c, const struct ls_relation *rel,
			struct ls_relation **out, struct ls_err *err)
{
	*out = NULL;
	if (ensure(c, err) < 0)
		return -1;
	size_t len = strlen(rel->schema) + strlen(rel->name) + 2;
	char *pat = malloc(len);
	if (pat == NULL)
		return ls_err_set(err, false, "out of memory");
	snprintf(pat, len, "%s.%s", rel->schema, rel->name);
	struct ls_mytables tabs = { 0 };
	int rc = ls_mysetup_select_tables(c->m, pat, NULL, &tabs, err);
	free(pat);
	const struct ls_mytable *t = rc < 0 ? NULL :
		ls_mysetup_tables_find(&tabs, rel->schema, rel->name);
	if (rc == 0 && t == NULL)
		rc = ls_err_set(err, false, "table %s.%s is gone", rel->schema, rel->name);
	if (rc == 0 && (*out = ls_my_source_relation(c->m, t, rel->id)) == NULL)
		rc = ls_err_set(err, false, "out of memory");
	ls_mysetup_tables_free(&tabs);
	if (rc < 0)
		return ls_err_prefix(err, "reading the definition of %s.%s", rel->schema,
				     rel->name);
	return 0;
}

const struct ls_drift_source_ops ls_my_drift_source_ops = {
	.open = src_open,
	.close = ls_mydrift_close,
	.chunk = src_chunk,
	.max_key = src_max_key,
	.rows = src_rows,
	.repair = src_repair,
	.describe = src_describe,
};
