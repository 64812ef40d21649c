#include "connectors/postgres/pg_heartbeat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"
#include "poller.h"
#include "connectors/postgres/pg_setup.h"

#define DEFAULT_INTERVAL_MS 1000
#define DEFAULT_SLOT_EVERY_MS 5000

/* One statement emits the message and samples the position and clock at
 * the same instant (the sub-select is evaluated once). */
static const char *const SQL_BEAT =
	"SELECT pg_logical_emit_message(true, '" LS_PGHB_PREFIX "', t::text || ' ' || l::text)::text,"
	" l::text, (extract(epoch FROM t) * 1000000)::int8"
	" FROM (SELECT clock_timestamp() AS t, pg_current_wal_lsn() AS l) s";
static const char *const SQL_SAMPLE =
	"SELECT NULL, l::text, (extract(epoch FROM t) * 1000000)::int8"
	" FROM (SELECT clock_timestamp() AS t, pg_current_wal_lsn() AS l) s";
static const char *const SQL_SLOT =
	"SELECT coalesce(wal_status, ''), coalesce(safe_wal_size, -1)::int8,"
	" coalesce(pg_current_wal_lsn() - restart_lsn, 0)::int8,"
	" (SELECT setting::int8 FROM pg_settings WHERE name = 'max_slot_wal_keep_size')"
	" FROM pg_replication_slots WHERE slot_name = $1";

struct ls_pghb {
	struct ls_poller poll;
	char *conninfo, *slot;
	int interval_ms, slot_every_ms;
	void (*close_cb)(void *arg);
	void *close_arg;
	/* published on the loop */
	struct ls_source_lag sample;
	bool failing;                  /* an outage is being reported */
	/* --- the work thread's, read by the loop in after_work --- */
	PGconn *conn;
	uint64_t last_slot_ns;
	bool no_emit, no_emit_news;    /* the role cannot emit messages */
	bool ok, slot_ok;
	char errmsg[300];
	struct ls_source_lag got;
};

/* ---- the work thread ----------------------------------------------------------- */

static void set_err(struct ls_pghb *h, const char *what, const PGresult *r)
{
	const char *m = r != NULL && PQresultErrorMessage(r)[0] ? PQresultErrorMessage(r) :
		h->conn != NULL ? PQerrorMessage(h->conn) : "out of memory";
	snprintf(h->errmsg, sizeof h->errmsg, "%s: %s", what, m);
	h->errmsg[strcspn(h->errmsg, "\n")] = '\0';
}

static bool ensure_conn(struct ls_pghb *h)
{
	if (h->conn != NULL && PQstatus(h->conn) == CONNECTION_OK)
		return true;
	PQfinish(h->conn);
	/* the conninfo goes in through expand_dbname (a URI works too); the
	 * message names the host, never the conninfo */
	const char *keys[] = { "dbname", "application_name", "connect_timeout", NULL };
	const char *vals[] = { h->conninfo, "lockstep heartbeat", "10", NULL };
	h->conn = PQconnectdbParams(keys, vals, 1);
	if (h->conn != NULL && PQstatus(h->conn) == CONNECTION_OK)
		return true;
	char what[160];
	snprintf(what, sizeof what, "connection to %s:%s failed",
		 h->conn ? PQhost(h->conn) : "?", h->conn ? PQport(h->conn) : "?");
	set_err(h, what, NULL);
	PQfinish(h->conn);
	h->conn = NULL;
	return false;
}

static void beat(struct ls_pghb *h)
{
	uint64_t t0 = uv_hrtime();
	PGresult *r = PQexec(h->conn, h->no_emit ? SQL_SAMPLE : SQL_BEAT);
	uint64_t t1 = uv_hrtime();
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		/* 42501: no EXECUTE on pg_logical_emit_message; 25006: read-only */
		if (!h->no_emit && state && (!strcmp(state, "42501") || !strcmp(state, "25006"))) {
			h->no_emit = h->no_emit_news = true;
			set_err(h, "heartbeat message", r);
		} else {
			set_err(h, "heartbeat", r);
		}
		PQclear(r);
		return;
	}
	uint64_t lsn;
	if (PQntuples(r) != 1 || ls_pgsetup_lsn_parse(PQgetvalue(r, 0, 1), &lsn) < 0) {
		snprintf(h->errmsg, sizeof h->errmsg, "heartbeat: unexpected reply");
		PQclear(r);
		return;
	}
	char t[LS_PG_LSN_TEXT_MAX];
	h->got.now_known = true;
	h->got.now.seq = lsn;
	snprintf(h->got.now.text, sizeof h->got.now.text, "%s", ls_pgsetup_lsn_format(lsn, t));
	h->got.now_time_us = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	h->got.taken_ns = t0 + (t1 - t0) / 2;
	h->ok = true;
	PQclear(r);
}

static void slot_watch(struct ls_pghb *h)
{
	const char *params[1] = { h->slot };
	PGresult *r = PQexecParams(h->conn, SQL_SLOT, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		set_err(h, "slot status", r);
	} else if (PQntuples(r) == 1) {
		struct ls_source_lag *g = &h->got;
		g->slot_known = true;
		snprintf(g->slot, sizeof g->slot, "%s", h->slot);
		snprintf(g->wal_status, sizeof g->wal_status, "%s", PQgetvalue(r, 0, 0));
		g->safe_wal_size = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
		long long retained = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
		g->retained_bytes = retained > 0 ? (uint64_t)retained : 0;
		long long mb = PQgetisnull(r, 0, 3) ? -1 : strtoll(PQgetvalue(r, 0, 3), NULL, 10);
		g->max_keep_size = mb < 0 ? -1 : mb * 1024 * 1024;
		h->slot_ok = true;
	}
	PQclear(r);
}

static void work_cb(void *ctx)
{
	struct ls_pghb *h = ctx;
	h->ok = h->slot_ok = false;
	h->errmsg[0] = '\0';
	memset(&h->got, 0, sizeof h->got);
	if (!ensure_conn(h))
		return;
	beat(h);
	uint64_t now = uv_hrtime();
	if (PQstatus(h->conn) == CONNECTION_OK &&
	    now - h->last_slot_ns >= (uint64_t)h->slot_every_ms * 1000000u) {
		h->last_slot_ns = now;
		slot_watch(h);
	}
}

/* ---- the loop --------------------------------------------------------------------- */

static void free_hb(void *ctx)
{
	struct ls_pghb *h = ctx;
	void (*cb)(void *) = h->close_cb;
	void *arg = h->close_arg;
	PQfinish(h->conn);
	free(h->conninfo);
	free(h->slot);
	free(h);
	if (cb)
		cb(arg);
}

static void after_work(void *ctx, int status)
{
	struct ls_pghb *h = ctx;
	if (status == 0 && h->no_emit_news) {
		h->no_emit_news = false;
		ls_warn("postgres source: %s; sampling lag without heartbeat messages (an idle "
			"pipeline's slot advances only with keepalives)", h->errmsg);
	}
	if (status == 0 && h->ok) {
		h->sample.now_known = true;
		h->sample.now = h->got.now;
		h->sample.now_time_us = h->got.now_time_us;
		h->sample.taken_ns = h->got.taken_ns;
	}
	if (status == 0 && h->slot_ok) {
		struct ls_source_lag *s = &h->sample;
		s->slot_known = true;
		memcpy(s->slot, h->got.slot, sizeof s->slot);
		memcpy(s->wal_status, h->got.wal_status, sizeof s->wal_status);
		s->safe_wal_size = h->got.safe_wal_size;
		s->max_keep_size = h->got.max_keep_size;
		s->retained_bytes = h->got.retained_bytes;
	}
	bool failed = status != 0 || (!h->ok && h->errmsg[0]);
	if (failed && !h->failing)
		ls_warn("postgres source heartbeat: %s", status != 0 ? uv_strerror(status) : h->errmsg);
	else if (!failed && h->failing)
		ls_notice("postgres source heartbeat: working again");
	h->failing = failed;
}

int ls_pghb_new(uv_loop_t *loop, const struct ls_pghb_opts *o, struct ls_pghb **out,
		struct ls_err *err)
{
	*out = NULL;
	struct ls_pghb *h = calloc(1, sizeof *h);
	if (h == NULL || (h->conninfo = strdup(o->conninfo)) == NULL ||
	    (h->slot = strdup(o->slot)) == NULL) {
		if (h != NULL)
			free(h->conninfo);
		free(h);
		return ls_err_set(err, false, "postgres heartbeat: out of memory");
	}
	h->interval_ms = o->interval_ms > 0 ? o->interval_ms : DEFAULT_INTERVAL_MS;
	h->slot_every_ms = o->slot_every_ms > 0 ? o->slot_every_ms : DEFAULT_SLOT_EVERY_MS;
	ls_poller_start(&h->poll, loop, h->interval_ms, NULL, work_cb, after_work, h);
	*out = h;
	return 0;
}

void ls_pghb_sample(const struct ls_pghb *h, struct ls_source_lag *out)
{
	*out = h->sample;
}

void ls_pghb_close(struct ls_pghb *h, void (*cb)(void *arg), void *arg)
{
	if (h == NULL) {
		if (cb)
			cb(arg);
		return;
	}
	h->close_cb = cb;
	h->close_arg = arg;
	ls_poller_close(&h->poll, free_hb);
}
