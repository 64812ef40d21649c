/* control — see control.h.
 *
 * A connection moves through four states:
 *   READING   bytes go to the HTTP parser; the idle timer restarts on each read
 *   WRITING   the one response is being written (reading stopped)
 *   DRAINING  response written and our side shut down; whatever the client
 *             still sends is read and dropped until it closes, so the kernel
 *             never resets the connection (and loses the response) because
 *             unread bytes were left behind — the "lingering close"
 *   CLOSING   both handles (stream, idle timer) are being closed; the
 *             connection is freed when the second close callback runs.
 * The idle timer bounds every state but CLOSING, so a client that stops
 * reading or writing costs a slot for at most idle_timeout_ms.
 */
#include "control.h"

#include "http.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_IDLE_MS 10000
#define DEFAULT_MAX_CONNS 64
#define DEFAULT_MODE 0660
#define READ_CHUNK 4096

struct sbuf {
	char *p;
	size_t len, cap;
	bool failed;
};

static void sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (p == NULL) {
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sbuf_vprintf(struct sbuf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		b->failed = true;
		return;
	}
	char *tmp = malloc((size_t)n + 1);
	if (tmp == NULL) {
		b->failed = true;
		return;
	}
	vsnprintf(tmp, (size_t)n + 1, fmt, ap);
	sbuf_add(b, tmp, (size_t)n);
	free(tmp);
}

struct route {
	char *method, *path, *help;
	enum ls_control_access access;
	ls_control_handler fn;
	void *data;
};

struct provider {
	ls_control_status_fn fn;
	void *data;
};

struct ls_control_response {
	int status;
	char *content_type;
	struct ls_json *json;
	struct sbuf text;
	struct sbuf headers;
};

enum conn_state { C_READING, C_WRITING, C_DRAINING, C_CLOSING };

struct conn {
	struct ls_control *ctl;
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_pipe_t pipe;
		uv_tcp_t tcp;
	} h;
	uv_timer_t timer;
	uv_write_t wreq, continue_req;
	uv_shutdown_t sreq;
	enum conn_state state;
	struct ls_http_parser *parser;
	char *out;                      /* response bytes being written (owned) */
	bool admin, tcp, got_bytes, sent_continue;
	long uid;                       /* peer uid, -1 unknown */
	int open_handles;
	struct conn *prev, *next;
	char rbuf[READ_CHUNK];
};

struct ls_control {
	uv_loop_t *loop;
	char *socket_path;
	char *tcp_listen;
	unsigned mode, idle_ms, max_conns;
	uid_t own_uid;
	uv_pipe_t pipe;
	uv_tcp_t tcp;
	bool has_tcp;
	bool bound;                     /* we created the socket file */
	dev_t sock_dev;
	ino_t sock_ino;
	struct route *routes;
	int nroutes, route_cap;
	struct provider *providers;
	int nproviders, provider_cap;
	struct conn *conns;
	unsigned nconns;
	bool closing;
	int open_handles;               /* listener handles not yet closed */
	void (*close_cb)(void *);
	void *close_data;
};

static int handle_index(const struct ls_control_request *req, struct ls_control_response *resp,
			void *data, struct ls_err *err);
static int handle_status(const struct ls_control_request *req, struct ls_control_response *resp,
			 void *data, struct ls_err *err);
static void conn_close(struct conn *c);
static void maybe_finish(struct ls_control *ctl);

/* ---- lifecycle ------------------------------------------------------------- */

int ls_control_new(uv_loop_t *loop, const struct ls_control_options *o,
		   struct ls_control **out, struct ls_err *err)
{
	*out = NULL;
	if (o->socket_path == NULL || o->socket_path[0] == '\0')
		return ls_err_set(err, false, "control: no socket path");
	struct ls_control *ctl = calloc(1, sizeof *ctl);
	if (ctl == NULL)
		return ls_err_set(err, false, "control: out of memory");
	ctl->loop = loop;
	ctl->socket_path = strdup(o->socket_path);
	ctl->tcp_listen = o->tcp_listen != NULL ? strdup(o->tcp_listen) : NULL;
	ctl->mode = o->socket_mode ? o->socket_mode : DEFAULT_MODE;
	ctl->idle_ms = o->idle_timeout_ms ? o->idle_timeout_ms : DEFAULT_IDLE_MS;
	ctl->max_conns = o->max_connections ? o->max_connections : DEFAULT_MAX_CONNS;
	ctl->own_uid = geteuid();
	/* Both listener handles exist from here on, so close always has
	 * something to wait for and its callback never runs synchronously. */
	uv_pipe_init(loop, &ctl->pipe, 0);
	ctl->pipe.data = ctl;
	ctl->open_handles = 1;
	if (ctl->tcp_listen != NULL) {
		uv_tcp_init(loop, &ctl->tcp);
		ctl->tcp.data = ctl;
		ctl->has_tcp = true;
		ctl->open_handles++;
	}
	*out = ctl;
	if (ctl->socket_path == NULL || (o->tcp_listen != NULL && ctl->tcp_listen == NULL) ||
	    ls_control_route(ctl, "GET", "/", LS_CONTROL_READ, handle_index, ctl,
			     "List the routes with their access and help.") < 0 ||
	    ls_control_route(ctl, "GET", "/status", LS_CONTROL_READ, handle_status, ctl,
			     "Pipeline status: name, state, uptime, version.") < 0) {
		ls_control_close(ctl, NULL, NULL);
		*out = NULL;
		return ls_err_set(err, false, "control: out of memory");
	}
	return 0;
}

const char *ls_control_socket_path(const struct ls_control *ctl)
{
	return ctl->socket_path;
}

static void free_control(struct ls_control *ctl)
{
	for (int i = 0; i < ctl->nroutes; i++) {
		free(ctl->routes[i].method);
		free(ctl->routes[i].path);
		free(ctl->routes[i].help);
	}
	free(ctl->routes);
	free(ctl->providers);
	free(ctl->socket_path);
	free(ctl->tcp_listen);
	free(ctl);
}

static void maybe_finish(struct ls_control *ctl)
{
	if (!ctl->closing || ctl->open_handles > 0 || ctl->conns != NULL)
		return;
	void (*cb)(void *) = ctl->close_cb;
	void *data = ctl->close_data;
	free_control(ctl);
	if (cb != NULL)
		cb(data);
}

static void on_listener_closed(uv_handle_t *h)
{
	struct ls_control *ctl = h->data;
	ctl->open_handles--;
	maybe_finish(ctl);
}

/* Removes the socket file only if it is still the one we bound: a second
 * daemon started by mistake must not delete the first one's socket. */
static void unlink_own_socket(struct ls_control *ctl)
{
	struct stat st;
	if (!ctl->bound || stat(ctl->socket_path, &st) < 0)
		return;
	if (st.st_dev == ctl->sock_dev && st.st_ino == ctl->sock_ino)
		unlink(ctl->socket_path);
}

void ls_control_close(struct ls_control *ctl, void (*cb)(void *data), void *data)
{
	if (ctl == NULL || ctl->closing)
		return;
	ctl->closing = true;
	ctl->close_cb = cb;
	ctl->close_data = data;
	unlink_own_socket(ctl);
	uv_close((uv_handle_t *)&ctl->pipe, on_listener_closed);
	if (ctl->has_tcp)
		uv_close((uv_handle_t *)&ctl->tcp, on_listener_closed);
	for (struct conn *c = ctl->conns; c != NULL; c = c->next)
		conn_close(c);
}

/* ---- registry -------------------------------------------------------------- */

int ls_control_route(struct ls_control *ctl, const char *method, const char *path,
		     enum ls_control_access access, ls_control_handler fn, void *data,
		     const char *help)
{
	for (int i = 0; i < ctl->nroutes; i++)
		if (strcmp(ctl->routes[i].method, method) == 0 &&
		    strcmp(ctl->routes[i].path, path) == 0)
			return -1;
	if (ctl->nroutes == ctl->route_cap) {
		int cap = ctl->route_cap ? ctl->route_cap * 2 : 16;
		struct route *r = realloc(ctl->routes, (size_t)cap * sizeof *r);
		if (r == NULL)
			return -1;
		ctl->routes = r;
		ctl->route_cap = cap;
	}
	struct route r = {
		.method = strdup(method), .path = strdup(path),
		.help = strdup(help != NULL ? help : ""),
		.access = access, .fn = fn, .data = data,
	};
	if (r.method == NULL || r.path == NULL || r.help == NULL) {
		free(r.method);
		free(r.path);
		free(r.help);
		return -1;
	}
	ctl->routes[ctl->nroutes++] = r;
	return 0;
}

int ls_control_status_provider(struct ls_control *ctl, ls_control_status_fn fn, void *data)
{
	if (ctl->nproviders == ctl->provider_cap) {
		int cap = ctl->provider_cap ? ctl->provider_cap * 2 : 8;
		struct provider *p = realloc(ctl->providers, (size_t)cap * sizeof *p);
		if (p == NULL)
			return -1;
		ctl->providers = p;
		ctl->provider_cap = cap;
	}
	ctl->providers[ctl->nproviders++] = (struct provider){fn, data};
	return 0;
}

/* ---- built-in routes ------------------------------------------------------- */

static int handle_index(const struct ls_control_request *req, struct ls_control_response *resp,
			void *data, struct ls_err *err)
{
	(void)req;
	(void)err;
	struct ls_control *ctl = data;
	struct ls_json *j = ls_control_reply_json(resp);
	ls_json_object_begin(j);
	ls_json_key(j, "routes");
	ls_json_array_begin(j);
	for (int i = 0; i < ctl->nroutes; i++) {
		const struct route *r = &ctl->routes[i];
		ls_json_object_begin(j);
		ls_json_kv_string(j, "method", r->method);
		ls_json_kv_string(j, "path", r->path);
		ls_json_kv_string(j, "access", r->access == LS_CONTROL_ADMIN ? "admin" : "read");
		ls_json_kv_string(j, "help", r->help);
		ls_json_object_end(j);
	}
	ls_json_array_end(j);
	ls_json_object_end(j);
	return 0;
}

static int handle_status(const struct ls_control_request *req, struct ls_control_response *resp,
			 void *data, struct ls_err *err)
{
	(void)req;
	(void)err;
	struct ls_control *ctl = data;
	struct ls_json *j = ls_control_reply_json(resp);
	ls_json_object_begin(j);
	for (int i = 0; i < ctl->nproviders; i++)
		ctl->providers[i].fn(j, ctl->providers[i].data);
	ls_json_object_end(j);
	return 0;
}

/* ---- responses ------------------------------------------------------------- */

void ls_control_reply_status(struct ls_control_response *resp, int status)
{
	resp->status = status;
}

void ls_control_reply_header(struct ls_control_response *resp, const char *name,
			     const char *value)
{
	/* A CR or LF would let a handler's value split the response. */
	if (strpbrk(name, "\r\n:") != NULL || strpbrk(value, "\r\n") != NULL)
		return;
	sbuf_add(&resp->headers, name, strlen(name));
	sbuf_add(&resp->headers, ": ", 2);
	sbuf_add(&resp->headers, value, strlen(value));
	sbuf_add(&resp->headers, "\r\n", 2);
}

struct ls_json *ls_control_reply_json(struct ls_control_response *resp)
{
	if (resp->json == NULL)
		resp->json = ls_json_new();
	/* Out of memory the writer is NULL, which ls_json accepts; the marker
	 * makes send_response answer 500. */
	if (resp->json == NULL)
		resp->text.failed = true;
	return resp->json;
}

void ls_control_reply_text(struct ls_control_response *resp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sbuf_vprintf(&resp->text, fmt, ap);
	va_end(ap);
}

void ls_control_reply_content_type(struct ls_control_response *resp, const char *type)
{
	free(resp->content_type);
	resp->content_type = strdup(type);
}

void ls_control_reply_error(struct ls_control_response *resp, int status, const char *msg)
{
	resp->status = status;
	struct ls_json *j = ls_control_reply_json(resp);
	if (j == NULL)
		return;
	ls_json_reset(j);
	ls_json_object_begin(j);
	ls_json_kv_string(j, "error", msg);
	ls_json_object_end(j);
}

static void response_init(struct ls_control_response *resp)
{
	memset(resp, 0, sizeof *resp);
	resp->status = 200;
}

static void response_free(struct ls_control_response *resp)
{
	free(resp->content_type);
	ls_json_free(resp->json);
	free(resp->text.p);
	free(resp->headers.p);
}

/* ---- connections ----------------------------------------------------------- */

static void on_conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	if (--c->open_handles > 0)
		return;
	struct ls_control *ctl = c->ctl;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		ctl->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	ctl->nconns--;
	ls_http_parser_free(c->parser);
	free(c->out);
	free(c);
	maybe_finish(ctl);
}

static void conn_close(struct conn *c)
{
	if (c->state == C_CLOSING)
		return;
	c->state = C_CLOSING;
	uv_close(&c->h.handle, on_conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_timeout(uv_timer_t *t);

static void conn_touch(struct conn *c)
{
	uv_timer_start(&c->timer, on_timeout, c->ctl->idle_ms, 0);
}

static void on_drain_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct conn *c = h->data;
	*buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_drain_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	if (nread < 0)
		conn_close(s->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct conn *c = req->data;
	if (c->state == C_CLOSING)
		return;
	if (status < 0 || uv_read_start(&c->h.stream, on_drain_alloc, on_drain_read) < 0) {
		conn_close(c);
		return;
	}
	c->state = C_DRAINING;
}

static void on_written(uv_write_t *req, int status)
{
	struct conn *c = req->data;
	if (c->state == C_CLOSING)
		return;
	free(c->out);
	c->out = NULL;
	c->sreq.data = c;
	if (status < 0 || uv_shutdown(&c->sreq, &c->h.stream, on_shutdown) < 0)
		conn_close(c);
}

/* Sends a complete response and ends the connection after it. */
static void conn_send(struct conn *c, char *bytes, size_t len)
{
	/* A handler may have closed the server (and so this connection). */
	if (c->state == C_CLOSING) {
		free(bytes);
		return;
	}
	uv_read_stop(&c->h.stream);
	if (bytes == NULL) {
		conn_close(c);
		return;
	}
	c->out = bytes;
	c->state = C_WRITING;
	c->wreq.data = c;
	uv_buf_t b = uv_buf_init(bytes, (unsigned)len);
	conn_touch(c);
	if (uv_write(&c->wreq, &c->h.stream, &b, 1, on_written) < 0)
		conn_close(c);
}

static void send_response(struct conn *c, struct ls_control_response *resp)
{
	const char *body = "";
	size_t len = 0;
	const char *ctype = resp->content_type;
	if (resp->json != NULL && ls_json_complete(resp->json)) {
		body = ls_json_data(resp->json, &len);
		if (ctype == NULL)
			ctype = "application/json";
	} else if (resp->json != NULL || resp->text.failed) {
		ls_error("control: handler produced no valid response body");
		resp->status = 500;
		body = "{\"error\":\"internal error: invalid response body\"}";
		len = strlen(body);
		ctype = "application/json";
	} else if (resp->text.len > 0) {
		body = resp->text.p;
		len = resp->text.len;
		if (ctype == NULL)
			ctype = "text/plain; charset=utf-8";
	}
	const char *extra = resp->headers.failed ? NULL : resp->headers.p;
	size_t out_len = 0;
	char *out = ls_http_response(resp->status, ctype, extra, body, len, false, &out_len);
	conn_send(c, out, out_len);
}

static void send_error(struct conn *c, int status, const char *msg)
{
	struct ls_control_response resp;
	response_init(&resp);
	ls_control_reply_error(&resp, status, msg);
	send_response(c, &resp);
	response_free(&resp);
}

static void on_timeout(uv_timer_t *t)
{
	struct conn *c = t->data;
	if (c->state == C_READING && c->got_bytes)
		send_error(c, 408, "request not complete before the idle timeout");
	else
		conn_close(c);
}

/* Finds the route for the request and runs it. */
static void dispatch(struct conn *c, const struct ls_http_request *r)
{
	struct ls_control *ctl = c->ctl;
	const struct route *route = NULL;
	struct sbuf allow = {0};
	for (int i = 0; i < ctl->nroutes; i++) {
		if (strcmp(ctl->routes[i].path, r->path) != 0)
			continue;
		if (strcmp(ctl->routes[i].method, r->method) == 0)
			route = &ctl->routes[i];
		if (allow.len > 0)
			sbuf_add(&allow, ", ", 2);
		sbuf_add(&allow, ctl->routes[i].method, strlen(ctl->routes[i].method));
	}
	struct ls_control_response resp;
	response_init(&resp);
	if (route == NULL && allow.len == 0) {
		ls_control_reply_error(&resp, 404, "no such route (GET / lists them)");
	} else if (route == NULL) {
		ls_control_reply_error(&resp, 405, "method not allowed for this route");
		if (!allow.failed)
			ls_control_reply_header(&resp, "Allow", allow.p);
	} else if (route->access == LS_CONTROL_ADMIN && !c->admin) {
		ls_control_reply_error(&resp, 403,
				       c->tcp ? "admin routes are not served over TCP"
					      : "admin access needs root or the daemon's user");
	} else {
		struct ls_control_request req = {
			.method = r->method, .path = r->path, .query = r->query,
			.body = r->body, .body_len = r->body_len,
			.admin = c->admin, .tcp = c->tcp, .uid = c->uid,
		};
		struct ls_err err = {0};
		if (route->fn(&req, &resp, route->data, &err) < 0) {
			ls_warn("control: %s %s: %s", r->method, r->path, err.msg);
			free(resp.text.p);
			resp.text = (struct sbuf){0};
			ls_control_reply_error(&resp, 500, err.msg[0] ? err.msg : "internal error");
		}
	}
	free(allow.p);
	send_response(c, &resp);
	response_free(&resp);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct conn *c = h->data;
	*buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void send_continue(struct conn *c)
{
	static char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
	uv_buf_t b = uv_buf_init(line, sizeof line - 1);
	c->sent_continue = true;
	c->continue_req.data = c;
	if (uv_write(&c->continue_req, &c->h.stream, &b, 1, NULL) < 0)
		conn_close(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	if (nread == 0 || c->state != C_READING)
		return;
	c->got_bytes = true;
	conn_touch(c);
	switch (ls_http_parser_feed(c->parser, buf->base, (size_t)nread, NULL)) {
	case LS_HTTP_COMPLETE:
		dispatch(c, ls_http_parser_request(c->parser));
		break;
	case LS_HTTP_ERROR: {
		const char *reason;
		int status = ls_http_parser_error(c->parser, &reason);
		send_error(c, status, reason);
		break;
	}
	case LS_HTTP_NEED_MORE:
		if (ls_http_parser_head_done(c->parser) && !c->sent_continue &&
		    ls_http_parser_request(c->parser)->expect_continue)
			send_continue(c);
		break;
	}
}

/* Admin if the unix peer is root or runs as the daemon's user. */
static bool peer_is_admin(struct conn *c)
{
	uv_os_fd_t fd;
	struct ucred cred;
	socklen_t len = sizeof cred;
	c->uid = -1;
	if (c->tcp || uv_fileno(&c->h.handle, &fd) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	c->uid = (long)cred.uid;
	return cred.uid == 0 || cred.uid == c->ctl->own_uid;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct ls_control *ctl = server->data;
	if (status < 0 || ctl->closing) {
		if (status < 0)
			ls_warn("control: accept: %s", uv_strerror(status));
		return;
	}
	struct conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return;
	c->ctl = ctl;
	c->tcp = server == (uv_stream_t *)&ctl->tcp;
	if (c->tcp)
		uv_tcp_init(ctl->loop, &c->h.tcp);
	else
		uv_pipe_init(ctl->loop, &c->h.pipe, 0);
	uv_timer_init(ctl->loop, &c->timer);
	c->h.handle.data = c;
	c->timer.data = c;
	c->open_handles = 2;
	c->next = ctl->conns;
	if (ctl->conns != NULL)
		ctl->conns->prev = c;
	ctl->conns = c;
	ctl->nconns++;
	if (uv_accept(server, &c->h.stream) < 0) {
		conn_close(c);
		return;
	}
	c->parser = ls_http_parser_new();
	if (ctl->nconns > ctl->max_conns || c->parser == NULL) {
		ls_warn("control: too many connections, refusing one");
		conn_close(c);
		return;
	}
	c->admin = peer_is_admin(c);
	c->state = C_READING;
	conn_touch(c);
	if (uv_read_start(&c->h.stream, on_alloc, on_read) < 0)
		conn_close(c);
}

/* ---- listening ------------------------------------------------------------- */

/* mkdir -p for the parent directory of path. */
static int make_parent_dirs(const char *path, struct ls_err *err)
{
	char dir[PATH_MAX];
	if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
		return ls_err_set(err, false, "control socket %s: path too long", path);
	char *slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(dir, 0750) < 0 && errno != EEXIST)
			return ls_err_set(err, false, "control socket directory %s: %s", dir,
					  strerror(errno));
		*p = saved;
		if (saved == '\0')
			break;
	}
	return 0;
}

/* Deals with an existing file at the socket path: a socket nobody answers on
 * is stale (a crashed daemon) and goes; a live one or a non-socket stays and
 * is an error.  The connect is to a local socket and does not wait. */
static int clear_stale_socket(const char *path, struct ls_err *err)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : ls_err_set(err, false, "control socket %s: %s",
							 path, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return ls_err_set(err, false, "control socket %s: exists and is not a socket", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ls_err_set(err, false, "control socket %s: %s", path, strerror(errno));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	int e = errno;
	close(fd);
	if (rc == 0)
		return ls_err_set(err, false, "control socket %s: in use by a running server", path);
	if (e != ECONNREFUSED)
		return ls_err_set(err, false, "control socket %s: %s", path, strerror(e));
	if (unlink(path) < 0 && errno != ENOENT)
		return ls_err_set(err, false, "control socket %s: removing stale socket: %s", path,
				  strerror(errno));
	ls_info("control: removed stale socket %s", path);
	return 0;
}

static int listen_unix(struct ls_control *ctl, struct ls_err *err)
{
	const char *path = ctl->socket_path;
	struct sockaddr_un sa;
	/* libuv 1.44 silently truncates long names; refuse them instead. */
	if (strlen(path) >= sizeof sa.sun_path)
		return ls_err_set(err, false, "control socket %s: path longer than %zu bytes", path,
				  sizeof sa.sun_path - 1);
	if (make_parent_dirs(path, err) < 0 || clear_stale_socket(path, err) < 0)
		return -1;
	/* The umask keeps the socket from being wider than mode even for the
	 * instant between bind and chmod. */
	mode_t old = umask(~(mode_t)ctl->mode & 0777);
	int rc = uv_pipe_bind(&ctl->pipe, path);
	umask(old);
	if (rc < 0)
		return ls_err_set(err, false, "control socket %s: bind: %s", path, uv_strerror(rc));
	struct stat st;
	if (stat(path, &st) == 0) {
		ctl->bound = true;
		ctl->sock_dev = st.st_dev;
		ctl->sock_ino = st.st_ino;
	}
	if (chmod(path, ctl->mode) < 0)
		return ls_err_set(err, false, "control socket %s: chmod: %s", path, strerror(errno));
	rc = uv_listen((uv_stream_t *)&ctl->pipe, 64, on_connection);
	if (rc < 0)
		return ls_err_set(err, false, "control socket %s: listen: %s", path, uv_strerror(rc));
	return 0;
}

/* Parses "host:port" or "[v6]:port" (numeric addresses only). */
static int parse_listen(const char *spec, struct sockaddr_storage *ss, struct ls_err *err)
{
	char host[64];
	const char *colon = strrchr(spec, ':');
	if (colon == NULL || colon == spec)
		return ls_err_set(err, false, "metrics_listen %s: expected host:port", spec);
	const char *h = spec;
	size_t hlen = (size_t)(colon - spec);
	if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
		h++;
		hlen -= 2;
	}
	if (hlen >= sizeof host)
		return ls_err_set(err, false, "metrics_listen %s: host too long", spec);
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 1 || port > 65535)
		return ls_err_set(err, false, "metrics_listen %s: bad port", spec);
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0 ||
	    uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	return ls_err_set(err, false, "metrics_listen %s: not a numeric IPv4/IPv6 address", spec);
}

static int listen_tcp(struct ls_control *ctl, struct ls_err *err)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	if (parse_listen(ctl->tcp_listen, &ss, err) < 0)
		return -1;
	int rc = uv_tcp_bind(&ctl->tcp, (struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&ctl->tcp, 64, on_connection);
	if (rc < 0)
		return ls_err_set(err, false, "metrics_listen %s: %s", ctl->tcp_listen,
				  uv_strerror(rc));
	return 0;
}

int ls_control_start(struct ls_control *ctl, struct ls_err *err)
{
	if (listen_unix(ctl, err) < 0)
		return -1;
	if (ctl->has_tcp && listen_tcp(ctl, err) < 0)
		return -1;
	return 0;
}
