/* Checks the files in systemd/ with systemd's own tools: the unit passes
 * `systemd-analyze verify` without a single warning and stays under an
 * exposure level with `systemd-analyze security --offline`; the sysusers
 * and tmpfiles snippets apply to a scratch root and make what they promise.
 *
 * The unit names /usr/local/bin/lockstepd, which need not exist here, so it
 * is verified as a copy whose ExecStart= points at the built binary
 * ($LS_BUILD/lockstepd, default build/). */
#include <check.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define UNIT "systemd/lockstepd@.service"
#define INSTALLED_BIN "/usr/local/bin/lockstepd"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s (run from the repository root)", path);
	char *buf = calloc(1, 1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void scratch(char *dir, size_t size)
{
	snprintf(dir, size, "/tmp/ls-test-systemd.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_tree(const char *dir)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Runs a shell command; returns its exit code. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[4 * PATH_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	ck_assert_int_lt(n, (int)sizeof cmd);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Writes the unit to dir/name with every INSTALLED_BIN replaced by bin and
 * extra (may be NULL) appended to its [Service] section. */
static void write_unit(const char *dir, const char *name, const char *bin, const char *extra)
{
	char *unit = slurp(UNIT);
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	for (const char *p = unit; *p != '\0';) {
		if (strncmp(p, INSTALLED_BIN, strlen(INSTALLED_BIN)) == 0) {
			fputs(bin, f);
			p += strlen(INSTALLED_BIN);
		} else if (extra != NULL && strncmp(p, "[Service]\n", 10) == 0) {
			fprintf(f, "[Service]\n%s\n", extra);
			p += 10;
		} else {
			fputc(*p++, f);
		}
	}
	ck_assert_int_eq(fclose(f), 0);
	free(unit);
}

static void built_daemon(char *out)
{
	const char *build = getenv("LS_BUILD");
	char rel[PATH_MAX];
	snprintf(rel, sizeof rel, "%s/lockstepd", build != NULL && *build ? build : "build");
	ck_assert_msg(realpath(rel, out) != NULL && access(out, X_OK) == 0, "%s is not built", rel);
}

START_TEST(systemd_unit_has_the_promised_settings)
{
	char *unit = slurp(UNIT);
	static const char *want[] = {
		"\nType=notify\n", "\nExecStart=" INSTALLED_BIN " --config /etc/lockstep/%i.conf\n",
		"\nWatchdogSec=30s\n", "\nRestart=on-failure\n", "\nUser=lockstep\n",
		"\nGroup=lockstep\n", "\nRuntimeDirectory=lockstep\n",
		"\nStateDirectory=lockstep/%i\n", "\nLoadCredential=", "\nProtectSystem=strict\n",
		"\nProtectHome=yes\n", "\nPrivateTmp=yes\n", "\nNoNewPrivileges=yes\n",
		"\nPrivateDevices=yes\n", "\nProtectKernelTunables=yes\n",
		"\nProtectKernelModules=yes\n", "\nProtectKernelLogs=yes\n",
		"\nRestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n", "\nLockPersonality=yes\n",
		"\nMemoryDenyWriteExecute=yes\n", "\nSystemCallFilter=@system-service\n",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		ck_assert_msg(strstr(unit, want[i]) != NULL, "unit lacks %s", want[i]);
	free(unit);
}
END_TEST

START_TEST(systemd_unit_verifies_without_warnings)
{
	char dir[64], bin[PATH_MAX];
	scratch(dir, sizeof dir);
	built_daemon(bin);
	write_unit(dir, "lockstepd@shop.service", bin, NULL);
	int rc = sh("cd '%s' && systemd-analyze verify ./lockstepd@shop.service >out 2>err", dir);
	char err[PATH_MAX];
	snprintf(err, sizeof err, "%s/err", dir);
	char *msg = slurp(err);
	ck_assert_msg(rc == 0 && msg[0] == '\0', "verify exit %d: %s", rc, msg);
	free(msg);

	/* The same check notices a broken unit, so its silence above means
	 * something. */
	write_unit(dir, "lockstepd@bad.service", bin, "NoSuchSetting=1");
	sh("cd '%s' && systemd-analyze verify ./lockstepd@bad.service >out 2>err", dir);
	msg = slurp(err);
	ck_assert_msg(strstr(msg, "NoSuchSetting") != NULL, "verify missed a bad key: %s", msg);
	free(msg);
	remove_tree(dir);
}
END_TEST

START_TEST(systemd_unit_exposure_stays_low)
{
	char dir[64], bin[PATH_MAX];
	scratch(dir, sizeof dir);
	built_daemon(bin);
	write_unit(dir, "lockstepd@shop.service", bin, NULL);
	/* --threshold counts tenths: 20 is an exposure of 2.0 ("OK" is < 3.0). */
	int rc = sh("cd '%s' && systemd-analyze security --offline=yes --threshold=20 "
		    "./lockstepd@shop.service >out 2>&1", dir);
	char out[PATH_MAX];
	snprintf(out, sizeof out, "%s/out", dir);
	char *msg = slurp(out);
	ck_assert_msg(rc == 0, "exposure above 2.0: %s", msg);
	free(msg);
	remove_tree(dir);
}
END_TEST

static uid_t user_in_root(const char *root, const char *name, gid_t *gid)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/etc/passwd", root);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	struct passwd *pw;
	uid_t uid = (uid_t)-1;
	while ((pw = fgetpwent(f)) != NULL) {
		if (strcmp(pw->pw_name, name) == 0) {
			uid = pw->pw_uid;
			*gid = pw->pw_gid;
		}
	}
	fclose(f);
	return uid;
}

START_TEST(systemd_sysusers_and_tmpfiles_apply)
{
	char root[64], sub[PATH_MAX];
	scratch(root, sizeof root);
	snprintf(sub, sizeof sub, "%s/etc", root);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	/* With --root, relative config paths are looked up inside the root. */
	char sysusers[PATH_MAX], tmpfiles[PATH_MAX];
	ck_assert_ptr_nonnull(realpath("systemd/lockstep.sysusers", sysusers));
	ck_assert_ptr_nonnull(realpath("systemd/lockstep.tmpfiles", tmpfiles));
	ck_assert_int_eq(sh("systemd-sysusers --root='%s' '%s' >/dev/null", root, sysusers), 0);
	gid_t gid = (gid_t)-1;
	uid_t uid = user_in_root(root, "lockstep", &gid);
	ck_assert_msg(uid != (uid_t)-1, "sysusers made no lockstep user");
	ck_assert_int_eq(sh("systemd-tmpfiles --root='%s' --create '%s'", root, tmpfiles), 0);
	static const char *dirs[] = {"/run/lockstep", "/var/lib/lockstep"};
	for (size_t i = 0; i < 2; i++) {
		struct stat st;
		snprintf(sub, sizeof sub, "%s%s", root, dirs[i]);
		ck_assert_msg(stat(sub, &st) == 0 && S_ISDIR(st.st_mode), "%s not made", dirs[i]);
		ck_assert_uint_eq(st.st_mode & 07777, 0750);
		ck_assert_uint_eq(st.st_uid, uid);
		ck_assert_uint_eq(st.st_gid, gid);
	}
	remove_tree(root);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("systemd");
	TCase *tc = tcase_create("systemd");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, systemd_unit_has_the_promised_settings);
	tcase_add_test(tc, systemd_unit_verifies_without_warnings);
	tcase_add_test(tc, systemd_unit_exposure_stays_low);
	tcase_add_test(tc, systemd_sysusers_and_tmpfiles_apply);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
