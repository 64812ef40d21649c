#include "cutover.h"

#include "cutstate.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lag.h"
#include "log.h"
#include "pipeline.h"
#include "source.h"

extern char **environ;

#define MAX_STEPS 16
#define MAX_ROLES 32
#define MAX_CHECKS 32
#define HOOK_TAIL 1024
#define DRIFT_RATE 1000.0          /* chunks/s: the cutover waits on it */

enum step_id {
	S_READY, S_FENCE, S_DRAIN, S_SEQUENCES, S_VERIFY, S_SWITCH, S_REVERSE,
	S_STOP_REVERSE, S_UNFENCE, S_DONE,
};
static const char *const step_names[] = {
	"ready", "fence", "drain", "sequences", "verify", "switch", "reverse",
	"stop_reverse", "unfence", "done",
};

enum phase { PH_IDLE, PH_RUNNING, PH_CUT_OVER, PH_ROLLED_BACK };
static const char *const phase_names[] = { "idle", "running", "cut_over", "rolled_back" };

struct step_rec {
	enum step_id id;
	char state[12];                /* running ok failed error skipped */
	int64_t started_us;            /* wall clock */
	uint64_t t0_ns, ns;
	char detail[1024];
};

struct drift_rec {
	char when[8];                  /* ready verify */
	char table[256];
	uint32_t check;
	bool clean;
	uint64_t rows;
	char error[256];
};

/* What a work-thread job hands back; the loop reads it after the job. */
struct jobout {
	int rc;
	struct ls_err err;
	char role_from[128], role_to[128];
	bool origin_ok;
	char origin_why[LS_ERR_MSG_MAX];   /* the engine's reason when not ok */
	struct ls_pos pos;
	uint64_t n;
	char first[512];
	char *undo;
	struct ls_cutover_seq *seqs;
	int nseqs;
};

struct proc {
	int64_t id;
	bool active;                   /* until finish(): outcome may be known earlier */
	bool rollback, dry_run;
	long uid;
	char *tables_pat;
	char *roles[MAX_ROLES];
	int nroles;
	char *checks[MAX_CHECKS];
	int nchecks;
	int tidx;
	char target[128];              /* the pipe's target */
	double max_lag_s, timeout_s;
	int64_t started_us, finished_us;
	char outcome[12];              /* running succeeded failed error */
	char reason[1024];
	/* the slice */
	/* owned copies: the pipelines' own go when they restart or close */
	struct ls_relation **slice;
	int nslice;
	bool slice_all;
	char *slice_text;              /* "a.b,c.d" */
	/* sides: from = serving now (fenced), to = serving after */
	const char *from_ci, *to_ci;
	const struct ls_cutover_ops *ops_from, *ops_to;   /* each side's engine */
	struct ls_cutover_pipe *pipe;
	struct ls_cutover_conn *from, *to;
	char role_from[128], role_to[128];
	/* steps */
	struct step_rec steps[MAX_STEPS];
	int nsteps;
	enum step_id step;
	int phase;
	uint64_t deadline_ns;
	/* positions */
	bool have_s0, have_fence, have_rev;
	struct ls_pos s0, fence_pos, rev_at, applied;
	/* fence */
	bool fenced, fence_by_hook, unfenced;
	char *undo;
	uint64_t ended;
	uint64_t fenced_ns, open_ns;   /* writes stopped / possible again */
	int64_t fenced_us, open_us;
	bool reverse_slot_made;
	/* drift sub-procedure */
	struct drift_rec *drifts;
	int ndrifts;
	int dr_i;
	int64_t dr_id;
	uint64_t dr_deadline;
	/* sequences, checks */
	struct ls_cutover_seq *seqs;
	int nseqs;
	bool seqs_carried;
	int check_i;
	char plan[2048];
	char report[1024];
	char note[600];                /* unfence step scratch */
};

struct hook {
	struct ls_cutover *c;
	uv_process_t proc;
	uv_pipe_t out;
	uv_timer_t timer;
	int open;
	bool exited, timed_out;
	int64_t status;
	int signal;
	char tail[HOOK_TAIL];
	size_t tail_len;
	char *env[8];
};

struct ls_cutover {
	uv_loop_t *loop;
	const struct ls_config *cfg;
	const struct ls_cutover_ops *ops;
	const struct ls_cutover_ops *(*ops_for)(enum ls_engine engine);
	struct ls_cutover_host host;
	int poll_ms;
	enum phase phase;
	struct proc *pr;               /* running or latest */
	int64_t next_id;
	uv_timer_t timer, window;
	bool job_busy;
	int (*job_fn)(struct ls_cutover *c, struct jobout *o);
	struct jobout jo;
	uv_work_t work;
	struct hook *hook;
	int64_t hook_rc;               /* exit status, or -1 killed/failed to start */
	char hook_msg[HOOK_TAIL + 128];
	/* after a cutover */
	bool rev_open;
	struct ls_cutover_pipe rev;
	int64_t window_until_us;
	int64_t cut_id;                /* the cutover that switched (0: none) */
	int cut_tidx;                  /* its target */
	char cut_rev_start[LS_POS_TEXT_MAX], cut_report[1024];
	char *rs_undo;                 /* at start: a fence a stopped procedure left */
	const char *rs_ci;             /* on the side behind this conninfo */
	const struct ls_cutover_ops *rs_ops;
	bool rs_then_reverse;          /* then the cut over resumes */
	char *oldside_undo;            /* lifts the old side's fence (rollback) */
	char *newside_undo;            /* lifts the new side's fence (next cutover) */
	/* the default host */
	struct ls_pipeline *fwdp;
	const struct ls_pipeline_engines *eng;
	struct ls_pipeline *revp;
	struct ls_config *rev_cfg;
	char rev_err[LS_ERR_MSG_MAX];
	bool rev_closing;
	/* close */
	bool closing;
	int close_pending;
	void (*close_cb)(void *);
	void *close_arg;
};

static void advance(struct ls_cutover *c);
static void close_step(struct ls_cutover *c);
static void state_write(struct ls_cutover *c, enum ls_cutstate_stage stage);
static void state_forget(struct ls_cutover *c);
static int job_window_drop(struct ls_cutover *c, struct jobout *o);
static void window_dropped(uv_work_t *w, int status);

static const struct ls_cutover_ops *engine_ops(const struct ls_cutover *c, enum ls_engine e)
{
	return c->ops_for ? c->ops_for(e) : c->ops;
}

/* The old side's (the source's) and a target's ops. */
static const struct ls_cutover_ops *old_ops(const struct ls_cutover *c)
{
	return engine_ops(c, c->cfg->source.type);
}

static const struct ls_cutover_ops *new_ops(const struct ls_cutover *c, int tidx)
{
	return engine_ops(c, c->cfg->targets[tidx].type);
}

/* ---- pure helpers --------------------------------------------------------------------- */

static bool glob(const char *p, const char *s, size_t plen)
{
	if (plen == 0)
		return *s == '\0';
	if (*p == '*') {
		for (;; s++) {
			if (glob(p + 1, s, plen - 1))
				return true;
			if (*s == '\0')
				return false;
		}
	}
	return *s != '\0' && *p == *s && glob(p + 1, s + 1, plen - 1);
}

bool ls_cutover_match(const char *patterns, const char *schema, const char *name)
{
	char full[512];
	snprintf(full, sizeof full, "%s.%s", schema, name);
	for (const char *p = patterns; *p != '\0';) {
		p += strspn(p, " ,");
		size_t len = strcspn(p, ",");
		size_t l = len;
		while (l > 0 && p[l - 1] == ' ')
			l--;
		if (l > 0 && glob(p, full, l))
			return true;
		p += len;
	}
	return false;
}

int ls_cutover_split(const char *list, char sep, char **items, int max)
{
	int n = 0;
	if (list == NULL)
		return 0;
	for (const char *p = list; *p != '\0';) {
		while (*p == sep || *p == ' ' || *p == '\t')
			p++;
		const char *e = strchr(p, sep);
		size_t len = e ? (size_t)(e - p) : strlen(p);
		size_t l = len;
		while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t'))
			l--;
		if (l > 0 && n < max) {
			if ((items[n] = strndup(p, l)) == NULL) {
				while (n > 0)
					free(items[--n]);
				return -1;
			}
			n++;
		}
		p += len;
	}
	return n;
}

static const char *engine_name(enum ls_engine e)
{
	return e == LS_ENGINE_MYSQL ? "mysql" : "postgres";
}

struct ls_config *ls_cutover_reverse_config(const struct ls_config *cfg, int target,
					    const char *tables, struct ls_err *err)
{
	if (target < 0 || target >= cfg->ntargets || !cfg->source.present)
		return ls_err_set(err, false, "the reverse direction needs this daemon's source "
				  "and the target it cuts over to"), NULL;
	if (strlen(cfg->name) + 4 > 48)
		return ls_err_set(err, false, "pipeline name %s is too long for its reverse "
				  "pipeline %s_rev (at most 44 characters)", cfg->name,
				  cfg->name), NULL;
	const struct ls_config_target *t = &cfg->targets[target];
	char buffer[1024];
	if (cfg->buffer.type == LS_BUFFER_KAFKA)
		snprintf(buffer, sizeof buffer, "type = kafka\nbrokers = %s\nmax_lead = %" PRIu64 "\n",
			 cfg->buffer.brokers, cfg->buffer.max_lead);
	else
		snprintf(buffer, sizeof buffer, "type = direct\n");
	char *text = NULL;
	/* conninfo goes in after parsing: a secret never passes through text */
	if (asprintf(&text,
		     "[pipeline]\nname = %s_rev\nstate_dir = %s/reverse\n\n"
		     "[source]\ntype = %s\nconninfo = -\ntables = %s\nsnapshot = never\n"
		     "slot = lockstep_%s_rev\npublication = lockstep_%s_rev\n"
		     "skip_origins = lockstep_%s\n\n"
		     "[buffer]\n%s\n"
		     "[target old]\ntype = %s\nconninfo = -\ncreate_tables = false\nddl = %s\n"
		     "batch_rows = %d\nbatch_ms = %d\n\n"
		     "[control]\nsocket = /dev/null\n\n"
		     "[drift]\ninterval = 0\nchunk_rows = %d\n\n[log]\nlevel = %s\n",
		     cfg->name, cfg->state_dir, engine_name(t->type), tables, cfg->name, cfg->name,
		     cfg->name, buffer, engine_name(cfg->source.type),
		     t->ddl == LS_DDL_STOP ? "stop" : "apply", t->batch_rows, t->batch_ms,
		     cfg->drift.chunk_rows, cfg->log_level ? cfg->log_level : "info") < 0)
		return ls_err_set(err, false, "out of memory"), NULL;
	struct ls_config *r = NULL;
	int rc = ls_config_parse("(reverse)", text, &r, err);
	free(text);
	if (rc < 0)
		return NULL;
	free(r->source.conninfo);
	free(r->targets[0].conninfo);
	r->source.conninfo = strdup(t->conninfo);
	r->targets[0].conninfo = strdup(cfg->source.conninfo);
	for (int i = 0; i < cfg->buffer.nkafka; i++) {
		struct ls_kv *kv = &r->buffer.kafka[r->buffer.nkafka++];
		kv->key = strdup(cfg->buffer.kafka[i].key);
		kv->value = strdup(cfg->buffer.kafka[i].value);
		kv->line = cfg->buffer.kafka[i].line;
		if (kv->key == NULL || kv->value == NULL)
			r->source.conninfo = (free(r->source.conninfo), NULL);
	}
	if (r->source.conninfo == NULL || r->targets[0].conninfo == NULL) {
		ls_config_free(r);
		return ls_err_set(err, false, "out of memory"), NULL;
	}
	return r;
}

/* ---- small helpers -------------------------------------------------------------------------- */

static int64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void iso(char *buf, size_t size, int64_t us)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, size - n, ".%03dZ", (int)(us / 1000 % 1000));
}

static void json_time(struct ls_json *j, const char *key, int64_t us)
{
	char b[48];
	ls_json_key(j, key);
	if (us == 0) {
		ls_json_null(j);
		return;
	}
	iso(b, sizeof b, us);
	ls_json_string(j, b);
}

static const char *kind(const struct proc *pr)
{
	return pr->rollback ? "rollback" : "cutover";
}

static void proc_free(struct proc *pr)
{
	if (pr == NULL)
		return;
	free(pr->tables_pat);
	for (int i = 0; i < pr->nroles; i++)
		free(pr->roles[i]);
	for (int i = 0; i < pr->nchecks; i++)
		free(pr->checks[i]);
	for (int i = 0; pr->slice && i < pr->nslice; i++)
		ls_relation_free(pr->slice[i]);
	free(pr->slice);
	free(pr->slice_text);
	free(pr->undo);
	free(pr->drifts);
	free(pr->seqs);
	if (pr->ops_from)
		pr->ops_from->close(pr->from);
	if (pr->ops_to)
		pr->ops_to->close(pr->to);
	free(pr);
}

/* ---- steps: bookkeeping ------------------------------------------------------------------------ */

static struct step_rec *cur_step(struct proc *pr)
{
	return pr->nsteps ? &pr->steps[pr->nsteps - 1] : NULL;
}

static void step_begin(struct ls_cutover *c, enum step_id id)
{
	struct proc *pr = c->pr;
	if (pr->nsteps == MAX_STEPS)
		pr->nsteps--;
	struct step_rec *s = &pr->steps[pr->nsteps++];
	memset(s, 0, sizeof *s);
	s->id = id;
	snprintf(s->state, sizeof s->state, "running");
	s->started_us = wall_us();
	s->t0_ns = uv_hrtime();
	pr->step = id;
	pr->phase = 1;
	pr->deadline_ns = uv_hrtime() + (uint64_t)(pr->timeout_s * 1e9);
	ls_notice("%s %" PRId64 ": step %s", kind(pr), pr->id, step_names[id]);
}

static void step_end(struct ls_cutover *c, const char *state, const char *fmt, va_list ap)
{
	struct step_rec *s = cur_step(c->pr);
	if (s == NULL)
		return;
	snprintf(s->state, sizeof s->state, "%s", state);
	s->ns = uv_hrtime() - s->t0_ns;
	vsnprintf(s->detail, sizeof s->detail, fmt, ap);
	ls_log(strcmp(state, "ok") == 0 || strcmp(state, "skipped") == 0 ? LS_LOG_NOTICE
	       : LS_LOG_WARNING, "%s %" PRId64 ": step %s %s (%.1f s): %s", kind(c->pr), c->pr->id,
	       step_names[s->id], state, s->ns / 1e9, s->detail);
}

/* The step passed: on to `next` (from the loop, so deep chains do not
 * recurse). */
static void step_ok(struct ls_cutover *c, enum step_id next, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void step_ok(struct ls_cutover *c, enum step_id next, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	step_end(c, "ok", fmt, ap);
	va_end(ap);
	c->pr->step = next;
	c->pr->phase = 0;
	advance(c);
}

/* The step's check said no ("failed") or something broke ("error"): the
 * serving side is given back (unfence), then the procedure ends. */
static void stop_proc(struct ls_cutover *c, bool error, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void stop_proc(struct ls_cutover *c, bool error, const char *fmt, ...)
{
	struct proc *pr = c->pr;
	va_list ap;
	va_start(ap, fmt);
	step_end(c, error ? "error" : "failed", fmt, ap);
	va_end(ap);
	snprintf(pr->outcome, sizeof pr->outcome, "%s", error ? "error" : "failed");
	struct step_rec *s = cur_step(pr);
	snprintf(pr->reason, sizeof pr->reason, "%s: %.1000s", step_names[s->id], s->detail);
	pr->step = S_UNFENCE;
	pr->phase = 0;
	advance(c);
}

/* ---- jobs (work threads) ------------------------------------------------------------------ */

static void job_run(uv_work_t *w)
{
	struct ls_cutover *c = w->data;
	memset(&c->jo.err, 0, sizeof c->jo.err);
	c->jo.rc = c->job_fn(c, &c->jo);
}

static void job_done(uv_work_t *w, int status)
{
	struct ls_cutover *c = w->data;
	c->job_busy = false;
	if (status < 0) {
		c->jo.rc = -1;
		ls_err_set(&c->jo.err, false, "work cancelled");
	}
	if (c->closing) {
		close_step(c);
		return;
	}
	advance(c);
}

/* Runs fn on a work thread, then advance() on the loop with c->jo. */
static void job(struct ls_cutover *c, int (*fn)(struct ls_cutover *c, struct jobout *o))
{
	free(c->jo.undo);
	free(c->jo.seqs);
	memset(&c->jo, 0, sizeof c->jo);
	c->job_fn = fn;
	c->job_busy = true;
	c->work.data = c;
	if (uv_queue_work(c->loop, &c->work, job_run, job_done) < 0) {
		c->job_busy = false;
		c->jo.rc = -1;
		ls_err_set(&c->jo.err, false, "cannot queue work");
		advance(c);
	}
}

/* ---- waits -------------------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
	advance(t->data);
}

static void wait_ms(struct ls_cutover *c, uint64_t ms)
{
	uv_timer_start(&c->timer, on_timer, ms, 0);
}

static bool past(uint64_t deadline)
{
	return uv_hrtime() >= deadline;
}

/* ---- hooks (uv_spawn) -------------------------------------------------------------------------- */

static void hook_handle_closed(uv_handle_t *h)
{
	struct hook *k = h->data;
	if (--k->open > 0)
		return;
	struct ls_cutover *c = k->c;
	c->hook = NULL;
	c->hook_rc = k->exited && k->signal == 0 && !k->timed_out ? k->status : -1;
	while (k->tail_len > 0 && (k->tail[k->tail_len - 1] == '\n' || k->tail[k->tail_len - 1] == ' '))
		k->tail_len--;
	k->tail[k->tail_len] = '\0';
	if (k->timed_out)
		snprintf(c->hook_msg, sizeof c->hook_msg, "timed out%s%s", k->tail_len ? ": " : "",
			 k->tail);
	else if (k->signal)
		snprintf(c->hook_msg, sizeof c->hook_msg, "killed by signal %d%s%s", k->signal,
			 k->tail_len ? ": " : "", k->tail);
	else
		snprintf(c->hook_msg, sizeof c->hook_msg, "exited %" PRId64 "%s%s", k->status,
			 k->tail_len ? ": " : "", k->tail);
	for (int i = 0; k->env[i]; i++)
		free(k->env[i]);
	free(k);
	if (c->closing) {
		close_step(c);
		return;
	}
	advance(c);
}

static void hook_close_all(struct hook *k)
{
	uv_timer_stop(&k->timer);
	if (!uv_is_closing((uv_handle_t *)&k->timer))
		uv_close((uv_handle_t *)&k->timer, hook_handle_closed);
	if (!uv_is_closing((uv_handle_t *)&k->out))
		uv_close((uv_handle_t *)&k->out, hook_handle_closed);
	if (!uv_is_closing((uv_handle_t *)&k->proc))
		uv_close((uv_handle_t *)&k->proc, hook_handle_closed);
}

static void hook_exit(uv_process_t *p, int64_t status, int sig)
{
	struct hook *k = p->data;
	k->exited = true;
	k->status = status;
	k->signal = sig;
	hook_close_all(k);
}

static void hook_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	static char scratch[4096];
	(void)h;
	(void)hint;
	*buf = uv_buf_init(scratch, sizeof scratch);
}

/* Keeps the last HOOK_TAIL-1 bytes of the hook's output for the report. */
static void hook_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct hook *k = s->data;
	if (n <= 0)
		return;
	size_t room = sizeof k->tail - 1;
	size_t take = (size_t)n > room ? room : (size_t)n;
	const char *src = buf->base + (size_t)n - take;
	if (k->tail_len + take > room) {
		size_t drop = k->tail_len + take - room;
		memmove(k->tail, k->tail + drop, k->tail_len - drop);
		k->tail_len -= drop;
	}
	memcpy(k->tail + k->tail_len, src, take);
	k->tail_len += take;
	for (size_t i = 0; i < k->tail_len; i++)
		if (k->tail[i] == '\n' || k->tail[i] == '\r' || k->tail[i] == '\0')
			k->tail[i] = ' ';
}

static void hook_timeout(uv_timer_t *t)
{
	struct hook *k = t->data;
	k->timed_out = true;
	/* the hook runs in its own session: kill the whole group */
	if (k->proc.pid > 0)
		kill(-k->proc.pid, SIGKILL);
}

/* Runs "/bin/sh -c cmd"; advance() follows with c->hook_rc (exit status,
 * or -1 when it could not run, was killed or timed out) and c->hook_msg. */
static void run_hook(struct ls_cutover *c, const char *cmd, const char *side)
{
	struct proc *pr = c->pr;
	struct hook *k = calloc(1, sizeof *k);
	c->hook_rc = -1;
	if (k == NULL) {
		snprintf(c->hook_msg, sizeof c->hook_msg, "out of memory");
		wait_ms(c, 0);
		return;
	}
	k->c = c;
	int ne = 0;
	if (asprintf(&k->env[ne++], "LOCKSTEP_PIPELINE=%s", c->cfg->name) < 0 ||
	    asprintf(&k->env[ne++], "LOCKSTEP_KIND=%s", kind(pr)) < 0 ||
	    asprintf(&k->env[ne++], "LOCKSTEP_STEP=%s", step_names[pr->step]) < 0 ||
	    asprintf(&k->env[ne++], "LOCKSTEP_TABLES=%s", pr->slice_text ? pr->slice_text : "") < 0 ||
	    asprintf(&k->env[ne++], "LOCKSTEP_SIDE=%s", side) < 0)
		k->env[ne - 1] = NULL;
	size_t nenv = 0;
	while (environ[nenv])
		nenv++;
	char **env = calloc(nenv + 8, sizeof *env);
	if (env != NULL) {
		size_t o = 0;
		for (size_t i = 0; i < nenv; i++)
			if (strncmp(environ[i], "LOCKSTEP_", 9) != 0)
				env[o++] = environ[i];
		for (int i = 0; k->env[i]; i++)
			env[o++] = k->env[i];
	}
	uv_pipe_init(c->loop, &k->out, 0);
	uv_timer_init(c->loop, &k->timer);
	k->proc.data = k->out.data = k->timer.data = k;
	/* stderr joins stdout in the one pipe we read */
	char *script = NULL;
	if (asprintf(&script, "exec 2>&1\n%s", cmd) < 0)
		script = NULL;
	char *args[] = { "/bin/sh", "-c", script, NULL };
	uv_stdio_container_t stdio[3] = {
		{ .flags = UV_IGNORE },
		{ .flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&k->out },
		{ .flags = UV_IGNORE },
	};
	uv_process_options_t o = {
		.exit_cb = hook_exit, .file = "/bin/sh", .args = args, .env = env,
		.flags = UV_PROCESS_DETACHED, .stdio_count = 3, .stdio = stdio,
	};
	c->hook = k;
	int rc = env && script ? uv_spawn(c->loop, &k->proc, &o) : UV_ENOMEM;
	free(env);
	free(script);
	if (rc < 0) {
		k->open = 2;
		snprintf(k->tail, sizeof k->tail, "cannot start /bin/sh: %s", uv_strerror(rc));
		k->tail_len = strlen(k->tail);
		uv_close((uv_handle_t *)&k->out, hook_handle_closed);
		uv_close((uv_handle_t *)&k->timer, hook_handle_closed);
		return;
	}
	k->open = 3;
	uv_read_start((uv_stream_t *)&k->out, hook_alloc, hook_read);
	uv_timer_start(&k->timer, hook_timeout, (uint64_t)c->cfg->cutover.hook_timeout_s * 1000, 0);
	ls_info("%s %" PRId64 ": running hook (%s step): %s", kind(pr), pr->id,
		step_names[pr->step], cmd);
}

/* ---- engine jobs ------------------------------------------------------------------------- */

static const struct ls_relation *const *slice(struct ls_cutover *c)
{
	return (const struct ls_relation *const *)c->pr->slice;
}

static int in_roles(struct proc *pr, const char *role)
{
	for (int i = 0; i < pr->nroles; i++)
		if (strcmp(pr->roles[i], role) == 0)
			return 1;
	return 0;
}

/* ready: connections, roles, origin, sequences (read only) */
/* Sequence values from the serving side to the other: one engine's own
 * sequences() when both sides share it, else the old engine's counters
 * raised on the new one (PostgreSQL sequences <-> MySQL AUTO_INCREMENT). */
static int carry_counters(struct ls_cutover *c, struct jobout *o, bool dry_run)
{
	struct proc *pr = c->pr;
	const struct ls_cutover_ops *fo = pr->ops_from, *to = pr->ops_to;
	const char *extra = c->cfg->cutover.sequences;
	if (fo == to)
		return fo->sequences(pr->from, pr->to, slice(c), pr->nslice, extra, dry_run,
				     &o->seqs, &o->nseqs, &o->err);
	if (fo->counters == NULL || to->raise == NULL) {
		ls_err_set(&o->err, false, "carrying sequences from %s to %s is not supported",
			   fo->engine, to->engine);
		return LS_CUTOVER_NO;
	}
	int rc = fo->counters(pr->from, slice(c), pr->nslice, extra, &o->seqs, &o->nseqs, &o->err);
	return rc < 0 ? rc : to->raise(pr->to, o->seqs, o->nseqs, dry_run, &o->err);
}

static int job_plan(struct ls_cutover *c, struct jobout *o)
{
	struct proc *pr = c->pr;
	const struct ls_cutover_ops *fo = pr->ops_from, *to = pr->ops_to;
	if ((pr->from == NULL && fo->open(pr->from_ci, &pr->from, &o->err) < 0) ||
	    (pr->to == NULL && to->open(pr->to_ci, &pr->to, &o->err) < 0))
		return -1;
	if (fo->whoami(pr->from, o->role_from, sizeof o->role_from, &o->err) < 0 ||
	    to->whoami(pr->to, o->role_to, sizeof o->role_to, &o->err) < 0)
		return -1;
	int rc;
	const char *const *roles = (const char *const *)pr->roles;
	if (pr->nroles > 0 &&
	    ((rc = fo->check_roles(pr->from, roles, pr->nroles, &o->err)) < 0 ||
	     (rc = to->check_roles(pr->to, roles, pr->nroles, &o->err)) < 0))
		return rc;
	o->origin_ok = true;
	if (!pr->rollback) {
		char origin[128];
		snprintf(origin, sizeof origin, "lockstep_%s", c->cfg->name);
		if (to->origin_exists(pr->to, origin, &o->origin_ok, &o->err) < 0)
			return -1;
		if (!o->origin_ok)
			snprintf(o->origin_why, sizeof o->origin_why, "%s", o->err.msg);
	}
	return carry_counters(c, o, true);
}

static const char *watch_pub(struct ls_cutover *c, char *buf, size_t size)
{
	if (c->pr->rollback)
		snprintf(buf, size, "lockstep_%s_rev", c->cfg->name);
	else
		snprintf(buf, size, "%s", c->cfg->source.publication);
	return buf;
}

static int job_watch_start(struct ls_cutover *c, struct jobout *o)
{
	char name[96], pub[96];
	snprintf(name, sizeof name, "lockstep_%s_fence", c->cfg->name);
	return c->pr->ops_from->watch_start(c->pr->from, name, watch_pub(c, pub, sizeof pub), &o->err);
}

static int job_fence(struct ls_cutover *c, struct jobout *o)
{
	struct proc *pr = c->pr;
	return pr->ops_from->fence(pr->from, (const char *const *)pr->roles, pr->nroles, slice(c),
			     pr->nslice, c->cfg->cutover.fence == LS_FENCE_READ_ONLY, &o->undo,
			     &o->n, &o->err);
}

static int job_position(struct ls_cutover *c, struct jobout *o)
{
	return c->pr->ops_from->position(c->pr->from, &o->pos, &o->err);
}

static int job_watch_count(struct ls_cutover *c, struct jobout *o)
{
	struct proc *pr = c->pr;
	int rc = pr->ops_from->watch_count(pr->from, slice(c), pr->nslice, pr->fence_pos.seq, &o->n,
				     o->first, sizeof o->first, &o->err);
	struct ls_err e2;
	if (pr->ops_from->watch_stop(pr->from, &e2) < 0)
		ls_warn("%s: %s", kind(pr), e2.msg);
	return rc;
}

static int job_unfence_from(struct ls_cutover *c, struct jobout *o)
{
	return c->pr->ops_from->unfence(c->pr->from, c->pr->undo, &o->err);
}

static int job_unfence_to(struct ls_cutover *c, struct jobout *o)
{
	struct proc *pr = c->pr;
	return pr->ops_to->unfence(pr->to, pr->rollback ? c->oldside_undo : c->newside_undo,
				 &o->err);
}

static int job_sequences(struct ls_cutover *c, struct jobout *o)
{
	return carry_counters(c, o, false);
}

static void rev_names(struct ls_cutover *c, char *slot, size_t size)
{
	snprintf(slot, size, "lockstep_%s_rev", c->cfg->name);
}

static int job_reverse_prepare(struct ls_cutover *c, struct jobout *o)
{
	struct proc *pr = c->pr;
	char name[96];
	rev_names(c, name, sizeof name);
	return pr->ops_to->reverse_prepare(pr->to, pr->to_ci, name, name, slice(c), pr->nslice,
				       &o->pos, &o->err);
}

/* The reverse slot lives on the new side: `to` in a cutover, `from` in a
 * rollback. */
static int job_reverse_drop(struct ls_cutover *c, struct jobout *o)
{
	struct proc *pr = c->pr;
	char name[96];
	rev_names(c, name, sizeof name);
	return (pr->rollback ? pr->ops_from : pr->ops_to)->reverse_drop(pr->rollback ? pr->from
									: pr->to, name, name, &o->err);
}

/* ---- the drift sub-step ------------------------------------------------------------------------- */

static void drift_reset(struct proc *pr)
{
	pr->dr_i = 0;
	pr->dr_id = 0;
	pr->dr_deadline = uv_hrtime() + (uint64_t)(pr->timeout_s * 10 * 1e9);
}

/* Checks the slice's tables one at a time (all at once when the slice is
 * every captured table).  1 all clean; 0 waiting (a timer is set); -1 the
 * procedure was stopped. */
static int drift_poll(struct ls_cutover *c, const char *when)
{
	struct proc *pr = c->pr;
	int n = pr->slice_all ? 1 : pr->nslice;
	while (pr->dr_i < n) {
		char table[512];
		const struct ls_relation *r = pr->slice_all ? NULL : pr->slice[pr->dr_i];
		table[0] = '\0';
		if (r)
			snprintf(table, sizeof table, "%s.%s", r->schema, r->name);
		if (pr->dr_id == 0) {
			struct ls_err err = {0};
			int64_t id = pr->pipe->drift_check(pr->pipe->p, r ? table : NULL, &err);
			if (id < 0 && err.retryable && !past(pr->dr_deadline)) {
				wait_ms(c, (uint64_t)c->poll_ms);
				return 0;
			}
			if (id < 0) {
				stop_proc(c, true, "drift check could not start: %s", err.msg);
				return -1;
			}
			pr->dr_id = id;
			wait_ms(c, (uint64_t)c->poll_ms);
			return 0;
		}
		struct ls_drift_last last;
		pr->pipe->drift_last(pr->pipe->p, &last);
		if (!last.known || (int64_t)last.id < pr->dr_id) {
			if (past(pr->dr_deadline)) {
				stop_proc(c, true, "drift check %" PRId64 " did not finish in time",
					  pr->dr_id);
				return -1;
			}
			wait_ms(c, (uint64_t)c->poll_ms);
			return 0;
		}
		struct drift_rec *d = realloc(pr->drifts, (size_t)(pr->ndrifts + 1) * sizeof *d);
		if (d != NULL) {
			pr->drifts = d;
			d = &d[pr->ndrifts++];
			memset(d, 0, sizeof *d);
			snprintf(d->when, sizeof d->when, "%s", when);
			snprintf(d->table, sizeof d->table, "%.255s", r ? table : "(all)");
			d->check = last.id;
			d->clean = last.clean;
			d->rows = last.rows;
			snprintf(d->error, sizeof d->error, "%s", last.error);
		}
		if (last.error[0]) {
			stop_proc(c, false, "drift check %u of %s: %s", last.id, r ? table : "the slice",
				  last.error);
			return -1;
		}
		if (!last.clean || last.rows > 0) {
			stop_proc(c, false, "drift: %" PRIu64 " row(s) differ in %s (check %u)",
				  last.rows, r ? table : "the slice", last.id);
			return -1;
		}
		pr->dr_i++;
		pr->dr_id = 0;
	}
	return 1;
}

/* ---- the steps -------------------------------------------------------------------------------- */

/* 0 waiting, 1 converged, -1 stopped: the pipe's target has applied up to
 * `want` (0: a source position sampled now), within max_lag when
 * check_lag. */
/* Where one target stands: 1 when it has applied `want` (0: the source
 * position sampled first) within the lag bound, else 0 with *why set. */
static int target_ready(struct ls_cutover *c, const char *target, uint64_t want,
			bool check_lag, char *why, size_t size)
{
	struct proc *pr = c->pr;
	struct ls_cutover_lag l;
	memset(&l, 0, sizeof l);
	l.lag_s = -1;
	if (pr->pipe->lag(pr->pipe->p, target, &l) < 0)
		return snprintf(why, size, "no target %s", target), -1;
	if (want == 0 && !pr->have_s0 && l.source_seq > 0) {
		pr->have_s0 = true;
		pr->s0.seq = l.source_seq;
	}
	if (want == 0)
		want = pr->have_s0 ? pr->s0.seq : UINT64_MAX;
	if (l.applied_known && strcmp(target, pr->target) == 0) {
		pr->applied.seq = l.applied_seq;
		snprintf(pr->applied.text, sizeof pr->applied.text, "%s", l.applied);
	}
	bool lag_ok = !check_lag || (l.lag_s >= 0 && l.lag_s <= pr->max_lag_s);
	if (strcmp(l.state, "failed") != 0 && l.applied_known && l.applied_seq >= want && lag_ok)
		return 1;
	if (strcmp(l.state, "failed") == 0)
		snprintf(why, size, "the pipeline failed (see lockstepctl status)");
	else if (!lag_ok)
		snprintf(why, size, "target %s: apply lag %.1f s is above %.1f s after %.0f s",
			 target, l.lag_s, pr->max_lag_s, pr->timeout_s);
	else
		snprintf(why, size, "target %s has not applied up to the source position within "
			 "%.0f s (applied %s)", target, pr->timeout_s,
			 l.applied_known ? l.applied : "nothing");
	return 0;
}

/* Every target of the pipe (a cutover: all of the forward pipeline's, so
 * none is left behind the fence; a rollback: the reverse's one) has
 * applied `want`: 1; 0 = polled again later; -1 = stopped (deadline). */
static int lag_poll(struct ls_cutover *c, uint64_t want, bool check_lag)
{
	struct proc *pr = c->pr;
	char why[512] = "";
	int n = pr->rollback ? 1 : c->cfg->ntargets;
	for (int i = 0; i < n; i++) {
		const char *t = pr->rollback ? pr->target : c->cfg->targets[i].name;
		int rc = target_ready(c, t, want, check_lag, why, sizeof why);
		if (rc < 0) {
			stop_proc(c, true, "%s", why);
			return -1;
		}
		if (rc == 0)
			break;
		why[0] = '\0';
	}
	if (why[0] == '\0')
		return 1;
	if (!past(pr->deadline_ns)) {
		wait_ms(c, (uint64_t)c->poll_ms);
		return 0;
	}
	stop_proc(c, false, "%s", why);
	return -1;
}

static void plan_add(struct proc *pr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void plan_add(struct proc *pr, const char *fmt, ...)
{
	size_t n = strlen(pr->plan);
	va_list ap;
	va_start(ap, fmt);
	if (n < sizeof pr->plan - 1)
		vsnprintf(pr->plan + n, sizeof pr->plan - n, fmt, ap);
	va_end(ap);
}

static void take_seqs(struct ls_cutover *c)
{
	struct proc *pr = c->pr;
	free(pr->seqs);
	pr->seqs = c->jo.seqs;
	pr->nseqs = c->jo.nseqs;
	c->jo.seqs = NULL;
}

static void make_plan(struct ls_cutover *c)
{
	struct proc *pr = c->pr;
	const struct ls_config_cutover *k = &c->cfg->cutover;
	pr->plan[0] = '\0';
	if (k->fence_hook)
		plan_add(pr, "fence: run fence_hook on the %s side\n", pr->rollback ? "new" : "old");
	else {
		plan_add(pr, "fence: revoke INSERT, UPDATE, DELETE, TRUNCATE on %d table(s) from",
			 pr->nslice);
		for (int i = 0; i < pr->nroles; i++)
			plan_add(pr, "%s %s", i ? "," : "", pr->roles[i]);
		plan_add(pr, " on the %s side and end their sessions\n", pr->rollback ? "new" : "old");
	}
	plan_add(pr, "drain: wait until target %s applied the fence position\n", pr->target);
	for (int i = 0; i < pr->nseqs; i++)
		plan_add(pr, "sequences: %s = %s%s\n", pr->seqs[i].name, pr->seqs[i].value,
			 pr->seqs[i].is_called ? "" : " (not called)");
	plan_add(pr, "verify: drift check of %d table(s) and %d check_command(s)\n", pr->nslice,
		 pr->nchecks);
	const char *hook = pr->rollback ? k->switch_back_hook : k->switch_hook;
	plan_add(pr, "switch: %s\n", hook ? hook : "(no hook: repoint the application yourself)");
	if (!pr->rollback)
		plan_add(pr, "reverse: pipeline %s_rev, new side -> old side\n", c->cfg->name);
	else
		plan_add(pr, "stop_reverse: stop pipeline %s_rev, drop its slot\n", c->cfg->name);
}

static void do_ready(struct ls_cutover *c)
{
	struct proc *pr = c->pr;
	switch (pr->phase) {
	case 0:
		step_begin(c, S_READY);
		job(c, job_plan);
		return;
	case 1:
		if (c->jo.rc == LS_CUTOVER_NO) {
			stop_proc(c, false, "%s", c->jo.err.msg);
			return;
		}
		if (c->jo.rc < 0) {
			stop_proc(c, true, "%s", c->jo.err.msg);
			return;
		}
		snprintf(pr->role_from, sizeof pr->role_from, "%s", c->jo.role_from);
		snprintf(pr->role_to, sizeof pr->role_to, "%s", c->jo.role_to);
		take_seqs(c);
		if (in_roles(pr, pr->role_from) || in_roles(pr, pr->role_to)) {
			stop_proc(c, false, "lockstep's own role (%s / %s) is an application role: the "
				  "fence would stop lockstep too", pr->role_from, pr->role_to);
			return;
		}
		if (!c->jo.origin_ok) {
			stop_proc(c, false, "the forward apply cannot tag its transactions on the new "
				  "side as lockstep_%s (%s), so the reverse direction would loop",
				  c->cfg->name, c->jo.origin_why[0] ? c->jo.origin_why :
				  "no such replication origin; see the daemon's log");
			return;
		}
		pr->phase = 2;
		/* fall through */
	case 2: {
		int rc = lag_poll(c, 0, true);
		if (rc <= 0)
			return;
		drift_reset(pr);
		pr->phase = 3;
	}
		/* fall through */
	case 3: {
		if (drift_poll(c, "ready") <= 0)
			return;
		make_plan(c);
		if (pr->dry_run) {
			step_ok(c, S_DONE, "converged (applied %s, source %" PRIu64 "); drift clean; "
				"dry run: nothing changed", pr->applied.text, pr->s0.seq);
			return;
		}
		step_ok(c, S_FENCE, "target %s converged (applied %s); drift clean (%d table(s))",
			pr->target, pr->applied.text, pr->nslice);
		return;
	}
	}
}

static void do_fence(struct ls_cutover *c)
{
	struct proc *pr = c->pr;
	const struct ls_config_cutover *k = &c->cfg->cutover;
	switch (pr->phase) {
	case 0:
		step_begin(c, S_FENCE);
		job(c, job_watch_start);
		return;
	case 1:
		if (c->jo.rc < 0) {
			stop_proc(c, true, "cannot watch for writes: %s", c->jo.err.msg);
			return;
		}
		pr->phase = 2;
		if (k->fence_hook) {
			pr->fence_by_hook = true;
			pr->fenced = true;   /* it may have fenced part way: unfence_hook runs */
			run_hook(c, k->fence_hook, pr->rollback ? "new" : "old");
		} else {
			job(c, job_fence);
		}
		return;
	case 2:
		if (pr->fence_by_hook && c->hook_rc != 0) {
			stop_proc(c, false, "fence_hook %s", c->hook_msg);
			return;
		}
		if (!pr->fence_by_hook) {
			/* an undo text means the revoke committed, even when ending
			 * the sessions failed after it */
			if (c->jo.undo) {
				pr->fenced = true;
				pr->undo = c->jo.undo;
				c->jo.undo = NULL;
				pr->ended = c->jo.n;
				state_write(c, LS_CUTSTATE_FENCED);   /* a restart lifts it */
			}
			if (c->jo.rc < 0) {
				stop_proc(c, c->jo.rc != LS_CUTOVER_NO, "%s", c->jo.err.msg);
				return;
			}
		}
		pr->fenced_ns = uv_hrtime();
		pr->fenced_us = wall_us();
		pr->phase = 3;
		job(c, job_position);
		return;
	case 3:
		if (c->jo.rc < 0) {
			stop_proc(c, true, "%s", c->jo.err.msg);
			return;
		}
		pr->fence_pos = c->jo.pos;
		pr->have_fence = true;
		pr->phase = 4;
		wait_ms(c, (uint64_t)c->cfg->cutover.settle_ms);
		return;
	case 4:
		pr->phase = 5;
		job(c, job_watch_count);
		return;
	case 5:
		if (c->jo.rc < 0) {
			stop_proc(c, true, "cannot read the writes after the fence: %s", c->jo.err.msg);
			return;
		}
		if (c->jo.n > 0) {
			stop_proc(c, false, "%" PRIu64 " row change(s) to the slice committed after the "
				  "fence at %s (first: %s): something still writes", c->jo.n,
				  pr->fence_pos.text, c->jo.first);
			return;
		}
		step_ok(c, S_DRAIN, "%s at %s; %" PRIu64 " session(s) ended; no write in %d ms",
			pr->fence_by_hook ? "fence_hook fenced" : "writes revoked", pr->fence_pos.text,
			pr->ended, c->cfg->cutover.settle_ms);
		return;
	}
}

static void do_drain(struct ls_cutover *c)
{
	struct proc *pr = c->pr;
	switch (pr->phase) {
	case 0:
		step_begin(c, S_DRAIN);
		/* fall through */
	case 1: {
		int rc = lag_poll(c, pr->fence_pos.seq, false);
		if (rc <= 0)
			return;
		if (pr->rollback) {
			step_ok(c, S_SEQUENCES, "target %s applied %s (fence %s)", pr->target,
				pr->applied.text, pr->fence_pos.text);
			return;
		}
		pr->phase = 2;
		job(c, job_reverse_prepare);
		return;
	}
	case 2:
		if (c->jo.rc < 0) {
			stop_proc(c, true, "reverse slot: %s", c->jo.err.msg);
			return;
		}
		pr->reverse_slot_made = true;
		pr->rev_at = c->jo.pos;
		pr->have_rev = true;
		step_ok(c, S_SEQUENCES, "target %s applied %s (fence %s); reverse slot lockstep_%s_rev "
			"starts at %s", pr->target, pr->applied.text, pr->fence_pos.text, c->cfg->name,
			pr->rev_at.text);
		return;
	}
}

static void do_sequences(struct ls_cutover *c)
{
	struct proc *pr = c->pr;
	if (pr->phase == 0) {
		step_begin(c, S_SEQUENCES);
		job(c, job_sequences);
		return;
	}
	if (c->jo.rc < 0) {
		stop_proc(c, c->jo.rc != LS_CUTOVER_NO, "%s", c->jo.err.msg);
		return;
	}
	take_seqs(c);
	pr->seqs_carried = true;
	step_ok(c, S_VERIFY, "%d sequence(s) carried to the %s side", pr->nseqs,
		pr->rollback ? "old" : "new");
}

static void do_verify(struct ls_cutover *c)
{
	struct proc *pr = c->pr;
	switch (pr->phase) {
	case 0:
		step_begin(c, S_VERIFY);
		drift_reset(pr);
		pr->check_i = 0;
		/* fall through */
	case 1:
		if (drift_poll(c, "verify") <= 0)
			return;
		pr->phase = 2;
		/* fall through */
	case 2:
		if (pr->check_i < pr->nchecks) {
			pr->phase = 3;
			run_hook(c, pr->checks[pr->check_i], pr->rollback ? "old" : "new");
			return;
		}
		step_ok(c, S_SWITCH, "zero drift in %d table(s); %d check_command(s) passed",
			pr->nslice, pr->nchecks);
		return;
	case 3:
		if (c->hook_rc != 0) {
			stop_proc(c, false, "check_command %d (%s) %s", pr->check_i + 1,
				  pr->checks[pr->check_i], c->hook_msg);
			return;
		}
		pr->check_i++;
		pr->phase = 2;
		advance(c);
		return;
	}
}

/* The application moves (hook), then the side it moves to is opened for
 * it (a fence from an earlier procedure lifted): a failing hook leaves
 * both sides as they were. */
/* The application now writes to the other side: from here a restart must
 * come back cut over (or rolled back), never unfence the side it left. */
static void switched(struct ls_cutover *c)
{
	struct proc *pr = c->pr;
	if (pr->rollback) {
		free(c->newside_undo);   /* the new side stays fenced; a later cutover lifts it */
		c->newside_undo = pr->undo ? strdup(pr->undo) : NULL;
		c->cut_id = 0;
		state_write(c, LS_CUTSTATE_ROLLED_BACK);
		return;
	}
	free(c->oldside_undo);           /* the rollback lifts it */
	c->oldside_undo = pr->undo ? strdup(pr->undo) : NULL;
	c->cut_id = pr->id;
	c->cut_tidx = pr->tidx;
	snprintf(c->cut_rev_start, sizeof c->cut_rev_start, "%s",
		 pr->have_rev ? pr->rev_at.text : "");
	c->cut_report[0] = '\0';
	c->window_until_us = wall_us() + c->cfg->cutover.rollback_window_s * 1000000;
	state_write(c, LS_CUTSTATE_CUT_OVER);
}

static void do_switch(struct ls_cutover *c)
{
	struct proc *pr = c->pr;
	const struct ls_config_cutover *k = &c->cfg->cutover;
	const char *hook = pr->rollback ? k->switch_back_hook : k->switch_hook;
	char **to_undo = pr->rollback ? &c->oldside_undo : &c->newside_undo;
	switch (pr->phase) {
	case 0:
		step_begin(c, S_SWITCH);
		if (hook) {
			run_hook(c, hook, pr->rollback ? "old" : "new");
			return;
		}
		c->hook_rc = 0;
		snprintf(c->hook_msg, sizeof c->hook_msg, "no hook configured");
		/* fall through */
	case 1:
		if (c->hook_rc != 0) {
			stop_proc(c, false, "%s %s", pr->rollback ? "switch_back_hook" : "switch_hook",
				  c->hook_msg);
			return;
		}
		pr->phase = 2;
		if (*to_undo) {
			job(c, job_unfence_to);
			return;
		}
		c->jo.rc = 0;
		/* fall through */
	case 2:
		if (c->jo.rc < 0) {
			stop_proc(c, true, "the %s side's earlier fence could not be lifted: %s",
				  pr->rollback ? "old" : "new", c->jo.err.msg);
			return;
		}
		free(*to_undo);
		*to_undo = NULL;
		pr->open_ns = uv_hrtime();
		pr->open_us = wall_us();
		switched(c);
		step_ok(c, pr->rollback ? S_STOP_REVERSE : S_REVERSE, "%s%s; writes fenced for %.3f s",
			hook ? "switched: " : "", hook ? hook : "no switch hook: repoint the application",
			(pr->open_ns - pr->fenced_ns) / 1e9);
		return;
	}
}

static const char *rev_state(struct ls_cutover *c, char *err, size_t size)
{
	err[0] = '\0';
	return c->rev_open ? c->host.reverse_state(c->host.ctx, &c->rev, err, size) : "stopped";
}

/* Where the reverse stream starts: PostgreSQL's slot holds the drain
 * point; a MySQL source is told the GTID set taken there.  Each procedure
 * gets its own state directory, so a later cutover never resumes from an
 * earlier one's saved position. */
static int reverse_start(struct ls_cutover *c, struct ls_config *rc, struct ls_err *err)
{
	struct proc *pr = c->pr;
	char *dir = NULL;
	if (asprintf(&dir, "%s/reverse-%" PRId64, c->cfg->state_dir, pr->id) < 0)
		return ls_err_set(err, false, "out of memory");
	free(rc->state_dir);
	rc->state_dir = dir;
	if (rc->source.type != LS_ENGINE_MYSQL)
		return 0;
	if (pr->rev_at.text[0] == '\0')
		return ls_err_set(err, false, "the new side's drain position has no GTID: the "
				  "reverse direction needs GTIDs on (gtid_binlog_pos is empty)");
	rc->source.start_gtid = strdup(pr->rev_at.text);
	return rc->source.start_gtid ? 0 : ls_err_set(err, false, "out of memory");
}

static void do_reverse(struct ls_cutover *c)
{
	struct proc *pr = c->pr;
	char err[LS_ERR_MSG_MAX];
	switch (pr->phase) {
	case 0: {
		step_begin(c, S_REVERSE);
		struct ls_err e = {0};
		struct ls_config *rc = ls_cutover_reverse_config(c->cfg, pr->tidx, pr->slice_text, &e);
		if (rc != NULL && reverse_start(c, rc, &e) < 0)
			rc = (ls_config_free(rc), NULL);
		if (rc == NULL || c->host.reverse_open(c->host.ctx, rc, &c->rev, &e) < 0) {
			stop_proc(c, true, "reverse pipeline: %s", e.msg);
			return;
		}
		c->rev_open = true;
	}
		/* fall through */
	case 1: {
		const char *st = rev_state(c, err, sizeof err);
		if (strcmp(st, "streaming") == 0) {
			step_ok(c, S_DONE, "pipeline %s_rev streams the new side back to the old one "
				"from %s", c->cfg->name, pr->rev_at.text);
			return;
		}
		if (strcmp(st, "failed") == 0 || past(pr->deadline_ns)) {
			stop_proc(c, true, "reverse pipeline %s_rev is %s%s%s", c->cfg->name, st,
				  err[0] ? ": " : "", err);
			return;
		}
		wait_ms(c, (uint64_t)c->poll_ms);
		return;
	}
	}
}

static void rev_closed(void *arg)
{
	struct ls_cutover *c = arg;
	c->rev_closing = false;
	if (c->closing) {
		close_step(c);
		return;
	}
	advance(c);
}

static void do_stop_reverse(struct ls_cutover *c)
{
	struct proc *pr = c->pr;
	switch (pr->phase) {
	case 0:
		step_begin(c, S_STOP_REVERSE);
		if (c->rev_open) {
			c->rev_open = false;
			c->rev_closing = true;
			c->host.reverse_close(c->host.ctx, &c->rev, rev_closed, c);
			return;
		}
		/* fall through */
	case 1:
		pr->phase = 2;
		job(c, job_reverse_drop);
		return;
	case 2:
		if (c->jo.rc < 0) {
			snprintf(pr->outcome, sizeof pr->outcome, "error");
			snprintf(pr->reason, sizeof pr->reason, "stop_reverse: %s", c->jo.err.msg);
			step_ok(c, S_DONE, "reverse pipeline stopped; dropping its slot failed: %s",
				c->jo.err.msg);
			return;
		}
		step_ok(c, S_DONE, "reverse pipeline %s_rev stopped; slot and publication dropped",
			c->cfg->name);
		return;
	}
}

/* After a failed check or an error: the side that served keeps serving. */
static void do_unfence(struct ls_cutover *c)
{
	struct proc *pr = c->pr;
	const struct ls_config_cutover *k = &c->cfg->cutover;
	char *tail = pr->note;
	switch (pr->phase) {
	case 0:
		/* after the switch the other side serves: its fence stays (the
		 * report has what lifts it) and the reverse slot keeps its changes */
		if ((!pr->fenced && !pr->reverse_slot_made) || pr->open_ns) {
			pr->step = S_DONE;
			pr->phase = 0;
			advance(c);
			return;
		}
		step_begin(c, S_UNFENCE);
		pr->phase = 1;
		if (pr->fenced && pr->fence_by_hook && k->unfence_hook) {
			run_hook(c, k->unfence_hook, pr->rollback ? "new" : "old");
			return;
		}
		if (pr->fenced && !pr->fence_by_hook) {
			job(c, job_unfence_from);
			return;
		}
		c->jo.rc = 0;
		c->hook_rc = 0;
		/* fall through */
	case 1:
		tail[0] = '\0';
		if (pr->fenced && pr->fence_by_hook && !k->unfence_hook)
			snprintf(tail, 256, "no unfence_hook: lift fence_hook's fence yourself; ");
		else if (pr->fenced && ((pr->fence_by_hook && c->hook_rc != 0) ||
					(!pr->fence_by_hook && c->jo.rc < 0))) {
			snprintf(pr->outcome, sizeof pr->outcome, "error");
			snprintf(tail, 512, "LIFTING THE FENCE FAILED (%.400s): the %s side still refuses "
				 "the application's writes; ", pr->fence_by_hook ? c->hook_msg
				 : c->jo.err.msg, pr->rollback ? "new" : "old");
			size_t n = strlen(pr->reason);
			snprintf(pr->reason + n, sizeof pr->reason - n, "; %s", tail);
		} else if (pr->fenced) {
			pr->unfenced = true;
		}
		if (pr->fenced) {
			pr->open_ns = uv_hrtime();
			pr->open_us = wall_us();
		}
		pr->phase = 2;
		if (pr->reverse_slot_made) {
			job(c, job_reverse_drop);
			return;
		}
		c->jo.rc = 0;
		/* fall through */
	case 2: {
		char note[1400];
		snprintf(note, sizeof note, "%s%s%s", tail,
			 pr->unfenced ? "fence lifted: the old side serves as before" :
			 pr->fenced ? "" : "nothing was fenced",
			 c->jo.rc < 0 ? "; dropping the reverse slot failed" : "");
		if (pr->rollback && pr->unfenced)
			snprintf(note, sizeof note, "%sfence lifted: the new side serves as before", tail);
		pr->reverse_slot_made = false;
		struct step_rec *s = cur_step(pr);
		snprintf(s->state, sizeof s->state, "%s", strcmp(pr->outcome, "error") == 0 &&
			 pr->fenced && !pr->unfenced && !pr->fence_by_hook ? "error" : "ok");
		s->ns = uv_hrtime() - s->t0_ns;
		snprintf(s->detail, sizeof s->detail, "%.1000s", note);
		ls_notice("%s %" PRId64 ": step unfence: %s", kind(pr), pr->id, note);
		pr->step = S_DONE;
		pr->phase = 0;
		advance(c);
		return;
	}
	}
}

/* ---- reports ---------------------------------------------------------------------------------- */

static void proc_json(struct ls_cutover *c, struct proc *pr, struct ls_json *j)
{
	ls_json_object_begin(j);
	ls_json_kv_int(j, "id", pr->id);
	ls_json_kv_string(j, "kind", kind(pr));
	ls_json_kv_bool(j, "dry_run", pr->dry_run);
	ls_json_kv_bool(j, "active", pr->active);
	ls_json_kv_string(j, "outcome", pr->outcome);
	ls_json_kv_string(j, "reason", pr->reason[0] ? pr->reason : NULL);
	ls_json_key(j, "requested_by_uid");
	if (pr->uid >= 0)
		ls_json_int(j, pr->uid);
	else
		ls_json_null(j);
	ls_json_kv_string(j, "pipeline", c->cfg->name);
	ls_json_kv_string(j, "target", pr->target);
	json_time(j, "started_at", pr->started_us);
	json_time(j, "finished_at", pr->finished_us);
	ls_json_key(j, "seconds");
	ls_json_double(j, ((pr->finished_us ? pr->finished_us : wall_us()) - pr->started_us) / 1e6);
	ls_json_kv_string(j, "tables_pattern", pr->tables_pat);
	ls_json_key(j, "tables");
	ls_json_array_begin(j);
	for (int i = 0; i < pr->nslice; i++) {
		char t[512];
		snprintf(t, sizeof t, "%s.%s", pr->slice[i]->schema, pr->slice[i]->name);
		ls_json_string(j, t);
	}
	ls_json_array_end(j);
	ls_json_key(j, "app_roles");
	ls_json_array_begin(j);
	for (int i = 0; i < pr->nroles; i++)
		ls_json_string(j, pr->roles[i]);
	ls_json_array_end(j);
	ls_json_key(j, "max_lag_seconds");
	ls_json_double(j, pr->max_lag_s);
	ls_json_kv_string(j, "step", pr->step == S_DONE ? NULL : step_names[pr->step]);
	ls_json_key(j, "steps");
	ls_json_array_begin(j);
	for (int i = 0; i < pr->nsteps; i++) {
		struct step_rec *s = &pr->steps[i];
		ls_json_object_begin(j);
		ls_json_kv_string(j, "step", step_names[s->id]);
		ls_json_kv_string(j, "state", s->state);
		json_time(j, "started_at", s->started_us);
		ls_json_key(j, "seconds");
		ls_json_double(j, (strcmp(s->state, "running") == 0 ? uv_hrtime() - s->t0_ns : s->ns) / 1e9);
		ls_json_kv_string(j, "detail", s->detail);
		ls_json_object_end(j);
	}
	ls_json_array_end(j);
	ls_json_key(j, "positions");
	ls_json_object_begin(j);
	ls_json_kv_uint(j, "source_seq_at_start", pr->s0.seq);
	ls_json_kv_string(j, "fence", pr->have_fence ? pr->fence_pos.text : NULL);
	ls_json_kv_string(j, "applied", pr->applied.text[0] ? pr->applied.text : NULL);
	ls_json_kv_string(j, "reverse_start", pr->have_rev ? pr->rev_at.text : NULL);
	ls_json_object_end(j);
	ls_json_key(j, "fence");
	ls_json_object_begin(j);
	ls_json_kv_string(j, "method", pr->fence_by_hook ? "fence_hook"
				       : c->cfg->cutover.fence == LS_FENCE_READ_ONLY ? "read_only"
				       : "revoke");
	ls_json_kv_bool(j, "applied", pr->fenced);
	ls_json_kv_bool(j, "lifted", pr->unfenced);
	ls_json_kv_uint(j, "sessions_ended", pr->ended);
	json_time(j, "fenced_at", pr->fenced_us);
	json_time(j, "writes_possible_at", pr->open_us);
	ls_json_kv_string(j, "undo", pr->undo);
	ls_json_object_end(j);
	ls_json_key(j, "write_unavailable_seconds");
	if (pr->fenced_ns && pr->open_ns)
		ls_json_double(j, (pr->open_ns - pr->fenced_ns) / 1e9);
	else if (pr->fenced_ns)
		ls_json_double(j, (uv_hrtime() - pr->fenced_ns) / 1e9);
	else
		ls_json_null(j);
	ls_json_key(j, "drift");
	ls_json_array_begin(j);
	for (int i = 0; i < pr->ndrifts; i++) {
		struct drift_rec *d = &pr->drifts[i];
		ls_json_object_begin(j);
		ls_json_kv_string(j, "when", d->when);
		ls_json_kv_string(j, "table", d->table);
		ls_json_kv_uint(j, "check", d->check);
		ls_json_kv_bool(j, "clean", d->clean);
		ls_json_kv_uint(j, "drift_rows", d->rows);
		ls_json_kv_string(j, "error", d->error[0] ? d->error : NULL);
		ls_json_object_end(j);
	}
	ls_json_array_end(j);
	ls_json_key(j, "sequences");
	ls_json_array_begin(j);
	for (int i = 0; i < pr->nseqs; i++) {
		ls_json_object_begin(j);
		ls_json_kv_string(j, "name", pr->seqs[i].name);
		ls_json_kv_string(j, "value", pr->seqs[i].value);
		ls_json_kv_bool(j, "is_called", pr->seqs[i].is_called);
		ls_json_kv_string(j, "owned_by", pr->seqs[i].owner[0] ? pr->seqs[i].owner : NULL);
		ls_json_kv_bool(j, "carried", pr->seqs_carried);
		ls_json_object_end(j);
	}
	ls_json_array_end(j);
	ls_json_kv_string(j, "plan", pr->plan[0] ? pr->plan : NULL);
	ls_json_kv_string(j, "report", pr->report[0] ? pr->report : NULL);
	ls_json_object_end(j);
}

void ls_cutover_json(struct ls_cutover *c, struct ls_json *j)
{
	char err[LS_ERR_MSG_MAX];
	ls_json_object_begin(j);
	ls_json_kv_string(j, "phase", ls_cutover_phase(c));
	json_time(j, "rollback_until", c->phase == PH_CUT_OVER ? c->window_until_us : 0);
	ls_json_key(j, "reverse");
	if (c->rev_open) {
		const char *st = rev_state(c, err, sizeof err);
		ls_json_object_begin(j);
		char name[96];
		snprintf(name, sizeof name, "%s_rev", c->cfg->name);
		ls_json_kv_string(j, "pipeline", name);
		ls_json_kv_string(j, "state", st);
		ls_json_kv_string(j, "error", err[0] ? err : NULL);
		struct ls_cutover_lag l;
		memset(&l, 0, sizeof l);
		if (c->rev.lag(c->rev.p, "old", &l) == 0) {
			ls_json_kv_string(j, "applied", l.applied_known ? l.applied : NULL);
			ls_json_kv_uint(j, "applied_seq", l.applied_seq);
			ls_json_kv_uint(j, "txns_captured", l.txns_captured);
			ls_json_kv_uint(j, "changes_applied", l.changes_applied);
			ls_json_key(j, "apply_lag_seconds");
			ls_json_double(j, l.lag_s);
		}
		ls_json_object_end(j);
	} else {
		ls_json_null(j);
	}
	ls_json_key(j, "procedure");
	if (c->pr)
		proc_json(c, c->pr, j);
	else
		ls_json_null(j);
	ls_json_object_end(j);
}

static void report_text(struct ls_cutover *c, struct proc *pr, FILE *f)
{
	char a[48], b[48];
	iso(a, sizeof a, pr->started_us);
	iso(b, sizeof b, pr->finished_us);
	fprintf(f, "lockstep %s %" PRId64 " of pipeline %s%s: %s\n", kind(pr), pr->id,
		c->cfg->name, pr->dry_run ? " (dry run)" : "", pr->outcome);
	if (pr->reason[0])
		fprintf(f, "reason: %s\n", pr->reason);
	fprintf(f, "requested by uid %ld; %s .. %s\ntarget %s; tables:", pr->uid, a, b, pr->target);
	for (int i = 0; i < pr->nslice; i++)
		fprintf(f, " %s.%s", pr->slice[i]->schema, pr->slice[i]->name);
	fprintf(f, "\napplication roles:");
	for (int i = 0; i < pr->nroles; i++)
		fprintf(f, " %s", pr->roles[i]);
	fprintf(f, "\n\nsteps:\n");
	for (int i = 0; i < pr->nsteps; i++) {
		struct step_rec *s = &pr->steps[i];
		iso(a, sizeof a, s->started_us);
		fprintf(f, "  %-13s %-8s %s %8.3f s  %s\n", step_names[s->id], s->state, a,
			s->ns / 1e9, s->detail);
	}
	fprintf(f, "\npositions: fence %s; applied %s; reverse start %s\n",
		pr->have_fence ? pr->fence_pos.text : "-", pr->applied.text[0] ? pr->applied.text : "-",
		pr->have_rev ? pr->rev_at.text : "-");
	if (pr->fenced_ns)
		fprintf(f, "writes fenced for %.3f s (fenced %s%s)\n",
			((pr->open_ns ? pr->open_ns : uv_hrtime()) - pr->fenced_ns) / 1e9,
			pr->fence_by_hook ? "by fence_hook" : "by revoke",
			pr->open_ns ? "" : ", STILL FENCED");
	for (int i = 0; i < pr->ndrifts; i++)
		fprintf(f, "drift (%s) %s: check %u %s, %" PRIu64 " row(s)%s%s\n", pr->drifts[i].when,
			pr->drifts[i].table, pr->drifts[i].check, pr->drifts[i].clean ? "clean" : "NOT clean",
			pr->drifts[i].rows, pr->drifts[i].error[0] ? ", error: " : "", pr->drifts[i].error);
	for (int i = 0; i < pr->nseqs; i++)
		fprintf(f, "sequence %s = %s%s%s\n", pr->seqs[i].name, pr->seqs[i].value,
			pr->seqs[i].is_called ? "" : " (is_called false)",
			pr->seqs_carried ? " carried" : " (not carried)");
	if (pr->undo && !pr->unfenced)
		fprintf(f, "\nto lift the fence by hand:\n%s\n", pr->undo);
	if (pr->plan[0])
		fprintf(f, "\nplan:\n%s", pr->plan);
}

/* Writes <kind>-<UTC time>.json and .txt into state_dir; the path (without
 * extension) lands in pr->report. */
static void write_report(struct ls_cutover *c, struct proc *pr)
{
	char stamp[32], base[900];
	time_t t = (time_t)(pr->started_us / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
	snprintf(base, sizeof base, "%s/%s-%s-%" PRId64, c->cfg->state_dir, kind(pr), stamp, pr->id);
	snprintf(pr->report, sizeof pr->report, "%s.json", base);
	mkdir(c->cfg->state_dir, 0750);
	struct ls_json *j = ls_json_new();
	proc_json(c, pr, j);
	size_t len = 0;
	const char *data = ls_json_data(j, &len);
	char path[1024];
	snprintf(path, sizeof path, "%s.json", base);
	FILE *f = data ? fopen(path, "w") : NULL;
	if (f) {
		fwrite(data, 1, len, f);
		fputc('\n', f);
	}
	if (f == NULL || fclose(f) != 0)
		ls_warn("cannot write the report %s: %s", path, strerror(errno));
	ls_json_free(j);
	snprintf(path, sizeof path, "%s.txt", base);
	f = fopen(path, "w");
	if (f) {
		report_text(c, pr, f);
		fprintf(f, "\nreport: %s.json\n", base);
	}
	if (f == NULL || fclose(f) != 0)
		ls_warn("cannot write the report %s: %s", path, strerror(errno));
}

/* ---- the cut-over state across restarts (lib/cutstate.h) ------------------------------------------ */

static void state_write(struct ls_cutover *c, enum ls_cutstate_stage stage)
{
	struct proc *pr = c->pr;
	struct ls_cutstate st = {
		.stage = stage, .rollback = pr->rollback, .next_id = c->next_id,
		.id = c->cut_id ? c->cut_id : pr->id, .tables = pr->tables_pat,
		.slice = pr->slice_text, .window_until_us = c->window_until_us,
		.undo = c->oldside_undo, .newside_undo = c->newside_undo,
		.fence_undo = stage == LS_CUTSTATE_FENCED ? pr->undo : NULL,
	};
	snprintf(st.target, sizeof st.target, "%s", c->cfg->targets[pr->tidx].name);
	snprintf(st.rev_start, sizeof st.rev_start, "%s", c->cut_rev_start);
	snprintf(st.report, sizeof st.report, "%s", c->cut_report);
	struct ls_err err;
	if (ls_cutstate_save(c->cfg->state_dir, &st, &err) < 0)
		ls_error("%s %" PRId64 ": %s: a daemon restart would forget the fence, the reverse "
			 "pipeline or the rollback window", kind(pr), pr->id, err.msg);
}

static void on_window(uv_timer_t *t);
static int reverse_start(struct ls_cutover *c, struct ls_config *rc, struct ls_err *err);

/* After a restart: the reverse pipeline again, from where it stood (its
 * slot, or its saved GTID in its own state directory), and what is left of
 * the rollback window. */
/* After a restart in the cut over: the reverse pipeline again, from where
 * it stood (its slot, or its saved GTID in its own state directory), and
 * what is left of the rollback window. */
static void restore_reverse(struct ls_cutover *c)
{
	struct proc *pr = c->pr;
	struct ls_err e = {0};
	struct ls_config *rc = ls_cutover_reverse_config(c->cfg, pr->tidx, pr->slice_text, &e);
	if (rc != NULL && reverse_start(c, rc, &e) < 0)
		rc = (ls_config_free(rc), NULL);
	if (rc == NULL || c->host.reverse_open(c->host.ctx, rc, &c->rev, &e) < 0) {
		ls_error("cutover %" PRId64 ": the reverse pipeline does not start again: %s; the "
			 "old side misses the new side's writes until it does, and rollback is "
			 "refused", pr->id, e.msg);
		return;
	}
	c->rev_open = true;
	int64_t left_ms = (c->window_until_us - wall_us()) / 1000;
	ls_notice("cutover %" PRId64 " (tables %s, target %s) restored after a restart: %s_rev "
		  "streams the new side back again; rollback possible for %" PRId64 " s more",
		  pr->id, pr->slice_text, pr->target, c->cfg->name, left_ms > 0 ? left_ms / 1000 : 0);
	uv_timer_start(&c->window, on_window, left_ms > 0 ? (uint64_t)left_ms : 0, 0);
}

static int job_restore_unfence(struct ls_cutover *c, struct jobout *o)
{
	struct ls_cutover_conn *conn = NULL;
	int rc = c->rs_ops->open(c->rs_ci, &conn, &o->err);
	if (rc == 0)
		rc = c->rs_ops->unfence(conn, c->rs_undo, &o->err);
	c->rs_ops->close(conn);
	return rc;
}

static void restore_unfenced(uv_work_t *w, int status)
{
	struct ls_cutover *c = w->data;
	c->job_busy = false;
	if (status < 0 || c->jo.rc < 0) {
		ls_error("a procedure stopped by the daemon's stop left a fence, and lifting it "
			 "failed: %s; the statements that lift it are in %s/%s", status < 0 ?
			 "cancelled" : c->jo.err.msg, c->cfg->state_dir, LS_CUTSTATE_FILE);
	} else {
		ls_notice("a procedure stopped by the daemon's stop had fenced the %s side: fence "
			  "lifted, it serves as before", c->rs_then_reverse ? "new" : "old");
		free(c->rs_undo);
		c->rs_undo = NULL;
		if (c->pr)
			state_write(c, LS_CUTSTATE_CUT_OVER);
		else if (c->newside_undo)
			ls_notice("the new side stays fenced from an earlier rollback");
		else
			state_forget(c);
	}
	if (c->closing) {
		close_step(c);
		return;
	}
	if (c->rs_then_reverse)
		restore_reverse(c);
}

static void on_restore(uv_timer_t *t)
{
	struct ls_cutover *c = t->data;
	if (c->rs_undo == NULL) {
		restore_reverse(c);
		return;
	}
	c->job_fn = job_restore_unfence;
	c->job_busy = true;
	c->work.data = c;
	if (uv_queue_work(c->loop, &c->work, job_run, restore_unfenced) < 0)
		restore_unfenced(&c->work, UV_ENOMEM);
}

/* The cut over a record describes, as the latest procedure. */
static int restore_cut_over(struct ls_cutover *c, struct ls_cutstate *st, int tidx)
{
	struct proc *pr = calloc(1, sizeof *pr);
	if (pr == NULL)
		return -1;
	pr->id = st->id;
	pr->tidx = tidx;
	snprintf(pr->target, sizeof pr->target, "%s", st->target);
	snprintf(pr->outcome, sizeof pr->outcome, "succeeded");
	snprintf(pr->report, sizeof pr->report, "%s", st->report);
	pr->have_rev = st->rev_start[0] != '\0';
	snprintf(pr->rev_at.text, sizeof pr->rev_at.text, "%s", st->rev_start);
	pr->tables_pat = st->tables;
	pr->slice_text = st->slice;
	st->tables = st->slice = NULL;
	pr->from_ci = c->cfg->source.conninfo;
	pr->to_ci = c->cfg->targets[tidx].conninfo;
	pr->pipe = &c->host.fwd;
	c->pr = pr;
	c->phase = PH_CUT_OVER;
	c->cut_id = st->id;
	snprintf(c->cut_rev_start, sizeof c->cut_rev_start, "%s", st->rev_start);
	snprintf(c->cut_report, sizeof c->cut_report, "%s", st->report);
	c->oldside_undo = st->undo;
	st->undo = NULL;
	c->window_until_us = st->window_until_us;
	c->rs_then_reverse = true;
	return 0;
}

/* Reads what the last procedures left (lib/cutstate.h) and goes on from
 * there on the loop: a fence a stopped procedure left is lifted (a stopped
 * rollback's one on the new side, then the cut over resumes), a cut over
 * gets its reverse pipeline and window again, a rollback's fence on the new
 * side is remembered; the reverse slot of a finished rollback is dropped.
 * 1 when a record was there, 0 when none, -1 with err. */
static int state_restore(struct ls_cutover *c, struct ls_err *err)
{
	struct ls_cutstate st;
	int rc = ls_cutstate_load(c->cfg->state_dir, &st, err);
	if (rc <= 0)
		return rc;
	int tidx = -1;
	for (int i = 0; i < c->cfg->ntargets; i++)
		if (strcmp(c->cfg->targets[i].name, st.target) == 0)
			tidx = i;
	if (tidx < 0) {
		ls_err_set(err, false, "%s/%s names target %s, which this config does not have",
			   c->cfg->state_dir, LS_CUTSTATE_FILE, st.target);
		ls_cutstate_clear(&st);
		return -1;
	}
	c->next_id = st.next_id > st.id ? st.next_id : st.id;
	c->cut_tidx = tidx;
	c->newside_undo = st.newside_undo;
	st.newside_undo = NULL;
	rc = 1;
	if (st.stage == LS_CUTSTATE_ROLLED_BACK) {
		c->phase = PH_ROLLED_BACK;
		/* the rollback may have stopped before it dropped the reverse slot */
		c->job_fn = job_window_drop;
		c->job_busy = true;
		c->work.data = c;
		if (uv_queue_work(c->loop, &c->work, job_run, window_dropped) < 0)
			c->job_busy = false;
	} else {
		if (st.stage == LS_CUTSTATE_FENCED) {
			c->rs_undo = st.fence_undo;
			st.fence_undo = NULL;
			c->rs_ci = st.rollback ? c->cfg->targets[tidx].conninfo : c->cfg->source.conninfo;
			c->rs_ops = st.rollback ? new_ops(c, tidx) : old_ops(c);
		}
		if ((st.stage == LS_CUTSTATE_CUT_OVER || st.rollback) &&
		    restore_cut_over(c, &st, tidx) < 0)
			rc = ls_err_set(err, false, "out of memory");
		if (rc == 1)
			uv_timer_start(&c->window, on_restore, 0, 0);
	}
	ls_cutstate_clear(&st);
	return rc;
}

static void state_forget(struct ls_cutover *c)
{
	struct ls_err err;
	if (ls_cutstate_remove(c->cfg->state_dir, &err) < 0)
		ls_warn("%s", err.msg);
}

/* Once a procedure ended or the window closed: the record says what now
 * holds (a fence that could not be lifted, the cut over, the new side's
 * fence after a rollback) or goes. */
static void state_settle(struct ls_cutover *c)
{
	struct proc *pr = c->pr;
	if (pr && pr->fenced && !pr->unfenced && !pr->open_ns && pr->undo)
		state_write(c, LS_CUTSTATE_FENCED);
	else if (pr && c->phase == PH_CUT_OVER)
		state_write(c, LS_CUTSTATE_CUT_OVER);
	else if (pr && c->newside_undo)
		state_write(c, LS_CUTSTATE_ROLLED_BACK);
	else
		state_forget(c);
}

/* ---- procedure: end ------------------------------------------------------------------------------ */

static void on_window(uv_timer_t *t);

static void finish(struct ls_cutover *c)
{
	struct proc *pr = c->pr;
	pr->active = false;
	if (strcmp(pr->outcome, "running") == 0)
		snprintf(pr->outcome, sizeof pr->outcome, "succeeded");
	pr->finished_us = wall_us();
	bool ok = strcmp(pr->outcome, "succeeded") == 0;
	if (ok && !pr->dry_run && !pr->rollback) {
		c->phase = PH_CUT_OVER;         /* the switch step took the undo and the window */
		uv_timer_start(&c->window, on_window,
			       (uint64_t)c->cfg->cutover.rollback_window_s * 1000, 0);
	} else if (ok && !pr->dry_run) {
		c->phase = PH_ROLLED_BACK;
		uv_timer_stop(&c->window);
	} else if (pr->rollback) {
		c->phase = PH_CUT_OVER;         /* the new side still serves */
	} else {
		c->phase = c->rev_open ? PH_CUT_OVER : PH_IDLE;
	}
	write_report(c, pr);
	if (ok && !pr->dry_run && !pr->rollback)
		snprintf(c->cut_report, sizeof c->cut_report, "%s", pr->report);
	if (!pr->dry_run)
		state_settle(c);   /* names the report, so after it */
	ls_notice("%s %" PRId64 " %s%s%s; report %s", kind(pr), pr->id, pr->outcome,
		  pr->reason[0] ? ": " : "", pr->reason, pr->report);
	if (pr->ops_from)
		pr->ops_from->close(pr->from);
	if (pr->ops_to)
		pr->ops_to->close(pr->to);
	pr->from = pr->to = NULL;
}

static void advance(struct ls_cutover *c)
{
	struct proc *pr = c->pr;
	if (c->closing || pr == NULL)
		return;
	switch (pr->step) {
	case S_READY: do_ready(c); return;
	case S_FENCE: do_fence(c); return;
	case S_DRAIN: do_drain(c); return;
	case S_SEQUENCES: do_sequences(c); return;
	case S_VERIFY: do_verify(c); return;
	case S_SWITCH: do_switch(c); return;
	case S_REVERSE: do_reverse(c); return;
	case S_STOP_REVERSE: do_stop_reverse(c); return;
	case S_UNFENCE: do_unfence(c); return;
	case S_DONE: finish(c); return;
	}
}

/* ---- the rollback window ------------------------------------------------------------------------ */

static int job_window_drop(struct ls_cutover *c, struct jobout *o)
{
	struct ls_cutover_conn *conn = NULL;
	char name[96];
	rev_names(c, name, sizeof name);
	const char *ci = c->cfg->targets[c->cut_tidx].conninfo;
	const struct ls_cutover_ops *ops = new_ops(c, c->cut_tidx);
	int rc = ops->open(ci, &conn, &o->err);
	if (rc == 0)
		rc = ops->reverse_drop(conn, name, name, &o->err);
	ops->close(conn);
	return rc;
}

static void window_dropped(uv_work_t *w, int status)
{
	struct ls_cutover *c = w->data;
	(void)status;
	c->job_busy = false;
	if (c->jo.rc < 0)
		ls_warn("rollback window closed; dropping the reverse slot failed: %s", c->jo.err.msg);
	if (c->closing)
		close_step(c);
}

static void window_rev_closed(void *arg)
{
	struct ls_cutover *c = arg;
	c->rev_closing = false;
	if (c->closing || c->job_busy) {
		if (c->closing)
			close_step(c);
		return;
	}
	c->job_fn = job_window_drop;
	c->job_busy = true;
	c->work.data = c;
	if (uv_queue_work(c->loop, &c->work, job_run, window_dropped) < 0)
		c->job_busy = false;
}

static void on_window(uv_timer_t *t)
{
	struct ls_cutover *c = t->data;
	if (c->phase != PH_CUT_OVER || (c->pr && c->pr->active))
		return;
	ls_notice("rollback window closed: the reverse pipeline %s_rev stops and its slot goes",
		  c->cfg->name);
	c->phase = PH_IDLE;
	c->cut_id = 0;
	state_settle(c);
	free(c->oldside_undo);
	c->oldside_undo = NULL;
	if (c->rev_open) {
		c->rev_open = false;
		c->rev_closing = true;
		c->host.reverse_close(c->host.ctx, &c->rev, window_rev_closed, c);
	}
}

/* ---- start ------------------------------------------------------------------------------------ */

static int pick_target(struct ls_cutover *c, const char *name, struct ls_err *err)
{
	if (name == NULL && c->cfg->ntargets == 1)
		return 0;
	if (name == NULL)
		return ls_err_set(err, false, "this pipeline has %d targets: say which (target=NAME)",
				  c->cfg->ntargets);
	for (int i = 0; i < c->cfg->ntargets; i++)
		if (strcmp(c->cfg->targets[i].name, name) == 0)
			return i;
	return ls_err_set(err, false, "no target %s", name);
}

static int set_slice(struct ls_cutover *c, struct proc *pr, struct ls_err *err)
{
	const struct ls_relation *const *rels = NULL;
	int n = c->host.fwd.tables(c->host.fwd.p, &rels);
	if (n <= 0)
		return ls_err_set(err, true, "the pipeline is not streaming yet");
	pr->slice = calloc((size_t)n, sizeof *pr->slice);
	size_t tlen = 1;
	for (int i = 0; i < n; i++)
		tlen += strlen(rels[i]->schema) + strlen(rels[i]->name) + 2;
	pr->slice_text = calloc(1, tlen);
	if (pr->slice == NULL || pr->slice_text == NULL)
		return ls_err_set(err, false, "out of memory");
	for (int i = 0; i < n; i++) {
		if (pr->tables_pat && !ls_cutover_match(pr->tables_pat, rels[i]->schema, rels[i]->name))
			continue;
		if ((pr->slice[pr->nslice] = ls_relation_dup(rels[i])) == NULL)
			return ls_err_set(err, false, "out of memory");
		pr->nslice++;
		size_t o = strlen(pr->slice_text);
		snprintf(pr->slice_text + o, tlen - o, "%s%s.%s", o ? "," : "", rels[i]->schema,
			 rels[i]->name);
	}
	if (pr->nslice == 0)
		return ls_err_set(err, false, "no captured table matches %s", pr->tables_pat);
	pr->slice_all = pr->nslice == n;
	return 0;
}

/* Across engines the reverse direction feeds the old side's tables from
 * the new side's: refuse, before anything changes, a slice with a column
 * whose type would not come back (a PostgreSQL boolean returns from
 * MariaDB's TINYINT(1) as smallint, which the boolean column refuses); the
 * reverse pipeline would fail after the switch, leaving no way back. */
static int slice_round_trips(struct ls_cutover *c, struct proc *pr, struct ls_err *err)
{
	enum ls_engine from = c->cfg->source.type, to = c->cfg->targets[pr->tidx].type;
	for (int i = 0; from != to && c->eng && c->eng->round_trip && i < pr->nslice; i++)
		if (c->eng->round_trip(pr->slice[i], from, to, err) < 0)
			return ls_err_prefix(err, "the reverse direction could not apply the slice");
	return 0;
}

/* The rollback takes the cutover's slice and target. */
static int rollback_from(struct ls_cutover *c, struct proc *pr, struct ls_err *err)
{
	struct proc *last = c->pr;
	if (c->phase != PH_CUT_OVER || last == NULL || !c->rev_open)
		return ls_err_set(err, false, "no cutover to roll back (phase %s)",
				  ls_cutover_phase(c));
	if (wall_us() > c->window_until_us)
		return ls_err_set(err, false, "the rollback window has closed");
	const struct ls_relation *const *rels = NULL;
	int n = c->rev.tables(c->rev.p, &rels);
	if (n <= 0)
		return ls_err_set(err, true, "the reverse pipeline is not streaming yet");
	pr->slice = calloc((size_t)n, sizeof *pr->slice);
	if (pr->slice == NULL || (pr->slice_text = strdup(last->slice_text)) == NULL)
		return ls_err_set(err, false, "out of memory");
	for (int i = 0; i < n; i++) {
		if ((pr->slice[pr->nslice] = ls_relation_dup(rels[i])) == NULL)
			return ls_err_set(err, false, "out of memory");
		pr->nslice++;
	}
	pr->slice_all = true;   /* the reverse pipeline captures exactly the slice */
	pr->tidx = last->tidx;
	if (last->tables_pat && (pr->tables_pat = strdup(last->tables_pat)) == NULL)
		return ls_err_set(err, false, "out of memory");
	return 0;
}

int64_t ls_cutover_start(struct ls_cutover *c, const struct ls_cutover_request *r,
			 struct ls_err *err)
{
	if (c->ops == NULL)
		return ls_err_set(err, false, "cutover is not available for this pipeline: it needs "
				  "the source and its targets in this daemon");
	if (c->pr && c->pr->active)
		return ls_err_set(err, true, "%s %" PRId64 " is running", kind(c->pr), c->pr->id);
	if (!r->rollback && !r->dry_run && c->phase == PH_CUT_OVER)
		return ls_err_set(err, false, "already cut over: roll back first, or wait for the "
				  "rollback window to close");
	if (c->rev_closing || c->job_busy)
		return ls_err_set(err, true, "the reverse pipeline is still stopping");
	struct proc *pr = calloc(1, sizeof *pr);
	if (pr == NULL)
		return ls_err_set(err, false, "out of memory");
	pr->rollback = r->rollback;
	pr->dry_run = r->dry_run;
	pr->uid = r->uid;
	pr->max_lag_s = r->max_lag_s >= 0 ? r->max_lag_s : (double)c->cfg->cutover.max_lag_s;
	pr->timeout_s = r->timeout_s > 0 ? r->timeout_s : 60;
	snprintf(pr->outcome, sizeof pr->outcome, "running");
	pr->active = true;
	const char *roles = r->app_roles ? r->app_roles : c->cfg->cutover.app_roles;
	int rc = 0;
	if ((pr->nroles = ls_cutover_split(roles, ',', pr->roles, MAX_ROLES)) < 0 ||
	    (pr->nchecks = ls_cutover_split(c->cfg->cutover.check_command, '\n', pr->checks,
					    MAX_CHECKS)) < 0)
		rc = ls_err_set(err, false, "out of memory");
	if (rc == 0 && pr->nroles == 0 && c->cfg->cutover.fence_hook == NULL)
		rc = ls_err_set(err, false, "no application role to fence: set [cutover] app_roles, "
				"pass --app-role, or set a fence_hook");
	if (rc == 0 && r->rollback) {
		rc = rollback_from(c, pr, err);
	} else if (rc == 0) {
		if ((pr->tidx = pick_target(c, r->target, err)) < 0)
			rc = -1;
		else if (r->tables && (pr->tables_pat = strdup(r->tables)) == NULL)
			rc = ls_err_set(err, false, "out of memory");
		else if (old_ops(c) == NULL || new_ops(c, pr->tidx) == NULL)
			rc = ls_err_set(err, false, "cutover has no engine for the %s side",
					old_ops(c) == NULL ? "old" : "new");
		else
			rc = set_slice(c, pr, err);
		if (rc == 0)
			rc = slice_round_trips(c, pr, err);
		if (rc == 0) {
			struct ls_err e2;
			struct ls_config *probe = ls_cutover_reverse_config(c->cfg, pr->tidx, "x.y", &e2);
			if (probe == NULL)
				rc = ls_err_set(err, false, "%s", e2.msg);
			ls_config_free(probe);
		}
	}
	if (rc < 0) {
		proc_free(pr);
		return -1;
	}
	if (r->rollback) {
		pr->from_ci = c->cfg->targets[pr->tidx].conninfo;
		pr->to_ci = c->cfg->source.conninfo;
		pr->pipe = &c->rev;
		snprintf(pr->target, sizeof pr->target, "old");
	} else {
		pr->from_ci = c->cfg->source.conninfo;
		pr->to_ci = c->cfg->targets[pr->tidx].conninfo;
		pr->pipe = &c->host.fwd;
		snprintf(pr->target, sizeof pr->target, "%s", c->cfg->targets[pr->tidx].name);
	}
	pr->ops_from = r->rollback ? new_ops(c, pr->tidx) : old_ops(c);
	pr->ops_to = r->rollback ? old_ops(c) : new_ops(c, pr->tidx);
	pr->id = ++c->next_id;
	pr->started_us = wall_us();
	pr->step = S_READY;
	pr->phase = 0;
	/* the latest finished procedure gives way */
	proc_free(c->pr);
	c->pr = pr;
	c->phase = PH_RUNNING;
	ls_notice("%s %" PRId64 " started%s by uid %ld: %d table(s) (%s), target %s", kind(pr),
		  pr->id, pr->dry_run ? " (dry run)" : "", pr->uid, pr->nslice, pr->slice_text,
		  pr->target);
	wait_ms(c, 0);
	return pr->id;
}

const char *ls_cutover_phase(const struct ls_cutover *c)
{
	if (c->pr && c->pr->active)
		return phase_names[PH_RUNNING];
	return phase_names[c->phase == PH_RUNNING ? PH_IDLE : c->phase];
}

/* ---- the default host: the daemon's pipelines ------------------------------------------------------ */

static int pipe_lag(void *p, const char *target, struct ls_cutover_lag *out)
{
	const struct ls_lag_report *r = ls_pipeline_lag(p);
	memset(out, 0, sizeof *out);
	out->lag_s = -1;
	if (r == NULL)
		return 0;
	snprintf(out->state, sizeof out->state, "%s", r->state);
	out->source_seq = r->source.known ? r->source.seq : 0;
	out->txns_captured = r->txns_captured;
	for (int i = 0; i < r->ntargets; i++) {
		if (strcmp(r->targets[i].name, target) != 0)
			continue;
		out->applied_known = r->targets[i].applied.known;
		out->applied_seq = r->targets[i].applied.seq;
		snprintf(out->applied, sizeof out->applied, "%s", r->targets[i].applied.text);
		out->lag_s = r->targets[i].apply_lag_seconds;
		out->changes_applied = r->targets[i].changes_applied;
		return 0;
	}
	return r->ntargets == 0 ? 0 : -1;
}

static int64_t pipe_drift_check(void *p, const char *table, struct ls_err *err)
{
	return ls_drift_check(ls_pipeline_drift(p), table, DRIFT_RATE, err);
}

static void pipe_drift_last(void *p, struct ls_drift_last *out)
{
	ls_drift_last(ls_pipeline_drift(p), out);
}

static int pipe_tables(void *p, const struct ls_relation *const **rels)
{
	const struct ls_source_tables *t = ls_pipeline_tables(p);
	*rels = t->rels;
	return strcmp(ls_pipeline_state(p), "streaming") == 0 ||
	       strcmp(ls_pipeline_state(p), "paused") == 0 ? t->n : 0;
}

static void pipe_init(struct ls_cutover_pipe *out, struct ls_pipeline *p)
{
	out->p = p;
	out->lag = pipe_lag;
	out->drift_check = pipe_drift_check;
	out->drift_last = pipe_drift_last;
	out->tables = pipe_tables;
}

static void rev_failed(void *ctx, const struct ls_err *err)
{
	struct ls_cutover *c = ctx;
	snprintf(c->rev_err, sizeof c->rev_err, "%s", err->msg);
	ls_error("reverse pipeline %s_rev failed: %s", c->cfg->name, err->msg);
}

static int host_reverse_open(void *ctx, struct ls_config *cfg, struct ls_cutover_pipe *out,
			     struct ls_err *err)
{
	struct ls_cutover *c = ctx;
	c->rev_err[0] = '\0';
	mkdir(cfg->state_dir, 0750);
	if (ls_pipeline_new(c->loop, cfg, c->eng, rev_failed, c, &c->revp, err) < 0) {
		ls_config_free(cfg);
		return -1;
	}
	c->rev_cfg = cfg;
	pipe_init(out, c->revp);
	if (ls_pipeline_start(c->revp, err) < 0) {
		snprintf(c->rev_err, sizeof c->rev_err, "%s", err->msg);
		return 0;   /* reported as failed; closed like a running one */
	}
	return 0;
}

struct rev_close {
	struct ls_cutover *c;
	struct ls_config *cfg;
	void (*done)(void *);
	void *arg;
};

static void host_rev_closed(void *arg)
{
	struct rev_close *rc = arg;
	ls_config_free(rc->cfg);
	void (*done)(void *) = rc->done;
	void *a = rc->arg;
	free(rc);
	done(a);
}

static void host_reverse_close(void *ctx, struct ls_cutover_pipe *pipe, void (*done)(void *),
			       void *arg)
{
	struct ls_cutover *c = ctx;
	struct rev_close *rc = calloc(1, sizeof *rc);
	if (rc == NULL)
		abort();
	rc->c = c;
	rc->cfg = c->rev_cfg;
	rc->done = done;
	rc->arg = arg;
	c->rev_cfg = NULL;
	struct ls_pipeline *p = pipe->p;
	c->revp = NULL;
	ls_pipeline_close(p, host_rev_closed, rc);
}

static const char *host_reverse_state(void *ctx, const struct ls_cutover_pipe *pipe,
				      char *error, size_t size)
{
	struct ls_cutover *c = ctx;
	snprintf(error, size, "%s", c->rev_err);
	if (c->rev_err[0] && strcmp(ls_pipeline_state(pipe->p), "restarting") != 0)
		return "failed";
	return ls_pipeline_state(pipe->p);
}

/* ---- new, routes, close ---------------------------------------------------------------------------- */

int ls_cutover_new(uv_loop_t *loop, const struct ls_cutover_opts *o, struct ls_cutover **out,
		   struct ls_err *err)
{
	struct ls_cutover *c = calloc(1, sizeof *c);
	if (c == NULL)
		return ls_err_set(err, false, "out of memory");
	c->loop = loop;
	c->cfg = o->cfg;
	c->ops = o->ops;
	c->ops_for = o->ops_for;
	c->host = o->host;
	c->poll_ms = o->poll_ms > 0 ? o->poll_ms : 200;
	if (c->host.fwd.lag == NULL) {
		c->fwdp = o->pipeline;
		c->eng = o->engines;
		pipe_init(&c->host.fwd, o->pipeline);
		c->host.ctx = c;
		c->host.reverse_open = host_reverse_open;
		c->host.reverse_close = host_reverse_close;
		c->host.reverse_state = host_reverse_state;
	}
	uv_timer_init(loop, &c->timer);
	uv_timer_init(loop, &c->window);
	c->timer.data = c->window.data = c;
	struct ls_err e = {0};
	if (c->ops && state_restore(c, &e) < 0)
		ls_error("cutover: %s; the reverse pipeline and the rollback window of the last "
			 "cutover are not restored (its report says how to go on by hand)", e.msg);
	*out = c;
	return 0;
}

/* Finds name=value in a query string, percent-decoded into out. */
static bool query_get(const char *q, const char *name, char *out, size_t size)
{
	size_t nl = strlen(name);
	for (const char *p = q; p && *p;) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			size_t o = 0;
			for (size_t i = nl + 1; i < len && o + 1 < size; i++) {
				unsigned v;
				if (p[i] == '%' && i + 2 < len + 1 && sscanf(p + i + 1, "%2x", &v) == 1) {
					out[o++] = (char)v;
					i += 2;
				} else {
					out[o++] = p[i] == '+' ? ' ' : p[i];
				}
			}
			out[o] = '\0';
			return true;
		}
		p = amp ? amp + 1 : NULL;
	}
	return false;
}

static int parse_request(const struct ls_control_request *req, bool rollback,
			 struct ls_cutover_request *r, char *tables, char *roles, char *target,
			 size_t size, struct ls_err *err)
{
	char v[64];
	memset(r, 0, sizeof *r);
	r->rollback = rollback;
	r->uid = req->uid;
	r->max_lag_s = -1;
	if (query_get(req->query, "tables", tables, size))
		r->tables = tables;
	if (query_get(req->query, "app_role", roles, size))
		r->app_roles = roles;
	if (query_get(req->query, "target", target, size))
		r->target = target;
	if (query_get(req->query, "dry_run", v, sizeof v))
		r->dry_run = strcmp(v, "0") != 0 && strcmp(v, "false") != 0;
	char *end;
	if (query_get(req->query, "max_lag", v, sizeof v) &&
	    ((r->max_lag_s = strtod(v, &end)) < 0 || *end != '\0'))
		return ls_err_set(err, false, "max_lag wants seconds >= 0");
	if (query_get(req->query, "timeout", v, sizeof v) &&
	    ((r->timeout_s = strtod(v, &end)) <= 0 || *end != '\0'))
		return ls_err_set(err, false, "timeout wants seconds > 0");
	return 0;
}

static int handle_start(const struct ls_control_request *req, struct ls_control_response *resp,
			struct ls_cutover *c, bool rollback)
{
	char tables[1024], roles[1024], target[256];
	struct ls_cutover_request r;
	struct ls_err err = {0};
	if (parse_request(req, rollback, &r, tables, roles, target, sizeof tables, &err) < 0) {
		ls_control_reply_error(resp, 400, err.msg);
		return 0;
	}
	int64_t id = ls_cutover_start(c, &r, &err);
	if (id < 0) {
		ls_control_reply_error(resp, err.retryable ? 409 : 400, err.msg);
		return 0;
	}
	ls_control_reply_status(resp, 202);
	struct ls_json *j = ls_control_reply_json(resp);
	ls_json_object_begin(j);
	ls_json_kv_int(j, "id", id);
	ls_json_kv_string(j, "kind", rollback ? "rollback" : "cutover");
	ls_json_object_end(j);
	return 0;
}

static int handle_cutover(const struct ls_control_request *req, struct ls_control_response *resp,
			  void *data, struct ls_err *err)
{
	(void)err;
	return handle_start(req, resp, data, false);
}

static int handle_rollback(const struct ls_control_request *req, struct ls_control_response *resp,
			   void *data, struct ls_err *err)
{
	(void)err;
	return handle_start(req, resp, data, true);
}

static int handle_get(const struct ls_control_request *req, struct ls_control_response *resp,
		      void *data, struct ls_err *err)
{
	(void)req;
	(void)err;
	ls_cutover_json(data, ls_control_reply_json(resp));
	return 0;
}

static void status_cb(struct ls_json *j, void *data)
{
	struct ls_cutover *c = data;
	ls_json_key(j, "cutover");
	ls_json_object_begin(j);
	ls_json_kv_string(j, "phase", ls_cutover_phase(c));
	if (c->pr) {
		ls_json_kv_string(j, "kind", kind(c->pr));
		ls_json_kv_string(j, "outcome", c->pr->outcome);
		ls_json_kv_string(j, "step", c->pr->step == S_DONE ? NULL : step_names[c->pr->step]);
	}
	json_time(j, "rollback_until", c->phase == PH_CUT_OVER ? c->window_until_us : 0);
	ls_json_object_end(j);
}

int ls_cutover_register(struct ls_cutover *c, struct ls_control *ctl)
{
	if (ls_control_route(ctl, "POST", "/cutover", LS_CONTROL_ADMIN, handle_cutover, c,
			     "Start a cutover (?tables=&app_role=&max_lag=&target=&dry_run=1"
			     "&timeout=); GET /cutover follows it.") < 0 ||
	    ls_control_route(ctl, "POST", "/rollback", LS_CONTROL_ADMIN, handle_rollback, c,
			     "Roll a cutover back within its window (?max_lag=&timeout=).") < 0 ||
	    ls_control_route(ctl, "GET", "/cutover", LS_CONTROL_READ, handle_get, c,
			     "Cutover/rollback progress, steps and report.") < 0 ||
	    ls_control_status_provider(ctl, status_cb, c) < 0)
		return -1;
	return 0;
}

/* Closing waits for the job, the hook and the reverse pipeline in flight;
 * close_step runs whenever one of them lets go. */
static void close_handle_done(uv_handle_t *h)
{
	struct ls_cutover *c = h->data;
	if (--c->close_pending > 0)
		return;
	void (*cb)(void *) = c->close_cb;
	void *arg = c->close_arg;
	proc_free(c->pr);
	free(c->jo.undo);
	free(c->jo.seqs);
	free(c->oldside_undo);
	free(c->newside_undo);
	free(c);
	if (cb)
		cb(arg);
}

static void close_step(struct ls_cutover *c)
{
	if (c->job_busy || c->hook || c->rev_closing || c->close_pending)
		return;
	if (c->rev_open) {
		c->rev_open = false;
		c->rev_closing = true;
		c->host.reverse_close(c->host.ctx, &c->rev, rev_closed, c);
		return;
	}
	c->close_pending = 2;
	uv_close((uv_handle_t *)&c->timer, close_handle_done);
	uv_close((uv_handle_t *)&c->window, close_handle_done);
}

void ls_cutover_close(struct ls_cutover *c, void (*cb)(void *arg), void *arg)
{
	if (c == NULL) {
		if (cb)
			cb(arg);
		return;
	}
	c->closing = true;
	c->close_cb = cb;
	c->close_arg = arg;
	uv_timer_stop(&c->timer);
	uv_timer_stop(&c->window);
	if (c->pr && c->pr->active) {
		c->pr->active = false;
		snprintf(c->pr->outcome, sizeof c->pr->outcome, "error");
		snprintf(c->pr->reason, sizeof c->pr->reason, "the daemon stopped during step %s%s",
			 step_names[c->pr->step], c->pr->fenced && !c->pr->unfenced ?
			 " with the fence in place (see the report to lift it)" : "");
		c->pr->finished_us = wall_us();
		write_report(c, c->pr);
		ls_warn("%s %" PRId64 ": %s; report %s", kind(c->pr), c->pr->id, c->pr->reason,
			c->pr->report);
	}
	if (c->hook && c->hook->proc.pid > 0)
		kill(-c->hook->proc.pid, SIGKILL);
	close_step(c);
}
