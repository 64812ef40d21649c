/* drift — proves that each target holds exactly the source's rows, finds the
 * rows that differ, and repairs them through the ordered apply path.
 *
 * A check walks every captured table (a few at once, rate-limited) in
 * ordered key-range chunks.  For each chunk the source connector runs ONE
 * source transaction that keeps the table's writers out for its duration (so
 * no writer commits between its snapshot and its commit), picks the chunk's
 * upper key, checksums the chunk (count and a hash over each row's canonical
 * text, ordered by key) and emits a marker into the change stream
 * (transactional logical message, prefix LS_DRIFT_PREFIX).  The marker
 * commits with the snapshot the checksum read, so its stream position is
 * exactly "as of" the source checksum.  Each target's apply thread meets the
 * marker in stream order, commits what it applied (the target now shows the
 * source's state as of the marker) and checksums the same chunk through the
 * target op chunk_checksum; the result comes back to the loop.  In-flight
 * changes therefore never look like drift, and a paused target simply makes
 * the check wait.  A target that commits past a marker without its apply
 * ever taking it (which should not happen) does not make the check wait
 * for ever: the chunk is checked again, and the table fails after a few
 * (ls_drift_opts.applied; "answers_lost" in the report).
 *
 * A chunk whose checksums differ is narrowed: a second marker (kind ROWS)
 * has both sides list key and row hash of every row of the chunk; the lists
 * are compared, which also re-checks the chunk at a later position, and the
 * rows that still differ are reported as missing on target, extra on target
 * or different.
 *
 * Repair (POST /drift/repair) re-reads the differing rows' current values on
 * the source in one transaction and emits them in a REPAIR marker; every
 * target's apply thread turns it into DELETE + INSERT changes applied inside
 * that marker's transaction, i.e. at exactly its stream position and
 * effectively once.  The source is never written to.  A check of the same
 * tables follows.
 *
 * Pieces:
 *   - pure helpers (marker payloads, repair rows, row-hash diff, report
 *     tallies, rate limit, key-range cursor), unit-tested;
 *   - struct ls_drift_source_ops: what a source connector provides (blocking
 *     calls, run on libuv work threads with their own connection);
 *   - the engine (struct ls_drift): on the loop, plus a hook that runs on
 *     each target's apply thread (ls_drift_apply_hook).
 *
 * Unverified: per table, the rows changed on the source since its last
 * check started (the source's change counter, sampled off the loop every
 * few seconds), so the report says how much is unverified right now.
 *
 * Control: GET /drift (report), POST /drift/check[?table=schema.name]
 * [&rate=N] and POST /drift/repair (admin).  GET /status gains drift_rows,
 * drift_clean and a "drift" object.
 */
#ifndef LS_DRIFT_H
#define LS_DRIFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "apply.h"
#include "change.h"
#include "config.h"
#include "control.h"
#include "err.h"
#include "json.h"
#include "source.h"

#define LS_DRIFT_PREFIX "lockstep.drift"
#define LS_DRIFT_HASH_MAX 64           /* hash text buffer, with its NUL */
#define LS_DRIFT_REPORT_KEYS 20        /* differing keys listed per table */

/* ---- growable byte buffer ------------------------------------------------- */

struct ls_drift_buf {
	char *data;                        /* owned; NUL-terminated once used */
	size_t len, cap;
	bool oom;                          /* sticky; later appends are no-ops */
};

void ls_drift_buf_put(struct ls_drift_buf *b, const void *p, size_t n);
void ls_drift_buf_free(struct ls_drift_buf *b);

/* ---- marker payloads --------------------------------------------------------- */

enum ls_drift_kind {
	LS_DRIFT_CHUNK = 'C',              /* checksum of (lo, hi] */
	LS_DRIFT_ROWS = 'R',               /* key + row hash of each row in (lo, hi] */
	LS_DRIFT_REPAIR = 'X',             /* current source rows to upsert/delete */
};

/* What a marker says.  Strings are borrowed (encode) or point into the
 * decoder's arena (decode).  lo/hi NULL = unbounded. */
struct ls_drift_marker {
	char kind;                         /* enum ls_drift_kind */
	const char *run;                   /* the engine instance that emitted it */
	uint32_t check;                    /* check number within the run */
	uint32_t table;                    /* index into the engine's tables */
	uint32_t seq;                      /* unique per marker within the check */
	uint32_t chunk;                    /* chunk number within the table */
	const char *schema, *name;
	const char *lo, *hi;
	const char *rows;                  /* REPAIR: ls_drift_repair_row_add() output */
	size_t rows_len;
	/* Set by the source ops, not in the payload: a source position (seq)
	 * at or after the marker's commit, 0 when unknown.  A target that has
	 * applied that far owes the marker's answer (see ls_drift_opts). */
	uint64_t at_seq;
};

/* Replaces out's contents with m's payload (netstring fields, so any text,
 * separators included, survives).  -1 out of memory. */
int ls_drift_marker_encode(const struct ls_drift_marker *m, struct ls_drift_buf *out);
/* Parses a payload; strings land in arena (NUL-terminated).  -1 with err on
 * malformed input. */
int ls_drift_marker_decode(const char *p, size_t len, struct ls_arena *arena,
			   struct ls_drift_marker *out, struct ls_err *err);

/* Appends one row to a REPAIR row list: present = the source holds it (the
 * target gets exactly these values), absent = the source has no row with
 * this key (the target deletes it; only key columns of vals are read).
 * vals are TEXT or NULL values, ncols of them. */
void ls_drift_repair_row_add(struct ls_drift_buf *b, bool present,
			     const struct ls_value *vals, uint16_t ncols);
/* Reads the next row at *p (< end); vals (ncols entries) point into arena.
 * Returns 1 with a row, 0 at the end, -1 with err on malformed input or a
 * row whose column count is not ncols. */
int ls_drift_repair_row_next(const char **p, const char *end, struct ls_arena *arena,
			     bool *present, struct ls_value *vals, uint16_t ncols,
			     struct ls_err *err);

/* ---- row hashes and their diff ------------------------------------------------ */

struct ls_drift_rowhash {
	char *key;                         /* owned */
	char hash[LS_DRIFT_HASH_MAX];
};

struct ls_drift_rowset {
	struct ls_drift_rowhash *v;        /* owned */
	size_t n, cap;
};

int ls_drift_rowset_add(struct ls_drift_rowset *s, const char *key, const char *hash);
void ls_drift_rowset_free(struct ls_drift_rowset *s);

enum ls_drift_diff {
	LS_DRIFT_MISSING = 'm',            /* on the source, not on the target */
	LS_DRIFT_EXTRA = 'e',              /* on the target, not on the source */
	LS_DRIFT_DIFFERENT = 'd',          /* on both, other values */
};

/* Compares source and target rows (both are sorted in place by key bytes,
 * so the engines' orders do not matter) and calls emit for each difference,
 * in key byte order.  Returns the number of differences. */
size_t ls_drift_rowset_diff(struct ls_drift_rowset *src, struct ls_drift_rowset *dst,
			    void (*emit)(void *ctx, enum ls_drift_diff kind, const char *key),
			    void *ctx);

/* ---- report tally ----------------------------------------------------------------- */

struct ls_drift_tally {
	uint64_t rows_checked, chunks;
	uint64_t missing, extra, different;
	uint32_t nkeys;                    /* listed keys, at most LS_DRIFT_REPORT_KEYS */
	char *keys[LS_DRIFT_REPORT_KEYS];  /* owned; the first differing keys */
	char kinds[LS_DRIFT_REPORT_KEYS];  /* enum ls_drift_diff of each */
};

/* Counts one differing row; lists its key while there is room.  -1 out of
 * memory (the count is still taken). */
int ls_drift_tally_add(struct ls_drift_tally *t, enum ls_drift_diff kind, const char *key);
uint64_t ls_drift_tally_rows(const struct ls_drift_tally *t);   /* missing+extra+different */
/* Adds src's counts and as many of its keys as fit into dst. */
int ls_drift_tally_merge(struct ls_drift_tally *dst, const struct ls_drift_tally *src);
void ls_drift_tally_clear(struct ls_drift_tally *t);            /* frees the keys */

/* ---- rate limit and key-range cursor ------------------------------------------------ */

/* At most per_s chunks a second, smoothly: each take() books the next slot. */
struct ls_drift_rate {
	double per_s;                      /* <= 0: unlimited */
	uint64_t next_ms;
};

/* 0 when a chunk may start at now_ms (and books it), else the milliseconds
 * to wait. */
uint64_t ls_drift_rate_take(struct ls_drift_rate *r, uint64_t now_ms);

/* Where a table's walk through its key space stands.  Chunks are (lo, hi]
 * with the first lo and the last hi unbounded (NULL), so the chunks of one
 * walk cover every possible key exactly once, whatever is inserted while
 * the walk runs. */
struct ls_drift_cursor {
	char *lo;                          /* owned; NULL = start of the table */
	uint32_t next_chunk;
	bool done;                         /* the open-ended last chunk was planned */
};

/* Records that the chunk starting at c->lo ended at hi (NULL: it was the
 * last one).  -1 out of memory. */
int ls_drift_cursor_advance(struct ls_drift_cursor *c, const char *hi);
void ls_drift_cursor_reset(struct ls_drift_cursor *c);

/* ---- what a source connector provides ----------------------------------------------- */

struct ls_drift_conn;                  /* one source connection, opaque */

/* Every call blocks and runs on a libuv work thread; one connection is used
 * by one call at a time.  rel is one of the source's captured tables: the
 * definition describe() returned when that table's check started (or the
 * relation prepare() returned); its LS_COL_KEY columns order the chunks.
 * Keys are opaque text made by the connector (the same text for the same
 * key on source and target).  Hashes are text of at most
 * LS_DRIFT_HASH_MAX-1 bytes and must equal the target connector's for equal
 * rows.  Errors: err->retryable for lock timeouts and connection loss. */
struct ls_drift_source_ops {
	/* Opens a connection to cfg's source (conninfo never in messages). */
	int (*open)(const struct ls_config *cfg, struct ls_drift_conn **out,
		    struct ls_err *err);
	void (*close)(struct ls_drift_conn *c);          /* NULL is a no-op */
	/* One source transaction: keep rel's writers out, find the chunk's
	 * upper key (the chunk_rows-th key after m->lo; NULL when fewer rows
	 * remain: the chunk is open-ended), checksum the rows in (m->lo, hi],
	 * set m->hi and emit the marker m; commit.  *hi is malloc'd (or NULL).
	 * With bound (the walk's end, from max_key; may be NULL) the chunk ends
	 * at bound when fewer rows remain before it (*hi a copy of bound), and
	 * the chunk starting at bound is the last one, open-ended: a table its
	 * writers append to faster than the walk scans still ends its walk. */
	int (*chunk)(struct ls_drift_conn *c, const struct ls_relation *rel,
		     struct ls_drift_marker *m, const char *bound, int chunk_rows, char **hi,
		     uint64_t *rows, char *hash, struct ls_err *err);
	/* Optional (NULL: walks end where the table ends when they get there):
	 * the table's greatest key now, as key text (malloc'd; NULL when the
	 * table is empty), read when a table's walk starts. */
	int (*max_key)(struct ls_drift_conn *c, const struct ls_relation *rel, char **out,
		       struct ls_err *err);
	/* Same transaction shape: key and row hash of each row in
	 * (m->lo, m->hi] to row() (in any order), then the marker m. */
	int (*rows)(struct ls_drift_conn *c, const struct ls_relation *rel,
		    struct ls_drift_marker *m,
		    int (*row)(void *ctx, const char *key, const char *hash), void *ctx,
		    struct ls_err *err);
	/* Same transaction shape: the current row of each key (or its absence)
	 * into m->rows (ls_drift_repair_row_add), then the marker m. */
	int (*repair)(struct ls_drift_conn *c, const struct ls_relation *rel,
		      struct ls_drift_marker *m, const char *const *keys, size_t nkeys,
		      struct ls_err *err);
	/* Optional (may be NULL): a count of the table's row changes that only
	 * grows (may lag the truth by a second or so).  Sampled when a table's
	 * check starts and every few seconds after, it tells how much changed
	 * since the table was last verified. */
	int (*change_count)(struct ls_drift_conn *c, const struct ls_relation *rel,
			    uint64_t *n, struct ls_err *err);
	/* Optional (NULL: the definitions from the pipeline's start are used):
	 * rel's current definition read from the source catalog (columns, key
	 * flags, type names; the id copied from rel), malloc'd into *out (the
	 * caller frees it with ls_relation_free).  Called once at the start of
	 * each table's check, so DDL since the daemon started (a column added
	 * with a volatile default, whose values the stream never carries) is
	 * checked and repaired with the columns the source has now. */
	int (*describe)(struct ls_drift_conn *c, const struct ls_relation *rel,
			struct ls_relation **out, struct ls_err *err);
};

/* For a source op's chunk: the chunk's upper key into *hi, from upper (the
 * op's "chunk_rows-th key after lo and not after bound, NULL when fewer
 * rows remain"), with the bound rules of ls_drift_source_ops.chunk. */
int ls_drift_chunk_end(struct ls_drift_conn *c, const struct ls_relation *rel, const char *lo,
		       const char *bound, int chunk_rows,
		       int (*upper)(struct ls_drift_conn *c, const struct ls_relation *rel,
				    const char *lo, const char *bound, int chunk_rows, char **hi,
				    struct ls_err *err),
		       char **hi, struct ls_err *err);

/* ---- the engine --------------------------------------------------------------------- */

struct ls_drift;

struct ls_drift_opts {
	const struct ls_config *cfg;               /* borrowed; must outlive the engine */
	const struct ls_drift_source_ops *sops;    /* NULL: no source here, no checks */
	int parallel;                              /* tables at once; 0 = 2 */
	double max_chunks_per_s;                   /* 0 = 50; per check: ?rate= */
	/* Optional: the source position (seq) target i has committed, false
	 * when unknown (loop thread).  With it, a marker that a target has
	 * applied past without answering (which the apply path should never
	 * do) is found answer_grace_ms later, logged, and its chunk checked again
	 * row by row, so a check never waits on it for ever; after a few such
	 * losses the table's check fails saying so.  NULL: answers are awaited
	 * without bound. */
	bool (*applied)(void *ctx, int target, uint64_t *seq);
	void *applied_ctx;
	int answer_grace_ms;                       /* 0 = 5000: how late "lost" is */
};

int ls_drift_new(uv_loop_t *loop, const struct ls_drift_opts *o, struct ls_drift **out,
		 struct ls_err *err) __attribute__((warn_unused_result));

/* The hook for target i's apply (cfg->targets[i]); owned by the engine. */
const struct ls_apply_hook *ls_drift_apply_hook(struct ls_drift *d, int target);

/* Checks become possible: tables (borrowed for the call; the engine keeps
 * its own copies, so the source may replace or free its relations later)
 * are what the source captures.  Starts the [drift] interval schedule. */
void ls_drift_start(struct ls_drift *d, const struct ls_source_tables *tables);

/* The pipeline tears its components down (restart): a running check is
 * abandoned (its work in flight finishes in the background); the latest
 * results stay.  ls_drift_start() follows when streaming again. */
void ls_drift_stop(struct ls_drift *d);

/* Starts a check of every table, or of table "schema.name"; rate <= 0 keeps
 * the default.  Returns the check number, or -1 with err (a check runs
 * already, unknown table, not started). */
int64_t ls_drift_check(struct ls_drift *d, const char *table, double rate, struct ls_err *err);

/* Routes GET /drift, POST /drift/check, POST /drift/repair. */
int ls_drift_register(struct ls_drift *d, struct ls_control *ctl);
/* GET /status members: drift_rows, drift_clean, drift {...}. */
void ls_drift_status(struct ls_drift *d, struct ls_json *j);

/* The latest completed check. */
struct ls_drift_last {
	bool known;                        /* a check has completed */
	uint32_t id;
	bool clean;                        /* no drift and no error */
	uint64_t rows;                     /* rows differing */
	char error[256];                   /* "" when none */
	uint32_t answers_lost;             /* markers re-checked (ls_drift_opts) */
};
void ls_drift_last(const struct ls_drift *d, struct ls_drift_last *out);

/* Rows found differing by the latest check of each table. */
uint64_t ls_drift_rows(const struct ls_drift *d);
/* True only when a check completed, found nothing and hit no error, and no
 * table's latest result shows drift. */
bool ls_drift_clean(const struct ls_drift *d);

/* Call after every apply thread has stopped: waits for work in flight,
 * closes connections and handles, frees d, then cb(arg).  NULL is a no-op. */
void ls_drift_close(struct ls_drift *d, void (*cb)(void *arg), void *arg);

#endif
