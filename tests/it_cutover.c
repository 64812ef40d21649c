/* Cutover and rollback through the real lockstepd, PostgreSQL -> direct
 * buffer -> PostgreSQL, with an application load that writes as its own
 * role ("app") and retries on failure:
 *  - under the load, `lockstepctl cutover --tables public.orders` fences
 *    the old side (the load gets permission errors), drains, carries the
 *    sequence, verifies, runs the switch hook (it creates a flag file the
 *    load watches; the load then writes to the new side, serial keys and
 *    all) and starts the reverse pipeline; the report gives the fenced
 *    window; the new side holds every row; public.items keeps replicating;
 *    no replication loop in either direction (row changes applied counted
 *    exactly); `lockstepctl rollback` brings every row written on the new
 *    side back and the load back to the old side;
 *  - the daemon stops inside the rollback window while the application
 *    writes to the new side: after the restart the cutover's state is back,
 *    the reverse pipeline brings those rows over and the rollback works;
 *  - a failed check at each kind of step stops the procedure with the old
 *    side serving and nothing lost: lag too high (target paused), drift (a
 *    direct write on the target), a write after the fence (a superuser
 *    session keeps writing), a hook that exits non-zero; the report says
 *    why.  A dry run changes nothing. */
#include <check.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/helpers/testcut.h"
#include "tests/helpers/testd.h"
#include "tests/helpers/testsrv.h"
#include "tests/helpers/testutil.h"

static struct ls_testpg *src, *dst;
static struct ls_testd *d;


static const char SCHEMA[] =
	"CREATE ROLE app LOGIN;"
	"CREATE TABLE orders (id serial PRIMARY KEY, v text, n int);"
	"CREATE TABLE items (id int PRIMARY KEY, v text);"
	"GRANT SELECT, INSERT, UPDATE, DELETE ON orders, items TO app;"
	"GRANT USAGE ON SEQUENCE orders_id_seq TO app;";

static void setup(void)
{
	src = ls_testpg_start(NULL);
	dst = ls_testpg_start(NULL);
	ls_testpg_exec(src, "postgres", "CREATE DATABASE shop");
	ls_testpg_exec(dst, "postgres", "CREATE DATABASE shop");
	ls_testpg_exec(src, "shop", "%s", SCHEMA);
	ls_testpg_exec(dst, "shop", "%s", SCHEMA);   /* the new side's schema, made by the operator */
	ls_testpg_exec(src, "shop",
		"INSERT INTO orders (v, n) SELECT 'seed', g FROM generate_series(1, 200) g;"
		"INSERT INTO items SELECT g, 'i' || g FROM generate_series(1, 50) g;");
}

static void teardown(void)
{
	if (d)
		ls_testd_stop(d, 30000);
	ls_testd_free(d);
	d = NULL;
	ls_testpg_stop(dst);
	ls_testpg_stop(src);
}

static void start_daemon_with(const char *switch_hook, const char *extra)
{
	d = ls_testcut_daemon("postgres", ls_testpg_conninfo(src, "shop"), "postgres",
			      ls_testpg_conninfo(dst, "shop"), "public.*", switch_hook, extra);
}

static void start_daemon(const char *switch_hook)
{
	start_daemon_with(switch_hook, "");
}

/* ---- the application's load ---------------------------------------------------------- */

static PGconn *app_connect(struct ls_testpg *pg)
{
	return ls_testcut_pg_app(pg, "shop");
}

/* The load's thread: inserts one order at a time on the side the flag
 * file points to; a failure (fenced, session ended) is retried, a unique
 * violation counted. */
static void *load_main(void *arg)
{
	struct ls_testcut_load *l = arg;
	PGconn *c = NULL;
	bool on_new = false;
	while (!atomic_load(&l->stop)) {
		bool want_new = ls_testcut_load_wants_new(l);
		if (c == NULL || PQstatus(c) != CONNECTION_OK || want_new != on_new) {
			PQfinish(c);
			on_new = want_new;
			c = app_connect(on_new ? dst : src);
			if (c == NULL) {
				struct timespec ts = { 0, 5 * 1000000L };
				nanosleep(&ts, NULL);   /* retry backoff, not a test wait */
				continue;
			}
		}
		PGresult *r = PQexec(c, "INSERT INTO orders (v, n) VALUES ('load', 1) RETURNING id");
		if (PQresultStatus(r) == PGRES_TUPLES_OK) {
			ls_testcut_load_note(l, atol(PQgetvalue(r, 0, 0)), on_new);
		} else {
			const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
			if (st && strcmp(st, "23505") == 0)
				atomic_fetch_add(&l->dups, 1);
			atomic_fetch_add(&l->failures, 1);
			struct timespec ts = { 0, 2 * 1000000L };
			nanosleep(&ts, NULL);   /* retry backoff */
		}
		PQclear(r);
	}
	PQfinish(c);
	return NULL;
}

static void load_start(struct ls_testcut_load *l)
{
	ls_testcut_load_start(l, d, load_main);
}

/* Every id the load saw committed is on pg. */
static void assert_has_all(struct ls_testcut_load *l, struct ls_testpg *pg, const char *side)
{
	size_t n;
	long *ids = ls_testcut_load_ids(l, &n);
	size_t size = n * 21 + 16, o = 0;
	char *arr = malloc(size);
	o += (size_t)snprintf(arr, size, "{");
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(arr + o, size - o, "%s%ld", i ? "," : "", ids[i]);
	snprintf(arr + o, size - o, "}");
	free(ids);
	char *got = ls_testpg_query1(pg, "shop",
		"SELECT count(DISTINCT id) FROM orders WHERE id = ANY('%s'::int[])", arr);
	free(arr);
	ck_assert_msg(got && atol(got) == (long)n, "the %s side holds %s of the %zu rows the "
		      "load committed", side, got ? got : "?", n);
	free(got);
}

/* ---- comparing and positions ---------------------------------------------------------------- */

static char *checksum(void *side, const char *table, const char *where)
{
	struct ls_testpg *pg = side;
	return ls_testpg_query1(pg, "shop",
		"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY id)), '-')"
		" FROM %s t WHERE %s", table, where);
}

static void assert_equal(const char *table, const char *where)
{
	ls_testcut_assert_equal(d, checksum, src, dst, table, where);
}

static long qlong(struct ls_testpg *pg, const char *sql)
{
	char *s = ls_testpg_query1(pg, "shop", "%s", sql);
	long v = s ? atol(s) : -1;
	free(s);
	return v;
}

static int ctl(const char *args, json_t **out)
{
	return ls_testcut_ctl(d, args, out);
}

/* The old side serves: the application can write there. */
static void assert_old_serves(struct ls_testcut_load *l)
{
	ls_testcut_load_wait(l, false, 20);
	ck_assert_msg(access(l->flag, F_OK) != 0, "the switch flag exists");
	PGconn *c = app_connect(src);
	ck_assert_ptr_nonnull(c);
	PGresult *r = PQexec(c, "INSERT INTO orders (v, n) VALUES ('after', 2)");
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "the app cannot write to the old "
		      "side: %s", PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
}

/* After a failed procedure: nothing lost, the target catches up. */
static void assert_nothing_lost(struct ls_testcut_load *l)
{
	ls_testcut_load_stop(l);
	assert_has_all(l, src, "old");
	assert_equal("orders", "true");
	assert_has_all(l, dst, "new");
	ck_assert_int_eq(atomic_load(&l->dups), 0);
}

/* ---- reverse-pipeline counters --------------------------------------------------------------- */

static long long rev_applied_changes(void)
{
	json_t *j = ls_testd_get(d, "/cutover");
	long long n = ls_testcut_num(json_object_get(j, "reverse"), "changes_applied");
	json_decref(j);
	return n;
}

static long long fwd_applied_changes(void)
{
	json_t *j = ls_testd_get(d, "/status");
	long long n = ls_testcut_num(json_array_get(json_object_get(j, "targets"), 0), "changes");
	json_decref(j);
	return n;
}

struct drained {
	bool reverse;
	long long lsn;                 /* the position to have applied, numeric */
};

static bool pipe_drained(void *ctx)
{
	struct drained *w = ctx;
	json_t *j = ls_testd_get(d, w->reverse ? "/cutover" : "/lag");
	long long seq = w->reverse
		? ls_testcut_num(json_object_get(j, "reverse"), "applied_seq")
		: ls_testcut_num(json_object_get(json_array_get(json_object_get(j, "targets"), 0), "applied"), "seq");
	json_decref(j);
	return seq >= w->lsn;
}

/* Waits until the forward (or reverse) target applied its source's
 * current position. */
static void wait_drained(bool reverse)
{
	struct drained w = { reverse, qlong(reverse ? dst : src,
					    "SELECT pg_current_wal_lsn() - '0/0'") };
	ck_assert_msg(ls_test_wait_until(pipe_drained, &w, 60000), "the %s pipeline did not "
		      "drain; log:\n%s", reverse ? "reverse" : "forward", ls_testd_log_tail(d));
}

struct count_want {
	bool reverse;
	long long want;
};

static bool applied_reached(void *ctx)
{
	struct count_want *w = ctx;
	return (w->reverse ? rev_applied_changes() : fwd_applied_changes()) >= w->want;
}

/* ---- tests ------------------------------------------------------------------------------------ */

START_TEST(cutover_and_rollback_under_load)
{
	start_daemon("touch @DIR@/switched");
	struct ls_testcut_load l = { .ids = NULL };
	load_start(&l);
	ls_testcut_load_wait(&l, false, 100);

	/* a dry run changes nothing */
	json_t *doc = NULL;
	int rc = ctl("cutover --dry-run --tables public.orders --json", &doc);
	json_t *pr = ls_testcut_proc(doc);
	ck_assert_msg(rc == 0, "dry run exited %d: %s", rc, ls_testcut_str(pr, "reason"));
	ck_assert(json_is_true(json_object_get(pr, "dry_run")));
	ck_assert(json_is_false(json_object_get(json_object_get(pr, "fence"), "applied")));
	ck_assert(strstr(ls_testcut_str(pr, "plan"), "public.orders_id_seq") != NULL);
	ck_assert_str_eq(ls_testcut_str(doc, "phase"), "idle");
	json_decref(doc);
	ls_testcut_load_wait(&l, false, 20);

	rc = ctl("cutover --tables public.orders --json --timeout 60", &doc);
	pr = ls_testcut_proc(doc);
	ck_assert_msg(rc == 0, "cutover exited %d: %s; log:\n%s", rc, ls_testcut_str(pr, "reason"),
		      ls_testd_log_tail(d));
	ck_assert_str_eq(ls_testcut_str(pr, "outcome"), "succeeded");
	ck_assert_str_eq(ls_testcut_str(doc, "phase"), "cut_over");
	const char *names[] = { "ready", "fence", "drain", "sequences", "verify", "switch", "reverse" };
	ls_testcut_assert_steps_ok(pr, names, 7);
	double window = json_number_value(json_object_get(pr, "write_unavailable_seconds"));
	ck_assert_msg(window > 0 && window < 60, "fenced window %.3f s", window);
	ck_assert_int_eq(json_array_size(json_object_get(pr, "tables")), 1);
	json_t *seq = json_array_get(json_object_get(pr, "sequences"), 0);
	ck_assert_str_eq(ls_testcut_str(seq, "name"), "public.orders_id_seq");
	ck_assert(json_is_true(json_object_get(seq, "carried")));
	ls_testcut_assert_report(pr);
	json_decref(doc);

	/* the load goes on against the new side, serial keys without collisions */
	ls_testcut_load_wait(&l, true, 100);
	ck_assert_int_eq(atomic_load(&l.dups), 0);
	ck_assert_int_gt(atomic_load(&l.failures), 0);   /* it did hit the fence */
	fprintf(stderr, "cutover: writes fenced %.3f s (reported), longest gap seen by the load "
		"%.3f s\n", window, l.max_gap);
	long max_old = qlong(src, "SELECT max(id) FROM orders");
	char where[64];
	snprintf(where, sizeof where, "id <= %ld", max_old);
	assert_equal("orders", where);   /* the new side has every row of the old */

	/* the rest keeps replicating forward */
	ls_testpg_exec(src, "shop", "UPDATE items SET v = 'changed' WHERE id <= 10");
	assert_equal("items", "true");

	/* no loop: forward-applied rows are not sent back, reverse-applied
	 * rows are not sent forward */
	ls_testcut_load_stop(&l);
	wait_drained(true);
	wait_drained(false);
	assert_equal("orders", "true");   /* the reverse brought the new side's rows back */
	long long r0 = rev_applied_changes(), f0 = fwd_applied_changes();
	for (int i = 1; i <= 20; i++)     /* a superuser on the old side: not fenced */
		ls_testpg_exec(src, "shop", "INSERT INTO orders VALUES (%d, 'su-old', 0)", 1000000 + i);
	struct count_want fw = { false, f0 + 20 };
	ck_assert(ls_test_wait_until(applied_reached, &fw, 60000));
	for (int i = 1; i <= 15; i++)
		ls_testpg_exec(dst, "shop", "INSERT INTO orders VALUES (%d, 'su-new', 0)", 2000000 + i);
	struct count_want rw = { true, r0 + 15 };
	ck_assert(ls_test_wait_until(applied_reached, &rw, 60000));
	wait_drained(true);
	wait_drained(false);
	wait_drained(true);
	ck_assert_int_eq(rev_applied_changes() - r0, 15);
	ck_assert_int_eq(fwd_applied_changes() - f0, 20);
	assert_equal("orders", "true");
	json_t *st = ls_testd_get(d, "/status");
	ck_assert_int_ge(ls_testcut_num(json_object_get(st, "source"), "skipped_origin_txns"), 1);
	ck_assert_str_eq(ls_testcut_str(st, "pipeline_state"), "streaming");
	json_decref(st);

	/* more writes on the new side, then back */
	load_start(&l);
	ls_testcut_load_wait(&l, true, 100);
	rc = ctl("rollback --json --timeout 60", &doc);
	pr = ls_testcut_proc(doc);
	ck_assert_msg(rc == 0, "rollback exited %d: %s; log:\n%s", rc, ls_testcut_str(pr, "reason"),
		      ls_testd_log_tail(d));
	ck_assert_str_eq(ls_testcut_str(doc, "phase"), "rolled_back");
	ck_assert(json_is_null(json_object_get(doc, "reverse")));
	ls_testcut_assert_report(pr);
	json_decref(doc);
	ls_testcut_load_wait(&l, false, 100);       /* back on the old side */
	ls_testcut_load_stop(&l);
	assert_has_all(&l, src, "old");   /* every row written on the new side too */
	ck_assert_int_eq(atomic_load(&l.dups), 0);
	assert_equal("orders", "true");   /* forward again: the new side follows */
	assert_has_all(&l, dst, "new");
	/* the reverse slot and publication are gone */
	ck_assert_int_eq(qlong(dst, "SELECT count(*) FROM pg_replication_slots"), 0);
	ck_assert_int_eq(qlong(dst, "SELECT count(*) FROM pg_publication"), 0);
	ls_testcut_load_free(&l);
}
END_TEST

struct phase_want {
	const char *phase;
	bool reverse_streaming;
};

static bool cutover_phase_is(void *ctx)
{
	struct phase_want *w = ctx;
	json_t *j = ls_testd_get(d, "/cutover");
	bool ok = j && strcmp(ls_testcut_str(j, "phase"), w->phase) == 0 &&
		  (!w->reverse_streaming ||
		   strcmp(ls_testcut_str(json_object_get(j, "reverse"), "state"), "streaming") == 0);
	json_decref(j);
	return ok;
}

/* The daemon stops inside the rollback window while the application
 * writes to the new side, and starts again: the cutover's state comes
 * back, the reverse pipeline resumes from its slot (the rows written while
 * lockstep was down reach the old side) and the rollback still works. */
START_TEST(cutover_survives_a_daemon_restart)
{
	start_daemon("touch @DIR@/switched");
	struct ls_testcut_load l = { .ids = NULL };
	load_start(&l);
	ls_testcut_load_wait(&l, false, 50);
	json_t *doc = NULL;
	int rc = ctl("cutover --tables public.orders --json --timeout 60", &doc);
	ck_assert_msg(rc == 0, "cutover exited %d: %s", rc, ls_testcut_str(ls_testcut_proc(doc),
								  "reason"));
	json_decref(doc);
	ls_testcut_load_wait(&l, true, 50);
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testcut_load_wait(&l, true, 200);        /* the application goes on while lockstep is down */
	ls_testd_start(d);
	struct phase_want w = { "cut_over", true };
	ck_assert_msg(ls_test_wait_until(cutover_phase_is, &w, 60000), "not cut over with the "
		      "reverse streaming after the restart; log:\n%s", ls_testd_log_tail(d));
	ls_testcut_load_wait(&l, true, 50);
	rc = ctl("rollback --json --timeout 60", &doc);
	json_t *pr = ls_testcut_proc(doc);
	ck_assert_msg(rc == 0, "rollback exited %d: %s; log:\n%s", rc, ls_testcut_str(pr, "reason"),
		      ls_testd_log_tail(d));
	ck_assert_str_eq(ls_testcut_str(doc, "phase"), "rolled_back");
	json_decref(doc);
	ls_testcut_load_wait(&l, false, 50);
	ls_testcut_load_stop(&l);
	assert_has_all(&l, src, "old");   /* the rows written while lockstep was down too */
	ck_assert_int_eq(atomic_load(&l.dups), 0);
	assert_equal("orders", "true");
	ls_testcut_load_free(&l);
}
END_TEST

/* The app's transactions on the old side fail as read-only once fenced */
static bool app_write_fails_read_only(void)
{
	PGconn *c = app_connect(src);
	ck_assert_ptr_nonnull(c);
	PGresult *r = PQexec(c, "INSERT INTO items VALUES (990001, 'ro?')");
	const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	bool ro = st && strcmp(st, "25006") == 0;
	PQclear(r);
	PQfinish(c);
	return ro;
}

/* fence = read_only: the application role's sessions start read-only
 * (ALTER ROLE ... SET default_transaction_read_only) instead of losing
 * their grants; the rollback lifts it. */
static bool verify_step_running(void *ctx)
{
	(void)ctx;
	json_t *j = ls_testd_get(d, "/cutover");
	bool ok = j && strcmp(ls_testcut_str(json_object_get(j, "procedure"), "step"),
			      "verify") == 0;
	json_decref(j);
	return ok;
}

/* kill -9 in the middle of a cutover, its fence on the old side and a
 * check_command still running: the next start lifts the fence from the
 * saved undo; the old side serves, nothing is lost. */
START_TEST(cutover_killed_after_the_fence_unfences_at_start)
{
	start_daemon_with("touch @DIR@/switched", "check_command = sleep 120\n");
	struct ls_testcut_load l = { .ids = NULL };
	load_start(&l);
	ls_testcut_load_wait(&l, false, 50);
	ck_assert_int_eq(ls_testd_post(d, "/cutover?tables=public.orders"), 202);
	ck_assert_msg(ls_test_wait_until(verify_step_running, NULL, 60000), "no verify step; "
		      "log:\n%s", ls_testd_log_tail(d));
	ls_testd_kill9(d);
	PGconn *c = app_connect(src);   /* fenced, and nobody left to lift it */
	ck_assert_ptr_nonnull(c);
	PGresult *r = PQexec(c, "INSERT INTO orders (v, n) VALUES ('fenced?', 3)");
	const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	ck_assert_msg(st && strcmp(st, "42501") == 0, "the old side was not fenced: %s",
		      PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
	assert_old_serves(&l);
	json_t *j = ls_testd_get(d, "/cutover");
	ck_assert_str_eq(ls_testcut_str(j, "phase"), "idle");
	json_decref(j);
	ck_assert_msg(strstr(ls_testd_log_tail(d), "fence lifted") != NULL, "log:\n%s",
		      ls_testd_log_tail(d));
	assert_nothing_lost(&l);
	ls_testcut_load_free(&l);
}
END_TEST

START_TEST(cutover_with_a_read_only_fence)
{
	start_daemon_with("touch @DIR@/switched", "fence = read_only\n");
	struct ls_testcut_load l = { .ids = NULL };
	load_start(&l);
	ls_testcut_load_wait(&l, false, 50);
	json_t *doc = NULL;
	int rc = ctl("cutover --tables public.orders --json --timeout 60", &doc);
	json_t *pr = ls_testcut_proc(doc);
	ck_assert_msg(rc == 0, "cutover exited %d: %s", rc, ls_testcut_str(pr, "reason"));
	ck_assert_msg(strstr(ls_testcut_str(json_object_get(pr, "fence"), "undo"),
			     "RESET default_transaction_read_only") != NULL, "fence: %s",
		      json_dumps(json_object_get(pr, "fence"), JSON_COMPACT));
	json_decref(doc);
	ls_testcut_load_wait(&l, true, 50);
	ck_assert(app_write_fails_read_only());
	/* an application session opened on the old side while it is fenced
	 * starts read-only; lifting the fence must not leave it so (the
	 * switch back repoints the application before the old side's fence
	 * is lifted): it is ended, and the application reconnects writable */
	PGconn *early = app_connect(src);
	ck_assert_ptr_nonnull(early);
	rc = ctl("rollback --json --timeout 60", &doc);
	ck_assert_msg(rc == 0, "rollback exited %d: %s", rc,
		      ls_testcut_str(ls_testcut_proc(doc), "reason"));
	json_decref(doc);
	PGresult *er = PQexec(early, "INSERT INTO items VALUES (990002, 'early')");
	ck_assert_msg(PQresultStatus(er) != PGRES_COMMAND_OK &&
		      PQresultErrorField(er, PG_DIAG_SQLSTATE) == NULL,
		      "a session opened during the read-only fence outlived it: %s",
		      PQresultErrorMessage(er));   /* ended: no server error, the connection is gone */
	PQclear(er);
	PQfinish(early);
	ck_assert(!app_write_fails_read_only());
	ls_testcut_load_wait(&l, false, 50);
	ls_testcut_load_stop(&l);
	assert_has_all(&l, src, "old");
	ck_assert_int_eq(atomic_load(&l.dups), 0);
	ls_testcut_load_free(&l);
}
END_TEST

START_TEST(cutover_stops_when_lag_is_too_high)
{
	start_daemon("touch @DIR@/switched");
	struct ls_testcut_load l = { .ids = NULL };
	load_start(&l);
	ls_testcut_load_wait(&l, false, 50);
	ck_assert_int_eq(ls_testd_post(d, "/pause"), 200);
	ls_testcut_load_wait(&l, false, 200);
	json_t *doc = NULL;
	int rc = ctl("cutover --max-lag-seconds 0.5 --timeout 3 --json", &doc);
	json_t *pr = ls_testcut_proc(doc);
	ck_assert_msg(rc == 1, "cutover exited %d, want 1: %s", rc, ls_testcut_str(pr, "reason"));
	ck_assert_str_eq(ls_testcut_str(pr, "outcome"), "failed");
	ck_assert_msg(strncmp(ls_testcut_str(pr, "reason"), "ready:", 6) == 0, "reason: %s", ls_testcut_str(pr, "reason"));
	ck_assert(json_is_false(json_object_get(json_object_get(pr, "fence"), "applied")));
	ls_testcut_assert_report(pr);
	json_decref(doc);
	assert_old_serves(&l);
	ck_assert_int_eq(ls_testd_post(d, "/resume"), 200);
	assert_nothing_lost(&l);
	ls_testcut_load_free(&l);
}
END_TEST

START_TEST(cutover_stops_on_drift)
{
	start_daemon("touch @DIR@/switched");
	struct ls_testcut_load l = { .ids = NULL };
	load_start(&l);
	ls_testcut_load_wait(&l, false, 50);
	ls_testpg_exec(dst, "shop", "UPDATE items SET v = 'behind lockstep''s back' WHERE id = 7");
	json_t *doc = NULL;
	int rc = ctl("cutover --json", &doc);
	json_t *pr = ls_testcut_proc(doc);
	ck_assert_msg(rc == 1, "cutover exited %d, want 1: %s", rc, ls_testcut_str(pr, "reason"));
	ck_assert_msg(strstr(ls_testcut_str(pr, "reason"), "drift") != NULL, "reason: %s", ls_testcut_str(pr, "reason"));
	ck_assert(json_is_false(json_object_get(json_object_get(pr, "fence"), "applied")));
	json_t *dr = json_array_get(json_object_get(pr, "drift"), 0);
	ck_assert_int_eq(ls_testcut_num(dr, "drift_rows"), 1);
	ls_testcut_assert_report(pr);
	json_decref(doc);
	/* the human view: one line per step, the outcome, the report */
	rc = ctl("cutover", NULL);
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(ls_testcut_ctl_text(), "cutover 2 started\n  ready         failed") &&
		      strstr(ls_testcut_ctl_text(), "cutover failed: ready: drift: 1 row(s) differ in the slice") &&
		      strstr(ls_testcut_ctl_text(), "report: "), "lockstepctl printed:\n%s", ls_testcut_ctl_text());
	assert_old_serves(&l);
	ls_testpg_exec(dst, "shop", "UPDATE items SET v = 'i7' WHERE id = 7");
	assert_nothing_lost(&l);
	ls_testcut_load_free(&l);
}
END_TEST

struct su_writer {
	pthread_t thread;
	atomic_bool stop;
	atomic_long n;
};

static void *su_main(void *arg)
{
	struct su_writer *w = arg;
	PGconn *c = PQconnectdb(ls_testpg_conninfo(src, "shop"));
	for (int i = 1; !atomic_load(&w->stop) && PQstatus(c) == CONNECTION_OK; i++) {
		char sql[128];
		snprintf(sql, sizeof sql, "INSERT INTO items VALUES (%d, 'su')", 500000 + i);
		PQclear(PQexec(c, sql));
		atomic_fetch_add(&w->n, 1);
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);   /* a steady trickle of writes */
	}
	PQfinish(c);
	return NULL;
}

START_TEST(cutover_stops_on_a_write_after_the_fence)
{
	start_daemon("touch @DIR@/switched");
	struct ls_testcut_load l = { .ids = NULL };
	load_start(&l);
	ls_testcut_load_wait(&l, false, 50);
	struct su_writer w;
	memset(&w, 0, sizeof w);
	ck_assert_int_eq(pthread_create(&w.thread, NULL, su_main, &w), 0);
	json_t *doc = NULL;
	int rc = ctl("cutover --json", &doc);
	atomic_store(&w.stop, true);
	pthread_join(w.thread, NULL);
	json_t *pr = ls_testcut_proc(doc);
	ck_assert_msg(rc == 1, "cutover exited %d, want 1: %s", rc, ls_testcut_str(pr, "reason"));
	ck_assert_msg(strncmp(ls_testcut_str(pr, "reason"), "fence:", 6) == 0 &&
		      strstr(ls_testcut_str(pr, "reason"), "after the fence") != NULL, "reason: %s",
		      ls_testcut_str(pr, "reason"));
	json_t *fence = json_object_get(pr, "fence");
	ck_assert(json_is_true(json_object_get(fence, "applied")));
	ck_assert(json_is_true(json_object_get(fence, "lifted")));
	ck_assert_str_eq(ls_testcut_str(ls_testcut_step(pr, "unfence"), "state"), "ok");
	ls_testcut_assert_report(pr);
	json_decref(doc);
	ck_assert_int_gt(atomic_load(&w.n), 0);
	assert_old_serves(&l);
	assert_equal("items", "true");
	assert_nothing_lost(&l);
	ls_testcut_load_free(&l);
}
END_TEST

START_TEST(cutover_stops_when_a_hook_fails)
{
	start_daemon("echo repointing failed; exit 3");
	struct ls_testcut_load l = { .ids = NULL };
	load_start(&l);
	ls_testcut_load_wait(&l, false, 50);
	json_t *doc = NULL;
	int rc = ctl("cutover --json", &doc);
	json_t *pr = ls_testcut_proc(doc);
	ck_assert_msg(rc == 1, "cutover exited %d, want 1: %s", rc, ls_testcut_str(pr, "reason"));
	ck_assert_msg(strstr(ls_testcut_str(pr, "reason"), "switch_hook exited 3: repointing failed") != NULL,
		      "reason: %s", ls_testcut_str(pr, "reason"));
	ck_assert(json_is_true(json_object_get(json_object_get(pr, "fence"), "lifted")));
	ck_assert_str_eq(ls_testcut_str(doc, "phase"), "idle");
	ck_assert_msg(json_number_value(json_object_get(pr, "write_unavailable_seconds")) > 0,
		      "no fenced window reported");
	ls_testcut_assert_report(pr);
	json_decref(doc);
	/* nothing was left on the new side for a reverse direction */
	ck_assert_int_eq(qlong(dst, "SELECT count(*) FROM pg_replication_slots"), 0);
	assert_old_serves(&l);
	assert_nothing_lost(&l);
	ls_testcut_load_free(&l);
}
END_TEST

int main(void)
{
	const struct ls_testutil_case cases[] = {
		{ "cutover_rollback", cutover_and_rollback_under_load },
		{ "restart", cutover_survives_a_daemon_restart },
		{ "read_only", cutover_with_a_read_only_fence },
		{ "kill9", cutover_killed_after_the_fence_unfences_at_start },
		{ "lag", cutover_stops_when_lag_is_too_high },
		{ "drift", cutover_stops_on_drift },
		{ "write_after_fence", cutover_stops_on_a_write_after_the_fence },
		{ "hook", cutover_stops_when_a_hook_fails },
	};
	return ls_testutil_run_cases("cutover", cases, sizeof cases / sizeof cases[0], setup, teardown,
				     600);
}
