/* autostart_spawns_daemon: with no psmd running (PSM_FIXTURE_NO_DAEMON=1),
 * PSM_CONNECT_NO_SPAWN fails with PSM_ERR_DISCONNECTED, a plain psm_connect
 * starts the daemon (its daemon.lock pid is a live process that reports the
 * same pid), and a second connection reaches that same daemon. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <sys/stat.h>

int main(void)
{
    psm_conn *first = NULL;
    psm_conn *second = NULL;
    struct stat st;
    pid_t pid;

    CHECK(stat(fixture_socket(), &st) != 0);
    CHECK_EQ(psm_connect("autostart_spawns_daemon", PSM_CONNECT_NO_SPAWN, &first),
             PSM_ERR_DISCONNECTED);
    CHECK(first == NULL);

    CHECK_OK(psm_connect("autostart_spawns_daemon", 0, &first));
    CHECK(first != NULL);
    CHECK(stat(fixture_socket(), &st) == 0 && S_ISSOCK(st.st_mode));
    pid = fixture_daemon_pid();
    CHECK(process_alive(pid));
    CHECK_EQ(status_int(first, "pid"), pid);

    /* Now it runs, NO_SPAWN finds it. */
    CHECK_OK(psm_connect("autostart_spawns_daemon", PSM_CONNECT_NO_SPAWN, &second));
    CHECK_EQ(status_int(second, "pid"), pid);
    CHECK(status_int(second, "sessions") >= 2);
    CHECK_EQ(fixture_daemon_pid(), pid);

    psm_conn_free(second);
    psm_conn_free(first);
    return 0;
}
