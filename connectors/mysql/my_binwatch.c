#include "connectors/mysql/my_binwatch.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mariadb_rpl.h>

#include "log.h"
#include "poller.h"
#include "pos.h"

#define DEFAULT_INTERVAL_MS 1000
#define FDE_EVENT 15
#define FIRST_EVENTS 4                 /* a fake ROTATE, then the file's FDE */

/* MySQL has neither @@gtid_binlog_pos nor (before 8.0) the seconds variable;
 * the second form keeps the clock and expiry where it works. */
static const char *const SQL_NOW =
	"SELECT @@global.gtid_binlog_pos, UNIX_TIMESTAMP(NOW(6)),"
	" @@global.binlog_expire_logs_seconds, @@global.expire_logs_days";
static const char *const SQL_NOW_MYSQL =
	"SELECT '', UNIX_TIMESTAMP(NOW(6)), 0, @@global.expire_logs_days";

struct ls_mybw {
	struct ls_poller poll;
	const struct ls_myconn *conn;
	char *name;
	uint32_t dump_id;
	int interval_ms;
	uint64_t (*needed)(void *ctx);
	void *ctx;
	void (*close_cb)(void *arg);
	void *close_arg;
	/* published on the loop */
	struct ls_source_lag sample;
	bool failing;
	/* --- the work thread's, read by the loop in after_work --- */
	MYSQL *m;
	uint64_t need_seq;             /* set on the loop before queueing */
	uint64_t floor_seq;            /* the first position seen (need_seq 0) */
	uint32_t ts_fileno;            /* cache: file number -> its FDE time */
	int64_t ts_sec;                /* 0 none */
	bool ok;
	char errmsg[300];
	struct ls_source_lag got;
};

/* ---- the work thread ----------------------------------------------------------- */

static void set_err(struct ls_mybw *h, const char *what, MYSQL *m)
{
	snprintf(h->errmsg, sizeof h->errmsg, "%s: %s", what, m ? mysql_error(m) : "?");
	h->errmsg[strcspn(h->errmsg, "\n")] = '\0';
}

static bool ensure_conn(struct ls_mybw *h)
{
	if (h->m != NULL && mysql_ping(h->m) == 0)
		return true;
	if (h->m != NULL)
		mysql_close(h->m);
	struct ls_err err = { 0 };
	h->m = ls_mysetup_connect(h->conn, 10, &err);
	if (h->m == NULL)
		snprintf(h->errmsg, sizeof h->errmsg, "%.290s", err.msg);
	return h->m != NULL;
}

/* Runs sql; the result (NULL with errmsg set on failure) is the caller's. */
static MYSQL_RES *query(struct ls_mybw *h, const char *sql, const char *what)
{
	MYSQL_RES *r = NULL;
	if (mysql_query(h->m, sql) != 0 || (r = mysql_store_result(h->m)) == NULL)
		set_err(h, what, h->m);
	return r;
}

static bool sample_now(struct ls_mybw *h)
{
	uint64_t t0 = uv_hrtime();
	MYSQL_RES *r = NULL;
	if (mysql_query(h->m, SQL_NOW) == 0)
		r = mysql_store_result(h->m);
	else
		r = query(h, SQL_NOW_MYSQL, "server clock");
	uint64_t t1 = uv_hrtime();
	MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
	if (row == NULL || row[1] == NULL) {
		if (h->errmsg[0] == '\0')
			snprintf(h->errmsg, sizeof h->errmsg, "server clock: unexpected reply");
		mysql_free_result(r);
		return false;
	}
	struct ls_source_lag *g = &h->got;
	snprintf(g->now.text, sizeof g->now.text, "%s", row[0] ? row[0] : "");
	g->now_time_us = (int64_t)(strtod(row[1], NULL) * 1e6);
	g->taken_ns = t0 + (t1 - t0) / 2;
	long long secs = row[2] ? strtoll(row[2], NULL, 10) : 0;
	double days = row[3] ? strtod(row[3], NULL) : 0;
	g->expire_s = secs > 0 ? secs : (int64_t)(days * 86400);
	mysql_free_result(r);
	return true;
}

/* The file and offset the server writes at, as a seq. */
static bool sample_master(struct ls_mybw *h)
{
	MYSQL_RES *r = query(h, "SHOW MASTER STATUS", "SHOW MASTER STATUS");
	MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
	char text[LS_BINLOG_FILE_MAX + 32];
	struct ls_binlog_pos p;
	bool ok = false;
	if (row != NULL && row[0] && row[1]) {
		snprintf(text, sizeof text, "%s:%s", row[0], row[1]);
		ok = ls_binlog_pos_parse(text, &p, NULL) == 0 &&
		     ls_binlog_pos_seq(&p, &h->got.now.seq, NULL) == 0;
	}
	if (!ok && h->errmsg[0] == '\0')
		snprintf(h->errmsg, sizeof h->errmsg, "SHOW MASTER STATUS: binary log off?");
	mysql_free_result(r);
	h->got.now_known = ok;
	return ok;
}

/* Seconds since the epoch of the Format_description event opening file
 * (when the server opened it); 0 when it cannot be read. */
static int64_t file_start(struct ls_mybw *h, const char *file)
{
	struct ls_err err = { 0 };
	MYSQL *m = ls_mysetup_connect(h->conn, 10, &err);
	if (m == NULL)
		return 0;
	int64_t ts = 0;
	MARIADB_RPL *rpl = NULL;
	if (mysql_query(m, "SET @master_binlog_checksum = @@global.binlog_checksum") == 0 &&
	    mysql_query(m, "SET @mariadb_slave_capability = 4") == 0 &&
	    (rpl = mariadb_rpl_init(m)) != NULL) {
		mariadb_rpl_optionsv(rpl, MARIADB_RPL_SERVER_ID, (unsigned)h->dump_id);
		mariadb_rpl_optionsv(rpl, MARIADB_RPL_FLAGS,
				     (unsigned)MARIADB_RPL_BINLOG_DUMP_NON_BLOCK);
		mariadb_rpl_optionsv(rpl, MARIADB_RPL_FILENAME, file, strlen(file));
		mariadb_rpl_optionsv(rpl, MARIADB_RPL_START, 4ul);
		MARIADB_RPL_EVENT *e = NULL;
		if (mariadb_rpl_open(rpl) == 0)
			for (int i = 0; i < FIRST_EVENTS && ts == 0; i++) {
				if ((e = mariadb_rpl_fetch(rpl, e)) == NULL)
					break;
				if (e->event_type == FDE_EVENT && e->timestamp != 0)
					ts = e->timestamp;
			}
		mariadb_free_rpl_event(e);
		mariadb_rpl_close(rpl);
	}
	mysql_close(m);
	return ts;
}

static uint32_t seq_file(uint64_t seq) { return (uint32_t)(seq >> 32); }
static uint64_t seq_offset(uint64_t seq) { return seq & 0xffffffffu; }

/* Bytes from the restart point to the end of the binlog, the file holding
 * it and its age. */
static bool sample_logs(struct ls_mybw *h)
{
	struct ls_source_lag *g = &h->got;
	uint64_t need = h->need_seq ? h->need_seq : h->floor_seq;
	MYSQL_RES *r = query(h, "SHOW BINARY LOGS", "SHOW BINARY LOGS");
	if (r == NULL)
		return false;
	uint64_t bytes = 0;
	char file[128] = "";
	bool found = false, any = false;
	MYSQL_ROW row;
	while ((row = mysql_fetch_row(r)) != NULL) {
		char text[LS_BINLOG_FILE_MAX + 8];
		struct ls_binlog_pos p;
		snprintf(text, sizeof text, "%s:0", row[0] ? row[0] : "");
		if (row[1] == NULL || ls_binlog_pos_parse(text, &p, NULL) < 0)
			continue;
		any = true;
		if (p.fileno < seq_file(need))
			continue;
		if (p.fileno == seq_file(need)) {
			found = true;
			snprintf(file, sizeof file, "%.127s", p.file);
		}
		bytes += strtoull(row[1], NULL, 10);
	}
	mysql_free_result(r);
	g->slot_known = true;
	snprintf(g->slot, sizeof g->slot, "%s", h->name);
	g->safe_wal_size = g->max_keep_size = -1;
	g->oldest_age_s = -1;
	g->oldest_active = seq_file(need) == seq_file(g->now.seq);
	if (!found) {
		/* purged (or, with no file at all, nothing to say) */
		snprintf(g->wal_status, sizeof g->wal_status, "%s", any ? "lost" : "");
		snprintf(g->oldest_file, sizeof g->oldest_file, "#%" PRIu32, seq_file(need));
		return true;
	}
	snprintf(g->wal_status, sizeof g->wal_status, "reserved");
	snprintf(g->oldest_file, sizeof g->oldest_file, "%s", file);
	g->retained_bytes = bytes > seq_offset(need) ? bytes - seq_offset(need) : 0;
	if (h->ts_sec == 0 || h->ts_fileno != seq_file(need)) {
		h->ts_sec = file_start(h, file);
		h->ts_fileno = seq_file(need);
	}
	if (h->ts_sec > 0) {
		int64_t age = g->now_time_us / 1000000 - h->ts_sec;
		g->oldest_age_s = age > 0 ? age : 0;
	}
	return true;
}

static void work_cb(void *ctx)
{
	struct ls_mybw *h = ctx;
	h->ok = false;
	h->errmsg[0] = '\0';
	memset(&h->got, 0, sizeof h->got);
	if (!ensure_conn(h) || !sample_now(h) || !sample_master(h))
		return;
	if (h->floor_seq == 0)
		h->floor_seq = h->got.now.seq;
	h->ok = sample_logs(h);
}

/* ---- the loop --------------------------------------------------------------------- */

static void free_bw(void *ctx)
{
	struct ls_mybw *h = ctx;
	void (*cb)(void *) = h->close_cb;
	void *arg = h->close_arg;
	if (h->m != NULL)
		mysql_close(h->m);
	free(h->name);
	free(h);
	if (cb)
		cb(arg);
}

static void after_work(void *ctx, int status)
{
	struct ls_mybw *h = ctx;
	if (status == 0 && h->ok)
		h->sample = h->got;
	bool failed = status != 0 || !h->ok;
	if (failed && !h->failing)
		ls_warn("mysql source binlog watch: %s", status != 0 ? uv_strerror(status) :
			h->errmsg);
	else if (!failed && h->failing)
		ls_notice("mysql source binlog watch: working again");
	h->failing = failed;
}

/* The loop's view of where the source must keep its binlog, handed to the
 * work thread before each run. */
static void before_work(void *ctx)
{
	struct ls_mybw *h = ctx;
	h->need_seq = h->needed ? h->needed(h->ctx) : 0;
}

int ls_mybw_new(uv_loop_t *loop, const struct ls_mybw_opts *o, struct ls_mybw **out,
		struct ls_err *err)
{
	*out = NULL;
	struct ls_mybw *h = calloc(1, sizeof *h);
	if (h == NULL || (h->name = strdup(o->name ? o->name : "binlog")) == NULL) {
		free(h);
		return ls_err_set(err, false, "mysql binlog watch: out of memory");
	}
	h->conn = o->conn;
	h->dump_id = o->dump_server_id;
	h->needed = o->needed;
	h->ctx = o->ctx;
	h->interval_ms = o->interval_ms > 0 ? o->interval_ms : DEFAULT_INTERVAL_MS;
	ls_poller_start(&h->poll, loop, h->interval_ms, before_work, work_cb, after_work, h);
	*out = h;
	return 0;
}

void ls_mybw_sample(const struct ls_mybw *h, struct ls_source_lag *out)
{
	*out = h->sample;
}

void ls_mybw_close(struct ls_mybw *h, void (*cb)(void *arg), void *arg)
{
	if (h == NULL) {
		if (cb)
			cb(arg);
		return;
	}
	h->close_cb = cb;
	h->close_arg = arg;
	ls_poller_close(&h->poll, free_bw);
}
