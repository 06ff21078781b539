/* tls_unknown_issuer_asks_the_prompt_handler: `openssl s_server` with a
 * certificate from a CA psm does not know.
 *  - Without a prompt handler psm_ssl_connect fails at once with
 *    PSM_ERR_CERT_UNKNOWN_ISSUER.
 *  - With one, the handler runs inside psm_ssl_connect with a
 *    PSM_PROMPT_SERVER_TRUST prompt (message, details naming the host,
 *    port, error and the server's fingerprint, choices once/always/reject);
 *    answering "once" lets the connection through, and the info's
 *    verification says PSM_ERR_CERT_UNKNOWN_ISSUER with override "once".
 *  - "once" is not remembered: without the handler the next connect fails.
 *  - "always" is: the same server (host, port, certificate) is accepted
 *    without a question, the same certificate on another port is not.
 *  - "reject" fails with the certificate error; a handler that returns an
 *    error without answering makes libpsm cancel (PSM_ERR_USER_CANCELLED);
 *    a handler that returns PSM_OK and leaves the answer to another thread
 *    (psm_prompt_answer_id) lets the connect wait for it. */

#include "check.h"
#include "fixture.h"
#include "tls_fixture.h"

#include <psm.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const char STRANGER[] = "-cert stranger.pem -key stranger.key";

/* What the handler does with a prompt. */
enum how { ANSWER_ONCE, ANSWER_ALWAYS, ANSWER_REJECT, RETURN_ERROR, ANSWER_LATER };

struct handler_state {
    psm_conn *conn;
    enum how how;
    uint16_t port;
    const char *server_sha256;
    int calls;
    uint64_t id;
    pthread_t answerer;
};

/* Checks everything a server-trust prompt for the stranger must say. */
static void check_prompt(const struct handler_state *st, const psm_prompt *prompt)
{
    const char *details = psm_prompt_details_json(prompt);
    char value[128];

    fprintf(stderr, "prompt %llu: %s\n    details: %s\n", (unsigned long long)psm_prompt_id(prompt),
            psm_prompt_message(prompt), details);
    CHECK_EQ(psm_prompt_kind(prompt), PSM_PROMPT_SERVER_TRUST);
    CHECK(psm_prompt_id(prompt) != 0);
    CHECK(psm_prompt_message(prompt) != NULL && psm_prompt_message(prompt)[0] != '\0');
    CHECK(details != NULL);
    json_str(details, "host", value, sizeof value);
    CHECK(strcmp(value, "localhost") == 0);
    CHECK_EQ(json_int(details, "port"), st->port);
    json_str(details, "result", value, sizeof value);
    CHECK(strcmp(value, "PSM_ERR_CERT_UNKNOWN_ISSUER") == 0);
    CHECK(strstr(details, st->server_sha256) != NULL);
    CHECK_EQ(psm_prompt_choice_count(prompt), 3);
    CHECK(strcmp(psm_prompt_choice(prompt, 0), "once") == 0);
    CHECK(strcmp(psm_prompt_choice(prompt, 1), "always") == 0);
    CHECK(strcmp(psm_prompt_choice(prompt, 2), "reject") == 0);
    CHECK(psm_prompt_choice(prompt, 3) == NULL);
}

static void *answer_later(void *arg)
{
    struct handler_state *st = (struct handler_state *)arg;

    /* The connect is blocked on the answer; give it a moment to show it waits. */
    sleep_ms(200);
    CHECK_OK(psm_prompt_answer_id(st->conn, st->id, "once"));
    return NULL;
}

static psm_result on_prompt(void *userdata, const psm_prompt *prompt)
{
    struct handler_state *st = (struct handler_state *)userdata;

    st->calls++;
    check_prompt(st, prompt);
    switch (st->how) {
    case ANSWER_ONCE:
        CHECK(psm_prompt_answer(st->conn, prompt, "no such choice") != PSM_OK);
        CHECK_OK(psm_prompt_answer(st->conn, prompt, "once"));
        return PSM_OK;
    case ANSWER_ALWAYS:
        CHECK_OK(psm_prompt_answer(st->conn, prompt, "always"));
        return PSM_OK;
    case ANSWER_REJECT:
        CHECK_OK(psm_prompt_answer(st->conn, prompt, "reject"));
        return PSM_OK;
    case RETURN_ERROR:
        return PSM_ERR_NO_UI;
    case ANSWER_LATER:
        st->id = psm_prompt_id(prompt);
        CHECK_EQ(pthread_create(&st->answerer, NULL, answer_later, st), 0);
        return PSM_OK;
    }
    return PSM_ERR_INTERNAL;
}

/* psm_ssl_connect to a stranger server that is already running; returns
 * the result. On success the channel must carry a line from the server,
 * and the info must show the certificate error and `override`. */
static psm_result connect_to(psm_conn *conn, struct handler_state *st, s_server *server,
                             const char *override)
{
    static const char line[] = "trusted by the user\n";
    psm_ssl *ssl = NULL;
    psm_result r;
    char got[32];
    char value[64];
    char *json;

    if (st != NULL) {
        st->port = server->port;
        st->calls = 0;
    }
    r = psm_ssl_connect(conn, "localhost", server->port, NULL, &ssl);
    fprintf(stderr, "psm_ssl_connect to the stranger on port %u: %s: %s\n", (unsigned)server->port,
            psm_result_str(r), r == PSM_OK ? "" : psm_last_error());
    if (r != PSM_OK) {
        CHECK(ssl == NULL);
        return r;
    }
    s_server_send(server, line);
    channel_read_exact(psm_ssl_fd(ssl), got, strlen(line));
    CHECK(memcmp(got, line, strlen(line)) == 0);
    json = ssl_info(conn, ssl);
    json_str(json, "verification.result", value, sizeof value);
    CHECK(strcmp(value, "PSM_ERR_CERT_UNKNOWN_ISSUER") == 0);
    json_str(json, "verification.override", value, sizeof value);
    CHECK(strcmp(value, override) == 0);
    psm_free(json);
    CHECK_EQ(shutdown(psm_ssl_fd(ssl), SHUT_WR), 0);
    CHECK_EQ(channel_read_to_eof(psm_ssl_fd(ssl), got, sizeof got), 0);
    psm_ssl_free(ssl);
    return r;
}

/* connect_to a fresh stranger server, which takes one connection; the
 * handler (if any) must be asked exactly once. */
static psm_result connect_to_stranger(psm_conn *conn, struct handler_state *st)
{
    s_server server;
    psm_result r;

    s_server_start(&server, STRANGER, NULL, NULL);
    r = connect_to(conn, st, &server, "once");
    if (st != NULL)
        CHECK_EQ(st->calls, 1);
    s_server_stop(&server, 0);
    return r;
}

/* "always" is remembered for this host and port (and certificate): the
 * same server is accepted again without a question; the same certificate
 * on another port is not. */
static void always(psm_conn *conn, struct handler_state *st)
{
    char options[256];
    s_server server;

    snprintf(options, sizeof options, "%s -naccept 2", STRANGER);
    s_server_start(&server, options, NULL, NULL);
    CHECK_OK(psm_set_prompt_handler(conn, on_prompt, st));
    st->how = ANSWER_ALWAYS;
    CHECK_OK(connect_to(conn, st, &server, "always"));
    CHECK_EQ(st->calls, 1);
    CHECK_OK(psm_set_prompt_handler(conn, NULL, NULL));
    CHECK_OK(connect_to(conn, NULL, &server, "always"));
    s_server_stop(&server, 0);

    CHECK_EQ(connect_to_stranger(conn, NULL), PSM_ERR_CERT_UNKNOWN_ISSUER);
}

int main(void)
{
    char stranger_sha[80];
    struct handler_state st;
    psm_conn *conn = NULL;
    psm_cert *ca;

    tls_pki_sha256("stranger.pem", stranger_sha, sizeof stranger_sha);
    CHECK_OK(psm_connect_to(fixture_socket(), "tls_unknown_issuer",
                            PSM_CONNECT_NO_SPAWN | PSM_CONNECT_NO_DIALOGS, &conn));
    /* psm knows the test CA, not the stranger's. */
    ca = tls_trust_ca(conn);
    psm_cert_free(ca);

    CHECK_EQ(connect_to_stranger(conn, NULL), PSM_ERR_CERT_UNKNOWN_ISSUER);

    memset(&st, 0, sizeof st);
    st.conn = conn;
    st.server_sha256 = stranger_sha;
    CHECK_OK(psm_set_prompt_handler(conn, on_prompt, &st));
    st.how = ANSWER_ONCE;
    CHECK_OK(connect_to_stranger(conn, &st));

    /* "once" was for that connection only. */
    CHECK_OK(psm_set_prompt_handler(conn, NULL, NULL));
    CHECK_EQ(connect_to_stranger(conn, NULL), PSM_ERR_CERT_UNKNOWN_ISSUER);

    CHECK_OK(psm_set_prompt_handler(conn, on_prompt, &st));
    st.how = ANSWER_REJECT;
    CHECK_EQ(connect_to_stranger(conn, &st), PSM_ERR_CERT_UNKNOWN_ISSUER);
    st.how = RETURN_ERROR;
    CHECK_EQ(connect_to_stranger(conn, &st), PSM_ERR_USER_CANCELLED);
    st.how = ANSWER_LATER;
    CHECK_OK(connect_to_stranger(conn, &st));
    CHECK_EQ(pthread_join(st.answerer, NULL), 0);
    /* That prompt is settled: answering it again is refused. */
    CHECK(psm_prompt_answer_id(conn, st.id, "once") != PSM_OK);

    CHECK_OK(psm_set_prompt_handler(conn, NULL, NULL));
    always(conn, &st);
    psm_conn_free(conn);
    return 0;
}
