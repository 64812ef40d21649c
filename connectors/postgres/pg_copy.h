/* pg_copy — one snapshot copy session into a PostgreSQL target.
 *
 * A session is a connection of its own, used by one snapshot worker thread.
 * Each table's copy is one target transaction:
 *   BEGIN; TRUNCATE the table (DELETE when a foreign key references it);
 *   COPY "schema"."table" ("c1", ...) FROM STDIN [FREEZE]; ...data...;
 *   INSERT/UPDATE its row in lockstep.snapshot; COMMIT
 * so after any crash a table is either fully copied and recorded, or
 * untouched by this copy (and copied again).  The target table is emptied
 * first because a re-copy must replace whatever is there.
 *
 * Input data is PostgreSQL COPY text format, columns in the relation's
 * order (what the source's COPY TO produced).  The session reads it under
 * pg_session.h's settings (UTF8, DateStyle ISO, MDY, IntervalStyle
 * postgres, ...), so the source's COPY must be produced under the same.
 *
 * lockstep.snapshot must exist (pg_target creates it with the checkpoint
 * table).  Sessions are independent: several may run at once, each on its
 * own thread.
 */
#ifndef LS_PG_COPY_H
#define LS_PG_COPY_H

#include <stdint.h>
#include <stddef.h>

#include "change.h"
#include "err.h"

struct ls_pgcopy_opts {
	const char *pipeline;      /* lockstep.snapshot key; borrowed, copied */
	const char *target;        /* target name; borrowed, copied */
	const char *conninfo;      /* secret, never logged; borrowed, copied */
};

struct ls_pgcopy;

/* Connects and sets the session up.  On failure *out is NULL. */
int ls_pgcopy_open(const struct ls_pgcopy_opts *o, struct ls_pgcopy **out,
		   struct ls_err *err) __attribute__((warn_unused_result));
/* Rolls back an open table and closes the connection.  NULL is a no-op. */
void ls_pgcopy_close(struct ls_pgcopy *c);

/* Starts rel's copy (rel borrowed, read during the call; the table must
 * exist with rel's columns).  Fails when a table is already open. */
int ls_pgcopy_table_begin(struct ls_pgcopy *c, const struct ls_relation *rel,
			  struct ls_err *err) __attribute__((warn_unused_result));
/* Sends COPY text data (any split, not necessarily whole rows). */
int ls_pgcopy_data(struct ls_pgcopy *c, const char *data, size_t len,
		   struct ls_err *err) __attribute__((warn_unused_result));
/* Finishes the COPY, checks the server stored exactly `rows` rows, records
 * the table as copied at copied_at_seq and commits. */
int ls_pgcopy_table_end(struct ls_pgcopy *c, const struct ls_relation *rel, uint64_t rows,
			uint64_t copied_at_seq, struct ls_err *err)
	__attribute__((warn_unused_result));

/* Any failure rolls the open table back and leaves the session unusable
 * (later calls fail); close it and open another.  err->retryable is true for
 * connection loss and the server's transient errors, false for bad data. */

#endif
