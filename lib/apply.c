#include "apply.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "log.h"

#define DEFAULT_QUEUE_BYTES (16u << 20)
#define MAX_STREAMS 8
/* A group the queue ran dry on commits once this old (batch_ms bounds the
 * rest): a few ms of waiting turn a trickle of small source transactions
 * into one target transaction instead of one each, which folds hot rows and
 * costs the target a commit per group, not per transaction. */
#define IDLE_COMMIT_MS 10
#define RESET_BACKOFF_MIN_MS 200
#define RESET_BACKOFF_MAX_MS 10000

struct item {
	struct item *next;
	int64_t offset;
	uint64_t gen;
	size_t len;
	unsigned char data[];
};

/* What the apply thread remembers of one relation id. */
struct relent {
	uint32_t id;
	struct ls_relation *def;       /* last definition handed to the target */
	uint64_t copied_at;            /* snapshot filter, 0 = none */
	bool filter_known;
};

struct copied {
	char *schema, *name;
	uint64_t seq;
};

/* A streamed transaction open on a target session of its own. */
struct stream {
	uint64_t xid;
	unsigned session;              /* ls_target_opts.session, 1.. */
	struct ls_target *t;
	int64_t first_offset;          /* its FIRST chunk in the buffer */
	uint64_t *subs;                /* subtransactions holding a savepoint, */
	size_t nsubs, capsubs;         /* in the order they were taken */
	struct relent *rels;           /* definitions this session was given */
	size_t nrels, caprels;
};

/* A hooked message waiting for its transaction's commit. */
struct pmsg {
	struct pmsg *next;
	uint32_t len;
	char data[];
};

struct ls_apply {
	uv_loop_t *loop;
	uv_async_t async;
	struct ls_apply_cb cb;
	char *name;
	const struct ls_target_ops *ops;
	struct ls_target *target;
	struct ls_target_opts topts;   /* to open stream sessions */
	size_t max_bytes;
	const struct ls_apply_hook *hook;

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	/* --- under mu --- */
	struct item *head, *tail;
	size_t queue_bytes;
	bool want_drained;             /* push returned 1; on_drained owed */
	bool stop, flush_req;
	uint64_t gen;                  /* bumped by the thread on rewind */
	bool rewind_pending;
	int64_t rewind_offset;
	bool error_pending;
	struct ls_err error;
	bool commit_pending;
	int64_t commit_offset;
	struct ls_pos commit_pos;
	struct ls_apply_stats st;
	/* --- loop only --- */
	uint64_t push_gen;
	void (*close_cb)(void *);
	void *close_arg;
	/* --- apply thread only --- */
	struct ls_arena arena;
	struct relent *rels;
	size_t nrels, caprels;
	struct copied *copied;
	size_t ncopied;
	uint64_t applied_seq;          /* checkpoint, then each end() */
	bool in_txn, skipping;
	struct ls_txn txn;
	struct pmsg *pend, **pend_tail;    /* hooked messages of the open txn */
	struct stream streams[MAX_STREAMS];
	size_t nstreams;
	uint64_t group_since_ns;       /* first record since the last flush, 0 = none */
};

/* ---- relation cache (apply thread) --------------------------------------- */

/* The entry for id in a cache (added empty when missing); NULL on OOM. */
static struct relent *relent_in(struct relent **v, size_t *n, size_t *cap, uint32_t id)
{
	for (size_t i = 0; i < *n; i++)
		if ((*v)[i].id == id)
			return &(*v)[i];
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		struct relent *nv = realloc(*v, c * sizeof *nv);
		if (nv == NULL)
			return NULL;
		*v = nv;
		*cap = c;
	}
	struct relent *e = &(*v)[(*n)++];
	memset(e, 0, sizeof *e);
	e->id = id;
	return e;
}

static struct relent *relent_get(struct ls_apply *a, uint32_t id)
{
	return relent_in(&a->rels, &a->nrels, &a->caprels, id);
}

static uint64_t copied_at_for(struct ls_apply *a, const struct ls_relation *rel)
{
	for (size_t i = 0; i < a->ncopied; i++)
		if (strcmp(a->copied[i].schema, rel->schema) == 0 &&
		    strcmp(a->copied[i].name, rel->name) == 0)
			return a->copied[i].seq;
	return 0;
}

/* Hands rel to the target when it is new or changed; returns the cache
 * entry (with its snapshot filter) or NULL on error. */
static struct relent *see_relation(struct ls_apply *a, const struct ls_relation *rel,
				   struct ls_err *err)
{
	struct relent *e = relent_get(a, rel->id);
	if (e == NULL) {
		ls_err_set(err, false, "target %s: out of memory", a->name);
		return NULL;
	}
	if (e->def == NULL || !ls_relation_equal(e->def, rel)) {
		if (a->ops->relation(a->target, rel, err) < 0)
			return NULL;
		struct ls_relation *d = ls_relation_dup(rel);
		if (d == NULL) {
			ls_err_set(err, false, "target %s: out of memory", a->name);
			return NULL;
		}
		ls_relation_free(e->def);
		e->def = d;
		e->filter_known = false;
	}
	if (!e->filter_known) {
		e->copied_at = copied_at_for(a, rel);
		e->filter_known = true;
	}
	return e;
}

/* ---- posting to the loop ------------------------------------------------------ */

static void on_target_commit(void *ctx, int64_t offset, const struct ls_pos *pos)
{
	struct ls_apply *a = ctx;
	pthread_mutex_lock(&a->mu);
	a->commit_pending = true;
	a->commit_offset = offset;
	a->commit_pos = *pos;
	a->st.committed_offset = offset;
	a->st.committed_seq = pos->seq;
	memcpy(a->st.committed_pos, pos->text, sizeof a->st.committed_pos);
	pthread_mutex_unlock(&a->mu);
	uv_async_send(&a->async);
}

static void post_error(struct ls_apply *a, const struct ls_err *err)
{
	pthread_mutex_lock(&a->mu);
	a->error_pending = true;
	a->error = *err;
	a->stop = true;
	pthread_mutex_unlock(&a->mu);
	uv_async_send(&a->async);
}

/* Runs on the loop: forwards what the thread posted. */
static void async_cb(uv_async_t *h)
{
	struct ls_apply *a = h->data;
	pthread_mutex_lock(&a->mu);
	bool commit = a->commit_pending, rewind = a->rewind_pending;
	bool error = a->error_pending, drained = false;
	int64_t off = a->commit_offset, rw = a->rewind_offset;
	struct ls_pos pos = a->commit_pos;
	struct ls_err err = a->error;
	a->commit_pending = a->rewind_pending = a->error_pending = false;
	if (rewind)
		a->push_gen = a->gen;
	if (a->want_drained && a->queue_bytes <= a->max_bytes / 2) {
		a->want_drained = false;
		drained = true;
	}
	pthread_mutex_unlock(&a->mu);
	if (commit && a->cb.on_committed)
		a->cb.on_committed(a->cb.ctx, off, &pos);
	if (error) {
		if (a->cb.on_error)
			a->cb.on_error(a->cb.ctx, &err);
		return;
	}
	if (rewind && a->cb.on_rewind)
		a->cb.on_rewind(a->cb.ctx, rw);
	if (drained && a->cb.on_drained)
		a->cb.on_drained(a->cb.ctx);
}

/* ---- message hook (apply thread) ---------------------------------------------- */

static void drop_pending(struct ls_apply *a)
{
	for (struct pmsg *m = a->pend, *n; m; m = n) {
		n = m->next;
		free(m);
	}
	a->pend = NULL;
	a->pend_tail = &a->pend;
}

static int hook_message(struct ls_apply *a, const struct ls_change *c, struct ls_err *err)
{
	const struct ls_apply_hook *h = a->hook;
	if (h == NULL || c->msg_prefix == NULL ||
	    strncmp(c->msg_prefix, h->prefix, strlen(h->prefix)) != 0)
		return 0;
	int rc = h->on_message(h->ctx, a, &a->txn, c, err);
	if (rc <= 0)
		return rc;
	struct pmsg *m = malloc(sizeof *m + c->msg_len + 1);
	if (m == NULL)
		return ls_err_set(err, false, "target %s: out of memory", a->name);
	m->next = NULL;
	m->len = c->msg_len;
	memcpy(m->data, c->msg_data, c->msg_len);
	m->data[c->msg_len] = '\0';
	if (a->pend_tail == NULL)
		a->pend_tail = &a->pend;
	*a->pend_tail = m;
	a->pend_tail = &m->next;
	return 0;
}

/* The transaction that carried hooked messages ended: commit it now and
 * hand each message to after_commit. */
static int run_pending(struct ls_apply *a, struct ls_err *err)
{
	if (a->pend == NULL)
		return 0;
	int rc = a->ops->flush(a->target, err);
	for (struct pmsg *m = a->pend; rc == 0 && m; m = m->next)
		rc = a->hook->after_commit(a->hook->ctx, a->target, a->ops, &a->txn.commit,
					   m->data, m->len, err);
	drop_pending(a);
	return rc;
}

static bool same_columns(const struct ls_relation *x, const struct ls_relation *y)
{
	if (x->ncols != y->ncols)
		return false;
	for (uint16_t i = 0; i < x->ncols; i++)
		if (strcmp(x->cols[i].name, y->cols[i].name) != 0)
			return false;
	return true;
}

/* y has every column of x and more. */
static bool adds_columns(const struct ls_relation *x, const struct ls_relation *y)
{
	if (y->ncols <= x->ncols)
		return false;
	for (uint16_t i = 0; i < x->ncols; i++) {
		bool found = false;
		for (uint16_t k = 0; k < y->ncols && !found; k++)
			found = strcmp(x->cols[i].name, y->cols[k].name) == 0;
		if (!found)
			return false;
	}
	return true;
}

int ls_apply_hook_change(struct ls_apply *a, const struct ls_relation *rel,
			 const struct ls_change *ch, struct ls_err *err)
{
	struct relent *e = relent_get(a, rel->id);
	if (e == NULL)
		return ls_err_set(err, false, "target %s: out of memory", a->name);
	if (e->def == NULL && see_relation(a, rel, err) == NULL)
		return -1;
	if (!same_columns(e->def, rel)) {
		/* columns added on the source that no change has carried yet
		 * (a volatile default rewrites rows outside the stream) */
		if (!adds_columns(e->def, rel))
			return 1;
		if (see_relation(a, rel, err) == NULL)
			return -1;
	}
	a->st.changes++;
	return a->ops->change(a->target, e->def, ch, err);
}

/* ---- streamed transactions (apply thread) ------------------------------------- *
 *
 * A streamed transaction (lib/codec.h) is applied on a target session of
 * its own while its source transaction runs; the first session goes on
 * with the transactions that commit before it.  Its rows are locked on the
 * source until it commits, so no transaction committing before it touches
 * them after it did: the first session only has to commit what came before
 * each piece (its rows may be the ones the piece changes next).  The
 * checkpoint offset stays before the oldest open stream's FIRST chunk, so
 * a replay reads every open stream again from its start; its commit's seq
 * tells on the replay whether it was applied already. */

static void stream_counts(struct ls_apply *a)
{
	pthread_mutex_lock(&a->mu);
	a->st.streams_open = a->nstreams;
	pthread_mutex_unlock(&a->mu);
}

/* Rolls the stream's session back (by closing it) and forgets it. */
static void stream_close(struct ls_apply *a, struct stream *s)
{
	a->ops->free(s->t);
	free(s->subs);
	for (size_t i = 0; i < s->nrels; i++)
		ls_relation_free(s->rels[i].def);
	free(s->rels);
	*s = a->streams[--a->nstreams];
	stream_counts(a);
}

static void streams_drop_all(struct ls_apply *a)
{
	while (a->nstreams)
		stream_close(a, &a->streams[a->nstreams - 1]);
}

static struct stream *stream_find(struct ls_apply *a, uint64_t xid)
{
	for (size_t i = 0; i < a->nstreams; i++)
		if (a->streams[i].xid == xid)
			return &a->streams[i];
	return NULL;
}

/* What a checkpoint at offset may record: at most the offset before the
 * FIRST chunk of every open stream but skip (NULL: none skipped). */
static int64_t ckpt_offset(const struct ls_apply *a, int64_t offset, const struct stream *skip)
{
	for (size_t i = 0; i < a->nstreams; i++)
		if (&a->streams[i] != skip && a->streams[i].first_offset - 1 < offset)
			offset = a->streams[i].first_offset - 1;
	return offset;
}

/* The lowest session number (1..) no open stream has. */
static unsigned free_session(const struct ls_apply *a)
{
	bool used[MAX_STREAMS + 2] = { false };
	for (size_t i = 0; i < a->nstreams; i++)
		if (a->streams[i].session <= MAX_STREAMS + 1)
			used[a->streams[i].session] = true;
	unsigned n = 1;
	while (used[n])
		n++;
	return n;
}

static struct stream *stream_open(struct ls_apply *a, uint64_t xid, int64_t offset,
				  struct ls_err *err)
{
	if (a->nstreams == MAX_STREAMS) {
		ls_err_set(err, false, "target %s: more than %d large source transactions "
			   "in progress at once (transaction %" PRIu64 " at buffer offset %lld); "
			   "raise [source] stream_mem or set stream_txns = false", a->name,
			   MAX_STREAMS, xid, (long long)offset);
		return NULL;
	}
	struct ls_target_opts o = a->topts;
	o.session = free_session(a);
	struct ls_target *t = NULL;
	struct ls_txn txn = { .xid = xid };
	if (a->ops->open(&o, &t, err) < 0 || a->ops->begin(t, &txn, err) < 0) {
		a->ops->free(t);
		ls_err_prefix(err, "target %s: session for streamed transaction %" PRIu64,
			      a->name, xid);
		return NULL;
	}
	struct stream *s = &a->streams[a->nstreams++];
	*s = (struct stream){ .xid = xid, .session = o.session, .t = t, .first_offset = offset };
	stream_counts(a);
	return s;
}

/* A subtransaction's first piece takes a savepoint, so its rollback
 * (STREAM ABORT) drops exactly its changes: a savepoint is taken when its
 * first change arrives, and everything after it until its end is its own
 * or its children's. */
static int stream_sub(struct ls_apply *a, struct stream *s, uint64_t subxid,
		      struct ls_err *err)
{
	if (subxid == s->xid)
		return 0;
	for (size_t i = 0; i < s->nsubs; i++)
		if (s->subs[i] == subxid)
			return 0;
	if (s->nsubs == s->capsubs) {
		size_t cap = s->capsubs ? 2 * s->capsubs : 8;
		uint64_t *n = realloc(s->subs, cap * sizeof *n);
		if (n == NULL)
			return ls_err_set(err, false, "target %s: out of memory", a->name);
		s->subs = n;
		s->capsubs = cap;
	}
	if (a->ops->savepoint(s->t, subxid, err) < 0)
		return -1;
	s->subs[s->nsubs++] = subxid;
	return 0;
}

static int stream_change(struct ls_apply *a, struct stream *s, const struct ls_codec_change *cc,
			 struct ls_err *err)
{
	const struct ls_change *c = &cc->c;
	if (c->op == LS_OP_MESSAGE)
		return 0;
	for (uint32_t i = 0; i < cc->nrels; i++) {
		const struct ls_relation *rel = cc->rels[i];
		struct relent *e = relent_in(&s->rels, &s->nrels, &s->caprels, rel->id);
		if (e == NULL)
			return ls_err_set(err, false, "target %s: out of memory", a->name);
		if (e->def != NULL && ls_relation_equal(e->def, rel))
			continue;
		if (a->ops->relation(s->t, rel, err) < 0)
			return -1;
		ls_relation_free(e->def);
		if ((e->def = ls_relation_dup(rel)) == NULL)
			return ls_err_set(err, false, "target %s: out of memory", a->name);
	}
	a->st.changes++;
	a->st.streamed_changes++;
	return a->ops->change(s->t, c->op == LS_OP_TRUNCATE ? NULL : cc->rels[0], c, err);
}

static int stream_commit(struct ls_apply *a, struct stream *s, const struct ls_codec_record *r,
			 int64_t offset, struct ls_err *err)
{
	if (r->pos.seq <= a->applied_seq) {   /* a replay of one applied before */
		a->st.skipped_txns++;
		stream_close(a, s);
		return 0;
	}
	struct ls_txn txn = { .xid = r->xid, .commit = r->pos, .commit_time_us = r->time_us };
	if (a->ops->end(s->t, &txn, ckpt_offset(a, offset, s), err) < 0 ||
	    a->ops->flush(s->t, err) < 0)
		return -1;
	a->applied_seq = r->pos.seq;
	a->st.txns++;
	a->st.streamed_txns++;
	stream_close(a, s);
	return 0;
}

static int process_stream(struct ls_apply *a, const struct ls_codec_record *r, int64_t offset,
			  struct ls_err *err)
{
	if (a->in_txn) {
		/* streams come between transactions: this one was cut short */
		if (!a->skipping && a->ops->abort_txn(a->target, err) < 0)
			return -1;
		a->in_txn = a->skipping = false;
		drop_pending(a);
	}
	if (a->ops->flush(a->target, err) < 0)
		return -1;
	if (a->ops->savepoint == NULL || a->ops->rollback_to == NULL)
		return ls_err_set(err, false, "target %s: buffer offset %lld holds a piece of "
				  "a streamed transaction, which a %s target cannot apply; set "
				  "[source] stream_txns = false where the source runs", a->name,
				  (long long)offset, a->ops->engine);
	struct stream *s = stream_find(a, r->xid);
	if (r->flags & LS_CODEC_FIRST) {
		if (s != NULL) {
			ls_warn("target %s: streamed transaction %" PRIu64 " starts again at "
				"offset %lld; dropping its earlier pieces", a->name, r->xid,
				(long long)offset);
			stream_close(a, s);
		}
		if ((s = stream_open(a, r->xid, offset, err)) == NULL)
			return -1;
	} else if (s == NULL) {
		/* the rest of one abandoned (a STREAM ABORT of xid 0 came) */
		return 0;
	}
	if (r->flags & LS_CODEC_LAST)
		return stream_commit(a, s, r, offset, err);
	if (r->nchanges && stream_sub(a, s, r->subxid, err) < 0)
		return -1;
	for (uint32_t i = 0; i < r->nchanges; i++)
		if (stream_change(a, s, &r->changes[i], err) < 0)
			return -1;
	return 0;
}

static int process_stream_abort(struct ls_apply *a, const struct ls_codec_record *r,
				struct ls_err *err)
{
	if (r->xid == 0) {
		if (a->nstreams)
			ls_info("target %s: the producer restarted; abandoning %zu streamed "
				"transaction(s) in progress", a->name, a->nstreams);
		streams_drop_all(a);
		return 0;
	}
	struct stream *s = stream_find(a, r->xid);
	if (s == NULL)
		return 0;
	a->st.stream_aborts++;
	if (r->subxid == r->xid) {
		stream_close(a, s);
		return 0;
	}
	for (size_t i = 0; i < s->nsubs; i++)
		if (s->subs[i] == r->subxid) {
			s->nsubs = i;   /* it and the ones after it are gone */
			return a->ops->rollback_to(s->t, r->subxid, err);
		}
	return 0;   /* none of its changes reached the session */
}

/* ---- record processing (apply thread) ---------------------------------------- */

static int txn_begin(struct ls_apply *a, const struct ls_codec_record *r, struct ls_err *err)
{
	if (a->in_txn && !a->skipping) {
		ls_warn("target %s: transaction %s was cut short in the buffer; "
			"applying its complete copy that follows", a->name, a->txn.commit.text);
		if (a->ops->abort_txn(a->target, err) < 0)
			return -1;
		a->st.aborted_txns++;
	}
	drop_pending(a);
	a->txn.xid = r->xid;
	a->txn.commit = r->pos;
	a->txn.commit_time_us = r->time_us;
	a->in_txn = true;
	a->skipping = (r->flags & LS_CODEC_NO_COMMIT) == 0 && r->pos.seq <= a->applied_seq;
	if (a->skipping) {
		a->st.skipped_txns++;
		return 0;
	}
	return a->ops->begin(a->target, &a->txn, err);
}

static int apply_change(struct ls_apply *a, const struct ls_codec_change *cc,
			struct ls_err *err)
{
	const struct ls_change *c = &cc->c;
	if (c->op == LS_OP_MESSAGE)
		return hook_message(a, c, err);
	uint64_t seq = a->txn.commit.seq;
	bool all_filtered = cc->nrels > 0;
	for (uint32_t i = 0; i < cc->nrels; i++) {
		struct relent *e = see_relation(a, cc->rels[i], err);
		if (e == NULL)
			return -1;
		if (!(e->copied_at > seq))
			all_filtered = false;
	}
	if (all_filtered) {
		a->st.filtered++;
		return 0;
	}
	a->st.changes++;
	const struct ls_relation *rel = c->op == LS_OP_TRUNCATE ? NULL : cc->rels[0];
	return a->ops->change(a->target, rel, c, err);
}

static int process_txn(struct ls_apply *a, const struct ls_codec_record *r, int64_t offset,
		       struct ls_err *err)
{
	if (r->flags & LS_CODEC_FIRST) {
		if (txn_begin(a, r, err) < 0)
			return -1;
	} else if (!a->in_txn) {
		/* The tail of a transaction whose start precedes our resume point
		 * cannot happen (checkpoints sit on transaction ends); a stray one
		 * is the end of an abandoned partial copy. */
		ls_warn("target %s: skipping a stray chunk %u of transaction %s at offset %lld",
			a->name, r->chunk, r->pos.text, (long long)offset);
		return 0;
	}
	if (!a->skipping)
		for (uint32_t i = 0; i < r->nchanges; i++)
			if (apply_change(a, &r->changes[i], err) < 0)
				return -1;
	if (!(r->flags & LS_CODEC_LAST))
		return 0;
	a->in_txn = false;
	if (a->skipping)
		return 0;
	a->txn.commit = r->pos;
	a->txn.commit_time_us = r->time_us;
	if (a->ops->end(a->target, &a->txn, ckpt_offset(a, offset, NULL), err) < 0)
		return -1;
	a->applied_seq = r->pos.seq;
	a->st.txns++;
	return run_pending(a, err);
}

/* The source was idle at r->pos: commit what is open and report the record
 * as committed, so direct buffers count it durable and lag reads 0. */
static int process_position(struct ls_apply *a, const struct ls_codec_record *r,
			    int64_t offset, struct ls_err *err)
{
	if (a->in_txn)
		return 0;
	if (a->ops->flush(a->target, err) < 0)
		return -1;
	pthread_mutex_lock(&a->mu);
	a->st.position_seq = r->pos.seq;
	a->st.position_time_us = r->time_us;
	a->commit_pending = true;
	a->commit_offset = ckpt_offset(a, offset, NULL);
	a->commit_pos = r->pos;
	pthread_mutex_unlock(&a->mu);
	uv_async_send(&a->async);
	return 0;
}

static int process(struct ls_apply *a, const struct item *it, struct ls_err *err)
{
	struct ls_codec_record r;
	ls_arena_reset(&a->arena);
	if (ls_codec_decode(it->data, it->len, &a->arena, &r, err) < 0)
		return ls_err_prefix(err, "target %s: buffer record at offset %lld",
				     a->name, (long long)it->offset);
	a->st.records++;
	switch (r.type) {
	case LS_CODEC_TXN:
		if (r.flags & LS_CODEC_STREAM)
			return process_stream(a, &r, it->offset, err);
		return process_txn(a, &r, it->offset, err);
	case LS_CODEC_STREAM_ABORT:
		return process_stream_abort(a, &r, err);
	case LS_CODEC_POSITION:
		return process_position(a, &r, it->offset, err);
	default:
		return 0;
	}
}

/* ---- the thread ----------------------------------------------------------------- */

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* After a retryable failure: reconnect until it works or we are stopped,
 * drop everything queued, and ask the loop for records from the checkpoint. */
static int recover(struct ls_apply *a, const struct ls_err *cause)
{
	int backoff = RESET_BACKOFF_MIN_MS;
	struct ls_err err;
	ls_warn("target %s: %s; reconnecting", a->name, cause->msg);
	for (;;) {
		pthread_mutex_lock(&a->mu);
		bool stop = a->stop;
		pthread_mutex_unlock(&a->mu);
		if (stop)
			return -1;
		streams_drop_all(a);
		if (a->ops->reset(a->target, &err) == 0)
			break;
		if (!err.retryable) {
			post_error(a, &err);
			return -1;
		}
		sleep_ms(backoff);   /* the apply thread, never the loop */
		backoff = backoff * 2 > RESET_BACKOFF_MAX_MS ? RESET_BACKOFF_MAX_MS : backoff * 2;
	}
	struct ls_target_ckpt ck;
	a->ops->checkpoint(a->target, &ck);
	a->applied_seq = ck.present ? ck.source_seq : 0;
	a->in_txn = a->skipping = false;
	a->group_since_ns = 0;
	drop_pending(a);
	pthread_mutex_lock(&a->mu);
	for (struct item *it = a->head, *n; it; it = n) {
		n = it->next;
		free(it);
	}
	a->head = a->tail = NULL;
	a->queue_bytes = 0;
	a->gen++;
	a->rewind_pending = true;
	a->rewind_offset = ck.present ? ck.buffer_offset + 1 : 0;
	a->st.rewinds++;
	pthread_mutex_unlock(&a->mu);
	uv_async_send(&a->async);
	ls_notice("target %s: reconnected; resuming from buffer offset %lld",
		  a->name, (long long)(ck.present ? ck.buffer_offset + 1 : 0));
	return 0;
}

static void fail(struct ls_apply *a, struct ls_err *err)
{
	if (err->retryable && recover(a, err) == 0)
		return;
	if (!err->retryable)
		post_error(a, err);
}

/* Waits for a record; returns it (owned) or NULL when the wait ended for a
 * tick, a flush request or stop. */
static struct item *next_item(struct ls_apply *a, int wait_ms, bool *flush, bool *stop)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&a->mu);
	while (a->head == NULL && !a->stop && !a->flush_req)
		if (pthread_cond_timedwait(&a->cond, &a->mu, &until) == ETIMEDOUT)
			break;
	struct item *it = NULL;
	if (!a->stop && a->head) {
		it = a->head;
		a->head = it->next;
		if (a->head == NULL)
			a->tail = NULL;
		a->queue_bytes -= it->len;
	}
	*flush = a->flush_req;
	a->flush_req = false;
	*stop = a->stop;
	bool notify = a->want_drained && a->queue_bytes <= a->max_bytes / 2;
	uint64_t gen = a->gen;
	pthread_mutex_unlock(&a->mu);
	if (notify)
		uv_async_send(&a->async);
	if (it && it->gen != gen) {
		free(it);
		it = NULL;
	}
	return it;
}

static bool queue_empty(struct ls_apply *a)
{
	pthread_mutex_lock(&a->mu);
	bool empty = a->head == NULL;
	pthread_mutex_unlock(&a->mu);
	return empty;
}

/* Group commit only while records wait: when the queue runs dry between
 * source transactions, the group commits IDLE_COMMIT_MS after it began
 * rather than after batch_ms, so a lightly loaded pipeline is not delayed
 * by its own batching, and a busy one still commits in groups.  Whether
 * that time has come; if not, *wait_ms is how long until it does. */
static bool idle_commit_due(struct ls_apply *a, int *wait_ms)
{
	if (a->group_since_ns == 0 || a->in_txn || !queue_empty(a))
		return false;
	int64_t age = (int64_t)((uv_hrtime() - a->group_since_ns) / 1000000);
	if (age >= IDLE_COMMIT_MS)
		return true;
	*wait_ms = (int)(IDLE_COMMIT_MS - age);
	return false;
}

static void *thread_main(void *arg)
{
	struct ls_apply *a = arg;
	int wait_ms = 1000;
	for (;;) {
		bool flush, stop;
		struct ls_err err;
		struct item *it = next_item(a, wait_ms, &flush, &stop);
		if (stop)
			break;
		bool took = it != NULL;   /* it is freed below */
		if (it) {
			int rc = process(a, it, &err);
			free(it);
			if (rc < 0) {
				fail(a, &err);
				continue;
			}
		}
		if (took && a->group_since_ns == 0)
			a->group_since_ns = uv_hrtime();
		int idle_wait = -1;
		if (idle_commit_due(a, &idle_wait))
			flush = true;
		if (flush && !a->in_txn) {
			if (a->ops->flush(a->target, &err) < 0) {
				fail(a, &err);
				continue;
			}
			a->group_since_ns = 0;
		}
		int w = 1000;
		if (!a->in_txn && a->ops->tick(a->target, &w, &err) < 0) {
			fail(a, &err);
			continue;
		}
		wait_ms = w < 0 ? 1000 : (w < 1 ? 1 : w);
		if (idle_wait > 0 && idle_wait < wait_ms)
			wait_ms = idle_wait;
	}
	return NULL;
}

/* ---- loop-side API ------------------------------------------------------------------ */

int ls_apply_new(uv_loop_t *loop, const struct ls_apply_opts *o, const struct ls_apply_cb *cb,
		 struct ls_apply **out, struct ls_err *err)
{
	*out = NULL;
	struct ls_apply *a = calloc(1, sizeof *a);
	if (a == NULL || (a->name = strdup(o->cfg->name)) == NULL) {
		free(a);
		return ls_err_set(err, false, "out of memory");
	}
	a->loop = loop;
	a->cb = *cb;
	a->ops = o->ops;
	a->hook = o->hook;
	a->pend_tail = &a->pend;
	a->max_bytes = o->max_queue_bytes ? o->max_queue_bytes : DEFAULT_QUEUE_BYTES;
	a->st.committed_offset = -1;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cond, NULL);
	ls_arena_init(&a->arena);
	a->topts = (struct ls_target_opts){
		.pipeline = strdup(o->pipeline ? o->pipeline : ""), .cfg = o->cfg,
		.source = o->source, .on_commit = on_target_commit, .ctx = a,
	};
	if (a->topts.pipeline == NULL) {
		free(a->name);
		free(a);
		return ls_err_set(err, false, "out of memory");
	}
	if (a->ops->open(&a->topts, &a->target, err) < 0 ||
	    uv_async_init(loop, &a->async, async_cb) != 0) {
		if (a->target == NULL)
			ls_err_prefix(err, "target %s", a->name);
		else
			ls_err_set(err, false, "target %s: uv_async_init failed", a->name);
		a->ops->free(a->target);
		free((char *)a->topts.pipeline);
		free(a->name);
		free(a);
		return -1;
	}
	a->async.data = a;
	*out = a;
	return 0;
}

struct ls_target *ls_apply_target(struct ls_apply *a)
{
	return a->target;
}

int ls_apply_set_copied_at(struct ls_apply *a, const char *schema, const char *name,
			   uint64_t seq)
{
	struct copied *n = realloc(a->copied, (a->ncopied + 1) * sizeof *n);
	if (n == NULL)
		return -1;
	a->copied = n;
	struct copied *c = &a->copied[a->ncopied];
	c->schema = strdup(schema);
	c->name = strdup(name);
	c->seq = seq;
	if (c->schema == NULL || c->name == NULL) {
		free(c->schema);
		free(c->name);
		return -1;
	}
	a->ncopied++;
	return 0;
}

int ls_apply_start(struct ls_apply *a, struct ls_target_ckpt *ckpt, struct ls_err *err)
{
	a->ops->checkpoint(a->target, ckpt);
	a->applied_seq = ckpt->present ? ckpt->source_seq : 0;
	if (ckpt->present) {
		a->st.committed_offset = ckpt->buffer_offset;
		a->st.committed_seq = ckpt->source_seq;
		memcpy(a->st.committed_pos, ckpt->source_pos, sizeof a->st.committed_pos);
	}
	if (pthread_create(&a->thread, NULL, thread_main, a) != 0)
		return ls_err_set(err, false, "target %s: cannot start apply thread", a->name);
	a->thread_started = true;
	return 0;
}

int ls_apply_push(struct ls_apply *a, int64_t offset, const void *bytes, size_t len)
{
	struct item *it = malloc(sizeof *it + len);
	if (it == NULL)
		return -1;
	it->next = NULL;
	it->offset = offset;
	it->gen = a->push_gen;
	it->len = len;
	memcpy(it->data, bytes, len);
	pthread_mutex_lock(&a->mu);
	if (a->tail)
		a->tail->next = it;
	else
		a->head = it;
	a->tail = it;
	a->queue_bytes += len;
	int full = a->queue_bytes > a->max_bytes;
	if (full)
		a->want_drained = true;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->mu);
	return full;
}

void ls_apply_flush(struct ls_apply *a)
{
	pthread_mutex_lock(&a->mu);
	a->flush_req = true;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->mu);
}

void ls_apply_stats(struct ls_apply *a, struct ls_apply_stats *out)
{
	if (a == NULL) {   /* a target being torn down: nothing to report */
		memset(out, 0, sizeof *out);
		out->committed_offset = -1;
		return;
	}
	pthread_mutex_lock(&a->mu);
	*out = a->st;
	out->queue_bytes = a->queue_bytes;
	out->in_txn = a->in_txn;
	pthread_mutex_unlock(&a->mu);
}

static void free_apply(uv_handle_t *h)
{
	struct ls_apply *a = h->data;
	for (struct item *it = a->head, *n; it; it = n) {
		n = it->next;
		free(it);
	}
	for (size_t i = 0; i < a->nrels; i++)
		ls_relation_free(a->rels[i].def);
	for (size_t i = 0; i < a->ncopied; i++) {
		free(a->copied[i].schema);
		free(a->copied[i].name);
	}
	free(a->copied);
	free(a->rels);
	drop_pending(a);
	streams_drop_all(a);
	a->ops->free(a->target);
	free((char *)a->topts.pipeline);
	ls_arena_free(&a->arena);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cond);
	void (*cb)(void *) = a->close_cb;
	void *arg = a->close_arg;
	free(a->name);
	free(a);
	if (cb)
		cb(arg);
}

void ls_apply_close(struct ls_apply *a, void (*cb)(void *arg), void *arg)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->mu);
	a->stop = true;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->mu);
	/* Joining waits for the statement in hand at most: the thread checks
	 * stop between records. */
	if (a->thread_started)
		pthread_join(a->thread, NULL);
	a->close_cb = cb;
	a->close_arg = arg;
	uv_close((uv_handle_t *)&a->async, free_apply);
}
