#!/usr/bin/env bash
# pg_burst — 1,000,000 x SCALE rows inserted on the source, once in one
# transaction and once in 10,000 small ones, replicated by native logical
# replication and by lockstep (direct and through Kafka).  Measures the time
# from the source's last commit until the target shows it (a heartbeat
# written right after the burst becomes visible there; transactions apply
# in commit order), and the replication's CPU.
#
#   SCALE=1  RUNS=3  OUT=dir for results
set -u
cd "$(dirname "$0")/.."
. bench/lib.sh
. bench/pair.sh

SCALE=${SCALE:-1}
RUNS=${RUNS:-3}
N=$(awk -v s="$SCALE" 'BEGIN { n = int(1000000 * s); n -= n % 10000; print (n < 10000) ? 10000 : n }')
PER=$((N / 10000))
MODES=${MODES:-native direct kafka}
ls_init pg_burst
OUT=${OUT:-$LS_TMP/out}
mkdir -p "$OUT"
R=$LS_TMP/rows      # mode kind run source_s after_commit_s cpu_s hwm_kB
: >"$R"

echo "pg_burst: $N rows, as 1 transaction and as 10000 transactions of $PER rows; $RUNS run(s) per mode"
pair_setup 1
awk -v per="$PER" 'BEGIN { for (k = 0; k < 10000; k++)
	printf "INSERT INTO burst SELECT g, md5(g::text) FROM generate_series(%d, %d) g;\n", k * per + 1, (k + 1) * per }' \
	>"$LS_TMP/small.sql"

one_burst() {   # one_burst MODE KIND RUN
	local mode=$1 kind=$2 run=$3 pids cpu0 ta tc after cpu hwm=-
	repl_start "$mode"
	pids=$(repl_pids "$mode" | tr '\n' ' ')
	# shellcheck disable=SC2086
	cpu0=$(cpu_of $pids)
	ta=$(now)
	if [ "$kind" = one ]; then
		sql src bench "INSERT INTO burst SELECT g, md5(g::text) FROM generate_series(1, $N) g"
	else
		sql_file src bench <"$LS_TMP/small.sql" >/dev/null
	fi
	tc=$(now)
	after=$(hb_wait "$(hb_mark)") || ls_die "$mode did not converge"
	# shellcheck disable=SC2086
	cpu=$(echo "$(cpu_of $pids) - $cpu0" | bc)
	[ "$mode" = native ] || hwm=$(proc_hwm_kb "$LSD_PID")
	[ "$(sql dst bench "SELECT count(*) FROM burst")" = "$N" ] || ls_die "$mode: the target does not have $N rows"
	echo "$mode $kind $run $(echo "$tc - $ta" | bc) $after $cpu $hwm" >>"$R"
	printf '  run %d %-6s %-5s source %6.2f s  after commit %6.2f s  cpu %s s  rss %s kB\n' \
		"$run" "$mode" "$kind" "$(echo "$tc - $ta" | bc)" "$after" "$cpu" "$hwm"
	repl_stop "$mode"
	sql src bench "TRUNCATE burst"
	sql dst bench "TRUNCATE burst"
}

for run in $(seq "$RUNS"); do
	for mode in $MODES; do
		one_burst "$mode" one "$run"
		one_burst "$mode" small "$run"
	done
done

col() {   # col MODE KIND N
	awk -v m="$1" -v k="$2" -v n="$3" '$1 == m && $2 == k && $n != "-" { print $n }' "$R" | med
}
{
	echo "### (b) Burst of $N rows: time from the source's last commit until the target shows it, median of $RUNS runs"
	echo
	echo "| replication | 1 txn: after commit s | vs native | 10,000 txns: source s | after last commit s | total s | vs native (total) | CPU s / 1M changes | peak RSS MiB |"
	echo "|---|---|---|---|---|---|---|---|---|"
	for mode in $MODES; do
		one=$(col "$mode" one 5)
		src_s=$(col "$mode" small 4)
		aft=$(col "$mode" small 5)
		tot=$(awk -v m="$mode" '$1 == m && $2 == "small" { print $4 + $5 }' "$R" | med)
		ntot=$(awk '$1 == "native" && $2 == "small" { print $4 + $5 }' "$R" | med)
		cpm=$(awk -v m="$mode" -v n="$N" '$1 == m { print $6 / n * 1e6 }' "$R" | med)
		hwm=$(awk -v m="$mode" '$1 == m && $7 != "-" { print $7 / 1024 }' "$R" | sort -g | tail -1)
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$mode" "$one" "$(ratio "$one" "$(col native one 5)")" \
			"$src_s" "$aft" "$tot" "$(ratio "$tot" "$ntot")" "$cpm" "${hwm:--}"
	done
	echo
	echo "After commit: until a heartbeat written right after the burst is visible on the target"
	echo "(polled every 20 ms). CPU: lockstepd + its walsender; native: apply worker + walsender; per 1M rows."
	echo
	echo '<details><summary>all runs (mode kind run source_s after_commit_s cpu_s hwm_kB)</summary>'
	echo
	echo '```'
	cat "$R"
	echo '```'
	echo '</details>'
} >"$OUT/pg_burst.md"
cat "$OUT/pg_burst.md"
