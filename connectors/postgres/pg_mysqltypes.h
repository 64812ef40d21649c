/* pg_mysqltypes — MySQL/MariaDB-typed relations on the PostgreSQL target:
 * the MySQL -> PostgreSQL type mapping and the value conversions it needs.
 *
 * A MySQL source hands relations whose type names are COLUMN_TYPE text
 * ("int(10) unsigned", "datetime(6)", "enum('a','b')") and whose type_oid
 * is the MYSQL_TYPE_* code.  A column is MySQL-typed when its type name
 * starts with a MySQL type word and type_oid is that word's MYSQL_TYPE
 * code: PostgreSQL's OIDs of the names both engines spell alike ("bigint"
 * 20, "text" 25, "date" 1082, "bit(8)" 1560, "json" 114) never equal those
 * codes, so a PostgreSQL source's relation is never mistaken for one.
 *
 * The mapping (README "Types across engines" documents it for operators):
 *
 *   tinyint[(1)] [unsigned]    smallint
 *   smallint                   smallint      unsigned: integer
 *   mediumint [unsigned]       integer
 *   int                        integer       unsigned: bigint
 *   bigint                     bigint        unsigned: numeric(20,0)
 *   decimal(p,s) [unsigned]    numeric(p,s)
 *   float / double             real / double precision
 *   bit(n)                     bigint (n <= 63), numeric(20,0) (n = 64);
 *                              the value is the number (b'101' is 5)
 *   char(n), varchar(n)        character varying(n)  (MySQL drops CHAR pad)
 *   tinytext .. longtext       text
 *   binary, varbinary, *blob   bytea         (values arrive as raw bytes)
 *   geometry types             bytea         (MySQL's internal WKB)
 *   enum, set                  text          (member text, "a,b" for sets)
 *   json                       jsonb
 *   date                       date          zero dates: error
 *   datetime(p)                timestamp(p) without time zone; zero: error
 *   timestamp(p)               timestamp(p) with time zone (values are
 *                              UTC, "+00" is appended); zero: error
 *   time(p)                    interval      (MySQL TIME spans +-838 h)
 *   year                       smallint      (0 for the zero year)
 *
 * Anything else (MariaDB's uuid/inet4/inet6, MySQL 8 vector) is an error
 * naming the column.  A zero date or a date with a zero month or day
 * ("0000-00-00", "2024-00-10") has no PostgreSQL value: the conversion
 * fails with an error naming table, column and key, never a silent NULL.
 *
 * Pure: no libpq, no I/O.  Each object is used by one thread at a time.
 */
#ifndef LS_PG_MYSQLTYPES_H
#define LS_PG_MYSQLTYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "change.h"
#include "err.h"

/* How a MySQL value's text becomes PostgreSQL input. */
enum ls_pgmy_conv {
	LS_PGMY_NONE = 0,          /* as is */
	LS_PGMY_DATE,              /* zero dates rejected */
	LS_PGMY_DATETIME,          /* zero dates rejected */
	LS_PGMY_TIMESTAMP,         /* zero rejected; "+00" appended (UTC) */
};

#define LS_PGMY_TYPE_MAX 96

struct ls_pgmy_type {
	char pg[LS_PGMY_TYPE_MAX]; /* format_type() spelling */
	uint8_t conv;              /* enum ls_pgmy_conv */
};

/* Whether c carries a MySQL type (see the top of this file). */
bool ls_pgmy_is_mysql_column(const struct ls_column *c);
/* Whether any column of r does. */
bool ls_pgmy_is_mysql_relation(const struct ls_relation *r);

/* What a MySQL source sends back for PostgreSQL column col: the MySQL
 * column lockstep makes for it (my_sql.h), mapped back, into *back; -1 with
 * err when col would not take it (arrays travel as JSON text). */
int ls_pgmy_way_back(const struct ls_column *col, struct ls_pgmy_type *back,
		     struct ls_err *err);

/* Whether a column of PostgreSQL type have takes what a MySQL source sends
 * for the column mapped to PostgreSQL type want, because have's own MySQL
 * mapping (my_sql.h) maps back to want: a boolean fed from TINYINT(1), a
 * timestamptz from DATETIME(6) (UTC), a uuid from CHAR(36) — the way back
 * of values that went the other way.  A value have cannot read (a TINYINT
 * 5) still fails its change, by name. */
bool ls_pgmy_takes_back(const char *have, const char *want);

/* Maps one MySQL COLUMN_TYPE.  -1 with err ("type X has no PostgreSQL
 * mapping") when it cannot. */
int ls_pgmy_type(const char *mysql_type, struct ls_pgmy_type *out, struct ls_err *err)
	__attribute__((warn_unused_result));

/* A copy of rel with PostgreSQL type names (type_oid 0, typmod -1) and,
 * when convs is non-NULL, a malloc'd array of rel->ncols conversions in
 * *convs.  NULL with err naming table and column when a type cannot be
 * mapped or memory runs out. */
struct ls_relation *ls_pgmy_relation(const struct ls_relation *rel, uint8_t **convs,
				     struct ls_err *err);

/* Checks and converts one value's text (len bytes) for conv, appending the
 * PostgreSQL input text to a malloc'd buffer *out (of *cap bytes, grown as
 * needed; NUL-terminated), *outlen its length.  -1 with err ("MySQL zero
 * date ... has no PostgreSQL value") on a value PostgreSQL cannot hold;
 * callers prefix table, column and key. */
int ls_pgmy_value(uint8_t conv, const char *in, size_t len, char **out, size_t *cap,
		  size_t *outlen, struct ls_err *err) __attribute__((warn_unused_result));

/* ---- the apply side ---------------------------------------------------------------- */

/* Keeps the mapped relation of each MySQL relation seen (by id) and
 * converts changes. */
struct ls_pgmy;

struct ls_pgmy *ls_pgmy_new(void);        /* NULL when out of memory */
void ls_pgmy_free(struct ls_pgmy *m);     /* NULL is a no-op */

/* rel itself when it is not MySQL-typed; else its mapped copy, owned by m
 * and equal (ls_relation_equal) for equal inputs, valid until the next call
 * with a changed definition of the same id or ls_pgmy_free.  NULL with err
 * when a type cannot be mapped. */
const struct ls_relation *ls_pgmy_map(struct ls_pgmy *m, const struct ls_relation *rel,
				      struct ls_err *err);

/* Converts ch, a change of MySQL-typed src (as given to ls_pgmy_map), into
 * *out: ch itself when no value needs converting, else a copy whose values
 * live in m until the next call.  -1 with err naming table, column and key
 * for a value PostgreSQL cannot hold. */
int ls_pgmy_change(struct ls_pgmy *m, const struct ls_relation *src, const struct ls_change *ch,
		   const struct ls_change **out, struct ls_err *err)
	__attribute__((warn_unused_result));

/* ---- the snapshot side ---------------------------------------------------------------- */

/* Converts one table's COPY text (pg-text lines, split anywhere) on a copy
 * session.  Lines of relations that need no conversion pass through. */
struct ls_pgmy_copy;

struct ls_pgmy_copy *ls_pgmy_copy_new(void);      /* NULL when out of memory */
void ls_pgmy_copy_free(struct ls_pgmy_copy *c);   /* NULL is a no-op */

/* Starts a table: *mapped (owned by c, valid until the next begin or free)
 * is what to give the PostgreSQL copy session: rel itself when it is not
 * MySQL-typed.  -1 with err like ls_pgmy_relation. */
int ls_pgmy_copy_begin(struct ls_pgmy_copy *c, const struct ls_relation *rel,
		       const struct ls_relation **mapped, struct ls_err *err)
	__attribute__((warn_unused_result));
/* Feeds data; *out, *outlen (valid until the next call) receive the
 * converted complete lines (a partial line waits for the rest).  -1 with
 * err naming table, column, key and line for a value PostgreSQL cannot
 * hold or a line with the wrong number of fields. */
int ls_pgmy_copy_data(struct ls_pgmy_copy *c, const char *data, size_t len,
		      const char **out, size_t *outlen, struct ls_err *err)
	__attribute__((warn_unused_result));
/* The table ends: a last line without its newline is converted into
 * *out, *outlen (often empty). */
int ls_pgmy_copy_end(struct ls_pgmy_copy *c, const char **out, size_t *outlen,
		     struct ls_err *err) __attribute__((warn_unused_result));

#endif
