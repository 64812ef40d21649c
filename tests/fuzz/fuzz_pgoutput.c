/* libFuzzer target for connectors/postgres/pgoutput.
 *
 * Input: one byte choosing the protocol version (low bit: 0 -> 1, 1 -> 2),
 * then messages, each a 2-byte big-endian length and that many bytes (cut
 * short at the end of the input).  All messages of one input go through one
 * decoder, so the relation cache and stream state carry over between them
 * as they do on a real connection.  Every decoded event is printed, and the
 * decoder's promises about the event are checked. */
#include "connectors/postgres/pgoutput.h"

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

static void check_event(struct ls_pgo *d, const struct ls_pgo_event *ev)
{
	switch (ev->kind) {
	case LS_PGO_RELATION:
		if (ls_pgo_relation(d, ev->u.relation.rel->id) != ev->u.relation.rel)
			abort();
		if (ev->u.relation.rel->ncols > 0 &&
		    ls_pgo_set_type_name(d, ev->u.relation.rel->id, 0, "fuzz", NULL) != 0)
			abort();
		break;
	case LS_PGO_INSERT:
		check_tuple(ev->rel, &ev->change.new_tup);
		break;
	case LS_PGO_UPDATE:
		if (ev->change.old_kind)
			check_tuple(ev->rel, &ev->change.old_tup);
		check_tuple(ev->rel, &ev->change.new_tup);
		break;
	case LS_PGO_DELETE:
		check_tuple(ev->rel, &ev->change.old_tup);
		break;
	case LS_PGO_TRUNCATE:
		for (uint32_t i = 0; i < ev->change.nrelids; i++)
			if (ls_pgo_relation(d, ev->change.relids[i]) == NULL)
				abort();
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *sink;
	if (sink == NULL)
		sink = fopen("/dev/null", "w");
	if (size < 1 || sink == NULL)
		return 0;
	struct ls_pgo *d = ls_pgo_new((data[0] & 1) + 1);
	if (d == NULL)
		return 0;
	struct ls_arena a;
	ls_arena_init(&a);
	size_t off = 1;
	while (off + 2 <= size) {
		size_t len = (size_t)data[off] << 8 | data[off + 1];
		off += 2;
		if (len > size - off)
			len = size - off;
		/* A copy of exactly len bytes, so ASan sees any read past the end. */
		uint8_t *msg = malloc(len ? len : 1);
		if (msg == NULL)
			break;
		memcpy(msg, data + off, len);
		off += len;
		struct ls_pgo_event ev;
		struct ls_err err;
		bool in = ls_pgo_in_stream(d);
		if (ls_pgo_decode(d, msg, len, &a, &ev, &err) == 0) {
			check_event(d, &ev);
			if (ls_pgo_event_print(sink, d, &ev) != 0)
				abort();
		} else if (ls_pgo_in_stream(d) != in || strlen(err.msg) == 0) {
			abort();
		}
		free(msg);
		ls_arena_reset(&a);
	}
	ls_arena_free(&a);
	ls_pgo_free(d);
	return 0;
}
