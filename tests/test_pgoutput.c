/* Unit tests for connectors/postgres/pgoutput: golden messages recorded from
 * PostgreSQL 15 (tests/data/pgoutput/, see record.sh there) decode to the
 * reviewed text, the decoded structures carry the right values, and broken
 * messages are rejected without touching the decoder state. */
#include "connectors/postgres/pgoutput.h"

#include <check.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "tests/helpers/testutil.h"

#define GOLDEN_DIR "tests/data/pgoutput"

/* ---- golden files ----------------------------------------------------------- */

struct golden {
	unsigned proto;
	struct ls_testutil_hex h;
};

static void proto_header(const char *line, void *ctx)
{
	sscanf(line, "# proto %u", (unsigned *)ctx);
}

static void golden_load(const char *path, struct golden *g)
{
	g->proto = 0;
	ls_testutil_hex_load(path, &g->h, proto_header, &g->proto);
	ck_assert_msg(g->proto == 1 || g->proto == 2, "%s: no proto header", path);
}

/* Decodes all of g with a fresh decoder; returns the printed text. */
static char *golden_decode(const struct golden *g, const char *name)
{
	struct ls_pgo *d = ls_pgo_new(g->proto);
	ck_assert_ptr_nonnull(d);
	struct ls_arena a;
	ls_arena_init(&a);
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	for (size_t i = 0; i < g->h.n; i++) {
		struct ls_pgo_event ev;
		struct ls_err err = { 0 };
		int rc = ls_pgo_decode(d, g->h.m[i].p, g->h.m[i].len, &a, &ev, &err);
		ck_assert_msg(rc == 0, "%s message %zu: %s", name, i + 1, err.msg);
		ck_assert_int_eq(ls_pgo_event_print(out, d, &ev), 0);
		ls_arena_reset(&a);
	}
	fclose(out);
	ls_arena_free(&a);
	ls_pgo_free(d);
	return text;
}

static int golden_run(const char *name)
{
	char hex[512], exp[512];
	snprintf(hex, sizeof hex, GOLDEN_DIR "/%s.hex", name);
	snprintf(exp, sizeof exp, GOLDEN_DIR "/%s.expected", name);
	struct golden g;
	golden_load(hex, &g);
	char *got = golden_decode(&g, name);
	ls_testutil_hex_free(&g.h);
	ls_testutil_golden_compare(name, got, exp, "LS_PGO_REGEN");
	free(got);
	return 1;
}

START_TEST(pgoutput_golden_files_match_expected)
{
	DIR *dir = opendir(GOLDEN_DIR);
	ck_assert_msg(dir != NULL, "run from the repository root (no " GOLDEN_DIR ")");
	struct dirent *de;
	int files = 0;
	while ((de = readdir(dir)) != NULL) {
		size_t n = strlen(de->d_name);
		if (n < 5 || strcmp(de->d_name + n - 4, ".hex") != 0)
			continue;
		char name[256];
		snprintf(name, sizeof name, "%.*s", (int)(n - 4), de->d_name);
		files += golden_run(name);
	}
	closedir(dir);
	ck_assert_int_ge(files, 9);
}
END_TEST

/* Decodes messages of a golden file until one of kind `kind` for which
 * pick() is true; the event stays valid while *a is not reset. */
struct replay {
	struct golden g;
	struct ls_pgo *d;
	struct ls_arena a;
	size_t next;
};

static void replay_open(struct replay *r, const char *name)
{
	char path[512];
	snprintf(path, sizeof path, GOLDEN_DIR "/%s.hex", name);
	golden_load(path, &r->g);
	r->d = ls_pgo_new(r->g.proto);
	ck_assert_ptr_nonnull(r->d);
	ls_arena_init(&r->a);
	r->next = 0;
}

static void replay_close(struct replay *r)
{
	ls_testutil_hex_free(&r->g.h);
	ls_pgo_free(r->d);
	ls_arena_free(&r->a);
}

/* The nth (from 1) next event of kind, for relation rel_name if non-NULL. */
static void replay_find(struct replay *r, uint8_t kind, const char *rel_name,
			int nth, struct ls_pgo_event *ev)
{
	while (r->next < r->g.h.n) {
		struct ls_err err = { 0 };
		struct ls_testutil_msg *m = &r->g.h.m[r->next++];
		ck_assert_msg(ls_pgo_decode(r->d, m->p, m->len, &r->a, ev, &err) == 0,
			      "%s", err.msg);
		if (ev->kind != kind)
			continue;
		if (rel_name && (ev->rel == NULL || strcmp(ev->rel->name, rel_name) != 0))
			continue;
		if (--nth == 0)
			return;
	}
	ck_abort_msg("no event %c for %s", kind, rel_name ? rel_name : "-");
}

static uint64_t be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

START_TEST(pgoutput_begin_commit_convert_times_and_lsns)
{
	struct replay r;
	replay_open(&r, "dml_v1");
	struct ls_pgo_event b, c;
	replay_find(&r, 'B', NULL, 1, &b);
	/* Begin is 'B', final LSN, PG-epoch time, xid: all big-endian. */
	const uint8_t *p = r.g.h.m[0].p;
	ck_assert_uint_eq(p[0], 'B');
	ck_assert_uint_eq(b.u.begin.final_lsn, be(p + 1, 8));
	ck_assert_int_eq(b.u.begin.commit_time_us,
			 (int64_t)be(p + 9, 8) + INT64_C(946684800) * 1000000);
	ck_assert_uint_eq(b.xid, be(p + 17, 4));
	/* Recorded in this century, so the epoch shift went the right way. */
	ck_assert_int_gt(b.u.begin.commit_time_us, INT64_C(1700000000) * 1000000);
	replay_find(&r, 'C', NULL, 1, &c);
	ck_assert_uint_eq(c.u.commit.commit_lsn, b.u.begin.final_lsn);
	ck_assert_uint_gt(c.u.commit.end_lsn, c.u.commit.commit_lsn);
	ck_assert_int_eq(c.u.commit.commit_time_us, b.u.begin.commit_time_us);
	replay_close(&r);
}
END_TEST

START_TEST(pgoutput_relation_keys_and_replident)
{
	struct replay r;
	replay_open(&r, "dml_v1");
	struct ls_pgo_event ev;
	replay_find(&r, 'R', "multi", 1, &ev);
	const struct ls_relation *rel = ev.u.relation.rel;
	ck_assert_uint_eq(ev.u.relation.change, LS_PGO_REL_NEW);
	ck_assert_str_eq(rel->schema, "public");
	ck_assert_uint_eq(rel->replident, LS_REPLIDENT_DEFAULT);
	ck_assert_uint_eq(rel->ncols, 3);
	ck_assert_str_eq(rel->cols[0].name, "a");
	ck_assert_uint_eq(rel->cols[0].flags, LS_COL_KEY);
	ck_assert_uint_eq(rel->cols[1].type_oid, 25);   /* text */
	ck_assert_uint_eq(rel->cols[1].flags, LS_COL_KEY);
	ck_assert_uint_eq(rel->cols[2].flags, 0);
	ck_assert_int_eq(rel->cols[2].typmod, -1);
	ck_assert_ptr_null(rel->cols[0].type_name);
	ck_assert_ptr_eq(ls_pgo_relation(r.d, rel->id), rel);
	replay_close(&r);

	replay_open(&r, "dml_v1");
	replay_find(&r, 'R', "full_t", 1, &ev);
	ck_assert_uint_eq(ev.u.relation.rel->replident, LS_REPLIDENT_FULL);
	ck_assert_uint_eq(ls_relation_nkeys(ev.u.relation.rel), 2);
	replay_find(&r, 'D', "full_t", 1, &ev);
	ck_assert_uint_eq(ev.change.old_kind, LS_OLD_FULL);
	ck_assert_uint_eq(ev.change.old_tup.vals[1].kind, LS_VAL_NULL);
	replay_find(&r, 'R', "idx_t", 1, &ev);
	ck_assert_uint_eq(ev.u.relation.rel->replident, LS_REPLIDENT_INDEX);
	ck_assert_uint_eq(ev.u.relation.rel->cols[0].flags, 0);
	ck_assert_uint_eq(ev.u.relation.rel->cols[1].flags, LS_COL_KEY);
	replay_close(&r);
}
END_TEST

START_TEST(pgoutput_update_with_key_change_sends_old_key)
{
	struct replay r;
	replay_open(&r, "dml_v1");
	struct ls_pgo_event ev;
	replay_find(&r, 'U', "pk", 1, &ev);        /* name change: no old tuple */
	ck_assert_uint_eq(ev.change.op, LS_OP_UPDATE);
	ck_assert_uint_eq(ev.change.old_kind, LS_OLD_NONE);
	ck_assert_str_eq(ev.change.new_tup.vals[1].data, "uno");
	replay_find(&r, 'U', "pk", 1, &ev);        /* id 2 -> 3 */
	ck_assert_uint_eq(ev.change.old_kind, LS_OLD_KEY);
	ck_assert_uint_eq(ev.change.old_tup.vals[0].kind, LS_VAL_TEXT);
	ck_assert_str_eq(ev.change.old_tup.vals[0].data, "2");
	ck_assert_uint_eq(ev.change.old_tup.vals[1].kind, LS_VAL_NULL);
	ck_assert_str_eq(ev.change.new_tup.vals[0].data, "3");
	replay_find(&r, 'D', "pk", 1, &ev);
	ck_assert_uint_eq(ev.change.old_kind, LS_OLD_KEY);
	ck_assert_str_eq(ev.change.old_tup.vals[0].data, "1");
	replay_close(&r);
}
END_TEST

START_TEST(pgoutput_unchanged_toast_is_unchanged_value)
{
	struct replay r;
	replay_open(&r, "toast_v1");
	struct ls_pgo_event ev;
	replay_find(&r, 'I', "big", 1, &ev);
	ck_assert_uint_eq(ev.change.new_tup.vals[2].kind, LS_VAL_TEXT);
	ck_assert_uint_eq(ev.change.new_tup.vals[2].len, 200 * 32);
	replay_find(&r, 'U', "big", 1, &ev);
	ck_assert_str_eq(ev.change.new_tup.vals[1].data, "second");
	ck_assert_uint_eq(ev.change.new_tup.vals[2].kind, LS_VAL_UNCHANGED);
	ck_assert_uint_eq(ev.change.new_tup.vals[2].len, 0);
	replay_find(&r, 'U', "big", 1, &ev);
	ck_assert_str_eq(ev.change.new_tup.vals[2].data, "short");
	replay_close(&r);
}
END_TEST

START_TEST(pgoutput_text_values_keep_exact_bytes)
{
	struct replay r;
	replay_open(&r, "types_v1");
	struct ls_pgo_event ev;
	replay_find(&r, 'Y', NULL, 1, &ev);
	ck_assert_str_eq(ev.u.type.nspname, "public");
	ck_assert_str_eq(ev.u.type.name, "mood");
	replay_find(&r, 'I', "ty", 1, &ev);
	const struct ls_value *v = ev.change.new_tup.vals;
	ck_assert_str_eq(v[5].data, "NaN");
	ck_assert(strstr(v[8].data, "h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80 tab\there nl\nq'uote") != NULL);
	ck_assert_uint_eq(v[8].len, strlen(v[8].data));
	ck_assert_str_eq(v[11].data, "\\x00ff10");
	ck_assert_str_eq(v[12].data, "t");
	ck_assert_str_eq(v[24].data, "happy");
	replay_find(&r, 'I', "ty", 1, &ev);
	ck_assert_uint_eq(ev.change.new_tup.vals[2].kind, LS_VAL_NULL);
	replay_close(&r);
}
END_TEST

START_TEST(pgoutput_binary_values_are_binary)
{
	struct replay r;
	replay_open(&r, "binary_v1");
	struct ls_pgo_event ev;
	replay_find(&r, 'I', "bin", 1, &ev);
	const struct ls_value *v = ev.change.new_tup.vals;
	ck_assert_uint_eq(v[0].kind, LS_VAL_BINARY);
	ck_assert_uint_eq(v[0].len, 8);
	ck_assert_mem_eq(v[0].data, "\0\0\0\0\0\0\0\1", 8);
	ck_assert_uint_eq(v[2].len, 2);
	ck_assert_mem_eq(v[2].data, "\x00\x01", 2);
	replay_close(&r);
}
END_TEST

START_TEST(pgoutput_truncate_flags_and_relids)
{
	struct replay r;
	replay_open(&r, "truncate_v1");
	struct ls_pgo_event ev;
	replay_find(&r, 'T', NULL, 1, &ev);
	ck_assert_uint_eq(ev.change.op, LS_OP_TRUNCATE);
	ck_assert_uint_eq(ev.change.truncate_flags, 0);
	ck_assert_uint_eq(ev.change.nrelids, 1);
	ck_assert_str_eq(ls_pgo_relation(r.d, ev.change.relids[0])->name, "lone");
	replay_find(&r, 'T', NULL, 1, &ev);
	ck_assert_uint_eq(ev.change.truncate_flags, LS_TRUNCATE_CASCADE);
	ck_assert_uint_eq(ev.change.nrelids, 2);   /* parent and child */
	replay_find(&r, 'T', NULL, 1, &ev);
	ck_assert_uint_eq(ev.change.truncate_flags, LS_TRUNCATE_RESTART_IDENTITY);
	replay_find(&r, 'T', NULL, 1, &ev);
	ck_assert_uint_eq(ev.change.truncate_flags,
			  LS_TRUNCATE_CASCADE | LS_TRUNCATE_RESTART_IDENTITY);
	replay_close(&r);
}
END_TEST

START_TEST(pgoutput_logical_messages)
{
	struct replay r;
	replay_open(&r, "message_v1");
	struct ls_pgo_event ev;
	replay_find(&r, 'M', NULL, 1, &ev);
	ck_assert(!ev.u.message.transactional);
	ck_assert_str_eq(ev.change.msg_prefix, "lockstep");
	ck_assert_uint_eq(ev.change.msg_len, 11);
	ck_assert_mem_eq(ev.change.msg_data, "heartbeat 1", 11);
	ck_assert_uint_ne(ev.u.message.lsn, 0);
	replay_find(&r, 'M', NULL, 1, &ev);
	ck_assert(ev.u.message.transactional);
	ck_assert_uint_eq(ev.change.op, LS_OP_MESSAGE);
	ck_assert_uint_eq(ev.change.msg_len, 2);
	ck_assert_mem_eq(ev.change.msg_data, "\x00\xff", 2);
	replay_close(&r);
}
END_TEST

START_TEST(pgoutput_origin_message)
{
	struct replay r;
	replay_open(&r, "origin_v1");
	struct ls_pgo_event ev;
	replay_find(&r, 'O', NULL, 1, &ev);
	ck_assert_str_eq(ev.u.origin.name, "upstream_a");
	ck_assert_uint_eq(ev.u.origin.lsn, UINT64_C(0x123456789));
	replay_close(&r);
}
END_TEST

START_TEST(pgoutput_relation_change_is_reported)
{
	struct replay r;
	replay_open(&r, "ddl_v1");
	struct ls_pgo_event ev;
	replay_find(&r, 'R', NULL, 1, &ev);
	ck_assert_uint_eq(ev.u.relation.change, LS_PGO_REL_NEW);
	uint32_t id = ev.u.relation.rel->id;
	ck_assert_int_eq(ls_pgo_set_type_name(r.d, id, 1, "text", NULL), 0);
	ck_assert_str_eq(ls_pgo_relation(r.d, id)->cols[1].type_name, "text");
	replay_find(&r, 'R', NULL, 1, &ev);          /* ADD COLUMN b */
	ck_assert_uint_eq(ev.u.relation.change, LS_PGO_REL_CHANGED);
	ck_assert_uint_eq(ev.u.relation.rel->ncols, 3);
	ck_assert_ptr_null(ev.u.relation.rel->cols[1].type_name);
	replay_find(&r, 'R', NULL, 1, &ev);          /* a becomes varchar(20) */
	ck_assert_uint_eq(ev.u.relation.change, LS_PGO_REL_CHANGED);
	ck_assert_uint_eq(ev.u.relation.rel->cols[1].type_oid, 1043);
	ck_assert_int_eq(ev.u.relation.rel->cols[1].typmod, 24);
	replay_close(&r);
}
END_TEST

START_TEST(pgoutput_stream_blocks_carry_xids)
{
	struct replay r;
	replay_open(&r, "stream_v2");
	struct ls_pgo_event ev;
	replay_find(&r, 'S', NULL, 1, &ev);
	uint32_t xid = ev.xid;
	ck_assert(ev.u.stream_start.first_segment);
	ck_assert(ls_pgo_in_stream(r.d));
	replay_find(&r, 'I', "s", 1, &ev);
	ck_assert_uint_eq(ev.xid, xid);
	replay_find(&r, 'E', NULL, 1, &ev);
	ck_assert(!ls_pgo_in_stream(r.d));
	replay_find(&r, 'S', NULL, 1, &ev);
	ck_assert(!ev.u.stream_start.first_segment);
	ck_assert_uint_eq(ev.xid, xid);
	replay_find(&r, 'A', NULL, 1, &ev);          /* ROLLBACK TO sp */
	ck_assert_uint_eq(ev.xid, xid);
	ck_assert_uint_ne(ev.u.stream_abort.subxid, xid);
	replay_find(&r, 'c', NULL, 1, &ev);
	ck_assert_uint_eq(ev.xid, xid);
	ck_assert_uint_gt(ev.u.commit.end_lsn, ev.u.commit.commit_lsn);
	replay_find(&r, 'A', NULL, 1, &ev);          /* the rolled-back big txn */
	ck_assert_uint_eq(ev.xid, ev.u.stream_abort.subxid);
	replay_close(&r);
}
END_TEST

/* Every strict prefix of every recorded message must fail with an error and
 * leave the decoder able to decode the full message afterwards. */
START_TEST(pgoutput_rejects_every_truncation)
{
	static const char *const names[] = { "dml_v1", "types_v1", "truncate_v1",
		"message_v1", "origin_v1", "binary_v1", "stream_v2" };
	for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
		struct replay r;
		replay_open(&r, names[k]);
		size_t limit = r.g.h.n < 60 ? r.g.h.n : 60;
		for (size_t i = 0; i < limit; i++) {
			struct ls_testutil_msg *m = &r.g.h.m[i];
			struct ls_pgo_event ev;
			for (size_t cut = 0; cut < m->len; cut++) {
				struct ls_err err = { 0 };
				bool in = ls_pgo_in_stream(r.d);
				ck_assert_msg(ls_pgo_decode(r.d, m->p, cut, &r.a, &ev, &err) != 0,
					      "%s msg %zu accepted at %zu bytes", names[k], i, cut);
				ck_assert(err.msg[0] != '\0');
				ck_assert(ls_pgo_in_stream(r.d) == in);
			}
			struct ls_err err = { 0 };
			ck_assert_msg(ls_pgo_decode(r.d, m->p, m->len, &r.a, &ev, &err) == 0,
				      "%s", err.msg);
			ls_arena_reset(&r.a);
		}
		replay_close(&r);
	}
}
END_TEST

/* ---- hand-built messages ------------------------------------------------------ */

struct buf {
	uint8_t b[256];
	size_t n;
};

static void put8(struct buf *b, uint8_t v) { b->b[b->n++] = v; }
static void put16(struct buf *b, uint16_t v) { put8(b, v >> 8); put8(b, v & 0xff); }
static void put32(struct buf *b, uint32_t v) { put16(b, v >> 16); put16(b, v & 0xffff); }
static void put64(struct buf *b, uint64_t v) { put32(b, v >> 32); put32(b, (uint32_t)v); }
static void putstr(struct buf *b, const char *s)
{
	memcpy(b->b + b->n, s, strlen(s) + 1);
	b->n += strlen(s) + 1;
}

/* Relation 42 public.t (id int4 key, v text). */
static struct buf rel_msg(void)
{
	struct buf b = { .n = 0 };
	put8(&b, 'R');
	put32(&b, 42);
	putstr(&b, "public");
	putstr(&b, "t");
	put8(&b, 'd');
	put16(&b, 2);
	put8(&b, 1); putstr(&b, "id"); put32(&b, 23); put32(&b, 0xffffffff);
	put8(&b, 0); putstr(&b, "v"); put32(&b, 25); put32(&b, 0xffffffff);
	return b;
}

struct fix {
	struct ls_pgo *d;
	struct ls_arena a;
	struct ls_pgo_event ev;
	struct ls_err err;
};

static void fix_open(struct fix *f, unsigned proto)
{
	memset(f, 0, sizeof *f);
	f->d = ls_pgo_new(proto);
	ck_assert_ptr_nonnull(f->d);
	ls_arena_init(&f->a);
	struct buf r = rel_msg();
	ck_assert_int_eq(ls_pgo_decode(f->d, r.b, r.n, &f->a, &f->ev, &f->err), 0);
}

static int fix_decode(struct fix *f, const struct buf *b)
{
	f->err.msg[0] = '\0';
	return ls_pgo_decode(f->d, b->b, b->n, &f->a, &f->ev, &f->err);
}

static void fix_close(struct fix *f)
{
	ls_pgo_free(f->d);
	ls_arena_free(&f->a);
}

static void expect_err(struct fix *f, const struct buf *b, const char *what)
{
	ck_assert_int_ne(fix_decode(f, b), 0);
	ck_assert_msg(strstr(f->err.msg, what) != NULL, "error '%s' lacks '%s'",
		      f->err.msg, what);
}

START_TEST(pgoutput_rejects_unknown_message_type)
{
	struct fix f;
	fix_open(&f, 1);
	struct buf b = { .n = 0 };
	put8(&b, 'Z');
	put32(&b, 1);
	expect_err(&f, &b, "unknown message type 0x5a");
	b.n = 0;
	ck_assert_int_ne(fix_decode(&f, &b), 0);     /* empty message */
	fix_close(&f);
}
END_TEST

START_TEST(pgoutput_rejects_tuple_column_count_mismatch)
{
	struct fix f;
	fix_open(&f, 1);
	struct buf b = { .n = 0 };
	put8(&b, 'I'); put32(&b, 42); put8(&b, 'N');
	put16(&b, 3);
	put8(&b, 'n'); put8(&b, 'n'); put8(&b, 'n');
	expect_err(&f, &b, "tuple has 3 columns, relation 42 (public.t) has 2");
	ck_assert(strstr(f.err.msg, "Insert") && strstr(f.err.msg, "at byte 6"));
	fix_close(&f);
}
END_TEST

START_TEST(pgoutput_rejects_unknown_relation)
{
	struct fix f;
	fix_open(&f, 1);
	struct buf b = { .n = 0 };
	put8(&b, 'D'); put32(&b, 43); put8(&b, 'K');
	put16(&b, 2); put8(&b, 'n'); put8(&b, 'n');
	expect_err(&f, &b, "unknown relation id 43");
	ck_assert(strstr(f.err.msg, "Delete message ('D') at byte 1") != NULL);
	b.n = 0;
	put8(&b, 'T'); put32(&b, 2); put8(&b, 0); put32(&b, 42); put32(&b, 7);
	expect_err(&f, &b, "unknown relation id 7");
	fix_close(&f);
}
END_TEST

START_TEST(pgoutput_rejects_bad_lengths_and_strings)
{
	struct fix f;
	fix_open(&f, 1);
	struct buf b = { .n = 0 };
	put8(&b, 'I'); put32(&b, 42); put8(&b, 'N'); put16(&b, 2);
	put8(&b, 't'); put32(&b, 0x7fffffff); put8(&b, 'x');
	expect_err(&f, &b, "column length 2147483647 exceeds");

	b.n = 0;
	put8(&b, 'I'); put32(&b, 42); put8(&b, 'N'); put16(&b, 2);
	put8(&b, 'n'); put8(&b, 'x');
	expect_err(&f, &b, "unknown column kind 0x78");

	b.n = 0;
	put8(&b, 'O'); put64(&b, 1);
	memcpy(b.b + b.n, "abc", 3); b.n += 3;          /* no NUL */
	expect_err(&f, &b, "origin name has no terminating NUL");

	b.n = 0;
	put8(&b, 'R'); put32(&b, 50); putstr(&b, "s"); putstr(&b, "t"); put8(&b, 'd');
	put16(&b, 60000);
	expect_err(&f, &b, "column count 60000 does not fit");
	ck_assert_ptr_null(ls_pgo_relation(f.d, 50));

	b.n = 0;
	put8(&b, 'R'); put32(&b, 50); putstr(&b, "s"); putstr(&b, "t"); put8(&b, 'q');
	expect_err(&f, &b, "unknown replica identity");

	b.n = 0;
	put8(&b, 'T'); put32(&b, 0x40000000); put8(&b, 0); put32(&b, 42);
	expect_err(&f, &b, "relation count 1073741824 does not fit");

	b.n = 0;
	put8(&b, 'M'); put8(&b, 1); put64(&b, 5); putstr(&b, "p"); put32(&b, 100);
	expect_err(&f, &b, "content length 100 exceeds");

	b.n = 0;
	put8(&b, 'B'); put64(&b, 1); put64(&b, 2); put32(&b, 3); put8(&b, 0);
	expect_err(&f, &b, "1 unexpected trailing bytes");

	b.n = 0;
	put8(&b, 'U'); put32(&b, 42); put8(&b, 'X');
	expect_err(&f, &b, "unexpected tuple tag 0x58");
	fix_close(&f);
}
END_TEST

START_TEST(pgoutput_bad_relation_keeps_cached_one)
{
	struct fix f;
	fix_open(&f, 1);
	ck_assert_int_eq(ls_pgo_set_type_name(f.d, 42, 0, "integer", &f.err), 0);
	struct buf b = rel_msg();
	b.n--;                                      /* cut the last typmod */
	ck_assert_int_ne(fix_decode(&f, &b), 0);
	const struct ls_relation *rel = ls_pgo_relation(f.d, 42);
	ck_assert_uint_eq(rel->ncols, 2);
	ck_assert_str_eq(rel->cols[0].type_name, "integer");
	/* Same relation again: SAME, and the type name survives. */
	b = rel_msg();
	ck_assert_int_eq(fix_decode(&f, &b), 0);
	ck_assert_uint_eq(f.ev.u.relation.change, LS_PGO_REL_SAME);
	ck_assert_ptr_eq(f.ev.u.relation.rel, rel);
	ck_assert_str_eq(rel->cols[0].type_name, "integer");
	ck_assert_int_ne(ls_pgo_set_type_name(f.d, 42, 2, "x", &f.err), 0);
	ck_assert_int_ne(ls_pgo_set_type_name(f.d, 41, 0, "x", &f.err), 0);
	fix_close(&f);
}
END_TEST

START_TEST(pgoutput_stream_state_is_checked)
{
	struct fix f;
	fix_open(&f, 1);
	struct buf b = { .n = 0 };
	put8(&b, 'S'); put32(&b, 9); put8(&b, 1);
	expect_err(&f, &b, "streaming message in protocol version 1");
	fix_close(&f);

	fix_open(&f, 2);
	struct buf stop = { .n = 0 };
	put8(&stop, 'E');
	expect_err(&f, &stop, "no stream block is open");
	ck_assert_int_eq(fix_decode(&f, &b), 0);
	ck_assert_uint_eq(f.ev.xid, 9);
	expect_err(&f, &b, "not allowed inside a stream block");
	struct buf ins = { .n = 0 };
	put8(&ins, 'I'); put32(&ins, 9); put32(&ins, 42); put8(&ins, 'N');
	put16(&ins, 2); put8(&ins, 't'); put32(&ins, 1); put8(&ins, '7'); put8(&ins, 'u');
	ck_assert_int_eq(fix_decode(&f, &ins), 0);
	ck_assert_uint_eq(f.ev.xid, 9);
	ck_assert_str_eq(f.ev.change.new_tup.vals[0].data, "7");
	ck_assert_uint_eq(f.ev.change.new_tup.vals[1].kind, LS_VAL_UNCHANGED);
	ck_assert_int_eq(fix_decode(&f, &stop), 0);
	/* Outside the block the same bytes parse the xid as the relation id. */
	expect_err(&f, &ins, "unknown relation id 9");
	fix_close(&f);
	ck_assert_ptr_null(ls_pgo_new(3));
	ck_assert_ptr_null(ls_pgo_new(0));
	ls_pgo_free(NULL);
}
END_TEST

START_TEST(pgoutput_commit_time_out_of_range_is_rejected)
{
	struct fix f;
	fix_open(&f, 1);
	struct buf b = { .n = 0 };
	put8(&b, 'C'); put8(&b, 0); put64(&b, 1); put64(&b, 2); put64(&b, INT64_MAX);
	expect_err(&f, &b, "commit time out of range");
	b.n = 0;
	put8(&b, 'C'); put8(&b, 0); put64(&b, 1); put64(&b, 2); put64(&b, 0);
	ck_assert_int_eq(fix_decode(&f, &b), 0);
	ck_assert_int_eq(f.ev.u.commit.commit_time_us, INT64_C(946684800) * 1000000);
	fix_close(&f);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("pgoutput");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, pgoutput_golden_files_match_expected);
	tcase_add_test(tc, pgoutput_begin_commit_convert_times_and_lsns);
	tcase_add_test(tc, pgoutput_relation_keys_and_replident);
	tcase_add_test(tc, pgoutput_update_with_key_change_sends_old_key);
	tcase_add_test(tc, pgoutput_unchanged_toast_is_unchanged_value);
	tcase_add_test(tc, pgoutput_text_values_keep_exact_bytes);
	tcase_add_test(tc, pgoutput_binary_values_are_binary);
	tcase_add_test(tc, pgoutput_truncate_flags_and_relids);
	tcase_add_test(tc, pgoutput_logical_messages);
	tcase_add_test(tc, pgoutput_origin_message);
	tcase_add_test(tc, pgoutput_relation_change_is_reported);
	tcase_add_test(tc, pgoutput_stream_blocks_carry_xids);
	tcase_add_test(tc, pgoutput_rejects_every_truncation);
	tcase_add_test(tc, pgoutput_rejects_unknown_message_type);
	tcase_add_test(tc, pgoutput_rejects_tuple_column_count_mismatch);
	tcase_add_test(tc, pgoutput_rejects_unknown_relation);
	tcase_add_test(tc, pgoutput_rejects_bad_lengths_and_strings);
	tcase_add_test(tc, pgoutput_bad_relation_keeps_cached_one);
	tcase_add_test(tc, pgoutput_stream_state_is_checked);
	tcase_add_test(tc, pgoutput_commit_time_out_of_range_is_rejected);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
