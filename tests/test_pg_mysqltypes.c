/* pg_mysqltypes: MySQL-typed relations on the PostgreSQL target — which
 * columns count as MySQL, the type mapping, zero dates, UTC timestamps,
 * changes and COPY text split anywhere. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/postgres/pg_mysqltypes.h"

/* A relation (id) with key column "id" int and the given MySQL columns. */
static struct ls_relation *my_rel(int n, const char *const *names, const char *const *types,
				  const uint32_t *codes)
{
	struct ls_relation *r = ls_relation_new((uint16_t)(n + 1));
	ck_assert_ptr_nonnull(r);
	r->id = 7;
	r->schema = strdup("shop");
	r->name = strdup("t");
	r->replident = LS_REPLIDENT_DEFAULT;
	r->cols[0] = (struct ls_column){ .name = strdup("id"), .type_name = strdup("int(11)"),
					 .type_oid = 3, .typmod = -1, .flags = LS_COL_KEY };
	for (int i = 0; i < n; i++)
		r->cols[i + 1] = (struct ls_column){ .name = strdup(names[i]),
						     .type_name = strdup(types[i]),
						     .type_oid = codes[i], .typmod = -1 };
	return r;
}

START_TEST(pgmy_maps_mysql_types)
{
	static const struct { const char *my, *pg; uint8_t conv; } m[] = {
		{ "tinyint(1)", "smallint", LS_PGMY_NONE },
		{ "tinyint(3) unsigned", "smallint", LS_PGMY_NONE },
		{ "smallint(5) unsigned", "integer", LS_PGMY_NONE },
		{ "mediumint(8) unsigned", "integer", LS_PGMY_NONE },
		{ "int(10) unsigned", "bigint", LS_PGMY_NONE },
		{ "int(11)", "integer", LS_PGMY_NONE },
		{ "bigint(20) unsigned", "numeric(20,0)", LS_PGMY_NONE },
		{ "decimal(12,4) unsigned", "numeric(12,4)", LS_PGMY_NONE },
		{ "decimal", "numeric(10,0)", LS_PGMY_NONE },
		{ "double", "double precision", LS_PGMY_NONE },
		{ "bit(1)", "bigint", LS_PGMY_NONE },
		{ "bit(64)", "numeric(20,0)", LS_PGMY_NONE },
		{ "char(3)", "character varying(3)", LS_PGMY_NONE },
		{ "varchar(40)", "character varying(40)", LS_PGMY_NONE },
		{ "longtext", "text", LS_PGMY_NONE },
		{ "varbinary(16)", "bytea", LS_PGMY_NONE },
		{ "enum('a','b,c')", "text", LS_PGMY_NONE },
		{ "set('x','y')", "text", LS_PGMY_NONE },
		{ "json", "jsonb", LS_PGMY_NONE },
		{ "date", "date", LS_PGMY_DATE },
		{ "datetime", "timestamp(0) without time zone", LS_PGMY_DATETIME },
		{ "datetime(6)", "timestamp(6) without time zone", LS_PGMY_DATETIME },
		{ "timestamp(3)", "timestamp(3) with time zone", LS_PGMY_TIMESTAMP },
		{ "time(2)", "interval", LS_PGMY_NONE },
		{ "year(4)", "smallint", LS_PGMY_NONE },
		{ "point", "bytea", LS_PGMY_NONE },
	};
	for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
		struct ls_pgmy_type t;
		struct ls_err err = { 0 };
		ck_assert_msg(ls_pgmy_type(m[i].my, &t, &err) == 0, "%s: %s", m[i].my, err.msg);
		ck_assert_str_eq(t.pg, m[i].pg);
		ck_assert_uint_eq(t.conv, m[i].conv);
	}
	struct ls_pgmy_type t;
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_pgmy_type("inet6", &t, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "inet6"));
}
END_TEST

START_TEST(pgmy_takes_back_what_went_the_other_way)
{
	/* a PostgreSQL column takes what its own MySQL column sends back */
	ck_assert(ls_pgmy_takes_back("boolean", "smallint"));                 /* TINYINT(1) */
	ck_assert(ls_pgmy_takes_back("timestamp with time zone",
				     "timestamp(6) without time zone"));         /* DATETIME(6) */
	ck_assert(ls_pgmy_takes_back("uuid", "character varying(36)"));       /* CHAR(36) */
	ck_assert(ls_pgmy_takes_back("inet", "character varying(43)"));
	ck_assert(ls_pgmy_takes_back("interval", "character varying(64)"));
	/* but not another MySQL column's values, nor arrays (JSON text) */
	ck_assert(!ls_pgmy_takes_back("boolean", "integer"));
	ck_assert(!ls_pgmy_takes_back("uuid", "text"));
	ck_assert(!ls_pgmy_takes_back("integer[]", "jsonb"));
}
END_TEST

START_TEST(pgmy_tells_mysql_columns_by_name_and_code)
{
	struct ls_column c = { .type_name = "bigint", .type_oid = 8 };
	ck_assert(ls_pgmy_is_mysql_column(&c));
	c.type_oid = 20;           /* PostgreSQL's int8 */
	ck_assert(!ls_pgmy_is_mysql_column(&c));
	c = (struct ls_column){ .type_name = "bit(8)", .type_oid = 1560 };
	ck_assert(!ls_pgmy_is_mysql_column(&c));
	c.type_oid = 16;
	ck_assert(ls_pgmy_is_mysql_column(&c));
	c = (struct ls_column){ .type_name = "text", .type_oid = 25 };
	ck_assert(!ls_pgmy_is_mysql_column(&c));
	c = (struct ls_column){ .type_name = "character varying(5)", .type_oid = 15 };
	ck_assert(!ls_pgmy_is_mysql_column(&c));
}
END_TEST

START_TEST(pgmy_rejects_zero_dates_and_marks_timestamps_utc)
{
	char *buf = NULL;
	size_t cap = 0, n;
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_pgmy_value(LS_PGMY_TIMESTAMP, "2024-02-29 01:02:03.5", 21, &buf, &cap,
				       &n, &err), 0);
	ck_assert_str_eq(buf, "2024-02-29 01:02:03.5+00");
	ck_assert_uint_eq(n, 24);
	ck_assert_int_eq(ls_pgmy_value(LS_PGMY_DATE, "2024-02-29", 10, &buf, &cap, &n, &err), 0);
	ck_assert_str_eq(buf, "2024-02-29");
	const char *bad[] = { "0000-00-00", "2024-00-10", "2024-05-00 10:00:00", "0000-01-01" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_int_eq(ls_pgmy_value(LS_PGMY_DATETIME, bad[i], strlen(bad[i]), &buf, &cap,
					       &n, &err), -1);
		ck_assert_ptr_nonnull(strstr(err.msg, "zero date"));
	}
	free(buf);
}
END_TEST

START_TEST(pgmy_maps_relations_and_converts_changes)
{
	const char *names[] = { "d", "n" };
	const char *types[] = { "timestamp(6)", "varchar(10)" };
	const uint32_t codes[] = { 17, 15 };
	struct ls_relation *r = my_rel(2, names, types, codes);
	struct ls_pgmy *m = ls_pgmy_new();
	struct ls_err err = { 0 };
	const struct ls_relation *pr = ls_pgmy_map(m, r, &err);
	ck_assert_ptr_nonnull(pr);
	ck_assert_str_eq(pr->cols[0].type_name, "integer");
	ck_assert_str_eq(pr->cols[1].type_name, "timestamp(6) with time zone");
	ck_assert_str_eq(pr->cols[2].type_name, "character varying(10)");
	ck_assert_ptr_eq(ls_pgmy_map(m, r, &err), pr);   /* same definition, same mapping */

	struct ls_value v[3] = {
		{ LS_VAL_TEXT, 1, "5" }, { LS_VAL_TEXT, 19, "2024-01-02 03:04:05" },
		{ LS_VAL_TEXT, 1, "x" },
	};
	struct ls_change ch = { .op = LS_OP_INSERT, .relid = 7, .new_tup = { 3, v } };
	const struct ls_change *out;
	ck_assert_int_eq(ls_pgmy_change(m, r, &ch, &out, &err), 0);
	ck_assert_ptr_ne(out, &ch);
	ck_assert_str_eq(out->new_tup.vals[1].data, "2024-01-02 03:04:05+00");
	ck_assert_str_eq(v[1].data, "2024-01-02 03:04:05");   /* input untouched */

	v[1] = (struct ls_value){ LS_VAL_TEXT, 19, "0000-00-00 00:00:00" };
	ck_assert_int_eq(ls_pgmy_change(m, r, &ch, &out, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "shop.t"));
	ck_assert_ptr_nonnull(strstr(err.msg, "column d"));
	ck_assert_ptr_nonnull(strstr(err.msg, "(id)=(5)"));

	struct ls_relation *pgrel = ls_relation_dup(pr);   /* a PostgreSQL relation */
	ck_assert_ptr_eq(ls_pgmy_map(m, pgrel, &err), pgrel);
	ls_relation_free(pgrel);
	ls_pgmy_free(m);
	ls_relation_free(r);
}
END_TEST

START_TEST(pgmy_copy_converts_text_split_anywhere)
{
	const char *names[] = { "d", "b" };
	const char *types[] = { "datetime(3)", "timestamp" };
	const uint32_t codes[] = { 18, 17 };
	struct ls_relation *r = my_rel(2, names, types, codes);
	const char in[] = "1\t2024-01-01 00:00:00.500\t2024-01-01 10:00:00\n"
			  "2\t\\N\t\\N\n3\t2024-03-01 00:00:00.000\t1999-12-31 23:59:59";
	const char want[] = "1\t2024-01-01 00:00:00.500\t2024-01-01 10:00:00+00\n"
			    "2\t\\N\t\\N\n3\t2024-03-01 00:00:00.000\t1999-12-31 23:59:59+00\n";
	struct ls_pgmy_copy *c = ls_pgmy_copy_new();
	struct ls_err err = { 0 };
	const struct ls_relation *mapped;
	ck_assert_int_eq(ls_pgmy_copy_begin(c, r, &mapped, &err), 0);
	ck_assert_str_eq(mapped->cols[2].type_name, "timestamp(0) with time zone");
	char got[512] = "";
	for (size_t i = 0; i < sizeof in - 1; i++) {   /* one byte at a time */
		const char *o;
		size_t n;
		ck_assert_int_eq(ls_pgmy_copy_data(c, in + i, 1, &o, &n, &err), 0);
		strncat(got, o, n);
	}
	const char *o;
	size_t n;
	ck_assert_int_eq(ls_pgmy_copy_end(c, &o, &n, &err), 0);
	strncat(got, o, n);
	ck_assert_str_eq(got, want);

	ck_assert_int_eq(ls_pgmy_copy_begin(c, r, &mapped, &err), 0);
	const char bad[] = "1\t\\N\t\\N\n42\t2024-00-01 00:00:00.000\t\\N\n";
	ck_assert_int_eq(ls_pgmy_copy_data(c, bad, sizeof bad - 1, &o, &n, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "column d"));
	ck_assert_ptr_nonnull(strstr(err.msg, "(id)=(42)"));
	ck_assert_ptr_nonnull(strstr(err.msg, "line 2"));
	ls_pgmy_copy_free(c);
	ls_relation_free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pg_mysqltypes");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, pgmy_maps_mysql_types);
	tcase_add_test(tc, pgmy_takes_back_what_went_the_other_way);
	tcase_add_test(tc, pgmy_tells_mysql_columns_by_name_and_code);
	tcase_add_test(tc, pgmy_rejects_zero_dates_and_marks_timestamps_utc);
	tcase_add_test(tc, pgmy_maps_relations_and_converts_changes);
	tcase_add_test(tc, pgmy_copy_converts_text_split_anywhere);
	suite_add_tcase(s, tc);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
