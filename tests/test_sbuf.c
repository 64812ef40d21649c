/* Unit tests for lib/sbuf: appends grow the buffer and keep it a C string,
 * reset keeps the memory, room hands out space the caller fills. */
#include "sbuf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(sbuf_empty_reads_as_empty_string)
{
	struct ls_sbuf b;
	ls_sbuf_init(&b);
	ck_assert_str_eq(ls_sbuf_str(&b), "");
	ck_assert_uint_eq(b.len, 0);
	ls_sbuf_free(&b);
	ls_sbuf_free(&b);   /* free of a freed buffer is a no-op */
}
END_TEST

START_TEST(sbuf_appends_grow_past_the_first_block)
{
	struct ls_sbuf b;
	ls_sbuf_init(&b);
	for (int i = 0; i < 1000; i++)
		ls_sbuf_printf(&b, "%d,", i % 10);
	ls_sbuf_putc(&b, 'x');
	ls_sbuf_put(&b, "yz");
	ls_sbuf_putn(&b, "abcdef", 3);
	ck_assert(!b.oom);
	ck_assert_uint_eq(b.len, 2000 + 6);
	ck_assert_uint_eq(strlen(ls_sbuf_str(&b)), b.len);
	ck_assert_int_eq(strncmp(ls_sbuf_str(&b), "0,1,2,", 6), 0);
	ck_assert_str_eq(ls_sbuf_str(&b) + 2000, "xyzabc");
	ls_sbuf_free(&b);
}
END_TEST

START_TEST(sbuf_reset_keeps_memory_and_empties)
{
	struct ls_sbuf b;
	ls_sbuf_init(&b);
	ls_sbuf_put(&b, "hello");
	char *data = b.data;
	size_t cap = b.cap;
	ls_sbuf_reset(&b);
	ck_assert_str_eq(ls_sbuf_str(&b), "");
	ck_assert_ptr_eq(b.data, data);
	ck_assert_uint_eq(b.cap, cap);
	ls_sbuf_put(&b, "again");
	ck_assert_str_eq(ls_sbuf_str(&b), "again");
	ls_sbuf_free(&b);
}
END_TEST

START_TEST(sbuf_room_is_filled_by_the_caller)
{
	struct ls_sbuf b;
	ls_sbuf_init(&b);
	ls_sbuf_put(&b, "a");
	char *p = ls_sbuf_room(&b, 600);
	ck_assert_ptr_nonnull(p);
	memset(p, 'b', 600);
	b.len += 600;
	p[600] = '\0';   /* room includes the NUL */
	ck_assert_uint_eq(strlen(ls_sbuf_str(&b)), 601);
	ck_assert_int_eq(ls_sbuf_str(&b)[600], 'b');
	ls_sbuf_free(&b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sbuf");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, sbuf_empty_reads_as_empty_string);
	tcase_add_test(tc, sbuf_appends_grow_past_the_first_block);
	tcase_add_test(tc, sbuf_reset_keeps_memory_and_empties);
	tcase_add_test(tc, sbuf_room_is_filled_by_the_caller);
	suite_add_tcase(s, tc);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
