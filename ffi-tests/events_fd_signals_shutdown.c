/* events_fd_signals_shutdown: psm_conn_fd is quiet while nothing happens;
 * when psmd gets SIGTERM it becomes readable, psm_next_event returns a
 * PSM_EVENT_SHUTDOWN event, later calls fail with PSM_ERR_DISCONNECTED and
 * psmd has removed its socket. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <errno.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/stat.h>

/* Generous bounds for a loaded CI machine; the test does not time psmd. */
#define SHUTDOWN_WAIT_S 10
#define EXIT_WAIT_MS 10000

/* select() for reading on fd: 1 readable, 0 not within timeout_s. */
static int readable(int fd, long timeout_s)
{
    fd_set set;
    struct timeval tv;
    int n;

    do {
        FD_ZERO(&set);
        FD_SET(fd, &set);
        tv.tv_sec = timeout_s;
        tv.tv_usec = 0;
        n = select(fd + 1, &set, NULL, NULL, &tv);
    } while (n < 0 && errno == EINTR);
    CHECK(n >= 0);
    return n == 1 && FD_ISSET(fd, &set);
}

int main(void)
{
    psm_conn *conn = NULL;
    psm_event *ev = NULL;
    uint32_t w = 1;
    uint32_t h = 1;
    struct stat st;
    pid_t pid;
    int fd;

    CHECK_OK(psm_connect("events_fd_signals_shutdown", PSM_CONNECT_NO_SPAWN, &conn));
    fd = psm_conn_fd(conn);
    CHECK(fd >= 0);
    CHECK_EQ(psm_conn_fd(conn), fd); /* one descriptor for the connection's life */

    CHECK_EQ(psm_next_event(conn, 0, &ev), PSM_ERR_TIMEOUT);
    CHECK(ev == NULL);
    CHECK(!readable(fd, 0));
    CHECK_OK(psm_ping(conn)); /* a reply is not an event */
    CHECK(!readable(fd, 0));
    CHECK_EQ(psm_next_event(conn, 0, &ev), PSM_ERR_TIMEOUT);

    pid = (pid_t)status_int(conn, "pid");
    CHECK_EQ(pid, fixture_daemon_pid());
    CHECK_EQ(kill(pid, SIGTERM), 0);

    CHECK(readable(fd, SHUTDOWN_WAIT_S));
    /* The select() loop pattern: the fd said readable, so a zero timeout
     * must find the event. */
    CHECK_OK(psm_next_event(conn, 0, &ev));
    CHECK(ev != NULL);
    CHECK_EQ(psm_event_kind(ev), PSM_EVENT_SHUTDOWN);
    CHECK(psm_event_dialog_url(ev) == NULL);
    psm_event_dialog_size(ev, &w, &h);
    CHECK_EQ(w, 0);
    CHECK_EQ(h, 0);
    psm_event_free(ev);
    ev = NULL;

    CHECK_EQ(psm_ping(conn), PSM_ERR_DISCONNECTED);
    CHECK_EQ(psm_ping(conn), PSM_ERR_DISCONNECTED);
    /* Once gone, the descriptor stays readable and says so. */
    CHECK(readable(fd, 0));
    CHECK_EQ(psm_next_event(conn, 0, &ev), PSM_ERR_DISCONNECTED);
    CHECK(ev == NULL);

    CHECK(wait_process_gone(pid, EXIT_WAIT_MS));
    CHECK(stat(fixture_socket(), &st) != 0 && errno == ENOENT);

    psm_conn_free(conn);
    return 0;
}
