#!/usr/bin/env bash
# Records the golden pgoutput messages in this folder from a real PostgreSQL
# (15) with wal_level=logical and logical_decoding_work_mem=64kB:
#   tests/data/pgoutput/record.sh "host=/tmp/sock port=5432 user=postgres"
# Each scenario runs its setup, creates a slot, runs its captured SQL, and
# writes <name>.hex: a header line "# proto N" and then one hex line per
# message as pg_logical_slot_peek_binary_changes returned them.  The matching
# <name>.expected is the decoder's output, reviewed by hand; regenerate it
# with LS_PGO_REGEN=1 build/tests/test_pgoutput and review the diff.
set -euo pipefail
conn=$1
dir=$(cd "$(dirname "$0")" && pwd)
db=ls_pgo_record
export PGOPTIONS='-c client_min_messages=warning'
psql "$conn dbname=postgres" -qAt -v ON_ERROR_STOP=1 \
	-c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
q() { psql "$conn dbname=$db" -qAt -v ON_ERROR_STOP=1 "$@"; }

# scenario name proto extra-options setup-sql captured-sql
scenario() {
	local name=$1 proto=$2 opts=$3 setup=$4 sql=$5
	q -c "DROP PUBLICATION IF EXISTS pub" -c "$setup" -c "CREATE PUBLICATION pub FOR ALL TABLES" >/dev/null
	q -c "SELECT pg_create_logical_replication_slot('rec', 'pgoutput')" >/dev/null
	q <<<"$sql" >/dev/null     # one statement at a time, as a client would
	{
		echo "# proto $proto"
		q -c "SELECT encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('rec', NULL, NULL,
			'proto_version', '$proto', 'publication_names', 'pub', 'messages', 'true' $opts)"
	} >"$dir/$name.hex"
	q -c "SELECT pg_drop_replication_slot('rec')" >/dev/null
	q -c "DROP SCHEMA public CASCADE" -c "CREATE SCHEMA public"
	echo "recorded $name: $(($(wc -l <"$dir/$name.hex") - 1)) messages"
}

scenario dml_v1 1 "" "
CREATE TABLE pk (id int PRIMARY KEY, name text, n int);
CREATE TABLE full_t (a int, b text);
ALTER TABLE full_t REPLICA IDENTITY FULL;
CREATE TABLE idx_t (id int PRIMARY KEY, code text NOT NULL, v int);
CREATE UNIQUE INDEX idx_t_code ON idx_t (code);
ALTER TABLE idx_t REPLICA IDENTITY USING INDEX idx_t_code;
CREATE TABLE nokey (a int, b text);
CREATE TABLE ri_nothing (a int);
ALTER TABLE ri_nothing REPLICA IDENTITY NOTHING;
CREATE TABLE multi (a int, b text, c int, PRIMARY KEY (b, a));
" "
INSERT INTO pk VALUES (1, 'one', 10), (2, NULL, 20);
UPDATE pk SET name = 'uno' WHERE id = 1;
UPDATE pk SET id = 3 WHERE id = 2;
DELETE FROM pk WHERE id = 1;
BEGIN; INSERT INTO full_t VALUES (1, 'a'), (2, NULL); UPDATE full_t SET b = 'b' WHERE a = 1; DELETE FROM full_t WHERE a = 2; COMMIT;
INSERT INTO idx_t VALUES (1, 'x', 1);
UPDATE idx_t SET v = 2;
UPDATE idx_t SET code = 'y';
DELETE FROM idx_t;
INSERT INTO nokey VALUES (1, 'k');
INSERT INTO ri_nothing VALUES (5);
INSERT INTO multi VALUES (1, 'b', 2);
UPDATE multi SET c = 3;
UPDATE multi SET a = 9;
DELETE FROM multi;
"

scenario toast_v1 1 "" "
CREATE TABLE big (id int PRIMARY KEY, note text, body text);
ALTER TABLE big ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE TABLE big_full (id int, body text, n int);
ALTER TABLE big_full REPLICA IDENTITY FULL;
" "
INSERT INTO big SELECT 1, 'first', string_agg(md5(i::text), '') FROM generate_series(1, 200) i;
UPDATE big SET note = 'second' WHERE id = 1;
UPDATE big SET body = 'short' WHERE id = 1;
DELETE FROM big;
INSERT INTO big_full SELECT 1, string_agg(md5(i::text), ''), 1 FROM generate_series(1, 100) i;
UPDATE big_full SET n = 2;
"

scenario types_v1 1 "" "
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE ty (
 id serial PRIMARY KEY, i2 int2, i4 int4, i8 int8, num numeric(12,3), numx numeric,
 f4 real, f8 double precision, t text, vc varchar(10), ch char(3), by bytea, b bool,
 d date, tm time, tmtz timetz, ts timestamp(3), tstz timestamptz, iv interval, u uuid, j json, jb jsonb,
 ai int[], at text[], m mood, p posint, x xml, inet_c inet, bits bit varying(8), pt point);
" "
SET timezone = 'UTC';
INSERT INTO ty (i2, i4, i8, num, numx, f4, f8, t, vc, ch, by, b, d, tm, tmtz, ts, tstz, iv, u, j, jb, ai, at, m, p, x, inet_c, bits, pt)
VALUES (-32768, 2147483647, -9223372036854775808, 123456789.125, 'NaN', 'Infinity', -1.5e-300,
 E'h\u00e9llo \u2603 \U0001F600 tab\there nl\nq''uote back\\\\slash \\001', 'abc', 'x', '\\x00ff10', true,
 '2024-02-29', '23:59:59.999999', '12:00+05:30', '1999-12-31 23:59:59.123', '2000-01-01 00:00:00+00',
 '1 year 2 mons -3 days 04:05:06.7', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": [1, 2.50]}',
 '{\"b\": null, \"a\": 1}', '{1,NULL,3}', '{\"x y\",\"\",NULL}', 'happy', 42, '<a>b</a>', '10.0.0.1/8',
 B'101', '(1.5,-2)');
INSERT INTO ty (i2) VALUES (NULL);
INSERT INTO ty (numx, tstz, d, ts) VALUES ('-0.000001', 'infinity', '-infinity', '4713-01-01 BC');
"

scenario truncate_v1 1 "" "
CREATE TABLE parent (id serial PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, pid int REFERENCES parent);
CREATE TABLE lone (id int PRIMARY KEY);
" "
INSERT INTO parent DEFAULT VALUES;
INSERT INTO child VALUES (1, 1);
INSERT INTO lone VALUES (1);
TRUNCATE lone;
TRUNCATE parent CASCADE;
TRUNCATE lone RESTART IDENTITY;
TRUNCATE parent, lone RESTART IDENTITY CASCADE;
"

scenario message_v1 1 "" "CREATE TABLE t (id int PRIMARY KEY);" "
SELECT pg_logical_emit_message(false, 'lockstep', 'heartbeat 1');
BEGIN;
INSERT INTO t VALUES (1);
SELECT pg_logical_emit_message(true, 'lockstep.drift', E'\\\\x00ff'::bytea);
SELECT pg_logical_emit_message(true, '', '');
COMMIT;
BEGIN;
SELECT pg_logical_emit_message(true, 'rolled', 'back');
SELECT pg_logical_emit_message(false, 'nontx', 'in aborted txn');
ROLLBACK;
INSERT INTO t VALUES (2);
"

scenario origin_v1 1 "" "
CREATE TABLE t (id int PRIMARY KEY);
SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin;
SELECT pg_replication_origin_create('upstream_a');
" "
SELECT pg_replication_origin_session_setup('upstream_a');
BEGIN;
SELECT pg_replication_origin_xact_setup('1/23456789', '2024-01-02 03:04:05+00');
INSERT INTO t VALUES (1);
COMMIT;
SELECT pg_replication_origin_session_reset();
INSERT INTO t VALUES (2);
"

scenario ddl_v1 1 "" "CREATE TABLE t (id int PRIMARY KEY, a text);" "
INSERT INTO t VALUES (1, 'x');
ALTER TABLE t ADD COLUMN b int;
INSERT INTO t VALUES (2, 'y', 2);
ALTER TABLE t ALTER COLUMN a TYPE varchar(20);
INSERT INTO t VALUES (3, 'z', 3);
ALTER TABLE t DROP COLUMN a;
INSERT INTO t VALUES (4, 4);
ALTER TABLE t RENAME TO t2;
INSERT INTO t2 VALUES (5, 5);
ALTER TABLE t2 REPLICA IDENTITY FULL;
UPDATE t2 SET b = 6 WHERE id = 5;
"

scenario binary_v1 1 ", 'binary', 'true'" "
CREATE TABLE bin (id int8 PRIMARY KEY, t text, by bytea, n numeric, b bool, ts timestamptz, a int4[]);
" "
INSERT INTO bin VALUES (1, 'txt', '\\x0001', 3.14, true, '2000-01-01 00:00:01+00', '{1,2}');
UPDATE bin SET t = NULL;
DELETE FROM bin;
"

scenario stream_v2 2 ", 'streaming', 'on'" "
CREATE TABLE s (id int PRIMARY KEY, v text);
CREATE TABLE small (id int PRIMARY KEY);
" "
INSERT INTO small VALUES (1);
BEGIN;
INSERT INTO s SELECT i, md5(i::text) FROM generate_series(1, 700) i;
SELECT pg_logical_emit_message(true, 'in', 'stream');
TRUNCATE small;
SAVEPOINT sp;
INSERT INTO s SELECT i, md5(i::text) FROM generate_series(701, 1400) i;
ROLLBACK TO sp;
UPDATE s SET v = 'changed' WHERE id = 1;
DELETE FROM s WHERE id = 2;
COMMIT;
BEGIN;
INSERT INTO s SELECT i, md5(i::text) FROM generate_series(2001, 2700) i;
ROLLBACK;
INSERT INTO small VALUES (2);
"

# Fuzz seeds: each scenario (at most 300 messages) in fuzz_pgoutput's framing.
seeds=$dir/../fuzz/fuzz_pgoutput
mkdir -p "$seeds"
python3 - "$dir" "$seeds" <<'PY'
import glob, os, sys
src, dst = sys.argv[1], sys.argv[2]
for path in sorted(glob.glob(os.path.join(src, "*.hex"))):
    lines = open(path).read().split("\n")
    proto = int(lines[0].split()[2])
    out = bytearray([proto - 1])
    for h in [l for l in lines[1:] if l][:300]:
        m = bytes.fromhex(h)
        out += len(m).to_bytes(2, "big") + m
    name = os.path.basename(path)[:-4]
    open(os.path.join(dst, name), "wb").write(out)
PY
