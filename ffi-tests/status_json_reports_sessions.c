/* status_json_reports_sessions: psm_status_json is a JSON object whose pid
 * is the daemon's, whose sessions count connections as they come, and whose
 * requests_served grows with every request. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <string.h>

#define PINGS 25

int main(void)
{
    psm_conn *conn = NULL;
    psm_conn *other = NULL;
    char *json = NULL;
    long long sessions;
    long long served;
    long long served_after;
    int i;

    CHECK_OK(psm_connect("status_json_reports_sessions", PSM_CONNECT_NO_SPAWN, &conn));

    CHECK_OK(psm_status_json(conn, &json));
    CHECK(json != NULL);
    CHECK(json[0] == '{' && json[strlen(json) - 1] == '}');
    CHECK(strstr(json, "\"version\":\"") != NULL);
    CHECK_EQ(json_int(json, "pid"), fixture_daemon_pid());
    sessions = json_int(json, "sessions");
    served = json_int(json, "requests_served");
    CHECK_EQ(sessions, 1);
    CHECK(served >= 1);
    CHECK(json_int(json, "channels") == 0);
    CHECK(json_int(json, "uptime_secs") >= 0);
    psm_free(json);
    json = NULL;

    for (i = 0; i < PINGS; i++)
        CHECK_OK(psm_ping(conn));
    served_after = status_int(conn, "requests_served");
    /* The pings and this status request at least. */
    CHECK(served_after >= served + PINGS + 1);

    CHECK_OK(psm_connect("status_json_reports_sessions", PSM_CONNECT_NO_SPAWN, &other));
    CHECK_EQ(status_int(conn, "sessions"), sessions + 1);
    CHECK_EQ(status_int(other, "pid"), status_int(conn, "pid"));
    psm_conn_free(other);

    /* The daemon notices the close asynchronously. */
    for (i = 0; i < 100 && status_int(conn, "sessions") != sessions; i++)
        sleep_ms(20);
    CHECK_EQ(status_int(conn, "sessions"), sessions);

    psm_conn_free(conn);
    return 0;
}
