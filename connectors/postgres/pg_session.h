/* pg_session — the session settings under which lockstep's PostgreSQL
 * connections exchange values as text.
 *
 * Values travel in PostgreSQL's text form: the source's output functions
 * write them (COPY TO, pgoutput, catalog reads of default values) and the
 * target's input functions read them (COPY FROM, statement parameters).
 * Several output formats follow session settings that a database or role
 * may change (ALTER DATABASE ... SET DateStyle = 'SQL, DMY'), and some
 * text is read differently under different settings ("01/02/2020" under
 * MDY or DMY; "-1 2:03:04" under IntervalStyle postgres or sql_standard),
 * so both ends pin the same settings, whatever the servers' defaults:
 * UTF8, ISO dates with MDY order, IntervalStyle postgres, exact floats
 * (extra_float_digits 3), hex bytea, standard-conforming string literals.
 * Like PostgreSQL's own logical replication workers.
 */
#ifndef LS_PG_SESSION_H
#define LS_PG_SESSION_H

/* Statements to run right after connecting (several, separated by ';', for
 * PQexec). */
extern const char ls_pgsession_sql[];

/* The startup "options" value for connections that cannot run SET before
 * they produce values (replication connections): the -c switches of the
 * same settings appended to the "options" that conninfo (a conninfo string
 * or URI) carries, if any.  Returns a malloc'd string, or NULL when out of
 * memory or conninfo does not parse (libpq will report that itself). */
char *ls_pgsession_options(const char *conninfo);

#endif
