/* my_rows — decoder of MariaDB/MySQL row-based binlog events (API and value
 * formats in my_rows.h).  The layouts follow the server's binlog format
 * documentation; the integer, decimal and temporal encodings are MariaDB's
 * (and MySQL 5.6's) storage formats. */
#include "connectors/mysql/my_rows.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Column type codes (include/mysql_com.h enum_field_types). */
enum {
	T_DECIMAL = 0, T_TINY = 1, T_SHORT = 2, T_LONG = 3, T_FLOAT = 4,
	T_DOUBLE = 5, T_NULL = 6, T_TIMESTAMP = 7, T_LONGLONG = 8, T_INT24 = 9,
	T_DATE = 10, T_TIME = 11, T_DATETIME = 12, T_YEAR = 13, T_NEWDATE = 14,
	T_VARCHAR = 15, T_BIT = 16, T_TIMESTAMP2 = 17, T_DATETIME2 = 18,
	T_TIME2 = 19, T_VARCHAR_COMPRESSED = 140, T_BLOB_COMPRESSED = 141,
	T_JSON = 245, T_NEWDECIMAL = 246, T_ENUM = 247, T_SET = 248,
	T_BLOB = 252, T_VAR_STRING = 253, T_STRING = 254, T_GEOMETRY = 255,
};

/* Optional table-map metadata field types (binlog_row_metadata). */
enum {
	OPT_SIGNEDNESS = 1, OPT_DEFAULT_CHARSET = 2, OPT_COLUMN_CHARSET = 3,
	OPT_COLUMN_NAME = 4, OPT_SET_STR_VALUE = 5, OPT_ENUM_STR_VALUE = 6,
	OPT_GEOMETRY_TYPE = 7, OPT_SIMPLE_PRIMARY_KEY = 8,
	OPT_PRIMARY_KEY_WITH_PREFIX = 9,
};

#define BINARY_CHARSET 63
#define MAX_ENUM_MEMBERS 65535u
#define MAX_SET_MEMBERS 64u

/* One column of a cached map: what the map says (m_*), what the caller's
 * catalog says (i_*), and the effective result used to decode. */
struct mcol {
	uint8_t map_type;          /* as written in the map */
	uint8_t type;              /* ENUM/SET/CHAR resolved from STRING */
	uint16_t meta;             /* raw metadata, for typmod */
	uint32_t maxlen;           /* see parse_col_meta */
	uint8_t prec, scale, fsp, nbits;
	uint8_t geom;              /* GEOMETRY_TYPE, 0xff unknown */
	bool nullable;
	uint32_t coll;             /* collation id, 0 unknown */
	int8_t m_unsigned, m_binary, m_key;
	char *m_name;
	uint32_t m_nmembers;
	char **m_members;
	int8_t i_unsigned, i_binary, i_key;
	char *i_name, *i_type;
	uint32_t i_nmembers;
	char **i_members;
	/* effective */
	bool is_unsigned, is_binary, is_key;
	uint32_t nmembers;
	char *const *members;
	const char *unsupported;   /* why rows of this column cannot be read */
};

struct mtab {
	uint64_t id;
	uint64_t used;             /* LRU clock */
	uint8_t *raw;              /* the map body, to recognise a resend */
	size_t raw_len;
	char *schema, *name;
	uint16_t ncols;
	struct mcol *cols;
	uint32_t relid;            /* from the caller's info, 0 none */
	unsigned missing;
	struct ls_relation *rel;
};

struct ls_myr {
	unsigned max, n;
	struct mtab **tabs;
	uint64_t clock;
	struct ls_change *scratch; /* rows of the event being decoded */
	size_t scap;
};


/* ---- errors ------------------------------------------------------------------ */

/* Where we are, for error messages. */
struct ectx {
	struct ls_err *err;
	unsigned type;
	uint64_t table_id;
	const struct mtab *t;
	long row;                  /* -1: not in a row */
	long col;                  /* -1: not at a column */
	const char *colname;
	size_t base;               /* added to reader offsets */
};

static const char *event_name(unsigned type)
{
	switch (type) {
	case LS_MYR_TABLE_MAP: return "TABLE_MAP_EVENT";
	case LS_MYR_WRITE_ROWS_V1: return "WRITE_ROWS_EVENT_V1";
	case LS_MYR_UPDATE_ROWS_V1: return "UPDATE_ROWS_EVENT_V1";
	case LS_MYR_DELETE_ROWS_V1: return "DELETE_ROWS_EVENT_V1";
	case LS_MYR_WRITE_ROWS_V2: return "WRITE_ROWS_EVENT";
	case LS_MYR_UPDATE_ROWS_V2: return "UPDATE_ROWS_EVENT";
	case LS_MYR_DELETE_ROWS_V2: return "DELETE_ROWS_EVENT";
	}
	return "event";
}

/* Sets "<EVENT> table <id> (<schema>.<table>) row <r> column <c> (<name>):
 * <what> at byte <off>" and returns -1. */
static int fail(const struct ectx *x, size_t off, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(const struct ectx *x, size_t off, const char *fmt, ...)
{
	char what[256], tab[160] = "", row[32] = "", col[96] = "";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (x->t)
		snprintf(tab, sizeof tab, " (%.64s.%.64s)", x->t->schema, x->t->name);
	if (x->row >= 0)
		snprintf(row, sizeof row, " row %ld", x->row + 1);
	if (x->col >= 0)
		snprintf(col, sizeof col, " column %ld (%.64s)", x->col + 1,
			 x->colname ? x->colname : "?");
	return ls_err_set(x->err, false, "%s table %" PRIu64 "%s%s%s: %s at byte %zu",
			  event_name(x->type), x->table_id, tab, row, col, what,
			  x->base + off);
}

/* ---- reader ------------------------------------------------------------------ */

struct rd {
	const uint8_t *p;
	size_t len, off;
	struct ectx *x;
};

static size_t rd_left(const struct rd *r)
{
	return r->len - r->off;
}

static int rd_need(struct rd *r, size_t n, const char *what)
{
	if (n > rd_left(r))
		return fail(r->x, r->off, "%s: needs %zu bytes, %zu left", what, n, rd_left(r));
	return 0;
}

/* Little-endian unsigned of n <= 8 bytes. */
static int rd_le(struct rd *r, unsigned n, uint64_t *v, const char *what)
{
	if (rd_need(r, n, what))
		return -1;
	*v = 0;
	for (unsigned i = 0; i < n; i++)
		*v |= (uint64_t)r->p[r->off + i] << (8 * i);
	r->off += n;
	return 0;
}

/* Big-endian unsigned of n <= 8 bytes. */
static int rd_be(struct rd *r, unsigned n, uint64_t *v, const char *what)
{
	if (rd_need(r, n, what))
		return -1;
	*v = 0;
	for (unsigned i = 0; i < n; i++)
		*v = *v << 8 | r->p[r->off + i];
	r->off += n;
	return 0;
}

static int rd_u8(struct rd *r, uint8_t *v, const char *what)
{
	if (rd_need(r, 1, what))
		return -1;
	*v = r->p[r->off++];
	return 0;
}

static int rd_bytes(struct rd *r, size_t n, const uint8_t **p, const char *what)
{
	if (rd_need(r, n, what))
		return -1;
	*p = r->p + r->off;
	r->off += n;
	return 0;
}

/* The protocol's length-encoded ("packed") integer. */
static int rd_packed(struct rd *r, uint64_t *v, const char *what)
{
	uint8_t b;
	size_t at = r->off;
	if (rd_u8(r, &b, what))
		return -1;
	if (b < 251) {
		*v = b;
		return 0;
	}
	if (b == 252)
		return rd_le(r, 2, v, what);
	if (b == 253)
		return rd_le(r, 3, v, what);
	if (b == 254)
		return rd_le(r, 8, v, what);
	return fail(r->x, at, "%s: bad packed integer prefix 0x%02x", what, b);
}

/* A packed integer that must be at most max. */
static int rd_count(struct rd *r, uint64_t max, uint64_t *v, const char *what)
{
	size_t at = r->off;
	if (rd_packed(r, v, what))
		return -1;
	if (*v > max)
		return fail(r->x, at, "%s %" PRIu64 " exceeds %" PRIu64, what, *v, max);
	return 0;
}

static bool bit_lsb(const uint8_t *map, unsigned i)
{
	return (map[i / 8] >> (i % 8)) & 1;
}

/* ---- cached tables --------------------------------------------------------------- */

static void free_members(char **m, uint32_t n)
{
	if (m == NULL)
		return;
	for (uint32_t i = 0; i < n; i++)
		free(m[i]);
	free(m);
}

static void mtab_free(struct mtab *t)
{
	if (t == NULL)
		return;
	for (uint16_t i = 0; t->cols && i < t->ncols; i++) {
		struct mcol *c = &t->cols[i];
		free(c->m_name);
		free_members(c->m_members, c->m_nmembers);
		free(c->i_name);
		free(c->i_type);
		free_members(c->i_members, c->i_nmembers);
	}
	free(t->cols);
	free(t->raw);
	free(t->schema);
	free(t->name);
	ls_relation_free(t->rel);
	free(t);
}

static struct mtab *find(const struct ls_myr *d, uint64_t id)
{
	for (unsigned i = 0; i < d->n; i++)
		if (d->tabs[i]->id == id)
			return d->tabs[i];
	return NULL;
}

static bool is_numeric(uint8_t type)
{
	switch (type) {
	case T_TINY: case T_SHORT: case T_INT24: case T_LONG: case T_LONGLONG:
	case T_FLOAT: case T_DOUBLE: case T_NEWDECIMAL: case T_DECIMAL:
	case T_YEAR:    /* MariaDB gives YEAR a signedness bit; MySQL does not */
		return true;
	}
	return false;
}

/* Columns the charset fields count (ENUM/SET have fields of their own). */
static bool is_charcol(uint8_t type)
{
	switch (type) {
	case T_STRING: case T_VARCHAR: case T_VAR_STRING: case T_BLOB:
	case T_GEOMETRY: case T_VARCHAR_COMPRESSED: case T_BLOB_COMPRESSED:
		return true;
	}
	return false;
}

/* Reads one column's type-specific metadata from the map's metadata block.
 * maxlen is CHAR/VARCHAR's maximum bytes, the length-prefix bytes of
 * BLOB-like types, or the storage bytes of ENUM/SET/BIT. */
static int parse_col_meta(struct rd *r, struct mcol *c)
{
	uint64_t v;
	size_t at = r->off;
	c->type = c->map_type;
	switch (c->map_type) {
	case T_FLOAT: case T_DOUBLE:
		if (rd_le(r, 1, &v, "float metadata"))
			return -1;
		c->meta = (uint16_t)v;
		if (v != (c->map_type == T_FLOAT ? 4u : 8u))
			return fail(r->x, at, "float/double size %" PRIu64, v);
		return 0;
	case T_BLOB: case T_GEOMETRY: case T_JSON: case T_BLOB_COMPRESSED:
		if (rd_le(r, 1, &v, "blob metadata"))
			return -1;
		c->meta = (uint16_t)v;
		c->maxlen = (uint32_t)v;
		if (v < 1 || v > 4)
			return fail(r->x, at, "blob length size %" PRIu64, v);
		return 0;
	case T_VARCHAR: case T_VAR_STRING: case T_VARCHAR_COMPRESSED:
		if (rd_le(r, 2, &v, "varchar metadata"))
			return -1;
		c->meta = (uint16_t)v;
		c->maxlen = (uint32_t)v;
		return 0;
	case T_BIT:
		if (rd_le(r, 2, &v, "bit metadata"))
			return -1;
		c->meta = (uint16_t)v;
		c->nbits = (uint8_t)((v >> 8) * 8 + (v & 0xff));
		if ((v & 0xff) > 7 || (v >> 8) > 8 || c->nbits < 1 || c->nbits > 64)
			return fail(r->x, at, "bit metadata 0x%04" PRIx64, v);
		c->maxlen = (c->nbits + 7u) / 8u;
		return 0;
	case T_NEWDECIMAL:
		if (rd_le(r, 2, &v, "decimal metadata"))
			return -1;
		c->meta = (uint16_t)v;
		c->prec = (uint8_t)v;
		c->scale = (uint8_t)(v >> 8);
		if (c->prec < 1 || c->prec > 65 || c->scale > 38 || c->scale > c->prec)
			return fail(r->x, at, "decimal(%u,%u)", c->prec, c->scale);
		return 0;
	case T_TIMESTAMP2: case T_DATETIME2: case T_TIME2:
		if (rd_le(r, 1, &v, "fsp metadata"))
			return -1;
		c->meta = (uint16_t)v;
		c->fsp = (uint8_t)v;
		if (v > 6)
			return fail(r->x, at, "fractional second precision %" PRIu64, v);
		return 0;
	case T_STRING: case T_ENUM: case T_SET: {
		uint8_t b0, b1;
		if (rd_u8(r, &b0, "string metadata") || rd_u8(r, &b1, "string metadata"))
			return -1;
		c->meta = (uint16_t)(b0 << 8 | b1);
		/* CHAR longer than 255 bytes keeps length bits 8-9 in the
		 * real-type byte, XORed into its 0x30 bits. */
		if ((b0 & 0x30) != 0x30) {
			c->maxlen = b1 | (uint32_t)(((b0 & 0x30) ^ 0x30) << 4);
			b0 |= 0x30;
		} else {
			c->maxlen = b1;
		}
		c->type = b0;
		if (b0 == T_STRING)
			return 0;
		if (c->maxlen == b1 && b0 == T_ENUM && (b1 == 1 || b1 == 2))
			return 0;
		if (c->maxlen == b1 && b0 == T_SET && b1 >= 1 && b1 <= 8)
			return 0;
		return fail(r->x, at, "string metadata 0x%02x%02x", b0, b1);
	}
	case T_DECIMAL: case T_TINY: case T_SHORT: case T_LONG: case T_NULL:
	case T_TIMESTAMP: case T_LONGLONG: case T_INT24: case T_DATE: case T_TIME:
	case T_DATETIME: case T_YEAR: case T_NEWDATE:
		return 0;
	}
	return fail(r->x, at, "unknown column type %u", c->map_type);
}

/* Reads n members ("packed count, then packed length and bytes each"). */
static int parse_members(struct rd *r, uint32_t max, char ***out, uint32_t *nout)
{
	uint64_t n, len;
	if (rd_count(r, max, &n, "member count") ||
	    rd_need(r, (size_t)n, "member list"))
		return -1;
	char **m = calloc(n ? n : 1, sizeof *m);
	if (m == NULL)
		return fail(r->x, r->off, "out of memory");
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *p;
		if (rd_count(r, rd_left(r), &len, "member length") ||
		    rd_bytes(r, (size_t)len, &p, "member") ||
		    (m[i] = strndup((const char *)p, (size_t)len)) == NULL) {
			free_members(m, (uint32_t)n);
			return -1;
		}
	}
	*out = m;
	*nout = (uint32_t)n;
	return 0;
}

/* One optional metadata field (its value is all of r). */
static int parse_opt(struct rd *r, struct mtab *t, uint8_t kind)
{
	uint64_t v, k;
	unsigned nnum = 0, nchar = 0;
	switch (kind) {
	case OPT_SIGNEDNESS:
		for (uint16_t i = 0; i < t->ncols; i++) {
			if (!is_numeric(t->cols[i].map_type))
				continue;
			if (rd_need(r, nnum / 8 + 1, "signedness bitmap"))
				return -1;
			t->cols[i].m_unsigned = (r->p[r->off + nnum / 8] >> (7 - nnum % 8)) & 1;
			nnum++;
		}
		return 0;
	case OPT_DEFAULT_CHARSET:
		if (rd_count(r, UINT32_MAX, &v, "default charset"))
			return -1;
		for (uint16_t i = 0; i < t->ncols; i++)
			if (is_charcol(t->cols[i].type))
				t->cols[i].coll = (uint32_t)v;
		while (rd_left(r)) {
			if (rd_count(r, UINT32_MAX, &k, "charset column") ||
			    rd_count(r, UINT32_MAX, &v, "charset"))
				return -1;
			for (uint16_t i = 0; i < t->ncols; i++)
				if (is_charcol(t->cols[i].type) && nchar++ == k)
					t->cols[i].coll = (uint32_t)v;
			if (k >= nchar)
				return fail(r->x, r->off, "charset for column %" PRIu64 " of %u", k, nchar);
			nchar = 0;
		}
		break;
	case OPT_COLUMN_CHARSET:
		for (uint16_t i = 0; i < t->ncols; i++) {
			if (!is_charcol(t->cols[i].type))
				continue;
			if (rd_count(r, UINT32_MAX, &v, "column charset"))
				return -1;
			t->cols[i].coll = (uint32_t)v;
		}
		break;
	case OPT_COLUMN_NAME:
		for (uint16_t i = 0; i < t->ncols; i++) {
			const uint8_t *p;
			if (rd_count(r, 255, &v, "column name length") ||
			    rd_bytes(r, (size_t)v, &p, "column name"))
				return -1;
			free(t->cols[i].m_name);
			if ((t->cols[i].m_name = strndup((const char *)p, (size_t)v)) == NULL)
				return fail(r->x, r->off, "out of memory");
		}
		return 0;
	case OPT_SET_STR_VALUE: case OPT_ENUM_STR_VALUE: {
		uint8_t want = kind == OPT_SET_STR_VALUE ? T_SET : T_ENUM;
		for (uint16_t i = 0; i < t->ncols; i++) {
			struct mcol *c = &t->cols[i];
			if (c->type != want)
				continue;
			free_members(c->m_members, c->m_nmembers);
			c->m_members = NULL;
			c->m_nmembers = 0;
			if (parse_members(r, want == T_SET ? c->maxlen * 8u : MAX_ENUM_MEMBERS,
					  &c->m_members, &c->m_nmembers))
				return -1;
		}
		return 0;
	}
	case OPT_GEOMETRY_TYPE:
		for (uint16_t i = 0; i < t->ncols; i++)
			if (t->cols[i].type == T_GEOMETRY) {
				if (rd_count(r, UINT32_MAX, &v, "geometry type"))
					return -1;
				t->cols[i].geom = v < 8 ? (uint8_t)v : 0xff;
			}
		return 0;
	case OPT_SIMPLE_PRIMARY_KEY: case OPT_PRIMARY_KEY_WITH_PREFIX:
		while (rd_left(r)) {
			if (rd_count(r, t->ncols - 1u, &k, "key column"))
				return -1;
			t->cols[k].m_key = 1;
			if (kind == OPT_PRIMARY_KEY_WITH_PREFIX &&
			    rd_count(r, UINT32_MAX, &v, "key prefix"))
				return -1;
		}
		return 0;
	default:
		return 0;          /* newer fields: skip */
	}
	for (uint16_t i = 0; i < t->ncols; i++)
		if (is_charcol(t->cols[i].type) && t->cols[i].coll)
			t->cols[i].m_binary = t->cols[i].coll == BINARY_CHARSET;
	return 0;
}

static int parse_name(struct rd *r, char **out, const char *what)
{
	uint8_t n, nul;
	const uint8_t *p;
	if (rd_u8(r, &n, what) || rd_bytes(r, n, &p, what) || rd_u8(r, &nul, what))
		return -1;
	if (nul != 0 || memchr(p, 0, n))
		return fail(r->x, r->off - 1, "%s is not NUL-terminated", what);
	if ((*out = strndup((const char *)p, n)) == NULL)
		return fail(r->x, r->off, "out of memory");
	return 0;
}

/* Parses a TABLE_MAP body into t (whose raw copy is already set). */
static int parse_map(struct rd *r, struct mtab *t)
{
	uint64_t v, ncols, metalen;
	const uint8_t *types, *nulls;
	if (rd_le(r, 6, &t->id, "table id") || rd_le(r, 2, &v, "flags") ||
	    parse_name(r, &t->schema, "schema name") ||
	    parse_name(r, &t->name, "table name"))
		return -1;
	r->x->t = t;
	size_t at = r->off;
	if (rd_count(r, LS_MYR_MAX_COLUMNS, &ncols, "column count") ||
	    rd_bytes(r, (size_t)ncols, &types, "column types"))
		return -1;
	if (ncols == 0)
		return fail(r->x, at, "no columns");
	t->cols = calloc((size_t)ncols, sizeof *t->cols);
	if (t->cols == NULL)
		return fail(r->x, at, "out of memory");
	t->ncols = (uint16_t)ncols;
	const uint8_t *meta;
	if (rd_count(r, rd_left(r), &metalen, "metadata length") ||
	    rd_need(r, (size_t)metalen, "metadata"))
		return -1;
	meta = r->p + r->off;
	struct rd m = { meta, (size_t)metalen, 0, r->x };
	struct ectx mx = *r->x;
	mx.base += r->off;
	m.x = &mx;
	for (uint16_t i = 0; i < t->ncols; i++) {
		struct mcol *c = &t->cols[i];
		c->map_type = types[i];
		c->geom = 0xff;
		c->m_unsigned = c->m_binary = c->m_key = -1;
		c->i_unsigned = c->i_binary = c->i_key = -1;
		mx.col = i;
		if (parse_col_meta(&m, c))
			return -1;
	}
	if (m.off != m.len)
		return fail(r->x, r->off + m.off, "%zu metadata bytes left over", m.len - m.off);
	r->off += m.len;
	if (rd_bytes(r, (t->ncols + 7u) / 8u, &nulls, "null bitmap"))
		return -1;
	for (uint16_t i = 0; i < t->ncols; i++) {
		t->cols[i].nullable = bit_lsb(nulls, i);
	}
	while (rd_left(r)) {
		uint8_t kind;
		uint64_t len;
		const uint8_t *p;
		if (rd_u8(r, &kind, "metadata field") ||
		    rd_count(r, rd_left(r), &len, "metadata field length") ||
		    rd_bytes(r, (size_t)len, &p, "metadata field"))
			return -1;
		struct ectx fx = *r->x;
		fx.base += r->off - (size_t)len;
		struct rd f = { p, (size_t)len, 0, &fx };
		if (parse_opt(&f, t, kind))
			return -1;
	}
	return 0;
}

/* ---- relation ----------------------------------------------------------------------- */

/* Largest bytes per character of a collation; 0 when not known here.
 * Ids are the servers' (MariaDB maps NOPAD variants to id + 1024 and its
 * UCA-14.0 collations to 2048 and up, 256 ids per charset). */
static unsigned mbmaxlen(uint32_t id)
{
	if (id >= 2048 && id < 3328) {
		static const unsigned uca[] = { 3, 4, 2, 4, 4 };
		return uca[(id - 2048) / 256];
	}
	if (id >= 1024 && id < 2048)
		id -= 1024;
	if (id == 45 || id == 46 || (id >= 224 && id <= 247) || (id >= 255 && id <= 323) ||
	    id == 54 || id == 55 || id == 56 || id == 62 || (id >= 101 && id <= 124) ||
	    id == 60 || id == 61 || (id >= 160 && id <= 183) || (id >= 248 && id <= 250) ||
	    (id >= 608 && id <= 610))
		return 4;
	if (id == 33 || id == 83 || (id >= 192 && id <= 215) || id == 223 ||
	    (id >= 576 && id <= 578) || id == 12 || id == 91 || id == 97 || id == 98)
		return 3;
	if (id == 35 || id == 90 || (id >= 128 && id <= 151) || id == 159 ||
	    id == 13 || id == 88 || id == 19 || id == 85 || id == 24 || id == 86 ||
	    id == 28 || id == 87 || id == 1 || id == 84 || id == 95 || id == 96)
		return 2;
	return id >= 1 && id < 100 ? 1 : 0;
}

/* A small growable string for type names. */
struct sb {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_add(struct sb *s, const char *t, size_t n)
{
	if (s->oom)
		return;
	if (s->len + n + 1 > s->cap) {
		size_t cap = (s->len + n + 1) * 2;
		char *p = realloc(s->p, cap);
		if (p == NULL) {
			s->oom = true;
			return;
		}
		s->p = p;
		s->cap = cap;
	}
	memcpy(s->p + s->len, t, n);
	s->len += n;
	s->p[s->len] = '\0';
}

static void sb_printf(struct sb *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *s, const char *fmt, ...)
{
	char buf[96];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n > 0)
		sb_add(s, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* "enum('a','b''c')". */
static void sb_members(struct sb *s, const char *kw, const struct mcol *c)
{
	sb_add(s, kw, strlen(kw));
	if (c->nmembers == 0)
		return;
	sb_add(s, "(", 1);
	for (uint32_t i = 0; i < c->nmembers; i++) {
		sb_add(s, i ? ",'" : "'", i ? 2 : 1);
		for (const char *p = c->members[i]; *p; p++)
			sb_add(s, *p == '\'' ? "''" : p, *p == '\'' ? 2 : 1);
		sb_add(s, "'", 1);
	}
	sb_add(s, ")", 1);
}

static void sb_fsp(struct sb *s, const char *kw, unsigned fsp)
{
	if (fsp)
		sb_printf(s, "%s(%u)", kw, fsp);
	else
		sb_add(s, kw, strlen(kw));
}

/* The type in MySQL's spelling, from the map alone. */
static void derive_type(struct sb *s, const struct mcol *c)
{
	static const char *const ints[] = { [T_TINY] = "tinyint", [T_SHORT] = "smallint",
		[T_INT24] = "mediumint", [T_LONG] = "int", [T_LONGLONG] = "bigint" };
	static const char *const geoms[] = { "geometry", "point", "linestring", "polygon",
		"multipoint", "multilinestring", "multipolygon", "geometrycollection" };
	static const char *const blobs[] = { "", "tiny", "", "medium", "long" };
	unsigned mb = c->is_binary ? 1 : mbmaxlen(c->coll);
	uint32_t chars = mb ? c->maxlen / mb : c->maxlen;
	const char *uns = c->is_unsigned ? " unsigned" : "";
	switch (c->type) {
	case T_TINY: case T_SHORT: case T_INT24: case T_LONG: case T_LONGLONG:
		sb_printf(s, "%s%s", ints[c->type], uns);
		return;
	case T_FLOAT: sb_printf(s, "float%s", uns); return;
	case T_DOUBLE: sb_printf(s, "double%s", uns); return;
	case T_NEWDECIMAL: sb_printf(s, "decimal(%u,%u)%s", c->prec, c->scale, uns); return;
	case T_DECIMAL: sb_printf(s, "decimal%s", uns); return;
	case T_YEAR: sb_printf(s, "year"); return;
	case T_DATE: case T_NEWDATE: sb_printf(s, "date"); return;
	case T_TIME: case T_TIME2: sb_fsp(s, "time", c->fsp); return;
	case T_DATETIME: case T_DATETIME2: sb_fsp(s, "datetime", c->fsp); return;
	case T_TIMESTAMP: case T_TIMESTAMP2: sb_fsp(s, "timestamp", c->fsp); return;
	case T_NULL: sb_printf(s, "null"); return;
	case T_BIT: sb_printf(s, "bit(%u)", c->nbits); return;
	case T_JSON: sb_printf(s, "json"); return;
	case T_ENUM: sb_members(s, "enum", c); return;
	case T_SET: sb_members(s, "set", c); return;
	case T_GEOMETRY: sb_printf(s, "%s", geoms[c->geom < 8 ? c->geom : 0]); return;
	case T_STRING: sb_printf(s, "%s(%u)", c->is_binary ? "binary" : "char", chars); return;
	case T_VARCHAR: case T_VAR_STRING: case T_VARCHAR_COMPRESSED:
		sb_printf(s, "%s(%u)", c->is_binary ? "varbinary" : "varchar", chars);
		return;
	case T_BLOB: case T_BLOB_COMPRESSED:
		sb_printf(s, "%s%s", blobs[c->maxlen], c->is_binary ? "blob" : "text");
		return;
	}
	sb_printf(s, "type%u", c->type);
}

/* The fsp a caller's type name gives ("time(3)" -> 3), 0 when none. */
static unsigned type_fsp(const char *type_name)
{
	const char *p = type_name ? strchr(type_name, '(') : NULL;
	return p && p[1] >= '0' && p[1] <= '9' ? (unsigned)(p[1] - '0') : 0;
}

static const char *unsupported(const struct mcol *c)
{
	switch (c->type) {
	case T_DECIMAL:
		return "the pre-5.0 DECIMAL type is not supported (ALTER TABLE ... FORCE converts it)";
	case T_JSON:
		return "MySQL binary JSON is not supported (lockstep reads MariaDB, which stores JSON as text)";
	case T_VARCHAR_COMPRESSED: case T_BLOB_COMPRESSED:
		return "MariaDB compressed columns are not supported";
	case T_TIME: case T_DATETIME: case T_TIMESTAMP:
		if (type_fsp(c->i_type))
			return "the pre-10.0 MariaDB temporal format with fractional seconds "
			       "(mysql56_temporal_format=OFF) is not supported (ALTER TABLE ... FORCE converts it)";
		return NULL;
	}
	return NULL;
}

static bool is_string(uint8_t type)
{
	return is_charcol(type) && type != T_GEOMETRY;
}

/* Merges map and caller info into the effective columns and builds a new
 * relation.  Returns 0, or -1 when out of memory (t keeps its old one). */
static int build_relation(struct mtab *t)
{
	struct ls_relation *rel = ls_relation_new(t->ncols);
	if (rel == NULL)
		return -1;
	rel->id = t->relid ? t->relid : (uint32_t)t->id;
	rel->schema = strdup(t->schema);
	rel->name = strdup(t->name);
	bool ok = rel->schema && rel->name;
	unsigned missing = 0, nkeys = 0;
	for (uint16_t i = 0; i < t->ncols && ok; i++) {
		struct mcol *c = &t->cols[i];
		c->is_unsigned = c->i_unsigned >= 0 ? c->i_unsigned > 0 : c->m_unsigned > 0;
		if (is_numeric(c->type) && c->type != T_YEAR && c->i_unsigned < 0 && c->m_unsigned < 0)
			missing |= LS_MYR_MISSING_SIGNEDNESS;
		c->is_binary = c->type == T_GEOMETRY ||
			       (c->i_binary >= 0 ? c->i_binary > 0 : c->m_binary > 0);
		if (is_string(c->type) && c->i_binary < 0 && c->m_binary < 0)
			missing |= LS_MYR_MISSING_CHARSET;
		c->is_key = c->i_key >= 0 ? c->i_key > 0 : c->m_key > 0;
		nkeys += c->is_key;
		c->nmembers = c->i_nmembers ? c->i_nmembers : c->m_nmembers;
		c->members = c->i_nmembers ? c->i_members : c->m_members;
		if ((c->type == T_ENUM || c->type == T_SET) && c->nmembers == 0)
			missing |= LS_MYR_MISSING_MEMBERS;
		c->unsupported = unsupported(c);
		struct ls_column *col = &rel->cols[i];
		char at[16];
		snprintf(at, sizeof at, "@%u", i + 1u);
		if (!c->i_name && !c->m_name)
			missing |= LS_MYR_MISSING_NAMES;
		col->name = strdup(c->i_name ? c->i_name : c->m_name ? c->m_name : at);
		if (c->i_type) {
			col->type_name = strdup(c->i_type);
		} else {
			struct sb s = { 0 };
			derive_type(&s, c);
			if (s.oom)
				free(s.p);
			col->type_name = s.oom ? NULL : s.p;
		}
		col->type_oid = c->type;
		col->typmod = c->meta;
		col->flags = c->is_key ? LS_COL_KEY : 0;
		ok = col->name && col->type_name;
	}
	if (!ok) {
		ls_relation_free(rel);
		return -1;
	}
	if (nkeys == 0)
		missing |= LS_MYR_MISSING_KEY;
	rel->replident = nkeys ? LS_REPLIDENT_DEFAULT : LS_REPLIDENT_FULL;
	ls_relation_free(t->rel);
	t->rel = rel;
	t->missing = missing;
	return 0;
}

/* ---- values -------------------------------------------------------------------------- */

static int put_text(struct ls_arena *a, struct ls_value *v, const char *s, size_t n)
{
	v->kind = LS_VAL_TEXT;
	v->len = (uint32_t)n;
	v->data = ls_arena_memdup(a, s, n);
	return v->data ? 0 : -1;
}

static int put_fmt(struct ls_arena *a, struct ls_value *v, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int put_fmt(struct ls_arena *a, struct ls_value *v, const char *fmt, ...)
{
	char buf[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof buf)
		return -1;
	return put_text(a, v, buf, (size_t)n);
}

static int64_t sign_extend(uint64_t v, unsigned bytes)
{
	unsigned shift = 64 - 8 * bytes;
	return (int64_t)(v << shift) >> shift;
}

static int dec_int(struct rd *r, const struct mcol *c, unsigned n,
		   struct ls_arena *a, struct ls_value *v)
{
	uint64_t u;
	if (rd_le(r, n, &u, "integer"))
		return -1;
	if (c->is_unsigned)
		return put_fmt(a, v, "%" PRIu64, u);
	return put_fmt(a, v, "%" PRId64, sign_extend(u, n));
}

/* The shortest %g text that reads back to the same value. */
static int dec_float(struct rd *r, const struct mcol *c, struct ls_arena *a,
		     struct ls_value *v)
{
	uint64_t u;
	size_t at = r->off;
	bool is_float = c->type == T_FLOAT;
	if (rd_le(r, is_float ? 4 : 8, &u, "float"))
		return -1;
	double d;
	float f;
	if (is_float) {
		uint32_t u32 = (uint32_t)u;
		memcpy(&f, &u32, sizeof f);
		d = f;
	} else {
		memcpy(&d, &u, sizeof d);
	}
	if (d != d || d - d != 0)
		return fail(r->x, at, "not a finite number");
	char buf[40];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, d);
		if (is_float ? strtof(buf, NULL) == f : strtod(buf, NULL) == d)
			break;
	}
	return put_text(a, v, buf, strlen(buf));
}

/* MariaDB's packed decimal: integer digits then fraction digits, in groups
 * of 9 decimal digits per 4 big-endian bytes, a shorter group for the
 * leftover digits (at the front of the integer part, the back of the
 * fraction); the sign bit is inverted and a negative number has every
 * byte inverted. */
static int dec_decimal(struct rd *r, const struct mcol *c, struct ls_arena *a,
		       struct ls_value *v)
{
	static const unsigned dig2bytes[10] = { 0, 1, 1, 2, 2, 3, 3, 4, 4, 4 };
	static const uint32_t pow10[10] = { 1, 10, 100, 1000, 10000, 100000, 1000000,
		10000000, 100000000, 1000000000 };
	unsigned intg = c->prec - c->scale, frac = c->scale;
	unsigned size = intg / 9 * 4 + dig2bytes[intg % 9] + frac / 9 * 4 + dig2bytes[frac % 9];
	const uint8_t *p;
	size_t at = r->off;
	if (rd_bytes(r, size, &p, "decimal"))
		return -1;
	uint8_t b[32];             /* 65 digits take at most 30 bytes */
	if (size > sizeof b)
		return fail(r->x, at, "internal: decimal of %u bytes", size);
	memcpy(b, p, size);
	bool neg = !(b[0] & 0x80);
	b[0] ^= 0x80;
	if (neg)
		for (unsigned i = 0; i < size; i++)
			b[i] = (uint8_t)~b[i];
	char out[80], *o = out;
	if (neg)
		*o++ = '-';
	char *digits = o;
	unsigned pos = 0;
	bool nonzero = false;
	/* groups: leading partial, full integer groups, full fraction groups,
	 * trailing partial */
	unsigned ngroups = (intg % 9 ? 1 : 0) + intg / 9 + frac / 9 + (frac % 9 ? 1 : 0);
	for (unsigned g = 0; g < ngroups; g++) {
		unsigned ndig;
		bool is_int;
		if (g == 0 && intg % 9) {
			ndig = intg % 9;
			is_int = true;
		} else if (g < (intg % 9 ? 1 : 0) + intg / 9) {
			ndig = 9;
			is_int = true;
		} else if (g == ngroups - 1 && frac % 9) {
			ndig = frac % 9;
			is_int = false;
		} else {
			ndig = 9;
			is_int = false;
		}
		uint32_t val = 0;
		for (unsigned i = 0; i < dig2bytes[ndig]; i++)
			val = val << 8 | b[pos++];
		if (val >= pow10[ndig])
			return fail(r->x, at, "corrupt decimal digits");
		if (!is_int && g == (intg % 9 ? 1 : 0) + intg / 9) {
			if (o == digits)
				*o++ = '0';    /* the integer part was all zero */
			*o++ = '.';
		}
		nonzero |= val != 0;
		if (is_int && o == digits) {
			if (val)
				o += sprintf(o, "%" PRIu32, val);
		} else {
			o += sprintf(o, "%0*" PRIu32, (int)ndig, val);
		}
	}
	if (o == digits)
		*o++ = '0';
	*o = '\0';
	if (neg && !nonzero)           /* no negative zero */
		return put_text(a, v, out + 1, (size_t)(o - out - 1));
	return put_text(a, v, out, (size_t)(o - out));
}

/* ".ffffff" cut to fsp digits ("" for fsp 0); usec < 10^6, fsp <= 6. */
static void frac_text(char buf[8], unsigned fsp, uint32_t usec)
{
	buf[0] = '\0';
	if (fsp == 0)
		return;
	buf[0] = '.';
	for (int i = 6; i >= 1; i--) {
		buf[i] = (char)('0' + usec % 10);
		usec /= 10;
	}
	buf[fsp + 1] = '\0';
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian). */
static void civil(int64_t z, unsigned *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (unsigned)(yoe + era * 400) + (*m <= 2);
}

/* Fraction bytes of the MySQL 5.6 temporal types: (fsp + 1) / 2, scaled
 * to microseconds. */
static int rd_frac(struct rd *r, unsigned fsp, uint32_t *usec)
{
	static const uint32_t scale[4] = { 0, 10000, 100, 1 };
	unsigned n = (fsp + 1) / 2;
	uint64_t f = 0;
	if (n && rd_be(r, n, &f, "fractional seconds"))
		return -1;
	*usec = (uint32_t)(f * scale[n]);
	return 0;
}

static int put_datetime(struct rd *r, size_t at, struct ls_arena *a, struct ls_value *v,
			unsigned y, unsigned mo, unsigned d, unsigned h, unsigned mi,
			unsigned s, unsigned fsp, uint32_t usec)
{
	char fr[8];
	if (y > 9999 || mo > 12 || d > 31 || h > 23 || mi > 59 || s > 59 || usec > 999999)
		return fail(r->x, at, "invalid date/time %u-%u-%u %u:%u:%u.%06" PRIu32,
			    y, mo, d, h, mi, s, usec);
	frac_text(fr, fsp, usec);
	return put_fmt(a, v, "%04u-%02u-%02u %02u:%02u:%02u%s", y, mo, d, h, mi, s, fr);
}

static int put_time(struct rd *r, size_t at, struct ls_arena *a, struct ls_value *v,
		    bool neg, unsigned h, unsigned mi, unsigned s, unsigned fsp, uint32_t usec)
{
	char fr[8];
	if (h > 838 || mi > 59 || s > 59 || usec > 999999)
		return fail(r->x, at, "invalid time %u:%u:%u.%06" PRIu32, h, mi, s, usec);
	frac_text(fr, fsp, usec);
	return put_fmt(a, v, "%s%02u:%02u:%02u%s", neg ? "-" : "", h, mi, s, fr);
}

static int dec_time2(struct rd *r, const struct mcol *c, struct ls_arena *a, struct ls_value *v)
{
	uint64_t u;
	size_t at = r->off;
	int64_t packed;
	if (c->fsp >= 5) {
		if (rd_be(r, 6, &u, "time"))
			return -1;
		packed = (int64_t)u - INT64_C(0x800000000000);
	} else {
		if (rd_be(r, 3, &u, "time"))
			return -1;
		int64_t intpart = (int64_t)u - 0x800000;
		int64_t frac = 0;
		if (c->fsp) {
			unsigned n = (c->fsp + 1) / 2;
			uint64_t f;
			if (rd_be(r, n, &f, "fractional seconds"))
				return -1;
			frac = (int64_t)f;
			/* a negative value keeps its fraction as a borrow */
			if (intpart < 0 && frac) {
				intpart++;
				frac -= n == 1 ? 0x100 : 0x10000;
			}
			frac *= n == 1 ? 10000 : 100;
		}
		packed = intpart * (INT64_C(1) << 24) + frac;
	}
	bool neg = packed < 0;
	uint64_t mag = neg ? (uint64_t)-packed : (uint64_t)packed;
	uint64_t hms = mag >> 24;
	return put_time(r, at, a, v, neg, (unsigned)((hms >> 12) % 1024),
			(unsigned)((hms >> 6) % 64), (unsigned)(hms % 64), c->fsp,
			(uint32_t)(mag % (1u << 24)));
}

static int dec_datetime2(struct rd *r, const struct mcol *c, struct ls_arena *a,
			 struct ls_value *v)
{
	uint64_t u;
	uint32_t usec;
	size_t at = r->off;
	if (rd_be(r, 5, &u, "datetime") || rd_frac(r, c->fsp, &usec))
		return -1;
	if (u < UINT64_C(0x8000000000))
		return fail(r->x, at, "negative datetime");
	u -= UINT64_C(0x8000000000);
	uint64_t ymd = u >> 17, ym = ymd >> 5, hms = u % (1u << 17);
	return put_datetime(r, at, a, v, (unsigned)(ym / 13), (unsigned)(ym % 13),
			    (unsigned)(ymd % 32), (unsigned)(hms >> 12),
			    (unsigned)((hms >> 6) % 64), (unsigned)(hms % 64), c->fsp, usec);
}

static int put_epoch(struct rd *r, size_t at, struct ls_arena *a, struct ls_value *v,
		     uint64_t secs, unsigned fsp, uint32_t usec)
{
	unsigned y, mo, d;
	if (secs == 0 && usec == 0)
		return put_datetime(r, at, a, v, 0, 0, 0, 0, 0, 0, fsp, 0);
	civil((int64_t)(secs / 86400), &y, &mo, &d);
	unsigned sod = (unsigned)(secs % 86400);
	return put_datetime(r, at, a, v, y, mo, d, sod / 3600, sod / 60 % 60, sod % 60,
			    fsp, usec);
}

static int dec_timestamp2(struct rd *r, const struct mcol *c, struct ls_arena *a,
			  struct ls_value *v)
{
	uint64_t secs;
	uint32_t usec;
	size_t at = r->off;
	if (rd_be(r, 4, &secs, "timestamp") || rd_frac(r, c->fsp, &usec))
		return -1;
	return put_epoch(r, at, a, v, secs, c->fsp, usec);
}

/* The old (fsp 0) TIME, DATETIME and TIMESTAMP, DATE and YEAR. */
static int dec_old_temporal(struct rd *r, const struct mcol *c, struct ls_arena *a,
			    struct ls_value *v)
{
	uint64_t u;
	size_t at = r->off;
	switch (c->type) {
	case T_DATE: case T_NEWDATE:
		if (rd_le(r, 3, &u, "date"))
			return -1;
		if ((u >> 9) > 9999 || ((u >> 5) & 15) > 12)
			return fail(r->x, at, "invalid date");
		return put_fmt(a, v, "%04u-%02u-%02u", (unsigned)(u >> 9),
			       (unsigned)((u >> 5) & 15), (unsigned)(u & 31));
	case T_YEAR:
		if (rd_le(r, 1, &u, "year"))
			return -1;
		return put_fmt(a, v, "%04u", u ? (unsigned)u + 1900 : 0);
	case T_TIME: {
		if (rd_le(r, 3, &u, "time"))
			return -1;
		int64_t t = sign_extend(u, 3);
		uint64_t m = t < 0 ? (uint64_t)-t : (uint64_t)t;
		return put_time(r, at, a, v, t < 0, (unsigned)(m / 10000),
				(unsigned)(m / 100 % 100), (unsigned)(m % 100), 0, 0);
	}
	case T_DATETIME:
		if (rd_le(r, 8, &u, "datetime"))
			return -1;
		uint64_t dpart = u / 1000000, tpart = u % 1000000;
		return put_datetime(r, at, a, v, (unsigned)(dpart / 10000),
				    (unsigned)(dpart / 100 % 100), (unsigned)(dpart % 100),
				    (unsigned)(tpart / 10000), (unsigned)(tpart / 100 % 100),
				    (unsigned)(tpart % 100), 0, 0);
	case T_TIMESTAMP:
		if (rd_le(r, 4, &u, "timestamp"))
			return -1;
		return put_epoch(r, at, a, v, u, 0, 0);
	}
	return fail(r->x, at, "internal: not a temporal type");
}

/* A length-prefixed string: text, or raw bytes for a binary charset. */
static int dec_string(struct rd *r, const struct mcol *c, unsigned prefix,
		      struct ls_arena *a, struct ls_value *v)
{
	uint64_t n;
	const uint8_t *p;
	size_t at = r->off;
	if (rd_le(r, prefix, &n, "string length"))
		return -1;
	if ((c->type == T_STRING || c->type == T_VARCHAR || c->type == T_VAR_STRING) &&
	    n > c->maxlen)
		return fail(r->x, at, "string of %" PRIu64 " bytes exceeds the column's %" PRIu32,
			    n, c->maxlen);
	if (rd_bytes(r, (size_t)n, &p, "string"))
		return -1;
	if (!c->is_binary)
		return put_text(a, v, (const char *)p, (size_t)n);
	/* BINARY(n) is stored without its trailing zero bytes: pad back. */
	size_t full = c->type == T_STRING ? c->maxlen : (size_t)n;
	char *d = ls_arena_alloc(a, full + 1);
	if (d == NULL)
		return -1;
	memcpy(d, p, (size_t)n);
	memset(d + n, 0, full + 1 - (size_t)n);
	v->kind = LS_VAL_BINARY;
	v->len = (uint32_t)full;
	v->data = d;
	return 0;
}

static int dec_enum_set(struct rd *r, const struct mcol *c, struct ls_arena *a,
			struct ls_value *v)
{
	uint64_t u;
	size_t at = r->off;
	if (rd_le(r, c->maxlen, &u, c->type == T_ENUM ? "enum" : "set"))
		return -1;
	if (c->nmembers == 0)
		return put_fmt(a, v, "%" PRIu64, u);
	if (c->type == T_ENUM) {
		if (u > c->nmembers)
			return fail(r->x, at, "enum index %" PRIu64 " of %" PRIu32 " members",
				    u, c->nmembers);
		const char *m = u ? c->members[u - 1] : "";
		return put_text(a, v, m, strlen(m));
	}
	if (c->nmembers < 64 && u >> c->nmembers)
		return fail(r->x, at, "set bits 0x%" PRIx64 " beyond its %" PRIu32 " members",
			    u, c->nmembers);
	size_t len = 0;
	for (uint32_t i = 0; i < c->nmembers; i++)
		if (u >> i & 1)
			len += strlen(c->members[i]) + 1;
	char *d = ls_arena_alloc(a, len + 1), *o = d;
	if (d == NULL)
		return -1;
	for (uint32_t i = 0; i < c->nmembers; i++)
		if (u >> i & 1) {
			if (o != d)
				*o++ = ',';
			size_t n = strlen(c->members[i]);
			memcpy(o, c->members[i], n);
			o += n;
		}
	*o = '\0';
	v->kind = LS_VAL_TEXT;
	v->len = (uint32_t)(o - d);
	v->data = d;
	return 0;
}

/* Decodes one non-NULL value of column c. */
static int dec_value(struct rd *r, const struct mcol *c, struct ls_arena *a,
		     struct ls_value *v)
{
	static const unsigned intlen[] = { [T_TINY] = 1, [T_SHORT] = 2, [T_INT24] = 3,
		[T_LONG] = 4, [T_LONGLONG] = 8 };
	uint64_t u;
	int rc;
	if (c->unsupported)
		return fail(r->x, r->off, "%s", c->unsupported);
	switch (c->type) {
	case T_TINY: case T_SHORT: case T_INT24: case T_LONG: case T_LONGLONG:
		rc = dec_int(r, c, intlen[c->type], a, v);
		break;
	case T_FLOAT: case T_DOUBLE: rc = dec_float(r, c, a, v); break;
	case T_NEWDECIMAL: rc = dec_decimal(r, c, a, v); break;
	case T_TIME2: rc = dec_time2(r, c, a, v); break;
	case T_DATETIME2: rc = dec_datetime2(r, c, a, v); break;
	case T_TIMESTAMP2: rc = dec_timestamp2(r, c, a, v); break;
	case T_DATE: case T_NEWDATE: case T_YEAR: case T_TIME: case T_DATETIME:
	case T_TIMESTAMP:
		rc = dec_old_temporal(r, c, a, v);
		break;
	case T_STRING: rc = dec_string(r, c, c->maxlen > 255 ? 2 : 1, a, v); break;
	case T_VARCHAR: case T_VAR_STRING:
		rc = dec_string(r, c, c->maxlen > 255 ? 2 : 1, a, v);
		break;
	case T_BLOB: case T_GEOMETRY: rc = dec_string(r, c, c->maxlen, a, v); break;
	case T_ENUM: case T_SET: rc = dec_enum_set(r, c, a, v); break;
	case T_BIT:
		if (rd_be(r, c->maxlen, &u, "bit"))
			return -1;
		rc = put_fmt(a, v, "%" PRIu64, u);
		break;
	case T_NULL:
		v->kind = LS_VAL_NULL;
		return 0;
	default:
		return fail(r->x, r->off, "internal: type %u", c->type);
	}
	if (rc && r->x->err && r->x->err->msg[0] == '\0')
		return fail(r->x, r->off, "out of memory");
	return rc;
}

/* ---- rows --------------------------------------------------------------------------- */

/* One row image: null bitmap over the present columns, then their values. */
static int dec_image(struct rd *r, struct ectx *x, const struct mtab *t,
		     const uint8_t *present, unsigned npresent, struct ls_arena *a,
		     struct ls_tuple *tup)
{
	const uint8_t *nulls;
	if (rd_bytes(r, (npresent + 7) / 8, &nulls, "null bitmap"))
		return -1;
	tup->ncols = t->ncols;
	tup->vals = ls_arena_alloc(a, t->ncols * sizeof *tup->vals);
	if (tup->vals == NULL)
		return fail(x, r->off, "out of memory");
	unsigned j = 0;
	for (uint16_t i = 0; i < t->ncols; i++) {
		struct ls_value *v = &tup->vals[i];
		memset(v, 0, sizeof *v);
		if (!bit_lsb(present, i)) {
			v->kind = LS_VAL_UNCHANGED;
			continue;
		}
		if (bit_lsb(nulls, j++)) {
			v->kind = LS_VAL_NULL;
			continue;
		}
		x->col = i;
		x->colname = t->rel->cols[i].name;
		if (x->err)
			x->err->msg[0] = '\0';
		if (dec_value(r, &t->cols[i], a, v))
			return -1;
		x->col = -1;
	}
	return 0;
}

static unsigned popcount(const uint8_t *map, unsigned n)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n; i++)
		k += bit_lsb(map, i);
	return k;
}

/* LS_OLD_FULL when the before image has every column, LS_OLD_KEY when it
 * has at least every key column, else 0 (the row cannot be identified). */
static uint8_t old_kind(const struct mtab *t, const uint8_t *present)
{
	bool all = true, keys = true;
	for (uint16_t i = 0; i < t->ncols; i++) {
		bool p = bit_lsb(present, i);
		all &= p;
		if (t->cols[i].is_key)
			keys &= p;
	}
	if (all)
		return LS_OLD_FULL;
	return keys && !(t->missing & LS_MYR_MISSING_KEY) ? LS_OLD_KEY : 0;
}

static int push_change(struct ls_myr *d, uint32_t n)
{
	if (n < d->scap)
		return 0;
	size_t cap = d->scap ? d->scap * 2 : 64;
	struct ls_change *p = realloc(d->scratch, cap * sizeof *p);
	if (p == NULL)
		return -1;
	d->scratch = p;
	d->scap = cap;
	return 0;
}

static int decode_rows(struct ls_myr *d, struct rd *r, struct ectx *x,
		       struct ls_arena *a, struct ls_myr_event *ev)
{
	unsigned type = ev->type;
	bool v2 = type >= LS_MYR_WRITE_ROWS_V2;
	unsigned kind = v2 ? type - LS_MYR_WRITE_ROWS_V2 : type - LS_MYR_WRITE_ROWS_V1;
	uint64_t flags, ncols, extra;
	const uint8_t *present[2] = { NULL, NULL }, *skip;
	if (rd_le(r, 6, &ev->table_id, "table id"))
		return -1;
	x->table_id = ev->table_id;
	if (rd_le(r, 2, &flags, "flags"))
		return -1;
	ev->flags = (uint16_t)flags;
	if (v2) {
		size_t at = r->off;
		if (rd_le(r, 2, &extra, "extra data length"))
			return -1;
		if (extra < 2)
			return fail(x, at, "extra data length %" PRIu64, extra);
		if (rd_bytes(r, (size_t)extra - 2, &skip, "extra data"))
			return -1;
	}
	size_t at = r->off;
	if (rd_count(r, LS_MYR_MAX_COLUMNS, &ncols, "column count") ||
	    rd_bytes(r, (size_t)(ncols + 7) / 8, &present[0], "columns-present bitmap") ||
	    (kind == 1 && rd_bytes(r, (size_t)(ncols + 7) / 8, &present[1],
				   "columns-present bitmap (after image)")))
		return -1;
	struct mtab *t = find(d, ev->table_id);
	if (t) {
		t->used = ++d->clock;
		ev->rel = t->rel;
		x->t = t;
	}
	if (rd_left(r) == 0)
		return 0;
	if (t == NULL)
		return fail(x, at, "no table map for this table id");
	if (ncols != t->ncols)
		return fail(x, at, "%" PRIu64 " columns, the table map has %u", ncols, t->ncols);
	unsigned np[2] = { popcount(present[0], t->ncols),
			   present[1] ? popcount(present[1], t->ncols) : 0 };
	if (np[0] == 0 || (kind == 1 && np[1] == 0))
		return fail(x, at, "empty columns-present bitmap");
	uint8_t ok = kind == 0 ? LS_OLD_NONE : old_kind(t, present[0]);
	if (kind != 0 && ok == 0)
		return fail(x, at, "before image lacks key columns and the key is not known "
			    "(set binlog_row_image=FULL or give the table's key)");
	uint32_t n = 0;
	while (rd_left(r)) {
		if (push_change(d, n))
			return fail(x, r->off, "out of memory");
		struct ls_change *ch = &d->scratch[n];
		memset(ch, 0, sizeof *ch);
		ch->relid = t->rel->id;
		ch->op = kind == 0 ? LS_OP_INSERT : kind == 1 ? LS_OP_UPDATE : LS_OP_DELETE;
		ch->old_kind = ok;
		x->row = n;
		struct ls_tuple *first = kind == 0 ? &ch->new_tup : &ch->old_tup;
		if (dec_image(r, x, t, present[0], np[0], a, first) ||
		    (kind == 1 && dec_image(r, x, t, present[1], np[1], a, &ch->new_tup)))
			return -1;
		n++;
	}
	x->row = -1;
	ev->changes = ls_arena_alloc(a, n * sizeof *ev->changes);
	if (ev->changes == NULL)
		return fail(x, r->off, "out of memory");
	memcpy(ev->changes, d->scratch, n * sizeof *ev->changes);
	ev->nchanges = n;
	return 0;
}

/* ---- table maps --------------------------------------------------------------------- */

static int insert_table(struct ls_myr *d, struct mtab *t)
{
	if (d->n < d->max) {
		d->tabs[d->n++] = t;
		return 0;
	}
	unsigned lru = 0;
	for (unsigned i = 1; i < d->n; i++)
		if (d->tabs[i]->used < d->tabs[lru]->used)
			lru = i;
	mtab_free(d->tabs[lru]);
	d->tabs[lru] = t;
	return 0;
}

static int decode_map(struct ls_myr *d, struct rd *r, struct ectx *x,
		      struct ls_myr_event *ev)
{
	uint64_t id;
	struct rd peek = *r;
	if (rd_le(&peek, 6, &id, "table id"))
		return -1;
	x->table_id = id;
	ev->table_id = id;
	struct mtab *old = find(d, id);
	if (old && old->raw_len == r->len && memcmp(old->raw, r->p, r->len) == 0) {
		old->used = ++d->clock;
		ev->rel = old->rel;
		ev->map_change = LS_MYR_MAP_SAME;
		return 0;
	}
	struct mtab *t = calloc(1, sizeof *t);
	if (t == NULL || (t->raw = malloc(r->len ? r->len : 1)) == NULL) {
		free(t);
		return fail(x, 0, "out of memory");
	}
	memcpy(t->raw, r->p, r->len);
	t->raw_len = r->len;
	if (parse_map(r, t) != 0) {
		mtab_free(t);
		return -1;
	}
	if (build_relation(t) != 0) {
		mtab_free(t);
		return fail(x, r->off, "out of memory");
	}
	t->used = ++d->clock;
	if (old) {
		for (unsigned i = 0; i < d->n; i++)
			if (d->tabs[i] == old)
				d->tabs[i] = t;
		mtab_free(old);
	} else {
		insert_table(d, t);
	}
	ev->rel = t->rel;
	ev->map_change = old ? LS_MYR_MAP_CHANGED : LS_MYR_MAP_NEW;
	return 0;
}

/* ---- API ------------------------------------------------------------------------------ */

struct ls_myr *ls_myr_new(unsigned max_tables)
{
	struct ls_myr *d = calloc(1, sizeof *d);
	if (d == NULL)
		return NULL;
	d->max = max_tables ? max_tables : LS_MYR_MAX_TABLES_DEFAULT;
	d->tabs = calloc(d->max, sizeof *d->tabs);
	if (d->tabs == NULL) {
		free(d);
		return NULL;
	}
	return d;
}

void ls_myr_free(struct ls_myr *d)
{
	if (d == NULL)
		return;
	for (unsigned i = 0; i < d->n; i++)
		mtab_free(d->tabs[i]);
	free(d->tabs);
	free(d->scratch);
	free(d);
}

bool ls_myr_handles(unsigned type)
{
	return type == LS_MYR_TABLE_MAP ||
	       (type >= LS_MYR_WRITE_ROWS_V1 && type <= LS_MYR_DELETE_ROWS_V1) ||
	       (type >= LS_MYR_WRITE_ROWS_V2 && type <= LS_MYR_DELETE_ROWS_V2);
}

static int decode_at(struct ls_myr *d, unsigned type, const void *body, size_t len,
		     size_t base, struct ls_arena *arena, struct ls_myr_event *ev,
		     struct ls_err *err)
{
	struct ectx x = { .err = err, .type = type, .row = -1, .col = -1, .base = base };
	struct rd r = { body, len, 0, &x };
	memset(ev, 0, sizeof *ev);
	ev->type = (uint8_t)type;
	if (!ls_myr_handles(type))
		return ls_err_set(err, false, "binlog event type %u is not a table map or rows event",
				  type);
	if (type == LS_MYR_TABLE_MAP)
		return decode_map(d, &r, &x, ev);
	return decode_rows(d, &r, &x, arena, ev);
}

int ls_myr_decode(struct ls_myr *d, unsigned type, const void *body, size_t len,
		  struct ls_arena *arena, struct ls_myr_event *ev, struct ls_err *err)
{
	return decode_at(d, type, body, len, 0, arena, ev, err);
}

static uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
	}
	return ~c;
}

int ls_myr_decode_event(struct ls_myr *d, const void *event, size_t len, bool checksum,
			struct ls_arena *arena, struct ls_myr_event *ev, struct ls_err *err)
{
	const uint8_t *p = event;
	size_t tail = checksum ? LS_MYR_CHECKSUM_LEN : 0;
	if (len < LS_MYR_HEADER_LEN + tail)
		return ls_err_set(err, false, "binlog event of %zu bytes is shorter than its header", len);
	uint32_t size = (uint32_t)p[9] | (uint32_t)p[10] << 8 | (uint32_t)p[11] << 16 |
			(uint32_t)p[12] << 24;
	if (size != len)
		return ls_err_set(err, false, "binlog event type %u: event_size %" PRIu32
				  " but %zu bytes given", p[4], size, len);
	if (checksum) {
		const uint8_t *c = p + len - tail;
		uint32_t want = (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 |
				(uint32_t)c[3] << 24;
		if (crc32_ieee(p, len - tail) != want)
			return ls_err_set(err, false, "binlog event type %u: CRC32 mismatch", p[4]);
	}
	return decode_at(d, p[4], p + LS_MYR_HEADER_LEN, len - LS_MYR_HEADER_LEN - tail,
			 LS_MYR_HEADER_LEN, arena, ev, err);
}

static char *dup_or_null(const char *s, bool *ok)
{
	if (s == NULL)
		return NULL;
	char *d = strdup(s);
	*ok &= d != NULL;
	return d;
}

/* Exchanges the caller-info parts of two columns. */
static void swap_info(struct mcol *a, struct mcol *b)
{
	struct mcol t = *a;
	a->i_unsigned = b->i_unsigned;
	a->i_binary = b->i_binary;
	a->i_key = b->i_key;
	a->i_name = b->i_name;
	a->i_type = b->i_type;
	a->i_members = b->i_members;
	a->i_nmembers = b->i_nmembers;
	b->i_unsigned = t.i_unsigned;
	b->i_binary = t.i_binary;
	b->i_key = t.i_key;
	b->i_name = t.i_name;
	b->i_type = t.i_type;
	b->i_members = t.i_members;
	b->i_nmembers = t.i_nmembers;
}

int ls_myr_set_table_info(struct ls_myr *d, uint64_t table_id,
			  const struct ls_myr_table_info *info, struct ls_err *err)
{
	struct mtab *t = find(d, table_id);
	if (t == NULL)
		return ls_err_set(err, false, "table id %" PRIu64 " is not mapped", table_id);
	if (info->ncols != t->ncols)
		return ls_err_set(err, false, "table %s.%s: the catalog has %u columns, "
				  "the binlog's table map %u", t->schema, t->name,
				  info->ncols, t->ncols);
	for (uint16_t i = 0; i < t->ncols; i++) {
		const struct ls_myr_col_info *ci = &info->cols[i];
		const struct mcol *c = &t->cols[i];
		uint32_t max = c->type == T_SET ? c->maxlen * 8u : MAX_ENUM_MEMBERS;
		if (ci->nmembers > max || (ci->nmembers && !ci->members))
			return ls_err_set(err, false, "table %s.%s column %u: %" PRIu32
					  " members do not fit the column", t->schema,
					  t->name, i + 1u, ci->nmembers);
	}
	/* Copy into fresh storage first, so a failure leaves t as it was. */
	struct mcol *cols = calloc(t->ncols, sizeof *cols);
	if (cols == NULL)
		return ls_err_set(err, false, "out of memory");
	bool ok = true;
	for (uint16_t i = 0; i < t->ncols && ok; i++) {
		const struct ls_myr_col_info *ci = &info->cols[i];
		struct mcol *c = &cols[i];
		c->i_unsigned = ci->is_unsigned;
		c->i_binary = ci->is_binary;
		c->i_key = ci->is_key;
		c->i_name = dup_or_null(ci->name, &ok);
		c->i_type = dup_or_null(ci->type_name, &ok);
		if (ci->nmembers && ok) {
			c->i_members = calloc(ci->nmembers, sizeof *c->i_members);
			ok = c->i_members != NULL;
			for (uint32_t k = 0; ok && k < ci->nmembers; k++)
				c->i_members[k] = dup_or_null(ci->members[k] ? ci->members[k] : "", &ok);
			c->i_nmembers = ci->nmembers;
		}
	}
	for (uint16_t i = 0; i < t->ncols; i++)
		swap_info(&t->cols[i], &cols[i]);
	uint32_t old_relid = t->relid;
	t->relid = info->relid;
	if (!ok || build_relation(t) != 0) {
		for (uint16_t i = 0; i < t->ncols; i++)
			swap_info(&t->cols[i], &cols[i]);
		t->relid = old_relid;
		ok = false;
	}
	for (uint16_t i = 0; i < t->ncols; i++) {
		free(cols[i].i_name);
		free(cols[i].i_type);
		free_members(cols[i].i_members, cols[i].i_nmembers);
	}
	free(cols);
	if (!ok) {
		build_relation(t);     /* restores effective fields; rel kept on OOM */
		return ls_err_set(err, false, "out of memory");
	}
	return 0;
}

const struct ls_relation *ls_myr_relation(const struct ls_myr *d, uint64_t table_id)
{
	const struct mtab *t = find(d, table_id);
	return t ? t->rel : NULL;
}

unsigned ls_myr_missing(const struct ls_myr *d, uint64_t table_id)
{
	const struct mtab *t = find(d, table_id);
	return t ? t->missing : 0;
}

/* ---- printing ------------------------------------------------------------------------ */

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = UINT64_C(14695981039346656037);
	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)p[i];
		h *= UINT64_C(1099511628211);
	}
	return h;
}

#define PRINT_MAX 120

static void print_bytes(FILE *f, const char *data, size_t len)
{
	size_t n = len > PRINT_MAX ? 40 : len;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)data[i];
		if (c == '\'' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c >= 0x20 && c < 0x7f)
			fputc(c, f);
		else
			fprintf(f, "\\x%02x", c);
	}
	if (n < len)
		fprintf(f, "...(len=%zu fnv=%016" PRIx64 ")", len, fnv1a(data, len));
}

static void print_tuple(FILE *f, const struct ls_relation *rel, const struct ls_tuple *t)
{
	fputc('(', f);
	for (uint16_t i = 0; i < t->ncols; i++) {
		const struct ls_value *v = &t->vals[i];
		fprintf(f, "%s%s=", i ? ", " : "", i < rel->ncols ? rel->cols[i].name : "?");
		if (v->kind == LS_VAL_NULL) {
			fputs("NULL", f);
		} else if (v->kind == LS_VAL_UNCHANGED) {
			fputs("UNCHANGED", f);
		} else {
			fprintf(f, "%c'", v->kind);
			print_bytes(f, v->data, v->len);
			fputc('\'', f);
		}
	}
	fputc(')', f);
}

static void print_map(FILE *f, const struct ls_myr_event *ev)
{
	static const char *const change[] = { "?", "new", "same", "changed" };
	const struct ls_relation *rel = ev->rel;
	fprintf(f, "TABLE_MAP %s id=%" PRIu64 " %s.%s relid=%" PRIu32 " replident=%c cols=(",
		change[ev->map_change <= 3 ? ev->map_change : 0], ev->table_id,
		rel->schema, rel->name, rel->id, rel->replident);
	for (uint16_t i = 0; i < rel->ncols; i++) {
		const struct ls_column *c = &rel->cols[i];
		fprintf(f, "%s%s %s #%" PRIu32 "%s", i ? ", " : "", c->name, c->type_name,
			c->type_oid, (c->flags & LS_COL_KEY) ? " key" : "");
	}
	fputs(")\n", f);
}

int ls_myr_event_print(FILE *f, const struct ls_myr_event *ev)
{
	static const char *const ops[] = { ['I'] = "INSERT", ['U'] = "UPDATE", ['D'] = "DELETE" };
	if (ev->type == LS_MYR_TABLE_MAP) {
		print_map(f, ev);
		return ferror(f) ? -1 : 0;
	}
	fprintf(f, "ROWS %s id=%" PRIu64 " flags=%u rows=%" PRIu32 "\n", event_name(ev->type),
		ev->table_id, ev->flags, ev->nchanges);
	for (uint32_t i = 0; i < ev->nchanges; i++) {
		const struct ls_change *ch = &ev->changes[i];
		fprintf(f, "%s %s.%s", ops[ch->op], ev->rel->schema, ev->rel->name);
		if (ch->op != LS_OP_INSERT) {
			fprintf(f, " old[%c]=", ch->old_kind);
			print_tuple(f, ev->rel, &ch->old_tup);
		}
		if (ch->op != LS_OP_DELETE) {
			fputs(" new=", f);
			print_tuple(f, ev->rel, &ch->new_tup);
		}
		fputc('\n', f);
	}
	return ferror(f) ? -1 : 0;
}
