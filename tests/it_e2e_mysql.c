/* End to end across engines through the real lockstepd: MariaDB ->
 * MariaDB, MariaDB -> PostgreSQL and PostgreSQL -> MariaDB.  A write load
 * runs from before the snapshot to the end; the target must converge to
 * the source (row counts and md5 of a canonical text of every row, ordered
 * by key, computed by each engine with explicit formatting of timestamps,
 * decimals, booleans and bytes), never show a torn transaction (the sum of
 * all balances is constant), survive kill -9 of the daemon at random
 * moments (counted in load transactions) and a MariaDB restart (the stream
 * resumes by GTID).  A table with every MySQL type round-trips to
 * PostgreSQL as README "Types across engines" documents, row by row, and a
 * zero date stops the pipeline with an error naming table, column and key. */
#include <check.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <mysql.h>
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

enum eng { MY, PG };

/* One database server of either engine. */
struct db {
	enum eng e;
	struct ls_testmy *my;
	struct ls_testpg *pg;
	const char *ns;            /* where the tables are: MySQL database or
				      PostgreSQL schema (a target's is the
				      source's namespace) */
};

static struct db src, dst;
static struct ls_testkafka *kafka;

static const char *const tables[] = { "accounts", "events", "items" };
#define NTABLES (int)(sizeof tables / sizeof tables[0])

/* ---- servers -------------------------------------------------------------------------- */

static void db_start(struct db *d, enum eng e)
{
	memset(d, 0, sizeof *d);
	d->e = e;
	if (e == MY)
		d->my = ls_testmy_start(NULL);
	else
		d->pg = ls_testpg_start(NULL);
}

static void db_stop(struct db *d)
{
	ls_testmy_stop(d->my);
	ls_testpg_stop(d->pg);
	memset(d, 0, sizeof *d);
}

static const char *db_conninfo(struct db *d)
{
	return d->e == MY ? ls_testmy_conninfo(d->my, "shop") : ls_testpg_conninfo(d->pg, "shop");
}

static char *db_query1(struct db *d, const char *sql)
{
	return d->e == MY ? ls_testmy_query1(d->my, NULL, "%s", sql)
			  : ls_testpg_query1(d->pg, "shop", "%s", sql);
}

static bool db_has_table(struct db *d, const char *t)
{
	char *v = d->e == MY
		? ls_testmy_query1(d->my, NULL, "SELECT COUNT(*) FROM information_schema.TABLES "
				   "WHERE TABLE_SCHEMA = '%s' AND TABLE_NAME = '%s'", d->ns, t)
		: ls_testpg_query1(d->pg, "shop", "SELECT count(*) FROM pg_class "
				   "WHERE oid = to_regclass('%s.%s')", d->ns, t);
	bool yes = v && strcmp(v, "1") == 0;
	free(v);
	return yes;
}

/* ---- schema -------------------------------------------------------------------------- */

static void make_schema(void)
{
	if (src.e == MY) {
		ls_testmy_exec(src.my, NULL, "CREATE DATABASE shop");
		ls_testmy_exec(src.my, "shop",
			"CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL);"
			"CREATE TABLE events (id BIGINT AUTO_INCREMENT PRIMARY KEY, src INT, dst INT,"
			"  amount BIGINT, note VARCHAR(100), at TIMESTAMP(6) NULL DEFAULT NULL);"
			"CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(200), price DECIMAL(12,2),"
			"  raw VARBINARY(16), day DATE, flag TINYINT(1));"
			"INSERT INTO accounts SELECT seq, %d FROM seq_1_to_%d;"
			"INSERT INTO items SELECT seq, CONCAT('item ', seq, ' \xC3\xA9\\t\\\\n'),"
			"  seq * 1.25, UNHEX('DEADBEEF00'), DATE '2020-01-01' + INTERVAL seq DAY,"
			"  seq %% 2 FROM seq_1_to_2000;",
			START_BALANCE, ACCOUNTS);
	} else {
		ls_testpg_exec(src.pg, "postgres", "CREATE DATABASE shop");
		ls_testpg_exec(src.pg, "shop",
			"CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);"
			"CREATE TABLE events (id bigserial PRIMARY KEY, src int, dst int, amount bigint,"
			"  note text, at timestamptz(6));"
			"CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(12,2),"
			"  raw bytea, day date, flag boolean);"
			"INSERT INTO accounts SELECT g, %d FROM generate_series(1, %d) g;"
			"INSERT INTO items SELECT g, 'item ' || g || ' é\t\\n', g * 1.25,"
			"  '\\xdeadbeef00'::bytea, date '2020-01-01' + g, g %% 2 = 1"
			"  FROM generate_series(1, 2000) g;",
			START_BALANCE, ACCOUNTS);
	}
	if (dst.e == MY)
		ls_testmy_exec(dst.my, NULL, "CREATE DATABASE shop");
	else
		ls_testpg_exec(dst.pg, "postgres", "CREATE DATABASE shop");
}

/* ---- load ---------------------------------------------------------------------------- */

struct load {
	pthread_t thread;
	atomic_bool stop;
	atomic_long txns;
	char err[256];
};

static struct load load;

static MYSQL *my_load_connect(void)
{
	for (int i = 0; i < 3000 && !atomic_load(&load.stop); i++) {
		MYSQL *m = mysql_init(NULL);
		unsigned timeout = 5;
		mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
		if (mysql_real_connect(m, "127.0.0.1", "root", "", "shop",
				       (unsigned)ls_testmy_port(src.my), NULL, 0))
			return m;
		mysql_close(m);
		/* the server restarts: retry for up to 30 s */
		nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
	}
	return NULL;
}

static bool my_txn(MYSQL *m, unsigned *seed)
{
	int a = 1 + (int)(rand_r(seed) % ACCOUNTS), b = 1 + (int)(rand_r(seed) % ACCOUNTS);
	int amount = 1 + (int)(rand_r(seed) % 50);
	int item = 1 + (int)(rand_r(seed) % 3000), gone = 1 + (int)(rand_r(seed) % 3000);
	char sql[6][300];
	snprintf(sql[0], sizeof sql[0], "START TRANSACTION");
	snprintf(sql[1], sizeof sql[1], "UPDATE accounts SET balance = balance - %d WHERE id = %d",
		 amount, a);
	snprintf(sql[2], sizeof sql[2], "UPDATE accounts SET balance = balance + %d WHERE id = %d",
		 amount, b);
	snprintf(sql[3], sizeof sql[3], "INSERT INTO events (src, dst, amount, note, at) VALUES "
		 "(%d, %d, %d, 'move', NOW(6))", a, b, amount);
	snprintf(sql[4], sizeof sql[4], "INSERT INTO items (id, name, price, raw, day, flag) "
		 "VALUES (%d, 'new', 1.5, X'00FF', CURDATE(), 1) ON DUPLICATE KEY UPDATE "
		 "price = price + 1, raw = NULL", item);
	snprintf(sql[5], sizeof sql[5], "DELETE FROM items WHERE id = %d", gone);
	for (int i = 0; i < 6; i++)
		if (mysql_query(m, sql[i]) != 0)
			return false;
	return mysql_query(m, "COMMIT") == 0;
}

static void *my_load_main(void *arg)
{
	(void)arg;
	unsigned seed = 42;
	MYSQL *m = NULL;
	while (!atomic_load(&load.stop)) {
		if (m == NULL && (m = my_load_connect()) == NULL) {
			snprintf(load.err, sizeof load.err, "load: cannot connect to MariaDB");
			return NULL;
		}
		if (my_txn(m, &seed)) {
			atomic_fetch_add(&load.txns, 1);
		} else {
			mysql_close(m);   /* the server rolls the transaction back */
			m = NULL;
		}
	}
	mysql_close(m);
	return NULL;
}

static void *pg_load_main(void *arg)
{
	(void)arg;
	PGconn *c = PQconnectdb(ls_testpg_conninfo(src.pg, "shop"));
	if (PQstatus(c) != CONNECTION_OK) {
		snprintf(load.err, sizeof load.err, "load: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	unsigned seed = 42;
	while (!atomic_load(&load.stop)) {
		int a = 1 + (int)(rand_r(&seed) % ACCOUNTS), b = 1 + (int)(rand_r(&seed) % ACCOUNTS);
		int amount = 1 + (int)(rand_r(&seed) % 50);
		int item = 1 + (int)(rand_r(&seed) % 3000), gone = 1 + (int)(rand_r(&seed) % 3000);
		char sql[1024];
		snprintf(sql, sizeof sql,
			 "BEGIN;"
			 "UPDATE accounts SET balance = balance - %d WHERE id = %d;"
			 "UPDATE accounts SET balance = balance + %d WHERE id = %d;"
			 "INSERT INTO events (src, dst, amount, note, at) VALUES (%d, %d, %d, 'move',"
			 "  now());"
			 "INSERT INTO items (id, name, price, raw, day, flag) VALUES (%d, 'new', 1.5,"
			 "  '\\x00ff', current_date, true)"
			 "  ON CONFLICT (id) DO UPDATE SET price = items.price + 1, raw = NULL;"
			 "DELETE FROM items WHERE id = %d;"
			 "COMMIT;", amount, a, amount, b, a, b, amount, item, gone);
		PGresult *r = PQexec(c, sql);
		bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		if (ok)
			atomic_fetch_add(&load.txns, 1);
		else
			PQclear(PQexec(c, "ROLLBACK"));
	}
	PQfinish(c);
	return NULL;
}

static void load_start(void)
{
	memset(&load, 0, sizeof load);
	ck_assert_int_eq(pthread_create(&load.thread, NULL,
					src.e == MY ? my_load_main : pg_load_main, NULL), 0);
}

static void load_stop(void)
{
	atomic_store(&load.stop, true);
	pthread_join(load.thread, NULL);
	ck_assert_msg(load.err[0] == '\0', "%s", load.err);
}

static bool load_progressed(void *ctx)
{
	return atomic_load(&load.txns) >= *(long *)ctx || load.err[0] != '\0';
}

/* Waits until the load has committed `more` further transactions. */
static void wait_load(long more)
{
	long want = atomic_load(&load.txns) + more;
	ck_assert_msg(ls_test_wait_until(load_progressed, &want, 90000),
		      "the write load made no progress");
	ck_assert_msg(load.err[0] == '\0', "%s", load.err);
}

/* ---- canonical checksums ---------------------------------------------------------------- */

/* Each table's row as the same text on both engines (UTF-8 bytes, whatever
 * the column's charset): NULL as ~, decimals
 * with their scale, timestamps as UTC with 6 fraction digits, bytes as
 * upper-case hex, booleans as 0/1. */
static const char *const my_expr[] = {
	"CONCAT_WS('|', id, balance)",
	"CONCAT_WS('|', id, IFNULL(src,'~'), IFNULL(dst,'~'), IFNULL(amount,'~'), IFNULL(note,'~'),"
	" IFNULL(DATE_FORMAT(at, '%Y-%m-%d %H:%i:%s.%f'),'~'))",
	"CONCAT_WS('|', id, IFNULL(name,'~'), IFNULL(price,'~'), IFNULL(HEX(raw),'~'),"
	" IFNULL(day,'~'), IFNULL(flag + 0,'~'))",
};
static const char *const pg_expr[] = {
	"concat_ws('|', id, balance)",
	"concat_ws('|', id, coalesce(src::text,'~'), coalesce(dst::text,'~'),"
	" coalesce(amount::text,'~'), coalesce(note,'~'),"
	" coalesce(to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'),'~'))",
	"concat_ws('|', id, coalesce(name,'~'), coalesce(price::text,'~'),"
	" coalesce(upper(encode(raw,'hex')),'~'), coalesce(day::text,'~'),"
	" coalesce(flag::int::text,'~'))",
};

static char *checksum(struct db *d, int t)
{
	char sql[1024];
	if (d->e == MY)
		snprintf(sql, sizeof sql, "SET STATEMENT group_concat_max_len = 1073741824,"
			 " time_zone = '+00:00' FOR SELECT CONCAT(COUNT(*), ':', IFNULL(MD5(CONVERT("
			 "GROUP_CONCAT(%s ORDER BY id SEPARATOR '\\n') USING utf8mb4)), '-'))"
			 " FROM %s.%s",
			 my_expr[t], d->ns, tables[t]);
	else
		snprintf(sql, sizeof sql, "SELECT count(*) || ':' || coalesce(md5(string_agg(%s,"
			 " E'\\n' ORDER BY id)), '-') FROM %s.%s", pg_expr[t], d->ns, tables[t]);
	return db_query1(d, sql);
}

static bool converged(void *ctx)
{
	(void)ctx;
	for (int i = 0; i < NTABLES; i++) {
		if (!db_has_table(&dst, tables[i]))
			return false;
		char *a = checksum(&src, i), *b = checksum(&dst, i);
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
	if (!ls_test_wait_until(converged, NULL, 180000)) {
		for (int i = 0; i < NTABLES; i++) {
			char *a = checksum(&src, i), *b = db_has_table(&dst, tables[i]) ?
				checksum(&dst, i) : NULL;
			fprintf(stderr, "%s: source %s target %s\n", tables[i], a, b);
			free(a);
			free(b);
		}
		ck_abort_msg("target did not converge; log:\n%s", ls_testd_log_tail(d));
	}
}

/* The target is always a committed prefix of the source. */
static void assert_consistent(void)
{
	if (!db_has_table(&dst, "accounts"))
		return;   /* not created yet: an empty target is a committed prefix */
	char sql[200];
	snprintf(sql, sizeof sql, dst.e == MY
		 ? "SELECT CONCAT(COUNT(*), ':', IFNULL(SUM(balance), 0)) FROM %s.accounts"
		 : "SELECT count(*) || ':' || coalesce(sum(balance), 0) FROM %s.accounts", dst.ns);
	char *s = db_query1(&dst, sql);
	ck_assert_ptr_nonnull(s);
	char want[64];
	snprintf(want, sizeof want, "%d:%d", ACCOUNTS, TOTAL);
	ck_assert_msg(strcmp(s, "0:0") == 0 || strcmp(s, want) == 0,
		      "target shows a torn transaction: accounts count:sum = %s", s);
	free(s);
}

/* ---- config --------------------------------------------------------------------------------- */

static void write_config(struct ls_testd *d, bool direct, const char *extra_tables)
{
	char conf[4096];
	snprintf(conf, sizeof conf,
		 "[pipeline]\nname = shop\nstate_dir = @DIR@\n\n"
		 "[source]\ntype = %s\nconninfo = %s\ntables = %s%s\nsnapshot_workers = 2\n\n"
		 "[buffer]\n%s%s\n\n"
		 "[target new]\ntype = %s\nconninfo = %s\ncreate_tables = true\nbatch_ms = 20\n\n"
		 "[control]\nsocket = @DIR@/control.sock\n\n[log]\nlevel = info\n",
		 src.e == MY ? "mysql" : "postgres", db_conninfo(&src),
		 src.e == MY ? "shop.*" : "public.*", extra_tables ? extra_tables : "",
		 direct ? "type = direct" : "type = kafka\nmax_lead = 2MiB\nbrokers = ",
		 direct ? "" : ls_testkafka_bootstrap(kafka),
		 dst.e == MY ? "mysql" : "postgres", db_conninfo(&dst));
	ls_testd_config(d, conf);
}

static void setup_engines(enum eng s, enum eng t)
{
	db_start(&src, s);
	db_start(&dst, t);
	src.ns = dst.ns = s == MY ? "shop" : "public";
	kafka = ls_testkafka_start(3);
	make_schema();
}

static void teardown(void)
{
	ls_testkafka_stop(kafka);
	kafka = NULL;
	db_stop(&dst);
	db_stop(&src);
}

static void setup_my_my(void) { setup_engines(MY, MY); }
static void setup_my_pg(void) { setup_engines(MY, PG); }
static void setup_pg_my(void) { setup_engines(PG, MY); }

/* ---- convergence under load --------------------------------------------------------------- */

static void make_types_table(void);
static void insert_types_row(int id, bool nulls);
static char *my_types_checksum(struct db *d);

static bool types_same(void *ctx)
{
	(void)ctx;
	if (!db_has_table(&dst, "types"))
		return false;
	char *a = my_types_checksum(&src), *b = my_types_checksum(&dst);
	bool eq = a && b && strcmp(a, b) == 0;
	free(a);
	free(b);
	return eq;
}

static char *extra_sum(struct db *d)
{
	char *has = d->e == MY
		? ls_testmy_query1(d->my, NULL, "SELECT COUNT(*) FROM information_schema.COLUMNS "
				   "WHERE TABLE_SCHEMA = '%s' AND TABLE_NAME = 'items' AND "
				   "COLUMN_NAME = 'extra'", d->ns)
		: ls_testpg_query1(d->pg, "shop", "SELECT count(*) FROM pg_attribute WHERE "
				   "attrelid = '%s.items'::regclass AND attname = 'extra'", d->ns);
	bool yes = has && strcmp(has, "1") == 0;
	free(has);
	if (!yes)
		return NULL;
	char sql[200];
	snprintf(sql, sizeof sql, "SELECT %s(COUNT(extra), ':', SUM(extra)) FROM %s.items",
		 d->e == MY ? "CONCAT" : "concat", d->ns);
	return db_query1(d, sql);
}

static bool extra_same(void *ctx)
{
	(void)ctx;
	char *a = extra_sum(&src), *b = extra_sum(&dst);
	bool eq = a && b && strcmp(a, b) == 0;
	free(a);
	free(b);
	return eq;
}

/* DDL on the MariaDB source reaches the target with the next change. */
static void source_ddl(struct ls_testd *d)
{
	ls_testmy_exec(src.my, "shop", "ALTER TABLE items ADD COLUMN extra INT NULL;"
		       "UPDATE items SET extra = id");
	ck_assert_msg(ls_test_wait_until(extra_same, NULL, 60000), "the new column did not "
		      "reach the target; log:\n%s", ls_testd_log_tail(d));
}

static void run_converges(bool direct)
{
	bool my_my = src.e == MY && dst.e == MY;
	if (my_my) {
		make_types_table();
		insert_types_row(1, false);      /* snapshot */
	}
	load_start();
	wait_load(50);          /* the load runs before and during the snapshot */
	struct ls_testd *d = ls_testd_new();
	write_config(d, direct, NULL);
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
	if (my_my) {
		insert_types_row(2, false);      /* stream */
		insert_types_row(3, true);
	}
	for (int i = 0; i < 20; i++) {
		wait_load(50);
		assert_consistent();
	}
	load_stop();
	assert_converged(d);
	assert_consistent();
	if (my_my)
		ck_assert_msg(ls_test_wait_until(types_same, NULL, 60000), "types differ: source "
			      "%s target %s", my_types_checksum(&src), my_types_checksum(&dst));
	if (src.e == MY)
		source_ddl(d);
	json_t *st = ls_testd_get(d, "/status");
	ck_assert_ptr_nonnull(st);
	json_t *t0 = json_array_get(json_object_get(st, "targets"), 0);
	ck_assert_msg(json_integer_value(json_object_get(t0, "txns")) > 0,
		      "the target applied no streamed transaction");
	json_decref(st);
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testd_free(d);
}

START_TEST(e2e_mariadb_to_mariadb_converges_under_load)
{
	run_converges(false);
}
END_TEST

START_TEST(e2e_mariadb_to_postgres_converges_under_load)
{
	run_converges(true);
}
END_TEST

START_TEST(e2e_postgres_to_mariadb_converges_under_load)
{
	run_converges(false);
}
END_TEST

/* ---- kill -9 and a MariaDB restart ------------------------------------------------------------ */

/* A number from GET /status: key of object obj (its first element when an
 * array), or of the top level when obj is NULL. */
static int64_t status_int(struct ls_testd *d, const char *obj, const char *key)
{
	json_t *st = ls_testd_get(d, "/status");
	json_t *o = obj ? json_object_get(st, obj) : st;
	if (json_is_array(o))
		o = json_array_get(o, 0);
	int64_t v = json_integer_value(json_object_get(o, key));
	json_decref(st);
	return v;
}

/* The target holds the source's events row `id` (rows of events are never
 * deleted by the load). */
static bool event_applied(void *ctx)
{
	char sql[256];
	snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s.events WHERE id = %s", dst.ns,
		 (const char *)ctx);
	char *v = db_query1(&dst, sql);
	bool ok = v && strcmp(v, "1") == 0;
	free(v);
	return ok;
}

/* MariaDB restarts under the running daemon: the source reconnects and
 * resumes by GTID (or, should another part fail with it, the pipeline
 * restarts in process), and a transaction committed after the restart
 * reaches the target.  Judged by data, not by counters a pipeline restart
 * would reset. */
static void restart_source(struct ls_testd *d)
{
	ls_testd_wait_state(d, "streaming", 120000);
	wait_load(50);
	int64_t restarts = status_int(d, NULL, "restarts");
	ls_testmy_restart(src.my);
	wait_load(50);
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT MAX(id) FROM %s.events", src.ns);
	char *id = db_query1(&src, sql);
	ck_assert_ptr_nonnull(id);
	if (!ls_test_wait_until(event_applied, id, 90000)) {
		json_t *st = ls_testd_get(d, "/status");
		char *text = st ? json_dumps(st, JSON_COMPACT) : NULL;
		ck_abort_msg("events row %s, committed after the source restart, did not reach "
			     "the target; status: %s\nlog:\n%s", id, text ? text : "(none)",
			     ls_testd_log_tail(d));
	}
	free(id);
	ck_assert_msg(status_int(d, "source", "reconnects") >= 1 ||
		      status_int(d, NULL, "restarts") > restarts,
		      "the source neither reconnected nor restarted, yet the server restarted");
}

/* kill -9 at random moments counted in load transactions: every other run
 * lets the daemon reach streaming first, so kills land in prepare,
 * snapshot and stream alike. */
static void run_kills(bool direct, int kills, bool restart)
{
	unsigned seed = (unsigned)time(NULL);
	fprintf(stderr, "kill test seed %u\n", seed);
	load_start();
	wait_load(20);
	struct ls_testd *d = ls_testd_new();
	write_config(d, direct, NULL);
	for (int k = 0; k < kills; k++) {
		ls_testd_start(d);
		if (k % 2)
			ls_testd_wait_state(d, "streaming", 120000);
		wait_load(10 + (long)(rand_r(&seed) % 150));
		if (restart && k == kills / 2)
			restart_source(d);
		ls_testd_kill9(d);
		assert_consistent();
	}
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
	wait_load(100);
	load_stop();
	assert_converged(d);
	assert_consistent();
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testd_free(d);
}

START_TEST(e2e_mariadb_to_postgres_survives_kill9_and_source_restart)
{
	run_kills(false, 12, true);
}
END_TEST

START_TEST(e2e_mariadb_to_mariadb_survives_kill9)
{
	run_kills(true, 8, false);
}
END_TEST

START_TEST(e2e_postgres_to_mariadb_survives_kill9)
{
	run_kills(false, 8, false);
}
END_TEST

/* ---- every MySQL type to PostgreSQL ---------------------------------------------------------- */

/* The mapping table of README "Types across engines", checked row by row:
 * MySQL column type, a value (SQL literal), the PostgreSQL type the target
 * table gets (format_type) and the value's PostgreSQL text. */
static const struct {
	const char *col, *mytype, *literal, *pgtype, *pgtext;
} types[] = {
	{ "c_tiny", "tinyint", "-128", "smallint", "-128" },
	{ "c_bool", "tinyint(1)", "1", "smallint", "1" },
	{ "c_utiny", "tinyint unsigned", "255", "smallint", "255" },
	{ "c_small", "smallint", "-32768", "smallint", "-32768" },
	{ "c_usmall", "smallint unsigned", "65535", "integer", "65535" },
	{ "c_medium", "mediumint", "-8388608", "integer", "-8388608" },
	{ "c_umedium", "mediumint unsigned", "16777215", "integer", "16777215" },
	{ "c_int", "int", "-2147483648", "integer", "-2147483648" },
	{ "c_uint", "int unsigned", "4294967295", "bigint", "4294967295" },
	{ "c_big", "bigint", "-9223372036854775808", "bigint", "-9223372036854775808" },
	{ "c_ubig", "bigint unsigned", "18446744073709551615", "numeric(20,0)",
	  "18446744073709551615" },
	{ "c_dec", "decimal(12,4)", "-12345678.1234", "numeric(12,4)", "-12345678.1234" },
	{ "c_udec", "decimal(5,2) unsigned", "999.99", "numeric(5,2)", "999.99" },
	{ "c_float", "float", "1.5", "real", "1.5" },
	{ "c_double", "double", "-2.25e100", "double precision", "-2.25e+100" },
	{ "c_bit", "bit(10)", "b'1000000001'", "bigint", "513" },
	{ "c_bit64", "bit(64)", "b'1111111111111111111111111111111111111111111111111111111111111111'",
	  "numeric(20,0)", "18446744073709551615" },
	{ "c_char", "char(5)", "'ab'", "character varying(5)", "ab" },
	{ "c_varchar", "varchar(20)", "'h\xC3\xA9 \\t\\\\'", "character varying(20)",
	  "h\xC3\xA9 \t\\" },
	{ "c_text", "text", "'line1\\nline2'", "text", "line1\nline2" },
	{ "c_mtext", "mediumtext", "'m'", "text", "m" },
	{ "c_ltext", "longtext", "'l'", "text", "l" },
	{ "c_binary", "binary(4)", "X'0102'", "bytea", "\\x01020000" },
	{ "c_varbinary", "varbinary(8)", "X'00FF10'", "bytea", "\\x00ff10" },
	{ "c_blob", "blob", "X'DEADBEEF'", "bytea", "\\xdeadbeef" },
	{ "c_lblob", "longblob", "X'0A0D095C'", "bytea", "\\x0a0d095c" },
	{ "c_enum", "enum('red','green','blue')", "'green'", "text", "green" },
	{ "c_set", "set('a','b','c')", "'a,c'", "text", "a,c" },
	{ "c_json", "json", "'{\"k\": [1, 2]}'", "jsonb", "{\"k\": [1, 2]}" },
	{ "c_date", "date", "'2024-02-29'", "date", "2024-02-29" },
	{ "c_dt", "datetime", "'2024-02-29 13:14:15'", "timestamp(0) without time zone",
	  "2024-02-29 13:14:15" },
	{ "c_dt6", "datetime(6)", "'2024-02-29 13:14:15.123456'",
	  "timestamp(6) without time zone", "2024-02-29 13:14:15.123456" },
	{ "c_ts", "timestamp", "'2024-02-29 13:14:15'", "timestamp(0) with time zone",
	  "2024-02-29 13:14:15" },
	{ "c_ts3", "timestamp(3)", "'2024-02-29 13:14:15.125'", "timestamp(3) with time zone",
	  "2024-02-29 13:14:15.125" },
	{ "c_time", "time", "'-838:59:59'", "interval", "-838:59:59" },
	{ "c_time2", "time(2)", "'12:34:56.78'", "interval", "12:34:56.78" },
	{ "c_year", "year", "2024", "smallint", "2024" },
};
#define NTYPES (int)(sizeof types / sizeof types[0])

static void insert_types_row(int id, bool nulls)
{
	char sql[8192];
	int n = snprintf(sql, sizeof sql, "SET time_zone = '+00:00'; INSERT INTO types VALUES (%d",
			 id);
	for (int i = 0; i < NTYPES; i++)
		n += snprintf(sql + n, sizeof sql - (size_t)n, ", %s",
			      nulls ? "NULL" : types[i].literal);
	snprintf(sql + n, sizeof sql - (size_t)n, ")");
	ls_testmy_exec(src.my, "shop", "%s", sql);
}

static void make_types_table(void)
{
	char sql[8192];
	int n = snprintf(sql, sizeof sql, "CREATE TABLE types (id INT PRIMARY KEY");
	for (int i = 0; i < NTYPES; i++)
		n += snprintf(sql + n, sizeof sql - (size_t)n, ", %s %s NULL", types[i].col,
			      types[i].mytype);
	snprintf(sql + n, sizeof sql - (size_t)n, ")");
	ls_testmy_exec(src.my, "shop", "%s", sql);
}

/* MariaDB on both sides: every column's text (bytes as hex), UTF-8. */
static char *my_types_checksum(struct db *d)
{
	char sql[8192];
	int n = snprintf(sql, sizeof sql, "SET STATEMENT time_zone = '+00:00' FOR SELECT "
			 "MD5(CONVERT(GROUP_CONCAT(CONCAT_WS('|', id");
	for (int i = 0; i < NTYPES; i++) {
		bool bytes = strstr(types[i].mytype, "bin") || strstr(types[i].mytype, "blob") ||
			     strstr(types[i].mytype, "bit");
		n += snprintf(sql + n, sizeof sql - (size_t)n, ", IFNULL(%s%s%s, '~')",
			      bytes ? "HEX(" : "CONVERT(", types[i].col,
			      bytes ? ")" : " USING utf8mb4)");
	}
	snprintf(sql + n, sizeof sql - (size_t)n, ") ORDER BY id SEPARATOR '\\n') USING utf8mb4))"
		 " FROM %s.types", d->ns);
	return db_query1(d, sql);
}

static bool types_row_there(void *ctx)
{
	int id = *(int *)ctx;
	if (!db_has_table(&dst, "types"))
		return false;
	char *v = ls_testpg_query1(dst.pg, "shop", "SELECT count(*) FROM shop.types WHERE id = %d", id);
	bool yes = v && strcmp(v, "1") == 0;
	free(v);
	return yes;
}

static void wait_types_row(struct ls_testd *d, int id)
{
	if (!ls_test_wait_until(types_row_there, &id, 60000)) {
		json_t *st = ls_testd_get(d, "/status");
		char *txt = st ? json_dumps(st, JSON_COMPACT) : NULL;
		fprintf(stderr, "status: %s\n", txt ? txt : "(none)");
		ck_abort_msg("types row %d did not arrive; log:\n%s", id, ls_testd_log_tail(d));
	}
}

static void check_types_row(int id)
{
	for (int i = 0; i < NTYPES; i++) {
		char *ty = ls_testpg_query1(dst.pg, "shop", "SELECT format_type(atttypid, atttypmod)"
			" FROM pg_attribute WHERE attrelid = 'shop.types'::regclass AND attname = '%s'",
			types[i].col);
		ck_assert_msg(ty && strcmp(ty, types[i].pgtype) == 0, "%s %s: PostgreSQL type %s, "
			      "want %s", types[i].col, types[i].mytype, ty, types[i].pgtype);
		free(ty);
		bool tz = strstr(types[i].pgtype, "with time zone") != NULL;
		char *v = ls_testpg_query1(dst.pg, "shop", "SELECT %s%s%s::text FROM shop.types WHERE id = %d",
			tz ? "(" : "", types[i].col, tz ? " AT TIME ZONE 'UTC')" : "", id);
		ck_assert_msg(v && strcmp(v, types[i].pgtext) == 0, "row %d %s %s: PostgreSQL has "
			      "\"%s\", want \"%s\"", id, types[i].col, types[i].mytype, v,
			      types[i].pgtext);
		free(v);
	}
	char *nulls = ls_testpg_query1(dst.pg, "shop", "SELECT count(*) FROM shop.types t WHERE id = 3"
		" AND num_nulls(VARIADIC ARRAY(SELECT value FROM jsonb_each_text(to_jsonb(t))"
		" WHERE key <> 'id')) = %d", NTYPES);
	ck_assert_msg(nulls && strcmp(nulls, "1") == 0, "row 3 is not NULL in every column");
	free(nulls);
}

/* The pipeline stopped: the daemon exited or reports "failed". */
static bool pipeline_failed(void *ctx)
{
	if (!ls_testd_running(ctx, NULL))
		return true;
	json_t *st = ls_testd_get(ctx, "/status");
	const char *ps = json_string_value(json_object_get(st, "pipeline_state"));
	bool failed = ps && strcmp(ps, "failed") == 0;
	json_decref(st);
	return failed;
}

START_TEST(e2e_mariadb_types_round_trip_to_postgres_and_zero_date_stops)
{
	make_types_table();
	insert_types_row(1, false);              /* through the snapshot */
	struct ls_testd *d = ls_testd_new();
	write_config(d, true, NULL);
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
	insert_types_row(2, false);              /* through the binlog */
	insert_types_row(3, true);
	wait_types_row(d, 3);
	check_types_row(1);
	check_types_row(2);

	/* PostgreSQL has no zero date: the pipeline stops, naming the row */
	ls_testmy_exec(src.my, "shop", "SET sql_mode = ''; INSERT INTO types (id, c_date) "
		       "VALUES (9, '0000-00-00')");
	ck_assert_msg(ls_test_wait_until(pipeline_failed, d, 60000),
		      "the pipeline kept running after a zero date; log:\n%s", ls_testd_log_tail(d));
	const char *log = ls_testd_log_tail(d);
	ck_assert_msg(strstr(log, "shop.types") && strstr(log, "column c_date") &&
		      strstr(log, "(id)=(9)") && strstr(log, "zero date"),
		      "the error does not name table, column and key:\n%s", log);
	char *nine = ls_testpg_query1(dst.pg, "shop", "SELECT count(*) FROM shop.types WHERE id = 9");
	ck_assert_str_eq(nine, "0");
	free(nine);
	ls_testd_free(d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("e2e_mysql");
	const struct {
		const char *name;
		void (*setup)(void);
		const TTest *fn;
	} cases[] = {
		{ "my_my", setup_my_my, e2e_mariadb_to_mariadb_converges_under_load },
		{ "my_pg", setup_my_pg, e2e_mariadb_to_postgres_converges_under_load },
		{ "pg_my", setup_pg_my, e2e_postgres_to_mariadb_converges_under_load },
		{ "types", setup_my_pg, e2e_mariadb_types_round_trip_to_postgres_and_zero_date_stops },
		{ "my_pg_kill9", setup_my_pg, e2e_mariadb_to_postgres_survives_kill9_and_source_restart },
		{ "my_my_kill9", setup_my_my, e2e_mariadb_to_mariadb_survives_kill9 },
		{ "pg_my_kill9", setup_pg_my, e2e_postgres_to_mariadb_survives_kill9 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_add_checked_fixture(tc, cases[i].setup, teardown);
		tcase_set_timeout(tc, 900);
		tcase_add_test(tc, cases[i].fn);
		suite_add_tcase(s, tc);
	}
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
