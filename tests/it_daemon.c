/* Integration tests for the lockstepd and lockstepctl binaries: start the
 * real daemon ($LS_BUILD/lockstepd, default build/), talk to it over its
 * control socket, signal it, and read what it tells systemd. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "tests/helpers/testd.h"

#define NOBODY_UID 65534
#define NOBODY_GID 65534

struct env {
	char dir[64];
	char conf[128];
	char sock[128];
	char log[128];
	pid_t pid;
};

static const char *build_dir(void)
{
	const char *b = getenv("LS_BUILD");
	return b != NULL && b[0] != '\0' ? b : "build";
}

static void bin_path(char *out, size_t size, const char *name)
{
	ck_assert_int_lt(snprintf(out, size, "%s/%s", build_dir(), name), (int)size);
	ck_assert_msg(access(out, X_OK) == 0, "%s is not built", out);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void write_file(const char *path, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void write_file(const char *path, const char *fmt, ...)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	ck_assert_int_eq(fclose(f), 0);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return strdup("");
	char *buf = calloc(1, 1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* A temporary directory others may traverse (the 403 test connects as
 * nobody), with a config whose socket lives in a pre-made run/ dir. */
static void env_init(struct env *e)
{
	memset(e, 0, sizeof *e);
	snprintf(e->dir, sizeof e->dir, "/tmp/ls-it-daemon.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(e->dir));
	ck_assert_int_eq(chmod(e->dir, 0755), 0);
	char run[96];
	snprintf(run, sizeof run, "%s/run", e->dir);
	ck_assert_int_eq(mkdir(run, 0755), 0);
	snprintf(e->conf, sizeof e->conf, "%s/shop.conf", e->dir);
	snprintf(e->sock, sizeof e->sock, "%s/run/shop.sock", e->dir);
	snprintf(e->log, sizeof e->log, "%s/lockstepd.log", e->dir);
	write_file(e->conf,
		   "[pipeline]\nname = shop\nstate_dir = %s/state\n\n"
		   "[buffer]\ntype = kafka\nbrokers = 127.0.0.1:9092\n\n"
		   "[target new]\ntype = postgres\n"
		   "conninfo = host=127.0.0.1 dbname=shop user=lockstep password=hunter2\n\n"
		   "[control]\nsocket = %s\n",
		   e->dir, e->sock);
}

static void env_cleanup(struct env *e)
{
	if (e->pid > 0) {
		kill(e->pid, SIGKILL);
		waitpid(e->pid, NULL, 0);
	}
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", e->dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* ---- running programs ------------------------------------------------------- */

struct result {
	int code;                  /* exit code, or 128+signal */
	char out[65536];
	char err[65536];
};

static void drain(int fd, char *buf, size_t size)
{
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, size - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	close(fd);
}

/* Runs argv (argv[0] is a path) with extra "NAME=value" environment entries
 * set, and collects its exit code, stdout and stderr. */
static void run(struct result *r, const char *const *envs, const char *const argv[])
{
	int out[2], err[2];
	ck_assert_int_eq(pipe(out), 0);
	ck_assert_int_eq(pipe(err), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(out[1], 1);
		dup2(err[1], 2);
		close(out[0]);
		close(err[0]);
		for (; envs != NULL && *envs != NULL; envs++)
			putenv((char *)*envs);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	/* Outputs are small; stdout then stderr cannot deadlock below 64 KiB. */
	drain(out[0], r->out, sizeof r->out);
	drain(err[0], r->err, sizeof r->err);
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	r->code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void ctl(struct result *r, const char *const *envs, const char *a1, const char *a2,
		const char *a3, const char *a4)
{
	char bin[256];
	bin_path(bin, sizeof bin, "lockstepctl");
	const char *argv[] = {bin, a1, a2, a3, a4, NULL};
	run(r, envs, argv);
}

/* ---- raw HTTP --------------------------------------------------------------- */

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path) >= (int)sizeof sa.sun_path)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends req (len bytes) and returns the answer's status, -1 when there is
 * no parsable answer; the body goes to body (size bytes) if non-NULL. */
static int raw_request(const char *sock, const char *req, size_t len, char *body, size_t size)
{
	int fd = connect_unix(sock);
	if (fd < 0)
		return -1;
	for (size_t off = 0; off < len;) {
		ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
		if (w <= 0)
			break;       /* the server answered early and stopped reading */
		off += (size_t)w;
	}
	static char resp[65536];
	size_t n = 0;
	for (;;) {
		ssize_t r = recv(fd, resp + n, sizeof resp - 1 - n, 0);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	int status;
	const char *b;
	size_t blen;
	if (ls_http_parse_response(resp, n, &status, &b, &blen) < 0)
		return -1;
	if (body != NULL) {
		size_t k = blen < size - 1 ? blen : size - 1;
		memcpy(body, b, k);
		body[k] = '\0';
	}
	return status;
}

static int get(const char *sock, const char *method, const char *path)
{
	char req[256];
	int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\n\r\n", method, path);
	return raw_request(sock, req, (size_t)n, NULL, 0);
}

/* ---- the daemon ------------------------------------------------------------- */

/* Starts lockstepd on e's config (extra environment entries envs) and
 * waits, with a deadline, until GET /status answers 200. */
static void start_daemon(struct env *e, const char *const *envs)
{
	char bin[256];
	bin_path(bin, sizeof bin, "lockstepd");
	e->pid = fork();
	ck_assert_int_ge(e->pid, 0);
	if (e->pid == 0) {
		for (; envs != NULL && *envs != NULL; envs++)
			putenv((char *)*envs);
		/* sd_watchdog_enabled() only honours WATCHDOG_USEC for this pid. */
		if (getenv("WATCHDOG_USEC") != NULL) {
			char pid[32];
			snprintf(pid, sizeof pid, "%d", (int)getpid());
			setenv("WATCHDOG_PID", pid, 1);
		}
		execl(bin, bin, "--config", e->conf, "--log-file", e->log, (char *)NULL);
		_exit(127);
	}
	double deadline = now_s() + 15;
	while (now_s() < deadline) {
		int st;
		ck_assert_msg(waitpid(e->pid, &st, WNOHANG) == 0, "lockstepd exited early: %s",
			      read_file(e->log));
		if (get(e->sock, "GET", "/status") == 200)
			return;
		usleep(20000);
	}
	ck_abort_msg("lockstepd did not answer on %s within 15 s", e->sock);
}

/* Sends sig and waits (deadline) for the exit; returns the exit code. */
static int stop_daemon(struct env *e, int sig)
{
	ck_assert_int_eq(kill(e->pid, sig), 0);
	double deadline = now_s() + 15;
	while (now_s() < deadline) {
		int st;
		pid_t r = waitpid(e->pid, &st, WNOHANG);
		if (r == e->pid) {
			e->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		usleep(10000);
	}
	ck_abort_msg("lockstepd did not exit within 15 s of signal %d", sig);
	return -1;
}

/* ---- tests ------------------------------------------------------------------- */

/* Whether text has a line "key:<spaces>value" (columns are aligned to the
 * longest key, which grows with the status). */
static bool has_line(const char *text, const char *key, const char *value)
{
	size_t kl = strlen(key);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, key, kl) != 0 || p[kl] != ':')
			continue;
		const char *v = p + kl + 1;
		while (*v == ' ')
			v++;
		size_t vl = strlen(value);
		if (strncmp(v, value, vl) == 0 && (v[vl] == '\n' || v[vl] == '\0'))
			return true;
	}
	return false;
}

START_TEST(daemon_status_through_lockstepctl)
{
	struct env e;
	env_init(&e);
	start_daemon(&e, NULL);
	static struct result r;

	ctl(&r, NULL, "--socket", e.sock, "status", "--json");
	ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.err);
	json_error_t jerr;
	json_t *j = json_loads(r.out, 0, &jerr);
	ck_assert_msg(j != NULL, "not JSON: %s", r.out);
	ck_assert_str_eq(json_string_value(json_object_get(j, "pipeline")), "shop");
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "running");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "pid")), e.pid);
	ck_assert(json_is_integer(json_object_get(j, "uptime_s")));
	ck_assert_uint_gt(strlen(json_string_value(json_object_get(j, "version"))), 0);
	json_decref(j);

	/* Human output: aligned "key: value" lines. */
	ctl(&r, NULL, "--config", e.conf, "status", NULL);
	ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.err);
	ck_assert_msg(has_line(r.out, "pipeline", "shop"), "%s", r.out);
	ck_assert_msg(has_line(r.out, "state", "running"), "%s", r.out);

	/* The socket from the environment. */
	char envsock[200];
	snprintf(envsock, sizeof envsock, "LOCKSTEP_SOCKET=%s", e.sock);
	const char *envs[] = {envsock, NULL};
	ctl(&r, envs, "status", NULL, NULL, NULL);
	ck_assert_msg(r.code == 0 && strstr(r.out, "shop") != NULL, "exit %d: %s", r.code, r.err);

	/* The password never reaches the log. */
	char *log = read_file(e.log);
	ck_assert_ptr_null(strstr(log, "hunter2"));
	ck_assert_ptr_nonnull(strstr(log, "running"));
	free(log);
	ck_assert_int_eq(stop_daemon(&e, SIGTERM), 0);
	env_cleanup(&e);
}
END_TEST

START_TEST(daemon_survives_malformed_and_oversized_requests)
{
	struct env e;
	env_init(&e);
	start_daemon(&e, NULL);
	char body[512];
	const char garbage[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n";
	ck_assert_int_eq(raw_request(e.sock, garbage, sizeof garbage - 1, body, sizeof body), 400);
	ck_assert_ptr_nonnull(strstr(body, "\"error\""));

	size_t big = 200000;
	char *huge = malloc(big);
	memcpy(huge, "GET /status HTTP/1.1\r\nX-Big: ", 29);
	memset(huge + 29, 'a', big - 29);
	ck_assert_int_eq(raw_request(e.sock, huge, big, NULL, 0), 431);
	free(huge);

	const char toolong[] = "POST /log/reopen HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n";
	ck_assert_int_eq(raw_request(e.sock, toolong, sizeof toolong - 1, NULL, 0), 413);
	ck_assert_int_eq(get(e.sock, "GET", "/no/such/route"), 404);
	ck_assert_int_eq(get(e.sock, "DELETE", "/status"), 405);

	/* A client that connects and leaves mid-request costs nothing. */
	int fd = connect_unix(e.sock);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(send(fd, "GET /sta", 8, MSG_NOSIGNAL), 8);
	close(fd);

	/* Still serving. */
	static struct result r;
	ctl(&r, NULL, "--socket", e.sock, "status", "--json");
	ck_assert_msg(r.code == 0 && strstr(r.out, "\"shop\"") != NULL, "exit %d: %s", r.code, r.err);
	ck_assert_int_eq(stop_daemon(&e, SIGTERM), 0);
	env_cleanup(&e);
}
END_TEST

START_TEST(daemon_admin_route_needs_root_or_daemon_user)
{
	struct env e;
	env_init(&e);
	start_daemon(&e, NULL);
	/* Mode 0660 keeps "nobody" out entirely; open it up so the request
	 * reaches the credential check. */
	ck_assert_int_eq(chmod(e.sock, 0666), 0);
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		if (setgroups(0, NULL) < 0 || setgid(NOBODY_GID) < 0 || setuid(NOBODY_UID) < 0)
			_exit(10);
		int s = get(e.sock, "GET", "/status");
		int a = get(e.sock, "POST", "/log/reopen");
		_exit(s == 200 && a == 403 ? 0 : s != 200 ? 11 : 12);
	}
	int st;
	ck_assert_int_eq(waitpid(child, &st, 0), child);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "as nobody: status %d (10 setuid failed, 11 GET /status, 12 no 403)",
		      WEXITSTATUS(st));

	/* As root the admin route works: the log file is reopened after a
	 * rotation (rename) and the daemon writes to the new file. */
	char rotated[160];
	snprintf(rotated, sizeof rotated, "%s.1", e.log);
	ck_assert_int_eq(rename(e.log, rotated), 0);
	ck_assert_int_eq(get(e.sock, "POST", "/log/reopen"), 200);
	char *log = read_file(e.log);
	ck_assert_msg(strstr(log, "reopened") != NULL, "new log: %s", log);
	free(log);

	/* SIGHUP does the same. */
	ck_assert_int_eq(rename(e.log, rotated), 0);
	ck_assert_int_eq(kill(e.pid, SIGHUP), 0);
	double deadline = now_s() + 10;
	while (access(e.log, F_OK) != 0 && now_s() < deadline)
		usleep(10000);
	ck_assert_msg(access(e.log, F_OK) == 0, "SIGHUP did not reopen %s", e.log);
	ck_assert_int_eq(stop_daemon(&e, SIGTERM), 0);
	env_cleanup(&e);
}
END_TEST

START_TEST(daemon_sigterm_exits_zero_and_removes_socket)
{
	struct env e;
	env_init(&e);
	start_daemon(&e, NULL);
	struct stat st;
	ck_assert_int_eq(stat(e.sock, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0660);
	ck_assert_int_eq(stop_daemon(&e, SIGTERM), 0);
	ck_assert_int_eq(access(e.sock, F_OK), -1);
	/* SIGINT too, and a restart over the old path works. */
	start_daemon(&e, NULL);
	ck_assert_int_eq(stop_daemon(&e, SIGINT), 0);
	ck_assert_int_eq(access(e.sock, F_OK), -1);
	env_cleanup(&e);
}
END_TEST

START_TEST(daemon_second_instance_refuses_live_socket)
{
	struct env e;
	env_init(&e);
	start_daemon(&e, NULL);
	char bin[256];
	bin_path(bin, sizeof bin, "lockstepd");
	static struct result r;
	const char *argv[] = {bin, "--config", e.conf, NULL};
	run(&r, NULL, argv);
	ck_assert_int_eq(r.code, 1);
	ck_assert_msg(strstr(r.err, "in use") != NULL, "%s", r.err);
	ck_assert_int_eq(get(e.sock, "GET", "/status"), 200);
	ck_assert_int_eq(stop_daemon(&e, SIGTERM), 0);
	env_cleanup(&e);
}
END_TEST

/* A failure message carrying the daemon's log tail must reach the report
 * intact: check's default limit (2 KiB usable) made such a test exit 2
 * and lose the message, which hid why a CI run failed. */
static struct ls_testd *long_log_d;

START_TEST(inner_fails_with_log_tail)
{
	ck_abort_msg("lockstepd did not reach state streaming; log:\n%s",
		     ls_testd_log_tail(long_log_d));
}
END_TEST

START_TEST(long_failure_messages_reach_the_report)
{
	long_log_d = ls_testd_new();
	char path[256];
	snprintf(path, sizeof path, "%s/lockstepd.log", ls_testd_dir(long_log_d));
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < 200; i++)
		fprintf(f, "lockstepd: info: line %03d of a long log, as a busy daemon writes\n", i);
	fclose(f);
	unsetenv("CK_MAX_MSG_SIZE");   /* the helper's own setting must suffice */
	unsetenv("CK_RUN_CASE");
	unsetenv("CK_RUN_SUITE");
	Suite *s = suite_create("inner");
	TCase *tc = tcase_create("inner");
	tcase_add_test(tc, inner_fails_with_log_tail);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_SILENT);
	ck_assert_int_eq(srunner_ntests_failed(sr), 1);
	TestResult **tr = srunner_failures(sr);
	const char *got = tr_msg(tr[0]);
	ck_assert_msg(got != NULL && strlen(got) > 4000 &&
		      strstr(got, "line 199 of a long log") != NULL,
		      "the long message was lost: %.200s", got ? got : "(null)");
	free(tr);
	srunner_free(sr);
	ls_testd_free(long_log_d);
}
END_TEST

START_TEST(daemon_check_config_and_usage)
{
	struct env e;
	env_init(&e);
	char bin[256];
	bin_path(bin, sizeof bin, "lockstepd");
	static struct result r;
	const char *good[] = {bin, "--config", e.conf, "--check-config", NULL};
	run(&r, NULL, good);
	ck_assert_int_eq(r.code, 0);
	char expect[200];
	snprintf(expect, sizeof expect, "%s: ok\n", e.conf);
	ck_assert_str_eq(r.out, expect);

	char bad[160];
	snprintf(bad, sizeof bad, "%s/bad.conf", e.dir);
	write_file(bad, "[pipeline]\nname = shop\nbogus_key = 1\n[target t]\ntype = postgres\n"
			"conninfo = x\n");
	const char *badargv[] = {bin, "--config", bad, "--check-config", NULL};
	run(&r, NULL, badargv);
	ck_assert_int_eq(r.code, 1);
	snprintf(expect, sizeof expect, "%s:3:", bad);
	ck_assert_msg(strstr(r.err, expect) != NULL, "want %s in: %s", expect, r.err);
	ck_assert_msg(strstr(r.err, "bogus_key") != NULL, "%s", r.err);

	/* Without --check-config a bad config also exits 1, saying where. */
	const char *badrun[] = {bin, "--config", bad, NULL};
	run(&r, NULL, badrun);
	ck_assert_int_eq(r.code, 1);
	ck_assert_msg(strstr(r.err, expect) != NULL, "%s", r.err);

	const char *usage1[] = {bin, NULL};
	run(&r, NULL, usage1);
	ck_assert_int_eq(r.code, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "usage"));
	const char *usage2[] = {bin, "--config", e.conf, "extra", NULL};
	run(&r, NULL, usage2);
	ck_assert_int_eq(r.code, 2);
	const char *usage3[] = {bin, "--no-such-option", NULL};
	run(&r, NULL, usage3);
	ck_assert_int_eq(r.code, 2);
	const char *version[] = {bin, "--version", NULL};
	run(&r, NULL, version);
	ck_assert_int_eq(r.code, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "lockstepd "));
	env_cleanup(&e);
}
END_TEST

START_TEST(lockstepctl_reports_missing_daemon_and_bad_usage)
{
	struct env e;
	env_init(&e);
	static struct result r;
	ctl(&r, NULL, "--socket", e.sock, "status", NULL);
	ck_assert_int_eq(r.code, 2);
	char expect[256];
	snprintf(expect, sizeof expect,
		 "lockstepctl: cannot connect to %s: No such file or directory "
		 "(is lockstepd running?)\n", e.sock);
	ck_assert_str_eq(r.err, expect);
	ck_assert_str_eq(r.out, "");

	ctl(&r, NULL, "--socket", e.sock, "frobnicate", NULL);
	ck_assert_int_eq(r.code, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "unknown command 'frobnicate'"));
	ctl(&r, NULL, "--socket", e.sock, "status", "--bogus");
	ck_assert_int_eq(r.code, 2);
	const char *noenv[] = {"LOCKSTEP_SOCKET=", NULL};
	ctl(&r, noenv, "status", NULL, NULL, NULL);
	ck_assert_int_eq(r.code, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "no control socket"));
	ctl(&r, NULL, "--help", NULL, NULL, NULL);
	ck_assert_int_eq(r.code, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "status"));
	env_cleanup(&e);
}
END_TEST

/* ---- systemd notification ------------------------------------------------------ */

/* Reads datagrams from fd until one contains want or the deadline passes;
 * appends everything received to all (size bytes). */
static bool wait_notify(int fd, const char *want, char *all, size_t size, double secs)
{
	double deadline = now_s() + secs;
	while (now_s() < deadline) {
		char buf[1024];
		ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
		if (n < 0) {
			usleep(10000);
			continue;
		}
		buf[n] = '\0';
		strncat(all, buf, size - strlen(all) - 2);
		strncat(all, "|", size - strlen(all) - 1);
		if (strstr(buf, want) != NULL)
			return true;
	}
	return false;
}

START_TEST(daemon_notifies_systemd_ready_watchdog_stopping)
{
	struct env e;
	env_init(&e);
	char path[128];
	snprintf(path, sizeof path, "%s/notify.sock", e.dir);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	ck_assert_int_lt(snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path),
			 (int)sizeof sa.sun_path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	char env_notify[200];
	snprintf(env_notify, sizeof env_notify, "NOTIFY_SOCKET=%s", path);
	const char *envs[] = {env_notify, "WATCHDOG_USEC=200000", NULL};
	start_daemon(&e, envs);
	char all[8192] = "";
	ck_assert_msg(wait_notify(fd, "READY=1", all, sizeof all, 10), "got: %s", all);
	ck_assert_msg(strstr(all, "STATUS=pipeline shop running") != NULL, "got: %s", all);
	/* Half of WATCHDOG_USEC is 100 ms: several pings within a few seconds. */
	for (int i = 0; i < 3; i++) {
		char none[8192] = "";
		ck_assert_msg(wait_notify(fd, "WATCHDOG=1", none, sizeof none, 5), "ping %d", i);
	}
	ck_assert_int_eq(kill(e.pid, SIGTERM), 0);
	ck_assert_msg(wait_notify(fd, "STOPPING=1", all, sizeof all, 10), "got: %s", all);
	ck_assert_int_eq(stop_daemon(&e, 0), 0);
	close(fd);
	env_cleanup(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("daemon");
	TCase *tc = tcase_create("daemon");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, daemon_status_through_lockstepctl);
	tcase_add_test(tc, daemon_survives_malformed_and_oversized_requests);
	tcase_add_test(tc, daemon_admin_route_needs_root_or_daemon_user);
	tcase_add_test(tc, daemon_sigterm_exits_zero_and_removes_socket);
	tcase_add_test(tc, daemon_second_instance_refuses_live_socket);
	tcase_add_test(tc, daemon_check_config_and_usage);
	tcase_add_test(tc, long_failure_messages_reach_the_report);
	tcase_add_test(tc, lockstepctl_reports_missing_daemon_and_bad_usage);
	tcase_add_test(tc, daemon_notifies_systemd_ready_watchdog_stopping);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
