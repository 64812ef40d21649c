/* json — a tiny streaming JSON writer for control-plane responses.
 *
 * The writer inserts commas and escapes strings itself, so callers cannot
 * produce invalid JSON by accident: bytes that are not valid UTF-8 become
 * U+FFFD.  Errors (out of memory, nesting deeper than LS_JSON_MAX_DEPTH, a
 * value where a key is due) are sticky: the writer stops and
 * ls_json_data() returns NULL, so callers check once at the end.  Every
 * call accepts a NULL writer (what ls_json_new() returns out of memory) and
 * does nothing, so that case too surfaces only at the end.
 * Parsing JSON is not this module's job (lockstepctl and tests use jansson).
 */
#ifndef LS_JSON_H
#define LS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LS_JSON_MAX_DEPTH 32

struct ls_json;

struct ls_json *ls_json_new(void);          /* NULL when out of memory */
void ls_json_free(struct ls_json *j);       /* NULL is a no-op */
/* Empties the writer for a new document. */
void ls_json_reset(struct ls_json *j);

void ls_json_object_begin(struct ls_json *j);
void ls_json_object_end(struct ls_json *j);
void ls_json_array_begin(struct ls_json *j);
void ls_json_array_end(struct ls_json *j);
/* Inside an object, each value is preceded by exactly one key. */
void ls_json_key(struct ls_json *j, const char *key);

void ls_json_string(struct ls_json *j, const char *s);   /* NULL writes null */
void ls_json_string_len(struct ls_json *j, const char *s, size_t len);
void ls_json_int(struct ls_json *j, int64_t v);
void ls_json_uint(struct ls_json *j, uint64_t v);
void ls_json_double(struct ls_json *j, double v);        /* NaN/inf write null */
void ls_json_bool(struct ls_json *j, bool v);
void ls_json_null(struct ls_json *j);

/* Key and value in one call, for the common object member. */
void ls_json_kv_string(struct ls_json *j, const char *key, const char *s);
void ls_json_kv_int(struct ls_json *j, const char *key, int64_t v);
void ls_json_kv_uint(struct ls_json *j, const char *key, uint64_t v);
void ls_json_kv_bool(struct ls_json *j, const char *key, bool v);

/* The document so far (NUL-terminated; length in *len if non-NULL), valid
 * until the next write, reset or free; NULL after an error. */
const char *ls_json_data(const struct ls_json *j, size_t *len);
/* True when every opened object and array has been closed and no error
 * happened: the document is complete. */
bool ls_json_complete(const struct ls_json *j);

#endif
