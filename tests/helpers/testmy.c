/* testmy — a throwaway MariaDB 10.11 server for tests (API in testsrv.h).
 *
 * mariadb-install-db (about 1 s) into DIR/data, then mariadbd with
 * --defaults-file=DIR/my.cnf (which, like --no-defaults, reads no other
 * option file; we need a file because extra_conf lines go into its
 * [mariadbd] section) and --port.  When root, both run as the "mysql" user
 * (from the mariadb-server package) by dropping privileges in the forked
 * child, the same way testpg runs postgres: mariadbd would otherwise insist
 * on --user=root, and files owned by mysql match a real installation.
 * Root gets no password and the "normal" authentication method, so
 * root@127.0.0.1 logs in over TCP; grants are real (no skip-grant-tables).
 */
#include "tests/helpers/testsrv.h"
#include "tests/helpers/testsrv_priv.h"

#include <check.h>
#include <limits.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MY_INSTALL_DB "/usr/bin/mariadb-install-db"
#define MY_SERVER "/usr/sbin/mariadbd"
/* Small InnoDB for speed; both bootstrap and server use them. */
#define MY_INNODB "innodb_buffer_pool_size=32M\ninnodb_log_file_size=16M\n"

struct conn_node {
	struct conn_node *next;
	char db[64];
	char info[192];
};

struct ls_testmy {
	struct ls_srv srv;          /* first: the registry hands us back */
	struct conn_node *conns;
};

/* The install-db bootstrap runs without log_bin, so the binlog starts empty
 * (no GTIDs from creating the system tables). */
static int my_init(struct ls_srv *s, char *err, size_t errsz)
{
	char data[PATH_MAX + 16], tmp[PATH_MAX + 16], log[PATH_MAX], cnf[PATH_MAX];
	char text[2048];
	/* its own tmpdir: bootstraps sharing /tmp collide on temporary table
	 * files ("Unknown table 'mysql.tmp_user_sys'") */
	char *argv[] = { MY_INSTALL_DB, "--no-defaults", data, tmp,
			 "--auth-root-authentication-method=normal",
			 "--skip-test-db", "--skip-name-resolve",
			 "--innodb-buffer-pool-size=32M",
			 "--innodb-log-file-size=16M", NULL };
	int rc;

	snprintf(data, sizeof data, "--datadir=%s/data", s->dir);
	snprintf(tmp, sizeof tmp, "--tmpdir=%s", s->dir);
	snprintf(log, sizeof log, "%s/server.log", s->dir);
	rc = ls_srv_run(s, argv, log);
	if (rc != 0) {
		char tail[3072];   /* the error comes before ~1.3 KB of advice */

		ls_srv_log_tail(s->dir, tail, sizeof tail);
		snprintf(err, errsz, "mariadb-install-db exited with %d:\n%s", rc,
			 tail);
		return -1;
	}
	snprintf(text, sizeof text,
		 "[mariadbd]\n"
		 "datadir=%s/data\n"
		 "bind_address=127.0.0.1\n"
		 "socket=%s/my.sock\n"
		 "pid_file=%s/my.pid\n"
		 "tmpdir=%s\n"
		 "skip_name_resolve\n"
		 "log_bin=%s/data/binlog\n"
		 "binlog_format=ROW\n"
		 "binlog_row_image=FULL\n"
		 "server_id=1\n"
		 "gtid_strict_mode=ON\n"
		 "innodb_flush_log_at_trx_commit=2\n"
		 "innodb_doublewrite=0\n"
		 MY_INNODB,
		 s->dir, s->dir, s->dir, s->dir, s->dir);
	snprintf(cnf, sizeof cnf, "%s/my.cnf", s->dir);
	if (ls_srv_append(cnf, text) != 0 ||
	    (s->extra_conf && (ls_srv_append(cnf, s->extra_conf) != 0 ||
			       ls_srv_append(cnf, "\n") != 0))) {
		snprintf(err, errsz, "cannot write %s", cnf);
		return -1;
	}
	return 0;
}

static void my_argv(const struct ls_srv *s, char **argv, size_t maxargs,
		    char *buf, size_t bufsz)
{
	int n = snprintf(buf, bufsz, "--defaults-file=%s/my.cnf", s->dir);
	char *port = buf + n + 1;

	(void)maxargs;
	snprintf(port, bufsz - (size_t)n - 1, "--port=%d", s->port);
	argv[0] = MY_SERVER;
	argv[1] = buf;               /* must come first */
	argv[2] = port;
	argv[3] = NULL;
}

static MYSQL *my_connect(int port, const char *db, char *err, size_t errsz)
{
	MYSQL *m = mysql_init(NULL);
	unsigned int timeout = 5;

	if (!m) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	if (!mysql_real_connect(m, "127.0.0.1", "root", "", db, (unsigned)port,
				NULL, CLIENT_MULTI_STATEMENTS)) {
		snprintf(err, errsz, "connect: %s", mysql_error(m));
		mysql_close(m);
		return NULL;
	}
	return m;
}

static bool my_ready(const struct ls_srv *s)
{
	char err[256];
	MYSQL *m = my_connect(s->port, NULL, err, sizeof err);

	if (!m)
		return false;
	mysql_close(m);
	return true;
}

static const struct ls_srv_spec my_spec = {
	.kind = "my",
	.user = "mysql",
	.init = my_init,
	.argv = my_argv,
	.ready = my_ready,
	.stop_sig = SIGTERM,
	.death_sig = SIGKILL,
};

static void my_at_exit(struct ls_srv *s)
{
	ls_testmy_stop((struct ls_testmy *)s);
}

struct ls_testmy *ls_testmy_start(const char *extra_conf)
{
	struct ls_testmy *my = calloc(1, sizeof *my);
	char err[4096];

	ck_assert_msg(my != NULL, "testmy: out of memory");
	my->srv.spec = &my_spec;
	my->srv.at_exit = my_at_exit;
	my->srv.extra_conf = extra_conf ? strdup(extra_conf) : NULL;
	if (ls_srv_start(&my->srv, err, sizeof err) != 0) {
		free(my->srv.extra_conf);
		free(my);
		fprintf(stderr, "testmy: start failed: %s\n", err);
		ck_abort_msg("testmy: start failed: %s", err);
	}
	return my;
}

void ls_testmy_stop(struct ls_testmy *my)
{
	if (!my)
		return;
	ls_srv_stop(&my->srv);
	while (my->conns) {
		struct conn_node *n = my->conns;

		my->conns = n->next;
		free(n);
	}
	free(my->srv.extra_conf);
	free(my);
}

void ls_testmy_restart(struct ls_testmy *my)
{
	char err[4096];

	if (ls_srv_command(&my->srv, "restart", err, sizeof err) != 0) {
		fprintf(stderr, "testmy: restart failed: %s\n", err);
		ck_abort_msg("testmy: restart failed: %s", err);
	}
}

int ls_testmy_port(const struct ls_testmy *my)
{
	return my->srv.port;
}

const char *ls_testmy_conninfo(struct ls_testmy *my, const char *db)
{
	struct conn_node *n;

	if (!db)
		db = "";
	for (n = my->conns; n; n = n->next)
		if (strcmp(n->db, db) == 0)
			return n->info;
	n = calloc(1, sizeof *n);
	ck_assert_msg(n != NULL, "testmy: out of memory");
	snprintf(n->db, sizeof n->db, "%s", db);
	if (db[0])
		snprintf(n->info, sizeof n->info,
			 "host=127.0.0.1 port=%d user=root database=%s",
			 my->srv.port, db);
	else
		snprintf(n->info, sizeof n->info,
			 "host=127.0.0.1 port=%d user=root", my->srv.port);
	n->next = my->conns;
	my->conns = n;
	return n->info;
}

/* Runs the formatted SQL (several statements allowed) on a fresh
 * connection, draining every result.  Returns the connection with the
 * first result set, if any, stored in *first (caller frees both), or NULL
 * with the server's message in err. */
static MYSQL *my_vrun(struct ls_testmy *my, const char *db, MYSQL_RES **first,
		      char *err, size_t errsz, const char *fmt, va_list ap)
{
	MYSQL *m = my_connect(my->srv.port, db, err, errsz);
	char *sql = NULL;
	int status;

	*first = NULL;
	if (!m)
		return NULL;
	if (vasprintf(&sql, fmt, ap) < 0) {
		snprintf(err, errsz, "out of memory");
		mysql_close(m);
		return NULL;
	}
	status = mysql_real_query(m, sql, strlen(sql));
	free(sql);
	while (status == 0) {
		MYSQL_RES *res = mysql_store_result(m);

		if (res && !*first)
			*first = res;
		else if (res)
			mysql_free_result(res);
		else if (mysql_field_count(m) != 0)
			break;    /* a result set that failed to arrive */
		status = mysql_next_result(m);   /* 0 more, -1 done, >0 error */
	}
	if (status > 0 || mysql_errno(m) != 0) {
		snprintf(err, errsz, "%s", mysql_error(m));
		if (*first)
			mysql_free_result(*first);
		*first = NULL;
		mysql_close(m);
		return NULL;
	}
	return m;
}

void ls_testmy_exec(struct ls_testmy *my, const char *db, const char *fmt, ...)
{
	char err[1024] = "";
	MYSQL_RES *res;
	MYSQL *m;
	va_list ap;

	va_start(ap, fmt);
	m = my_vrun(my, db, &res, err, sizeof err, fmt, ap);
	va_end(ap);
	if (!m)
		ck_abort_msg("testmy: %s", err);
	mysql_free_result(res);
	mysql_close(m);
}

int ls_testmy_try_exec(struct ls_testmy *my, const char *db, const char *fmt, ...)
{
	char err[1024] = "";
	MYSQL_RES *res;
	MYSQL *m;
	va_list ap;

	va_start(ap, fmt);
	m = my_vrun(my, db, &res, err, sizeof err, fmt, ap);
	va_end(ap);
	if (!m) {
		fprintf(stderr, "testmy: %s\n", err);
		return -1;
	}
	mysql_free_result(res);
	mysql_close(m);
	return 0;
}

char *ls_testmy_query1(struct ls_testmy *my, const char *db, const char *fmt, ...)
{
	char err[1024] = "", *val = NULL;
	MYSQL_RES *res;
	MYSQL_ROW row;
	MYSQL *m;
	va_list ap;

	va_start(ap, fmt);
	m = my_vrun(my, db, &res, err, sizeof err, fmt, ap);
	va_end(ap);
	if (!m)
		ck_abort_msg("testmy: %s", err);
	if (res && (row = mysql_fetch_row(res)) && mysql_num_fields(res) > 0 &&
	    row[0]) {
		val = strdup(row[0]);
		ck_assert_msg(val != NULL, "testmy: out of memory");
	}
	mysql_free_result(res);
	mysql_close(m);
	return val;
}
