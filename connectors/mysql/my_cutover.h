/* my_cutover — MariaDB/MySQL's side of a cutover (lib/cutover.h), behind
 * struct ls_cutover_ops (engine "mysql").  Every call blocks on one
 * ordinary libmariadb connection (conninfo as connectors/mysql/my_sql.h
 * parses it) and runs on a libuv work thread.  Written for MariaDB 10.11;
 * MySQL 8 differences are noted where they matter.
 *
 * Application roles are accounts: "user" means every account with that
 * User (all hosts), "user@host" (quotes around either part allowed) one
 * account.  check_roles refuses a missing account, lockstep's own user name
 * (its sessions could not be told apart from lockstep's) and an account
 * holding SUPER, READ_ONLY ADMIN or ALL PRIVILEGES on *.* (it may lift a
 * fence, KILL, and ignores read_only).
 *
 * Positions.  position() is SHOW MASTER STATUS: seq = ls_binlog_pos_seq,
 * i.e. binlog file number << 32 | byte offset of the end of the binlog
 * (where the next transaction will start; the MySQL source's heartbeat
 * idle positions use the same notation); text = @@gtid_binlog_pos
 * (MySQL: Executed_Gtid_Set), or "file:offset" when that is empty or
 * longer than LS_POS_TEXT_MAX.  seq grows with every write and across a
 * binlog rotation.
 *
 * origin_exists: MariaDB has no replication origins; the forward apply
 * tags its writes with a session server_id derived from the origin name,
 * so this checks that the connection may set its session server_id
 * (SET SESSION server_id = @@global.server_id).  When it may not, *exists
 * is false and err says why (MySQL: server_id is global only).
 *
 * Write watch: nothing is set up (watch_start only checks that the binlog
 * is on); watch_count reads SHOW BINARY LOGS and SHOW BINLOG EVENTS from
 * the position `after` (a seq as above) to the end, maps table ids from
 * Table_map events ("table_id: N (db.t)") and counts the row events
 * (Write_rows / Update_rows / Delete_rows, any version suffix; one event
 * may hold several rows) and TRUNCATE statements of the slice's tables.
 * *first is "Write_rows_v1 on db.t at file:offset".  Needs BINLOG MONITOR
 * (REPLICATION CLIENT) for SHOW BINLOG EVENTS.
 *
 * Fence, revoke (the default): first a check that changes nothing: an
 * account that can write a slice table through a global or database-level
 * grant (mysql.user, mysql.db, database wildcards included) or through a
 * role it was granted (PUBLIC included), at any level, cannot be fenced by
 * table-level revokes: LS_CUTOVER_NO naming the account, the table and the
 * grant.  Then, per account and table, the write privileges it holds at
 * table level (INSERT, UPDATE, DELETE, DROP (TRUNCATE), ALTER, DELETE
 * HISTORY; from mysql.tables_priv) and column level (INSERT (cols),
 * UPDATE (cols); mysql.columns_priv) are revoked.  A failed revoke puts
 * back what was revoked before it (nothing changed).
 *
 * Fence, read_only ([cutover] fence = read_only): SET GLOBAL read_only =
 * ON, waiting at most 10 s for running writes (lock_wait_timeout).  This
 * is server-wide: every account without READ_ONLY ADMIN (SUPER before
 * MariaDB 10.11) stops writing every table, not only the slice's and not
 * only the application roles'.  Replication threads still apply, and so
 * does lockstep's reverse apply if its account holds READ_ONLY ADMIN
 * (which it needs then).  The undo restores the previous value.
 *
 * Either way the accounts' sessions are then ended (KILL CONNECTION of the
 * information_schema.PROCESSLIST rows with their user name, not this
 * connection; the processlist does not show which host entry a session
 * matched, so "user@host" ends every session of that user) and waited for,
 * 10 s at most.  Needs CONNECTION ADMIN (or SUPER) and GRANT OPTION
 * (lockstep's account is normally root-like).
 *
 * Undo text: one statement per line, each ending in ";" (GRANT ... ON
 * `db`.`t` TO 'user'@'host'; or SET GLOBAL read_only = OFF;), which
 * unfence runs line by line (every line is tried; the first failure is
 * reported).  Names holding a newline are refused by the fence.
 *
 * Sequences: AUTO_INCREMENT counters.  For each slice table with an
 * auto_increment column, information_schema.TABLES.AUTO_INCREMENT on
 * `from` (the next id it would hand out) raises the `to` table's counter
 * with ALTER TABLE ... AUTO_INCREMENT = N, never lowering it; name "db.t",
 * owner "db.t.col", value N, is_called false.  LS_CUTOVER_NO when the
 * table or its auto_increment column is missing on `to`.  [cutover]
 * sequences names MariaDB SEQUENCE objects ("db.s", or "s" in the
 * connection's database): `from`'s next_not_cached_value is set on `to`
 * with SETVAL(s, value, 0) (which never moves a sequence back); a CYCLE
 * sequence, a name that is not a sequence, one missing on `to`, or any
 * name on MySQL (no sequences) is LS_CUTOVER_NO.
 *
 * Reverse: MariaDB needs no slot nor publication: reverse_prepare gives
 * the side's current position (as position()); the reverse source starts
 * from its GTID text.  reverse_drop has nothing to drop.
 *
 * Messages name the server as host:port, never the conninfo or password.
 */
#ifndef LS_MY_CUTOVER_H
#define LS_MY_CUTOVER_H

#include "cutover.h"

extern const struct ls_cutover_ops ls_my_cutover_ops;

#endif
