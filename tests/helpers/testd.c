#include "tests/helpers/testd.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/helpers/testsrv.h"

/* check's default limit for one failure message is 4 KiB, of which only
 * half may be used; a longer message (ours carry the daemon's log tail)
 * makes the test child exit 2 with "Message string too long" and the
 * message is lost.  Every program that links this helper gets room for
 * them; CK_MAX_MSG_SIZE in the environment still wins. */
__attribute__((constructor)) static void allow_long_failure_messages(void)
{
	check_set_max_msg_size(LS_TESTD_MSG_MAX);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

struct ls_testd {
	char dir[128];
	char conf[192];
	char sock[192];
	char log[192];
	pid_t pid;
};

static void rm_tree(const char *dir)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "testd: could not remove %s\n", dir);
}

struct ls_testd *ls_testd_new(void)
{
	struct ls_testd *d = calloc(1, sizeof *d);
	ck_assert_ptr_nonnull(d);
	snprintf(d->dir, sizeof d->dir, "/tmp/lstest-d-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d->dir));
	chmod(d->dir, 0755);
	/* the server helpers sweep /tmp/lstest-* dirs whose owner is gone */
	char pidf[192];
	snprintf(pidf, sizeof pidf, "%s/lstest.pid", d->dir);
	FILE *pf = fopen(pidf, "w");
	ck_assert_ptr_nonnull(pf);
	fprintf(pf, "%d\n", (int)getpid());
	fclose(pf);
	snprintf(d->conf, sizeof d->conf, "%s/lockstep.conf", d->dir);
	snprintf(d->sock, sizeof d->sock, "%s/control.sock", d->dir);
	snprintf(d->log, sizeof d->log, "%s/lockstepd.log", d->dir);
	return d;
}

void ls_testd_free(struct ls_testd *d)
{
	if (d == NULL)
		return;
	if (d->pid > 0)
		ls_testd_kill9(d);
	if (getenv("LS_KEEP_TEST_DIRS"))
		fprintf(stderr, "testd: kept %s\n", d->dir);
	else
		rm_tree(d->dir);
	free(d);
}

const char *ls_testd_dir(const struct ls_testd *d) { return d->dir; }
const char *ls_testd_socket(const struct ls_testd *d) { return d->sock; }

void ls_testd_config(struct ls_testd *d, const char *text)
{
	FILE *f = fopen(d->conf, "w");
	ck_assert_ptr_nonnull(f);
	for (const char *p = text; *p; p++) {
		if (strncmp(p, "@DIR@", 5) == 0) {
			fputs(d->dir, f);
			p += 4;
		} else {
			fputc(*p, f);
		}
	}
	ck_assert_int_eq(fclose(f), 0);
}

void ls_testd_start(struct ls_testd *d)
{
	ck_assert_msg(d->pid <= 0, "lockstepd already running");
	const char *bin = ls_test_build_path("lockstepd");
	pid_t parent = getpid();
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execl(bin, "lockstepd", "--config", d->conf, (char *)NULL);
		_exit(127);
	}
	d->pid = pid;
}

int ls_testd_pid(const struct ls_testd *d)
{
	return d->pid > 0 ? (int)d->pid : 0;
}

long ls_testd_peak_rss_kb(const struct ls_testd *d)
{
	char path[64], line[256];
	long kb = -1;
	snprintf(path, sizeof path, "/proc/%d/status", (int)d->pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

void ls_testd_kill9(struct ls_testd *d)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
	d->pid = 0;
}

int ls_testd_stop(struct ls_testd *d, int timeout_ms)
{
	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	double deadline = now_ms() + timeout_ms;
	for (;;) {
		int st;
		pid_t r = waitpid(d->pid, &st, WNOHANG);
		if (r == d->pid) {
			d->pid = 0;
			if (WIFSIGNALED(st))   /* a crash: its stack trace is in the log */
				fprintf(stderr, "testd: lockstepd died of signal %d on stop; log:\n%s\n",
					WTERMSIG(st), ls_testd_log_tail(d));
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		if (now_ms() > deadline) {
			ls_testd_kill9(d);
			return -1;
		}
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	}
}

bool ls_testd_running(struct ls_testd *d, int *status)
{
	if (d->pid <= 0)
		return false;
	int st;
	if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
		d->pid = 0;
		if (status)
			*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		return false;
	}
	return true;
}

/* One HTTP/1.1 request over the unix socket; returns the status code and
 * the body (malloc'd) or -1. */
static int request(struct ls_testd *d, const char *method, const char *path, char **body)
{
	*body = NULL;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t plen = strlen(d->sock);
	if (plen >= sizeof sa.sun_path) {
		close(fd);
		return -1;
	}
	memcpy(sa.sun_path, d->sock, plen + 1);
	struct timeval tv = { 5, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -1;
	}
	char req[512];
	int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: lockstep\r\n"
		 "Content-Length: 0\r\nConnection: close\r\n\r\n", method, path);
	if (write(fd, req, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (len + 1 >= cap)
			buf = realloc(buf, cap *= 2);
		ssize_t r = read(fd, buf + len, cap - len - 1);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	int status = -1;
	if (sscanf(buf, "HTTP/1.1 %d", &status) != 1) {
		free(buf);
		return -1;
	}
	char *b = strstr(buf, "\r\n\r\n");
	*body = strdup(b ? b + 4 : "");
	free(buf);
	return status;
}

json_t *ls_testd_get(struct ls_testd *d, const char *path)
{
	char *body;
	int st = request(d, "GET", path, &body);
	if (st != 200) {
		if (getenv("LS_TEST_DEBUG"))
			fprintf(stderr, "testd: GET %s -> %d %s\n", path, st, body ? body : "");
		free(body);
		return NULL;
	}
	json_t *j = json_loads(body, 0, NULL);
	free(body);
	return j;
}

void ls_testd_abort_unconverged(struct ls_testd *d)
{
	json_t *st = ls_testd_get(d, "/status");
	char *dump = st ? json_dumps(st, JSON_INDENT(1)) : NULL;
	fprintf(stderr, "status: %s\n", dump ? dump : "(no answer)");
	free(dump);
	json_decref(st);
	ck_abort_msg("target did not converge; log:\n%s", ls_testd_log_tail(d));
}

int ls_testd_post(struct ls_testd *d, const char *path)
{
	char *body;
	int st = request(d, "POST", path, &body);
	free(body);
	return st;
}

const char *ls_testd_log_tail(struct ls_testd *d)
{
	static char tail[4096];
	tail[0] = '\0';
	FILE *f = fopen(d->log, "r");
	if (f == NULL)
		return tail;
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fseek(f, size > (long)sizeof tail - 1 ? size - (long)sizeof tail + 1 : 0, SEEK_SET);
	size_t n = fread(tail, 1, sizeof tail - 1, f);
	tail[n] = '\0';
	fclose(f);
	return tail;
}

void ls_testd_wait_state(struct ls_testd *d, const char *state, int timeout_ms)
{
	double deadline = now_ms() + timeout_ms;
	char last[64] = "(no answer)";
	for (;;) {
		int st = 0;
		if (!ls_testd_running(d, &st))
			ck_abort_msg("lockstepd exited (%d) while waiting for state %s; log:\n%s",
				     st, state, ls_testd_log_tail(d));
		json_t *j = ls_testd_get(d, "/status");
		if (j) {
			const char *s = json_string_value(json_object_get(j, "pipeline_state"));
			if (s)
				snprintf(last, sizeof last, "%s", s);
			bool ok = s && strcmp(s, state) == 0;
			json_decref(j);
			if (ok)
				return;
		}
		if (now_ms() > deadline)
			ck_abort_msg("lockstepd did not reach state %s within %d ms (last %s); log:\n%s",
				     state, timeout_ms, last, ls_testd_log_tail(d));
		struct timespec ts = { 0, 50 * 1000000L };
		nanosleep(&ts, NULL);
	}
}
