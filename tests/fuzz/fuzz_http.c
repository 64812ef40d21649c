/* libFuzzer target for lib/http.
 *
 * Input: byte 0 picks a chunk size, the rest is what a client sends.  The
 * request is parsed twice, in one feed and in chunks, and both runs must
 * agree exactly (the parser's result must not depend on how reads split the
 * bytes).  A complete request's fields must respect the documented limits.
 * The same bytes also go through the response parser lockstepctl uses. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

static void check(int cond)
{
	if (!cond)
		abort();
}

static enum ls_http_result parse(struct ls_http_parser *p, const char *s, size_t len,
				 size_t step)
{
	enum ls_http_result r = LS_HTTP_NEED_MORE;
	for (size_t off = 0; off < len && r == LS_HTTP_NEED_MORE; off += step) {
		size_t n = len - off < step ? len - off : step, used = 0;
		r = ls_http_parser_feed(p, s + off, n, &used);
		check(used <= n);
		check(r != LS_HTTP_NEED_MORE || used == n);
	}
	return r;
}

static void same_request(const struct ls_http_request *a, const struct ls_http_request *b)
{
	check(strcmp(a->method, b->method) == 0);
	check(strcmp(a->path, b->path) == 0 && a->path[0] == '/');
	check(strcmp(a->query, b->query) == 0);
	check(a->version_minor == b->version_minor && a->keep_alive == b->keep_alive);
	check(a->nheaders == b->nheaders && a->nheaders <= LS_HTTP_MAX_HEADERS);
	for (int i = 0; i < a->nheaders; i++) {
		check(strcmp(a->headers[i].name, b->headers[i].name) == 0);
		check(strcmp(a->headers[i].value, b->headers[i].value) == 0);
	}
	check(a->body_len == b->body_len && a->body_len <= LS_HTTP_BODY_MAX);
	check(memcmp(a->body, b->body, a->body_len) == 0 && a->body[a->body_len] == '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = data[0] ? data[0] : 1;
	const char *s = (const char *)data + 1;
	size_t len = size - 1;

	struct ls_http_parser *whole = ls_http_parser_new();
	struct ls_http_parser *split = ls_http_parser_new();
	enum ls_http_result r1 = parse(whole, s, len, len ? len : 1);
	enum ls_http_result r2 = parse(split, s, len, step);
	check(r1 == r2);
	if (r1 == LS_HTTP_ERROR) {
		const char *why1, *why2;
		int st = ls_http_parser_error(whole, &why1);
		check(st == ls_http_parser_error(split, &why2) && st >= 400 && st <= 505);
		check(strcmp(why1, why2) == 0);
	} else if (r1 == LS_HTTP_COMPLETE) {
		const struct ls_http_request *a = ls_http_parser_request(whole);
		same_request(a, ls_http_parser_request(split));
		size_t out_len = 0;
		char *out = ls_http_response(200, "text/plain", NULL, a->body, a->body_len,
					     a->keep_alive, &out_len);
		int status = 0;
		const char *body = NULL;
		size_t blen = 0;
		check(out != NULL && ls_http_parse_response(out, out_len, &status, &body, &blen) == 0);
		check(status == 200 && blen == a->body_len && memcmp(body, a->body, blen) == 0);
		free(out);
	}
	ls_http_parser_free(whole);
	ls_http_parser_free(split);

	int status;
	const char *body;
	size_t blen;
	if (ls_http_parse_response(s, len, &status, &body, &blen) == 0)
		check(status >= 0 && status <= 999 && body >= s && body + blen <= s + len);
	return 0;
}
