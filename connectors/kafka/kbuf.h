/* kbuf — the Kafka buffer: lib/buffer.h's contract on top of librdkafka.
 *
 * One topic, partition 0, total order.  The producer is idempotent with
 * acks=all (max.in.flight stays at librdkafka's idempotent limit of 5, which
 * keeps order), so a delivery report means the record is on every in-sync
 * replica and on_durable may let the source acknowledge it.  Each reader is
 * its own consumer handle that assigns partition 0 at the requested offset:
 * no group membership, no rebalancing, nothing committed to Kafka (the
 * offset lives in the target's checkpoint); auto.offset.reset=error turns a
 * retention-dropped offset into an error that names the lost range.
 *
 * librdkafka's threads do the network.  Each handle's queues signal an
 * eventfd (rd_kafka_queue_io_event_enable) that a uv_poll_t watches; the loop
 * drains every ready event on each wake-up.  Nothing blocks the loop: the
 * offset-gone diagnosis (a broker round trip) and rd_kafka_destroy run on
 * libuv's thread pool.
 *
 * Config: [buffer] brokers and topic; every "kafka.<prop>" passes through to
 * rd_kafka_conf_set, and an invalid one is an error naming the key.
 * Producer defaults: compression.type=lz4, linger.ms=5, acks=all,
 * enable.idempotence=true.  Consumer default: queued.max.messages.kbytes=
 * 16384 (bounded prefetch).  Settings that would break "nothing lost"
 * (acks other than all/-1, enable.idempotence=false) are refused; the
 * consumer's group.id, enable.auto.commit, enable.auto.offset.store and
 * auto.offset.reset are lockstep's.
 *
 * Pause stops draining the reader's queue (no rd_kafka_pause_partitions,
 * which would drop and refetch what is queued): librdkafka's fetcher stops
 * on its own once queued.max.messages.kbytes is queued.  Opening a reader
 * calls rd_kafka_assign, a round trip to librdkafka's own thread (no
 * network).
 *
 * Close: appends stop, in-flight records get up to LS_KBUF_CLOSE_TIMEOUT_MS
 * of polling to be delivered (their on_durable still fires), then the
 * handles are destroyed off the loop.
 */
#ifndef LS_KBUF_H
#define LS_KBUF_H

#include <uv.h>

#include "buffer.h"
#include "config.h"
#include "err.h"

#define LS_KBUF_CLOSE_TIMEOUT_MS 10000

/* Creates a Kafka buffer on loop from cfg (borrowed for the call: brokers,
 * topic, kafka pass-through).  limits may be NULL (defaults).  Checks every
 * property now, so a bad config fails here, before anything connects.  No
 * client exists until ls_buffer_open_producer / ls_buffer_open_reader.
 * Free with ls_buffer_close. */
int ls_kbuf_new(uv_loop_t *loop, const struct ls_config_buffer *cfg,
		const struct ls_buffer_limits *limits, struct ls_buffer **out,
		struct ls_err *err) __attribute__((warn_unused_result));

#endif
