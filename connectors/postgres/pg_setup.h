/* pg_setup — everything the PostgreSQL source does once, before streaming:
 * readiness checks, table selection, the publication and the slot.
 *
 * These calls block (they run at start, before the loop streams anything)
 * and work on a caller-owned ordinary libpq connection, except the slot,
 * which opens its own replication connection (replication=database).
 *
 * Error messages name what is wrong and how to fix it; they carry libpq's
 * server message but never the conninfo (it may hold a password).
 */
#ifndef LS_PG_SETUP_H
#define LS_PG_SETUP_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "err.h"
#include "change.h"

/* ---- LSNs ------------------------------------------------------------------- */

#define LS_PG_LSN_TEXT_MAX 24          /* "FFFFFFFF/FFFFFFFF" + NUL */

/* Parses PostgreSQL's "X/X" notation; returns 0, or -1 when malformed. */
int ls_pgsetup_lsn_parse(const char *text, uint64_t *lsn);
/* Writes "X/X" into out (at least LS_PG_LSN_TEXT_MAX bytes); returns out. */
char *ls_pgsetup_lsn_format(uint64_t lsn, char *out);

/* ---- table selection --------------------------------------------------------- */

struct ls_pg_column {
	char *name;                /* owned */
	char *type_name;           /* owned; format_type(), e.g. "numeric(10,2)" */
	uint32_t type_oid;
	int32_t typmod;            /* -1 when none */
	bool key;                  /* part of the replica identity (see below) */
	bool not_null;
};

struct ls_pg_table {
	char *schema;              /* owned */
	char *name;                /* owned */
	uint32_t oid;
	char replident;            /* pg_class.relreplident: 'd' 'i' 'f' 'n' */
	bool partitioned;          /* a partitioned table (published via its root) */
	bool has_identity;         /* replica identity usable for UPDATE/DELETE */
	int ncols;
	struct ls_pg_column *cols; /* owned; attnum order, no dropped or generated
	                              columns (pgoutput does not send those) */
	double est_rows;           /* reltuples (sum over partitions), 0 if unknown */
	int64_t size_bytes;        /* pg_table_size (sum over partitions) */
};

/* Key columns: the primary key for REPLICA IDENTITY DEFAULT, the chosen
 * index for USING INDEX, and for FULL the primary key if there is one, else
 * every column (as pgoutput flags them). */

struct ls_pg_tables {
	int n;
	struct ls_pg_table *t;     /* owned, n entries, sorted by schema, name */
};

/* Resolves include/exclude patterns against the catalog and fills out (which
 * the caller releases with ls_pgsetup_tables_free, also on failure).
 *
 * Patterns are comma-separated "schema.table" with '*' matching any run of
 * characters, compared case-sensitively with the catalog names (unquoted SQL
 * names are lower case there): "public.*", "sales.order_*".  exclude may be
 * NULL.  Ordinary and partitioned tables are candidates; partitions (their
 * root covers them), temporary tables and the system schemas (pg_catalog,
 * information_schema, pg_toast*, pg_temp*) never are.  A pattern without '*'
 * that matches no table is an error naming it, as is an empty selection. */
int ls_pgsetup_select_tables(PGconn *conn, const char *include,
	const char *exclude, struct ls_pg_tables *out, struct ls_err *err)
	__attribute__((warn_unused_result));
void ls_pgsetup_tables_free(struct ls_pg_tables *tables);

/* Finds "schema.name" in tables; NULL when absent. */
const struct ls_pg_table *ls_pgsetup_tables_find(
	const struct ls_pg_tables *tables, const char *schema, const char *name);

/* Builds lockstep's relation model of one table (LS_COL_KEY from key);
 * the caller frees it with ls_relation_free.  NULL when out of memory. */
struct ls_relation *ls_pgsetup_table_relation(const struct ls_pg_table *t);

/* True when "schema.table" matches one pattern of the comma-separated list
 * (the matcher ls_pgsetup_select_tables uses; exposed for unit tests). */
bool ls_pgsetup_pattern_match(const char *patterns, const char *schema,
	const char *table);

/* ---- readiness ------------------------------------------------------------------- */

/* Checks that the server and role can run the source for these tables,
 * and fails with every problem found, each with its fix:
 *  - wal_level is logical;
 *  - the role has REPLICATION (or is superuser);
 *  - a replication slot is free (unless slot_name already exists) and a
 *    WAL sender is free (max_replication_slots, max_wal_senders);
 *  - every table (and every leaf partition of a partitioned one) has a
 *    usable replica identity: a primary key, REPLICA IDENTITY USING INDEX
 *    or FULL — publishing a table without one makes the source refuse
 *    UPDATE and DELETE on it, so this is checked before the publication
 *    exists;
 *  - the role can read every table (SELECT, for the initial copy).
 * slot_name may be NULL.  tables may be NULL (server checks only). */
int ls_pgsetup_check_ready(PGconn *conn, const struct ls_pg_tables *tables,
	const char *slot_name, struct ls_err *err)
	__attribute__((warn_unused_result));

/* ---- publication ---------------------------------------------------------------- */

enum ls_pgsetup_pub_action {
	LS_PGSETUP_PUB_UNCHANGED = 0,
	LS_PGSETUP_PUB_CREATED,
	LS_PGSETUP_PUB_ALTERED,
};

/* Makes publication `name` (e.g. "lockstep_shop") publish exactly these
 * tables, all four operations, via the partition root: creates it, or
 * brings an existing one in line (ALTER PUBLICATION ... SET TABLE / SET
 * (...)).  A FOR ALL TABLES publication of that name is an error (it cannot
 * be narrowed).  action (may be NULL) says what was done. */
int ls_pgsetup_publication_ensure(PGconn *conn, const char *name,
	const struct ls_pg_tables *tables, enum ls_pgsetup_pub_action *action,
	struct ls_err *err) __attribute__((warn_unused_result));

/* ---- slot ------------------------------------------------------------------------- */

/* An open slot: the replication connection that created (or checked) it.
 * When the slot was just created, the snapshot it exported stays usable
 * (SET TRANSACTION SNAPSHOT) only while this object lives and runs no
 * other command: free it after every snapshot worker has finished. */
struct ls_pgslot;

struct ls_pgslot_info {
	bool created;              /* true: new slot, snapshot_name is set */
	uint64_t consistent_lsn;   /* created: where the stream starts */
	char snapshot_name[64];    /* created: the exported snapshot, else "" */
	uint64_t confirmed_flush;  /* reused: the slot's confirmed_flush_lsn */
};

/* Opens a replication connection with conninfo (a borrowed libpq conninfo
 * string or URI; "replication=database" is added) and creates logical slot
 * `slot` with plugin pgoutput, exporting a snapshot; or, when the slot
 * already exists, checks it is a logical pgoutput slot of this database and
 * reports its confirmed_flush_lsn.  Slot names are [a-z0-9_], at most 63. */
struct ls_pgslot *ls_pgslot_open(const char *conninfo, const char *slot,
	struct ls_pgslot_info *info, struct ls_err *err);
/* Closes the connection; the exported snapshot ends.  NULL is a no-op. */
void ls_pgslot_free(struct ls_pgslot *s);

/* Drops slot `slot` through an ordinary connection (WAIT for a walsender
 * to let go is not done: an active slot is an error).  0 when it does not
 * exist either. */
int ls_pgsetup_slot_drop(PGconn *conn, const char *slot, struct ls_err *err);

#endif
