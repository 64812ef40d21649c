#!/usr/bin/env bash
# Records the golden binlog events in this folder from a real MariaDB 10.11
# (binlog_format=ROW, binlog_row_image=FULL, binlog_checksum=CRC32):
#   tests/data/binlog/record.sh
# It starts a throwaway server in a temporary directory (as the "mysql" user
# when run as root), runs each scenario into its own binlog file (FLUSH
# BINARY LOGS between them), and writes <name>.hex: a header line
# "# checksum crc32" and then one hex line per TABLE_MAP / *_ROWS event, the
# whole event (19-byte header, body, 4-byte CRC32) as it is in the file.
# The matching <name>.expected is the decoder's output, reviewed by hand;
# regenerate it with LS_MYR_REGEN=1 build/tests/test_my_rows and review the
# diff.  Fuzz seeds for tests/fuzz/fuzz_my_rows.c are written too.
set -euo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/ls-binlog-rec.XXXXXX)
port=$((20000 + RANDOM % 20000))
cleanup() {
	[ -f "$tmp/my.pid" ] && kill "$(cat "$tmp/my.pid")" 2>/dev/null || true
	sleep 1; rm -rf "$tmp"
}
trap cleanup EXIT
user=()
if [ "$(id -u)" = 0 ]; then chown mysql "$tmp"; user=(--user=mysql); fi
mariadb-install-db --no-defaults --datadir="$tmp/data" "${user[@]}" \
	--auth-root-authentication-method=normal --skip-test-db >/dev/null
[ "$(id -u)" = 0 ] && chown -R mysql "$tmp"
mariadbd --no-defaults "${user[@]}" --datadir="$tmp/data" --port=$port \
	--bind-address=127.0.0.1 --socket="$tmp/my.sock" --pid-file="$tmp/my.pid" \
	--log-bin="$tmp/data/binlog" --binlog-format=ROW --binlog-row-image=FULL \
	--binlog-checksum=CRC32 --server-id=1 --innodb-buffer-pool-size=32M \
	--skip-name-resolve >"$tmp/server.log" 2>&1 &
for _ in $(seq 100); do
	mariadb -uroot -h127.0.0.1 -P$port -e 'SELECT 1' >/dev/null 2>&1 && break
	sleep 0.2
done
q() { mariadb -uroot -h127.0.0.1 -P$port --default-character-set=utf8mb4 "$@"; }
q -e "CREATE DATABASE rec"

# scenario name global-settings setup-sql captured-sql
scenario() {
	local name=$1 globals=$2 setup=$3 sql=$4
	q -e "$globals"
	q rec -e "$setup"
	q -e "FLUSH BINARY LOGS"
	local file
	file=$(q -N -e "SHOW MASTER STATUS" | cut -f1)
	q rec <<<"$sql"
	q -e "FLUSH BINARY LOGS"
	python3 - "$tmp/data/$file" "$dir/$name.hex" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
assert data[:4] == b"\xfebin"
out, off = ["# checksum crc32"], 4
while off + 19 <= len(data):
    size = int.from_bytes(data[off + 9:off + 13], "little")
    if data[off + 4] in (19, 23, 24, 25, 30, 31, 32):
        out.append(data[off:off + size].hex())
    off += size
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
	q rec -e "DROP DATABASE rec; CREATE DATABASE rec"
	echo "recorded $name: $(($(wc -l <"$dir/$name.hex") - 1)) events"
}

types_table="
CREATE TABLE ty (
 id int PRIMARY KEY,
 ti tinyint, tu tinyint unsigned, si smallint, su smallint unsigned,
 mi mediumint, mu mediumint unsigned, i int, iu int unsigned,
 bi bigint, bu bigint unsigned,
 d1 decimal(10,2), d2 decimal(65,30), d3 decimal(5,0), d4 decimal(20,10) unsigned,
 d5 decimal(3,3), d6 decimal(18,9),
 f float, dbl double,
 dt date, t0 time, t3 time(3), t6 time(6),
 dt0 datetime, dt1 datetime(1), dt2 datetime(2), dt4 datetime(4), dt6 datetime(6),
 ts0 timestamp NULL, ts3 timestamp(3) NULL, ts5 timestamp(5) NULL, ts6 timestamp(6) NULL,
 y year,
 c char(10), c70 char(70), vc varchar(20), vcl varchar(300),
 tt tinytext, tx text, mt mediumtext, lt longtext,
 lat varchar(10) CHARACTER SET latin1,
 bn binary(4), vb varbinary(10), tb tinyblob, bl blob, mb mediumblob, lb longblob,
 e enum('a','b','c''q'), s set('x','y','z','w1','w2','w3','w4','w5','w6'),
 b1 bit(1), b13 bit(13), b64 bit(64),
 j json, pt point
) DEFAULT CHARSET=utf8mb4;
CREATE TABLE ints (id int NOT NULL, a tinyint, b smallint unsigned, c bigint, PRIMARY KEY (id, c));
CREATE TABLE nokey (a int, b varchar(5));
"
types_sql="
SET time_zone = '+00:00';
INSERT INTO ty VALUES (1,
 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,
 9223372036854775807, 18446744073709551615,
 12345678.99, 12345678901234567890123456789012345.123456789012345678901234567890,
 99999, 9999999999.9999999999, 0.999, 123456789.123456789,
 1.5, 0.1,
 '2024-02-29', '838:59:59', '12:34:56.789', '23:59:59.999999',
 '9999-12-31 23:59:59', '2000-01-01 00:00:00.1', '2000-01-01 00:00:00.12',
 '2000-01-01 00:00:00.1234', '9999-12-31 23:59:59.999999',
 '2038-01-19 03:14:07', '1970-01-01 00:00:01.001', '2001-02-03 04:05:06.12345', '2024-06-30 12:00:00.000001',
 2155,
 'hé', 'ab', 'héllo ☃ 😀', REPEAT('x', 300),
 'tiny', 'text', 'medium', 'long',
 'café',
 X'00010200', X'ff00', X'', X'0102', X'03', X'04',
 'c''q', 'x,z,w6',
 b'1', b'1010101010101', b'1111111111111111111111111111111111111111111111111111111111111111',
 '{\"a\": [1, 2.5]}', POINT(1, -2));
INSERT INTO ty (id, ti, tu, si, su, mi, mu, i, iu, bi, bu, d1, d2, d3, d4, d5, d6, f, dbl,
 t0, t3, t6, dt0, y, c, vc, e, s, b1, b13, b64)
VALUES (2, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
 -12345678.99, -0.000000000000000000000000000001, -99999, 0, -0.5, -123456789.123456789,
 -3.4e38, -1.7976931348623157e308,
 '-838:59:59', '-00:00:01.5', '-12:00:00.000001', '1000-01-01 00:00:00', 1901, '', '', 'a', '', b'0', b'0', b'0'),
 (3, -5, 5, -5, 5, -5, 5, -5, 5, -5, 5, -0.05, 0, 0, 0, 0.001, -0.000000001, 0, 5e-324,
 '00:00:00', '-00:00:00.001', '00:00:00.5', '2020-02-02 02:02:02', 0, 'x ', 'x  ', 'b', 'w1', NULL, NULL, NULL);
INSERT INTO ty (id) VALUES (4);
SET sql_mode = '';
INSERT INTO ty (id, dt, dt0, dt6, ts0, ts6, y) VALUES (5, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', 0, 0, 0);
SET sql_mode = DEFAULT;
UPDATE ty SET i = i - 1, vc = 'upd' WHERE id = 1;
UPDATE ty SET ti = 0 WHERE id IN (2, 3);
DELETE FROM ty WHERE id = 2;
BEGIN;
INSERT INTO ints VALUES (1, -1, 1, -1), (2, NULL, 65535, 9223372036854775807);
UPDATE ints SET a = 7;
DELETE FROM ints;
COMMIT;
INSERT INTO nokey VALUES (1, 'one'), (NULL, NULL);
UPDATE nokey SET b = 'uno' WHERE a = 1;
DELETE FROM nokey;
"

scenario types_full "SET GLOBAL binlog_row_metadata = FULL" "$types_table" "$types_sql"
scenario types_nometa "SET GLOBAL binlog_row_metadata = NO_LOG" "$types_table" "$types_sql"
scenario types_minimal "SET GLOBAL binlog_row_metadata = MINIMAL" "$types_table" "$types_sql"
scenario old_temporal "SET GLOBAL binlog_row_metadata = FULL; SET GLOBAL mysql56_temporal_format = OFF" "
CREATE TABLE ot0 (id int PRIMARY KEY, t time, d datetime, s timestamp NULL);
CREATE TABLE ot (id int PRIMARY KEY, t0 time, t3 time(3), d0 datetime, d6 datetime(6),
 s0 timestamp NULL, s2 timestamp(2) NULL);
" "
SET time_zone = '+00:00';
INSERT INTO ot0 VALUES (1, '-12:34:56', '2001-02-03 04:05:06', '2001-02-03 04:05:06'),
 (2, '838:59:59', '9999-12-31 23:59:59', '2038-01-19 03:14:07'), (3, NULL, NULL, NULL);
INSERT INTO ot VALUES (1, '-12:34:56', '01:02:03.456', '2001-02-03 04:05:06', '2001-02-03 04:05:06.654321',
 '2001-02-03 04:05:06', '2001-02-03 04:05:06.78');
"

# Fuzz seeds: each scenario in fuzz_my_rows's framing (event type byte, 2-byte
# big-endian body length, body without the header and the checksum).
seeds=$dir/../fuzz/fuzz_my_rows
mkdir -p "$seeds"
python3 - "$dir" "$seeds" <<'PY'
import glob, os, sys
src, dst = sys.argv[1], sys.argv[2]
for path in sorted(glob.glob(os.path.join(src, "*.hex"))):
    out = bytearray()
    for h in [l for l in open(path).read().split("\n") if l and not l.startswith("#")]:
        ev = bytes.fromhex(h)
        body = ev[19:-4][:65535]
        out += bytes([ev[4]]) + len(body).to_bytes(2, "big") + body
    name = os.path.basename(path)[:-4]
    open(os.path.join(dst, name), "wb").write(out)
PY
