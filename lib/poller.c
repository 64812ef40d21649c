#include "poller.h"

static void maybe_closed(struct ls_poller *p)
{
	if (p->closing && !p->busy && p->timer_closed)
		p->closed(p->ctx);
}

static void work_cb(uv_work_t *w)
{
	struct ls_poller *p = w->data;
	p->work_fn(p->ctx);
}

static void after_work(uv_work_t *w, int status)
{
	struct ls_poller *p = w->data;
	p->busy = false;
	if (p->closing) {
		maybe_closed(p);
		return;
	}
	p->done(p->ctx, status);
}

static void on_tick(uv_timer_t *t)
{
	struct ls_poller *p = t->data;
	if (p->busy || p->closing)
		return;
	if (p->before)
		p->before(p->ctx);
	if (uv_queue_work(p->loop, &p->work, work_cb, after_work) == 0)
		p->busy = true;
}

void ls_poller_start(struct ls_poller *p, uv_loop_t *loop, int interval_ms,
		     void (*before)(void *ctx), void (*work)(void *ctx),
		     void (*done)(void *ctx, int status), void *ctx)
{
	*p = (struct ls_poller){
		.loop = loop, .before = before, .work_fn = work, .done = done, .ctx = ctx,
	};
	p->work.data = p;
	uv_timer_init(loop, &p->timer);
	p->timer.data = p;
	uv_timer_start(&p->timer, on_tick, 0, (uint64_t)interval_ms);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct ls_poller *p = h->data;
	p->timer_closed = true;
	maybe_closed(p);
}

void ls_poller_close(struct ls_poller *p, void (*closed)(void *ctx))
{
	p->closing = true;
	p->closed = closed;
	/* a run not yet started is cancelled; one running finishes first */
	if (p->busy)
		(void)uv_cancel((uv_req_t *)&p->work);
	uv_close((uv_handle_t *)&p->timer, on_timer_closed);
}
