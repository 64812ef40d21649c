/* my_netrows — the net effect of a group's row changes on tables keyed by
 * their primary key alone, so a group of thousands of small transactions
 * reaches a MySQL target as a few multi-row statements per table instead
 * of one statement per change.
 *
 * Within one target transaction (a group) only the last state of each row
 * is visible to anyone, and changes to different keys of a table whose only
 * unique index is the key commute (foreign keys are not checked while
 * applying).  So per (table, key) it suffices to know the final state:
 * deleted, or the full row; and whether the row existed before the group
 * ("fresh": the key's first change in the group was an INSERT, or the new
 * key of a key-changing UPDATE), which decides between a plain INSERT
 * (a duplicate stays an error) and an upsert.
 *
 * Two layers: changes of the current source transaction stay apart until
 * ls_mynet_end_txn() folds them into the group, so ls_mynet_drop_txn() can
 * forget exactly that transaction.  Keys are compared as the caller's
 * canonical bytes (the SQL literal text of the key columns); rows are the
 * caller's opaque bytes (the rendered value list).  Memory: what is put,
 * bounded by the caller flushing at a count or byte limit.
 *
 * Not thread-safe; one owner. */
#ifndef LS_MY_NETROWS_H
#define LS_MY_NETROWS_H

#include <stdbool.h>
#include <stddef.h>

enum ls_mynet_state {
	LS_MYNET_NONE = 0,
	LS_MYNET_DEL,          /* the row is gone at the end */
	LS_MYNET_ROW,          /* the row has this content at the end */
};

/* One key's net change, as ls_mynet_each() hands it out. */
struct ls_mynet_row {
	const void *rel;       /* the caller's table handle */
	const char *key;       /* key bytes (NUL-terminated too) */
	size_t klen;
	const char *row;       /* LS_MYNET_ROW: row bytes (NUL-terminated too) */
	size_t rlen;
	enum ls_mynet_state state;
	bool fresh;            /* the row did not exist before the group */
};

struct ls_mynet;

struct ls_mynet *ls_mynet_new(void);
void ls_mynet_free(struct ls_mynet *n);   /* NULL is a no-op */

/* Records that the current transaction leaves key of rel in state (row for
 * LS_MYNET_ROW).  inserted: this change creates the row (INSERT, or the new
 * key of a key-changing UPDATE); used only when the key is new to the
 * group.  -1 on out of memory (n unchanged). */
int ls_mynet_put(struct ls_mynet *n, const void *rel, const char *key, size_t klen,
		 enum ls_mynet_state state, const char *row, size_t rlen, bool inserted);

/* Folds the current transaction's changes into the group. */
void ls_mynet_end_txn(struct ls_mynet *n);
/* Forgets the current transaction's changes. */
void ls_mynet_drop_txn(struct ls_mynet *n);

/* Keys held (both layers) and bytes of keys and rows held. */
size_t ls_mynet_count(const struct ls_mynet *n);
size_t ls_mynet_bytes(const struct ls_mynet *n);

/* Calls fn for every key with a net change, the current transaction's
 * state over the group's, grouped by rel (in the order each rel was first
 * put) and within a rel in the order keys were first put.  Stops at the
 * first nonzero return and returns it.  Changes nothing. */
int ls_mynet_each(const struct ls_mynet *n, int (*fn)(const struct ls_mynet_row *r, void *ctx),
		  void *ctx);

/* Forgets everything (after a flush, or when the group rolled back). */
void ls_mynet_clear(struct ls_mynet *n);

#endif
