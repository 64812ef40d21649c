/* control — the control plane: HTTP/1.1 over a unix socket (and optionally
 * TCP), dispatching to a registry of routes.
 *
 * The daemon creates one server, and every component that has something to
 * show or to be told registers routes (`ls_control_route`: method, path,
 * access, handler, help) and, for GET /status, a status provider that adds
 * members to the status object.  Built in: `GET /` (the route list with help
 * text) and `GET /status` (the providers' members, in registration order).
 *
 * Access: a READ route answers anyone who can connect (the unix socket's mode
 * 0660 and its directory decide who can).  An ADMIN route answers only unix
 * peers whose uid (SO_PEERCRED) is 0 or the daemon's own uid; others get 403.
 * TCP peers (the metrics listener) are read-only.
 *
 * Robustness: requests are parsed by lib/http (head at most 8 KiB, body at
 * most 64 KiB); malformed ones get a 4xx and the connection is closed.  Every
 * response carries "Connection: close".  A connection idle for idle_timeout_ms
 * (no bytes read, or a response not taken) is closed; past max_connections,
 * new connections are accepted and closed at once.
 *
 * Lifecycle: ls_control_new() -> routes/providers -> ls_control_start() ->
 * ... -> ls_control_close(cb).  All of it on the loop's thread.  close stops
 * listening, closes every connection, removes the socket file (if it is still
 * the one this server bound) and frees the server once libuv has released its
 * handles; then cb runs.  The loop must keep running until then.
 */
#ifndef LS_CONTROL_H
#define LS_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

#include "err.h"
#include "json.h"

enum ls_control_access {
	LS_CONTROL_READ = 0,
	LS_CONTROL_ADMIN = 1,
};

struct ls_control_options {
	const char *socket_path;        /* required; parent dirs made (0750) */
	const char *tcp_listen;         /* "host:port", "[v6]:port" or NULL */
	unsigned socket_mode;           /* 0 = 0660 */
	unsigned idle_timeout_ms;       /* 0 = 10000 */
	unsigned max_connections;       /* 0 = 64 */
};

/* What a handler sees of a request; valid during the handler call only. */
struct ls_control_request {
	const char *method;
	const char *path;
	const char *query;              /* "" when absent */
	const char *body;               /* NUL-terminated, "" when absent */
	size_t body_len;
	bool admin;                     /* the peer passed the admin check */
	long uid;                       /* the unix peer's uid (SO_PEERCRED), -1 unknown */
	bool tcp;                       /* came in over the TCP listener */
};

/* The response under construction; borrowed by the handler. */
struct ls_control_response;

/* A route handler.  Runs on the loop thread and must not block.  Sets the
 * status (default 200) and writes a body: either JSON through
 * ls_control_reply_json() or text through ls_control_reply_text().  Returning
 * negative answers 500 with err's message (never a secret) instead. */
typedef int (*ls_control_handler)(const struct ls_control_request *req,
				  struct ls_control_response *resp, void *data,
				  struct ls_err *err);

/* Adds members (ls_json_key + value) to the open GET /status object. */
typedef void (*ls_control_status_fn)(struct ls_json *status, void *data);

struct ls_control;

/* Creates a server (not yet listening).  Copies what it keeps from o. */
int ls_control_new(uv_loop_t *loop, const struct ls_control_options *o,
		   struct ls_control **out, struct ls_err *err)
	__attribute__((warn_unused_result));

/* Registers a route; method and path are matched exactly.  help is a short
 * sentence for GET /.  Strings are copied; data is borrowed and must outlive
 * the server.  Fails on a duplicate (method, path) or out of memory. */
int ls_control_route(struct ls_control *ctl, const char *method, const char *path,
		     enum ls_control_access access, ls_control_handler fn, void *data,
		     const char *help);

/* Registers a status provider; data is borrowed. */
int ls_control_status_provider(struct ls_control *ctl, ls_control_status_fn fn, void *data);

/* Binds and listens: removes a stale socket file (one nobody answers on),
 * refuses a live one or a path that is not a socket, chmods the socket.
 * Returns -1 with err naming the path on failure. */
int ls_control_start(struct ls_control *ctl, struct ls_err *err)
	__attribute__((warn_unused_result));

/* The socket path this server was given (borrowed, valid until freed). */
const char *ls_control_socket_path(const struct ls_control *ctl);

/* Closes everything and frees ctl once libuv is done; then cb(data) runs
 * (cb may be NULL).  Call at most once; NULL ctl is a no-op. */
void ls_control_close(struct ls_control *ctl, void (*cb)(void *data), void *data);

/* ---- for handlers ---------------------------------------------------------- */

void ls_control_reply_status(struct ls_control_response *resp, int status);
/* Adds a response header line, e.g. ("Retry-After", "5"). */
void ls_control_reply_header(struct ls_control_response *resp, const char *name,
			     const char *value);
/* The JSON writer for the body (Content-Type application/json); owned by
 * the response.  The handler writes exactly one JSON value. */
struct ls_json *ls_control_reply_json(struct ls_control_response *resp);
/* Appends text to the body (Content-Type text/plain; charset=utf-8, or
 * content_type set by ls_control_reply_content_type()). */
void ls_control_reply_text(struct ls_control_response *resp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void ls_control_reply_content_type(struct ls_control_response *resp, const char *type);
/* Shorthand for an error answer: status plus {"error": msg}. */
void ls_control_reply_error(struct ls_control_response *resp, int status, const char *msg);

#endif
