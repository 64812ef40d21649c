/* pos — source positions in each engine's own notation: parse, format,
 * compare.
 *
 *   PostgreSQL LSN        "16/B374D848"         (uint64_t)
 *   MariaDB GTID set      "0-1-100,1-2-5"       (struct ls_gtid_set)
 *   binlog file:offset    "binlog.000003:4521"  (struct ls_binlog_pos)
 *
 * Everything here is pure and bounded: no allocation, fixed-size results,
 * input is never trusted.  Parsers take NUL-terminated strings, reject
 * anything that is not exactly one position (leading/trailing garbage,
 * overflow) and say which part is wrong in err.  Formatters write
 * NUL-terminated text and fail (-1) rather than truncate.
 */
#ifndef LS_POS_H
#define LS_POS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* ---- PostgreSQL LSN ------------------------------------------------------ */

/* "XXXXXXXX/XXXXXXXX" plus NUL. */
#define LS_LSN_TEXT_MAX 18

/* Parses "hi/lo", each 1 to 8 hex digits (either case), as PostgreSQL's
 * pg_lsn does.  Returns 0 and sets *out, or -1 with err set. */
int ls_lsn_parse(const char *s, uint64_t *out, struct ls_err *err);
/* Writes PostgreSQL's spelling ("16/B374D848", upper case, no padding).
 * size >= LS_LSN_TEXT_MAX always suffices.  Returns the length or -1 when
 * buf is too small. */
int ls_lsn_format(uint64_t lsn, char *buf, size_t size);
/* <0, 0, >0 as a is before, equal to, after b. */
int ls_lsn_cmp(uint64_t a, uint64_t b);

/* ---- MariaDB GTID sets ----------------------------------------------------- */

/* A set holds at most one GTID per replication domain.  Parsing refuses more
 * domains than this, so input never makes the set grow. */
#define LS_GTID_MAX_DOMAINS 64

struct ls_gtid {
	uint32_t domain;
	uint32_t server;
	uint64_t seq;
};

struct ls_gtid_set {
	unsigned n;                                /* entries used */
	struct ls_gtid g[LS_GTID_MAX_DOMAINS];     /* sorted by domain, unique */
};

void ls_gtid_set_init(struct ls_gtid_set *s);    /* the empty set */

/* Parses one "domain-server-seq" (decimal, no sign, no spaces). */
int ls_gtid_parse(const char *s, struct ls_gtid *out, struct ls_err *err);

/* Parses a comma-separated list of GTIDs as MariaDB prints @@gtid_binlog_pos
 * and friends.  Whitespace around entries is ignored; "" (or only spaces) is
 * the empty set.  A domain listed twice is an error, as in MariaDB.  Errors
 * name the bad entry: `GTID set: entry 2 "0-x-5": bad server id`. */
int ls_gtid_set_parse(const char *s, struct ls_gtid_set *out, struct ls_err *err);

/* Canonical text: entries sorted by domain, "," between, no spaces; the empty
 * set is "".  Returns the length, or -1 when buf is too small. */
int ls_gtid_set_format(const struct ls_gtid_set *s, char *buf, size_t size);

/* Records that g was applied: g becomes its domain's entry (replacing the
 * previous one, as MariaDB's binlog position does; binlog order is the
 * authority, not seq).  -1 with err set when the set is full. */
int ls_gtid_set_add(struct ls_gtid_set *s, const struct ls_gtid *g, struct ls_err *err);

/* The GTID of domain, or NULL when the set has none. Borrowed from s. */
const struct ls_gtid *ls_gtid_set_find(const struct ls_gtid_set *s, uint32_t domain);

/* True when a has reached b: for every domain in b, a has that domain with a
 * seq at least b's.  Server ids are not compared (seq numbers are per domain).
 * Every set contains the empty set. */
bool ls_gtid_set_contains(const struct ls_gtid_set *a, const struct ls_gtid_set *b);

/* Same domains with the same server and seq. */
bool ls_gtid_set_equal(const struct ls_gtid_set *a, const struct ls_gtid_set *b);

/* ---- binlog file:offset ------------------------------------------------------ */

#define LS_BINLOG_FILE_MAX 256     /* file name bytes including NUL */

struct ls_binlog_pos {
	char file[LS_BINLOG_FILE_MAX];   /* "binlog.000003" */
	uint32_t fileno;                 /* 3: the numeric extension */
	uint64_t offset;                 /* 4521 */
};

/* Parses "name.NNNNNN:offset".  The file name must end in "." and 1 to 10
 * digits (fitting in uint32), hold no '/' or ':' and be shorter than
 * LS_BINLOG_FILE_MAX; the offset is decimal. */
int ls_binlog_pos_parse(const char *s, struct ls_binlog_pos *out, struct ls_err *err);
/* "file:offset". Returns the length, or -1 when buf is too small. */
int ls_binlog_pos_format(const struct ls_binlog_pos *p, char *buf, size_t size);
/* Orders by file number, then offset, then (only to make the order total)
 * file name.  Positions of differently named binlogs do not compare
 * meaningfully; callers keep to one server's binlog. */
int ls_binlog_pos_cmp(const struct ls_binlog_pos *a, const struct ls_binlog_pos *b);
/* A monotonic ls_pos.seq for this position: fileno << 32 | offset.  -1 with
 * err set when the offset does not fit in 32 bits (the binlog protocol's
 * event positions are 32-bit, so a real server never produces one). */
int ls_binlog_pos_seq(const struct ls_binlog_pos *p, uint64_t *out, struct ls_err *err);

#endif
