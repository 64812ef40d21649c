/* lockstepctl — the operator's and cutover tooling's view of a lockstepd.
 *
 *   lockstepctl [--socket PATH | --config FILE] COMMAND [ARGS]
 *
 * Talks HTTP/1.1 to the daemon's control socket, one request per command.
 * The socket is --socket, else the [control] socket of --config (default
 * <state_dir>/control.sock), else $LOCKSTEP_SOCKET.
 *
 * Exit codes, which scripts rely on: 0 success; 1 the answer is "no" (for
 * commands that ask a question, such as a wait that timed out); 2 an error
 * (cannot connect, bad usage, the daemon refused the request).
 *
 * Commands are rows of the table at the bottom: a new command is a function
 * and a row.
 */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon/version.h"
#include "http.h"

#define EXIT_NO 1
#define EXIT_ERROR 2
#define IO_TIMEOUT_S 30
#define MAX_RESPONSE (16u << 20)

struct ctl {
	char socket[sizeof(((struct sockaddr_un *)0)->sun_path) + 256];
};

struct reply {
	int status;
	char *raw;                     /* the whole response (owned) */
	const char *body;              /* inside raw */
	size_t body_len;
};

static void reply_free(struct reply *r)
{
	free(r->raw);
}

static void die_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void die_msg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("lockstepctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- talking to the daemon --------------------------------------------------- */

static int connect_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path) {
		die_msg("socket path too long: %s", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		die_msg("socket: %s", strerror(errno));
		return -1;
	}
	struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		die_msg("cannot connect to %s: %s (is lockstepd running?)", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads until the daemon closes (every response ends the connection). */
static char *read_all(int fd, size_t *len)
{
	size_t cap = 8192, n = 0;
	char *buf = malloc(cap);
	while (buf != NULL) {
		if (n == cap) {
			char *b = cap < MAX_RESPONSE ? realloc(buf, cap * 2) : NULL;
			if (b == NULL)
				break;
			buf = b;
			cap *= 2;
		}
		ssize_t r = recv(fd, buf + n, cap - n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		if (r == 0) {
			*len = n;
			return buf;
		}
		n += (size_t)r;
	}
	free(buf);
	return NULL;
}

/* One request; on failure prints why and returns -1. */
static int request(const struct ctl *c, const char *method, const char *path, const char *body,
		   struct reply *out)
{
	memset(out, 0, sizeof *out);
	int fd = connect_socket(c->socket);
	if (fd < 0)
		return -1;
	size_t blen = body != NULL ? strlen(body) : 0;
	char head[512];
	int hlen = snprintf(head, sizeof head,
			    "%s %s HTTP/1.1\r\nHost: lockstepd\r\nUser-Agent: lockstepctl/%s\r\n"
			    "Connection: close\r\nContent-Length: %zu\r\n%s\r\n",
			    method, path, LS_VERSION, blen,
			    blen > 0 ? "Content-Type: application/json\r\n" : "");
	size_t len = 0;
	if (hlen < 0 || (size_t)hlen >= sizeof head || write_all(fd, head, (size_t)hlen) < 0 ||
	    (blen > 0 && write_all(fd, body, blen) < 0) ||
	    (out->raw = read_all(fd, &len)) == NULL) {
		die_msg("%s %s on %s: %s", method, path, c->socket,
			errno == EAGAIN ? "timed out" : strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	if (ls_http_parse_response(out->raw, len, &out->status, &out->body, &out->body_len) < 0) {
		die_msg("%s %s on %s: malformed response", method, path, c->socket);
		reply_free(out);
		return -1;
	}
	return 0;
}

/* Prints an HTTP error answer ({"error": ...} when the body has one). */
static void report_http_error(const char *method, const char *path, const struct reply *r)
{
	json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
	const char *msg = json_string_value(json_object_get(j, "error"));
	die_msg("%s %s: %d %s%s%s", method, path, r->status, ls_http_reason(r->status),
		msg != NULL ? ": " : "", msg != NULL ? msg : "");
	json_decref(j);
}

/* GET path, expecting 2xx and a JSON body; returns the parsed body (caller
 * decrefs) and, if raw is non-NULL, the reply (caller frees). */
static json_t *get_json(const struct ctl *c, const char *path, struct reply *raw)
{
	struct reply r;
	if (request(c, "GET", path, NULL, &r) < 0)
		return NULL;
	if (r.status < 200 || r.status > 299) {
		report_http_error("GET", path, &r);
		reply_free(&r);
		return NULL;
	}
	json_error_t jerr;
	json_t *j = json_loadb(r.body, r.body_len, 0, &jerr);
	if (j == NULL)
		die_msg("GET %s: response is not JSON: %s", path, jerr.text);
	if (raw != NULL && j != NULL)
		*raw = r;
	else
		reply_free(&r);
	return j;
}

/* ---- human output ------------------------------------------------------------- */

struct kv {
	char *key, *value;
};

struct kvlist {
	struct kv *v;
	size_t n, cap;
};

static void kv_add(struct kvlist *l, const char *key, char *value)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = realloc(l->v, l->cap * sizeof *l->v);
		if (l->v == NULL) {
			die_msg("out of memory");
			exit(EXIT_ERROR);
		}
	}
	l->v[l->n].key = strdup(key);
	l->v[l->n].value = value;
	l->n++;
}

static char *scalar_text(json_t *v)
{
	char *s = NULL;
	if (json_is_string(v))
		s = strdup(json_string_value(v));
	else
		s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	return s != NULL ? s : strdup("?");
}

/* Flattens nested objects into "a.b" keys and arrays into "a[0]". */
static void flatten(struct kvlist *l, const char *prefix, json_t *v)
{
	char key[512];
	if (json_is_object(v)) {
		const char *k;
		json_t *child;
		json_object_foreach(v, k, child) {
			snprintf(key, sizeof key, "%s%s%s", prefix, prefix[0] ? "." : "", k);
			flatten(l, key, child);
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *child;
		json_array_foreach(v, i, child) {
			snprintf(key, sizeof key, "%s[%zu]", prefix, i);
			flatten(l, key, child);
		}
	} else {
		kv_add(l, prefix, scalar_text(v));
	}
}

static void print_aligned(json_t *obj)
{
	struct kvlist l = {0};
	flatten(&l, "", obj);
	size_t width = 0;
	for (size_t i = 0; i < l.n; i++)
		if (strlen(l.v[i].key) > width)
			width = strlen(l.v[i].key);
	for (size_t i = 0; i < l.n; i++) {
		printf("%s:%*s %s\n", l.v[i].key, (int)(width - strlen(l.v[i].key)), "",
		       l.v[i].value);
		free(l.v[i].key);
		free(l.v[i].value);
	}
	free(l.v);
}

/* ---- commands ------------------------------------------------------------------- */

static int cmd_status(struct ctl *c, int argc, char **argv)
{
	bool as_json = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			as_json = true;
		} else {
			die_msg("status: unknown argument '%s'", argv[i]);
			return EXIT_ERROR;
		}
	}
	struct reply raw;
	json_t *j = get_json(c, "/status", &raw);
	if (j == NULL)
		return EXIT_ERROR;
	if (as_json) {
		fwrite(raw.body, 1, raw.body_len, stdout);
		if (raw.body_len == 0 || raw.body[raw.body_len - 1] != '\n')
			putchar('\n');
	} else {
		print_aligned(j);
	}
	reply_free(&raw);
	json_decref(j);
	return 0;
}

static int cmd_routes(struct ctl *c, int argc, char **argv)
{
	(void)argv;
	if (argc > 1) {
		die_msg("routes: takes no arguments");
		return EXIT_ERROR;
	}
	json_t *j = get_json(c, "/", NULL);
	if (j == NULL)
		return EXIT_ERROR;
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(j, "routes"), i, r) {
		printf("%-6s %-20s %-6s %s\n", json_string_value(json_object_get(r, "method")),
		       json_string_value(json_object_get(r, "path")),
		       json_string_value(json_object_get(r, "access")),
		       json_string_value(json_object_get(r, "help")));
	}
	json_decref(j);
	return 0;
}

/* ---- lag, pause, resume, watch, wait (lib/lag.h's routes) ---------------------------- */

/* Parses the common "--json" and command-specific options; returns -1 after
 * reporting an unknown argument. */
struct lag_opts {
	bool json, converged;
	double max_lag, timeout, interval;   /* max_lag < 0: no bound */
	long count;
};

static int parse_lag_opts(const char *cmd, int argc, char **argv, struct lag_opts *o,
			  const char *allowed)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool has_value = i + 1 < argc;
		char *end = NULL;
		double *target = NULL;
		if (strcmp(a, "--json") == 0) {
			o->json = true;
			continue;
		}
		if (strcmp(a, "--converged") == 0 && strstr(allowed, "converged")) {
			o->converged = true;
			continue;
		}
		if (strcmp(a, "--max-lag-seconds") == 0 && strstr(allowed, "max-lag"))
			target = &o->max_lag;
		else if (strcmp(a, "--timeout") == 0 && strstr(allowed, "timeout"))
			target = &o->timeout;
		else if (strcmp(a, "--interval") == 0 && strstr(allowed, "interval"))
			target = &o->interval;
		else if (strcmp(a, "--count") == 0 && strstr(allowed, "count") && has_value) {
			o->count = strtol(argv[++i], &end, 10);
			if (*end == '\0' && o->count >= 0)
				continue;
			die_msg("%s: --count wants a number >= 0", cmd);
			return -1;
		}
		if (target == NULL) {
			die_msg("%s: unknown argument '%s'", cmd, a);
			return -1;
		}
		if (!has_value || (*target = strtod(argv[++i], &end), *end != '\0') || *target < 0) {
			die_msg("%s: %s wants a number of seconds >= 0", cmd, a);
			return -1;
		}
	}
	return 0;
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void print_body(const struct reply *r)
{
	fwrite(r->body, 1, r->body_len, stdout);
	if (r->body_len == 0 || r->body[r->body_len - 1] != '\n')
		putchar('\n');
}

static const char *jstr(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s != NULL ? s : dflt;
}

static const char *pos_text(json_t *pos)
{
	return jstr(pos, "position", "-");
}

static void fmt_bytes_h(json_t *v, char *buf, size_t size)
{
	if (!json_is_integer(v)) {
		snprintf(buf, size, "-");
		return;
	}
	double b = (double)json_integer_value(v);
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;
	while (b >= 1024 && u < 4) {
		b /= 1024;
		u++;
	}
	snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
}

static void fmt_seconds_h(json_t *v, char *buf, size_t size)
{
	if (json_is_number(v))
		snprintf(buf, size, "%.1f s", json_number_value(v));
	else
		snprintf(buf, size, "-");
}

/* The human view of GET /lag: stages, slot, one line per target. */
static void print_lag(json_t *lag)
{
	json_t *src = json_object_get(lag, "source");
	char b1[32], b2[32], b3[32];
	printf("pipeline %s   state %s%s\n", jstr(lag, "pipeline", "?"), jstr(lag, "state", "?"),
	       json_is_true(json_object_get(lag, "paused")) ? " (applying paused)" : "");
	fmt_bytes_h(json_object_get(src, "source_lag_bytes"), b1, sizeof b1);
	fmt_seconds_h(json_object_get(src, "sample_age_seconds"), b2, sizeof b2);
	printf("source   current %s   read %s   durable %s\n",
	       pos_text(json_object_get(src, "current")), pos_text(json_object_get(src, "read")),
	       pos_text(json_object_get(src, "durable")));
	printf("         source lag %s   sample %s old (%s clock)\n", b1, b2,
	       jstr(src, "clock", "no"));
	json_t *slot = json_object_get(src, "slot");
	if (json_is_object(slot)) {
		fmt_bytes_h(json_object_get(slot, "retained_wal_bytes"), b1, sizeof b1);
		json_t *safe = json_object_get(slot, "safe_wal_size");
		if (json_integer_value(safe) < 0)
			snprintf(b2, sizeof b2, "unlimited");
		else
			fmt_bytes_h(safe, b2, sizeof b2);
		printf("slot     %s   wal_status %s   retained %s   safe %s\n", jstr(slot, "name", "?"),
		       jstr(slot, "wal_status", "?"), b1, b2);
		if (json_is_string(json_object_get(slot, "warning")))
			printf("WARNING  %s\n", jstr(slot, "warning", ""));
	}
	printf("%-16s %-18s %12s %12s %10s\n", "TARGET", "APPLIED", "LAG BYTES", "LAG", "BUFFERED");
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(lag, "targets"), i, t) {
		fmt_bytes_h(json_object_get(t, "apply_lag_bytes"), b1, sizeof b1);
		fmt_seconds_h(json_object_get(t, "apply_lag_seconds"), b2, sizeof b2);
		json_t *br = json_object_get(t, "buffer_lag_records");
		if (json_is_integer(br))
			snprintf(b3, sizeof b3, "%lld", (long long)json_integer_value(br));
		else
			snprintf(b3, sizeof b3, "-");
		printf("%-16.16s %-18.18s %12s %12s %10s\n", jstr(t, "name", "?"),
		       pos_text(json_object_get(t, "applied")), b1, b2, b3);
	}
}

static void print_snapshot(json_t *lag)
{
	json_t *snap = json_object_get(lag, "snapshot");
	json_t *tables = json_object_get(snap, "tables");
	if (json_array_size(tables) == 0)
		return;
	printf("\nsnapshot (%.1f s)\n", json_number_value(json_object_get(snap, "seconds")));
	size_t i;
	json_t *t;
	json_array_foreach(tables, i, t) {
		json_int_t rows = json_integer_value(json_object_get(t, "rows"));
		json_int_t est = json_integer_value(json_object_get(t, "est_rows"));
		char pct[16] = "";
		if (est > 0 && strcmp(jstr(t, "state", ""), "copying") == 0)
			snprintf(pct, sizeof pct, " %3.0f%%", rows >= est ? 99.0 : 100.0 * rows / est);
		printf("  %-40.40s %-8s %12lld rows%s\n", jstr(t, "table", "?"), jstr(t, "state", "?"),
		       (long long)rows, pct);
	}
}

static int cmd_lag(struct ctl *c, int argc, char **argv)
{
	struct lag_opts o = { .max_lag = -1 };
	if (parse_lag_opts("lag", argc, argv, &o, "") < 0)
		return EXIT_ERROR;
	struct reply raw;
	json_t *j = get_json(c, "/lag", &raw);
	if (j == NULL)
		return EXIT_ERROR;
	if (o.json)
		print_body(&raw);
	else
		print_lag(j);
	reply_free(&raw);
	json_decref(j);
	return 0;
}

static int post_simple(struct ctl *c, const char *cmd, const char *path, int argc, char **argv)
{
	struct lag_opts o = { .max_lag = -1 };
	if (parse_lag_opts(cmd, argc, argv, &o, "") < 0)
		return EXIT_ERROR;
	struct reply r;
	if (request(c, "POST", path, NULL, &r) < 0)
		return EXIT_ERROR;
	int rc = 0;
	if (r.status < 200 || r.status > 299) {
		report_http_error("POST", path, &r);
		rc = EXIT_ERROR;
	} else if (o.json) {
		print_body(&r);
	} else {
		printf("%s\n", strcmp(cmd, "pause") == 0 ?
		       "applying paused on every target (capture continues)" : "applying resumed");
	}
	reply_free(&r);
	return rc;
}

static int cmd_pause(struct ctl *c, int argc, char **argv)
{
	return post_simple(c, "pause", "/pause", argc, argv);
}

static int cmd_resume(struct ctl *c, int argc, char **argv)
{
	return post_simple(c, "resume", "/resume", argc, argv);
}

/* A live view: the screen is redrawn every interval (default 1 s) until
 * interrupted, or count times; with --json one /lag document per line. */
static int cmd_watch(struct ctl *c, int argc, char **argv)
{
	struct lag_opts o = { .max_lag = -1, .interval = 1 };
	if (parse_lag_opts("watch", argc, argv, &o, "interval count") < 0)
		return EXIT_ERROR;
	bool tty = isatty(STDOUT_FILENO);
	for (long n = 0; o.count == 0 || n < o.count; n++) {
		if (n > 0)
			sleep_s(o.interval);
		json_t *j = get_json(c, "/lag", NULL);
		if (j == NULL)
			return EXIT_ERROR;
		if (o.json) {
			json_dumpf(j, stdout, JSON_COMPACT);
			putchar('\n');
		} else {
			if (tty)
				fputs("\033[H\033[2J", stdout);
			else if (n > 0)
				putchar('\n');
			print_lag(j);
			print_snapshot(j);
		}
		fflush(stdout);
		json_decref(j);
	}
	return 0;
}

/* Converged: the first source position sampled after the wait began has
 * been applied by every target, each target's apply lag is within
 * --max-lag-seconds (when given), and /status's "drift_clean" (when the
 * daemon reports one) is true.  Returns 0 converged, 1 not (yet), 2 error;
 * *why says what is missing. */
static int converged_now(struct ctl *c, json_t *lag, uint64_t s0, const struct lag_opts *o,
			 char *why, size_t size)
{
	json_t *targets = json_object_get(lag, "targets");
	if (json_array_size(targets) == 0) {
		die_msg("wait: this daemon runs no target");
		return EXIT_ERROR;
	}
	size_t i;
	json_t *t;
	json_array_foreach(targets, i, t) {
		json_t *applied = json_object_get(json_object_get(t, "applied"), "seq");
		if (!json_is_integer(applied) || (uint64_t)json_integer_value(applied) < s0) {
			snprintf(why, size, "target %s has not applied up to the source position yet",
				 jstr(t, "name", "?"));
			return EXIT_NO;
		}
		json_t *secs = json_object_get(t, "apply_lag_seconds");
		if (o->max_lag >= 0 && (!json_is_number(secs) || json_number_value(secs) > o->max_lag)) {
			snprintf(why, size, "target %s apply lag above %.3f s", jstr(t, "name", "?"),
				 o->max_lag);
			return EXIT_NO;
		}
	}
	json_t *st = get_json(c, "/status", NULL);
	if (st == NULL)
		return EXIT_ERROR;
	json_t *clean = json_object_get(st, "drift_clean");
	if (clean == NULL)
		clean = json_object_get(json_object_get(st, "drift"), "drift_clean");
	int rc = clean == NULL || json_is_true(clean) ? 0 : EXIT_NO;
	if (rc)
		snprintf(why, size, "the latest drift check has not found the targets clean");
	json_decref(st);
	return rc;
}

static int cmd_wait(struct ctl *c, int argc, char **argv)
{
	struct lag_opts o = { .max_lag = -1 };
	if (parse_lag_opts("wait", argc, argv, &o, "converged max-lag timeout") < 0)
		return EXIT_ERROR;
	if (!o.converged) {
		die_msg("wait: say what to wait for (--converged)");
		return EXIT_ERROR;
	}
	double t0 = mono_now();
	bool have_s0 = false;
	uint64_t s0 = 0;
	char why[256] = "no source position sampled since the wait began";
	for (;;) {
		json_t *lag = get_json(c, "/lag", NULL);
		if (lag == NULL)
			return EXIT_ERROR;
		double elapsed = mono_now() - t0;
		if (strcmp(jstr(lag, "state", ""), "failed") == 0) {
			die_msg("wait: the pipeline failed (see lockstepctl status)");
			json_decref(lag);
			return EXIT_ERROR;
		}
		json_t *src = json_object_get(lag, "source");
		json_t *cur = json_object_get(json_object_get(src, "current"), "seq");
		json_t *age = json_object_get(src, "sample_age_seconds");
		/* the position must be sampled after the question was asked */
		if (!have_s0 && json_is_integer(cur) &&
		    (!json_is_number(age) || json_number_value(age) <= elapsed)) {
			have_s0 = true;
			s0 = (uint64_t)json_integer_value(cur);
		}
		int rc = have_s0 ? converged_now(c, lag, s0, &o, why, sizeof why) : EXIT_NO;
		bool timed_out = rc == EXIT_NO && o.timeout > 0 && elapsed >= o.timeout;
		if (rc != EXIT_NO || timed_out) {
			if (o.json) {
				json_t *out = json_pack("{s:b,s:f,s:O}", "converged", rc == 0,
							"waited_seconds", elapsed, "lag", lag);
				if (have_s0)
					json_object_set_new(out, "source_seq", json_integer((json_int_t)s0));
				if (rc != 0)
					json_object_set_new(out, "reason", json_string(why));
				json_dumpf(out, stdout, JSON_COMPACT);
				putchar('\n');
				json_decref(out);
			} else if (rc == 0) {
				printf("converged after %.1f s\n", elapsed);
			} else if (rc == EXIT_NO) {
				printf("not converged after %.1f s: %s\n", elapsed, why);
			}
			json_decref(lag);
			return rc == 0 ? 0 : timed_out ? EXIT_NO : EXIT_ERROR;
		}
		json_decref(lag);
		sleep_s(0.2);
	}
}

static double mono_clock(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- drift (lib/drift.h's routes) ------------------------------------------------- */

/* Exit code of a finished check: 0 clean, 1 drift found, 2 it failed. */
static int drift_exit(json_t *report)
{
	json_t *last = json_object_get(report, "last");
	if (!json_is_object(last))
		return EXIT_ERROR;
	if (json_is_string(json_object_get(last, "error")))
		return EXIT_ERROR;
	return json_is_true(json_object_get(last, "clean")) ? 0 : EXIT_NO;
}

static void print_drift(json_t *j)
{
	json_t *last = json_object_get(j, "last");
	if (json_is_object(last))
		printf("drift: %s (check %lld finished %s, %lld row(s) differ)%s%s\n",
		       json_is_true(json_object_get(last, "clean")) ? "clean" : "NOT clean",
		       (long long)json_integer_value(json_object_get(last, "id")),
		       json_string_value(json_object_get(last, "finished_at")),
		       (long long)json_integer_value(json_object_get(j, "drift_rows")),
		       json_is_string(json_object_get(last, "error")) ? "; error: " : "",
		       json_is_string(json_object_get(last, "error"))
			       ? json_string_value(json_object_get(last, "error")) : "");
	else
		printf("drift: no check has completed yet\n");
	json_t *run = json_object_get(j, "running");
	if (json_is_object(run))
		printf("running: check %lld, %lld of %lld table(s) done, %lld row(s) checked\n",
		       (long long)json_integer_value(json_object_get(run, "id")),
		       (long long)json_integer_value(json_object_get(run, "tables_done")),
		       (long long)json_integer_value(json_object_get(run, "tables")),
		       (long long)json_integer_value(json_object_get(run, "rows_checked")));
	size_t i;
	json_t *t;
	json_t *tables = json_object_get(j, "tables");
	if (json_array_size(tables) > 0)
		printf("%-32s %-12s %10s %8s %8s %9s  %s\n", "TABLE", "TARGET", "CHECKED",
		       "MISSING", "EXTRA", "DIFFERENT", "AS OF");
	json_array_foreach(tables, i, t) {
		const char *pos = json_string_value(json_object_get(t, "position"));
		printf("%-32s %-12s %10lld %8lld %8lld %9lld  %s\n",
		       json_string_value(json_object_get(t, "table")),
		       json_string_value(json_object_get(t, "target")),
		       (long long)json_integer_value(json_object_get(t, "rows_checked")),
		       (long long)json_integer_value(json_object_get(t, "missing")),
		       (long long)json_integer_value(json_object_get(t, "extra")),
		       (long long)json_integer_value(json_object_get(t, "different")),
		       pos ? pos : "-");
		const char *err = json_string_value(json_object_get(t, "error"));
		if (err)
			printf("    error: %s\n", err);
		size_t k;
		json_t *key;
		json_array_foreach(json_object_get(t, "keys"), k, key)
			printf("    %-9s %s\n", json_string_value(json_object_get(key, "kind")),
			       json_string_value(json_object_get(key, "key")));
	}
}

/* Appends s percent-encoded for a query string. */
static void url_encode(char *out, size_t size, const char *s)
{
	size_t o = strlen(out);
	for (; *s && o + 4 < size; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    ch == '.' || ch == '_' || ch == '-')
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, size - o, "%%%02X", ch);
	}
	out[o] = '\0';
}

/* POSTs path; returns the started check's number or -1. */
static long long drift_start(struct ctl *c, const char *path)
{
	struct reply r;
	if (request(c, "POST", path, NULL, &r) < 0)
		return -1;
	if (r.status != 202) {
		report_http_error("POST", path, &r);
		reply_free(&r);
		return -1;
	}
	json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
	long long id = json_is_integer(json_object_get(j, "check"))
			       ? (long long)json_integer_value(json_object_get(j, "check")) : -1;
	if (id < 0)
		die_msg("POST %s: no check number in the answer", path);
	json_decref(j);
	reply_free(&r);
	return id;
}

/* Polls GET /drift until check id has finished; returns the report. */
static json_t *drift_wait(struct ctl *c, long long id, double timeout, struct reply *raw)
{
	double deadline = timeout > 0 ? mono_clock() + timeout : 0;
	for (;;) {
		struct reply r;
		json_t *j = get_json(c, "/drift", &r);
		if (j == NULL)
			return NULL;
		json_t *last = json_object_get(j, "last");
		if (json_is_object(last) && json_integer_value(json_object_get(last, "id")) >= id) {
			*raw = r;
			return j;
		}
		json_decref(j);
		reply_free(&r);
		if (deadline > 0 && mono_clock() > deadline) {
			die_msg("drift: check %lld did not finish within %.0f s", id, timeout);
			return NULL;
		}
		struct timespec ts = { 0, 250 * 1000000L };
		nanosleep(&ts, NULL);
	}
}

static int cmd_drift(struct ctl *c, int argc, char **argv)
{
	bool as_json = false, check = false, repair = false;
	const char *table = NULL;
	double timeout = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			as_json = true;
		} else if (strcmp(argv[i], "--check") == 0) {
			check = true;
			if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
				table = argv[++i];
		} else if (strcmp(argv[i], "--repair") == 0) {
			repair = true;
		} else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			char *end;
			timeout = strtod(argv[++i], &end);
			if (*end != '\0' || timeout < 0) {
				die_msg("drift: --timeout wants a number of seconds");
				return EXIT_ERROR;
			}
		} else {
			die_msg("drift: unknown argument '%s'", argv[i]);
			return EXIT_ERROR;
		}
	}
	if (check && repair) {
		die_msg("drift: --check and --repair do not go together (a repair checks again)");
		return EXIT_ERROR;
	}
	struct reply raw;
	json_t *j;
	if (check || repair) {
		char path[1024] = "/drift/check";
		if (repair)
			snprintf(path, sizeof path, "/drift/repair");
		else if (table) {
			strcat(path, "?table=");
			url_encode(path, sizeof path, table);
		}
		long long id = drift_start(c, path);
		if (id < 0)
			return EXIT_ERROR;
		j = drift_wait(c, id, timeout, &raw);
	} else {
		j = get_json(c, "/drift", &raw);
	}
	if (j == NULL)
		return EXIT_ERROR;
	if (as_json) {
		fwrite(raw.body, 1, raw.body_len, stdout);
		if (raw.body_len == 0 || raw.body[raw.body_len - 1] != '\n')
			putchar('\n');
	} else {
		print_drift(j);
	}
	int rc = check || repair ? drift_exit(j) : 0;
	reply_free(&raw);
	json_decref(j);
	return rc;
}

/* ---- cutover, rollback (lib/cutover.h's routes) ---------------------------------------- */

static void print_step(json_t *st)
{
	printf("  %-13s %-8s %8.1f s  %s\n", jstr(st, "step", "?"), jstr(st, "state", "?"),
	       json_number_value(json_object_get(st, "seconds")), jstr(st, "detail", ""));
	fflush(stdout);
}

/* The end of a procedure: what happened, the report; exit 0 succeeded,
 * 1 a check failed (the side that served before still serves), 2 error. */
static int print_outcome(json_t *pr, bool as_json, json_t *doc)
{
	const char *outcome = jstr(pr, "outcome", "?");
	if (as_json) {
		json_dumpf(doc, stdout, JSON_COMPACT);
		putchar('\n');
	} else {
		printf("%s %s", jstr(pr, "kind", "?"), outcome);
		if (json_is_string(json_object_get(pr, "reason")))
			printf(": %s", jstr(pr, "reason", ""));
		putchar('\n');
		json_t *w = json_object_get(pr, "write_unavailable_seconds");
		if (json_is_number(w))
			printf("writes were fenced for %.3f s\n", json_number_value(w));
		if (json_is_string(json_object_get(pr, "plan")))
			printf("plan:\n%s", jstr(pr, "plan", ""));
		if (json_is_string(json_object_get(pr, "report")))
			printf("report: %s (and .txt)\n", jstr(pr, "report", ""));
	}
	return strcmp(outcome, "succeeded") == 0 ? 0 : strcmp(outcome, "failed") == 0 ? EXIT_NO
	       : EXIT_ERROR;
}

/* Follows procedure id on GET /cutover until it ends, printing each step
 * as it finishes. */
static int follow_procedure(struct ctl *c, long long id, bool as_json)
{
	size_t shown = 0;
	for (;;) {
		json_t *j = get_json(c, "/cutover", NULL);
		if (j == NULL)
			return EXIT_ERROR;
		json_t *pr = json_object_get(j, "procedure");
		if (!json_is_object(pr) || json_integer_value(json_object_get(pr, "id")) != id) {
			json_decref(j);
			die_msg("procedure %lld is gone from GET /cutover", id);
			return EXIT_ERROR;
		}
		json_t *steps = json_object_get(pr, "steps");
		/* "active" until the procedure has finished; the outcome may be
		 * known before (a failed check, while the fence is lifted) */
		json_t *active = json_object_get(pr, "active");
		bool running = json_is_boolean(active) ? json_is_true(active)
			       : strcmp(jstr(pr, "outcome", ""), "running") == 0;
		for (; !as_json && shown < json_array_size(steps); shown++) {
			json_t *st = json_array_get(steps, shown);
			if (strcmp(jstr(st, "state", ""), "running") == 0)
				break;
			print_step(st);
		}
		if (!running) {
			int rc = print_outcome(pr, as_json, j);
			json_decref(j);
			return rc;
		}
		json_decref(j);
		sleep_s(0.3);
	}
}

static int cutover_run(struct ctl *c, const char *cmd, int argc, char **argv)
{
	bool rollback = strcmp(cmd, "rollback") == 0, as_json = false;
	char path[4096];
	snprintf(path, sizeof path, "/%s?", cmd);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *key = NULL;
		if (strcmp(a, "--json") == 0) {
			as_json = true;
			continue;
		}
		if (strcmp(a, "--dry-run") == 0 && !rollback) {
			strcat(path, "dry_run=1&");
			continue;
		}
		if (strcmp(a, "--tables") == 0 && !rollback)
			key = "tables";
		else if (strcmp(a, "--app-role") == 0 && !rollback)
			key = "app_role";
		else if (strcmp(a, "--target") == 0 && !rollback)
			key = "target";
		else if (strcmp(a, "--max-lag-seconds") == 0)
			key = "max_lag";
		else if (strcmp(a, "--timeout") == 0)
			key = "timeout";
		if (key == NULL || i + 1 >= argc) {
			die_msg("%s: %s '%s'", cmd, key ? "missing value for" : "unknown argument", a);
			return EXIT_ERROR;
		}
		/* --app-role may repeat: the daemon takes a comma-separated list */
		char *prev = strstr(path, "app_role=");
		if (strcmp(key, "app_role") == 0 && prev != NULL) {
			char tail[2048];
			snprintf(tail, sizeof tail, "%s", strchr(prev, '&'));
			*strchr(prev, '&') = '\0';
			strcat(path, "%2C");
			url_encode(path, sizeof path, argv[++i]);
			strncat(path, tail, sizeof path - strlen(path) - 1);
			continue;
		}
		strncat(path, key, sizeof path - strlen(path) - 1);
		strncat(path, "=", sizeof path - strlen(path) - 1);
		url_encode(path, sizeof path, argv[++i]);
		strncat(path, "&", sizeof path - strlen(path) - 1);
	}
	path[strlen(path) - 1] = '\0';   /* the last '&' or the '?' */
	struct reply r;
	if (request(c, "POST", path, NULL, &r) < 0)
		return EXIT_ERROR;
	if (r.status != 202) {
		report_http_error("POST", path, &r);
		reply_free(&r);
		return EXIT_ERROR;
	}
	json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
	long long id = json_is_integer(json_object_get(j, "id"))
			       ? (long long)json_integer_value(json_object_get(j, "id")) : -1;
	json_decref(j);
	reply_free(&r);
	if (id < 0) {
		die_msg("POST %s: no procedure number in the answer", path);
		return EXIT_ERROR;
	}
	if (!as_json)
		printf("%s %lld started\n", cmd, id);
	return follow_procedure(c, id, as_json);
}

static int cmd_cutover(struct ctl *c, int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--status") == 0) {
		struct reply raw;
		json_t *j = get_json(c, "/cutover", &raw);
		if (j == NULL)
			return EXIT_ERROR;
		print_body(&raw);
		reply_free(&raw);
		json_decref(j);
		return 0;
	}
	return cutover_run(c, "cutover", argc, argv);
}

static int cmd_rollback(struct ctl *c, int argc, char **argv)
{
	return cutover_run(c, "rollback", argc, argv);
}

struct command {
	const char *name;
	int (*run)(struct ctl *c, int argc, char **argv);   /* argv[0] is the name */
	const char *args;
	const char *help;
};

static const struct command commands[] = {
	{"status", cmd_status, "[--json]", "Pipeline status (\"key: value\" lines, or JSON)."},
	{"routes", cmd_routes, "", "The daemon's control routes and their access."},
	{"drift", cmd_drift, "[--check [TABLE] | --repair] [--timeout S] [--json]",
	 "Drift report; --check / --repair (re-copy the differing rows, check again) wait: "
	 "exit 0 clean, 1 drift, 2 error."},
	{"lag", cmd_lag, "[--json]", "Positions and lag per stage and per target."},
	{"pause", cmd_pause, "[--json]", "Stop applying on every target (capture continues)."},
	{"resume", cmd_resume, "[--json]", "Resume applying after pause."},
	{"watch", cmd_watch, "[--interval S] [--count N] [--json]",
	 "Live view: positions, lag, snapshot progress."},
	{"wait", cmd_wait, "--converged [--max-lag-seconds S] [--timeout T] [--json]",
	 "Targets caught up with the source (lag <= S, drift clean)."},
	{"cutover", cmd_cutover, "[--tables P] [--app-role R]... [--max-lag-seconds S] "
	 "[--target T] [--timeout S] [--dry-run] [--json] | --status",
	 "Move the application to the new side step by step and follow it: exit 0 done, "
	 "1 a check failed (the old side still serves), 2 error."},
	{"rollback", cmd_rollback, "[--max-lag-seconds S] [--timeout S] [--json]",
	 "Within the rollback window, the same the other way (exit codes as cutover)."},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: lockstepctl [--socket PATH | --config FILE] COMMAND [ARGS]\n"
		   "       lockstepctl --version\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		char left[96];
		snprintf(left, sizeof left, "%s %s", commands[i].name, commands[i].args);
		if (strlen(left) > 22)   /* long arguments: help on its own line */
			fprintf(f, "  %s\n  %-22s %s\n", left, "", commands[i].help);
		else
			fprintf(f, "  %-22s %s\n", left, commands[i].help);
	}
	fprintf(f, "\nThe socket defaults to the config's [control] socket, else "
		   "$LOCKSTEP_SOCKET.\nExit: 0 ok, 1 the answer is no, 2 error.\n");
}

/* ---- finding the socket ------------------------------------------------------- */

/* Only what locates the socket is read from the config, with inih directly:
 * loading it whole would resolve its secrets (file:, credential:), which the
 * operator running lockstepctl usually cannot and need not read. */
struct sock_cfg {
	char socket[4096], state_dir[4096], name[128];
};

static int on_ini(void *user, const char *section, const char *key, const char *value)
{
	struct sock_cfg *s = user;
	if (strcmp(section, "control") == 0 && strcmp(key, "socket") == 0)
		snprintf(s->socket, sizeof s->socket, "%s", value);
	else if (strcmp(section, "pipeline") == 0 && strcmp(key, "state_dir") == 0)
		snprintf(s->state_dir, sizeof s->state_dir, "%s", value);
	else if (strcmp(section, "pipeline") == 0 && strcmp(key, "name") == 0)
		snprintf(s->name, sizeof s->name, "%s", value);
	return 1;
}

static int socket_from_config(const char *path, char *out, size_t size)
{
	struct sock_cfg s = {0};
	if (ini_parse(path, on_ini, &s) == -1) {
		die_msg("cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	int n;
	if (s.socket[0] != '\0')
		n = snprintf(out, size, "%s", s.socket);
	else if (s.state_dir[0] != '\0')
		n = snprintf(out, size, "%s/control.sock", s.state_dir);
	else if (s.name[0] != '\0')
		n = snprintf(out, size, "/var/lib/lockstep/%s/control.sock", s.name);
	else {
		die_msg("%s: no [control] socket and no [pipeline] name", path);
		return -1;
	}
	if (n < 0 || (size_t)n >= size) {
		die_msg("%s: socket path too long", path);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"config", required_argument, NULL, 'c'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *sock = NULL, *config = NULL;
	int opt;
	/* "+" stops at the command, so its own options reach it untouched. */
	while ((opt = getopt_long(argc, argv, "+s:c:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': sock = optarg; break;
		case 'c': config = optarg; break;
		case 'V': printf("lockstepctl %s\n", LS_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_ERROR;
		}
	}
	if (optind >= argc || (sock != NULL && config != NULL)) {
		usage(stderr);
		return EXIT_ERROR;
	}
	const struct command *cmd = NULL;
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(commands[i].name, argv[optind]) == 0)
			cmd = &commands[i];
	if (cmd == NULL) {
		die_msg("unknown command '%s'", argv[optind]);
		usage(stderr);
		return EXIT_ERROR;
	}
	struct ctl c = {{0}};
	if (sock == NULL && config == NULL)
		sock = getenv("LOCKSTEP_SOCKET");
	if (config != NULL) {
		if (socket_from_config(config, c.socket, sizeof c.socket) < 0)
			return EXIT_ERROR;
	} else if (sock != NULL && sock[0] != '\0') {
		snprintf(c.socket, sizeof c.socket, "%s", sock);
	} else {
		die_msg("no control socket: use --socket PATH, --config FILE or set LOCKSTEP_SOCKET");
		return EXIT_ERROR;
	}
	optind++;
	return cmd->run(&c, argc - optind + 1, argv + optind - 1);
}
