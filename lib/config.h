/* config — one INI file per pipeline, parsed by a single table of keys.
 *
 * Sections: [pipeline] [source] [buffer] [target NAME]... [control] [drift]
 * [log].  The key table (config.c) gives each key its section, type, default,
 * validator and whether SIGHUP may reload it; parse, `--check-config` and the
 * control plane's config view all walk that table.
 *
 * Errors name file, line, section and key: "shop.conf:12: [source] tables: ...".
 * Unknown sections and keys are errors.
 *
 * Secrets: a value may be written "file:/path" for keys marked secret
 * (conninfo, kafka.sasl.password, ...) or "credential:NAME", read from
 * $CREDENTIALS_DIRECTORY/NAME (systemd LoadCredential=).  Either way, the
 * value is read once at load; trailing newlines are stripped.
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

struct ls_kv {
	char *key;                 /* owned; without the "kafka." prefix */
	char *value;               /* owned */
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

/* Writes the effective config as INI text with secrets redacted into buf
 * (always NUL-terminated); returns the length it needed. */
size_t ls_config_format(const struct ls_config *c, char *buf, size_t size);

#endif
