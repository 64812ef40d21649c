/* Cutover across engines (PostgreSQL <-> MariaDB), real servers:
 *  - the counters step's two halves work across engines: a PostgreSQL
 *    sequence's next value raises a MariaDB AUTO_INCREMENT and the other
 *    way round, never lowering one, and a column without a counter on the
 *    other side stops with LS_CUTOVER_NO naming it;
 *  - drift checks of a PostgreSQL -> MariaDB pipeline compare each PostgreSQL
 *    value with the MariaDB column lockstep made for it (booleans, numerics
 *    with and without scale, doubles, text, varchar, char, bytea, dates,
 *    timestamps with and without time zone, time, interval, uuid, json,
 *    jsonb, inet; NULLs, quotes, backslashes, non-ASCII; text and uuid
 *    keys): clean after replication, a row changed behind lockstep's back
 *    found by key, and a column MariaDB cannot show alike (real) refused by
 *    name;
 *  - a cutover from PostgreSQL to MariaDB, and one from MariaDB to
 *    PostgreSQL, under an application load that follows the switch, then a
 *    rollback after more writes on the new side:
 *    every row the application committed on either side is on both, no id
 *    is handed out twice (the sequence and AUTO_INCREMENT carried each way),
 *    and the old side serves again. */
#include <check.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "connectors/mysql/my_cutover.h"
#include "connectors/postgres/pg_cutover.h"
#include "cutover.h"

#include "tests/helpers/testcut.h"
#include "tests/helpers/testd.h"
#include "tests/helpers/testsrv.h"
#include "tests/helpers/testutil.h"

static struct ls_testpg *src;
static struct ls_testmy *dst;
static struct ls_testd *d;

static void setup(void)
{
	src = ls_testpg_start(NULL);
	dst = ls_testmy_start(NULL);
	ls_testpg_exec(src, "postgres", "CREATE DATABASE shop");
	ls_testpg_exec(src, "shop",
		"CREATE ROLE app LOGIN;"
		"CREATE TABLE orders (id serial PRIMARY KEY, v text, n int);"
		"CREATE TABLE items (id int PRIMARY KEY, v text);"
		"GRANT SELECT, INSERT, UPDATE, DELETE ON orders, items TO app;"
		"GRANT USAGE ON SEQUENCE orders_id_seq TO app;"
		"INSERT INTO orders (v, n) SELECT 'seed', g FROM generate_series(1, 200) g;"
		"INSERT INTO items SELECT g, 'i' || g FROM generate_series(1, 50) g;"
		/* ids taken and never used: the sequence runs ahead of max(id) */
		"SELECT setval('orders_id_seq', 260);");
	/* the new side's schema and account, made by the operator: PostgreSQL's
	 * schema public is MariaDB's database public */
	ls_testmy_exec(dst, "mysql", "CREATE DATABASE public");
	ls_testmy_exec(dst, "public", "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY,"
		       " v LONGTEXT, n INT) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin");
	ls_testmy_exec(dst, "public", "CREATE TABLE items (id INT PRIMARY KEY, v LONGTEXT)"
		       " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin");
	ls_testmy_exec(dst, "public", "CREATE USER app@'%%'");
	ls_testmy_exec(dst, "public", "GRANT SELECT, INSERT, UPDATE, DELETE ON public.orders TO"
		       " app@'%%'");
	ls_testmy_exec(dst, "public", "GRANT SELECT, INSERT, UPDATE, DELETE ON public.items TO"
		       " app@'%%'");
}

static void teardown(void)
{
	if (d)
		ls_testd_stop(d, 30000);
	ls_testd_free(d);
	d = NULL;
	ls_testmy_stop(dst);
	ls_testpg_stop(src);
}

/* ---- comparing ------------------------------------------------------------------------------ */

/* count:sum(id):sum(n), the same text on both engines */
static char *checksum(void *side, const char *table, const char *where)
{
	const char *n = strcmp(table, "orders") == 0 ? "n" : "0";
	if (side == src)
		return ls_testpg_query1(src, "shop", "SELECT count(*) || ':' || coalesce(sum(id), 0) ||"
					" ':' || coalesce(sum(%s), 0) FROM %s WHERE %s", n, table, where);
	return ls_testmy_query1(dst, "public", "SELECT CONCAT(COUNT(*), ':', COALESCE(SUM(id), 0),"
				" ':', COALESCE(SUM(%s), 0)) FROM %s WHERE %s", n, table, where);
}

static void assert_equal(const char *table, const char *where)
{
	ls_testcut_assert_equal(d, checksum, src, dst, table, where);
}

static long pg_long(const char *sql)
{
	char *s = ls_testpg_query1(src, "shop", "%s", sql);
	long v = s ? atol(s) : -1;
	free(s);
	return v;
}

static long my_long(const char *sql)
{
	char *s = ls_testmy_query1(dst, "public", "%s", sql);
	long v = s ? atol(s) : -1;
	free(s);
	return v;
}

static struct ls_relation *rel(const char *schema, const char *name)
{
	struct ls_relation *r = ls_relation_new(0);
	r->schema = strdup(schema);
	r->name = strdup(name);
	return r;
}

START_TEST(counters_cross_engines_both_ways)
{
	struct ls_cutover_conn *pg = NULL, *my = NULL;
	struct ls_err err = {0};
	ck_assert_msg(ls_pg_cutover_ops.open(ls_testpg_conninfo(src, "shop"), &pg, &err) == 0,
		      "%s", err.msg);
	ck_assert_msg(ls_my_cutover_ops.open(ls_testmy_conninfo(dst, "public"), &my, &err) == 0,
		      "%s", err.msg);
	struct ls_relation *orders = rel("public", "orders"), *items = rel("public", "items");
	const struct ls_relation *const tabs[2] = { orders, items };

	/* PostgreSQL -> MariaDB: the sequence is at 260, so 261 comes next */
	struct ls_cutover_seq *seqs = NULL;
	int n = 0;
	ck_assert_msg(ls_pg_cutover_ops.counters(pg, tabs, 2, NULL, &seqs, &n, &err) == 0, "%s",
		      err.msg);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(seqs[0].owner, "public.orders.id");
	ck_assert_str_eq(seqs[0].value, "261");
	ck_assert_int_eq(ls_my_cutover_ops.raise(my, seqs, n, true, &err), 0);   /* dry run */
	ck_assert_int_eq(my_long("SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE"
				 " TABLE_SCHEMA = 'public' AND TABLE_NAME = 'orders'"), 1);
	ck_assert_msg(ls_my_cutover_ops.raise(my, seqs, n, false, &err) == 0, "%s", err.msg);
	ls_testmy_exec(dst, "public", "INSERT INTO orders (v, n) VALUES ('new', 1)");
	ck_assert_int_eq(my_long("SELECT MAX(id) FROM orders"), 261);
	free(seqs);

	/* MariaDB -> PostgreSQL (a rollback's way): 262 next there */
	ck_assert_msg(ls_my_cutover_ops.counters(my, tabs, 2, NULL, &seqs, &n, &err) == 0, "%s",
		      err.msg);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(seqs[0].owner, "public.orders.id");
	ck_assert_str_eq(seqs[0].value, "262");
	ck_assert_msg(ls_pg_cutover_ops.raise(pg, seqs, n, false, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(pg_long("SELECT nextval('orders_id_seq')"), 262);
	/* never lowered: an older value changes nothing */
	snprintf(seqs[0].value, sizeof seqs[0].value, "5");
	ck_assert_int_eq(ls_pg_cutover_ops.raise(pg, seqs, n, false, &err), 0);
	ck_assert_int_eq(pg_long("SELECT nextval('orders_id_seq')"), 263);
	ck_assert_int_eq(ls_my_cutover_ops.raise(my, seqs, n, false, &err), 0);
	ls_testmy_exec(dst, "public", "INSERT INTO orders (v, n) VALUES ('new', 2)");
	ck_assert_int_eq(my_long("SELECT MAX(id) FROM orders"), 262);
	/* a column without a counter on the other side */
	snprintf(seqs[0].owner, sizeof seqs[0].owner, "public.items.id");
	ck_assert_int_eq(ls_pg_cutover_ops.raise(pg, seqs, n, false, &err), LS_CUTOVER_NO);
	ck_assert_msg(strstr(err.msg, "public.items.id has no sequence"), "%s", err.msg);
	ck_assert_int_eq(ls_my_cutover_ops.raise(my, seqs, n, false, &err), LS_CUTOVER_NO);
	ck_assert_msg(strstr(err.msg, "has no AUTO_INCREMENT column"), "%s", err.msg);
	free(seqs);
	ls_relation_free(orders);
	ls_relation_free(items);
	ls_pg_cutover_ops.close(pg);
	ls_my_cutover_ops.close(my);
}
END_TEST

/* Every PostgreSQL type the MariaDB target maps and drift can compare. */
static const char KINDS[] =
	"CREATE TABLE kinds (id int PRIMARY KEY, b boolean, s smallint, big bigint,"
	"  n numeric(10,2), nn numeric, d double precision, t text, vc varchar(20), c char(5),"
	"  by bytea, dt date, ts timestamp, ts3 timestamp(3), tz timestamptz, tm time,"
	"  iv interval, u uuid, j jsonb, js json, ip inet);"
	"INSERT INTO kinds SELECT g, g %% 2 = 0, -g, g * 10000000000, g * 1.25, g / 7.0,"
	"  (ARRAY[g * 0.5, 1e20, 1.5e-7, 0.1::float8 + 0.2, -2.5e300, 123456789012345678, 1e-300,"
	"  1e-15, 1e-16, 1.2345678901234567e-10, 1e15, -0.000123])[1 + g %% 12], 'text ' || g || E' \\\\ \" '' é', 'vc' || g, 'c' || g,"
	"  decode(md5(g::text), 'hex'), date '2024-02-28' + g,"
	"  timestamp '2024-01-01 10:00:00.123456' + g * interval '1 hour',"
	"  timestamp '2024-01-01 10:00:00.5' + g * interval '1 min',"
	"  timestamptz '2024-01-01 00:00:00+02' + g * interval '1 s', time '10:00:00.25' + g * interval '1 s',"
	"  g * interval '1 day 2 hours', md5(g::text)::uuid, jsonb_build_object('g', g, 'a', 'x'),"
	"  '{\"k\": 1}', ('10.0.0.' || g)::inet FROM generate_series(1, 40) g;"
	"INSERT INTO kinds (id) VALUES (100);"
	"CREATE TABLE tkey (k text PRIMARY KEY, v int);"
	"INSERT INTO tkey SELECT (ARRAY['a', 'B', 'é', 'a b', 'Z'])[1 + g %% 5] || g, g"
	"  FROM generate_series(1, 60) g;"
	"CREATE TABLE ukey (u uuid PRIMARY KEY, v int);"
	"INSERT INTO ukey SELECT md5(g::text)::uuid, g FROM generate_series(1, 60) g;"
	"CREATE TABLE flt (id int PRIMARY KEY, r real);"
	"INSERT INTO flt VALUES (1, 0.1);";

static char *drift_ctl(const char *args, int *rc)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "drift --check %s 2>&1", args);
	*rc = ls_testcut_ctl(d, cmd, NULL);
	return strdup(ls_testcut_ctl_text());
}

static bool kinds_copied(void *ctx)
{
	(void)ctx;
	char *n = ls_testmy_query1(dst, "public", "SELECT COUNT(*) FROM kinds WHERE id = 100");
	bool ok = n && strcmp(n, "1") == 0;
	free(n);
	return ok;
}

START_TEST(drift_from_postgres_to_mariadb)
{
	ls_testpg_exec(src, "shop", KINDS);
	d = ls_testcut_daemon("postgres", ls_testpg_conninfo(src, "shop"), "mysql",
			      ls_testmy_conninfo(dst, "public"), "public.*", "true", "");
	ck_assert_msg(ls_test_wait_until(kinds_copied, NULL, 60000), "kinds not copied; log:\n%s",
		      ls_testd_log_tail(d));
	/* changes through the stream too, not only the snapshot's copy */
	ls_testpg_exec(src, "shop", "UPDATE kinds SET t = t || '!', tz = tz + interval '1 day',"
		       " b = NOT b WHERE id %% 3 = 0; DELETE FROM tkey WHERE v = 7");
	assert_equal("items", "TRUE");
	const char *tables[] = { "public.kinds", "public.tkey", "public.ukey", "public.items" };
	for (int i = 0; i < 4; i++) {
		int rc = -1;
		char *out = NULL;
		/* the stream's last changes may still be on their way: a check
		 * compares at its markers' positions, so it is clean once they land */
		for (int tries = 0; tries < 20 && rc != 0; tries++) {
			free(out);
			out = drift_ctl(tables[i], &rc);
		}
		ck_assert_msg(rc == 0, "drift --check %s exited %d:\n%s\nlog:\n%s", tables[i], rc,
			      out, ls_testd_log_tail(d));
		free(out);
	}
	/* a row changed behind lockstep's back is found by its key */
	ls_testmy_exec(dst, "public", "UPDATE kinds SET vc = 'behind' WHERE id = 5");
	int rc;
	char *out = drift_ctl("public.kinds --json", &rc);
	ck_assert_msg(rc == 1, "drift --check exited %d, want 1:\n%s", rc, out);
	json_t *doc = json_loads(out, 0, NULL);
	ck_assert_msg(doc != NULL, "%s", out);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "drift_rows")), 1);
	ck_assert_msg(strstr(out, "[\\\"5\\\"]") != NULL, "the key is not named: %s", out);
	json_decref(doc);
	free(out);
	/* a type MariaDB shows otherwise is refused by name */
	out = drift_ctl("public.flt", &rc);
	ck_assert_int_eq(rc, 2);
	ck_assert_msg(strstr(out, "column r (real) cannot be checked against MySQL"), "%s", out);
	free(out);
}
END_TEST

/* ---- the application's load ------------------------------------------------------------------ */

static PGconn *pg_app(void)
{
	return ls_testcut_pg_app(src, "shop");
}

static MYSQL *my_app(void)
{
	MYSQL *m = mysql_init(NULL);
	if (m && mysql_real_connect(m, "127.0.0.1", "app", "", "public",
				    (unsigned)ls_testmy_port(dst), NULL, 0))
		return m;
	if (m)
		mysql_close(m);
	return NULL;
}

/* Which engine is the old side of the cutover under test. */
static bool my_is_old;

/* One insert on the side the flag points to; its id, 0 on a failure
 * (counted; a duplicate key too). */
static long insert_one(struct ls_testcut_load *l, PGconn **pg, MYSQL **my, bool on_new)
{
	if (on_new != my_is_old) {
		if (*my == NULL && (*my = my_app()) == NULL)
			return 0;
		if (mysql_query(*my, "INSERT INTO orders (v, n) VALUES ('load', 1)") == 0)
			return (long)mysql_insert_id(*my);
		if (mysql_errno(*my) == 1062)
			atomic_fetch_add(&l->dups, 1);
		mysql_close(*my);   /* fenced or ended: a new session next time */
		*my = NULL;
		return 0;
	}
	if (*pg == NULL && (*pg = pg_app()) == NULL)
		return 0;
	PGresult *r = PQexec(*pg, "INSERT INTO orders (v, n) VALUES ('load', 1) RETURNING id");
	long id = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : 0;
	const char *st = id ? NULL : PQresultErrorField(r, PG_DIAG_SQLSTATE);
	if (st && strcmp(st, "23505") == 0)
		atomic_fetch_add(&l->dups, 1);
	PQclear(r);
	if (id == 0 && PQstatus(*pg) != CONNECTION_OK) {
		PQfinish(*pg);
		*pg = NULL;
	}
	return id;
}

static void *load_main(void *arg)
{
	struct ls_testcut_load *l = arg;
	PGconn *pg = NULL;
	MYSQL *my = NULL;
	mysql_thread_init();
	while (!atomic_load(&l->stop)) {
		bool on_new = ls_testcut_load_wants_new(l);
		long id = insert_one(l, &pg, &my, on_new);
		if (id > 0) {
			ls_testcut_load_note(l, id, on_new);
			/* an application's pace, so the slice's drift checks end */
			nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
			continue;
		}
		atomic_fetch_add(&l->failures, 1);
		nanosleep(&(struct timespec){ .tv_nsec = 2000000 }, NULL);   /* retry backoff */
	}
	PQfinish(pg);
	if (my)
		mysql_close(my);
	mysql_thread_end();
	return NULL;
}

/* Every id the load saw committed is in orders on both sides. */
static void assert_has_all(struct ls_testcut_load *l)
{
	size_t n;
	long *ids = ls_testcut_load_ids(l, &n);
	size_t size = n * 21 + 16, o = 0;
	char *list = malloc(size);
	ck_assert_ptr_nonnull(list);
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(list + o, size - o, "%s%ld", i ? "," : "", ids[i]);
	if (n == 0)
		snprintf(list, size, "0");
	free(ids);
	char *pg = ls_testpg_query1(src, "shop", "SELECT count(DISTINCT id) FROM orders WHERE "
				    "id IN (%s)", list);
	char *my = ls_testmy_query1(dst, "public", "SELECT COUNT(DISTINCT id) FROM orders WHERE "
				    "id IN (%s)", list);
	free(list);
	ck_assert_msg(pg && my && atol(pg) == (long)n && atol(my) == (long)n, "of the %zu rows the "
		      "load committed PostgreSQL holds %s, MariaDB %s", n, pg ? pg : "?",
		      my ? my : "?");
	free(pg);
	free(my);
}

/* Cuts public.orders over from the old side to the new under the load,
 * then rolls back after more writes on the new side. */
static void cutover_and_rollback(const char *new_name)
{
	struct ls_testcut_load l = { .ids = NULL };
	ls_testcut_load_start(&l, d, load_main);
	ls_testcut_load_wait(&l, false, 100);
	json_t *doc = NULL;
	int rc = ls_testcut_ctl(d, "cutover --tables public.orders --json --timeout 60", &doc);
	json_t *pr = ls_testcut_proc(doc);
	ck_assert_msg(rc == 0, "cutover exited %d: %s; log:\n%s", rc, ls_testcut_str(pr, "reason"),
		      ls_testd_log_tail(d));
	ck_assert_str_eq(ls_testcut_str(doc, "phase"), "cut_over");
	static const char *const steps[] = { "ready", "fence", "drain", "sequences", "verify",
					     "switch", "reverse" };
	ls_testcut_assert_steps_ok(pr, steps, 7);
	ls_testcut_assert_report(pr);
	fprintf(stderr, "cutover to %s: writes fenced %.3f s\n", new_name,
		json_number_value(json_object_get(pr, "write_unavailable_seconds")));
	json_decref(doc);
	ls_testcut_load_wait(&l, true, 100);        /* the application writes to the new side */
	ck_assert_int_eq(atomic_load(&l.dups), 0);
	rc = ls_testcut_ctl(d, "rollback --json --timeout 60", &doc);
	pr = ls_testcut_proc(doc);
	ck_assert_msg(rc == 0, "rollback exited %d: %s; log:\n%s", rc, ls_testcut_str(pr, "reason"),
		      ls_testd_log_tail(d));
	ck_assert_str_eq(ls_testcut_str(doc, "phase"), "rolled_back");
	ls_testcut_assert_report(pr);
	json_decref(doc);
	ls_testcut_load_wait(&l, false, 100);       /* back on the old side */
	ls_testcut_load_stop(&l);
	ck_assert_int_eq(atomic_load(&l.dups), 0);
	ck_assert_int_gt(atomic_load(&l.ok_new), 0);
	assert_equal("orders", "TRUE");             /* forward again: the new side follows */
	assert_has_all(&l);
	fprintf(stderr, "cutover to %s: load committed %ld on the old side, %ld on the new, %ld "
		"failures\n", new_name, atomic_load(&l.ok_old), atomic_load(&l.ok_new),
		atomic_load(&l.failures));
	ls_testcut_load_free(&l);
}

START_TEST(cutover_and_rollback_postgres_to_mariadb)
{
	my_is_old = false;
	/* types that come back from MariaDB as others (TINYINT(1), DATETIME(6) in
	 * UTC, CHAR(36), VARCHAR(43)); each direction's checks compare them */
	ls_testpg_exec(src, "shop", "ALTER TABLE orders ADD paid boolean DEFAULT true,"
		       " ADD at timestamptz DEFAULT now(), ADD ref uuid DEFAULT gen_random_uuid(),"
		       " ADD ip inet DEFAULT '10.0.0.1'");
	ls_testmy_exec(dst, "public", "ALTER TABLE orders ADD paid TINYINT(1) DEFAULT 0,"
		       " ADD at DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6), ADD ref CHAR(36) DEFAULT"
		       " (UUID()), ADD ip VARCHAR(43) DEFAULT '10.0.0.2'");
	d = ls_testcut_daemon("postgres", ls_testpg_conninfo(src, "shop"), "mysql",
			      ls_testmy_conninfo(dst, "public"), "public.*", "touch @DIR@/switched",
			      "");
	cutover_and_rollback("MariaDB");
}
END_TEST

/* The other way: MariaDB is the old side, PostgreSQL the new one (its
 * tables made by the operator, empty, orders with its sequence). */
START_TEST(cutover_and_rollback_mariadb_to_postgres)
{
	my_is_old = true;
	ls_testpg_exec(src, "shop", "TRUNCATE orders, items");
	ls_testmy_exec(dst, "public", "INSERT INTO orders (v, n) SELECT 'seed', seq FROM seq_1_to_200");
	ls_testmy_exec(dst, "public", "INSERT INTO items SELECT seq, CONCAT('i', seq) FROM seq_1_to_50");
	d = ls_testcut_daemon("mysql", ls_testmy_conninfo(dst, "public"), "postgres",
			      ls_testpg_conninfo(src, "shop"), "public.*", "touch @DIR@/switched", "");
	cutover_and_rollback("PostgreSQL");
}
END_TEST

/* A slice whose types would not come back is refused before anything
 * changes: the reverse pipeline would fail after the switch. */
START_TEST(cutover_refuses_a_slice_that_cannot_come_back)
{
	ls_testpg_exec(src, "shop", "CREATE TABLE flags (id int PRIMARY KEY, tags int[]);"
		       "INSERT INTO flags VALUES (1, '{1,2}'), (2, NULL)");
	d = ls_testcut_daemon("postgres", ls_testpg_conninfo(src, "shop"), "mysql",
			      ls_testmy_conninfo(dst, "public"), "public.*", "touch @DIR@/switched",
			      "");
	assert_equal("items", "TRUE");
	int rc = ls_testcut_ctl(d, "cutover --tables public.flags 2>&1", NULL);
	ck_assert_int_eq(rc, 2);
	ck_assert_msg(strstr(ls_testcut_ctl_text(), "the reverse direction could not apply the "
			     "slice: public.flags column tags: its MySQL column (JSON) comes "
			     "back as jsonb, which a integer[] column does not take"),
		      "lockstepctl printed: %s", ls_testcut_ctl_text());
	/* nothing changed: the application still writes to the old side */
	PGconn *c = pg_app();
	ck_assert_ptr_nonnull(c);
	PGresult *r = PQexec(c, "INSERT INTO orders (v, n) VALUES ('after', 2)");
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
	json_t *j = ls_testd_get(d, "/cutover");
	ck_assert_str_eq(ls_testcut_str(j, "phase"), "idle");
	json_decref(j);
	assert_equal("orders", "TRUE");
}
END_TEST

int main(void)
{
	const struct ls_testutil_case cases[] = {
		{ "counters", counters_cross_engines_both_ways },
		{ "drift", drift_from_postgres_to_mariadb },
		{ "pg_to_mariadb", cutover_and_rollback_postgres_to_mariadb },
		{ "mariadb_to_pg", cutover_and_rollback_mariadb_to_postgres },
		{ "round_trip", cutover_refuses_a_slice_that_cannot_come_back },
	};
	return ls_testutil_run_cases("cutover_cross", cases, 5, setup, teardown, 300);
}
