/* config — one INI file per pipeline, parsed by a single table of keys.
 *
 * Sections: [pipeline] [source] [buffer] [target NAME]... [control] [drift]
 * [cutover] [log].  A key marked "may repeat" takes every line it is set on
 * (joined by newlines in the struct).  The key table (config.c) gives each key its section, type, default,
 * validator and whether SIGHUP may reload it; parse, `--check-config` and the
 * control plane's config view all walk that table.
 *
 * Errors name file, line, section and key: "shop.conf:12: [source] tables: ...".
 * Unknown sections and keys are errors.  kafka.* keys in [buffer] pass through to
 * librdkafka, except those lockstep must own for its delivery contract
 * (bootstrap.servers, acks, enable.idempotence, enable.auto.commit, ...).
 *
 * Secrets: a value may be written "file:/path" for keys marked secret
 * (conninfo, kafka.sasl.password, ...) or "credential:NAME", read from
 * $CREDENTIALS_DIRECTORY/NAME (systemd LoadCredential=).  Either way, the
 * value is read once at load; trailing newlines are stripped.
 *
 * Syntax: "key = value", ';' or '#' starts a comment line, " ;" starts an
 * inline comment, no continuation lines.  Durations: "0", "30s", "15m", "1h",
 * "2d" (a bare number is seconds; batch_ms takes "250ms" or a bare number
 * of milliseconds).  Sizes: "1048576", "64kB", "5MB" (powers of 1000),
 * "4KiB", "4MiB", "1GiB" (powers of 1024).  Booleans: true/false, yes/no,
 * on/off, 1/0.  Parsing uses process-wide inih settings: parse one file at a
 * time (the daemon's main thread does).
 */
#ifndef LS_CONFIG_H
#define LS_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

#define LS_CONFIG_MAX_TARGETS 16
#define LS_CONFIG_MAX_KV 64

enum ls_engine { LS_ENGINE_NONE = 0, LS_ENGINE_POSTGRES, LS_ENGINE_MYSQL };
enum ls_buffer_type { LS_BUFFER_KAFKA = 0, LS_BUFFER_DIRECT };
enum ls_snapshot_mode { LS_SNAPSHOT_INITIAL = 0, LS_SNAPSHOT_NEVER };
enum ls_ddl_mode { LS_DDL_APPLY = 0, LS_DDL_STOP };
/* How the built-in cutover fence stops the application's writes. */
enum ls_fence_mode { LS_FENCE_REVOKE = 0, LS_FENCE_READ_ONLY };

struct ls_kv {
	char *key;                 /* owned; without the "kafka." prefix */
	char *value;               /* owned; secret for *password keys */
	int line;                  /* where it was set, for error messages */
};

struct ls_config_source {
	bool present;              /* the file has a [source] section */
	enum ls_engine type;
	char *conninfo;            /* secret: never log; use ls_redact() */
	char *tables;              /* comma-separated patterns, default "public.*" */
	char *exclude;             /* comma-separated patterns, may be NULL */
	enum ls_snapshot_mode snapshot;
	int snapshot_workers;      /* default 2 */
	char *slot;                /* default lockstep_<pipeline name> */
	char *publication;         /* default lockstep_<pipeline name> */
	uint32_t server_id;        /* MySQL replica server id, default 0 = derive */
	char *skip_origins;        /* comma-separated replication origins whose
	                              transactions are not captured (PostgreSQL
	                              origins; MySQL: the server ids lockstep's
	                              apply tags its writes with, one per name);
	                              NULL = lockstep_<name>_rev, the reverse
	                              apply of a cutover (lib/cutover.h) */
	char *start_gtid;          /* MySQL: the first start streams after this
	                              GTID set instead of the server's current
	                              position (a saved resume point wins) */
	bool stream_txns;          /* PostgreSQL: apply a large transaction
	                              while it is still in progress (pgoutput
	                              streaming), default true */
	uint64_t stream_mem;       /* PostgreSQL: logical_decoding_work_mem of
	                              lockstep's walsender: a transaction whose
	                              decoded changes exceed it is streamed;
	                              default 8MB, at least 64kB */
};

struct ls_config_buffer {
	enum ls_buffer_type type;
	char *brokers;
	char *topic;               /* default lockstep.<pipeline name> */
	uint64_t max_lead;         /* bytes of topic backlog allowed ahead of the
	                              slowest target; 0 = unbounded */
	int nkafka;
	struct ls_kv kafka[LS_CONFIG_MAX_KV];   /* "kafka.*" pass-through */
};

struct ls_config_target {
	char *name;                /* from "[target NAME]" */
	enum ls_engine type;
	char *conninfo;            /* secret */
	bool create_tables;        /* default true */
	enum ls_ddl_mode ddl;      /* default apply */
	int batch_rows;            /* group small txns up to this many rows, 5000 */
	int batch_ms;              /* ... or this many milliseconds, 100 */
};

struct ls_config_control {
	char *socket;              /* default <state_dir>/control.sock */
	char *metrics_listen;      /* "host:port" or NULL (off) */
};

struct ls_config_drift {
	int64_t interval_s;        /* 0 = on demand only; "15m", "1h", "30s" */
	int chunk_rows;            /* default 10000 */
};

/* [cutover] (lib/cutover.h) */
struct ls_config_cutover {
	char *app_roles;           /* comma-separated roles the fence applies to */
	enum ls_fence_mode fence;  /* revoke (default): the slice's write privileges;
	                              read_only: the whole server or role */
	char *fence_hook;          /* command run instead of the built-in fence */
	char *unfence_hook;        /* command lifting fence_hook's fence */
	char *switch_hook;         /* command repointing the application */
	char *switch_back_hook;    /* the same, back to the old side (rollback) */
	char *check_command;       /* may repeat: one command per line, each must exit 0 */
	char *sequences;           /* comma-separated extra sequences to carry */
	int64_t max_lag_s;         /* max_lag_seconds, default 5 */
	int64_t rollback_window_s; /* default 1h */
	int64_t hook_timeout_s;    /* default 60s */
	int settle_ms;             /* fence settle before the write check, 2000 */
};

struct ls_config {
	char *path;                /* the file it came from (owned) */
	char *name;                /* [pipeline] name, required: [a-z0-9_]{1,48} */
	char *state_dir;           /* default /var/lib/lockstep/<name> */
	char *log_level;           /* [log] level: debug|info|notice|warning|error */
	struct ls_config_source source;
	struct ls_config_buffer buffer;
	int ntargets;
	struct ls_config_target targets[LS_CONFIG_MAX_TARGETS];
	struct ls_config_control control;
	struct ls_config_drift drift;
	struct ls_config_cutover cutover;
};

/* Parses path into a new config.  On failure returns -1, *out is NULL and err
 * says "FILE:LINE: [section] key: problem" (or "FILE: ..." for whole-file
 * problems such as a missing [pipeline] name or no [source] and no [target]). */
int ls_config_load(const char *path, struct ls_config **out, struct ls_err *err)
	__attribute__((warn_unused_result));

/* Same, from a string (tests); name is used in error messages. */
int ls_config_parse(const char *name, const char *text, struct ls_config **out,
		    struct ls_err *err) __attribute__((warn_unused_result));

void ls_config_free(struct ls_config *c);   /* NULL is a no-op */

/* For SIGHUP: 0 when next differs from cur only in keys marked reloadable
 * (log level, drift interval and chunk_rows, target batch_rows / batch_ms,
 * buffer max_lead); otherwise -1 and err names the first key that needs a
 * restart: "FILE: [section] key: changed, needs a restart". */
int ls_config_reload_check(const struct ls_config *cur,
			   const struct ls_config *next, struct ls_err *err)
	__attribute__((warn_unused_result));

/* Writes the effective config (defaults filled in) as INI text into buf
 * (always NUL-terminated when size > 0); returns the length it needed, as
 * snprintf does.  Secret values are masked (conninfo through ls_redact, the
 * kafka passwords entirely); unset optional keys appear as comments.  The
 * output parses back into the same config, apart from the masked secrets. */
size_t ls_config_format(const struct ls_config *c, char *buf, size_t size);

#endif
