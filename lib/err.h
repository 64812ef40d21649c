/* err — the one error convention of lockstep.
 *
 * Functions return int: 0 on success, negative on failure.  When the caller
 * passes a non-NULL struct ls_err *, the callee fills it with a message that
 * names what and where, and says whether retrying may help.  The message
 * never contains secrets: callers redact connection strings before putting
 * them in (see log.h, ls_redact).  Log once, where the context is.
 */
#ifndef LS_ERR_H
#define LS_ERR_H

#include <stdbool.h>
#include <stddef.h>

#define LS_ERR_MSG_MAX 512

struct ls_err {
	bool retryable;              /* a later attempt may succeed (network, busy) */
	char msg[LS_ERR_MSG_MAX];
};

/* Fills err (if non-NULL) with a formatted message; returns -1 so callers can
 * write `return ls_err_set(err, false, "...")`. */
int ls_err_set(struct ls_err *err, bool retryable, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message, keeping retryable. Returns -1. */
int ls_err_prefix(struct ls_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
