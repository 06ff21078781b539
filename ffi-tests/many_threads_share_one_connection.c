/* many_threads_share_one_connection: 8 threads share one psm_conn, each
 * doing 2000 pings and 2000 digests of its own messages; every call succeeds
 * and every thread gets its own digest back (replies never cross). */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define THREADS 8
#define ROUNDS 2000
/* Messages per thread, cycled, so a reply for the wrong request shows. */
#define VARIANTS 4

static const uint32_t algs[] = {PSM_HASH_SHA1, PSM_HASH_SHA256, PSM_HASH_SHA384, PSM_HASH_SHA512};

struct worker {
    psm_conn *conn;
    uint32_t alg;
    char messages[VARIANTS][64];
    uint8_t expected[VARIANTS][64];
    size_t expected_len;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    uint8_t out[64];
    size_t out_len;
    int i;

    for (i = 0; i < ROUNDS; i++) {
        const char *msg = w->messages[i % VARIANTS];

        CHECK_OK(psm_ping(w->conn));
        out_len = 0;
        CHECK_OK(psm_digest(w->conn, w->alg, (const uint8_t *)msg, strlen(msg), out, sizeof out,
                            &out_len));
        CHECK_EQ(out_len, w->expected_len);
        CHECK(memcmp(out, w->expected[i % VARIANTS], out_len) == 0);
    }
    return NULL;
}

int main(void)
{
    static struct worker workers[THREADS];
    pthread_t threads[THREADS];
    psm_conn *conn = NULL;
    long long served_before;
    int t;
    int v;

    CHECK_OK(psm_connect("many_threads_share_one_connection", PSM_CONNECT_NO_SPAWN, &conn));

    /* Expected digests, computed one at a time before any sharing. */
    for (t = 0; t < THREADS; t++) {
        struct worker *w = &workers[t];
        w->conn = conn;
        w->alg = algs[t % 4];
        for (v = 0; v < VARIANTS; v++) {
            snprintf(w->messages[v], sizeof w->messages[v], "thread %d, message %d", t, v);
            CHECK_OK(psm_digest(conn, w->alg, (const uint8_t *)w->messages[v],
                                strlen(w->messages[v]), w->expected[v], sizeof w->expected[v],
                                &w->expected_len));
        }
    }
    served_before = status_int(conn, "requests_served");

    for (t = 0; t < THREADS; t++)
        CHECK_EQ(pthread_create(&threads[t], NULL, work, &workers[t]), 0);
    for (t = 0; t < THREADS; t++)
        CHECK_EQ(pthread_join(threads[t], NULL), 0);

    /* Each ping and digest reached psmd (plus the status request itself). */
    CHECK(status_int(conn, "requests_served") >= served_before + 2LL * THREADS * ROUNDS + 1);
    CHECK_EQ(status_int(conn, "sessions"), 1);

    psm_conn_free(conn);
    return 0;
}
