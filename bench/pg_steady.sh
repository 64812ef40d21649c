#!/usr/bin/env bash
# pg_steady — steady pgbench load (-c 4) on the source, replicated to the
# target by nothing, by native logical replication, and by lockstep (direct
# and through Kafka), RUNS times each, interleaved.  Measures the source's
# tps, end-to-end lag of a heartbeat row updated every 100 ms (its source
# write to its visibility on the target, polled every ~10 ms; one host, one
# clock), and the CPU the
# replication used (daemon or apply worker, plus the walsender).
#
#   SCALE=1 (load seconds = 15 x SCALE)  RUNS=3  OUT=dir for results
set -u
cd "$(dirname "$0")/.."
. bench/lib.sh
. bench/pair.sh

SCALE=${SCALE:-1}
RUNS=${RUNS:-3}
DUR=$(awk -v s="$SCALE" 'BEGIN { d = int(15 * s + 0.5); print (d < 5) ? 5 : d }')
MODES=${MODES:-none native direct kafka}
ls_init pg_steady
OUT=${OUT:-$LS_TMP/out}
mkdir -p "$OUT"
R=$LS_TMP/rows      # mode run tps p50 p99 max cpu changes hwm
: >"$R"

echo "pg_steady: pgbench scale 10, -c 4, ${DUR} s per run, $RUNS run(s) per mode"
pair_setup 10
for run in $(seq "$RUNS"); do
	for mode in $MODES; do
		repl_start "$mode"
		pids=$(repl_pids "$mode" | tr '\n' ' ')
		# shellcheck disable=SC2086
		cpu0=$(cpu_of $pids)
		hb_start
		t0=$(now)
		tps=$(pgbench -n -c 4 -j 2 -T "$DUR" -h 127.0.0.1 -p "$src_PORT" -U postgres bench 2>&1 |
			sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
		txns=$(echo "$tps * $DUR" | bc)
		t1=$(now)
		hb_stop
		if [ "$mode" != none ]; then
			hb_wait "$(hb_mark)" 600 >/dev/null || ls_die "$mode did not catch up"
			# shellcheck disable=SC2086
			cpu=$(echo "$(cpu_of $pids) - $cpu0" | bc)
			hb_lags "$t0" "$t1" >"$OUT/steady_lag_$mode.dat"
			stats=$(awk '{ print $2 }' "$OUT/steady_lag_$mode.dat" | sort -g | awk '{ a[NR] = $1 }
				END { if (NR == 0) { print "- - -"; exit }
				      i50 = int(0.5 * NR + 0.999); i99 = int(0.99 * NR + 0.999)
				      printf "%d %d %d\n", a[i50], a[i99], a[NR] }')
			hwm=-
			[ "$mode" = native ] || hwm=$(proc_hwm_kb "$LSD_PID")
		else
			cpu=0 stats="- - -" hwm=-
		fi
		echo "$mode $run $tps $stats $cpu $(echo "$txns * 4" | bc) $hwm" >>"$R"
		printf '  run %d %-7s tps %8.1f  lag p50/p99/max ms %s  cpu %s s\n' "$run" "$mode" "$tps" "$stats" "$cpu"
		repl_stop "$mode"
	done
done

col() {   # col MODE N: median of column N for MODE
	awk -v m="$1" -v n="$2" '$1 == m && $n != "-" { print $n }' "$R" | med
}
{
	echo "### (a) Steady load: pgbench -c 4 on the source, ${DUR} s, median of $RUNS runs"
	echo
	echo "| replication | source tps | tps vs none | lag p50 ms | lag p99 ms | lag max ms | CPU s / 1M changes | peak RSS MiB |"
	echo "|---|---|---|---|---|---|---|---|"
	base=$(col none 3)
	for mode in $MODES; do
		tps=$(col "$mode" 3)
		cpm=$(awk -v m="$mode" '$1 == m && $8 > 0 { print $7 / $8 * 1e6 }' "$R" | med)
		hwm=$(awk -v m="$mode" '$1 == m && $9 != "-" { print $9 / 1024 }' "$R" | med)
		[ "$mode" = none ] && cpm=-
		[ "$mode" = native ] || [ "$mode" = none ] && hwm=-
		printf '| %s | %.0f | %s | %s | %s | %s | %s | %s |\n' "$mode" "$tps" "$(ratio "$tps" "$base")" \
			"$(col "$mode" 4 | cut -d. -f1)" "$(col "$mode" 5 | cut -d. -f1)" "$(col "$mode" 6 | cut -d. -f1)" "$cpm" "$hwm"
	done
	echo
	printf 'Ratios lockstep / native: tps direct %s, kafka %s; lag p99 direct %s, kafka %s.\n' \
		"$(ratio "$(col direct 3)" "$(col native 3)")" "$(ratio "$(col kafka 3)" "$(col native 3)")" \
		"$(ratio "$(col direct 5)" "$(col native 5)")" "$(ratio "$(col kafka 5)" "$(col native 5)")"
	echo
	echo "CPU: lockstepd plus its walsender; native: the apply worker plus its walsender."
	echo "Changes: pgbench transactions x 4 (3 updates, 1 insert)."
	echo
	echo '<details><summary>all runs (mode run tps p50 p99 max cpu_s changes hwm_kB)</summary>'
	echo
	echo '```'
	cat "$R"
	echo '```'
	echo '</details>'
} >"$OUT/pg_steady.md"
cat "$OUT/pg_steady.md"
