#include "daemon/crash.h"

#include <execinfo.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define LS_CRASH_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LS_CRASH_SANITIZED 1
#endif
#endif

#ifndef LS_CRASH_SANITIZED
static void say(const char *s)
{
	/* async-signal-safe: write(2) only */
	ssize_t rc = write(STDERR_FILENO, s, strlen(s));
	(void)rc;
}

static void on_fatal(int sig)
{
	char num[4] = { (char)('0' + sig / 10 % 10), (char)('0' + sig % 10), '\0', '\0' };
	say("lockstepd: fatal signal ");
	say(num[0] == '0' ? num + 1 : num);
	say("; stack:\n");
	void *frames[64];
	int n = backtrace(frames, 64);
	backtrace_symbols_fd(frames, n, STDERR_FILENO);
	/* SA_RESETHAND restored the default action: die of the same signal */
	raise(sig);
}

#endif

void ls_crash_install(void)
{
#ifndef LS_CRASH_SANITIZED
	/* backtrace() loads libgcc on first use, which is not signal-safe:
	 * do it now */
	void *warm[1];
	(void)backtrace(warm, 1);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_fatal;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &sa, NULL);
#endif
}
