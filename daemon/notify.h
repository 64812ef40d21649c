/* notify — what lockstepd tells systemd (sd_notify, via libsystemd).
 *
 * Every call is a no-op returning 0 when the daemon does not run under a
 * Type=notify unit ($NOTIFY_SOCKET unset), so the daemon calls them
 * unconditionally.  A failed send returns -1 but need not be fatal to the
 * caller: systemd's own timeouts catch a daemon that really
 * cannot talk to it.
 */
#ifndef LS_NOTIFY_H
#define LS_NOTIFY_H

#include <stdint.h>

/* READY=1 plus a STATUS= line: the daemon accepts control requests. */
int ls_notify_ready(const char *status);
/* STATUS=<one line> shown by `systemctl status`; newlines become spaces. */
int ls_notify_status(const char *status);
/* STOPPING=1: graceful shutdown has begun. */
int ls_notify_stopping(void);
/* WATCHDOG=1: the loop is alive. */
int ls_notify_watchdog(void);
/* The watchdog interval systemd expects (WatchdogSec=) in microseconds, or 0
 * when the watchdog is off or meant for another process. */
uint64_t ls_notify_watchdog_usec(void);

#endif
