/* statefile — small state files written so that a crash at any moment
 * leaves either the old or the new content, never a torn one: a temporary
 * file, fsync, rename over the old one, fsync of the directory. */
#ifndef LS_STATEFILE_H
#define LS_STATEFILE_H

#include <stddef.h>

#include "err.h"

/* Replaces path (inside dir, which must exist) with text[0..len).  Errors
 * name the file. */
int ls_statefile_write(const char *dir, const char *path, const char *text, size_t len,
		       struct ls_err *err);

/* Reads path whole into *out (malloc'd, NUL-terminated; caller frees):
 * 1 read, 0 no such file, -1 with err (unreadable, larger than max). */
int ls_statefile_read(const char *path, size_t max, char **out, struct ls_err *err);

/* Removes path; a missing file is fine.  0, or -1 with err. */
int ls_statefile_remove(const char *dir, const char *path, struct ls_err *err);

#endif
