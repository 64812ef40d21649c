#include "my_netrows.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* One layer's state of a key. */
struct layer {
	uint8_t state;             /* enum ls_mynet_state */
	bool fresh;
	char *row;                 /* owned */
	size_t rlen;
};

struct ent {
	const void *rel;
	char *key;                 /* owned */
	size_t klen;
	uint64_t hash;
	int rel_idx;               /* into rels, first-put order */
	bool in_txn;               /* listed in txn */
	struct layer g, t;         /* the group's, the current transaction's */
};

struct ls_mynet {
	struct ent *e;
	size_t n, cap;
	uint32_t *slot;            /* open addressing: entry index + 1, 0 empty */
	size_t nslot;              /* power of two, at least 2 * cap */
	size_t *txn;               /* entries the current transaction touched */
	size_t ntxn, captxn;
	const void **rels;
	int nrels, caprels;
	size_t bytes;
};

struct ls_mynet *ls_mynet_new(void)
{
	return calloc(1, sizeof(struct ls_mynet));
}

static void layer_free(struct ls_mynet *n, struct layer *l)
{
	if (l->row)
		n->bytes -= l->rlen;
	free(l->row);
	*l = (struct layer){ 0 };
}

void ls_mynet_clear(struct ls_mynet *n)
{
	for (size_t i = 0; i < n->n; i++) {
		free(n->e[i].key);
		free(n->e[i].g.row);
		free(n->e[i].t.row);
	}
	n->n = n->ntxn = 0;
	n->nrels = 0;
	n->bytes = 0;
	if (n->slot)
		memset(n->slot, 0, n->nslot * sizeof *n->slot);
}

void ls_mynet_free(struct ls_mynet *n)
{
	if (n == NULL)
		return;
	ls_mynet_clear(n);
	free(n->e);
	free(n->slot);
	free(n->txn);
	free(n->rels);
	free(n);
}

static uint64_t key_hash(const void *rel, const char *key, size_t klen)
{
	return XXH3_64bits_withSeed(key, klen, (uint64_t)(uintptr_t)rel);
}

/* Index of rel's key in n->e, or SIZE_MAX; *at gets the slot it is in or
 * would go into. */
static size_t find(const struct ls_mynet *n, const void *rel, const char *key, size_t klen,
		   uint64_t h, size_t *at)
{
	size_t mask = n->nslot - 1;
	for (size_t s = (size_t)h & mask;; s = (s + 1) & mask) {
		uint32_t v = n->slot[s];
		if (v == 0) {
			*at = s;
			return SIZE_MAX;
		}
		const struct ent *e = &n->e[v - 1];
		if (e->hash == h && e->rel == rel && e->klen == klen &&
		    memcmp(e->key, key, klen) == 0) {
			*at = s;
			return v - 1;
		}
	}
}

/* Room for one more entry (and its slot at load <= 1/2). */
static int grow(struct ls_mynet *n)
{
	if (n->n < n->cap)
		return 0;
	size_t cap = n->cap ? 2 * n->cap : 256;
	struct ent *e = realloc(n->e, cap * sizeof *e);
	if (e == NULL)
		return -1;
	n->e = e;
	uint32_t *slot = calloc(2 * cap, sizeof *slot);
	if (slot == NULL)
		return -1;   /* n->e grew, which is harmless */
	free(n->slot);
	n->slot = slot;
	n->nslot = 2 * cap;
	n->cap = cap;
	for (size_t i = 0; i < n->n; i++) {
		size_t at;
		(void)find(n, n->e[i].rel, n->e[i].key, n->e[i].klen, n->e[i].hash, &at);
		n->slot[at] = (uint32_t)(i + 1);
	}
	return 0;
}

static int rel_index(struct ls_mynet *n, const void *rel)
{
	for (int i = n->nrels - 1; i >= 0; i--)
		if (n->rels[i] == rel)
			return i;
	if (n->nrels == n->caprels) {
		int cap = n->caprels ? 2 * n->caprels : 8;
		const void **r = realloc(n->rels, (size_t)cap * sizeof *r);
		if (r == NULL)
			return -1;
		n->rels = r;
		n->caprels = cap;
	}
	n->rels[n->nrels] = rel;
	return n->nrels++;
}

static char *dup_bytes(const char *p, size_t len)
{
	char *d = malloc(len + 1);
	if (d) {
		memcpy(d, p, len);
		d[len] = '\0';
	}
	return d;
}

/* The entry for rel's key, created (both layers empty) when new; NULL on
 * out of memory. */
static struct ent *entry(struct ls_mynet *n, const void *rel, const char *key, size_t klen)
{
	if (grow(n) < 0)
		return NULL;
	uint64_t h = key_hash(rel, key, klen);
	size_t at, i = find(n, rel, key, klen, h, &at);
	if (i != SIZE_MAX)
		return &n->e[i];
	int ri = rel_index(n, rel);
	char *k = dup_bytes(key, klen);
	if (ri < 0 || k == NULL) {
		free(k);
		return NULL;
	}
	n->e[n->n] = (struct ent){ .rel = rel, .key = k, .klen = klen, .hash = h, .rel_idx = ri };
	n->slot[at] = (uint32_t)(n->n + 1);
	n->bytes += klen;
	return &n->e[n->n++];
}

int ls_mynet_put(struct ls_mynet *n, const void *rel, const char *key, size_t klen,
		 enum ls_mynet_state state, const char *row, size_t rlen, bool inserted)
{
	if (n->ntxn == n->captxn) {
		size_t cap = n->captxn ? 2 * n->captxn : 64;
		size_t *t = realloc(n->txn, cap * sizeof *t);
		if (t == NULL)
			return -1;
		n->txn = t;
		n->captxn = cap;
	}
	char *r = NULL;
	if (state == LS_MYNET_ROW && (r = dup_bytes(row, rlen)) == NULL)
		return -1;
	struct ent *e = entry(n, rel, key, klen);
	if (e == NULL) {
		free(r);
		return -1;
	}
	const struct layer *prev = e->t.state ? &e->t : e->g.state ? &e->g : NULL;
	bool fresh = prev ? prev->fresh : inserted;
	layer_free(n, &e->t);
	e->t = (struct layer){ .state = (uint8_t)state, .fresh = fresh, .row = r,
			       .rlen = r ? rlen : 0 };
	n->bytes += e->t.rlen;
	if (!e->in_txn) {
		e->in_txn = true;
		n->txn[n->ntxn++] = (size_t)(e - n->e);
	}
	return 0;
}

void ls_mynet_end_txn(struct ls_mynet *n)
{
	for (size_t i = 0; i < n->ntxn; i++) {
		struct ent *e = &n->e[n->txn[i]];
		e->in_txn = false;
		if (e->t.state == LS_MYNET_NONE)
			continue;
		layer_free(n, &e->g);
		e->g = e->t;
		e->t = (struct layer){ 0 };
	}
	n->ntxn = 0;
}

void ls_mynet_drop_txn(struct ls_mynet *n)
{
	for (size_t i = 0; i < n->ntxn; i++) {
		struct ent *e = &n->e[n->txn[i]];
		e->in_txn = false;
		layer_free(n, &e->t);
	}
	n->ntxn = 0;
}

size_t ls_mynet_count(const struct ls_mynet *n)
{
	return n->n;
}

size_t ls_mynet_bytes(const struct ls_mynet *n)
{
	return n->bytes;
}

int ls_mynet_each(const struct ls_mynet *n, int (*fn)(const struct ls_mynet_row *r, void *ctx),
		  void *ctx)
{
	for (int ri = 0; ri < n->nrels; ri++) {
		for (size_t i = 0; i < n->n; i++) {
			const struct ent *e = &n->e[i];
			if (e->rel_idx != ri)
				continue;
			const struct layer *l = e->t.state ? &e->t : &e->g;
			/* nothing to do: no change, or a row born and gone in the group */
			if (l->state == LS_MYNET_NONE || (l->state == LS_MYNET_DEL && l->fresh))
				continue;
			struct ls_mynet_row r = {
				.rel = e->rel, .key = e->key, .klen = e->klen, .row = l->row,
				.rlen = l->rlen, .state = (enum ls_mynet_state)l->state,
				.fresh = l->fresh,
			};
			int rc = fn(&r, ctx);
			if (rc)
				return rc;
		}
	}
	return 0;
}
