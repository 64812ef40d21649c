#!/usr/bin/env bash
# my_catchup — a backlog of sysbench oltp_write_only writes piles up in the
# MariaDB source's binlog while the consumer is stopped (native: STOP SLAVE,
# both threads, so the replica fetches the backlog again like lockstep's
# reader; lockstep: lockstepd stopped), then it starts again.  Measures the
# apply rate of the catch-up: backlog changes (and binlog bytes) / time from
# the restart until a heartbeat written at the restart is visible on the
# target, native MariaDB replica vs lockstep MariaDB -> MariaDB (direct;
# Kafka and MariaDB -> PostgreSQL with MODES).
#
#   SCALE=1 (backlog = 10 s x SCALE of sysbench, 4 threads)  RUNS=2
#   ROWS=50000 (per table)  MODES="native direct"  OUT=dir
set -u
cd "$(dirname "$0")/.."
. bench/lib.sh
. bench/my_pair.sh

SCALE=${SCALE:-1}
RUNS=${RUNS:-2}
ROWS=${ROWS:-50000}
DUR=$(awk -v s="$SCALE" 'BEGIN { d = int(10 * s + 0.5); print (d < 3) ? 3 : d }')
MODES=${MODES:-native direct}
ls_init my_catchup
OUT=${OUT:-$LS_TMP/out}
mkdir -p "$OUT"
R=$LS_TMP/rows      # mode run txns binlog_bytes catchup_s changes_per_s cpu_s hwm_kB
: >"$R"

echo "my_catchup: backlog of ${DUR} s of sysbench oltp_write_only (4 threads, 4 tables x $ROWS rows); $RUNS run(s) per mode"
mp_setup 4 "$ROWS"
mp_sysbench run 5 >/dev/null || ls_die "sysbench warm-up failed"
for run in $(seq "$RUNS"); do
	for mode in $MODES; do
		repl_start "$mode"
		repl_pause "$mode"
		b0=$(my_binlog_bytes)
		txns=$(mp_sysbench run "$DUR" 2>&1 | sed -n 's/^ *transactions: *\([0-9]*\) .*/\1/p')
		[ -n "$txns" ] || ls_die "$mode: sysbench failed"
		bytes=$(( $(my_binlog_bytes) - b0 ))
		t0=$(now)
		repl_resume "$mode"
		seq=$(hb_mark)
		hb_wait "$seq" 900 >/dev/null || ls_die "$mode did not catch up"
		t1=$(now)
		cpu=- hwm=-
		if [ "$mode" != native ]; then
			# lockstepd started at the resume: all its CPU is catch-up
			cpu=$(proc_cpu "$LSD_PID")
			hwm=$(proc_hwm_kb "$LSD_PID")
		fi
		secs=$(echo "$t1 - $t0" | bc)
		rate=$(echo "$txns * 4 / $secs" | bc)
		echo "$mode $run $txns $bytes $secs $rate $cpu $hwm" >>"$R"
		printf '  run %d %-6s backlog %d txns (%d changes, %.1f MB binlog)  caught up in %6.2f s  %d changes/s  cpu %s s\n' \
			"$run" "$mode" "$txns" "$((txns * 4))" "$(echo "$bytes / 1000000" | bc -l)" "$secs" "$rate" "$cpu"
		repl_stop "$mode"
	done
done

col() {
	local v
	v=$(awk -v m="$1" -v n="$2" '$1 == m && $n != "-" { print $n }' "$R")
	if [ -n "$v" ]; then echo "$v" | med; else echo -; fi
}
{
	echo "### (b) Catch-up after ${DUR} s of sysbench oltp_write_only (4 threads) with the consumer stopped, median of $RUNS runs"
	echo
	echo "| replication | backlog changes | backlog binlog MB | catch-up s | apply rate changes/s | binlog MB/s | vs native | lockstepd CPU s / 1M changes | peak RSS MiB |"
	echo "|---|---|---|---|---|---|---|---|---|"
	for mode in $MODES; do
		label=$mode
		case $mode in
		native) label="native (MariaDB replica)" ;;
		direct) label="lockstep direct" ;;
		kafka) label="lockstep Kafka" ;;
		mypg) label="lockstep direct, to PostgreSQL" ;;
		esac
		cpm=$(awk -v m="$mode" '$1 == m && $7 != "-" && $3 > 0 { print $7 / ($3 * 4) * 1e6 }' "$R")
		cpm=$( [ -n "$cpm" ] && echo "$cpm" | median | awk '{ printf "%.1f\n", $1 }')
		hwm=$(awk -v m="$mode" '$1 == m && $8 != "-" { print $8 / 1024 }' "$R" | sort -g | tail -1)
		mbs=$(awk -v m="$mode" '$1 == m { print $4 / $5 / 1e6 }' "$R" | med)
		printf '| %s | %.0f | %.1f | %s | %.0f | %.1f | %s | %s | %s |\n' "$label" \
			"$(awk -v m="$mode" '$1 == m { print $3 * 4 }' "$R" | med)" \
			"$(awk -v m="$mode" '$1 == m { print $4 / 1e6 }' "$R" | med)" \
			"$(col "$mode" 5)" "$(col "$mode" 6)" "$mbs" "$(ratio "$(col "$mode" 6)" "$(col native 6)")" \
			"${cpm:--}" "$(awk -v h="${hwm:-}" 'BEGIN { print (h == "") ? "-" : sprintf("%.1f", h) }')"
	done
	echo
	echo "Changes: sysbench transactions x 4. Catch-up time runs from the consumer's restart"
	echo "(START SLAVE, or lockstepd's start-up and connection) to the heartbeat's visibility."
	echo "Target: lockstep's MariaDB backlog replay at least as fast as a native replica (ratio >= 1)."
	echo
	echo '<details><summary>all runs (mode run txns binlog_bytes catchup_s changes_per_s cpu_s hwm_kB)</summary>'
	echo
	echo '```'
	cat "$R"
	echo '```'
	echo '</details>'
} >"$OUT/my_catchup.md"
cat "$OUT/my_catchup.md"
