/* libFuzzer target for lib/codec's decoder.
 *
 * Decodes the input into a fresh arena and reads everything the record points
 * to (ASan flags any bad pointer).  When the input decodes, it must also go
 * back through the encoder: the writer accepts every change the decoder
 * accepts, and encoding is stable (decode(encode(x)) encodes to the same
 * bytes).  Seeds: tests/data/fuzz/fuzz_codec/ (written by test_codec).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

static volatile unsigned sink;

static void touch(const struct ls_codec_record *r)
{
	unsigned sum = (unsigned)strlen(r->pos.text);
	for (uint32_t i = 0; i < r->nrels; i++) {
		const struct ls_relation *rel = &r->rels[i];
		sum += (unsigned)(strlen(rel->schema) + strlen(rel->name));
		for (int c = 0; c < rel->ncols; c++)
			sum += (unsigned)(strlen(rel->cols[c].name) + strlen(rel->cols[c].type_name));
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
	sink = sum;
}

static void die(const char *what, const char *msg)
{
	fprintf(stderr, "fuzz_codec: %s: %s\n", what, msg);
	abort();
}

/* Encodes a decoded record again into out (malloc'd copy). Returns its length,
 * or 0 for TXN chunks other than the first (a writer always starts at 0). */
static size_t reencode(const struct ls_codec_record *r, uint8_t **out)
{
	struct ls_err err = { 0 };
	struct ls_codec_buf b;
	ls_codec_buf_init(&b);
	const uint8_t *rec = NULL;
	size_t len = 0;
	struct ls_codec_writer *w = NULL;
	switch (r->type) {
	case LS_CODEC_POSITION:
		if (ls_codec_encode_position(&b, &r->pos, r->time_us, &err) < 0)
			die("encode position", err.msg);
		break;
	case LS_CODEC_MARKER:
		if (ls_codec_encode_marker(&b, &r->pos, r->time_us, r->prefix, r->payload,
					   r->payload_len, &err) < 0)
			die("encode marker", err.msg);
		break;
	case LS_CODEC_STREAM_ABORT:
		if (ls_codec_encode_stream_abort(&b, r->xid, r->subxid, &err) < 0)
			die("encode stream abort", err.msg);
		break;
	default: {
		bool stream = r->flags & LS_CODEC_STREAM;
		if (r->chunk != 0 && !stream)
			return 0;
		w = ls_codec_writer_new(0);
		if (w == NULL)
			die("writer", "out of memory");
		bool known = !(r->flags & LS_CODEC_NO_COMMIT);
		if (stream) {
			/* a streamed piece starts at any chunk index */
			if (ls_codec_writer_begin_stream(w, r->xid, r->subxid, r->chunk, &err) < 0 ||
			    (known && ls_codec_writer_set_commit(w, &r->pos, r->time_us, &err) < 0))
				die("begin stream", err.msg);
		} else if (ls_codec_writer_begin(w, r->xid, known ? &r->pos : NULL, r->time_us,
						 &err) < 0) {
			die("begin", err.msg);
		}
		for (uint32_t i = 0; i < r->nchanges; i++)
			if (ls_codec_writer_add(w, &r->changes[i].c, r->changes[i].rels,
						r->changes[i].nrels, &err) < 0)
				die("writer refused a decoded change", err.msg);
		if (ls_codec_writer_flush(w, r->flags & LS_CODEC_LAST, &rec, &len, &err) < 0)
			die("flush", err.msg);
	}
	}
	if (w == NULL) {
		rec = b.data;
		len = b.len;
	}
	*out = malloc(len);
	memcpy(*out, rec, len);
	ls_codec_writer_free(w);
	ls_codec_buf_free(&b);
	return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ls_arena a;
	ls_arena_init(&a);
	struct ls_codec_record r;
	struct ls_err err = { 0 };
	if (ls_codec_decode(data, size, &a, &r, &err) < 0) {
		if (strncmp(err.msg, "codec: ", 7) != 0)
			die("error without a message", err.msg);
		ls_arena_free(&a);
		return 0;
	}
	touch(&r);
	if (a.used > LS_CODEC_ARENA_RATIO * size + 64)
		die("arena", "decoding used more memory than the input bounds");
	struct ls_codec_record hdr;
	if (ls_codec_decode_header(data, size, &hdr, &err) < 0 || hdr.type != r.type ||
	    hdr.pos.seq != r.pos.seq)
		die("header", "decode_header disagrees with decode");

	uint8_t *e1 = NULL, *e2 = NULL;
	size_t n1 = reencode(&r, &e1);
	if (n1) {
		struct ls_arena a2;
		ls_arena_init(&a2);
		struct ls_codec_record r2;
		if (ls_codec_decode(e1, n1, &a2, &r2, &err) < 0)
			die("decode of re-encoded record", err.msg);
		if (r2.type != r.type || r2.nchanges != r.nchanges || r2.pos.seq != r.pos.seq ||
		    r2.xid != r.xid || r2.subxid != r.subxid || r2.flags != r.flags ||
		    strcmp(r2.pos.text, r.pos.text) != 0 || r2.time_us != r.time_us)
			die("re-encoded record", "differs from the original");
		size_t n2 = reencode(&r2, &e2);
		if (n2 != n1 || memcmp(e1, e2, n1) != 0)
			die("re-encoding", "not stable");
		ls_arena_free(&a2);
	}
	free(e1);
	free(e2);
	ls_arena_free(&a);
	return 0;
}
