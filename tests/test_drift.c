/* Unit tests for lib/drift's pure parts: marker payloads, repair rows,
 * row-hash diffs, report tallies (bounded key lists), the rate limit and the
 * key-range cursor (chunk planning); and the engine's watch over markers a
 * target passed without answering, driven on a loop with an in-memory
 * source and target. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "drift.h"
#include "target.h"
#include "tests/helpers/testchg.h"

/* ---- markers ------------------------------------------------------------------- */

START_TEST(drift_marker_round_trips_any_text)
{
	const char *lo = "[\"a/b:c\", \"1\"]", *hi = "[\"12:\\u0000x\", \"\"]";
	struct ls_drift_marker m = {
		.kind = LS_DRIFT_CHUNK, .run = "shop/42/1.5", .check = 7, .table = 3, .seq = 99,
		.chunk = 12, .schema = "pub:lic", .name = "t/1", .lo = lo, .hi = hi,
	};
	struct ls_drift_buf b = { 0 };
	ck_assert_int_eq(ls_drift_marker_encode(&m, &b), 0);
	struct ls_arena a;
	ls_arena_init(&a);
	struct ls_drift_marker o;
	struct ls_err err;
	ck_assert_int_eq(ls_drift_marker_decode(b.data, b.len, &a, &o, &err), 0);
	ck_assert_int_eq(o.kind, LS_DRIFT_CHUNK);
	ck_assert_str_eq(o.run, "shop/42/1.5");
	ck_assert_uint_eq(o.check, 7);
	ck_assert_uint_eq(o.table, 3);
	ck_assert_uint_eq(o.seq, 99);
	ck_assert_uint_eq(o.chunk, 12);
	ck_assert_str_eq(o.schema, "pub:lic");
	ck_assert_str_eq(o.name, "t/1");
	ck_assert_str_eq(o.lo, lo);
	ck_assert_str_eq(o.hi, hi);
	ls_drift_buf_free(&b);
	ls_arena_free(&a);
}
END_TEST

START_TEST(drift_marker_keeps_unbounded_apart_from_empty)
{
	struct ls_drift_marker m = {
		.kind = LS_DRIFT_ROWS, .run = "r", .schema = "s", .name = "n", .lo = NULL, .hi = "",
	};
	struct ls_drift_buf b = { 0 };
	ck_assert_int_eq(ls_drift_marker_encode(&m, &b), 0);
	struct ls_arena a;
	ls_arena_init(&a);
	struct ls_drift_marker o;
	ck_assert_int_eq(ls_drift_marker_decode(b.data, b.len, &a, &o, NULL), 0);
	ck_assert_ptr_null(o.lo);
	ck_assert_ptr_nonnull(o.hi);
	ck_assert_str_eq(o.hi, "");
	ls_drift_buf_free(&b);
	ls_arena_free(&a);
}
END_TEST

START_TEST(drift_marker_rejects_every_truncation)
{
	struct ls_drift_marker m = {
		.kind = LS_DRIFT_CHUNK, .run = "run", .check = 1, .table = 2, .seq = 3, .chunk = 4,
		.schema = "public", .name = "t", .lo = "[\"1\"]", .hi = "[\"100\"]",
	};
	struct ls_drift_buf b = { 0 };
	ck_assert_int_eq(ls_drift_marker_encode(&m, &b), 0);
	struct ls_arena a;
	ls_arena_init(&a);
	struct ls_drift_marker o;
	struct ls_err err;
	for (size_t n = 0; n < b.len; n++) {
		ls_arena_reset(&a);
		ck_assert_msg(ls_drift_marker_decode(b.data, n, &a, &o, &err) < 0,
			      "a marker cut at %zu of %zu bytes was accepted", n, b.len);
	}
	/* trailing bytes and unknown kinds too */
	char more[512];
	memcpy(more, b.data, b.len);
	more[b.len] = 'x';
	ck_assert_int_lt(ls_drift_marker_decode(more, b.len + 1, &a, &o, &err), 0);
	ck_assert_int_lt(ls_drift_marker_decode("1:11:Z", 6, &a, &o, &err), 0);
	ck_assert_int_lt(ls_drift_marker_decode("2:1", 3, &a, &o, &err), 0);
	ls_drift_buf_free(&b);
	ls_arena_free(&a);
}
END_TEST

START_TEST(drift_repair_rows_round_trip_nulls_and_empties)
{
	struct ls_value r1[3] = {
		{ LS_VAL_TEXT, 1, "7" }, { LS_VAL_NULL, 0, NULL }, { LS_VAL_TEXT, 0, "" },
	};
	struct ls_value r2[3] = {
		{ LS_VAL_TEXT, 2, "42" }, { LS_VAL_TEXT, 5, "a\n:,b" }, { LS_VAL_NULL, 0, NULL },
	};
	struct ls_drift_buf rows = { 0 };
	ls_drift_repair_row_add(&rows, true, r1, 3);
	ls_drift_repair_row_add(&rows, false, r2, 3);
	struct ls_drift_marker m = {
		.kind = LS_DRIFT_REPAIR, .run = "r", .schema = "s", .name = "n",
		.rows = rows.data, .rows_len = rows.len,
	};
	struct ls_drift_buf b = { 0 };
	ck_assert_int_eq(ls_drift_marker_encode(&m, &b), 0);
	struct ls_arena a;
	ls_arena_init(&a);
	struct ls_drift_marker o;
	ck_assert_int_eq(ls_drift_marker_decode(b.data, b.len, &a, &o, NULL), 0);
	ck_assert_uint_eq(o.rows_len, rows.len);
	const char *p = o.rows, *end = o.rows + o.rows_len;
	struct ls_value v[3];
	bool present;
	struct ls_err err;
	ck_assert_int_eq(ls_drift_repair_row_next(&p, end, &a, &present, v, 3, &err), 1);
	ck_assert(present);
	ck_assert_str_eq(v[0].data, "7");
	ck_assert_int_eq(v[1].kind, LS_VAL_NULL);
	ck_assert_int_eq(v[2].kind, LS_VAL_TEXT);
	ck_assert_uint_eq(v[2].len, 0);
	ck_assert_int_eq(ls_drift_repair_row_next(&p, end, &a, &present, v, 3, &err), 1);
	ck_assert(!present);
	ck_assert_str_eq(v[1].data, "a\n:,b");
	ck_assert_uint_eq(v[1].len, 5);
	ck_assert_int_eq(v[2].kind, LS_VAL_NULL);
	ck_assert_int_eq(ls_drift_repair_row_next(&p, end, &a, &present, v, 3, &err), 0);
	/* a table with another column count is refused, not misread */
	p = o.rows;
	ck_assert_int_lt(ls_drift_repair_row_next(&p, end, &a, &present, v, 2, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "columns"));
	ls_drift_buf_free(&rows);
	ls_drift_buf_free(&b);
	ls_arena_free(&a);
}
END_TEST

/* ---- row-hash diff ---------------------------------------------------------------- */

struct seen {
	char text[1024];
	int n;
};

static void record(void *ctx, enum ls_drift_diff kind, const char *key)
{
	struct seen *s = ctx;
	size_t l = strlen(s->text);
	snprintf(s->text + l, sizeof s->text - l, "%c%s ", (char)kind, key);
	s->n++;
}

START_TEST(drift_diff_classifies_missing_extra_different)
{
	struct ls_drift_rowset src = { 0 }, dst = { 0 };
	/* given in different orders: the engines' orders need not agree */
	ls_drift_rowset_add(&src, "[\"3\"]", "h3");
	ls_drift_rowset_add(&src, "[\"1\"]", "h1");
	ls_drift_rowset_add(&src, "[\"2\"]", "h2");
	ls_drift_rowset_add(&src, "[\"5\"]", "h5");
	ls_drift_rowset_add(&dst, "[\"1\"]", "h1");
	ls_drift_rowset_add(&dst, "[\"4\"]", "h4");
	ls_drift_rowset_add(&dst, "[\"5\"]", "XX");
	ls_drift_rowset_add(&dst, "[\"3\"]", "h3");
	struct seen s = { "", 0 };
	ck_assert_uint_eq(ls_drift_rowset_diff(&src, &dst, record, &s), 3);
	ck_assert_str_eq(s.text, "m[\"2\"] e[\"4\"] d[\"5\"] ");
	ls_drift_rowset_free(&src);
	ls_drift_rowset_free(&dst);
}
END_TEST

START_TEST(drift_diff_of_empty_sides)
{
	struct ls_drift_rowset src = { 0 }, dst = { 0 };
	struct seen s = { "", 0 };
	ck_assert_uint_eq(ls_drift_rowset_diff(&src, &dst, record, &s), 0);
	ls_drift_rowset_add(&dst, "k", "h");
	ck_assert_uint_eq(ls_drift_rowset_diff(&src, &dst, record, &s), 1);
	ck_assert_str_eq(s.text, "ek ");
	ls_drift_rowset_free(&dst);
}
END_TEST

/* ---- tallies ------------------------------------------------------------------------- */

START_TEST(drift_tally_counts_all_lists_first_keys)
{
	struct ls_drift_tally t = { 0 };
	char key[32];
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof key, "[\"%d\"]", i);
		ck_assert_int_eq(ls_drift_tally_add(&t, i % 3 == 0 ? LS_DRIFT_MISSING
						    : i % 3 == 1 ? LS_DRIFT_EXTRA
								 : LS_DRIFT_DIFFERENT, key), 0);
	}
	ck_assert_uint_eq(t.missing, 34);
	ck_assert_uint_eq(t.extra, 33);
	ck_assert_uint_eq(t.different, 33);
	ck_assert_uint_eq(ls_drift_tally_rows(&t), 100);
	ck_assert_uint_eq(t.nkeys, LS_DRIFT_REPORT_KEYS);
	ck_assert_str_eq(t.keys[0], "[\"0\"]");
	ck_assert_str_eq(t.keys[LS_DRIFT_REPORT_KEYS - 1], "[\"19\"]");
	ck_assert_int_eq(t.kinds[1], LS_DRIFT_EXTRA);
	ls_drift_tally_clear(&t);
	ck_assert_uint_eq(ls_drift_tally_rows(&t), 0);
	ck_assert_uint_eq(t.nkeys, 0);
}
END_TEST

START_TEST(drift_tally_merge_adds_counts_and_keeps_the_bound)
{
	struct ls_drift_tally a = { 0 }, b = { 0 };
	a.rows_checked = 1000;
	a.chunks = 10;
	b.rows_checked = 500;
	b.chunks = 5;
	for (int i = 0; i < 15; i++) {
		char key[16];
		snprintf(key, sizeof key, "a%d", i);
		ls_drift_tally_add(&a, LS_DRIFT_MISSING, key);
		snprintf(key, sizeof key, "b%d", i);
		ls_drift_tally_add(&b, LS_DRIFT_DIFFERENT, key);
	}
	ck_assert_int_eq(ls_drift_tally_merge(&a, &b), 0);
	ck_assert_uint_eq(a.rows_checked, 1500);
	ck_assert_uint_eq(a.chunks, 15);
	ck_assert_uint_eq(a.missing, 15);
	ck_assert_uint_eq(a.different, 15);
	ck_assert_uint_eq(a.nkeys, LS_DRIFT_REPORT_KEYS);
	ck_assert_str_eq(a.keys[15], "b0");
	ck_assert_int_eq(a.kinds[15], LS_DRIFT_DIFFERENT);
	ls_drift_tally_clear(&a);
	ls_drift_tally_clear(&b);
}
END_TEST

/* ---- rate and cursor --------------------------------------------------------------------- */

START_TEST(drift_rate_spaces_chunks_without_banking_bursts)
{
	struct ls_drift_rate r = { .per_s = 10 };
	ck_assert_uint_eq(ls_drift_rate_take(&r, 1000), 0);
	ck_assert_uint_eq(ls_drift_rate_take(&r, 1000), 100);
	ck_assert_uint_eq(ls_drift_rate_take(&r, 1060), 40);
	ck_assert_uint_eq(ls_drift_rate_take(&r, 1100), 0);
	/* a long pause buys one chunk, not a burst */
	ck_assert_uint_eq(ls_drift_rate_take(&r, 9000), 0);
	ck_assert_uint_eq(ls_drift_rate_take(&r, 9000), 100);
	struct ls_drift_rate unlimited = { .per_s = 0 };
	for (int i = 0; i < 5; i++)
		ck_assert_uint_eq(ls_drift_rate_take(&unlimited, 5), 0);
}
END_TEST

/* A table of 250 keys walked with chunk_rows 100 the way a source plans it:
 * each chunk's hi is the 100th key after lo, or none when fewer remain. */
START_TEST(drift_cursor_plans_chunks_covering_every_key_once)
{
	int keys[250];
	for (int i = 0; i < 250; i++)
		keys[i] = i * 2;
	struct ls_drift_cursor c = { 0 };
	int covered = 0, chunks = 0, lo_index = 0;
	char want_lo[32];
	while (!c.done) {
		ck_assert_uint_eq(c.next_chunk, (unsigned)chunks);
		if (chunks == 0) {
			ck_assert_ptr_null(c.lo);
		} else {
			snprintf(want_lo, sizeof want_lo, "%d", keys[lo_index - 1]);
			ck_assert_str_eq(c.lo, want_lo);
		}
		int upper = lo_index + 100 - 1;
		char hi[32];
		if (upper < 250) {
			snprintf(hi, sizeof hi, "%d", keys[upper]);
			covered += 100;
			lo_index = upper + 1;
			ck_assert_int_eq(ls_drift_cursor_advance(&c, hi), 0);
		} else {
			covered += 250 - lo_index;
			ck_assert_int_eq(ls_drift_cursor_advance(&c, NULL), 0);
		}
		chunks++;
	}
	ck_assert_int_eq(covered, 250);
	ck_assert_int_eq(chunks, 3);
	ck_assert_ptr_null(c.lo);
	ls_drift_cursor_reset(&c);
	ck_assert(!c.done);
	ck_assert_uint_eq(c.next_chunk, 0);
}
END_TEST

/* ---- chunk ends at the walk's bound -------------------------------------------------- */

static int upper_calls;
static const char *upper_gives;

static int fake_upper(struct ls_drift_conn *c, const struct ls_relation *rel, const char *lo,
		      const char *bound, int chunk_rows, char **hi, struct ls_err *err)
{
	(void)c, (void)rel, (void)lo, (void)bound, (void)chunk_rows, (void)err;
	upper_calls++;
	*hi = upper_gives ? strdup(upper_gives) : NULL;
	return 0;
}

START_TEST(drift_chunk_end_stops_at_the_bound_then_opens_the_last_chunk)
{
	struct ls_err err = { 0 };
	char *hi;
	/* rows enough before the bound: the chunk_rows-th key */
	upper_calls = 0;
	upper_gives = "[\"40\"]";
	ck_assert_int_eq(ls_drift_chunk_end(NULL, NULL, "[\"1\"]", "[\"90\"]", 10, fake_upper,
					    &hi, &err), 0);
	ck_assert_str_eq(hi, "[\"40\"]");
	free(hi);
	/* fewer rows before the bound: the chunk ends at it */
	upper_gives = NULL;
	ck_assert_int_eq(ls_drift_chunk_end(NULL, NULL, "[\"40\"]", "[\"90\"]", 10, fake_upper,
					    &hi, &err), 0);
	ck_assert_str_eq(hi, "[\"90\"]");
	free(hi);
	ck_assert_int_eq(upper_calls, 2);
	/* from the bound on: one open-ended chunk, no bound query */
	upper_gives = "[\"95\"]";
	ck_assert_int_eq(ls_drift_chunk_end(NULL, NULL, "[\"90\"]", "[\"90\"]", 10, fake_upper,
					    &hi, &err), 0);
	ck_assert_ptr_null(hi);
	ck_assert_int_eq(upper_calls, 2);
	/* no bound (an empty table at the start): where the table ends */
	upper_gives = NULL;
	ck_assert_int_eq(ls_drift_chunk_end(NULL, NULL, NULL, NULL, 10, fake_upper, &hi, &err), 0);
	ck_assert_ptr_null(hi);
}
END_TEST

/* ---- the engine: answers that never come ------------------------------------------------ */

/* The in-memory source: one table, one row (key "1"), every marker recorded
 * with the position it was committed at. */
#define FAKE_MAX 16
static struct {
	pthread_mutex_t mu;
	int n;
	struct ls_drift_buf payload[FAKE_MAX];
	char kind[FAKE_MAX];
	uint64_t pos;                      /* next marker's position */
	uint64_t applied;                  /* what the target has committed */
} fk = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void fake_record(struct ls_drift_marker *m)
{
	pthread_mutex_lock(&fk.mu);
	m->at_seq = fk.pos;
	if (fk.n < FAKE_MAX) {
		ck_assert_int_eq(ls_drift_marker_encode(m, &fk.payload[fk.n]), 0);
		fk.kind[fk.n++] = m->kind;
	}
	pthread_mutex_unlock(&fk.mu);
}

static char fake_conn;

static int fake_open(const struct ls_config *cfg, struct ls_drift_conn **out, struct ls_err *err)
{
	(void)cfg;
	(void)err;
	*out = (struct ls_drift_conn *)&fake_conn;
	return 0;
}

static void fake_close(struct ls_drift_conn *c)
{
	(void)c;
}

static int fake_chunk(struct ls_drift_conn *c, const struct ls_relation *rel,
		      struct ls_drift_marker *m, const char *bound, int chunk_rows, char **hi,
		      uint64_t *rows, char *hash, struct ls_err *err)
{
	(void)c, (void)rel, (void)bound, (void)chunk_rows, (void)err;
	*hi = NULL;
	*rows = 1;
	snprintf(hash, LS_DRIFT_HASH_MAX, "h1");
	fake_record(m);
	return 0;
}

static int fake_rows(struct ls_drift_conn *c, const struct ls_relation *rel,
		     struct ls_drift_marker *m,
		     int (*row)(void *ctx, const char *key, const char *hash), void *ctx,
		     struct ls_err *err)
{
	(void)c, (void)rel, (void)err;
	if (row(ctx, "1", "h1") < 0)
		return -1;
	fake_record(m);
	return 0;
}

static const struct ls_drift_source_ops fake_sops = {
	.open = fake_open, .close = fake_close, .chunk = fake_chunk, .rows = fake_rows,
};

/* The in-memory target has the same row. */
static int tgt_checksum(struct ls_target *t, const struct ls_relation *rel, const char *lo,
			const char *hi, uint64_t *rows, char *hash, size_t hashlen,
			struct ls_err *err)
{
	(void)t, (void)rel, (void)lo, (void)hi, (void)err;
	*rows = 1;
	snprintf(hash, hashlen, "h1");
	return 0;
}

static int tgt_rows(struct ls_target *t, const struct ls_relation *rel, const char *lo,
		    const char *hi, int (*row)(void *ctx, const char *key, const char *hash),
		    void *ctx, struct ls_err *err)
{
	(void)t, (void)rel, (void)lo, (void)hi, (void)err;
	return row(ctx, "1", "h1");
}

static const struct ls_target_ops fake_tops = {
	.engine = "fake", .chunk_checksum = tgt_checksum, .chunk_rows = tgt_rows,
};

static bool fake_applied(void *ctx, int target, uint64_t *seq)
{
	(void)ctx;
	(void)target;
	pthread_mutex_lock(&fk.mu);
	*seq = fk.applied;
	pthread_mutex_unlock(&fk.mu);
	return true;
}

struct eng {
	uv_loop_t loop;
	struct ls_config *cfg;
	struct ls_relation *rel;
	struct ls_drift *d;
};

static void eng_start(struct eng *e)
{
	fk.n = 0;
	memset(fk.payload, 0, sizeof fk.payload);
	ck_assert_int_eq(uv_loop_init(&e->loop), 0);
	struct ls_err err = { 0 };
	ck_assert_msg(ls_config_parse("t.conf", "[pipeline]\nname = shop\n"
				      "[source]\ntype = postgres\nconninfo = x\n"
				      "[buffer]\ntype = direct\n"
				      "[target new]\ntype = postgres\nconninfo = y\n",
				      &e->cfg, &err) == 0, "%s", err.msg);
	struct ls_drift_opts o = { .cfg = e->cfg, .sops = &fake_sops, .applied = fake_applied,
				   .answer_grace_ms = 50 };
	ck_assert_int_eq(ls_drift_new(&e->loop, &o, &e->d, &err), 0);
	e->rel = ls_testchg_rel(1, "public", "t", 'd', "id:int4:k|v:text");
	const struct ls_relation *rels[] = { e->rel };
	struct ls_source_tables ts = { 1, rels, NULL };
	ls_drift_start(e->d, &ts);
	ck_assert_int_gt(ls_drift_check(e->d, NULL, 1000, &err), 0);
}

/* Runs the loop until the source has emitted n markers or the check ended. */
static void run_until_markers(struct eng *e, int n)
{
	struct ls_drift_last last;
	for (int spins = 0; spins < 200000; spins++) {
		pthread_mutex_lock(&fk.mu);
		int have = fk.n;
		pthread_mutex_unlock(&fk.mu);
		ls_drift_last(e->d, &last);
		if (have >= n || last.known)
			return;
		uv_run(&e->loop, UV_RUN_ONCE);
	}
	ck_abort_msg("the engine emitted no marker %d", n);
}

/* The target's apply committed marker i and answers it. */
static void answer(struct eng *e, int i)
{
	const struct ls_apply_hook *h = ls_drift_apply_hook(e->d, 0);
	struct ls_pos pos = { .seq = 1 };
	snprintf(pos.text, sizeof pos.text, "0/1");
	struct ls_err err = { 0 };
	ck_assert_int_eq(h->after_commit(h->ctx, NULL, &fake_tops, &pos, fk.payload[i].data,
					 (uint32_t)fk.payload[i].len, &err), 0);
}

/* The target's apply takes marker i in its transaction (before commit). */
static void take(struct eng *e, int i)
{
	const struct ls_apply_hook *h = ls_drift_apply_hook(e->d, 0);
	struct ls_change msg = { .op = LS_OP_MESSAGE, .msg_prefix = LS_DRIFT_PREFIX,
				 .msg_data = fk.payload[i].data, .msg_len = fk.payload[i].len };
	struct ls_txn txn = { .xid = 1 };
	struct ls_err err = { 0 };
	ck_assert_int_eq(h->on_message(h->ctx, NULL, &txn, &msg, &err), 1);
}

/* Runs the loop for ms of its own time. */
static void run_for(struct eng *e, uint64_t ms)
{
	uint64_t t0 = uv_now(&e->loop);
	while (uv_now(&e->loop) - t0 < ms) {
		uv_run(&e->loop, UV_RUN_NOWAIT);
		uv_update_time(&e->loop);
	}
}

static void run_until_done(struct eng *e, struct ls_drift_last *last)
{
	for (int spins = 0; spins < 200000; spins++) {
		ls_drift_last(e->d, last);
		if (last->known)
			return;
		uv_run(&e->loop, UV_RUN_ONCE);
	}
	ck_abort_msg("the check did not finish");
}

static void on_closed(void *arg)
{
	*(bool *)arg = true;
}

static void eng_stop(struct eng *e)
{
	bool closed = false;
	ls_drift_close(e->d, on_closed, &closed);
	while (!closed)
		uv_run(&e->loop, UV_RUN_ONCE);
	ck_assert_int_eq(uv_loop_close(&e->loop), 0);
	ls_relation_free(e->rel);
	ls_config_free(e->cfg);
	for (int i = 0; i < FAKE_MAX; i++)
		ls_drift_buf_free(&fk.payload[i]);
}

START_TEST(drift_rechecks_a_chunk_whose_answer_a_target_skipped)
{
	struct eng e;
	fk.pos = 100;
	eng_start(&e);
	run_until_markers(&e, 1);
	ck_assert_int_eq(fk.kind[0], LS_DRIFT_CHUNK);
	/* the target has not reached the marker: its answer is not due, and a
	 * late answer is waited for however long it takes */
	fk.applied = 99;
	run_for(&e, 300);
	ck_assert_int_eq(fk.n, 1);
	/* it commits past the marker without answering: the chunk is checked
	 * again row by row, and that answer completes the check */
	fk.pos = 300;
	fk.applied = 200;
	run_until_markers(&e, 2);
	ck_assert_int_eq(fk.kind[1], LS_DRIFT_ROWS);
	answer(&e, 1);
	struct ls_drift_last last;
	run_until_done(&e, &last);
	ck_assert_msg(last.clean && last.rows == 0 && last.error[0] == '\0', "error: %s", last.error);
	ck_assert_uint_eq(last.answers_lost, 1);
	/* the first answer, arriving after all, is ignored */
	answer(&e, 0);
	uv_run(&e.loop, UV_RUN_NOWAIT);
	eng_stop(&e);
}
END_TEST

START_TEST(drift_waits_for_an_answer_the_target_is_computing)
{
	struct eng e;
	fk.pos = 100;
	eng_start(&e);
	run_until_markers(&e, 1);
	/* the apply took the marker and committed past it; its checksum runs
	 * longer than the grace: not lost */
	take(&e, 0);
	fk.applied = 200;
	run_for(&e, 300);
	ck_assert_int_eq(fk.n, 1);
	answer(&e, 0);
	struct ls_drift_last last;
	run_until_done(&e, &last);
	ck_assert_msg(last.clean && last.error[0] == '\0', "error: %s", last.error);
	ck_assert_uint_eq(last.answers_lost, 0);
	eng_stop(&e);
}
END_TEST

START_TEST(drift_fails_a_table_whose_answers_keep_getting_lost)
{
	struct eng e;
	fk.pos = 100;
	fk.applied = 1000;
	eng_start(&e);
	struct ls_drift_last last;
	run_until_done(&e, &last);
	ck_assert(!last.clean);
	ck_assert_msg(strstr(last.error, "target new committed past 4 drift markers without "
			     "answering them") != NULL, "error: %s", last.error);
	ck_assert_uint_eq(last.answers_lost, 4);
	ck_assert_int_eq(fk.n, 4);
	eng_stop(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("drift");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, drift_marker_round_trips_any_text);
	tcase_add_test(tc, drift_marker_keeps_unbounded_apart_from_empty);
	tcase_add_test(tc, drift_marker_rejects_every_truncation);
	tcase_add_test(tc, drift_repair_rows_round_trip_nulls_and_empties);
	tcase_add_test(tc, drift_diff_classifies_missing_extra_different);
	tcase_add_test(tc, drift_diff_of_empty_sides);
	tcase_add_test(tc, drift_tally_counts_all_lists_first_keys);
	tcase_add_test(tc, drift_tally_merge_adds_counts_and_keeps_the_bound);
	tcase_add_test(tc, drift_rate_spaces_chunks_without_banking_bursts);
	tcase_add_test(tc, drift_cursor_plans_chunks_covering_every_key_once);
	tcase_add_test(tc, drift_chunk_end_stops_at_the_bound_then_opens_the_last_chunk);
	tcase_add_test(tc, drift_rechecks_a_chunk_whose_answer_a_target_skipped);
	tcase_add_test(tc, drift_waits_for_an_answer_the_target_is_computing);
	tcase_add_test(tc, drift_fails_a_table_whose_answers_keep_getting_lost);
	suite_add_tcase(s, tc);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
