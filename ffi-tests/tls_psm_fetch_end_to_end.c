/* tls_psm_fetch_end_to_end: examples-c/psm-fetch (from PSM_EXAMPLES), as a
 * user runs it, against `openssl s_server -www`:
 *  - before the CA is imported it exits 1 and says why, in psm_result_str's
 *    words (the issuer is unknown), and prints no body;
 *  - after, it exits 0 with the server's page on stdout and, on stderr, the
 *    HTTP status and the security information (TLS 1.3, verification PSM_OK);
 *  - with --ask but no terminal to ask on, psmd's question is cancelled;
 *  - with PSM_BROWSER set, psmd asks in its HTML dialog: psm-fetch prints
 *    the URL and starts the "browser" (answer-dialog.py, which loads the
 *    page and submits "once" or "reject"), and the answer decides;
 *  - a URL it cannot use is a usage error (exit 2). */

#include "check.h"
#include "fixture.h"
#include "tls_fixture.h"

#include <psm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs `psm-fetch ARGS`: stdout into out, stderr into err; returns the exit status. */
static int fetch(const char *args, char *out, size_t out_cap, char *err, size_t err_cap)
{
    static char command[8192];
    char err_path[4096];
    const char *examples = getenv("PSM_EXAMPLES");
    uint8_t *stderr_text;
    size_t len = 0;
    int status;

    CHECK(examples != NULL && examples[0] != '\0');
    fixture_path("psm-fetch.err", err_path, sizeof err_path);
    CHECK((size_t)snprintf(command, sizeof command, "setsid -w '%s/psm-fetch' %s 2>'%s'", examples,
                           args, err_path) < sizeof command);
    status = command_run(command, out, out_cap);
    stderr_text = file_read(err_path, &len);
    stderr_text[len] = '\0';
    CHECK(len < err_cap);
    memcpy(err, stderr_text, len + 1);
    free(stderr_text);
    fprintf(stderr, "$ psm-fetch %s   (exit %d)\n%s", args, status, err);
    return status;
}

int main(void)
{
    static char out[65536];
    static char err[65536];
    char args[256];
    psm_conn *conn = NULL;
    psm_cert *ca;
    s_server server;

    CHECK_OK(psm_connect_to(fixture_socket(), "tls_psm_fetch", PSM_CONNECT_NO_SPAWN, &conn));

    s_server_start(&server, "-www -cert server.pem -key server.key", NULL, NULL);
    snprintf(args, sizeof args, "https://localhost:%u/", (unsigned)server.port);
    CHECK_EQ(fetch(args, out, sizeof out, err, sizeof err), 1);
    CHECK(strstr(err, psm_result_str(PSM_ERR_CERT_UNKNOWN_ISSUER)) != NULL);
    CHECK_EQ(strlen(out), 0);
    s_server_stop(&server, 0);

    /* --ask with no terminal to ask on (setsid: no controlling terminal)
     * cancels psmd's question. */
    s_server_start(&server, "-www -cert server.pem -key server.key", NULL, NULL);
    snprintf(args, sizeof args, "--ask https://localhost:%u/ < /dev/null", (unsigned)server.port);
    CHECK_EQ(fetch(args, out, sizeof out, err, sizeof err), 1);
    CHECK(strstr(err, psm_result_str(PSM_ERR_USER_CANCELLED)) != NULL);
    s_server_stop(&server, 0);

    /* The dialog, answered "once" by the stand-in browser, then "reject". */
    s_server_start(&server, "-www -cert server.pem -key server.key", NULL, NULL);
    snprintf(args, sizeof args, "https://localhost:%u/", (unsigned)server.port);
    {
        char browser[4200];
        const char *answer = getenv("PSM_ANSWER_DIALOG");
        CHECK(answer != NULL);
        snprintf(browser, sizeof browser, "python3 %s once", answer);
        CHECK_EQ(setenv("PSM_BROWSER", browser, 1), 0);
        CHECK_EQ(fetch(args, out, sizeof out, err, sizeof err), 0);
        CHECK(strstr(err, "psm asks you in a dialog") != NULL && strstr(err, "http://127.0.0.1:") != NULL);
        CHECK(strstr(err, "the dialog is done") != NULL);
        CHECK(strstr(err, "\"override\": \"once\"") != NULL);
        CHECK(strstr(out, "<HTML>") != NULL);
        s_server_stop(&server, 0);
        s_server_start(&server, "-www -cert server.pem -key server.key", NULL, NULL);
        snprintf(args, sizeof args, "https://localhost:%u/", (unsigned)server.port);
        snprintf(browser, sizeof browser, "python3 %s reject", answer);
        CHECK_EQ(setenv("PSM_BROWSER", browser, 1), 0);
        CHECK_EQ(fetch(args, out, sizeof out, err, sizeof err), 1);
        CHECK(strstr(err, psm_result_str(PSM_ERR_CERT_UNKNOWN_ISSUER)) != NULL);
        CHECK_EQ(unsetenv("PSM_BROWSER"), 0);
    }
    s_server_stop(&server, 0);

    ca = tls_trust_ca(conn);
    s_server_start(&server, "-www -cert server.pem -key server.key", NULL, NULL);
    snprintf(args, sizeof args, "https://localhost:%u/", (unsigned)server.port);
    CHECK_EQ(fetch(args, out, sizeof out, err, sizeof err), 0);
    /* s_server -www answers with a page about the connection. */
    CHECK(strstr(out, "<HTML>") != NULL);
    CHECK(strstr(out, "s_server") != NULL && strstr(out, "-www") != NULL);
    CHECK(strstr(out, "HTTP/1.0") == NULL); /* the header is not part of the body */
    CHECK(strstr(err, "HTTP/1.0 200 ok") != NULL);
    CHECK(strstr(err, "\"version\": \"TLSv1.3\"") != NULL);
    CHECK(strstr(err, "\"result\": \"PSM_OK\"") != NULL);
    s_server_stop(&server, 0);

    CHECK_EQ(fetch("http://localhost/", out, sizeof out, err, sizeof err), 2);
    CHECK_EQ(fetch("https://localhost:0/", out, sizeof out, err, sizeof err), 2);
    CHECK_EQ(fetch("'https://localhost/a b'", out, sizeof out, err, sizeof err), 2);
    CHECK_EQ(fetch("", out, sizeof out, err, sizeof err), 2);

    psm_cert_free(ca);
    psm_conn_free(conn);
    return 0;
}
