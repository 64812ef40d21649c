#!/usr/bin/env bash
# my_steady — steady sysbench oltp_write_only load (4 threads, its own 4
# tables) on a MariaDB source, replicated by nothing, by a native MariaDB
# GTID replica, by lockstep MariaDB -> MariaDB (direct and through Kafka)
# and by lockstep MariaDB -> PostgreSQL (direct; no native equivalent),
# RUNS times each, interleaved.  Measures the source's tps, the end-to-end
# lag of a heartbeat row updated every 100 ms on the source carrying the
# source's clock (to its visibility on the target, polled every ~10 ms; one
# host, one clock), how long the target needs after the load to show a
# last heartbeat ("drain"), and lockstepd's CPU and peak RSS.
#
#   SCALE=1 (load seconds = 8 x SCALE)  RUNS=2  ROWS=50000 (per table)
#   MODES="none native direct kafka mypg"  OUT=dir for results
set -u
cd "$(dirname "$0")/.."
. bench/lib.sh
. bench/my_pair.sh

SCALE=${SCALE:-1}
RUNS=${RUNS:-2}
ROWS=${ROWS:-50000}
DUR=$(awk -v s="$SCALE" 'BEGIN { d = int(8 * s + 0.5); print (d < 3) ? 3 : d }')
MODES=${MODES:-none native direct kafka mypg}
ls_init my_steady
OUT=${OUT:-$LS_TMP/out}
mkdir -p "$OUT"
R=$LS_TMP/rows      # mode run tps p50 p99 max cpu changes hwm drain
: >"$R"

echo "my_steady: sysbench oltp_write_only 4 tables x $ROWS rows, 4 threads, ${DUR} s per run, $RUNS run(s) per mode"
mp_setup 4 "$ROWS"
# InnoDB is busy after the bulk load (purge, flushing): the first seconds
# of load run at a fraction of the steady rate, so none of them is measured.
mp_sysbench run 5 >/dev/null || ls_die "sysbench warm-up failed"
for run in $(seq "$RUNS"); do
	for mode in $MODES; do
		repl_start "$mode"
		cpu0=0
		[ -n "$LSD_PID" ] && cpu0=$(proc_cpu "$LSD_PID")
		hb_start
		t0=$(now)
		read -r txns tps < <(mp_sysbench run "$DUR" 2>&1 |
			sed -n 's/^ *transactions: *\([0-9]*\) *(\([0-9.]*\) per sec.*/\1 \2/p')
		t1=$(now)
		hb_stop_writer
		[ -n "${tps:-}" ] || ls_die "$mode: sysbench failed"
		if [ "$mode" != none ]; then
			drain=$(hb_wait "$(hb_mark)" 600) || ls_die "$mode did not catch up"
			hb_stop
			hb_lags "$t0" "$t1" >"$OUT/my_steady_lag_$mode.dat"
			stats=$(awk '{ print $2 }' "$OUT/my_steady_lag_$mode.dat" | sort -g | awk '{ a[NR] = $1 }
				END { if (NR == 0) { print "- - -"; exit }
				      i50 = int(0.5 * NR + 0.999); i99 = int(0.99 * NR + 0.999)
				      printf "%d %d %d\n", a[i50], a[i99], a[NR] }')
			cpu=- hwm=-
			if [ "$mode" != native ]; then
				cpu=$(echo "$(proc_cpu "$LSD_PID") - $cpu0" | bc)
				hwm=$(proc_hwm_kb "$LSD_PID")
			fi
		else
			hb_stop
			cpu=- stats="- - -" hwm=- drain=-
		fi
		drain=$(awk -v d="$drain" 'BEGIN { if (d == "-") print d; else printf "%.2f\n", d }')
		echo "$mode $run $tps $stats $cpu $((txns * 4)) $hwm $drain" >>"$R"
		printf '  run %d %-6s tps %7.1f  lag p50/p99/max ms %s  drain %s s  cpu %s s\n' \
			"$run" "$mode" "$tps" "$stats" "$drain" "$cpu"
		repl_stop "$mode"
	done
done

col() {   # col MODE N: median of column N for MODE
	local v
	v=$(awk -v m="$1" -v n="$2" '$1 == m && $n != "-" { print $n }' "$R")
	if [ -n "$v" ]; then echo "$v" | med; else echo -; fi
}
int() {
	awk '{ if ($1 == "-") print "-"; else printf "%d\n", $1 }'
}
{
	echo "### (a) Steady load: sysbench oltp_write_only, 4 threads, 4 tables x $ROWS rows, ${DUR} s, median of $RUNS runs"
	echo
	echo "| replication | source tps | tps vs none | tps vs native | lag p50 ms | lag p99 ms | lag max ms | drain s | lockstepd CPU s / 1M changes | peak RSS MiB |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	base=$(col none 3)
	nat=$(col native 3)
	for mode in $MODES; do
		tps=$(col "$mode" 3)
		cpm=$(awk -v m="$mode" '$1 == m && $7 != "-" && $8 > 0 { print $7 / $8 * 1e6 }' "$R")
		cpm=$( [ -n "$cpm" ] && echo "$cpm" | median | awk '{ printf "%.1f\n", $1 }')
		hwm=$(awk -v m="$mode" '$1 == m && $9 != "-" { print $9 / 1024 }' "$R" | sort -g | tail -1)
		label=$mode
		case $mode in
		native) label="native (MariaDB replica)" ;;
		direct) label="lockstep direct" ;;
		kafka) label="lockstep Kafka" ;;
		mypg) label="lockstep direct, to PostgreSQL" ;;
		esac
		[ -n "$cpm" ] || cpm=-
		printf '| %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$tps" \
			"$(ratio "$tps" "$base")" "$(ratio "$tps" "$nat")" \
			"$(col "$mode" 4 | int)" "$(col "$mode" 5 | int)" "$(col "$mode" 6 | int)" \
			"$(col "$mode" 10)" "$cpm" \
			"$(awk -v h="${hwm:-}" 'BEGIN { print (h == "") ? "-" : sprintf("%.1f", h) }')"
	done
	echo
	printf 'Ratios lockstep / native (MariaDB -> MariaDB): tps direct %s, Kafka %s; lag p99 direct %s, Kafka %s.\n' \
		"$(ratio "$(col direct 3)" "$nat")" "$(ratio "$(col kafka 3)" "$nat")" \
		"$(ratio "$(col direct 5)" "$(col native 5)")" "$(ratio "$(col kafka 5)" "$(col native 5)")"
	echo "MariaDB -> PostgreSQL has no native counterpart: its row is compared with \"none\" and, for"
	echo "orientation only, with the native MariaDB replica."
	echo
	echo "Changes: sysbench transactions x 4 (an index update, a non-index update, a delete and an"
	echo "insert). Drain: after the load, until a heartbeat written then is visible on the target"
	echo "(a drain above ~0.1 s means the replicator fell behind the load). CPU: lockstepd alone"
	echo "(the source's binlog dump thread and the native replica's threads run inside mariadbd)."
	echo
	echo '<details><summary>all runs (mode run tps p50 p99 max cpu_s changes hwm_kB drain_s)</summary>'
	echo
	echo '```'
	cat "$R"
	echo '```'
	echo '</details>'
} >"$OUT/my_steady.md"
cat "$OUT/my_steady.md"
