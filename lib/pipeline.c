#include "pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "buffer_direct.h"
#include "capture.h"
#include "json.h"
#include "log.h"

#define CRON_MS 100

enum pstate { P_STARTING, P_SNAPSHOT, P_STREAMING, P_STOPPING, P_FAILED };
static const char *const state_names[] = {
	"starting", "snapshot", "streaming", "stopping", "failed",
};

struct tgt {
	struct ls_pipeline *p;
	const struct ls_config_target *cfg;
	const struct ls_target_ops *ops;
	struct ls_apply *apply;
	struct ls_buffer_reader *reader;
	bool reader_paused;
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
	uv_timer_t cron;
	bool cron_started, lead_hold;
	uint64_t snapshot_started_ns, snapshot_ns;
	/* close */
	int closing;                       /* outstanding close callbacks */
	void (*close_cb)(void *);
	void *close_arg;
};

static void fail(struct ls_pipeline *p, const struct ls_err *err)
{
	if (p->state == P_FAILED || p->state == P_STOPPING)
		return;
	ls_error("%s", err->msg);
	p->state = P_FAILED;
	if (p->on_failed)
		p->on_failed(p->ctx, err);
}

/* ---- apply side ----------------------------------------------------------------- */

static void on_record(void *ctx, int64_t offset, const void *bytes, size_t len)
{
	struct tgt *t = ctx;
	t->read_bytes += len;
	int rc = ls_apply_push(t->apply, offset, bytes, len);
	if (rc < 0) {
		struct ls_err err;
		ls_err_set(&err, false, "target %s: out of memory queueing a record", t->cfg->name);
		fail(t->p, &err);
		return;
	}
	if (rc == 1 && !t->reader_paused) {
		t->reader_paused = true;
		ls_buffer_reader_pause(t->reader);
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
	t->reader_paused = false;
	return ls_buffer_open_reader(t->p->buf, t->cfg->name, offset, &cb, &t->reader, err);
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
		ls_buffer_reader_resume(t->reader);
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

static void on_cron(uv_timer_t *h)
{
	check_lead(h->data);
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

static int start_streaming(struct ls_pipeline *p, struct ls_err *err)
{
	p->state = P_STREAMING;
	if (start_targets(p, err) < 0)
		return -1;
	if (p->src == NULL)
		return 0;
	struct ls_capture_opts co = {
		.sops = p->sops, .source = p->src, .buffer = p->buf,
		.on_error = on_capture_error, .ctx = p,
	};
	if (ls_capture_new(p->loop, &co, &p->cap, err) < 0)
		return -1;
	return ls_capture_start(p->cap, err);
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
		struct ls_apply_opts ao = { .pipeline = p->cfg->name, .cfg = t->cfg, .ops = t->ops };
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

int ls_pipeline_start(struct ls_pipeline *p, struct ls_err *err)
{
	if (open_buffer(p, err) < 0 || open_targets(p, err) < 0)
		return -1;
	uv_timer_init(p->loop, &p->cron);
	p->cron.data = p;
	uv_timer_start(&p->cron, on_cron, CRON_MS, CRON_MS);
	p->cron_started = true;
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
	*out = p;
	return 0;
}

const char *ls_pipeline_state(const struct ls_pipeline *p)
{
	return state_names[p->state];
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
}

int ls_pipeline_register(struct ls_pipeline *p, struct ls_control *ctl)
{
	return ls_control_status_provider(ctl, status_cb, p);
}

/* ---- close -------------------------------------------------------------------------------------------- */

static void close_step_done(void *arg)
{
	struct ls_pipeline *p = arg;
	if (--p->closing > 0)
		return;
	for (int i = 0; i < p->ntgts; i++)
		free(p->tgts[i].copies);
	free(p->tgts);
	void (*cb)(void *) = p->close_cb;
	void *a = p->close_arg;
	free(p);
	if (cb)
		cb(a);
}

static void close_handle_done(uv_handle_t *h)
{
	close_step_done(h->data);
}

void ls_pipeline_close(struct ls_pipeline *p, void (*cb)(void *arg), void *arg)
{
	if (p == NULL)
		return;
	p->state = P_STOPPING;
	p->close_cb = cb;
	p->close_arg = arg;
	p->closing = 1;   /* released at the end of this function */
	if (p->cron_started) {
		p->closing++;
		uv_close((uv_handle_t *)&p->cron, close_handle_done);
	}
	if (p->src) {
		p->closing++;
		p->sops->close(p->src, close_step_done, p);
	}
	ls_capture_free(p->cap);
	p->cap = NULL;
	for (int i = 0; i < p->ntgts; i++) {
		struct tgt *t = &p->tgts[i];
		ls_buffer_reader_close(t->reader);
		t->reader = NULL;
		if (t->apply) {
			p->closing++;
			ls_apply_close(t->apply, close_step_done, p);
		}
	}
	if (p->buf) {
		p->closing++;
		ls_buffer_close(p->buf, close_step_done, p);
	}
	close_step_done(p);
}
