/* Unit tests for lib/codec: round trips, chunking, and hostile input.
 *
 * The sample records are also the fuzzer's seeds and golden files:
 * the .bin files in tests/data/fuzz/fuzz_codec/.  codec_matches_golden_records fails when
 * the encoding changes; rewrite them with LS_UPDATE_GOLDEN=1 (run from the
 * repository root) only together with a format version bump (or, like the
 * column fill, while no record of this version exists outside tests).
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

#define GOLDEN_DIR "tests/data/fuzz/fuzz_codec"

/* ---- fixtures ---- */

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	ck_assert_ptr_nonnull(d);
	return d;
}

/* items(id int4 key, name text, price numeric(10,2), photo bytea) */
static struct ls_relation *rel_items(uint32_t id, int ncols)
{
	static const struct { const char *name, *type; uint32_t oid; int32_t typmod; uint8_t flags; }
	cols[] = {
		{ "id", "integer", 23, -1, LS_COL_KEY },
		{ "name", "text", 25, -1, 0 },
		{ "price", "numeric(10,2)", 1700, (10 << 16 | 2) + 4, 0 },
		{ "photo", "bytea", 17, -1, 0 },
		{ "added", "integer", 4294967295u, INT32_MIN, 0x80 },
	};
	struct ls_relation *r = ls_relation_new((uint16_t)ncols);
	ck_assert_ptr_nonnull(r);
	r->id = id;
	r->schema = xstrdup("public");
	r->name = xstrdup("items");
	r->replident = LS_REPLIDENT_FULL;
	for (int i = 0; i < ncols; i++) {
		r->cols[i].name = xstrdup(cols[i].name);
		r->cols[i].type_name = xstrdup(cols[i].type);
		r->cols[i].type_oid = cols[i].oid;
		r->cols[i].typmod = cols[i].typmod;
		r->cols[i].flags = cols[i].flags;
	}
	return r;
}

static struct ls_relation *rel_empty(uint32_t id)
{
	struct ls_relation *r = ls_relation_new(0);
	ck_assert_ptr_nonnull(r);
	r->id = id;
	r->schema = xstrdup("audit");
	r->name = xstrdup("no columns");
	r->replident = LS_REPLIDENT_NOTHING;
	return r;
}

#define TXT(s) { .kind = LS_VAL_TEXT, .len = sizeof(s) - 1, .data = (s) }
#define BIN(s) { .kind = LS_VAL_BINARY, .len = sizeof(s) - 1, .data = (s) }
#define NUL { .kind = LS_VAL_NULL }
#define UNCH { .kind = LS_VAL_UNCHANGED }

static struct ls_value v_ins[4] = { TXT("1"), TXT("widget"), TXT("9.99"), BIN("\x00\xff\x01") };
static struct ls_value v_upd_old[4] = { TXT("1"), NUL, NUL, NUL };
static struct ls_value v_upd_new[4] = { TXT("1"), TXT("gadget"), TXT(""), UNCH };
static struct ls_value v_upd2_new[4] = { TXT("2"), NUL, TXT("1e3"), UNCH };
static struct ls_value v_del_key[4] = { TXT("1"), NUL, NUL, NUL };
static struct ls_value v_del_full[4] = { TXT("2"), TXT("a\0b"), TXT("0.00"), BIN("") };
static struct ls_value v_ins5[5] = { TXT("3"), TXT("new col"), NUL, NUL, TXT("42") };
static uint32_t trunc_ids[2] = { 16384, 16999 };

/* Every change kind, with the relations it references. */
struct sample {
	struct ls_change c;
	const struct ls_relation *rels[2];
	uint32_t nrels;
};

static struct ls_relation *R1, *R1b, *R2;
static struct sample S[9];
static int NS;

static void samples_setup(void)
{
	R1 = rel_items(16384, 4);
	R1b = rel_items(16384, 5);          /* items after ALTER TABLE ADD COLUMN */
	R1b->cols[4].fill = xstrdup("7");   /* ... DEFAULT 7 */
	R2 = rel_empty(16999);
	struct sample s[] = {
		{ .c = { .op = LS_OP_INSERT, .relid = 16384, .new_tup = { 4, v_ins } }, { R1 }, 1 },
		{ .c = { .op = LS_OP_UPDATE, .relid = 16384, .old_kind = LS_OLD_KEY,
			 .old_tup = { 4, v_upd_old }, .new_tup = { 4, v_upd_new } }, { R1 }, 1 },
		{ .c = { .op = LS_OP_UPDATE, .relid = 16384, .new_tup = { 4, v_upd2_new } }, { R1 }, 1 },
		{ .c = { .op = LS_OP_DELETE, .relid = 16384, .old_kind = LS_OLD_KEY,
			 .old_tup = { 4, v_del_key } }, { R1 }, 1 },
		{ .c = { .op = LS_OP_DELETE, .relid = 16384, .old_kind = LS_OLD_FULL,
			 .old_tup = { 4, v_del_full } }, { R1 }, 1 },
		{ .c = { .op = LS_OP_INSERT, .relid = 16999 }, { R2 }, 1 },
		{ .c = { .op = LS_OP_TRUNCATE, .truncate_flags = LS_TRUNCATE_CASCADE |
			 LS_TRUNCATE_RESTART_IDENTITY, .nrelids = 2, .relids = trunc_ids },
		  { R1, R2 }, 2 },
		{ .c = { .op = LS_OP_MESSAGE, .msg_prefix = "lockstep.drift",
			 .msg_len = 5, .msg_data = "a\0b\xff!" } },
		{ .c = { .op = LS_OP_INSERT, .relid = 16384, .new_tup = { 5, v_ins5 } }, { R1b }, 1 },
	};
	NS = (int)(sizeof s / sizeof s[0]);
	memcpy(S, s, sizeof s);
}

static void samples_teardown(void)
{
	ls_relation_free(R1);
	ls_relation_free(R1b);
	ls_relation_free(R2);
}

static struct ls_pos mkpos(uint64_t seq, const char *text)
{
	struct ls_pos p;
	memset(&p, 0, sizeof p);
	p.seq = seq;
	snprintf(p.text, sizeof p.text, "%s", text);
	return p;
}

static void add_ok(struct ls_codec_writer *w, const struct sample *s)
{
	struct ls_err err = { 0 };
	ck_assert_msg(ls_codec_writer_add(w, &s->c, s->rels, s->nrels, &err) == 0, "%s", err.msg);
}

/* Encodes all samples as one single-chunk transaction into out (malloc'd). */
static uint8_t *sample_txn(size_t *len)
{
	struct ls_codec_writer *w = ls_codec_writer_new(0);
	struct ls_pos commit = mkpos(0x16B374D848ULL, "16/B374D848");
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_codec_writer_begin(w, 7421, &commit, 1700000000123456LL, &err), 0);
	for (int i = 0; i < NS; i++)
		add_ok(w, &S[i]);
	const uint8_t *rec;
	ck_assert_int_eq(ls_codec_writer_flush(w, true, &rec, len, &err), 0);
	uint8_t *copy = malloc(*len);
	memcpy(copy, rec, *len);
	ls_codec_writer_free(w);
	return copy;
}

/* ---- comparisons ---- */

static void assert_rel_eq(const struct ls_relation *a, const struct ls_relation *b)
{
	ck_assert_uint_eq(a->id, b->id);
	ck_assert_str_eq(a->schema, b->schema);
	ck_assert_str_eq(a->name, b->name);
	ck_assert_uint_eq(a->replident, b->replident);
	ck_assert_uint_eq(a->ncols, b->ncols);
	for (int i = 0; i < a->ncols; i++) {
		ck_assert_str_eq(a->cols[i].name, b->cols[i].name);
		ck_assert_str_eq(a->cols[i].type_name, b->cols[i].type_name);
		ck_assert_uint_eq(a->cols[i].type_oid, b->cols[i].type_oid);
		ck_assert_int_eq(a->cols[i].typmod, b->cols[i].typmod);
		ck_assert_uint_eq(a->cols[i].flags, b->cols[i].flags);
		if (a->cols[i].fill == NULL)
			ck_assert_ptr_null(b->cols[i].fill);
		else
			ck_assert_str_eq(a->cols[i].fill, b->cols[i].fill);
	}
}

static void assert_tuple_eq(const struct ls_tuple *a, const struct ls_tuple *b)
{
	ck_assert_uint_eq(a->ncols, b->ncols);
	for (int i = 0; i < a->ncols; i++) {
		ck_assert_uint_eq(a->vals[i].kind, b->vals[i].kind);
		if (a->vals[i].kind != LS_VAL_TEXT && a->vals[i].kind != LS_VAL_BINARY)
			continue;
		ck_assert_uint_eq(a->vals[i].len, b->vals[i].len);
		ck_assert_mem_eq(a->vals[i].data, b->vals[i].data, a->vals[i].len);
		ck_assert_int_eq(b->vals[i].data[b->vals[i].len], '\0');
	}
}

/* want: the change as given to the writer; got: as decoded. */
static void assert_change_eq(const struct sample *want, const struct ls_codec_change *got)
{
	const struct ls_change *a = &want->c, *b = &got->c;
	ck_assert_uint_eq(a->op, b->op);
	ck_assert_uint_eq(got->nrels, want->nrels);
	for (uint32_t i = 0; i < want->nrels; i++)
		assert_rel_eq(want->rels[i], got->rels[i]);
	switch (a->op) {
	case LS_OP_INSERT:
		ck_assert_uint_eq(b->relid, a->relid);
		assert_tuple_eq(&a->new_tup, &b->new_tup);
		break;
	case LS_OP_UPDATE:
	case LS_OP_DELETE:
		ck_assert_uint_eq(b->relid, a->relid);
		ck_assert_uint_eq(a->old_kind, b->old_kind);
		if (a->old_kind != LS_OLD_NONE)
			assert_tuple_eq(&a->old_tup, &b->old_tup);
		else
			ck_assert_uint_eq(b->old_tup.ncols, 0);
		if (a->op == LS_OP_UPDATE)
			assert_tuple_eq(&a->new_tup, &b->new_tup);
		break;
	case LS_OP_TRUNCATE:
		ck_assert_uint_eq(a->truncate_flags, b->truncate_flags);
		ck_assert_uint_eq(a->nrelids, b->nrelids);
		ck_assert_mem_eq(a->relids, b->relids, a->nrelids * sizeof a->relids[0]);
		break;
	case LS_OP_MESSAGE:
		ck_assert_str_eq(a->msg_prefix, b->msg_prefix);
		ck_assert_uint_eq(a->msg_len, b->msg_len);
		ck_assert_mem_eq(a->msg_data, b->msg_data, a->msg_len);
		break;
	}
}

/* Reads every byte a decoded record points to, so ASan sees any bad pointer. */
static unsigned touch(const struct ls_codec_record *r)
{
	unsigned sum = (unsigned)strlen(r->pos.text);
	for (uint32_t i = 0; i < r->nrels; i++) {
		const struct ls_relation *rel = &r->rels[i];
		sum += (unsigned)strlen(rel->schema) + (unsigned)strlen(rel->name);
		for (int c = 0; c < rel->ncols; c++)
			sum += (unsigned)strlen(rel->cols[c].name) + (unsigned)strlen(rel->cols[c].type_name) +
			       (rel->cols[c].fill ? (unsigned)strlen(rel->cols[c].fill) : 0);
	}
	for (uint32_t i = 0; i < r->nchanges; i++) {
		const struct ls_codec_change *cc = &r->changes[i];
		for (uint32_t k = 0; k < cc->nrels; k++)
			sum += cc->rels[k]->ncols;
		const struct ls_tuple *t[2] = { &cc->c.old_tup, &cc->c.new_tup };
		for (int k = 0; k < 2; k++)
			for (int v = 0; v < t[k]->ncols; v++)
				for (uint32_t j = 0; j < t[k]->vals[v].len; j++)
					sum += (uint8_t)t[k]->vals[v].data[j];
		for (uint32_t k = 0; k < cc->c.nrelids; k++)
			sum += cc->c.relids[k];
		if (cc->c.msg_prefix)
			sum += (unsigned)strlen(cc->c.msg_prefix);
		for (uint32_t j = 0; j < cc->c.msg_len; j++)
			sum += (uint8_t)cc->c.msg_data[j];
	}
	if (r->prefix)
		sum += (unsigned)strlen(r->prefix);
	for (uint32_t j = 0; j < r->payload_len; j++)
		sum += (uint8_t)r->payload[j];
	return sum;
}

/* Decodes from an exact-size heap copy so ASan catches any overread. */
static int decode_copy(const uint8_t *rec, size_t len, struct ls_arena *a,
		       struct ls_codec_record *out, struct ls_err *err)
{
	uint8_t *copy = malloc(len ? len : 1);
	if (len)
		memcpy(copy, rec, len);
	int rc = ls_codec_decode(copy, len, a, out, err);
	free(copy);
	return rc;
}

/* ---- round trips ---- */

START_TEST(codec_roundtrips_every_change_kind)
{
	size_t len;
	uint8_t *rec = sample_txn(&len);
	struct ls_arena a;
	ls_arena_init(&a);
	struct ls_codec_record r;
	struct ls_err err = { 0 };
	ck_assert_msg(decode_copy(rec, len, &a, &r, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(r.type, LS_CODEC_TXN);
	ck_assert_uint_eq(r.flags, LS_CODEC_FIRST | LS_CODEC_LAST);
	ck_assert_uint_eq(r.chunk, 0);
	ck_assert_uint_eq(r.xid, 7421);
	ck_assert_uint_eq(r.pos.seq, 0x16B374D848ULL);
	ck_assert_str_eq(r.pos.text, "16/B374D848");
	ck_assert_int_eq(r.time_us, 1700000000123456LL);
	ck_assert_int_eq((int)r.nchanges, NS);
	for (int i = 0; i < NS; i++)
		assert_change_eq(&S[i], &r.changes[i]);
	ls_arena_free(&a);
	free(rec);
}
END_TEST

START_TEST(codec_relations_roundtrip_once_per_definition)
{
	size_t len;
	uint8_t *rec = sample_txn(&len);
	struct ls_arena a;
	ls_arena_init(&a);
	struct ls_codec_record r;
	struct ls_err err = { 0 };
	ck_assert_msg(ls_codec_decode(rec, len, &a, &r, &err) == 0, "%s", err.msg);
	/* items (4 cols), the no-column table, items again after ALTER (5 cols) */
	ck_assert_uint_eq(r.nrels, 3);
	assert_rel_eq(R1, &r.rels[0]);
	assert_rel_eq(R2, &r.rels[1]);
	assert_rel_eq(R1b, &r.rels[2]);
	/* changes point into the record's table, each at its own definition */
	ck_assert_ptr_eq(r.changes[0].rels[0], &r.rels[0]);
	ck_assert_ptr_eq(r.changes[8].rels[0], &r.rels[2]);
	ck_assert_ptr_eq(r.changes[6].rels[1], &r.rels[1]);
	/* a decoded relation can be kept beyond the arena */
	struct ls_relation *kept = ls_relation_dup(&r.rels[2]);
	ls_arena_free(&a);
	assert_rel_eq(R1b, kept);
	ck_assert_uint_eq(ls_relation_nkeys(kept), 1);
	/* the fill is part of the definition */
	ck_assert(ls_relation_equal(R1b, kept));
	free(kept->cols[4].fill);
	kept->cols[4].fill = NULL;
	ck_assert(!ls_relation_equal(R1b, kept));
	kept->cols[4].fill = xstrdup("8");
	ck_assert(!ls_relation_equal(R1b, kept));
	ls_relation_free(kept);
	free(rec);
}
END_TEST

START_TEST(codec_position_and_marker_roundtrip)
{
	struct ls_codec_buf b;
	ls_codec_buf_init(&b);
	struct ls_err err = { 0 };
	struct ls_pos pos = mkpos(42, "0-1-100,1-2-5");
	ck_assert_int_eq(ls_codec_encode_position(&b, &pos, -5, &err), 0);
	struct ls_arena a;
	ls_arena_init(&a);
	struct ls_codec_record r;
	ck_assert_msg(decode_copy(b.data, b.len, &a, &r, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(r.type, LS_CODEC_POSITION);
	ck_assert_uint_eq(r.pos.seq, 42);
	ck_assert_str_eq(r.pos.text, "0-1-100,1-2-5");
	ck_assert_int_eq(r.time_us, -5);
	ck_assert_uint_eq(r.nchanges, 0);

	pos = mkpos(UINT64_MAX, "binlog.000003:4521");
	ck_assert_int_eq(ls_codec_encode_marker(&b, &pos, INT64_MAX, "drift", "\x01\x00\x02", 3, &err), 0);
	ck_assert_msg(decode_copy(b.data, b.len, &a, &r, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(r.type, LS_CODEC_MARKER);
	ck_assert_uint_eq(r.pos.seq, UINT64_MAX);
	ck_assert_str_eq(r.pos.text, "binlog.000003:4521");
	ck_assert_int_eq(r.time_us, INT64_MAX);
	ck_assert_str_eq(r.prefix, "drift");
	ck_assert_uint_eq(r.payload_len, 3);
	ck_assert_mem_eq(r.payload, "\x01\x00\x02", 3);

	ck_assert_int_eq(ls_codec_encode_marker(&b, &pos, INT64_MIN, "", NULL, 0, &err), 0);
	ck_assert_msg(decode_copy(b.data, b.len, &a, &r, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(r.time_us, INT64_MIN);
	ck_assert_uint_eq(r.payload_len, 0);
	ls_arena_free(&a);
	ls_codec_buf_free(&b);
}
END_TEST

START_TEST(codec_header_decodes_without_arena)
{
	size_t len;
	uint8_t *rec = sample_txn(&len);
	struct ls_codec_record r;
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_codec_decode_header(rec, len, &r, &err), 0);
	ck_assert_uint_eq(r.type, LS_CODEC_TXN);
	ck_assert_uint_eq(r.pos.seq, 0x16B374D848ULL);
	ck_assert_uint_eq(r.xid, 7421);
	ck_assert_ptr_null(r.changes);
	/* a short prefix (the header) is enough; anything shorter fails */
	size_t n = 0;
	while (ls_codec_decode_header(rec, n, &r, &err) < 0)
		n++;
	ck_assert_uint_lt(n, 64);
	ck_assert_uint_lt(n, len / 4);
	ck_assert_str_eq(r.pos.text, "16/B374D848");
	ck_assert_int_eq(r.time_us, 1700000000123456LL);
	free(rec);
}
END_TEST

/* ---- chunking ---- */

#define BIG_N 100000

/* One transaction of BIG_N inserts through a writer with the given limit;
 * every record is decoded on its own (as a consumer starting there would)
 * and the changes must come back complete and in order. */
static void big_txn(size_t limit, bool commit_at_end)
{
	struct ls_codec_writer *w = ls_codec_writer_new(limit);
	struct ls_pos commit = mkpos(999, "0/3E7");
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_codec_writer_begin(w, 5, commit_at_end ? NULL : &commit, 77, &err), 0);
	struct ls_arena a;
	ls_arena_init(&a);
	uint32_t next = 0, chunks = 0;
	const struct ls_relation *rels[1] = { R1 };
	char num[16], name[32];
	for (uint32_t i = 0; i <= BIG_N; i++) {
		bool last = i == BIG_N;
		if (!last) {
			int nl = snprintf(num, sizeof num, "%" PRIu32, i);
			int ml = snprintf(name, sizeof name, "item number %" PRIu32, i * 7);
			struct ls_value v[4] = { { LS_VAL_TEXT, (uint32_t)nl, num },
						 { LS_VAL_TEXT, (uint32_t)ml, name }, NUL, UNCH };
			struct ls_change c = { .op = LS_OP_INSERT, .relid = R1->id,
					       .new_tup = { 4, v } };
			ck_assert_int_eq(ls_codec_writer_add(w, &c, rels, 1, &err), 0);
			if (!ls_codec_writer_full(w))
				continue;
			/* bounded: at most the limit plus the last change */
			ck_assert_uint_lt(ls_codec_writer_size(w), limit + 64);
		}
		if (last && commit_at_end)
			ck_assert_int_eq(ls_codec_writer_set_commit(w, &commit, 77, &err), 0);
		const uint8_t *rec;
		size_t len;
		ck_assert_msg(ls_codec_writer_flush(w, last, &rec, &len, &err) == 0, "%s", err.msg);
		ck_assert_uint_le(len, limit + 64);
		struct ls_codec_record r;
		ls_arena_reset(&a);
		ck_assert_msg(ls_codec_decode(rec, len, &a, &r, &err) == 0, "%s", err.msg);
		ck_assert_uint_eq(r.chunk, chunks);
		ck_assert_uint_eq(r.xid, 5);
		ck_assert_uint_eq(!!(r.flags & LS_CODEC_FIRST), chunks == 0);
		ck_assert_uint_eq(!!(r.flags & LS_CODEC_LAST), last);
		bool known = !commit_at_end || last;
		ck_assert_uint_eq(!!(r.flags & LS_CODEC_NO_COMMIT), !known);
		ck_assert_uint_eq(r.pos.seq, known ? 999 : 0);
		ck_assert_str_eq(r.pos.text, known ? "0/3E7" : "");
		ck_assert_uint_eq(r.nrels, r.nchanges ? 1 : 0);
		for (uint32_t k = 0; k < r.nchanges; k++, next++) {
			snprintf(num, sizeof num, "%" PRIu32, next);
			ck_assert_str_eq(r.changes[k].c.new_tup.vals[0].data, num);
			ck_assert_uint_eq(r.changes[k].c.new_tup.vals[3].kind, LS_VAL_UNCHANGED);
		}
		chunks++;
	}
	ck_assert_uint_eq(next, BIG_N);
	ck_assert_uint_gt(chunks, 3);
	ls_arena_free(&a);
	ls_codec_writer_free(w);
}

START_TEST(codec_splits_large_txn_into_chunks_in_order)
{
	big_txn(LS_CODEC_DEFAULT_CHUNK, false);
}
END_TEST

START_TEST(codec_commit_position_may_come_at_the_end)
{
	big_txn(64 * 1024, true);
}
END_TEST

/* Pieces of a streamed transaction: the subtransaction and the running
 * chunk index survive, FIRST marks only chunk 0, only the commit piece
 * carries a position; a STREAM ABORT names transaction and subtransaction. */
START_TEST(codec_stream_pieces_and_abort_roundtrip)
{
	struct ls_codec_writer *w = ls_codec_writer_new(0);
	struct ls_err err = { 0 };
	struct ls_arena a;
	ls_arena_init(&a);
	const struct ls_relation *rels[1] = { R1 };
	struct ls_value v[4] = { { LS_VAL_TEXT, 1, "7" }, { LS_VAL_TEXT, 1, "x" }, NUL, UNCH };
	struct ls_change c = { .op = LS_OP_INSERT, .relid = R1->id, .new_tup = { 4, v } };
	const uint64_t subs[3] = { 900, 901, 900 };
	uint32_t chunk = 0;
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(ls_codec_writer_begin_stream(w, 900, subs[i], chunk, &err), 0);
		ck_assert_int_eq(ls_codec_writer_add(w, &c, rels, 1, &err), 0);
		const uint8_t *rec;
		size_t len;
		ck_assert_msg(ls_codec_writer_flush(w, false, &rec, &len, &err) == 0, "%s", err.msg);
		chunk = ls_codec_writer_chunk(w);
		struct ls_codec_record r;
		ls_arena_reset(&a);
		ck_assert_msg(ls_codec_decode(rec, len, &a, &r, &err) == 0, "%s", err.msg);
		ck_assert_uint_eq(r.flags, (i == 0 ? LS_CODEC_FIRST : 0) | LS_CODEC_STREAM |
					   LS_CODEC_NO_COMMIT);
		ck_assert_uint_eq(r.chunk, (uint32_t)i);
		ck_assert_uint_eq(r.xid, 900);
		ck_assert_uint_eq(r.subxid, subs[i]);
		ck_assert_uint_eq(r.nchanges, 1);
	}
	struct ls_pos commit = mkpos(1234, "0/4D2");
	ck_assert_int_eq(ls_codec_writer_begin_stream(w, 900, 900, chunk, &err), 0);
	ck_assert_int_eq(ls_codec_writer_set_commit(w, &commit, 55, &err), 0);
	const uint8_t *rec;
	size_t len;
	ck_assert_int_eq(ls_codec_writer_flush(w, true, &rec, &len, &err), 0);
	struct ls_codec_record r;
	ck_assert_msg(ls_codec_decode(rec, len, &a, &r, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(r.flags, LS_CODEC_STREAM | LS_CODEC_LAST);
	ck_assert_uint_eq(r.chunk, 3);
	ck_assert_uint_eq(r.pos.seq, 1234);
	ck_assert_int_eq(r.time_us, 55);

	struct ls_codec_buf b;
	ls_codec_buf_init(&b);
	ck_assert_int_eq(ls_codec_encode_stream_abort(&b, 900, 901, &err), 0);
	ck_assert_msg(decode_copy(b.data, b.len, &a, &r, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(r.type, LS_CODEC_STREAM_ABORT);
	ck_assert_uint_eq(r.xid, 900);
	ck_assert_uint_eq(r.subxid, 901);
	/* truncated: the subtransaction is missing */
	ck_assert_int_lt(ls_codec_decode(b.data, b.len - 2, &a, &r, &err), 0);
	ls_codec_buf_free(&b);
	ls_arena_free(&a);
	ls_codec_writer_free(w);
}
END_TEST

START_TEST(codec_writer_requires_commit_for_last_chunk)
{
	struct ls_codec_writer *w = ls_codec_writer_new(0);
	struct ls_err err = { 0 };
	const uint8_t *rec;
	size_t len;
	ck_assert_int_lt(ls_codec_writer_flush(w, true, &rec, &len, &err), 0);   /* no begin */
	ck_assert_int_lt(ls_codec_writer_add(w, &S[0].c, S[0].rels, 1, &err), 0);
	ck_assert_int_eq(ls_codec_writer_begin(w, 1, NULL, 0, &err), 0);
	ck_assert_int_lt(ls_codec_writer_flush(w, true, &rec, &len, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "without a commit position"));
	struct ls_pos p = mkpos(1, "0/1");
	ck_assert_int_eq(ls_codec_writer_set_commit(w, &p, 0, &err), 0);
	ck_assert_int_eq(ls_codec_writer_flush(w, true, &rec, &len, &err), 0);
	/* an empty transaction is one FIRST|LAST record with no change */
	struct ls_arena a;
	ls_arena_init(&a);
	struct ls_codec_record r;
	ck_assert_int_eq(ls_codec_decode(rec, len, &a, &r, &err), 0);
	ck_assert_uint_eq(r.flags, LS_CODEC_FIRST | LS_CODEC_LAST);
	ck_assert_uint_eq(r.nchanges, 0);
	/* the transaction is over */
	ck_assert_int_lt(ls_codec_writer_flush(w, true, &rec, &len, &err), 0);
	ls_arena_free(&a);
	ls_codec_writer_free(w);
	ls_codec_writer_free(NULL);
}
END_TEST

START_TEST(codec_writer_rejects_bad_changes)
{
	struct ls_codec_writer *w = ls_codec_writer_new(0);
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_codec_writer_begin(w, 1, NULL, 0, &err), 0);
	struct ls_change c = S[0].c;
	const struct ls_relation *rels[2] = { R2, R1 };
	/* wrong relation */
	ck_assert_int_lt(ls_codec_writer_add(w, &c, rels, 1, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "references relation 16384"));
	/* wrong number of relations */
	ck_assert_int_lt(ls_codec_writer_add(w, &c, rels + 1, 0, &err), 0);
	/* tuple width differs from the relation */
	ck_assert_int_lt(ls_codec_writer_add(w, &c, (const struct ls_relation *[]){ R1b }, 1, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "4 columns, relation public.items has 5"));
	/* bad value kind */
	struct ls_value v[4] = { TXT("1"), { .kind = 'x' }, NUL, NUL };
	c.new_tup.vals = v;
	ck_assert_int_lt(ls_codec_writer_add(w, &c, rels + 1, 1, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "bad value kind"));
	/* bad op, bad old kind, insert with old */
	c = S[0].c;
	c.op = 'X';
	ck_assert_int_lt(ls_codec_writer_add(w, &c, rels + 1, 1, &err), 0);
	c = S[3].c;
	c.old_kind = 'Z';
	ck_assert_int_lt(ls_codec_writer_add(w, &c, rels + 1, 1, &err), 0);
	c = S[0].c;
	c.old_kind = LS_OLD_KEY;
	ck_assert_int_lt(ls_codec_writer_add(w, &c, rels + 1, 1, &err), 0);
	/* truncate: unknown flags, relation order */
	c = S[6].c;
	c.truncate_flags = 0x10;
	ck_assert_int_lt(ls_codec_writer_add(w, &c, S[6].rels, 2, &err), 0);
	c.truncate_flags = 0;
	ck_assert_int_lt(ls_codec_writer_add(w, &c, rels, 2, &err), 0);
	/* missing arrays are errors, not crashes */
	c = S[0].c;
	c.new_tup.vals = NULL;
	ck_assert_int_lt(ls_codec_writer_add(w, &c, rels + 1, 1, &err), 0);
	ck_assert_int_lt(ls_codec_writer_add(w, &S[0].c, NULL, 1, &err), 0);
	c = S[6].c;
	c.relids = NULL;
	ck_assert_int_lt(ls_codec_writer_add(w, &c, S[6].rels, 2, &err), 0);
	/* nothing of the rejected changes went in */
	ck_assert_uint_eq(ls_codec_writer_count(w), 0);
	ck_assert_int_eq(ls_codec_writer_add(w, &S[6].c, S[6].rels, 2, &err), 0);
	ck_assert_uint_eq(ls_codec_writer_count(w), 1);
	ls_codec_writer_free(w);
}
END_TEST

/* ---- hostile input ---- */

START_TEST(codec_rejects_truncated_record)
{
	struct ls_codec_buf b;
	ls_codec_buf_init(&b);
	size_t len;
	uint8_t *recs[3];
	size_t lens[3];
	recs[0] = sample_txn(&len);
	lens[0] = len;
	struct ls_pos pos = mkpos(42, "0/2A");
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_codec_encode_position(&b, &pos, 1, &err), 0);
	recs[1] = malloc(b.len);
	memcpy(recs[1], b.data, lens[1] = b.len);
	ck_assert_int_eq(ls_codec_encode_marker(&b, &pos, 1, "p", "xyz", 3, &err), 0);
	recs[2] = malloc(b.len);
	memcpy(recs[2], b.data, lens[2] = b.len);

	struct ls_arena a;
	ls_arena_init(&a);
	for (int k = 0; k < 3; k++) {
		for (size_t n = 0; n < lens[k]; n++) {
			struct ls_codec_record r;
			err.msg[0] = '\0';
			ck_assert_msg(decode_copy(recs[k], n, &a, &r, &err) < 0,
				      "record %d accepted at %zu of %zu bytes", k, n, lens[k]);
			ck_assert_msg(strncmp(err.msg, "codec: byte ", 12) == 0, "%s", err.msg);
			ls_arena_reset(&a);
		}
		struct ls_codec_record r;
		ck_assert_int_eq(decode_copy(recs[k], lens[k], &a, &r, &err), 0);
		free(recs[k]);
	}
	ls_arena_free(&a);
	ls_codec_buf_free(&b);
}
END_TEST

START_TEST(codec_survives_bit_flips)
{
	size_t len;
	uint8_t *rec = sample_txn(&len);
	struct ls_arena a;
	ls_arena_init(&a);
	unsigned rejected = 0, accepted = 0, sum = 0;
	for (size_t bit = 0; bit < len * 8; bit++) {
		rec[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		struct ls_codec_record r;
		struct ls_err err = { 0 };
		if (decode_copy(rec, len, &a, &r, &err) == 0) {
			ck_assert_msg(bit >= 48, "flip of header bit %zu accepted", bit);
			sum += touch(&r);
			accepted++;
		} else {
			ck_assert_msg(strncmp(err.msg, "codec: ", 7) == 0, "%s", err.msg);
			rejected++;
		}
		ck_assert_uint_le(a.used, LS_CODEC_ARENA_RATIO * len + 64);
		ls_arena_reset(&a);
		rec[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	ck_assert_uint_gt(rejected, len);      /* most flips break structure */
	ck_assert_uint_gt(accepted, 0);        /* flips inside values decode fine */
	ck_assert_uint_gt(sum, 0);
	ls_arena_free(&a);
	free(rec);
}
END_TEST

/* The densest input for the decoder's memory: tiny changes of a relation
 * without columns, and tiny NULL values. */
START_TEST(codec_decode_memory_is_bounded_by_input)
{
	struct ls_codec_writer *w = ls_codec_writer_new(0);
	struct ls_pos commit = mkpos(1, "0/1");
	struct ls_err err = { 0 };
	struct ls_value nulls[4] = { NUL, NUL, NUL, NUL };
	struct ls_change ins = { .op = LS_OP_INSERT, .relid = R1->id, .new_tup = { 4, nulls } };
	struct ls_arena a;
	ls_arena_init(&a);
	for (int k = 0; k < 3; k++) {
		ck_assert_int_eq(ls_codec_writer_begin(w, 1, &commit, 0, &err), 0);
		for (int i = 0; i < 20000; i++) {
			if (k == 0)
				add_ok(w, &S[5]);        /* INSERT into the no-column table */
			else if (k == 1)
				add_ok(w, &S[7]);        /* MESSAGE */
			else
				ck_assert_int_eq(ls_codec_writer_add(w, &ins, (const struct ls_relation *[]){ R1 }, 1, &err), 0);
		}
		const uint8_t *rec;
		size_t len;
		ck_assert_int_eq(ls_codec_writer_flush(w, true, &rec, &len, &err), 0);
		ls_arena_reset(&a);
		struct ls_codec_record r;
		ck_assert_int_eq(ls_codec_decode(rec, len, &a, &r, &err), 0);
		ck_assert_uint_eq(r.nchanges, 20000);
		ck_assert_msg(a.used <= LS_CODEC_ARENA_RATIO * len + 64,
			      "case %d: %zu arena bytes for %zu input bytes", k, a.used, len);
	}
	ls_arena_free(&a);
	ls_codec_writer_free(w);
}
END_TEST

static void expect_error(const uint8_t *rec, size_t len, const char *want)
{
	struct ls_arena a;
	ls_arena_init(&a);
	struct ls_codec_record r;
	struct ls_err err = { 0 };
	ck_assert_msg(decode_copy(rec, len, &a, &r, &err) < 0, "accepted; wanted \"%s\"", want);
	ck_assert_msg(strstr(err.msg, want), "message \"%s\" lacks \"%s\"", err.msg, want);
	ls_arena_free(&a);
}

START_TEST(codec_rejects_unknown_version)
{
	size_t len;
	uint8_t *rec = sample_txn(&len);
	rec[4] = 2;
	expect_error(rec, len, "record format version 2 is not supported (this build reads version 1)");
	ck_assert_int_lt(ls_codec_decode_header(rec, len, &(struct ls_codec_record){ 0 }, NULL), 0);
	free(rec);
}
END_TEST

START_TEST(codec_rejects_malformed_fields)
{
	/* Hand-made records: "LSTP" 1 type ... */
	static const struct { const char *rec; size_t len; const char *want; } cases[] = {
#define R(s) s, sizeof(s) - 1
		{ R("LSTX\x01P\x00\x00\x00"), "bad magic" },
		{ R("LSTP\x01Z\x00\x00\x00"), "unknown record type 0x5a" },
		{ R("LSTP\x01P\x00\x00\x00\x00"), "1 unexpected bytes after the record" },
		{ R("LSTP\x01P\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02\x00\x00"), "overflows 64 bits" },
		{ R("LSTP\x01P\x00\x03\x61\x00\x62\x00"), "holds a NUL byte" },
		{ R("LSTP\x01P\x00\x05\x61\x00"), "position of 5 bytes, 2 left" },
		/* TXN: flags chunk xid seq text time nrels [rels] nchanges [changes] */
		{ R("LSTP\x01T\x10\x00\x00\x00\x00\x00\x00\x00"), "unknown chunk flags 0x10" },
		{ R("LSTP\x01T\x03\x01\x00\x00\x00\x00\x00\x00"), "chunk 1 with FIRST flag set" },
		{ R("LSTP\x01T\x02\x00\x00\x00\x00\x00\x00\x00"), "chunk 0 with FIRST flag clear" },
		{ R("LSTP\x01T\x07\x00\x00\x00\x00\x00\x00\x00"), "without commit position is LAST" },
		{ R("LSTP\x01T\x03\x00\x00\x00\x00\x00\xff\xff\xff\xff\x0f"),
		  "relation count 4294967295 more than the 0 bytes left can hold" },
		{ R("LSTP\x01T\x03\x00\x00\x00\x00\x00\x00\x90\x4e\x00\x00"),
		  "change count 10000 more than the 2 bytes left can hold" },
		{ R("LSTP\x01T\x03\x00\x00\x00\x00\x00\x00\x01Q\x00"), "change 1: bad change op 0x51" },
		{ R("LSTP\x01T\x03\x00\x00\x00\x00\x00\x00\x01I\x00"),
		  "change references relation 0 of a table of 0" },
		/* one relation: id 1, "s", "t", 'd', 1 column "c" "int" 23 -1 0, no fill */
		{ R("LSTP\x01T\x03\x00\x00\x00\x00\x00\x01\x01\x01s\x01t\x64\x01\x01" "c\x03int\x17\x01\x00\x00"
		    "\x01I\x00x"), "change 1: column 1: bad value kind 0x78" },
		{ R("LSTP\x01T\x03\x00\x00\x00\x00\x00\x01\x01\x01s\x01t\x64\x01\x01" "c\x03int\x17\x01\x00\x00"
		    "\x01U\x00Wt\x00"), "bad old tuple kind 0x57" },
		{ R("LSTP\x01T\x03\x00\x00\x00\x00\x00\x01\x01\x01s\x01t\x64\x01\x01" "c\x03int\x17\x01\x00\x00"
		    "\x01T\x04\x01\x00"), "unknown truncate flags 0x04" },
		{ R("LSTP\x01T\x03\x00\x00\x00\x00\x00\x01\x01\x01s\x01t\x64\x01\x01" "c\x03int\x17\x01\x00\x00"
		    "\x01T\x00\x00"), "TRUNCATE of no relation" },
		{ R("LSTP\x01T\x03\x00\x00\x00\x00\x00\x01\x01\x01s\x01t\x64\x01\x01" "c\x03int\x17\x01\x00\x00"
		    "\x01I\x80\x80\x80\x80\x10"), "does not fit in 32 bits" },
		{ R("LSTP\x01T\x03\x00\x00\x00\x00\x00\x01\x01\x01s\x01t\x64\x01\x01" "c\x03int\x17\x80\x80\x80\x80\x10\x00\x00"
		    "\x00"), "relation 1: column typmod 2147483648 out of range" },
		{ R("LSTP\x01T\x03\x00\x00\x00\x00\x00\x01\x01\x01s\x01t\x64\x01\x01" "c\x03int\x17\x01\x00\x02"
		    "\x00"), "column c: bad fill marker 0x02" },
		{ R("LSTP\x01T\x03\x00\x00\x00\x00\x00\x01\x01\x01s\x01t\x64\x01\x01" "c\x03int\x17\x01\x00\x01"
		    "\x02" "7\x00" "\x00"), "column fill value holds a NUL byte" },
		{ R("LSTP\x01T\x03\x00\x00\x00\x00\x00\x01\x01\x01s\x01t\x64\x01\x01" "c\x03int\x17\x01\x00\x01"
		    "\x09" "7"), "column fill value of 9 bytes, 1 left" },
		{ R("LSTP\x01T\x03\x00\x00\x00\x00\x00\x01\x01\x01s\x01t\x58\x00\x00"),
		  "bad replica identity 0x58" },
		{ R("LSTP\x01T\x03\x00\x00\x00\x00\x00\x01\x01\x01s\x01t\x64\xff\xff\x03"),
		  "column count 65535 more than the 0 bytes left" },
		{ R("LSTP\x01T\x03\x00\x00\x00\x00\x00\x01\x01\x01s\x01t\x64\x80\x80\x04"),
		  "column count 65536 above the limit 65535" },
		{ R("LSTP\x01M\x00\x00\x00\x02\x61\x00\x00"), "marker prefix holds a NUL byte" },
#undef R
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		expect_error((const uint8_t *)cases[i].rec, cases[i].len, cases[i].want);
}
END_TEST

/* ---- golden files / fuzz seeds ---- */

static int buf_set(struct ls_codec_buf *b, const void *p, size_t n)
{
	free(b->data);
	b->data = malloc(n);
	memcpy(b->data, p, n);
	b->len = b->cap = n;
	return 0;
}

/* The records every consumer of this format must keep reading. */
static size_t golden(int k, struct ls_codec_buf *b)
{
	struct ls_err err = { 0 };
	struct ls_pos pos = mkpos(0x16B374D848ULL, "16/B374D848");
	const uint8_t *rec;
	size_t len = 0;
	b->len = 0;
	if (k == 0) {
		uint8_t *t = sample_txn(&len);
		ck_assert_int_eq(buf_set(b, t, len), 0);
		free(t);
		return len;
	}
	if (k == 1 || k == 2) {
		/* two small chunks of one transaction, commit known at the end */
		struct ls_codec_writer *w = ls_codec_writer_new(200);
		ck_assert_int_eq(ls_codec_writer_begin(w, 9, NULL, 0, &err), 0);
		for (int i = 0; i < 4; i++)
			add_ok(w, &S[i]);
		ck_assert_int_eq(ls_codec_writer_flush(w, false, &rec, &len, &err), 0);
		if (k == 2) {
			add_ok(w, &S[6]);
			add_ok(w, &S[7]);
			ck_assert_int_eq(ls_codec_writer_set_commit(w, &pos, 1, &err), 0);
			ck_assert_int_eq(ls_codec_writer_flush(w, true, &rec, &len, &err), 0);
		}
		ck_assert_int_eq(buf_set(b, rec, len), 0);
		ls_codec_writer_free(w);
		return len;
	}
	if (k == 5) {
		/* a streamed transaction's piece: subtransaction 10 of 9 */
		struct ls_codec_writer *w = ls_codec_writer_new(0);
		ck_assert_int_eq(ls_codec_writer_begin_stream(w, 9, 10, 2, &err), 0);
		for (int i = 0; i < 3; i++)
			add_ok(w, &S[i]);
		ck_assert_int_eq(ls_codec_writer_flush(w, false, &rec, &len, &err), 0);
		ck_assert_int_eq(buf_set(b, rec, len), 0);
		ls_codec_writer_free(w);
		return len;
	}
	if (k == 3)
		ck_assert_int_eq(ls_codec_encode_position(b, &pos, 1700000000000000LL, &err), 0);
	else if (k == 4)
		ck_assert_int_eq(ls_codec_encode_marker(b, &pos, 0, "lockstep.drift", "{\"chunk\":1}", 11, &err), 0);
	else
		ck_assert_int_eq(ls_codec_encode_stream_abort(b, 9, 10, &err), 0);
	return b->len;
}

static const char *golden_names[] = { "txn_all_kinds", "txn_chunk0", "txn_chunk1", "position", "marker",
				      "stream_piece", "stream_abort" };

START_TEST(codec_matches_golden_records)
{
	struct ls_codec_buf b;
	ls_codec_buf_init(&b);
	bool update = getenv("LS_UPDATE_GOLDEN") != NULL;
	for (int k = 0; k < 7; k++) {
		size_t len = golden(k, &b);
		char path[256];
		snprintf(path, sizeof path, GOLDEN_DIR "/%s.bin", golden_names[k]);
		if (update) {
			FILE *f = fopen(path, "wb");
			ck_assert_msg(f != NULL, "cannot write %s", path);
			ck_assert_uint_eq(fwrite(b.data, 1, len, f), len);
			fclose(f);
		}
		FILE *f = fopen(path, "rb");
		ck_assert_msg(f != NULL, "%s missing (run from the repository root)", path);
		uint8_t buf[4096];
		size_t n = fread(buf, 1, sizeof buf, f);
		fclose(f);
		ck_assert_msg(n == len && memcmp(buf, b.data, len) == 0,
			      "%s: encoding changed; bump LS_CODEC_VERSION", path);
		struct ls_arena a;
		ls_arena_init(&a);
		struct ls_codec_record r;
		struct ls_err err = { 0 };
		ck_assert_msg(ls_codec_decode(buf, n, &a, &r, &err) == 0, "%s: %s", path, err.msg);
		ls_arena_free(&a);
	}
	ls_codec_buf_free(&b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("codec");
	TCase *tc = tcase_create("codec");
	tcase_add_checked_fixture(tc, samples_setup, samples_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, codec_roundtrips_every_change_kind);
	tcase_add_test(tc, codec_relations_roundtrip_once_per_definition);
	tcase_add_test(tc, codec_position_and_marker_roundtrip);
	tcase_add_test(tc, codec_header_decodes_without_arena);
	tcase_add_test(tc, codec_splits_large_txn_into_chunks_in_order);
	tcase_add_test(tc, codec_commit_position_may_come_at_the_end);
	tcase_add_test(tc, codec_stream_pieces_and_abort_roundtrip);
	tcase_add_test(tc, codec_writer_requires_commit_for_last_chunk);
	tcase_add_test(tc, codec_writer_rejects_bad_changes);
	tcase_add_test(tc, codec_rejects_truncated_record);
	tcase_add_test(tc, codec_survives_bit_flips);
	tcase_add_test(tc, codec_rejects_unknown_version);
	tcase_add_test(tc, codec_decode_memory_is_bounded_by_input);
	tcase_add_test(tc, codec_rejects_malformed_fields);
	tcase_add_test(tc, codec_matches_golden_records);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
