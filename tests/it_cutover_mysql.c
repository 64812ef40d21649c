/* Cutover and rollback through the real lockstepd between two MariaDB
 * servers (direct buffer), with an application load that writes as its own
 * account ("app", table-level grants) and retries on failure:
 *  - under the load, `lockstepctl cutover --tables shop.orders` revokes the
 *    app's writes on the old side and ends its sessions, drains, raises the
 *    new side's AUTO_INCREMENT counter to the old one's, verifies, runs the
 *    switch hook (the load follows a flag file to the new side) and starts
 *    the reverse pipeline from the new side's GTID position at the drain;
 *    the new side holds every row; shop.items keeps replicating; no
 *    replication loop (lockstep's apply writes with its own session
 *    server_id, which the other direction's source skips: applied changes
 *    counted exactly); `lockstepctl rollback` brings every row written on
 *    the new side back;
 *  - a write after the fence (root keeps writing) stops the procedure with
 *    the fence lifted and nothing lost;
 *  - an application account that writes through a database-level grant
 *    cannot be fenced by revokes: the procedure stops at the fence with the
 *    account and the grant named, the old side still serving. */
#include <check.h>
#include <jansson.h>
#include <mysql.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/helpers/testcut.h"
#include "tests/helpers/testd.h"
#include "tests/helpers/testsrv.h"
#include "tests/helpers/testutil.h"

static struct ls_testmy *src, *dst;
static struct ls_testd *d;

static const char *const SCHEMA[] = {
	"CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(32), n INT)"
	" ENGINE=InnoDB",
	"CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(32)) ENGINE=InnoDB",
	"CREATE USER app@'%'",
};

static void make_schema(struct ls_testmy *my)
{
	ls_testmy_exec(my, "mysql", "CREATE DATABASE shop");
	for (size_t i = 0; i < sizeof SCHEMA / sizeof *SCHEMA; i++)
		ls_testmy_exec(my, "shop", "%s", SCHEMA[i]);
	ls_testmy_exec(my, "shop", "GRANT SELECT, INSERT, UPDATE, DELETE ON shop.orders TO app@'%%'");
	ls_testmy_exec(my, "shop", "GRANT SELECT, INSERT, UPDATE, DELETE ON shop.items TO app@'%%'");
}

static void setup(void)
{
	src = ls_testmy_start(NULL);
	dst = ls_testmy_start("server_id=2");
	make_schema(src);
	make_schema(dst);   /* the new side's schema and accounts, made by the operator */
	ls_testmy_exec(src, "shop", "INSERT INTO orders (v, n) SELECT 'seed', seq FROM seq_1_to_200");
	ls_testmy_exec(src, "shop", "INSERT INTO items SELECT seq, CONCAT('i', seq) FROM seq_1_to_50");
	/* ids taken and given back: the old side's counter runs ahead of max(id) */
	ls_testmy_exec(src, "shop", "INSERT INTO orders (v, n) SELECT 'gone', seq FROM seq_1_to_30");
	ls_testmy_exec(src, "shop", "DELETE FROM orders WHERE v = 'gone'");
}

static void teardown(void)
{
	if (d)
		ls_testd_stop(d, 30000);
	ls_testd_free(d);
	d = NULL;
	ls_testmy_stop(dst);
	ls_testmy_stop(src);
}

static void start_daemon_with(const char *switch_hook, const char *extra)
{
	d = ls_testcut_daemon("mysql", ls_testmy_conninfo(src, "shop"), "mysql",
			      ls_testmy_conninfo(dst, "shop"), "shop.*", switch_hook, extra);
}

static void start_daemon(const char *switch_hook)
{
	start_daemon_with(switch_hook, "");
}

/* ---- the application's load ---------------------------------------------------------- */

static MYSQL *app_connect(struct ls_testmy *my)
{
	MYSQL *m = mysql_init(NULL);
	unsigned timeout = 5;
	mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	if (mysql_real_connect(m, "127.0.0.1", "app", "", "shop", (unsigned)ls_testmy_port(my),
			       NULL, 0))
		return m;
	mysql_close(m);
	return NULL;
}

/* Inserts one order at a time on the side the flag file points to; a
 * failure (fenced, session killed) is retried, a duplicate key counted. */
static void *load_main(void *arg)
{
	struct ls_testcut_load *l = arg;
	MYSQL *m = NULL;
	bool on_new = false;
	while (!atomic_load(&l->stop)) {
		bool want_new = ls_testcut_load_wants_new(l);
		if (m == NULL || want_new != on_new) {
			if (m)
				mysql_close(m);
			on_new = want_new;
			if ((m = app_connect(on_new ? dst : src)) == NULL) {
				nanosleep(&(struct timespec){ .tv_nsec = 5000000 }, NULL);   /* retry backoff */
				continue;
			}
		}
		if (mysql_query(m, "INSERT INTO orders (v, n) VALUES ('load', 1)") == 0) {
			ls_testcut_load_note(l, (long)mysql_insert_id(m), on_new);
			/* an application's pace, not a bulk load: the slice's drift
			 * check must be able to finish */
			nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
			continue;
		}
		unsigned e = mysql_errno(m);
		if (e == 1062)
			atomic_fetch_add(&l->dups, 1);
		atomic_fetch_add(&l->failures, 1);
		if (e == 2006 || e == 2013 || e == 1927) {   /* the session was ended */
			mysql_close(m);
			m = NULL;
		}
		nanosleep(&(struct timespec){ .tv_nsec = 2000000 }, NULL);   /* retry backoff */
	}
	if (m)
		mysql_close(m);
	return NULL;
}

static void load_start(struct ls_testcut_load *l)
{
	ls_testcut_load_start(l, d, load_main);
}

static long qlong(struct ls_testmy *my, const char *sql)
{
	char *s = ls_testmy_query1(my, "shop", "%s", sql);
	long v = s ? atol(s) : -1;
	free(s);
	return v;
}

/* Every id the load saw committed is on my. */
static void assert_has_all(struct ls_testcut_load *l, struct ls_testmy *my, const char *side)
{
	size_t n, missing = 0;
	long first = 0, *ids = ls_testcut_load_ids(l, &n);
	for (size_t i = 0; i < n; i++) {
		char sql[96];
		snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM orders WHERE id = %ld", ids[i]);
		if (qlong(my, sql) != 1 && missing++ == 0)
			first = ids[i];
	}
	free(ids);
	ck_assert_msg(missing == 0, "the %s side lacks %zu of the %zu rows the load committed "
		      "(first: id %ld)", side, missing, n, first);
}

/* ---- comparing ------------------------------------------------------------------------------ */

static char *checksum(void *side, const char *table, const char *where)
{
	struct ls_testmy *my = side;
	return ls_testmy_query1(my, "shop", "SELECT CONCAT(COUNT(*), ':', COALESCE(SUM(CRC32("
				"CONCAT_WS('|', id, v%s))), 0)) FROM %s WHERE %s",
				strcmp(table, "orders") == 0 ? ", n" : "", table, where);
}

static void assert_equal(const char *table, const char *where)
{
	ls_testcut_assert_equal(d, checksum, src, dst, table, where);
}

struct has_row {
	struct ls_testmy *my;
	const char *table;
	long id;
};

static bool row_arrived(void *ctx)
{
	struct has_row *h = ctx;
	char sql[96];
	snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s WHERE id = %ld", h->table, h->id);
	return qlong(h->my, sql) == 1;
}

/* Writes row id into table on `from` (as root) and waits for it on `to`:
 * everything `from` committed before has gone through that direction. */
static void barrier(struct ls_testmy *from, struct ls_testmy *to, const char *table, long id)
{
	ls_testmy_exec(from, "shop", "INSERT INTO %s (id, v) VALUES (%ld, 'barrier')", table, id);
	struct has_row h = { to, table, id };
	ck_assert_msg(ls_test_wait_until(row_arrived, &h, 60000), "barrier %s %ld did not arrive; "
		      "log:\n%s", table, id, ls_testd_log_tail(d));
}

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

static long auto_increment(struct ls_testmy *my)
{
	return qlong(my, "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE"
		     " TABLE_SCHEMA = 'shop' AND TABLE_NAME = 'orders'");
}

/* The old side serves: the application can write there. */
static void assert_old_serves(struct ls_testcut_load *l)
{
	ls_testcut_load_wait(l, false, 20);
	ck_assert_msg(access(l->flag, F_OK) != 0, "the switch flag exists");
	MYSQL *m = app_connect(src);
	ck_assert_ptr_nonnull(m);
	ck_assert_msg(mysql_query(m, "INSERT INTO orders (v, n) VALUES ('after', 2)") == 0,
		      "the app cannot write to the old side: %s", mysql_error(m));
	mysql_close(m);
}

static void assert_nothing_lost(struct ls_testcut_load *l)
{
	ls_testcut_load_stop(l);
	assert_has_all(l, src, "old");
	assert_equal("orders", "TRUE");
	assert_has_all(l, dst, "new");
	ck_assert_int_eq(atomic_load(&l->dups), 0);
}

/* ---- tests ------------------------------------------------------------------------------------ */

static void cut_over(struct ls_testcut_load *l)
{
	json_t *doc = NULL;
	int rc = ls_testcut_ctl(d, "cutover --tables shop.orders --json --timeout 60", &doc);
	json_t *pr = ls_testcut_proc(doc);
	ck_assert_msg(rc == 0, "cutover exited %d: %s; log:\n%s", rc,
		      ls_testcut_str(pr, "reason"), ls_testd_log_tail(d));
	ck_assert_str_eq(ls_testcut_str(doc, "phase"), "cut_over");
	const char *names[] = { "ready", "fence", "drain", "sequences", "verify", "switch", "reverse" };
	ls_testcut_assert_steps_ok(pr, names, 7);
	double window = json_number_value(json_object_get(pr, "write_unavailable_seconds"));
	ck_assert_msg(window > 0 && window < 60, "fenced window %.3f s", window);
	json_t *seq = json_array_get(json_object_get(pr, "sequences"), 0);
	ck_assert_str_eq(ls_testcut_str(seq, "name"), "shop.orders");
	ck_assert(json_is_true(json_object_get(seq, "carried")));
	ls_testcut_assert_report(pr);
	json_decref(doc);
	ck_assert_int_gt(atomic_load(&l->failures), 0);   /* the load did hit the fence */
	fprintf(stderr, "mysql cutover: writes fenced %.3f s (reported)\n", window);
}

START_TEST(cutover_and_rollback_under_load)
{
	start_daemon("touch @DIR@/switched");
	struct ls_testcut_load l = { .ids = NULL };
	load_start(&l);
	ls_testcut_load_wait(&l, false, 100);
	cut_over(&l);
	/* the new side's counter is at least the old one's: no id is handed out
	 * twice.  The old side is read first: after the fence its counter moves
	 * only with rows the reverse brings from the new side. */
	long old_next = auto_increment(src);
	ck_assert_int_ge(auto_increment(dst), old_next);
	ls_testcut_load_wait(&l, true, 100);
	ck_assert_int_eq(atomic_load(&l.dups), 0);
	long max_old = qlong(src, "SELECT MAX(id) FROM orders");
	char where[64];
	snprintf(where, sizeof where, "id <= %ld", max_old);
	assert_equal("orders", where);   /* the new side has every row of the old */
	ls_testmy_exec(src, "shop", "UPDATE items SET v = 'changed' WHERE id <= 10");
	assert_equal("items", "TRUE");   /* the rest keeps replicating forward */

	/* no loop: what one direction applies is not sent back by the other */
	ls_testcut_load_stop(&l);
	assert_equal("orders", "TRUE");   /* the reverse brought the new side's rows back */
	long long r0 = rev_applied_changes(), f0 = fwd_applied_changes();
	for (int i = 1; i <= 20; i++)     /* root on the old side: not fenced */
		ls_testmy_exec(src, "shop", "INSERT INTO orders VALUES (%d, 'su-old', 0)", 1000000 + i);
	assert_equal("orders", "TRUE");
	for (int i = 1; i <= 15; i++)
		ls_testmy_exec(dst, "shop", "INSERT INTO orders VALUES (%d, 'su-new', 0)", 2000000 + i);
	assert_equal("orders", "TRUE");
	barrier(src, dst, "items", 900001);
	barrier(dst, src, "orders", 900002);
	barrier(src, dst, "items", 900003);
	ck_assert_int_eq(fwd_applied_changes() - f0, 20 + 2);
	ck_assert_int_eq(rev_applied_changes() - r0, 15 + 1);
	json_t *st = ls_testd_get(d, "/status");
	ck_assert_int_ge(ls_testcut_num(json_object_get(st, "source"), "skipped_origin_txns"), 1);
	ck_assert_str_eq(ls_testcut_str(st, "pipeline_state"), "streaming");
	json_decref(st);

	/* more writes on the new side, then back */
	load_start(&l);
	ls_testcut_load_wait(&l, true, 100);
	json_t *doc = NULL;
	int rc = ls_testcut_ctl(d, "rollback --json --timeout 60", &doc);
	json_t *pr = ls_testcut_proc(doc);
	ck_assert_msg(rc == 0, "rollback exited %d: %s; log:\n%s", rc,
		      ls_testcut_str(pr, "reason"), ls_testd_log_tail(d));
	ck_assert_str_eq(ls_testcut_str(doc, "phase"), "rolled_back");
	ls_testcut_assert_report(pr);
	json_decref(doc);
	ls_testcut_load_wait(&l, false, 100);       /* back on the old side */
	ls_testcut_load_stop(&l);
	assert_has_all(&l, src, "old");   /* every row written on the new side too */
	ck_assert_int_eq(atomic_load(&l.dups), 0);
	assert_equal("orders", "TRUE");   /* forward again: the new side follows */
	assert_has_all(&l, dst, "new");
	ls_testcut_load_free(&l);
}
END_TEST

static bool cut_over_and_streaming(void *ctx)
{
	(void)ctx;
	json_t *j = ls_testd_get(d, "/cutover");
	bool ok = j && strcmp(ls_testcut_str(j, "phase"), "cut_over") == 0 &&
		  strcmp(ls_testcut_str(json_object_get(j, "reverse"), "state"), "streaming") == 0;
	json_decref(j);
	return ok;
}

/* lockstepd stops inside the rollback window while the application writes
 * to the new side: after the restart the reverse source resumes from its
 * saved GTID (its own state directory) and the rollback loses nothing. */
START_TEST(cutover_survives_a_daemon_restart)
{
	start_daemon("touch @DIR@/switched");
	struct ls_testcut_load l = { .ids = NULL };
	load_start(&l);
	ls_testcut_load_wait(&l, false, 50);
	cut_over(&l);
	ls_testcut_load_wait(&l, true, 50);
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testcut_load_wait(&l, true, 200);
	ls_testd_start(d);
	ck_assert_msg(ls_test_wait_until(cut_over_and_streaming, NULL, 60000), "not cut over "
		      "with the reverse streaming after the restart; log:\n%s", ls_testd_log_tail(d));
	json_t *doc = NULL;
	int rc = ls_testcut_ctl(d, "rollback --json --timeout 60", &doc);
	ck_assert_msg(rc == 0, "rollback exited %d: %s; log:\n%s", rc,
		      ls_testcut_str(ls_testcut_proc(doc), "reason"), ls_testd_log_tail(d));
	json_decref(doc);
	ls_testcut_load_wait(&l, false, 50);
	ls_testcut_load_stop(&l);
	assert_has_all(&l, src, "old");
	ck_assert_int_eq(atomic_load(&l.dups), 0);
	assert_equal("orders", "TRUE");
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
	for (int i = 1; !atomic_load(&w->stop); i++) {
		if (ls_testmy_try_exec(src, "shop", "INSERT INTO items VALUES (%d, 'su')",
				       500000 + i) == 0)
			atomic_fetch_add(&w->n, 1);
		nanosleep(&(struct timespec){ .tv_nsec = 20000000 }, NULL);   /* a steady trickle */
	}
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
	int rc = ls_testcut_ctl(d, "cutover --json", &doc);
	atomic_store(&w.stop, true);
	pthread_join(w.thread, NULL);
	json_t *pr = ls_testcut_proc(doc);
	ck_assert_msg(rc == 1, "cutover exited %d, want 1: %s", rc, ls_testcut_str(pr, "reason"));
	ck_assert_msg(strncmp(ls_testcut_str(pr, "reason"), "fence:", 6) == 0 &&
		      strstr(ls_testcut_str(pr, "reason"), "after the fence") != NULL,
		      "reason: %s", ls_testcut_str(pr, "reason"));
	json_t *fence = json_object_get(pr, "fence");
	ck_assert(json_is_true(json_object_get(fence, "applied")));
	ck_assert(json_is_true(json_object_get(fence, "lifted")));
	ls_testcut_assert_report(pr);
	json_decref(doc);
	ck_assert_int_gt(atomic_load(&w.n), 0);
	assert_old_serves(&l);
	assert_equal("items", "TRUE");
	assert_nothing_lost(&l);
	ls_testcut_load_free(&l);
}
END_TEST

START_TEST(cutover_refuses_a_fence_revokes_cannot_hold)
{
	ls_testmy_exec(src, "shop", "GRANT INSERT, UPDATE, DELETE ON shop.* TO app@'%%'");
	start_daemon("touch @DIR@/switched");
	struct ls_testcut_load l = { .ids = NULL };
	load_start(&l);
	ls_testcut_load_wait(&l, false, 50);
	json_t *doc = NULL;
	int rc = ls_testcut_ctl(d, "cutover --json", &doc);
	json_t *pr = ls_testcut_proc(doc);
	const char *why = ls_testcut_str(pr, "reason");
	ck_assert_msg(rc == 1, "cutover exited %d, want 1: %s", rc, why);
	ck_assert_msg(strncmp(why, "fence:", 6) == 0 && strstr(why, "app") != NULL &&
		      strstr(why, "read_only") != NULL, "reason: %s", why);
	ck_assert_str_eq(ls_testcut_str(doc, "phase"), "idle");
	ls_testcut_assert_report(pr);
	json_decref(doc);
	ck_assert_int_eq(qlong(src, "SELECT @@global.read_only"), 0);
	assert_old_serves(&l);
	assert_nothing_lost(&l);
	ls_testcut_load_free(&l);
}
END_TEST

/* The app's INSERT on the old side fails because the server is read-only. */
static bool app_write_fails_read_only(void)
{
	MYSQL *m = app_connect(src);
	ck_assert_ptr_nonnull(m);
	bool ro = mysql_query(m, "INSERT INTO items VALUES (990001, 'ro?')") != 0 &&
		  mysql_errno(m) == 1290;
	if (!ro)
		ls_testmy_exec(src, "shop", "DELETE FROM items WHERE id = 990001");
	mysql_close(m);
	return ro;
}

/* What revokes cannot fence (a database-level grant), fence = read_only
 * can: the whole old server turns read-only for the application (not for
 * lockstep's reverse apply), and the rollback turns it back. */
START_TEST(cutover_with_a_read_only_fence)
{
	ls_testmy_exec(src, "shop", "GRANT INSERT, UPDATE, DELETE ON shop.* TO app@'%%'");
	start_daemon_with("touch @DIR@/switched", "fence = read_only\n");
	struct ls_testcut_load l = { .ids = NULL };
	load_start(&l);
	ls_testcut_load_wait(&l, false, 50);
	cut_over(&l);
	ls_testcut_load_wait(&l, true, 50);
	ck_assert_int_eq(qlong(src, "SELECT @@global.read_only"), 1);
	ck_assert(app_write_fails_read_only());
	json_t *doc = NULL;
	int rc = ls_testcut_ctl(d, "rollback --json --timeout 60", &doc);
	ck_assert_msg(rc == 0, "rollback exited %d: %s; log:\n%s", rc,
		      ls_testcut_str(ls_testcut_proc(doc), "reason"), ls_testd_log_tail(d));
	json_decref(doc);
	ck_assert_int_eq(qlong(src, "SELECT @@global.read_only"), 0);
	ls_testcut_load_wait(&l, false, 50);
	ls_testcut_load_stop(&l);
	assert_has_all(&l, src, "old");
	ck_assert_int_eq(atomic_load(&l.dups), 0);
	ls_testcut_load_free(&l);
}
END_TEST

int main(void)
{
	const struct ls_testutil_case cases[] = {
		{ "cutover_rollback", cutover_and_rollback_under_load },
		{ "restart", cutover_survives_a_daemon_restart },
		{ "write_after_fence", cutover_stops_on_a_write_after_the_fence },
		{ "db_grant", cutover_refuses_a_fence_revokes_cannot_hold },
		{ "read_only", cutover_with_a_read_only_fence },
	};
	return ls_testutil_run_cases("cutover_mysql", cases, sizeof cases / sizeof cases[0], setup,
				     teardown, 600);
}
