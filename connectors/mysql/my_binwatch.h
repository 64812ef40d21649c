/* my_binwatch — what a MySQL/MariaDB server keeps for the source, for lag:
 * the binlog counterpart of pg_heartbeat's slot watch.
 *
 * A binlog reader has no slot on the server: the server purges binlog
 * files by age (binlog_expire_logs_seconds, or expire_logs_days * 86400;
 * 0 = never) once it has moved on to a newer file, whatever a reader still
 * needs.  So every interval_ms, on an ordinary connection of its own, it
 * samples
 *   @@gtid_binlog_pos, UNIX_TIMESTAMP(NOW(6)), SHOW MASTER STATUS
 *                           the server's position (seq = file number << 32
 *                           | offset, text the GTID set) and clock;
 *   the expiry variables;
 *   SHOW BINARY LOGS        bytes still needed: the sizes of the file
 *                           holding the restart point and every later
 *                           file, minus the restart point's offset;
 * and, once per file, the timestamp of the Format_description event that
 * opens the file holding the restart point (its age), read by a short
 * non-blocking binlog dump from position 4 on a separate connection with
 * its own replica id (dump_server_id).  The server purges by the file's
 * modification time (its last write, about when it was rotated away), so
 * an age counted from the file's opening is never younger: a warning on
 * it comes early, never late.
 *
 * The restart point comes from the caller's needed() on the loop at each
 * tick (a seq as above; 0 = unknown, then the server's position at the
 * first sample stands for it).  The file is "lost" when SHOW BINARY LOGS no
 * longer lists it.
 *
 * Statements run in libuv's thread pool, one at a time (a tick finding the
 * previous one running is skipped), never on the loop.  A lost connection
 * is reopened at the next tick; failures are logged once per outage.
 */
#ifndef LS_MY_BINWATCH_H
#define LS_MY_BINWATCH_H

#include <stdint.h>
#include <uv.h>

#include "err.h"
#include "source.h"
#include "connectors/mysql/my_setup.h"

struct ls_mybw;

struct ls_mybw_opts {
	const struct ls_myconn *conn;  /* borrowed; must outlive the watch */
	const char *name;              /* copied; the slot name in the lag report */
	uint32_t dump_server_id;       /* replica id for reading a file's start */
	int interval_ms;               /* 0 = 1000 */
	uint64_t (*needed)(void *ctx); /* the restart point's seq, on the loop */
	void *ctx;
};

int ls_mybw_new(uv_loop_t *loop, const struct ls_mybw_opts *o, struct ls_mybw **out,
		struct ls_err *err) __attribute__((warn_unused_result));
/* The latest sample (zeroed fields where none yet; oldest_age_s -1 when
 * the file's age is unknown). */
void ls_mybw_sample(const struct ls_mybw *h, struct ls_source_lag *out);
/* Stops the timer, waits for a statement in flight (never blocking the
 * loop), closes the connection, frees h, then cb(arg).  NULL h: cb(arg). */
void ls_mybw_close(struct ls_mybw *h, void (*cb)(void *arg), void *arg);

#endif
