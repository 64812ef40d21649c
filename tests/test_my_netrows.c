/* Unit tests for connectors/mysql/my_netrows: a group's changes folded per
 * key, the transaction layer, and the order rows come out in. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/mysql/my_netrows.h"
#include "tests/helpers/testutil.h"

static struct ls_mynet *N;
static const int REL_A = 1, REL_B = 2;   /* addresses serve as table handles */

static void setup(void)
{
	N = ls_mynet_new();
	ck_assert_ptr_nonnull(N);
}

static void teardown(void)
{
	ls_mynet_free(N);
}

static void put(const int *rel, const char *key, enum ls_mynet_state st, const char *row,
		bool inserted)
{
	ck_assert_int_eq(ls_mynet_put(N, rel, key, strlen(key), st, row, row ? strlen(row) : 0,
				      inserted), 0);
}

/* Every net row as "A:key=D" (deleted), "A:key+row" (fresh) or
 * "A:key~row" (existed), comma-separated. */
static int show_one(const struct ls_mynet_row *r, void *ctx)
{
	char *out = ctx;
	size_t n = strlen(out);
	snprintf(out + n, 4096 - n, "%s%s:%s%s%s", n ? "," : "", r->rel == &REL_A ? "A" : "B",
		 r->key, r->state == LS_MYNET_DEL ? "=D" : r->fresh ? "+" : "~",
		 r->state == LS_MYNET_ROW ? r->row : "");
	return 0;
}

static const char *show(void)
{
	static char out[4096];
	out[0] = '\0';
	ck_assert_int_eq(ls_mynet_each(N, show_one, out), 0);
	return out;
}

START_TEST(netrows_fold_to_final_state_and_freshness)
{
	put(&REL_A, "1", LS_MYNET_DEL, NULL, false);      /* existed, deleted ... */
	put(&REL_A, "1", LS_MYNET_ROW, "r1", true);       /* ... and inserted again */
	put(&REL_A, "2", LS_MYNET_ROW, "new", true);      /* born ... */
	put(&REL_A, "2", LS_MYNET_ROW, "newer", false);   /* ... updated: still fresh */
	put(&REL_B, "x", LS_MYNET_ROW, "bx", false);      /* existed, updated */
	put(&REL_A, "3", LS_MYNET_ROW, "gone", true);     /* born and gone: nothing */
	put(&REL_A, "3", LS_MYNET_DEL, NULL, false);
	put(&REL_A, "4", LS_MYNET_DEL, NULL, false);
	ls_mynet_end_txn(N);
	ck_assert_str_eq(show(), "A:1~r1,A:2+newer,A:4=D,B:x~bx");
	ck_assert_uint_eq(ls_mynet_count(N), 5);
	ls_mynet_clear(N);
	ck_assert_str_eq(show(), "");
	ck_assert_uint_eq(ls_mynet_count(N), 0);
	ck_assert_uint_eq(ls_mynet_bytes(N), 0);
}
END_TEST

START_TEST(netrows_drop_txn_forgets_exactly_that_transaction)
{
	put(&REL_A, "1", LS_MYNET_ROW, "g1", false);
	put(&REL_A, "2", LS_MYNET_ROW, "g2", true);
	ls_mynet_end_txn(N);
	put(&REL_A, "1", LS_MYNET_DEL, NULL, false);
	put(&REL_A, "2", LS_MYNET_ROW, "t2", false);
	put(&REL_A, "9", LS_MYNET_ROW, "t9", true);
	ck_assert_str_eq(show(), "A:1=D,A:2+t2,A:9+t9");   /* the transaction's view */
	ls_mynet_drop_txn(N);
	ck_assert_str_eq(show(), "A:1~g1,A:2+g2");
	put(&REL_A, "2", LS_MYNET_DEL, NULL, false);        /* fresh in the group: nothing */
	ls_mynet_end_txn(N);
	ck_assert_str_eq(show(), "A:1~g1");
}
END_TEST

static int last_value_stands(const struct ls_mynet_row *r, void *ctx)
{
	char want[32];
	if (strcmp(r->key, "07") == 0)
		snprintf(want, sizeof want, "z");
	else
		snprintf(want, sizeof want, "v%s.1", r->key);
	if (strcmp(r->row, want) != 0 || !r->fresh || r->state != LS_MYNET_ROW)
		++*(int *)ctx;
	return 0;
}

START_TEST(netrows_many_keys_keep_identity_and_bytes)
{
	char k[32], row[32];
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 5000; i++) {
			snprintf(k, sizeof k, "%d", i);
			snprintf(row, sizeof row, "v%d.%d", i, round);
			put(i % 2 ? &REL_A : &REL_B, k, LS_MYNET_ROW, row, true);
			if (i % 100 == 0)
				ls_mynet_end_txn(N);
		}
	ls_mynet_end_txn(N);
	ck_assert_uint_eq(ls_mynet_count(N), 5000);
	/* keys are per table: "7" of A and "7" of B differ; a key's bytes matter,
	 * not its numeric value */
	put(&REL_A, "07", LS_MYNET_ROW, "z", true);
	ls_mynet_end_txn(N);
	ck_assert_uint_eq(ls_mynet_count(N), 5001);
	size_t bytes = ls_mynet_bytes(N);
	ck_assert_uint_gt(bytes, 5000 * 5);
	/* the last value of each key stands */
	int bad = 0;
	ck_assert_int_eq(ls_mynet_each(N, last_value_stands, &bad), 0);
	ck_assert_int_eq(bad, 0);
	/* rewriting in a transaction then dropping it leaves the bytes as they were */
	put(&REL_A, "1", LS_MYNET_ROW, "a much longer value than before", false);
	ls_mynet_drop_txn(N);
	ck_assert_uint_eq(ls_mynet_bytes(N), bytes);
}
END_TEST

static int stop_at_second(const struct ls_mynet_row *r, void *ctx)
{
	(void)r;
	return ++*(int *)ctx == 2 ? 7 : 0;
}

START_TEST(netrows_each_stops_at_nonzero)
{
	put(&REL_A, "1", LS_MYNET_ROW, "a", true);
	put(&REL_A, "2", LS_MYNET_ROW, "b", true);
	put(&REL_A, "3", LS_MYNET_ROW, "c", true);
	int calls = 0;
	ck_assert_int_eq(ls_mynet_each(N, stop_at_second, &calls), 7);
	ck_assert_int_eq(calls, 2);
}
END_TEST

int main(void)
{
	const struct ls_testutil_case cases[] = {
		{ "fold", netrows_fold_to_final_state_and_freshness },
		{ "drop", netrows_drop_txn_forgets_exactly_that_transaction },
		{ "many", netrows_many_keys_keep_identity_and_bytes },
		{ "each", netrows_each_stops_at_nonzero },
	};
	return ls_testutil_run_cases("my_netrows", cases, sizeof cases / sizeof cases[0], setup,
				     teardown, 30);
}
