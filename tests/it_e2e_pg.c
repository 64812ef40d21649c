/* End to end, PostgreSQL -> buffer -> PostgreSQL, through the real
 * lockstepd: a write load runs from before the snapshot to the end; the
 * target must converge to the source (row counts and ordered checksums of
 * every table), never show a torn transaction (the sum of all balances is
 * constant), and survive kill -9 of the daemon at random moments. */
#include <check.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/helpers/testd.h"
#include "tests/helpers/testsrv.h"

#define ACCOUNTS 100
#define START_BALANCE 1000
#define TOTAL (ACCOUNTS * START_BALANCE)

static const char *const tables[] = { "accounts", "events", "items", "wide" };
#define NTABLES (int)(sizeof tables / sizeof tables[0])

static struct ls_testpg *src, *dst;
static struct ls_testkafka *kafka;

/* ---- schema and load --------------------------------------------------------- */

static void make_schema(void)
{
	ls_testpg_exec(src, "postgres", "CREATE DATABASE shop");
	ls_testpg_exec(dst, "postgres", "CREATE DATABASE shop");
	ls_testpg_exec(src, "shop",
		"CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);"
		"INSERT INTO accounts SELECT g, %d FROM generate_series(1, %d) g;"
		"CREATE TABLE events (id bigserial PRIMARY KEY, src int, dst int, amount bigint,"
		"  note text, at timestamptz DEFAULT now());"
		"CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(12,2),"
		"  tags text[], doc jsonb, raw bytea, day date, span interval, u uuid);"
		"INSERT INTO items SELECT g, 'item ' || g || ' é€\t\\n', g * 1.25,"
		"  ARRAY['a', 'b' || g], jsonb_build_object('k', g), '\\xdeadbeef'::bytea,"
		"  date '2020-01-01' + g, g * interval '1 minute', md5(g::text)::uuid"
		"  FROM generate_series(1, 2000) g;"
		"CREATE TABLE wide (id int PRIMARY KEY, payload text, n int);"
		"ALTER TABLE wide ALTER payload SET STORAGE EXTERNAL;"
		"INSERT INTO wide SELECT g, repeat(md5(g::text), 200), 0 FROM generate_series(1, 50) g;",
		START_BALANCE, ACCOUNTS);
}

struct load {
	pthread_t thread;
	atomic_bool stop;
	atomic_long txns;
	char err[256];
};

/* One transfer transaction; returns whether it committed. */
static bool load_txn(PGconn *c, unsigned *seed)
{
	int a = 1 + (int)(rand_r(seed) % ACCOUNTS), b = 1 + (int)(rand_r(seed) % ACCOUNTS);
	int amount = 1 + (int)(rand_r(seed) % 50);
	int item = 1 + (int)(rand_r(seed) % 3000);
	char sql[1024];
	snprintf(sql, sizeof sql,
		 "BEGIN;"
		 "UPDATE accounts SET balance = balance - %d WHERE id = %d;"
		 "UPDATE accounts SET balance = balance + %d WHERE id = %d;"
		 "INSERT INTO events (src, dst, amount, note) VALUES (%d, %d, %d, 'move');"
		 "INSERT INTO items (id, name, price) VALUES (%d, 'new', 1.5)"
		 "  ON CONFLICT (id) DO UPDATE SET price = items.price + 1, tags = NULL;"
		 "DELETE FROM items WHERE id = %d;"
		 "UPDATE wide SET n = n + 1 WHERE id = %d;"
		 "COMMIT;",
		 amount, a, amount, b, a, b, amount, item, 1 + (int)(rand_r(seed) % 3000),
		 1 + (int)(rand_r(seed) % 50));
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	PQclear(r);
	if (st != PGRES_COMMAND_OK) {
		PQclear(PQexec(c, "ROLLBACK"));
		return false;
	}
	return true;
}

static PGconn *load_connect(void)
{
	PGconn *c = PQconnectdb(ls_testpg_conninfo(src, "shop"));
	if (PQstatus(c) == CONNECTION_OK)
		return c;
	PQfinish(c);
	return NULL;
}

/* Runs transfers until stopped; survives a source restart by reconnecting
 * (a failed transaction simply did not happen). */
static void *load_main(void *arg)
{
	struct load *l = arg;
	PGconn *c = load_connect();
	unsigned seed = 42;
	int failures = 0;
	while (!atomic_load(&l->stop)) {
		if (c == NULL || PQstatus(c) != CONNECTION_OK) {
			PQfinish(c);
			c = load_connect();
			if (c == NULL && ++failures > 3000) {
				snprintf(l->err, sizeof l->err, "load: cannot reconnect to the source");
				break;
			}
			if (c == NULL) {
				struct timespec ts = { 0, 10 * 1000000L };
				nanosleep(&ts, NULL);   /* reconnect backoff, not a test wait */
			}
			continue;
		}
		failures = 0;
		if (load_txn(c, &seed))
			atomic_fetch_add(&l->txns, 1);
	}
	PQfinish(c);
	return NULL;
}

static void load_start(struct load *l)
{
	memset(l, 0, sizeof *l);
	ck_assert_int_eq(pthread_create(&l->thread, NULL, load_main, l), 0);
}

static void load_stop(struct load *l)
{
	atomic_store(&l->stop, true);
	pthread_join(l->thread, NULL);
	ck_assert_msg(l->err[0] == '\0', "%s", l->err);
}

static bool load_progressed(void *ctx)
{
	long *want = ctx;
	return atomic_load(&((struct load *)(uintptr_t)want[1])->txns) >= want[0];
}

/* Waits until the load has committed `more` further transactions. */
static void wait_load(struct load *l, long more)
{
	long want[2] = { atomic_load(&l->txns) + more, (long)(uintptr_t)l };
	ck_assert_msg(ls_test_wait_until(load_progressed, want, 60000),
		      "the write load made no progress");
}

/* ---- comparing --------------------------------------------------------------------- */

static char *checksum(struct ls_testpg *pg, const char *table)
{
	return ls_testpg_query1(pg, "shop",
		"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY id)), '-')"
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

static void assert_converged(struct ls_testd *d)
{
	if (!ls_test_wait_until(converged, NULL, 120000)) {
		for (int i = 0; i < NTABLES; i++) {
			char *a = checksum(src, tables[i]), *b = checksum(dst, tables[i]);
			fprintf(stderr, "%s: source %s target %s\n", tables[i], a, b);
			free(a);
			free(b);
		}
		ck_abort_msg("target did not converge; log:\n%s", ls_testd_log_tail(d));
	}
}

/* The target is always a committed prefix of the source: transfers never
 * show half-applied. */
static void assert_consistent(void)
{
	char *exists = ls_testpg_query1(dst, "shop", "SELECT to_regclass('accounts')");
	free(exists);
	if (exists == NULL)
		return;   /* not created yet: an empty target is a committed prefix */
	char *s = ls_testpg_query1(dst, "shop",
		"SELECT count(*) || ':' || coalesce(sum(balance), 0) FROM accounts");
	ck_assert_ptr_nonnull(s);
	char want[64];
	snprintf(want, sizeof want, "%d:%d", ACCOUNTS, TOTAL);
	ck_assert_msg(strcmp(s, "0:0") == 0 || strcmp(s, want) == 0,
		      "target shows a torn transaction: accounts count:sum = %s", s);
	free(s);
}

/* ---- config ------------------------------------------------------------------------- */

struct cfg {
	bool direct;           /* buffer = direct, else Kafka */
	bool no_source;        /* only the apply half */
	bool no_target;        /* only the source half */
	const char *ddl;       /* "apply" (default) or "stop" */
	const char *max_lead;  /* Kafka only; default 2MiB, "0" = unbounded */
	const char *snapshot;  /* "initial" (default) or "never" */
};

static void write_config_opts(struct ls_testd *d, const struct cfg *o)
{
	char source[1024] = "", target[1024] = "", buffer[512];
	if (!o->no_source)
		snprintf(source, sizeof source,
			 "[source]\ntype = postgres\nconninfo = %s\ntables = public.*\n"
			 "snapshot_workers = 2\nsnapshot = %s\n\n",
			 ls_testpg_conninfo(src, "shop"), o->snapshot ? o->snapshot : "initial");
	if (!o->no_target)
		snprintf(target, sizeof target,
			 "[target new]\ntype = postgres\nconninfo = %s\ncreate_tables = true\n"
			 "batch_ms = 20\nddl = %s\n\n",
			 ls_testpg_conninfo(dst, "shop"), o->ddl ? o->ddl : "apply");
	if (o->direct)
		snprintf(buffer, sizeof buffer, "[buffer]\ntype = direct\n\n");
	else
		snprintf(buffer, sizeof buffer,
			 "[buffer]\ntype = kafka\nbrokers = %s\nmax_lead = %s\n\n",
			 ls_testkafka_bootstrap(kafka), o->max_lead ? o->max_lead : "2MiB");
	char conf[4096];
	snprintf(conf, sizeof conf,
		 "[pipeline]\nname = shop\nstate_dir = @DIR@\n\n%s%s%s"
		 "[control]\nsocket = @DIR@/control.sock\n\n[log]\nlevel = info\n",
		 source, buffer, target);
	ls_testd_config(d, conf);
}

static void write_config(struct ls_testd *d, bool direct)
{
	struct cfg o = { .direct = direct };
	write_config_opts(d, &o);
}

static void setup(void)
{
	src = ls_testpg_start(NULL);
	dst = ls_testpg_start(NULL);
	kafka = ls_testkafka_start(3);
	make_schema();
}

static void teardown(void)
{
	ls_testkafka_stop(kafka);
	ls_testpg_stop(dst);
	ls_testpg_stop(src);
}

/* ---- tests ---------------------------------------------------------------------------- */

static void run_converges(bool direct)
{
	struct load l;
	load_start(&l);
	wait_load(&l, 50);      /* the load runs before and during the snapshot */
	struct ls_testd *d = ls_testd_new();
	write_config(d, direct);
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
	for (int i = 0; i < 20; i++) {
		wait_load(&l, 50);
		assert_consistent();
	}
	load_stop(&l);
	assert_converged(d);
	assert_consistent();
	json_t *st = ls_testd_get(d, "/status");
	ck_assert_ptr_nonnull(st);
	json_t *t0 = json_array_get(json_object_get(st, "targets"), 0);
	ck_assert_msg(json_integer_value(json_object_get(t0, "txns")) > 0,
		      "the target applied no streamed transaction");
	json_decref(st);
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testd_free(d);
}

START_TEST(e2e_kafka_converges_under_load)
{
	run_converges(false);
}
END_TEST

START_TEST(e2e_direct_converges_under_load)
{
	run_converges(true);
}
END_TEST

/* kill -9 at random moments (measured in load transactions, not time),
 * restart each time; nothing lost, nothing applied twice. */
static void run_kills(bool direct, int kills)
{
	struct load l;
	unsigned seed = (unsigned)time(NULL);
	fprintf(stderr, "kill test seed %u\n", seed);
	load_start(&l);
	wait_load(&l, 20);
	struct ls_testd *d = ls_testd_new();
	write_config(d, direct);
	for (int k = 0; k < kills; k++) {
		ls_testd_start(d);
		wait_load(&l, 10 + (long)(rand_r(&seed) % 150));
		ls_testd_kill9(d);
		assert_consistent();
	}
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
	wait_load(&l, 100);
	load_stop(&l);
	assert_converged(d);
	assert_consistent();
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testd_free(d);
}

START_TEST(e2e_kafka_survives_kill9)
{
	run_kills(false, 20);
}
END_TEST

START_TEST(e2e_direct_survives_kill9)
{
	run_kills(true, 10);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("e2e_pg");
	const struct { const char *name; const TTest *fn; } cases[] = {
		{ "kafka", e2e_kafka_converges_under_load },
		{ "direct", e2e_direct_converges_under_load },
		{ "kafka_kill9", e2e_kafka_survives_kill9 },
		{ "direct_kill9", e2e_direct_survives_kill9 },
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
