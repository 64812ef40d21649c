/* testcut — drives `lockstepctl cutover / rollback` against a test daemon
 * and reads the procedure document it prints (GET /cutover's shape, see
 * lib/cutover.h), for the cutover tests of every engine. */
#ifndef LS_TESTCUT_H
#define LS_TESTCUT_H

#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

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

/* Starts lockstepd for a cutover test: pipeline "shop" from src_ci (a
 * src_engine source) to the target "new" at dst_ci (dst_engine), direct
 * buffer, the tables pattern, [cutover] app_roles = app with switch_hook
 * (switch_back_hook removes @DIR@/switched) and the lines in extra (may be
 * ""), and waits until it streams. */
struct ls_testd *ls_testcut_daemon(const char *src_engine, const char *src_ci,
				   const char *dst_engine, const char *dst_ci, const char *tables,
				   const char *switch_hook, const char *extra);

struct ls_testpg;

/* A session of the application role "app" on pg's database db, or NULL. */
PGconn *ls_testcut_pg_app(struct ls_testpg *pg, const char *db);

/* A table's checksum on one side ("count:digest"), malloc'd, NULL on error. */
typedef char *(*ls_testcut_sum_fn)(void *side, const char *table, const char *where);
/* Waits until table (rows matching where) has the same checksum on both
 * sides; fails the test with both checksums and d's log after 60 s. */
void ls_testcut_assert_equal(struct ls_testd *d, ls_testcut_sum_fn sum, void *old_side,
			     void *new_side, const char *table, const char *where);

/* ---- an application load that follows the switch ---------------------------------- */

/* The application of a cutover test: a thread (the test's own `main`,
 * engine-specific) writes one row at a time to the side a flag file
 * points to (the switch hook creates DIR/switched), retrying failures, and
 * notes every id it saw committed; noting keeps it to LS_TESTCUT_LOAD_RATE
 * commits a second.  Restarting keeps the ids. */
#define LS_TESTCUT_LOAD_RATE 1000
struct ls_testcut_load {
	pthread_t thread;
	atomic_bool stop;
	atomic_long ok_old, ok_new, failures, dups;
	char flag[1024];
	pthread_mutex_t mu;
	long *ids;                     /* every id the load saw committed */
	size_t n, cap;
	double last, max_gap;          /* longest time without a commit, s */
	double t0;                     /* when this run of the load started */
	long paced;                    /* commits since t0 (the load's pace) */
	struct ls_testd *d;
};

void ls_testcut_load_start(struct ls_testcut_load *l, struct ls_testd *d,
			   void *(*main)(void *l));
void ls_testcut_load_stop(struct ls_testcut_load *l);
void ls_testcut_load_free(struct ls_testcut_load *l);
/* For main: whether the flag says "new side", and a committed id. */
bool ls_testcut_load_wants_new(const struct ls_testcut_load *l);
void ls_testcut_load_note(struct ls_testcut_load *l, long id, bool on_new);
/* Waits until `more` rows committed on that side (fails the test after 60 s). */
void ls_testcut_load_wait(struct ls_testcut_load *l, bool on_new, long more);
/* A copy of the committed ids (malloc'd, *n of them). */
long *ls_testcut_load_ids(struct ls_testcut_load *l, size_t *n);

#endif
