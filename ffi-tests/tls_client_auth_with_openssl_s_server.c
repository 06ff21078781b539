/* tls_client_auth_with_openssl_s_server: an `openssl s_server -Verify 1`
 * that requires a client certificate issued by the test CA.
 *  - With no certificate in psm the server refuses the client: the connect
 *    fails with PSM_ERR_TLS_ALERT or, since a TLS 1.3 server judges the
 *    client only after the client finished its handshake, the first read
 *    resets and psm_ssl_info_json reports PSM_ERR_TLS_ALERT.
 *  - After psm_pkcs12_import of the client's key and certificate, naming it
 *    with psm_ssl_opts_set_client_cert ("sha256:<hex>" or its nickname)
 *    gets the client in: data flows both ways and the info's
 *    client_certificate is that certificate.
 *  - Naming none works too: it is the only certificate the server accepts. */

#include "check.h"
#include "fixture.h"
#include "tls_fixture.h"

#include <psm.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char SERVER_OPTIONS[] =
    "-cert server.pem -key server.key -Verify 1 -CAfile ca.pem -verify_return_error";

static void refused_without_certificate(psm_conn *conn)
{
    s_server server;
    psm_ssl *ssl = NULL;
    psm_result r;
    char buf[256];
    char value[64];
    char *json;
    ssize_t n;

    s_server_start(&server, SERVER_OPTIONS, NULL, NULL);
    r = psm_ssl_connect(conn, "localhost", server.port, NULL, &ssl);
    fprintf(stderr, "connect without a client certificate: %s: %s\n", psm_result_str(r),
            psm_last_error());
    if (r != PSM_OK) {
        CHECK_EQ(r, PSM_ERR_TLS_ALERT);
        CHECK(ssl == NULL);
        s_server_stop(&server, 0);
        return;
    }
    /* TLS 1.3: the server's alert comes after the handshake. */
    wait_readable(psm_ssl_fd(ssl));
    n = recv(psm_ssl_fd(ssl), buf, sizeof buf, 0);
    if (n >= 0)
        fprintf(stderr, "read %zd bytes instead of a reset\n", n);
    CHECK(n < 0 && errno == ECONNRESET);
    json = ssl_info(conn, ssl);
    json_str(json, "error.result", value, sizeof value);
    CHECK(strcmp(value, "PSM_ERR_TLS_ALERT") == 0);
    json_str(json, "state", value, sizeof value);
    CHECK(strcmp(value, "failed") == 0);
    psm_free(json);
    psm_ssl_free(ssl);
    s_server_stop(&server, 0);
}

/* The info's "client_certificate" names `client`: an object whose "sha256"
 * it is (as the contract has it), or that fingerprint as a plain string. */
static void check_client_certificate(const char *json, const psm_cert *client)
{
    const char *at = strstr(json, "\"client_certificate\":");
    char value[128];

    CHECK(at != NULL);
    at += strlen("\"client_certificate\":");
    if (*at == '{')
        json_str(at, "sha256", value, sizeof value);
    else
        json_str(json, "client_certificate", value, sizeof value);
    CHECK(strcmp(value, psm_cert_sha256_hex(client)) == 0);
}

/* Connects with `name` as the client certificate (NULL: none named) and
 * checks that the server let the client in with `client`. */
static void accepted_with(psm_conn *conn, const char *name, const psm_cert *client)
{
    static const char to_server[] = "a client the server knows\n";
    static const char to_client[] = "welcome\n";
    char received_path[4096];
    char value[128];
    char got[64];
    s_server server;
    psm_ssl_opts *opts = NULL;
    psm_ssl *ssl;
    uint8_t *received;
    size_t len = 0;
    char *json;
    int fd;

    fixture_path("received", received_path, sizeof received_path);
    s_server_start(&server, SERVER_OPTIONS, NULL, received_path);
    CHECK_OK(psm_ssl_opts_new(&opts));
    CHECK_OK(psm_ssl_opts_set_client_cert(opts, name));
    ssl = tls_connect_ok(conn, server.port, opts);
    psm_ssl_opts_free(opts);
    fd = psm_ssl_fd(ssl);

    /* The server only talks once it accepted the client's certificate. */
    s_server_send(&server, to_client);
    channel_read_exact(fd, got, strlen(to_client));
    CHECK(memcmp(got, to_client, strlen(to_client)) == 0);
    channel_write_all(fd, to_server, strlen(to_server));
    CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    CHECK_EQ(channel_read_to_eof(fd, got, sizeof got), 0);
    CHECK_EQ(s_server_wait(&server, TLS_TEST_WAIT_MS), 0);
    received = file_read(received_path, &len);
    CHECK(len == strlen(to_server) && memcmp(received, to_server, len) == 0);
    free(received);

    json = ssl_info(conn, ssl);
    check_client_certificate(json, client);
    json_str(json, "error", value, sizeof value);
    CHECK(strcmp(value, "null") == 0);
    psm_free(json);
    psm_ssl_free(ssl);
    s_server_stop(&server, 0);
}

int main(void)
{
    psm_conn *conn = NULL;
    psm_cert *ca;
    psm_cert *client;
    char name[128];

    CHECK_OK(psm_connect_to(fixture_socket(), "tls_client_auth", PSM_CONNECT_NO_SPAWN, &conn));
    ca = tls_trust_ca(conn);

    refused_without_certificate(conn);

    client = tls_import_p12(conn, "client.p12", "client pw");
    snprintf(name, sizeof name, "sha256:%s", psm_cert_sha256_hex(client));
    accepted_with(conn, name, client);
    CHECK(psm_cert_nickname(client)[0] != '\0');
    accepted_with(conn, psm_cert_nickname(client), client);
    accepted_with(conn, NULL, client);

    psm_cert_free(client);
    psm_cert_free(ca);
    psm_conn_free(conn);
    return 0;
}
