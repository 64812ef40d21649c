/* testcut — drives `lockstepctl cutover / rollback` against a test daemon
 * and reads the procedure document it prints (GET /cutover's shape, see
 * lib/cutover.h), for the cutover tests of every engine. */
#ifndef LS_TESTCUT_H
#define LS_TESTCUT_H

#include <jansson.h>

#include "tests/helpers/testd.h"

/* Runs lockstepctl ARGS against d; returns its exit code.  With --json in
 * args, *out (may be NULL) gets the parsed document (caller decrefs). */
int ls_testcut_ctl(struct ls_testd *d, const char *args, json_t **out);
/* What the last ls_testcut_ctl printed (static buffer). */
const char *ls_testcut_ctl_text(void);

/* The document's "procedure" object (borrowed; fails the test without). */
json_t *ls_testcut_proc(json_t *doc);
/* The last step named name in the procedure, NULL when none. */
json_t *ls_testcut_step(json_t *pr, const char *name);
/* o[key] as a string, "" when absent; as an integer, 0 when absent. */
const char *ls_testcut_str(json_t *o, const char *key);
long long ls_testcut_num(json_t *o, const char *key);
/* Each named step is there with state "ok". */
void ls_testcut_assert_steps_ok(json_t *pr, const char *const *names, int n);
/* The report's .json and .txt exist and the text names the outcome. */
void ls_testcut_assert_report(json_t *pr);

#endif
