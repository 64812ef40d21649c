# bench/lib.sh — shell functions shared by bench/demo.sh and the benchmarks:
# throwaway PostgreSQL clusters, a Kafka mock cluster and lockstepd, all on
# loopback, all under one temporary directory that a trap removes on EXIT,
# INT and TERM.  Source it, then call ls_init once.
#
#   ls_init NAME            temp dir $LS_TMP, traps, private copies of the
#                           binaries from $LS_BUILD in $LS_BIN
#   pg_start NAME [CONF]    initdb + start; sets ${NAME}_PORT, ${NAME}_DSN
#   pg_stop NAME
#   sql NAME DB SQL         psql -qAtX -v ON_ERROR_STOP=1, output on stdout
#   kafka_start [N]         ls-kafka-mock with N brokers; sets $KAFKA_BOOTSTRAP
#   lsd_start CONF          lockstepd in the background; sets $LSD_PID
#   lsd_stop                SIGTERM, wait
#   lsctl ARGS...           lockstepctl on the running daemon's socket
#   proc_cpu PID            utime+stime in seconds
#   proc_hwm_kb PID         VmHWM in kB
#
# PostgreSQL refuses to run as root: when root, the servers run as the
# "postgres" user (as tests/helpers/testpg.c does).

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
LS_BUILD=${LS_BUILD:-build}
LS_TMP=
LS_PIDS=()
LS_PGS=()
LSD_PID=
LSD_SOCK=
KAFKA_PID=
LS_CLEANED=0

ls_die() {
	echo "$(basename "$0"): $*" >&2
	exit 1
}

ls_cleanup() {
	[ "$LS_CLEANED" = 1 ] && return
	LS_CLEANED=1
	local p
	[ -n "$LSD_PID" ] && kill -TERM "$LSD_PID" 2>/dev/null
	for p in "${LS_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	[ -n "$KAFKA_PID" ] && { exec 7>&- ; kill -TERM "$KAFKA_PID" 2>/dev/null; }
	for p in "${LS_PGS[@]}"; do
		[ -d "$LS_TMP/$p/data" ] && pg_run "$PG_BIN/pg_ctl" -D "$LS_TMP/$p/data" \
			-m immediate -w stop >/dev/null 2>&1
	done
	wait 2>/dev/null
	[ -n "$LS_TMP" ] && [ -d "$LS_TMP" ] && [ -z "${LS_KEEP:-}" ] && rm -rf "$LS_TMP"
	[ -n "${LS_KEEP:-}" ] && echo "kept $LS_TMP" >&2
}

ls_on_signal() {
	trap - INT TERM
	echo >&2
	echo "interrupted: tearing down" >&2
	ls_cleanup
	exit 130
}

ls_init() {
	[ -x "$LS_BUILD/lockstepd" ] || ls_die "$LS_BUILD/lockstepd is missing (run make)"
	LS_TMP=$(mktemp -d "/tmp/lockstep-$1.XXXXXX") || ls_die "mktemp failed"
	chmod 755 "$LS_TMP"
	# Private copies: a rebuild of build/ during a run cannot pull the
	# binaries from under us.
	mkdir -p "$LS_TMP/bin"
	cp "$LS_BUILD/lockstepd" "$LS_BUILD/lockstepctl" "$LS_TMP/bin/" || ls_die "cannot copy the binaries"
	[ -x "$LS_BUILD/tests/tools/ls-kafka-mock" ] && cp "$LS_BUILD/tests/tools/ls-kafka-mock" "$LS_TMP/bin/"
	LS_BIN=$LS_TMP/bin
	trap ls_cleanup EXIT
	trap ls_on_signal INT TERM
}

# Runs a command as the postgres user when we are root.
pg_run() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# A TCP port on 127.0.0.1 nobody listens on (a race with other programs is
# possible; servers fail loudly then).
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))   # below the ephemeral range
		ss -Htan "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
	done
}

pg_start() {
	local name=$1 conf=${2:-} dir="$LS_TMP/$1" port
	mkdir -p "$dir"
	[ "$(id -u)" = 0 ] && chown postgres: "$dir"
	pg_run "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 \
		--locale=C >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; ls_die "initdb $name failed"; }
	port=$(free_port)
	cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
max_logical_replication_workers = 8
max_sync_workers_per_subscription = 2
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 128MB
max_wal_size = 4GB
checkpoint_timeout = 30min
max_connections = 100
log_min_messages = warning
$conf
EOF
	LS_PGS+=("$name")
	pg_run "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
		{ tail -20 "$dir/server.log" >&2; ls_die "PostgreSQL $name did not start"; }
	printf -v "${name}_PORT" %s "$port"
	printf -v "${name}_DSN" %s "host=127.0.0.1 port=$port user=postgres"
}

pg_stop() {
	pg_run "$PG_BIN/pg_ctl" -D "$LS_TMP/$1/data" -m fast -w stop >/dev/null 2>&1
}

# sql NAME DB SQL...: runs SQL on server NAME, database DB.
sql() {
	local port_var="${1}_PORT"
	PGOPTIONS='-c client_min_messages=warning' psql -qAtX -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${!port_var}" -U postgres -d "$2" -c "$3"
}

# sql_file NAME DB: SQL from stdin.
sql_file() {
	local port_var="${1}_PORT"
	PGOPTIONS='-c client_min_messages=warning' psql -qAtX -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${!port_var}" -U postgres -d "$2"
}

kafka_start() {
	local n=${1:-3} i
	mkfifo "$LS_TMP/kafka.in"
	"$LS_BIN/ls-kafka-mock" "$n" <"$LS_TMP/kafka.in" >"$LS_TMP/kafka.out" \
		2>"$LS_TMP/kafka.err" &
	KAFKA_PID=$!
	exec 7>"$LS_TMP/kafka.in"      # held open: EOF on it stops the mock
	for i in $(seq 100); do
		KAFKA_BOOTSTRAP=$(sed -n 's/^bootstrap=//p' "$LS_TMP/kafka.out")
		[ -n "$KAFKA_BOOTSTRAP" ] && return 0
		kill -0 "$KAFKA_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$LS_TMP/kafka.err" >&2
	ls_die "the Kafka mock did not start"
}

# lsd_start CONF: starts lockstepd, waits until its control socket answers.
lsd_start() {
	local conf=$1 i
	LSD_SOCK=$(sed -n 's/^socket *= *\([^ ;]*\).*/\1/p' "$conf" | head -1)
	LSD_LOG=${LSD_LOG:-$LS_TMP/lockstepd.log}
	"$LS_BIN/lockstepd" --config "$conf" >>"$LSD_LOG" 2>&1 &
	LSD_PID=$!
	for i in $(seq 300); do
		lsctl status >/dev/null 2>&1 && return 0
		kill -0 "$LSD_PID" 2>/dev/null || break
		sleep 0.1
	done
	tail -20 "$LSD_LOG" >&2
	ls_die "lockstepd did not start (log above)"
}

lsd_stop() {
	[ -n "$LSD_PID" ] || return 0
	kill -TERM "$LSD_PID" 2>/dev/null
	wait "$LSD_PID" 2>/dev/null
	LSD_PID=
}

lsctl() {
	"$LS_BIN/lockstepctl" --socket "$LSD_SOCK" "$@"
}

# Seconds of CPU (user + system) a process has used so far.
proc_cpu() {
	local tck
	tck=$(getconf CLK_TCK)
	awk -v t="$tck" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / t }' "/proc/$1/stat" 2>/dev/null
}

proc_hwm_kb() {
	awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}

now() {
	date +%s.%N
}

# median of numbers, one per line on stdin
median() {
	sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# percentile P (0-100) of numbers on stdin (nearest rank)
percentile() {
	sort -g | awk -v p="$1" '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit } i = int(p / 100 * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; print a[i] }'
}

# ---------------------------------------------------------------- MariaDB
# Throwaway MariaDB servers for the my_* benchmarks, under $LS_TMP like the
# PostgreSQL ones (the same config as tests/helpers/testmy.c: row binlog
# with full images, GTID strict mode, a non-zero server_id, root without a
# password over TCP).  mariadbd is started in the background and its PID
# added to LS_PIDS, so ls_cleanup's SIGTERM shuts it down cleanly.
#
#   my_start NAME ID [CONF]  install-db + start with server_id ID and the
#                            extra [mariadbd] lines CONF; sets ${NAME}_PORT,
#                            ${NAME}_PID and ${NAME}_MYDSN (lockstep conninfo
#                            without a database: append " database=DB")
#   my_stop NAME             SIGTERM, wait
#   msql NAME SQL            mariadb -N -B as root, output on stdout
#   msql_file NAME           SQL from stdin
#   my_gtid NAME             @@gtid_binlog_pos
#
# As root, mariadbd runs as the "mysql" user (--user=mysql: it drops
# privileges itself), the data directory owned by mysql.

MY_SERVER=${MY_SERVER:-/usr/sbin/mariadbd}
MY_INSTALL_DB=${MY_INSTALL_DB:-/usr/bin/mariadb-install-db}

my_start() {
	local name=$1 id=$2 conf=${3:-} dir="$LS_TMP/$1" port pid i user=()
	mkdir -p "$dir"
	[ "$(id -u)" = 0 ] && { chown mysql: "$dir"; user=(--user=mysql); }
	"$MY_INSTALL_DB" --no-defaults --datadir="$dir/data" "${user[@]}" \
		--auth-root-authentication-method=normal --skip-test-db \
		--skip-name-resolve --innodb-buffer-pool-size=128M \
		--innodb-log-file-size=256M >"$dir/install.log" 2>&1 ||
		{ tail -20 "$dir/install.log" >&2; ls_die "mariadb-install-db $name failed"; }
	port=$(free_port)
	cat >"$dir/my.cnf" <<EOC
[mariadbd]
datadir=$dir/data
bind_address=127.0.0.1
port=$port
socket=$dir/my.sock
pid_file=$dir/my.pid
skip_name_resolve
server_id=$id
gtid_strict_mode=ON
binlog_format=ROW
binlog_row_image=FULL
innodb_buffer_pool_size=128M
innodb_log_file_size=256M
innodb_flush_log_at_trx_commit=2
innodb_doublewrite=0
max_connections=200
$conf
EOC
	"$MY_SERVER" --defaults-file="$dir/my.cnf" "${user[@]}" >"$dir/server.log" 2>&1 &
	pid=$!
	LS_PIDS+=("$pid")
	printf -v "${name}_PORT" %s "$port"
	printf -v "${name}_PID" %s "$pid"
	printf -v "${name}_MYDSN" %s "host=127.0.0.1 port=$port user=root"
	for i in $(seq 300); do
		msql "$name" "SELECT 1" >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	tail -20 "$dir/server.log" >&2
	ls_die "MariaDB $name did not start"
}

my_stop() {
	local pid_var="${1}_PID"
	[ -n "${!pid_var:-}" ] || return 0
	kill -TERM "${!pid_var}" 2>/dev/null
	wait "${!pid_var}" 2>/dev/null
	printf -v "$pid_var" %s ""
}

msql() {
	local port_var="${1}_PORT"
	mariadb -N -B -h 127.0.0.1 -P "${!port_var}" -u root -e "$2"
}

msql_file() {
	local port_var="${1}_PORT"
	mariadb -N -B -h 127.0.0.1 -P "${!port_var}" -u root
}

my_gtid() {
	msql "$1" "SELECT @@gtid_binlog_pos"
}
