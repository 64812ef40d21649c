#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ls_err_set(struct ls_err *err, bool retryable, const char *fmt, ...)
{
	if (err == NULL)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	err->retryable = retryable;
	return -1;
}

int ls_err_prefix(struct ls_err *err, const char *fmt, ...)
{
	if (err == NULL)
		return -1;
	char prefix[LS_ERR_MSG_MAX];
	char old[LS_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof old);
	snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
	return -1;
}
