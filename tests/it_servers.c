/* it_servers — the real test servers (tests/helpers/testsrv.h) do what the
 * other integration tests rely on: PostgreSQL with logical WAL that keeps
 * data over restarts and crashes, MariaDB with a row binlog and GTIDs, the
 * Kafka mock with acks=all/idempotent delivery, kcat interop and broker
 * outages; and the teardown guarantees (a SIGKILLed test leaves no server,
 * stale directories are swept, a fixture's server survives a restart done
 * by a forked test child).
 */
#include "tests/helpers/testsrv.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ----------------------------------------------------------------- */

static long query_long(char *s)
{
	long v;

	ck_assert_ptr_nonnull(s);
	v = strtol(s, NULL, 10);
	free(s);
	return v;
}

static bool path_gone(void *ctx)
{
	struct stat st;

	return stat((const char *)ctx, &st) != 0 && errno == ENOENT;
}

static bool pg_refuses(void *ctx)
{
	return PQping((const char *)ctx) == PQPING_NO_RESPONSE;
}

/* True when no /tmp/lstest-* directory belongs to the pid in *ctx. */
static bool no_dir_of(void *ctx)
{
	pid_t pid = *(pid_t *)ctx;
	DIR *d = opendir("/tmp");
	struct dirent *e;
	bool none = true;

	ck_assert_ptr_nonnull(d);
	while (none && (e = readdir(d))) {
		char path[300];
		FILE *f;
		int owner = 0;

		if (strncmp(e->d_name, "lstest-", 7) != 0)
			continue;
		snprintf(path, sizeof path, "/tmp/%s/lstest.pid", e->d_name);
		f = fopen(path, "r");
		if (f && fscanf(f, "%d", &owner) == 1 && owner == pid)
			none = false;
		if (f)
			fclose(f);
	}
	closedir(d);
	return none;
}

/* A pid that surely belongs to no process: a reaped child's. */
static pid_t dead_pid(void)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	return pid;
}

/* ---- PostgreSQL ---------------------------------------------------------- */

START_TEST(pg_keeps_data_over_restart_and_crash)
{
	struct ls_testpg *pg = ls_testpg_start("max_connections = 50");
	char *s, *started;

	s = ls_testpg_query1(pg, NULL, "SHOW wal_level");
	ck_assert_str_eq(s, "logical");
	free(s);
	s = ls_testpg_query1(pg, NULL, "SHOW max_connections");   /* extra_conf */
	ck_assert_str_eq(s, "50");
	free(s);
	ck_assert_int_eq(query_long(ls_testpg_query1(pg, NULL,
		"SHOW max_replication_slots")), 20);

	ls_testpg_exec(pg, NULL, "CREATE TABLE t (id int PRIMARY KEY, v text);"
			     "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, %d) g",
		       7);
	ck_assert_int_eq(query_long(ls_testpg_query1(pg, NULL,
		"SELECT count(*) FROM t")), 7);

	started = ls_testpg_query1(pg, NULL, "SELECT pg_postmaster_start_time()");
	ls_testpg_restart(pg);
	s = ls_testpg_query1(pg, NULL, "SELECT pg_postmaster_start_time()");
	ck_assert_str_ne(s, started);     /* a new postmaster */
	free(s);
	free(started);
	ck_assert_int_eq(query_long(ls_testpg_query1(pg, NULL,
		"SELECT count(*) FROM t")), 7);
	ck_assert_int_ge(query_long(ls_testpg_query1(pg, NULL,
		"SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 't'")), 7);

	ls_testpg_exec(pg, NULL, "INSERT INTO t VALUES (8, 'before crash')");
	ls_testpg_crash_restart(pg);
	ck_assert_int_eq(query_long(ls_testpg_query1(pg, NULL,
		"SELECT count(*) FROM t")), 8);
	/* Crash recovery discards the statistics; a clean restart keeps them. */
	ck_assert_int_eq(query_long(ls_testpg_query1(pg, NULL,
		"SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 't'")), 0);
	s = ls_testpg_query1(pg, NULL, "SELECT v FROM t WHERE id = 8");
	ck_assert_str_eq(s, "before crash");
	free(s);
	ck_assert_ptr_null(ls_testpg_query1(pg, NULL, "SELECT v FROM t WHERE id = 99"));
	ck_assert_int_eq(ls_testpg_try_exec(pg, NULL, "SELECT * FROM no_such"), -1);
	ls_testpg_stop(pg);
}
END_TEST

START_TEST(pg_allows_logical_replication_over_tcp)
{
	struct ls_testpg *pg = ls_testpg_start(NULL);
	char info[256];
	PGconn *conn;
	PGresult *res;

	ls_testpg_exec(pg, NULL, "SELECT pg_create_logical_replication_slot('s1', 'pgoutput')");
	ck_assert_int_eq(query_long(ls_testpg_query1(pg, NULL,
		"SELECT count(*) FROM pg_replication_slots")), 1);
	/* A walsender connection, as the PG source connector opens it. */
	snprintf(info, sizeof info, "%s replication=database",
		 ls_testpg_conninfo(pg, "postgres"));
	conn = PQconnectdb(info);
	ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "%s", PQerrorMessage(conn));
	res = PQexec(conn, "IDENTIFY_SYSTEM");
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	ck_assert_int_eq(PQntuples(res), 1);
	PQclear(res);
	PQfinish(conn);
	ls_testpg_stop(pg);
}
END_TEST

START_TEST(pg_dies_with_a_killed_test_process)
{
	int fds[2];
	char buf[600] = "", info[128];
	int port = 0;
	pid_t child;
	ssize_t n;

	ck_assert_int_eq(pipe(fds), 0);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		struct ls_testpg *pg = ls_testpg_start(NULL);

		dprintf(fds[1], "%d %s\n", ls_testpg_port(pg),
			ls_testpg_conninfo(pg, NULL));
		pause();
		_exit(0);
	}
	close(fds[1]);
	n = read(fds[0], buf, sizeof buf - 1);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_int_eq(sscanf(buf, "%d", &port), 1);
	snprintf(info, sizeof info, "host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=2",
		 port);
	ck_assert_int_eq(PQping(info), PQPING_OK);

	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	ck_assert_msg(ls_test_wait_until(pg_refuses, info, 15000),
		      "postgres on port %d outlived its test process", port);
	/* The supervisor removed the directory too. */
	ck_assert_msg(ls_test_wait_until(no_dir_of, &child, 15000),
		      "the directory of pid %d is still there", (int)child);
	close(fds[0]);
}
END_TEST

START_TEST(pg_start_sweeps_stale_directories)
{
	char stale[] = "/tmp/lstest-pg-XXXXXX", pidfile[64];
	struct ls_testpg *pg;
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(stale));
	snprintf(pidfile, sizeof pidfile, "%s/lstest.pid", stale);
	f = fopen(pidfile, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "%d\n", (int)dead_pid());
	fclose(f);
	pg = ls_testpg_start(NULL);
	ck_assert_msg(path_gone(stale), "%s was not swept", stale);
	ls_testpg_stop(pg);
}
END_TEST

/* A server started by the suite's unchecked fixture lives in the runner
 * process; tests (forked children) restart it and it must stay up. */
static struct ls_testpg *fixture_pg;

static void pg_fixture_setup(void)
{
	fixture_pg = ls_testpg_start(NULL);
	ls_testpg_exec(fixture_pg, NULL, "CREATE TABLE f (id int)");
}

static void pg_fixture_teardown(void)
{
	ls_testpg_stop(fixture_pg);
	fixture_pg = NULL;
}

START_TEST(pg_fixture_server_survives_restart_by_a_child)
{
	pid_t child = fork();
	int st;

	ck_assert_int_ge(child, 0);
	if (child == 0) {
		ls_testpg_restart(fixture_pg);
		ls_testpg_exec(fixture_pg, NULL, "INSERT INTO f VALUES (1)");
		_exit(0);
	}
	ck_assert_int_eq(waitpid(child, &st, 0), child);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed");
	/* The restarting child is gone; the server it restarted is not. */
	ck_assert_int_eq(query_long(ls_testpg_query1(fixture_pg, NULL,
		"SELECT count(*) FROM f")), 1);
	ls_testpg_crash_restart(fixture_pg);
}
END_TEST

START_TEST(pg_fixture_server_still_up_in_next_test)
{
	ck_assert_int_eq(query_long(ls_testpg_query1(fixture_pg, NULL,
		"SELECT count(*) FROM pg_class WHERE relname = 'f'")), 1);
}
END_TEST

/* ---- MariaDB ----------------------------------------------------------------- */

START_TEST(my_has_row_binlog_and_advancing_gtid)
{
	struct ls_testmy *my = ls_testmy_start("max_connections = 77");
	char *before, *after, *s;

	s = ls_testmy_query1(my, NULL, "SELECT @@log_bin");
	ck_assert_str_eq(s, "1");
	free(s);
	s = ls_testmy_query1(my, NULL, "SELECT @@binlog_format");
	ck_assert_str_eq(s, "ROW");
	free(s);
	s = ls_testmy_query1(my, NULL, "SELECT @@binlog_row_image");
	ck_assert_str_eq(s, "FULL");
	free(s);
	s = ls_testmy_query1(my, NULL, "SELECT @@gtid_strict_mode");
	ck_assert_str_eq(s, "1");
	free(s);
	ck_assert_int_eq(query_long(ls_testmy_query1(my, NULL, "SELECT @@max_connections")), 77);

	ls_testmy_exec(my, NULL, "CREATE DATABASE d; CREATE TABLE d.t (id int PRIMARY KEY)");
	before = ls_testmy_query1(my, NULL, "SELECT @@gtid_current_pos");
	ck_assert_ptr_nonnull(before);
	ls_testmy_exec(my, "d", "INSERT INTO t VALUES (%d), (%d)", 1, 2);
	after = ls_testmy_query1(my, NULL, "SELECT @@gtid_current_pos");
	ck_assert_ptr_nonnull(after);
	ck_assert_str_ne(before, after);
	/* domain 0, server 1, one more transaction */
	ck_assert_int_eq(strncmp(after, "0-1-", 4), 0);
	ck_assert_int_eq(atol(after + 4), atol(before + 4) + 1);
	free(before);
	free(after);

	ls_testmy_restart(my);
	ck_assert_int_eq(query_long(ls_testmy_query1(my, "d", "SELECT count(*) FROM t")), 2);
	ck_assert_int_eq(ls_testmy_try_exec(my, "d", "SELECT * FROM no_such"), -1);
	ck_assert_ptr_null(ls_testmy_query1(my, "d", "SELECT id FROM t WHERE id = 99"));
	ck_assert_ptr_nonnull(strstr(ls_testmy_conninfo(my, "d"), "database=d"));
	ls_testmy_stop(my);
}
END_TEST

/* ---- Kafka ------------------------------------------------------------------- */

struct dr_count {
	int ok, failed;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct dr_count *c = opaque;

	(void)rk;
	if (m->err)
		c->failed++;
	else
		c->ok++;
}

static rd_kafka_t *new_client(rd_kafka_type_t type, const char *bootstrap,
			      struct dr_count *dr)
{
	char errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	const char *kv[][2] = {
		{ "bootstrap.servers", bootstrap },
		{ "reconnect.backoff.ms", "50" },
		{ "reconnect.backoff.max.ms", "500" },
		{ "log_level", "2" },
	};
	rd_kafka_t *rk;

	for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
		ck_assert_int_eq(rd_kafka_conf_set(conf, kv[i][0], kv[i][1], errstr,
						   sizeof errstr), RD_KAFKA_CONF_OK);
	if (type == RD_KAFKA_PRODUCER) {
		ck_assert_int_eq(rd_kafka_conf_set(conf, "acks", "all", errstr, sizeof errstr), 0);
		ck_assert_int_eq(rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr,
						   sizeof errstr), 0);
		rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
		rd_kafka_conf_set_opaque(conf, dr);
	} else {
		ck_assert_int_eq(rd_kafka_conf_set(conf, "group.id", "it_servers", errstr,
						   sizeof errstr), 0);
		ck_assert_int_eq(rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr,
						   sizeof errstr), 0);
	}
	rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
	ck_assert_msg(rk != NULL, "%s", errstr);
	return rk;
}

static void produce(rd_kafka_t *rk, const char *topic, int partition, const char *payload)
{
	rd_kafka_resp_err_t err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
		RD_KAFKA_V_PARTITION(partition),
		RD_KAFKA_V_VALUE((void *)payload, strlen(payload)),
		RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);

	ck_assert_msg(err == 0, "produce: %s", rd_kafka_err2str(err));
}

/* Reads partition 0 of topic from the beginning; returns how many messages
 * arrived (up to max) within 30 s, payloads copied into out[i]. */
static int consume_p0(const char *bootstrap, const char *topic, char out[][32], int max)
{
	rd_kafka_t *rk = new_client(RD_KAFKA_CONSUMER, bootstrap, NULL);
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
	int n = 0;

	rd_kafka_poll_set_consumer(rk);
	rd_kafka_topic_partition_list_add(parts, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
	ck_assert_int_eq(rd_kafka_assign(rk, parts), 0);
	rd_kafka_topic_partition_list_destroy(parts);
	for (int polls = 0; n < max && polls < 300; polls++) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);

		if (!m)
			continue;
		if (!m->err) {
			snprintf(out[n], 32, "%.*s", (int)m->len, (const char *)m->payload);
			n++;
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return n;
}

static struct ls_testkafka *fixture_kafka;

static void kafka_setup(void)
{
	fixture_kafka = ls_testkafka_start(3);
}

static void kafka_teardown(void)
{
	ls_testkafka_stop(fixture_kafka);
	fixture_kafka = NULL;
}

START_TEST(kafka_delivers_100_idempotent_messages_in_order)
{
	const char *bs = ls_testkafka_bootstrap(fixture_kafka);
	struct dr_count dr = { 0, 0 };
	rd_kafka_t *rk = new_client(RD_KAFKA_PRODUCER, bs, &dr);
	static char got[100][32];
	char want[32];

	for (int i = 0; i < 100; i++) {
		snprintf(want, sizeof want, "msg-%03d", i);
		produce(rk, "smoke", 0, want);
	}
	ck_assert_int_eq(rd_kafka_flush(rk, 30000), 0);
	ck_assert_int_eq(dr.ok, 100);
	ck_assert_int_eq(dr.failed, 0);
	rd_kafka_destroy(rk);

	ck_assert_int_eq(consume_p0(bs, "smoke", got, 100), 100);
	for (int i = 0; i < 100; i++) {
		snprintf(want, sizeof want, "msg-%03d", i);
		ck_assert_str_eq(got[i], want);
	}
}
END_TEST

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

START_TEST(kafka_works_with_kcat)
{
	const char *bs = ls_testkafka_bootstrap(fixture_kafka);
	char cmd[1024], line[64], *got[100];
	int n = 0;
	FILE *p;

	/* kcat spreads the messages over the 4 auto-created partitions. */
	snprintf(cmd, sizeof cmd, "kcat -b '%s' -P -t kc -X acks=all", bs);
	p = popen(cmd, "w");
	ck_assert_ptr_nonnull(p);
	for (int i = 0; i < 100; i++)
		fprintf(p, "kcat-%03d\n", i);
	ck_assert_int_eq(pclose(p), 0);

	snprintf(cmd, sizeof cmd, "kcat -b '%s' -C -t kc -e -o beginning -q", bs);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while (n < 100 && fgets(line, sizeof line, p)) {
		line[strcspn(line, "\n")] = '\0';
		got[n++] = strdup(line);
	}
	ck_assert_int_eq(pclose(p), 0);
	ck_assert_int_eq(n, 100);
	qsort(got, (size_t)n, sizeof got[0], cmp_str);
	for (int i = 0; i < 100; i++) {
		snprintf(line, sizeof line, "kcat-%03d", i);
		ck_assert_str_eq(got[i], line);
		free(got[i]);
	}
}
END_TEST

/* A delivery counter with its producer, for delivered(). */
struct dr_with_rk {
	struct dr_count dr;   /* first: the producer's opaque points here */
	rd_kafka_t *rk;
};

static bool delivered(void *ctx)
{
	struct dr_with_rk *x = ctx;

	rd_kafka_poll(x->rk, 0);
	return x->dr.ok + x->dr.failed > 0;
}

/* Which broker leads partition 0 of topic. */
static int leader_p0(rd_kafka_t *rk, const char *topic)
{
	rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md;
	int leader = -1;

	ck_assert_int_eq(rd_kafka_metadata(rk, 0, t, &md, 10000), 0);
	ck_assert_int_eq(md->topic_cnt, 1);
	for (int i = 0; i < md->topics[0].partition_cnt; i++)
		if (md->topics[0].partitions[i].id == 0)
			leader = md->topics[0].partitions[i].leader;
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(t);
	return leader;
}

START_TEST(kafka_delivers_after_leader_comes_back)
{
	const char *bs = ls_testkafka_bootstrap(fixture_kafka);
	struct dr_with_rk x = { { 0, 0 }, NULL };
	char got[1][32];
	int leader;

	ls_testkafka_topic_create(fixture_kafka, "outage", 1);
	x.rk = new_client(RD_KAFKA_PRODUCER, bs, &x.dr);
	leader = leader_p0(x.rk, "outage");
	ck_assert_int_ge(leader, 1);
	ck_assert_int_le(leader, 3);

	ls_testkafka_broker_down(fixture_kafka, leader);
	produce(x.rk, "outage", 0, "through the outage");
	/* Leaders do not move in the mock: nothing can be delivered now. */
	ck_assert(!ls_test_wait_until(delivered, &x, 1500));
	ls_testkafka_broker_up(fixture_kafka, leader);
	ck_assert_msg(ls_test_wait_until(delivered, &x, 30000), "not delivered after up");
	ck_assert_int_eq(x.dr.ok, 1);
	ck_assert_int_eq(x.dr.failed, 0);
	rd_kafka_destroy(x.rk);

	ck_assert_int_eq(consume_p0(bs, "outage", got, 1), 1);
	ck_assert_str_eq(got[0], "through the outage");
}
END_TEST

START_TEST(kafka_mock_dies_with_a_killed_test_process)
{
	int fds[2];
	char buf[600] = "";
	pid_t child;
	ssize_t n;
	struct dr_count dr = { 0, 0 };
	rd_kafka_t *rk;
	const struct rd_kafka_metadata *md;

	ck_assert_int_eq(pipe(fds), 0);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		struct ls_testkafka *k = ls_testkafka_start(1);

		dprintf(fds[1], "%s\n", ls_testkafka_bootstrap(k));
		pause();
		_exit(0);
	}
	close(fds[1]);
	n = read(fds[0], buf, sizeof buf - 1);
	ck_assert_int_gt(n, 0);
	buf[n - 1] = '\0';
	close(fds[0]);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	/* With the mock gone, a metadata request cannot succeed. */
	rk = new_client(RD_KAFKA_PRODUCER, buf, &dr);
	ck_assert_int_ne(rd_kafka_metadata(rk, 1, NULL, &md, 3000), 0);
	rd_kafka_destroy(rk);
}
END_TEST

static Suite *servers_suite(void)
{
	Suite *s = suite_create("servers");
	TCase *pg = tcase_create("pg"), *pgfix = tcase_create("pg_fixture");
	TCase *my = tcase_create("mariadb"), *kafka = tcase_create("kafka");

	tcase_set_timeout(pg, 120);
	tcase_add_test(pg, pg_keeps_data_over_restart_and_crash);
	tcase_add_test(pg, pg_allows_logical_replication_over_tcp);
	tcase_add_test(pg, pg_dies_with_a_killed_test_process);
	tcase_add_test(pg, pg_start_sweeps_stale_directories);
	suite_add_tcase(s, pg);

	tcase_set_timeout(pgfix, 120);
	tcase_add_unchecked_fixture(pgfix, pg_fixture_setup, pg_fixture_teardown);
	tcase_add_test(pgfix, pg_fixture_server_survives_restart_by_a_child);
	tcase_add_test(pgfix, pg_fixture_server_still_up_in_next_test);
	suite_add_tcase(s, pgfix);

	tcase_set_timeout(my, 120);
	tcase_add_test(my, my_has_row_binlog_and_advancing_gtid);
	suite_add_tcase(s, my);

	tcase_set_timeout(kafka, 120);
	tcase_add_unchecked_fixture(kafka, kafka_setup, kafka_teardown);
	tcase_add_test(kafka, kafka_delivers_100_idempotent_messages_in_order);
	tcase_add_test(kafka, kafka_works_with_kcat);
	tcase_add_test(kafka, kafka_delivers_after_leader_comes_back);
	tcase_add_test(kafka, kafka_mock_dies_with_a_killed_test_process);
	suite_add_tcase(s, kafka);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(servers_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
