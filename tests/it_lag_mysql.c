/* Lag with a MariaDB source through the real lockstepd (direct buffer, a
 * MariaDB target): GET /lag's source.slot tells what the source server
 * keeps for the pipeline — the binlog bytes after the saved resume point
 * grow while the target is paused, and once the binlog file holding the
 * resume point is rotated away and older than 80% of
 * binlog_expire_logs_seconds (60 s here, so 48 s), the purge warning
 * appears in /lag, /status and the log; after resume it clears. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/helpers/testd.h"
#include "tests/helpers/testsrv.h"
#include "tests/helpers/testutil.h"

#define EXPIRE_S 60

static struct ls_testmy *src, *dst;

static void setup(void)
{
	src = ls_testmy_start("binlog_expire_logs_seconds = 60");
	dst = ls_testmy_start(NULL);
	ls_testmy_exec(src, NULL, "CREATE DATABASE shop");
	ls_testmy_exec(src, "shop",
		"CREATE TABLE items (id INT PRIMARY KEY, pad VARCHAR(2000));"
		"INSERT INTO items SELECT seq, 'x' FROM seq_1_to_100");
	ls_testmy_exec(dst, NULL, "CREATE DATABASE shop");
}

static void teardown(void)
{
	ls_testmy_stop(dst);
	ls_testmy_stop(src);
}

static struct ls_testd *start(void)
{
	struct ls_testd *d = ls_testd_new();
	char conf[4096];
	snprintf(conf, sizeof conf,
		 "[pipeline]\nname = shop\nstate_dir = @DIR@\n\n"
		 "[source]\ntype = mysql\nconninfo = %s\ntables = shop.*\n\n"
		 "[buffer]\ntype = direct\n\n"
		 "[target new]\ntype = mysql\nconninfo = %s\ncreate_tables = true\nbatch_ms = 20\n\n"
		 "[control]\nsocket = @DIR@/control.sock\n\n[log]\nlevel = info\n",
		 ls_testmy_conninfo(src, "shop"), ls_testmy_conninfo(dst, "shop"));
	ls_testd_config(d, conf);
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
	return d;
}

/* GET /lag's source.slot, as its members; known false when absent. */
struct slot {
	bool known;
	long long retained, age, expire;
	bool active;
	char file[128], status[32], warning[512];
};

static struct slot get_slot(struct ls_testd *d)
{
	struct slot s;
	memset(&s, 0, sizeof s);
	json_t *lag = ls_testd_get(d, "/lag");
	json_t *o = json_object_get(json_object_get(lag, "source"), "slot");
	if (json_is_object(o) && json_string_value(json_object_get(o, "oldest_binlog"))) {
		s.known = true;
		s.retained = json_integer_value(json_object_get(o, "retained_wal_bytes"));
		s.age = json_integer_value(json_object_get(o, "oldest_binlog_age_s"));
		s.expire = json_integer_value(json_object_get(o, "binlog_expire_logs_seconds"));
		s.active = json_is_true(json_object_get(o, "oldest_binlog_active"));
		snprintf(s.file, sizeof s.file, "%s",
			 json_string_value(json_object_get(o, "oldest_binlog")));
		const char *st = json_string_value(json_object_get(o, "wal_status"));
		snprintf(s.status, sizeof s.status, "%s", st ? st : "");
		const char *w = json_string_value(json_object_get(o, "warning"));
		snprintf(s.warning, sizeof s.warning, "%s", w ? w : "");
	}
	json_decref(lag);
	return s;
}

struct want {
	struct ls_testd *d;
	long long bytes;               /* retained at least */
	long dst_rows;
	bool inactive, warned, clear;
	struct slot last;
};

/* The warning is there exactly when the rule says so, at every sample. */
static void check_rule(const struct slot *s)
{
	bool due = !s->active && s->expire > 0 && s->age >= 0 && s->age * 5 > s->expire * 4;
	ck_assert_msg(due == (s->warning[0] != '\0'),
		      "file %s age %lld s expire %lld active %d, warning \"%s\"", s->file,
		      s->age, s->expire, s->active, s->warning);
}

static long dst_count(void)
{
	char *v = ls_testmy_query1(dst, "shop", "SELECT COUNT(*) FROM items");
	long n = v ? strtol(v, NULL, 10) : -1;
	free(v);
	return n;
}

static bool reached(void *ctx)
{
	struct want *w = ctx;
	struct slot s = get_slot(w->d);
	if (!s.known)
		return false;
	check_rule(&s);
	w->last = s;
	if (w->dst_rows && dst_count() < w->dst_rows)
		return false;
	if (s.retained < w->bytes || (w->inactive && s.active))
		return false;
	if (w->warned && s.warning[0] == '\0')
		return false;
	if (w->clear && s.warning[0] != '\0')
		return false;
	return true;
}

static void wait_for(struct want *w, int timeout_ms, const char *what)
{
	ck_assert_msg(ls_test_wait_until(reached, w, timeout_ms),
		      "%s: file %s retained %lld age %lld active %d warning \"%s\"; log:\n%s",
		      what, w->last.file, w->last.retained, w->last.age, w->last.active,
		      w->last.warning, ls_testd_log_tail(w->d));
}

static bool status_warns(struct ls_testd *d, const char *text)
{
	json_t *st = ls_testd_get(d, "/status");
	json_t *ws = json_object_get(st, "warnings");
	bool found = false;
	for (size_t i = 0; i < json_array_size(ws); i++) {
		const char *v = json_string_value(json_array_get(ws, i));
		found |= v != NULL && strcmp(v, text) == 0;
	}
	json_decref(st);
	return found;
}

static bool logged(void *ctx)
{
	return strstr(ls_testd_log_tail(ctx), "holding the resume point is") != NULL;
}

START_TEST(lag_mysql_binlog_retained_grows_and_purge_warning)
{
	struct ls_testd *d = start();
	ls_testmy_exec(src, "shop", "INSERT INTO items VALUES (1001, 'flowing')");
	struct want w = { .d = d, .dst_rows = 101 };
	wait_for(&w, 60000, "before pause");
	ck_assert_int_eq(w.last.expire, EXPIRE_S);
	ck_assert_str_eq(w.last.status, "reserved");

	ck_assert_int_eq(ls_testd_post(d, "/pause"), 200);
	/* the resume point stays before this transaction until resume */
	ls_testmy_exec(src, "shop", "INSERT INTO items VALUES (1002, 'paused')");
	memset(&w, 0, sizeof w);
	w.d = d;
	wait_for(&w, 30000, "slot after pause");
	long long r0 = w.last.retained;
	for (int i = 0; i < 5; i++)
		ls_testmy_exec(src, "shop",
			"INSERT INTO items SELECT 2000 + %d * 100 + seq, REPEAT('p', 1500)"
			" FROM seq_1_to_100", i);
	w.bytes = r0 + 5 * 100 * 1500;
	wait_for(&w, 30000, "retained bytes growing with writes");
	ck_assert_int_eq(dst_count(), 101);       /* really paused */
	printf("it_lag_mysql: retained %lld -> %lld bytes in %s\n", r0, w.last.retained,
	       w.last.file);
	fflush(stdout);
	char file[128];
	snprintf(file, sizeof file, "%s", w.last.file);

	/* rotate: the file holding the resume point is no longer written and
	 * the server would purge it once 60 s old */
	ls_testmy_exec(src, "shop", "FLUSH BINARY LOGS");
	w.inactive = true;
	wait_for(&w, 30000, "after FLUSH BINARY LOGS");
	ck_assert_str_eq(w.last.file, file);
	w.warned = true;
	wait_for(&w, 3 * EXPIRE_S * 1000, "purge warning");
	ck_assert_int_gt(w.last.age * 5, EXPIRE_S * 4);
	printf("it_lag_mysql: at %lld s: %s\n", w.last.age, w.last.warning);
	fflush(stdout);
	ck_assert_ptr_nonnull(strstr(w.last.warning, file));
	ck_assert(status_warns(d, w.last.warning));
	/* the pipeline says it in the log at its next once-a-second check */
	ck_assert_msg(ls_test_wait_until(logged, d, 10000), "warning not logged:\n%s",
		      ls_testd_log_tail(d));

	ck_assert_int_eq(ls_testd_post(d, "/resume"), 200);
	memset(&w, 0, sizeof w);
	w.d = d;
	w.dst_rows = 602;
	w.clear = true;
	wait_for(&w, 60000, "after resume");
	ck_assert_str_ne(w.last.file, file);
	ck_assert_int_eq(ls_testd_stop(d, 30000), 0);
	ls_testd_free(d);
}
END_TEST

int main(void)
{
	const struct ls_testutil_case cases[] = {
		{ "binlog", lag_mysql_binlog_retained_grows_and_purge_warning },
	};
	return ls_testutil_run_cases("lag_mysql", cases, sizeof cases / sizeof cases[0], setup,
				     teardown, 300);
}
