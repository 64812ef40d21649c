#include "connectors/postgres/pg_session.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char ls_pgsession_sql[] =
	"SET client_encoding = 'UTF8'; SET DateStyle = 'ISO, MDY';"
	" SET IntervalStyle = 'postgres'; SET extra_float_digits = 3;"
	" SET bytea_output = 'hex'; SET standard_conforming_strings = on";

/* No spaces inside values: the server splits options at unescaped spaces. */
static const char OPTIONS[] =
	"-c client_encoding=UTF8 -c DateStyle=ISO,MDY -c IntervalStyle=postgres"
	" -c extra_float_digits=3 -c bytea_output=hex";

char *ls_pgsession_options(const char *conninfo)
{
	char *errmsg = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", &errmsg);
	PQfreemem(errmsg);
	if (opts == NULL)
		return NULL;
	const char *user = NULL;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (strcmp(o->keyword, "options") == 0 && o->val && o->val[0])
			user = o->val;
	/* ours last: for a setting given twice the later -c wins */
	size_t n = (user ? strlen(user) + 1 : 0) + sizeof OPTIONS;
	char *out = malloc(n);
	if (out)
		snprintf(out, n, "%s%s%s", user ? user : "", user ? " " : "", OPTIONS);
	PQconninfoFree(opts);
	return out;
}
