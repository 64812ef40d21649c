#include "connectors/postgres/pg_cutover.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connectors/postgres/pg_setup.h"
#include "connectors/postgres/pgoutput.h"

#define SESSION_WAIT_MS 10000
#define SLOT_DROP_WAIT_MS 10000

struct ls_cutover_conn {
	PGconn *pg;
	char where[160];               /* host:port/db, for messages */
	char watch[96], pub[96];       /* the write watch, when on */
};

/* ---- helpers -------------------------------------------------------------------- */

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int pq_fail(struct ls_cutover_conn *c, PGresult *r, const char *what, struct ls_err *err)
{
	char msg[400];
	const char *m = r ? PQresultErrorMessage(r) : PQerrorMessage(c->pg);
	snprintf(msg, sizeof msg, "%s", m && *m ? m : "no answer");
	msg[strcspn(msg, "\n")] = '\0';
	const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	bool retry = PQstatus(c->pg) != CONNECTION_OK || (st && (strncmp(st, "08", 2) == 0 ||
							       strcmp(st, "40001") == 0 ||
							       strcmp(st, "40P01") == 0));
	PQclear(r);
	return ls_err_set(err, retry, "%s: %s: %s", c->where, what, msg);
}

/* Runs sql with text parameters; *out (may be NULL) gets the result. */
static int q(struct ls_cutover_conn *c, const char *what, const char *sql, int n,
	     const char *const *vals, PGresult **out, struct ls_err *err)
{
	PGresult *r = n ? PQexecParams(c->pg, sql, n, NULL, vals, NULL, NULL, 0) : PQexec(c->pg, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		return pq_fail(c, r, what, err);
	if (out)
		*out = r;
	else
		PQclear(r);
	return 0;
}

/* "schema"."name" quoted for SQL (malloc'd). */
static char *qname(struct ls_cutover_conn *c, const char *schema, const char *name)
{
	char *a = PQescapeIdentifier(c->pg, schema, strlen(schema));
	char *b = PQescapeIdentifier(c->pg, name, strlen(name));
	char *out = NULL;
	if (a && b && asprintf(&out, "%s.%s", a, b) < 0)
		out = NULL;
	PQfreemem(a);
	PQfreemem(b);
	return out;
}

/* ---- connection ------------------------------------------------------------------- */

static void pc_close(struct ls_cutover_conn *c)
{
	if (c == NULL)
		return;
	PQfinish(c->pg);
	free(c);
}

static int pc_open(const char *conninfo, struct ls_cutover_conn **out, struct ls_err *err)
{
	*out = NULL;
	struct ls_cutover_conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return ls_err_set(err, false, "out of memory");
	c->pg = PQconnectdb(conninfo);
	if (c->pg != NULL)
		snprintf(c->where, sizeof c->where, "%s:%s/%s", PQhost(c->pg) ? PQhost(c->pg) : "?",
			 PQport(c->pg) ? PQport(c->pg) : "?", PQdb(c->pg) ? PQdb(c->pg) : "?");
	if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) {
		char msg[400];
		snprintf(msg, sizeof msg, "%s", c->pg ? PQerrorMessage(c->pg) : "out of memory");
		msg[strcspn(msg, "\n")] = '\0';
		ls_err_set(err, true, "cannot connect to %s: %s", c->where[0] ? c->where : "the server",
			   msg);
		pc_close(c);
		return -1;
	}
	PQclear(PQexec(c->pg, "SET application_name = 'lockstep cutover'"));
	*out = c;
	return 0;
}

static int pc_whoami(struct ls_cutover_conn *c, char *role, size_t size, struct ls_err *err)
{
	PGresult *r = NULL;
	if (q(c, "current_user", "SELECT current_user", 0, NULL, &r, err) < 0)
		return -1;
	snprintf(role, size, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

static int pc_check_roles(struct ls_cutover_conn *c, const char *const *roles, int n,
			  struct ls_err *err)
{
	for (int i = 0; i < n; i++) {
		PGresult *r = NULL;
		const char *v[1] = { roles[i] };
		if (q(c, "roles", "SELECT rolsuper FROM pg_roles WHERE rolname = $1", 1, v, &r, err) < 0)
			return -1;
		int rows = PQntuples(r);
		bool super = rows == 1 && PQgetvalue(r, 0, 0)[0] == 't';
		PQclear(r);
		if (rows == 0) {
			ls_err_set(err, false, "%s: application role %s does not exist", c->where, roles[i]);
			return LS_CUTOVER_NO;
		}
		if (super) {
			ls_err_set(err, false, "%s: application role %s is a superuser: revoking "
				   "privileges cannot fence it (use a fence_hook)", c->where, roles[i]);
			return LS_CUTOVER_NO;
		}
	}
	return 0;
}

static int pc_origin_exists(struct ls_cutover_conn *c, const char *name, bool *exists,
			    struct ls_err *err)
{
	PGresult *r = NULL;
	const char *v[1] = { name };
	if (q(c, "replication origin", "SELECT 1 FROM pg_replication_origin WHERE roname = $1", 1,
	      v, &r, err) < 0)
		return -1;
	*exists = PQntuples(r) > 0;
	PQclear(r);
	return 0;
}

static int pc_position(struct ls_cutover_conn *c, struct ls_pos *out, struct ls_err *err)
{
	PGresult *r = NULL;
	if (q(c, "WAL position", "SELECT pg_current_wal_lsn()::text", 0, NULL, &r, err) < 0)
		return -1;
	snprintf(out->text, sizeof out->text, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	if (ls_pgsetup_lsn_parse(out->text, &out->seq) < 0)
		return ls_err_set(err, false, "%s: bad WAL position %s", c->where, out->text);
	return 0;
}

/* ---- write watch --------------------------------------------------------------------- */

static int pc_watch_start(struct ls_cutover_conn *c, const char *name, const char *pub,
			  struct ls_err *err)
{
	const char *v[1] = { name };
	/* a leftover of ours (a session that has not quite ended) goes first */
	PQclear(PQexecParams(c->pg, "SELECT pg_drop_replication_slot(slot_name) FROM "
			     "pg_replication_slots WHERE slot_name = $1 AND NOT active", 1, NULL, v,
			     NULL, NULL, 0));
	if (q(c, "temporary slot for the write watch",
	      "SELECT pg_create_logical_replication_slot($1, 'pgoutput', true)", 1, v, NULL, err) < 0)
		return -1;
	snprintf(c->watch, sizeof c->watch, "%s", name);
	snprintf(c->pub, sizeof c->pub, "%s", pub);
	return 0;
}

static bool in_slice(const struct ls_relation *rel, const struct ls_relation *const *tables, int n)
{
	for (int i = 0; rel && i < n; i++)
		if (strcmp(rel->schema, tables[i]->schema) == 0 && strcmp(rel->name, tables[i]->name) == 0)
			return true;
	return false;
}

static const char *op_name(uint8_t kind)
{
	return kind == LS_PGO_INSERT ? "INSERT" : kind == LS_PGO_UPDATE ? "UPDATE"
	       : kind == LS_PGO_DELETE ? "DELETE" : "TRUNCATE";
}

/* Decodes the watch slot's changes so far; counts the slice's row changes
 * in transactions committed at or after `after`. */
static int pc_watch_count(struct ls_cutover_conn *c, const struct ls_relation *const *tables,
			  int ntables, uint64_t after, uint64_t *n, char *first, size_t size,
			  struct ls_err *err)
{
	*n = 0;
	first[0] = '\0';
	const char *v[2] = { c->watch, c->pub };
	PGresult *r = PQexecParams(c->pg, "SELECT data FROM pg_logical_slot_peek_binary_changes("
				   "$1, NULL, NULL, 'proto_version', '1', 'publication_names', $2)",
				   2, NULL, v, NULL, NULL, 1);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		return pq_fail(c, r, "reading the write watch", err);
	struct ls_pgo *d = ls_pgo_new(1);
	struct ls_arena arena;
	ls_arena_init(&arena);
	uint64_t commit = 0;
	int rc = d ? 0 : ls_err_set(err, false, "out of memory");
	for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
		struct ls_pgo_event ev;
		rc = ls_pgo_decode(d, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0), &arena, &ev, err);
		if (rc < 0)
			break;
		if (ev.kind == LS_PGO_BEGIN)
			commit = ev.u.begin.final_lsn;
		bool hit = false;
		if (ev.kind == LS_PGO_INSERT || ev.kind == LS_PGO_UPDATE || ev.kind == LS_PGO_DELETE)
			hit = in_slice(ev.rel, tables, ntables);
		for (uint32_t k = 0; ev.kind == LS_PGO_TRUNCATE && k < ev.change.nrelids; k++)
			hit = hit || in_slice(ls_pgo_relation(d, ev.change.relids[k]), tables, ntables);
		if (hit && commit >= after) {
			if (*n == 0) {
				char l[LS_PG_LSN_TEXT_MAX];
				const struct ls_relation *rel = ev.rel ? ev.rel
					: ls_pgo_relation(d, ev.change.relids[0]);
				snprintf(first, size, "%s on %s.%s, committed at %s", op_name(ev.kind),
					 rel ? rel->schema : "?", rel ? rel->name : "?",
					 ls_pgsetup_lsn_format(commit, l));
			}
			(*n)++;
		}
		ls_arena_reset(&arena);
	}
	ls_arena_free(&arena);
	ls_pgo_free(d);
	PQclear(r);
	return rc;
}

static int pc_watch_stop(struct ls_cutover_conn *c, struct ls_err *err)
{
	if (c->watch[0] == '\0')
		return 0;
	char name[sizeof c->watch];
	memcpy(name, c->watch, sizeof name);
	c->watch[0] = '\0';
	const char *v[1] = { name };
	return q(c, "dropping the write watch", "SELECT pg_drop_replication_slot($1)", 1, v, NULL,
		 err);
}

/* ---- fence ------------------------------------------------------------------------------ */

static int append(char **buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int append(char **buf, const char *fmt, ...)
{
	char *add = NULL;
	va_list ap;
	va_start(ap, fmt);
	int rc = vasprintf(&add, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return -1;
	size_t a = *buf ? strlen(*buf) : 0;
	char *n = realloc(*buf, a + strlen(add) + 1);
	if (n == NULL) {
		free(add);
		return -1;
	}
	memcpy(n + a, add, strlen(add) + 1);
	free(add);
	*buf = n;
	return 0;
}

static const char PRIVS_SQL[] =
	"SELECT coalesce(string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type), '')"
	" FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a,"
	" pg_roles r WHERE c.oid = $1::regclass AND r.rolname = $2 AND a.grantee = r.oid"
	" AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')";

/* Revokes and notes one role's write grants on one table; LS_CUTOVER_NO
 * when the role could still write afterwards. */
static int revoke_one(struct ls_cutover_conn *c, const char *table, const char *role,
		      char **undo, struct ls_err *err)
{
	const char *v[2] = { table, role };
	PGresult *r = NULL;
	if (q(c, "reading grants", PRIVS_SQL, 2, v, &r, err) < 0)
		return -1;
	char privs[128];
	snprintf(privs, sizeof privs, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	char *ri = PQescapeIdentifier(c->pg, role, strlen(role));
	char *sql = NULL;
	int rc = ri && asprintf(&sql, "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON TABLE %s FROM %s",
				table, ri) >= 0 ? 0 : ls_err_set(err, false, "out of memory");
	if (rc == 0)
		rc = q(c, "revoking", sql, 0, NULL, NULL, err);
	if (rc == 0 && privs[0] && append(undo, "GRANT %s ON TABLE %s TO %s;\n", privs, table, ri) < 0)
		rc = ls_err_set(err, false, "out of memory");
	free(sql);
	PQfreemem(ri);
	if (rc < 0)
		return rc;
	if (q(c, "checking the fence", "SELECT has_table_privilege($2, $1::regclass,"
	      " 'INSERT, UPDATE, DELETE, TRUNCATE')", 2, v, &r, err) < 0)
		return -1;
	bool still = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (still) {
		ls_err_set(err, false, "%s: role %s can still write %s after the revoke (through "
			   "PUBLIC or a role it is a member of): fence it with a fence_hook or "
			   "narrow its grants", c->where, role, table);
		return LS_CUTOVER_NO;
	}
	return 0;
}

/* Ends the roles' sessions in this database and waits until they are gone. */
static int end_sessions(struct ls_cutover_conn *c, const char *const *roles, int nroles,
			uint64_t *ended, struct ls_err *err)
{
	char *arr = NULL;
	int rc = append(&arr, "{");
	for (int i = 0; rc == 0 && i < nroles; i++) {
		rc = append(&arr, "%s\"", i ? "," : "");
		for (const char *p = roles[i]; rc == 0 && *p; p++)
			rc = append(&arr, "%s%c", *p == '"' || *p == '\\' ? "\\" : "", *p);
		if (rc == 0)
			rc = append(&arr, "\"");
	}
	if (rc == 0)
		rc = append(&arr, "}");
	if (rc < 0) {
		free(arr);
		return ls_err_set(err, false, "out of memory");
	}
	const char *v[1] = { arr };
	PGresult *r = NULL;
	/* the sessions first, then the signal: in one query the planner may
	 * call pg_terminate_backend before the filters */
	rc = q(c, "listing sessions", "SELECT coalesce(array_agg(pid)::text, '{}') FROM"
	       " pg_stat_activity WHERE usename = ANY($1::name[]) AND datname = current_database()"
	       " AND pid <> pg_backend_pid()", 1, v, &r, err);
	free(arr);
	if (rc < 0)
		return -1;
	char pids[8192];
	snprintf(pids, sizeof pids, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	const char *p[1] = { pids };
	if (q(c, "ending sessions", "SELECT count(*) FILTER (WHERE pg_terminate_backend(x))"
	      " FROM unnest($1::int[]) x", 1, p, &r, err) < 0)
		return -1;
	*ended = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	for (int waited = 0; *ended > 0; waited += 50) {
		if (q(c, "waiting for sessions to end",
		      "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", 1, p, &r,
		      err) < 0)
			return -1;
		bool gone = strcmp(PQgetvalue(r, 0, 0), "0") == 0;
		PQclear(r);
		if (gone)
			break;
		if (waited >= SESSION_WAIT_MS)
			return ls_err_set(err, false, "%s: the application's sessions did not end "
					  "within %d s", c->where, SESSION_WAIT_MS / 1000);
		nap_ms(50);
	}
	return 0;
}

/* fence = read_only: every new session of the roles starts read-only (the
 * sessions are ended next).  Weaker than the revoke, since a session may
 * turn it off again; the write watch after the fence still catches that. */
static int read_only_roles(struct ls_cutover_conn *c, const char *const *roles, int nroles,
			   char **undo, struct ls_err *err)
{
	int rc = 0;
	for (int i = 0; rc == 0 && i < nroles; i++) {
		char *ri = PQescapeIdentifier(c->pg, roles[i], strlen(roles[i]));
		char *sql = NULL;
		rc = ri && asprintf(&sql, "ALTER ROLE %s SET default_transaction_read_only = on",
				    ri) >= 0 ? 0 : ls_err_set(err, false, "out of memory");
		if (rc == 0)
			rc = q(c, "fencing read-only", sql, 0, NULL, NULL, err);
		if (rc == 0 && append(undo, "ALTER ROLE %s RESET default_transaction_read_only;\n",
				      ri) < 0)
			rc = ls_err_set(err, false, "out of memory");
		free(sql);
		PQfreemem(ri);
	}
	return rc;
}

static int pc_fence(struct ls_cutover_conn *c, const char *const *roles, int nroles,
		    const struct ls_relation *const *tables, int ntables, bool read_only,
		    char **undo, uint64_t *ended, struct ls_err *err)
{
	*undo = NULL;
	*ended = 0;
	if (q(c, "fence", "BEGIN", 0, NULL, NULL, err) < 0)
		return -1;
	int rc = read_only ? read_only_roles(c, roles, nroles, undo, err) : 0;
	for (int t = 0; !read_only && rc == 0 && t < ntables; t++) {
		char *name = qname(c, tables[t]->schema, tables[t]->name);
		if (name == NULL)
			rc = ls_err_set(err, false, "out of memory");
		for (int i = 0; rc == 0 && i < nroles; i++)
			rc = revoke_one(c, name, roles[i], undo, err);
		free(name);
	}
	if (rc == 0)
		rc = q(c, "fence", "COMMIT", 0, NULL, NULL, err);
	if (rc < 0) {
		PQclear(PQexec(c->pg, "ROLLBACK"));
		free(*undo);
		*undo = NULL;
		return rc;
	}
	if (*undo == NULL && (*undo = strdup("")) == NULL)
		return ls_err_set(err, false, "out of memory");
	return end_sessions(c, roles, nroles, ended, err);
}

/* A read-only fence leaves read-only the sessions that started while it
 * stood (ALTER ROLE ... RESET only reaches new sessions), and the
 * application reconnects to the side it is switched to before that side's
 * fence is lifted: once it is, those sessions are ended, so they come back
 * writable.  role: the quoted identifier as the undo script has it. */
static int end_read_only_sessions(struct ls_cutover_conn *c, const char *role,
				  struct ls_err *err)
{
	const char *vals[] = { role };
	return q(c, "ending read-only sessions",
		 "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
		 " WHERE '\"' || replace(usename::text, '\"', '\"\"') || '\"' = $1"
		 " AND pid <> pg_backend_pid()", 1, vals, NULL, err);
}

static int pc_unfence(struct ls_cutover_conn *c, const char *undo, struct ls_err *err)
{
	if (undo == NULL || undo[0] == '\0')
		return 0;
	if (q(c, "lifting the fence", "BEGIN", 0, NULL, NULL, err) < 0)
		return -1;
	if (q(c, "lifting the fence", undo, 0, NULL, NULL, err) < 0 ||
	    q(c, "lifting the fence", "COMMIT", 0, NULL, NULL, err) < 0) {
		PQclear(PQexec(c->pg, "ROLLBACK"));
		return -1;
	}
	static const char HEAD[] = "ALTER ROLE ", TAIL[] = " RESET default_transaction_read_only;";
	for (const char *l = undo; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
		const char *e = strchr(l, '\n'), *t = strstr(l, TAIL);
		size_t n = e ? (size_t)(e - l) : strlen(l);
		if (strncmp(l, HEAD, sizeof HEAD - 1) != 0 || t == NULL || t + sizeof TAIL - 1 != l + n)
			continue;
		char role[512];
		snprintf(role, sizeof role, "%.*s", (int)(t - l - (sizeof HEAD - 1)), l + sizeof HEAD - 1);
		if (end_read_only_sessions(c, role, err) < 0)
			return -1;
	}
	return 0;
}

/* ---- sequences ------------------------------------------------------------------------------ */

static const char OWNED_SQL[] =
	"SELECT format('%I.%I', sn.nspname, s.relname), format('%I.%I.%I', tn.nspname, t.relname,"
	" a.attname) FROM pg_depend d"
	" JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
	" JOIN pg_namespace sn ON sn.oid = s.relnamespace"
	" JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace"
	" JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid"
	" WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass"
	" AND d.refobjid = format('%I.%I', $1::text, $2::text)::regclass AND d.deptype IN ('a', 'i')"
	" ORDER BY 1";

static int add_seq(struct ls_cutover_seq **v, int *n, const char *name, const char *owner)
{
	for (int i = 0; i < *n; i++)
		if (strcmp((*v)[i].name, name) == 0)
			return 0;
	struct ls_cutover_seq *nv = realloc(*v, (size_t)(*n + 1) * sizeof *nv);
	if (nv == NULL)
		return -1;
	*v = nv;
	memset(&nv[*n], 0, sizeof nv[*n]);
	snprintf(nv[*n].name, sizeof nv[*n].name, "%s", name);
	snprintf(nv[*n].owner, sizeof nv[*n].owner, "%s", owner);
	(*n)++;
	return 0;
}

static int list_seqs(struct ls_cutover_conn *from, const struct ls_relation *const *tables,
		     int ntables, const char *extra, struct ls_cutover_seq **seqs, int *nseqs,
		     struct ls_err *err)
{
	for (int t = 0; t < ntables; t++) {
		const char *v[2] = { tables[t]->schema, tables[t]->name };
		PGresult *r = NULL;
		if (q(from, "listing sequences", OWNED_SQL, 2, v, &r, err) < 0)
			return -1;
		for (int i = 0; i < PQntuples(r); i++)
			if (add_seq(seqs, nseqs, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1)) < 0) {
				PQclear(r);
				return ls_err_set(err, false, "out of memory");
			}
		PQclear(r);
	}
	char *copy = extra ? strdup(extra) : NULL;
	int rc = 0;
	for (char *save = NULL, *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok && rc == 0;
	     tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		tok[strcspn(tok, " ")] = '\0';
		if (*tok == '\0')
			continue;
		const char *v[1] = { tok };
		PGresult *r = NULL;
		if (q(from, "sequences", "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c"
		      " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)"
		      " AND c.relkind = 'S'", 1, v, &r, err) < 0) {
			rc = -1;
			break;
		}
		if (PQntuples(r) == 0) {
			rc = ls_err_set(err, false, "%s: [cutover] sequences: %s is not a sequence",
					from->where, tok);
			rc = LS_CUTOVER_NO;
		} else if (add_seq(seqs, nseqs, PQgetvalue(r, 0, 0), "") < 0) {
			rc = ls_err_set(err, false, "out of memory");
		}
		PQclear(r);
	}
	free(copy);
	return rc;
}

static int pc_sequences(struct ls_cutover_conn *from, struct ls_cutover_conn *to,
			const struct ls_relation *const *tables, int ntables, const char *extra,
			bool dry_run, struct ls_cutover_seq **seqs, int *nseqs, struct ls_err *err)
{
	*seqs = NULL;
	*nseqs = 0;
	int rc = list_seqs(from, tables, ntables, extra, seqs, nseqs, err);
	for (int i = 0; rc == 0 && i < *nseqs; i++) {
		struct ls_cutover_seq *s = &(*seqs)[i];
		const char *v[1] = { s->name };
		PGresult *r = NULL;
		if (q(to, "sequences", "SELECT to_regclass($1) IS NOT NULL", 1, v, &r, err) < 0)
			return -1;
		bool exists = PQgetvalue(r, 0, 0)[0] == 't';
		PQclear(r);
		if (!exists) {
			ls_err_set(err, false, "sequence %s%s%s does not exist on %s: create it (and "
				   "the column default) there first", s->name,
				   s->owner[0] ? " owned by " : "", s->owner, to->where);
			return LS_CUTOVER_NO;
		}
		char *sql = NULL;
		if (asprintf(&sql, "SELECT last_value, is_called FROM %s", s->name) < 0)
			return ls_err_set(err, false, "out of memory");
		rc = q(from, "reading a sequence", sql, 0, NULL, &r, err);
		free(sql);
		if (rc < 0)
			return -1;
		snprintf(s->value, sizeof s->value, "%s", PQgetvalue(r, 0, 0));
		s->is_called = PQgetvalue(r, 0, 1)[0] == 't';
		PQclear(r);
		if (dry_run)
			continue;
		const char *sv[3] = { s->name, s->value, s->is_called ? "true" : "false" };
		rc = q(to, "setting a sequence", "SELECT setval($1::regclass, $2::bigint, $3::boolean)",
		       3, sv, NULL, err);
	}
	return rc;
}

/* ---- counters across engines ------------------------------------------------------------------ */

static int pc_counters(struct ls_cutover_conn *c, const struct ls_relation *const *tables,
		       int ntables, const char *extra, struct ls_cutover_seq **seqs, int *nseqs,
		       struct ls_err *err)
{
	*seqs = NULL;
	*nseqs = 0;
	int rc = list_seqs(c, tables, ntables, extra, seqs, nseqs, err);
	for (int i = 0; rc == 0 && i < *nseqs; i++) {
		struct ls_cutover_seq *s = &(*seqs)[i];
		char *sql = NULL;
		if (asprintf(&sql, "SELECT CASE WHEN is_called THEN last_value + (SELECT seqincrement"
			     " FROM pg_sequence WHERE seqrelid = $1::regclass) ELSE last_value END"
			     " FROM %s", s->name) < 0)
			return ls_err_set(err, false, "out of memory");
		const char *v[1] = { s->name };
		PGresult *r = NULL;
		rc = q(c, "reading a sequence", sql, 1, v, &r, err);
		free(sql);
		if (rc < 0)
			return -1;
		snprintf(s->value, sizeof s->value, "%s", PQgetvalue(r, 0, 0));
		s->is_called = false;   /* value is the next one handed out */
		PQclear(r);
	}
	return rc;
}

/* The sequence behind "schema.table.column" (serial or identity), or by
 * name; "" when there is none. */
static int seq_of(struct ls_cutover_conn *c, const struct ls_cutover_seq *s, char *out,
		  size_t size, struct ls_err *err)
{
	char part[3][256] = { "", "", "" };
	if (s->owner[0]) {
		const char *p = s->owner;
		for (int i = 0; i < 3; i++) {
			size_t n = i < 2 ? strcspn(p, ".") : strlen(p);
			snprintf(part[i], sizeof part[i], "%.*s", (int)n, p);
			p += n + (p[n] == '.');
		}
	}
	const char *v[3] = { part[0], part[1], part[2] };
	const char *by_name[1] = { s->name };
	PGresult *r = NULL;
	if ((s->owner[0] ? q(c, "sequences", "SELECT pg_get_serial_sequence(format('%I.%I', $1::text,"
			     " $2::text), $3)", 3, v, &r, err)
			 : q(c, "sequences", "SELECT to_regclass($1)::text", 1, by_name, &r, err)) < 0)
		return -1;
	snprintf(out, size, "%s", PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

static int pc_raise(struct ls_cutover_conn *c, const struct ls_cutover_seq *seqs, int nseqs,
		    bool dry_run, struct ls_err *err)
{
	for (int i = 0; i < nseqs; i++) {
		const struct ls_cutover_seq *s = &seqs[i];
		char seq[600];
		if (seq_of(c, s, seq, sizeof seq, err) < 0)
			return -1;
		if (seq[0] == '\0') {
			ls_err_set(err, false, "%s: %s%s has no sequence here: create it (serial or "
				   "identity column) first", c->where, s->owner[0] ? "column " : "sequence ",
				   s->owner[0] ? s->owner : s->name);
			return LS_CUTOVER_NO;
		}
		char *sql = NULL;
		if (asprintf(&sql, "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END"
			     " < $1::bigint FROM %s", seq) < 0)
			return ls_err_set(err, false, "out of memory");
		const char *v[1] = { s->value };
		PGresult *r = NULL;
		int rc = q(c, "reading a sequence", sql, 1, v, &r, err);
		free(sql);
		if (rc < 0)
			return -1;
		bool behind = PQgetvalue(r, 0, 0)[0] == 't';
		PQclear(r);
		const char *sv[2] = { seq, s->value };
		if (behind && !dry_run &&   /* never lowered */
		    q(c, "setting a sequence", "SELECT setval($1::regclass, $2::bigint, false)", 2, sv,
		      NULL, err) < 0)
			return -1;
	}
	return 0;
}

/* ---- reverse slot ------------------------------------------------------------------------------ */

static int drop_slot_wait(struct ls_cutover_conn *c, const char *slot, struct ls_err *err)
{
	const char *v[1] = { slot };
	for (int waited = 0;; waited += 100) {
		PGresult *r = NULL;
		if (q(c, "slot", "SELECT active FROM pg_replication_slots WHERE slot_name = $1", 1, v,
		      &r, err) < 0)
			return -1;
		bool absent = PQntuples(r) == 0, active = !absent && PQgetvalue(r, 0, 0)[0] == 't';
		PQclear(r);
		if (absent)
			return 0;
		if (!active)
			return ls_pgsetup_slot_drop(c->pg, slot, err);
		if (waited >= SLOT_DROP_WAIT_MS)
			return ls_err_set(err, false, "%s: slot %s is still in use", c->where, slot);
		nap_ms(100);
	}
}

static int pc_reverse_prepare(struct ls_cutover_conn *c, const char *conninfo, const char *slot,
			      const char *pub, const struct ls_relation *const *tables,
			      int ntables, struct ls_pos *at, struct ls_err *err)
{
	char *list = NULL;
	for (int i = 0; i < ntables; i++)
		if (append(&list, "%s%s.%s", i ? "," : "", tables[i]->schema, tables[i]->name) < 0) {
			free(list);
			return ls_err_set(err, false, "out of memory");
		}
	struct ls_pg_tables t;
	int rc = ls_pgsetup_select_tables(c->pg, list ? list : "", NULL, &t, err);
	free(list);
	if (rc == 0)
		rc = ls_pgsetup_publication_ensure(c->pg, pub, &t, NULL, err);
	ls_pgsetup_tables_free(&t);
	if (rc == 0)
		rc = drop_slot_wait(c, slot, err);
	if (rc < 0)
		return ls_err_prefix(err, "%s", c->where);
	struct ls_pgslot_info info;
	struct ls_pgslot *s = ls_pgslot_open(conninfo, slot, &info, err);
	if (s == NULL)
		return -1;
	ls_pgslot_free(s);
	at->seq = info.created ? info.consistent_lsn : info.confirmed_flush;
	ls_pgsetup_lsn_format(at->seq, at->text);
	return 0;
}

static int pc_reverse_drop(struct ls_cutover_conn *c, const char *slot, const char *pub,
			   struct ls_err *err)
{
	if (drop_slot_wait(c, slot, err) < 0)
		return -1;
	char *pi = PQescapeIdentifier(c->pg, pub, strlen(pub));
	char *sql = NULL;
	int rc = pi && asprintf(&sql, "DROP PUBLICATION IF EXISTS %s", pi) >= 0
		 ? q(c, "dropping the reverse publication", sql, 0, NULL, NULL, err)
		 : ls_err_set(err, false, "out of memory");
	free(sql);
	PQfreemem(pi);
	return rc;
}

const struct ls_cutover_ops ls_pg_cutover_ops = {
	.engine = "postgres",
	.open = pc_open,
	.close = pc_close,
	.whoami = pc_whoami,
	.check_roles = pc_check_roles,
	.origin_exists = pc_origin_exists,
	.position = pc_position,
	.watch_start = pc_watch_start,
	.watch_count = pc_watch_count,
	.watch_stop = pc_watch_stop,
	.fence = pc_fence,
	.unfence = pc_unfence,
	.sequences = pc_sequences,
	.counters = pc_counters,
	.raise = pc_raise,
	.reverse_prepare = pc_reverse_prepare,
	.reverse_drop = pc_reverse_drop,
};
