/* Unit tests of lib/buffer (window accounting) and lib/buffer_direct. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "buffer.h"
#include "buffer_direct.h"

#define MAXREC 20000

/* What the callbacks saw. */
struct seen {
	struct ls_buffer_reader *reader;
	int64_t offsets[MAXREC];
	char payloads[MAXREC][32];
	size_t nrec;
	uint64_t durable[MAXREC];
	size_t ndurable;
	int writable;
	int pause_after;           /* pause the reader after this many records */
	int ack_each;              /* ack every record from inside on_record */
	int closed;
};

static void on_record(void *ctx, int64_t offset, const void *bytes, size_t len)
{
	struct seen *s = ctx;
	ck_assert_uint_lt(s->nrec, MAXREC);
	ck_assert_uint_lt(len, sizeof s->payloads[0]);
	s->offsets[s->nrec] = offset;
	memcpy(s->payloads[s->nrec], bytes, len);
	s->payloads[s->nrec][len] = '\0';
	s->nrec++;
	if (s->ack_each)
		ck_assert_int_eq(ls_buffer_reader_ack(s->reader, offset, NULL), 0);
	if (s->pause_after && (int)s->nrec == s->pause_after)
		ls_buffer_reader_pause(s->reader);
}

static void on_reader_error(void *ctx, const struct ls_err *err)
{
	(void)ctx;
	ck_abort_msg("unexpected reader error: %s", err->msg);
}

static void on_durable(void *ctx, uint64_t seq)
{
	struct seen *s = ctx;
	ck_assert_uint_lt(s->ndurable, MAXREC);
	s->durable[s->ndurable++] = seq;
}

static void on_writable(void *ctx)
{
	((struct seen *)ctx)->writable++;
}

static void on_closed(void *arg)
{
	((struct seen *)arg)->closed = 1;
}

struct fixture {
	uv_loop_t loop;
	struct ls_buffer *b;
	struct seen *s;
};

static void setup(struct fixture *f, size_t max_records, size_t max_bytes)
{
	struct ls_err err;
	struct ls_buffer_limits lim = { max_records, max_bytes };
	ck_assert_int_eq(uv_loop_init(&f->loop), 0);
	f->s = calloc(1, sizeof *f->s);
	ck_assert_ptr_nonnull(f->s);
	ck_assert_int_eq(ls_buffer_direct_new(&f->loop, &lim, &f->b, &err), 0);
	ck_assert_str_eq(ls_buffer_name(f->b), "direct");
	struct ls_buffer_producer_cb pcb = {
		.ctx = f->s, .on_durable = on_durable, .on_writable = on_writable,
	};
	ck_assert_int_eq(ls_buffer_open_producer(f->b, &pcb, &err), 0);
}

static void open_reader(struct fixture *f, int64_t offset)
{
	struct ls_err err;
	struct ls_buffer_reader_cb rcb = {
		.ctx = f->s, .on_record = on_record, .on_error = on_reader_error,
	};
	ck_assert_int_eq(ls_buffer_open_reader(f->b, "t1", offset, &rcb,
					       &f->s->reader, &err), 0);
}

static int append_str(struct fixture *f, const char *text, uint64_t seq)
{
	struct ls_err err;
	return ls_buffer_append(f->b, text, strlen(text), seq, &err);
}

static void teardown(struct fixture *f)
{
	ls_buffer_close(f->b, on_closed, f->s);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(f->s->closed, 1);
	ck_assert_int_eq(uv_loop_close(&f->loop), 0);
	free(f->s);
}

START_TEST(buffer_window_admits_big_record_into_empty_window)
{
	struct ls_buffer_window w;
	struct ls_buffer_limits lim = { 3, 100 };
	ls_buffer_window_init(&w, &lim);
	ck_assert_int_eq(ls_buffer_window_admit(&w, 1000), 0);
	ck_assert_int_eq(ls_buffer_window_admit(&w, 1), LS_BUFFER_FULL);
	ck_assert_int_eq(ls_buffer_window_take_writable(&w), 0);
	ls_buffer_window_release(&w, 1000);
	ck_assert_int_eq(ls_buffer_window_take_writable(&w), 1);
	ck_assert_int_eq(ls_buffer_window_take_writable(&w), 0);
	ck_assert_int_eq(ls_buffer_window_admit(&w, 40), 0);
	ck_assert_int_eq(ls_buffer_window_admit(&w, 40), 0);
	ck_assert_int_eq(ls_buffer_window_admit(&w, 40), LS_BUFFER_FULL);
	ck_assert_int_eq(ls_buffer_window_admit(&w, 20), 0);
	ck_assert_int_eq(ls_buffer_window_admit(&w, 0), LS_BUFFER_FULL);
	ck_assert_uint_eq(w.records, 3);
	ck_assert_uint_eq(w.bytes, 100);
}
END_TEST

START_TEST(buffer_window_zero_limits_mean_defaults)
{
	struct ls_buffer_window w;
	struct ls_buffer_limits lim = { 0, 0 };
	ls_buffer_window_init(&w, &lim);
	ck_assert_uint_eq(w.max_records, LS_BUFFER_DEFAULT_RECORDS);
	ck_assert_uint_eq(w.max_bytes, LS_BUFFER_DEFAULT_BYTES);
}
END_TEST

START_TEST(direct_delivers_in_order_from_reader_offset)
{
	struct fixture f;
	setup(&f, 0, 0);
	char text[32];
	for (int i = 0; i < 5000; i++) {
		snprintf(text, sizeof text, "rec-%d", i);
		ck_assert_int_eq(append_str(&f, text, 1000 + (uint64_t)i), 0);
	}
	open_reader(&f, 42);
	/* Nothing is delivered from inside a call. */
	ck_assert_uint_eq(f.s->nrec, 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(f.s->nrec, 5000);
	for (int i = 0; i < 5000; i++) {
		snprintf(text, sizeof text, "rec-%d", i);
		ck_assert_int_eq(f.s->offsets[i], 42 + i);
		ck_assert_str_eq(f.s->payloads[i], text);
	}
	ck_assert_int_eq(ls_buffer_reader_lag(f.s->reader), 0);
	/* Delivered but not acknowledged: nothing is durable yet. */
	ck_assert_uint_eq(f.s->ndurable, 0);
	teardown(&f);
}
END_TEST

START_TEST(direct_durable_follows_ack_in_order)
{
	struct fixture f;
	setup(&f, 0, 0);
	open_reader(&f, 0);
	for (uint64_t i = 0; i < 10; i++)
		ck_assert_int_eq(append_str(&f, "x", 500 + i * 7), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(f.s->nrec, 10);
	struct ls_err err;
	ck_assert_int_eq(ls_buffer_reader_ack(f.s->reader, 3, &err), 0);
	ck_assert_uint_eq(f.s->ndurable, 0);      /* reported from the loop */
	uv_run(&f.loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(f.s->ndurable, 4);
	/* An older ack is a no-op. */
	ck_assert_int_eq(ls_buffer_reader_ack(f.s->reader, 1, &err), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(f.s->ndurable, 4);
	ck_assert_int_eq(ls_buffer_reader_ack(f.s->reader, 9, &err), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(f.s->ndurable, 10);
	for (uint64_t i = 0; i < 10; i++)
		ck_assert_uint_eq(f.s->durable[i], 500 + i * 7);
	struct ls_buffer_stats st;
	ls_buffer_stats(f.b, &st);
	ck_assert_uint_eq(st.appended, 10);
	ck_assert_uint_eq(st.durable, 10);
	ck_assert_uint_eq(st.inflight_records, 0);
	ck_assert_uint_eq(st.inflight_bytes, 0);
	teardown(&f);
}
END_TEST

START_TEST(direct_ack_beyond_delivered_is_an_error)
{
	struct fixture f;
	setup(&f, 0, 0);
	open_reader(&f, 10);
	ck_assert_int_eq(append_str(&f, "a", 1), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	struct ls_err err;
	ck_assert_int_lt(ls_buffer_reader_ack(f.s->reader, 11, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "acked offset 11"));
	ck_assert_int_eq(ls_buffer_reader_ack(f.s->reader, 10, &err), 0);
	teardown(&f);
}
END_TEST

/* The window counts records waiting for delivery: a paused reader fills it;
 * delivery (not the target's ack) frees it, so a source transaction larger
 * than the window still reaches the target, which commits it whole.
 * Durability still waits for the ack. */
START_TEST(direct_full_window_then_writable)
{
	struct fixture f;
	setup(&f, 4, 0);
	f.s->ack_each = 0;
	open_reader(&f, 0);
	ls_buffer_reader_pause(f.s->reader);
	int taken = 0;
	while (append_str(&f, "r", (uint64_t)taken) == 0)
		taken++;
	ck_assert_int_eq(taken, 4);
	ck_assert_int_eq(append_str(&f, "r", 99), LS_BUFFER_FULL);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(f.s->nrec, 0);
	ck_assert_int_eq(f.s->writable, 0);
	ls_buffer_reader_resume(f.s->reader);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(f.s->nrec, 4);
	ck_assert_int_eq(f.s->writable, 1);
	struct ls_buffer_stats st;
	ls_buffer_stats(f.b, &st);
	ck_assert_uint_eq(st.durable, 0);
	/* more than the window may be delivered and wait for one ack */
	for (int i = 4; i < 12; i++) {
		ck_assert_int_eq(append_str(&f, "r", (uint64_t)i), 0);
		uv_run(&f.loop, UV_RUN_DEFAULT);
	}
	ck_assert_uint_eq(f.s->nrec, 12);
	ck_assert_int_eq(ls_buffer_reader_ack(f.s->reader, 11, NULL), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	ls_buffer_stats(f.b, &st);
	ck_assert_uint_eq(st.durable, 12);
	teardown(&f);
}
END_TEST

START_TEST(direct_byte_limit_bounds_window)
{
	struct fixture f;
	setup(&f, 1000, 10);
	ck_assert_int_eq(append_str(&f, "12345", 1), 0);
	ck_assert_int_eq(append_str(&f, "12345", 2), 0);
	ck_assert_int_eq(append_str(&f, "1", 3), LS_BUFFER_FULL);
	struct ls_buffer_stats st;
	ls_buffer_stats(f.b, &st);
	ck_assert_uint_eq(st.inflight_bytes, 10);
	ck_assert_uint_eq(st.inflight_records, 2);
	teardown(&f);
}
END_TEST

START_TEST(direct_steady_flow_with_acks_moves_everything)
{
	struct fixture f;
	setup(&f, 8, 0);
	f.s->ack_each = 1;
	open_reader(&f, 0);
	uint64_t next = 0;
	const uint64_t total = 3000;
	/* Producer: append until FULL, then let the loop run, as a source
	 * would stop reading until on_writable. */
	while (next < total) {
		int rc = append_str(&f, "p", next);
		ck_assert_int_ge(rc, 0);
		if (rc == 0) {
			next++;
			continue;
		}
		int before = f.s->writable;
		while (f.s->writable == before) {
			int more = uv_run(&f.loop, UV_RUN_ONCE);
			ck_assert(more || f.s->writable != before);
		}
	}
	uv_run(&f.loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(f.s->nrec, total);
	ck_assert_uint_eq(f.s->ndurable, total);
	ck_assert_int_gt(f.s->writable, 0);
	for (uint64_t i = 0; i < total; i++) {
		ck_assert_uint_eq(f.s->durable[i], i);
		ck_assert_int_eq(f.s->offsets[i], (int64_t)i);
	}
	teardown(&f);
}
END_TEST

START_TEST(direct_pause_stops_delivery_until_resume)
{
	struct fixture f;
	setup(&f, 0, 0);
	f.s->pause_after = 3;
	open_reader(&f, 0);
	for (uint64_t i = 0; i < 10; i++)
		ck_assert_int_eq(append_str(&f, "z", i), 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	/* Paused from inside the third on_record: the loop went idle. */
	ck_assert_uint_eq(f.s->nrec, 3);
	ck_assert_int_eq(ls_buffer_reader_lag(f.s->reader), 7);
	ls_buffer_reader_resume(f.s->reader);
	ck_assert_uint_eq(f.s->nrec, 3);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(f.s->nrec, 10);
	ck_assert_int_eq(f.s->offsets[9], 9);
	teardown(&f);
}
END_TEST

START_TEST(direct_second_reader_is_refused)
{
	struct fixture f;
	setup(&f, 0, 0);
	open_reader(&f, 0);
	struct ls_err err;
	struct ls_buffer_reader *r2;
	struct ls_buffer_reader_cb rcb = { .ctx = f.s, .on_record = on_record };
	ck_assert_int_lt(ls_buffer_open_reader(f.b, "t2", 0, &rcb, &r2, &err), 0);
	ck_assert_ptr_null(r2);
	ck_assert_ptr_nonnull(strstr(err.msg, "one reader"));
	ck_assert_int_lt(ls_buffer_open_reader(f.b, "t3", -1, &rcb, &r2, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "negative"));
	teardown(&f);
}
END_TEST

START_TEST(direct_reader_close_stops_callbacks)
{
	struct fixture f;
	setup(&f, 0, 0);
	open_reader(&f, 0);
	ck_assert_int_eq(append_str(&f, "a", 1), 0);
	ls_buffer_reader_close(f.s->reader);
	ls_buffer_reader_close(NULL);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(f.s->nrec, 0);
	teardown(&f);
}
END_TEST

START_TEST(direct_close_drops_queue_and_refuses_appends)
{
	struct fixture f;
	setup(&f, 0, 0);
	for (uint64_t i = 0; i < 100; i++)
		ck_assert_int_eq(append_str(&f, "left behind", i), 0);
	ls_buffer_close(f.b, on_closed, f.s);
	struct ls_err err;
	ck_assert_int_lt(ls_buffer_append(f.b, "x", 1, 1, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "closing"));
	uv_run(&f.loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(f.s->closed, 1);
	ck_assert_uint_eq(f.s->ndurable, 0);
	ck_assert_int_eq(uv_loop_close(&f.loop), 0);
	free(f.s);
	ls_buffer_close(NULL, NULL, NULL);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("buffer");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, buffer_window_admits_big_record_into_empty_window);
	tcase_add_test(tc, buffer_window_zero_limits_mean_defaults);
	tcase_add_test(tc, direct_delivers_in_order_from_reader_offset);
	tcase_add_test(tc, direct_durable_follows_ack_in_order);
	tcase_add_test(tc, direct_ack_beyond_delivered_is_an_error);
	tcase_add_test(tc, direct_full_window_then_writable);
	tcase_add_test(tc, direct_byte_limit_bounds_window);
	tcase_add_test(tc, direct_steady_flow_with_acks_moves_everything);
	tcase_add_test(tc, direct_pause_stops_delivery_until_resume);
	tcase_add_test(tc, direct_second_reader_is_refused);
	tcase_add_test(tc, direct_reader_close_stops_callbacks);
	tcase_add_test(tc, direct_close_drops_queue_and_refuses_appends);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
