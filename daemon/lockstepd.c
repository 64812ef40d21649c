/* lockstepd — the daemon's shell: options, config, the loop, signals,
 * systemd notification and the control server.
 *
 *   lockstepd --config FILE [--check-config] [--log-file PATH] [--version]
 *
 * Exit codes: 0 after a clean stop (SIGTERM/SIGINT) or a good --check-config,
 * 1 for a bad config or a failed start, 2 for bad usage.
 *
 * Components (source, buffer, targets, drift) plug in at start_components():
 * each registers its control routes (ls_control_route) and status members
 * (ls_control_status_provider) and starts its handles on d->loop; at
 * shutdown stop_components() closes them before the loop is drained.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "connectors/mysql/my_cutover.h"
#include "connectors/postgres/pg_cutover.h"
#include "control.h"
#include "cutover.h"
#include "daemon/crash.h"
#include "daemon/engines.h"
#include "daemon/notify.h"
#include "daemon/version.h"
#include "json.h"
#include "lag.h"
#include "log.h"
#include "pipeline.h"

struct daemon {
	uv_loop_t loop;
	struct ls_config *cfg;
	struct ls_control *ctl;
	struct ls_pipeline *pipeline;
	struct ls_cutover *cutover;        /* lockstepctl cutover / rollback */
	char socket_path[4096];
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t watchdog;
	bool has_watchdog;
	uv_timer_t status_timer;           /* sd_notify STATUS= lag summary */
	bool has_status_timer;
	uint64_t started_ns;
	bool stopping;
	int exit_code;
};

#define STATUS_INTERVAL_MS 5000

struct options {
	const char *config;
	const char *log_file;
	bool check_config;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: lockstepd --config FILE [--check-config] [--log-file PATH]\n"
		   "       lockstepd --version\n");
}

/* Returns GO_ON, or the code to exit with right away. */
#define GO_ON (-1)
static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 'C'},
		{"log-file", required_argument, NULL, 'l'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o->config = optarg; break;
		case 'C': o->check_config = true; break;
		case 'l': o->log_file = optarg; break;
		case 'V': printf("lockstepd %s\n", LS_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "lockstepd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (o->config == NULL) {
		fprintf(stderr, "lockstepd: --config FILE is required\n");
		usage(stderr);
		return 2;
	}
	return GO_ON;
}

/* ---- control routes and status -------------------------------------------- */

static void status_basics(struct ls_json *j, void *data)
{
	struct daemon *d = data;
	ls_json_kv_string(j, "pipeline", d->cfg->name);
	ls_json_kv_string(j, "state", d->stopping ? "stopping" : "running");
	ls_json_kv_uint(j, "uptime_s", (uv_hrtime() - d->started_ns) / 1000000000u);
	ls_json_kv_string(j, "version", LS_VERSION);
	ls_json_kv_int(j, "pid", (int64_t)getpid());
}

static int handle_log_reopen(const struct ls_control_request *req,
			     struct ls_control_response *resp, void *data, struct ls_err *err)
{
	(void)req;
	(void)data;
	if (ls_log_reopen() < 0)
		return ls_err_set(err, false, "reopening the log file failed");
	ls_notice("log file reopened on request");
	struct ls_json *j = ls_control_reply_json(resp);
	ls_json_object_begin(j);
	ls_json_kv_bool(j, "reopened", true);
	ls_json_object_end(j);
	return 0;
}

/* ---- components ------------------------------------------------------------- */

static void daemon_stop(struct daemon *d, int exit_code);

/* The pipeline stopped for good (a fatal error: bad data, DDL under
 * ddl=stop, ...).  Retryable failures never get here: the pipeline restarts
 * itself.  The daemon stays up so /status shows the error to the operator. */
static void on_pipeline_failed(void *ctx, const struct ls_err *err)
{
	struct daemon *d = ctx;
	char status[LS_ERR_MSG_MAX + 64];
	snprintf(status, sizeof status, "pipeline failed: %.*s", LS_ERR_MSG_MAX - 1, err->msg);
	ls_notify_status(status);
	ls_error("pipeline %s failed and waits for the operator: %s", d->cfg->name, err->msg);
}

static const struct ls_cutover_ops *cutover_ops_for(enum ls_engine e)
{
	return e == LS_ENGINE_POSTGRES ? &ls_pg_cutover_ops
	       : e == LS_ENGINE_MYSQL ? &ls_my_cutover_ops : NULL;
}

/* Cutover needs the source and its targets in this process (each side
 * speaks its own engine).  NULL: cutover is refused with that reason. */
static const struct ls_cutover_ops *cutover_ops(const struct ls_config *c)
{
	return c->source.present && c->ntargets > 0 ? cutover_ops_for(c->source.type) : NULL;
}

static int start_components(struct daemon *d, struct ls_err *err)
{
	if (ls_control_status_provider(d->ctl, status_basics, d) < 0 ||
	    ls_control_route(d->ctl, "POST", "/log/reopen", LS_CONTROL_ADMIN, handle_log_reopen,
			     d, "Reopen the log file (after rotation), like SIGHUP.") < 0)
		return ls_err_set(err, false, "out of memory registering control routes");
	if (ls_pipeline_new(&d->loop, d->cfg, &ls_daemon_engines, on_pipeline_failed, d,
			    &d->pipeline, err) < 0)
		return -1;
	if (ls_pipeline_register(d->pipeline, d->ctl) < 0)
		return ls_err_set(err, false, "out of memory registering control routes");
	struct ls_cutover_opts co = {
		.cfg = d->cfg, .ops = cutover_ops(d->cfg), .ops_for = cutover_ops_for,
		.pipeline = d->pipeline,
		.engines = &ls_daemon_engines,
	};
	if (ls_cutover_new(&d->loop, &co, &d->cutover, err) < 0)
		return -1;
	if (ls_cutover_register(d->cutover, d->ctl) < 0)
		return ls_err_set(err, false, "out of memory registering control routes");
	return 0;
}

/* Runs once the control socket listens, so /status answers while the
 * pipeline sets up and copies. */
static int start_pipeline(struct daemon *d, struct ls_err *err)
{
	return ls_pipeline_start(d->pipeline, err);
}

static void on_pipeline_closed(void *arg)
{
	struct daemon *d = arg;
	d->pipeline = NULL;
}

/* The cutover goes first: its reverse pipeline and any procedure step in
 * flight use the forward pipeline. */
static void on_cutover_closed(void *arg)
{
	struct daemon *d = arg;
	d->cutover = NULL;
	if (d->pipeline)
		ls_pipeline_close(d->pipeline, on_pipeline_closed, d);
}

static void stop_components(struct daemon *d)
{
	if (d->cutover)
		ls_cutover_close(d->cutover, on_cutover_closed, d);
	else if (d->pipeline)
		ls_pipeline_close(d->pipeline, on_pipeline_closed, d);
}

/* ---- lifecycle ---------------------------------------------------------------- */

static void on_control_closed(void *data)
{
	struct daemon *d = data;
	d->ctl = NULL;
	ls_info("control socket closed");
}

/* Starts the graceful stop: every handle is closed, and uv_run returns once
 * the last close callback has run. */
static void daemon_stop(struct daemon *d, int exit_code)
{
	if (d->stopping)
		return;
	d->stopping = true;
	d->exit_code = exit_code;
	ls_notify_stopping();
	stop_components(d);
	ls_control_close(d->ctl, on_control_closed, d);
	uv_close((uv_handle_t *)&d->sig_term, NULL);
	uv_close((uv_handle_t *)&d->sig_int, NULL);
	uv_close((uv_handle_t *)&d->sig_hup, NULL);
	if (d->has_watchdog)
		uv_close((uv_handle_t *)&d->watchdog, NULL);
	if (d->has_status_timer)
		uv_close((uv_handle_t *)&d->status_timer, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct daemon *d = s->data;
	if (signum == SIGHUP) {
		if (ls_log_reopen() < 0)
			ls_error("SIGHUP: reopening the log file failed");
		else
			ls_info("SIGHUP: log file reopened");
		return;
	}
	ls_notice("%s: stopping", strsignal(signum));
	daemon_stop(d, 0);
}

static void on_watchdog(uv_timer_t *t)
{
	(void)t;
	ls_notify_watchdog();
}

/* Every few seconds, `systemctl status` gets a one-line summary: state,
 * apply lag, source lag, slot warnings.  A failed pipeline keeps the
 * failure's own line. */
static void on_status_timer(uv_timer_t *t)
{
	struct daemon *d = t->data;
	const struct ls_lag_report *r = d->pipeline ? ls_pipeline_lag(d->pipeline) : NULL;
	if (r == NULL || strcmp(r->state, "failed") == 0)
		return;
	char line[768];
	ls_lag_summary(r, NULL, line, sizeof line);
	ls_notify_status(line);
}

static void start_status_timer(struct daemon *d)
{
	uv_timer_init(&d->loop, &d->status_timer);
	d->status_timer.data = d;
	uv_timer_start(&d->status_timer, on_status_timer, STATUS_INTERVAL_MS, STATUS_INTERVAL_MS);
	d->has_status_timer = true;
}

static void start_signal(struct daemon *d, uv_signal_t *s, int signum)
{
	uv_signal_init(&d->loop, s);
	s->data = d;
	uv_signal_start(s, on_signal, signum);
}

static void start_watchdog(struct daemon *d)
{
	uint64_t usec = ls_notify_watchdog_usec();
	if (usec == 0)
		return;
	uint64_t ms = usec / 2000;
	if (ms == 0)
		ms = 1;
	uv_timer_init(&d->loop, &d->watchdog);
	uv_timer_start(&d->watchdog, on_watchdog, ms, ms);
	d->has_watchdog = true;
	ls_info("systemd watchdog: pinging every %llu ms", (unsigned long long)ms);
}

static void resolve_socket_path(struct daemon *d)
{
	const struct ls_config *c = d->cfg;
	if (c->control.socket != NULL)
		snprintf(d->socket_path, sizeof d->socket_path, "%s", c->control.socket);
	else if (c->state_dir != NULL)
		snprintf(d->socket_path, sizeof d->socket_path, "%s/control.sock", c->state_dir);
	else
		snprintf(d->socket_path, sizeof d->socket_path, "/var/lib/lockstep/%s/control.sock",
			 c->name);
}

static int daemon_start(struct daemon *d, struct ls_err *err)
{
	d->started_ns = uv_hrtime();
	start_signal(d, &d->sig_term, SIGTERM);
	start_signal(d, &d->sig_int, SIGINT);
	start_signal(d, &d->sig_hup, SIGHUP);
	resolve_socket_path(d);
	struct ls_control_options o = {
		.socket_path = d->socket_path,
		.tcp_listen = d->cfg->control.metrics_listen,
	};
	if (ls_control_new(&d->loop, &o, &d->ctl, err) < 0)
		return -1;
	if (start_components(d, err) < 0 || ls_control_start(d->ctl, err) < 0 ||
	    start_pipeline(d, err) < 0)
		return -1;
	start_watchdog(d);
	start_status_timer(d);
	char status[sizeof d->socket_path + 256];
	snprintf(status, sizeof status, "pipeline %s running; control socket %s", d->cfg->name,
		 d->socket_path);
	ls_notify_ready(status);
	ls_notice("%s (lockstepd %s, pid %d)", status, LS_VERSION, (int)getpid());
	return 0;
}

/* Closes whatever is still open (a component that forgot a handle) so that
 * uv_loop_close succeeds and tools like valgrind see no leak. */
static void close_leftover(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static int run(struct daemon *d)
{
	struct ls_err err = {0};
	if (uv_loop_init(&d->loop) < 0) {
		ls_error("cannot create the event loop");
		return 1;
	}
	if (daemon_start(d, &err) < 0) {
		ls_error("%s", err.msg);
		daemon_stop(d, 1);
	}
	uv_run(&d->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&d->loop) == UV_EBUSY) {
		uv_walk(&d->loop, close_leftover, NULL);
		uv_run(&d->loop, UV_RUN_DEFAULT);
		uv_loop_close(&d->loop);
	}
	ls_notice("stopped");
	return d->exit_code;
}

int main(int argc, char **argv)
{
	struct options o = {0};
	int rc = parse_options(argc, argv, &o);
	if (rc != GO_ON)
		return rc;
	ls_log_init("lockstepd");
	if (o.log_file != NULL && ls_log_open_file(o.log_file) < 0) {
		fprintf(stderr, "lockstepd: cannot open log file %s\n", o.log_file);
		return 1;
	}
	struct daemon d = {0};
	struct ls_err err = {0};
	if (ls_config_load(o.config, &d.cfg, &err) < 0) {
		if (o.check_config)
			fprintf(stderr, "%s\n", err.msg);
		else
			ls_error("%s", err.msg);
		return 1;
	}
	if (o.check_config) {
		printf("%s: ok\n", o.config);
		ls_config_free(d.cfg);
		return 0;
	}
	if (d.cfg->log_level != NULL && ls_log_set_level_name(d.cfg->log_level) < 0)
		ls_warn("unknown log level '%s', keeping the default", d.cfg->log_level);
	/* A client that hangs up mid-response must cost an EPIPE, not the daemon. */
	signal(SIGPIPE, SIG_IGN);
	ls_crash_install();
	rc = run(&d);
	ls_config_free(d.cfg);
	return rc;
}
