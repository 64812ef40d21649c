/* my_setup — connection parameters, readiness, resume check and table
 * selection for the MySQL/MariaDB source.  See my_setup.h. */
#include "connectors/mysql/my_setup.h"
#include "connectors/mysql/my_sql.h"

#include <ctype.h>
#include <errmsg.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers -------------------------------------------------------------- */

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

/* A client error code that means the connection (not the statement)
 * failed: retrying later may help. */
static bool net_errno(unsigned e)
{
	return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST ||
	       e == CR_CONN_HOST_ERROR || e == CR_CONNECTION_ERROR ||
	       e == CR_SERVER_LOST_EXTENDED || e == 1053 /* shutdown */ ||
	       e == 1927 /* connection killed */;
}

static int my_fail(MYSQL *m, struct ls_err *err, const char *what)
{
	return ls_err_set(err, net_errno(mysql_errno(m)), "%s: %s (error %u)",
		what, mysql_error(m), mysql_errno(m));
}

/* Runs sql and stores its whole result (NULL with err on failure). */
static MYSQL_RES *query(MYSQL *m, const char *sql, struct ls_err *err)
{
	if (mysql_real_query(m, sql, strlen(sql)) != 0) {
		my_fail(m, err, sql);
		return NULL;
	}
	MYSQL_RES *r = mysql_store_result(m);
	if (r == NULL)
		my_fail(m, err, sql);
	return r;
}

int ls_mysetup_query1(MYSQL *m, const char *sql, char **out, struct ls_err *err)
{
	MYSQL_RES *r = query(m, sql, err);
	*out = NULL;
	if (r == NULL)
		return -1;
	MYSQL_ROW row = mysql_fetch_row(r);
	if (row != NULL && mysql_num_fields(r) > 0 && row[0] != NULL)
		*out = strdup(row[0]);
	mysql_free_result(r);
	return 0;
}

/* ---- connection parameters ------------------------------------------------------ */

/* One parser for MySQL connection strings: my_sql's (the target's), which
 * knows two keys more; a source has no use for them, so they stay unknown
 * here. */
int ls_mysetup_conn_parse(const char *s, struct ls_myconn *out, struct ls_err *err)
{
	memset(out, 0, sizeof *out);
	out->port = 3306;
	struct ls_mysql_conninfo ci;
	if (ls_mysql_conninfo_parse(s, &ci, err) < 0)
		return -1;
	if (ci.socket || ci.connect_timeout) {
		const char *key = ci.socket ? "socket" : "connect_timeout";
		ls_mysql_conninfo_free(&ci);
		return ls_err_set(err, false, "mysql connection string: unknown key \"%s\" "
				  "(known: host, port, user, password, database)", key);
	}
	if (ci.port)
		out->port = ci.port;
	out->host = ci.host ? ci.host : strdup("127.0.0.1");
	out->user = ci.user ? ci.user : strdup("");
	out->password = ci.password ? ci.password : strdup("");
	out->database = ci.database ? ci.database : strdup("");
	if (!out->host || !out->user || !out->password || !out->database)
		return ls_err_set(err, false, "out of memory");
	return 0;
}

void ls_mysetup_conn_free(struct ls_myconn *c)
{
	if (c == NULL)
		return;
	free(c->host);
	free(c->user);
	if (c->password)
		memset(c->password, 0, strlen(c->password));
	free(c->password);
	free(c->database);
	memset(c, 0, sizeof *c);
}

MYSQL *ls_mysetup_connect(const struct ls_myconn *c, unsigned timeout_s,
	struct ls_err *err)
{
	MYSQL *m = mysql_init(NULL);
	unsigned ct = timeout_s ? timeout_s : 10;
	unsigned proto = MYSQL_PROTOCOL_TCP;
	if (m == NULL) {
		ls_err_set(err, false, "out of memory");
		return NULL;
	}
	mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
	if (timeout_s) {
		mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &timeout_s);
		mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &timeout_s);
	}
	if (strcmp(c->host, "localhost") != 0)
		mysql_options(m, MYSQL_OPT_PROTOCOL, &proto);
	mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	mysql_options(m, MYSQL_INIT_COMMAND, "SET time_zone = '+00:00'");
	if (!mysql_real_connect(m, c->host, c->user, c->password,
			c->database[0] ? c->database : NULL, c->port, NULL, 0)) {
		ls_err_set(err, net_errno(mysql_errno(m)) || mysql_errno(m) == 2002 ||
			mysql_errno(m) == 2003, "cannot connect to MySQL at %s:%u "
			"as \"%s\": %s (error %u)", c->host, c->port, c->user,
			mysql_error(m), mysql_errno(m));
		mysql_close(m);
		return NULL;
	}
	return m;
}

/* ---- readiness ------------------------------------------------------------------- */

/* Appends one problem to the list in buf. */
static void add_problem(char *buf, size_t size, int *n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void add_problem(char *buf, size_t size, int *n, const char *fmt, ...)
{
	size_t len = strlen(buf);
	va_list ap;
	if (len + 3 >= size)
		return;
	if (*n > 0) {
		strcpy(buf + len, "; ");
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(buf + len, size - len, fmt, ap);
	va_end(ap);
	(*n)++;
}

/* True when the comma-separated privilege list (text between "GRANT " and
 * " ON ") holds priv as a whole item. */
static bool has_priv(const char *list, size_t len, const char *priv)
{
	size_t pl = strlen(priv);
	const char *p = list, *end = list + len;
	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *e = comma ? comma : end;
		while (p < e && *p == ' ')
			p++;
		if ((size_t)(e - p) == pl && strncasecmp(p, priv, pl) == 0)
			return true;
		p = comma ? comma + 1 : end;
	}
	return false;
}

/* Looks through SHOW GRANTS for global REPLICATION SLAVE and REPLICATION
 * CLIENT (or its MariaDB 10.5+ name BINLOG MONITOR). */
static int check_grants(MYSQL *m, bool *slave, bool *client, struct ls_err *err)
{
	MYSQL_RES *r = query(m, "SHOW GRANTS", err);
	MYSQL_ROW row;
	*slave = *client = false;
	if (r == NULL)
		return -1;
	while ((row = mysql_fetch_row(r)) != NULL) {
		const char *g = row[0], *on;
		if (g == NULL || strncasecmp(g, "GRANT ", 6) != 0 ||
		    (on = strstr(g, " ON *.* TO ")) == NULL)
			continue;
		const char *list = g + 6;
		size_t len = (size_t)(on - list);
		if (has_priv(list, len, "ALL PRIVILEGES") ||
		    has_priv(list, len, "ALL"))
			*slave = *client = true;
		if (has_priv(list, len, "REPLICATION SLAVE"))
			*slave = true;
		if (has_priv(list, len, "REPLICATION CLIENT") ||
		    has_priv(list, len, "BINLOG MONITOR"))
			*client = true;
	}
	mysql_free_result(r);
	return 0;
}

int ls_mysetup_check_ready(MYSQL *m, struct ls_myserver *info, struct ls_err *err)
{
	struct ls_myserver tmp;
	char probs[LS_ERR_MSG_MAX] = "";
	int n = 0;
	bool slave, client;
	MYSQL_RES *r;
	MYSQL_ROW row;

	if (info == NULL)
		info = &tmp;
	memset(info, 0, sizeof *info);
	r = query(m, "SELECT VERSION(), @@log_bin, @@binlog_format, "
		"@@binlog_row_image, @@server_id, @@binlog_checksum", err);
	if (r == NULL)
		return ls_err_prefix(err, "readiness check");
	row = mysql_fetch_row(r);
	if (row == NULL || mysql_num_fields(r) < 6) {
		mysql_free_result(r);
		return ls_err_set(err, false, "readiness check: no answer to the "
			"server variables query");
	}
	snprintf(info->version, sizeof info->version, "%s", row[0] ? row[0] : "");
	info->mariadb = strstr(info->version, "MariaDB") != NULL;
	info->server_id = row[4] ? (uint32_t)strtoul(row[4], NULL, 10) : 0;
	snprintf(info->binlog_checksum, sizeof info->binlog_checksum, "%s",
		row[5] ? row[5] : "NONE");
	if (row[1] == NULL || strcmp(row[1], "1") != 0)
		add_problem(probs, sizeof probs, &n, "the binary log is off: set "
			"log_bin (e.g. log_bin=binlog) in the server config and "
			"restart");
	if (row[2] == NULL || strcasecmp(row[2], "ROW") != 0)
		add_problem(probs, sizeof probs, &n, "binlog_format is %s, need "
			"ROW: SET GLOBAL binlog_format = 'ROW' and binlog_format=ROW "
			"in the server config", row[2] ? row[2] : "unset");
	if (row[3] == NULL || strcasecmp(row[3], "FULL") != 0)
		add_problem(probs, sizeof probs, &n, "binlog_row_image is %s, need "
			"FULL: SET GLOBAL binlog_row_image = 'FULL' and "
			"binlog_row_image=FULL in the server config",
			row[3] ? row[3] : "unset");
	if (info->server_id == 0)
		add_problem(probs, sizeof probs, &n, "server_id is 0: set a "
			"non-zero server_id in the server config");
	mysql_free_result(r);

	if (check_grants(m, &slave, &client, err) != 0)
		return ls_err_prefix(err, "readiness check");
	if (!slave)
		add_problem(probs, sizeof probs, &n, "the user lacks REPLICATION "
			"SLAVE (needed to read the binlog): GRANT REPLICATION "
			"SLAVE ON *.* TO <user>");
	if (!client)
		add_problem(probs, sizeof probs, &n, "the user lacks REPLICATION "
			"CLIENT (BINLOG MONITOR on MariaDB): GRANT REPLICATION "
			"CLIENT ON *.* TO <user>");

	if (info->mariadb) {
		char *pos = NULL;
		struct ls_gtid_set set;
		if (ls_mysetup_query1(m, "SELECT @@gtid_binlog_pos", &pos, err) != 0)
			return ls_err_prefix(err, "readiness check");
		snprintf(info->gtid_pos, sizeof info->gtid_pos, "%s", pos ? pos : "");
		if (pos == NULL || ls_gtid_set_parse(pos, &set, NULL) != 0)
			add_problem(probs, sizeof probs, &n, "no usable GTID "
				"position (@@gtid_binlog_pos is \"%s\")",
				pos ? pos : "NULL");
		free(pos);
	} else {
		add_problem(probs, sizeof probs, &n, "server %s is not MariaDB: "
			"this source needs MariaDB GTIDs (MariaDB 10.5 or later)",
			info->version);
	}
	if (n > 0)
		return ls_err_set(err, false, "MySQL source not ready: %s", probs);
	return 0;
}

/* ---- resume check ---------------------------------------------------------------- */

/* The Gtid_list event's Info column: "[0-1-3,1-2-5]". */
static int parse_gtid_list(const char *info, struct ls_gtid_set *out,
			   struct ls_err *err)
{
	char buf[LS_POS_TEXT_MAX * 4];
	size_t len = strlen(info);
	if (len < 2 || info[0] != '[' || info[len - 1] != ']' || len - 2 >= sizeof buf)
		return ls_err_set(err, false, "unexpected Gtid_list \"%.64s\"", info);
	memcpy(buf, info + 1, len - 2);
	buf[len - 2] = '\0';
	return ls_gtid_set_parse(buf, out, err);
}

int ls_mysetup_check_resume(MYSQL *m, const struct ls_gtid_set *resume,
	struct ls_err *err)
{
	MYSQL_RES *r = query(m, "SHOW BINARY LOGS", err);
	MYSQL_ROW row;
	char oldest[LS_BINLOG_FILE_MAX], sql[LS_BINLOG_FILE_MAX + 64];
	struct ls_gtid_set purged;
	bool found = false;

	if (r == NULL)
		return ls_err_prefix(err, "resume check");
	row = mysql_fetch_row(r);
	if (row == NULL || row[0] == NULL || strlen(row[0]) >= sizeof oldest ||
	    strchr(row[0], '\'') != NULL) {
		mysql_free_result(r);
		return ls_err_set(err, false, "resume check: SHOW BINARY LOGS "
			"lists no usable file");
	}
	snprintf(oldest, sizeof oldest, "%s", row[0]);
	mysql_free_result(r);

	snprintf(sql, sizeof sql, "SHOW BINLOG EVENTS IN '%s' LIMIT 3", oldest);
	if ((r = query(m, sql, err)) == NULL)
		return ls_err_prefix(err, "resume check");
	ls_gtid_set_init(&purged);
	while ((row = mysql_fetch_row(r)) != NULL && !found) {
		if (row[2] == NULL || strcmp(row[2], "Gtid_list") != 0)
			continue;
		if (parse_gtid_list(row[5] ? row[5] : "", &purged, err) != 0) {
			mysql_free_result(r);
			return ls_err_prefix(err, "resume check: %s", oldest);
		}
		found = true;
	}
	mysql_free_result(r);
	if (!found)
		return ls_err_set(err, false, "resume check: no Gtid_list event at "
			"the start of %s", oldest);
	for (unsigned i = 0; i < purged.n; i++) {
		const struct ls_gtid *p = &purged.g[i];
		const struct ls_gtid *have = ls_gtid_set_find(resume, p->domain);
		if (have != NULL && have->seq >= p->seq)
			continue;
		char want[LS_POS_TEXT_MAX] = "", gone[LS_POS_TEXT_MAX] = "";
		ls_gtid_set_format(resume, want, sizeof want);
		ls_gtid_set_format(&purged, gone, sizeof gone);
		return ls_err_set(err, false, "binlog already purged past the needed "
			"position: resuming after \"%s\" needs domain %u from seq "
			"%llu, but the oldest binlog %s starts after %u-%u-%llu "
			"(purged up to \"%s\"); re-snapshot (drop the pipeline state) "
			"and raise binlog_expire_logs_seconds so the binlog outlives "
			"downtime", want, p->domain,
			(unsigned long long)(have ? have->seq + 1 : 1), oldest,
			p->domain, p->server, (unsigned long long)p->seq, gone);
	}
	return 0;
}

/* ---- patterns ------------------------------------------------------------------ */

/* Glob with '*' over [p, pe) against s. */
static bool glob(const char *p, const char *pe, const char *s)
{
	while (p < pe) {
		if (*p == '*') {
			p++;
			for (;;) {
				if (glob(p, pe, s))
					return true;
				if (*s == '\0')
					return false;
				s++;
			}
		}
		if (*s == '\0' || *p != *s)
			return false;
		p++;
		s++;
	}
	return *s == '\0';
}

static bool match_one(const char *b, const char *e, const char *schema,
		      const char *table)
{
	const char *dot = memchr(b, '.', (size_t)(e - b));
	if (dot == NULL)
		return false;
	return glob(b, dot, schema) && glob(dot + 1, e, table);
}

/* Calls fn on each trimmed pattern; stops when fn returns true. */
static bool each_pattern(const char *list, bool (*fn)(const char *, const char *,
	void *), void *ctx)
{
	const char *p = list;
	while (p && *p) {
		const char *comma = strchr(p, ','), *e = comma ? comma : p + strlen(p);
		const char *b = p;
		while (b < e && isspace((unsigned char)*b))
			b++;
		const char *t = e;
		while (t > b && isspace((unsigned char)t[-1]))
			t--;
		if (t > b && fn(b, t, ctx))
			return true;
		p = comma ? comma + 1 : NULL;
	}
	return false;
}

struct match_ctx {
	const char *schema, *table;
};

static bool match_cb(const char *b, const char *e, void *ctx)
{
	struct match_ctx *m = ctx;
	return match_one(b, e, m->schema, m->table);
}

bool ls_mysetup_pattern_match(const char *patterns, const char *schema,
	const char *table)
{
	struct match_ctx m = { schema, table };
	return each_pattern(patterns, match_cb, &m);
}

/* ---- enum/set members, type codes -------------------------------------------- */

int ls_mysetup_parse_members(const char *ct, char ***members)
{
	*members = NULL;
	const char *open = strchr(ct, '(');
	if ((strncasecmp(ct, "enum(", 5) != 0 && strncasecmp(ct, "set(", 4) != 0) ||
	    open == NULL)
		return 0;
	const char *p = open + 1;
	int n = 0;
	char **v = NULL;
	while (*p == '\'') {
		size_t len = 0;
		char *s = malloc(strlen(p) + 1), **nv;
		if (s == NULL)
			goto bad;
		if ((nv = realloc(v, sizeof *v * (size_t)(n + 1))) == NULL)
			goto bad_s;
		v = nv;
		p++;
		for (;;) {
			if (*p == '\0')
				goto bad_s;
			if (*p == '\'' && p[1] == '\'') {
				s[len++] = '\'';
				p += 2;
			} else if (*p == '\\' && p[1]) {
				s[len++] = p[1];
				p += 2;
			} else if (*p == '\'') {
				p++;
				break;
			} else {
				s[len++] = *p++;
			}
		}
		s[len] = '\0';
		v[n++] = s;
		if (*p == ',')
			p++;
		continue;
bad_s:
		free(s);
		goto bad;
	}
	if (*p != ')' || n == 0)
		goto bad;
	*members = v;
	return n;
bad:
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return -1;
}

static const struct {
	const char *name;
	uint8_t code;
} TYPE_CODES[] = {
	{ "tinyint", MYSQL_TYPE_TINY }, { "smallint", MYSQL_TYPE_SHORT },
	{ "mediumint", MYSQL_TYPE_INT24 }, { "int", MYSQL_TYPE_LONG },
	{ "integer", MYSQL_TYPE_LONG }, { "bigint", MYSQL_TYPE_LONGLONG },
	{ "decimal", MYSQL_TYPE_NEWDECIMAL }, { "numeric", MYSQL_TYPE_NEWDECIMAL },
	{ "float", MYSQL_TYPE_FLOAT }, { "double", MYSQL_TYPE_DOUBLE },
	{ "bit", MYSQL_TYPE_BIT }, { "date", MYSQL_TYPE_DATE },
	{ "datetime", MYSQL_TYPE_DATETIME2 }, { "timestamp", MYSQL_TYPE_TIMESTAMP2 },
	{ "time", MYSQL_TYPE_TIME2 }, { "year", MYSQL_TYPE_YEAR },
	{ "char", MYSQL_TYPE_STRING }, { "binary", MYSQL_TYPE_STRING },
	{ "varchar", MYSQL_TYPE_VARCHAR }, { "varbinary", MYSQL_TYPE_VARCHAR },
	{ "tinytext", MYSQL_TYPE_BLOB }, { "text", MYSQL_TYPE_BLOB },
	{ "mediumtext", MYSQL_TYPE_BLOB }, { "longtext", MYSQL_TYPE_BLOB },
	{ "tinyblob", MYSQL_TYPE_BLOB }, { "blob", MYSQL_TYPE_BLOB },
	{ "mediumblob", MYSQL_TYPE_BLOB }, { "longblob", MYSQL_TYPE_BLOB },
	{ "json", MYSQL_TYPE_BLOB },   /* MariaDB: LONGTEXT with a check */
	{ "enum", MYSQL_TYPE_ENUM }, { "set", MYSQL_TYPE_SET },
	{ "geometry", MYSQL_TYPE_GEOMETRY }, { "point", MYSQL_TYPE_GEOMETRY },
	{ "linestring", MYSQL_TYPE_GEOMETRY }, { "polygon", MYSQL_TYPE_GEOMETRY },
	{ "multipoint", MYSQL_TYPE_GEOMETRY },
	{ "multilinestring", MYSQL_TYPE_GEOMETRY },
	{ "multipolygon", MYSQL_TYPE_GEOMETRY },
	{ "geometrycollection", MYSQL_TYPE_GEOMETRY },
	{ "inet6", MYSQL_TYPE_STRING }, { "uuid", MYSQL_TYPE_STRING },
	{ "inet4", MYSQL_TYPE_STRING },
};

uint8_t ls_mysetup_type_code(const char *data_type)
{
	for (size_t i = 0; i < sizeof TYPE_CODES / sizeof TYPE_CODES[0]; i++)
		if (strcasecmp(TYPE_CODES[i].name, data_type) == 0)
			return TYPE_CODES[i].code;
	return MYSQL_TYPE_STRING;
}

static bool binary_type(const char *dt)
{
	static const char *const names[] = { "binary", "varbinary", "tinyblob",
		"blob", "mediumblob", "longblob", "bit", "geometry", "point",
		"linestring", "polygon", "multipoint", "multilinestring",
		"multipolygon", "geometrycollection" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcasecmp(names[i], dt) == 0)
			return true;
	return false;
}

/* ---- table selection ---------------------------------------------------------- */

static const char CANDIDATES_SQL[] =
	"SELECT TABLE_SCHEMA, TABLE_NAME, ENGINE, TABLE_ROWS, DATA_LENGTH"
	" FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE'"
	" AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema',"
	" 'performance_schema', 'sys')"
	" ORDER BY TABLE_SCHEMA, TABLE_NAME";

struct check_ctx {
	MYSQL_RES *cands;
	bool must_exist;           /* include patterns; exclude ones need not */
	char *probs;
	size_t size;
	int *n;
};

static bool check_cb(const char *b, const char *e, void *ctx)
{
	struct check_ctx *c = ctx;
	int len = (int)(e - b);
	MYSQL_ROW row;
	if (memchr(b, '.', (size_t)len) == NULL) {
		add_problem(c->probs, c->size, c->n, "pattern \"%.*s\" must be "
			"db.table (for example shop.%.*s)", len, b, len, b);
		return false;
	}
	if (!c->must_exist || memchr(b, '*', (size_t)len) != NULL)
		return false;
	mysql_data_seek(c->cands, 0);
	while ((row = mysql_fetch_row(c->cands)) != NULL)
		if (match_one(b, e, row[0], row[1]))
			return false;
	add_problem(c->probs, c->size, c->n, "table %.*s not found (or not a "
		"base table)", len, b);
	return false;
}

/* "WHERE TABLE_SCHEMA = '<s>' AND TABLE_NAME = '<t>'" with escaping. */
static char *where_table(MYSQL *m, const char *schema, const char *name)
{
	size_t ls = strlen(schema), ln = strlen(name);
	char *es = malloc(ls * 2 + 1), *en = malloc(ln * 2 + 1), *out = NULL;
	if (es && en) {
		mysql_real_escape_string(m, es, schema, (unsigned long)ls);
		mysql_real_escape_string(m, en, name, (unsigned long)ln);
		if (asprintf(&out, " WHERE TABLE_SCHEMA = '%s' AND TABLE_NAME = '%s'",
				es, en) < 0)
			out = NULL;
	}
	free(es);
	free(en);
	return out;
}

static int load_columns(MYSQL *m, struct ls_mytable *t, const char *where,
			struct ls_err *err)
{
	char *sql;
	if (asprintf(&sql, "SELECT COLUMN_NAME, COLUMN_TYPE, DATA_TYPE,"
			" CHARACTER_SET_NAME, IS_NULLABLE FROM information_schema.COLUMNS"
			"%s ORDER BY ORDINAL_POSITION", where) < 0)
		return ls_err_set(err, false, "out of memory");
	MYSQL_RES *r = query(m, sql, err);
	free(sql);
	if (r == NULL)
		return -1;
	int n = (int)mysql_num_rows(r);
	t->cols = calloc((size_t)(n ? n : 1), sizeof *t->cols);
	if (t->cols == NULL) {
		mysql_free_result(r);
		return ls_err_set(err, false, "out of memory");
	}
	MYSQL_ROW row;
	for (int i = 0; i < n && (row = mysql_fetch_row(r)) != NULL; i++) {
		struct ls_mycolumn *c = &t->cols[i];
		t->ncols = i + 1;
		c->name = xstrdup(row[0]);
		c->column_type = xstrdup(row[1]);
		c->data_type = xstrdup(row[2]);
		c->charset = row[3] ? strdup(row[3]) : NULL;
		c->nullable = row[4] && strcmp(row[4], "YES") == 0;
		c->is_unsigned = row[1] && strstr(row[1], " unsigned") != NULL;
		c->type_code = ls_mysetup_type_code(c->data_type);
		c->binary = binary_type(c->data_type);
		c->nmembers = ls_mysetup_parse_members(c->column_type, &c->members);
		if (!c->name || !c->column_type || !c->data_type || c->nmembers < 0) {
			mysql_free_result(r);
			return ls_err_set(err, false, "column %s.%s.%s: cannot read "
				"its type \"%s\"", t->schema, t->name, row[0] ? row[0] :
				"?", row[1] ? row[1] : "");
		}
	}
	mysql_free_result(r);
	return 0;
}

static struct ls_mycolumn *find_col(struct ls_mytable *t, const char *name)
{
	for (int i = 0; i < t->ncols; i++)
		if (strcmp(t->cols[i].name, name) == 0)
			return &t->cols[i];
	return NULL;
}

/* Marks the PRIMARY KEY's columns, or the first UNIQUE index whose columns
 * are all NOT NULL.  Returns 1 when a key was found, 0 if none, -1 on
 * error. */
static int load_key(MYSQL *m, struct ls_mytable *t, const char *where,
		    struct ls_err *err)
{
	char *sql;
	if (asprintf(&sql, "SELECT INDEX_NAME, COLUMN_NAME, NULLABLE"
			" FROM information_schema.STATISTICS%s AND NON_UNIQUE = 0"
			" ORDER BY INDEX_NAME <> 'PRIMARY', INDEX_NAME, SEQ_IN_INDEX",
			where) < 0)
		return ls_err_set(err, false, "out of memory");
	MYSQL_RES *r = query(m, sql, err);
	free(sql);
	if (r == NULL)
		return -1;
	MYSQL_ROW row;
	char chosen[256] = "";
	bool bad = false;       /* the current candidate has a nullable column */
	char cur[256] = "";
	/* First pass: pick the index. */
	while ((row = mysql_fetch_row(r)) != NULL) {
		if (strcmp(cur, row[0]) != 0) {
			if (cur[0] && !bad)
				break;
			snprintf(cur, sizeof cur, "%s", row[0]);
			bad = false;
		}
		if (row[2] && strcmp(row[2], "YES") == 0)
			bad = true;
	}
	if (cur[0] && !bad)
		snprintf(chosen, sizeof chosen, "%s", cur);
	if (chosen[0] == '\0') {
		mysql_free_result(r);
		return 0;
	}
	mysql_data_seek(r, 0);
	while ((row = mysql_fetch_row(r)) != NULL) {
		if (strcmp(row[0], chosen) != 0)
			continue;
		struct ls_mycolumn *c = find_col(t, row[1]);
		if (c != NULL)
			c->key = true;
	}
	t->primary_key = strcmp(chosen, "PRIMARY") == 0;
	mysql_free_result(r);
	return 1;
}

static int load_table(MYSQL *m, struct ls_mytable *t, char *probs, size_t size,
		      int *np, struct ls_err *err)
{
	char *where = where_table(m, t->schema, t->name);
	if (where == NULL)
		return ls_err_set(err, false, "out of memory");
	int rc = load_columns(m, t, where, err);
	int key = rc == 0 ? load_key(m, t, where, err) : -1;
	free(where);
	if (rc != 0 || key < 0)
		return ls_err_prefix(err, "table %s.%s", t->schema, t->name);
	if (strcasecmp(t->engine, "InnoDB") != 0)
		add_problem(probs, size, np, "table %s.%s uses engine %s, which is "
			"not transactional: its changes cannot be captured "
			"consistently (ALTER TABLE %s.%s ENGINE=InnoDB, or exclude it)",
			t->schema, t->name, t->engine, t->schema, t->name);
	else if (key == 0)
		add_problem(probs, size, np, "table %s.%s has no PRIMARY KEY or "
			"UNIQUE index over NOT NULL columns: add one, or exclude it",
			t->schema, t->name);
	return 0;
}

static int cmp_tables(const void *a, const void *b)
{
	const struct ls_mytable *x = a, *y = b;
	int c = strcmp(x->schema, y->schema);
	return c ? c : strcmp(x->name, y->name);
}

int ls_mysetup_select_tables(MYSQL *m, const char *include, const char *exclude,
	struct ls_mytables *out, struct ls_err *err)
{
	char probs[LS_ERR_MSG_MAX] = "";
	int np = 0;
	MYSQL_ROW row;

	memset(out, 0, sizeof *out);
	MYSQL_RES *cands = query(m, CANDIDATES_SQL, err);
	if (cands == NULL)
		return ls_err_prefix(err, "table selection");
	struct check_ctx cc = { cands, true, probs, sizeof probs, &np };
	each_pattern(include ? include : "", check_cb, &cc);
	cc.must_exist = false;
	if (exclude)
		each_pattern(exclude, check_cb, &cc);
	out->t = calloc(mysql_num_rows(cands) + 1, sizeof *out->t);
	if (out->t == NULL) {
		mysql_free_result(cands);
		return ls_err_set(err, false, "out of memory");
	}
	mysql_data_seek(cands, 0);
	while ((row = mysql_fetch_row(cands)) != NULL) {
		if (!ls_mysetup_pattern_match(include ? include : "", row[0], row[1]) ||
		    (exclude && ls_mysetup_pattern_match(exclude, row[0], row[1])))
			continue;
		struct ls_mytable *t = &out->t[out->n++];
		t->schema = xstrdup(row[0]);
		t->name = xstrdup(row[1]);
		t->engine = xstrdup(row[2] ? row[2] : "unknown");
		t->est_rows = row[3] ? strtod(row[3], NULL) : 0;
		t->data_length = row[4] ? strtoll(row[4], NULL, 10) : 0;
		if (!t->schema || !t->name || !t->engine) {
			mysql_free_result(cands);
			return ls_err_set(err, false, "out of memory");
		}
	}
	mysql_free_result(cands);
	for (int i = 0; i < out->n; i++)
		if (load_table(m, &out->t[i], probs, sizeof probs, &np, err) != 0)
			return ls_err_prefix(err, "table selection");
	if (out->n == 0 && np == 0)
		add_problem(probs, sizeof probs, &np, "no table matches \"%s\"%s%s",
			include ? include : "", exclude ? " minus " : "",
			exclude ? exclude : "");
	if (np > 0)
		return ls_err_set(err, false, "source tables: %s", probs);
	qsort(out->t, (size_t)out->n, sizeof *out->t, cmp_tables);
	return 0;
}

void ls_mysetup_tables_free(struct ls_mytables *tables)
{
	if (tables == NULL || tables->t == NULL)
		return;
	for (int i = 0; i < tables->n; i++) {
		struct ls_mytable *t = &tables->t[i];
		for (int j = 0; j < t->ncols; j++) {
			struct ls_mycolumn *c = &t->cols[j];
			free(c->name);
			free(c->column_type);
			free(c->data_type);
			free(c->charset);
			for (int k = 0; k < c->nmembers; k++)
				free(c->members[k]);
			free(c->members);
		}
		free(t->cols);
		free(t->schema);
		free(t->name);
		free(t->engine);
	}
	free(tables->t);
	memset(tables, 0, sizeof *tables);
}

const struct ls_mytable *ls_mysetup_tables_find(const struct ls_mytables *tables,
	const char *schema, const char *name)
{
	for (int i = 0; i < tables->n; i++)
		if (strcmp(tables->t[i].schema, schema) == 0 &&
		    strcmp(tables->t[i].name, name) == 0)
			return &tables->t[i];
	return NULL;
}

struct ls_relation *ls_mysetup_table_relation(const struct ls_mytable *t, uint32_t id)
{
	struct ls_relation *r = ls_relation_new((uint16_t)t->ncols);
	if (r == NULL)
		return NULL;
	r->id = id;
	r->replident = t->primary_key ? LS_REPLIDENT_DEFAULT : LS_REPLIDENT_INDEX;
	r->schema = strdup(t->schema);
	r->name = strdup(t->name);
	bool ok = r->schema && r->name;
	for (int i = 0; i < t->ncols && ok; i++) {
		struct ls_column *c = &r->cols[i];
		c->name = strdup(t->cols[i].name);
		c->type_name = strdup(t->cols[i].column_type);
		c->type_oid = t->cols[i].type_code;
		c->typmod = -1;
		c->flags = t->cols[i].key ? LS_COL_KEY : 0;
		ok = c->name && c->type_name;
	}
	if (!ok) {
		ls_relation_free(r);
		return NULL;
	}
	return r;
}
