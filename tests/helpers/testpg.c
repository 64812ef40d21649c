/* testpg — a throwaway PostgreSQL 15 cluster for tests (API in testsrv.h).
 *
 * initdb (about 0.7 s) into DIR/data, then postgres -D DIR/data -p PORT,
 * run as the "postgres" user when the tests run as root (postgres refuses
 * root).  Settings: see pg_init.  A crash is a SIGKILL of the postmaster's
 * whole process group, so no orphaned backend holds the shared memory and
 * the restart goes straight into crash recovery.
 */
#include "tests/helpers/testsrv.h"
#include "tests/helpers/testsrv_priv.h"

#include <check.h>
#include <libpq-fe.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_BIN "/usr/lib/postgresql/15/bin"

struct conn_node {
	struct conn_node *next;
	char db[64];
	char info[192];
};

struct ls_testpg {
	struct ls_srv srv;          /* first: the registry hands us back */
	struct conn_node *conns;    /* conninfo strings handed out */
};

static int pg_init(struct ls_srv *s, char *err, size_t errsz)
{
	char data[PATH_MAX], log[PATH_MAX], conf[PATH_MAX + 32], text[1024];
	char *argv[] = { PG_BIN "/initdb", "-D", data, "-U", "postgres",
			 "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C",
			 "--no-instructions", NULL };
	int rc;

	snprintf(data, sizeof data, "%s/data", s->dir);
	snprintf(log, sizeof log, "%s/server.log", s->dir);
	rc = ls_srv_run(s, argv, log);
	if (rc != 0) {
		char tail[1024];

		ls_srv_log_tail(s->dir, tail, sizeof tail);
		snprintf(err, errsz, "initdb exited with %d:\n%s", rc, tail);
		return -1;
	}
	/* fsync=off and full_page_writes=off: speed; a crash here is a process
	 * crash (the OS keeps the page cache), so recovery still works. */
	snprintf(text, sizeof text,
		 "\n# testpg\n"
		 "listen_addresses = '127.0.0.1'\n"
		 "unix_socket_directories = '%s'\n"
		 "wal_level = logical\n"
		 "max_replication_slots = 20\n"
		 "max_wal_senders = 20\n"
		 "fsync = off\n"
		 "full_page_writes = off\n"
		 "shared_buffers = 32MB\n"
		 "max_connections = 100\n"
		 "log_min_messages = warning\n",
		 s->dir);
	snprintf(conf, sizeof conf, "%s/postgresql.conf", data);
	if (ls_srv_append(conf, text) != 0 ||
	    (s->extra_conf && (ls_srv_append(conf, s->extra_conf) != 0 ||
			       ls_srv_append(conf, "\n") != 0))) {
		snprintf(err, errsz, "cannot write %s", conf);
		return -1;
	}
	snprintf(conf, sizeof conf, "%s/pg_hba.conf", data);
	if (remove(conf) != 0 ||
	    ls_srv_append(conf,
			  "local all all trust\n"
			  "host all all 127.0.0.1/32 trust\n"
			  "local replication all trust\n"
			  "host replication all 127.0.0.1/32 trust\n") != 0) {
		snprintf(err, errsz, "cannot write %s", conf);
		return -1;
	}
	return 0;
}

static void pg_argv(const struct ls_srv *s, char **argv, size_t maxargs,
		    char *buf, size_t bufsz)
{
	int n = snprintf(buf, bufsz, "%s/data", s->dir);
	char *port = buf + n + 1;

	(void)maxargs;
	snprintf(port, bufsz - (size_t)n - 1, "%d", s->port);
	argv[0] = PG_BIN "/postgres";
	argv[1] = "-D";
	argv[2] = buf;
	argv[3] = "-p";
	argv[4] = port;
	argv[5] = NULL;
}

static bool pg_ready(const struct ls_srv *s)
{
	char info[128];

	snprintf(info, sizeof info,
		 "host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=2",
		 s->port);
	return PQping(info) == PQPING_OK;
}

static const struct ls_srv_spec pg_spec = {
	.kind = "pg",
	.user = "postgres",
	.init = pg_init,
	.argv = pg_argv,
	.ready = pg_ready,
	.stop_sig = SIGINT,          /* fast shutdown */
	.death_sig = SIGQUIT,        /* immediate shutdown, children too */
};

static void pg_at_exit(struct ls_srv *s)
{
	ls_testpg_stop((struct ls_testpg *)s);
}

struct ls_testpg *ls_testpg_start(const char *extra_conf)
{
	struct ls_testpg *pg = calloc(1, sizeof *pg);
	char err[4096];

	ck_assert_msg(pg != NULL, "testpg: out of memory");
	pg->srv.spec = &pg_spec;
	pg->srv.at_exit = pg_at_exit;
	pg->srv.extra_conf = extra_conf ? strdup(extra_conf) : NULL;
	if (ls_srv_start(&pg->srv, err, sizeof err) != 0) {
		free(pg->srv.extra_conf);
		free(pg);
		fprintf(stderr, "testpg: start failed: %s\n", err);
		ck_abort_msg("testpg: start failed: %s", err);
	}
	return pg;
}

void ls_testpg_stop(struct ls_testpg *pg)
{
	if (!pg)
		return;
	ls_srv_stop(&pg->srv);
	while (pg->conns) {
		struct conn_node *n = pg->conns;

		pg->conns = n->next;
		free(n);
	}
	free(pg->srv.extra_conf);
	free(pg);
}

static void pg_command(struct ls_testpg *pg, const char *cmd)
{
	char err[4096];

	if (ls_srv_command(&pg->srv, cmd, err, sizeof err) != 0) {
		fprintf(stderr, "testpg: %s failed: %s\n", cmd, err);
		ck_abort_msg("testpg: %s failed: %s", cmd, err);
	}
}

void ls_testpg_restart(struct ls_testpg *pg)
{
	pg_command(pg, "restart");
}

void ls_testpg_crash_restart(struct ls_testpg *pg)
{
	pg_command(pg, "crash");
}

int ls_testpg_port(const struct ls_testpg *pg)
{
	return pg->srv.port;
}

const char *ls_testpg_conninfo(struct ls_testpg *pg, const char *db)
{
	struct conn_node *n;

	if (!db)
		db = "postgres";
	for (n = pg->conns; n; n = n->next)
		if (strcmp(n->db, db) == 0)
			return n->info;
	n = calloc(1, sizeof *n);
	ck_assert_msg(n != NULL, "testpg: out of memory");
	snprintf(n->db, sizeof n->db, "%s", db);
	snprintf(n->info, sizeof n->info,
		 "host=127.0.0.1 port=%d user=postgres dbname=%s", pg->srv.port,
		 db);
	n->next = pg->conns;
	pg->conns = n;
	return n->info;
}

/* Runs the formatted SQL on a fresh connection.  Returns the last result
 * (caller clears) or NULL with the server's message in err. */
static PGresult *pg_vrun(struct ls_testpg *pg, const char *db, char *err,
			 size_t errsz, const char *fmt, va_list ap)
{
	PGconn *conn = PQconnectdb(ls_testpg_conninfo(pg, db));
	PGresult *res = NULL;
	char *sql = NULL;

	if (PQstatus(conn) != CONNECTION_OK) {
		snprintf(err, errsz, "connect: %s", PQerrorMessage(conn));
	} else if (vasprintf(&sql, fmt, ap) < 0) {
		snprintf(err, errsz, "out of memory");
		sql = NULL;
	} else {
		res = PQexec(conn, sql);
		if (PQresultStatus(res) != PGRES_COMMAND_OK &&
		    PQresultStatus(res) != PGRES_TUPLES_OK) {
			snprintf(err, errsz, "%s", PQerrorMessage(conn));
			PQclear(res);
			res = NULL;
		}
	}
	free(sql);
	PQfinish(conn);
	err[errsz - 1] = '\0';
	err[strcspn(err, "\n")] = '\0';
	return res;
}

void ls_testpg_exec(struct ls_testpg *pg, const char *db, const char *fmt, ...)
{
	char err[1024] = "";
	PGresult *res;
	va_list ap;

	va_start(ap, fmt);
	res = pg_vrun(pg, db, err, sizeof err, fmt, ap);
	va_end(ap);
	if (!res)
		ck_abort_msg("testpg: %s", err);
	PQclear(res);
}

int ls_testpg_try_exec(struct ls_testpg *pg, const char *db, const char *fmt, ...)
{
	char err[1024] = "";
	PGresult *res;
	va_list ap;

	va_start(ap, fmt);
	res = pg_vrun(pg, db, err, sizeof err, fmt, ap);
	va_end(ap);
	if (!res) {
		fprintf(stderr, "testpg: %s\n", err);
		return -1;
	}
	PQclear(res);
	return 0;
}

char *ls_testpg_query1(struct ls_testpg *pg, const char *db, const char *fmt, ...)
{
	char err[1024] = "", *val = NULL;
	PGresult *res;
	va_list ap;

	va_start(ap, fmt);
	res = pg_vrun(pg, db, err, sizeof err, fmt, ap);
	va_end(ap);
	if (!res)
		ck_abort_msg("testpg: %s", err);
	if (PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0)) {
		val = strdup(PQgetvalue(res, 0, 0));
		ck_assert_msg(val != NULL, "testpg: out of memory");
	}
	PQclear(res);
	return val;
}
