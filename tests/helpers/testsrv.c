/* testsrv core: the supervisor process behind testpg.c and testmy.c (see
 * testsrv_priv.h for the design), the registry that stops leftovers at
 * exit, the stale-directory sweep, ls_test_wait_until and
 * ls_test_build_path.  This file does not use check, so tools may link it.
 */
#include "tests/helpers/testsrv.h"
#include "tests/helpers/testsrv_priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READY_TIMEOUT_S 60.0
#define STALE_NOPID_S 300     /* a dir without lstest.pid is stale after */
#define MSG_MAX 4096

static struct ls_srv *live;       /* servers this process knows of */
static bool atexit_registered;

double ls_srv_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- registry and teardown at exit -------------------------------------- */

/* Only servers started by this very process are stopped: a check test child
 * (fork mode) inherits the parent's list but must leave its fixtures alone. */
static void stop_leftovers(void)
{
	pid_t me = getpid();
	struct ls_srv *s, *next;

	for (s = live; s; s = next) {
		next = s->next;
		if (s->owner == me && s->at_exit)
			s->at_exit(s);
	}
}

void ls_srv_register(struct ls_srv *s)
{
	if (!atexit_registered) {
		atexit(stop_leftovers);
		atexit_registered = true;
	}
	s->next = live;
	live = s;
}

void ls_srv_unregister(struct ls_srv *s)
{
	struct ls_srv **pp;

	for (pp = &live; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	s->next = NULL;
}

/* ---- files ----------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_rf(const char *dir)
{
	if (dir[0])
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int ls_srv_append(const char *path, const char *text)
{
	FILE *f = fopen(path, "a");
	int rc;

	if (!f)
		return -1;
	rc = fputs(text, f) < 0 ? -1 : 0;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

void ls_srv_log_tail(const char *dir, char *out, size_t outsz)
{
	char path[PATH_MAX];
	FILE *f;
	long size;
	size_t n;

	out[0] = '\0';
	snprintf(path, sizeof path, "%s/server.log", dir);
	f = fopen(path, "r");
	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	if (size > (long)outsz - 1)
		fseek(f, size - (long)outsz + 1, SEEK_SET);
	else
		fseek(f, 0, SEEK_SET);
	n = fread(out, 1, outsz - 1, f);
	out[n] = '\0';
	fclose(f);
}

/* Removes /tmp/lstest-* directories whose owner process is gone: leftovers
 * of test runs that were SIGKILLed before they could clean up. */
static void sweep_stale(void)
{
	DIR *d = opendir("/tmp");
	struct dirent *e;
	char path[PATH_MAX], pidpath[PATH_MAX + 16];

	if (!d)
		return;
	while ((e = readdir(d))) {
		FILE *f;
		int pid = 0;
		struct stat st;

		if (strncmp(e->d_name, "lstest-", 7) != 0)
			continue;
		snprintf(path, sizeof path, "/tmp/%s", e->d_name);
		snprintf(pidpath, sizeof pidpath, "%s/lstest.pid", path);
		f = fopen(pidpath, "r");
		if (f) {
			if (fscanf(f, "%d", &pid) != 1)
				pid = 0;
			fclose(f);
		}
		if (pid > 0) {
			if (kill(pid, 0) == 0 || errno != ESRCH)
				continue;
		} else if (stat(path, &st) != 0 ||
			   time(NULL) - st.st_mtime < STALE_NOPID_S) {
			continue;
		}
		rm_rf(path);
	}
	closedir(d);
}

/* ---- processes ------------------------------------------------------------- */

bool ls_srv_user(const struct ls_srv_spec *spec, uid_t *uid, gid_t *gid)
{
	struct passwd *pw;

	if (!spec->user || geteuid() != 0)
		return false;
	pw = getpwnam(spec->user);
	if (!pw)
		return false;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return true;
}

/* Forks argv with stdout/stderr appended to logpath, in its own process
 * group, as spec->user when root, with a clean signal state and the given
 * PDEATHSIG (set after dropping privileges: changing uid clears it). */
static pid_t spawn(const struct ls_srv *s, char *const argv[],
		   const char *logpath, int deathsig)
{
	pid_t parent = getpid(), pid;
	uid_t uid = 0;
	gid_t gid = 0;
	bool drop = ls_srv_user(s->spec, &uid, &gid);
	sigset_t none;
	int fd, sig;

	pid = fork();
	if (pid != 0)
		return pid;
	setpgid(0, 0);
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0)
		dup2(fd, 0);
	fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (sig = 1; sig < 32; sig++)
		signal(sig, SIG_DFL);
	if (drop && (setgroups(0, NULL) != 0 || setgid(gid) != 0 ||
		     setuid(uid) != 0)) {
		perror("testsrv: dropping privileges");
		_exit(126);
	}
	prctl(PR_SET_PDEATHSIG, deathsig);
	if (getppid() != parent)
		_exit(1);
	if (chdir(s->dir) != 0)
		_exit(126);
	execv(argv[0], argv);
	fprintf(stderr, "testsrv: exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int ls_srv_run(const struct ls_srv *s, char *const argv[], const char *logpath)
{
	pid_t pid = spawn(s, argv, logpath, SIGKILL);
	int st;

	if (pid < 0)
		return -1;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* ---- the supervisor ------------------------------------------------------ */

/* State of the supervisor process (it has its own copy of memory). */
struct super {
	struct ls_srv *s;
	pid_t owner;
	pid_t server;          /* 0 when not running */
	int sock;
};

static bool owner_gone(const struct super *sv)
{
	sigset_t pending;

	sigpending(&pending);
	return sigismember(&pending, SIGTERM) || getppid() != sv->owner;
}

/* Reaps every exited child (the supervisor is a subreaper, so orphaned
 * postgres backends land here too); clears sv->server if it was one. */
static void reap(struct super *sv, int *server_status)
{
	pid_t r;
	int st;

	while ((r = waitpid(-1, &st, WNOHANG)) > 0) {
		if (r == sv->server) {
			sv->server = 0;
			if (server_status)
				*server_status = st;
		}
	}
}

/* SIGKILLs the server's whole process group and waits until it is empty. */
static void kill_server(struct super *sv)
{
	pid_t pgid = sv->server;
	double deadline = ls_srv_now() + 10;

	if (!pgid)
		return;
	killpg(pgid, SIGKILL);
	while (ls_srv_now() < deadline) {
		reap(sv, NULL);
		if (killpg(pgid, 0) < 0 && errno == ESRCH)
			break;
		sleep_ms(5);
	}
	sv->server = 0;
}

/* Asks the server to shut down with spec->stop_sig, waits, and falls back
 * to SIGKILL after 30 s. */
static void stop_server(struct super *sv)
{
	pid_t pgid = sv->server;
	double deadline = ls_srv_now() + 30;

	if (!pgid)
		return;
	kill(pgid, sv->s->spec->stop_sig);
	while (sv->server && ls_srv_now() < deadline) {
		reap(sv, NULL);
		if (sv->server)
			sleep_ms(10);
	}
	sv->server = pgid;
	kill_server(sv);      /* also sweeps any leftover of the group */
}

/* Starts the server and waits until spec->ready.  With new_port, picks a
 * free port and tries again when another process took it meanwhile. */
static int launch(struct super *sv, bool new_port, char *err, size_t errsz)
{
	struct ls_srv *s = sv->s;
	char *argv[64], buf[4096], logpath[PATH_MAX], tail[1500];
	int attempt, st = 0;

	snprintf(logpath, sizeof logpath, "%s/server.log", s->dir);
	for (attempt = 0; attempt < 5; attempt++) {
		double deadline = ls_srv_now() + READY_TIMEOUT_S;

		if (new_port && (s->port = free_port()) < 0) {
			snprintf(err, errsz, "no free port: %s", strerror(errno));
			return -1;
		}
		s->spec->argv(s, argv, 64, buf, sizeof buf);
		sv->server = spawn(s, argv, logpath, s->spec->death_sig);
		if (sv->server < 0) {
			sv->server = 0;
			snprintf(err, errsz, "fork: %s", strerror(errno));
			return -1;
		}
		while (sv->server && !owner_gone(sv) && ls_srv_now() < deadline) {
			if (s->spec->ready(s))
				return 0;
			sleep_ms(20);
			reap(sv, &st);
		}
		ls_srv_log_tail(s->dir, tail, sizeof tail);
		if (sv->server) {
			kill_server(sv);
			snprintf(err, errsz, "%s not ready within %.0f s; log:\n%s",
				 argv[0], READY_TIMEOUT_S, tail);
			return -1;
		}
		if (!new_port || !strstr(tail, "already in use")) {
			snprintf(err, errsz, "%s exited (status %d); log:\n%s",
				 argv[0], st, tail);
			return -1;
		}
	}
	snprintf(err, errsz, "no free port after %d attempts", attempt);
	return -1;
}

static void reply(struct super *sv, int rc, const char *err)
{
	char msg[MSG_MAX];

	if (rc == 0)
		snprintf(msg, sizeof msg, "ok %d", sv->s->port);
	else
		snprintf(msg, sizeof msg, "err %s", err);
	send(sv->sock, msg, strlen(msg), MSG_NOSIGNAL);
}

static void __attribute__((noreturn)) super_exit(struct super *sv, int code)
{
	kill_server(sv);
	rm_rf(sv->s->dir);
	_exit(code);
}

/* Handles one command; returns false to exit the loop. */
static bool super_command(struct super *sv, const char *cmd)
{
	char err[MSG_MAX - 8] = "";
	int rc;

	if (strcmp(cmd, "stop") == 0) {
		kill_server(sv);
		rm_rf(sv->s->dir);
		reply(sv, 0, NULL);
		return false;
	}
	if (strcmp(cmd, "restart") == 0)
		stop_server(sv);
	else if (strcmp(cmd, "crash") == 0)
		kill_server(sv);
	else {
		reply(sv, -1, "unknown command");
		return true;
	}
	rc = launch(sv, false, err, sizeof err);
	reply(sv, rc, err);
	return true;
}

static void __attribute__((noreturn)) super_main(struct ls_srv *s, int sock,
						 pid_t owner)
{
	struct super sv = { .s = s, .owner = owner, .sock = sock };
	char err[MSG_MAX - 8] = "", msg[MSG_MAX];
	sigset_t term;
	int fd, rc;

	setpgid(0, 0);        /* a terminal's ^C reaches the owner, not us */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);   /* polled via sigpending */
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != owner)
		_exit(1);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	for (fd = 3; fd < 1024; fd++)   /* other servers' sockets, check's files */
		if (fd != sock)
			close(fd);

	rc = s->spec->init(s, err, sizeof err);
	if (rc == 0)
		rc = launch(&sv, true, err, sizeof err);
	reply(&sv, rc, err);
	if (rc != 0)
		super_exit(&sv, 1);

	while (!owner_gone(&sv)) {
		struct pollfd pfd = { .fd = sock, .events = POLLIN };
		ssize_t n;

		reap(&sv, NULL);
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		n = recv(sock, msg, sizeof msg - 1, 0);
		if (n <= 0)
			break;        /* every holder of the owner's end is gone */
		msg[n] = '\0';
		if (!super_command(&sv, msg))
			_exit(0);
	}
	super_exit(&sv, 0);
}

/* ---- owner side ---------------------------------------------------------- */

/* Waits for the supervisor's answer: "ok PORT" or "err MESSAGE". */
static int await_reply(struct ls_srv *s, char *err, size_t errsz)
{
	char msg[MSG_MAX];
	ssize_t n;

	do
		n = recv(s->sock, msg, sizeof msg - 1, 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		snprintf(err, errsz, "%s supervisor died", s->spec->kind);
		return -1;
	}
	msg[n] = '\0';
	if (strncmp(msg, "ok ", 3) == 0) {
		s->port = atoi(msg + 3);
		return 0;
	}
	snprintf(err, errsz, "%s", strncmp(msg, "err ", 4) == 0 ? msg + 4 : msg);
	return -1;
}

int ls_srv_start(struct ls_srv *s, char *err, size_t errsz)
{
	char pidpath[PATH_MAX], pidtext[32];
	uid_t uid;
	gid_t gid;
	int sv[2];
	double t0 = ls_srv_now();

	sweep_stale();
	s->sock = -1;
	snprintf(s->dir, sizeof s->dir, "/tmp/lstest-%s-XXXXXX", s->spec->kind);
	if (!mkdtemp(s->dir)) {
		snprintf(err, errsz, "mkdtemp: %s", strerror(errno));
		s->dir[0] = '\0';
		return -1;
	}
	snprintf(pidpath, sizeof pidpath, "%s/lstest.pid", s->dir);
	snprintf(pidtext, sizeof pidtext, "%d\n", (int)getpid());
	if (ls_srv_append(pidpath, pidtext) != 0 ||
	    (ls_srv_user(s->spec, &uid, &gid) && chown(s->dir, uid, gid) != 0) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		snprintf(err, errsz, "preparing %s: %s", s->dir, strerror(errno));
		rm_rf(s->dir);
		return -1;
	}
	s->owner = getpid();
	fflush(NULL);
	s->super = fork();
	if (s->super == 0) {
		close(sv[0]);
		super_main(s, sv[1], s->owner);
	}
	close(sv[1]);
	s->sock = sv[0];
	if (s->super < 0 || await_reply(s, err, errsz) != 0) {
		if (s->super < 0)
			snprintf(err, errsz, "fork: %s", strerror(errno));
		else
			waitpid(s->super, NULL, 0);
		close(s->sock);
		s->sock = -1;
		rm_rf(s->dir);
		return -1;
	}
	fprintf(stderr, "testsrv: %s ready on 127.0.0.1:%d in %.2f s (%s)\n",
		s->spec->kind, s->port, ls_srv_now() - t0, s->dir);
	ls_srv_register(s);
	return 0;
}

int ls_srv_command(struct ls_srv *s, const char *cmd, char *err, size_t errsz)
{
	double t0 = ls_srv_now();

	if (send(s->sock, cmd, strlen(cmd), MSG_NOSIGNAL) < 0) {
		snprintf(err, errsz, "%s supervisor gone: %s", s->spec->kind,
			 strerror(errno));
		return -1;
	}
	if (await_reply(s, err, errsz) != 0)
		return -1;
	fprintf(stderr, "testsrv: %s %s done in %.2f s\n", s->spec->kind, cmd,
		ls_srv_now() - t0);
	return 0;
}

void ls_srv_stop(struct ls_srv *s)
{
	char err[256];

	if (s->sock >= 0) {
		if (send(s->sock, "stop", 4, MSG_NOSIGNAL) == 4)
			await_reply(s, err, sizeof err);
		close(s->sock);
		s->sock = -1;
	}
	/* Only the parent can reap; a check test child stopping its parent's
	 * server leaves the zombie to the parent's own stop. */
	if (s->owner == getpid() && s->super > 0)
		waitpid(s->super, NULL, 0);
	rm_rf(s->dir);
	ls_srv_unregister(s);
}

/* ---- waiting and paths ----------------------------------------------------- */

bool ls_test_wait_until(bool (*cond)(void *ctx), void *ctx, int timeout_ms)
{
	double deadline = ls_srv_now() + timeout_ms / 1000.0;
	int step = 1;

	for (;;) {
		double left;

		if (cond(ctx))
			return true;
		left = deadline - ls_srv_now();
		if (left <= 0)
			return false;
		sleep_ms(left * 1000 < step ? (int)(left * 1000) + 1 : step);
		if (step < 20)
			step *= 2;
	}
}

/* Interned results, so callers may keep the pointers for the whole run. */
struct path_node {
	struct path_node *next;
	char path[];
};
static struct path_node *paths;

static void free_paths(void)
{
	while (paths) {
		struct path_node *n = paths;

		paths = n->next;
		free(n);
	}
}

/* out = a + sep + b (sep may be ""), cut to outsz; without snprintf so
 * gcc's truncation analysis has nothing to guess about. */
static void join_path(char *out, size_t outsz, const char *a, const char *sep,
		      const char *b)
{
	size_t used = 0;
	const char *parts[3] = { a, sep, b };
	for (int i = 0; i < 3 && outsz > 0; i++) {
		size_t l = strlen(parts[i]);
		if (l > outsz - 1 - used)
			l = outsz - 1 - used;
		memcpy(out + used, parts[i], l);
		used += l;
	}
	if (outsz > 0)
		out[used] = '\0';
}

/* The build directory: $LS_BUILD (relative to the working directory), or
 * the directory above "tests/" in this program's own path, or ./build. */
static void build_dir(char *out, size_t outsz)
{
	const char *env = getenv("LS_BUILD");
	char exe[PATH_MAX], cwd[PATH_MAX] = ".";
	ssize_t n;
	char *t;

	if (!getcwd(cwd, sizeof cwd))
		join_path(cwd, sizeof cwd, ".", "", "");
	if (env && env[0]) {
		if (env[0] == '/')
			join_path(out, outsz, env, "", "");
		else
			join_path(out, outsz, cwd, "/", env);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = '\0';
		t = strstr(exe, "/tests/");
		while (t && strstr(t + 1, "/tests/"))
			t = strstr(t + 1, "/tests/");
		if (t) {
			*t = '\0';
			join_path(out, outsz, exe, "", "");
			return;
		}
	}
	join_path(out, outsz, cwd, "/", "build");
}

const char *ls_test_build_path(const char *rel)
{
	char dir[PATH_MAX];
	struct path_node *n;
	size_t len;

	build_dir(dir, sizeof dir);
	len = strlen(dir) + 1 + strlen(rel) + 1;
	n = malloc(sizeof *n + len);
	if (!n)
		abort();
	snprintf(n->path, len, "%s/%s", dir, rel);
	for (struct path_node *p = paths; p; p = p->next) {
		if (strcmp(p->path, n->path) == 0) {
			free(n);
			return p->path;
		}
	}
	if (!paths)
		atexit(free_paths);
	n->next = paths;
	paths = n;
	return n->path;
}
