/* pgoutput — a pure decoder of PostgreSQL's pgoutput logical replication
 * protocol (versions 1 and 2) into lockstep's change model.
 *
 * Input is one pgoutput message: the payload of an XLogData CopyData message
 * after its 'w' header, or one row of pg_logical_slot_*_binary_changes().
 * The decoder does no I/O.  It keeps the state the protocol needs between
 * messages: the relation cache (Relation messages describe the columns that
 * later Insert/Update/Delete messages refer to by id) and whether a streamed
 * transaction block is open (inside one, most messages carry an xid).
 *
 * Every length and count is checked against the bytes that remain; a bad
 * message is rejected with an error naming the message type and the byte
 * offset, and leaves the decoder state as it was.  Memory taken from the
 * input is bounded: per message by the message's size, for the relation
 * cache by LS_PGO_MAX_RELATIONS.
 */
#ifndef LS_PGOUTPUT_H
#define LS_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "change.h"
#include "err.h"

/* Distinct relation ids the cache holds before it refuses new ones. */
#define LS_PGO_MAX_RELATIONS (1u << 20)

/* Microseconds between the Unix epoch and PostgreSQL's (2000-01-01). */
#define LS_PGO_EPOCH_OFFSET_US INT64_C(946684800000000)

/* Event kinds are the protocol's message type bytes. */
enum ls_pgo_kind {
	LS_PGO_BEGIN = 'B',
	LS_PGO_COMMIT = 'C',
	LS_PGO_ORIGIN = 'O',
	LS_PGO_RELATION = 'R',
	LS_PGO_TYPE = 'Y',
	LS_PGO_INSERT = 'I',
	LS_PGO_UPDATE = 'U',
	LS_PGO_DELETE = 'D',
	LS_PGO_TRUNCATE = 'T',
	LS_PGO_MESSAGE = 'M',
	LS_PGO_STREAM_START = 'S',
	LS_PGO_STREAM_STOP = 'E',
	LS_PGO_STREAM_COMMIT = 'c',
	LS_PGO_STREAM_ABORT = 'A',
};

/* What a Relation message did to the cache.  PostgreSQL resends a relation
 * after any invalidation and at the start of each stream block, so SAME is
 * common; CHANGED means the table's shape (name, replica identity, columns,
 * types, key flags) differs from the cached one: DDL happened. */
enum ls_pgo_rel_change {
	LS_PGO_REL_NEW = 1,        /* id not cached before */
	LS_PGO_REL_SAME,           /* identical; cached relation kept as it was */
	LS_PGO_REL_CHANGED,        /* replaced; type names must be set again */
};

/* One decoded message.  Strings and values are borrowed from the arena
 * passed to ls_pgo_decode (valid until it is reset); relation pointers are
 * borrowed from the decoder's cache (valid until the next Relation message
 * for that id replaces it, or ls_pgo_free). */
struct ls_pgo_event {
	uint8_t kind;              /* enum ls_pgo_kind */
	/* Transaction id: Begin, the stream messages, and (protocol 2) every
	 * message inside a stream block, where it is the id of the
	 * subtransaction that made the change (the toplevel xid is the one
	 * Stream Start gave); 0 where the message carries none. */
	uint32_t xid;
	union {
		struct {
			uint64_t final_lsn;
			int64_t commit_time_us;    /* Unix epoch */
		} begin;
		struct {                   /* Commit and Stream Commit */
			uint8_t flags;
			uint64_t commit_lsn;
			uint64_t end_lsn;
			int64_t commit_time_us;    /* Unix epoch */
		} commit;
		struct {
			uint64_t lsn;              /* commit LSN on the origin server */
			const char *name;
		} origin;
		struct {
			const struct ls_relation *rel;
			uint8_t change;            /* enum ls_pgo_rel_change */
		} relation;
		struct {                   /* sent before a Relation using a
					    * non-builtin type (enum, domain, ...) */
			uint32_t oid;      /* the column's type (a domain's own OID) */
			const char *nspname;   /* "" for pg_catalog */
			const char *name;      /* a domain's base type name */
		} type;
		struct {
			bool first_segment;
		} stream_start;
		struct {
			uint32_t subxid;           /* == xid when the whole txn aborted */
		} stream_abort;
		struct {
			bool transactional;
			uint64_t lsn;
		} message;                 /* prefix and content are in change */
	} u;
	/* Insert, Update, Delete, Truncate, Message.  For I/U/D, rel is the
	 * cached relation the tuples follow (column i of a tuple is rel->cols[i]). */
	struct ls_change change;
	const struct ls_relation *rel;
};

struct ls_pgo;

/* A decoder for protocol version proto_version (1 or 2); NULL when out of
 * memory or when the version is not supported. */
struct ls_pgo *ls_pgo_new(unsigned proto_version);
void ls_pgo_free(struct ls_pgo *d);   /* NULL is a no-op */

/* Decodes one message of len bytes into *ev, allocating strings and values
 * from arena.  Returns 0, or -1 with err naming the message type and the
 * byte offset; on failure the decoder state is unchanged (the arena may hold
 * garbage until reset). */
int ls_pgo_decode(struct ls_pgo *d, const void *msg, size_t len,
		  struct ls_arena *arena, struct ls_pgo_event *ev,
		  struct ls_err *err) __attribute__((warn_unused_result));

/* The cached relation with this id, or NULL.  Borrowed, see above. */
const struct ls_relation *ls_pgo_relation(const struct ls_pgo *d, uint32_t relid);

/* Sets the type name of column col of cached relation relid (the connector
 * looks names up in the catalog; pgoutput sends only OIDs).  type_name is
 * copied.  Returns 0, or -1 when the relation or column does not exist or
 * memory runs out. */
int ls_pgo_set_type_name(struct ls_pgo *d, uint32_t relid, uint16_t col,
			 const char *type_name, struct ls_err *err)
	__attribute__((warn_unused_result));

/* True while a stream block (Stream Start .. Stream Stop) is open. */
bool ls_pgo_in_stream(const struct ls_pgo *d);

/* Writes ev as one line of stable text (the golden test format), resolving
 * relation names through d.  Long values are shortened to a prefix, their
 * length and a hash.  Returns 0, or -1 on a write error. */
int ls_pgo_event_print(FILE *f, const struct ls_pgo *d,
		       const struct ls_pgo_event *ev);

#endif
