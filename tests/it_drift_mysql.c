/* Drift checks' canonical row text across engines (connectors/mysql/
 * my_drift.h, connectors/postgres/pg_drift.h), on real servers: a MariaDB
 * table and its PostgreSQL counterpart (the README's type mapping) holding
 * the same values give the same chunk counts and hashes, over the whole
 * table and over a key range, and the same key and row hash per row; the
 * same holds MariaDB -> MariaDB; one changed value is found by its key.
 *
 * Through the real lockstepd: two daemons on one MariaDB source, each with a
 * direct buffer and one target (MariaDB, PostgreSQL), [drift] chunk_rows =
 * 100, checks of both running at once (markers are rows of
 * lockstep.drift_marker that each source turns into messages; each daemon
 * answers only its own):
 *  - after convergence a check is clean on both targets and covers every
 *    row; the marker table stays empty;
 *  - rows changed, deleted and inserted directly on either target
 *    (integer, composite text and binary keys) are found by key with exact
 *    missing / extra / different counts per target (lockstepctl drift
 *    --check exits 1); lockstepctl drift --repair fixes them (exit 0, the
 *    re-check is clean, the MariaDB target equals the source);
 *  - under a concurrent write load five checks in a row find no drift, and
 *    the load keeps committing while they run. */
#include <check.h>
#include <jansson.h>
#include <mysql.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "drift.h"
#include "connectors/mysql/my_drift.h"
#include "connectors/mysql/my_setup.h"
#include "connectors/postgres/pg_drift.h"
#include "connectors/postgres/pg_mysqltypes.h"
#include "tests/helpers/testd.h"
#include "tests/helpers/testsrv.h"

static struct ls_testmy *my;
static struct ls_testpg *pg;
static struct ls_relation *rel;        /* the MariaDB table, as the source sees it */

#define COLS "id, name, note, d, b, dt, ts, da, f, u, y, g"
/* the same rows in both engines' literal syntax */
static const char *const my_rows[] = {
	"(1, 'plain', 'x', 12.50, X'00ff10', '2024-01-02 03:04:05.000000', '2024-01-02 03:04:05.5',"
	" '2024-01-02', b'101', 18446744073709551615, 2024, 1e20)",
	"(2, '', NULL, -0.01, X'', '1999-12-31 23:59:59.123456', NULL, '0999-01-01', b'0', 0, 1901,"
	" 1.5e-7)",
	"(3, 'N', 'q\"t\\\\b,c', NULL, NULL, NULL, '2030-06-01 00:00:00', NULL, NULL, NULL, NULL,"
	" 0.1e0 + 0.2e0)",
	"(4, 'é ünï', 'line\\nbreak', 99999999.99, X'5c22', '2024-02-29 12:00:00.000001',"
	" '1970-01-01 00:00:01', '2024-02-29', b'11111', 42, 2155, -1.2345678901234567e-300)",
};
static const char *const pg_rows[] = {
	"(1, 'plain', 'x', 12.50, '\\x00ff10', '2024-01-02 03:04:05', '2024-01-02 03:04:05.5+00',"
	" '2024-01-02', 5, 18446744073709551615, 2024, 1e20)",
	"(2, '', NULL, -0.01, '\\x', '1999-12-31 23:59:59.123456', NULL, '0999-01-01', 0, 0, 1901,"
	" 1.5e-7)",
	"(3, 'N', E'q\"t\\\\b,c', NULL, NULL, NULL, '2030-06-01 00:00:00+00', NULL, NULL, NULL, NULL,"
	" 0.1::float8 + 0.2::float8)",
	"(4, 'é ünï', E'line\\nbreak', 99999999.99, '\\x5c22', '2024-02-29 12:00:00.000001',"
	" '1970-01-01 00:00:01+00', '2024-02-29', 31, 42, 2155, -1.2345678901234567e-300)",
};
#define NROWS 4

static void setup(void)
{
	my = ls_testmy_start(NULL);
	pg = ls_testpg_start(NULL);
	const char *ddl = "CREATE TABLE t (id int PRIMARY KEY, name varchar(40), note text,"
		" d decimal(10,2), b varbinary(16), dt datetime(6), ts timestamp(3) NULL, da date,"
		" f bit(5), u bigint unsigned, y year, g double) ENGINE=InnoDB";
	for (int k = 0; k < 2; k++) {
		const char *db = k ? "shop2" : "shop";
		ls_testmy_exec(my, NULL, "CREATE DATABASE %s", db);
		ls_testmy_exec(my, db, "%s", ddl);
		for (int i = 0; i < NROWS; i++)
			ls_testmy_exec(my, db, "INSERT INTO t (" COLS ") VALUES %s", my_rows[i]);
	}
	/* the relation as the MariaDB source builds it */
	struct ls_myconn c;
	struct ls_err err;
	ck_assert_int_eq(ls_mysetup_conn_parse(ls_testmy_conninfo(my, "shop"), &c, &err), 0);
	MYSQL *m = ls_mysetup_connect(&c, 0, &err);
	ck_assert_msg(m != NULL, "%s", err.msg);
	struct ls_mytables tabs;
	ck_assert_msg(ls_mysetup_select_tables(m, "shop.t", NULL, &tabs, &err) == 0, "%s", err.msg);
	rel = ls_mysetup_table_relation(ls_mysetup_tables_find(&tabs, "shop", "t"), 1);
	ck_assert_ptr_nonnull(rel);
	ls_mysetup_tables_free(&tabs);
	mysql_close(m);
	ls_mysetup_conn_free(&c);
	/* the PostgreSQL table with the mapped types */
	struct ls_relation *pr = ls_pgmy_relation(rel, NULL, &err);
	ck_assert_msg(pr != NULL, "%s", err.msg);
	char sql[2048] = "CREATE SCHEMA shop; CREATE TABLE shop.t (";
	for (uint16_t i = 0; i < pr->ncols; i++)
		snprintf(sql + strlen(sql), sizeof sql - strlen(sql), "%s%s %s", i ? ", " : "",
			 pr->cols[i].name, pr->cols[i].type_name);
	strcat(sql, ", PRIMARY KEY (id))");
	ls_relation_free(pr);
	ls_testpg_exec(pg, "postgres", "%s", sql);
	for (int i = 0; i < NROWS; i++)
		ls_testpg_exec(pg, "postgres", "INSERT INTO shop.t (" COLS ") VALUES %s", pg_rows[i]);
}

static void teardown(void)
{
	ls_relation_free(rel);
	rel = NULL;
	ls_testpg_stop(pg);
	ls_testmy_stop(my);
}

struct sums {
	uint64_t rows;
	char hash[LS_DRIFT_HASH_MAX];
};

static struct ls_relation *in_schema(const char *schema)
{
	struct ls_relation *r = ls_relation_dup(rel);
	ck_assert_ptr_nonnull(r);
	free(r->schema);
	r->schema = strdup(schema);
	return r;
}

static int add_row(void *ctx, const char *key, const char *hash)
{
	return ls_drift_rowset_add(ctx, key, hash);
}

static void sums_my(const char *db, const struct ls_relation *r, const char *lo, const char *hi,
		    struct sums *out, struct ls_drift_rowset *set)
{
	struct ls_drift_conn *c;
	struct ls_err err;
	ck_assert_msg(ls_mydrift_open(ls_testmy_conninfo(my, db), &c, &err) == 0, "%s", err.msg);
	ck_assert_msg(ls_mydrift_checksum(c, r, lo, hi, &out->rows, out->hash, sizeof out->hash,
					  &err) == 0, "%s", err.msg);
	if (set)
		ck_assert_msg(ls_mydrift_rows(c, r, lo, hi, add_row, set, &err) == 0, "%s",
			      err.msg);
	ls_mydrift_close(c);
}

static void sums_pg(const char *lo, const char *hi, struct sums *out, struct ls_drift_rowset *set)
{
	struct ls_drift_conn *c;
	struct ls_err err;
	ck_assert_msg(ls_pgdrift_open(ls_testpg_conninfo(pg, "postgres"), &c, &err) == 0, "%s",
		      err.msg);
	ck_assert_msg(ls_pgdrift_checksum(c, rel, lo, hi, &out->rows, out->hash, sizeof out->hash,
					  &err) == 0, "%s", err.msg);
	if (set)
		ck_assert_msg(ls_pgdrift_rows(c, rel, lo, hi, add_row, set, &err) == 0, "%s",
			      err.msg);
	ls_pgdrift_close(c);
}

static void diff_count(void *ctx, enum ls_drift_diff kind, const char *key)
{
	char *out = ctx;
	snprintf(out + strlen(out), 256 - strlen(out), "%c%s ", (char)kind, key);
}

START_TEST(drift_mysql_same_rows_same_hashes)
{
	struct sums a, b, c;
	struct ls_drift_rowset sa = { 0 }, sb = { 0 }, sc = { 0 };
	struct ls_relation *r2 = in_schema("shop2");
	sums_my("shop", rel, NULL, NULL, &a, &sa);
	sums_my("shop2", r2, NULL, NULL, &b, &sb);
	sums_pg(NULL, NULL, &c, &sc);
	ck_assert_uint_eq(a.rows, NROWS);
	ck_assert_uint_eq(strlen(a.hash), 32);
	ck_assert_uint_eq(b.rows, NROWS);
	ck_assert_uint_eq(c.rows, NROWS);
	ck_assert_str_eq(a.hash, b.hash);
	ck_assert_str_eq(a.hash, c.hash);
	ck_assert_uint_eq(sa.n, NROWS);
	ck_assert_uint_eq(sc.n, NROWS);
	char diffs[256] = "";
	ck_assert_uint_eq(ls_drift_rowset_diff(&sa, &sc, diff_count, diffs), 0);
	ck_assert_uint_eq(ls_drift_rowset_diff(&sa, &sb, diff_count, diffs), 0);
	ck_assert_str_eq(sa.v[0].key, "[\"1\"]");
	/* a key range (1, 3]: the keys are read back by both engines */
	sums_my("shop", rel, sa.v[0].key, sa.v[2].key, &a, NULL);
	sums_pg(sa.v[0].key, sa.v[2].key, &c, NULL);
	ck_assert_uint_eq(a.rows, 2);
	ck_assert_uint_eq(c.rows, 2);
	ck_assert_str_eq(a.hash, c.hash);
	ls_drift_rowset_free(&sa);
	ls_drift_rowset_free(&sb);
	ls_drift_rowset_free(&sc);

	/* one value apart, one row missing: found by key on either side */
	ls_testpg_exec(pg, "postgres", "UPDATE shop.t SET ts = ts + interval '1 millisecond'"
		       " WHERE id = 4; DELETE FROM shop.t WHERE id = 2");
	ls_testmy_exec(my, "shop2", "UPDATE t SET note = NULL WHERE id = 3");
	sums_my("shop", rel, NULL, NULL, &a, &sa);
	sums_my("shop2", r2, NULL, NULL, &b, &sb);
	sums_pg(NULL, NULL, &c, &sc);
	ck_assert_str_ne(a.hash, c.hash);
	ck_assert_str_ne(a.hash, b.hash);
	ck_assert_uint_eq(ls_drift_rowset_diff(&sa, &sc, diff_count, diffs), 2);
	ck_assert_str_eq(diffs, "m[\"2\"] d[\"4\"] ");
	diffs[0] = '\0';
	ck_assert_uint_eq(ls_drift_rowset_diff(&sa, &sb, diff_count, diffs), 1);
	ck_assert_str_eq(diffs, "d[\"3\"] ");
	ls_drift_rowset_free(&sa);
	ls_drift_rowset_free(&sb);
	ls_drift_rowset_free(&sc);
	ls_relation_free(r2);
}
END_TEST

/* ---- through lockstepd --------------------------------------------------------------- */

#define T1_ROWS 1500
#define T2_ROWS 300
#define T3_ROWS 200

static struct ls_testmy *msrc, *mdst;
static struct ls_testpg *pdst;
static struct ls_testd *dd[2];        /* target "my", target "pg" */
static const char *const dtarget[] = { "my", "pg" };

static const char *const dtables[] = { "t1", "t2", "t3" };
#define NTABLES 3
/* per table: the columns the test's own comparison reads, MariaDB syntax */
static const char *const dcols[] = {
	"id, IFNULL(name, '~'), IFNULL(n, '~'), IFNULL(note, '~'), IFNULL(HEX(b), '~'),"
	" IFNULL(d, '~'), IFNULL(dt, '~')",
	"a, b, IFNULL(v, '~')",
	"HEX(k), IFNULL(bits + 0, '~'), IFNULL(y, '~')",
};
/* code point order: the target's collation is binary, the source's not */
static const char *const dorder[] = { "id", "CONVERT(a USING utf8mb4) COLLATE utf8mb4_bin, b",
				      "k" };

static void make_source(void)
{
	ls_testmy_exec(msrc, NULL, "CREATE DATABASE shop");
	ls_testmy_exec(mdst, NULL, "CREATE DATABASE shop");
	ls_testpg_exec(pdst, "postgres", "CREATE DATABASE shop");
	ls_testmy_exec(msrc, "shop",
		"CREATE TABLE t1 (id int PRIMARY KEY, name varchar(40), n int, note text,"
		" b varbinary(16), d decimal(10,2), dt datetime(6)) ENGINE=InnoDB");
	ls_testmy_exec(msrc, "shop",
		"INSERT INTO t1 SELECT seq, CONCAT('name ', seq), seq %% 7,"
		" ELT(1 + seq %% 3, NULL, '', 'a,b\"c(d)'), UNHEX(MD5(seq)), seq / 4,"
		" TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq * 61 SECOND"
		" FROM seq_1_to_%d", T1_ROWS);
	ls_testmy_exec(msrc, "shop",
		"CREATE TABLE t2 (a varchar(20), b int, v decimal(10,2), PRIMARY KEY (a, b))"
		" ENGINE=InnoDB");
	ls_testmy_exec(msrc, "shop",
		"INSERT INTO t2 SELECT CONCAT(ELT(1 + seq %% 6, 'x', 'Y', 'é', 'a,b', 'q\"t', ' s'),"
		" seq DIV 6), seq %% 4, seq * 1.5 FROM seq_1_to_%d", T2_ROWS);
	ls_testmy_exec(msrc, "shop",
		"CREATE TABLE t3 (k varbinary(8) PRIMARY KEY, bits bit(5), y year) ENGINE=InnoDB");
	ls_testmy_exec(msrc, "shop",
		"INSERT INTO t3 SELECT UNHEX(LPAD(HEX(seq), 4, '0')), seq %% 32, 1901 + seq"
		" FROM seq_1_to_%d", T3_ROWS);
}

/* count and hash of a MariaDB table (the test's own comparison) */
static char *my_sum(struct ls_testmy *m, int t)
{
	return ls_testmy_query1(m, "shop", "SET STATEMENT group_concat_max_len = 1073741824 FOR"
		" SELECT CONCAT(COUNT(*), ':', IFNULL(MD5(GROUP_CONCAT(CONVERT(CONCAT_WS('|', %s)"
		" USING utf8mb4) ORDER BY %s SEPARATOR '\\n')), '-')) FROM %s", dcols[t], dorder[t], dtables[t]);
}

static long long pg_count(int t)
{
	if (ls_testpg_try_exec(pdst, "shop", "SELECT 1 FROM shop.%s LIMIT 0", dtables[t]) < 0)
		return -1;
	char *c = ls_testpg_query1(pdst, "shop", "SELECT count(*) FROM shop.%s", dtables[t]);
	long long n = atoll(c);
	free(c);
	return n;
}

static long long my_count(struct ls_testmy *m, int t)
{
	char *c = ls_testmy_query1(m, "shop", "SELECT COUNT(*) FROM %s", dtables[t]);
	long long n = c ? atoll(c) : -1;
	free(c);
	return n;
}

/* MariaDB target equal to the source; PostgreSQL target with as many rows */
static bool dconverged(void *ctx)
{
	(void)ctx;
	for (int t = 0; t < NTABLES; t++) {
		if (ls_testmy_try_exec(mdst, "shop", "SELECT 1 FROM %s LIMIT 0", dtables[t]) < 0)
			return false;
		char *a = my_sum(msrc, t), *b = my_sum(mdst, t);
		bool eq = a && b && strcmp(a, b) == 0;
		free(a);
		free(b);
		if (!eq || pg_count(t) != my_count(msrc, t))
			return false;
	}
	return true;
}

static void assert_dconverged(void)
{
	if (ls_test_wait_until(dconverged, NULL, 120000))
		return;
	for (int t = 0; t < NTABLES; t++) {
		char *a = my_sum(msrc, t), *b = my_sum(mdst, t);
		fprintf(stderr, "%s: source %s, MariaDB target %s, PostgreSQL target %lld rows\n",
			dtables[t], a ? a : "-", b ? b : "-", pg_count(t));
		free(a);
		free(b);
	}
	fprintf(stderr, "log (my):\n%s\n", ls_testd_log_tail(dd[0]));
	ck_abort_msg("targets did not converge; log (pg):\n%s", ls_testd_log_tail(dd[1]));
}

static void dsetup(void)
{
	msrc = ls_testmy_start(NULL);
	mdst = ls_testmy_start(NULL);
	pdst = ls_testpg_start(NULL);
	make_source();
	for (int k = 0; k < 2; k++) {
		char conf[4096];
		snprintf(conf, sizeof conf,
			 "[pipeline]\nname = shop%s\nstate_dir = @DIR@\n\n"
			 "[source]\ntype = mysql\nconninfo = %s\ntables = shop.*\n\n"
			 "[buffer]\ntype = direct\n\n"
			 "[target %s]\ntype = %s\nconninfo = %s\ncreate_tables = true\n"
			 "batch_ms = 20\n\n"
			 "[control]\nsocket = @DIR@/control.sock\n\n"
			 "[drift]\ninterval = 0\nchunk_rows = 100\n\n[log]\nlevel = info\n",
			 dtarget[k], ls_testmy_conninfo(msrc, "shop"), dtarget[k],
			 k ? "postgres" : "mysql", k ? ls_testpg_conninfo(pdst, "shop")
			 : ls_testmy_conninfo(mdst, "shop"));
		dd[k] = ls_testd_new();
		ls_testd_config(dd[k], conf);
		ls_testd_start(dd[k]);
	}
	for (int k = 0; k < 2; k++)
		ls_testd_wait_state(dd[k], "streaming", 120000);
	assert_dconverged();
}

static void dteardown(void)
{
	for (int k = 0; k < 2; k++) {
		if (dd[k])
			ck_assert_int_eq(ls_testd_stop(dd[k], 30000), 0);
		ls_testd_free(dd[k]);
		dd[k] = NULL;
	}
	ls_testpg_stop(pdst);
	ls_testmy_stop(mdst);
	ls_testmy_stop(msrc);
}

static long long num(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static long long last_id(json_t *rep)
{
	json_t *last = json_object_get(rep, "last");
	return json_is_object(last) ? num(last, "id") : 0;
}

struct wait_check {
	long long id[2];
	json_t *rep[2];
};

static bool check_finished(void *ctx)
{
	struct wait_check *w = ctx;
	for (int k = 0; k < 2; k++) {
		if (w->rep[k])
			continue;
		json_t *j = ls_testd_get(dd[k], "/drift");
		if (j != NULL && last_id(j) >= w->id[k])
			w->rep[k] = j;
		else
			json_decref(j);
	}
	return w->rep[0] && w->rep[1];
}

/* POST /drift/check?rate=1000 to both daemons at once; the finished
 * reports (caller decrefs). */
static void run_checks(json_t *rep[2])
{
	struct wait_check w = { { 0, 0 }, { NULL, NULL } };
	for (int k = 0; k < 2; k++) {
		json_t *before = ls_testd_get(dd[k], "/drift");
		ck_assert_ptr_nonnull(before);
		w.id[k] = last_id(before) + 1;
		json_decref(before);
	}
	for (int k = 0; k < 2; k++)
		ck_assert_int_eq(ls_testd_post(dd[k], "/drift/check?rate=1000"), 202);
	if (!ls_test_wait_until(check_finished, &w, 180000)) {
		for (int k = 0; k < 2; k++) {
			json_t *j = ls_testd_get(dd[k], "/drift");
			char *dump = j ? json_dumps(j, JSON_COMPACT) : NULL;
			fprintf(stderr, "daemon %s: %s\nlog:\n%s\n", dtarget[k], dump ? dump : "-",
				ls_testd_log_tail(dd[k]));
			free(dump);
			json_decref(j);
		}
		ck_abort_msg("drift checks did not finish");
	}
	rep[0] = w.rep[0];
	rep[1] = w.rep[1];
}

static json_t *entry(json_t *rep, const char *table, const char *target)
{
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(rep, "tables"), i, t)
		if (strcmp(json_string_value(json_object_get(t, "table")), table) == 0 &&
		    strcmp(json_string_value(json_object_get(t, "target")), target) == 0)
			return t;
	ck_abort_msg("no report for %s on %s: %s", table, target, json_dumps(rep, JSON_COMPACT));
	return NULL;
}

static long long source_rows(void)
{
	long long n = 0;
	for (int t = 0; t < NTABLES; t++)
		n += my_count(msrc, t);
	return n;
}

/* Both reports clean; want_rows >= 0: each target checked that many. */
static void assert_clean(json_t *const rep2[2], long long want_rows)
{
	for (int k = 0; k < 2; k++) {
		json_t *rep = rep2[k];
		const char *target = dtarget[k];
		char *dump = json_dumps(rep, JSON_COMPACT);
		ck_assert_msg(json_is_true(json_object_get(json_object_get(rep, "last"), "clean")),
			      "check not clean: %s", dump);
		ck_assert_msg(json_is_true(json_object_get(rep, "drift_clean")), "%s", dump);
		ck_assert_int_eq(num(rep, "drift_rows"), 0);
		if (want_rows < 0) {
			free(dump);
			continue;
		}
		long long rows = 0;
		for (int t = 0; t < NTABLES; t++) {
			char name[32];
			snprintf(name, sizeof name, "shop.%s", dtables[t]);
			json_t *e = entry(rep, name, target);
			ck_assert_msg(json_is_null(json_object_get(e, "error")), "%s", dump);
			ck_assert(json_is_string(json_object_get(e, "position")));
			rows += num(e, "rows_checked");
		}
		ck_assert_msg(rows == want_rows, "target %s checked %lld rows, want %lld: %s",
			      target, rows, want_rows, dump);
		free(dump);
	}
}

static void decref2(json_t *rep[2])
{
	json_decref(rep[0]);
	json_decref(rep[1]);
}

/* The keys listed for entry e with this kind, sorted, joined by spaces. */
static void keys_of(json_t *e, const char *kind, char *out, size_t size)
{
	const char *v[64];
	int n = 0;
	size_t i;
	json_t *k;
	json_array_foreach(json_object_get(e, "keys"), i, k)
		if (strcmp(json_string_value(json_object_get(k, "kind")), kind) == 0 && n < 64)
			v[n++] = json_string_value(json_object_get(k, "key"));
	for (int a = 0; a < n; a++)
		for (int b = a + 1; b < n; b++)
			if (strcmp(v[a], v[b]) > 0) {
				const char *x = v[a];
				v[a] = v[b];
				v[b] = x;
			}
	out[0] = '\0';
	for (int a = 0; a < n; a++)
		snprintf(out + strlen(out), size - strlen(out), "%s%s", a ? " " : "", v[a]);
}

/* Asserts an entry's counts and its keys of each kind. */
static void assert_entry(json_t *rep, const char *table, const char *target, int missing,
			 const char *mkeys, int extra, const char *ekeys, int different,
			 const char *dkeys)
{
	json_t *e = entry(rep, table, target);
	char *dump = json_dumps(e, JSON_COMPACT);
	ck_assert_msg(num(e, "missing") == missing && num(e, "extra") == extra &&
		      num(e, "different") == different, "%s on %s: %s", table, target, dump);
	char keys[1024];
	keys_of(e, "missing", keys, sizeof keys);
	ck_assert_msg(strcmp(keys, mkeys) == 0, "%s on %s missing: %s", table, target, keys);
	keys_of(e, "extra", keys, sizeof keys);
	ck_assert_msg(strcmp(keys, ekeys) == 0, "%s on %s extra: %s", table, target, keys);
	keys_of(e, "different", keys, sizeof keys);
	ck_assert_msg(strcmp(keys, dkeys) == 0, "%s on %s different: %s", table, target, keys);
	free(dump);
}

/* lockstepctl drift ARGS --json against daemon k: exit code, and the JSON
 * it printed. */
static int ctl_drift(int k, const char *args, json_t **out)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "'%s' --socket '%s' drift %s --json",
		 ls_test_build_path("lockstepctl"), ls_testd_socket(dd[k]), args);
	FILE *f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	int st = pclose(f);
	*out = json_loads(buf, 0, NULL);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void assert_markers_gone(void)
{
	char *n = ls_testmy_query1(msrc, NULL, "SELECT COUNT(*) FROM lockstep.drift_marker");
	ck_assert_str_eq(n, "0");
	free(n);
}

START_TEST(drift_mysql_source_finds_exact_rows_and_repair_fixes_them)
{
	json_t *rep[2], *out[2] = { NULL, NULL };
	run_checks(rep);
	assert_clean(rep, source_rows());
	for (int k = 0; k < 2; k++)
		ck_assert_int_ge(num(entry(rep[k], "shop.t1", dtarget[k]), "chunks"), T1_ROWS / 100);
	decref2(rep);
	assert_markers_gone();

	/* drift made behind lockstep's back, on each target */
	ls_testmy_exec(mdst, "shop",
		"UPDATE t1 SET name = 'changed' WHERE id IN (5, 1200);"
		"UPDATE t1 SET note = NULL WHERE id = 1000;"       /* '' -> NULL */
		"DELETE FROM t1 WHERE id IN (7, 999);"
		"INSERT INTO t1 (id, name) VALUES (5001, 'extra'), (0, 'extra');"
		"DELETE FROM t2 WHERE a = 'a,b0' AND b = 3;"
		"UPDATE t3 SET bits = bits + 1 WHERE k = X'0003';"
		"DELETE FROM t3 WHERE k = X'00c8'");
	ls_testpg_exec(pdst, "shop",
		"UPDATE shop.t1 SET b = '\\x00' WHERE id = 42;"
		"DELETE FROM shop.t1 WHERE id = 1500;"
		"UPDATE shop.t2 SET v = v + 1 WHERE a = 'q\"t1' AND b = 2;"
		"INSERT INTO shop.t3 (k, bits, y) VALUES ('\\xffff', 1, 2000);"
		"UPDATE shop.t3 SET y = 1999 WHERE k = '\\x0010'");
	for (int k = 0; k < 2; k++) {
		int rc = ctl_drift(k, "--check", &out[k]);
		ck_assert_msg(rc == 1, "lockstepctl drift --check (%s) exited %d, want 1; log:\n%s",
			      dtarget[k], rc, ls_testd_log_tail(dd[k]));
		ck_assert_ptr_nonnull(out[k]);
		ck_assert(json_is_false(json_object_get(out[k], "drift_clean")));
	}
	assert_entry(out[0], "shop.t1", "my", 2, "[\"7\"] [\"999\"]", 2, "[\"0\"] [\"5001\"]",
		     3, "[\"1000\"] [\"1200\"] [\"5\"]");
	assert_entry(out[0], "shop.t2", "my", 1, "[\"a,b0\", \"3\"]", 0, "", 0, "");
	assert_entry(out[0], "shop.t3", "my", 1, "[\"00c8\"]", 0, "", 1, "[\"0003\"]");
	ck_assert_int_eq(num(out[0], "drift_rows"), 7 + 1 + 2);
	assert_entry(out[1], "shop.t1", "pg", 1, "[\"1500\"]", 0, "", 1, "[\"42\"]");
	assert_entry(out[1], "shop.t2", "pg", 0, "", 0, "", 1, "[\"q\\\"t1\", \"2\"]");
	assert_entry(out[1], "shop.t3", "pg", 0, "", 1, "[\"ffff\"]", 1, "[\"0010\"]");
	ck_assert_int_eq(num(out[1], "drift_rows"), 2 + 1 + 2);
	decref2(out);

	for (int k = 0; k < 2; k++) {
		int rc = ctl_drift(k, "--repair", &out[k]);
		ck_assert_msg(rc == 0, "lockstepctl drift --repair (%s) exited %d, want 0; log:\n%s",
			      dtarget[k], rc, ls_testd_log_tail(dd[k]));
	}
	assert_clean(out, source_rows());
	decref2(out);
	/* the test's own comparison agrees */
	ck_assert(dconverged(NULL));
	char *v = ls_testpg_query1(pdst, "shop", "SELECT encode(b, 'hex') FROM shop.t1 WHERE id = 42");
	char *w = ls_testmy_query1(msrc, "shop", "SELECT LOWER(HEX(b)) FROM t1 WHERE id = 42");
	ck_assert_str_eq(v, w);
	free(v);
	free(w);
	v = ls_testpg_query1(pdst, "shop", "SELECT count(*) FROM shop.t3 WHERE k = '\\xffff'"
			     " OR (k = '\\x0010' AND y = 1999)");
	ck_assert_str_eq(v, "0");
	free(v);
	assert_markers_gone();
	run_checks(rep);
	assert_clean(rep, source_rows());
	decref2(rep);
}
END_TEST

struct load {
	pthread_t thread;
	atomic_bool stop;
	atomic_long txns;
	char err[600];
};

static void *load_main(void *arg)
{
	struct load *l = arg;
	struct ls_myconn c;
	struct ls_err err;
	MYSQL *m = NULL;
	if (ls_mysetup_conn_parse(ls_testmy_conninfo(msrc, "shop"), &c, &err) == 0)
		m = ls_mysetup_connect(&c, 0, &err);
	ls_mysetup_conn_free(&c);
	if (m == NULL) {
		snprintf(l->err, sizeof l->err, "load: %s", err.msg);
		return NULL;
	}
	unsigned seed = 7;
	int next = 100000;
	while (!atomic_load(&l->stop)) {
		int a = 1 + (int)(rand_r(&seed) % T1_ROWS), b = 1 + (int)(rand_r(&seed) % T1_ROWS);
		char sql[6][300];
		snprintf(sql[0], sizeof sql[0], "UPDATE t1 SET n = n + 1, note = MD5(RAND()),"
			 " b = UNHEX(MD5(RAND())) WHERE id = %d", a);
		snprintf(sql[1], sizeof sql[1], "INSERT INTO t1 (id, name, n, dt) VALUES"
			 " (%d, 'load', 0, NOW(6))", next);
		snprintf(sql[2], sizeof sql[2], "DELETE FROM t1 WHERE id = %d", next - 1);
		snprintf(sql[3], sizeof sql[3], "UPDATE t1 SET name = LEFT(CONCAT(name, '.'), 40)"
			 " WHERE id = %d", b);
		snprintf(sql[4], sizeof sql[4], "UPDATE t2 SET v = v + 1 WHERE b = %d AND a LIKE"
			 " 'x%%'", a % 4);
		snprintf(sql[5], sizeof sql[5], "UPDATE t3 SET bits = (bits + 1) %% 32, y = 1901 +"
			 " (y + 1) %% 250 WHERE k = UNHEX(LPAD(HEX(%d), 4, '0'))", 1 + a % T3_ROWS);
		next++;
		bool ok = mysql_query(m, "START TRANSACTION") == 0;
		for (int i = 0; ok && i < 6; i++)
			ok = mysql_query(m, sql[i]) == 0;
		if (!ok || mysql_query(m, "COMMIT") != 0)
			(void)mysql_query(m, "ROLLBACK");   /* a lock wait or deadlock */
		else
			atomic_fetch_add(&l->txns, 1);
		/* pace: unthrottled, this MariaDB commits far faster than two
		 * daemons on a shared machine apply, and checks only wait */
		nanosleep(&(struct timespec){ .tv_nsec = 2000000 }, NULL);
	}
	mysql_close(m);
	return NULL;
}

START_TEST(drift_mysql_source_no_false_drift_under_load)
{
	struct load l;
	memset(&l, 0, sizeof l);
	ck_assert_int_eq(pthread_create(&l.thread, NULL, load_main, &l), 0);
	json_t *rep[2];
	for (int i = 0; i < 5; i++) {
		long before = atomic_load(&l.txns);
		run_checks(rep);
		assert_clean(rep, -1);
		decref2(rep);
		ck_assert_msg(atomic_load(&l.txns) > before, "the load stalled during check %d", i);
	}
	atomic_store(&l.stop, true);
	pthread_join(l.thread, NULL);
	ck_assert_msg(l.err[0] == '\0', "%s", l.err);
	ck_assert_int_gt(atomic_load(&l.txns), 0);
	assert_dconverged();
	run_checks(rep);
	assert_clean(rep, source_rows());
	decref2(rep);
	assert_markers_gone();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("drift_mysql");
	TCase *tc = tcase_create("canonical");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, drift_mysql_same_rows_same_hashes);
	suite_add_tcase(s, tc);
	const struct { const char *name; const TTest *fn; } cases[] = {
		{ "daemon_finds_and_repairs", drift_mysql_source_finds_exact_rows_and_repair_fixes_them },
		{ "daemon_under_load", drift_mysql_source_no_false_drift_under_load },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		tc = tcase_create(cases[i].name);
		tcase_add_checked_fixture(tc, dsetup, dteardown);
		tcase_set_timeout(tc, 600);
		tcase_add_test(tc, cases[i].fn);
		suite_add_tcase(s, tc);
	}
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
