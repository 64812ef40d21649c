#include "change.h"

#include <stdlib.h>
#include <string.h>

/* Arena blocks grow geometrically from 64 KiB; a request larger than the
 * current block gets a block of its own size, so huge values cost one
 * allocation and the arena never copies. */
struct ls_arena_block {
	struct ls_arena_block *next;
	size_t size;
	size_t off;
	max_align_t data[];
};

#define ARENA_MIN_BLOCK (64 * 1024)

void ls_arena_init(struct ls_arena *a)
{
	a->head = NULL;
	a->used = 0;
}

void *ls_arena_alloc(struct ls_arena *a, size_t n)
{
	n = (n + 7) & ~(size_t)7;
	struct ls_arena_block *b = a->head;
	if (b == NULL || b->size - b->off < n) {
		size_t size = b ? b->size * 2 : ARENA_MIN_BLOCK;
		if (size > 16 * ARENA_MIN_BLOCK)
			size = 16 * ARENA_MIN_BLOCK;
		if (size < n)
			size = n;
		b = malloc(sizeof *b + size);
		if (b == NULL)
			return NULL;
		b->next = a->head;
		b->size = size;
		b->off = 0;
		a->head = b;
	}
	void *p = (char *)b->data + b->off;
	b->off += n;
	a->used += n;
	return p;
}

char *ls_arena_memdup(struct ls_arena *a, const void *p, size_t n)
{
	char *d = ls_arena_alloc(a, n + 1);
	if (d == NULL)
		return NULL;
	if (n)
		memcpy(d, p, n);
	d[n] = '\0';
	return d;
}

void ls_arena_reset(struct ls_arena *a)
{
	struct ls_arena_block *keep = a->head;
	if (keep == NULL)
		return;
	struct ls_arena_block *b = keep->next;
	while (b) {
		struct ls_arena_block *next = b->next;
		free(b);
		b = next;
	}
	keep->next = NULL;
	keep->off = 0;
	a->used = 0;
}

void ls_arena_free(struct ls_arena *a)
{
	ls_arena_reset(a);
	free(a->head);
	a->head = NULL;
}

struct ls_relation *ls_relation_new(uint16_t ncols)
{
	struct ls_relation *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->replident = LS_REPLIDENT_DEFAULT;
	r->ncols = ncols;
	if (ncols) {
		r->cols = calloc(ncols, sizeof *r->cols);
		if (r->cols == NULL) {
			free(r);
			return NULL;
		}
	}
	return r;
}

void ls_relation_free(struct ls_relation *r)
{
	if (r == NULL)
		return;
	for (uint16_t i = 0; i < r->ncols; i++) {
		free(r->cols[i].name);
		free(r->cols[i].type_name);
		free(r->cols[i].fill);
	}
	free(r->cols);
	free(r->schema);
	free(r->name);
	free(r);
}

static int dup_str(char **dst, const char *src)
{
	*dst = NULL;
	if (src == NULL)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -1;
}

struct ls_relation *ls_relation_dup(const struct ls_relation *r)
{
	struct ls_relation *d = ls_relation_new(r->ncols);
	if (d == NULL)
		return NULL;
	d->id = r->id;
	d->replident = r->replident;
	int rc = dup_str(&d->schema, r->schema) | dup_str(&d->name, r->name);
	for (uint16_t i = 0; i < r->ncols; i++) {
		d->cols[i] = r->cols[i];
		d->cols[i].name = NULL;
		d->cols[i].type_name = NULL;
		d->cols[i].fill = NULL;
		rc |= dup_str(&d->cols[i].name, r->cols[i].name);
		rc |= dup_str(&d->cols[i].type_name, r->cols[i].type_name);
		rc |= dup_str(&d->cols[i].fill, r->cols[i].fill);
	}
	if (rc) {
		ls_relation_free(d);
		return NULL;
	}
	return d;
}

unsigned ls_relation_nkeys(const struct ls_relation *r)
{
	unsigned n = 0;
	for (uint16_t i = 0; i < r->ncols; i++)
		n += (r->cols[i].flags & LS_COL_KEY) != 0;
	return n;
}

static bool str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

bool ls_relation_equal(const struct ls_relation *a, const struct ls_relation *b)
{
	if (a->id != b->id || a->replident != b->replident || a->ncols != b->ncols ||
	    !str_eq(a->schema, b->schema) || !str_eq(a->name, b->name))
		return false;
	for (uint16_t i = 0; i < a->ncols; i++) {
		const struct ls_column *x = &a->cols[i], *y = &b->cols[i];
		if (x->type_oid != y->type_oid || x->typmod != y->typmod ||
		    x->flags != y->flags || !str_eq(x->name, y->name) ||
		    !str_eq(x->type_name, y->type_name) || !str_eq(x->fill, y->fill))
			return false;
	}
	return true;
}
