/* capture — the source half of a pipeline: source transactions in, buffer
 * records out, source acknowledged only once durable (contract point 1).
 *
 * Each source transaction becomes one or more TXN records (lib/codec: a
 * chunk of at most chunk_bytes, so a huge transaction streams through with
 * bounded memory).  Records are appended to the buffer in order; when the
 * buffer's in-flight window is full, the record is held, the source paused,
 * and both continue on the buffer's on_writable.  When the buffer reports a
 * transaction's last record durable, the source gets ack() with what that
 * transaction's on_commit gave.  An idle source (on_idle) gets a POSITION
 * record (at most one a second), and once everything appended is durable and
 * no transaction is open, ack_idle(): the slot advances with the server.
 *
 * A source restart (reconnect) abandons a transaction half-written into the
 * buffer; the source sends it again whole, and the apply side drops the
 * partial copy (lib/apply.c).
 *
 * All on the loop thread.
 */
#ifndef LS_CAPTURE_H
#define LS_CAPTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "buffer.h"
#include "err.h"
#include "source.h"

struct ls_capture;

struct ls_capture_opts {
	const struct ls_source_ops *sops;
	struct ls_source *source;          /* borrowed */
	struct ls_buffer *buffer;          /* borrowed */
	size_t chunk_bytes;                /* 0 = codec default */
	/* Take streamed transactions (lib/source.h) when the source sends
	 * them: their pieces become STREAM chunks (lib/codec.h), and every
	 * start and source restart appends a STREAM ABORT of xid 0 so the
	 * apply side abandons what a previous producer left half-streamed. */
	bool streams;
	uint64_t stream_floor;             /* see ls_source_cb.stream_floor */
	void (*on_error)(void *ctx, const struct ls_err *err);   /* fatal */
	/* Optional (lag, lib/lag.h): a committed source transaction was read
	 * (commit true: pos and commit time), or the source reported itself
	 * idle at pos (commit false: the source's time of that report). */
	void (*on_read)(void *ctx, const struct ls_pos *pos, int64_t source_time_us,
			bool commit);
	void *ctx;
};

struct ls_capture_stats {
	uint64_t txns, changes, records, bytes;   /* appended */
	uint64_t durable_records;
	uint64_t read_seq;                 /* last transaction read */
	char read_pos[LS_POS_TEXT_MAX];
	int64_t read_commit_time_us;
	uint64_t durable_ack;              /* last ack given to the source */
	int64_t idle_time_us;              /* source time of the last on_idle */
	bool paused;
	size_t held;                       /* records waiting for the buffer */
};

int ls_capture_new(uv_loop_t *loop, const struct ls_capture_opts *o,
		   struct ls_capture **out, struct ls_err *err)
	__attribute__((warn_unused_result));
/* Opens the buffer's producer and starts the source's stream. */
int ls_capture_start(struct ls_capture *c, struct ls_err *err)
	__attribute__((warn_unused_result));
/* Holds (true) or releases (false) the source for a reason of the caller's
 * (e.g. max_lead); the source reads only when neither the buffer nor the
 * caller holds it. */
void ls_capture_hold(struct ls_capture *c, bool hold);
void ls_capture_stats(const struct ls_capture *c, struct ls_capture_stats *out);
void ls_capture_free(struct ls_capture *c);   /* NULL is a no-op */

#endif
