/* fixture.h: what the C tests share beyond assertions: the environment
 * with-psmd.sh sets up, daemon status fields, test data, streaming and the
 * test PKI (make-test-pki.sh). Every helper fails the test (check.h)
 * instead of returning an error. */

#ifndef PSM_FIXTURE_H
#define PSM_FIXTURE_H

#include <psm.h>

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* $PSM_SOCKET, set by with-psmd.sh. */
const char *fixture_socket(void);

/* The private directory with-psmd.sh removes afterwards (for test files). */
const char *fixture_dir(void);

/* The path of a file in fixture_dir() into out (cap bytes). */
void fixture_path(const char *name, char *out, size_t cap);

/* The contents of any file, with one spare byte allocated after them; free() it. */
uint8_t *file_read(const char *path, size_t *len);

/* Creates or replaces a file with exactly these bytes. */
void file_write(const char *path, const void *data, size_t len);

/* Waits up to 5 s for <socket dir>/daemon.lock to hold a pid and returns it
 * (psmd writes it just after forking, so it can trail the socket). */
pid_t fixture_daemon_pid(void);

/* True while pid is a running process (not gone, not a zombie). */
int process_alive(pid_t pid);

/* Polls until pid is no longer alive; false if still alive after timeout_ms. */
int wait_process_gone(pid_t pid, int timeout_ms);

/* The integer value of "key" in a flat JSON object; fails the test if absent. */
long long json_int(const char *json, const char *key);

/* json_int of a fresh psm_status_json. */
long long status_int(psm_conn *conn, const char *key);

void sleep_ms(int ms);

/* Deterministic test bytes: byte i of the stream is a function of seed and
 * offset + i, so a large input can be produced in chunks. */
void fill_pattern(uint8_t *buf, size_t len, uint64_t offset, uint32_t seed);

/* Lower-case hex of bytes into out (2 * len + 1 bytes). */
void to_hex(const uint8_t *bytes, size_t len, char *out);

/* Writes all of buf to a stream's descriptor (partial writes, EINTR). */
void write_all(int fd, const void *buf, size_t len);

/* Digest of buf through psm_digest_stream, as hex into out (>= 129 bytes). */
void stream_digest_hex(psm_conn *conn, uint32_t alg, const uint8_t *buf, size_t len, char *out);

/* The first line a shell command (popen) prints, without its newline, into
 * out (cap bytes). Fails the test if the command exits non-zero. */
void command_output(const char *command, char *out, size_t cap);

/* Runs a shell command (popen), collecting all it prints on stdout (up to
 * cap - 1 bytes, NUL-terminated) into out; returns its exit status, or -1
 * if it did not exit normally. */
int command_run(const char *command, char *out, size_t cap);

/* Runs `psm-certutil ARGS` (the example in $PSM_EXAMPLES) in pki_dir(), so
 * ARGS can name the PKI's files, with stdout and stderr together into out
 * (cap bytes), and echoes both to stderr. Its exit status must be `status`
 * and its output must contain `needle` (unless NULL). Returns out. */
const char *certutil_run(int status, const char *needle, const char *args, char *out, size_t cap);

/* Makes the test PKI of make-test-pki.sh ($PSM_TEST_PKI) in
 * <fixture_dir>/pki on the first call and returns that directory. */
const char *pki_dir(void);

/* Runs the PKI script named by $SCRIPT_VAR into <fixture_dir>/SUBDIR, which
 * it writes to DIR (CAP bytes). pki_dir() and the TLS fixture use it. */
void pki_make(const char *script_var, const char *subdir, char *dir, size_t cap);

/* The path of a file of the test PKI ("server.pem") into out (cap bytes). */
void pki_path(const char *name, char *out, size_t cap);

/* The contents of a file of the test PKI, with one spare byte allocated
 * after them (a test may append one); free() it. */
uint8_t *pki_read(const char *name, size_t *len);

/* Imports a file of the test PKI and returns the first certificate. */
psm_cert *pki_import(psm_conn *conn, const char *name, const char *nickname, uint32_t trust);

/* psm_cert_find that must succeed. */
psm_cert *cert_must_find(psm_conn *conn, const char *query);

/* The certificate's trust as psmd has it now (a fresh psm_cert_find by
 * fingerprint: the handle itself is a snapshot). */
uint32_t current_trust(psm_conn *conn, const psm_cert *cert);

/* psm_cert_verify must return PSM_OK with a verdict of status `expected`
 * whose detail contains `detail_part` (unless NULL); on a mismatch the
 * verdict is printed before the test fails. Returns the chain length. */
size_t expect_verdict(psm_conn *conn, const psm_cert *cert, uint32_t usage, const char *name,
                      int64_t at, psm_result expected, const char *detail_part);

/* Has the test root issue a certificate for `csr` (DER) with `openssl x509
 * -req` (valid for a year, with the request's extensions) and imports it
 * (no nickname: the key's, else derived) into psmd; returns it. Leaves
 * NAME.csr.der, NAME.csr.pem and the certificate, NAME.pem, in fixture_dir(). */
psm_cert *issue_for_csr(psm_conn *conn, const uint8_t *csr, size_t csr_len, const char *name);

/* The path of the certificate issue_for_csr made for `name` into out. */
void issued_pem_path(const char *name, char *out, size_t cap);

/* psm_key_generate of `key_type` for "CN=<name>,O=PSM Tests" with `nickname`,
 * then issue_for_csr: a certificate whose private key only psmd holds. */
psm_cert *generate_and_issue(psm_conn *conn, uint32_t key_type, const char *name,
                             const char *nickname);

/* True if `openssl` accepts `sig` as the signature of `data` by the public
 * key in the PEM certificate `cert_pem` (a path) under `alg` (PSM_SIG_*). */
int openssl_verifies(const char *cert_pem, uint32_t alg, const uint8_t *data, size_t len,
                     const uint8_t *sig, size_t sig_len);

/* psm_key_sign of `data` that must succeed, checked with openssl_verifies
 * against the certificate file `cert_pem`. */
void sign_and_verify(psm_conn *conn, const psm_cert *cert, const char *cert_pem, uint32_t alg,
                     const uint8_t *data, size_t len);

#endif /* PSM_FIXTURE_H */
