/* pipeline — one source, one buffer, N targets, wired from the config.
 *
 * Start (ls_pipeline_start, on the loop; the setup steps block briefly):
 *   1. each target opens (connect, checkpoint) — lib/apply
 *   2. the source prepares (checks, tables, publication/slot)
 *   3. each target prepares every captured table (create or check)
 *   4. snapshot: tables not yet copied to every target are copied straight
 *      from source to targets (one target transaction per table, recorded in
 *      the target with the seq it was copied at); the loop keeps serving the
 *      control socket meanwhile
 *   5. streaming: each target's apply thread starts at its checkpoint, its
 *      buffer reader at the checkpoint's offset + 1; then the source streams
 *      into the buffer (lib/capture).
 * A config with only [source] runs steps 2 and 5's capture (snapshot must be
 * "never" there: copies go straight to targets); one with only targets runs
 * steps 1 and 5's apply from the topic.
 *
 * Failures after start reach on_failed once (err borrowed for the call); the
 * daemon then stops.  err->retryable says a restart may succeed.
 *
 * max_lead ([buffer] max_lead): when source and targets share the process,
 * the source is held while it has appended more than max_lead bytes beyond
 * what the slowest target has read, so the backlog waits in the source's log
 * rather than in a buffer that may drop it (the Kafka mock keeps 5 MiB).
 */
#ifndef LS_PIPELINE_H
#define LS_PIPELINE_H

#include <uv.h>

#include "buffer.h"
#include "config.h"
#include "control.h"
#include "err.h"
#include "source.h"
#include "target.h"

/* What the daemon plugs in: connectors by engine, and the Kafka buffer. */
struct ls_drift_source_ops;
struct ls_pipeline_engines {
	const struct ls_source_ops *(*source)(enum ls_engine e);
	const struct ls_target_ops *(*target)(enum ls_engine e);
	/* drift checks' source side (lib/drift.h); may be NULL, or return NULL */
	const struct ls_drift_source_ops *(*drift_source)(enum ls_engine e);
	int (*kafka_buffer)(uv_loop_t *loop, const struct ls_config_buffer *cfg,
			    const struct ls_buffer_limits *limits, struct ls_buffer **out,
			    struct ls_err *err);
	/* Optional: 0 when every column of rel (a relation of engine from) comes
	 * back from engine to in a type rel's own columns take (lockstep's
	 * type mappings, there and back); -1 with err naming the first column
	 * that does not.  A cutover across engines needs it: its reverse
	 * direction feeds the old side's tables from the new side's. */
	int (*round_trip)(const struct ls_relation *rel, enum ls_engine from, enum ls_engine to,
			  struct ls_err *err);
};

struct ls_pipeline;

int ls_pipeline_new(uv_loop_t *loop, const struct ls_config *cfg,
		    const struct ls_pipeline_engines *eng,
		    void (*on_failed)(void *ctx, const struct ls_err *err), void *ctx,
		    struct ls_pipeline **out, struct ls_err *err)
	__attribute__((warn_unused_result));

/* Registers GET /status members and routes on ctl: GET /lag, GET /metrics,
 * POST /pause, POST /resume (lib/lag.h). */
int ls_pipeline_register(struct ls_pipeline *p, struct ls_control *ctl);

/* Returns -1 only for errors a retry cannot fix; a retryable failure (a
 * server down) leaves the pipeline retrying with backoff. */
int ls_pipeline_start(struct ls_pipeline *p, struct ls_err *err)
	__attribute__((warn_unused_result));

/* Lag (lib/lag.h): the report, refreshed now; borrowed, valid until the
 * next call.  NULL out of memory. */
struct ls_lag_report;
const struct ls_lag_report *ls_pipeline_lag(struct ls_pipeline *p);

/* POST /pause and /resume: while paused, every target's buffer reader is
 * held (what its apply queue already holds is still applied); the source
 * keeps capturing into the buffer until the buffer's window is full.  A
 * pause survives pipeline restarts.  Returns 0. */
int ls_pipeline_pause(struct ls_pipeline *p, bool pause);

/* The providers of GET /metrics (lib/metrics.h), for components that add
 * their own families; valid after ls_pipeline_register. */
struct ls_metrics_set;
struct ls_metrics_set *ls_pipeline_metrics(struct ls_pipeline *p);

/* For cutover (lib/cutover.h): the tables the source captures (borrowed,
 * valid while streaming; n is 0 before), and the drift engine (owned by the
 * pipeline, valid until close). */
const struct ls_source_tables *ls_pipeline_tables(const struct ls_pipeline *p);
struct ls_drift;
struct ls_drift *ls_pipeline_drift(struct ls_pipeline *p);

/* "starting" "snapshot" "streaming" "paused" (streaming, applying paused)
 * "stopping" "failed" "restarting" */
const char *ls_pipeline_state(const struct ls_pipeline *p);

/* Closes everything; cb(arg) runs from the loop once all is released. */
void ls_pipeline_close(struct ls_pipeline *p, void (*cb)(void *arg), void *arg);

#endif
