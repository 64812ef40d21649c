/* pg_await — waiting for a pipelined result without waiting for ever.
 *
 * A blocking PQgetResult on a pipeline-mode connection waits as long as
 * the server does not answer.  That is right while the server works (a
 * long statement, a lock wait) and wrong when both sides wait for each
 * other: the server idle in ClientRead with nothing more to send, the
 * client waiting for a result.  lockstep's apply was seen stuck so (the
 * server idle right after a group's COMMIT, the apply thread in
 * PQgetResult; cause not found), which left a pipeline caught in lag that
 * never moved.
 *
 * ls_pgawait_result() waits until PQgetResult would not block.  Whenever
 * no byte arrived for check_ms, it asks the server, on a connection of its
 * own, what the backend is doing; when the backend waits for its client
 * (wait event ClientRead) at two checks in a row with no statement started
 * in between, the wait is a deadlock: it returns -1 with why saying so, and
 * the caller treats it as a lost connection (roll back, reconnect, replay
 * from the checkpoint).  A check that cannot connect leaves the wait alone.
 */
#ifndef LS_PG_AWAIT_H
#define LS_PG_AWAIT_H

#include <libpq-fe.h>
#include <stddef.h>

#define LS_PGAWAIT_CHECK_MS 5000

/* 0 when a result (or the end of one) can be read without blocking; -1
 * when the connection failed (why empty: read PQerrorMessage) or the wait
 * was found deadlocked (why says so).  conninfo (secret, never logged)
 * reaches the server for the checks. */
int ls_pgawait_result(PGconn *conn, const char *conninfo, int check_ms, char *why,
		      size_t whylen);

#endif
