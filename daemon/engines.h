/* engines — the connectors this build of lockstepd wires into pipelines. */
#ifndef LS_DAEMON_ENGINES_H
#define LS_DAEMON_ENGINES_H

#include "pipeline.h"

extern const struct ls_pipeline_engines ls_daemon_engines;

#endif
