/* my_binlog — binlog reader thread and its hand-off to the loop.  See
 * my_binlog.h for the protocol and the threading contract. */
#include "connectors/mysql/my_binlog.h"

#include <errno.h>
#include <errmsg.h>
#include <mariadb_rpl.h>
#include <mysql.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

enum item_kind { IT_EVENT, IT_ERROR, IT_RECONNECT, IT_EXIT };

/* One entry of the reader -> loop queue; an event's bytes follow it. */
struct item {
	struct item *next;
	enum item_kind kind;
	struct ls_mybinlog_event ev;   /* IT_EVENT; ev.data points into bytes */
	struct ls_err err;             /* IT_ERROR */
	char from[LS_POS_TEXT_MAX];    /* IT_RECONNECT */
	uint8_t bytes[];
};

struct ls_mybinlog {
	uv_loop_t *loop;
	uv_async_t async;
	struct ls_mybinlog_cbs cbs;
	void *data;

	/* options (owned copies) */
	struct ls_myconn conn;
	uint32_t server_id;
	bool file_mode;                /* started from file:offset */
	uint64_t heartbeat_ns;
	unsigned read_timeout_s;
	uint64_t base_ms, cap_ms;
	uint64_t rnd;

	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	/* guarded by mu */
	struct item *head, *tail;
	size_t q_events, q_bytes;
	bool stop;
	int sock;                      /* the reader's socket, -1 when none */
	char resume[LS_POS_TEXT_MAX];

	/* loop only */
	bool paused, closing, joined, draining;
	void (*close_cb)(void *data);
	uint64_t events, reconnects;
	atomic_bool connected;
};

/* ---- pure helpers --------------------------------------------------------------- */

static uint32_t rd4(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t rd6(const uint8_t *p)
{
	return (uint64_t)rd4(p) | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40;
}

static uint64_t rd8(const uint8_t *p)
{
	return (uint64_t)rd4(p) | (uint64_t)rd4(p + 4) << 32;
}

static uint32_t fnv32(const char *s)
{
	uint32_t h = 2166136261u;
	for (const char *p = s ? s : ""; *p; p++) {
		h ^= (uint8_t)*p;
		h *= 16777619u;
	}
	return h;
}

uint32_t ls_mybinlog_server_id(const char *name, uint32_t avoid)
{
	uint32_t h = fnv32(name);
	uint32_t id = 2 + h % (0x7fffffffu - 2);
	if (id == avoid)
		id = id + 1 < 0x7fffffffu ? id + 1 : 2;
	return id;
}

uint32_t ls_mybinlog_origin_id(const char *origin)
{
	uint32_t id = 0x80000000u | (fnv32(origin) & 0x7fffffffu);
	return id == UINT32_MAX ? id - 1 : id;
}

uint64_t ls_mybinlog_backoff_ms(uint64_t prev, uint64_t base, uint64_t cap,
	uint32_t rnd)
{
	uint64_t hi = prev * 3;
	if (hi <= base)
		return base < cap ? base : cap;
	uint64_t v = base + (uint64_t)rnd % (hi - base + 1);
	return v < cap ? v : cap;
}

int ls_mybinlog_parse_gtid(const struct ls_mybinlog_event *ev,
	struct ls_mybinlog_gtid *out)
{
	const uint8_t *b = ev->data + LS_MYEV_HEADER_LEN;
	size_t n = ev->len - LS_MYEV_HEADER_LEN;
	if (ev->len < LS_MYEV_HEADER_LEN + 13 || ev->type != LS_MYEV_GTID)
		return -1;
	out->gtid.seq = rd8(b);
	out->gtid.domain = rd4(b + 8);
	out->gtid.server = ev->server_id;
	out->flags = b[12];
	out->commit_id = 0;
	if ((out->flags & 0x02) && n >= 21)
		out->commit_id = rd8(b + 13);
	return 0;
}

int ls_mybinlog_parse_xid(const struct ls_mybinlog_event *ev, uint64_t *xid)
{
	if (ev->len < LS_MYEV_HEADER_LEN + 8 || ev->type != LS_MYEV_XID)
		return -1;
	*xid = rd8(ev->data + LS_MYEV_HEADER_LEN);
	return 0;
}

int ls_mybinlog_parse_query(const struct ls_mybinlog_event *ev,
	struct ls_mybinlog_query *out)
{
	const uint8_t *b = ev->data + LS_MYEV_HEADER_LEN;
	if (ev->len < LS_MYEV_HEADER_LEN + 13 || ev->type != LS_MYEV_QUERY)
		return -1;
	size_t n = ev->len - LS_MYEV_HEADER_LEN;
	size_t db_len = b[8], status_len = (size_t)b[11] | (size_t)b[12] << 8;
	size_t off = 13 + status_len;
	if (off + db_len + 1 > n)
		return -1;
	out->thread_id = rd4(b);
	out->db = (const char *)b + off;
	out->db_len = db_len;
	out->sql = (const char *)b + off + db_len + 1;
	out->sql_len = n - off - db_len - 1;
	return 0;
}

int ls_mybinlog_parse_rotate(const struct ls_mybinlog_event *ev,
	char *file, size_t file_size, uint64_t *pos)
{
	if (ev->len < LS_MYEV_HEADER_LEN + 8 || ev->type != LS_MYEV_ROTATE)
		return -1;
	size_t n = ev->len - LS_MYEV_HEADER_LEN - 8;
	if (n + 1 > file_size)
		return -1;
	*pos = rd8(ev->data + LS_MYEV_HEADER_LEN);
	memcpy(file, ev->data + LS_MYEV_HEADER_LEN + 8, n);
	file[n] = '\0';
	return 0;
}

int ls_mybinlog_parse_table_map(const struct ls_mybinlog_event *ev,
	struct ls_mybinlog_table_map *out)
{
	const uint8_t *b = ev->data + LS_MYEV_HEADER_LEN;
	if (ev->len < LS_MYEV_HEADER_LEN + 10 || ev->type != LS_MYEV_TABLE_MAP)
		return -1;
	size_t n = ev->len - LS_MYEV_HEADER_LEN, off = 8;
	out->table_id = rd6(b);
	out->db_len = b[off++];
	if (off + out->db_len + 2 > n)
		return -1;
	out->db = (const char *)b + off;
	off += out->db_len + 1;
	out->table_len = b[off++];
	if (off + out->table_len + 1 > n)
		return -1;
	out->table = (const char *)b + off;
	return 0;
}

int ls_mybinlog_rows_table_id(const struct ls_mybinlog_event *ev, uint64_t *id)
{
	bool rows = (ev->type >= LS_MYEV_WRITE_ROWS_V1 &&
		     ev->type <= LS_MYEV_DELETE_ROWS_V1) ||
		    (ev->type >= LS_MYEV_WRITE_ROWS && ev->type <= LS_MYEV_DELETE_ROWS) ||
		    (ev->type >= 166 && ev->type <= 171);
	if (!rows || ev->len < LS_MYEV_HEADER_LEN + 8)
		return -1;
	*id = rd6(ev->data + LS_MYEV_HEADER_LEN);
	return 0;
}

/* "name.NNNNNN" + offset -> position (fileno 0 when the name has no number). */
static void make_pos(struct ls_binlog_pos *p, const char *file, uint64_t offset)
{
	char text[LS_BINLOG_FILE_MAX + 24];
	snprintf(text, sizeof text, "%s:%llu", file, (unsigned long long)offset);
	if (ls_binlog_pos_parse(text, p, NULL) != 0) {
		snprintf(p->file, sizeof p->file, "%s", file);
		p->fileno = 0;
		p->offset = offset;
	}
}

/* ---- the queue (reader side) ---------------------------------------------------- */

/* Appends it; events wait while the queue is full.  -1 (it freed) when
 * stopping. */
static int push(struct ls_mybinlog *b, struct item *it, size_t bytes)
{
	pthread_mutex_lock(&b->mu);
	if (it->kind == IT_EVENT) {
		while (!b->stop && b->q_events > 0 &&
		       (b->q_events >= LS_MYBINLOG_QUEUE_EVENTS ||
			b->q_bytes + bytes > LS_MYBINLOG_QUEUE_BYTES))
			pthread_cond_wait(&b->cond, &b->mu);
		if (b->stop) {
			pthread_mutex_unlock(&b->mu);
			free(it);
			return -1;
		}
	}
	it->next = NULL;
	if (b->tail)
		b->tail->next = it;
	else
		b->head = it;
	b->tail = it;
	b->q_events++;
	b->q_bytes += bytes;
	pthread_mutex_unlock(&b->mu);
	uv_async_send(&b->async);
	return 0;
}

static void push_simple(struct ls_mybinlog *b, enum item_kind kind,
			const struct ls_err *err, const char *from)
{
	struct item *it = calloc(1, sizeof *it);
	if (it == NULL)
		return;     /* nothing sane to do; the loop keeps going */
	it->kind = kind;
	if (err)
		it->err = *err;
	if (from)
		snprintf(it->from, sizeof it->from, "%s", from);
	push(b, it, 0);
}

static bool stopping(struct ls_mybinlog *b)
{
	pthread_mutex_lock(&b->mu);
	bool s = b->stop;
	pthread_mutex_unlock(&b->mu);
	return s;
}

/* ---- one replication session (reader thread) ----------------------------------- */

struct session {
	MYSQL *m;
	MARIADB_RPL *rpl;
	bool crc;
	char file[LS_BINLOG_FILE_MAX];
	uint64_t offset;
	bool delivered;            /* got past the dump request */
};

static bool retryable_code(unsigned e)
{
	return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST ||
	       e == CR_CONN_HOST_ERROR || e == CR_CONNECTION_ERROR ||
	       e == CR_SERVER_LOST_EXTENDED || e == 1053 || e == 1927 ||
	       e == 0;
}

static int sql_fail(struct session *s, struct ls_err *err, const char *what)
{
	unsigned e = mysql_errno(s->m);
	return ls_err_set(err, retryable_code(e), "binlog %s: %s (error %u)",
		what, mysql_error(s->m), e);
}

/* Session variables that make the server stream to us as a GTID-aware,
 * checksum-aware MariaDB replica (see the header). */
static int prepare_session(struct ls_mybinlog *b, struct session *s,
			   const char *from, struct ls_err *err)
{
	char sql[LS_POS_TEXT_MAX + 64], *crc = NULL;
	if (mysql_query(s->m, "SET @master_binlog_checksum = @@global.binlog_checksum") ||
	    mysql_query(s->m, "SET @mariadb_slave_capability = 4"))
		return sql_fail(s, err, "session setup");
	snprintf(sql, sizeof sql, "SET @master_heartbeat_period = %llu",
		(unsigned long long)b->heartbeat_ns);
	if (mysql_query(s->m, sql))
		return sql_fail(s, err, "heartbeat setup");
	if (!b->file_mode) {
		/* from was validated as a GTID set: digits, '-' and ',' only */
		snprintf(sql, sizeof sql, "SET @slave_connect_state = '%s'", from);
		if (mysql_query(s->m, sql))
			return sql_fail(s, err, "GTID start");
	}
	if (ls_mysetup_query1(s->m, "SELECT @@global.binlog_checksum", &crc, err) != 0)
		return -1;
	s->crc = crc != NULL && strcasecmp(crc, "NONE") != 0;
	free(crc);
	return 0;
}

static int open_dump(struct ls_mybinlog *b, struct session *s, const char *from,
		     struct ls_err *err)
{
	struct ls_binlog_pos fp;
	s->rpl = mariadb_rpl_init(s->m);
	if (s->rpl == NULL)
		return sql_fail(s, err, "replication init");
	mariadb_rpl_optionsv(s->rpl, MARIADB_RPL_SERVER_ID, (unsigned)b->server_id);
	mariadb_rpl_optionsv(s->rpl, MARIADB_RPL_FLAGS, 0u);
	if (b->file_mode) {
		if (ls_binlog_pos_parse(from, &fp, err) != 0)
			return ls_err_prefix(err, "binlog start");
		mariadb_rpl_optionsv(s->rpl, MARIADB_RPL_FILENAME, fp.file,
			strlen(fp.file));
		mariadb_rpl_optionsv(s->rpl, MARIADB_RPL_START,
			(unsigned long)fp.offset);
	} else {
		mariadb_rpl_optionsv(s->rpl, MARIADB_RPL_FILENAME, "", (size_t)0);
		mariadb_rpl_optionsv(s->rpl, MARIADB_RPL_START, 4ul);
	}
	pthread_mutex_lock(&b->mu);
	b->sock = (int)mysql_get_socket(s->m);
	bool stop = b->stop;
	pthread_mutex_unlock(&b->mu);
	if (stop)
		return 1;
	if (mariadb_rpl_open(s->rpl) != 0) {
		unsigned e = mysql_errno(s->m);
		return ls_err_set(err, retryable_code(e) && e != 0, "binlog dump "
			"from \"%s\" refused: %s (error %u)", from, mysql_error(s->m), e);
	}
	return 0;
}

/* Copies one fetched event into a queue item and tracks the position. */
static struct item *copy_event(struct session *s, const MARIADB_RPL_EVENT *e)
{
	const uint8_t *h = e->raw_data + e->raw_data_ofs;
	size_t avail = e->raw_data_size - e->raw_data_ofs;
	if (e->raw_data_size < e->raw_data_ofs || avail < LS_MYEV_HEADER_LEN)
		return NULL;
	size_t len = rd4(h + 9);
	if (len > avail)
		len = avail;
	if (s->crc && len >= LS_MYEV_HEADER_LEN + 4)
		len -= 4;
	struct item *it = malloc(sizeof *it + len);
	if (it == NULL)
		return NULL;
	memset(it, 0, sizeof *it);
	it->kind = IT_EVENT;
	memcpy(it->bytes, h, len);
	struct ls_mybinlog_event *ev = &it->ev;
	ev->data = it->bytes;
	ev->len = len;
	ev->timestamp = rd4(h);
	ev->type = h[4];
	ev->server_id = rd4(h + 5);
	ev->flags = (uint16_t)(h[17] | h[18] << 8);
	uint32_t log_pos = rd4(h + 13);
	if (ev->type == LS_MYEV_ROTATE) {
		uint64_t pos;
		char file[LS_BINLOG_FILE_MAX];
		if (ls_mybinlog_parse_rotate(ev, file, sizeof file, &pos) == 0) {
			snprintf(s->file, sizeof s->file, "%s", file);
			s->offset = pos;
		}
	} else if (ev->type == LS_MYEV_HEARTBEAT) {
		size_t n = len - LS_MYEV_HEADER_LEN;
		if (n > 0 && n < sizeof s->file) {
			memcpy(s->file, h + LS_MYEV_HEADER_LEN, n);
			s->file[n] = '\0';
		}
		if (log_pos)
			s->offset = log_pos;
	} else if (log_pos != 0) {
		s->offset = log_pos;
	}
	make_pos(&ev->pos, s->file, s->offset);
	return it;
}

static void end_session(struct ls_mybinlog *b, struct session *s)
{
	pthread_mutex_lock(&b->mu);
	b->sock = -1;
	pthread_mutex_unlock(&b->mu);
	atomic_store(&b->connected, false);
	if (s->rpl)
		mariadb_rpl_close(s->rpl);
	if (s->m)
		mysql_close(s->m);
}

/* Streams until an error (returns -1 with err) or a stop (returns 0). */
static int run_session(struct ls_mybinlog *b, const char *from, bool *streamed,
		       struct ls_err *err)
{
	struct session s = { 0 };
	MARIADB_RPL_EVENT *e = NULL;
	int rc;

	s.m = ls_mysetup_connect(&b->conn, b->read_timeout_s, err);
	if (s.m == NULL)
		return -1;
	rc = prepare_session(b, &s, from, err);
	if (rc == 0)
		rc = open_dump(b, &s, from, err);
	if (rc != 0) {
		end_session(b, &s);
		return rc > 0 ? 0 : -1;
	}
	atomic_store(&b->connected, true);
	*streamed = true;
	for (;;) {
		e = mariadb_rpl_fetch(s.rpl, e);
		if (e == NULL) {
			if (stopping(b)) {
				rc = 0;
				break;
			}
			unsigned code = mariadb_rpl_errno(s.rpl);
			const char *msg = mariadb_rpl_error(s.rpl);
			if (code == 0) {
				code = mysql_errno(s.m);
				msg = mysql_error(s.m);
			}
			rc = ls_err_set(err, retryable_code(code), "binlog stream "
				"at %s:%llu: %s (error %u)", s.file[0] ? s.file :
				"?", (unsigned long long)s.offset, msg && msg[0] ?
				msg : "the server ended the stream", code);
			break;
		}
		struct item *it = copy_event(&s, e);
		if (it == NULL) {
			rc = ls_err_set(err, false, "binlog event too short or out "
				"of memory at %s:%llu", s.file,
				(unsigned long long)s.offset);
			break;
		}
		if (push(b, it, it->ev.len) != 0) {
			rc = 0;
			break;
		}
	}
	mariadb_free_rpl_event(e);
	end_session(b, &s);
	return rc;
}

static uint32_t next_rnd(struct ls_mybinlog *b)
{
	b->rnd ^= b->rnd >> 12;
	b->rnd ^= b->rnd << 25;
	b->rnd ^= b->rnd >> 27;
	return (uint32_t)((b->rnd * 2685821657736338717ull) >> 32);
}

/* Waits ms or until stop; true when stopping. */
static bool wait_backoff(struct ls_mybinlog *b, uint64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&b->mu);
	while (!b->stop)
		if (pthread_cond_timedwait(&b->cond, &b->mu, &ts) == ETIMEDOUT)
			break;
	bool s = b->stop;
	pthread_mutex_unlock(&b->mu);
	return s;
}

static void *reader_main(void *arg)
{
	struct ls_mybinlog *b = arg;
	uint64_t prev = 0;
	bool first = true;
	char from[LS_POS_TEXT_MAX];

	while (!stopping(b)) {
		if (!first) {
			prev = ls_mybinlog_backoff_ms(prev, b->base_ms, b->cap_ms,
				next_rnd(b));
			if (wait_backoff(b, prev))
				break;
		}
		pthread_mutex_lock(&b->mu);
		snprintf(from, sizeof from, "%s", b->resume);
		pthread_mutex_unlock(&b->mu);
		if (!first)
			push_simple(b, IT_RECONNECT, NULL, from);
		first = false;

		struct ls_err err = { 0 };
		bool streamed = false;
		if (run_session(b, from, &streamed, &err) == 0)
			break;
		if (streamed)
			prev = 0;     /* a working session: back off from scratch */
		if (stopping(b))
			break;
		push_simple(b, IT_ERROR, &err, NULL);
		if (!err.retryable)
			break;
	}
	push_simple(b, IT_EXIT, NULL, NULL);
	return NULL;
}

/* ---- the loop side ------------------------------------------------------------ */

static void on_closed(uv_handle_t *h)
{
	struct ls_mybinlog *b = h->data;
	void (*cb)(void *) = b->close_cb;
	void *data = b->data;
	struct item *it = b->head;
	while (it) {
		struct item *n = it->next;
		free(it);
		it = n;
	}
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cond);
	ls_mysetup_conn_free(&b->conn);
	free(b);
	if (cb)
		cb(data);
}

/* Puts the undelivered rest of a drained list back at the queue's head. */
static void put_back(struct ls_mybinlog *b, struct item *rest)
{
	if (rest == NULL)
		return;
	struct item *last = rest;
	size_t n = 1, bytes = rest->kind == IT_EVENT ? rest->ev.len : 0;
	while (last->next) {
		last = last->next;
		n++;
		bytes += last->kind == IT_EVENT ? last->ev.len : 0;
	}
	pthread_mutex_lock(&b->mu);
	last->next = b->head;
	b->head = rest;
	if (b->tail == NULL)
		b->tail = last;
	b->q_events += n;
	b->q_bytes += bytes;
	pthread_mutex_unlock(&b->mu);
}

static void deliver(struct ls_mybinlog *b, struct item *it)
{
	switch (it->kind) {
	case IT_EVENT:
		if (!b->closing) {
			b->events++;
			b->cbs.on_event(b, &it->ev);
		}
		break;
	case IT_ERROR:
		if (!b->closing && b->cbs.on_error)
			b->cbs.on_error(b, &it->err);
		break;
	case IT_RECONNECT:
		b->reconnects++;
		if (!b->closing && b->cbs.on_reconnect)
			b->cbs.on_reconnect(b, it->from);
		break;
	case IT_EXIT:
		pthread_join(b->thread, NULL);
		b->joined = true;
		if (b->closing)
			uv_close((uv_handle_t *)&b->async, on_closed);
		break;
	}
}

static void on_async(uv_async_t *h)
{
	struct ls_mybinlog *b = h->data;
	if ((b->paused && !b->closing) || b->draining || uv_is_closing((uv_handle_t *)h))
		return;
	pthread_mutex_lock(&b->mu);
	struct item *list = b->head;
	b->head = b->tail = NULL;
	b->q_events = b->q_bytes = 0;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->mu);

	b->draining = true;
	while (list) {
		if (b->paused && !b->closing) {
			put_back(b, list);
			break;
		}
		struct item *it = list;
		list = it->next;
		deliver(b, it);
		free(it);
	}
	b->draining = false;
}

struct ls_mybinlog *ls_mybinlog_start(uv_loop_t *loop,
	const struct ls_mybinlog_opts *o, const struct ls_mybinlog_cbs *cbs,
	void *data, struct ls_err *err)
{
	struct ls_gtid_set set;
	struct ls_binlog_pos fp;
	if (o->conn == NULL || cbs->on_event == NULL) {
		ls_err_set(err, false, "binlog reader: connection and on_event needed");
		return NULL;
	}
	struct ls_mybinlog *b = calloc(1, sizeof *b);
	if (b == NULL) {
		ls_err_set(err, false, "out of memory");
		return NULL;
	}
	b->loop = loop;
	b->cbs = *cbs;
	b->data = data;
	b->sock = -1;
	b->file_mode = o->start_file != NULL;
	if (b->file_mode) {
		snprintf(b->resume, sizeof b->resume, "%s:%llu", o->start_file,
			(unsigned long long)o->start_offset);
		if (ls_binlog_pos_parse(b->resume, &fp, err) != 0)
			goto fail_prefix;
	} else {
		const char *g = o->start_gtid ? o->start_gtid : "";
		if (ls_gtid_set_parse(g, &set, err) != 0)
			goto fail_prefix;
		ls_gtid_set_format(&set, b->resume, sizeof b->resume);
	}
	b->server_id = o->server_id ? o->server_id :
		ls_mybinlog_server_id(o->name, o->source_server_id);
	if (b->server_id == o->source_server_id) {
		ls_err_set(err, false, "binlog reader: server id %u is the source "
			"server's own; choose another", b->server_id);
		goto fail;
	}
	b->heartbeat_ns = (uint64_t)(o->heartbeat_ms > 0 ? o->heartbeat_ms : 1000) *
		1000000ull;
	b->read_timeout_s = (unsigned)(o->read_timeout_s > 0 ? o->read_timeout_s : 30);
	b->base_ms = (uint64_t)(o->reconnect_base_ms > 0 ? o->reconnect_base_ms : 500);
	b->cap_ms = (uint64_t)(o->reconnect_cap_ms > 0 ? o->reconnect_cap_ms : 30000);
	b->rnd = (uint64_t)uv_hrtime() | 1;
	b->conn.host = strdup(o->conn->host);
	b->conn.user = strdup(o->conn->user);
	b->conn.password = strdup(o->conn->password);
	b->conn.database = strdup("");
	b->conn.port = o->conn->port;
	if (!b->conn.host || !b->conn.user || !b->conn.password || !b->conn.database) {
		ls_err_set(err, false, "out of memory");
		goto fail;
	}
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cond, NULL);
	uv_async_init(loop, &b->async, on_async);
	b->async.data = b;
	if (pthread_create(&b->thread, NULL, reader_main, b) != 0) {
		ls_err_set(err, true, "binlog reader: cannot start a thread");
		b->joined = true;
		ls_mybinlog_close(b, NULL);
		return NULL;
	}
	return b;
fail_prefix:
	ls_err_prefix(err, "binlog reader start position");
fail:
	ls_mysetup_conn_free(&b->conn);
	free(b);
	return NULL;
}

void *ls_mybinlog_data(const struct ls_mybinlog *b)
{
	return b->data;
}

int ls_mybinlog_set_resume(struct ls_mybinlog *b, const char *pos)
{
	struct ls_gtid_set set;
	struct ls_binlog_pos fp;
	char canon[LS_POS_TEXT_MAX];
	if (strlen(pos) >= sizeof canon)
		return -1;
	if (b->file_mode) {
		if (ls_binlog_pos_parse(pos, &fp, NULL) != 0)
			return -1;
		snprintf(canon, sizeof canon, "%s", pos);
	} else if (ls_gtid_set_parse(pos, &set, NULL) != 0 ||
		   ls_gtid_set_format(&set, canon, sizeof canon) < 0) {
		return -1;
	}
	pthread_mutex_lock(&b->mu);
	snprintf(b->resume, sizeof b->resume, "%s", canon);
	pthread_mutex_unlock(&b->mu);
	return 0;
}

void ls_mybinlog_pause(struct ls_mybinlog *b)
{
	b->paused = true;
}

void ls_mybinlog_resume(struct ls_mybinlog *b)
{
	if (!b->paused)
		return;
	b->paused = false;
	uv_async_send(&b->async);
}

void ls_mybinlog_close(struct ls_mybinlog *b, void (*close_cb)(void *data))
{
	b->closing = true;
	b->close_cb = close_cb;
	pthread_mutex_lock(&b->mu);
	b->stop = true;
	if (b->sock >= 0)
		shutdown(b->sock, SHUT_RDWR);
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->mu);
	if (b->joined)
		uv_close((uv_handle_t *)&b->async, on_closed);
	else
		uv_async_send(&b->async);
}

void ls_mybinlog_stats(const struct ls_mybinlog *b, struct ls_mybinlog_stats *out)
{
	out->events = b->events;
	out->reconnects = b->reconnects;
	out->server_id = b->server_id;
	out->connected = atomic_load(&b->connected);
}
