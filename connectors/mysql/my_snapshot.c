/* my_snapshot — per-table consistent snapshots on worker threads.  See
 * my_snapshot.h for why each table has its own snapshot and position. */
#include "connectors/mysql/my_snapshot.h"

#include <errmsg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct tstate {
	atomic_int state;
	atomic_uint_least64_t rows;
	bool has_pos;                  /* guarded by ls_mysnap.mu */
	struct ls_mysnap_pos pos;      /* guarded by ls_mysnap.mu */
};

struct worker {
	struct ls_mysnap *s;
	int id;
	pthread_t thread;
	bool started;
};

struct ls_mysnap {
	const struct ls_mytables *tables;
	struct ls_mysnap_sink sink;
	struct ls_myconn conn;         /* owned copy */
	int *order;                    /* table indexes, biggest first */
	int norder;
	atomic_int next;               /* next index into order */
	atomic_bool cancel;
	atomic_int running;
	struct tstate *ts;
	int nworkers;
	struct worker *w;
	pthread_mutex_t mu;
	bool failed;                   /* guarded by mu */
	struct ls_err first_err;       /* guarded by mu */
	bool joined;
};

static bool net_code(unsigned e)
{
	return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST ||
	       e == CR_CONN_HOST_ERROR || e == CR_CONNECTION_ERROR ||
	       e == CR_SERVER_LOST_EXTENDED || e == 1053 || e == 1927;
}

static int sql_err(MYSQL *m, struct ls_err *err, const char *what)
{
	return ls_err_set(err, net_code(mysql_errno(m)), "%s: %s (error %u)",
		what, mysql_error(m), mysql_errno(m));
}

int ls_mysnap_open_snapshot(MYSQL *m, struct ls_mysnap_pos *pos, struct ls_err *err)
{
	char file[LS_BINLOG_FILE_MAX] = "", off[32] = "", sql[LS_BINLOG_FILE_MAX + 64];
	char text[LS_BINLOG_FILE_MAX + 32], *gtid = NULL;
	MYSQL_RES *r;
	MYSQL_ROW row;

	memset(pos, 0, sizeof *pos);
	if (mysql_query(m, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"))
		return sql_err(m, err, "START TRANSACTION WITH CONSISTENT SNAPSHOT");
	if (mysql_query(m, "SHOW STATUS LIKE 'binlog_snapshot_%'") ||
	    (r = mysql_store_result(m)) == NULL)
		return sql_err(m, err, "SHOW STATUS LIKE 'binlog_snapshot_%'");
	while ((row = mysql_fetch_row(r)) != NULL) {
		if (row[0] && row[1] && strcasecmp(row[0], "Binlog_snapshot_file") == 0)
			snprintf(file, sizeof file, "%s", row[1]);
		else if (row[0] && row[1] &&
			 strcasecmp(row[0], "Binlog_snapshot_position") == 0)
			snprintf(off, sizeof off, "%s", row[1]);
	}
	mysql_free_result(r);
	snprintf(text, sizeof text, "%s:%s", file, off);
	if (!file[0] || strchr(file, '\'') ||
	    ls_binlog_pos_parse(text, &pos->file_pos, err) != 0 ||
	    ls_binlog_pos_seq(&pos->file_pos, &pos->seq, err) != 0)
		return ls_err_prefix(err, "snapshot position \"%s\" (is the binlog "
			"on?)", text);
	snprintf(sql, sizeof sql, "SELECT BINLOG_GTID_POS('%s', %llu)", file,
		(unsigned long long)pos->file_pos.offset);
	if (ls_mysetup_query1(m, sql, &gtid, err) != 0)
		return -1;
	if (gtid == NULL)
		return ls_err_set(err, false, "BINLOG_GTID_POS(%s) is NULL: the "
			"binlog file is gone or the position is not an event "
			"boundary", text);
	struct ls_gtid_set set;
	int rc = ls_gtid_set_parse(gtid, &set, err);
	if (rc == 0 && ls_gtid_set_format(&set, pos->gtid, sizeof pos->gtid) < 0)
		rc = ls_err_set(err, false, "GTID set too long");
	free(gtid);
	return rc;
}

/* Writes `name` (backticks doubled) at p; returns the end. */
static char *put_ident(char *p, const char *name)
{
	*p++ = '`';
	for (const char *c = name; *c; c++) {
		if (*c == '`')
			*p++ = '`';
		*p++ = *c;
	}
	*p++ = '`';
	return p;
}

/* SELECT `c1`, `c2` FROM `db`.`t` */
static char *select_sql(const struct ls_mytable *t)
{
	size_t need = 32 + strlen(t->schema) * 2 + strlen(t->name) * 2;
	for (int i = 0; i < t->ncols; i++)
		need += strlen(t->cols[i].name) * 2 + 4;
	char *b = malloc(need), *p = b;
	if (b == NULL)
		return NULL;
	p += sprintf(p, "SELECT ");
	for (int i = 0; i < t->ncols; i++) {
		if (i > 0)
			p += sprintf(p, ", ");
		p = put_ident(p, t->cols[i].name);
	}
	p += sprintf(p, " FROM ");
	p = put_ident(p, t->schema);
	*p++ = '.';
	p = put_ident(p, t->name);
	*p = '\0';
	return b;
}

static void set_pos(struct ls_mysnap *s, int ti, const struct ls_mysnap_pos *pos)
{
	pthread_mutex_lock(&s->mu);
	s->ts[ti].pos = *pos;
	s->ts[ti].has_pos = true;
	pthread_mutex_unlock(&s->mu);
}

/* Streams the table's rows to the sink. */
static int copy_rows(struct ls_mysnap *s, struct worker *w, MYSQL *m, int ti,
		     struct ls_value *vals, struct ls_err *err)
{
	const struct ls_mytable *t = &s->tables->t[ti];
	char *sql = select_sql(t);
	if (sql == NULL)
		return ls_err_set(err, false, "out of memory");
	int rc = mysql_query(m, sql);
	free(sql);
	if (rc != 0)
		return sql_err(m, err, "SELECT");
	MYSQL_RES *r = mysql_use_result(m);
	if (r == NULL)
		return sql_err(m, err, "SELECT");
	if ((int)mysql_num_fields(r) != t->ncols) {
		mysql_free_result(r);
		return ls_err_set(err, false, "column count changed");
	}
	MYSQL_ROW row;
	rc = 0;
	while (rc == 0 && (row = mysql_fetch_row(r)) != NULL) {
		unsigned long *lens = mysql_fetch_lengths(r);
		for (int i = 0; i < t->ncols; i++) {
			vals[i].data = row[i];
			vals[i].len = row[i] ? (uint32_t)lens[i] : 0;
			vals[i].kind = row[i] == NULL ? LS_VAL_NULL :
				t->cols[i].binary ? LS_VAL_BINARY : LS_VAL_TEXT;
		}
		if (s->sink.on_row(s->sink.ctx, w->id, t, vals) != 0)
			rc = ls_err_set(err, false, "the snapshot sink failed");
		else if (atomic_load(&s->cancel))
			rc = ls_err_set(err, false, "snapshot cancelled");
		else
			atomic_fetch_add(&s->ts[ti].rows, 1);
	}
	if (rc == 0 && mysql_errno(m) != 0)
		rc = sql_err(m, err, "reading rows");
	/* Freeing an unfinished streamed result reads the rest of the table;
	 * on failure cut the connection instead (the worker stops anyway). */
	if (rc != 0)
		shutdown((int)mysql_get_socket(m), SHUT_RDWR);
	mysql_free_result(r);
	return rc;
}

static int copy_table(struct ls_mysnap *s, struct worker *w, MYSQL *m, int ti,
		      struct ls_err *err)
{
	const struct ls_mytable *t = &s->tables->t[ti];
	struct ls_mysnap_pos pos;
	struct ls_value *vals = calloc((size_t)(t->ncols ? t->ncols : 1), sizeof *vals);
	int rc;

	if (vals == NULL)
		return ls_err_set(err, false, "out of memory");
	atomic_store(&s->ts[ti].state, LS_MYSNAP_COPYING);
	rc = ls_mysnap_open_snapshot(m, &pos, err);
	if (rc == 0) {
		set_pos(s, ti, &pos);
		if (s->sink.on_table_start &&
		    s->sink.on_table_start(s->sink.ctx, w->id, t, &pos) != 0)
			rc = ls_err_set(err, false, "the snapshot sink failed");
	}
	if (rc == 0)
		rc = copy_rows(s, w, m, ti, vals, err);
	if (rc == 0 && mysql_query(m, "COMMIT"))
		rc = sql_err(m, err, "COMMIT");
	if (rc == 0 && s->sink.on_table_done &&
	    s->sink.on_table_done(s->sink.ctx, w->id, t,
		    atomic_load(&s->ts[ti].rows), &pos) != 0)
		rc = ls_err_set(err, false, "the snapshot sink failed");
	free(vals);
	atomic_store(&s->ts[ti].state, rc == 0 ? LS_MYSNAP_DONE : LS_MYSNAP_FAILED);
	if (rc != 0)
		ls_err_prefix(err, "copy of %s.%s", t->schema, t->name);
	return rc;
}

static void fail(struct ls_mysnap *s, const struct ls_err *err)
{
	pthread_mutex_lock(&s->mu);
	if (!s->failed) {
		s->failed = true;
		s->first_err = *err;
	}
	pthread_mutex_unlock(&s->mu);
	atomic_store(&s->cancel, true);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct ls_mysnap *s = w->s;
	struct ls_err err = { 0 };
	MYSQL *m = ls_mysetup_connect(&s->conn, 0, &err);

	if (m == NULL) {
		fail(s, &err);
	} else if (mysql_query(m, "SET SESSION TRANSACTION ISOLATION LEVEL "
			"REPEATABLE READ") ||
		   mysql_query(m, "SET SESSION net_write_timeout = 3600")) {
		sql_err(m, &err, "snapshot session setup");
		fail(s, &err);
	} else {
		int k;
		while (!atomic_load(&s->cancel) &&
		       (k = atomic_fetch_add(&s->next, 1)) < s->norder) {
			if (copy_table(s, w, m, s->order[k], &err) != 0) {
				fail(s, &err);
				break;
			}
		}
	}
	if (m)
		mysql_close(m);
	atomic_fetch_sub(&s->running, 1);
	return NULL;
}

static const struct ls_mytables *sort_tables;

static int cmp_size(const void *a, const void *b)
{
	const struct ls_mytable *x = &sort_tables->t[*(const int *)a];
	const struct ls_mytable *y = &sort_tables->t[*(const int *)b];
	if (x->data_length != y->data_length)
		return x->data_length > y->data_length ? -1 : 1;
	if (x->est_rows != y->est_rows)
		return x->est_rows > y->est_rows ? -1 : 1;
	return *(const int *)a - *(const int *)b;
}

static bool skipped(const struct ls_mysnap_opts *o, const struct ls_mytable *t)
{
	for (int i = 0; i < o->nskip; i++) {
		const char *n = o->skip[i], *dot = strchr(n, '.');
		if (dot && (size_t)(dot - n) == strlen(t->schema) &&
		    strncmp(n, t->schema, (size_t)(dot - n)) == 0 &&
		    strcmp(dot + 1, t->name) == 0)
			return true;
	}
	return false;
}

/* Builds the work order (biggest first, skipped tables left out). */
static int plan(struct ls_mysnap *s, const struct ls_mysnap_opts *o)
{
	static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;
	const struct ls_mytables *tb = s->tables;
	s->order = calloc((size_t)(tb->n ? tb->n : 1), sizeof *s->order);
	s->ts = calloc((size_t)(tb->n ? tb->n : 1), sizeof *s->ts);
	if (s->order == NULL || s->ts == NULL)
		return -1;
	for (int i = 0; i < tb->n; i++) {
		if (skipped(o, &tb->t[i]))
			atomic_store(&s->ts[i].state, LS_MYSNAP_SKIPPED);
		else
			s->order[s->norder++] = i;
	}
	pthread_mutex_lock(&sort_mu);   /* qsort has no context argument */
	sort_tables = tb;
	qsort(s->order, (size_t)s->norder, sizeof *s->order, cmp_size);
	pthread_mutex_unlock(&sort_mu);
	return 0;
}

struct ls_mysnap *ls_mysnap_start(const struct ls_mysnap_opts *o,
	const struct ls_mytables *tables, const struct ls_mysnap_sink *sink,
	struct ls_err *err)
{
	if (o->conn == NULL || sink->on_row == NULL || o->workers < 1) {
		ls_err_set(err, false, "snapshot: connection, on_row and workers >= 1 "
			"needed");
		return NULL;
	}
	struct ls_mysnap *s = calloc(1, sizeof *s);
	if (s == NULL) {
		ls_err_set(err, false, "out of memory");
		return NULL;
	}
	s->tables = tables;
	s->sink = *sink;
	pthread_mutex_init(&s->mu, NULL);
	s->conn.host = strdup(o->conn->host);
	s->conn.user = strdup(o->conn->user);
	s->conn.password = strdup(o->conn->password);
	s->conn.database = strdup(o->conn->database);
	s->conn.port = o->conn->port;
	if (!s->conn.host || !s->conn.user || !s->conn.password ||
	    !s->conn.database || plan(s, o) != 0) {
		ls_err_set(err, false, "out of memory");
		s->joined = true;
		ls_mysnap_free(s);
		return NULL;
	}
	s->nworkers = o->workers < s->norder ? o->workers : s->norder;
	s->w = calloc((size_t)(s->nworkers ? s->nworkers : 1), sizeof *s->w);
	if (s->w == NULL) {
		ls_err_set(err, false, "out of memory");
		s->joined = true;
		ls_mysnap_free(s);
		return NULL;
	}
	for (int i = 0; i < s->nworkers; i++) {
		s->w[i].s = s;
		s->w[i].id = i;
		atomic_fetch_add(&s->running, 1);
		if (pthread_create(&s->w[i].thread, NULL, worker_main, &s->w[i]) != 0) {
			atomic_fetch_sub(&s->running, 1);
			struct ls_err e;
			ls_err_set(&e, true, "snapshot: cannot start a worker thread");
			fail(s, &e);
			break;
		}
		s->w[i].started = true;
	}
	return s;
}

void ls_mysnap_progress(struct ls_mysnap *s, int i, struct ls_mysnap_progress *out)
{
	memset(out, 0, sizeof *out);
	if (i < 0 || i >= s->tables->n)
		return;
	out->state = (enum ls_mysnap_state)atomic_load(&s->ts[i].state);
	out->rows = atomic_load(&s->ts[i].rows);
	out->est_rows = s->tables->t[i].est_rows > 0 ?
		(uint64_t)s->tables->t[i].est_rows : 0;
	pthread_mutex_lock(&s->mu);
	out->has_pos = s->ts[i].has_pos;
	out->pos = s->ts[i].pos;
	pthread_mutex_unlock(&s->mu);
}

bool ls_mysnap_finished(struct ls_mysnap *s)
{
	return atomic_load(&s->running) == 0;
}

void ls_mysnap_cancel(struct ls_mysnap *s)
{
	atomic_store(&s->cancel, true);
}

static void join_all(struct ls_mysnap *s)
{
	if (s->joined)
		return;
	for (int i = 0; i < s->nworkers; i++)
		if (s->w[i].started)
			pthread_join(s->w[i].thread, NULL);
	s->joined = true;
}

int ls_mysnap_wait(struct ls_mysnap *s, struct ls_err *err)
{
	join_all(s);
	pthread_mutex_lock(&s->mu);
	bool failed = s->failed;
	if (failed && err)
		*err = s->first_err;
	pthread_mutex_unlock(&s->mu);
	return failed ? -1 : 0;
}

void ls_mysnap_free(struct ls_mysnap *s)
{
	if (s == NULL)
		return;
	atomic_store(&s->cancel, true);
	join_all(s);
	pthread_mutex_destroy(&s->mu);
	ls_mysetup_conn_free(&s->conn);
	free(s->order);
	free(s->ts);
	free(s->w);
	free(s);
}
