/* Streaming of large in-progress PostgreSQL transactions, end to end through
 * the real lockstepd (PostgreSQL 15 -> direct buffer or Kafka mock ->
 * PostgreSQL 15).  With stream_mem = 64kB the source streams a transaction
 * (pgoutput protocol 2) as soon as its decoded changes pass 64 kB, long
 * before it commits; the target applies those blocks into a transaction
 * it keeps open and commits it when the source commits.
 *
 * Every case proves the outcome on the data (row counts, distinct keys and
 * an ordered checksum of the table on both sides) and reads the streaming
 * counters of GET /status targets[0]: streams_open, streamed_txns,
 * streamed_changes, stream_aborts.  Each case runs once per buffer. */
#include <check.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/helpers/testd.h"
#include "tests/helpers/testsrv.h"
#include "tests/helpers/testutil.h"

#define DB "shop"
/* Rows copied by the initial snapshot: ids 1..PRELOAD. */
#define PRELOAD 1000
/* Small committed transactions insert ids SMALL_BASE + k. */
#define SMALL_BASE 900000
/* Rows of unpublished padding that push a transaction's last changes out
 * of the source's reorder buffer (see push_out_tail). */
#define PAD_ROWS 5000

static struct ls_testpg *src, *dst;
static struct ls_testkafka *kafka;

/* ---- servers and schema ------------------------------------------------------- */

/* items is replicated (tables = public.*); scratch.pad is not, so changes
 * to it cost the source's decoder memory but never reach the target. */
static void setup(void)
{
	src = ls_testpg_start(NULL);
	/* commit timestamps carry each transaction's replication origin */
	dst = ls_testpg_start("track_commit_timestamp = on");
	kafka = ls_testkafka_start(3);
	ls_testpg_exec(src, "postgres", "CREATE DATABASE " DB);
	ls_testpg_exec(dst, "postgres", "CREATE DATABASE " DB);
	ls_testpg_exec(src, DB,
		"CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL DEFAULT 0);"
		"INSERT INTO items SELECT g, 'pre ' || g, 0 FROM generate_series(1, %d) g;"
		"CREATE SCHEMA scratch;"
		"CREATE TABLE scratch.pad (id bigserial PRIMARY KEY, v text)",
		PRELOAD);
}

static void teardown(void)
{
	ls_testkafka_stop(kafka);
	ls_testpg_stop(dst);
	ls_testpg_stop(src);
}

/* ---- source sessions that hold a transaction open ------------------------------ */

static PGconn *session_open(void)
{
	PGconn *c = PQconnectdb(ls_testpg_conninfo(src, DB));
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "source session: %s", PQerrorMessage(c));
	return c;
}

/* Runs SQL on the session (inside whatever transaction it has open); fails
 * the test with the server's message on error. */
static void session_exec(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void session_exec(PGconn *c, const char *fmt, ...)
{
	char *sql = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&sql, fmt, ap);
	va_end(ap);
	ck_assert_int_ge(n, 0);
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	PQclear(r);
	ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "source session: %s: %s",
		      sql, PQerrorMessage(c));
	free(sql);
}

/* Inserts ids from..from+n-1 into items, values tagged so a wrong row on
 * the target says where it came from. */
static void big_insert(PGconn *c, int from, int n, const char *tag)
{
	session_exec(c, "INSERT INTO items SELECT g, '%s ' || g, 0 FROM generate_series(%d, %d) g",
		     tag, from, from + n - 1);
}

/* The source streams a transaction when its decoder's memory passes
 * stream_mem, so the last few hundred changes of a statement stay in the
 * reorder buffer until something else fills it.  Writing unpublished rows
 * in the same transaction fills it: everything published so far goes out
 * and only padding, which the target never sees, stays behind.  So a case
 * can wait for all of its rows to reach the target before the commit. */
static void push_out_tail(PGconn *c)
{
	session_exec(c, "INSERT INTO scratch.pad (v) SELECT repeat('p', 100) FROM generate_series(1, %d)",
		     PAD_ROWS);
}

/* A small committed transaction from its own connection: one new row (id
 * SMALL_BASE + k) and an update of a preloaded row among ids 901..1000,
 * which no big transaction in these cases touches, so it never waits on
 * their locks. */
static void small_commit(int k)
{
	ls_testpg_exec(src, DB,
		"INSERT INTO items VALUES (%d, 'small %d', 0);"
		"UPDATE items SET n = n + 1 WHERE id = %d",
		SMALL_BASE + k, k, PRELOAD - k % 100);
}

/* ---- the daemon ------------------------------------------------------------------ */

static void write_config(struct ls_testd *d, bool direct)
{
	char buffer[512], conf[4096];
	if (direct)
		snprintf(buffer, sizeof buffer, "[buffer]\ntype = direct\n\n");
	else
		snprintf(buffer, sizeof buffer, "[buffer]\ntype = kafka\nbrokers = %s\n\n",
			 ls_testkafka_bootstrap(kafka));
	snprintf(conf, sizeof conf,
		 "[pipeline]\nname = shop\nstate_dir = @DIR@\n\n"
		 "[source]\ntype = postgres\nconninfo = %s\ntables = public.*\n"
		 "stream_txns = on\nstream_mem = 64kB\n\n"
		 "%s"
		 "[target new]\ntype = postgres\nconninfo = %s\ncreate_tables = true\nbatch_ms = 20\n\n"
		 "[control]\nsocket = @DIR@/control.sock\n\n[log]\nlevel = info\n",
		 ls_testpg_conninfo(src, DB), buffer, ls_testpg_conninfo(dst, DB));
	ls_testd_config(d, conf);
}

static void wait_converged(struct ls_testd *d);

/* Starts lockstepd and waits until the snapshot is on the target, so every
 * case begins from equal tables and a slot that exists (creating the slot
 * waits for open transactions, hence no session opens before this). */
static struct ls_testd *daemon_start(bool direct)
{
	struct ls_testd *d = ls_testd_new();
	write_config(d, direct);
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
	wait_converged(d);
	return d;
}

static void daemon_stop(struct ls_testd *d)
{
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testd_free(d);
}

/* ---- GET /status targets[0] --------------------------------------------------------- */

enum cmp { GE, EQ };

struct stat_want {
	const char *key;   /* member of targets[0] */
	enum cmp cmp;
	long long v;
};

struct stat_wait {
	struct ls_testd *d;
	const struct stat_want *w;
	size_t n;
	char last[1024];   /* targets[0] at the last poll, for the failure message */
};

/* -1 for a member the daemon does not report (the feature absent). */
static long long member(json_t *t, const char *key)
{
	json_t *v = json_object_get(t, key);
	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* One poll: fails the test at once when the daemon died or the pipeline
 * failed (no point waiting out the deadline), else whether every wanted
 * counter holds. */
static bool stats_reached(void *ctx)
{
	struct stat_wait *sw = ctx;
	int code = 0;
	if (!ls_testd_running(sw->d, &code))
		ck_abort_msg("lockstepd exited (%d); log:\n%s", code, ls_testd_log_tail(sw->d));
	json_t *st = ls_testd_get(sw->d, "/status");
	if (st == NULL)
		return false;
	const char *state = json_string_value(json_object_get(st, "pipeline_state"));
	if (state && strcmp(state, "failed") == 0)
		ck_abort_msg("pipeline failed: %s; log:\n%s",
			     json_string_value(json_object_get(st, "last_error")),
			     ls_testd_log_tail(sw->d));
	json_t *t = json_array_get(json_object_get(st, "targets"), 0);
	char *dump = t ? json_dumps(t, JSON_COMPACT) : NULL;
	snprintf(sw->last, sizeof sw->last, "%s", dump ? dump : "(no targets)");
	free(dump);
	bool ok = t != NULL;
	for (size_t i = 0; ok && i < sw->n; i++) {
		long long v = member(t, sw->w[i].key);
		ok = sw->w[i].cmp == GE ? v >= sw->w[i].v : v == sw->w[i].v;
	}
	json_decref(st);
	return ok;
}

static void wait_stats(struct ls_testd *d, const char *what, int timeout_ms,
		       const struct stat_want *w, size_t n)
{
	struct stat_wait sw = { .d = d, .w = w, .n = n };
	if (ls_test_wait_until(stats_reached, &sw, timeout_ms))
		return;
	char want[512] = "";
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(want);
		snprintf(want + len, sizeof want - len, "%s%s %s %lld", i ? ", " : "", w[i].key,
			 w[i].cmp == GE ? ">=" : "==", w[i].v);
	}
	ck_abort_msg("%s: wanted %s within %d ms; targets[0] is %s; log:\n%s", what, want,
		     timeout_ms, sw.last, ls_testd_log_tail(d));
}

/* WAIT_STATS(d, "why", ms, { "key", GE, 1 }, ...): waits until every
 * condition holds on one /status answer. */
#define WAIT_STATS(d, what, ms, ...)                                              \
	wait_stats((d), (what), (ms), (const struct stat_want[]){ __VA_ARGS__ },   \
		   sizeof((const struct stat_want[]){ __VA_ARGS__ }) / sizeof(struct stat_want))

/* The counters at the end of a case, for the test log. */
static void print_stats(struct ls_testd *d, const char *label)
{
	json_t *st = ls_testd_get(d, "/status");
	json_t *t = json_array_get(json_object_get(st, "targets"), 0);
	fprintf(stderr, "%s: streams_open %lld streamed_txns %lld streamed_changes %lld"
		" stream_aborts %lld txns %lld\n", label, member(t, "streams_open"),
		member(t, "streamed_txns"), member(t, "streamed_changes"),
		member(t, "stream_aborts"), member(t, "txns"));
	json_decref(st);
}

/* ---- comparing source and target ----------------------------------------------------- */

/* "rows:distinct ids:md5 of the rows in id order" of items, NULL when the
 * table does not exist (yet) on that server.  Caller frees. */
static char *table_sum(struct ls_testpg *pg)
{
	char *exists = ls_testpg_query1(pg, DB, "SELECT to_regclass('public.items')");
	if (exists == NULL)
		return NULL;
	free(exists);
	return ls_testpg_query1(pg, DB,
		"SELECT count(*) || ':' || count(DISTINCT id) || ':' ||"
		" coalesce(md5(string_agg(t::text, '|' ORDER BY id)), '-') FROM items t");
}

static bool tables_equal(void *ctx)
{
	(void)ctx;
	char *a = table_sum(src), *b = table_sum(dst);
	bool eq = a && b && strcmp(a, b) == 0;
	free(a);
	free(b);
	return eq;
}

static const char *next_line(const char *p, size_t len)
{
	return p + len + (p[len] != '\0');
}

/* Prints the first rows that differ, merging both sides' id-ordered
 * listings so a missing or extra row does not shift everything after it. */
static void dump_diff(void)
{
	const char *sql = "SELECT string_agg(t::text, E'\\n' ORDER BY id) FROM items t";
	char *x = ls_testpg_query1(src, DB, "%s", sql);
	char *y = ls_testpg_query1(dst, DB, "%s", sql);
	const char *p = x ? x : "", *q = y ? y : "";
	for (int shown = 0; (*p || *q) && shown < 8;) {
		size_t lp = strcspn(p, "\n"), lq = strcspn(q, "\n");
		/* each line is "(id,v,n)" */
		long ip = *p ? strtol(p + 1, NULL, 10) : LONG_MAX;
		long iq = *q ? strtol(q + 1, NULL, 10) : LONG_MAX;
		if (ip < iq) {
			fprintf(stderr, "  only on source: %.*s\n", (int)lp, p);
			p = next_line(p, lp);
			shown++;
		} else if (iq < ip) {
			fprintf(stderr, "  only on target: %.*s\n", (int)lq, q);
			q = next_line(q, lq);
			shown++;
		} else {
			if (lp != lq || strncmp(p, q, lp) != 0) {
				fprintf(stderr, "  source: %.*s\n  target: %.*s\n", (int)lp, p, (int)lq, q);
				shown++;
			}
			p = next_line(p, lp);
			q = next_line(q, lq);
		}
	}
	free(x);
	free(y);
}

/* Waits until the target's items equal the source's (what the source has
 * committed: an open transaction is invisible to the checksum); on timeout
 * prints both sums, the differing rows and /status, and fails. */
static void wait_converged(struct ls_testd *d)
{
	if (ls_test_wait_until(tables_equal, NULL, 120000))
		return;
	char *a = table_sum(src), *b = table_sum(dst);
	fprintf(stderr, "items: source %s target %s\n", a ? a : "(none)", b ? b : "(none)");
	if (a && b)
		dump_diff();
	free(a);
	free(b);
	ls_testd_abort_unconverged(d);
}

/* Equal sums were waited for; this states the invariants outright so a
 * failure names them: same rows, no key twice on the target. */
static void assert_equal(void)
{
	char *a = table_sum(src), *b = table_sum(dst);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_str_eq(b, a);
	char *dups = ls_testpg_query1(dst, DB, "SELECT count(*) - count(DISTINCT id) FROM items");
	ck_assert_str_eq(dups, "0");
	free(dups);
	free(a);
	free(b);
}

static long dst_count(const char *where)
{
	char *s = ls_testpg_query1(dst, DB, "SELECT count(*) FROM items WHERE %s", where);
	long n = s ? atol(s) : -1;
	free(s);
	return n;
}

/* ---- cases ------------------------------------------------------------------------------ */

/* 50,000 inserted rows reach the target while the source transaction is
 * still open, stay invisible there, and become visible when it commits. */
static void run_applied_before_commit(bool direct)
{
	struct ls_testd *d = daemon_start(direct);
	char *before = table_sum(dst);
	PGconn *s = session_open();
	session_exec(s, "BEGIN");
	big_insert(s, 100001, 50000, "open");
	push_out_tail(s);
	WAIT_STATS(d, "the open transaction's rows on the target", 60000,
		   { "streamed_changes", GE, 50000 }, { "streams_open", EQ, 1 });
	/* applied, but in the target's open transaction: not visible */
	char *during = table_sum(dst);
	ck_assert_str_eq(during, before);
	ck_assert_int_eq(dst_count("true"), PRELOAD);
	free(during);
	free(before);

	session_exec(s, "COMMIT");
	PQfinish(s);
	wait_converged(d);
	assert_equal();
	ck_assert_int_eq(dst_count("id BETWEEN 100001 AND 150000"), 50000);
	/* tagged with the stream session's own origin, which a cutover's
	 * reverse direction skips like lockstep_shop (an origin serves one
	 * session at a time); untagged rows would be sent back */
	char *origin = ls_testpg_query1(dst, DB, "SELECT string_agg(DISTINCT o.roname, ',')"
		" FROM items i, pg_xact_commit_timestamp_origin(i.xmin) c"
		" JOIN pg_replication_origin o ON o.roident = c.roident"
		" WHERE i.id BETWEEN 100001 AND 150000");
	ck_assert_str_eq(origin, "lockstep_shop:s1");
	free(origin);
	WAIT_STATS(d, "the streamed transaction committed", 10000,
		   { "streamed_txns", GE, 1 }, { "streams_open", EQ, 0 });
	print_stats(d, direct ? "direct applied_before_commit" : "kafka applied_before_commit");
	daemon_stop(d);
}

START_TEST(stream_direct_applied_before_commit)
{
	run_applied_before_commit(true);
}
END_TEST

START_TEST(stream_kafka_applied_before_commit)
{
	run_applied_before_commit(false);
}
END_TEST

/* Savepoints in a streamed transaction, with committed transactions in
 * between its statements.  Subtransaction a is rolled back after its rows
 * reached the target's open transaction; its keys 210001..220000 are then
 * inserted again with other values, so a target that kept a's rows would
 * fail on the primary key or show the wrong values, and a's other keys
 * (200001..210000) must not appear at all. */
static void run_subxact_abort(bool direct)
{
	struct ls_testd *d = daemon_start(direct);
	PGconn *s = session_open();
	session_exec(s, "BEGIN");
	small_commit(1);
	session_exec(s, "SAVEPOINT a");
	big_insert(s, 200001, 20000, "rolled back");
	small_commit(2);
	/* most of a's rows are on the target before it rolls back (the last
	 * few hundred may still sit in the source's reorder buffer).  Without
	 * this wait the test could prove nothing: a subtransaction already
	 * rolled back when the walsender decodes it is dropped there and
	 * never reaches the target. */
	WAIT_STATS(d, "subtransaction a's rows on the target", 60000,
		   { "streamed_changes", GE, 15000 }, { "streams_open", EQ, 1 });
	session_exec(s, "ROLLBACK TO SAVEPOINT a");
	small_commit(3);
	big_insert(s, 210001, 20000, "kept");
	small_commit(4);
	session_exec(s, "SAVEPOINT b");
	/* rows of this transaction and preloaded ones (1..200, which the
	 * small commits leave alone) */
	session_exec(s, "UPDATE items SET v = v || ' updated', n = n + 1"
		     " WHERE id BETWEEN 225001 AND 230000 OR id BETWEEN 1 AND 200");
	session_exec(s, "RELEASE SAVEPOINT b");
	small_commit(5);
	session_exec(s, "COMMIT");
	PQfinish(s);
	small_commit(6);

	wait_converged(d);
	assert_equal();
	ck_assert_int_eq(dst_count("id BETWEEN 200001 AND 210000"), 0);
	ck_assert_int_eq(dst_count("v LIKE 'rolled back%'"), 0);
	ck_assert_int_eq(dst_count("id BETWEEN 225001 AND 230000 AND v LIKE '% updated' AND n = 1"),
			 5000);
	ck_assert_int_eq(dst_count("id > 900000"), 6);
	WAIT_STATS(d, "the rolled-back subtransaction counted", 10000,
		   { "stream_aborts", GE, 1 }, { "streamed_txns", GE, 1 }, { "streams_open", EQ, 0 });
	print_stats(d, direct ? "direct subxact_abort" : "kafka subxact_abort");
	daemon_stop(d);
}

START_TEST(stream_direct_subxact_abort)
{
	run_subxact_abort(true);
}
END_TEST

START_TEST(stream_kafka_subxact_abort)
{
	run_subxact_abort(false);
}
END_TEST

/* A streamed transaction rolled back at the source after part of it
 * reached the target leaves nothing there.  The next committed transaction
 * reuses the first aborted key, which only works if the target rolled its
 * open transaction back; it also makes the source flush the abort record. */
static void run_abort(bool direct)
{
	struct ls_testd *d = daemon_start(direct);
	PGconn *s = session_open();
	session_exec(s, "BEGIN");
	big_insert(s, 300001, 50000, "aborted");
	WAIT_STATS(d, "the doomed transaction streaming", 60000,
		   { "streamed_changes", GE, 1 }, { "streams_open", EQ, 1 });
	session_exec(s, "ROLLBACK");
	PQfinish(s);
	ls_testpg_exec(src, DB, "INSERT INTO items VALUES (300001, 'after abort', 0)");
	small_commit(1);

	wait_converged(d);
	assert_equal();
	ck_assert_int_eq(dst_count("v LIKE 'aborted%'"), 0);
	ck_assert_int_eq(dst_count("id BETWEEN 300001 AND 350000"), 1);
	WAIT_STATS(d, "the abort counted", 10000,
		   { "stream_aborts", GE, 1 }, { "streams_open", EQ, 0 });
	print_stats(d, direct ? "direct abort" : "kafka abort");
	daemon_stop(d);
}

START_TEST(stream_direct_abort)
{
	run_abort(true);
}
END_TEST

START_TEST(stream_kafka_abort)
{
	run_abort(false);
}
END_TEST

/* Two big transactions open at once, their inserts interleaved in three
 * steps each so both stream, small commits in between, and the one begun
 * second commits first. */
static void run_interleaved(bool direct)
{
	struct ls_testd *d = daemon_start(direct);
	PGconn *a = session_open(), *b = session_open();
	session_exec(a, "BEGIN");
	session_exec(b, "BEGIN");
	for (int step = 0; step < 3; step++) {
		big_insert(a, 400001 + step * 10000, 10000, "first");
		big_insert(b, 500001 + step * 10000, 10000, "second");
		small_commit(1 + step);
	}
	/* each step alone passes stream_mem, so both are open on the target */
	WAIT_STATS(d, "both open transactions streaming", 60000,
		   { "streamed_changes", GE, 1 }, { "streams_open", EQ, 2 });
	session_exec(b, "COMMIT");
	small_commit(10);
	session_exec(a, "COMMIT");
	small_commit(11);
	PQfinish(a);
	PQfinish(b);

	wait_converged(d);
	assert_equal();
	ck_assert_int_eq(dst_count("id BETWEEN 400001 AND 430000"), 30000);
	ck_assert_int_eq(dst_count("id BETWEEN 500001 AND 530000"), 30000);
	WAIT_STATS(d, "both streamed transactions committed", 10000,
		   { "streamed_txns", GE, 2 }, { "streams_open", EQ, 0 });
	print_stats(d, direct ? "direct interleaved" : "kafka interleaved");
	daemon_stop(d);
}

START_TEST(stream_direct_interleaved)
{
	run_interleaved(true);
}
END_TEST

START_TEST(stream_kafka_interleaved)
{
	run_interleaved(false);
}
END_TEST

/* kill -9 of the daemon while a 100,000-row transaction is open on the
 * target: the target's half-done transaction dies with the connection,
 * the restarted daemon streams the source transaction again (its first
 * rows included) and the commit lands each row exactly once. */
static void run_kill9(bool direct)
{
	struct ls_testd *d = daemon_start(direct);
	PGconn *s = session_open();
	session_exec(s, "BEGIN");
	big_insert(s, 600001, 20000, "survivor");
	small_commit(1);
	big_insert(s, 620001, 20000, "survivor");
	WAIT_STATS(d, "the transaction open on the target", 60000,
		   { "streamed_changes", GE, 1 }, { "streams_open", EQ, 1 });
	ls_testd_kill9(d);

	/* the source goes on while the daemon is down */
	big_insert(s, 640001, 20000, "survivor");
	small_commit(2);
	big_insert(s, 660001, 20000, "survivor");
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
	big_insert(s, 680001, 20000, "survivor");
	small_commit(3);
	WAIT_STATS(d, "the transaction open on the target again", 60000,
		   { "streamed_changes", GE, 1 }, { "streams_open", EQ, 1 });
	session_exec(s, "COMMIT");
	PQfinish(s);

	wait_converged(d);
	assert_equal();
	ck_assert_int_eq(dst_count("id BETWEEN 600001 AND 700000"), 100000);
	WAIT_STATS(d, "the streamed transaction committed", 10000,
		   { "streamed_txns", GE, 1 }, { "streams_open", EQ, 0 });
	print_stats(d, direct ? "direct kill9" : "kafka kill9");
	daemon_stop(d);
}

START_TEST(stream_direct_kill9)
{
	run_kill9(true);
}
END_TEST

START_TEST(stream_kafka_kill9)
{
	run_kill9(false);
}
END_TEST

int main(void)
{
	const struct ls_testutil_case cases[] = {
		{ "direct_applied_before_commit", stream_direct_applied_before_commit },
		{ "kafka_applied_before_commit", stream_kafka_applied_before_commit },
		{ "direct_subxact_abort", stream_direct_subxact_abort },
		{ "kafka_subxact_abort", stream_kafka_subxact_abort },
		{ "direct_abort", stream_direct_abort },
		{ "kafka_abort", stream_kafka_abort },
		{ "direct_interleaved", stream_direct_interleaved },
		{ "kafka_interleaved", stream_kafka_interleaved },
		{ "direct_kill9", stream_direct_kill9 },
		{ "kafka_kill9", stream_kafka_kill9 },
	};
	return ls_testutil_run_cases("stream", cases, sizeof cases / sizeof cases[0], setup, teardown,
				     600);
}
