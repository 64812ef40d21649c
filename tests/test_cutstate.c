/* cutstate: the record a daemon restart reads back after a cutover, and
 * statefile underneath it. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cutstate.h"
#include "statefile.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/ls-cutstate-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	char p[128];
	snprintf(p, sizeof p, "%s/%s", dir, LS_CUTSTATE_FILE);
	unlink(p);
	rmdir(dir);
}

static void write_raw(const char *text)
{
	char p[128];
	snprintf(p, sizeof p, "%s/%s", dir, LS_CUTSTATE_FILE);
	ck_assert_int_eq(ls_statefile_write(dir, p, text, strlen(text), NULL), 0);
}

START_TEST(cutstate_round_trips_with_newlines_and_backslashes)
{
	struct ls_cutstate s = {
		.stage = LS_CUTSTATE_FENCED, .rollback = true, .next_id = 8,
		.fence_undo = strdup("ALTER ROLE app RESET default_transaction_read_only;\n"),
		.newside_undo = strdup("x\\y"),
		.id = 7, .window_until_us = 1795000000123456, .tables = strdup("public.o*"),
		.slice = strdup("public.orders,public.order_items"), .undo =
			strdup("GRANT INSERT ON `shop`.`t` TO 'a\\\\b'@'%';\nSET GLOBAL read_only = OFF;\n"),
	};
	snprintf(s.target, sizeof s.target, "new");
	snprintf(s.rev_start, sizeof s.rev_start, "0-1-42,1-2-7");
	snprintf(s.report, sizeof s.report, "/var/lib/lockstep/shop/cutover-x-7.json");
	ck_assert_int_eq(ls_cutstate_save(dir, &s, NULL), 0);
	struct ls_cutstate r;
	struct ls_err err = {0};
	ck_assert_int_eq(ls_cutstate_load(dir, &r, &err), 1);
	ck_assert_int_eq(r.stage, LS_CUTSTATE_FENCED);
	ck_assert(r.rollback);
	ck_assert_int_eq(r.next_id, 8);
	ck_assert_str_eq(r.fence_undo, s.fence_undo);
	ck_assert_str_eq(r.newside_undo, s.newside_undo);
	ck_assert_int_eq(r.id, 7);
	ck_assert_int_eq(r.window_until_us, 1795000000123456);
	ck_assert_str_eq(r.target, "new");
	ck_assert_str_eq(r.tables, s.tables);
	ck_assert_str_eq(r.slice, s.slice);
	ck_assert_str_eq(r.rev_start, s.rev_start);
	ck_assert_str_eq(r.report, s.report);
	ck_assert_str_eq(r.undo, s.undo);
	ls_cutstate_clear(&r);
	ls_cutstate_clear(&s);
	/* no patterns and no undo come back as NULL */
	s = (struct ls_cutstate){ .stage = LS_CUTSTATE_ROLLED_BACK, .id = 1, .slice = strdup("a.b") };
	snprintf(s.target, sizeof s.target, "t");
	ck_assert_int_eq(ls_cutstate_save(dir, &s, NULL), 0);
	ck_assert_int_eq(ls_cutstate_load(dir, &r, NULL), 1);
	ck_assert_int_eq(r.stage, LS_CUTSTATE_ROLLED_BACK);
	ck_assert(!r.rollback);
	ck_assert_ptr_null(r.tables);
	ck_assert_ptr_null(r.undo);
	ls_cutstate_clear(&r);
	ls_cutstate_clear(&s);
	ck_assert_int_eq(ls_cutstate_remove(dir, NULL), 0);
	ck_assert_int_eq(ls_cutstate_load(dir, &r, NULL), 0);
	ck_assert_int_eq(ls_cutstate_remove(dir, NULL), 0);   /* gone already: fine */
}
END_TEST

START_TEST(cutstate_names_file_and_line_of_a_bad_record)
{
	struct ls_cutstate r;
	struct ls_err err = {0};
	write_raw("stage=cut_over\nid=3\nwindow_until_us=5\ntarget=new\nbogus=1\nslice=a.b\n");
	ck_assert_int_eq(ls_cutstate_load(dir, &r, &err), -1);
	ck_assert_msg(strstr(err.msg, "cutover.state:5: bad or unknown bogus"), "%s", err.msg);
	write_raw("stage=cut_over\nid=3\nwindow_until_us=5\ntarget=new\nslice=a\\qb\n");
	ck_assert_int_eq(ls_cutstate_load(dir, &r, &err), -1);
	ck_assert_msg(strstr(err.msg, ":5: bad or unknown slice"), "%s", err.msg);
	write_raw("id=3\ntarget=new\nslice=a.b\n");
	ck_assert_int_eq(ls_cutstate_load(dir, &r, &err), -1);
	ck_assert_msg(strstr(err.msg, "incomplete"), "%s", err.msg);
	write_raw("stage=cut_over\nid=-1\nwindow_until_us=5\ntarget=new\nslice=a.b\n");
	ck_assert_int_eq(ls_cutstate_load(dir, &r, &err), -1);
	write_raw("stage=cut_over\nid=3\nwindow_until_us=5\ntarget=new\nslice=a.b");
	ck_assert_int_eq(ls_cutstate_load(dir, &r, &err), -1);
	ck_assert_msg(strstr(err.msg, ":5: unterminated"), "%s", err.msg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cutstate");
	TCase *tc = tcase_create("record");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, cutstate_round_trips_with_newlines_and_backslashes);
	tcase_add_test(tc, cutstate_names_file_and_line_of_a_bad_record);
	suite_add_tcase(s, tc);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
