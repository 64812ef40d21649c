#include "connectors/mysql/my_tgt.h"

#include "connectors/mysql/my_target.h"

/* The ops take the opaque lib types; the connector's objects stand behind
 * them (struct ls_target is never defined: pointers are converted). */
#define MT(t) ((struct ls_mytarget *)(t))
#define MC(c) ((struct ls_mytarget_copy *)(c))

static int op_open(const struct ls_target_opts *o, struct ls_target **out, struct ls_err *err)
{
	struct ls_mytarget_opts mo = {
		.pipeline = o->pipeline, .target = o->cfg->name, .conninfo = o->cfg->conninfo,
		.create_tables = o->cfg->create_tables, .ddl = o->cfg->ddl,
		.batch_rows = o->cfg->batch_rows, .batch_ms = o->cfg->batch_ms,
		.on_commit = o->on_commit, .ctx = o->ctx,
	};
	struct ls_mytarget *t = NULL;
	int rc = ls_mytarget_new(&mo, &t, err);
	*out = (struct ls_target *)t;
	return rc;
}

static void op_free(struct ls_target *t)
{
	ls_mytarget_free(MT(t));
}

static void op_checkpoint(const struct ls_target *t, struct ls_target_ckpt *out)
{
	ls_mytarget_checkpoint((const struct ls_mytarget *)t, out);
}

static int op_relation(struct ls_target *t, const struct ls_relation *rel, struct ls_err *err)
{
	return ls_mytarget_relation(MT(t), rel, err);
}

static int op_begin(struct ls_target *t, const struct ls_txn *txn, struct ls_err *err)
{
	return ls_mytarget_begin(MT(t), txn, err);
}

static int op_change(struct ls_target *t, const struct ls_relation *rel,
		     const struct ls_change *ch, struct ls_err *err)
{
	return ls_mytarget_change(MT(t), rel, ch, err);
}

static int op_abort_txn(struct ls_target *t, struct ls_err *err)
{
	return ls_mytarget_abort_txn(MT(t), err);
}

static int op_end(struct ls_target *t, const struct ls_txn *txn, int64_t buffer_offset,
		  struct ls_err *err)
{
	return ls_mytarget_end(MT(t), txn, buffer_offset, err);
}

static int op_flush(struct ls_target *t, struct ls_err *err)
{
	return ls_mytarget_flush(MT(t), err);
}

static int op_tick(struct ls_target *t, int *wait_ms, struct ls_err *err)
{
	return ls_mytarget_tick(MT(t), wait_ms, err);
}

static int op_reset(struct ls_target *t, struct ls_err *err)
{
	return ls_mytarget_reset(MT(t), err);
}

static void op_stats(const struct ls_target *t, struct ls_target_stats *out)
{
	struct ls_mytarget_stats s;
	ls_mytarget_stats((const struct ls_mytarget *)t, &s);
	*out = (struct ls_target_stats){
		.commits = s.commits, .txns = s.txns, .rows = s.rows,
		.copy_rows = s.copy_rows, .ddl = s.ddl,
	};
}

static int op_snapshot_state(struct ls_target *t, const char *schema, const char *name,
			     bool *copied, uint64_t *copied_at, struct ls_err *err)
{
	return ls_mytarget_snapshot_state(MT(t), schema, name, copied, copied_at, err);
}

static int op_copy_open(struct ls_target *t, struct ls_target_copy **out, struct ls_err *err)
{
	struct ls_mytarget_copy *c = NULL;
	int rc = ls_mytarget_copy_open(MT(t), &c, err);
	*out = (struct ls_target_copy *)c;
	return rc;
}

static int op_copy_table_begin(struct ls_target_copy *c, const struct ls_relation *rel,
			       struct ls_err *err)
{
	return ls_mytarget_copy_table_begin(MC(c), rel, err);
}

static int op_copy_data(struct ls_target_copy *c, const char *data, size_t len,
			struct ls_err *err)
{
	return ls_mytarget_copy_data(MC(c), data, len, err);
}

static int op_copy_table_end(struct ls_target_copy *c, const struct ls_relation *rel,
			     uint64_t rows, uint64_t copied_at_seq, struct ls_err *err)
{
	return ls_mytarget_copy_table_end(MC(c), rel, rows, copied_at_seq, err);
}

static void op_copy_close(struct ls_target_copy *c)
{
	ls_mytarget_copy_close(MC(c));
}

static int op_chunk_checksum(struct ls_target *t, const struct ls_relation *rel, const char *lo,
			     const char *hi, uint64_t *rows, char *hash, size_t hashlen,
			     struct ls_err *err)
{
	return ls_mytarget_chunk_checksum(MT(t), rel, lo, hi, rows, hash, hashlen, err);
}

static int op_chunk_rows(struct ls_target *t, const struct ls_relation *rel, const char *lo,
			 const char *hi, int (*row)(void *ctx, const char *key, const char *hash),
			 void *ctx, struct ls_err *err)
{
	return ls_mytarget_chunk_rows(MT(t), rel, lo, hi, row, ctx, err);
}

const struct ls_target_ops ls_my_target_ops = {
	.engine = "mysql",
	.copy_format = "rows",
	.open = op_open,
	.free = op_free,
	.checkpoint = op_checkpoint,
	.relation = op_relation,
	.begin = op_begin,
	.change = op_change,
	.abort_txn = op_abort_txn,
	.end = op_end,
	.flush = op_flush,
	.tick = op_tick,
	.reset = op_reset,
	.stats = op_stats,
	.snapshot_state = op_snapshot_state,
	.prepare_table = op_relation,
	.copy_open = op_copy_open,
	.copy_table_begin = op_copy_table_begin,
	.copy_data = op_copy_data,
	.copy_table_end = op_copy_table_end,
	.copy_close = op_copy_close,
	.chunk_checksum = op_chunk_checksum,
	.chunk_rows = op_chunk_rows,
};
