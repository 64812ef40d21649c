#include "capture.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "log.h"

#define IDLE_RECORD_INTERVAL_US 1000000

/* One appended record waiting for durability; ack != 0 ends a transaction,
 * idle marks a POSITION record. */
struct inflight {
	uint64_t cookie;
	uint64_t ack;
	bool idle;
};

/* A record the buffer refused (window full), kept until on_writable. */
struct held {
	struct held *next;
	struct inflight meta;
	size_t len;
	unsigned char data[];
};

/* The next chunk index of a streamed transaction still open. */
struct sxid {
	uint64_t xid;
	uint32_t chunk;
};

struct ls_capture {
	uv_loop_t *loop;
	struct ls_capture_opts o;
	struct ls_codec_writer *w;
	struct ls_codec_buf posbuf;
	/* streamed transactions */
	bool in_stream, piece_open;
	uint64_t stream_xid, piece_subxid;
	struct sxid *sx;
	size_t nsx, capsx;
	/* ring of in-flight records, in append order */
	struct inflight *ring;
	size_t ring_cap, ring_head, ring_len;
	uint64_t next_cookie;
	struct held *held_head, *held_tail;
	bool buffer_full, hold, paused, in_txn, failed;
	int64_t last_idle_record_us;
	struct ls_capture_stats st;
};

static void fail(struct ls_capture *c, const struct ls_err *err)
{
	if (c->failed)
		return;
	c->failed = true;
	if (c->o.on_error)
		c->o.on_error(c->o.ctx, err);
}

static void fail_msg(struct ls_capture *c, const char *msg)
{
	struct ls_err err;
	ls_err_set(&err, false, "capture: %s", msg);
	fail(c, &err);
}

static void update_pause(struct ls_capture *c)
{
	bool want = c->buffer_full || c->hold;
	if (want == c->paused)
		return;
	c->paused = want;
	c->st.paused = want;
	if (want)
		c->o.sops->pause(c->o.source);
	else
		c->o.sops->resume(c->o.source);
}

static int ring_push(struct ls_capture *c, const struct inflight *m)
{
	if (c->ring_len == c->ring_cap) {
		size_t cap = c->ring_cap ? c->ring_cap * 2 : 1024;
		struct inflight *n = malloc(cap * sizeof *n);
		if (n == NULL)
			return -1;
		for (size_t i = 0; i < c->ring_len; i++)
			n[i] = c->ring[(c->ring_head + i) % c->ring_cap];
		free(c->ring);
		c->ring = n;
		c->ring_cap = cap;
		c->ring_head = 0;
	}
	c->ring[(c->ring_head + c->ring_len) % c->ring_cap] = *m;
	c->ring_len++;
	return 0;
}

static int hold_record(struct ls_capture *c, const struct inflight *m,
		       const void *rec, size_t len)
{
	struct held *h = malloc(sizeof *h + len);
	if (h == NULL)
		return -1;
	h->next = NULL;
	h->meta = *m;
	h->len = len;
	memcpy(h->data, rec, len);
	if (c->held_tail)
		c->held_tail->next = h;
	else
		c->held_head = h;
	c->held_tail = h;
	c->st.held++;
	return 0;
}

/* Appends one record or holds it when the buffer is full (or earlier
 * records are held: order is kept). */
static void emit(struct ls_capture *c, const void *rec, size_t len, uint64_t ack, bool idle)
{
	struct inflight m = { .cookie = c->next_cookie++, .ack = ack, .idle = idle };
	struct ls_err err;
	c->st.records++;
	c->st.bytes += len;
	if (c->held_head == NULL) {
		int rc = ls_buffer_append(c->o.buffer, rec, len, m.cookie, &err);
		if (rc == 0) {
			if (ring_push(c, &m) < 0)
				fail_msg(c, "out of memory");
			return;
		}
		if (rc < 0) {
			fail(c, &err);
			return;
		}
		c->buffer_full = true;
		update_pause(c);
	}
	if (hold_record(c, &m, rec, len) < 0)
		fail_msg(c, "out of memory");
}

static void on_writable(void *ctx)
{
	struct ls_capture *c = ctx;
	struct ls_err err;
	while (c->held_head) {
		struct held *h = c->held_head;
		int rc = ls_buffer_append(c->o.buffer, h->data, h->len, h->meta.cookie, &err);
		if (rc == LS_BUFFER_FULL)
			return;   /* another on_writable follows */
		if (rc < 0) {
			fail(c, &err);
			return;
		}
		if (ring_push(c, &h->meta) < 0)
			fail_msg(c, "out of memory");
		c->held_head = h->next;
		if (c->held_head == NULL)
			c->held_tail = NULL;
		c->st.held--;
		free(h);
	}
	c->buffer_full = false;
	update_pause(c);
}

static void on_durable(void *ctx, uint64_t cookie)
{
	struct ls_capture *c = ctx;
	bool idle_seen = false;
	while (c->ring_len) {
		struct inflight *m = &c->ring[c->ring_head];
		if (m->cookie > cookie)
			break;
		if (m->ack) {
			c->o.sops->ack(c->o.source, m->ack);
			c->st.durable_ack = m->ack;
		}
		idle_seen |= m->idle;
		c->ring_head = (c->ring_head + 1) % c->ring_cap;
		c->ring_len--;
		c->st.durable_records++;
	}
	/* Everything received is durable and nothing is half-read: the source
	 * may report its server position as consumed. */
	if (idle_seen && c->ring_len == 0 && c->held_head == NULL && !c->in_txn &&
	    !c->in_stream)
		c->o.sops->ack_idle(c->o.source);
}

static void on_buffer_error(void *ctx, const struct ls_err *err)
{
	fail(ctx, err);
}

/* ---- source callbacks ------------------------------------------------------- */

static void flush_chunk(struct ls_capture *c, bool last, uint64_t ack)
{
	const uint8_t *rec;
	size_t len;
	struct ls_err err;
	if (ls_codec_writer_flush(c->w, last, &rec, &len, &err) < 0) {
		fail(c, &err);
		return;
	}
	emit(c, rec, len, ack, false);
}

static void read_commit(struct ls_capture *c, const struct ls_txn *txn)
{
	c->st.txns++;
	c->st.read_seq = txn->commit.seq;
	memcpy(c->st.read_pos, txn->commit.text, sizeof c->st.read_pos);
	c->st.read_commit_time_us = txn->commit_time_us;
	if (c->o.on_read)
		c->o.on_read(c->o.ctx, &txn->commit, txn->commit_time_us, true);
}

/* Adds a change to the open chunk; true when the chunk is full now. */
static bool add_change(struct ls_capture *c, const struct ls_change *ch,
		       const struct ls_relation *const *rels, uint32_t nrels)
{
	struct ls_err err;
	if (ls_codec_writer_add(c->w, ch, rels, nrels, &err) < 0) {
		fail(c, &err);
		return false;
	}
	c->st.changes++;
	return ls_codec_writer_full(c->w);
}

static void src_begin(void *ctx, const struct ls_txn *txn)
{
	struct ls_capture *c = ctx;
	struct ls_err err;
	if (c->failed)
		return;
	if (ls_codec_writer_begin(c->w, txn->xid, &txn->commit, txn->commit_time_us, &err) < 0) {
		fail(c, &err);
		return;
	}
	c->in_txn = true;
}

static void src_change(void *ctx, const struct ls_change *ch,
		       const struct ls_relation *const *rels, uint32_t nrels)
{
	struct ls_capture *c = ctx;
	if (c->failed || !c->in_txn)
		return;
	if (add_change(c, ch, rels, nrels))
		flush_chunk(c, false, 0);
}

static void src_commit(void *ctx, const struct ls_txn *txn, uint64_t ack)
{
	struct ls_capture *c = ctx;
	if (c->failed || !c->in_txn)
		return;
	flush_chunk(c, true, ack ? ack : txn->commit.seq);
	c->in_txn = false;
	read_commit(c, txn);
}

/* ---- streamed transactions ---------------------------------------------------- */

static struct sxid *sxid_get(struct ls_capture *c, uint64_t xid, bool add)
{
	for (size_t i = 0; i < c->nsx; i++)
		if (c->sx[i].xid == xid)
			return &c->sx[i];
	if (!add)
		return NULL;
	if (c->nsx == c->capsx) {
		size_t cap = c->capsx ? 2 * c->capsx : 8;
		struct sxid *n = realloc(c->sx, cap * sizeof *n);
		if (n == NULL)
			return NULL;
		c->sx = n;
		c->capsx = cap;
	}
	c->sx[c->nsx] = (struct sxid){ .xid = xid };
	return &c->sx[c->nsx++];
}

static void sxid_drop(struct ls_capture *c, uint64_t xid)
{
	struct sxid *e = sxid_get(c, xid, false);
	if (e)
		*e = c->sx[--c->nsx];
}

/* Emits the open piece of the streamed transaction; its chunk count moves. */
static void flush_piece(struct ls_capture *c, bool last, uint64_t ack)
{
	struct sxid *e = sxid_get(c, c->stream_xid, false);
	c->piece_open = false;
	flush_chunk(c, last, ack);
	if (e)
		e->chunk = ls_codec_writer_chunk(c->w);
}

static int open_piece(struct ls_capture *c, uint64_t xid, uint64_t subxid)
{
	struct ls_err err;
	struct sxid *e = sxid_get(c, xid, true);
	if (e == NULL) {
		fail_msg(c, "out of memory");
		return -1;
	}
	if (ls_codec_writer_begin_stream(c->w, xid, subxid, e->chunk, &err) < 0) {
		fail(c, &err);
		return -1;
	}
	c->stream_xid = xid;
	c->piece_subxid = subxid;
	c->piece_open = true;
	return 0;
}

static void src_stream_begin(void *ctx, uint64_t xid, bool first)
{
	struct ls_capture *c = ctx;
	if (c->failed)
		return;
	struct sxid *e = sxid_get(c, xid, true);
	if (e == NULL) {
		fail_msg(c, "out of memory");
		return;
	}
	if (first)
		e->chunk = 0;
	c->in_stream = true;
	c->stream_xid = xid;
	c->piece_open = false;
}

static void src_stream_change(void *ctx, uint64_t subxid, const struct ls_change *ch,
			      const struct ls_relation *const *rels, uint32_t nrels)
{
	struct ls_capture *c = ctx;
	if (c->failed || !c->in_stream)
		return;
	/* a piece holds one subtransaction's changes: a rollback to its
	 * savepoint must find them apart from the rest */
	if (c->piece_open && c->piece_subxid != subxid)
		flush_piece(c, false, 0);
	if (!c->piece_open && open_piece(c, c->stream_xid, subxid) < 0)
		return;
	if (add_change(c, ch, rels, nrels))
		flush_piece(c, false, 0);
}

static void src_stream_end(void *ctx)
{
	struct ls_capture *c = ctx;
	if (c->failed || !c->in_stream)
		return;
	if (c->piece_open)
		flush_piece(c, false, 0);
	c->in_stream = false;
}

static void emit_abort(struct ls_capture *c, uint64_t xid, uint64_t subxid)
{
	struct ls_err err;
	if (ls_codec_encode_stream_abort(&c->posbuf, xid, subxid, &err) < 0) {
		fail(c, &err);
		return;
	}
	emit(c, c->posbuf.data, c->posbuf.len, 0, false);
}

static void src_stream_abort(void *ctx, uint64_t xid, uint64_t subxid)
{
	struct ls_capture *c = ctx;
	if (c->failed)
		return;
	emit_abort(c, xid, subxid);
	if (subxid == xid)
		sxid_drop(c, xid);
}

static void src_stream_commit(void *ctx, const struct ls_txn *txn, uint64_t ack)
{
	struct ls_capture *c = ctx;
	struct ls_err err;
	if (c->failed || c->in_stream)
		return;
	if (open_piece(c, txn->xid, txn->xid) < 0)
		return;
	if (ls_codec_writer_set_commit(c->w, &txn->commit, txn->commit_time_us, &err) < 0) {
		fail(c, &err);
		return;
	}
	flush_piece(c, true, ack ? ack : txn->commit.seq);
	sxid_drop(c, txn->xid);
	read_commit(c, txn);
}

static void src_idle(void *ctx, const struct ls_pos *pos, int64_t time_us)
{
	struct ls_capture *c = ctx;
	struct ls_err err;
	if (c->failed || c->in_txn || c->in_stream)
		return;
	c->st.idle_time_us = time_us;
	if (c->o.on_read)
		c->o.on_read(c->o.ctx, pos, time_us, false);
	/* Nothing in flight: everything received is durable already. */
	if (c->ring_len == 0 && c->held_head == NULL)
		c->o.sops->ack_idle(c->o.source);
	/* The POSITION record lets the apply side see the idle position too
	 * (apply lag 0 on an idle pipeline). */
	if (time_us - c->last_idle_record_us < IDLE_RECORD_INTERVAL_US)
		return;
	c->last_idle_record_us = time_us;
	if (ls_codec_encode_position(&c->posbuf, pos, time_us, &err) < 0) {
		fail(c, &err);
		return;
	}
	emit(c, c->posbuf.data, c->posbuf.len, 0, true);
}

static void src_restart(void *ctx)
{
	struct ls_capture *c = ctx;
	/* The half-written transaction is abandoned; the next begin discards
	 * the writer's state and the apply side drops the partial copy. */
	c->in_txn = false;
	/* So is every streamed one: the source sends again those that commit,
	 * and the apply side must not keep the others open for ever. */
	c->in_stream = c->piece_open = false;
	c->nsx = 0;
	if (c->o.streams && !c->failed)
		emit_abort(c, 0, 0);
}

static void src_error(void *ctx, const struct ls_err *err)
{
	fail(ctx, err);
}

/* ---- API ------------------------------------------------------------------------ */

int ls_capture_new(uv_loop_t *loop, const struct ls_capture_opts *o,
		   struct ls_capture **out, struct ls_err *err)
{
	*out = NULL;
	struct ls_capture *c = calloc(1, sizeof *c);
	if (c == NULL)
		return ls_err_set(err, false, "out of memory");
	c->loop = loop;
	c->o = *o;
	c->next_cookie = 1;
	c->w = ls_codec_writer_new(o->chunk_bytes);
	if (c->w == NULL) {
		free(c);
		return ls_err_set(err, false, "out of memory");
	}
	ls_codec_buf_init(&c->posbuf);
	*out = c;
	return 0;
}

int ls_capture_start(struct ls_capture *c, struct ls_err *err)
{
	struct ls_buffer_producer_cb pcb = {
		.ctx = c, .on_durable = on_durable, .on_writable = on_writable,
		.on_error = on_buffer_error,
	};
	if (ls_buffer_open_producer(c->o.buffer, &pcb, err) < 0)
		return -1;
	struct ls_source_cb scb = {
		.ctx = c, .on_begin = src_begin, .on_change = src_change,
		.on_commit = src_commit, .on_idle = src_idle,
		.on_restart = src_restart, .on_error = src_error,
	};
	if (c->o.streams) {
		scb.on_stream_begin = src_stream_begin;
		scb.on_stream_change = src_stream_change;
		scb.on_stream_end = src_stream_end;
		scb.on_stream_abort = src_stream_abort;
		scb.on_stream_commit = src_stream_commit;
		scb.stream_floor = c->o.stream_floor;
		/* A producer that stopped mid-stream left pieces in the buffer
		 * whose transaction may never come again (it aborted meanwhile). */
		emit_abort(c, 0, 0);
		if (c->failed)
			return ls_err_set(err, false, "capture: cannot start");
	}
	return c->o.sops->stream(c->o.source, &scb, err);
}

void ls_capture_hold(struct ls_capture *c, bool hold)
{
	c->hold = hold;
	update_pause(c);
}

void ls_capture_stats(const struct ls_capture *c, struct ls_capture_stats *out)
{
	*out = c->st;
}

void ls_capture_free(struct ls_capture *c)
{
	if (c == NULL)
		return;
	for (struct held *h = c->held_head, *n; h; h = n) {
		n = h->next;
		free(h);
	}
	free(c->ring);
	free(c->sx);
	ls_codec_writer_free(c->w);
	ls_codec_buf_free(&c->posbuf);
	free(c);
}
