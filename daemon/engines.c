#include "daemon/engines.h"

#include "connectors/kafka/kbuf.h"
#include <string.h>

#include "connectors/mysql/my_drift.h"
#include "connectors/mysql/my_source.h"
#include "connectors/mysql/my_sql.h"
#include "connectors/mysql/my_tgt.h"
#include "connectors/postgres/pg_drift.h"
#include "connectors/postgres/pg_mysqltypes.h"
#include "connectors/postgres/pg_source.h"
#include "connectors/postgres/pg_tgt.h"

static const struct ls_source_ops *source_for(enum ls_engine e)
{
	return e == LS_ENGINE_POSTGRES ? &ls_pg_source_ops
	       : e == LS_ENGINE_MYSQL ? &ls_my_source_ops : NULL;
}

static const struct ls_target_ops *target_for(enum ls_engine e)
{
	return e == LS_ENGINE_POSTGRES ? &ls_pg_target_ops
	       : e == LS_ENGINE_MYSQL ? &ls_my_target_ops : NULL;
}

static const struct ls_drift_source_ops *drift_source_for(enum ls_engine e)
{
	return e == LS_ENGINE_POSTGRES ? &ls_pg_drift_source_ops
	       : e == LS_ENGINE_MYSQL ? &ls_my_drift_source_ops : NULL;
}

/* col (PostgreSQL) -> its MySQL column -> back: does col take it? */
static int pg_round_trip(const struct ls_column *col, struct ls_err *err)
{
	struct ls_pgmy_type back;
	return ls_pgmy_way_back(col, &back, err);
}

/* col (MySQL) -> its PostgreSQL column -> back: does col take it? */
static int my_round_trip(const struct ls_column *col, struct ls_err *err)
{
	struct ls_pgmy_type pt;
	if (ls_pgmy_type(col->type_name, &pt, err) < 0)
		return -1;
	struct ls_column pc = *col;
	pc.type_name = pt.pg;
	pc.typmod = -1;
	struct ls_mysql_coltype back;
	if (ls_mysql_coltype(&pc, (col->flags & LS_COL_KEY) != 0, &back, err) < 0)
		return -1;
	if (!ls_mysql_type_compatible(back.sql, col->type_name))
		return ls_err_set(err, false, "its PostgreSQL column (%s) comes back as %s, which a "
				  "%s column does not take", pt.pg, back.sql, col->type_name);
	return 0;
}

static int round_trip(const struct ls_relation *rel, enum ls_engine from, enum ls_engine to,
		      struct ls_err *err)
{
	if (from == to)
		return 0;
	for (uint16_t i = 0; i < rel->ncols; i++) {
		const struct ls_column *col = &rel->cols[i];
		if ((from == LS_ENGINE_POSTGRES ? pg_round_trip(col, err)
						: my_round_trip(col, err)) < 0)
			return ls_err_prefix(err, "%s.%s column %s", rel->schema, rel->name,
					     col->name);
	}
	return 0;
}

const struct ls_pipeline_engines ls_daemon_engines = {
	.round_trip = round_trip,
	.source = source_for,
	.target = target_for,
	.kafka_buffer = ls_kbuf_new,
	.drift_source = drift_source_for,
};
