/* testsrv — real servers for tests: PostgreSQL 15, MariaDB 10.11 and a Kafka
 * mock cluster (librdkafka's rdkafka_mock, 3 brokers, in the helper program
 * build/tests/tools/ls-kafka-mock).
 *
 * Each server runs on 127.0.0.1 on a free port, in a fresh temporary
 * directory, and is torn down by *_stop() — and also when the test process
 * exits or is killed (the server's supervisor watches its parent and cleans
 * up; stale directories of dead test runs are swept at the next start).
 * When the tests run as root, PostgreSQL runs as the "postgres" user.
 *
 * Start/stop failures abort the calling test with a message (check's
 * ck_abort_msg), so tests never continue without their servers.
 */
#ifndef LS_TESTSRV_H
#define LS_TESTSRV_H

#include <stdbool.h>
#include <stdint.h>

/* ---- PostgreSQL ---------------------------------------------------------- */

struct ls_testpg;

/* Starts a cluster with wal_level=logical, max_replication_slots=20,
 * max_wal_senders=20, fsync=off; extra_conf lines (may be NULL) are appended
 * to postgresql.conf.  Superuser "postgres", no password, trust auth on
 * loopback; also a replication-enabled role is not needed (postgres is). */
struct ls_testpg *ls_testpg_start(const char *extra_conf);
void ls_testpg_stop(struct ls_testpg *pg);         /* NULL is a no-op */
/* Fast shutdown then start again on the same port and data directory. */
void ls_testpg_restart(struct ls_testpg *pg);
/* SIGKILL the postmaster (crash), then start again (crash recovery). */
void ls_testpg_crash_restart(struct ls_testpg *pg);
int ls_testpg_port(const struct ls_testpg *pg);
/* "host=127.0.0.1 port=N user=postgres dbname=DB"; valid until stop. */
const char *ls_testpg_conninfo(struct ls_testpg *pg, const char *db);
/* Runs SQL (several statements allowed); aborts the test on error. */
void ls_testpg_exec(struct ls_testpg *pg, const char *db, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Runs SQL; returns 0, or -1 and prints the server's error (no abort). */
int ls_testpg_try_exec(struct ls_testpg *pg, const char *db, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* First column of the first row as a malloc'd string (caller frees), NULL
 * for no rows or a NULL value; aborts the test on error. */
char *ls_testpg_query1(struct ls_testpg *pg, const char *db, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- MariaDB --------------------------------------------------------------- */

struct ls_testmy;

/* Starts mariadbd with log_bin, binlog_format=ROW, binlog_row_image=FULL,
 * gtid_strict_mode, server_id=1, root without password over TCP on loopback.
 * extra_conf lines (may be NULL) go into its [mariadbd] section. */
struct ls_testmy *ls_testmy_start(const char *extra_conf);
void ls_testmy_stop(struct ls_testmy *my);         /* NULL is a no-op */
void ls_testmy_restart(struct ls_testmy *my);
int ls_testmy_port(const struct ls_testmy *my);
/* "host=127.0.0.1 port=N user=root database=DB"; valid until stop. */
const char *ls_testmy_conninfo(struct ls_testmy *my, const char *db);
void ls_testmy_exec(struct ls_testmy *my, const char *db, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int ls_testmy_try_exec(struct ls_testmy *my, const char *db, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
char *ls_testmy_query1(struct ls_testmy *my, const char *db, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- Kafka mock cluster ---------------------------------------------------- */

struct ls_testkafka;

/* Starts build/tests/tools/ls-kafka-mock with nbrokers brokers. */
struct ls_testkafka *ls_testkafka_start(int nbrokers);
void ls_testkafka_stop(struct ls_testkafka *k);    /* NULL is a no-op */
/* "127.0.0.1:p1,127.0.0.1:p2,..."; valid until stop. */
const char *ls_testkafka_bootstrap(const struct ls_testkafka *k);
/* Takes broker id (1..nbrokers) down / up; returns when the mock confirmed. */
void ls_testkafka_broker_down(struct ls_testkafka *k, int broker_id);
void ls_testkafka_broker_up(struct ls_testkafka *k, int broker_id);
/* Creates a topic with that many partitions (replication factor min(3, N)).
 * Topics are otherwise auto-created on first use with 4 partitions.  The
 * mock (librdkafka 2.0.2) keeps only ~5 MiB or 100000 message batches
 * per partition and drops older ones. */
void ls_testkafka_topic_create(struct ls_testkafka *k, const char *topic,
			       int partitions);

/* ---- waiting ------------------------------------------------------------- */

/* Polls cond(ctx) every few milliseconds until it returns true or timeout_ms
 * passes; returns whether it became true.  Use instead of sleeping. */
bool ls_test_wait_until(bool (*cond)(void *ctx), void *ctx, int timeout_ms);

/* Absolute path of a built program under the build directory, e.g.
 * ls_test_build_path("lockstepd"); honours $LS_BUILD (default "build"). */
const char *ls_test_build_path(const char *rel);

#endif
