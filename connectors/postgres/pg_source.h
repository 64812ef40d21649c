/* pg_source — the PostgreSQL source behind struct ls_source_ops
 * (lib/source.h), assembled from pg_setup (readiness, tables, publication,
 * slot), pg_snapshot (threaded COPY workers), pg_stream (the replication
 * stream on the loop) and pgoutput (the decoder).
 *
 * prepare (blocking): connects, selects the tables, checks readiness,
 * makes the publication publish exactly them, and opens the slot (creates
 * it with an exported snapshot, or reuses it).
 *
 * snapshot: tables whose plan_copied() is false are copied.  A slot created
 * by prepare: inside its exported snapshot, copied_at_seq = its consistent
 * LSN.  A reused slot (restart after a crash mid-snapshot): inside the
 * snapshot of a TEMPORARY slot created for the purpose on its own
 * replication connection (in libuv's thread pool: creating a slot waits for
 * running transactions), copied_at_seq = that slot's consistent LSN; the
 * temporary slot goes when its connection closes, after the copy.  The
 * pipeline applies the main stream to such a table only from seq >=
 * copied_at_seq, so copy and stream meet exactly (contract point 4).
 * Completion is noticed on the loop by a timer polling the workers.
 *
 * stream: pgoutput protocol 1 from the slot's confirmed position.
 *   Begin    -> on_begin; txn.commit = { final_lsn, "X/X" }
 *   Insert, Update, Delete -> on_change with the table's relation
 *   Truncate -> on_change with one relation per truncated table
 *   Message  -> on_change (op MESSAGE, no relation) when its prefix is
 *               "lockstep" or "lockstep.*" and it is transactional; others are ignored
 *               (non-transactional ones have no commit to order them by)
 *   Commit   -> on_commit(txn, ack = the commit's end LSN)
 *   Origin   -> a transaction from an origin in [source] skip_origins
 *               (default lockstep_<pipeline>_rev: a cutover's reverse
 *               apply, lib/cutover.h) is dropped whole: on_begin is held
 *               back until Origin has had its chance, and nothing of the
 *               transaction is passed on; the next keepalive acks it
 *   Type     -> ignored (debug log)
 *   keepalive outside a transaction -> on_idle(wal end, server time)
 * Relations handed to on_change are the source's own copies of what the
 * stream's Relation messages said (valid until the next Relation message
 * for the same table, i.e. at least for the whole callback), with type
 * names taken from the prepared tables (by column name, when OID and typmod
 * match) or else looked up with format_type() on an ordinary connection:
 * that query BLOCKS the loop, which is accepted because it only happens
 * after DDL on a captured table.  For REPLICA IDENTITY FULL tables that
 * have a primary key, key flags follow the prepared table (pgoutput flags
 * every column of a FULL table).
 * Decoded values live in an arena reset after each message, so memory does
 * not grow with transaction size (contract point 5).
 *
 * A retryable stream failure calls on_restart (a transaction begun but not
 * committed is dropped; the stream reconnects by itself and resends from
 * the last ack); a fatal one calls on_error.  pause()/resume() stop and
 * restart reading the socket (see pg_stream.h); status updates continue.
 *
 * heartbeat/lag_sample: pg_heartbeat (a heartbeat message every interval
 * through the stream, position/clock samples and the slot's WAL status).
 *
 * All calls on the loop thread, except snapshot_progress (any thread).
 */
#ifndef LS_PG_SOURCE_H
#define LS_PG_SOURCE_H

#include "source.h"

extern const struct ls_source_ops ls_pg_source_ops;

/* Tuning for tests and operators, before stream(): status update interval
 * (default 10000 ms) and reconnect backoff bounds (defaults 500 / 30000
 * ms); 0 keeps a default.  s must come from ls_pg_source_ops.open. */
void ls_pg_source_set_intervals(struct ls_source *s, int feedback_ms,
	int reconnect_base_ms, int reconnect_cap_ms);

/* Whether a transaction of replication origin name is skipped under
 * skip_origins list (comma-separated): name is in it, or is the origin of
 * one of a listed origin's streamed-transaction sessions, "<listed>:s<n>"
 * (pg_target.h). */
bool ls_pg_source_origin_skipped(const char *list, const char *name);

/* How often the loop checks whether the snapshot workers finished. */
#define LS_PG_SOURCE_SNAP_POLL_MS 20

#endif
