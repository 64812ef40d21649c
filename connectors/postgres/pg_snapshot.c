#include "connectors/postgres/pg_snapshot.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "connectors/postgres/pg_session.h"

#define CHUNK_BYTES (256 * 1024)

struct table_state {
	_Atomic int state;             /* enum ls_pgsnap_state */
	_Atomic uint64_t rows;
};

struct ls_pgsnap {
	char *conninfo;                /* owned copies of the options */
	char *snapshot;
	const struct ls_pg_tables *tables;
	struct ls_pgsnap_sink sink;
	struct table_state *ts;        /* one per table */

	pthread_mutex_t mu;            /* guards next, err, failed */
	int *order;                    /* table indexes, biggest first */
	int norder, next;
	struct ls_err err;             /* the first failure */
	bool failed;

	pthread_t *threads;
	int nthreads, started;
	bool joined;
	atomic_bool cancel;
	_Atomic int running;
};

struct worker {
	struct ls_pgsnap *s;
	int id;
	PGconn *conn;
	char *chunk;                   /* CHUNK_BYTES */
	size_t used;
};

/* Records the first failure and tells the other workers to stop. */
static void fail(struct ls_pgsnap *s, const struct ls_err *e)
{
	pthread_mutex_lock(&s->mu);
	if (!s->failed) {
		s->failed = true;
		s->err = *e;
	}
	pthread_mutex_unlock(&s->mu);
	atomic_store(&s->cancel, true);
}

static int next_table(struct ls_pgsnap *s)
{
	int i = -1;
	pthread_mutex_lock(&s->mu);
	if (s->next < s->norder && !atomic_load(&s->cancel))
		i = s->order[s->next++];
	pthread_mutex_unlock(&s->mu);
	return i;
}

static int pq_fail(PGconn *c, PGresult *r, const char *what,
	const struct ls_pg_table *t, struct ls_err *err)
{
	char m[300];
	snprintf(m, sizeof m, "%s", r != NULL && PQresultErrorMessage(r)[0] ?
		PQresultErrorMessage(r) : PQerrorMessage(c));
	m[strcspn(m, "\n")] = '\0';
	if (t == NULL)
		return ls_err_set(err, PQstatus(c) == CONNECTION_BAD,
			"snapshot worker: %s: %s", what, m);
	return ls_err_set(err, PQstatus(c) == CONNECTION_BAD,
		"snapshot copy of %s.%s: %s: %s", t->schema, t->name, what, m);
}

static int exec_ok(PGconn *c, const char *sql, ExecStatusType want,
	const char *what, const struct ls_pg_table *t, struct ls_err *err)
{
	PGresult *r = PQexec(c, sql);
	int rc = PQresultStatus(r) == want ? 0 : pq_fail(c, r, what, t, err);
	PQclear(r);
	return rc;
}

/* "COPY (SELECT "a", "b" FROM "s"."t") TO STDOUT"; malloc'd, NULL on OOM. */
static char *copy_sql(PGconn *c, const struct ls_pg_table *t)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL)
		return NULL;
	bool ok = true;
	fputs("COPY (SELECT ", f);
	for (int i = 0; ok && i < t->ncols; i++) {
		char *q = PQescapeIdentifier(c, t->cols[i].name,
			strlen(t->cols[i].name));
		ok = q != NULL;
		if (ok)
			fprintf(f, "%s%s", i ? ", " : "", q);
		PQfreemem(q);
	}
	char *qs = PQescapeIdentifier(c, t->schema, strlen(t->schema));
	char *qt = PQescapeIdentifier(c, t->name, strlen(t->name));
	ok = ok && qs != NULL && qt != NULL;
	if (ok)
		fprintf(f, " FROM %s.%s) TO STDOUT", qs, qt);
	PQfreemem(qs);
	PQfreemem(qt);
	if (fclose(f) != 0 || !ok) {
		free(buf);
		return NULL;
	}
	return buf;
}

static int flush_chunk(struct worker *w, const struct ls_pg_table *t,
	struct ls_err *err)
{
	if (w->used == 0)
		return 0;
	int rc = w->s->sink.on_copy_data(w->s->sink.ctx, w->id, t, w->chunk,
		w->used);
	w->used = 0;
	if (rc < 0)
		return ls_err_set(err, false, "snapshot copy of %s.%s: the target "
			"side refused the data", t->schema, t->name);
	return 0;
}

/* Adds one row to the chunk; a row bigger than the chunk goes alone. */
static int add_row(struct worker *w, const struct ls_pg_table *t,
	const char *row, size_t len, struct ls_err *err)
{
	if (w->used + len > CHUNK_BYTES && flush_chunk(w, t, err) < 0)
		return -1;
	if (len > CHUNK_BYTES) {
		if (w->s->sink.on_copy_data(w->s->sink.ctx, w->id, t, row, len) < 0)
			return ls_err_set(err, false, "snapshot copy of %s.%s: the "
				"target side refused the data", t->schema, t->name);
		return 0;
	}
	memcpy(w->chunk + w->used, row, len);
	w->used += len;
	return 0;
}

/* Streams the COPY out of the server into the sink, counting rows. */
static int copy_rows(struct worker *w, int ti, uint64_t *rows,
	struct ls_err *err)
{
	const struct ls_pg_table *t = &w->s->tables->t[ti];
	char *buf;
	int n;
	*rows = 0;
	while ((n = PQgetCopyData(w->conn, &buf, 0)) > 0) {
		int rc = atomic_load(&w->s->cancel) ?
			ls_err_set(err, false, "snapshot copy of %s.%s: cancelled",
				t->schema, t->name) :
			add_row(w, t, buf, (size_t)n, err);
		PQfreemem(buf);
		if (rc < 0)
			return -1;
		(*rows)++;
		atomic_store(&w->s->ts[ti].rows, *rows);
	}
	if (n == -2)
		return pq_fail(w->conn, NULL, "reading COPY data", t, err);
	PGresult *r = PQgetResult(w->conn);
	int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 :
		pq_fail(w->conn, r, "COPY", t, err);
	PQclear(r);
	while ((r = PQgetResult(w->conn)) != NULL)
		PQclear(r);
	return rc < 0 ? rc : flush_chunk(w, t, err);
}

static int start_table(struct worker *w, const struct ls_pg_table *t,
	struct ls_err *err)
{
	struct ls_pgsnap *s = w->s;
	if (s->sink.on_table_start != NULL &&
	    s->sink.on_table_start(s->sink.ctx, w->id, t) < 0)
		return ls_err_set(err, false, "snapshot copy of %s.%s: the target "
			"side could not start", t->schema, t->name);
	return 0;
}

/* One table in its own transaction on the exported snapshot. */
static int copy_table(struct worker *w, int ti, struct ls_err *err)
{
	struct ls_pgsnap *s = w->s;
	const struct ls_pg_table *t = &s->tables->t[ti];
	char *lit = PQescapeLiteral(w->conn, s->snapshot, strlen(s->snapshot));
	char *sql = copy_sql(w->conn, t);
	char set[256];
	snprintf(set, sizeof set, "SET TRANSACTION SNAPSHOT %s", lit ? lit : "''");
	PQfreemem(lit);
	uint64_t rows = 0;
	int rc = sql != NULL ? 0 :
		ls_err_set(err, false, "snapshot copy: out of memory");
	if (rc == 0)
		rc = exec_ok(w->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, "
			"READ ONLY", PGRES_COMMAND_OK, "BEGIN", t, err);
	if (rc == 0)
		rc = exec_ok(w->conn, set, PGRES_COMMAND_OK, "importing the "
			"snapshot", t, err);
	if (rc == 0)
		rc = start_table(w, t, err);
	if (rc == 0)
		rc = exec_ok(w->conn, sql, PGRES_COPY_OUT, "starting COPY", t, err);
	if (rc == 0)
		rc = copy_rows(w, ti, &rows, err);
	if (rc == 0)
		rc = exec_ok(w->conn, "COMMIT", PGRES_COMMAND_OK, "COMMIT", t, err);
	free(sql);
	if (rc == 0 && s->sink.on_table_done(s->sink.ctx, w->id, t, rows) < 0)
		rc = ls_err_set(err, false, "snapshot copy of %s.%s: the target "
			"side could not finish", t->schema, t->name);
	return rc;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct ls_pgsnap *s = w->s;
	struct ls_err err = { 0 };
	w->conn = PQconnectdb(s->conninfo);
	if (PQstatus(w->conn) != CONNECTION_OK) {
		char m[300];
		snprintf(m, sizeof m, "%s", PQerrorMessage(w->conn));
		m[strcspn(m, "\n")] = '\0';
		ls_err_set(&err, true, "snapshot worker %d: connecting to %s:%s: %s",
			w->id, PQhost(w->conn), PQport(w->conn), m);
		fail(s, &err);
	} else if (exec_ok(w->conn, ls_pgsession_sql, PGRES_COMMAND_OK,
			   "session setup", NULL, &err) < 0) {
		/* COPY TO writes what the target's COPY FROM reads only under
		 * these settings, whatever the source database's defaults */
		fail(s, &err);
	}
	int ti;
	while ((ti = next_table(s)) >= 0) {
		atomic_store(&s->ts[ti].state, LS_PGSNAP_COPYING);
		if (copy_table(w, ti, &err) < 0) {
			atomic_store(&s->ts[ti].state, LS_PGSNAP_FAILED);
			fail(s, &err);
			break;
		}
		atomic_store(&s->ts[ti].state, LS_PGSNAP_DONE);
	}
	PQfinish(w->conn);
	free(w->chunk);
	free(w);
	atomic_fetch_sub(&s->running, 1);
	return NULL;
}

static bool skipped(const struct ls_pgsnap_opts *o, const struct ls_pg_table *t)
{
	char full[512];
	snprintf(full, sizeof full, "%s.%s", t->schema, t->name);
	for (int i = 0; i < o->nskip; i++)
		if (!strcmp(o->skip[i], full))
			return true;
	return false;
}

/* Biggest first: by size, then by estimated rows, then catalog order. */
static int cmp_size(const void *a, const void *b, void *arg)
{
	const struct ls_pg_tables *ts = arg;
	const struct ls_pg_table *x = &ts->t[*(const int *)a];
	const struct ls_pg_table *y = &ts->t[*(const int *)b];
	if (x->size_bytes != y->size_bytes)
		return x->size_bytes > y->size_bytes ? -1 : 1;
	if (x->est_rows != y->est_rows)
		return x->est_rows > y->est_rows ? -1 : 1;
	return *(const int *)a - *(const int *)b;
}

static int plan(struct ls_pgsnap *s, const struct ls_pgsnap_opts *o)
{
	const struct ls_pg_tables *ts = s->tables;
	s->order = calloc((size_t)ts->n + 1, sizeof *s->order);
	s->ts = calloc((size_t)ts->n + 1, sizeof *s->ts);
	if (s->order == NULL || s->ts == NULL)
		return -1;
	for (int i = 0; i < ts->n; i++) {
		if (skipped(o, &ts->t[i]))
			atomic_store(&s->ts[i].state, LS_PGSNAP_SKIPPED);
		else
			s->order[s->norder++] = i;
	}
	qsort_r(s->order, (size_t)s->norder, sizeof *s->order, cmp_size,
		(void *)ts);
	return 0;
}

static int spawn(struct ls_pgsnap *s, struct ls_err *err)
{
	for (int i = 0; i < s->nthreads; i++) {
		struct worker *w = calloc(1, sizeof *w);
		char *chunk = malloc(CHUNK_BYTES);
		if (w == NULL || chunk == NULL) {
			free(w);
			free(chunk);
			atomic_store(&s->cancel, true);
			return ls_err_set(err, false, "snapshot copy: out of memory");
		}
		w->s = s;
		w->id = i;
		w->chunk = chunk;
		atomic_fetch_add(&s->running, 1);
		if (pthread_create(&s->threads[i], NULL, worker_main, w) != 0) {
			atomic_fetch_sub(&s->running, 1);
			free(chunk);
			free(w);
			atomic_store(&s->cancel, true);
			return ls_err_set(err, false, "snapshot copy: cannot start "
				"worker thread");
		}
		s->started++;
	}
	return 0;
}

struct ls_pgsnap *ls_pgsnap_start(const struct ls_pgsnap_opts *opts,
	const struct ls_pg_tables *tables, const struct ls_pgsnap_sink *sink,
	struct ls_err *err)
{
	if (opts->workers < 1 || opts->conninfo == NULL ||
	    opts->snapshot_name == NULL || opts->snapshot_name[0] == '\0' ||
	    sink->on_copy_data == NULL || sink->on_table_done == NULL) {
		ls_err_set(err, false, "snapshot copy: needs conninfo, a snapshot "
			"name, at least one worker and a sink");
		return NULL;
	}
	struct ls_pgsnap *s = calloc(1, sizeof *s);
	if (s == NULL) {
		ls_err_set(err, false, "snapshot copy: out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	s->tables = tables;
	s->sink = *sink;
	s->conninfo = strdup(opts->conninfo);
	s->snapshot = strdup(opts->snapshot_name);
	if (s->conninfo == NULL || s->snapshot == NULL || plan(s, opts) < 0) {
		ls_err_set(err, false, "snapshot copy: out of memory");
		ls_pgsnap_free(s);
		return NULL;
	}
	s->nthreads = opts->workers < s->norder ? opts->workers : s->norder;
	s->threads = calloc((size_t)s->nthreads + 1, sizeof *s->threads);
	if (s->threads == NULL || spawn(s, err) < 0) {
		if (s->threads == NULL)
			ls_err_set(err, false, "snapshot copy: out of memory");
		ls_pgsnap_free(s);
		return NULL;
	}
	return s;
}

void ls_pgsnap_progress(struct ls_pgsnap *s, int i,
	struct ls_pgsnap_progress *out)
{
	out->state = (enum ls_pgsnap_state)atomic_load(&s->ts[i].state);
	out->rows = atomic_load(&s->ts[i].rows);
	out->est_rows = (uint64_t)s->tables->t[i].est_rows;
}

bool ls_pgsnap_finished(struct ls_pgsnap *s)
{
	return atomic_load(&s->running) == 0;
}

void ls_pgsnap_cancel(struct ls_pgsnap *s)
{
	atomic_store(&s->cancel, true);
}

static void join_all(struct ls_pgsnap *s)
{
	if (s->joined)
		return;
	for (int i = 0; i < s->started; i++)
		pthread_join(s->threads[i], NULL);
	s->joined = true;
}

int ls_pgsnap_wait(struct ls_pgsnap *s, struct ls_err *err)
{
	join_all(s);
	if (s->failed) {
		if (err != NULL)
			*err = s->err;
		return -1;
	}
	for (int i = 0; i < s->tables->n; i++) {
		int st = atomic_load(&s->ts[i].state);
		if (st != LS_PGSNAP_DONE && st != LS_PGSNAP_SKIPPED)
			return ls_err_set(err, false, "snapshot copy: %s.%s was not "
				"copied (cancelled)", s->tables->t[i].schema,
				s->tables->t[i].name);
	}
	return 0;
}

void ls_pgsnap_free(struct ls_pgsnap *s)
{
	if (s == NULL)
		return;
	atomic_store(&s->cancel, true);
	join_all(s);
	pthread_mutex_destroy(&s->mu);
	free(s->threads);
	free(s->order);
	free(s->ts);
	free(s->conninfo);
	free(s->snapshot);
	free(s);
}
