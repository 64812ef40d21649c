/* cutstate — what a daemon restart must not forget after a cutover: that
 * the application now writes to the new side, the reverse pipeline that
 * keeps the old side a fallback, and the rollback window with what lifts
 * the old side's fence.  One record in <state_dir>/cutover.state, written
 * durably (lib/statefile.h) when a cutover succeeds and removed when the
 * rollback succeeds or the window closes; lib/cutover.c reads it at start.
 *
 * Text, one "key=value" per line; in values "\n" and "\\" stand for a
 * newline and a backslash (the undo holds one statement per line). */
#ifndef LS_CUTSTATE_H
#define LS_CUTSTATE_H

#include <stdint.h>

#include "change.h"
#include "err.h"

#define LS_CUTSTATE_FILE "cutover.state"

struct ls_cutstate {
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
