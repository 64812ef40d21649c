#include "cutstate.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbuf.h"
#include "statefile.h"

#define STATE_MAX (1024 * 1024)

static void path_of(const char *dir, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s", dir, LS_CUTSTATE_FILE);
}

static void put_escaped(struct ls_sbuf *b, const char *key, const char *v)
{
	ls_sbuf_printf(b, "%s=", key);
	for (const char *p = v ? v : ""; *p; p++) {
		if (*p == '\n')
			ls_sbuf_put(b, "\\n");
		else if (*p == '\\')
			ls_sbuf_put(b, "\\\\");
		else
			ls_sbuf_putc(b, *p);
	}
	ls_sbuf_putc(b, '\n');
}

int ls_cutstate_save(const char *dir, const struct ls_cutstate *s, struct ls_err *err)
{
	struct ls_sbuf b;
	ls_sbuf_init(&b);
	static const char *const stages[] = { "fenced", "cut_over", "rolled_back" };
	ls_sbuf_printf(&b, "stage=%s\nrollback=%d\nnext_id=%" PRId64 "\nid=%" PRId64
		       "\nwindow_until_us=%" PRId64 "\n", stages[s->stage], s->rollback ? 1 : 0,
		       s->next_id, s->id, s->window_until_us);
	put_escaped(&b, "target", s->target);
	put_escaped(&b, "tables", s->tables);
	put_escaped(&b, "slice", s->slice);
	put_escaped(&b, "rev_start", s->rev_start);
	put_escaped(&b, "report", s->report);
	put_escaped(&b, "undo", s->undo);
	put_escaped(&b, "fence_undo", s->fence_undo);
	put_escaped(&b, "newside_undo", s->newside_undo);
	char path[4096];
	path_of(dir, path, sizeof path);
	int rc = b.oom ? ls_err_set(err, false, "out of memory")
		       : ls_statefile_write(dir, path, ls_sbuf_str(&b), b.len, err);
	ls_sbuf_free(&b);
	return rc;
}

/* Undoes put_escaped in place; false on a dangling or unknown escape. */
static bool unescape(char *v)
{
	char *o = v;
	for (char *p = v; *p; p++) {
		if (*p != '\\') {
			*o++ = *p;
			continue;
		}
		p++;
		if (*p == 'n')
			*o++ = '\n';
		else if (*p == '\\')
			*o++ = '\\';
		else
			return false;
	}
	*o = '\0';
	return true;
}

static bool copy_to(char *dst, size_t size, const char *v)
{
	return (size_t)snprintf(dst, size, "%s", v) < size;
}

static bool dup_to(char **dst, const char *v)
{
	free(*dst);
	*dst = v[0] ? strdup(v) : NULL;
	return v[0] == '\0' || *dst != NULL;
}

static bool set_stage(struct ls_cutstate *s, const char *v)
{
	if (strcmp(v, "fenced") == 0)
		s->stage = LS_CUTSTATE_FENCED;
	else if (strcmp(v, "cut_over") == 0)
		s->stage = LS_CUTSTATE_CUT_OVER;
	else if (strcmp(v, "rolled_back") == 0)
		s->stage = LS_CUTSTATE_ROLLED_BACK;
	else
		return false;
	return true;
}

static bool set_key(struct ls_cutstate *s, const char *k, const char *v, unsigned *seen)
{
	char *end = NULL;
	if (strcmp(k, "stage") == 0)
		return (*seen |= 16, set_stage(s, v));
	if (strcmp(k, "rollback") == 0)
		return (s->rollback = strcmp(v, "1") == 0, strcmp(v, "0") == 0 || s->rollback);
	if (strcmp(k, "next_id") == 0) {
		s->next_id = strtoll(v, &end, 10);
		return end != v && *end == '\0' && s->next_id >= 0;
	}
	if (strcmp(k, "fence_undo") == 0)
		return dup_to(&s->fence_undo, v);
	if (strcmp(k, "newside_undo") == 0)
		return dup_to(&s->newside_undo, v);
	if (strcmp(k, "id") == 0) {
		s->id = strtoll(v, &end, 10);
		*seen |= 1;
		return end != v && *end == '\0' && s->id > 0;
	}
	if (strcmp(k, "window_until_us") == 0) {
		s->window_until_us = strtoll(v, &end, 10);
		*seen |= 2;
		return end != v && *end == '\0';
	}
	if (strcmp(k, "target") == 0)
		return (*seen |= 4, copy_to(s->target, sizeof s->target, v) && v[0]);
	if (strcmp(k, "slice") == 0)
		return (*seen |= 8, dup_to(&s->slice, v) && v[0]);
	if (strcmp(k, "tables") == 0)
		return dup_to(&s->tables, v);
	if (strcmp(k, "rev_start") == 0)
		return copy_to(s->rev_start, sizeof s->rev_start, v);
	if (strcmp(k, "report") == 0)
		return copy_to(s->report, sizeof s->report, v);
	if (strcmp(k, "undo") == 0)
		return dup_to(&s->undo, v);
	return false;
}

static int parse(char *text, const char *path, struct ls_cutstate *out, struct ls_err *err)
{
	unsigned seen = 0;
	int line = 0;
	for (char *p = text, *nl; *p; p = nl + 1) {
		line++;
		nl = strchr(p, '\n');
		if (nl == NULL)
			return ls_err_set(err, false, "%s:%d: unterminated line", path, line);
		*nl = '\0';
		char *eq = strchr(p, '=');
		if (eq == NULL)
			return ls_err_set(err, false, "%s:%d: expected key=value", path, line);
		*eq = '\0';
		if (!unescape(eq + 1) || !set_key(out, p, eq + 1, &seen))
			return ls_err_set(err, false, "%s:%d: bad or unknown %s", path, line, p);
	}
	if (seen != 31)
		return ls_err_set(err, false, "%s: incomplete (needs stage, id, window_until_us, "
				  "target and slice)", path);
	return 1;
}

int ls_cutstate_load(const char *dir, struct ls_cutstate *out, struct ls_err *err)
{
	memset(out, 0, sizeof *out);
	char path[4096], *text = NULL;
	path_of(dir, path, sizeof path);
	int rc = ls_statefile_read(path, STATE_MAX, &text, err);
	if (rc <= 0)
		return rc;
	rc = parse(text, path, out, err);
	free(text);
	if (rc < 0)
		ls_cutstate_clear(out);
	return rc;
}

int ls_cutstate_remove(const char *dir, struct ls_err *err)
{
	char path[4096];
	path_of(dir, path, sizeof path);
	return ls_statefile_remove(dir, path, err);
}

void ls_cutstate_clear(struct ls_cutstate *s)
{
	free(s->tables);
	free(s->slice);
	free(s->undo);
	free(s->fence_undo);
	free(s->newside_undo);
	memset(s, 0, sizeof *s);
}
