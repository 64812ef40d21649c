#!/usr/bin/env bash
# bench/demo.sh — lockstep's main job, end to end, on one machine (`make demo`).
#
# Starts a throwaway source and target PostgreSQL 15 and a Kafka mock cluster
# on loopback, loads a sample database (pgbench tables plus a table of awkward
# types), starts lockstepd under a write load, shows snapshot progress and
# lag per stage live, stops the load, runs a drift check, waits for
# `lockstepctl wait --converged`, prints a summary and the config it used,
# and tears everything down (also on Ctrl-C).
#
# Environment:
#   DEMO_SCALE=60      pgbench scale (60 = 6M account rows: 10-60 s to load
#                      and as long to copy on 2 cores, depending on what
#                      else runs; the drift check reads them all again, so
#                      the scale sets most of the run time); 5 for a
#                      30-second run
#   DEMO_STREAM=20     seconds of streaming under load after the snapshot
#   DEMO_RATE=300      pgbench transactions per second during the demo
#   LS_BUILD=build     where lockstepd, lockstepctl and the Kafka mock are
#   LS_KEEP=1          keep the temporary directory (logs) after the run
set -u
cd "$(dirname "$0")/.."
. bench/lib.sh

SCALE=${DEMO_SCALE:-60}
STREAM_S=${DEMO_STREAM:-20}
RATE=${DEMO_RATE:-300}
TTY=0
[ -t 1 ] && TTY=1

bold() { if [ $TTY = 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
step() { echo; bold "==> $*"; }

[ -x "$LS_BUILD/tests/tools/ls-kafka-mock" ] || ls_die "$LS_BUILD/tests/tools/ls-kafka-mock is missing (make tests)"
command -v jq >/dev/null || ls_die "jq is missing (make deps)"
command -v pgbench >/dev/null || ls_die "pgbench is missing (make deps)"

T_START=$(now)
ls_init demo
LSD_LOG=$LS_TMP/lockstepd.log

step "starting a source and a target PostgreSQL 15 and a 3-broker Kafka mock on 127.0.0.1"
pg_start src
pg_start dst
kafka_start 3
echo "source  127.0.0.1:$src_PORT   target  127.0.0.1:$dst_PORT   kafka  $KAFKA_BOOTSTRAP"
echo "everything lives in $LS_TMP (removed at exit)"

step "loading the sample database: pgbench scale $SCALE ($((SCALE * 100000)) account rows) and a table of awkward types"
sql src postgres "CREATE DATABASE shop"
sql dst postgres "CREATE DATABASE shop"
t0=$(now)
pgbench -i -q -I dtGvp -s "$SCALE" -h 127.0.0.1 -p "$src_PORT" -U postgres shop >"$LS_TMP/pgbench-init.log" 2>&1 ||
	{ cat "$LS_TMP/pgbench-init.log" >&2; ls_die "pgbench -i failed"; }
sql_file src shop <<'EOF' || ls_die "loading the sample tables failed"
-- pgbench_history has no key; lockstep (like native replication of UPDATE
-- and DELETE) wants one.
ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE oddities (
    id        int PRIMARY KEY,
    name      text,              -- unicode, tabs, newlines, backslashes
    price     numeric(14,4),
    ratio     double precision,  -- NaN, -Infinity
    tags      text[],
    doc       jsonb,
    raw       bytea,
    day       date,              -- including infinity
    at        timestamptz,
    span      interval,
    u         uuid,
    flag      boolean,
    feeling   mood,
    net       inet,
    big       bigint,
    blob      text               -- large, TOASTed out of line
);
ALTER TABLE oddities ALTER blob SET STORAGE EXTERNAL;
INSERT INTO oddities
SELECT g,
       CASE g % 4 WHEN 0 THEN 'café ' || g WHEN 1 THEN E'tab\there\nnewline ' || g
                  WHEN 2 THEN E'back\\slash ' || g ELSE NULL END,
       g * 1.2345,
       CASE g % 50 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN '-Infinity'::float8 ELSE g / 7.0 END,
       ARRAY['a', NULL, 'x,y "quoted"' || g],
       jsonb_build_object('k', g, 'nested', jsonb_build_array(1, 'two', NULL)),
       decode(md5(g::text), 'hex'),
       CASE WHEN g % 100 = 0 THEN 'infinity'::date ELSE date '2000-01-01' + g END,
       timestamptz '2024-02-29 12:00:00+00' + g * interval '1 second',
       make_interval(days => g, secs => g / 3.0),
       md5('u' || g)::uuid,
       g % 2 = 0,
       (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::mood,
       ('10.0.' || (g % 256) || '.' || (g / 256 % 256))::inet,
       g::bigint * 9007199254740,
       CASE WHEN g % 500 = 0 THEN repeat(md5(g::text), 300) END
FROM generate_series(1, 20000) g;
ANALYZE;
EOF
cat >"$LS_TMP/odd.sql" <<'EOF'
\set id random(1, 20000)
UPDATE oddities SET price = price + 1, tags = ARRAY['w', NULL, :id::text], at = clock_timestamp(), doc = doc || '{"touched": true}' WHERE id = :id;
EOF
# lockstep creates missing tables, not types: the enum goes to the target first.
sql dst shop "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')" || ls_die "creating the enum on the target failed"
printf 'loaded in %.0f s\n' "$(echo "$(now) - $t0" | bc)"

METRICS_PORT=$(free_port)
CONF=$LS_TMP/shop.conf
cat >"$CONF" <<EOF
; lockstep pipeline used by \`make demo\` (every section shown)
[pipeline]
name = shop
state_dir = $LS_TMP/state

[source]
type = postgres
conninfo = $src_DSN dbname=shop
tables = public.*
exclude = public.audit_*
snapshot = initial
snapshot_workers = 2

[buffer]
type = kafka
brokers = $KAFKA_BOOTSTRAP
topic = lockstep.shop
max_lead = 2MiB                  ; the mock keeps only ~5 MiB per partition
kafka.compression.type = zstd

[target new]
type = postgres
conninfo = $dst_DSN dbname=shop
create_tables = true
ddl = apply
batch_rows = 5000
batch_ms = 100

[control]
socket = $LS_TMP/shop.sock
metrics_listen = 127.0.0.1:$METRICS_PORT

[drift]
interval = 0                     ; on demand (lockstepctl drift --check)
chunk_rows = 10000

[log]
level = info
EOF
"$LS_BIN/lockstepd" --config "$CONF" --check-config >/dev/null || ls_die "the demo config does not check"

step "starting a write load on the source: pgbench, $RATE tps (tpcb-like, plus updates of the awkward table)"
pgbench -n -c 2 -j 2 -T 100000 -R "$RATE" -b tpcb-like@9 -f "$LS_TMP/odd.sql@1" \
	-h 127.0.0.1 -p "$src_PORT" -U postgres shop >"$LS_TMP/pgbench.log" 2>&1 &
LOAD_PID=$!
T_LOAD=$(now)
LS_PIDS+=("$LOAD_PID")

step "starting lockstepd (log: $LSD_LOG)"
T_LSD=$(now)
lsd_start "$CONF"

# ---- live view -----------------------------------------------------------------

LINES_DRAWN=0
# Redraws the block of lines on stdin in place on a terminal; elsewhere
# prints it (callers print less often then).
redraw() {
	local text
	text=$(cat)
	if [ $TTY = 1 ]; then
		[ $LINES_DRAWN -gt 0 ] && printf '\033[%dA' "$LINES_DRAWN"
		printf '%s\n' "$text" | while IFS= read -r l; do printf '\033[2K%s\n' "$l"; done
	else
		printf '%s\n' "$text"
	fi
	LINES_DRAWN=$(printf '%s\n' "$text" | wc -l)
}

# Snapshot progress from GET /lag: a bar, rows and ETA per table.
snapshot_view() {
	jq -r --argjson el "$1" '
	  def bar(f): (f * 30 | floor) as $n | "[" + ("#" * $n) + ("." * (30 - $n)) + "]";
	  def eta(r; e): if r > 0 and e > r then "ETA \(((e - r) * $el / r) | floor) s" else "" end;
	  .snapshot.tables[]
	  | (if .est_rows > 0 then ([.rows / .est_rows, 1] | min) else (if .state == "done" then 1 else 0 end) end) as $f
	  | (if .state == "done" then 1 else $f end) as $g
	  | "  \(.table | .[0:28] | . + " " * (28 - length)) \(bar($g)) \($g * 100 | floor | tostring | " " * (3 - length) + .)%  \(.rows | tostring | " " * (10 - length) + .) / \(.est_rows) rows  \(.state)  \(if .state == "copying" then eta(.rows; .est_rows) else "" end)"
	' "$2"
}

lag_view() {
	jq -r '
	  def h(b): if b == null then "-" elif b >= 1048576 then "\(b / 1048576 * 10 | floor / 10) MiB" elif b >= 1024 then "\(b / 1024 * 10 | floor / 10) KiB" else "\(b) B" end;
	  def s(x): if x == null or x < 0 then "-" else "\(x * 1000 | floor) ms" end;
	  "  pipeline \(.state)   captured \(.source.txns_captured) txns / \(.source.changes_captured) changes",
	  "  stage 1  source -> lockstepd (not yet read)   \(h(.source.source_lag_bytes))",
	  (.targets[] |
	  "  stage 2  Kafka -> target \(.name) (records)    \(.buffer_lag_records // "-")",
	  "  stage 3  source commit -> target commit     \(s(.apply_lag_seconds))  (\(h(.apply_lag_bytes)) behind)",
	  "           applied \(.txns_applied) txns / \(.changes_applied) changes")
	' "$1"
}

LAGJ=$LS_TMP/lag.json
PEAK_LAG=0
fetch_lag() {
	lsctl lag --json >"$LAGJ.new" 2>/dev/null && mv "$LAGJ.new" "$LAGJ" || return 1
	[ "$(jq -r .state "$LAGJ")" = failed ] && { tail -20 "$LSD_LOG" >&2; ls_die "the pipeline failed (log above)"; }
	local l
	l=$(jq -r '[.targets[].apply_lag_seconds // 0] | max // 0' "$LAGJ")
	PEAK_LAG=$(echo "$l $PEAK_LAG" | awk '{ print ($1 > $2) ? $1 : $2 }')
	return 0
}

step "snapshot: copying the tables at the slot's snapshot while the load runs"
tick=0
while :; do
	kill -0 "$LSD_PID" 2>/dev/null || { tail -20 "$LSD_LOG" >&2; ls_die "lockstepd exited (log above)"; }
	if fetch_lag; then
		el=$(echo "$(now) - $T_LSD" | bc)
		if [ $TTY = 1 ] || [ $((tick % 5)) = 0 ]; then
			snapshot_view "$el" "$LAGJ" | redraw
		fi
		pending=$(jq '[.snapshot.tables[] | select(.state == "pending" or .state == "copying")] | length' "$LAGJ")
		ntab=$(jq '.snapshot.tables | length' "$LAGJ")
		[ "$ntab" -gt 0 ] && [ "$pending" = 0 ] && break
	fi
	tick=$((tick + 1))
	sleep 1
done
[ $TTY = 1 ] || snapshot_view 0 "$LAGJ"
SNAP_S=$(jq -r '.snapshot.seconds' "$LAGJ")
printf 'snapshot done in %.1f s\n' "$SNAP_S"

# One screen of lag by stage; $1 is a title line.
stream_tick() {
	kill -0 "$LSD_PID" 2>/dev/null || { tail -20 "$LSD_LOG" >&2; ls_die "lockstepd exited (log above)"; }
	kill -0 "$LOAD_PID" 2>/dev/null || { cat "$LS_TMP/pgbench.log" >&2; ls_die "the write load stopped (log above)"; }
	if fetch_lag && { [ $TTY = 1 ] || [ $((tick % 5)) = 0 ]; }; then
		{ lag_view "$LAGJ"; printf '  %s\n' "$1"; } | redraw
	fi
	tick=$((tick + 1))
}

step "catching up with the changes the load made during the snapshot"
LINES_DRAWN=0
tick=0
T_CU=$(now)
while :; do
	stream_tick "catching up for $(printf %.0f "$(echo "$(now) - $T_CU" | bc)") s"
	[ "$(jq '[.targets[].apply_lag_seconds // 99] | max < 1' "$LAGJ")" = true ] && break
	sleep 1
done
CATCHUP_S=$(echo "$(now) - $T_CU" | bc)
printf 'caught up in %.1f s\n' "$CATCHUP_S"

step "streaming: lag by stage while the load runs (${STREAM_S} s)"
LINES_DRAWN=0
PEAK_LAG=0
t_end=$(echo "$(now) + $STREAM_S" | bc)
tick=0
while [ "$(echo "$(now) < $t_end" | bc)" = 1 ]; do
	stream_tick "peak apply lag so far $(echo "$PEAK_LAG * 1000 / 1" | bc) ms"
	sleep 1
done

step "stopping the load; drift check; waiting for convergence"
kill -TERM "$LOAD_PID" 2>/dev/null     # (a background job ignores SIGINT)
wait "$LOAD_PID" 2>/dev/null
T_STOP=$(now)
NLOAD=$(sql src shop "SELECT count(*) FROM pgbench_history")
printf 'load stopped: %s pgbench transactions, %.0f per second\n' "$NLOAD" \
	"$(echo "$NLOAD / ($T_STOP - $T_LOAD)" | bc -l)"
lsctl drift --check --timeout 300 | tee "$LS_TMP/drift.txt"
DRIFT_RC=${PIPESTATUS[0]}
if ! lsctl wait --converged --timeout 300; then
	lsctl lag
	ls_die "not converged within 300 s"
fi
T_CONV=$(now)
fetch_lag

step "independent check: row count and a row-hash sum of every table, source vs target"
MISMATCH=0
for t in pgbench_accounts pgbench_branches pgbench_tellers pgbench_history oddities; do
	# order-independent and cheap: count and sum of a 64-bit hash of each row's text
	q="SELECT count(*) || ' ' || coalesce(sum(hashtextextended(x::text, 0)::numeric), 0) FROM $t x"
	a=$(sql src shop "$q")
	b=$(sql dst shop "$q")
	if [ "$a" = "$b" ]; then r=same; else r=DIFFERENT; MISMATCH=$((MISMATCH + 1)); fi
	printf '  %-18s %10s rows  %s\n' "$t" "${a%% *}" "$r"
done

ROWS_COPIED=$(lsctl status --json | jq -r '.snapshot.rows_copied // ([.snapshot.tables[].rows] | add)')
CHANGES=$(jq -r '[.targets[].changes_applied] | add' "$LAGJ")
TXNS=$(jq -r '[.targets[].txns_applied] | add' "$LAGJ")
DRIFT_ROWS=$(lsctl drift --json | jq -r '.drift_rows')
CPU=$(proc_cpu "$LSD_PID")
HWM=$(proc_hwm_kb "$LSD_PID")

step "summary"
printf '  rows copied (snapshot)   %s in %.1f s\n' "$ROWS_COPIED" "$SNAP_S"
printf '  changes applied          %s in %s source transactions\n' "$CHANGES" "$TXNS"
printf '  snapshot backlog         applied in %.1f s after the copy\n' "$CATCHUP_S"
printf '  peak apply lag           %.0f ms (under the load, once caught up)\n' "$(echo "$PEAK_LAG * 1000" | bc)"
printf '  time to converge         %.1f s after the load stopped (drift check included)\n' "$(echo "$T_CONV - $T_STOP" | bc)"
printf '  drift                    %s rows (lockstepctl drift), %s table(s) differ (checksums above)\n' "$DRIFT_ROWS" "$MISMATCH"
printf '  lockstepd                %s s CPU, peak RSS %s MiB\n' "$CPU" "$((HWM / 1024))"
printf '  whole demo               %.0f s\n' "$(echo "$(now) - $T_START" | bc)"

step "the config this demo ran (copy it; conninfo, brokers and paths are this run's)"
cat "$CONF"

echo
lsd_stop
if [ "$DRIFT_RC" != 0 ] || [ "$MISMATCH" != 0 ] || [ "$DRIFT_ROWS" != 0 ]; then
	bold "FAILED: the target differs from the source"
	exit 1
fi
bold "done: the target converged with no drift; tearing everything down"
