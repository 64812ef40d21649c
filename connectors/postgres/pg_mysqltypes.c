#include "connectors/postgres/pg_mysqltypes.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/mysql/my_sql.h"
#include "connectors/postgres/pg_sql.h"

/* ---- recognising MySQL types ------------------------------------------------------ */

/* The MYSQL_TYPE_* codes (mysql_com.h), repeated: this folder does not
 * include the MySQL client's headers. */
enum {
	MY_DECIMAL = 0, MY_TINY = 1, MY_SHORT = 2, MY_LONG = 3, MY_FLOAT = 4,
	MY_DOUBLE = 5, MY_TIMESTAMP = 7, MY_LONGLONG = 8, MY_INT24 = 9, MY_DATE = 10,
	MY_TIME = 11, MY_DATETIME = 12, MY_YEAR = 13, MY_NEWDATE = 14, MY_VARCHAR = 15,
	MY_BIT = 16, MY_TIMESTAMP2 = 17, MY_DATETIME2 = 18, MY_TIME2 = 19, MY_JSON = 245,
	MY_NEWDECIMAL = 246, MY_ENUM = 247, MY_SET = 248, MY_TINY_BLOB = 249,
	MY_MEDIUM_BLOB = 250, MY_LONG_BLOB = 251, MY_BLOB = 252, MY_VAR_STRING = 253,
	MY_STRING = 254, MY_GEOMETRY = 255,
};

enum kind {
	K_TINY, K_SMALL, K_MEDIUM, K_INT, K_BIG, K_DECIMAL, K_FLOAT, K_DOUBLE, K_BIT,
	K_VARCHAR, K_TEXT, K_BYTES, K_ENUM, K_JSON, K_DATE, K_DATETIME, K_TIMESTAMP, K_TIME,
	K_YEAR,
};

struct myword {
	const char *word;
	uint8_t kind;              /* enum kind */
	int codes[4];              /* MYSQL_TYPE_* codes it may carry; -1 ends */
};

static const struct myword words[] = {
	{ "tinyint", K_TINY, { MY_TINY, -1 } },
	{ "smallint", K_SMALL, { MY_SHORT, -1 } },
	{ "mediumint", K_MEDIUM, { MY_INT24, -1 } },
	{ "int", K_INT, { MY_LONG, -1 } },
	{ "integer", K_INT, { MY_LONG, -1 } },
	{ "bigint", K_BIG, { MY_LONGLONG, -1 } },
	{ "decimal", K_DECIMAL, { MY_NEWDECIMAL, MY_DECIMAL, -1 } },
	{ "numeric", K_DECIMAL, { MY_NEWDECIMAL, MY_DECIMAL, -1 } },
	{ "float", K_FLOAT, { MY_FLOAT, -1 } },
	{ "double", K_DOUBLE, { MY_DOUBLE, -1 } },
	{ "real", K_DOUBLE, { MY_DOUBLE, -1 } },
	{ "bit", K_BIT, { MY_BIT, -1 } },
	{ "char", K_VARCHAR, { MY_STRING, -1 } },
	{ "varchar", K_VARCHAR, { MY_VARCHAR, MY_VAR_STRING, -1 } },
	{ "tinytext", K_TEXT, { MY_BLOB, MY_TINY_BLOB, -1 } },
	{ "text", K_TEXT, { MY_BLOB, -1 } },
	{ "mediumtext", K_TEXT, { MY_BLOB, MY_MEDIUM_BLOB, -1 } },
	{ "longtext", K_TEXT, { MY_BLOB, MY_LONG_BLOB, -1 } },
	{ "binary", K_BYTES, { MY_STRING, -1 } },
	{ "varbinary", K_BYTES, { MY_VARCHAR, MY_VAR_STRING, -1 } },
	{ "tinyblob", K_BYTES, { MY_BLOB, MY_TINY_BLOB, -1 } },
	{ "blob", K_BYTES, { MY_BLOB, -1 } },
	{ "mediumblob", K_BYTES, { MY_BLOB, MY_MEDIUM_BLOB, -1 } },
	{ "longblob", K_BYTES, { MY_BLOB, MY_LONG_BLOB, -1 } },
	{ "enum", K_ENUM, { MY_ENUM, MY_STRING, -1 } },
	{ "set", K_ENUM, { MY_SET, MY_STRING, -1 } },
	{ "json", K_JSON, { MY_JSON, MY_BLOB, -1 } },
	{ "date", K_DATE, { MY_DATE, MY_NEWDATE, -1 } },
	{ "datetime", K_DATETIME, { MY_DATETIME2, MY_DATETIME, -1 } },
	{ "timestamp", K_TIMESTAMP, { MY_TIMESTAMP2, MY_TIMESTAMP, -1 } },
	{ "time", K_TIME, { MY_TIME2, MY_TIME, -1 } },
	{ "year", K_YEAR, { MY_YEAR, -1 } },
	{ "geometry", K_BYTES, { MY_GEOMETRY, -1 } },
	{ "point", K_BYTES, { MY_GEOMETRY, -1 } },
	{ "linestring", K_BYTES, { MY_GEOMETRY, -1 } },
	{ "polygon", K_BYTES, { MY_GEOMETRY, -1 } },
	{ "multipoint", K_BYTES, { MY_GEOMETRY, -1 } },
	{ "multilinestring", K_BYTES, { MY_GEOMETRY, -1 } },
	{ "multipolygon", K_BYTES, { MY_GEOMETRY, -1 } },
	{ "geometrycollection", K_BYTES, { MY_GEOMETRY, -1 } },
};

/* A COLUMN_TYPE taken apart: lower-case word, up to two numeric
 * arguments, the unsigned modifier. */
struct parts {
	char word[24];
	int nargs;
	long args[2];
	bool is_unsigned;
	bool bad;
};

static void split_type(const char *type, struct parts *p)
{
	memset(p, 0, sizeof *p);
	size_t n = 0;
	const char *s = type;
	while (*s == ' ')
		s++;
	while (isalnum((unsigned char)*s) || *s == '_') {
		if (n + 1 >= sizeof p->word) {
			p->bad = true;
			return;
		}
		p->word[n++] = (char)tolower((unsigned char)*s++);
	}
	if (*s == '(') {
		/* numeric arguments; enum/set members are skipped whole */
		bool quoted = false;
		const char *a = ++s;
		for (; *s && (quoted || *s != ')'); s++)
			if (*s == '\'')
				quoted = !quoted;
		if (*s != ')') {
			p->bad = true;
			return;
		}
		if (isdigit((unsigned char)*a)) {
			char *end;
			p->args[p->nargs++] = strtol(a, &end, 10);
			if (*end == ',' && p->nargs < 2)
				p->args[p->nargs++] = strtol(end + 1, &end, 10);
		}
		s++;
	}
	for (const char *m = s; *m; m++)
		if (strncasecmp(m, "unsigned", 8) == 0)
			p->is_unsigned = true;
}

static const struct myword *find_word(const char *w)
{
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		if (strcmp(words[i].word, w) == 0)
			return &words[i];
	return NULL;
}

int ls_pgmy_way_back(const struct ls_column *col, struct ls_pgmy_type *back,
		     struct ls_err *err)
{
	struct ls_mysql_coltype ct;
	if (ls_mysql_coltype(col, (col->flags & LS_COL_KEY) != 0, &ct, err) < 0 ||
	    ls_pgmy_type(ct.sql, back, err) < 0)
		return -1;
	if (ct.conv == LS_MYCONV_ARRAY)
		return ls_err_set(err, false, "its MySQL column (%s) comes back as %s, which a "
				  "%s column does not take", ct.sql, back->pg, col->type_name);
	return 0;
}

bool ls_pgmy_takes_back(const char *have, const char *want)
{
	struct ls_column c = { .name = "c", .type_name = (char *)have, .typmod = -1 };
	struct ls_pgmy_type back;
	struct ls_err e;
	if (ls_pgmy_way_back(&c, &back, &e) < 0)
		return false;
	char b[LS_PGMY_TYPE_MAX], w[LS_PGMY_TYPE_MAX];
	ls_pgsql_type_norm(back.pg, b, sizeof b);
	ls_pgsql_type_norm(want, w, sizeof w);
	return strcmp(b, w) == 0 || ls_pgsql_type_compatible(want, back.pg);
}

bool ls_pgmy_is_mysql_column(const struct ls_column *c)
{
	if (c->type_name == NULL)
		return false;
	struct parts p;
	split_type(c->type_name, &p);
	const struct myword *w = p.bad ? NULL : find_word(p.word);
	for (int i = 0; w != NULL && i < 4 && w->codes[i] >= 0; i++)
		if ((uint32_t)w->codes[i] == c->type_oid)
			return true;
	return false;
}

bool ls_pgmy_is_mysql_relation(const struct ls_relation *r)
{
	for (uint16_t i = 0; r != NULL && i < r->ncols; i++)
		if (ls_pgmy_is_mysql_column(&r->cols[i]))
			return true;
	return false;
}

/* ---- the mapping ------------------------------------------------------------------- */

static int fsp(const struct parts *p)
{
	long f = p->nargs ? p->args[0] : 0;
	return f < 0 ? 0 : f > 6 ? 6 : (int)f;
}

int ls_pgmy_type(const char *mysql_type, struct ls_pgmy_type *out, struct ls_err *err)
{
	memset(out, 0, sizeof *out);
	struct parts p;
	split_type(mysql_type ? mysql_type : "", &p);
	const struct myword *w = p.bad ? NULL : find_word(p.word);
	if (w == NULL)
		return ls_err_set(err, false, "type %s has no PostgreSQL mapping",
				  mysql_type ? mysql_type : "(none)");
	const char *pg = NULL;
	char buf[LS_PGMY_TYPE_MAX];
	switch (w->kind) {
	case K_TINY:
		pg = "smallint";
		break;
	case K_SMALL:
		pg = p.is_unsigned ? "integer" : "smallint";
		break;
	case K_MEDIUM:
		pg = "integer";
		break;
	case K_INT:
		pg = p.is_unsigned ? "bigint" : "integer";
		break;
	case K_BIG:
		pg = p.is_unsigned ? "numeric(20,0)" : "bigint";
		break;
	case K_DECIMAL:
		/* MySQL's DECIMAL without arguments is DECIMAL(10,0) */
		snprintf(buf, sizeof buf, "numeric(%ld,%ld)", p.nargs ? p.args[0] : 10,
			 p.nargs > 1 ? p.args[1] : 0);
		pg = buf;
		break;
	case K_FLOAT:
		pg = "real";
		break;
	case K_DOUBLE:
		pg = "double precision";
		break;
	case K_BIT:
		pg = p.nargs && p.args[0] >= 64 ? "numeric(20,0)" : "bigint";
		break;
	case K_VARCHAR:
		snprintf(buf, sizeof buf, "character varying(%ld)",
			 p.nargs && p.args[0] > 0 ? p.args[0] : 1);
		pg = buf;
		break;
	case K_TEXT:
	case K_ENUM:
		pg = "text";
		break;
	case K_BYTES:
		pg = "bytea";
		break;
	case K_JSON:
		pg = "jsonb";
		break;
	case K_DATE:
		pg = "date";
		out->conv = LS_PGMY_DATE;
		break;
	case K_DATETIME:
		snprintf(buf, sizeof buf, "timestamp(%d) without time zone", fsp(&p));
		pg = buf;
		out->conv = LS_PGMY_DATETIME;
		break;
	case K_TIMESTAMP:
		snprintf(buf, sizeof buf, "timestamp(%d) with time zone", fsp(&p));
		pg = buf;
		out->conv = LS_PGMY_TIMESTAMP;
		break;
	case K_TIME:
		pg = "interval";
		break;
	case K_YEAR:
		pg = "smallint";
		break;
	}
	snprintf(out->pg, sizeof out->pg, "%s", pg);
	return 0;
}

struct ls_relation *ls_pgmy_relation(const struct ls_relation *rel, uint8_t **convs,
				     struct ls_err *err)
{
	struct ls_relation *r = ls_relation_dup(rel);
	uint8_t *cv = calloc((size_t)rel->ncols + 1, 1);
	if (r == NULL || cv == NULL) {
		ls_relation_free(r);
		free(cv);
		ls_err_set(err, false, "relation %s.%s: out of memory", rel->schema, rel->name);
		return NULL;
	}
	for (uint16_t i = 0; i < r->ncols; i++) {
		struct ls_column *c = &r->cols[i];
		if (!ls_pgmy_is_mysql_column(c))
			continue;   /* already a PostgreSQL spelling */
		struct ls_pgmy_type t;
		char *name = NULL;
		int rc = ls_pgmy_type(c->type_name, &t, err);
		if (rc == 0 && (name = strdup(t.pg)) == NULL)
			rc = ls_err_set(err, false, "out of memory");
		if (rc < 0) {
			ls_err_prefix(err, "table %s.%s column %s", rel->schema, rel->name,
				      c->name);
			ls_relation_free(r);
			free(cv);
			return NULL;
		}
		free(c->type_name);
		c->type_name = name;
		c->type_oid = 0;
		c->typmod = -1;
		cv[i] = t.conv;
	}
	if (convs != NULL)
		*convs = cv;
	else
		free(cv);
	return r;
}

/* ---- values --------------------------------------------------------------------------- */

static int put(char **out, size_t *cap, size_t *len, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap : 64;
		while (c < *len + n + 1)
			c *= 2;
		char *p = realloc(*out, c);
		if (p == NULL)
			return -1;
		*out = p;
		*cap = c;
	}
	memcpy(*out + *len, s, n);
	*len += n;
	(*out)[*len] = '\0';
	return 0;
}

/* "YYYY-MM-DD..." with a zero year, month or day. */
static bool zero_date(const char *in, size_t len)
{
	if (len < 10 || in[4] != '-' || in[7] != '-')
		return false;
	return strncmp(in, "0000", 4) == 0 || strncmp(in + 5, "00", 2) == 0 ||
	       strncmp(in + 8, "00", 2) == 0;
}

int ls_pgmy_value(uint8_t conv, const char *in, size_t len, char **out, size_t *cap,
		  size_t *outlen, struct ls_err *err)
{
	*outlen = 0;
	if (conv != LS_PGMY_NONE && zero_date(in, len))
		return ls_err_set(err, false, "MySQL zero date '%.*s' has no PostgreSQL value "
				  "(fix the row on the source, or exclude the table)",
				  (int)(len > 40 ? 40 : len), in);
	if (put(out, cap, outlen, in, len) < 0 ||
	    (conv == LS_PGMY_TIMESTAMP && put(out, cap, outlen, "+00", 3) < 0))
		return ls_err_set(err, false, "out of memory");
	return 0;
}

/* "(a, b)=(1, x)" from the key columns' texts, for error messages. */
static void key_text(char *out, size_t size, const struct ls_relation *rel,
		     const char *const *txt, const size_t *lens)
{
	char names[160] = "", vals[160] = "";
	size_t nl = 0, vl = 0;
	int shown = 0;
	for (uint16_t i = 0; i < rel->ncols; i++) {
		if (!(rel->cols[i].flags & LS_COL_KEY))
			continue;
		const char *v = txt[i] ? txt[i] : "NULL";
		int vn = txt[i] ? (int)(lens[i] > 40 ? 40 : lens[i]) : 4;
		if (nl < sizeof names)
			nl += (size_t)snprintf(names + nl, sizeof names - nl, "%s%s",
					       shown ? ", " : "", rel->cols[i].name);
		if (vl < sizeof vals)
			vl += (size_t)snprintf(vals + vl, sizeof vals - vl, "%s%.*s",
					       shown ? ", " : "", vn, v);
		shown++;
	}
	if (size > 8)
		snprintf(out, size, "(%.*s)=(%.*s)", (int)(size / 2 - 3), names,
			 (int)(size / 2 - 3), vals);
}

/* ---- the apply side ---------------------------------------------------------------- */

struct mapent {
	struct mapent *next;
	struct ls_relation *src;   /* owned: the MySQL definition */
	struct ls_relation *pg;    /* owned: its mapping */
	uint8_t *convs;            /* owned, per column */
	bool any_conv;
};

struct ls_pgmy {
	struct mapent *ents;
	struct ls_arena arena;     /* converted values of the last change */
	struct ls_change ch;
	char *buf;
	size_t cap;
};

struct ls_pgmy *ls_pgmy_new(void)
{
	struct ls_pgmy *m = calloc(1, sizeof *m);
	if (m != NULL)
		ls_arena_init(&m->arena);
	return m;
}

static void ent_free(struct mapent *e)
{
	ls_relation_free(e->src);
	ls_relation_free(e->pg);
	free(e->convs);
	free(e);
}

void ls_pgmy_free(struct ls_pgmy *m)
{
	if (m == NULL)
		return;
	for (struct mapent *e = m->ents, *n; e; e = n) {
		n = e->next;
		ent_free(e);
	}
	ls_arena_free(&m->arena);
	free(m->buf);
	free(m);
}

static struct mapent *find_ent(struct ls_pgmy *m, uint32_t id)
{
	for (struct mapent *e = m->ents; e; e = e->next)
		if (e->src->id == id)
			return e;
	return NULL;
}

/* The entry for rel, made or remade when its definition changed. */
static struct mapent *entry(struct ls_pgmy *m, const struct ls_relation *rel,
			    struct ls_err *err)
{
	struct mapent *e = find_ent(m, rel->id);
	if (e != NULL && ls_relation_equal(e->src, rel))
		return e;
	struct mapent *n = calloc(1, sizeof *n);
	if (n == NULL || (n->src = ls_relation_dup(rel)) == NULL) {
		free(n);
		ls_err_set(err, false, "relation %s.%s: out of memory", rel->schema, rel->name);
		return NULL;
	}
	if ((n->pg = ls_pgmy_relation(rel, &n->convs, err)) == NULL) {
		ent_free(n);
		return NULL;
	}
	for (uint16_t i = 0; i < rel->ncols; i++)
		n->any_conv |= n->convs[i] != LS_PGMY_NONE;
	if (e != NULL) {
		struct mapent **pp = &m->ents;
		while (*pp != e)
			pp = &(*pp)->next;
		*pp = e->next;
		ent_free(e);
	}
	n->next = m->ents;
	m->ents = n;
	return n;
}

const struct ls_relation *ls_pgmy_map(struct ls_pgmy *m, const struct ls_relation *rel,
				      struct ls_err *err)
{
	if (rel == NULL || !ls_pgmy_is_mysql_relation(rel))
		return rel;
	struct mapent *e = entry(m, rel, err);
	return e ? e->pg : NULL;
}

/* "(a, b)=(1, x)" from a tuple's key columns. */
static void tuple_key(char *out, size_t size, const struct ls_relation *rel,
		      const struct ls_tuple *tup)
{
	const char *txt[64];
	size_t lens[64];
	struct ls_relation r = *rel;
	if (r.ncols > 64)
		r.ncols = 64;
	for (uint16_t i = 0; i < r.ncols; i++) {
		const struct ls_value *v = tup && i < tup->ncols ? &tup->vals[i] : NULL;
		txt[i] = v && v->kind == LS_VAL_TEXT ? v->data : NULL;
		lens[i] = txt[i] ? v->len : 0;
	}
	key_text(out, size, &r, txt, lens);
}

/* Converts tuple in (values of e's relation) into out, values in the
 * arena; keys is the tuple that identifies the row, for errors. */
static int conv_tuple(struct ls_pgmy *m, const struct mapent *e, const struct ls_tuple *in,
		      struct ls_tuple *out, const struct ls_tuple *keys, struct ls_err *err)
{
	*out = *in;
	if (in->ncols == 0 || in->vals == NULL)
		return 0;
	struct ls_value *v = ls_arena_alloc(&m->arena, in->ncols * sizeof *v);
	if (v == NULL)
		return ls_err_set(err, false, "out of memory");
	memcpy(v, in->vals, in->ncols * sizeof *v);
	out->vals = v;
	for (uint16_t i = 0; i < in->ncols && i < e->src->ncols; i++) {
		if (e->convs[i] == LS_PGMY_NONE || v[i].kind != LS_VAL_TEXT)
			continue;
		size_t n;
		if (ls_pgmy_value(e->convs[i], v[i].data, v[i].len, &m->buf, &m->cap, &n,
				  err) < 0) {
			char key[200];
			tuple_key(key, sizeof key, e->src, keys);
			return ls_err_prefix(err, "table %s.%s column %s key %s", e->src->schema,
					     e->src->name, e->src->cols[i].name, key);
		}
		char *d = ls_arena_memdup(&m->arena, m->buf, n);
		if (d == NULL)
			return ls_err_set(err, false, "out of memory");
		v[i].data = d;
		v[i].len = (uint32_t)n;
	}
	return 0;
}

int ls_pgmy_change(struct ls_pgmy *m, const struct ls_relation *src, const struct ls_change *ch,
		   const struct ls_change **out, struct ls_err *err)
{
	*out = ch;
	ls_arena_reset(&m->arena);
	if (src == NULL || (ch->op != LS_OP_INSERT && ch->op != LS_OP_UPDATE &&
			    ch->op != LS_OP_DELETE) || !ls_pgmy_is_mysql_relation(src))
		return 0;
	struct mapent *e = entry(m, src, err);
	if (e == NULL)
		return -1;
	if (!e->any_conv)
		return 0;
	m->ch = *ch;
	const struct ls_tuple *keys = ch->op == LS_OP_INSERT ? &ch->new_tup : &ch->old_tup;
	if ((ch->op != LS_OP_DELETE &&
	     conv_tuple(m, e, &ch->new_tup, &m->ch.new_tup, keys, err) < 0) ||
	    (ch->op != LS_OP_INSERT &&
	     conv_tuple(m, e, &ch->old_tup, &m->ch.old_tup, keys, err) < 0))
		return -1;
	*out = &m->ch;
	return 0;
}

/* ---- the snapshot side ---------------------------------------------------------------- */

struct ls_pgmy_copy {
	struct ls_relation *src;   /* owned: the table's MySQL definition */
	struct ls_relation *pg;    /* owned: its mapping; NULL: pass through */
	uint8_t *convs;            /* owned */
	bool any_conv;
	uint64_t line;             /* lines converted so far */
	char *part;                /* a line's beginning waiting for its end */
	size_t part_len, part_cap;
	char *out;                 /* converted lines */
	size_t out_len, out_cap;
	char *val;
	size_t val_cap;
	const char **fields;       /* per column: start in the line */
	size_t *flens;
};

struct ls_pgmy_copy *ls_pgmy_copy_new(void)
{
	return calloc(1, sizeof(struct ls_pgmy_copy));
}

static void copy_forget(struct ls_pgmy_copy *c)
{
	ls_relation_free(c->src);
	ls_relation_free(c->pg);
	free(c->convs);
	free(c->fields);
	free(c->flens);
	c->src = c->pg = NULL;
	c->convs = NULL;
	c->fields = NULL;
	c->flens = NULL;
	c->any_conv = false;
	c->line = 0;
	c->part_len = 0;
}

void ls_pgmy_copy_free(struct ls_pgmy_copy *c)
{
	if (c == NULL)
		return;
	copy_forget(c);
	free(c->part);
	free(c->out);
	free(c->val);
	free(c);
}

int ls_pgmy_copy_begin(struct ls_pgmy_copy *c, const struct ls_relation *rel,
		       const struct ls_relation **mapped, struct ls_err *err)
{
	copy_forget(c);
	*mapped = rel;
	if (!ls_pgmy_is_mysql_relation(rel))
		return 0;
	c->src = ls_relation_dup(rel);
	c->fields = calloc((size_t)rel->ncols + 1, sizeof *c->fields);
	c->flens = calloc((size_t)rel->ncols + 1, sizeof *c->flens);
	if (c->src == NULL || c->fields == NULL || c->flens == NULL) {
		copy_forget(c);
		return ls_err_set(err, false, "relation %s.%s: out of memory", rel->schema,
				  rel->name);
	}
	if ((c->pg = ls_pgmy_relation(rel, &c->convs, err)) == NULL) {
		copy_forget(c);
		return -1;
	}
	for (uint16_t i = 0; i < rel->ncols; i++)
		c->any_conv |= c->convs[i] != LS_PGMY_NONE;
	*mapped = c->pg;
	return 0;
}

/* Converts one line (without its newline) into c->out. */
static int copy_line(struct ls_pgmy_copy *c, const char *p, size_t n, struct ls_err *err)
{
	const struct ls_relation *r = c->src;
	c->line++;
	if (n == 2 && p[0] == '\\' && p[1] == '.')
		return put(&c->out, &c->out_cap, &c->out_len, "\\.\n", 3);
	uint16_t nf = 0;
	for (size_t i = 0, start = 0; i <= n; i++) {
		if (i < n && p[i] != '\t')
			continue;
		if (nf >= r->ncols)
			return ls_err_set(err, false, "table %s.%s: copy line %llu has more than "
					  "%u fields", r->schema, r->name,
					  (unsigned long long)c->line, r->ncols);
		c->fields[nf] = p + start;
		c->flens[nf++] = i - start;
		start = i + 1;
	}
	if (nf != r->ncols)
		return ls_err_set(err, false, "table %s.%s: copy line %llu has %u fields, the "
				  "table %u", r->schema, r->name, (unsigned long long)c->line,
				  nf, r->ncols);
	for (uint16_t i = 0; i < nf; i++) {
		const char *f = c->fields[i];
		size_t fl = c->flens[i], vl;
		bool null = fl == 2 && f[0] == '\\' && f[1] == 'N';
		if (i && put(&c->out, &c->out_cap, &c->out_len, "\t", 1) < 0)
			return ls_err_set(err, false, "out of memory");
		if (c->convs[i] == LS_PGMY_NONE || null) {
			if (put(&c->out, &c->out_cap, &c->out_len, f, fl) < 0)
				return ls_err_set(err, false, "out of memory");
			continue;
		}
		/* date and time texts hold no COPY escapes */
		if (ls_pgmy_value(c->convs[i], f, fl, &c->val, &c->val_cap, &vl, err) < 0) {
			const char *txt[64];
			size_t lens[64];
			struct ls_relation kr = *r;
			if (kr.ncols > 64)
				kr.ncols = 64;
			for (uint16_t k = 0; k < kr.ncols; k++) {
				bool kn = c->flens[k] == 2 && c->fields[k][0] == '\\' &&
					  c->fields[k][1] == 'N';
				txt[k] = kn ? NULL : c->fields[k];
				lens[k] = c->flens[k];
			}
			char key[200];
			key_text(key, sizeof key, &kr, txt, lens);
			return ls_err_prefix(err, "table %s.%s column %s key %s (copy line %llu)",
					     r->schema, r->name, r->cols[i].name, key,
					     (unsigned long long)c->line);
		}
		if (put(&c->out, &c->out_cap, &c->out_len, c->val, vl) < 0)
			return ls_err_set(err, false, "out of memory");
	}
	if (put(&c->out, &c->out_cap, &c->out_len, "\n", 1) < 0)
		return ls_err_set(err, false, "out of memory");
	return 0;
}

int ls_pgmy_copy_data(struct ls_pgmy_copy *c, const char *data, size_t len,
		      const char **out, size_t *outlen, struct ls_err *err)
{
	if (!c->any_conv) {
		*out = data;
		*outlen = len;
		return 0;
	}
	c->out_len = 0;
	size_t i = 0;
	while (i < len) {
		const char *nl = memchr(data + i, '\n', len - i);
		if (nl == NULL) {
			if (put(&c->part, &c->part_cap, &c->part_len, data + i, len - i) < 0)
				return ls_err_set(err, false, "out of memory");
			break;
		}
		size_t n = (size_t)(nl - (data + i));
		int rc;
		if (c->part_len) {
			if (put(&c->part, &c->part_cap, &c->part_len, data + i, n) < 0)
				return ls_err_set(err, false, "out of memory");
			rc = copy_line(c, c->part, c->part_len, err);
			c->part_len = 0;
		} else {
			rc = copy_line(c, data + i, n, err);
		}
		if (rc < 0)
			return -1;
		i += n + 1;
	}
	*out = c->out ? c->out : "";
	*outlen = c->out_len;
	return 0;
}

int ls_pgmy_copy_end(struct ls_pgmy_copy *c, const char **out, size_t *outlen,
		     struct ls_err *err)
{
	*out = "";
	*outlen = 0;
	if (!c->any_conv || c->part_len == 0)
		return 0;
	c->out_len = 0;
	int rc = copy_line(c, c->part, c->part_len, err);
	c->part_len = 0;
	if (rc < 0)
		return -1;
	*out = c->out;
	*outlen = c->out_len;
	return 0;
}
