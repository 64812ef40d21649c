#include "connectors/postgres/pg_sql.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- quoting -------------------------------------------------------------- */

void ls_pgsql_ident(struct ls_pgsql_buf *b, const char *name)
{
	ls_sbuf_putc(b, '"');
	for (const char *p = name; *p; p++) {
		if (*p == '"')
			ls_sbuf_putc(b, '"');
		ls_sbuf_putc(b, *p);
	}
	ls_sbuf_putc(b, '"');
}

void ls_pgsql_qualified(struct ls_pgsql_buf *b, const char *schema, const char *name)
{
	ls_pgsql_ident(b, schema);
	ls_sbuf_putc(b, '.');
	ls_pgsql_ident(b, name);
}

void ls_pgsql_literal(struct ls_pgsql_buf *b, const char *s, size_t n)
{
	bool backslash = memchr(s, '\\', n) != NULL;
	if (backslash)
		ls_sbuf_putc(b, 'E');
	ls_sbuf_putc(b, '\'');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\'' || (backslash && s[i] == '\\'))
			ls_sbuf_putc(b, s[i]);
		ls_sbuf_putc(b, s[i]);
	}
	ls_sbuf_putc(b, '\'');
}

void ls_pgsql_copy_escape(struct ls_pgsql_buf *b, const char *s, size_t n)
{
	size_t run = 0;   /* bytes of s[run_start..i) needing no escape */
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		const char *esc = NULL;
		switch (s[i]) {
		case '\\': esc = "\\\\"; break;
		case '\t': esc = "\\t"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		default: run++; continue;
		}
		ls_pgsql_putn(b, s + start, run);
		ls_pgsql_putn(b, esc, 2);
		start = i + 1;
		run = 0;
	}
	ls_pgsql_putn(b, s + start, run);
}

void ls_pgsql_array_elem(struct ls_pgsql_buf *b, const char *s, size_t n)
{
	ls_sbuf_putc(b, '"');
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '"' && s[i] != '\\')
			continue;
		ls_pgsql_putn(b, s + start, i - start);
		ls_sbuf_putc(b, '\\');
		start = i;   /* the quote or backslash itself follows its escape */
	}
	ls_pgsql_putn(b, s + start, n - start);
	ls_sbuf_putc(b, '"');
}

void ls_pgsql_bytea_hex(struct ls_pgsql_buf *b, const void *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char *o = ls_sbuf_room(b, 2 + 2 * n);
	if (o == NULL)
		return;
	*o++ = '\\';
	*o++ = 'x';
	const unsigned char *u = p;
	for (size_t i = 0; i < n; i++) {
		*o++ = hex[u[i] >> 4];
		*o++ = hex[u[i] & 15];
	}
	b->len += 2 + 2 * n;
	b->data[b->len] = '\0';
}

/* ---- type names ----------------------------------------------------------- */

bool ls_pgsql_type_safe(const char *t)
{
	int depth = 0;
	if (t == NULL || *t == '\0')
		return false;
	for (const char *p = t; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"') {
			/* a quoted identifier: anything but NUL, "" is an escaped quote */
			for (p++;; p++) {
				if (*p == '\0')
					return false;
				if (*p == '"') {
					if (p[1] != '"')
						break;
					p++;
				}
			}
			continue;
		}
		if (c == '(')
			depth++;
		else if (c == ')') {
			if (--depth < 0)
				return false;
		} else if (!(isalnum(c) || c >= 0x80 || strchr("_$ ,.[]", c)))
			return false;
	}
	return depth == 0;
}

static const struct { const char *alias, *canon; } type_aliases[] = {
	{ "int2", "smallint" }, { "int4", "integer" }, { "int", "integer" },
	{ "int8", "bigint" }, { "float4", "real" }, { "float8", "double precision" },
	{ "bool", "boolean" }, { "varchar", "character varying" },
	{ "char", "character" }, { "bpchar", "character" }, { "decimal", "numeric" },
	{ "timestamptz", "timestamp with time zone" },
	{ "timetz", "time with time zone" },
	{ "timestamp", "timestamp without time zone" },
	{ "time", "time without time zone" },
};

/* Lower-cases outside quotes and collapses blanks into one space. */
static void squeeze(const char *in, char *out, size_t size)
{
	size_t o = 0;
	bool quoted = false, space = false;
	for (const char *p = in; *p && o + 1 < size; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"')
			quoted = !quoted;
		if (!quoted && isspace(c)) {
			space = o > 0;
			continue;
		}
		if (space && o + 2 < size && !strchr("([)],", c) && !strchr("([,", out[o - 1]))
			out[o++] = ' ';
		space = false;
		out[o++] = quoted ? (char)c : (char)tolower(c);
	}
	out[o] = '\0';
}

void ls_pgsql_type_norm(const char *type_name, char *out, size_t size)
{
	char s[256];
	squeeze(type_name, s, sizeof s);
	const char *p = s;
	if (strncmp(p, "pg_catalog.", 11) == 0)
		p += 11;
	/* split: base word(s) | "(args)" | rest (" with time zone", "[]") */
	size_t baselen = strcspn(p, "([");
	const char *args = p + baselen, *rest = args;
	if (*args == '(')
		rest = strchr(args, ')') ? strchr(args, ')') + 1 : args + strlen(args);
	char base[128];
	snprintf(base, sizeof base, "%.*s", (int)baselen, p);
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == ' ')
		base[--bl] = '\0';
	const char *canon = base;
	for (size_t i = 0; i < sizeof type_aliases / sizeof type_aliases[0]; i++)
		if (strcmp(base, type_aliases[i].alias) == 0)
			canon = type_aliases[i].canon;
	/* a time zone phrase after "(p)" in the input belongs after the args */
	const char *tz = strstr(canon, " with");
	size_t canon_head = tz ? (size_t)(tz - canon) : strlen(canon);
	if (tz && *rest == ' ' && strncmp(rest, " with", 5) == 0)
		tz = NULL;   /* input already spelled it out after the args */
	snprintf(out, size, "%.*s%.*s%s%s", (int)canon_head, canon,
		 (int)(rest - args), args, tz ? tz : "", rest);
}

/* Splits "name(a,b)" into name and up to two integer args; returns count. */
static int type_args(const char *t, char *name, size_t size, long *a, long *b)
{
	const char *open = strchr(t, '(');
	size_t n = open ? (size_t)(open - t) : strlen(t);
	snprintf(name, size, "%.*s%s", (int)n, t,
		 open && strchr(open, ')') ? strchr(open, ')') + 1 : "");
	if (!open)
		return 0;
	return sscanf(open, "(%ld,%ld)", a, b) == 2 ? 2 : sscanf(open, "(%ld)", a);
}

static bool in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

bool ls_pgsql_type_compatible(const char *want, const char *have)
{
	char w[256], h[256], wn[256], hn[256];
	ls_pgsql_type_norm(want, w, sizeof w);
	ls_pgsql_type_norm(have, h, sizeof h);
	if (strcmp(w, h) == 0)
		return true;
	long wa = 0, wb = 0, ha = 0, hb = 0;
	int wc = type_args(w, wn, sizeof wn, &wa, &wb);
	int hc = type_args(h, hn, sizeof hn, &ha, &hb);
	static const char *const wider_than_int2[] = { "integer", "bigint", "numeric", NULL };
	static const char *const wider_than_int4[] = { "bigint", "numeric", NULL };
	static const char *const any_text[] = { "text", "character varying", NULL };
	if (strcmp(w, "smallint") == 0)
		return in_list(h, wider_than_int2);
	if (strcmp(w, "integer") == 0)
		return in_list(h, wider_than_int4);
	if (strcmp(w, "bigint") == 0 || strcmp(w, "real") == 0)
		return strcmp(h, strcmp(w, "real") == 0 ? "double precision" : "numeric") == 0;
	if (strcmp(wn, "character varying") == 0 || strcmp(w, "text") == 0 ||
	    strcmp(wn, "character") == 0) {
		if (in_list(h, any_text))
			return true;
		/* varchar(n) into char(m >= n) too: a MySQL CHAR comes back as
		 * varchar, its trailing spaces gone as char(m) ignores them */
		return strcmp(wn, "character varying") == 0 && wc == 1 && hc == 1 && ha >= wa &&
		       (strcmp(hn, wn) == 0 || strcmp(hn, "character") == 0);
	}
	if (strcmp(wn, "numeric") == 0 && strcmp(hn, "numeric") == 0)
		return hc == 0 || (wc == 2 && hc == 2 && hb == wb && ha - hb >= wa - wb);
	/* fractional seconds: no precision is 6, and more digits hold fewer */
	if (strcmp(wn, hn) == 0 && (strncmp(wn, "timestamp", 9) == 0 || strncmp(wn, "time ", 5) == 0))
		return (hc ? ha : 6) >= (wc ? wa : 6);
	return false;
}

/* ---- DDL -------------------------------------------------------------------- */

static int find_col(const struct ls_relation *r, const char *name)
{
	for (int i = 0; i < r->ncols; i++)
		if (strcmp(r->cols[i].name, name) == 0)
			return i;
	return -1;
}

static bool same_type(const char *a, const char *b)
{
	char x[256], y[256];
	ls_pgsql_type_norm(a, x, sizeof x);
	ls_pgsql_type_norm(b, y, sizeof y);
	return strcmp(x, y) == 0;
}

/* True when the key column name sets of a and b are equal. */
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

int ls_pgsql_ddl_diff(const struct ls_relation *old, const struct ls_relation *new,
		      struct ls_pgsql_ddl_step *steps, struct ls_err *err)
{
	bool full = old->replident == LS_REPLIDENT_FULL || new->replident == LS_REPLIDENT_FULL;
	if (!full && ls_relation_nkeys(new) > 0 && !same_keys(old, new))
		return ls_err_set(err, false, "table %s.%s: key columns changed; "
				  "change the target's primary key by hand", new->schema, new->name);
	int n = 0;
	for (int i = 0; i < old->ncols; i++)
		if (is_rename(old, new, i))
			steps[n++] = (struct ls_pgsql_ddl_step){ LS_PGSQL_RENAME_COLUMN, i, i };
	for (int i = 0; i < old->ncols; i++)
		if (find_col(new, old->cols[i].name) < 0 && !is_rename(old, new, i))
			steps[n++] = (struct ls_pgsql_ddl_step){ LS_PGSQL_DROP_COLUMN, i, -1 };
	for (int j = 0; j < new->ncols; j++) {
		int i = find_col(old, new->cols[j].name);
		if (i >= 0 && !same_type(old->cols[i].type_name, new->cols[j].type_name))
			steps[n++] = (struct ls_pgsql_ddl_step){ LS_PGSQL_ALTER_TYPE, i, j };
	}
	for (int j = 0; j < new->ncols; j++)
		if (find_col(old, new->cols[j].name) < 0 && !(j < old->ncols && is_rename(old, new, j)))
			steps[n++] = (struct ls_pgsql_ddl_step){ LS_PGSQL_ADD_COLUMN, -1, j };
	return n;
}

int ls_pgsql_ddl_sql(struct ls_pgsql_buf *b, const struct ls_relation *old,
		     const struct ls_relation *new, const struct ls_pgsql_ddl_step *s,
		     struct ls_err *err)
{
	const struct ls_column *nc = s->new_col >= 0 ? &new->cols[s->new_col] : NULL;
	const struct ls_column *oc = s->old_col >= 0 ? &old->cols[s->old_col] : NULL;
	if (nc && !ls_pgsql_type_safe(nc->type_name))
		return ls_err_set(err, false, "table %s.%s column %s: unusable type name \"%s\"",
				  new->schema, new->name, nc->name, nc->type_name);
	ls_pgsql_put(b, "ALTER TABLE ");
	ls_pgsql_qualified(b, new->schema, new->name);
	switch (s->kind) {
	case LS_PGSQL_ADD_COLUMN:
		ls_pgsql_put(b, " ADD COLUMN IF NOT EXISTS ");
		ls_pgsql_ident(b, nc->name);
		ls_pgsql_printf(b, " %s", nc->type_name);
		break;
	case LS_PGSQL_DROP_COLUMN:
		ls_pgsql_put(b, " DROP COLUMN IF EXISTS ");
		ls_pgsql_ident(b, oc->name);
		break;
	case LS_PGSQL_ALTER_TYPE:
		ls_pgsql_put(b, " ALTER COLUMN ");
		ls_pgsql_ident(b, nc->name);
		ls_pgsql_printf(b, " TYPE %s USING ", nc->type_name);
		ls_pgsql_ident(b, nc->name);
		ls_pgsql_printf(b, "::%s", nc->type_name);
		break;
	case LS_PGSQL_RENAME_COLUMN:
		ls_pgsql_put(b, " RENAME COLUMN ");
		ls_pgsql_ident(b, oc->name);
		ls_pgsql_put(b, " TO ");
		ls_pgsql_ident(b, nc->name);
		break;
	}
	return 0;
}

void ls_pgsql_ddl_describe(struct ls_pgsql_buf *b, const struct ls_relation *old,
			   const struct ls_relation *new, const struct ls_pgsql_ddl_step *s)
{
	const struct ls_column *nc = s->new_col >= 0 ? &new->cols[s->new_col] : NULL;
	const struct ls_column *oc = s->old_col >= 0 ? &old->cols[s->old_col] : NULL;
	switch (s->kind) {
	case LS_PGSQL_ADD_COLUMN:
		ls_pgsql_printf(b, "column %s added (%s)", nc->name, nc->type_name);
		break;
	case LS_PGSQL_DROP_COLUMN:
		ls_pgsql_printf(b, "column %s dropped", oc->name);
		break;
	case LS_PGSQL_ALTER_TYPE:
		ls_pgsql_printf(b, "column %s type %s -> %s", nc->name, oc->type_name,
				nc->type_name);
		break;
	case LS_PGSQL_RENAME_COLUMN:
		ls_pgsql_printf(b, "column %s renamed to %s", oc->name, nc->name);
		break;
	}
}

int ls_pgsql_create_table(struct ls_pgsql_buf *b, const struct ls_relation *rel,
			  struct ls_err *err)
{
	ls_pgsql_put(b, "CREATE TABLE IF NOT EXISTS ");
	ls_pgsql_qualified(b, rel->schema, rel->name);
	ls_pgsql_put(b, " (");
	for (int i = 0; i < rel->ncols; i++) {
		const struct ls_column *c = &rel->cols[i];
		if (!ls_pgsql_type_safe(c->type_name))
			return ls_err_set(err, false, "table %s.%s column %s: unusable type name \"%s\"",
					  rel->schema, rel->name, c->name,
					  c->type_name ? c->type_name : "");
		if (i)
			ls_pgsql_put(b, ", ");
		ls_pgsql_ident(b, c->name);
		ls_pgsql_printf(b, " %s", c->type_name);
	}
	if (rel->replident != LS_REPLIDENT_FULL && ls_relation_nkeys(rel) > 0) {
		ls_pgsql_put(b, ", PRIMARY KEY (");
		bool first = true;
		for (int i = 0; i < rel->ncols; i++) {
			if (!(rel->cols[i].flags & LS_COL_KEY))
				continue;
			if (!first)
				ls_pgsql_put(b, ", ");
			ls_pgsql_ident(b, rel->cols[i].name);
			first = false;
		}
		ls_pgsql_put(b, ")");
	}
	ls_pgsql_put(b, ")");
	return 0;
}
