/* testsrv_priv — the supervisor shared by testpg.c and testmy.c (private to
 * tests/helpers; tests use testsrv.h).
 *
 * ls_srv_start() forks a supervisor process from the calling (owner)
 * process.  The supervisor makes a temporary directory's server ready
 * (spec->init once, then the server process, as spec->user when root), and
 * then obeys "restart", "crash" and "stop" sent over a socket pair.  Because
 * the server is the supervisor's child, any process holding the socket —
 * the owner, or a check test child forked from it — can restart it and the
 * server outlives that test child.
 *
 * The supervisor dies with its owner: PR_SET_PDEATHSIG(SIGTERM) (it fires
 * when the *thread* that forked dies, so start servers from the main thread)
 * and a check that its parent is still the owner.  Then it kills the server
 * and removes the directory.  Servers get PR_SET_PDEATHSIG too, so a
 * SIGKILLed supervisor takes its server down; its directory is swept by the
 * next ls_srv_start() of any test run (the owner's pid is in DIR/lstest.pid).
 */
#ifndef LS_TESTSRV_PRIV_H
#define LS_TESTSRV_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct ls_srv;

struct ls_srv_spec {
	const char *kind;      /* "pg", "my": directory prefix and messages */
	const char *user;      /* drop to this user when root (NULL: stay) */
	/* In the supervisor, once: lays out s->dir (initdb etc.).  Returns 0, or
	 * -1 with a message in err. */
	int (*init)(struct ls_srv *s, char *err, size_t errsz);
	/* Fills argv (NULL-terminated, strings in buf) to run the server on
	 * s->port. */
	void (*argv)(const struct ls_srv *s, char **argv, size_t maxargs,
		     char *buf, size_t bufsz);
	bool (*ready)(const struct ls_srv *s);   /* accepts queries */
	int stop_sig;          /* clean shutdown signal (SIGINT for postgres) */
	int death_sig;         /* server's PDEATHSIG */
};

struct ls_srv {
	const struct ls_srv_spec *spec;
	char dir[256];         /* owned temporary directory */
	char *extra_conf;      /* owned copy, or NULL */
	int port;
	pid_t owner;           /* process that started it (stops it at exit) */
	pid_t super;           /* supervisor pid */
	int sock;              /* owner's end of the command socket */
	void (*at_exit)(struct ls_srv *s);   /* owner's stop, for atexit */
	struct ls_srv *next;   /* registry of live servers */
};

/* Starts s (spec, extra_conf set by the caller).  Returns 0, or -1 with a
 * message in err.  Must be called from the main thread. */
int ls_srv_start(struct ls_srv *s, char *err, size_t errsz);
/* Sends "restart" or "crash" and waits for the server to be ready again. */
int ls_srv_command(struct ls_srv *s, const char *cmd, char *err, size_t errsz);
/* Stops the server, removes the directory, unregisters s (not freed). */
void ls_srv_stop(struct ls_srv *s);

/* For testkafka.c: registry and stale-directory sweeping. */
void ls_srv_register(struct ls_srv *s);
void ls_srv_unregister(struct ls_srv *s);

/* Runs argv as spec->user (when root) with output appended to logpath and
 * waits; returns its exit status, or -1. */
int ls_srv_run(const struct ls_srv *s, char *const argv[], const char *logpath);
/* The last outsz-1 bytes of DIR/server.log (where servers and ls_srv_run
 * write), for error messages. */
void ls_srv_log_tail(const char *dir, char *out, size_t outsz);
/* Appends text to path (creating it 0644); returns 0 or -1. */
int ls_srv_append(const char *path, const char *text);
/* uid/gid of spec->user when running as root; false when staying as is. */
bool ls_srv_user(const struct ls_srv_spec *spec, uid_t *uid, gid_t *gid);
/* Seconds on the monotonic clock. */
double ls_srv_now(void);

#endif
