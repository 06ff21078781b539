/* bench.h: what ping-bench, sign-bench, p11sign-bench and smime-bench share: per-call timing on
 * CLOCK_MONOTONIC, the median/99th-percentile summary of a run, and exact
 * reads and writes on a socket. Include after defining _POSIX_C_SOURCE. */

#ifndef PSM_BENCH_H
#define PSM_BENCH_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* One row of a benchmark table. */
struct result {
    const char *name;
    long calls;
    double p50_us;
    double p99_us;
    double ops_per_s;
};

static inline uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

/* Sorts the `calls` per-call samples (ns) and fills in r from them and
 * the run's total time. */
static inline void summarize(struct result *r, uint64_t *samples, long calls, uint64_t total_ns)
{
    qsort(samples, (size_t)calls, sizeof samples[0], compare_u64);
    r->calls = calls;
    r->p50_us = (double)samples[calls / 2] / 1000.0;
    r->p99_us = (double)samples[(calls * 99) / 100] / 1000.0;
    r->ops_per_s = (double)calls * 1e9 / (double)total_ns;
}

/* Untimed calls first (connection setup, sessions, page faults, CPU
 * frequency): a tenth of a run, at most this many. */
#define MAX_WARMUP_CALLS 200

/* A signer: signs the benchmark's message once; 0 on success. */
typedef int (*sign_fn)(void *ctx);

/* Calls sign `calls` times (after a warm-up), timing each call into
 * samples, and fills in r. */
static inline int run_timed(sign_fn sign, void *ctx, long calls, uint64_t *samples, struct result *r)
{
    long warmup = calls / 10 < MAX_WARMUP_CALLS ? calls / 10 : MAX_WARMUP_CALLS;
    uint64_t start = 0;
    long i;

    for (i = -warmup; i < calls; i++) {
        uint64_t t0 = 0;
        if (i == 0)
            start = now_ns();
        if (i >= 0)
            t0 = now_ns();
        if (sign(ctx) != 0)
            return -1;
        if (i >= 0)
            samples[i] = now_ns() - t0;
    }
    summarize(r, samples, calls, now_ns() - start);
    return 0;
}

/* Reads or writes exactly len bytes; 0, or -1 with errno set (0 = EOF). */
static inline int transfer_all(int fd, unsigned char *buf, size_t len, int writing)
{
    while (len > 0) {
        ssize_t n = writing ? send(fd, buf, len, MSG_NOSIGNAL) : read(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = 0;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

#endif /* PSM_BENCH_H */
