/* Unit tests for lib/metrics: Prometheus text exposition and its escaping. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

START_TEST(metrics_escapes_label_values)
{
	static const struct { const char *in, *want; } cases[] = {
		{ "plain", "plain" },
		{ "", "" },
		{ "a\"b", "a\\\"b" },
		{ "back\\slash", "back\\\\slash" },
		{ "two\nlines", "two\\nlines" },
		{ "\\\"\n", "\\\\\\\"\\n" },
		{ "caf\xc3\xa9 {x=1}", "caf\xc3\xa9 {x=1}" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[64];
		size_t n = ls_metrics_escape_label(cases[i].in, out, sizeof out);
		ck_assert_str_eq(out, cases[i].want);
		ck_assert_uint_eq(n, strlen(cases[i].want));
	}
}
END_TEST

START_TEST(metrics_escape_help_keeps_quotes)
{
	char out[64];
	ls_metrics_escape_help("say \"hi\"\\\n", out, sizeof out);
	ck_assert_str_eq(out, "say \"hi\"\\\\\\n");
}
END_TEST

START_TEST(metrics_escape_truncates_like_snprintf)
{
	char out[4];
	size_t n = ls_metrics_escape_label("a\"bc", out, sizeof out);
	ck_assert_uint_eq(n, 5);
	ck_assert_str_eq(out, "a\\\"");
	ck_assert_uint_eq(ls_metrics_escape_label("xyz", out, 0), 3);
}
END_TEST

START_TEST(metrics_validates_names)
{
	ck_assert(ls_metrics_valid_name("lockstep_apply_lag_seconds"));
	ck_assert(ls_metrics_valid_name("a:b_c9"));
	ck_assert(ls_metrics_valid_name("_x"));
	ck_assert(!ls_metrics_valid_name("9lives"));
	ck_assert(!ls_metrics_valid_name("has-dash"));
	ck_assert(!ls_metrics_valid_name("sp ace"));
	ck_assert(!ls_metrics_valid_name(""));
	ck_assert(!ls_metrics_valid_name(NULL));
}
END_TEST

START_TEST(metrics_writes_families_and_samples)
{
	struct ls_metrics *m = ls_metrics_new();
	ls_metrics_family(m, "lockstep_apply_lag_seconds", "gauge", "Age of the oldest\nunapplied \\ txn");
	const char *l1[] = { "pipeline", "shop", "target", "new \"db\"", NULL };
	ls_metrics_sample(m, "lockstep_apply_lag_seconds", l1, 0.25);
	const char *l2[] = { "pipeline", "shop", "target", NULL, NULL };
	ls_metrics_sample(m, "lockstep_apply_lag_seconds", l2, NAN);
	ls_metrics_family(m, "lockstep_changes_applied_total", "counter", "Changes.");
	ls_metrics_sample_uint(m, "lockstep_changes_applied_total", NULL, UINT64_MAX);
	ls_metrics_sample(m, "lockstep_changes_applied_total", NULL, INFINITY);
	ls_metrics_sample(m, "lockstep_changes_applied_total", NULL, -INFINITY);
	const char *text = ls_metrics_data(m, NULL);
	ck_assert_ptr_nonnull(text);
	ck_assert_str_eq(text,
		"# HELP lockstep_apply_lag_seconds Age of the oldest\\nunapplied \\\\ txn\n"
		"# TYPE lockstep_apply_lag_seconds gauge\n"
		"lockstep_apply_lag_seconds{pipeline=\"shop\",target=\"new \\\"db\\\"\"} 0.25\n"
		"lockstep_apply_lag_seconds{pipeline=\"shop\"} NaN\n"
		"# HELP lockstep_changes_applied_total Changes.\n"
		"# TYPE lockstep_changes_applied_total counter\n"
		"lockstep_changes_applied_total 18446744073709551615\n"
		"lockstep_changes_applied_total +Inf\n"
		"lockstep_changes_applied_total -Inf\n");
	ls_metrics_free(m);
}
END_TEST

START_TEST(metrics_rejects_bad_names_and_duplicate_families)
{
	static const char *const bad[][3] = {
		{ "bad-name", "gauge", NULL },
		{ "ok", "histogramish", NULL },
		{ "ok", "gauge", "bad label" },
		{ "dup", "gauge", "dup" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct ls_metrics *m = ls_metrics_new();
		ls_metrics_family(m, bad[i][0], bad[i][1], "h");
		if (bad[i][2] && strcmp(bad[i][2], "dup") == 0) {
			ck_assert_ptr_nonnull(ls_metrics_data(m, NULL));
			ls_metrics_family(m, "dup", "gauge", "again");
		} else if (bad[i][2]) {
			const char *labels[] = { bad[i][2], "v", NULL };
			ls_metrics_sample(m, "ok", labels, 1);
		}
		ck_assert_msg(ls_metrics_data(m, NULL) == NULL, "case %zu accepted", i);
		ls_metrics_free(m);
	}
	ls_metrics_free(NULL);
}
END_TEST

START_TEST(metrics_long_label_values_are_kept_whole)
{
	size_t n = 5000;
	char *v = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		v[i] = i % 100 == 0 ? '"' : 'x';
	v[n] = '\0';
	struct ls_metrics *m = ls_metrics_new();
	ls_metrics_family(m, "t", "gauge", "h");
	const char *labels[] = { "table", v, NULL };
	ls_metrics_sample_uint(m, "t", labels, 7);
	size_t len;
	const char *text = ls_metrics_data(m, &len);
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(len, strlen(text));
	/* 50 quotes each gain a backslash */
	ck_assert_ptr_nonnull(strstr(text, "\"} 7\n"));
	ck_assert_uint_eq(len, strlen("# HELP t h\n# TYPE t gauge\nt{table=\"\"} 7\n") + n + 50);
	ls_metrics_free(m);
	free(v);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, metrics_escapes_label_values);
	tcase_add_test(tc, metrics_escape_help_keeps_quotes);
	tcase_add_test(tc, metrics_escape_truncates_like_snprintf);
	tcase_add_test(tc, metrics_validates_names);
	tcase_add_test(tc, metrics_writes_families_and_samples);
	tcase_add_test(tc, metrics_rejects_bad_names_and_duplicate_families);
	tcase_add_test(tc, metrics_long_label_values_are_kept_whole);
	suite_add_tcase(s, tc);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
