/* Times every fsync and fdatasync of the process it is preloaded into.
 *
 * Built and preloaded by `python -m bench.syncsplit` (LD_PRELOAD): each call is passed
 * on to libc and recorded as (kind, start, duration, file name), the start on the
 * monotonic clock Python's time.perf_counter reads, the name read from /proc/self/fd
 * after the call (outside its timing). synctime_dump(path) writes what was recorded
 * since the last dump, one line per call: "d|f start_ns duration_ns basename".
 * Linux only (dlsym RTLD_NEXT, /proc/self/fd). A diagnostic: nothing ships with it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_CALLS 100000
#define NAME_LEN 64

struct call {
    char kind;
    long long start, duration;
    char name[NAME_LEN];
};

static struct call calls[MAX_CALLS];
static int count;

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void record(char kind, int fd, long long start, long long duration) {
    if (count >= MAX_CALLS)
        return;
    struct call *c = &calls[count++];
    char link[64], target[1024];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, target, sizeof target - 1);
    target[len > 0 ? len : 0] = '\0';
    const char *base = strrchr(target, '/');
    snprintf(c->name, NAME_LEN, "%s", base ? base + 1 : target);
    c->kind = kind;
    c->start = start;
    c->duration = duration;
}

/* Call the real sync found under ``name``, timed and recorded; errno as it left it. */
static int timed(int (**real)(int), const char *name, char kind, int fd) {
    if (!*real)
        *real = (int (*)(int))dlsym(RTLD_NEXT, name);
    long long start = now_ns();
    int rc = (*real)(fd);
    int saved = errno;
    record(kind, fd, start, now_ns() - start);
    errno = saved;
    return rc;
}

int fdatasync(int fd) {
    static int (*real)(int);
    return timed(&real, "fdatasync", 'd', fd);
}

int fsync(int fd) {
    static int (*real)(int);
    return timed(&real, "fsync", 'f', fd);
}

int synctime_dump(const char *path) {
    FILE *out = fopen(path, "w");
    if (!out)
        return -1;
    for (int i = 0; i < count; i++)
        fprintf(out, "%c %lld %lld %s\n", calls[i].kind, calls[i].start, calls[i].duration,
                calls[i].name[0] ? calls[i].name : "?");
    int lost = count >= MAX_CALLS;
    count = 0;
    fclose(out);
    return lost;
}
