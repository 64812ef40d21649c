/* cutover: pure helpers (patterns, lists, the reverse pipeline's config,
 * the [cutover] config section) and the procedure's state machine on a
 * real libuv loop with a fake engine and fake pipelines: the order of the
 * steps, what a failed check gives back (unfence, no reverse), rollback,
 * dry run, reports. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "cutover.h"
#include "json.h"

/* ---- pure helpers ----------------------------------------------------------------- */

START_TEST(cutover_match_patterns)
{
	ck_assert(ls_cutover_match("public.*", "public", "orders"));
	ck_assert(!ls_cutover_match("public.*", "sales", "orders"));
	ck_assert(ls_cutover_match("sales.order_*, public.items", "public", "items"));
	ck_assert(ls_cutover_match("sales.order_*, public.items", "sales", "order_lines"));
	ck_assert(!ls_cutover_match("sales.order_*, public.items", "sales", "orders"));
	ck_assert(ls_cutover_match("*.t*s", "x", "tables"));
	ck_assert(!ls_cutover_match("public.item", "public", "items"));   /* whole name */
	ck_assert(!ls_cutover_match("", "public", "items"));
	ck_assert(!ls_cutover_match(" , ", "public", "items"));
}
END_TEST

START_TEST(cutover_split_trims_and_skips_empty)
{
	char *v[4];
	int n = ls_cutover_split(" app , ,reporting,, batch ", ',', v, 4);
	ck_assert_int_eq(n, 3);
	ck_assert_str_eq(v[0], "app");
	ck_assert_str_eq(v[1], "reporting");
	ck_assert_str_eq(v[2], "batch");
	for (int i = 0; i < n; i++)
		free(v[i]);
	n = ls_cutover_split("echo a,b\n  true\n", '\n', v, 4);
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(v[0], "echo a,b");     /* commas belong to the command */
	ck_assert_str_eq(v[1], "true");
	for (int i = 0; i < n; i++)
		free(v[i]);
	ck_assert_int_eq(ls_cutover_split("a,b,c", ',', v, 2), 2);   /* at most max */
	free(v[0]);
	free(v[1]);
	ck_assert_int_eq(ls_cutover_split(NULL, ',', v, 2), 0);
}
END_TEST

static const char BASE[] =
	"[pipeline]\nname = shop\nstate_dir = /tmp/ls-cutover-unit\n\n"
	"[source]\ntype = postgres\nconninfo = host=old dbname=shop password=s3cret\n\n"
	"[target new]\ntype = postgres\nconninfo = host=new dbname=shop\nbatch_ms = 20\n"
	"ddl = stop\n\n";

static struct ls_config *parse(const char *text)
{
	struct ls_config *c = NULL;
	struct ls_err err = {0};
	ck_assert_msg(ls_config_parse("t.conf", text, &c, &err) == 0, "%s", err.msg);
	return c;
}

START_TEST(cutover_reverse_config_swaps_the_sides)
{
	char text[2048];
	snprintf(text, sizeof text, "%s[buffer]\ntype = direct\n\n[drift]\nchunk_rows = 77\n", BASE);
	struct ls_config *c = parse(text);
	struct ls_err err = {0};
	struct ls_config *r = ls_cutover_reverse_config(c, 0, "public.orders,public.items", &err);
	ck_assert_msg(r != NULL, "%s", err.msg);
	ck_assert_str_eq(r->name, "shop_rev");
	ck_assert_str_eq(r->state_dir, "/tmp/ls-cutover-unit/reverse");
	ck_assert_str_eq(r->source.conninfo, "host=new dbname=shop");
	ck_assert_str_eq(r->source.tables, "public.orders,public.items");
	ck_assert_int_eq(r->source.snapshot, LS_SNAPSHOT_NEVER);
	ck_assert_str_eq(r->source.slot, "lockstep_shop_rev");
	ck_assert_str_eq(r->source.publication, "lockstep_shop_rev");
	ck_assert_str_eq(r->source.skip_origins, "lockstep_shop");
	ck_assert_int_eq(r->ntargets, 1);
	ck_assert_str_eq(r->targets[0].name, "old");
	ck_assert_str_eq(r->targets[0].conninfo, "host=old dbname=shop password=s3cret");
	ck_assert(!r->targets[0].create_tables);
	ck_assert_int_eq(r->targets[0].ddl, LS_DDL_STOP);
	ck_assert_int_eq(r->targets[0].batch_ms, 20);
	ck_assert_int_eq(r->buffer.type, LS_BUFFER_DIRECT);
	ck_assert_int_eq(r->drift.interval_s, 0);
	ck_assert_int_eq(r->drift.chunk_rows, 77);
	ls_config_free(r);
	ck_assert_ptr_null(ls_cutover_reverse_config(c, 1, "public.x", &err));
	ls_config_free(c);
}
END_TEST

START_TEST(cutover_reverse_config_keeps_kafka_settings)
{
	char text[2048];
	snprintf(text, sizeof text, "%s[buffer]\ntype = kafka\nbrokers = k1:9092,k2:9092\n"
		 "max_lead = 4MiB\nkafka.compression.type = zstd\n", BASE);
	struct ls_config *c = parse(text);
	struct ls_err err = {0};
	struct ls_config *r = ls_cutover_reverse_config(c, 0, "public.orders", &err);
	ck_assert_msg(r != NULL, "%s", err.msg);
	ck_assert_int_eq(r->buffer.type, LS_BUFFER_KAFKA);
	ck_assert_str_eq(r->buffer.brokers, "k1:9092,k2:9092");
	ck_assert_str_eq(r->buffer.topic, "lockstep.shop_rev");
	ck_assert_uint_eq(r->buffer.max_lead, 4u << 20);
	ck_assert_int_eq(r->buffer.nkafka, 1);
	ck_assert_str_eq(r->buffer.kafka[0].key, "compression.type");
	ck_assert_str_eq(r->buffer.kafka[0].value, "zstd");
	ls_config_free(r);
	ls_config_free(c);
}
END_TEST

START_TEST(cutover_reverse_config_refuses_a_long_name)
{
	const char *text =
		"[pipeline]\nname = a234567890123456789012345678901234567890123456\n"
		"[source]\ntype = postgres\nconninfo = host=old\n"
		"[buffer]\ntype = direct\n[target new]\ntype = postgres\nconninfo = host=new\n";
	struct ls_config *c = parse(text);
	struct ls_err err = {0};
	ck_assert_ptr_null(ls_cutover_reverse_config(c, 0, "public.x", &err));
	ck_assert_msg(strstr(err.msg, "too long") != NULL, "%s", err.msg);
	ls_config_free(c);
}
END_TEST

START_TEST(cutover_config_section_parses_and_formats)
{
	char text[2048];
	snprintf(text, sizeof text, "%s[buffer]\ntype = direct\n\n[cutover]\napp_roles = app, batch\n"
		 "switch_hook = /bin/point new\ncheck_command = /bin/check-a x,y\n"
		 "check_command = /bin/check-b\nmax_lag_seconds = 2\nrollback_window = 30m\n"
		 "settle = 250\n", BASE);
	struct ls_config *c = parse(text);
	ck_assert_str_eq(c->cutover.app_roles, "app, batch");
	ck_assert_str_eq(c->cutover.check_command, "/bin/check-a x,y\n/bin/check-b");
	ck_assert_int_eq(c->cutover.max_lag_s, 2);
	ck_assert_int_eq(c->cutover.rollback_window_s, 1800);
	ck_assert_int_eq(c->cutover.hook_timeout_s, 60);
	ck_assert_int_eq(c->cutover.settle_ms, 250);
	ck_assert_ptr_null(c->cutover.fence_hook);
	char out[8192];
	ls_config_format(c, out, sizeof out);
	ck_assert(strstr(out, "check_command = /bin/check-a x,y\ncheck_command = /bin/check-b\n"));
	struct ls_config *again = parse(out);
	ck_assert_str_eq(again->cutover.check_command, c->cutover.check_command);
	ls_config_free(again);
	ls_config_free(c);
	/* a key that may not repeat still may not */
	snprintf(text, sizeof text, "%s[buffer]\ntype = direct\n[cutover]\nswitch_hook = a\n"
		 "switch_hook = b\n", BASE);
	struct ls_err err = {0};
	ck_assert_int_lt(ls_config_parse("t.conf", text, &c, &err), 0);
	ck_assert_msg(strstr(err.msg, "[cutover] switch_hook: duplicate key"), "%s", err.msg);
}
END_TEST

/* ---- the procedure with a fake engine and fake pipelines ---------------------------------- */

static const char *extra_targets = "";   /* more [target] sections for start_engine */

struct fake {
	/* knobs */
	uint64_t watch_writes;         /* writes seen after the fence */
	int check_roles_rc, sequences_rc;
	double lag_s;
	double other_lag_s;            /* a second target, "report" */
	bool drift_dirty;
	/* what happened, in order */
	char calls[2048];
	int fences, unfences, prepares, drops, reverse_opens, reverse_closes;
	char last_undo[256];
	/* the fake pipelines */
	uint64_t applied, source;
	int64_t drift_next, drift_done;
	struct ls_relation *rels[2];
	bool rev_open;
};

static struct fake F;

static void call(const char *what)
{
	size_t n = strlen(F.calls);
	snprintf(F.calls + n, sizeof F.calls - n, "%s%s", n ? " " : "", what);
}

static int f_open(const char *ci, struct ls_cutover_conn **out, struct ls_err *err)
{
	(void)err;
	*out = (struct ls_cutover_conn *)strdup(ci);
	return 0;
}

static void f_close(struct ls_cutover_conn *c)
{
	free(c);
}

static int f_whoami(struct ls_cutover_conn *c, char *role, size_t size, struct ls_err *err)
{
	(void)c;
	(void)err;
	snprintf(role, size, "lockstep");
	return 0;
}

static int f_check_roles(struct ls_cutover_conn *c, const char *const *roles, int n,
			 struct ls_err *err)
{
	(void)c;
	(void)roles;
	(void)n;
	if (F.check_roles_rc)
		ls_err_set(err, false, "application role app does not exist");
	return F.check_roles_rc;
}

static int f_origin(struct ls_cutover_conn *c, const char *name, bool *exists, struct ls_err *err)
{
	(void)c;
	(void)err;
	*exists = strcmp(name, "lockstep_shop") == 0;
	return 0;
}

static int f_position(struct ls_cutover_conn *c, struct ls_pos *out, struct ls_err *err)
{
	(void)c;
	(void)err;
	call("position");
	out->seq = F.source + 10;
	snprintf(out->text, sizeof out->text, "0/%llX", (unsigned long long)out->seq);
	return 0;
}

static int f_watch_start(struct ls_cutover_conn *c, const char *name, const char *pub,
			 struct ls_err *err)
{
	(void)err;
	char b[256];
	snprintf(b, sizeof b, "watch_start(%s,%s,%s)", (const char *)c, name, pub);
	call(b);
	return 0;
}

static int f_watch_count(struct ls_cutover_conn *c, const struct ls_relation *const *t, int nt,
			 uint64_t after, uint64_t *n, char *first, size_t size, struct ls_err *err)
{
	(void)c;
	(void)t;
	(void)err;
	ck_assert_int_eq(nt, 2);
	ck_assert_uint_eq(after, F.source + 10);
	call("watch_count");
	*n = F.watch_writes;
	snprintf(first, size, "INSERT on public.a");
	return 0;
}

static int f_watch_stop(struct ls_cutover_conn *c, struct ls_err *err)
{
	(void)c;
	(void)err;
	call("watch_stop");
	return 0;
}

static int f_fence(struct ls_cutover_conn *c, const char *const *roles, int nroles,
		   const struct ls_relation *const *t, int nt, bool read_only, char **undo,
		   uint64_t *ended, struct ls_err *err)
{
	(void)read_only;
	(void)t;
	(void)nt;
	(void)err;
	char b[256];
	snprintf(b, sizeof b, "fence(%s,%s,%d)", (const char *)c, roles[0], nroles);
	call(b);
	F.fences++;
	*ended = 3;
	*undo = strdup((const char *)c);   /* which side's fence this undo lifts */
	return 0;
}

static int f_unfence(struct ls_cutover_conn *c, const char *undo, struct ls_err *err)
{
	(void)err;
	char b[256];
	snprintf(b, sizeof b, "unfence(%s,%s)", (const char *)c, undo ? undo : "-");
	call(b);
	F.unfences++;
	snprintf(F.last_undo, sizeof F.last_undo, "%s", undo ? undo : "");
	return 0;
}

static int f_sequences(struct ls_cutover_conn *from, struct ls_cutover_conn *to,
		       const struct ls_relation *const *t, int nt, const char *extra, bool dry_run,
		       struct ls_cutover_seq **seqs, int *nseqs, struct ls_err *err)
{
	(void)t;
	(void)nt;
	(void)extra;
	char b[256];
	snprintf(b, sizeof b, "sequences(%s>%s%s)", (const char *)from, (const char *)to,
		 dry_run ? ",dry" : "");
	call(b);
	*seqs = calloc(1, sizeof **seqs);
	*nseqs = 1;
	snprintf((*seqs)[0].name, sizeof (*seqs)[0].name, "public.a_id_seq");
	snprintf((*seqs)[0].value, sizeof (*seqs)[0].value, "42");
	(*seqs)[0].is_called = true;
	if (F.sequences_rc && !dry_run)
		ls_err_set(err, false, "sequence public.a_id_seq does not exist on the target");
	return dry_run ? 0 : F.sequences_rc;
}

static int f_reverse_prepare(struct ls_cutover_conn *c, const char *ci, const char *slot,
			     const char *pub, const struct ls_relation *const *t, int nt,
			     struct ls_pos *at, struct ls_err *err)
{
	(void)ci;
	(void)pub;
	(void)t;
	(void)nt;
	(void)err;
	char b[256];
	snprintf(b, sizeof b, "reverse_prepare(%s,%s)", (const char *)c, slot);
	call(b);
	F.prepares++;
	at->seq = 99;
	snprintf(at->text, sizeof at->text, "0/63");
	return 0;
}

static int f_reverse_drop(struct ls_cutover_conn *c, const char *slot, const char *pub,
			  struct ls_err *err)
{
	(void)pub;
	(void)err;
	char b[256];
	snprintf(b, sizeof b, "reverse_drop(%s,%s)", (const char *)c, slot);
	call(b);
	F.drops++;
	return 0;
}

static const struct ls_cutover_ops fake_ops = {
	.engine = "postgres", .open = f_open, .close = f_close, .whoami = f_whoami,
	.check_roles = f_check_roles, .origin_exists = f_origin, .position = f_position,
	.watch_start = f_watch_start, .watch_count = f_watch_count, .watch_stop = f_watch_stop,
	.fence = f_fence, .unfence = f_unfence, .sequences = f_sequences,
	.reverse_prepare = f_reverse_prepare, .reverse_drop = f_reverse_drop,
};

/* Pipelines: the target applies everything at once (applied follows the
 * source), unless lag_s says otherwise; drift checks finish at once. */
static int p_lag(void *p, const char *target, struct ls_cutover_lag *out)
{
	(void)p;
	bool other = strcmp(target, "report") == 0;
	if (strcmp(target, "new") != 0 && strcmp(target, "old") != 0 && !other)
		return -1;
	double lag = other ? F.other_lag_s : F.lag_s;
	F.source += 5;
	out->applied_known = true;
	out->applied_seq = lag > 1 ? 1 : F.source + 20;
	snprintf(out->applied, sizeof out->applied, "0/%llX", (unsigned long long)out->applied_seq);
	out->lag_s = lag;
	out->source_seq = F.source;
	snprintf(out->state, sizeof out->state, "streaming");
	return 0;
}

static int64_t p_drift_check(void *p, const char *table, struct ls_err *err)
{
	(void)p;
	(void)table;
	(void)err;
	F.drift_done = ++F.drift_next;
	return F.drift_next;
}

static void p_drift_last(void *p, struct ls_drift_last *out)
{
	(void)p;
	memset(out, 0, sizeof *out);
	out->known = F.drift_done > 0;
	out->id = (uint32_t)F.drift_done;
	out->clean = !F.drift_dirty;
	out->rows = F.drift_dirty ? 2 : 0;
}

static int p_tables(void *p, const struct ls_relation *const **rels)
{
	(void)p;
	*rels = (const struct ls_relation *const *)F.rels;
	return 2;
}

static int h_reverse_open(void *ctx, struct ls_config *cfg, struct ls_cutover_pipe *out,
			  struct ls_err *err)
{
	(void)ctx;
	(void)err;
	ck_assert_str_eq(cfg->name, "shop_rev");
	ck_assert_str_eq(cfg->source.tables, "public.a,public.b");
	ls_config_free(cfg);
	F.reverse_opens++;
	F.rev_open = true;
	*out = (struct ls_cutover_pipe){ .p = &F, .lag = p_lag, .drift_check = p_drift_check,
					 .drift_last = p_drift_last, .tables = p_tables };
	return 0;
}

static void h_reverse_close(void *ctx, struct ls_cutover_pipe *pipe, void (*done)(void *),
			    void *arg)
{
	(void)ctx;
	(void)pipe;
	F.reverse_closes++;
	F.rev_open = false;
	done(arg);
}

static const char *h_reverse_state(void *ctx, const struct ls_cutover_pipe *pipe, char *error,
				   size_t size)
{
	(void)ctx;
	(void)pipe;
	snprintf(error, size, "%s", "");
	return "streaming";
}

static uv_loop_t loop;
static struct ls_cutover *cut;
static struct ls_config *cfg;
static char dir[] = "/tmp/ls-cutover-test-XXXXXX";

static void new_engine(void);

static void start_engine(const char *cutover_section)
{
	memset(&F, 0, sizeof F);
	F.source = 1000;
	for (int i = 0; i < 2; i++) {
		F.rels[i] = ls_relation_new(1);
		F.rels[i]->schema = strdup("public");
		F.rels[i]->name = strdup(i ? "b" : "a");
	}
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char text[4096];
	snprintf(text, sizeof text,
		 "[pipeline]\nname = shop\nstate_dir = %s\n\n"
		 "[source]\ntype = postgres\nconninfo = old\n\n[buffer]\ntype = direct\n\n"
		 "[target new]\ntype = postgres\nconninfo = new\n\n%s"
		 "[cutover]\napp_roles = app\nsettle = 0\nhook_timeout = 5s\n%s", dir,
		 extra_targets, cutover_section);
	cfg = parse(text);
	uv_loop_init(&loop);
	new_engine();
}

/* An engine on cfg and the fakes, as the daemon makes one at start. */
static void new_engine(void)
{
	struct ls_cutover_opts o = {
		.cfg = cfg, .ops = &fake_ops, .poll_ms = 2,
		.host = {
			.ctx = &F,
			.fwd = { .p = &F, .lag = p_lag, .drift_check = p_drift_check,
				 .drift_last = p_drift_last, .tables = p_tables },
			.reverse_open = h_reverse_open, .reverse_close = h_reverse_close,
			.reverse_state = h_reverse_state,
		},
	};
	struct ls_err err = {0};
	ck_assert_int_eq(ls_cutover_new(&loop, &o, &cut, &err), 0);
}

static void closed(void *arg)
{
	*(bool *)arg = true;
}

static void stop_engine(void)
{
	bool done = false;
	ls_cutover_close(cut, closed, &done);
	while (!done)
		uv_run(&loop, UV_RUN_ONCE);
	uv_run(&loop, UV_RUN_NOWAIT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	ls_config_free(cfg);
	for (int i = 0; i < 2; i++)
		ls_relation_free(F.rels[i]);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	memcpy(dir + strlen(dir) - 6, "XXXXXX", 6);
}

/* The daemon stops and starts again on the same state directory. */
static void restart_engine(void)
{
	bool done = false;
	ls_cutover_close(cut, closed, &done);
	while (!done)
		uv_run(&loop, UV_RUN_ONCE);
	new_engine();
	for (int i = 0; i < 100; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
}

/* GET /cutover's document, parsed. */
static json_t *doc(void)
{
	struct ls_json *j = ls_json_new();
	ls_cutover_json(cut, j);
	json_t *out = json_loads(ls_json_data(j, NULL), 0, NULL);
	ls_json_free(j);
	ck_assert_ptr_nonnull(out);
	return out;
}

static const char *sval(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* Runs a procedure to its end; returns GET /cutover (caller decrefs). */
static json_t *run(bool rollback, bool dry_run, double timeout)
{
	struct ls_cutover_request r = {
		.rollback = rollback, .dry_run = dry_run, .max_lag_s = -1, .timeout_s = timeout,
		.uid = 1234, .target = extra_targets[0] ? "new" : NULL,
	};
	struct ls_err err = {0};
	int64_t id = ls_cutover_start(cut, &r, &err);
	/* right after a start, the engine may still drop a reverse slot */
	for (int i = 0; i < 1000 && id < 0 && err.retryable; i++) {
		uv_run(&loop, UV_RUN_ONCE);
		id = ls_cutover_start(cut, &r, &err);
	}
	ck_assert_msg(id > 0, "%s", err.msg);
	/* one at a time */
	ck_assert_int_lt(ls_cutover_start(cut, &r, &err), 0);
	ck_assert(err.retryable);
	for (int i = 0; i < 200000 && strcmp(ls_cutover_phase(cut), "running") == 0; i++)
		uv_run(&loop, UV_RUN_ONCE);
	json_t *d = doc();
	json_t *pr = json_object_get(d, "procedure");
	ck_assert_int_eq(json_integer_value(json_object_get(pr, "id")), id);
	ck_assert_int_eq(json_integer_value(json_object_get(pr, "requested_by_uid")), 1234);
	return d;
}

/* The steps' names and states, "ready:ok fence:ok ...". */
static void steps_of(json_t *d, char *out, size_t size)
{
	out[0] = '\0';
	size_t i;
	json_t *s;
	json_array_foreach(json_object_get(json_object_get(d, "procedure"), "steps"), i, s)
		snprintf(out + strlen(out), size - strlen(out), "%s%s:%s", i ? " " : "",
			 sval(s, "step"), sval(s, "state"));
}

static void assert_report_written(json_t *d)
{
	const char *path = sval(json_object_get(d, "procedure"), "report");
	ck_assert_msg(strncmp(path, dir, strlen(dir)) == 0, "report at %s", path);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	json_t *j = json_loadf(f, 0, NULL);
	fclose(f);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(sval(j, "outcome"), sval(json_object_get(d, "procedure"), "outcome"));
	json_decref(j);
}

START_TEST(cutover_runs_every_step_in_order)
{
	start_engine("switch_hook = true\n");
	json_t *d = run(false, false, 5);
	char steps[512];
	steps_of(d, steps, sizeof steps);
	ck_assert_str_eq(steps, "ready:ok fence:ok drain:ok sequences:ok verify:ok switch:ok "
			 "reverse:ok");
	json_t *pr = json_object_get(d, "procedure");
	ck_assert_str_eq(sval(pr, "outcome"), "succeeded");
	ck_assert_str_eq(sval(d, "phase"), "cut_over");
	ck_assert(json_is_string(json_object_get(d, "rollback_until")));
	ck_assert_str_eq(F.calls,
		"sequences(old>new,dry) watch_start(old,lockstep_shop_fence,lockstep_shop) "
		"fence(old,app,1) position watch_count watch_stop reverse_prepare(new,lockstep_shop_rev) "
		"sequences(old>new)");
	ck_assert_int_eq(F.reverse_opens, 1);
	ck_assert_int_eq(F.unfences, 0);
	json_t *fence = json_object_get(pr, "fence");
	ck_assert(json_is_true(json_object_get(fence, "applied")));
	ck_assert_int_eq(json_integer_value(json_object_get(fence, "sessions_ended")), 3);
	ck_assert(json_number_value(json_object_get(pr, "write_unavailable_seconds")) >= 0);
	ck_assert_int_eq(json_array_size(json_object_get(pr, "drift")), 2);   /* ready, verify */
	ck_assert_str_eq(sval(json_object_get(pr, "positions"), "reverse_start"), "0/63");
	assert_report_written(d);
	json_decref(d);
	/* a second cutover is refused while cut over */
	struct ls_cutover_request r = { .max_lag_s = -1 };
	struct ls_err err = {0};
	ck_assert_int_lt(ls_cutover_start(cut, &r, &err), 0);
	ck_assert_msg(strstr(err.msg, "already cut over"), "%s", err.msg);
	stop_engine();
}
END_TEST

START_TEST(cutover_write_after_fence_lifts_the_fence)
{
	start_engine("switch_hook = true\n");
	F.watch_writes = 2;
	json_t *d = run(false, false, 5);
	char steps[512];
	steps_of(d, steps, sizeof steps);
	ck_assert_str_eq(steps, "ready:ok fence:failed unfence:ok");
	json_t *pr = json_object_get(d, "procedure");
	ck_assert_str_eq(sval(pr, "outcome"), "failed");
	ck_assert_msg(strstr(sval(pr, "reason"), "2 row change(s)"), "%s", sval(pr, "reason"));
	ck_assert_int_eq(F.unfences, 1);
	ck_assert_str_eq(F.last_undo, "old");            /* the old side's own undo */
	ck_assert_int_eq(F.prepares, 0);
	ck_assert_int_eq(F.reverse_opens, 0);
	ck_assert(json_is_true(json_object_get(json_object_get(pr, "fence"), "lifted")));
	ck_assert_str_eq(sval(d, "phase"), "idle");
	assert_report_written(d);
	json_decref(d);
	stop_engine();
}
END_TEST

START_TEST(cutover_lag_fails_before_any_fence)
{
	start_engine("");
	F.lag_s = 30;
	json_t *d = run(false, false, 0.2);
	char steps[512];
	steps_of(d, steps, sizeof steps);
	ck_assert_str_eq(steps, "ready:failed");
	json_t *pr = json_object_get(d, "procedure");
	ck_assert_msg(strstr(sval(pr, "reason"), "apply lag 30.0 s is above 5.0 s"), "%s",
		      sval(pr, "reason"));
	ck_assert_int_eq(F.fences, 0);
	ck_assert_int_eq(F.unfences, 0);
	json_decref(d);
	stop_engine();
}
END_TEST

/* Every target must be ready, not only the one cut over to: a second
 * one lagging stops the procedure before the fence, naming it. */
START_TEST(cutover_waits_for_every_target)
{
	extra_targets = "[target report]\ntype = postgres\nconninfo = report\n\n";
	start_engine("");
	F.other_lag_s = 30;
	json_t *d = run(false, false, 0.2);
	char steps[512];
	steps_of(d, steps, sizeof steps);
	ck_assert_str_eq(steps, "ready:failed");
	json_t *pr = json_object_get(d, "procedure");
	ck_assert_msg(strstr(sval(pr, "reason"), "target report: apply lag 30.0 s"), "%s",
		      sval(pr, "reason"));
	ck_assert_int_eq(F.fences, 0);
	json_decref(d);
	stop_engine();
	extra_targets = "";
}
END_TEST

START_TEST(cutover_drift_fails_the_ready_step)
{
	start_engine("");
	F.drift_dirty = true;
	json_t *d = run(false, false, 5);
	json_t *pr = json_object_get(d, "procedure");
	ck_assert_str_eq(sval(pr, "outcome"), "failed");
	ck_assert_msg(strstr(sval(pr, "reason"), "drift: 2 row(s) differ"), "%s", sval(pr, "reason"));
	ck_assert_int_eq(F.fences, 0);
	json_decref(d);
	stop_engine();
}
END_TEST

START_TEST(cutover_hook_failure_unfences_and_drops_the_reverse_slot)
{
	start_engine("switch_hook = echo nope >&2; exit 4\n");
	json_t *d = run(false, false, 5);
	char steps[512];
	steps_of(d, steps, sizeof steps);
	ck_assert_str_eq(steps, "ready:ok fence:ok drain:ok sequences:ok verify:ok switch:failed "
			 "unfence:ok");
	json_t *pr = json_object_get(d, "procedure");
	ck_assert_msg(strstr(sval(pr, "reason"), "switch_hook exited 4: nope"), "%s",
		      sval(pr, "reason"));
	ck_assert_int_eq(F.unfences, 1);
	ck_assert_int_eq(F.drops, 1);
	ck_assert_int_eq(F.reverse_opens, 0);
	ck_assert_str_eq(sval(d, "phase"), "idle");
	json_decref(d);
	stop_engine();
}
END_TEST

START_TEST(cutover_check_command_failure_stops)
{
	start_engine("check_command = true\ncheck_command = exit 7\n");
	json_t *d = run(false, false, 5);
	json_t *pr = json_object_get(d, "procedure");
	ck_assert_msg(strstr(sval(pr, "reason"), "verify: check_command 2 (exit 7) exited 7"),
		      "%s", sval(pr, "reason"));
	ck_assert_int_eq(F.unfences, 1);
	json_decref(d);
	stop_engine();
}
END_TEST

START_TEST(cutover_missing_sequence_fails)
{
	start_engine("");
	F.sequences_rc = LS_CUTOVER_NO;
	json_t *d = run(false, false, 5);
	json_t *pr = json_object_get(d, "procedure");
	ck_assert_str_eq(sval(pr, "outcome"), "failed");
	ck_assert_msg(strstr(sval(pr, "reason"), "sequences: sequence public.a_id_seq does not "
			     "exist"), "%s", sval(pr, "reason"));
	ck_assert_int_eq(F.unfences, 1);
	json_decref(d);
	stop_engine();
}
END_TEST

START_TEST(cutover_dry_run_changes_nothing)
{
	start_engine("");
	json_t *d = run(false, true, 5);
	char steps[512];
	steps_of(d, steps, sizeof steps);
	ck_assert_str_eq(steps, "ready:ok");
	json_t *pr = json_object_get(d, "procedure");
	ck_assert_str_eq(sval(pr, "outcome"), "succeeded");
	ck_assert_str_eq(F.calls, "sequences(old>new,dry)");
	ck_assert_msg(strstr(sval(pr, "plan"), "sequences: public.a_id_seq = 42"), "%s",
		      sval(pr, "plan"));
	ck_assert_str_eq(sval(d, "phase"), "idle");
	json_decref(d);
	stop_engine();
}
END_TEST

START_TEST(cutover_then_rollback)
{
	start_engine("switch_hook = true\nswitch_back_hook = true\n");
	json_t *d = run(false, false, 5);
	ck_assert_str_eq(sval(d, "phase"), "cut_over");
	json_decref(d);
	F.calls[0] = '\0';
	d = run(true, false, 5);
	char steps[512];
	steps_of(d, steps, sizeof steps);
	ck_assert_str_eq(steps, "ready:ok fence:ok drain:ok sequences:ok verify:ok switch:ok "
			 "stop_reverse:ok");
	ck_assert_str_eq(sval(d, "phase"), "rolled_back");
	/* fence the new side, carry back, lift the old side's fence (the
	 * cutover's undo), drop the reverse slot on the new side */
	ck_assert_str_eq(F.calls,
		"sequences(new>old,dry) watch_start(new,lockstep_shop_fence,lockstep_shop_rev) "
		"fence(new,app,1) position watch_count watch_stop sequences(new>old) "
		"unfence(old,old) reverse_drop(new,lockstep_shop_rev)");
	ck_assert_int_eq(F.reverse_closes, 1);
	ck_assert(json_is_null(json_object_get(d, "reverse")));
	json_decref(d);
	/* no second rollback; a new cutover lifts the new side's fence */
	struct ls_cutover_request r = { .rollback = true, .max_lag_s = -1 };
	struct ls_err err = {0};
	ck_assert_int_lt(ls_cutover_start(cut, &r, &err), 0);
	F.calls[0] = '\0';
	d = run(false, false, 5);
	ck_assert_str_eq(sval(d, "phase"), "cut_over");
	ck_assert_msg(strstr(F.calls, "unfence(new,new)") != NULL, "%s", F.calls);
	json_decref(d);
	stop_engine();
}
END_TEST

/* A restart inside the rollback window forgets nothing: the phase, the
 * reverse pipeline (opened again) and the old side's fence undo come back,
 * and the rollback works; after it, a restart finds nothing to restore. */
START_TEST(cutover_state_survives_a_restart)
{
	start_engine("switch_hook = true\nswitch_back_hook = true\n");
	json_t *d = run(false, false, 5);
	ck_assert_str_eq(sval(d, "phase"), "cut_over");
	json_decref(d);
	ck_assert_int_eq(F.reverse_opens, 1);
	restart_engine();
	ck_assert_str_eq(ls_cutover_phase(cut), "cut_over");
	ck_assert_int_eq(F.reverse_opens, 2);
	F.calls[0] = '\0';
	d = run(true, false, 5);
	ck_assert_str_eq(sval(d, "phase"), "rolled_back");
	ck_assert_msg(strstr(F.calls, "unfence(old,old)") != NULL, "%s", F.calls);
	json_t *pr = json_object_get(d, "procedure");
	ck_assert_int_eq(json_integer_value(json_object_get(pr, "id")), 2);
	json_decref(d);
	/* the new side stays fenced after a rollback: that survives too, and
	 * the reverse slot is dropped (again: a stop may have come first) */
	int drops = F.drops;
	restart_engine();
	ck_assert_str_eq(ls_cutover_phase(cut), "rolled_back");
	ck_assert_int_eq(F.reverse_opens, 2);
	for (int i = 0; i < 1000 && F.drops == drops; i++)
		uv_run(&loop, UV_RUN_ONCE);
	ck_assert_int_eq(F.drops, drops + 1);
	F.calls[0] = '\0';
	d = run(false, false, 5);   /* a new cutover lifts the new side's fence */
	ck_assert_msg(strstr(F.calls, "unfence(new,new)") != NULL, "%s", F.calls);
	json_decref(d);
	stop_engine();
}
END_TEST

/* The daemon stops in the middle of a cutover, after the fence: the next
 * start lifts it (the old side serves again) and forgets the procedure. */
START_TEST(cutover_fence_left_by_a_stop_is_lifted_at_start)
{
	start_engine("check_command = sleep 30\n");
	struct ls_cutover_request r = { .max_lag_s = -1, .timeout_s = 5 };
	struct ls_err err = {0};
	ck_assert_int_gt(ls_cutover_start(cut, &r, &err), 0);
	for (int i = 0; i < 100000 && !strstr(F.calls, "sequences(old>new)"); i++)
		uv_run(&loop, UV_RUN_ONCE);   /* up to the verify step's check_command */
	ck_assert_int_eq(F.fences, 1);
	ck_assert_msg(F.unfences == 0, "%s", F.calls);
	restart_engine();
	for (int i = 0; i < 1000 && F.unfences == 0; i++)
		uv_run(&loop, UV_RUN_ONCE);
	ck_assert_int_eq(F.unfences, 1);
	ck_assert_msg(strstr(F.calls, "unfence(old,old)") != NULL, "%s", F.calls);
	ck_assert_str_eq(ls_cutover_phase(cut), "idle");
	restart_engine();   /* nothing left to do */
	ck_assert_int_eq(F.unfences, 1);
	ck_assert_str_eq(ls_cutover_phase(cut), "idle");
	stop_engine();
}
END_TEST

START_TEST(cutover_rollback_window_closes)
{
	start_engine("rollback_window = 1s\n");
	json_t *d = run(false, false, 5);
	ck_assert_str_eq(sval(d, "phase"), "cut_over");
	json_decref(d);
	F.calls[0] = '\0';
	/* the window's timer: the reverse pipeline stops and its slot goes */
	for (int i = 0; i < 100000 && F.drops == 0; i++)
		uv_run(&loop, UV_RUN_ONCE);
	ck_assert_str_eq(ls_cutover_phase(cut), "idle");
	ck_assert_int_eq(F.reverse_closes, 1);
	ck_assert_str_eq(F.calls, "reverse_drop(new,lockstep_shop_rev)");
	struct ls_cutover_request r = { .rollback = true, .max_lag_s = -1 };
	struct ls_err err = {0};
	/* the reverse pipeline's close completes asynchronously: until it
	 * has, a rollback is refused as "still stopping" */
	for (int i = 0; i < 100000; i++) {
		ck_assert_int_lt(ls_cutover_start(cut, &r, &err), 0);
		if (strstr(err.msg, "still stopping") == NULL)
			break;
		uv_run(&loop, UV_RUN_ONCE);
	}
	ck_assert_msg(strstr(err.msg, "no cutover to roll back"), "%s", err.msg);
	stop_engine();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cutover");
	TCase *tc = tcase_create("helpers");
	tcase_add_test(tc, cutover_match_patterns);
	tcase_add_test(tc, cutover_split_trims_and_skips_empty);
	tcase_add_test(tc, cutover_reverse_config_swaps_the_sides);
	tcase_add_test(tc, cutover_reverse_config_keeps_kafka_settings);
	tcase_add_test(tc, cutover_reverse_config_refuses_a_long_name);
	tcase_add_test(tc, cutover_config_section_parses_and_formats);
	suite_add_tcase(s, tc);
	tc = tcase_create("procedure");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, cutover_runs_every_step_in_order);
	tcase_add_test(tc, cutover_write_after_fence_lifts_the_fence);
	tcase_add_test(tc, cutover_lag_fails_before_any_fence);
	tcase_add_test(tc, cutover_waits_for_every_target);
	tcase_add_test(tc, cutover_drift_fails_the_ready_step);
	tcase_add_test(tc, cutover_hook_failure_unfences_and_drops_the_reverse_slot);
	tcase_add_test(tc, cutover_check_command_failure_stops);
	tcase_add_test(tc, cutover_missing_sequence_fails);
	tcase_add_test(tc, cutover_dry_run_changes_nothing);
	tcase_add_test(tc, cutover_then_rollback);
	tcase_add_test(tc, cutover_rollback_window_closes);
	tcase_add_test(tc, cutover_state_survives_a_restart);
	tcase_add_test(tc, cutover_fence_left_by_a_stop_is_lifted_at_start);
	suite_add_tcase(s, tc);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
