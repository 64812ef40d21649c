/* Lag, metrics, pause/resume and `lockstepctl wait --converged` through the
 * real lockstepd, PostgreSQL source and target, direct buffer (and the Kafka
 * mock in one case).  Seconds are checked against the SOURCE's clock
 * (SELECT clock_timestamp() on the source), never this host's. */
#include <arpa/inet.h>
#include <check.h>
#include <grp.h>
#include <jansson.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/helpers/testd.h"
#include "tests/helpers/testsrv.h"
#include "tests/helpers/testutil.h"

#define NOBODY_UID 65534
#define NOBODY_GID 65534

static struct ls_testpg *src, *dst;
static struct ls_testkafka *kafka;

static void setup(void)
{
	src = ls_testpg_start(NULL);
	dst = ls_testpg_start(NULL);
	ls_testpg_exec(src, "postgres", "CREATE DATABASE shop");
	ls_testpg_exec(dst, "postgres", "CREATE DATABASE shop");
	ls_testpg_exec(src, "shop",
		"CREATE TABLE items (id int PRIMARY KEY, v text);"
		"INSERT INTO items SELECT g, 'x' || g FROM generate_series(1, 100) g;"
		"CREATE SCHEMA other;"
		"CREATE TABLE other.noise (id serial PRIMARY KEY, pad text);");
}

static void teardown(void)
{
	ls_testkafka_stop(kafka);
	kafka = NULL;
	ls_testpg_stop(dst);
	ls_testpg_stop(src);
}

/* ---- the daemon ---------------------------------------------------------------- */

static struct ls_testd *start(bool use_kafka, const char *metrics_listen)
{
	struct ls_testd *d = ls_testd_new();
	char buffer[512], control[256], conf[4096];
	if (use_kafka)
		snprintf(buffer, sizeof buffer, "[buffer]\ntype = kafka\nbrokers = %s\n",
			 ls_testkafka_bootstrap(kafka));
	else
		snprintf(buffer, sizeof buffer, "[buffer]\ntype = direct\n");
	snprintf(control, sizeof control, "[control]\nsocket = @DIR@/control.sock\n%s%s\n",
		 metrics_listen ? "metrics_listen = " : "", metrics_listen ? metrics_listen : "");
	snprintf(conf, sizeof conf,
		 "[pipeline]\nname = shop\nstate_dir = @DIR@\n\n"
		 "[source]\ntype = postgres\nconninfo = %s\ntables = public.*\n\n%s\n"
		 "[target new]\ntype = postgres\nconninfo = %s\ncreate_tables = true\nbatch_ms = 20\n\n"
		 "%s\n[log]\nlevel = info\n",
		 ls_testpg_conninfo(src, "shop"), buffer, ls_testpg_conninfo(dst, "shop"), control);
	ls_testd_config(d, conf);
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
	return d;
}

/* The first target's member `key` of GET /lag, as a number; -1 when the
 * daemon does not answer or the value is null. */
static double target_num(struct ls_testd *d, const char *key)
{
	json_t *j = ls_testd_get(d, "/lag");
	json_t *v = json_object_get(json_array_get(json_object_get(j, "targets"), 0), key);
	double x = json_is_number(v) ? json_number_value(v) : -1;
	json_decref(j);
	return x;
}

static double source_num(struct ls_testd *d, const char *key)
{
	json_t *j = ls_testd_get(d, "/lag");
	json_t *v = json_object_get(json_object_get(j, "source"), key);
	double x = json_is_number(v) ? json_number_value(v) : -1;
	json_decref(j);
	return x;
}

struct lagwant {
	struct ls_testd *d;
	double min_bytes;      /* apply_lag_bytes >= this (when >= 0) */
	bool zero;             /* both lags exactly 0 */
	bool source_zero;      /* and source_lag_bytes 0 */
};

static bool lag_reached(void *ctx)
{
	struct lagwant *w = ctx;
	double b = target_num(w->d, "apply_lag_bytes"), s = target_num(w->d, "apply_lag_seconds");
	if (w->zero)
		return b == 0 && s == 0 && (!w->source_zero || source_num(w->d, "source_lag_bytes") == 0);
	return b >= w->min_bytes;
}

static void wait_lag_zero(struct ls_testd *d, bool source_too, const char *when)
{
	struct lagwant w = { .d = d, .zero = true, .source_zero = source_too };
	ck_assert_msg(ls_test_wait_until(lag_reached, &w, 60000),
		      "%s: lag never read 0 (bytes %.0f, seconds %.3f); log:\n%s", when,
		      target_num(d, "apply_lag_bytes"), target_num(d, "apply_lag_seconds"),
		      ls_testd_log_tail(d));
}

/* ---- the source's clock and WAL -------------------------------------------------- */

static double src_num(const char *sql)
{
	char *s = ls_testpg_query1(src, "shop", "%s", sql);
	ck_assert_ptr_nonnull(s);
	double v = strtod(s, NULL);
	free(s);
	return v;
}

static double src_clock(void)
{
	return src_num("SELECT extract(epoch FROM clock_timestamp())");
}

static double src_wal(void)
{
	return src_num("SELECT pg_current_wal_lsn() - '0/0'");
}

static long dst_count(const char *where)
{
	char *s = ls_testpg_query1(dst, "shop", "SELECT count(*) FROM items WHERE %s", where);
	long n = s ? atol(s) : -1;
	free(s);
	return n;
}

struct countwant {
	const char *where;
	long n;
};

static bool dst_has(void *ctx)
{
	struct countwant *w = ctx;
	return dst_count(w->where) == w->n;
}

/* ---- HTTP and lockstepctl ------------------------------------------------------------- */

/* One request over a unix socket or TCP (sock NULL: 127.0.0.1:port); returns
 * the status and, if body is non-NULL, the body (malloc'd). */
static int http(const char *sock, int port, const char *method, const char *path, char **body)
{
	int fd;
	if (sock != NULL) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
			return -1;
	} else {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
			return -1;
	}
	char req[256];
	int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
			 method, path);
	if (write(fd, req, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	ssize_t r;
	while ((r = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)r;
		if (len + 1 == cap)
			buf = realloc(buf, cap *= 2);
	}
	close(fd);
	buf[len] = '\0';
	int status = -1;
	sscanf(buf, "HTTP/1.1 %d", &status);
	char *b = strstr(buf, "\r\n\r\n");
	if (body != NULL)
		*body = strdup(b ? b + 4 : "");
	free(buf);
	return status;
}

/* Runs build/lockstepctl with args; returns its exit code, stdout in out. */
static int ctl(char *out, size_t size, const char *args)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "%s %s 2>&1", ls_test_build_path("lockstepctl"), args);
	FILE *f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(out, 1, size - 1, f);
	out[n] = '\0';
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* Paused, N writes raise apply_lag_bytes by at least their WAL and
 * apply_lag_seconds follows the source's clock from the first unapplied
 * commit; resume brings both back to 0. */
static void run_pause_lag(bool use_kafka)
{
	struct ls_testd *d = start(use_kafka, NULL);
	wait_lag_zero(d, false, "before pause");

	double pause_clock = src_clock();
	ck_assert_int_eq(ls_testd_post(d, "/pause"), 200);
	json_t *st = ls_testd_get(d, "/status");
	ck_assert_str_eq(json_string_value(json_object_get(st, "pipeline_state")), "paused");
	ck_assert(json_is_true(json_object_get(st, "paused")));
	json_decref(st);

	double wal0 = src_wal();
	char *first = ls_testpg_query1(src, "shop",
		"INSERT INTO items VALUES (1001, 'paused') RETURNING extract(epoch FROM clock_timestamp())");
	double first_clock = strtod(first, NULL);
	free(first);
	for (int i = 1002; i <= 1200; i++)
		ls_testpg_exec(src, "shop", "INSERT INTO items VALUES (%d, repeat('p', 200))", i);
	double wal1 = src_wal();

	struct lagwant w = { .d = d, .min_bytes = wal1 - wal0 };
	ck_assert_msg(ls_test_wait_until(lag_reached, &w, 30000),
		      "apply_lag_bytes %.0f never reached the writes' WAL %.0f",
		      target_num(d, "apply_lag_bytes"), wal1 - wal0);

	/* seconds grow with the source's clock: wait until at least 2 s */
	for (int k = 0; k < 2; k++) {
		double lag;
		double before, after;
		do {
			before = src_clock();
			lag = target_num(d, "apply_lag_seconds");
			after = src_clock();
		} while (lag < 2.0 + k && after - first_clock < 30);
		/* the oldest unapplied commit lies between the pause and our first
		 * write (a heartbeat may come first): within a second of either */
		ck_assert_msg(lag >= before - first_clock - 1.0,
			      "lag %.3f s, but our first write is %.3f s old", lag, before - first_clock);
		ck_assert_msg(lag <= after - pause_clock + 1.0,
			      "lag %.3f s, but we paused %.3f s ago", lag, after - pause_clock);
	}
	ck_assert_int_eq(dst_count("id > 1000"), 0);   /* really paused */

	ck_assert_int_eq(ls_testd_post(d, "/resume"), 200);
	wait_lag_zero(d, false, "after resume");
	ck_assert_int_eq(dst_count("id > 1000"), 200);
	st = ls_testd_get(d, "/status");
	ck_assert_str_eq(json_string_value(json_object_get(st, "pipeline_state")), "streaming");
	json_decref(st);
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testd_free(d);
}

START_TEST(lag_pause_grows_and_resume_drains_direct)
{
	run_pause_lag(false);
}
END_TEST

START_TEST(lag_pause_grows_and_resume_drains_kafka)
{
	kafka = ls_testkafka_start(3);
	run_pause_lag(true);
}
END_TEST

struct slotwant {
	double lsn;
};

static bool slot_passed(void *ctx)
{
	struct slotwant *w = ctx;
	char *s = ls_testpg_query1(src, "shop",
		"SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = 'lockstep_shop'");
	double v = s ? strtod(s, NULL) : 0;
	free(s);
	return v >= w->lsn;
}

/* Writes only to an uncaptured table: lag reads 0 and the slot advances. */
START_TEST(lag_idle_source_reads_zero_and_slot_advances)
{
	struct ls_testd *d = start(false, NULL);
	wait_lag_zero(d, true, "at start");
	for (int i = 0; i < 20; i++)
		ls_testpg_exec(src, "shop",
			       "INSERT INTO other.noise (pad) SELECT repeat('n', 500) FROM generate_series(1, 200)");
	struct slotwant w = { .lsn = src_wal() };
	ck_assert_msg(ls_test_wait_until(slot_passed, &w, 30000),
		      "the slot's confirmed_flush_lsn stayed behind the uncaptured writes; log:\n%s",
		      ls_testd_log_tail(d));
	wait_lag_zero(d, true, "idle");
	json_t *lag = ls_testd_get(d, "/lag");
	json_t *src_obj = json_object_get(lag, "source");
	ck_assert_str_eq(json_string_value(json_object_get(src_obj, "clock")), "heartbeat");
	ck_assert(json_number_value(json_object_get(src_obj, "sample_age_seconds")) < 5);
	json_t *slot = json_object_get(src_obj, "slot");
	ck_assert_str_eq(json_string_value(json_object_get(slot, "name")), "lockstep_shop");
	ck_assert(json_is_integer(json_object_get(slot, "retained_wal_bytes")));
	ck_assert_ptr_nonnull(json_string_value(json_object_get(slot, "wal_status")));
	json_decref(lag);
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testd_free(d);
}
END_TEST

START_TEST(lag_wait_converged_exit_codes)
{
	struct ls_testd *d = start(false, NULL);
	char out[8192], args[512];
	/* converged includes "the latest drift check found no drift" */
	int st = ls_testd_post(d, "/drift/check");
	ck_assert_msg(st >= 200 && st < 300, "POST /drift/check: %d", st);
	snprintf(args, sizeof args, "--socket %s wait --converged --timeout 60", ls_testd_socket(d));
	ck_assert_msg(ctl(out, sizeof out, args) == 0, "caught up, wait said: %s", out);

	snprintf(args, sizeof args, "--socket %s pause", ls_testd_socket(d));
	ck_assert_msg(ctl(out, sizeof out, args) == 0, "%s", out);
	ls_testpg_exec(src, "shop", "INSERT INTO items SELECT g, 'w' FROM generate_series(2001, 2050) g");
	snprintf(args, sizeof args, "--socket %s wait --converged --timeout 3", ls_testd_socket(d));
	ck_assert_msg(ctl(out, sizeof out, args) == 1, "paused, wait said: %s", out);
	ck_assert_ptr_nonnull(strstr(out, "not converged"));
	snprintf(args, sizeof args, "--socket %s wait --converged --timeout 2 --json", ls_testd_socket(d));
	ck_assert_int_eq(ctl(out, sizeof out, args), 1);
	json_t *j = json_loads(out, 0, NULL);
	ck_assert_msg(j != NULL && json_is_false(json_object_get(j, "converged")), "%s", out);
	json_decref(j);

	/* lag, watch: human and JSON */
	snprintf(args, sizeof args, "--socket %s lag", ls_testd_socket(d));
	ck_assert_int_eq(ctl(out, sizeof out, args), 0);
	ck_assert_msg(strstr(out, "applying paused") && strstr(out, "new "), "%s", out);
	snprintf(args, sizeof args, "--socket %s lag --json", ls_testd_socket(d));
	ck_assert_int_eq(ctl(out, sizeof out, args), 0);
	j = json_loads(out, 0, NULL);
	ck_assert_msg(j && json_is_true(json_object_get(j, "paused")), "%s", out);
	json_decref(j);
	snprintf(args, sizeof args, "--socket %s watch --count 2 --interval 0.2", ls_testd_socket(d));
	ck_assert_int_eq(ctl(out, sizeof out, args), 0);
	ck_assert_msg(strstr(out, "TARGET") && strstr(out, "snapshot"), "%s", out);

	snprintf(args, sizeof args, "--socket %s resume", ls_testd_socket(d));
	ck_assert_msg(ctl(out, sizeof out, args) == 0, "%s", out);
	snprintf(args, sizeof args, "--socket %s wait --converged --max-lag-seconds 5 --timeout 60",
		 ls_testd_socket(d));
	ck_assert_msg(ctl(out, sizeof out, args) == 0, "resumed, wait said: %s", out);
	/* converged means the writes made before the question are applied */
	ck_assert_int_eq(dst_count("id > 2000"), 50);

	ck_assert_int_eq(ctl(out, sizeof out, "--socket /nonexistent/x.sock wait --converged"), 2);
	snprintf(args, sizeof args, "--socket %s wait", ls_testd_socket(d));
	ck_assert_int_eq(ctl(out, sizeof out, args), 2);
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testd_free(d);
}
END_TEST

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof sa;
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* Every line of /metrics is a comment or name{labels} value. */
static void assert_prometheus(const char *text)
{
	regex_t re;
	ck_assert_int_eq(regcomp(&re,
		"^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\",?)*\\})? "
		"([-+]?[0-9.eE+-]+|NaN|[+-]Inf)$", REG_EXTENDED | REG_NOSUB), 0);
	char *copy = strdup(text);
	int samples = 0;
	for (char *save, *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0)
			continue;
		ck_assert_msg(regexec(&re, line, 0, NULL, 0) == 0, "not a Prometheus line: %s", line);
		samples++;
	}
	ck_assert_int_gt(samples, 10);
	free(copy);
	regfree(&re);
}

static bool metrics_have_slot(void *ctx)
{
	char *body = NULL;
	bool ok = http(ls_testd_socket(ctx), 0, "GET", "/metrics", &body) == 200 && body &&
		  strstr(body, "lockstep_slot_retained_wal_bytes{") != NULL;
	free(body);
	return ok;
}

START_TEST(lag_metrics_parse_and_pause_needs_admin)
{
	kafka = ls_testkafka_start(3);
	int port = free_port();
	char listen[64];
	snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
	struct ls_testd *d = start(true, listen);
	ls_testpg_exec(src, "shop", "INSERT INTO items SELECT g, 'm' FROM generate_series(3001, 3010) g");
	struct countwant cw = { "id > 3000", 10 };
	ck_assert(ls_test_wait_until(dst_has, &cw, 60000));
	wait_lag_zero(d, false, "metrics");
	/* the slot's retained WAL comes with the heartbeat's slot sample,
	 * a few seconds after the start on a busy machine */
	ck_assert_msg(ls_test_wait_until(metrics_have_slot, d, 60000), "no slot sample in /metrics");

	char *body = NULL;
	ck_assert_int_eq(http(ls_testd_socket(d), 0, "GET", "/metrics", &body), 200);
	assert_prometheus(body);
	static const char *const want[] = {
		"lockstep_apply_lag_seconds{pipeline=\"shop\",target=\"new\"} ",
		"lockstep_apply_lag_bytes{pipeline=\"shop\",target=\"new\"} ",
		"lockstep_buffer_lag_records{pipeline=\"shop\",target=\"new\"} ",
		"lockstep_source_lag_bytes{pipeline=\"shop\"} ",
		"lockstep_snapshot_rows_copied{pipeline=\"shop\",table=\"public.items\"} 100\n",
		"lockstep_slot_retained_wal_bytes{pipeline=\"shop\",slot=\"lockstep_shop\"} ",
		"lockstep_position{pipeline=\"shop\",stage=\"applied\",target=\"new\"} ",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		ck_assert_msg(strstr(body, want[i]) != NULL, "missing %s in:\n%s", want[i], body);
	char *p = strstr(body, "lockstep_changes_applied_total{pipeline=\"shop\",target=\"new\"} ");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_ge(atol(strchr(p, '}') + 2), 10);
	free(body);

	/* the same on the TCP listener, which never admits admin requests */
	ck_assert_int_eq(http(NULL, port, "GET", "/metrics", &body), 200);
	assert_prometheus(body);
	free(body);
	ck_assert_int_eq(http(NULL, port, "POST", "/pause", NULL), 403);

	/* a non-root peer may read but not pause */
	ck_assert_int_eq(chmod(ls_testd_socket(d), 0666), 0);
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		if (setgroups(0, NULL) < 0 || setgid(NOBODY_GID) < 0 || setuid(NOBODY_UID) < 0)
			_exit(10);
		int g = http(ls_testd_socket(d), 0, "GET", "/lag", NULL);
		int a = http(ls_testd_socket(d), 0, "POST", "/pause", NULL);
		_exit(g == 200 && a == 403 ? 0 : g != 200 ? 11 : 12);
	}
	int wst;
	ck_assert_int_eq(waitpid(child, &wst, 0), child);
	ck_assert_msg(WIFEXITED(wst) && WEXITSTATUS(wst) == 0,
		      "as nobody: %d (10 setuid failed, 11 GET /lag, 12 POST /pause not 403)",
		      WEXITSTATUS(wst));
	json_t *st = ls_testd_get(d, "/status");
	ck_assert(json_is_false(json_object_get(st, "paused")));
	json_decref(st);
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testd_free(d);
}
END_TEST

int main(void)
{
	const struct ls_testutil_case cases[] = {
		{ "pause_direct", lag_pause_grows_and_resume_drains_direct },
		{ "pause_kafka", lag_pause_grows_and_resume_drains_kafka },
		{ "idle", lag_idle_source_reads_zero_and_slot_advances },
		{ "wait", lag_wait_converged_exit_codes },
		{ "metrics", lag_metrics_parse_and_pause_needs_admin },
	};
	return ls_testutil_run_cases("lag", cases, sizeof cases / sizeof cases[0], setup, teardown,
				     300);
}
