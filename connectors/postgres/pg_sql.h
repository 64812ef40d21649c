/* pg_sql — building PostgreSQL SQL text safely: identifier and literal
 * quoting, COPY text-format escaping, bytea hex, type-name checks and the
 * column diff between two relation definitions that drives DDL.
 *
 * Pure: no libpq, no I/O, so unit tests link it directly.  Everything appends
 * to a growable ls_pgsql_buf; an allocation failure sets buf->oom and later
 * appends become no-ops, so callers check once at the end.
 */
#ifndef LS_PG_SQL_H
#define LS_PG_SQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "change.h"
#include "err.h"
#include "sbuf.h"

/* The buffer is lib/sbuf's (shared with the MySQL connector); these names
 * are the ones pg_* callers use. */
#define ls_pgsql_buf ls_sbuf
#define ls_pgsql_buf_init ls_sbuf_init
#define ls_pgsql_buf_reset ls_sbuf_reset
#define ls_pgsql_buf_free ls_sbuf_free
#define ls_pgsql_buf_str ls_sbuf_str
#define ls_pgsql_putn ls_sbuf_putn
#define ls_pgsql_put ls_sbuf_put
#define ls_pgsql_printf ls_sbuf_printf

/* Appends name as a quoted identifier: always double-quoted, embedded
 * double quotes doubled ("a""b"), so case and reserved words survive. */
void ls_pgsql_ident(struct ls_pgsql_buf *b, const char *name);
/* "schema"."name" */
void ls_pgsql_qualified(struct ls_pgsql_buf *b, const char *schema, const char *name);
/* Appends a string literal: 'it''s'; a value containing a backslash is
 * written E'a\\b' so it reads the same whatever standard_conforming_strings
 * says. */
void ls_pgsql_literal(struct ls_pgsql_buf *b, const char *s, size_t n);
/* Appends n bytes escaped for COPY ... FROM STDIN text format: backslash,
 * tab, newline and carriage return become \\ \t \n \r (the delimiter, row
 * end and escape characters); every other byte passes unchanged. */
void ls_pgsql_copy_escape(struct ls_pgsql_buf *b, const char *s, size_t n);
/* Appends n bytes as one element of a text-format array literal ('{a,b}'):
 * double-quoted, with " and \ escaped by a backslash, so any text (commas,
 * braces, spaces, the word NULL) reads back unchanged.  A SQL NULL element
 * is the bare word NULL, which callers append themselves. */
void ls_pgsql_array_elem(struct ls_pgsql_buf *b, const char *s, size_t n);
/* Appends bytea hex input: \x0a1b... (no quoting or COPY escaping). */
void ls_pgsql_bytea_hex(struct ls_pgsql_buf *b, const void *p, size_t n);

/* Whether a source type name ("numeric(10,2)", "integer[]",
 * "public.\"My Type\"", "timestamp(3) with time zone") is safe to paste into
 * DDL: letters, digits, _ $ space ( ) , . [ ] and complete double-quoted
 * identifiers only, parentheses balanced.  Rejects ; ' -- and comments. */
bool ls_pgsql_type_safe(const char *type_name);

/* Canonical form for comparing type names: lower case outside quotes,
 * runs of spaces collapsed, "pg_catalog." dropped, common aliases (int4,
 * varchar, timestamptz, ...) mapped to format_type()'s spelling.  Writes at
 * most size bytes (NUL-terminated). */
void ls_pgsql_type_norm(const char *type_name, char *out, size_t size);

/* Whether a target column of type have can hold every value of a source
 * column of type want, both as format_type() spells them: same type, or a
 * widening (smallint -> integer -> bigint, varchar(n) -> varchar(m >= n) /
 * varchar / text, char(n) -> text, numeric(p,s) -> numeric, real ->
 * double precision). */
bool ls_pgsql_type_compatible(const char *want, const char *have);

/* ---- DDL diff ------------------------------------------------------------ */

enum ls_pgsql_ddl_kind {
	LS_PGSQL_ADD_COLUMN = 'A',
	LS_PGSQL_DROP_COLUMN = 'D',
	LS_PGSQL_ALTER_TYPE = 'T',
	LS_PGSQL_RENAME_COLUMN = 'R',
};

struct ls_pgsql_ddl_step {
	uint8_t kind;              /* enum ls_pgsql_ddl_kind */
	int old_col;               /* index in old, -1 for ADD */
	int new_col;               /* index in new, -1 for DROP */
};

/* Computes the statements that turn a table shaped like old into one shaped
 * like new (same table; columns matched by name).  A column that vanished
 * where a new one of the same type appeared at the same position counts as a
 * rename, not drop + add, so its data survives.  Order: renames, drops,
 * type changes, adds.  steps has room for old->ncols + new->ncols entries.
 * Returns the number of steps (0 = same shape), or -1 with err when the key
 * columns changed (ignored when either side is REPLICA IDENTITY FULL, where
 * pgoutput flags every column as key) (not done automatically: it needs a unique index the data
 * may not satisfy). */
int ls_pgsql_ddl_diff(const struct ls_relation *old, const struct ls_relation *new,
		      struct ls_pgsql_ddl_step *steps, struct ls_err *err)
	__attribute__((warn_unused_result));

/* Appends the ALTER TABLE statement for one step (idempotent where
 * PostgreSQL allows: ADD COLUMN IF NOT EXISTS, DROP COLUMN IF EXISTS).
 * Returns -1 with err when new's type name is not safe (ls_pgsql_type_safe). */
int ls_pgsql_ddl_sql(struct ls_pgsql_buf *b, const struct ls_relation *old,
		     const struct ls_relation *new, const struct ls_pgsql_ddl_step *s,
		     struct ls_err *err) __attribute__((warn_unused_result));

/* Appends a human description of a step: "column c added (integer)",
 * "column c dropped", "column c type integer -> bigint",
 * "column a renamed to b". */
void ls_pgsql_ddl_describe(struct ls_pgsql_buf *b, const struct ls_relation *old,
			   const struct ls_relation *new, const struct ls_pgsql_ddl_step *s);

/* Appends CREATE TABLE IF NOT EXISTS schema.name (cols..., PRIMARY KEY (keys))
 * for rel (no PRIMARY KEY clause when rel has no key columns or is REPLICA
 * IDENTITY FULL: pgoutput flags all its columns and rows may repeat).  Returns -1
 * with err naming the column when a type name is not safe. */
int ls_pgsql_create_table(struct ls_pgsql_buf *b, const struct ls_relation *rel,
			  struct ls_err *err) __attribute__((warn_unused_result));

#endif
