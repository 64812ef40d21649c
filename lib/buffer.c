#include "buffer.h"

const char *ls_buffer_name(const struct ls_buffer *b)
{
	return b->ops->name;
}

int ls_buffer_open_producer(struct ls_buffer *b,
			    const struct ls_buffer_producer_cb *cb,
			    struct ls_err *err)
{
	return b->ops->open_producer(b, cb, err);
}

int ls_buffer_append(struct ls_buffer *b, const void *rec, size_t len,
		     uint64_t seq, struct ls_err *err)
{
	return b->ops->append(b, rec, len, seq, err);
}

int ls_buffer_open_reader(struct ls_buffer *b, const char *name, int64_t offset,
			  const struct ls_buffer_reader_cb *cb,
			  struct ls_buffer_reader **out, struct ls_err *err)
{
	*out = NULL;
	if (offset < 0)
		return ls_err_set(err, false, "%s buffer: reader %s: offset %lld "
				  "is negative", b->ops->name, name,
				  (long long)offset);
	return b->ops->open_reader(b, name, offset, cb, out, err);
}

void ls_buffer_reader_pause(struct ls_buffer_reader *r)
{
	r->buffer->ops->reader_pause(r);
}

void ls_buffer_reader_resume(struct ls_buffer_reader *r)
{
	r->buffer->ops->reader_resume(r);
}

int ls_buffer_reader_ack(struct ls_buffer_reader *r, int64_t offset,
			 struct ls_err *err)
{
	return r->buffer->ops->reader_ack(r, offset, err);
}

int64_t ls_buffer_reader_lag(const struct ls_buffer_reader *r)
{
	return r->buffer->ops->reader_lag(r);
}

void ls_buffer_reader_close(struct ls_buffer_reader *r)
{
	if (r != NULL)
		r->buffer->ops->reader_close(r);
}

void ls_buffer_stats(const struct ls_buffer *b, struct ls_buffer_stats *out)
{
	b->ops->stats(b, out);
}

void ls_buffer_close(struct ls_buffer *b, ls_buffer_close_cb cb, void *arg)
{
	if (b != NULL)
		b->ops->close(b, cb, arg);
}

/* ---- window ------------------------------------------------------------- */

void ls_buffer_window_init(struct ls_buffer_window *w,
			   const struct ls_buffer_limits *limits)
{
	w->max_records = limits && limits->max_records ?
		limits->max_records : LS_BUFFER_DEFAULT_RECORDS;
	w->max_bytes = limits && limits->max_bytes ?
		limits->max_bytes : LS_BUFFER_DEFAULT_BYTES;
	w->records = 0;
	w->bytes = 0;
	w->want_writable = 0;
}

int ls_buffer_window_admit(struct ls_buffer_window *w, size_t len)
{
	/* An empty window takes anything, so no record is too big to pass. */
	if (w->records > 0 &&
	    (w->records >= w->max_records || w->bytes >= w->max_bytes ||
	     len > w->max_bytes - w->bytes)) {
		w->want_writable = 1;
		return LS_BUFFER_FULL;
	}
	w->records++;
	w->bytes += len;
	return 0;
}

void ls_buffer_window_release(struct ls_buffer_window *w, size_t len)
{
	w->records--;
	w->bytes -= len;
}

int ls_buffer_window_take_writable(struct ls_buffer_window *w)
{
	/* Waiting for half keeps a producer at the edge of the window from
	 * waking for every single durable record. */
	if (!w->want_writable || w->records > w->max_records / 2 ||
	    w->bytes > w->max_bytes / 2)
		return 0;
	w->want_writable = 0;
	return 1;
}
