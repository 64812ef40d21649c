/* change — lockstep's engine-agnostic model of captured changes.
 *
 * A source connector decodes its wire format into these structures; the
 * codec carries them through the buffer; a target connector applies them.
 *
 * Values travel in the source's exact text form (PostgreSQL's output
 * functions, MySQL's canonical text), so nothing is lost to float or epoch
 * conversions.  A value is NULL, text, binary (raw bytes, e.g. a MySQL BLOB),
 * or UNCHANGED: the source did not send it (PostgreSQL's unchanged TOAST), and
 * an UPDATE must leave that column as it is on the target.
 *
 * Memory: every pointer inside an ls_change / ls_tuple / ls_value is borrowed
 * from an ls_arena that the producer of the change owns; it stays valid until
 * that arena is reset.  Relations own their strings (ls_relation_free).
 */
#ifndef LS_CHANGE_H
#define LS_CHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- arena: bump allocator for decoded changes ------------------------- */

struct ls_arena_block;
struct ls_arena {
	struct ls_arena_block *head;   /* current block; older ones chained */
	size_t used;                   /* total bytes handed out since reset */
};

void ls_arena_init(struct ls_arena *a);
/* Returns 8-byte aligned memory, or NULL when out of memory. */
void *ls_arena_alloc(struct ls_arena *a, size_t n);
/* Copies n bytes and appends a NUL (so text values are also C strings). */
char *ls_arena_memdup(struct ls_arena *a, const void *p, size_t n);
/* Forgets every allocation; keeps one block for reuse. */
void ls_arena_reset(struct ls_arena *a);
void ls_arena_free(struct ls_arena *a);

/* ---- positions ----------------------------------------------------------- */

#define LS_POS_TEXT_MAX 256

/* A source position.  seq orders source commits within one pipeline and is
 * what consumers compare to drop records they already applied (PostgreSQL:
 * the commit's end LSN; MySQL: a counter derived from binlog file and offset).
 * text is the position in the engine's own notation ("0/16B3748", a GTID set,
 * "binlog.000003:4521"); see pos.h for parsing and comparing those. */
struct ls_pos {
	uint64_t seq;
	char text[LS_POS_TEXT_MAX];
};

/* ---- relations ------------------------------------------------------------ */

#define LS_COL_KEY 0x01        /* part of the replica identity / primary key */

struct ls_column {
	char *name;                /* owned */
	char *type_name;           /* owned; source's spelling, e.g. "numeric(10,2)" */
	uint32_t type_oid;         /* PostgreSQL type OID, MySQL column type code */
	int32_t typmod;            /* PostgreSQL typmod, -1 when none */
	uint8_t flags;             /* LS_COL_* */
	/* Owned, NULL when none: the text value that rows existing when this
	 * column was added got without any row change being logged (PostgreSQL
	 * stores it as attmissingval); a target adding the column fills its
	 * existing rows with it. */
	char *fill;
};

enum ls_replident {
	LS_REPLIDENT_DEFAULT = 'd',    /* primary key */
	LS_REPLIDENT_NOTHING = 'n',
	LS_REPLIDENT_FULL = 'f',       /* whole old row identifies */
	LS_REPLIDENT_INDEX = 'i',      /* a chosen unique index */
};

struct ls_relation {
	uint32_t id;               /* source-assigned (PG relation OID, MySQL table id) */
	char *schema;              /* owned */
	char *name;                /* owned */
	uint8_t replident;         /* enum ls_replident */
	uint16_t ncols;
	struct ls_column *cols;    /* owned, ncols entries */
};

/* Allocates an empty relation with ncols zeroed columns; NULL on OOM. */
struct ls_relation *ls_relation_new(uint16_t ncols);
/* Deep copy; NULL on OOM. */
struct ls_relation *ls_relation_dup(const struct ls_relation *r);
void ls_relation_free(struct ls_relation *r);   /* NULL is a no-op */
/* True when a and b describe the same table shape (id, names, replica
 * identity, columns with names, types, typmods, key flags and fills). */
bool ls_relation_equal(const struct ls_relation *a, const struct ls_relation *b);
/* Number of key columns. */
unsigned ls_relation_nkeys(const struct ls_relation *r);

/* ---- values, tuples, changes ---------------------------------------------- */

enum ls_val_kind {
	LS_VAL_NULL = 'n',
	LS_VAL_TEXT = 't',
	LS_VAL_BINARY = 'b',
	LS_VAL_UNCHANGED = 'u',
};

struct ls_value {
	uint8_t kind;              /* enum ls_val_kind */
	uint32_t len;              /* bytes in data (TEXT, BINARY) */
	const char *data;          /* borrowed; NUL-terminated for TEXT */
};

struct ls_tuple {
	uint16_t ncols;
	struct ls_value *vals;     /* borrowed */
};

enum ls_op {
	LS_OP_INSERT = 'I',
	LS_OP_UPDATE = 'U',
	LS_OP_DELETE = 'D',
	LS_OP_TRUNCATE = 'T',
	LS_OP_MESSAGE = 'M',       /* logical message (heartbeats, drift markers) */
};

enum ls_old_kind {
	LS_OLD_NONE = 0,
	LS_OLD_KEY = 'K',          /* only key columns are set, others NULL */
	LS_OLD_FULL = 'O',         /* the whole old row (REPLICA IDENTITY FULL) */
};

#define LS_TRUNCATE_CASCADE 0x01
#define LS_TRUNCATE_RESTART_IDENTITY 0x02

struct ls_change {
	uint8_t op;                /* enum ls_op */
	uint8_t old_kind;          /* enum ls_old_kind, UPDATE and DELETE */
	uint32_t relid;            /* INSERT, UPDATE, DELETE */
	struct ls_tuple old_tup;   /* UPDATE (when sent), DELETE */
	struct ls_tuple new_tup;   /* INSERT, UPDATE */
	/* TRUNCATE */
	uint8_t truncate_flags;
	uint32_t nrelids;
	uint32_t *relids;          /* borrowed */
	/* MESSAGE */
	const char *msg_prefix;    /* borrowed, NUL-terminated */
	uint32_t msg_len;
	const char *msg_data;      /* borrowed */
};

/* ---- transactions ---------------------------------------------------------- */

struct ls_txn {
	uint64_t xid;              /* source transaction id, 0 if none */
	struct ls_pos commit;      /* position of the commit */
	int64_t commit_time_us;    /* source clock, microseconds since Unix epoch */
};

#endif
