/* sbuf — a growable, always NUL-terminated string buffer, the one the
 * connectors build their SQL text in.
 *
 * An allocation failure sets oom; later appends are then no-ops, so callers
 * build the whole text and check oom once at the end.
 */
#ifndef LS_SBUF_H
#define LS_SBUF_H

#include <stdbool.h>
#include <stddef.h>

struct ls_sbuf {
	char *data;                /* owned; always NUL-terminated once used */
	size_t len;
	size_t cap;
	bool oom;                  /* an append failed; contents are truncated */
};

void ls_sbuf_init(struct ls_sbuf *b);
void ls_sbuf_reset(struct ls_sbuf *b);     /* len = 0, oom cleared, keeps memory */
void ls_sbuf_free(struct ls_sbuf *b);      /* back to the init state */
/* Data as a C string ("" when nothing was appended); valid until the next
 * append, reset or free. */
const char *ls_sbuf_str(struct ls_sbuf *b);
/* Makes room for n more bytes (plus the NUL) at data + len; returns that
 * pointer (the caller writes and then adds to len), or NULL on OOM. */
char *ls_sbuf_room(struct ls_sbuf *b, size_t n);

void ls_sbuf_putn(struct ls_sbuf *b, const char *s, size_t n);
void ls_sbuf_put(struct ls_sbuf *b, const char *s);
void ls_sbuf_putc(struct ls_sbuf *b, char c);
void ls_sbuf_printf(struct ls_sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
