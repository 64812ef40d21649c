/* my_rows — a pure decoder of MariaDB/MySQL row-based binlog events into
 * lockstep's change model.
 *
 * Input is one binlog event of type TABLE_MAP (19), WRITE/UPDATE/DELETE_ROWS
 * v1 (23/24/25, what MariaDB 10.11 writes) or v2 (30/31/32), either
 *   - ls_myr_decode: the event body, i.e. the bytes after the 19-byte common
 *     header and without the trailing 4-byte CRC32 when binlog_checksum is
 *     on (what libmariadb's MARIADB_RPL_EVENT raw buffer holds after those
 *     are cut off), with the type byte from the header passed separately; or
 *   - ls_myr_decode_event: a whole event as it is in a binlog file (header,
 *     body and, when checksum is true, the CRC32, which is verified).
 * The decoder does no I/O and never uses libmariadb's row extraction (which
 * in Connector/C 3.3 misreads unsigned, ENUM and tables without metadata).
 * Table ids are 6 bytes (the post-header length of every server since 5.1).
 *
 * State: a cache of table maps keyed by table id, at most max_tables entries;
 * when full, the least recently used entry is evicted (the server re-sends a
 * table's map before its rows in every transaction, so eviction costs only
 * the caller's catalog lookup for it).
 *
 * Types and metadata come from the TABLE_MAP event.  Its optional fields
 * (binlog_row_metadata=MINIMAL: signedness, charsets, geometry type; FULL:
 * also column names, ENUM/SET members, primary key) are used when present
 * and never required: the caller may give a struct ls_myr_table_info from
 * information_schema, which completes or overrides them.  What is still
 * unknown falls back to: integers and decimals signed, strings text,
 * ENUM/SET as numbers, columns named "@1", "@2", ... (as mariadb-binlog
 * does), no key (replica identity FULL).  ls_myr_missing() says which of
 * these fallbacks a table uses.
 *
 * Values (struct ls_value) are TEXT in MariaDB's canonical text, except
 * BINARY/VARBINARY/BLOB and geometry (binary charset) which are BINARY raw
 * bytes:
 *   integers     exact decimal, signed or unsigned ("18446744073709551615")
 *   DECIMAL      full precision with the declared scale ("-1234.5600")
 *   FLOAT/DOUBLE the shortest text that reads back to the same float/double
 *                ("0.1", "-3.4e+38")
 *   DATE         "YYYY-MM-DD" ("0000-00-00" for the zero date)
 *   TIME         "[-]HH:MM:SS[.f]" with as many fraction digits as the
 *                declared fsp (hours may be 3 digits, up to 838)
 *   DATETIME     "YYYY-MM-DD HH:MM:SS[.f]"
 *   TIMESTAMP    the stored seconds since the epoch shown in UTC as
 *                "YYYY-MM-DD HH:MM:SS[.f]" (0 is "0000-00-00 00:00:00"); the
 *                session time zone of the writer plays no part
 *   YEAR         "2024", "0000" for the zero year
 *   CHAR/VARCHAR/TEXT  the bytes in the column's charset (utf8mb4 passes
 *                through; no conversion); CHAR without its trailing pad spaces
 *   ENUM         the member text ("" for index 0), or the index when the
 *                members are unknown
 *   SET          members joined by "," in declaration order, or the bitmap
 *                as a number when the members are unknown
 *   BIT          the unsigned decimal number (b'101' is "5"); a MySQL target
 *                must bind it as a number, not as a string
 *   JSON         MariaDB stores JSON as LONGTEXT: text.  MySQL's binary JSON
 *                (type 245) is rejected with an error: MariaDB is the target
 *                server
 *   NULL         from the row's null bitmap
 *   UNCHANGED    columns not in the event's columns-present bitmap
 * Not supported (the row event fails with an error naming the column; the
 * map itself is accepted so other tables are unaffected): MySQL binary JSON,
 * the pre-5.0 DECIMAL, MariaDB compressed columns, and the pre-10.0 MariaDB
 * TIME/DATETIME/TIMESTAMP with fractional seconds
 * (mysql56_temporal_format=OFF; its binlog carries no fsp — detected only
 * when the caller's type name has one, e.g. "time(3)"; ALTER TABLE ... FORCE
 * converts such a table).  The fsp-0 forms of those old types are decoded.
 *
 * Every length and count is checked against the bytes that remain; errors
 * name the event type, table id (and name when known), row, column and the
 * byte offset in the input the caller gave.  Memory taken from one event is
 * bounded by a constant factor of its size.
 */
#ifndef LS_MY_ROWS_H
#define LS_MY_ROWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "change.h"
#include "err.h"

#define LS_MYR_MAX_TABLES_DEFAULT 1024u
#define LS_MYR_MAX_COLUMNS 4096u           /* MySQL's own limit */
#define LS_MYR_HEADER_LEN 19u
#define LS_MYR_CHECKSUM_LEN 4u

/* Binlog event type codes this decoder takes. */
enum ls_myr_type {
	LS_MYR_TABLE_MAP = 19,
	LS_MYR_WRITE_ROWS_V1 = 23,
	LS_MYR_UPDATE_ROWS_V1 = 24,
	LS_MYR_DELETE_ROWS_V1 = 25,
	LS_MYR_WRITE_ROWS_V2 = 30,
	LS_MYR_UPDATE_ROWS_V2 = 31,
	LS_MYR_DELETE_ROWS_V2 = 32,
};

/* Rows event flag: the last event of its statement. */
#define LS_MYR_STMT_END 0x0001u

/* What a TABLE_MAP event did to the cache.  SAME (the common case: every
 * transaction re-sends its maps) keeps the caller's table info. */
enum ls_myr_map_change {
	LS_MYR_MAP_NEW = 1,        /* table id not cached */
	LS_MYR_MAP_SAME,           /* byte-identical to the cached map */
	LS_MYR_MAP_CHANGED,        /* replaced; the table info was dropped */
};

/* Fallbacks a table's relation uses (ls_myr_missing). */
#define LS_MYR_MISSING_NAMES 0x01      /* some column named "@N" */
#define LS_MYR_MISSING_SIGNEDNESS 0x02 /* numeric columns assumed signed */
#define LS_MYR_MISSING_CHARSET 0x04    /* string columns assumed text */
#define LS_MYR_MISSING_MEMBERS 0x08    /* ENUM/SET values as numbers */
#define LS_MYR_MISSING_KEY 0x10        /* no key columns known */

/* One column as the catalog describes it (information_schema.COLUMNS). */
struct ls_myr_col_info {
	const char *name;          /* NULL: the map's name or "@N" */
	const char *type_name;     /* e.g. "decimal(10,2) unsigned"; NULL: derived */
	int8_t is_unsigned;        /* 1, 0, or -1 unknown (map's signedness) */
	int8_t is_binary;          /* strings: 1 binary charset, 0 text, -1 unknown */
	int8_t is_key;             /* 1, 0, or -1 unknown (map's primary key) */
	uint32_t nmembers;         /* ENUM/SET members, in order; 0 unknown */
	const char *const *members;
};

/* A table as the catalog describes it; ncols must equal the map's column
 * count (a mismatch means the catalog and the binlog disagree: DDL ran in
 * between).  Everything is copied by ls_myr_set_table_info. */
struct ls_myr_table_info {
	uint32_t relid;            /* ls_relation.id to use; 0: the table id
				    * (its low 32 bits: ls_relation ids are
				    * 32-bit, table ids 48-bit; a server
				    * reaches 2^32 table opens only after a
				    * very long uptime, and a connector that
				    * wants stable ids gives its own) */
	uint16_t ncols;
	const struct ls_myr_col_info *cols;
};

/* One decoded event.  rel is borrowed from the decoder's cache: valid until
 * a later TABLE_MAP event or ls_myr_set_table_info replaces or evicts that
 * table, or ls_myr_free.  changes and everything in them are borrowed from
 * the arena passed to the decode call (valid until it is reset). */
struct ls_myr_event {
	uint8_t type;              /* enum ls_myr_type */
	uint64_t table_id;
	uint16_t flags;            /* the event's flags (LS_MYR_STMT_END) */
	const struct ls_relation *rel; /* NULL only for a rows event with no
					* rows whose table is not mapped (servers
					* send such events to end a statement) */
	uint8_t map_change;        /* TABLE_MAP: enum ls_myr_map_change */
	/* Rows events: one change per row, in order.  INSERT: new_tup.
	 * UPDATE: old_tup (LS_OLD_FULL with the whole before image; LS_OLD_KEY
	 * when the before image lacks non-key columns, which are then
	 * UNCHANGED) and new_tup.  DELETE: old_tup, the same way. */
	uint32_t nchanges;
	struct ls_change *changes;
};

struct ls_myr;

/* A decoder caching at most max_tables maps (0: LS_MYR_MAX_TABLES_DEFAULT).
 * NULL when out of memory. */
struct ls_myr *ls_myr_new(unsigned max_tables);
void ls_myr_free(struct ls_myr *d);   /* NULL is a no-op */

/* Decodes one event body (see the top of this file) of the given type into
 * *ev.  Returns 0, or -1 with err set; on failure the cache is as it was
 * (the arena may hold garbage until reset). */
int ls_myr_decode(struct ls_myr *d, unsigned type, const void *body, size_t len,
		  struct ls_arena *arena, struct ls_myr_event *ev,
		  struct ls_err *err) __attribute__((warn_unused_result));

/* Decodes a whole event: checks the header's event_size against len,
 * verifies and strips the CRC32 when checksum is true, then as
 * ls_myr_decode (byte offsets in errors count from the event's start). */
int ls_myr_decode_event(struct ls_myr *d, const void *event, size_t len,
			bool checksum, struct ls_arena *arena,
			struct ls_myr_event *ev, struct ls_err *err)
	__attribute__((warn_unused_result));

/* True for the event types ls_myr_decode takes. */
bool ls_myr_handles(unsigned type);

/* Completes the cached map of table_id with the catalog's description and
 * rebuilds its relation (the previous relation pointer becomes invalid).
 * info is copied.  Returns 0, or -1 when the table is not mapped, the column
 * counts differ, a member list is too long for the column, or memory runs
 * out. */
int ls_myr_set_table_info(struct ls_myr *d, uint64_t table_id,
			  const struct ls_myr_table_info *info, struct ls_err *err)
	__attribute__((warn_unused_result));

/* The cached relation of table_id, or NULL.  Borrowed, see above. */
const struct ls_relation *ls_myr_relation(const struct ls_myr *d, uint64_t table_id);

/* LS_MYR_MISSING_* bits for table_id (0 when nothing is missing or the
 * table is not mapped). */
unsigned ls_myr_missing(const struct ls_myr *d, uint64_t table_id);

/* Writes ev as one line per table map or row change (the golden test
 * format).  Long values are shortened to a prefix, their length and a
 * hash.  Returns 0, or -1 on a write error. */
int ls_myr_event_print(FILE *f, const struct ls_myr_event *ev);

#endif
