#!/usr/bin/env bash
# pg_catchup — a backlog of writes piles up while the consumer is stopped
# (lockstepd stopped; native: subscription disabled), the slot keeping the
# WAL; then it starts again.  Measures the apply rate of the catch-up:
# backlog changes / (time from restart until a heartbeat written at restart
# is visible on the target), native vs lockstep (direct and through Kafka).
# lockstepd is stopped whole in both modes, so its catch-up reads the
# source's WAL again; the Kafka run still carries everything through Kafka.
#
#   SCALE=1 (backlog = 20 s x SCALE of pgbench -c 4)  RUNS=3  OUT=dir
set -u
cd "$(dirname "$0")/.."
. bench/lib.sh
. bench/pair.sh

SCALE=${SCALE:-1}
RUNS=${RUNS:-3}
DUR=$(awk -v s="$SCALE" 'BEGIN { d = int(20 * s + 0.5); print (d < 3) ? 3 : d }')
MODES=${MODES:-native direct kafka}
ls_init pg_catchup
OUT=${OUT:-$LS_TMP/out}
mkdir -p "$OUT"
R=$LS_TMP/rows      # mode run txns catchup_s changes_per_s cpu_s hwm_kB
: >"$R"

echo "pg_catchup: backlog of ${DUR} s of pgbench -c 4; $RUNS run(s) per mode"
pair_setup 10
for run in $(seq "$RUNS"); do
	for mode in $MODES; do
		repl_start "$mode"
		repl_pause "$mode"
		txns=$(pgbench -n -c 4 -j 2 -T "$DUR" -h 127.0.0.1 -p "$src_PORT" -U postgres bench 2>&1 |
			sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
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
		cpm=$(awk -v m="$mode" '$1 == m && $3 > 0 { print $6 / ($3 * 4) * 1e6 }' "$R" | med)
		hwm=$(awk -v m="$mode" '$1 == m && $7 != "-" { print $7 / 1024 }' "$R" | sort -g | tail -1)
		printf '| %s | %.0f | %s | %.0f | %s | %s | %s |\n' "$mode" "$(awk -v m="$mode" '$1 == m { print $3 * 4 }' "$R" | med)" \
			"$(col "$mode" 4)" "$(col "$mode" 5)" "$(ratio "$(col "$mode" 5)" "$(col native 5)")" "$cpm" "${hwm:--}"
	done
	echo
	echo "Changes: pgbench transactions x 4 (3 updates, 1 insert). Catch-up time runs from the"
	echo "consumer's restart (including lockstepd's start-up) to the heartbeat's visibility."
	echo
	echo '<details><summary>all runs (mode run txns catchup_s changes_per_s cpu_s hwm_kB)</summary>'
	echo
	echo '```'
	cat "$R"
	echo '```'
	echo '</details>'
} >"$OUT/pg_catchup.md"
cat "$OUT/pg_catchup.md"
