/* http — see http.h.  The parser collects the head byte by byte into a
 * fixed buffer (so its size bound is the whole defence against a client
 * that never stops sending), parses it in place once the blank line has
 * arrived, then collects exactly Content-Length body bytes. */
#include "http.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum parse_state { ST_HEAD, ST_BODY, ST_DONE, ST_ERROR };

struct ls_http_parser {
	enum parse_state state;
	char head[LS_HTTP_HEAD_MAX + 1];
	size_t head_len;
	size_t line_start;             /* offset of the line being collected */
	bool saw_line_end;             /* the request line is complete */
	char *body;                    /* owned, body_want + 1 bytes */
	size_t body_want;
	int err_status;
	const char *err_reason;
	struct ls_http_request req;
};

struct ls_http_parser *ls_http_parser_new(void)
{
	struct ls_http_parser *p = calloc(1, sizeof *p);
	if (p != NULL)
		ls_http_parser_reset(p);
	return p;
}

void ls_http_parser_free(struct ls_http_parser *p)
{
	if (p == NULL)
		return;
	free(p->body);
	free(p);
}

void ls_http_parser_reset(struct ls_http_parser *p)
{
	free(p->body);
	p->body = NULL;
	p->body_want = 0;
	p->state = ST_HEAD;
	p->head_len = 0;
	p->line_start = 0;
	p->saw_line_end = false;
	p->err_status = 0;
	p->err_reason = NULL;
	memset(&p->req, 0, sizeof p->req);
	p->req.body = "";
	p->req.path = p->req.query = "";
}

static int fail(struct ls_http_parser *p, int status, const char *reason)
{
	p->state = ST_ERROR;
	p->err_status = status;
	p->err_reason = reason;
	return -1;
}

/* RFC 9110 tchar: the characters of methods and header names. */
static bool is_tchar(unsigned char c)
{
	return isalnum(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Cuts s..s+len at its line end: strips one trailing CR (a bare CR
 * elsewhere is caught by the character checks) and NUL-terminates. */
static size_t cut_line(char *s, size_t len)
{
	if (len > 0 && s[len - 1] == '\r')
		len--;
	s[len] = '\0';
	return len;
}

static int parse_request_line(struct ls_http_parser *p, char *s, size_t len)
{
	struct ls_http_request *r = &p->req;
	size_t i = 0;
	while (i < len && is_tchar((unsigned char)s[i]))
		i++;
	if (i == 0 || i >= len || s[i] != ' ')
		return fail(p, 400, "malformed request line");
	if (i >= LS_HTTP_METHOD_MAX)
		return fail(p, 501, "method too long");
	memcpy(r->method, s, i);
	r->method[i] = '\0';

	size_t t = ++i;
	while (i < len && (unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f)
		i++;
	if (i == t || i >= len || s[i] != ' ')
		return fail(p, 400, "malformed request target");
	if (s[t] != '/')
		return fail(p, 400, "request target is not an absolute path");
	s[i] = '\0';
	r->path = s + t;

	const char *v = s + i + 1;
	size_t vlen = len - i - 1;
	if (vlen == 8 && strncmp(v, "HTTP/1.", 7) == 0 && (v[7] == '0' || v[7] == '1')) {
		r->version_minor = v[7] - '0';
	} else if (vlen == 8 && strncmp(v, "HTTP/", 5) == 0 && isdigit((unsigned char)v[5]) &&
		   v[6] == '.' && isdigit((unsigned char)v[7])) {
		return fail(p, 505, "HTTP version not supported");
	} else {
		return fail(p, 400, "malformed HTTP version");
	}
	r->keep_alive = r->version_minor == 1;
	return 0;
}

/* Splits the target into path and query, in place: the '?' becomes NUL. */
static void split_target(struct ls_http_request *r, char *target)
{
	char *q = strchr(target, '?');
	r->path = target;
	r->query = "";
	if (q != NULL) {
		*q = '\0';
		r->query = q + 1;
	}
}

static int parse_header_line(struct ls_http_parser *p, char *s, size_t len)
{
	struct ls_http_request *r = &p->req;
	if (is_ows(s[0]))
		return fail(p, 400, "folded header line");
	size_t i = 0;
	while (i < len && is_tchar((unsigned char)s[i]))
		i++;
	if (i == 0 || i >= len || s[i] != ':')
		return fail(p, 400, "malformed header name");
	s[i] = '\0';
	size_t b = i + 1, e = len;
	while (b < e && is_ows(s[b]))
		b++;
	while (e > b && is_ows(s[e - 1]))
		e--;
	for (size_t k = b; k < e; k++) {
		unsigned char c = (unsigned char)s[k];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return fail(p, 400, "control character in header value");
	}
	s[e] = '\0';
	if (r->nheaders >= LS_HTTP_MAX_HEADERS)
		return fail(p, 431, "too many header fields");
	r->headers[r->nheaders].name = s;
	r->headers[r->nheaders].value = s + b;
	r->nheaders++;
	return 0;
}

/* True when the comma-separated list contains token (case-insensitive). */
static bool list_has(const char *list, const char *token)
{
	size_t n = strlen(token);
	for (const char *s = list; *s != '\0';) {
		while (*s == ',' || is_ows(*s))
			s++;
		const char *e = s;
		while (*e != '\0' && *e != ',')
			e++;
		const char *t = e;
		while (t > s && is_ows(t[-1]))
			t--;
		if ((size_t)(t - s) == n && strncasecmp(s, token, n) == 0)
			return true;
		s = e;
	}
	return false;
}

static int parse_content_length(struct ls_http_parser *p, const char *v, bool *seen)
{
	uint64_t n = 0;
	if (*v == '\0')
		return fail(p, 400, "empty Content-Length");
	for (const char *c = v; *c != '\0'; c++) {
		if (!isdigit((unsigned char)*c))
			return fail(p, 400, "malformed Content-Length");
		n = n * 10 + (uint64_t)(*c - '0');
		if (n > LS_HTTP_BODY_MAX)
			return fail(p, 413, "request body too large");
	}
	if (*seen && n != p->body_want)
		return fail(p, 400, "conflicting Content-Length headers");
	*seen = true;
	p->body_want = (size_t)n;
	return 0;
}

/* Applies the headers that shape the message: length, connection, expect. */
static int interpret_headers(struct ls_http_parser *p)
{
	struct ls_http_request *r = &p->req;
	bool seen_length = false;
	for (int i = 0; i < r->nheaders; i++) {
		const char *n = r->headers[i].name, *v = r->headers[i].value;
		if (strcasecmp(n, "Content-Length") == 0) {
			if (parse_content_length(p, v, &seen_length) < 0)
				return -1;
		} else if (strcasecmp(n, "Transfer-Encoding") == 0) {
			return fail(p, 501, "Transfer-Encoding is not supported");
		} else if (strcasecmp(n, "Connection") == 0) {
			if (list_has(v, "close"))
				r->keep_alive = false;
			else if (list_has(v, "keep-alive"))
				r->keep_alive = true;
		} else if (strcasecmp(n, "Expect") == 0) {
			r->expect_continue = strcasecmp(v, "100-continue") == 0;
		}
	}
	return 0;
}

/* Parses the complete head in p->head (head_len bytes, the last line empty). */
static int parse_head(struct ls_http_parser *p)
{
	char *s = p->head;
	size_t end = p->head_len;
	bool first = true;
	for (size_t pos = 0; pos < end;) {
		char *nl = memchr(s + pos, '\n', end - pos);
		size_t len = (size_t)(nl - (s + pos));
		char *line = s + pos;
		pos += len + 1;
		len = cut_line(line, len);
		if (memchr(line, '\0', len) != NULL || memchr(line, '\r', len) != NULL)
			return fail(p, 400, "control character in request head");
		if (len == 0)
			break;
		int rc = first ? parse_request_line(p, line, len) : parse_header_line(p, line, len);
		if (rc < 0)
			return -1;
		first = false;
	}
	if (first)
		return fail(p, 400, "empty request");
	split_target(&p->req, (char *)p->req.path);
	return interpret_headers(p);
}

/* Takes head bytes; returns how many were used, setting state to ST_BODY
 * (or ST_DONE / ST_ERROR) when the head ends. */
static size_t feed_head(struct ls_http_parser *p, const char *data, size_t len)
{
	size_t i;
	for (i = 0; i < len && p->state == ST_HEAD; i++) {
		char c = data[i];
		/* RFC 9112 2.2: ignore empty lines before the request line. */
		if (p->head_len == 0 && (c == '\r' || c == '\n'))
			continue;
		if (p->head_len >= LS_HTTP_HEAD_MAX) {
			if (p->saw_line_end)
				fail(p, 431, "request head too large");
			else
				fail(p, 414, "request line too long");
			return i;
		}
		p->head[p->head_len++] = c;
		if (c != '\n')
			continue;
		size_t line_len = p->head_len - 1 - p->line_start;
		bool empty = line_len == 0 || (line_len == 1 && p->head[p->line_start] == '\r');
		p->saw_line_end = true;
		p->line_start = p->head_len;
		if (!empty)
			continue;
		if (parse_head(p) < 0)
			return i + 1;
		p->state = p->body_want > 0 ? ST_BODY : ST_DONE;
		if (p->state == ST_BODY) {
			p->body = malloc(p->body_want + 1);
			if (p->body == NULL) {
				fail(p, 503, "out of memory");
				return i + 1;
			}
		}
	}
	return i;
}

static size_t feed_body(struct ls_http_parser *p, const char *data, size_t len)
{
	size_t want = p->body_want - p->req.body_len;
	size_t n = len < want ? len : want;
	memcpy(p->body + p->req.body_len, data, n);
	p->req.body_len += n;
	if (p->req.body_len == p->body_want) {
		p->body[p->body_want] = '\0';
		p->req.body = p->body;
		p->state = ST_DONE;
	}
	return n;
}

enum ls_http_result ls_http_parser_feed(struct ls_http_parser *p, const char *data,
					size_t len, size_t *consumed)
{
	size_t used = 0;
	if (p->state == ST_HEAD)
		used += feed_head(p, data, len);
	if (p->state == ST_BODY)
		used += feed_body(p, data + used, len - used);
	if (consumed != NULL)
		*consumed = used;
	switch (p->state) {
	case ST_DONE:
		return LS_HTTP_COMPLETE;
	case ST_ERROR:
		return LS_HTTP_ERROR;
	default:
		return LS_HTTP_NEED_MORE;
	}
}

bool ls_http_parser_head_done(const struct ls_http_parser *p)
{
	return p->state == ST_BODY;
}

const struct ls_http_request *ls_http_parser_request(const struct ls_http_parser *p)
{
	return p->state == ST_DONE || p->state == ST_BODY ? &p->req : NULL;
}

int ls_http_parser_error(const struct ls_http_parser *p, const char **reason)
{
	if (reason != NULL)
		*reason = p->err_reason != NULL ? p->err_reason : "";
	return p->err_status;
}

const char *ls_http_request_header(const struct ls_http_request *r, const char *name)
{
	for (int i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

const char *ls_http_reason(int status)
{
	static const struct {
		int status;
		const char *reason;
	} reasons[] = {
		{100, "Continue"}, {200, "OK"}, {201, "Created"}, {202, "Accepted"},
		{204, "No Content"}, {400, "Bad Request"}, {403, "Forbidden"},
		{404, "Not Found"}, {405, "Method Not Allowed"}, {408, "Request Timeout"},
		{409, "Conflict"}, {413, "Content Too Large"}, {414, "URI Too Long"},
		{431, "Request Header Fields Too Large"}, {500, "Internal Server Error"},
		{501, "Not Implemented"}, {503, "Service Unavailable"},
		{505, "HTTP Version Not Supported"},
	};
	for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
		if (reasons[i].status == status)
			return reasons[i].reason;
	return "Unknown";
}

char *ls_http_response(int status, const char *content_type, const char *extra_headers,
		       const void *body, size_t body_len, bool keep_alive, size_t *out_len)
{
	char ctype[160] = "";
	if (content_type != NULL)
		snprintf(ctype, sizeof ctype, "Content-Type: %s\r\n", content_type);
	const char *extra = extra_headers != NULL ? extra_headers : "";
	const char *conn = keep_alive ? "keep-alive" : "close";
	const char *reason = ls_http_reason(status);
#define RESPONSE_HEAD "HTTP/1.1 %d %s\r\n%sContent-Length: %zu\r\nConnection: %s\r\n%s\r\n"
	int head = snprintf(NULL, 0, RESPONSE_HEAD, status, reason, ctype, body_len, conn, extra);
	if (head < 0)
		return NULL;
	char *out = malloc((size_t)head + body_len + 1);
	if (out == NULL)
		return NULL;
	snprintf(out, (size_t)head + 1, RESPONSE_HEAD, status, reason, ctype, body_len, conn, extra);
#undef RESPONSE_HEAD
	if (body_len > 0)
		memcpy(out + head, body, body_len);
	out[(size_t)head + body_len] = '\0';
	*out_len = (size_t)head + body_len;
	return out;
}

/* Finds the blank line ending a head; returns the offset after it, or 0. */
static size_t head_end(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (i + 1 < len && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* Content-Length of a response head (head_len bytes), -1 when absent,
 * -2 when malformed. */
static long long response_length(const char *h, size_t head_len)
{
	static const char name[] = "content-length:";
	size_t nlen = sizeof name - 1;
	for (size_t i = 0; i + nlen < head_len; i++) {
		if (h[i] != '\n' || strncasecmp(h + i + 1, name, nlen) != 0)
			continue;
		size_t k = i + 1 + nlen;
		while (k < head_len && is_ows(h[k]))
			k++;
		long long n = 0;
		size_t digits = 0;
		for (; k < head_len && isdigit((unsigned char)h[k]) && digits < 12; k++, digits++)
			n = n * 10 + (h[k] - '0');
		return digits == 0 || digits == 12 ? -2 : n;
	}
	return -1;
}

int ls_http_parse_response(const char *buf, size_t len, int *status,
			   const char **body, size_t *body_len)
{
	if (len < 13 || strncmp(buf, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)buf[7]) ||
	    buf[8] != ' ')
		return -1;
	for (int i = 9; i < 12; i++)
		if (!isdigit((unsigned char)buf[i]))
			return -1;
	if (buf[12] != ' ' && buf[12] != '\r' && buf[12] != '\n')
		return -1;
	size_t end = head_end(buf, len);
	if (end == 0)
		return -1;
	long long n = response_length(buf, end);
	if (n == -2 || (n >= 0 && (unsigned long long)n > len - end))
		return -1;
	*status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	*body = buf + end;
	*body_len = n >= 0 ? (size_t)n : len - end;
	return 0;
}
