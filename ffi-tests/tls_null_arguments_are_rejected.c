/* tls_null_arguments_are_rejected: every pointer argument of the TLS and
 * prompt functions is NULL-checked (PSM_ERR_NULL_PARAMETER, a message
 * naming NULL, outputs untouched, the connection still usable), while NULL
 * where the header gives it a meaning works as documented (default
 * options, no client certificate named, no proxy, no ALPN, cancel). The
 * getters and free functions take NULL harmlessly. Strings that are not
 * UTF-8 and impossible values are PSM_ERR_INVALID_ARGUMENT; a channel
 * passed with another connection is refused. */

#include "check.h"
#include "fixture.h"
#include "tls_fixture.h"

#include <psm.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A recognisable non-NULL value an untouched output keeps. */
#define UNTOUCHED ((void *)&sentinel)

static int sentinel;

static psm_result never_called(void *userdata, const psm_prompt *prompt)
{
    (void)userdata;
    (void)prompt;
    CHECK(!"the prompt handler is not called");
    return PSM_ERR_INTERNAL;
}

static void getters_and_frees_take_null(void)
{
    CHECK_EQ(psm_ssl_fd(NULL), -1);
    psm_ssl_free(NULL);
    psm_ssl_opts_free(NULL);
    CHECK(psm_event_prompt(NULL) == NULL);
    CHECK_EQ(psm_prompt_kind(NULL), 0);
    CHECK_EQ(psm_prompt_id(NULL), 0);
    CHECK(psm_prompt_message(NULL) == NULL);
    CHECK(psm_prompt_details_json(NULL) == NULL);
    CHECK_EQ(psm_prompt_choice_count(NULL), 0);
    CHECK(psm_prompt_choice(NULL, 0) == NULL);
}

static void options(void)
{
    static const char *const alpn[] = {"h2", "http/1.1"};
    const char *with_null[] = {"h2", NULL};
    const char *empty[] = {""};
    char long_name[300];
    const char *too_long[1];
    psm_ssl_opts *opts = UNTOUCHED;

    CHECK_NULL_REJECTED(psm_ssl_opts_new(NULL));
    opts = NULL;
    CHECK_OK(psm_ssl_opts_new(&opts));
    CHECK(opts != NULL);

    CHECK_NULL_REJECTED(psm_ssl_opts_set_alpn(NULL, alpn, 2));
    CHECK_NULL_REJECTED(psm_ssl_opts_set_alpn(opts, NULL, 2));
    CHECK_NULL_REJECTED(psm_ssl_opts_set_alpn(opts, with_null, 2));
    CHECK_OK(psm_ssl_opts_set_alpn(opts, NULL, 0)); /* no ALPN */
    CHECK_OK(psm_ssl_opts_set_alpn(opts, alpn, 2));
    CHECK_EQ(psm_ssl_opts_set_alpn(opts, empty, 1), PSM_ERR_INVALID_ARGUMENT);
    memset(long_name, 'a', 256);
    long_name[256] = '\0';
    too_long[0] = long_name;
    CHECK_EQ(psm_ssl_opts_set_alpn(opts, too_long, 1), PSM_ERR_INVALID_ARGUMENT);
    long_name[255] = '\0';
    CHECK_OK(psm_ssl_opts_set_alpn(opts, too_long, 1)); /* 255 bytes is the limit */

    CHECK_NULL_REJECTED(psm_ssl_opts_set_client_cert(NULL, "alice"));
    CHECK_OK(psm_ssl_opts_set_client_cert(opts, NULL)); /* back to the default */
    CHECK_EQ(psm_ssl_opts_set_client_cert(opts, "\xff"), PSM_ERR_INVALID_ARGUMENT);

    CHECK_NULL_REJECTED(psm_ssl_opts_set_min_version(NULL, PSM_TLS_1_3));
    CHECK_EQ(psm_ssl_opts_set_min_version(opts, 0x0301), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_ssl_opts_set_min_version(opts, 0x0305), PSM_ERR_INVALID_ARGUMENT);
    CHECK_OK(psm_ssl_opts_set_min_version(opts, PSM_TLS_1_2));

    CHECK_NULL_REJECTED(psm_ssl_opts_set_proxy(NULL, "proxy.example", 3128));
    CHECK_OK(psm_ssl_opts_set_proxy(opts, NULL, 0)); /* no proxy */
    CHECK_EQ(psm_ssl_opts_set_proxy(opts, "proxy.example", 0), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_ssl_opts_set_proxy(opts, "", 3128), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_ssl_opts_set_proxy(opts, "\xc3", 3128), PSM_ERR_INVALID_ARGUMENT);
    CHECK_OK(psm_ssl_opts_set_proxy(opts, "::1", 3128));
    CHECK_OK(psm_ssl_opts_set_proxy(opts, NULL, 0));

    CHECK_NULL_REJECTED(psm_ssl_opts_set_timeout(NULL, 1000));
    CHECK_OK(psm_ssl_opts_set_timeout(opts, 0));
    psm_ssl_opts_free(opts);
}

static void opening(psm_conn *conn, const psm_cert *cert)
{
    psm_ssl *ssl = UNTOUCHED;

    CHECK_NULL_REJECTED(psm_ssl_connect(NULL, "localhost", 443, NULL, &ssl));
    CHECK_NULL_REJECTED(psm_ssl_connect(conn, NULL, 443, NULL, &ssl));
    CHECK_NULL_REJECTED(psm_ssl_connect(conn, "localhost", 443, NULL, NULL));
    CHECK_EQ(psm_ssl_connect(conn, "\xff", 443, NULL, &ssl), PSM_ERR_INVALID_ARGUMENT);

    CHECK_NULL_REJECTED(psm_ssl_wrap_fd(NULL, 0, "localhost", NULL, &ssl));
    CHECK_NULL_REJECTED(psm_ssl_wrap_fd(conn, 0, NULL, NULL, &ssl));
    CHECK_NULL_REJECTED(psm_ssl_wrap_fd(conn, 0, "localhost", NULL, NULL));
    CHECK_EQ(psm_ssl_wrap_fd(conn, 0, "\xff", NULL, &ssl), PSM_ERR_INVALID_ARGUMENT);

    CHECK_NULL_REJECTED(psm_ssl_accept_fd(NULL, 0, cert, NULL, &ssl));
    CHECK_NULL_REJECTED(psm_ssl_accept_fd(conn, 0, NULL, NULL, &ssl));
    CHECK_NULL_REJECTED(psm_ssl_accept_fd(conn, 0, cert, NULL, NULL));

    CHECK_NULL_REJECTED(psm_tls_open_plain(NULL, "localhost", 25, &ssl));
    CHECK_NULL_REJECTED(psm_tls_open_plain(conn, NULL, 25, &ssl));
    CHECK_NULL_REJECTED(psm_tls_open_plain(conn, "localhost", 25, NULL));
    CHECK_NULL_REJECTED(psm_tls_open_plain_opts(NULL, "localhost", 25, NULL, &ssl));
    CHECK_NULL_REJECTED(psm_tls_open_plain_opts(conn, NULL, 25, NULL, &ssl));
    CHECK_NULL_REJECTED(psm_tls_open_plain_opts(conn, "localhost", 25, NULL, NULL));
    CHECK_EQ(psm_tls_open_plain(conn, "\xff", 25, &ssl), PSM_ERR_INVALID_ARGUMENT);
    CHECK(ssl == UNTOUCHED);
    CHECK_OK(psm_ping(conn));
}

static void channel(psm_conn *conn, psm_ssl *ssl)
{
    psm_conn *other = NULL;
    psm_cert *cert = UNTOUCHED;
    char *json = UNTOUCHED;

    CHECK_NULL_REJECTED(psm_ssl_step_up(NULL, ssl));
    CHECK_NULL_REJECTED(psm_ssl_step_up(conn, NULL));
    CHECK_NULL_REJECTED(psm_ssl_info_json(NULL, ssl, &json));
    CHECK_NULL_REJECTED(psm_ssl_info_json(conn, NULL, &json));
    CHECK_NULL_REJECTED(psm_ssl_info_json(conn, ssl, NULL));
    CHECK_NULL_REJECTED(psm_ssl_peer_cert(NULL, ssl, 0, &cert));
    CHECK_NULL_REJECTED(psm_ssl_peer_cert(conn, NULL, 0, &cert));
    CHECK_NULL_REJECTED(psm_ssl_peer_cert(conn, ssl, 0, NULL));
    CHECK(json == UNTOUCHED && cert == UNTOUCHED);

    /* Channel numbers belong to the connection that opened the channel. */
    CHECK_OK(psm_connect_to(fixture_socket(), "tls_null_other", PSM_CONNECT_NO_SPAWN, &other));
    CHECK_EQ(psm_ssl_info_json(other, ssl, &json), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_ssl_peer_cert(other, ssl, 0, &cert), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_ssl_step_up(other, ssl), PSM_ERR_INVALID_ARGUMENT);
    CHECK(json == UNTOUCHED && cert == UNTOUCHED);
    psm_conn_free(other);

    /* None of that disturbed the channel. */
    json = ssl_info(conn, ssl);
    psm_free(json);
}

static void prompts(psm_conn *conn)
{
    CHECK_NULL_REJECTED(psm_set_prompt_handler(NULL, never_called, NULL));
    CHECK_NULL_REJECTED(psm_set_prompt_handler(NULL, NULL, NULL));
    CHECK_NULL_REJECTED(psm_set_prompt_events(NULL, 1));
    CHECK_NULL_REJECTED(psm_prompt_answer(NULL, NULL, "once"));
    CHECK_NULL_REJECTED(psm_prompt_answer(conn, NULL, "once"));
    CHECK_NULL_REJECTED(psm_prompt_answer_id(NULL, 1, "once"));
    CHECK_EQ(psm_prompt_answer_id(conn, 1, "\xff"), PSM_ERR_INVALID_ARGUMENT);
    /* A prompt that was never asked cannot be answered, nor cancelled. */
    CHECK(psm_prompt_answer_id(conn, 987654321, "once") != PSM_OK);
    CHECK(psm_prompt_answer_id(conn, 987654321, NULL) != PSM_OK);
    CHECK_OK(psm_set_prompt_handler(conn, never_called, NULL));
    CHECK_OK(psm_set_prompt_handler(conn, NULL, NULL));
    CHECK_OK(psm_set_prompt_events(conn, 1));
    CHECK_OK(psm_set_prompt_events(conn, 0));
    CHECK_OK(psm_ping(conn));
}

int main(void)
{
    psm_conn *conn = NULL;
    psm_cert *ca;
    psm_ssl *ssl;
    s_server server;

    getters_and_frees_take_null();
    options();

    CHECK_OK(psm_connect_to(fixture_socket(), "tls_null", PSM_CONNECT_NO_SPAWN, &conn));
    ca = tls_trust_ca(conn);
    opening(conn, ca);
    prompts(conn);

    s_server_start(&server, "-cert server.pem -key server.key", NULL, NULL);
    ssl = tls_connect_ok(conn, server.port, NULL);
    channel(conn, ssl);
    psm_ssl_free(ssl);
    s_server_stop(&server, 0);

    psm_cert_free(ca);
    psm_conn_free(conn);
    return 0;
}
