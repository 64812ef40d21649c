/* Integration tests for connectors/postgres/pg_target against a real
 * PostgreSQL 15 (tests/helpers/testsrv.h).  One server for the suite; each
 * test works in a database of its own. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

#include "connectors/postgres/pg_target.h"
#include "tests/helpers/testsrv.h"
#include "tests/helpers/testchg.h"
#include "tests/helpers/testutil.h"

static struct ls_testpg *pg;
static struct ls_arena A;
static char db[64];
static int db_seq;

#define UNCH LS_TESTCHG_UNCH

static void suite_setup(void)
{
	pg = ls_testpg_start(NULL);
}

static void suite_teardown(void)
{
	ls_testpg_stop(pg);
}

/* A fresh database in UTC for each test (so timestamptz text is stable). */
static void test_setup(void)
{
	snprintf(db, sizeof db, "tgt_%d_%d", (int)getpid(), ++db_seq);
	ls_testpg_exec(pg, "postgres", "CREATE DATABASE %s", db);
	ls_testpg_exec(pg, "postgres", "ALTER DATABASE %s SET timezone = 'UTC'", db);
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
	return ls_testpg_query1(pg, db, "%s", sql);
}

/* Asserts the first value of a query equals want (NULL = SQL NULL/no row). */
#define ck_q1(want, ...) LS_CK_STR_FREE(q1(__VA_ARGS__), want)

static struct ls_testchg_commits commits;

static struct ls_pgtarget *open_target(bool create, enum ls_ddl_mode ddl, int batch_rows,
				       int batch_ms, int copy_after)
{
	struct ls_pgtarget_opts o = {
		.pipeline = "shop", .target = "new",
		.conninfo = ls_testpg_conninfo(pg, db),
		.create_tables = create, .ddl = ddl,
		.batch_rows = batch_rows, .batch_ms = batch_ms, .copy_after = copy_after,
		.on_commit = ls_testchg_on_commit, .ctx = &commits,
	};
	struct ls_pgtarget *t;
	struct ls_err err = { 0 };
	memset(&commits, 0, sizeof commits);
	ck_assert_msg(ls_pgtarget_new(&o, &t, &err) == 0, "open: %s", err.msg);
	return t;
}

#define mkrel(id, name, replident, spec) ls_testchg_rel(id, "app", name, replident, spec)
#define ins(r, ...) ls_testchg_ins(&A, r, __VA_ARGS__)
#define upd(r, old_kind, ...) ls_testchg_upd(&A, r, old_kind, __VA_ARGS__)
#define del(r, old_kind, ...) ls_testchg_del(&A, r, old_kind, __VA_ARGS__)

static struct ls_txn txn(uint64_t seq)
{
	struct ls_txn x = { .xid = seq };
	x.commit.seq = seq;
	snprintf(x.commit.text, sizeof x.commit.text, "0/%llX", (unsigned long long)seq);
	return x;
}

/* Applies one source transaction; returns the first failing call's rc. */
static int apply(struct ls_pgtarget *t, uint64_t seq, const struct ls_relation *r, int n,
		 const struct ls_change *chs, struct ls_err *err)
{
	struct ls_txn x = txn(seq);
	if (ls_pgtarget_begin(t, &x, err) < 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (ls_pgtarget_change(t, chs[i].op == LS_OP_TRUNCATE ? NULL : r, &chs[i], err) < 0)
			return -1;
	return ls_pgtarget_end(t, &x, (int64_t)seq * 10, err);
}

#define APPLY_OK(t, seq, r, ...)                                                    \
	do {                                                                        \
		struct ls_change chs_[] = { __VA_ARGS__ };                          \
		struct ls_err e_ = { 0 };                                           \
		ck_assert_msg(apply(t, seq, r, sizeof chs_ / sizeof chs_[0], chs_, &e_) == 0, \
			      "apply: %s", e_.msg);                                 \
	} while (0)

static void flush_ok(struct ls_pgtarget *t)
{
	struct ls_err err = { 0 };
	ck_assert_msg(ls_pgtarget_flush(t, &err) == 0, "flush: %s", err.msg);
}

/* ---- tests ------------------------------------------------------------------ */

START_TEST(pgtarget_applies_insert_update_delete_truncate)
{
	struct ls_pgtarget *t = open_target(true, LS_DDL_APPLY, 5000, 100, -1);
	struct ls_pgtarget_ckpt ck;
	ls_pgtarget_checkpoint(t, &ck);
	ck_assert(!ck.present);
	struct ls_relation *r = mkrel(1, "items", 'd', "id:integer:k|name:text|price:numeric(10,2)");
	APPLY_OK(t, 100, r, ins(r, "1", "a", "1.50"), ins(r, "2", "b", NULL), ins(r, "3", "c", "3.00"));
	APPLY_OK(t, 101, r, upd(r, 0, "2", "B", "2.25"), del(r, 'K', "3", NULL, NULL));
	flush_ok(t);
	ck_q1("1:a:1.50,2:B:2.25", "SELECT string_agg(id||':'||name||':'||price, ',' ORDER BY id)"
	      " FROM app.items");
	ck_q1("1010:101:0/65", "SELECT buffer_offset||':'||source_seq||':'||source_pos"
	      " FROM lockstep.checkpoint WHERE pipeline = 'shop' AND target = 'new'");
	ck_assert_int_eq(commits.seq, 101);
	ck_assert_int_eq(commits.offset, 1010);

	uint32_t ids[1] = { 1 };
	struct ls_change tr = { .op = LS_OP_TRUNCATE, .nrelids = 1, .relids = ids,
				.truncate_flags = LS_TRUNCATE_RESTART_IDENTITY };
	APPLY_OK(t, 102, r, tr);
	flush_ok(t);
	ck_q1("0", "SELECT count(*) FROM app.items");
	ls_pgtarget_checkpoint(t, &ck);
	ck_assert(ck.present);
	ck_assert_uint_eq(ck.source_seq, 102);
	ck_assert(ls_pgtarget_applied(t, 102));
	ck_assert(!ls_pgtarget_applied(t, 103));
	ls_pgtarget_free(t);

	/* a new connection resumes from the stored checkpoint */
	t = open_target(true, LS_DDL_APPLY, 5000, 100, -1);
	ls_pgtarget_checkpoint(t, &ck);
	ck_assert(ck.present);
	ck_assert_uint_eq(ck.source_seq, 102);
	ck_assert_int_eq(ck.buffer_offset, 1020);
	ck_assert_str_eq(ck.source_pos, "0/66");
	ls_pgtarget_free(t);
	ls_relation_free(r);
}
END_TEST

START_TEST(pgtarget_unchanged_toast_keeps_old_value)
{
	struct ls_pgtarget *t = open_target(true, LS_DDL_APPLY, 5000, 100, -1);
	struct ls_relation *r = mkrel(1, "docs", 'd', "id:bigint:k|body:text|n:integer");
	char *big = malloc(100001);
	for (int i = 0; i < 100000; i++)
		big[i] = (char)('a' + (i * 7) % 26);
	big[100000] = '\0';
	APPLY_OK(t, 1, r, ins(r, "7", big, "1"));
	APPLY_OK(t, 2, r, upd(r, 0, "7", UNCH, "2"));
	flush_ok(t);
	ck_q1("2", "SELECT n FROM app.docs WHERE id = 7");
	ck_q1("100000", "SELECT length(body) FROM app.docs WHERE id = 7");
	char head[21], tail[21];
	snprintf(head, sizeof head, "%.20s", big);
	snprintf(tail, sizeof tail, "%s", big + 99980);
	ck_q1(head, "SELECT substr(body, 1, 20) FROM app.docs WHERE id = 7");
	ck_q1(tail, "SELECT substr(body, 99981) FROM app.docs WHERE id = 7");
	free(big);
	ls_pgtarget_free(t);
	ls_relation_free(r);
}
END_TEST

START_TEST(pgtarget_replica_identity_full_duplicates_and_nulls)
{
	struct ls_pgtarget *t = open_target(true, LS_DDL_APPLY, 5000, 100, -1);
	struct ls_relation *r = mkrel(1, "log", 'f', "a:integer|b:text|j:json");
	APPLY_OK(t, 1, r, ins(r, "1", NULL, "{\"x\": 1}"), ins(r, "1", NULL, "{\"x\": 1}"),
		 ins(r, "2", "two", "[1,  2]"));
	/* delete one of two identical rows: exactly one goes */
	APPLY_OK(t, 2, r, del(r, 'O', "1", NULL, "{\"x\": 1}"));
	flush_ok(t);
	ck_q1("2", "SELECT count(*) FROM app.log");
	ck_q1("1", "SELECT count(*) FROM app.log WHERE a = 1 AND b IS NULL");
	/* update matched through NULL and json (no '=' operator) */
	APPLY_OK(t, 3, r, upd(r, 'O', "1", NULL, "{\"x\": 1}", "1", "one", "{\"x\": 2}"),
		 upd(r, 'O', "2", "two", "[1,  2]", "2", NULL, "[1,  2]"));
	flush_ok(t);
	ck_q1("1:one:{\"x\": 2},2::[1,  2]", "SELECT string_agg(a||':'||coalesce(b,'')||':'||j,"
	      " ',' ORDER BY a) FROM app.log");
	struct ls_pgtarget_stats st;
	ls_pgtarget_stats(t, &st);
	ck_assert_uint_eq(st.missing_rows, 0);
	ls_pgtarget_free(t);
	ls_relation_free(r);
}
END_TEST

START_TEST(pgtarget_key_update_uses_old_key)
{
	struct ls_pgtarget *t = open_target(true, LS_DDL_APPLY, 5000, 100, -1);
	struct ls_relation *r = mkrel(1, "k", 'd', "a:integer:k|b:text:k|v:text");
	APPLY_OK(t, 1, r, ins(r, "1", "x", "one"), ins(r, "2", "y", "two"));
	APPLY_OK(t, 2, r, upd(r, 'K', "1", "x", NULL, "10", "x", "ten"));
	flush_ok(t);
	ck_q1("2:y:two,10:x:ten", "SELECT string_agg(a||':'||b||':'||v, ',' ORDER BY a) FROM app.k");
	ls_pgtarget_free(t);
	ls_relation_free(r);
}
END_TEST

START_TEST(pgtarget_groups_small_txns)
{
	struct ls_pgtarget *t = open_target(true, LS_DDL_APPLY, 1000, 600000, -1);
	struct ls_relation *r = mkrel(1, "g", 'd', "id:integer:k|v:text");
	char ids[50][12];
	for (int i = 0; i < 50; i++) {
		snprintf(ids[i], sizeof ids[i], "%d", i);
		APPLY_OK(t, 1000 + (uint64_t)i, r, ins(r, ids[i], "v"));
	}
	/* nothing visible until the group commits */
	ck_q1("t", "SELECT to_regclass('app.g') IS NULL");
	ck_q1("0", "SELECT source_seq FROM lockstep.checkpoint");
	ck_assert_int_eq(commits.calls, 0);
	int wait_ms;
	struct ls_err err;
	ck_assert_int_eq(ls_pgtarget_tick(t, &wait_ms, &err), 0);
	ck_assert_int_gt(wait_ms, 0);
	flush_ok(t);
	ck_q1("50", "SELECT count(*) FROM app.g");
	ck_q1("1049", "SELECT source_seq FROM lockstep.checkpoint");
	struct ls_pgtarget_stats st;
	ls_pgtarget_stats(t, &st);
	ck_assert_uint_eq(st.txns, 50);
	ck_assert_uint_le(st.commits, 2);   /* table creation may commit alone */
	ck_assert_int_eq(commits.calls, 1);
	ck_assert_uint_eq(commits.seq, 1049);
	ls_pgtarget_free(t);

	/* batch_rows bounds a group: 10 txns of 3 rows, batch of 6 rows */
	t = open_target(true, LS_DDL_APPLY, 6, 600000, -1);
	for (int i = 0; i < 10; i++) {
		char a[12], b[12], c[12];
		snprintf(a, sizeof a, "%d", 100 + 3 * i);
		snprintf(b, sizeof b, "%d", 101 + 3 * i);
		snprintf(c, sizeof c, "%d", 102 + 3 * i);
		APPLY_OK(t, 2000 + (uint64_t)i, r, ins(r, a, "x"), ins(r, b, "x"), ins(r, c, "x"));
	}
	flush_ok(t);   /* the last COMMIT may still be unanswered */
	ls_pgtarget_stats(t, &st);
	ck_assert_uint_eq(st.commits, 5);
	ck_assert_uint_eq(st.txns, 10);
	ck_q1("2009", "SELECT source_seq FROM lockstep.checkpoint");
	ls_pgtarget_free(t);
	ls_relation_free(r);
}
END_TEST

/* A result the server will never send (it holds it until a Sync or flush
 * request that never comes, and waits for us) is a deadlock the target
 * detects: a retryable error naming it, then reset() applies again. */
START_TEST(pgtarget_unanswered_wait_fails_instead_of_hanging)
{
	struct ls_pgtarget_opts o = {
		.pipeline = "shop", .target = "new", .conninfo = ls_testpg_conninfo(pg, db),
		.create_tables = true, .await_check_ms = 300,
	};
	struct ls_pgtarget *t;
	struct ls_err err = { 0 };
	ck_assert_msg(ls_pgtarget_new(&o, &t, &err) == 0, "open: %s", err.msg);
	ck_assert_int_lt(ls_pgtarget_test_unanswered(t, &err), 0);
	ck_assert(err.retryable);
	ck_assert_msg(strstr(err.msg, "waited for this session (ClientRead") != NULL, "%s", err.msg);
	ck_assert_int_eq(ls_pgtarget_reset(t, &err), 0);
	struct ls_relation *r = mkrel(1, "u", 'd', "id:integer:k|v:text");
	APPLY_OK(t, 3000, r, ins(r, "1", "after"));
	flush_ok(t);
	ck_q1("after", "SELECT v FROM app.u WHERE id = 1");
	ls_pgtarget_free(t);
	ls_relation_free(r);
}
END_TEST

START_TEST(pgtarget_crash_mid_group_leaves_checkpoint_consistent)
{
	struct ls_pgtarget *t = open_target(true, LS_DDL_APPLY, 100000, 600000, -1);
	struct ls_relation *r = mkrel(1, "c", 'd', "id:integer:k|v:text");
	APPLY_OK(t, 10, r, ins(r, "1", "first"));
	flush_ok(t);
	APPLY_OK(t, 11, r, ins(r, "2", "x"));
	APPLY_OK(t, 12, r, ins(r, "3", "x"), upd(r, 0, "1", "changed"));
	/* the target's connection dies before the group commits */
	ck_q1("t", "SELECT pg_terminate_backend(%d)", ls_pgtarget_backend_pid(t));
	struct ls_err err = { 0 };
	struct ls_txn x = txn(13);
	int rc = ls_pgtarget_begin(t, &x, &err);
	if (rc == 0)
		rc = ls_pgtarget_end(t, &x, 130, &err);
	if (rc == 0)
		rc = ls_pgtarget_flush(t, &err);
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(err.retryable, "not retryable: %s", err.msg);
	ck_q1("1:first", "SELECT string_agg(id||':'||v, ',' ORDER BY id) FROM app.c");
	ck_q1("10", "SELECT source_seq FROM lockstep.checkpoint");
	/* later calls refuse until reset; reset resumes at the checkpoint */
	ck_assert_int_eq(ls_pgtarget_begin(t, &x, &err), -1);
	ck_assert_msg(ls_pgtarget_reset(t, &err) == 0, "reset: %s", err.msg);
	struct ls_pgtarget_ckpt ck;
	ls_pgtarget_checkpoint(t, &ck);
	ck_assert_uint_eq(ck.source_seq, 10);
	ck_assert(ls_pgtarget_applied(t, 10) && !ls_pgtarget_applied(t, 11));
	APPLY_OK(t, 11, r, ins(r, "2", "x"));
	APPLY_OK(t, 12, r, ins(r, "3", "x"), upd(r, 0, "1", "changed"));
	flush_ok(t);
	ck_q1("1:changed,2:x,3:x", "SELECT string_agg(id||':'||v, ',' ORDER BY id) FROM app.c");
	ck_q1("12", "SELECT source_seq FROM lockstep.checkpoint");
	ls_pgtarget_free(t);

	/* abort before commit: a data error mid-group rolls the group back */
	t = open_target(true, LS_DDL_APPLY, 100000, 600000, -1);
	APPLY_OK(t, 20, r, ins(r, "20", "x"));
	struct ls_change bad[] = { ins(r, "21", "x"), ins(r, "not-a-number", "y") };
	rc = apply(t, 21, r, 2, bad, &err);
	if (rc == 0)
		rc = ls_pgtarget_flush(t, &err);
	ck_assert_int_eq(rc, -1);
	ck_assert(!err.retryable);
	ck_assert_str_eq(ls_pgtarget_sqlstate(t), "22P02");
	ck_assert_msg(strstr(err.msg, "\"app\".\"c\"") && strstr(err.msg, "column id") &&
		      strstr(err.msg, "not-a-number"), "%s", err.msg);
	ck_q1("0", "SELECT count(*) FROM app.c WHERE id >= 20");
	ck_q1("12", "SELECT source_seq FROM lockstep.checkpoint");
	ls_pgtarget_free(t);
	ls_relation_free(r);
}
END_TEST

static const char *const many_types =
	"id:integer:k|s:smallint|b8:bigint|n:numeric|n2:numeric(10,2)|f:double precision"
	"|t:text|vc:character varying(20)|by:bytea|bo:boolean|d:date"
	"|tm:time without time zone|ts:timestamp without time zone"
	"|tz:timestamp with time zone|iv:interval|u:uuid|js:json|jb:jsonb"
	"|ai:integer[]|at:text[]|m:app.mood|p:app.posint";

static const char *const many_values[] = {
	"1", "-32768", "-9223372036854775808", "NaN", "12.50", "1e+100",
	"h\xc3\xa9llo \xe2\x98\x83\t\"q\" 'a' \\ \x01 end\nline2\r",
	"abcde\xc3\xa9", "\\x00ff5c0a", "t", "2024-02-29", "23:59:59.999999",
	"2024-01-02 03:04:05.123456", "2024-01-02 03:04:05.123456+00",
	"1 year 2 mons 3 days 04:05:06.789", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
	"{\"b\": [1,2],   \"a\":1}", "{\"a\": 1, \"b\": [1, 2]}", "{1,2,NULL,-4}",
	"{\"a b\",\"c\\\"d\",NULL,\"\"}", "happy", "42",
};

/* Inserts one full row and one all-NULL row (copy_after decides COPY or
 * pipeline) and compares the target's text output with the input. */
static void round_trip(int copy_after)
{
	ls_testpg_exec(pg, db, "CREATE SCHEMA app; CREATE TYPE app.mood AS ENUM ('sad', 'happy');"
		       "CREATE DOMAIN app.posint AS integer CHECK (VALUE > 0)");
	struct ls_pgtarget *t = open_target(true, LS_DDL_APPLY, 5000, 100, copy_after);
	struct ls_relation *r = mkrel(1, "types", 'd', many_types);
	int n = r->ncols;
	ck_assert_int_eq(n, (int)(sizeof many_values / sizeof many_values[0]));
	struct ls_change c[3] = { { .op = LS_OP_INSERT, .relid = 1 },
				  { .op = LS_OP_INSERT, .relid = 1 },
				  { .op = LS_OP_INSERT, .relid = 1 } };
	for (int k = 0; k < 3; k++) {
		struct ls_value *v = ls_arena_alloc(&A, sizeof *v * (size_t)n);
		for (int i = 0; i < n; i++) {
			const char *s = many_values[i];
			v[i] = (struct ls_value){ .kind = LS_VAL_TEXT, .len = (uint32_t)strlen(s),
						  .data = s };
			if (k == 1 && i > 0)
				v[i] = (struct ls_value){ .kind = LS_VAL_NULL };
		}
		v[0].data = k == 0 ? "1" : k == 1 ? "2" : "3";
		if (k == 2) {   /* raw bytes for bytea (e.g. a MySQL BLOB) */
			v[8] = (struct ls_value){ .kind = LS_VAL_BINARY, .len = 3, .data = "\x00\x01\xff" };
		}
		c[k].new_tup = (struct ls_tuple){ .ncols = (uint16_t)n, .vals = v };
	}
	struct ls_err err = { 0 };
	ck_assert_msg(apply(t, 1, r, 3, c, &err) == 0, "apply: %s", err.msg);
	flush_ok(t);
	for (int i = 0; i < n; i++) {
		ck_q1(many_values[i][0] && i ? many_values[i] : "1",
		      "SELECT %s FROM app.types WHERE id = 1", r->cols[i].name);
		ck_q1(i ? NULL : "2", "SELECT %s FROM app.types WHERE id = 2", r->cols[i].name);
		char *type = q1("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE"
				" attrelid = 'app.types'::regclass AND attname = '%s'",
				r->cols[i].name);
		ck_assert_str_eq(type, r->cols[i].type_name);
		free(type);
	}
	ck_q1("\\x0001ff", "SELECT by FROM app.types WHERE id = 3");
	struct ls_pgtarget_stats st;
	ls_pgtarget_stats(t, &st);
	ck_assert_uint_eq(st.copy_rows, copy_after > 0 ? 3 - (unsigned)copy_after : 0);
	ls_pgtarget_free(t);
	ls_relation_free(r);
}

START_TEST(pgtarget_values_round_trip_pipeline)
{
	round_trip(-1);
}
END_TEST

START_TEST(pgtarget_values_round_trip_copy)
{
	round_trip(1);
}
END_TEST

START_TEST(pgtarget_create_rejects_unknown_type_and_keyless)
{
	struct ls_pgtarget *t = open_target(true, LS_DDL_APPLY, 5000, 100, -1);
	struct ls_relation *r = mkrel(1, "x", 'd', "id:integer:k|m:app.nosuchtype");
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_pgtarget_relation(t, r, &err), -1);
	ck_assert_msg(strstr(err.msg, "app.nosuchtype") && strstr(err.msg, "\"x\""), "%s", err.msg);
	ls_relation_free(r);
	ck_assert_int_eq(ls_pgtarget_reset(t, &err), 0);
	r = mkrel(2, "nokey", 'd', "a:integer|b:text");
	ck_assert_int_eq(ls_pgtarget_relation(t, r, &err), -1);
	ck_assert_msg(strstr(err.msg, "app.nokey") && strstr(err.msg, "no primary key"), "%s", err.msg);
	ls_pgtarget_free(t);
	ls_relation_free(r);
}
END_TEST

START_TEST(pgtarget_compat_mismatch_names_each_column)
{
	ls_testpg_exec(pg, db, "CREATE SCHEMA app; CREATE TABLE app.m (id integer, a text,"
		       " v character varying(40), extra date)");
	struct ls_pgtarget *t = open_target(false, LS_DDL_STOP, 5000, 100, -1);
	struct ls_relation *r = mkrel(1, "m", 'd', "id:integer:k|a:integer|b:text|v:varchar(20)");
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_pgtarget_relation(t, r, &err), -1);
	ck_assert_msg(strstr(err.msg, "column a is text, source has integer") &&
		      strstr(err.msg, "column b (text) missing") &&
		      strstr(err.msg, "no primary key or unique index on (id)") &&
		      !strstr(err.msg, "column v") && !strstr(err.msg, "extra"), "%s", err.msg);
	ls_relation_free(r);
	/* create_tables off and no table */
	ck_assert_int_eq(ls_pgtarget_reset(t, &err), 0);
	r = mkrel(2, "absent", 'd', "id:integer:k");
	ck_assert_int_eq(ls_pgtarget_relation(t, r, &err), -1);
	ck_assert_msg(strstr(err.msg, "app.absent does not exist"), "%s", err.msg);
	ls_pgtarget_free(t);
	ls_relation_free(r);
}
END_TEST

START_TEST(pgtarget_ddl_apply_add_alter_drop)
{
	struct ls_pgtarget *t = open_target(true, LS_DDL_APPLY, 5000, 100, -1);
	struct ls_relation *r1 = mkrel(5, "d", 'd', "id:integer:k|a:integer|gone:text");
	struct ls_relation *r2 = mkrel(5, "d", 'd', "id:integer:k|a:bigint|gone:text|c:text");
	struct ls_relation *r3 = mkrel(5, "d", 'd', "id:integer:k|a:bigint|c:text");
	APPLY_OK(t, 1, r1, ins(r1, "1", "5", "g"));
	APPLY_OK(t, 2, r2, ins(r2, "2", "9000000000", "g", "see"));
	APPLY_OK(t, 3, r3, upd(r3, 0, "1", "6", "c1"));
	flush_ok(t);
	ck_q1("id integer,a bigint,c text", "SELECT string_agg(attname||' '||format_type(atttypid,"
	      " atttypmod), ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'app.d'::regclass"
	      " AND attnum > 0 AND NOT attisdropped");
	ck_q1("1:6:c1,2:9000000000:see", "SELECT string_agg(id||':'||a||':'||c, ',' ORDER BY id)"
	      " FROM app.d");
	struct ls_pgtarget_stats st;
	ls_pgtarget_stats(t, &st);
	ck_assert_uint_ge(st.ddl, 3);
	ls_pgtarget_free(t);
	/* a restart that first sees the new definition adds the missing column */
	struct ls_relation *r4 = mkrel(5, "d", 'd', "id:integer:k|a:bigint|c:text|e:date");
	t = open_target(true, LS_DDL_APPLY, 5000, 100, -1);
	APPLY_OK(t, 4, r4, ins(r4, "4", "4", "x", "2024-05-01"));
	flush_ok(t);
	ck_q1("2024-05-01", "SELECT e FROM app.d WHERE id = 4");
	ls_pgtarget_free(t);
	ls_relation_free(r1);
	ls_relation_free(r2);
	ls_relation_free(r3);
	ls_relation_free(r4);
}
END_TEST

START_TEST(pgtarget_ddl_stop_errors_and_applies_nothing)
{
	struct ls_pgtarget *t = open_target(true, LS_DDL_STOP, 5000, 600000, -1);
	struct ls_relation *r1 = mkrel(5, "s", 'd', "id:integer:k|a:integer");
	struct ls_relation *r2 = mkrel(5, "s", 'd', "id:integer:k|a:integer|c:text");
	APPLY_OK(t, 1, r1, ins(r1, "1", "5"));
	flush_ok(t);
	APPLY_OK(t, 2, r1, ins(r1, "2", "6"));   /* grouped, not yet committed */
	struct ls_change c[] = { ins(r2, "3", "7", "x") };
	struct ls_err err = { 0 };
	ck_assert_int_eq(apply(t, 3, r2, 1, c, &err), -1);
	ck_assert(!err.retryable);
	ck_assert_msg(strstr(err.msg, "app.s") && strstr(err.msg, "column c added (text)") &&
		      strstr(err.msg, "ddl = stop"), "%s", err.msg);
	ck_q1("1", "SELECT string_agg(id::text, ',') FROM app.s");
	ck_q1("1", "SELECT source_seq FROM lockstep.checkpoint");
	ck_q1("2", "SELECT count(*) FROM pg_attribute WHERE attrelid = 'app.s'::regclass"
	      " AND attnum > 0 AND NOT attisdropped");
	ls_pgtarget_free(t);
	ls_relation_free(r1);
	ls_relation_free(r2);
}
END_TEST

/* 128 NULL patterns of a REPLICA IDENTITY FULL table: more statement shapes
 * than the per-table cache holds, so some go unprepared. */
START_TEST(pgtarget_full_identity_many_null_shapes)
{
	struct ls_pgtarget *t = open_target(true, LS_DDL_APPLY, 5000, 100, -1);
	struct ls_relation *r = mkrel(1, "shapes", 'f',
				      "id:integer|a:text|b:text|c:text|d:text|e:text|f:text|g:text");
	char ids[128][12];
	struct ls_txn x = txn(1);
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_pgtarget_begin(t, &x, &err), 0);
	for (int pass = 0; pass < 2; pass++)
		for (int m = 0; m < 128; m++) {
			snprintf(ids[m], sizeof ids[m], "%d", m);
			const char *v[8] = { ids[m] };
			for (int k = 0; k < 7; k++)
				v[k + 1] = (m >> k) & 1 ? "x" : NULL;
			struct ls_change c = pass == 0
				? ins(r, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7])
				: del(r, 'O', v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
			ck_assert_msg(ls_pgtarget_change(t, r, &c, &err) == 0, "%s", err.msg);
			if (pass == 0 && m == 127) {   /* a copy of each row stays */
				ck_assert_int_eq(ls_pgtarget_end(t, &x, 1, &err), 0);
				x = txn(2);
				ck_assert_int_eq(ls_pgtarget_begin(t, &x, &err), 0);
				for (int k = 0; k < 128; k++) {
					const char *w[8] = { ids[k] };
					for (int j = 0; j < 7; j++)
						w[j + 1] = (k >> j) & 1 ? "x" : NULL;
					struct ls_change c2 = ins(r, w[0], w[1], w[2], w[3], w[4],
								  w[5], w[6], w[7]);
					ck_assert_int_eq(ls_pgtarget_change(t, r, &c2, &err), 0);
				}
			}
		}
	ck_assert_int_eq(ls_pgtarget_end(t, &x, 2, &err), 0);
	flush_ok(t);
	ck_q1("128", "SELECT count(DISTINCT id) FROM app.shapes");
	ck_q1("128", "SELECT count(*) FROM app.shapes");
	struct ls_pgtarget_stats st;
	ls_pgtarget_stats(t, &st);
	ck_assert_uint_eq(st.missing_rows, 0);
	ls_pgtarget_free(t);
	ls_relation_free(r);
}
END_TEST

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One 100k-row source transaction, through COPY and through the pipeline. */
static double bulk(int copy_after, const char *name)
{
	struct ls_pgtarget *t = open_target(true, LS_DDL_APPLY, 5000, 100, copy_after);
	struct ls_relation *r = mkrel(copy_after < 0 ? 8 : 9, name, 'd',
				      "id:bigint:k|name:text|qty:integer|price:numeric(10,2)|at:timestamp with time zone");
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_pgtarget_relation(t, r, &err), 0);
	struct ls_txn x = txn(1);
	double t0 = now_s();
	ck_assert_int_eq(ls_pgtarget_begin(t, &x, &err), 0);
	enum { N = 100000 };
	for (int i = 0; i < N; i++) {
		char id[16], qty[16];
		snprintf(id, sizeof id, "%d", i);
		snprintf(qty, sizeof qty, "%d", i % 1000);
		struct ls_change c = ins(r, id, "a product name\twith tab", qty, "12.34",
					 "2024-01-02 03:04:05+00");
		ck_assert_msg(ls_pgtarget_change(t, r, &c, &err) == 0, "%s", err.msg);
		if (i % 1000 == 999)
			ls_arena_reset(&A);
	}
	ck_assert_int_eq(ls_pgtarget_end(t, &x, 1, &err), 0);
	flush_ok(t);
	double secs = now_s() - t0;
	ck_q1("100000", "SELECT count(*) FROM app.%s", name);
	ls_pgtarget_free(t);
	ls_relation_free(r);
	return N / secs;
}

START_TEST(pgtarget_bulk_insert_copy_vs_pipeline)
{
	double pipe = bulk(-1, "bulk_pipe");
	double copy = bulk(0, "bulk_copy");
	printf("pg_target 100k-row insert txn: pipeline %.0f rows/s, COPY %.0f rows/s\n", pipe, copy);
	fflush(stdout);
	ck_assert(pipe > 0 && copy > 0);
}
END_TEST

/* CPU seconds and voluntary context switches (times it slept waiting) of
 * process pid, from /proc (the test server runs on this machine). */
static void proc_usage(int pid, double *cpu, long *waits)
{
	char path[64], line[256];
	*cpu = 0;
	*waits = 0;
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (f) {
		unsigned long ut = 0, st = 0;
		if (fgets(line, sizeof line, f)) {
			const char *p = strrchr(line, ')');
			if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
					&ut, &st) == 2)
				*cpu = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
		}
		fclose(f);
	}
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
			*waits = atol(line + 24);
	if (f)
		fclose(f);
}

struct mix_rate {
	double rate;          /* changes/s */
	double server_us;     /* target backend CPU per change */
	double waits;         /* times the backend slept, per 1000 changes */
	double client_waits;  /* times this thread slept (on results), same */
};

/* pgbench's transaction as the source sends it (accounts, tellers and
 * branches updated, one history row inserted), N of them applied in
 * groups of 5000 changes; returns changes per second.  in_flight and
 * copy_after as in ls_pgtarget_opts.  The end state is checked. */
static struct mix_rate pgbench_mix(int in_flight, int copy_after, int round)
{
	enum { N = 12500, ACC = 100000, TEL = 100, BR = 10 };
	char acc[32], tel[32], br[32], hist[32];
	snprintf(acc, sizeof acc, "acc_%d_%d_%d", in_flight < 0, copy_after, round);
	snprintf(tel, sizeof tel, "tel_%d_%d_%d", in_flight < 0, copy_after, round);
	snprintf(br, sizeof br, "br_%d_%d_%d", in_flight < 0, copy_after, round);
	snprintf(hist, sizeof hist, "hist_%d_%d_%d", in_flight < 0, copy_after, round);
	ls_testpg_exec(pg, db, "CREATE SCHEMA IF NOT EXISTS app;"
		       " CREATE TABLE app.%s (aid integer PRIMARY KEY, abalance integer, filler text);"
		       " INSERT INTO app.%s SELECT g, 0, repeat('x', 84) FROM generate_series(1, %d) g;"
		       " CREATE TABLE app.%s (tid integer PRIMARY KEY, tbalance integer);"
		       " INSERT INTO app.%s SELECT g, 0 FROM generate_series(1, %d) g;"
		       " CREATE TABLE app.%s (bid integer PRIMARY KEY, bbalance integer);"
		       " INSERT INTO app.%s SELECT g, 0 FROM generate_series(1, %d) g;"
		       " CREATE TABLE app.%s (id bigint PRIMARY KEY, tid integer, bid integer,"
		       " aid integer, delta integer, mtime timestamp); ANALYZE",
		       acc, acc, ACC, tel, tel, TEL, br, br, BR, hist);
	struct ls_pgtarget_opts o = {
		.pipeline = "shop", .target = "new", .conninfo = ls_testpg_conninfo(pg, db),
		.ddl = LS_DDL_APPLY, .batch_rows = 5000, .batch_ms = 100,
		.copy_after = copy_after, .commits_in_flight = in_flight,
	};
	struct ls_pgtarget *t;
	struct ls_err err = { 0 };
	ck_assert_msg(ls_pgtarget_new(&o, &t, &err) == 0, "open: %s", err.msg);
	struct ls_relation *ra = mkrel(1, acc, 'd', "aid:integer:k|abalance:integer|filler:text");
	struct ls_relation *rt = mkrel(2, tel, 'd', "tid:integer:k|tbalance:integer");
	struct ls_relation *rb = mkrel(3, br, 'd', "bid:integer:k|bbalance:integer");
	struct ls_relation *rh = mkrel(4, hist, 'd', "id:bigint:k|tid:integer|bid:integer"
				       "|aid:integer|delta:integer|mtime:timestamp without time zone");
	static int abal[ACC + 1], tbal[TEL + 1], bbal[BR + 1];
	int pid = ls_pgtarget_backend_pid(t);
	double cpu0, cpu1;
	long w0, w1;
	proc_usage(pid, &cpu0, &w0);
	struct rusage ru0, ru1;
	getrusage(RUSAGE_THREAD, &ru0);
	memset(abal, 0, sizeof abal);
	memset(tbal, 0, sizeof tbal);
	memset(bbal, 0, sizeof bbal);
	uint32_t rnd = 12345;
	long long total = 0;
	double t0 = now_s();
	for (int i = 1; i <= N; i++) {
		rnd = rnd * 1103515245u + 12345u;
		int a = 1 + (int)(rnd >> 8) % ACC, te = 1 + (int)(rnd >> 4) % TEL;
		int b = 1 + (int)(rnd >> 12) % BR, d = (int)(rnd >> 16) % 10001 - 5000;
		abal[a] += d;
		tbal[te] += d;
		bbal[b] += d;
		total += d;
		char sa[16], st[16], sb[16], sd[16], sh[16], va[16], vt[16], vb[16];
		snprintf(sa, sizeof sa, "%d", a);
		snprintf(st, sizeof st, "%d", te);
		snprintf(sb, sizeof sb, "%d", b);
		snprintf(sd, sizeof sd, "%d", d);
		snprintf(sh, sizeof sh, "%d", i);
		snprintf(va, sizeof va, "%d", abal[a]);
		snprintf(vt, sizeof vt, "%d", tbal[te]);
		snprintf(vb, sizeof vb, "%d", bbal[b]);
		struct ls_txn x = txn((uint64_t)i);
		ck_assert_int_eq(ls_pgtarget_begin(t, &x, &err), 0);
		struct ls_change c[4] = {
			upd(ra, 0, sa, va, UNCH), upd(rt, 0, st, vt), upd(rb, 0, sb, vb),
			ins(rh, sh, st, sb, sa, sd, "2024-01-02 03:04:05"),
		};
		const struct ls_relation *rr[4] = { ra, rt, rb, rh };
		for (int k = 0; k < 4; k++)
			ck_assert_msg(ls_pgtarget_change(t, rr[k], &c[k], &err) == 0, "%s", err.msg);
		ck_assert_msg(ls_pgtarget_end(t, &x, i, &err) == 0, "%s", err.msg);
		ls_arena_reset(&A);
	}
	flush_ok(t);
	double secs = now_s() - t0;
	proc_usage(pid, &cpu1, &w1);
	getrusage(RUSAGE_THREAD, &ru1);
	char want[32];
	snprintf(want, sizeof want, "%lld", total);
	ck_q1(want, "SELECT sum(abalance) FROM app.%s", acc);
	ck_q1(want, "SELECT sum(tbalance) FROM app.%s", tel);
	ck_q1(want, "SELECT sum(delta) FROM app.%s", hist);
	snprintf(want, sizeof want, "%d", abal[ACC / 2]);
	ck_q1(want, "SELECT abalance FROM app.%s WHERE aid = %d", acc, ACC / 2);
	ck_q1("12500", "SELECT source_seq FROM lockstep.checkpoint");
	ls_pgtarget_free(t);
	ls_testpg_exec(pg, db, "DELETE FROM lockstep.checkpoint");
	ls_relation_free(ra);
	ls_relation_free(rt);
	ls_relation_free(rb);
	ls_relation_free(rh);
	return (struct mix_rate){ 4.0 * N / secs, (cpu1 - cpu0) * 1e6 / (4.0 * N),
				  (double)(w1 - w0) * 1000 / (4.0 * N),
				  (double)(ru1.ru_nvcsw - ru0.ru_nvcsw) * 1000 / (4.0 * N) };
}

START_TEST(pgtarget_pgbench_mix_rate)
{
	struct mix_rate r[2] = { { 0 } };
	/* LS_MIX_ROUNDS=n for a steadier comparison on a busy machine */
	int rounds = getenv("LS_MIX_ROUNDS") ? atoi(getenv("LS_MIX_ROUNDS")) : 2;
	rounds = rounds > 0 ? rounds : 2;
	for (int round = 0; round < rounds; round++)
		for (int v = 0; v < 2; v++) {
			struct mix_rate x = pgbench_mix(v ? 2 : -1, 0, round);
			if (x.rate > r[v].rate)
				r[v] = x;
		}
	for (int v = 0; v < 2; v++)
		printf("pg_target pgbench mix, %s: %.0f changes/s (best of %d), target backend "
		       "%.1f us CPU per change; per 1000 changes the backend waited %.2f times, "
		       "the client %.2f\n", v ? "COMMITs in flight" : "waiting for each COMMIT",
		       r[v].rate, rounds, r[v].server_us, r[v].waits, r[v].client_waits);
	fflush(stdout);
	ck_assert(r[0].rate > 0 && r[1].rate > 0);
}
END_TEST

/* ---- set-based apply -------------------------------------------------------- */

/* Polls a query until it returns want (statistics reach the server's view
 * asynchronously); returns the last value (owned). */
static char *poll_q1(const char *want, const char *sql)
{
	char *v = NULL;
	for (int i = 0; i < 500; i++) {
		free(v);
		v = q1("%s", sql);
		if (v && strcmp(v, want) == 0)
			break;
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	}
	return v;
}

/* Row versions the target wrote: updates and deletes, as the statistics of
 * the closed target session report them. */
#define ck_tup_stats(want, table)                                                   \
	LS_CK_STR_FREE(poll_q1(want, "SELECT n_tup_upd || '/' || n_tup_del FROM"     \
			       " pg_stat_user_tables WHERE relid = 'app." table "'::regclass"), want)

START_TEST(pgtarget_batch_ends_in_the_same_state_as_row_by_row)
{
	struct ls_pgtarget *t = open_target(true, LS_DDL_APPLY, 100000, 600000, -1);
	struct ls_relation *r = mkrel(1, "b", 'd', "id:integer:k|k2:text:k|v:text|n:integer");
	APPLY_OK(t, 1, r, ins(r, "1", "x", "one", "1"), ins(r, "2", "x", "two", "2"),
		 ins(r, "3", "x", "three", "3"), ins(r, "4", "x", "four", "4"),
		 ins(r, "5", "x", "five", "5"), ins(r, "6", "y,}", "six", "6"),
		 ins(r, "7", "x", "seven", "7"));
	flush_ok(t);
	/* one group: the same key updated three times keeps the last image;
	 * update then delete; delete then insert; a key change; awkward text */
	APPLY_OK(t, 2, r, upd(r, 0, "1", "x", "a1", "10"), upd(r, 0, "2", "x", "b1", "20"),
		 upd(r, 0, "1", "x", "a2", "11"));
	APPLY_OK(t, 3, r, upd(r, 0, "1", "x", "q\"u\\o,te{}", "12"), del(r, 'K', "2", "x", NULL, NULL),
		 del(r, 'K', "3", "x", NULL, NULL), ins(r, "3", "x", "three again", "33"));
	APPLY_OK(t, 4, r, upd(r, 'K', "4", "x", NULL, NULL, "40", "x", "forty", "40"),
		 upd(r, 0, "3", "x", "NULL", NULL), upd(r, 0, "6", "y,}", "", "66"),
		 upd(r, 0, "7", "x", "NULL", NULL),
		 upd(r, 'O', "5", "x", "five", "5", "5", "x", "full old row", "55"));
	APPLY_OK(t, 5, r, del(r, 'K', "3", "x", NULL, NULL), ins(r, "3", "x", "three once more", "333"),
		 upd(r, 0, "5", "x", "five last", "555"));
	flush_ok(t);
	ck_q1("1|x|q\"u\\o,te{}|12;3|x|three once more|333;5|x|five last|555;6|y,}||66;"
	      "7|x|NULL|<null>;40|x|forty|40",
	      "SELECT string_agg(id||'|'||k2||'|'||coalesce(v, '<null>')||'|'||coalesce(n::text, '<null>'),"
	      " ';' ORDER BY id) FROM app.b");
	ck_q1("5", "SELECT source_seq FROM lockstep.checkpoint");
	struct ls_pgtarget_stats st;
	ls_pgtarget_stats(t, &st);
	ck_assert_uint_eq(st.missing_rows, 0);
	ck_assert_uint_eq(st.rows, 7 + 15);
	ls_pgtarget_free(t);
	/* row by row would have written 10 updates and 3 deletes; key 1,
	 * updated three times within one batch, was written once (5's two
	 * updates are in two batches: the delete of 3 in between ends one) */
	ck_tup_stats("8/3", "b");
	ls_relation_free(r);
}
END_TEST

START_TEST(pgtarget_batch_keeps_unchanged_toast_and_counts_missing)
{
	struct ls_pgtarget *t = open_target(true, LS_DDL_APPLY, 100000, 600000, -1);
	struct ls_relation *r = mkrel(1, "docs", 'd', "id:bigint:k|body:text|n:integer");
	char *big = malloc(50001);
	for (int i = 0; i < 50000; i++)
		big[i] = (char)('a' + (i * 7) % 26);
	big[50000] = '\0';
	APPLY_OK(t, 1, r, ins(r, "7", big, "1"), ins(r, "8", big, "1"), ins(r, "9", big, "1"));
	flush_ok(t);
	/* two rows without the TOAST column batch together, the third (with
	 * it) goes in another statement; 99 matches nothing (drift) */
	APPLY_OK(t, 2, r, upd(r, 0, "7", UNCH, "2"), upd(r, 0, "8", UNCH, "3"),
		 upd(r, 0, "9", "small", "4"), upd(r, 0, "7", UNCH, "5"), upd(r, 0, "99", UNCH, "9"));
	flush_ok(t);
	ck_q1("7:50000:5,8:50000:3,9:5:4", "SELECT string_agg(id||':'||length(body)||':'||n, ','"
	      " ORDER BY id) FROM app.docs");
	char head[21];
	snprintf(head, sizeof head, "%.20s", big);
	ck_q1(head, "SELECT substr(body, 1, 20) FROM app.docs WHERE id = 8");
	struct ls_pgtarget_stats st;
	ls_pgtarget_stats(t, &st);
	ck_assert_uint_eq(st.missing_rows, 1);
	free(big);
	ls_pgtarget_free(t);
	ls_relation_free(r);
}
END_TEST

/* Tables whose order of row changes others can observe (a foreign key, a
 * trigger) are applied row by row, in source order. */
START_TEST(pgtarget_fk_and_trigger_tables_go_row_by_row)
{
	ls_testpg_exec(pg, db, "CREATE SCHEMA app;"
		       "CREATE TABLE app.p (id integer PRIMARY KEY, v text);"
		       "CREATE TABLE app.c (id integer PRIMARY KEY, pid integer REFERENCES app.p, v text);"
		       "CREATE TABLE app.tr (id integer PRIMARY KEY, v text);"
		       "CREATE TABLE app.tr_log (seq serial, id integer, v text);"
		       "CREATE FUNCTION app.tr_note() RETURNS trigger LANGUAGE plpgsql AS"
		       " $$ BEGIN INSERT INTO app.tr_log (id, v) VALUES (NEW.id, NEW.v); RETURN NEW; END $$;"
		       "CREATE TRIGGER tr_note AFTER UPDATE ON app.tr FOR EACH ROW"
		       " EXECUTE FUNCTION app.tr_note();"
		       "ALTER TABLE app.tr ENABLE ALWAYS TRIGGER tr_note");
	struct ls_pgtarget *t = open_target(false, LS_DDL_APPLY, 100000, 600000, -1);
	struct ls_relation *p = mkrel(1, "p", 'd', "id:integer:k|v:text");
	struct ls_relation *c = mkrel(2, "c", 'd', "id:integer:k|pid:integer|v:text");
	struct ls_relation *tr = mkrel(3, "tr", 'd', "id:integer:k|v:text");
	APPLY_OK(t, 1, p, ins(p, "1", "p1"), ins(p, "2", "p2"));
	APPLY_OK(t, 2, c, ins(c, "10", "1", "c"), ins(c, "11", "2", "c"));
	APPLY_OK(t, 3, tr, ins(tr, "1", "a"));
	flush_ok(t);
	APPLY_OK(t, 4, c, upd(c, 0, "10", "2", "c1"), upd(c, 0, "10", "2", "c2"),
		 del(c, 'K', "11", NULL, NULL));
	APPLY_OK(t, 5, p, upd(p, 0, "1", "p1b"), del(p, 'K', "1", NULL));
	APPLY_OK(t, 6, tr, upd(tr, 0, "1", "b"), upd(tr, 0, "1", "c"), upd(tr, 0, "1", "d"));
	flush_ok(t);
	ck_q1("2:p2", "SELECT string_agg(id||':'||v, ',' ORDER BY id) FROM app.p");
	ck_q1("10:2:c2", "SELECT string_agg(id||':'||pid||':'||v, ',' ORDER BY id) FROM app.c");
	/* the trigger saw every update, in order */
	ck_q1("b,c,d", "SELECT string_agg(v, ',' ORDER BY seq) FROM app.tr_log");
	ls_pgtarget_free(t);
	ck_tup_stats("2/1", "c");
	ck_tup_stats("1/1", "p");
	ls_relation_free(p);
	ls_relation_free(c);
	ls_relation_free(tr);
}
END_TEST

/* A failing batch statement cannot say which row failed: its error names
 * the table and the batch's key range and is retryable; the reset replays
 * the group row by row, where the error names the row. */
START_TEST(pgtarget_batch_error_names_table_and_key)
{
	ls_testpg_exec(pg, db, "CREATE SCHEMA app; CREATE TABLE app.e (id integer PRIMARY KEY,"
		       " n integer CHECK (n >= 0))");
	struct ls_pgtarget *t = open_target(false, LS_DDL_APPLY, 100000, 600000, -1);
	struct ls_relation *r = mkrel(1, "e", 'd', "id:integer:k|n:integer");
	APPLY_OK(t, 1, r, ins(r, "1", "1"), ins(r, "2", "2"), ins(r, "3", "3"));
	flush_ok(t);
	struct ls_change bad[] = { upd(r, 0, "1", "10"), upd(r, 0, "2", "-1"), upd(r, 0, "3", "30") };
	struct ls_err err = { 0 };
	int rc = apply(t, 2, r, 3, bad, &err);
	if (rc == 0)
		rc = ls_pgtarget_flush(t, &err);
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(err.retryable, "not retryable: %s", err.msg);
	ck_assert_msg(strstr(err.msg, "\"app\".\"e\" UPDATE") && strstr(err.msg, "(id)=(\"1\")") &&
		      strstr(err.msg, "(\"3\"), 3 rows") && strstr(err.msg, "e_n_check"), "%s",
		      err.msg);
	ck_assert_msg(ls_pgtarget_reset(t, &err) == 0, "reset: %s", err.msg);
	rc = apply(t, 2, r, 3, bad, &err);
	if (rc == 0)
		rc = ls_pgtarget_flush(t, &err);
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(!err.retryable, "retryable: %s", err.msg);
	ck_assert_str_eq(ls_pgtarget_sqlstate(t), "23514");
	ck_assert_msg(strstr(err.msg, "\"app\".\"e\" UPDATE key (id)=(2)") &&
		      strstr(err.msg, "e_n_check"), "%s", err.msg);
	ck_q1("1:1,2:2,3:3", "SELECT string_agg(id||':'||n, ',' ORDER BY id) FROM app.e");
	ck_q1("1", "SELECT source_seq FROM lockstep.checkpoint");
	ls_pgtarget_free(t);
	ls_relation_free(r);
}
END_TEST

/* ---- commits in flight ------------------------------------------------------- */

/* Every on_commit call, in order. */
static struct {
	int n;
	uint64_t seq[64];
	int64_t off[64];
} reported;

static void record_commit(void *ctx, int64_t off, const struct ls_pos *pos)
{
	(void)ctx;
	ck_assert_int_lt(reported.n, 64);
	reported.seq[reported.n] = pos->seq;
	reported.off[reported.n++] = off;
}

/* One group per source transaction (batch_rows 1), COMMITs answered late. */
static struct ls_pgtarget *open_overlap(bool create)
{
	struct ls_pgtarget_opts o = {
		.pipeline = "shop", .target = "new", .conninfo = ls_testpg_conninfo(pg, db),
		.create_tables = create, .ddl = LS_DDL_APPLY, .batch_rows = 1,
		.batch_ms = 600000, .copy_after = -1, .on_commit = record_commit,
	};
	struct ls_pgtarget *t;
	struct ls_err err = { 0 };
	memset(&reported, 0, sizeof reported);
	ck_assert_msg(ls_pgtarget_new(&o, &t, &err) == 0, "open: %s", err.msg);
	return t;
}

static void ck_reported(int n, const uint64_t *seqs)
{
	ck_assert_int_eq(reported.n, n);
	for (int i = 0; i < n; i++) {
		ck_assert_uint_eq(reported.seq[i], seqs[i]);
		ck_assert_int_eq(reported.off[i], (int64_t)seqs[i] * 10);
	}
}

/* end() sends a full group's COMMIT and goes on without its answer; the
 * group is reported once the answer is read (at the latest when a third
 * group would be in flight, or at flush), in order, with its rows. */
START_TEST(pgtarget_commit_in_flight_reported_in_order)
{
	struct ls_pgtarget *t = open_overlap(true);
	struct ls_relation *r = mkrel(1, "o", 'd', "id:integer:k|v:text");
	APPLY_OK(t, 1, r, ins(r, "1", "a"));
	ck_reported(0, NULL);   /* sent, not waited for */
	APPLY_OK(t, 2, r, upd(r, 0, "1", "b"), upd(r, 0, "99", "missing"));
	ck_reported(0, NULL);
	APPLY_OK(t, 3, r, ins(r, "3", "c"));
	ck_reported(1, (uint64_t[]){ 1 });   /* at most two stay unanswered */
	struct ls_pgtarget_ckpt ck;
	ls_pgtarget_checkpoint(t, &ck);
	ck_assert_uint_eq(ck.source_seq, 1);
	flush_ok(t);
	ck_reported(3, (uint64_t[]){ 1, 2, 3 });
	ls_pgtarget_checkpoint(t, &ck);
	ck_assert_uint_eq(ck.source_seq, 3);
	ck_assert_int_eq(ck.buffer_offset, 30);
	ck_q1("3", "SELECT source_seq FROM lockstep.checkpoint");
	ck_q1("1:b,3:c", "SELECT string_agg(id||':'||v, ',' ORDER BY id) FROM app.o");
	struct ls_pgtarget_stats st;
	ls_pgtarget_stats(t, &st);
	ck_assert_uint_eq(st.commits, 3);
	ck_assert_uint_eq(st.txns, 3);
	ck_assert_uint_eq(st.rows, 4);
	ck_assert_uint_eq(st.missing_rows, 1);   /* counted with its own group */
	/* tick reads an answer once it is batch_ms old; not before */
	APPLY_OK(t, 4, r, ins(r, "4", "d"));
	int wait_ms = -1;
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_pgtarget_tick(t, &wait_ms, &err), 0);
	ck_assert_int_gt(wait_ms, 0);
	ck_reported(3, (uint64_t[]){ 1, 2, 3 });
	flush_ok(t);
	ck_reported(4, (uint64_t[]){ 1, 2, 3, 4 });
	ls_pgtarget_free(t);
	ls_relation_free(r);
}
END_TEST

/* A COMMIT that fails while the next group is already sent: neither group
 * is reported, nothing of either is visible, the checkpoint stays, and the
 * replay after reset lands both exactly once. */
START_TEST(pgtarget_failed_commit_in_flight_reports_neither)
{
	struct ls_pgtarget *t = open_overlap(true);
	struct ls_relation *r = mkrel(1, "f", 'd', "id:integer:k|v:text");
	APPLY_OK(t, 1, r, ins(r, "1", "ok"));
	flush_ok(t);
	/* a deferred check: the row is accepted, its group's COMMIT fails */
	ls_testpg_exec(pg, db, "CREATE FUNCTION app.no_bad() RETURNS trigger LANGUAGE plpgsql AS"
		       " $$ BEGIN IF NEW.v = 'bad' THEN RAISE EXCEPTION 'bad row %%', NEW.id;"
		       " END IF; RETURN NULL; END $$;"
		       " CREATE CONSTRAINT TRIGGER no_bad AFTER INSERT ON app.f DEFERRABLE"
		       " INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION app.no_bad();"
		       " ALTER TABLE app.f ENABLE ALWAYS TRIGGER no_bad");
	APPLY_OK(t, 2, r, ins(r, "2", "bad"));
	APPLY_OK(t, 3, r, ins(r, "3", "fine"));
	ck_reported(1, (uint64_t[]){ 1 });
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_pgtarget_flush(t, &err), -1);
	ck_assert_msg(strstr(err.msg, "bad row 2"), "%s", err.msg);
	ck_reported(1, (uint64_t[]){ 1 });
	struct ls_pgtarget_ckpt ck;
	ls_pgtarget_checkpoint(t, &ck);
	ck_assert_uint_eq(ck.source_seq, 1);
	ck_q1("1", "SELECT source_seq FROM lockstep.checkpoint");
	ck_q1("1:ok", "SELECT string_agg(id||':'||v, ',' ORDER BY id) FROM app.f");
	/* the cause goes away; the replay from the checkpoint lands once */
	ls_testpg_exec(pg, db, "DROP TRIGGER no_bad ON app.f");
	ck_assert_msg(ls_pgtarget_reset(t, &err) == 0, "reset: %s", err.msg);
	ls_pgtarget_checkpoint(t, &ck);
	ck_assert_uint_eq(ck.source_seq, 1);
	APPLY_OK(t, 2, r, ins(r, "2", "bad"));
	/* savepoint mode after a reset: that group's COMMIT was waited for */
	ck_reported(2, (uint64_t[]){ 1, 2 });
	APPLY_OK(t, 3, r, ins(r, "3", "fine"));
	flush_ok(t);
	ck_reported(3, (uint64_t[]){ 1, 2, 3 });
	ck_q1("1:ok,2:bad,3:fine", "SELECT string_agg(id||':'||v, ',' ORDER BY id) FROM app.f");
	ck_q1("3", "SELECT source_seq FROM lockstep.checkpoint");
	ls_pgtarget_free(t);
	ls_relation_free(r);
}
END_TEST

/* A group that fails after the previous one's COMMIT was sent: the earlier
 * group is reported once its COMMIT is read, the failed one never. */
START_TEST(pgtarget_error_after_commit_in_flight_reports_the_committed)
{
	struct ls_pgtarget *t = open_overlap(true);
	struct ls_relation *r = mkrel(1, "e", 'd', "id:integer:k|v:text");
	APPLY_OK(t, 1, r, ins(r, "1", "a"));
	APPLY_OK(t, 2, r, ins(r, "2", "b"));
	ck_reported(0, NULL);
	struct ls_change bad[] = { ins(r, "not-a-number", "c") };
	struct ls_err err = { 0 };
	int rc = apply(t, 3, r, 1, bad, &err);
	if (rc == 0)
		rc = ls_pgtarget_flush(t, &err);
	ck_assert_int_eq(rc, -1);
	ck_assert_str_eq(ls_pgtarget_sqlstate(t), "22P02");
	ck_reported(2, (uint64_t[]){ 1, 2 });
	ck_q1("2", "SELECT source_seq FROM lockstep.checkpoint");
	ck_q1("1:a,2:b", "SELECT string_agg(id||':'||v, ',' ORDER BY id) FROM app.e");
	ls_pgtarget_free(t);
	ls_relation_free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pg_target");
	TCase *tc = tcase_create("apply");
	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_add_checked_fixture(tc, test_setup, test_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, pgtarget_applies_insert_update_delete_truncate);
	tcase_add_test(tc, pgtarget_unchanged_toast_keeps_old_value);
	tcase_add_test(tc, pgtarget_replica_identity_full_duplicates_and_nulls);
	tcase_add_test(tc, pgtarget_key_update_uses_old_key);
	tcase_add_test(tc, pgtarget_full_identity_many_null_shapes);
	tcase_add_test(tc, pgtarget_groups_small_txns);
	tcase_add_test(tc, pgtarget_unanswered_wait_fails_instead_of_hanging);
	tcase_add_test(tc, pgtarget_crash_mid_group_leaves_checkpoint_consistent);
	tcase_add_test(tc, pgtarget_values_round_trip_pipeline);
	tcase_add_test(tc, pgtarget_values_round_trip_copy);
	tcase_add_test(tc, pgtarget_create_rejects_unknown_type_and_keyless);
	tcase_add_test(tc, pgtarget_compat_mismatch_names_each_column);
	tcase_add_test(tc, pgtarget_ddl_apply_add_alter_drop);
	tcase_add_test(tc, pgtarget_ddl_stop_errors_and_applies_nothing);
	tcase_add_test(tc, pgtarget_bulk_insert_copy_vs_pipeline);
	tcase_add_test(tc, pgtarget_pgbench_mix_rate);
	tcase_add_test(tc, pgtarget_batch_ends_in_the_same_state_as_row_by_row);
	tcase_add_test(tc, pgtarget_batch_keeps_unchanged_toast_and_counts_missing);
	tcase_add_test(tc, pgtarget_fk_and_trigger_tables_go_row_by_row);
	tcase_add_test(tc, pgtarget_batch_error_names_table_and_key);
	tcase_add_test(tc, pgtarget_commit_in_flight_reported_in_order);
	tcase_add_test(tc, pgtarget_failed_commit_in_flight_reports_neither);
	tcase_add_test(tc, pgtarget_error_after_commit_in_flight_reports_the_committed);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
