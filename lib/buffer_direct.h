/* buffer_direct — the in-memory buffer, for a pipeline in one process.
 *
 * The same contract as buffer.h, without Kafka: a bounded queue between the
 * source and a single reader (one target).  A record becomes durable when the
 * reader acknowledges it (ls_buffer_reader_ack after the target's commit), so
 * the source confirms a position only once the target holds the change.
 *
 * Memory: a record's bytes are held from append until they have been passed
 * to on_record, then freed; the window (limits) counts a record from append
 * until it is delivered.  What the target has taken but not committed is the
 * target's to bound (lib/apply's queue); counting it here until the ack would
 * deadlock on a transaction larger than the window.
 *
 * Offsets are a counter of this process: the first record delivered gets the
 * offset the reader opened at, the next one that plus one, and so on.  They
 * name nothing durable.  On restart nothing of the queue survives, and
 * nothing needs to: the source resumes from its own acknowledged position
 * (the PostgreSQL slot's confirmed_flush_lsn), which only moved for records
 * the target committed, so every record that was appended but not committed
 * is read again from the source.  The target opens the reader at its
 * checkpoint offset + 1, keeping its checkpoint offsets increasing, and skips
 * any record whose source position it has already applied.
 *
 * Only one reader may be opened per buffer, once.
 */
#ifndef LS_BUFFER_DIRECT_H
#define LS_BUFFER_DIRECT_H

#include <uv.h>

#include "buffer.h"
#include "err.h"

/* Creates a direct buffer on loop.  limits may be NULL (defaults).  Free it
 * with ls_buffer_close. */
int ls_buffer_direct_new(uv_loop_t *loop, const struct ls_buffer_limits *limits,
			 struct ls_buffer **out, struct ls_err *err)
	__attribute__((warn_unused_result));

#endif
