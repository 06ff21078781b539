/* tls_starttls_meets_accept_fd: both ends of one TLS connection run through
 * psm, as two applications with a connection each. The client opens a
 * plain channel (psm_tls_open_plain_opts) to a socket the test listens on;
 * the two talk in plain as an SMTP-like protocol does until "STARTTLS";
 * then the test hands its accepted socket to psm_ssl_accept_fd with a
 * certificate and key imported from PKCS#12 while the client calls
 * psm_ssl_step_up. Both handshakes succeed, bytes flow both ways in TLS,
 * each side's info reports TLS 1.3 in its mode, the client sees the
 * server's certificate (verified: PSM_OK) and the server sees no client
 * certificate (PSM_ERR_NOT_FOUND at index 0); each side's close_notify is
 * the other's EOF. */

#include "check.h"
#include "fixture.h"
#include "tls_fixture.h"

#include <psm.h>

#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct server_side {
    psm_conn *conn;
    const psm_cert *cert;
    int fd;
    psm_ssl *ssl;
    psm_result result;
};

static void *accept_tls(void *arg)
{
    struct server_side *s = (struct server_side *)arg;

    s->result = psm_ssl_accept_fd(s->conn, s->fd, s->cert, NULL, &s->ssl);
    return NULL;
}

/* Reads exactly strlen(expected) bytes (select() first) and compares. */
static void expect(int fd, const char *expected)
{
    char got[64];

    CHECK(strlen(expected) < sizeof got);
    channel_read_exact(fd, got, strlen(expected));
    CHECK(memcmp(got, expected, strlen(expected)) == 0);
}

int main(void)
{
    struct sockaddr_in addr;
    socklen_t addr_len = sizeof addr;
    struct server_side server;
    psm_conn *client_conn = NULL;
    psm_conn *server_conn = NULL;
    psm_ssl_opts *opts = NULL;
    psm_ssl *client = NULL;
    psm_cert *ca;
    psm_cert *server_cert;
    psm_cert *peer = NULL;
    pthread_t thread;
    char server_sha[80];
    char value[128];
    char buf[16];
    char *json;
    int listener;
    int cfd;
    int sfd;

    CHECK_OK(
        psm_connect_to(fixture_socket(), "starttls client", PSM_CONNECT_NO_SPAWN, &client_conn));
    CHECK_OK(psm_connect_to(fixture_socket(), "tls server", PSM_CONNECT_NO_SPAWN, &server_conn));
    ca = tls_trust_ca(client_conn);
    server_cert = tls_import_p12(server_conn, "server.p12", "server pw");
    tls_pki_sha256("server.pem", server_sha, sizeof server_sha);

    /* The server's listening socket: port 0, the kernel picks. */
    listener = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(listener >= 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(listener, (struct sockaddr *)&addr, sizeof addr), 0);
    CHECK_EQ(listen(listener, 1), 0);
    CHECK_EQ(getsockname(listener, (struct sockaddr *)&addr, &addr_len), 0);

    CHECK_OK(psm_ssl_opts_new(&opts));
    CHECK_OK(psm_ssl_opts_set_timeout(opts, 20000));
    CHECK_OK(
        psm_tls_open_plain_opts(client_conn, "localhost", ntohs(addr.sin_port), opts, &client));
    psm_ssl_opts_free(opts);
    cfd = psm_ssl_fd(client);
    sfd = accept(listener, NULL, NULL);
    CHECK(sfd >= 0);
    close(listener);

    /* The plain part. */
    write_all(sfd, "220 ready\r\n", 11);
    expect(cfd, "220 ready\r\n");
    channel_write_all(cfd, "STARTTLS\r\n", 10);
    expect(sfd, "STARTTLS\r\n");
    write_all(sfd, "220 go ahead\r\n", 14);
    expect(cfd, "220 go ahead\r\n");

    /* Both handshakes block until they meet: the server side on a thread. */
    memset(&server, 0, sizeof server);
    server.conn = server_conn;
    server.cert = server_cert;
    server.fd = sfd;
    CHECK_EQ(pthread_create(&thread, NULL, accept_tls, &server), 0);
    CHECK_OK(psm_ssl_step_up(client_conn, client));
    CHECK_EQ(pthread_join(thread, NULL), 0);
    CHECK_OK(server.result);
    CHECK(server.ssl != NULL);
    CHECK_EQ(close(sfd), 0); /* psmd has its own */

    /* TLS from here on, both ways. */
    channel_write_all(cfd, "EHLO psm\r\n", 10);
    expect(psm_ssl_fd(server.ssl), "EHLO psm\r\n");
    channel_write_all(psm_ssl_fd(server.ssl), "250 ok\r\n", 8);
    expect(cfd, "250 ok\r\n");

    json = ssl_info(client_conn, client);
    json_str(json, "version", value, sizeof value);
    CHECK(strcmp(value, "TLSv1.3") == 0);
    json_str(json, "verification.result", value, sizeof value);
    CHECK(strcmp(value, "PSM_OK") == 0);
    json_str(json, "peer_certificates.sha256", value, sizeof value);
    CHECK(strcmp(value, server_sha) == 0);
    psm_free(json);
    json = ssl_info(server_conn, server.ssl);
    json_str(json, "mode", value, sizeof value);
    CHECK(strcmp(value, "server") == 0);
    json_str(json, "version", value, sizeof value);
    CHECK(strcmp(value, "TLSv1.3") == 0);
    psm_free(json);

    CHECK_OK(psm_ssl_peer_cert(client_conn, client, 0, &peer));
    CHECK(strcmp(psm_cert_sha256_hex(peer), server_sha) == 0);
    psm_cert_free(peer);
    peer = NULL;
    CHECK_EQ(psm_ssl_peer_cert(server_conn, server.ssl, 0, &peer), PSM_ERR_NOT_FOUND);
    CHECK(peer == NULL);

    /* Close: each close_notify is the other side's EOF. */
    CHECK_EQ(shutdown(cfd, SHUT_WR), 0);
    CHECK_EQ(channel_read_to_eof(psm_ssl_fd(server.ssl), buf, sizeof buf), 0);
    /* The server's close_notify comes after it received the client's: the
     * client's channel, half closed already, still reads it as EOF. */
    CHECK_EQ(shutdown(psm_ssl_fd(server.ssl), SHUT_WR), 0);
    CHECK_EQ(channel_read_to_eof(cfd, buf, sizeof buf), 0);

    psm_ssl_free(server.ssl);
    psm_ssl_free(client);
    psm_cert_free(server_cert);
    psm_cert_free(ca);
    psm_conn_free(server_conn);
    psm_conn_free(client_conn);
    return 0;
}
