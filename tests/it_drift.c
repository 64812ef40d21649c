/* Drift checks through the real lockstepd, PostgreSQL -> direct buffer ->
 * PostgreSQL, with chunk_rows = 100 so tables span many chunks:
 *  - after convergence a check is clean and covers every row;
 *  - rows changed, deleted and inserted directly on the target are found by
 *    key with exact missing / extra / different counts (lockstepctl drift
 *    --check exits 1), and lockstepctl drift --repair fixes them (exit 0,
 *    the target equals the source again);
 *  - under a concurrent write load, ten checks in a row find no drift;
 *  - a walk over a table appended to while it runs ends at the key that
 *    was greatest when it began, the rows appended since in one last chunk
 *    (instead of walking on over them);
 *  - a check while the target is held back (its table locked) waits for the
 *    target instead of reporting the source's newer rows as drift;
 *  - after ALTER TABLE ... ADD COLUMN ... DEFAULT random() on the source (a
 *    rewrite the stream never carries; no restart) a check reads the new
 *    definition and finds every row of that table different, --repair
 *    fixes them (the target gains the column) and a re-check is clean. */
#include <check.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/helpers/testd.h"
#include "tests/helpers/testutil.h"
#include "tests/helpers/testsrv.h"

#define T1_ROWS 2000
#define LOAD_RATE 300     /* load transactions a second */
#define T2_ROWS 500

static struct ls_testpg *src, *dst;
static struct ls_testd *d;

static const char *const tables[] = { "t1", "t2", "t3" };
#define NTABLES 3

static void make_schema(void)
{
	ls_testpg_exec(src, "postgres", "CREATE DATABASE shop");
	ls_testpg_exec(dst, "postgres", "CREATE DATABASE shop");
	ls_testpg_exec(src, "shop",
		"CREATE TABLE t1 (id int PRIMARY KEY, name text, n int, note text);"
		"INSERT INTO t1 SELECT g, 'name ' || g, g %% 7, CASE g %% 3 WHEN 0 THEN NULL"
		"  WHEN 1 THEN '' ELSE 'a,b\"c(d)' END FROM generate_series(1, %d) g;"
		"CREATE TABLE t2 (a text, b int, v numeric(10,2), PRIMARY KEY (a, b));"
		"INSERT INTO t2 SELECT (ARRAY['x', 'Y', 'é', 'a,b', 'q\"t', ' s'])[1 + g %% 6] || (g / 6),"
		"  g %% 4, g * 1.5 FROM generate_series(1, %d) g;"
		"CREATE TABLE t3 (id bigint PRIMARY KEY, at timestamptz, f float8, j jsonb, bin bytea,"
		"  tags text[]);"
		"INSERT INTO t3 SELECT g, timestamptz '2024-01-01 00:00+02' + g * interval '1 min',"
		"  g / 3.0, jsonb_build_object('g', g), decode(md5(g::text), 'hex'), ARRAY['a', NULL]"
		"  FROM generate_series(1, 300) g;"
		"CREATE TABLE t4 (a int, doc json);"       /* no key: skipped, not an error */
		"ALTER TABLE t4 REPLICA IDENTITY FULL;"
		"INSERT INTO t4 VALUES (1, '{}'), (1, '{}');",
		T1_ROWS, T2_ROWS);
}

/* ---- comparing (the test's own, independent of lockstep) ------------------------- */

static char *checksum(struct ls_testpg *pg, const char *table)
{
	return ls_testpg_query1(pg, "shop",
		"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '-')"
		" FROM %s t", table);
}

static bool converged(void *ctx)
{
	(void)ctx;
	for (int i = 0; i < NTABLES; i++) {
		if (ls_testpg_try_exec(dst, "shop", "SELECT 1 FROM %s LIMIT 0", tables[i]) < 0)
			return false;
		char *a = checksum(src, tables[i]), *b = checksum(dst, tables[i]);
		bool eq = a && b && strcmp(a, b) == 0;
		free(a);
		free(b);
		if (!eq)
			return false;
	}
	return true;
}

static void assert_converged(void)
{
	ck_assert_msg(ls_test_wait_until(converged, NULL, 120000),
		      "target did not converge; log:\n%s", ls_testd_log_tail(d));
}

/* ---- the daemon ----------------------------------------------------------------------- */

static void start_daemon(void)
{
	char conf[2048];
	snprintf(conf, sizeof conf,
		 "[pipeline]\nname = shop\nstate_dir = @DIR@\n\n"
		 "[source]\ntype = postgres\nconninfo = %s\ntables = public.*\n\n"
		 "[buffer]\ntype = direct\n\n"
		 "[target new]\ntype = postgres\nconninfo = %s\ncreate_tables = true\n"
		 "batch_ms = 20\n\n"
		 "[control]\nsocket = @DIR@/control.sock\n\n"
		 "[drift]\ninterval = 0\nchunk_rows = 100\n\n[log]\nlevel = info\n",
		 ls_testpg_conninfo(src, "shop"), ls_testpg_conninfo(dst, "shop"));
	d = ls_testd_new();
	ls_testd_config(d, conf);
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
}

static void setup(void)
{
	src = ls_testpg_start(NULL);
	dst = ls_testpg_start(NULL);
	make_schema();
	start_daemon();
	assert_converged();
}

static void teardown(void)
{
	if (d)
		ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testd_free(d);
	d = NULL;
	ls_testpg_stop(dst);
	ls_testpg_stop(src);
}

/* ---- checks through the control socket --------------------------------------------------- */

static long long last_id(json_t *rep)
{
	json_t *last = json_object_get(rep, "last");
	return json_is_object(last) ? (long long)json_integer_value(json_object_get(last, "id")) : 0;
}

struct wait_check {
	long long id;
	json_t *rep;
};

static bool check_finished(void *ctx)
{
	struct wait_check *w = ctx;
	json_t *j = ls_testd_get(d, "/drift");
	if (j == NULL)
		return false;
	if (last_id(j) >= w->id) {
		w->rep = j;
		return true;
	}
	json_decref(j);
	return false;
}

/* POST /drift/check (path may carry a query); returns the check number. */
static long long start_check(const char *path)
{
	json_t *before = ls_testd_get(d, "/drift");
	ck_assert_ptr_nonnull(before);
	long long prev = last_id(before);
	json_decref(before);
	ck_assert_int_eq(ls_testd_post(d, path), 202);
	return prev + 1;   /* checks are numbered in order; none runs now */
}

/* Runs a check and returns the finished report (caller decrefs). */
static json_t *run_check(const char *path)
{
	struct wait_check w = { start_check(path), NULL };
	ck_assert_msg(ls_test_wait_until(check_finished, &w, 120000),
		      "drift check %lld did not finish; log:\n%s", w.id, ls_testd_log_tail(d));
	return w.rep;
}

static json_t *table_entry(json_t *rep, const char *table)
{
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(rep, "tables"), i, t)
		if (strcmp(json_string_value(json_object_get(t, "table")), table) == 0)
			return t;
	ck_abort_msg("no report for %s", table);
	return NULL;
}

static long long num(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static void assert_clean(json_t *rep, long long want_rows)
{
	json_t *last = json_object_get(rep, "last");
	ck_assert_msg(json_is_true(json_object_get(last, "clean")), "check not clean: %s",
		      json_dumps(rep, JSON_COMPACT));
	ck_assert(json_is_true(json_object_get(rep, "drift_clean")));
	ck_assert_int_eq(num(rep, "drift_rows"), 0);
	/* every marker was answered by the apply path itself */
	ck_assert_msg(json_is_integer(json_object_get(last, "answers_lost")) &&
		      num(last, "answers_lost") == 0, "answers lost: %s",
		      json_dumps(last, JSON_COMPACT));
	if (want_rows < 0)
		return;
	long long rows = 0;
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(rep, "tables"), i, t) {
		rows += num(t, "rows_checked");
		ck_assert(json_is_string(json_object_get(t, "position")) ||
			  json_is_string(json_object_get(t, "skipped")));
	}
	ck_assert_int_eq(rows, want_rows);
}

/* The keys listed for table with this kind, sorted, joined by spaces. */
static void keys_of(json_t *t, const char *kind, char *out, size_t size)
{
	const char *v[64];
	int n = 0;
	size_t i;
	json_t *k;
	json_array_foreach(json_object_get(t, "keys"), i, k)
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

static long long total_rows(void)
{
	long long n = 0;
	for (int i = 0; i < NTABLES; i++) {
		char *c = ls_testpg_query1(src, "shop", "SELECT count(*) FROM %s", tables[i]);
		n += atoll(c);
		free(c);
	}
	return n;
}

/* lockstepctl drift ARGS --json: exit code, and the JSON it printed. */
static int ctl_drift(const char *args, json_t **out)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "'%s' --socket '%s' drift %s --json",
		 ls_test_build_path("lockstepctl"), ls_testd_socket(d), args);
	FILE *f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	int st = pclose(f);
	*out = json_loads(buf, 0, NULL);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool t2_unverified(void *ctx)
{
	long long *want = ctx;
	json_t *j = ls_testd_get(d, "/drift");
	bool ok = false;
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(j, "tables"), i, t)
		if (strcmp(json_string_value(json_object_get(t, "table")), "public.t2") == 0)
			ok = num(t, "changes_since_check") == *want &&
			     num(j, "changes_since_check") == *want;
	json_decref(j);
	return ok;
}

/* ---- tests ------------------------------------------------------------------------------- */

START_TEST(drift_finds_exact_rows_and_repair_fixes_them)
{
	json_t *rep = run_check("/drift/check?rate=1000");
	assert_clean(rep, total_rows());
	json_t *t1 = table_entry(rep, "public.t1");
	ck_assert_int_ge(num(t1, "chunks"), T1_ROWS / 100);
	json_t *t4 = table_entry(rep, "public.t4");
	ck_assert(json_is_string(json_object_get(t4, "skipped")));
	ck_assert(json_is_null(json_object_get(t4, "error")));
	json_decref(rep);

	/* drift made behind lockstep's back, on the target */
	ls_testpg_exec(dst, "shop",
		"UPDATE t1 SET name = 'changed' WHERE id IN (5, 1500);"
		"UPDATE t1 SET note = NULL WHERE id = 1001;"    /* '' -> NULL */
		"DELETE FROM t1 WHERE id IN (7, 999, 2000);"
		"INSERT INTO t1 VALUES (5001, 'extra', 1, NULL), (0, 'extra', 1, NULL);"
		"DELETE FROM t2 WHERE a = 'a,b0' AND b = 3;"
		"UPDATE t2 SET v = v + 1 WHERE a = 'q\"t1' AND b = 2;"
		"UPDATE t3 SET at = at + interval '1 microsecond' WHERE id = 42;");
	json_t *out = NULL;
	int rc = ctl_drift("--check", &out);
	ck_assert_msg(rc == 1, "lockstepctl drift --check exited %d, want 1 (drift)", rc);
	ck_assert_ptr_nonnull(out);
	ck_assert(json_is_false(json_object_get(out, "drift_clean")));
	ck_assert_int_eq(num(out, "drift_rows"), 3 + 3 + 2 + 1 + 1 + 1);
	char keys[1024];
	t1 = table_entry(out, "public.t1");
	ck_assert_int_eq(num(t1, "different"), 3);
	ck_assert_int_eq(num(t1, "missing"), 3);
	ck_assert_int_eq(num(t1, "extra"), 2);
	keys_of(t1, "different", keys, sizeof keys);
	ck_assert_str_eq(keys, "[\"1001\"] [\"1500\"] [\"5\"]");
	keys_of(t1, "missing", keys, sizeof keys);
	ck_assert_str_eq(keys, "[\"2000\"] [\"7\"] [\"999\"]");
	keys_of(t1, "extra", keys, sizeof keys);
	ck_assert_str_eq(keys, "[\"0\"] [\"5001\"]");
	json_t *t2 = table_entry(out, "public.t2");
	ck_assert_int_eq(num(t2, "missing"), 1);
	ck_assert_int_eq(num(t2, "different"), 1);
	ck_assert_int_eq(num(t2, "extra"), 0);
	keys_of(t2, "missing", keys, sizeof keys);
	ck_assert_str_eq(keys, "[\"a,b0\", \"3\"]");
	keys_of(t2, "different", keys, sizeof keys);
	ck_assert_str_eq(keys, "[\"q\\\"t1\", \"2\"]");
	json_t *t3 = table_entry(out, "public.t3");
	ck_assert_int_eq(num(t3, "different"), 1);
	keys_of(t3, "different", keys, sizeof keys);
	ck_assert_str_eq(keys, "[\"42\"]");
	json_decref(out);
	/* GET /status carries the same verdict */
	json_t *st = ls_testd_get(d, "/status");
	ck_assert_ptr_nonnull(st);
	ck_assert(json_is_false(json_object_get(st, "drift_clean")));
	ck_assert_int_eq(num(st, "drift_rows"), 11);
	json_decref(st);

	rc = ctl_drift("--repair", &out);
	ck_assert_msg(rc == 0, "lockstepctl drift --repair exited %d, want 0; log:\n%s", rc,
		      ls_testd_log_tail(d));
	assert_clean(out, total_rows());
	ck_assert_int_eq(num(table_entry(out, "public.t2"), "changes_since_check"), 0);
	json_decref(out);
	ck_assert(converged(NULL));

	/* what changed since the check is reported as unverified */
	ls_testpg_exec(src, "shop", "UPDATE t2 SET v = v + 1 WHERE b = 1");
	char *n = ls_testpg_query1(src, "shop", "SELECT count(*) FROM t2 WHERE b = 1");
	long long want = atoll(n);
	free(n);
	ck_assert_int_gt(want, 0);
	ck_assert_msg(ls_test_wait_until(t2_unverified, &want, 30000),
		      "t2's changes since the check were not reported");
}
END_TEST

struct load {
	pthread_t thread;
	atomic_bool stop;
	atomic_long txns;
	char err[256];
};

static void *load_main(void *arg)
{
	struct load *l = arg;
	PGconn *c = PQconnectdb(ls_testpg_conninfo(src, "shop"));
	if (PQstatus(c) != CONNECTION_OK) {
		snprintf(l->err, sizeof l->err, "load: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	unsigned seed = 7;
	int next = 100000;
	double t0 = ls_testutil_now();
	while (!atomic_load(&l->stop)) {
		char sql[1024];
		int a = 1 + (int)(rand_r(&seed) % T1_ROWS), b = 1 + (int)(rand_r(&seed) % T1_ROWS);
		snprintf(sql, sizeof sql,
			 "BEGIN;"
			 "UPDATE t1 SET n = n + 1, note = md5(random()::text) WHERE id = %d;"
			 "INSERT INTO t1 VALUES (%d, 'load', 0, NULL);"
			 "DELETE FROM t1 WHERE id = %d;"
			 "UPDATE t1 SET name = name || '.' WHERE id = %d;"
			 "UPDATE t2 SET v = v + 1 WHERE b = %d AND a LIKE 'x%%';"
			 "UPDATE t3 SET f = f + 0.1 WHERE id = %d;"
			 "COMMIT;",
			 a, next, next - 1, b, a % 4, 1 + a % 300);
		next++;
		PGresult *r = PQexec(c, sql);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			PQclear(PQexec(c, "ROLLBACK"));
		PQclear(r);
		/* ~25 row changes each: unpaced, this one session outran the
		 * source's decoding on 2 cores and every check waited longer */
		ls_testutil_pace(t0, atomic_fetch_add(&l->txns, 1) + 1, LOAD_RATE);
	}
	PQfinish(c);
	return NULL;
}

static bool walk_started(void *ctx)
{
	(void)ctx;
	json_t *j = ls_testd_get(d, "/drift");
	bool started = j && num(json_object_get(j, "running"), "chunks_done") >= 2;
	json_decref(j);
	return started;
}

START_TEST(drift_walk_ends_on_an_appended_table)
{
	/* a slow walk over t1's 2,000 rows (20 chunks at 20 a second) */
	struct wait_check w = { start_check("/drift/check?table=public.t1&rate=20"), NULL };
	ck_assert_msg(ls_test_wait_until(walk_started, NULL, 60000), "the walk did not start");
	/* rows appended past the walk's end while it runs */
	ls_testpg_exec(src, "shop", "INSERT INTO t1 SELECT g, 'appended', 0, NULL"
		       " FROM generate_series(1000001, 1005000) g");
	ck_assert_msg(ls_test_wait_until(check_finished, &w, 120000),
		      "drift check %lld did not finish; log:\n%s", w.id, ls_testd_log_tail(d));
	assert_clean(w.rep, -1);
	json_t *t1 = table_entry(w.rep, "public.t1");
	fprintf(stderr, "appended: %lld rows in %lld chunks\n", num(t1, "rows_checked"),
		num(t1, "chunks"));
	/* the walk ended at the greatest key of its start: 20 chunks, then
	 * one more with all 5,000 appended rows (not 50 more chunks) */
	ck_assert_int_eq(num(t1, "rows_checked"), T1_ROWS + 5000);
	ck_assert_int_le(num(t1, "chunks"), T1_ROWS / 100 + 2);
	json_decref(w.rep);
}
END_TEST

START_TEST(drift_no_false_drift_under_load)
{
	struct load l;
	memset(&l, 0, sizeof l);
	ck_assert_int_eq(pthread_create(&l.thread, NULL, load_main, &l), 0);
	long before = 0;
	for (int i = 0; i < 10; i++) {
		before = atomic_load(&l.txns);
		json_t *rep = run_check("/drift/check?rate=1000");
		assert_clean(rep, -1);
		json_decref(rep);
		ck_assert_msg(atomic_load(&l.txns) > before, "the load stalled during check %d", i);
	}
	atomic_store(&l.stop, true);
	pthread_join(l.thread, NULL);
	ck_assert_msg(l.err[0] == '\0', "%s", l.err);
	assert_converged();
	json_t *rep = run_check("/drift/check?rate=1000");
	assert_clean(rep, total_rows());
	json_decref(rep);
}
END_TEST

static bool markers_waiting(void *ctx)
{
	(void)ctx;
	json_t *j = ls_testd_get(d, "/drift");
	/* MAX_PENDING (8) markers emitted, none answered */
	bool w = j && num(json_object_get(j, "running"), "chunks_waiting") >= 8;
	json_decref(j);
	return w;
}

START_TEST(drift_waits_for_a_held_back_target)
{
	/* hold the target back: the apply blocks on t1 */
	PGconn *lock = PQconnectdb(ls_testpg_conninfo(dst, "shop"));
	ck_assert_int_eq(PQstatus(lock), CONNECTION_OK);
	PQclear(PQexec(lock, "BEGIN"));
	PGresult *r = PQexec(lock, "LOCK TABLE t1 IN ACCESS EXCLUSIVE MODE");
	ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	/* the source moves on: these rows differ until the target catches up */
	ls_testpg_exec(src, "shop",
		"UPDATE t1 SET name = 'later' WHERE id <= 300;"
		"DELETE FROM t1 WHERE id BETWEEN 1900 AND 1950;"
		"INSERT INTO t1 SELECT g, 'new', 0, '' FROM generate_series(3001, 3100) g;");
	long long id = start_check("/drift/check?table=public.t1&rate=1000");
	ck_assert_msg(ls_test_wait_until(markers_waiting, NULL, 60000),
		      "no marker is waiting for the target; log:\n%s", ls_testd_log_tail(d));
	json_t *j = ls_testd_get(d, "/drift");
	ck_assert_ptr_nonnull(j);
	ck_assert_int_lt(last_id(j), id);   /* still waiting, nothing reported */
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "running");
	json_decref(j);
	/* a second check is refused while one runs */
	ck_assert_int_eq(ls_testd_post(d, "/drift/check"), 409);
	PQclear(PQexec(lock, "ROLLBACK"));
	PQfinish(lock);
	struct wait_check w = { id, NULL };
	ck_assert_msg(ls_test_wait_until(check_finished, &w, 120000), "check did not finish");
	json_t *t1 = table_entry(w.rep, "public.t1");
	ck_assert_msg(num(t1, "drift_rows") == 0 && json_is_true(json_object_get(
		      json_object_get(w.rep, "last"), "clean")), "false drift: %s",
		      json_dumps(w.rep, JSON_COMPACT));
	char *n = ls_testpg_query1(src, "shop", "SELECT count(*) FROM t1");
	ck_assert_int_eq(num(t1, "rows_checked"), atoll(n));
	free(n);
	json_decref(w.rep);
	/* unknown tables are refused */
	ck_assert_int_eq(ls_testd_post(d, "/drift/check?table=public.nope"), 400);
}
END_TEST

START_TEST(drift_sees_ddl_since_start)
{
	json_t *rep = run_check("/drift/check?rate=1000");
	assert_clean(rep, total_rows());
	json_decref(rep);
	ls_testpg_exec(src, "shop", "ALTER TABLE t3 ADD COLUMN r float8 DEFAULT random()");
	char *n = ls_testpg_query1(src, "shop", "SELECT count(*) FROM t3 WHERE r IS NOT NULL");
	long long t3_rows = atoll(n);
	free(n);
	ck_assert_int_eq(t3_rows, 300);

	json_t *out = NULL;
	int rc = ctl_drift("--check", &out);
	ck_assert_msg(rc == 1, "lockstepctl drift --check exited %d, want 1; log:\n%s", rc,
		      ls_testd_log_tail(d));
	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(num(out, "drift_rows"), t3_rows);
	json_t *t3 = table_entry(out, "public.t3");
	ck_assert_msg(json_is_null(json_object_get(t3, "error")), "t3: %s",
		      json_dumps(t3, JSON_COMPACT));
	ck_assert_int_eq(num(t3, "different"), t3_rows);
	ck_assert_int_eq(num(t3, "missing"), 0);
	ck_assert_int_eq(num(t3, "extra"), 0);
	ck_assert_int_eq(num(t3, "rows_checked"), t3_rows);
	ck_assert_int_eq(num(table_entry(out, "public.t1"), "drift_rows"), 0);
	ck_assert_int_eq(num(table_entry(out, "public.t2"), "drift_rows"), 0);
	json_decref(out);

	rc = ctl_drift("--repair", &out);
	ck_assert_msg(rc == 0, "lockstepctl drift --repair exited %d, want 0; log:\n%s", rc,
		      ls_testd_log_tail(d));
	assert_clean(out, total_rows());
	json_decref(out);
	/* the target holds the source's values of the new column */
	assert_converged();
	rep = run_check("/drift/check?rate=1000");
	assert_clean(rep, total_rows());
	json_decref(rep);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("drift");
	const struct { const char *name; const TTest *fn; } cases[] = {
		{ "finds_and_repairs", drift_finds_exact_rows_and_repair_fixes_them },
		{ "under_load", drift_no_false_drift_under_load },
		{ "appended", drift_walk_ends_on_an_appended_table },
		{ "held_back_target", drift_waits_for_a_held_back_target },
		{ "ddl_since_start", drift_sees_ddl_since_start },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_add_checked_fixture(tc, setup, teardown);
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
