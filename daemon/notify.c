/* notify — see notify.h.  sd_notify(0, ...) keeps $NOTIFY_SOCKET set, so the
 * daemon can notify for its whole life (READY, STATUS, WATCHDOG, STOPPING). */
#include "daemon/notify.h"

#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

/* Copies a status into buf as one line: systemd treats a newline in the
 * notification as the start of a new assignment. */
static void one_line(char *buf, size_t size, const char *status)
{
	snprintf(buf, size, "%s", status != NULL ? status : "");
	for (char *p = buf; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

int ls_notify_ready(const char *status)
{
	char line[256];
	one_line(line, sizeof line, status);
	return sd_notifyf(0, "READY=1\nSTATUS=%s", line) < 0 ? -1 : 0;
}

int ls_notify_status(const char *status)
{
	char line[256];
	one_line(line, sizeof line, status);
	return sd_notifyf(0, "STATUS=%s", line) < 0 ? -1 : 0;
}

int ls_notify_stopping(void)
{
	return sd_notify(0, "STOPPING=1") < 0 ? -1 : 0;
}

int ls_notify_watchdog(void)
{
	return sd_notify(0, "WATCHDOG=1") < 0 ? -1 : 0;
}

uint64_t ls_notify_watchdog_usec(void)
{
	uint64_t usec = 0;
	return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}
