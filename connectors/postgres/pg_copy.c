#include "connectors/postgres/pg_copy.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/postgres/pg_session.h"
#include "connectors/postgres/pg_sql.h"
#include "connectors/postgres/pg_target.h"

/* Small chunks are gathered up to this size before they go to libpq: one
 * CopyData message and one socket write per 256 KiB instead of per chunk. */
#define GATHER (256 * 1024)

struct ls_pgcopy {
	char *pipeline, *target, *conninfo;
	PGconn *conn;
	bool failed;
	bool in_table;             /* BEGIN sent, not yet committed */
	bool in_copy;              /* COPY FROM STDIN running */
	char *qname;               /* owned: the open table, for messages */
	struct ls_pgsql_buf sql, gather;
};

static void quiet_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* ---- errors --------------------------------------------------------------- */

/* Drops the connection: the server rolls an open table back. */
static void drop(struct ls_pgcopy *c)
{
	if (c->conn)
		PQfinish(c->conn);
	c->conn = NULL;
	c->failed = true;
	c->in_table = c->in_copy = false;
}

/* Fails the session with the server's error in r (or the connection's). */
static int fail_res(struct ls_pgcopy *c, const PGresult *r, const char *what,
		    struct ls_err *err)
{
	const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *ctx = r ? PQresultErrorField(r, PG_DIAG_CONTEXT) : NULL;
	if (msg == NULL)
		msg = c->conn ? PQerrorMessage(c->conn) : "not connected";
	bool retry = st == NULL || ls_pgtarget_sqlstate_retryable(st);
	ls_err_set(err, retry, "target %s: copy %s: %s: %s%s%s%s%s%s", c->target,
		   c->qname ? c->qname : "session", what, msg, st ? " (SQLSTATE " : "",
		   st ? st : "", st ? ")" : "", ctx ? "; " : "", ctx ? ctx : "");
	if (err) {
		size_t l = strlen(err->msg);
		while (l && err->msg[l - 1] == '\n')
			err->msg[--l] = '\0';
	}
	drop(c);
	return -1;
}

static int oom(struct ls_pgcopy *c, struct ls_err *err)
{
	drop(c);
	return ls_err_set(err, false, "out of memory");
}

static int usable(struct ls_pgcopy *c, struct ls_err *err)
{
	if (!c->failed && c->conn)
		return 0;
	return ls_err_set(err, false, "target %s: copy session failed earlier", c->target);
}

/* Runs one command (several statements allowed without parameters) and
 * expects status want; the result goes to *out when out is non-NULL. */
static int run(struct ls_pgcopy *c, const char *sql, int n, const char *const *vals,
	       ExecStatusType want, const char *what, PGresult **out, struct ls_err *err)
{
	PGresult *r = n ? PQexecParams(c->conn, sql, n, NULL, vals, NULL, NULL, 0)
			: PQexec(c->conn, sql);
	if (PQresultStatus(r) != want) {
		fail_res(c, r, what, err);
		PQclear(r);
		return -1;
	}
	if (out)
		*out = r;
	else
		PQclear(r);
	return 0;
}

/* ---- session ----------------------------------------------------------------- */

void ls_pgcopy_close(struct ls_pgcopy *c)
{
	if (c == NULL)
		return;
	if (c->conn)
		PQfinish(c->conn);   /* an open table is rolled back by the server */
	ls_pgsql_buf_free(&c->sql);
	ls_pgsql_buf_free(&c->gather);
	free(c->qname);
	free(c->pipeline);
	free(c->target);
	free(c->conninfo);
	free(c);
}

/* The data arrives in the text form the source wrote with these settings.
 * No user triggers or foreign-key checks on the target (the source enforced
 * them, and tables are copied in parallel in no particular order); needs
 * superuser, so failure is ignored. */
static int setup_session(struct ls_pgcopy *c, struct ls_err *err)
{
	PQsetNoticeProcessor(c->conn, quiet_notice, NULL);
	if (run(c, ls_pgsession_sql, 0, NULL, PGRES_COMMAND_OK, "session setup", NULL,
		err) < 0)
		return -1;
	PQclear(PQexec(c->conn, "SET session_replication_role = replica"));
	return 0;
}

int ls_pgcopy_open(const struct ls_pgcopy_opts *o, struct ls_pgcopy **out,
		   struct ls_err *err)
{
	*out = NULL;
	struct ls_pgcopy *c = calloc(1, sizeof *c);
	if (c == NULL)
		return ls_err_set(err, false, "out of memory");
	c->pipeline = strdup(o->pipeline ? o->pipeline : "");
	c->target = strdup(o->target ? o->target : "");
	c->conninfo = strdup(o->conninfo ? o->conninfo : "");
	ls_pgsql_buf_init(&c->sql);
	ls_pgsql_buf_init(&c->gather);
	if (!c->pipeline || !c->target || !c->conninfo) {
		ls_pgcopy_close(c);
		return ls_err_set(err, false, "out of memory");
	}
	c->conn = PQconnectdb(c->conninfo);
	if (c->conn == NULL || PQstatus(c->conn) != CONNECTION_OK) {
		fail_res(c, NULL, "cannot connect", err);
		ls_pgcopy_close(c);
		return -1;
	}
	if (setup_session(c, err) < 0) {
		ls_pgcopy_close(c);
		return -1;
	}
	*out = c;
	return 0;
}

/* ---- one table ------------------------------------------------------------------ */

/* Whether the table exists, is partitioned, and is referenced by a foreign
 * key (TRUNCATE refuses those; DELETE under replica role does not check). */
static const char PROBE_SQL[] =
	"SELECT c.relkind = 'p', EXISTS (SELECT 1 FROM pg_constraint f"
	" WHERE f.contype = 'f' AND f.confrelid = c.oid AND f.conrelid <> c.oid)"
	" FROM pg_class c WHERE c.oid = to_regclass($1)";

/* Empties the table; says whether COPY may FREEZE (the table was truncated
 * in this transaction and is not partitioned). */
static int empty_table(struct ls_pgcopy *c, bool *freeze, struct ls_err *err)
{
	const char *v[1] = { c->qname };
	PGresult *r;
	*freeze = false;
	if (run(c, PROBE_SQL, 1, v, PGRES_TUPLES_OK, "probe", &r, err) < 0)
		return -1;
	if (PQntuples(r) != 1) {
		PQclear(r);
		ls_err_set(err, false, "target %s: copy %s: table does not exist", c->target,
			   c->qname);
		drop(c);
		return -1;
	}
	bool partitioned = PQgetvalue(r, 0, 0)[0] == 't';
	bool referenced = PQgetvalue(r, 0, 1)[0] == 't';
	PQclear(r);
	ls_pgsql_buf_reset(&c->sql);
	ls_pgsql_printf(&c->sql, "%s %s", referenced ? "DELETE FROM" : "TRUNCATE", c->qname);
	if (c->sql.oom)
		return oom(c, err);
	*freeze = !referenced && !partitioned;
	return run(c, ls_pgsql_buf_str(&c->sql), 0, NULL, PGRES_COMMAND_OK, "emptying the table",
		   NULL, err);
}

int ls_pgcopy_table_begin(struct ls_pgcopy *c, const struct ls_relation *rel,
			  struct ls_err *err)
{
	if (usable(c, err) < 0)
		return -1;
	if (c->in_table)
		return ls_err_set(err, false, "target %s: copy of %s still open", c->target,
				  c->qname);
	ls_pgsql_buf_reset(&c->sql);
	ls_pgsql_qualified(&c->sql, rel->schema, rel->name);
	free(c->qname);
	c->qname = c->sql.oom ? NULL : strdup(ls_pgsql_buf_str(&c->sql));
	if (c->qname == NULL)
		return ls_err_set(err, false, "out of memory");
	if (run(c, "BEGIN", 0, NULL, PGRES_COMMAND_OK, "BEGIN", NULL, err) < 0)
		return -1;
	c->in_table = true;
	bool freeze;
	if (empty_table(c, &freeze, err) < 0)
		return -1;
	ls_pgsql_buf_reset(&c->sql);
	ls_pgsql_printf(&c->sql, "COPY %s (", c->qname);
	for (int i = 0; i < rel->ncols; i++) {
		if (i)
			ls_pgsql_put(&c->sql, ", ");
		ls_pgsql_ident(&c->sql, rel->cols[i].name);
	}
	/* FREEZE: rows are written frozen (the table was emptied in this
	 * transaction, so no other transaction can see them early) and the
	 * first VACUUM has nothing to do */
	ls_pgsql_put(&c->sql, freeze ? ") FROM STDIN WITH (FREEZE)" : ") FROM STDIN");
	if (c->sql.oom)
		return oom(c, err);
	if (run(c, ls_pgsql_buf_str(&c->sql), 0, NULL, PGRES_COPY_IN, "starting COPY", NULL,
		err) < 0)
		return -1;
	c->in_copy = true;
	ls_pgsql_buf_reset(&c->gather);
	return 0;
}

/* Reads the error the server raised for a COPY it stopped early. */
static int copy_error(struct ls_pgcopy *c, const char *what, struct ls_err *err)
{
	PGresult *r = PQgetResult(c->conn);
	if (r && PQresultStatus(r) == PGRES_FATAL_ERROR) {
		fail_res(c, r, what, err);
		PQclear(r);
		return -1;
	}
	PQclear(r);
	return fail_res(c, NULL, what, err);
}

static int put(struct ls_pgcopy *c, const char *data, size_t len, struct ls_err *err)
{
	while (len > 0) {
		int n = len > (1u << 30) ? 1 << 30 : (int)len;
		if (PQputCopyData(c->conn, data, n) != 1)
			return copy_error(c, "sending COPY data", err);
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static int flush_gather(struct ls_pgcopy *c, struct ls_err *err)
{
	if (c->gather.oom)
		return oom(c, err);
	int rc = put(c, c->gather.data, c->gather.len, err);
	ls_pgsql_buf_reset(&c->gather);
	return rc;
}

int ls_pgcopy_data(struct ls_pgcopy *c, const char *data, size_t len, struct ls_err *err)
{
	if (usable(c, err) < 0)
		return -1;
	if (!c->in_copy)
		return ls_err_set(err, false, "target %s: copy data without an open table",
				  c->target);
	if (c->gather.len + len < GATHER) {
		ls_pgsql_putn(&c->gather, data, len);
		return 0;
	}
	if (c->gather.len && flush_gather(c, err) < 0)
		return -1;
	return put(c, data, len, err);
}

/* Ends the COPY and checks that the server stored rows rows. */
static int finish_copy(struct ls_pgcopy *c, uint64_t rows, struct ls_err *err)
{
	if (c->gather.len && flush_gather(c, err) < 0)
		return -1;
	c->in_copy = false;
	if (PQputCopyEnd(c->conn, NULL) != 1)
		return copy_error(c, "ending COPY", err);
	PGresult *r = PQgetResult(c->conn);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fail_res(c, r, "COPY", err);
		PQclear(r);
		return -1;
	}
	unsigned long long got = strtoull(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	while ((r = PQgetResult(c->conn)) != NULL)
		PQclear(r);
	if (got != rows) {
		ls_err_set(err, false, "target %s: copy %s: the source sent %llu rows, the "
			   "target stored %llu", c->target, c->qname, (unsigned long long)rows,
			   got);
		drop(c);
		return -1;
	}
	return 0;
}

int ls_pgcopy_table_end(struct ls_pgcopy *c, const struct ls_relation *rel, uint64_t rows,
			uint64_t copied_at_seq, struct ls_err *err)
{
	if (usable(c, err) < 0)
		return -1;
	if (!c->in_copy)
		return ls_err_set(err, false, "target %s: copy end without an open table",
				  c->target);
	if (finish_copy(c, rows, err) < 0)
		return -1;
	char seq[24], nrows[24];
	snprintf(seq, sizeof seq, "%llu", (unsigned long long)copied_at_seq);
	snprintf(nrows, sizeof nrows, "%llu", (unsigned long long)rows);
	const char *v[6] = { c->pipeline, c->target, rel->schema, rel->name, seq, nrows };
	if (run(c, "INSERT INTO lockstep.snapshot (pipeline, target, table_schema, table_name,"
		" copied_at_seq, rows, done_at) VALUES ($1, $2, $3, $4, $5, $6, now())"
		" ON CONFLICT (pipeline, target, table_schema, table_name) DO UPDATE SET"
		" copied_at_seq = EXCLUDED.copied_at_seq, rows = EXCLUDED.rows,"
		" done_at = EXCLUDED.done_at", 6, v, PGRES_COMMAND_OK, "recording the copy",
		NULL, err) < 0 ||
	    run(c, "COMMIT", 0, NULL, PGRES_COMMAND_OK, "COMMIT", NULL, err) < 0)
		return -1;
	c->in_table = false;
	return 0;
}
