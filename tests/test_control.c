/* Unit tests for lib/control: the server runs on a libuv loop in the test's
 * main thread; a client thread does blocking socket I/O and hands its
 * results back (asserts happen on the main thread after it is joined). */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "control.h"
#include "http.h"

/* ---- fixture ---------------------------------------------------------------- */

struct fx {
	uv_loop_t loop;
	struct ls_control *ctl;
	char dir[64];
	char sock[128];
	int tcp_port;
	bool closed;
};

/* One request/response with the server, done by the client thread. */
struct exchange {
	const char *req;           /* NULL ends a list; "" sends nothing */
	size_t req_len;            /* 0 = strlen(req) */
	bool tcp;
	bool wait_continue;        /* send the head, await "100 Continue", then
	                              the body */
	char resp[4096];
	size_t resp_len;
	int status;                /* parsed status, -1 when unparsable */
	json_t *json;              /* parsed body, or NULL */
	double seconds;            /* connect to EOF */
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int connect_to(const struct fx *f, bool tcp)
{
	int fd;
	if (tcp) {
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->tcp_port)};
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
			close(fd);
			return -1;
		}
	} else {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		if (snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->sock) >= (int)sizeof sa.sun_path)
			return -1;
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
			close(fd);
			return -1;
		}
	}
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return fd;
}

static void do_exchange(const struct fx *f, struct exchange *x)
{
	double start = now_s();
	x->status = -1;
	int fd = connect_to(f, x->tcp);
	if (fd < 0)
		return;
	size_t len = x->req_len ? x->req_len : strlen(x->req);
	if (x->wait_continue) {
		const char *body = strstr(x->req, "\r\n\r\n") + 4;
		send(fd, x->req, (size_t)(body - x->req), MSG_NOSIGNAL);
		char interim[64] = "";
		ssize_t r = recv(fd, interim, sizeof interim - 1, 0);
		if (r <= 0 || strcmp(interim, "HTTP/1.1 100 Continue\r\n\r\n") != 0) {
			close(fd);
			return;
		}
		len -= (size_t)(body - x->req);
		x->req = body;
	}
	/* The server may answer and stop reading before all of an oversized
	 * request is sent; a failed send is fine, the answer is what counts. */
	for (size_t off = 0; off < len;) {
		ssize_t w = send(fd, x->req + off, len - off, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	for (;;) {
		ssize_t r = recv(fd, x->resp + x->resp_len, sizeof x->resp - 1 - x->resp_len, 0);
		if (r <= 0)
			break;
		x->resp_len += (size_t)r;
	}
	x->seconds = now_s() - start;
	close(fd);
	const char *body;
	size_t blen;
	if (ls_http_parse_response(x->resp, x->resp_len, &x->status, &body, &blen) == 0)
		x->json = json_loadb(body, blen, 0, NULL);
}

struct client {
	struct fx *f;
	struct exchange *xs;
	uv_async_t done;
	uv_timer_t deadline;
};

static void *client_main(void *arg)
{
	struct client *c = arg;
	for (struct exchange *x = c->xs; x->req != NULL; x++)
		do_exchange(c->f, x);
	uv_async_send(&c->done);
	return NULL;
}

static void on_client_done(uv_async_t *a)
{
	uv_stop(a->loop);
}

static void on_deadline(uv_timer_t *t)
{
	(void)t;
	ck_abort_msg("client did not finish within the deadline");
}

/* Runs the exchanges (terminated by req == NULL) while serving. */
static void run_client(struct fx *f, struct exchange *xs)
{
	struct client c = {.f = f, .xs = xs};
	uv_async_init(&f->loop, &c.done, on_client_done);
	uv_timer_init(&f->loop, &c.deadline);
	uv_timer_start(&c.deadline, on_deadline, 30000, 0);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, client_main, &c), 0);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	pthread_join(th, NULL);
	uv_close((uv_handle_t *)&c.done, NULL);
	uv_close((uv_handle_t *)&c.deadline, NULL);
	uv_run(&f->loop, UV_RUN_NOWAIT);
}

static int free_tcp_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static int handle_echo(const struct ls_control_request *req, struct ls_control_response *resp,
		       void *data, struct ls_err *err)
{
	(void)err;
	int *calls = data;
	(*calls)++;
	struct ls_json *j = ls_control_reply_json(resp);
	ls_json_object_begin(j);
	ls_json_kv_string(j, "method", req->method);
	ls_json_kv_string(j, "query", req->query);
	ls_json_kv_string(j, "body", req->body);
	ls_json_kv_bool(j, "admin", req->admin);
	ls_json_kv_bool(j, "tcp", req->tcp);
	ls_json_object_end(j);
	return 0;
}

static int handle_fail(const struct ls_control_request *req, struct ls_control_response *resp,
		       void *data, struct ls_err *err)
{
	(void)req;
	(void)resp;
	(void)data;
	return ls_err_set(err, false, "drift engine not ready");
}

static int handle_text(const struct ls_control_request *req, struct ls_control_response *resp,
		       void *data, struct ls_err *err)
{
	(void)req;
	(void)data;
	(void)err;
	ls_control_reply_status(resp, 202);
	ls_control_reply_header(resp, "X-Evil", "a\r\nInjected: yes");
	ls_control_reply_header(resp, "Retry-After", "5");
	ls_control_reply_text(resp, "lag_bytes %d\n", 42);
	return 0;
}

static void status_a(struct ls_json *j, void *data)
{
	(void)data;
	ls_json_kv_string(j, "pipeline", "shop");
}

static void status_b(struct ls_json *j, void *data)
{
	ls_json_kv_int(j, "targets", *(int *)data);
}

static int echo_calls;
static int two = 2;

static void fx_start(struct fx *f, unsigned idle_ms, bool tcp)
{
	memset(f, 0, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/ls-test-control.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	/* The server creates the missing "run" directory itself. */
	snprintf(f->sock, sizeof f->sock, "%s/run/ctl.sock", f->dir);
	ck_assert_int_eq(uv_loop_init(&f->loop), 0);
	char listen[64];
	if (tcp) {
		f->tcp_port = free_tcp_port();
		snprintf(listen, sizeof listen, "127.0.0.1:%d", f->tcp_port);
	}
	struct ls_control_options o = {
		.socket_path = f->sock, .tcp_listen = tcp ? listen : NULL,
		.idle_timeout_ms = idle_ms,
	};
	struct ls_err err = {0};
	ck_assert_int_eq(ls_control_new(&f->loop, &o, &f->ctl, &err), 0);
	ck_assert_int_eq(ls_control_route(f->ctl, "GET", "/echo", LS_CONTROL_READ, handle_echo,
					  &echo_calls, "Echo the request."), 0);
	ck_assert_int_eq(ls_control_route(f->ctl, "POST", "/echo", LS_CONTROL_ADMIN, handle_echo,
					  &echo_calls, "Echo, admin only."), 0);
	ck_assert_int_eq(ls_control_route(f->ctl, "GET", "/echo", LS_CONTROL_READ, handle_echo,
					  &echo_calls, "duplicate"), -1);
	ck_assert_int_eq(ls_control_route(f->ctl, "GET", "/fail", LS_CONTROL_READ, handle_fail,
					  NULL, "Always fails."), 0);
	ck_assert_int_eq(ls_control_route(f->ctl, "GET", "/text", LS_CONTROL_READ, handle_text,
					  NULL, "Plain text."), 0);
	ck_assert_int_eq(ls_control_status_provider(f->ctl, status_a, NULL), 0);
	ck_assert_int_eq(ls_control_status_provider(f->ctl, status_b, &two), 0);
	ck_assert_msg(ls_control_start(f->ctl, &err) == 0, "%s", err.msg);
}

static void on_closed(void *data)
{
	((struct fx *)data)->closed = true;
}

static void fx_stop(struct fx *f)
{
	ls_control_close(f->ctl, on_closed, f);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	ck_assert(f->closed);
	ck_assert_int_eq(uv_loop_close(&f->loop), 0);
	ck_assert_int_eq(access(f->sock, F_OK), -1);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	ck_assert_int_eq(system(cmd), 0);
}

static const char *jstr(json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));
	return s != NULL ? s : "(missing)";
}

/* ---- tests ---------------------------------------------------------------- */

START_TEST(control_dispatches_routes)
{
	struct fx f;
	fx_start(&f, 0, false);
	struct exchange xs[] = {
		{.req = "GET /echo?x=1 HTTP/1.1\r\n\r\n"},
		{.req = "POST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody"},
		{.req = "GET /nope HTTP/1.1\r\n\r\n"},
		{.req = "DELETE /echo HTTP/1.1\r\n\r\n"},
		{.req = "GET /fail HTTP/1.1\r\n\r\n"},
		{.req = "GET /text HTTP/1.1\r\n\r\n"},
		{.req = "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
			"later", .wait_continue = true},
		{.req = NULL},
	};
	echo_calls = 0;
	run_client(&f, xs);
	ck_assert_int_eq(xs[0].status, 200);
	ck_assert_str_eq(jstr(xs[0].json, "query"), "x=1");
	ck_assert_str_eq(jstr(xs[0].json, "method"), "GET");
	ck_assert_ptr_nonnull(strstr(xs[0].resp, "Content-Type: application/json\r\n"));
	ck_assert_ptr_nonnull(strstr(xs[0].resp, "Connection: close\r\n"));
	/* The test runs as root, so the unix peer is admin. */
	ck_assert_int_eq(xs[1].status, 200);
	ck_assert_str_eq(jstr(xs[1].json, "body"), "body");
	ck_assert(json_is_true(json_object_get(xs[1].json, "admin")));
	ck_assert_int_eq(xs[2].status, 404);
	ck_assert_int_eq(xs[3].status, 405);
	ck_assert_ptr_nonnull(strstr(xs[3].resp, "Allow: GET, POST\r\n"));
	ck_assert_int_eq(xs[4].status, 500);
	ck_assert_str_eq(jstr(xs[4].json, "error"), "drift engine not ready");
	ck_assert_int_eq(xs[5].status, 202);
	ck_assert_ptr_nonnull(strstr(xs[5].resp, "Content-Type: text/plain; charset=utf-8\r\n"));
	ck_assert_ptr_nonnull(strstr(xs[5].resp, "Retry-After: 5\r\n"));
	ck_assert_ptr_null(strstr(xs[5].resp, "Injected"));
	ck_assert_ptr_nonnull(strstr(xs[5].resp, "\r\n\r\nlag_bytes 42\n"));
	ck_assert_int_eq(xs[6].status, 200);
	ck_assert_str_eq(jstr(xs[6].json, "body"), "later");
	ck_assert_int_eq(echo_calls, 3);
	for (size_t i = 0; xs[i].req != NULL; i++)
		json_decref(xs[i].json);
	fx_stop(&f);
}
END_TEST

START_TEST(control_lists_routes_and_collects_status)
{
	struct fx f;
	fx_start(&f, 0, false);
	struct exchange xs[] = {
		{.req = "GET / HTTP/1.1\r\n\r\n"},
		{.req = "GET /status HTTP/1.0\r\n\r\n"},
		{.req = NULL},
	};
	run_client(&f, xs);
	ck_assert_int_eq(xs[0].status, 200);
	json_t *routes = json_object_get(xs[0].json, "routes");
	ck_assert_uint_eq(json_array_size(routes), 6);
	bool found_admin = false;
	size_t i;
	json_t *r;
	json_array_foreach(routes, i, r) {
		if (strcmp(jstr(r, "path"), "/echo") == 0 && strcmp(jstr(r, "method"), "POST") == 0) {
			ck_assert_str_eq(jstr(r, "access"), "admin");
			ck_assert_str_eq(jstr(r, "help"), "Echo, admin only.");
			found_admin = true;
		}
	}
	ck_assert(found_admin);
	ck_assert_int_eq(xs[1].status, 200);
	ck_assert_str_eq(jstr(xs[1].json, "pipeline"), "shop");
	ck_assert_int_eq(json_integer_value(json_object_get(xs[1].json, "targets")), 2);
	json_decref(xs[0].json);
	json_decref(xs[1].json);
	fx_stop(&f);
}
END_TEST

START_TEST(control_rejects_malformed_and_oversized_requests)
{
	struct fx f;
	fx_start(&f, 0, false);
	size_t big = 100000;
	char *huge_head = malloc(big + 1);
	memcpy(huge_head, "GET /echo HTTP/1.1\r\nX: ", 23);
	memset(huge_head + 23, 'x', big - 23);
	huge_head[big] = '\0';
	struct exchange xs[] = {
		{.req = "GARBAGE\r\n\r\n"},
		{.req = "\x00\x01\x02\xff\r\n\r\n", .req_len = 8},
		{.req = huge_head},
		{.req = "POST /echo HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n"},
		{.req = "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{.req = "GET /echo HTTP/3.0\r\n\r\n"},
		{.req = "GET /echo HTTP/1.1\r\n\r\n"},
		{.req = NULL},
	};
	run_client(&f, xs);
	ck_assert_int_eq(xs[0].status, 400);
	ck_assert_str_eq(jstr(xs[0].json, "error"), "malformed request line");
	ck_assert_int_eq(xs[1].status, 400);
	ck_assert_int_eq(xs[2].status, 431);
	ck_assert_int_eq(xs[3].status, 413);
	ck_assert_int_eq(xs[4].status, 501);
	ck_assert_int_eq(xs[5].status, 505);
	ck_assert_int_eq(xs[6].status, 200);
	for (size_t i = 0; xs[i].req != NULL; i++)
		json_decref(xs[i].json);
	free(huge_head);
	fx_stop(&f);
}
END_TEST

START_TEST(control_closes_idle_connections)
{
	struct fx f;
	fx_start(&f, 200, false);
	struct exchange xs[] = {
		{.req = ""},                                   /* says nothing */
		{.req = "GET /echo HTTP/1.1\r\nHost: x\r\n"},  /* never finishes */
		{.req = NULL},
	};
	run_client(&f, xs);
	/* Closed without an answer, well before the client's own 10 s timeout. */
	ck_assert_uint_eq(xs[0].resp_len, 0);
	ck_assert(xs[0].seconds >= 0.15 && xs[0].seconds < 5.0);
	ck_assert_int_eq(xs[1].status, 408);
	ck_assert(xs[1].seconds >= 0.15 && xs[1].seconds < 5.0);
	json_decref(xs[1].json);
	fx_stop(&f);
}
END_TEST

START_TEST(control_tcp_listener_is_read_only)
{
	struct fx f;
	fx_start(&f, 0, true);
	struct exchange xs[] = {
		{.req = "GET /echo HTTP/1.1\r\n\r\n", .tcp = true},
		{.req = "POST /echo HTTP/1.1\r\n\r\n", .tcp = true},
		{.req = NULL},
	};
	echo_calls = 0;
	run_client(&f, xs);
	ck_assert_int_eq(xs[0].status, 200);
	ck_assert(json_is_true(json_object_get(xs[0].json, "tcp")));
	ck_assert(json_is_false(json_object_get(xs[0].json, "admin")));
	ck_assert_int_eq(xs[1].status, 403);
	ck_assert_int_eq(echo_calls, 1);
	json_decref(xs[0].json);
	json_decref(xs[1].json);
	fx_stop(&f);
}
END_TEST

START_TEST(control_socket_mode_and_stale_socket_handling)
{
	struct fx f;
	fx_start(&f, 0, false);
	struct stat st;
	ck_assert_int_eq(stat(f.sock, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0660);

	/* A second server on a live socket refuses and leaves it alone. */
	struct ls_control *second = NULL;
	struct ls_control_options o = {.socket_path = f.sock};
	struct ls_err err = {0};
	ck_assert_int_eq(ls_control_new(&f.loop, &o, &second, &err), 0);
	ck_assert_int_eq(ls_control_start(second, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "in use"));
	ls_control_close(second, NULL, NULL);
	uv_run(&f.loop, UV_RUN_NOWAIT);
	ck_assert_int_eq(access(f.sock, F_OK), 0);

	/* A path that is not a socket is refused. */
	char file[160];
	snprintf(file, sizeof file, "%s/plain", f.dir);
	FILE *fp = fopen(file, "w");
	fclose(fp);
	o.socket_path = file;
	ck_assert_int_eq(ls_control_new(&f.loop, &o, &second, &err), 0);
	ck_assert_int_eq(ls_control_start(second, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "not a socket"));
	ls_control_close(second, NULL, NULL);
	uv_run(&f.loop, UV_RUN_NOWAIT);
	ck_assert_int_eq(access(file, F_OK), 0);

	/* A stale socket (bound, nobody listening) is replaced. */
	char stale[160];
	snprintf(stale, sizeof stale, "%s/stale.sock", f.dir);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	ck_assert_int_lt(snprintf(sa.sun_path, sizeof sa.sun_path, "%s", stale),
			 (int)sizeof sa.sun_path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	close(fd);
	o.socket_path = stale;
	ck_assert_int_eq(ls_control_new(&f.loop, &o, &second, &err), 0);
	ck_assert_msg(ls_control_start(second, &err) == 0, "%s", err.msg);
	ls_control_close(second, NULL, NULL);
	uv_run(&f.loop, UV_RUN_NOWAIT);
	ck_assert_int_eq(access(stale, F_OK), -1);

	/* A path too long for sun_path is an error, not a truncated bind. */
	char longp[200];
	memset(longp, 'a', sizeof longp - 1);
	longp[0] = '/';
	longp[sizeof longp - 1] = '\0';
	o.socket_path = longp;
	ck_assert_int_eq(ls_control_new(&f.loop, &o, &second, &err), 0);
	ck_assert_int_eq(ls_control_start(second, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "longer than"));
	ls_control_close(second, NULL, NULL);
	uv_run(&f.loop, UV_RUN_NOWAIT);
	fx_stop(&f);
}
END_TEST

START_TEST(control_rejects_bad_metrics_listen)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	static const char *bad[] = {"9811", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000",
				    "localhost:9811", "[::1]9811"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct ls_control *c = NULL;
		struct ls_control_options o = {.socket_path = "/tmp/ls-test-control-bad.sock",
					       .tcp_listen = bad[i]};
		struct ls_err err = {0};
		ck_assert_int_eq(ls_control_new(&loop, &o, &c, &err), 0);
		ck_assert_msg(ls_control_start(c, &err) == -1, "accepted %s", bad[i]);
		ck_assert_ptr_nonnull(strstr(err.msg, "metrics_listen"));
		ls_control_close(c, NULL, NULL);
		uv_run(&loop, UV_RUN_DEFAULT);
		ck_assert_int_eq(access(o.socket_path, F_OK), -1);
	}
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("control");
	TCase *tc = tcase_create("control");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, control_dispatches_routes);
	tcase_add_test(tc, control_lists_routes_and_collects_status);
	tcase_add_test(tc, control_rejects_malformed_and_oversized_requests);
	tcase_add_test(tc, control_closes_idle_connections);
	tcase_add_test(tc, control_tcp_listener_is_read_only);
	tcase_add_test(tc, control_socket_mode_and_stale_socket_handling);
	tcase_add_test(tc, control_rejects_bad_metrics_listen);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
