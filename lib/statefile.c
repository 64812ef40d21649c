#include "statefile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void sync_dir(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
}

int ls_statefile_write(const char *dir, const char *path, const char *text, size_t len,
		       struct ls_err *err)
{
	char tmp[4200];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		return ls_err_set(err, false, "state file path too long: %s", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return ls_err_set(err, false, "cannot write %s: %s", tmp, strerror(errno));
	bool ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
	int e = errno;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) < 0) {
		e = ok ? errno : e;
		unlink(tmp);
		return ls_err_set(err, false, "cannot write %s: %s", path, strerror(e));
	}
	sync_dir(dir);
	return 0;
}

int ls_statefile_read(const char *path, size_t max, char **out, struct ls_err *err)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0)
		return ls_err_set(err, false, "cannot read %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size < 0 || (size_t)st.st_size > max) {
		close(fd);
		return ls_err_set(err, false, "%s: not a state file of at most %zu bytes", path,
				  max);
	}
	size_t n = (size_t)st.st_size;
	char *buf = malloc(n + 1);
	if (buf == NULL) {
		close(fd);
		return ls_err_set(err, false, "out of memory");
	}
	ssize_t got = read(fd, buf, n);
	int e = errno;
	close(fd);
	if (got != (ssize_t)n) {
		free(buf);
		return ls_err_set(err, false, "cannot read %s: %s", path,
				  got < 0 ? strerror(e) : "short read");
	}
	buf[n] = '\0';
	*out = buf;
	return 1;
}

int ls_statefile_remove(const char *dir, const char *path, struct ls_err *err)
{
	if (unlink(path) < 0 && errno != ENOENT)
		return ls_err_set(err, false, "cannot remove %s: %s", path, strerror(errno));
	sync_dir(dir);
	return 0;
}
