/* tls_fixture.h: what the TLS tests share: their PKI (make-tls-pki.sh), an
 * `openssl s_server` on a free port as the real peer, and reading and
 * writing a channel with select() as an application would. Every helper
 * fails the test (check.h) instead of returning an error. */

#ifndef PSM_TLS_FIXTURE_H
#define PSM_TLS_FIXTURE_H

#include <psm.h>

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* How long a test waits for a peer or a channel before it fails. */
#define TLS_TEST_WAIT_MS 20000

/* Makes the PKI of make-tls-pki.sh ($PSM_TLS_PKI) in <fixture_dir>/tls-pki on
 * the first call and returns that directory. */
const char *tls_pki_dir(void);

/* The path of a file of the TLS PKI ("server.pem") into out (cap bytes). */
void tls_pki_path(const char *name, char *out, size_t cap);

/* Imports the PKI's ca.pem as a CA for TLS servers and returns it. */
psm_cert *tls_trust_ca(psm_conn *conn);

/* Imports a PKCS#12 file of the PKI (key into the token) and returns its certificate. */
psm_cert *tls_import_p12(psm_conn *conn, const char *name, const char *password);

/* sha256 of a PEM certificate of the PKI, as lower-case hex (65 bytes) via
 * `openssl x509 -fingerprint`: what psm should report for it. */
void tls_pki_sha256(const char *name, char *out, size_t cap);

/* An `openssl s_server` a test runs. It accepts one connection and exits. */
typedef struct {
    pid_t pid;
    uint16_t port;
    /* The write end of its standard input (what it sends to the client),
     * or -1 when it reads a file. Close it to make the server close the
     * connection once it sent everything. */
    int stdin_fd;
    char err_path[4096];
} s_server;

/* Starts `openssl s_server -quiet -naccept 1 -accept PORT OPTIONS` on a free
 * TCP port (OPTIONS: more arguments, shell-quoted, run in tls_pki_dir()) and
 * returns once it listens. Its standard input is the file stdin_path, or
 * with NULL a pipe (server->stdin_fd); what it receives goes to the file
 * stdout_path (NULL: discarded). The server is killed when the test exits. */
void s_server_start(s_server *server, const char *options, const char *stdin_path,
                    const char *stdout_path);

/* Writes text to the server's standard input pipe: it sends it to the client. */
void s_server_send(s_server *server, const char *text);

/* Waits up to timeout_ms for the server to exit; returns its exit status,
 * or -1 if it is still running. */
int s_server_wait(s_server *server, int timeout_ms);

/* Kills the server (if still running), closes stdin_fd and prints what it
 * wrote to stderr when `show_errors`. */
void s_server_stop(s_server *server, int show_errors);

/* psm_ssl_connect to localhost:port that must succeed. */
psm_ssl *tls_connect_ok(psm_conn *conn, uint16_t port, const psm_ssl_opts *opts);

/* Waits with select() until fd is readable (or writable); fails the test
 * after TLS_TEST_WAIT_MS. */
void wait_readable(int fd);
void wait_writable(int fd);

/* Writes all of buf to a channel: select() for room, then send(MSG_NOSIGNAL). */
void channel_write_all(int fd, const void *buf, size_t len);

/* Reads exactly len bytes from a channel (select() between reads). */
void channel_read_exact(int fd, void *buf, size_t len);

/* Reads from a channel until EOF (a clean close by the peer) and returns
 * the number of bytes; the first cap - 1 are stored in buf, NUL-terminated.
 * A reset (ECONNRESET) fails the test. */
size_t channel_read_to_eof(int fd, char *buf, size_t cap);

/* The string value at `path` in compact JSON into out; "null" for a JSON
 * null. A path is keys separated by dots ("verification.result"): each key
 * is the first one after the previous key, which is enough for the objects
 * psm returns. Fails the test if a key is absent. */
void json_str(const char *json, const char *path, char *out, size_t cap);

/* psm_ssl_info_json, echoed to stderr (the log of a failed test shows it). */
char *ssl_info(psm_conn *conn, const psm_ssl *ssl);

#endif /* PSM_TLS_FIXTURE_H */
