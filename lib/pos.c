#include "pos.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Parses the decimal digits of [p, end) into *out, refusing an empty run, a
 * non-digit and values above max. */
static int parse_dec(const char *p, const char *end, uint64_t max, uint64_t *out)
{
	if (p == end)
		return -1;
	uint64_t v = 0;
	for (; p < end; p++) {
		if (!is_digit(*p))
			return -1;
		unsigned d = (unsigned)(*p - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* snprintf that reports truncation as -1 instead of a longer length. */
static int fit(int n, size_t size)
{
	return n < 0 || (size_t)n >= size ? -1 : n;
}

/* ---- LSN ----------------------------------------------------------------------- */

/* Parses 1 to 8 hex digits at *p into a 32-bit half, advancing *p. */
static int lsn_half(const char **p, uint32_t *out)
{
	uint32_t v = 0;
	int n = 0;
	int d;
	while ((d = hexval(**p)) >= 0) {
		if (++n > 8)
			return -1;
		v = v << 4 | (uint32_t)d;
		(*p)++;
	}
	if (n == 0)
		return -1;
	*out = v;
	return 0;
}

int ls_lsn_parse(const char *s, uint64_t *out, struct ls_err *err)
{
	const char *p = s;
	uint32_t hi, lo;
	if (lsn_half(&p, &hi) < 0 || *p != '/')
		return ls_err_set(err, false,
				  "LSN \"%.40s\": expected 1 to 8 hex digits then '/'", s);
	p++;
	if (lsn_half(&p, &lo) < 0 || *p != '\0')
		return ls_err_set(err, false,
				  "LSN \"%.40s\": expected 1 to 8 hex digits after '/' and nothing more", s);
	*out = (uint64_t)hi << 32 | lo;
	return 0;
}

int ls_lsn_format(uint64_t lsn, char *buf, size_t size)
{
	return fit(snprintf(buf, size, "%" PRIX32 "/%" PRIX32,
			    (uint32_t)(lsn >> 32), (uint32_t)lsn), size);
}

int ls_lsn_cmp(uint64_t a, uint64_t b)
{
	return (a > b) - (a < b);
}

/* ---- GTID sets ----------------------------------------------------------------- */

void ls_gtid_set_init(struct ls_gtid_set *s)
{
	s->n = 0;
}

/* Parses "d-s-n" from [p, end).  On failure returns -1 and names the part in
 * *what. */
static int gtid_parse_range(const char *p, const char *end, struct ls_gtid *out,
			    const char **what)
{
	const char *d1 = memchr(p, '-', (size_t)(end - p));
	const char *d2 = d1 ? memchr(d1 + 1, '-', (size_t)(end - d1 - 1)) : NULL;
	if (d2 == NULL) {
		*what = "expected domain-server-seq";
		return -1;
	}
	uint64_t dom, srv, seq;
	if (parse_dec(p, d1, UINT32_MAX, &dom) < 0) {
		*what = "bad domain id (decimal, at most 4294967295)";
		return -1;
	}
	if (parse_dec(d1 + 1, d2, UINT32_MAX, &srv) < 0) {
		*what = "bad server id (decimal, at most 4294967295)";
		return -1;
	}
	if (parse_dec(d2 + 1, end, UINT64_MAX, &seq) < 0) {
		*what = "bad sequence number (decimal, at most 18446744073709551615)";
		return -1;
	}
	out->domain = (uint32_t)dom;
	out->server = (uint32_t)srv;
	out->seq = seq;
	return 0;
}

int ls_gtid_parse(const char *s, struct ls_gtid *out, struct ls_err *err)
{
	const char *what;
	if (gtid_parse_range(s, s + strlen(s), out, &what) < 0)
		return ls_err_set(err, false, "GTID \"%.64s\": %s", s, what);
	return 0;
}

/* Index of domain's entry, or of where it would be inserted (binary search). */
static unsigned gtid_slot(const struct ls_gtid_set *s, uint32_t domain)
{
	unsigned lo = 0, hi = s->n;
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		if (s->g[mid].domain < domain)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct ls_gtid *ls_gtid_set_find(const struct ls_gtid_set *s, uint32_t domain)
{
	unsigned i = gtid_slot(s, domain);
	return i < s->n && s->g[i].domain == domain ? &s->g[i] : NULL;
}

/* Inserts g; returns 1 if its domain was already present (and leaves the set
 * unchanged unless replace), -1 when full, 0 when inserted. */
static int gtid_put(struct ls_gtid_set *s, const struct ls_gtid *g, bool replace)
{
	unsigned i = gtid_slot(s, g->domain);
	if (i < s->n && s->g[i].domain == g->domain) {
		if (replace)
			s->g[i] = *g;
		return 1;
	}
	if (s->n == LS_GTID_MAX_DOMAINS)
		return -1;
	memmove(&s->g[i + 1], &s->g[i], (s->n - i) * sizeof s->g[0]);
	s->g[i] = *g;
	s->n++;
	return 0;
}

int ls_gtid_set_add(struct ls_gtid_set *s, const struct ls_gtid *g, struct ls_err *err)
{
	if (gtid_put(s, g, true) < 0)
		return ls_err_set(err, false,
				  "GTID set: more than %d domains (adding domain %" PRIu32 ")",
				  LS_GTID_MAX_DOMAINS, g->domain);
	return 0;
}

int ls_gtid_set_parse(const char *s, struct ls_gtid_set *out, struct ls_err *err)
{
	struct ls_gtid_set set;
	ls_gtid_set_init(&set);
	const char *p = s;
	while (is_space(*p))
		p++;
	for (unsigned entry = 1; *p != '\0'; entry++) {
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);
		const char *last = end;
		while (last > p && is_space(last[-1]))
			last--;
		struct ls_gtid g;
		const char *what;
		int n = (int)(last - p > 64 ? 64 : last - p);
		if (gtid_parse_range(p, last, &g, &what) < 0)
			return ls_err_set(err, false, "GTID set: entry %u \"%.*s\": %s",
					  entry, n, p, what);
		int rc = gtid_put(&set, &g, false);
		if (rc > 0)
			return ls_err_set(err, false,
					  "GTID set: entry %u \"%.*s\": domain %" PRIu32 " appears twice",
					  entry, n, p, g.domain);
		if (rc < 0)
			return ls_err_set(err, false, "GTID set: more than %d domains",
					  LS_GTID_MAX_DOMAINS);
		if (comma == NULL)
			break;
		p = comma + 1;
		while (is_space(*p))
			p++;
		if (*p == '\0')
			return ls_err_set(err, false, "GTID set: entry %u is empty (trailing ',')",
					  entry + 1);
	}
	*out = set;
	return 0;
}

int ls_gtid_set_format(const struct ls_gtid_set *s, char *buf, size_t size)
{
	if (size == 0)
		return -1;
	size_t len = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < s->n; i++) {
		int n = snprintf(buf + len, size - len, "%s%" PRIu32 "-%" PRIu32 "-%" PRIu64,
				 i ? "," : "", s->g[i].domain, s->g[i].server, s->g[i].seq);
		if (fit(n, size - len) < 0)
			return -1;
		len += (size_t)n;
	}
	return (int)len;
}

bool ls_gtid_set_contains(const struct ls_gtid_set *a, const struct ls_gtid_set *b)
{
	for (unsigned i = 0; i < b->n; i++) {
		const struct ls_gtid *g = ls_gtid_set_find(a, b->g[i].domain);
		if (g == NULL || g->seq < b->g[i].seq)
			return false;
	}
	return true;
}

bool ls_gtid_set_equal(const struct ls_gtid_set *a, const struct ls_gtid_set *b)
{
	if (a->n != b->n)
		return false;
	for (unsigned i = 0; i < a->n; i++)
		if (a->g[i].domain != b->g[i].domain || a->g[i].server != b->g[i].server ||
		    a->g[i].seq != b->g[i].seq)
			return false;
	return true;
}

/* ---- binlog file:offset ---------------------------------------------------------- */

int ls_binlog_pos_parse(const char *s, struct ls_binlog_pos *out, struct ls_err *err)
{
	const char *colon = strrchr(s, ':');
	if (colon == NULL)
		return ls_err_set(err, false, "binlog position \"%.64s\": expected file:offset", s);
	size_t flen = (size_t)(colon - s);
	if (flen == 0 || flen >= LS_BINLOG_FILE_MAX)
		return ls_err_set(err, false,
				  "binlog position \"%.64s\": file name must be 1 to %d bytes",
				  s, LS_BINLOG_FILE_MAX - 1);
	if (memchr(s, '/', flen) || memchr(s, ':', flen))
		return ls_err_set(err, false,
				  "binlog position \"%.64s\": file name holds '/' or ':'", s);
	const char *dot = NULL;
	for (const char *p = colon; p > s; p--)
		if (p[-1] == '.') {
			dot = p - 1;
			break;
		}
	uint64_t fileno, off;
	if (dot == NULL || colon - dot - 1 > 10 ||
	    parse_dec(dot + 1, colon, UINT32_MAX, &fileno) < 0)
		return ls_err_set(err, false,
				  "binlog position \"%.64s\": file name must end in '.' and a number", s);
	if (parse_dec(colon + 1, colon + 1 + strlen(colon + 1), UINT64_MAX, &off) < 0)
		return ls_err_set(err, false,
				  "binlog position \"%.64s\": bad offset (decimal digits only)", s);
	memcpy(out->file, s, flen);
	out->file[flen] = '\0';
	out->fileno = (uint32_t)fileno;
	out->offset = off;
	return 0;
}

int ls_binlog_pos_format(const struct ls_binlog_pos *p, char *buf, size_t size)
{
	return fit(snprintf(buf, size, "%s:%" PRIu64, p->file, p->offset), size);
}

int ls_binlog_pos_cmp(const struct ls_binlog_pos *a, const struct ls_binlog_pos *b)
{
	if (a->fileno != b->fileno)
		return a->fileno < b->fileno ? -1 : 1;
	if (a->offset != b->offset)
		return a->offset < b->offset ? -1 : 1;
	int c = strcmp(a->file, b->file);
	return (c > 0) - (c < 0);
}

int ls_binlog_pos_seq(const struct ls_binlog_pos *p, uint64_t *out, struct ls_err *err)
{
	if (p->offset > UINT32_MAX)
		return ls_err_set(err, false,
				  "binlog position %s:%" PRIu64 ": offset does not fit in 32 bits",
				  p->file, p->offset);
	*out = (uint64_t)p->fileno << 32 | p->offset;
	return 0;
}
