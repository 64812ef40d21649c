#include "connectors/postgres/pg_tgt.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/postgres/pg_copy.h"
#include "connectors/postgres/pg_drift.h"
#include "connectors/postgres/pg_mysqltypes.h"
#include "connectors/postgres/pg_target.h"

/* Whether a relation is MySQL-typed, remembered per relation object: the
 * check reads every column's type name, which done for each change took
 * about half of the apply thread's CPU.  An entry holds only for the
 * object it was made for, and relation(), which every new or changed
 * definition passes first (target.h), forgets it. */
#define MYCACHE 64
struct mycache {
	const struct ls_relation *rel;   /* NULL: empty */
	uint32_t id;
	bool mysql;
};

struct ls_target {
	struct ls_pgtarget *pg;
	struct mycache mc[MYCACHE];   /* apply thread */
	struct ls_drift_conn *drift;  /* drift checks' own connection, apply thread */
	struct ls_pgmy *my;           /* MySQL-typed relations, apply thread */
	/* fixed at open: copy sessions read them from other threads */
	struct ls_pgcopy_opts copy;   /* strings owned */
	_Atomic uint64_t copy_rows;
};

struct ls_target_copy {
	struct ls_target *t;
	struct ls_pgcopy *c;
	struct ls_pgmy_copy *my;
	const struct ls_relation *rel;   /* the table's mapped relation */
};

static void tgt_free(struct ls_target *t)
{
	if (t == NULL)
		return;
	ls_pgtarget_free(t->pg);
	ls_pgdrift_close(t->drift);
	ls_pgmy_free(t->my);
	free((char *)t->copy.pipeline);
	free((char *)t->copy.target);
	free((char *)t->copy.conninfo);
	free(t);
}

static int tgt_open(const struct ls_target_opts *o, struct ls_target **out, struct ls_err *err)
{
	*out = NULL;
	const struct ls_config_target *cfg = o->cfg;
	struct ls_target *t = calloc(1, sizeof *t);
	if (t == NULL)
		return ls_err_set(err, false, "out of memory");
	t->copy.pipeline = strdup(o->pipeline ? o->pipeline : "");
	t->copy.target = strdup(cfg->name ? cfg->name : "");
	t->copy.conninfo = strdup(cfg->conninfo ? cfg->conninfo : "");
	t->my = ls_pgmy_new();
	if (!t->copy.pipeline || !t->copy.target || !t->copy.conninfo || !t->my) {
		tgt_free(t);
		return ls_err_set(err, false, "out of memory");
	}
	struct ls_pgtarget_opts po = {
		.pipeline = t->copy.pipeline, .target = t->copy.target,
		.conninfo = t->copy.conninfo, .create_tables = cfg->create_tables,
		.ddl = cfg->ddl, .batch_rows = cfg->batch_rows, .batch_ms = cfg->batch_ms,
		.from_mysql = o->source == LS_ENGINE_MYSQL, .session = o->session,
		.on_commit = o->on_commit, .ctx = o->ctx,
	};
	if (ls_pgtarget_new(&po, &t->pg, err) < 0) {
		tgt_free(t);
		return -1;
	}
	*out = t;
	return 0;
}

static void tgt_checkpoint(const struct ls_target *t, struct ls_target_ckpt *out)
{
	struct ls_pgtarget_ckpt c;
	ls_pgtarget_checkpoint(t->pg, &c);
	out->present = c.present;
	out->buffer_offset = c.buffer_offset;
	out->source_seq = c.source_seq;
	memcpy(out->source_pos, c.source_pos, sizeof out->source_pos);
}

/* MySQL-typed relations and values are mapped first (pg_mysqltypes.h). */
static bool is_mysql(struct ls_target *t, const struct ls_relation *rel)
{
	struct mycache *c = &t->mc[rel->id % MYCACHE];
	if (c->rel != rel || c->id != rel->id)
		*c = (struct mycache){ rel, rel->id, ls_pgmy_is_mysql_relation(rel) };
	return c->mysql;
}

static int tgt_relation(struct ls_target *t, const struct ls_relation *rel, struct ls_err *err)
{
	t->mc[rel->id % MYCACHE].rel = NULL;
	const struct ls_relation *pr = ls_pgmy_map(t->my, rel, err);
	return pr ? ls_pgtarget_relation(t->pg, pr, err) : ls_err_prefix(err, "target %s",
									  t->copy.target);
}

static int tgt_begin(struct ls_target *t, const struct ls_txn *txn, struct ls_err *err)
{
	return ls_pgtarget_begin(t->pg, txn, err);
}

static int tgt_change(struct ls_target *t, const struct ls_relation *rel,
		      const struct ls_change *ch, struct ls_err *err)
{
	if (rel && !is_mysql(t, rel))
		return ls_pgtarget_change(t->pg, rel, ch, err);
	const struct ls_relation *pr = rel ? ls_pgmy_map(t->my, rel, err) : NULL;
	const struct ls_change *pc = ch;
	if ((rel && pr == NULL) || ls_pgmy_change(t->my, rel, ch, &pc, err) < 0)
		return ls_err_prefix(err, "target %s", t->copy.target);
	return ls_pgtarget_change(t->pg, pr, pc, err);
}

static int tgt_savepoint(struct ls_target *t, uint64_t id, struct ls_err *err)
{
	return ls_pgtarget_savepoint(t->pg, id, err);
}

static int tgt_rollback_to(struct ls_target *t, uint64_t id, struct ls_err *err)
{
	return ls_pgtarget_rollback_to(t->pg, id, err);
}

static int tgt_abort_txn(struct ls_target *t, struct ls_err *err)
{
	return ls_pgtarget_abort_txn(t->pg, err);
}

static int tgt_end(struct ls_target *t, const struct ls_txn *txn, int64_t buffer_offset,
		   struct ls_err *err)
{
	return ls_pgtarget_end(t->pg, txn, buffer_offset, err);
}

static int tgt_flush(struct ls_target *t, struct ls_err *err)
{
	return ls_pgtarget_flush(t->pg, err);
}

static int tgt_tick(struct ls_target *t, int *wait_ms, struct ls_err *err)
{
	return ls_pgtarget_tick(t->pg, wait_ms, err);
}

static int tgt_reset(struct ls_target *t, struct ls_err *err)
{
	return ls_pgtarget_reset(t->pg, err);
}

static void tgt_stats(const struct ls_target *t, struct ls_target_stats *out)
{
	struct ls_pgtarget_stats s;
	ls_pgtarget_stats(t->pg, &s);
	*out = (struct ls_target_stats){
		.commits = s.commits, .txns = s.txns, .rows = s.rows, .ddl = s.ddl,
		.copy_rows = atomic_load(&t->copy_rows),
	};
}

static int tgt_snapshot_state(struct ls_target *t, const char *schema, const char *name,
			      bool *copied, uint64_t *copied_at, struct ls_err *err)
{
	return ls_pgtarget_snapshot_state(t->pg, schema, name, copied, copied_at, err);
}

/* First sight of the relation on the apply connection does exactly this. */
static int tgt_prepare_table(struct ls_target *t, const struct ls_relation *rel,
			     struct ls_err *err)
{
	return tgt_relation(t, rel, err);
}

static int tgt_copy_open(struct ls_target *t, struct ls_target_copy **out, struct ls_err *err)
{
	*out = NULL;
	struct ls_target_copy *c = calloc(1, sizeof *c);
	if (c == NULL)
		return ls_err_set(err, false, "out of memory");
	c->t = t;
	c->my = ls_pgmy_copy_new();
	if (c->my == NULL) {
		free(c);
		return ls_err_set(err, false, "out of memory");
	}
	if (ls_pgcopy_open(&t->copy, &c->c, err) < 0) {
		ls_pgmy_copy_free(c->my);
		free(c);
		return -1;
	}
	*out = c;
	return 0;
}

static int tgt_copy_table_begin(struct ls_target_copy *c, const struct ls_relation *rel,
				struct ls_err *err)
{
	if (ls_pgmy_copy_begin(c->my, rel, &c->rel, err) < 0)
		return ls_err_prefix(err, "target %s", c->t->copy.target);
	return ls_pgcopy_table_begin(c->c, c->rel, err);
}

static int tgt_copy_data(struct ls_target_copy *c, const char *data, size_t len,
			 struct ls_err *err)
{
	const char *out;
	size_t n;
	if (ls_pgmy_copy_data(c->my, data, len, &out, &n, err) < 0)
		return ls_err_prefix(err, "target %s", c->t->copy.target);
	return n ? ls_pgcopy_data(c->c, out, n, err) : 0;
}

static int tgt_copy_table_end(struct ls_target_copy *c, const struct ls_relation *rel,
			      uint64_t rows, uint64_t copied_at_seq, struct ls_err *err)
{
	const char *out;
	size_t n;
	if (ls_pgmy_copy_end(c->my, &out, &n, err) < 0)
		return ls_err_prefix(err, "target %s", c->t->copy.target);
	if (n && ls_pgcopy_data(c->c, out, n, err) < 0)
		return -1;
	if (ls_pgcopy_table_end(c->c, c->rel ? c->rel : rel, rows, copied_at_seq, err) < 0)
		return -1;
	atomic_fetch_add(&c->t->copy_rows, rows);
	return 0;
}

static void tgt_copy_close(struct ls_target_copy *c)
{
	if (c == NULL)
		return;
	ls_pgcopy_close(c->c);
	ls_pgmy_copy_free(c->my);
	free(c);
}

/* Drift checks run on a connection of their own, opened on first use: the
 * apply thread calls them right after a commit, so it sees what was applied. */
static int drift_conn(struct ls_target *t, struct ls_err *err)
{
	if (t->drift == NULL && ls_pgdrift_open(t->copy.conninfo, &t->drift, err) < 0)
		return ls_err_prefix(err, "target %s", t->copy.target);
	return 0;
}

static int tgt_chunk_checksum(struct ls_target *t, const struct ls_relation *rel,
			      const char *lo, const char *hi, uint64_t *rows, char *hash,
			      size_t hashlen, struct ls_err *err)
{
	if (drift_conn(t, err) < 0)
		return -1;
	return ls_pgdrift_checksum(t->drift, rel, lo, hi, rows, hash, hashlen, err);
}

static int tgt_chunk_rows(struct ls_target *t, const struct ls_relation *rel, const char *lo,
			  const char *hi, int (*row)(void *ctx, const char *key, const char *hash),
			  void *ctx, struct ls_err *err)
{
	if (drift_conn(t, err) < 0)
		return -1;
	return ls_pgdrift_rows(t->drift, rel, lo, hi, row, ctx, err);
}

const struct ls_target_ops ls_pg_target_ops = {
	.engine = "postgres",
	.copy_format = "pg-text",
	.open = tgt_open,
	.free = tgt_free,
	.checkpoint = tgt_checkpoint,
	.relation = tgt_relation,
	.begin = tgt_begin,
	.change = tgt_change,
	.abort_txn = tgt_abort_txn,
	.savepoint = tgt_savepoint,
	.rollback_to = tgt_rollback_to,
	.end = tgt_end,
	.flush = tgt_flush,
	.tick = tgt_tick,
	.reset = tgt_reset,
	.stats = tgt_stats,
	.snapshot_state = tgt_snapshot_state,
	.prepare_table = tgt_prepare_table,
	.copy_open = tgt_copy_open,
	.copy_table_begin = tgt_copy_table_begin,
	.copy_data = tgt_copy_data,
	.copy_table_end = tgt_copy_table_end,
	.copy_close = tgt_copy_close,
	.chunk_checksum = tgt_chunk_checksum,
	.chunk_rows = tgt_chunk_rows,
};
