/* my_setup — everything the MySQL/MariaDB source does once, before
 * streaming: connection parameters, readiness checks, the resume check and
 * table selection.
 *
 * These calls block (they run at start, before the loop streams anything)
 * on a caller-owned ordinary MYSQL connection.  Error messages name what is
 * wrong and how to fix it; they carry the server's message but never the
 * password.
 */
#ifndef LS_MY_SETUP_H
#define LS_MY_SETUP_H

#include <stdbool.h>
#include <stdint.h>

#include <mysql.h>

#include "change.h"
#include "err.h"
#include "pos.h"

/* ---- connection parameters ------------------------------------------------------ */

/* Parsed "key=value ..." connection string.  Keys: host (default
 * 127.0.0.1), port (default 3306), user, password (alias passwd), database
 * (alias dbname).  Values may be quoted with '...' or "..." and use
 * backslash escapes inside quotes. */
struct ls_myconn {
	char *host;                /* owned */
	unsigned port;
	char *user;                /* owned, "" when absent */
	char *password;            /* owned, "" when absent; secret */
	char *database;            /* owned, "" when absent */
};

/* Parses s into out (all strings owned; release with ls_mysetup_conn_free,
 * also on failure).  Errors name the key or position, never a value (the
 * password must not leak).  Unknown keys are errors. */
int ls_mysetup_conn_parse(const char *s, struct ls_myconn *out, struct ls_err *err)
	__attribute__((warn_unused_result));
void ls_mysetup_conn_free(struct ls_myconn *c);

/* Opens a connection (TCP, utf8mb4, session time_zone '+00:00' so
 * TIMESTAMP values read as UTC, like the binlog carries them).  timeout_s
 * bounds connect, read and write (0: 10 s connect, no read/write limit).
 * NULL with err set (retryable for network errors) on failure. */
MYSQL *ls_mysetup_connect(const struct ls_myconn *c, unsigned timeout_s,
	struct ls_err *err);

/* Runs one statement and returns its first row's first column as a malloc'd
 * string in *out (NULL when no row or a NULL value).  -1 with err set. */
int ls_mysetup_query1(MYSQL *m, const char *sql, char **out, struct ls_err *err);

/* ---- readiness ------------------------------------------------------------------- */

struct ls_myserver {
	bool mariadb;              /* version() says MariaDB */
	char version[64];
	uint32_t server_id;
	char binlog_checksum[16];  /* "CRC32" or "NONE" */
	char gtid_pos[LS_POS_TEXT_MAX];  /* @@gtid_binlog_pos at the check */
};

/* Checks that the server and user can run the source, and fails with every
 * problem found, each with its fix:
 *  - log_bin is ON; binlog_format is ROW; binlog_row_image is FULL;
 *  - server_id is not 0;
 *  - the user holds REPLICATION SLAVE and REPLICATION CLIENT (BINLOG
 *    MONITOR on MariaDB 10.5+) on *.* (SHOW GRANTS; ALL PRIVILEGES counts);
 *  - MariaDB: @@gtid_binlog_pos is readable (the GTID position).
 * info (may be NULL) receives what was found. */
int ls_mysetup_check_ready(MYSQL *m, struct ls_myserver *info, struct ls_err *err)
	__attribute__((warn_unused_result));

/* Checks that the binlog still holds every transaction after `resume` (a
 * GTID set to resume streaming after): the Gtid_list at the start of the
 * oldest binlog file names, per domain, the last transaction already
 * purged; a resume position behind it in any domain (or missing a domain
 * that has purged transactions) is the error "binlog already purged past
 * the needed position ... re-snapshot". */
int ls_mysetup_check_resume(MYSQL *m, const struct ls_gtid_set *resume,
	struct ls_err *err) __attribute__((warn_unused_result));

/* ---- table selection ---------------------------------------------------------- */

struct ls_mycolumn {
	char *name;                /* owned */
	char *column_type;         /* owned; COLUMN_TYPE: "int(10) unsigned" */
	char *data_type;           /* owned; DATA_TYPE: "int" */
	char *charset;             /* owned; NULL for non-character columns */
	uint8_t type_code;         /* enum enum_field_types (MYSQL_TYPE_*) */
	bool is_unsigned;
	bool nullable;
	bool key;                  /* part of the chosen key */
	bool binary;               /* values are bytes: binary, varbinary,
	                              *blob, bit, geometry */
	int nmembers;              /* enum/set members, 0 otherwise */
	char **members;            /* owned, nmembers strings, unquoted */
};

struct ls_mytable {
	char *schema;              /* owned */
	char *name;                /* owned */
	char *engine;              /* owned */
	bool primary_key;          /* the key is the PRIMARY KEY (else the first
	                              UNIQUE index with NOT NULL columns) */
	int ncols;
	struct ls_mycolumn *cols;  /* owned, ordinal order */
	double est_rows;           /* TABLE_ROWS (an estimate for InnoDB) */
	int64_t data_length;       /* DATA_LENGTH in bytes */
};

struct ls_mytables {
	int n;
	struct ls_mytable *t;      /* owned, n entries, sorted by schema, name */
};

/* Resolves include/exclude patterns against information_schema and fills
 * out (release with ls_mysetup_tables_free, also on failure).
 *
 * Patterns are comma-separated "db.table" with '*' matching any run of
 * characters, compared case-sensitively: "shop.*", "shop.order_*".  exclude
 * may be NULL.  Base tables only; the system databases (mysql,
 * information_schema, performance_schema, sys) never match.  Errors, all
 * listed in one message: a pattern without '*' that matches nothing, an
 * empty selection, a table that is not InnoDB (not transactional: its
 * changes cannot be captured consistently), a table without a PRIMARY KEY
 * or UNIQUE index over NOT NULL columns. */
int ls_mysetup_select_tables(MYSQL *m, const char *include, const char *exclude,
	struct ls_mytables *out, struct ls_err *err) __attribute__((warn_unused_result));
void ls_mysetup_tables_free(struct ls_mytables *tables);

/* Finds "schema.name"; NULL when absent. */
const struct ls_mytable *ls_mysetup_tables_find(const struct ls_mytables *tables,
	const char *schema, const char *name);

/* lockstep's relation model of a table: type_name = COLUMN_TYPE, type_oid =
 * the MYSQL_TYPE_* code, typmod -1, LS_COL_KEY on key columns, replident
 * DEFAULT (primary key) or INDEX.  id is the caller's (the binlog's table
 * ids change; the source assigns stable ones).  NULL when out of memory. */
struct ls_relation *ls_mysetup_table_relation(const struct ls_mytable *t, uint32_t id);

/* True when "schema.table" matches one pattern of the comma-separated list. */
bool ls_mysetup_pattern_match(const char *patterns, const char *schema,
	const char *table);

/* Parses the members of "enum('a','b''c')" / "set(...)" COLUMN_TYPE text
 * (quotes doubled or backslash-escaped) into *members (malloc'd array of
 * malloc'd strings).  Returns the count, 0 for other types, -1 on malformed
 * text or OOM. */
int ls_mysetup_parse_members(const char *column_type, char ***members);

/* The MYSQL_TYPE_* code for an information_schema DATA_TYPE ("int",
 * "varchar", ...); MYSQL_TYPE_STRING for unknown names. */
uint8_t ls_mysetup_type_code(const char *data_type);

#endif
