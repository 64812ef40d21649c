/* Unit tests for lib/json, the streaming JSON writer.  Output is checked by
 * parsing it back with jansson. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static json_t *parse(const struct ls_json *j)
{
	size_t len = 0;
	const char *s = ls_json_data(j, &len);
	ck_assert_ptr_nonnull(s);
	json_error_t err;
	json_t *v = json_loadb(s, len, JSON_ALLOW_NUL, &err);
	ck_assert_msg(v != NULL, "invalid JSON %s: %s", s, err.text);
	return v;
}

START_TEST(json_writes_nested_document)
{
	struct ls_json *j = ls_json_new();
	ls_json_object_begin(j);
	ls_json_kv_string(j, "name", "shop");
	ls_json_kv_int(j, "neg", -42);
	ls_json_kv_uint(j, "big", 1ULL << 40);
	ls_json_kv_bool(j, "ok", true);
	ls_json_key(j, "nothing");
	ls_json_null(j);
	ls_json_key(j, "ratio");
	ls_json_double(j, 0.25);
	ls_json_key(j, "list");
	ls_json_array_begin(j);
	ls_json_int(j, 1);
	ls_json_string(j, "two");
	ls_json_object_begin(j);
	ls_json_object_end(j);
	ls_json_array_begin(j);
	ls_json_array_end(j);
	ls_json_array_end(j);
	ls_json_object_end(j);
	ck_assert(ls_json_complete(j));
	json_t *v = parse(j);
	ck_assert_str_eq(json_string_value(json_object_get(v, "name")), "shop");
	ck_assert_int_eq(json_integer_value(json_object_get(v, "neg")), -42);
	ck_assert(json_is_true(json_object_get(v, "ok")));
	ck_assert(json_is_null(json_object_get(v, "nothing")));
	ck_assert(json_real_value(json_object_get(v, "ratio")) == 0.25);
	ck_assert_uint_eq(json_array_size(json_object_get(v, "list")), 4);
	ck_assert_str_eq(ls_json_data(j, NULL),
			 "{\"name\":\"shop\",\"neg\":-42,\"big\":1099511627776,\"ok\":true,"
			 "\"nothing\":null,\"ratio\":0.25,\"list\":[1,\"two\",{},[]]}");
	json_decref(v);
	ls_json_reset(j);
	ls_json_uint(j, UINT64_MAX);
	ck_assert_str_eq(ls_json_data(j, NULL), "18446744073709551615");
	ls_json_free(j);
}
END_TEST

START_TEST(json_escapes_strings_and_replaces_bad_utf8)
{
	struct ls_json *j = ls_json_new();
	const char raw[] = "q\"b\\n\n\t\x01 caf\xc3\xa9 \xff \xc0\xaf \xed\xa0\x80 \xf0\x9f\x98\x80";
	ls_json_array_begin(j);
	ls_json_string(j, raw);
	ls_json_string_len(j, "a\0b", 3);
	ls_json_array_end(j);
	json_t *v = parse(j);
	const char *s = json_string_value(json_array_get(v, 0));
	ck_assert_str_eq(s, "q\"b\\n\n\t\x01 caf\xc3\xa9 \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd "
			    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xf0\x9f\x98\x80");
	ck_assert_uint_eq(json_string_length(json_array_get(v, 1)), 3);
	json_decref(v);
	ls_json_free(j);
}
END_TEST

START_TEST(json_misuse_fails_sticky)
{
	struct ls_json *j = ls_json_new();
	ls_json_object_begin(j);
	ls_json_int(j, 1);                    /* a value where a key is due */
	ck_assert_ptr_null(ls_json_data(j, NULL));
	ck_assert(!ls_json_complete(j));
	ls_json_object_end(j);
	ck_assert_ptr_null(ls_json_data(j, NULL));

	ls_json_reset(j);
	ls_json_array_begin(j);
	ls_json_object_end(j);                /* mismatched close */
	ck_assert_ptr_null(ls_json_data(j, NULL));

	ls_json_reset(j);
	ls_json_int(j, 1);
	ls_json_int(j, 2);                    /* two roots */
	ck_assert_ptr_null(ls_json_data(j, NULL));

	ls_json_reset(j);
	for (int i = 0; i <= LS_JSON_MAX_DEPTH; i++)
		ls_json_array_begin(j);
	ck_assert_ptr_null(ls_json_data(j, NULL));

	ls_json_reset(j);
	ls_json_array_begin(j);
	ck_assert_ptr_nonnull(ls_json_data(j, NULL));
	ck_assert(!ls_json_complete(j));      /* unclosed */
	ls_json_array_end(j);
	ck_assert(ls_json_complete(j));
	ls_json_free(j);
}
END_TEST

START_TEST(json_null_writer_and_nonfinite_numbers)
{
	ls_json_object_begin(NULL);
	ls_json_kv_string(NULL, "k", "v");
	ck_assert_ptr_null(ls_json_data(NULL, NULL));
	ck_assert(!ls_json_complete(NULL));
	ls_json_free(NULL);

	struct ls_json *j = ls_json_new();
	ls_json_array_begin(j);
	ls_json_double(j, NAN);
	ls_json_double(j, INFINITY);
	ls_json_string(j, NULL);
	ls_json_array_end(j);
	ck_assert_str_eq(ls_json_data(j, NULL), "[null,null,null]");
	ls_json_free(j);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("json");
	TCase *tc = tcase_create("json");
	tcase_add_test(tc, json_writes_nested_document);
	tcase_add_test(tc, json_escapes_strings_and_replaces_bad_utf8);
	tcase_add_test(tc, json_misuse_fails_sticky);
	tcase_add_test(tc, json_null_writer_and_nonfinite_numbers);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
