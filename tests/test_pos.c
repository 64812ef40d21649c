/* Unit tests for lib/pos: LSN, GTID sets, binlog file:offset. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pos.h"

/* ---- LSN ---- */

START_TEST(pos_lsn_parses_and_formats)
{
	static const struct { const char *in, *canon; uint64_t v; } cases[] = {
		{ "16/B374D848", "16/B374D848", 0x16B374D848ULL },
		{ "0/0", "0/0", 0 },
		{ "0/16b3748", "0/16B3748", 0x16B3748 },
		{ "FFFFFFFF/FFFFFFFF", "FFFFFFFF/FFFFFFFF", UINT64_MAX },
		{ "00000001/00000002", "1/2", 0x100000002ULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t v = 1234;
		struct ls_err err = { 0 };
		ck_assert_msg(ls_lsn_parse(cases[i].in, &v, &err) == 0, "%s: %s", cases[i].in, err.msg);
		ck_assert_uint_eq(v, cases[i].v);
		char buf[LS_LSN_TEXT_MAX];
		ck_assert_int_eq(ls_lsn_format(v, buf, sizeof buf), (int)strlen(cases[i].canon));
		ck_assert_str_eq(buf, cases[i].canon);
	}
}
END_TEST

START_TEST(pos_lsn_rejects_garbage)
{
	static const char *bad[] = {
		"", "/", "16", "16/", "/B374D848", "16B374D848", "16/B374D848 ", " 16/1",
		"16/B374D848x", "123456789/0", "0/123456789", "1/2/3", "g/1", "-1/0", "+1/0",
		"0x1/2", "1 /2",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint64_t v = 77;
		struct ls_err err = { 0 };
		ck_assert_msg(ls_lsn_parse(bad[i], &v, &err) < 0, "accepted \"%s\"", bad[i]);
		ck_assert_uint_eq(v, 77);
		ck_assert_ptr_nonnull(strstr(err.msg, "LSN"));
	}
}
END_TEST

START_TEST(pos_lsn_compares_and_format_checks_size)
{
	ck_assert_int_lt(ls_lsn_cmp(0x100000000ULL, 0x100000001ULL), 0);
	ck_assert_int_gt(ls_lsn_cmp(0x200000000ULL, 0xFFFFFFFFULL), 0);
	ck_assert_int_eq(ls_lsn_cmp(5, 5), 0);
	char buf[4];
	ck_assert_int_eq(ls_lsn_format(0x16B374D848ULL, buf, sizeof buf), -1);
	ck_assert_int_eq(ls_lsn_format(0, buf, sizeof buf), 3);
}
END_TEST

/* ---- GTID ---- */

static struct ls_gtid_set parse_ok(const char *s)
{
	struct ls_gtid_set set;
	struct ls_err err = { 0 };
	ck_assert_msg(ls_gtid_set_parse(s, &set, &err) == 0, "\"%s\": %s", s, err.msg);
	return set;
}

static void format_is(const struct ls_gtid_set *set, const char *want)
{
	char buf[4096];
	ck_assert_int_eq(ls_gtid_set_format(set, buf, sizeof buf), (int)strlen(want));
	ck_assert_str_eq(buf, want);
}

START_TEST(pos_gtid_set_parses_canonically)
{
	struct ls_gtid_set s = parse_ok("1-2-5,0-1-100");
	ck_assert_uint_eq(s.n, 2);
	ck_assert_uint_eq(s.g[0].domain, 0);
	ck_assert_uint_eq(s.g[0].server, 1);
	ck_assert_uint_eq(s.g[0].seq, 100);
	format_is(&s, "0-1-100,1-2-5");
	s = parse_ok("  7-4294967295-18446744073709551615 ,\n 3-1-1 ");
	format_is(&s, "3-1-1,7-4294967295-18446744073709551615");
	s = parse_ok("");
	ck_assert_uint_eq(s.n, 0);
	format_is(&s, "");
	s = parse_ok("   ");
	ck_assert_uint_eq(s.n, 0);
}
END_TEST

START_TEST(pos_gtid_set_rejects_bad_entries_by_name)
{
	static const struct { const char *in, *want; } bad[] = {
		{ "0-1", "entry 1 \"0-1\": expected domain-server-seq" },
		{ "0-1-5,0-x-5", "entry 2 \"0-x-5\": bad server id" },
		{ "0-1-5,,1-1-1", "entry 2 \"\"" },
		{ "0-1-5,", "trailing ','" },
		{ "4294967296-1-1", "bad domain id" },
		{ "0-1-18446744073709551616", "bad sequence number" },
		{ "0-1-2-3", "bad sequence number" },
		{ "0-1-5,0-2-9", "domain 0 appears twice" },
		{ "-1-1-1", "bad domain id" },
		{ "0-1-+5", "bad sequence number" },
		{ "0-1-5 1-1-1", "bad sequence number" },
		{ "3e4a8c2a-1111-2222-3333-444455556666:1-5", "entry 1" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct ls_gtid_set s;
		struct ls_err err = { 0 };
		ck_assert_msg(ls_gtid_set_parse(bad[i].in, &s, &err) < 0, "accepted \"%s\"", bad[i].in);
		ck_assert_msg(strstr(err.msg, bad[i].want), "\"%s\": message \"%s\" lacks \"%s\"",
			      bad[i].in, err.msg, bad[i].want);
	}
}
END_TEST

START_TEST(pos_gtid_set_bounds_domains)
{
	/* 64 domains parse; the 65th is refused, by parse and by add. */
	char buf[8192];
	size_t len = 0;
	for (int d = 0; d < LS_GTID_MAX_DOMAINS; d++)
		len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%d-1-%d", d ? "," : "", d, d);
	struct ls_gtid_set s = parse_ok(buf);
	ck_assert_uint_eq(s.n, LS_GTID_MAX_DOMAINS);
	struct ls_err err = { 0 };
	struct ls_gtid g = { .domain = 1000, .server = 1, .seq = 1 };
	ck_assert_int_lt(ls_gtid_set_add(&s, &g, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "more than 64 domains"));
	g.domain = 5;
	ck_assert_int_eq(ls_gtid_set_add(&s, &g, &err), 0);   /* existing domain still fine */
	snprintf(buf + len, sizeof buf - len, ",999-1-1");
	ck_assert_int_lt(ls_gtid_set_parse(buf, &s, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "more than 64 domains"));
	char small[16];
	ck_assert_int_eq(ls_gtid_set_format(&s, small, sizeof small), -1);
}
END_TEST

START_TEST(pos_gtid_set_contains_and_add)
{
	struct ls_gtid_set a = parse_ok("0-1-100,1-2-5");
	struct ls_gtid_set b = parse_ok("0-1-99");
	struct ls_gtid_set empty = parse_ok("");
	ck_assert(ls_gtid_set_contains(&a, &b));
	ck_assert(!ls_gtid_set_contains(&b, &a));
	ck_assert(ls_gtid_set_contains(&a, &a));
	ck_assert(ls_gtid_set_contains(&a, &empty));
	ck_assert(!ls_gtid_set_contains(&empty, &b));
	/* server id does not matter for reaching, seq per domain does */
	struct ls_gtid_set c = parse_ok("0-7-100");
	ck_assert(ls_gtid_set_contains(&a, &c));
	c = parse_ok("0-1-101");
	ck_assert(!ls_gtid_set_contains(&a, &c));
	/* a domain b has that a lacks */
	c = parse_ok("2-1-1");
	ck_assert(!ls_gtid_set_contains(&a, &c));

	struct ls_err err = { 0 };
	struct ls_gtid g = { .domain = 2, .server = 3, .seq = 9 };
	ck_assert_int_eq(ls_gtid_set_add(&b, &g, &err), 0);
	g = (struct ls_gtid){ .domain = 0, .server = 1, .seq = 101 };
	ck_assert_int_eq(ls_gtid_set_add(&b, &g, &err), 0);
	format_is(&b, "0-1-101,2-3-9");
	ck_assert(ls_gtid_set_contains(&b, &c));
	ck_assert_ptr_null(ls_gtid_set_find(&b, 1));
	ck_assert_uint_eq(ls_gtid_set_find(&b, 2)->seq, 9);
}
END_TEST

START_TEST(pos_gtid_set_equality)
{
	struct ls_gtid_set a = parse_ok("1-2-5,0-1-100");
	struct ls_gtid_set b = parse_ok("0-1-100, 1-2-5");
	ck_assert(ls_gtid_set_equal(&a, &b));
	b = parse_ok("0-1-100,1-3-5");
	ck_assert(!ls_gtid_set_equal(&a, &b));
	b = parse_ok("0-1-100");
	ck_assert(!ls_gtid_set_equal(&a, &b));
	struct ls_gtid g;
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_gtid_parse("1-2-5", &g, &err), 0);
	ck_assert_int_eq(ls_gtid_set_add(&b, &g, &err), 0);
	ck_assert(ls_gtid_set_equal(&a, &b));
	ck_assert_int_lt(ls_gtid_parse("1-2-5,", &g, &err), 0);
}
END_TEST

/* ---- binlog ---- */

START_TEST(pos_binlog_parses_formats_compares)
{
	struct ls_binlog_pos a, b;
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_binlog_pos_parse("binlog.000003:4521", &a, &err), 0);
	ck_assert_str_eq(a.file, "binlog.000003");
	ck_assert_uint_eq(a.fileno, 3);
	ck_assert_uint_eq(a.offset, 4521);
	char buf[LS_BINLOG_FILE_MAX + 24];
	ck_assert_int_eq(ls_binlog_pos_format(&a, buf, sizeof buf), 18);
	ck_assert_str_eq(buf, "binlog.000003:4521");

	ck_assert_int_eq(ls_binlog_pos_parse("binlog.000002:999999", &b, &err), 0);
	ck_assert_int_gt(ls_binlog_pos_cmp(&a, &b), 0);   /* file number first */
	ck_assert_int_eq(ls_binlog_pos_parse("binlog.000003:4522", &b, &err), 0);
	ck_assert_int_lt(ls_binlog_pos_cmp(&a, &b), 0);
	ck_assert_int_eq(ls_binlog_pos_parse("binlog.000003:4521", &b, &err), 0);
	ck_assert_int_eq(ls_binlog_pos_cmp(&a, &b), 0);
	/* numbers, not strings: 1000000 after 999999 */
	ck_assert_int_eq(ls_binlog_pos_parse("mysql-bin.999999:4", &a, &err), 0);
	ck_assert_int_eq(ls_binlog_pos_parse("mysql-bin.1000000:4", &b, &err), 0);
	ck_assert_int_lt(ls_binlog_pos_cmp(&a, &b), 0);

	uint64_t s1, s2;
	ck_assert_int_eq(ls_binlog_pos_seq(&a, &s1, &err), 0);
	ck_assert_int_eq(ls_binlog_pos_seq(&b, &s2, &err), 0);
	ck_assert_uint_lt(s1, s2);
	ck_assert_uint_eq(s1, (999999ULL << 32) | 4);
	ck_assert_int_eq(ls_binlog_pos_parse("b.1:4294967296", &a, &err), 0);
	ck_assert_int_lt(ls_binlog_pos_seq(&a, &s1, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "32 bits"));
}
END_TEST

START_TEST(pos_binlog_rejects_garbage)
{
	static const char *bad[] = {
		"binlog.000003", ":4", "binlog:4", "binlog.:4", "binlog.000003:", "binlog.000003:-1",
		"binlog.000003:4x", "binlog.00000a:4", "dir/binlog.1:4", "binlog.4294967296:4",
		"binlog.1:18446744073709551616", "binlog.1: 4", "b:x.1:4",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct ls_binlog_pos p;
		struct ls_err err = { 0 };
		ck_assert_msg(ls_binlog_pos_parse(bad[i], &p, &err) < 0, "accepted \"%s\"", bad[i]);
		ck_assert_ptr_nonnull(strstr(err.msg, "binlog position"));
	}
	char longname[LS_BINLOG_FILE_MAX + 16];
	memset(longname, 'a', LS_BINLOG_FILE_MAX);
	strcpy(longname + LS_BINLOG_FILE_MAX, ".1:4");
	struct ls_binlog_pos p;
	ck_assert_int_lt(ls_binlog_pos_parse(longname, &p, NULL), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pos");
	TCase *tc = tcase_create("pos");
	tcase_add_test(tc, pos_lsn_parses_and_formats);
	tcase_add_test(tc, pos_lsn_rejects_garbage);
	tcase_add_test(tc, pos_lsn_compares_and_format_checks_size);
	tcase_add_test(tc, pos_gtid_set_parses_canonically);
	tcase_add_test(tc, pos_gtid_set_rejects_bad_entries_by_name);
	tcase_add_test(tc, pos_gtid_set_bounds_domains);
	tcase_add_test(tc, pos_gtid_set_contains_and_add);
	tcase_add_test(tc, pos_gtid_set_equality);
	tcase_add_test(tc, pos_binlog_parses_formats_compares);
	tcase_add_test(tc, pos_binlog_rejects_garbage);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
