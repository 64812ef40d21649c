/* poller — a periodic job on libuv's thread pool, one run at a time.
 *
 * Every interval, unless the previous run is still going, before(ctx) runs
 * on the loop (may be NULL: a place to hand the job its inputs), then
 * work(ctx) on a pool thread (blocking is fine there), then done(ctx,
 * status) back on the loop (status 0, or a libuv error such as UV_ECANCELED).
 * The first run starts at once.
 *
 * Caller-allocated (embed it); every call on the loop thread.  Closing
 * cancels a run not yet started, waits for one in progress, closes the timer,
 * and then calls closed(ctx) exactly once; done() is not called for a run
 * that ends after the close began.  The owner frees itself in closed().
 */
#ifndef LS_POLLER_H
#define LS_POLLER_H

#include <stdbool.h>
#include <uv.h>

struct ls_poller {
	uv_loop_t *loop;
	uv_timer_t timer;
	uv_work_t work;
	void (*before)(void *ctx);
	void (*work_fn)(void *ctx);
	void (*done)(void *ctx, int status);
	void (*closed)(void *ctx);
	void *ctx;
	bool busy, closing, timer_closed;
};

void ls_poller_start(struct ls_poller *p, uv_loop_t *loop, int interval_ms,
		     void (*before)(void *ctx), void (*work)(void *ctx),
		     void (*done)(void *ctx, int status), void *ctx);
void ls_poller_close(struct ls_poller *p, void (*closed)(void *ctx));

#endif
