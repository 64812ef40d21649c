/* http — a pure, incremental HTTP/1.1 request parser and a response builder.
 *
 * No I/O: the control server feeds whatever bytes a socket read returned and
 * asks whether a whole request has arrived.  Everything a client sends is
 * untrusted, so every malformed or oversized input ends in LS_HTTP_ERROR with
 * the status code to answer (400, 413, 414, 431, 501, 505), never in a crash
 * or an unbounded allocation.
 *
 * What is accepted (RFC 9112, deliberately narrow):
 *   - request line "METHOD SP /origin-form SP HTTP/1.0|HTTP/1.1", lines ending
 *     in CRLF or a bare LF; empty lines before the request line are skipped;
 *   - at most LS_HTTP_MAX_HEADERS header fields, no obs-fold, no whitespace
 *     before the colon, no control characters in values;
 *   - a body only by Content-Length (any Transfer-Encoding gets 501);
 *   - the whole head (request line and headers) within LS_HTTP_HEAD_MAX bytes,
 *     the body within LS_HTTP_BODY_MAX bytes.
 * Host is not required: the control plane speaks over a unix socket, where a
 * hand-typed `printf 'GET /status HTTP/1.1\r\n\r\n' | socat` should work.
 */
#ifndef LS_HTTP_H
#define LS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define LS_HTTP_HEAD_MAX 8192          /* request line + headers, bytes */
#define LS_HTTP_BODY_MAX 65536         /* body, bytes */
#define LS_HTTP_MAX_HEADERS 32
#define LS_HTTP_METHOD_MAX 16          /* longest method token + NUL */

enum ls_http_result {
	LS_HTTP_ERROR = -1,            /* see ls_http_parser_error() */
	LS_HTTP_NEED_MORE = 0,         /* feed more bytes */
	LS_HTTP_COMPLETE = 1,          /* ls_http_parser_request() is filled */
};

struct ls_http_header {
	const char *name;              /* as sent (compare case-insensitively) */
	const char *value;             /* surrounding whitespace removed */
};

/* A parsed request.  Every pointer points into the parser and is valid until
 * the parser is reset or freed. */
struct ls_http_request {
	char method[LS_HTTP_METHOD_MAX];
	const char *path;              /* "/a/b" (not percent-decoded) */
	const char *query;             /* "x=1", or "" when there is no '?' */
	int version_minor;             /* 0 or 1 */
	bool keep_alive;               /* 1.1 unless "Connection: close"; 1.0 only
	                                  with "Connection: keep-alive" */
	bool expect_continue;          /* "Expect: 100-continue" was sent */
	int nheaders;
	struct ls_http_header headers[LS_HTTP_MAX_HEADERS];
	const char *body;              /* NUL-terminated for convenience; "" when
	                                  there is none */
	size_t body_len;
};

struct ls_http_parser;

/* Returns a parser ready for a first request, or NULL when out of memory. */
struct ls_http_parser *ls_http_parser_new(void);
void ls_http_parser_free(struct ls_http_parser *p);     /* NULL is a no-op */
/* Forgets the current request (for the next one on a kept-alive connection). */
void ls_http_parser_reset(struct ls_http_parser *p);

/* Feeds len bytes.  *consumed (if non-NULL) tells how many were used: after
 * LS_HTTP_COMPLETE the rest belongs to the next request (pipelining).  Once a
 * request is complete or an error was found, further feeds return the same
 * result and consume nothing until ls_http_parser_reset(). */
enum ls_http_result ls_http_parser_feed(struct ls_http_parser *p, const char *data,
					size_t len, size_t *consumed);

/* True once the head is complete and the body is still being read (to answer
 * "Expect: 100-continue"); the request's head fields are valid then. */
bool ls_http_parser_head_done(const struct ls_http_parser *p);

/* The request, valid after LS_HTTP_COMPLETE (head fields also after
 * ls_http_parser_head_done()); NULL otherwise. */
const struct ls_http_request *ls_http_parser_request(const struct ls_http_parser *p);

/* After LS_HTTP_ERROR: the status to answer (4xx/5xx) and a short reason
 * (static string, e.g. "header line without a colon"). */
int ls_http_parser_error(const struct ls_http_parser *p, const char **reason);

/* Case-insensitive header lookup; the first match's value, or NULL. */
const char *ls_http_request_header(const struct ls_http_request *r, const char *name);

/* "OK", "Not Found", ...; "Unknown" for codes it does not know. */
const char *ls_http_reason(int status);

/* Builds a whole HTTP/1.1 response: status line, Content-Type (omitted when
 * NULL), Content-Length, "Connection: close" or "keep-alive", extra_headers
 * (NULL, or complete "Name: value\r\n" lines), blank line, body.  Returns a
 * malloc'd buffer the caller owns (length in *out_len), or NULL when out of
 * memory. */
char *ls_http_response(int status, const char *content_type, const char *extra_headers,
		       const void *body, size_t body_len, bool keep_alive, size_t *out_len);

/* Parses a complete response as read up to EOF (clients use it): fills the
 * status and where the body starts.  The body runs to Content-Length when
 * the header is present, else to the end of buf.  Returns 0, or -1 when buf
 * is not a well-formed HTTP/1.x response. */
int ls_http_parse_response(const char *buf, size_t len, int *status,
			   const char **body, size_t *body_len);

#endif
