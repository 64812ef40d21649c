#include "connectors/postgres/pg_mysqltypes.h"
#include "connectors/postgres/pg_target.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connectors/postgres/pg_await.h"
#include "connectors/postgres/pg_session.h"
#include "connectors/postgres/pg_sql.h"
#include "log.h"

/* Pipeline bookkeeping.  Every command sent in pipeline mode gets an entry in
 * a ring, in send order, so its result (which arrives in the same order) can
 * be matched to the change that caused it.  When HIGH commands are in flight
 * we ask the server to flush and read results down to LOW: this bounds memory
 * and keeps the server's unread results well below socket buffer sizes, so
 * the blocking connection cannot deadlock with both sides writing. */
#define RING 2048
#define HIGH 1024
#define LOW 256
#define MAX_STMTS_PER_REL 64   /* beyond: unnamed statements, no cache growth */
#define COPY_CHUNK (64 * 1024)
/* Set-based apply (see "batches" below): rows per statement, bytes of
 * pending rows per table and for all tables together. */
#define BATCH_ROWS 1000
#define BATCH_SLOTS 2048          /* hash slots, a power of two > 2 * BATCH_ROWS */
#define BATCH_BYTES (1024 * 1024)
#define PENDING_BYTES (8 * 1024 * 1024)
/* Groups whose COMMIT may be in flight while the next one is sent. */
#define INFLIGHT_DEFAULT 2
#define INFLIGHT_MAX 8

/* P_COMMIT: the COMMIT of a group sent without waiting (see commit_group) */
enum pend_kind { P_PLAIN, P_STMT, P_SYNC, P_WANT, P_CKPT, P_BATCH, P_COMMIT };

struct stmt {
	struct stmt *next;
	char *mask;                /* owned: op + per-column codes, see stmt_mask() */
	char name[40];
	int nparams;
	int *pcol;                 /* owned: parameter i -> source column index */
};

/* Pending UPDATEs (all with one set of present columns) or DELETEs of one
 * table, one row per key, sent as one statement when flushed.  A row is a
 * record in data: uint32 key bytes, uint32 all bytes, then the values as
 * array elements (ls_pgsql_array_elem or NULL), each NUL-terminated: key
 * columns first, then (UPDATE) the other present columns, in column order. */
struct batch {
	uint8_t op;                /* LS_OP_UPDATE or LS_OP_DELETE; 0 when empty */
	char *mask;                /* owned: the statement's mask, see batch_mask() */
	int n;                     /* rows */
	size_t *rec;               /* owned: BATCH_ROWS offsets into data */
	int32_t *slot;             /* owned: BATCH_SLOTS row indexes, -1 free */
	struct ls_pgsql_buf data;
	struct trel *next;         /* in t->pending while n > 0 */
};

struct trel {
	struct trel *next;
	struct ls_relation *src;   /* owned: last definition handed over */
	char *qname;               /* owned: "schema"."name" */
	bool checked;              /* table verified on this connection */
	bool *bytea;               /* owned, per source column */
	bool *text_cmp;            /* owned, per source column: no '=' operator */
	/* set-based apply allowed: no triggers, foreign keys (either way),
	 * rules, exclusion constraints, inheritance children or unique index
	 * but the key's, not REPLICA IDENTITY FULL: then no other statement
	 * of the group can tell in which order its rows changed */
	bool batchable;
	char *casts;               /* owned: per source column, NUL-terminated:
				      the target type without typmod */
	size_t casts_len;
	struct batch b;
	struct stmt *stmts;
	int nstmts;
	/* state at the start of the current source transaction, restored when
	 * it is aborted (the rollback undoes its DDL on the target too) */
	bool saved, b_checked;
	struct ls_relation *b_src; /* owned; NULL: the relation was new */
	char *b_qname;             /* owned */
	bool *b_bytea, *b_text_cmp;/* owned */
	bool b_batchable;
	char *b_casts;             /* owned */
	size_t b_casts_len;
};

struct pend {
	uint8_t kind;              /* enum pend_kind */
	uint8_t op;                /* LS_OP_* or 0 */
	struct trel *rel;
	struct stmt *stmt;
	int nrows;                 /* P_BATCH: rows the statement carries */
	char key[100];             /* "(id)=(5)" for error messages */
};

/* A group whose COMMIT was sent but whose result is not read yet: what to
 * report when it arrives. */
struct inflight {
	uint64_t commit_idx;       /* index (in send order) of its COMMIT */
	int64_t sent_ms;
	int64_t offset;
	struct ls_pos pos;
	int rows, txns, copy_rows, missing, ddl;
};

struct ls_pgtarget {
	struct ls_pgtarget_opts o; /* strings below are owned copies */
	char *pipeline, *target, *conninfo;
	PGconn *conn;
	bool failed;
	bool origin_warned;        /* said once that transactions go untagged */
	bool in_group, in_txn;
	struct trel *rels;
	struct stmt *retired;      /* statements of relations changed by DDL */
	uint32_t stmt_seq;

	struct pend ring[RING];
	unsigned head, count;
	uint64_t nsent, ndone;     /* commands pushed / processed, ever */
	PGresult *want;            /* result of the last P_WANT command */
	struct ls_err perr;        /* first error seen while draining */
	bool have_perr;
	char sqlstate[6];

	/* the current source transaction: commands from txn_mark on are its
	 * own; abort_txn ignores their errors (aborting) and rolls back to the
	 * savepoint (txn_sp) or, when it opened the group (txn_opened), the
	 * whole group.  Savepoints are taken only in savepoint mode (sp_mode):
	 * from a reset until the next commit of source transactions. */
	uint64_t txn_mark;
	bool txn_sp, txn_opened, sp_held, aborting, sp_mode;
	int txn_touched;           /* relations with saved state */
	int base_rows, base_copy_rows, base_ddl;
	int txn_missing;           /* drained results of its own; see process_head */

	/* the open group */
	int64_t group_start_ms;
	int group_rows, group_txns, group_copy_rows, group_missing, group_ddl;
	int64_t group_offset;
	struct ls_pos group_pos;

	/* COPY: a run of INSERTs into run_rel; copy_rel when COPY is open */
	struct trel *run_rel;
	int run_len;
	struct trel *copy_rel;
	int copy_rows;

	struct ls_pgtarget_ckpt ckpt;
	struct ls_pgtarget_stats stats;

	/* groups committed without waiting, oldest first; reported (ckpt,
	 * stats, on_commit) as their COMMIT results arrive, in order */
	struct inflight infl[INFLIGHT_MAX];
	int ninfl, max_inflight;

	/* tables with pending batches, and the bytes their rows take */
	struct trel *pending;
	size_t pending_bytes;
	struct ls_pgsql_buf *abuf; /* owned: one array literal per parameter */
	int nabuf;

	struct ls_pgsql_buf sql, pbuf, copybuf, bmask;
	const char **pvals;
	size_t *poffs;             /* offset into pbuf, or SIZE_MAX */
	int pcap;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void quiet_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* ---- errors --------------------------------------------------------------- */

/* Retryable: the same input may apply later (the connection or the server's
 * concurrency control failed, not the data). */
bool ls_pgtarget_sqlstate_retryable(const char *s)
{
	return strncmp(s, "08", 2) == 0 || strcmp(s, "40001") == 0 ||
	       strcmp(s, "40P01") == 0 || strncmp(s, "57P", 3) == 0 ||
	       strncmp(s, "53", 2) == 0 || strcmp(s, "55P03") == 0 ||
	       strcmp(s, "55006") == 0;
}

/* Column named by the server, or via "parameter $N" in the error context
 * (parameter conversion errors) mapped through the statement. */
static const char *error_column(const PGresult *r, const struct pend *p)
{
	const char *col = PQresultErrorField(r, PG_DIAG_COLUMN_NAME);
	if (col)
		return col;
	const char *ctx = PQresultErrorField(r, PG_DIAG_CONTEXT);
	const char *d = ctx ? strstr(ctx, "parameter $") : NULL;
	if (d == NULL || p == NULL || p->stmt == NULL)
		return NULL;
	int n = atoi(d + 11);
	if (n < 1 || n > p->stmt->nparams)
		return NULL;
	return p->rel->src->cols[p->stmt->pcol[n - 1]].name;
}

static const char *kind_name(uint8_t kind)
{
	static const char *const names[] = {
		[P_PLAIN] = "statement", [P_STMT] = "prepared statement", [P_SYNC] = "sync",
		[P_WANT] = "query", [P_CKPT] = "checkpoint update",
		[P_BATCH] = "set-based statement", [P_COMMIT] = "COMMIT",
	};
	return kind < sizeof names / sizeof *names ? names[kind] : "command";
}

static const char *op_name(uint8_t op)
{
	switch (op) {
	case LS_OP_INSERT: return "INSERT";
	case LS_OP_UPDATE: return "UPDATE";
	case LS_OP_DELETE: return "DELETE";
	case LS_OP_TRUNCATE: return "TRUNCATE";
	case 'C': return "CREATE TABLE";
	case 'A': return "ALTER TABLE";
	default: return "statement";
	}
}

/* Records the first server error of the pipeline with table, op, key and
 * column when known. */
static void record_error(struct ls_pgtarget *t, const PGresult *r, const struct pend *p)
{
	if (t->have_perr)
		return;
	t->have_perr = true;
	const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	snprintf(t->sqlstate, sizeof t->sqlstate, "%s", st ? st : "");
	const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	if (msg == NULL)
		msg = PQerrorMessage(t->conn);
	const char *col = r ? error_column(r, p) : NULL;
	const char *ctx = r ? PQresultErrorField(r, PG_DIAG_CONTEXT) : NULL;
	char where[300] = "";
	if (p && p->rel)
		snprintf(where, sizeof where, "%s %s%s%s%s%s: ", p->rel->qname, op_name(p->op),
			 p->key[0] ? " key " : "", p->key, col ? " column " : "", col ? col : "");
	ls_err_set(&t->perr, st == NULL || ls_pgtarget_sqlstate_retryable(st),
		   "target %s: %s%s%s%s%s", t->target, where, msg,
		   st ? " (SQLSTATE " : "", st ? st : "", st ? ")" : "");
	/* COPY and DDL errors say where in their context ("COPY t, line 3,
	 * column c: ..."); prepared statements have no useful one */
	if (ctx && !(p && p->stmt) && !(p && p->kind == P_BATCH)) {
		size_t l = strlen(t->perr.msg);
		snprintf(t->perr.msg + l, sizeof t->perr.msg - l, "; %s", ctx);
	}
	/* A statement of many rows does not say which one failed.  The reset
	 * that a retryable error brings replays the group row by row (no
	 * batches in savepoint mode), which either names the row or, had the
	 * batch itself been the cause, applies it. */
	if (p && p->kind == P_BATCH && !t->perr.retryable) {
		t->perr.retryable = true;
		size_t l = strlen(t->perr.msg);
		snprintf(t->perr.msg + l, sizeof t->perr.msg - l, "; replaying the group row by "
			 "row to find the row");
	}
}

/* Forgets every prepared statement (kept in t->retired until free, so
 * in-flight error reports can still name their columns). */
static void forget_stmts(struct ls_pgtarget *t)
{
	for (struct trel *r = t->rels; r; r = r->next) {
		while (r->stmts) {
			struct stmt *s = r->stmts;
			r->stmts = s->next;
			s->next = t->retired;
			t->retired = s;
		}
		r->nstmts = 0;
	}
}

static void drop_pending(struct ls_pgtarget *t);
static int flush_all(struct ls_pgtarget *t, struct ls_err *err);

/* Drops the connection after an error: the server rolls the open group
 * back.  Cached statements and table checks belong to the connection. */
static void fail(struct ls_pgtarget *t)
{
	drop_pending(t);
	if (t->conn)
		PQfinish(t->conn);
	t->conn = NULL;
	t->failed = true;
	t->in_group = t->in_txn = false;
	t->sp_held = t->aborting = false;
	t->copy_rel = t->run_rel = NULL;
	t->run_len = 0;
	t->head = t->count = 0;
	t->ndone = t->nsent;
	t->ninfl = 0;   /* unreported: the caller replays from the checkpoint */
	PQclear(t->want);
	t->want = NULL;
	forget_stmts(t);
	for (struct trel *r = t->rels; r; r = r->next)
		r->checked = false;
}

/* Returns -1 after moving the pipeline error into err and failing. */
static int fail_with(struct ls_pgtarget *t, struct ls_err *err)
{
	if (err && t->have_perr)
		*err = t->perr;
	fail(t);
	return -1;
}

static int conn_error(struct ls_pgtarget *t, struct ls_err *err, const char *what)
{
	if (!t->have_perr) {
		t->have_perr = true;
		snprintf(t->sqlstate, sizeof t->sqlstate, "08006");
		ls_err_set(&t->perr, true, "target %s: %s: %s", t->target, what,
			   t->conn ? PQerrorMessage(t->conn) : "not connected");
		size_t l = strlen(t->perr.msg);
		while (l && t->perr.msg[l - 1] == '\n')
			t->perr.msg[--l] = '\0';
	}
	return fail_with(t, err);
}

static int usable(struct ls_pgtarget *t, struct ls_err *err)
{
	if (!t->failed && t->conn)
		return 0;
	return ls_err_set(err, true, "target %s: failed earlier; reset and resume from "
			  "the checkpoint", t->target);
}

/* usable(), and inside a source transaction: the calls that act on one. */
static int usable_in_txn(struct ls_pgtarget *t, const char *what, struct ls_err *err)
{
	if (usable(t, err) < 0)
		return -1;
	if (!t->in_txn)
		return ls_err_set(err, false, "target %s: %s outside a transaction", t->target,
				  what);
	return 0;
}

/* ---- pipeline ---------------------------------------------------------------- */

static void report_group(struct ls_pgtarget *t, const struct inflight *g);

/* Where the rows that command idx found missing are counted: its source
 * transaction (mine), the open group, or the in-flight group it belongs to. */
static int *missing_count(struct ls_pgtarget *t, uint64_t idx, bool mine)
{
	for (int i = 0; i < t->ninfl; i++)
		if (idx < t->infl[i].commit_idx)
			return &t->infl[i].missing;
	return mine ? &t->txn_missing : &t->group_missing;
}

/* The COMMIT of the oldest in-flight group succeeded: report it. */
static void commit_arrived(struct ls_pgtarget *t)
{
	struct inflight g = t->infl[0];
	t->ninfl--;
	memmove(&t->infl[0], &t->infl[1], (size_t)t->ninfl * sizeof t->infl[0]);
	report_group(t, &g);
}

/* Waits until PQgetResult would not block (pg_await.h); false when the
 * connection failed or the wait deadlocked (recorded, retryable: the
 * reset that follows replays the group from the checkpoint). */
static bool await_result(struct ls_pgtarget *t, const struct pend *p)
{
	char why[200];
	if (ls_pgawait_result(t->conn, t->conninfo, t->o.await_check_ms > 0 ?
			      t->o.await_check_ms : LS_PGAWAIT_CHECK_MS, why, sizeof why) == 0)
		return true;
	if (why[0] == '\0') {
		record_error(t, NULL, p);
	} else if (!t->have_perr) {
		t->have_perr = true;
		ls_err_set(&t->perr, true, "target %s: %s; %zu commands unanswered, the oldest a "
			   "%s", t->target, why, (size_t)t->count, kind_name(p->kind));
		ls_warn("%s", t->perr.msg);
	}
	return false;
}

/* Reads the results of the oldest command in flight.  Returns -1 on an
 * error (recorded in t->perr). */
static int process_head(struct ls_pgtarget *t)
{
	struct pend *p = &t->ring[t->head];
	uint64_t idx = t->ndone;
	bool mine = t->in_txn && idx >= t->txn_mark;
	bool ignore = t->aborting && mine;
	bool committed = false;
	int rc = 0;
	t->ndone++;
	if (!await_result(t, p)) {
		rc = -1;
	} else if (p->kind == P_SYNC) {
		PGresult *r = PQgetResult(t->conn);
		if (r == NULL || PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
			record_error(t, r, NULL);
			rc = -1;
		}
		PQclear(r);
	} else {
		PGresult *r;
		bool got = false;
		while ((r = PQgetResult(t->conn)) != NULL) {
			got = true;
			ExecStatusType st = PQresultStatus(r);
			if (ignore && (st == PGRES_FATAL_ERROR || st == PGRES_PIPELINE_ABORTED)) {
				;   /* the abandoned transaction's own failure */
			} else if (st == PGRES_FATAL_ERROR) {
				record_error(t, r, p);
				rc = -1;
			} else if (st == PGRES_PIPELINE_ABORTED) {
				rc = -1;
			} else if (p->kind == P_WANT) {
				PQclear(t->want);
				t->want = r;
				r = NULL;
			} else if (p->kind == P_CKPT && strcmp(PQcmdTuples(r), "1") != 0) {
				t->have_perr = true;
				ls_err_set(&t->perr, false, "target %s: checkpoint row for pipeline "
					   "%s vanished", t->target, t->pipeline);
				rc = -1;
			} else if (p->kind == P_COMMIT) {
				/* a COMMIT in a failed transaction block answers
				 * ROLLBACK; cannot happen here (nothing is sent after
				 * an error's Sync), but never report such a group */
				committed = t->ninfl > 0 && t->infl[0].commit_idx == idx &&
					    strcmp(PQcmdStatus(r), "COMMIT") == 0;
				if (!committed) {
					t->have_perr = true;
					ls_err_set(&t->perr, true, "target %s: group did not commit "
						   "(%s)", t->target, PQcmdStatus(r));
					rc = -1;
				}
			} else if (p->kind == P_BATCH) {
				int miss = p->nrows - atoi(PQcmdTuples(r));
				*missing_count(t, idx, mine) += miss > 0 ? miss : 0;
			} else if ((p->op == LS_OP_UPDATE || p->op == LS_OP_DELETE) &&
				   strcmp(PQcmdTuples(r), "0") == 0) {
				(*missing_count(t, idx, mine))++;
			}
			PQclear(r);
		}
		if (!got && PQstatus(t->conn) != CONNECTION_OK) {
			record_error(t, NULL, p);
			rc = -1;
		}
	}
	t->head = (t->head + 1) % RING;
	t->count--;
	if (rc == 0 && committed)
		commit_arrived(t);
	return rc;
}

/* Flushes and reads results until at most n commands are in flight. */
static int drain_until(struct ls_pgtarget *t, unsigned n, struct ls_err *err)
{
	if (t->count > n && PQflush(t->conn) != 0)
		return conn_error(t, err, "send");
	while (t->count > n)
		if (process_head(t) < 0) {
			if (!t->have_perr)
				record_error(t, NULL, NULL);
			return fail_with(t, err);
		}
	return 0;
}

/* Registers a command just sent (carrying nrows rows); drains when too many
 * are in flight. */
static int pushed_rows(struct ls_pgtarget *t, uint8_t kind, uint8_t op, struct trel *rel,
		       struct stmt *s, const char *key, int nrows, struct ls_err *err)
{
	struct pend *p = &t->ring[(t->head + t->count) % RING];
	p->kind = kind;
	p->op = op;
	p->rel = rel;
	p->stmt = s;
	p->nrows = nrows;
	snprintf(p->key, sizeof p->key, "%s", key ? key : "");
	t->count++;
	t->nsent++;
	if (t->count < HIGH)
		return 0;
	if (!PQsendFlushRequest(t->conn))
		return conn_error(t, err, "flush request");
	return drain_until(t, LOW, err);
}

static int pushed(struct ls_pgtarget *t, uint8_t kind, uint8_t op, struct trel *rel,
		  struct stmt *s, const char *key, struct ls_err *err)
{
	return pushed_rows(t, kind, op, rel, s, key, 1, err);
}

/* Sends a parameterized command (text parameters, types inferred). */
static int send_sql(struct ls_pgtarget *t, const char *sql, int n, const char *const *vals,
		    uint8_t kind, struct ls_err *err)
{
	if (!PQsendQueryParams(t->conn, sql, n, NULL, vals, NULL, NULL, 0))
		return conn_error(t, err, "send");
	return pushed(t, kind, 0, NULL, NULL, NULL, err);
}

/* Sends a DDL statement for r (op 'C' create, 'A' alter: named in errors). */
static int send_ddl(struct ls_pgtarget *t, struct trel *r, uint8_t op, struct ls_err *err)
{
	if (t->sql.oom)
		return ls_err_set(err, false, "out of memory");
	if (!PQsendQueryParams(t->conn, ls_pgsql_buf_str(&t->sql), 0, NULL, NULL, NULL, NULL, 0))
		return conn_error(t, err, "send");
	t->group_ddl++;
	return pushed(t, P_PLAIN, op, r, NULL, NULL, err);
}

/* Runs a query and waits for its result (in t->want, owned by t). */
static int want_sql(struct ls_pgtarget *t, const char *sql, int n, const char *const *vals,
		    struct ls_err *err)
{
	PQclear(t->want);
	t->want = NULL;
	if (send_sql(t, sql, n, vals, P_WANT, err) < 0)
		return -1;
	if (!PQsendFlushRequest(t->conn))
		return conn_error(t, err, "flush request");
	if (drain_until(t, 0, err) < 0)
		return -1;
	if (t->want == NULL)
		return ls_err_set(err, true, "target %s: query returned no result", t->target);
	return 0;
}

/* ---- connection and checkpoint ------------------------------------------------- */

static const char CKPT_DDL[] =
	"CREATE SCHEMA IF NOT EXISTS lockstep;"
	"CREATE TABLE IF NOT EXISTS lockstep.checkpoint ("
	" pipeline text NOT NULL, target text NOT NULL,"
	" buffer_offset bigint NOT NULL DEFAULT -1,"
	" source_seq numeric(20,0) NOT NULL DEFAULT 0,"
	" source_pos text NOT NULL DEFAULT '',"
	" applied_at timestamptz,"
	" PRIMARY KEY (pipeline, target));"
	"CREATE TABLE IF NOT EXISTS lockstep.snapshot ("
	" pipeline text NOT NULL, target text NOT NULL,"
	" table_schema text NOT NULL, table_name text NOT NULL,"
	" copied_at_seq numeric(20,0) NOT NULL, rows bigint NOT NULL,"
	" done_at timestamptz NOT NULL DEFAULT now(),"
	" PRIMARY KEY (pipeline, target, table_schema, table_name))";

/* Runs one synchronous command (outside pipeline mode). */
static int exec_sync(struct ls_pgtarget *t, const char *sql, int n, const char *const *vals,
		     PGresult **out, struct ls_err *err)
{
	/* simple protocol when there are no parameters: allows several statements */
	PGresult *r = n ? PQexecParams(t->conn, sql, n, NULL, vals, NULL, NULL, 0)
			: PQexec(t->conn, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		record_error(t, r, NULL);
		PQclear(r);
		return fail_with(t, err);
	}
	if (out)
		*out = r;
	else
		PQclear(r);
	return 0;
}

static int read_checkpoint(struct ls_pgtarget *t, struct ls_err *err)
{
	const char *k[2] = { t->pipeline, t->target };
	PGresult *r;
	if (exec_sync(t, "SELECT buffer_offset, source_seq, source_pos, applied_at IS NOT NULL"
		      " FROM lockstep.checkpoint WHERE pipeline = $1 AND target = $2", 2, k, &r, err))
		return -1;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return ls_err_set(err, false, "target %s: checkpoint row missing", t->target);
	}
	t->ckpt.buffer_offset = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	t->ckpt.source_seq = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
	snprintf(t->ckpt.source_pos, sizeof t->ckpt.source_pos, "%s", PQgetvalue(r, 0, 2));
	t->ckpt.present = PQgetvalue(r, 0, 3)[0] == 't';
	PQclear(r);
	return 0;
}

/* Tags every transaction of this session with the replication origin
 * lockstep_<pipeline>, so that a stream read from this database can skip
 * what lockstep applied (a cutover's reverse direction, lib/cutover.h:
 * no replication loop).  Needs superuser or EXECUTE on
 * pg_replication_origin_create and pg_replication_origin_session_setup;
 * without them the target still applies, untagged, and says so once.  An
 * origin is held by one session at a time: after a reconnect the old
 * backend may still hold it for a moment, so "in use" is retried briefly. */
static void setup_origin(struct ls_pgtarget *t)
{
	char name[128], why[256] = "";
	if (t->o.session > 0)   /* one origin per session: PostgreSQL 15 shares none */
		snprintf(name, sizeof name, "lockstep_%s:s%u", t->pipeline, t->o.session);
	else
		snprintf(name, sizeof name, "lockstep_%s", t->pipeline);
	const char *v[1] = { name };
	PGresult *r = PQexecParams(t->conn, "SELECT pg_replication_origin_create($1) WHERE NOT"
				   " EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)",
				   1, NULL, v, NULL, NULL, 0);
	PQclear(r);
	for (int i = 0; i < 50; i++) {
		r = PQexecParams(t->conn, "SELECT pg_replication_origin_session_setup($1)", 1, NULL,
				 v, NULL, NULL, 0);
		bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
		const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		bool busy = st && strcmp(st, "55006") == 0;
		snprintf(why, sizeof why, "%s", PQresultErrorMessage(r));
		PQclear(r);
		if (ok)
			return;
		if (!busy)
			break;
		struct timespec ts = { 0, 100 * 1000000L };
		nanosleep(&ts, NULL);   /* the old backend is exiting */
	}
	why[strcspn(why, "\n")] = '\0';
	if (!t->origin_warned)
		ls_warn("target %s: transactions are not tagged with replication origin %s (%s); "
			"a cutover cannot replicate back without a loop: grant the role EXECUTE on "
			"pg_replication_origin_create and pg_replication_origin_session_setup",
			t->target, name, why);
	t->origin_warned = true;
}

/* Connects, sets the session up for exact text input, makes sure the
 * checkpoint row exists, reads it and enters pipeline mode. */
static int connect_target(struct ls_pgtarget *t, struct ls_err *err)
{
	t->have_perr = false;
	t->sqlstate[0] = '\0';
	t->failed = false;
	t->conn = PQconnectdb(t->conninfo);
	if (t->conn == NULL || PQstatus(t->conn) != CONNECTION_OK)
		return conn_error(t, err, "cannot connect");
	PQsetNoticeProcessor(t->conn, quiet_notice, NULL);
	if (exec_sync(t, ls_pgsession_sql, 0, NULL, NULL, err) ||
	    (t->o.from_mysql && exec_sync(t, "SET TimeZone = 'UTC'", 0, NULL, NULL, err)))
		return -1;
	/* Like native logical replication: no user triggers or FK checks on the
	 * target (the source already enforced them).  Needs superuser; without
	 * it triggers stay on. */
	PQclear(PQexec(t->conn, "SET session_replication_role = replica"));
	setup_origin(t);
	const char *k[2] = { t->pipeline, t->target };
	if (exec_sync(t, CKPT_DDL, 0, NULL, NULL, err) ||
	    exec_sync(t, "INSERT INTO lockstep.checkpoint (pipeline, target) VALUES ($1, $2)"
		      " ON CONFLICT DO NOTHING", 2, k, NULL, err) ||
	    read_checkpoint(t, err))
		return -1;
	if (!PQenterPipelineMode(t->conn))
		return conn_error(t, err, "pipeline mode");
	return 0;
}

int ls_pgtarget_new(const struct ls_pgtarget_opts *opts, struct ls_pgtarget **out,
		    struct ls_err *err)
{
	*out = NULL;
	struct ls_pgtarget *t = calloc(1, sizeof *t);
	if (t == NULL)
		return ls_err_set(err, false, "out of memory");
	t->o = *opts;
	t->pipeline = strdup(opts->pipeline ? opts->pipeline : "");
	t->target = strdup(opts->target ? opts->target : "");
	t->conninfo = strdup(opts->conninfo ? opts->conninfo : "");
	if (t->o.batch_rows <= 0)
		t->o.batch_rows = 5000;
	if (t->o.batch_ms <= 0)
		t->o.batch_ms = 100;
	if (t->o.copy_after == 0)
		t->o.copy_after = 64;
	t->max_inflight = opts->commits_in_flight == 0 ? INFLIGHT_DEFAULT
			: opts->commits_in_flight < 0 ? 0
			: opts->commits_in_flight < INFLIGHT_MAX ? opts->commits_in_flight
			: INFLIGHT_MAX - 1;
	if (!t->pipeline || !t->target || !t->conninfo) {
		ls_pgtarget_free(t);
		return ls_err_set(err, false, "out of memory");
	}
	if (connect_target(t, err) < 0) {
		ls_pgtarget_free(t);
		return -1;
	}
	*out = t;
	return 0;
}

static void free_stmts(struct stmt *s)
{
	while (s) {
		struct stmt *n = s->next;
		free(s->mask);
		free(s->pcol);
		free(s);
		s = n;
	}
}

void ls_pgtarget_free(struct ls_pgtarget *t)
{
	if (t == NULL)
		return;
	if (t->conn)
		PQfinish(t->conn);
	PQclear(t->want);
	while (t->rels) {
		struct trel *r = t->rels;
		t->rels = r->next;
		ls_relation_free(r->src);
		free(r->qname);
		free(r->bytea);
		free(r->text_cmp);
		free_stmts(r->stmts);
		ls_relation_free(r->b_src);
		free(r->b_qname);
		free(r->b_bytea);
		free(r->b_text_cmp);
		free(r->casts);
		free(r->b_casts);
		free(r->b.mask);
		free(r->b.rec);
		free(r->b.slot);
		ls_pgsql_buf_free(&r->b.data);
		free(r);
	}
	for (int i = 0; i < t->nabuf; i++)
		ls_pgsql_buf_free(&t->abuf[i]);
	free(t->abuf);
	ls_pgsql_buf_free(&t->bmask);
	free_stmts(t->retired);
	ls_pgsql_buf_free(&t->sql);
	ls_pgsql_buf_free(&t->pbuf);
	ls_pgsql_buf_free(&t->copybuf);
	free(t->pvals);
	free(t->poffs);
	free(t->pipeline);
	free(t->target);
	free(t->conninfo);
	free(t);
}

/* The replay that follows may hold a transaction cut short in the buffer:
 * savepoints until the next commit let abort_txn drop it alone. */
int ls_pgtarget_reset(struct ls_pgtarget *t, struct ls_err *err)
{
	fail(t);
	if (connect_target(t, err) < 0)
		return -1;
	t->sp_mode = true;
	return 0;
}

void ls_pgtarget_checkpoint(const struct ls_pgtarget *t, struct ls_pgtarget_ckpt *out)
{
	*out = t->ckpt;
}

bool ls_pgtarget_applied(const struct ls_pgtarget *t, uint64_t seq)
{
	return t->ckpt.present && seq <= t->ckpt.source_seq;
}

const char *ls_pgtarget_sqlstate(const struct ls_pgtarget *t)
{
	return t->sqlstate;
}

void ls_pgtarget_stats(const struct ls_pgtarget *t, struct ls_pgtarget_stats *out)
{
	*out = t->stats;
}

int ls_pgtarget_backend_pid(const struct ls_pgtarget *t)
{
	return t->conn ? PQbackendPID(t->conn) : 0;
}

/* ---- groups ------------------------------------------------------------------- */

static int open_group(struct ls_pgtarget *t, struct ls_err *err)
{
	if (t->in_group)
		return 0;
	if (send_sql(t, "BEGIN", 0, NULL, P_PLAIN, err) < 0)
		return -1;
	t->in_group = true;
	t->group_start_ms = now_ms();
	t->group_rows = t->group_txns = t->group_copy_rows = 0;
	t->group_missing = t->group_ddl = 0;
	t->run_rel = NULL;
	t->run_len = 0;
	return 0;
}

static int end_copy(struct ls_pgtarget *t, struct ls_err *err);

/* Moves the checkpoint and the counters past a committed group and tells
 * the caller. */
static void report_group(struct ls_pgtarget *t, const struct inflight *g)
{
	t->stats.commits++;
	t->stats.rows += (uint64_t)g->rows;
	t->stats.copy_rows += (uint64_t)g->copy_rows;
	t->stats.missing_rows += (uint64_t)g->missing;
	t->stats.ddl += (uint64_t)g->ddl;
	if (g->txns == 0)
		return;
	t->sp_mode = false;   /* the checkpoint moved past the replayed group */
	t->stats.txns += (uint64_t)g->txns;
	t->ckpt.present = true;
	t->ckpt.buffer_offset = g->offset;
	t->ckpt.source_seq = g->pos.seq;
	snprintf(t->ckpt.source_pos, sizeof t->ckpt.source_pos, "%s", g->pos.text);
	if (t->o.on_commit)
		t->o.on_commit(t->o.ctx, g->offset, &g->pos);
}

/* Reads results until the oldest in-flight group's COMMIT has been read. */
static int drain_oldest(struct ls_pgtarget *t, struct ls_err *err)
{
	return drain_until(t, (unsigned)(t->nsent - t->infl[0].commit_idx - 1), err);
}

/* Reads the outcome of in-flight groups sent batch_ms ago or earlier, so
 * that their reports are not held back long while input keeps coming. */
static int drain_due(struct ls_pgtarget *t, struct ls_err *err)
{
	while (t->ninfl > 0 && now_ms() - t->infl[0].sent_ms >= t->o.batch_ms)
		if (drain_oldest(t, err) < 0)
			return -1;
	return 0;
}

/* Reads every result outstanding (each in-flight COMMIT was followed by a
 * flush request; one more covers anything sent since). */
static int drain_all(struct ls_pgtarget *t, struct ls_err *err)
{
	if (t->count == 0)
		return 0;
	if (!PQsendFlushRequest(t->conn))
		return conn_error(t, err, "flush request");
	return drain_until(t, 0, err);
}

/* Updates the checkpoint and commits the open group.  With wait (and in
 * savepoint mode) it waits for the outcome of this group and of every one
 * before it, and reports them.  Otherwise the COMMIT goes out followed by a
 * flush request, not a Sync: the next group's commands follow it at once,
 * and should this COMMIT fail, the server skips everything after it up to
 * the next Sync, so no later group can commit without it.  Each Sync we
 * send is followed by reading every result before anything more is sent,
 * which keeps that true.  The group is reported when its COMMIT's result is
 * read (by whichever call drains next), at most max_inflight groups stay
 * unread. */
static int commit_group(struct ls_pgtarget *t, bool wait, struct ls_err *err)
{
	if (!t->in_group)
		return wait ? drain_all(t, err) : 0;
	if (flush_all(t, err) < 0 || end_copy(t, err) < 0)
		return -1;
	char off[24], seq[24];
	if (t->group_txns > 0) {
		snprintf(off, sizeof off, "%lld", (long long)t->group_offset);
		snprintf(seq, sizeof seq, "%llu", (unsigned long long)t->group_pos.seq);
		const char *v[5] = { off, seq, t->group_pos.text, t->pipeline, t->target };
		if (!PQsendQueryParams(t->conn, "UPDATE lockstep.checkpoint SET buffer_offset = $1,"
				       " source_seq = $2, source_pos = $3, applied_at = now()"
				       " WHERE pipeline = $4 AND target = $5", 5, NULL, v, NULL,
				       NULL, 0))
			return conn_error(t, err, "send");
		if (pushed(t, P_CKPT, 0, NULL, NULL, NULL, err) < 0)
			return -1;
	}
	struct inflight g = {
		.commit_idx = t->nsent, .sent_ms = now_ms(), .offset = t->group_offset,
		.pos = t->group_pos, .rows = t->group_rows, .txns = t->group_txns,
		.copy_rows = t->group_copy_rows, .missing = t->group_missing, .ddl = t->group_ddl,
	};
	bool ahead = !wait && !t->sp_mode && t->group_txns > 0 && t->max_inflight > 0;
	if (ahead)
		t->infl[t->ninfl++] = g;   /* before the send: a drain may read it */
	if (send_sql(t, "COMMIT", 0, NULL, ahead ? P_COMMIT : P_PLAIN, err) < 0)
		return -1;
	t->in_group = false;
	t->sp_held = false;
	t->run_rel = NULL;
	if (ahead) {
		if (!PQsendFlushRequest(t->conn) || PQflush(t->conn) != 0)
			return conn_error(t, err, "send");
		while (t->ninfl > t->max_inflight)
			if (drain_oldest(t, err) < 0)
				return -1;
		return 0;
	}
	if (!PQpipelineSync(t->conn))
		return conn_error(t, err, "sync");
	if (pushed(t, P_SYNC, 0, NULL, NULL, NULL, err) < 0 || drain_until(t, 0, err) < 0)
		return -1;
	g.missing = t->group_missing;   /* counted as its results were read */
	report_group(t, &g);
	return 0;
}

static void discard_saved(struct ls_pgtarget *t);

/* In savepoint mode a source transaction in an open group starts at a
 * savepoint so that abort_txn can drop it alone.  The previous one is
 * released first (one savepoint level, not one per transaction).  A COPY of
 * an insert run ends here: nothing else can be sent while it runs.  That
 * cost is why savepoints are the exception: each one that changes rows is a
 * subtransaction with an XID of its own, past 64 of them readers on the
 * target consult pg_subtrans until the group commits, the round trips halve
 * the apply rate of small transactions, and COPY runs stop at every
 * transaction boundary. */
static int take_savepoint(struct ls_pgtarget *t, struct ls_err *err)
{
	if (flush_all(t, err) < 0 || end_copy(t, err) < 0)
		return -1;
	t->run_rel = NULL;
	t->run_len = 0;
	if (t->sp_held && send_sql(t, "RELEASE SAVEPOINT ls_txn", 0, NULL, P_PLAIN, err) < 0)
		return -1;
	t->sp_held = false;
	if (send_sql(t, "SAVEPOINT ls_txn", 0, NULL, P_PLAIN, err) < 0)
		return -1;
	t->sp_held = true;
	return 0;
}

int ls_pgtarget_begin(struct ls_pgtarget *t, const struct ls_txn *txn, struct ls_err *err)
{
	(void)txn;
	if (usable(t, err) < 0)
		return -1;
	if (t->in_txn)
		return ls_err_set(err, false, "target %s: begin inside a transaction", t->target);
	if (drain_due(t, err) < 0)
		return -1;
	discard_saved(t);
	t->txn_opened = !t->in_group;
	t->txn_sp = t->in_group && t->sp_mode;
	if (t->txn_opened ? open_group(t, err) < 0 : t->txn_sp && take_savepoint(t, err) < 0)
		return -1;
	t->txn_mark = t->nsent;
	t->base_rows = t->group_rows;
	t->base_copy_rows = t->group_copy_rows;
	t->txn_missing = 0;
	t->base_ddl = t->group_ddl;
	t->in_txn = true;
	return 0;
}

int ls_pgtarget_end(struct ls_pgtarget *t, const struct ls_txn *txn, int64_t buffer_offset,
		    struct ls_err *err)
{
	if (usable_in_txn(t, "end", err) < 0)
		return -1;
	t->in_txn = false;
	discard_saved(t);
	t->group_missing += t->txn_missing;
	t->txn_missing = 0;
	t->group_txns++;
	t->group_offset = buffer_offset;
	t->group_pos = txn->commit;
	if (t->group_rows >= t->o.batch_rows || now_ms() - t->group_start_ms >= t->o.batch_ms)
		return commit_group(t, false, err);
	return 0;
}

int ls_pgtarget_flush(struct ls_pgtarget *t, struct ls_err *err)
{
	if (usable(t, err) < 0)
		return -1;
	if (t->in_txn)
		return ls_err_set(err, false, "target %s: flush inside a transaction", t->target);
	return commit_group(t, true, err);
}

int ls_pgtarget_tick(struct ls_pgtarget *t, int *wait_ms, struct ls_err *err)
{
	if (wait_ms)
		*wait_ms = -1;
	if (usable(t, err) < 0 || drain_due(t, err) < 0)
		return -1;
	if (!t->in_group) {
		if (t->ninfl > 0 && wait_ms) {
			int64_t due = t->infl[0].sent_ms + t->o.batch_ms - now_ms();
			*wait_ms = due > 0 ? (int)due : 0;
		}
		return 0;
	}
	int64_t left = t->group_start_ms + t->o.batch_ms - now_ms();
	if (left <= 0 && !t->in_txn)
		return commit_group(t, true, err);
	if (wait_ms)
		*wait_ms = left > 0 ? (int)left : 0;
	return 0;
}

/* Sends a sync and reads every result up to it. */
static int sync_drain(struct ls_pgtarget *t, struct ls_err *err)
{
	if (!PQpipelineSync(t->conn))
		return conn_error(t, err, "sync");
	if (pushed(t, P_SYNC, 0, NULL, NULL, NULL, err) < 0)
		return -1;
	return drain_until(t, 0, err);
}

static int abandon_copy(struct ls_pgtarget *t, struct ls_err *err);
static void unsave_rels(struct ls_pgtarget *t, bool restore);

/* Reads all results (the transaction's own errors do not count: they may
 * come from the very changes being abandoned), rolls back to the savepoint
 * or the whole group when the transaction opened it, and puts relation
 * state back as it was at the transaction's start.  Prepared statements
 * are dropped: some may have been skipped after an error, or name tables
 * the rollback removed.  Without a savepoint in a group it did not open,
 * the whole group goes (the connection is dropped) and the error is
 * retryable: reset() arms savepoint mode for the replay. */
int ls_pgtarget_abort_txn(struct ls_pgtarget *t, struct ls_err *err)
{
	if (usable_in_txn(t, "abort", err) < 0)
		return -1;
	/* pending rows are all this transaction's: a group it did not open
	 * has none of others' in savepoint mode (batches are off there), and
	 * goes whole otherwise */
	drop_pending(t);
	if (!t->txn_sp && !t->txn_opened) {
		unsave_rels(t, true);
		fail(t);
		return ls_err_set(err, true, "target %s: a source transaction was abandoned in a "
				  "group without savepoints; the group is rolled back, to be "
				  "replayed from the checkpoint with savepoints", t->target);
	}
	if (abandon_copy(t, err) < 0)
		return -1;
	t->aborting = true;
	int rc = sync_drain(t, err);
	t->aborting = false;
	if (rc < 0)
		return -1;
	t->in_txn = false;
	if (send_sql(t, t->txn_sp ? "ROLLBACK TO SAVEPOINT ls_txn" : "ROLLBACK", 0, NULL,
		     P_PLAIN, err) < 0 ||
	    send_sql(t, "DEALLOCATE ALL", 0, NULL, P_PLAIN, err) < 0)
		return -1;
	forget_stmts(t);
	if (sync_drain(t, err) < 0)
		return -1;
	unsave_rels(t, true);
	t->run_rel = NULL;
	t->run_len = 0;
	t->txn_missing = 0;
	if (t->txn_opened) {
		t->in_group = t->sp_held = false;
		return 0;
	}
	t->group_rows = t->base_rows;
	t->group_copy_rows = t->base_copy_rows;
	t->group_ddl = t->base_ddl;
	return 0;
}

/* ---- tests ------------------------------------------------------------------------ */

int ls_pgtarget_test_unanswered(struct ls_pgtarget *t, struct ls_err *err)
{
	if (usable(t, err) < 0)
		return -1;
	if (!PQsendQueryParams(t->conn, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0) ||
	    PQflush(t->conn) != 0)
		return conn_error(t, err, "send");
	if (pushed(t, P_PLAIN, 0, NULL, NULL, NULL, err) < 0)
		return -1;
	return drain_until(t, 0, err);   /* no Sync, no flush request */
}

/* ---- subtransactions of a streamed transaction --------------------------------- */

int ls_pgtarget_savepoint(struct ls_pgtarget *t, uint64_t id, struct ls_err *err)
{
	if (usable_in_txn(t, "savepoint", err) < 0)
		return -1;
	if (flush_all(t, err) < 0 || end_copy(t, err) < 0)
		return -1;
	t->run_rel = NULL;
	t->run_len = 0;
	char sql[64];
	snprintf(sql, sizeof sql, "SAVEPOINT ls_sub_%" PRIu64, id);
	return send_sql(t, sql, 0, NULL, P_PLAIN, err);
}

/* Rows batched or in a COPY since the savepoint are dropped unsent; a
 * statement of them that failed fails this call (the stream is replayed).
 * Prepared statements go, as in abort_txn.  Relation state is kept: DDL
 * inside a rolled-back subtransaction is not undone in it. */
int ls_pgtarget_rollback_to(struct ls_pgtarget *t, uint64_t id, struct ls_err *err)
{
	if (usable_in_txn(t, "rollback", err) < 0)
		return -1;
	drop_pending(t);
	if (abandon_copy(t, err) < 0 || sync_drain(t, err) < 0)
		return -1;
	char sql[80];
	snprintf(sql, sizeof sql, "ROLLBACK TO SAVEPOINT ls_sub_%" PRIu64, id);
	if (send_sql(t, sql, 0, NULL, P_PLAIN, err) < 0 ||
	    send_sql(t, "DEALLOCATE ALL", 0, NULL, P_PLAIN, err) < 0)
		return -1;
	forget_stmts(t);
	t->run_rel = NULL;
	t->run_len = 0;
	return sync_drain(t, err);
}

/* ---- snapshot records ---------------------------------------------------------- */

int ls_pgtarget_snapshot_state(struct ls_pgtarget *t, const char *schema, const char *name,
			       bool *copied, uint64_t *copied_at, struct ls_err *err)
{
	*copied = false;
	*copied_at = 0;
	if (usable(t, err) < 0 || end_copy(t, err) < 0)
		return -1;
	const char *v[4] = { t->pipeline, t->target, schema, name };
	if (want_sql(t, "SELECT copied_at_seq FROM lockstep.snapshot WHERE pipeline = $1"
		     " AND target = $2 AND table_schema = $3 AND table_name = $4", 4, v, err) < 0)
		return -1;
	if (PQntuples(t->want) == 1) {
		*copied = true;
		*copied_at = strtoull(PQgetvalue(t->want, 0, 0), NULL, 10);
	}
	return 0;
}

/* ---- relations ----------------------------------------------------------------- */

static struct trel *find_rel(struct ls_pgtarget *t, uint32_t id)
{
	for (struct trel *r = t->rels; r; r = r->next)
		if (r->src->id == id)
			return r;
	return NULL;
}

static bool rel_equal(const struct ls_relation *a, const struct ls_relation *b)
{
	if (a->ncols != b->ncols || a->replident != b->replident ||
	    strcmp(a->schema, b->schema) != 0 || strcmp(a->name, b->name) != 0)
		return false;
	for (int i = 0; i < a->ncols; i++)
		if (strcmp(a->cols[i].name, b->cols[i].name) != 0 ||
		    strcmp(a->cols[i].type_name ? a->cols[i].type_name : "",
			   b->cols[i].type_name ? b->cols[i].type_name : "") != 0 ||
		    a->cols[i].flags != b->cols[i].flags)
			return false;
	return true;
}

/* Makes r describe rel: definition, quoted name, per-column arrays. */
static int set_def(struct trel *r, const struct ls_relation *rel)
{
	struct ls_relation *d = ls_relation_dup(rel);
	struct ls_pgsql_buf q;
	ls_pgsql_buf_init(&q);
	ls_pgsql_qualified(&q, rel->schema, rel->name);
	bool *bt = calloc(rel->ncols + 1, sizeof *bt), *tc = calloc(rel->ncols + 1, sizeof *tc);
	if (d == NULL || q.oom || bt == NULL || tc == NULL) {
		ls_relation_free(d);
		ls_pgsql_buf_free(&q);
		free(bt);
		free(tc);
		return -1;
	}
	ls_relation_free(r->src);
	free(r->qname);
	free(r->bytea);
	free(r->text_cmp);
	r->src = d;
	r->qname = q.data;
	r->bytea = bt;
	r->text_cmp = tc;
	free(r->casts);            /* compare_table() reads them anew */
	r->casts = NULL;
	r->casts_len = 0;
	r->batchable = false;
	return 0;
}

/* Statements prepared for an old definition are retired (kept until free so
 * in-flight error reports can still name their columns) and deallocated. */
static int retire_stmts(struct ls_pgtarget *t, struct trel *r, struct ls_err *err)
{
	while (r->stmts) {
		struct stmt *s = r->stmts;
		r->stmts = s->next;
		s->next = t->retired;
		t->retired = s;
		char sql[64];
		snprintf(sql, sizeof sql, "DEALLOCATE %s", s->name);
		if (send_sql(t, sql, 0, NULL, P_PLAIN, err) < 0)
			return -1;
	}
	r->nstmts = 0;
	return 0;
}

/* Per-column facts from the target catalog: type as format_type() spells
 * it, whether it is bytea, whether it has an equality operator (json, xml,
 * point... do not; those compare as text in REPLICA IDENTITY FULL matches),
 * and the type without typmod for casts in batch statements (typmod -1
 * spells bpchar and "bit" so that they do not mean char(1) and bit(1): the
 * assignment to the column applies its typmod, as for a single row). */
static const char COLS_SQL[] =
	"SELECT a.attname, format_type(a.atttypid, a.atttypmod), bt.oid = 'bytea'::regtype,"
	" bt.typtype IN ('e','r','m')"
	" OR EXISTS (SELECT 1 FROM pg_operator o WHERE o.oprname = '='"
	"   AND o.oprleft = bt.oid AND o.oprright = bt.oid)"
	" OR (bt.typcategory = 'A' AND EXISTS (SELECT 1 FROM pg_type et"
	"   LEFT JOIN pg_type eb ON et.typtype = 'd' AND eb.oid = et.typbasetype"
	"   WHERE et.oid = bt.typelem AND (COALESCE(eb.typtype, et.typtype) IN ('e','r','m')"
	"   OR EXISTS (SELECT 1 FROM pg_operator o WHERE o.oprname = '='"
	"     AND o.oprleft = COALESCE(eb.oid, et.oid) AND o.oprright = o.oprleft)))),"
	" format_type(a.atttypid, -1)"
	" FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid"
	" JOIN pg_type bt ON bt.oid = CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.oid END"
	" WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped"
	" ORDER BY a.attnum";

/* Unique, non-partial, plain-column indexes (incl. the primary key): one
 * row per (index, column). */
static const char KEYS_SQL[] =
	"SELECT i.indexrelid, a.attname FROM pg_index i"
	" CROSS JOIN LATERAL unnest(i.indkey) k"
	" JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k"
	" WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL"
	" AND i.indexprs IS NULL ORDER BY 1";

static bool is_key_col(const struct ls_relation *rel, const char *name)
{
	for (int i = 0; i < rel->ncols; i++)
		if ((rel->cols[i].flags & LS_COL_KEY) && strcmp(rel->cols[i].name, name) == 0)
			return true;
	return false;
}

/* Whether some unique index of the target covers exactly rel's key columns. */
static int key_matches(struct ls_pgtarget *t, struct trel *r, bool *ok, struct ls_err *err)
{
	const char *v[1] = { r->qname };
	if (want_sql(t, KEYS_SQL, 1, v, err) < 0)
		return -1;
	unsigned nkeys = ls_relation_nkeys(r->src);
	*ok = false;
	int n = PQntuples(t->want);
	for (int i = 0; i < n;) {
		const char *idx = PQgetvalue(t->want, i, 0);
		unsigned cols = 0, hits = 0;
		for (; i < n && strcmp(PQgetvalue(t->want, i, 0), idx) == 0; i++) {
			cols++;
			hits += is_key_col(r->src, PQgetvalue(t->want, i, 1));
		}
		if (cols == nkeys && hits == nkeys)
			*ok = true;
	}
	return 0;
}

static int table_exists(struct ls_pgtarget *t, struct trel *r, bool *exists, struct ls_err *err)
{
	const char *v[1] = { r->qname };
	if (want_sql(t, "SELECT to_regclass($1) IS NOT NULL", 1, v, err) < 0)
		return -1;
	*exists = PQgetvalue(t->want, 0, 0)[0] == 't';
	return 0;
}

static int create_table(struct ls_pgtarget *t, struct trel *r, struct ls_err *err)
{
	ls_pgsql_buf_reset(&t->sql);
	ls_pgsql_put(&t->sql, "CREATE SCHEMA IF NOT EXISTS ");
	ls_pgsql_ident(&t->sql, r->src->schema);
	if (send_sql(t, ls_pgsql_buf_str(&t->sql), 0, NULL, P_PLAIN, err) < 0)
		return -1;
	ls_pgsql_buf_reset(&t->sql);
	if (ls_pgsql_create_table(&t->sql, r->src, err) < 0)
		return -1;
	return send_ddl(t, r, 'C', err);
}

/* Compares the target table with r's definition; fills r->bytea/text_cmp.
 * Appends every mismatch to mism ("; "-separated) and counts the columns
 * missing on the target in *missing, flagging them in miss (ncols entries). */
static int compare_table(struct ls_pgtarget *t, struct trel *r, struct ls_pgsql_buf *mism,
			 int *missing, bool *miss, struct ls_err *err)
{
	const char *v[1] = { r->qname };
	if (want_sql(t, COLS_SQL, 1, v, err) < 0)
		return -1;
	const struct ls_relation *s = r->src;
	*missing = 0;
	struct ls_pgsql_buf casts;
	ls_pgsql_buf_init(&casts);
	for (int i = 0; i < s->ncols; i++) {
		int row = -1;
		for (int j = 0; j < PQntuples(t->want) && row < 0; j++)
			if (strcmp(PQgetvalue(t->want, j, 0), s->cols[i].name) == 0)
				row = j;
		const char *sep = mism->len ? "; " : "";
		if (row < 0) {
			ls_pgsql_printf(mism, "%scolumn %s (%s) missing", sep, s->cols[i].name,
					s->cols[i].type_name);
			(*missing)++;
			miss[i] = true;
			continue;
		}
		const char *have = PQgetvalue(t->want, row, 1);
		if (!ls_pgsql_type_compatible(s->cols[i].type_name, have) &&
		    !(t->o.from_mysql && ls_pgmy_takes_back(have, s->cols[i].type_name)))
			ls_pgsql_printf(mism, "%scolumn %s is %s, source has %s", sep,
					s->cols[i].name, have, s->cols[i].type_name);
		r->bytea[i] = PQgetvalue(t->want, row, 2)[0] == 't';
		r->text_cmp[i] = PQgetvalue(t->want, row, 3)[0] != 't';
		ls_pgsql_put(&casts, PQgetvalue(t->want, row, 4));
		ls_pgsql_putn(&casts, "", 1);
	}
	free(r->casts);
	r->casts = NULL;
	r->casts_len = 0;
	if (*missing == 0 && !casts.oom && casts.len) {
		r->casts_len = casts.len;
		r->casts = casts.data;
	} else {
		ls_pgsql_buf_free(&casts);
	}
	if (s->replident == LS_REPLIDENT_FULL)
		return 0;
	bool ok;
	if (key_matches(t, r, &ok, err) < 0)
		return -1;
	if (!ok) {
		ls_pgsql_printf(mism, "%sno primary key or unique index on (", mism->len ? "; " : "");
		bool first = true;
		for (int i = 0; i < s->ncols; i++)
			if (s->cols[i].flags & LS_COL_KEY) {
				ls_pgsql_printf(mism, "%s%s", first ? "" : ", ", s->cols[i].name);
				first = false;
			}
		ls_pgsql_put(mism, ")");
	}
	return 0;
}

/* Sends the ALTER TABLE of one DDL step.  A column added with a fill
 * (the value PostgreSQL gave the source's existing rows without logging a
 * change for them) gets it as a default while being added, so the target's
 * existing rows get it too; the default is dropped right after, since every
 * row the stream brings later carries its own value.  Both statements run
 * in the open group. */
static int send_ddl_step(struct ls_pgtarget *t, struct trel *r, const struct ls_relation *old,
			 const struct ls_relation *rel, const struct ls_pgsql_ddl_step *st,
			 struct ls_err *err)
{
	const char *fill = st->kind == LS_PGSQL_ADD_COLUMN ? rel->cols[st->new_col].fill : NULL;
	ls_pgsql_buf_reset(&t->sql);
	if (ls_pgsql_ddl_sql(&t->sql, old, rel, st, err) < 0)
		return -1;
	if (fill) {
		ls_pgsql_put(&t->sql, " DEFAULT ");
		ls_pgsql_literal(&t->sql, fill, strlen(fill));
	}
	if (send_ddl(t, r, 'A', err) < 0)
		return -1;
	if (fill == NULL)
		return 0;
	ls_pgsql_buf_reset(&t->sql);
	ls_pgsql_put(&t->sql, "ALTER TABLE ");
	ls_pgsql_qualified(&t->sql, rel->schema, rel->name);
	ls_pgsql_put(&t->sql, " ALTER COLUMN ");
	ls_pgsql_ident(&t->sql, rel->cols[st->new_col].name);
	ls_pgsql_put(&t->sql, " DROP DEFAULT");
	return send_ddl(t, r, 'A', err);
}

/* Adds the columns missing on the target, flagged in miss (ddl = apply
 * resuming past a source ADD COLUMN whose earlier definition it never
 * saw). */
static int add_missing(struct ls_pgtarget *t, struct trel *r, const bool *miss,
		       struct ls_err *err)
{
	const struct ls_relation *s = r->src;
	for (int i = 0; i < s->ncols; i++) {
		if (!miss[i])
			continue;
		struct ls_pgsql_ddl_step st = { LS_PGSQL_ADD_COLUMN, -1, i };
		if (send_ddl_step(t, r, s, s, &st, err) < 0)
			return -1;
	}
	return 0;
}

/* Whether rows of the table may be applied set-based (struct trel's
 * batchable).  Conservative: any trigger counts, even one that
 * session_replication_role = replica keeps from firing, and so does a
 * foreign key from or to it (its checks are triggers). */
static const char BATCH_SQL[] =
	"SELECT c.relkind = 'r' AND NOT c.relhasrules AND NOT c.relhassubclass"
	" AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid)"
	" AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.contype IN ('f', 'x')"
	"   AND (k.conrelid = c.oid OR k.confrelid = c.oid))"
	" AND (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique) = 1"
	" FROM pg_class c WHERE c.oid = to_regclass($1)";

static int check_batchable(struct ls_pgtarget *t, struct trel *r, struct ls_err *err)
{
	r->batchable = false;
	if (r->src->replident == LS_REPLIDENT_FULL || r->casts == NULL)
		return 0;
	const char *v[1] = { r->qname };
	if (want_sql(t, BATCH_SQL, 1, v, err) < 0)
		return -1;
	r->batchable = PQntuples(t->want) == 1 && PQgetvalue(t->want, 0, 0)[0] == 't';
	return 0;
}

/* First sight of a relation on this connection: create or check the table. */
static int check_table(struct ls_pgtarget *t, struct trel *r, struct ls_err *err)
{
	const struct ls_relation *s = r->src;
	if (s->replident != LS_REPLIDENT_FULL && ls_relation_nkeys(s) == 0)
		return ls_err_set(err, false, "target %s: table %s.%s has no primary key or replica "
				  "identity index; add one or set REPLICA IDENTITY FULL on the "
				  "source", t->target, s->schema, s->name);
	bool exists;
	if (table_exists(t, r, &exists, err) < 0)
		return -1;
	if (!exists && !t->o.create_tables)
		return ls_err_set(err, false, "target %s: table %s.%s does not exist and "
				  "create_tables is off", t->target, s->schema, s->name);
	if (!exists && create_table(t, r, err) < 0)
		return -1;
	bool *miss = calloc((size_t)s->ncols + 1, sizeof *miss);
	if (miss == NULL)
		return ls_err_set(err, false, "out of memory");
	struct ls_pgsql_buf mism;
	ls_pgsql_buf_init(&mism);
	int missing, rc = compare_table(t, r, &mism, &missing, miss, err);
	if (rc == 0 && mism.len) {
		/* only missing columns under ddl = apply: add them, compare again */
		bool only_missing = missing > 0 && t->o.ddl == LS_DDL_APPLY &&
				    strstr(ls_pgsql_buf_str(&mism), " is ") == NULL &&
				    strstr(ls_pgsql_buf_str(&mism), "no primary key") == NULL;
		if (only_missing) {
			ls_pgsql_buf_reset(&mism);
			rc = add_missing(t, r, miss, err);
			if (rc == 0)
				rc = compare_table(t, r, &mism, &missing, miss, err);
		}
		if (rc == 0 && mism.len)
			rc = ls_err_set(err, false, "target %s: table %s.%s does not match the "
					"source: %s", t->target, s->schema, s->name,
					ls_pgsql_buf_str(&mism));
	}
	ls_pgsql_buf_free(&mism);
	free(miss);
	if (rc == 0)
		rc = check_batchable(t, r, err);
	if (rc == 0)
		r->checked = true;
	return rc;
}

/* A known relation changed: DDL on the source. */
static int apply_ddl(struct ls_pgtarget *t, struct trel *r, const struct ls_relation *rel,
		     struct ls_err *err)
{
	const struct ls_relation *old = r->src;
	struct ls_pgsql_ddl_step *steps = calloc((size_t)old->ncols + rel->ncols + 1, sizeof *steps);
	if (steps == NULL)
		return ls_err_set(err, false, "out of memory");
	int n = ls_pgsql_ddl_diff(old, rel, steps, err);
	int rc = n < 0 ? ls_err_prefix(err, "target %s", t->target) : 0;
	if (rc == 0 && n > 0 && t->o.ddl == LS_DDL_STOP) {
		ls_pgsql_buf_reset(&t->sql);
		for (int i = 0; i < n; i++) {
			if (i)
				ls_pgsql_put(&t->sql, "; ");
			ls_pgsql_ddl_describe(&t->sql, old, rel, &steps[i]);
		}
		rc = ls_err_set(err, false, "target %s: table %s.%s changed on the source (%s) "
				"and ddl = stop; stopped at the checkpoint (source position %s)",
				t->target, rel->schema, rel->name, ls_pgsql_buf_str(&t->sql),
				t->ckpt.present ? t->ckpt.source_pos : "none");
	}
	for (int i = 0; rc == 0 && i < n; i++)
		rc = send_ddl_step(t, r, old, rel, &steps[i], err);
	free(steps);
	if (rc < 0)
		return -1;
	if (retire_stmts(t, r, err) < 0)
		return -1;
	if (set_def(r, rel) < 0)
		return ls_err_set(err, false, "out of memory");
	r->checked = false;
	return check_table(t, r, err);
}

/* Remembers r as it is at the start of the current source transaction
 * (once per transaction), for abort_txn. */
static int save_rel(struct ls_pgtarget *t, struct trel *r)
{
	if (!t->in_txn || r->saved)
		return 0;
	r->saved = true;
	r->b_checked = r->checked;
	t->txn_touched++;
	if (r->src == NULL)
		return 0;
	size_t n = (size_t)r->src->ncols + 1;
	r->b_src = ls_relation_dup(r->src);
	r->b_qname = strdup(r->qname);
	r->b_bytea = malloc(n * sizeof *r->b_bytea);
	r->b_text_cmp = malloc(n * sizeof *r->b_text_cmp);
	r->b_batchable = r->batchable;
	r->b_casts_len = r->casts_len;
	r->b_casts = malloc(r->casts_len + 1);
	if (!r->b_src || !r->b_qname || !r->b_bytea || !r->b_text_cmp || !r->b_casts)
		return -1;
	if (r->casts_len)
		memcpy(r->b_casts, r->casts, r->casts_len);
	memcpy(r->b_bytea, r->bytea, n * sizeof *r->b_bytea);
	memcpy(r->b_text_cmp, r->text_cmp, n * sizeof *r->b_text_cmp);
	return 0;
}

/* Forgets the saved states (restore: puts them back first).  A relation
 * that was new is left unchecked, so its table is created or checked again
 * on next use. */
static void unsave_rels(struct ls_pgtarget *t, bool restore)
{
	for (struct trel *r = t->rels; r && t->txn_touched > 0; r = r->next) {
		if (!r->saved)
			continue;
		t->txn_touched--;
		r->saved = false;
		if (restore) {
			r->checked = r->b_checked && r->b_src != NULL;
			if (r->b_src) {
				ls_relation_free(r->src);
				free(r->qname);
				free(r->bytea);
				free(r->text_cmp);
				r->src = r->b_src;
				r->qname = r->b_qname;
				r->bytea = r->b_bytea;
				r->text_cmp = r->b_text_cmp;
				free(r->casts);
				r->casts = r->b_casts;
				r->casts_len = r->b_casts_len;
				r->batchable = r->b_batchable && r->casts_len > 0;
				r->b_src = NULL;
				r->b_qname = NULL;
				r->b_bytea = r->b_text_cmp = NULL;
				r->b_casts = NULL;
			}
		}
		ls_relation_free(r->b_src);
		free(r->b_qname);
		free(r->b_bytea);
		free(r->b_text_cmp);
		free(r->b_casts);
		r->b_src = NULL;
		r->b_qname = NULL;
		r->b_bytea = r->b_text_cmp = NULL;
		r->b_casts = NULL;
	}
	t->txn_touched = 0;
}

static void discard_saved(struct ls_pgtarget *t)
{
	unsave_rels(t, false);
}

static int relation_in_group(struct ls_pgtarget *t, const struct ls_relation *rel,
			     struct ls_err *err)
{
	struct trel *r = find_rel(t, rel->id);
	if (r && r->checked && rel_equal(r->src, rel))
		return 0;
	if (flush_all(t, err) < 0 || end_copy(t, err) < 0)
		return -1;
	if (r == NULL) {
		r = calloc(1, sizeof *r);
		if (r == NULL)
			return ls_err_set(err, false, "out of memory");
		r->next = t->rels;
		t->rels = r;
	}
	if (save_rel(t, r) < 0)
		return ls_err_set(err, false, "out of memory");
	if (r->checked)
		return apply_ddl(t, r, rel, err);
	if (r->src == NULL || !rel_equal(r->src, rel)) {
		if (r->src) {
			if (retire_stmts(t, r, err) < 0)
				return -1;
		}
		if (set_def(r, rel) < 0)
			return ls_err_set(err, false, "out of memory");
	}
	return check_table(t, r, err);
}

int ls_pgtarget_relation(struct ls_pgtarget *t, const struct ls_relation *rel,
			 struct ls_err *err)
{
	if (usable(t, err) < 0)
		return -1;
	struct trel *r = find_rel(t, rel->id);
	if (r && r->checked && rel_equal(r->src, rel))
		return 0;
	bool own_group = !t->in_group;
	if (open_group(t, err) < 0)
		return -1;
	if (relation_in_group(t, rel, err) < 0) {
		fail(t);
		return -1;
	}
	if (own_group && !t->in_txn)
		return commit_group(t, true, err);
	return 0;
}

/* ---- statements --------------------------------------------------------------- */

/* The shape of a statement, one code per column after the op letter:
 *   INSERT: "I" only (all columns, in order)
 *   UPDATE: "U" + per column set code ('v' set, '-' unchanged TOAST)
 *               + per column where code
 *   DELETE: "D" + per column where code
 * where codes: 'k' compared with a parameter, 't' compared as text (no '='
 * operator), 'n' IS NULL, '-' not compared. */
static int stmt_mask(struct ls_pgtarget *t, struct trel *r, const struct ls_change *ch,
		     const struct ls_tuple **where_tup, struct ls_err *err)
{
	const struct ls_relation *s = r->src;
	struct ls_pgsql_buf *m = &t->sql;
	ls_pgsql_buf_reset(m);
	ls_pgsql_putn(m, (const char *)&ch->op, 1);
	if (ch->op == LS_OP_INSERT)
		return 0;
	if (ch->op == LS_OP_UPDATE)
		for (int i = 0; i < s->ncols; i++)
			ls_pgsql_put(m, ch->new_tup.vals[i].kind == LS_VAL_UNCHANGED ? "-" : "v");
	bool full = s->replident == LS_REPLIDENT_FULL;
	const struct ls_tuple *w = &ch->new_tup;
	if (ch->old_kind != LS_OLD_NONE)
		w = &ch->old_tup;
	else if (ch->op == LS_OP_DELETE || full)
		return ls_err_set(err, false, "target %s: %s %s without the old row's identity",
				  t->target, op_name(ch->op), r->qname);
	if (w->ncols != s->ncols)
		return ls_err_set(err, false, "target %s: %s %s: old tuple has %u columns, "
				  "relation %u", t->target, op_name(ch->op), r->qname,
				  w->ncols, s->ncols);
	int nwhere = 0;
	for (int i = 0; i < s->ncols; i++) {
		const struct ls_value *v = &w->vals[i];
		char c = '-';
		if (full && v->kind == LS_VAL_NULL)
			c = 'n';
		else if (full && v->kind != LS_VAL_UNCHANGED)
			c = r->text_cmp[i] ? 't' : 'k';
		else if (!full && (s->cols[i].flags & LS_COL_KEY)) {
			if (v->kind == LS_VAL_NULL || v->kind == LS_VAL_UNCHANGED)
				return ls_err_set(err, false, "target %s: %s %s: key column %s "
						  "has no value", t->target, op_name(ch->op),
						  r->qname, s->cols[i].name);
			c = 'k';
		}
		nwhere += c != '-';
		ls_pgsql_putn(m, &c, 1);
	}
	if (nwhere == 0)
		return ls_err_set(err, false, "target %s: %s %s: nothing identifies the row",
				  t->target, op_name(ch->op), r->qname);
	*where_tup = w;
	return 0;
}

/* Appends the WHERE clause of mask's where codes (starting at w); adds the
 * parameter columns to pcol. */
static void where_sql(struct ls_pgsql_buf *b, const struct trel *r, const char *w,
		      int *pcol, int *np)
{
	bool full = r->src->replident == LS_REPLIDENT_FULL;
	if (full) {
		ls_pgsql_put(b, "ctid = (SELECT ctid FROM ");
		ls_pgsql_put(b, r->qname);
		ls_pgsql_put(b, " WHERE ");
	}
	bool first = true;
	for (int i = 0; i < r->src->ncols; i++) {
		if (w[i] == '-')
			continue;
		if (!first)
			ls_pgsql_put(b, " AND ");
		first = false;
		ls_pgsql_ident(b, r->src->cols[i].name);
		if (w[i] == 'n') {
			ls_pgsql_put(b, " IS NULL");
			continue;
		}
		pcol[(*np)++] = i;
		ls_pgsql_printf(b, w[i] == 't' ? "::text = $%d::text" : " = $%d", *np);
	}
	if (full)
		ls_pgsql_put(b, " LIMIT 1)");
}

/* Builds a statement for mask (copied). */
static struct stmt *build_stmt(struct ls_pgtarget *t, struct trel *r, const char *mask)
{
	const struct ls_relation *s = r->src;
	struct stmt *st = calloc(1, sizeof *st);
	if (st == NULL)
		return NULL;
	st->mask = strdup(mask);
	st->pcol = calloc((size_t)s->ncols * 2 + 1, sizeof *st->pcol);
	if (st->mask == NULL || st->pcol == NULL) {
		free_stmts(st);
		return NULL;
	}
	snprintf(st->name, sizeof st->name, "ls_%u", ++t->stmt_seq);
	return st;
}

static void stmt_sql(struct ls_pgsql_buf *b, const struct trel *r, struct stmt *st)
{
	const struct ls_relation *s = r->src;
	const char *mask = st->mask;
	int np = 0;
	ls_pgsql_buf_reset(b);
	if (mask[0] == LS_OP_INSERT) {
		ls_pgsql_printf(b, "INSERT INTO %s (", r->qname);
		for (int i = 0; i < s->ncols; i++) {
			if (i)
				ls_pgsql_put(b, ", ");
			ls_pgsql_ident(b, s->cols[i].name);
		}
		ls_pgsql_put(b, ") VALUES (");
		for (int i = 0; i < s->ncols; i++) {
			ls_pgsql_printf(b, "%s$%d", i ? ", " : "", i + 1);
			st->pcol[np++] = i;
		}
		ls_pgsql_put(b, ")");
	} else if (mask[0] == LS_OP_UPDATE) {
		ls_pgsql_printf(b, "UPDATE %s SET ", r->qname);
		for (int i = 0; i < s->ncols; i++) {
			if (mask[1 + i] != 'v')
				continue;
			if (np)
				ls_pgsql_put(b, ", ");
			ls_pgsql_ident(b, s->cols[i].name);
			st->pcol[np++] = i;
			ls_pgsql_printf(b, " = $%d", np);
		}
		ls_pgsql_put(b, " WHERE ");
		where_sql(b, r, mask + 1 + s->ncols, st->pcol, &np);
	} else {
		ls_pgsql_printf(b, "DELETE FROM %s WHERE ", r->qname);
		where_sql(b, r, mask + 1, st->pcol, &np);
	}
	st->nparams = np;
}

/* Text of one value as a parameter (or COPY field before escaping):
 * BINARY into bytea becomes hex input; other BINARY must be NUL-free text. */
static int param_value(struct ls_pgtarget *t, struct trel *r, int col, const struct ls_value *v,
		       int i, struct ls_err *err)
{
	t->poffs[i] = SIZE_MAX;
	t->pvals[i] = NULL;
	if (v->kind == LS_VAL_NULL)
		return 0;
	if (v->kind == LS_VAL_TEXT) {
		t->pvals[i] = v->data;
		return 0;
	}
	if (v->kind != LS_VAL_BINARY)
		return ls_err_set(err, false, "target %s: %s column %s: unexpected unchanged value",
				  t->target, r->qname, r->src->cols[col].name);
	t->poffs[i] = t->pbuf.len;
	if (r->bytea[col]) {
		ls_pgsql_bytea_hex(&t->pbuf, v->data, v->len);
	} else {
		if (memchr(v->data, '\0', v->len))
			return ls_err_set(err, false, "target %s: %s column %s: binary value with "
					  "NUL bytes for a non-bytea column", t->target, r->qname,
					  r->src->cols[col].name);
		ls_pgsql_putn(&t->pbuf, v->data, v->len);
	}
	ls_pgsql_putn(&t->pbuf, "", 1);   /* keep each value NUL-terminated */
	return 0;
}

static int grow_params(struct ls_pgtarget *t, int n)
{
	if (n <= t->pcap)
		return 0;
	const char **v = realloc(t->pvals, (size_t)n * sizeof *v);
	if (v)
		t->pvals = v;
	size_t *o = realloc(t->poffs, (size_t)n * sizeof *o);
	if (o)
		t->poffs = o;
	if (v == NULL || o == NULL)
		return -1;
	t->pcap = n;
	return 0;
}

/* "(a, b)=(1, x)" for error messages, truncated to size. */
static void key_text(char *out, size_t size, const struct trel *r, const struct ls_tuple *tup)
{
	char names[100] = "", vals[100] = "";
	size_t nl = 0, vl = 0;
	const struct ls_relation *s = r->src;
	bool full = s->replident == LS_REPLIDENT_FULL;
	int shown = 0;
	for (int i = 0; i < s->ncols && i < tup->ncols && shown < 4; i++) {
		if (!full && !(s->cols[i].flags & LS_COL_KEY))
			continue;
		const struct ls_value *v = &tup->vals[i];
		const char *txt = v->kind == LS_VAL_TEXT ? v->data
				  : v->kind == LS_VAL_NULL ? "NULL" : "?";
		if (nl < sizeof names)
			nl += (size_t)snprintf(names + nl, sizeof names - nl, "%s%s",
					       shown ? ", " : "", s->cols[i].name);
		if (vl < sizeof vals)
			vl += (size_t)snprintf(vals + vl, sizeof vals - vl, "%s%.30s",
					       shown ? ", " : "", txt);
		shown++;
	}
	/* a long key is cut short: the message only needs to find the row */
	if (size < 8)
		return;
	int n = snprintf(out, size, "(%.*s)=(%.*s)", (int)(size / 2 - 3), names,
			 (int)(size / 2 - 3), vals);
	(void)n;
}

static struct stmt *find_stmt(struct trel *r, const char *mask)
{
	for (struct stmt *s = r->stmts; s; s = s->next)
		if (strcmp(s->mask, mask) == 0)
			return s;
	return NULL;
}

static int send_params(struct ls_pgtarget *t, struct trel *r, const struct ls_change *ch,
		       struct stmt *st, const struct ls_tuple *wt, bool named, struct ls_err *err);

/* Sends one INSERT/UPDATE/DELETE as a prepared statement (prepared on
 * first use of its shape), or unnamed when the relation has many shapes. */

/* The prepared statement of r for mask: found, or built with sql_fn and
 * prepared (its result joins the pipeline); past MAX_STMTS_PER_REL one is
 * built unnamed (*named false), to be freed by the caller after one use.
 * NULL with err set. */
static struct stmt *stmt_for(struct ls_pgtarget *t, struct trel *r, const char *mask,
			     void (*sql_fn)(struct ls_pgsql_buf *b, const struct trel *r,
					    struct stmt *st),
			     uint8_t op, bool *named, struct ls_err *err)
{
	*named = true;
	struct stmt *st = find_stmt(r, mask);
	if (st != NULL)
		return st;
	if ((st = build_stmt(t, r, mask)) == NULL)
		return ls_err_set(err, false, "out of memory"), NULL;
	*named = r->nstmts < MAX_STMTS_PER_REL;
	if (*named) {
		st->next = r->stmts;
		r->stmts = st;
		r->nstmts++;
	}
	sql_fn(&t->sql, r, st);
	if (t->sql.oom) {
		if (!*named)
			free_stmts(st);
		return ls_err_set(err, false, "out of memory"), NULL;
	}
	if (*named && !PQsendPrepare(t->conn, st->name, ls_pgsql_buf_str(&t->sql), 0, NULL))
		return conn_error(t, err, "send"), NULL;
	if (*named && pushed(t, P_PLAIN, op, r, NULL, NULL, err) < 0)
		return NULL;
	return st;
}

static int send_dml(struct ls_pgtarget *t, struct trel *r, const struct ls_change *ch,
		    struct ls_err *err)
{
	const struct ls_tuple *wt = NULL;
	if (ch->op != LS_OP_DELETE && ch->new_tup.ncols != r->src->ncols)
		return ls_err_set(err, false, "target %s: %s %s: tuple has %u columns, relation %u",
				  t->target, op_name(ch->op), r->qname, ch->new_tup.ncols,
				  r->src->ncols);
	if (stmt_mask(t, r, ch, &wt, err) < 0)
		return -1;
	if (ch->op == LS_OP_UPDATE && strchr(ls_pgsql_buf_str(&t->sql) + 1, 'v') == NULL)
		return 0;   /* only unchanged TOAST columns: nothing to set */
	bool named;
	struct stmt *st = stmt_for(t, r, ls_pgsql_buf_str(&t->sql), stmt_sql, ch->op, &named, err);
	if (st == NULL)
		return -1;
	int rc = send_params(t, r, ch, st, wt, named, err);
	if (!named)
		free_stmts(st);   /* used once; error reports do not point at it */
	return rc;
}

/* Sends the execution of st with the change's values. */
static int send_params(struct ls_pgtarget *t, struct trel *r, const struct ls_change *ch,
		       struct stmt *st, const struct ls_tuple *wt, bool named, struct ls_err *err)
{
	if (grow_params(t, st->nparams + 1) < 0)
		return ls_err_set(err, false, "out of memory");
	ls_pgsql_buf_reset(&t->pbuf);
	int nset = ch->op == LS_OP_DELETE ? 0 : st->nparams;
	if (ch->op == LS_OP_UPDATE) {
		nset = 0;
		for (int i = 0; i < r->src->ncols; i++)
			nset += st->mask[1 + i] == 'v';
	}
	for (int i = 0; i < st->nparams; i++) {
		const struct ls_tuple *tup = i < nset ? &ch->new_tup : wt;
		if (param_value(t, r, st->pcol[i], &tup->vals[st->pcol[i]], i, err) < 0)
			return -1;
	}
	if (t->pbuf.oom)
		return ls_err_set(err, false, "out of memory");
	for (int i = 0; i < st->nparams; i++)
		if (t->poffs[i] != SIZE_MAX)
			t->pvals[i] = t->pbuf.data + t->poffs[i];
	int ok = named ? PQsendQueryPrepared(t->conn, st->name, st->nparams, t->pvals, NULL, NULL, 0)
		       : PQsendQueryParams(t->conn, ls_pgsql_buf_str(&t->sql), st->nparams, NULL,
					   t->pvals, NULL, NULL, 0);
	if (!ok)
		return conn_error(t, err, "send");
	char key[100];
	key_text(key, sizeof key, r, ch->op == LS_OP_INSERT ? &ch->new_tup : wt);
	return pushed(t, P_STMT, ch->op, r, named ? st : NULL, key, err);
}

/* ---- batches ------------------------------------------------------------------ */

/* Set-based apply.  Within a group, UPDATEs and DELETEs of a batchable
 * table (struct trel) are held back as pending rows, one per key, and sent
 * as one statement per table and up to BATCH_ROWS rows:
 *   UPDATE t AS ls_t SET c = ls_v.p2::type ... FROM unnest($1::text[], ...)
 *     AS ls_v(p1, ...) WHERE ls_t.k = ls_v.p1::type ...
 *   DELETE FROM t AS ls_t USING unnest(...) AS ls_v(p1, ...) WHERE ...
 * A key updated again keeps only its last image (an update carries the
 * whole new row, bar unchanged TOAST values: rows batch together only with
 * the same present columns).  Every change that could tell the difference
 * sends the table's pending rows first: another op on the table, other
 * present columns, a key change, an INSERT or DELETE of a pending key; and
 * all tables' before a change to a table that is not batchable, TRUNCATE,
 * a relation change, a savepoint and the commit.  Between batchable tables
 * order is not observable (no triggers, foreign keys or second unique
 * index; see BATCH_SQL), so their changes may pass each other.  On the
 * server this saves the per-statement executor work and, above all, the
 * row versions of hot rows updated many times in one target transaction,
 * which every later update of them has to walk past. */

static uint32_t key_hash(const char *k, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)k[i]) * 16777619u;
	return h;
}

static const char *rec_at(const struct batch *b, int i, uint32_t *klen, uint32_t *len)
{
	const char *p = b->data.data + b->rec[i];
	memcpy(klen, p, 4);
	memcpy(len, p + 4, 4);
	return p + 8;
}

/* Index of the pending row with key k, or -1; *slot_out gets the slot
 * where it is or would go. */
static int batch_find(const struct batch *b, const char *k, uint32_t klen, uint32_t *slot_out)
{
	uint32_t s = key_hash(k, klen) & (BATCH_SLOTS - 1);
	for (;; s = (s + 1) & (BATCH_SLOTS - 1)) {
		int i = b->slot[s];
		if (i < 0)
			break;
		uint32_t kl, l;
		const char *p = rec_at(b, i, &kl, &l);
		if (kl == klen && memcmp(p, k, klen) == 0)
			break;
	}
	*slot_out = s;
	return b->slot[s];
}

static void batch_clear(struct ls_pgtarget *t, struct trel *r)
{
	struct batch *b = &r->b;
	if (b->n == 0)
		return;
	t->pending_bytes -= b->data.len;
	for (struct trel **pp = &t->pending; *pp; pp = &(*pp)->b.next)
		if (*pp == r) {
			*pp = r->b.next;
			break;
		}
	b->next = NULL;
	b->n = 0;
	b->op = 0;
	ls_pgsql_buf_reset(&b->data);
	for (int i = 0; i < BATCH_SLOTS; i++)
		b->slot[i] = -1;
}

/* Forgets every pending row (the group is rolled back). */
static void drop_pending(struct ls_pgtarget *t)
{
	while (t->pending)
		batch_clear(t, t->pending);
	t->pending_bytes = 0;
}

/* Appends one value as an array element, NUL-terminated. */
static int put_elem(struct ls_pgtarget *t, struct trel *r, int col, const struct ls_value *v,
		    struct ls_pgsql_buf *out, struct ls_err *err)
{
	if (v->kind == LS_VAL_NULL) {
		ls_pgsql_putn(out, "NULL", 5);
		return 0;
	}
	if (v->kind == LS_VAL_TEXT) {
		ls_pgsql_array_elem(out, v->data, v->len);
	} else {
		ls_pgsql_buf_reset(&t->pbuf);
		if (grow_params(t, 1) < 0)
			return ls_err_set(err, false, "out of memory");
		if (param_value(t, r, col, v, 0, err) < 0)
			return -1;
		ls_pgsql_array_elem(out, t->pbuf.data, t->pbuf.len - 1);
	}
	ls_pgsql_putn(out, "", 1);
	return 0;
}

static bool has_value(const struct ls_value *v)
{
	return v->kind == LS_VAL_TEXT || v->kind == LS_VAL_BINARY;
}

/* Appends the row record for key tuple kt and (UPDATE, mask of set codes)
 * the present non-key columns of nt; returns its key length or -1. */
static int put_record(struct ls_pgtarget *t, struct trel *r, const struct ls_tuple *kt,
		      const struct ls_tuple *nt, const char *set, struct ls_err *err)
{
	struct ls_pgsql_buf *d = &r->b.data;
	size_t at = d->len;
	ls_pgsql_putn(d, "\0\0\0\0\0\0\0\0", 8);
	const struct ls_relation *s = r->src;
	for (int i = 0; i < s->ncols; i++)
		if ((s->cols[i].flags & LS_COL_KEY) && put_elem(t, r, i, &kt->vals[i], d, err) < 0)
			return -1;
	uint32_t klen = (uint32_t)(d->len - at - 8);
	for (int i = 0; set && i < s->ncols; i++)
		if (!(s->cols[i].flags & LS_COL_KEY) && set[i] == 'v' &&
		    put_elem(t, r, i, &nt->vals[i], d, err) < 0)
			return -1;
	if (d->oom)
		return ls_err_set(err, false, "out of memory");
	uint32_t len = (uint32_t)(d->len - at - 8);
	memcpy(d->data + at, &klen, 4);
	memcpy(d->data + at + 4, &len, 4);
	return (int)klen;
}

static int batch_alloc(struct batch *b)
{
	if (b->rec)
		return 0;
	b->rec = malloc(BATCH_ROWS * sizeof *b->rec);
	b->slot = malloc(BATCH_SLOTS * sizeof *b->slot);
	if (b->rec == NULL || b->slot == NULL)
		return -1;
	for (int i = 0; i < BATCH_SLOTS; i++)
		b->slot[i] = -1;
	return 0;
}

static int flush_rel(struct ls_pgtarget *t, struct trel *r, struct ls_err *err);

/* Whether the key columns of a and b hold the same values. */
static bool same_key(const struct ls_relation *s, const struct ls_tuple *a,
		     const struct ls_tuple *b)
{
	for (int i = 0; i < s->ncols; i++) {
		if (!(s->cols[i].flags & LS_COL_KEY))
			continue;
		const struct ls_value *x = &a->vals[i], *y = &b->vals[i];
		if (!has_value(x) || x->kind != y->kind || x->len != y->len ||
		    memcmp(x->data, y->data, x->len) != 0)
			return false;
	}
	return true;
}

static bool key_present(const struct ls_relation *s, const struct ls_tuple *tup)
{
	for (int i = 0; i < s->ncols; i++)
		if ((s->cols[i].flags & LS_COL_KEY) && !has_value(&tup->vals[i]))
			return false;
	return true;
}

/* The batch mask of an UPDATE into t->bmask ("u" + per column 'v' present,
 * '-' unchanged TOAST) or a DELETE ("d"); false when the update sets no
 * column outside the key (the row path handles that). */
static bool batch_mask(struct ls_pgtarget *t, const struct trel *r, const struct ls_change *ch)
{
	struct ls_pgsql_buf *m = &t->bmask;
	ls_pgsql_buf_reset(m);
	ls_pgsql_put(m, ch->op == LS_OP_UPDATE ? "u" : "d");
	if (ch->op != LS_OP_UPDATE)
		return !m->oom;
	int nset = 0;
	for (int i = 0; i < r->src->ncols; i++) {
		bool v = ch->new_tup.vals[i].kind != LS_VAL_UNCHANGED;
		nset += v && !(r->src->cols[i].flags & LS_COL_KEY);
		ls_pgsql_put(m, v ? "v" : "-");
	}
	return nset > 0 && !m->oom;
}

/* Looks key tuple kt up among r's pending rows: sends them first when it is
 * there.  For an INSERT into a batchable table. */
static int flush_if_pending(struct ls_pgtarget *t, struct trel *r, const struct ls_tuple *kt,
			    struct ls_err *err)
{
	struct batch *b = &r->b;
	if (b->n == 0)
		return 0;
	if (kt->ncols != r->src->ncols || !key_present(r->src, kt))
		return flush_rel(t, r, err);
	size_t at = b->data.len;
	int klen = put_record(t, r, kt, NULL, NULL, err);
	if (klen < 0)
		return -1;
	uint32_t slot;
	int found = batch_find(b, b->data.data + at + 8, (uint32_t)klen, &slot);
	b->data.len = at;   /* only a probe */
	return found >= 0 ? flush_rel(t, r, err) : 0;
}

/* Takes an UPDATE or DELETE of a batchable table into its batch: returns 1
 * when taken, 0 when it must go the row path (r's pending rows sent
 * first), -1 on error. */
static int batch_change(struct ls_pgtarget *t, struct trel *r, const struct ls_change *ch,
			struct ls_err *err)
{
	const struct ls_relation *s = r->src;
	struct batch *b = &r->b;
	const struct ls_tuple *kt = &ch->new_tup;
	bool upd = ch->op == LS_OP_UPDATE;
	if (!upd || ch->old_kind != LS_OLD_NONE)
		kt = &ch->old_tup;
	bool ok = (!upd || ch->new_tup.ncols == s->ncols) && kt->ncols == s->ncols &&
		  (upd || ch->old_kind != LS_OLD_NONE) && key_present(s, kt) &&
		  (!upd || kt == &ch->new_tup || same_key(s, kt, &ch->new_tup)) &&
		  batch_mask(t, r, ch);
	if (!ok)   /* key change, missing values, nothing to set: one row */
		return flush_rel(t, r, err) < 0 ? -1 : 0;
	const char *mask = ls_pgsql_buf_str(&t->bmask);
	if (b->n && (b->op != ch->op || strcmp(b->mask, mask) != 0) && flush_rel(t, r, err) < 0)
		return -1;
	if (batch_alloc(b) < 0)
		return ls_err_set(err, false, "out of memory");
	if (b->n == 0 && (b->mask == NULL || strcmp(b->mask, mask) != 0)) {
		free(b->mask);
		if ((b->mask = strdup(mask)) == NULL)
			return ls_err_set(err, false, "out of memory");
	}
	size_t at = b->data.len;
	int klen = put_record(t, r, kt, upd ? &ch->new_tup : NULL, upd ? mask + 1 : NULL, err);
	if (klen < 0)
		return -1;
	uint32_t slot;
	int found = batch_find(b, b->data.data + at + 8, (uint32_t)klen, &slot);
	if (found >= 0 && !upd) {
		/* deleted again (re-inserted in between): the first goes alone */
		b->data.len = at;
		if (flush_rel(t, r, err) < 0)
			return -1;
		at = b->data.len;
		klen = put_record(t, r, kt, NULL, NULL, err);
		if (klen < 0)
			return -1;
		found = batch_find(b, b->data.data + at + 8, (uint32_t)klen, &slot);
	}
	if (b->n == 0) {
		b->op = ch->op;
		b->next = t->pending;
		t->pending = r;
	}
	t->pending_bytes += b->data.len - at;
	if (found >= 0) {
		b->rec[found] = at;        /* the last image wins */
	} else {
		b->slot[slot] = b->n;
		b->rec[b->n++] = at;
	}
	if (b->n >= BATCH_ROWS || b->data.len >= BATCH_BYTES)
		return flush_rel(t, r, err) < 0 ? -1 : 1;
	if (t->pending_bytes >= PENDING_BYTES)
		return flush_all(t, err) < 0 ? -1 : 1;
	return 1;
}

static const char *cast_of(const struct trel *r, int col)
{
	const char *c = r->casts;
	for (int i = 0; i < col; i++)
		c += strlen(c) + 1;
	return c;
}

/* The statement of a batch mask; parameters: key columns, then the set
 * ones, each a text[] of the rows' values. */
static void batch_sql(struct ls_pgsql_buf *b, const struct trel *r, struct stmt *st)
{
	const struct ls_relation *s = r->src;
	bool upd = st->mask[0] == 'u';
	int np = 0, nkey;
	for (int i = 0; i < s->ncols; i++)
		if (s->cols[i].flags & LS_COL_KEY)
			st->pcol[np++] = i;
	nkey = np;
	for (int i = 0; upd && i < s->ncols; i++)
		if (!(s->cols[i].flags & LS_COL_KEY) && st->mask[1 + i] == 'v')
			st->pcol[np++] = i;
	st->nparams = np;
	ls_pgsql_buf_reset(b);
	ls_pgsql_printf(b, upd ? "UPDATE %s AS ls_t SET " : "DELETE FROM %s AS ls_t USING ",
			r->qname);
	for (int j = nkey; j < np; j++) {
		ls_pgsql_put(b, j > nkey ? ", " : "");
		ls_pgsql_ident(b, s->cols[st->pcol[j]].name);
		ls_pgsql_printf(b, " = ls_v.p%d::%s", j + 1, cast_of(r, st->pcol[j]));
	}
	ls_pgsql_put(b, upd ? " FROM unnest(" : "unnest(");
	for (int j = 0; j < np; j++)
		ls_pgsql_printf(b, "%s$%d::text[]", j ? ", " : "", j + 1);
	ls_pgsql_put(b, ") AS ls_v(");
	for (int j = 0; j < np; j++)
		ls_pgsql_printf(b, "%sp%d", j ? ", " : "", j + 1);
	ls_pgsql_put(b, ") WHERE ");
	for (int j = 0; j < nkey; j++) {
		ls_pgsql_put(b, j ? " AND ls_t." : "ls_t.");
		ls_pgsql_ident(b, s->cols[st->pcol[j]].name);
		ls_pgsql_printf(b, " = ls_v.p%d::%s", j + 1, cast_of(r, st->pcol[j]));
	}
}

/* "(a, b)=(1, x) .. (9, y), 120 rows" from the first and last rows' keys. */
static void batch_keys(char *out, size_t size, const struct trel *r, const struct stmt *st)
{
	const struct batch *b = &r->b;
	char names[60] = "", first[60] = "", last[60] = "";
	size_t nl = 0;
	int nkey = 0;
	for (int j = 0; j < st->nparams && (r->src->cols[st->pcol[j]].flags & LS_COL_KEY); j++) {
		if (nl < sizeof names)
			nl += (size_t)snprintf(names + nl, sizeof names - nl, "%s%s", j ? ", " : "",
					       r->src->cols[st->pcol[j]].name);
		nkey++;
	}
	for (int w = 0; w < 2; w++) {
		char *o = w ? last : first;
		size_t ol = 0;
		uint32_t kl, l;
		const char *e = rec_at(b, w ? b->n - 1 : 0, &kl, &l);
		for (int j = 0; j < nkey && ol < sizeof first; j++) {
			ol += (size_t)snprintf(o + ol, sizeof first - ol, "%s%s", j ? ", " : "", e);
			e += strlen(e) + 1;
		}
	}
	snprintf(out, size, "(%.30s)=(%.25s) .. (%.25s), %d rows", names, first, last, b->n);
}

/* Sends r's pending rows as one statement (prepared on first use of its
 * mask) and empties the batch. */
static int send_batch(struct ls_pgtarget *t, struct trel *r, struct stmt *st, bool named,
		      struct ls_err *err)
{
	const struct batch *b = &r->b;
	int np = st->nparams;
	if (np > t->nabuf) {
		struct ls_pgsql_buf *a = realloc(t->abuf, (size_t)np * sizeof *a);
		if (a == NULL)
			return ls_err_set(err, false, "out of memory");
		t->abuf = a;
		for (; t->nabuf < np; t->nabuf++)
			ls_pgsql_buf_init(&t->abuf[t->nabuf]);
	}
	if (grow_params(t, np) < 0)
		return ls_err_set(err, false, "out of memory");
	for (int j = 0; j < np; j++) {
		ls_pgsql_buf_reset(&t->abuf[j]);
		ls_pgsql_putn(&t->abuf[j], "{", 1);
	}
	for (int i = 0; i < b->n; i++) {
		uint32_t kl, l;
		const char *e = rec_at(b, i, &kl, &l);
		for (int j = 0; j < np; j++) {
			size_t el = strlen(e);
			if (i)
				ls_pgsql_putn(&t->abuf[j], ",", 1);
			ls_pgsql_putn(&t->abuf[j], e, el);
			e += el + 1;
		}
	}
	for (int j = 0; j < np; j++) {
		ls_pgsql_putn(&t->abuf[j], "}", 1);
		if (t->abuf[j].oom)
			return ls_err_set(err, false, "out of memory");
		t->pvals[j] = t->abuf[j].data;
	}
	int ok = named ? PQsendQueryPrepared(t->conn, st->name, np, t->pvals, NULL, NULL, 0)
		       : PQsendQueryParams(t->conn, ls_pgsql_buf_str(&t->sql), np, NULL, t->pvals,
					   NULL, NULL, 0);
	if (!ok)
		return conn_error(t, err, "send");
	char key[100];
	batch_keys(key, sizeof key, r, st);
	return pushed_rows(t, P_BATCH, b->op, r, named ? st : NULL, key, b->n, err);
}

static int flush_rel(struct ls_pgtarget *t, struct trel *r, struct ls_err *err)
{
	struct batch *b = &r->b;
	if (b->n == 0)
		return 0;
	if (end_copy(t, err) < 0)
		return -1;
	bool named;
	struct stmt *st = stmt_for(t, r, b->mask, batch_sql, b->op, &named, err);
	if (st == NULL)
		return -1;
	int rc = send_batch(t, r, st, named, err);
	if (!named)
		free_stmts(st);
	if (rc == 0)
		batch_clear(t, r);
	return rc;
}

/* Sends every table's pending rows. */
static int flush_all(struct ls_pgtarget *t, struct ls_err *err)
{
	while (t->pending)
		if (flush_rel(t, t->pending, err) < 0)
			return -1;
	return 0;
}

/* ---- COPY --------------------------------------------------------------------- */

/* Leaves pipeline mode (results all read) and starts COPY into r. */
static int start_copy(struct ls_pgtarget *t, struct trel *r, struct ls_err *err)
{
	if (!PQpipelineSync(t->conn))
		return conn_error(t, err, "sync");
	if (pushed(t, P_SYNC, 0, NULL, NULL, NULL, err) < 0 || drain_until(t, 0, err) < 0)
		return -1;
	if (!PQexitPipelineMode(t->conn))
		return conn_error(t, err, "leave pipeline mode");
	ls_pgsql_buf_reset(&t->sql);
	ls_pgsql_printf(&t->sql, "COPY %s (", r->qname);
	for (int i = 0; i < r->src->ncols; i++) {
		if (i)
			ls_pgsql_put(&t->sql, ", ");
		ls_pgsql_ident(&t->sql, r->src->cols[i].name);
	}
	ls_pgsql_put(&t->sql, ") FROM STDIN");
	PGresult *res = PQexec(t->conn, ls_pgsql_buf_str(&t->sql));
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		struct pend p = { .op = LS_OP_INSERT, .rel = r };
		record_error(t, res, &p);
		PQclear(res);
		return fail_with(t, err);
	}
	PQclear(res);
	t->copy_rel = r;
	t->copy_rows = 0;
	ls_pgsql_buf_reset(&t->copybuf);
	return 0;
}

static int copy_send(struct ls_pgtarget *t, struct ls_err *err)
{
	if (t->copybuf.oom)
		return ls_err_set(err, false, "out of memory");
	if (t->copybuf.len && PQputCopyData(t->conn, t->copybuf.data, (int)t->copybuf.len) != 1)
		return conn_error(t, err, "COPY data");
	ls_pgsql_buf_reset(&t->copybuf);
	return 0;
}

static int copy_row(struct ls_pgtarget *t, struct trel *r, const struct ls_change *ch,
		    struct ls_err *err)
{
	struct ls_pgsql_buf *b = &t->copybuf;
	for (int i = 0; i < r->src->ncols; i++) {
		const struct ls_value *v = &ch->new_tup.vals[i];
		if (i)
			ls_pgsql_putn(b, "\t", 1);
		if (v->kind == LS_VAL_NULL) {
			ls_pgsql_putn(b, "\\N", 2);
		} else if (v->kind == LS_VAL_TEXT) {
			ls_pgsql_copy_escape(b, v->data, v->len);
		} else {
			ls_pgsql_buf_reset(&t->pbuf);
			if (grow_params(t, 1) < 0)
				return ls_err_set(err, false, "out of memory");
			if (param_value(t, r, i, v, 0, err) < 0)
				return -1;
			ls_pgsql_copy_escape(b, t->pbuf.data, t->pbuf.len - 1);
		}
	}
	ls_pgsql_putn(b, "\n", 1);
	t->copy_rows++;
	return b->len >= COPY_CHUNK ? copy_send(t, err) : 0;
}

/* Ends an open COPY, checks its outcome, re-enters pipeline mode. */
static int end_copy(struct ls_pgtarget *t, struct ls_err *err)
{
	struct trel *r = t->copy_rel;
	if (r == NULL)
		return 0;
	t->copy_rel = NULL;
	if (copy_send(t, err) < 0)
		return -1;
	if (PQputCopyEnd(t->conn, NULL) != 1)
		return conn_error(t, err, "COPY end");
	PGresult *res;
	int rc = 0;
	while ((res = PQgetResult(t->conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0) {
			struct pend p = { .op = LS_OP_INSERT, .rel = r };
			snprintf(p.key, sizeof p.key, "(COPY of %d rows)", t->copy_rows);
			record_error(t, res, &p);
			rc = -1;
		}
		PQclear(res);
	}
	if (rc < 0)
		return fail_with(t, err);
	t->group_copy_rows += t->copy_rows;
	if (!PQenterPipelineMode(t->conn))
		return conn_error(t, err, "pipeline mode");
	return 0;
}

/* Abandons the COPY of an insert run of an aborted transaction (it cannot
 * have started before the transaction's savepoint): the server fails it,
 * which leaves the transaction block in error until the rollback. */
static int abandon_copy(struct ls_pgtarget *t, struct ls_err *err)
{
	if (t->copy_rel == NULL)
		return 0;
	t->copy_rel = NULL;
	ls_pgsql_buf_reset(&t->copybuf);
	if (PQputCopyEnd(t->conn, "source transaction abandoned") != 1)
		return conn_error(t, err, "COPY end");
	PGresult *res;
	while ((res = PQgetResult(t->conn)) != NULL)
		PQclear(res);
	if (PQstatus(t->conn) != CONNECTION_OK)
		return conn_error(t, err, "COPY end");
	if (!PQenterPipelineMode(t->conn))
		return conn_error(t, err, "pipeline mode");
	return 0;
}

/* ---- changes ------------------------------------------------------------------ */

static int truncate_rels(struct ls_pgtarget *t, const struct ls_change *ch, struct ls_err *err)
{
	if (flush_all(t, err) < 0 || end_copy(t, err) < 0)
		return -1;
	struct ls_pgsql_buf b;
	ls_pgsql_buf_init(&b);
	ls_pgsql_put(&b, "TRUNCATE ");
	for (uint32_t i = 0; i < ch->nrelids; i++) {
		struct trel *r = find_rel(t, ch->relids[i]);
		if (r == NULL) {
			ls_pgsql_buf_free(&b);
			return ls_err_set(err, false, "target %s: TRUNCATE of unknown relation id %u",
					  t->target, ch->relids[i]);
		}
		ls_pgsql_printf(&b, "%s%s", i ? ", " : "", r->qname);
	}
	if (ch->truncate_flags & LS_TRUNCATE_RESTART_IDENTITY)
		ls_pgsql_put(&b, " RESTART IDENTITY");
	if (ch->truncate_flags & LS_TRUNCATE_CASCADE)
		ls_pgsql_put(&b, " CASCADE");
	int rc = b.oom ? ls_err_set(err, false, "out of memory")
		       : send_sql(t, ls_pgsql_buf_str(&b), 0, NULL, P_PLAIN, err);
	ls_pgsql_buf_free(&b);
	t->group_rows++;
	return rc;
}

/* INSERTs go to COPY once a run into one table is longer than copy_after. */
static int insert_row(struct ls_pgtarget *t, struct trel *r, const struct ls_change *ch,
		      struct ls_err *err)
{
	if (t->copy_rel == r)
		return copy_row(t, r, ch, err);
	if (end_copy(t, err) < 0)
		return -1;
	t->run_len = t->run_rel == r ? t->run_len + 1 : 1;
	t->run_rel = r;
	if (t->o.copy_after > 0 && t->run_len > t->o.copy_after) {
		if (ch->new_tup.ncols != r->src->ncols)
			return ls_err_set(err, false, "target %s: INSERT %s: tuple has %u columns, "
					  "relation %u", t->target, r->qname, ch->new_tup.ncols,
					  r->src->ncols);
		if (start_copy(t, r, err) < 0)
			return -1;
		return copy_row(t, r, ch, err);
	}
	return send_dml(t, r, ch, err);
}

static int change_in_txn(struct ls_pgtarget *t, const struct ls_relation *rel,
			 const struct ls_change *ch, struct ls_err *err)
{
	if (ch->op == LS_OP_TRUNCATE)
		return truncate_rels(t, ch, err);
	if (rel && relation_in_group(t, rel, err) < 0)
		return -1;
	struct trel *r = find_rel(t, rel ? rel->id : ch->relid);
	if (r == NULL || !r->checked)
		return ls_err_set(err, false, "target %s: change for unknown relation id %u",
				  t->target, ch->relid);
	t->group_rows++;
	if (ch->op != LS_OP_INSERT && ch->op != LS_OP_UPDATE && ch->op != LS_OP_DELETE)
		return ls_err_set(err, false, "target %s: unknown change op %d", t->target, ch->op);
	/* batches only outside savepoint mode: a replay after a failure goes
	 * row by row, so that an error names its row */
	if (!r->batchable || t->sp_mode) {
		if (flush_all(t, err) < 0)
			return -1;
	} else if (ch->op == LS_OP_INSERT) {
		if (flush_if_pending(t, r, &ch->new_tup, err) < 0)
			return -1;
	} else {
		int rc = batch_change(t, r, ch, err);
		if (rc != 0)
			return rc < 0 ? -1 : 0;
	}
	if (ch->op == LS_OP_INSERT)
		return insert_row(t, r, ch, err);
	t->run_rel = NULL;
	if (end_copy(t, err) < 0)
		return -1;
	return send_dml(t, r, ch, err);
}

int ls_pgtarget_change(struct ls_pgtarget *t, const struct ls_relation *rel,
		       const struct ls_change *ch, struct ls_err *err)
{
	if (usable_in_txn(t, "change", err) < 0)
		return -1;
	if (ch->op == LS_OP_MESSAGE)
		return 0;
	if (change_in_txn(t, rel, ch, err) < 0) {
		fail(t);
		return -1;
	}
	return 0;
}
