// A power cut for one process, as an LD_PRELOAD shim: what the process wrote to its SQLite files (database, WAL,
// rollback journal) and did not fsync/fdatasync survives a SIGKILL in the page cache — a power cut would take it. So
// before every write, truncate or overwrite of such a file the shim saves the bytes it replaces (and the file's
// length at its last sync) in an undo log outside the data directory; an fsync or fdatasync of the file — through
// any descriptor of it, as the kernel's does — empties the log. After SIGKILL, the test plays the logs backwards
// (powercut.ts `cutPower`): every file is back to exactly what was on disk at its last sync, the harshest power cut
// (everything unsynced lost). The shared-memory index (-shm) is not tracked: it is mapped, never synced, and SQLite
// rebuilds it from the WAL when the first connection opens after a crash.
//
// Settings: POWERCUT_DIR (track files under it), POWERCUT_LOG (write undo logs there). Build:
//   gcc -shared -fPIC -O2 -o powercut.so shim.c -ldl -lpthread
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_FD 65536
#define MAX_FILES 64

struct file {
  dev_t dev;
  ino_t ino;
  int log;           // undo log descriptor
  off_t header;      // bytes of the log's header (synced length + path)
  char path[1024];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct file files[MAX_FILES];
static int nfiles;
static signed char tracked[MAX_FD]; // 1 + index into files, 0 = not tracked

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_pread)(int, void *, size_t, off_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_close)(int);

__attribute__((constructor)) static void init(void) {
  real_open = dlsym(RTLD_NEXT, "open");
  real_open64 = dlsym(RTLD_NEXT, "open64");
  real_openat = dlsym(RTLD_NEXT, "openat");
  real_openat64 = dlsym(RTLD_NEXT, "openat64");
  real_write = dlsym(RTLD_NEXT, "write");
  real_pwrite = dlsym(RTLD_NEXT, "pwrite");
  real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
  real_pread = dlsym(RTLD_NEXT, "pread");
  real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
  real_ftruncate64 = dlsym(RTLD_NEXT, "ftruncate64");
  real_fsync = dlsym(RTLD_NEXT, "fsync");
  real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
  real_close = dlsym(RTLD_NEXT, "close");
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/** a database, WAL or journal file under POWERCUT_DIR */
static int wanted(const char *path) {
  const char *dir = getenv("POWERCUT_DIR");
  if (!dir || !path || strncmp(path, dir, strlen(dir)) != 0) return 0;
  return ends_with(path, ".db") || ends_with(path, ".db-wal") || ends_with(path, ".db-journal");
}

static void put_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = real_write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      perror("powercut shim: writing the undo log");
      abort();
    }
    p += w;
    n -= (size_t)w;
  }
}

/** the log's header: the file's length at its last sync, then its path; records follow */
static void write_header(struct file *f, off_t synced, const char *path) {
  uint64_t len = (uint64_t)synced;
  if (path) {
    if (real_ftruncate(f->log, 0) != 0 || lseek(f->log, 0, SEEK_SET) < 0) abort();
    uint32_t n = (uint32_t)strlen(path);
    put_all(f->log, &len, sizeof len);
    put_all(f->log, &n, sizeof n);
    put_all(f->log, path, n);
    f->header = (off_t)(sizeof len + sizeof n + n);
  } else {
    // synced: the records go, the path stays
    if (real_pwrite(f->log, &len, sizeof len, 0) != (ssize_t)sizeof len) abort();
    if (real_ftruncate(f->log, f->header) != 0) abort();
  }
}

static void track(int fd, const char *path) {
  if (fd < 0 || fd >= MAX_FD || !wanted(path)) return;
  struct stat st;
  if (fstat(fd, &st) != 0) return;
  pthread_mutex_lock(&mu);
  int i;
  for (i = 0; i < nfiles; i++) if (files[i].dev == st.st_dev && files[i].ino == st.st_ino) break;
  if (i < nfiles && strcmp(files[i].path, path) != 0) {
    // the inode of a deleted file (the rollback journal) given to a new one (the WAL): a new file from here
    snprintf(files[i].path, sizeof files[i].path, "%s", path);
    write_header(&files[i], st.st_size, path);
  }
  if (i == nfiles) {
    if (nfiles == MAX_FILES) { pthread_mutex_unlock(&mu); return; }
    char name[4096];
    snprintf(name, sizeof name, "%s/%lu-%lu.undo", getenv("POWERCUT_LOG"), (unsigned long)st.st_dev, (unsigned long)st.st_ino);
    int log = real_open(name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log < 0) { perror("powercut shim: opening the undo log"); abort(); }
    files[i].dev = st.st_dev;
    files[i].ino = st.st_ino;
    files[i].log = log;
    snprintf(files[i].path, sizeof files[i].path, "%s", path);
    // what is there when the process first opens it is on disk (a previous life was cut and played back)
    write_header(&files[i], st.st_size, path);
    nfiles++;
  }
  tracked[fd] = (signed char)(i + 1);
  pthread_mutex_unlock(&mu);
}

/** save the bytes [off, off+n) of the file as they are now (only those that exist), before they change */
static void save(int fd, off_t off, size_t n) {
  if (fd < 0 || fd >= MAX_FD || !tracked[fd]) return;
  struct file *f = &files[tracked[fd] - 1];
  struct stat st;
  if (fstat(fd, &st) != 0) return;
  if (off >= st.st_size) return;
  size_t len = n;
  if ((off_t)(off + len) > st.st_size) len = (size_t)(st.st_size - off);
  char *old = malloc(len ? len : 1);
  ssize_t got = real_pread(fd, old, len, off);
  if (got < 0) got = 0;
  uint64_t o = (uint64_t)off;
  uint32_t l = (uint32_t)got;
  if (lseek(f->log, 0, SEEK_END) < 0) abort();
  put_all(f->log, &o, sizeof o);
  put_all(f->log, &l, sizeof l);
  put_all(f->log, old, (size_t)got);
  free(old);
}

static void synced(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return;
  for (int i = 0; i < nfiles; i++) {
    if (files[i].dev == st.st_dev && files[i].ino == st.st_ino) write_header(&files[i], st.st_size, NULL);
  }
}

#define OPEN_MODE(flags, mode) \
  mode_t mode = 0; \
  if ((flags) & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }

int open(const char *path, int flags, ...) {
  OPEN_MODE(flags, mode);
  int fd = real_open(path, flags, mode);
  track(fd, path);
  return fd;
}
int open64(const char *path, int flags, ...) {
  OPEN_MODE(flags, mode);
  int fd = real_open64(path, flags, mode);
  track(fd, path);
  return fd;
}
int openat(int dirfd, const char *path, int flags, ...) {
  OPEN_MODE(flags, mode);
  int fd = real_openat(dirfd, path, flags, mode);
  if (path[0] == '/') track(fd, path);
  return fd;
}
int openat64(int dirfd, const char *path, int flags, ...) {
  OPEN_MODE(flags, mode);
  int fd = real_openat64(dirfd, path, flags, mode);
  if (path[0] == '/') track(fd, path);
  return fd;
}

ssize_t write(int fd, const void *buf, size_t n) {
  if (fd >= 0 && fd < MAX_FD && tracked[fd]) {
    pthread_mutex_lock(&mu);
    save(fd, lseek(fd, 0, SEEK_CUR), n);
    ssize_t r = real_write(fd, buf, n);
    pthread_mutex_unlock(&mu);
    return r;
  }
  return real_write(fd, buf, n);
}

static ssize_t pw(ssize_t (*real)(int, const void *, size_t, off_t), int fd, const void *buf, size_t n, off_t off) {
  if (fd >= 0 && fd < MAX_FD && tracked[fd]) {
    pthread_mutex_lock(&mu);
    save(fd, off, n);
    ssize_t r = real(fd, buf, n, off);
    pthread_mutex_unlock(&mu);
    return r;
  }
  return real(fd, buf, n, off);
}
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) { return pw(real_pwrite, fd, buf, n, off); }
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) { return pw(real_pwrite64, fd, buf, n, off); }

static int trunc_(int (*real)(int, off_t), int fd, off_t len) {
  if (fd >= 0 && fd < MAX_FD && tracked[fd]) {
    pthread_mutex_lock(&mu);
    struct stat st;
    if (fstat(fd, &st) == 0 && len < st.st_size) save(fd, len, (size_t)(st.st_size - len));
    int r = real(fd, len);
    pthread_mutex_unlock(&mu);
    return r;
  }
  return real(fd, len);
}
int ftruncate(int fd, off_t len) { return trunc_(real_ftruncate, fd, len); }
int ftruncate64(int fd, off_t len) { return trunc_(real_ftruncate64, fd, len); }

static int sync_(int (*real)(int), int fd) {
  int r = real(fd);
  if (r == 0) {
    pthread_mutex_lock(&mu);
    synced(fd);
    pthread_mutex_unlock(&mu);
  }
  return r;
}
int fsync(int fd) { return sync_(real_fsync, fd); }
int fdatasync(int fd) { return sync_(real_fdatasync, fd); }

int close(int fd) {
  if (fd >= 0 && fd < MAX_FD) tracked[fd] = 0;
  return real_close(fd);
}
