/* tls_100mb_transfer_keeps_every_byte: 100 MiB each way between psm and
 * `openssl s_server`, through a select() loop on psm_ssl_fd as an
 * application would write it, with a SHA-256 on each side:
 *  - upload: the test sends a pattern (hashing what it sends with
 *    psm_digest_stream), shuts down its side (close_notify); s_server
 *    writes what it receives to a file, answers with its own close_notify
 *    and exits; sha256sum of that file must match;
 *  - download: s_server sends a file of another pattern and closes; the
 *    test hashes what it reads until EOF and compares with sha256sum of
 *    the file.
 * psm_ssl_info_json counts at least those bytes. */

#include "check.h"
#include "fixture.h"
#include "tls_fixture.h"

#include <psm.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#define TRANSFER_SIZE ((uint64_t)100 * 1024 * 1024)
#define CHUNK (256 * 1024)

static uint8_t chunk[CHUNK];

/* sha256sum FILE, as hex into out (65 bytes). */
static void sha256sum(const char *path, char *out, size_t cap)
{
    char command[4200];
    char line[256];

    CHECK((size_t)snprintf(command, sizeof command, "sha256sum '%s'", path) < sizeof command);
    command_output(command, line, sizeof line);
    CHECK(cap > 64 && strlen(line) > 64 && line[64] == ' ');
    memcpy(out, line, 64);
    out[64] = '\0';
}

static void digest_finish(psm_stream *digest, char *hex)
{
    uint8_t *d = NULL;
    size_t len = 0;

    CHECK_OK(psm_stream_finish(digest, &d, &len));
    CHECK_EQ(len, 32);
    to_hex(d, len, hex);
    psm_free(d);
    psm_stream_free(digest);
}

static void upload(psm_conn *conn)
{
    char received_path[4096];
    char sent_hex[65];
    char received_hex[65];
    s_server server;
    psm_stream *digest = NULL;
    psm_ssl *ssl;
    uint64_t sent = 0;
    size_t pending = 0; /* bytes of `chunk` not yet sent */
    size_t offset = 0;
    int shut = 0;
    int eof = 0;
    char *json;
    int fd;

    fixture_path("received.bin", received_path, sizeof received_path);
    s_server_start(&server, "-cert server.pem -key server.key", NULL, received_path);
    ssl = tls_connect_ok(conn, server.port, NULL);
    fd = psm_ssl_fd(ssl);
    CHECK_OK(psm_digest_stream(conn, PSM_HASH_SHA256, &digest));

    /* Write while there is something to write, read what the server may
     * send (nothing here, then EOF after our close_notify). */
    while (!eof) {
        fd_set readable;
        fd_set writable;
        int n;

        if (pending == 0 && sent < TRANSFER_SIZE) {
            size_t len = TRANSFER_SIZE - sent < CHUNK ? (size_t)(TRANSFER_SIZE - sent) : CHUNK;
            fill_pattern(chunk, len, sent, 1);
            write_all(psm_stream_fd(digest), chunk, len);
            pending = len;
            offset = 0;
        }
        if (pending == 0 && !shut) {
            CHECK_EQ(shutdown(fd, SHUT_WR), 0);
            shut = 1;
        }
        FD_ZERO(&readable);
        FD_ZERO(&writable);
        FD_SET(fd, &readable);
        if (pending > 0)
            FD_SET(fd, &writable);
        n = select(fd + 1, &readable, &writable, NULL, NULL);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n > 0);
        if (FD_ISSET(fd, &readable)) {
            char buf[4096];
            ssize_t got = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (got < 0 && errno != EAGAIN && errno != EINTR)
                perror("recv");
            CHECK(got <= 0 || !"s_server sends nothing");
            CHECK(got == 0 || errno == EAGAIN || errno == EINTR);
            eof = got == 0;
            CHECK(!eof || shut); /* the server closes only after our close_notify */
        }
        if (pending > 0 && FD_ISSET(fd, &writable)) {
            ssize_t put = send(fd, chunk + offset, pending, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (put < 0 && errno != EAGAIN && errno != EINTR)
                perror("send");
            CHECK(put > 0 || errno == EAGAIN || errno == EINTR);
            if (put > 0) {
                offset += (size_t)put;
                pending -= (size_t)put;
                sent += (uint64_t)put;
            }
        }
    }
    CHECK_EQ(sent, TRANSFER_SIZE);
    digest_finish(digest, sent_hex);
    CHECK_EQ(s_server_wait(&server, TLS_TEST_WAIT_MS), 0);
    sha256sum(received_path, received_hex, sizeof received_hex);
    fprintf(stderr, "upload: sent sha256 %s, s_server received sha256 %s\n", sent_hex,
            received_hex);
    CHECK(strcmp(sent_hex, received_hex) == 0);
    CHECK_EQ(unlink(received_path), 0);

    json = ssl_info(conn, ssl);
    CHECK(json_int(json, "bytes_out") >= (long long)TRANSFER_SIZE);
    psm_free(json);
    psm_ssl_free(ssl);
    s_server_stop(&server, 0);
}

static void download(psm_conn *conn)
{
    char sent_path[4096];
    char sent_hex[65];
    char received_hex[65];
    s_server server;
    psm_stream *digest = NULL;
    psm_ssl *ssl;
    uint64_t received = 0;
    FILE *f;
    char *json;
    int fd;

    /* The file s_server sends: a pattern other than the upload's. */
    fixture_path("sent.bin", sent_path, sizeof sent_path);
    f = fopen(sent_path, "wb");
    CHECK(f != NULL);
    while (received < TRANSFER_SIZE) {
        fill_pattern(chunk, CHUNK, received, 2);
        CHECK_EQ(fwrite(chunk, 1, CHUNK, f), CHUNK);
        received += CHUNK;
    }
    CHECK_EQ(fclose(f), 0);
    received = 0;
    sha256sum(sent_path, sent_hex, sizeof sent_hex);

    /* s_server reads its input once the client is in, sends it, and at its
     * end closes the connection with close_notify. */
    /* -nbio: with blocking I/O, s_server that sees the client's Finished after
       it started sending (a loaded machine) blocks in SSL_read for data the
       client never sends, and stops streaming. */
    s_server_start(&server, "-nbio -cert server.pem -key server.key", sent_path, NULL);
    ssl = tls_connect_ok(conn, server.port, NULL);
    fd = psm_ssl_fd(ssl);
    CHECK_OK(psm_digest_stream(conn, PSM_HASH_SHA256, &digest));
    for (;;) {
        ssize_t n;
        wait_readable(fd);
        n = recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0)
            perror("recv from the TLS channel");
        CHECK(n >= 0);
        if (n == 0)
            break;
        write_all(psm_stream_fd(digest), chunk, (size_t)n);
        received += (uint64_t)n;
    }
    CHECK_EQ(received, TRANSFER_SIZE);
    digest_finish(digest, received_hex);
    fprintf(stderr, "download: s_server sent sha256 %s, received sha256 %s\n", sent_hex,
            received_hex);
    CHECK(strcmp(sent_hex, received_hex) == 0);
    CHECK_EQ(unlink(sent_path), 0);

    json = ssl_info(conn, ssl);
    CHECK(json_int(json, "bytes_in") >= (long long)TRANSFER_SIZE);
    psm_free(json);
    psm_ssl_free(ssl);
    CHECK_EQ(s_server_wait(&server, TLS_TEST_WAIT_MS), 0);
    s_server_stop(&server, 0);
}

int main(void)
{
    psm_conn *conn = NULL;
    psm_cert *ca;

    CHECK_OK(psm_connect_to(fixture_socket(), "tls_100mb", PSM_CONNECT_NO_SPAWN, &conn));
    ca = tls_trust_ca(conn);
    psm_cert_free(ca);

    upload(conn);
    download(conn);
    psm_conn_free(conn);
    return 0;
}
