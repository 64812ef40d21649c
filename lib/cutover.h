/* cutover — moves the application from the old side (the pipeline's source)
 * to the new side (one of its targets) step by step, and back (rollback)
 * within a window, without losing a write.
 *
 * Cutover, each step logged with its time and shown in GET /cutover; the
 * first failed check stops it with the old side serving (a fence already
 * applied is lifted again):
 *   1 ready      every target converged (not only the one cut over to):
 *                each applied up to a source position sampled after the
 *                start and its apply lag is within max_lag_seconds; a fresh drift check of the slice is clean
 *                (plan checks first: roles exist and are not superusers nor
 *                lockstep's own, the forward apply's replication origin
 *                exists on the new side, the reverse pipeline's name fits)
 *   2 fence      the old side stops taking the slice's writes: the engine's
 *                built-in fence for the application roles ([cutover]
 *                app_roles or --app-role), or [cutover] fence_hook.  Writes
 *                are watched from just before the fence (PostgreSQL: a
 *                temporary logical slot); a row change of the slice
 *                committed after the fence position, within `settle` ms, is
 *                a failed check
 *   3 drain      every target applies up to the fence position; then the
 *                reverse direction's slot and publication are made on the
 *                new side (the drain point: nothing after it is missed)
 *   4 sequences  sequence values (owned by the slice's columns, plus
 *                [cutover] sequences) are carried to the new side
 *   5 verify     a final drift check of the slice finds zero drift, and
 *                every [cutover] check_command exits 0
 *   6 switch     [cutover] switch_hook repoints the application
 *   7 reverse    a second pipeline in this daemon replicates the new side
 *                back to the old one (name <pipeline>_rev, its own slot,
 *                publication and buffer topic; target "old" with lockstep's
 *                own role, which the fence does not touch).  The forward
 *                apply tags its transactions with replication origin
 *                lockstep_<pipeline> and the reverse source skips them;
 *                the reverse apply's origin lockstep_<pipeline>_rev is
 *                skipped by the forward source: no replication loop.
 *                MariaDB has no origins: the apply writes with a session
 *                server_id derived from the origin name
 *                (ls_mybinlog_origin_id) and the sources skip those ids;
 *                there is no slot either, so the reverse source starts
 *                after the GTID set taken at the drain ([source]
 *                start_gtid).  Each procedure's reverse pipeline keeps its
 *                state in <state_dir>/reverse-<procedure number>.
 * Rollback, within rollback_window after a cutover: ready (reverse
 * converged, drift clean), fence the new side, drain the reverse stream,
 * carry sequences back, verify, switch back (the old side's fence is lifted
 * first, then switch_back_hook), then the reverse pipeline stops and its
 * slot and publication go.  The new side stays fenced until a later
 * cutover lifts it.
 *
 * Dry run: step 1 only (nothing is changed) and the plan in the report.
 * --tables PATTERN cuts over the captured tables matching the patterns
 * (comma-separated "schema.table", '*' any run); the rest keeps
 * replicating as before.
 *
 * Outcome: "succeeded"; "failed" (a check said no: the side that served
 * before still serves, unfenced); "error" (something broke: the report says
 * what state each side is in, with the statements that lift a fence).
 * Every procedure writes a report into [pipeline] state_dir:
 * <kind>-<UTC time>.json (the GET /cutover document) and .txt: steps,
 * durations, positions, drift results, sequences, who asked (peer uid) and
 * the time writes were fenced (write-unavailability window).
 *
 * Threads: everything here runs on the loop; the engine's calls (blocking)
 * run on libuv work threads, one at a time per procedure; hooks run through
 * uv_spawn ("/bin/sh -c CMD", killed after hook_timeout) with
 * LOCKSTEP_PIPELINE, LOCKSTEP_KIND, LOCKSTEP_STEP and LOCKSTEP_TABLES set.
 *
 * Control: POST /cutover[?tables=P&app_role=R&max_lag=S&target=T&dry_run=1
 * &timeout=S] and POST /rollback[?max_lag=S&timeout=S] (admin) start a
 * procedure (202, or 409 when one runs); GET /cutover shows it.
 *
 * Across a daemon stop (kill -9 included): <state_dir>/cutover.state
 * (lib/cutstate.h) is written when a fence is applied, at the switch and
 * when a procedure ends.  At start: a fence whose procedure had not
 * switched yet is lifted (that side serves again; the procedure itself is
 * not resumed); after a cutover's switch the phase is cut_over again, the
 * reverse pipeline resumes from its slot or saved GTID and the rest of the
 * window runs; after a rollback the new side's fence is remembered for the
 * next cutover and the reverse slot is dropped.  A fence made by fence_hook
 * has no undo text and is not lifted at start (unfence_hook is the
 * operator's).  The window between a fence's commit and its record is not
 * covered: a crash exactly there leaves the fence without a record (the
 * log shows the fence step begun and never ended).
 */
#ifndef LS_CUTOVER_H
#define LS_CUTOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "change.h"
#include "config.h"
#include "control.h"
#include "drift.h"
#include "err.h"
#include "json.h"

/* Return value of an engine call whose check said no (the side is left as
 * it was); -1 is an error. */
#define LS_CUTOVER_NO (-2)

/* ---- what an engine provides -------------------------------------------------- */

struct ls_cutover_conn;        /* one connection to one side, opaque */

struct ls_cutover_seq {
	char name[256];            /* as the engine names it, e.g. public.t_id_seq */
	char value[32];            /* the value carried */
	bool is_called;
	char owner[256];           /* "schema.table.column" or "" (named in config) */
};

/* Every call blocks and runs on a work thread; a connection is used by one
 * call at a time.  Tables are relations as the source captures them
 * (schema, name).  Messages never contain a conninfo. */
struct ls_cutover_ops {
	const char *engine;
	int (*open)(const char *conninfo, struct ls_cutover_conn **out, struct ls_err *err);
	void (*close)(struct ls_cutover_conn *c);        /* NULL is a no-op */
	/* The role this connection writes as. */
	int (*whoami)(struct ls_cutover_conn *c, char *role, size_t size, struct ls_err *err);
	/* LS_CUTOVER_NO when a role does not exist or cannot be fenced. */
	int (*check_roles)(struct ls_cutover_conn *c, const char *const *roles, int n,
			   struct ls_err *err);
	/* Whether replication origin `name` exists on this side. */
	int (*origin_exists)(struct ls_cutover_conn *c, const char *name, bool *exists,
			     struct ls_err *err);
	/* The side's current write position. */
	int (*position)(struct ls_cutover_conn *c, struct ls_pos *out, struct ls_err *err);
	/* Starts noting committed row changes (watch_name: a temporary slot
	 * reading publication pub); watch_count counts the changes to tables
	 * committed at or after position `after` (*first describes the first
	 * one); watch_stop ends the watch. */
	int (*watch_start)(struct ls_cutover_conn *c, const char *watch_name, const char *pub,
			   struct ls_err *err);
	int (*watch_count)(struct ls_cutover_conn *c, const struct ls_relation *const *tables,
			   int ntables, uint64_t after, uint64_t *n, char *first, size_t size,
			   struct ls_err *err);
	int (*watch_stop)(struct ls_cutover_conn *c, struct ls_err *err);
	/* Takes write access to tables away from roles and ends their sessions
	 * (*ended of them); read_only ([cutover] fence = read_only) makes the
	 * roles' writes fail however they were granted (the engine says how
	 * far that reaches: MariaDB's read_only is server-wide).  *undo (malloc'd) gets what lifts the fence again,
	 * as text the engine runs in unfence (and an operator can read).
	 * LS_CUTOVER_NO (nothing changed) when a role could still write. */
	int (*fence)(struct ls_cutover_conn *c, const char *const *roles, int nroles,
		     const struct ls_relation *const *tables, int ntables, bool read_only,
		     char **undo, uint64_t *ended, struct ls_err *err);
	/* Runs undo.  Sessions that a fence left in a state undo does not
	 * reach (PostgreSQL: sessions started under a read-only fence stay
	 * read-only) are ended, so the application reconnects unfenced. */
	int (*unfence)(struct ls_cutover_conn *c, const char *undo, struct ls_err *err);
	/* Carries the values of the sequences owned by tables' columns plus
	 * `extra` (comma-separated names, may be NULL) from `from` to `to`;
	 * *seqs (malloc'd, *nseqs) says what was carried.  LS_CUTOVER_NO when
	 * a sequence is missing on `to`. */
	int (*sequences)(struct ls_cutover_conn *from, struct ls_cutover_conn *to,
			 const struct ls_relation *const *tables, int ntables, const char *extra,
			 bool dry_run, struct ls_cutover_seq **seqs, int *nseqs, struct ls_err *err);
	/* Across engines, sequences() is replaced by these two (NULL: not
	 * supported).  counters: this side's counters of tables' columns
	 * (PostgreSQL: owned sequences; MySQL: AUTO_INCREMENT) plus `extra`
	 * named ones, each as the next value it hands out (is_called false),
	 * owner "schema.table.column" (or "" for a named one).  raise: on this
	 * side, the counter behind each owner column (or named sequence) is
	 * raised to at least that value, never lowered; dry_run checks only.
	 * LS_CUTOVER_NO when a column has no counter here. */
	int (*counters)(struct ls_cutover_conn *c, const struct ls_relation *const *tables,
			int ntables, const char *extra, struct ls_cutover_seq **seqs, int *nseqs,
			struct ls_err *err);
	int (*raise)(struct ls_cutover_conn *c, const struct ls_cutover_seq *seqs, int nseqs,
		     bool dry_run, struct ls_err *err);
	/* Makes publication pub (exactly tables) and logical slot `slot` on
	 * the side behind c / conninfo; *at = the slot's start position. */
	int (*reverse_prepare)(struct ls_cutover_conn *c, const char *conninfo, const char *slot,
			       const char *pub, const struct ls_relation *const *tables,
			       int ntables, struct ls_pos *at, struct ls_err *err);
	/* Drops slot and publication (absent ones are fine). */
	int (*reverse_drop)(struct ls_cutover_conn *c, const char *slot, const char *pub,
			    struct ls_err *err);
};

/* ---- what the procedure needs of a pipeline ---------------------------------------- */

struct ls_cutover_lag {
	bool applied_known;
	uint64_t applied_seq;          /* what the target committed */
	char applied[LS_POS_TEXT_MAX];
	double lag_s;                  /* apply lag seconds, -1 unknown */
	uint64_t source_seq;           /* the source's current position, 0 unknown */
	char state[16];                /* ls_pipeline_state() */
	uint64_t txns_captured;        /* by the pipeline's source */
	uint64_t changes_applied;      /* row changes the target applied */
};

struct ls_cutover_pipe {
	void *p;
	/* 0, or -1 when there is no target of that name. */
	int (*lag)(void *p, const char *target, struct ls_cutover_lag *out);
	/* lib/drift.h's ls_drift_check and ls_drift_last. */
	int64_t (*drift_check)(void *p, const char *table, struct ls_err *err);
	void (*drift_last)(void *p, struct ls_drift_last *out);
	/* The captured tables (borrowed); 0 before streaming. */
	int (*tables)(void *p, const struct ls_relation *const **rels);
};

/* How the procedure reaches the pipelines.  The daemon's host is made by
 * ls_cutover_new; tests bring their own. */
struct ls_cutover_host {
	void *ctx;
	struct ls_cutover_pipe fwd;
	/* Creates and starts the reverse pipeline from cfg (ownership passes,
	 * also on failure) and describes it in *out. */
	int (*reverse_open)(void *ctx, struct ls_config *cfg, struct ls_cutover_pipe *out,
			    struct ls_err *err);
	/* Stops it; done(arg) from the loop once it is released. */
	void (*reverse_close)(void *ctx, struct ls_cutover_pipe *pipe, void (*done)(void *arg),
			      void *arg);
	/* Its state ("streaming", "failed", ...) and last error ("" none). */
	const char *(*reverse_state)(void *ctx, const struct ls_cutover_pipe *pipe,
				     char *error, size_t size);
};

/* ---- pure helpers (unit-tested) ------------------------------------------------------ */

/* True when "schema.name" matches one of the comma-separated patterns
 * ('*' matches any run of characters; spaces around commas ignored). */
bool ls_cutover_match(const char *patterns, const char *schema, const char *name);

/* Splits a comma-separated list into at most max trimmed, non-empty items
 * (malloc'd; free each).  Returns the count, -1 out of memory. */
int ls_cutover_split(const char *list, char sep, char **items, int max);

/* The reverse pipeline's config for cutting `cfg` over to target index
 * `target`, for tables ("schema.name" list): source = that target's
 * database, target "old" = the source's, snapshot never, slot and
 * publication lockstep_<name>_rev, skip_origins lockstep_<name>.  NULL with
 * err (a name too long, out of memory). */
struct ls_config *ls_cutover_reverse_config(const struct ls_config *cfg, int target,
					    const char *tables, struct ls_err *err);

/* ---- the engine ---------------------------------------------------------------------------- */

struct ls_cutover;

struct ls_pipeline;
struct ls_pipeline_engines;

struct ls_cutover_opts {
	const struct ls_config *cfg;           /* borrowed; outlives the engine */
	const struct ls_cutover_ops *ops;      /* NULL: cutover refused (engine has none) */
	/* Each side's ops by its engine (the old side and the new one may
	 * differ); NULL: ops for both. */
	const struct ls_cutover_ops *(*ops_for)(enum ls_engine engine);
	/* The daemon's forward pipeline (borrowed, outlives the engine) and
	 * the engines reverse pipelines are built from; used when host.fwd.lag
	 * is NULL.  Tests give a host instead. */
	struct ls_pipeline *pipeline;
	const struct ls_pipeline_engines *engines;
	struct ls_cutover_host host;           /* copied */
	int poll_ms;                           /* 0 = 200 */
};

int ls_cutover_new(uv_loop_t *loop, const struct ls_cutover_opts *o, struct ls_cutover **out,
		   struct ls_err *err) __attribute__((warn_unused_result));

struct ls_cutover_request {
	bool rollback;
	bool dry_run;
	const char *tables;                    /* patterns; NULL = every captured table */
	const char *app_roles;                 /* comma-separated; NULL = config */
	const char *target;                    /* NULL = the only target */
	double max_lag_s;                      /* < 0: config */
	double timeout_s;                      /* per wait (ready, drain, reverse); <= 0: 60 */
	long uid;                              /* who asked, -1 unknown */
};

/* Starts a procedure (copies r).  Returns its number, or -1 with err (one
 * runs already, no rollback possible, bad request). */
int64_t ls_cutover_start(struct ls_cutover *c, const struct ls_cutover_request *r,
			 struct ls_err *err);

/* "idle" "running" "cut_over" (rollback possible) "rolled_back" */
const char *ls_cutover_phase(const struct ls_cutover *c);

/* GET /cutover's document: the phase and the current or latest procedure. */
void ls_cutover_json(struct ls_cutover *c, struct ls_json *j);

/* Routes POST /cutover, POST /rollback, GET /cutover and a "cutover"
 * member of GET /status. */
int ls_cutover_register(struct ls_cutover *c, struct ls_control *ctl);

/* Stops a running procedure where it stands (a fence in place stays: the
 * report says so), closes the reverse pipeline, then cb(arg).  NULL is a
 * no-op (cb still runs). */
void ls_cutover_close(struct ls_cutover *c, void (*cb)(void *arg), void *arg);

#endif
