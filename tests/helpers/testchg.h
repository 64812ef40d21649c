/* testchg — builds the relations and changes the target tests feed to a
 * target, and records its commit callbacks. */
#ifndef LS_TESTCHG_H
#define LS_TESTCHG_H

#include <stdarg.h>
#include <stdint.h>

#include "change.h"

/* A value argument meaning "unchanged" (an unchanged TOAST value). */
#define LS_TESTCHG_UNCH ((const char *)1)

/* A relation schema.name from spec "name:type[:k]|..." (:k marks a key
 * column; with replident 'f' every column is a key).  Owned by the caller
 * (ls_relation_free). */
struct ls_relation *ls_testchg_rel(uint32_t id, const char *schema, const char *name,
				   char replident, const char *spec);

/* Changes of relation r; the values are r->ncols const char * arguments
 * (NULL = SQL NULL, LS_TESTCHG_UNCH = unchanged), copied into arena a, so
 * the change is valid until a is reset.  upd takes old values first when
 * old_kind is set, then the new ones; del takes the old values. */
struct ls_change ls_testchg_ins(struct ls_arena *a, const struct ls_relation *r, ...);
struct ls_change ls_testchg_upd(struct ls_arena *a, const struct ls_relation *r, char old_kind,
				...);
struct ls_change ls_testchg_del(struct ls_arena *a, const struct ls_relation *r, char old_kind,
				...);

/* What a target reported through its on_commit callback. */
struct ls_testchg_commits {
	int calls;
	int64_t offset;   /* the last one */
	uint64_t seq;
};

/* An on_commit callback; ctx is a struct ls_testchg_commits. */
void ls_testchg_on_commit(void *ctx, int64_t off, const struct ls_pos *pos);

#endif
