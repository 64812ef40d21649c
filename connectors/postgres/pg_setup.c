#include "connectors/postgres/pg_setup.h"

#include "pos.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ------------------------------------------------------------ */

/* LSN text is lib/pos.c's; these keep the connector's call shape. */
int ls_pgsetup_lsn_parse(const char *text, uint64_t *lsn)
{
	return text == NULL ? -1 : ls_lsn_parse(text, lsn, NULL);
}

char *ls_pgsetup_lsn_format(uint64_t lsn, char *out)
{
	ls_lsn_format(lsn, out, LS_PG_LSN_TEXT_MAX);
	return out;
}

/* Trims the server's message to one line without the trailing newline. */
static const char *pq_msg(PGconn *conn, char *buf, size_t size)
{
	snprintf(buf, size, "%s", PQerrorMessage(conn));
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

/* Runs sql (params optional, text) and returns the result when its status is
 * `want`; otherwise fills err with "what: server message" and returns NULL.
 * A lost connection is retryable; a failed statement is not. */
static PGresult *run(PGconn *conn, const char *what, ExecStatusType want,
	const char *sql, int nparams, const char *const *params,
	struct ls_err *err)
{
	PGresult *r = nparams > 0 ?
		PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0) :
		PQexec(conn, sql);
	if (r != NULL && PQresultStatus(r) == want)
		return r;
	char m[300];
	const char *msg = r != NULL && PQresultErrorMessage(r)[0] != '\0' ?
		PQresultErrorMessage(r) : PQerrorMessage(conn);
	snprintf(m, sizeof m, "%s", msg);
	m[strcspn(m, "\n")] = '\0';
	ls_err_set(err, PQstatus(conn) == CONNECTION_BAD, "%s: %s", what, m);
	PQclear(r);
	return NULL;
}

static char *xstrdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* ---- pattern matching ---------------------------------------------------------- */

/* '*'-only glob over [p, pend) against s; iterative with one backtrack
 * point, which is enough for a single wildcard kind. */
static bool glob_match(const char *p, const char *pend, const char *s)
{
	const char *star = NULL, *resume = NULL;
	while (*s != '\0') {
		if (p < pend && *p == '*') {
			star = ++p;
			resume = s;
		} else if (p < pend && *p == *s) {
			p++;
			s++;
		} else if (star != NULL) {
			p = star;
			s = ++resume;
		} else {
			return false;
		}
	}
	while (p < pend && *p == '*')
		p++;
	return p == pend;
}

/* Splits one trimmed pattern [b, e) at its first '.' and matches both
 * halves. */
static bool match_one(const char *b, const char *e, const char *schema,
	const char *table)
{
	const char *dot = memchr(b, '.', (size_t)(e - b));
	if (dot == NULL)
		return false;
	char sbuf[256];
	snprintf(sbuf, sizeof sbuf, "%s", schema);
	return glob_match(b, dot, sbuf) && glob_match(dot + 1, e, table);
}

/* Calls fn on each trimmed, non-empty comma-separated item of list; stops
 * and returns true as soon as fn does. */
static bool each_pattern(const char *list,
	bool (*fn)(const char *b, const char *e, void *ctx), void *ctx)
{
	const char *p = list;
	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, ',');
		if (end == NULL)
			end = p + strlen(p);
		const char *b = p, *e = end;
		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (b < e && fn(b, e, ctx))
			return true;
		p = *end == ',' ? end + 1 : end;
	}
	return false;
}

struct match_ctx {
	const char *schema, *table;
};

static bool match_cb(const char *b, const char *e, void *ctx)
{
	const struct match_ctx *m = ctx;
	return match_one(b, e, m->schema, m->table);
}

bool ls_pgsetup_pattern_match(const char *patterns, const char *schema,
	const char *table)
{
	struct match_ctx m = { schema, table };
	return each_pattern(patterns, match_cb, &m);
}

/* Validation pass over the patterns: each needs a '.', and an exact one
 * (no '*') must name an existing candidate. */
struct check_ctx {
	PGresult *cands;
	struct ls_err *err;
	const char *kind;
};

static bool check_cb(const char *b, const char *e, void *ctx)
{
	struct check_ctx *c = ctx;
	int len = (int)(e - b);
	if (memchr(b, '.', (size_t)len) == NULL) {
		ls_err_set(c->err, false, "source %s: pattern \"%.*s\" must be "
			"schema.table (for example public.%.*s)", c->kind, len, b,
			len, b);
		return true;
	}
	if (memchr(b, '*', (size_t)len) != NULL || strcmp(c->kind, "tables"))
		return false;
	for (int i = 0; i < PQntuples(c->cands); i++)
		if (match_one(b, e, PQgetvalue(c->cands, i, 1),
			PQgetvalue(c->cands, i, 2)))
			return false;
	ls_err_set(c->err, false, "source tables: table %.*s not found (or not "
		"an ordinary or partitioned table)", len, b);
	return true;
}

/* ---- table selection ---------------------------------------------------------- */

static const char CANDIDATES_SQL[] =
	"SELECT c.oid, n.nspname, c.relname"
	" FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	" WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
	"   AND c.relpersistence <> 't'"
	"   AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
	"   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"
	" ORDER BY n.nspname, c.relname";

/* Identity usable for UPDATE/DELETE: FULL, a primary key under DEFAULT, or
 * a chosen index under USING INDEX.  %s is the pg_class alias. */
#define IDENTITY_OK(c) \
	"(" c ".relreplident = 'f'" \
	" OR (" c ".relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_index i" \
	"     WHERE i.indrelid = " c ".oid AND i.indisprimary))" \
	" OR (" c ".relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_index i" \
	"     WHERE i.indrelid = " c ".oid AND i.indisreplident)))"

static const char DETAILS_SQL[] =
	"SELECT c.oid, n.nspname, c.relname, c.relreplident, c.relkind = 'p',"
	"  " IDENTITY_OK("c") ","
	"  CASE WHEN c.relkind = 'p' THEN"
	"    COALESCE((SELECT sum(GREATEST(p.reltuples, 0))"
	"      FROM pg_partition_tree(c.oid) t JOIN pg_class p ON p.oid = t.relid"
	"      WHERE t.isleaf), 0)"
	"  ELSE GREATEST(c.reltuples, 0) END::float8,"
	"  CASE WHEN c.relkind = 'p' THEN"
	"    COALESCE((SELECT sum(pg_table_size(t.relid))"
	"      FROM pg_partition_tree(c.oid) t WHERE t.isleaf), 0)"
	"  ELSE pg_table_size(c.oid) END::int8"
	" FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	" WHERE c.oid = ANY($1::oid[])"
	" ORDER BY n.nspname, c.relname";

static const char COLUMNS_SQL[] =
	"SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod),"
	"  a.atttypid, a.atttypmod, a.attnotnull,"
	"  COALESCE(a.attnum = ANY (ik.indkey::int2[]), false)"
	" FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
	" LEFT JOIN LATERAL (SELECT i.indkey FROM pg_index i"
	"   WHERE i.indrelid = c.oid AND CASE WHEN c.relreplident = 'i'"
	"     THEN i.indisreplident ELSE i.indisprimary END LIMIT 1) ik ON true"
	" WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0"
	"   AND NOT a.attisdropped AND a.attgenerated = ''"
	" ORDER BY a.attrelid, a.attnum";

static void table_clear(struct ls_pg_table *t)
{
	for (int i = 0; i < t->ncols; i++) {
		free(t->cols[i].name);
		free(t->cols[i].type_name);
	}
	free(t->cols);
	free(t->schema);
	free(t->name);
}

void ls_pgsetup_tables_free(struct ls_pg_tables *tables)
{
	if (tables == NULL)
		return;
	for (int i = 0; i < tables->n; i++)
		table_clear(&tables->t[i]);
	free(tables->t);
	tables->t = NULL;
	tables->n = 0;
}

const struct ls_pg_table *ls_pgsetup_tables_find(
	const struct ls_pg_tables *tables, const char *schema, const char *name)
{
	for (int i = 0; i < tables->n; i++)
		if (!strcmp(tables->t[i].schema, schema) &&
		    !strcmp(tables->t[i].name, name))
			return &tables->t[i];
	return NULL;
}

/* "{oid,oid,...}" of the candidates that pass include and not exclude;
 * malloc'd (caller frees), NULL on OOM; *count gets the number. */
static char *selected_oids(PGresult *cands, const char *include,
	const char *exclude, int *count)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL)
		return NULL;
	*count = 0;
	fputc('{', f);
	for (int i = 0; i < PQntuples(cands); i++) {
		const char *s = PQgetvalue(cands, i, 1), *t = PQgetvalue(cands, i, 2);
		if (!ls_pgsetup_pattern_match(include, s, t) ||
		    (exclude != NULL && ls_pgsetup_pattern_match(exclude, s, t)))
			continue;
		fprintf(f, "%s%s", *count ? "," : "", PQgetvalue(cands, i, 0));
		(*count)++;
	}
	fputc('}', f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static int fill_tables(PGresult *det, struct ls_pg_tables *out)
{
	int n = PQntuples(det);
	out->t = calloc((size_t)n, sizeof *out->t);
	if (out->t == NULL)
		return -1;
	out->n = n;
	for (int i = 0; i < n; i++) {
		struct ls_pg_table *t = &out->t[i];
		t->oid = (uint32_t)strtoul(PQgetvalue(det, i, 0), NULL, 10);
		t->schema = xstrdup(PQgetvalue(det, i, 1));
		t->name = xstrdup(PQgetvalue(det, i, 2));
		t->replident = PQgetvalue(det, i, 3)[0];
		t->partitioned = PQgetvalue(det, i, 4)[0] == 't';
		t->has_identity = PQgetvalue(det, i, 5)[0] == 't';
		t->est_rows = strtod(PQgetvalue(det, i, 6), NULL);
		t->size_bytes = strtoll(PQgetvalue(det, i, 7), NULL, 10);
		if (t->schema == NULL || t->name == NULL)
			return -1;
	}
	return 0;
}

static struct ls_pg_table *by_oid(struct ls_pg_tables *ts, uint32_t oid)
{
	for (int i = 0; i < ts->n; i++)
		if (ts->t[i].oid == oid)
			return &ts->t[i];
	return NULL;
}

/* Columns arrive ordered by table then attnum; each table gets its own
 * array.  FULL identity without a primary key marks every column a key. */
static int fill_columns(PGresult *cols, struct ls_pg_tables *out)
{
	int n = PQntuples(cols);
	for (int i = 0; i < n; i++) {
		struct ls_pg_table *t =
			by_oid(out, (uint32_t)strtoul(PQgetvalue(cols, i, 0), NULL, 10));
		if (t == NULL)
			continue;
		struct ls_pg_column *nc =
			realloc(t->cols, (size_t)(t->ncols + 1) * sizeof *nc);
		if (nc == NULL)
			return -1;
		t->cols = nc;
		struct ls_pg_column *c = &t->cols[t->ncols++];
		c->name = xstrdup(PQgetvalue(cols, i, 1));
		c->type_name = xstrdup(PQgetvalue(cols, i, 2));
		c->type_oid = (uint32_t)strtoul(PQgetvalue(cols, i, 3), NULL, 10);
		c->typmod = (int32_t)strtol(PQgetvalue(cols, i, 4), NULL, 10);
		c->not_null = PQgetvalue(cols, i, 5)[0] == 't';
		c->key = PQgetvalue(cols, i, 6)[0] == 't';
		if (c->name == NULL || c->type_name == NULL)
			return -1;
	}
	for (int i = 0; i < out->n; i++) {
		struct ls_pg_table *t = &out->t[i];
		bool any = false;
		for (int j = 0; j < t->ncols; j++)
			any |= t->cols[j].key;
		for (int j = 0; t->replident == 'f' && !any && j < t->ncols; j++)
			t->cols[j].key = true;
	}
	return 0;
}

int ls_pgsetup_select_tables(PGconn *conn, const char *include,
	const char *exclude, struct ls_pg_tables *out, struct ls_err *err)
{
	memset(out, 0, sizeof *out);
	if (include == NULL || include[0] == '\0')
		return ls_err_set(err, false, "source tables: no pattern given "
			"(for example tables = public.*)");
	PGresult *cands = run(conn, "listing tables", PGRES_TUPLES_OK,
		CANDIDATES_SQL, 0, NULL, err);
	if (cands == NULL)
		return -1;
	struct check_ctx cc = { cands, err, "tables" };
	if (each_pattern(include, check_cb, &cc)) {
		PQclear(cands);
		return -1;
	}
	cc.kind = "exclude";
	if (exclude != NULL && each_pattern(exclude, check_cb, &cc)) {
		PQclear(cands);
		return -1;
	}
	int count = 0;
	char *oids = selected_oids(cands, include, exclude, &count);
	PQclear(cands);
	if (oids == NULL)
		return ls_err_set(err, false, "source tables: out of memory");
	if (count == 0) {
		free(oids);
		return ls_err_set(err, false, "source tables: no table matches "
			"\"%s\"%s%s", include, exclude ? " minus exclude " : "",
			exclude ? exclude : "");
	}
	const char *params[1] = { oids };
	PGresult *det = run(conn, "reading tables", PGRES_TUPLES_OK,
		DETAILS_SQL, 1, params, err);
	PGresult *cols = det == NULL ? NULL : run(conn, "reading columns",
		PGRES_TUPLES_OK, COLUMNS_SQL, 1, params, err);
	free(oids);
	int rc = -1;
	if (cols != NULL) {
		rc = fill_tables(det, out) == 0 && fill_columns(cols, out) == 0 ? 0 :
			ls_err_set(err, false, "source tables: out of memory");
	}
	PQclear(det);
	PQclear(cols);
	return rc;
}

struct ls_relation *ls_pgsetup_table_relation(const struct ls_pg_table *t)
{
	struct ls_relation *r = ls_relation_new((uint16_t)t->ncols);
	if (r == NULL)
		return NULL;
	r->id = t->oid;
	r->schema = xstrdup(t->schema);
	r->name = xstrdup(t->name);
	r->replident = (uint8_t)t->replident;
	bool ok = r->schema != NULL && r->name != NULL;
	for (int i = 0; ok && i < t->ncols; i++) {
		struct ls_column *c = &r->cols[i];
		c->name = xstrdup(t->cols[i].name);
		c->type_name = xstrdup(t->cols[i].type_name);
		c->type_oid = t->cols[i].type_oid;
		c->typmod = t->cols[i].typmod;
		c->flags = t->cols[i].key ? LS_COL_KEY : 0;
		ok = c->name != NULL && c->type_name != NULL;
	}
	if (!ok) {
		ls_relation_free(r);
		return NULL;
	}
	return r;
}

/* ---- readiness ------------------------------------------------------------------- */

static const char SERVER_SQL[] =
	"SELECT current_setting('wal_level'),"
	"  (SELECT rolreplication OR rolsuper FROM pg_roles"
	"    WHERE rolname = current_user),"
	"  current_setting('max_replication_slots')::int"
	"    - (SELECT count(*) FROM pg_replication_slots),"
	"  current_setting('max_wal_senders')::int"
	"    - (SELECT count(*) FROM pg_stat_activity"
	"       WHERE backend_type = 'walsender'),"
	"  EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1),"
	"  quote_ident(current_user)";

/* Tables (or their partitions) without usable identity, and tables the
 * role cannot read; "schema.name" text, one per row, column 1 says which.
 * pg_partition_tree() is empty for an ordinary table, hence the union. */
static const char TABLES_SQL[] =
	"SELECT format('%I.%I', n.nspname, c.relname), 'identity'"
	" FROM unnest($1::oid[]) r(oid)"
	" CROSS JOIN LATERAL (SELECT r.oid AS relid UNION"
	"   SELECT p.relid FROM pg_partition_tree(r.oid) p) t"
	" JOIN pg_class c ON c.oid = t.relid"
	" JOIN pg_namespace n ON n.oid = c.relnamespace"
	" WHERE c.relkind = 'r' AND NOT " IDENTITY_OK("c")
	" UNION ALL"
	" SELECT format('%I.%I', n.nspname, c.relname), 'select'"
	" FROM unnest($1::oid[]) r(oid) JOIN pg_class c ON c.oid = r.oid"
	" JOIN pg_namespace n ON n.oid = c.relnamespace"
	" WHERE NOT has_table_privilege(c.oid, 'SELECT')"
	" ORDER BY 2, 1";

/* Appends one problem to a growing message (bounded by LS_ERR_MSG_MAX). */
static void add_problem(char *msg, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void add_problem(char *msg, size_t size, const char *fmt, ...)
{
	size_t len = strlen(msg);
	if (len + 3 >= size)
		return;
	if (len > 0) {
		memcpy(msg + len, "; ", 3);
		len += 2;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg + len, size - len, fmt, ap);
	va_end(ap);
}

static void check_server(PGresult *r, char *msg, size_t size)
{
	const char *wal = PQgetvalue(r, 0, 0);
	if (strcmp(wal, "logical"))
		add_problem(msg, size, "wal_level is %s: set wal_level = logical in "
			"postgresql.conf and restart the server", wal);
	if (PQgetvalue(r, 0, 1)[0] != 't')
		add_problem(msg, size, "role %s may not replicate: ALTER ROLE %s "
			"REPLICATION (or use a superuser)", PQgetvalue(r, 0, 5),
			PQgetvalue(r, 0, 5));
	bool slot_exists = PQgetvalue(r, 0, 4)[0] == 't';
	if (!slot_exists && atoi(PQgetvalue(r, 0, 2)) < 1)
		add_problem(msg, size, "no free replication slot: raise "
			"max_replication_slots (restart needed) or drop an unused slot");
	if (atoi(PQgetvalue(r, 0, 3)) < 1)
		add_problem(msg, size, "no free WAL sender: raise max_wal_senders "
			"(restart needed)");
}

/* Lists the tables of one kind ("identity" or "select") as "a, b, c". */
static void list_tables(PGresult *r, const char *kind, char *out, size_t size,
	int *count)
{
	out[0] = '\0';
	*count = 0;
	size_t len = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		if (strcmp(PQgetvalue(r, i, 1), kind))
			continue;
		int w = snprintf(out + len, size - len, "%s%s", *count ? ", " : "",
			PQgetvalue(r, i, 0));
		if (w > 0 && (size_t)w < size - len)
			len += (size_t)w;
		(*count)++;
	}
}

static int check_tables(PGconn *conn, const struct ls_pg_tables *tables,
	char *msg, size_t size, struct ls_err *err)
{
	char *buf = NULL;
	size_t blen = 0;
	FILE *f = open_memstream(&buf, &blen);
	if (f == NULL)
		return ls_err_set(err, false, "readiness check: out of memory");
	fputc('{', f);
	for (int i = 0; i < tables->n; i++)
		fprintf(f, "%s%u", i ? "," : "", tables->t[i].oid);
	fputc('}', f);
	if (fclose(f) != 0) {
		free(buf);
		return ls_err_set(err, false, "readiness check: out of memory");
	}
	const char *params[1] = { buf };
	PGresult *r = run(conn, "readiness check (tables)", PGRES_TUPLES_OK,
		TABLES_SQL, 1, params, err);
	free(buf);
	if (r == NULL)
		return -1;
	char names[300];
	int n;
	list_tables(r, "identity", names, sizeof names, &n);
	if (n > 0)
		add_problem(msg, size, "%d table%s without a usable replica identity "
			"(%s): add a primary key, or ALTER TABLE ... REPLICA IDENTITY "
			"USING INDEX <unique index> (or REPLICA IDENTITY FULL), or "
			"exclude %s", n, n > 1 ? "s" : "", names, n > 1 ? "them" : "it");
	list_tables(r, "select", names, sizeof names, &n);
	if (n > 0)
		add_problem(msg, size, "no SELECT privilege on %s: GRANT SELECT ON "
			"%s TO the source role", names, names);
	PQclear(r);
	return 0;
}

int ls_pgsetup_check_ready(PGconn *conn, const struct ls_pg_tables *tables,
	const char *slot_name, struct ls_err *err)
{
	const char *params[1] = { slot_name != NULL ? slot_name : "" };
	PGresult *r = run(conn, "readiness check", PGRES_TUPLES_OK, SERVER_SQL, 1,
		params, err);
	if (r == NULL)
		return -1;
	char msg[LS_ERR_MSG_MAX] = "";
	check_server(r, msg, sizeof msg);
	PQclear(r);
	if (tables != NULL && tables->n > 0 &&
	    check_tables(conn, tables, msg, sizeof msg, err) < 0)
		return -1;
	if (msg[0] != '\0')
		return ls_err_set(err, false, "source not ready: %s", msg);
	return 0;
}

/* ---- publication ---------------------------------------------------------------- */

/* Writes the quoted "schema"."name" list of tables to f; -1 on OOM. */
static int write_table_list(PGconn *conn, FILE *f,
	const struct ls_pg_tables *tables)
{
	for (int i = 0; i < tables->n; i++) {
		char *s = PQescapeIdentifier(conn, tables->t[i].schema,
			strlen(tables->t[i].schema));
		char *n = PQescapeIdentifier(conn, tables->t[i].name,
			strlen(tables->t[i].name));
		if (s != NULL && n != NULL)
			fprintf(f, "%s%s.%s", i ? ", " : "", s, n);
		PQfreemem(s);
		PQfreemem(n);
		if (s == NULL || n == NULL)
			return -1;
	}
	return 0;
}

static const char PUB_OPTIONS[] = "publish = 'insert, update, delete, truncate',"
	" publish_via_partition_root = true";

/* Builds the CREATE or ALTER statements; malloc'd, NULL on OOM. */
static char *publication_sql(PGconn *conn, const char *name,
	const struct ls_pg_tables *tables, bool create)
{
	char *qname = PQescapeIdentifier(conn, name, strlen(name));
	if (qname == NULL)
		return NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL) {
		PQfreemem(qname);
		return NULL;
	}
	fprintf(f, create ? "CREATE PUBLICATION %s FOR TABLE " :
		"ALTER PUBLICATION %s SET TABLE ", qname);
	int rc = write_table_list(conn, f, tables);
	if (create)
		fprintf(f, " WITH (%s)", PUB_OPTIONS);
	else
		fprintf(f, "; ALTER PUBLICATION %s SET (%s)", qname, PUB_OPTIONS);
	PQfreemem(qname);
	if (fclose(f) != 0 || rc < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* The publication's state: exists?, FOR ALL TABLES?, options as we want
 * them?, and whether its relation set equals the oid array $2.  Row filters
 * and column lists (PostgreSQL 15) count as a difference. */
static const char PUB_SQL[] =
	"SELECT p.puballtables,"
	"  p.pubinsert AND p.pubupdate AND p.pubdelete AND p.pubtruncate"
	"    AND p.pubviaroot,"
	"  (SELECT coalesce(array_agg(r.prrelid ORDER BY r.prrelid), '{}')"
	"     FROM pg_publication_rel r WHERE r.prpubid = p.oid %s)"
	"   = (SELECT coalesce(array_agg(o ORDER BY o), '{}')"
	"        FROM unnest($2::oid[]) o),"
	"  %s"
	" FROM pg_publication p WHERE p.pubname = $1";

static int publication_state(PGconn *conn, const char *name,
	const struct ls_pg_tables *tables, PGresult **out, struct ls_err *err)
{
	bool v15 = PQserverVersion(conn) >= 150000;
	char sql[1024];
	snprintf(sql, sizeof sql, PUB_SQL,
		v15 ? "AND r.prqual IS NULL AND r.prattrs IS NULL" : "",
		v15 ? "NOT EXISTS (SELECT 1 FROM pg_publication_namespace s"
		      " WHERE s.pnpubid = p.oid)" : "true");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL)
		return ls_err_set(err, false, "publication: out of memory");
	fputc('{', f);
	for (int i = 0; i < tables->n; i++)
		fprintf(f, "%s%u", i ? "," : "", tables->t[i].oid);
	fputc('}', f);
	if (fclose(f) != 0) {
		free(buf);
		return ls_err_set(err, false, "publication: out of memory");
	}
	const char *params[2] = { name, buf };
	*out = run(conn, "reading publication", PGRES_TUPLES_OK, sql, 2, params,
		err);
	free(buf);
	return *out != NULL ? 0 : -1;
}

int ls_pgsetup_publication_ensure(PGconn *conn, const char *name,
	const struct ls_pg_tables *tables, enum ls_pgsetup_pub_action *action,
	struct ls_err *err)
{
	if (action != NULL)
		*action = LS_PGSETUP_PUB_UNCHANGED;
	if (tables == NULL || tables->n == 0)
		return ls_err_set(err, false, "publication %s: no tables", name);
	PGresult *st = NULL;
	if (publication_state(conn, name, tables, &st, err) < 0)
		return -1;
	bool exists = PQntuples(st) > 0;
	if (exists && PQgetvalue(st, 0, 0)[0] == 't') {
		PQclear(st);
		return ls_err_set(err, false, "publication %s exists FOR ALL TABLES: "
			"drop it (DROP PUBLICATION %s) or configure another "
			"publication name", name, name);
	}
	bool same = exists && PQgetvalue(st, 0, 1)[0] == 't' &&
		PQgetvalue(st, 0, 2)[0] == 't' && PQgetvalue(st, 0, 3)[0] == 't';
	PQclear(st);
	if (same)
		return 0;
	char *sql = publication_sql(conn, name, tables, !exists);
	if (sql == NULL)
		return ls_err_set(err, false, "publication %s: out of memory", name);
	char what[128];
	snprintf(what, sizeof what, "%s publication %s",
		exists ? "altering" : "creating", name);
	PGresult *r = run(conn, what, PGRES_COMMAND_OK, sql, 0, NULL, err);
	free(sql);
	if (r == NULL)
		return -1;
	PQclear(r);
	if (action != NULL)
		*action = exists ? LS_PGSETUP_PUB_ALTERED : LS_PGSETUP_PUB_CREATED;
	return 0;
}

/* ---- slot ------------------------------------------------------------------------- */

struct ls_pgslot {
	PGconn *conn;
};

static bool slot_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '_'))
			return false;
	return true;
}

/* Opens conninfo with replication=database.  expand_dbname makes libpq
 * read conninfo (string or URI) first; the later "replication" wins. */
static PGconn *repl_connect(const char *conninfo, struct ls_err *err)
{
	const char *keys[] = { "dbname", "replication", "application_name",
		NULL };
	const char *vals[] = { conninfo, "database", "lockstep", NULL };
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (c != NULL && PQstatus(c) == CONNECTION_OK)
		return c;
	char m[300];
	ls_err_set(err, true, "replication connection to %s:%s failed: %s",
		c ? PQhost(c) : "?", c ? PQport(c) : "?",
		c ? pq_msg(c, m, sizeof m) : "out of memory");
	PQfinish(c);
	return NULL;
}

/* Checks an existing slot and reads its position; *found says whether it
 * exists at all. */
static int slot_check(PGconn *c, const char *slot, bool *found,
	struct ls_pgslot_info *info, struct ls_err *err)
{
	char sql[256];
	snprintf(sql, sizeof sql, "SELECT slot_type, plugin, database,"
		" current_database(), confirmed_flush_lsn"
		" FROM pg_replication_slots WHERE slot_name = '%s'", slot);
	PGresult *r = run(c, "reading slot", PGRES_TUPLES_OK, sql, 0, NULL, err);
	if (r == NULL)
		return -1;
	*found = PQntuples(r) > 0;
	int rc = 0;
	if (!*found)
		rc = 0;
	else if (strcmp(PQgetvalue(r, 0, 0), "logical") ||
	           strcmp(PQgetvalue(r, 0, 1), "pgoutput"))
		rc = ls_err_set(err, false, "slot %s exists but is %s/%s, not a "
			"logical pgoutput slot: drop it (SELECT pg_drop_replication_slot"
			"('%s')) or configure another slot name", slot,
			PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), slot);
	else if (strcmp(PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3)))
		rc = ls_err_set(err, false, "slot %s belongs to database %s, not %s: "
			"configure another slot name", slot, PQgetvalue(r, 0, 2),
			PQgetvalue(r, 0, 3));
	else if (ls_pgsetup_lsn_parse(PQgetvalue(r, 0, 4),
	                                &info->confirmed_flush) < 0)
		rc = ls_err_set(err, false, "slot %s: bad confirmed_flush_lsn \"%s\"",
			slot, PQgetvalue(r, 0, 4));
	PQclear(r);
	return rc;
}

static int slot_create(PGconn *c, const char *slot,
	struct ls_pgslot_info *info, struct ls_err *err)
{
	char sql[256];
	snprintf(sql, sizeof sql, "CREATE_REPLICATION_SLOT \"%s\" LOGICAL "
		"pgoutput EXPORT_SNAPSHOT", slot);
	char what[128];
	snprintf(what, sizeof what, "creating slot %s", slot);
	PGresult *r = run(c, what, PGRES_TUPLES_OK, sql, 0, NULL, err);
	if (r == NULL)
		return -1;
	int rc = 0;
	if (PQntuples(r) != 1 || PQnfields(r) < 3 ||
	    ls_pgsetup_lsn_parse(PQgetvalue(r, 0, 1), &info->consistent_lsn) < 0)
		rc = ls_err_set(err, false, "creating slot %s: unexpected reply", slot);
	else
		snprintf(info->snapshot_name, sizeof info->snapshot_name, "%s",
			PQgetvalue(r, 0, 2));
	info->created = rc == 0;
	info->confirmed_flush = info->consistent_lsn;
	PQclear(r);
	return rc;
}

struct ls_pgslot *ls_pgslot_open(const char *conninfo, const char *slot,
	struct ls_pgslot_info *info, struct ls_err *err)
{
	memset(info, 0, sizeof *info);
	if (!slot_name_ok(slot)) {
		ls_err_set(err, false, "slot name \"%s\": use 1 to 63 characters "
			"a-z, 0-9 and _", slot);
		return NULL;
	}
	PGconn *c = repl_connect(conninfo, err);
	if (c == NULL)
		return NULL;
	bool found = false;
	if (slot_check(c, slot, &found, info, err) < 0 ||
	    (!found && slot_create(c, slot, info, err) < 0)) {
		PQfinish(c);
		return NULL;
	}
	struct ls_pgslot *s = calloc(1, sizeof *s);
	if (s == NULL) {
		PQfinish(c);
		ls_err_set(err, false, "slot %s: out of memory", slot);
		return NULL;
	}
	s->conn = c;
	return s;
}

void ls_pgslot_free(struct ls_pgslot *s)
{
	if (s == NULL)
		return;
	PQfinish(s->conn);
	free(s);
}

int ls_pgsetup_slot_drop(PGconn *conn, const char *slot, struct ls_err *err)
{
	const char *params[1] = { slot };
	PGresult *r = run(conn, "dropping slot", PGRES_TUPLES_OK,
		"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
		" WHERE slot_name = $1", 1, params, err);
	if (r == NULL)
		return -1;
	PQclear(r);
	return 0;
}
