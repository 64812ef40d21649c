/* pg_cutover — PostgreSQL's side of a cutover (lib/cutover.h), behind
 * struct ls_cutover_ops.  Every call blocks on a synchronous libpq
 * connection and runs on a libuv work thread.
 *
 * Fence (built in): in one transaction, for each application role and each
 * table of the slice, the role's own INSERT/UPDATE/DELETE/TRUNCATE grants
 * are noted (the owner's implicit ones included) and revoked; if the role
 * could still write afterwards (through PUBLIC or a role it is a member of)
 * the transaction rolls back and the check fails.  Then the role's
 * sessions in this database are ended with pg_terminate_backend and waited
 * for.  The undo text is the GRANT statements that give back exactly what
 * was revoked.  Needs: owner of the tables or superuser for REVOKE/GRANT;
 * superuser or pg_signal_backend to end other roles' sessions.
 *
 * Write watch: a TEMPORARY logical slot (pgoutput) made before the fence;
 * after it, pg_logical_slot_peek_binary_changes() decoded with pgoutput
 * (the pipeline's publication) shows every row change of the slice
 * committed at or after the fence position.  The slot goes with the
 * session (and is dropped by watch_stop).
 *
 * Sequences: those owned by the slice's columns (serial: pg_depend 'a';
 * identity: 'i') and any named in [cutover] sequences; last_value and
 * is_called read on one side are set with setval() on the other.
 *
 * Reverse: the publication is made with pg_setup (exactly the slice) and
 * the slot by a replication connection (pg_setup's ls_pgslot_open), so it
 * is consistent from the moment it exists; a stale slot of that name (an
 * earlier attempt) is dropped first.
 *
 * Replication origins (the forward apply's tag) are made by pg_target; the
 * roles lockstep connects with need superuser or EXECUTE on
 * pg_replication_origin_create / pg_replication_origin_session_setup, and
 * REPLICATION for the slots.
 */
#ifndef LS_PG_CUTOVER_H
#define LS_PG_CUTOVER_H

#include "cutover.h"

extern const struct ls_cutover_ops ls_pg_cutover_ops;

#endif
