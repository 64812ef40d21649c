/* lag — how far each stage and each target is behind the source, in bytes
 * of the source's log and in seconds of the SOURCE's clock.
 *
 * Positions (ARCHITECTURE.md, "Positions and counters"), as seq numbers
 * (PostgreSQL: LSN) with their text:
 *   source   the source's current write position (a sample: heartbeat query
 *            or keepalive; never older than a read commit)
 *   read     what capture has read (last commit, or the idle position)
 *   durable  what the source was told is consumed (buffer acknowledged)
 *   applied  what a target committed (per target)
 * and the numbers:
 *   source_lag_bytes   = source - read
 *   apply_lag_bytes    = source - applied                    (per target;
 *                        a target that applied every commit read counts
 *                        as applied up to the read position)
 *   apply_lag_seconds  = source clock now - commit time of the oldest
 *                        committed source transaction with seq > applied;
 *                        0 when there is none                (per target)
 *   buffer_lag_records = records in the buffer after the target's reader
 * Differences never go below 0.
 *
 * Seconds are measured on one clock: the source's.  A clock sample pairs a
 * source timestamp (clock_timestamp() from a heartbeat query, or a
 * keepalive's send time) with the local monotonic time it was taken at;
 * "source clock now" is that timestamp plus the local monotonic time elapsed
 * since.  Commit times come from the source too.  No two hosts' wall clocks
 * are ever compared.
 *
 * The commit ring remembers, in bounded memory, when the committed
 * transactions not yet applied everywhere were committed.  It holds buckets
 * (last seq, earliest commit time); a commit within `granularity` of the
 * newest bucket's time joins that bucket.  The oldest unapplied commit is
 * then exact when the applied position falls between buckets and at most
 * one bucket width too old when it falls inside one (lag is over-, never
 * under-stated).  When the ring is full, neighbouring buckets merge in pairs
 * and the granularity doubles, so a backlog of T seconds in a ring of C
 * buckets is accurate to about 2T/C; the granularity returns to its base
 * once the ring drains below a quarter.
 *
 * Everything here runs on the loop thread and does no I/O.
 */
#ifndef LS_LAG_H
#define LS_LAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "change.h"
#include "control.h"
#include "json.h"
#include "metrics.h"

#define LS_LAG_RING_DEFAULT_CAP 4096
#define LS_LAG_DEFAULT_GRANULARITY_US 50000

/* ---- commit ring ------------------------------------------------------------ */

struct ls_lag_ring;

/* cap 0 / granularity 0 take the defaults.  NULL when out of memory. */
struct ls_lag_ring *ls_lag_ring_new(size_t cap, int64_t granularity_us);
void ls_lag_ring_free(struct ls_lag_ring *r);   /* NULL is a no-op */
/* A committed source transaction was read.  seq must grow; a seq at or below
 * the newest one (a transaction sent again after a reconnect, or read by a
 * second target's reader) is ignored. */
void ls_lag_ring_add(struct ls_lag_ring *r, uint64_t seq, int64_t commit_time_us);
/* Commit time of the oldest transaction with seq > applied into *time_us;
 * false when the ring holds none. */
bool ls_lag_ring_oldest_after(const struct ls_lag_ring *r, uint64_t applied,
			      int64_t *time_us);
/* Forgets the transactions at or below seq (every target applied them). */
void ls_lag_ring_release(struct ls_lag_ring *r, uint64_t seq);
size_t ls_lag_ring_len(const struct ls_lag_ring *r);
int64_t ls_lag_ring_granularity(const struct ls_lag_ring *r);
uint64_t ls_lag_ring_last_seq(const struct ls_lag_ring *r);   /* 0 when none added */

/* ---- source clock ---------------------------------------------------------------- */

struct ls_lag_clock {
	bool known;
	int64_t source_us;             /* source timestamp, us since the Unix epoch */
	uint64_t taken_ns;             /* local monotonic time (uv_hrtime) of it */
};

/* Keeps the sample taken last (by local monotonic time). */
void ls_lag_clock_update(struct ls_lag_clock *c, int64_t source_us, uint64_t taken_ns);
/* The source's clock at local monotonic time now_ns (c must be known). */
int64_t ls_lag_clock_now(const struct ls_lag_clock *c, uint64_t now_ns);

/* ---- arithmetic -------------------------------------------------------------------- */

/* ahead - behind, or 0 when behind is ahead. */
uint64_t ls_lag_bytes(uint64_t ahead, uint64_t behind);
/* Seconds between the oldest commit after applied and the source clock at
 * now_ns; 0 when nothing is pending; -1 when the clock is unknown (and
 * something is pending). */
double ls_lag_seconds(const struct ls_lag_ring *r, uint64_t applied,
		      const struct ls_lag_clock *c, uint64_t now_ns);

/* ---- the report --------------------------------------------------------------------- */

struct ls_lag_pos {
	bool known;
	uint64_t seq;
	char text[LS_POS_TEXT_MAX];
};

void ls_lag_pos_set(struct ls_lag_pos *p, const struct ls_pos *pos);

struct ls_lag_target {
	char name[128];
	struct ls_lag_pos applied;
	int64_t committed_offset;      /* buffer offset, -1 none */
	int64_t buffer_lag_records;    /* -1 unknown */
	uint64_t txns_applied, changes_applied;
	/* computed by ls_lag_compute */
	bool bytes_known;
	uint64_t apply_lag_bytes;
	double apply_lag_seconds;      /* -1 unknown */
	int64_t oldest_unapplied_us;   /* commit time, 0 when none */
};

struct ls_lag_table {
	char name[256];                /* "schema.table" */
	char state[16];                /* "pending" "copying" "done" "skipped" "failed" */
	uint64_t rows, est_rows;
};

/* What the source's server holds for us (PostgreSQL: the slot; MySQL/MariaDB:
 * the binlog after the saved resume point, retained_bytes its size). */
struct ls_lag_slot {
	bool known;
	char name[128];
	char wal_status[16];           /* "reserved" "extended" "unreserved" "lost" */
	int64_t safe_wal_size;         /* bytes; -1 unlimited/unknown */
	int64_t max_keep_size;         /* max_slot_wal_keep_size bytes; -1 unlimited */
	uint64_t retained_bytes;       /* current WAL - restart_lsn */
	/* a binlog purged by age (MySQL/MariaDB; oldest_file "" otherwise) */
	char oldest_file[128];         /* the binlog holding the restart point */
	int64_t oldest_age_s;          /* since its first event; -1 unknown */
	int64_t expire_s;              /* binlog_expire_logs_seconds; 0 never, -1 unknown */
	bool oldest_active;            /* the server still writes it (never purged) */
	/* computed by ls_lag_slot_check */
	bool warning;
	char warning_text[256];
};

struct ls_lag_report {
	char pipeline[128];
	char state[16];                /* ls_pipeline_state() */
	bool paused;
	struct ls_lag_pos source, read, durable;
	struct ls_lag_clock clock;     /* source clock sample */
	const char *clock_from;        /* "heartbeat" "keepalive" "records" or NULL */
	uint64_t txns_captured, changes_captured, records_appended, bytes_appended;
	struct ls_lag_slot slot;
	int ntargets;
	struct ls_lag_target *targets; /* ntargets, owned by the report */
	int ntables;
	struct ls_lag_table *tables;   /* ntables, owned by the report */
	double snapshot_seconds;
	bool drift_known;              /* a drift check found the targets clean, or drift */
	uint64_t drift_rows;           /* rows differing at the latest check */
	/* computed by ls_lag_compute */
	uint64_t now_ns;
	bool source_lag_known;
	uint64_t source_lag_bytes;
	double source_sample_age_s;    /* -1 unknown */
	int64_t source_now_us;         /* 0 unknown */
	double max_apply_lag_seconds;  /* over targets; -1 unknown */
};

/* A report with room for ntargets and ntables; NULL out of memory. */
struct ls_lag_report *ls_lag_report_new(int ntargets, int ntables);
void ls_lag_report_free(struct ls_lag_report *r);   /* NULL is a no-op */

/* Fills the computed fields from the positions, the ring and the clock.
 * The source position is raised to the read position when the sample is
 * older than what was read. */
void ls_lag_compute(struct ls_lag_report *r, const struct ls_lag_ring *ring, uint64_t now_ns);

/* Sets slot->warning (and its text) when wal_status is "unreserved" or
 * "lost", or safe_wal_size is below 20% of max_keep_size, or (a binlog)
 * the file holding the restart point is no longer written and older than
 * 80% of expire_s.  Returns it. */
bool ls_lag_slot_check(struct ls_lag_slot *slot);

/* GET /lag's body: one JSON object. */
void ls_lag_report_json(const struct ls_lag_report *r, struct ls_json *j);
/* Members for GET /status ("paused", "lag" summary, "warnings"). */
void ls_lag_status_json(const struct ls_lag_report *r, struct ls_json *j);
/* The lockstep_* families of GET /metrics. */
void ls_lag_report_metrics(const struct ls_lag_report *r, struct ls_metrics *m);
/* One line for systemd's STATUS=: "streaming; apply lag 0.2 s (new 0.2 s);
 * source lag 0 B; drift clean".  extra (may be NULL) is appended after a
 * semicolon. */
void ls_lag_summary(const struct ls_lag_report *r, const char *extra, char *buf,
		    size_t size);

/* ---- routes ---------------------------------------------------------------------- */

struct ls_lag_provider {
	/* The report, refreshed; borrowed, valid until the next call. */
	const struct ls_lag_report *(*report)(void *data);
	/* Pause (true) or resume applying on every target; returns 0. */
	int (*pause)(void *data, bool pause);
	void *data;
};

/* Registers GET /lag, POST /pause and POST /resume (ADMIN), and adds the lag
 * families to set (served on GET /metrics by the set's route).  prov is
 * borrowed and must outlive ctl and set. */
int ls_lag_register(struct ls_control *ctl, struct ls_metrics_set *set,
		    const struct ls_lag_provider *prov);

#endif
