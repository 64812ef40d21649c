/* Integration tests of the Kafka buffer (connectors/kafka/kbuf) against
 * librdkafka's mock cluster (3 brokers, in this process), driven by a libuv
 * loop the way the daemon drives it. */
#include <check.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "buffer.h"
#include "connectors/kafka/kbuf.h"

#define TOPIC "lockstep.it"
#define MAXREC 20000

struct reader_seen {
	struct ls_buffer_reader *r;
	int64_t first, last;       /* offsets of first/last record seen */
	size_t n;
	int out_of_order;          /* offsets not consecutive */
	int bad_payload;           /* payload did not match its offset */
	int errors;
	char errmsg[LS_ERR_MSG_MAX];
	size_t pause_at;           /* pause from inside on_record at this count */
};

struct it {
	uv_loop_t loop;
	uv_timer_t tick;           /* bounds each loop turn while waiting */
	rd_kafka_t *mrk;
	rd_kafka_mock_cluster_t *mc;
	struct ls_buffer *b;
	/* producer side */
	uint64_t durable[MAXREC];
	size_t ndurable;
	int durable_out_of_order;
	int writable, fulls, perrors;
	int closed;
	size_t payload_len;        /* 0: small text payloads */
};

static struct it *T;

/* The payload of the record with sequence number i: text, or payload_len
 * pseudo-random (incompressible) bytes starting with the number. */
static size_t make_payload(uint64_t i, char *buf, size_t size)
{
	if (T->payload_len == 0)
		return (size_t)snprintf(buf, size, "record-%" PRIu64 "-payload", i);
	uint64_t x = i * 0x9E3779B97F4A7C15ull + 1;
	for (size_t k = 0; k < T->payload_len; k++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[k] = (char)x;
	}
	memcpy(buf, &i, sizeof i);
	return T->payload_len;
}

static void on_durable(void *ctx, uint64_t seq)
{
	struct it *t = ctx;
	if (t->ndurable > 0 && seq != t->durable[t->ndurable - 1] + 1)
		t->durable_out_of_order++;
	if (t->ndurable < MAXREC)
		t->durable[t->ndurable] = seq;
	t->ndurable++;
}

static void on_writable(void *ctx)
{
	((struct it *)ctx)->writable++;
}

static void on_perror(void *ctx, const struct ls_err *err)
{
	((struct it *)ctx)->perrors++;
	fprintf(stderr, "producer error: %s\n", err->msg);
}

/* Records carry their producer seq; the tests append seq == offset. */
static void on_record(void *ctx, int64_t offset, const void *bytes, size_t len)
{
	struct reader_seen *s = ctx;
	char want[1 << 17];
	if (s->n == 0)
		s->first = offset;
	else if (offset != s->last + 1)
		s->out_of_order++;
	s->last = offset;
	s->n++;
	size_t wlen = make_payload((uint64_t)offset, want, sizeof want);
	if (len != wlen || memcmp(bytes, want, len) != 0)
		s->bad_payload++;
	if (s->pause_at && s->n == s->pause_at)
		ls_buffer_reader_pause(s->r);
}

static void on_rerror(void *ctx, const struct ls_err *err)
{
	struct reader_seen *s = ctx;
	s->errors++;
	snprintf(s->errmsg, sizeof s->errmsg, "%s", err->msg);
}

static void tick_cb(uv_timer_t *t)
{
	(void)t;
}

/* Runs the loop until *flag-like condition holds or ms pass. */
#define RUN_UNTIL(cond, ms)                                                  \
	do {                                                                 \
		uint64_t dl_ = uv_now(&T->loop) + (ms);                      \
		uv_timer_start(&T->tick, tick_cb, 10, 10);                    \
		while (!(cond) && uv_now(&T->loop) < dl_)                     \
			uv_run(&T->loop, UV_RUN_ONCE);                        \
		uv_timer_stop(&T->tick);                                      \
	} while (0)

static struct ls_buffer *new_buffer(int nkv, const char *const kv[][2], size_t max_records);

static void start(int nkv, const char *const kv[][2], size_t max_records)
{
	char errstr[256];
	T = calloc(1, sizeof *T);
	ck_assert_ptr_nonnull(T);
	ck_assert_int_eq(uv_loop_init(&T->loop), 0);
	uv_timer_init(&T->loop, &T->tick);
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	/* The mock's host handle has no brokers of its own: quiet its warning. */
	rd_kafka_conf_set(c, "log_level", "3", errstr, sizeof errstr);
	T->mrk = rd_kafka_new(RD_KAFKA_PRODUCER, c, errstr, sizeof errstr);
	ck_assert_ptr_nonnull(T->mrk);
	T->mc = rd_kafka_mock_cluster_new(T->mrk, 3);
	ck_assert_ptr_nonnull(T->mc);
	ck_assert_int_eq(rd_kafka_mock_topic_create(T->mc, TOPIC, 1, 3), 0);
	ck_assert_int_eq(rd_kafka_mock_partition_set_leader(T->mc, TOPIC, 0, 2), 0);
	T->b = new_buffer(nkv, kv, max_records);
	struct ls_buffer_producer_cb pcb = {
		.ctx = T, .on_durable = on_durable, .on_writable = on_writable,
		.on_error = on_perror,
	};
	struct ls_err err;
	ck_assert_msg(ls_buffer_open_producer(T->b, &pcb, &err) == 0, "%s",
		      err.msg);
}

/* A Kafka buffer on T's mock cluster. */
static struct ls_buffer *new_buffer(int nkv, const char *const kv[][2], size_t max_records)
{
	struct ls_config_buffer cfg = { .type = LS_BUFFER_KAFKA };
	cfg.brokers = (char *)rd_kafka_mock_cluster_bootstraps(T->mc);
	cfg.topic = (char *)TOPIC;
	for (int i = 0; i < nkv; i++) {
		cfg.kafka[i].key = (char *)kv[i][0];
		cfg.kafka[i].value = (char *)kv[i][1];
	}
	cfg.nkafka = nkv;
	struct ls_buffer_limits lim = { max_records, 0 };
	struct ls_err err;
	struct ls_buffer *b = NULL;
	ck_assert_msg(ls_kbuf_new(&T->loop, &cfg, &lim, &b, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(ls_buffer_name(b), "kafka");
	return b;
}

static void on_closed(void *arg)
{
	((struct it *)arg)->closed = 1;
}

static void stop(void)
{
	if (T->b != NULL) {
		ls_buffer_close(T->b, on_closed, T);
		RUN_UNTIL(T->closed, 30000);
	}
	ck_assert_int_eq(T->closed, 1);
	uv_close((uv_handle_t *)&T->tick, NULL);
	uv_run(&T->loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&T->loop), 0);
	rd_kafka_mock_cluster_destroy(T->mc);
	rd_kafka_destroy(T->mrk);
	free(T);
	T = NULL;
}

/* Appends records first..first+n-1 (seq = index), running the loop while the
 * window is full, as a source stops reading until on_writable. */
static void produce(uint64_t first, uint64_t n)
{
	static char buf[1 << 17];
	struct ls_err err;
	for (uint64_t i = first; i < first + n;) {
		size_t len = make_payload(i, buf, sizeof buf);
		int rc = ls_buffer_append(T->b, buf, len, i, &err);
		ck_assert_msg(rc >= 0, "append: %s", err.msg);
		if (rc == 0) {
			i++;
			continue;
		}
		T->fulls++;
		int w = T->writable;
		RUN_UNTIL(T->writable != w || T->perrors, 60000);
		ck_assert_int_eq(T->perrors, 0);
		ck_assert_int_ne(T->writable, w);
	}
}

static void wait_durable(size_t n)
{
	RUN_UNTIL(T->ndurable >= n || T->perrors, 60000);
	ck_assert_int_eq(T->perrors, 0);
	ck_assert_uint_eq(T->ndurable, n);
	ck_assert_int_eq(T->durable_out_of_order, 0);
	ck_assert_uint_eq(T->durable[0], 0);
}

static struct reader_seen *open_reader(const char *name, int64_t offset)
{
	struct reader_seen *s = calloc(1, sizeof *s);
	ck_assert_ptr_nonnull(s);
	struct ls_buffer_reader_cb cb = {
		.ctx = s, .on_record = on_record, .on_error = on_rerror,
	};
	struct ls_err err;
	ck_assert_msg(ls_buffer_open_reader(T->b, name, offset, &cb, &s->r,
					    &err) == 0, "%s", err.msg);
	return s;
}

static void check_reader(struct reader_seen *s, int64_t first, size_t n)
{
	RUN_UNTIL(s->n >= n || s->errors, 60000);
	ck_assert_msg(s->errors == 0, "reader error: %s", s->errmsg);
	ck_assert_uint_eq(s->n, n);
	ck_assert_int_eq(s->first, first);
	ck_assert_int_eq(s->last, first + (int64_t)n - 1);
	ck_assert_int_eq(s->out_of_order, 0);
	ck_assert_int_eq(s->bad_payload, 0);
}

START_TEST(kafka_records_arrive_in_order_and_durable_in_order)
{
	start(0, NULL, 0);
	produce(0, 10000);
	wait_durable(10000);
	struct ls_buffer_stats st;
	ls_buffer_stats(T->b, &st);
	ck_assert_uint_eq(st.appended, 10000);
	ck_assert_uint_eq(st.durable, 10000);
	ck_assert_uint_eq(st.inflight_records, 0);

	struct reader_seen *all = open_reader("t1", 0);
	struct reader_seen *tail = open_reader("t2", 6543);
	check_reader(all, 0, 10000);
	check_reader(tail, 6543, 10000 - 6543);
	ck_assert_int_eq(ls_buffer_reader_lag(all->r), 0);
	ck_assert_int_eq(ls_buffer_reader_ack(all->r, 9999, NULL), 0);

	/* More records reach open readers, and nothing else does. */
	produce(10000, 10);
	wait_durable(10010);
	check_reader(all, 0, 10010);
	check_reader(tail, 6543, 10010 - 6543);
	ls_buffer_reader_close(tail->r);
	stop();
	free(all);
	free(tail);
}
END_TEST

START_TEST(kafka_small_window_returns_full_then_writable)
{
	start(0, NULL, 8);
	produce(0, 2000);
	wait_durable(2000);
	ck_assert_int_gt(T->fulls, 0);
	ck_assert_int_ge(T->writable, T->fulls);
	struct ls_buffer_stats st;
	ls_buffer_stats(T->b, &st);
	ck_assert_uint_eq(st.inflight_records, 0);
	struct reader_seen *s = open_reader("t1", 0);
	check_reader(s, 0, 2000);
	stop();
	free(s);
}
END_TEST

START_TEST(kafka_leader_down_loses_and_duplicates_nothing)
{
	static const char *const kv[][2] = {
		{ "reconnect.backoff.max.ms", "500" },
		{ "retry.backoff.ms", "50" },
	};
	start(2, kv, 500);
	produce(0, 1000);
	/* Partition leader is broker 2 (start()); take it down mid-stream. */
	ck_assert_int_eq(rd_kafka_mock_broker_set_down(T->mc, 2), 0);
	int fulls = T->fulls;
	struct ls_err err;
	uint64_t i = 1000;
	char buf[64];
	/* Records are in flight; fill the window: nothing can become durable
	 * while the leader is down, so appends must run into FULL. */
	for (;;) {
		size_t len = make_payload(i, buf, sizeof buf);
		int rc = ls_buffer_append(T->b, buf, len, i, &err);
		ck_assert_int_ge(rc, 0);
		if (rc == LS_BUFFER_FULL)
			break;
		i++;
		if ((i & 63) == 0)
			uv_run(&T->loop, UV_RUN_NOWAIT);
	}
	RUN_UNTIL(0, 500);
	size_t durable_while_down = T->ndurable;
	ck_assert_uint_lt(durable_while_down, i);
	RUN_UNTIL(0, 300);
	ck_assert_uint_eq(T->ndurable, durable_while_down);
	ck_assert_int_eq(rd_kafka_mock_broker_set_up(T->mc, 2), 0);
	produce(i, 3000 - i);
	wait_durable(3000);
	ck_assert_int_ge(T->fulls, fulls);
	ck_assert_uint_le(durable_while_down, i);
	struct reader_seen *s = open_reader("t1", 0);
	check_reader(s, 0, 3000);
	/* Nothing beyond the 3000: no duplicates in the log. */
	RUN_UNTIL(0, 300);
	ck_assert_uint_eq(s->n, 3000);
	ck_assert_int_eq(ls_buffer_reader_lag(s->r), 0);
	stop();
	free(s);
}
END_TEST

START_TEST(kafka_pause_holds_records_until_resume)
{
	start(0, NULL, 0);
	produce(0, 500);
	wait_durable(500);
	struct reader_seen *s = open_reader("t1", 0);
	s->pause_at = 100;
	RUN_UNTIL(s->n >= 100, 30000);
	/* Give librdkafka time to fetch the rest; none may be delivered. */
	RUN_UNTIL(0, 500);
	ck_assert_uint_eq(s->n, 100);
	ck_assert_int_eq(ls_buffer_reader_lag(s->r), 400);
	ls_buffer_reader_resume(s->r);
	ck_assert_uint_eq(s->n, 100);
	check_reader(s, 0, 500);
	stop();
	free(s);
}
END_TEST

START_TEST(kafka_reader_below_log_start_gets_gone_error)
{
	start(0, NULL, 0);
	/* 96 KiB incompressible records: 120 of them (11 MiB) overflow the
	 * mock partition's 5 MiB, so the oldest offsets are dropped. */
	T->payload_len = 96 * 1024;
	produce(0, 120);
	wait_durable(120);

	char errstr[256];
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	rd_kafka_conf_set(c, "bootstrap.servers",
			  rd_kafka_mock_cluster_bootstraps(T->mc), errstr,
			  sizeof errstr);
	rd_kafka_t *q = rd_kafka_new(RD_KAFKA_CONSUMER, c, errstr, sizeof errstr);
	ck_assert_ptr_nonnull(q);
	int64_t lo = -1, hi = -1;
	ck_assert_int_eq(rd_kafka_query_watermark_offsets(q, TOPIC, 0, &lo, &hi,
							  10000), 0);
	rd_kafka_destroy(q);
	ck_assert_int_eq(hi, 120);
	ck_assert_int_gt(lo, 0);

	struct reader_seen *gone = open_reader("t1", 3);
	struct reader_seen *ok = open_reader("t2", lo);
	RUN_UNTIL(gone->errors, 30000);
	ck_assert_int_eq(gone->errors, 1);
	char want[LS_ERR_MSG_MAX];
	snprintf(want, sizeof want, "topic " TOPIC " partition 0: offsets 3..%lld "
		 "are gone (log starts at %lld); the target's checkpoint is older "
		 "than the topic's retention", (long long)lo - 1, (long long)lo);
	ck_assert_str_eq(gone->errmsg, want);
	check_reader(ok, lo, (size_t)(120 - lo));
	ck_assert_uint_eq(gone->n, 0);
	stop();
	free(gone);
	free(ok);
}
END_TEST

START_TEST(kafka_close_lets_in_flight_records_finish)
{
	start(0, NULL, 0);
	char buf[64];
	for (uint64_t i = 0; i < 200; i++) {
		size_t len = make_payload(i, buf, sizeof buf);
		ck_assert_int_eq(ls_buffer_append(T->b, buf, len, i, NULL), 0);
	}
	ck_assert_uint_eq(T->ndurable, 0);
	ls_buffer_close(T->b, on_closed, T);
	struct ls_err err;
	ck_assert_int_lt(ls_buffer_append(T->b, buf, 1, 200, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "closing"));
	RUN_UNTIL(T->closed, 30000);
	ck_assert_int_eq(T->closed, 1);
	/* No callback after close (the producer's owner may be gone), yet
	 * every record reached the topic, in order, before the handle went. */
	ck_assert_uint_eq(T->ndurable, 0);
	T->b = new_buffer(0, NULL, 0);
	struct reader_seen *all = open_reader("after", 0);
	check_reader(all, 0, 200);
	T->closed = 0;
	stop();
	free(all);
}
END_TEST

START_TEST(kafka_delivery_timeout_is_one_error_and_stops_appends)
{
	static const char *const kv[][2] = { { "message.timeout.ms", "1500" } };
	start(1, kv, 0);
	produce(0, 10);
	wait_durable(10);
	ck_assert_int_eq(rd_kafka_mock_broker_set_down(T->mc, 2), 0);
	char buf[64];
	for (uint64_t i = 10; i < 60; i++) {
		size_t len = make_payload(i, buf, sizeof buf);
		ck_assert_int_eq(ls_buffer_append(T->b, buf, len, i, NULL), 0);
	}
	RUN_UNTIL(T->perrors > 0, 30000);
	RUN_UNTIL(0, 300);
	ck_assert_int_eq(T->perrors, 1);
	ck_assert_uint_eq(T->ndurable, 10);   /* nothing past the failure */
	struct ls_err err;
	ck_assert_int_lt(ls_buffer_append(T->b, buf, 1, 60, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "delivery failed"));
	ck_assert_int_eq(rd_kafka_mock_broker_set_up(T->mc, 2), 0);
	stop();
}
END_TEST

START_TEST(kafka_bad_property_names_its_key)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct ls_config_buffer cfg = { .type = LS_BUFFER_KAFKA };
	cfg.brokers = (char *)"127.0.0.1:1";
	cfg.topic = (char *)TOPIC;
	cfg.nkafka = 1;
	cfg.kafka[0].key = (char *)"compression.type";
	cfg.kafka[0].value = (char *)"bogus";
	struct ls_buffer *b;
	struct ls_err err;
	ck_assert_int_lt(ls_kbuf_new(&loop, &cfg, NULL, &b, &err), 0);
	ck_assert_ptr_null(b);
	ck_assert_msg(strstr(err.msg, "kafka.compression.type") != NULL, "%s",
		      err.msg);
	cfg.kafka[0].key = (char *)"no.such.property";
	cfg.kafka[0].value = (char *)"1";
	ck_assert_int_lt(ls_kbuf_new(&loop, &cfg, NULL, &b, &err), 0);
	ck_assert_msg(strstr(err.msg, "kafka.no.such.property") != NULL, "%s",
		      err.msg);
	cfg.kafka[0].key = (char *)"acks";
	cfg.kafka[0].value = (char *)"1";
	ck_assert_int_lt(ls_kbuf_new(&loop, &cfg, NULL, &b, &err), 0);
	ck_assert_msg(strstr(err.msg, "kafka.acks") != NULL, "%s", err.msg);
	cfg.kafka[0].key = (char *)"compression.type";
	cfg.kafka[0].value = (char *)"zstd";
	ck_assert_msg(ls_kbuf_new(&loop, &cfg, NULL, &b, &err) == 0, "%s",
		      err.msg);
	/* Nothing connects before a producer or reader is opened. */
	ls_buffer_close(b, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("kafka");
	TCase *tc = tcase_create("mock");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, kafka_bad_property_names_its_key);
	tcase_add_test(tc, kafka_records_arrive_in_order_and_durable_in_order);
	tcase_add_test(tc, kafka_small_window_returns_full_then_writable);
	tcase_add_test(tc, kafka_pause_holds_records_until_resume);
	tcase_add_test(tc, kafka_close_lets_in_flight_records_finish);
	tcase_add_test(tc, kafka_delivery_timeout_is_one_error_and_stops_appends);
	tcase_add_test(tc, kafka_leader_down_loses_and_duplicates_nothing);
	tcase_add_test(tc, kafka_reader_below_log_start_gets_gone_error);
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
