/* libFuzzer target for connectors/mysql/my_rows.
 *
 * Input: events, each a type byte (a handled binlog type as is, any other
 * byte maps onto one of the seven handled types), a 2-byte big-endian body
 * length and that many bytes (cut short at the end of the input).  All
 * events of one input go through one decoder with a 4-entry table cache, so
 * maps, evictions and rows interact as on a real stream.  A new map of an
 * odd table id also gets a catalog description (alternating signedness,
 * charset, key flags, two ENUM/SET members), to exercise that path.  Every
 * decoded event is printed and its promises are checked. */
#include "connectors/mysql/my_rows.h"

#include <stdlib.h>
#include <string.h>

static void check_tuple(const struct ls_relation *rel, const struct ls_tuple *t)
{
	if (t->ncols != rel->ncols)
		abort();
	for (uint16_t i = 0; i < t->ncols; i++) {
		const struct ls_value *v = &t->vals[i];
		if ((v->kind == LS_VAL_TEXT || v->kind == LS_VAL_BINARY) && v->data[v->len] != '\0')
			abort();
		if ((v->kind == LS_VAL_NULL || v->kind == LS_VAL_UNCHANGED) && v->len != 0)
			abort();
	}
}

static void check_rows(const struct ls_myr_event *ev)
{
	if (ev->nchanges && ev->rel == NULL)
		abort();
	for (uint32_t i = 0; i < ev->nchanges; i++) {
		const struct ls_change *ch = &ev->changes[i];
		if (ch->op != LS_OP_DELETE)
			check_tuple(ev->rel, &ch->new_tup);
		if (ch->op != LS_OP_INSERT) {
			if (ch->old_kind != LS_OLD_FULL && ch->old_kind != LS_OLD_KEY)
				abort();
			check_tuple(ev->rel, &ch->old_tup);
		}
	}
}

static void give_info(struct ls_myr *d, const struct ls_myr_event *ev)
{
	static const char *const members[] = { "m1", "m2" };
	const struct ls_relation *rel = ev->rel;
	struct ls_myr_col_info *ci = calloc(rel->ncols, sizeof *ci);
	if (ci == NULL)
		return;
	for (uint16_t i = 0; i < rel->ncols; i++) {
		ci[i].name = i % 2 ? "n" : NULL;
		ci[i].type_name = i % 3 ? NULL : "time(3)";
		ci[i].is_unsigned = (int8_t)(i % 3 - 1);
		ci[i].is_binary = (int8_t)(i % 2);
		ci[i].is_key = i == 0;
		ci[i].nmembers = 2;
		ci[i].members = members;
	}
	struct ls_myr_table_info info = { 0, rel->ncols, ci };
	struct ls_err err;
	if (ls_myr_set_table_info(d, ev->table_id, &info, &err) != 0 && strlen(err.msg) == 0)
		abort();
	if (ls_myr_relation(d, ev->table_id) == NULL)
		abort();
	free(ci);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t types[] = { 19, 23, 24, 25, 30, 31, 32 };
	static FILE *sink;
	if (sink == NULL)
		sink = fopen("/dev/null", "w");
	if (sink == NULL)
		return 0;
	struct ls_myr *d = ls_myr_new(4);
	if (d == NULL)
		return 0;
	struct ls_arena a;
	ls_arena_init(&a);
	size_t off = 0;
	while (off + 3 <= size) {
		unsigned type = data[off];
		if (!ls_myr_handles(type))
			type = types[type % sizeof types];
		size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
		off += 3;
		if (len > size - off)
			len = size - off;
		/* A copy of exactly len bytes, so ASan sees any read past the end. */
		uint8_t *body = malloc(len ? len : 1);
		if (body == NULL)
			break;
		memcpy(body, data + off, len);
		off += len;
		struct ls_myr_event ev;
		struct ls_err err;
		if (ls_myr_decode(d, type, body, len, &a, &ev, &err) == 0) {
			if (type == LS_MYR_TABLE_MAP) {
				if (ev.rel == NULL || ls_myr_relation(d, ev.table_id) != ev.rel)
					abort();
				if (ev.map_change != LS_MYR_MAP_SAME && (ev.table_id & 1)) {
					give_info(d, &ev);
					ev.rel = ls_myr_relation(d, ev.table_id);
				}
			} else {
				check_rows(&ev);
			}
			if (ls_myr_event_print(sink, &ev) != 0)
				abort();
		} else if (strlen(err.msg) == 0) {
			abort();
		}
		free(body);
		ls_arena_reset(&a);
	}
	ls_arena_free(&a);
	ls_myr_free(d);
	return 0;
}
