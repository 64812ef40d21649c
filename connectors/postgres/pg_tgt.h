/* pg_tgt — the PostgreSQL target behind the pipeline's ls_target_ops
 * (lib/target.h): the apply side is pg_target, snapshot copy sessions are
 * pg_copy connections of their own.
 *
 * open() takes the target's config (conninfo, create_tables, ddl,
 * batch_rows, batch_ms), the pipeline name and on_commit.  prepare_table()
 * hands the relation to pg_target, which creates or checks the table as on
 * the first change of a relation.  copy_open() may be called from several
 * snapshot worker threads at once on the same ls_target: it only reads
 * settings fixed at open.  stats().copy_rows counts snapshot rows committed
 * by all copy sessions (updated atomically).
 */
#ifndef LS_PG_TGT_H
#define LS_PG_TGT_H

#include "target.h"

extern const struct ls_target_ops ls_pg_target_ops;

#endif
