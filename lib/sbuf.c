#include "sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ls_sbuf_init(struct ls_sbuf *b)
{
	memset(b, 0, sizeof *b);
}

void ls_sbuf_reset(struct ls_sbuf *b)
{
	b->len = 0;
	b->oom = false;
	if (b->data)
		b->data[0] = '\0';
}

void ls_sbuf_free(struct ls_sbuf *b)
{
	free(b->data);
	ls_sbuf_init(b);
}

const char *ls_sbuf_str(struct ls_sbuf *b)
{
	return b->data ? b->data : "";
}

/* Makes room for n more bytes plus the NUL; false (and oom) when it cannot. */
static bool reserve(struct ls_sbuf *b, size_t n)
{
	if (b->oom)
		return false;
	if (b->len + n + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + n + 1)
		cap *= 2;
	char *d = realloc(b->data, cap);
	if (d == NULL) {
		b->oom = true;
		return false;
	}
	b->data = d;
	b->cap = cap;
	return true;
}

char *ls_sbuf_room(struct ls_sbuf *b, size_t n)
{
	return reserve(b, n) ? b->data + b->len : NULL;
}

void ls_sbuf_putn(struct ls_sbuf *b, const char *s, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void ls_sbuf_put(struct ls_sbuf *b, const char *s)
{
	ls_sbuf_putn(b, s, strlen(s));
}

void ls_sbuf_putc(struct ls_sbuf *b, char c)
{
	ls_sbuf_putn(b, &c, 1);
}

void ls_sbuf_printf(struct ls_sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}
