/* Unit tests for connectors/mysql/my_rows: golden binlog events recorded
 * from MariaDB 10.11 (tests/data/binlog/, see record.sh there) decode to the
 * reviewed text; without table-map metadata but with the catalog's
 * description the rows decode exactly as with full metadata; v2 events
 * decode like v1; the cache, errors and every truncation behave. */
#include "connectors/mysql/my_rows.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "tests/helpers/testutil.h"

#define GOLDEN_DIR "tests/data/binlog"

/* ---- golden files ------------------------------------------------------------ */

static void crc_header(const char *line, void *ctx)
{
	if (strcmp(line, "# checksum crc32") == 0)
		*(bool *)ctx = true;
}

static void golden_load(const char *name, struct ls_testutil_hex *g)
{
	char path[512];
	snprintf(path, sizeof path, GOLDEN_DIR "/%s.hex", name);
	bool crc = false;
	ls_testutil_hex_load(path, g, crc_header, &crc);
	ck_assert_msg(crc, "%s: no checksum header", path);
	ck_assert_uint_gt(g->n, 0);
}

/* ---- the catalog's view of the recorded tables ------------------------------------ */

static const char *const e_members[] = { "a", "b", "c'q" };
static const char *const s_members[] = { "x", "y", "z", "w1", "w2", "w3", "w4", "w5", "w6" };

#define C(n, t, u, b, k) { n, t, u, b, k, 0, NULL }
static const struct ls_myr_col_info ty_cols[] = {
	C("id", NULL, 0, -1, 1), C("ti", NULL, 0, -1, 0), C("tu", NULL, 1, -1, 0),
	C("si", NULL, 0, -1, 0), C("su", NULL, 1, -1, 0), C("mi", NULL, 0, -1, 0),
	C("mu", NULL, 1, -1, 0), C("i", NULL, 0, -1, 0), C("iu", NULL, 1, -1, 0),
	C("bi", NULL, 0, -1, 0), C("bu", NULL, 1, -1, 0), C("d1", NULL, 0, -1, 0),
	C("d2", NULL, 0, -1, 0), C("d3", NULL, 0, -1, 0), C("d4", NULL, 1, -1, 0),
	C("d5", NULL, 0, -1, 0), C("d6", NULL, 0, -1, 0), C("f", NULL, 0, -1, 0),
	C("dbl", NULL, 0, -1, 0), C("dt", NULL, -1, -1, 0), C("t0", NULL, -1, -1, 0),
	C("t3", NULL, -1, -1, 0), C("t6", NULL, -1, -1, 0), C("dt0", NULL, -1, -1, 0),
	C("dt1", NULL, -1, -1, 0), C("dt2", NULL, -1, -1, 0), C("dt4", NULL, -1, -1, 0),
	C("dt6", NULL, -1, -1, 0), C("ts0", NULL, -1, -1, 0), C("ts3", NULL, -1, -1, 0),
	C("ts5", NULL, -1, -1, 0), C("ts6", NULL, -1, -1, 0), C("y", NULL, 1, -1, 0),
	C("c", "char(10)", -1, 0, 0), C("c70", "char(70)", -1, 0, 0),
	C("vc", "varchar(20)", -1, 0, 0), C("vcl", "varchar(300)", -1, 0, 0),
	C("tt", NULL, -1, 0, 0), C("tx", NULL, -1, 0, 0), C("mt", NULL, -1, 0, 0),
	C("lt", NULL, -1, 0, 0), C("lat", "varchar(10)", -1, 0, 0),
	C("bn", NULL, -1, 1, 0), C("vb", NULL, -1, 1, 0), C("tb", NULL, -1, 1, 0),
	C("bl", NULL, -1, 1, 0), C("mb", NULL, -1, 1, 0), C("lb", NULL, -1, 1, 0),
	{ "e", NULL, -1, -1, 0, 3, e_members }, { "s", NULL, -1, -1, 0, 9, s_members },
	C("b1", NULL, -1, -1, 0), C("b13", NULL, -1, -1, 0), C("b64", NULL, -1, -1, 0),
	C("j", NULL, -1, 0, 0), C("pt", "point", -1, 1, 0),
};
static const struct ls_myr_col_info ints_cols[] = {
	C("id", NULL, 0, -1, 1), C("a", NULL, 0, -1, 0), C("b", NULL, 1, -1, 0),
	C("c", NULL, 0, -1, 1),
};
static const struct ls_myr_col_info nokey_cols[] = {
	C("a", NULL, 0, -1, 0), C("b", "varchar(5)", -1, 0, 0),
};
static const struct ls_myr_col_info ot_cols[] = {
	C("id", NULL, 0, -1, 1), C("t0", "time", -1, -1, 0), C("t3", "time(3)", -1, -1, 0),
	C("d0", "datetime", -1, -1, 0), C("d6", "datetime(6)", -1, -1, 0),
	C("s0", "timestamp", -1, -1, 0), C("s2", "timestamp(2)", -1, -1, 0),
};
#undef C

#define INFO(cols) { 0, sizeof cols / sizeof cols[0], cols }
static const struct ls_myr_table_info ty_info = INFO(ty_cols);
static const struct ls_myr_table_info ints_info = INFO(ints_cols);
static const struct ls_myr_table_info nokey_info = INFO(nokey_cols);
static const struct ls_myr_table_info ot_info = INFO(ot_cols);

/* The catalog lookup a connector would do for a new table map. */
static const struct ls_myr_table_info *catalog(const struct ls_relation *rel)
{
	if (strcmp(rel->name, "ty") == 0)
		return &ty_info;
	if (strcmp(rel->name, "ints") == 0)
		return &ints_info;
	if (strcmp(rel->name, "nokey") == 0)
		return &nokey_info;
	if (strcmp(rel->name, "ot") == 0)
		return &ot_info;
	return NULL;
}

/* Decodes every event of the scenario with one decoder and returns the
 * printed text; errors become "ERROR ..." lines.  With use_catalog, new
 * maps get the catalog's description. */
static char *golden_decode(const char *name, bool use_catalog)
{
	struct ls_testutil_hex g;
	golden_load(name, &g);
	struct ls_myr *d = ls_myr_new(0);
	ck_assert_ptr_nonnull(d);
	struct ls_arena a;
	ls_arena_init(&a);
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	for (size_t i = 0; i < g.n; i++) {
		struct ls_myr_event ev;
		struct ls_err err = { 0 };
		if (ls_myr_decode_event(d, g.m[i].p, g.m[i].len, true, &a, &ev, &err) != 0) {
			ck_assert_msg(err.msg[0] != '\0', "%s event %zu: empty error", name, i + 1);
			fprintf(out, "ERROR %s\n", err.msg);
			continue;
		}
		const struct ls_myr_table_info *info;
		if (use_catalog && ev.type == LS_MYR_TABLE_MAP &&
		    ev.map_change != LS_MYR_MAP_SAME && (info = catalog(ev.rel)) != NULL) {
			ck_assert_msg(ls_myr_set_table_info(d, ev.table_id, info, &err) == 0,
				      "%s", err.msg);
			ev.rel = ls_myr_relation(d, ev.table_id);
		}
		ck_assert_int_eq(ls_myr_event_print(out, &ev), 0);
		ls_arena_reset(&a);
	}
	fclose(out);
	ls_arena_free(&a);
	ls_myr_free(d);
	ls_testutil_hex_free(&g);
	return text;
}

static void golden_check(const char *name, const char *expected, bool use_catalog)
{
	char path[512];
	snprintf(path, sizeof path, GOLDEN_DIR "/%s.expected", expected);
	char *got = golden_decode(name, use_catalog);
	ls_testutil_golden_compare(name, got, path, "LS_MYR_REGEN");
	free(got);
}

START_TEST(my_rows_golden_full_metadata)
{
	golden_check("types_full", "types_full", false);
}
END_TEST

START_TEST(my_rows_golden_minimal_metadata)
{
	golden_check("types_minimal", "types_minimal", false);
}
END_TEST

START_TEST(my_rows_golden_no_metadata_uses_fallbacks)
{
	golden_check("types_nometa", "types_nometa", false);
}
END_TEST

START_TEST(my_rows_golden_old_temporal)
{
	golden_check("old_temporal", "old_temporal", true);
}
END_TEST

/* Only the lines that describe rows and column lists: table ids differ
 * between recordings. */
static char *rows_only(const char *text)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		const char *cols = memmem(p, n, " cols=(", 7);
		if (strncmp(p, "TABLE_MAP", 9) == 0 && cols)
			fprintf(f, "%.*s\n", (int)(n - (size_t)(cols - p)), cols);
		else if (strncmp(p, "ROWS", 4) != 0)
			fprintf(f, "%.*s\n", (int)n, p);
		p += n + (nl != NULL);
	}
	fclose(f);
	return out;
}

START_TEST(my_rows_catalog_completes_missing_metadata)
{
	char *full = golden_decode("types_full", false);
	const char *names[] = { "types_nometa", "types_minimal" };
	for (int k = 0; k < 2; k++) {
		char *other = golden_decode(names[k], true);
		char *a = rows_only(full), *b = rows_only(other);
		if (strcmp(a, b) != 0) {
			size_t line = 1;
			for (size_t i = 0; a[i] && a[i] == b[i]; i++)
				line += a[i] == '\n';
			ck_abort_msg("%s with the catalog differs from full metadata at line %zu",
				     names[k], line);
		}
		ck_assert_uint_gt(strlen(a), 1000);
		free(a);
		free(b);
		free(other);
	}
	free(full);
}
END_TEST

/* ---- decoded values, looked at directly ---------------------------------------- */

struct replay {
	struct ls_testutil_hex g;
	struct ls_myr *d;
	struct ls_arena a;
	size_t next;
};

static void replay_open(struct replay *r, const char *name)
{
	golden_load(name, &r->g);
	r->d = ls_myr_new(0);
	ck_assert_ptr_nonnull(r->d);
	ls_arena_init(&r->a);
	r->next = 0;
}

static void replay_close(struct replay *r)
{
	ls_testutil_hex_free(&r->g);
	ls_myr_free(r->d);
	ls_arena_free(&r->a);
}

/* Decodes up to the nth (from 1) next event of this type. */
static void replay_find(struct replay *r, unsigned type, int nth, struct ls_myr_event *ev)
{
	while (r->next < r->g.n) {
		struct ls_err err = { 0 };
		struct ls_testutil_msg *e = &r->g.m[r->next++];
		ck_assert_msg(ls_myr_decode_event(r->d, e->p, e->len, true, &r->a, ev, &err) == 0,
			      "%s", err.msg);
		if (ev->type == type && --nth == 0)
			return;
	}
	ck_abort_msg("event type %u not found", type);
}

static int col_of(const struct ls_relation *rel, const char *name)
{
	for (int i = 0; i < rel->ncols; i++)
		if (strcmp(rel->cols[i].name, name) == 0)
			return i;
	ck_abort_msg("no column %s", name);
	return -1;
}

static void assert_text(const struct ls_myr_event *ev, const struct ls_tuple *t,
			const char *col, const char *want)
{
	const struct ls_value *v = &t->vals[col_of(ev->rel, col)];
	ck_assert_msg(v->kind == LS_VAL_TEXT, "%s: kind %c", col, v->kind);
	ck_assert_str_eq(v->data, want);
	ck_assert_uint_eq(v->len, strlen(want));
}

START_TEST(my_rows_values_are_exact)
{
	struct replay r;
	struct ls_myr_event ev;
	replay_open(&r, "types_full");
	replay_find(&r, LS_MYR_WRITE_ROWS_V1, 1, &ev);
	ck_assert_uint_eq(ev.nchanges, 1);
	const struct ls_tuple *t = &ev.changes[0].new_tup;
	ck_assert_int_eq(ev.changes[0].op, LS_OP_INSERT);
	assert_text(&ev, t, "bu", "18446744073709551615");
	assert_text(&ev, t, "iu", "4294967295");
	assert_text(&ev, t, "d2", "12345678901234567890123456789012345.123456789012345678901234567890");
	assert_text(&ev, t, "dbl", "0.1");
	assert_text(&ev, t, "t3", "12:34:56.789");
	assert_text(&ev, t, "ts5", "2001-02-03 04:05:06.12345");
	assert_text(&ev, t, "vc", "h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80");
	assert_text(&ev, t, "e", "c'q");
	assert_text(&ev, t, "s", "x,z,w6");
	assert_text(&ev, t, "b13", "5461");
	assert_text(&ev, t, "b64", "18446744073709551615");
	const struct ls_value *bn = &t->vals[col_of(ev.rel, "bn")];
	ck_assert_int_eq(bn->kind, LS_VAL_BINARY);
	ck_assert_uint_eq(bn->len, 4);
	ck_assert_int_eq(memcmp(bn->data, "\0\1\2\0", 4), 0);
	/* The second statement: rows 2 and 3 in one event. */
	replay_find(&r, LS_MYR_WRITE_ROWS_V1, 1, &ev);
	ck_assert_uint_eq(ev.nchanges, 2);
	assert_text(&ev, &ev.changes[0].new_tup, "bi", "-9223372036854775808");
	assert_text(&ev, &ev.changes[0].new_tup, "d1", "-12345678.99");
	assert_text(&ev, &ev.changes[0].new_tup, "t3", "-00:00:01.500");
	assert_text(&ev, &ev.changes[0].new_tup, "e", "a");
	assert_text(&ev, &ev.changes[1].new_tup, "i", "-5");
	assert_text(&ev, &ev.changes[1].new_tup, "iu", "5");
	assert_text(&ev, &ev.changes[1].new_tup, "d1", "-0.05");
	ck_assert_int_eq(ev.changes[1].new_tup.vals[col_of(ev.rel, "b1")].kind, LS_VAL_NULL);
	replay_close(&r);
}
END_TEST

START_TEST(my_rows_updates_carry_full_before_image)
{
	struct replay r;
	struct ls_myr_event ev;
	replay_open(&r, "types_full");
	replay_find(&r, LS_MYR_UPDATE_ROWS_V1, 1, &ev);
	ck_assert_uint_eq(ev.nchanges, 1);
	const struct ls_change *ch = &ev.changes[0];
	ck_assert_int_eq(ch->op, LS_OP_UPDATE);
	ck_assert_int_eq(ch->old_kind, LS_OLD_FULL);
	ck_assert_uint_eq(ch->relid, ev.rel->id);
	assert_text(&ev, &ch->old_tup, "i", "2147483647");
	assert_text(&ev, &ch->new_tup, "i", "2147483646");
	assert_text(&ev, &ch->new_tup, "vc", "upd");
	ck_assert_int_eq(ev.rel->replident, LS_REPLIDENT_DEFAULT);
	ck_assert_uint_eq(ls_relation_nkeys(ev.rel), 1);
	replay_find(&r, LS_MYR_DELETE_ROWS_V1, 1, &ev);
	ck_assert_int_eq(ev.changes[0].op, LS_OP_DELETE);
	ck_assert_int_eq(ev.changes[0].old_kind, LS_OLD_FULL);
	assert_text(&ev, &ev.changes[0].old_tup, "id", "2");
	ck_assert(ev.flags & LS_MYR_STMT_END);
	replay_close(&r);
}
END_TEST

START_TEST(my_rows_missing_reports_fallbacks)
{
	struct replay r;
	struct ls_myr_event ev;
	replay_open(&r, "types_nometa");
	replay_find(&r, LS_MYR_TABLE_MAP, 1, &ev);
	unsigned m = ls_myr_missing(r.d, ev.table_id);
	ck_assert_uint_eq(m, LS_MYR_MISSING_NAMES | LS_MYR_MISSING_SIGNEDNESS |
		      LS_MYR_MISSING_CHARSET | LS_MYR_MISSING_MEMBERS | LS_MYR_MISSING_KEY);
	ck_assert_str_eq(ev.rel->cols[0].name, "@1");
	ck_assert_int_eq(ev.rel->replident, LS_REPLIDENT_FULL);
	struct ls_err err = { 0 };
	ck_assert_int_eq(ls_myr_set_table_info(r.d, ev.table_id, &ty_info, &err), 0);
	ck_assert_uint_eq(ls_myr_missing(r.d, ev.table_id), 0);
	const struct ls_relation *rel = ls_myr_relation(r.d, ev.table_id);
	ck_assert_str_eq(rel->cols[0].name, "id");
	ck_assert_str_eq(rel->cols[col_of(rel, "bu")].type_name, "bigint unsigned");
	ck_assert_str_eq(rel->cols[col_of(rel, "d4")].type_name, "decimal(20,10) unsigned");
	ck_assert_str_eq(rel->cols[col_of(rel, "e")].type_name, "enum('a','b','c''q')");
	ck_assert_str_eq(rel->cols[col_of(rel, "dt6")].type_name, "datetime(6)");
	ck_assert_str_eq(rel->cols[col_of(rel, "lb")].type_name, "longblob");
	ck_assert_int_eq(rel->replident, LS_REPLIDENT_DEFAULT);
	replay_close(&r);

	replay_open(&r, "types_full");
	replay_find(&r, LS_MYR_TABLE_MAP, 1, &ev);
	ck_assert_uint_eq(ls_myr_missing(r.d, ev.table_id), 0);
	ck_assert_str_eq(ev.rel->cols[col_of(ev.rel, "c70")].type_name, "char(70)");
	ck_assert_str_eq(ev.rel->cols[col_of(ev.rel, "vcl")].type_name, "varchar(300)");
	ck_assert_str_eq(ev.rel->cols[col_of(ev.rel, "lat")].type_name, "varchar(10)");
	ck_assert_str_eq(ev.rel->cols[col_of(ev.rel, "pt")].type_name, "point");
	replay_close(&r);
}
END_TEST

/* ---- v2 events -------------------------------------------------------------------- */

/* Decodes every event of a scenario, rows events converted to v2 (type + 7,
 * a 2-byte extra-data length after the post-header, here with 3 bytes of
 * extra data), and returns the printed text with v2 names renamed back. */
static char *decode_as_v2(const char *name)
{
	struct ls_testutil_hex g;
	golden_load(name, &g);
	struct ls_myr *d = ls_myr_new(0);
	struct ls_arena a;
	ls_arena_init(&a);
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	int nv2 = 0;
	for (size_t i = 0; i < g.n; i++) {
		const uint8_t *body = g.m[i].p + LS_MYR_HEADER_LEN;
		size_t blen = g.m[i].len - LS_MYR_HEADER_LEN - LS_MYR_CHECKSUM_LEN;
		unsigned type = g.m[i].p[4];
		uint8_t *b2 = malloc(blen + 5);
		memcpy(b2, body, blen);
		if (type != LS_MYR_TABLE_MAP) {
			type += 7;
			memcpy(b2, body, 8);
			b2[8] = 5;
			b2[9] = 0;
			memcpy(b2 + 10, "xyz", 3);
			memcpy(b2 + 13, body + 8, blen - 8);
			blen += 5;
			nv2++;
		}
		struct ls_myr_event ev;
		struct ls_err err = { 0 };
		ck_assert_msg(ls_myr_decode(d, type, b2, blen, &a, &ev, &err) == 0, "%s", err.msg);
		ck_assert_int_eq(ev.type, type);
		ev.type = type == LS_MYR_TABLE_MAP ? type : (uint8_t)(type - 7);
		ls_myr_event_print(out, &ev);
		free(b2);
		ls_arena_reset(&a);
	}
	ck_assert_int_gt(nv2, 10);
	fclose(out);
	ls_arena_free(&a);
	ls_myr_free(d);
	ls_testutil_hex_free(&g);
	return text;
}

START_TEST(my_rows_v2_events_decode_like_v1)
{
	char *v1 = golden_decode("types_full", false), *v2 = decode_as_v2("types_full");
	ck_assert_str_eq(v1, v2);
	free(v1);
	free(v2);
}
END_TEST

/* ---- cache ------------------------------------------------------------------------ */

/* A hand-made table map: `s`.`t<n>` (id int, v int) with id as primary
 * key when key, table id n. */
static size_t make_map(uint8_t *b, unsigned id, bool key)
{
	size_t n = 0;
	b[n++] = (uint8_t)id;
	memset(b + n, 0, 5);
	n += 5;
	b[n++] = 1;                         /* flags */
	b[n++] = 0;
	b[n++] = 1; b[n++] = 's'; b[n++] = 0;
	b[n++] = 2; b[n++] = 't'; b[n++] = (uint8_t)('0' + id % 10); b[n++] = 0;
	b[n++] = 2;                         /* columns */
	b[n++] = 3; b[n++] = 3;             /* LONG, LONG */
	b[n++] = 0;                         /* no metadata */
	b[n++] = 2;                         /* v nullable */
	b[n++] = 4; b[n++] = 5;             /* COLUMN_NAME */
	b[n++] = 2; b[n++] = 'i'; b[n++] = 'd';
	b[n++] = 1; b[n++] = 'v';
	b[n++] = 1; b[n++] = 1; b[n++] = 0; /* SIGNEDNESS: signed */
	if (key) {
		b[n++] = 8; b[n++] = 1; b[n++] = 0;   /* SIMPLE_PRIMARY_KEY: id */
	}
	return n;
}

/* A rows event of table id: present columns as a bitmap, then the row
 * image bytes. */
static size_t make_rows(uint8_t *b, unsigned id, uint8_t present, const uint8_t *img,
			size_t ilen)
{
	size_t n = 0;
	b[n++] = (uint8_t)id;
	memset(b + n, 0, 5);
	n += 5;
	b[n++] = 1;                         /* STMT_END */
	b[n++] = 0;
	b[n++] = 2;                         /* columns */
	b[n++] = present;
	if (ilen)
		memcpy(b + n, img, ilen);
	return n + ilen;
}

static int decode(struct ls_myr *d, unsigned type, const uint8_t *b, size_t n,
		  struct ls_arena *a, struct ls_myr_event *ev, struct ls_err *err)
{
	memset(err, 0, sizeof *err);
	return ls_myr_decode(d, type, b, n, a, ev, err);
}

START_TEST(my_rows_cache_resend_keeps_info_change_drops_it)
{
	struct ls_myr *d = ls_myr_new(0);
	struct ls_arena a;
	ls_arena_init(&a);
	uint8_t b[128];
	struct ls_myr_event ev;
	struct ls_err err;
	size_t n = make_map(b, 7, true);
	ck_assert_int_eq(decode(d, LS_MYR_TABLE_MAP, b, n, &a, &ev, &err), 0);
	ck_assert_int_eq(ev.map_change, LS_MYR_MAP_NEW);
	struct ls_myr_col_info ci[2] = { { .name = "ID", .is_unsigned = -1, .is_binary = -1, .is_key = 1 },
					 { .name = "V", .type_name = "int(11)", .is_unsigned = 1,
					   .is_binary = -1, .is_key = -1 } };
	struct ls_myr_table_info info = { 4242, 2, ci };
	ck_assert_int_eq(ls_myr_set_table_info(d, 7, &info, &err), 0);
	ck_assert_int_eq(decode(d, LS_MYR_TABLE_MAP, b, n, &a, &ev, &err), 0);
	ck_assert_int_eq(ev.map_change, LS_MYR_MAP_SAME);
	ck_assert_str_eq(ev.rel->cols[1].name, "V");
	ck_assert_str_eq(ev.rel->cols[1].type_name, "int(11)");
	ck_assert_uint_eq(ev.rel->id, 4242);
	/* v = -1 reads as unsigned now */
	const uint8_t img[] = { 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff };
	size_t rn = make_rows(b + 64, 7, 3, img, sizeof img);
	ck_assert_int_eq(decode(d, LS_MYR_WRITE_ROWS_V1, b + 64, rn, &a, &ev, &err), 0);
	ck_assert_str_eq(ev.changes[0].new_tup.vals[1].data, "4294967295");
	ck_assert_uint_eq(ev.changes[0].relid, 4242);
	/* Same id, different map (no key now): CHANGED, info gone. */
	n = make_map(b, 7, false);
	ck_assert_int_eq(decode(d, LS_MYR_TABLE_MAP, b, n, &a, &ev, &err), 0);
	ck_assert_int_eq(ev.map_change, LS_MYR_MAP_CHANGED);
	ck_assert_str_eq(ev.rel->cols[1].name, "v");
	ck_assert_uint_eq(ev.rel->id, 7);
	ck_assert_uint_eq(ls_myr_missing(d, 7), LS_MYR_MISSING_KEY);
	rn = make_rows(b + 64, 7, 3, img, sizeof img);
	ck_assert_int_eq(decode(d, LS_MYR_WRITE_ROWS_V1, b + 64, rn, &a, &ev, &err), 0);
	ck_assert_str_eq(ev.changes[0].new_tup.vals[1].data, "-1");
	ls_arena_free(&a);
	ls_myr_free(d);
}
END_TEST

START_TEST(my_rows_cache_is_bounded_lru)
{
	struct ls_myr *d = ls_myr_new(2);
	struct ls_arena a;
	ls_arena_init(&a);
	uint8_t b[64];
	struct ls_myr_event ev;
	struct ls_err err;
	for (unsigned id = 1; id <= 2; id++)
		ck_assert_int_eq(decode(d, LS_MYR_TABLE_MAP, b, make_map(b, id, true), &a, &ev, &err), 0);
	/* Touch 1, so 2 is the least recently used when 3 arrives. */
	ck_assert_int_eq(decode(d, LS_MYR_TABLE_MAP, b, make_map(b, 1, true), &a, &ev, &err), 0);
	ck_assert_int_eq(ev.map_change, LS_MYR_MAP_SAME);
	ck_assert_int_eq(decode(d, LS_MYR_TABLE_MAP, b, make_map(b, 3, true), &a, &ev, &err), 0);
	ck_assert_ptr_nonnull(ls_myr_relation(d, 1));
	ck_assert_ptr_null(ls_myr_relation(d, 2));
	ck_assert_ptr_nonnull(ls_myr_relation(d, 3));
	const uint8_t img[] = { 2, 1, 0, 0, 0 };
	size_t n = make_rows(b, 2, 3, img, sizeof img);
	ck_assert_int_eq(decode(d, LS_MYR_WRITE_ROWS_V1, b, n, &a, &ev, &err), -1);
	ck_assert_msg(strstr(err.msg, "WRITE_ROWS_EVENT_V1 table 2: no table map") != NULL, "%s", err.msg);
	ls_arena_free(&a);
	ls_myr_free(d);
}
END_TEST

START_TEST(my_rows_partial_before_image_uses_key)
{
	struct ls_myr *d = ls_myr_new(0);
	struct ls_arena a;
	ls_arena_init(&a);
	uint8_t b[64];
	struct ls_myr_event ev;
	struct ls_err err;
	ck_assert_int_eq(decode(d, LS_MYR_TABLE_MAP, b, make_map(b, 1, true), &a, &ev, &err), 0);
	const uint8_t img[] = { 0, 9, 0, 0, 0 };        /* only id = 9 */
	size_t n = make_rows(b, 1, 1, img, sizeof img);
	ck_assert_int_eq(decode(d, LS_MYR_DELETE_ROWS_V1, b, n, &a, &ev, &err), 0);
	ck_assert_int_eq(ev.changes[0].old_kind, LS_OLD_KEY);
	ck_assert_str_eq(ev.changes[0].old_tup.vals[0].data, "9");
	ck_assert_int_eq(ev.changes[0].old_tup.vals[1].kind, LS_VAL_UNCHANGED);
	/* Without a key the row cannot be identified. */
	ck_assert_int_eq(decode(d, LS_MYR_TABLE_MAP, b, make_map(b, 2, false), &a, &ev, &err), 0);
	n = make_rows(b, 2, 1, img, sizeof img);
	ck_assert_int_eq(decode(d, LS_MYR_DELETE_ROWS_V1, b, n, &a, &ev, &err), -1);
	ck_assert_msg(strstr(err.msg, "binlog_row_image=FULL") != NULL, "%s", err.msg);
	/* A rows event without rows needs no map (statement-end marker). */
	n = make_rows(b, 99, 3, NULL, 0);
	ck_assert_int_eq(decode(d, LS_MYR_WRITE_ROWS_V1, b, n, &a, &ev, &err), 0);
	ck_assert_uint_eq(ev.nchanges, 0);
	ck_assert_ptr_null(ev.rel);
	ls_arena_free(&a);
	ls_myr_free(d);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------- */

START_TEST(my_rows_rejects_every_truncation)
{
	struct ls_testutil_hex g;
	golden_load("types_full", &g);
	struct ls_myr *d = ls_myr_new(0);
	struct ls_arena a;
	ls_arena_init(&a);
	long failures = 0;
	for (size_t i = 0; i < g.n; i++) {
		const uint8_t *body = g.m[i].p + LS_MYR_HEADER_LEN;
		size_t blen = g.m[i].len - LS_MYR_HEADER_LEN - LS_MYR_CHECKSUM_LEN;
		unsigned type = g.m[i].p[4];
		struct ls_myr_event ev;
		struct ls_err err;
		uint32_t full = 0;
		if (type != LS_MYR_TABLE_MAP) {
			ck_assert_int_eq(decode(d, type, body, blen, &a, &ev, &err), 0);
			full = ev.nchanges;
		}
		for (size_t cut = 0; cut < blen; cut++) {
			/* A copy of exactly cut bytes, so ASan sees any over-read. */
			uint8_t *p = malloc(cut ? cut : 1);
			memcpy(p, body, cut);
			int rc = decode(d, type, p, cut, &a, &ev, &err);
			if (rc != 0) {
				failures++;
				ck_assert_msg(strstr(err.msg, " at byte ") != NULL, "%s", err.msg);
			} else if (type != LS_MYR_TABLE_MAP) {
				/* only a cut at a row boundary can succeed */
				ck_assert_uint_lt(ev.nchanges, full > 0 ? full : 1);
			}
			free(p);
			ls_arena_reset(&a);
		}
		/* the cache still has the right map */
		if (type == LS_MYR_TABLE_MAP) {
			ck_assert_int_eq(decode(d, type, body, blen, &a, &ev, &err), 0);
			ck_assert_int_ne(ev.map_change, LS_MYR_MAP_NEW);
		}
	}
	ck_assert_int_gt(failures, 1000);
	ls_arena_free(&a);
	ls_myr_free(d);
	ls_testutil_hex_free(&g);
}
END_TEST

START_TEST(my_rows_errors_name_event_table_row_column_offset)
{
	struct replay r;
	struct ls_myr_event ev;
	replay_open(&r, "types_full");
	replay_find(&r, LS_MYR_TABLE_MAP, 1, &ev);
	/* The first row event with its d1 digits corrupted. */
	struct ls_testutil_msg *e = &r.g.m[r.next];
	ck_assert_int_eq(e->p[4], LS_MYR_WRITE_ROWS_V1);
	uint8_t *body = malloc(e->len);
	size_t blen = e->len - LS_MYR_HEADER_LEN - LS_MYR_CHECKSUM_LEN;
	memcpy(body, e->p + LS_MYR_HEADER_LEN, blen);
	/* post-header 8, ncols 1, bitmap 7, null bitmap 7, then
	 * id 4, ti..bu 1+1+2+2+3+3+4+4+8+8 = 36: d1 starts at byte 63 */
	body[63] = 0xff;
	body[64] = 0xff;
	body[65] = 0xff;
	body[66] = 0xff;
	struct ls_err err;
	ck_assert_int_eq(decode(r.d, LS_MYR_WRITE_ROWS_V1, body, blen, &r.a, &ev, &err), -1);
	ck_assert_msg(strstr(err.msg, "WRITE_ROWS_EVENT_V1 table ") == err.msg, "%s", err.msg);
	ck_assert_msg(strstr(err.msg, "(rec.ty) row 1 column 12 (d1): corrupt decimal digits at byte 63"),
		      "%s", err.msg);
	/* A column count that disagrees with the map. */
	memcpy(body, e->p + LS_MYR_HEADER_LEN, blen);
	body[8] = 54;
	ck_assert_int_eq(decode(r.d, LS_MYR_WRITE_ROWS_V1, body, blen, &r.a, &ev, &err), -1);
	ck_assert_msg(strstr(err.msg, "54 columns, the table map has 55 at byte 8"), "%s", err.msg);
	/* An ENUM index beyond the members the catalog gave. */
	static const char *const two[] = { "a", "b" };
	struct ls_myr_col_info ci[55];
	for (int i = 0; i < 55; i++)
		ci[i] = (struct ls_myr_col_info){ NULL, NULL, -1, -1, -1, 0, NULL };
	ci[48].nmembers = 2;
	ci[48].members = two;
	struct ls_myr_table_info info = { 0, 55, ci };
	ck_assert_int_eq(ls_myr_set_table_info(r.d, ev.table_id, &info, &err), 0);
	memcpy(body, e->p + LS_MYR_HEADER_LEN, blen);
	ck_assert_int_eq(decode(r.d, LS_MYR_WRITE_ROWS_V1, body, blen, &r.a, &ev, &err), -1);
	ck_assert_msg(strstr(err.msg, "column 49 (e): enum index 3 of 2 members"), "%s", err.msg);
	info.ncols = 54;
	ck_assert_int_eq(ls_myr_set_table_info(r.d, ev.table_id, &info, &err), -1);
	ck_assert_msg(strstr(err.msg, "catalog has 54 columns"), "%s", err.msg);
	ck_assert_int_eq(ls_myr_set_table_info(r.d, 123456, &info, &err), -1);
	free(body);
	replay_close(&r);
}
END_TEST

START_TEST(my_rows_whole_event_checks_size_and_crc)
{
	struct ls_testutil_hex g;
	golden_load("types_full", &g);
	struct ls_myr *d = ls_myr_new(0);
	struct ls_arena a;
	ls_arena_init(&a);
	struct ls_myr_event ev;
	struct ls_err err = { 0 };
	uint8_t *p = g.m[0].p;
	ck_assert_int_eq(ls_myr_decode_event(d, p, g.m[0].len, true, &a, &ev, &err), 0);
	p[30] ^= 1;
	ck_assert_int_eq(ls_myr_decode_event(d, p, g.m[0].len, true, &a, &ev, &err), -1);
	ck_assert_msg(strstr(err.msg, "CRC32 mismatch"), "%s", err.msg);
	p[30] ^= 1;
	ck_assert_int_eq(ls_myr_decode_event(d, p, g.m[0].len - 1, true, &a, &ev, &err), -1);
	ck_assert_msg(strstr(err.msg, "event_size"), "%s", err.msg);
	ck_assert_int_eq(ls_myr_decode_event(d, p, 10, false, &a, &ev, &err), -1);
	uint8_t other[4] = { 0 };
	ck_assert_int_eq(ls_myr_decode(d, 2, other, sizeof other, &a, &ev, &err), -1);
	ck_assert_msg(strstr(err.msg, "type 2 is not"), "%s", err.msg);
	ck_assert(!ls_myr_handles(2));
	ck_assert(ls_myr_handles(LS_MYR_DELETE_ROWS_V2));
	ls_arena_free(&a);
	ls_myr_free(d);
	ls_testutil_hex_free(&g);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("my_rows");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, my_rows_golden_full_metadata);
	tcase_add_test(tc, my_rows_golden_minimal_metadata);
	tcase_add_test(tc, my_rows_golden_no_metadata_uses_fallbacks);
	tcase_add_test(tc, my_rows_golden_old_temporal);
	tcase_add_test(tc, my_rows_catalog_completes_missing_metadata);
	tcase_add_test(tc, my_rows_values_are_exact);
	tcase_add_test(tc, my_rows_updates_carry_full_before_image);
	tcase_add_test(tc, my_rows_missing_reports_fallbacks);
	tcase_add_test(tc, my_rows_v2_events_decode_like_v1);
	tcase_add_test(tc, my_rows_cache_resend_keeps_info_change_drops_it);
	tcase_add_test(tc, my_rows_cache_is_bounded_lru);
	tcase_add_test(tc, my_rows_partial_before_image_uses_key);
	tcase_add_test(tc, my_rows_rejects_every_truncation);
	tcase_add_test(tc, my_rows_errors_name_event_table_row_column_offset);
	tcase_add_test(tc, my_rows_whole_event_checks_size_and_crc);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
