/* test_pg_source — the pure helpers of the PostgreSQL source: LSN text,
 * table patterns, the reconnect backoff and PostgreSQL timestamps. */
#include "connectors/postgres/pg_setup.h"
#include "connectors/postgres/pg_source.h"
#include "connectors/postgres/pg_stream.h"

#include <check.h>
#include <stdlib.h>

START_TEST(pgsetup_lsn_round_trips_and_rejects_garbage)
{
	uint64_t v = 0;
	char buf[LS_PG_LSN_TEXT_MAX];
	ck_assert_int_eq(ls_pgsetup_lsn_parse("16/B374D848", &v), 0);
	ck_assert_uint_eq(v, 0x16B374D848ULL);
	ck_assert_str_eq(ls_pgsetup_lsn_format(v, buf), "16/B374D848");
	ck_assert_str_eq(ls_pgsetup_lsn_format(UINT64_MAX, buf),
		"FFFFFFFF/FFFFFFFF");
	ck_assert_int_eq(ls_pgsetup_lsn_parse("0/0", &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(ls_pgsetup_lsn_parse("16B374D848", &v), -1);
	ck_assert_int_eq(ls_pgsetup_lsn_parse("1/2x", &v), -1);
	ck_assert_int_eq(ls_pgsetup_lsn_parse("", &v), -1);
	ck_assert_int_eq(ls_pgsetup_lsn_parse(NULL, &v), -1);
}
END_TEST

START_TEST(pgsetup_patterns_match_schema_and_table_with_stars)
{
	ck_assert(ls_pgsetup_pattern_match("public.*", "public", "orders"));
	ck_assert(!ls_pgsetup_pattern_match("public.*", "sales", "orders"));
	ck_assert(ls_pgsetup_pattern_match("sales.x, public.audit_*", "public",
		"audit_2024"));
	ck_assert(!ls_pgsetup_pattern_match("public.audit_*", "public", "audit"));
	ck_assert(ls_pgsetup_pattern_match("*.*", "a", "b"));
	ck_assert(ls_pgsetup_pattern_match("s*s.*a*b*", "sales", "xaybz"));
	ck_assert(!ls_pgsetup_pattern_match("s*s.*a*b", "sales", "xaybz"));
	ck_assert(ls_pgsetup_pattern_match("public.Orders", "public", "Orders"));
	ck_assert(!ls_pgsetup_pattern_match("public.Orders", "public", "orders"));
	ck_assert(!ls_pgsetup_pattern_match("orders", "public", "orders"));
	ck_assert(!ls_pgsetup_pattern_match("", "public", "orders"));
	ck_assert(!ls_pgsetup_pattern_match(" , ", "public", "orders"));
}
END_TEST

START_TEST(pgstream_backoff_stays_between_base_and_cap)
{
	uint64_t prev = 0;
	ck_assert_uint_eq(ls_pgstream_backoff_ms(0, 500, 30000, 12345), 500);
	for (int i = 0; i < 1000; i++) {
		uint64_t next = ls_pgstream_backoff_ms(prev, 500, 30000,
			(uint32_t)rand());
		ck_assert_uint_ge(next, 500);
		ck_assert_uint_le(next, 30000);
		if (prev > 0)
			ck_assert_uint_le(next, prev * 3 > 30000 ? 30000 : prev * 3);
		prev = next;
	}
	ck_assert_uint_eq(ls_pgstream_backoff_ms(1000, 500, 30000, 0), 500);
	ck_assert_uint_eq(ls_pgstream_backoff_ms(1000, 500, 30000, 2500), 3000);
	ck_assert_uint_eq(ls_pgstream_backoff_ms(100000, 500, 30000, 99999),
		30000);
	ck_assert_uint_eq(ls_pgstream_backoff_ms(0, 500, 200, 7), 200);
}
END_TEST

START_TEST(pgstream_pg_time_converts_to_unix)
{
	ck_assert_int_eq(ls_pgstream_pg_to_unix_us(0), 946684800LL * 1000000);
	int64_t now = ls_pgstream_now_pg();
	/* after 2024-01-01, before 2100 */
	ck_assert_int_gt(ls_pgstream_pg_to_unix_us(now), 1704067200LL * 1000000);
	ck_assert_int_lt(ls_pgstream_pg_to_unix_us(now), 4102444800LL * 1000000);
}
END_TEST

START_TEST(pgsource_skips_origins_and_their_stream_sessions)
{
	const char *list = "lockstep_shop_rev, other";
	ck_assert(ls_pg_source_origin_skipped(list, "lockstep_shop_rev"));
	ck_assert(ls_pg_source_origin_skipped(list, "other"));
	ck_assert(ls_pg_source_origin_skipped(list, "lockstep_shop_rev:s1"));
	ck_assert(ls_pg_source_origin_skipped(list, "lockstep_shop_rev:s12"));
	ck_assert(!ls_pg_source_origin_skipped(list, "lockstep_shop_rev:s"));
	ck_assert(!ls_pg_source_origin_skipped(list, "lockstep_shop_rev:x1"));
	ck_assert(!ls_pg_source_origin_skipped(list, "lockstep_shop_rev:s1x"));
	ck_assert(!ls_pg_source_origin_skipped(list, "lockstep_shop"));
	ck_assert(!ls_pg_source_origin_skipped(list, "lockstep_shop:s1"));
	ck_assert(!ls_pg_source_origin_skipped(list, "othe"));
	ck_assert(!ls_pg_source_origin_skipped("", "x"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pg_source");
	TCase *tc = tcase_create("pure");
	tcase_add_test(tc, pgsetup_lsn_round_trips_and_rejects_garbage);
	tcase_add_test(tc, pgsetup_patterns_match_schema_and_table_with_stars);
	tcase_add_test(tc, pgstream_backoff_stays_between_base_and_cap);
	tcase_add_test(tc, pgstream_pg_time_converts_to_unix);
	tcase_add_test(tc, pgsource_skips_origins_and_their_stream_sessions);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
