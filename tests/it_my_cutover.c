/* Integration tests for MariaDB's side of a cutover (connectors/mysql/
 * my_cutover) against real MariaDB 10.11 servers (tests/helpers/testsrv.h),
 * driven through ls_my_cutover_ops as lib/cutover drives it.  One server
 * for the suite (a second one where `from` and `to` must differ); each test
 * works in a database and with application accounts of its own. */
#include <check.h>
#include <inttypes.h>
#include <mysql.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectors/mysql/my_cutover.h"
#include "tests/helpers/testsrv.h"
#include "tests/helpers/testutil.h"

static struct ls_testmy *my;
static char db[64], app[64];
static int seq_no;
static const struct ls_cutover_ops *ops = &ls_my_cutover_ops;

#define ER_TABLEACCESS_DENIED 1142
#define ER_OPTION_PREVENTS_STATEMENT 1290

static void suite_setup(void)
{
	my = ls_testmy_start(NULL);
}

static void suite_teardown(void)
{
	ls_testmy_stop(my);
}

static void test_setup(void)
{
	seq_no++;
	snprintf(db, sizeof db, "cut_%d_%d", (int)getpid(), seq_no);
	snprintf(app, sizeof app, "app_%d_%d", (int)getpid(), seq_no);
	ls_testmy_exec(my, NULL, "SET GLOBAL read_only = OFF");   /* a failed test's leftover */
	ls_testmy_exec(my, NULL, "CREATE DATABASE %s", db);
	ls_testmy_exec(my, db, "CREATE TABLE t1 (id INT AUTO_INCREMENT PRIMARY KEY, v INT)");
	ls_testmy_exec(my, db, "CREATE TABLE t2 (id INT PRIMARY KEY, v INT)");
	ls_testmy_exec(my, NULL, "CREATE USER %s@'%%'", app);
}

static void test_teardown(void)
{
}

static struct ls_relation *rel(const char *schema, const char *name)
{
	struct ls_relation *r = ls_relation_new(0);
	ck_assert_ptr_nonnull(r);
	r->schema = strdup(schema);
	r->name = strdup(name);
	return r;
}

static struct ls_cutover_conn *open_conn(struct ls_testmy *srv)
{
	struct ls_cutover_conn *c = NULL;
	struct ls_err err = { 0 };
	ck_assert_msg(ops->open(ls_testmy_conninfo(srv, db), &c, &err) == 0, "open: %s", err.msg);
	return c;
}

/* A session as account `user` (no password) in the test's database. */
static MYSQL *as_user(struct ls_testmy *srv, const char *user)
{
	MYSQL *m = mysql_init(NULL);
	ck_assert_ptr_nonnull(m);
	ck_assert_msg(mysql_real_connect(m, "127.0.0.1", user, "", db,
					 (unsigned)ls_testmy_port(srv), NULL, 0) != NULL,
		      "connect as %s: %s", user, mysql_error(m));
	return m;
}

/* mysql_errno of one statement (0: it worked). */
static unsigned try_sql(MYSQL *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static unsigned try_sql(MYSQL *m, const char *fmt, ...)
{
	char sql[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	if (mysql_query(m, sql) != 0)
		return mysql_errno(m);
	mysql_free_result(mysql_store_result(m));
	return 0;
}

/* SHOW GRANTS FOR account, every line (malloc'd). */
static char *grants_of(const char *account)
{
	MYSQL *m = as_user(my, "root");
	char sql[256];
	snprintf(sql, sizeof sql, "SHOW GRANTS FOR %s", account);
	ck_assert_msg(mysql_query(m, sql) == 0, "%s", mysql_error(m));
	MYSQL_RES *r = mysql_store_result(m);
	char *out = calloc(1, 1);
	size_t n = 0;
	for (MYSQL_ROW row; (row = mysql_fetch_row(r)) != NULL;) {
		out = realloc(out, n + strlen(row[0]) + 2);
		n += (size_t)sprintf(out + n, "%s\n", row[0]);
	}
	mysql_free_result(r);
	mysql_close(m);
	return out;
}

static char *app_grants(void)
{
	char a[96];
	snprintf(a, sizeof a, "%s@'%%'", app);
	return grants_of(a);
}

static char *q1(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *q1(const char *fmt, ...)
{
	char sql[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	return ls_testmy_query1(my, db, "%s", sql);
}

/* ---- fence by revoke -------------------------------------------------------------- */

START_TEST(mycut_fence_revokes_table_grants_and_unfence_restores)
{
	ls_testmy_exec(my, NULL, "GRANT SELECT, INSERT, UPDATE, DELETE, DROP ON %s.t1 TO %s@'%%'",
		       db, app);
	ls_testmy_exec(my, NULL, "GRANT SELECT, INSERT (id, v), UPDATE (v) ON %s.t2 TO %s@'%%'",
		       db, app);
	char *before = app_grants();
	MYSQL *a = as_user(my, app);
	ck_assert_uint_eq(try_sql(a, "INSERT INTO t1 (v) VALUES (1)"), 0);
	ck_assert_uint_eq(try_sql(a, "INSERT INTO t2 VALUES (1, 1)"), 0);
	mysql_close(a);

	struct ls_cutover_conn *c = open_conn(my);
	struct ls_relation *t1 = rel(db, "t1"), *t2 = rel(db, "t2");
	const struct ls_relation *tables[] = { t1, t2 };
	const char *roles[] = { app };
	char *undo = NULL;
	uint64_t ended = 99;
	struct ls_err err = { 0 };
	ck_assert_msg(ops->fence(c, roles, 1, tables, 2, false, &undo, &ended, &err) == 0, "%s",
		      err.msg);
	ck_assert_ptr_nonnull(undo);
	ck_assert_uint_eq(ended, 0);
	/* exactly what was held: table-level writes (not SELECT) and column grants */
	char want[512];
	snprintf(want, sizeof want, "GRANT INSERT, UPDATE, DELETE, DROP ON `%s`.`t1` TO '%s'@'%%';\n"
		 "GRANT INSERT (`id`, `v`), UPDATE (`v`) ON `%s`.`t2` TO '%s'@'%%';\n", db, app, db,
		 app);
	ck_assert_str_eq(undo, want);

	/* the app reads but writes nothing, neither by table nor by column grant */
	a = as_user(my, app);
	ck_assert_uint_eq(try_sql(a, "SELECT * FROM t1"), 0);
	ck_assert_uint_eq(try_sql(a, "INSERT INTO t1 (v) VALUES (2)"), ER_TABLEACCESS_DENIED);
	ck_assert_uint_eq(try_sql(a, "UPDATE t1 SET v = 3"), ER_TABLEACCESS_DENIED);
	ck_assert_uint_eq(try_sql(a, "DELETE FROM t1"), ER_TABLEACCESS_DENIED);
	ck_assert_uint_eq(try_sql(a, "TRUNCATE TABLE t1"), ER_TABLEACCESS_DENIED);
	ck_assert_uint_ne(try_sql(a, "INSERT INTO t2 VALUES (2, 2)"), 0);
	ck_assert_uint_ne(try_sql(a, "UPDATE t2 SET v = 5"), 0);
	mysql_close(a);
	LS_CK_STR_FREE(q1("SELECT COUNT(*) FROM t1"), "1");
	LS_CK_STR_FREE(q1("SELECT GROUP_CONCAT(v) FROM t2"), "1");

	ck_assert_msg(ops->unfence(c, undo, &err) == 0, "%s", err.msg);
	char *after = app_grants();
	ck_assert_str_eq(after, before);
	a = as_user(my, app);
	ck_assert_uint_eq(try_sql(a, "INSERT INTO t1 (v) VALUES (4)"), 0);
	ck_assert_uint_eq(try_sql(a, "UPDATE t2 SET v = 6"), 0);
	mysql_close(a);
	free(after);
	free(before);
	free(undo);
	ops->close(c);
	ls_relation_free(t1);
	ls_relation_free(t2);
}
END_TEST

START_TEST(mycut_fence_refuses_db_level_and_role_grants_changing_nothing)
{
	ls_testmy_exec(my, NULL, "GRANT SELECT, INSERT ON %s.t1 TO %s@'%%'", db, app);
	ls_testmy_exec(my, NULL, "GRANT UPDATE ON %s.* TO %s@'%%'", db, app);
	char *before = app_grants();
	struct ls_cutover_conn *c = open_conn(my);
	struct ls_relation *t1 = rel(db, "t1");
	const struct ls_relation *tables[] = { t1 };
	const char *roles[] = { app };
	char *undo = NULL;
	uint64_t ended = 0;
	struct ls_err err = { 0 };
	MYSQL *a = as_user(my, app);
	ck_assert_int_eq(ops->fence(c, roles, 1, tables, 1, false, &undo, &ended, &err),
			 LS_CUTOVER_NO);
	ck_assert_ptr_null(undo);
	char want[128];
	snprintf(want, sizeof want, "'%s'@'%%'", app);
	ck_assert_msg(strstr(err.msg, want) && strstr(err.msg, "UPDATE ON `") &&
		      strstr(err.msg, "read_only") && strstr(err.msg, ".t1"), "%s", err.msg);
	char *after = app_grants();
	ck_assert_str_eq(after, before);
	free(after);
	/* the session was left alone and still writes */
	ck_assert_uint_eq(try_sql(a, "INSERT INTO t1 (v) VALUES (1)"), 0);

	/* a write grant reached through a role cannot be revoked from the account */
	char role[80];
	snprintf(role, sizeof role, "r_%s", app);
	ls_testmy_exec(my, NULL, "REVOKE UPDATE ON %s.* FROM %s@'%%'", db, app);
	ls_testmy_exec(my, NULL, "CREATE ROLE %s", role);
	ls_testmy_exec(my, NULL, "GRANT DELETE ON %s.t1 TO %s", db, role);
	ls_testmy_exec(my, NULL, "GRANT %s TO %s@'%%'", role, app);
	free(before);
	before = app_grants();
	ck_assert_int_eq(ops->fence(c, roles, 1, tables, 1, false, &undo, &ended, &err),
			 LS_CUTOVER_NO);
	ck_assert_ptr_null(undo);
	ck_assert_msg(strstr(err.msg, role) && strstr(err.msg, want), "%s", err.msg);
	after = app_grants();
	ck_assert_str_eq(after, before);
	ck_assert_uint_eq(try_sql(a, "INSERT INTO t1 (v) VALUES (2)"), 0);
	mysql_close(a);
	free(after);
	free(before);
	ops->close(c);
	ls_relation_free(t1);
}
END_TEST

/* ---- fence by read_only, sessions ------------------------------------------------------ */

START_TEST(mycut_read_only_fence_blocks_app_not_lockstep)
{
	ls_testmy_exec(my, NULL, "GRANT SELECT, INSERT ON %s.* TO %s@'%%'", db, app);
	struct ls_cutover_conn *c = open_conn(my);
	struct ls_relation *t1 = rel(db, "t1");
	const struct ls_relation *tables[] = { t1 };
	const char *roles[] = { app };
	char *undo = NULL;
	uint64_t ended = 0;
	struct ls_err err = { 0 };
	ck_assert_msg(ops->fence(c, roles, 1, tables, 1, true, &undo, &ended, &err) == 0, "%s",
		      err.msg);
	ck_assert_str_eq(undo, "SET GLOBAL read_only = OFF;\n");
	LS_CK_STR_FREE(ls_testmy_query1(my, NULL, "SELECT @@global.read_only"), "1");
	MYSQL *a = as_user(my, app);
	ck_assert_uint_eq(try_sql(a, "INSERT INTO t1 (v) VALUES (1)"), ER_OPTION_PREVENTS_STATEMENT);
	ck_assert_uint_eq(try_sql(a, "SELECT * FROM t1"), 0);
	/* lockstep's account (root: READ_ONLY ADMIN) still writes */
	ls_testmy_exec(my, db, "INSERT INTO t1 (v) VALUES (2)");
	ck_assert_msg(ops->unfence(c, undo, &err) == 0, "%s", err.msg);
	LS_CK_STR_FREE(ls_testmy_query1(my, NULL, "SELECT @@global.read_only"), "0");
	ck_assert_uint_eq(try_sql(a, "INSERT INTO t1 (v) VALUES (3)"), 0);
	LS_CK_STR_FREE(q1("SELECT GROUP_CONCAT(v ORDER BY v) FROM t1"), "2,3");
	mysql_close(a);
	free(undo);
	ops->close(c);
	ls_relation_free(t1);
}
END_TEST

START_TEST(mycut_fence_ends_app_sessions_only)
{
	ls_testmy_exec(my, NULL, "GRANT SELECT, INSERT ON %s.t1 TO %s@'%%'", db, app);
	MYSQL *a1 = as_user(my, app), *a2 = as_user(my, app), *root = as_user(my, "root");
	struct ls_cutover_conn *c = open_conn(my);
	struct ls_relation *t1 = rel(db, "t1");
	const struct ls_relation *tables[] = { t1 };
	const char *roles[] = { app };
	char *undo = NULL;
	uint64_t ended = 0;
	struct ls_err err = { 0 };
	ck_assert_msg(ops->fence(c, roles, 1, tables, 1, false, &undo, &ended, &err) == 0, "%s",
		      err.msg);
	ck_assert_uint_eq(ended, 2);
	LS_CK_STR_FREE(q1("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '%s'",
			  app), "0");
	ck_assert_uint_ne(try_sql(a1, "SELECT 1"), 0);
	ck_assert_uint_ne(try_sql(a2, "SELECT 1"), 0);
	ck_assert_uint_eq(try_sql(root, "SELECT 1"), 0);
	ck_assert_msg(ops->unfence(c, undo, &err) == 0, "%s", err.msg);
	/* nothing left to end: a second fence ends none */
	free(undo);
	ck_assert_msg(ops->fence(c, roles, 1, tables, 1, false, &undo, &ended, &err) == 0, "%s",
		      err.msg);
	ck_assert_uint_eq(ended, 0);
	ck_assert_int_eq(ops->unfence(c, undo, &err), 0);
	free(undo);
	mysql_close(a1);
	mysql_close(a2);
	mysql_close(root);
	ops->close(c);
	ls_relation_free(t1);
}
END_TEST

/* ---- positions and the write watch ---------------------------------------------------------- */

START_TEST(mycut_position_seq_grows_with_writes)
{
	struct ls_cutover_conn *c = open_conn(my);
	struct ls_pos p1, p2;
	struct ls_err err = { 0 };
	ck_assert_msg(ops->position(c, &p1, &err) == 0, "%s", err.msg);
	ls_testmy_exec(my, db, "INSERT INTO t1 (v) VALUES (1)");
	ck_assert_msg(ops->position(c, &p2, &err) == 0, "%s", err.msg);
	ck_assert_uint_gt(p2.seq, p1.seq);
	LS_CK_STR_FREE(ls_testmy_query1(my, NULL, "SELECT @@global.gtid_binlog_pos"), p2.text);
	ck_assert_str_ne(p1.text, p2.text);
	/* a rotation moves to the next file number */
	ls_testmy_exec(my, NULL, "FLUSH BINARY LOGS");
	struct ls_pos p3;
	ck_assert_msg(ops->position(c, &p3, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(p3.seq >> 32, (p2.seq >> 32) + 1);
	/* the reverse direction starts from the same position */
	struct ls_pos at;
	ck_assert_int_eq(ops->reverse_prepare(c, ls_testmy_conninfo(my, db), "s", "p", NULL, 0, &at,
					      &err), 0);
	ck_assert_uint_eq(at.seq, p3.seq);
	ck_assert_str_eq(at.text, p3.text);
	ck_assert_int_eq(ops->reverse_drop(c, "s", "p", &err), 0);
	ops->close(c);
}
END_TEST

START_TEST(mycut_watch_counts_slice_writes_after_position)
{
	ls_testmy_exec(my, db, "INSERT INTO t1 (v) VALUES (1)");     /* before: not counted */
	struct ls_cutover_conn *c = open_conn(my);
	struct ls_relation *t1 = rel(db, "t1");
	const struct ls_relation *tables[] = { t1 };
	struct ls_err err = { 0 };
	ck_assert_msg(ops->watch_start(c, "w", "p", &err) == 0, "%s", err.msg);
	struct ls_pos p;
	ck_assert_msg(ops->position(c, &p, &err) == 0, "%s", err.msg);
	uint64_t n = 99;
	char first[256];
	ck_assert_msg(ops->watch_count(c, tables, 1, p.seq, &n, first, sizeof first, &err) == 0,
		      "%s", err.msg);
	ck_assert_uint_eq(n, 0);
	ck_assert_str_eq(first, "");

	ls_testmy_exec(my, db, "INSERT INTO t2 VALUES (1, 1)");      /* another table */
	ls_testmy_exec(my, db, "INSERT INTO t1 (v) VALUES (2)");
	ck_assert_msg(ops->watch_count(c, tables, 1, p.seq, &n, first, sizeof first, &err) == 0,
		      "%s", err.msg);
	ck_assert_uint_eq(n, 1);
	char want[128];
	snprintf(want, sizeof want, "on %s.t1 at ", db);
	ck_assert_msg(strncmp(first, "Write_rows", 10) == 0 && strstr(first, want), "%s", first);

	/* updates, deletes and TRUNCATE count too, across a binlog rotation */
	ls_testmy_exec(my, NULL, "FLUSH BINARY LOGS");
	ls_testmy_exec(my, db, "UPDATE t1 SET v = v + 1");
	ls_testmy_exec(my, db, "DELETE FROM t1 WHERE v = 2");
	ls_testmy_exec(my, db, "TRUNCATE TABLE t1");
	ls_testmy_exec(my, db, "TRUNCATE TABLE t2");
	ck_assert_msg(ops->watch_count(c, tables, 1, p.seq, &n, first, sizeof first, &err) == 0,
		      "%s", err.msg);
	ck_assert_uint_eq(n, 4);
	/* from a later position only the later ones */
	struct ls_pos p2;
	ck_assert_int_eq(ops->position(c, &p2, &err), 0);
	ls_testmy_exec(my, db, "INSERT INTO t1 (v) VALUES (3), (4)");
	ck_assert_int_eq(ops->watch_count(c, tables, 1, p2.seq, &n, first, sizeof first, &err), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(ops->watch_stop(c, &err), 0);
	ops->close(c);
	ls_relation_free(t1);
}
END_TEST

/* ---- sequences ----------------------------------------------------------------------------------- */

START_TEST(mycut_sequences_carry_auto_increment_never_lower)
{
	struct ls_testmy *to_srv = ls_testmy_start("server_id=2");
	ls_testmy_exec(to_srv, NULL, "CREATE DATABASE %s", db);
	ls_testmy_exec(to_srv, db, "CREATE TABLE t1 (id INT AUTO_INCREMENT PRIMARY KEY, v INT)");
	ls_testmy_exec(to_srv, db, "CREATE TABLE t2 (id INT PRIMARY KEY, v INT)");
	ls_testmy_exec(to_srv, db, "CREATE TABLE t3 (id BIGINT AUTO_INCREMENT PRIMARY KEY)"
		       " AUTO_INCREMENT = 5000");
	ls_testmy_exec(my, db, "CREATE TABLE t3 (id BIGINT AUTO_INCREMENT PRIMARY KEY)");
	/* ids handed out and given back: the counter runs ahead of max(id) */
	ls_testmy_exec(my, db, "INSERT INTO t1 (v) SELECT seq FROM seq_1_to_40");
	ls_testmy_exec(my, db, "DELETE FROM t1 WHERE id > 10");
	ls_testmy_exec(my, db, "INSERT INTO t3 VALUES (), ()");
	ls_testmy_exec(my, db, "CREATE SEQUENCE s START WITH 1 CACHE 0");
	ls_testmy_exec(to_srv, db, "CREATE SEQUENCE s START WITH 1 CACHE 0");
	for (int i = 1; i <= 7; i++) {
		char want[16];
		snprintf(want, sizeof want, "%d", i);
		LS_CK_STR_FREE(ls_testmy_query1(my, db, "SELECT NEXTVAL(s)"), want);
	}

	struct ls_cutover_conn *from = open_conn(my), *to = open_conn(to_srv);
	struct ls_relation *t1 = rel(db, "t1"), *t2 = rel(db, "t2"), *t3 = rel(db, "t3");
	const struct ls_relation *tables[] = { t1, t2, t3 };
	struct ls_cutover_seq *seqs = NULL;
	int n = 0;
	struct ls_err err = { 0 };
	char extra[96];
	snprintf(extra, sizeof extra, " %s.s ", db);

	/* dry run: reported, nothing changed */
	ck_assert_msg(ops->sequences(from, to, tables, 3, extra, true, &seqs, &n, &err) == 0, "%s",
		      err.msg);
	ck_assert_int_eq(n, 3);
	char name[96], owner[96];
	snprintf(name, sizeof name, "%s.t1", db);
	snprintf(owner, sizeof owner, "%s.t1.id", db);
	ck_assert_str_eq(seqs[0].name, name);
	ck_assert_str_eq(seqs[0].owner, owner);
	char *next1 = ls_testmy_query1(my, NULL, "SELECT AUTO_INCREMENT FROM"
				       " information_schema.TABLES WHERE TABLE_SCHEMA = '%s' AND"
				       " TABLE_NAME = 't1'", db);
	ck_assert_int_ge(atoi(next1), 41);
	ck_assert_str_eq(seqs[0].value, next1);
	ck_assert_str_eq(seqs[1].value, "3");
	snprintf(name, sizeof name, "%s.s", db);
	ck_assert_str_eq(seqs[2].name, name);
	ck_assert_str_eq(seqs[2].value, "8");
	free(seqs);
	LS_CK_STR_FREE(ls_testmy_query1(to_srv, NULL, "SELECT AUTO_INCREMENT FROM"
					" information_schema.TABLES WHERE TABLE_SCHEMA = '%s' AND"
					" TABLE_NAME = 't1'", db), "1");

	ck_assert_msg(ops->sequences(from, to, tables, 3, extra, false, &seqs, &n, &err) == 0, "%s",
		      err.msg);
	ck_assert_int_eq(n, 3);
	free(seqs);
	/* the new side's first inserts do not collide with ids the old side gave */
	ls_testmy_exec(to_srv, db, "INSERT INTO t1 (v) VALUES (0)");
	LS_CK_STR_FREE(ls_testmy_query1(to_srv, db, "SELECT MAX(id) FROM t1"), next1);
	free(next1);
	ls_testmy_exec(to_srv, db, "INSERT INTO t3 VALUES ()");     /* 5000 was higher: kept */
	LS_CK_STR_FREE(ls_testmy_query1(to_srv, db, "SELECT MAX(id) FROM t3"), "5000");
	LS_CK_STR_FREE(ls_testmy_query1(to_srv, db, "SELECT NEXTVAL(s)"), "8");

	/* a table missing on the new side is a failed check */
	ls_testmy_exec(to_srv, db, "DROP TABLE t1");
	ck_assert_msg(ops->sequences(from, to, tables, 3, NULL, true, &seqs, &n, &err) ==
		      LS_CUTOVER_NO, "%s", err.msg);
	ck_assert_msg(strstr(err.msg, "t1") && strstr(err.msg, "does not exist"), "%s", err.msg);
	free(seqs);
	ops->close(from);
	ops->close(to);
	ls_relation_free(t1);
	ls_relation_free(t2);
	ls_relation_free(t3);
	ls_testmy_stop(to_srv);
}
END_TEST

/* ---- plan checks ------------------------------------------------------------------------------- */

START_TEST(mycut_check_roles_refuses_missing_own_and_super)
{
	struct ls_cutover_conn *c = open_conn(my);
	struct ls_err err = { 0 };
	char role[96], who[160];
	ck_assert_int_eq(ops->whoami(c, who, sizeof who, &err), 0);
	LS_CK_STR_FREE(ls_testmy_query1(my, NULL, "SELECT CURRENT_USER()"), who);
	ck_assert_int_eq(strncmp(who, "root@", 5), 0);
	const char *ok[] = { app };
	ck_assert_msg(ops->check_roles(c, ok, 1, &err) == 0, "%s", err.msg);
	snprintf(role, sizeof role, "%s@%%", app);
	const char *ok2[] = { role };
	ck_assert_msg(ops->check_roles(c, ok2, 1, &err) == 0, "%s", err.msg);

	snprintf(role, sizeof role, "%s@elsewhere", app);
	const char *missing[] = { app, role };
	ck_assert_int_eq(ops->check_roles(c, missing, 2, &err), LS_CUTOVER_NO);
	ck_assert_msg(strstr(err.msg, role) && strstr(err.msg, "does not exist"), "%s", err.msg);
	const char *own[] = { "root" };
	ck_assert_int_eq(ops->check_roles(c, own, 1, &err), LS_CUTOVER_NO);
	ck_assert_msg(strstr(err.msg, "lockstep's own"), "%s", err.msg);
	char sup[96];
	snprintf(sup, sizeof sup, "sup_%s", app);
	ls_testmy_exec(my, NULL, "CREATE USER %s@'%%'", sup);
	ls_testmy_exec(my, NULL, "GRANT SUPER ON *.* TO %s@'%%'", sup);
	const char *super[] = { app, sup };
	ck_assert_int_eq(ops->check_roles(c, super, 2, &err), LS_CUTOVER_NO);
	ck_assert_msg(strstr(err.msg, sup) && strstr(err.msg, "SUPER"), "%s", err.msg);
	ops->close(c);
}
END_TEST

START_TEST(mycut_origin_needs_session_server_id)
{
	struct ls_cutover_conn *c = open_conn(my);
	struct ls_err err = { 0 };
	bool exists = false;
	ck_assert_int_eq(ops->origin_exists(c, "lockstep_shop", &exists, &err), 0);
	ck_assert(exists);
	ops->close(c);
	/* an account that may not set its session server_id */
	ls_testmy_exec(my, NULL, "GRANT SELECT ON %s.* TO %s@'%%'", db, app);
	char ci[256];
	snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=%s database=%s", ls_testmy_port(my),
		 app, db);
	ck_assert_msg(ops->open(ci, &c, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(ops->origin_exists(c, "lockstep_shop", &exists, &err), 0);
	ck_assert(!exists);
	ck_assert_msg(strstr(err.msg, "server_id") && strstr(err.msg, "lockstep_shop"), "%s",
		      err.msg);
	ops->close(c);
}
END_TEST

START_TEST(mycut_open_never_shows_the_password)
{
	struct ls_cutover_conn *c = (struct ls_cutover_conn *)1;
	struct ls_err err = { 0 };
	char ci[256];
	snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=%s password=sekrit123 database=%s",
		 ls_testmy_port(my), app, db);
	ck_assert_int_eq(ops->open(ci, &c, &err), -1);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(err.msg, "127.0.0.1") && !strstr(err.msg, "sekrit123"), "%s", err.msg);
	ck_assert_int_eq(ops->open("host=127.0.0.1 pasword=sekrit123", &c, &err), -1);
	ck_assert_msg(strstr(err.msg, "pasword") && !strstr(err.msg, "sekrit123"), "%s", err.msg);
	ops->close(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("my_cutover");
	TCase *tc = tcase_create("mariadb");
	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_add_checked_fixture(tc, test_setup, test_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, mycut_fence_revokes_table_grants_and_unfence_restores);
	tcase_add_test(tc, mycut_fence_refuses_db_level_and_role_grants_changing_nothing);
	tcase_add_test(tc, mycut_read_only_fence_blocks_app_not_lockstep);
	tcase_add_test(tc, mycut_fence_ends_app_sessions_only);
	tcase_add_test(tc, mycut_position_seq_grows_with_writes);
	tcase_add_test(tc, mycut_watch_counts_slice_writes_after_position);
	tcase_add_test(tc, mycut_sequences_carry_auto_increment_never_lower);
	tcase_add_test(tc, mycut_check_roles_refuses_missing_own_and_super);
	tcase_add_test(tc, mycut_origin_needs_session_server_id);
	tcase_add_test(tc, mycut_open_never_shows_the_password);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
