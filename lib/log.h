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
/* Logs to path (appending) instead of stderr; NULL goes back to stderr. */
int ls_log_open_file(const char *path);
/* Reopens the log file (after rotation; SIGHUP). 0 when logging to stderr. */
int ls_log_reopen(void);

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
 * Returns the length of the redacted string (truncated to size-1). */
size_t ls_redact(const char *in, char *out, size_t size);

#endif
