/* Unit tests for lib/log: ls_redact over many forms of secrets, journald
 * detection, level filtering, file reopen after rotation, one line per
 * message under concurrent writers. */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static const struct { const char *in; const char *out; } redactions[] = {
	{ "", "" },
	{ "nothing secret here", "nothing secret here" },
	{ "host=db password=hunter2 dbname=x",
	  "host=db password=******** dbname=x" },
	{ "password=hunter2", "password=********" },
	{ "host=db password = hunter2 port=5432",
	  "host=db password = ******** port=5432" },
	{ "host=db password= hunter2 port=5432",
	  "host=db password= ******** port=5432" },
	{ "host=db PASSWORD=hunter2", "host=db PASSWORD=********" },
	{ "password='hun ter2' host=x", "password=******** host=x" },
	{ "password='it\\'s hunter2' host=x", "password=******** host=x" },
	{ "password='back\\\\slash' host=x", "password=******** host=x" },
	{ "password='unterminated hunter2", "password=********" },
	{ "password=\"dq hunter2\" user=u", "password=******** user=u" },
	{ "host=h user=u passwd=hunter2 port=3306",
	  "host=h user=u passwd=******** port=3306" },
	{ "sasl.password=hunter2 sasl.username=u",
	  "sasl.password=******** sasl.username=u" },
	{ "kafka.ssl.key.password=hunter2", "kafka.ssl.key.password=********" },
	{ "ssl.key.password = hunter2", "ssl.key.password = ********" },
	{ "client.secret=hunter2", "client.secret=********" },
	{ "postgresql://user:hunter2@host:5432/db",
	  "postgresql://user:********@host:5432/db" },
	{ "postgres://user:hunter2@host/db?sslmode=require",
	  "postgres://user:********@host/db?sslmode=require" },
	{ "connect to postgresql://u:p@ss/w0rd@host/db failed",
	  "connect to postgresql://u:********@host/db failed" },
	{ "mysql://root:hunter2@127.0.0.1:3306/shop",
	  "mysql://root:********@127.0.0.1:3306/shop" },
	{ "jdbc:postgresql://u:hunter2@h/db", "jdbc:postgresql://u:********@h/db" },
	{ "postgresql://user@host/db", "postgresql://user@host/db" },
	{ "postgresql://host:5432/db", "postgresql://host:5432/db" },
	{ "postgresql:///db?host=/tmp&password=hunter2&sslmode=disable",
	  "postgresql:///db?host=/tmp&password=********&sslmode=disable" },
	{ "a=1 password=hunter2\tb=2", "a=1 password=********\tb=2" },
	{ "password=", "password=" },
	{ "mypassword_hint=abc", "mypassword_hint=abc" },
	{ "password: hunter2 stays (not key=value)",
	  "password: hunter2 stays (not key=value)" },
	{ "x=1,password=hunter2", "x=1,password=********" },
	{ "'host=x password=hunter2'", "'host=x password=********" },
	{ "two: password=a passwd=b", "two: password=******** passwd=********" },
};

START_TEST(log_redacts_secrets)
{
	char out[256];
	size_t n = ls_redact(redactions[_i].in, out, sizeof out);
	ck_assert_str_eq(out, redactions[_i].out);
	ck_assert_uint_eq(n, strlen(redactions[_i].out));
}
END_TEST

START_TEST(log_redact_truncates_safely)
{
	char out[12];
	size_t n = ls_redact("password=hunter2", out, sizeof out);
	ck_assert_uint_eq(n, 11);
	ck_assert_str_eq(out, "password=**");
	char one[1];
	ck_assert_uint_eq(ls_redact("abc", one, 1), 0);
	ck_assert_str_eq(one, "");
	ck_assert_uint_eq(ls_redact("abc", NULL, 0), 0);
}
END_TEST

static char tmpdir[64];
static char logpath[128];

/* Fresh temp dir and default logging state, so tests also pass when check
 * runs them in one process (CK_FORK=no). */
static void make_tmp(void)
{
	strcpy(tmpdir, "/tmp/test_log.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(logpath, sizeof logpath, "%s/log", tmpdir);
	ck_assert_int_eq(unsetenv("JOURNAL_STREAM"), 0);
	ck_assert_int_eq(ls_log_open_file(NULL), 0);
	ls_log_init("t");
	ls_log_set_level(LS_LOG_INFO);
}

static void remove_tmp(void)
{
	char rotated[160];
	snprintf(rotated, sizeof rotated, "%s.1", logpath);
	unlink(rotated);
	unlink(logpath);
	ck_assert_int_eq(rmdir(tmpdir), 0);
}

/* Returns the whole file, malloc'd. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	size_t cap = 1 << 20, n;
	char *buf = malloc(cap);
	ck_assert_ptr_nonnull(buf);
	n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Points stderr at logpath and returns its "dev:ino". */
static void stderr_to_file(char *js, size_t size)
{
	int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
	struct stat st;
	ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
	snprintf(js, size, "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
}

START_TEST(log_uses_journal_prefix_when_stream_matches)
{
	make_tmp();
	char js[64];
	stderr_to_file(js, sizeof js);
	ck_assert_int_eq(setenv("JOURNAL_STREAM", js, 1), 0);
	ls_log_init("lockstepd");
	ls_warn("slot %s lost, conninfo host=a password=%s", "s1", "hunter2");
	ls_error("second");
	ls_debug("filtered out at the default level");
	char *got = slurp(logpath);
	ck_assert_str_eq(got, "<4>slot s1 lost, conninfo host=a "
			 "password=********\n<3>second\n");
	free(got);
	remove_tmp();
}
END_TEST

START_TEST(log_plain_lines_when_stream_differs)
{
	make_tmp();
	char js[64];
	stderr_to_file(js, sizeof js);
	ck_assert_int_eq(setenv("JOURNAL_STREAM", "1:2", 1), 0);
	ls_log_init("/usr/bin/lockstepd");
	ls_notice("hello\nworld");
	char *got = slurp(logpath);
	char want[128];
	snprintf(want, sizeof want, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:"
		 "[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z lockstepd\\[%ld\\]: notice: "
		 "hello world\n$", (long)getpid());
	regex_t re;
	ck_assert_int_eq(regcomp(&re, want, REG_EXTENDED | REG_NOSUB), 0);
	ck_assert_msg(regexec(&re, got, 0, NULL, 0) == 0, "got [%s]", got);
	regfree(&re);
	free(got);
	remove_tmp();
}
END_TEST

START_TEST(log_filters_by_level)
{
	make_tmp();
	ck_assert_int_eq(unsetenv("JOURNAL_STREAM"), 0);
	ls_log_init("t");
	ck_assert_int_eq(ls_log_get_level(), LS_LOG_INFO);
	ck_assert_int_eq(ls_log_open_file(logpath), 0);
	ck_assert_int_eq(ls_log_set_level_name("verbose"), -1);
	ck_assert_int_eq(ls_log_get_level(), LS_LOG_INFO);
	ck_assert_int_eq(ls_log_set_level_name("notice"), 0);
	ck_assert_int_eq(ls_log_get_level(), LS_LOG_NOTICE);
	ls_debug("d-line");
	ls_info("i-line");
	ls_notice("n-line");
	ls_warn("w-line");
	ls_error("e-line");
	char *got = slurp(logpath);
	ck_assert_int_eq(count_lines(got), 3);
	ck_assert_ptr_null(strstr(got, "d-line"));
	ck_assert_ptr_null(strstr(got, "i-line"));
	ck_assert_ptr_nonnull(strstr(got, ": notice: n-line\n"));
	ck_assert_ptr_nonnull(strstr(got, ": warning: w-line\n"));
	ck_assert_ptr_nonnull(strstr(got, ": error: e-line\n"));
	free(got);
	ck_assert_int_eq(ls_log_open_file(NULL), 0);
	remove_tmp();
}
END_TEST

START_TEST(log_level_names_round_trip)
{
	static const char *const names[] = { "error", "warning", "notice",
					     "info", "debug" };
	for (size_t i = 0; i < 5; i++) {
		enum ls_log_level l;
		ck_assert_int_eq(ls_log_level_from_name(names[i], &l), 0);
		ck_assert_int_eq(l, LS_LOG_ERROR + (int)i);
		ck_assert_str_eq(ls_log_level_name(l), names[i]);
	}
	enum ls_log_level l = LS_LOG_INFO;
	ck_assert_int_eq(ls_log_level_from_name("INFO", &l), -1);
	ck_assert_str_eq(ls_log_level_name((enum ls_log_level)9), "unknown");
}
END_TEST

START_TEST(log_reopen_follows_rotation)
{
	make_tmp();
	ck_assert_int_eq(unsetenv("JOURNAL_STREAM"), 0);
	ck_assert_int_eq(ls_log_reopen(), 0);   /* on stderr: nothing to do */
	ck_assert_int_eq(ls_log_open_file(logpath), 0);
	ls_warn("before rotation");
	char rotated[160];
	snprintf(rotated, sizeof rotated, "%s.1", logpath);
	ck_assert_int_eq(rename(logpath, rotated), 0);
	ls_warn("still old file");
	ck_assert_int_eq(ls_log_reopen(), 0);
	ls_warn("after rotation");
	char *old = slurp(rotated), *cur = slurp(logpath);
	ck_assert_int_eq(count_lines(old), 2);
	ck_assert_ptr_nonnull(strstr(old, "before rotation"));
	ck_assert_ptr_nonnull(strstr(old, "still old file"));
	ck_assert_int_eq(count_lines(cur), 1);
	ck_assert_ptr_nonnull(strstr(cur, "after rotation"));
	free(old);
	free(cur);
	ck_assert_int_eq(ls_log_open_file("/nonexistent/dir/log"), -1);
	ls_warn("kept");   /* the failed open left the current file in use */
	cur = slurp(logpath);
	ck_assert_int_eq(count_lines(cur), 2);
	free(cur);
	remove_tmp();
}
END_TEST

START_TEST(log_cuts_long_messages_to_one_line)
{
	make_tmp();
	ck_assert_int_eq(ls_log_open_file(logpath), 0);
	size_t n = 3 * LS_LOG_LINE_MAX;
	char *big = malloc(n + 1);
	ck_assert_ptr_nonnull(big);
	memset(big, 'x', n);
	big[n] = '\0';
	ls_warn("%s", big);
	char *got = slurp(logpath);
	ck_assert_int_eq(count_lines(got), 1);
	ck_assert_ptr_nonnull(strstr(got, "xxx...\n"));
	ck_assert_uint_lt(strlen(got), LS_LOG_LINE_MAX + 128);
	free(got);
	free(big);
	remove_tmp();
}
END_TEST

#define NTHREADS 4
#define NLINES 500

static void *writer(void *arg)
{
	long id = (long)arg;
	char pad[200];
	memset(pad, 'a' + (int)id, sizeof pad - 1);
	pad[sizeof pad - 1] = '\0';
	for (int i = 0; i < NLINES; i++)
		ls_info("t%ld n%d %s end", id, i, pad);
	return NULL;
}

START_TEST(log_lines_stay_whole_across_threads)
{
	make_tmp();
	ck_assert_int_eq(ls_log_open_file(logpath), 0);
	pthread_t th[NTHREADS];
	for (long i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, writer,
						(void *)i), 0);
	for (int i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
	char *got = slurp(logpath);
	ck_assert_int_eq(count_lines(got), NTHREADS * NLINES);
	int seen[NTHREADS] = { 0 };
	for (char *line = strtok(got, "\n"); line; line = strtok(NULL, "\n")) {
		long id;
		int no, len;
		char *msg = strstr(line, ": info: ");
		ck_assert_ptr_nonnull(msg);
		ck_assert_int_eq(sscanf(msg, ": info: t%ld n%d %*s end%n", &id,
					&no, &len), 2);
		ck_assert_int_eq(msg[len], '\0');
		ck_assert_int_lt(id, NTHREADS);
		ck_assert_int_eq(no, seen[id]);   /* in order per thread */
		seen[id]++;
	}
	for (int i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(seen[i], NLINES);
	free(got);
	remove_tmp();
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("core");
	tcase_add_loop_test(tc, log_redacts_secrets, 0,
			    sizeof redactions / sizeof *redactions);
	tcase_add_test(tc, log_redact_truncates_safely);
	tcase_add_test(tc, log_uses_journal_prefix_when_stream_matches);
	tcase_add_test(tc, log_plain_lines_when_stream_differs);
	tcase_add_test(tc, log_filters_by_level);
	tcase_add_test(tc, log_level_names_round_trip);
	tcase_add_test(tc, log_reopen_follows_rotation);
	tcase_add_test(tc, log_cuts_long_messages_to_one_line);
	tcase_add_test(tc, log_lines_stay_whole_across_threads);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(log_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
