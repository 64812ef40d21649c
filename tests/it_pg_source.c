/* it_pg_source — the PostgreSQL source's connection-level pieces against a
 * real PostgreSQL 15: readiness checks, table selection, the publication,
 * the slot and its exported snapshot (copy and stream meet exactly), and the
 * replication stream on a libuv loop (XLogData, durable-only feedback, idle
 * advance, reconnect after the walsender is killed).
 *
 * One logical cluster serves the suite (unchecked fixture); each test works
 * in its own database and slot.
 */
#include "connectors/postgres/pg_setup.h"
#include "connectors/postgres/pg_snapshot.h"
#include "connectors/postgres/pg_stream.h"
#include "tests/helpers/testsrv.h"

#include <check.h>
#include <pthread.h>
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

/* ---- helpers ------------------------------------------------------------------ */

static PGconn *connect_db(const char *db)
{
	PGconn *c = PQconnectdb(ls_testpg_conninfo(pg, db));
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	return c;
}

static void new_db(const char *db)
{
	ls_testpg_exec(pg, NULL, "CREATE DATABASE %s", db);
}

static long query_long(char *v)
{
	ck_assert_ptr_nonnull(v);
	long n = strtol(v, NULL, 10);
	free(v);
	return n;
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

/* Creates slot `slot` on db and returns its consistent point; the slot
 * object is freed at once (no snapshot needed). */
static uint64_t make_slot(const char *db, const char *slot)
{
	struct ls_pgslot_info info;
	struct ls_err err = { 0 };
	struct ls_pgslot *s = ls_pgslot_open(ls_testpg_conninfo(pg, db), slot,
		&info, &err);
	ck_assert_msg(s != NULL, "%s", err.msg);
	ck_assert(info.created);
	ls_pgslot_free(s);
	return info.consistent_lsn;
}

static void drop_slot(const char *slot)
{
	ls_testpg_exec(pg, NULL, "SELECT pg_drop_replication_slot(slot_name) "
		"FROM pg_replication_slots WHERE slot_name = '%s'", slot);
}

/* Selects and publishes `include` on db as publication `pub`. */
static void publish(PGconn *c, const char *include, const char *pub,
	struct ls_pg_tables *ts)
{
	struct ls_err err = { 0 };
	ck_assert_msg(ls_pgsetup_select_tables(c, include, NULL, ts, &err) == 0,
		"%s", err.msg);
	ck_assert_msg(ls_pgsetup_publication_ensure(c, pub, ts, NULL, &err) == 0,
		"%s", err.msg);
}

/* ---- a stream receiver ---------------------------------------------------------- */

#define MAX_IDS 20000
#define MAX_COMMITS 256

struct rx {
	uv_loop_t loop;
	struct ls_pgstream *s;
	int inserts;
	int ids[MAX_IDS];              /* first column of inserted rows */
	int nids;
	uint64_t commits[MAX_COMMITS]; /* commit end LSNs, in order received */
	int ncommits;
	int errors, retryable_errors, starts, keepalives;
	char last_err[LS_ERR_MSG_MAX];
	bool closed;
};

static uint32_t be32(const char *p)
{
	return ((uint32_t)(uint8_t)p[0] << 24) | ((uint32_t)(uint8_t)p[1] << 16) |
		((uint32_t)(uint8_t)p[2] << 8) | (uint8_t)p[3];
}

static uint64_t be64(const char *p)
{
	return ((uint64_t)be32(p) << 32) | be32(p + 4);
}

/* Just enough pgoutput v1 for the tests: Insert's first column, Commit's
 * end LSN. */
static void on_xlogdata(struct ls_pgstream *s, uint64_t start, uint64_t end,
	int64_t t, const char *d, size_t n)
{
	struct rx *rx = ls_pgstream_data(s);
	(void)end;
	(void)t;
	if (n >= 13 && d[0] == 'I' && d[5] == 'N' && d[8] == 't') {
		uint32_t len = be32(d + 9);
		char num[32];
		snprintf(num, sizeof num, "%.*s", (int)(len < 31 ? len : 31), d + 13);
		rx->inserts++;
		if (rx->nids < MAX_IDS)
			rx->ids[rx->nids++] = atoi(num);
	} else if (n >= 26 && d[0] == 'C') {
		ck_assert_uint_eq(be64(d + 10), start);
		if (rx->ncommits < MAX_COMMITS)
			rx->commits[rx->ncommits++] = be64(d + 10);
	}
}

static void on_keepalive(struct ls_pgstream *s, uint64_t end, int64_t t,
	bool reply)
{
	struct rx *rx = ls_pgstream_data(s);
	(void)end;
	(void)t;
	(void)reply;
	rx->keepalives++;
}

static void on_streaming(struct ls_pgstream *s, uint64_t lsn)
{
	struct rx *rx = ls_pgstream_data(s);
	(void)lsn;
	rx->starts++;
}

static void on_error(struct ls_pgstream *s, const struct ls_err *err)
{
	struct rx *rx = ls_pgstream_data(s);
	rx->errors++;
	rx->retryable_errors += err->retryable;
	snprintf(rx->last_err, sizeof rx->last_err, "%s", err->msg);
}

static void rx_start(struct rx *rx, const char *db, const char *slot,
	const char *pub, uint64_t start_lsn)
{
	memset(rx, 0, sizeof *rx);
	ck_assert_int_eq(uv_loop_init(&rx->loop), 0);
	struct ls_pgstream_opts o = {
		.conninfo = ls_testpg_conninfo(pg, db), .slot = slot,
		.publication = pub, .proto_version = 1, .start_lsn = start_lsn,
		.feedback_interval_ms = 100, .reconnect_base_ms = 50,
		.reconnect_cap_ms = 400,
	};
	struct ls_pgstream_cbs cbs = { .on_xlogdata = on_xlogdata,
		.on_streaming = on_streaming, .on_error = on_error,
		.on_keepalive = on_keepalive };
	struct ls_err err = { 0 };
	rx->s = ls_pgstream_new(&rx->loop, &o, &cbs, rx, &err);
	ck_assert_msg(rx->s != NULL, "%s", err.msg);
	ck_assert_msg(ls_pgstream_start(rx->s, &err) == 0, "%s", err.msg);
}

static void on_closed(void *data)
{
	((struct rx *)data)->closed = true;
}

static void rx_close(struct rx *rx)
{
	ls_pgstream_close(rx->s, on_closed);
	while (!rx->closed)
		uv_run(&rx->loop, UV_RUN_ONCE);
	ck_assert_int_eq(uv_loop_close(&rx->loop), 0);
}

/* Runs the loop a little (never blocking) and then tests a condition;
 * used through ls_test_wait_until so every wait has a deadline. */
struct cond {
	struct rx *rx;
	bool (*fn)(struct cond *c);
	int want;
	uint64_t lsn;
	const char *slot;
};

static bool pump(void *ctx)
{
	struct cond *c = ctx;
	uv_run(&c->rx->loop, UV_RUN_NOWAIT);
	return c->fn(c);
}

static bool wait_for(struct cond *c, int ms)
{
	return ls_test_wait_until(pump, c, ms);
}

static bool streaming(struct cond *c)
{
	return c->rx->starts >= c->want;
}

static bool inserts_at_least(struct cond *c)
{
	return c->rx->inserts >= c->want;
}

static bool commits_at_least(struct cond *c)
{
	return c->rx->ncommits >= c->want;
}

static bool slot_at(struct cond *c)
{
	return slot_confirmed(c->slot) == c->lsn;
}

static bool slot_at_least(struct cond *c)
{
	return slot_confirmed(c->slot) >= c->lsn;
}

static bool errored(struct cond *c)
{
	return c->rx->errors >= c->want;
}

static bool keepalive_after(struct cond *c)
{
	return c->rx->keepalives >= c->want;
}

/* Sends a status update asking for a reply and waits for the server's
 * keepalive: the walsender has then processed the update (it confirms the
 * slot position before its answer goes out). */
static void roundtrip(struct rx *rx)
{
	struct cond c = { .rx = rx, .fn = keepalive_after,
		.want = rx->keepalives + 1 };
	ck_assert_int_eq(ls_pgstream_send_feedback(rx->s, true), 0);
	ck_assert_msg(wait_for(&c, 10000), "no reply to a status update");
}

static bool wal_end_at_least(struct cond *c)
{
	struct ls_pgstream_stats st;
	ls_pgstream_stats(c->rx->s, &st);
	return st.server_wal_end >= c->lsn;
}

/* ---- readiness ------------------------------------------------------------------ */

START_TEST(pgsetup_wal_level_replica_is_refused)
{
	struct ls_testpg *rep = ls_testpg_start("wal_level = replica");
	PGconn *c = PQconnectdb(ls_testpg_conninfo(rep, NULL));
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_pgsetup_check_ready(c, NULL, NULL, &err), -1);
	ck_assert_msg(strstr(err.msg, "wal_level is replica") &&
		strstr(err.msg, "set wal_level = logical in postgresql.conf and "
		"restart"), "%s", err.msg);
	ck_assert(!err.retryable);
	PQfinish(c);
	ls_testpg_stop(rep);
}
END_TEST

START_TEST(pgsetup_table_without_key_is_named_with_the_fix)
{
	new_db("ready_keys");
	ls_testpg_exec(pg, "ready_keys",
		"CREATE TABLE withpk (id int PRIMARY KEY);"
		"CREATE TABLE nokey (a int, b text);"
		"CREATE TABLE byindex (a int NOT NULL, b text);"
		"CREATE UNIQUE INDEX byindex_a ON byindex (a);"
		"ALTER TABLE byindex REPLICA IDENTITY USING INDEX byindex_a;"
		"CREATE TABLE parted (id int, k int) PARTITION BY RANGE (id);"
		"CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10)");
	PGconn *c = connect_db("ready_keys");
	struct ls_pg_tables ts;
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_pgsetup_select_tables(c, "public.*", NULL, &ts, &err),
		0);
	ck_assert_int_eq(ls_pgsetup_check_ready(c, &ts, NULL, &err), -1);
	ck_assert_msg(strstr(err.msg, "nokey") && strstr(err.msg, "parted_1") &&
		strstr(err.msg, "REPLICA IDENTITY") && strstr(err.msg,
		"primary key"), "%s", err.msg);
	ck_assert_msg(!strstr(err.msg, "withpk") && !strstr(err.msg, "byindex"),
		"%s", err.msg);
	ck_assert(!ls_pgsetup_tables_find(&ts, "public", "nokey")->has_identity);
	ck_assert(ls_pgsetup_tables_find(&ts, "public", "byindex")->has_identity);

	ls_testpg_exec(pg, "ready_keys", "ALTER TABLE nokey REPLICA IDENTITY FULL;"
		"ALTER TABLE parted_1 REPLICA IDENTITY FULL;"
		"ALTER TABLE parted REPLICA IDENTITY FULL");
	ck_assert_msg(ls_pgsetup_check_ready(c, &ts, NULL, &err) == 0, "%s",
		err.msg);
	ls_pgsetup_tables_free(&ts);
	PQfinish(c);
}
END_TEST

START_TEST(pgsetup_role_without_replication_is_refused)
{
	new_db("ready_role");
	ls_testpg_exec(pg, NULL, "CREATE ROLE plain_user LOGIN");
	char info[512];
	snprintf(info, sizeof info, "%s user=plain_user",
		ls_testpg_conninfo(pg, "ready_role"));
	PGconn *c = PQconnectdb(info);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_pgsetup_check_ready(c, NULL, NULL, &err), -1);
	ck_assert_msg(strstr(err.msg, "ALTER ROLE plain_user REPLICATION"), "%s",
		err.msg);
	ck_assert_msg(!strstr(err.msg, "wal_level"), "%s", err.msg);
	PQfinish(c);

	ls_testpg_exec(pg, NULL, "ALTER ROLE plain_user REPLICATION");
	c = PQconnectdb(info);
	ck_assert_msg(ls_pgsetup_check_ready(c, NULL, NULL, &err) == 0, "%s",
		err.msg);
	PQfinish(c);
}
END_TEST

/* ---- selection ------------------------------------------------------------------- */

START_TEST(pgsetup_patterns_select_tables_and_columns)
{
	new_db("select_db");
	ls_testpg_exec(pg, "select_db",
		"CREATE SCHEMA sales;"
		"CREATE TABLE orders (id bigint PRIMARY KEY, total numeric(10,2) "
		"  NOT NULL, note varchar(40), tags text[],"
		"  doubled bigint GENERATED ALWAYS AS (id * 2) STORED);"
		"INSERT INTO orders (id, total) SELECT g, g FROM generate_series(1, 500) g;"
		"ANALYZE orders;"
		"CREATE TABLE audit_log (id int PRIMARY KEY);"
		"CREATE TABLE audit_x (id int PRIMARY KEY);"
		"CREATE TABLE \"Mixed\" (id int PRIMARY KEY);"
		"CREATE TABLE events (id int, at date, PRIMARY KEY (id, at))"
		"  PARTITION BY RANGE (at);"
		"CREATE TABLE events_2024 PARTITION OF events"
		"  FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');"
		"CREATE TABLE sales.items (sku text, qty int);"
		"CREATE TABLE sales.other (id int PRIMARY KEY);"
		"CREATE TEMP TABLE tmp (id int)");
	PGconn *c = connect_db("select_db");
	struct ls_pg_tables ts;
	struct ls_err err = { 0 };
	ck_assert_msg(ls_pgsetup_select_tables(c, " public.* , sales.items",
		"public.audit_*", &ts, &err) == 0, "%s", err.msg);
	const char *want[][2] = { { "public", "Mixed" }, { "public", "events" },
		{ "public", "orders" }, { "sales", "items" } };
	ck_assert_int_eq(ts.n, 4);
	for (int i = 0; i < 4; i++) {
		ck_assert_str_eq(ts.t[i].schema, want[i][0]);
		ck_assert_str_eq(ts.t[i].name, want[i][1]);
	}
	const struct ls_pg_table *ev = ls_pgsetup_tables_find(&ts, "public",
		"events");
	ck_assert(ev->partitioned);
	ck_assert_int_eq(ev->ncols, 2);
	ck_assert(ev->cols[0].key && ev->cols[1].key);

	const struct ls_pg_table *o = &ts.t[2];
	ck_assert_int_eq(o->ncols, 4);   /* the generated column is left out */
	ck_assert_str_eq(o->cols[0].name, "id");
	ck_assert(o->cols[0].key && o->cols[0].not_null);
	ck_assert_str_eq(o->cols[1].type_name, "numeric(10,2)");
	ck_assert(!o->cols[1].key && o->cols[1].not_null);
	ck_assert_str_eq(o->cols[2].type_name, "character varying(40)");
	ck_assert_int_eq(o->cols[2].typmod, 44);
	ck_assert_str_eq(o->cols[3].type_name, "text[]");
	ck_assert_uint_eq(o->cols[3].type_oid, 1009);
	ck_assert(o->est_rows > 400 && o->est_rows < 600);
	ck_assert(o->size_bytes > 0);
	ck_assert_uint_eq(o->oid, query_long(ls_testpg_query1(pg, "select_db",
		"SELECT 'public.orders'::regclass::oid")));
	ck_assert_int_eq(ts.t[3].cols[0].key, false);   /* sales.items: none */

	struct ls_relation *r = ls_pgsetup_table_relation(o);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(ls_relation_nkeys(r), 1);
	ck_assert_str_eq(r->cols[1].type_name, "numeric(10,2)");
	ls_relation_free(r);
	ls_pgsetup_tables_free(&ts);

	ck_assert_int_eq(ls_pgsetup_select_tables(c, "public.nosuch", NULL, &ts,
		&err), -1);
	ck_assert_msg(strstr(err.msg, "public.nosuch not found"), "%s", err.msg);
	ls_pgsetup_tables_free(&ts);
	ck_assert_int_eq(ls_pgsetup_select_tables(c, "orders", NULL, &ts, &err),
		-1);
	ck_assert_msg(strstr(err.msg, "schema.table"), "%s", err.msg);
	ls_pgsetup_tables_free(&ts);
	ck_assert_int_eq(ls_pgsetup_select_tables(c, "nope_*.*", NULL, &ts, &err),
		-1);
	ck_assert_msg(strstr(err.msg, "no table matches"), "%s", err.msg);
	ls_pgsetup_tables_free(&ts);
	PQfinish(c);

	ck_assert(ls_pgsetup_pattern_match("a.*x*y", "a", "12x34y"));
	ck_assert(!ls_pgsetup_pattern_match("a.*x*y", "a", "12x34yz"));
	ck_assert(ls_pgsetup_pattern_match("*.*", "s", "t"));
	ck_assert(!ls_pgsetup_pattern_match("pub*.t", "sales", "t"));
}
END_TEST

/* ---- publication ----------------------------------------------------------------- */

static char *pub_tables(const char *db, const char *pub)
{
	return ls_testpg_query1(pg, db, "SELECT string_agg(prrelid::regclass::text,"
		" ',' ORDER BY prrelid::regclass::text) FROM pg_publication_rel r"
		" JOIN pg_publication p ON p.oid = r.prpubid WHERE p.pubname = '%s'",
		pub);
}

START_TEST(pgsetup_publication_is_created_reused_and_altered)
{
	new_db("pub_db");
	ls_testpg_exec(pg, "pub_db", "CREATE TABLE a (id int PRIMARY KEY);"
		"CREATE TABLE b (id int PRIMARY KEY);"
		"CREATE TABLE \"Odd name\" (id int PRIMARY KEY)");
	PGconn *c = connect_db("pub_db");
	struct ls_pg_tables ts;
	struct ls_err err = { 0 };
	enum ls_pgsetup_pub_action act;
	ck_assert_int_eq(ls_pgsetup_select_tables(c, "public.a,public.Odd name",
		NULL, &ts, &err), 0);
	ck_assert_msg(ls_pgsetup_publication_ensure(c, "lockstep_pubtest", &ts,
		&act, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(act, LS_PGSETUP_PUB_CREATED);
	char *v = pub_tables("pub_db", "lockstep_pubtest");
	ck_assert_str_eq(v, "\"Odd name\",a");
	free(v);
	v = ls_testpg_query1(pg, "pub_db", "SELECT pubviaroot AND pubtruncate "
		"FROM pg_publication WHERE pubname = 'lockstep_pubtest'");
	ck_assert_str_eq(v, "t");
	free(v);

	ck_assert_int_eq(ls_pgsetup_publication_ensure(c, "lockstep_pubtest", &ts,
		&act, &err), 0);
	ck_assert_int_eq(act, LS_PGSETUP_PUB_UNCHANGED);
	ls_pgsetup_tables_free(&ts);

	ck_assert_int_eq(ls_pgsetup_select_tables(c, "public.*", "public.Odd*",
		&ts, &err), 0);
	ck_assert_int_eq(ls_pgsetup_publication_ensure(c, "lockstep_pubtest", &ts,
		&act, &err), 0);
	ck_assert_int_eq(act, LS_PGSETUP_PUB_ALTERED);
	v = pub_tables("pub_db", "lockstep_pubtest");
	ck_assert_str_eq(v, "a,b");
	free(v);

	/* options changed behind our back are brought back in line */
	ls_testpg_exec(pg, "pub_db", "ALTER PUBLICATION lockstep_pubtest SET "
		"(publish = 'insert')");
	ck_assert_int_eq(ls_pgsetup_publication_ensure(c, "lockstep_pubtest", &ts,
		&act, &err), 0);
	ck_assert_int_eq(act, LS_PGSETUP_PUB_ALTERED);
	v = ls_testpg_query1(pg, "pub_db", "SELECT pubupdate AND pubdelete FROM "
		"pg_publication WHERE pubname = 'lockstep_pubtest'");
	ck_assert_str_eq(v, "t");
	free(v);

	ls_testpg_exec(pg, "pub_db", "CREATE PUBLICATION lockstep_all FOR ALL "
		"TABLES");
	ck_assert_int_eq(ls_pgsetup_publication_ensure(c, "lockstep_all", &ts,
		&act, &err), -1);
	ck_assert_msg(strstr(err.msg, "FOR ALL TABLES"), "%s", err.msg);
	ls_pgsetup_tables_free(&ts);
	PQfinish(c);
}
END_TEST

/* ---- slot ------------------------------------------------------------------------- */

START_TEST(pgslot_is_created_then_reused_and_checked)
{
	new_db("slot_db");
	struct ls_pgslot_info info;
	struct ls_err err = { 0 };
	const char *ci = ls_testpg_conninfo(pg, "slot_db");
	struct ls_pgslot *s = ls_pgslot_open(ci, "lockstep_slot1", &info, &err);
	ck_assert_msg(s != NULL, "%s", err.msg);
	ck_assert(info.created);
	ck_assert(info.snapshot_name[0] != '\0');
	ck_assert(info.consistent_lsn > 0);
	ls_pgslot_free(s);

	s = ls_pgslot_open(ci, "lockstep_slot1", &info, &err);
	ck_assert_msg(s != NULL, "%s", err.msg);
	ck_assert(!info.created);
	ck_assert_str_eq(info.snapshot_name, "");
	ck_assert_uint_eq(info.confirmed_flush, slot_confirmed("lockstep_slot1"));
	ls_pgslot_free(s);

	new_db("slot_db2");   /* the same slot from another database */
	s = ls_pgslot_open(ls_testpg_conninfo(pg, "slot_db2"), "lockstep_slot1",
		&info, &err);
	ck_assert_ptr_null(s);
	ck_assert_msg(strstr(err.msg, "belongs to database slot_db"), "%s",
		err.msg);
	ls_testpg_exec(pg, NULL, "SELECT pg_create_logical_replication_slot("
		"'lockstep_wrongplugin', 'test_decoding')");
	s = ls_pgslot_open(ci, "lockstep_wrongplugin", &info, &err);
	ck_assert_ptr_null(s);
	ck_assert_msg(strstr(err.msg, "not a logical pgoutput slot"), "%s",
		err.msg);
	s = ls_pgslot_open(ci, "Bad-Name", &info, &err);
	ck_assert_ptr_null(s);
	drop_slot("lockstep_slot1");
	drop_slot("lockstep_wrongplugin");
}
END_TEST

/* ---- snapshot and stream meet exactly --------------------------------------------- */

struct inserter {
	const char *conninfo;
	atomic_bool stop;
	atomic_int done;
};

static void *insert_loop(void *arg)
{
	struct inserter *in = arg;
	PGconn *c = PQconnectdb(in->conninfo);
	while (!atomic_load(&in->stop) && PQstatus(c) == CONNECTION_OK) {
		PGresult *r = PQexec(c, "INSERT INTO snap_t (v) VALUES ('live')");
		if (PQresultStatus(r) == PGRES_COMMAND_OK)
			atomic_fetch_add(&in->done, 1);
		PQclear(r);
	}
	PQfinish(c);
	return NULL;
}

static bool inserted_at_least(void *ctx)
{
	struct inserter *in = ((void **)ctx)[0];
	return atomic_load(&in->done) >= *(int *)((void **)ctx)[1];
}

struct sink {
	pthread_mutex_t mu;
	int *seen;                     /* copies per snap_t id */
	int max_id;
	int copied;
	int starts, dones, other_rows, bad_lines;
	uint64_t done_rows;
};

static int sink_start(void *ctx, int worker, const struct ls_pg_table *t)
{
	struct sink *k = ctx;
	(void)worker;
	(void)t;
	pthread_mutex_lock(&k->mu);
	k->starts++;
	pthread_mutex_unlock(&k->mu);
	return 0;
}

static int sink_data(void *ctx, int worker, const struct ls_pg_table *t,
	const char *d, size_t n)
{
	struct sink *k = ctx;
	(void)worker;
	pthread_mutex_lock(&k->mu);
	if (n == 0 || d[n - 1] != '\n')
		k->bad_lines++;
	for (size_t i = 0; i < n; i++) {
		const char *nl = memchr(d + i, '\n', n - i);
		if (nl == NULL)
			break;
		if (!strcmp(t->name, "snap_t")) {
			int id = atoi(d + i);
			if (id > 0 && id <= k->max_id)
				k->seen[id]++;
			k->copied++;
		} else {
			k->other_rows++;
		}
		i = (size_t)(nl - d);
	}
	pthread_mutex_unlock(&k->mu);
	return 0;
}

static int sink_done(void *ctx, int worker, const struct ls_pg_table *t,
	uint64_t rows)
{
	struct sink *k = ctx;
	(void)worker;
	pthread_mutex_lock(&k->mu);
	k->dones++;
	if (!strcmp(t->name, "snap_t"))
		k->done_rows = rows;
	pthread_mutex_unlock(&k->mu);
	return 0;
}

static bool snap_finished(void *ctx)
{
	return ls_pgsnap_finished(ctx);
}

START_TEST(pgsnap_copy_and_stream_meet_exactly_at_the_slot)
{
	new_db("snap_db");
	ls_testpg_exec(pg, "snap_db",
		"CREATE TABLE snap_t (id serial PRIMARY KEY, v text);"
		"INSERT INTO snap_t (v) SELECT 'before' FROM generate_series(1, 3000);"
		"CREATE TABLE side (id int PRIMARY KEY);"
		"INSERT INTO side SELECT generate_series(1, 700);"
		"CREATE TABLE done_already (id int PRIMARY KEY);"
		"INSERT INTO done_already VALUES (1);"
		"ANALYZE");
	PGconn *c = connect_db("snap_db");
	struct ls_pg_tables ts;
	publish(c, "public.*", "lockstep_snap", &ts);
	ck_assert_int_eq(ts.n, 3);

	struct inserter in = { .conninfo = ls_testpg_conninfo(pg, "snap_db") };
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, insert_loop, &in), 0);
	int want = 50;
	void *wctx[2] = { &in, &want };
	ck_assert(ls_test_wait_until(inserted_at_least, wctx, 20000));

	struct ls_pgslot_info info;
	struct ls_err err = { 0 };
	struct ls_pgslot *slot = ls_pgslot_open(ls_testpg_conninfo(pg, "snap_db"),
		"lockstep_snap", &info, &err);
	ck_assert_msg(slot != NULL, "%s", err.msg);
	ck_assert(info.created);
	want = atomic_load(&in.done) + 100;
	ck_assert(ls_test_wait_until(inserted_at_least, wctx, 20000));
	atomic_store(&in.stop, true);
	pthread_join(th, NULL);

	int total = (int)query_long(ls_testpg_query1(pg, "snap_db",
		"SELECT count(*) FROM snap_t"));
	ck_assert_int_eq(query_long(ls_testpg_query1(pg, "snap_db",
		"SELECT max(id) FROM snap_t")), total);   /* no gaps */
	struct sink k = { .max_id = total };
	pthread_mutex_init(&k.mu, NULL);
	k.seen = calloc((size_t)total + 1, sizeof *k.seen);
	const char *skip[] = { "public.done_already" };
	struct ls_pgsnap_opts so = { .conninfo = ls_testpg_conninfo(pg, "snap_db"),
		.snapshot_name = info.snapshot_name, .workers = 2, .skip = skip,
		.nskip = 1 };
	struct ls_pgsnap_sink sk = { sink_start, sink_data, sink_done, &k };
	struct ls_pgsnap *snap = ls_pgsnap_start(&so, &ts, &sk, &err);
	ck_assert_msg(snap != NULL, "%s", err.msg);
	ck_assert(ls_test_wait_until(snap_finished, snap, 60000));
	ck_assert_msg(ls_pgsnap_wait(snap, &err) == 0, "%s", err.msg);
	ls_pgslot_free(slot);

	int si = (int)(ls_pgsetup_tables_find(&ts, "public", "snap_t") - ts.t);
	int di = (int)(ls_pgsetup_tables_find(&ts, "public", "done_already") - ts.t);
	struct ls_pgsnap_progress p;
	ls_pgsnap_progress(snap, si, &p);
	ck_assert_int_eq(p.state, LS_PGSNAP_DONE);
	ck_assert_uint_eq(p.rows, (uint64_t)k.copied);
	ck_assert_uint_eq(p.est_rows, 3000);
	ls_pgsnap_progress(snap, di, &p);
	ck_assert_int_eq(p.state, LS_PGSNAP_SKIPPED);
	ls_pgsnap_free(snap);
	ck_assert_int_eq(k.starts, 2);
	ck_assert_int_eq(k.dones, 2);
	ck_assert_int_eq(k.other_rows, 700);
	ck_assert_int_eq(k.bad_lines, 0);
	ck_assert_uint_eq(k.done_rows, (uint64_t)k.copied);
	/* the copy holds the rows before the slot and none of the later ones */
	ck_assert_int_ge(k.copied, 3050);
	ck_assert_int_lt(k.copied, total - 99);

	struct rx *rx = malloc(sizeof *rx);
	rx_start(rx, "snap_db", "lockstep_snap", "lockstep_snap", 0);
	struct cond cd = { .rx = rx, .fn = inserts_at_least,
		.want = total - k.copied };
	ck_assert_msg(wait_for(&cd, 30000), "stream gave %d of %d rows (%s)",
		rx->inserts, total - k.copied, rx->last_err);
	for (int i = 0; i < rx->nids; i++) {
		ck_assert(rx->ids[i] > 0 && rx->ids[i] <= total);
		k.seen[rx->ids[i]]++;
	}
	for (int id = 1; id <= total; id++)
		ck_assert_msg(k.seen[id] == 1, "row %d seen %d times (copy %d rows)",
			id, k.seen[id], k.copied);
	ck_assert_int_eq(rx->errors, 0);
	rx_close(rx);
	free(rx);
	free(k.seen);
	ls_pgsetup_tables_free(&ts);
	PQfinish(c);
	drop_slot("lockstep_snap");
}
END_TEST

/* ---- the stream ------------------------------------------------------------------- */

START_TEST(pgstream_receives_inserts_made_after_the_slot)
{
	new_db("stream_db");
	ls_testpg_exec(pg, "stream_db", "CREATE TABLE t (id int PRIMARY KEY)");
	PGconn *c = connect_db("stream_db");
	struct ls_pg_tables ts;
	publish(c, "public.t", "lockstep_s1", &ts);
	ls_testpg_exec(pg, "stream_db", "INSERT INTO t VALUES (1)");
	make_slot("stream_db", "lockstep_s1");
	ls_testpg_exec(pg, "stream_db", "BEGIN; INSERT INTO t VALUES (2), (3);"
		"INSERT INTO t VALUES (4); COMMIT");
	struct rx *rx = malloc(sizeof *rx);
	rx_start(rx, "stream_db", "lockstep_s1", "lockstep_s1", 0);
	struct cond cd = { .rx = rx, .fn = commits_at_least, .want = 1 };
	ck_assert_msg(wait_for(&cd, 20000), "%s", rx->last_err);
	ck_assert_int_eq(rx->starts, 1);
	ck_assert_int_eq(rx->inserts, 3);
	ck_assert_int_eq(rx->ids[0], 2);
	ck_assert_int_eq(rx->ids[2], 4);
	struct ls_pgstream_stats st;
	ls_pgstream_stats(rx->s, &st);
	ck_assert(st.streaming);
	ck_assert_uint_ge(st.received, rx->commits[0]);
	ck_assert_uint_eq(st.flushed, 0);

	/* paused, nothing is delivered (a bounded look, not a timing wait);
	 * resumed, the row arrives */
	ls_pgstream_pause(rx->s);
	ls_testpg_exec(pg, "stream_db", "INSERT INTO t VALUES (5)");
	cd.fn = inserts_at_least;
	cd.want = 4;
	ck_assert(!wait_for(&cd, 500));
	ck_assert_int_eq(rx->inserts, 3);
	ls_pgstream_resume(rx->s);
	ck_assert_msg(wait_for(&cd, 20000), "%s", rx->last_err);
	ck_assert_int_eq(rx->ids[3], 5);
	rx_close(rx);
	free(rx);
	ls_pgsetup_tables_free(&ts);
	PQfinish(c);
	drop_slot("lockstep_s1");
}
END_TEST

START_TEST(pgstream_feedback_moves_slot_only_to_flushed)
{
	new_db("fb_db");
	ls_testpg_exec(pg, "fb_db", "CREATE TABLE t (id int PRIMARY KEY)");
	PGconn *c = connect_db("fb_db");
	struct ls_pg_tables ts;
	publish(c, "public.t", "lockstep_fb", &ts);
	uint64_t cp = make_slot("fb_db", "lockstep_fb");
	for (int i = 1; i <= 3; i++)
		ls_testpg_exec(pg, "fb_db", "INSERT INTO t VALUES (%d)", i);
	struct rx *rx = malloc(sizeof *rx);
	rx_start(rx, "fb_db", "lockstep_fb", "lockstep_fb", 0);
	struct cond cd = { .rx = rx, .fn = commits_at_least, .want = 3 };
	ck_assert_msg(wait_for(&cd, 20000), "%s", rx->last_err);

	/* received but not durable: several status updates later, the slot
	 * has not moved */
	struct ls_pgstream_stats st;
	roundtrip(rx);
	roundtrip(rx);
	ck_assert_uint_eq(slot_confirmed("lockstep_fb"), cp);

	ls_pgstream_set_flushed(rx->s, rx->commits[1]);
	cd.fn = slot_at;
	cd.slot = "lockstep_fb";
	cd.lsn = rx->commits[1];
	ck_assert_msg(wait_for(&cd, 10000), "slot at %lx, want %lx",
		(unsigned long)slot_confirmed("lockstep_fb"),
		(unsigned long)rx->commits[1]);
	ck_assert_uint_lt(rx->commits[1], rx->commits[2]);
	/* more updates (and a lower set_flushed) do not move it further */
	ls_pgstream_set_flushed(rx->s, rx->commits[0]);
	roundtrip(rx);
	ck_assert_uint_eq(slot_confirmed("lockstep_fb"), rx->commits[1]);
	ls_pgstream_stats(rx->s, &st);
	ck_assert_uint_eq(st.reported, rx->commits[1]);
	rx_close(rx);
	free(rx);
	ls_pgsetup_tables_free(&ts);
	PQfinish(c);
	drop_slot("lockstep_fb");
}
END_TEST

START_TEST(pgstream_idle_advance_moves_slot_when_nothing_pending)
{
	new_db("idle_db");
	ls_testpg_exec(pg, "idle_db", "CREATE TABLE t (id int PRIMARY KEY);"
		"CREATE TABLE other (id int)");
	PGconn *c = connect_db("idle_db");
	struct ls_pg_tables ts;
	publish(c, "public.t", "lockstep_idle", &ts);
	uint64_t cp = make_slot("idle_db", "lockstep_idle");
	struct rx *rx = malloc(sizeof *rx);
	rx_start(rx, "idle_db", "lockstep_idle", "lockstep_idle", 0);
	struct cond cd = { .rx = rx, .fn = streaming, .want = 1,
		.slot = "lockstep_idle" };
	ck_assert_msg(wait_for(&cd, 20000), "%s", rx->last_err);

	/* writes the stream does not capture: keepalives carry the position,
	 * but without the idle mark the slot stays */
	uint64_t before = query_lsn(NULL, "SELECT pg_current_wal_lsn()");
	ls_testpg_exec(pg, "idle_db", "INSERT INTO other SELECT "
		"generate_series(1, 100)");
	cd.fn = wal_end_at_least;
	cd.lsn = before + 1;
	ck_assert_msg(wait_for(&cd, 20000), "no keepalive past the write");
	roundtrip(rx);
	ck_assert_uint_eq(slot_confirmed("lockstep_idle"), cp);
	ck_assert_int_eq(rx->inserts, 0);

	ls_pgstream_mark_idle(rx->s);
	cd.fn = slot_at_least;
	cd.lsn = before + 1;
	ck_assert_msg(wait_for(&cd, 20000), "slot stayed at %lx",
		(unsigned long)slot_confirmed("lockstep_idle"));

	/* an uncaptured write while idle keeps advancing it */
	before = query_lsn(NULL, "SELECT pg_current_wal_lsn()");
	ls_testpg_exec(pg, "idle_db", "INSERT INTO other VALUES (1)");
	cd.lsn = before + 1;
	ck_assert_msg(wait_for(&cd, 20000), "slot stayed at %lx",
		(unsigned long)slot_confirmed("lockstep_idle"));

	/* a captured change clears the mark: the slot waits for set_flushed */
	ls_testpg_exec(pg, "idle_db", "INSERT INTO t VALUES (1)");
	cd.fn = commits_at_least;
	cd.want = 1;
	ck_assert(wait_for(&cd, 20000));
	uint64_t held = slot_confirmed("lockstep_idle");
	before = query_lsn(NULL, "SELECT pg_current_wal_lsn()");
	ls_testpg_exec(pg, "idle_db", "INSERT INTO other VALUES (2)");
	cd.fn = wal_end_at_least;
	cd.lsn = before + 1;
	ck_assert(wait_for(&cd, 20000));
	roundtrip(rx);
	ck_assert_uint_lt(slot_confirmed("lockstep_idle"), rx->commits[0]);
	ck_assert_uint_eq(slot_confirmed("lockstep_idle"), held);
	rx_close(rx);
	free(rx);
	ls_pgsetup_tables_free(&ts);
	PQfinish(c);
	drop_slot("lockstep_idle");
}
END_TEST

START_TEST(pgstream_reconnects_after_walsender_is_killed)
{
	new_db("kill_db");
	ls_testpg_exec(pg, "kill_db", "CREATE TABLE t (id int PRIMARY KEY)");
	PGconn *c = connect_db("kill_db");
	struct ls_pg_tables ts;
	publish(c, "public.t", "lockstep_kill", &ts);
	make_slot("kill_db", "lockstep_kill");
	ls_testpg_exec(pg, "kill_db", "INSERT INTO t VALUES (1)");
	ls_testpg_exec(pg, "kill_db", "INSERT INTO t VALUES (2)");
	struct rx *rx = malloc(sizeof *rx);
	rx_start(rx, "kill_db", "lockstep_kill", "lockstep_kill", 0);
	struct cond cd = { .rx = rx, .fn = commits_at_least, .want = 2 };
	ck_assert_msg(wait_for(&cd, 20000), "%s", rx->last_err);
	/* the first transaction is durable, the second is not */
	ls_pgstream_set_flushed(rx->s, rx->commits[0]);

	ls_testpg_exec(pg, NULL, "SELECT pg_terminate_backend(active_pid) FROM "
		"pg_replication_slots WHERE slot_name = 'lockstep_kill'");
	cd.fn = errored;
	cd.want = 1;
	ck_assert(wait_for(&cd, 20000));
	ck_assert_int_eq(rx->retryable_errors, 1);
	ck_assert_msg(strstr(rx->last_err, "terminat") ||
		strstr(rx->last_err, "receiving"), "%s", rx->last_err);
	ck_assert_msg(!strstr(rx->last_err, "port="), "%s", rx->last_err);
	ls_testpg_exec(pg, "kill_db", "INSERT INTO t VALUES (3)");

	cd.fn = commits_at_least;
	cd.want = 4;   /* 1, 2, then 2 again (not durable) and 3 */
	ck_assert_msg(wait_for(&cd, 30000), "%d commits, %d starts, %s",
		rx->ncommits, rx->starts, rx->last_err);
	ck_assert_int_ge(rx->starts, 2);
	ck_assert_uint_eq(rx->commits[2], rx->commits[1]);
	ck_assert_uint_gt(rx->commits[3], rx->commits[2]);
	ck_assert_int_eq(rx->inserts, 4);
	ck_assert_int_eq(rx->ids[2], 2);
	ck_assert_int_eq(rx->ids[3], 3);
	struct ls_pgstream_stats st;
	ls_pgstream_stats(rx->s, &st);
	ck_assert_uint_ge(st.reconnects, 1);
	rx_close(rx);
	free(rx);
	ls_pgsetup_tables_free(&ts);
	PQfinish(c);
	drop_slot("lockstep_kill");
}
END_TEST

START_TEST(pgstream_missing_slot_is_a_fatal_error)
{
	new_db("noslot_db");
	struct rx *rx = malloc(sizeof *rx);
	rx_start(rx, "noslot_db", "lockstep_none", "lockstep_none", 0);
	struct cond cd = { .rx = rx, .fn = errored, .want = 1 };
	ck_assert(wait_for(&cd, 20000));
	ck_assert_int_eq(rx->retryable_errors, 0);
	ck_assert_msg(strstr(rx->last_err, "slot lockstep_none does not exist"),
		"%s", rx->last_err);
	rx_close(rx);
	free(rx);
}
END_TEST

static Suite *pg_source_suite(void)
{
	Suite *s = suite_create("pg_source");
	TCase *tc = tcase_create("pg");
	tcase_set_timeout(tc, 120);
	tcase_add_unchecked_fixture(tc, pg_setup_fixture, pg_teardown_fixture);
	tcase_add_test(tc, pgsetup_wal_level_replica_is_refused);
	tcase_add_test(tc, pgsetup_table_without_key_is_named_with_the_fix);
	tcase_add_test(tc, pgsetup_role_without_replication_is_refused);
	tcase_add_test(tc, pgsetup_patterns_select_tables_and_columns);
	tcase_add_test(tc, pgsetup_publication_is_created_reused_and_altered);
	tcase_add_test(tc, pgslot_is_created_then_reused_and_checked);
	tcase_add_test(tc, pgsnap_copy_and_stream_meet_exactly_at_the_slot);
	tcase_add_test(tc, pgstream_receives_inserts_made_after_the_slot);
	tcase_add_test(tc, pgstream_feedback_moves_slot_only_to_flushed);
	tcase_add_test(tc, pgstream_idle_advance_moves_slot_when_nothing_pending);
	tcase_add_test(tc, pgstream_reconnects_after_walsender_is_killed);
	tcase_add_test(tc, pgstream_missing_slot_is_a_fatal_error);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pg_source_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
