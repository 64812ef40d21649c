#include "connectors/postgres/pg_await.h"

#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>


/* The backend's wait event and the time its state last changed, read on a
 * connection of our own; false when that cannot be done. */
static bool backend_state(const char *conninfo, int pid, char *wait, size_t wn,
			  char *since, size_t sn)
{
	PGconn *c = PQconnectdb(conninfo);
	bool ok = false;
	if (c != NULL && PQstatus(c) == CONNECTION_OK) {
		char p[16];
		snprintf(p, sizeof p, "%d", pid);
		const char *v[1] = { p };
		PGresult *r = PQexecParams(c, "SELECT coalesce(wait_event, ''),"
					   " coalesce(state_change::text, '')"
					   " FROM pg_catalog.pg_stat_activity WHERE pid = $1",
					   1, NULL, v, NULL, NULL, 0);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
			snprintf(wait, wn, "%s", PQgetvalue(r, 0, 0));
			snprintf(since, sn, "%s", PQgetvalue(r, 0, 1));
			ok = true;
		}
		PQclear(r);
	}
	PQfinish(c);
	return ok;
}

int ls_pgawait_result(PGconn *conn, const char *conninfo, int check_ms, char *why,
		      size_t whylen)
{
	char seen[64] = "";   /* state_change of a ClientRead seen last check */
	why[0] = '\0';
	while (PQisBusy(conn)) {
		if (PQflush(conn) != 0)
			return -1;
		struct pollfd p = { .fd = PQsocket(conn), .events = POLLIN };
		int n = poll(&p, 1, check_ms);
		if (n < 0)
			continue;   /* EINTR */
		if (n > 0) {
			if (!PQconsumeInput(conn))
				return -1;
			seen[0] = '\0';
			continue;
		}
		/* bytes a TLS layer decrypted already do not wake poll() */
		if (!PQconsumeInput(conn))
			return -1;
		if (!PQisBusy(conn))
			break;
		char wait[64], since[64];
		if (!backend_state(conninfo, PQbackendPID(conn), wait, sizeof wait, since,
				   sizeof since) || strcmp(wait, "ClientRead") != 0) {
			seen[0] = '\0';
			continue;
		}
		if (seen[0] != '\0' && strcmp(seen, since) == 0) {
			snprintf(why, whylen, "the server waited for this session (ClientRead "
				 "since %s) while the session waited for its result", since);
			return -1;
		}
		snprintf(seen, sizeof seen, "%s", since);
	}
	return 0;
}
