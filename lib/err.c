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
	char old[LS_ERR_MSG_MAX];
	memcpy(old, err->msg, sizeof old);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof err->msg - 2)
		return -1;   /* the prefix alone fills the message: keep it */
	size_t used = (size_t)n;
	memcpy(err->msg + used, ": ", 2);
	used += 2;
	size_t room = sizeof err->msg - used - 1;
	size_t len = strnlen(old, sizeof old - 1);
	if (len > room)
		len = room;
	memcpy(err->msg + used, old, len);
	err->msg[used + len] = '\0';
	return -1;
}
