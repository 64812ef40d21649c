/* my_binlog — the MariaDB binlog as a replica sees it, handed to the libuv
 * loop.
 *
 * A reader thread connects (its own MYSQL connection), registers as a
 * replica with its own server id and asks for the binlog from a GTID
 * position or a file:offset, then blocks in mariadb_rpl_fetch.  Each event
 * is copied (header and body, checksum stripped) into a bounded queue and
 * the loop is woken with a uv_async_t; the loop drains the whole queue on
 * each wake-up (wake-ups merge) and calls on_event for each, in binlog
 * order.  When the queue is full (LS_MYBINLOG_QUEUE_EVENTS events or
 * LS_MYBINLOG_QUEUE_BYTES bytes, whichever first; one event larger than
 * that still passes alone) the reader waits: that is the backpressure, and
 * memory stays bounded.  pause() stops draining, so the reader soon waits
 * too and the backlog stays in the server's binlog.
 *
 * How the stream is started (Connector/C 3.3 against MariaDB 10.11; the
 * rpl API has no GTID option that works for MariaDB, so we use the
 * server's replica session variables, as a MariaDB replica does):
 *   SET @master_binlog_checksum = @@global.binlog_checksum
 *       (without it the server refuses a checksum-aware binlog);
 *   SET @mariadb_slave_capability = 4   (GTID-aware: real GTID events);
 *   SET @master_heartbeat_period = <ns> (heartbeats when idle);
 *   GTID start:  SET @slave_connect_state = '<gtid set>', then
 *                COM_BINLOG_DUMP with an empty file name and position 4;
 *   file start:  COM_BINLOG_DUMP with MARIADB_RPL_FILENAME/START.
 * The server first sends an artificial ROTATE (the file it starts in) and a
 * FORMAT_DESCRIPTION; after a GTID start, an artificial GTID_LIST.  A GTID
 * start resumes *after* the given transactions: "0-1-100" streams 0-1-101
 * onwards.  Two connections dumping with the same server id make the server
 * drop the older one, so the id must be unique among the server's replicas
 * (ls_mybinlog_server_id derives one from the pipeline name).
 *
 * Errors.  A lost connection (server restart, network) or a refused dump
 * (purged GTID, bad position) reaches on_error on the loop after every
 * event read before it, with retryable set for connection losses.  The
 * reader then reconnects by itself after a backoff (decorrelated jitter,
 * reconnect_base_ms .. reconnect_cap_ms) from the position the caller last
 * gave to ls_mybinlog_set_resume (or the start position), calling
 * on_reconnect first on the loop; the caller must drop a transaction it
 * had not seen the end of.  A fatal error stops the reader.
 *
 * Stopping.  mariadb_rpl_fetch blocks; ls_mybinlog_close() wakes it by
 * shutdown() of the connection's socket (and the condition variable when
 * the reader waits on a full queue or a backoff), so close never hangs; the
 * thread is joined from the loop once it has said it is done.
 *
 * All calls are on the loop thread, callbacks too.
 */
#ifndef LS_MY_BINLOG_H
#define LS_MY_BINLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "err.h"
#include "pos.h"
#include "connectors/mysql/my_setup.h"

#define LS_MYBINLOG_QUEUE_EVENTS 4096
#define LS_MYBINLOG_QUEUE_BYTES (16u << 20)

/* Event type codes (mariadb_rpl.h has them too; repeated so users of this
 * header need not include it). */
enum ls_mybinlog_type {
	LS_MYEV_QUERY = 2,
	LS_MYEV_ROTATE = 4,
	LS_MYEV_FORMAT_DESCRIPTION = 15,
	LS_MYEV_XID = 16,
	LS_MYEV_TABLE_MAP = 19,
	LS_MYEV_WRITE_ROWS_V1 = 23,
	LS_MYEV_UPDATE_ROWS_V1 = 24,
	LS_MYEV_DELETE_ROWS_V1 = 25,
	LS_MYEV_HEARTBEAT = 27,
	LS_MYEV_WRITE_ROWS = 30,
	LS_MYEV_UPDATE_ROWS = 31,
	LS_MYEV_DELETE_ROWS = 32,
	LS_MYEV_ANNOTATE_ROWS = 160,
	LS_MYEV_BINLOG_CHECKPOINT = 161,
	LS_MYEV_GTID = 162,
	LS_MYEV_GTID_LIST = 163,
};

#define LS_MYEV_HEADER_LEN 19
#define LS_MYEV_F_ARTIFICIAL 0x0020    /* header flag: not in the binlog file */

/* GTID event flags (flags2). */
#define LS_MYGTID_STANDALONE 0x01      /* no COMMIT/XID ends the group */
#define LS_MYGTID_TRANSACTIONAL 0x04
#define LS_MYGTID_DDL 0x20

/* One binlog event, borrowed for the on_event call. */
struct ls_mybinlog_event {
	uint8_t type;              /* enum ls_mybinlog_type or another code */
	uint16_t flags;            /* header flags (LS_MYEV_F_*) */
	uint32_t timestamp;        /* seconds since the epoch (source clock) */
	uint32_t server_id;        /* the server that wrote it */
	/* Where it is: the binlog file (from the last ROTATE) and the end of
	 * the event in it (the header's log_pos; 0 for some artificial events,
	 * then pos.offset is the previous event's end).  For a HEARTBEAT, the
	 * server's current file and position. */
	struct ls_binlog_pos pos;
	const uint8_t *data;       /* the whole event: 19-byte header + body */
	size_t len;                /* without the checksum */
};

/* Parsed bodies (pure: they read ev->data only; -1 on a short event). */
struct ls_mybinlog_gtid {
	struct ls_gtid gtid;       /* domain, server (header), seq */
	uint8_t flags;             /* LS_MYGTID_* */
	uint64_t commit_id;        /* group commit id, 0 when none */
};
int ls_mybinlog_parse_gtid(const struct ls_mybinlog_event *ev,
	struct ls_mybinlog_gtid *out);
/* XID: the InnoDB transaction id (the commit of a GTID group). */
int ls_mybinlog_parse_xid(const struct ls_mybinlog_event *ev, uint64_t *xid);
/* QUERY: default database and statement text (borrowed, not terminated). */
struct ls_mybinlog_query {
	const char *db;
	size_t db_len;
	const char *sql;
	size_t sql_len;
	uint32_t thread_id;
};
int ls_mybinlog_parse_query(const struct ls_mybinlog_event *ev,
	struct ls_mybinlog_query *out);
/* ROTATE: next file and position. */
int ls_mybinlog_parse_rotate(const struct ls_mybinlog_event *ev,
	char *file, size_t file_size, uint64_t *pos);
/* TABLE_MAP: table id, database and table names (borrowed). */
struct ls_mybinlog_table_map {
	uint64_t table_id;
	const char *db;
	size_t db_len;
	const char *table;
	size_t table_len;
};
int ls_mybinlog_parse_table_map(const struct ls_mybinlog_event *ev,
	struct ls_mybinlog_table_map *out);
/* Table id of a rows event (v1 or v2 layout, 6-byte ids). */
int ls_mybinlog_rows_table_id(const struct ls_mybinlog_event *ev, uint64_t *id);

struct ls_mybinlog;

struct ls_mybinlog_cbs {
	void (*on_event)(struct ls_mybinlog *b, const struct ls_mybinlog_event *ev);
	/* err borrowed; see "Errors" above (may be NULL). */
	void (*on_error)(struct ls_mybinlog *b, const struct ls_err *err);
	/* About to reconnect from this GTID set or file:offset (may be NULL). */
	void (*on_reconnect)(struct ls_mybinlog *b, const char *from);
};

struct ls_mybinlog_opts {
	const struct ls_myconn *conn;  /* borrowed, copied */
	uint32_t server_id;        /* ours as a replica; 0 = derive from name */
	const char *name;          /* pipeline name for the default server id */
	uint32_t source_server_id; /* the server's own id (never ours) */
	/* Start: a GTID set ("" = the whole binlog) or, when start_file is
	 * set, start_file:start_offset.  Exactly one is used: start_file wins. */
	const char *start_gtid;
	const char *start_file;
	uint64_t start_offset;
	int heartbeat_ms;          /* default 1000; 0 keeps the default */
	int read_timeout_s;        /* default 30 (must exceed the heartbeat) */
	int reconnect_base_ms;     /* default 500 */
	int reconnect_cap_ms;      /* default 30000 */
};

/* Allocates a reader for loop and starts its thread.  NULL with err set on
 * bad options or when the thread cannot start; connection errors go to
 * on_error. */
struct ls_mybinlog *ls_mybinlog_start(uv_loop_t *loop,
	const struct ls_mybinlog_opts *opts, const struct ls_mybinlog_cbs *cbs,
	void *data, struct ls_err *err);
void *ls_mybinlog_data(const struct ls_mybinlog *b);

/* The position to resume from after a reconnect: a GTID set (the caller's
 * last complete transaction) or, for a file start, "file:offset".
 * Copied.  Returns -1 when too long. */
int ls_mybinlog_set_resume(struct ls_mybinlog *b, const char *pos);

/* Backpressure: stop / restart delivering events (the reader then waits
 * once the queue is full).  Both may be called from callbacks. */
void ls_mybinlog_pause(struct ls_mybinlog *b);
void ls_mybinlog_resume(struct ls_mybinlog *b);

/* Stops the reader and releases everything; close_cb (may be NULL) runs on
 * the loop once the thread is joined and the handles are closed; b is gone
 * then.  No callback fires after this call.  Call once. */
void ls_mybinlog_close(struct ls_mybinlog *b, void (*close_cb)(void *data));

struct ls_mybinlog_stats {
	uint64_t events;           /* delivered to on_event */
	uint64_t reconnects;
	uint32_t server_id;        /* ours */
	bool connected;
};
void ls_mybinlog_stats(const struct ls_mybinlog *b, struct ls_mybinlog_stats *out);

/* A replica server id derived from name (FNV-1a), in [2, 2^31), never
 * equal to avoid (the source server's own id). */
uint32_t ls_mybinlog_server_id(const char *name, uint32_t avoid);

/* The session server id lockstep's apply writes with for replication origin
 * `origin` (e.g. lockstep_<pipeline>), so a source reading that server's
 * binlog can tell lockstep's own transactions apart (skip_origins).  FNV-1a
 * in [2^31, 2^32 - 1): never one ls_mybinlog_server_id derives. */
uint32_t ls_mybinlog_origin_id(const char *origin);

/* Decorrelated jitter: min(cap, random in [base, prev * 3]). */
uint64_t ls_mybinlog_backoff_ms(uint64_t prev, uint64_t base, uint64_t cap,
	uint32_t rnd);

#endif
