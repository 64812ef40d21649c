/* testutil — see testutil.h. */
#include "tests/helpers/testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void hex_add(struct ls_testutil_hex *h, const char *line, size_t n, const char *path)
{
	ck_assert_msg(n % 2 == 0, "%s: odd hex line", path);
	h->m = realloc(h->m, (h->n + 1) * sizeof *h->m);
	ck_assert_ptr_nonnull(h->m);
	struct ls_testutil_msg *m = &h->m[h->n++];
	m->len = n / 2;
	m->p = malloc(m->len + 1);
	ck_assert_ptr_nonnull(m->p);
	for (size_t i = 0; i < m->len; i++) {
		int hi = hexval(line[2 * i]), lo = hexval(line[2 * i + 1]);
		ck_assert_msg(hi >= 0 && lo >= 0, "%s: bad hex", path);
		m->p[i] = (uint8_t)(hi << 4 | lo);
	}
}

void ls_testutil_hex_load(const char *path, struct ls_testutil_hex *h,
			  void (*on_header)(const char *line, void *ctx), void *ctx)
{
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s (run from the repository root)", path);
	memset(h, 0, sizeof *h);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) > 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n > 0 && line[0] == '#' && on_header)
			on_header(line, ctx);
		if (n > 0 && line[0] != '#')
			hex_add(h, line, (size_t)n, path);
	}
	free(line);
	fclose(f);
}

void ls_testutil_hex_free(struct ls_testutil_hex *h)
{
	for (size_t i = 0; i < h->n; i++)
		free(h->m[i].p);
	free(h->m);
}

void ls_testutil_golden_compare(const char *name, const char *got,
				const char *expected_path, const char *regen_env)
{
	if (getenv(regen_env)) {
		FILE *f = fopen(expected_path, "w");
		ck_assert_ptr_nonnull(f);
		fputs(got, f);
		fclose(f);
	}
	char *want = ls_testutil_read_file(expected_path);
	ck_assert_msg(want != NULL, "missing %s", expected_path);
	if (strcmp(got, want) != 0) {
		/* Point at the first differing line rather than dumping both. */
		size_t line = 1;
		for (size_t i = 0; got[i] && got[i] == want[i]; i++)
			line += got[i] == '\n';
		ck_abort_msg("%s: decoded output differs from %s at line %zu", name,
			     expected_path, line);
	}
	free(want);
}

char *ls_testutil_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		fwrite(chunk, 1, n, out);
	fclose(f);
	fclose(out);
	return buf;
}

int ls_testutil_run_cases(const char *suite, const struct ls_testutil_case *cases, size_t n,
			  void (*setup)(void), void (*teardown)(void), double timeout_s)
{
	Suite *s = suite_create(suite);
	for (size_t i = 0; i < n; i++) {
		TCase *tc = tcase_create(cases[i].name);
		if (setup || teardown)
			tcase_add_checked_fixture(tc, setup, teardown);
		tcase_set_timeout(tc, timeout_s);
		tcase_add_test(tc, cases[i].fn);
		suite_add_tcase(s, tc);
	}
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}

double ls_testutil_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void ls_testutil_pace(double t0, long n, double rate)
{
	double wait = t0 + (double)n / rate - ls_testutil_now();
	if (wait <= 0)
		return;
	struct timespec ts = { (time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9) };
	nanosleep(&ts, NULL);
}
