/* connect_and_ping: a connection answers many pings in a row, and
 * psm_version() agrees with the PSM_VERSION_* macros. */

#include "check.h"

#include <psm.h>

#include <stdio.h>
#include <string.h>

#define PINGS 1000

int main(void)
{
    psm_conn *conn = NULL;
    char expected[32];
    int i;

    snprintf(expected, sizeof expected, "%d.%d.%d", PSM_VERSION_MAJOR, PSM_VERSION_MINOR,
             PSM_VERSION_PATCH);
    CHECK(psm_version() != NULL);
    CHECK(strcmp(psm_version(), expected) == 0);

    CHECK_OK(psm_connect("connect_and_ping", PSM_CONNECT_NO_SPAWN, &conn));
    CHECK(conn != NULL);
    for (i = 0; i < PINGS; i++)
        CHECK_OK(psm_ping(conn));

    psm_conn_free(conn);
    return 0;
}
