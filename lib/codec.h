/* codec — lockstep's binary record format: the payload of buffer (Kafka)
 * records.
 *
 * Every record stands alone: a consumer that starts at any record decodes it
 * without having seen the ones before.  Layout (integers are unsigned LEB128
 * varints unless noted; "zz" is a zigzag varint; str is varint length + bytes):
 *
 *   "LSTP" u8 version(=1) u8 type
 *   type 'T' TXN chunk:  u8 flags, chunk index, xid, commit seq, str commit
 *                        text, zz commit time, nrels, relations, nchanges,
 *                        changes
 *   type 'P' POSITION:   seq, str text, zz source time
 *   type 'M' MARKER:     seq, str text, zz source time, str prefix, str payload
 *   type 'A' STREAM ABORT: xid, subxid
 *
 *   relation:  id, str schema, str name, u8 replica identity, ncols, columns
 *   column:    str name, str type name, type id, zz typmod, u8 flags,
 *              u8 has fill (0 or 1), [str fill when 1]
 *
 * A TXN chunk carries the full definition of every relation its changes
 * reference; a change names its relation(s) by index into that table, so a
 * relation whose definition changes inside one transaction (ALTER TABLE then
 * UPDATE) appears twice and each change keeps the definition it was captured
 * with.  A source transaction too large for one chunk spans several records
 * with chunk index 0, 1, ... ; the first has LS_CODEC_FIRST, the last
 * LS_CODEC_LAST.  Nothing is compressed: Kafka compresses batches.
 *
 * Streamed transactions (a source that sends a large transaction while it
 * is still in progress: PostgreSQL's pgoutput streaming) are TXN chunks with
 * LS_CODEC_STREAM, interleaved with other transactions' records: xid names
 * the streamed (top-level) transaction, and a varint subxid follows the
 * commit time: the subtransaction whose changes the chunk holds (== xid for
 * the top level).  Chunk indexes count up across the transaction's pieces;
 * chunk 0 (FIRST) starts it, and a source that sends it again from the start
 * (after a reconnect) starts again at chunk 0.  Every chunk but the LAST one
 * has LS_CODEC_NO_COMMIT; the LAST one is the source's commit.  A STREAM
 * ABORT record says the source rolled back subtransaction subxid of xid
 * (subxid == xid: the whole transaction), or, with xid 0, that the producer
 * restarted: every streamed transaction still open is abandoned (the source
 * sends again whole those that commit).
 *
 * Decoding is pure (no I/O) and safe on any input: every length and count is
 * checked against the bytes left before anything is allocated, so decoding
 * len bytes takes at most LS_CODEC_ARENA_RATIO * len + 64 bytes of arena,
 * whatever the input, and bad input gets an error naming the byte offset.
 */
#ifndef LS_CODEC_H
#define LS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "change.h"
#include "err.h"

#define LS_CODEC_VERSION 1
#define LS_CODEC_DEFAULT_CHUNK (256 * 1024)
#define LS_CODEC_ARENA_RATIO 64    /* see above; the worst case is ~50 */

enum ls_codec_type {
	LS_CODEC_TXN = 'T',
	LS_CODEC_POSITION = 'P',
	LS_CODEC_MARKER = 'M',
	LS_CODEC_STREAM_ABORT = 'A',
};

/* TXN chunk flags */
#define LS_CODEC_FIRST 0x01        /* chunk 0 of its transaction */
#define LS_CODEC_LAST 0x02         /* the transaction's last chunk */
#define LS_CODEC_NO_COMMIT 0x04    /* commit position not known yet (seq 0,
                                      text ""); never on a LAST chunk */
#define LS_CODEC_STREAM 0x08       /* a piece of a streamed transaction */

/* ---- growable output buffer ------------------------------------------------ */

struct ls_codec_buf {
	uint8_t *data;             /* owned */
	size_t len;
	size_t cap;
};

void ls_codec_buf_init(struct ls_codec_buf *b);
void ls_codec_buf_free(struct ls_codec_buf *b);

/* ---- small records ------------------------------------------------------------ */

/* Replace out's contents with a POSITION record: the source advanced to pos
 * with nothing captured (keeps lag honest on idle pipelines).  -1 with err on
 * a position text too long or OOM. */
int ls_codec_encode_position(struct ls_codec_buf *out, const struct ls_pos *pos,
			     int64_t source_time_us, struct ls_err *err);

/* Replace out's contents with a MARKER record (drift markers and the like):
 * prefix is a NUL-terminated string, payload any bytes. */
int ls_codec_encode_marker(struct ls_codec_buf *out, const struct ls_pos *pos,
			   int64_t source_time_us, const char *prefix,
			   const void *payload, uint32_t payload_len, struct ls_err *err);

/* Replace out's contents with a STREAM ABORT record (see above). */
int ls_codec_encode_stream_abort(struct ls_codec_buf *out, uint64_t xid, uint64_t subxid,
				 struct ls_err *err);

/* ---- transaction writer -------------------------------------------------------- */

/* Turns one source transaction at a time into TXN chunk records.
 *
 *   ls_codec_writer_begin(w, xid, &commit_or_NULL, time)
 *   for each change:
 *       ls_codec_writer_add(w, &change, rels, nrels)
 *       if (ls_codec_writer_full(w)) ls_codec_writer_flush(w, false, ...) -> emit
 *   [ls_codec_writer_set_commit(w, &commit, time)]   when not known at begin
 *   ls_codec_writer_flush(w, true, ...) -> emit
 *
 * The writer holds at most the current chunk (twice: pieces and the record
 * being assembled), so memory does not grow with the transaction.  A chunk is
 * "full" once it reaches the limit; since a change is never split, one chunk
 * can exceed the limit by its last change. */
struct ls_codec_writer;

/* chunk_limit in bytes; 0 means LS_CODEC_DEFAULT_CHUNK.  NULL on OOM. */
struct ls_codec_writer *ls_codec_writer_new(size_t chunk_limit);
void ls_codec_writer_free(struct ls_codec_writer *w);      /* NULL is a no-op */

/* Starts a transaction.  commit may be NULL when the commit position is only
 * known at the end (then set it with ls_codec_writer_set_commit before the last
 * flush; earlier chunks carry LS_CODEC_NO_COMMIT).  Discards any unfinished
 * transaction. */
int ls_codec_writer_begin(struct ls_codec_writer *w, uint64_t xid,
			  const struct ls_pos *commit, int64_t commit_time_us,
			  struct ls_err *err);
/* Starts a piece of streamed transaction xid holding changes of its
 * subtransaction subxid, as chunk number chunk (0 = the transaction's
 * first).  Flush it with last=false; its commit is a piece flushed with
 * last=true after ls_codec_writer_set_commit.  Discards any unfinished
 * transaction. */
int ls_codec_writer_begin_stream(struct ls_codec_writer *w, uint64_t xid, uint64_t subxid,
				 uint32_t chunk, struct ls_err *err);
/* The index the next flushed chunk gets. */
uint32_t ls_codec_writer_chunk(const struct ls_codec_writer *w);
int ls_codec_writer_set_commit(struct ls_codec_writer *w, const struct ls_pos *commit,
			       int64_t commit_time_us, struct ls_err *err);

/* Appends one change.  rels are the relations it references, borrowed for
 * the call only: INSERT/UPDATE/DELETE exactly one (with id == c->relid and
 * as many columns as each tuple), TRUNCATE one per c->relids entry in order,
 * MESSAGE none.  The change is validated (op, old_kind, value kinds, counts);
 * on error nothing is added. */
int ls_codec_writer_add(struct ls_codec_writer *w, const struct ls_change *c,
			const struct ls_relation *const *rels, uint32_t nrels,
			struct ls_err *err);

/* True when the current chunk has reached the size limit: flush it. */
bool ls_codec_writer_full(const struct ls_codec_writer *w);
/* Bytes the current chunk would take if flushed now (approximately). */
size_t ls_codec_writer_size(const struct ls_codec_writer *w);
/* Number of changes in the current chunk. */
uint32_t ls_codec_writer_count(const struct ls_codec_writer *w);

/* Encodes the current chunk as a record into *rec and *len (borrowed from w,
 * valid until the next call on w) and starts the next chunk.  last ends the
 * transaction (the record gets LS_CODEC_LAST; the commit position must be
 * known).  A chunk may be empty (e.g. a transaction with no captured change,
 * or a last chunk right after a full one). */
int ls_codec_writer_flush(struct ls_codec_writer *w, bool last, const uint8_t **rec,
			  size_t *len, struct ls_err *err);

/* ---- decoder ------------------------------------------------------------------------ */

struct ls_codec_change {
	struct ls_change c;        /* pointers into the arena; relid/relids filled */
	uint32_t nrels;            /* 1 for I/U/D, nrelids for TRUNCATE, 0 for MESSAGE */
	const struct ls_relation *const *rels;   /* entries point into rec->rels */
};

struct ls_codec_record {
	uint8_t type;              /* enum ls_codec_type */
	struct ls_pos pos;         /* TXN: the commit; POSITION / MARKER: the position */
	int64_t time_us;           /* TXN: commit time; others: source time */
	/* TXN */
	uint8_t flags;             /* LS_CODEC_FIRST | LS_CODEC_LAST | LS_CODEC_NO_COMMIT
	                              | LS_CODEC_STREAM */
	uint32_t chunk;            /* index within the transaction */
	uint64_t xid;              /* TXN, STREAM ABORT */
	uint64_t subxid;           /* STREAM chunks and STREAM ABORT; else == xid */
	uint32_t nrels;
	struct ls_relation *rels;  /* in the arena: never ls_relation_free() them;
	                              ls_relation_dup() to keep one */
	uint32_t nchanges;
	struct ls_codec_change *changes;
	/* MARKER */
	const char *prefix;        /* NUL-terminated */
	uint32_t payload_len;
	const char *payload;
};

/* Decodes one record.  Every pointer in *out points into arena (valid until
 * it is reset) or is NULL; buf is not referenced after the call.  Returns 0,
 * or -1 with err naming the problem and its byte offset; on error *out is
 * unspecified and the arena may hold partial allocations. */
int ls_codec_decode(const void *buf, size_t len, struct ls_arena *arena,
		    struct ls_codec_record *out, struct ls_err *err);

/* Decodes only the fixed part (type, position, time and, for TXN, flags,
 * chunk, xid): cheap, for consumers that skip records they already applied.
 * The fields after those are left zero/NULL and are not validated. */
int ls_codec_decode_header(const void *buf, size_t len, struct ls_codec_record *out,
			   struct ls_err *err);

#endif
