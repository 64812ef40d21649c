/* json — see json.h.  State per nesting level: is it an object, has it a
 * member yet, is a key waiting for its value.  That is enough to place
 * commas and to refuse a value where a key is due. */
#include "json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct level {
	bool object;
	bool has_member;
	bool key_pending;
};

struct ls_json {
	char *buf;
	size_t len, cap;
	bool failed;
	bool has_root;
	int depth;
	struct level stack[LS_JSON_MAX_DEPTH];
};

struct ls_json *ls_json_new(void)
{
	return calloc(1, sizeof(struct ls_json));
}

void ls_json_free(struct ls_json *j)
{
	if (j == NULL)
		return;
	free(j->buf);
	free(j);
}

void ls_json_reset(struct ls_json *j)
{
	if (j == NULL)
		return;
	j->len = 0;
	j->failed = false;
	j->has_root = false;
	j->depth = 0;
	if (j->buf != NULL)
		j->buf[0] = '\0';
}

static void put(struct ls_json *j, const char *s, size_t n)
{
	if (j->failed)
		return;
	if (j->len + n + 1 > j->cap) {
		size_t cap = j->cap ? j->cap : 256;
		while (cap < j->len + n + 1)
			cap *= 2;
		char *b = realloc(j->buf, cap);
		if (b == NULL) {
			j->failed = true;
			return;
		}
		j->buf = b;
		j->cap = cap;
	}
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

static void puts_(struct ls_json *j, const char *s)
{
	put(j, s, strlen(s));
}

/* Called before every value: writes the comma when needed and checks that
 * a value is allowed here. */
static bool before_value(struct ls_json *j)
{
	if (j == NULL || j->failed)
		return false;
	if (j->depth == 0) {
		if (j->has_root)
			j->failed = true;
		j->has_root = true;
		return !j->failed;
	}
	struct level *l = &j->stack[j->depth - 1];
	if (l->object) {
		if (!l->key_pending) {
			j->failed = true;
			return false;
		}
		l->key_pending = false;
		return true;
	}
	if (l->has_member)
		put(j, ",", 1);
	l->has_member = true;
	return true;
}

static void open_level(struct ls_json *j, bool object)
{
	if (!before_value(j))
		return;
	if (j->depth >= LS_JSON_MAX_DEPTH) {
		j->failed = true;
		return;
	}
	j->stack[j->depth++] = (struct level){.object = object};
	put(j, object ? "{" : "[", 1);
}

static void close_level(struct ls_json *j, bool object)
{
	if (j == NULL || j->failed)
		return;
	if (j->depth == 0 || j->stack[j->depth - 1].object != object ||
	    j->stack[j->depth - 1].key_pending) {
		j->failed = true;
		return;
	}
	j->depth--;
	put(j, object ? "}" : "]", 1);
}

void ls_json_object_begin(struct ls_json *j) { open_level(j, true); }
void ls_json_object_end(struct ls_json *j) { close_level(j, true); }
void ls_json_array_begin(struct ls_json *j) { open_level(j, false); }
void ls_json_array_end(struct ls_json *j) { close_level(j, false); }

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	bool overlong = (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
	if (overlong || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static void put_escaped(struct ls_json *j, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	put(j, "\"", 1);
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(j, esc, 2);
			i++;
		} else if (c < 0x20) {
			const char *brief = c == '\n' ? "\\n" : c == '\t' ? "\\t"
					  : c == '\r' ? "\\r" : NULL;
			if (brief != NULL) {
				put(j, brief, 2);
			} else {
				snprintf(esc, sizeof esc, "\\u%04x", c);
				put(j, esc, 6);
			}
			i++;
		} else {
			size_t l = utf8_len(s + i, n - i);
			if (l == 0) {
				put(j, "\xef\xbf\xbd", 3);
				i++;
			} else {
				put(j, (const char *)s + i, l);
				i += l;
			}
		}
	}
	put(j, "\"", 1);
}

void ls_json_key(struct ls_json *j, const char *key)
{
	if (j == NULL || j->failed)
		return;
	struct level *l = j->depth > 0 ? &j->stack[j->depth - 1] : NULL;
	if (l == NULL || !l->object || l->key_pending || key == NULL) {
		j->failed = true;
		return;
	}
	if (l->has_member)
		put(j, ",", 1);
	l->has_member = true;
	l->key_pending = true;
	put_escaped(j, key, strlen(key));
	put(j, ":", 1);
}

void ls_json_string_len(struct ls_json *j, const char *s, size_t len)
{
	if (before_value(j))
		put_escaped(j, s, len);
}

void ls_json_string(struct ls_json *j, const char *s)
{
	if (s == NULL)
		ls_json_null(j);
	else
		ls_json_string_len(j, s, strlen(s));
}

void ls_json_int(struct ls_json *j, int64_t v)
{
	char b[32];
	snprintf(b, sizeof b, "%" PRId64, v);
	if (before_value(j))
		puts_(j, b);
}

void ls_json_uint(struct ls_json *j, uint64_t v)
{
	char b[32];
	snprintf(b, sizeof b, "%" PRIu64, v);
	if (before_value(j))
		puts_(j, b);
}

void ls_json_double(struct ls_json *j, double v)
{
	char b[40];
	if (!isfinite(v))
		snprintf(b, sizeof b, "null");
	else
		snprintf(b, sizeof b, "%.15g", v);
	if (before_value(j))
		puts_(j, b);
}

void ls_json_bool(struct ls_json *j, bool v)
{
	if (before_value(j))
		puts_(j, v ? "true" : "false");
}

void ls_json_null(struct ls_json *j)
{
	if (before_value(j))
		puts_(j, "null");
}

void ls_json_kv_string(struct ls_json *j, const char *key, const char *s)
{
	ls_json_key(j, key);
	ls_json_string(j, s);
}

void ls_json_kv_int(struct ls_json *j, const char *key, int64_t v)
{
	ls_json_key(j, key);
	ls_json_int(j, v);
}

void ls_json_kv_uint(struct ls_json *j, const char *key, uint64_t v)
{
	ls_json_key(j, key);
	ls_json_uint(j, v);
}

void ls_json_kv_bool(struct ls_json *j, const char *key, bool v)
{
	ls_json_key(j, key);
	ls_json_bool(j, v);
}

const char *ls_json_data(const struct ls_json *j, size_t *len)
{
	if (j == NULL || j->failed)
		return NULL;
	if (len != NULL)
		*len = j->len;
	return j->buf != NULL ? j->buf : "";
}

bool ls_json_complete(const struct ls_json *j)
{
	return j != NULL && !j->failed && j->has_root && j->depth == 0;
}
