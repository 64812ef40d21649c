/* Unit tests for lib/http: the incremental request parser, the response
 * builder and the response parser lockstepctl uses. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* Feeds the whole text in one call; returns the result. */
static enum ls_http_result feed_all(struct ls_http_parser *p, const char *s, size_t len)
{
	size_t used = 0;
	return ls_http_parser_feed(p, s, len, &used);
}

/* Feeds the text in pieces of `step` bytes; returns the first non-NEED_MORE
 * result (or NEED_MORE if the text ran out). */
static enum ls_http_result feed_split(struct ls_http_parser *p, const char *s, size_t len,
				      size_t step)
{
	for (size_t off = 0; off < len; off += step) {
		size_t n = len - off < step ? len - off : step, used = 0;
		enum ls_http_result r = ls_http_parser_feed(p, s + off, n, &used);
		if (r != LS_HTTP_NEED_MORE)
			return r;
		ck_assert_uint_eq(used, n);
	}
	return LS_HTTP_NEED_MORE;
}

static const char post_req[] =
	"POST /drift/check?table=public.t&x=1 HTTP/1.1\r\n"
	"Host: lockstepd\r\n"
	"Content-Type:application/json\r\n"
	"X-Spaces:   padded value  \t\r\n"
	"content-length: 11\r\n"
	"\r\n"
	"{\"a\":true}\n";

static void check_post(const struct ls_http_request *r)
{
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->method, "POST");
	ck_assert_str_eq(r->path, "/drift/check");
	ck_assert_str_eq(r->query, "table=public.t&x=1");
	ck_assert_int_eq(r->version_minor, 1);
	ck_assert(r->keep_alive);
	ck_assert_int_eq(r->nheaders, 4);
	ck_assert_str_eq(ls_http_request_header(r, "content-type"), "application/json");
	ck_assert_str_eq(ls_http_request_header(r, "X-SPACES"), "padded value");
	ck_assert_ptr_null(ls_http_request_header(r, "Transfer-Encoding"));
	ck_assert_uint_eq(r->body_len, 11);
	ck_assert_str_eq(r->body, "{\"a\":true}\n");
}

START_TEST(http_parses_request_in_one_feed)
{
	struct ls_http_parser *p = ls_http_parser_new();
	ck_assert_int_eq(feed_all(p, post_req, strlen(post_req)), LS_HTTP_COMPLETE);
	check_post(ls_http_parser_request(p));
	ls_http_parser_free(p);
}
END_TEST

START_TEST(http_parses_request_split_at_every_size)
{
	for (size_t step = 1; step <= strlen(post_req); step++) {
		struct ls_http_parser *p = ls_http_parser_new();
		ck_assert_msg(feed_split(p, post_req, strlen(post_req), step) == LS_HTTP_COMPLETE,
			      "step %zu", step);
		check_post(ls_http_parser_request(p));
		ls_http_parser_free(p);
	}
}
END_TEST

START_TEST(http_needs_more_until_body_is_complete)
{
	struct ls_http_parser *p = ls_http_parser_new();
	size_t len = strlen(post_req);
	ck_assert_int_eq(feed_all(p, post_req, len - 1), LS_HTTP_NEED_MORE);
	ck_assert(ls_http_parser_head_done(p));
	ck_assert_uint_lt(ls_http_parser_request(p)->body_len, 11);
	ck_assert_int_eq(feed_all(p, post_req + len - 1, 1), LS_HTTP_COMPLETE);
	check_post(ls_http_parser_request(p));
	ls_http_parser_free(p);
}
END_TEST

START_TEST(http_simple_get_lf_only_and_leading_blank_lines)
{
	struct ls_http_parser *p = ls_http_parser_new();
	const char *req = "\r\n\nGET /status HTTP/1.0\nConnection: keep-alive\n\n";
	ck_assert_int_eq(feed_all(p, req, strlen(req)), LS_HTTP_COMPLETE);
	const struct ls_http_request *r = ls_http_parser_request(p);
	ck_assert_str_eq(r->method, "GET");
	ck_assert_str_eq(r->path, "/status");
	ck_assert_str_eq(r->query, "");
	ck_assert_int_eq(r->version_minor, 0);
	ck_assert(r->keep_alive);
	ck_assert_uint_eq(r->body_len, 0);
	ck_assert_str_eq(r->body, "");
	ls_http_parser_free(p);
}
END_TEST

START_TEST(http_connection_close_and_expect_continue)
{
	struct ls_http_parser *p = ls_http_parser_new();
	const char *req = "PUT /x HTTP/1.1\r\nConnection: TE, Close\r\nExpect: 100-Continue\r\n"
			  "Content-Length: 2\r\n\r\n";
	ck_assert_int_eq(feed_all(p, req, strlen(req)), LS_HTTP_NEED_MORE);
	ck_assert(ls_http_parser_head_done(p));
	ck_assert(ls_http_parser_request(p)->expect_continue);
	ck_assert(!ls_http_parser_request(p)->keep_alive);
	ck_assert_int_eq(feed_all(p, "ok", 2), LS_HTTP_COMPLETE);
	ck_assert_str_eq(ls_http_parser_request(p)->body, "ok");
	ls_http_parser_free(p);
}
END_TEST

START_TEST(http_pipelined_requests_are_consumed_one_at_a_time)
{
	struct ls_http_parser *p = ls_http_parser_new();
	const char *two = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
	size_t used = 0, len = strlen(two);
	ck_assert_int_eq(ls_http_parser_feed(p, two, len, &used), LS_HTTP_COMPLETE);
	ck_assert_uint_eq(used, len / 2);
	ck_assert_str_eq(ls_http_parser_request(p)->path, "/a");
	/* A finished parser takes nothing more until reset. */
	size_t again = 99;
	ck_assert_int_eq(ls_http_parser_feed(p, two + used, len - used, &again), LS_HTTP_COMPLETE);
	ck_assert_uint_eq(again, 0);
	ls_http_parser_reset(p);
	ck_assert_int_eq(ls_http_parser_feed(p, two + used, len - used, &again), LS_HTTP_COMPLETE);
	ck_assert_uint_eq(again, len - used);
	ck_assert_str_eq(ls_http_parser_request(p)->path, "/b");
	ls_http_parser_free(p);
}
END_TEST

/* Each malformed class gets its own status, in one feed and byte by byte. */
START_TEST(http_rejects_malformed_requests_with_their_status)
{
	static const struct {
		const char *req;
		int status;
	} cases[] = {
		{"GARBAGE\r\n\r\n", 400},
		{"GET\r\n\r\n", 400},
		{"GET /x\r\n\r\n", 400},
		{"GET  /x HTTP/1.1\r\n\r\n", 400},
		{"GET x HTTP/1.1\r\n\r\n", 400},
		{"GET http://h/x HTTP/1.1\r\n\r\n", 400},
		{"GET /x HTTP/1.1 \r\n\r\n", 400},
		{"GET /x HTTP/1.1\r\r\n\r\n", 400},
		{"GET /x HTTP/1.1\rX: y\r\n\r\n", 400},
		{"G(T /x HTTP/1.1\r\n\r\n", 400},
		{"GET /x HTTP/1.1x\r\n\r\n", 400},
		{"GET /x FTP/1.1\r\n\r\n", 400},
		{"GET /x HTTP/2.0\r\n\r\n", 505},
		{"GET /x HTTP/1.2\r\n\r\n", 505},
		{"GET /x HTTP/1.1\r\nNoColon\r\n\r\n", 400},
		{"GET /x HTTP/1.1\r\nBad Name: v\r\n\r\n", 400},
		{"GET /x HTTP/1.1\r\nName : v\r\n\r\n", 400},
		{"GET /x HTTP/1.1\r\n: v\r\n\r\n", 400},
		{"GET /x HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400},
		{"GET /x HTTP/1.1\r\nA: b\x01\r\n\r\n", 400},
		{"GET /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
		{"GET /x HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400},
		{"GET /x HTTP/1.1\r\nContent-Length:\r\n\r\n", 400},
		{"GET /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
		{"GET /x HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", 413},
		{"GET /x HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413},
		{"GET /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
		{"AVERYVERYLONGMETHODNAME /x HTTP/1.1\r\n\r\n", 501},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		for (int split = 0; split < 2; split++) {
			struct ls_http_parser *p = ls_http_parser_new();
			const char *s = cases[i].req;
			enum ls_http_result r = split ? feed_split(p, s, strlen(s), 1)
						      : feed_all(p, s, strlen(s));
			ck_assert_msg(r == LS_HTTP_ERROR, "accepted %zu: %s", i, s);
			const char *reason = NULL;
			ck_assert_msg(ls_http_parser_error(p, &reason) == cases[i].status,
				      "case %zu: %s: got %d (%s)", i, s,
				      ls_http_parser_error(p, NULL), reason);
			ck_assert(reason != NULL && reason[0] != '\0');
			ck_assert_ptr_null(ls_http_parser_request(p));
			ls_http_parser_free(p);
		}
	}
}
END_TEST

START_TEST(http_rejects_nul_byte_in_head)
{
	struct ls_http_parser *p = ls_http_parser_new();
	const char req[] = "GET /x HTTP/1.1\r\nA: b\0c\r\n\r\n";
	ck_assert_int_eq(feed_all(p, req, sizeof req - 1), LS_HTTP_ERROR);
	ck_assert_int_eq(ls_http_parser_error(p, NULL), 400);
	ls_http_parser_free(p);
}
END_TEST

START_TEST(http_bounds_head_size_and_header_count)
{
	/* A request line that never ends: 414, without using more memory. */
	char *big = malloc(LS_HTTP_HEAD_MAX * 2);
	memcpy(big, "GET /", 5);
	memset(big + 5, 'a', LS_HTTP_HEAD_MAX * 2 - 5);
	struct ls_http_parser *p = ls_http_parser_new();
	size_t used = 0;
	ck_assert_int_eq(ls_http_parser_feed(p, big, LS_HTTP_HEAD_MAX * 2, &used), LS_HTTP_ERROR);
	ck_assert_int_eq(ls_http_parser_error(p, NULL), 414);
	ck_assert_uint_le(used, LS_HTTP_HEAD_MAX);
	ls_http_parser_free(p);

	/* Headers beyond the head limit: 431. */
	p = ls_http_parser_new();
	const char *line = "GET / HTTP/1.1\r\n";
	ck_assert_int_eq(feed_all(p, line, strlen(line)), LS_HTTP_NEED_MORE);
	enum ls_http_result r = LS_HTTP_NEED_MORE;
	for (int i = 0; i < 1000 && r == LS_HTTP_NEED_MORE; i++)
		r = feed_all(p, "X-Filler: 0123456789abcdef0123456789abcdef\r\n", 44);
	ck_assert_int_eq(r, LS_HTTP_ERROR);
	ck_assert_int_eq(ls_http_parser_error(p, NULL), 431);
	ls_http_parser_free(p);

	/* Too many (small) header fields: 431. */
	p = ls_http_parser_new();
	char req[4096];
	int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\n");
	for (int i = 0; i <= LS_HTTP_MAX_HEADERS; i++)
		n += snprintf(req + n, sizeof req - (size_t)n, "H%d: v\r\n", i);
	n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
	ck_assert_int_eq(feed_all(p, req, (size_t)n), LS_HTTP_ERROR);
	ck_assert_int_eq(ls_http_parser_error(p, NULL), 431);
	ls_http_parser_free(p);

	/* Exactly LS_HTTP_MAX_HEADERS is fine. */
	p = ls_http_parser_new();
	n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < LS_HTTP_MAX_HEADERS; i++)
		n += snprintf(req + n, sizeof req - (size_t)n, "H%d: v\r\n", i);
	n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
	ck_assert_int_eq(feed_all(p, req, (size_t)n), LS_HTTP_COMPLETE);
	ck_assert_int_eq(ls_http_parser_request(p)->nheaders, LS_HTTP_MAX_HEADERS);
	ls_http_parser_free(p);
	free(big);
}
END_TEST

START_TEST(http_accepts_body_of_exactly_the_limit)
{
	char head[128];
	int n = snprintf(head, sizeof head, "POST /x HTTP/1.1\r\nContent-Length: %d\r\n\r\n",
			 LS_HTTP_BODY_MAX);
	char *body = malloc(LS_HTTP_BODY_MAX);
	memset(body, 'b', LS_HTTP_BODY_MAX);
	struct ls_http_parser *p = ls_http_parser_new();
	ck_assert_int_eq(feed_all(p, head, (size_t)n), LS_HTTP_NEED_MORE);
	ck_assert_int_eq(feed_split(p, body, LS_HTTP_BODY_MAX, 1000), LS_HTTP_COMPLETE);
	ck_assert_uint_eq(ls_http_parser_request(p)->body_len, LS_HTTP_BODY_MAX);
	ls_http_parser_free(p);
	free(body);
}
END_TEST

START_TEST(http_builds_response_that_parses_back)
{
	size_t len = 0;
	char *out = ls_http_response(404, "application/json", "Allow: GET\r\n", "{\"e\":1}", 7,
				     false, &len);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(len, strlen(out));
	ck_assert_ptr_nonnull(strstr(out, "HTTP/1.1 404 Not Found\r\n"));
	ck_assert_ptr_nonnull(strstr(out, "Content-Type: application/json\r\n"));
	ck_assert_ptr_nonnull(strstr(out, "Content-Length: 7\r\n"));
	ck_assert_ptr_nonnull(strstr(out, "Connection: close\r\n"));
	ck_assert_ptr_nonnull(strstr(out, "Allow: GET\r\n\r\n{\"e\":1}"));
	int status = 0;
	const char *body = NULL;
	size_t blen = 0;
	ck_assert_int_eq(ls_http_parse_response(out, len, &status, &body, &blen), 0);
	ck_assert_int_eq(status, 404);
	ck_assert_uint_eq(blen, 7);
	ck_assert(memcmp(body, "{\"e\":1}", 7) == 0);
	free(out);
}
END_TEST

START_TEST(http_response_parser_rejects_bad_responses)
{
	static const char *bad[] = {
		"", "HTTP/1.1", "HTTP/1.1 200 OK\r\n", "HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "SMTP 220 hello\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int status = -7;
		const char *body = NULL;
		size_t blen = 0;
		ck_assert_msg(ls_http_parse_response(bad[i], strlen(bad[i]), &status, &body, &blen) < 0,
			      "accepted %s", bad[i]);
		ck_assert_int_eq(status, -7);
	}
	/* Without Content-Length the body runs to the end. */
	const char *ok = "HTTP/1.0 200 OK\nX: y\n\nrest of it";
	int status;
	const char *body;
	size_t blen;
	ck_assert_int_eq(ls_http_parse_response(ok, strlen(ok), &status, &body, &blen), 0);
	ck_assert_int_eq(status, 200);
	ck_assert_uint_eq(blen, 10);
}
END_TEST

START_TEST(http_reason_phrases)
{
	ck_assert_str_eq(ls_http_reason(200), "OK");
	ck_assert_str_eq(ls_http_reason(431), "Request Header Fields Too Large");
	ck_assert_str_eq(ls_http_reason(299), "Unknown");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("http");
	tcase_add_test(tc, http_parses_request_in_one_feed);
	tcase_add_test(tc, http_parses_request_split_at_every_size);
	tcase_add_test(tc, http_needs_more_until_body_is_complete);
	tcase_add_test(tc, http_simple_get_lf_only_and_leading_blank_lines);
	tcase_add_test(tc, http_connection_close_and_expect_continue);
	tcase_add_test(tc, http_pipelined_requests_are_consumed_one_at_a_time);
	tcase_add_test(tc, http_rejects_malformed_requests_with_their_status);
	tcase_add_test(tc, http_rejects_nul_byte_in_head);
	tcase_add_test(tc, http_bounds_head_size_and_header_count);
	tcase_add_test(tc, http_accepts_body_of_exactly_the_limit);
	tcase_add_test(tc, http_builds_response_that_parses_back);
	tcase_add_test(tc, http_response_parser_rejects_bad_responses);
	tcase_add_test(tc, http_reason_phrases);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
