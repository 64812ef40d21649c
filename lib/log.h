/* log — leveled logging to stderr (or a file), journald-aware, redacting.
 *
 * Under systemd (JOURNAL_STREAM set and matching stderr), each line starts
 * with a "<N>" priority prefix that journald understands and carries no
 * timestamp (the journal adds one); otherwise lines read
 * "2026-11-22T01:02:03.456Z lockstepd[123]: warning: message".
 *
 * Every formatted message passes through ls_redact() before it is written, so
 * a connection string that slips into a message loses its password.
 */
#ifndef LS_LOG_H
#define LS_LOG_H

#include <stddef.h>

enum ls_log_level {            /* syslog numbering, as journald wants */
	LS_LOG_ERROR = 3,
	LS_LOG_WARNING = 4,
	LS_LOG_NOTICE = 5,
	LS_LOG_INFO = 6,
	LS_LOG_DEBUG = 7,
};

/* ident names the program in non-journal lines. Safe to call again. */
void ls_log_init(const char *ident);
void ls_log_set_level(enum ls_log_level level);
/* "debug", "info", "notice", "warning", "error"; returns -1 if unknown. */
int ls_log_set_level_name(const char *name);
enum ls_log_level ls_log_get_level(void);
/* Maps a level name to its level without changing anything (config checks
 * use it); returns -1 if unknown. */
int ls_log_level_from_name(const char *name, enum ls_log_level *out);
/* "debug" ... "error"; a static string, "unknown" for other values. */
const char *ls_log_level_name(enum ls_log_level level);
/* Logs to path (appending, created 0640) instead of stderr; NULL goes back to
 * stderr.  Returns -1 with errno set when the file cannot be opened (the
 * previous destination stays in use). */
int ls_log_open_file(const char *path);
/* Reopens the log file (after rotation; SIGHUP). 0 when logging to stderr. */
int ls_log_reopen(void);

/* Thread-safe: each message becomes exactly one write() of one line.
 * Newlines inside the message become spaces; messages longer than
 * LS_LOG_LINE_MAX are cut and end with "...". */
#define LS_LOG_LINE_MAX 4096
void ls_log(enum ls_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define ls_debug(...) ls_log(LS_LOG_DEBUG, __VA_ARGS__)
#define ls_info(...) ls_log(LS_LOG_INFO, __VA_ARGS__)
#define ls_notice(...) ls_log(LS_LOG_NOTICE, __VA_ARGS__)
#define ls_warn(...) ls_log(LS_LOG_WARNING, __VA_ARGS__)
#define ls_error(...) ls_log(LS_LOG_ERROR, __VA_ARGS__)

/* Copies in to out (size bytes, always NUL-terminated) with secrets masked:
 * libpq conninfo "password=..." (quoted or not), MySQL "password=" /
 * "passwd=" pairs, URIs "scheme://user:secret@host", and kafka
 * "sasl.password=" / "ssl.key.password=" values all become "********".
 * More precisely: the value of any "key=value" whose key ends in "password",
 * "passwd" or "secret" (any case, spaces around '=' allowed; the value is a
 * '...' or "..." string with backslash escapes, or runs to the next blank, or
 * in a URI query to the next '&' or '#'), and the password part of
 * "scheme://user:password@host".  Everything else is copied unchanged.
 * Returns the length of the redacted string (truncated to size-1); 0 and no
 * write when size is 0. */
size_t ls_redact(const char *in, char *out, size_t size);

#endif
