/* buffer — the durable, ordered log between a source and its targets.
 *
 * A buffer carries opaque records (bytes made by lib/codec) in source commit
 * order: one topic, one partition, total order.  Two implementations sit
 * behind struct ls_buffer_ops: Kafka (connectors/kafka/kbuf.h) and "direct"
 * (buffer_direct.h, in memory, one process).  The daemon creates one of them
 * from [buffer] type and then talks only through the ls_buffer_* calls below.
 *
 * Producer side (the source):
 *   ls_buffer_open_producer() once, then ls_buffer_append(bytes, len, seq) per
 *   record, in source commit order.  seq is the caller's cookie (the source
 *   position's seq); the buffer hands it back through on_durable once the
 *   record is durable — Kafka: delivery report with acks=all from the
 *   idempotent producer; direct: the reader acknowledged (the target
 *   committed).  on_durable fires in append order, exactly once per record,
 *   never for a later record before an earlier one.  Only then may the source
 *   acknowledge the position (contract point 1).
 *
 *   Backpressure: records appended but not yet durable form the in-flight
 *   window, bounded by count and bytes (struct ls_buffer_limits).  When it is
 *   full, append returns LS_BUFFER_FULL and takes nothing: the caller keeps
 *   the record, stops reading its source, and appends the same record again
 *   after on_writable.  on_writable fires once per FULL, when the window has
 *   drained to half of both limits.  A record is always accepted into an
 *   empty window, whatever its size, so one huge record cannot wedge the
 *   pipeline.
 *
 *   A permanent delivery failure (Kafka: retries exhausted, message timeout,
 *   fatal idempotence error) fires on_error once; afterwards no on_durable
 *   fires and append fails.  The caller must stop and restart from its last
 *   durable position (nothing is skipped: everything after it is re-read).
 *
 * Consumer side (one reader per target):
 *   ls_buffer_open_reader(offset) starts delivery at exactly that offset (the
 *   target's checkpoint + 1).  Records arrive through on_record in offset
 *   order with no gaps and no repeats.  The reader pauses and resumes
 *   delivery (the target applies asynchronously); no on_record fires while
 *   paused.  After the target commits up to offset X it calls
 *   ls_buffer_reader_ack(X): the direct buffer turns that into on_durable on
 *   the producer side; Kafka ignores it (the broker holds durability and the
 *   target's checkpoint holds its offset; nothing is committed to Kafka).
 *
 *   If the requested offset no longer exists (retention dropped it), on_error
 *   names the lost range — "topic lockstep.shop partition 0: offsets 0..1233
 *   are gone (log starts at 1234); the target's checkpoint is older than the
 *   topic's retention" — and nothing is delivered after it.
 *
 * Threads and callbacks: every call and every callback happens on the libuv
 * loop thread the buffer was created with.  Callbacks never fire from inside
 * an ls_buffer_* call (they run from the loop), so a callback may call any
 * ls_buffer_* function, including close.  A call that fails never fires a
 * callback for that call.
 *
 * Bytes: append copies the record (the caller's bytes are borrowed for the
 * call only).  on_record's bytes are borrowed and valid until on_record
 * returns; a target that needs them later copies or decodes them there.
 *
 * Offsets: Kafka offsets are the topic's.  Direct offsets live only in the
 * process: they continue from the offset the reader opens at, so a target's
 * checkpoint offsets keep increasing across restarts but name nothing that
 * survives one (see buffer_direct.h for what a restart means there).
 */
#ifndef LS_BUFFER_H
#define LS_BUFFER_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* ls_buffer_append's "window full, try again after on_writable" result. */
#define LS_BUFFER_FULL 1

struct ls_buffer;
struct ls_buffer_reader;

struct ls_buffer_producer_cb {
	void *ctx;                                   /* passed to every callback */
	void (*on_durable)(void *ctx, uint64_t seq); /* in append order */
	void (*on_writable)(void *ctx);              /* after LS_BUFFER_FULL */
	/* Permanent failure; err is borrowed for the call.  May be NULL. */
	void (*on_error)(void *ctx, const struct ls_err *err);
};

struct ls_buffer_reader_cb {
	void *ctx;
	/* bytes borrowed until return; offsets strictly consecutive */
	void (*on_record)(void *ctx, int64_t offset, const void *bytes,
			  size_t len);
	/* Delivery stopped for good (offset gone, fatal error). */
	void (*on_error)(void *ctx, const struct ls_err *err);
};

/* Bounds of the in-flight window (appended, not yet durable).  0 in a field
 * means its default. */
struct ls_buffer_limits {
	size_t max_records;        /* default LS_BUFFER_DEFAULT_RECORDS */
	size_t max_bytes;          /* default LS_BUFFER_DEFAULT_BYTES */
};
#define LS_BUFFER_DEFAULT_RECORDS 10000
#define LS_BUFFER_DEFAULT_BYTES (32u << 20)

struct ls_buffer_stats {
	uint64_t appended;         /* records accepted by append */
	uint64_t durable;          /* on_durable calls made */
	size_t inflight_records;   /* appended - durable */
	size_t inflight_bytes;
};

/* Called once the buffer and its readers are closed and freed. */
typedef void (*ls_buffer_close_cb)(void *arg);

/* ---- the ops table: what an implementation provides ------------------ */

struct ls_buffer_ops {
	const char *name;          /* "kafka", "direct" */
	int (*open_producer)(struct ls_buffer *b,
			     const struct ls_buffer_producer_cb *cb,
			     struct ls_err *err);
	int (*append)(struct ls_buffer *b, const void *rec, size_t len,
		      uint64_t seq, struct ls_err *err);
	int (*open_reader)(struct ls_buffer *b, const char *name,
			   int64_t offset, const struct ls_buffer_reader_cb *cb,
			   struct ls_buffer_reader **out, struct ls_err *err);
	void (*reader_pause)(struct ls_buffer_reader *r);
	void (*reader_resume)(struct ls_buffer_reader *r);
	int (*reader_ack)(struct ls_buffer_reader *r, int64_t offset,
			  struct ls_err *err);
	int64_t (*reader_lag)(const struct ls_buffer_reader *r);
	void (*reader_close)(struct ls_buffer_reader *r);
	void (*stats)(const struct ls_buffer *b, struct ls_buffer_stats *out);
	void (*close)(struct ls_buffer *b, ls_buffer_close_cb cb, void *arg);
};

/* Implementations embed these as their first member; callers treat both
 * as opaque. */
struct ls_buffer {
	const struct ls_buffer_ops *ops;
};
struct ls_buffer_reader {
	struct ls_buffer *buffer;
};

/* ---- the API the daemon uses ------------------------------------------ */

const char *ls_buffer_name(const struct ls_buffer *b);

/* Starts the producer side; cb is copied.  At most once per buffer. */
int ls_buffer_open_producer(struct ls_buffer *b,
			    const struct ls_buffer_producer_cb *cb,
			    struct ls_err *err) __attribute__((warn_unused_result));

/* Appends one record (copied).  Returns 0 when taken, LS_BUFFER_FULL when the
 * window is full (nothing taken; wait for on_writable), negative on error
 * (closed, failed, producer not open). */
int ls_buffer_append(struct ls_buffer *b, const void *rec, size_t len,
		     uint64_t seq, struct ls_err *err)
	__attribute__((warn_unused_result));

/* Opens a reader delivering from offset (>= 0) on.  name (borrowed) labels
 * it in logs and errors, e.g. the target's name.  The reader is owned by the
 * buffer: free it with ls_buffer_reader_close, or let ls_buffer_close do it. */
int ls_buffer_open_reader(struct ls_buffer *b, const char *name, int64_t offset,
			  const struct ls_buffer_reader_cb *cb,
			  struct ls_buffer_reader **out, struct ls_err *err)
	__attribute__((warn_unused_result));

/* Pausing stops on_record before the next record (also when called from
 * inside on_record); resuming restarts delivery from the loop. */
void ls_buffer_reader_pause(struct ls_buffer_reader *r);
void ls_buffer_reader_resume(struct ls_buffer_reader *r);

/* The target committed every record up to and including offset.  Offsets
 * must not exceed the last one delivered. */
int ls_buffer_reader_ack(struct ls_buffer_reader *r, int64_t offset,
			 struct ls_err *err);

/* Records in the buffer after the reader's position (buffer_lag_records);
 * -1 while unknown (Kafka before the first fetch response). */
int64_t ls_buffer_reader_lag(const struct ls_buffer_reader *r);

/* No callback of this reader fires after this returns.  NULL is a no-op. */
void ls_buffer_reader_close(struct ls_buffer_reader *r);

void ls_buffer_stats(const struct ls_buffer *b, struct ls_buffer_stats *out);

/* Stops appends and readers: no callback of the producer or the readers
 * fires after this returns (their owners may be gone).  In-flight records
 * still get the implementation's close timeout to become durable, unreported
 * (the source re-reads them after a restart).  Then releases everything and
 * calls cb(arg) from the loop.  cb may be NULL.  NULL b is a no-op. */
void ls_buffer_close(struct ls_buffer *b, ls_buffer_close_cb cb, void *arg);

/* ---- helpers for implementations ---------------------------------------- */

/* The in-flight window's accounting, shared by the implementations. */
struct ls_buffer_window {
	size_t max_records, max_bytes;
	size_t records, bytes;     /* in flight now */
	int want_writable;         /* a FULL was returned, on_writable owed */
};

void ls_buffer_window_init(struct ls_buffer_window *w,
			   const struct ls_buffer_limits *limits);
/* Takes len bytes into the window and returns 0, or returns LS_BUFFER_FULL
 * (and remembers that on_writable is owed). */
int ls_buffer_window_admit(struct ls_buffer_window *w, size_t len);
void ls_buffer_window_release(struct ls_buffer_window *w, size_t len);
/* True once, when on_writable is owed and the window is at half or less. */
int ls_buffer_window_take_writable(struct ls_buffer_window *w);

#endif
