#include "codec.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t MAGIC[4] = { 'L', 'S', 'T', 'P' };
#define HEAD_LEN 6                 /* magic, version, type */
/* Upper bound of a TXN header after HEAD_LEN: flags, chunk, xid, seq, text,
 * time, nrels, nchanges. */
#define TXN_HEAD_MAX (1 + 5 + 10 + 10 + 2 + LS_POS_TEXT_MAX + 10 + 5 + 5)

/* ---- output buffer ---------------------------------------------------------------- */

void ls_codec_buf_init(struct ls_codec_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void ls_codec_buf_free(struct ls_codec_buf *b)
{
	free(b->data);
	ls_codec_buf_init(b);
}

static int buf_reserve(struct ls_codec_buf *b, size_t n)
{
	if (b->cap - b->len >= n)
		return 0;
	if (n > SIZE_MAX / 2 - b->len)
		return -1;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < n)
		cap *= 2;
	uint8_t *d = realloc(b->data, cap);
	if (d == NULL)
		return -1;
	b->data = d;
	b->cap = cap;
	return 0;
}

static int put_raw(struct ls_codec_buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static int put_u8(struct ls_codec_buf *b, uint8_t v)
{
	return put_raw(b, &v, 1);
}

static int put_varint(struct ls_codec_buf *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;
	do {
		tmp[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	return put_raw(b, tmp, n);
}

static int put_zz(struct ls_codec_buf *b, int64_t v)
{
	return put_varint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static int put_bytes(struct ls_codec_buf *b, const void *p, uint32_t n)
{
	return put_varint(b, n) | put_raw(b, p, n);
}

static int put_str(struct ls_codec_buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n > UINT32_MAX)
		return -1;
	return put_bytes(b, s, (uint32_t)n);
}

static int put_head(struct ls_codec_buf *b, uint8_t type)
{
	return put_raw(b, MAGIC, sizeof MAGIC) | put_u8(b, LS_CODEC_VERSION) | put_u8(b, type);
}

static int put_pos(struct ls_codec_buf *b, const struct ls_pos *pos)
{
	return put_varint(b, pos->seq) | put_str(b, pos->text);
}

static int check_pos(const struct ls_pos *pos, struct ls_err *err)
{
	if (memchr(pos->text, '\0', LS_POS_TEXT_MAX) == NULL)
		return ls_err_set(err, false, "codec: position text is not NUL-terminated");
	return 0;
}

/* ---- small records ------------------------------------------------------------------ */

int ls_codec_encode_position(struct ls_codec_buf *out, const struct ls_pos *pos,
			     int64_t source_time_us, struct ls_err *err)
{
	if (check_pos(pos, err) < 0)
		return -1;
	out->len = 0;
	if (put_head(out, LS_CODEC_POSITION) | put_pos(out, pos) | put_zz(out, source_time_us))
		return ls_err_set(err, false, "codec: out of memory");
	return 0;
}

int ls_codec_encode_stream_abort(struct ls_codec_buf *out, uint64_t xid, uint64_t subxid,
				 struct ls_err *err)
{
	out->len = 0;
	if (put_head(out, LS_CODEC_STREAM_ABORT) | put_varint(out, xid) | put_varint(out, subxid))
		return ls_err_set(err, false, "codec: out of memory");
	return 0;
}

int ls_codec_encode_marker(struct ls_codec_buf *out, const struct ls_pos *pos,
			   int64_t source_time_us, const char *prefix,
			   const void *payload, uint32_t payload_len, struct ls_err *err)
{
	if (check_pos(pos, err) < 0)
		return -1;
	if (prefix == NULL || (payload == NULL && payload_len))
		return ls_err_set(err, false, "codec: marker needs a prefix and its payload");
	out->len = 0;
	if (put_head(out, LS_CODEC_MARKER) | put_pos(out, pos) | put_zz(out, source_time_us) |
	    put_str(out, prefix) | put_bytes(out, payload, payload_len))
		return ls_err_set(err, false, "codec: out of memory");
	return 0;
}

/* ---- writer ------------------------------------------------------------------------------ */

/* One relation definition in the current chunk: its bytes in w->rels. */
struct relent {
	uint32_t id;
	size_t off;
	size_t len;
};

struct ls_codec_writer {
	size_t limit;
	bool active;               /* between begin and the last flush */
	bool have_commit;
	bool stream;               /* pieces of a streamed transaction */
	uint64_t xid, subxid;
	struct ls_pos commit;
	int64_t time_us;
	uint32_t chunk;            /* index of the chunk being filled */
	uint32_t nchanges;
	struct ls_codec_buf rels;  /* encoded relation table of the chunk */
	struct ls_codec_buf chg;   /* encoded changes of the chunk */
	struct ls_codec_buf out;   /* the last flushed record */
	struct ls_codec_buf tmp;   /* scratch: one relation being looked up */
	struct relent *ents;
	uint32_t nents, capents;
};

struct ls_codec_writer *ls_codec_writer_new(size_t chunk_limit)
{
	struct ls_codec_writer *w = calloc(1, sizeof *w);
	if (w == NULL)
		return NULL;
	w->limit = chunk_limit ? chunk_limit : LS_CODEC_DEFAULT_CHUNK;
	return w;
}

void ls_codec_writer_free(struct ls_codec_writer *w)
{
	if (w == NULL)
		return;
	ls_codec_buf_free(&w->rels);
	ls_codec_buf_free(&w->chg);
	ls_codec_buf_free(&w->out);
	ls_codec_buf_free(&w->tmp);
	free(w->ents);
	free(w);
}

/* Empties a buffer; one that grew far past the chunk limit (a huge single
 * change) is released so memory goes back to the chunk's size. */
static void buf_clear(struct ls_codec_buf *b, size_t limit)
{
	if (b->cap > 4 * limit)
		ls_codec_buf_free(b);
	b->len = 0;
}

static void chunk_clear(struct ls_codec_writer *w)
{
	buf_clear(&w->rels, w->limit);
	buf_clear(&w->chg, w->limit);
	buf_clear(&w->tmp, w->limit);
	w->nents = 0;
	w->nchanges = 0;
}

int ls_codec_writer_set_commit(struct ls_codec_writer *w, const struct ls_pos *commit,
			       int64_t commit_time_us, struct ls_err *err)
{
	if (check_pos(commit, err) < 0)
		return -1;
	w->commit = *commit;
	w->time_us = commit_time_us;
	w->have_commit = true;
	return 0;
}

int ls_codec_writer_begin(struct ls_codec_writer *w, uint64_t xid,
			  const struct ls_pos *commit, int64_t commit_time_us,
			  struct ls_err *err)
{
	chunk_clear(w);
	w->active = false;
	w->have_commit = false;
	w->stream = false;
	w->xid = w->subxid = xid;
	w->chunk = 0;
	w->time_us = commit_time_us;
	memset(&w->commit, 0, sizeof w->commit);
	if (commit && ls_codec_writer_set_commit(w, commit, commit_time_us, err) < 0)
		return -1;
	w->active = true;
	return 0;
}

int ls_codec_writer_begin_stream(struct ls_codec_writer *w, uint64_t xid, uint64_t subxid,
				 uint32_t chunk, struct ls_err *err)
{
	if (ls_codec_writer_begin(w, xid, NULL, 0, err) < 0)
		return -1;
	w->stream = true;
	w->subxid = subxid;
	w->chunk = chunk;
	return 0;
}

uint32_t ls_codec_writer_chunk(const struct ls_codec_writer *w)
{
	return w->chunk;
}

static int valid_replident(uint8_t r)
{
	return r == LS_REPLIDENT_DEFAULT || r == LS_REPLIDENT_NOTHING ||
	       r == LS_REPLIDENT_FULL || r == LS_REPLIDENT_INDEX;
}

static int encode_relation(struct ls_codec_buf *b, const struct ls_relation *r)
{
	int rc = put_varint(b, r->id) | put_str(b, r->schema) | put_str(b, r->name) |
		 put_u8(b, r->replident) | put_varint(b, r->ncols);
	for (uint16_t i = 0; i < r->ncols && rc == 0; i++) {
		const struct ls_column *c = &r->cols[i];
		rc |= put_str(b, c->name) | put_str(b, c->type_name) |
		      put_varint(b, c->type_oid) | put_zz(b, c->typmod) | put_u8(b, c->flags) |
		      put_u8(b, c->fill != NULL);
		if (c->fill)
			rc |= put_str(b, c->fill);
	}
	return rc;
}

/* Index of r's definition in the chunk's relation table, adding it when the
 * chunk has no identical definition under the latest entry for its id. */
static int rel_index(struct ls_codec_writer *w, const struct ls_relation *r, uint32_t *idx)
{
	w->tmp.len = 0;
	if (encode_relation(&w->tmp, r) < 0)
		return -1;
	for (uint32_t i = w->nents; i-- > 0;) {
		struct relent *e = &w->ents[i];
		if (e->id != r->id)
			continue;
		if (e->len == w->tmp.len && memcmp(w->rels.data + e->off, w->tmp.data, e->len) == 0) {
			*idx = i;
			return 0;
		}
		break;
	}
	if (w->nents == w->capents) {
		uint32_t cap = w->capents ? w->capents * 2 : 16;
		struct relent *e = realloc(w->ents, cap * sizeof *e);
		if (e == NULL)
			return -1;
		w->ents = e;
		w->capents = cap;
	}
	size_t off = w->rels.len;
	if (put_raw(&w->rels, w->tmp.data, w->tmp.len) < 0)
		return -1;
	w->ents[w->nents] = (struct relent){ .id = r->id, .off = off, .len = w->tmp.len };
	*idx = w->nents++;
	return 0;
}

static int check_tuple(const struct ls_tuple *t, const struct ls_relation *r,
		       const char *which, struct ls_err *err)
{
	if (t->ncols != r->ncols)
		return ls_err_set(err, false,
				  "codec: %s tuple has %u columns, relation %s.%s has %u",
				  which, t->ncols, r->schema ? r->schema : "",
				  r->name ? r->name : "", r->ncols);
	if (t->ncols && t->vals == NULL)
		return ls_err_set(err, false, "codec: %s tuple without values", which);
	for (uint16_t i = 0; i < t->ncols; i++) {
		const struct ls_value *v = &t->vals[i];
		switch (v->kind) {
		case LS_VAL_NULL:
		case LS_VAL_UNCHANGED:
			break;
		case LS_VAL_TEXT:
		case LS_VAL_BINARY:
			if (v->data == NULL && v->len)
				return ls_err_set(err, false, "codec: %s column %u has no data",
						  which, i + 1);
			break;
		default:
			return ls_err_set(err, false, "codec: %s column %u: bad value kind %u",
					  which, i + 1, v->kind);
		}
	}
	return 0;
}

static int check_rels(const struct ls_change *c, const struct ls_relation *const *rels,
		      uint32_t nrels, struct ls_err *err)
{
	uint32_t want = c->op == LS_OP_TRUNCATE ? c->nrelids : c->op == LS_OP_MESSAGE ? 0 : 1;
	if (c->op == LS_OP_TRUNCATE && c->relids == NULL && c->nrelids)
		return ls_err_set(err, false, "codec: TRUNCATE without relation ids");
	if (nrels && rels == NULL)
		return ls_err_set(err, false, "codec: change '%c' without its relations", c->op);
	if (nrels != want)
		return ls_err_set(err, false, "codec: change '%c' needs %" PRIu32
				  " relations, got %" PRIu32, c->op, want, nrels);
	for (uint32_t i = 0; i < nrels; i++) {
		const struct ls_relation *r = rels[i];
		uint32_t id = c->op == LS_OP_TRUNCATE ? c->relids[i] : c->relid;
		if (r == NULL || r->id != id)
			return ls_err_set(err, false, "codec: change '%c' references relation %"
					  PRIu32 " but was given another", c->op, id);
		if (!valid_replident(r->replident))
			return ls_err_set(err, false, "codec: relation %" PRIu32
					  " has bad replica identity %u", id, r->replident);
	}
	return 0;
}

/* Rejects changes the decoder would reject, so a bad producer fails where the
 * bug is rather than on every consumer. */
static int check_change(const struct ls_change *c, const struct ls_relation *const *rels,
			uint32_t nrels, struct ls_err *err)
{
	if (c->op != LS_OP_INSERT && c->op != LS_OP_UPDATE && c->op != LS_OP_DELETE &&
	    c->op != LS_OP_TRUNCATE && c->op != LS_OP_MESSAGE)
		return ls_err_set(err, false, "codec: bad change op %u", c->op);
	if (check_rels(c, rels, nrels, err) < 0)
		return -1;
	bool has_old = c->old_kind == LS_OLD_KEY || c->old_kind == LS_OLD_FULL;
	switch (c->op) {
	case LS_OP_INSERT:
		if (c->old_kind != LS_OLD_NONE)
			return ls_err_set(err, false, "codec: INSERT with an old tuple");
		return check_tuple(&c->new_tup, rels[0], "new", err);
	case LS_OP_UPDATE:
	case LS_OP_DELETE:
		if (!has_old && c->old_kind != LS_OLD_NONE)
			return ls_err_set(err, false, "codec: bad old tuple kind %u", c->old_kind);
		if (has_old && check_tuple(&c->old_tup, rels[0], "old", err) < 0)
			return -1;
		return c->op == LS_OP_UPDATE ? check_tuple(&c->new_tup, rels[0], "new", err) : 0;
	case LS_OP_TRUNCATE:
		if (c->nrelids == 0)
			return ls_err_set(err, false, "codec: TRUNCATE of no relation");
		if (c->truncate_flags & ~(LS_TRUNCATE_CASCADE | LS_TRUNCATE_RESTART_IDENTITY))
			return ls_err_set(err, false, "codec: bad TRUNCATE flags 0x%x",
					  c->truncate_flags);
		return 0;
	default:
		if (c->msg_prefix == NULL || (c->msg_data == NULL && c->msg_len))
			return ls_err_set(err, false, "codec: MESSAGE without prefix or data");
		return 0;
	}
}

static int encode_tuple(struct ls_codec_buf *b, const struct ls_tuple *t)
{
	int rc = 0;
	for (uint16_t i = 0; i < t->ncols && rc == 0; i++) {
		const struct ls_value *v = &t->vals[i];
		rc |= put_u8(b, v->kind);
		if (v->kind == LS_VAL_TEXT || v->kind == LS_VAL_BINARY)
			rc |= put_bytes(b, v->data, v->len);
	}
	return rc;
}

static int encode_change(struct ls_codec_writer *w, const struct ls_change *c,
			 const struct ls_relation *const *rels)
{
	struct ls_codec_buf *b = &w->chg;
	uint32_t idx = 0;
	int rc = put_u8(b, c->op);
	switch (c->op) {
	case LS_OP_INSERT:
	case LS_OP_UPDATE:
	case LS_OP_DELETE:
		if (rc || rel_index(w, rels[0], &idx) < 0)
			return -1;
		rc = put_varint(b, idx);
		if (c->op != LS_OP_INSERT)
			rc |= put_u8(b, c->old_kind);
		if (c->op != LS_OP_INSERT && c->old_kind != LS_OLD_NONE)
			rc |= encode_tuple(b, &c->old_tup);
		if (c->op != LS_OP_DELETE)
			rc |= encode_tuple(b, &c->new_tup);
		return rc;
	case LS_OP_TRUNCATE:
		rc |= put_u8(b, c->truncate_flags) | put_varint(b, c->nrelids);
		for (uint32_t i = 0; i < c->nrelids && rc == 0; i++) {
			if (rel_index(w, rels[i], &idx) < 0)
				return -1;
			rc |= put_varint(b, idx);
		}
		return rc;
	default:
		return rc | put_str(b, c->msg_prefix) | put_bytes(b, c->msg_data, c->msg_len);
	}
}

int ls_codec_writer_add(struct ls_codec_writer *w, const struct ls_change *c,
			const struct ls_relation *const *rels, uint32_t nrels,
			struct ls_err *err)
{
	if (!w->active)
		return ls_err_set(err, false, "codec: change added outside a transaction");
	if (check_change(c, rels, nrels, err) < 0)
		return -1;
	if (w->nchanges == UINT32_MAX)
		return ls_err_set(err, false, "codec: too many changes in one chunk");
	size_t rels_len = w->rels.len, chg_len = w->chg.len;
	uint32_t nents = w->nents;
	if (encode_change(w, c, rels) < 0) {
		w->rels.len = rels_len;
		w->chg.len = chg_len;
		w->nents = nents;
		return ls_err_set(err, false, "codec: out of memory");
	}
	w->nchanges++;
	return 0;
}

size_t ls_codec_writer_size(const struct ls_codec_writer *w)
{
	return HEAD_LEN + TXN_HEAD_MAX + w->rels.len + w->chg.len;
}

bool ls_codec_writer_full(const struct ls_codec_writer *w)
{
	return ls_codec_writer_size(w) >= w->limit;
}

uint32_t ls_codec_writer_count(const struct ls_codec_writer *w)
{
	return w->nchanges;
}

int ls_codec_writer_flush(struct ls_codec_writer *w, bool last, const uint8_t **rec,
			  size_t *len, struct ls_err *err)
{
	if (!w->active)
		return ls_err_set(err, false, "codec: flush outside a transaction");
	if (last && !w->have_commit)
		return ls_err_set(err, false,
				  "codec: last chunk of xid %" PRIu64 " without a commit position",
				  w->xid);
	if (!last && w->chunk == UINT32_MAX)
		return ls_err_set(err, false, "codec: too many chunks in one transaction");
	uint8_t flags = (w->chunk == 0 ? LS_CODEC_FIRST : 0) | (last ? LS_CODEC_LAST : 0) |
			(w->have_commit ? 0 : LS_CODEC_NO_COMMIT) | (w->stream ? LS_CODEC_STREAM : 0);
	struct ls_codec_buf *o = &w->out;
	buf_clear(o, w->limit);
	int rc = put_head(o, LS_CODEC_TXN) | put_u8(o, flags) | put_varint(o, w->chunk) |
		 put_varint(o, w->xid) | put_pos(o, &w->commit) | put_zz(o, w->time_us) |
		 (w->stream ? put_varint(o, w->subxid) : 0) | put_varint(o, w->nents) | put_raw(o, w->rels.data, w->rels.len) |
		 put_varint(o, w->nchanges) | put_raw(o, w->chg.data, w->chg.len);
	if (rc)
		return ls_err_set(err, false, "codec: out of memory");
	chunk_clear(w);
	w->chunk++;
	if (last)
		w->active = false;
	*rec = o->data;
	*len = o->len;
	return 0;
}

/* ---- decoder ---------------------------------------------------------------------------- */

struct rd {
	const uint8_t *start, *p, *end;
	struct ls_arena *arena;
	struct ls_err *err;
	const char *ctx;           /* item being read, for messages: "change" */
	uint32_t ctx_no;           /* its 1-based number */
	const struct ls_relation **relp;   /* &rels[i] for each i, shared by changes */
};

static size_t left(const struct rd *r)
{
	return (size_t)(r->end - r->p);
}

static int rd_fail(struct rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rd_fail(struct rd *r, const char *fmt, ...)
{
	char msg[LS_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	char ctx[32] = "";
	if (r->ctx)
		snprintf(ctx, sizeof ctx, "%s %" PRIu32 ": ", r->ctx, r->ctx_no);
	ls_err_set(r->err, false, "codec: byte %zu of %zu: %s%s",
		   (size_t)(r->p - r->start), (size_t)(r->end - r->start), ctx, msg);
	return -1;
}

static int rd_u8(struct rd *r, uint8_t *v, const char *what)
{
	if (left(r) < 1)
		return rd_fail(r, "truncated record: %s missing", what);
	*v = *r->p++;
	return 0;
}

static int rd_varint(struct rd *r, uint64_t *v, const char *what)
{
	uint64_t x = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (left(r) < 1)
			return rd_fail(r, "truncated record: %s cut short", what);
		uint8_t b = *r->p++;
		if (shift == 63 && b > 1)
			return rd_fail(r, "%s: varint overflows 64 bits", what);
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return rd_fail(r, "%s: varint overflows 64 bits", what);  /* not reached */
}

static int rd_u32(struct rd *r, uint32_t *v, const char *what)
{
	uint64_t x;
	if (rd_varint(r, &x, what) < 0)
		return -1;
	if (x > UINT32_MAX)
		return rd_fail(r, "%s: %" PRIu64 " does not fit in 32 bits", what, x);
	*v = (uint32_t)x;
	return 0;
}

static int rd_zz(struct rd *r, int64_t *v, const char *what)
{
	uint64_t x;
	if (rd_varint(r, &x, what) < 0)
		return -1;
	*v = (int64_t)(x >> 1) ^ -(int64_t)(x & 1);
	return 0;
}

/* Reads a count and checks that the rest of the record can hold that many
 * items of at least min_each bytes, which bounds every allocation sized from
 * it by the input's size. */
static int rd_count(struct rd *r, uint32_t *n, size_t min_each, uint32_t max, const char *what)
{
	if (rd_u32(r, n, what) < 0)
		return -1;
	if (*n > max)
		return rd_fail(r, "%s %" PRIu32 " above the limit %" PRIu32, what, *n, max);
	if (*n > left(r) / min_each)
		return rd_fail(r, "%s %" PRIu32 " more than the %zu bytes left can hold",
			       what, *n, left(r));
	return 0;
}

/* Reads a length-prefixed byte string, checked against the input. */
static int rd_span(struct rd *r, const uint8_t **p, uint32_t *n, const char *what)
{
	if (rd_u32(r, n, what) < 0)
		return -1;
	if (*n > left(r))
		return rd_fail(r, "truncated record: %s of %" PRIu32 " bytes, %zu left",
			       what, *n, left(r));
	*p = r->p;
	r->p += *n;
	return 0;
}

static void *rd_alloc(struct rd *r, size_t n, size_t size)
{
	if (n && size > SIZE_MAX / n) {
		rd_fail(r, "allocation overflow");
		return NULL;
	}
	size_t bytes = n * size;
	void *p = ls_arena_alloc(r->arena, bytes ? bytes : 1);
	if (p == NULL)
		rd_fail(r, "out of memory");
	else
		memset(p, 0, bytes);
	return p;
}

/* Reads bytes into a NUL-terminated arena copy; cstr refuses embedded NULs
 * (identifiers and prefixes are C strings). */
static int rd_dup(struct rd *r, char **out, uint32_t *len, bool cstr, const char *what)
{
	const uint8_t *p;
	uint32_t n;
	if (rd_span(r, &p, &n, what) < 0)
		return -1;
	if (cstr && memchr(p, '\0', n))
		return rd_fail(r, "%s holds a NUL byte", what);
	*out = ls_arena_memdup(r->arena, p, n);
	if (*out == NULL)
		return rd_fail(r, "out of memory");
	if (len)
		*len = n;
	return 0;
}

static int rd_pos(struct rd *r, struct ls_pos *pos, const char *what)
{
	const uint8_t *p;
	uint32_t n;
	if (rd_varint(r, &pos->seq, what) < 0 || rd_span(r, &p, &n, what) < 0)
		return -1;
	if (n >= LS_POS_TEXT_MAX || memchr(p, '\0', n))
		return rd_fail(r, "%s text: %" PRIu32 " bytes, or holds a NUL byte", what, n);
	memcpy(pos->text, p, n);
	pos->text[n] = '\0';
	return 0;
}

static int rd_header(struct rd *r, struct ls_codec_record *out)
{
	memset(out, 0, sizeof *out);
	if (left(r) < sizeof MAGIC)
		return rd_fail(r, "truncated record: shorter than the magic");
	if (memcmp(r->p, MAGIC, sizeof MAGIC) != 0)
		return rd_fail(r, "not a lockstep record (bad magic)");
	r->p += sizeof MAGIC;
	uint8_t ver = 0;
	if (rd_u8(r, &ver, "format version") < 0)
		return -1;
	if (ver != LS_CODEC_VERSION)
		return rd_fail(r, "record format version %u is not supported (this build "
			       "reads version %d)", ver, LS_CODEC_VERSION);
	if (rd_u8(r, &out->type, "record type") < 0)
		return -1;
	switch (out->type) {
	case LS_CODEC_POSITION:
	case LS_CODEC_MARKER:
		if (rd_pos(r, &out->pos, "position") < 0)
			return -1;
		return rd_zz(r, &out->time_us, "source time");
	case LS_CODEC_STREAM_ABORT:
		return rd_varint(r, &out->xid, "xid") < 0 ? -1
			: rd_varint(r, &out->subxid, "subtransaction xid");
	case LS_CODEC_TXN:
		break;
	default:
		return rd_fail(r, "unknown record type 0x%02x", out->type);
	}
	if (rd_u8(r, &out->flags, "chunk flags") < 0 || rd_u32(r, &out->chunk, "chunk index") < 0 ||
	    rd_varint(r, &out->xid, "xid") < 0 || rd_pos(r, &out->pos, "commit position") < 0 ||
	    rd_zz(r, &out->time_us, "commit time") < 0)
		return -1;
	uint8_t f = out->flags;
	if (f & ~(LS_CODEC_FIRST | LS_CODEC_LAST | LS_CODEC_NO_COMMIT | LS_CODEC_STREAM))
		return rd_fail(r, "unknown chunk flags 0x%02x", f);
	out->subxid = out->xid;
	if ((f & LS_CODEC_STREAM) && rd_varint(r, &out->subxid, "subtransaction xid") < 0)
		return -1;
	if ((f & LS_CODEC_STREAM) && (f & LS_CODEC_NO_COMMIT) && out->time_us != 0)
		return rd_fail(r, "streamed piece without a commit has a commit time");
	if (!(f & LS_CODEC_FIRST) != (out->chunk != 0))
		return rd_fail(r, "chunk %" PRIu32 " with FIRST flag %s", out->chunk,
			       f & LS_CODEC_FIRST ? "set" : "clear");
	if ((f & LS_CODEC_NO_COMMIT) &&
	    ((f & LS_CODEC_LAST) || out->pos.seq != 0 || out->pos.text[0] != '\0'))
		return rd_fail(r, "chunk without commit position is LAST or has a position");
	return 0;
}

int ls_codec_decode_header(const void *buf, size_t len, struct ls_codec_record *out,
			   struct ls_err *err)
{
	struct rd r = { .start = buf, .p = buf, .end = (const uint8_t *)buf + len, .err = err };
	return rd_header(&r, out) < 0 ? -1 : 0;
}

/* Minimum encoded sizes, for rd_count. */
#define MIN_REL 5                  /* id, schema, name, replident, ncols */
#define MIN_COL 6                  /* name, type_name, oid, typmod, flags, has fill */
#define MIN_CHANGE 2               /* op + one byte (MESSAGE: prefix, data are 2) */

static int rd_relation(struct rd *r, struct ls_relation *rel)
{
	uint32_t ncols;
	if (rd_u32(r, &rel->id, "relation id") < 0 ||
	    rd_dup(r, &rel->schema, NULL, true, "schema name") < 0 ||
	    rd_dup(r, &rel->name, NULL, true, "relation name") < 0 ||
	    rd_u8(r, &rel->replident, "replica identity") < 0)
		return -1;
	if (!valid_replident(rel->replident))
		return rd_fail(r, "relation %s.%s: bad replica identity 0x%02x",
			       rel->schema, rel->name, rel->replident);
	if (rd_count(r, &ncols, MIN_COL, UINT16_MAX, "column count") < 0)
		return -1;
	rel->ncols = (uint16_t)ncols;
	rel->cols = rd_alloc(r, ncols, sizeof *rel->cols);
	if (rel->cols == NULL)
		return -1;
	for (uint32_t i = 0; i < ncols; i++) {
		struct ls_column *c = &rel->cols[i];
		int64_t typmod;
		uint8_t has_fill = 0;
		if (rd_dup(r, &c->name, NULL, true, "column name") < 0 ||
		    rd_dup(r, &c->type_name, NULL, true, "column type name") < 0 ||
		    rd_u32(r, &c->type_oid, "column type id") < 0 ||
		    rd_zz(r, &typmod, "column typmod") < 0 || rd_u8(r, &c->flags, "column flags") < 0 ||
		    rd_u8(r, &has_fill, "column fill marker") < 0)
			return -1;
		if (typmod < INT32_MIN || typmod > INT32_MAX)
			return rd_fail(r, "column typmod %" PRId64 " out of range", typmod);
		c->typmod = (int32_t)typmod;
		if (has_fill > 1)
			return rd_fail(r, "column %s: bad fill marker 0x%02x", c->name, has_fill);
		if (has_fill && rd_dup(r, &c->fill, NULL, true, "column fill value") < 0)
			return -1;
	}
	return 0;
}

static int rd_tuple(struct rd *r, const struct ls_relation *rel, struct ls_tuple *t)
{
	if (rel->ncols > left(r))
		return rd_fail(r, "truncated record: tuple of %u columns, %zu bytes left",
			       rel->ncols, left(r));
	t->ncols = rel->ncols;
	if (t->ncols == 0)
		return 0;
	t->vals = rd_alloc(r, t->ncols, sizeof *t->vals);
	if (t->vals == NULL)
		return -1;
	for (uint16_t i = 0; i < t->ncols; i++) {
		struct ls_value *v = &t->vals[i];
		char *data;
		if (rd_u8(r, &v->kind, "value kind") < 0)
			return -1;
		switch (v->kind) {
		case LS_VAL_NULL:
		case LS_VAL_UNCHANGED:
			break;
		case LS_VAL_TEXT:
		case LS_VAL_BINARY:
			if (rd_dup(r, &data, &v->len, false, "value") < 0)
				return -1;
			v->data = data;
			break;
		default:
			return rd_fail(r, "column %u: bad value kind 0x%02x", i + 1, v->kind);
		}
	}
	return 0;
}

static int rd_relref(struct rd *r, const struct ls_codec_record *rec, uint32_t *idx)
{
	if (rd_u32(r, idx, "relation index") < 0)
		return -1;
	if (*idx >= rec->nrels)
		return rd_fail(r, "change references relation %" PRIu32
			       " of a table of %" PRIu32, *idx, rec->nrels);
	return 0;
}

static int rd_rowchange(struct rd *r, const struct ls_codec_record *rec,
			struct ls_codec_change *cc)
{
	struct ls_change *c = &cc->c;
	uint32_t idx = 0;
	if (rd_relref(r, rec, &idx) < 0)
		return -1;
	const struct ls_relation *rel = &rec->rels[idx];
	cc->rels = &r->relp[idx];
	cc->nrels = 1;
	c->relid = rel->id;
	if (c->op != LS_OP_INSERT) {
		if (rd_u8(r, &c->old_kind, "old tuple kind") < 0)
			return -1;
		if (c->old_kind != LS_OLD_NONE && c->old_kind != LS_OLD_KEY &&
		    c->old_kind != LS_OLD_FULL)
			return rd_fail(r, "bad old tuple kind 0x%02x", c->old_kind);
		if (c->old_kind != LS_OLD_NONE && rd_tuple(r, rel, &c->old_tup) < 0)
			return -1;
	}
	return c->op == LS_OP_DELETE ? 0 : rd_tuple(r, rel, &c->new_tup);
}

static int rd_truncate(struct rd *r, const struct ls_codec_record *rec,
		       struct ls_codec_change *cc)
{
	struct ls_change *c = &cc->c;
	if (rd_u8(r, &c->truncate_flags, "truncate flags") < 0)
		return -1;
	if (c->truncate_flags & ~(LS_TRUNCATE_CASCADE | LS_TRUNCATE_RESTART_IDENTITY))
		return rd_fail(r, "unknown truncate flags 0x%02x", c->truncate_flags);
	if (rd_count(r, &c->nrelids, 1, UINT32_MAX, "truncated relation count") < 0)
		return -1;
	if (c->nrelids == 0)
		return rd_fail(r, "TRUNCATE of no relation");
	const struct ls_relation **rels = rd_alloc(r, c->nrelids, sizeof *rels);
	c->relids = rd_alloc(r, c->nrelids, sizeof *c->relids);
	if (rels == NULL || c->relids == NULL)
		return -1;
	for (uint32_t i = 0; i < c->nrelids; i++) {
		uint32_t idx = 0;
		if (rd_relref(r, rec, &idx) < 0)
			return -1;
		rels[i] = &rec->rels[idx];
		c->relids[i] = rels[i]->id;
	}
	cc->rels = rels;
	cc->nrels = c->nrelids;
	return 0;
}

static int rd_change(struct rd *r, const struct ls_codec_record *rec, struct ls_codec_change *cc)
{
	struct ls_change *c = &cc->c;
	char *prefix, *data;
	if (rd_u8(r, &c->op, "change op") < 0)
		return -1;
	switch (c->op) {
	case LS_OP_INSERT:
	case LS_OP_UPDATE:
	case LS_OP_DELETE:
		return rd_rowchange(r, rec, cc);
	case LS_OP_TRUNCATE:
		return rd_truncate(r, rec, cc);
	case LS_OP_MESSAGE:
		if (rd_dup(r, &prefix, NULL, true, "message prefix") < 0 ||
		    rd_dup(r, &data, &c->msg_len, false, "message data") < 0)
			return -1;
		c->msg_prefix = prefix;
		c->msg_data = data;
		return 0;
	default:
		return rd_fail(r, "bad change op 0x%02x", c->op);
	}
}

static int rd_txn_body(struct rd *r, struct ls_codec_record *out)
{
	if (rd_count(r, &out->nrels, MIN_REL, UINT32_MAX, "relation count") < 0)
		return -1;
	out->rels = rd_alloc(r, out->nrels, sizeof *out->rels);
	if (out->rels == NULL)
		return -1;
	r->relp = rd_alloc(r, out->nrels, sizeof *r->relp);
	if (r->relp == NULL)
		return -1;
	r->ctx = "relation";
	for (uint32_t i = 0; i < out->nrels; i++) {
		r->ctx_no = i + 1;
		r->relp[i] = &out->rels[i];
		if (rd_relation(r, &out->rels[i]) < 0)
			return -1;
	}
	r->ctx = NULL;
	if (rd_count(r, &out->nchanges, MIN_CHANGE, UINT32_MAX, "change count") < 0)
		return -1;
	out->changes = rd_alloc(r, out->nchanges, sizeof *out->changes);
	if (out->changes == NULL)
		return -1;
	r->ctx = "change";
	for (uint32_t i = 0; i < out->nchanges; i++) {
		r->ctx_no = i + 1;
		if (rd_change(r, out, &out->changes[i]) < 0)
			return -1;
	}
	r->ctx = NULL;
	return 0;
}

int ls_codec_decode(const void *buf, size_t len, struct ls_arena *arena,
		    struct ls_codec_record *out, struct ls_err *err)
{
	struct rd r = { .start = buf, .p = buf, .end = (const uint8_t *)buf + len,
			.arena = arena, .err = err };
	if (rd_header(&r, out) < 0)
		return -1;
	if (out->type == LS_CODEC_TXN && rd_txn_body(&r, out) < 0)
		return -1;
	if (out->type == LS_CODEC_MARKER) {
		char *prefix, *payload;
		if (rd_dup(&r, &prefix, NULL, true, "marker prefix") < 0 ||
		    rd_dup(&r, &payload, &out->payload_len, false, "marker payload") < 0)
			return -1;
		out->prefix = prefix;
		out->payload = payload;
	}
	if (left(&r) != 0)
		return rd_fail(&r, "%zu unexpected bytes after the record", left(&r));
	return 0;
}
