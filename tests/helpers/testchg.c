/* testchg — see testchg.h. */
#include "tests/helpers/testchg.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

struct ls_relation *ls_testchg_rel(uint32_t id, const char *schema, const char *name,
				   char replident, const char *spec)
{
	int n = 1;
	for (const char *p = spec; *p; p++)
		n += *p == '|';
	struct ls_relation *r = ls_relation_new((uint16_t)n);
	ck_assert_ptr_nonnull(r);
	r->id = id;
	r->schema = strdup(schema);
	r->name = strdup(name);
	r->replident = (uint8_t)replident;
	char *copy = strdup(spec), *save = NULL;
	int i = 0;
	for (char *c = strtok_r(copy, "|", &save); c; c = strtok_r(NULL, "|", &save), i++) {
		char *type = strchr(c, ':');
		ck_assert_msg(type != NULL, "column without a type in \"%s\"", spec);
		*type++ = '\0';
		char *k = strrchr(type, ':');
		if (k && strcmp(k, ":k") == 0)
			*k = '\0';
		else
			k = NULL;
		r->cols[i].name = strdup(c);
		r->cols[i].type_name = strdup(type);
		r->cols[i].typmod = -1;
		r->cols[i].flags = (k || replident == 'f') ? LS_COL_KEY : 0;
	}
	free(copy);
	return r;
}

static struct ls_tuple tuple_v(struct ls_arena *a, int n, va_list ap)
{
	struct ls_value *v = ls_arena_alloc(a, sizeof *v * (size_t)n);
	ck_assert_ptr_nonnull(v);
	for (int i = 0; i < n; i++) {
		const char *s = va_arg(ap, const char *);
		if (s == NULL)
			v[i] = (struct ls_value){ .kind = LS_VAL_NULL };
		else if (s == LS_TESTCHG_UNCH)
			v[i] = (struct ls_value){ .kind = LS_VAL_UNCHANGED };
		else
			v[i] = (struct ls_value){ .kind = LS_VAL_TEXT, .len = (uint32_t)strlen(s),
						  .data = ls_arena_memdup(a, s, strlen(s)) };
	}
	return (struct ls_tuple){ .ncols = (uint16_t)n, .vals = v };
}

struct ls_change ls_testchg_ins(struct ls_arena *a, const struct ls_relation *r, ...)
{
	va_list ap;
	va_start(ap, r);
	struct ls_change c = { .op = LS_OP_INSERT, .relid = r->id,
			       .new_tup = tuple_v(a, r->ncols, ap) };
	va_end(ap);
	return c;
}

struct ls_change ls_testchg_upd(struct ls_arena *a, const struct ls_relation *r, char old_kind,
				...)
{
	va_list ap;
	va_start(ap, old_kind);
	struct ls_change c = { .op = LS_OP_UPDATE, .relid = r->id, .old_kind = (uint8_t)old_kind };
	if (old_kind)
		c.old_tup = tuple_v(a, r->ncols, ap);
	c.new_tup = tuple_v(a, r->ncols, ap);
	va_end(ap);
	return c;
}

struct ls_change ls_testchg_del(struct ls_arena *a, const struct ls_relation *r, char old_kind,
				...)
{
	va_list ap;
	va_start(ap, old_kind);
	struct ls_change c = { .op = LS_OP_DELETE, .relid = r->id, .old_kind = (uint8_t)old_kind,
			       .old_tup = tuple_v(a, r->ncols, ap) };
	va_end(ap);
	return c;
}

void ls_testchg_on_commit(void *ctx, int64_t off, const struct ls_pos *pos)
{
	struct ls_testchg_commits *c = ctx;
	c->calls++;
	c->offset = off;
	c->seq = pos->seq;
}
