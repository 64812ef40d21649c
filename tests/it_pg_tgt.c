/* Integration tests for the PostgreSQL target as the pipeline sees it:
 * everything goes through ls_pg_target_ops (connectors/postgres/pg_tgt.h)
 * against a real PostgreSQL 15.  One server for the suite; each test works
 * in a database of its own. */
#include <check.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apply.h"
#include "codec.h"
#include "connectors/postgres/pg_tgt.h"
#include "tests/helpers/testsrv.h"
#include "tests/helpers/testchg.h"
#include "tests/helpers/testutil.h"

static const struct ls_target_ops *ops = &ls_pg_target_ops;
static struct ls_testpg *pg;
static struct ls_arena A;
static char db[64];
static int db_seq;
static struct ls_config_target cfg;

static void suite_setup(void)
{
	pg = ls_testpg_start(NULL);
}

static void suite_teardown(void)
{
	ls_testpg_stop(pg);
}

static void test_setup(void)
{
	snprintf(db, sizeof db, "tgt_%d_%d", (int)getpid(), ++db_seq);
	ls_testpg_exec(pg, "postgres", "CREATE DATABASE %s", db);
	ls_arena_init(&A);
	cfg = (struct ls_config_target){
		.name = "new", .type = LS_ENGINE_POSTGRES,
		.conninfo = (char *)ls_testpg_conninfo(pg, db),
		.create_tables = true, .ddl = LS_DDL_APPLY,
		.batch_rows = 100000, .batch_ms = 600000,
	};
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

static struct ls_target *open_target(void)
{
	struct ls_target_opts o = { .pipeline = "shop", .cfg = &cfg,
				    .on_commit = ls_testchg_on_commit, .ctx = &commits };
	struct ls_target *t;
	struct ls_err err = { 0 };
	memset(&commits, 0, sizeof commits);
	ck_assert_msg(ops->open(&o, &t, &err) == 0, "open: %s", err.msg);
	return t;
}

/* "name:type[:k]|..." (k = key column), schema app */
#define mkrel(id, name, spec) ls_testchg_rel(id, "app", name, LS_REPLIDENT_DEFAULT, spec)
#define ins(r, ...) ls_testchg_ins(&A, r, __VA_ARGS__)
/* new values only (the key identifies the row) */
#define upd(r, ...) ls_testchg_upd(&A, r, 0, __VA_ARGS__)
/* the old row's key (other columns NULL) */
#define del(r, ...) ls_testchg_del(&A, r, LS_OLD_KEY, __VA_ARGS__)

static struct ls_txn txn(uint64_t seq)
{
	struct ls_txn x = { .xid = seq };
	x.commit.seq = seq;
	snprintf(x.commit.text, sizeof x.commit.text, "0/%llX", (unsigned long long)seq);
	return x;
}

static void begin_ok(struct ls_target *t, uint64_t seq)
{
	struct ls_txn x = txn(seq);
	struct ls_err err = { 0 };
	ck_assert_msg(ops->begin(t, &x, &err) == 0, "begin: %s", err.msg);
}

static void change_ok(struct ls_target *t, const struct ls_relation *r, struct ls_change c)
{
	struct ls_err err = { 0 };
	ck_assert_msg(ops->change(t, r, &c, &err) == 0, "change: %s", err.msg);
}

static void end_ok(struct ls_target *t, uint64_t seq)
{
	struct ls_txn x = txn(seq);
	struct ls_err err = { 0 };
	ck_assert_msg(ops->end(t, &x, (int64_t)seq * 10, &err) == 0, "end: %s", err.msg);
}

static void abort_ok(struct ls_target *t)
{
	struct ls_err err = { 0 };
	ck_assert_msg(ops->abort_txn(t, &err) == 0, "abort_txn: %s", err.msg);
}

static void reset_ok(struct ls_target *t)
{
	struct ls_err err = { 0 };
	ck_assert_msg(ops->reset(t, &err) == 0, "reset: %s", err.msg);
}

/* Abandoning a transaction in a group without savepoints (the normal
 * mode) rolls the whole group back with a retryable error; the pipeline
 * then resets and replays. */
static void abort_fails_retryably(struct ls_target *t)
{
	struct ls_err err = { 0 };
	ck_assert_int_lt(ops->abort_txn(t, &err), 0);
	ck_assert_msg(err.retryable, "not retryable: %s", err.msg);
	ck_assert_ptr_nonnull(strstr(err.msg, "savepoint"));
	struct ls_txn x = txn(99);
	ck_assert_int_lt(ops->begin(t, &x, &err), 0);   /* failed until reset */
}

/* Abandons the open transaction: pass 0 (normal mode) fails retryably and
 * resets, pass 1 (savepoint mode after the reset) succeeds. */
static void abort_in_pass(struct ls_target *t, int pass)
{
	if (pass == 0) {
		abort_fails_retryably(t);
		reset_ok(t);
	} else {
		abort_ok(t);
	}
}

static void flush_ok(struct ls_target *t)
{
	struct ls_err err = { 0 };
	ck_assert_msg(ops->flush(t, &err) == 0, "flush: %s", err.msg);
}

static void ckpt_is(struct ls_target *t, uint64_t seq)
{
	struct ls_target_ckpt ck;
	ops->checkpoint(t, &ck);
	ck_assert(ck.present);
	ck_assert_uint_eq(ck.source_seq, seq);
	ck_assert_int_eq(ck.buffer_offset, (int64_t)seq * 10);
	ck_q1(ck.source_pos, "SELECT source_pos FROM lockstep.checkpoint WHERE pipeline = 'shop'"
	      " AND target = 'new'");
}

static void prepare_ok(struct ls_target *t, const struct ls_relation *r)
{
	struct ls_err err = { 0 };
	ck_assert_msg(ops->prepare_table(t, r, &err) == 0, "prepare_table: %s", err.msg);
}

/* ---- apply side ------------------------------------------------------------- */

START_TEST(pgtgt_full_round_applies_and_checkpoints)
{
	ck_assert_str_eq(ops->engine, "postgres");
	ck_assert_str_eq(ops->copy_format, "pg-text");
	cfg.batch_ms = 600000;
	struct ls_target *t = open_target();
	struct ls_target_ckpt ck;
	ops->checkpoint(t, &ck);
	ck_assert(!ck.present);
	struct ls_relation *r = mkrel(1, "items", "id:integer:k|name:text|qty:integer");
	struct ls_err err = { 0 };
	ck_assert_msg(ops->relation(t, r, &err) == 0, "relation: %s", err.msg);

	begin_ok(t, 100);
	change_ok(t, r, ins(r, "1", "a", "1"));
	change_ok(t, r, ins(r, "2", "b", "2"));
	change_ok(t, r, ins(r, "3", "c", "3"));
	end_ok(t, 100);
	begin_ok(t, 101);
	change_ok(t, r, upd(r, "2", "B", "20"));
	change_ok(t, r, del(r, "3", NULL, NULL));
	end_ok(t, 101);
	/* the group is open: nothing visible, no commit reported */
	ck_q1("0", "SELECT count(*) FROM app.items");
	ck_assert_int_eq(commits.calls, 0);
	int wait_ms = -2;
	ck_assert_int_eq(ops->tick(t, &wait_ms, &err), 0);
	ck_assert_int_gt(wait_ms, 0);

	flush_ok(t);
	ck_q1("1:a:1,2:B:20", "SELECT string_agg(id||':'||name||':'||qty, ',' ORDER BY id)"
	      " FROM app.items");
	ckpt_is(t, 101);
	ck_assert_int_eq(commits.calls, 1);
	ck_assert_uint_eq(commits.seq, 101);
	ck_assert_int_eq(commits.offset, 1010);
	struct ls_target_stats st;
	ops->stats(t, &st);
	ck_assert_uint_eq(st.txns, 2);
	ck_assert_uint_eq(st.rows, 5);
	ck_assert_uint_eq(st.copy_rows, 0);
	ck_assert_int_eq(ops->tick(t, &wait_ms, &err), 0);
	ck_assert_int_eq(wait_ms, -1);

	/* reset reconnects and reports the same checkpoint */
	ck_assert_msg(ops->reset(t, &err) == 0, "reset: %s", err.msg);
	ckpt_is(t, 101);
	ops->free(t);
	ops->free(NULL);

	/* a new instance resumes from the stored checkpoint */
	t = open_target();
	ckpt_is(t, 101);
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

START_TEST(pgtgt_prepare_table_creates_or_checks)
{
	struct ls_target *t = open_target();
	struct ls_relation *r = mkrel(7, "made", "id:bigint:k|note:text|at:timestamp with time zone");
	prepare_ok(t, r);
	ck_q1("id:bigint,note:text,at:timestamp with time zone",
	      "SELECT string_agg(attname||':'||format_type(atttypid, atttypmod), ',' ORDER BY attnum)"
	      " FROM pg_attribute WHERE attrelid = 'app.made'::regclass AND attnum > 0");
	ck_q1("id", "SELECT string_agg(a.attname, ',') FROM pg_index i JOIN pg_attribute a"
	      " ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)"
	      " WHERE i.indrelid = 'app.made'::regclass AND i.indisprimary");
	ops->free(t);

	/* create_tables off: an existing compatible table passes, a missing
	 * one and an incompatible one are errors naming the table */
	cfg.create_tables = false;
	t = open_target();
	prepare_ok(t, r);
	struct ls_relation *missing = mkrel(8, "nowhere", "id:integer:k");
	struct ls_err err = { 0 };
	ck_assert_int_lt(ops->prepare_table(t, missing, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "nowhere"));
	ck_assert(!err.retryable);
	ops->free(t);
	ls_testpg_exec(pg, db, "CREATE TABLE app.odd (id integer PRIMARY KEY, v integer)");
	t = open_target();
	struct ls_relation *odd = mkrel(9, "odd", "id:integer:k|v:text");
	ck_assert_int_lt(ops->prepare_table(t, odd, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "column v"));
	ops->free(t);
	ls_relation_free(r);
	ls_relation_free(missing);
	ls_relation_free(odd);
}
END_TEST

/* Txn A applied, B abandoned midway, C applied.  The first time the abort
 * takes the whole group with it (no savepoints); replayed after the reset,
 * B goes alone and one commit holds A and C. */
START_TEST(pgtgt_abort_txn_keeps_rest_of_group)
{
	struct ls_target *t = open_target();
	struct ls_relation *r = mkrel(1, "g", "id:integer:k|v:text");
	for (int pass = 0; pass < 2; pass++) {
		begin_ok(t, 10);
		change_ok(t, r, ins(r, "1", "A"));
		change_ok(t, r, ins(r, "2", "A"));
		end_ok(t, 10);
		begin_ok(t, 11);
		change_ok(t, r, ins(r, "3", "B"));
		change_ok(t, r, upd(r, "1", "B"));
		change_ok(t, r, del(r, "2", NULL));
		abort_in_pass(t, pass);
	}
	ck_assert_int_eq(commits.calls, 0);
	begin_ok(t, 12);
	change_ok(t, r, ins(r, "4", "C"));
	end_ok(t, 12);
	flush_ok(t);
	ck_q1("1:A,2:A,4:C", "SELECT string_agg(id||':'||v, ',' ORDER BY id) FROM app.g");
	ckpt_is(t, 12);
	ck_assert_int_eq(commits.calls, 1);
	ck_assert_uint_eq(commits.seq, 12);
	struct ls_target_stats st;
	ops->stats(t, &st);
	ck_assert_uint_eq(st.txns, 2);
	ck_assert_uint_eq(st.rows, 3);
	ck_assert_uint_eq(st.commits, 1);

	/* savepoint mode ended with that commit: the next group has none */
	begin_ok(t, 13);
	change_ok(t, r, ins(r, "5", "D"));
	end_ok(t, 13);
	begin_ok(t, 14);
	change_ok(t, r, ins(r, "6", "E"));
	abort_fails_retryably(t);
	reset_ok(t);
	ckpt_is(t, 12);
	ck_q1("0", "SELECT count(*) FROM app.g WHERE id >= 5");
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

/* The abandoned transaction opened the group: the whole group goes. */
START_TEST(pgtgt_abort_first_txn_of_group)
{
	struct ls_target *t = open_target();
	struct ls_relation *r = mkrel(1, "g", "id:integer:k|v:text");
	prepare_ok(t, r);
	begin_ok(t, 20);
	change_ok(t, r, ins(r, "1", "B"));
	abort_ok(t);
	int wait_ms;
	struct ls_err err = { 0 };
	ck_assert_int_eq(ops->tick(t, &wait_ms, &err), 0);
	ck_assert_int_eq(wait_ms, -1);   /* no group open any more */
	begin_ok(t, 21);
	change_ok(t, r, ins(r, "1", "C"));
	end_ok(t, 21);
	flush_ok(t);
	ck_q1("1:C", "SELECT string_agg(id||':'||v, ',' ORDER BY id) FROM app.g");
	ckpt_is(t, 21);
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

/* The abandoned transaction's own failures (a duplicate key still in the
 * pipeline) and a COPY of its insert run go with it. */
START_TEST(pgtgt_abort_txn_drops_its_error_and_copy)
{
	struct ls_target *t = open_target();
	struct ls_relation *r = mkrel(1, "g", "id:integer:k|v:text");
	for (int pass = 0; pass < 2; pass++) {
		begin_ok(t, 30);
		change_ok(t, r, ins(r, "1", "A"));
		end_ok(t, 30);
		begin_ok(t, 31);
		change_ok(t, r, ins(r, "1", "dup"));   /* fails on the server */
		abort_in_pass(t, pass);
	}
	begin_ok(t, 32);
	char id[16];
	for (int i = 0; i < 500; i++) {       /* long run: goes through COPY */
		snprintf(id, sizeof id, "%d", 1000 + i);
		change_ok(t, r, ins(r, id, "B"));
	}
	abort_ok(t);
	begin_ok(t, 33);
	for (int i = 0; i < 300; i++) {
		snprintf(id, sizeof id, "%d", 1000 + i);
		change_ok(t, r, ins(r, id, "C"));
	}
	end_ok(t, 33);
	flush_ok(t);
	ck_q1("301", "SELECT count(*) FROM app.g");
	ck_q1("0", "SELECT count(*) FROM app.g WHERE v IN ('B', 'dup')");
	ck_q1("A", "SELECT v FROM app.g WHERE id = 1");
	ckpt_is(t, 33);
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

/* DDL and table creation of the abandoned transaction are rolled back with
 * it; its complete copy re-applies them. */
START_TEST(pgtgt_abort_txn_undoes_its_ddl)
{
	struct ls_target *t = open_target();
	struct ls_relation *v1 = mkrel(1, "g", "id:integer:k|v:text");
	struct ls_relation *v2 = mkrel(1, "g", "id:integer:k|v:text|extra:integer");
	struct ls_relation *n = mkrel(2, "fresh", "id:integer:k");
	for (int pass = 0; pass < 2; pass++) {
		begin_ok(t, 40);
		change_ok(t, v1, ins(v1, "1", "A"));
		end_ok(t, 40);
		/* partial B: ALTER TABLE, a new table, rows */
		begin_ok(t, 41);
		change_ok(t, v2, ins(v2, "2", "B", "7"));
		change_ok(t, n, ins(n, "1"));
		abort_in_pass(t, pass);
	}
	/* the same transaction again, whole */
	begin_ok(t, 41);
	change_ok(t, v2, ins(v2, "2", "B", "7"));
	change_ok(t, v2, ins(v2, "3", "B", "8"));
	change_ok(t, n, ins(n, "1"));
	end_ok(t, 41);
	begin_ok(t, 42);
	change_ok(t, v2, upd(v2, "1", "C", "9"));
	end_ok(t, 42);
	flush_ok(t);
	ck_q1("1:C:9,2:B:7,3:B:8", "SELECT string_agg(id||':'||v||':'||extra, ',' ORDER BY id)"
	      " FROM app.g");
	ck_q1("1", "SELECT count(*) FROM app.fresh");
	ckpt_is(t, 42);
	ops->free(t);

	/* abandoned DDL leaves the table as it was */
	t = open_target();
	struct ls_relation *v3 = mkrel(1, "g", "id:integer:k|v:text|extra:integer|more:text");
	for (int pass = 0; pass < 2; pass++) {
		begin_ok(t, 50);
		change_ok(t, v2, ins(v2, "5", "D", "1"));
		end_ok(t, 50);
		begin_ok(t, 51);
		change_ok(t, v3, ins(v3, "6", "E", "2", "x"));
		abort_in_pass(t, pass);
	}
	begin_ok(t, 52);
	change_ok(t, v2, ins(v2, "7", "F", "3"));
	end_ok(t, 52);
	flush_ok(t);
	ck_q1(NULL, "SELECT attname FROM pg_attribute WHERE attrelid = 'app.g'::regclass"
	      " AND attname = 'more'");
	ck_q1("5:D,7:F", "SELECT string_agg(id||':'||v, ',' ORDER BY id) FROM app.g WHERE id >= 5");
	ckpt_is(t, 52);
	ops->free(t);
	ls_relation_free(v1);
	ls_relation_free(v2);
	ls_relation_free(v3);
	ls_relation_free(n);
}
END_TEST

/* A column added with a fill (PostgreSQL's attmissingval on the source)
 * gets it in the rows already there, by DDL or when the target table lacks
 * it at first sight; the target keeps no default. */
START_TEST(pgtgt_added_column_fills_existing_rows)
{
	struct ls_target *t = open_target();
	struct ls_relation *v1 = mkrel(1, "f", "id:integer:k|v:text");
	struct ls_relation *v2 = mkrel(1, "f", "id:integer:k|v:text|n:integer|s:text");
	struct ls_relation *v3 = mkrel(1, "f", "id:integer:k|v:text|n:integer|s:text|d:date");
	v2->cols[2].fill = strdup("7");
	v2->cols[3].fill = strdup("it's \\ here");
	v3->cols[2].fill = strdup("7");
	v3->cols[3].fill = strdup("it's \\ here");
	v3->cols[4].fill = strdup("2021-01-31");
	begin_ok(t, 60);
	change_ok(t, v1, ins(v1, "1", "a"));
	change_ok(t, v1, ins(v1, "2", "b"));
	end_ok(t, 60);
	flush_ok(t);
	begin_ok(t, 61);
	change_ok(t, v2, ins(v2, "3", "c", "8", NULL));
	end_ok(t, 61);
	flush_ok(t);
	ck_q1("1:7:it's \\ here,2:7:it's \\ here,3:8:-",
	      "SELECT string_agg(id||':'||n||':'||coalesce(s, '-'), ',' ORDER BY id) FROM app.f");
	ops->free(t);

	/* a new instance meets v3 while the table lacks d */
	t = open_target();
	begin_ok(t, 62);
	change_ok(t, v3, ins(v3, "4", "d", "9", "x", "2022-02-28"));
	end_ok(t, 62);
	flush_ok(t);
	ck_q1("1:2021-01-31,2:2021-01-31,3:2021-01-31,4:2022-02-28",
	      "SELECT string_agg(id||':'||to_char(d, 'YYYY-MM-DD'), ',' ORDER BY id) FROM app.f");
	ck_q1("0", "SELECT count(*) FROM pg_attrdef WHERE adrelid = 'app.f'::regclass");
	ops->free(t);
	ls_relation_free(v1);
	ls_relation_free(v2);
	ls_relation_free(v3);
}
END_TEST

/* ---- through lib/apply: a partial transaction in the buffer ------------------ */

#define NREC 4

struct feed {
	struct ls_apply *a;
	struct ls_codec_buf rec[NREC];
	int rewinds;
	int64_t rewound_to, committed;
};

static void feed_from(struct feed *f, int64_t off)
{
	for (int64_t i = off; i < NREC; i++)
		ck_assert_int_ge(ls_apply_push(f->a, i, f->rec[i].data, f->rec[i].len), 0);
}

static void fd_committed(void *ctx, int64_t off, const struct ls_pos *pos)
{
	(void)pos;
	((struct feed *)ctx)->committed = off;
}

/* The buffer replays: records again from off. */
static void fd_rewind(void *ctx, int64_t off)
{
	struct feed *f = ctx;
	f->rewinds++;
	f->rewound_to = off;
	feed_from(f, off);
}

static void fd_error(void *ctx, const struct ls_err *err)
{
	(void)ctx;
	ck_abort_msg("apply failed: %s", err->msg);
}

/* One record: a transaction (or its first chunk only, when partial). */
static void txn_record(struct ls_codec_buf *out, uint64_t seq, bool partial,
		       const struct ls_relation *r, const char *const *ids, const char *v)
{
	struct ls_codec_writer *w = ls_codec_writer_new(0);
	struct ls_txn x = txn(seq);
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_codec_writer_begin(w, seq, partial ? NULL : &x.commit, 1, &err), 0);
	for (; *ids; ids++) {
		struct ls_change c = ins(r, *ids, v);
		ck_assert_msg(ls_codec_writer_add(w, &c, &r, 1, &err) == 0, "%s", err.msg);
	}
	const uint8_t *rec;
	size_t len;
	ck_assert_int_eq(ls_codec_writer_flush(w, !partial, &rec, &len, &err), 0);
	ls_codec_buf_init(out);
	out->data = malloc(len);
	memcpy(out->data, rec, len);
	out->len = out->cap = len;
	ls_codec_writer_free(w);
}

/* The producer died inside transaction 11 (its first chunk is in the
 * buffer) and the source sent 11 again whole.  The target has no savepoint
 * to drop the partial copy alone: the abort fails retryably, the apply
 * resets and rewinds, and the replay (in savepoint mode) drops it. */
START_TEST(pgtgt_apply_replays_partial_txn_with_savepoints)
{
	struct ls_relation *r = mkrel(1, "p", "id:integer:k|v:text");
	struct feed f = { .rewound_to = -1, .committed = -1 };
	const char *a[] = { "1", NULL }, *part[] = { "2", "3", NULL }, *whole[] = { "2", "4", NULL };
	const char *c[] = { "5", NULL };
	txn_record(&f.rec[0], 10, false, r, a, "A");
	txn_record(&f.rec[1], 11, true, r, part, "partial");
	txn_record(&f.rec[2], 11, false, r, whole, "whole");
	txn_record(&f.rec[3], 12, false, r, c, "C");
	uv_loop_t loop;
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	struct ls_apply_opts o = { .pipeline = "shop", .cfg = &cfg, .ops = ops };
	struct ls_apply_cb cb = { .ctx = &f, .on_committed = fd_committed, .on_rewind = fd_rewind,
				  .on_error = fd_error };
	struct ls_err err = { 0 };
	ck_assert_msg(ls_apply_new(&loop, &o, &cb, &f.a, &err) == 0, "%s", err.msg);
	struct ls_target_ckpt ck;
	ck_assert_msg(ls_apply_start(f.a, &ck, &err) == 0, "%s", err.msg);
	feed_from(&f, 0);
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		/* one group holds everything until all of it went through: the
		 * first pass (A, partial 11 in A's group, no savepoint) and the
		 * replay (A, 11 whole, 12) end 4 source transactions */
		struct ls_apply_stats s4;
		ls_apply_stats(f.a, &s4);
		if (s4.txns >= 4)
			ls_apply_flush(f.a);
		uv_run(&loop, UV_RUN_NOWAIT);
		struct timespec ts = { 0, 5 * 1000000L };
		nanosleep(&ts, NULL);   /* polling the loop with a deadline */
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (f.committed < NREC - 1 && now.tv_sec - t0.tv_sec < 60);
	ck_assert_int_eq(f.committed, NREC - 1);
	ck_assert_int_eq(f.rewinds, 1);
	ck_assert_int_eq(f.rewound_to, 0);
	struct ls_apply_stats st;
	ls_apply_stats(f.a, &st);
	ck_assert_uint_eq(st.aborted_txns, 1);
	ck_q1("1:A,2:whole,4:whole,5:C", "SELECT string_agg(id||':'||v, ',' ORDER BY id) FROM app.p");
	ls_apply_close(f.a, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	for (int i = 0; i < NREC; i++)
		ls_codec_buf_free(&f.rec[i]);
	ls_relation_free(r);
}
END_TEST

/* ---- snapshot side ------------------------------------------------------------ */

/* COPY text rows "i\t2*i\tname-i\n" for i in [from, to). */
static char *copy_rows(int from, int to, size_t *len)
{
	size_t cap = (size_t)(to - from) * 48 + 1, n = 0;
	char *buf = malloc(cap);
	for (int i = from; i < to; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%d\t%d\tname-%d\\twith tab\n", i, 2 * i, i);
	*len = n;
	return buf;
}

struct job {
	struct ls_target *t;
	const struct ls_relation *rel;
	int rows;
	size_t chunk;              /* bytes per copy_data call */
	uint64_t seq;
	int rc;
	char msg[512];
	double secs;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One snapshot worker: own session, one table. */
static void *copy_job(void *arg)
{
	struct job *j = arg;
	struct ls_err err = { 0 };
	size_t len;
	char *data = copy_rows(0, j->rows, &len);
	struct ls_target_copy *c = NULL;
	double t0 = now_s();
	j->rc = ops->copy_open(j->t, &c, &err);
	if (j->rc == 0)
		j->rc = ops->copy_table_begin(c, j->rel, &err);
	for (size_t off = 0; j->rc == 0 && off < len; off += j->chunk)
		j->rc = ops->copy_data(c, data + off, off + j->chunk < len ? j->chunk : len - off,
				       &err);
	if (j->rc == 0)
		j->rc = ops->copy_table_end(c, j->rel, (uint64_t)j->rows, j->seq, &err);
	ops->copy_close(c);
	j->secs = now_s() - t0;
	snprintf(j->msg, sizeof j->msg, "%s", err.msg);
	free(data);
	return NULL;
}

static const char *SPEC = "a:integer:k|b:integer|name:text";

START_TEST(pgtgt_copy_two_sessions_concurrently)
{
	struct ls_target *t = open_target();
	struct ls_relation *r1 = mkrel(1, "one", SPEC), *r2 = mkrel(2, "two", SPEC);
	prepare_ok(t, r1);
	prepare_ok(t, r2);
	/* rows from elsewhere are replaced */
	ls_testpg_exec(pg, db, "INSERT INTO app.one VALUES (-1, 0, 'old'), (5, 0, 'old')");
	bool copied;
	uint64_t at;
	struct ls_err err = { 0 };
	ck_assert_int_eq(ops->snapshot_state(t, "app", "one", &copied, &at, &err), 0);
	ck_assert(!copied);

	/* odd chunk sizes split rows and escapes across copy_data calls */
	struct job j[2] = {
		{ .t = t, .rel = r1, .rows = 20000, .chunk = 4093, .seq = 0x16B3748 },
		{ .t = t, .rel = r2, .rows = 30000, .chunk = 1 << 20, .seq = 0x16B3748 },
	};
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, copy_job, &j[i]), 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		ck_assert_msg(j[i].rc == 0, "copy %d: %s", i, j[i].msg);
	}
	ck_q1("20000", "SELECT count(*) FROM app.one");
	ck_q1("30000", "SELECT count(*) FROM app.two");
	ck_q1("0", "SELECT count(*) FROM app.one WHERE name = 'old' OR b <> 2 * a");
	ck_q1("name-77\twith tab", "SELECT name FROM app.two WHERE a = 77");
	ck_q1("app.one:23803720:20000,app.two:23803720:30000",
	      "SELECT string_agg(table_schema||'.'||table_name||':'||copied_at_seq||':'||rows, ','"
	      " ORDER BY table_name) FROM lockstep.snapshot WHERE pipeline = 'shop'"
	      " AND target = 'new' AND done_at IS NOT NULL");
	ck_assert_int_eq(ops->snapshot_state(t, "app", "one", &copied, &at, &err), 0);
	ck_assert(copied);
	ck_assert_uint_eq(at, 0x16B3748);
	ck_assert_int_eq(ops->snapshot_state(t, "app", "three", &copied, &at, &err), 0);
	ck_assert(!copied);
	struct ls_target_stats st;
	ops->stats(t, &st);
	ck_assert_uint_eq(st.copy_rows, 50000);

	/* a re-copy replaces the table and its record */
	j[0].rows = 10;
	j[0].seq = 0x20000000;
	copy_job(&j[0]);
	ck_assert_msg(j[0].rc == 0, "re-copy: %s", j[0].msg);
	ck_q1("10", "SELECT count(*) FROM app.one");
	ck_assert_int_eq(ops->snapshot_state(t, "app", "one", &copied, &at, &err), 0);
	ck_assert(copied);
	ck_assert_uint_eq(at, 0x20000000);
	ck_q1("2", "SELECT count(*) FROM lockstep.snapshot");
	ops->free(t);
	ls_relation_free(r1);
	ls_relation_free(r2);
}
END_TEST

START_TEST(pgtgt_copy_closed_midway_leaves_nothing)
{
	struct ls_target *t = open_target();
	struct ls_relation *r = mkrel(1, "half", SPEC);
	prepare_ok(t, r);
	ls_testpg_exec(pg, db, "INSERT INTO app.half VALUES (-1, 0, 'before')");
	struct ls_target_copy *c;
	struct ls_err err = { 0 };
	ck_assert_msg(ops->copy_open(t, &c, &err) == 0, "copy_open: %s", err.msg);
	ck_assert_msg(ops->copy_table_begin(c, r, &err) == 0, "begin: %s", err.msg);
	size_t len;
	char *data = copy_rows(0, 100000, &len);
	ck_assert_msg(ops->copy_data(c, data, len, &err) == 0, "data: %s", err.msg);
	ops->copy_close(c);
	free(data);
	/* the truncate went back too */
	ck_q1("before", "SELECT string_agg(name, ',') FROM app.half");
	ck_q1("0", "SELECT count(*) FROM lockstep.snapshot");
	bool copied = true;
	uint64_t at = 1;
	ck_assert_int_eq(ops->snapshot_state(t, "app", "half", &copied, &at, &err), 0);
	ck_assert(!copied);
	ck_assert_uint_eq(at, 0);
	struct ls_target_stats st;
	ops->stats(t, &st);
	ck_assert_uint_eq(st.copy_rows, 0);
	/* no lock or session lingers: the table can be emptied at once */
	ls_testpg_exec(pg, db, "SET lock_timeout = '5s'; TRUNCATE app.half");
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

/* Bad data and a row count that does not match fail the table, record
 * nothing and say why. */
START_TEST(pgtgt_copy_failures_record_nothing)
{
	struct ls_target *t = open_target();
	struct ls_relation *r = mkrel(1, "bad", SPEC);
	prepare_ok(t, r);
	struct ls_target_copy *c;
	struct ls_err err = { 0 };
	ck_assert_int_eq(ops->copy_open(t, &c, &err), 0);
	ck_assert_int_eq(ops->copy_table_begin(c, r, &err), 0);
	const char *rows = "1\t2\tx\n2\tnot a number\ty\n";
	int rc = ops->copy_data(c, rows, strlen(rows), &err);
	if (rc == 0)
		rc = ops->copy_table_end(c, r, 2, 5, &err);
	ck_assert_int_lt(rc, 0);
	ck_assert(!err.retryable);
	ck_assert_msg(strstr(err.msg, "app") && strstr(err.msg, "bad") &&
		      strstr(err.msg, "22P02"), "%s", err.msg);
	/* the session is unusable afterwards */
	ck_assert_int_lt(ops->copy_table_begin(c, r, &err), 0);
	ops->copy_close(c);

	ck_assert_int_eq(ops->copy_open(t, &c, &err), 0);
	ck_assert_int_eq(ops->copy_table_begin(c, r, &err), 0);
	rows = "1\t2\tx\n2\t4\ty\n";
	ck_assert_int_eq(ops->copy_data(c, rows, strlen(rows), &err), 0);
	ck_assert_int_lt(ops->copy_table_end(c, r, 3, 5, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "3 rows"));
	ops->copy_close(c);
	ck_q1("0", "SELECT count(*) FROM app.bad");
	ck_q1("0", "SELECT count(*) FROM lockstep.snapshot");

	/* a table no one created */
	struct ls_relation *gone = mkrel(2, "gone", SPEC);
	ck_assert_int_eq(ops->copy_open(t, &c, &err), 0);
	ck_assert_int_lt(ops->copy_table_begin(c, gone, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "gone"));
	ops->copy_close(c);
	ops->free(t);
	ls_relation_free(r);
	ls_relation_free(gone);
}
END_TEST

/* A table referenced by a foreign key cannot be truncated: it is emptied
 * with DELETE instead (no FK check under the replica role). */
START_TEST(pgtgt_copy_into_referenced_table)
{
	struct ls_target *t = open_target();
	struct ls_relation *r = mkrel(1, "parent", SPEC);
	prepare_ok(t, r);
	ls_testpg_exec(pg, db, "INSERT INTO app.parent VALUES (1, 0, 'old');"
		       "CREATE TABLE app.child (id int PRIMARY KEY REFERENCES app.parent (a));"
		       "INSERT INTO app.child VALUES (1)");
	struct job j = { .t = t, .rel = r, .rows = 100, .chunk = 64 * 1024, .seq = 9 };
	copy_job(&j);
	ck_assert_msg(j.rc == 0, "copy: %s", j.msg);
	ck_q1("100", "SELECT count(*) FROM app.parent");
	ck_q1("1", "SELECT count(*) FROM app.child");
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

START_TEST(pgtgt_copy_throughput_1m_rows)
{
	struct ls_target *t = open_target();
	struct ls_relation *r = mkrel(1, "big", SPEC);
	prepare_ok(t, r);
	/* 256 KiB chunks, as the PostgreSQL source's snapshot hands them over */
	struct job j = { .t = t, .rel = r, .rows = 1000000, .chunk = 256 * 1024, .seq = 1 };
	copy_job(&j);
	ck_assert_msg(j.rc == 0, "copy: %s", j.msg);
	ck_q1("1000000", "SELECT count(*) FROM app.big");
	printf("pg_tgt snapshot copy, 1M rows (int, int, text): %.2f s, %.0f rows/s\n", j.secs,
	       1e6 / j.secs);
	fflush(stdout);
	ops->free(t);
	ls_relation_free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pg_tgt");
	TCase *tc = tcase_create("ops");
	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_add_checked_fixture(tc, test_setup, test_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, pgtgt_full_round_applies_and_checkpoints);
	tcase_add_test(tc, pgtgt_prepare_table_creates_or_checks);
	tcase_add_test(tc, pgtgt_abort_txn_keeps_rest_of_group);
	tcase_add_test(tc, pgtgt_abort_first_txn_of_group);
	tcase_add_test(tc, pgtgt_abort_txn_drops_its_error_and_copy);
	tcase_add_test(tc, pgtgt_abort_txn_undoes_its_ddl);
	tcase_add_test(tc, pgtgt_added_column_fills_existing_rows);
	tcase_add_test(tc, pgtgt_apply_replays_partial_txn_with_savepoints);
	tcase_add_test(tc, pgtgt_copy_two_sessions_concurrently);
	tcase_add_test(tc, pgtgt_copy_closed_midway_leaves_nothing);
	tcase_add_test(tc, pgtgt_copy_failures_record_nothing);
	tcase_add_test(tc, pgtgt_copy_into_referenced_table);
	tcase_add_test(tc, pgtgt_copy_throughput_1m_rows);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
