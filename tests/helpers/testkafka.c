/* testkafka — the Kafka mock cluster for tests (API in testsrv.h).
 *
 * Runs build/tests/tools/ls-kafka-mock (see that file for the protocol and
 * the mock's ~5 MiB-per-partition limit) with pipes on its stdin and
 * stdout.  The tool exits at stdin EOF and has PR_SET_PDEATHSIG, so it goes
 * away with the test.  A check test child inherits the pipes, so it can take
 * brokers of its parent's cluster down and up.
 */
#include "tests/helpers/testsrv.h"
#include "tests/helpers/testsrv_priv.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define KAFKA_TIMEOUT_MS 30000

struct ls_testkafka {
	struct ls_srv reg;    /* first: registry entry (owner, at_exit) only */
	pid_t pid;
	int to_mock;          /* its stdin */
	int from_mock;        /* its stdout */
	char bootstrap[600];
};

/* Reads one line (without the newline) within timeout_ms; 0 or -1. */
static int read_line(int fd, char *buf, size_t size, int timeout_ms)
{
	double deadline = ls_srv_now() + timeout_ms / 1000.0;
	size_t n = 0;

	while (n + 1 < size) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int left = (int)((deadline - ls_srv_now()) * 1000);
		ssize_t r;

		if (left <= 0 || poll(&p, 1, left) <= 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		r = read(fd, buf + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (buf[n] == '\n') {
			buf[n] = '\0';
			return 0;
		}
		n++;
	}
	return -1;
}

static void kafka_at_exit(struct ls_srv *s)
{
	ls_testkafka_stop((struct ls_testkafka *)s);
}

static pid_t spawn_mock(const char *path, int nbrokers, int in[2], int out[2])
{
	pid_t parent = getpid(), pid;
	char n[16];

	snprintf(n, sizeof n, "%d", nbrokers);
	fflush(NULL);
	pid = fork();
	if (pid != 0)
		return pid;
	setpgid(0, 0);
	dup2(in[0], 0);
	dup2(out[1], 1);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(1);
	execl(path, path, n, (char *)NULL);
	fprintf(stderr, "testkafka: exec %s: %s\n", path, strerror(errno));
	_exit(127);
}

struct ls_testkafka *ls_testkafka_start(int nbrokers)
{
	const char *path = ls_test_build_path("tests/tools/ls-kafka-mock");
	struct ls_testkafka *k = calloc(1, sizeof *k);
	int in[2], out[2];
	double t0 = ls_srv_now();
	char line[600];

	ck_assert_msg(k != NULL, "testkafka: out of memory");
	ck_assert_msg(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0,
		      "testkafka: pipe: %s", strerror(errno));
	k->pid = spawn_mock(path, nbrokers, in, out);
	close(in[0]);
	close(out[1]);
	k->to_mock = in[1];
	k->from_mock = out[0];
	k->reg.owner = getpid();
	k->reg.at_exit = kafka_at_exit;
	if (k->pid < 0 || read_line(k->from_mock, line, sizeof line,
				    KAFKA_TIMEOUT_MS) != 0 ||
	    strncmp(line, "bootstrap=", 10) != 0) {
		ls_testkafka_stop(k);
		ck_abort_msg("testkafka: %s did not start", path);
	}
	snprintf(k->bootstrap, sizeof k->bootstrap, "%s", line + 10);
	ls_srv_register(&k->reg);
	fprintf(stderr, "testkafka: %d brokers ready at %s in %.2f s\n",
		nbrokers, k->bootstrap, ls_srv_now() - t0);
	return k;
}

/* Waits up to timeout_ms for pid to exit; false if it did not. */
static bool wait_exit(pid_t pid, int timeout_ms)
{
	double deadline = ls_srv_now() + timeout_ms / 1000.0;

	do {
		pid_t r = waitpid(pid, NULL, WNOHANG);

		if (r == pid || (r < 0 && errno == ECHILD))
			return true;
		usleep(2000);
	} while (ls_srv_now() < deadline);
	return false;
}

void ls_testkafka_stop(struct ls_testkafka *k)
{
	char line[128];

	if (!k)
		return;
	if (k->to_mock >= 0 && write(k->to_mock, "quit\n", 5) == 5)
		read_line(k->from_mock, line, sizeof line, 5000);
	close(k->to_mock);
	close(k->from_mock);
	/* Only the process that forked it can reap it. */
	if (k->pid > 0 && k->reg.owner == getpid() && !wait_exit(k->pid, 10000)) {
		kill(k->pid, SIGKILL);
		waitpid(k->pid, NULL, 0);
	}
	ls_srv_unregister(&k->reg);
	free(k);
}

const char *ls_testkafka_bootstrap(const struct ls_testkafka *k)
{
	return k->bootstrap;
}

/* Sends one command line (cmd ends in "\n") and aborts unless "ok". */
static void kafka_command(struct ls_testkafka *k, const char *cmd)
{
	char line[256];
	ssize_t len = (ssize_t)strlen(cmd);

	if (write(k->to_mock, cmd, (size_t)len) != len ||
	    read_line(k->from_mock, line, sizeof line, KAFKA_TIMEOUT_MS) != 0)
		ck_abort_msg("testkafka: %.*s: the mock does not answer",
			     (int)len - 1, cmd);
	if (strcmp(line, "ok") != 0)
		ck_abort_msg("testkafka: %.*s: %s", (int)len - 1, cmd, line);
}

void ls_testkafka_broker_down(struct ls_testkafka *k, int broker_id)
{
	char cmd[64];

	snprintf(cmd, sizeof cmd, "down %d\n", broker_id);
	kafka_command(k, cmd);
}

void ls_testkafka_broker_up(struct ls_testkafka *k, int broker_id)
{
	char cmd[64];

	snprintf(cmd, sizeof cmd, "up %d\n", broker_id);
	kafka_command(k, cmd);
}

void ls_testkafka_topic_create(struct ls_testkafka *k, const char *topic,
			       int partitions)
{
	char cmd[300];

	ck_assert_msg(strlen(topic) < 250 && !strpbrk(topic, " \t\n"),
		      "testkafka: bad topic name");
	snprintf(cmd, sizeof cmd, "topic %s %d\n", topic, partitions);
	kafka_command(k, cmd);
}
