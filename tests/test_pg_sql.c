/* Unit tests for connectors/postgres/pg_sql: quoting, COPY escaping, type
 * names and the DDL diff. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/postgres/pg_sql.h"

static struct ls_pgsql_buf b;

static void setup(void)
{
	ls_pgsql_buf_init(&b);
}

static void teardown(void)
{
	ls_pgsql_buf_free(&b);
}

START_TEST(pgsql_ident_doubles_quotes)
{
	ls_pgsql_ident(&b, "we\"ird Name");
	ck_assert_str_eq(ls_pgsql_buf_str(&b), "\"we\"\"ird Name\"");
	ls_pgsql_buf_reset(&b);
	ls_pgsql_qualified(&b, "public", "select");
	ck_assert_str_eq(ls_pgsql_buf_str(&b), "\"public\".\"select\"");
}
END_TEST

START_TEST(pgsql_literal_escapes_quotes_and_backslashes)
{
	ls_pgsql_literal(&b, "it's", 4);
	ck_assert_str_eq(ls_pgsql_buf_str(&b), "'it''s'");
	ls_pgsql_buf_reset(&b);
	ls_pgsql_literal(&b, "a\\b'c", 5);
	ck_assert_str_eq(ls_pgsql_buf_str(&b), "E'a\\\\b''c'");
}
END_TEST

START_TEST(pgsql_copy_escape_special_bytes)
{
	const char in[] = "a\tb\nc\rd\\e f\xc3\xa9";
	ls_pgsql_copy_escape(&b, in, sizeof in - 1);
	ck_assert_str_eq(ls_pgsql_buf_str(&b), "a\\tb\\nc\\rd\\\\e f\xc3\xa9");
	ls_pgsql_buf_reset(&b);
	ls_pgsql_copy_escape(&b, "\\N", 2);   /* a literal "\N" is not NULL */
	ck_assert_str_eq(ls_pgsql_buf_str(&b), "\\\\N");
	ls_pgsql_buf_reset(&b);
	ls_pgsql_copy_escape(&b, "", 0);
	ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(pgsql_bytea_hex_encodes_all_bytes)
{
	const unsigned char in[] = { 0x00, 0xff, 0x0a, 0x5c };
	ls_pgsql_bytea_hex(&b, in, sizeof in);
	ck_assert_str_eq(ls_pgsql_buf_str(&b), "\\x00ff0a5c");
}
END_TEST

START_TEST(pgsql_buf_grows_past_initial_capacity)
{
	for (int i = 0; i < 1000; i++)
		ls_pgsql_printf(&b, "%04d", i);
	ck_assert_uint_eq(b.len, 4000);
	ck_assert(!b.oom);
	ck_assert(strncmp(b.data + 3996, "0999", 4) == 0);
}
END_TEST

START_TEST(pgsql_type_safe_accepts_catalog_spellings)
{
	ck_assert(ls_pgsql_type_safe("numeric(10,2)"));
	ck_assert(ls_pgsql_type_safe("character varying(20)[]"));
	ck_assert(ls_pgsql_type_safe("timestamp(3) with time zone"));
	ck_assert(ls_pgsql_type_safe("public.\"My; Type\""));
	ck_assert(!ls_pgsql_type_safe("integer; DROP TABLE x"));
	ck_assert(!ls_pgsql_type_safe("text -- c"));
	ck_assert(!ls_pgsql_type_safe("numeric(10"));
	ck_assert(!ls_pgsql_type_safe("\"open"));
	ck_assert(!ls_pgsql_type_safe("'x'"));
	ck_assert(!ls_pgsql_type_safe(""));
}
END_TEST

START_TEST(pgsql_type_norm_maps_aliases)
{
	char out[128];
	ls_pgsql_type_norm("INT4[]", out, sizeof out);
	ck_assert_str_eq(out, "integer[]");
	ls_pgsql_type_norm("varchar( 20 )", out, sizeof out);
	ck_assert_str_eq(out, "character varying(20)");
	ls_pgsql_type_norm("timestamptz(3)", out, sizeof out);
	ck_assert_str_eq(out, "timestamp(3) with time zone");
	ls_pgsql_type_norm("timestamp(3) with time zone", out, sizeof out);
	ck_assert_str_eq(out, "timestamp(3) with time zone");
	ls_pgsql_type_norm("pg_catalog.int8", out, sizeof out);
	ck_assert_str_eq(out, "bigint");
	ls_pgsql_type_norm("public.\"Mood\"", out, sizeof out);
	ck_assert_str_eq(out, "public.\"Mood\"");
}
END_TEST

START_TEST(pgsql_type_compatible_allows_widening_only)
{
	ck_assert(ls_pgsql_type_compatible("integer", "int4"));
	ck_assert(ls_pgsql_type_compatible("integer", "bigint"));
	ck_assert(!ls_pgsql_type_compatible("bigint", "integer"));
	ck_assert(ls_pgsql_type_compatible("character varying(20)", "character varying(40)"));
	ck_assert(ls_pgsql_type_compatible("timestamp(6) without time zone",
					   "timestamp without time zone"));
	ck_assert(ls_pgsql_type_compatible("timestamp(3) with time zone", "timestamptz"));
	ck_assert(!ls_pgsql_type_compatible("timestamp without time zone",
					    "timestamp(3) without time zone"));
	ck_assert(!ls_pgsql_type_compatible("timestamp without time zone", "timestamptz"));
	ck_assert(ls_pgsql_type_compatible("time(6) without time zone", "time without time zone"));
	ck_assert(ls_pgsql_type_compatible("character varying(5)", "character(5)"));
	ck_assert(!ls_pgsql_type_compatible("character varying(6)", "character(5)"));
	ck_assert(!ls_pgsql_type_compatible("character varying(40)", "character varying(20)"));
	ck_assert(ls_pgsql_type_compatible("character varying(40)", "text"));
	ck_assert(ls_pgsql_type_compatible("numeric(10,2)", "numeric"));
	ck_assert(ls_pgsql_type_compatible("numeric(10,2)", "numeric(12,2)"));
	ck_assert(!ls_pgsql_type_compatible("numeric(10,2)", "numeric(10,3)"));
	ck_assert(!ls_pgsql_type_compatible("text", "integer"));
	ck_assert(!ls_pgsql_type_compatible("integer[]", "integer"));
}
END_TEST

static struct ls_relation *rel(const char *spec)
{
	/* "name:type:k|name:type" (k marks a key column) */
	int n = 1;
	for (const char *p = spec; *p; p++)
		n += *p == '|';
	struct ls_relation *r = ls_relation_new((uint16_t)n);
	r->schema = strdup("public");
	r->name = strdup("t");
	r->replident = LS_REPLIDENT_DEFAULT;
	char *copy = strdup(spec), *save = NULL;
	int i = 0;
	for (char *c = strtok_r(copy, "|", &save); c; c = strtok_r(NULL, "|", &save), i++) {
		char *type = strchr(c, ':');
		*type++ = '\0';
		char *k = strchr(type, ':');
		if (k)
			*k = '\0';
		r->cols[i].name = strdup(c);
		r->cols[i].type_name = strdup(type);
		r->cols[i].flags = k ? LS_COL_KEY : 0;
	}
	free(copy);
	return r;
}

static const char *plan(const char *a, const char *b_spec)
{
	struct ls_relation *o = rel(a), *n = rel(b_spec);
	struct ls_pgsql_ddl_step steps[32];
	struct ls_err err;
	int k = ls_pgsql_ddl_diff(o, n, steps, &err);
	ls_pgsql_buf_reset(&b);
	if (k < 0)
		ls_pgsql_put(&b, "ERROR");
	for (int i = 0; i < k; i++) {
		if (i)
			ls_pgsql_put(&b, " | ");
		ck_assert_int_eq(ls_pgsql_ddl_sql(&b, o, n, &steps[i], &err), 0);
	}
	ls_relation_free(o);
	ls_relation_free(n);
	return ls_pgsql_buf_str(&b);
}

START_TEST(pgsql_ddl_diff_add_drop_alter)
{
	ck_assert_str_eq(plan("id:integer:k|a:text", "id:integer:k|a:text"), "");
	ck_assert_str_eq(plan("id:integer:k|a:text", "id:integer:k|a:text|b:numeric(10,2)"),
			 "ALTER TABLE \"public\".\"t\" ADD COLUMN IF NOT EXISTS \"b\" numeric(10,2)");
	ck_assert_str_eq(plan("id:integer:k|a:text|b:date", "id:integer:k|b:date"),
			 "ALTER TABLE \"public\".\"t\" DROP COLUMN IF EXISTS \"a\"");
	ck_assert_str_eq(plan("id:integer:k|a:integer", "id:integer:k|a:bigint"),
			 "ALTER TABLE \"public\".\"t\" ALTER COLUMN \"a\" TYPE bigint USING \"a\"::bigint");
	ck_assert_str_eq(plan("id:integer:k|a:int4", "id:integer:k|a:integer"), "");
}
END_TEST

START_TEST(pgsql_ddl_diff_rename_keeps_data)
{
	ck_assert_str_eq(plan("id:integer:k|a:text", "id:integer:k|b:text"),
			 "ALTER TABLE \"public\".\"t\" RENAME COLUMN \"a\" TO \"b\"");
	/* different type at the same place: drop + add */
	ck_assert_str_eq(plan("id:integer:k|a:text", "id:integer:k|b:date"),
			 "ALTER TABLE \"public\".\"t\" DROP COLUMN IF EXISTS \"a\" | "
			 "ALTER TABLE \"public\".\"t\" ADD COLUMN IF NOT EXISTS \"b\" date");
}
END_TEST

START_TEST(pgsql_ddl_diff_rejects_key_change)
{
	ck_assert_str_eq(plan("id:integer:k|a:text", "id:integer|a:text:k"), "ERROR");
}
END_TEST

START_TEST(pgsql_ddl_describe_names_change)
{
	struct ls_relation *o = rel("id:integer:k"), *n = rel("id:integer:k|c:integer");
	struct ls_pgsql_ddl_step steps[4];
	ck_assert_int_eq(ls_pgsql_ddl_diff(o, n, steps, NULL), 1);
	ls_pgsql_ddl_describe(&b, o, n, &steps[0]);
	ck_assert_str_eq(ls_pgsql_buf_str(&b), "column c added (integer)");
	ls_relation_free(o);
	ls_relation_free(n);
}
END_TEST

START_TEST(pgsql_create_table_with_key_and_rejects_bad_type)
{
	struct ls_relation *r = rel("id:bigint:k|Tag:character varying(20)[]|n:numeric(10,2)");
	struct ls_err err;
	ck_assert_int_eq(ls_pgsql_create_table(&b, r, &err), 0);
	ck_assert_str_eq(ls_pgsql_buf_str(&b),
			 "CREATE TABLE IF NOT EXISTS \"public\".\"t\" (\"id\" bigint, \"Tag\" "
			 "character varying(20)[], \"n\" numeric(10,2), PRIMARY KEY (\"id\"))");
	ls_relation_free(r);
	r = rel("id:int;drop table x:k");
	ls_pgsql_buf_reset(&b);
	ck_assert_int_eq(ls_pgsql_create_table(&b, r, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "column id"));
	ls_relation_free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pg_sql");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, pgsql_ident_doubles_quotes);
	tcase_add_test(tc, pgsql_literal_escapes_quotes_and_backslashes);
	tcase_add_test(tc, pgsql_copy_escape_special_bytes);
	tcase_add_test(tc, pgsql_bytea_hex_encodes_all_bytes);
	tcase_add_test(tc, pgsql_buf_grows_past_initial_capacity);
	tcase_add_test(tc, pgsql_type_safe_accepts_catalog_spellings);
	tcase_add_test(tc, pgsql_type_norm_maps_aliases);
	tcase_add_test(tc, pgsql_type_compatible_allows_widening_only);
	tcase_add_test(tc, pgsql_ddl_diff_add_drop_alter);
	tcase_add_test(tc, pgsql_ddl_diff_rename_keeps_data);
	tcase_add_test(tc, pgsql_ddl_diff_rejects_key_change);
	tcase_add_test(tc, pgsql_ddl_describe_names_change);
	tcase_add_test(tc, pgsql_create_table_with_key_and_rejects_bad_type);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
