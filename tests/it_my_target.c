/* Integration tests for the MySQL/MariaDB target (connectors/mysql) against
 * a real MariaDB 10.11 (tests/helpers/testsrv.h), driven through
 * ls_my_target_ops like the pipeline drives it.  One server for the suite;
 * each test works in a database of its own (also the relations' schema). */
#include <check.h>
#include <mysql.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectors/mysql/my_sql.h"
#include "connectors/mysql/my_target.h"
#include "connectors/mysql/my_tgt.h"
#include "tests/helpers/testsrv.h"
#include "tests/helpers/testchg.h"
#include "tests/helpers/testutil.h"

static struct ls_testmy *my;
static struct ls_arena A;
static char db[64];
static int db_seq;
static const struct ls_target_ops *ops = &ls_my_target_ops;

#define UNCH LS_TESTCHG_UNCH

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
	snprintf(db, sizeof db, "tgt_%d_%d", (int)getpid(), ++db_seq);
	ls_testmy_exec(my, NULL, "CREATE DATABASE %s", db);
	ls_arena_init(&A);
}

static void test_teardown(void)
{
	ls_arena_free(&A);
}

static char *q1(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *q1(const char *fmt, ...)
{
	char sql[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	return ls_testmy_query1(my, db, "%s", sql);
}

/* Asserts the first value of a query equals want (NULL = SQL NULL/no row). */
#define ck_q1(want, ...) LS_CK_STR_FREE(q1(__VA_ARGS__), want)

/* SHOW CREATE TABLE db.name (caller frees). */
static char *show_create(const char *name)
{
	MYSQL *m = mysql_init(NULL);
	ck_assert_ptr_nonnull(mysql_real_connect(m, "127.0.0.1", "root", "", db,
						 (unsigned)ls_testmy_port(my), NULL, 0));
	char sql[200];
	snprintf(sql, sizeof sql, "SHOW CREATE TABLE `%s`", name);
	ck_assert_msg(mysql_query(m, sql) == 0, "%s", mysql_error(m));
	MYSQL_RES *res = mysql_store_result(m);
	MYSQL_ROW row = mysql_fetch_row(res);
	ck_assert_ptr_nonnull(row);
	char *out = strdup(row[1]);
	mysql_free_result(res);
	mysql_close(m);
	return out;
}

static struct ls_testchg_commits commits;

static struct ls_config_target cfg;

static struct ls_target *open_target(bool create, enum ls_ddl_mode ddl, int batch_rows,
				     int batch_ms)
{
	cfg = (struct ls_config_target){
		.name = db, .type = LS_ENGINE_MYSQL,
		.conninfo = (char *)ls_testmy_conninfo(my, db),
		.create_tables = create, .ddl = ddl,
		.batch_rows = batch_rows, .batch_ms = batch_ms,
	};
	struct ls_target_opts o = { .pipeline = "shop", .cfg = &cfg,
				    .on_commit = ls_testchg_on_commit, .ctx = &commits };
	struct ls_target *t;
	struct ls_err err = { 0 };
	memset(&commits, 0, sizeof commits);
	ck_assert_msg(ops->open(&o, &t, &err) == 0, "open: %s", err.msg);
	return t;
}

/* the relations live in the test's database */
#define mkrel(id, name, replident, spec) ls_testchg_rel(id, db, name, replident, spec)
#define ins(r, ...) ls_testchg_ins(&A, r, __VA_ARGS__)
#define upd(r, old_kind, ...) ls_testchg_upd(&A, r, old_kind, __VA_ARGS__)
#define del(r, old_kind, ...) ls_testchg_del(&A, r, old_kind, __VA_ARGS__)

static struct ls_txn txn(uint64_t seq)
{
	struct ls_txn x = { .xid = seq };
	x.commit.seq = seq;
	snprintf(x.commit.text, sizeof x.commit.text, "binlog.000001:%llu",
		 (unsigned long long)seq);
	return x;
}

/* Applies one source transaction; returns the first failing call's rc. */
static int apply(struct ls_target *t, uint64_t seq, const struct ls_relation *r, int n,
		 const struct ls_change *chs, struct ls_err *err)
{
	struct ls_txn x = txn(seq);
	if (ops->begin(t, &x, err) < 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (ops->change(t, chs[i].op == LS_OP_TRUNCATE ? NULL : r, &chs[i], err) < 0)
			return -1;
	return ops->end(t, &x, (int64_t)seq * 10, err);
}

#define APPLY_OK(t, seq, r, ...)                                                    \
	do {                                                                        \
		struct ls_change chs_[] = { __VA_ARGS__ };                          \
		struct ls_err e_ = { 0 };                                           \
		ck_assert_msg(apply(t, seq, r, sizeof chs_ / sizeof chs_[0], chs_, &e_) == 0, \
			      "apply: %s", e_.msg);                                 \
	} while (0)

static void flush_ok(struct ls_target *t)
{
	struct ls_err err = { 0 };
	ck_assert_msg(ops->flush(t, &err) == 0, "flush: %s", err.msg);
}

static void relation_ok(struct ls_target *t, const struct ls_relation *r)
{
	struct ls_err err = { 0 };
	ck_assert_msg(ops->relation(t, r, &err) == 0, "relation: %s", err.msg);
}

/* ---- tables ------------------------------------------------------------------- */

START_TEST(mytarget_creates_table_from_mysql_relation)
{
	struct ls_target *t = open_target(true, LS_DDL_APPLY, 0, 0);
	struct ls_relation *r = mkrel(1, "items", 'd',
				      "id:int(11):k|code:varchar(40):k|price:decimal(12,2)|"
				      "kind:enum('a','b')|at:datetime(6)|flag:tinyint(1)|"
				      "img:blob|n:bigint(20) unsigned");
	struct ls_err err = { 0 };
	ck_assert_msg(ops->prepare_table(t, r, &err) == 0, "%s", err.msg);
	char *ddl = show_create("items");
	const char *want[] = { "`id` int(11) NOT NULL", "`code` varchar(40)", "`price` decimal(12,2)",
			       "`kind` enum('a','b')", "`at` datetime(6)", "`flag` tinyint(1)",
			       "`img` blob", "`n` bigint(20) unsigned", "PRIMARY KEY (`id`,`code`)",
			       "ENGINE=InnoDB", "utf8mb4" };
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		ck_assert_msg(strstr(ddl, want[i]), "missing %s in %s", want[i], ddl);
	free(ddl);
	/* a second target on the existing table checks it and accepts it */
	ops->free(t);
	t = open_target(false, LS_DDL_APPLY, 0, 0);
	ck_assert_msg(ops->relation(t, r, &err) == 0, "%s", err.msg);
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

START_TEST(mytarget_creates_table_from_postgres_relation)
{
	struct ls_target *t = open_target(true, LS_DDL_APPLY, 0, 0);
	struct ls_relation *r = mkrel(1, "orders", 'd',
				      "id:integer:k|name:text:k|total:numeric(12,2)|"
				      "at:timestamp with time zone|doc:jsonb|raw:bytea|u:uuid|"
				      "tags:integer[]|paid:boolean|note:text");
	relation_ok(t, r);
	char *ddl = show_create("orders");
	const char *want[] = { "`id` int(11) NOT NULL", "`name` varchar(255) NOT NULL",
			       "`total` decimal(12,2)", "`at` datetime(6)", "`doc` longtext",
			       "json_valid(`doc`)", "`raw` longblob", "`u` char(36)",
			       "`tags` longtext", "`paid` tinyint(1)", "`note` longtext",
			       "PRIMARY KEY (`id`,`name`)" };
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		ck_assert_msg(strstr(ddl, want[i]), "missing %s in %s", want[i], ddl);
	free(ddl);

	/* unknown type and keyless table: errors naming table and column */
	struct ls_err err = { 0 };
	struct ls_relation *bad = mkrel(2, "geo", 'd', "id:integer:k|shape:tsvector");
	ck_assert_int_eq(ops->relation(t, bad, &err), -1);
	ck_assert_msg(strstr(err.msg, "geo") && strstr(err.msg, "column shape") &&
		      strstr(err.msg, "tsvector"), "%s", err.msg);
	ck_assert(!err.retryable);
	ck_assert_msg(ops->reset(t, &err) == 0, "reset: %s", err.msg);
	struct ls_relation *nokey = mkrel(3, "nokey", 'd', "a:integer");
	ck_assert_int_eq(ops->relation(t, nokey, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "no primary key"));
	ops->free(t);
	ls_relation_free(r);
	ls_relation_free(bad);
	ls_relation_free(nokey);
}
END_TEST

START_TEST(mytarget_compat_mismatch_names_each_column)
{
	ls_testmy_exec(my, db, "CREATE TABLE c (id bigint PRIMARY KEY, v varchar(10), w int)");
	struct ls_target *t = open_target(false, LS_DDL_STOP, 0, 0);
	struct ls_relation *r = mkrel(1, "c", 'd', "id:integer:k|v:character varying(40)|"
				      "w:bigint|x:text");
	struct ls_err err = { 0 };
	ck_assert_int_eq(ops->relation(t, r, &err), -1);
	ck_assert_msg(strstr(err.msg, "column v is varchar(10)") &&
		      strstr(err.msg, "column w is int(11)") &&
		      strstr(err.msg, "column x (text) missing") && !strstr(err.msg, "column id"),
		      "%s", err.msg);
	ck_assert(!err.retryable);
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

/* ---- apply -------------------------------------------------------------------- */

START_TEST(mytarget_applies_insert_update_delete_truncate)
{
	struct ls_target *t = open_target(true, LS_DDL_APPLY, 0, 0);
	struct ls_relation *r = mkrel(1, "t", 'd', "id:integer:k|v:text|n:integer");
	APPLY_OK(t, 1, r, ins(r, "1", "a", "10"), ins(r, "2", "it's \\ `x`", NULL),
		 ins(r, "3", "c", "30"));
	APPLY_OK(t, 2, r, upd(r, 0, "2", "b", "20"), del(r, 'K', "3", NULL, NULL));
	flush_ok(t);
	ck_q1("1:a:10,2:b:20", "SELECT GROUP_CONCAT(id, ':', v, ':', n ORDER BY id) FROM t");
	APPLY_OK(t, 3, r, ins(r, "4", "it's \\ `x`", NULL));
	flush_ok(t);
	ck_q1("it's \\ `x`", "SELECT v FROM t WHERE id = 4");
	ck_q1(NULL, "SELECT n FROM t WHERE id = 4");
	struct ls_change tr = { .op = LS_OP_TRUNCATE, .nrelids = 1, .relids = &r->id };
	APPLY_OK(t, 4, r, tr, ins(r, "9", "after", "9"));
	flush_ok(t);
	ck_q1("9", "SELECT GROUP_CONCAT(id) FROM t");
	struct ls_target_stats st;
	ops->stats(t, &st);
	ck_assert_uint_eq(st.txns, 4);
	ck_assert_uint_eq(st.rows, 8);
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

START_TEST(mytarget_unchanged_columns_untouched)
{
	struct ls_target *t = open_target(true, LS_DDL_APPLY, 0, 0);
	struct ls_relation *r = mkrel(1, "big", 'd', "id:integer:k|doc:text|n:integer");
	APPLY_OK(t, 1, r, ins(r, "1", "large value", "1"));
	APPLY_OK(t, 2, r, upd(r, 0, "1", UNCH, "2"));
	APPLY_OK(t, 3, r, upd(r, 0, "1", UNCH, UNCH));   /* nothing to set */
	flush_ok(t);
	ck_q1("large value:2", "SELECT CONCAT(doc, ':', n) FROM big");
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

START_TEST(mytarget_key_update_uses_old_key)
{
	struct ls_target *t = open_target(true, LS_DDL_APPLY, 0, 0);
	struct ls_relation *r = mkrel(1, "k", 'd', "id:integer:k|v:text");
	APPLY_OK(t, 1, r, ins(r, "1", "a"), ins(r, "2", "b"));
	APPLY_OK(t, 2, r, upd(r, 'K', "1", NULL, "10", "a2"));
	flush_ok(t);
	ck_q1("2:b,10:a2", "SELECT GROUP_CONCAT(id, ':', v ORDER BY id) FROM k");
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

START_TEST(mytarget_replica_identity_full_matches_whole_row)
{
	struct ls_target *t = open_target(true, LS_DDL_APPLY, 0, 0);
	struct ls_relation *r = mkrel(1, "f", 'f', "a:integer|b:text");
	APPLY_OK(t, 1, r, ins(r, "1", "x"), ins(r, "1", "x"), ins(r, "2", NULL),
		 ins(r, "3", "y"));
	/* one of two identical rows goes; NULL matches NULL */
	APPLY_OK(t, 2, r, del(r, 'O', "1", "x"), upd(r, 'O', "2", NULL, "2", "was null"),
		 upd(r, 'O', "3", "y", UNCH, "z"));
	flush_ok(t);
	ck_q1("1:x,2:was null,3:z", "SELECT GROUP_CONCAT(a, ':', b ORDER BY a) FROM f");
	char *ddl = show_create("f");
	ck_assert_ptr_null(strstr(ddl, "PRIMARY KEY"));
	free(ddl);
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

START_TEST(mytarget_groups_txns_with_checkpoint)
{
	struct ls_target *t = open_target(true, LS_DDL_APPLY, 1000, 600000);
	struct ls_relation *r = mkrel(1, "g", 'd', "id:integer:k|v:text");
	relation_ok(t, r);
	for (int i = 1; i <= 5; i++) {
		char id[16];
		snprintf(id, sizeof id, "%d", i);
		APPLY_OK(t, (uint64_t)(100 + i), r, ins(r, id, "v"));
	}
	/* the group is open: nothing visible, no commit reported */
	ck_assert_int_eq(commits.calls, 0);
	ck_q1("0", "SELECT COUNT(*) FROM g");
	int wait = 0;
	struct ls_err err = { 0 };
	ck_assert_int_eq(ops->tick(t, &wait, &err), 0);
	ck_assert_int_gt(wait, 0);
	flush_ok(t);
	ck_assert_int_eq(commits.calls, 1);
	ck_assert_int_eq(commits.offset, 1050);
	ck_assert_uint_eq(commits.seq, 105);
	ck_q1("5", "SELECT COUNT(*) FROM g");
	ck_q1("1050:105:binlog.000001:105", "SELECT CONCAT(buffer_offset, ':', source_seq, ':',"
	      " source_pos) FROM lockstep.checkpoint WHERE pipeline = 'shop' AND target = '%s'", db);
	struct ls_target_stats st;
	ops->stats(t, &st);
	ck_assert_uint_eq(st.commits, 1);
	ck_assert_uint_eq(st.txns, 5);
	ck_assert_int_eq(ops->tick(t, &wait, &err), 0);
	ck_assert_int_eq(wait, -1);
	ops->free(t);

	/* a new instance resumes from the checkpoint */
	t = open_target(true, LS_DDL_APPLY, 1000, 600000);
	struct ls_target_ckpt ck;
	ops->checkpoint(t, &ck);
	ck_assert(ck.present);
	ck_assert_int_eq(ck.buffer_offset, 1050);
	ck_assert_uint_eq(ck.source_seq, 105);
	ck_assert_str_eq(ck.source_pos, "binlog.000001:105");
	/* batch_rows reached: end() commits */
	ops->free(t);
	t = open_target(true, LS_DDL_APPLY, 2, 600000);
	APPLY_OK(t, 106, r, ins(r, "6", "v"));
	ck_assert_int_eq(commits.calls, 0);
	APPLY_OK(t, 107, r, ins(r, "7", "v"));
	ck_assert_int_eq(commits.calls, 1);
	ck_q1("7", "SELECT COUNT(*) FROM g");
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

START_TEST(mytarget_abort_txn_keeps_rest_of_group)
{
	struct ls_target *t = open_target(true, LS_DDL_APPLY, 1000, 600000);
	struct ls_relation *r = mkrel(1, "a", 'd', "id:integer:k|v:text");
	APPLY_OK(t, 1, r, ins(r, "1", "kept"));
	struct ls_err err = { 0 };
	struct ls_txn x = txn(2);
	ck_assert_int_eq(ops->begin(t, &x, &err), 0);
	struct ls_change c2 = ins(r, "2", "partial"), c3 = upd(r, 0, "1", "changed");
	ck_assert_int_eq(ops->change(t, r, &c2, &err), 0);
	ck_assert_int_eq(ops->change(t, r, &c3, &err), 0);
	ck_assert_msg(ops->abort_txn(t, &err) == 0, "abort: %s", err.msg);
	APPLY_OK(t, 2, r, ins(r, "2", "whole"), ins(r, "3", "whole"));
	flush_ok(t);
	ck_q1("1:kept,2:whole,3:whole", "SELECT GROUP_CONCAT(id, ':', v ORDER BY id) FROM a");
	ck_q1("2", "SELECT source_seq FROM lockstep.checkpoint WHERE target = '%s'", db);
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

static bool kill_gone(void *ctx)
{
	unsigned long id = *(unsigned long *)ctx;
	char *n = ls_testmy_query1(my, NULL, "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
				   " WHERE ID = %lu", id);
	bool gone = n && strcmp(n, "0") == 0;
	free(n);
	return gone;
}

START_TEST(mytarget_killed_connection_is_retryable_and_replays)
{
	struct ls_target *t = open_target(true, LS_DDL_APPLY, 100000, 600000);
	struct ls_relation *r = mkrel(1, "c", 'd', "id:integer:k|v:text");
	APPLY_OK(t, 10, r, ins(r, "1", "first"));
	flush_ok(t);
	APPLY_OK(t, 11, r, ins(r, "2", "x"));
	APPLY_OK(t, 12, r, ins(r, "3", "x"), upd(r, 0, "1", "changed"));
	unsigned long id = ls_mytarget_connection_id((struct ls_mytarget *)t);
	ck_assert_uint_ne(id, 0);
	ls_testmy_exec(my, NULL, "KILL CONNECTION %lu", id);
	ck_assert(ls_test_wait_until(kill_gone, &id, 10000));
	struct ls_err err = { 0 };
	struct ls_txn x = txn(13);
	struct ls_change c = ins(r, "4", "x");
	int rc = ops->begin(t, &x, &err);
	if (rc == 0)
		rc = ops->change(t, r, &c, &err);
	if (rc == 0)
		rc = ops->end(t, &x, 130, &err);
	if (rc == 0)
		rc = ops->flush(t, &err);
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(err.retryable, "not retryable: %s", err.msg);
	unsigned e = ls_mytarget_errno((struct ls_mytarget *)t);
	ck_assert_msg(e == 2006 || e == 2013 || e == 1927, "errno %u: %s", e, err.msg);
	ck_q1("1:first", "SELECT GROUP_CONCAT(id, ':', v ORDER BY id) FROM c");
	ck_q1("10", "SELECT source_seq FROM lockstep.checkpoint WHERE target = '%s'", db);
	/* later calls refuse until reset; reset resumes at the checkpoint */
	ck_assert_int_eq(ops->begin(t, &x, &err), -1);
	ck_assert_msg(ops->reset(t, &err) == 0, "reset: %s", err.msg);
	struct ls_target_ckpt ck;
	ops->checkpoint(t, &ck);
	ck_assert_uint_eq(ck.source_seq, 10);
	ck_assert_int_eq(ck.buffer_offset, 100);
	APPLY_OK(t, 11, r, ins(r, "2", "x"));
	APPLY_OK(t, 12, r, ins(r, "3", "x"), upd(r, 0, "1", "changed"));
	APPLY_OK(t, 13, r, ins(r, "4", "x"));
	flush_ok(t);
	ck_q1("1:changed,2:x,3:x,4:x", "SELECT GROUP_CONCAT(id, ':', v ORDER BY id) FROM c");
	ck_q1("13", "SELECT source_seq FROM lockstep.checkpoint WHERE target = '%s'", db);
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

START_TEST(mytarget_strict_mode_error_names_table_column_key)
{
	struct ls_target *t = open_target(true, LS_DDL_APPLY, 100000, 600000);
	struct ls_relation *r = mkrel(1, "s", 'd', "id:integer:k|small:smallint|v:character varying(3)");
	APPLY_OK(t, 1, r, ins(r, "1", "1", "abc"));
	flush_ok(t);
	APPLY_OK(t, 2, r, ins(r, "2", "2", "x"));
	struct ls_change bad[] = { ins(r, "3", "3", "y"), ins(r, "4", "100000", "z") };
	struct ls_err err = { 0 };
	int rc = apply(t, 3, r, 2, bad, &err);
	if (rc == 0)
		rc = ops->flush(t, &err);
	ck_assert_int_eq(rc, -1);
	ck_assert(!err.retryable);
	ck_assert_uint_eq(ls_mytarget_errno((struct ls_mytarget *)t), 1264);
	ck_assert_msg(strstr(err.msg, db) && strstr(err.msg, "`s`") &&
		      strstr(err.msg, "column small") && strstr(err.msg, "key (id)=(4)"),
		      "%s", err.msg);
	ck_q1("1", "SELECT GROUP_CONCAT(id) FROM s");   /* the whole group rolled back */

	/* too long for varchar(3): an error, never truncated; UPDATE names its key */
	ck_assert_msg(ops->reset(t, &err) == 0, "reset: %s", err.msg);
	struct ls_change longv[] = { upd(r, 0, "1", "1", "abcd") };
	rc = apply(t, 4, r, 1, longv, &err);
	if (rc == 0)
		rc = ops->flush(t, &err);
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(strstr(err.msg, "UPDATE key (id)=(1) column v") && !err.retryable,
		      "%s", err.msg);
	ck_q1("abc", "SELECT v FROM s WHERE id = 1");

	/* NaN: MySQL cannot hold it */
	ck_assert_msg(ops->reset(t, &err) == 0, "reset: %s", err.msg);
	struct ls_relation *rn = mkrel(2, "nums", 'd', "id:integer:k|x:numeric(10,2)");
	struct ls_change nan[] = { ins(rn, "7", "NaN") };
	rc = apply(t, 5, rn, 1, nan, &err);
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(strstr(err.msg, "nums") && strstr(err.msg, "column x") &&
		      strstr(err.msg, "(id)=(7)") && strstr(err.msg, "NaN"), "%s", err.msg);
	ops->free(t);
	ls_relation_free(r);
	ls_relation_free(rn);
}
END_TEST

START_TEST(mytarget_values_round_trip_postgres_types)
{
	struct ls_target *t = open_target(true, LS_DDL_APPLY, 0, 0);
	struct ls_relation *r = mkrel(1, "v", 'd',
				      "id:integer:k|b:boolean|ts:timestamp with time zone|"
				      "raw:bytea|arr:integer[]|u:uuid|n:numeric(12,2)|"
				      "j:jsonb|txt:text[]|d:date|tm:timestamp without time zone|"
				      "f:double precision");
	APPLY_OK(t, 1, r,
		 ins(r, "1", "t", "2024-01-02 03:04:05.123+00", "\\x00ff41", "{1,NULL,3}",
		     "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "-12.50", "{\"a\": [1, 2]}",
		     "{a,\"b c\"}", "2024-02-29", "2024-01-02 03:04:05.5", "1.5e+300"),
		 ins(r, "2", "f", "2024-01-02 03:04:05+05:30", "\\x", "{}", NULL, "0.00", "null",
		     "{}", NULL, NULL, "-0.25"));
	flush_ok(t);
	ck_q1("1", "SELECT b FROM v WHERE id = 1");
	ck_q1("0", "SELECT b FROM v WHERE id = 2");
	ck_q1("2024-01-02 03:04:05.123000", "SELECT ts FROM v WHERE id = 1");
	ck_q1("2024-01-01 21:34:05.000000", "SELECT ts FROM v WHERE id = 2");
	ck_q1("00FF41", "SELECT HEX(raw) FROM v WHERE id = 1");
	ck_q1("0", "SELECT LENGTH(raw) FROM v WHERE id = 2");
	ck_q1("[1,null,3]", "SELECT arr FROM v WHERE id = 1");
	ck_q1("3", "SELECT JSON_EXTRACT(arr, '$[2]') FROM v WHERE id = 1");
	ck_q1("[]", "SELECT arr FROM v WHERE id = 2");
	ck_q1("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "SELECT u FROM v WHERE id = 1");
	ck_q1("-12.50", "SELECT n FROM v WHERE id = 1");
	ck_q1("[1, 2]", "SELECT JSON_EXTRACT(j, '$.a') FROM v WHERE id = 1");
	ck_q1("[\"a\",\"b c\"]", "SELECT txt FROM v WHERE id = 1");
	ck_q1("2024-02-29", "SELECT d FROM v WHERE id = 1");
	ck_q1("2024-01-02 03:04:05.500000", "SELECT tm FROM v WHERE id = 1");
	ck_q1("1.5e300", "SELECT f FROM v WHERE id = 1");
	ck_q1("-0.25", "SELECT f FROM v WHERE id = 2");
	/* converted values identify rows too */
	APPLY_OK(t, 2, r, upd(r, 'K', "1", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
			      NULL, NULL,
			      "1", "f", UNCH, UNCH, UNCH, UNCH, UNCH, UNCH, UNCH, UNCH, UNCH, UNCH));
	flush_ok(t);
	ck_q1("0:00FF41", "SELECT CONCAT(b, ':', HEX(raw)) FROM v WHERE id = 1");
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

START_TEST(mytarget_multirow_inserts_split_by_size)
{
	struct ls_mytarget_opts o = {
		.pipeline = "shop", .target = db, .conninfo = ls_testmy_conninfo(my, db),
		.create_tables = true, .batch_rows = 100000, .batch_ms = 600000,
		.max_stmt_bytes = 4096,
	};
	struct ls_mytarget *t;
	struct ls_err err = { 0 };
	ck_assert_msg(ls_mytarget_new(&o, &t, &err) == 0, "%s", err.msg);
	struct ls_relation *r = mkrel(1, "m", 'd', "id:integer:k|v:text");
	struct ls_txn x = txn(1);
	ck_assert_int_eq(ls_mytarget_begin(t, &x, &err), 0);
	char ids[1000][16];
	for (int i = 0; i < 1000; i++) {
		snprintf(ids[i], sizeof ids[i], "%d", i);
		struct ls_change c = ins(r, ids[i], "some text value");
		ck_assert_msg(ls_mytarget_change(t, r, &c, &err) == 0, "%s", err.msg);
	}
	ck_assert_int_eq(ls_mytarget_end(t, &x, 10, &err), 0);
	ck_assert_int_eq(ls_mytarget_flush(t, &err), 0);
	struct ls_mytarget_stats st;
	ls_mytarget_stats(t, &st);
	ck_assert_uint_eq(st.rows, 1000);
	ck_assert_uint_gt(st.statements, 5);
	ck_assert_uint_lt(st.statements, 100);
	ck_q1("1000:499500", "SELECT CONCAT(COUNT(*), ':', SUM(id)) FROM m");
	ls_mytarget_free(t);
	ls_relation_free(r);
}
END_TEST

/* ---- multi-statement batches --------------------------------------------------- */

/* One source transaction touching a and b: INSERT into a, UPDATE of b. */
static int apply_ab(struct ls_target *t, uint64_t seq, const struct ls_relation *a,
		    const struct ls_relation *b, const char *bval, struct ls_err *err)
{
	char id[16];
	snprintf(id, sizeof id, "%llu", (unsigned long long)seq);
	struct ls_change ca = ins(a, id, "new"), cb = upd(b, 0, id, bval);
	struct ls_txn x = txn(seq);
	if (ops->begin(t, &x, err) < 0 || ops->change(t, a, &ca, err) < 0 ||
	    ops->change(t, b, &cb, err) < 0)
		return -1;
	return ops->end(t, &x, (int64_t)seq * 10, err);
}

START_TEST(mytarget_batch_error_mid_group_rolls_back_and_names_statement)
{
	struct ls_target *t = open_target(true, LS_DDL_APPLY, 100000, 600000);
	struct ls_relation *a = mkrel(1, "ba", 'd', "id:integer:k|v:text");
	struct ls_relation *b = mkrel(2, "bb", 'd', "id:integer:k|v:character varying(3)");
	APPLY_OK(t, 1, a, ins(a, "1", "old"));
	struct ls_change pre[40];
	char ids[40][16];
	for (int i = 0; i < 40; i++) {
		snprintf(ids[i], sizeof ids[i], "%d", i + 1);
		pre[i] = ins(b, ids[i], "abc");
	}
	struct ls_err err = { 0 };
	ck_assert_msg(apply(t, 2, b, 40, pre, &err) == 0, "%s", err.msg);
	flush_ok(t);

	/* txn 20 of 40 in one group fails on the server, 20 more follow it in
	 * the same batches: the error names its table, operation, key and
	 * column, nothing of the group stays, the checkpoint did not move */
	int rc = 0;
	for (uint64_t seq = 3; seq <= 42 && rc == 0; seq++)
		rc = apply_ab(t, seq, a, b, seq == 20 ? "long" : "ok", &err);
	if (rc == 0)
		rc = ops->flush(t, &err);
	ck_assert_int_eq(rc, -1);
	ck_assert(!err.retryable);
	ck_assert_uint_eq(ls_mytarget_errno((struct ls_mytarget *)t), 1406);
	ck_assert_msg(strstr(err.msg, "`bb` UPDATE key (id)=(20) column v"), "%s", err.msg);
	ck_q1("1", "SELECT COUNT(*) FROM ba");
	ck_q1("0", "SELECT COUNT(*) FROM bb WHERE v <> 'abc'");
	ck_q1("2", "SELECT source_seq FROM lockstep.checkpoint WHERE target = '%s'", db);

	/* a duplicate key in the middle of a batch: the INSERT is named */
	ck_assert_msg(ops->reset(t, &err) == 0, "reset: %s", err.msg);
	rc = 0;
	for (uint64_t seq = 3; seq <= 42 && rc == 0; seq++) {
		if (seq == 30) {
			struct ls_change dup[] = { ins(a, "1", "again"), upd(b, 0, "30", "ok") };
			rc = apply(t, seq, a, 1, dup, &err);
		} else {
			rc = apply_ab(t, seq, a, b, "ok", &err);
		}
	}
	if (rc == 0)
		rc = ops->flush(t, &err);
	ck_assert_int_eq(rc, -1);
	ck_assert(!err.retryable);
	ck_assert_uint_eq(ls_mytarget_errno((struct ls_mytarget *)t), 1062);
	ck_assert_msg(strstr(err.msg, "`ba` INSERT key (id)=(1)"), "%s", err.msg);
	ck_q1("1:old", "SELECT GROUP_CONCAT(id, ':', v) FROM ba");
	ck_q1("2", "SELECT source_seq FROM lockstep.checkpoint WHERE target = '%s'", db);

	/* the same group, correct, lands whole */
	ck_assert_msg(ops->reset(t, &err) == 0, "reset: %s", err.msg);
	for (uint64_t seq = 3; seq <= 42; seq++)
		ck_assert_msg(apply_ab(t, seq, a, b, "ok", &err) == 0, "%s", err.msg);
	flush_ok(t);
	ck_q1("41:901", "SELECT CONCAT(COUNT(*), ':', SUM(id)) FROM ba");
	/* keys 41 and 42 were missing on the target: their updates write the
	 * source's full row (and count as missing) */
	ck_q1("40", "SELECT COUNT(*) FROM bb WHERE v = 'ok'");
	struct ls_mytarget_stats st;
	ls_mytarget_stats((struct ls_mytarget *)t, &st);
	ck_assert_uint_eq(st.missing_rows, 2);
	ck_q1("42", "SELECT source_seq FROM lockstep.checkpoint WHERE target = '%s'", db);
	ops->free(t);
	ls_relation_free(a);
	ls_relation_free(b);
}
END_TEST

START_TEST(mytarget_batch_warning_mid_batch_is_named)
{
	struct ls_target *t = open_target(true, LS_DDL_APPLY, 100000, 600000);
	struct ls_relation *r = mkrel(1, "w", 'd', "id:integer:k|x:numeric(10,2)");
	struct ls_err err = { 0 };
	int rc = 0;
	/* 1.234 rounds to 1.23: a note, not an error, on the server.  It is
	 * the row's last value: the group folds each row's changes into its
	 * final state, so an intermediate value never reaches the target. */
	for (int i = 1; i <= 10 && rc == 0; i++) {
		char id[16];
		snprintf(id, sizeof id, "%d", i);
		struct ls_change c[] = { ins(r, id, "1.5"),
					 upd(r, 0, id, i == 5 ? "1.234" : "2.5") };
		rc = apply(t, (uint64_t)i, r, 2, c, &err);
	}
	if (rc == 0)
		rc = ops->flush(t, &err);
	ck_assert_int_eq(rc, -1);
	ck_assert(!err.retryable);
	ck_assert_msg(strstr(err.msg, "`w` INSERT key (id)=(5) column x"), "%s", err.msg);
	ck_q1("0", "SELECT COUNT(*) FROM w");
	ck_q1(NULL, "SELECT applied_at FROM lockstep.checkpoint WHERE target = '%s'", db);
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

/* Many small transactions of one group, over many small batches, land
 * exactly: the state matches a model applied in C. */
START_TEST(mytarget_many_small_txns_in_one_group_land_exactly)
{
	struct ls_mytarget_opts o = {
		.pipeline = "shop", .target = db, .conninfo = ls_testmy_conninfo(my, db),
		.create_tables = true, .batch_rows = 100000, .batch_ms = 600000,
		.max_stmt_bytes = 2048,
	};
	struct ls_mytarget *t;
	struct ls_err err = { 0 };
	ck_assert_msg(ls_mytarget_new(&o, &t, &err) == 0, "%s", err.msg);
	struct ls_relation *r = mkrel(1, "many", 'd', "id:integer:k|v:text");
	ck_assert_msg(ls_mytarget_relation(t, r, &err) == 0, "%s", err.msg);
	enum { N = 600 };
	static char model[N + 1][16];   /* "" = no row */
	memset(model, 0, sizeof model);
	for (int i = 1; i <= N; i++) {
		char id[16], prev[16], v[16], gone[16];
		snprintf(id, sizeof id, "%d", i);
		snprintf(prev, sizeof prev, "%d", i - 1);
		snprintf(gone, sizeof gone, "%d", i - 2);
		snprintf(v, sizeof v, "u%d", i);
		struct ls_txn x = txn((uint64_t)i);
		ck_assert_int_eq(ls_mytarget_begin(t, &x, &err), 0);
		struct ls_change c = ins(r, id, "new");
		ck_assert_msg(ls_mytarget_change(t, r, &c, &err) == 0, "%s", err.msg);
		snprintf(model[i], sizeof model[i], "new");
		if (i > 1) {
			c = upd(r, 0, prev, v);
			ck_assert_msg(ls_mytarget_change(t, r, &c, &err) == 0, "%s", err.msg);
			if (model[i - 1][0])
				snprintf(model[i - 1], sizeof model[i - 1], "%s", v);
		}
		if (i > 2 && i % 3 == 0) {
			c = del(r, 'K', gone, NULL);
			ck_assert_msg(ls_mytarget_change(t, r, &c, &err) == 0, "%s", err.msg);
			model[i - 2][0] = '\0';
		}
		ck_assert_msg(ls_mytarget_end(t, &x, i * 10, &err) == 0, "%s", err.msg);
	}
	ck_assert_msg(ls_mytarget_flush(t, &err) == 0, "%s", err.msg);
	struct ls_mysql_buf want;
	ls_mysql_buf_init(&want);
	for (int i = 1; i <= N; i++)
		if (model[i][0])
			ls_mysql_printf(&want, "%s%d:%s", want.len ? "," : "", i, model[i]);
	char *got = ls_testmy_query1(my, db, "SELECT GROUP_CONCAT(id, ':', v ORDER BY id "
				     "SEPARATOR ',') FROM many");
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, ls_mysql_buf_str(&want));
	free(got);
	ls_mysql_buf_free(&want);
	struct ls_mytarget_stats st;
	ls_mytarget_stats(t, &st);
	ck_assert_uint_eq(st.commits, 1);
	ck_assert_uint_eq(st.txns, N);
	ck_assert_uint_eq(st.missing_rows, 0);
	/* the group's ~1400 changes fold into a few multi-row statements per
	 * kind, which the byte bound splits over several batches */
	ck_assert_uint_lt(st.statements, 100);
	ck_assert_uint_gt(st.batches, 1);
	fprintf(stderr, "many small txns: %llu statements in %llu batches\n",
		(unsigned long long)st.statements, (unsigned long long)st.batches);
	ck_q1("600:6000", "SELECT CONCAT(source_seq, ':', buffer_offset) FROM lockstep.checkpoint"
	      " WHERE target = '%s'", db);
	ls_mytarget_free(t);
	ls_relation_free(r);
}
END_TEST

/* A transaction bigger than a batch reaches the server before its end; its
 * savepoint goes first, so abort_txn still drops only it. */
START_TEST(mytarget_abort_txn_after_part_was_sent)
{
	struct ls_mytarget_opts o = {
		.pipeline = "shop", .target = db, .conninfo = ls_testmy_conninfo(my, db),
		.create_tables = true, .batch_rows = 100000, .batch_ms = 600000,
		.max_stmt_bytes = 1024,
	};
	struct ls_mytarget *t;
	struct ls_err err = { 0 };
	ck_assert_msg(ls_mytarget_new(&o, &t, &err) == 0, "%s", err.msg);
	/* a second unique index: its rows do not fold, each change is a statement */
	ls_testmy_exec(my, db, "CREATE TABLE ap (id int PRIMARY KEY, v longtext, UNIQUE KEY (v(20)))");
	struct ls_relation *r = mkrel(1, "ap", 'd', "id:integer:k|v:text");
	struct ls_txn x1 = txn(1), x2 = txn(2);
	ck_assert_int_eq(ls_mytarget_begin(t, &x1, &err), 0);
	struct ls_change c = ins(r, "1", "kept");
	ck_assert_msg(ls_mytarget_change(t, r, &c, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(ls_mytarget_end(t, &x1, 10, &err), 0);
	ck_assert_int_eq(ls_mytarget_begin(t, &x2, &err), 0);
	for (int i = 0; i < 60; i++) {
		c = upd(r, 0, "1", "partial, a value long enough to fill batches");
		ck_assert_msg(ls_mytarget_change(t, r, &c, &err) == 0, "%s", err.msg);
	}
	struct ls_mytarget_stats st;
	ls_mytarget_stats(t, &st);
	ck_assert_uint_gt(st.batches, 0);   /* part of txn 2 went out */
	ck_assert_msg(ls_mytarget_abort_txn(t, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(ls_mytarget_begin(t, &x2, &err), 0);
	c = ins(r, "2", "whole");
	ck_assert_msg(ls_mytarget_change(t, r, &c, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(ls_mytarget_end(t, &x2, 20, &err), 0);
	ck_assert_msg(ls_mytarget_flush(t, &err) == 0, "%s", err.msg);
	ck_q1("1:kept,2:whole", "SELECT GROUP_CONCAT(id, ':', v ORDER BY id) FROM ap");
	ck_q1("2", "SELECT source_seq FROM lockstep.checkpoint WHERE target = '%s'", db);
	ls_mytarget_free(t);
	ls_relation_free(r);
}
END_TEST

START_TEST(mytarget_ddl_apply_and_stop)
{
	struct ls_target *t = open_target(true, LS_DDL_APPLY, 1000, 600000);
	struct ls_relation *r1 = mkrel(1, "d", 'd', "id:integer:k|a:integer|gone:text");
	struct ls_relation *r2 = mkrel(1, "d", 'd', "id:integer:k|a:bigint|added:boolean");
	APPLY_OK(t, 1, r1, ins(r1, "1", "5", "x"));
	/* changed at a transaction start: the group commits, then the DDL */
	APPLY_OK(t, 2, r2, ins(r2, "2", "9000000000", "t"));
	flush_ok(t);
	char *ddl = show_create("d");
	ck_assert_msg(strstr(ddl, "`a` bigint") && strstr(ddl, "`added` tinyint(1)") &&
		      !strstr(ddl, "`gone`"), "%s", ddl);
	free(ddl);
	ck_q1("1:5:-,2:9000000000:1", "SELECT GROUP_CONCAT(id, ':', a, ':', IFNULL(added, '-')"
	      " ORDER BY id) FROM d");
	struct ls_target_stats st;
	ops->stats(t, &st);
	ck_assert_uint_ge(st.ddl, 3);

	/* changed mid-transaction after rows: retryable, then a replay works */
	struct ls_relation *r3 = mkrel(1, "d", 'd', "id:integer:k|a:bigint|added:boolean|c:text");
	struct ls_relation *o = mkrel(2, "other", 'd', "id:integer:k");
	relation_ok(t, o);
	struct ls_err err = { 0 };
	struct ls_txn x = txn(3);
	struct ls_change co = ins(o, "1"), c3 = ins(r3, "3", "3", "f", "new");
	ck_assert_int_eq(ops->begin(t, &x, &err), 0);
	ck_assert_int_eq(ops->change(t, o, &co, &err), 0);
	ck_assert_int_eq(ops->change(t, r3, &c3, &err), -1);
	ck_assert_msg(err.retryable, "%s", err.msg);
	ck_q1("0", "SELECT COUNT(*) FROM other");
	ck_assert_msg(ops->reset(t, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(ops->begin(t, &x, &err), 0);
	ck_assert_msg(ops->change(t, o, &co, &err) == 0, "%s", err.msg);
	ck_assert_msg(ops->change(t, r3, &c3, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(ops->end(t, &x, 30, &err), 0);
	flush_ok(t);
	ck_q1("new", "SELECT c FROM d WHERE id = 3");
	ck_q1("1", "SELECT COUNT(*) FROM other");
	ops->free(t);

	/* ddl = stop: an error naming the change; nothing applied */
	t = open_target(true, LS_DDL_STOP, 1000, 600000);
	relation_ok(t, r3);
	struct ls_relation *r4 = mkrel(1, "d", 'd', "id:integer:k|a:bigint|added:boolean|c:text|"
				       "e:integer");
	struct ls_change c4 = ins(r4, "4", "4", "t", "x", "4");
	int rc = apply(t, 4, r4, 1, &c4, &err);
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(!err.retryable && strstr(err.msg, "column e added") &&
		      strstr(err.msg, "ddl = stop"), "%s", err.msg);
	ck_q1(NULL, "SELECT id FROM d WHERE id = 4");
	ops->free(t);
	ls_relation_free(r1);
	ls_relation_free(r2);
	ls_relation_free(r3);
	ls_relation_free(r4);
	ls_relation_free(o);
}
END_TEST

/* ---- snapshot copy -------------------------------------------------------------- */

static int copy_str(struct ls_target_copy *c, const char *s, struct ls_err *err)
{
	return ops->copy_data(c, s, strlen(s), err);
}

START_TEST(mytarget_copy_pg_text_with_escapes_nulls_multibyte)
{
	ck_assert_str_eq(ops->copy_format, "rows");
	struct ls_target *t = open_target(true, LS_DDL_APPLY, 0, 0);
	struct ls_relation *r = mkrel(1, "cp", 'd', "id:integer:k|v:text|b:boolean|raw:bytea|"
				      "at:timestamp with time zone");
	relation_ok(t, r);
	ls_testmy_exec(my, db, "INSERT INTO cp (id, v) VALUES (99, 'stale')");
	struct ls_err err = { 0 };
	bool copied;
	uint64_t at;
	ck_assert_int_eq(ops->snapshot_state(t, db, "cp", &copied, &at, &err), 0);
	ck_assert(!copied);

	struct ls_target_copy *c;
	ck_assert_msg(ops->copy_open(t, &c, &err) == 0, "%s", err.msg);
	ck_assert_msg(ops->copy_table_begin(c, r, &err) == 0, "%s", err.msg);
	const char data[] =
		"1\ttab\\there\\nnew \\\\ back\tt\t\\\\x00ff\t2024-01-02 03:04:05+01\n"
		"2\t\\N\tf\t\\N\t\\N\n"
		"3\t\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\t\\N\t\\\\x\t\\N\n"
		"4\tit's\t\\N\t\\N\t\\N";   /* no final newline */
	/* split at awkward places: inside an escape and inside a UTF-8 char */
	size_t cuts[] = { 5, 6, 40, 71, 74, sizeof data - 1 };
	size_t prev = 0;
	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
		ck_assert_msg(ops->copy_data(c, data + prev, cuts[i] - prev, &err) == 0, "%s",
			      err.msg);
		prev = cuts[i];
	}
	/* not committed yet: another session sees the old table */
	ck_q1("99", "SELECT GROUP_CONCAT(id) FROM cp");
	ck_assert_msg(ops->copy_table_end(c, r, 4, 777, &err) == 0, "%s", err.msg);
	ck_q1("1,2,3,4", "SELECT GROUP_CONCAT(id ORDER BY id) FROM cp");
	ck_q1("74616209686572650A6E6577205C206261636B", "SELECT HEX(v) FROM cp WHERE id = 1");
	ck_q1("1:00FF:2024-01-02 02:04:05.000000", "SELECT CONCAT(b, ':', HEX(raw), ':', at)"
	      " FROM cp WHERE id = 1");
	ck_q1("1", "SELECT COUNT(*) FROM cp WHERE id = 2 AND v IS NULL AND raw IS NULL");
	ck_q1("C3A974C3A920E282AC20F09F9880", "SELECT HEX(v) FROM cp WHERE id = 3");
	ck_q1("0", "SELECT LENGTH(raw) FROM cp WHERE id = 3");
	ck_q1("it's", "SELECT v FROM cp WHERE id = 4");
	ck_assert_int_eq(ops->snapshot_state(t, db, "cp", &copied, &at, &err), 0);
	ck_assert(copied);
	ck_assert_uint_eq(at, 777);

	/* a row count mismatch fails and rolls the table back */
	ck_assert_msg(ops->copy_table_begin(c, r, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(copy_str(c, "5\tx\tt\t\\N\t\\N\n", &err), 0);
	ck_assert_int_eq(ops->copy_table_end(c, r, 2, 888, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "sent 2 rows"));
	ck_q1("1,2,3,4", "SELECT GROUP_CONCAT(id ORDER BY id) FROM cp");
	ck_assert_int_eq(ops->snapshot_state(t, db, "cp", &copied, &at, &err), 0);
	ck_assert_uint_eq(at, 777);
	ops->copy_close(c);

	/* a bad line names table and line; copy_close rolls back an open table */
	ck_assert_msg(ops->copy_open(t, &c, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(ops->copy_table_begin(c, r, &err), 0);
	ck_assert_int_eq(copy_str(c, "7\tx\tt\t\\N\t\\N\n8\tonly two\n", &err), -1);
	ck_assert_msg(strstr(err.msg, "`cp`") && strstr(err.msg, "line 2"), "%s", err.msg);
	ops->copy_close(c);
	ck_assert_msg(ops->copy_open(t, &c, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(ops->copy_table_begin(c, r, &err), 0);
	ck_assert_int_eq(copy_str(c, "9\tx\tt\t\\N\t\\N\n", &err), 0);
	ops->copy_close(c);
	ck_q1("1,2,3,4", "SELECT GROUP_CONCAT(id ORDER BY id) FROM cp");
	struct ls_target_stats st;
	ops->stats(t, &st);
	ck_assert_uint_eq(st.copy_rows, 4);
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

START_TEST(mytarget_open_rejects_bad_conninfo_without_leaking_password)
{
	cfg = (struct ls_config_target){ .name = db, .type = LS_ENGINE_MYSQL,
					 .conninfo = "host=127.0.0.1 port=1 user=root "
						     "password=sekrit123 database=x" };
	struct ls_target_opts o = { .pipeline = "shop", .cfg = &cfg };
	struct ls_target *t = (struct ls_target *)1;
	struct ls_err err = { 0 };
	ck_assert_int_eq(ops->open(&o, &t, &err), -1);
	ck_assert_ptr_null(t);
	ck_assert(err.retryable);
	ck_assert_ptr_null(strstr(err.msg, "sekrit123"));
	cfg.conninfo = "host=127.0.0.1 pasword=sekrit123";
	ck_assert_int_eq(ops->open(&o, &t, &err), -1);
	ck_assert(!err.retryable);
	ck_assert_msg(strstr(err.msg, "pasword") && !strstr(err.msg, "sekrit123"), "%s", err.msg);
}
END_TEST

/* ---- net rows: a group's changes folded per key ---------------------------------- */

/* Within one group each key's changes fold into its final state: a row
 * deleted and inserted again, updated twice, inserted and deleted (nothing
 * at all), moved to a new key; an aborted transaction leaves no trace. */
START_TEST(mytarget_group_folds_rows_to_their_final_state)
{
	struct ls_target *t = open_target(true, LS_DDL_APPLY, 100000, 600000);
	struct ls_relation *r = mkrel(1, "nf", 'd', "id:integer:k|v:text");
	APPLY_OK(t, 1, r, ins(r, "1", "a"), ins(r, "2", "a"), ins(r, "3", "a"), ins(r, "4", "a"),
		 ins(r, "5", "a"));
	flush_ok(t);
	struct ls_mytarget_stats before;
	ls_mytarget_stats((struct ls_mytarget *)t, &before);
	APPLY_OK(t, 2, r, del(r, 'K', "1", NULL), ins(r, "1", "reborn"), upd(r, 0, "2", "u1"));
	APPLY_OK(t, 3, r, ins(r, "6", "n6"), upd(r, 0, "6", "n6b"), upd(r, 0, "2", "u2"));
	APPLY_OK(t, 4, r, ins(r, "7", "x"), del(r, 'K', "7", NULL));
	APPLY_OK(t, 5, r, upd(r, 'K', "3", NULL, "30", "moved"), del(r, 'K', "4", NULL));
	struct ls_err err = { 0 };
	struct ls_txn x = txn(6);
	ck_assert_int_eq(ops->begin(t, &x, &err), 0);
	struct ls_change c1 = ins(r, "8", "no"), c2 = upd(r, 0, "5", "no"), c3 = del(r, 'K', "30", NULL);
	ck_assert_int_eq(ops->change(t, r, &c1, &err), 0);
	ck_assert_int_eq(ops->change(t, r, &c2, &err), 0);
	ck_assert_int_eq(ops->change(t, r, &c3, &err), 0);
	ck_assert_msg(ops->abort_txn(t, &err) == 0, "abort: %s", err.msg);
	APPLY_OK(t, 6, r, upd(r, 0, "5", "yes"));
	flush_ok(t);
	ck_q1("1:reborn,2:u2,5:yes,6:n6b,30:moved", "SELECT GROUP_CONCAT(id, ':', v ORDER BY id) FROM nf");
	ck_q1("6", "SELECT source_seq FROM lockstep.checkpoint WHERE target = '%s'", db);
	struct ls_mytarget_stats st;
	ls_mytarget_stats((struct ls_mytarget *)t, &st);
	ck_assert_uint_eq(st.commits, before.commits + 1);
	ck_assert_uint_eq(st.missing_rows, 0);
	/* one DELETE, one INSERT (6, 30) and one upsert (1, 2, 5) for 13 changes */
	ck_assert_uint_eq(st.statements - before.statements, 3);
	/* a fresh row that is already there is still a duplicate, not a silent overwrite */
	APPLY_OK(t, 7, r, ins(r, "9", "new"));
	struct ls_change dup = ins(r, "6", "again");
	int rc = apply(t, 8, r, 1, &dup, &err);
	if (rc == 0)
		rc = ops->flush(t, &err);
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(strstr(err.msg, "`nf` INSERT key (id)=(6)") && strstr(err.msg, "1062"),
		      "%s", err.msg);
	ck_q1("5", "SELECT COUNT(*) FROM nf");
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

/* A transaction larger than the net rows' bound puts them into the batch
 * mid-transaction (the group's earlier rows with it); dropping it then
 * still keeps exactly the rest of the group, and one that ends lands. */
START_TEST(mytarget_abort_after_net_rows_spilled_keeps_group)
{
	struct ls_target *t = open_target(true, LS_DDL_APPLY, 1000000, 600000);
	struct ls_relation *r = mkrel(1, "sp", 'd', "id:integer:k|v:text");
	APPLY_OK(t, 1, r, ins(r, "1", "kept"), ins(r, "2", "kept"));
	APPLY_OK(t, 2, r, upd(r, 0, "2", "kept2"), ins(r, "3", "kept"));
	struct ls_err err = { 0 };
	char id[16];
	for (int round = 0; round < 2; round++) {
		struct ls_txn x = txn(3);
		ck_assert_int_eq(ops->begin(t, &x, &err), 0);
		for (int i = 100; i < 100 + 20000; i++) {
			snprintf(id, sizeof id, "%d", i);
			struct ls_change c = ins(r, id, "big");
			ck_assert_msg(ops->change(t, r, &c, &err) == 0, "%s", err.msg);
			ls_arena_reset(&A);
		}
		struct ls_change c = upd(r, 0, "1", "big");
		ck_assert_msg(ops->change(t, r, &c, &err) == 0, "%s", err.msg);
		if (round == 0) {
			ck_assert_msg(ops->abort_txn(t, &err) == 0, "abort: %s", err.msg);
		} else {
			ck_assert_msg(ops->end(t, &x, 30, &err) == 0, "%s", err.msg);
		}
	}
	flush_ok(t);
	ck_q1("20003", "SELECT COUNT(*) FROM sp");
	ck_q1("1:big,2:kept2,3:kept", "SELECT GROUP_CONCAT(id, ':', v ORDER BY id) FROM sp WHERE id < 100");
	ck_q1("3", "SELECT source_seq FROM lockstep.checkpoint WHERE target = '%s'", db);
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

/* A table with a second unique index does not fold: swapping unique values
 * through a third works only in the source's order. */
START_TEST(mytarget_second_unique_index_keeps_statement_order)
{
	ls_testmy_exec(my, db, "CREATE TABLE su (id int PRIMARY KEY, u int, UNIQUE KEY (u))");
	struct ls_target *t = open_target(true, LS_DDL_APPLY, 100000, 600000);
	struct ls_relation *r = mkrel(1, "su", 'd', "id:integer:k|u:integer");
	APPLY_OK(t, 1, r, ins(r, "1", "10"), ins(r, "2", "20"));
	flush_ok(t);
	APPLY_OK(t, 2, r, upd(r, 0, "1", "30"), upd(r, 0, "2", "10"));
	APPLY_OK(t, 3, r, upd(r, 0, "1", "20"));
	flush_ok(t);
	ck_q1("1:20,2:10", "SELECT GROUP_CONCAT(id, ':', u ORDER BY id) FROM su");
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("my_target");
	TCase *tc = tcase_create("mariadb");
	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_add_checked_fixture(tc, test_setup, test_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, mytarget_creates_table_from_mysql_relation);
	tcase_add_test(tc, mytarget_creates_table_from_postgres_relation);
	tcase_add_test(tc, mytarget_compat_mismatch_names_each_column);
	tcase_add_test(tc, mytarget_applies_insert_update_delete_truncate);
	tcase_add_test(tc, mytarget_unchanged_columns_untouched);
	tcase_add_test(tc, mytarget_key_update_uses_old_key);
	tcase_add_test(tc, mytarget_replica_identity_full_matches_whole_row);
	tcase_add_test(tc, mytarget_groups_txns_with_checkpoint);
	tcase_add_test(tc, mytarget_abort_txn_keeps_rest_of_group);
	tcase_add_test(tc, mytarget_killed_connection_is_retryable_and_replays);
	tcase_add_test(tc, mytarget_strict_mode_error_names_table_column_key);
	tcase_add_test(tc, mytarget_values_round_trip_postgres_types);
	tcase_add_test(tc, mytarget_multirow_inserts_split_by_size);
	tcase_add_test(tc, mytarget_batch_error_mid_group_rolls_back_and_names_statement);
	tcase_add_test(tc, mytarget_batch_warning_mid_batch_is_named);
	tcase_add_test(tc, mytarget_many_small_txns_in_one_group_land_exactly);
	tcase_add_test(tc, mytarget_abort_txn_after_part_was_sent);
	tcase_add_test(tc, mytarget_group_folds_rows_to_their_final_state);
	tcase_add_test(tc, mytarget_abort_after_net_rows_spilled_keeps_group);
	tcase_add_test(tc, mytarget_second_unique_index_keeps_statement_order);
	tcase_add_test(tc, mytarget_ddl_apply_and_stop);
	tcase_add_test(tc, mytarget_copy_pg_text_with_escapes_nulls_multibyte);
	tcase_add_test(tc, mytarget_open_rejects_bad_conninfo_without_leaking_password);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
