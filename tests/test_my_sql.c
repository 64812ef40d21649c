/* Unit tests for connectors/mysql/my_sql: quoting, conninfo, the
 * PostgreSQL -> MySQL type mapping, value conversions, COPY text parsing,
 * type compatibility and DDL. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/mysql/my_sql.h"
#include "tests/helpers/testchg.h"

static struct ls_mysql_buf B;

static void setup(void)
{
	ls_mysql_buf_init(&B);
}

static void teardown(void)
{
	ls_mysql_buf_free(&B);
}

/* "name:type[:k]|..." (k = key column) */
#define mkrel(name, replident, spec) ls_testchg_rel(1, "app", name, replident, spec)

/* Converts in with the mapping of a column of type pgtype; returns the
 * output (valid until the next call) or NULL with the error in err. */
static const char *conv(const char *pgtype, const char *in, struct ls_err *err)
{
	struct ls_column c = { .name = "c", .type_name = (char *)pgtype, .typmod = -1 };
	struct ls_mysql_coltype ct;
	ck_assert_msg(ls_mysql_coltype(&c, false, &ct, err) == 0, "%s: %s", pgtype, err->msg);
	ls_mysql_buf_reset(&B);
	if (ls_mysql_convert(ct.conv, ct.elem, in, strlen(in), &B, err) < 0)
		return NULL;
	return ls_mysql_buf_str(&B);
}

static const char *mapped(const char *type, bool key)
{
	static struct ls_mysql_coltype ct;
	struct ls_err err = { 0 };
	struct ls_column c = { .name = "c", .type_name = (char *)type, .typmod = -1 };
	ck_assert_msg(ls_mysql_coltype(&c, key, &ct, &err) == 0, "%s: %s", type, err.msg);
	return ct.sql;
}

START_TEST(mysql_ident_doubles_backticks)
{
	ls_mysql_ident(&B, "a`b");
	ck_assert_str_eq(ls_mysql_buf_str(&B), "`a``b`");
	ls_mysql_buf_reset(&B);
	ls_mysql_qualified(&B, "db", "My Table");
	ck_assert_str_eq(ls_mysql_buf_str(&B), "`db`.`My Table`");
}
END_TEST

START_TEST(mysql_literal_and_hex_escape_every_special_byte)
{
	ls_mysql_literal(&B, "a'b\\c\nd\0e\r\032", 11);
	ck_assert_str_eq(ls_mysql_buf_str(&B), "'a\\'b\\\\c\\nd\\0e\\r\\Z'");
	ls_mysql_buf_reset(&B);
	ls_mysql_hex(&B, "\x00\xff\x10", 3);
	ck_assert_str_eq(ls_mysql_buf_str(&B), "X'00FF10'");
	ls_mysql_buf_reset(&B);
	ls_mysql_hex(&B, "", 0);
	ck_assert_str_eq(ls_mysql_buf_str(&B), "X''");
}
END_TEST

START_TEST(mysql_conninfo_parses_quotes_and_rejects_unknown_keys)
{
	struct ls_mysql_conninfo ci;
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_mysql_conninfo_parse("host=db1 port=3307 user=app "
						 "password='s3 cr\\'et' dbname=shop", &ci, &err), 0);
	ck_assert_str_eq(ci.host, "db1");
	ck_assert_uint_eq(ci.port, 3307);
	ck_assert_str_eq(ci.user, "app");
	ck_assert_str_eq(ci.password, "s3 cr'et");
	ck_assert_str_eq(ci.database, "shop");
	ck_assert_ptr_null(ci.socket);
	ls_mysql_conninfo_free(&ci);
	ck_assert_int_eq(ls_mysql_conninfo_parse("passwd=\"a b\" socket=/run/my.sock", &ci, &err), 0);
	ck_assert_str_eq(ci.password, "a b");
	ck_assert_str_eq(ci.socket, "/run/my.sock");
	ls_mysql_conninfo_free(&ci);

	ck_assert_int_eq(ls_mysql_conninfo_parse("host=x pasword=hunter2", &ci, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "pasword"));
	ck_assert_ptr_null(strstr(err.msg, "hunter2"));
	ck_assert_int_eq(ls_mysql_conninfo_parse("port=99999", &ci, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "port"));
	ck_assert_int_eq(ls_mysql_conninfo_parse("password='unterminated", &ci, &err), -1);
	ck_assert_ptr_null(strstr(err.msg, "unterminated'"));
	ck_assert_int_eq(ls_mysql_conninfo_parse("host", &ci, &err), -1);
}
END_TEST

START_TEST(mysql_coltype_maps_postgres_types)
{
	ck_assert_str_eq(mapped("integer", false), "INT");
	ck_assert_str_eq(mapped("bigint", false), "BIGINT");
	ck_assert_str_eq(mapped("numeric(12,2)", false), "DECIMAL(12,2)");
	ck_assert_str_eq(mapped("numeric", false), "DECIMAL(65,30)");
	ck_assert_str_eq(mapped("text", false), "LONGTEXT");
	ck_assert_str_eq(mapped("character varying(40)", false), "VARCHAR(40)");
	ck_assert_str_eq(mapped("character varying", false), "LONGTEXT");
	ck_assert_str_eq(mapped("character(3)", false), "CHAR(3)");
	ck_assert_str_eq(mapped("timestamp with time zone", false), "DATETIME(6)");
	ck_assert_str_eq(mapped("timestamp(3) without time zone", false), "DATETIME(3)");
	ck_assert_str_eq(mapped("time without time zone", false), "TIME(6)");
	ck_assert_str_eq(mapped("jsonb", false), "JSON");
	ck_assert_str_eq(mapped("bytea", false), "LONGBLOB");
	ck_assert_str_eq(mapped("uuid", false), "CHAR(36)");
	ck_assert_str_eq(mapped("integer[]", false), "JSON");
	ck_assert_str_eq(mapped("boolean", false), "TINYINT(1)");
	ck_assert_str_eq(mapped("double precision", false), "DOUBLE");
}
END_TEST

START_TEST(mysql_coltype_keys_get_bounded_types)
{
	ck_assert_str_eq(mapped("text", true), "VARCHAR(255)");
	ck_assert_str_eq(mapped("bytea", true), "VARBINARY(255)");
	ck_assert_str_eq(mapped("character varying(2000)", true), "VARCHAR(768)");
	ck_assert_str_eq(mapped("character varying(20)", true), "VARCHAR(20)");
	ck_assert_str_eq(mapped("longtext", true), "VARCHAR(255)");
	ck_assert_str_eq(mapped("integer", true), "INT");
}
END_TEST

START_TEST(mysql_coltype_keeps_mysql_types_and_rejects_unknown)
{
	ck_assert_str_eq(mapped("int(11)", false), "int(11)");
	ck_assert_str_eq(mapped("bigint(20) unsigned", false), "bigint(20) unsigned");
	ck_assert_str_eq(mapped("decimal(12,2)", false), "decimal(12,2)");
	ck_assert_str_eq(mapped("enum('a','it''s')", false), "enum('a','it''s')");
	ck_assert_str_eq(mapped("datetime(6)", false), "datetime(6)");
	ck_assert_str_eq(mapped("tinyint(1)", false), "tinyint(1)");

	struct ls_err err = { 0 };
	struct ls_mysql_coltype ct;
	const char *bad[] = { "tsvector", "point[]", "int; DROP TABLE x", "numeric(80,2)",
			      "enum('a\\')", "money" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct ls_column c = { .name = "c", .type_name = (char *)bad[i], .typmod = -1 };
		ck_assert_msg(ls_mysql_coltype(&c, false, &ct, &err) == -1, "%s accepted", bad[i]);
	}
	struct ls_column c = { .name = "c", .type_name = "tsvector" };
	ck_assert_int_eq(ls_mysql_coltype(&c, false, &ct, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "tsvector"));
}
END_TEST

START_TEST(mysql_convert_bool_numeric_float)
{
	struct ls_err err = { 0 };
	ck_assert_str_eq(conv("boolean", "t", &err), "1");
	ck_assert_str_eq(conv("boolean", "f", &err), "0");
	ck_assert_ptr_null(conv("boolean", "maybe", &err));
	ck_assert_str_eq(conv("numeric(12,2)", "-12.50", &err), "-12.50");
	ck_assert_ptr_null(conv("numeric(12,2)", "NaN", &err));
	ck_assert_ptr_nonnull(strstr(err.msg, "NaN"));
	ck_assert_ptr_null(conv("numeric", "Infinity", &err));
	ck_assert_ptr_null(conv("double precision", "-Infinity", &err));
	ck_assert_str_eq(conv("real", "1.5e+10", &err), "1.5e+10");
}
END_TEST

START_TEST(mysql_convert_timestamptz_to_utc)
{
	struct ls_err err = { 0 };
	ck_assert_str_eq(conv("timestamp with time zone", "2024-01-02 03:04:05.123+00", &err),
			 "2024-01-02 03:04:05.123");
	ck_assert_str_eq(conv("timestamp with time zone", "2024-01-02 03:04:05+05:30", &err),
			 "2024-01-01 21:34:05");
	ck_assert_str_eq(conv("timestamp with time zone", "2023-12-31 22:00:00.5-08", &err),
			 "2024-01-01 06:00:00.5");
	ck_assert_str_eq(conv("timestamp with time zone", "2024-02-29 00:00:00+01", &err),
			 "2024-02-28 23:00:00");
	ck_assert_str_eq(conv("timestamp with time zone", "1900-03-01 00:00:00+00:19:32", &err),
			 "1900-02-28 23:40:28");
	ck_assert_ptr_null(conv("timestamp with time zone", "infinity", &err));
	ck_assert_ptr_nonnull(strstr(err.msg, "infinity"));
	ck_assert_ptr_null(conv("timestamp with time zone", "0044-03-15 12:00:00+00 BC", &err));
	ck_assert_ptr_null(conv("timestamp with time zone", "2024-01-02T03:04:05Z", &err));
	ck_assert_ptr_null(conv("timestamp with time zone", "10000-01-01 00:00:00+00", &err));
	ck_assert_ptr_null(conv("timestamp without time zone", "-infinity", &err));
	ck_assert_str_eq(conv("timestamp without time zone", "2024-01-02 03:04:05.5", &err),
			 "2024-01-02 03:04:05.5");
	ck_assert_ptr_null(conv("date", "infinity", &err));
	ck_assert_str_eq(conv("date", "2024-01-02", &err), "2024-01-02");
}
END_TEST

START_TEST(mysql_convert_bytea_hex_to_bytes)
{
	struct ls_err err = { 0 };
	const char *out = conv("bytea", "\\x00ff41", &err);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(B.len, 3);
	ck_assert_int_eq(memcmp(out, "\x00\xff" "A", 3), 0);
	ck_assert_ptr_nonnull(conv("bytea", "\\x", &err));
	ck_assert_uint_eq(B.len, 0);
	ck_assert_ptr_null(conv("bytea", "\\x0g", &err));
	ck_assert_ptr_null(conv("bytea", "\\001abc", &err));
	ck_assert_ptr_nonnull(strstr(err.msg, "hex"));
}
END_TEST

START_TEST(mysql_convert_arrays_to_json)
{
	struct ls_err err = { 0 };
	ck_assert_str_eq(conv("integer[]", "{1,2,NULL,-3}", &err), "[1,2,null,-3]");
	ck_assert_str_eq(conv("integer[]", "{{1,2},{3,4}}", &err), "[[1,2],[3,4]]");
	ck_assert_str_eq(conv("text[]", "{a,\"b c\",\"NULL\",\"q\\\"x\\\\y\"}", &err),
			 "[\"a\",\"b c\",\"NULL\",\"q\\\"x\\\\y\"]");
	ck_assert_str_eq(conv("boolean[]", "{t,f}", &err), "[true,false]");
	ck_assert_str_eq(conv("numeric[]", "{1.5,NaN}", &err), "[1.5,\"NaN\"]");
	ck_assert_str_eq(conv("integer[]", "{}", &err), "[]");
	ck_assert_str_eq(conv("integer[]", "[0:1]={7,8}", &err), "[7,8]");
	ck_assert_str_eq(conv("text[]", "{\"tab\there\"}", &err), "[\"tab\\u0009here\"]");
	ck_assert_ptr_null(conv("integer[]", "{1,2", &err));
	ck_assert_ptr_null(conv("integer[]", "1,2}", &err));
}
END_TEST

START_TEST(mysql_type_compatible_allows_widening_only)
{
	ck_assert(ls_mysql_type_compatible("INT", "int(11)"));
	ck_assert(ls_mysql_type_compatible("INT", "bigint(20)"));
	ck_assert(!ls_mysql_type_compatible("BIGINT", "int(11)"));
	ck_assert(!ls_mysql_type_compatible("INT", "int(10) unsigned"));
	ck_assert(ls_mysql_type_compatible("INT UNSIGNED", "int(10) unsigned"));
	ck_assert(ls_mysql_type_compatible("DECIMAL(12,2)", "decimal(14,3)"));
	ck_assert(!ls_mysql_type_compatible("DECIMAL(12,2)", "decimal(12,3)"));
	ck_assert(ls_mysql_type_compatible("VARCHAR(40)", "varchar(255)"));
	ck_assert(!ls_mysql_type_compatible("VARCHAR(40)", "varchar(10)"));
	ck_assert(ls_mysql_type_compatible("VARCHAR(40)", "text"));
	ck_assert(ls_mysql_type_compatible("TEXT", "longtext"));
	ck_assert(!ls_mysql_type_compatible("LONGTEXT", "text"));
	ck_assert(ls_mysql_type_compatible("JSON", "longtext"));
	ck_assert(ls_mysql_type_compatible("TINYINT(1)", "tinyint(1)"));
	ck_assert(ls_mysql_type_compatible("boolean", "tinyint(1)"));
	ck_assert(ls_mysql_type_compatible("DATETIME(3)", "datetime(6)"));
	ck_assert(!ls_mysql_type_compatible("DATETIME(6)", "datetime"));
	ck_assert(ls_mysql_type_compatible("FLOAT", "double"));
	ck_assert(!ls_mysql_type_compatible("DOUBLE", "float"));
	ck_assert(ls_mysql_type_compatible("LONGBLOB", "longblob"));
	ck_assert(!ls_mysql_type_compatible("LONGBLOB", "blob"));
	ck_assert(!ls_mysql_type_compatible("INT", "varchar(20)"));
}
END_TEST

/* Field i of the last parse as a string ("<NULL>" for \N). */
static const char *field(const size_t *off, const size_t *len, int i)
{
	return len[i] == SIZE_MAX ? "<NULL>" : B.data + off[i];
}

START_TEST(mysql_pgtext_fields_unescape)
{
	size_t off[8], len[8];
	struct ls_err err = { 0 };
	const char line[] = "1\ta\\tb\\\\c\\nd\t\\N\t\\101\\x41\\q\t\t\\N\\N";
	int n = ls_mysql_pgtext_fields(line, sizeof line - 1, &B, off, len, 8, &err);
	ck_assert_int_eq(n, 6);
	ck_assert_str_eq(field(off, len, 0), "1");
	ck_assert_str_eq(field(off, len, 1), "a\tb\\c\nd");
	ck_assert_str_eq(field(off, len, 2), "<NULL>");
	ck_assert_str_eq(field(off, len, 3), "AAq");
	ck_assert_str_eq(field(off, len, 4), "");
	ck_assert_uint_eq(len[4], 0);
	ck_assert_str_eq(field(off, len, 5), "NN");
	ck_assert_int_eq(ls_mysql_pgtext_fields("a\tb\tc", 5, &B, off, len, 2, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "more than 2"));
}
END_TEST

START_TEST(mysql_create_table_with_key_and_rejects_bad_type)
{
	struct ls_err err = { 0 };
	struct ls_relation *r = mkrel("orders", 'd', "id:integer:k|name:text:k|total:numeric(12,2)");
	ck_assert_int_eq(ls_mysql_create_table(&B, r, "utf8mb4_bin", &err), 0);
	ck_assert_str_eq(ls_mysql_buf_str(&B),
			 "CREATE TABLE IF NOT EXISTS `app`.`orders` (`id` INT NOT NULL, "
			 "`name` VARCHAR(255) NOT NULL, `total` DECIMAL(12,2), "
			 "PRIMARY KEY (`id`, `name`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 "
			 "COLLATE=utf8mb4_bin");
	ls_relation_free(r);

	ls_mysql_buf_reset(&B);
	r = mkrel("log", 'f', "a:text|b:integer");
	ck_assert_int_eq(ls_mysql_create_table(&B, r, NULL, &err), 0);
	ck_assert_ptr_null(strstr(ls_mysql_buf_str(&B), "PRIMARY KEY"));
	ck_assert_ptr_nonnull(strstr(ls_mysql_buf_str(&B), "`a` LONGTEXT,"));
	ls_relation_free(r);

	ls_mysql_buf_reset(&B);
	r = mkrel("geo", 'd', "id:integer:k|shape:tsvector");
	ck_assert_int_eq(ls_mysql_create_table(&B, r, NULL, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "app.geo"));
	ck_assert_ptr_nonnull(strstr(err.msg, "column shape"));
	ck_assert_ptr_nonnull(strstr(err.msg, "tsvector"));
	ls_relation_free(r);
}
END_TEST

/* The i-th NUL-terminated statement in B. */
static const char *stmt(int i)
{
	const char *p = B.data;
	while (i-- > 0)
		p += strlen(p) + 1;
	return p;
}

START_TEST(mysql_ddl_add_drop_modify_rename)
{
	struct ls_err err = { 0 };
	struct ls_mysql_buf d;
	ls_mysql_buf_init(&d);
	struct ls_relation *o = mkrel("t", 'd', "id:integer:k|a:integer|b:text|c:text");
	struct ls_relation *n = mkrel("t", 'd', "id:integer:k|a:bigint|bb:text|d:boolean");
	int k;
	ck_assert_int_eq(ls_mysql_ddl(&B, &d, o, n, true, &k, &err), 0);
	ck_assert_int_eq(k, 4);
	ck_assert_str_eq(stmt(0), "ALTER TABLE `app`.`t` RENAME COLUMN `b` TO `bb`");
	ck_assert_str_eq(stmt(1), "ALTER TABLE `app`.`t` DROP COLUMN IF EXISTS `c`");
	ck_assert_str_eq(stmt(2), "ALTER TABLE `app`.`t` MODIFY COLUMN `a` BIGINT");
	ck_assert_str_eq(stmt(3), "ALTER TABLE `app`.`t` ADD COLUMN IF NOT EXISTS `d` TINYINT(1)");
	ck_assert_ptr_nonnull(strstr(ls_mysql_buf_str(&d), "column c dropped"));
	ck_assert_ptr_nonnull(strstr(ls_mysql_buf_str(&d), "column a type integer -> bigint"));

	ls_mysql_buf_reset(&B);
	ck_assert_int_eq(ls_mysql_ddl(&B, &d, o, n, false, &k, &err), 0);
	ck_assert_str_eq(stmt(1), "ALTER TABLE `app`.`t` DROP COLUMN `c`");

	ls_mysql_buf_reset(&B);
	ck_assert_int_eq(ls_mysql_ddl(&B, &d, o, o, true, &k, &err), 0);
	ck_assert_int_eq(k, 0);

	struct ls_relation *kc = mkrel("t", 'd', "id:integer|a:integer:k|b:text|c:text");
	ck_assert_int_eq(ls_mysql_ddl(&B, &d, o, kc, true, &k, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "key columns changed"));
	ls_relation_free(kc);
	ls_relation_free(o);
	ls_relation_free(n);
	ls_mysql_buf_free(&d);
}
END_TEST

START_TEST(mysql_type_safe_rejects_injection)
{
	ck_assert(ls_mysql_type_safe("enum('a','b c')"));
	ck_assert(ls_mysql_type_safe("decimal(12,2) unsigned"));
	ck_assert(!ls_mysql_type_safe("int; drop table x"));
	ck_assert(!ls_mysql_type_safe("enum('a)"));
	ck_assert(!ls_mysql_type_safe("int)"));
	ck_assert(!ls_mysql_type_safe("int -- x"));
	ck_assert(!ls_mysql_type_safe(""));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("my_sql");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, mysql_ident_doubles_backticks);
	tcase_add_test(tc, mysql_literal_and_hex_escape_every_special_byte);
	tcase_add_test(tc, mysql_conninfo_parses_quotes_and_rejects_unknown_keys);
	tcase_add_test(tc, mysql_coltype_maps_postgres_types);
	tcase_add_test(tc, mysql_coltype_keys_get_bounded_types);
	tcase_add_test(tc, mysql_coltype_keeps_mysql_types_and_rejects_unknown);
	tcase_add_test(tc, mysql_convert_bool_numeric_float);
	tcase_add_test(tc, mysql_convert_timestamptz_to_utc);
	tcase_add_test(tc, mysql_convert_bytea_hex_to_bytes);
	tcase_add_test(tc, mysql_convert_arrays_to_json);
	tcase_add_test(tc, mysql_type_compatible_allows_widening_only);
	tcase_add_test(tc, mysql_pgtext_fields_unescape);
	tcase_add_test(tc, mysql_create_table_with_key_and_rejects_bad_type);
	tcase_add_test(tc, mysql_ddl_add_drop_modify_rename);
	tcase_add_test(tc, mysql_type_safe_rejects_injection);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
