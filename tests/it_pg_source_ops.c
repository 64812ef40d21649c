/* it_pg_source_ops — the PostgreSQL source through struct ls_source_ops
 * against a real PostgreSQL 15, on a libuv loop run by the test: prepare
 * (relations, keys, type names), snapshot (copy at the slot's consistent
 * point; a restart copies the unfinished table in a temporary slot's newer
 * snapshot), stream (begin/change/commit in order with values), ack and
 * idle acknowledgement, and a reconnect after the walsender is killed.
 *
 * One cluster serves the suite (unchecked fixture); each test has its own
 * database and pipeline name (hence slot and publication).
 */
#include "connectors/postgres/pg_source.h"
#include "connectors/postgres/pg_setup.h"
#include "tests/helpers/testsrv.h"

#include <check.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct ls_testpg *pg;

static void pg_setup_fixture(void)
{
	pg = ls_testpg_start(NULL);
}

static void pg_teardown_fixture(void)
{
	ls_testpg_stop(pg);
	pg = NULL;
}

/* ---- the harness: a source, a sink and a stream receiver ------------------- */

#define MAXT 8
#define LOG_MAX 16384

struct h {
	uv_loop_t loop;
	struct ls_config *cfg;
	struct ls_source *src;
	struct ls_source_tables tables;
	const char *db;
	char slot[64];

	/* snapshot sink (worker threads) */
	const char *copied[MAXT];      /* plan_copied says yes for these */
	_Atomic uint64_t rows[MAXT];   /* per table index, from on_copy_data */
	_Atomic uint64_t done_rows[MAXT];
	_Atomic uint64_t at_start[MAXT], at_done[MAXT];
	_Atomic int starts;
	bool finished;
	struct ls_err fin_err;
	bool fin_failed;

	/* stream */
	char log[LOG_MAX];             /* events, one per line */
	size_t loglen;
	int begins, commits, inserts, idles, restarts, errors;
	uint64_t last_ack, last_idle, last_seq;
	bool ack_idle_on_idle;
	char types[512];               /* column types of the last change's rel */
	bool closed;
};

static int table_index(struct h *h, const struct ls_relation *rel)
{
	for (int i = 0; i < h->tables.n; i++)
		if (h->tables.rels[i] == rel)
			return i;
	ck_abort_msg("sink got a relation that prepare did not return");
	return -1;
}

static bool snk_plan(void *ctx, const struct ls_relation *rel)
{
	struct h *h = ctx;
	for (int i = 0; i < MAXT && h->copied[i] != NULL; i++)
		if (!strcmp(h->copied[i], rel->name))
			return true;
	return false;
}

static int snk_start(void *ctx, int worker, const struct ls_relation *rel,
	uint64_t at)
{
	struct h *h = ctx;
	(void)worker;
	atomic_store(&h->at_start[table_index(h, rel)], at);
	atomic_fetch_add(&h->starts, 1);
	return 0;
}

static int snk_data(void *ctx, int worker, const struct ls_relation *rel,
	const char *data, size_t len)
{
	struct h *h = ctx;
	(void)worker;
	uint64_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += data[i] == '\n';
	atomic_fetch_add(&h->rows[table_index(h, rel)], n);
	return 0;
}

static int snk_done(void *ctx, int worker, const struct ls_relation *rel,
	uint64_t rows, uint64_t at)
{
	struct h *h = ctx;
	(void)worker;
	int i = table_index(h, rel);
	atomic_store(&h->done_rows[i], rows);
	atomic_store(&h->at_done[i], at);
	return 0;
}

static void snk_finished(void *ctx, const struct ls_err *err)
{
	struct h *h = ctx;
	h->finished = true;
	if (err != NULL) {
		h->fin_failed = true;
		h->fin_err = *err;
	}
}

static void logf_(struct h *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void logf_(struct h *h, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(h->log + h->loglen, LOG_MAX - h->loglen, fmt, ap);
	va_end(ap);
	ck_assert(n >= 0 && (size_t)n < LOG_MAX - h->loglen);
	h->loglen += (size_t)n;
}

static void log_tuple(struct h *h, const struct ls_tuple *t)
{
	for (uint16_t i = 0; i < t->ncols; i++) {
		const struct ls_value *v = &t->vals[i];
		if (v->kind == LS_VAL_NULL)
			logf_(h, "%snull", i ? "," : "");
		else if (v->kind == LS_VAL_UNCHANGED)
			logf_(h, "%s?", i ? "," : "");
		else
			logf_(h, "%s%.*s", i ? "," : "", (int)v->len, v->data);
	}
}

static void on_begin(void *ctx, const struct ls_txn *txn)
{
	struct h *h = ctx;
	char t[LS_PG_LSN_TEXT_MAX];
	ck_assert_str_eq(txn->commit.text, ls_pgsetup_lsn_format(txn->commit.seq,
		t));
	ck_assert_uint_gt(txn->commit.seq, h->last_seq);
	ck_assert_uint_gt(txn->xid, 0);
	ck_assert_int_gt(txn->commit_time_us, 1700000000LL * 1000000);
	h->last_seq = txn->commit.seq;
	h->begins++;
	logf_(h, "B\n");
}

static void on_change(void *ctx, const struct ls_change *c,
	const struct ls_relation *const *rels, uint32_t nrels)
{
	struct h *h = ctx;
	switch (c->op) {
	case LS_OP_INSERT:
	case LS_OP_UPDATE:
	case LS_OP_DELETE:
		ck_assert_uint_eq(nrels, 1);
		ck_assert_uint_eq(rels[0]->id, c->relid);
		h->types[0] = '\0';
		for (uint16_t i = 0; i < rels[0]->ncols; i++)
			snprintf(h->types + strlen(h->types), sizeof h->types -
				strlen(h->types), "%s%s%s", i ? "," : "",
				rels[0]->cols[i].type_name,
				rels[0]->cols[i].flags & LS_COL_KEY ? "*" : "");
		logf_(h, "%c %s", c->op, rels[0]->name);
		if (c->old_kind != LS_OLD_NONE) {
			logf_(h, " old=");
			log_tuple(h, &c->old_tup);
		}
		if (c->op != LS_OP_DELETE) {
			logf_(h, " new=");
			log_tuple(h, &c->new_tup);
		}
		logf_(h, "\n");
		h->inserts += c->op == LS_OP_INSERT;
		break;
	case LS_OP_TRUNCATE:
		ck_assert_uint_eq(nrels, c->nrelids);
		logf_(h, "T");
		for (uint32_t i = 0; i < nrels; i++)
			logf_(h, " %s", rels[i]->name);
		logf_(h, "\n");
		break;
	case LS_OP_MESSAGE:
		ck_assert_uint_eq(nrels, 0);
		logf_(h, "M %s %.*s\n", c->msg_prefix, (int)c->msg_len,
			c->msg_data);
		break;
	default:
		ck_abort_msg("unexpected op %c", c->op);
	}
}

static void on_commit(void *ctx, const struct ls_txn *txn, uint64_t ack)
{
	struct h *h = ctx;
	ck_assert_uint_gt(ack, txn->commit.seq);
	h->last_ack = ack;
	h->commits++;
	logf_(h, "C\n");
}

static void on_idle(void *ctx, const struct ls_pos *pos, int64_t t)
{
	struct h *h = ctx;
	ck_assert_int_gt(t, 1700000000LL * 1000000);
	h->idles++;
	h->last_idle = pos->seq;
	if (h->ack_idle_on_idle)
		ls_pg_source_ops.ack_idle(h->src);
}

static void on_restart(void *ctx)
{
	struct h *h = ctx;
	h->restarts++;
	h->last_seq = 0;     /* transactions after the last ack come again */
	logf_(h, "R\n");
}

static void on_error(void *ctx, const struct ls_err *err)
{
	struct h *h = ctx;
	h->errors++;
	ck_abort_msg("stream error: %s", err->msg);
}

/* Opens and prepares a source for database db as pipeline `name`. */
static void h_open(struct h *h, const char *db, const char *name,
	const char *snapshot)
{
	memset(h, 0, sizeof *h);
	h->db = db;
	ck_assert_int_eq(uv_loop_init(&h->loop), 0);
	char text[1024];
	snprintf(text, sizeof text, "[pipeline]\nname = %s\n[source]\n"
		"type = postgres\nconninfo = %s\ntables = public.*\n"
		"exclude = public.other*\nsnapshot = %s\n[buffer]\ntype = kafka\n"
		"brokers = 127.0.0.1:9\n", name, ls_testpg_conninfo(pg, db),
		snapshot);
	struct ls_err err = { 0 };
	ck_assert_msg(ls_config_parse("test.conf", text, &h->cfg, &err) == 0,
		"%s", err.msg);
	snprintf(h->slot, sizeof h->slot, "lockstep_%s", name);
	ck_assert_msg(ls_pg_source_ops.open(&h->loop, h->cfg, &h->src, &err) ==
		0, "%s", err.msg);
	ls_pg_source_set_intervals(h->src, 100, 50, 400);
	ck_assert_msg(ls_pg_source_ops.prepare(h->src, &h->tables, &err) == 0,
		"%s", err.msg);
}

static bool pump_until_finished(void *ctx)
{
	struct h *h = ctx;
	uv_run(&h->loop, UV_RUN_NOWAIT);
	return h->finished;
}

static void h_snapshot(struct h *h)
{
	struct ls_source_snapshot_sink sink = { .ctx = h,
		.plan_copied = snk_plan, .on_table_start = snk_start,
		.on_copy_data = snk_data, .on_table_done = snk_done,
		.on_finished = snk_finished };
	struct ls_err err = { 0 };
	ck_assert_msg(ls_pg_source_ops.snapshot(h->src, &sink, &err) == 0, "%s",
		err.msg);
	ck_assert(!h->finished);    /* on_finished comes from the loop */
	ck_assert(ls_test_wait_until(pump_until_finished, h, 30000));
	ck_assert_msg(!h->fin_failed, "%s", h->fin_err.msg);
}

static void h_stream(struct h *h)
{
	struct ls_source_cb cb = { .ctx = h, .on_begin = on_begin,
		.on_change = on_change, .on_commit = on_commit,
		.on_idle = on_idle, .on_restart = on_restart,
		.on_error = on_error };
	struct ls_err err = { 0 };
	ck_assert_msg(ls_pg_source_ops.stream(h->src, &cb, &err) == 0, "%s",
		err.msg);
}

static void on_closed(void *arg)
{
	((struct h *)arg)->closed = true;
}

static void h_close(struct h *h)
{
	ls_pg_source_ops.close(h->src, on_closed, h);
	while (!h->closed)
		uv_run(&h->loop, UV_RUN_ONCE);
	ck_assert_int_eq(uv_loop_close(&h->loop), 0);
	ls_config_free(h->cfg);
}

static int tindex(struct h *h, const char *name)
{
	for (int i = 0; i < h->tables.n; i++)
		if (!strcmp(h->tables.rels[i]->name, name))
			return i;
	ck_abort_msg("no table %s", name);
	return -1;
}

static uint64_t query_lsn(const char *db, const char *sql)
{
	char *v = ls_testpg_query1(pg, db, "%s", sql);
	uint64_t lsn = 0;
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(ls_pgsetup_lsn_parse(v, &lsn), 0);
	free(v);
	return lsn;
}

static uint64_t slot_confirmed(const char *slot)
{
	char sql[256];
	snprintf(sql, sizeof sql, "SELECT confirmed_flush_lsn FROM "
		"pg_replication_slots WHERE slot_name = '%s'", slot);
	return query_lsn(NULL, sql);
}

static uint64_t current_lsn(void)
{
	return query_lsn(NULL, "SELECT pg_current_wal_lsn()");
}

/* Conditions, each pumping the loop once before it looks. */
struct cond {
	struct h *h;
	bool (*fn)(struct cond *c);
	int want;
	uint64_t lsn;
};

static bool pump(void *ctx)
{
	struct cond *c = ctx;
	uv_run(&c->h->loop, UV_RUN_NOWAIT);
	return c->fn(c);
}

static bool wait_for(struct h *h, bool (*fn)(struct cond *), int want,
	uint64_t lsn, int ms)
{
	struct cond c = { .h = h, .fn = fn, .want = want, .lsn = lsn };
	return ls_test_wait_until(pump, &c, ms);
}

static bool commits_at_least(struct cond *c)
{
	return c->h->commits >= c->want;
}

static bool restarts_at_least(struct cond *c)
{
	return c->h->restarts >= c->want;
}

static bool idles_at_least(struct cond *c)
{
	return c->h->idles >= c->want;
}

static bool slot_at_least(struct cond *c)
{
	return slot_confirmed(c->h->slot) >= c->lsn;
}

static void schema3(const char *db)
{
	ls_testpg_exec(pg, NULL, "CREATE DATABASE %s", db);
	ls_testpg_exec(pg, db,
		"CREATE TABLE t1 (id int PRIMARY KEY, v text, amount numeric(10,2));"
		"CREATE TABLE t2 (a int, b varchar(20), c timestamptz,"
		"  PRIMARY KEY (b, a));"
		"CREATE TABLE t3 (k bigint PRIMARY KEY, j jsonb, f float8);"
		"ALTER TABLE t3 REPLICA IDENTITY FULL;"
		"CREATE TABLE other (x int PRIMARY KEY)");
}

/* ---- tests ----------------------------------------------------------------------- */

START_TEST(pgsource_prepare_returns_relations_with_keys_and_types)
{
	schema3("ops_prep");
	struct h *h = calloc(1, sizeof *h);
	h_open(h, "ops_prep", "prep", "initial");
	ck_assert_int_eq(h->tables.n, 3);
	ck_assert_ptr_nonnull(h->tables.est_rows);
	const struct ls_relation *t1 = h->tables.rels[tindex(h, "t1")];
	const struct ls_relation *t2 = h->tables.rels[tindex(h, "t2")];
	const struct ls_relation *t3 = h->tables.rels[tindex(h, "t3")];
	ck_assert_str_eq(t1->schema, "public");
	ck_assert_uint_eq(t1->ncols, 3);
	ck_assert_str_eq(t1->cols[0].name, "id");
	ck_assert_str_eq(t1->cols[0].type_name, "integer");
	ck_assert(t1->cols[0].flags & LS_COL_KEY);
	ck_assert(!(t1->cols[1].flags & LS_COL_KEY));
	ck_assert_str_eq(t1->cols[1].type_name, "text");
	ck_assert_str_eq(t1->cols[2].type_name, "numeric(10,2)");
	ck_assert_uint_eq(ls_relation_nkeys(t2), 2);
	ck_assert_str_eq(t2->cols[1].type_name, "character varying(20)");
	ck_assert_str_eq(t2->cols[2].type_name, "timestamp with time zone");
	ck_assert_uint_eq(t3->replident, LS_REPLIDENT_FULL);
	ck_assert_uint_eq(ls_relation_nkeys(t3), 1);
	ck_assert_str_eq(t3->cols[1].type_name, "jsonb");
	ck_assert_int_eq(ls_pg_source_ops.snapshot_progress(h->src, -1, NULL), 3);
	struct ls_source_progress p;
	ck_assert_int_eq(ls_pg_source_ops.snapshot_progress(h->src, 0, &p), 3);
	ck_assert_str_eq(p.state, "pending");
	/* the slot exists and the publication has exactly the three tables */
	char *n = ls_testpg_query1(pg, "ops_prep", "SELECT count(*) FROM "
		"pg_publication_tables WHERE pubname = 'lockstep_prep'");
	ck_assert_str_eq(n, "3");
	free(n);
	ck_assert_uint_gt(slot_confirmed(h->slot), 0);
	h_close(h);
	free(h);
}
END_TEST

START_TEST(pgsource_snapshot_meets_stream_at_slot_point)
{
	schema3("ops_snap");
	ls_testpg_exec(pg, "ops_snap",
		"INSERT INTO t1 SELECT g, 'r' || g, g FROM generate_series(1, 300) g;"
		"INSERT INTO t2 SELECT g, 'b' || g, now() FROM generate_series(1, 40) g;"
		"INSERT INTO t3 VALUES (1, '{}', 1.5)");
	struct h *h = calloc(1, sizeof *h);
	h_open(h, "ops_snap", "snap", "initial");
	uint64_t consistent = slot_confirmed(h->slot);
	/* committed after the slot: not in the copy, but in the stream */
	ls_testpg_exec(pg, "ops_snap",
		"INSERT INTO t1 SELECT g, 'late', 0 FROM generate_series(301, 305) g");
	h_snapshot(h);
	int i1 = tindex(h, "t1"), i2 = tindex(h, "t2"), i3 = tindex(h, "t3");
	ck_assert_uint_eq(atomic_load(&h->rows[i1]), 300);
	ck_assert_uint_eq(atomic_load(&h->done_rows[i1]), 300);
	ck_assert_uint_eq(atomic_load(&h->rows[i2]), 40);
	ck_assert_uint_eq(atomic_load(&h->rows[i3]), 1);
	for (int i = 0; i < 3; i++) {
		ck_assert_uint_eq(atomic_load(&h->at_start[i]), consistent);
		ck_assert_uint_eq(atomic_load(&h->at_done[i]), consistent);
	}
	struct ls_source_progress p;
	ls_pg_source_ops.snapshot_progress(h->src, i1, &p);
	ck_assert_str_eq(p.state, "done");
	ck_assert_uint_eq(p.rows, 300);

	h_stream(h);
	ck_assert(wait_for(h, commits_at_least, 1, 0, 20000));
	ck_assert_int_eq(h->inserts, 5);
	ck_assert_msg(strstr(h->log, "I t1 new=301,late,0.00\n") &&
		strstr(h->log, "I t1 new=305,late,0.00\nC\n"), "%s", h->log);
	ck_assert_uint_gt(h->last_seq, consistent);
	h_close(h);
	free(h);
}
END_TEST

START_TEST(pgsource_snapshot_never_skips_every_table)
{
	schema3("ops_never");
	ls_testpg_exec(pg, "ops_never", "INSERT INTO t1 VALUES (1, 'x', 1)");
	struct h *h = calloc(1, sizeof *h);
	h_open(h, "ops_never", "never", "never");
	h_snapshot(h);
	ck_assert_int_eq(atomic_load(&h->starts), 0);
	for (int i = 0; i < 3; i++) {
		struct ls_source_progress p;
		ls_pg_source_ops.snapshot_progress(h->src, i, &p);
		ck_assert_str_eq(p.state, "skipped");
	}
	h_close(h);
	free(h);
}
END_TEST

START_TEST(pgsource_stream_delivers_changes_in_order_with_values)
{
	schema3("ops_stream");
	struct h *h = calloc(1, sizeof *h);
	h_open(h, "ops_stream", "stream", "initial");
	h_snapshot(h);
	h_stream(h);
	ls_testpg_exec(pg, "ops_stream",
		"INSERT INTO t1 VALUES (1, 'one', 1.5), (2, NULL, 2)");
	ls_testpg_exec(pg, "ops_stream",
		"BEGIN; UPDATE t1 SET v = 'uno' WHERE id = 1;"
		"UPDATE t1 SET id = 20 WHERE id = 2;"
		"DELETE FROM t1 WHERE id = 1;"
		"INSERT INTO t3 VALUES (7, '{\"a\": 1}', 0.5);"
		"UPDATE t3 SET f = 2 WHERE k = 7;"
		"SELECT pg_logical_emit_message(true, 'lockstep', 'hb1');"
		"SELECT pg_logical_emit_message(true, 'someone', 'ignored');"
		"COMMIT");
	ls_testpg_exec(pg, "ops_stream", "TRUNCATE t1, t2");
	ls_testpg_exec(pg, "ops_stream", "INSERT INTO other VALUES (1)");
	ls_testpg_exec(pg, "ops_stream", "INSERT INTO t2 VALUES (1, 'x', "
		"'2024-01-02 03:04:05+00')");
	ck_assert(wait_for(h, commits_at_least, 4, 0, 20000));
	const char *want =
		"B\nI t1 new=1,one,1.50\nI t1 new=2,null,2.00\nC\n"
		"B\nU t1 new=1,uno,1.50\n"
		"U t1 old=2,null,null new=20,null,2.00\n"
		"D t1 old=1,null,null\n"
		"I t3 new=7,{\"a\": 1},0.5\n"
		"U t3 old=7,{\"a\": 1},0.5 new=7,{\"a\": 1},2\n"
		"M lockstep hb1\nC\n"
		"B\nT t1 t2\nC\n"
		"B\nI t2 new=1,x,2024-01-02 03:04:05+00\nC\n";
	ck_assert_str_eq(h->log, want);
	ck_assert_int_eq(h->begins, 4);
	ck_assert_int_eq(h->errors, 0);
	h_close(h);
	free(h);
}
END_TEST

START_TEST(pgsource_ack_moves_slot_only_after_ack)
{
	schema3("ops_ack");
	struct h *h = calloc(1, sizeof *h);
	h_open(h, "ops_ack", "ack", "initial");
	h_snapshot(h);
	h_stream(h);
	uint64_t before = slot_confirmed(h->slot);
	ls_testpg_exec(pg, "ops_ack", "INSERT INTO t1 VALUES (1, 'a', 1)");
	ck_assert(wait_for(h, commits_at_least, 1, 0, 20000));
	uint64_t ack = h->last_ack;
	ck_assert_uint_gt(ack, before);
	/* many status intervals (100 ms) pass: the slot must not move */
	ck_assert(!wait_for(h, slot_at_least, 0, ack, 800));
	ck_assert_uint_eq(slot_confirmed(h->slot), before);
	ls_pg_source_ops.ack(h->src, ack);
	ck_assert(wait_for(h, slot_at_least, 0, ack, 20000));

	struct ls_json *j = ls_json_new();
	ls_json_object_begin(j);
	ls_pg_source_ops.status(h->src, j);
	ls_json_object_end(j);
	const char *doc = ls_json_data(j, NULL);
	ck_assert_ptr_nonnull(doc);
	char t[LS_PG_LSN_TEXT_MAX], member[64];
	snprintf(member, sizeof member, "\"flushed_lsn\":\"%s\"",
		ls_pgsetup_lsn_format(ack, t));
	ck_assert_msg(strstr(doc, member) && strstr(doc, "\"state\":\"streaming\"")
		&& strstr(doc, "\"slot\":\"lockstep_ack\"") &&
		strstr(doc, "\"walsender_sent_lsn\":"), "%s", doc);
	ls_json_free(j);
	h_close(h);
	free(h);
}
END_TEST

START_TEST(pgsource_idle_ack_advances_slot_past_uncaptured_writes)
{
	schema3("ops_idle");
	struct h *h = calloc(1, sizeof *h);
	h_open(h, "ops_idle", "idle", "never");
	h_snapshot(h);
	h_stream(h);
	uint64_t before = slot_confirmed(h->slot);
	ls_testpg_exec(pg, "ops_idle", "INSERT INTO other SELECT g FROM "
		"generate_series(1, 1000) g");
	uint64_t written = current_lsn();
	ck_assert_uint_gt(written, before);
	/* keepalives arrive, but without ack_idle the slot stays */
	ck_assert(wait_for(h, idles_at_least, 1, 0, 20000));
	ck_assert(!wait_for(h, slot_at_least, 0, written, 600));
	h->ack_idle_on_idle = true;
	ls_testpg_exec(pg, "ops_idle", "INSERT INTO other VALUES (-1)");
	written = current_lsn();
	ck_assert(wait_for(h, slot_at_least, 0, written, 20000));
	ck_assert_int_eq(h->commits, 0);
	ck_assert_uint_ge(h->last_idle, written);
	h_close(h);
	free(h);
}
END_TEST

static const char *status_doc(struct h *h, struct ls_json *j)
{
	ls_json_reset(j);
	ls_json_object_begin(j);
	ls_pg_source_ops.status(h->src, j);
	ls_json_object_end(j);
	const char *doc = ls_json_data(j, NULL);
	ck_assert_ptr_nonnull(doc);
	return doc;
}

START_TEST(pgsource_pause_holds_changes_until_resume)
{
	schema3("ops_pause");
	struct h *h = calloc(1, sizeof *h);
	h_open(h, "ops_pause", "pause", "never");
	h_snapshot(h);
	h_stream(h);
	ls_testpg_exec(pg, "ops_pause", "INSERT INTO t1 VALUES (1, 'a', 1)");
	ck_assert(wait_for(h, commits_at_least, 1, 0, 20000));
	ls_pg_source_ops.pause(h->src);
	struct ls_json *j = ls_json_new();
	ck_assert_msg(strstr(status_doc(h, j), "\"state\":\"paused\""), "%s",
		status_doc(h, j));
	ls_testpg_exec(pg, "ops_pause", "INSERT INTO t1 VALUES (2, 'b', 2)");
	/* several status intervals: nothing is read while paused */
	ck_assert(!wait_for(h, commits_at_least, 2, 0, 800));
	ls_pg_source_ops.resume(h->src);
	ck_assert(wait_for(h, commits_at_least, 2, 0, 20000));
	ck_assert_msg(strstr(h->log, "I t1 new=2,b,2.00\nC\n"), "%s", h->log);
	ck_assert_msg(strstr(status_doc(h, j), "\"state\":\"streaming\""), "%s",
		status_doc(h, j));
	ls_json_free(j);
	h_close(h);
	free(h);
}
END_TEST

static bool tmp_slots_gone(void *ctx)
{
	(void)ctx;
	char *n = ls_testpg_query1(pg, NULL, "SELECT count(*) FROM "
		"pg_replication_slots WHERE slot_name LIKE 'lockstep_tmp_%%'");
	bool gone = !strcmp(n, "0");
	free(n);
	return gone;
}

START_TEST(pgsource_restart_copies_unfinished_table_in_temporary_slot)
{
	schema3("ops_restart");
	ls_testpg_exec(pg, "ops_restart",
		"INSERT INTO t1 SELECT g, 'r', g FROM generate_series(1, 50) g;"
		"INSERT INTO t2 SELECT g, 'b' || g, now() FROM generate_series(1, 20) g");
	struct h *h = calloc(1, sizeof *h);
	h_open(h, "ops_restart", "restart", "initial");
	uint64_t first = slot_confirmed(h->slot);
	h_snapshot(h);
	ck_assert_uint_eq(atomic_load(&h->at_done[tindex(h, "t2")]), first);
	h_close(h);   /* "crash": t2's copy never reached the target */

	ls_testpg_exec(pg, "ops_restart",
		"INSERT INTO t2 SELECT g, 'late' || g, now() FROM "
		"generate_series(21, 25) g");
	uint64_t after_writes = current_lsn();
	h_open(h, "ops_restart", "restart", "initial");
	h->copied[0] = "t1";
	h->copied[1] = "t3";
	h_snapshot(h);
	int i1 = tindex(h, "t1"), i2 = tindex(h, "t2"), i3 = tindex(h, "t3");
	ck_assert_int_eq(atomic_load(&h->starts), 1);
	ck_assert_uint_eq(atomic_load(&h->rows[i2]), 25);
	ck_assert_uint_eq(atomic_load(&h->rows[i1]), 0);
	uint64_t at = atomic_load(&h->at_done[i2]);
	ck_assert_uint_eq(atomic_load(&h->at_start[i2]), at);
	ck_assert_uint_gt(at, first);
	ck_assert_uint_ge(at, after_writes);
	struct ls_source_progress p;
	ls_pg_source_ops.snapshot_progress(h->src, i1, &p);
	ck_assert_str_eq(p.state, "skipped");
	ls_pg_source_ops.snapshot_progress(h->src, i3, &p);
	ck_assert_str_eq(p.state, "skipped");
	ls_pg_source_ops.snapshot_progress(h->src, i2, &p);
	ck_assert_str_eq(p.state, "done");
	/* the temporary slot went with its connection */
	ck_assert(ls_test_wait_until(tmp_slots_gone, NULL, 10000));
	/* the main slot still streams what happened while we were down */
	h_stream(h);
	ck_assert(wait_for(h, commits_at_least, 1, 0, 20000));
	ck_assert_int_eq(h->inserts, 5);
	ck_assert_uint_lt(h->last_seq, at);
	h_close(h);
	free(h);
}
END_TEST

START_TEST(pgsource_killed_walsender_restarts_without_losing_a_txn)
{
	schema3("ops_kill");
	struct h *h = calloc(1, sizeof *h);
	h_open(h, "ops_kill", "kill", "never");
	h_snapshot(h);
	h_stream(h);
	ls_testpg_exec(pg, "ops_kill", "INSERT INTO t1 VALUES (1, 'acked', 1)");
	ck_assert(wait_for(h, commits_at_least, 1, 0, 20000));
	ls_pg_source_ops.ack(h->src, h->last_ack);
	ck_assert(wait_for(h, slot_at_least, 0, h->last_ack, 20000));
	ls_testpg_exec(pg, "ops_kill", "INSERT INTO t1 VALUES (2, 'unacked', 2)");
	ck_assert(wait_for(h, commits_at_least, 2, 0, 20000));

	ls_testpg_exec(pg, NULL, "SELECT pg_terminate_backend(active_pid) FROM "
		"pg_replication_slots WHERE slot_name = '%s'", h->slot);
	ck_assert(wait_for(h, restarts_at_least, 1, 0, 20000));
	ls_testpg_exec(pg, "ops_kill", "INSERT INTO t1 VALUES (3, 'during', 3)");
	ck_assert(wait_for(h, commits_at_least, 4, 0, 30000));
	/* the unacknowledged transaction comes again, then the new one */
	const char *want =
		"B\nI t1 new=1,acked,1.00\nC\n"
		"B\nI t1 new=2,unacked,2.00\nC\n"
		"R\n"
		"B\nI t1 new=2,unacked,2.00\nC\n"
		"B\nI t1 new=3,during,3.00\nC\n";
	ck_assert_str_eq(h->log, want);
	h_close(h);
	free(h);
}
END_TEST

START_TEST(pgsource_ddl_relation_gets_type_names_from_catalog)
{
	schema3("ops_ddl");
	struct h *h = calloc(1, sizeof *h);
	h_open(h, "ops_ddl", "ddl", "never");
	h_snapshot(h);
	h_stream(h);
	ls_testpg_exec(pg, "ops_ddl", "INSERT INTO t3 VALUES (1, '[]', 1)");
	ck_assert(wait_for(h, commits_at_least, 1, 0, 20000));
	/* FULL identity: keys follow the primary key, not every column */
	ck_assert_str_eq(h->types, "bigint*,jsonb,double precision");
	ls_testpg_exec(pg, "ops_ddl", "ALTER TABLE t1 ADD COLUMN d numeric(5,1);"
		"ALTER TABLE t1 ALTER COLUMN v TYPE varchar(30);"
		"INSERT INTO t1 VALUES (1, 'x', 2, 3.25)");
	ck_assert(wait_for(h, commits_at_least, 2, 0, 20000));
	ck_assert_str_eq(h->types,
		"integer*,character varying(30),numeric(10,2),numeric(5,1)");
	ck_assert_msg(strstr(h->log, "I t1 new=1,x,2.00,3.3\n"), "%s", h->log);
	h_close(h);
	free(h);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("pg_source_ops");
	TCase *tc = tcase_create("pg");
	tcase_set_timeout(tc, 120);
	tcase_add_unchecked_fixture(tc, pg_setup_fixture, pg_teardown_fixture);
	tcase_add_test(tc, pgsource_prepare_returns_relations_with_keys_and_types);
	tcase_add_test(tc, pgsource_snapshot_meets_stream_at_slot_point);
	tcase_add_test(tc, pgsource_snapshot_never_skips_every_table);
	tcase_add_test(tc, pgsource_stream_delivers_changes_in_order_with_values);
	tcase_add_test(tc, pgsource_ack_moves_slot_only_after_ack);
	tcase_add_test(tc, pgsource_idle_ack_advances_slot_past_uncaptured_writes);
	tcase_add_test(tc, pgsource_pause_holds_changes_until_resume);
	tcase_add_test(tc, pgsource_ddl_relation_gets_type_names_from_catalog);
	tcase_add_test(tc, pgsource_restart_copies_unfinished_table_in_temporary_slot);
	tcase_add_test(tc, pgsource_killed_walsender_restarts_without_losing_a_txn);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
