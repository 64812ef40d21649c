# bench/my_pair.sh — a MariaDB source with two targets for the my_*
# benchmarks: a MariaDB server ("dst") that replicates either natively
# (a GTID replica) or by lockstep, and a PostgreSQL server ("pgdst") that
# only lockstep can feed (MariaDB -> PostgreSQL has no native equivalent).
# Source bench/lib.sh first.
#
#   mp_setup TABLES ROWS     src, dst, pgdst and a Kafka mock; database
#                            "bench" with sysbench's TABLES x ROWS tables
#                            and a heartbeat table on all three (dst gets
#                            them by native replication from an empty
#                            binlog, pgdst by a copy); each target logs
#                            every heartbeat's arrival in bench.hb_log
#   mp_sysbench CMD SECS     sysbench oltp_write_only CMD (run|prepare) on
#                            src, 4 threads; output on stdout
#   repl_start MODE          none | native | direct | kafka | mypg
#                            (MariaDB -> PostgreSQL, lockstep direct),
#                            streaming from the source's current position
#   repl_stop MODE
#   repl_pause MODE / repl_resume MODE   stop / restart consuming; the
#                            backlog waits in the source's binlog
#   hb_start / hb_stop       heartbeat UPDATE every 100 ms on the source
#                            (carrying the source's clock), and a poller
#                            noting every ~10 ms the newest heartbeat
#                            visible on the mode's target; hb_stop_writer
#                            stops the writer only
#   hb_lags T0 T1 / hb_mark / hb_wait SEQ [TIMEOUT]   as in bench/pair.sh
#   my_machine               one line: cores, CPU, memory, kernel, MariaDB
#
# Both replicators start from identical tables (snapshot = never; the
# native replica from the source's current GTID position).  Between modes
# the targets are not re-synchronised: writes made while nothing replicates
# (mode none, or the other replicator's turn on pgdst) leave different
# column values on the targets, but never a missing row, since sysbench's
# write-only load deletes and re-inserts the same ids; an update or delete
# finds its row on every target, so the apply work is the same.

MP_N=0
LSD_NAME=
MP_TGT=dst

mp_setup() {
	local t
	MP_TABLES=$1 MP_ROWS=$2
	my_start src 1 "log_bin=$LS_TMP/src/data/binlog
max_binlog_size=1G"
	# The native replica: single-threaded apply (the default), triggers
	# fire for row events so bench.hb_log sees the heartbeats.
	my_start dst 2 "slave_run_triggers_for_rbr=YES
relay_log=$LS_TMP/dst/data/relay"
	pg_start pgdst
	kafka_start 3
	msql dst "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$src_PORT,
		MASTER_USER='root', MASTER_USE_GTID=slave_pos; START SLAVE" || ls_die "CHANGE MASTER failed"
	msql src "CREATE DATABASE bench" || ls_die "CREATE DATABASE failed"
	mp_sysbench prepare 0 >"$LS_TMP/sysbench-prepare.log" 2>&1 ||
		{ tail "$LS_TMP/sysbench-prepare.log" >&2; ls_die "sysbench prepare failed"; }
	msql src "CREATE TABLE bench.hb (id INT PRIMARY KEY, seq BIGINT NOT NULL, ts DECIMAL(17,6) NOT NULL) ENGINE=InnoDB;
		INSERT INTO bench.hb VALUES (1, 0, UNIX_TIMESTAMP(NOW(6)))" || ls_die "heartbeat table failed"
	[ "$(msql dst "SELECT MASTER_GTID_WAIT('$(my_gtid src)', 600)")" = 0 ] ||
		ls_die "the native replica did not copy the initial tables"
	msql dst "STOP SLAVE" || ls_die "STOP SLAVE failed"
	# No binlog on dst: its own writes (this trigger, hb_log) stay local.
	msql_file dst <<'SQL' || ls_die "heartbeat log on dst failed"
CREATE TABLE bench.hb_log (seq BIGINT NOT NULL, ts DECIMAL(17,6) NOT NULL, KEY (seq)) ENGINE=InnoDB;
CREATE TRIGGER bench.hb_arrive AFTER UPDATE ON bench.hb FOR EACH ROW
  INSERT INTO bench.hb_log VALUES (NEW.seq, NEW.ts);
SQL
	# PostgreSQL: the types lockstep maps sysbench's columns to
	# (connectors/postgres/pg_mysqltypes.h), then the rows as they are now.
	sql pgdst postgres "CREATE DATABASE bench"
	{
		echo "CREATE SCHEMA bench;"
		for t in $(seq "$MP_TABLES"); do
			echo "CREATE TABLE bench.sbtest$t (id integer PRIMARY KEY, k integer NOT NULL DEFAULT 0,
				c character varying(120) NOT NULL DEFAULT '', pad character varying(60) NOT NULL DEFAULT '');"
		done
		echo "CREATE TABLE bench.hb (id integer PRIMARY KEY, seq bigint NOT NULL, ts numeric(17,6) NOT NULL);"
		echo "CREATE TABLE bench.hb_log (seq bigint, ts numeric(17,6));"
		echo "CREATE INDEX ON bench.hb_log (seq);"
		echo "CREATE FUNCTION bench.hb_arrive() RETURNS trigger LANGUAGE plpgsql AS
			\$\$ BEGIN INSERT INTO bench.hb_log (seq, ts) VALUES (NEW.seq, NEW.ts); RETURN NEW; END \$\$;"
		echo "CREATE TRIGGER hb_arrive AFTER INSERT OR UPDATE ON bench.hb FOR EACH ROW EXECUTE FUNCTION bench.hb_arrive();"
		echo "ALTER TABLE bench.hb ENABLE ALWAYS TRIGGER hb_arrive;"
	} | sql_file pgdst bench || ls_die "PostgreSQL schema failed"
	for t in $(seq "$MP_TABLES") hb; do
		[ "$t" = hb ] || t=sbtest$t
		msql src "SELECT * FROM bench.$t" |
			sql pgdst bench "\\copy bench.$t FROM pstdin" || ls_die "copying $t to PostgreSQL failed"
	done
	sql pgdst bench "CREATE INDEX k_1 ON bench.sbtest1 (k)" >/dev/null
	for t in $(seq 2 "$MP_TABLES"); do
		sql pgdst bench "CREATE INDEX k_$t ON bench.sbtest$t (k)" >/dev/null
	done
	sql pgdst bench "VACUUM ANALYZE" >/dev/null
}

# mp_sysbench CMD SECS [OPTS]: sysbench's write-only OLTP on src.
mp_sysbench() {
	# shellcheck disable=SC2086
	sysbench oltp_write_only --db-driver=mysql --mysql-host=127.0.0.1 \
		--mysql-port="$src_PORT" --mysql-user=root --mysql-db=bench \
		--tables="${MP_TABLES:-4}" --table-size="${MP_ROWS:-100000}" \
		--threads=4 --time="$2" --report-interval=0 ${3:-} "$1"
}

# lockstep config for MODE (direct | kafka | mypg) under pipeline NAME.
mp_lsd_conf() {
	local name=$1 mode=$2 buffer="type = direct" target
	[ "$mode" = kafka ] && buffer="type = kafka
brokers = $KAFKA_BOOTSTRAP
max_lead = 2MiB                  ; the mock keeps ~5 MiB per partition
kafka.compression.type = zstd"
	if [ "$mode" = mypg ]; then
		target="type = postgres
conninfo = $pgdst_DSN dbname=bench"
	else
		target="type = mysql
conninfo = $dst_MYDSN database=bench"
	fi
	printf '%s\n' "[pipeline]" "name = $name" "state_dir = $LS_TMP/$name" "" \
		"[source]" "type = mysql" "conninfo = $src_MYDSN database=bench" \
		"tables = bench.*" "snapshot = never" "" \
		"[buffer]" "$buffer" "" \
		"[target dst]" "$target" "create_tables = false" \
		${LS_TARGET_EXTRA:+"$LS_TARGET_EXTRA"} "" \
		"[control]" "socket = $LS_TMP/$name.sock" "" \
		"[drift]" "interval = 0" "" "[log]" "level = notice"
}

# The native replica starts at the source's current GTID position (the
# source is idle between modes), as lockstep does with snapshot = never.
mp_native_start() {
	msql dst "STOP SLAVE; SET GLOBAL gtid_slave_pos = '$(my_gtid src)'; START SLAVE" ||
		ls_die "START SLAVE failed"
}

repl_start() {
	MP_TGT=dst
	[ "$1" = mypg ] && MP_TGT=pgdst
	case $1 in
	none) return 0 ;;
	native) mp_native_start ;;
	direct|kafka|mypg)
		MP_N=$((MP_N + 1))
		LSD_NAME=mybench$MP_N
		mp_lsd_conf "$LSD_NAME" "$1" >"$LS_TMP/$LSD_NAME.conf"
		lsd_start "$LS_TMP/$LSD_NAME.conf"
		;;
	*) ls_die "unknown mode $1" ;;
	esac
	hb_wait "$(hb_mark)" 120 >/dev/null || ls_die "$1: replication did not start"
}

repl_stop() {
	case $1 in
	native) msql dst "STOP SLAVE" ;;
	direct|kafka|mypg) lsd_stop ;;
	esac
}

repl_pause() {
	repl_stop "$1"
}

# native: START SLAVE resumes from gtid_slave_pos (the relay log is
# fetched again from the source, like lockstep's reader).
repl_resume() {
	case $1 in
	native) msql dst "START SLAVE" || ls_die "START SLAVE failed" ;;
	direct|kafka|mypg) lsd_start "$LS_TMP/$LSD_NAME.conf" ;;
	esac
}

# tq SQL: a query on the current mode's target, "a b" columns.
tq() {
	if [ "$MP_TGT" = pgdst ]; then
		sql pgdst bench "$1" | tr '|' ' '
	else
		msql dst "$1" | tr '\t' ' '
	fi
}

HB_PID=
POLL_PID=
hb_start() {
	( while :; do echo "UPDATE hb SET seq = seq + 1, ts = UNIX_TIMESTAMP(NOW(6)) WHERE id = 1;"; sleep 0.1; done ) |
		mariadb -n -h 127.0.0.1 -P "$src_PORT" -u root bench >/dev/null 2>&1 &
	HB_PID=$!
	if [ "$MP_TGT" = pgdst ]; then
		( while :; do echo "SELECT coalesce(max(seq), 0), extract(epoch FROM clock_timestamp()) FROM bench.hb_log;"; sleep 0.01; done ) |
			psql -qAtX -F ' ' -h 127.0.0.1 -p "$pgdst_PORT" -U postgres -d bench >"$LS_TMP/poll.txt" 2>/dev/null &
	else
		( while :; do echo "SELECT COALESCE(MAX(seq), 0), UNIX_TIMESTAMP(NOW(6)) FROM bench.hb_log;"; sleep 0.01; done ) |
			mariadb -N -B -n -h 127.0.0.1 -P "$dst_PORT" -u root >"$LS_TMP/poll.txt" 2>/dev/null &
	fi
	POLL_PID=$!
	LS_PIDS+=("$HB_PID" "$POLL_PID")
}

# hb_stop_writer: no more heartbeats; the poller goes on, so heartbeats
# still in flight are seen (stopping both at once would drop the last
# lag's worth of them and understate the high percentiles).
hb_stop_writer() {
	[ -n "$HB_PID" ] || return 0
	kill -TERM "$HB_PID" 2>/dev/null
	wait "$HB_PID" 2>/dev/null
	HB_PID=
}

hb_stop() {
	hb_stop_writer
	[ -n "$POLL_PID" ] || return 0
	kill -TERM "$POLL_PID" 2>/dev/null
	wait "$POLL_PID" 2>/dev/null
	POLL_PID=
}

# hb_lags T0 T1: "seconds-since-T0 lag-ms" per heartbeat written in
# [T0, T1]: from its source write to the first poll that saw it.
hb_lags() {
	tq "SELECT seq, ts FROM bench.hb_log WHERE ts BETWEEN $1 AND $2 ORDER BY seq" |
	awk -v t0="$1" -v polls="$LS_TMP/poll.txt" '
		BEGIN { while ((getline l < polls) > 0) { split(l, f, /[ \t]/); n++; ps[n] = f[1]; pt[n] = f[2] } i = 1 }
		{ while (i <= n && ps[i] < $1) i++
		  if (i <= n) printf "%.2f %.1f\n", $2 - t0, (pt[i] - $2) * 1000 }'
}

hb_mark() {
	msql src "UPDATE bench.hb SET seq = seq + 1, ts = UNIX_TIMESTAMP(NOW(6)) WHERE id = 1;
		SELECT seq FROM bench.hb WHERE id = 1"
}

hb_wait() {
	local seq=$1 timeout=${2:-900} deadline ts
	deadline=$(echo "$(now) + $timeout" | bc)
	while :; do
		ts=$(tq "SELECT ts FROM bench.hb_log WHERE seq >= $seq ORDER BY seq LIMIT 1")
		[ -n "$ts" ] && { echo "$(now) - $ts" | bc; return 0; }
		[ "$(echo "$(now) > $deadline" | bc)" = 1 ] && return 1
		sleep 0.02
	done
}

# Binlog bytes the source has written so far (all files).
my_binlog_bytes() {
	msql src "SHOW BINARY LOGS" | awk '{ s += $2 } END { print s + 0 }'
}

my_machine() {
	printf '%s cores (%s), %s GiB RAM, %s, MariaDB %s, sysbench %s\n' "$(nproc)" \
		"$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)" \
		"$(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)" \
		"$(uname -sr)" "$("$MY_SERVER" --version | sed 's/.*Ver \([0-9.]*\).*/\1/')" \
		"$(sysbench --version | awk '{ print $2 }')"
}

# Median of numbers on stdin as a number with 3 decimals.
med() {
	median | awk '{ printf "%.3f\n", $1 }'
}

# ratio A B: A / B with 2 decimals, "-" when B is 0 or missing.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "" || a == "nan" || a == "-") print "-"; else printf "%.2f\n", a / b }'
}
