# bench/pair.sh — a source/target replication pair for the benchmarks, run
# by lockstep (buffer direct or Kafka) or by PostgreSQL's native logical
# replication.  Source bench/lib.sh first.
#
#   pair_setup SCALE         src, dst and a Kafka mock; database "bench" with
#                            pgbench tables at SCALE on both sides (the target
#                            gets the same data, so replication starts with
#                            snapshot = never / copy_data = false), a burst
#                            table and a heartbeat table; the target logs each
#                            heartbeat's arrival with its commit time
#   repl_start MODE          none | native | direct | kafka, streaming from now on
#   repl_stop MODE           stops it and drops slot, publication, subscription
#   repl_pause MODE / repl_resume MODE   stop / restart consuming (the slot stays)
#   hb_start / hb_stop       heartbeat UPDATE every 100 ms on the source, and
#                            a poller noting when each is visible on the target
#   hb_lags T0 T1            per heartbeat in [T0, T1]: seconds since T0, lag ms
#   hb_mark                  one heartbeat now; prints its seq
#   hb_wait SEQ [TIMEOUT]    until SEQ is visible on the target; prints the
#                            seconds since it was written on the source
#   repl_pids MODE           PIDs whose CPU the replication costs, one a line:
#                            the daemon (lockstep) or apply worker (native),
#                            then the walsender on the source
#   cpu_of PIDS...           their summed CPU seconds
#   machine                  one line: cores, CPU, memory, kernel, PostgreSQL

PAIR_N=0
LSD_NAME=

pair_setup() {
	local scale=$1
	pg_start src "synchronous_commit = on   # off delays logical decoding by up to wal_writer_delay"
	pg_start dst "wal_retrieve_retry_interval = 100ms   # native: restart the apply worker promptly after ENABLE"
	kafka_start 3
	sql src postgres "CREATE DATABASE bench"
	sql dst postgres "CREATE DATABASE bench"
	pgbench -i -q -I dtGvp -s "$scale" -h 127.0.0.1 -p "$src_PORT" -U postgres bench \
		>"$LS_TMP/pgbench-init.log" 2>&1 || { cat "$LS_TMP/pgbench-init.log" >&2; ls_die "pgbench -i failed"; }
	sql_file src bench <<'SQL' || ls_die "schema setup failed"
ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY;
CREATE TABLE burst (id bigint PRIMARY KEY, v text);
CREATE TABLE hb (id int PRIMARY KEY, seq bigint NOT NULL, ts timestamptz NOT NULL);
INSERT INTO hb VALUES (1, 0, clock_timestamp());
VACUUM ANALYZE;
SQL
	"$PG_BIN/pg_dump" -h 127.0.0.1 -p "$src_PORT" -U postgres bench 2>"$LS_TMP/dump.err" |
		sql_file dst bench >/dev/null || { cat "$LS_TMP/dump.err" >&2; ls_die "copying the schema and data failed"; }
	# Every heartbeat that reaches the target is logged there (when it
	# becomes visible is what hb_start's poller sees).
	sql_file dst bench <<'SQL' || ls_die "heartbeat log setup failed"
CREATE TABLE hb_log (seq bigint, ts timestamptz);
CREATE INDEX ON hb_log (seq);
CREATE FUNCTION hb_arrive() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO public.hb_log (seq, ts) VALUES (NEW.seq, NEW.ts); RETURN NEW; END $$;
CREATE TRIGGER hb_arrive AFTER INSERT OR UPDATE ON hb FOR EACH ROW EXECUTE FUNCTION hb_arrive();
-- fires under session_replication_role = replica (both replicators set it)
ALTER TABLE hb ENABLE ALWAYS TRIGGER hb_arrive;
VACUUM ANALYZE;
SQL
}

# lockstep config for MODE (direct | kafka) under pipeline name NAME.
# $LS_TARGET_EXTRA and $LS_KAFKA_EXTRA (lines) are added to the target's
# section and the Kafka buffer's, to try settings: LS_TARGET_EXTRA="batch_ms = 20";
# $LS_LOG_LEVEL (default notice) is lockstepd's log level.
lsd_conf() {
	local name=$1 mode=$2 buffer="type = direct"
	[ "$mode" = kafka ] && buffer="type = kafka
brokers = $KAFKA_BOOTSTRAP
max_lead = 2MiB                  ; the mock keeps ~5 MiB per partition
kafka.compression.type = zstd${LS_KAFKA_EXTRA:+
$LS_KAFKA_EXTRA}"
	printf '%s\n' "[pipeline]" "name = $name" "state_dir = $LS_TMP/$name" "" \
		"[source]" "type = postgres" "conninfo = $src_DSN dbname=bench" \
		"tables = public.*" "snapshot = never" "" \
		"[buffer]" "$buffer" "" \
		"[target dst]" "type = postgres" "conninfo = $dst_DSN dbname=bench" \
		"create_tables = false" ${LS_TARGET_EXTRA:+"$LS_TARGET_EXTRA"} "" \
		"[control]" "socket = $LS_TMP/$name.sock" "" \
		"[drift]" "interval = 0" "" "[log]" "level = ${LS_LOG_LEVEL:-notice}"
}

repl_start() {
	case $1 in
	none) return 0 ;;
	native)
		sql src bench "CREATE PUBLICATION bench_pub FOR ALL TABLES" >/dev/null
		sql dst bench "CREATE SUBSCRIPTION bench_sub CONNECTION '$src_DSN dbname=bench' PUBLICATION bench_pub WITH (copy_data = false)" \
			>/dev/null 2>&1 || ls_die "CREATE SUBSCRIPTION failed"
		;;
	direct|kafka)
		PAIR_N=$((PAIR_N + 1))
		LSD_NAME=bench$PAIR_N
		lsd_conf "$LSD_NAME" "$1" >"$LS_TMP/$LSD_NAME.conf"
		lsd_start "$LS_TMP/$LSD_NAME.conf"
		;;
	*) ls_die "unknown mode $1" ;;
	esac
	hb_wait "$(hb_mark)" 120 >/dev/null || ls_die "$1: replication did not start"
}

repl_stop() {
	case $1 in
	native)
		sql dst bench "DROP SUBSCRIPTION bench_sub" >/dev/null
		sql src bench "DROP PUBLICATION bench_pub" >/dev/null
		;;
	direct|kafka)
		lsd_stop
		sql src bench "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'lockstep_$LSD_NAME'" >/dev/null
		sql src bench "DROP PUBLICATION IF EXISTS lockstep_$LSD_NAME" >/dev/null
		;;
	esac
}

repl_pause() {
	local i
	case $1 in
	native)
		sql dst bench "ALTER SUBSCRIPTION bench_sub DISABLE"
		for i in $(seq 400); do
			[ "$(sql src bench "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'bench_sub' AND active")" = 0 ] && return 0
			sleep 0.05
		done
		ls_die "the subscription did not stop"
		;;
	direct|kafka) lsd_stop ;;
	esac
}

repl_resume() {
	case $1 in
	native) sql dst bench "ALTER SUBSCRIPTION bench_sub ENABLE" ;;
	direct|kafka) lsd_start "$LS_TMP/$LSD_NAME.conf" ;;
	esac
}

repl_pids() {
	case $1 in
	native)
		sql dst bench "SELECT pid FROM pg_stat_subscription WHERE subname = 'bench_sub' AND relid IS NULL AND pid IS NOT NULL"
		sql src bench "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'bench_sub' AND active_pid IS NOT NULL"
		;;
	direct|kafka)
		echo "$LSD_PID"
		sql src bench "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'lockstep_$LSD_NAME' AND active_pid IS NOT NULL"
		;;
	esac
}

cpu_of() {
	local p t=0 c
	for p in "$@"; do
		c=$(proc_cpu "$p")
		[ -n "$c" ] && t=$(echo "$t + $c" | bc)
	done
	echo "$t"
}

HB_PID=
POLL_PID=
# The heartbeat writer and, on the target, a poller that notes every ~10 ms
# the newest heartbeat visible there (by the target's clock_timestamp(); the
# same host, so one clock).  Visibility, not commit_ts: both replicators set
# the origin's commit time as the target commit's timestamp.
hb_start() {
	( while :; do echo "UPDATE hb SET seq = seq + 1, ts = clock_timestamp() WHERE id = 1;"; sleep 0.1; done ) |
		psql -qAtX -h 127.0.0.1 -p "$src_PORT" -U postgres -d bench >/dev/null 2>&1 &
	HB_PID=$!
	( while :; do echo "SELECT coalesce(max(seq), 0), extract(epoch FROM clock_timestamp()) FROM hb_log;"; sleep 0.01; done ) |
		psql -qAtX -F ' ' -h 127.0.0.1 -p "$dst_PORT" -U postgres -d bench >"$LS_TMP/poll.txt" 2>/dev/null &
	POLL_PID=$!
	LS_PIDS+=("$HB_PID" "$POLL_PID")
}

hb_stop() {
	[ -n "$HB_PID" ] || return 0
	kill -TERM "$HB_PID" "$POLL_PID" 2>/dev/null
	wait "$HB_PID" "$POLL_PID" 2>/dev/null
	HB_PID= POLL_PID=
}

# hb_lags T0 T1: "seconds-since-T0 lag-ms" for each heartbeat written
# between T0 and T1 (epoch seconds): from its source commit to the first
# poll that saw it on the target.
hb_lags() {
	sql dst bench "SELECT seq, extract(epoch FROM ts) FROM hb_log
		WHERE extract(epoch FROM ts) BETWEEN $1 AND $2 ORDER BY seq" | tr '|' ' ' |
	awk -v t0="$1" -v polls="$LS_TMP/poll.txt" '
		BEGIN { while ((getline l < polls) > 0) { split(l, f, " "); n++; ps[n] = f[1]; pt[n] = f[2] } i = 1 }
		{ while (i <= n && ps[i] < $1) i++
		  if (i <= n) printf "%.2f %.1f\n", $2 - t0, (pt[i] - $2) * 1000 }'
}

hb_mark() {
	sql src bench "UPDATE hb SET seq = seq + 1, ts = clock_timestamp() WHERE id = 1 RETURNING seq"
}

hb_wait() {
	local seq=$1 timeout=${2:-900} deadline ts
	deadline=$(echo "$(now) + $timeout" | bc)
	while :; do
		ts=$(sql dst bench "SELECT extract(epoch FROM ts) FROM hb_log WHERE seq >= $seq ORDER BY seq LIMIT 1")
		[ -n "$ts" ] && { echo "$(now) - $ts" | bc; return 0; }
		[ "$(echo "$(now) > $deadline" | bc)" = 1 ] && return 1
		sleep 0.02
	done
}

machine() {
	printf '%s cores (%s), %s GiB RAM, %s, PostgreSQL %s\n' "$(nproc)" \
		"$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)" \
		"$(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)" \
		"$(uname -sr)" "$("$PG_BIN/postgres" --version | awk '{ print $3 }')"
}

# Median of numbers on stdin as a number with 3 decimals.
med() {
	median | awk '{ printf "%.3f\n", $1 }'
}

# ratio A B: A / B with 2 decimals, "-" when B is 0 or missing.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "" || a == "nan") print "-"; else printf "%.2f\n", a / b }'
}
