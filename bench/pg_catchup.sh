#!/usr/bin/env bash
# pg_catchup — a backlog of writes piles up while the consumer is stopped
# (lockstepd stopped; native: subscription disabled), the slot keeping the
# WAL; then it starts again.  Measures the apply rate of the catch-up:
# backlog changes / (time from restart until a heartbeat written at restart
# is visible on the target), native vs lockstep (direct and through Kafka).
# lockstepd is stopped whole in both modes, so its catch-up reads the
# source's WAL again; the Kafka run still carries everything through Kafka.
# Mode "decode" is the ceiling every consumer of one slot shares: the same
# backlog read by pg_recvlogical (pgoutput, to /dev/null) up to the WAL
# position at the load's end, i.e. the source's walsender decoding alone.
#
#   SCALE=1 (backlog = 20 s x SCALE of pgbench -c 4)  RUNS=3  OUT=dir
set -u
cd "$(dirname "$0")/.."
. bench/lib.sh
. bench/pair.sh

SCALE=${SCALE:-1}
RUNS=${RUNS:-3}
DUR=$(awk -v s="$SCALE" 'BEGIN { d = int(20 * s + 0.5); print (d < 3) ? 3 : d }')
MODES=${MODES:-native direct kafka decode}
ls_init pg_catchup
OUT=${OUT:-$LS_TMP/out}
mkdir -p "$OUT"
R=$LS_TMP/rows      # mode run txns catchup_s changes_per_s cpu_s hwm_kB
: >"$R"

backlog() {
	pgbench -n -c 4 -j 2 -T "$DUR" -h 127.0.0.1 -p "$src_PORT" -U postgres bench 2>&1 |
		sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p'
}

# The decode ceiling: prints "txns seconds walsender-cpu-seconds".  The
# walsender's CPU for the backlog bounds every consumer of the slot from
# below: it cannot decode faster than that even with a core of its own.
decode_run() {
	local txns end t0 t1 rp ws= cpu=0 c
	sql src bench "CREATE PUBLICATION bench_decode FOR ALL TABLES" >/dev/null
	sql src bench "SELECT pg_create_logical_replication_slot('bench_decode', 'pgoutput')" >/dev/null
	txns=$(backlog)
	end=$(sql src bench "SELECT pg_current_wal_lsn()")
	t0=$(now)
	"$PG_BIN/pg_recvlogical" -h 127.0.0.1 -p "$src_PORT" -U postgres -d bench -S bench_decode \
		--start -o proto_version=2 -o publication_names=bench_decode -E "$end" -f /dev/null &
	rp=$!
	# the walsender exits with pg_recvlogical: its last sample is its CPU
	while kill -0 "$rp" 2>/dev/null; do
		[ -n "$ws" ] || ws=$(sql src bench "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'bench_decode' AND active_pid IS NOT NULL")
		[ -n "$ws" ] && c=$(proc_cpu "$ws") && [ -n "$c" ] && cpu=$c
		sleep 0.05
	done
	wait "$rp" || ls_die "pg_recvlogical failed"
	t1=$(now)
	sql src bench "SELECT pg_drop_replication_slot('bench_decode')" >/dev/null
	sql src bench "DROP PUBLICATION bench_decode" >/dev/null
	echo "$txns $(echo "$t1 - $t0" | bc) $cpu"
}

echo "pg_catchup: backlog of ${DUR} s of pgbench -c 4; $RUNS run(s) per mode"
pair_setup 10
for run in $(seq "$RUNS"); do
	for mode in $MODES; do
		if [ "$mode" = decode ]; then
			read -r txns secs cpu < <(decode_run)
			rate=$(echo "$txns * 4 / $secs" | bc)
			echo "$mode $run $txns $secs $rate $cpu -" >>"$R"
			printf '  run %d %-6s backlog %d txns (%d changes)  decoded in %6.2f s  %d changes/s  walsender cpu %s s\n' \
				"$run" "$mode" "$txns" "$((txns * 4))" "$secs" "$rate" "$cpu"
			continue
		fi
		repl_start "$mode"
		repl_pause "$mode"
		txns=$(backlog)
		t0=$(now)
		repl_resume "$mode"
		seq=$(hb_mark)
		hb_wait "$seq" 900 >/dev/null || ls_die "$mode did not catch up"
		t1=$(now)
		# the consumer processes started at the resume: all their CPU is catch-up
		# shellcheck disable=SC2046
		cpu=$(cpu_of $(repl_pids "$mode"))
		hwm=-
		[ "$mode" = native ] || hwm=$(proc_hwm_kb "$LSD_PID")
		secs=$(echo "$t1 - $t0" | bc)
		rate=$(echo "$txns * 4 / $secs" | bc)
		echo "$mode $run $txns $secs $rate $cpu $hwm" >>"$R"
		printf '  run %d %-6s backlog %d txns (%d changes)  caught up in %6.2f s  %d changes/s  cpu %s s\n' \
			"$run" "$mode" "$txns" "$((txns * 4))" "$secs" "$rate" "$cpu"
		repl_stop "$mode"
	done
done

col() {
	awk -v m="$1" -v n="$2" '$1 == m && $n != "-" { print $n }' "$R" | med
}
{
	echo "### (c) Catch-up after ${DUR} s of pgbench -c 4 with the consumer stopped, median of $RUNS runs"
	echo
	echo "| replication | backlog changes | catch-up s | apply rate changes/s | vs native | CPU s / 1M changes | peak RSS MiB |"
	echo "|---|---|---|---|---|---|---|"
	for mode in $MODES; do
		cpm=$(awk -v m="$mode" '$1 == m && $3 > 0 && $6 != "-" { print $6 / ($3 * 4) * 1e6 }' "$R" | med)
		hwm=$(awk -v m="$mode" '$1 == m && $7 != "-" { print $7 / 1024 }' "$R" | sort -g | tail -1)
		printf '| %s | %.0f | %s | %.0f | %s | %s | %s |\n' "$mode" "$(awk -v m="$mode" '$1 == m { print $3 * 4 }' "$R" | med)" \
			"$(col "$mode" 4)" "$(col "$mode" 5)" "$(ratio "$(col "$mode" 5)" "$(col native 5)")" "$cpm" "${hwm:--}"
	done
	echo
	echo "Changes: pgbench transactions x 4 (3 updates, 1 insert). Catch-up time runs from the"
	echo "consumer's restart (including lockstepd's start-up) to the heartbeat's visibility."
	echo "decode: the same backlog read by pg_recvlogical (pgoutput, to /dev/null); its CPU is the"
	echo "walsender's alone.  Any consumer of one slot waits for that walsender: at best (a core"
	echo "of its own, never waiting) it decodes changes / its CPU seconds a second:"
	ceil=$(awk '$1 == "decode" && $6 > 0 { print $3 * 4 / $6 }' "$R" | med)
	printf '%.0f changes/s here, %s x native'"'"'s apply rate.\n' "$ceil" "$(ratio "$ceil" "$(col native 5)")"
	echo
	echo '<details><summary>all runs (mode run txns catchup_s changes_per_s cpu_s hwm_kB)</summary>'
	echo
	echo '```'
	cat "$R"
	echo '```'
	echo '</details>'
} >"$OUT/pg_catchup.md"
cat "$OUT/pg_catchup.md"
