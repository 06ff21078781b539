/* tls_handshake_with_openssl_s_server: psm_ssl_connect to `openssl
 * s_server`, whose certificate comes from a CA imported with
 * PSM_TRUST_CA_TLS_SERVER, hands back a channel that carries bytes both
 * ways and ends with a clean close both ways (shutdown(SHUT_WR) is
 * close_notify, the server's close_notify an EOF). psm_ssl_info_json reports
 * the handshake: TLS 1.3, the ALPN protocol the server picked, the chain
 * whose fingerprints openssl computes, verification PSM_OK without an
 * override. psm_ssl_peer_cert returns the certificates the server sent,
 * then PSM_ERR_NOT_FOUND. psm_ssl_wrap_fd wraps a socket the test
 * connected itself (and closed at once); a TLS 1.2-only server gives
 * TLS 1.2, or a handshake failure when TLS 1.3 is the minimum; a channel
 * keeps working after psm_conn_free. */

#include "check.h"
#include "fixture.h"
#include "tls_fixture.h"

#include <psm.h>

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A recognisable non-NULL value an untouched output keeps. */
#define UNTOUCHED ((void *)&sentinel)

static int sentinel;

static const char SERVER_CERT[] = "-cert server.pem -key server.key -cert_chain ca.pem";

/* One line each way, then the client's close_notify, the server's answer
 * to it, and the server process exiting. */
static void exchange_and_close(psm_conn *conn, psm_ssl *ssl, s_server *server,
                               const char *received_path)
{
    static const char to_server[] = "hello from psm\n";
    static const char to_client[] = "hello from s_server\n";
    char got[64];
    size_t len = 0;
    uint8_t *received;
    int fd = psm_ssl_fd(ssl);

    channel_write_all(fd, to_server, strlen(to_server));
    s_server_send(server, to_client);
    channel_read_exact(fd, got, strlen(to_client));
    CHECK(memcmp(got, to_client, strlen(to_client)) == 0);

    CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    CHECK_EQ(channel_read_to_eof(fd, got, sizeof got), 0);
    CHECK_EQ(s_server_wait(server, TLS_TEST_WAIT_MS), 0);
    received = file_read(received_path, &len);
    CHECK_EQ(len, strlen(to_server));
    CHECK(memcmp(received, to_server, len) == 0);
    free(received);

    if (conn != NULL) {
        char *json = ssl_info(conn, ssl);
        CHECK(json_int(json, "bytes_out") >= (long long)strlen(to_server));
        CHECK(json_int(json, "bytes_in") >= (long long)strlen(to_client));
        psm_free(json);
    }
    s_server_stop(server, 0);
}

static void good_handshake(psm_conn *conn)
{
    static const char *const alpn[] = {"h2", "http/1.1"};
    char received_path[4096];
    char options[512];
    char server_sha[80];
    char ca_sha[80];
    char value[256];
    s_server server;
    psm_ssl_opts *opts = NULL;
    psm_ssl *ssl = NULL;
    psm_cert *peer = UNTOUCHED;
    char *json;

    tls_pki_sha256("server.pem", server_sha, sizeof server_sha);
    tls_pki_sha256("ca.pem", ca_sha, sizeof ca_sha);
    fixture_path("received-1", received_path, sizeof received_path);
    snprintf(options, sizeof options, "%s -alpn http/1.1", SERVER_CERT);
    s_server_start(&server, options, NULL, received_path);

    CHECK_OK(psm_ssl_opts_new(&opts));
    CHECK_OK(psm_ssl_opts_set_alpn(opts, alpn, 2));
    CHECK_OK(psm_ssl_opts_set_timeout(opts, 20000));
    ssl = tls_connect_ok(conn, server.port, opts);
    psm_ssl_opts_free(opts); /* the channel keeps a copy */

    json = ssl_info(conn, ssl);
    json_str(json, "mode", value, sizeof value);
    CHECK(strcmp(value, "client") == 0);
    json_str(json, "server_name", value, sizeof value);
    CHECK(strcmp(value, "localhost") == 0);
    CHECK_EQ(json_int(json, "port"), server.port);
    json_str(json, "version", value, sizeof value);
    CHECK(strcmp(value, "TLSv1.3") == 0);
    json_str(json, "cipher_suite", value, sizeof value);
    CHECK(strncmp(value, "TLS13_", 6) == 0);
    json_str(json, "key_exchange_group", value, sizeof value);
    CHECK(strcmp(value, "null") != 0 && value[0] != '\0');
    json_str(json, "alpn", value, sizeof value);
    CHECK(strcmp(value, "http/1.1") == 0);
    CHECK(strstr(json, "\"resumed\":false") != NULL);
    json_str(json, "peer_certificates.sha256", value, sizeof value);
    CHECK(strcmp(value, server_sha) == 0);
    CHECK(strstr(json, ca_sha) != NULL);
    json_str(json, "verification.result", value, sizeof value);
    CHECK(strcmp(value, "PSM_OK") == 0);
    json_str(json, "verification.override", value, sizeof value);
    CHECK(strcmp(value, "null") == 0);
    json_str(json, "state", value, sizeof value);
    CHECK(strcmp(value, "open") == 0);
    json_str(json, "client_certificate", value, sizeof value);
    CHECK(strcmp(value, "null") == 0);
    psm_free(json);

    /* The server sent its certificate and the CA's (-cert_chain). */
    CHECK_OK(psm_ssl_peer_cert(conn, ssl, 0, &peer));
    CHECK(strcmp(psm_cert_sha256_hex(peer), server_sha) == 0);
    CHECK(strstr(psm_cert_subject(peer), "localhost") != NULL);
    psm_cert_free(peer);
    peer = UNTOUCHED;
    CHECK_OK(psm_ssl_peer_cert(conn, ssl, 1, &peer));
    CHECK(strcmp(psm_cert_sha256_hex(peer), ca_sha) == 0);
    CHECK(strcmp(psm_cert_nickname(peer), "TLS test CA") == 0); /* it is in the store */
    psm_cert_free(peer);
    peer = UNTOUCHED;
    CHECK_EQ(psm_ssl_peer_cert(conn, ssl, 2, &peer), PSM_ERR_NOT_FOUND);
    CHECK(peer == UNTOUCHED);
    CHECK_EQ(psm_ssl_peer_cert(conn, ssl, (size_t)-1, &peer), PSM_ERR_NOT_FOUND);
    CHECK(peer == UNTOUCHED);

    exchange_and_close(conn, ssl, &server, received_path);
    json = ssl_info(conn, ssl);
    json_str(json, "state", value, sizeof value);
    CHECK(strcmp(value, "closed") == 0);
    json_str(json, "error", value, sizeof value);
    CHECK(strcmp(value, "null") == 0);
    psm_free(json);
    psm_ssl_free(ssl);
}

/* psm_ssl_wrap_fd: the test connects, psm wraps, the test closes its copy. */
static void wrap_fd(psm_conn *conn)
{
    char received_path[4096];
    char value[64];
    struct sockaddr_in addr;
    s_server server;
    psm_ssl *ssl = NULL;
    char *json;
    int fd;

    fixture_path("received-2", received_path, sizeof received_path);
    s_server_start(&server, SERVER_CERT, NULL, received_path);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server.port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);

    CHECK_OK(psm_ssl_wrap_fd(conn, fd, "localhost", NULL, &ssl));
    CHECK(ssl != NULL);
    CHECK(psm_ssl_fd(ssl) != fd);
    CHECK_EQ(close(fd), 0); /* psmd has its own */

    json = ssl_info(conn, ssl);
    json_str(json, "server_name", value, sizeof value);
    CHECK(strcmp(value, "localhost") == 0);
    json_str(json, "verification.result", value, sizeof value);
    CHECK(strcmp(value, "PSM_OK") == 0);
    psm_free(json);
    exchange_and_close(conn, ssl, &server, received_path);
    psm_ssl_free(ssl);

    /* A descriptor that is not open is refused, and the connection survives. */
    ssl = UNTOUCHED;
    CHECK_EQ(psm_ssl_wrap_fd(conn, fd, "localhost", NULL, &ssl), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_ssl_wrap_fd(conn, -1, "localhost", NULL, &ssl), PSM_ERR_INVALID_ARGUMENT);
    CHECK(ssl == UNTOUCHED);
    CHECK_OK(psm_ping(conn));
}

/* A server that speaks TLS 1.2 only: accepted by default, refused with a
 * minimum of TLS 1.3 (the server's protocol_version alert, or a handshake
 * failure). */
static void tls_1_2_only(psm_conn *conn)
{
    char received_path[4096];
    char options[512];
    char value[64];
    s_server server;
    psm_ssl_opts *opts = NULL;
    psm_ssl *ssl = UNTOUCHED;
    psm_result r;
    char *json;

    fixture_path("received-3", received_path, sizeof received_path);
    snprintf(options, sizeof options, "%s -tls1_2", SERVER_CERT);
    s_server_start(&server, options, NULL, received_path);
    ssl = tls_connect_ok(conn, server.port, NULL);
    json = ssl_info(conn, ssl);
    json_str(json, "version", value, sizeof value);
    CHECK(strcmp(value, "TLSv1.2") == 0);
    json_str(json, "cipher_suite", value, sizeof value);
    CHECK(strncmp(value, "TLS_ECDHE_", 10) == 0);
    psm_free(json);
    exchange_and_close(conn, ssl, &server, received_path);
    psm_ssl_free(ssl);

    s_server_start(&server, options, NULL, NULL);
    CHECK_OK(psm_ssl_opts_new(&opts));
    CHECK_EQ(psm_ssl_opts_set_min_version(opts, 0x0302), PSM_ERR_INVALID_ARGUMENT);
    CHECK_OK(psm_ssl_opts_set_min_version(opts, PSM_TLS_1_3));
    ssl = UNTOUCHED;
    r = psm_ssl_connect(conn, "localhost", server.port, opts, &ssl);
    fprintf(stderr, "TLS 1.3 minimum against a TLS 1.2 server: %s: %s\n", psm_result_str(r),
            psm_last_error());
    CHECK(r == PSM_ERR_TLS_ALERT || r == PSM_ERR_TLS_HANDSHAKE);
    CHECK(ssl == UNTOUCHED);
    psm_ssl_opts_free(opts);
    s_server_stop(&server, 0);
}

/* The channel holds its own reference to the connection to psmd. */
static void outlives_connection(psm_conn *conn)
{
    char received_path[4096];
    s_server server;
    psm_ssl *ssl;

    fixture_path("received-4", received_path, sizeof received_path);
    s_server_start(&server, SERVER_CERT, NULL, received_path);
    ssl = tls_connect_ok(conn, server.port, NULL);
    psm_conn_free(conn);
    exchange_and_close(NULL, ssl, &server, received_path);
    psm_ssl_free(ssl);
}

int main(void)
{
    psm_conn *conn = NULL;
    psm_cert *ca;

    CHECK_OK(psm_connect_to(fixture_socket(), "tls_handshake", PSM_CONNECT_NO_SPAWN, &conn));
    ca = tls_trust_ca(conn);
    psm_cert_free(ca);

    good_handshake(conn);
    wrap_fd(conn);
    tls_1_2_only(conn);
    outlives_connection(conn);
    return 0;
}
