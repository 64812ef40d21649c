#include "pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "buffer_direct.h"
#include "capture.h"
#include "drift.h"
#include "codec.h"
#include "json.h"
#include "lag.h"
#include "log.h"
#include "pos.h"

#define CRON_MS 100
#define LAG_HEARTBEAT_MS 1000      /* source heartbeat (lag) */

enum pstate { P_STARTING, P_SNAPSHOT, P_STREAMING, P_STOPPING, P_FAILED, P_RESTARTING };
static const char *const state_names[] = {
	"starting", "snapshot", "streaming", "stopping", "failed", "restarting",
};

#define RESTART_MIN_MS 500
#define RESTART_MAX_MS 30000
#define RESTART_STABLE_NS (60ull * 1000000000ull)

struct tgt {
	struct ls_pipeline *p;
	const struct ls_config_target *cfg;
	const struct ls_target_ops *ops;
	struct ls_apply *apply;
	struct ls_buffer_reader *reader;
	bool reader_paused;
	bool reader_stopped;               /* reader paused (backpressure or /pause) */
	uint64_t read_bytes;               /* delivered to apply this run */
	int64_t committed_offset;
	struct ls_pos committed_pos;
	struct ls_target_copy **copies;    /* one per snapshot worker */
};

struct ls_pipeline {
	uv_loop_t *loop;
	const struct ls_config *cfg;
	struct ls_pipeline_engines eng;
	void (*on_failed)(void *ctx, const struct ls_err *err);
	void *ctx;
	enum pstate state;
	const struct ls_source_ops *sops;
	struct ls_source *src;
	struct ls_source_tables tables;
	struct ls_buffer *buf;
	struct ls_capture *cap;
	int ntgts;
	struct tgt *tgts;
	int nworkers;
	uv_timer_t cron, restart_timer, fail_timer;
	bool cron_started, lead_hold;
	uint64_t stream_floor;          /* greatest copied_at of any target table */
	/* failures: retryable ones restart the components in process */
	struct ls_err last_err;
	bool has_err;
	uint64_t restarts;
	uint64_t restart_delay_ms;
	uint64_t streaming_since_ns;
	uint64_t snapshot_started_ns, snapshot_ns;
	struct closer *closer;
	struct ls_drift *drift;            /* drift checks (lib/drift.h) */
	/* lag (lib/lag.h): commit times read, positions, the report */
	struct ls_lag_ring *ring;
	struct ls_lag_report *report;
	struct ls_metrics_set *metrics;
	struct ls_lag_provider lagprov;
	struct ls_lag_pos read_pos;        /* latest commit or idle position read */
	struct ls_lag_clock rec_clock;     /* keepalives/records, when no heartbeat */
	bool paused, slot_warned;
	unsigned lag_ticks;
};


static void teardown(struct ls_pipeline *p, void (*done)(struct ls_pipeline *p));
static void restart_later(struct ls_pipeline *p);
static void on_fail_timer(uv_timer_t *h);

/* A component failed.  Retryable: tear the components down and start them
 * again after a backoff (the source resumes from what targets committed,
 * targets from their checkpoints).  Fatal: tear down and stay "failed",
 * checkpoints intact, with the error in /status for the operator. */

/* A component failed.  Retryable: tear the components down and start them
 * again after a backoff (the source resumes from what targets committed,
 * targets from their checkpoints).  Fatal: tear down and stay "failed",
 * checkpoints intact, with the error in /status for the operator. */
static void fail(struct ls_pipeline *p, const struct ls_err *err)
{
	if (p->state == P_FAILED || p->state == P_STOPPING || p->state == P_RESTARTING)
		return;
	p->last_err = *err;
	p->has_err = true;
	if (err->retryable) {
		ls_warn("%s; restarting the pipeline", err->msg);
		p->state = P_RESTARTING;
	} else {
		ls_error("%s; the pipeline stops (checkpoints are intact)", err->msg);
		p->state = P_FAILED;
	}
	/* Tear down from the loop, not from inside the failing component's
	 * callback, which may still touch its own state after we return. */
	uv_timer_start(&p->fail_timer, on_fail_timer, 0, 0);
}

static void on_fail_timer(uv_timer_t *h)
{
	struct ls_pipeline *p = h->data;
	if (p->state == P_RESTARTING) {
		teardown(p, restart_later);
		return;
	}
	if (p->state != P_FAILED)
		return;
	teardown(p, NULL);
	if (p->on_failed)
		p->on_failed(p->ctx, &p->last_err);
}

/* ---- apply side ----------------------------------------------------------------- */

static void reader_sync(struct tgt *t);
static void lag_record(struct ls_pipeline *p, const void *bytes, size_t len);

static void on_record(void *ctx, int64_t offset, const void *bytes, size_t len)
{
	struct tgt *t = ctx;
	t->read_bytes += len;
	if (t->p->src == NULL)
		lag_record(t->p, bytes, len);
	int rc = ls_apply_push(t->apply, offset, bytes, len);
	if (rc < 0) {
		struct ls_err err;
		ls_err_set(&err, false, "target %s: out of memory queueing a record", t->cfg->name);
		fail(t->p, &err);
		return;
	}
	if (rc == 1 && !t->reader_paused) {
		t->reader_paused = true;
		reader_sync(t);
	}
}

static void on_reader_error(void *ctx, const struct ls_err *err)
{
	struct tgt *t = ctx;
	struct ls_err e = *err;
	ls_err_prefix(&e, "target %s", t->cfg->name);
	fail(t->p, &e);
}

static int open_reader(struct tgt *t, int64_t offset, struct ls_err *err)
{
	struct ls_buffer_reader_cb cb = {
		.ctx = t, .on_record = on_record, .on_error = on_reader_error,
	};
	t->reader_paused = t->reader_stopped = false;
	if (ls_buffer_open_reader(t->p->buf, t->cfg->name, offset, &cb, &t->reader, err) < 0)
		return -1;
	reader_sync(t);   /* a reader opened while paused (POST /pause) starts paused */
	return 0;
}

static void on_committed(void *ctx, int64_t offset, const struct ls_pos *pos)
{
	struct tgt *t = ctx;
	struct ls_err err;
	t->committed_offset = offset;
	t->committed_pos = *pos;
	if (t->reader && ls_buffer_reader_ack(t->reader, offset, &err) < 0)
		fail(t->p, &err);
}

static void on_drained(void *ctx)
{
	struct tgt *t = ctx;
	if (t->reader && t->reader_paused) {
		t->reader_paused = false;
		reader_sync(t);
	}
}

static void on_rewind(void *ctx, int64_t offset)
{
	struct tgt *t = ctx;
	struct ls_err err;
	if (strcmp(ls_buffer_name(t->p->buf), "direct") == 0) {
		/* The in-memory buffer cannot replay; a restart makes the source
		 * send again everything after the target's checkpoint. */
		ls_err_set(&err, true, "target %s reconnected, but the direct buffer cannot "
			   "replay records; restarting the pipeline resumes from the checkpoint",
			   t->cfg->name);
		fail(t->p, &err);
		return;
	}
	ls_buffer_reader_close(t->reader);
	t->reader = NULL;
	if (open_reader(t, offset, &err) < 0)
		fail(t->p, &err);
}

static void on_apply_error(void *ctx, const struct ls_err *err)
{
	struct tgt *t = ctx;
	fail(t->p, err);
}

/* ---- max_lead ------------------------------------------------------------------------ */

static void check_lead(struct ls_pipeline *p)
{
	if (p->cap == NULL || p->cfg->buffer.max_lead == 0 || p->ntgts == 0)
		return;
	struct ls_capture_stats cs;
	ls_capture_stats(p->cap, &cs);
	uint64_t min_read = UINT64_MAX;
	for (int i = 0; i < p->ntgts; i++)
		if (p->tgts[i].read_bytes < min_read)
			min_read = p->tgts[i].read_bytes;
	uint64_t lead = cs.bytes > min_read ? cs.bytes - min_read : 0;
	bool hold = p->lead_hold ? lead > p->cfg->buffer.max_lead / 2
				 : lead > p->cfg->buffer.max_lead;
	if (hold != p->lead_hold) {
		p->lead_hold = hold;
		ls_capture_hold(p->cap, hold);
	}
}

static void lag_cron(struct ls_pipeline *p);

static void on_cron(uv_timer_t *h)
{
	struct ls_pipeline *p = h->data;
	check_lead(p);
	lag_cron(p);
	if (p->state == P_STREAMING && p->restart_delay_ms > RESTART_MIN_MS &&
	    uv_hrtime() - p->streaming_since_ns > RESTART_STABLE_NS)
		p->restart_delay_ms = RESTART_MIN_MS;
}

/* ---- streaming ------------------------------------------------------------------------ */

static void on_capture_error(void *ctx, const struct ls_err *err)
{
	fail(ctx, err);
}

static int start_targets(struct ls_pipeline *p, struct ls_err *err)
{
	for (int i = 0; i < p->ntgts; i++) {
		struct tgt *t = &p->tgts[i];
		struct ls_target_ckpt ck;
		if (ls_apply_start(t->apply, &ck, err) < 0)
			return -1;
		int64_t from = ck.present ? ck.buffer_offset + 1 : 0;
		t->committed_offset = ck.present ? ck.buffer_offset : -1;
		ls_info("target %s: resuming at buffer offset %lld (source %s)", t->cfg->name,
			(long long)from, ck.present ? ck.source_pos : "start");
		if (open_reader(t, from, err) < 0)
			return -1;
	}
	return 0;
}

static void on_read(void *ctx, const struct ls_pos *pos, int64_t time_us, bool commit);

/* Large transactions are applied while in progress when the source is
 * PostgreSQL, the config allows it, and every target here can (a source
 * half alone cannot tell: its config says). */
static bool streams_wanted(const struct ls_pipeline *p)
{
	if (!p->cfg->source.stream_txns || p->cfg->source.type != LS_ENGINE_POSTGRES)
		return false;
	for (int i = 0; i < p->ntgts; i++)
		if (p->tgts[i].ops->savepoint == NULL || p->tgts[i].ops->rollback_to == NULL)
			return false;
	return true;
}

static int start_streaming(struct ls_pipeline *p, struct ls_err *err)
{
	p->state = P_STREAMING;
	p->streaming_since_ns = uv_hrtime();
	ls_drift_start(p->drift, &p->tables);   /* before the apply threads start */
	if (start_targets(p, err) < 0)
		return -1;
	if (p->src == NULL)
		return 0;
	struct ls_capture_opts co = {
		.sops = p->sops, .source = p->src, .buffer = p->buf,
		.on_error = on_capture_error, .on_read = on_read, .ctx = p,
		.streams = streams_wanted(p), .stream_floor = p->stream_floor,
	};
	if (ls_capture_new(p->loop, &co, &p->cap, err) < 0 || ls_capture_start(p->cap, err) < 0)
		return -1;
	struct ls_err herr;
	/* Lag is worse without the heartbeat, but the data still flows. */
	if (p->sops->heartbeat && p->sops->heartbeat(p->src, LAG_HEARTBEAT_MS, &herr) < 0)
		ls_warn("source heartbeat not started: %s", herr.msg);
	return 0;
}

/* ---- snapshot ---------------------------------------------------------------------------- */

static bool plan_copied(void *ctx, const struct ls_relation *rel)
{
	struct ls_pipeline *p = ctx;
	for (int i = 0; i < p->ntgts; i++) {
		struct tgt *t = &p->tgts[i];
		bool copied = false;
		uint64_t at = 0;
		struct ls_err err;
		if (t->ops->snapshot_state(ls_apply_target(t->apply), rel->schema, rel->name,
					   &copied, &at, &err) < 0) {
			ls_warn("target %s: %s; copying %s.%s again", t->cfg->name, err.msg,
				rel->schema, rel->name);
			return false;
		}
		if (!copied)
			return false;
	}
	return true;
}

/* Worker threads: each worker index has its own copy session per target. */
static int snap_table_start(void *ctx, int worker, const struct ls_relation *rel,
			    uint64_t copied_at)
{
	struct ls_pipeline *p = ctx;
	(void)copied_at;
	for (int i = 0; i < p->ntgts; i++) {
		struct tgt *t = &p->tgts[i];
		struct ls_err err;
		if (worker < 0 || worker >= p->nworkers)
			return -1;
		if (t->copies[worker] == NULL &&
		    t->ops->copy_open(ls_apply_target(t->apply), &t->copies[worker], &err) < 0) {
			ls_error("target %s: %s", t->cfg->name, err.msg);
			return -1;
		}
		if (t->ops->copy_table_begin(t->copies[worker], rel, &err) < 0) {
			ls_error("target %s: %s", t->cfg->name, err.msg);
			return -1;
		}
	}
	return 0;
}

static int snap_copy_data(void *ctx, int worker, const struct ls_relation *rel,
			  const char *data, size_t len)
{
	struct ls_pipeline *p = ctx;
	(void)rel;
	for (int i = 0; i < p->ntgts; i++) {
		struct tgt *t = &p->tgts[i];
		struct ls_err err;
		if (t->ops->copy_data(t->copies[worker], data, len, &err) < 0) {
			ls_error("target %s: %s", t->cfg->name, err.msg);
			return -1;
		}
	}
	return 0;
}

static int snap_table_done(void *ctx, int worker, const struct ls_relation *rel,
			   uint64_t rows, uint64_t copied_at)
{
	struct ls_pipeline *p = ctx;
	for (int i = 0; i < p->ntgts; i++) {
		struct tgt *t = &p->tgts[i];
		struct ls_err err;
		if (t->ops->copy_table_end(t->copies[worker], rel, rows, copied_at, &err) < 0) {
			ls_error("target %s: %s", t->cfg->name, err.msg);
			return -1;
		}
	}
	ls_info("snapshot: %s.%s copied (%llu rows)", rel->schema, rel->name,
		(unsigned long long)rows);
	return 0;
}

static void close_copies(struct ls_pipeline *p)
{
	for (int i = 0; i < p->ntgts; i++) {
		struct tgt *t = &p->tgts[i];
		for (int w = 0; w < p->nworkers; w++) {
			if (t->copies[w])
				t->ops->copy_close(t->copies[w]);
			t->copies[w] = NULL;
		}
	}
}

/* Every target learns at which seq each table was copied, so the stream's
 * older changes of that table are skipped (snapshot and stream meet). */
static int load_filters(struct ls_pipeline *p, struct ls_err *err)
{
	for (int i = 0; i < p->ntgts; i++) {
		struct tgt *t = &p->tgts[i];
		for (int k = 0; k < p->tables.n; k++) {
			const struct ls_relation *rel = p->tables.rels[k];
			bool copied = false;
			uint64_t at = 0;
			if (t->ops->snapshot_state(ls_apply_target(t->apply), rel->schema,
						   rel->name, &copied, &at, err) < 0)
				return -1;
			if (copied && ls_apply_set_copied_at(t->apply, rel->schema, rel->name, at) < 0)
				return ls_err_set(err, false, "out of memory");
			if (copied && at > p->stream_floor)
				p->stream_floor = at;
		}
	}
	return 0;
}

static void snap_finished(void *ctx, const struct ls_err *serr)
{
	struct ls_pipeline *p = ctx;
	struct ls_err err;
	close_copies(p);
	if (p->state != P_SNAPSHOT)
		return;
	if (serr) {
		err = *serr;
		ls_err_prefix(&err, "snapshot");
		fail(p, &err);
		return;
	}
	p->snapshot_ns = uv_hrtime() - p->snapshot_started_ns;
	ls_notice("snapshot finished in %.1f s; streaming", p->snapshot_ns / 1e9);
	if (load_filters(p, &err) < 0 || start_streaming(p, &err) < 0)
		fail(p, &err);
}

static int start_snapshot(struct ls_pipeline *p, struct ls_err *err)
{
	p->nworkers = p->cfg->source.snapshot_workers > 0 ? p->cfg->source.snapshot_workers : 1;
	for (int i = 0; i < p->ntgts; i++) {
		p->tgts[i].copies = calloc((size_t)p->nworkers, sizeof *p->tgts[i].copies);
		if (p->tgts[i].copies == NULL)
			return ls_err_set(err, false, "out of memory");
	}
	struct ls_source_snapshot_sink sink = {
		.ctx = p, .plan_copied = plan_copied, .on_table_start = snap_table_start,
		.on_copy_data = snap_copy_data, .on_table_done = snap_table_done,
		.on_finished = snap_finished,
	};
	p->state = P_SNAPSHOT;
	p->snapshot_started_ns = uv_hrtime();
	return p->sops->snapshot(p->src, &sink, err);
}

/* ---- start ------------------------------------------------------------------------------------- */

static int open_buffer(struct ls_pipeline *p, struct ls_err *err)
{
	if (p->cfg->buffer.type == LS_BUFFER_DIRECT)
		return ls_buffer_direct_new(p->loop, NULL, &p->buf, err);
	if (p->eng.kafka_buffer == NULL)
		return ls_err_set(err, false, "this build has no Kafka buffer");
	return p->eng.kafka_buffer(p->loop, &p->cfg->buffer, NULL, &p->buf, err);
}

static int open_targets(struct ls_pipeline *p, struct ls_err *err)
{
	p->ntgts = p->cfg->ntargets;
	p->tgts = calloc((size_t)(p->ntgts ? p->ntgts : 1), sizeof *p->tgts);
	if (p->tgts == NULL)
		return ls_err_set(err, false, "out of memory");
	for (int i = 0; i < p->ntgts; i++) {
		struct tgt *t = &p->tgts[i];
		t->p = p;
		t->cfg = &p->cfg->targets[i];
		t->committed_offset = -1;
		t->ops = p->eng.target(t->cfg->type);
		if (t->ops == NULL)
			return ls_err_set(err, false, "[target %s]: no connector for this type",
					  t->cfg->name);
		struct ls_apply_opts ao = { .pipeline = p->cfg->name, .cfg = t->cfg, .ops = t->ops,
					    .hook = ls_drift_apply_hook(p->drift, i),
					    .source = p->cfg->source.type };
		struct ls_apply_cb cb = {
			.ctx = t, .on_committed = on_committed, .on_drained = on_drained,
			.on_rewind = on_rewind, .on_error = on_apply_error,
		};
		if (ls_apply_new(p->loop, &ao, &cb, &t->apply, err) < 0)
			return -1;
	}
	return 0;
}

static int prepare_tables(struct ls_pipeline *p, struct ls_err *err)
{
	for (int i = 0; i < p->ntgts; i++) {
		struct tgt *t = &p->tgts[i];
		for (int k = 0; k < p->tables.n; k++)
			if (t->ops->prepare_table(ls_apply_target(t->apply), p->tables.rels[k], err) < 0)
				return ls_err_prefix(err, "target %s", t->cfg->name);
	}
	return 0;
}

static int start_all(struct ls_pipeline *p, struct ls_err *err)
{
	p->state = P_STARTING;
	if (!p->cron_started) {
		uv_timer_init(p->loop, &p->cron);
		uv_timer_init(p->loop, &p->restart_timer);
		uv_timer_init(p->loop, &p->fail_timer);
		p->cron.data = p->restart_timer.data = p->fail_timer.data = p;
		uv_timer_start(&p->cron, on_cron, CRON_MS, CRON_MS);
		p->cron_started = true;
	}
	if (open_buffer(p, err) < 0 || open_targets(p, err) < 0)
		return -1;
	if (!p->cfg->source.present)
		return start_streaming(p, err);
	p->sops = p->eng.source(p->cfg->source.type);
	if (p->sops == NULL)
		return ls_err_set(err, false, "[source]: no connector for this type");
	if (p->sops->open(p->loop, p->cfg, &p->src, err) < 0 ||
	    p->sops->prepare(p->src, &p->tables, err) < 0)
		return -1;
	if (prepare_tables(p, err) < 0)
		return -1;
	if (p->ntgts == 0 && p->cfg->source.snapshot == LS_SNAPSHOT_INITIAL)
		ls_warn("no targets in this process: the initial snapshot is left to the "
			"process that runs the targets (set [source] snapshot = never to silence)");
	if (p->ntgts == 0)
		return start_streaming(p, err);
	return start_snapshot(p, err);
}

/* A server that is down at start is passing trouble: the pipeline retries
 * (state "restarting", the error in /status) instead of failing the daemon.
 * Only errors that a retry cannot fix (bad config, refused checks) fail. */
int ls_pipeline_start(struct ls_pipeline *p, struct ls_err *err)
{
	if (start_all(p, err) == 0)
		return 0;
	if (!err->retryable)
		return -1;
	fail(p, err);
	return 0;
}

static bool drift_applied(void *ctx, int target, uint64_t *seq);

int ls_pipeline_new(uv_loop_t *loop, const struct ls_config *cfg,
		    const struct ls_pipeline_engines *eng,
		    void (*on_failed)(void *ctx, const struct ls_err *err), void *ctx,
		    struct ls_pipeline **out, struct ls_err *err)
{
	struct ls_pipeline *p = calloc(1, sizeof *p);
	if (p == NULL)
		return ls_err_set(err, false, "out of memory");
	p->loop = loop;
	p->cfg = cfg;
	p->eng = *eng;
	p->on_failed = on_failed;
	p->ctx = ctx;
	p->restart_delay_ms = RESTART_MIN_MS;
	struct ls_drift_opts dop = { .cfg = cfg, .applied = drift_applied, .applied_ctx = p };
	if (cfg->source.present && eng->drift_source)
		dop.sops = eng->drift_source(cfg->source.type);
	if (ls_drift_new(loop, &dop, &p->drift, err) < 0) {
		free(p);
		return -1;
	}
	*out = p;
	return 0;
}

const struct ls_source_tables *ls_pipeline_tables(const struct ls_pipeline *p)
{
	return &p->tables;
}

struct ls_drift *ls_pipeline_drift(struct ls_pipeline *p)
{
	return p->drift;
}

const char *ls_pipeline_state(const struct ls_pipeline *p)
{
	return p->state == P_STREAMING && p->paused ? "paused" : state_names[p->state];
}

/* ---- lag, pause ------------------------------------------------------------------------------------ */

/* The reader runs unless the apply queue is full or applying is paused. */
static void reader_sync(struct tgt *t)
{
	bool stop = t->reader_paused || t->p->paused;
	if (t->reader == NULL || stop == t->reader_stopped)
		return;
	t->reader_stopped = stop;
	if (stop)
		ls_buffer_reader_pause(t->reader);
	else
		ls_buffer_reader_resume(t->reader);
}

/* Remembers a position read and, for a commit, its time; false when the
 * position is not new (resent, or a second target's reader). */
static bool lag_read(struct ls_pipeline *p, const struct ls_pos *pos, int64_t time_us,
		     bool commit)
{
	if (p->read_pos.known && pos->seq <= p->read_pos.seq)
		return false;
	ls_lag_pos_set(&p->read_pos, pos);
	if (commit && p->ring == NULL)
		p->ring = ls_lag_ring_new(0, 0);
	if (commit && p->ring != NULL)
		ls_lag_ring_add(p->ring, pos->seq, time_us);
	return true;
}

/* Capture read a commit (time = its commit time) or the source reported
 * itself idle (time = the source's clock at that keepalive). */
static void on_read(void *ctx, const struct ls_pos *pos, int64_t time_us, bool commit)
{
	struct ls_pipeline *p = ctx;
	lag_read(p, pos, time_us, commit);
	if (!commit)
		ls_lag_clock_update(&p->rec_clock, time_us, uv_hrtime());
}

/* A process without the source learns commits and source times from the
 * records its readers get; the newest record's source time stands in for
 * the source's clock, so lag reads low (a lower bound) while readers are
 * behind. */
static void lag_record(struct ls_pipeline *p, const void *bytes, size_t len)
{
	struct ls_codec_record r;
	if (ls_codec_decode_header(bytes, len, &r, NULL) < 0)
		return;   /* the apply thread reports bad records */
	bool commit = r.type == LS_CODEC_TXN && (r.flags & LS_CODEC_LAST);
	if ((commit || r.type == LS_CODEC_POSITION) && lag_read(p, &r.pos, r.time_us, commit))
		ls_lag_clock_update(&p->rec_clock, r.time_us, uv_hrtime());
}

/* What the target committed: its checkpoint, then each commit (including
 * POSITION records of an idle source). */
static void target_applied(struct tgt *t, struct ls_lag_target *out)
{
	struct ls_apply_stats as;
	ls_apply_stats(t->apply, &as);
	struct ls_pos best = { .seq = as.committed_seq };
	snprintf(best.text, sizeof best.text, "%s", as.committed_pos);
	bool known = as.committed_offset >= 0 || as.committed_seq > 0;
	if (t->committed_offset >= 0 && t->committed_pos.seq > best.seq) {
		best = t->committed_pos;
		known = true;
	}
	if (known)
		ls_lag_pos_set(&out->applied, &best);
	out->committed_offset = t->committed_offset;
	out->txns_applied = as.txns;
	out->changes_applied = as.changes;
	out->buffer_lag_records = t->reader ? ls_buffer_reader_lag(t->reader) : -1;
}

/* The drift engine's view of what target i has committed (lib/drift.h). */
static bool drift_applied(void *ctx, int target, uint64_t *seq)
{
	struct ls_pipeline *p = ctx;
	if (p->tgts == NULL || target < 0 || target >= p->ntgts || p->tgts[target].apply == NULL)
		return false;
	struct ls_lag_target lt;
	memset(&lt, 0, sizeof lt);
	target_applied(&p->tgts[target], &lt);
	*seq = lt.applied.seq;
	return lt.applied.known;
}

static void lag_source(struct ls_pipeline *p, struct ls_lag_report *r)
{
	struct ls_source_lag sl;
	memset(&sl, 0, sizeof sl);
	if (p->src && p->sops->lag_sample)
		p->sops->lag_sample(p->src, &sl);
	if (p->rec_clock.known) {
		r->clock = p->rec_clock;
		r->clock_from = p->src ? "keepalive" : "records";
	}
	if (sl.now_known) {
		/* keepalives read the same clock; the newer sample wins */
		ls_lag_pos_set(&r->source, &sl.now);
		ls_lag_clock_update(&r->clock, sl.now_time_us, sl.taken_ns);
		r->clock_from = "heartbeat";
	}
	if (sl.slot_known) {
		struct ls_lag_slot *s = &r->slot;
		s->known = true;
		snprintf(s->name, sizeof s->name, "%s", sl.slot);
		snprintf(s->wal_status, sizeof s->wal_status, "%s", sl.wal_status);
		s->safe_wal_size = sl.safe_wal_size;
		s->max_keep_size = sl.max_keep_size;
		s->retained_bytes = sl.retained_bytes;
		memcpy(s->oldest_file, sl.oldest_file, sizeof s->oldest_file);
		s->oldest_age_s = sl.oldest_age_s;
		s->expire_s = sl.expire_s;
		s->oldest_active = sl.oldest_active;
	}
	if (p->cap == NULL)
		return;
	struct ls_capture_stats cs;
	ls_capture_stats(p->cap, &cs);
	r->txns_captured = cs.txns;
	r->changes_captured = cs.changes;
	r->records_appended = cs.records;
	r->bytes_appended = cs.bytes;
	if (cs.durable_ack) {
		struct ls_pos d = { .seq = cs.durable_ack };
		if (strcmp(p->sops->engine, "postgres") == 0)
			ls_lsn_format(d.seq, d.text, sizeof d.text);
		else
			snprintf(d.text, sizeof d.text, "%llu", (unsigned long long)d.seq);
		ls_lag_pos_set(&r->durable, &d);
	}
}

/* An empty report sized for the current targets and tables (they change
 * across restarts). */
static struct ls_lag_report *lag_report_reset(struct ls_pipeline *p)
{
	int ntables = p->src ? p->tables.n : 0;
	struct ls_lag_report *r = p->report;
	if (r == NULL || r->ntargets != p->ntgts || r->ntables != ntables) {
		ls_lag_report_free(r);
		p->report = r = ls_lag_report_new(p->ntgts, ntables);
		return r;
	}
	struct ls_lag_target *tg = r->targets;
	struct ls_lag_table *tb = r->tables;
	memset(tg, 0, (size_t)r->ntargets * sizeof *tg);
	memset(tb, 0, (size_t)r->ntables * sizeof *tb);
	memset(r, 0, sizeof *r);
	r->targets = tg;
	r->tables = tb;
	r->ntargets = p->ntgts;
	r->ntables = ntables;
	return r;
}

const struct ls_lag_report *ls_pipeline_lag(struct ls_pipeline *p)
{
	struct ls_lag_report *r = lag_report_reset(p);
	if (r == NULL)
		return NULL;
	snprintf(r->pipeline, sizeof r->pipeline, "%s", p->cfg->name ? p->cfg->name : "");
	snprintf(r->state, sizeof r->state, "%s", ls_pipeline_state(p));
	r->paused = p->paused;
	r->read = p->read_pos;
	lag_source(p, r);
	for (int i = 0; i < p->ntgts; i++) {
		snprintf(r->targets[i].name, sizeof r->targets[i].name, "%s", p->tgts[i].cfg->name);
		if (p->tgts[i].apply)
			target_applied(&p->tgts[i], &r->targets[i]);
	}
	for (int i = 0; i < r->ntables && p->sops->snapshot_progress; i++) {
		struct ls_source_progress pr;
		if (p->sops->snapshot_progress(p->src, i, &pr) < 0)
			continue;
		struct ls_lag_table *t = &r->tables[i];
		snprintf(t->name, sizeof t->name, "%s.%s", pr.schema, pr.name);
		snprintf(t->state, sizeof t->state, "%s", pr.state);
		t->rows = pr.rows;
		t->est_rows = pr.est_rows;
	}
	r->snapshot_seconds = (p->snapshot_ns ? p->snapshot_ns : p->snapshot_started_ns ?
			       uv_hrtime() - p->snapshot_started_ns : 0) / 1e9;
	r->drift_rows = ls_drift_rows(p->drift);
	r->drift_known = r->drift_rows > 0 || ls_drift_clean(p->drift);
	ls_lag_compute(r, p->ring, uv_hrtime());
	ls_lag_slot_check(&r->slot);
	return r;
}

/* Forgets commit times every target has applied; once a second, says in
 * the log when the slot starts or stops being at risk. */
static void lag_cron(struct ls_pipeline *p)
{
	if (p->ring != NULL && p->cfg->ntargets == 0)
		ls_lag_ring_release(p->ring, UINT64_MAX);   /* applied elsewhere */
	else if (p->ring != NULL && p->state == P_STREAMING && p->ntgts > 0) {
		uint64_t min = UINT64_MAX;
		for (int i = 0; i < p->ntgts; i++) {
			struct ls_lag_target t;
			memset(&t, 0, sizeof t);
			target_applied(&p->tgts[i], &t);
			uint64_t seq = t.applied.known ? t.applied.seq : 0;
			if (seq < min)
				min = seq;
		}
		ls_lag_ring_release(p->ring, min);
	}
	if (++p->lag_ticks % (1000 / CRON_MS) != 0 || p->src == NULL)
		return;
	const struct ls_lag_report *r = ls_pipeline_lag(p);
	if (r == NULL || r->slot.warning == p->slot_warned)
		return;
	p->slot_warned = r->slot.warning;
	if (r->slot.warning)
		ls_warn("%s", r->slot.warning_text);
	else
		ls_notice("replication slot %s: WAL retention back to safe levels", r->slot.name);
}

int ls_pipeline_pause(struct ls_pipeline *p, bool pause)
{
	if (p->paused != pause)
		ls_notice(pause ? "applying paused on every target; capture continues into the buffer"
			  : "applying resumed");
	p->paused = pause;
	for (int i = 0; i < p->ntgts; i++)
		reader_sync(&p->tgts[i]);
	return 0;
}

static const struct ls_lag_report *lag_report_cb(void *data)
{
	return ls_pipeline_lag(data);
}

static int lag_pause_cb(void *data, bool pause)
{
	return ls_pipeline_pause(data, pause);
}

/* ---- status ---------------------------------------------------------------------------------------- */

static void status_snapshot(struct ls_pipeline *p, struct ls_json *j)
{
	ls_json_key(j, "snapshot");
	ls_json_object_begin(j);
	uint64_t rows = 0;
	ls_json_key(j, "tables");
	ls_json_array_begin(j);
	for (int i = 0; p->src && p->sops->snapshot_progress && i < p->tables.n; i++) {
		struct ls_source_progress pr;
		if (p->sops->snapshot_progress(p->src, i, &pr) < 0)
			continue;
		char name[512];
		snprintf(name, sizeof name, "%s.%s", pr.schema, pr.name);
		ls_json_object_begin(j);
		ls_json_kv_string(j, "table", name);
		ls_json_kv_string(j, "state", pr.state);
		ls_json_kv_uint(j, "rows", pr.rows);
		ls_json_kv_uint(j, "est_rows", pr.est_rows);
		ls_json_object_end(j);
		rows += pr.rows;
	}
	ls_json_array_end(j);
	ls_json_kv_uint(j, "rows_copied", rows);
	ls_json_key(j, "seconds");
	ls_json_double(j, (p->snapshot_ns ? p->snapshot_ns
			   : p->snapshot_started_ns ? uv_hrtime() - p->snapshot_started_ns : 0) / 1e9);
	ls_json_object_end(j);
}

static void status_capture(struct ls_pipeline *p, struct ls_json *j)
{
	if (p->cap == NULL)
		return;
	struct ls_capture_stats cs;
	ls_capture_stats(p->cap, &cs);
	ls_json_key(j, "capture");
	ls_json_object_begin(j);
	ls_json_kv_uint(j, "txns", cs.txns);
	ls_json_kv_uint(j, "changes", cs.changes);
	ls_json_kv_uint(j, "records", cs.records);
	ls_json_kv_uint(j, "bytes", cs.bytes);
	ls_json_kv_uint(j, "durable_records", cs.durable_records);
	ls_json_kv_string(j, "read_pos", cs.read_pos);
	ls_json_kv_bool(j, "paused", cs.paused);
	ls_json_kv_bool(j, "held_by_max_lead", p->lead_hold);
	ls_json_object_end(j);
}

static void status_targets(struct ls_pipeline *p, struct ls_json *j)
{
	ls_json_key(j, "targets");
	ls_json_array_begin(j);
	for (int i = 0; i < p->ntgts; i++) {
		struct tgt *t = &p->tgts[i];
		struct ls_apply_stats as;
		ls_apply_stats(t->apply, &as);
		ls_json_object_begin(j);
		ls_json_kv_string(j, "name", t->cfg->name);
		ls_json_kv_int(j, "committed_offset", as.committed_offset);
		ls_json_kv_uint(j, "committed_seq", as.committed_seq);
		ls_json_kv_string(j, "committed_pos", as.committed_pos);
		ls_json_kv_uint(j, "txns", as.txns);
		ls_json_kv_uint(j, "changes", as.changes);
		ls_json_kv_uint(j, "skipped_txns", as.skipped_txns);
		ls_json_kv_uint(j, "aborted_txns", as.aborted_txns);
		ls_json_kv_uint(j, "rewinds", as.rewinds);
		ls_json_kv_uint(j, "streams_open", as.streams_open);
		ls_json_kv_uint(j, "streamed_txns", as.streamed_txns);
		ls_json_kv_uint(j, "streamed_changes", as.streamed_changes);
		ls_json_kv_uint(j, "stream_aborts", as.stream_aborts);
		ls_json_kv_uint(j, "queue_bytes", as.queue_bytes);
		ls_json_kv_int(j, "buffer_lag_records",
			       t->reader ? ls_buffer_reader_lag(t->reader) : -1);
		ls_json_object_end(j);
	}
	ls_json_array_end(j);
}

static void status_cb(struct ls_json *j, void *data)
{
	struct ls_pipeline *p = data;
	ls_json_kv_string(j, "pipeline_state", ls_pipeline_state(p));
	ls_json_kv_uint(j, "restarts", p->restarts);
	if (p->has_err)
		ls_json_kv_string(j, "last_error", p->last_err.msg);
	if (p->buf)
		ls_json_kv_string(j, "buffer", ls_buffer_name(p->buf));
	if (p->src && p->sops->status) {
		ls_json_key(j, "source");
		ls_json_object_begin(j);
		p->sops->status(p->src, j);
		ls_json_object_end(j);
	}
	status_snapshot(p, j);
	status_capture(p, j);
	status_targets(p, j);
	ls_drift_status(p->drift, j);
	const struct ls_lag_report *r = ls_pipeline_lag(p);
	if (r != NULL)
		ls_lag_status_json(r, j);
}

int ls_pipeline_register(struct ls_pipeline *p, struct ls_control *ctl)
{
	if (ls_drift_register(p->drift, ctl) < 0)
		return -1;
	p->lagprov.report = lag_report_cb;
	p->lagprov.pause = lag_pause_cb;
	p->lagprov.data = p;
	if (p->metrics == NULL && (p->metrics = ls_metrics_set_new()) == NULL)
		return -1;
	if (ls_control_status_provider(ctl, status_cb, p) < 0 ||
	    ls_lag_register(ctl, p->metrics, &p->lagprov) < 0 ||
	    ls_metrics_set_route(p->metrics, ctl) < 0)
		return -1;
	return 0;
}

struct ls_metrics_set *ls_pipeline_metrics(struct ls_pipeline *p)
{
	return p->metrics;
}

/* ---- teardown, restart, close ------------------------------------------------------------ */

/* Closes the components (source, capture, readers, appliers, buffer) and
 * forgets them; done(p) runs from the loop once all are released. */
struct teardown {
	struct ls_pipeline *p;
	int pending;
	void (*done)(struct ls_pipeline *p);
};

static void teardown_step(void *arg)
{
	struct teardown *t = arg;
	if (--t->pending > 0)
		return;
	struct ls_pipeline *p = t->p;
	for (int i = 0; i < p->ntgts; i++)
		free(p->tgts[i].copies);
	free(p->tgts);
	p->tgts = NULL;
	p->ntgts = 0;
	void (*done)(struct ls_pipeline *) = t->done;
	free(t);
	if (done)
		done(p);
}

static void teardown(struct ls_pipeline *p, void (*done)(struct ls_pipeline *p))
{
	struct teardown *t = calloc(1, sizeof *t);
	if (t == NULL)
		abort();   /* cannot release anything safely without it */
	t->p = p;
	t->done = done;
	t->pending = 1;
	ls_drift_stop(p->drift);
	if (p->src) {
		t->pending++;
		p->sops->close(p->src, teardown_step, t);
		p->src = NULL;
	}
	memset(&p->tables, 0, sizeof p->tables);
	ls_capture_free(p->cap);
	p->cap = NULL;
	p->lead_hold = false;
	for (int i = 0; i < p->ntgts; i++) {
		struct tgt *tg = &p->tgts[i];
		ls_buffer_reader_close(tg->reader);
		tg->reader = NULL;
		if (tg->apply) {
			t->pending++;
			ls_apply_close(tg->apply, teardown_step, t);
			tg->apply = NULL;
		}
	}
	if (p->buf) {
		t->pending++;
		ls_buffer_close(p->buf, teardown_step, t);
		p->buf = NULL;
	}
	p->snapshot_started_ns = p->snapshot_ns = 0;
	teardown_step(t);
}

static void on_restart_timer(uv_timer_t *h)
{
	struct ls_pipeline *p = h->data;
	struct ls_err err;
	if (p->state != P_RESTARTING)
		return;
	p->restarts++;
	ls_notice("restarting the pipeline (restart %llu)", (unsigned long long)p->restarts);
	if (start_all(p, &err) < 0) {
		/* It ran before, so a failing start is taken as passing trouble
		 * (a server still down): try again, later each time. */
		err.retryable = true;
		fail(p, &err);
	}
}

static void restart_later(struct ls_pipeline *p)
{
	if (p->state != P_RESTARTING)
		return;
	uint64_t delay = p->restart_delay_ms;
	p->restart_delay_ms = delay * 2 > RESTART_MAX_MS ? RESTART_MAX_MS : delay * 2;
	ls_notice("pipeline restart in %llu ms", (unsigned long long)delay);
	uv_timer_start(&p->restart_timer, on_restart_timer, delay, 0);
}

struct closer {
	struct ls_pipeline *p;
	int pending;
	void (*cb)(void *);
	void *arg;
};

static void close_done(struct closer *c)
{
	if (--c->pending > 0)
		return;
	void (*cb)(void *) = c->cb;
	void *arg = c->arg;
	ls_lag_ring_free(c->p->ring);
	ls_lag_report_free(c->p->report);
	ls_metrics_set_free(c->p->metrics);
	free(c->p);
	free(c);
	if (cb)
		cb(arg);
}

static void close_handle_done(uv_handle_t *h)
{
	close_done(h->data);
}

static void close_drift_done(void *arg)
{
	close_done(arg);
}

static void close_after_teardown(struct ls_pipeline *p)
{
	struct closer *c = p->closer;
	/* after the teardown: no apply thread calls the drift hook any more */
	c->pending++;
	ls_drift_close(p->drift, close_drift_done, c);
	if (p->cron_started) {
		c->pending += 3;
		p->cron.data = p->restart_timer.data = p->fail_timer.data = c;
		uv_close((uv_handle_t *)&p->cron, close_handle_done);
		uv_close((uv_handle_t *)&p->restart_timer, close_handle_done);
		uv_close((uv_handle_t *)&p->fail_timer, close_handle_done);
	}
	close_done(c);
}

void ls_pipeline_close(struct ls_pipeline *p, void (*cb)(void *arg), void *arg)
{
	if (p == NULL)
		return;
	struct closer *c = calloc(1, sizeof *c);
	if (c == NULL)
		abort();
	c->p = p;
	c->pending = 1;
	c->cb = cb;
	c->arg = arg;
	p->closer = c;
	p->state = P_STOPPING;
	if (p->cron_started) {
		uv_timer_stop(&p->cron);
		uv_timer_stop(&p->restart_timer);
		uv_timer_stop(&p->fail_timer);
	}
	teardown(p, close_after_teardown);
}
