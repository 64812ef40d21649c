/* ls-kafka-mock — a Kafka cluster for tests, from librdkafka's mock broker.
 *
 *   ls-kafka-mock [NBROKERS]        (default 3; broker ids are 1..NBROKERS)
 *
 * Prints "bootstrap=127.0.0.1:p1,..." on stdout once the brokers listen, then
 * reads one command per line on stdin and answers "ok" (or "err <why>"):
 *   down N                  broker N closes its connections, refuses new ones
 *   up N                    broker N accepts connections again
 *   topic NAME PARTITIONS   creates a topic (replication factor min(3, N))
 *   quit                    exits
 * It exits cleanly at stdin EOF, so a parent that dies takes it down; it also
 * asks the kernel for SIGTERM when its parent dies (PR_SET_PDEATHSIG).
 *
 * Topics are created on first use with the mock's defaults (4 partitions),
 * as a producer's or consumer's metadata request asks.  Leaders do not move
 * when a broker goes down: a partition led by a down broker waits for "up".
 *
 * Limits of librdkafka 2.0.2's mock: each partition keeps at most ~5 MiB of
 * messages or 100000 message batches; older ones are dropped (the log start offset
 * moves on), so tests that must read everything back keep below that.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

/* Parses a broker id in 1..nbrokers; -1 if it is not one. */
static int parse_broker(const char *s, int nbrokers)
{
	char *end;
	long id = strtol(s, &end, 10);

	if (end == s || *end != '\0' || id < 1 || id > nbrokers)
		return -1;
	return (int)id;
}

/* Runs one command line; writes the answer; returns 1 on "quit". */
static int run_command(rd_kafka_mock_cluster_t *mc, int nbrokers, char *line)
{
	char *cmd = strtok(line, " \t\r\n");
	char *a1 = strtok(NULL, " \t\r\n");
	char *a2 = strtok(NULL, " \t\r\n");
	rd_kafka_resp_err_t err;
	int id;

	if (!cmd)
		return 0;
	if (strcmp(cmd, "quit") == 0) {
		printf("ok\n");
		return 1;
	}
	if ((strcmp(cmd, "down") == 0 || strcmp(cmd, "up") == 0) && a1) {
		id = parse_broker(a1, nbrokers);
		if (id < 0) {
			printf("err no broker %s\n", a1);
			return 0;
		}
		err = cmd[0] == 'd' ? rd_kafka_mock_broker_set_down(mc, id)
				    : rd_kafka_mock_broker_set_up(mc, id);
	} else if (strcmp(cmd, "topic") == 0 && a1 && a2 && atoi(a2) > 0) {
		err = rd_kafka_mock_topic_create(mc, a1, atoi(a2),
						 nbrokers < 3 ? nbrokers : 3);
	} else {
		printf("err unknown command %s\n", cmd);
		return 0;
	}
	if (err)
		printf("err %s\n", rd_kafka_err2str(err));
	else
		printf("ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	char errstr[256], line[512];
	int nbrokers = argc > 1 ? atoi(argv[1]) : 3;
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mc;
	struct sigaction sa = { .sa_handler = on_term };

	if (nbrokers < 1 || nbrokers > 32) {
		fprintf(stderr, "usage: ls-kafka-mock [NBROKERS 1..32]\n");
		return 2;
	}
	/* No SA_RESTART: the blocking read on stdin returns EINTR and we quit. */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		return 0;     /* the parent died before prctl took effect */

	conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	if (!rk) {
		fprintf(stderr, "ls-kafka-mock: %s\n", errstr);
		return 1;
	}
	mc = rd_kafka_mock_cluster_new(rk, nbrokers);
	if (!mc) {
		fprintf(stderr, "ls-kafka-mock: cannot create the mock cluster\n");
		rd_kafka_destroy(rk);
		return 1;
	}
	printf("bootstrap=%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);

	while (!got_term && fgets(line, sizeof line, stdin)) {
		int quit = run_command(mc, nbrokers, line);

		fflush(stdout);
		if (quit)
			break;
	}
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}
