/* crash — on a fatal signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT) the
 * daemon writes the signal and a stack trace to stderr (the journal or the
 * log file), then dies of the same signal, so a crash in the field comes
 * with the frames to find it (addr2line -e lockstepd +OFFSET).  Nothing is
 * installed in sanitizer builds, whose own reports are better. */
#ifndef LS_CRASH_H
#define LS_CRASH_H

void ls_crash_install(void);

#endif
