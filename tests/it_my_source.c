/* it_my_source — the MariaDB source's server-facing pieces against a real
 * MariaDB 10.11: connection strings, readiness checks, the purged-binlog
 * check, table selection, per-table snapshots that meet the binlog stream
 * exactly under concurrent inserts, and the binlog reader on a libuv loop
 * (event order, GTID resume, server restart).
 *
 * One server serves the suite (unchecked fixture); tests that need another
 * configuration start their own.  Each test works in its own database.
 * Rows events are decoded here only for tables with a single INT NOT NULL
 * column (the real decoder is my_rows).
 */
#include "connectors/mysql/my_binlog.h"
#include "connectors/mysql/my_setup.h"
#include "connectors/mysql/my_snapshot.h"
#include "tests/helpers/testsrv.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct ls_testmy *my;

static void my_setup_fixture(void)
{
	my = ls_testmy_start(NULL);
}

static void my_teardown_fixture(void)
{
	ls_testmy_stop(my);
	my = NULL;
}

/* ---- helpers ------------------------------------------------------------------ */

static void parse_conn(const char *info, struct ls_myconn *c)
{
	struct ls_err err = { 0 };
	ck_assert_msg(ls_mysetup_conn_parse(info, c, &err) == 0, "%s", err.msg);
}

static MYSQL *connect_as(const char *info)
{
	struct ls_myconn c;
	struct ls_err err = { 0 };
	parse_conn(info, &c);
	MYSQL *m = ls_mysetup_connect(&c, 10, &err);
	ls_mysetup_conn_free(&c);
	ck_assert_msg(m != NULL, "%s", err.msg);
	return m;
}

static char *gtid_pos(void)
{
	char *v = ls_testmy_query1(my, NULL, "SELECT @@gtid_binlog_pos");
	ck_assert_ptr_nonnull(v);
	return v;
}

static uint64_t gtid_seq(const char *set_text)
{
	struct ls_gtid_set s;
	ck_assert_int_eq(ls_gtid_set_parse(set_text, &s, NULL), 0);
	const struct ls_gtid *g = ls_gtid_set_find(&s, 0);
	return g ? g->seq : 0;
}

/* Rotates the binlog and purges every older file.  MariaDB keeps a file
 * until InnoDB's binlog checkpoint has left it, so retry until it is gone. */
static bool purged_to(void *ctx)
{
	const char *file = ctx;
	ls_testmy_exec(my, NULL, "PURGE BINARY LOGS TO '%s'", file);
	char *oldest = ls_testmy_query1(my, NULL, "SHOW BINARY LOGS");
	bool ok = oldest && strcmp(oldest, file) == 0;
	free(oldest);
	if (!ok)
		ls_testmy_exec(my, NULL, "FLUSH ENGINE LOGS");
	return ok;
}

static void purge_all(void)
{
	ls_testmy_exec(my, NULL, "FLUSH BINARY LOGS");
	char *file = ls_testmy_query1(my, NULL, "SHOW MASTER STATUS");
	ck_assert_ptr_nonnull(file);
	ck_assert_msg(ls_test_wait_until(purged_to, file, 10000),
		"binlogs before %s not purged", file);
	free(file);
}

/* ---- pure pieces ------------------------------------------------------------- */

START_TEST(myconn_parses_keys_quotes_and_hides_the_password)
{
	struct ls_myconn c;
	struct ls_err err = { 0 };

	ck_assert_int_eq(ls_mysetup_conn_parse("host=db1 port=3307 user=rep "
		"password='s3 cr\\'et' database=shop", &c, &err), 0);
	ck_assert_str_eq(c.host, "db1");
	ck_assert_uint_eq(c.port, 3307);
	ck_assert_str_eq(c.user, "rep");
	ck_assert_str_eq(c.password, "s3 cr'et");
	ck_assert_str_eq(c.database, "shop");
	ls_mysetup_conn_free(&c);

	ck_assert_int_eq(ls_mysetup_conn_parse("user=x", &c, &err), 0);
	ck_assert_str_eq(c.host, "127.0.0.1");
	ck_assert_uint_eq(c.port, 3306);
	ck_assert_str_eq(c.password, "");
	ls_mysetup_conn_free(&c);

	ck_assert_int_eq(ls_mysetup_conn_parse("password=hunter22 port=x", &c, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "port"));
	ck_assert_ptr_null(strstr(err.msg, "hunter22"));
	ls_mysetup_conn_free(&c);
	ck_assert_int_eq(ls_mysetup_conn_parse("password='hunter22", &c, &err), -1);
	ck_assert_ptr_null(strstr(err.msg, "hunter22"));
	ls_mysetup_conn_free(&c);
	ck_assert_int_eq(ls_mysetup_conn_parse("hostname=a", &c, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "unknown key \"hostname\""));
	ls_mysetup_conn_free(&c);
}
END_TEST

START_TEST(mysetup_patterns_members_and_server_ids)
{
	ck_assert(ls_mysetup_pattern_match("shop.*", "shop", "orders"));
	ck_assert(ls_mysetup_pattern_match("x.y, shop.ord*", "shop", "orders"));
	ck_assert(!ls_mysetup_pattern_match("shop.ord*", "shop2", "orders"));
	ck_assert(!ls_mysetup_pattern_match("shop.orders", "shop", "Orders"));

	char **m;
	ck_assert_int_eq(ls_mysetup_parse_members("enum('a','b''c','d\\\\e')", &m), 3);
	ck_assert_str_eq(m[0], "a");
	ck_assert_str_eq(m[1], "b'c");
	ck_assert_str_eq(m[2], "d\\e");
	for (int i = 0; i < 3; i++)
		free(m[i]);
	free(m);
	ck_assert_int_eq(ls_mysetup_parse_members("int(11)", &m), 0);
	ck_assert_int_eq(ls_mysetup_parse_members("set('a'", &m), -1);

	uint32_t id = ls_mybinlog_server_id("shop", 1);
	ck_assert_uint_ne(id, 1);
	ck_assert_uint_eq(id, ls_mybinlog_server_id("shop", 1));
	ck_assert_uint_ne(ls_mybinlog_server_id("shop", id), id);
	ck_assert_uint_ne(ls_mybinlog_server_id("other", 1), id);
	/* origin tags: stable, apart from every derived replica id */
	uint32_t o = ls_mybinlog_origin_id("lockstep_shop");
	ck_assert_uint_eq(o, ls_mybinlog_origin_id("lockstep_shop"));
	ck_assert_uint_ne(o, ls_mybinlog_origin_id("lockstep_shop_rev"));
	ck_assert_uint_ge(o, 0x80000000u);
	ck_assert_uint_lt(o, 0xffffffffu);
	ck_assert_uint_lt(ls_mybinlog_server_id("lockstep_shop", 1), 0x80000000u);
}
END_TEST

/* ---- readiness --------------------------------------------------------------- */

START_TEST(mysetup_ready_server_passes_and_reports_gtid)
{
	MYSQL *m = connect_as(ls_testmy_conninfo(my, NULL));
	struct ls_myserver info;
	struct ls_err err = { 0 };
	ls_testmy_exec(my, NULL, "CREATE DATABASE rdy; CREATE TABLE rdy.t "
		"(id INT PRIMARY KEY); INSERT INTO rdy.t VALUES (1)");
	ck_assert_msg(ls_mysetup_check_ready(m, &info, &err) == 0, "%s", err.msg);
	ck_assert(info.mariadb);
	ck_assert_uint_eq(info.server_id, 1);
	ck_assert_str_eq(info.binlog_checksum, "CRC32");
	ck_assert_uint_gt(gtid_seq(info.gtid_pos), 0);
	mysql_close(m);
}
END_TEST

START_TEST(mysetup_user_without_replication_grants_is_refused)
{
	char info[256];
	struct ls_err err = { 0 };
	ls_testmy_exec(my, NULL, "CREATE USER 'lim'@'127.0.0.1' IDENTIFIED BY "
		"'sekrit99'; GRANT SELECT ON *.* TO 'lim'@'127.0.0.1'");
	snprintf(info, sizeof info, "host=127.0.0.1 port=%d user=lim "
		"password=sekrit99", ls_testmy_port(my));
	MYSQL *m = connect_as(info);
	ck_assert_int_eq(ls_mysetup_check_ready(m, NULL, &err), -1);
	ck_assert_msg(strstr(err.msg, "REPLICATION SLAVE") != NULL, "%s", err.msg);
	ck_assert_msg(strstr(err.msg, "GRANT REPLICATION SLAVE ON *.*") != NULL,
		"%s", err.msg);
	ck_assert_msg(strstr(err.msg, "REPLICATION CLIENT") != NULL, "%s", err.msg);
	ck_assert_ptr_null(strstr(err.msg, "sekrit99"));
	mysql_close(m);

	/* With the grants the same user passes. */
	ls_testmy_exec(my, NULL, "GRANT REPLICATION SLAVE, REPLICATION CLIENT "
		"ON *.* TO 'lim'@'127.0.0.1'");
	m = connect_as(info);
	ck_assert_msg(ls_mysetup_check_ready(m, NULL, &err) == 0, "%s", err.msg);
	mysql_close(m);

	/* A bad password: the error names the user, never the password. */
	snprintf(info, sizeof info, "host=127.0.0.1 port=%d user=lim "
		"password=wrong77", ls_testmy_port(my));
	struct ls_myconn c;
	parse_conn(info, &c);
	ck_assert_ptr_null(ls_mysetup_connect(&c, 5, &err));
	ck_assert_ptr_nonnull(strstr(err.msg, "\"lim\""));
	ck_assert_ptr_null(strstr(err.msg, "wrong77"));
	ls_mysetup_conn_free(&c);
}
END_TEST

START_TEST(mysetup_statement_binlog_is_refused_with_the_fix)
{
	struct ls_testmy *st = ls_testmy_start("binlog_format=STATEMENT\n"
		"binlog_row_image=MINIMAL");
	MYSQL *m = connect_as(ls_testmy_conninfo(st, NULL));
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_mysetup_check_ready(m, NULL, &err), -1);
	ck_assert_msg(strstr(err.msg, "binlog_format is STATEMENT, need ROW") != NULL,
		"%s", err.msg);
	ck_assert_msg(strstr(err.msg, "SET GLOBAL binlog_format = 'ROW'") != NULL,
		"%s", err.msg);
	ck_assert_msg(strstr(err.msg, "binlog_row_image is MINIMAL") != NULL,
		"%s", err.msg);
	mysql_close(m);
	ls_testmy_stop(st);
}
END_TEST

START_TEST(mysetup_resume_behind_purged_binlog_is_refused)
{
	MYSQL *m = connect_as(ls_testmy_conninfo(my, NULL));
	struct ls_err err = { 0 };
	struct ls_gtid_set old, now;

	ls_testmy_exec(my, NULL, "CREATE DATABASE prg; CREATE TABLE prg.t "
		"(id INT PRIMARY KEY); INSERT INTO prg.t VALUES (1)");
	char *o = gtid_pos();
	ck_assert_int_eq(ls_gtid_set_parse(o, &old, NULL), 0);
	ck_assert_msg(ls_mysetup_check_resume(m, &old, &err) == 0, "%s", err.msg);
	ls_testmy_exec(my, NULL, "INSERT INTO prg.t VALUES (2)");
	purge_all();
	char *n = gtid_pos();
	ck_assert_int_eq(ls_gtid_set_parse(n, &now, NULL), 0);

	ck_assert_int_eq(ls_mysetup_check_resume(m, &old, &err), -1);
	ck_assert_msg(strstr(err.msg, "binlog already purged past the needed "
		"position") != NULL, "%s", err.msg);
	ck_assert_msg(strstr(err.msg, "re-snapshot") != NULL, "%s", err.msg);
	ck_assert_msg(ls_mysetup_check_resume(m, &now, &err) == 0, "%s", err.msg);
	free(o);
	free(n);
	mysql_close(m);
}
END_TEST

/* ---- table selection ---------------------------------------------------------- */

START_TEST(mysetup_selects_tables_with_keys_unsigned_and_enums)
{
	MYSQL *m = connect_as(ls_testmy_conninfo(my, NULL));
	struct ls_mytables tabs;
	struct ls_err err = { 0 };

	ls_testmy_exec(my, NULL, "CREATE DATABASE sel;"
		"CREATE TABLE sel.t_pk (id INT UNSIGNED NOT NULL, k2 BIGINT NOT NULL,"
		" e ENUM('a','b''c') NULL, s SET('x','y'), name VARCHAR(10) "
		"CHARACTER SET utf8mb4, bin VARBINARY(4), PRIMARY KEY (k2, id));"
		"CREATE TABLE sel.t_uniq (v INT, code CHAR(3) NOT NULL, "
		"UNIQUE KEY (code));"
		"CREATE TABLE sel.t_nullu (a INT NULL, UNIQUE KEY (a));"
		"CREATE TABLE sel.t_my (id INT PRIMARY KEY) ENGINE=MyISAM;"
		"INSERT INTO sel.t_pk VALUES (1, 2, 'a', 'x,y', 'n', 0x00ff)");

	ck_assert_msg(ls_mysetup_select_tables(m, "sel.t_*", "sel.t_nullu, "
		"sel.t_my", &tabs, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(tabs.n, 2);
	const struct ls_mytable *t = ls_mysetup_tables_find(&tabs, "sel", "t_pk");
	ck_assert_ptr_nonnull(t);
	ck_assert_str_eq(t->engine, "InnoDB");
	ck_assert(t->primary_key);
	ck_assert_int_eq(t->ncols, 6);
	ck_assert_str_eq(t->cols[0].name, "id");
	ck_assert_str_eq(t->cols[0].column_type, "int(10) unsigned");
	ck_assert_str_eq(t->cols[0].data_type, "int");
	ck_assert(t->cols[0].is_unsigned && t->cols[0].key && !t->cols[0].nullable);
	ck_assert(t->cols[1].key && !t->cols[1].is_unsigned);
	ck_assert(!t->cols[2].key && t->cols[2].nullable);
	ck_assert_int_eq(t->cols[2].nmembers, 2);
	ck_assert_str_eq(t->cols[2].members[1], "b'c");
	ck_assert_uint_eq(t->cols[2].type_code, MYSQL_TYPE_ENUM);
	ck_assert_int_eq(t->cols[3].nmembers, 2);
	ck_assert_uint_eq(t->cols[3].type_code, MYSQL_TYPE_SET);
	ck_assert_str_eq(t->cols[4].charset, "utf8mb4");
	ck_assert(!t->cols[4].binary && t->cols[5].binary);
	ck_assert_ptr_null(t->cols[5].charset);

	struct ls_relation *r = ls_mysetup_table_relation(t, 7);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->id, 7);
	ck_assert_uint_eq(ls_relation_nkeys(r), 2);
	ck_assert_str_eq(r->cols[0].type_name, "int(10) unsigned");
	ck_assert_uint_eq(r->cols[0].type_oid, MYSQL_TYPE_LONG);
	ck_assert_uint_eq(r->replident, LS_REPLIDENT_DEFAULT);
	ls_relation_free(r);

	t = ls_mysetup_tables_find(&tabs, "sel", "t_uniq");
	ck_assert_ptr_nonnull(t);
	ck_assert(!t->primary_key);
	ck_assert(!t->cols[0].key && t->cols[1].key);
	ls_mysetup_tables_free(&tabs);

	/* Everything: the MyISAM table and the keyless one are refused, by name. */
	ck_assert_int_eq(ls_mysetup_select_tables(m, "sel.*", NULL, &tabs, &err), -1);
	ck_assert_msg(strstr(err.msg, "sel.t_my uses engine MyISAM, which is not "
		"transactional") != NULL, "%s", err.msg);
	ck_assert_msg(strstr(err.msg, "sel.t_nullu has no PRIMARY KEY") != NULL,
		"%s", err.msg);
	ls_mysetup_tables_free(&tabs);

	/* A missing exact table is named; so is an empty selection. */
	ck_assert_int_eq(ls_mysetup_select_tables(m, "sel.nope", NULL, &tabs, &err), -1);
	ck_assert_msg(strstr(err.msg, "sel.nope not found") != NULL, "%s", err.msg);
	ls_mysetup_tables_free(&tabs);
	ck_assert_int_eq(ls_mysetup_select_tables(m, "zz*.*", NULL, &tabs, &err), -1);
	ck_assert_msg(strstr(err.msg, "no table matches") != NULL, "%s", err.msg);
	ls_mysetup_tables_free(&tabs);
	mysql_close(m);
}
END_TEST

/* ---- binlog collection on a loop ------------------------------------------------ */

#define MAX_IDS 20000

struct rec {
	uint8_t type;
	struct ls_mybinlog_gtid gtid;      /* GTID */
	struct ls_binlog_pos pos;
	int ids[8];                        /* WRITE_ROWS decoded ids */
	int nids;
	char table[64];                    /* WRITE_ROWS: table name */
	char db[64], sql[128];             /* QUERY */
};

struct coll {
	uv_loop_t loop;
	uv_timer_t tick;
	struct ls_mybinlog *b;
	struct rec *r;
	int n, cap;
	int xids, errors, retryable, reconnects;
	char last_err[LS_ERR_MSG_MAX];
	/* table id -> name, from TABLE_MAP */
	uint64_t map_id[64];
	char map_name[64][64];
	int nmap;
	/* committed-only view (restart test) */
	struct ls_gtid_set done;
	int pending[64], npending;
	int committed[MAX_IDS];
	bool closed;
};

/* Ids of a WRITE_ROWS event for a table of one INT NOT NULL column. */
static int decode_ids(const struct ls_mybinlog_event *ev, int *ids, int max)
{
	const uint8_t *p = ev->data + LS_MYEV_HEADER_LEN, *end = ev->data + ev->len;
	int n = 0;
	p += 8;                                /* table id, flags */
	if (ev->type == LS_MYEV_WRITE_ROWS)
		p += p[0] | p[1] << 8;         /* v2 extra data (length includes itself) */
	if (p >= end || *p != 1)
		return -1;                     /* one column */
	p += 2;                                /* column count, present bitmap */
	while (p + 5 <= end && n < max) {
		ids[n++] = (int)((uint32_t)p[1] | (uint32_t)p[2] << 8 |
			(uint32_t)p[3] << 16 | (uint32_t)p[4] << 24);
		p += 5;                        /* null bitmap, int */
	}
	return n;
}

static void on_event(struct ls_mybinlog *b, const struct ls_mybinlog_event *ev)
{
	struct coll *c = ls_mybinlog_data(b);
	if (ev->type == LS_MYEV_HEARTBEAT || ev->type == LS_MYEV_FORMAT_DESCRIPTION ||
	    ev->type == LS_MYEV_ROTATE || ev->type == LS_MYEV_GTID_LIST ||
	    ev->type == LS_MYEV_BINLOG_CHECKPOINT || ev->type == LS_MYEV_ANNOTATE_ROWS)
		return;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 256;
		c->r = realloc(c->r, sizeof *c->r * (size_t)c->cap);
		ck_assert_ptr_nonnull(c->r);
	}
	struct rec *r = &c->r[c->n++];
	memset(r, 0, sizeof *r);
	r->type = ev->type;
	r->pos = ev->pos;
	if (ev->type == LS_MYEV_GTID) {
		ck_assert_int_eq(ls_mybinlog_parse_gtid(ev, &r->gtid), 0);
		c->npending = 0;
	} else if (ev->type == LS_MYEV_QUERY) {
		struct ls_mybinlog_query q;
		ck_assert_int_eq(ls_mybinlog_parse_query(ev, &q), 0);
		snprintf(r->db, sizeof r->db, "%.*s", (int)q.db_len, q.db);
		snprintf(r->sql, sizeof r->sql, "%.*s", (int)q.sql_len, q.sql);
	} else if (ev->type == LS_MYEV_TABLE_MAP) {
		struct ls_mybinlog_table_map tm;
		ck_assert_int_eq(ls_mybinlog_parse_table_map(ev, &tm), 0);
		int k = 0;
		while (k < c->nmap && c->map_id[k] != tm.table_id)
			k++;
		ck_assert_int_lt(k, 64);
		c->map_id[k] = tm.table_id;
		snprintf(c->map_name[k], 64, "%.*s", (int)tm.table_len, tm.table);
		if (k == c->nmap)
			c->nmap++;
	} else if (ev->type == LS_MYEV_WRITE_ROWS_V1 || ev->type == LS_MYEV_WRITE_ROWS) {
		uint64_t tid;
		ck_assert_int_eq(ls_mybinlog_rows_table_id(ev, &tid), 0);
		for (int i = c->nmap - 1; i >= 0; i--)
			if (c->map_id[i] == tid) {
				snprintf(r->table, sizeof r->table, "%s", c->map_name[i]);
				break;
			}
		r->nids = decode_ids(ev, r->ids, 8);
		for (int i = 0; i < r->nids && c->npending < 64; i++)
			c->pending[c->npending++] = r->ids[i];
	} else if (ev->type == LS_MYEV_XID) {
		struct rec *g = NULL;
		char text[LS_POS_TEXT_MAX];
		for (int i = c->n - 1; i >= 0 && !g; i--)
			if (c->r[i].type == LS_MYEV_GTID)
				g = &c->r[i];
		c->xids++;
		for (int i = 0; i < c->npending; i++)
			if (c->pending[i] >= 0 && c->pending[i] < MAX_IDS)
				c->committed[c->pending[i]]++;
		c->npending = 0;
		if (g) {
			ck_assert_int_eq(ls_gtid_set_add(&c->done, &g->gtid.gtid, NULL), 0);
			ls_gtid_set_format(&c->done, text, sizeof text);
			ck_assert_int_eq(ls_mybinlog_set_resume(b, text), 0);
		}
	}
}

static void on_error(struct ls_mybinlog *b, const struct ls_err *err)
{
	struct coll *c = ls_mybinlog_data(b);
	c->errors++;
	c->retryable += err->retryable;
	snprintf(c->last_err, sizeof c->last_err, "%s", err->msg);
}

static void on_reconnect(struct ls_mybinlog *b, const char *from)
{
	struct coll *c = ls_mybinlog_data(b);
	(void)from;
	c->reconnects++;
	c->npending = 0;           /* an unfinished transaction comes again */
}

static void on_tick(uv_timer_t *t)
{
	(void)t;                   /* keeps uv_run(ONCE) from blocking long */
}

static void coll_start_hb(struct coll *c, const char *start_gtid, int heartbeat_ms)
{
	static const struct ls_mybinlog_cbs cbs = { on_event, on_error, on_reconnect };
	struct ls_myconn conn;
	struct ls_err err = { 0 };
	memset(c, 0, sizeof *c);
	ls_gtid_set_parse(start_gtid, &c->done, NULL);
	ck_assert_int_eq(uv_loop_init(&c->loop), 0);
	uv_timer_init(&c->loop, &c->tick);
	uv_timer_start(&c->tick, on_tick, 10, 10);
	parse_conn(ls_testmy_conninfo(my, NULL), &conn);
	struct ls_mybinlog_opts o = {
		.conn = &conn, .name = "it_my_source", .source_server_id = 1,
		.start_gtid = start_gtid, .heartbeat_ms = heartbeat_ms,
		.read_timeout_s = heartbeat_ms / 1000 + 30,
		.reconnect_base_ms = 100, .reconnect_cap_ms = 500,
	};
	c->b = ls_mybinlog_start(&c->loop, &o, &cbs, c, &err);
	ls_mysetup_conn_free(&conn);
	ck_assert_msg(c->b != NULL, "%s", err.msg);
}

static void coll_start(struct coll *c, const char *start_gtid)
{
	coll_start_hb(c, start_gtid, 200);
}

static bool pump(struct coll *c, bool (*cond)(struct coll *, int), int arg,
		 int timeout_ms)
{
	uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
	while (!cond(c, arg) && uv_hrtime() < deadline)
		uv_run(&c->loop, UV_RUN_ONCE);
	return cond(c, arg);
}

static void on_closed(void *data)
{
	((struct coll *)data)->closed = true;
}

static bool is_closed(struct coll *c, int arg)
{
	(void)arg;
	return c->closed;
}

static void coll_stop(struct coll *c)
{
	ls_mybinlog_close(c->b, on_closed);
	ck_assert_msg(pump(c, is_closed, 0, 5000), "binlog reader did not close");
	uv_close((uv_handle_t *)&c->tick, NULL);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&c->loop), 0);
	free(c->r);
}

static bool errored(struct coll *c, int arg)
{
	(void)arg;
	return c->errors > 0;
}

static bool xids_at_least(struct coll *c, int n)
{
	return c->xids >= n;
}

START_TEST(mybinlog_sees_gtid_table_map_rows_xid_in_order)
{
	struct coll c;
	ls_testmy_exec(my, NULL, "CREATE DATABASE evt; CREATE TABLE evt.t "
		"(id INT NOT NULL PRIMARY KEY)");
	char *start = gtid_pos();
	coll_start(&c, start);
	for (int i = 1; i <= 5; i++)
		ls_testmy_exec(my, "evt", "INSERT INTO t VALUES (%d)", i);
	ls_testmy_exec(my, "evt", "CREATE TABLE t2 (id INT PRIMARY KEY)");
	ls_testmy_exec(my, "evt", "INSERT INTO t VALUES (6)");
	ck_assert_msg(pump(&c, xids_at_least, 6, 10000), "got %d xids", c.xids);

	/* 5 x (GTID TABLE_MAP WRITE_ROWS XID), GTID QUERY(DDL), GTID TM WR XID */
	ck_assert_int_eq(c.n, 5 * 4 + 2 + 4);
	uint64_t prev = gtid_seq(start);
	int id = 1;
	for (int i = 0; i < c.n;) {
		struct rec *g = &c.r[i];
		ck_assert_uint_eq(g->type, LS_MYEV_GTID);
		ck_assert_uint_eq(g->gtid.gtid.seq, prev + 1);
		ck_assert_uint_eq(g->gtid.gtid.server, 1);
		prev = g->gtid.gtid.seq;
		if (c.r[i + 1].type == LS_MYEV_QUERY) {
			ck_assert(g->gtid.flags & LS_MYGTID_STANDALONE);
			i += 2;
			continue;
		}
		ck_assert(!(g->gtid.flags & LS_MYGTID_STANDALONE));
		ck_assert_uint_eq(c.r[i + 1].type, LS_MYEV_TABLE_MAP);
		ck_assert(c.r[i + 2].type == LS_MYEV_WRITE_ROWS_V1 ||
			  c.r[i + 2].type == LS_MYEV_WRITE_ROWS);
		ck_assert_str_eq(c.r[i + 2].table, "t");
		ck_assert_int_eq(c.r[i + 2].nids, 1);
		ck_assert_int_eq(c.r[i + 2].ids[0], id++);
		ck_assert_uint_eq(c.r[i + 3].type, LS_MYEV_XID);
		ck_assert_int_gt(ls_binlog_pos_cmp(&c.r[i + 3].pos, &g->pos), 0);
		i += 4;
	}
	ck_assert_int_eq(id, 7);
	ck_assert_int_eq(c.errors, 0);
	char *end = gtid_pos();
	ck_assert_uint_eq(prev, gtid_seq(end));
	coll_stop(&c);
	free(start);
	free(end);
}
END_TEST

START_TEST(mybinlog_query_event_carries_ddl_and_db)
{
	struct coll c;
	char *start = gtid_pos();
	coll_start(&c, start);
	ls_testmy_exec(my, NULL, "CREATE DATABASE qdb");
	ls_testmy_exec(my, "qdb", "CREATE TABLE q1 (id INT PRIMARY KEY)");
	ls_testmy_exec(my, "qdb", "INSERT INTO q1 VALUES (1)");
	ck_assert(pump(&c, xids_at_least, 1, 10000));
	int ddl = 0;
	for (int i = 0; i < c.n; i++) {
		if (c.r[i].type != LS_MYEV_QUERY)
			continue;
		ck_assert_uint_eq(c.r[i - 1].type, LS_MYEV_GTID);
		ck_assert(c.r[i - 1].gtid.flags & LS_MYGTID_STANDALONE);
		if (strstr(c.r[i].sql, "CREATE TABLE q1") != NULL) {
			ck_assert_str_eq(c.r[i].db, "qdb");
			ddl++;
		}
		if (strstr(c.r[i].sql, "CREATE DATABASE qdb") != NULL)
			ddl++;
	}
	ck_assert_int_eq(ddl, 2);
	coll_stop(&c);
	free(start);
}
END_TEST

static bool connected(struct coll *c, int arg)
{
	struct ls_mybinlog_stats st;
	(void)arg;
	ls_mybinlog_stats(c->b, &st);
	return st.connected && c->n > 0;
}

START_TEST(mybinlog_close_wakes_a_blocked_fetch)
{
	struct coll c;
	ls_testmy_exec(my, NULL, "CREATE DATABASE blk; CREATE TABLE blk.t (id INT PRIMARY KEY)");
	char *start = gtid_pos();
	/* Heartbeats once a minute: the fetch blocks until close wakes it. */
	coll_start_hb(&c, start, 60000);
	ls_testmy_exec(my, "blk", "INSERT INTO t VALUES (1)");
	ck_assert(pump(&c, connected, 0, 10000));
	ck_assert(pump(&c, xids_at_least, 1, 10000));
	uint64_t t0 = uv_hrtime();
	ls_mybinlog_close(c.b, on_closed);
	ck_assert_msg(pump(&c, is_closed, 0, 3000), "close hung");
	ck_assert_uint_lt(uv_hrtime() - t0, 2000000000ull);
	c.closed = false;
	c.b = NULL;
	uv_close((uv_handle_t *)&c.tick, NULL);
	uv_run(&c.loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&c.loop), 0);
	free(c.r);
	free(start);
}
END_TEST

START_TEST(mybinlog_pause_holds_events_until_resume)
{
	struct coll c;
	ls_testmy_exec(my, NULL, "CREATE DATABASE pau; CREATE TABLE pau.t (id INT NOT NULL PRIMARY KEY)");
	char *start = gtid_pos();
	coll_start(&c, start);
	ls_mybinlog_pause(c.b);
	for (int i = 1; i <= 3; i++)
		ls_testmy_exec(my, "pau", "INSERT INTO t VALUES (%d)", i);
	/* Negative check: nothing may arrive while paused. */
	ck_assert(!pump(&c, xids_at_least, 1, 700));
	ck_assert_int_eq(c.n, 0);
	ls_mybinlog_resume(c.b);
	ck_assert(pump(&c, xids_at_least, 3, 10000));
	for (int id = 1; id <= 3; id++)
		ck_assert_int_eq(c.committed[id], 1);
	coll_stop(&c);
	free(start);
}
END_TEST

START_TEST(mybinlog_resume_from_gtid_gets_exactly_the_later_transactions)
{
	struct coll c;
	char *mid = NULL;
	ls_testmy_exec(my, NULL, "CREATE DATABASE res; CREATE TABLE res.t "
		"(id INT NOT NULL PRIMARY KEY)");
	for (int i = 1; i <= 6; i++) {
		ls_testmy_exec(my, "res", "INSERT INTO t VALUES (%d)", i);
		if (i == 3)
			mid = gtid_pos();
	}
	char *end = gtid_pos();
	coll_start(&c, mid);
	ck_assert(pump(&c, xids_at_least, 3, 10000));
	/* Nothing more arrives: wait out a few heartbeats' worth of events. */
	pump(&c, xids_at_least, 4, 700);
	ck_assert_int_eq(c.xids, 3);
	int n = 0;
	for (int i = 0; i < c.n; i++) {
		if (c.r[i].type == LS_MYEV_GTID && n == 0)
			ck_assert_uint_eq(c.r[i].gtid.gtid.seq, gtid_seq(mid) + 1);
		if (c.r[i].nids == 1)
			ck_assert_int_eq(c.r[i].ids[0], 4 + n++);
	}
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(c.committed[3], 0);
	ck_assert_int_eq(c.committed[4] + c.committed[5] + c.committed[6], 3);
	char text[LS_POS_TEXT_MAX];
	ls_gtid_set_format(&c.done, text, sizeof text);
	ck_assert_str_eq(text, end);
	coll_stop(&c);
	free(mid);
	free(end);
}
END_TEST

START_TEST(mybinlog_purged_start_is_a_fatal_error)
{
	struct coll c;
	/* Purge everything, so 0-1-1 is gone. */
	ls_testmy_exec(my, NULL, "CREATE DATABASE IF NOT EXISTS pfx; "
		"CREATE TABLE IF NOT EXISTS pfx.t (id INT PRIMARY KEY); "
		"INSERT INTO pfx.t VALUES (1)");
	purge_all();
	coll_start(&c, "0-1-1");
	ck_assert_msg(pump(&c, errored, 0, 10000), "no error");
	ck_assert_int_eq(c.errors, 1);
	ck_assert_int_eq(c.retryable, 0);
	ck_assert_msg(strstr(c.last_err, "refused") != NULL ||
		strstr(c.last_err, "1236") != NULL, "%s", c.last_err);
	coll_stop(&c);
}
END_TEST

static bool restart_done(struct coll *c, int arg)
{
	for (int id = 1; id <= arg; id++)
		if (c->committed[id] == 0)
			return false;
	return c->reconnects > 0;
}

START_TEST(mybinlog_server_restart_is_retryable_and_resumes_by_gtid)
{
	struct coll c;
	ls_testmy_exec(my, NULL, "CREATE DATABASE rst; CREATE TABLE rst.t "
		"(id INT NOT NULL PRIMARY KEY)");
	char *start = gtid_pos();
	coll_start(&c, start);
	for (int i = 1; i <= 3; i++)
		ls_testmy_exec(my, "rst", "INSERT INTO t VALUES (%d)", i);
	ck_assert(pump(&c, xids_at_least, 3, 10000));
	ls_testmy_restart(my);
	ck_assert_msg(pump(&c, errored, 0, 15000), "no error after restart");
	ck_assert_int_ge(c.retryable, 1);
	for (int i = 4; i <= 6; i++)
		ls_testmy_exec(my, "rst", "INSERT INTO t VALUES (%d)", i);
	ck_assert_msg(pump(&c, restart_done, 6, 20000), "reconnects %d xids %d: %s",
		c.reconnects, c.xids, c.last_err);
	for (int id = 1; id <= 6; id++)
		ck_assert_msg(c.committed[id] == 1, "id %d seen %d times", id,
			c.committed[id]);
	coll_stop(&c);
	free(start);
}
END_TEST

/* ---- snapshot meets stream ------------------------------------------------------ */

struct inserter {
	pthread_t th;
	atomic_bool stop;
	atomic_int done;           /* rows inserted by the thread */
	int port;
};

static void *insert_main(void *arg)
{
	struct inserter *in = arg;
	char info[128];
	snprintf(info, sizeof info, "host=127.0.0.1 port=%d user=root "
		"database=meet", in->port);
	struct ls_myconn c;
	struct ls_err err = { 0 };
	if (ls_mysetup_conn_parse(info, &c, &err) != 0)
		return NULL;
	MYSQL *m = ls_mysetup_connect(&c, 10, &err);
	ls_mysetup_conn_free(&c);
	if (m == NULL)
		return NULL;
	for (int id = 1001; id < MAX_IDS && !atomic_load(&in->stop); id++) {
		char sql[96];
		snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (%d)",
			id % 2 ? "a" : "b", id);
		if (mysql_query(m, sql) != 0)
			break;
		atomic_fetch_add(&in->done, 1);
	}
	mysql_close(m);
	return NULL;
}

struct meet {
	struct inserter *in;
	int counts[2][MAX_IDS];    /* [table][id]: snapshot rows */
	struct ls_mysnap_pos pos[2];
	atomic_int started;
};

static int tix(const struct ls_mytable *t)
{
	return strcmp(t->name, "a") == 0 ? 0 : 1;
}

struct want_rows {
	struct inserter *in;
	int want;
};

static bool inserted_enough(void *ctx)
{
	struct want_rows *w = ctx;
	return atomic_load(&w->in->done) >= w->want;
}

static int meet_start(void *ctx, int worker, const struct ls_mytable *t,
		      const struct ls_mysnap_pos *pos)
{
	struct meet *mt = ctx;
	(void)worker;
	mt->pos[tix(t)] = *pos;
	/* Let the writer commit more rows after this snapshot opened: the
	 * stream must deliver exactly those. */
	struct want_rows w = { mt->in, atomic_load(&mt->in->done) + 30 };
	if (!ls_test_wait_until(inserted_enough, &w, 20000))
		return -1;
	atomic_fetch_add(&mt->started, 1);
	return 0;
}

static int meet_row(void *ctx, int worker, const struct ls_mytable *t,
		    const struct ls_value *vals)
{
	struct meet *mt = ctx;
	(void)worker;
	if (vals[0].kind != LS_VAL_TEXT)
		return -1;
	int id = atoi(vals[0].data);
	if (id <= 0 || id >= MAX_IDS)
		return -1;
	mt->counts[tix(t)][id]++;
	return 0;
}

static bool meet_rows_past(struct coll *c, int seq)
{
	for (int i = c->n - 1; i >= 0; i--)
		if (c->r[i].type == LS_MYEV_GTID)
			return c->r[i].gtid.gtid.seq >= (uint64_t)seq &&
			       c->r[c->n - 1].type == LS_MYEV_XID;
	return false;
}

START_TEST(mysnap_copy_and_stream_meet_exactly_under_concurrent_inserts)
{
	static struct meet mt;
	static struct inserter in;
	struct ls_mytables tabs;
	struct ls_err err = { 0 };
	struct ls_myconn conn;

	ls_testmy_exec(my, NULL, "CREATE DATABASE meet");
	ls_testmy_exec(my, "meet", "CREATE TABLE meet.a (id INT NOT NULL PRIMARY KEY);"
		"CREATE TABLE meet.b (id INT NOT NULL PRIMARY KEY);"
		"INSERT INTO meet.a SELECT seq FROM seq_1_to_1000 WHERE seq %% 2 = 1;"
		"INSERT INTO meet.b SELECT seq FROM seq_1_to_1000 WHERE seq %% 2 = 0");
	MYSQL *m = connect_as(ls_testmy_conninfo(my, NULL));
	ck_assert_msg(ls_mysetup_select_tables(m, "meet.*", NULL, &tabs, &err) == 0,
		"%s", err.msg);
	mysql_close(m);

	memset(&mt, 0, sizeof mt);
	memset(&in, 0, sizeof in);
	in.port = ls_testmy_port(my);
	mt.in = &in;
	ck_assert_int_eq(pthread_create(&in.th, NULL, insert_main, &in), 0);

	parse_conn(ls_testmy_conninfo(my, NULL), &conn);
	struct ls_mysnap_opts o = { .conn = &conn, .workers = 2 };
	struct ls_mysnap_sink sink = { meet_start, meet_row, NULL, &mt };
	struct ls_mysnap *s = ls_mysnap_start(&o, &tabs, &sink, &err);
	ck_assert_msg(s != NULL, "%s", err.msg);
	ck_assert_msg(ls_mysnap_wait(s, &err) == 0, "%s", err.msg);
	for (int i = 0; i < 2; i++) {
		struct ls_mysnap_progress p;
		ls_mysnap_progress(s, i, &p);
		ck_assert_int_eq(p.state, LS_MYSNAP_DONE);
		ck_assert(p.has_pos);
		ck_assert_uint_eq(p.pos.seq, mt.pos[tix(&tabs.t[i])].seq);
		ck_assert_uint_ge(p.rows, 500);
	}
	ls_mysnap_free(s);
	atomic_store(&in.stop, true);
	pthread_join(in.th, NULL);
	int inserted = atomic_load(&in.done);
	ck_assert_int_ge(inserted, 30);

	/* Stream from the earlier snapshot's GTID position. */
	int first = mt.pos[0].seq <= mt.pos[1].seq ? 0 : 1;
	char *end = gtid_pos();
	struct coll c;
	coll_start(&c, mt.pos[first].gtid);
	ck_assert_msg(pump(&c, meet_rows_past, (int)gtid_seq(end), 20000),
		"stream did not reach %s", end);

	/* A row of table X counts from the stream when its transaction's GTID
	 * event lies after X's snapshot position. */
	static int stream_counts[2][MAX_IDS];
	memset(stream_counts, 0, sizeof stream_counts);
	struct ls_binlog_pos gpos = { 0 };
	int from_stream = 0;
	for (int i = 0; i < c.n; i++) {
		struct rec *r = &c.r[i];
		if (r->type == LS_MYEV_GTID)
			gpos = r->pos;
		if (r->nids <= 0 || (strcmp(r->table, "a") && strcmp(r->table, "b")))
			continue;
		int t = strcmp(r->table, "a") == 0 ? 0 : 1;
		if (ls_binlog_pos_cmp(&gpos, &mt.pos[t].file_pos) <= 0)
			continue;
		for (int k = 0; k < r->nids; k++) {
			stream_counts[t][r->ids[k]]++;
			from_stream++;
		}
	}
	ck_assert_int_ge(from_stream, 30);
	for (int t = 0; t < 2; t++) {
		int snap_rows = 0;
		char *cnt = ls_testmy_query1(my, "meet", "SELECT COUNT(*) FROM %s",
			t == 0 ? "a" : "b");
		int total = atoi(cnt);
		free(cnt);
		int seen = 0;
		for (int id = 1; id < MAX_IDS; id++) {
			int k = mt.counts[t][id] + stream_counts[t][id];
			ck_assert_msg(k <= 1, "table %d id %d seen %d times", t, id, k);
			ck_assert_msg(k == 0 || (id % 2 == 1) == (t == 0), "id %d in "
				"the wrong table", id);
			seen += k;
			snap_rows += mt.counts[t][id];
		}
		ck_assert_int_eq(seen, total);
		ck_assert_int_ge(snap_rows, 500);
	}
	coll_stop(&c);
	ls_mysetup_conn_free(&conn);
	ls_mysetup_tables_free(&tabs);
	free(end);
}
END_TEST

static int binary_ok(void *ctx, int w, const struct ls_mytable *t,
		     const struct ls_value *v)
{
	struct meet *mt = ctx;
	(void)w;
	if (strcmp(t->name, "a") != 0 || v[0].kind != LS_VAL_TEXT ||
	    strcmp(v[0].data, "1") != 0 || v[1].kind != LS_VAL_BINARY ||
	    v[1].len != 3 || memcmp(v[1].data, "\0\xff\0", 3) != 0 ||
	    v[2].kind != LS_VAL_NULL)
		return -1;
	mt->counts[0][1]++;
	return 0;
}

START_TEST(mysnap_skips_listed_tables_and_streams_binary_and_nulls)
{
	struct ls_mytables tabs;
	struct ls_err err = { 0 };
	struct ls_myconn conn;
	ls_testmy_exec(my, NULL, "CREATE DATABASE sk;"
		"CREATE TABLE sk.a (id INT PRIMARY KEY, b VARBINARY(8), n INT);"
		"CREATE TABLE sk.b (id INT PRIMARY KEY);"
		"INSERT INTO sk.a VALUES (1, 0x00ff00, NULL); INSERT INTO sk.b VALUES (1)");
	MYSQL *m = connect_as(ls_testmy_conninfo(my, NULL));
	ck_assert_msg(ls_mysetup_select_tables(m, "sk.*", NULL, &tabs, &err) == 0,
		"%s", err.msg);
	mysql_close(m);
	static struct meet mt;
	memset(&mt, 0, sizeof mt);
	parse_conn(ls_testmy_conninfo(my, NULL), &conn);
	const char *skip[] = { "sk.b" };
	struct ls_mysnap_opts o = { .conn = &conn, .workers = 4, .skip = skip,
		.nskip = 1 };
	struct ls_mysnap_sink sink = { NULL, NULL, NULL, &mt };
	ck_assert_ptr_null(ls_mysnap_start(&o, &tabs, &sink, &err));   /* no on_row */
	sink.on_row = binary_ok;
	struct ls_mysnap *s = ls_mysnap_start(&o, &tabs, &sink, &err);
	ck_assert_msg(s != NULL, "%s", err.msg);
	ck_assert_msg(ls_mysnap_wait(s, &err) == 0, "%s", err.msg);
	ck_assert(ls_mysnap_finished(s));
	struct ls_mysnap_progress p;
	ls_mysnap_progress(s, 0, &p);
	ck_assert_int_eq(p.state, LS_MYSNAP_DONE);
	ck_assert_uint_eq(p.rows, 1);
	ls_mysnap_progress(s, 1, &p);
	ck_assert_int_eq(p.state, LS_MYSNAP_SKIPPED);
	ck_assert_uint_eq(p.rows, 0);
	ck_assert_int_eq(mt.counts[0][1], 1);
	ls_mysnap_free(s);
	ls_mysetup_conn_free(&conn);
	ls_mysetup_tables_free(&tabs);
}
END_TEST

static Suite *my_source_suite(void)
{
	Suite *s = suite_create("my_source");
	TCase *pure = tcase_create("pure");
	tcase_add_test(pure, myconn_parses_keys_quotes_and_hides_the_password);
	tcase_add_test(pure, mysetup_patterns_members_and_server_ids);
	suite_add_tcase(s, pure);

	TCase *tc = tcase_create("my");
	tcase_set_timeout(tc, 120);
	tcase_add_unchecked_fixture(tc, my_setup_fixture, my_teardown_fixture);
	tcase_add_test(tc, mysetup_ready_server_passes_and_reports_gtid);
	tcase_add_test(tc, mysetup_user_without_replication_grants_is_refused);
	tcase_add_test(tc, mysetup_statement_binlog_is_refused_with_the_fix);
	tcase_add_test(tc, mysetup_selects_tables_with_keys_unsigned_and_enums);
	tcase_add_test(tc, mybinlog_sees_gtid_table_map_rows_xid_in_order);
	tcase_add_test(tc, mybinlog_query_event_carries_ddl_and_db);
	tcase_add_test(tc, mybinlog_resume_from_gtid_gets_exactly_the_later_transactions);
	tcase_add_test(tc, mybinlog_close_wakes_a_blocked_fetch);
	tcase_add_test(tc, mybinlog_pause_holds_events_until_resume);
	tcase_add_test(tc, mysnap_copy_and_stream_meet_exactly_under_concurrent_inserts);
	tcase_add_test(tc, mysnap_skips_listed_tables_and_streams_binary_and_nulls);
	tcase_add_test(tc, mybinlog_server_restart_is_retryable_and_resumes_by_gtid);
	tcase_add_test(tc, mysetup_resume_behind_purged_binlog_is_refused);
	tcase_add_test(tc, mybinlog_purged_start_is_a_fatal_error);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(my_source_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
