// A disk that stops answering, for a child process (LD_PRELOAD): while the file named by HANG_FLAG exists, an fsync or
// fdatasync of a file under HANG_DIR does not return; once the flag is removed it goes on to the real call. Nothing
// else is changed. Built by the test with the system's gcc.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static int under_dir(int fd) {
  const char *dir = getenv("HANG_DIR");
  if (!dir || !*dir) return 0;
  char link[64], path[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return 0;
  path[n] = 0;
  return strncmp(path, dir, strlen(dir)) == 0;
}

static void wait_while_flagged(int fd) {
  const char *flag = getenv("HANG_FLAG");
  if (!flag || !under_dir(fd)) return;
  struct timespec ms10 = { 0, 10 * 1000 * 1000 };
  while (access(flag, F_OK) == 0) nanosleep(&ms10, NULL);
}

int fsync(int fd) {
  if (!real_fsync) real_fsync = dlsym(RTLD_NEXT, "fsync");
  wait_while_flagged(fd);
  return real_fsync(fd);
}

int fdatasync(int fd) {
  if (!real_fdatasync) real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
  wait_while_flagged(fd);
  return real_fdatasync(fd);
}
