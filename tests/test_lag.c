/* Unit tests for lib/lag: the bounded commit-time ring, the source clock and
 * the lag arithmetic (table-driven), and the report's JSON, metrics and
 * summary. */
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lag.h"

#define MS 1000LL          /* microseconds */
#define SEC 1000000LL
#define NS_PER_S 1000000000ULL

/* ---- ring ------------------------------------------------------------------ */

START_TEST(lag_ring_finds_oldest_unapplied_commit)
{
	/* commits 1 s apart never share a bucket: answers are exact */
	struct ls_lag_ring *r = ls_lag_ring_new(16, 50 * MS);
	ck_assert_ptr_nonnull(r);
	static const struct { uint64_t seq; int64_t t; } commits[] = {
		{ 100, 10 * SEC }, { 200, 11 * SEC }, { 300, 12 * SEC }, { 400, 13 * SEC },
	};
	for (size_t i = 0; i < 4; i++)
		ls_lag_ring_add(r, commits[i].seq, commits[i].t);
	static const struct { uint64_t applied; bool found; int64_t t; } cases[] = {
		{ 0, true, 10 * SEC },
		{ 99, true, 10 * SEC },
		{ 100, true, 11 * SEC },
		{ 150, true, 11 * SEC },
		{ 399, true, 13 * SEC },
		{ 400, false, 0 },
		{ 5000, false, 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int64_t t = -1;
		bool found = ls_lag_ring_oldest_after(r, cases[i].applied, &t);
		ck_assert_msg(found == cases[i].found, "case %zu", i);
		if (found)
			ck_assert_int_eq(t, cases[i].t);
	}
	ck_assert_uint_eq(ls_lag_ring_len(r), 4);
	ck_assert_uint_eq(ls_lag_ring_last_seq(r), 400);
	ls_lag_ring_free(r);
}
END_TEST

START_TEST(lag_ring_merges_close_commits_and_overstates_at_most_one_bucket)
{
	struct ls_lag_ring *r = ls_lag_ring_new(16, 100 * MS);
	/* 10 commits 20 ms apart: two buckets of 5 (0..80 ms, 100..180 ms) */
	for (int i = 0; i < 10; i++)
		ls_lag_ring_add(r, (uint64_t)(i + 1) * 10, i * 20 * MS);
	ck_assert_uint_eq(ls_lag_ring_len(r), 2);
	static const struct { uint64_t applied; int64_t t; } cases[] = {
		{ 0, 0 },               /* exact: first commit */
		{ 30, 0 },              /* inside bucket 1: its earliest time */
		{ 50, 100 * MS },       /* between buckets: exact */
		{ 70, 100 * MS },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int64_t t;
		ck_assert(ls_lag_ring_oldest_after(r, cases[i].applied, &t));
		ck_assert_int_eq(t, cases[i].t);
		/* never younger than the true oldest unapplied commit, and at most
		 * one granularity older */
		int64_t truth = (int64_t)(cases[i].applied / 10) * 20 * MS;
		ck_assert_int_le(t, truth);
		ck_assert_int_lt(truth - t, ls_lag_ring_granularity(r));
	}
	ls_lag_ring_free(r);
}
END_TEST

START_TEST(lag_ring_ignores_repeated_and_older_seqs)
{
	struct ls_lag_ring *r = ls_lag_ring_new(8, 1);
	ls_lag_ring_add(r, 10, 1 * SEC);
	ls_lag_ring_add(r, 20, 2 * SEC);
	ls_lag_ring_add(r, 20, 3 * SEC);   /* resent after a reconnect */
	ls_lag_ring_add(r, 15, 4 * SEC);   /* a second reader's copy */
	ck_assert_uint_eq(ls_lag_ring_len(r), 2);
	int64_t t;
	ck_assert(ls_lag_ring_oldest_after(r, 10, &t));
	ck_assert_int_eq(t, 2 * SEC);
	ls_lag_ring_free(r);
}
END_TEST

START_TEST(lag_ring_release_forgets_applied)
{
	struct ls_lag_ring *r = ls_lag_ring_new(8, 1);
	for (int i = 1; i <= 6; i++)
		ls_lag_ring_add(r, (uint64_t)i, i * SEC);
	static const struct { uint64_t release; size_t len; uint64_t oldest_seq_time; } steps[] = {
		{ 0, 6, 1 }, { 2, 4, 3 }, { 2, 4, 3 }, { 5, 1, 6 }, { 6, 0, 0 },
	};
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		ls_lag_ring_release(r, steps[i].release);
		ck_assert_uint_eq(ls_lag_ring_len(r), steps[i].len);
		int64_t t;
		bool found = ls_lag_ring_oldest_after(r, 0, &t);
		ck_assert(found == (steps[i].len > 0));
		if (found)
			ck_assert_int_eq(t, (int64_t)steps[i].oldest_seq_time * SEC);
	}
	/* the ring wraps around and keeps working after release */
	for (int i = 7; i <= 20; i++)
		ls_lag_ring_add(r, (uint64_t)i, i * SEC);
	int64_t t;
	ck_assert(ls_lag_ring_oldest_after(r, 12, &t));
	ck_assert_int_le(t, 13 * SEC);
	ls_lag_ring_free(r);
}
END_TEST

/* 300,000 commits at 1 kHz into 256 buckets: memory stays bounded and the
 * answer is never younger than the truth, and older by at most the current
 * granularity (about 2 x backlog / capacity). */
START_TEST(lag_ring_stays_bounded_under_high_rates)
{
	const size_t cap = 256;
	struct ls_lag_ring *r = ls_lag_ring_new(cap, 10 * MS);
	const int n = 300000;
	size_t max_len = 0;
	for (int i = 1; i <= n; i++) {
		ls_lag_ring_add(r, (uint64_t)i, (int64_t)i * MS);
		if (ls_lag_ring_len(r) > max_len)
			max_len = ls_lag_ring_len(r);
	}
	ck_assert_uint_le(max_len, cap);
	int64_t gran = ls_lag_ring_granularity(r);
	int64_t backlog = (int64_t)n * MS;
	ck_assert_int_le(gran, 4 * backlog / (int64_t)cap);
	unsigned seed = 7;
	for (int k = 0; k < 2000; k++) {
		uint64_t applied = (uint64_t)(rand_r(&seed) % n);
		int64_t t;
		ck_assert(ls_lag_ring_oldest_after(r, applied, &t));
		int64_t truth = (int64_t)(applied + 1) * MS;
		ck_assert_int_le(t, truth);
		ck_assert_int_le(truth - t, gran);
	}
	/* draining resets the granularity */
	ls_lag_ring_release(r, (uint64_t)n);
	ck_assert_uint_eq(ls_lag_ring_len(r), 0);
	ck_assert_int_eq(ls_lag_ring_granularity(r), 10 * MS);
	ls_lag_ring_free(r);
}
END_TEST

/* ---- clock and arithmetic ------------------------------------------------------- */

START_TEST(lag_clock_keeps_latest_sample_and_extrapolates)
{
	struct ls_lag_clock c = { 0 };
	ls_lag_clock_update(&c, 1000 * SEC, 5 * NS_PER_S);
	ls_lag_clock_update(&c, 900 * SEC, 4 * NS_PER_S);   /* older sample: ignored */
	ck_assert(c.known);
	ck_assert_int_eq(c.source_us, 1000 * SEC);
	static const struct { uint64_t now_ns; int64_t want; } cases[] = {
		{ 5 * NS_PER_S, 1000 * SEC },
		{ 5 * NS_PER_S + 1500000000ULL, 1000 * SEC + 1500 * MS },
		{ 3 * NS_PER_S, 1000 * SEC },    /* never runs backwards */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		ck_assert_int_eq(ls_lag_clock_now(&c, cases[i].now_ns), cases[i].want);
}
END_TEST

START_TEST(lag_bytes_and_seconds_table)
{
	static const struct { uint64_t a, b, want; } bytes[] = {
		{ 100, 40, 60 }, { 40, 100, 0 }, { 7, 7, 0 }, { UINT64_MAX, 0, UINT64_MAX },
	};
	for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++)
		ck_assert_uint_eq(ls_lag_bytes(bytes[i].a, bytes[i].b), bytes[i].want);

	struct ls_lag_ring *r = ls_lag_ring_new(16, 1);
	ls_lag_ring_add(r, 100, 50 * SEC);
	ls_lag_ring_add(r, 200, 52 * SEC);
	struct ls_lag_clock known = { .known = true, .source_us = 53 * SEC, .taken_ns = 10 * NS_PER_S };
	struct ls_lag_clock unknown = { 0 };
	static const struct {
		uint64_t applied;
		bool clock_known;
		uint64_t now_ns;
		double want;
	} cases[] = {
		{ 0, true, 10 * NS_PER_S, 3.0 },              /* 53 - 50 */
		{ 100, true, 10 * NS_PER_S, 1.0 },            /* 53 - 52 */
		{ 100, true, 12 * NS_PER_S, 3.0 },            /* source clock moved on 2 s */
		{ 200, true, 12 * NS_PER_S, 0.0 },            /* nothing pending */
		{ 200, false, 12 * NS_PER_S, 0.0 },           /* nothing pending, no clock */
		{ 100, false, 12 * NS_PER_S, -1.0 },          /* pending, no clock */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		double s = ls_lag_seconds(r, cases[i].applied,
					  cases[i].clock_known ? &known : &unknown, cases[i].now_ns);
		ck_assert_msg(s == cases[i].want, "case %zu: %f != %f", i, s, cases[i].want);
	}
	/* a commit stamped after the clock sample (clock skew inside the source is
	 * impossible, but rounding is not) reads 0, not negative */
	struct ls_lag_clock early = { .known = true, .source_us = 51 * SEC, .taken_ns = 0 };
	ck_assert(ls_lag_seconds(r, 100, &early, 0) == 0.0);
	ls_lag_ring_free(r);
}
END_TEST

static void set_pos(struct ls_lag_pos *p, uint64_t seq)
{
	struct ls_pos pos = { .seq = seq };
	snprintf(pos.text, sizeof pos.text, "0/%llX", (unsigned long long)seq);
	ls_lag_pos_set(p, &pos);
}

START_TEST(lag_compute_table)
{
	struct ls_lag_ring *ring = ls_lag_ring_new(16, 1);
	ls_lag_ring_add(ring, 1000, 100 * SEC);
	ls_lag_ring_add(ring, 2000, 101 * SEC);
	static const struct {
		uint64_t source, read, applied;  /* 0 = unknown */
		uint64_t want_source, want_src_lag, want_apply_bytes;
		double want_seconds;
	} cases[] = {
		/* idle: everything applied */
		{ 3000, 3000, 3000, 3000, 0, 0, 0.0 },
		/* target behind both commits */
		{ 5000, 4000, 500, 5000, 1000, 4500, 5.0 },
		/* target between the commits */
		{ 5000, 4000, 1500, 5000, 1000, 3500, 4.0 },
		/* stale sample below what was read: source raised to read; every
		 * commit read is applied, so the target is as far as the read */
		{ 1000, 2500, 2000, 2500, 0, 0, 0.0 },
		/* no sample at all: read stands in */
		{ 0, 2500, 2000, 2500, 0, 0, 0.0 },
		/* caught up with what was read, the source wrote more since */
		{ 2900, 2500, 2000, 2900, 400, 400, 0.0 },
		/* applied the first commit only */
		{ 2900, 2500, 1000, 2900, 400, 1900, 4.0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ls_lag_report *r = ls_lag_report_new(1, 0);
		if (cases[i].source)
			set_pos(&r->source, cases[i].source);
		set_pos(&r->read, cases[i].read);
		set_pos(&r->targets[0].applied, cases[i].applied);
		ls_lag_clock_update(&r->clock, 105 * SEC, 1 * NS_PER_S);
		ls_lag_compute(r, ring, 1 * NS_PER_S);
		ck_assert_uint_eq(r->source.seq, cases[i].want_source);
		ck_assert(r->source_lag_known);
		ck_assert_uint_eq(r->source_lag_bytes, cases[i].want_src_lag);
		ck_assert(r->targets[0].bytes_known);
		ck_assert_uint_eq(r->targets[0].apply_lag_bytes, cases[i].want_apply_bytes);
		ck_assert_msg(r->targets[0].apply_lag_seconds == cases[i].want_seconds,
			      "case %zu: %f", i, r->targets[0].apply_lag_seconds);
		ck_assert(r->max_apply_lag_seconds == cases[i].want_seconds);
		ck_assert_int_eq(r->source_now_us, 105 * SEC);
		ls_lag_report_free(r);
	}
	ls_lag_ring_free(ring);
}
END_TEST

START_TEST(lag_compute_takes_the_worst_target)
{
	struct ls_lag_ring *ring = ls_lag_ring_new(16, 1);
	ls_lag_ring_add(ring, 10, 1 * SEC);
	ls_lag_ring_add(ring, 20, 4 * SEC);
	struct ls_lag_report *r = ls_lag_report_new(3, 0);
	set_pos(&r->source, 30);
	set_pos(&r->read, 20);
	set_pos(&r->targets[0].applied, 20);
	set_pos(&r->targets[1].applied, 5);
	set_pos(&r->targets[2].applied, 10);
	ls_lag_clock_update(&r->clock, 6 * SEC, 0);
	ls_lag_compute(r, ring, 0);
	ck_assert(r->targets[0].apply_lag_seconds == 0.0);
	ck_assert(r->targets[1].apply_lag_seconds == 5.0);
	ck_assert(r->targets[2].apply_lag_seconds == 2.0);
	ck_assert_int_eq(r->targets[1].oldest_unapplied_us, 1 * SEC);
	ck_assert_int_eq(r->targets[0].oldest_unapplied_us, 0);
	ck_assert(r->max_apply_lag_seconds == 5.0);
	/* unknown applied position: bytes unknown */
	r->targets[2].applied.known = false;
	ls_lag_compute(r, ring, 0);
	ck_assert(!r->targets[2].bytes_known);
	ls_lag_report_free(r);
	ls_lag_ring_free(ring);
}
END_TEST

START_TEST(lag_slot_check_binlog_age_against_expiry)
{
	static const struct {
		const char *status;
		int64_t age, expire;
		bool active, warn;
	} cases[] = {
		{ "reserved", 48, 60, false, false },        /* exactly 80% */
		{ "reserved", 49, 60, false, true },
		{ "reserved", 500, 60, true, false },        /* still written: never purged */
		{ "reserved", 500, 0, false, false },        /* never expires */
		{ "reserved", -1, 60, false, false },        /* age unknown */
		{ "lost", 0, 60, false, true },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ls_lag_slot s = { .known = true, .safe_wal_size = -1, .max_keep_size = -1 };
		snprintf(s.name, sizeof s.name, "mysql_source.state");
		snprintf(s.wal_status, sizeof s.wal_status, "%s", cases[i].status);
		snprintf(s.oldest_file, sizeof s.oldest_file, "binlog.000007");
		s.oldest_age_s = cases[i].age;
		s.expire_s = cases[i].expire;
		s.oldest_active = cases[i].active;
		ck_assert_msg(ls_lag_slot_check(&s) == cases[i].warn, "case %zu", i);
		if (s.warning)
			ck_assert_ptr_nonnull(strstr(s.warning_text, "binlog.000007"));
		else
			ck_assert_str_eq(s.warning_text, "");
	}
}
END_TEST

START_TEST(lag_slot_check_table)
{
	const int64_t mb = 1 << 20;
	static const struct {
		bool known;
		const char *status;
		int64_t safe, max;
		bool warn;
	} cases[] = {
		{ false, "lost", 0, 0, false },
		{ true, "reserved", -1, -1, false },        /* unlimited */
		{ true, "reserved", 900, 1000, false },
		{ true, "extended", 200, 1000, false },      /* exactly 20% */
		{ true, "extended", 199, 1000, true },
		{ true, "unreserved", 0, 1000, true },
		{ true, "lost", -1, 1000, true },
		{ true, "reserved", 0, -1, false },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ls_lag_slot s = { .known = cases[i].known };
		snprintf(s.name, sizeof s.name, "lockstep_shop");
		snprintf(s.wal_status, sizeof s.wal_status, "%s", cases[i].status);
		s.safe_wal_size = cases[i].safe < 0 ? -1 : cases[i].safe * mb;
		s.max_keep_size = cases[i].max < 0 ? -1 : cases[i].max * mb;
		ck_assert_msg(ls_lag_slot_check(&s) == cases[i].warn, "case %zu", i);
		ck_assert(s.warning == cases[i].warn);
		if (s.warning)
			ck_assert_ptr_nonnull(strstr(s.warning_text, "lockstep_shop"));
		else
			ck_assert_str_eq(s.warning_text, "");
	}
}
END_TEST

/* ---- report outputs ----------------------------------------------------------------------- */

static struct ls_lag_report *sample_report(struct ls_lag_ring *ring)
{
	struct ls_lag_report *r = ls_lag_report_new(2, 1);
	snprintf(r->pipeline, sizeof r->pipeline, "shop");
	snprintf(r->state, sizeof r->state, "streaming");
	snprintf(r->targets[0].name, sizeof r->targets[0].name, "new");
	snprintf(r->targets[1].name, sizeof r->targets[1].name, "we\"ird");
	snprintf(r->tables[0].name, sizeof r->tables[0].name, "public.items");
	snprintf(r->tables[0].state, sizeof r->tables[0].state, "done");
	r->tables[0].rows = 2000;
	set_pos(&r->source, 5000);
	set_pos(&r->read, 4000);
	set_pos(&r->targets[0].applied, 4000);
	r->targets[1].applied.known = false;
	r->targets[0].buffer_lag_records = 3;
	r->targets[1].buffer_lag_records = -1;
	r->targets[0].changes_applied = 42;
	r->slot.known = true;
	snprintf(r->slot.name, sizeof r->slot.name, "lockstep_shop");
	snprintf(r->slot.wal_status, sizeof r->slot.wal_status, "unreserved");
	r->slot.retained_bytes = 123456;
	r->slot.safe_wal_size = -1;
	r->slot.max_keep_size = -1;
	ls_lag_slot_check(&r->slot);
	ls_lag_clock_update(&r->clock, 10 * SEC, 0);
	r->clock_from = "heartbeat";
	ls_lag_compute(r, ring, 0);
	return r;
}

START_TEST(lag_report_json_has_every_number)
{
	struct ls_lag_ring *ring = ls_lag_ring_new(16, 1);
	ls_lag_ring_add(ring, 4500, 8 * SEC);
	struct ls_lag_report *r = sample_report(ring);
	struct ls_json *j = ls_json_new();
	ls_lag_report_json(r, j);
	ck_assert(ls_json_complete(j));
	json_error_t e;
	json_t *v = json_loads(ls_json_data(j, NULL), 0, &e);
	ck_assert_msg(v != NULL, "%s", e.text);
	json_t *src = json_object_get(v, "source");
	ck_assert_int_eq(json_integer_value(json_object_get(src, "source_lag_bytes")), 1000);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(src, "current"),
							   "position")), "0/1388");
	json_t *t0 = json_array_get(json_object_get(v, "targets"), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(t0, "apply_lag_bytes")), 1000);
	ck_assert(json_number_value(json_object_get(t0, "apply_lag_seconds")) == 2.0);
	ck_assert_int_eq(json_integer_value(json_object_get(t0, "buffer_lag_records")), 3);
	json_t *t1 = json_array_get(json_object_get(v, "targets"), 1);
	ck_assert(json_is_null(json_object_get(t1, "apply_lag_bytes")));
	ck_assert(json_is_null(json_object_get(t1, "buffer_lag_records")));
	ck_assert(json_is_string(json_object_get(json_object_get(src, "slot"), "warning")));
	json_decref(v);
	ls_json_free(j);
	ls_lag_report_free(r);
	ls_lag_ring_free(ring);
}
END_TEST

/* Every non-comment line reads name{labels} value. */
START_TEST(lag_metrics_are_prometheus_lines)
{
	struct ls_lag_ring *ring = ls_lag_ring_new(16, 1);
	struct ls_lag_report *r = sample_report(ring);
	struct ls_metrics *m = ls_metrics_new();
	ls_lag_report_metrics(r, m);
	const char *text = ls_metrics_data(m, NULL);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text, "lockstep_apply_lag_bytes{pipeline=\"shop\",target=\"new\"} 1000\n"));
	ck_assert_ptr_nonnull(strstr(text, "target=\"we\\\"ird\""));
	ck_assert_ptr_nonnull(strstr(text, "lockstep_snapshot_rows_copied{pipeline=\"shop\",table=\"public.items\"} 2000\n"));
	ck_assert_ptr_nonnull(strstr(text, "lockstep_slot_retained_wal_bytes{pipeline=\"shop\",slot=\"lockstep_shop\"} 123456\n"));
	ck_assert_ptr_nonnull(strstr(text, "lockstep_position{pipeline=\"shop\",stage=\"applied\",target=\"new\"} 4000\n"));
	ck_assert_ptr_null(strstr(text, "NaN"));
	char *copy = strdup(text);
	int samples = 0;
	for (char *save, *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#')
			continue;
		char name[128], value[64];
		ck_assert_msg(sscanf(line, "%127[a-zA-Z0-9_:]%*[^ ] %63s", name, value) == 2 ||
			      sscanf(line, "%127[a-zA-Z0-9_:] %63s", name, value) == 2, "%s", line);
		ck_assert_msg(strncmp(name, "lockstep_", 9) == 0, "%s", line);
		char *end;
		strtod(value, &end);
		ck_assert_msg(*end == '\0', "value of %s", line);
		samples++;
	}
	ck_assert_int_gt(samples, 15);
	free(copy);
	ls_metrics_free(m);
	ls_lag_report_free(r);
	ls_lag_ring_free(ring);
}
END_TEST

START_TEST(lag_summary_is_one_line)
{
	struct ls_lag_ring *ring = ls_lag_ring_new(16, 1);
	ls_lag_ring_add(ring, 4500, 8 * SEC);
	struct ls_lag_report *r = sample_report(ring);
	r->paused = true;
	r->drift_known = true;
	r->drift_rows = 3;
	char buf[512];
	ls_lag_summary(r, "drift clean", buf, sizeof buf);
	ck_assert_ptr_null(strchr(buf, '\n'));
	ck_assert_msg(strstr(buf, "streaming (paused); apply lag 2.0 s") == buf, "%s", buf);
	ck_assert_msg(strstr(buf, "new 2.0 s") != NULL, "%s", buf);
	ck_assert_msg(strstr(buf, "source lag 1000 B") != NULL, "%s", buf);
	ck_assert_msg(strstr(buf, "; drift 3 row(s)") != NULL, "%s", buf);
	ck_assert_msg(strstr(buf, "WARNING replication slot") != NULL, "%s", buf);
	ck_assert_msg(strstr(buf, "; drift clean") != NULL, "%s", buf);
	char tiny[16];
	ls_lag_summary(r, NULL, tiny, sizeof tiny);
	ck_assert_uint_eq(strlen(tiny), sizeof tiny - 1);
	ls_lag_report_free(r);
	ls_lag_ring_free(ring);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("lag");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, lag_ring_finds_oldest_unapplied_commit);
	tcase_add_test(tc, lag_ring_merges_close_commits_and_overstates_at_most_one_bucket);
	tcase_add_test(tc, lag_ring_ignores_repeated_and_older_seqs);
	tcase_add_test(tc, lag_ring_release_forgets_applied);
	tcase_add_test(tc, lag_ring_stays_bounded_under_high_rates);
	tcase_add_test(tc, lag_clock_keeps_latest_sample_and_extrapolates);
	tcase_add_test(tc, lag_bytes_and_seconds_table);
	tcase_add_test(tc, lag_compute_table);
	tcase_add_test(tc, lag_compute_takes_the_worst_target);
	tcase_add_test(tc, lag_slot_check_table);
	tcase_add_test(tc, lag_slot_check_binlog_age_against_expiry);
	tcase_add_test(tc, lag_report_json_has_every_number);
	tcase_add_test(tc, lag_metrics_are_prometheus_lines);
	tcase_add_test(tc, lag_summary_is_one_line);
	suite_add_tcase(s, tc);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
