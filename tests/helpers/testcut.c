#include "tests/helpers/testcut.h"

#include <check.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/helpers/testsrv.h"

static char ctl_out[1 << 20];

int ls_testcut_ctl(struct ls_testd *d, const char *args, json_t **out)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "'%s' --socket '%s' %s", ls_test_build_path("lockstepctl"),
		 ls_testd_socket(d), args);
	FILE *f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(ctl_out, 1, sizeof ctl_out - 1, f);
	ctl_out[n] = '\0';
	int st = pclose(f);
	if (out)
		*out = json_loads(ctl_out, 0, NULL);
	if (out && *out == NULL)
		fprintf(stderr, "lockstepctl printed: %s\n", ctl_out);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

const char *ls_testcut_ctl_text(void)
{
	return ctl_out;
}

json_t *ls_testcut_proc(json_t *doc)
{
	json_t *p = json_object_get(doc, "procedure");
	ck_assert_msg(json_is_object(p), "no procedure in %s", doc ? json_dumps(doc, JSON_COMPACT)
		      : ctl_out);
	return p;
}

json_t *ls_testcut_step(json_t *pr, const char *name)
{
	size_t i;
	json_t *s, *found = NULL;
	json_array_foreach(json_object_get(pr, "steps"), i, s)
		if (strcmp(ls_testcut_str(s, "step"), name) == 0)
			found = s;
	return found;
}

const char *ls_testcut_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

long long ls_testcut_num(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

void ls_testcut_assert_steps_ok(json_t *pr, const char *const *names, int n)
{
	for (int i = 0; i < n; i++) {
		json_t *s = ls_testcut_step(pr, names[i]);
		ck_assert_msg(s && strcmp(ls_testcut_str(s, "state"), "ok") == 0, "step %s: %s",
			      names[i], s ? ls_testcut_str(s, "detail") : "missing");
	}
}

void ls_testcut_assert_report(json_t *pr)
{
	const char *path = ls_testcut_str(pr, "report");
	ck_assert_msg(path[0] != '\0', "no report path");
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "report %s missing", path);
	fclose(f);
	char txt[1100];
	snprintf(txt, sizeof txt, "%.*s.txt", (int)(strlen(path) - 5), path);
	f = fopen(txt, "r");
	ck_assert_msg(f != NULL, "report %s missing", txt);
	char line[2048] = "";
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	fclose(f);
	ck_assert_msg(strstr(line, ls_testcut_str(pr, "outcome")) != NULL, "report text says: %s",
		      line);
}
