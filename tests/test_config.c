/* Unit tests for lib/config: defaults, value syntax, every class of error
 * with its exact "FILE:LINE: [section] key: problem" message, kafka.*
 * pass-through, secrets from file: and credential:, redaction in errors and
 * in ls_config_format, reload checks, and the shipped example config. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* A minimal valid config; tests append or prepend to it. */
#define BASE "[pipeline]\nname = shop\n" \
	     "[source]\ntype = postgres\nconninfo = host=old dbname=shop\n" \
	     "[buffer]\nbrokers = k1:9092\n"

static struct ls_config *parse_ok(const char *text)
{
	struct ls_config *c = NULL;
	struct ls_err err = { 0 };
	int rc = ls_config_parse("t.conf", text, &c, &err);
	ck_assert_msg(rc == 0, "parse failed: %s", err.msg);
	ck_assert_ptr_nonnull(c);
	return c;
}

static void expect_error(const char *text, const char *msg)
{
	struct ls_config *c = (struct ls_config *)1;
	struct ls_err err = { 0 };
	int rc = ls_config_parse("t.conf", text, &c, &err);
	ck_assert_msg(rc == -1, "parse of [%s] succeeded, wanted %s", text, msg);
	ck_assert_ptr_null(c);
	ck_assert_str_eq(err.msg, msg);
}

static char tmpdir[64];

static void make_tmpdir(void)
{
	strcpy(tmpdir, "/tmp/test_config.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void write_file(const char *path, const char *content, size_t len)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(content, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

START_TEST(config_minimal_gets_documented_defaults)
{
	struct ls_config *c = parse_ok(BASE);
	ck_assert_str_eq(c->path, "t.conf");
	ck_assert_str_eq(c->name, "shop");
	ck_assert_str_eq(c->state_dir, "/var/lib/lockstep/shop");
	ck_assert_str_eq(c->log_level, "info");
	ck_assert(c->source.present);
	ck_assert_int_eq(c->source.type, LS_ENGINE_POSTGRES);
	ck_assert_str_eq(c->source.conninfo, "host=old dbname=shop");
	ck_assert_str_eq(c->source.tables, "public.*");
	ck_assert_ptr_null(c->source.exclude);
	ck_assert_int_eq(c->source.snapshot, LS_SNAPSHOT_INITIAL);
	ck_assert_int_eq(c->source.snapshot_workers, 2);
	ck_assert_str_eq(c->source.slot, "lockstep_shop");
	ck_assert_str_eq(c->source.publication, "lockstep_shop");
	ck_assert_uint_eq(c->source.server_id, 0);
	ck_assert(c->source.stream_txns);
	ck_assert_uint_eq(c->source.stream_mem, 8000000);
	ck_assert_int_eq(c->buffer.type, LS_BUFFER_KAFKA);
	ck_assert_str_eq(c->buffer.brokers, "k1:9092");
	ck_assert_str_eq(c->buffer.topic, "lockstep.shop");
	ck_assert_uint_eq(c->buffer.max_lead, 0);
	ck_assert_int_eq(c->buffer.nkafka, 0);
	ck_assert_int_eq(c->ntargets, 0);
	ck_assert_str_eq(c->control.socket,
			 "/var/lib/lockstep/shop/control.sock");
	ck_assert_ptr_null(c->control.metrics_listen);
	ck_assert_int_eq(c->drift.interval_s, 900);
	ck_assert_int_eq(c->drift.chunk_rows, 10000);
	ls_config_free(c);
}
END_TEST

START_TEST(config_target_gets_defaults_and_derived_socket)
{
	struct ls_config *c = parse_ok(
		"[pipeline]\nname = p1\nstate_dir = /srv/p1\n"
		"[buffer]\nbrokers = k:1\n"
		"[target new-db_2]\ntype = mysql\nconninfo = host=x\n"
		"[target b]\ntype = postgres\nconninfo = host=y\n"
		"create_tables = off\nddl = stop\nbatch_rows = 7\n"
		"batch_ms = 2s\n");
	ck_assert(!c->source.present);
	ck_assert_int_eq(c->ntargets, 2);
	ck_assert_str_eq(c->targets[0].name, "new-db_2");
	ck_assert_int_eq(c->targets[0].type, LS_ENGINE_MYSQL);
	ck_assert(c->targets[0].create_tables);
	ck_assert_int_eq(c->targets[0].ddl, LS_DDL_APPLY);
	ck_assert_int_eq(c->targets[0].batch_rows, 5000);
	ck_assert_int_eq(c->targets[0].batch_ms, 100);
	ck_assert_str_eq(c->targets[1].name, "b");
	ck_assert(!c->targets[1].create_tables);
	ck_assert_int_eq(c->targets[1].ddl, LS_DDL_STOP);
	ck_assert_int_eq(c->targets[1].batch_rows, 7);
	ck_assert_int_eq(c->targets[1].batch_ms, 2000);
	ck_assert_str_eq(c->control.socket, "/srv/p1/control.sock");
	ls_config_free(c);
}
END_TEST

static const struct { const char *text; int64_t secs; } durations[] = {
	{ "0", 0 }, { "30s", 30 }, { "15m", 900 }, { "1h", 3600 },
	{ "2d", 172800 }, { "45", 45 }, { "2000ms", 2 }, { "90S", 90 },
};

START_TEST(config_parses_durations)
{
	char text[512];
	snprintf(text, sizeof text, BASE "[drift]\ninterval = %s\n",
		 durations[_i].text);
	struct ls_config *c = parse_ok(text);
	ck_assert_int_eq(c->drift.interval_s, durations[_i].secs);
	ls_config_free(c);
}
END_TEST

static const char *const bad_durations[] = {
	"1.5h", "-1", "10x", "500ms", "h", "1 h", "367d", "99999999999999999999",
};

START_TEST(config_rejects_bad_durations)
{
	char text[512], msg[512];
	snprintf(text, sizeof text, BASE "[drift]\ninterval = %s\n",
		 bad_durations[_i]);
	snprintf(msg, sizeof msg, "t.conf:9: [drift] interval: bad value '%s' "
		 "(expected a duration such as 0, 30s, 15m, 1h, 2d (at most "
		 "366d))", bad_durations[_i]);
	expect_error(text, msg);
}
END_TEST

static const struct { const char *text; uint64_t bytes; } sizes[] = {
	{ "0", 0 }, { "1048576", 1048576 }, { "5MB", 5000000 },
	{ "4MiB", 4194304 }, { "64kB", 64000 }, { "2GiB", 2147483648ULL },
	{ "10b", 10 }, { "1TiB", 1ULL << 40 },
};

START_TEST(config_parses_sizes)
{
	char text[512];
	snprintf(text, sizeof text, BASE "max_lead = %s\n", sizes[_i].text);
	struct ls_config *c = parse_ok(text);
	ck_assert_uint_eq(c->buffer.max_lead, sizes[_i].bytes);
	ls_config_free(c);
}
END_TEST

START_TEST(config_rejects_bad_sizes)
{
	static const char *const bad[] = { "5XB", "-1", "MB", "1.5MB", "5 MB" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char text[512], msg[512];
		snprintf(text, sizeof text, BASE "max_lead = %s\n", bad[i]);
		snprintf(msg, sizeof msg, "t.conf:8: [buffer] max_lead: bad "
			 "value '%s' (expected a size such as 1048576, 64kB, "
			 "5MB, 4MiB, 1GiB)", bad[i]);
		expect_error(text, msg);
	}
}
END_TEST

/* PostgreSQL's logical_decoding_work_mem is at least 64kB. */
START_TEST(config_stream_settings)
{
	struct ls_config *c = parse_ok("[pipeline]\nname = shop\n[source]\ntype = postgres\n"
				       "conninfo = x\nstream_txns = false\nstream_mem = 64kB\n"
				       "[buffer]\nbrokers = k1:9092\n");
	ck_assert(!c->source.stream_txns);
	ck_assert_uint_eq(c->source.stream_mem, 64000);
	ls_config_free(c);
	expect_error("[pipeline]\nname = shop\n[source]\ntype = postgres\nconninfo = x\n"
		     "stream_mem = 32kB\n",
		     "t.conf:6: [source] stream_mem: bad value '32kB' (expected a size such "
		     "as 1048576, 64kB, 5MB, 4MiB, 1GiB)");
}
END_TEST

/* Each class of error, with the exact message. */
static const struct { const char *text; const char *msg; } errors[] = {
	{ BASE "[sorce]\n",
	  "t.conf:8: [sorce]: unknown section (expected pipeline, source, "
	  "buffer, target NAME, control, drift, cutover or log)" },
	{ BASE "[source]\n",
	  "t.conf:8: [source]: duplicate section (first on line 3)" },
	{ "[pipeline]\nname = x\n[source]\ncolour = red\n",
	  "t.conf:4: [source] colour: unknown key" },
	{ BASE "snapshot = sometimes\n",
	  "t.conf:8: [buffer] snapshot: unknown key" },
	{ "[pipeline]\nname = shop\n[source]\n; comment\n\n# another\n"
	  "snapshot = sometimes\n",
	  "t.conf:7: [source] snapshot: bad value 'sometimes' (expected "
	  "initial | never)" },
	{ "[pipeline]\nname = shop\n[source]\ntype = oracle\n",
	  "t.conf:4: [source] type: bad value 'oracle' (expected postgres | "
	  "mysql)" },
	{ BASE "[target a]\nbatch_rows = 0\n",
	  "t.conf:9: [target a] batch_rows: bad value '0' (expected an "
	  "integer from 1 to 1000000)" },
	{ BASE "[target a]\ncreate_tables = maybe\n",
	  "t.conf:9: [target a] create_tables: bad value 'maybe' (expected "
	  "true or false)" },
	{ BASE "[target a]\nbatch_ms = 2m\n",
	  "t.conf:9: [target a] batch_ms: bad value '2m' (expected "
	  "milliseconds such as 250 or 250ms, from 0 to 60000)" },
	{ "[pipeline]\nname = shop\n[source]\ntables = a.*\n\ntables = b.*\n",
	  "t.conf:6: [source] tables: duplicate key (first set on line 4)" },
	{ BASE "[target a]\ntype = mysql\n[target b]\n[target a]\n",
	  "t.conf:11: [target a]: duplicate target name (first on line 8)" },
	{ BASE "[target Big]\n",
	  "t.conf:8: [target Big]: bad target name (expected 1 to 40 "
	  "characters from a-z, 0-9, _ and -)" },
	{ BASE "[target]\n",
	  "t.conf:8: [target]: needs a name, as in [target NAME]" },
	{ "name = shop\n[pipeline]\n",
	  "t.conf:1: name: key outside any section (put it under [pipeline], "
	  "[source], ...)" },
	{ BASE "just words\n",
	  "t.conf:8: syntax error: expected \"key = value\" or \"[section]\"" },
	{ BASE "[drift\n", "t.conf:8: syntax error: '[' without ']'" },
	{ "[pipeline]\nname = Shop\n",
	  "t.conf:2: [pipeline] name: bad value 'Shop' (expected 1 to 48 "
	  "characters from a-z, 0-9 and _)" },
	{ "[pipeline]\nstate_dir = /x\n[source]\n",
	  "t.conf: [pipeline] name is required" },
	{ "[pipeline]\nname = shop\n[buffer]\nbrokers = k:1\n",
	  "t.conf: needs a [source] or at least one [target NAME] section" },
	{ "[pipeline]\nname = shop\n[source]\ntype = mysql\n[buffer]\n"
	  "brokers = k:1\n",
	  "t.conf: [source] conninfo is required" },
	{ "[pipeline]\nname = shop\n[source]\nconninfo = h\n",
	  "t.conf: [source] type is required" },
	{ BASE "[target t1]\ntype = mysql\n",
	  "t.conf: [target t1] conninfo is required" },
	{ "[pipeline]\nname = shop\n[source]\ntype = mysql\nconninfo = h\n",
	  "t.conf: [buffer] brokers is required when type = kafka" },
	{ "[pipeline]\nname = shop\n[source]\ntype = mysql\nconninfo = h\n"
	  "[buffer]\ntype = direct\n",
	  "t.conf: [buffer] type = direct needs a [source] and a [target NAME] "
	  "in the same file" },
	{ BASE "kafka.linger.ms = 5\nkafka.linger.ms = 1\n",
	  "t.conf:9: [buffer] kafka.linger.ms: duplicate key (first set on "
	  "line 8)" },
	{ BASE "kafka.acks = 1\n",
	  "t.conf:8: [buffer] kafka.acks: not allowed: lockstep always uses "
	  "acks=all" },
	{ BASE "kafka.bootstrap.servers = k2:9092\n",
	  "t.conf:8: [buffer] kafka.bootstrap.servers: not allowed: set "
	  "[buffer] brokers instead" },
	{ BASE "kafka. = x\n",
	  "t.conf:8: [buffer] kafka.: needs a librdkafka property name after "
	  "\"kafka.\"" },
	{ BASE "[control]\nmetrics_listen = 9811\n",
	  "t.conf:9: [control] metrics_listen: bad value '9811' (expected "
	  "host:port with a port from 1 to 65535)" },
	{ BASE "[control]\nsocket = run/x.sock\n",
	  "t.conf:9: [control] socket: bad value 'run/x.sock' (expected an "
	  "absolute path)" },
	{ BASE "[log]\nlevel = verbose\n",
	  "t.conf:9: [log] level: bad value 'verbose' (expected debug | info "
	  "| notice | warning | error)" },
	{ BASE "[drift]\nchunk_rows = 12abc\n",
	  "t.conf:9: [drift] chunk_rows: bad value '12abc' (expected an "
	  "integer from 1 to 10000000)" },
	{ "[pipeline]\nname = shop\n[source]\ntype = postgres\nconninfo =\n",
	  "t.conf:5: [source] conninfo: bad value (must not be empty)" },
	{ "[pipeline]\nname = shop\nstate_dir = /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaa\n[source]\ntype = mysql\nconninfo = h\n[buffer]\n"
	  "brokers = k:1\n",
	  "t.conf: [control] socket: default '/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaa/control.sock' does not fit (expected an absolute "
	  "path shorter than 108 bytes (the limit of a unix socket address));"
	  " set it" },
};

START_TEST(config_error_names_file_line_section_key)
{
	expect_error(errors[_i].text, errors[_i].msg);
}
END_TEST

START_TEST(config_counts_lines_past_long_lines_and_crlf)
{
	size_t n = 3000;
	char *text = malloc(n + 512);
	ck_assert_ptr_nonnull(text);
	int len = snprintf(text, 512, "[pipeline]\r\nname = shop\r\n"
			   "[source]\r\nconninfo = ");
	memset(text + len, 'a', n);
	strcpy(text + len + n, "\r\n\r\nbogus = 1\r\n");
	expect_error(text, "t.conf:6: [source] bogus: unknown key");
	free(text);
}
END_TEST

START_TEST(config_rejects_overlong_line)
{
	size_t n = 9000;
	char *text = malloc(n + 512);
	ck_assert_ptr_nonnull(text);
	int len = snprintf(text, 512, "[pipeline]\nname = shop\n[source]\n"
			   "tables = ");
	memset(text + len, 'a', n);
	strcpy(text + len + n, "\n");
	expect_error(text, "t.conf:4: line is longer than 8192 characters");
	free(text);
}
END_TEST

START_TEST(config_limits_target_count)
{
	char text[4096];
	size_t n = (size_t)snprintf(text, sizeof text, "%s", BASE);
	for (int i = 0; i <= LS_CONFIG_MAX_TARGETS; i++)
		n += (size_t)snprintf(text + n, sizeof text - n,
				      "[target t%d]\n", i);
	char msg[128];
	snprintf(msg, sizeof msg, "t.conf:%d: [target t%d]: too many targets "
		 "(at most %d)", 8 + LS_CONFIG_MAX_TARGETS,
		 LS_CONFIG_MAX_TARGETS, LS_CONFIG_MAX_TARGETS);
	expect_error(text, msg);
}
END_TEST

START_TEST(config_kafka_keys_pass_through_without_prefix)
{
	struct ls_config *c = parse_ok(
		BASE "kafka.compression.type = zstd\n"
		"kafka.security.protocol = sasl_ssl ; comment\n"
		"topic = t.x\n"
		"kafka.linger.ms = 5\n");
	ck_assert_int_eq(c->buffer.nkafka, 3);
	ck_assert_str_eq(c->buffer.kafka[0].key, "compression.type");
	ck_assert_str_eq(c->buffer.kafka[0].value, "zstd");
	ck_assert_int_eq(c->buffer.kafka[0].line, 8);
	ck_assert_str_eq(c->buffer.kafka[1].key, "security.protocol");
	ck_assert_str_eq(c->buffer.kafka[1].value, "sasl_ssl");
	ck_assert_str_eq(c->buffer.kafka[2].key, "linger.ms");
	ck_assert_int_eq(c->buffer.kafka[2].line, 11);
	ck_assert_str_eq(c->buffer.topic, "t.x");
	ls_config_free(c);
}
END_TEST

START_TEST(config_kafka_keys_only_in_buffer)
{
	expect_error(BASE "[drift]\nkafka.linger.ms = 5\n",
		     "t.conf:9: [drift] kafka.linger.ms: unknown key");
}
END_TEST

START_TEST(config_reads_secrets_from_file_and_credentials)
{
	make_tmpdir();
	char conn[128], cred[128], text[1024];
	snprintf(conn, sizeof conn, "%s/conninfo", tmpdir);
	write_file(conn, "host=a password=filesecret\n\n", 28);
	snprintf(cred, sizeof cred, "%s/kafka-pw", tmpdir);
	write_file(cred, "credsecret\r\n", 12);
	ck_assert_int_eq(setenv("CREDENTIALS_DIRECTORY", tmpdir, 1), 0);
	snprintf(text, sizeof text,
		 "[pipeline]\nname = shop\n"
		 "[source]\ntype = postgres\nconninfo = file:%s\n"
		 "[buffer]\nbrokers = k:1\n"
		 "kafka.sasl.password = credential:kafka-pw\n"
		 "kafka.sasl.username = file:/not/read\n"
		 "[target t]\ntype = mysql\nconninfo = credential:kafka-pw\n",
		 conn);
	struct ls_config *c = parse_ok(text);
	ck_assert_str_eq(c->source.conninfo, "host=a password=filesecret");
	ck_assert_str_eq(c->buffer.kafka[0].value, "credsecret");
	/* not a secret key: taken literally */
	ck_assert_str_eq(c->buffer.kafka[1].value, "file:/not/read");
	ck_assert_str_eq(c->targets[0].conninfo, "credsecret");
	ls_config_free(c);
	unlink(conn);
	unlink(cred);
	rmdir(tmpdir);
}
END_TEST

START_TEST(config_secret_errors_name_line_and_key)
{
	make_tmpdir();
	char text[1024], msg[1024];
	ck_assert_int_eq(unsetenv("CREDENTIALS_DIRECTORY"), 0);
	expect_error(BASE "kafka.sasl.password = credential:pw\n",
		     "t.conf:8: [buffer] kafka.sasl.password: credential:pw: "
		     "$CREDENTIALS_DIRECTORY is not set (systemd sets it with "
		     "LoadCredential=)");
	ck_assert_int_eq(setenv("CREDENTIALS_DIRECTORY", tmpdir, 1), 0);
	expect_error("[pipeline]\nname = a\n[source]\ntype = mysql\n"
		     "conninfo = credential:nope\n",
		     "t.conf:5: [source] conninfo: cannot read credential:nope:"
		     " No such file or directory");
	expect_error("[pipeline]\nname = a\n[source]\n"
		     "conninfo = credential:../etc/passwd\n",
		     "t.conf:4: [source] conninfo: credential:../etc/passwd: "
		     "bad credential name");
	char path[128];
	snprintf(path, sizeof path, "%s/empty", tmpdir);
	write_file(path, "\n", 1);
	snprintf(text, sizeof text, BASE "[target x]\nconninfo = file:%s\n",
		 path);
	snprintf(msg, sizeof msg, "t.conf:9: [target x] conninfo: file:%s: "
		 "is empty", path);
	expect_error(text, msg);
	unlink(path);
	rmdir(tmpdir);
}
END_TEST

START_TEST(config_secret_content_never_in_errors)
{
	make_tmpdir();
	char path[128], text[1024];
	struct ls_err err = { 0 };
	struct ls_config *c = NULL;
	snprintf(path, sizeof path, "%s/nul", tmpdir);
	write_file(path, "abc\0hunter2", 11);
	snprintf(text, sizeof text, BASE "kafka.ssl.key.password = file:%s\n",
		 path);
	ck_assert_int_eq(ls_config_parse("t.conf", text, &c, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "contains a NUL byte"));
	ck_assert_ptr_null(strstr(err.msg, "hunter2"));
	ck_assert_ptr_null(strstr(err.msg, "abc"));
	/* an inline secret that fails to validate is not echoed either */
	ck_assert_int_eq(ls_config_parse("t.conf", BASE "[target x]\n"
					 "conninfo = host=a password=hunter2\n"
					 "conninfo = again password=hunter2\n",
					 &c, &err), -1);
	ck_assert_str_eq(err.msg, "t.conf:10: [target x] conninfo: duplicate "
			 "key (first set on line 9)");
	unlink(path);
	rmdir(tmpdir);
}
END_TEST

START_TEST(config_format_redacts_secrets)
{
	make_tmpdir();
	char path[128], text[1024];
	snprintf(path, sizeof path, "%s/pw", tmpdir);
	write_file(path, "filesecret", 10);
	snprintf(text, sizeof text,
		 "[pipeline]\nname = shop\n[source]\ntype = postgres\n"
		 "conninfo = host=a user=u password='qzx1 qzx2'\n"
		 "[buffer]\nbrokers = k:1\nkafka.sasl.password = file:%s\n"
		 "kafka.ssl.key.password = inline-secret\n"
		 "[target t]\ntype = postgres\n"
		 "conninfo = postgresql://u:urisecret@new/shop\n", path);
	struct ls_config *c = parse_ok(text);
	char out[8192];
	size_t n = ls_config_format(c, out, sizeof out);
	ck_assert_uint_eq(n, strlen(out));
	ck_assert_ptr_null(strstr(out, "qzx1"));
	ck_assert_ptr_null(strstr(out, "qzx2"));
	ck_assert_ptr_null(strstr(out, "filesecret"));
	ck_assert_ptr_null(strstr(out, "inline-secret"));
	ck_assert_ptr_null(strstr(out, "urisecret"));
	ck_assert_ptr_nonnull(strstr(out, "conninfo = host=a user=u "
				     "password=********\n"));
	ck_assert_ptr_nonnull(strstr(out, "kafka.sasl.password = ********\n"));
	ck_assert_ptr_nonnull(strstr(out, "conninfo = postgresql://u:********"
				     "@new/shop\n"));
	ls_config_free(c);
	unlink(path);
	rmdir(tmpdir);
}
END_TEST

START_TEST(config_format_round_trips)
{
	struct ls_config *c = parse_ok(
		BASE "max_lead = 4MiB\nkafka.linger.ms = 5\n"
		"[target a]\ntype = mysql\nconninfo = host=n\nbatch_ms = 250\n"
		"[drift]\ninterval = 2h\n");
	char out[8192], again[8192];
	size_t n = ls_config_format(c, out, sizeof out);
	ck_assert_uint_lt(n, sizeof out);
	ck_assert_ptr_nonnull(strstr(out, "[pipeline]\nname = shop\n"));
	ck_assert_ptr_nonnull(strstr(out, "max_lead = 4MiB\n"));
	ck_assert_ptr_nonnull(strstr(out, "interval = 2h\n"));
	ck_assert_ptr_nonnull(strstr(out, "batch_ms = 250ms\n"));
	ck_assert_ptr_nonnull(strstr(out, "; exclude is not set\n"));
	ck_assert_ptr_nonnull(strstr(out, "kafka.linger.ms = 5\n"));
	struct ls_config *d = parse_ok(out);
	ck_assert_uint_eq(ls_config_format(d, again, sizeof again), n);
	ck_assert_str_eq(out, again);
	/* too small a buffer: truncated, terminated, needed length returned */
	char small[16];
	ck_assert_uint_eq(ls_config_format(c, small, sizeof small), n);
	ck_assert_uint_eq(strlen(small), sizeof small - 1);
	ck_assert_int_eq(strncmp(small, out, sizeof small - 1), 0);
	ls_config_free(c);
	ls_config_free(d);
}
END_TEST

START_TEST(config_reload_allows_only_reloadable_keys)
{
	struct ls_config *a = parse_ok(BASE "[target a]\ntype = mysql\n"
				       "conninfo = h\n");
	struct ls_config *b = parse_ok(BASE "max_lead = 1GiB\n[target a]\n"
				       "type = mysql\nconninfo = h\n"
				       "batch_rows = 10\n[log]\nlevel = debug\n"
				       "[drift]\ninterval = 1h\n");
	struct ls_config *c = parse_ok(BASE "[target a]\ntype = mysql\n"
				       "conninfo = h2\n");
	struct ls_config *d = parse_ok(BASE "kafka.linger.ms = 1\n[target a]\n"
				       "type = mysql\nconninfo = h\n");
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_config_reload_check(a, b, &err), 0);
	ck_assert_int_eq(ls_config_reload_check(a, c, &err), -1);
	ck_assert_str_eq(err.msg, "t.conf: [target a] conninfo: changed, "
			 "needs a restart");
	ck_assert_int_eq(ls_config_reload_check(a, d, &err), -1);
	ck_assert_str_eq(err.msg, "t.conf: [buffer] kafka.linger.ms: changed, "
			 "needs a restart");
	ls_config_free(a);
	ls_config_free(b);
	ls_config_free(c);
	ls_config_free(d);
}
END_TEST

START_TEST(config_example_file_parses)
{
	struct ls_config *c = NULL;
	struct ls_err err = { 0 };
	int rc = ls_config_load("systemd/example.conf", &c, &err);
	ck_assert_msg(rc == 0, "%s", err.msg);
	ck_assert_str_eq(c->name, "shop");
	ck_assert_int_eq(c->source.type, LS_ENGINE_POSTGRES);
	ck_assert_str_eq(c->source.exclude, "public.audit_*");
	ck_assert_int_eq(c->buffer.type, LS_BUFFER_KAFKA);
	ck_assert_str_eq(c->buffer.brokers, "kafka1:9092,kafka2:9092");
	ck_assert_int_eq(c->buffer.nkafka, 1);
	ck_assert_str_eq(c->buffer.kafka[0].key, "compression.type");
	ck_assert_str_eq(c->buffer.kafka[0].value, "zstd");
	ck_assert_int_eq(c->ntargets, 1);
	ck_assert_str_eq(c->targets[0].name, "new");
	ck_assert_str_eq(c->targets[0].conninfo,
			 "host=new-db dbname=shop user=lockstep");
	ck_assert_str_eq(c->control.metrics_listen, "127.0.0.1:9811");
	ck_assert_int_eq(c->drift.interval_s, 900);
	ck_assert_str_eq(c->log_level, "info");
	ls_config_free(c);
}
END_TEST

START_TEST(config_load_reports_missing_file)
{
	struct ls_config *c = NULL;
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_config_load("/nonexistent/x.conf", &c, &err), -1);
	ck_assert_ptr_null(c);
	ck_assert_str_eq(err.msg, "/nonexistent/x.conf: cannot open: No such "
			 "file or directory");
	ls_config_free(NULL);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, config_minimal_gets_documented_defaults);
	tcase_add_test(tc, config_target_gets_defaults_and_derived_socket);
	tcase_add_loop_test(tc, config_parses_durations, 0,
			    sizeof durations / sizeof *durations);
	tcase_add_loop_test(tc, config_rejects_bad_durations, 0,
			    sizeof bad_durations / sizeof *bad_durations);
	tcase_add_loop_test(tc, config_parses_sizes, 0,
			    sizeof sizes / sizeof *sizes);
	tcase_add_test(tc, config_rejects_bad_sizes);
	tcase_add_loop_test(tc, config_error_names_file_line_section_key, 0,
			    sizeof errors / sizeof *errors);
	tcase_add_test(tc, config_counts_lines_past_long_lines_and_crlf);
	tcase_add_test(tc, config_rejects_overlong_line);
	tcase_add_test(tc, config_limits_target_count);
	tcase_add_test(tc, config_kafka_keys_pass_through_without_prefix);
	tcase_add_test(tc, config_kafka_keys_only_in_buffer);
	tcase_add_test(tc, config_reads_secrets_from_file_and_credentials);
	tcase_add_test(tc, config_secret_errors_name_line_and_key);
	tcase_add_test(tc, config_secret_content_never_in_errors);
	tcase_add_test(tc, config_format_redacts_secrets);
	tcase_add_test(tc, config_format_round_trips);
	tcase_add_test(tc, config_reload_allows_only_reloadable_keys);
	tcase_add_test(tc, config_example_file_parses);
	tcase_add_test(tc, config_stream_settings);
	tcase_add_test(tc, config_load_reports_missing_file);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
