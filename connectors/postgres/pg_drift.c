#include "connectors/postgres/pg_drift.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "json.h"
#include "log.h"
#include "connectors/mysql/my_drift.h"
#include "connectors/mysql/my_sql.h"
#include "connectors/postgres/pg_mysqltypes.h"
#include "connectors/postgres/pg_setup.h"
#include "connectors/postgres/pg_sql.h"
#include "connectors/postgres/pg_target.h"

#define LOCK_TIMEOUT "2s"

struct ls_drift_conn {
	PGconn *pg;
	char *conninfo;                    /* secret */
	bool no_lock;                      /* the role may not lock: run without */
	bool mycanon;                      /* a source checked against MySQL targets */
};

static const char SESSION_SQL[] =
	"SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres';"
	"SET extra_float_digits = 3; SET bytea_output = 'hex'; SET statement_timeout = '300s';"
	"SET application_name = 'lockstep_drift'";

/* ---- errors ------------------------------------------------------------------ */

static int pq_fail(struct ls_drift_conn *c, PGresult *r, const char *what, struct ls_err *err)
{
	const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	char msg[300];
	snprintf(msg, sizeof msg, "%s", r && PQresultErrorMessage(r)[0] ? PQresultErrorMessage(r)
					 : PQerrorMessage(c->pg));
	msg[strcspn(msg, "\n")] = '\0';
	bool retry = st == NULL || ls_pgtarget_sqlstate_retryable(st) ||
		     PQstatus(c->pg) != CONNECTION_OK;
	ls_err_set(err, retry, "%s: %s%s%s%s", what, msg, st ? " (SQLSTATE " : "", st ? st : "",
		   st ? ")" : "");
	return -1;
}

static bool is_state(PGresult *r, const char *st)
{
	const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	return s && strcmp(s, st) == 0;
}

/* ---- connection ------------------------------------------------------------------ */

static int connect_conn(struct ls_drift_conn *c, struct ls_err *err)
{
	PQfinish(c->pg);
	const char *keys[] = { "dbname", NULL };
	const char *vals[] = { c->conninfo, NULL };
	c->pg = PQconnectdbParams(keys, vals, 1);
	if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) {
		char m[300];
		snprintf(m, sizeof m, "%s", c->pg ? PQerrorMessage(c->pg) : "out of memory");
		m[strcspn(m, "\n")] = '\0';
		ls_err_set(err, true, "connection to %s:%s failed: %s", c->pg ? PQhost(c->pg) : "?",
			   c->pg ? PQport(c->pg) : "?", m);
		PQfinish(c->pg);
		c->pg = NULL;
		return -1;
	}
	PGresult *r = PQexec(c->pg, SESSION_SQL);
	int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : pq_fail(c, r, "session setup", err);
	PQclear(r);
	return rc;
}

static int ensure(struct ls_drift_conn *c, struct ls_err *err)
{
	if (c->pg && PQstatus(c->pg) == CONNECTION_OK) {
		if (PQtransactionStatus(c->pg) == PQTRANS_IDLE)
			return 0;
		PQclear(PQexec(c->pg, "ROLLBACK"));
		if (PQtransactionStatus(c->pg) == PQTRANS_IDLE)
			return 0;
	}
	return connect_conn(c, err);
}

int ls_pgdrift_open(const char *conninfo, struct ls_drift_conn **out, struct ls_err *err)
{
	*out = NULL;
	struct ls_drift_conn *c = calloc(1, sizeof *c);
	if (c == NULL || (c->conninfo = strdup(conninfo)) == NULL) {
		free(c);
		return ls_err_set(err, false, "out of memory");
	}
	if (connect_conn(c, err) < 0) {
		ls_pgdrift_close(c);
		return -1;
	}
	*out = c;
	return 0;
}

void ls_pgdrift_close(struct ls_drift_conn *c)
{
	if (c == NULL)
		return;
	PQfinish(c->pg);
	free(c->conninfo);
	free(c);
}

static int src_open(const struct ls_config *cfg, struct ls_drift_conn **out, struct ls_err *err)
{
	if (cfg->source.conninfo == NULL)
		return ls_err_set(err, false, "no source conninfo");
	if (ls_pgdrift_open(cfg->source.conninfo, out, err) < 0)
		return ls_err_prefix(err, "drift source");
	/* lib/drift.c refuses PostgreSQL and MySQL targets side by side */
	for (int i = 0; i < cfg->ntargets; i++)
		if (cfg->targets[i].type == LS_ENGINE_MYSQL)
			(*out)->mycanon = true;
	return 0;
}

/* ---- SQL ---------------------------------------------------------------------------- */

/* Text-like types compare with COLLATE "C" so both servers order alike. */
static bool collatable(const char *type_name)
{
	char n[128];
	ls_pgsql_type_norm(type_name, n, sizeof n);
	if (strchr(n, '[') != NULL)
		return false;
	return strncmp(n, "text", 4) == 0 || strncmp(n, "character", 9) == 0 ||
	       strcmp(n, "name") == 0 || strcmp(n, "citext") == 0 ||
	       strcmp(n, "bpchar") == 0 || strncmp(n, "varchar", 7) == 0;
}

/* ---- MySQL-typed relations (a MySQL source): my_drift.h's canonical text --- */

static bool my_col(const struct ls_column *col)
{
	return ls_pgmy_is_mysql_column(col);
}

/* A target column, per column of a check's relation (the `has` arrays;
 * NULL: all there, nothing particular). */
enum {
	TC_MISSING = 0,    /* not on the target: reads as NULL */
	TC_PRESENT,
	TC_BOOL,           /* a MySQL-typed column held as boolean (the old side of a
			      cutover from PostgreSQL, ls_pgmy_takes_back): 1/0 */
	TC_OUTPUT,         /* held as inet, cidr or macaddr: the output text */
};

/* How a MySQL-typed column reads on a target column of PostgreSQL type t. */
static uint8_t target_kind(const char *t)
{
	if (strcmp(t, "boolean") == 0)
		return TC_BOOL;
	if (strcmp(t, "inet") == 0 || strcmp(t, "cidr") == 0 || strcmp(t, "macaddr") == 0)
		return TC_OUTPUT;
	return TC_PRESENT;
}

static void pgmy_value(struct ls_pgsql_buf *b, const struct ls_column *col, const char *alias);

/* alias."col", or "col". */
static void col_ref(struct ls_pgsql_buf *id, const struct ls_column *col, const char *alias)
{
	if (alias)
		ls_pgsql_printf(id, "%s.", alias);
	ls_pgsql_ident(id, col->name);
}

/* Value texts as MariaDB shows them, of a PostgreSQL column c (SQL). */
static void bool_text(struct ls_pgsql_buf *b, const char *c)
{
	ls_pgsql_printf(b, "(CASE WHEN %s THEN '1' ELSE '0' END)", c);
}

/* The type's output text, as the stream carried it (inet::text adds /32). */
static void output_text(struct ls_pgsql_buf *b, const char *c)
{
	ls_pgsql_printf(b, "format('%%s', %s)", c);
}

/* A double precision value's text as MariaDB writes a DOUBLE: the same
 * shortest digits, but 1e20 (not 1e+20), 1e-16, and plain decimals from
 * 1e-15 up to 1e15 (PostgreSQL switches to 1.5e-07 below 1e-4). */
static void dbl_text(struct ls_pgsql_buf *b, const char *c)
{
	ls_pgsql_printf(b, "(CASE WHEN format('%%s', %s) ~ 'e-(0[5-9]|1[0-5])$' THEN "
			"format('%%s', %s)::numeric::text ELSE regexp_replace(format('%%s', %s), "
			"'e\\+?(-?)0*([0-9])', 'e\\1\\2') END)", c, c, c);
}

static bool my_double(const char *type_name)
{
	return strncasecmp(type_name, "double", 6) == 0 || strncasecmp(type_name, "real", 4) == 0;
}

/* col's canonical value: a MySQL-typed column's own (read as kind says on
 * this target), or a PostgreSQL column's as its MySQL target column holds
 * it (pgmy_value). */
static void my_value(struct ls_pgsql_buf *b, const struct ls_column *col, const char *alias,
		     uint8_t kind)
{
	if (!my_col(col)) {
		pgmy_value(b, col, alias);
		return;
	}
	if (kind == TC_BOOL || kind == TC_OUTPUT || my_double(col->type_name)) {
		struct ls_pgsql_buf id;
		ls_pgsql_buf_init(&id);
		col_ref(&id, col, alias);
		const char *c = ls_pgsql_buf_str(&id);
		if (kind == TC_BOOL)
			bool_text(b, c);
		else if (kind == TC_OUTPUT)
			output_text(b, c);
		else
			dbl_text(b, c);
		ls_pgsql_buf_free(&id);
		return;
	}
	int cls = ls_mydrift_class(col->type_name);
	const char *fn = cls == LS_MYD_BINARY ? "encode(" : cls == LS_MYD_DATE ||
			 cls == LS_MYD_DATETIME ? "to_char(" : "(";
	ls_pgsql_put(b, fn);
	col_ref(b, col, alias);
	ls_pgsql_put(b, cls == LS_MYD_BINARY ? ", 'hex')" : cls == LS_MYD_DATE ? ", 'YYYY-MM-DD')"
		     : cls == LS_MYD_DATETIME ? ", 'YYYY-MM-DD HH24:MI:SS.US')" : ")::text");
}

/* ---- PostgreSQL-typed relations checked against a MySQL target -------------------- */

/* A PostgreSQL column as a MySQL target holds it: the MySQL type
 * (my_sql.h's mapping), its class in my_drift.h's canonical text, and what
 * the PostgreSQL side must do to render the same text. */
struct pgmy_col {
	int cls;                           /* LS_MYD_*; 0: cannot be compared */
	bool boolean, numeric_any, bytea, dbl;
	int time_fsp;                      /* TIME(fsp) */
	char why[160];                     /* when cls is 0 */
};

static void pgmy_classify(const struct ls_column *col, struct pgmy_col *out)
{
	memset(out, 0, sizeof *out);
	struct ls_mysql_coltype ct;
	struct ls_err e;
	char n[128];
	ls_pgsql_type_norm(col->type_name, n, sizeof n);
	if (ls_mysql_coltype(col, (col->flags & LS_COL_KEY) != 0, &ct, &e) < 0) {
		snprintf(out->why, sizeof out->why, "%.150s", e.msg);
		return;
	}
	if (ct.conv == LS_MYCONV_ARRAY || strcmp(n, "real") == 0) {
		snprintf(out->why, sizeof out->why, "its MySQL column (%.60s) holds another text",
			 ct.sql);
		return;
	}
	out->cls = ls_mydrift_class(ct.sql);
	out->boolean = ct.conv == LS_MYCONV_BOOL;
	out->numeric_any = strcmp(ct.sql, "DECIMAL(65,30)") == 0;
	out->bytea = ct.conv == LS_MYCONV_BYTEA;
	out->dbl = strcmp(n, "double precision") == 0;
	if (out->cls == LS_MYD_TIME)
		out->time_fsp = strchr(ct.sql, '(') ? atoi(strchr(ct.sql, '(') + 1) : 0;
	if (out->cls == 0)
		snprintf(out->why, sizeof out->why, "no canonical text for MySQL %.60s", ct.sql);
}

static void pgmy_value(struct ls_pgsql_buf *b, const struct ls_column *col, const char *alias)
{
	struct pgmy_col m;
	pgmy_classify(col, &m);
	struct ls_pgsql_buf id;
	ls_pgsql_buf_init(&id);
	col_ref(&id, col, alias);
	const char *c = ls_pgsql_buf_str(&id);
	if (m.boolean)
		bool_text(b, c);
	else if (m.dbl)
		dbl_text(b, c);
	else if (m.numeric_any)
		ls_pgsql_printf(b, "(round(%s, 30)::text)", c);
	else if (m.cls == LS_MYD_BINARY)
		ls_pgsql_printf(b, "encode(%s, 'hex')", c);
	else if (m.cls == LS_MYD_DATE)
		ls_pgsql_printf(b, "to_char(%s, 'YYYY-MM-DD')", c);
	else if (m.cls == LS_MYD_DATETIME)
		ls_pgsql_printf(b, "to_char(%s, 'YYYY-MM-DD HH24:MI:SS.US')", c);
	else if (m.cls == LS_MYD_TIME)
		ls_pgsql_printf(b, "substr(to_char(date '2000-01-01' + %s, 'HH24:MI:SS.US'), 1, %d)",
				c, m.time_fsp > 0 ? 9 + m.time_fsp : 8);
	else if (collatable(col->type_name))   /* char(n) without its padding, as MySQL */
		ls_pgsql_printf(b, "(%s)::text", c);
	else
		output_text(b, c);
	ls_pgsql_buf_free(&id);
}

/* Refuses a PostgreSQL relation whose columns a MySQL target cannot show in
 * the same canonical text, or whose keys MySQL orders differently. */
static int pgmy_check(const struct ls_relation *rel, struct ls_err *err)
{
	for (uint16_t i = 0; i < rel->ncols; i++) {
		const struct ls_column *col = &rel->cols[i];
		struct pgmy_col m;
		pgmy_classify(col, &m);
		if (m.cls == 0)
			return ls_err_set(err, false, "%s.%s column %s (%s) cannot be checked against "
					  "MySQL: %s", rel->schema, rel->name, col->name,
					  col->type_name, m.why);
		char n[128];
		ls_pgsql_type_norm(col->type_name, n, sizeof n);
		bool ordered = m.cls != LS_MYD_TEXT || collatable(col->type_name) ||
			       strcmp(n, "uuid") == 0;
		if ((col->flags & LS_COL_KEY) && !ordered)
			return ls_err_set(err, false, "%s.%s key column %s (%s) is ordered otherwise "
					  "on MySQL; the table cannot be checked against MySQL",
					  rel->schema, rel->name, col->name, col->type_name);
	}
	return 0;
}

static void my_quoted(struct ls_pgsql_buf *b, const struct ls_column *col, uint8_t kind)
{
	ls_pgsql_put(b, "('\"' || replace(replace(");
	my_value(b, col, NULL, kind);
	ls_pgsql_put(b, ", '\\', '\\\\'), '\"', '\\\"') || '\"')");
}

/* The row's canonical text; has as in row_hash. */
static void my_row_text(struct ls_pgsql_buf *b, const struct ls_relation *rel, const uint8_t *has)
{
	ls_pgsql_put(b, "(");
	for (uint16_t i = 0; i < rel->ncols; i++) {
		if (i)
			ls_pgsql_put(b, " || ',' || ");
		if (has && !has[i]) {
			ls_pgsql_put(b, "'N'");
			continue;
		}
		ls_pgsql_put(b, "CASE WHEN ");
		ls_pgsql_ident(b, rel->cols[i].name);
		ls_pgsql_put(b, " IS NULL THEN 'N' ELSE ");
		my_quoted(b, &rel->cols[i], has ? has[i] : TC_PRESENT);
		ls_pgsql_put(b, " END");
	}
	ls_pgsql_put(b, ")");
}

static void my_key_text(struct ls_pgsql_buf *b, const struct ls_relation *rel)
{
	ls_pgsql_put(b, "('['");
	bool first = true;
	for (uint16_t i = 0; i < rel->ncols; i++) {
		if (!(rel->cols[i].flags & LS_COL_KEY))
			continue;
		ls_pgsql_put(b, first ? " || " : " || ', ' || ");
		first = false;
		my_quoted(b, &rel->cols[i], TC_PRESENT);
	}
	ls_pgsql_put(b, " || ']')");
}

/* A MySQL-typed key column's value from key text src. */
static void my_key_value(struct ls_pgsql_buf *b, const struct ls_column *col, const char *src,
			 int k)
{
	struct ls_pgmy_type t;
	struct ls_err e;
	int cls = ls_mydrift_class(col->type_name);
	if (cls == LS_MYD_BINARY)
		ls_pgsql_printf(b, "decode((%s)::jsonb ->> %d, 'hex')", src, k);
	else if (ls_pgmy_type(col->type_name, &t, &e) == 0 && ls_pgsql_type_safe(t.pg))
		ls_pgsql_printf(b, "((%s)::jsonb ->> %d)::%s%s", src, k, t.pg,
				cls == LS_MYD_TEXT ? " COLLATE \"C\"" : "");
	else
		ls_pgsql_printf(b, "((%s)::jsonb ->> %d)", src, k);
}

static void key_col(struct ls_pgsql_buf *b, const struct ls_column *col, const char *alias)
{
	col_ref(b, col, alias);
	if (my_col(col) ? ls_mydrift_class(col->type_name) == LS_MYD_TEXT
			: collatable(col->type_name))
		ls_pgsql_put(b, " COLLATE \"C\"");
}

/* "k1", "k2" (with collations), as written in ORDER BY and comparisons. */
static void key_list_dir(struct ls_pgsql_buf *b, const struct ls_relation *rel, const char *alias,
			 bool desc)
{
	bool first = true;
	for (uint16_t i = 0; i < rel->ncols; i++) {
		if (!(rel->cols[i].flags & LS_COL_KEY))
			continue;
		if (!first)
			ls_pgsql_put(b, ", ");
		first = false;
		key_col(b, &rel->cols[i], alias);
		if (desc)
			ls_pgsql_put(b, " DESC");
	}
}

static void key_list(struct ls_pgsql_buf *b, const struct ls_relation *rel, const char *alias)
{
	key_list_dir(b, rel, alias, false);
}

/* The key text: jsonb array of the key columns as text. */
static void key_text(struct ls_pgsql_buf *b, const struct ls_relation *rel, bool canon)
{
	if (canon || ls_pgmy_is_mysql_relation(rel)) {
		my_key_text(b, rel);
		return;
	}
	ls_pgsql_put(b, "jsonb_build_array(");
	bool first = true;
	for (uint16_t i = 0; i < rel->ncols; i++) {
		if (!(rel->cols[i].flags & LS_COL_KEY))
			continue;
		if (!first)
			ls_pgsql_put(b, ", ");
		first = false;
		ls_pgsql_ident(b, rel->cols[i].name);
		ls_pgsql_put(b, "::text");
	}
	ls_pgsql_put(b, ")::text");
}

/* The values of key text `src` (an SQL expression), typed like the columns:
 * (($1::jsonb ->> 0)::integer, ...). */
static void key_values(struct ls_pgsql_buf *b, const struct ls_relation *rel, const char *src,
		       bool canon)
{
	int k = 0;
	for (uint16_t i = 0; i < rel->ncols; i++) {
		if (!(rel->cols[i].flags & LS_COL_KEY))
			continue;
		if (k > 0)
			ls_pgsql_put(b, ", ");
		if (my_col(&rel->cols[i])) {
			my_key_value(b, &rel->cols[i], src, k++);
			continue;
		}
		struct pgmy_col m;
		if (canon && (pgmy_classify(&rel->cols[i], &m), m.bytea)) {
			ls_pgsql_printf(b, "decode((%s)::jsonb ->> %d, 'hex')", src, k++);
			continue;
		}
		ls_pgsql_printf(b, "((%s)::jsonb ->> %d)::%s", src, k, rel->cols[i].type_name);
		if (collatable(rel->cols[i].type_name))
			ls_pgsql_put(b, " COLLATE \"C\"");
		k++;
	}
}

/* WHERE clause for (lo, hi]; parameters numbered from *next. */
static void range_where(struct ls_pgsql_buf *b, const struct ls_relation *rel, bool lo, bool hi,
			int *next, bool canon)
{
	if (!lo && !hi)
		return;
	ls_pgsql_put(b, " WHERE ");
	char p[16];
	if (lo) {
		snprintf(p, sizeof p, "$%d", (*next)++);
		ls_pgsql_put(b, "ROW(");
		key_list(b, rel, NULL);
		ls_pgsql_put(b, ") > ROW(");
		key_values(b, rel, p, canon);
		ls_pgsql_put(b, ")");
	}
	if (hi) {
		snprintf(p, sizeof p, "$%d", (*next)++);
		ls_pgsql_put(b, lo ? " AND ROW(" : "ROW(");
		key_list(b, rel, NULL);
		ls_pgsql_put(b, ") <= ROW(");
		key_values(b, rel, p, canon);
		ls_pgsql_put(b, ")");
	}
}

/* has: which columns the table has (NULL: all); a missing one reads as
 * NULL, like the value the target never received. */
static void row_hash(struct ls_pgsql_buf *b, const struct ls_relation *rel, const uint8_t *has,
		     bool canon)
{
	if (canon || ls_pgmy_is_mysql_relation(rel)) {
		ls_pgsql_put(b, "md5(");
		my_row_text(b, rel, has);
		ls_pgsql_put(b, ")");
		return;
	}
	ls_pgsql_put(b, "md5(ROW(");
	for (uint16_t i = 0; i < rel->ncols; i++) {
		if (i)
			ls_pgsql_put(b, ", ");
		if (has && !has[i])
			ls_pgsql_put(b, "NULL");
		else
			ls_pgsql_ident(b, rel->cols[i].name);
	}
	ls_pgsql_put(b, ")::text)");
}

static int check_rel(const struct ls_relation *rel, struct ls_err *err)
{
	if (ls_relation_nkeys(rel) == 0)
		return ls_err_set(err, false, "%s.%s has no key", rel->schema, rel->name);
	for (uint16_t i = 0; i < rel->ncols; i++)
		if ((rel->cols[i].flags & LS_COL_KEY) && !my_col(&rel->cols[i]) &&
		    !ls_pgsql_type_safe(rel->cols[i].type_name))
			return ls_err_set(err, false, "%s.%s: unsafe type name for column %s",
					  rel->schema, rel->name, rel->cols[i].name);
	return 0;
}

/* check_rel, and for a source checked against MySQL targets pgmy_check. */
static int check_src(struct ls_drift_conn *c, const struct ls_relation *rel, struct ls_err *err)
{
	if (check_rel(rel, err) < 0)
		return -1;
	return c->mycanon ? pgmy_check(rel, err) : 0;
}

/* Runs sql with up to 2 text params; returns the result (caller clears) or
 * NULL with err. */
static PGresult *run(struct ls_drift_conn *c, const char *sql, const char *p1, const char *p2,
		     ExecStatusType want, const char *what, struct ls_err *err)
{
	const char *params[2];
	int n = 0;
	if (p1)
		params[n++] = p1;
	if (p2)
		params[n++] = p2;
	PGresult *r = PQexecParams(c->pg, sql, n, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) == want)
		return r;
	pq_fail(c, r, what, err);
	PQclear(r);
	return NULL;
}

static int checksum_sql(struct ls_pgsql_buf *b, const struct ls_relation *rel, const uint8_t *has,
			bool lo, bool hi, bool canon)
{
	int next = 1;
	ls_pgsql_put(b, "SELECT count(*), coalesce(md5(string_agg(");
	row_hash(b, rel, has, canon);
	ls_pgsql_put(b, ", '' ORDER BY ");
	key_list(b, rel, NULL);
	ls_pgsql_put(b, ")), '') FROM ");
	ls_pgsql_qualified(b, rel->schema, rel->name);
	range_where(b, rel, lo, hi, &next, canon);
	return b->oom ? -1 : 0;
}

static int do_checksum(struct ls_drift_conn *c, const struct ls_relation *rel, const uint8_t *has,
		       const char *lo, const char *hi, uint64_t *rows, char *hash, size_t hashlen,
		       struct ls_err *err)
{
	struct ls_pgsql_buf b;
	ls_pgsql_buf_init(&b);
	if (checksum_sql(&b, rel, has, lo != NULL, hi != NULL, c->mycanon) < 0) {
		ls_pgsql_buf_free(&b);
		return ls_err_set(err, false, "out of memory");
	}
	PGresult *r = run(c, ls_pgsql_buf_str(&b), lo, hi, PGRES_TUPLES_OK, "chunk checksum", err);
	ls_pgsql_buf_free(&b);
	if (r == NULL)
		return -1;
	*rows = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	snprintf(hash, hashlen, "%s", PQgetvalue(r, 0, 1));
	PQclear(r);
	return 0;
}

static int do_rows(struct ls_drift_conn *c, const struct ls_relation *rel, const uint8_t *has,
		   const char *lo, const char *hi,
		   int (*row)(void *ctx, const char *key, const char *hash), void *ctx,
		   struct ls_err *err)
{
	struct ls_pgsql_buf b;
	ls_pgsql_buf_init(&b);
	int next = 1;
	ls_pgsql_put(&b, "SELECT ");
	key_text(&b, rel, c->mycanon);
	ls_pgsql_put(&b, ", ");
	row_hash(&b, rel, has, c->mycanon);
	ls_pgsql_put(&b, " FROM ");
	ls_pgsql_qualified(&b, rel->schema, rel->name);
	range_where(&b, rel, lo != NULL, hi != NULL, &next, c->mycanon);
	ls_pgsql_put(&b, " ORDER BY ");
	key_list(&b, rel, NULL);
	if (b.oom) {
		ls_pgsql_buf_free(&b);
		return ls_err_set(err, false, "out of memory");
	}
	PGresult *r = run(c, ls_pgsql_buf_str(&b), lo, hi, PGRES_TUPLES_OK, "chunk rows", err);
	ls_pgsql_buf_free(&b);
	if (r == NULL)
		return -1;
	int rc = 0;
	for (int i = 0; i < PQntuples(r) && rc == 0; i++)
		if (row(ctx, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1)) < 0)
			rc = ls_err_set(err, false, "out of memory");
	PQclear(r);
	return rc;
}

/* ---- target side ----------------------------------------------------------------------- */

/* Which of rel's columns the target's table has (*has malloc'd; NULL when
 * it has all, or when the table is missing: the checksum then fails on
 * it).  A column the source added that no change has carried yet is not
 * there, and every row differs in it. */
static int target_columns(struct ls_drift_conn *c, const struct ls_relation *rel, uint8_t **has,
			  struct ls_err *err)
{
	*has = NULL;
	struct ls_pgsql_buf q;
	ls_pgsql_buf_init(&q);
	ls_pgsql_qualified(&q, rel->schema, rel->name);
	if (q.oom) {
		ls_pgsql_buf_free(&q);
		return ls_err_set(err, false, "out of memory");
	}
	PGresult *r = run(c, "SELECT attname, pg_catalog.format_type(atttypid, atttypmod) FROM"
			  " pg_catalog.pg_attribute WHERE attrelid = pg_catalog.to_regclass($1) AND"
			  " attnum > 0 AND NOT attisdropped",
			  ls_pgsql_buf_str(&q), NULL, PGRES_TUPLES_OK, "target columns", err);
	ls_pgsql_buf_free(&q);
	if (r == NULL)
		return -1;
	int odd = 0;   /* columns missing, or read by the target's own type */
	uint8_t *h = calloc(rel->ncols + 1u, sizeof *h);
	for (uint16_t i = 0; h && i < rel->ncols; i++) {
		for (int k = 0; k < PQntuples(r) && !h[i]; k++)
			if (strcmp(PQgetvalue(r, k, 0), rel->cols[i].name) == 0)
				h[i] = my_col(&rel->cols[i]) ? target_kind(PQgetvalue(r, k, 1))
							     : TC_PRESENT;
		if (!h[i] && (rel->cols[i].flags & LS_COL_KEY))
			h[i] = TC_PRESENT;   /* a key must be there: fail on it by name */
		odd += h[i] != TC_PRESENT;
	}
	bool table = PQntuples(r) > 0;
	PQclear(r);
	if (h == NULL)
		return ls_err_set(err, false, "out of memory");
	if (odd == 0 || !table)
		free(h);
	else
		*has = h;
	return 0;
}

int ls_pgdrift_checksum(struct ls_drift_conn *c, const struct ls_relation *rel, const char *lo,
			const char *hi, uint64_t *rows, char *hash, size_t hashlen,
			struct ls_err *err)
{
	uint8_t *has;
	if (check_rel(rel, err) < 0 || ensure(c, err) < 0 || target_columns(c, rel, &has, err) < 0)
		return -1;
	int rc = do_checksum(c, rel, has, lo, hi, rows, hash, hashlen, err);
	free(has);
	return rc;
}

int ls_pgdrift_rows(struct ls_drift_conn *c, const struct ls_relation *rel, const char *lo,
		    const char *hi, int (*row)(void *ctx, const char *key, const char *hash),
		    void *ctx, struct ls_err *err)
{
	uint8_t *has;
	if (check_rel(rel, err) < 0 || ensure(c, err) < 0 || target_columns(c, rel, &has, err) < 0)
		return -1;
	int rc = do_rows(c, rel, has, lo, hi, row, ctx, err);
	free(has);
	return rc;
}

/* ---- source transactions ------------------------------------------------------------------ */

static int exec_ok(struct ls_drift_conn *c, const char *sql, const char *what, struct ls_err *err)
{
	PGresult *r = PQexec(c->pg, sql);
	int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : pq_fail(c, r, what, err);
	PQclear(r);
	return rc;
}

/* BEGIN; keep rel's writers out until commit (see the header). */
static int begin_locked(struct ls_drift_conn *c, const struct ls_relation *rel, struct ls_err *err)
{
	if (ensure(c, err) < 0 ||
	    exec_ok(c, "BEGIN ISOLATION LEVEL REPEATABLE READ; SET LOCAL lock_timeout = '"
		    LOCK_TIMEOUT "'", "begin", err) < 0)
		return -1;
	if (c->no_lock)
		return 0;
	struct ls_pgsql_buf b;
	ls_pgsql_buf_init(&b);
	ls_pgsql_put(&b, "LOCK TABLE ");
	ls_pgsql_qualified(&b, rel->schema, rel->name);
	ls_pgsql_put(&b, " IN SHARE MODE");
	PGresult *r = PQexec(c->pg, ls_pgsql_buf_str(&b));
	ls_pgsql_buf_free(&b);
	int rc = 0;
	if (PQresultStatus(r) == PGRES_COMMAND_OK) {
		rc = 0;
	} else if (is_state(r, "42501")) {
		ls_warn("drift: no privilege to lock %s.%s IN SHARE MODE; checking without "
			"the lock (a writer committing meanwhile can look like drift until "
			"re-checked)", rel->schema, rel->name);
		c->no_lock = true;
		PQclear(r);
		PQclear(PQexec(c->pg, "ROLLBACK"));
		return begin_locked(c, rel, err);
	} else {
		rc = pq_fail(c, r, "locking the table", err);
	}
	PQclear(r);
	return rc;
}

/* A position at or after the marker's commit (the engine's watch over
 * unanswered markers, lib/drift.h); 0 when it cannot be read, which only
 * turns that watch off for the marker. */
static uint64_t wal_after(struct ls_drift_conn *c)
{
	PGresult *r = PQexec(c->pg, "SELECT pg_catalog.pg_current_wal_insert_lsn()::text");
	uint64_t lsn = 0;
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 ||
	    ls_pgsetup_lsn_parse(PQgetvalue(r, 0, 0), &lsn) < 0)
		lsn = 0;
	PQclear(r);
	return lsn;
}

static int emit_commit(struct ls_drift_conn *c, struct ls_drift_marker *m, struct ls_err *err)
{
	struct ls_drift_buf p = { 0 };
	if (ls_drift_marker_encode(m, &p) < 0) {
		ls_drift_buf_free(&p);
		return ls_err_set(err, false, "out of memory");
	}
	PGresult *r = run(c, "SELECT pg_logical_emit_message(true, '" LS_DRIFT_PREFIX "', $1)",
			  p.data, NULL, PGRES_TUPLES_OK, "emitting the marker", err);
	ls_drift_buf_free(&p);
	if (r == NULL)
		return -1;
	PQclear(r);
	if (exec_ok(c, "COMMIT", "commit", err) < 0)
		return -1;
	m->at_seq = wal_after(c);
	return 0;
}

/* The key text of the offset-th row in key order (descending: desc) with a
 * key in (lo, bound] (either may be NULL), or NULL (*out) when there is
 * none. */
static int key_at(struct ls_drift_conn *c, const struct ls_relation *rel, const char *lo,
		  const char *bound, bool desc, int offset, char **out, struct ls_err *err)
{
	*out = NULL;
	struct ls_pgsql_buf b;
	ls_pgsql_buf_init(&b);
	int next = 1;
	ls_pgsql_put(&b, "SELECT ");
	key_text(&b, rel, c->mycanon);
	ls_pgsql_put(&b, " FROM ");
	ls_pgsql_qualified(&b, rel->schema, rel->name);
	range_where(&b, rel, lo != NULL, bound != NULL, &next, c->mycanon);
	ls_pgsql_put(&b, " ORDER BY ");
	key_list_dir(&b, rel, NULL, desc);
	ls_pgsql_printf(&b, " OFFSET %d LIMIT 1", offset);
	if (b.oom) {
		ls_pgsql_buf_free(&b);
		return ls_err_set(err, false, "out of memory");
	}
	PGresult *r = run(c, ls_pgsql_buf_str(&b), lo, bound, PGRES_TUPLES_OK,
			  desc ? "greatest key" : "chunk bound", err);
	ls_pgsql_buf_free(&b);
	if (r == NULL)
		return -1;
	int rc = 0;
	if (PQntuples(r) == 1 && (*out = strdup(PQgetvalue(r, 0, 0))) == NULL)
		rc = ls_err_set(err, false, "out of memory");
	PQclear(r);
	return rc;
}

/* The chunk_rows-th key after lo (and not after bound, when given), or
 * NULL (*hi) when fewer rows remain. */
static int upper_key(struct ls_drift_conn *c, const struct ls_relation *rel, const char *lo,
		     const char *bound, int chunk_rows, char **hi, struct ls_err *err)
{
	return key_at(c, rel, lo, bound, false, chunk_rows > 0 ? chunk_rows - 1 : 0, hi, err);
}

static int src_chunk(struct ls_drift_conn *c, const struct ls_relation *rel,
		     struct ls_drift_marker *m, const char *bound, int chunk_rows, char **hi,
		     uint64_t *rows, char *hash, struct ls_err *err)
{
	*hi = NULL;
	if (check_src(c, rel, err) < 0 || begin_locked(c, rel, err) < 0)
		return -1;
	if (ls_drift_chunk_end(c, rel, m->lo, bound, chunk_rows, upper_key, hi, err) < 0 ||
	    do_checksum(c, rel, NULL, m->lo, *hi, rows, hash, LS_DRIFT_HASH_MAX, err) < 0)
		goto fail;
	m->hi = *hi;
	if (emit_commit(c, m, err) < 0)
		goto fail;
	return 0;
fail:
	free(*hi);
	*hi = NULL;
	m->hi = NULL;
	PQclear(PQexec(c->pg, "ROLLBACK"));
	return -1;
}

/* The table's greatest key now (the end of a check's walk). */
static int src_max_key(struct ls_drift_conn *c, const struct ls_relation *rel, char **out,
		       struct ls_err *err)
{
	*out = NULL;
	if (check_src(c, rel, err) < 0 || ensure(c, err) < 0)
		return -1;
	return key_at(c, rel, NULL, NULL, true, 0, out, err);
}

static int src_rows(struct ls_drift_conn *c, const struct ls_relation *rel,
		    struct ls_drift_marker *m,
		    int (*row)(void *ctx, const char *key, const char *hash), void *ctx,
		    struct ls_err *err)
{
	if (check_src(c, rel, err) < 0 || begin_locked(c, rel, err) < 0)
		return -1;
	if (do_rows(c, rel, NULL, m->lo, m->hi, row, ctx, err) < 0 || emit_commit(c, m, err) < 0) {
		PQclear(PQexec(c->pg, "ROLLBACK"));
		return -1;
	}
	return 0;
}

/* SELECT for the current rows of a JSON array of keys ($1): key, present,
 * the key columns from the key text, every column as text. */
static int repair_sql(struct ls_pgsql_buf *b, const struct ls_relation *rel, bool canon)
{
	ls_pgsql_put(b, "SELECT k.key, ");
	int first_key = -1;
	for (uint16_t i = 0; i < rel->ncols; i++)
		if ((rel->cols[i].flags & LS_COL_KEY) && first_key < 0)
			first_key = i;
	ls_pgsql_put(b, "r.");
	ls_pgsql_ident(b, rel->cols[first_key].name);
	ls_pgsql_put(b, " IS NOT NULL");
	int k = 0;
	for (uint16_t i = 0; i < rel->ncols; i++)
		if (rel->cols[i].flags & LS_COL_KEY)
			ls_pgsql_printf(b, ", k.key::jsonb ->> %d", k++);
	for (uint16_t i = 0; i < rel->ncols; i++) {
		ls_pgsql_put(b, ", r.");
		ls_pgsql_ident(b, rel->cols[i].name);
		ls_pgsql_put(b, "::text");
	}
	ls_pgsql_put(b, " FROM jsonb_array_elements_text($1::jsonb) AS k(key) LEFT JOIN ");
	ls_pgsql_qualified(b, rel->schema, rel->name);
	ls_pgsql_put(b, " AS r ON ROW(");
	key_list(b, rel, "r");
	ls_pgsql_put(b, ") = ROW(");
	key_values(b, rel, "k.key", canon);
	ls_pgsql_put(b, ")");
	return b->oom ? -1 : 0;
}

/* Builds the REPAIR rows from the SELECT's result. */
static int repair_rows(const struct ls_relation *rel, PGresult *r, struct ls_drift_buf *out,
		       struct ls_err *err)
{
	unsigned nk = ls_relation_nkeys(rel);
	struct ls_value *vals = calloc(rel->ncols + 1u, sizeof *vals);
	if (vals == NULL)
		return ls_err_set(err, false, "out of memory");
	for (int row = 0; row < PQntuples(r); row++) {
		bool present = PQgetvalue(r, row, 1)[0] == 't';
		int k = 0;
		for (uint16_t i = 0; i < rel->ncols; i++) {
			bool key = rel->cols[i].flags & LS_COL_KEY;
			int f = present ? 2 + (int)nk + i : key ? 2 + k : -1;
			if (key)
				k++;
			if (f < 0 || PQgetisnull(r, row, f)) {
				vals[i] = (struct ls_value){ .kind = LS_VAL_NULL };
				continue;
			}
			vals[i] = (struct ls_value){ .kind = LS_VAL_TEXT, .data = PQgetvalue(r, row, f),
						     .len = (uint32_t)PQgetlength(r, row, f) };
		}
		ls_drift_repair_row_add(out, present, vals, rel->ncols);
	}
	free(vals);
	return out->oom ? ls_err_set(err, false, "out of memory") : 0;
}

static int src_repair(struct ls_drift_conn *c, const struct ls_relation *rel,
		      struct ls_drift_marker *m, const char *const *keys, size_t nkeys,
		      struct ls_err *err)
{
	if (check_src(c, rel, err) < 0)
		return -1;
	struct ls_json *j = ls_json_new();
	ls_json_array_begin(j);
	for (size_t i = 0; i < nkeys; i++)
		ls_json_string(j, keys[i]);
	ls_json_array_end(j);
	struct ls_pgsql_buf b;
	ls_pgsql_buf_init(&b);
	struct ls_drift_buf rows = { 0 };
	int rc = -1;
	const char *arr = ls_json_data(j, NULL);
	if (arr == NULL || repair_sql(&b, rel, c->mycanon) < 0) {
		ls_err_set(err, false, "out of memory");
		goto out;
	}
	if (begin_locked(c, rel, err) < 0)
		goto out;
	PGresult *r = run(c, ls_pgsql_buf_str(&b), arr, NULL, PGRES_TUPLES_OK, "repair rows", err);
	if (r == NULL || repair_rows(rel, r, &rows, err) < 0) {
		PQclear(r);
		PQclear(PQexec(c->pg, "ROLLBACK"));
		goto out;
	}
	PQclear(r);
	m->rows = rows.data ? rows.data : "";
	m->rows_len = rows.len;
	rc = emit_commit(c, m, err);
	if (rc < 0)
		PQclear(PQexec(c->pg, "ROLLBACK"));
out:
	m->rows = NULL;
	m->rows_len = 0;
	ls_drift_buf_free(&rows);
	ls_pgsql_buf_free(&b);
	ls_json_free(j);
	return rc;
}

/* The statistics system's insert/update/delete counters (flushed by
 * backends at most about once a second: good enough for "how much changed"). */
static int src_change_count(struct ls_drift_conn *c, const struct ls_relation *rel, uint64_t *n,
			    struct ls_err *err)
{
	if (ensure(c, err) < 0)
		return -1;
	PGresult *r = run(c, "SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_all_tables "
			  "WHERE schemaname = $1 AND relname = $2", rel->schema, rel->name,
			  PGRES_TUPLES_OK, "change counter", err);
	if (r == NULL)
		return -1;
	int rc = 0;
	if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
		*n = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	else
		rc = ls_err_set(err, false, "no statistics for %s.%s", rel->schema, rel->name);
	PQclear(r);
	return rc;
}

/* The table as the catalog describes it now, with the selection rules of
 * prepare (pg_setup), so key flags and type names match the stream's. */
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
	struct ls_pg_tables tabs;
	int rc = ls_pgsetup_select_tables(c->pg, pat, NULL, &tabs, err);
	free(pat);
	const struct ls_pg_table *t = rc < 0 ? NULL :
		ls_pgsetup_tables_find(&tabs, rel->schema, rel->name);
	if (rc == 0 && t == NULL)
		rc = ls_err_set(err, false, "table %s.%s is gone", rel->schema, rel->name);
	if (rc == 0 && (*out = ls_pgsetup_table_relation(t)) == NULL)
		rc = ls_err_set(err, false, "out of memory");
	if (*out != NULL)
		(*out)->id = rel->id;   /* the stream's id for it */
	ls_pgsetup_tables_free(&tabs);
	if (rc < 0)
		return ls_err_prefix(err, "reading the definition of %s.%s", rel->schema,
				     rel->name);
	return 0;
}

const struct ls_drift_source_ops ls_pg_drift_source_ops = {
	.open = src_open,
	.close = ls_pgdrift_close,
	.chunk = src_chunk,
	.max_key = src_max_key,
	.rows = src_rows,
	.repair = src_repair,
	.change_count = src_change_count,
	.describe = src_describe,
};
