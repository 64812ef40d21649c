#include "connectors/postgres/pg_stream.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <libpq-fe.h>

#include "connectors/postgres/pg_setup.h"
#include "connectors/postgres/pg_session.h"

/* Seconds from the Unix epoch to PostgreSQL's (2000-01-01). */
#define PG_EPOCH_OFFSET_S 946684800LL

#define XLOGDATA_HDR 25        /* 'w' + start + end + time */
#define KEEPALIVE_LEN 18       /* 'k' + wal end + time + reply */
#define STATUS_LEN 34          /* 'r' + write + flush + apply + time + reply */

/* The connection's life: CONNECTING (PQconnectPoll) -> SLOTCHECK (reading
 * the slot's confirmed position) -> STARTING (START_REPLICATION sent) ->
 * STREAMING.  Any failure goes to WAITING (retry timer armed) or STOPPED. */
enum state {
	ST_STOPPED = 0,
	ST_CONNECTING,
	ST_SLOTCHECK,
	ST_STARTING,
	ST_STREAMING,
	ST_WAITING,
};

struct pollh {
	uv_poll_t h;
	struct ls_pgstream *s;
};

struct ls_pgstream {
	uv_loop_t *loop;
	void *data;
	struct ls_pgstream_cbs cbs;
	/* options, owned copies */
	char *conninfo, *slot, *publication;
	int proto_version;
	bool streaming_opt;
	int work_mem_kb;
	bool messages_opt;
	int feedback_ms, base_ms, cap_ms;

	enum state state;
	PGconn *conn;
	struct pollh *poll;            /* watcher of PQsocket(conn), or NULL */
	int poll_fd;
	int poll_events;
	uint64_t gen;                  /* bumped whenever conn is torn down */
	bool want_write;               /* libpq holds unsent output */
	bool feedback_due;             /* an update could not be queued yet */
	PostgresPollingStatusType connect_wait;

	uv_timer_t feedback_timer;
	uv_timer_t retry_timer;
	uv_timer_t kick_timer;         /* drains libpq's buffer after resume */
	bool paused;
	uint64_t backoff_prev;
	uint64_t rnd;

	/* positions */
	uint64_t start_lsn;            /* caller's resume point */
	uint64_t slot_floor;           /* the slot's confirmed flush at connect */
	uint64_t received, server_wal_end;
	uint64_t flushed;              /* caller: durable */
	uint64_t idle_pos;             /* keepalive wal end while idle */
	uint64_t ka_since_data;        /* last keepalive wal end after the
	                                  last XLogData, 0 if none since */
	bool idle;
	uint64_t reported;
	int64_t last_server_time;
	uint64_t reconnects, messages;

	bool closing;
	int pending_closes;
	void (*close_cb)(void *data);
};

/* ---- small helpers ---------------------------------------------------------- */

static uint64_t get_be64(const char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | (uint8_t)p[i];
	return v;
}

static void put_be64(char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (char)(v & 0xff);
		v >>= 8;
	}
}

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

int64_t ls_pgstream_now_pg(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return ((int64_t)tv.tv_sec - PG_EPOCH_OFFSET_S) * 1000000 + tv.tv_usec;
}

int64_t ls_pgstream_pg_to_unix_us(int64_t pg_us)
{
	return pg_us + PG_EPOCH_OFFSET_S * 1000000;
}

uint64_t ls_pgstream_backoff_ms(uint64_t prev, uint64_t base, uint64_t cap,
	uint32_t rnd)
{
	uint64_t hi = prev * 3;
	if (hi <= base)
		return base < cap ? base : cap;
	uint64_t v = base + (uint64_t)rnd % (hi - base + 1);
	return v < cap ? v : cap;
}

static uint32_t next_rnd(struct ls_pgstream *s)
{
	/* xorshift64*: enough to spread reconnects of many daemons apart */
	s->rnd ^= s->rnd >> 12;
	s->rnd ^= s->rnd << 25;
	s->rnd ^= s->rnd >> 27;
	return (uint32_t)((s->rnd * 2685821657736338717ULL) >> 32);
}

/* The position the server may treat as durable: what the caller flushed,
 * or a keepalive's wal end seen while idle, never below the slot's own. */
static uint64_t flush_pos(const struct ls_pgstream *s)
{
	return max64(max64(s->flushed, s->idle_pos), s->slot_floor);
}

/* SQLSTATEs worth retrying: connection trouble, shutdown/termination,
 * resource shortage, an object in use (the previous walsender still holds
 * the slot), serialization failures. */
static bool sqlstate_retryable(const char *st)
{
	if (st == NULL)
		return true;
	return !strncmp(st, "08", 2) || !strncmp(st, "57P", 3) ||
		!strncmp(st, "53", 2) || !strcmp(st, "55006") ||
		!strncmp(st, "40", 2) || !strncmp(st, "58", 2);
}

/* Connection failures carry no SQLSTATE; these messages will not heal by
 * retrying. */
static bool connect_msg_fatal(const char *m)
{
	static const char *const fatal[] = { "authentication failed",
		"does not exist", "no pg_hba.conf entry", "permission denied",
		"must be superuser or replication", "invalid connection option",
		"missing \"=\"", "invalid URI" };
	for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
		if (strstr(m, fatal[i]) != NULL)
			return true;
	return false;
}

/* ---- handles ----------------------------------------------------------------- */

static void maybe_finish_close(struct ls_pgstream *s)
{
	if (!s->closing || s->pending_closes > 0)
		return;
	void (*cb)(void *) = s->close_cb;
	void *data = s->data;
	free(s->conninfo);
	free(s->slot);
	free(s->publication);
	free(s);
	if (cb != NULL)
		cb(data);
}

static void on_poll_closed(uv_handle_t *h)
{
	struct pollh *p = h->data;
	struct ls_pgstream *s = p->s;
	free(p);
	s->pending_closes--;
	maybe_finish_close(s);
}

static void drop_poll(struct ls_pgstream *s)
{
	if (s->poll == NULL)
		return;
	uv_poll_stop(&s->poll->h);
	s->pending_closes++;
	uv_close((uv_handle_t *)&s->poll->h, on_poll_closed);
	s->poll = NULL;
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Watches the connection's socket for events, re-creating the watcher
 * when libpq moved to another socket (it does while trying hosts). */
static int watch(struct ls_pgstream *s, int events)
{
	int fd = PQsocket(s->conn);
	if (fd < 0)
		return -1;
	if (s->poll != NULL && s->poll_fd != fd)
		drop_poll(s);
	if (s->poll == NULL) {
		struct pollh *p = calloc(1, sizeof *p);
		if (p == NULL)
			return -1;
		if (uv_poll_init(s->loop, &p->h, fd) != 0) {
			free(p);
			return -1;
		}
		p->s = s;
		p->h.data = p;
		s->poll = p;
		s->poll_fd = fd;
		s->poll_events = 0;
	}
	if (s->poll_events == events)
		return 0;
	s->poll_events = events;
	return uv_poll_start(&s->poll->h, events, on_poll) == 0 ? 0 : -1;
}

static int watch_stream(struct ls_pgstream *s)
{
	bool reading = !(s->paused && s->state == ST_STREAMING);
	return watch(s, (reading ? UV_READABLE : 0) |
		(s->want_write ? UV_WRITABLE : 0));
}

/* Forgets the connection: socket watcher, feedback timer, libpq. */
static void teardown(struct ls_pgstream *s)
{
	drop_poll(s);
	uv_timer_stop(&s->feedback_timer);
	uv_timer_stop(&s->kick_timer);
	PQfinish(s->conn);
	s->conn = NULL;
	s->want_write = false;
	s->feedback_due = false;
	s->idle = false;
	s->ka_since_data = 0;
	s->gen++;
}

/* ---- failure and retry -------------------------------------------------------- */

static int connect_now(struct ls_pgstream *s, struct ls_err *err);

static void on_retry(uv_timer_t *t)
{
	struct ls_pgstream *s = t->data;
	if (s->state != ST_WAITING)
		return;
	struct ls_err e = { 0 };
	s->reconnects++;
	if (connect_now(s, &e) < 0) {
		s->state = ST_STOPPED;
		if (s->cbs.on_error != NULL)
			s->cbs.on_error(s, &e);
	}
}

/* Tears the connection down, arms the retry timer when retrying can help,
 * and tells the caller (who may stop or close us from the callback). */
static void fail(struct ls_pgstream *s, bool retryable, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(struct ls_pgstream *s, bool retryable, const char *fmt, ...)
{
	struct ls_err e = { .retryable = retryable };
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.msg, sizeof e.msg, fmt, ap);
	va_end(ap);
	teardown(s);
	if (retryable) {
		s->backoff_prev = ls_pgstream_backoff_ms(s->backoff_prev,
			(uint64_t)s->base_ms, (uint64_t)s->cap_ms, next_rnd(s));
		s->state = ST_WAITING;
		uv_timer_start(&s->retry_timer, on_retry, s->backoff_prev, 0);
	} else {
		s->state = ST_STOPPED;
	}
	if (s->cbs.on_error != NULL)
		s->cbs.on_error(s, &e);
}

/* libpq's message, one line. */
static const char *pq_msg(PGconn *c, const PGresult *r, char *buf, size_t n)
{
	const char *m = r != NULL && PQresultErrorMessage(r)[0] != '\0' ?
		PQresultErrorMessage(r) : c != NULL ? PQerrorMessage(c) : "";
	snprintf(buf, n, "%s", m[0] ? m : "connection closed");
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

static void fail_result(struct ls_pgstream *s, PGresult *r, const char *what)
{
	char m[300], st[8] = "";
	const char *f = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (f != NULL)
		snprintf(st, sizeof st, "%s", f);
	bool retry = PQstatus(s->conn) == CONNECTION_BAD ||
		sqlstate_retryable(f != NULL ? st : NULL);
	pq_msg(s->conn, r, m, sizeof m);
	PQclear(r);
	fail(s, retry, "replication stream (slot %s): %s: %s%s%s%s", s->slot,
		what, m, st[0] ? " (SQLSTATE " : "", st, st[0] ? ")" : "");
}

/* ---- output ------------------------------------------------------------------ */

/* Pushes libpq's pending output; watches writability while some is left. */
static int flush_out(struct ls_pgstream *s)
{
	int r = PQflush(s->conn);
	if (r < 0) {
		char m[300];
		fail(s, true, "replication stream (slot %s): sending: %s", s->slot,
			pq_msg(s->conn, NULL, m, sizeof m));
		return -1;
	}
	s->want_write = r == 1;
	if (watch_stream(s) < 0) {
		fail(s, true, "replication stream (slot %s): cannot watch socket",
			s->slot);
		return -1;
	}
	return 0;
}

int ls_pgstream_send_feedback(struct ls_pgstream *s, bool reply)
{
	if (s->state != ST_STREAMING)
		return -1;
	uint64_t flush = flush_pos(s);
	char msg[STATUS_LEN];
	msg[0] = 'r';
	put_be64(msg + 1, max64(s->received, flush));
	put_be64(msg + 9, flush);
	put_be64(msg + 17, flush);
	put_be64(msg + 25, (uint64_t)ls_pgstream_now_pg());
	msg[33] = reply ? 1 : 0;
	int r = PQputCopyData(s->conn, msg, STATUS_LEN);
	if (r < 0) {
		char m[300];
		fail(s, true, "replication stream (slot %s): sending status: %s",
			s->slot, pq_msg(s->conn, NULL, m, sizeof m));
		return -1;
	}
	if (r == 0) {
		/* libpq's buffer is full: send once the socket drains */
		s->feedback_due = true;
		return flush_out(s);
	}
	s->feedback_due = false;
	s->reported = flush;
	return flush_out(s);
}

static void on_feedback_timer(uv_timer_t *t)
{
	struct ls_pgstream *s = t->data;
	(void)ls_pgstream_send_feedback(s, false);
}

/* ---- input ------------------------------------------------------------------- */

static void handle_xlogdata(struct ls_pgstream *s, const char *b, size_t n)
{
	uint64_t start = get_be64(b + 1), end = get_be64(b + 9);
	int64_t t = (int64_t)get_be64(b + 17);
	s->received = max64(s->received, start);
	s->server_wal_end = max64(s->server_wal_end, end);
	s->last_server_time = t;
	s->idle = false;
	s->ka_since_data = 0;
	s->messages++;
	if (s->cbs.on_xlogdata != NULL)
		s->cbs.on_xlogdata(s, start, end, t, b + XLOGDATA_HDR,
			n - XLOGDATA_HDR);
}

static void handle_keepalive(struct ls_pgstream *s, const char *b)
{
	uint64_t end = get_be64(b + 1);
	int64_t t = (int64_t)get_be64(b + 9);
	bool reply = b[17] != 0;
	uint64_t gen = s->gen;
	s->received = max64(s->received, end);
	s->server_wal_end = max64(s->server_wal_end, end);
	s->last_server_time = t;
	s->ka_since_data = end;
	if (s->idle)
		s->idle_pos = max64(s->idle_pos, end);
	if (s->cbs.on_keepalive != NULL)
		s->cbs.on_keepalive(s, end, t, reply);
	if (reply && s->gen == gen && s->state == ST_STREAMING)
		(void)ls_pgstream_send_feedback(s, false);
}

/* One CopyData message; returns false when the stream went away. */
static bool handle_msg(struct ls_pgstream *s, const char *b, size_t n)
{
	if (n >= XLOGDATA_HDR && b[0] == 'w') {
		handle_xlogdata(s, b, n);
	} else if (n >= KEEPALIVE_LEN && b[0] == 'k') {
		handle_keepalive(s, b);
	} else {
		fail(s, false, "replication stream (slot %s): malformed message "
			"(type 0x%02x, %zu bytes)", s->slot, (unsigned char)b[0], n);
		return false;
	}
	return true;
}

/* The server ended the COPY: collect its reason. */
static void stream_ended(struct ls_pgstream *s)
{
	PGresult *r = PQgetResult(s->conn);
	if (r == NULL || PQresultStatus(r) == PGRES_COMMAND_OK) {
		PQclear(r);
		fail(s, true, "replication stream (slot %s): server ended the "
			"stream", s->slot);
		return;
	}
	fail_result(s, r, "stream ended");
}

static void read_stream(struct ls_pgstream *s)
{
	uint64_t gen = s->gen;
	if (!PQconsumeInput(s->conn)) {
		char m[300];
		fail(s, true, "replication stream (slot %s): receiving: %s",
			s->slot, pq_msg(s->conn, NULL, m, sizeof m));
		return;
	}
	while (!s->paused) {
		char *buf = NULL;
		int n = PQgetCopyData(s->conn, &buf, 1);
		if (n == 0)
			return;
		if (n == -1) {
			stream_ended(s);
			return;
		}
		if (n < 0) {
			char m[300];
			fail(s, true, "replication stream (slot %s): receiving: %s",
				s->slot, pq_msg(s->conn, NULL, m, sizeof m));
			return;
		}
		bool ok = handle_msg(s, buf, (size_t)n);
		PQfreemem(buf);
		if (!ok || s->gen != gen || s->state != ST_STREAMING || s->paused)
			return;
	}
}

/* ---- connection phases ---------------------------------------------------------- */

/* Quotes name as an SQL identifier inside a string literal, as
 * publication_names wants: '"name"'. */
static void quote_pub(const char *name, char *out, size_t size)
{
	size_t j = 0;
	out[j++] = '\'';
	out[j++] = '"';
	for (const char *p = name; *p != '\0' && j + 6 < size; p++) {
		if (*p == '"')
			out[j++] = '"';
		if (*p == '\'')
			out[j++] = '\'';
		out[j++] = *p;
	}
	out[j++] = '"';
	out[j++] = '\'';
	out[j] = '\0';
}

static void send_start(struct ls_pgstream *s)
{
	uint64_t from = max64(max64(s->start_lsn, s->flushed), s->idle_pos);
	char lsn[LS_PG_LSN_TEXT_MAX], pub[300], sql[512];
	quote_pub(s->publication, pub, sizeof pub);
	snprintf(sql, sizeof sql, "START_REPLICATION SLOT \"%s\" LOGICAL %s "
		"(proto_version '%d', publication_names %s%s%s)", s->slot,
		ls_pgsetup_lsn_format(from, lsn), s->proto_version, pub,
		s->streaming_opt ? ", streaming 'on'" : "",
		s->messages_opt ? ", messages 'true'" : "");
	s->start_lsn = from;
	if (!PQsendQuery(s->conn, sql)) {
		char m[300];
		fail(s, true, "replication stream (slot %s): START_REPLICATION: %s",
			s->slot, pq_msg(s->conn, NULL, m, sizeof m));
		return;
	}
	s->state = ST_STARTING;
	(void)flush_out(s);
}

static void send_slotcheck(struct ls_pgstream *s)
{
	char sql[320], set[96] = "";
	if (s->work_mem_kb > 0)
		snprintf(set, sizeof set, "SET logical_decoding_work_mem = '%dkB'; ",
			s->work_mem_kb);
	snprintf(sql, sizeof sql, "%sSELECT confirmed_flush_lsn FROM "
		"pg_replication_slots WHERE slot_name = '%s'", set, s->slot);
	if (PQsetnonblocking(s->conn, 1) != 0 || !PQsendQuery(s->conn, sql)) {
		char m[300];
		fail(s, true, "replication stream (slot %s): %s", s->slot,
			pq_msg(s->conn, NULL, m, sizeof m));
		return;
	}
	s->state = ST_SLOTCHECK;
	(void)flush_out(s);
}

static void slotcheck_result(struct ls_pgstream *s, PGresult *r)
{
	if (PQresultStatus(r) == PGRES_COMMAND_OK) {   /* the SET */
		PQclear(r);
		return;
	}
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fail_result(s, r, "reading the slot");
		return;
	}
	uint64_t lsn = 0;
	bool found = PQntuples(r) == 1;
	bool ok = found && (PQgetisnull(r, 0, 0) ||
		ls_pgsetup_lsn_parse(PQgetvalue(r, 0, 0), &lsn) == 0);
	PQclear(r);
	if (!found) {
		fail(s, false, "replication stream: slot %s does not exist "
			"(setup creates it; was it dropped?)", s->slot);
		return;
	}
	if (!ok) {
		fail(s, false, "replication stream: slot %s: unreadable "
			"confirmed_flush_lsn", s->slot);
		return;
	}
	s->slot_floor = lsn;
}

static void start_result(struct ls_pgstream *s, PGresult *r)
{
	if (PQresultStatus(r) != PGRES_COPY_BOTH) {
		fail_result(s, r, "START_REPLICATION");
		return;
	}
	PQclear(r);
	s->state = ST_STREAMING;
	s->backoff_prev = 0;
	if (watch_stream(s) < 0) {
		fail(s, true, "replication stream (slot %s): cannot watch socket",
			s->slot);
		return;
	}
	uv_timer_start(&s->feedback_timer, on_feedback_timer,
		(uint64_t)s->feedback_ms, (uint64_t)s->feedback_ms);
	if (s->cbs.on_streaming != NULL)
		s->cbs.on_streaming(s, s->start_lsn);
}

/* Reads the replies of the slot check, then of START_REPLICATION. */
static void read_results(struct ls_pgstream *s)
{
	uint64_t gen = s->gen;
	if (!PQconsumeInput(s->conn)) {
		char m[300];
		fail(s, true, "replication stream (slot %s): %s", s->slot,
			pq_msg(s->conn, NULL, m, sizeof m));
		return;
	}
	while (s->gen == gen && !PQisBusy(s->conn)) {
		PGresult *r = PQgetResult(s->conn);
		if (s->state == ST_SLOTCHECK) {
			if (r != NULL) {
				slotcheck_result(s, r);
				continue;
			}
			send_start(s);
		} else if (s->state == ST_STARTING && r != NULL) {
			start_result(s, r);
			if (s->gen == gen && s->state == ST_STREAMING)
				read_stream(s);
		}
		return;
	}
}

static void connect_step(struct ls_pgstream *s)
{
	PostgresPollingStatusType st = PQconnectPoll(s->conn);
	s->connect_wait = st;
	if (st == PGRES_POLLING_OK) {
		send_slotcheck(s);
	} else if (st == PGRES_POLLING_FAILED) {
		char m[300];
		pq_msg(s->conn, NULL, m, sizeof m);
		fail(s, !connect_msg_fatal(m), "replication connection to %s:%s "
			"(slot %s) failed: %s", PQhost(s->conn), PQport(s->conn),
			s->slot, m);
	} else if (watch(s, st == PGRES_POLLING_READING ? UV_READABLE :
	                 UV_WRITABLE) < 0) {
		fail(s, true, "replication connection (slot %s): cannot watch "
			"socket", s->slot);
	}
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct pollh *p = h->data;
	struct ls_pgstream *s = p->s;
	if (s->poll != p || s->conn == NULL)
		return;
	if (status < 0) {
		fail(s, true, "replication stream (slot %s): socket error: %s",
			s->slot, uv_strerror(status));
		return;
	}
	if (s->state == ST_CONNECTING) {
		connect_step(s);
		return;
	}
	uint64_t gen = s->gen;
	if ((events & UV_WRITABLE) && s->want_write && flush_out(s) < 0)
		return;
	if (s->gen == gen && s->feedback_due && s->state == ST_STREAMING &&
	    !s->want_write && ls_pgstream_send_feedback(s, false) < 0)
		return;
	if (s->gen != gen || !(events & UV_READABLE))
		return;
	if (s->state == ST_STREAMING)
		read_stream(s);
	else
		read_results(s);
}

/* Starts a non-blocking connection.  libpq may still resolve a host name
 * synchronously here; give hostaddr to avoid that.  pgoutput writes values
 * with the walsender's session settings: the startup options pin them
 * (pg_session.h) whatever the database's defaults. */
static int connect_now(struct ls_pgstream *s, struct ls_err *err)
{
	char *options = ls_pgsession_options(s->conninfo);
	const char *keys[] = { "application_name", "dbname", "replication",
		options ? "options" : NULL, NULL };
	const char *vals[] = { "lockstep", s->conninfo, "database", options,
		NULL };
	s->conn = PQconnectStartParams(keys, vals, 1);
	free(options);
	if (s->conn == NULL)
		return ls_err_set(err, false, "replication connection: out of "
			"memory");
	if (PQstatus(s->conn) == CONNECTION_BAD) {
		char m[300];
		pq_msg(s->conn, NULL, m, sizeof m);
		PQfinish(s->conn);
		s->conn = NULL;
		return ls_err_set(err, false, "replication connection (slot %s): "
			"%s", s->slot, m);
	}
	s->state = ST_CONNECTING;
	if (watch(s, UV_WRITABLE) < 0) {
		teardown(s);
		s->state = ST_STOPPED;
		return ls_err_set(err, false, "replication connection (slot %s): "
			"cannot watch socket", s->slot);
	}
	return 0;
}

/* ---- public API -------------------------------------------------------------- */

struct ls_pgstream *ls_pgstream_new(uv_loop_t *loop,
	const struct ls_pgstream_opts *o, const struct ls_pgstream_cbs *cbs,
	void *data, struct ls_err *err)
{
	int proto = o->proto_version ? o->proto_version : 1;
	if (o->conninfo == NULL || o->slot == NULL || o->publication == NULL ||
	    o->slot[0] == '\0' || strspn(o->slot, "abcdefghijklmnopqrstuvwxyz"
	    "0123456789_") != strlen(o->slot) || strlen(o->slot) > 63 ||
	    strlen(o->publication) > 63 || (proto != 1 && proto != 2) ||
	    (o->streaming && proto < 2)) {
		ls_err_set(err, false, "replication stream: needs conninfo, a slot "
			"name ([a-z0-9_]), a publication, proto_version 1 or 2 "
			"(streaming needs 2)");
		return NULL;
	}
	struct ls_pgstream *s = calloc(1, sizeof *s);
	if (s == NULL) {
		ls_err_set(err, false, "replication stream: out of memory");
		return NULL;
	}
	s->loop = loop;
	s->data = data;
	s->cbs = *cbs;
	s->conninfo = strdup(o->conninfo);
	s->slot = strdup(o->slot);
	s->publication = strdup(o->publication);
	s->proto_version = proto;
	s->streaming_opt = o->streaming;
	s->work_mem_kb = o->work_mem_kb;
	s->messages_opt = o->messages;
	s->feedback_ms = o->feedback_interval_ms > 0 ? o->feedback_interval_ms :
		10000;
	s->base_ms = o->reconnect_base_ms > 0 ? o->reconnect_base_ms : 500;
	s->cap_ms = o->reconnect_cap_ms > 0 ? o->reconnect_cap_ms : 30000;
	s->start_lsn = o->start_lsn;
	s->rnd = uv_hrtime() ^ (uint64_t)(uintptr_t)s;
	if (s->rnd == 0)
		s->rnd = 1;
	uv_timer_init(loop, &s->feedback_timer);
	uv_timer_init(loop, &s->retry_timer);
	uv_timer_init(loop, &s->kick_timer);
	s->feedback_timer.data = s;
	s->retry_timer.data = s;
	s->kick_timer.data = s;
	if (s->conninfo == NULL || s->slot == NULL || s->publication == NULL) {
		ls_err_set(err, false, "replication stream: out of memory");
		ls_pgstream_close(s, NULL);
		return NULL;
	}
	return s;
}

void *ls_pgstream_data(const struct ls_pgstream *s)
{
	return s->data;
}

int ls_pgstream_start(struct ls_pgstream *s, struct ls_err *err)
{
	if (s->closing || (s->state != ST_STOPPED && s->state != ST_WAITING))
		return ls_err_set(err, false, "replication stream: already started");
	uv_timer_stop(&s->retry_timer);
	return connect_now(s, err);
}

void ls_pgstream_stop(struct ls_pgstream *s)
{
	uv_timer_stop(&s->retry_timer);
	teardown(s);
	s->state = ST_STOPPED;
}

static void on_timer_closed(uv_handle_t *h)
{
	struct ls_pgstream *s = h->data;
	s->pending_closes--;
	maybe_finish_close(s);
}

void ls_pgstream_close(struct ls_pgstream *s, void (*close_cb)(void *data))
{
	ls_pgstream_stop(s);
	s->closing = true;
	s->close_cb = close_cb;
	s->pending_closes += 3;
	uv_close((uv_handle_t *)&s->feedback_timer, on_timer_closed);
	uv_close((uv_handle_t *)&s->retry_timer, on_timer_closed);
	uv_close((uv_handle_t *)&s->kick_timer, on_timer_closed);
}

void ls_pgstream_pause(struct ls_pgstream *s)
{
	s->paused = true;
	uv_timer_stop(&s->kick_timer);
	if (s->state == ST_STREAMING && watch_stream(s) < 0)
		fail(s, true, "replication stream (slot %s): cannot watch socket",
			s->slot);
}

static void on_kick(uv_timer_t *t)
{
	struct ls_pgstream *s = t->data;
	if (s->state == ST_STREAMING && !s->paused)
		read_stream(s);
}

/* libpq may already hold whole messages that no socket event will
 * announce, so resuming drains them from a zero timer (not from inside the
 * caller's call, which would re-enter its callbacks). */
void ls_pgstream_resume(struct ls_pgstream *s)
{
	if (!s->paused)
		return;
	s->paused = false;
	if (s->state != ST_STREAMING)
		return;
	if (watch_stream(s) < 0) {
		fail(s, true, "replication stream (slot %s): cannot watch socket",
			s->slot);
		return;
	}
	uv_timer_start(&s->kick_timer, on_kick, 0, 0);
}

void ls_pgstream_set_flushed(struct ls_pgstream *s, uint64_t lsn)
{
	s->flushed = max64(s->flushed, lsn);
}

/* A keepalive read since the last XLogData already vouches for its wal
 * end: the walsender stops pinging once we report having written that far,
 * so waiting for the next one could stall the advance. */
void ls_pgstream_mark_idle(struct ls_pgstream *s)
{
	s->idle = true;
	s->idle_pos = max64(s->idle_pos, s->ka_since_data);
}

void ls_pgstream_stats(const struct ls_pgstream *s,
	struct ls_pgstream_stats *out)
{
	out->streaming = s->state == ST_STREAMING;
	out->received = s->received;
	out->server_wal_end = s->server_wal_end;
	out->flushed = s->flushed;
	out->reported = s->reported;
	out->last_server_time_us = s->last_server_time;
	out->reconnects = s->reconnects;
	out->messages = s->messages;
}
