#include "daemon/engines.h"

#include "connectors/kafka/kbuf.h"
#include "connectors/mysql/my_drift.h"
#include "connectors/mysql/my_source.h"
#include "connectors/mysql/my_tgt.h"
#include "connectors/postgres/pg_drift.h"
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

const struct ls_pipeline_engines ls_daemon_engines = {
	.source = source_for,
	.target = target_for,
	.kafka_buffer = ls_kbuf_new,
	.drift_source = drift_source_for,
};
