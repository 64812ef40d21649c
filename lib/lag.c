#include "lag.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- commit ring ------------------------------------------------------------ */

struct bucket {
	uint64_t last_seq;             /* newest transaction in the bucket */
	int64_t first_us;              /* earliest commit time in the bucket */
};

struct ls_lag_ring {
	struct bucket *b;
	size_t cap, head, len;
	int64_t base, gran;
	uint64_t last_seq;
	bool any;
};

static struct bucket *at(const struct ls_lag_ring *r, size_t i)
{
	return &r->b[(r->head + i) % r->cap];
}

struct ls_lag_ring *ls_lag_ring_new(size_t cap, int64_t granularity_us)
{
	struct ls_lag_ring *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->cap = cap >= 2 ? cap : cap == 1 ? 2 : LS_LAG_RING_DEFAULT_CAP;
	r->base = r->gran = granularity_us > 0 ? granularity_us : LS_LAG_DEFAULT_GRANULARITY_US;
	r->b = calloc(r->cap, sizeof *r->b);
	if (r->b == NULL) {
		free(r);
		return NULL;
	}
	return r;
}

void ls_lag_ring_free(struct ls_lag_ring *r)
{
	if (r == NULL)
		return;
	free(r->b);
	free(r);
}

/* Merges neighbours pairwise, in place (the write index never passes the
 * read index), and doubles the granularity. */
static void compact(struct ls_lag_ring *r)
{
	size_t w = 0;
	for (size_t i = 0; i < r->len; i += 2, w++) {
		struct bucket m = *at(r, i);
		if (i + 1 < r->len) {
			const struct bucket *n = at(r, i + 1);
			m.last_seq = n->last_seq;
			if (n->first_us < m.first_us)
				m.first_us = n->first_us;
		}
		*at(r, w) = m;
	}
	r->len = w;
	r->gran *= 2;
}

void ls_lag_ring_add(struct ls_lag_ring *r, uint64_t seq, int64_t commit_time_us)
{
	if (r->any && seq <= r->last_seq)
		return;
	r->any = true;
	r->last_seq = seq;
	if (r->len > 0) {
		struct bucket *nb = at(r, r->len - 1);
		if (commit_time_us - nb->first_us < r->gran) {
			nb->last_seq = seq;
			if (commit_time_us < nb->first_us)
				nb->first_us = commit_time_us;
			return;
		}
	}
	if (r->len == r->cap)
		compact(r);
	struct bucket *b = at(r, r->len++);
	b->last_seq = seq;
	b->first_us = commit_time_us;
}

bool ls_lag_ring_oldest_after(const struct ls_lag_ring *r, uint64_t applied, int64_t *time_us)
{
	/* buckets are ordered by last_seq: find the first one past applied */
	size_t lo = 0, hi = r->len;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (at(r, mid)->last_seq > applied)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (lo == r->len)
		return false;
	*time_us = at(r, lo)->first_us;
	return true;
}

void ls_lag_ring_release(struct ls_lag_ring *r, uint64_t seq)
{
	while (r->len > 0 && at(r, 0)->last_seq <= seq) {
		r->head = (r->head + 1) % r->cap;
		r->len--;
	}
	if (r->len <= r->cap / 4)
		r->gran = r->base;
}

size_t ls_lag_ring_len(const struct ls_lag_ring *r)
{
	return r->len;
}

int64_t ls_lag_ring_granularity(const struct ls_lag_ring *r)
{
	return r->gran;
}

uint64_t ls_lag_ring_last_seq(const struct ls_lag_ring *r)
{
	return r->any ? r->last_seq : 0;
}

/* ---- clock and arithmetic ------------------------------------------------------ */

void ls_lag_clock_update(struct ls_lag_clock *c, int64_t source_us, uint64_t taken_ns)
{
	if (c->known && taken_ns < c->taken_ns)
		return;
	c->known = true;
	c->source_us = source_us;
	c->taken_ns = taken_ns;
}

int64_t ls_lag_clock_now(const struct ls_lag_clock *c, uint64_t now_ns)
{
	uint64_t elapsed = now_ns > c->taken_ns ? now_ns - c->taken_ns : 0;
	return c->source_us + (int64_t)(elapsed / 1000);
}

uint64_t ls_lag_bytes(uint64_t ahead, uint64_t behind)
{
	return ahead > behind ? ahead - behind : 0;
}

double ls_lag_seconds(const struct ls_lag_ring *r, uint64_t applied,
		      const struct ls_lag_clock *c, uint64_t now_ns)
{
	int64_t t;
	if (r == NULL || !ls_lag_ring_oldest_after(r, applied, &t))
		return 0;
	if (!c->known)
		return -1;
	int64_t age = ls_lag_clock_now(c, now_ns) - t;
	return age > 0 ? age / 1e6 : 0;
}

/* ---- report ------------------------------------------------------------------------ */

void ls_lag_pos_set(struct ls_lag_pos *p, const struct ls_pos *pos)
{
	p->known = true;
	p->seq = pos->seq;
	snprintf(p->text, sizeof p->text, "%s", pos->text);
}

struct ls_lag_report *ls_lag_report_new(int ntargets, int ntables)
{
	struct ls_lag_report *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->targets = calloc((size_t)(ntargets > 0 ? ntargets : 1), sizeof *r->targets);
	r->tables = calloc((size_t)(ntables > 0 ? ntables : 1), sizeof *r->tables);
	if (r->targets == NULL || r->tables == NULL) {
		ls_lag_report_free(r);
		return NULL;
	}
	r->ntargets = ntargets;
	r->ntables = ntables;
	return r;
}

void ls_lag_report_free(struct ls_lag_report *r)
{
	if (r == NULL)
		return;
	free(r->targets);
	free(r->tables);
	free(r);
}

void ls_lag_compute(struct ls_lag_report *r, const struct ls_lag_ring *ring, uint64_t now_ns)
{
	r->now_ns = now_ns;
	/* What was read is certainly written: a stale sample never reads below it. */
	if (r->read.known && (!r->source.known || r->read.seq > r->source.seq))
		r->source = r->read;
	r->source_lag_known = r->source.known && r->read.known;
	r->source_lag_bytes = r->source_lag_known ? ls_lag_bytes(r->source.seq, r->read.seq) : 0;
	r->source_sample_age_s = r->clock.known && now_ns >= r->clock.taken_ns ?
		(now_ns - r->clock.taken_ns) / 1e9 : -1;
	r->source_now_us = r->clock.known ? ls_lag_clock_now(&r->clock, now_ns) : 0;
	r->max_apply_lag_seconds = 0;
	uint64_t last_commit = ring ? ls_lag_ring_last_seq(ring) : 0;
	for (int i = 0; i < r->ntargets; i++) {
		struct ls_lag_target *t = &r->targets[i];
		uint64_t applied = t->applied.known ? t->applied.seq : 0;
		/* A target that applied every commit read is as far as the read
		 * position (its own position names the last commit's start, or
		 * the last idle record it saw). */
		uint64_t upto = r->read.known && applied >= last_commit && r->read.seq > applied ?
			r->read.seq : applied;
		t->bytes_known = r->source.known && t->applied.known;
		t->apply_lag_bytes = t->bytes_known ? ls_lag_bytes(r->source.seq, upto) : 0;
		t->apply_lag_seconds = ls_lag_seconds(ring, applied, &r->clock, now_ns);
		int64_t oldest;
		t->oldest_unapplied_us = ring && ls_lag_ring_oldest_after(ring, applied, &oldest) ?
			oldest : 0;
		if (t->apply_lag_seconds < 0 || r->max_apply_lag_seconds < 0)
			r->max_apply_lag_seconds = -1;
		else if (t->apply_lag_seconds > r->max_apply_lag_seconds)
			r->max_apply_lag_seconds = t->apply_lag_seconds;
	}
}

/* A binlog is purged by age, and only once the server writes another:
 * warn while a fifth of the expiry period is still left. */
static bool binlog_check(struct ls_lag_slot *s)
{
	if (strcmp(s->wal_status, "lost") == 0) {
		s->warning = true;
		snprintf(s->warning_text, sizeof s->warning_text,
			 "%.40s: binlog %.80s holding the resume point was purged; the pipeline "
			 "must be rebuilt", s->name, s->oldest_file);
	} else if (!s->oldest_active && s->expire_s > 0 && s->oldest_age_s >= 0 &&
		   s->oldest_age_s * 5 > s->expire_s * 4) {
		s->warning = true;
		snprintf(s->warning_text, sizeof s->warning_text,
			 "%.40s: binlog %.80s holding the resume point is %" PRId64 " s old; the "
			 "server purges binlogs older than %" PRId64 " s", s->name,
			 s->oldest_file, s->oldest_age_s, s->expire_s);
	}
	return s->warning;
}

bool ls_lag_slot_check(struct ls_lag_slot *s)
{
	s->warning = false;
	s->warning_text[0] = '\0';
	if (!s->known)
		return false;
	if (s->oldest_file[0])
		return binlog_check(s);
	if (strcmp(s->wal_status, "unreserved") == 0 || strcmp(s->wal_status, "lost") == 0) {
		s->warning = true;
		snprintf(s->warning_text, sizeof s->warning_text,
			 "replication slot %s: wal_status is %s (%s)", s->name, s->wal_status,
			 strcmp(s->wal_status, "lost") == 0 ?
			 "the WAL it needs is gone; the pipeline must be rebuilt" :
			 "the WAL it needs will be removed at the next checkpoint");
	} else if (s->max_keep_size > 0 && s->safe_wal_size >= 0 &&
		   s->safe_wal_size < s->max_keep_size / 5) {
		s->warning = true;
		snprintf(s->warning_text, sizeof s->warning_text,
			 "replication slot %s: only %" PRId64 " bytes of WAL left before "
			 "max_slot_wal_keep_size (%" PRId64 ") invalidates it", s->name,
			 s->safe_wal_size, s->max_keep_size);
	}
	return s->warning;
}

/* ---- JSON ------------------------------------------------------------------------------ */

static void iso_time(int64_t us, char *buf, size_t size)
{
	time_t secs = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char day[32];
	strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, size, "%s.%06dZ", day, (int)(us % 1000000));
}

static void kv_pos(struct ls_json *j, const char *key, const struct ls_lag_pos *p)
{
	ls_json_key(j, key);
	if (!p->known) {
		ls_json_null(j);
		return;
	}
	ls_json_object_begin(j);
	ls_json_kv_string(j, "position", p->text);
	ls_json_kv_uint(j, "seq", p->seq);
	ls_json_object_end(j);
}

static void kv_seconds(struct ls_json *j, const char *key, double v)
{
	ls_json_key(j, key);
	if (v < 0)
		ls_json_null(j);
	else
		ls_json_double(j, v);
}

static void kv_time(struct ls_json *j, const char *key, int64_t us)
{
	ls_json_key(j, key);
	if (us == 0) {
		ls_json_null(j);
		return;
	}
	char t[64];
	iso_time(us, t, sizeof t);
	ls_json_string(j, t);
}

static void slot_json(const struct ls_lag_slot *s, struct ls_json *j)
{
	ls_json_key(j, "slot");
	if (!s->known) {
		ls_json_null(j);
		return;
	}
	ls_json_object_begin(j);
	ls_json_kv_string(j, "name", s->name);
	ls_json_kv_string(j, "wal_status", s->wal_status);
	ls_json_kv_int(j, "safe_wal_size", s->safe_wal_size);
	ls_json_kv_int(j, "max_slot_wal_keep_size", s->max_keep_size);
	ls_json_kv_uint(j, "retained_wal_bytes", s->retained_bytes);
	if (s->oldest_file[0]) {
		ls_json_kv_string(j, "oldest_binlog", s->oldest_file);
		ls_json_kv_int(j, "oldest_binlog_age_s", s->oldest_age_s);
		ls_json_kv_int(j, "binlog_expire_logs_seconds", s->expire_s);
		ls_json_kv_bool(j, "oldest_binlog_active", s->oldest_active);
	}
	ls_json_kv_string(j, "warning", s->warning ? s->warning_text : NULL);
	ls_json_object_end(j);
}

static void target_json(const struct ls_lag_target *t, struct ls_json *j)
{
	ls_json_object_begin(j);
	ls_json_kv_string(j, "name", t->name);
	kv_pos(j, "applied", &t->applied);
	ls_json_key(j, "apply_lag_bytes");
	if (t->bytes_known)
		ls_json_uint(j, t->apply_lag_bytes);
	else
		ls_json_null(j);
	kv_seconds(j, "apply_lag_seconds", t->apply_lag_seconds);
	kv_time(j, "oldest_unapplied_commit", t->oldest_unapplied_us);
	ls_json_key(j, "buffer_lag_records");
	if (t->buffer_lag_records >= 0)
		ls_json_int(j, t->buffer_lag_records);
	else
		ls_json_null(j);
	ls_json_kv_int(j, "committed_offset", t->committed_offset);
	ls_json_kv_uint(j, "txns_applied", t->txns_applied);
	ls_json_kv_uint(j, "changes_applied", t->changes_applied);
	ls_json_object_end(j);
}

void ls_lag_report_json(const struct ls_lag_report *r, struct ls_json *j)
{
	ls_json_object_begin(j);
	ls_json_kv_string(j, "pipeline", r->pipeline);
	ls_json_kv_string(j, "state", r->state);
	ls_json_kv_bool(j, "paused", r->paused);
	ls_json_key(j, "source");
	ls_json_object_begin(j);
	kv_pos(j, "current", &r->source);
	kv_pos(j, "read", &r->read);
	kv_pos(j, "durable", &r->durable);
	ls_json_key(j, "source_lag_bytes");
	if (r->source_lag_known)
		ls_json_uint(j, r->source_lag_bytes);
	else
		ls_json_null(j);
	kv_seconds(j, "sample_age_seconds", r->source_sample_age_s);
	ls_json_kv_string(j, "clock", r->clock_from);
	kv_time(j, "clock_now", r->source_now_us);
	ls_json_kv_uint(j, "txns_captured", r->txns_captured);
	ls_json_kv_uint(j, "changes_captured", r->changes_captured);
	ls_json_kv_uint(j, "records_appended", r->records_appended);
	ls_json_kv_uint(j, "bytes_appended", r->bytes_appended);
	slot_json(&r->slot, j);
	ls_json_object_end(j);
	kv_seconds(j, "apply_lag_seconds", r->max_apply_lag_seconds);
	ls_json_key(j, "targets");
	ls_json_array_begin(j);
	for (int i = 0; i < r->ntargets; i++)
		target_json(&r->targets[i], j);
	ls_json_array_end(j);
	ls_json_key(j, "snapshot");
	ls_json_object_begin(j);
	ls_json_key(j, "tables");
	ls_json_array_begin(j);
	for (int i = 0; i < r->ntables; i++) {
		ls_json_object_begin(j);
		ls_json_kv_string(j, "table", r->tables[i].name);
		ls_json_kv_string(j, "state", r->tables[i].state);
		ls_json_kv_uint(j, "rows", r->tables[i].rows);
		ls_json_kv_uint(j, "est_rows", r->tables[i].est_rows);
		ls_json_object_end(j);
	}
	ls_json_array_end(j);
	ls_json_key(j, "seconds");
	ls_json_double(j, r->snapshot_seconds);
	ls_json_object_end(j);
	ls_json_object_end(j);
}

void ls_lag_status_json(const struct ls_lag_report *r, struct ls_json *j)
{
	ls_json_kv_bool(j, "paused", r->paused);
	ls_json_key(j, "lag");
	ls_json_object_begin(j);
	kv_seconds(j, "apply_lag_seconds", r->max_apply_lag_seconds);
	ls_json_key(j, "source_lag_bytes");
	if (r->source_lag_known)
		ls_json_uint(j, r->source_lag_bytes);
	else
		ls_json_null(j);
	ls_json_object_end(j);
	ls_json_key(j, "warnings");
	ls_json_array_begin(j);
	if (r->slot.warning)
		ls_json_string(j, r->slot.warning_text);
	ls_json_array_end(j);
}

/* ---- metrics ----------------------------------------------------------------------------- */

static void stage_sample(struct ls_metrics *m, const struct ls_lag_report *r, const char *stage,
			 const char *target, const struct ls_lag_pos *p)
{
	if (!p->known)
		return;
	const char *l[] = { "pipeline", r->pipeline, "stage", stage, "target", target, NULL };
	ls_metrics_sample_uint(m, "lockstep_position", l, p->seq);
}

static void per_target_uint(struct ls_metrics *m, const struct ls_lag_report *r, const char *name,
			    const char *type, const char *help, size_t field)
{
	ls_metrics_family(m, name, type, help);
	for (int i = 0; i < r->ntargets; i++) {
		const struct ls_lag_target *t = &r->targets[i];
		const char *l[] = { "pipeline", r->pipeline, "target", t->name, NULL };
		uint64_t v;
		memcpy(&v, (const char *)t + field, sizeof v);
		ls_metrics_sample_uint(m, name, l, v);
	}
}

static void pipeline_uint(struct ls_metrics *m, const struct ls_lag_report *r, const char *name,
			  const char *type, const char *help, uint64_t v)
{
	const char *l[] = { "pipeline", r->pipeline, NULL };
	ls_metrics_family(m, name, type, help);
	ls_metrics_sample_uint(m, name, l, v);
}

static void target_lag_metrics(const struct ls_lag_report *r, struct ls_metrics *m)
{
	ls_metrics_family(m, "lockstep_apply_lag_bytes", "gauge",
			  "Source's current position minus what the target committed (bytes of WAL).");
	for (int i = 0; i < r->ntargets; i++) {
		const struct ls_lag_target *t = &r->targets[i];
		const char *l[] = { "pipeline", r->pipeline, "target", t->name, NULL };
		if (t->bytes_known)
			ls_metrics_sample_uint(m, "lockstep_apply_lag_bytes", l, t->apply_lag_bytes);
	}
	ls_metrics_family(m, "lockstep_apply_lag_seconds", "gauge",
			  "Age, on the source's clock, of the oldest committed source transaction "
			  "the target has not applied (0 when none).");
	for (int i = 0; i < r->ntargets; i++) {
		const struct ls_lag_target *t = &r->targets[i];
		const char *l[] = { "pipeline", r->pipeline, "target", t->name, NULL };
		if (t->apply_lag_seconds >= 0)
			ls_metrics_sample(m, "lockstep_apply_lag_seconds", l, t->apply_lag_seconds);
	}
	ls_metrics_family(m, "lockstep_buffer_lag_records", "gauge",
			  "Records in the buffer after the target's reader.");
	for (int i = 0; i < r->ntargets; i++) {
		const struct ls_lag_target *t = &r->targets[i];
		const char *l[] = { "pipeline", r->pipeline, "target", t->name, NULL };
		if (t->buffer_lag_records >= 0)
			ls_metrics_sample_uint(m, "lockstep_buffer_lag_records", l,
					       (uint64_t)t->buffer_lag_records);
	}
	per_target_uint(m, r, "lockstep_changes_applied_total", "counter",
			"Row changes applied to the target since the daemon started.",
			offsetof(struct ls_lag_target, changes_applied));
	per_target_uint(m, r, "lockstep_txns_applied_total", "counter",
			"Source transactions applied to the target since the daemon started.",
			offsetof(struct ls_lag_target, txns_applied));
}

static void slot_metrics(const struct ls_lag_report *r, struct ls_metrics *m)
{
	const struct ls_lag_slot *s = &r->slot;
	if (!s->known)
		return;
	const char *l[] = { "pipeline", r->pipeline, "slot", s->name, NULL };
	ls_metrics_family(m, "lockstep_slot_retained_wal_bytes", "gauge",
			  "WAL the source keeps for the slot (current position - restart_lsn).");
	ls_metrics_sample_uint(m, "lockstep_slot_retained_wal_bytes", l, s->retained_bytes);
	if (s->safe_wal_size >= 0) {
		ls_metrics_family(m, "lockstep_slot_safe_wal_size_bytes", "gauge",
				  "WAL that can still be written before the slot is invalidated.");
		ls_metrics_sample_uint(m, "lockstep_slot_safe_wal_size_bytes", l,
				       (uint64_t)s->safe_wal_size);
	}
	ls_metrics_family(m, "lockstep_slot_wal_status", "gauge",
			  "The slot's wal_status (1 for the current one).");
	const char *ls[] = { "pipeline", r->pipeline, "slot", s->name, "status", s->wal_status,
			     NULL };
	ls_metrics_sample_uint(m, "lockstep_slot_wal_status", ls, 1);
	ls_metrics_family(m, "lockstep_slot_warning", "gauge",
			  "1 when the slot is close to losing the WAL it needs.");
	ls_metrics_sample_uint(m, "lockstep_slot_warning", l, s->warning);
}

void ls_lag_report_metrics(const struct ls_lag_report *r, struct ls_metrics *m)
{
	const char *pl[] = { "pipeline", r->pipeline, "state", r->state, NULL };
	ls_metrics_family(m, "lockstep_pipeline_state", "gauge", "The pipeline's state (1).");
	ls_metrics_sample_uint(m, "lockstep_pipeline_state", pl, 1);
	pipeline_uint(m, r, "lockstep_paused", "gauge", "1 while applying is paused.", r->paused);
	ls_metrics_family(m, "lockstep_position", "gauge",
			  "Position of each stage (PostgreSQL: LSN as a number).");
	stage_sample(m, r, "source", NULL, &r->source);
	stage_sample(m, r, "read", NULL, &r->read);
	stage_sample(m, r, "durable", NULL, &r->durable);
	for (int i = 0; i < r->ntargets; i++)
		stage_sample(m, r, "applied", r->targets[i].name, &r->targets[i].applied);
	if (r->source_lag_known)
		pipeline_uint(m, r, "lockstep_source_lag_bytes", "gauge",
			      "Source's current write position minus what the daemon read.",
			      r->source_lag_bytes);
	if (r->source_sample_age_s >= 0) {
		const char *l[] = { "pipeline", r->pipeline, NULL };
		ls_metrics_family(m, "lockstep_source_sample_age_seconds", "gauge",
				  "Age of the latest sample of the source's position and clock.");
		ls_metrics_sample(m, "lockstep_source_sample_age_seconds", l,
				  r->source_sample_age_s);
	}
	target_lag_metrics(r, m);
	pipeline_uint(m, r, "lockstep_txns_captured_total", "counter",
		      "Source transactions captured since the daemon started.", r->txns_captured);
	pipeline_uint(m, r, "lockstep_changes_captured_total", "counter",
		      "Row changes captured since the daemon started.", r->changes_captured);
	pipeline_uint(m, r, "lockstep_records_appended_total", "counter",
		      "Records appended to the buffer.", r->records_appended);
	pipeline_uint(m, r, "lockstep_bytes_appended_total", "counter",
		      "Bytes appended to the buffer.", r->bytes_appended);
	ls_metrics_family(m, "lockstep_snapshot_rows_copied", "gauge",
			  "Rows copied by the initial snapshot, per table.");
	for (int i = 0; i < r->ntables; i++) {
		const char *l[] = { "pipeline", r->pipeline, "table", r->tables[i].name, NULL };
		ls_metrics_sample_uint(m, "lockstep_snapshot_rows_copied", l, r->tables[i].rows);
	}
	slot_metrics(r, m);
}

/* ---- summary ------------------------------------------------------------------------------ */

static void fmt_bytes(uint64_t b, char *buf, size_t size)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%" PRIu64 " B", b);
	else
		snprintf(buf, size, "%.1f %s", v, unit[u]);
}

void ls_lag_summary(const struct ls_lag_report *r, const char *extra, char *buf, size_t size)
{
	char lag[32] = "unknown", src[32] = "unknown";
	if (r->max_apply_lag_seconds >= 0)
		snprintf(lag, sizeof lag, "%.1f s", r->max_apply_lag_seconds);
	if (r->source_lag_known)
		fmt_bytes(r->source_lag_bytes, src, sizeof src);
	int n = snprintf(buf, size, "%s%s; apply lag %s", r->state,
			 r->paused && strcmp(r->state, "paused") ? " (paused)" : "", lag);
	for (int i = 0; r->ntargets > 1 && i < r->ntargets && n >= 0 && (size_t)n < size; i++) {
		const struct ls_lag_target *t = &r->targets[i];
		n += snprintf(buf + n, size - (size_t)n, "%s%s %.1f s", i ? ", " : " (", t->name,
			      t->apply_lag_seconds >= 0 ? t->apply_lag_seconds : 0);
		if (i == r->ntargets - 1 && (size_t)n < size)
			n += snprintf(buf + n, size - (size_t)n, ")");
	}
	if (n >= 0 && (size_t)n < size)
		n += snprintf(buf + n, size - (size_t)n, "; source lag %s", src);
	if (r->drift_known && n >= 0 && (size_t)n < size)
		n += r->drift_rows ? snprintf(buf + n, size - (size_t)n, "; drift %llu row(s)",
					      (unsigned long long)r->drift_rows)
				   : snprintf(buf + n, size - (size_t)n, "; drift clean");
	if (r->slot.warning && n >= 0 && (size_t)n < size)
		n += snprintf(buf + n, size - (size_t)n, "; WARNING %s", r->slot.warning_text);
	if (extra != NULL && extra[0] && n >= 0 && (size_t)n < size)
		snprintf(buf + n, size - (size_t)n, "; %s", extra);
}

/* ---- routes ---------------------------------------------------------------------------------- */

static int handle_lag(const struct ls_control_request *req, struct ls_control_response *resp,
		      void *data, struct ls_err *err)
{
	const struct ls_lag_provider *p = data;
	(void)req;
	const struct ls_lag_report *r = p->report(p->data);
	if (r == NULL)
		return ls_err_set(err, false, "lag: out of memory");
	ls_lag_report_json(r, ls_control_reply_json(resp));
	return 0;
}

static int pause_or_resume(struct ls_control_response *resp, const struct ls_lag_provider *p,
			   bool pause, struct ls_err *err)
{
	if (p->pause(p->data, pause) < 0)
		return ls_err_set(err, false, "%s failed", pause ? "pause" : "resume");
	struct ls_json *j = ls_control_reply_json(resp);
	ls_json_object_begin(j);
	ls_json_kv_bool(j, "paused", pause);
	ls_json_object_end(j);
	return 0;
}

static int handle_pause(const struct ls_control_request *req, struct ls_control_response *resp,
			void *data, struct ls_err *err)
{
	(void)req;
	return pause_or_resume(resp, data, true, err);
}

static int handle_resume(const struct ls_control_request *req, struct ls_control_response *resp,
			 void *data, struct ls_err *err)
{
	(void)req;
	return pause_or_resume(resp, data, false, err);
}

static void metrics_provider(struct ls_metrics *m, void *data)
{
	const struct ls_lag_provider *p = data;
	const struct ls_lag_report *r = p->report(p->data);
	if (r != NULL)
		ls_lag_report_metrics(r, m);
}

int ls_lag_register(struct ls_control *ctl, struct ls_metrics_set *set,
		    const struct ls_lag_provider *prov)
{
	void *d = (void *)prov;
	if (ls_control_route(ctl, "GET", "/lag", LS_CONTROL_READ, handle_lag, d,
			     "Positions and lag per stage and per target (JSON).") < 0 ||
	    ls_control_route(ctl, "POST", "/pause", LS_CONTROL_ADMIN, handle_pause, d,
			     "Stop applying on every target (capture continues into the "
			     "buffer).") < 0 ||
	    ls_control_route(ctl, "POST", "/resume", LS_CONTROL_ADMIN, handle_resume, d,
			     "Resume applying after /pause.") < 0 ||
	    ls_metrics_set_add(set, metrics_provider, d) < 0)
		return -1;
	return 0;
}
