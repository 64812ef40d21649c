#!/usr/bin/env bash
# pg_bigtxn — one transaction of 10,000,000 x SCALE rows through lockstep
# (direct and Kafka) and native replication: the daemon's peak RSS (VmHWM;
# the contract says memory does not grow with transaction size), its CPU
# seconds per million changes, and the time after the source's commit until
# the target shows it.
#
#   SCALE=1  RUNS=1  MODES="native direct kafka"  OUT=dir
set -u
cd "$(dirname "$0")/.."
. bench/lib.sh
. bench/pair.sh

SCALE=${SCALE:-1}
RUNS=${RUNS:-1}
N=$(awk -v s="$SCALE" 'BEGIN { n = int(10000000 * s); print (n < 10000) ? 10000 : n }')
MODES=${MODES:-native direct kafka}
ls_init pg_bigtxn
OUT=${OUT:-$LS_TMP/out}
mkdir -p "$OUT"
R=$LS_TMP/rows      # mode run source_s after_commit_s cpu_s hwm_kB
: >"$R"

echo "pg_bigtxn: one transaction of $N rows; $RUNS run(s) per mode ($MODES)"
pair_setup 1
for run in $(seq "$RUNS"); do
	for mode in $MODES; do
		repl_start "$mode"
		pids=$(repl_pids "$mode" | tr '\n' ' ')
		# shellcheck disable=SC2086
		cpu0=$(cpu_of $pids)
		ta=$(now)
		sql src bench "INSERT INTO burst SELECT g, md5(g::text) FROM generate_series(1, $N) g"
		tc=$(now)
		after=$(hb_wait "$(hb_mark)" 1800) || ls_die "$mode did not converge"
		# shellcheck disable=SC2086
		cpu=$(echo "$(cpu_of $pids) - $cpu0" | bc)
		hwm=-
		[ "$mode" = native ] || hwm=$(proc_hwm_kb "$LSD_PID")
		[ "$(sql dst bench "SELECT count(*) FROM burst")" = "$N" ] || ls_die "$mode: the target does not have $N rows"
		echo "$mode $run $(echo "$tc - $ta" | bc) $after $cpu $hwm" >>"$R"
		printf '  run %d %-6s source %6.1f s  after commit %6.1f s  cpu %s s  peak rss %s kB\n' \
			"$run" "$mode" "$(echo "$tc - $ta" | bc)" "$after" "$cpu" "$hwm"
		repl_stop "$mode"
		sql src bench "TRUNCATE burst"
		sql dst bench "TRUNCATE burst"
	done
done

{
	echo "### (d) One transaction of $N rows"
	echo
	echo "| replication | source s | after commit s | vs native | CPU s / 1M changes | peak RSS MiB |"
	echo "|---|---|---|---|---|---|"
	nat=$(awk '$1 == "native" { print $4 }' "$R" | med)
	for mode in $MODES; do
		aft=$(awk -v m="$mode" '$1 == m { print $4 }' "$R" | med)
		printf '| %s | %s | %s | %s | %s | %s |\n' "$mode" "$(awk -v m="$mode" '$1 == m { print $3 }' "$R" | med)" \
			"$aft" "$(ratio "$aft" "$nat")" \
			"$(awk -v m="$mode" -v n="$N" '$1 == m { print $5 / n * 1e6 }' "$R" | med)" \
			"$(awk -v m="$mode" '$1 == m && $6 != "-" { print $6 / 1024 }' "$R" | sort -g | tail -1 | grep . || echo -)"
	done
	echo
	echo '<details><summary>all runs (mode run source_s after_commit_s cpu_s hwm_kB)</summary>'
	echo
	echo '```'
	cat "$R"
	echo '```'
	echo '</details>'
} >"$OUT/pg_bigtxn.md"
cat "$OUT/pg_bigtxn.md"
