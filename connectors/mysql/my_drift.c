#include "connectors/mysql/my_drift.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mysql.h>

#include "connectors/mysql/my_sql.h"

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
	/* UTC timestamps; a whole chunk's row hashes fit in GROUP_CONCAT */
	if (run(c, "SET SESSION time_zone = '+00:00', SESSION group_concat_max_len = 1073741824,"
		" SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'", "session setup", err) < 0) {
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

static void key_list(struct ls_mysql_buf *b, const struct ls_relation *rel)
{
	bool first = true;
	for (uint16_t i = 0; i < rel->ncols; i++) {
		if (!(rel->cols[i].flags & LS_COL_KEY))
			continue;
		if (!first)
			ls_mysql_put(b, ", ");
		first = false;
		key_col(b, &rel->cols[i]);
	}
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

int ls_mydrift_checksum(struct ls_drift_conn *c, const struct ls_relation *rel, const char *lo,
			const char *hi, uint64_t *rows, char *hash, size_t hashlen,
			struct ls_err *err)
{
	if (check_rel(rel, err) < 0 || ensure(c, err) < 0)
		return -1;
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

int ls_mydrift_rows(struct ls_drift_conn *c, const struct ls_relation *rel, const char *lo,
		    const char *hi, int (*row)(void *ctx, const char *key, const char *hash),
		    void *ctx, struct ls_err *err)
{
	if (check_rel(rel, err) < 0 || ensure(c, err) < 0)
		return -1;
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
