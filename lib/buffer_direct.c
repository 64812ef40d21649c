#include "buffer_direct.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Records delivered per loop iteration, so a long backlog does not starve the
 * loop's other handles. */
#define PUMP_BUDGET 256

struct entry {
	uint64_t seq;
	size_t len;
	void *bytes;               /* owned until delivered, then NULL */
};

struct direct_reader {
	struct ls_buffer_reader base;
	struct ls_buffer_reader_cb cb;
	char name[64];
	int open, paused;
};

/* The queue is a ring of entries from the oldest not yet durable (head) on.
 * Its first ndelivered entries went to the reader, with offsets head_offset,
 * head_offset + 1, ...; the rest wait for delivery.  A delivered entry pops
 * off when acked >= its offset, and that pop is its on_durable. */
struct direct {
	struct ls_buffer base;
	uv_loop_t *loop;
	uv_idle_t pump;            /* runs while there is something to do */
	struct ls_buffer_producer_cb pcb;
	int producer_open, reader_used, closing;
	struct direct_reader reader;
	struct ls_buffer_window win;
	struct entry *ring;
	size_t cap, head, count, ndelivered;
	int64_t head_offset, acked;
	uint64_t appended, durable;
	ls_buffer_close_cb close_cb;
	void *close_arg;
};

static const struct ls_buffer_ops direct_ops;

static struct direct *of(struct ls_buffer *b)
{
	return (struct direct *)b;
}

static struct entry *at(struct direct *d, size_t i)
{
	return &d->ring[(d->head + i) % d->cap];
}

static int can_pop(const struct direct *d)
{
	return d->ndelivered > 0 && d->head_offset <= d->acked;
}

static int can_deliver(const struct direct *d)
{
	return d->reader.open && !d->reader.paused && d->ndelivered < d->count;
}

static void pump_cb(uv_idle_t *h);

static void kick(struct direct *d)
{
	if (!d->closing)
		uv_idle_start(&d->pump, pump_cb);
}

/* Pops acknowledged records and reports them durable, in order.  Returns -1
 * when a callback closed the buffer. */
static int pump_durable(struct direct *d)
{
	while (can_pop(d)) {
		struct entry *e = at(d, 0);
		uint64_t seq = e->seq;
		d->head = (d->head + 1) % d->cap;
		d->count--;
		d->ndelivered--;
		d->head_offset++;
		d->durable++;
		if (d->pcb.on_durable)
			d->pcb.on_durable(d->pcb.ctx, seq);
		if (d->closing)
			return -1;
	}
	return 0;
}

/* Hands waiting records to the reader, at most PUMP_BUDGET of them.  The
 * callback may pause, ack or close: the loop re-checks after each record. */
static int pump_deliver(struct direct *d)
{
	for (int n = 0; n < PUMP_BUDGET && can_deliver(d); n++) {
		struct entry *e = at(d, d->ndelivered);
		int64_t off = d->head_offset + (int64_t)d->ndelivered;
		void *bytes = e->bytes;
		e->bytes = NULL;
		d->ndelivered++;
		/* The window bounds what this buffer holds: once the reader has a
		 * record, its bytes are the target's to bound (its apply queue).
		 * Counting it until the ack instead would deadlock on a source
		 * transaction larger than the window, which the target cannot
		 * commit before it has seen all of it. */
		ls_buffer_window_release(&d->win, e->len);
		d->reader.cb.on_record(d->reader.cb.ctx, off, bytes, e->len);
		free(bytes);
		if (d->closing)
			return -1;
	}
	return 0;
}

static void pump_cb(uv_idle_t *h)
{
	struct direct *d = h->data;
	if (pump_durable(d) < 0 || pump_deliver(d) < 0)
		return;
	if (ls_buffer_window_take_writable(&d->win) && d->pcb.on_writable) {
		d->pcb.on_writable(d->pcb.ctx);
		if (d->closing)
			return;
	}
	if (!can_pop(d) && !can_deliver(d))
		uv_idle_stop(&d->pump);
}

/* Delivered records wait in the ring (without their bytes) until acked, so
 * the ring can outgrow the window: double it, keeping the order. */
static int grow_ring(struct direct *d)
{
	size_t cap = d->cap * 2;
	struct entry *n = calloc(cap, sizeof *n);
	if (n == NULL)
		return -1;
	for (size_t i = 0; i < d->count; i++)
		n[i] = *at(d, i);
	free(d->ring);
	d->ring = n;
	d->cap = cap;
	d->head = 0;
	return 0;
}

static int direct_open_producer(struct ls_buffer *b,
				const struct ls_buffer_producer_cb *cb,
				struct ls_err *err)
{
	struct direct *d = of(b);
	if (d->producer_open)
		return ls_err_set(err, false, "direct buffer: producer already open");
	d->pcb = *cb;
	d->producer_open = 1;
	return 0;
}

static int direct_append(struct ls_buffer *b, const void *rec, size_t len,
			 uint64_t seq, struct ls_err *err)
{
	struct direct *d = of(b);
	if (d->closing || !d->producer_open)
		return ls_err_set(err, false, "direct buffer: append on a %s buffer",
				  d->closing ? "closing" : "producer-less");
	void *copy = malloc(len ? len : 1);
	if (copy == NULL)
		return ls_err_set(err, true, "direct buffer: out of memory for a "
				  "%zu-byte record", len);
	if (ls_buffer_window_admit(&d->win, len) == LS_BUFFER_FULL) {
		free(copy);
		return LS_BUFFER_FULL;
	}
	if (d->count == d->cap && grow_ring(d) < 0) {
		ls_buffer_window_release(&d->win, len);
		free(copy);
		return ls_err_set(err, true, "direct buffer: out of memory");
	}
	if (len > 0)
		memcpy(copy, rec, len);
	*at(d, d->count) = (struct entry){ .seq = seq, .len = len, .bytes = copy };
	d->count++;
	d->appended++;
	if (can_deliver(d))
		kick(d);
	return 0;
}

static int direct_open_reader(struct ls_buffer *b, const char *name,
			      int64_t offset,
			      const struct ls_buffer_reader_cb *cb,
			      struct ls_buffer_reader **out, struct ls_err *err)
{
	struct direct *d = of(b);
	if (d->closing || d->reader_used)
		return ls_err_set(err, false, "direct buffer: reader %s: %s", name,
				  d->closing ? "buffer is closing" :
				  "a direct buffer has one reader per process");
	struct direct_reader *r = &d->reader;
	r->base.buffer = b;
	r->cb = *cb;
	snprintf(r->name, sizeof r->name, "%s", name);
	r->open = 1;
	r->paused = 0;
	d->reader_used = 1;
	d->head_offset = offset;
	d->acked = offset - 1;
	*out = &r->base;
	kick(d);
	return 0;
}

static struct direct *reader_buffer(const struct ls_buffer_reader *r)
{
	return (struct direct *)r->buffer;
}

static void direct_reader_pause(struct ls_buffer_reader *r)
{
	reader_buffer(r)->reader.paused = 1;
}

static void direct_reader_resume(struct ls_buffer_reader *r)
{
	struct direct *d = reader_buffer(r);
	d->reader.paused = 0;
	kick(d);
}

static int direct_reader_ack(struct ls_buffer_reader *r, int64_t offset,
			     struct ls_err *err)
{
	struct direct *d = reader_buffer(r);
	int64_t last = d->head_offset + (int64_t)d->ndelivered - 1;
	if (offset > last)
		return ls_err_set(err, false, "direct buffer: reader %s acked offset "
				  "%lld, but only up to %lld was delivered",
				  d->reader.name, (long long)offset,
				  (long long)last);
	if (offset > d->acked) {
		d->acked = offset;
		kick(d);
	}
	return 0;
}

static int64_t direct_reader_lag(const struct ls_buffer_reader *r)
{
	const struct direct *d = reader_buffer(r);
	return (int64_t)(d->count - d->ndelivered);
}

static void direct_reader_close(struct ls_buffer_reader *r)
{
	reader_buffer(r)->reader.open = 0;
}

static void direct_stats(const struct ls_buffer *b, struct ls_buffer_stats *out)
{
	const struct direct *d = (const struct direct *)b;
	*out = (struct ls_buffer_stats){
		.appended = d->appended,
		.durable = d->durable,
		.inflight_records = d->win.records,
		.inflight_bytes = d->win.bytes,
	};
}

static void direct_closed(uv_handle_t *h)
{
	struct direct *d = h->data;
	ls_buffer_close_cb cb = d->close_cb;
	void *arg = d->close_arg;
	for (size_t i = 0; i < d->count; i++)
		free(at(d, i)->bytes);
	free(d->ring);
	free(d);
	if (cb)
		cb(arg);
}

/* Nothing in memory can be made durable once the process stops using it, so
 * close drops the queue at once; the source re-reads it after a restart. */
static void direct_close(struct ls_buffer *b, ls_buffer_close_cb cb, void *arg)
{
	struct direct *d = of(b);
	if (d->closing)
		return;
	d->closing = 1;
	d->reader.open = 0;
	d->close_cb = cb;
	d->close_arg = arg;
	uv_idle_stop(&d->pump);
	uv_close((uv_handle_t *)&d->pump, direct_closed);
}

static const struct ls_buffer_ops direct_ops = {
	.name = "direct",
	.open_producer = direct_open_producer,
	.append = direct_append,
	.open_reader = direct_open_reader,
	.reader_pause = direct_reader_pause,
	.reader_resume = direct_reader_resume,
	.reader_ack = direct_reader_ack,
	.reader_lag = direct_reader_lag,
	.reader_close = direct_reader_close,
	.stats = direct_stats,
	.close = direct_close,
};

int ls_buffer_direct_new(uv_loop_t *loop, const struct ls_buffer_limits *limits,
			 struct ls_buffer **out, struct ls_err *err)
{
	*out = NULL;
	struct direct *d = calloc(1, sizeof *d);
	if (d == NULL)
		return ls_err_set(err, true, "direct buffer: out of memory");
	ls_buffer_window_init(&d->win, limits);
	d->cap = d->win.max_records;
	d->ring = calloc(d->cap, sizeof *d->ring);
	if (d->ring == NULL) {
		size_t n = d->cap;
		free(d);
		return ls_err_set(err, true, "direct buffer: out of memory for a "
				  "%zu-record window", n);
	}
	d->base.ops = &direct_ops;
	d->loop = loop;
	d->acked = -1;
	uv_idle_init(loop, &d->pump);
	d->pump.data = d;
	*out = &d->base;
	return 0;
}
