#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ls_metrics {
	char *buf;
	size_t len, cap;
	bool failed;
	/* family names written so far, to refuse a second header */
	char **families;
	size_t nfamilies;
};

struct provider {
	ls_metrics_provider fn;
	void *data;
};

struct ls_metrics_set {
	struct provider *v;
	size_t n;
};

struct ls_metrics *ls_metrics_new(void)
{
	struct ls_metrics *m = calloc(1, sizeof *m);
	if (m == NULL)
		return NULL;
	m->cap = 4096;
	m->buf = malloc(m->cap);
	if (m->buf == NULL) {
		free(m);
		return NULL;
	}
	m->buf[0] = '\0';
	return m;
}

void ls_metrics_free(struct ls_metrics *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nfamilies; i++)
		free(m->families[i]);
	free(m->families);
	free(m->buf);
	free(m);
}

static void put(struct ls_metrics *m, const char *s, size_t n)
{
	if (m->failed)
		return;
	if (m->len + n + 1 > m->cap) {
		size_t cap = m->cap;
		while (m->len + n + 1 > cap)
			cap *= 2;
		char *b = realloc(m->buf, cap);
		if (b == NULL) {
			m->failed = true;
			return;
		}
		m->buf = b;
		m->cap = cap;
	}
	memcpy(m->buf + m->len, s, n);
	m->len += n;
	m->buf[m->len] = '\0';
}

static void puts_(struct ls_metrics *m, const char *s)
{
	put(m, s, strlen(s));
}

bool ls_metrics_valid_name(const char *name)
{
	if (name == NULL || name[0] == '\0')
		return false;
	for (const char *p = name; *p; p++) {
		char c = *p;
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
		if (!alpha && !(p != name && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

/* Escapes in into out; `quote` also escapes double quotes (label values). */
static size_t escape(const char *in, char *out, size_t size, bool quote)
{
	size_t n = 0;
	for (const char *p = in; *p; p++) {
		char pair[2] = { '\\', 0 };
		size_t k = 1;
		if (*p == '\\')
			pair[1] = '\\', k = 2;
		else if (*p == '\n')
			pair[1] = 'n', k = 2;
		else if (*p == '"' && quote)
			pair[1] = '"', k = 2;
		else
			pair[0] = *p;
		for (size_t i = 0; i < k; i++, n++)
			if (n + 1 < size)
				out[n] = pair[i];
	}
	if (size > 0)
		out[n < size ? n : size - 1] = '\0';
	return n;
}

size_t ls_metrics_escape_label(const char *in, char *out, size_t size)
{
	return escape(in, out, size, true);
}

size_t ls_metrics_escape_help(const char *in, char *out, size_t size)
{
	return escape(in, out, size, false);
}

/* Writes escaped text through a small stack buffer, growing to the heap for
 * long values. */
static void put_escaped(struct ls_metrics *m, const char *s, bool quote)
{
	char small[256];
	size_t need = escape(s, small, sizeof small, quote);
	if (need < sizeof small) {
		put(m, small, need);
		return;
	}
	char *big = malloc(need + 1);
	if (big == NULL) {
		m->failed = true;
		return;
	}
	escape(s, big, need + 1, quote);
	put(m, big, need);
	free(big);
}

void ls_metrics_family(struct ls_metrics *m, const char *name, const char *type,
		       const char *help)
{
	if (m == NULL || m->failed)
		return;
	if (!ls_metrics_valid_name(name) ||
	    (strcmp(type, "gauge") && strcmp(type, "counter") && strcmp(type, "untyped"))) {
		m->failed = true;
		return;
	}
	for (size_t i = 0; i < m->nfamilies; i++)
		if (strcmp(m->families[i], name) == 0) {
			m->failed = true;
			return;
		}
	char **f = realloc(m->families, (m->nfamilies + 1) * sizeof *f);
	if (f == NULL || (f[m->nfamilies] = strdup(name)) == NULL) {
		if (f != NULL)
			m->families = f;
		m->failed = true;
		return;
	}
	m->families = f;
	m->nfamilies++;
	puts_(m, "# HELP ");
	puts_(m, name);
	puts_(m, " ");
	put_escaped(m, help ? help : "", false);
	puts_(m, "\n# TYPE ");
	puts_(m, name);
	puts_(m, " ");
	puts_(m, type);
	puts_(m, "\n");
}

static void sample_head(struct ls_metrics *m, const char *name, const char *const *labels)
{
	if (!ls_metrics_valid_name(name)) {
		m->failed = true;
		return;
	}
	puts_(m, name);
	bool open = false;
	for (size_t i = 0; labels != NULL && labels[i] != NULL; i += 2) {
		if (labels[i + 1] == NULL)
			continue;
		if (!ls_metrics_valid_name(labels[i])) {
			m->failed = true;
			return;
		}
		puts_(m, open ? "," : "{");
		open = true;
		puts_(m, labels[i]);
		puts_(m, "=\"");
		put_escaped(m, labels[i + 1], true);
		puts_(m, "\"");
	}
	if (open)
		puts_(m, "}");
	puts_(m, " ");
}

void ls_metrics_sample(struct ls_metrics *m, const char *name, const char *const *labels,
		       double value)
{
	if (m == NULL || m->failed)
		return;
	sample_head(m, name, labels);
	char b[40];
	if (isnan(value))
		snprintf(b, sizeof b, "NaN");
	else if (isinf(value))
		snprintf(b, sizeof b, "%sInf", value > 0 ? "+" : "-");
	else
		snprintf(b, sizeof b, "%.17g", value);
	puts_(m, b);
	puts_(m, "\n");
}

void ls_metrics_sample_uint(struct ls_metrics *m, const char *name,
			    const char *const *labels, uint64_t value)
{
	if (m == NULL || m->failed)
		return;
	sample_head(m, name, labels);
	char b[24];
	snprintf(b, sizeof b, "%" PRIu64, value);
	puts_(m, b);
	puts_(m, "\n");
}

const char *ls_metrics_data(const struct ls_metrics *m, size_t *len)
{
	if (m == NULL || m->failed)
		return NULL;
	if (len != NULL)
		*len = m->len;
	return m->buf;
}

/* ---- the route ----------------------------------------------------------- */

struct ls_metrics_set *ls_metrics_set_new(void)
{
	return calloc(1, sizeof(struct ls_metrics_set));
}

void ls_metrics_set_free(struct ls_metrics_set *s)
{
	if (s == NULL)
		return;
	free(s->v);
	free(s);
}

int ls_metrics_set_add(struct ls_metrics_set *s, ls_metrics_provider fn, void *data)
{
	struct provider *v = realloc(s->v, (s->n + 1) * sizeof *v);
	if (v == NULL)
		return -1;
	s->v = v;
	s->v[s->n].fn = fn;
	s->v[s->n].data = data;
	s->n++;
	return 0;
}

static int handle_metrics(const struct ls_control_request *req,
			  struct ls_control_response *resp, void *data, struct ls_err *err)
{
	struct ls_metrics_set *s = data;
	(void)req;
	struct ls_metrics *m = ls_metrics_new();
	if (m == NULL)
		return ls_err_set(err, false, "out of memory");
	for (size_t i = 0; i < s->n; i++)
		s->v[i].fn(m, s->v[i].data);
	size_t len;
	const char *text = ls_metrics_data(m, &len);
	if (text == NULL) {
		ls_metrics_free(m);
		return ls_err_set(err, false, "metrics: out of memory or a bad metric name");
	}
	ls_control_reply_content_type(resp, "text/plain; version=0.0.4; charset=utf-8");
	ls_control_reply_text(resp, "%s", text);
	ls_metrics_free(m);
	return 0;
}

int ls_metrics_set_route(struct ls_metrics_set *s, struct ls_control *ctl)
{
	return ls_control_route(ctl, "GET", "/metrics", LS_CONTROL_READ, handle_metrics, s,
				"Prometheus metrics (text format 0.0.4).");
}
