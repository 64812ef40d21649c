/* metrics — Prometheus text exposition (format 0.0.4) and the GET /metrics
 * route.
 *
 * A writer collects families and samples into one text body:
 *
 *   # HELP lockstep_apply_lag_seconds Age of the oldest ... (help escaped)
 *   # TYPE lockstep_apply_lag_seconds gauge
 *   lockstep_apply_lag_seconds{pipeline="shop",target="new"} 0.25
 *
 * Label values are escaped (backslash, double quote, newline), help text
 * too (backslash, newline); metric and label names are checked against
 * [a-zA-Z_:][a-zA-Z0-9_:]* and a bad one makes the writer fail (sticky,
 * like lib/json): ls_metrics_data() then returns NULL.  Each family is
 * written once; its samples follow its header.
 *
 * The route: components add providers to a ls_metrics_set (each writes its
 * families into the writer); ls_metrics_set_route() serves them all on
 * GET /metrics, in the order they were added, as text/plain; version=0.0.4.
 * The control server's TCP listener ([control] metrics_listen) answers the
 * same route, so Prometheus can scrape it.
 */
#ifndef LS_METRICS_H
#define LS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control.h"

struct ls_metrics;

struct ls_metrics *ls_metrics_new(void);     /* NULL when out of memory */
void ls_metrics_free(struct ls_metrics *m);  /* NULL is a no-op */

/* Starts a family: type is "gauge", "counter" or "untyped".  Writing the
 * same family name twice is an error. */
void ls_metrics_family(struct ls_metrics *m, const char *name, const char *type,
		       const char *help);

/* One sample of the current family; name is the sample's full name (the
 * family's, for the gauges and counters lockstep writes).  labels: NULL or a NULL-terminated list of name, value
 * pairs; a pair whose value is NULL is left out.  NaN and infinities are
 * written as Prometheus spells them ("NaN", "+Inf", "-Inf"). */
void ls_metrics_sample(struct ls_metrics *m, const char *name, const char *const *labels,
		       double value);
/* The same for integers, written exactly (no rounding above 2^53). */
void ls_metrics_sample_uint(struct ls_metrics *m, const char *name,
			    const char *const *labels, uint64_t value);

/* The text so far (NUL-terminated, length in *len if non-NULL), valid until
 * the next write or free; NULL after an error. */
const char *ls_metrics_data(const struct ls_metrics *m, size_t *len);

/* Escapes a label value into out (size bytes, always NUL-terminated when
 * size > 0): \ -> \\, " -> \", newline -> \n.  Returns the length the full
 * escaped text needs (like snprintf), so a result >= size means cut. */
size_t ls_metrics_escape_label(const char *in, char *out, size_t size);
/* The same for help text: \ -> \\, newline -> \n. */
size_t ls_metrics_escape_help(const char *in, char *out, size_t size);
/* Whether name is a valid metric (or label) name. */
bool ls_metrics_valid_name(const char *name);

/* ---- the route ----------------------------------------------------------- */

typedef void (*ls_metrics_provider)(struct ls_metrics *m, void *data);

struct ls_metrics_set;

struct ls_metrics_set *ls_metrics_set_new(void);
void ls_metrics_set_free(struct ls_metrics_set *s);  /* NULL is a no-op */
/* data is borrowed and must outlive the set.  Returns -1 out of memory. */
int ls_metrics_set_add(struct ls_metrics_set *s, ls_metrics_provider fn, void *data);
/* Registers GET /metrics (READ access) answering with every provider's
 * families; s is borrowed and must outlive ctl. */
int ls_metrics_set_route(struct ls_metrics_set *s, struct ls_control *ctl);

#endif
