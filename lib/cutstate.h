/* cutstate — what a daemon restart must not forget about a cutover: a
 * fence a procedure stopped by the restart left on the serving side (to
 * lift it), that the application writes to the new side (the reverse
 * pipeline that keeps the old side a fallback, the rollback window, what
 * lifts the old side's fence), or after a rollback what lifts the new
 * side's fence.  One record in <state_dir>/cutover.state, written durably
 * (lib/statefile.h) at each of those points and removed when none holds;
 * lib/cutover.c reads it at start.
 *
 * Text, one "key=value" per line; in values "\n" and "\\" stand for a
 * newline and a backslash (the undo holds one statement per line). */
#ifndef LS_CUTSTATE_H
#define LS_CUTSTATE_H

#include <stdbool.h>
#include <stdint.h>

#include "change.h"
#include "err.h"

#define LS_CUTSTATE_FILE "cutover.state"

enum ls_cutstate_stage {
	LS_CUTSTATE_FENCED,                /* a procedure's fence is on, no switch yet */
	LS_CUTSTATE_CUT_OVER,              /* the new side serves */
	LS_CUTSTATE_ROLLED_BACK,           /* the old side serves, the new one fenced */
};

struct ls_cutstate {
	enum ls_cutstate_stage stage;
	bool rollback;                     /* FENCED: by a rollback (under a cut over) */
	char *fence_undo;                  /* FENCED: lifts that fence (owned) */
	char *newside_undo;                /* ROLLED_BACK: lifts the new side's (owned) */
	int64_t next_id;                   /* the last procedure's number */
	int64_t id;                        /* the cutover procedure's number */
	char target[128];                  /* the target cut over to */
	char *tables;                      /* --tables patterns, NULL = all (owned) */
	char *slice;                       /* "schema.name,..." (owned) */
	int64_t window_until_us;           /* rollback possible until (wall clock) */
	char rev_start[LS_POS_TEXT_MAX];   /* the reverse stream's start */
	char report[1024];                 /* the cutover's report (.json) */
	char *undo;                        /* lifts the old side's fence, may be NULL (owned) */
};

/* Writes s into dir.  Errors name the file. */
int ls_cutstate_save(const char *dir, const struct ls_cutstate *s, struct ls_err *err);
/* 1 and *out filled (free with ls_cutstate_clear), 0 when dir holds no
 * record, -1 with err naming file and line (unreadable, a bad line, a
 * required key missing). */
int ls_cutstate_load(const char *dir, struct ls_cutstate *out, struct ls_err *err);
int ls_cutstate_remove(const char *dir, struct ls_err *err);
void ls_cutstate_clear(struct ls_cutstate *s);

#endif
