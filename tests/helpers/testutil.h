/* testutil — small pieces the test programs share: hex golden files, the
 * reviewed-output comparison, reading a whole file, and a main() body that
 * runs a list of named cases, one TCase each. */
#ifndef LS_TESTUTIL_H
#define LS_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* ---- hex golden files -------------------------------------------------------- */

struct ls_testutil_msg {
	uint8_t *p;      /* owned; one spare byte after len */
	size_t len;
};

struct ls_testutil_hex {
	size_t n;
	struct ls_testutil_msg *m;   /* owned */
};

/* Loads path: every other non-empty line is one message in lowercase hex;
 * lines starting with '#' are headers, handed to on_header (may be NULL)
 * with ctx.  Aborts the test when the file is missing or the hex is bad. */
void ls_testutil_hex_load(const char *path, struct ls_testutil_hex *h,
			  void (*on_header)(const char *line, void *ctx), void *ctx);
void ls_testutil_hex_free(struct ls_testutil_hex *h);

/* Compares got (the decoded text of golden scenario name) with the file
 * expected_path and aborts at the first differing line.  When the
 * environment variable regen_env is set the file is rewritten from got
 * first (to review a decoder change with git diff). */
void ls_testutil_golden_compare(const char *name, const char *got,
				const char *expected_path, const char *regen_env);

/* The whole file as a malloc'd string (caller frees); NULL when it cannot
 * be opened. */
char *ls_testutil_read_file(const char *path);

/* Asserts that got (malloc'd or NULL; freed here) equals want; a NULL want
 * expects NULL (an SQL NULL or no row, for the servers' query1 helpers). */
#define LS_CK_STR_FREE(got, want)                                          \
	do {                                                               \
		char *got_ = (got);                                        \
		const char *want_ = (want);                                \
		if (want_ == NULL)                                         \
			ck_assert_ptr_null(got_);                          \
		else                                                       \
			ck_assert_str_eq(got_ ? got_ : "(null)", want_);   \
		free(got_);                                                \
	} while (0)

/* ---- running cases -------------------------------------------------------------- */

struct ls_testutil_case {
	const char *name;
	const TTest *fn;
};

/* Runs suite `suite`: one TCase per case, named after it (so CK_RUN_CASE
 * picks one), with the checked fixture setup/teardown (either may be NULL)
 * and timeout_s.  Returns main()'s exit status: 0 when all passed. */
int ls_testutil_run_cases(const char *suite, const struct ls_testutil_case *cases, size_t n,
			  void (*setup)(void), void (*teardown)(void), double timeout_s);

/* ---- pacing a load ---------------------------------------------------------------- */

/* Seconds on the monotonic clock. */
double ls_testutil_now(void);

/* Sleeps until event n (counted from 1) of a load that began at t0
 * (ls_testutil_now) at rate events a second is due; returns at once when
 * it is late.  A test's load is an application, not a flood: an unpaced
 * loop on a slow machine outruns any pipeline, its lag never closes and
 * waits on convergence time out.  Pacing shapes the load; it is not a wait
 * for a condition. */
void ls_testutil_pace(double t0, long n, double rate);

#endif
