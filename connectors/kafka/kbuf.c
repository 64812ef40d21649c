#include "connectors/kafka/kbuf.h"

#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"

/* Consumer messages handed out per loop wake-up before yielding to the
 * loop's other handles (an idle handle continues the drain). */
#define DRAIN_BUDGET 512
#define QUERY_TIMEOUT_MS 10000

struct kbuf;

/* One librdkafka handle wired to the loop: its queues write to efd. */
struct kclient {
	rd_kafka_t *rk;
	rd_kafka_queue_t *mainq;
	rd_kafka_queue_t *cq;      /* consumer queue (readers only) */
	int efd;
	uv_poll_t poll;
	uv_idle_t idle;            /* continues a drain cut short */
	uv_work_t work;            /* off-loop: gone query, destroy */
	int work_busy;
	int open_handles;          /* uv handles not yet closed */
	void (*on_closed)(void *owner);   /* teardown finished */
	void *owner;
};

struct kreader {
	struct ls_buffer_reader base;
	struct kbuf *kb;
	struct kreader *next;
	struct kclient c;
	struct ls_buffer_reader_cb cb;
	char name[64];
	int64_t next_offset;       /* the offset on_record gets next */
	int paused, failed, closed;
	int64_t q_lo, q_hi;        /* gone query result */
	rd_kafka_resp_err_t q_err;
	char reason[256];          /* librdkafka's text for the reset error */
};

struct kslot {
	uint64_t seq;
	size_t len;
	int done;
};

struct kbuf {
	struct ls_buffer base;
	uv_loop_t *loop;
	char *brokers, *topic;
	int nkv;
	struct ls_kv *kv;          /* owned copies of the kafka.* pairs */
	struct ls_buffer_window win;
	/* producer */
	int producer_open, failed, perr_pending;
	struct ls_err perr;
	struct kclient p;
	rd_kafka_topic_t *rkt;
	struct ls_buffer_producer_cb pcb;
	struct kslot *ring;        /* win.max_records slots, by append number */
	uint64_t head_n, tail_n;   /* first not durable, next to append */
	uint64_t durable;
	uv_timer_t close_timer;
	int timer_open;
	/* readers and close */
	struct kreader *readers;
	int closing, producer_done;
	int pending;               /* things still to free before close_cb */
	ls_buffer_close_cb close_cb;
	void *close_arg;
};

static struct kbuf *of(struct ls_buffer *b)
{
	return (struct kbuf *)b;
}

/* ---- configuration ------------------------------------------------------ */

enum kind { PRODUCER, CONSUMER };

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
		    int user, struct ls_err *err)
{
	char errstr[256];
	if (rd_kafka_conf_set(conf, key, value, errstr, sizeof errstr) ==
	    RD_KAFKA_CONF_OK)
		return 0;
	return ls_err_set(err, false, "[buffer] %s%s: %s", user ? "kafka." : "",
			  key, errstr);
}

/* Refuses user settings that would let a record count as durable before
 * every in-sync replica has it (contract point 1). */
static int check_user_kv(const struct ls_kv *kv, struct ls_err *err)
{
	if ((!strcmp(kv->key, "acks") || !strcmp(kv->key,
	     "request.required.acks")) && strcmp(kv->value, "all") &&
	    strcmp(kv->value, "-1"))
		return ls_err_set(err, false, "[buffer] kafka.%s: must be \"all\" "
				  "(a change is durable only on every in-sync "
				  "replica), not \"%s\"", kv->key, kv->value);
	if (!strcmp(kv->key, "enable.idempotence") &&
	    strcmp(kv->value, "true"))
		return ls_err_set(err, false, "[buffer] kafka.enable.idempotence: "
				  "must be true (keeps order and avoids "
				  "duplicates across retries)");
	return 0;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
		   const char *buf)
{
	if (level < LS_LOG_ERROR)
		level = LS_LOG_ERROR;
	ls_log((enum ls_log_level)level, "kafka %s: %s: %s", rd_kafka_name(rk),
	       fac, buf);
}

/* Builds a fresh conf for one handle: lockstep's defaults, then the user's
 * kafka.* pairs, then the settings lockstep depends on. */
static rd_kafka_conf_t *make_conf(const struct kbuf *kb, enum kind kind,
				  const char *group, struct ls_err *err)
{
	/* linger 25 ms: under a steady pgbench load, 15% less lockstepd CPU
	 * per change than 5 ms (bench pg_steady: 34.5 vs 40.8 s per million)
	 * for ~6 ms more median lag; a user's kafka.linger.ms overrides it */
	static const char *const pdef[][2] = {
		{ "compression.type", "lz4" }, { "linger.ms", "25" },
		{ "acks", "all" }, { "enable.idempotence", "true" },
	};
	/* A short fetch wait: the broker answers an empty fetch after 20 ms
	 * instead of 500 ms, which otherwise dominates end-to-end lag on a
	 * lightly loaded topic. */
	static const char *const cdef[][2] = {
		{ "queued.max.messages.kbytes", "16384" }, { "fetch.wait.max.ms", "20" },
	};
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	int rc = conf_set(conf, "bootstrap.servers", kb->brokers, 0, err);
	for (size_t i = 0; rc == 0 && kind == PRODUCER &&
	     i < sizeof pdef / sizeof pdef[0]; i++)
		rc = conf_set(conf, pdef[i][0], pdef[i][1], 0, err);
	for (size_t i = 0; rc == 0 && kind == CONSUMER &&
	     i < sizeof cdef / sizeof cdef[0]; i++)
		rc = conf_set(conf, cdef[i][0], cdef[i][1], 0, err);
	for (int i = 0; rc == 0 && i < kb->nkv; i++) {
		rc = check_user_kv(&kb->kv[i], err);
		if (rc == 0)
			rc = conf_set(conf, kb->kv[i].key, kb->kv[i].value, 1, err);
	}
	if (rc == 0)
		rc = conf_set(conf, "log.queue", "true", 0, err);
	if (rc == 0 && kind == CONSUMER) {
		rc = conf_set(conf, "group.id", group, 0, err);
		if (rc == 0)
			rc = conf_set(conf, "enable.auto.commit", "false", 0, err);
		if (rc == 0)
			rc = conf_set(conf, "enable.auto.offset.store", "false", 0, err);
		if (rc == 0)
			rc = conf_set(conf, "auto.offset.reset", "error", 0, err);
	}
	if (rc < 0) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_conf_set_log_cb(conf, log_cb);
	return conf;
}

/* ---- loop wiring shared by producer and readers --------------------------- */

static void eventfd_clear(int fd)
{
	uint64_t v;
	while (read(fd, &v, sizeof v) > 0)
		;
}

/* Creates rk from conf (taken), wires its queues to an eventfd on a
 * uv_poll_t that calls on_ready with data. */
static int client_open(struct kclient *c, uv_loop_t *loop, enum kind kind,
		       rd_kafka_conf_t *conf, uv_poll_cb on_ready,
		       void (*on_closed)(void *), void *data, const char *what,
		       struct ls_err *err)
{
	char errstr[256];
	static const uint64_t one = 1;
	c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->efd < 0) {
		rd_kafka_conf_destroy(conf);
		return ls_err_set(err, true, "kafka %s: eventfd: %s", what,
				  strerror(errno));
	}
	c->rk = rd_kafka_new(kind == PRODUCER ? RD_KAFKA_PRODUCER :
			     RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
	if (c->rk == NULL) {
		rd_kafka_conf_destroy(conf);
		close(c->efd);
		return ls_err_set(err, false, "kafka %s: %s", what, errstr);
	}
	rd_kafka_set_log_queue(c->rk, NULL);
	c->mainq = rd_kafka_queue_get_main(c->rk);
	rd_kafka_queue_io_event_enable(c->mainq, c->efd, &one, sizeof one);
	if (kind == CONSUMER) {
		c->cq = rd_kafka_queue_get_consumer(c->rk);
		rd_kafka_queue_io_event_enable(c->cq, c->efd, &one, sizeof one);
	}
	uv_poll_init(loop, &c->poll, c->efd);
	uv_idle_init(loop, &c->idle);
	c->poll.data = data;
	c->idle.data = data;
	c->open_handles = 2;
	c->on_closed = on_closed;
	c->owner = data;
	uv_poll_start(&c->poll, UV_READABLE, on_ready);
	return 0;
}

/* Unhooks the queues from the eventfd; rk itself is destroyed later. */
static void client_unhook(struct kclient *c)
{
	if (c->cq) {
		rd_kafka_queue_io_event_enable(c->cq, -1, NULL, 0);
		rd_kafka_queue_destroy(c->cq);
		c->cq = NULL;
	}
	if (c->mainq) {
		rd_kafka_queue_io_event_enable(c->mainq, -1, NULL, 0);
		rd_kafka_queue_destroy(c->mainq);
		c->mainq = NULL;
	}
}

static void kb_unref(struct kbuf *kb);
static void reader_freed(void *owner);
static void producer_closed(void *owner);

/* ---- producer --------------------------------------------------------------- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	struct kbuf *kb = opaque;
	uint64_t n = (uint64_t)(uintptr_t)m->_private;
	if (n < kb->head_n || n >= kb->tail_n)
		return;            /* not ours any more (after a failure) */
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		kb->ring[n % kb->win.max_records].done = 1;
		return;
	}
	if (!kb->perr_pending && !kb->failed) {
		kb->perr_pending = 1;
		ls_err_set(&kb->perr, true, "kafka topic %s partition 0: delivery "
			   "of record %" PRIu64 " failed: %s", kb->topic,
			   kb->ring[n % kb->win.max_records].seq,
			   rd_kafka_err2str(m->err));
	}
}

static void error_cb(rd_kafka_t *rk, int code, const char *reason,
		     void *opaque)
{
	struct kbuf *kb = opaque;
	char fatal[256];
	if (code != RD_KAFKA_RESP_ERR__FATAL) {
		/* librdkafka retries these (broker down, transport) itself and
		 * has logged the details through log_cb already. */
		if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
			ls_warn("kafka %s: %s", rd_kafka_name(rk), reason);
		else
			ls_debug("kafka %s: %s", rd_kafka_name(rk), reason);
		return;
	}
	rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
	if (rd_kafka_type(rk) != RD_KAFKA_PRODUCER || kb == NULL)
		return;
	if (!kb->perr_pending && !kb->failed) {
		kb->perr_pending = 1;
		ls_err_set(&kb->perr, false, "kafka topic %s: fatal producer error "
			   "%s: %s", kb->topic, rd_kafka_err2name(ferr), fatal);
	}
}

static void producer_finish(struct kbuf *kb);

/* Reports what the delivery reports decided: an error once, else durable
 * records from the head of the ring in append order.  Once the buffer is
 * closing nobody is told: the producer's owner (the capture, and the
 * source it acknowledges to) is already gone; what is delivered meanwhile
 * is re-read after a restart and skipped by the targets' checkpoints. */
static void producer_emit(struct kbuf *kb)
{
	bool tell = !kb->closing;
	if (kb->perr_pending && !kb->failed) {
		kb->failed = 1;
		kb->perr_pending = 0;
		if (tell && kb->pcb.on_error)
			kb->pcb.on_error(kb->pcb.ctx, &kb->perr);
	}
	while (!kb->failed && kb->head_n < kb->tail_n) {
		struct kslot *s = &kb->ring[kb->head_n % kb->win.max_records];
		if (!s->done)
			break;
		kb->head_n++;
		kb->durable++;
		ls_buffer_window_release(&kb->win, s->len);
		if (tell && kb->pcb.on_durable)
			kb->pcb.on_durable(kb->pcb.ctx, s->seq);
	}
	if (!kb->closing && !kb->failed &&
	    ls_buffer_window_take_writable(&kb->win) && kb->pcb.on_writable)
		kb->pcb.on_writable(kb->pcb.ctx);
}

static void producer_ready(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	struct kbuf *kb = h->data;
	if (kb->producer_done)
		return;
	eventfd_clear(kb->p.efd);
	while (rd_kafka_poll(kb->p.rk, 0) > 0)
		;
	producer_emit(kb);
	if (kb->closing && !kb->producer_done &&
	    (kb->failed || kb->head_n == kb->tail_n))
		producer_finish(kb);
}

static int kbuf_open_producer(struct ls_buffer *b,
			      const struct ls_buffer_producer_cb *cb,
			      struct ls_err *err)
{
	struct kbuf *kb = of(b);
	if (kb->producer_open || kb->closing)
		return ls_err_set(err, false, "kafka buffer: producer already open "
				  "or buffer closing");
	rd_kafka_conf_t *conf = make_conf(kb, PRODUCER, NULL, err);
	if (conf == NULL)
		return -1;
	rd_kafka_conf_set_opaque(conf, kb);
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	if (client_open(&kb->p, kb->loop, PRODUCER, conf, producer_ready,
			producer_closed, kb, "producer", err) < 0)
		return -1;
	kb->rkt = rd_kafka_topic_new(kb->p.rk, kb->topic, NULL);
	kb->pcb = *cb;
	kb->producer_open = 1;
	kb->pending++;
	return 0;
}

static int kbuf_append(struct ls_buffer *b, const void *rec, size_t len,
		       uint64_t seq, struct ls_err *err)
{
	struct kbuf *kb = of(b);
	if (!kb->producer_open || kb->closing || kb->failed)
		return ls_err_set(err, false, "kafka buffer %s: cannot append: %s",
				  kb->topic, kb->failed ? "delivery failed" :
				  kb->closing ? "closing" : "no producer");
	if (ls_buffer_window_admit(&kb->win, len) == LS_BUFFER_FULL)
		return LS_BUFFER_FULL;
	uint64_t n = kb->tail_n;
	kb->ring[n % kb->win.max_records] = (struct kslot){ seq, len, 0 };
	rd_kafka_resp_err_t e = rd_kafka_producev(kb->p.rk,
		RD_KAFKA_V_RKT(kb->rkt), RD_KAFKA_V_PARTITION(0),
		RD_KAFKA_V_VALUE((void *)rec, len),
		RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		RD_KAFKA_V_OPAQUE((void *)(uintptr_t)n), RD_KAFKA_V_END);
	if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
		kb->tail_n++;
		return 0;
	}
	ls_buffer_window_release(&kb->win, len);
	if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
		kb->win.want_writable = 1;
		return LS_BUFFER_FULL;
	}
	return ls_err_set(err, e != RD_KAFKA_RESP_ERR__FATAL, "kafka topic %s: "
			  "produce: %s", kb->topic, rd_kafka_err2str(e));
}

/* ---- teardown: handles closed on the loop, rk destroyed off it ----------- */

static void destroy_work(uv_work_t *w)
{
	struct kclient *c = w->data;
	rd_kafka_destroy_flags(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	c->rk = NULL;
}

static void client_handle_closed(uv_handle_t *h);

static void client_destroyed(uv_work_t *w, int status)
{
	(void)status;
	struct kclient *c = w->data;
	c->work_busy = 0;
	close(c->efd);
	c->efd = -1;
	c->poll.data = c;
	c->idle.data = c;
	uv_close((uv_handle_t *)&c->poll, client_handle_closed);
	uv_close((uv_handle_t *)&c->idle, client_handle_closed);
}

/* Starts the teardown of c; the owner learns of its end through
 * client_handle_closed (open_handles reaching 0). */
static void client_close(struct kclient *c, uv_loop_t *loop)
{
	uv_poll_stop(&c->poll);
	uv_idle_stop(&c->idle);
	client_unhook(c);
	c->work.data = c;
	c->work_busy = 1;
	uv_queue_work(loop, &c->work, destroy_work, client_destroyed);
}

static void producer_closed(void *owner)
{
	kb_unref(owner);
}

static void client_handle_closed(uv_handle_t *h)
{
	struct kclient *c = h->data;
	if (--c->open_handles == 0)
		c->on_closed(c->owner);
}

static void close_timer_closed(uv_handle_t *h)
{
	kb_unref(h->data);
}

static void producer_finish(struct kbuf *kb)
{
	kb->producer_done = 1;
	if (kb->timer_open) {
		uv_timer_stop(&kb->close_timer);
		uv_close((uv_handle_t *)&kb->close_timer, close_timer_closed);
		kb->timer_open = 0;
	}
	if (kb->tail_n > kb->head_n)
		ls_warn("kafka topic %s: closing with %" PRIu64 " records not "
			"confirmed; the source re-reads them after restart",
			kb->topic, kb->tail_n - kb->head_n);
	rd_kafka_topic_destroy(kb->rkt);
	kb->rkt = NULL;
	client_close(&kb->p, kb->loop);
}

static void close_timeout(uv_timer_t *t)
{
	struct kbuf *kb = t->data;
	if (!kb->producer_done)
		producer_finish(kb);
}

/* ---- readers ------------------------------------------------------------- */

static struct kreader *reader_of(const struct ls_buffer_reader *r)
{
	return (struct kreader *)r;
}

static void reader_fail(struct kreader *r, const struct ls_err *e)
{
	r->failed = 1;
	if (!r->closed && r->cb.on_error)
		r->cb.on_error(r->cb.ctx, e);
}

static void gone_query(uv_work_t *w)
{
	struct kreader *r = w->data;
	r->q_err = rd_kafka_query_watermark_offsets(r->c.rk, r->kb->topic, 0,
						    &r->q_lo, &r->q_hi,
						    QUERY_TIMEOUT_MS);
}

static void reader_teardown(struct kreader *r);

/* Names the lost range, now that the broker told where the log starts. */
static void gone_answered(uv_work_t *w, int status)
{
	(void)status;
	struct kreader *r = w->data;
	r->c.work_busy = 0;
	if (r->closed) {
		reader_teardown(r);
		return;
	}
	struct ls_err e;
	const char *t = r->kb->topic;
	long long off = (long long)r->next_offset;
	if (r->q_err != RD_KAFKA_RESP_ERR_NO_ERROR)
		ls_err_set(&e, true, "topic %s partition 0: offset %lld is out of "
			   "range (%s); asking for the log's bounds failed: %s",
			   t, off, r->reason, rd_kafka_err2str(r->q_err));
	else if (off < r->q_lo)
		ls_err_set(&e, false, "topic %s partition 0: offsets %lld..%lld are "
			   "gone (log starts at %lld); the target's checkpoint is "
			   "older than the topic's retention", t, off,
			   (long long)r->q_lo - 1, (long long)r->q_lo);
	else if (off > r->q_hi)
		ls_err_set(&e, false, "topic %s partition 0: offset %lld is past the "
			   "end of the log (%lld); was the topic deleted and "
			   "recreated?", t, off, (long long)r->q_hi);
	else
		ls_err_set(&e, true, "topic %s partition 0: offset %lld: %s", t,
			   off, r->reason);
	reader_fail(r, &e);
}

static void reader_offset_lost(struct kreader *r, const char *reason)
{
	r->failed = 1;   /* nothing more is delivered, from now on */
	snprintf(r->reason, sizeof r->reason, "%s", reason);
	r->c.work.data = r;
	r->c.work_busy = 1;
	uv_queue_work(r->kb->loop, &r->c.work, gone_query, gone_answered);
}

/* Handles one consumer message; returns -1 when delivery must stop. */
static int reader_message(struct kreader *r, rd_kafka_message_t *m)
{
	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
		return 0;
	if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
	    m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
		reader_offset_lost(r, rd_kafka_message_errstr(m));
		return -1;
	}
	if (m->err) {
		ls_warn("kafka reader %s: %s", r->name,
			rd_kafka_message_errstr(m));
		return 0;
	}
	if (m->offset < r->next_offset)
		return 0;          /* already delivered (refetch) */
	if (m->offset > r->next_offset) {
		struct ls_err e;
		ls_err_set(&e, false, "topic %s partition 0: reader %s expected "
			   "offset %lld, got %lld: offsets in between are missing",
			   r->kb->topic, r->name, (long long)r->next_offset,
			   (long long)m->offset);
		reader_fail(r, &e);
		return -1;
	}
	r->next_offset = m->offset + 1;
	r->cb.on_record(r->cb.ctx, m->offset, m->payload, m->len);
	return 0;
}

static int reader_can_deliver(const struct kreader *r)
{
	return !r->paused && !r->failed && !r->closed && !r->kb->closing;
}

static void reader_idle(uv_idle_t *h);

static void reader_drain(struct kreader *r)
{
	eventfd_clear(r->c.efd);
	while (rd_kafka_poll(r->c.rk, 0) > 0)
		;
	int n = 0;
	while (reader_can_deliver(r)) {
		if (n++ == DRAIN_BUDGET) {
			uv_idle_start(&r->c.idle, reader_idle);
			return;
		}
		rd_kafka_message_t *m = rd_kafka_consumer_poll(r->c.rk, 0);
		if (m == NULL)
			break;
		int rc = reader_message(r, m);
		rd_kafka_message_destroy(m);
		if (rc < 0)
			break;
	}
}

static void reader_ready(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	reader_drain(h->data);
}

static void reader_idle(uv_idle_t *h)
{
	uv_idle_stop(h);
	reader_drain(h->data);
}

static int kbuf_open_reader(struct ls_buffer *b, const char *name,
			    int64_t offset, const struct ls_buffer_reader_cb *cb,
			    struct ls_buffer_reader **out, struct ls_err *err)
{
	struct kbuf *kb = of(b);
	if (kb->closing)
		return ls_err_set(err, false, "kafka buffer: reader %s: buffer is "
				  "closing", name);
	struct kreader *r = calloc(1, sizeof *r);
	if (r == NULL)
		return ls_err_set(err, true, "kafka reader %s: out of memory", name);
	char group[300];
	snprintf(group, sizeof group, "lockstep.%s.%s", kb->topic, name);
	rd_kafka_conf_t *conf = make_conf(kb, CONSUMER, group, err);
	if (conf == NULL ||
	    client_open(&r->c, kb->loop, CONSUMER, conf, reader_ready,
			reader_freed, r, "reader", err) < 0) {
		free(r);
		return ls_err_prefix(err, "kafka reader %s", name);
	}
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, kb->topic, 0)->offset = offset;
	rd_kafka_resp_err_t e = rd_kafka_assign(r->c.rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	r->base.buffer = b;
	r->kb = kb;
	r->cb = *cb;
	r->next_offset = offset;
	snprintf(r->name, sizeof r->name, "%s", name);
	r->next = kb->readers;
	kb->readers = r;
	kb->pending++;
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		r->closed = 1;
		reader_teardown(r);
		return ls_err_set(err, false, "kafka reader %s: assign %s [0] at "
				  "%lld: %s", name, kb->topic, (long long)offset,
				  rd_kafka_err2str(e));
	}
	*out = &r->base;
	return 0;
}

static void kbuf_reader_pause(struct ls_buffer_reader *br)
{
	reader_of(br)->paused = 1;
}

static void kbuf_reader_resume(struct ls_buffer_reader *br)
{
	struct kreader *r = reader_of(br);
	r->paused = 0;
	if (reader_can_deliver(r))
		uv_idle_start(&r->c.idle, reader_idle);
}

/* The broker holds durability and the target's checkpoint holds the
 * offset: nothing to do. */
static int kbuf_reader_ack(struct ls_buffer_reader *br, int64_t offset,
			   struct ls_err *err)
{
	(void)br;
	(void)offset;
	(void)err;
	return 0;
}

static int64_t kbuf_reader_lag(const struct ls_buffer_reader *br)
{
	const struct kreader *r = reader_of(br);
	int64_t lo, hi;
	if (r->c.rk == NULL ||
	    rd_kafka_get_watermark_offsets(r->c.rk, r->kb->topic, 0, &lo, &hi) ||
	    hi < 0)
		return -1;
	return hi > r->next_offset ? hi - r->next_offset : 0;
}

static void reader_unlink(struct kreader *r)
{
	for (struct kreader **p = &r->kb->readers; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			return;
		}
}

/* Waits for a running gone query (it uses rk), then tears down. */
static void reader_teardown(struct kreader *r)
{
	if (r->c.work_busy)
		return;            /* gone_answered calls us again */
	reader_unlink(r);
	client_close(&r->c, r->kb->loop);
}

static void reader_freed(void *owner)
{
	struct kreader *r = owner;
	struct kbuf *kb = r->kb;
	free(r);
	kb_unref(kb);
}

static void kbuf_reader_close(struct ls_buffer_reader *br)
{
	struct kreader *r = reader_of(br);
	if (r->closed)
		return;
	r->closed = 1;
	reader_teardown(r);
}

/* ---- the buffer ---------------------------------------------------------- */

static void kbuf_stats(const struct ls_buffer *b, struct ls_buffer_stats *out)
{
	const struct kbuf *kb = (const struct kbuf *)b;
	*out = (struct ls_buffer_stats){
		.appended = kb->tail_n,
		.durable = kb->durable,
		.inflight_records = kb->win.records,
		.inflight_bytes = kb->win.bytes,
	};
}

static void kbuf_free(struct kbuf *kb)
{
	for (int i = 0; i < kb->nkv; i++) {
		free(kb->kv[i].key);
		free(kb->kv[i].value);
	}
	free(kb->kv);
	free(kb->ring);
	free(kb->brokers);
	free(kb->topic);
	free(kb);
}

static void kb_unref(struct kbuf *kb)
{
	if (--kb->pending > 0 || !kb->closing)
		return;
	ls_buffer_close_cb cb = kb->close_cb;
	void *arg = kb->close_arg;
	kbuf_free(kb);
	if (cb)
		cb(arg);
}

static void kbuf_close(struct ls_buffer *b, ls_buffer_close_cb cb, void *arg)
{
	struct kbuf *kb = of(b);
	if (kb->closing)
		return;
	kb->closing = 1;
	kb->close_cb = cb;
	kb->close_arg = arg;
	while (kb->readers) {
		struct kreader *r = kb->readers;
		kb->readers = r->next;
		r->closed = 1;
		if (!r->c.work_busy)
			client_close(&r->c, kb->loop);
	}
	if (kb->producer_open) {
		if (kb->failed || kb->head_n == kb->tail_n) {
			producer_finish(kb);
		} else {
			uv_timer_init(kb->loop, &kb->close_timer);
			kb->close_timer.data = kb;
			kb->timer_open = 1;
			kb->pending++;
			uv_timer_start(&kb->close_timer, close_timeout,
				       LS_KBUF_CLOSE_TIMEOUT_MS, 0);
		}
	}
	kb_unref(kb);              /* the buffer's own reference */
}

static const struct ls_buffer_ops kbuf_ops = {
	.name = "kafka",
	.open_producer = kbuf_open_producer,
	.append = kbuf_append,
	.open_reader = kbuf_open_reader,
	.reader_pause = kbuf_reader_pause,
	.reader_resume = kbuf_reader_resume,
	.reader_ack = kbuf_reader_ack,
	.reader_lag = kbuf_reader_lag,
	.reader_close = kbuf_reader_close,
	.stats = kbuf_stats,
	.close = kbuf_close,
};

static int copy_config(struct kbuf *kb, const struct ls_config_buffer *cfg,
		       struct ls_err *err)
{
	if (cfg->brokers == NULL || cfg->brokers[0] == '\0')
		return ls_err_set(err, false, "[buffer] brokers: required for "
				  "type = kafka");
	if (cfg->topic == NULL || cfg->topic[0] == '\0')
		return ls_err_set(err, false, "[buffer] topic: empty");
	kb->brokers = strdup(cfg->brokers);
	kb->topic = strdup(cfg->topic);
	kb->kv = calloc((size_t)cfg->nkafka + 1, sizeof *kb->kv);
	if (!kb->brokers || !kb->topic || !kb->kv)
		return ls_err_set(err, true, "kafka buffer: out of memory");
	for (int i = 0; i < cfg->nkafka; i++) {
		kb->kv[i].key = strdup(cfg->kafka[i].key);
		kb->kv[i].value = strdup(cfg->kafka[i].value);
		kb->nkv++;
		if (!kb->kv[i].key || !kb->kv[i].value)
			return ls_err_set(err, true, "kafka buffer: out of memory");
	}
	return 0;
}

int ls_kbuf_new(uv_loop_t *loop, const struct ls_config_buffer *cfg,
		const struct ls_buffer_limits *limits, struct ls_buffer **out,
		struct ls_err *err)
{
	*out = NULL;
	struct kbuf *kb = calloc(1, sizeof *kb);
	if (kb == NULL)
		return ls_err_set(err, true, "kafka buffer: out of memory");
	kb->base.ops = &kbuf_ops;
	kb->loop = loop;
	kb->pending = 1;
	kb->p.efd = -1;
	ls_buffer_window_init(&kb->win, limits);
	kb->ring = calloc(kb->win.max_records, sizeof *kb->ring);
	if (kb->ring == NULL) {
		kbuf_free(kb);
		return ls_err_set(err, true, "kafka buffer: out of memory");
	}
	if (copy_config(kb, cfg, err) < 0) {
		kbuf_free(kb);
		return -1;
	}
	/* Check every property now, for both client kinds. */
	for (int k = PRODUCER; k <= CONSUMER; k++) {
		rd_kafka_conf_t *conf = make_conf(kb, k, "lockstep.check", err);
		if (conf == NULL) {
			kbuf_free(kb);
			return -1;
		}
		rd_kafka_conf_destroy(conf);
	}
	*out = &kb->base;
	return 0;
}
