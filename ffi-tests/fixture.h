/* fixture.h: what the C tests share beyond assertions: the environment
 * with-psmd.sh sets up, daemon status fields, test data and streaming.
 * Every helper fails the test (check.h) instead of returning an error. */

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

#endif /* PSM_FIXTURE_H */
