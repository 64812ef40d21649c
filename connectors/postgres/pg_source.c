#include "connectors/postgres/pg_source.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "log.h"
#include "connectors/postgres/pg_session.h"
#include "connectors/postgres/pg_setup.h"
#include "connectors/postgres/pg_snapshot.h"
#include "connectors/postgres/pg_stream.h"
#include "connectors/postgres/pg_heartbeat.h"
#include "connectors/postgres/pgoutput.h"

/* The source's life: OPEN -> (prepare) PREPARED -> (snapshot) SNAPSHOT ->
 * SNAPSHOT_DONE -> (stream) CONNECTING -> STREAMING <-> RECONNECTING; a
 * fatal stream error ends in FAILED.  close() may come at any point. */
enum state {
	ST_OPEN = 0,
	ST_PREPARED,
	ST_SNAPSHOT,
	ST_SNAPSHOT_DONE,
	ST_CONNECTING,
	ST_STREAMING,
	ST_RECONNECTING,
	ST_FAILED,
};

/* A stream relation, by relation id (open addressing, id 0 = empty: no
 * PostgreSQL relation has OID 0). */
struct relent {
	uint32_t id;
	struct ls_relation *rel;       /* owned */
};

struct ls_source {
	uv_loop_t *loop;
	/* configuration, owned copies */
	char *conninfo, *include, *exclude, *slot, *publication;
	char *skip_origins;            /* comma-separated origin names */
	bool snapshot_never;
	bool stream_txns;              /* wanted by the config */
	uint64_t stream_mem;
	int workers;
	int feedback_ms, base_ms, cap_ms;
	enum state state;

	/* prepare */
	bool prepared;
	struct ls_pg_tables tables;
	struct ls_relation **rels;     /* owned, one per table */
	double *est_rows;
	struct ls_pgslot *slotc;       /* holds the exported snapshot */
	struct ls_pgslot_info slot_info;

	/* snapshot */
	bool snap_started;
	struct ls_source_snapshot_sink sink;
	uint64_t copied_at;            /* copied_at_seq of every copied table */
	char **skip;                   /* "schema.table" already copied */
	int nskip;
	PGconn *tmp_conn;              /* temporary slot's replication conn */
	char tmp_snapshot[64];
	uv_work_t tmp_work;
	bool work_busy;
	int work_rc;
	struct ls_err work_err;
	pthread_mutex_t mu;            /* guards snap and prog for progress() */
	struct ls_pgsnap *snap;
	struct ls_pgsnap_progress *prog;   /* per table while snap is NULL */
	uv_timer_t timer;              /* snapshot completion, close */

	/* stream */
	struct ls_source_cb cb;
	struct ls_pgstream *stream;
	struct ls_pgo *dec;
	struct ls_arena arena;
	bool in_txn;
	bool begun;                    /* on_begin fired for the open txn */
	bool skip_txn;                 /* the open txn came from a skipped origin */
	uint64_t skipped_txns;         /* transactions of skipped origins */
	struct ls_txn txn;
	/* streamed transactions (protocol 2), see source.h */
	bool streaming;                /* asked of the server this run */
	bool in_stream;                /* inside Stream Start .. Stop */
	bool stream_begun;             /* on_stream_begin fired for the block */
	bool stream_first;
	uint32_t stream_xid;
	uint32_t *skip_xids;           /* streamed txns of skipped origins */
	size_t nskip_xids, capskip_xids;
	struct relent *map;
	size_t map_cap, map_n;
	PGconn *cat;                   /* ordinary conn for type lookups */
	bool paused;

	/* close */
	bool closing, stream_closed, timer_closed;
	struct ls_pghb *hb;            /* lag heartbeat (lag ops); NULL when closed */
	void (*close_cb)(void *arg);
	void *close_arg;
};

/* ---- small helpers ------------------------------------------------------------ */

static char *dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static void lsn_pos(uint64_t lsn, struct ls_pos *pos)
{
	char t[LS_PG_LSN_TEXT_MAX];
	pos->seq = lsn;
	snprintf(pos->text, sizeof pos->text, "%s", ls_pgsetup_lsn_format(lsn, t));
}

/* libpq's message, one line. */
static const char *pq_msg(PGconn *c, const PGresult *r, char *buf, size_t n)
{
	const char *m = r != NULL && PQresultErrorMessage(r)[0] != '\0' ?
		PQresultErrorMessage(r) : c != NULL ? PQerrorMessage(c) :
		"out of memory";
	snprintf(buf, n, "%s", m);
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

/* An ordinary (replication = false) or replication connection.  conninfo
 * goes in through expand_dbname so a URI works too; the message names host
 * and port, never the conninfo. */
static PGconn *connect_pg(const char *conninfo, bool replication,
	struct ls_err *err)
{
	const char *keys[] = { "dbname", "application_name",
		replication ? "replication" : NULL, NULL };
	const char *vals[] = { conninfo, "lockstep", "database", NULL };
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (c != NULL && PQstatus(c) == CONNECTION_OK)
		return c;
	char m[300];
	ls_err_set(err, true, "%sconnection to %s:%s failed: %s",
		replication ? "replication " : "", c ? PQhost(c) : "?",
		c ? PQport(c) : "?", pq_msg(c, NULL, m, sizeof m));
	PQfinish(c);
	return NULL;
}

/* ---- open --------------------------------------------------------------------- */

static void free_source(struct ls_source *s);

static int pg_open(uv_loop_t *loop, const struct ls_config *cfg,
	struct ls_source **out, struct ls_err *err)
{
	const struct ls_config_source *c = &cfg->source;
	*out = NULL;
	if (!c->present || c->type != LS_ENGINE_POSTGRES || c->conninfo == NULL)
		return ls_err_set(err, false, "postgres source: the config needs a "
			"[source] with type = postgres and a conninfo");
	struct ls_source *s = calloc(1, sizeof *s);
	if (s == NULL)
		return ls_err_set(err, false, "postgres source: out of memory");
	char defname[80];
	snprintf(defname, sizeof defname, "lockstep_%s",
		cfg->name ? cfg->name : "default");
	s->loop = loop;
	s->conninfo = strdup(c->conninfo);
	s->include = strdup(c->tables ? c->tables : "public.*");
	s->exclude = dup_or_null(c->exclude);
	s->slot = strdup(c->slot ? c->slot : defname);
	s->publication = strdup(c->publication ? c->publication : defname);
	/* by default the reverse apply of a cutover (lib/cutover.h), so
	 * rows it writes here are not sent back */
	char defskip[96];
	snprintf(defskip, sizeof defskip, "%s_rev", defname);
	s->skip_origins = strdup(c->skip_origins ? c->skip_origins : defskip);
	s->snapshot_never = c->snapshot == LS_SNAPSHOT_NEVER;
	s->stream_txns = c->stream_txns;
	s->stream_mem = c->stream_mem;
	s->workers = c->snapshot_workers > 0 ? c->snapshot_workers : 2;
	if (s->conninfo == NULL || s->include == NULL || s->slot == NULL ||
	    s->publication == NULL || s->skip_origins == NULL ||
	    (c->exclude && s->exclude == NULL)) {
		free(s->skip_origins);
		free(s->conninfo);
		free(s->include);
		free(s->exclude);
		free(s->slot);
		free(s->publication);
		free(s);
		return ls_err_set(err, false, "postgres source: out of memory");
	}
	pthread_mutex_init(&s->mu, NULL);
	ls_arena_init(&s->arena);
	uv_timer_init(loop, &s->timer);
	s->timer.data = s;
	s->tmp_work.data = s;
	*out = s;
	return 0;
}

void ls_pg_source_set_intervals(struct ls_source *s, int feedback_ms,
	int reconnect_base_ms, int reconnect_cap_ms)
{
	s->feedback_ms = feedback_ms;
	s->base_ms = reconnect_base_ms;
	s->cap_ms = reconnect_cap_ms;
}

/* ---- prepare ------------------------------------------------------------------- */

static void unprepare(struct ls_source *s)
{
	for (int i = 0; s->rels != NULL && i < s->tables.n; i++)
		ls_relation_free(s->rels[i]);
	free(s->rels);
	s->rels = NULL;
	free(s->est_rows);
	s->est_rows = NULL;
	free(s->prog);
	s->prog = NULL;
	ls_pgsetup_tables_free(&s->tables);
	memset(&s->tables, 0, sizeof s->tables);
	ls_pgslot_free(s->slotc);
	s->slotc = NULL;
	ls_pgo_free(s->dec);
	s->dec = NULL;
}

/* Catalog work on an ordinary connection: tables, readiness, publication. */
static int prepare_catalog(struct ls_source *s, struct ls_err *err)
{
	PGconn *c = connect_pg(s->conninfo, false, err);
	if (c == NULL)
		return ls_err_prefix(err, "postgres source");
	enum ls_pgsetup_pub_action act = LS_PGSETUP_PUB_UNCHANGED;
	int rc = ls_pgsetup_select_tables(c, s->include, s->exclude, &s->tables,
		err);
	if (rc == 0)
		rc = ls_pgsetup_check_ready(c, &s->tables, s->slot, err);
	if (rc == 0)
		rc = ls_pgsetup_publication_ensure(c, s->publication, &s->tables,
			&act, err);
	PQfinish(c);
	if (rc == 0 && act != LS_PGSETUP_PUB_UNCHANGED)
		ls_info("publication %s %s for %d table(s)", s->publication,
			act == LS_PGSETUP_PUB_CREATED ? "created" : "altered",
			s->tables.n);
	return rc;
}

static int build_relations(struct ls_source *s, struct ls_err *err)
{
	int n = s->tables.n;
	s->rels = calloc((size_t)n + 1, sizeof *s->rels);
	s->est_rows = calloc((size_t)n + 1, sizeof *s->est_rows);
	s->prog = calloc((size_t)n + 1, sizeof *s->prog);
	if (s->rels == NULL || s->est_rows == NULL || s->prog == NULL)
		return ls_err_set(err, false, "postgres source: out of memory");
	for (int i = 0; i < n; i++) {
		s->rels[i] = ls_pgsetup_table_relation(&s->tables.t[i]);
		if (s->rels[i] == NULL)
			return ls_err_set(err, false, "postgres source: out of "
				"memory");
		s->est_rows[i] = s->tables.t[i].est_rows;
		s->prog[i].state = LS_PGSNAP_PENDING;
		s->prog[i].est_rows = (uint64_t)s->tables.t[i].est_rows;
	}
	return 0;
}

static int load_fills(struct ls_source *s, struct ls_err *err);

static int pg_prepare(struct ls_source *s, struct ls_source_tables *tables,
	struct ls_err *err)
{
	if (s->prepared || s->closing)
		return ls_err_set(err, false, "postgres source: already prepared");
	int rc = prepare_catalog(s, err);
	if (rc == 0) {
		s->slotc = ls_pgslot_open(s->conninfo, s->slot, &s->slot_info, err);
		rc = s->slotc != NULL ? 0 : -1;
	}
	if (rc == 0)
		rc = build_relations(s, err);
	if (rc == 0)
		rc = load_fills(s, err);
	if (rc == 0 && (s->dec = ls_pgo_new(1)) == NULL)
		rc = ls_err_set(err, false, "postgres source: out of memory");
	if (rc < 0) {
		unprepare(s);
		return -1;
	}
	char t[LS_PG_LSN_TEXT_MAX];
	if (s->slot_info.created)
		ls_info("slot %s created, consistent at %s", s->slot,
			ls_pgsetup_lsn_format(s->slot_info.consistent_lsn, t));
	else
		ls_info("slot %s reused, confirmed up to %s", s->slot,
			ls_pgsetup_lsn_format(s->slot_info.confirmed_flush, t));
	s->prepared = true;
	s->state = ST_PREPARED;
	tables->n = s->tables.n;
	tables->rels = (const struct ls_relation *const *)s->rels;
	tables->est_rows = s->est_rows;
	return 0;
}

/* ---- snapshot ------------------------------------------------------------------ */

static const struct ls_relation *rel_of(struct ls_source *s,
	const struct ls_pg_table *t)
{
	return s->rels[t - s->tables.t];
}

static int snk_start(void *ctx, int worker, const struct ls_pg_table *t)
{
	struct ls_source *s = ctx;
	if (s->sink.on_table_start == NULL)
		return 0;
	return s->sink.on_table_start(s->sink.ctx, worker, rel_of(s, t),
		s->copied_at);
}

static int snk_data(void *ctx, int worker, const struct ls_pg_table *t,
	const char *data, size_t len)
{
	struct ls_source *s = ctx;
	return s->sink.on_copy_data(s->sink.ctx, worker, rel_of(s, t), data,
		len);
}

static int snk_done(void *ctx, int worker, const struct ls_pg_table *t,
	uint64_t rows)
{
	struct ls_source *s = ctx;
	return s->sink.on_table_done(s->sink.ctx, worker, rel_of(s, t), rows,
		s->copied_at);
}

/* The copy is over (or never started): collects the result, releases the
 * snapshot's connections (the exported snapshots end here) and tells the
 * sink, unless the source is closing. */
static void snapshot_end(struct ls_source *s, const struct ls_err *start_err)
{
	struct ls_err err = { 0 };
	int rc = 0;
	if (start_err != NULL) {
		err = *start_err;
		rc = -1;
	}
	uv_timer_stop(&s->timer);
	if (s->snap != NULL) {
		rc = ls_pgsnap_wait(s->snap, &err);
		pthread_mutex_lock(&s->mu);
		for (int i = 0; i < s->tables.n; i++)
			ls_pgsnap_progress(s->snap, i, &s->prog[i]);
		ls_pgsnap_free(s->snap);
		s->snap = NULL;
		pthread_mutex_unlock(&s->mu);
	}
	ls_pgslot_free(s->slotc);
	s->slotc = NULL;
	PQfinish(s->tmp_conn);      /* drops the temporary slot */
	s->tmp_conn = NULL;
	if (s->closing)
		return;
	s->state = ST_SNAPSHOT_DONE;
	if (rc < 0)
		ls_err_prefix(&err, "postgres source: snapshot");
	if (s->sink.on_finished != NULL)
		s->sink.on_finished(s->sink.ctx, rc < 0 ? &err : NULL);
}

static void on_snap_timer(uv_timer_t *t)
{
	struct ls_source *s = t->data;
	if (s->work_busy || (s->snap != NULL && !ls_pgsnap_finished(s->snap)))
		return;
	snapshot_end(s, NULL);
}

/* Starts the copy workers inside snapshot `name`. */
static int start_copy(struct ls_source *s, const char *name,
	struct ls_err *err)
{
	struct ls_pgsnap_opts o = {
		.conninfo = s->conninfo, .snapshot_name = name,
		.workers = s->workers, .skip = (const char *const *)s->skip,
		.nskip = s->nskip,
	};
	struct ls_pgsnap_sink sink = { .on_table_start = snk_start,
		.on_copy_data = snk_data, .on_table_done = snk_done, .ctx = s };
	char t[LS_PG_LSN_TEXT_MAX];
	ls_info("snapshot: copying %d table(s) at %s with %d worker(s)",
		s->tables.n - s->nskip, ls_pgsetup_lsn_format(s->copied_at, t),
		s->workers);
	pthread_mutex_lock(&s->mu);
	s->snap = ls_pgsnap_start(&o, &s->tables, &sink, err);
	pthread_mutex_unlock(&s->mu);
	if (s->snap == NULL)
		return -1;
	uv_timer_start(&s->timer, on_snap_timer, LS_PG_SOURCE_SNAP_POLL_MS,
		LS_PG_SOURCE_SNAP_POLL_MS);
	return 0;
}

/* Thread pool: creates a TEMPORARY slot exporting a snapshot, for tables
 * that still need a copy while the main slot is reused.  Blocks while
 * older transactions run (slot creation waits for them). */
static void tmp_slot_work(uv_work_t *w)
{
	static _Atomic unsigned counter;
	struct ls_source *s = w->data;
	struct ls_err *err = &s->work_err;
	s->work_rc = -1;
	PGconn *c = connect_pg(s->conninfo, true, err);
	if (c == NULL)
		return;
	char name[64], sql[160], m[300];
	snprintf(name, sizeof name, "lockstep_tmp_%ld_%u", (long)getpid(),
		atomic_fetch_add(&counter, 1));
	snprintf(sql, sizeof sql, "CREATE_REPLICATION_SLOT \"%s\" TEMPORARY "
		"LOGICAL pgoutput EXPORT_SNAPSHOT", name);
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ls_err_set(err, PQstatus(c) == CONNECTION_BAD, "creating temporary "
			"slot %s: %s", name, pq_msg(c, r, m, sizeof m));
	} else if (PQntuples(r) != 1 || PQnfields(r) < 3 ||
	           ls_pgsetup_lsn_parse(PQgetvalue(r, 0, 1), &s->copied_at) < 0) {
		ls_err_set(err, false, "creating temporary slot %s: unexpected "
			"reply", name);
	} else {
		snprintf(s->tmp_snapshot, sizeof s->tmp_snapshot, "%s",
			PQgetvalue(r, 0, 2));
		s->work_rc = 0;
	}
	PQclear(r);
	if (s->work_rc < 0)
		PQfinish(c);
	else
		s->tmp_conn = c;
}

static void tmp_slot_done(uv_work_t *w, int status)
{
	struct ls_source *s = w->data;
	s->work_busy = false;
	if (s->closing)
		return;          /* the close timer releases tmp_conn */
	if (status != 0 && s->work_rc == 0)
		ls_err_set(&s->work_err, false, "temporary slot: %s",
			uv_strerror(status));
	struct ls_err err = { 0 };
	if (status != 0 || s->work_rc < 0)
		snapshot_end(s, &s->work_err);
	else if (start_copy(s, s->tmp_snapshot, &err) < 0)
		snapshot_end(s, &err);
}

/* Asks the sink which tables it holds already; fills skip and prog. */
static int plan(struct ls_source *s, struct ls_err *err)
{
	s->skip = calloc((size_t)s->tables.n + 1, sizeof *s->skip);
	if (s->skip == NULL)
		return ls_err_set(err, false, "postgres source: out of memory");
	for (int i = 0; i < s->tables.n; i++) {
		const struct ls_pg_table *t = &s->tables.t[i];
		bool copied = s->snapshot_never || (s->sink.plan_copied != NULL &&
			s->sink.plan_copied(s->sink.ctx, s->rels[i]));
		if (!copied)
			continue;
		size_t len = strlen(t->schema) + strlen(t->name) + 2;
		char *name = malloc(len);
		if (name == NULL)
			return ls_err_set(err, false, "postgres source: out of "
				"memory");
		snprintf(name, len, "%s.%s", t->schema, t->name);
		s->skip[s->nskip++] = name;
		s->prog[i].state = LS_PGSNAP_SKIPPED;
	}
	return 0;
}

static int pg_snapshot(struct ls_source *s,
	const struct ls_source_snapshot_sink *sink, struct ls_err *err)
{
	if (!s->prepared || s->snap_started || s->closing)
		return ls_err_set(err, false, "postgres source: snapshot needs a "
			"prepared source and runs once");
	if (sink->on_copy_data == NULL || sink->on_table_done == NULL)
		return ls_err_set(err, false, "postgres source: snapshot sink "
			"needs on_copy_data and on_table_done");
	s->sink = *sink;
	if (plan(s, err) < 0)
		return -1;
	s->snap_started = true;
	s->state = ST_SNAPSHOT;
	if (s->nskip == s->tables.n) {
		/* nothing to copy: finish from the loop, as promised */
		uv_timer_start(&s->timer, on_snap_timer, 0, 0);
		return 0;
	}
	if (s->slot_info.created) {
		s->copied_at = s->slot_info.consistent_lsn;
		if (start_copy(s, s->slot_info.snapshot_name, err) < 0) {
			s->snap_started = false;
			return -1;
		}
		return 0;
	}
	ls_info("slot %s reused and %d table(s) not copied yet: copying them "
		"in a temporary slot's snapshot", s->slot, s->tables.n - s->nskip);
	s->work_busy = true;
	int rc = uv_queue_work(s->loop, &s->tmp_work, tmp_slot_work,
		tmp_slot_done);
	if (rc != 0) {
		s->work_busy = false;
		s->snap_started = false;
		return ls_err_set(err, false, "postgres source: cannot queue "
			"temporary slot creation: %s", uv_strerror(rc));
	}
	return 0;
}

static const char *const snap_state_names[] = {
	[LS_PGSNAP_PENDING] = "pending", [LS_PGSNAP_COPYING] = "copying",
	[LS_PGSNAP_DONE] = "done", [LS_PGSNAP_SKIPPED] = "skipped",
	[LS_PGSNAP_FAILED] = "failed",
};

static int pg_snapshot_progress(struct ls_source *s, int i,
	struct ls_source_progress *out)
{
	int n = s->prepared ? s->tables.n : 0;
	if (i < 0 || i >= n || out == NULL)
		return n;
	struct ls_pgsnap_progress p;
	pthread_mutex_lock(&s->mu);
	if (s->snap != NULL)
		ls_pgsnap_progress(s->snap, i, &p);
	else
		p = s->prog[i];
	pthread_mutex_unlock(&s->mu);
	out->schema = s->tables.t[i].schema;
	out->name = s->tables.t[i].name;
	out->state = (unsigned)p.state <= LS_PGSNAP_FAILED ?
		snap_state_names[p.state] : "unknown";
	out->rows = p.rows;
	out->est_rows = p.est_rows;
	return n;
}

/* ---- stream: relations -------------------------------------------------------- */

static size_t map_index(const struct ls_source *s, uint32_t id)
{
	size_t mask = s->map_cap - 1;
	size_t i = (size_t)(id * 2654435761u) & mask;
	while (s->map[i].id != 0 && s->map[i].id != id)
		i = (i + 1) & mask;
	return i;
}

static const struct ls_relation *map_get(const struct ls_source *s,
	uint32_t id)
{
	if (s->map_cap == 0 || id == 0)
		return NULL;
	return s->map[map_index(s, id)].rel;
}

static int map_grow(struct ls_source *s)
{
	size_t cap = s->map_cap ? s->map_cap * 2 : 64;
	struct relent *old = s->map;
	size_t oldcap = s->map_cap;
	s->map = calloc(cap, sizeof *s->map);
	if (s->map == NULL) {
		s->map = old;
		return -1;
	}
	s->map_cap = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].id != 0)
			s->map[map_index(s, old[i].id)] = old[i];
	free(old);
	return 0;
}

/* Installs rel (takes ownership) as the relation of its id. */
static int map_put(struct ls_source *s, struct ls_relation *rel)
{
	if ((s->map_n + 1) * 2 > s->map_cap && map_grow(s) < 0)
		return -1;
	struct relent *e = &s->map[map_index(s, rel->id)];
	if (e->id == 0)
		s->map_n++;
	ls_relation_free(e->rel);
	e->id = rel->id;
	e->rel = rel;
	return 0;
}

static const struct ls_pg_table *prepared_table(const struct ls_source *s,
	const struct ls_relation *r)
{
	for (int i = 0; i < s->tables.n; i++)
		if (s->tables.t[i].oid == r->id)
			return &s->tables.t[i];
	return ls_pgsetup_tables_find(&s->tables, r->schema, r->name);
}

static const struct ls_pg_column *prepared_col(const struct ls_pg_table *t,
	const char *name)
{
	for (int i = 0; t != NULL && i < t->ncols; i++)
		if (!strcmp(t->cols[i].name, name))
			return &t->cols[i];
	return NULL;
}

static bool has_key(const struct ls_pg_table *t)
{
	for (int i = 0; t != NULL && i < t->ncols; i++)
		if (t->cols[i].key)
			return true;
	return false;
}

/* The catalog connection, (re)connected when needed, with the session
 * settings values are read under (default values are read as text). */
static PGconn *cat_conn(struct ls_source *s, struct ls_err *err)
{
	if (s->cat != NULL && PQstatus(s->cat) != CONNECTION_OK) {
		PQfinish(s->cat);
		s->cat = NULL;
	}
	if (s->cat != NULL)
		return s->cat;
	if ((s->cat = connect_pg(s->conninfo, false, err)) == NULL)
		return NULL;
	PGresult *r = PQexec(s->cat, ls_pgsession_sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		char m[300];
		ls_err_set(err, PQstatus(s->cat) != CONNECTION_OK, "catalog "
			"session setup: %s", pq_msg(s->cat, r, m, sizeof m));
		PQclear(r);
		PQfinish(s->cat);
		s->cat = NULL;
		return NULL;
	}
	PQclear(r);
	return s->cat;
}

/* format_type(oid, typmod) on the catalog connection.  This blocks the
 * loop: it only runs for columns the prepared tables do not describe (DDL
 * after start).  Returns a malloc'd name or NULL with err set. */
static char *lookup_type(struct ls_source *s, uint32_t oid, int32_t typmod,
	struct ls_err *err)
{
	if (cat_conn(s, err) == NULL) {
		ls_err_prefix(err, "type name lookup");
		return NULL;
	}
	char o[16], m[16], msg[300];
	snprintf(o, sizeof o, "%u", oid);
	snprintf(m, sizeof m, "%d", typmod);
	const char *params[2] = { o, m };
	PGresult *r = PQexecParams(s->cat, "SELECT format_type($1::oid, "
		"$2::int4)", 2, NULL, params, NULL, NULL, 0);
	char *name = NULL;
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 ||
	    PQgetisnull(r, 0, 0))
		ls_err_set(err, PQstatus(s->cat) != CONNECTION_OK, "type name "
			"lookup of OID %u: %s", oid, pq_msg(s->cat, r, msg,
			sizeof msg));
	else if ((name = strdup(PQgetvalue(r, 0, 0))) == NULL)
		ls_err_set(err, false, "type name lookup: out of memory");
	PQclear(r);
	return name;
}

/* ---- stream: what rows existing when a column was added got --------------- */

/* One column's value in the rows that existed when it was added.
 * atthasmissing/attmissingval is PostgreSQL's own record of it (a
 * non-volatile default added without rewriting the table); a later rewrite
 * clears that record, and then a default made of constants and built-in
 * immutable functions is evaluated instead.  A volatile default (random(),
 * nextval) or an identity column made PostgreSQL rewrite the table with a
 * value per row.  Columns: has missing, missing value, default expression,
 * volatile, evaluable. */
static const char FILL_SQL[] =
	"SELECT a.atthasmissing, (a.attmissingval::text::text[])[1],"
	" pg_get_expr(d.adbin, d.adrelid),"
	" a.attidentity <> '' OR d.adbin::text ~ '\\{NEXTVALUEEXPR '"
	"  OR EXISTS (SELECT 1 FROM regexp_matches(d.adbin::text,"
	"   ':(?:funcid|opfuncid) ([0-9]+)', 'g') m JOIN pg_proc p"
	"   ON p.oid = m[1]::oid WHERE p.provolatile = 'v'),"
	" d.adbin IS NOT NULL"
	"  AND d.adbin::text !~ '\\{(SQLVALUEFUNCTION|NEXTVALUEEXPR|PARAM|SUBLINK|VAR) '"
	"  AND NOT EXISTS (SELECT 1 FROM regexp_matches(d.adbin::text,"
	"   ':(?:funcid|opfuncid) ([0-9]+)', 'g') m JOIN pg_proc p"
	"   ON p.oid = m[1]::oid WHERE p.provolatile <> 'i' OR p.oid >= 16384)"
	" FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid"
	"  AND d.adnum = a.attnum"
	" WHERE a.attrelid = $1::oid AND a.attname = $2 AND a.attnum > 0"
	" AND NOT a.attisdropped AND a.attgenerated = ''";

static void warn_fill(const struct ls_relation *r, const char *col,
	const char *expr, const char *why)
{
	ls_warn("postgres source: table %s.%s column %s was added%s%s: %s; the "
		"change stream does not carry the values the table's existing rows "
		"got, so the target cannot fill them in: `lockstepctl drift --check` "
		"finds those rows and `lockstepctl drift --repair` fixes them",
		r->schema, r->name, col, expr ? " with DEFAULT " : "",
		expr ? expr : "", why);
}

/* Evaluates a default made of constants and built-in immutable functions
 * (checked by FILL_SQL) as text; malloc'd, NULL when that fails. */
static char *eval_default(PGconn *k, const char *expr)
{
	size_t n = strlen(expr) + 32;
	char *sql = malloc(n), *v = NULL;
	if (sql == NULL)
		return NULL;
	snprintf(sql, n, "SELECT (%s)::text", expr);
	PGresult *r = PQexec(k, sql);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	    !PQgetisnull(r, 0, 0))
		v = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	free(sql);
	return v;
}

/* Interprets FILL_SQL's row for column c: sets c->fill or warns. */
static void fill_from_row(PGconn *k, const struct ls_relation *r,
	struct ls_column *c, PGresult *res)
{
	if (PQntuples(res) != 1)
		return;                  /* dropped again, or generated */
	const char *expr = PQgetisnull(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2);
	if (PQgetvalue(res, 0, 0)[0] == 't')
		c->fill = strdup(PQgetvalue(res, 0, 1));
	else if (PQgetvalue(res, 0, 3)[0] == 't')
		warn_fill(r, c->name, expr, expr ? "a volatile default makes "
			"PostgreSQL rewrite the table with a value per row" :
			"an identity column makes PostgreSQL rewrite the table "
			"with a value per row");
	else if (expr == NULL)
		return;                  /* no default: existing rows are NULL */
	else if (PQgetvalue(res, 0, 4)[0] != 't' ||
		 (c->fill = eval_default(k, expr)) == NULL)
		warn_fill(r, c->name, expr, "the default is not a constant and "
			"PostgreSQL no longer records the value existing rows got "
			"(the table was rewritten)");
}

/* Sets the fill of column c of r, new since the relation's last
 * definition, from the catalog.  Blocks the loop, like lookup_type (DDL
 * only).  Not finding out is a warning, not an error: the stream goes on,
 * and a drift check finds the rows. */
static void lookup_fill(struct ls_source *s, const struct ls_relation *r,
	struct ls_column *c)
{
	struct ls_err err = { 0 };
	char oid[16], m[LS_ERR_MSG_MAX + 32];
	PGconn *k = cat_conn(s, &err);
	if (k == NULL) {
		snprintf(m, sizeof m, "cannot read the catalog: %s", err.msg);
		warn_fill(r, c->name, NULL, m);
		return;
	}
	snprintf(oid, sizeof oid, "%u", r->id);
	const char *params[2] = { oid, c->name };
	/* pg_catalog only: pg_get_expr qualifies everything else, and an
	 * evaluated default resolves only built-in names */
	PGresult *res = PQexec(k, "BEGIN READ ONLY; SET LOCAL search_path = "
		"pg_catalog");
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	res = ok ? PQexecParams(k, FILL_SQL, 2, NULL, params, NULL, NULL, 0) :
		NULL;
	if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
		fill_from_row(k, r, c, res);
	} else {
		snprintf(m, sizeof m, "cannot read the catalog: ");
		size_t l = strlen(m);
		pq_msg(k, res, m + l, sizeof m - l);
		warn_fill(r, c->name, NULL, m);
	}
	PQclear(res);
	PQclear(PQexec(k, "ROLLBACK"));
}

static const struct ls_column *find_col(const struct ls_relation *r,
	const char *name)
{
	for (uint16_t i = 0; r != NULL && i < r->ncols; i++)
		if (!strcmp(r->cols[i].name, name))
			return &r->cols[i];
	return NULL;
}

/* The fill of column c of r: kept from the relation's previous definition
 * (or the prepared table's, at first sight) when the column is known
 * there, looked up when it is new.  -1 when out of memory. */
static int set_fill(struct ls_source *s, const struct ls_relation *r,
	struct ls_column *c, const struct ls_relation *known)
{
	const struct ls_column *kc = find_col(known, c->name);
	if (known != NULL && kc == NULL) {
		lookup_fill(s, r, c);
		return 0;
	}
	if (kc == NULL || kc->fill == NULL)
		return 0;
	c->fill = strdup(kc->fill);
	return c->fill != NULL ? 0 : -1;
}

/* At prepare: the fills PostgreSQL records for the prepared tables'
 * columns, so a column added before this start whose Relation message is
 * still to come fills the target's rows too. */
static int load_fills(struct ls_source *s, struct ls_err *err)
{
	char *oids = NULL, m[300];
	size_t len = 0;
	FILE *f = open_memstream(&oids, &len);
	if (f == NULL)
		return ls_err_set(err, false, "postgres source: out of memory");
	fputc('{', f);
	for (int i = 0; i < s->tables.n; i++)
		fprintf(f, "%s%u", i ? "," : "", s->tables.t[i].oid);
	fputc('}', f);
	if (fclose(f) != 0) {
		free(oids);
		return ls_err_set(err, false, "postgres source: out of memory");
	}
	PGconn *k = cat_conn(s, err);
	const char *params[1] = { oids };
	PGresult *r = k == NULL ? NULL : PQexecParams(k, "SELECT a.attrelid,"
		" a.attname, (a.attmissingval::text::text[])[1]"
		" FROM pg_catalog.pg_attribute a WHERE a.attrelid ="
		" ANY ($1::pg_catalog.oid[]) AND a.atthasmissing AND a.attnum > 0"
		" AND NOT a.attisdropped", 1, NULL, params, NULL, NULL, 0);
	free(oids);
	if (k == NULL)
		return ls_err_prefix(err, "postgres source: reading column fills");
	int rc = 0;
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		rc = ls_err_set(err, PQstatus(k) != CONNECTION_OK, "postgres "
			"source: reading column fills: %s", pq_msg(k, r, m,
			sizeof m));
	for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
		uint32_t oid = (uint32_t)strtoul(PQgetvalue(r, i, 0), NULL, 10);
		for (int t = 0; t < s->tables.n; t++) {
			struct ls_column *c = s->tables.t[t].oid != oid ? NULL :
				(struct ls_column *)find_col(s->rels[t],
				PQgetvalue(r, i, 1));
			if (c != NULL && c->fill == NULL &&
			    (c->fill = strdup(PQgetvalue(r, i, 2))) == NULL)
				rc = ls_err_set(err, false, "postgres source: out "
					"of memory");
		}
	}
	PQclear(r);
	return rc;
}

/* Makes the source's own copy of a Relation message's relation: type names
 * from the prepared table or the catalog; key flags of a FULL table with a
 * primary key from the prepared table; fills (see set_fill). */
static int install_relation(struct ls_source *s, const struct ls_relation *dr,
	struct ls_err *err)
{
	struct ls_relation *r = ls_relation_dup(dr);
	if (r == NULL)
		return ls_err_set(err, false, "relation %s.%s: out of memory",
			dr->schema, dr->name);
	const struct ls_pg_table *pt = prepared_table(s, r);
	const struct ls_relation *prev = map_get(s, r->id);
	if (prev == NULL && pt != NULL)
		prev = s->rels[pt - s->tables.t];
	bool keys_from_table = r->replident == LS_REPLIDENT_FULL && has_key(pt);
	for (uint16_t i = 0; i < r->ncols; i++) {
		struct ls_column *c = &r->cols[i];
		const struct ls_pg_column *pc = prepared_col(pt, c->name);
		if (keys_from_table)
			c->flags = (uint8_t)((c->flags & ~LS_COL_KEY) |
				(pc != NULL && pc->key ? LS_COL_KEY : 0));
		bool known = pc != NULL && pc->type_oid == c->type_oid &&
			pc->typmod == c->typmod;
		char *name = known ? strdup(pc->type_name) :
			lookup_type(s, c->type_oid, c->typmod, err);
		if (name == NULL) {
			if (known)
				ls_err_set(err, false, "out of memory");
			ls_err_prefix(err, "relation %s.%s column %s", dr->schema,
				dr->name, c->name);
			ls_relation_free(r);
			return -1;
		}
		free(c->type_name);
		c->type_name = name;
		if (set_fill(s, r, c, prev) < 0) {
			ls_relation_free(r);
			return ls_err_set(err, false, "relation %s.%s: out of "
				"memory", dr->schema, dr->name);
		}
	}
	if (map_put(s, r) < 0) {
		ls_relation_free(r);
		return ls_err_set(err, false, "relation %s.%s: out of memory",
			dr->schema, dr->name);
	}
	return 0;
}

/* ---- stream: messages ------------------------------------------------------------ */

/* Stops the stream for good and tells the pipeline. */
static void stream_fatal(struct ls_source *s, struct ls_err *err)
{
	s->state = ST_FAILED;
	s->in_txn = s->skip_txn = s->in_stream = false;
	ls_pgstream_stop(s->stream);
	ls_err_prefix(err, "postgres source (slot %s)", s->slot);
	if (s->cb.on_error != NULL)
		s->cb.on_error(s->cb.ctx, err);
}

static void stream_begin_now(struct ls_source *s);

/* A change goes to the open transaction, or to the streamed one whose
 * block is open (with the subtransaction that made it). */
static void emit(struct ls_source *s, const struct ls_pgo_event *ev,
	const struct ls_relation *const *rels, uint32_t n)
{
	if (s->in_stream) {
		stream_begin_now(s);
		s->cb.on_stream_change(s->cb.ctx, ev->xid ? ev->xid : s->stream_xid,
			&ev->change, rels, n);
	} else {
		s->cb.on_change(s->cb.ctx, &ev->change, rels, n);
	}
}

static int on_row_change(struct ls_source *s, const struct ls_pgo_event *ev,
	struct ls_err *err)
{
	const struct ls_relation *rel = map_get(s, ev->change.relid);
	if (rel == NULL)
		return ls_err_set(err, false, "change of relation %u without its "
			"Relation message", ev->change.relid);
	emit(s, ev, &rel, 1);
	return 0;
}

static int on_truncate(struct ls_source *s, const struct ls_pgo_event *ev,
	struct ls_err *err)
{
	uint32_t n = ev->change.nrelids;
	const struct ls_relation **rels = ls_arena_alloc(&s->arena,
		(n ? n : 1) * sizeof *rels);
	if (rels == NULL)
		return ls_err_set(err, false, "truncate: out of memory");
	for (uint32_t i = 0; i < n; i++) {
		rels[i] = map_get(s, ev->change.relids[i]);
		if (rels[i] == NULL)
			return ls_err_set(err, false, "truncate of relation %u "
				"without its Relation message",
				ev->change.relids[i]);
	}
	emit(s, ev, rels, n);
	return 0;
}

static int on_message(struct ls_source *s, const struct ls_pgo_event *ev)
{
	const char *prefix = ev->change.msg_prefix ? ev->change.msg_prefix : "";
	/* "lockstep" and "lockstep.*" (drift markers, lib/drift.h) */
	if (s->in_txn && !s->in_stream && ev->u.message.transactional &&
	    !strncmp(prefix, "lockstep", 8) && (prefix[8] == '\0' || prefix[8] == '.')) {
		s->cb.on_change(s->cb.ctx, &ev->change, NULL, 0);
		return 0;
	}
	ls_debug("postgres source: ignoring %stransactional logical message "
		"with prefix \"%s\"", ev->u.message.transactional ? "" : "non-",
		prefix);
	return 0;
}

/* Whether origin name is one of the comma-separated skip_origins. */
bool ls_pg_source_origin_skipped(const char *list, const char *name)
{
	size_t n = strcspn(name, ":");
	if (name[n] != '\0' && (strncmp(name + n, ":s", 2) != 0 || name[n + 2] == '\0' ||
	    strspn(name + n + 2, "0123456789") != strlen(name + n + 2)))
		return false;
	for (const char *p = list; *p != '\0';) {
		p += strspn(p, " ,");
		size_t len = strcspn(p, ",");
		size_t l = len;
		while (l > 0 && p[l - 1] == ' ')
			l--;
		if (l == n && l > 0 && strncmp(p, name, n) == 0)
			return true;
		p += len;
	}
	return false;
}

static bool origin_skipped(const struct ls_source *s, const char *name)
{
	return ls_pg_source_origin_skipped(s->skip_origins, name);
}

/* Begin is reported once the transaction shows it is not from a skipped
 * origin: pgoutput sends Origin right after Begin, before any change. */
static void begin_now(struct ls_source *s)
{
	if (!s->begun) {
		s->begun = true;
		s->cb.on_begin(s->cb.ctx, &s->txn);
	}
}

/* ---- stream: streamed transactions (protocol 2) ----------------------------------- */

static bool xid_skipped(const struct ls_source *s, uint32_t xid)
{
	for (size_t i = 0; i < s->nskip_xids; i++)
		if (s->skip_xids[i] == xid)
			return true;
	return false;
}

static void unskip_xid(struct ls_source *s, uint32_t xid)
{
	for (size_t i = 0; i < s->nskip_xids; i++)
		if (s->skip_xids[i] == xid) {
			s->skip_xids[i] = s->skip_xids[--s->nskip_xids];
			return;
		}
}

static int skip_xid(struct ls_source *s, uint32_t xid, struct ls_err *err)
{
	if (s->nskip_xids == s->capskip_xids) {
		size_t cap = s->capskip_xids ? 2 * s->capskip_xids : 8;
		uint32_t *n = realloc(s->skip_xids, cap * sizeof *n);
		if (n == NULL)
			return ls_err_set(err, false, "out of memory");
		s->skip_xids = n;
		s->capskip_xids = cap;
	}
	s->skip_xids[s->nskip_xids++] = xid;
	return 0;
}

/* Like begin_now: a block is announced once it shows it is not from a
 * skipped origin (Origin follows the first Stream Start). */
static void stream_begin_now(struct ls_source *s)
{
	if (!s->stream_begun) {
		s->stream_begun = true;
		s->cb.on_stream_begin(s->cb.ctx, s->stream_xid, s->stream_first);
	}
}

static int stream_commit(struct ls_source *s, const struct ls_pgo_event *ev)
{
	if (xid_skipped(s, ev->xid)) {
		unskip_xid(s, ev->xid);
		s->skipped_txns++;
		return 0;
	}
	struct ls_txn txn = { .xid = ev->xid,
		.commit_time_us = ev->u.commit.commit_time_us };
	lsn_pos(ev->u.commit.commit_lsn, &txn.commit);
	s->cb.on_stream_commit(s->cb.ctx, &txn, ev->u.commit.end_lsn);
	return 0;
}

static int dispatch_stream(struct ls_source *s, const struct ls_pgo_event *ev,
	struct ls_err *err)
{
	switch (ev->kind) {
	case LS_PGO_STREAM_START:
		if (s->in_txn || s->in_stream)
			return ls_err_set(err, false, "pgoutput Stream Start inside "
				"a transaction");
		s->in_stream = true;
		s->stream_xid = ev->xid;
		s->stream_first = ev->u.stream_start.first_segment;
		s->stream_begun = false;
		if (s->stream_first)
			unskip_xid(s, ev->xid);
		return 0;
	case LS_PGO_STREAM_STOP:
		if (s->stream_begun)
			s->cb.on_stream_end(s->cb.ctx);
		s->in_stream = s->stream_begun = false;
		return 0;
	case LS_PGO_STREAM_ABORT:
		if (xid_skipped(s, ev->xid)) {
			if (ev->u.stream_abort.subxid == ev->xid)
				unskip_xid(s, ev->xid);
			return 0;
		}
		s->cb.on_stream_abort(s->cb.ctx, ev->xid, ev->u.stream_abort.subxid);
		return 0;
	case LS_PGO_STREAM_COMMIT:
		return stream_commit(s, ev);
	case LS_PGO_ORIGIN:
		if (!s->stream_begun && ev->u.origin.name &&
		    origin_skipped(s, ev->u.origin.name))
			return skip_xid(s, s->stream_xid, err);
		return 0;
	default:
		break;
	}
	if (xid_skipped(s, s->stream_xid) && ev->kind != LS_PGO_RELATION &&
	    ev->kind != LS_PGO_TYPE)
		return 0;
	return -2;   /* the ordinary handling, routed by in_stream */
}

/* Relations and row changes, alike in a transaction and in a stream block
 * (emit routes the changes); 1 for any other message. */
static int dispatch_rows(struct ls_source *s, const struct ls_pgo_event *ev,
	struct ls_err *err)
{
	switch (ev->kind) {
	case LS_PGO_RELATION:
		if (ev->u.relation.change == LS_PGO_REL_SAME &&
		    map_get(s, ev->rel->id) != NULL)
			return 0;
		return install_relation(s, ev->rel, err);
	case LS_PGO_INSERT:
	case LS_PGO_UPDATE:
	case LS_PGO_DELETE:
		return on_row_change(s, ev, err);
	case LS_PGO_TRUNCATE:
		return on_truncate(s, ev, err);
	default:
		return 1;
	}
}

/* Inside a stream block logical messages are not drift markers. */
static int dispatch_in_stream(struct ls_source *s, const struct ls_pgo_event *ev,
	struct ls_err *err)
{
	int rc = dispatch_rows(s, ev, err);
	if (rc != 1)
		return rc;
	switch (ev->kind) {
	case LS_PGO_MESSAGE:
	case LS_PGO_TYPE:
		return 0;
	default:
		return ls_err_set(err, false, "unexpected pgoutput message '%c' "
			"inside a stream block", ev->kind);
	}
}

static int dispatch(struct ls_source *s, const struct ls_pgo_event *ev,
	struct ls_err *err)
{
	if (s->in_stream || ev->kind == LS_PGO_STREAM_START ||
	    ev->kind == LS_PGO_STREAM_COMMIT || ev->kind == LS_PGO_STREAM_ABORT) {
		int rc = dispatch_stream(s, ev, err);
		if (rc != -2)
			return rc;
		return dispatch_in_stream(s, ev, err);
	}
	bool data = ev->kind == LS_PGO_INSERT || ev->kind == LS_PGO_UPDATE ||
		ev->kind == LS_PGO_DELETE || ev->kind == LS_PGO_TRUNCATE;
	if ((data || ev->kind == LS_PGO_COMMIT) && !s->in_txn)
		return ls_err_set(err, false, "pgoutput '%c' outside a "
			"transaction", ev->kind);
	if (s->skip_txn && ev->kind == LS_PGO_COMMIT) {
		/* nothing of it was passed on; the next keepalive acks it */
		s->in_txn = s->skip_txn = false;
		s->skipped_txns++;
		return 0;
	}
	if (s->skip_txn && (data || ev->kind == LS_PGO_MESSAGE))
		return 0;
	if (s->in_txn && (data || ev->kind == LS_PGO_COMMIT ||
	    ev->kind == LS_PGO_MESSAGE))
		begin_now(s);
	switch (ev->kind) {
	case LS_PGO_BEGIN:
		if (s->in_txn)
			return ls_err_set(err, false, "pgoutput Begin inside a "
				"transaction");
		s->in_txn = true;
		s->begun = s->skip_txn = false;
		s->txn.xid = ev->xid;
		lsn_pos(ev->u.begin.final_lsn, &s->txn.commit);
		s->txn.commit_time_us = ev->u.begin.commit_time_us;
		return 0;
	case LS_PGO_COMMIT:
		s->in_txn = false;
		s->cb.on_commit(s->cb.ctx, &s->txn, ev->u.commit.end_lsn);
		return 0;
	case LS_PGO_RELATION:
	case LS_PGO_INSERT:
	case LS_PGO_UPDATE:
	case LS_PGO_DELETE:
	case LS_PGO_TRUNCATE:
		return dispatch_rows(s, ev, err);
	case LS_PGO_MESSAGE:
		return on_message(s, ev);
	case LS_PGO_ORIGIN:
		if (s->in_txn && !s->begun && ev->u.origin.name &&
		    origin_skipped(s, ev->u.origin.name)) {
			s->skip_txn = true;
			return 0;
		}
		ls_debug("postgres source: ignoring Origin \"%s\"",
			ev->u.origin.name ? ev->u.origin.name : "");
		return 0;
	case LS_PGO_TYPE:
		ls_debug("postgres source: ignoring Type %u", ev->u.type.oid);
		return 0;
	default:
		return ls_err_set(err, false, "unexpected pgoutput message '%c' "
			"for protocol 1", ev->kind);
	}
}

static void st_xlogdata(struct ls_pgstream *ps, uint64_t start,
	uint64_t wal_end, int64_t t, const char *data, size_t len)
{
	struct ls_source *s = ls_pgstream_data(ps);
	(void)wal_end;
	(void)t;
	if (s->closing || s->state == ST_FAILED)
		return;
	struct ls_pgo_event ev;
	struct ls_err err = { 0 };
	int rc = ls_pgo_decode(s->dec, data, len, &s->arena, &ev, &err);
	if (rc == 0)
		rc = dispatch(s, &ev, &err);
	/* values were borrowed for the callbacks only: memory stays bounded
	 * however large the transaction */
	ls_arena_reset(&s->arena);
	if (rc < 0) {
		char l[LS_PG_LSN_TEXT_MAX];
		ls_err_prefix(&err, "at %s", ls_pgsetup_lsn_format(start, l));
		stream_fatal(s, &err);
	}
}

static void st_keepalive(struct ls_pgstream *ps, uint64_t wal_end,
	int64_t t, bool reply)
{
	struct ls_source *s = ls_pgstream_data(ps);
	(void)reply;
	if (s->closing || s->in_txn || s->in_stream || s->state == ST_FAILED ||
	    s->cb.on_idle == NULL)
		return;
	struct ls_pos pos;
	lsn_pos(wal_end, &pos);
	s->cb.on_idle(s->cb.ctx, &pos, ls_pgstream_pg_to_unix_us(t));
}

static void st_streaming(struct ls_pgstream *ps, uint64_t start)
{
	struct ls_source *s = ls_pgstream_data(ps);
	char l[LS_PG_LSN_TEXT_MAX];
	if (s->state == ST_FAILED)
		return;
	s->state = ST_STREAMING;
	ls_info("postgres source: streaming slot %s from %s", s->slot,
		ls_pgsetup_lsn_format(start, l));
}

static void st_error(struct ls_pgstream *ps, const struct ls_err *e)
{
	struct ls_source *s = ls_pgstream_data(ps);
	if (s->closing || s->state == ST_FAILED)
		return;
	if (!e->retryable) {
		struct ls_err err = *e;
		stream_fatal(s, &err);
		return;
	}
	ls_warn("postgres source: %s; reconnecting", e->msg);
	s->in_txn = s->skip_txn = false;
	s->in_stream = s->stream_begun = false;
	s->nskip_xids = 0;
	ls_arena_reset(&s->arena);
	s->state = ST_RECONNECTING;
	if (s->cb.on_restart != NULL)
		s->cb.on_restart(s->cb.ctx);
}

/* Streaming in-progress transactions needs the callbacks, and a stream
 * that starts where no snapshot filter can drop a change any more: a
 * streamed transaction's changes are applied before its commit position
 * (which the filters compare) is known. */
static bool want_streaming(struct ls_source *s, const struct ls_source_cb *cb)
{
	if (!s->stream_txns || cb->on_stream_begin == NULL || cb->on_stream_change == NULL ||
	    cb->on_stream_end == NULL || cb->on_stream_abort == NULL ||
	    cb->on_stream_commit == NULL)
		return false;
	uint64_t start = s->slot_info.created ? s->slot_info.consistent_lsn :
		s->slot_info.confirmed_flush;
	uint64_t floor = cb->stream_floor > s->copied_at ? cb->stream_floor : s->copied_at;
	if (start < floor) {
		char a[LS_PG_LSN_TEXT_MAX], b[LS_PG_LSN_TEXT_MAX];
		ls_info("postgres source: large transactions are applied after their "
			"commit this run: the stream starts at %s, before a table's "
			"snapshot at %s", ls_pgsetup_lsn_format(start, a),
			ls_pgsetup_lsn_format(floor, b));
		return false;
	}
	return true;
}

static int pg_stream(struct ls_source *s, const struct ls_source_cb *cb,
	struct ls_err *err)
{
	if (!s->prepared || s->stream != NULL || s->closing)
		return ls_err_set(err, false, "postgres source: stream needs a "
			"prepared source and runs once");
	if (cb->on_begin == NULL || cb->on_change == NULL ||
	    cb->on_commit == NULL)
		return ls_err_set(err, false, "postgres source: stream needs "
			"on_begin, on_change and on_commit");
	if (s->snap == NULL && !s->work_busy) {
		/* no copy is using the exported snapshot any more */
		ls_pgslot_free(s->slotc);
		s->slotc = NULL;
	}
	s->cb = *cb;
	s->streaming = want_streaming(s, cb);
	if (s->streaming && (ls_pgo_free(s->dec), s->dec = ls_pgo_new(2)) == NULL)
		return ls_err_set(err, false, "postgres source: out of memory");
	struct ls_pgstream_opts o = {
		.conninfo = s->conninfo, .slot = s->slot,
		.publication = s->publication, .proto_version = s->streaming ? 2 : 1,
		.streaming = s->streaming,
		.work_mem_kb = !s->streaming ? 0 : s->stream_mem < 64 * 1024 ? 64 :
			(int)(s->stream_mem / 1024),   /* the server's minimum is 64kB */
		.messages = true, .start_lsn = 0, .feedback_interval_ms = s->feedback_ms,
		.reconnect_base_ms = s->base_ms, .reconnect_cap_ms = s->cap_ms,
	};
	struct ls_pgstream_cbs cbs = { .on_xlogdata = st_xlogdata,
		.on_keepalive = st_keepalive, .on_streaming = st_streaming,
		.on_error = st_error };
	s->stream = ls_pgstream_new(s->loop, &o, &cbs, s, err);
	if (s->stream == NULL)
		return ls_err_prefix(err, "postgres source");
	s->state = ST_CONNECTING;
	if (s->paused)
		ls_pgstream_pause(s->stream);
	if (ls_pgstream_start(s->stream, err) < 0) {
		s->state = ST_FAILED;
		return ls_err_prefix(err, "postgres source");
	}
	return 0;
}

static void pg_ack(struct ls_source *s, uint64_t ack)
{
	if (s->stream != NULL)
		ls_pgstream_set_flushed(s->stream, ack);
}

static void pg_ack_idle(struct ls_source *s)
{
	if (s->stream != NULL && !s->in_txn)
		ls_pgstream_mark_idle(s->stream);
}

/* The pause is remembered so that a stream started later starts paused. */
static void pg_pause(struct ls_source *s)
{
	s->paused = true;
	if (s->stream != NULL)
		ls_pgstream_pause(s->stream);
}

static void pg_resume(struct ls_source *s)
{
	s->paused = false;
	if (s->stream != NULL)
		ls_pgstream_resume(s->stream);
}

/* ---- status --------------------------------------------------------------------- */

static const char *state_name(const struct ls_source *s)
{
	switch (s->state) {
	case ST_OPEN:
	case ST_PREPARED:
		return "preparing";
	case ST_SNAPSHOT:
		return "snapshot";
	case ST_SNAPSHOT_DONE:
		return "snapshot_done";
	case ST_CONNECTING:
		return "connecting";
	case ST_STREAMING:
		return s->paused ? "paused" : "streaming";
	case ST_RECONNECTING:
		return "reconnecting";
	case ST_FAILED:
		return "failed";
	}
	return "unknown";
}

static void kv_lsn(struct ls_json *j, const char *key, uint64_t lsn)
{
	char t[LS_PG_LSN_TEXT_MAX];
	ls_json_kv_string(j, key, ls_pgsetup_lsn_format(lsn, t));
}

static void pg_status(struct ls_source *s, struct ls_json *j)
{
	struct ls_pgstream_stats st = { 0 };
	if (s->stream != NULL)
		ls_pgstream_stats(s->stream, &st);
	ls_json_kv_string(j, "slot", s->slot);
	ls_json_kv_string(j, "publication", s->publication);
	ls_json_kv_string(j, "state", state_name(s));
	kv_lsn(j, "received_lsn", st.received);
	kv_lsn(j, "flushed_lsn", st.flushed);
	kv_lsn(j, "reported_lsn", st.reported);
	/* a logical walsender reports its own decoding position as "WAL end",
	 * not the server's: a slot hundreds of MB behind showed 0 here as
	 * source lag.  The true source lag is GET /lag's (the heartbeat reads
	 * the server's WAL position). */
	kv_lsn(j, "walsender_sent_lsn", st.server_wal_end);
	ls_json_kv_uint(j, "reconnects", st.reconnects);
	ls_json_kv_uint(j, "messages", st.messages);
	ls_json_kv_string(j, "skip_origins", s->skip_origins);
	ls_json_kv_uint(j, "skipped_origin_txns", s->skipped_txns);
}

/* ---- close ---------------------------------------------------------------------- */

static void free_source(struct ls_source *s)
{
	for (size_t i = 0; i < s->map_cap; i++)
		ls_relation_free(s->map[i].rel);
	free(s->map);
	for (int i = 0; i < s->nskip; i++)
		free(s->skip[i]);
	free(s->skip);
	unprepare(s);
	PQfinish(s->tmp_conn);
	PQfinish(s->cat);
	ls_arena_free(&s->arena);
	pthread_mutex_destroy(&s->mu);
	free(s->conninfo);
	free(s->include);
	free(s->exclude);
	free(s->slot);
	free(s->publication);
	free(s->skip_origins);
	free(s->skip_xids);
	free(s);
}

static void maybe_done(struct ls_source *s)
{
	if (!s->stream_closed || !s->timer_closed || s->hb != NULL)
		return;
	void (*cb)(void *) = s->close_cb;
	void *arg = s->close_arg;
	free_source(s);
	if (cb != NULL)
		cb(arg);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct ls_source *s = h->data;
	s->timer_closed = true;
	maybe_done(s);
}

static void on_hb_closed(void *data)
{
	struct ls_source *s = data;
	s->hb = NULL;
	maybe_done(s);
}

static void on_stream_closed(void *data)
{
	struct ls_source *s = data;
	s->stream_closed = true;
	maybe_done(s);
}

/* Waits (polling, never blocking the loop) for the copy workers and the
 * temporary slot job to end before the handles go. */
static void on_close_timer(uv_timer_t *t)
{
	struct ls_source *s = t->data;
	if (s->work_busy || (s->snap != NULL && !ls_pgsnap_finished(s->snap)))
		return;
	snapshot_end(s, NULL);
	uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

static void pg_close(struct ls_source *s, void (*cb)(void *arg), void *arg)
{
	if (s->closing)
		return;
	s->closing = true;
	s->close_cb = cb;
	s->close_arg = arg;
	if (s->snap != NULL)
		ls_pgsnap_cancel(s->snap);
	if (s->work_busy)
		(void)uv_cancel((uv_req_t *)&s->tmp_work);
	uv_timer_stop(&s->timer);
	uv_timer_start(&s->timer, on_close_timer, 0, LS_PG_SOURCE_SNAP_POLL_MS);
	if (s->hb != NULL)
		ls_pghb_close(s->hb, on_hb_closed, s);
	if (s->stream != NULL) {
		struct ls_pgstream *st = s->stream;
		s->stream = NULL;
		ls_pgstream_close(st, on_stream_closed);
	} else {
		s->stream_closed = true;
	}
}

/* ---- lag (pg_heartbeat) ------------------------------------------------------- */

static int pg_heartbeat(struct ls_source *s, int interval_ms, struct ls_err *err)
{
	if (s->hb != NULL || s->closing)
		return 0;
	struct ls_pghb_opts o = { .conninfo = s->conninfo, .slot = s->slot,
		.interval_ms = interval_ms };
	return ls_pghb_new(s->loop, &o, &s->hb, err);
}

static void pg_lag_sample(struct ls_source *s, struct ls_source_lag *out)
{
	if (s->hb != NULL)
		ls_pghb_sample(s->hb, out);
	else
		memset(out, 0, sizeof *out);
}

const struct ls_source_ops ls_pg_source_ops = {
	.engine = "postgres",
	.copy_format = "pg-text",
	.open = pg_open,
	.prepare = pg_prepare,
	.snapshot = pg_snapshot,
	.snapshot_progress = pg_snapshot_progress,
	.stream = pg_stream,
	.ack = pg_ack,
	.ack_idle = pg_ack_idle,
	.pause = pg_pause,
	.resume = pg_resume,
	.status = pg_status,
	.close = pg_close,
	.heartbeat = pg_heartbeat,
	.lag_sample = pg_lag_sample,
};
