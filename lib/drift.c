#include "drift.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define DEFAULT_PARALLEL 2
#define DEFAULT_RATE 50.0
#define MAX_PENDING 8                  /* chunks per table awaiting targets */
#define MAX_RETRIES 5                  /* per table, for retryable source errors */
#define RETRY_MS 1000
#define REPAIR_BATCH 200               /* keys per repair marker */
#define REPAIR_MAX_KEYS 100000         /* differing keys kept per table for repair */
#define MAX_TARGETS 32                 /* mask width */
#define COUNT_MS 5000                  /* change counters sampled this often */
#define WATCH_MS 1000                  /* unanswered markers looked at this often, at most */
#define GRACE_MS 5000                  /* past a marker this long without its answer: lost */
#define MAX_LOST 3                     /* lost answers re-checked per table, then it fails */

/* ==== buffer and netstrings ================================================ */

void ls_drift_buf_put(struct ls_drift_buf *b, const void *p, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (d == NULL) {
			b->oom = true;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void ls_drift_buf_free(struct ls_drift_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

/* "<len>:<bytes>" */
static void ns_put(struct ls_drift_buf *b, const char *s, size_t n)
{
	char head[24];
	int h = snprintf(head, sizeof head, "%zu:", n);
	ls_drift_buf_put(b, head, (size_t)h);
	ls_drift_buf_put(b, s, n);
}

static void ns_str(struct ls_drift_buf *b, const char *s)
{
	ns_put(b, s, strlen(s));
}

static void ns_u32(struct ls_drift_buf *b, uint32_t v)
{
	char t[16];
	ns_put(b, t, (size_t)snprintf(t, sizeof t, "%" PRIu32, v));
}

/* A bound or a value that may be absent: "-" or "=" + text. */
static void ns_opt(struct ls_drift_buf *b, const char *s, size_t n)
{
	if (s == NULL) {
		ns_put(b, "-", 1);
		return;
	}
	char head[24];
	int h = snprintf(head, sizeof head, "%zu:=", n + 1);
	ls_drift_buf_put(b, head, (size_t)h);
	ls_drift_buf_put(b, s, n);
}

/* Reads one netstring at *p; returns its bytes (not terminated) or NULL. */
static const char *ns_get(const char **p, const char *end, size_t *n)
{
	size_t len = 0;
	const char *q = *p;
	int digits = 0;
	while (q < end && *q >= '0' && *q <= '9' && digits < 12) {
		len = len * 10 + (size_t)(*q - '0');
		q++;
		digits++;
	}
	if (digits == 0 || q >= end || *q != ':' || (size_t)(end - q - 1) < len)
		return NULL;
	*n = len;
	*p = q + 1 + len;
	return q + 1;
}

static const char *ns_get_str(const char **p, const char *end, struct ls_arena *a)
{
	size_t n;
	const char *s = ns_get(p, end, &n);
	return s ? ls_arena_memdup(a, s, n) : NULL;
}

static int ns_get_u32(const char **p, const char *end, uint32_t *out)
{
	size_t n;
	const char *s = ns_get(p, end, &n);
	if (s == NULL || n == 0 || n > 10)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* 0 with *out (NULL = absent) or -1. */
static int ns_get_opt(const char **p, const char *end, struct ls_arena *a, const char **out,
		      size_t *len)
{
	size_t n;
	const char *s = ns_get(p, end, &n);
	if (s == NULL || n == 0)
		return -1;
	if (s[0] == '-' && n == 1) {
		*out = NULL;
		return 0;
	}
	if (s[0] != '=')
		return -1;
	*out = ls_arena_memdup(a, s + 1, n - 1);
	if (len)
		*len = n - 1;
	return *out ? 0 : -1;
}

/* ==== markers ================================================================ */

#define MARKER_VERSION "1"

int ls_drift_marker_encode(const struct ls_drift_marker *m, struct ls_drift_buf *out)
{
	out->len = 0;
	out->oom = false;
	ns_str(out, MARKER_VERSION);
	ns_put(out, &m->kind, 1);
	ns_str(out, m->run ? m->run : "");
	ns_u32(out, m->check);
	ns_u32(out, m->table);
	ns_u32(out, m->seq);
	ns_u32(out, m->chunk);
	ns_str(out, m->schema);
	ns_str(out, m->name);
	ns_opt(out, m->lo, m->lo ? strlen(m->lo) : 0);
	ns_opt(out, m->hi, m->hi ? strlen(m->hi) : 0);
	if (m->kind == LS_DRIFT_REPAIR)
		ns_put(out, m->rows ? m->rows : "", m->rows ? m->rows_len : 0);
	return out->oom ? -1 : 0;
}

int ls_drift_marker_decode(const char *p, size_t len, struct ls_arena *arena,
			   struct ls_drift_marker *out, struct ls_err *err)
{
	const char *end = p + len;
	memset(out, 0, sizeof *out);
	size_t n;
	const char *v = ns_get(&p, end, &n);
	if (v == NULL || n != 1 || v[0] != MARKER_VERSION[0])
		return ls_err_set(err, false, "drift marker: unknown version");
	const char *k = ns_get(&p, end, &n);
	if (k == NULL || n != 1 ||
	    (k[0] != LS_DRIFT_CHUNK && k[0] != LS_DRIFT_ROWS && k[0] != LS_DRIFT_REPAIR))
		return ls_err_set(err, false, "drift marker: unknown kind");
	out->kind = k[0];
	if ((out->run = ns_get_str(&p, end, arena)) == NULL ||
	    ns_get_u32(&p, end, &out->check) < 0 || ns_get_u32(&p, end, &out->table) < 0 ||
	    ns_get_u32(&p, end, &out->seq) < 0 || ns_get_u32(&p, end, &out->chunk) < 0 ||
	    (out->schema = ns_get_str(&p, end, arena)) == NULL ||
	    (out->name = ns_get_str(&p, end, arena)) == NULL ||
	    ns_get_opt(&p, end, arena, &out->lo, NULL) < 0 ||
	    ns_get_opt(&p, end, arena, &out->hi, NULL) < 0)
		return ls_err_set(err, false, "drift marker: malformed");
	if (out->kind == LS_DRIFT_REPAIR) {
		const char *rows = ns_get(&p, end, &out->rows_len);
		if (rows == NULL)
			return ls_err_set(err, false, "drift marker: malformed repair rows");
		out->rows = rows;   /* borrowed from the payload: no copy of big rows */
	}
	if (p != end)
		return ls_err_set(err, false, "drift marker: trailing bytes");
	return 0;
}

/* ==== chunk ends ============================================================== */

int ls_drift_chunk_end(struct ls_drift_conn *c, const struct ls_relation *rel, const char *lo,
		       const char *bound, int chunk_rows,
		       int (*upper)(struct ls_drift_conn *c, const struct ls_relation *rel,
				    const char *lo, const char *bound, int chunk_rows, char **hi,
				    struct ls_err *err),
		       char **hi, struct ls_err *err)
{
	*hi = NULL;
	if (bound != NULL && lo != NULL && strcmp(lo, bound) == 0)
		return 0;   /* past the walk's bound: the last chunk, open-ended */
	if (upper(c, rel, lo, bound, chunk_rows, hi, err) < 0)
		return -1;
	if (*hi == NULL && bound != NULL && (*hi = strdup(bound)) == NULL)
		return ls_err_set(err, false, "out of memory");
	return 0;
}

/* ==== repair rows ============================================================= */

void ls_drift_repair_row_add(struct ls_drift_buf *b, bool present, const struct ls_value *vals,
			     uint16_t ncols)
{
	ns_put(b, present ? "P" : "A", 1);
	ns_u32(b, ncols);
	for (uint16_t i = 0; i < ncols; i++) {
		bool null = vals[i].kind != LS_VAL_TEXT;
		ns_opt(b, null ? NULL : vals[i].data, null ? 0 : vals[i].len);
	}
}

int ls_drift_repair_row_next(const char **p, const char *end, struct ls_arena *arena,
			     bool *present, struct ls_value *vals, uint16_t ncols,
			     struct ls_err *err)
{
	if (*p >= end)
		return 0;
	size_t n;
	const char *f = ns_get(p, end, &n);
	uint32_t nc;
	if (f == NULL || n != 1 || (f[0] != 'P' && f[0] != 'A') || ns_get_u32(p, end, &nc) < 0)
		return ls_err_set(err, false, "drift repair rows: malformed");
	if (nc != ncols)
		return ls_err_set(err, false, "drift repair rows: %" PRIu32 " columns, the table "
				  "has %u", nc, ncols);
	*present = f[0] == 'P';
	for (uint16_t i = 0; i < ncols; i++) {
		const char *s;
		size_t len = 0;
		if (ns_get_opt(p, end, arena, &s, &len) < 0)
			return ls_err_set(err, false, "drift repair rows: malformed value");
		vals[i].kind = s ? LS_VAL_TEXT : LS_VAL_NULL;
		vals[i].data = s;
		vals[i].len = (uint32_t)len;
	}
	return 1;
}

/* ==== row sets =================================================================== */

int ls_drift_rowset_add(struct ls_drift_rowset *s, const char *key, const char *hash)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct ls_drift_rowhash *v = realloc(s->v, cap * sizeof *v);
		if (v == NULL)
			return -1;
		s->v = v;
		s->cap = cap;
	}
	struct ls_drift_rowhash *r = &s->v[s->n];
	if ((r->key = strdup(key)) == NULL)
		return -1;
	snprintf(r->hash, sizeof r->hash, "%s", hash);
	s->n++;
	return 0;
}

void ls_drift_rowset_free(struct ls_drift_rowset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].key);
	free(s->v);
	memset(s, 0, sizeof *s);
}

static int rowhash_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ls_drift_rowhash *)a)->key,
		      ((const struct ls_drift_rowhash *)b)->key);
}

size_t ls_drift_rowset_diff(struct ls_drift_rowset *src, struct ls_drift_rowset *dst,
			    void (*emit)(void *ctx, enum ls_drift_diff kind, const char *key),
			    void *ctx)
{
	if (src->n)
		qsort(src->v, src->n, sizeof *src->v, rowhash_cmp);
	if (dst->n)
		qsort(dst->v, dst->n, sizeof *dst->v, rowhash_cmp);
	size_t i = 0, j = 0, nd = 0;
	while (i < src->n || j < dst->n) {
		int c = i == src->n ? 1 : j == dst->n ? -1 : strcmp(src->v[i].key, dst->v[j].key);
		if (c < 0) {
			emit(ctx, LS_DRIFT_MISSING, src->v[i++].key);
			nd++;
		} else if (c > 0) {
			emit(ctx, LS_DRIFT_EXTRA, dst->v[j++].key);
			nd++;
		} else {
			if (strcmp(src->v[i].hash, dst->v[j].hash) != 0) {
				emit(ctx, LS_DRIFT_DIFFERENT, src->v[i].key);
				nd++;
			}
			i++;
			j++;
		}
	}
	return nd;
}

/* ==== tally ========================================================================= */

int ls_drift_tally_add(struct ls_drift_tally *t, enum ls_drift_diff kind, const char *key)
{
	if (kind == LS_DRIFT_MISSING)
		t->missing++;
	else if (kind == LS_DRIFT_EXTRA)
		t->extra++;
	else
		t->different++;
	if (t->nkeys >= LS_DRIFT_REPORT_KEYS)
		return 0;
	char *k = strdup(key);
	if (k == NULL)
		return -1;
	t->keys[t->nkeys] = k;
	t->kinds[t->nkeys] = (char)kind;
	t->nkeys++;
	return 0;
}

uint64_t ls_drift_tally_rows(const struct ls_drift_tally *t)
{
	return t->missing + t->extra + t->different;
}

int ls_drift_tally_merge(struct ls_drift_tally *dst, const struct ls_drift_tally *src)
{
	dst->rows_checked += src->rows_checked;
	dst->chunks += src->chunks;
	dst->missing += src->missing;
	dst->extra += src->extra;
	dst->different += src->different;
	for (uint32_t i = 0; i < src->nkeys && dst->nkeys < LS_DRIFT_REPORT_KEYS; i++) {
		char *k = strdup(src->keys[i]);
		if (k == NULL)
			return -1;
		dst->keys[dst->nkeys] = k;
		dst->kinds[dst->nkeys] = src->kinds[i];
		dst->nkeys++;
	}
	return 0;
}

void ls_drift_tally_clear(struct ls_drift_tally *t)
{
	for (uint32_t i = 0; i < t->nkeys; i++)
		free(t->keys[i]);
	memset(t, 0, sizeof *t);
}

/* ==== rate and cursor ================================================================ */

uint64_t ls_drift_rate_take(struct ls_drift_rate *r, uint64_t now_ms)
{
	if (r->per_s <= 0)
		return 0;
	if (now_ms < r->next_ms)
		return r->next_ms - now_ms;
	uint64_t step = (uint64_t)(1000.0 / r->per_s);
	/* an idle spell does not bank a burst */
	r->next_ms = now_ms + step;
	return 0;
}

int ls_drift_cursor_advance(struct ls_drift_cursor *c, const char *hi)
{
	char *n = NULL;
	if (hi != NULL && (n = strdup(hi)) == NULL)
		return -1;
	free(c->lo);
	c->lo = n;
	c->next_chunk++;
	c->done = hi == NULL;
	return 0;
}

void ls_drift_cursor_reset(struct ls_drift_cursor *c)
{
	free(c->lo);
	memset(c, 0, sizeof *c);
}

/* ==== the engine ===================================================================== */

/* The tables of one streaming run: owned copies, so work threads and checks
 * keep them while the pipeline restarts.  refs are taken on the loop only;
 * apply threads read the current set, which changes only while they are
 * stopped. */
struct tset {
	int refs;
	int n;
	struct ls_relation **rels;
	char **names;                      /* "schema.name" */
	/* under the engine's mu: each table's definition as the latest check
	 * read it from the source (NULL: rels[i]); the apply hooks checksum and
	 * repair with it */
	struct ls_relation **live;
};

/* A target's answer to a marker, posted from its apply thread. */
struct answer {
	struct answer *next;
	int target;
	char kind;
	uint32_t check, table, seq;
	bool failed;
	char err[LS_ERR_MSG_MAX];
	uint64_t rows;
	char hash[LS_DRIFT_HASH_MAX];
	struct ls_drift_rowset set;
	char pos[LS_POS_TEXT_MAX];
};

struct tans {
	bool got, failed;
	char err[LS_ERR_MSG_MAX];
	uint64_t rows;
	char hash[LS_DRIFT_HASH_MAX];
	struct ls_drift_rowset set;
};

/* A marker emitted (or being emitted) and the answers it is waiting for. */
struct chunk {
	struct chunk *next;
	char kind;                         /* CHUNK or ROWS */
	uint32_t seq, no;
	uint32_t mask;                     /* ROWS: the targets it narrows for */
	char *lo, *hi;
	bool src_done;
	uint64_t src_rows;
	char src_hash[LS_DRIFT_HASH_MAX];
	struct ls_drift_rowset src_set;
	int answered;
	struct tans *t;                    /* one per target */
	uint64_t at_seq;                   /* the marker's position (0 unknown) */
	uint64_t overdue_since;            /* loop ms: targets passed it unanswered */
};

/* A chunk to narrow: (lo, hi] for the targets in mask. */
struct narrow {
	struct narrow *next;
	uint32_t no, mask;
	char *lo, *hi;
};

/* Keys of differing rows (capped), for repair. */
struct keylist {
	char **v;
	size_t n, cap;
};

static void keylist_add(struct keylist *l, const char *key)
{
	if (l->n >= REPAIR_MAX_KEYS)
		return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		char **v = realloc(l->v, cap * sizeof *v);
		if (v == NULL)
			return;
		l->v = v;
		l->cap = cap;
	}
	if ((l->v[l->n] = strdup(key)) != NULL)
		l->n++;
}

static void keylist_free(struct keylist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof *l);
}

enum tstate { TAB_QUEUED, TAB_RUNNING, TAB_DONE };

struct check;

struct tab {
	struct check *c;
	int index;                         /* into the tset */
	enum tstate st;
	bool busy;                         /* source work in flight */
	uint64_t not_before_ms;            /* retry backoff */
	int retries;
	struct ls_drift_conn *conn;
	struct ls_relation *rel;           /* owned: the definition this check uses,
					      read when its first work runs */
	struct ls_drift_cursor cur;
	struct chunk *chunks;
	int nchunks;
	struct narrow *narrow;
	char **rkeys;                      /* repair: keys still to send */
	size_t nrkeys, rdone;
	struct ls_drift_tally *tally;      /* one per target */
	struct keylist keys;               /* every differing key, all targets */
	char *error;
	const char *skipped;               /* why the table is not checked (static) */
	char pos[LS_POS_TEXT_MAX];         /* latest marker position answered */
	bool have_count0;                  /* change counter when the walk began */
	uint64_t count0;
	int lost;                          /* answers lost (see ls_drift_opts.applied) */
	char *bound;                       /* the walk's end (sops->max_key), or NULL */
	/* the work in flight */
	uv_work_t work;
	char wkind;
	struct chunk *wchunk;
	struct ls_drift_marker wm;
	struct ls_drift_buf wbuf;
	int wrc;
	struct ls_err werr;
	char *whi;
};

struct check {
	struct ls_drift *d;
	uint32_t id;
	char *filter;                      /* "schema.name" or NULL */
	struct tset *ts;
	int ntabs;
	struct tab *tabs;
	struct ls_drift_rate rate;
	int64_t started_at;                /* unix seconds */
	int running;
	int busy;                          /* works in flight */
	uint32_t next_seq;
	uint32_t lost;                     /* answers lost, every table */
	uint64_t watched_ms;               /* loop ms of the latest watch */
	bool repair, aborted;
	char *error;
};

/* Persistent per-table report: the latest finished check of that table. */
struct report {
	char *table;
	bool checked;
	int64_t checked_at;
	uint32_t check;
	char pos[LS_POS_TEXT_MAX];
	char *error;
	const char *skipped;               /* static text, or NULL */
	struct ls_drift_tally *tally;      /* one per target */
	struct keylist keys;               /* every differing key (capped), for repair */
	bool have_count0, have_now;        /* change counter at check start, lately */
	uint64_t count0, now;
};

#define HOOKED_MAX 64
#define HOOKED_EXPIRE_MS 310000        /* the target drift statement timeout, and more */

struct dhook {
	struct ls_drift *d;
	int target;
	struct ls_apply_hook hook;
	struct ls_arena arena;             /* apply thread only */
	/* under the engine's mu: markers of this run the apply has taken and
	 * not answered yet (a ring; the oldest go first when it is full) */
	struct { uint32_t check, seq; uint64_t at_ms; } hooked[HOOKED_MAX];
	int nhooked, hooked_at;
};

struct ls_drift {
	uv_loop_t *loop;
	const struct ls_config *cfg;
	const struct ls_drift_source_ops *sops;
	int parallel;
	double rate;
	int ntargets;
	bool (*applied)(void *ctx, int target, uint64_t *seq);
	void *applied_ctx;
	uint64_t grace_ms, watch_ms;
	char run[96];
	struct dhook *hooks;
	struct tset *ts;                   /* current tables; NULL before start */
	bool started;
	struct check *check;               /* running, or NULL */
	struct check **dying;              /* aborted checks waiting for their works */
	int ndying;
	uint32_t next_check;
	struct report *reps;
	int nreps;
	/* the latest completed check */
	bool have_last;
	uint32_t last_id;
	int64_t last_started, last_finished;
	bool last_clean;
	uint64_t last_rows;
	uint32_t last_lost;
	char *last_error;
	char *last_filter;
	uint64_t completed;
	uv_async_t async;
	uv_timer_t pump_timer, sched_timer, count_timer;
	/* change counters: one work at a time on a connection of its own */
	uv_work_t count_work;
	bool count_busy;
	struct ls_drift_conn *cconn;
	struct tset *count_ts;
	uint64_t *count_vals;
	bool *count_ok;
	pthread_mutex_t mu;
	struct answer *answers, **answers_tail;   /* under mu */
	bool closing;
	int closing_handles;
	void (*close_cb)(void *);
	void *close_arg;
};

static void pump(struct ls_drift *d);

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* ---- table sets ------------------------------------------------------------------ */

static void tset_unref(struct tset *ts)
{
	if (ts == NULL || --ts->refs > 0)
		return;
	for (int i = 0; i < ts->n; i++) {
		ls_relation_free(ts->rels[i]);
		if (ts->live)
			ls_relation_free(ts->live[i]);
		free(ts->names[i]);
	}
	free(ts->live);
	free(ts->rels);
	free(ts->names);
	free(ts);
}

static struct tset *tset_new(const struct ls_source_tables *t)
{
	struct tset *ts = calloc(1, sizeof *ts);
	if (ts == NULL)
		return NULL;
	ts->refs = 1;
	ts->rels = calloc((size_t)t->n + 1, sizeof *ts->rels);
	ts->names = calloc((size_t)t->n + 1, sizeof *ts->names);
	ts->live = calloc((size_t)t->n + 1, sizeof *ts->live);
	if (ts->rels == NULL || ts->names == NULL || ts->live == NULL) {
		tset_unref(ts);
		return NULL;
	}
	for (int i = 0; i < t->n; i++, ts->n++) {
		const struct ls_relation *r = t->rels[i];
		size_t len = strlen(r->schema) + strlen(r->name) + 2;
		ts->rels[i] = ls_relation_dup(r);
		ts->names[i] = malloc(len);
		if (ts->rels[i] == NULL || ts->names[i] == NULL) {
			ts->n++;
			tset_unref(ts);
			return NULL;
		}
		snprintf(ts->names[i], len, "%s.%s", r->schema, r->name);
	}
	return ts;
}

static int tset_find(const struct tset *ts, const char *schema, const char *name)
{
	for (int i = 0; ts && i < ts->n; i++)
		if (strcmp(ts->rels[i]->schema, schema) == 0 && strcmp(ts->rels[i]->name, name) == 0)
			return i;
	return -1;
}

/* A copy of table idx's latest definition (apply threads; caller frees). */
static struct ls_relation *live_dup(struct ls_drift *d, int idx)
{
	pthread_mutex_lock(&d->mu);
	const struct ls_relation *r = d->ts->live[idx] ? d->ts->live[idx] : d->ts->rels[idx];
	struct ls_relation *c = ls_relation_dup(r);
	pthread_mutex_unlock(&d->mu);
	return c;
}

/* Work thread: rel becomes table idx's latest definition, before any
 * marker that needs it is emitted. */
static void live_set(struct ls_drift *d, struct tset *ts, int idx, const struct ls_relation *rel)
{
	struct ls_relation *c = ls_relation_dup(rel);
	pthread_mutex_lock(&d->mu);
	ls_relation_free(ts->live[idx]);
	ts->live[idx] = c;
	pthread_mutex_unlock(&d->mu);
}

/* ---- apply thread: the hook ----------------------------------------------------------- */

static int repair_rows(struct dhook *h, struct ls_apply *a, const struct ls_relation *rel,
		       const struct ls_drift_marker *m, struct ls_err *err);

/* Turns a REPAIR marker into DELETE + INSERT changes of the marker's own
 * transaction, so the repair lands at exactly its stream position.  The
 * rows are in the table's definition as its check read it from the source
 * (live), which the target takes on first when the stream has not told it
 * yet (a column added since, say). */
static int apply_repair(struct dhook *h, struct ls_apply *a, const struct ls_drift_marker *m,
			struct ls_err *err)
{
	int idx = tset_find(h->d->ts, m->schema, m->name);
	if (idx < 0)
		return 0;   /* not a table of ours (another pipeline's repair) */
	struct ls_relation *rel = live_dup(h->d, idx);
	if (rel == NULL)
		return ls_err_set(err, false, "drift repair: out of memory");
	int rc = repair_rows(h, a, rel, m, err);
	ls_relation_free(rel);
	return rc;
}

static int repair_rows(struct dhook *h, struct ls_apply *a, const struct ls_relation *rel,
		       const struct ls_drift_marker *m, struct ls_err *err)
{
	struct ls_value *vals = ls_arena_alloc(&h->arena, (rel->ncols + 1u) * sizeof *vals);
	struct ls_value *old = ls_arena_alloc(&h->arena, (rel->ncols + 1u) * sizeof *old);
	if (vals == NULL || old == NULL)
		return ls_err_set(err, false, "drift repair: out of memory");
	const char *p = m->rows, *end = m->rows + m->rows_len;
	struct ls_err e;
	bool present;
	int rc;
	uint64_t n = 0;
	while ((rc = ls_drift_repair_row_next(&p, end, &h->arena, &present, vals, rel->ncols, &e)) > 0) {
		for (uint16_t i = 0; i < rel->ncols; i++) {
			bool key = rel->cols[i].flags & LS_COL_KEY;
			old[i] = key ? vals[i] : (struct ls_value){ .kind = LS_VAL_UNCHANGED };
		}
		struct ls_change del = {
			.op = LS_OP_DELETE, .old_kind = LS_OLD_KEY, .relid = rel->id,
			.old_tup = { rel->ncols, old },
		};
		struct ls_change ins = {
			.op = LS_OP_INSERT, .relid = rel->id, .new_tup = { rel->ncols, vals },
		};
		int r = ls_apply_hook_change(a, rel, &del, err);
		if (r == 0 && present)
			r = ls_apply_hook_change(a, rel, &ins, err);
		if (r < 0)
			return ls_err_prefix(err, "drift repair of %s.%s", m->schema, m->name);
		if (r > 0) {
			ls_warn("drift repair of %s.%s skipped: the table's columns changed since the "
				"check", m->schema, m->name);
			return 0;
		}
		n++;
	}
	if (rc < 0)
		ls_warn("drift repair of %s.%s: %s", m->schema, m->name, e.msg);
	ls_info("target %s: drift repair rewrote %" PRIu64 " row(s) of %s.%s",
		h->d->cfg->targets[h->target].name, n, m->schema, m->name);
	return 0;
}

/* Adds (on) or removes a marker the apply has taken: its answer is on its
 * way even when the target's commit position has passed the marker. */
static void hooked_set(struct dhook *h, uint32_t check, uint32_t seq, bool on)
{
	pthread_mutex_lock(&h->d->mu);
	int found = -1;
	for (int i = 0; i < h->nhooked && found < 0; i++)
		if (h->hooked[i].check == check && h->hooked[i].seq == seq)
			found = i;
	if (on && found < 0) {
		int i = h->nhooked < HOOKED_MAX ? h->nhooked++ : h->hooked_at++ % HOOKED_MAX;
		h->hooked[i].check = check;
		h->hooked[i].seq = seq;
		h->hooked[i].at_ms = uv_hrtime() / 1000000;   /* thread-safe, unlike uv_now */
	} else if (!on && found >= 0) {
		h->hooked[found] = h->hooked[--h->nhooked];
	}
	pthread_mutex_unlock(&h->d->mu);
}

/* Whether the apply took the marker and may still be answering it: a
 * target checksum ends within the drift connection's statement timeout,
 * so an older entry is one the apply dropped without answering (its
 * connection failed between the commit and the checksum, say). */
static bool hooked_has(struct dhook *h, uint32_t check, uint32_t seq)
{
	uint64_t now = uv_hrtime() / 1000000;
	pthread_mutex_lock(&h->d->mu);
	bool has = false;
	for (int i = 0; i < h->nhooked && !has; i++)
		has = h->hooked[i].check == check && h->hooked[i].seq == seq &&
		      now - h->hooked[i].at_ms < HOOKED_EXPIRE_MS;
	pthread_mutex_unlock(&h->d->mu);
	return has;
}

static int hook_on_message(void *ctx, struct ls_apply *a, const struct ls_txn *txn,
			   const struct ls_change *msg, struct ls_err *err)
{
	struct dhook *h = ctx;
	(void)txn;
	if (strcmp(msg->msg_prefix, LS_DRIFT_PREFIX) != 0)
		return 0;
	struct ls_drift_marker m;
	struct ls_err e;
	ls_arena_reset(&h->arena);
	if (ls_drift_marker_decode(msg->msg_data, msg->msg_len, &h->arena, &m, &e) < 0) {
		ls_warn("ignoring a drift marker: %s", e.msg);
		return 0;
	}
	if (m.kind == LS_DRIFT_REPAIR)
		return apply_repair(h, a, &m, err);
	if (strcmp(m.run, h->d->run) != 0)
		return 0;
	hooked_set(h, m.check, m.seq, true);
	return 1;
}

static int collect_row(void *ctx, const char *key, const char *hash)
{
	return ls_drift_rowset_add(ctx, key, hash);
}

static void post_answer(struct ls_drift *d, struct answer *an)
{
	pthread_mutex_lock(&d->mu);
	*d->answers_tail = an;
	d->answers_tail = &an->next;
	pthread_mutex_unlock(&d->mu);
	uv_async_send(&d->async);
}

/* The marker's transaction is committed on the target: checksum the same
 * chunk there.  Failures are the check's, never the pipeline's. */
static int hook_after_commit(void *ctx, struct ls_target *t, const struct ls_target_ops *ops,
			     const struct ls_pos *pos, const char *payload, uint32_t len,
			     struct ls_err *err)
{
	struct dhook *h = ctx;
	struct ls_drift *d = h->d;
	(void)err;
	struct ls_drift_marker m;
	struct ls_err e = { 0 };
	ls_arena_reset(&h->arena);
	if (ls_drift_marker_decode(payload, len, &h->arena, &m, &e) < 0)
		return 0;
	struct answer *an = calloc(1, sizeof *an);
	if (an == NULL) {
		ls_error("drift: out of memory answering a marker");
		return 0;
	}
	an->target = h->target;
	an->kind = m.kind;
	an->check = m.check;
	an->table = m.table;
	an->seq = m.seq;
	snprintf(an->pos, sizeof an->pos, "%s", pos->text);
	int rc;
	if (d->ts == NULL || (int)m.table >= d->ts->n ||
	    tset_find(d->ts, m.schema, m.name) != (int)m.table) {
		rc = ls_err_set(&e, false, "table %s.%s is not captured", m.schema, m.name);
	} else if (ops->chunk_checksum == NULL || ops->chunk_rows == NULL) {
		rc = ls_err_set(&e, false, "the %s target has no drift checks", ops->engine);
	} else {
		struct ls_relation *rel = live_dup(d, (int)m.table);
		if (rel == NULL)
			rc = ls_err_set(&e, false, "out of memory");
		else if (m.kind == LS_DRIFT_CHUNK)
			rc = ops->chunk_checksum(t, rel, m.lo, m.hi, &an->rows, an->hash,
						 sizeof an->hash, &e);
		else
			rc = ops->chunk_rows(t, rel, m.lo, m.hi, collect_row, &an->set, &e);
		ls_relation_free(rel);
	}
	if (rc < 0) {
		an->failed = true;
		ls_err_prefix(&e, "target %s", d->cfg->targets[h->target].name);
		memcpy(an->err, e.msg, sizeof an->err);
	}
	post_answer(d, an);
	hooked_set(h, m.check, m.seq, false);
	return 0;
}

const struct ls_apply_hook *ls_drift_apply_hook(struct ls_drift *d, int target)
{
	if (target < 0 || target >= d->ntargets)
		return NULL;
	return &d->hooks[target].hook;
}

/* ---- reports --------------------------------------------------------------------------- */

static struct report *report_for(struct ls_drift *d, const char *table)
{
	for (int i = 0; i < d->nreps; i++)
		if (strcmp(d->reps[i].table, table) == 0)
			return &d->reps[i];
	struct report *n = realloc(d->reps, (size_t)(d->nreps + 1) * sizeof *n);
	if (n == NULL)
		return NULL;
	d->reps = n;
	struct report *r = &d->reps[d->nreps];
	memset(r, 0, sizeof *r);
	r->table = strdup(table);
	r->tally = calloc((size_t)d->ntargets + 1, sizeof *r->tally);
	if (r->table == NULL || r->tally == NULL) {
		free(r->table);
		free(r->tally);
		return NULL;
	}
	d->nreps++;
	return r;
}

/* Source changes since each table's latest check began (known ones). */
static uint64_t unverified(const struct ls_drift *d)
{
	uint64_t n = 0;
	for (int i = 0; i < d->nreps; i++)
		if (d->reps[i].have_count0 && d->reps[i].have_now && d->reps[i].now > d->reps[i].count0)
			n += d->reps[i].now - d->reps[i].count0;
	return n;
}

void ls_drift_last(const struct ls_drift *d, struct ls_drift_last *out)
{
	memset(out, 0, sizeof *out);
	out->known = d->have_last;
	out->id = d->last_id;
	out->clean = d->last_clean;
	out->rows = d->last_rows;
	out->answers_lost = d->last_lost;
	snprintf(out->error, sizeof out->error, "%s", d->last_error ? d->last_error : "");
}

uint64_t ls_drift_rows(const struct ls_drift *d)
{
	uint64_t n = 0;
	for (int i = 0; i < d->nreps; i++)
		for (int t = 0; t < d->ntargets; t++)
			n += ls_drift_tally_rows(&d->reps[i].tally[t]);
	return n;
}

bool ls_drift_clean(const struct ls_drift *d)
{
	return d->have_last && d->last_clean && ls_drift_rows(d) == 0;
}

/* ---- checks: bookkeeping ---------------------------------------------------------------- */

static void chunk_free(struct chunk *ch, int ntargets)
{
	if (ch == NULL)
		return;
	free(ch->lo);
	free(ch->hi);
	ls_drift_rowset_free(&ch->src_set);
	for (int i = 0; ch->t && i < ntargets; i++)
		ls_drift_rowset_free(&ch->t[i].set);
	free(ch->t);
	free(ch);
}

static void tab_release(struct ls_drift *d, struct tab *t)
{
	if (t->conn && d->sops)
		d->sops->close(t->conn);
	t->conn = NULL;
	for (struct chunk *ch = t->chunks, *n; ch; ch = n) {
		n = ch->next;
		chunk_free(ch, d->ntargets);
	}
	t->chunks = NULL;
	t->nchunks = 0;
	for (struct narrow *w = t->narrow, *n; w; w = n) {
		n = w->next;
		free(w->lo);
		free(w->hi);
		free(w);
	}
	t->narrow = NULL;
	for (size_t i = 0; i < t->nrkeys; i++)
		free(t->rkeys[i]);
	free(t->rkeys);
	t->rkeys = NULL;
	t->nrkeys = 0;
	ls_drift_cursor_reset(&t->cur);
	ls_drift_buf_free(&t->wbuf);
	free(t->bound);
	t->bound = NULL;
	free(t->whi);
	t->whi = NULL;
	ls_relation_free(t->rel);
	t->rel = NULL;
}

static void check_free(struct ls_drift *d, struct check *c)
{
	for (int i = 0; i < c->ntabs; i++) {
		tab_release(d, &c->tabs[i]);
		for (int k = 0; c->tabs[i].tally && k < d->ntargets; k++)
			ls_drift_tally_clear(&c->tabs[i].tally[k]);
		free(c->tabs[i].tally);
		keylist_free(&c->tabs[i].keys);
		free(c->tabs[i].error);
	}
	free(c->tabs);
	free(c->filter);
	free(c->error);
	tset_unref(c->ts);
	free(c);
}

static void tab_fail(struct tab *t, const char *msg)
{
	if (t->error == NULL)
		t->error = strdup(msg);
}

/* The table's walk is over: its result replaces the table's report. */
static void tab_done(struct ls_drift *d, struct tab *t)
{
	struct check *c = t->c;
	t->st = TAB_DONE;
	c->running--;
	tab_release(d, t);
	struct report *r = report_for(d, c->ts->names[t->index]);
	if (r == NULL)
		return;
	r->checked = true;
	r->checked_at = now_s();
	r->check = c->id;
	snprintf(r->pos, sizeof r->pos, "%s", t->pos);
	free(r->error);
	r->error = xstrdup(t->error);
	r->skipped = t->skipped;
	r->have_count0 = r->have_now = t->have_count0;
	r->count0 = r->now = t->count0;
	keylist_free(&r->keys);
	r->keys = t->keys;
	memset(&t->keys, 0, sizeof t->keys);
	for (int k = 0; k < d->ntargets; k++) {
		ls_drift_tally_clear(&r->tally[k]);
		r->tally[k] = t->tally[k];
		memset(&t->tally[k], 0, sizeof t->tally[k]);
	}
	uint64_t rows = 0;
	for (int k = 0; k < d->ntargets; k++)
		rows += ls_drift_tally_rows(&r->tally[k]);
	if (t->skipped)
		ls_info("drift check %u: %s skipped: %s", c->id, r->table, t->skipped);
	else if (t->error)
		ls_warn("drift check %u: %s: %s", c->id, r->table, t->error);
	else if (rows)
		ls_warn("drift check %u: %s: %" PRIu64 " row(s) differ", c->id, r->table, rows);
	else
		ls_info("drift check %u: %s is clean as of %s", c->id, r->table, r->pos);
}

static void check_finish(struct ls_drift *d, struct check *c)
{
	uint64_t rows = 0;
	bool error = c->error != NULL || c->aborted;
	for (int i = 0; i < c->ntabs; i++) {
		struct report *r = NULL;
		for (int k = 0; k < d->nreps; k++)
			if (strcmp(d->reps[k].table, c->ts->names[c->tabs[i].index]) == 0)
				r = &d->reps[k];
		if (c->tabs[i].error)
			error = true;
		for (int k = 0; r && k < d->ntargets; k++)
			rows += ls_drift_tally_rows(&r->tally[k]);
	}
	d->have_last = true;
	d->last_id = c->id;
	d->last_started = c->started_at;
	d->last_finished = now_s();
	d->last_rows = rows;
	d->last_lost = c->lost;
	d->last_clean = !error && rows == 0;
	free(d->last_error);
	d->last_error = NULL;
	for (int i = 0; i < c->ntabs && d->last_error == NULL; i++)
		d->last_error = xstrdup(c->tabs[i].error);
	if (c->error && d->last_error == NULL)
		d->last_error = strdup(c->error);
	free(d->last_filter);
	d->last_filter = xstrdup(c->filter);
	d->completed++;
	ls_notice("drift check %u finished: %s (%" PRIu64 " row(s) differ)", c->id,
		  d->last_clean ? "clean" : error ? "errors" : "drift found", rows);
}

/* ---- checks: source work (libuv work threads) ------------------------------------------ */

static int work_row(void *ctx, const char *key, const char *hash)
{
	return ls_drift_rowset_add(ctx, key, hash);
}

/* The table's definition for this check: read from the source catalog now
 * (the one from the pipeline's start is stale after DDL), then published
 * for the apply hooks before any marker of the check is emitted. */
static int tab_describe(struct tab *t, struct ls_err *err)
{
	struct check *c = t->c;
	struct ls_drift *d = c->d;
	const struct ls_relation *base = c->ts->rels[t->index];
	if (d->sops->describe == NULL)
		t->rel = ls_relation_dup(base);
	else if (d->sops->describe(t->conn, base, &t->rel, err) < 0)
		return -1;
	if (t->rel == NULL)
		return ls_err_set(err, false, "out of memory");
	if (t->rel->ncols != base->ncols)
		ls_info("drift check %u: %s: checking with its current definition (%u column(s))",
			c->id, c->ts->names[t->index], t->rel->ncols);
	live_set(d, c->ts, t->index, t->rel);
	return 0;
}

/* Rows per chunk for a table's chunk number n.  A walk that runs long
 * doubles them every GROW_EVERY chunks (to GROW_MAX times, at most
 * GROW_CAP rows unless chunk_rows is larger), so a big table's check takes
 * fewer source transactions and markers.  (A walk ends at the key that was
 * greatest when it began, sops->max_key; before that bound existed, this
 * growth was also what let a walk over a table appended to faster than it
 * scanned end at all.) */
#define GROW_EVERY 256
#define GROW_MAX_SHIFT 6
#define GROW_CAP 50000
static int chunk_size(const struct ls_drift *d, uint32_t n)
{
	int base = d->cfg->drift.chunk_rows > 0 ? d->cfg->drift.chunk_rows : 10000;
	uint32_t shift = n / GROW_EVERY;
	if (shift > GROW_MAX_SHIFT)
		shift = GROW_MAX_SHIFT;
	long size = (long)base << shift, cap = base > GROW_CAP ? base : GROW_CAP;
	return (int)(size < cap ? size : cap);
}

static void work_run(uv_work_t *w)
{
	struct tab *t = w->data;
	struct check *c = t->c;
	struct ls_drift *d = c->d;
	t->wrc = 0;
	if (t->conn == NULL && d->sops->open(d->cfg, &t->conn, &t->werr) < 0) {
		t->wrc = -1;
		return;
	}
	if (t->rel == NULL && tab_describe(t, &t->werr) < 0) {
		t->wrc = -1;
		return;
	}
	const struct ls_relation *rel = t->rel;
	switch (t->wkind) {
	case LS_DRIFT_CHUNK: {
		uint64_t rows = 0;
		struct ls_err e;
		if (t->wm.chunk == 0 && d->sops->change_count)
			t->have_count0 = d->sops->change_count(t->conn, rel, &t->count0, &e) == 0;
		if (t->wm.chunk == 0 && d->sops->max_key) {
			free(t->bound);
			if ((t->wrc = d->sops->max_key(t->conn, rel, &t->bound, &t->werr)) < 0)
				break;
		}
		t->wrc = d->sops->chunk(t->conn, rel, &t->wm, t->bound, chunk_size(d, t->wm.chunk),
					&t->whi, &rows, t->wchunk->src_hash, &t->werr);
		t->wchunk->src_rows = rows;
		break;
	}
	case LS_DRIFT_ROWS:
		t->wrc = d->sops->rows(t->conn, rel, &t->wm, work_row, &t->wchunk->src_set, &t->werr);
		break;
	default:
		t->wrc = d->sops->repair(t->conn, rel, &t->wm,
					 (const char *const *)t->rkeys + t->rdone,
					 t->nrkeys - t->rdone < REPAIR_BATCH ? t->nrkeys - t->rdone
									     : REPAIR_BATCH,
					 &t->werr);
		break;
	}
}

static void unlink_chunk(struct tab *t, struct chunk *ch)
{
	for (struct chunk **pp = &t->chunks; *pp; pp = &(*pp)->next)
		if (*pp == ch) {
			*pp = ch->next;
			t->nchunks--;
			return;
		}
}

static void chunk_complete(struct ls_drift *d, struct tab *t, struct chunk *ch);

static void work_done(uv_work_t *w, int status)
{
	struct tab *t = w->data;
	struct check *c = t->c;
	struct ls_drift *d = c->d;
	t->busy = false;
	c->busy--;
	if (status != 0 && t->wrc == 0)
		t->wrc = ls_err_set(&t->werr, false, "work cancelled");
	struct chunk *ch = t->wchunk;
	t->wchunk = NULL;
	if (c->aborted || d->closing) {
		pump(d);
		return;
	}
	if (t->wrc < 0) {
		if (ch) {
			unlink_chunk(t, ch);
			chunk_free(ch, d->ntargets);
		}
		if (t->werr.retryable && ++t->retries <= MAX_RETRIES) {
			ls_info("drift check %u: %s: %s; retrying", c->id, c->ts->names[t->index],
				t->werr.msg);
			if (t->conn)
				d->sops->close(t->conn);
			t->conn = NULL;
			t->not_before_ms = uv_now(d->loop) + RETRY_MS * (uint64_t)t->retries;
		} else {
			tab_fail(t, t->werr.msg);
			/* drop what waits: the walk cannot go on */
			ls_drift_cursor_advance(&t->cur, NULL);
			for (struct chunk *x = t->chunks, *n; x; x = n) {
				n = x->next;
				chunk_free(x, d->ntargets);
			}
			t->chunks = NULL;
			t->nchunks = 0;
			t->nrkeys = t->rdone = 0;
		}
		pump(d);
		return;
	}
	t->retries = 0;
	if (t->wkind == LS_DRIFT_CHUNK) {
		ch->hi = t->whi;
		t->whi = NULL;
		if (ls_drift_cursor_advance(&t->cur, ch->hi) < 0)
			tab_fail(t, "out of memory");
	} else if (t->wkind == LS_DRIFT_REPAIR) {
		t->rdone += t->nrkeys - t->rdone < REPAIR_BATCH ? t->nrkeys - t->rdone : REPAIR_BATCH;
	}
	if (ch) {
		ch->src_done = true;
		ch->at_seq = t->wm.at_seq;
		if (ch->answered == d->ntargets)
			chunk_complete(d, t, ch);
	}
	pump(d);
}

static struct chunk *chunk_new(struct ls_drift *d, struct tab *t, char kind, uint32_t no,
			       const char *lo, const char *hi)
{
	struct chunk *ch = calloc(1, sizeof *ch);
	if (ch == NULL)
		return NULL;
	ch->t = calloc((size_t)d->ntargets + 1, sizeof *ch->t);
	ch->lo = xstrdup(lo);
	ch->hi = xstrdup(hi);
	if (ch->t == NULL || (lo && !ch->lo) || (hi && !ch->hi)) {
		chunk_free(ch, d->ntargets);
		return NULL;
	}
	ch->kind = kind;
	ch->no = no;
	ch->seq = t->c->next_seq++;
	ch->next = t->chunks;
	t->chunks = ch;
	t->nchunks++;
	return ch;
}

static void fill_marker(struct tab *t, char kind, struct chunk *ch)
{
	struct check *c = t->c;
	const struct ls_relation *rel = c->ts->rels[t->index];
	t->wm = (struct ls_drift_marker){
		.kind = kind, .run = c->d->run, .check = c->id, .table = (uint32_t)t->index,
		.seq = ch ? ch->seq : c->next_seq++, .chunk = ch ? ch->no : 0,
		.schema = rel->schema, .name = rel->name,
		.lo = ch ? ch->lo : NULL, .hi = ch ? ch->hi : NULL,
	};
}

/* Queues the table's next source work, if any; returns whether it did. */
static bool tab_next(struct ls_drift *d, struct tab *t)
{
	struct check *c = t->c;
	struct chunk *ch = NULL;
	char kind;
	if (t->rdone < t->nrkeys) {
		kind = LS_DRIFT_REPAIR;
	} else if (t->narrow) {
		struct narrow *w = t->narrow;
		if ((ch = chunk_new(d, t, LS_DRIFT_ROWS, w->no, w->lo, w->hi)) == NULL)
			return false;
		ch->mask = w->mask;
		t->narrow = w->next;
		free(w->lo);
		free(w->hi);
		free(w);
		kind = LS_DRIFT_ROWS;
	} else if (!t->cur.done && t->nchunks < MAX_PENDING) {
		if ((ch = chunk_new(d, t, LS_DRIFT_CHUNK, t->cur.next_chunk, t->cur.lo, NULL)) == NULL)
			return false;
		kind = LS_DRIFT_CHUNK;
	} else {
		return false;
	}
	fill_marker(t, kind, ch);
	t->wkind = kind;
	t->wchunk = ch;
	t->work.data = t;
	if (uv_queue_work(d->loop, &t->work, work_run, work_done) != 0) {
		if (ch) {
			unlink_chunk(t, ch);
			chunk_free(ch, d->ntargets);
		}
		tab_fail(t, "cannot queue work");
		return false;
	}
	t->busy = true;
	c->busy++;
	return true;
}

/* ---- checks: answers ------------------------------------------------------------------- */

struct diff_ctx {
	struct ls_drift_tally *tally;
	struct keylist *keys;
};

static void on_diff(void *ctx, enum ls_drift_diff kind, const char *key)
{
	struct diff_ctx *x = ctx;
	(void)ls_drift_tally_add(x->tally, kind, key);
	keylist_add(x->keys, key);
}

static void queue_narrow(struct tab *t, struct chunk *ch, uint32_t mask)
{
	struct narrow *w = calloc(1, sizeof *w);
	if (w == NULL) {
		tab_fail(t, "out of memory");
		return;
	}
	w->no = ch->no;
	w->mask = mask;
	w->lo = xstrdup(ch->lo);
	w->hi = xstrdup(ch->hi);
	struct narrow **pp = &t->narrow;
	while (*pp)
		pp = &(*pp)->next;
	*pp = w;
}

/* Both sides answered: compare. */
static void chunk_complete(struct ls_drift *d, struct tab *t, struct chunk *ch)
{
	unlink_chunk(t, ch);
	uint32_t mismatch = 0;
	for (int k = 0; k < d->ntargets; k++) {
		struct tans *a = &ch->t[k];
		struct ls_drift_tally *ty = &t->tally[k];
		if (a->failed) {
			tab_fail(t, a->err);
			continue;
		}
		if (ch->kind == LS_DRIFT_CHUNK) {
			if (a->rows == ch->src_rows && strcmp(a->hash, ch->src_hash) == 0) {
				ty->rows_checked += ch->src_rows;
				ty->chunks++;
			} else {
				mismatch |= 1u << k;
			}
		} else if (ch->mask & (1u << k)) {
			struct diff_ctx x = { ty, &t->keys };
			ls_drift_rowset_diff(&ch->src_set, &a->set, on_diff, &x);
			ty->rows_checked += ch->src_set.n;
			ty->chunks++;
		}
	}
	if (mismatch)
		queue_narrow(t, ch, mismatch);
	chunk_free(ch, d->ntargets);
}

static struct tab *tab_by_index(struct check *c, uint32_t index)
{
	for (int i = 0; i < c->ntabs; i++)
		if ((uint32_t)c->tabs[i].index == index)
			return &c->tabs[i];
	return NULL;
}

static void take_answer(struct ls_drift *d, struct answer *an)
{
	struct check *c = d->check;
	if (c == NULL || c->aborted || an->check != c->id || an->target < 0 ||
	    an->target >= d->ntargets)
		return;
	struct tab *t = tab_by_index(c, an->table);
	if (t == NULL)
		return;
	struct chunk *ch = t->chunks;
	while (ch && ch->seq != an->seq)
		ch = ch->next;
	if (ch == NULL || ch->t[an->target].got)
		return;   /* a marker whose source transaction we gave up on */
	struct tans *a = &ch->t[an->target];
	a->got = true;
	a->failed = an->failed;
	snprintf(a->err, sizeof a->err, "%s", an->err);
	a->rows = an->rows;
	memcpy(a->hash, an->hash, sizeof a->hash);
	a->set = an->set;
	memset(&an->set, 0, sizeof an->set);
	snprintf(t->pos, sizeof t->pos, "%s", an->pos);
	if (++ch->answered == d->ntargets && ch->src_done)
		chunk_complete(d, t, ch);
}

static void on_async(uv_async_t *h)
{
	struct ls_drift *d = h->data;
	pthread_mutex_lock(&d->mu);
	struct answer *list = d->answers;
	d->answers = NULL;
	d->answers_tail = &d->answers;
	pthread_mutex_unlock(&d->mu);
	for (struct answer *an = list, *n; an; an = n) {
		n = an->next;
		take_answer(d, an);
		ls_drift_rowset_free(&an->set);
		free(an);
	}
	pump(d);
}

/* ---- checks: driving ------------------------------------------------------------------- */

static void on_pump_timer(uv_timer_t *h)
{
	pump(h->data);
}

static void reap_dying(struct ls_drift *d)
{
	for (int i = 0; i < d->ndying;) {
		if (d->dying[i]->busy > 0) {
			i++;
			continue;
		}
		check_free(d, d->dying[i]);
		d->dying[i] = d->dying[--d->ndying];
	}
}

static void close_finish(struct ls_drift *d);

/* ---- checks: answers that never come ---------------------------------------------------- */

/* Whether some chunk of c has its source side done and an answer missing. */
static bool awaiting(const struct check *c)
{
	for (int i = 0; i < c->ntabs; i++)
		for (const struct chunk *ch = c->tabs[i].chunks; ch; ch = ch->next)
			if (ch->src_done && ch->at_seq > 0)
				return true;
	return false;
}

/* The targets that owe ch an answer they should have given: each has
 * committed past the marker's position, yet its answer is missing and its
 * apply never took the marker (an answer being computed is not owed). */
static uint32_t owing(struct ls_drift *d, uint32_t check, const struct chunk *ch,
		      const uint64_t *applied, const bool *known)
{
	uint32_t mask = 0;
	for (int k = 0; k < d->ntargets; k++) {
		if (ch->t[k].got)
			continue;
		if (!known[k] || applied[k] < ch->at_seq || hooked_has(&d->hooks[k], check, ch->seq))
			return 0;   /* still on its way to the marker, or answering it */
		mask |= 1u << k;
	}
	return mask;
}

/* Nothing in the apply path drops a marker's answer; should one be lost
 * all the same, the check must not wait for it for ever (a cutover waits
 * on the check): the chunk is checked again row by row, and a table that
 * keeps losing answers fails its check saying why. */
static void chunk_lost(struct ls_drift *d, struct tab *t, struct chunk *ch, uint32_t owed)
{
	struct check *c = t->c;
	char who[256] = "";
	for (int k = 0, n = 0; k < d->ntargets; k++)
		if (owed & (1u << k))
			n += snprintf(who + n, n < (int)sizeof who ? sizeof who - (size_t)n : 0,
				      "%s%s", n ? ", " : "", d->cfg->targets[k].name);
	c->lost++;
	unlink_chunk(t, ch);
	if (++t->lost > MAX_LOST) {
		char msg[512];
		snprintf(msg, sizeof msg, "target %s committed past %d drift markers without "
			 "answering them; the table could not be verified", who, t->lost);
		tab_fail(t, msg);
	} else {
		ls_warn("drift check %u: %s: target %s committed past the marker of chunk %u "
			"%.1f s ago without answering it; checking the chunk again row by row",
			c->id, c->ts->names[t->index], who, ch->no, (double)d->grace_ms / 1000);
		uint32_t all = d->ntargets >= 32 ? UINT32_MAX : (1u << d->ntargets) - 1;
		queue_narrow(t, ch, ch->kind == LS_DRIFT_ROWS ? ch->mask : all);
	}
	chunk_free(ch, d->ntargets);
}

/* Finds the table's chunks whose answers are overdue (see chunk_lost). */
static void watch_tab(struct ls_drift *d, struct tab *t, uint64_t now)
{
	uint64_t applied[MAX_TARGETS];
	bool known[MAX_TARGETS], asked = false;
	for (struct chunk *ch = t->chunks, *n; ch; ch = n) {
		n = ch->next;
		if (!ch->src_done || ch->at_seq == 0)
			continue;
		if (!asked) {
			for (int k = 0; k < d->ntargets; k++)
				known[k] = d->applied(d->applied_ctx, k, &applied[k]);
			asked = true;
		}
		uint32_t owed = owing(d, t->c->id, ch, applied, known);
		if (owed == 0)
			ch->overdue_since = 0;
		else if (ch->overdue_since == 0)
			ch->overdue_since = now;
		else if (now - ch->overdue_since >= d->grace_ms)
			chunk_lost(d, t, ch, owed);
	}
}

/* Moves every table as far as it can go now: starts queued tables up to
 * the parallel bound, queues source work as the rate allows, finishes the
 * check when every table is done. */
static void pump(struct ls_drift *d)
{
	reap_dying(d);
	if (d->closing) {
		close_finish(d);
		return;
	}
	struct check *c = d->check;
	if (c == NULL)
		return;
	uint64_t now = uv_now(d->loop), wait = 0;
	bool all_done = true;
	bool watch = d->applied != NULL && now - c->watched_ms >= d->watch_ms;
	if (watch)
		c->watched_ms = now;
	for (int i = 0; i < c->ntabs; i++) {
		struct tab *t = &c->tabs[i];
		if (t->st == TAB_QUEUED && c->running < d->parallel) {
			t->st = TAB_RUNNING;
			c->running++;
		}
		if (t->st != TAB_DONE)
			all_done = false;
		if (t->st == TAB_RUNNING && watch)
			watch_tab(d, t, now);
		if (t->st != TAB_RUNNING || t->busy)
			continue;
		/* after an error only the answers still owed are awaited */
		bool idle = t->nchunks == 0 && (t->error != NULL ||
			    (t->rdone >= t->nrkeys && t->narrow == NULL && t->cur.done));
		if (idle) {
			tab_done(d, t);
			i = -1;   /* a slot freed: queued tables may start */
			all_done = true;
			continue;
		}
		if (t->not_before_ms > now) {
			uint64_t w = t->not_before_ms - now;
			wait = wait == 0 || w < wait ? w : wait;
			continue;
		}
		bool has_work = t->error == NULL && (t->rdone < t->nrkeys || t->narrow ||
				(!t->cur.done && t->nchunks < MAX_PENDING));
		if (!has_work)
			continue;
		uint64_t w = ls_drift_rate_take(&c->rate, now);
		if (w > 0) {
			wait = wait == 0 || w < wait ? w : wait;
			continue;
		}
		tab_next(d, t);
	}
	if (all_done) {
		d->check = NULL;
		check_finish(d, c);
		check_free(d, c);
		return;
	}
	if (d->applied != NULL && awaiting(c)) {
		uint64_t w = c->watched_ms + d->watch_ms > now ? c->watched_ms + d->watch_ms - now : 1;
		wait = wait == 0 || w < wait ? w : wait;
	}
	if (wait > 0)
		uv_timer_start(&d->pump_timer, on_pump_timer, wait, 0);
}

/* Why rel cannot be walked in key order, or NULL.  A REPLICA IDENTITY
 * FULL table without a primary key has every column flagged: rows may
 * repeat and some types cannot be ordered. */
static const char *unkeyed(const struct ls_relation *r)
{
	unsigned nk = ls_relation_nkeys(r);
	if (nk == 0 || (r->replident == LS_REPLIDENT_FULL && nk == r->ncols && r->ncols > 1))
		return "no primary key: rows cannot be ordered into chunks";
	return NULL;
}

/* A PostgreSQL source renders its rows in MySQL's canonical text when its
 * targets are MySQL (connectors/postgres/pg_drift.c), so one check cannot
 * serve PostgreSQL and MySQL targets at once. */
static bool pair_supported(const struct ls_drift *d, struct ls_err *err)
{
	if (d->cfg->source.type != LS_ENGINE_POSTGRES)
		return true;
	int my = 0;
	for (int i = 0; i < d->cfg->ntargets; i++)
		my += d->cfg->targets[i].type == LS_ENGINE_MYSQL;
	if (my == 0 || my == d->cfg->ntargets)
		return true;
	ls_err_set(err, false, "drift checks from a PostgreSQL source cannot serve PostgreSQL "
		   "and MySQL targets in one pipeline; run them as two pipelines");
	return false;
}

static struct check *check_new(struct ls_drift *d, const char *table, double rate,
			       bool repair, struct ls_err *err)
{
	if (!pair_supported(d, err))
		return NULL;
	struct check *c = calloc(1, sizeof *c);
	if (c == NULL || (table && (c->filter = strdup(table)) == NULL) ||
	    (c->tabs = calloc((size_t)d->ts->n + 1, sizeof *c->tabs)) == NULL) {
		if (c)
			free(c->filter);
		free(c);
		ls_err_set(err, false, "out of memory");
		return NULL;
	}
	c->d = d;
	c->ts = d->ts;
	d->ts->refs++;
	c->id = ++d->next_check;
	c->started_at = now_s();
	c->rate.per_s = rate > 0 ? rate : d->rate;
	c->repair = repair;
	for (int i = 0; i < d->ts->n; i++) {
		if (table && strcmp(table, d->ts->names[i]) != 0)
			continue;
		struct tab *t = &c->tabs[c->ntabs++];
		t->c = c;
		t->index = i;
		t->tally = calloc((size_t)d->ntargets + 1, sizeof *t->tally);
		if (t->tally == NULL) {
			check_free(d, c);
			ls_err_set(err, false, "out of memory");
			return NULL;
		}
		if ((t->skipped = unkeyed(d->ts->rels[i])) != NULL)
			ls_drift_cursor_advance(&t->cur, NULL);
	}
	if (table && c->ntabs == 0) {
		check_free(d, c);
		ls_err_set(err, false, "table %s is not captured", table);
		return NULL;
	}
	return c;
}

int64_t ls_drift_check(struct ls_drift *d, const char *table, double rate, struct ls_err *err)
{
	if (d->sops == NULL)
		return ls_err_set(err, false, "drift checks need the source in this process");
	if (!d->started || d->ts == NULL)
		return ls_err_set(err, true, "the pipeline is not streaming yet");
	if (d->check)
		return ls_err_set(err, true, "drift check %u is running", d->check->id);
	if (d->ntargets == 0)
		return ls_err_set(err, false, "no targets in this process");
	struct check *c = check_new(d, table, rate, false, err);
	if (c == NULL)
		return -1;
	d->check = c;
	ls_notice("drift check %u started (%s, %d table(s))", c->id, table ? table : "all tables",
		  c->ntabs);
	pump(d);
	return c->id;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Starts a repair: the differing keys of the latest results go to the
 * source in REPAIR markers, then the same tables are checked again. */
static int64_t drift_repair(struct ls_drift *d, uint64_t *nkeys, struct ls_err *err)
{
	if (d->sops == NULL)
		return ls_err_set(err, false, "drift repair needs the source in this process");
	if (!d->started || d->ts == NULL)
		return ls_err_set(err, true, "the pipeline is not streaming yet");
	if (d->check)
		return ls_err_set(err, true, "drift check %u is running", d->check->id);
	if (d->ntargets == 0)
		return ls_err_set(err, false, "no targets in this process");
	struct check *c = check_new(d, d->last_filter, 0, true, err);
	if (c == NULL)
		return -1;
	*nkeys = 0;
	for (int i = 0; i < c->ntabs; i++) {
		struct tab *t = &c->tabs[i];
		struct report *r = NULL;
		for (int k = 0; k < d->nreps; k++)
			if (strcmp(d->reps[k].table, c->ts->names[t->index]) == 0)
				r = &d->reps[k];
		if (r == NULL || r->keys.n == 0 || t->error)
			continue;
		t->rkeys = calloc(r->keys.n, sizeof *t->rkeys);
		if (t->rkeys == NULL)
			continue;
		for (size_t k = 0; k < r->keys.n; k++)
			if ((t->rkeys[t->nrkeys] = strdup(r->keys.v[k])) != NULL)
				t->nrkeys++;
		/* keys found on several targets: once each */
		qsort(t->rkeys, t->nrkeys, sizeof *t->rkeys, str_cmp);
		size_t u = 0;
		for (size_t k = 0; k < t->nrkeys; k++) {
			if (u > 0 && strcmp(t->rkeys[u - 1], t->rkeys[k]) == 0)
				free(t->rkeys[k]);
			else
				t->rkeys[u++] = t->rkeys[k];
		}
		t->nrkeys = u;
		*nkeys += t->nrkeys;
	}
	d->check = c;
	ls_notice("drift repair: re-copying %" PRIu64 " row(s) from the source, then check %u",
		  *nkeys, c->id);
	pump(d);
	return c->id;
}


/* ---- lifecycle --------------------------------------------------------------------- */

static void abandon_check(struct ls_drift *d, const char *why)
{
	struct check *c = d->check;
	if (c == NULL)
		return;
	d->check = NULL;
	c->aborted = true;
	ls_warn("drift check %u abandoned: %s", c->id, why);
	struct check **n = realloc(d->dying, (size_t)(d->ndying + 1) * sizeof *n);
	if (n == NULL) {
		/* cannot park it: leak rather than free it under running work */
		return;
	}
	d->dying = n;
	d->dying[d->ndying++] = c;
	reap_dying(d);
}

/* ---- change counters (work thread, then loop) ---- */

static void count_run(uv_work_t *w)
{
	struct ls_drift *d = w->data;
	struct ls_err err;
	if (d->cconn == NULL && d->sops->open(d->cfg, &d->cconn, &err) < 0)
		return;
	for (int i = 0; i < d->count_ts->n; i++)
		d->count_ok[i] = d->sops->change_count(d->cconn, d->count_ts->rels[i],
						       &d->count_vals[i], &err) == 0;
}

static void count_done(uv_work_t *w, int status)
{
	struct ls_drift *d = w->data;
	d->count_busy = false;
	for (int i = 0; status == 0 && i < d->count_ts->n; i++) {
		if (!d->count_ok[i])
			continue;
		for (int k = 0; k < d->nreps; k++)
			if (strcmp(d->reps[k].table, d->count_ts->names[i]) == 0) {
				d->reps[k].now = d->count_vals[i];
				d->reps[k].have_now = true;
			}
	}
	tset_unref(d->count_ts);
	d->count_ts = NULL;
	free(d->count_vals);
	free(d->count_ok);
	d->count_vals = NULL;
	d->count_ok = NULL;
	if (d->closing)
		pump(d);
}

static void on_count_timer(uv_timer_t *h)
{
	struct ls_drift *d = h->data;
	if (d->count_busy || !d->started || d->ts == NULL || d->nreps == 0 ||
	    d->sops == NULL || d->sops->change_count == NULL)
		return;
	d->count_vals = calloc((size_t)d->ts->n + 1, sizeof *d->count_vals);
	d->count_ok = calloc((size_t)d->ts->n + 1, sizeof *d->count_ok);
	if (d->count_vals == NULL || d->count_ok == NULL) {
		free(d->count_vals);
		free(d->count_ok);
		d->count_vals = NULL;
		d->count_ok = NULL;
		return;
	}
	d->count_ts = d->ts;
	d->ts->refs++;
	d->count_work.data = d;
	if (uv_queue_work(d->loop, &d->count_work, count_run, count_done) == 0) {
		d->count_busy = true;
		return;
	}
	tset_unref(d->count_ts);
	d->count_ts = NULL;
}

static void on_sched_timer(uv_timer_t *h)
{
	struct ls_drift *d = h->data;
	struct ls_err err;
	if (d->check == NULL && ls_drift_check(d, NULL, 0, &err) < 0)
		ls_warn("scheduled drift check not started: %s", err.msg);
}

void ls_drift_start(struct ls_drift *d, const struct ls_source_tables *tables)
{
	if (d->closing)
		return;
	struct tset *ts = tset_new(tables);
	if (ts == NULL) {
		ls_error("drift: out of memory; checks are off");
		return;
	}
	/* no apply thread runs now: they start after this */
	tset_unref(d->ts);
	d->ts = ts;
	d->started = true;
	if (d->sops != NULL && d->sops->change_count != NULL)
		uv_timer_start(&d->count_timer, on_count_timer, COUNT_MS, COUNT_MS);
	int64_t iv = d->cfg->drift.interval_s;
	struct ls_err e;
	if (iv > 0 && d->sops != NULL && d->ntargets > 0 && !pair_supported(d, &e))
		ls_warn("drift: no scheduled checks: %s", e.msg);
	else if (iv > 0 && d->sops != NULL && d->ntargets > 0)
		uv_timer_start(&d->sched_timer, on_sched_timer, (uint64_t)iv * 1000,
			       (uint64_t)iv * 1000);
}

void ls_drift_stop(struct ls_drift *d)
{
	if (d == NULL)
		return;
	d->started = false;
	uv_timer_stop(&d->sched_timer);
	uv_timer_stop(&d->count_timer);
	uv_timer_stop(&d->pump_timer);
	abandon_check(d, "the pipeline stopped");
}

int ls_drift_new(uv_loop_t *loop, const struct ls_drift_opts *o, struct ls_drift **out,
		 struct ls_err *err)
{
	*out = NULL;
	struct ls_drift *d = calloc(1, sizeof *d);
	if (d == NULL)
		return ls_err_set(err, false, "out of memory");
	d->loop = loop;
	d->cfg = o->cfg;
	d->sops = o->sops;
	d->parallel = o->parallel > 0 ? o->parallel : DEFAULT_PARALLEL;
	d->rate = o->max_chunks_per_s > 0 ? o->max_chunks_per_s : DEFAULT_RATE;
	d->ntargets = o->cfg->ntargets;
	d->applied = o->applied;
	d->applied_ctx = o->applied_ctx;
	d->grace_ms = o->answer_grace_ms > 0 ? (uint64_t)o->answer_grace_ms : GRACE_MS;
	d->watch_ms = d->grace_ms < WATCH_MS ? d->grace_ms : WATCH_MS;
	if (d->ntargets > MAX_TARGETS) {
		free(d);
		return ls_err_set(err, false, "drift: at most %d targets", MAX_TARGETS);
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(d->run, sizeof d->run, "%s/%ld/%lld.%09ld", o->cfg->name ? o->cfg->name : "",
		 (long)getpid(), (long long)ts.tv_sec, ts.tv_nsec);
	d->hooks = calloc((size_t)d->ntargets + 1, sizeof *d->hooks);
	if (d->hooks == NULL) {
		free(d);
		return ls_err_set(err, false, "out of memory");
	}
	for (int i = 0; i < d->ntargets; i++) {
		struct dhook *h = &d->hooks[i];
		h->d = d;
		h->target = i;
		ls_arena_init(&h->arena);
		h->hook = (struct ls_apply_hook){
			.prefix = LS_DRIFT_PREFIX, .on_message = hook_on_message,
			.after_commit = hook_after_commit, .ctx = h,
		};
	}
	pthread_mutex_init(&d->mu, NULL);
	d->answers_tail = &d->answers;
	uv_async_init(loop, &d->async, on_async);
	uv_timer_init(loop, &d->pump_timer);
	uv_timer_init(loop, &d->sched_timer);
	uv_timer_init(loop, &d->count_timer);
	d->async.data = d->pump_timer.data = d->sched_timer.data = d->count_timer.data = d;
	*out = d;
	return 0;
}

static void free_drift(struct ls_drift *d)
{
	for (struct answer *an = d->answers, *n; an; an = n) {
		n = an->next;
		ls_drift_rowset_free(&an->set);
		free(an);
	}
	for (int i = 0; i < d->nreps; i++) {
		struct report *r = &d->reps[i];
		for (int k = 0; k < d->ntargets; k++)
			ls_drift_tally_clear(&r->tally[k]);
		free(r->tally);
		keylist_free(&r->keys);
		free(r->table);
		free(r->error);
	}
	free(d->reps);
	for (int i = 0; i < d->ntargets; i++)
		ls_arena_free(&d->hooks[i].arena);
	free(d->hooks);
	free(d->dying);
	free(d->last_error);
	free(d->last_filter);
	tset_unref(d->ts);
	pthread_mutex_destroy(&d->mu);
	void (*cb)(void *) = d->close_cb;
	void *arg = d->close_arg;
	free(d);
	if (cb)
		cb(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct ls_drift *d = h->data;
	if (--d->closing_handles == 0)
		free_drift(d);
}

/* Closing: once no work runs any more, the handles go, then d. */
static void close_finish(struct ls_drift *d)
{
	if (d->ndying > 0 || d->count_busy || d->closing_handles > 0)
		return;
	if (d->cconn)
		d->sops->close(d->cconn);
	d->cconn = NULL;
	d->closing_handles = 4;
	uv_close((uv_handle_t *)&d->count_timer, on_handle_closed);
	uv_close((uv_handle_t *)&d->async, on_handle_closed);
	uv_close((uv_handle_t *)&d->pump_timer, on_handle_closed);
	uv_close((uv_handle_t *)&d->sched_timer, on_handle_closed);
}

void ls_drift_close(struct ls_drift *d, void (*cb)(void *arg), void *arg)
{
	if (d == NULL)
		return;
	d->close_cb = cb;
	d->close_arg = arg;
	ls_drift_stop(d);
	d->closing = true;
	pump(d);
}

/* ---- report and control ----------------------------------------------------------------- */

static void iso_time(struct ls_json *j, const char *key, int64_t t)
{
	ls_json_key(j, key);
	if (t <= 0) {
		ls_json_null(j);
		return;
	}
	char buf[32];
	struct tm tm;
	time_t tt = (time_t)t;
	gmtime_r(&tt, &tm);
	strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
	ls_json_string(j, buf);
}

static const char *kind_name(char k)
{
	return k == LS_DRIFT_MISSING ? "missing" : k == LS_DRIFT_EXTRA ? "extra" : "different";
}

static void json_tally(struct ls_json *j, const struct ls_drift_tally *t)
{
	ls_json_kv_uint(j, "rows_checked", t->rows_checked);
	ls_json_kv_uint(j, "chunks", t->chunks);
	ls_json_kv_uint(j, "missing", t->missing);
	ls_json_kv_uint(j, "extra", t->extra);
	ls_json_kv_uint(j, "different", t->different);
	ls_json_kv_uint(j, "drift_rows", ls_drift_tally_rows(t));
	ls_json_key(j, "keys");
	ls_json_array_begin(j);
	for (uint32_t i = 0; i < t->nkeys; i++) {
		ls_json_object_begin(j);
		ls_json_kv_string(j, "key", t->keys[i]);
		ls_json_kv_string(j, "kind", kind_name(t->kinds[i]));
		ls_json_object_end(j);
	}
	ls_json_array_end(j);
}

static void json_running(struct ls_drift *d, struct ls_json *j)
{
	struct check *c = d->check;
	ls_json_key(j, "running");
	if (c == NULL) {
		ls_json_null(j);
		return;
	}
	ls_json_object_begin(j);
	ls_json_kv_uint(j, "id", c->id);
	ls_json_kv_string(j, "table", c->filter);
	ls_json_kv_bool(j, "repair", c->repair);
	iso_time(j, "started_at", c->started_at);
	int done = 0;
	uint64_t rows = 0, chunks = 0, waiting = 0;
	for (int i = 0; i < c->ntabs; i++) {
		struct tab *t = &c->tabs[i];
		done += t->st == TAB_DONE;
		waiting += (uint64_t)t->nchunks;
		for (int k = 0; t->tally && k < d->ntargets; k++) {
			rows += t->tally[k].rows_checked;
			chunks += t->tally[k].chunks;
		}
	}
	ls_json_kv_int(j, "tables", c->ntabs);
	ls_json_kv_int(j, "tables_done", done);
	ls_json_kv_uint(j, "chunks_done", chunks);
	ls_json_kv_uint(j, "chunks_waiting", waiting);
	ls_json_kv_uint(j, "answers_lost", c->lost);
	ls_json_kv_uint(j, "rows_checked", rows);
	ls_json_object_end(j);
}

static void json_last(struct ls_drift *d, struct ls_json *j)
{
	ls_json_key(j, "last");
	if (!d->have_last) {
		ls_json_null(j);
		return;
	}
	ls_json_object_begin(j);
	ls_json_kv_uint(j, "id", d->last_id);
	ls_json_kv_string(j, "table", d->last_filter);
	iso_time(j, "started_at", d->last_started);
	iso_time(j, "finished_at", d->last_finished);
	ls_json_kv_bool(j, "clean", d->last_clean);
	ls_json_kv_uint(j, "drift_rows", d->last_rows);
	ls_json_kv_uint(j, "answers_lost", d->last_lost);
	ls_json_kv_string(j, "error", d->last_error);
	ls_json_object_end(j);
}

static void json_tables(struct ls_drift *d, struct ls_json *j)
{
	ls_json_key(j, "tables");
	ls_json_array_begin(j);
	for (int i = 0; i < d->nreps; i++) {
		struct report *r = &d->reps[i];
		for (int k = 0; k < d->ntargets; k++) {
			ls_json_object_begin(j);
			ls_json_kv_string(j, "table", r->table);
			ls_json_kv_string(j, "target", d->cfg->targets[k].name);
			ls_json_kv_uint(j, "check", r->check);
			iso_time(j, "checked_at", r->checked_at);
			ls_json_kv_string(j, "position", r->pos[0] ? r->pos : NULL);
			ls_json_kv_string(j, "error", r->error);
			ls_json_kv_string(j, "skipped", r->skipped);
			ls_json_key(j, "changes_since_check");
			if (r->have_count0 && r->have_now)
				ls_json_uint(j, r->now > r->count0 ? r->now - r->count0 : 0);
			else
				ls_json_null(j);
			json_tally(j, &r->tally[k]);
			ls_json_object_end(j);
		}
	}
	ls_json_array_end(j);
}

void ls_drift_status(struct ls_drift *d, struct ls_json *j)
{
	ls_json_kv_uint(j, "drift_rows", ls_drift_rows(d));
	ls_json_kv_bool(j, "drift_clean", ls_drift_clean(d));
	ls_json_key(j, "drift");
	ls_json_object_begin(j);
	ls_json_kv_string(j, "state", d->check ? "running" : "idle");
	ls_json_kv_uint(j, "checks_completed", d->completed);
	ls_json_kv_uint(j, "changes_since_check", unverified(d));
	ls_json_kv_int(j, "interval_s", d->cfg->drift.interval_s);
	ls_json_kv_int(j, "chunk_rows", d->cfg->drift.chunk_rows);
	json_last(d, j);
	ls_json_object_end(j);
}

static int handle_get(const struct ls_control_request *req, struct ls_control_response *resp,
		      void *data, struct ls_err *err)
{
	struct ls_drift *d = data;
	(void)req;
	(void)err;
	struct ls_json *j = ls_control_reply_json(resp);
	ls_json_object_begin(j);
	ls_json_kv_uint(j, "drift_rows", ls_drift_rows(d));
	ls_json_kv_bool(j, "drift_clean", ls_drift_clean(d));
	ls_json_kv_string(j, "state", d->check ? "running" : "idle");
	ls_json_kv_bool(j, "available", d->sops != NULL && d->ntargets > 0);
	ls_json_kv_uint(j, "checks_completed", d->completed);
	ls_json_kv_uint(j, "changes_since_check", unverified(d));
	json_running(d, j);
	json_last(d, j);
	json_tables(d, j);
	ls_json_object_end(j);
	return 0;
}

/* Value of name in a query string ("a=1&b=2"), percent-decoded into out. */
static bool query_get(const char *q, const char *name, char *out, size_t size)
{
	size_t nl = strlen(name);
	for (const char *p = q; p && *p;) {
		const char *amp = strchr(p, '&');
		const char *end = amp ? amp : p + strlen(p);
		if ((size_t)(end - p) > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			size_t o = 0;
			for (const char *v = p + nl + 1; v < end && o + 1 < size; v++) {
				unsigned x;
				if (*v == '%' && end - v >= 3 && sscanf(v + 1, "%2x", &x) == 1) {
					out[o++] = (char)x;
					v += 2;
				} else {
					out[o++] = *v == '+' ? ' ' : *v;
				}
			}
			out[o] = '\0';
			return true;
		}
		p = amp ? amp + 1 : NULL;
	}
	return false;
}

static void reply_started(struct ls_control_response *resp, int64_t id, const uint64_t *keys)
{
	ls_control_reply_status(resp, 202);
	struct ls_json *j = ls_control_reply_json(resp);
	ls_json_object_begin(j);
	ls_json_kv_int(j, "check", id);
	if (keys)
		ls_json_kv_uint(j, "repair_rows", *keys);
	ls_json_object_end(j);
}

static void reply_refused(struct ls_control_response *resp, const struct ls_err *e)
{
	/* retryable: a check runs / not streaming yet; else: cannot here */
	ls_control_reply_error(resp, e->retryable ? 409 : 400, e->msg);
}

static int handle_check(const struct ls_control_request *req, struct ls_control_response *resp,
			void *data, struct ls_err *err)
{
	struct ls_drift *d = data;
	(void)err;
	char table[512], rate[32];
	bool has_table = query_get(req->query, "table", table, sizeof table);
	double r = query_get(req->query, "rate", rate, sizeof rate) ? atof(rate) : 0;
	struct ls_err e;
	int64_t id = ls_drift_check(d, has_table ? table : NULL, r, &e);
	if (id < 0)
		reply_refused(resp, &e);
	else
		reply_started(resp, id, NULL);
	return 0;
}

static int handle_repair(const struct ls_control_request *req, struct ls_control_response *resp,
			 void *data, struct ls_err *err)
{
	struct ls_drift *d = data;
	(void)req;
	(void)err;
	struct ls_err e;
	uint64_t keys = 0;
	int64_t id = drift_repair(d, &keys, &e);
	if (id < 0)
		reply_refused(resp, &e);
	else
		reply_started(resp, id, &keys);
	return 0;
}

int ls_drift_register(struct ls_drift *d, struct ls_control *ctl)
{
	if (ls_control_route(ctl, "GET", "/drift", LS_CONTROL_READ, handle_get, d,
			     "Drift report: per table and target, rows checked, missing, "
			     "extra, different, first differing keys.") < 0 ||
	    ls_control_route(ctl, "POST", "/drift/check", LS_CONTROL_ADMIN, handle_check, d,
			     "Start a drift check (?table=schema.name, ?rate=chunks/s).") < 0 ||
	    ls_control_route(ctl, "POST", "/drift/repair", LS_CONTROL_ADMIN, handle_repair, d,
			     "Re-copy the rows the latest check found differing, then "
			     "check again.") < 0)
		return -1;
	return 0;
}
