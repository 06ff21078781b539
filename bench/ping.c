/* ping-bench: round-trip latency of psm_ping against the floor set by the
 * kernel: a bare ping-pong of frames of the same size over a Unix socket.
 *
 *   ping-bench [N] [both|psm|bare]      (N calls, default 200000)
 *
 * Each call is timed on its own (CLOCK_MONOTONIC); the table shows the
 * median and 99th percentile in microseconds and the throughput of the
 * whole run, then psm's median over the bare one. psm mode connects to the
 * user's psmd ($PSM_SOCKET), starting it if needed. */

#define _POSIX_C_SOURCE 200809L

#include "bench.h"

#include <psm.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CALLS 200000
/* Untimed calls first: connection setup, page faults, CPU frequency. */
#define WARMUP_CALLS 2000

/* The frames psm exchanges for a ping: a 4-byte big-endian length, then a
 * postcard body. The Ping request body is the request id (a varint, 1-3
 * bytes over a run like this) and the variant index: 2-4 bytes. The Pong
 * reply body is the frame variant, the id, Ok and the Pong variant: 4-6
 * bytes. The bare ping-pong uses 7 bytes each way, inside those ranges. */
#define BARE_REQUEST_BYTES 7
#define BARE_REPLY_BYTES 7

/* The bare server: answer every request frame with a reply frame until EOF. */
static void echo_server(int fd)
{
    unsigned char request[BARE_REQUEST_BYTES];
    unsigned char reply[BARE_REPLY_BYTES] = {0, 0, 0, BARE_REPLY_BYTES - 4, 0, 1, 0};

    while (transfer_all(fd, request, sizeof request, 0) == 0)
        if (transfer_all(fd, reply, sizeof reply, 1) != 0)
            break;
    _exit(0);
}

static int bench_bare(long calls, uint64_t *samples, struct result *r)
{
    unsigned char request[BARE_REQUEST_BYTES] = {0, 0, 0, BARE_REQUEST_BYTES - 4, 1, 1, 0};
    unsigned char reply[BARE_REPLY_BYTES];
    int fds[2] = {-1, -1};
    pid_t server = -1;
    int status = -1;
    uint64_t start = 0;
    long i;

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) {
        perror("ping-bench: socketpair");
        goto cleanup;
    }
    server = fork();
    if (server < 0) {
        perror("ping-bench: fork");
        goto cleanup;
    }
    if (server == 0) {
        close(fds[0]);
        echo_server(fds[1]);
    }
    close(fds[1]);
    fds[1] = -1;

    for (i = -WARMUP_CALLS; i < calls; i++) {
        uint64_t t0 = 0;
        if (i == 0)
            start = now_ns();
        if (i >= 0)
            t0 = now_ns();
        if (transfer_all(fds[0], request, sizeof request, 1) != 0 ||
            transfer_all(fds[0], reply, sizeof reply, 0) != 0) {
            perror("ping-bench: bare ping-pong");
            goto cleanup;
        }
        if (i >= 0)
            samples[i] = now_ns() - t0;
    }
    summarize(r, samples, calls, now_ns() - start);
    status = 0;

cleanup:
    if (fds[0] >= 0)
        close(fds[0]); /* EOF ends the server */
    if (fds[1] >= 0)
        close(fds[1]);
    if (server > 0)
        waitpid(server, NULL, 0);
    return status;
}

static int bench_psm(long calls, uint64_t *samples, struct result *r)
{
    psm_conn *conn = NULL;
    int status = -1;
    uint64_t start = 0;
    psm_result res;
    long i;

    res = psm_connect("ping-bench", 0, &conn);
    if (res != PSM_OK) {
        const char *detail = psm_last_error();
        fprintf(stderr, "ping-bench: connecting to psmd failed: %s: %s\n", psm_result_str(res),
                detail);
        goto cleanup;
    }

    for (i = -WARMUP_CALLS; i < calls; i++) {
        uint64_t t0 = 0;
        if (i == 0)
            start = now_ns();
        if (i >= 0)
            t0 = now_ns();
        res = psm_ping(conn);
        if (res != PSM_OK) {
            const char *detail = psm_last_error();
            fprintf(stderr, "ping-bench: psm_ping failed: %s: %s\n", psm_result_str(res), detail);
            goto cleanup;
        }
        if (i >= 0)
            samples[i] = now_ns() - t0;
    }
    summarize(r, samples, calls, now_ns() - start);
    status = 0;

cleanup:
    psm_conn_free(conn);
    return status;
}

static void print_row(const struct result *r)
{
    printf("%-6s %10ld %10.2f %10.2f %12.0f\n", r->name, r->calls, r->p50_us, r->p99_us,
           r->ops_per_s);
}

int main(int argc, char **argv)
{
    long calls = DEFAULT_CALLS;
    const char *mode = "both";
    uint64_t *samples = NULL;
    struct result bare = {"bare", 0, 0, 0, 0};
    struct result psm = {"psm", 0, 0, 0, 0};
    int run_bare;
    int run_psm;
    int status = EXIT_FAILURE;

    if (argc > 1) {
        char *end;
        calls = strtol(argv[1], &end, 10);
        if (*end != '\0' || calls < 100) {
            fprintf(stderr, "usage: ping-bench [N >= 100] [both|psm|bare]\n");
            goto cleanup;
        }
    }
    if (argc > 2)
        mode = argv[2];
    run_bare = strcmp(mode, "both") == 0 || strcmp(mode, "bare") == 0;
    run_psm = strcmp(mode, "both") == 0 || strcmp(mode, "psm") == 0;
    if (!run_bare && !run_psm) {
        fprintf(stderr, "ping-bench: unknown mode '%s' (both, psm or bare)\n", mode);
        goto cleanup;
    }

    samples = malloc((size_t)calls * sizeof samples[0]);
    if (samples == NULL) {
        perror("ping-bench: malloc");
        goto cleanup;
    }
    if (run_bare && bench_bare(calls, samples, &bare) != 0)
        goto cleanup;
    if (run_psm && bench_psm(calls, samples, &psm) != 0)
        goto cleanup;

    printf("%-6s %10s %10s %10s %12s\n", "mode", "calls", "p50 us", "p99 us", "ops/s");
    if (run_bare)
        print_row(&bare);
    if (run_psm)
        print_row(&psm);
    if (run_bare && run_psm)
        printf("psm p50 / bare p50 = %.2f (goal: within 3x)\n", psm.p50_us / bare.p50_us);
    status = EXIT_SUCCESS;

cleanup:
    free(samples);
    return status;
}
