#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MASK "********"

/* Destination state.  The level is read on every call without the lock;
 * everything else changes rarely (init, open, reopen) and is read under the
 * lock together with the write(), so a line never goes to a closed fd. */
static _Atomic int log_level = LS_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_ident[64] = "lockstep";
static bool log_journal;        /* stderr is the journal: "<N>" prefixes */
static int log_fd = -1;         /* -1: stderr */
static char *log_path;          /* owned; set while logging to a file */

static const char *const level_names[] = {
	[LS_LOG_ERROR] = "error",
	[LS_LOG_WARNING] = "warning",
	[LS_LOG_NOTICE] = "notice",
	[LS_LOG_INFO] = "info",
	[LS_LOG_DEBUG] = "debug",
};

/* systemd sets JOURNAL_STREAM="dev:ino" for the stream it connected to
 * stderr; it stays in the environment of children whose stderr goes
 * elsewhere, hence the comparison with what stderr really is. */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	if (js == NULL || *js == '\0')
		return false;
	unsigned long long dev, ino;
	char tail;
	if (sscanf(js, "%llu:%llu%c", &dev, &ino, &tail) != 2)
		return false;
	struct stat st;
	if (fstat(STDERR_FILENO, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

void ls_log_init(const char *ident)
{
	pthread_mutex_lock(&log_lock);
	if (ident != NULL) {
		const char *base = strrchr(ident, '/');
		snprintf(log_ident, sizeof log_ident, "%s",
			 base != NULL ? base + 1 : ident);
	}
	log_journal = stderr_is_journal();
	pthread_mutex_unlock(&log_lock);
}

void ls_log_set_level(enum ls_log_level level)
{
	if (level < LS_LOG_ERROR)
		level = LS_LOG_ERROR;
	if (level > LS_LOG_DEBUG)
		level = LS_LOG_DEBUG;
	atomic_store(&log_level, (int)level);
}

int ls_log_level_from_name(const char *name, enum ls_log_level *out)
{
	for (int l = LS_LOG_ERROR; l <= LS_LOG_DEBUG; l++) {
		if (name != NULL && strcmp(name, level_names[l]) == 0) {
			*out = (enum ls_log_level)l;
			return 0;
		}
	}
	return -1;
}

const char *ls_log_level_name(enum ls_log_level level)
{
	if (level < LS_LOG_ERROR || level > LS_LOG_DEBUG)
		return "unknown";
	return level_names[level];
}

int ls_log_set_level_name(const char *name)
{
	enum ls_log_level l;
	if (ls_log_level_from_name(name, &l) != 0)
		return -1;
	ls_log_set_level(l);
	return 0;
}

enum ls_log_level ls_log_get_level(void)
{
	return (enum ls_log_level)atomic_load(&log_level);
}

static int open_append(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int ls_log_open_file(const char *path)
{
	int fd = -1;
	char *copy = NULL;
	if (path != NULL) {
		copy = strdup(path);
		if (copy == NULL)
			return -1;
		fd = open_append(path);
		if (fd < 0) {
			int e = errno;
			free(copy);
			errno = e;
			return -1;
		}
	}
	pthread_mutex_lock(&log_lock);
	int old = log_fd;
	free(log_path);
	log_fd = fd;
	log_path = copy;
	pthread_mutex_unlock(&log_lock);
	if (old >= 0)
		close(old);
	return 0;
}

/* The new file takes over the old descriptor number with dup2(), which
 * replaces it atomically: there is no moment without a valid log fd. */
int ls_log_reopen(void)
{
	pthread_mutex_lock(&log_lock);
	int rc = 0;
	if (log_fd >= 0 && log_path != NULL) {
		int fd = open_append(log_path);
		if (fd < 0 || dup3(fd, log_fd, O_CLOEXEC) < 0)
			rc = -1;
		if (fd >= 0)
			close(fd);
	}
	pthread_mutex_unlock(&log_lock);
	return rc;
}

/* ---- redaction ---- */

struct out {
	char *buf;
	size_t size;    /* capacity including the NUL */
	size_t len;     /* bytes written, <= size - 1 */
};

static void out_put(struct out *o, const char *s, size_t n)
{
	size_t room = o->size - 1 - o->len;
	if (n > room)
		n = room;
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	       c == '\v';
}

/* Characters of a key name or a URI scheme. */
static bool is_token_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-' ||
	       c == '+';
}

static bool ends_with_ci(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);
	return n >= k && strncasecmp(s + n - k, suffix, k) == 0;
}

static bool is_secret_key(const char *s, size_t n)
{
	return ends_with_ci(s, n, "password") || ends_with_ci(s, n, "passwd") ||
	       ends_with_ci(s, n, "secret");
}

/* Returns the end of the value starting at p: a quoted string (with
 * backslash escapes; an unterminated one runs to the end) or a bare word.
 * In a URI query a bare value also stops at '&' and '#'. */
static const char *value_end(const char *p, bool in_query)
{
	if (*p == '\'' || *p == '"') {
		char q = *p++;
		while (*p != '\0' && *p != q) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			p++;
		}
		return *p == q ? p + 1 : p;
	}
	while (*p != '\0' && !is_blank(*p) &&
	       !(in_query && (*p == '&' || *p == '#')))
		p++;
	return p;
}

/* p points just after "://".  Masks the password of user:password@ in the
 * authority.  The last '@' before a blank, '?' or '#' ends the userinfo so
 * that an unescaped '@' or '/' inside the password is still covered. */
static const char *redact_uri(struct out *o, const char *p)
{
	const char *end = p;
	while (*end != '\0' && !is_blank(*end) && *end != '?' && *end != '#')
		end++;
	const char *at = NULL;
	for (const char *q = p; q < end; q++)
		if (*q == '@')
			at = q;
	const char *colon = at != NULL ? memchr(p, ':', (size_t)(at - p)) : NULL;
	if (colon == NULL)
		return p;
	out_put(o, p, (size_t)(colon + 1 - p));
	out_put(o, MASK, strlen(MASK));
	return at;
}

size_t ls_redact(const char *in, char *out, size_t size)
{
	if (size == 0)
		return 0;
	struct out o = { out, size, 0 };
	const char *p = in;
	char prev = '\0';
	while (*p != '\0') {
		if (!is_token_char(*p) || is_token_char(prev)) {
			prev = *p;
			out_put(&o, p++, 1);
			continue;
		}
		const char *tok = p;
		while (is_token_char(*p))
			p++;
		size_t toklen = (size_t)(p - tok);
		out_put(&o, tok, toklen);
		prev = p[-1];
		if (strncmp(p, "://", 3) == 0) {
			out_put(&o, p, 3);
			p = redact_uri(&o, p + 3);
			prev = '/';
			continue;
		}
		const char *q = p;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q != '=' || !is_secret_key(tok, toklen))
			continue;
		bool in_query = tok > in && (tok[-1] == '?' || tok[-1] == '&');
		q++;
		while (is_blank(*q))   /* libpq: "password= x" means x */
			q++;
		out_put(&o, p, (size_t)(q - p));
		const char *end = value_end(q, in_query);
		if (end > q)
			out_put(&o, MASK, strlen(MASK));
		p = end;
		prev = end[-1];
	}
	out[o.len] = '\0';
	return o.len;
}

/* ---- writing ---- */

static size_t format_prefix(char *buf, size_t size, enum ls_log_level level,
			    bool journal)
{
	int n;
	if (journal) {
		n = snprintf(buf, size, "<%d>", (int)level);
	} else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(buf, size,
			     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld]: %s: ",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			     tm.tm_hour, tm.tm_min, tm.tm_sec,
			     ts.tv_nsec / 1000000, log_ident, (long)getpid(),
			     ls_log_level_name(level));
	}
	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;   /* nowhere left to report a logging failure */
		buf += w;
		len -= (size_t)w;
	}
}

void ls_log(enum ls_log_level level, const char *fmt, ...)
{
	if ((int)level > atomic_load(&log_level))
		return;
	char msg[LS_LOG_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof msg)
		memcpy(msg + sizeof msg - 4, "...", 4);
	for (char *c = msg; *c != '\0'; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';

	char line[LS_LOG_LINE_MAX + 128];
	int saved = errno;
	pthread_mutex_lock(&log_lock);
	size_t len = format_prefix(line, sizeof line, level,
				   log_fd < 0 && log_journal);
	len += ls_redact(msg, line + len, sizeof line - len - 1);
	line[len++] = '\n';
	write_all(log_fd >= 0 ? log_fd : STDERR_FILENO, line, len);
	pthread_mutex_unlock(&log_lock);
	errno = saved;
}
