#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ini.h>

#include "log.h"
#include "pos.h"

#define CFG_LINE_MAX 8192            /* longest line accepted */
#define CFG_FILE_MAX (1024 * 1024)   /* largest config file */
#define SECRET_FILE_MAX (64 * 1024)  /* largest file: / credential: value */
#define TARGET_NAME_MAX 40
#define MASK "********"

enum sec { SEC_PIPELINE, SEC_SOURCE, SEC_BUFFER, SEC_TARGET, SEC_CONTROL,
	   SEC_DRIFT, SEC_CUTOVER, SEC_LOG, SEC_COUNT };

static const char *const sec_names[SEC_COUNT] = {
	"pipeline", "source", "buffer", "target", "control", "drift", "cutover", "log",
};

enum ktype {
	K_STRING,     /* char *, owned */
	K_BOOL,       /* bool */
	K_INT,        /* int, in [min, max] */
	K_U32,        /* uint32_t, in [min, max] */
	K_DURATION,   /* int64_t seconds: "0", "30s", "15m", "1h", "2d" */
	K_MSEC,       /* int milliseconds: "250ms", "2s", bare = ms */
	K_SIZE,       /* uint64_t bytes: "1048576", "5MB", "4MiB" */
	K_ENUM,       /* an enum (int-sized), from names[] */
};

#define F_RELOAD   1u   /* SIGHUP may change it */
#define F_SECRET   2u   /* file: / credential: accepted; never printed */
#define F_REQUIRED 4u   /* must be set when its section is present */
#define F_MULTI    8u   /* string that may repeat: the lines are joined by '\n' */

struct enum_name {
	const char *name;
	int value;
};

/* A validator for string values: 0 if fine, else -1 and *why says what is
 * allowed. */
typedef int (*check_fn)(const char *value, const char **why);

/* One row per key.  def is the default written as it would be in the file
 * and goes through the same parser; "{name}" and "{state_dir}" in a string
 * default are filled in once the whole file is read.  off is the offset of
 * the field inside its section's struct (struct ls_config itself for
 * [pipeline] and [log]). */
struct key {
	enum sec sec;
	const char *name;
	enum ktype type;
	size_t off;
	const char *def;
	unsigned flags;
	const struct enum_name *names;
	int64_t min, max;
	check_fn check;
};

static const struct enum_name engine_names[] = {
	{ "postgres", LS_ENGINE_POSTGRES }, { "mysql", LS_ENGINE_MYSQL }, { 0 } };
static const struct enum_name buffer_names[] = {
	{ "kafka", LS_BUFFER_KAFKA }, { "direct", LS_BUFFER_DIRECT }, { 0 } };
static const struct enum_name snapshot_names[] = {
	{ "initial", LS_SNAPSHOT_INITIAL }, { "never", LS_SNAPSHOT_NEVER }, { 0 } };
static const struct enum_name ddl_names[] = {
	{ "apply", LS_DDL_APPLY }, { "stop", LS_DDL_STOP }, { 0 } };
static const struct enum_name fence_names[] = {
	{ "revoke", LS_FENCE_REVOKE }, { "read_only", LS_FENCE_READ_ONLY }, { 0 } };

static int check_name(const char *v, const char **why);
static int check_nonempty(const char *v, const char **why);
static int check_abs_path(const char *v, const char **why);
static int check_socket(const char *v, const char **why);
static int check_ident(const char *v, const char **why);
static int check_topic(const char *v, const char **why);
static int check_listen(const char *v, const char **why);
static int check_level(const char *v, const char **why);
static int check_gtid(const char *v, const char **why);

#define PIPE(f) offsetof(struct ls_config, f)
#define SRC(f) offsetof(struct ls_config_source, f)
#define BUF(f) offsetof(struct ls_config_buffer, f)
#define TGT(f) offsetof(struct ls_config_target, f)
#define CTL(f) offsetof(struct ls_config_control, f)
#define DRF(f) offsetof(struct ls_config_drift, f)
#define CUT(f) offsetof(struct ls_config_cutover, f)

static const struct key keys[] = {
	{ SEC_PIPELINE, "name", K_STRING, PIPE(name), NULL, F_REQUIRED,
	  .check = check_name },
	{ SEC_PIPELINE, "state_dir", K_STRING, PIPE(state_dir),
	  "/var/lib/lockstep/{name}", 0, .check = check_abs_path },

	{ SEC_SOURCE, "type", K_ENUM, SRC(type), NULL, F_REQUIRED,
	  .names = engine_names },
	{ SEC_SOURCE, "conninfo", K_STRING, SRC(conninfo), NULL,
	  F_REQUIRED | F_SECRET, .check = check_nonempty },
	{ SEC_SOURCE, "tables", K_STRING, SRC(tables), "public.*", 0,
	  .check = check_nonempty },
	{ SEC_SOURCE, "exclude", K_STRING, SRC(exclude), NULL, 0,
	  .check = check_nonempty },
	{ SEC_SOURCE, "snapshot", K_ENUM, SRC(snapshot), "initial", 0,
	  .names = snapshot_names },
	{ SEC_SOURCE, "snapshot_workers", K_INT, SRC(snapshot_workers), "2", 0,
	  .min = 1, .max = 64 },
	{ SEC_SOURCE, "slot", K_STRING, SRC(slot), "lockstep_{name}", 0,
	  .check = check_ident },
	{ SEC_SOURCE, "publication", K_STRING, SRC(publication),
	  "lockstep_{name}", 0, .check = check_ident },
	{ SEC_SOURCE, "server_id", K_U32, SRC(server_id), "0", 0,
	  .min = 0, .max = UINT32_MAX },
	{ SEC_SOURCE, "skip_origins", K_STRING, SRC(skip_origins), NULL, 0,
	  .check = check_nonempty },
	{ SEC_SOURCE, "start_gtid", K_STRING, SRC(start_gtid), NULL, 0,
	  .check = check_gtid },
	{ SEC_SOURCE, "stream_txns", K_BOOL, SRC(stream_txns), "true", 0, .min = 0 },
	{ SEC_SOURCE, "stream_mem", K_SIZE, SRC(stream_mem), "8MB", 0,
	  .min = 64000, .max = 1ULL << 40 },

	{ SEC_BUFFER, "type", K_ENUM, BUF(type), "kafka", 0,
	  .names = buffer_names },
	{ SEC_BUFFER, "brokers", K_STRING, BUF(brokers), NULL, 0,
	  .check = check_nonempty },
	{ SEC_BUFFER, "topic", K_STRING, BUF(topic), "lockstep.{name}", 0,
	  .check = check_topic },
	{ SEC_BUFFER, "max_lead", K_SIZE, BUF(max_lead), "0", F_RELOAD,
	  .min = 0, .max = INT64_MAX },

	{ SEC_TARGET, "type", K_ENUM, TGT(type), NULL, F_REQUIRED,
	  .names = engine_names },
	{ SEC_TARGET, "conninfo", K_STRING, TGT(conninfo), NULL,
	  F_REQUIRED | F_SECRET, .check = check_nonempty },
	{ SEC_TARGET, "create_tables", K_BOOL, TGT(create_tables), "true", 0,
	  .names = NULL },
	{ SEC_TARGET, "ddl", K_ENUM, TGT(ddl), "apply", 0, .names = ddl_names },
	{ SEC_TARGET, "batch_rows", K_INT, TGT(batch_rows), "5000", F_RELOAD,
	  .min = 1, .max = 1000000 },
	{ SEC_TARGET, "batch_ms", K_MSEC, TGT(batch_ms), "100", F_RELOAD,
	  .min = 0, .max = 60000 },

	{ SEC_CONTROL, "socket", K_STRING, CTL(socket),
	  "{state_dir}/control.sock", 0, .check = check_socket },
	{ SEC_CONTROL, "metrics_listen", K_STRING, CTL(metrics_listen), NULL, 0,
	  .check = check_listen },

	{ SEC_DRIFT, "interval", K_DURATION, DRF(interval_s), "15m", F_RELOAD,
	  .min = 0, .max = 366 * 86400 },
	{ SEC_DRIFT, "chunk_rows", K_INT, DRF(chunk_rows), "10000", F_RELOAD,
	  .min = 1, .max = 10000000 },

	{ SEC_CUTOVER, "app_roles", K_STRING, CUT(app_roles), NULL, 0,
	  .check = check_nonempty },
	{ SEC_CUTOVER, "fence", K_ENUM, CUT(fence), "revoke", 0, .names = fence_names },
	{ SEC_CUTOVER, "fence_hook", K_STRING, CUT(fence_hook), NULL, 0,
	  .check = check_nonempty },
	{ SEC_CUTOVER, "unfence_hook", K_STRING, CUT(unfence_hook), NULL, 0,
	  .check = check_nonempty },
	{ SEC_CUTOVER, "switch_hook", K_STRING, CUT(switch_hook), NULL, 0,
	  .check = check_nonempty },
	{ SEC_CUTOVER, "switch_back_hook", K_STRING, CUT(switch_back_hook), NULL,
	  0, .check = check_nonempty },
	{ SEC_CUTOVER, "check_command", K_STRING, CUT(check_command), NULL,
	  F_MULTI, .check = check_nonempty },
	{ SEC_CUTOVER, "sequences", K_STRING, CUT(sequences), NULL, 0,
	  .check = check_nonempty },
	{ SEC_CUTOVER, "max_lag_seconds", K_DURATION, CUT(max_lag_s), "5", 0,
	  .min = 0, .max = 86400 },
	{ SEC_CUTOVER, "rollback_window", K_DURATION, CUT(rollback_window_s),
	  "1h", 0, .min = 0, .max = 366 * 86400 },
	{ SEC_CUTOVER, "hook_timeout", K_DURATION, CUT(hook_timeout_s), "60s", 0,
	  .min = 1, .max = 86400 },
	{ SEC_CUTOVER, "settle", K_MSEC, CUT(settle_ms), "2000", 0,
	  .min = 0, .max = 600000 },

	{ SEC_LOG, "level", K_STRING, PIPE(log_level), "info", F_RELOAD,
	  .check = check_level },
};

#define NKEYS (sizeof keys / sizeof keys[0])

/* librdkafka properties that hold secrets: file:/credential: allowed, masked
 * in ls_config_format. */
static const char *const kafka_secrets[] = {
	"sasl.password", "ssl.key.password", "ssl.keystore.password",
	"sasl.oauthbearer.client.secret", "ssl.key.pem",
};

/* librdkafka properties lockstep sets itself: overriding them would break
 * the delivery contract (acks=all, idempotent producer, offsets kept in the
 * target's checkpoint) or duplicate a key of its own. */
static const struct {
	const char *prop;
	const char *why;
} kafka_reserved[] = {
	{ "bootstrap.servers", "set [buffer] brokers instead" },
	{ "metadata.broker.list", "set [buffer] brokers instead" },
	{ "acks", "lockstep always uses acks=all" },
	{ "request.required.acks", "lockstep always uses acks=all" },
	{ "enable.idempotence", "lockstep always uses the idempotent producer" },
	{ "enable.auto.commit", "offsets live in each target's checkpoint" },
	{ "enable.auto.offset.store", "offsets live in each target's checkpoint" },
};

/* ---- validators ---- */

static bool all_chars(const char *v, const char *extra, bool upper)
{
	for (; *v != '\0'; v++) {
		unsigned char ch = (unsigned char)*v;
		if (!(islower(ch) || isdigit(ch) || (upper && isupper(ch)) ||
		      strchr(extra, ch) != NULL))
			return false;
	}
	return true;
}

static int check_name(const char *v, const char **why)
{
	*why = "expected 1 to 48 characters from a-z, 0-9 and _";
	size_t n = strlen(v);
	return n >= 1 && n <= 48 && all_chars(v, "_", false) ? 0 : -1;
}

static int check_nonempty(const char *v, const char **why)
{
	*why = "must not be empty";
	return *v != '\0' ? 0 : -1;
}

static int check_abs_path(const char *v, const char **why)
{
	*why = "expected an absolute path";
	return v[0] == '/' ? 0 : -1;
}

static int check_socket(const char *v, const char **why)
{
	if (check_abs_path(v, why) != 0)
		return -1;
	*why = "expected an absolute path shorter than 108 bytes (the limit "
	       "of a unix socket address)";
	return strlen(v) < sizeof(((struct sockaddr_un *)0)->sun_path) ? 0 : -1;
}

static int check_ident(const char *v, const char **why)
{
	*why = "expected 1 to 63 characters from a-z, 0-9 and _";
	size_t n = strlen(v);
	return n >= 1 && n <= 63 && all_chars(v, "_", false) ? 0 : -1;
}

static int check_topic(const char *v, const char **why)
{
	*why = "expected 1 to 249 characters from a-z, A-Z, 0-9, '.', '_', '-'";
	size_t n = strlen(v);
	return n >= 1 && n <= 249 && all_chars(v, "._-", true) ? 0 : -1;
}

static int check_listen(const char *v, const char **why)
{
	*why = "expected host:port with a port from 1 to 65535";
	const char *colon = strrchr(v, ':');
	if (colon == NULL || colon == v)
		return -1;
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (!isdigit((unsigned char)colon[1]) || *end != '\0' || errno != 0 ||
	    port < 1 || port > 65535)
		return -1;
	return 0;
}

static int check_level(const char *v, const char **why)
{
	enum ls_log_level l;
	*why = "expected debug | info | notice | warning | error";
	return ls_log_level_from_name(v, &l);
}

static int check_gtid(const char *v, const char **why)
{
	struct ls_gtid_set set;
	*why = "expected a MariaDB GTID set such as 0-1-100,1-2-5";
	return ls_gtid_set_parse(v, &set, NULL) == 0 && set.n > 0 ? 0 : -1;
}

/* ---- value parsers ---- */

static int parse_i64(const char *s, int64_t *out, const char **rest)
{
	if (!isdigit((unsigned char)*s))
		return -1;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0)
		return -1;
	*out = v;
	*rest = end;
	return 0;
}

struct unit {
	const char *suffix;
	int64_t mul;
};

/* Number followed by one of the units (case-insensitive); "" is the unit
 * of a bare number.  Rejects overflow. */
static int parse_with_units(const char *s, const struct unit *units,
			    int64_t *out)
{
	int64_t n;
	const char *rest;
	if (parse_i64(s, &n, &rest) != 0)
		return -1;
	for (const struct unit *u = units; u->suffix != NULL; u++) {
		if (strcasecmp(rest, u->suffix) != 0)
			continue;
		if (n > INT64_MAX / u->mul)
			return -1;
		*out = n * u->mul;
		return 0;
	}
	return -1;
}

static const struct unit duration_units[] = {   /* in milliseconds */
	{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
	{ "d", 86400000 }, { NULL, 0 } };

static const struct unit size_units[] = {
	{ "", 1 }, { "b", 1 },
	{ "kb", 1000 }, { "mb", 1000000 }, { "gb", 1000000000 },
	{ "tb", 1000000000000 },
	{ "kib", 1LL << 10 }, { "mib", 1LL << 20 }, { "gib", 1LL << 30 },
	{ "tib", 1LL << 40 }, { NULL, 0 } };

/* Durations in ms; a bare number is in bare_mul ms. */
static int parse_duration_ms(const char *s, int64_t bare_mul, int64_t *ms)
{
	int64_t n;
	const char *rest;
	if (parse_i64(s, &n, &rest) == 0 && *rest == '\0') {
		if (n > INT64_MAX / bare_mul)
			return -1;
		*ms = n * bare_mul;
		return 0;
	}
	return parse_with_units(s, duration_units, ms);
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
			*out = strcasecmp(s, yes[i]) == 0;
			return 0;
		}
	}
	return -1;
}

static void *field(void *base, const struct key *k)
{
	return (char *)base + k->off;
}

static const void *cfield(const void *base, const struct key *k)
{
	return (const char *)base + k->off;
}

/* Writes the "expected ..." text for non-string keys into buf. */
static const char *expected(const struct key *k, char *buf, size_t size)
{
	size_t n = 0;
	switch (k->type) {
	case K_BOOL:
		return "expected true or false";
	case K_INT:
	case K_U32:
		snprintf(buf, size, "expected an integer from %" PRId64
			 " to %" PRId64, k->min, k->max);
		return buf;
	case K_DURATION:
		return "expected a duration such as 0, 30s, 15m, 1h, 2d "
		       "(at most 366d)";
	case K_MSEC:
		snprintf(buf, size, "expected milliseconds such as 250 or "
			 "250ms, from %" PRId64 " to %" PRId64, k->min, k->max);
		return buf;
	case K_SIZE:
		return "expected a size such as 1048576, 64kB, 5MB, 4MiB, 1GiB";
	case K_ENUM:
		n = (size_t)snprintf(buf, size, "expected");
		for (const struct enum_name *e = k->names; e->name; e++)
			n += (size_t)snprintf(buf + n, n < size ? size - n : 0,
					      "%s %s", e == k->names ? "" : " |",
					      e->name);
		return buf;
	case K_STRING:
		break;
	}
	return "";
}

/* Parses text into k's field of base.  On a bad value returns -1 and *why
 * says what is allowed (possibly pointing into whybuf). */
static int set_value(const struct key *k, void *base, const char *text,
		     const char **why, char *whybuf, size_t whysize)
{
	void *f = field(base, k);
	int64_t v = 0;
	*why = expected(k, whybuf, whysize);
	switch (k->type) {
	case K_STRING: {
		if (k->check != NULL && k->check(text, why) != 0)
			return -1;
		char *copy = strdup(text);
		if (copy == NULL) {
			*why = "out of memory";
			return -1;
		}
		free(*(char **)f);
		*(char **)f = copy;
		return 0;
	}
	case K_BOOL:
		return parse_bool(text, (bool *)f);
	case K_INT:
	case K_U32: {
		const char *rest;
		if (parse_i64(text, &v, &rest) != 0 || *rest != '\0' ||
		    v < k->min || v > k->max)
			return -1;
		if (k->type == K_INT)
			*(int *)f = (int)v;
		else
			*(uint32_t *)f = (uint32_t)v;
		return 0;
	}
	case K_DURATION:
		if (parse_duration_ms(text, 1000, &v) != 0 || v % 1000 != 0 ||
		    v / 1000 < k->min || v / 1000 > k->max)
			return -1;
		*(int64_t *)f = v / 1000;
		return 0;
	case K_MSEC:
		if (parse_duration_ms(text, 1, &v) != 0 || v < k->min ||
		    v > k->max)
			return -1;
		*(int *)f = (int)v;
		return 0;
	case K_SIZE:
		if (parse_with_units(text, size_units, &v) != 0 ||
		    v < k->min || v > k->max)
			return -1;
		*(uint64_t *)f = (uint64_t)v;
		return 0;
	case K_ENUM:
		for (const struct enum_name *e = k->names; e->name; e++) {
			if (strcmp(text, e->name) == 0) {
				*(int *)f = e->value;
				return 0;
			}
		}
		return -1;
	}
	return -1;
}

/* ---- parse state ---- */

struct pctx {
	const char *file;
	struct ls_config *c;
	struct ls_err *err;
	bool failed;
	const char *text;            /* whole input, borrowed */
	size_t len, pos;             /* reader position */
	bool at_line_start;
	int line;                    /* line of the text inih is working on */
	bool in_section;
	enum sec cur;
	int cur_target;              /* index when cur == SEC_TARGET */
	int sec_line[SEC_COUNT];     /* header line; 0 = absent */
	int target_line[LS_CONFIG_MAX_TARGETS];
	/* line where each key was set: [0] fixed sections, [1 + i] target i */
	int seen[LS_CONFIG_MAX_TARGETS + 1][NKEYS];
};

static void *section_base(struct ls_config *c, enum sec s, int target)
{
	switch (s) {
	case SEC_SOURCE:
		return &c->source;
	case SEC_BUFFER:
		return &c->buffer;
	case SEC_TARGET:
		return &c->targets[target];
	case SEC_CONTROL:
		return &c->control;
	case SEC_DRIFT:
		return &c->drift;
	case SEC_CUTOVER:
		return &c->cutover;
	case SEC_PIPELINE:
	case SEC_LOG:
	case SEC_COUNT:
		break;
	}
	return c;
}

static const void *csection_base(const struct ls_config *c, enum sec s,
				 int target)
{
	return section_base((struct ls_config *)c, s, target);
}

/* "source" or "target NAME", for messages. */
static const char *label(const struct ls_config *c, enum sec s, int target,
			 char *buf, size_t size)
{
	if (s != SEC_TARGET)
		return sec_names[s];
	snprintf(buf, size, "target %s", c->targets[target].name);
	return buf;
}

/* Sets p->err to "FILE:LINE: " + message and marks the parse failed. */
static int fail(struct pctx *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(struct pctx *p, const char *fmt, ...)
{
	char msg[LS_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (!p->failed)
		ls_err_set(p->err, false, "%s:%d: %s", p->file, p->line, msg);
	p->failed = true;
	return -1;
}

/* "FILE:LINE: [section] key: problem" for the key on the current line. */
static int key_fail(struct pctx *p, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int key_fail(struct pctx *p, const char *key, const char *fmt, ...)
{
	char msg[LS_ERR_MSG_MAX], lb[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return fail(p, "[%s] %s: %s",
		    label(p->c, p->cur, p->cur_target, lb, sizeof lb), key, msg);
}

static int apply_defaults(struct pctx *p, enum sec s, int target)
{
	void *base = section_base(p->c, s, target);
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		const char *why;
		char wb[128];
		if (k->sec != s || k->def == NULL || strchr(k->def, '{'))
			continue;
		if (set_value(k, base, k->def, &why, wb, sizeof wb) != 0)
			return ls_err_set(p->err, false, "%s: [%s] %s: bad "
					  "built-in default: %s", p->file,
					  sec_names[s], k->name, why);
	}
	return 0;
}

/* ---- sections ---- */

static bool valid_target_name(const char *n)
{
	size_t len = strlen(n);
	return len >= 1 && len <= TARGET_NAME_MAX && all_chars(n, "_-", false);
}

static int enter_target(struct pctx *p, const char *name)
{
	struct ls_config *c = p->c;
	if (!valid_target_name(name))
		return fail(p, "[target %s]: bad target name (expected 1 to %d "
			    "characters from a-z, 0-9, _ and -)", name,
			    TARGET_NAME_MAX);
	for (int i = 0; i < c->ntargets; i++)
		if (strcmp(c->targets[i].name, name) == 0)
			return fail(p, "[target %s]: duplicate target name "
				    "(first on line %d)", name,
				    p->target_line[i]);
	if (c->ntargets == LS_CONFIG_MAX_TARGETS)
		return fail(p, "[target %s]: too many targets (at most %d)",
			    name, LS_CONFIG_MAX_TARGETS);
	int t = c->ntargets;
	c->targets[t].name = strdup(name);
	if (c->targets[t].name == NULL)
		return fail(p, "out of memory");
	c->ntargets++;
	p->target_line[t] = p->line;
	p->cur = SEC_TARGET;
	p->cur_target = t;
	p->in_section = true;
	if (apply_defaults(p, SEC_TARGET, t) != 0)
		p->failed = true;
	return p->failed ? -1 : 0;
}

/* Called for "[inner]" on the current line. */
static int enter_section(struct pctx *p, const char *inner)
{
	if (strncmp(inner, "target", 6) == 0 &&
	    (inner[6] == ' ' || inner[6] == '\t')) {
		const char *n = inner + 6;
		while (*n == ' ' || *n == '\t')
			n++;
		return enter_target(p, n);
	}
	if (strcmp(inner, "target") == 0)
		return fail(p, "[target]: needs a name, as in [target NAME]");
	for (int s = 0; s < SEC_COUNT; s++) {
		if (s == SEC_TARGET || strcmp(inner, sec_names[s]) != 0)
			continue;
		if (p->sec_line[s] != 0)
			return fail(p, "[%s]: duplicate section (first on line "
				    "%d)", inner, p->sec_line[s]);
		p->sec_line[s] = p->line;
		p->cur = (enum sec)s;
		p->in_section = true;
		if (s == SEC_SOURCE)
			p->c->source.present = true;
		return 0;
	}
	return fail(p, "[%s]: unknown section (expected pipeline, source, "
		    "buffer, target NAME, control, drift, cutover or log)", inner);
}

/* Looks at the line starting at p->pos before inih does: counts it, checks
 * its length and handles a "[section]" header (inih reports no line numbers
 * and does not tell about sections without keys). */
static int scan_line(struct pctx *p)
{
	const char *s = p->text + p->pos;
	const char *eol = memchr(s, '\n', p->len - p->pos);
	size_t n = eol != NULL ? (size_t)(eol - s) : p->len - p->pos;
	p->line++;
	if (n > CFG_LINE_MAX)
		return fail(p, "line is longer than %d characters",
			    CFG_LINE_MAX);
	if (p->line == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
		s += 3;
		n -= 3;
	}
	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	if (n == 0 || *s != '[')
		return 0;
	const char *close = memchr(s, ']', n);
	if (close == NULL)
		return fail(p, "syntax error: '[' without ']'");
	char inner[CFG_LINE_MAX + 1];
	const char *a = s + 1, *b = close;
	while (a < b && isspace((unsigned char)*a))
		a++;
	while (b > a && isspace((unsigned char)b[-1]))
		b--;
	memcpy(inner, a, (size_t)(b - a));
	inner[b - a] = '\0';
	return enter_section(p, inner);
}

/* inih's fgets: hands out the text line by line (in pieces when inih's
 * buffer is short; it grows the buffer and asks again). */
static char *reader(char *str, int num, void *stream)
{
	struct pctx *p = stream;
	if (p->failed || p->pos >= p->len || num < 2)
		return NULL;
	if (p->at_line_start && scan_line(p) != 0)
		return NULL;
	size_t n = 0;
	while (n < (size_t)num - 1 && p->pos < p->len) {
		char ch = p->text[p->pos++];
		str[n++] = ch;
		if (ch == '\n')
			break;
	}
	str[n] = '\0';
	p->at_line_start = str[n - 1] == '\n';
	return str;
}

/* ---- keys ---- */

static const struct key *find_key(enum sec s, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].sec == s && strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static bool kafka_is_secret(const char *key)
{
	for (size_t i = 0; i < sizeof kafka_secrets / sizeof *kafka_secrets;
	     i++)
		if (strcmp(key, kafka_secrets[i]) == 0)
			return true;
	return false;
}

/* Reads a regular file of at most max bytes whole into *out (malloc'd,
 * NUL-terminated, length *len).  Returns 0; -3 when it cannot be opened
 * and -1 when it cannot be read, with *why saying why; -2 when it is not a
 * regular file or too big. */
static int read_small_file(const char *path, long max, char **out, size_t *len,
			   const char **why)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0) {
		*why = strerror(errno);
		return -3;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > max) {
		close(fd);
		return -2;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t n = 0;
	ssize_t r = 1;
	while (buf != NULL && n < (size_t)st.st_size && r > 0) {
		r = read(fd, buf + n, (size_t)st.st_size - n);
		if (r > 0)
			n += (size_t)r;
		else if (r < 0 && errno == EINTR)
			r = 1;
	}
	int e = errno;
	close(fd);
	if (buf == NULL || r < 0) {
		free(buf);
		*why = buf == NULL ? "out of memory" : strerror(e);
		return -1;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* Reads a secret file whole; strips trailing newlines.  Never puts the
 * content in a message. */
static int read_secret_file(struct pctx *p, const char *key, const char *spec,
			    const char *path, char **out)
{
	char *buf;
	size_t n;
	const char *why;
	int rc = read_small_file(path, SECRET_FILE_MAX, &buf, &n, &why);
	if (rc == -2)
		return key_fail(p, key, "%s: not a regular file of at most %d "
				"bytes", spec, SECRET_FILE_MAX);
	if (rc < 0)
		return key_fail(p, key, "cannot read %s: %s", spec, why);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if (n == 0 || strlen(buf) != n) {
		free(buf);
		return key_fail(p, key, "%s: %s", spec, n == 0 ? "is empty" :
				"contains a NUL byte");
	}
	*out = buf;
	return 0;
}

/* Resolves "file:/path" and "credential:NAME"; other values are copied. */
static int resolve_secret(struct pctx *p, const char *key, const char *value,
			  char **out)
{
	if (strncmp(value, "file:", 5) == 0) {
		if (value[5] == '\0')
			return key_fail(p, key, "file: needs a path");
		return read_secret_file(p, key, value, value + 5, out);
	}
	if (strncmp(value, "credential:", 11) == 0) {
		const char *name = value + 11;
		if (*name == '\0' || strchr(name, '/') != NULL ||
		    strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			return key_fail(p, key, "%s: bad credential name",
					value);
		const char *dir = getenv("CREDENTIALS_DIRECTORY");
		if (dir == NULL || *dir == '\0')
			return key_fail(p, key, "%s: $CREDENTIALS_DIRECTORY is "
					"not set (systemd sets it with "
					"LoadCredential=)", value);
		char path[PATH_MAX];
		if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >=
		    sizeof path)
			return key_fail(p, key, "%s: path too long", value);
		return read_secret_file(p, key, value, path, out);
	}
	*out = strdup(value);
	return *out == NULL ? key_fail(p, key, "out of memory") : 0;
}

static int set_kafka(struct pctx *p, const char *name, const char *value)
{
	struct ls_config_buffer *b = &p->c->buffer;
	const char *prop = name + 6;
	if (*prop == '\0')
		return key_fail(p, name, "needs a librdkafka property name "
				"after \"kafka.\"");
	for (size_t i = 0; i < sizeof kafka_reserved / sizeof *kafka_reserved;
	     i++)
		if (strcmp(prop, kafka_reserved[i].prop) == 0)
			return key_fail(p, name, "not allowed: %s",
					kafka_reserved[i].why);
	for (int i = 0; i < b->nkafka; i++)
		if (strcmp(b->kafka[i].key, prop) == 0)
			return key_fail(p, name, "duplicate key (first set on "
					"line %d)", b->kafka[i].line);
	if (b->nkafka == LS_CONFIG_MAX_KV)
		return key_fail(p, name, "too many kafka.* keys (at most %d)",
				LS_CONFIG_MAX_KV);
	char *v = NULL;
	if (kafka_is_secret(prop)) {
		if (resolve_secret(p, name, value, &v) != 0)
			return -1;
	} else if ((v = strdup(value)) == NULL) {
		return key_fail(p, name, "out of memory");
	}
	struct ls_kv *kv = &b->kafka[b->nkafka];
	kv->key = strdup(prop);
	if (kv->key == NULL) {
		free(v);
		return key_fail(p, name, "out of memory");
	}
	kv->value = v;
	kv->line = p->line;
	b->nkafka++;
	return 0;
}

/* A repeated F_MULTI key: its value joins the earlier ones on a new line. */
static int add_line(struct pctx *p, const struct key *k, const char *name,
		    const char *value)
{
	const char *why;
	char **f = field(section_base(p->c, p->cur, p->cur_target), k);
	if (k->check != NULL && k->check(value, &why) != 0)
		return key_fail(p, name, "bad value '%.100s' (%s)", value, why);
	size_t a = strlen(*f), b = strlen(value);
	char *v = realloc(*f, a + b + 2);
	if (v == NULL)
		return key_fail(p, name, "out of memory");
	v[a] = '\n';
	memcpy(v + a + 1, value, b + 1);
	*f = v;
	return 0;
}

static int set_key(struct pctx *p, const char *name, const char *value)
{
	if (!p->in_section)
		return fail(p, "%s: key outside any section (put it under "
			    "[pipeline], [source], ...)", name);
	if (p->cur == SEC_BUFFER && strncmp(name, "kafka.", 6) == 0)
		return set_kafka(p, name, value);
	const struct key *k = find_key(p->cur, name);
	if (k == NULL)
		return key_fail(p, name, "unknown key");
	int *seen = &p->seen[p->cur == SEC_TARGET ? 1 + p->cur_target : 0]
			    [k - keys];
	if (*seen != 0 && (k->flags & F_MULTI))
		return add_line(p, k, name, value);
	if (*seen != 0)
		return key_fail(p, name, "duplicate key (first set on line %d)",
				*seen);
	*seen = p->line;
	char *resolved = NULL;
	if ((k->flags & F_SECRET) && resolve_secret(p, name, value,
						    &resolved) != 0)
		return -1;
	const char *why;
	char wb[128];
	void *base = section_base(p->c, p->cur, p->cur_target);
	int rc = set_value(k, base, resolved ? resolved : value, &why, wb,
			   sizeof wb);
	free(resolved);
	if (rc == 0)
		return 0;
	if (k->flags & F_SECRET)
		return key_fail(p, name, "bad value (%s)", why);
	return key_fail(p, name, "bad value '%.100s' (%s)", value, why);
}

#if INI_HANDLER_LINENO
static int handler(void *user, const char *section, const char *name,
		   const char *value, int lineno)
{
	(void)lineno;
#else
static int handler(void *user, const char *section, const char *name,
		   const char *value)
{
#endif
	struct pctx *p = user;
	(void)section;   /* p->cur, set by scan_line(), knows target names */
	if (p->failed)
		return 0;
	return set_key(p, name, value) == 0;
}

/* ---- whole-file checks ---- */

/* Fills "{name}" and "{state_dir}" defaults, in table order (state_dir
 * before control.socket). */
static int template_defaults(struct pctx *p, enum sec s, int target)
{
	struct ls_config *c = p->c;
	void *base = section_base(c, s, target);
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		if (k->sec != s || k->def == NULL || !strchr(k->def, '{') ||
		    *(char **)field(base, k) != NULL)
			continue;
		char buf[PATH_MAX];
		const char *d = k->def;
		const char *brace = strchr(d, '{');
		const char *close = strchr(brace, '}');
		size_t vlen = (size_t)(close - brace - 1);
		const char *val = strncmp(brace + 1, "name", vlen) == 0 ?
				  c->name : c->state_dir;
		snprintf(buf, sizeof buf, "%.*s%s%s", (int)(brace - d), d,
			 val, close + 1);
		const char *why;
		char wb[128], lb[64];
		if (set_value(k, base, buf, &why, wb, sizeof wb) != 0)
			return ls_err_set(p->err, false, "%s: [%s] %s: default "
					  "'%s' does not fit (%s); set it",
					  p->file, label(c, s, target, lb,
							 sizeof lb),
					  k->name, buf, why);
	}
	return 0;
}

static int check_required(struct pctx *p, enum sec s, int target)
{
	const void *base = csection_base(p->c, s, target);
	char lb[64];
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		if (k->sec != s || !(k->flags & F_REQUIRED))
			continue;
		bool set = k->type == K_STRING ?
			   *(char *const *)cfield(base, k) != NULL :
			   p->seen[s == SEC_TARGET ? 1 + target : 0][i] != 0;
		if (!set)
			return ls_err_set(p->err, false, "%s: [%s] %s is "
					  "required", p->file,
					  label(p->c, s, target, lb, sizeof lb),
					  k->name);
	}
	return 0;
}

static int finish(struct pctx *p)
{
	struct ls_config *c = p->c;
	if (check_required(p, SEC_PIPELINE, 0) != 0)
		return -1;
	if (!c->source.present && c->ntargets == 0)
		return ls_err_set(p->err, false, "%s: needs a [source] or at "
				  "least one [target NAME] section", p->file);
	if (c->source.present && check_required(p, SEC_SOURCE, 0) != 0)
		return -1;
	for (int t = 0; t < c->ntargets; t++)
		if (check_required(p, SEC_TARGET, t) != 0)
			return -1;
	if (c->buffer.type == LS_BUFFER_KAFKA && c->buffer.brokers == NULL)
		return ls_err_set(p->err, false, "%s: [buffer] brokers is "
				  "required when type = kafka", p->file);
	if (c->buffer.type == LS_BUFFER_DIRECT &&
	    (!c->source.present || c->ntargets == 0))
		return ls_err_set(p->err, false, "%s: [buffer] type = direct "
				  "needs a [source] and a [target NAME] in the "
				  "same file", p->file);
	for (int s = 0; s < SEC_COUNT; s++)
		if (s != SEC_TARGET && template_defaults(p, s, 0) != 0)
			return -1;
	return 0;
}

/* ---- public API ---- */

static struct ls_config *config_new(struct pctx *p)
{
	struct ls_config *c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	p->c = c;
	for (int s = 0; s < SEC_COUNT; s++) {
		if (s != SEC_TARGET && apply_defaults(p, s, 0) != 0) {
			ls_config_free(c);
			return NULL;
		}
	}
	return c;
}

int ls_config_parse(const char *name, const char *text, struct ls_config **out,
		    struct ls_err *err)
{
	*out = NULL;
	struct pctx *p = calloc(1, sizeof *p);
	if (p == NULL)
		return ls_err_set(err, false, "%s: out of memory", name);
	p->file = name;
	p->err = err;
	p->text = text;
	p->len = strlen(text);
	p->at_line_start = true;
	struct ls_config *c = config_new(p);
	int rc = -1;
	if (c == NULL) {
		ls_err_set(err, false, "%s: out of memory", name);
		goto out;
	}
	/* inih's knobs are process-wide in Debian's build: one value per line,
	 * lines as long as scan_line() allows, stop at the first error. */
	ini_allow_multiline = false;
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_max_line = CFG_LINE_MAX + 8;
	ini_stop_on_first_error = true;
	int bad = ini_parse_stream(reader, p, handler, p);
	if (!p->failed && bad == -2)
		fail(p, "out of memory");
	else if (!p->failed && bad != 0)
		ls_err_set(err, false, "%s:%d: syntax error: expected "
			   "\"key = value\" or \"[section]\"", name, bad);
	if (p->failed || bad != 0 || finish(p) != 0)
		goto out;
	c->path = strdup(name);
	if (c->path == NULL) {
		ls_err_set(err, false, "%s: out of memory", name);
		goto out;
	}
	*out = c;
	c = NULL;
	rc = 0;
out:
	ls_config_free(c);
	free(p);
	return rc;
}

int ls_config_load(const char *path, struct ls_config **out, struct ls_err *err)
{
	*out = NULL;
	char *text;
	size_t n;
	const char *why;
	int rd = read_small_file(path, CFG_FILE_MAX, &text, &n, &why);
	if (rd == -2)
		return ls_err_set(err, false, "%s: not a regular file of at "
				  "most %d bytes", path, CFG_FILE_MAX);
	if (rd < 0)
		return ls_err_set(err, false, "%s: cannot %s: %s", path,
				  rd == -3 ? "open" : "read", why);
	int rc;
	if (strlen(text) != n)
		rc = ls_err_set(err, false, "%s: contains a NUL byte", path);
	else
		rc = ls_config_parse(path, text, out, err);
	free(text);
	return rc;
}

static void free_strings(void *base, enum sec s)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].sec == s && keys[i].type == K_STRING) {
			char **f = field(base, &keys[i]);
			free(*f);
			*f = NULL;
		}
	}
}

void ls_config_free(struct ls_config *c)
{
	if (c == NULL)
		return;
	for (int s = 0; s < SEC_COUNT; s++)
		if (s != SEC_TARGET)
			free_strings(section_base(c, s, 0), s);
	for (int t = 0; t < c->ntargets; t++) {
		free_strings(&c->targets[t], SEC_TARGET);
		free(c->targets[t].name);
	}
	for (int i = 0; i < c->buffer.nkafka; i++) {
		free(c->buffer.kafka[i].key);
		free(c->buffer.kafka[i].value);
	}
	free(c->path);
	free(c);
}

/* ---- format ---- */

struct sbuf {
	char *buf;
	size_t size;
	size_t len;     /* length needed so far */
};

static void sb_printf(struct sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t room = b->len < b->size ? b->size - b->len : 0;
	int n = vsnprintf(room ? b->buf + b->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		b->len += (size_t)n;
}

static void format_scaled(char *buf, size_t size, uint64_t v,
			  const struct unit *units, size_t nunits)
{
	for (size_t i = nunits; i-- > 0;) {
		uint64_t mul = (uint64_t)units[i].mul;
		if (v != 0 && v % mul == 0) {
			snprintf(buf, size, "%" PRIu64 "%s", v / mul,
				 units[i].suffix);
			return;
		}
	}
	snprintf(buf, size, "%" PRIu64, v);
}

/* Formats k's value of base into buf; NULL when an optional string is
 * unset.  Secret strings are redacted. */
static const char *format_value(const struct key *k, const void *base,
				char *buf, size_t size)
{
	static const struct unit dur[] = {
		{ "s", 1 }, { "m", 60 }, { "h", 3600 }, { "d", 86400 } };
	static const struct unit bin[] = {
		{ "", 1 }, { "KiB", 1LL << 10 }, { "MiB", 1LL << 20 },
		{ "GiB", 1LL << 30 }, { "TiB", 1LL << 40 } };
	const void *f = cfield(base, k);
	switch (k->type) {
	case K_STRING: {
		const char *s = *(char *const *)f;
		if (s == NULL)
			return NULL;
		if (k->flags & F_SECRET)
			ls_redact(s, buf, size);
		else
			snprintf(buf, size, "%s", s);
		break;
	}
	case K_BOOL:
		snprintf(buf, size, "%s", *(const bool *)f ? "true" : "false");
		break;
	case K_INT:
		snprintf(buf, size, "%d", *(const int *)f);
		break;
	case K_U32:
		snprintf(buf, size, "%" PRIu32, *(const uint32_t *)f);
		break;
	case K_DURATION:
		format_scaled(buf, size, (uint64_t)*(const int64_t *)f, dur, 4);
		break;
	case K_MSEC:
		snprintf(buf, size, "%dms", *(const int *)f);
		break;
	case K_SIZE:
		format_scaled(buf, size, *(const uint64_t *)f, bin, 5);
		break;
	case K_ENUM:
		snprintf(buf, size, "?");
		for (const struct enum_name *e = k->names; e->name; e++)
			if (e->value == *(const int *)f)
				snprintf(buf, size, "%s", e->name);
		break;
	}
	return buf;
}

static void format_section(struct sbuf *b, const struct ls_config *c,
			   enum sec s, int target, char *vbuf, size_t vsize)
{
	char lb[64];
	sb_printf(b, "%s[%s]\n", b->len ? "\n" : "",
		  label(c, s, target, lb, sizeof lb));
	const void *base = csection_base(c, s, target);
	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].sec != s)
			continue;
		const char *v = format_value(&keys[i], base, vbuf, vsize);
		if (v == NULL) {
			sb_printf(b, "; %s is not set\n", keys[i].name);
			continue;
		}
		/* a repeated key: one line each */
		for (size_t n; (n = strcspn(v, "\n")), v[n] != '\0'; v += n + 1)
			sb_printf(b, "%s = %.*s\n", keys[i].name, (int)n, v);
		sb_printf(b, "%s = %s\n", keys[i].name, v);
	}
	if (s != SEC_BUFFER)
		return;
	for (int i = 0; i < c->buffer.nkafka; i++) {
		const struct ls_kv *kv = &c->buffer.kafka[i];
		sb_printf(b, "kafka.%s = %s\n", kv->key,
			  kafka_is_secret(kv->key) ? MASK : kv->value);
	}
}

size_t ls_config_format(const struct ls_config *c, char *buf, size_t size)
{
	struct sbuf b = { buf, size, 0 };
	size_t vsize = CFG_LINE_MAX * 8 + 1;   /* redaction may grow a value */
	char *vbuf = malloc(vsize);
	if (size > 0)
		buf[0] = '\0';
	if (vbuf == NULL)
		return 0;
	for (int s = 0; s < SEC_COUNT; s++) {
		if (s == SEC_SOURCE && !c->source.present)
			continue;
		if (s != SEC_TARGET) {
			format_section(&b, c, s, 0, vbuf, vsize);
			continue;
		}
		for (int t = 0; t < c->ntargets; t++)
			format_section(&b, c, SEC_TARGET, t, vbuf, vsize);
	}
	free(vbuf);
	return b.len;
}

/* ---- reload ---- */

static bool value_equal(const struct key *k, const void *a, const void *b)
{
	const void *fa = cfield(a, k), *fb = cfield(b, k);
	switch (k->type) {
	case K_STRING: {
		const char *sa = *(char *const *)fa, *sb = *(char *const *)fb;
		return sa == sb || (sa && sb && strcmp(sa, sb) == 0);
	}
	case K_BOOL:
		return *(const bool *)fa == *(const bool *)fb;
	case K_INT:
	case K_MSEC:
	case K_ENUM:
		return *(const int *)fa == *(const int *)fb;
	case K_U32:
		return *(const uint32_t *)fa == *(const uint32_t *)fb;
	case K_DURATION:
		return *(const int64_t *)fa == *(const int64_t *)fb;
	case K_SIZE:
		return *(const uint64_t *)fa == *(const uint64_t *)fb;
	}
	return false;
}

static int restart_needed(const struct ls_config *c, enum sec s, int target,
			  const char *key, struct ls_err *err)
{
	char lb[64];
	return ls_err_set(err, false, "%s: [%s] %s: changed, needs a restart",
			  c->path ? c->path : "config",
			  label(c, s, target, lb, sizeof lb), key);
}

static int compare_section(const struct ls_config *a, const struct ls_config *b,
			   enum sec s, int target, struct ls_err *err)
{
	const void *ba = csection_base(a, s, target);
	const void *bb = csection_base(b, s, target);
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].sec == s && !(keys[i].flags & F_RELOAD) &&
		    !value_equal(&keys[i], ba, bb))
			return restart_needed(b, s, target, keys[i].name, err);
	return 0;
}

int ls_config_reload_check(const struct ls_config *cur,
			   const struct ls_config *next, struct ls_err *err)
{
	if (cur->source.present != next->source.present)
		return restart_needed(next, SEC_SOURCE, 0, "(section)", err);
	if (cur->ntargets != next->ntargets)
		return ls_err_set(err, false, "%s: targets added or removed, "
				  "needs a restart",
				  next->path ? next->path : "config");
	for (int t = 0; t < cur->ntargets; t++)
		if (strcmp(cur->targets[t].name, next->targets[t].name) != 0)
			return ls_err_set(err, false, "%s: [target %s] renamed "
					  "or reordered, needs a restart",
					  next->path ? next->path : "config",
					  next->targets[t].name);
	for (int s = 0; s < SEC_COUNT; s++) {
		if (s == SEC_SOURCE && !cur->source.present)
			continue;
		int n = s == SEC_TARGET ? cur->ntargets : 1;
		for (int t = 0; t < n; t++)
			if (compare_section(cur, next, s, t, err) != 0)
				return -1;
	}
	const struct ls_config_buffer *ka = &cur->buffer, *kb = &next->buffer;
	for (int i = 0; i < ka->nkafka || i < kb->nkafka; i++) {
		const struct ls_kv *x = i < ka->nkafka ? &ka->kafka[i] : NULL;
		const struct ls_kv *y = i < kb->nkafka ? &kb->kafka[i] : NULL;
		if (x == NULL || y == NULL || strcmp(x->key, y->key) != 0 ||
		    strcmp(x->value, y->value) != 0) {
			char key[128];
			snprintf(key, sizeof key, "kafka.%s",
				 (y != NULL ? y : x)->key);
			return restart_needed(next, SEC_BUFFER, 0, key, err);
		}
	}
	return 0;
}
