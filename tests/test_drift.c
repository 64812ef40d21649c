/* Unit tests for lib/drift's pure parts: marker payloads, repair rows,
 * row-hash diffs, report tallies (bounded key lists), the rate limit and the
 * key-range cursor (chunk planning). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drift.h"

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
	suite_add_tcase(s, tc);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
