#include "tests/helpers/testcut.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/helpers/testsrv.h"
#include "tests/helpers/testutil.h"

static char ctl_out[1 << 20];

/* A lockstepctl that follows a procedure longer than this is stuck: the
 * test fails with the procedure's state and the daemon's log instead of
 * running into check's timeout, which would show neither. */
#define CTL_LIMIT_S 240

/* PostgreSQL sides of the running test daemon, for the stuck report. */
static char pg_ci[2][512];

/* Appends cmd's output (at most max bytes) to b. */
static void append_cmd(char *b, size_t cap, const char *title, const char *cmd, size_t max)
{
	size_t n = strlen(b);
	n += (size_t)snprintf(b + n, n < cap ? cap - n : 0, "\n%s:\n", title);
	FILE *f = popen(cmd, "r");
	if (f == NULL || n >= cap)
		return;
	size_t room = cap - n - 1 < max ? cap - n - 1 : max;
	n += fread(b + n, 1, room, f);
	b[n] = '\0';
	pclose(f);
}

/* Who waits on what, on each PostgreSQL side. */
static void append_activity(char *b, size_t cap)
{
	for (int i = 0; i < 2; i++) {
		if (pg_ci[i][0] == '\0')
			continue;
		char cmd[1200];
		snprintf(cmd, sizeof cmd, "psql -X -A -F' | ' -c \"SELECT pid, usename, "
			 "application_name, state, wait_event, "
			 "round(extract(epoch FROM now() - xact_start)) AS xact_s, "
			 "left(regexp_replace(query, '\\\\s+', ' ', 'g'), 140) FROM pg_stat_activity "
			 "WHERE pid <> pg_backend_pid() AND "
			 "backend_type IN ('client backend', 'walsender')\" "
			 "'%s' 2>&1", pg_ci[i]);
		append_cmd(b, cap, i == 0 ? "source sessions" : "target sessions", cmd, 2500);
	}
}

/* lockstepctl ran past its limit: fail with everything that says why,
 * check's timeout would show none of it.  check cuts a message at 8 KiB,
 * so the message leads with the compact parts (the daemon's threads, the
 * servers' sessions, the drift and status documents) and the whole report
 * goes to stderr as well (the test's log). */
static void stuck(struct ls_testd *d, const char *args)
{
	static char b[60000];
	snprintf(b, sizeof b, "lockstepctl %s still running after %d s", args, CTL_LIMIT_S);
	char cmd[512];
	snprintf(cmd, sizeof cmd, "gdb -p %d -batch -ex 'set print frame-arguments none' "
		 "-ex 'thread apply all bt 10' 2>/dev/null | grep -E '^#' | "
		 "grep -vE ' (__|start_thread|clone|uv__io_poll|epoll)' | "
		 "sed -E 's/^(#[0-9]+) +(0x[0-9a-f]+ in )?/\\1 /; s/ \\([^)]*\\)//; s/ from .*\\/(lib[a-z]+).*/ (\\1)/'",
		 ls_testd_pid(d));
	append_cmd(b, sizeof b, "lockstepd threads (libc frames left out)", cmd, 3000);
	append_activity(b, sizeof b);
	static const char *const paths[] = { "/drift", "/status", "/cutover", "/lag" };
	for (int i = 0; i < 4; i++) {
		json_t *j = ls_testd_get(d, paths[i]);
		char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
		size_t n = strlen(b);
		snprintf(b + n, sizeof b - n, "\nGET %s: %.3000s", paths[i], txt ? txt : "-");
		free(txt);
		json_decref(j);
	}
	size_t n = strlen(b);
	snprintf(b + n, sizeof b - n, "\nlog:\n%s", ls_testd_log_tail(d));
	fprintf(stderr, "%s\n", b);
	ck_abort_msg("%s", b);
}

int ls_testcut_ctl(struct ls_testd *d, const char *args, json_t **out)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "timeout %d '%s' --socket '%s' %s", CTL_LIMIT_S,
		 ls_test_build_path("lockstepctl"), ls_testd_socket(d), args);
	FILE *f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(ctl_out, 1, sizeof ctl_out - 1, f);
	ctl_out[n] = '\0';
	int st = pclose(f);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 124)
		stuck(d, args);
	if (out)
		*out = json_loads(ctl_out, 0, NULL);
	if (out && *out == NULL)
		fprintf(stderr, "lockstepctl printed: %s\n", ctl_out);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

PGconn *ls_testcut_pg_app(struct ls_testpg *pg, const char *db)
{
	char ci[512];
	snprintf(ci, sizeof ci, "%s user=app", ls_testpg_conninfo(pg, db));
	PGconn *c = PQconnectdb(ci);
	if (PQstatus(c) == CONNECTION_OK)
		return c;
	PQfinish(c);
	return NULL;
}

const char *ls_testcut_ctl_text(void)
{
	return ctl_out;
}

json_t *ls_testcut_proc(json_t *doc)
{
	json_t *p = json_object_get(doc, "procedure");
	ck_assert_msg(json_is_object(p), "no procedure in %s", doc ? json_dumps(doc, JSON_COMPACT)
		      : ctl_out);
	return p;
}

json_t *ls_testcut_step(json_t *pr, const char *name)
{
	size_t i;
	json_t *s, *found = NULL;
	json_array_foreach(json_object_get(pr, "steps"), i, s)
		if (strcmp(ls_testcut_str(s, "step"), name) == 0)
			found = s;
	return found;
}

const char *ls_testcut_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

long long ls_testcut_num(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

void ls_testcut_assert_steps_ok(json_t *pr, const char *const *names, int n)
{
	for (int i = 0; i < n; i++) {
		json_t *s = ls_testcut_step(pr, names[i]);
		ck_assert_msg(s && strcmp(ls_testcut_str(s, "state"), "ok") == 0, "step %s: %s",
			      names[i], s ? ls_testcut_str(s, "detail") : "missing");
	}
}

void ls_testcut_assert_report(json_t *pr)
{
	const char *path = ls_testcut_str(pr, "report");
	ck_assert_msg(path[0] != '\0', "no report path");
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "report %s missing", path);
	fclose(f);
	char txt[1100];
	snprintf(txt, sizeof txt, "%.*s.txt", (int)(strlen(path) - 5), path);
	f = fopen(txt, "r");
	ck_assert_msg(f != NULL, "report %s missing", txt);
	char line[2048] = "";
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	fclose(f);
	ck_assert_msg(strstr(line, ls_testcut_str(pr, "outcome")) != NULL, "report text says: %s",
		      line);
}

struct ls_testd *ls_testcut_daemon(const char *src_engine, const char *src_ci,
				   const char *dst_engine, const char *dst_ci, const char *tables,
				   const char *switch_hook, const char *extra)
{
	char conf[4096];
	snprintf(conf, sizeof conf,
		 "[pipeline]\nname = shop\nstate_dir = @DIR@\n\n"
		 "[source]\ntype = %s\nconninfo = %s\ntables = %s\n\n"
		 "[buffer]\ntype = direct\n\n"
		 "[target new]\ntype = %s\nconninfo = %s\ncreate_tables = true\nbatch_ms = 20\n\n"
		 "[control]\nsocket = @DIR@/control.sock\n\n"
		 "[drift]\ninterval = 0\nchunk_rows = 100\n\n"
		 "[cutover]\napp_roles = app\nswitch_hook = %s\n"
		 "switch_back_hook = rm -f @DIR@/switched\n"
		 "check_command = test -d @DIR@\ncheck_command = true\n"
		 "max_lag_seconds = 5\nsettle = 500\nrollback_window = 1h\n%s\n"
		 "[log]\nlevel = info\n",
		 src_engine, src_ci, tables, dst_engine, dst_ci, switch_hook, extra);
	snprintf(pg_ci[0], sizeof pg_ci[0], "%s", strcmp(src_engine, "postgres") ? "" : src_ci);
	snprintf(pg_ci[1], sizeof pg_ci[1], "%s", strcmp(dst_engine, "postgres") ? "" : dst_ci);
	struct ls_testd *d = ls_testd_new();
	ls_testd_config(d, conf);
	ls_testd_start(d);
	ls_testd_wait_state(d, "streaming", 120000);
	return d;
}

struct same {
	ls_testcut_sum_fn sum;
	void *a, *b;
	const char *table, *where;
};

static bool sides_equal(void *ctx)
{
	struct same *s = ctx;
	char *a = s->sum(s->a, s->table, s->where), *b = s->sum(s->b, s->table, s->where);
	bool eq = a && b && strcmp(a, b) == 0;
	free(a);
	free(b);
	return eq;
}

void ls_testcut_assert_equal(struct ls_testd *d, ls_testcut_sum_fn sum, void *old_side,
			     void *new_side, const char *table, const char *where)
{
	struct same s = { sum, old_side, new_side, table, where };
	if (!ls_test_wait_until(sides_equal, &s, 60000)) {
		char *a = sum(old_side, table, where), *b = sum(new_side, table, where);
		ck_abort_msg("%s (%s) differs: old %s new %s; log:\n%s", table, where, a, b,
			     ls_testd_log_tail(d));
	}
}

/* ---- the load ---------------------------------------------------------------------------- */

void ls_testcut_load_start(struct ls_testcut_load *l, struct ls_testd *d,
			   void *(*main)(void *l))
{
	long *ids = l->ids;
	size_t n = l->n, cap = l->cap;
	memset(l, 0, sizeof *l);
	l->ids = ids;
	l->n = n;
	l->cap = cap;
	l->d = d;
	l->last = l->t0 = ls_testutil_now();
	pthread_mutex_init(&l->mu, NULL);
	snprintf(l->flag, sizeof l->flag, "%s/switched", ls_testd_dir(d));
	ck_assert_int_eq(pthread_create(&l->thread, NULL, main, l), 0);
}

void ls_testcut_load_stop(struct ls_testcut_load *l)
{
	atomic_store(&l->stop, true);
	pthread_join(l->thread, NULL);
}

void ls_testcut_load_free(struct ls_testcut_load *l)
{
	free(l->ids);
	l->ids = NULL;
	l->n = l->cap = 0;
}

bool ls_testcut_load_wants_new(const struct ls_testcut_load *l)
{
	return access(l->flag, F_OK) == 0;
}

void ls_testcut_load_note(struct ls_testcut_load *l, long id, bool on_new)
{
	double t = ls_testutil_now();
	pthread_mutex_lock(&l->mu);
	if (t - l->last > l->max_gap)
		l->max_gap = t - l->last;
	l->last = t;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 1024;
		l->ids = realloc(l->ids, l->cap * sizeof *l->ids);
	}
	if (l->ids)
		l->ids[l->n++] = id;
	/* unpaced, the loop outran the pipeline on a slow machine and the
	 * cutover's ready step (lag under 5 s) never came */
	long n = ++l->paced;
	pthread_mutex_unlock(&l->mu);
	atomic_fetch_add(on_new ? &l->ok_new : &l->ok_old, 1);
	ls_testutil_pace(l->t0, n, LS_TESTCUT_LOAD_RATE);
}

struct progress {
	struct ls_testcut_load *l;
	long want;
	bool on_new;
};

static bool load_progressed(void *ctx)
{
	struct progress *p = ctx;
	return atomic_load(p->on_new ? &p->l->ok_new : &p->l->ok_old) >= p->want;
}

void ls_testcut_load_wait(struct ls_testcut_load *l, bool on_new, long more)
{
	struct progress p = { l, atomic_load(on_new ? &l->ok_new : &l->ok_old) + more, on_new };
	ck_assert_msg(ls_test_wait_until(load_progressed, &p, 60000),
		      "the load made no progress on the %s side; log:\n%s", on_new ? "new" : "old",
		      ls_testd_log_tail(l->d));
}

long *ls_testcut_load_ids(struct ls_testcut_load *l, size_t *n)
{
	pthread_mutex_lock(&l->mu);
	*n = l->n;
	long *copy = malloc((l->n + 1) * sizeof *copy);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, l->ids ? l->ids : copy, l->n * sizeof *copy);
	pthread_mutex_unlock(&l->mu);
	return copy;
}
