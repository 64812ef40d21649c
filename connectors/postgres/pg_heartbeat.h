/* pg_heartbeat — the PostgreSQL source's heartbeat and slot watch, for lag.
 *
 * Every interval_ms, on an ordinary connection of its own:
 *
 *   SELECT pg_logical_emit_message(true, 'lockstep.heartbeat',
 *                                  '<clock_timestamp()> <pg_current_wal_lsn()>'),
 *          pg_current_wal_lsn(), clock_timestamp()     -- one sample, one statement
 *
 * The message is a tiny transaction in the source's log: it flows through
 * the slot, capture, buffer and apply like any other (apply ignores its
 * content), so an idle pipeline still moves its positions, its slot
 * advances, and the apply side learns the source time of what it applied.
 * The query's result is the sample of the server's write position and
 * clock that lag is measured against (lib/lag.h), stamped with the local
 * monotonic time it was taken at.  When the role may not emit messages
 * (or the server is read-only), the heartbeat falls back to sampling only
 * and says so once in the log.
 *
 * Every slot_every_ms it also reads what the server keeps for the slot:
 * pg_replication_slots.wal_status, safe_wal_size, pg_current_wal_lsn() -
 * restart_lsn and max_slot_wal_keep_size.
 *
 * The statements run in libuv's thread pool (a blocking libpq call there,
 * never on the loop), one at a time: a tick that finds the previous one
 * still running is skipped.  A lost connection is reopened at the next tick
 * (connect_timeout 10 s); failures are logged once per outage.
 */
#ifndef LS_PG_HEARTBEAT_H
#define LS_PG_HEARTBEAT_H

#include <uv.h>

#include "err.h"
#include "source.h"

#define LS_PGHB_PREFIX "lockstep.heartbeat"

struct ls_pghb;

struct ls_pghb_opts {
	const char *conninfo;          /* copied */
	const char *slot;              /* copied */
	int interval_ms;               /* 0 = 1000 */
	int slot_every_ms;             /* 0 = 5000 */
};

int ls_pghb_new(uv_loop_t *loop, const struct ls_pghb_opts *o, struct ls_pghb **out,
		struct ls_err *err) __attribute__((warn_unused_result));
/* The latest samples (zeroed fields where none yet). */
void ls_pghb_sample(const struct ls_pghb *h, struct ls_source_lag *out);
/* Stops the timer, waits for a statement in flight (never blocking the
 * loop), closes the connection, frees h, then cb(arg). */
void ls_pghb_close(struct ls_pghb *h, void (*cb)(void *arg), void *arg);

#endif
