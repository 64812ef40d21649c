/* my_sql — building MySQL/MariaDB SQL text for the MySQL target: identifier
 * quoting, the target's conninfo, the PostgreSQL -> MySQL type mapping and
 * value conversions, PostgreSQL COPY text parsing, type compatibility and
 * the column diff that drives target DDL.
 *
 * Pure: no libmariadb, no I/O, so unit tests link it directly.  Appends go
 * to a growable ls_mysql_buf; an allocation failure sets buf->oom and later
 * appends become no-ops, so callers check once at the end.
 *
 * Type names.  A relation's type_name is the source's spelling.  A MySQL
 * source sends COLUMN_TYPE ("int(11)", "varchar(40)", "decimal(12,2)",
 * "enum('a','b')"), which is used as is.  A PostgreSQL source sends
 * format_type() spellings, mapped by one table (my_sql.c, `pg_types`):
 *
 *   smallint, integer, bigint      SMALLINT, INT, BIGINT
 *   oid                            INT UNSIGNED
 *   real, double precision         FLOAT, DOUBLE   (NaN/Infinity: error)
 *   numeric(p,s)                   DECIMAL(p,s)    (p <= 65, s <= 30)
 *   numeric                        DECIMAL(65,30)  (NaN/Infinity: error)
 *   boolean                        TINYINT(1)      't'/'f' -> 1/0
 *   text, xml                      LONGTEXT
 *   character varying(n)           VARCHAR(n); LONGTEXT beyond 16383
 *   character varying              LONGTEXT
 *   character(n)                   CHAR(n); VARCHAR(n) beyond 255
 *   bytea                          LONGBLOB        '\x..' hex -> bytes
 *   date                           DATE            (infinity, BC: error)
 *   timestamp(p) without time zone DATETIME(p)     (p default 6)
 *   timestamp(p) with time zone    DATETIME(p)     converted to UTC
 *   time(p) without time zone      TIME(p)
 *   interval                       VARCHAR(64)     (PostgreSQL's text)
 *   uuid                           CHAR(36)
 *   json, jsonb                    JSON
 *   inet, cidr / macaddr           VARCHAR(43) / VARCHAR(17)
 *   T[] (any mapped T)             JSON            array text -> JSON array
 *
 * A name in neither the table nor MySQL's own type vocabulary is an error
 * naming table and column.  A few names are spelled the same by both
 * engines ("text", "date", "json", "smallint", "bigint", "uuid"); they take
 * the table's mapping, which holds every value either engine can send (a
 * MySQL TEXT becomes LONGTEXT).
 *
 * Key columns need an indexable type: a key column whose type would be a
 * TEXT/BLOB/JSON becomes VARCHAR(255) / VARBINARY(255) (a longer value is an
 * error under the strict sql_mode, never truncated), and VARCHAR(n) keys are
 * capped at 768 characters (InnoDB's 3072-byte key limit in utf8mb4).
 */
#ifndef LS_MY_SQL_H
#define LS_MY_SQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "change.h"
#include "err.h"
#include "sbuf.h"

/* The buffer is lib/sbuf's (shared with the PostgreSQL connector); these
 * names are the ones my_* callers use. */
#define ls_mysql_buf ls_sbuf
#define ls_mysql_buf_init ls_sbuf_init
#define ls_mysql_buf_reset ls_sbuf_reset
#define ls_mysql_buf_free ls_sbuf_free
#define ls_mysql_buf_str ls_sbuf_str
#define ls_mysql_buf_room ls_sbuf_room
#define ls_mysql_putn ls_sbuf_putn
#define ls_mysql_put ls_sbuf_put
#define ls_mysql_printf ls_sbuf_printf

/* `name` with embedded backticks doubled. */
void ls_mysql_ident(struct ls_mysql_buf *b, const char *name);
/* `schema`.`name` (a PostgreSQL schema names the MySQL database). */
void ls_mysql_qualified(struct ls_mysql_buf *b, const char *schema, const char *name);
/* X'0a1b..' (X'' for n = 0). */
void ls_mysql_hex(struct ls_mysql_buf *b, const void *p, size_t n);
/* A string literal with backslash escapes ('it\'s'), valid whenever
 * NO_BACKSLASH_ESCAPES is off and the connection charset is utf8mb4 (or any
 * charset where no multibyte character contains 0x5c); the target uses the
 * client library's mysql_real_escape_string instead, this is for SQL built
 * without a connection (tests, fixed statements). */
void ls_mysql_literal(struct ls_mysql_buf *b, const char *s, size_t n);

/* ---- conninfo ------------------------------------------------------------- */

/* "host=h port=3306 user=u password=secret database=db" (also passwd=,
 * dbname=, socket=, connect_timeout=); values may be quoted with '...' or
 * "..." and backslash escapes inside, as the MySQL source's connection
 * string (my_setup.h) accepts.  Strings are owned by the struct
 * (ls_mysql_conninfo_free). */
struct ls_mysql_conninfo {
	char *host, *user, *password, *database, *socket;   /* NULL when absent */
	unsigned port;             /* 0 = default */
	unsigned connect_timeout;  /* seconds, 0 = default (10) */
};

/* Parses s; an unknown key or a bad value is an error naming the key (never
 * a value: the password is secret).  On failure *out is zeroed. */
int ls_mysql_conninfo_parse(const char *s, struct ls_mysql_conninfo *out,
			    struct ls_err *err) __attribute__((warn_unused_result));
void ls_mysql_conninfo_free(struct ls_mysql_conninfo *c);

/* ---- types and values ------------------------------------------------------ */

/* How a source value becomes a MySQL literal's content. */
enum ls_mysql_conv {
	LS_MYCONV_NONE = 0,        /* as is */
	LS_MYCONV_BOOL,            /* t/f -> 1/0 */
	LS_MYCONV_FLOAT,           /* rejects NaN, Infinity */
	LS_MYCONV_NUMERIC,         /* rejects NaN, Infinity */
	LS_MYCONV_DATE,            /* rejects infinity, BC, year > 9999 */
	LS_MYCONV_TIMESTAMP,       /* same checks, fraction kept */
	LS_MYCONV_TIMESTAMPTZ,     /* "2024-01-02 03:04:05.1+05:30" -> UTC text */
	LS_MYCONV_BYTEA,           /* "\x0a1b" -> bytes (binary) */
	LS_MYCONV_ARRAY,           /* "{1,NULL,\"a b\"}" -> JSON array text */
	/* MySQL-typed columns of a MySQL source, for text values (snapshot
	 * rows in pg-text; streamed binary values arrive as bytes already): */
	LS_MYCONV_MYBYTES,         /* binary/blob: "\x0a1b" (bytea hex) -> bytes */
	LS_MYCONV_MYBIT,           /* bit: "5" (the number) -> bytes 0x05 */
};

/* Array element rendering for LS_MYCONV_ARRAY. */
enum ls_mysql_elem { LS_MYELEM_STRING = 0, LS_MYELEM_NUMBER, LS_MYELEM_BOOL };

struct ls_mysql_coltype {
	char sql[96];              /* MySQL column type for CREATE/ALTER */
	uint8_t conv;              /* enum ls_mysql_conv */
	uint8_t elem;              /* enum ls_mysql_elem, arrays */
	bool binary;               /* converted values are bytes (X'..' literals) */
};

/* The target column type of source column c (see the table above); key
 * says the column is part of the primary key.  -1 with err ("type T is not
 * supported", "numeric precision 80 exceeds MySQL's 65") for a type it
 * cannot map; callers prefix table and column. */
int ls_mysql_coltype(const struct ls_column *c, bool key, struct ls_mysql_coltype *out,
		     struct ls_err *err) __attribute__((warn_unused_result));

/* Converts one source value's text (len bytes) for conv/elem into out
 * (appended: raw text or, for BYTEA, raw bytes).  -1 with err ("NaN cannot
 * be stored in MySQL", "bad bytea hex") when MySQL cannot hold the value;
 * callers prefix table, column and key. */
int ls_mysql_convert(uint8_t conv, uint8_t elem, const char *in, size_t len,
		     struct ls_mysql_buf *out, struct ls_err *err)
	__attribute__((warn_unused_result));

/* Canonical form of a MySQL column type for comparing: lower case, runs of
 * spaces collapsed, integer display widths dropped except tinyint(1),
 * "integer" -> "int", "numeric"/"dec"/"fixed" -> "decimal", "real" ->
 * "double", "boolean"/"bool" -> "tinyint(1)". */
void ls_mysql_type_norm(const char *type, char *out, size_t size);

/* Whether a target column of MySQL type have (information_schema
 * COLUMN_TYPE) holds every value of MySQL type want: the same type, or a
 * widening (integer sizes with the same signedness, decimal with no fewer
 * integer and fraction digits, float -> double, char/varchar -> longer
 * varchar or text, text/blob sizes, datetime/time precision, json ->
 * longtext since MariaDB stores JSON as LONGTEXT). */
bool ls_mysql_type_compatible(const char *want, const char *have);

/* Whether a MySQL type text is safe to paste into DDL: letters, digits, _
 * space ( ) , and complete single-quoted strings (enum/set members) only. */
bool ls_mysql_type_safe(const char *type);

/* ---- PostgreSQL COPY text ---------------------------------------------------- */

/* Splits one COPY text line (without its newline) into fields, unescaping
 * each (\b \f \n \r \t \v \\ \NNN octal \xHH, any other \c -> c) into buf.
 * For field i, off[i]/len[i] locate it in buf->data; len[i] = SIZE_MAX for
 * \N (NULL).  Returns the number of fields, or -1 with err when there are
 * more than max. */
int ls_mysql_pgtext_fields(const char *line, size_t n, struct ls_mysql_buf *buf,
			   size_t *off, size_t *len, int max, struct ls_err *err)
	__attribute__((warn_unused_result));

/* ---- DDL ------------------------------------------------------------------------ */

/* CREATE TABLE IF NOT EXISTS `schema`.`name` (cols, PRIMARY KEY (keys))
 * ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=collate; no PRIMARY KEY for
 * REPLICA IDENTITY FULL (rows may repeat).  The collation should be binary
 * (the target uses utf8mb4_nopad_bin on MariaDB, utf8mb4_bin on MySQL) so
 * that keys differing in case stay distinct, as on the source.  -1 with err
 * naming table and column for an unmappable or unsafe type. */
int ls_mysql_create_table(struct ls_mysql_buf *b, const struct ls_relation *rel,
			  const char *collate, struct ls_err *err)
	__attribute__((warn_unused_result));

/* Appends to b the ALTER TABLE statements that turn a table shaped like old
 * into one shaped like new (same table; columns matched by name; a column
 * that vanished where a new one of the same type appeared at the same
 * position is a rename, so its data survives).  Each statement ends with a
 * NUL byte: *nstmts of them, in the order renames, drops, type changes,
 * adds.  mariadb adds IF [NOT] EXISTS to ADD/DROP COLUMN (MySQL has no such
 * clause), so a replayed step is harmless.  descr gets a "; "-separated
 * human description ("column c added (integer)", "column d dropped",
 * "column c type integer -> bigint", "column a renamed to b").  -1 with err
 * when the key columns changed (not done automatically: the data may not
 * fit a new primary key) or a type cannot be mapped. */
int ls_mysql_ddl(struct ls_mysql_buf *b, struct ls_mysql_buf *descr,
		 const struct ls_relation *old, const struct ls_relation *new, bool mariadb,
		 int *nstmts, struct ls_err *err) __attribute__((warn_unused_result));

#endif
