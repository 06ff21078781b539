/* psm-status: print the status of the user's psmd (starting it if needed)
 * and the version of libpsm.
 *
 *   $ psm-status
 *   {"channels":0,"pid":5956,...}
 *   libpsm 0.1.0
 */

#include <psm.h>

#include <stdio.h>
#include <stdlib.h>

static void report(const char *what, psm_result r)
{
    /* psm_last_error says what failed and what to do about it; read it
     * before any other psm call on this thread. */
    const char *detail = psm_last_error();
    fprintf(stderr, "psm-status: %s failed: %s: %s\n", what, psm_result_str(r), detail);
}

int main(void)
{
    psm_conn *conn = NULL;
    char *json = NULL;
    int status = EXIT_FAILURE;
    psm_result r;

    r = psm_connect("psm-status", 0, &conn);
    if (r != PSM_OK) {
        report("connecting to psmd", r);
        goto cleanup;
    }

    r = psm_status_json(conn, &json);
    if (r != PSM_OK) {
        report("asking psmd for its status", r);
        goto cleanup;
    }

    printf("%s\n", json);
    printf("libpsm %s\n", psm_version());
    if (fflush(stdout) != 0) {
        perror("psm-status: writing to stdout");
        goto cleanup;
    }
    status = EXIT_SUCCESS;

cleanup:
    psm_free(json);
    psm_conn_free(conn);
    return status;
}
