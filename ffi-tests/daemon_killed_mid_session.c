/* daemon_killed_mid_session: when psmd dies by SIGKILL (no goodbye), a
 * thread blocked in psm_ping gets PSM_ERR_DISCONNECTED, every later call on
 * the connection does too, the stale socket is left behind, and a new
 * psm_connect starts a fresh daemon over it. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

/* Pings the thread must have done before the kill, so it is mid-loop. */
#define WARMUP_PINGS 100
#define EXIT_WAIT_MS 10000

struct pinger {
    psm_conn *conn;
    pthread_mutex_t lock;
    long pings;
    psm_result result;
};

static long pings_so_far(struct pinger *p)
{
    long n;

    CHECK_EQ(pthread_mutex_lock(&p->lock), 0);
    n = p->pings;
    CHECK_EQ(pthread_mutex_unlock(&p->lock), 0);
    return n;
}

static void *ping_until_failure(void *arg)
{
    struct pinger *p = arg;
    psm_result r;

    while ((r = psm_ping(p->conn)) == PSM_OK) {
        CHECK_EQ(pthread_mutex_lock(&p->lock), 0);
        p->pings++;
        CHECK_EQ(pthread_mutex_unlock(&p->lock), 0);
    }
    p->result = r;
    return NULL;
}

int main(void)
{
    psm_conn *conn = NULL;
    psm_conn *fresh = NULL;
    psm_stream *s = NULL;
    psm_event *ev = NULL;
    char *json = NULL;
    uint8_t out[32];
    size_t out_len = 0;
    struct pinger p;
    struct stat st;
    pthread_t thread;
    pid_t pid;
    pid_t new_pid;

    CHECK_OK(psm_connect("daemon_killed_mid_session", PSM_CONNECT_NO_SPAWN, &conn));
    pid = (pid_t)status_int(conn, "pid");
    CHECK_EQ(pid, fixture_daemon_pid());

    p.conn = conn;
    p.pings = 0;
    p.result = PSM_OK;
    CHECK_EQ(pthread_mutex_init(&p.lock, NULL), 0);
    CHECK_EQ(pthread_create(&thread, NULL, ping_until_failure, &p), 0);
    while (pings_so_far(&p) < WARMUP_PINGS)
        sleep_ms(1);

    CHECK_EQ(kill(pid, SIGKILL), 0);
    /* Returns once the thread's psm_ping does: no timing asserted. */
    CHECK_EQ(pthread_join(thread, NULL), 0);
    CHECK_EQ(p.result, PSM_ERR_DISCONNECTED);
    CHECK_EQ(pthread_mutex_destroy(&p.lock), 0);

    CHECK_EQ(psm_ping(conn), PSM_ERR_DISCONNECTED);
    CHECK_EQ(psm_status_json(conn, &json), PSM_ERR_DISCONNECTED);
    CHECK(json == NULL);
    CHECK_EQ(
        psm_digest(conn, PSM_HASH_SHA256, (const uint8_t *)"abc", 3, out, sizeof out, &out_len),
        PSM_ERR_DISCONNECTED);
    CHECK_EQ(psm_digest_stream(conn, PSM_HASH_SHA256, &s), PSM_ERR_DISCONNECTED);
    CHECK(s == NULL);
    CHECK_EQ(psm_next_event(conn, 0, &ev), PSM_ERR_DISCONNECTED);
    CHECK(ev == NULL);

    /* SIGKILL gave psmd no chance to remove its socket. */
    CHECK(stat(fixture_socket(), &st) == 0 && S_ISSOCK(st.st_mode));

    /* Reconnect at once, while the old daemon may still be dying (and
     * holding its daemon.lock): the new psmd must wait for it, not step
     * aside. */
    CHECK_OK(psm_connect("daemon_killed_mid_session", 0, &fresh));
    CHECK(wait_process_gone(pid, EXIT_WAIT_MS));
    new_pid = (pid_t)status_int(fresh, "pid");
    CHECK(new_pid != pid);
    CHECK(process_alive(new_pid));
    CHECK_EQ(fixture_daemon_pid(), new_pid);
    CHECK_OK(psm_ping(fresh));

    /* The old connection stays dead; the new daemon did not revive it. */
    CHECK_EQ(psm_ping(conn), PSM_ERR_DISCONNECTED);

    psm_conn_free(fresh);
    psm_conn_free(conn);
    return 0;
}
