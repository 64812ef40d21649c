#include "connectors/postgres/pgoutput.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- relation cache --------------------------------------------------------
 * Open addressing with linear probing, keyed by relation id.  Entries are
 * never removed, only replaced, so a NULL rel marks an empty slot and probing
 * needs no tombstones. */

struct slot {
	uint32_t id;
	struct ls_relation *rel;
};

struct ls_pgo {
	unsigned proto;
	bool in_stream;
	size_t nrels;
	size_t cap;                /* power of two, or 0 */
	struct slot *slots;
};

static size_t slot_index(const struct ls_pgo *d, uint32_t id)
{
	/* Fibonacci hashing: relation OIDs are dense, so spread them. */
	uint32_t h = id * 2654435769u;
	size_t i = h & (d->cap - 1);
	while (d->slots[i].rel != NULL && d->slots[i].id != id)
		i = (i + 1) & (d->cap - 1);
	return i;
}

static struct slot *cache_find(const struct ls_pgo *d, uint32_t id)
{
	if (d->cap == 0)
		return NULL;
	struct slot *s = &d->slots[slot_index(d, id)];
	return s->rel ? s : NULL;
}

static int cache_grow(struct ls_pgo *d)
{
	size_t ncap = d->cap ? d->cap * 2 : 64;
	struct slot *old = d->slots;
	size_t ocap = d->cap;
	struct slot *ns = calloc(ncap, sizeof *ns);
	if (ns == NULL)
		return -1;
	d->slots = ns;
	d->cap = ncap;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].rel)
			d->slots[slot_index(d, old[i].id)] = old[i];
	free(old);
	return 0;
}

struct ls_pgo *ls_pgo_new(unsigned proto_version)
{
	if (proto_version < 1 || proto_version > 2)
		return NULL;
	struct ls_pgo *d = calloc(1, sizeof *d);
	if (d == NULL)
		return NULL;
	d->proto = proto_version;
	return d;
}

void ls_pgo_free(struct ls_pgo *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->cap; i++)
		ls_relation_free(d->slots[i].rel);
	free(d->slots);
	free(d);
}

const struct ls_relation *ls_pgo_relation(const struct ls_pgo *d, uint32_t relid)
{
	const struct slot *s = cache_find(d, relid);
	return s ? s->rel : NULL;
}

bool ls_pgo_in_stream(const struct ls_pgo *d)
{
	return d->in_stream;
}

int ls_pgo_set_type_name(struct ls_pgo *d, uint32_t relid, uint16_t col,
			 const char *type_name, struct ls_err *err)
{
	struct slot *s = cache_find(d, relid);
	if (s == NULL)
		return ls_err_set(err, false, "pgoutput: no cached relation %" PRIu32, relid);
	if (col >= s->rel->ncols)
		return ls_err_set(err, false, "pgoutput: relation %" PRIu32 " has no column %u",
				  relid, (unsigned)col);
	char *copy = strdup(type_name);
	if (copy == NULL)
		return ls_err_set(err, true, "pgoutput: out of memory");
	free(s->rel->cols[col].type_name);
	s->rel->cols[col].type_name = copy;
	return 0;
}

/* ---- reader ------------------------------------------------------------------
 * A cursor over one message.  Every read checks the remaining length first;
 * a failure records the offset of the field that did not fit. */

struct rd {
	const uint8_t *p;
	size_t len;
	size_t off;
	uint8_t type;
	struct ls_err *err;
};

static const char *type_name(uint8_t t)
{
	switch (t) {
	case 'B': return "Begin";
	case 'C': return "Commit";
	case 'O': return "Origin";
	case 'R': return "Relation";
	case 'Y': return "Type";
	case 'I': return "Insert";
	case 'U': return "Update";
	case 'D': return "Delete";
	case 'T': return "Truncate";
	case 'M': return "Message";
	case 'S': return "Stream Start";
	case 'E': return "Stream Stop";
	case 'c': return "Stream Commit";
	case 'A': return "Stream Abort";
	default: return "unknown";
	}
}

static int rd_fail(struct rd *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int rd_fail(struct rd *r, const char *fmt, ...)
{
	if (r->err == NULL)
		return -1;
	char what[LS_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	uint8_t t = r->type;
	return ls_err_set(r->err, false, "pgoutput %s message ('%c') at byte %zu: %s",
			  type_name(t), (t >= 0x20 && t < 0x7f) ? t : '?', r->off, what);
}

static int rd_need(struct rd *r, size_t n, const char *field)
{
	if (r->len - r->off < n)
		return rd_fail(r, "truncated: %s needs %zu bytes, %zu left",
			       field, n, r->len - r->off);
	return 0;
}

static int rd_u8(struct rd *r, uint8_t *v, const char *field)
{
	if (rd_need(r, 1, field))
		return -1;
	*v = r->p[r->off++];
	return 0;
}

static int rd_u16(struct rd *r, uint16_t *v, const char *field)
{
	if (rd_need(r, 2, field))
		return -1;
	const uint8_t *p = r->p + r->off;
	*v = (uint16_t)(p[0] << 8 | p[1]);
	r->off += 2;
	return 0;
}

static int rd_u32(struct rd *r, uint32_t *v, const char *field)
{
	if (rd_need(r, 4, field))
		return -1;
	const uint8_t *p = r->p + r->off;
	*v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	r->off += 4;
	return 0;
}

static int rd_u64(struct rd *r, uint64_t *v, const char *field)
{
	uint32_t hi, lo;
	if (rd_need(r, 8, field) || rd_u32(r, &hi, field) || rd_u32(r, &lo, field))
		return -1;
	*v = (uint64_t)hi << 32 | lo;
	return 0;
}

/* A PostgreSQL timestamp (microseconds since 2000-01-01) as Unix microseconds. */
static int rd_time(struct rd *r, int64_t *us, const char *field)
{
	uint64_t raw;
	if (rd_u64(r, &raw, field))
		return -1;
	int64_t pg = (int64_t)raw;
	if (pg > INT64_MAX - LS_PGO_EPOCH_OFFSET_US) {
		r->off -= 8;
		return rd_fail(r, "%s out of range", field);
	}
	*us = pg + LS_PGO_EPOCH_OFFSET_US;
	return 0;
}

/* A NUL-terminated string inside the message; *s points into the input. */
static int rd_str(struct rd *r, const char **s, size_t *n, const char *field)
{
	const uint8_t *start = r->p + r->off;
	const uint8_t *nul = memchr(start, 0, r->len - r->off);
	if (nul == NULL)
		return rd_fail(r, "%s has no terminating NUL", field);
	*s = (const char *)start;
	*n = (size_t)(nul - start);
	r->off += *n + 1;
	return 0;
}

static int rd_str_arena(struct rd *r, struct ls_arena *a, const char **out,
			const char *field)
{
	const char *s;
	size_t n;
	if (rd_str(r, &s, &n, field))
		return -1;
	*out = ls_arena_memdup(a, s, n);
	if (*out == NULL)
		return rd_fail(r, "out of memory");
	return 0;
}

static int rd_str_heap(struct rd *r, char **out, const char *field)
{
	const char *s;
	size_t n;
	if (rd_str(r, &s, &n, field))
		return -1;
	*out = strndup(s, n);
	if (*out == NULL)
		return rd_fail(r, "out of memory");
	return 0;
}

static int rd_end(struct rd *r)
{
	if (r->off != r->len)
		return rd_fail(r, "%zu unexpected trailing bytes", r->len - r->off);
	return 0;
}

/* The xid that protocol 2 puts in front of messages inside a stream block. */
static int rd_stream_xid(struct rd *r, const struct ls_pgo *d, uint32_t *xid)
{
	*xid = 0;
	if (!d->in_stream)
		return 0;
	return rd_u32(r, xid, "xid");
}

/* ---- messages ------------------------------------------------------------- */

static int dec_begin(struct rd *r, struct ls_pgo_event *ev)
{
	if (rd_u64(r, &ev->u.begin.final_lsn, "final LSN") ||
	    rd_time(r, &ev->u.begin.commit_time_us, "commit time") ||
	    rd_u32(r, &ev->xid, "xid"))
		return -1;
	return 0;
}

static int dec_commit(struct rd *r, struct ls_pgo_event *ev)
{
	if (rd_u8(r, &ev->u.commit.flags, "flags") ||
	    rd_u64(r, &ev->u.commit.commit_lsn, "commit LSN") ||
	    rd_u64(r, &ev->u.commit.end_lsn, "end LSN") ||
	    rd_time(r, &ev->u.commit.commit_time_us, "commit time"))
		return -1;
	return 0;
}

static int dec_origin(struct rd *r, struct ls_arena *a, struct ls_pgo_event *ev)
{
	if (rd_u64(r, &ev->u.origin.lsn, "origin LSN") ||
	    rd_str_arena(r, a, &ev->u.origin.name, "origin name"))
		return -1;
	return 0;
}

static int dec_type(struct rd *r, struct ls_pgo *d, struct ls_arena *a,
		    struct ls_pgo_event *ev)
{
	if (rd_stream_xid(r, d, &ev->xid) ||
	    rd_u32(r, &ev->u.type.oid, "type OID") ||
	    rd_str_arena(r, a, &ev->u.type.nspname, "type namespace") ||
	    rd_str_arena(r, a, &ev->u.type.name, "type name"))
		return -1;
	return 0;
}

/* Smallest encoding of one column in a Relation message: flags, an empty
 * name's NUL, type OID, typmod.  Bounds ncols before anything is allocated. */
#define REL_COL_MIN 10
/* PostgreSQL's MaxTupleAttributeNumber. */
#define MAX_COLS 1664

static int dec_relation_cols(struct rd *r, struct ls_relation *rel)
{
	for (uint16_t i = 0; i < rel->ncols; i++) {
		struct ls_column *c = &rel->cols[i];
		uint8_t flags;
		uint32_t typmod;
		if (rd_u8(r, &flags, "column flags") ||
		    rd_str_heap(r, &c->name, "column name") ||
		    rd_u32(r, &c->type_oid, "column type OID") ||
		    rd_u32(r, &typmod, "column typmod"))
			return -1;
		c->flags = (flags & 1) ? LS_COL_KEY : 0;
		c->typmod = (int32_t)typmod;
	}
	return 0;
}

static struct ls_relation *dec_relation_body(struct rd *r, uint32_t relid)
{
	const char *nsp, *name;
	size_t nsp_len, name_len;
	uint8_t replident;
	uint16_t ncols;
	if (rd_str(r, &nsp, &nsp_len, "namespace") ||
	    rd_str(r, &name, &name_len, "relation name") ||
	    rd_u8(r, &replident, "replica identity"))
		return NULL;
	if (replident != LS_REPLIDENT_DEFAULT && replident != LS_REPLIDENT_NOTHING &&
	    replident != LS_REPLIDENT_FULL && replident != LS_REPLIDENT_INDEX) {
		r->off--;
		rd_fail(r, "unknown replica identity 0x%02x", replident);
		return NULL;
	}
	if (rd_u16(r, &ncols, "column count"))
		return NULL;
	if (ncols > MAX_COLS || (size_t)ncols * REL_COL_MIN > r->len - r->off) {
		r->off -= 2;
		rd_fail(r, "column count %u does not fit the message", (unsigned)ncols);
		return NULL;
	}
	struct ls_relation *rel = ls_relation_new(ncols);
	if (rel == NULL) {
		rd_fail(r, "out of memory");
		return NULL;
	}
	rel->id = relid;
	rel->replident = replident;
	rel->schema = strndup(nsp, nsp_len);
	rel->name = strndup(name, name_len);
	if (rel->schema == NULL || rel->name == NULL) {
		ls_relation_free(rel);
		rd_fail(r, "out of memory");
		return NULL;
	}
	if (dec_relation_cols(r, rel) || rd_end(r)) {
		ls_relation_free(rel);
		return NULL;
	}
	return rel;
}

/* Same shape, ignoring type names (pgoutput never sends them). */
static bool rel_same(const struct ls_relation *a, const struct ls_relation *b)
{
	if (strcmp(a->schema, b->schema) || strcmp(a->name, b->name) ||
	    a->replident != b->replident || a->ncols != b->ncols)
		return false;
	for (uint16_t i = 0; i < a->ncols; i++) {
		const struct ls_column *x = &a->cols[i], *y = &b->cols[i];
		if (strcmp(x->name, y->name) || x->type_oid != y->type_oid ||
		    x->typmod != y->typmod || x->flags != y->flags)
			return false;
	}
	return true;
}

/* Decodes a Relation message and installs it in the cache.  The message is
 * parsed whole before the cache is touched, so a bad one changes nothing. */
static int dec_relation(struct rd *r, struct ls_pgo *d, struct ls_pgo_event *ev)
{
	uint32_t relid;
	if (rd_stream_xid(r, d, &ev->xid) || rd_u32(r, &relid, "relation id"))
		return -1;
	struct ls_relation *rel = dec_relation_body(r, relid);
	if (rel == NULL)
		return -1;
	struct slot *s = cache_find(d, relid);
	if (s && rel_same(s->rel, rel)) {
		ls_relation_free(rel);
		ev->u.relation.change = LS_PGO_REL_SAME;
	} else if (s) {
		ls_relation_free(s->rel);
		s->rel = rel;
		ev->u.relation.change = LS_PGO_REL_CHANGED;
	} else {
		if (d->nrels >= LS_PGO_MAX_RELATIONS) {
			ls_relation_free(rel);
			return rd_fail(r, "relation cache full (%u relations)",
				       LS_PGO_MAX_RELATIONS);
		}
		if ((d->nrels + 1) * 2 > d->cap && cache_grow(d)) {
			ls_relation_free(rel);
			return rd_fail(r, "out of memory");
		}
		s = &d->slots[slot_index(d, relid)];
		s->id = relid;
		s->rel = rel;
		d->nrels++;
		ev->u.relation.change = LS_PGO_REL_NEW;
	}
	ev->u.relation.rel = ev->rel = s->rel;
	return 0;
}

static int dec_value(struct rd *r, struct ls_arena *a, struct ls_value *v)
{
	uint8_t kind;
	if (rd_u8(r, &kind, "column kind"))
		return -1;
	v->kind = kind;
	v->len = 0;
	v->data = NULL;
	switch (kind) {
	case 'n':
		v->kind = LS_VAL_NULL;
		return 0;
	case 'u':
		v->kind = LS_VAL_UNCHANGED;
		return 0;
	case 't':
	case 'b':
		break;
	default:
		r->off--;
		return rd_fail(r, "unknown column kind 0x%02x", kind);
	}
	uint32_t len;
	if (rd_u32(r, &len, "column length"))
		return -1;
	if (len > r->len - r->off) {
		r->off -= 4;
		return rd_fail(r, "column length %" PRIu32 " exceeds the %zu bytes left",
			       len, r->len - r->off - 4);
	}
	v->kind = kind == 't' ? LS_VAL_TEXT : LS_VAL_BINARY;
	v->len = len;
	v->data = ls_arena_memdup(a, r->p + r->off, len);
	if (v->data == NULL)
		return rd_fail(r, "out of memory");
	r->off += len;
	return 0;
}

static int dec_tuple(struct rd *r, const struct ls_relation *rel,
		     struct ls_arena *a, struct ls_tuple *t)
{
	uint16_t n;
	if (rd_u16(r, &n, "tuple column count"))
		return -1;
	if (n != rel->ncols) {
		r->off -= 2;
		return rd_fail(r, "tuple has %u columns, relation %" PRIu32 " (%s.%s) has %u",
			       (unsigned)n, rel->id, rel->schema, rel->name,
			       (unsigned)rel->ncols);
	}
	/* Each column takes at least its kind byte. */
	if (n > r->len - r->off)
		return rd_fail(r, "tuple of %u columns does not fit the message", (unsigned)n);
	t->ncols = n;
	t->vals = NULL;
	if (n == 0)
		return 0;
	t->vals = ls_arena_alloc(a, (size_t)n * sizeof *t->vals);
	if (t->vals == NULL)
		return rd_fail(r, "out of memory");
	for (uint16_t i = 0; i < n; i++)
		if (dec_value(r, a, &t->vals[i]))
			return -1;
	return 0;
}

static int dec_relid(struct rd *r, struct ls_pgo *d, struct ls_pgo_event *ev)
{
	if (rd_stream_xid(r, d, &ev->xid) || rd_u32(r, &ev->change.relid, "relation id"))
		return -1;
	ev->rel = ls_pgo_relation(d, ev->change.relid);
	if (ev->rel == NULL) {
		r->off -= 4;
		return rd_fail(r, "unknown relation id %" PRIu32, ev->change.relid);
	}
	return 0;
}

static int rd_tuple_tag(struct rd *r, uint8_t *tag, const char *allowed)
{
	if (rd_u8(r, tag, "tuple tag"))
		return -1;
	if (*tag == 0 || strchr(allowed, *tag) == NULL) {
		r->off--;
		return rd_fail(r, "unexpected tuple tag 0x%02x (want one of %s)", *tag, allowed);
	}
	return 0;
}

static int dec_insert(struct rd *r, struct ls_pgo *d, struct ls_arena *a,
		      struct ls_pgo_event *ev)
{
	uint8_t tag;
	ev->change.op = LS_OP_INSERT;
	if (dec_relid(r, d, ev) || rd_tuple_tag(r, &tag, "N"))
		return -1;
	return dec_tuple(r, ev->rel, a, &ev->change.new_tup);
}

static int dec_update(struct rd *r, struct ls_pgo *d, struct ls_arena *a,
		      struct ls_pgo_event *ev)
{
	uint8_t tag;
	ev->change.op = LS_OP_UPDATE;
	if (dec_relid(r, d, ev) || rd_tuple_tag(r, &tag, "KON"))
		return -1;
	if (tag != 'N') {
		ev->change.old_kind = tag == 'K' ? LS_OLD_KEY : LS_OLD_FULL;
		if (dec_tuple(r, ev->rel, a, &ev->change.old_tup) ||
		    rd_tuple_tag(r, &tag, "N"))
			return -1;
	}
	return dec_tuple(r, ev->rel, a, &ev->change.new_tup);
}

static int dec_delete(struct rd *r, struct ls_pgo *d, struct ls_arena *a,
		      struct ls_pgo_event *ev)
{
	uint8_t tag;
	ev->change.op = LS_OP_DELETE;
	if (dec_relid(r, d, ev) || rd_tuple_tag(r, &tag, "KO"))
		return -1;
	ev->change.old_kind = tag == 'K' ? LS_OLD_KEY : LS_OLD_FULL;
	return dec_tuple(r, ev->rel, a, &ev->change.old_tup);
}

static int dec_truncate(struct rd *r, struct ls_pgo *d, struct ls_arena *a,
			struct ls_pgo_event *ev)
{
	uint32_t n;
	uint8_t opts;
	ev->change.op = LS_OP_TRUNCATE;
	if (rd_stream_xid(r, d, &ev->xid) || rd_u32(r, &n, "relation count") ||
	    rd_u8(r, &opts, "options"))
		return -1;
	if (n > (r->len - r->off) / 4) {
		r->off -= 5;
		return rd_fail(r, "relation count %" PRIu32 " does not fit the message", n);
	}
	ev->change.truncate_flags = ((opts & 1) ? LS_TRUNCATE_CASCADE : 0) |
				    ((opts & 2) ? LS_TRUNCATE_RESTART_IDENTITY : 0);
	ev->change.nrelids = n;
	ev->change.relids = n ? ls_arena_alloc(a, (size_t)n * sizeof(uint32_t)) : NULL;
	if (n && ev->change.relids == NULL)
		return rd_fail(r, "out of memory");
	for (uint32_t i = 0; i < n; i++) {
		if (rd_u32(r, &ev->change.relids[i], "relation id"))
			return -1;
		if (ls_pgo_relation(d, ev->change.relids[i]) == NULL) {
			r->off -= 4;
			return rd_fail(r, "unknown relation id %" PRIu32, ev->change.relids[i]);
		}
	}
	return 0;
}

static int dec_message(struct rd *r, struct ls_pgo *d, struct ls_arena *a,
		       struct ls_pgo_event *ev)
{
	uint8_t flags;
	uint32_t len;
	ev->change.op = LS_OP_MESSAGE;
	if (rd_stream_xid(r, d, &ev->xid) || rd_u8(r, &flags, "flags") ||
	    rd_u64(r, &ev->u.message.lsn, "LSN") ||
	    rd_str_arena(r, a, &ev->change.msg_prefix, "prefix") ||
	    rd_u32(r, &len, "content length"))
		return -1;
	if (len > r->len - r->off) {
		r->off -= 4;
		return rd_fail(r, "content length %" PRIu32 " exceeds the %zu bytes left",
			       len, r->len - r->off - 4);
	}
	ev->u.message.transactional = flags & 1;
	ev->change.msg_len = len;
	ev->change.msg_data = ls_arena_memdup(a, r->p + r->off, len);
	if (ev->change.msg_data == NULL)
		return rd_fail(r, "out of memory");
	r->off += len;
	return 0;
}

static int dec_stream_start(struct rd *r, struct ls_pgo *d, struct ls_pgo_event *ev)
{
	uint8_t first;
	if (rd_u32(r, &ev->xid, "xid") || rd_u8(r, &first, "first segment") || rd_end(r))
		return -1;
	ev->u.stream_start.first_segment = first == 1;
	d->in_stream = true;
	return 0;
}

static int dec_stream_abort(struct rd *r, struct ls_pgo_event *ev)
{
	return rd_u32(r, &ev->xid, "xid") ||
	       rd_u32(r, &ev->u.stream_abort.subxid, "subtransaction xid") ? -1 : 0;
}

/* Where each message type may appear: inside a stream block only the
 * transaction's contents (and an Origin) can come; the stream messages exist
 * from protocol 2 on. */
static bool one_of(uint8_t c, const char *set)
{
	return c != 0 && strchr(set, c) != NULL;
}

static int check_state(struct rd *r, const struct ls_pgo *d)
{
	if (one_of(r->type, "SEcA") && d->proto < 2)
		return rd_fail(r, "streaming message in protocol version %u", d->proto);
	if (d->in_stream && one_of(r->type, "BCScA"))
		return rd_fail(r, "not allowed inside a stream block");
	if (!d->in_stream && r->type == 'E')
		return rd_fail(r, "no stream block is open");
	return 0;
}

static int dispatch(struct rd *r, struct ls_pgo *d, struct ls_arena *a,
		    struct ls_pgo_event *ev)
{
	switch (r->type) {
	case 'B': return dec_begin(r, ev);
	case 'C': return dec_commit(r, ev);
	case 'O': return dec_origin(r, a, ev);
	case 'R': return dec_relation(r, d, ev);
	case 'Y': return dec_type(r, d, a, ev);
	case 'I': return dec_insert(r, d, a, ev);
	case 'U': return dec_update(r, d, a, ev);
	case 'D': return dec_delete(r, d, a, ev);
	case 'T': return dec_truncate(r, d, a, ev);
	case 'M': return dec_message(r, d, a, ev);
	case 'S': return dec_stream_start(r, d, ev);
	case 'E': d->in_stream = false; return 0;
	case 'c': return dec_commit(r, ev);
	case 'A': return dec_stream_abort(r, ev);
	default:
		r->off = 0;
		return rd_fail(r, "unknown message type 0x%02x", r->type);
	}
}

int ls_pgo_decode(struct ls_pgo *d, const void *msg, size_t len,
		  struct ls_arena *arena, struct ls_pgo_event *ev,
		  struct ls_err *err)
{
	memset(ev, 0, sizeof *ev);
	struct rd r = { .p = msg, .len = len, .off = 0, .type = 0, .err = err };
	if (rd_u8(&r, &r.type, "message type"))
		return -1;
	ev->kind = r.type;
	if (check_state(&r, d))
		return -1;
	/* Stream Commit's xid precedes the commit fields. */
	if (r.type == 'c' && rd_u32(&r, &ev->xid, "xid"))
		return -1;
	bool was_in_stream = d->in_stream;
	/* Relation and Stream Start validate their own end before changing state. */
	if (dispatch(&r, d, arena, ev) || (r.type != 'R' && rd_end(&r))) {
		d->in_stream = was_in_stream;
		return -1;
	}
	return 0;
}

/* ---- printing ---------------------------------------------------------------- */

#define PRINT_VALUE_MAX 64

static uint64_t fnv1a(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

static void print_bytes(FILE *f, const char *data, size_t len)
{
	size_t n = len > PRINT_VALUE_MAX ? PRINT_VALUE_MAX : len;
	fputc('\'', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)data[i];
		if (c == '\'' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c >= 0x20 && c < 0x7f)
			fputc(c, f);
		else
			fprintf(f, "\\x%02x", c);
	}
	fputc('\'', f);
	if (n < len)
		fprintf(f, "...(len=%zu fnv=%016" PRIx64 ")", len, fnv1a(data, len));
}

static void print_tuple(FILE *f, const struct ls_relation *rel, const struct ls_tuple *t)
{
	fputc('(', f);
	for (uint16_t i = 0; i < t->ncols; i++) {
		const struct ls_value *v = &t->vals[i];
		fprintf(f, "%s%s=", i ? ", " : "", rel->cols[i].name);
		if (v->kind == LS_VAL_NULL || v->kind == LS_VAL_UNCHANGED) {
			fputc(v->kind, f);
			continue;
		}
		fputc(v->kind, f);
		print_bytes(f, v->data, v->len);
	}
	fputc(')', f);
}

static void print_time(FILE *f, const char *label, int64_t us)
{
	time_t secs = (time_t)(us / 1000000);
	int64_t frac = us % 1000000;
	if (frac < 0) {
		frac += 1000000;
		secs--;
	}
	struct tm tm;
	char buf[64];
	if (gmtime_r(&secs, &tm) == NULL ||
	    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		fprintf(f, " %s=%" PRId64 "us", label, us);
	else
		fprintf(f, " %s=%s.%06" PRId64 "Z", label, buf, frac);
}

static void print_lsn(FILE *f, const char *label, uint64_t lsn)
{
	fprintf(f, " %s=%" PRIX32 "/%" PRIX32, label, (uint32_t)(lsn >> 32), (uint32_t)lsn);
}

static void print_relname(FILE *f, const struct ls_pgo *d, uint32_t relid)
{
	const struct ls_relation *rel = ls_pgo_relation(d, relid);
	if (rel)
		fprintf(f, "%s.%s", rel->schema, rel->name);
	else
		fprintf(f, "?%" PRIu32, relid);
}

static void print_relation(FILE *f, const struct ls_pgo_event *ev)
{
	static const char *const change[] = { "?", "new", "same", "changed" };
	const struct ls_relation *rel = ev->u.relation.rel;
	uint8_t c = ev->u.relation.change <= 3 ? ev->u.relation.change : 0;
	fprintf(f, "RELATION %s %" PRIu32 " %s.%s replident=%c cols=(", change[c],
		rel->id, rel->schema, rel->name, rel->replident);
	for (uint16_t i = 0; i < rel->ncols; i++) {
		const struct ls_column *col = &rel->cols[i];
		fprintf(f, "%s%s oid=%" PRIu32 " typmod=%" PRId32 "%s", i ? ", " : "",
			col->name, col->type_oid, col->typmod,
			(col->flags & LS_COL_KEY) ? " key" : "");
	}
	fputc(')', f);
}

static void print_change(FILE *f, const struct ls_pgo_event *ev)
{
	const struct ls_change *ch = &ev->change;
	static const char *const names[] = { ['I'] = "INSERT", ['U'] = "UPDATE", ['D'] = "DELETE" };
	fprintf(f, "%s %s.%s", names[ch->op], ev->rel->schema, ev->rel->name);
	if (ch->old_kind) {
		fprintf(f, " old[%c]=", ch->old_kind);
		print_tuple(f, ev->rel, &ch->old_tup);
	}
	if (ch->op != LS_OP_DELETE) {
		fputs(" new=", f);
		print_tuple(f, ev->rel, &ch->new_tup);
	}
}

static void print_truncate(FILE *f, const struct ls_pgo *d, const struct ls_pgo_event *ev)
{
	const struct ls_change *ch = &ev->change;
	fprintf(f, "TRUNCATE%s%s (", (ch->truncate_flags & LS_TRUNCATE_CASCADE) ? " cascade" : "",
		(ch->truncate_flags & LS_TRUNCATE_RESTART_IDENTITY) ? " restart_identity" : "");
	for (uint32_t i = 0; i < ch->nrelids; i++) {
		if (i)
			fputs(", ", f);
		print_relname(f, d, ch->relids[i]);
	}
	fputc(')', f);
}

int ls_pgo_event_print(FILE *f, const struct ls_pgo *d, const struct ls_pgo_event *ev)
{
	if (ev->xid && !one_of(ev->kind, "BScA"))
		fprintf(f, "[xid=%" PRIu32 "] ", ev->xid);
	switch (ev->kind) {
	case 'B':
		fprintf(f, "BEGIN xid=%" PRIu32, ev->xid);
		print_lsn(f, "final_lsn", ev->u.begin.final_lsn);
		print_time(f, "time", ev->u.begin.commit_time_us);
		break;
	case 'C':
	case 'c':
		if (ev->kind == 'c')
			fprintf(f, "STREAM_COMMIT xid=%" PRIu32 " ", ev->xid);
		else
			fputs("COMMIT ", f);
		fprintf(f, "flags=%u", ev->u.commit.flags);
		print_lsn(f, "commit_lsn", ev->u.commit.commit_lsn);
		print_lsn(f, "end_lsn", ev->u.commit.end_lsn);
		print_time(f, "time", ev->u.commit.commit_time_us);
		break;
	case 'O':
		fputs("ORIGIN", f);
		print_lsn(f, "lsn", ev->u.origin.lsn);
		fprintf(f, " name=");
		print_bytes(f, ev->u.origin.name, strlen(ev->u.origin.name));
		break;
	case 'R':
		print_relation(f, ev);
		break;
	case 'Y':
		fprintf(f, "TYPE oid=%" PRIu32 " %s.%s", ev->u.type.oid,
			ev->u.type.nspname, ev->u.type.name);
		break;
	case 'I':
	case 'U':
	case 'D':
		print_change(f, ev);
		break;
	case 'T':
		print_truncate(f, d, ev);
		break;
	case 'M':
		fprintf(f, "MESSAGE transactional=%d", ev->u.message.transactional);
		print_lsn(f, "lsn", ev->u.message.lsn);
		fputs(" prefix=", f);
		print_bytes(f, ev->change.msg_prefix, strlen(ev->change.msg_prefix));
		fputs(" content=", f);
		print_bytes(f, ev->change.msg_data, ev->change.msg_len);
		break;
	case 'S':
		fprintf(f, "STREAM_START xid=%" PRIu32 " first=%d", ev->xid,
			ev->u.stream_start.first_segment);
		break;
	case 'E':
		fputs("STREAM_STOP", f);
		break;
	case 'A':
		fprintf(f, "STREAM_ABORT xid=%" PRIu32 " subxid=%" PRIu32, ev->xid,
			ev->u.stream_abort.subxid);
		break;
	default:
		fprintf(f, "UNKNOWN 0x%02x", ev->kind);
		break;
	}
	fputc('\n', f);
	return ferror(f) ? -1 : 0;
}
