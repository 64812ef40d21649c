/* testd — runs the real lockstepd for integration tests: a temporary
 * directory with its config, log and control socket; start, kill -9,
 * graceful stop; GET /status over the control socket as parsed JSON.
 * The daemon dies with the test process (PR_SET_PDEATHSIG). */
#ifndef LS_TESTD_H
#define LS_TESTD_H

#include <stdbool.h>
#include <jansson.h>

struct ls_testd;

/* Largest check failure message (bytes) a program linking this helper can
 * report; messages carry up to 4 KiB of the daemon's log. */
#define LS_TESTD_MSG_MAX 65536

/* Creates the directory; nothing runs yet. */
struct ls_testd *ls_testd_new(void);
/* Kills a running daemon and removes the directory (kept, with its path
 * printed, when LS_KEEP_TEST_DIRS is set). NULL is a no-op. */
void ls_testd_free(struct ls_testd *d);
const char *ls_testd_dir(const struct ls_testd *d);
const char *ls_testd_socket(const struct ls_testd *d);
/* Writes DIR/lockstep.conf; "@DIR@" in the text stands for the directory. */
void ls_testd_config(struct ls_testd *d, const char *text);
/* Starts lockstepd --config DIR/lockstep.conf, logging to DIR/lockstepd.log. */
void ls_testd_start(struct ls_testd *d);
/* The daemon's pid, 0 when not running. */
int ls_testd_pid(const struct ls_testd *d);
/* Peak resident set size (VmHWM) of the running daemon in KiB; -1 if unknown. */
long ls_testd_peak_rss_kb(const struct ls_testd *d);
/* SIGKILL and reap. */
void ls_testd_kill9(struct ls_testd *d);
/* SIGTERM; waits up to timeout_ms; returns the exit status (-1 on timeout,
 * after which the daemon is killed). */
int ls_testd_stop(struct ls_testd *d, int timeout_ms);
/* Whether it still runs; when it exited, *status (may be NULL) gets its
 * exit code. */
bool ls_testd_running(struct ls_testd *d, int *status);
/* GET path over the control socket; the parsed JSON (caller decrefs) or NULL
 * when the daemon does not answer. */
json_t *ls_testd_get(struct ls_testd *d, const char *path);
/* Prints GET /status to stderr and fails the test with the log's tail. */
void ls_testd_abort_unconverged(struct ls_testd *d) __attribute__((noreturn));
/* POST path; returns the HTTP status or -1. */
int ls_testd_post(struct ls_testd *d, const char *path);
/* Polls GET /status until "pipeline_state" equals state; fails the test with
 * the log's tail if the daemon exits or the deadline passes. */
void ls_testd_wait_state(struct ls_testd *d, const char *state, int timeout_ms);
/* The last bytes of the daemon's log (static buffer). */
const char *ls_testd_log_tail(struct ls_testd *d);

#endif
