/* my_tgt — the MySQL/MariaDB target behind lib/target.h's ops table.
 *
 * A thin adapter over my_target.h: open() takes the target's conninfo
 * ("host= port= user= password= database=", password never logged),
 * create_tables, ddl, batch_rows and batch_ms from its [target NAME]
 * section; prepare_table() is relation(); copy sessions open their own
 * connections.  copy_format is "rows": copy_data() takes rows as
 * PostgreSQL COPY text lines (tab-separated, \N for NULL, backslash
 * escapes), which is what the PostgreSQL source produces and what a MySQL
 * source feeds too.
 */
#ifndef LS_MY_TGT_H
#define LS_MY_TGT_H

#include "target.h"

extern const struct ls_target_ops ls_my_target_ops;

#endif
