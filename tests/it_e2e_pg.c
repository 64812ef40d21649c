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
#include <sys/wait.h>
#include <unistd.h>

#include "tests/helpers/testd.h"
#include "tests/helpers/testsrv.h"
#include "tests/helpers/testutil.h"

#define ACCOUNTS 100
#define START_BALANCE 1000
#define TOTAL (ACCOUNTS * START_BALANCE)

static const char *const tables[] = { "accounts", "events", "items", "wide", "big", "types" };
#define NTABLES (int)(sizeof tables / sizeof tables[0])

static struct ls_testpg *src, *dst;
/* Every type the source issue lists, with awkward values; the checksums
 * compare the text PostgreSQL prints on both sides. */
#define TYPES_USER \
	"CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');" \
	"CREATE DOMAIN posint AS integer CHECK (VALUE > 0);"
#define TYPES_DDL TYPES_USER \
	"CREATE TABLE types (id int PRIMARY KEY, i2 smallint, i4 integer, i8 bigint," \
	"  n numeric, n2 numeric(10,2), t text, vc varchar(20), c char(3), b bytea, bo boolean," \
	"  d date, tm time, tz timetz, ts timestamp(3), tstz timestamptz, iv interval, u uuid," \
	"  j json, jb jsonb, ai integer[], at text[], e mood, dm posint, f4 real," \
	"  f8 double precision);" \
	""
/* Two rows of awkward values with keys BASE and BASE + 1 (printf format). */
#define TYPES_INSERT \
	"INSERT INTO types VALUES (%d, 32767::smallint, -2147483648, 9223372036854775807," \
	"    'NaN'::numeric, 12345678.91, E'multi \u00e9\u20ac tab\\t nl\\n cr\\r bs\\\\ q'''," \
	"    'short', 'ab', '\\x00ff10'::bytea, true, '2024-02-29', '23:59:59.999999'," \
	"    '12:00+05:30', '1999-12-31 23:59:59.123', '2000-01-01 00:00:00+00'," \
	"    '1 year 2 mons 3 days 04:05:06.7', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'," \
	"    '{\"a\": [1, 2.50, null]}', '{\"b\": {\"c\": \"x\"}}', '{1,NULL,3}'," \
	"    '{\"x y\",NULL,\"\\\\\"}', 'happy', 42, 'Infinity', -1.5e-300)," \
	"  (%d, NULL, NULL, NULL, NULL, NULL, '', NULL, NULL, ''::bytea," \
	"    false, 'infinity', NULL, NULL, '-infinity', NULL, '-1 days', NULL, 'null', '[]'," \
	"    '{}', '{}', 'sad', NULL, 'NaN', '-0')"

static struct ls_testkafka *kafka;

/* ---- schema and load --------------------------------------------------------- */

static void make_schema(void)
{
	ls_testpg_exec(src, "postgres", "CREATE DATABASE shop");
	ls_testpg_exec(dst, "postgres", "CREATE DATABASE shop");
	/* user-defined types must exist on the target (create_tables names a
	 * missing one); everything else is created by lockstep */
	ls_testpg_exec(dst, "shop", TYPES_USER);
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
		"INSERT INTO wide SELECT g, repeat(md5(g::text), 200), 0 FROM generate_series(1, 50) g;"
		"CREATE TABLE big (id int PRIMARY KEY, v text);"
		TYPES_DDL,
		START_BALANCE, ACCOUNTS);
	ls_testpg_exec(src, "shop", TYPES_INSERT, 1, 2);
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

/* Prints the first rows that differ between source and target. */
static void dump_diff(const char *table)
{
	char *x = ls_testpg_query1(src, "shop",
		"SELECT string_agg(t::text, E'\\n' ORDER BY id) FROM %s t", table);
	char *y = ls_testpg_query1(dst, "shop",
		"SELECT string_agg(t::text, E'\\n' ORDER BY id) FROM %s t", table);
	const char *p = x ? x : "", *q = y ? y : "";
	int shown = 0;
	while (*p && *q && shown < 5) {
		size_t lp = strcspn(p, "\n"), lq = strcspn(q, "\n");
		if (lp != lq || strncmp(p, q, lp) != 0) {
			fprintf(stderr, "  source: %.*s\n  target: %.*s\n", (int)lp, p, (int)lq, q);
			shown++;
		}
		p += lp + (p[lp] != 0);
		q += lq + (q[lq] != 0);
	}
	free(x);
	free(y);
}

static void assert_converged(struct ls_testd *d)
{
	if (!ls_test_wait_until(converged, NULL, 120000)) {
		for (int i = 0; i < NTABLES; i++) {
			char *a = checksum(src, tables[i]), *b = checksum(dst, tables[i]);
			fprintf(stderr, "%s: source %s target %s\n", tables[i], a, b);
			if (a && b && strcmp(a, b) != 0)
				dump_diff(tables[i]);
			free(a);
			free(b);
		}
		ls_testd_abort_unconverged(d);
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
	/* the same awkward values through the stream, and updated there */
	ls_testpg_exec(src, "shop", TYPES_INSERT, 100, 101);
	ls_testpg_exec(src, "shop", "UPDATE types SET t = t || ' changed', ai = ai || 4 WHERE id = 100");
	ls_testpg_exec(src, "shop", "UPDATE types SET id = 200 WHERE id = 101");
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


/* Target restart, source restart, and each Kafka broker down and up in
 * turn, all during the load: the daemon rides through (reconnects, rewinds
 * to the checkpoint, restarts components) and the target converges. */
START_TEST(e2e_kafka_survives_server_restarts)
{
	struct load l;
	load_start(&l);
	wait_load(&l, 30);
	struct ls_testd *d = ls_testd_new();
	write_config(d, false);
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
	wait_load(&l, 100);
	ls_testpg_restart(dst);
	wait_load(&l, 200);
	assert_consistent();
	ls_testpg_restart(src);
	wait_load(&l, 200);
	for (int b = 1; b <= 3; b++) {
		ls_testkafka_broker_down(kafka, b);
		wait_load(&l, 100);
		ls_testkafka_broker_up(kafka, b);
		wait_load(&l, 50);
		assert_consistent();
	}
	load_stop(&l);
	assert_converged(d);
	assert_consistent();
	int st = 0;
	ck_assert_msg(ls_testd_running(d, &st), "lockstepd exited (%d); log:\n%s", st,
		      ls_testd_log_tail(d));
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testd_free(d);
}
END_TEST

/* In direct mode a target restart cannot be replayed from the buffer: the
 * pipeline restarts in process and the source resends from the slot. */
START_TEST(e2e_direct_survives_target_restart)
{
	struct load l;
	load_start(&l);
	struct ls_testd *d = ls_testd_new();
	write_config(d, true);
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
	wait_load(&l, 100);
	ls_testpg_restart(dst);
	wait_load(&l, 200);
	ls_testd_wait_state(d, "streaming", 120000);
	load_stop(&l);
	assert_converged(d);
	json_t *st = ls_testd_get(d, "/status");
	ck_assert_ptr_nonnull(st);
	ck_assert_int_ge(json_integer_value(json_object_get(st, "restarts")), 1);
	json_decref(st);
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testd_free(d);
}
END_TEST

/* One source transaction of 1,000,000 rows streams through with the
 * daemon's memory bounded (contract point 5). */
static void run_big_txn(bool direct)
{
	struct ls_testd *d = ls_testd_new();
	write_config(d, direct);
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
	long before = ls_testd_peak_rss_kb(d);
	ls_testpg_exec(src, "shop",
		"INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 1000000) g");
	assert_converged(d);
	long peak = ls_testd_peak_rss_kb(d);
	fprintf(stderr, "big transaction (%s): lockstepd peak RSS %ld KiB (before: %ld KiB)\n",
		direct ? "direct" : "kafka", peak, before);
	ck_assert_int_gt(peak, 0);
	ck_assert_msg(peak < 150 * 1024, "peak RSS %ld KiB for a 1M-row transaction", peak);
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testd_free(d);
}

START_TEST(e2e_kafka_big_txn_memory_bounded)
{
	run_big_txn(false);
}
END_TEST

START_TEST(e2e_direct_big_txn_memory_bounded)
{
	run_big_txn(true);
}
END_TEST

/* Schema changes mid-stream under ddl = apply reach the target in order.
 * Columns added with a constant (or once-evaluated) default fill the rows
 * already there on the source without any change in the WAL; the target
 * fills them too. */
START_TEST(e2e_ddl_apply)
{
	struct load l;
	load_start(&l);
	struct ls_testd *d = ls_testd_new();
	write_config(d, true);
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
	wait_load(&l, 50);
	ls_testpg_exec(src, "shop", "ALTER TABLE items ADD COLUMN extra text DEFAULT 'x'");
	ls_testpg_exec(src, "shop", "UPDATE items SET extra = 'y' || id WHERE id < 100");
	ls_testpg_exec(src, "shop", "ALTER TABLE items ADD COLUMN qty int DEFAULT 7,"
		       " ADD COLUMN seen timestamptz DEFAULT now()");
	wait_load(&l, 50);
	ls_testpg_exec(src, "shop", "ALTER TABLE items DROP COLUMN span");
	ls_testpg_exec(src, "shop", "ALTER TABLE items ALTER COLUMN price TYPE numeric(14,3)");
	ls_testpg_exec(src, "shop", "UPDATE items SET price = price + 0.001 WHERE id < 50");
	wait_load(&l, 50);
	load_stop(&l);
	assert_converged(d);
	char *t = ls_testpg_query1(dst, "shop",
		"SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
		" WHERE attrelid = 'items'::regclass AND attname = 'price'");
	ck_assert_str_eq(t, "numeric(14,3)");
	free(t);
	t = ls_testpg_query1(dst, "shop", "SELECT count(*) FROM items WHERE extra = 'x' AND qty = 7"
			     " AND seen IS NOT NULL");
	ck_assert_msg(t && atoi(t) > 100, "filled rows on the target: %s", t);
	free(t);
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testd_free(d);
}
END_TEST

static bool log_has_fill_warning(void *ctx)
{
	const char *log = ls_testd_log_tail(ctx);
	return log && strstr(log, "table public.wide column r was added with DEFAULT random()") &&
	       strstr(log, "lockstepctl drift --repair");
}

/* A volatile default makes the source rewrite the table, which the stream
 * does not carry: the daemon says so, naming table and column, and a drift
 * repair brings the target's rows in line.  (The drift engine compares the
 * columns the tables had when the daemon started, hence the restart.) */
START_TEST(e2e_ddl_volatile_default_warns)
{
	struct ls_testd *d = ls_testd_new();
	write_config(d, true);
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
	ls_testpg_exec(src, "shop", "ALTER TABLE wide ADD COLUMN r float8 DEFAULT random()");
	ls_testpg_exec(src, "shop", "UPDATE wide SET n = n + 1 WHERE id = 1");
	ck_assert_msg(ls_test_wait_until(log_has_fill_warning, d, 60000),
		      "no warning about wide.r; log:\n%s", ls_testd_log_tail(d));
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
	char cmd[1024];
	int want[2] = { 1, 0 };   /* --check: drift found; --repair: fixed */
	for (int i = 0; i < 2; i++) {
		snprintf(cmd, sizeof cmd, "'%s' --socket '%s' drift %s >/dev/null 2>&1",
			 ls_test_build_path("lockstepctl"), ls_testd_socket(d),
			 i == 0 ? "--check" : "--repair");
		int rc = system(cmd);
		ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == want[i], "%s: %d; log:\n%s",
			      cmd, rc, ls_testd_log_tail(d));
	}
	assert_converged(d);
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testd_free(d);
}
END_TEST

/* Under hostile session defaults on the source database (dates written
 * day first, intervals in SQL-standard style, few float digits, escaped
 * bytea), what the snapshot and the stream carry still reads back exactly
 * on the target: every connection pins its own settings. */
static char *iso_checksum(struct ls_testpg *pg, const char *table)
{
	return ls_testpg_query1(pg, "shop",
		"SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres';"
		" SET extra_float_digits = 3; SET bytea_output = 'hex';"
		"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY id)), '-')"
		" FROM %s t", table);
}

static bool times_converged(void *ctx)
{
	(void)ctx;
	char *a = iso_checksum(src, "times"), *b = iso_checksum(dst, "times");
	bool eq = a && b && strcmp(a, b) == 0;
	free(a);
	free(b);
	return eq;
}

START_TEST(e2e_source_session_defaults_do_not_leak)
{
	ls_testpg_exec(src, "shop",
		"ALTER DATABASE shop SET DateStyle = 'SQL, DMY';"
		"ALTER DATABASE shop SET IntervalStyle = 'sql_standard';"
		"ALTER DATABASE shop SET extra_float_digits = -3;"
		"ALTER DATABASE shop SET bytea_output = 'escape';"
		"CREATE TABLE times (id int PRIMARY KEY, day date, at timestamp, span interval,"
		"  f float8, b bytea);"
		"INSERT INTO times SELECT g, date '2021-01-31' + g, timestamp '2021-03-13 01:02:03.456789' + g * interval '1 day',"
		"  CASE WHEN g %% 2 = 0 THEN interval '-1 day -02:03:04.5' ELSE interval '1 year -2 mons +3 days -04:05:06' END * g,"
		"  1.0 / (g + 2), '\\x00ff'::bytea FROM generate_series(1, 200) g");
	struct ls_testd *d = ls_testd_new();
	write_config(d, false);
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
	ls_testpg_exec(src, "shop",
		"INSERT INTO times SELECT g, date '2021-12-13' - g, timestamp '2021-12-31 23:59:59.999999' - g * interval '1 hour',"
		"  interval '-3 days -04:05:06.75' * g, 1.0 / (g + 3), '\\x0a0d'::bytea FROM generate_series(201, 400) g;"
		"UPDATE times SET day = day + 13, span = -span WHERE id %% 3 = 0");
	if (!ls_test_wait_until(times_converged, NULL, 120000)) {
		const char *sql = "SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres';"
			" SET extra_float_digits = 3; SET bytea_output = 'hex'; SELECT string_agg(t::text, E'\\n' ORDER BY id)"
			" FROM (SELECT * FROM times ORDER BY id) t";
		char *x = ls_testpg_query1(src, "shop", "%s", sql);
		char *y = ls_testpg_query1(dst, "shop", "%s", sql);
		for (const char *p = x ? x : "", *q = y ? y : "", *e = NULL; *p && *q; ) {
			size_t lp = strcspn(p, "\n"), lq = strcspn(q, "\n");
			if ((lp != lq || strncmp(p, q, lp) != 0) && e == NULL) {
				fprintf(stderr, "  source: %.*s\n  target: %.*s\n", (int)lp, p,
					(int)lq, q);
				e = p;
			}
			p += lp + (p[lp] != 0);
			q += lq + (q[lq] != 0);
		}
		free(x);
		free(y);
		char *a = iso_checksum(src, "times"), *b = iso_checksum(dst, "times");
		ck_abort_msg("times did not converge (source %s, target %s); log:\n%s", a, b,
			     ls_testd_log_tail(d));
	}
	char *n = ls_testpg_query1(dst, "shop", "SET DateStyle = 'ISO, MDY';"
				   "SELECT day FROM times WHERE id = 1");
	ck_assert_str_eq(n, "2021-02-01");
	free(n);
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testd_free(d);
}
END_TEST

static bool daemon_failed(void *ctx)
{
	int code = 0;
	if (!ls_testd_running(ctx, &code))
		ck_abort_msg("lockstepd exited (%d) instead of reporting the failure; log:\n%s",
			     code, ls_testd_log_tail(ctx));
	json_t *st = ls_testd_get(ctx, "/status");
	if (st == NULL && getenv("LS_TEST_DEBUG"))
		fprintf(stderr, "no /status answer\n");
	const char *s = st ? json_string_value(json_object_get(st, "pipeline_state")) : NULL;
	bool failed = s && strcmp(s, "failed") == 0;
	json_decref(st);
	return failed;
}

/* Under ddl = stop, a schema change stops the pipeline with a message naming
 * the table; nothing after it is applied; restarted with ddl = apply, the
 * pipeline resumes from the intact checkpoint and converges. */
START_TEST(e2e_ddl_stop)
{
	struct ls_testd *d = ls_testd_new();
	struct cfg o = { .direct = false, .ddl = "stop" };
	write_config_opts(d, &o);
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
	ls_testpg_exec(src, "shop", "INSERT INTO items (id, name) VALUES (90001, 'before')");
	ls_testpg_exec(src, "shop", "ALTER TABLE items ADD COLUMN extra text");
	ls_testpg_exec(src, "shop", "INSERT INTO items (id, name, extra) VALUES (90002, 'after', 'z')");
	ck_assert_msg(ls_test_wait_until(daemon_failed, d, 180000),
		      "pipeline did not stop on DDL; log:\n%s", ls_testd_log_tail(d));
	json_t *st = ls_testd_get(d, "/status");
	const char *msg = json_string_value(json_object_get(st, "last_error"));
	ck_assert_msg(msg && strstr(msg, "items"), "error does not name the table: %s", msg);
	json_decref(st);
	char *n = ls_testpg_query1(dst, "shop", "SELECT count(*) FROM items WHERE id = 90002");
	ck_assert_str_eq(n, "0");
	free(n);
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	o.ddl = "apply";
	write_config_opts(d, &o);
	ls_testd_start(d);
	assert_converged(d);
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testd_free(d);
}
END_TEST

/* The source slot confirmed everything up to lsn: the source half made it
 * durable in the buffer. */
static bool slot_reached(void *ctx)
{
	char *ok = ls_testpg_query1(src, "postgres",
		"SELECT confirmed_flush_lsn >= '%s' FROM pg_replication_slots"
		" WHERE slot_name = 'lockstep_shop'", (const char *)ctx);
	bool done = ok && strcmp(ok, "t") == 0;
	free(ok);
	return done;
}

/* Split deployment: a source-only daemon fills the topic past what the
 * mock cluster keeps (5 MiB per partition); an apply-only daemon started
 * afterwards finds its next offset gone and stops with an error naming the
 * lost range, instead of skipping it. */
START_TEST(e2e_kafka_gap_is_an_error)
{
	struct ls_testd *s = ls_testd_new(), *t = ls_testd_new();
	struct cfg so = { .no_target = true, .snapshot = "never", .max_lead = "0" };
	struct cfg to = { .no_source = true };
	write_config_opts(s, &so);
	write_config_opts(t, &to);
	ls_testd_start(s);
	ls_testd_wait_state(s, "streaming", 60000);
	ls_testpg_exec(src, "shop",
		"INSERT INTO big SELECT g, md5(g::text) || md5(g::text) FROM generate_series(1, 400000) g");
	char *lsn = ls_testpg_query1(src, "postgres", "SELECT pg_current_wal_lsn()");
	ck_assert_msg(ls_test_wait_until(slot_reached, lsn, 120000),
		      "source half did not make the transaction durable; log:\n%s",
		      ls_testd_log_tail(s));
	free(lsn);
	ls_testd_start(t);
	ck_assert_msg(ls_test_wait_until(daemon_failed, t, 180000),
		      "apply half did not stop on the gap; log:\n%s", ls_testd_log_tail(t));
	json_t *st = ls_testd_get(t, "/status");
	const char *msg = json_string_value(json_object_get(st, "last_error"));
	ck_assert_msg(msg && strstr(msg, "gone"), "error does not name the lost range: %s", msg);
	fprintf(stderr, "gap error: %s\n", msg);
	json_decref(st);
	ls_testd_free(t);
	ls_testd_free(s);
}
END_TEST

int main(void)
{
	const struct ls_testutil_case cases[] = {
		{ "kafka", e2e_kafka_converges_under_load },
		{ "direct", e2e_direct_converges_under_load },
		{ "kafka_kill9", e2e_kafka_survives_kill9 },
		{ "direct_kill9", e2e_direct_survives_kill9 },
		{ "kafka_restarts", e2e_kafka_survives_server_restarts },
		{ "direct_target_restart", e2e_direct_survives_target_restart },
		{ "kafka_big_txn", e2e_kafka_big_txn_memory_bounded },
		{ "direct_big_txn", e2e_direct_big_txn_memory_bounded },
		{ "ddl_apply", e2e_ddl_apply },
		{ "ddl_volatile_default", e2e_ddl_volatile_default_warns },
		{ "session_defaults", e2e_source_session_defaults_do_not_leak },
		{ "ddl_stop", e2e_ddl_stop },
		{ "kafka_gap", e2e_kafka_gap_is_an_error },
	};
	return ls_testutil_run_cases("e2e_pg", cases, sizeof cases / sizeof cases[0], setup, teardown,
				     600);
}
