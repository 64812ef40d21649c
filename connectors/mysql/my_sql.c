#include "connectors/mysql/my_sql.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- quoting -------------------------------------------------------------- */

void ls_mysql_ident(struct ls_mysql_buf *b, const char *name)
{
	ls_sbuf_putc(b, '`');
	for (const char *p = name; *p; p++) {
		if (*p == '`')
			ls_sbuf_putc(b, '`');
		ls_sbuf_putc(b, *p);
	}
	ls_sbuf_putc(b, '`');
}

void ls_mysql_qualified(struct ls_mysql_buf *b, const char *schema, const char *name)
{
	ls_mysql_ident(b, schema);
	ls_sbuf_putc(b, '.');
	ls_mysql_ident(b, name);
}

void ls_mysql_hex(struct ls_mysql_buf *b, const void *p, size_t n)
{
	static const char hx[] = "0123456789ABCDEF";
	const unsigned char *s = p;
	char *d = ls_mysql_buf_room(b, 2 * n + 3);
	if (d == NULL)
		return;
	*d++ = 'X';
	*d++ = '\'';
	for (size_t i = 0; i < n; i++) {
		*d++ = hx[s[i] >> 4];
		*d++ = hx[s[i] & 15];
	}
	*d++ = '\'';
	*d = '\0';
	b->len += 2 * n + 3;
}

void ls_mysql_literal(struct ls_mysql_buf *b, const char *s, size_t n)
{
	ls_sbuf_putc(b, '\'');
	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case '\0': ls_mysql_putn(b, "\\0", 2); break;
		case '\n': ls_mysql_putn(b, "\\n", 2); break;
		case '\r': ls_mysql_putn(b, "\\r", 2); break;
		case '\032': ls_mysql_putn(b, "\\Z", 2); break;
		case '\\': ls_mysql_putn(b, "\\\\", 2); break;
		case '\'': ls_mysql_putn(b, "\\'", 2); break;
		default: ls_sbuf_putc(b, s[i]);
		}
	}
	ls_sbuf_putc(b, '\'');
}

/* ---- conninfo ------------------------------------------------------------- */

void ls_mysql_conninfo_free(struct ls_mysql_conninfo *c)
{
	free(c->host);
	free(c->user);
	free(c->password);
	free(c->database);
	free(c->socket);
	memset(c, 0, sizeof *c);
}

/* Reads one value at *p (bare, or in '...' or "..." with backslash escapes)
 * into a malloc'd string; the same syntax as the MySQL source's
 * connection string (my_setup.h). */
static char *conn_value(const char **p)
{
	const char *s = *p;
	size_t n = strlen(s);
	char *v = malloc(n + 1), *d = v;
	if (v == NULL)
		return NULL;
	if (*s == '\'' || *s == '"') {
		char q = *s;
		for (s++; *s && *s != q; s++) {
			if (*s == '\\' && s[1])
				s++;
			*d++ = *s;
		}
		if (*s != q) {
			free(v);
			*p = NULL;   /* unterminated */
			return NULL;
		}
		s++;
	} else {
		while (*s && !isspace((unsigned char)*s))
			*d++ = *s++;
	}
	*d = '\0';
	*p = s;
	return v;
}

static int conn_uint(const char *key, const char *v, unsigned max, unsigned *out,
		     struct ls_err *err)
{
	char *end;
	unsigned long n = strtoul(v, &end, 10);
	if (*v == '\0' || *end != '\0' || n > max)
		return ls_err_set(err, false, "conninfo: %s: not a number up to %u", key, max);
	*out = (unsigned)n;
	return 0;
}

/* Stores one key's value (v is owned and consumed). */
static int conn_set(struct ls_mysql_conninfo *c, const char *key, size_t klen, char *v,
		    struct ls_err *err)
{
	char k[32];
	snprintf(k, sizeof k, "%.*s", (int)(klen < 31 ? klen : 31), key);
	char **slot = NULL;
	if (strcmp(k, "host") == 0)
		slot = &c->host;
	else if (strcmp(k, "user") == 0)
		slot = &c->user;
	else if (strcmp(k, "password") == 0 || strcmp(k, "passwd") == 0)
		slot = &c->password;
	else if (strcmp(k, "database") == 0 || strcmp(k, "dbname") == 0)
		slot = &c->database;
	else if (strcmp(k, "socket") == 0)
		slot = &c->socket;
	if (slot) {
		free(*slot);
		*slot = v;
		return 0;
	}
	int rc;
	if (strcmp(k, "port") == 0)
		rc = conn_uint(k, v, 65535, &c->port, err);
	else if (strcmp(k, "connect_timeout") == 0)
		rc = conn_uint(k, v, 3600, &c->connect_timeout, err);
	else
		rc = ls_err_set(err, false, "conninfo: unknown key \"%s\" (host, port, user, "
				"password, database, socket, connect_timeout)", k);
	free(v);
	return rc;
}

int ls_mysql_conninfo_parse(const char *s, struct ls_mysql_conninfo *out, struct ls_err *err)
{
	memset(out, 0, sizeof *out);
	const char *p = s ? s : "";
	for (;;) {
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\0')
			return 0;
		const char *key = p;
		while (*p && *p != '=' && !isspace((unsigned char)*p))
			p++;
		size_t klen = (size_t)(p - key);
		while (isspace((unsigned char)*p))
			p++;
		if (*p != '=' || klen == 0) {
			ls_mysql_conninfo_free(out);
			return ls_err_set(err, false, "conninfo: expected key=value near \"%.*s\"",
					  (int)(klen > 20 ? 20 : klen), key);
		}
		p++;
		while (isspace((unsigned char)*p))
			p++;
		char *v = conn_value(&p);
		if (v == NULL) {
			int kl = (int)(klen > 20 ? 20 : klen);
			ls_mysql_conninfo_free(out);
			return p ? ls_err_set(err, false, "out of memory")
				 : ls_err_set(err, false, "conninfo: %.*s: unterminated quote",
					      kl, key);
		}
		if (conn_set(out, key, klen, v, err) < 0) {
			ls_mysql_conninfo_free(out);
			return -1;
		}
	}
}

/* ---- type names ------------------------------------------------------------- */

/* A type name taken apart: "timestamp(3) with time zone" -> shape
 * "timestamp with time zone", args {3}; "numeric(12,2)" -> "numeric",
 * {12, 2}; trailing "[]" pairs counted in ndims. */
struct tparts {
	char shape[64];
	int nargs;
	long args[2];
	int ndims;
	bool bad_args;             /* parentheses hold something else (enum) */
};

static void type_parts(const char *type, struct tparts *t)
{
	memset(t, 0, sizeof *t);
	size_t n = 0;
	bool space = false;
	const char *p = type;
	while (*p && n + 2 < sizeof t->shape) {
		unsigned char c = (unsigned char)*p;
		if (c == '(') {
			char *end;
			const char *q = p + 1;
			while (t->nargs < 2) {
				long v = strtol(q, &end, 10);
				if (end == q) {
					t->bad_args = true;
					break;
				}
				t->args[t->nargs++] = v;
				q = end;
				while (*q == ' ')
					q++;
				if (*q != ',')
					break;
				q++;
			}
			while (*q && *q != ')')
				q++, t->bad_args = true;
			p = *q ? q + 1 : q;
			continue;
		}
		if (c == '[') {
			while (*p && *p != ']')
				p++;
			if (*p)
				p++;
			t->ndims++;
			continue;
		}
		if (isspace(c)) {
			space = n > 0;
			p++;
			continue;
		}
		if (space)
			t->shape[n++] = ' ';
		space = false;
		t->shape[n++] = (char)tolower(c);
		p++;
	}
	t->shape[n] = '\0';
}

enum pgfmt { F_PLAIN, F_NUMERIC, F_VARCHAR, F_CHAR, F_DATETIME, F_TIME };

struct pgmap {
	const char *pg;            /* shape, as type_parts() leaves it */
	const char *my;            /* MySQL type (F_PLAIN) */
	uint8_t fmt;               /* enum pgfmt: how arguments shape the type */
	uint8_t conv;              /* enum ls_mysql_conv */
	uint8_t elem;              /* array element rendering */
};

/* The PostgreSQL -> MySQL type mapping (documented in my_sql.h). */
static const struct pgmap pg_types[] = {
	{ "smallint", "SMALLINT", F_PLAIN, LS_MYCONV_NONE, LS_MYELEM_NUMBER },
	{ "int2", "SMALLINT", F_PLAIN, LS_MYCONV_NONE, LS_MYELEM_NUMBER },
	{ "integer", "INT", F_PLAIN, LS_MYCONV_NONE, LS_MYELEM_NUMBER },
	{ "int4", "INT", F_PLAIN, LS_MYCONV_NONE, LS_MYELEM_NUMBER },
	{ "bigint", "BIGINT", F_PLAIN, LS_MYCONV_NONE, LS_MYELEM_NUMBER },
	{ "int8", "BIGINT", F_PLAIN, LS_MYCONV_NONE, LS_MYELEM_NUMBER },
	{ "oid", "INT UNSIGNED", F_PLAIN, LS_MYCONV_NONE, LS_MYELEM_NUMBER },
	{ "real", "FLOAT", F_PLAIN, LS_MYCONV_FLOAT, LS_MYELEM_NUMBER },
	{ "float4", "FLOAT", F_PLAIN, LS_MYCONV_FLOAT, LS_MYELEM_NUMBER },
	{ "double precision", "DOUBLE", F_PLAIN, LS_MYCONV_FLOAT, LS_MYELEM_NUMBER },
	{ "float8", "DOUBLE", F_PLAIN, LS_MYCONV_FLOAT, LS_MYELEM_NUMBER },
	{ "numeric", "DECIMAL", F_NUMERIC, LS_MYCONV_NUMERIC, LS_MYELEM_NUMBER },
	{ "boolean", "TINYINT(1)", F_PLAIN, LS_MYCONV_BOOL, LS_MYELEM_BOOL },
	{ "bool", "TINYINT(1)", F_PLAIN, LS_MYCONV_BOOL, LS_MYELEM_BOOL },
	{ "text", "LONGTEXT", F_PLAIN, LS_MYCONV_NONE, LS_MYELEM_STRING },
	{ "xml", "LONGTEXT", F_PLAIN, LS_MYCONV_NONE, LS_MYELEM_STRING },
	{ "character varying", "VARCHAR", F_VARCHAR, LS_MYCONV_NONE, LS_MYELEM_STRING },
	{ "varchar", "VARCHAR", F_VARCHAR, LS_MYCONV_NONE, LS_MYELEM_STRING },
	{ "character", "CHAR", F_CHAR, LS_MYCONV_NONE, LS_MYELEM_STRING },
	{ "bpchar", "CHAR", F_CHAR, LS_MYCONV_NONE, LS_MYELEM_STRING },
	{ "bytea", "LONGBLOB", F_PLAIN, LS_MYCONV_BYTEA, LS_MYELEM_STRING },
	{ "date", "DATE", F_PLAIN, LS_MYCONV_DATE, LS_MYELEM_STRING },
	{ "timestamp without time zone", "DATETIME", F_DATETIME, LS_MYCONV_TIMESTAMP,
	  LS_MYELEM_STRING },
	{ "timestamp with time zone", "DATETIME", F_DATETIME, LS_MYCONV_TIMESTAMPTZ,
	  LS_MYELEM_STRING },
	{ "timestamptz", "DATETIME", F_DATETIME, LS_MYCONV_TIMESTAMPTZ, LS_MYELEM_STRING },
	{ "time without time zone", "TIME", F_TIME, LS_MYCONV_NONE, LS_MYELEM_STRING },
	{ "interval", "VARCHAR(64)", F_PLAIN, LS_MYCONV_NONE, LS_MYELEM_STRING },
	{ "uuid", "CHAR(36)", F_PLAIN, LS_MYCONV_NONE, LS_MYELEM_STRING },
	{ "json", "JSON", F_PLAIN, LS_MYCONV_NONE, LS_MYELEM_STRING },
	{ "jsonb", "JSON", F_PLAIN, LS_MYCONV_NONE, LS_MYELEM_STRING },
	{ "inet", "VARCHAR(43)", F_PLAIN, LS_MYCONV_NONE, LS_MYELEM_STRING },
	{ "cidr", "VARCHAR(43)", F_PLAIN, LS_MYCONV_NONE, LS_MYELEM_STRING },
	{ "macaddr", "VARCHAR(17)", F_PLAIN, LS_MYCONV_NONE, LS_MYELEM_STRING },
};

/* MySQL's own type vocabulary: a name starting with one of these words is
 * a MySQL COLUMN_TYPE and is used as is. */
static const char *const my_words[] = {
	"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal",
	"numeric", "dec", "fixed", "float", "double", "bit", "char", "varchar", "binary",
	"varbinary", "tinytext", "text", "mediumtext", "longtext", "tinyblob", "blob",
	"mediumblob", "longblob", "enum", "set", "date", "time", "datetime", "timestamp",
	"year", "json", "geometry", "point", "linestring", "polygon", "multipoint",
	"multilinestring", "multipolygon", "geometrycollection", "inet4", "inet6", "uuid",
};

static bool is_my_type(const char *type)
{
	char w[24];
	size_t n = 0;
	while (n + 1 < sizeof w && (isalnum((unsigned char)type[n]) || type[n] == '_')) {
		w[n] = (char)tolower((unsigned char)type[n]);
		n++;
	}
	w[n] = '\0';
	if (type[n] != '\0' && type[n] != '(' && type[n] != ' ')
		return false;
	for (size_t i = 0; i < sizeof my_words / sizeof my_words[0]; i++)
		if (strcmp(w, my_words[i]) == 0)
			return true;
	return false;
}

bool ls_mysql_type_safe(const char *type)
{
	int depth = 0;
	for (const char *p = type; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '\'') {
			/* a complete string: '' doubles a quote; no backslashes */
			for (p++; *p; p++) {
				if (*p == '\\')
					return false;
				if (*p == '\'' && p[1] == '\'')
					p++;
				else if (*p == '\'')
					break;
			}
			if (*p == '\0')
				return false;
			continue;
		}
		if (c == '(') {
			depth++;
		} else if (c == ')') {
			if (--depth < 0)
				return false;
		} else if (!isalnum(c) && c != '_' && c != ' ' && c != ',') {
			return false;
		}
	}
	return depth == 0 && type[0] != '\0';
}

/* A MySQL source's binary and BIT columns: text values (from its snapshot's
 * pg-text rows) become bytes, written as X'..' literals. */
static void my_bytes(const char *type, struct ls_mysql_coltype *out)
{
	static const char *const bytes[] = { "binary", "varbinary", "tinyblob", "blob",
		"mediumblob", "longblob" };
	size_t n = strspn(type, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
	for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++)
		if (strlen(bytes[i]) == n && strncasecmp(type, bytes[i], n) == 0) {
			out->conv = LS_MYCONV_MYBYTES;
			out->binary = true;
		}
	if (n == 3 && strncasecmp(type, "bit", 3) == 0) {
		out->conv = LS_MYCONV_MYBIT;
		out->binary = true;
	}
}

static const struct pgmap *pg_lookup(const char *shape)
{
	for (size_t i = 0; i < sizeof pg_types / sizeof pg_types[0]; i++)
		if (strcmp(pg_types[i].pg, shape) == 0)
			return &pg_types[i];
	return NULL;
}

/* MySQL type for a mapped PostgreSQL type with its arguments. */
static int pg_sql(const struct pgmap *m, const struct tparts *tp, char *out, size_t size,
		  struct ls_err *err)
{
	long a0 = tp->args[0], a1 = tp->args[1];
	switch (m->fmt) {
	case F_NUMERIC:
		if (tp->nargs == 0) {
			snprintf(out, size, "DECIMAL(65,30)");
			return 0;
		}
		if (tp->nargs == 1)
			a1 = 0;
		if (a0 < 1 || a0 > 65)
			return ls_err_set(err, false, "numeric precision %ld exceeds MySQL's 65", a0);
		if (a1 < 0 || a1 > 30 || a1 > a0)
			return ls_err_set(err, false, "numeric scale %ld does not fit MySQL "
					  "(0..30, at most the precision)", a1);
		snprintf(out, size, "DECIMAL(%ld,%ld)", a0, a1);
		return 0;
	case F_VARCHAR:
		if (tp->nargs == 0 || a0 > 16383)
			snprintf(out, size, "LONGTEXT");
		else
			snprintf(out, size, "VARCHAR(%ld)", a0);
		return 0;
	case F_CHAR:
		if (tp->nargs == 0)
			a0 = 1;
		snprintf(out, size, a0 > 255 ? "VARCHAR(%ld)" : "CHAR(%ld)", a0);
		return 0;
	case F_DATETIME:
	case F_TIME:
		snprintf(out, size, "%s(%ld)", m->fmt == F_TIME ? "TIME" : "DATETIME",
			 tp->nargs ? (a0 < 0 ? 0 : a0 > 6 ? 6 : a0) : 6);
		return 0;
	default:
		snprintf(out, size, "%s", m->my);
		return 0;
	}
}

/* Key columns need an indexable type of bounded length. */
static void key_type(char *sql, size_t size)
{
	static const char *const text[] = { "TINYTEXT", "TEXT", "MEDIUMTEXT", "LONGTEXT", "JSON" };
	static const char *const blob[] = { "TINYBLOB", "BLOB", "MEDIUMBLOB", "LONGBLOB" };
	char up[96];
	size_t n = 0;
	for (; sql[n] && n + 1 < sizeof up; n++)
		up[n] = (char)toupper((unsigned char)sql[n]);
	up[n] = '\0';
	for (size_t i = 0; i < sizeof text / sizeof text[0]; i++)
		if (strcmp(up, text[i]) == 0) {
			snprintf(sql, size, "VARCHAR(255)");
			return;
		}
	for (size_t i = 0; i < sizeof blob / sizeof blob[0]; i++)
		if (strcmp(up, blob[i]) == 0) {
			snprintf(sql, size, "VARBINARY(255)");
			return;
		}
	long len;
	if (sscanf(up, "VARCHAR(%ld)", &len) == 1 && len > 768)
		snprintf(sql, size, "VARCHAR(768)");
}

int ls_mysql_coltype(const struct ls_column *c, bool key, struct ls_mysql_coltype *out,
		     struct ls_err *err)
{
	memset(out, 0, sizeof *out);
	const char *type = c->type_name ? c->type_name : "";
	struct tparts tp;
	type_parts(type, &tp);
	const struct pgmap *m = tp.bad_args ? NULL : pg_lookup(tp.shape);
	if (m) {
		if (tp.ndims > 0) {
			snprintf(out->sql, sizeof out->sql, "JSON");
			out->conv = LS_MYCONV_ARRAY;
			out->elem = m->elem;
		} else {
			if (pg_sql(m, &tp, out->sql, sizeof out->sql, err) < 0)
				return ls_err_prefix(err, "type %s", type);
			out->conv = m->conv;
			out->binary = m->conv == LS_MYCONV_BYTEA;
		}
	} else if (tp.ndims == 0 && is_my_type(type) && ls_mysql_type_safe(type) &&
		   strlen(type) < sizeof out->sql) {
		snprintf(out->sql, sizeof out->sql, "%s", type);
		my_bytes(type, out);
	} else {
		return ls_err_set(err, false, "type %s is not supported by the MySQL target",
				  type[0] ? type : "(none)");
	}
	if (key)
		key_type(out->sql, sizeof out->sql);
	return 0;
}

/* ---- value conversions ----------------------------------------------------- */

static bool ieq(const char *a, size_t n, const char *b)
{
	return strlen(b) == n && strncasecmp(a, b, n) == 0;
}

static bool is_nonfinite(const char *in, size_t len)
{
	return ieq(in, len, "nan") || ieq(in, len, "infinity") || ieq(in, len, "-infinity") ||
	       ieq(in, len, "+infinity") || ieq(in, len, "inf") || ieq(in, len, "-inf");
}

static int conv_bool(const char *in, size_t len, struct ls_mysql_buf *out, struct ls_err *err)
{
	if (ieq(in, len, "t") || ieq(in, len, "true") || ieq(in, len, "1")) {
		ls_sbuf_putc(out, '1');
		return 0;
	}
	if (ieq(in, len, "f") || ieq(in, len, "false") || ieq(in, len, "0")) {
		ls_sbuf_putc(out, '0');
		return 0;
	}
	return ls_err_set(err, false, "not a boolean: \"%.*s\"", (int)(len > 20 ? 20 : len), in);
}

/* Rejects what DATE/DATETIME cannot hold: infinity, BC, years past 9999. */
static int check_date(const char *in, size_t len, struct ls_err *err)
{
	if (ieq(in, len, "infinity") || ieq(in, len, "-infinity"))
		return ls_err_set(err, false, "%.*s cannot be stored in a MySQL date/time",
				  (int)len, in);
	if (len >= 3 && strncmp(in + len - 3, " BC", 3) == 0)
		return ls_err_set(err, false, "BC date %.*s cannot be stored in MySQL",
				  (int)(len > 40 ? 40 : len), in);
	size_t y = 0;
	while (y < len && isdigit((unsigned char)in[y]))
		y++;
	if (y > 4)
		return ls_err_set(err, false, "year of %.*s is past MySQL's 9999",
				  (int)(len > 40 ? 40 : len), in);
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), and back. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* Reads exactly n digits at *p. */
static bool digits(const char **p, const char *end, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (*p >= end || !isdigit((unsigned char)**p))
			return false;
		v = v * 10 + (**p - '0');
	}
	*out = v;
	return true;
}

/* "YYYY-MM-DD HH:MM:SS[.ffffff](+|-)HH[:MM[:SS]]" -> UTC
 * "YYYY-MM-DD HH:MM:SS[.ffffff]". */
static int conv_timestamptz(const char *in, size_t len, struct ls_mysql_buf *out,
			    struct ls_err *err)
{
	if (check_date(in, len, err) < 0)
		return -1;
	const char *p = in, *end = in + len, *frac = NULL;
	int y, mo, d, h, mi, s, oh = 0, om = 0, os = 0;
	size_t nfrac = 0;
	bool ok = digits(&p, end, 4, &y) && p < end && *p++ == '-' && digits(&p, end, 2, &mo) &&
		  p < end && *p++ == '-' && digits(&p, end, 2, &d) && p < end && *p++ == ' ' &&
		  digits(&p, end, 2, &h) && p < end && *p++ == ':' && digits(&p, end, 2, &mi) &&
		  p < end && *p++ == ':' && digits(&p, end, 2, &s);
	if (ok && p < end && *p == '.') {
		frac = ++p;
		while (p < end && isdigit((unsigned char)*p))
			p++;
		nfrac = (size_t)(p - frac);
		ok = nfrac > 0 && nfrac <= 6;
	}
	int sign = ok && p < end && (*p == '+' || *p == '-') ? (*p++ == '-' ? -1 : 1) : 0;
	ok = ok && sign != 0 && digits(&p, end, 2, &oh);
	if (ok && p < end && *p == ':') {
		p++;
		ok = digits(&p, end, 2, &om);
		if (ok && p < end && *p == ':') {
			p++;
			ok = digits(&p, end, 2, &os);
		}
	}
	if (!ok || p != end || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 24 || mi > 59 || s > 60)
		return ls_err_set(err, false, "not a timestamp with time zone in ISO style: "
				  "\"%.*s\"", (int)(len > 40 ? 40 : len), in);
	int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s -
		    sign * (oh * 3600 + om * 60 + os);
	int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400), yy;
	int64_t sec = t - days * 86400;
	civil_from_days(days, &yy, &mo, &d);
	if (yy < 1 || yy > 9999)
		return ls_err_set(err, false, "%.*s is outside MySQL's DATETIME range in UTC",
				  (int)(len > 40 ? 40 : len), in);
	ls_mysql_printf(out, "%04lld-%02d-%02d %02d:%02d:%02d", (long long)yy, mo, d,
			(int)(sec / 3600), (int)(sec / 60 % 60), (int)(sec % 60));
	if (nfrac) {
		ls_sbuf_putc(out, '.');
		ls_mysql_putn(out, frac, nfrac);
	}
	return 0;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int conv_bytea(const char *in, size_t len, struct ls_mysql_buf *out, struct ls_err *err)
{
	if (len < 2 || in[0] != '\\' || in[1] != 'x' || len % 2)
		return ls_err_set(err, false, "bytea value not in hex format (set bytea_output "
				  "= hex on the source)");
	char *d = ls_mysql_buf_room(out, (len - 2) / 2);
	if (d == NULL)
		return ls_err_set(err, false, "out of memory");
	for (size_t i = 2; i < len; i += 2) {
		int hi = hexval((unsigned char)in[i]), lo = hexval((unsigned char)in[i + 1]);
		if (hi < 0 || lo < 0)
			return ls_err_set(err, false, "bad bytea hex digit at offset %zu", i);
		*d++ = (char)(hi << 4 | lo);
	}
	out->len += (len - 2) / 2;
	out->data[out->len] = '\0';
	return 0;
}

/* The unsigned decimal a BIT column's value is (up to 64 bits) as its
 * big-endian bytes without leading zero bytes (MySQL's BIT store takes a
 * binary string; 0 is one zero byte). */
static int conv_bit(const char *in, size_t len, struct ls_mysql_buf *out, struct ls_err *err)
{
	uint64_t v = 0;
	if (len == 0 || len > 20)
		return ls_err_set(err, false, "bad BIT value \"%.*s\"", (int)(len > 24 ? 24 : len),
				  in);
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned char)in[i] - '0';
		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return ls_err_set(err, false, "bad BIT value \"%.*s\"", (int)len, in);
		v = v * 10 + d;
	}
	char b[8];
	int n = 0;
	for (int sh = 56; sh >= 0; sh -= 8)
		if (n > 0 || (v >> sh) & 0xff || sh == 0)
			b[n++] = (char)((v >> sh) & 0xff);
	ls_mysql_putn(out, b, (size_t)n);
	return 0;
}

static void json_string(struct ls_mysql_buf *out, const char *s, size_t n)
{
	ls_sbuf_putc(out, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			ls_sbuf_putc(out, '\\');
			ls_sbuf_putc(out, (char)c);
		} else if (c < 0x20) {
			ls_mysql_printf(out, "\\u%04x", c);
		} else {
			ls_sbuf_putc(out, (char)c);
		}
	}
	ls_sbuf_putc(out, '"');
}

/* A JSON number: -?digits[.digits][(e|E)[+-]digits], no leading zeros. */
static bool json_number(const char *s, size_t n)
{
	size_t i = 0;
	if (i < n && s[i] == '-')
		i++;
	size_t d0 = i;
	while (i < n && isdigit((unsigned char)s[i]))
		i++;
	if (i == d0 || (s[d0] == '0' && i - d0 > 1))
		return false;
	if (i < n && s[i] == '.') {
		size_t f = ++i;
		while (i < n && isdigit((unsigned char)s[i]))
			i++;
		if (i == f)
			return false;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		size_t e = i;
		while (i < n && isdigit((unsigned char)s[i]))
			i++;
		if (i == e)
			return false;
	}
	return i == n;
}

static void array_elem(struct ls_mysql_buf *out, uint8_t elem, const char *s, size_t n,
		       bool quoted)
{
	if (!quoted && ieq(s, n, "null"))
		ls_mysql_put(out, "null");
	else if (elem == LS_MYELEM_BOOL && (ieq(s, n, "t") || ieq(s, n, "f")))
		ls_mysql_put(out, (s[0] == 't' || s[0] == 'T') ? "true" : "false");
	else if (elem == LS_MYELEM_NUMBER && json_number(s, n))
		ls_mysql_putn(out, s, n);
	else
		json_string(out, s, n);
}

/* Parses one "{...}" level at *p into a JSON array; tmp collects element
 * text.  Returns -1 on malformed input. */
static int array_level(const char **p, const char *end, uint8_t elem, struct ls_mysql_buf *out,
		       struct ls_mysql_buf *tmp, int depth)
{
	if (depth > 6 || *p >= end || **p != '{')
		return -1;
	(*p)++;
	ls_sbuf_putc(out, '[');
	bool first = true;
	while (*p < end && isspace((unsigned char)**p))
		(*p)++;
	if (*p < end && **p == '}') {
		(*p)++;
		ls_sbuf_putc(out, ']');
		return 0;
	}
	for (;;) {
		while (*p < end && isspace((unsigned char)**p))
			(*p)++;
		if (*p >= end)
			return -1;
		if (!first)
			ls_sbuf_putc(out, ',');
		first = false;
		if (**p == '{') {
			if (array_level(p, end, elem, out, tmp, depth + 1) < 0)
				return -1;
		} else {
			bool quoted = **p == '"';
			ls_mysql_buf_reset(tmp);
			if (quoted) {
				for ((*p)++; *p < end && **p != '"'; (*p)++) {
					if (**p == '\\' && *p + 1 < end)
						(*p)++;
					ls_sbuf_putc(tmp, **p);
				}
				if (*p >= end)
					return -1;
				(*p)++;
			} else {
				while (*p < end && **p != ',' && **p != '}') {
					if (**p == '\\' && *p + 1 < end)
						(*p)++;
					ls_sbuf_putc(tmp, *(*p)++);
				}
				while (tmp->len && isspace((unsigned char)tmp->data[tmp->len - 1]))
					tmp->data[--tmp->len] = '\0';
			}
			array_elem(out, elem, ls_mysql_buf_str(tmp), tmp->len, quoted);
		}
		while (*p < end && isspace((unsigned char)**p))
			(*p)++;
		if (*p >= end)
			return -1;
		if (**p == '}') {
			(*p)++;
			ls_sbuf_putc(out, ']');
			return 0;
		}
		if (**p != ',')
			return -1;
		(*p)++;
	}
}

static int conv_array(uint8_t elem, const char *in, size_t len, struct ls_mysql_buf *out,
		      struct ls_err *err)
{
	const char *p = in, *end = in + len;
	if (p < end && *p == '[') {   /* "[1:2]={...}": bounds decoration */
		const char *eq = memchr(p, '=', len);
		if (eq == NULL)
			return ls_err_set(err, false, "malformed array value");
		p = eq + 1;
	}
	struct ls_mysql_buf tmp;
	ls_mysql_buf_init(&tmp);
	int rc = array_level(&p, end, elem, out, &tmp, 0);
	bool oom = tmp.oom;
	ls_mysql_buf_free(&tmp);
	if (oom)
		return ls_err_set(err, false, "out of memory");
	if (rc < 0 || p != end)
		return ls_err_set(err, false, "malformed array value \"%.*s\"",
				  (int)(len > 40 ? 40 : len), in);
	return 0;
}

int ls_mysql_convert(uint8_t conv, uint8_t elem, const char *in, size_t len,
		     struct ls_mysql_buf *out, struct ls_err *err)
{
	switch (conv) {
	case LS_MYCONV_BOOL:
		return conv_bool(in, len, out, err);
	case LS_MYCONV_FLOAT:
	case LS_MYCONV_NUMERIC:
		if (is_nonfinite(in, len))
			return ls_err_set(err, false, "%.*s cannot be stored in MySQL", (int)len, in);
		break;
	case LS_MYCONV_DATE:
	case LS_MYCONV_TIMESTAMP:
		if (check_date(in, len, err) < 0)
			return -1;
		break;
	case LS_MYCONV_TIMESTAMPTZ:
		return conv_timestamptz(in, len, out, err);
	case LS_MYCONV_BYTEA:
		return conv_bytea(in, len, out, err);
	case LS_MYCONV_ARRAY:
		return conv_array(elem, in, len, out, err);
	case LS_MYCONV_MYBYTES:
		return conv_bytea(in, len, out, err);
	case LS_MYCONV_MYBIT:
		return conv_bit(in, len, out, err);
	default:
		break;
	}
	ls_mysql_putn(out, in, len);
	return 0;
}

/* ---- comparing MySQL types --------------------------------------------------- */

void ls_mysql_type_norm(const char *type, char *out, size_t size)
{
	char tmp[128];
	size_t n = 0;
	bool space = false;
	for (const char *p = type; *p && n + 2 < sizeof tmp; p++) {
		if (isspace((unsigned char)*p)) {
			space = n > 0;
			continue;
		}
		if (space && *p != '(')
			tmp[n++] = ' ';
		space = false;
		tmp[n++] = (char)tolower((unsigned char)*p);
	}
	tmp[n] = '\0';
	static const struct { const char *from, *to; } alias[] = {
		{ "integer", "int" }, { "numeric", "decimal" }, { "dec", "decimal" },
		{ "fixed", "decimal" }, { "real", "double" },
		{ "boolean", "tinyint(1)" }, { "bool", "tinyint(1)" },
	};
	const char *rest = tmp;
	const char *word = "";
	size_t wl = strcspn(tmp, "( ");
	if (strncmp(tmp, "double precision", 16) == 0) {
		word = "double";
		rest = tmp + 16;
	} else {
		for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
			if (wl == strlen(alias[i].from) && strncmp(tmp, alias[i].from, wl) == 0) {
				word = alias[i].to;
				rest = tmp + wl;
				break;
			}
	}
	if (word[0] == '\0') {
		static const char *const ints[] = { "tinyint", "smallint", "mediumint", "int",
						    "bigint" };
		for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
			if (wl == strlen(ints[i]) && strncmp(tmp, ints[i], wl) == 0 &&
			    tmp[wl] == '(' && strncmp(tmp, "tinyint(1)", 10) != 0) {
				const char *close = strchr(tmp, ')');
				if (close) {
					snprintf(out, size, "%.*s%s", (int)wl, tmp, close + 1);
					return;
				}
			}
		snprintf(out, size, "%s", tmp);
		return;
	}
	if (strcmp(word, "decimal") == 0 && *rest != '(')
		snprintf(out, size, "decimal(10,0)%s", rest);
	else
		snprintf(out, size, "%s%s", word, rest);
}

struct mtype {
	char base[64];
	long a[2];
	int nargs;
	bool is_unsigned;
};

static void mtype_parse(const char *t, struct mtype *m)
{
	memset(m, 0, sizeof *m);
	char norm[128];
	ls_mysql_type_norm(t, norm, sizeof norm);
	struct tparts tp;
	type_parts(norm, &tp);
	m->nargs = tp.nargs;
	m->a[0] = tp.args[0];
	m->a[1] = tp.args[1];
	char *u = strstr(tp.shape, " unsigned");
	if (u) {
		m->is_unsigned = true;
		*u = '\0';
	}
	snprintf(m->base, sizeof m->base, "%s", tp.shape);
	if (strcmp(norm, "tinyint(1)") == 0)
		m->nargs = 0;
}

static int rank_of(const char *base, const char *const *list, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(base, list[i]) == 0)
			return i + 1;
	return 0;
}

static const char *const INTS[] = { "tinyint", "smallint", "mediumint", "int", "bigint" };
static const char *const TEXTS[] = { "tinytext", "text", "mediumtext", "longtext" };
static const char *const BLOBS[] = { "tinyblob", "blob", "mediumblob", "longblob" };
/* Characters each TEXT size holds for sure in utf8mb4 (bytes / 4). */
static const long TEXT_CHARS[] = { 63, 16383, 4194303, 1073741823 };

static bool strings_fit(const struct mtype *w, const struct mtype *h)
{
	bool wchar = strcmp(w->base, "char") == 0 || strcmp(w->base, "varchar") == 0;
	int wt = rank_of(w->base, TEXTS, 4), ht = rank_of(h->base, TEXTS, 4);
	long wlen = wchar ? (w->nargs ? w->a[0] : 1) : 0;
	if (wchar && (strcmp(h->base, "varchar") == 0 ||
		      (strcmp(h->base, "char") == 0 && strcmp(w->base, "char") == 0)))
		return (h->nargs ? h->a[0] : 1) >= wlen;
	if (wchar && ht)
		return TEXT_CHARS[ht - 1] >= wlen;
	if (wt && ht)
		return ht >= wt;
	if (strcmp(w->base, "json") == 0)
		return ht == 4 || strcmp(h->base, "json") == 0;
	bool wbin = strcmp(w->base, "binary") == 0 || strcmp(w->base, "varbinary") == 0;
	int wb = rank_of(w->base, BLOBS, 4), hb = rank_of(h->base, BLOBS, 4);
	if (wbin && strcmp(h->base, "varbinary") == 0)
		return h->a[0] >= w->a[0];
	if (wbin && hb)
		return true;
	return wb && hb && hb >= wb;
}

bool ls_mysql_type_compatible(const char *want, const char *have)
{
	char wn[128], hn[128];
	ls_mysql_type_norm(want, wn, sizeof wn);
	ls_mysql_type_norm(have, hn, sizeof hn);
	if (strcmp(wn, hn) == 0)
		return true;
	struct mtype w, h;
	mtype_parse(want, &w);
	mtype_parse(have, &h);
	int wi = rank_of(w.base, INTS, 5), hi = rank_of(h.base, INTS, 5);
	if (wi && hi)
		return w.is_unsigned == h.is_unsigned && hi >= wi;
	if (strcmp(w.base, "decimal") == 0 && strcmp(h.base, "decimal") == 0)
		return w.is_unsigned == h.is_unsigned && h.a[1] >= w.a[1] &&
		       h.a[0] - h.a[1] >= w.a[0] - w.a[1];
	if (strcmp(w.base, "float") == 0 && strcmp(h.base, "double") == 0)
		return w.is_unsigned == h.is_unsigned;
	if ((strcmp(w.base, "datetime") == 0 || strcmp(w.base, "time") == 0 ||
	     strcmp(w.base, "timestamp") == 0) && strcmp(w.base, h.base) == 0)
		return h.a[0] >= w.a[0];
	return strings_fit(&w, &h);
}

/* ---- COPY text ------------------------------------------------------------------ */

int ls_mysql_pgtext_fields(const char *line, size_t n, struct ls_mysql_buf *buf,
			   size_t *off, size_t *len, int max, struct ls_err *err)
{
	ls_mysql_buf_reset(buf);
	int nf = 0;
	size_t i = 0;
	for (;;) {
		if (nf >= max)
			return ls_err_set(err, false, "COPY line has more than %d fields", max);
		size_t start = i;
		while (i < n && line[i] != '\t')
			i++;
		off[nf] = buf->len;
		if (i - start == 2 && line[start] == '\\' && line[start + 1] == 'N') {
			len[nf++] = SIZE_MAX;
		} else {
			for (size_t j = start; j < i; j++) {
				char c = line[j];
				if (c != '\\' || j + 1 >= i) {
					ls_sbuf_putc(buf, c);
					continue;
				}
				c = line[++j];
				switch (c) {
				case 'b': ls_sbuf_putc(buf, '\b'); break;
				case 'f': ls_sbuf_putc(buf, '\f'); break;
				case 'n': ls_sbuf_putc(buf, '\n'); break;
				case 'r': ls_sbuf_putc(buf, '\r'); break;
				case 't': ls_sbuf_putc(buf, '\t'); break;
				case 'v': ls_sbuf_putc(buf, '\v'); break;
				case 'x':
					if (j + 1 < i && hexval((unsigned char)line[j + 1]) >= 0) {
						int v = hexval((unsigned char)line[++j]);
						if (j + 1 < i && hexval((unsigned char)line[j + 1]) >= 0)
							v = v * 16 + hexval((unsigned char)line[++j]);
						ls_sbuf_putc(buf, (char)v);
					} else {
						ls_sbuf_putc(buf, 'x');
					}
					break;
				default:
					if (c >= '0' && c <= '7') {
						int v = c - '0';
						for (int k = 0; k < 2 && j + 1 < i && line[j + 1] >= '0' &&
								line[j + 1] <= '7'; k++)
							v = v * 8 + (line[++j] - '0');
						ls_sbuf_putc(buf, (char)v);
					} else {
						ls_sbuf_putc(buf, c);
					}
				}
			}
			len[nf] = buf->len - off[nf];
			nf++;
			ls_sbuf_putc(buf, '\0');   /* fields are C strings too */
		}
		if (i >= n)
			break;
		i++;   /* the tab */
	}
	if (buf->oom)
		return ls_err_set(err, false, "out of memory");
	return nf;
}

/* ---- DDL --------------------------------------------------------------------------- */

static bool is_full(const struct ls_relation *r)
{
	return r->replident == LS_REPLIDENT_FULL;
}

/* The column's definition: `name` TYPE [NOT NULL]. */
static int col_def(struct ls_mysql_buf *b, const struct ls_relation *rel, int i,
		   struct ls_err *err)
{
	bool key = !is_full(rel) && (rel->cols[i].flags & LS_COL_KEY);
	struct ls_mysql_coltype ct;
	if (ls_mysql_coltype(&rel->cols[i], key, &ct, err) < 0)
		return ls_err_prefix(err, "table %s.%s column %s", rel->schema, rel->name,
				     rel->cols[i].name);
	ls_mysql_ident(b, rel->cols[i].name);
	ls_mysql_printf(b, " %s%s", ct.sql, key ? " NOT NULL" : "");
	return 0;
}

int ls_mysql_create_table(struct ls_mysql_buf *b, const struct ls_relation *rel,
			  const char *collate, struct ls_err *err)
{
	ls_mysql_put(b, "CREATE TABLE IF NOT EXISTS ");
	ls_mysql_qualified(b, rel->schema, rel->name);
	ls_mysql_put(b, " (");
	for (int i = 0; i < rel->ncols; i++) {
		if (i)
			ls_mysql_put(b, ", ");
		if (col_def(b, rel, i, err) < 0)
			return -1;
	}
	if (!is_full(rel) && ls_relation_nkeys(rel) > 0) {
		ls_mysql_put(b, ", PRIMARY KEY (");
		bool first = true;
		for (int i = 0; i < rel->ncols; i++)
			if (rel->cols[i].flags & LS_COL_KEY) {
				if (!first)
					ls_mysql_put(b, ", ");
				first = false;
				ls_mysql_ident(b, rel->cols[i].name);
			}
		ls_mysql_put(b, ")");
	}
	ls_mysql_printf(b, ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4%s%s",
			collate ? " COLLATE=" : "", collate ? collate : "");
	return b->oom ? ls_err_set(err, false, "out of memory") : 0;
}

static int find_col(const struct ls_relation *r, const char *name)
{
	for (int i = 0; i < r->ncols; i++)
		if (strcmp(r->cols[i].name, name) == 0)
			return i;
	return -1;
}

static bool same_type(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static bool same_keys(const struct ls_relation *a, const struct ls_relation *b)
{
	if (ls_relation_nkeys(a) != ls_relation_nkeys(b))
		return false;
	for (int i = 0; i < a->ncols; i++) {
		if (!(a->cols[i].flags & LS_COL_KEY))
			continue;
		int j = find_col(b, a->cols[i].name);
		if (j < 0 || !(b->cols[j].flags & LS_COL_KEY))
			return false;
	}
	return true;
}

static bool is_rename(const struct ls_relation *old, const struct ls_relation *new, int i)
{
	return i < new->ncols && find_col(new, old->cols[i].name) < 0 &&
	       find_col(old, new->cols[i].name) < 0 &&
	       same_type(old->cols[i].type_name, new->cols[i].type_name);
}

static void alter(struct ls_mysql_buf *b, const struct ls_relation *rel)
{
	ls_mysql_put(b, "ALTER TABLE ");
	ls_mysql_qualified(b, rel->schema, rel->name);
	ls_sbuf_putc(b, ' ');
}

static void describe(struct ls_mysql_buf *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void describe(struct ls_mysql_buf *d, const char *fmt, ...)
{
	char line[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	ls_mysql_printf(d, "%s%s", d->len ? "; " : "", line);
}

int ls_mysql_ddl(struct ls_mysql_buf *b, struct ls_mysql_buf *descr,
		 const struct ls_relation *old, const struct ls_relation *new, bool mariadb,
		 int *nstmts, struct ls_err *err)
{
	*nstmts = 0;
	if (!is_full(old) && !is_full(new) && ls_relation_nkeys(new) > 0 && !same_keys(old, new))
		return ls_err_set(err, false, "table %s.%s: key columns changed; change the "
				  "target's primary key by hand", new->schema, new->name);
	const char *ie = mariadb ? "IF EXISTS " : "", *ine = mariadb ? "IF NOT EXISTS " : "";
	for (int i = 0; i < old->ncols; i++)
		if (is_rename(old, new, i)) {
			alter(b, new);
			ls_mysql_put(b, "RENAME COLUMN ");
			ls_mysql_ident(b, old->cols[i].name);
			ls_mysql_put(b, " TO ");
			ls_mysql_ident(b, new->cols[i].name);
			ls_sbuf_putc(b, '\0');
			(*nstmts)++;
			describe(descr, "column %s renamed to %s", old->cols[i].name,
				 new->cols[i].name);
		}
	for (int i = 0; i < old->ncols; i++)
		if (find_col(new, old->cols[i].name) < 0 && !is_rename(old, new, i)) {
			alter(b, new);
			ls_mysql_printf(b, "DROP COLUMN %s", ie);
			ls_mysql_ident(b, old->cols[i].name);
			ls_sbuf_putc(b, '\0');
			(*nstmts)++;
			describe(descr, "column %s dropped", old->cols[i].name);
		}
	for (int j = 0; j < new->ncols; j++) {
		int i = find_col(old, new->cols[j].name);
		if (i < 0 || same_type(old->cols[i].type_name, new->cols[j].type_name))
			continue;
		alter(b, new);
		ls_mysql_put(b, "MODIFY COLUMN ");
		if (col_def(b, new, j, err) < 0)
			return -1;
		ls_sbuf_putc(b, '\0');
		(*nstmts)++;
		describe(descr, "column %s type %s -> %s", new->cols[j].name,
			 old->cols[i].type_name, new->cols[j].type_name);
	}
	for (int j = 0; j < new->ncols; j++)
		if (find_col(old, new->cols[j].name) < 0 && !(j < old->ncols && is_rename(old, new, j))) {
			alter(b, new);
			ls_mysql_printf(b, "ADD COLUMN %s", ine);
			if (col_def(b, new, j, err) < 0)
				return -1;
			ls_sbuf_putc(b, '\0');
			(*nstmts)++;
			describe(descr, "column %s added (%s)", new->cols[j].name,
				 new->cols[j].type_name);
		}
	return b->oom || descr->oom ? ls_err_set(err, false, "out of memory") : 0;
}
