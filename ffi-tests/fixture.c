/* fixture.c: the helpers declared in fixture.h. */

#include "fixture.h"

#include "check.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long psmd may take to record its pid after the socket answers. */
#define PID_FILE_WAIT_MS 5000

const char *fixture_socket(void)
{
    const char *s = getenv("PSM_SOCKET");
    CHECK(s != NULL && s[0] != '\0');
    return s;
}

const char *fixture_dir(void)
{
    const char *d = getenv("PSM_FIXTURE_DIR");
    CHECK(d != NULL && d[0] != '\0');
    return d;
}

static long read_pid_file(const char *path)
{
    FILE *f = fopen(path, "r");
    long pid = 0;

    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    return pid;
}

pid_t fixture_daemon_pid(void)
{
    char path[4096];
    const char *sock = fixture_socket();
    const char *slash = strrchr(sock, '/');
    long pid = 0;
    int waited;

    CHECK(slash != NULL);
    CHECK((size_t)(slash - sock) + sizeof "/daemon.lock" <= sizeof path);
    memcpy(path, sock, (size_t)(slash - sock));
    strcpy(path + (slash - sock), "/daemon.lock");
    for (waited = 0; waited < PID_FILE_WAIT_MS; waited += 10) {
        pid = read_pid_file(path);
        if (pid > 0)
            break;
        sleep_ms(10);
    }
    CHECK(pid > 0);
    return (pid_t)pid;
}

int process_alive(pid_t pid)
{
    char path[64];
    char buf[512];
    FILE *f;
    size_t n;
    char *paren;

    if (kill(pid, 0) != 0)
        return 0;
    /* A killed daemon stays a zombie until init reaps it: "pid (comm) Z ..." */
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 1; /* no /proc: kill() is all we know */
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    paren = strrchr(buf, ')');
    return paren == NULL || paren[1] == '\0' || paren[2] != 'Z';
}

int wait_process_gone(pid_t pid, int timeout_ms)
{
    int waited;

    for (waited = 0; waited < timeout_ms; waited += 10) {
        if (!process_alive(pid))
            return 1;
        sleep_ms(10);
    }
    return !process_alive(pid);
}

long long json_int(const char *json, const char *key)
{
    char pattern[128];
    const char *at;
    char *end;
    long long v;

    CHECK(strlen(key) + 4 < sizeof pattern);
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    at = strstr(json, pattern);
    if (at == NULL)
        fprintf(stderr, "no \"%s\" in %s\n", key, json);
    CHECK(at != NULL);
    at += strlen(pattern);
    errno = 0;
    v = strtoll(at, &end, 10);
    CHECK(errno == 0 && end != at);
    return v;
}

long long status_int(psm_conn *conn, const char *key)
{
    char *json = NULL;
    long long v;

    CHECK_OK(psm_status_json(conn, &json));
    CHECK(json != NULL);
    v = json_int(json, key);
    psm_free(json);
    return v;
}

void sleep_ms(int ms)
{
    struct timespec ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void fill_pattern(uint8_t *buf, size_t len, uint64_t offset, uint32_t seed)
{
    size_t i;

    for (i = 0; i < len; i++) {
        uint64_t x = offset + i;
        buf[i] = (uint8_t)((x * 2654435761u) >> 13 ^ x >> 8 ^ seed * 131u);
    }
}

void to_hex(const uint8_t *bytes, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * len] = '\0';
}

void write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = (const uint8_t *)buf;

    CHECK(fd >= 0);
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            perror("send to a psm stream");
        CHECK(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

void stream_digest_hex(psm_conn *conn, uint32_t alg, const uint8_t *buf, size_t len, char *out)
{
    psm_stream *s = NULL;
    uint8_t *digest = NULL;
    size_t digest_len = 0;

    CHECK_OK(psm_digest_stream(conn, alg, &s));
    write_all(psm_stream_fd(s), buf, len);
    CHECK_OK(psm_stream_finish(s, &digest, &digest_len));
    CHECK(digest != NULL && digest_len > 0 && digest_len <= 64);
    to_hex(digest, digest_len, out);
    psm_free(digest);
    psm_stream_free(s);
}

void command_output(const char *command, char *out, size_t cap)
{
    FILE *p = popen(command, "r");
    size_t n;
    int status;

    CHECK(p != NULL);
    CHECK(cap > 0);
    if (fgets(out, (int)cap, p) == NULL)
        out[0] = '\0';
    /* Drain the rest so the command never blocks on a full pipe. */
    while (fgetc(p) != EOF) {
    }
    status = pclose(p);
    if (status != 0)
        fprintf(stderr, "`%s` exited with status %d\n", command, status);
    CHECK_EQ(status, 0);
    n = strlen(out);
    if (n > 0 && out[n - 1] == '\n')
        out[n - 1] = '\0';
}

int command_run(const char *command, char *out, size_t cap)
{
    FILE *p = popen(command, "r");
    size_t n = 0;
    int c;
    int status;

    CHECK(p != NULL);
    CHECK(cap > 0);
    /* Read to the end even past cap, so the command never blocks on a full pipe. */
    while ((c = fgetc(p)) != EOF) {
        if (n + 1 < cap)
            out[n++] = (char)c;
    }
    out[n] = '\0';
    status = pclose(p);
    CHECK(status != -1);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const char *pki_dir(void)
{
    static char dir[4096];
    char command[8192];
    char output[4096];
    const char *script = getenv("PSM_TEST_PKI");

    if (dir[0] != '\0')
        return dir;
    CHECK(script != NULL && script[0] != '\0');
    CHECK((size_t)snprintf(dir, sizeof dir, "%s/pki", fixture_dir()) < sizeof dir);
    CHECK((size_t)snprintf(command, sizeof command, "sh '%s' '%s' 2>&1", script, dir) <
          sizeof command);
    if (command_run(command, output, sizeof output) != 0) {
        fprintf(stderr, "`%s` failed:\n%s\n", command, output);
        CHECK(!"make-test-pki.sh succeeds");
    }
    return dir;
}

void pki_path(const char *name, char *out, size_t cap)
{
    CHECK((size_t)snprintf(out, cap, "%s/%s", pki_dir(), name) < cap);
}

uint8_t *pki_read(const char *name, size_t *len)
{
    char path[4096];
    FILE *f;
    uint8_t *buf;
    long size;

    pki_path(name, path, sizeof path);
    f = fopen(path, "rb");
    if (f == NULL)
        perror(path);
    CHECK(f != NULL);
    CHECK_EQ(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    CHECK(size >= 0);
    CHECK_EQ(fseek(f, 0, SEEK_SET), 0);
    buf = malloc((size_t)size + 1); /* + 1: never malloc(0) */
    CHECK(buf != NULL);
    CHECK_EQ(fread(buf, 1, (size_t)size, f), size);
    fclose(f);
    *len = (size_t)size;
    return buf;
}

psm_cert *pki_import(psm_conn *conn, const char *name, const char *nickname, uint32_t trust)
{
    psm_cert *cert = NULL;
    size_t len = 0;
    uint8_t *data = pki_read(name, &len);
    psm_result r = psm_cert_import(conn, data, len, nickname, trust, &cert);

    if (r != PSM_OK)
        fprintf(stderr, "importing %s\n", name);
    CHECK_OK(r);
    CHECK(cert != NULL);
    free(data);
    return cert;
}

psm_cert *cert_must_find(psm_conn *conn, const char *query)
{
    psm_cert *cert = NULL;
    psm_result r = psm_cert_find(conn, query, &cert);

    if (r != PSM_OK)
        fprintf(stderr, "finding \"%s\"\n", query);
    CHECK_OK(r);
    CHECK(cert != NULL);
    return cert;
}

uint32_t current_trust(psm_conn *conn, const psm_cert *cert)
{
    char query[80];
    psm_cert *now;
    uint32_t trust;

    CHECK(strlen(psm_cert_sha256_hex(cert)) == 64);
    snprintf(query, sizeof query, "sha256:%s", psm_cert_sha256_hex(cert));
    now = cert_must_find(conn, query);
    trust = psm_cert_trust(now);
    psm_cert_free(now);
    return trust;
}

size_t expect_verdict(psm_conn *conn, const psm_cert *cert, uint32_t usage, const char *name,
                      int64_t at, psm_result expected, const char *detail_part)
{
    psm_verify_result *v = NULL;
    psm_result status;
    const char *detail;
    size_t chain_len;

    CHECK_OK(psm_cert_verify(conn, cert, usage, name, at, &v));
    CHECK(v != NULL);
    status = psm_verify_result_status(v);
    detail = psm_verify_result_detail(v);
    CHECK(detail != NULL && detail[0] != '\0');
    if (status != expected || (detail_part != NULL && strstr(detail, detail_part) == NULL)) {
        fprintf(stderr,
                "verifying \"%s\" for usage %u, name %s, at %lld:\n"
                "    status %s (expected %s)\n    detail \"%s\" (expected to contain \"%s\")\n",
                psm_cert_nickname(cert), (unsigned)usage, name != NULL ? name : "(none)",
                (long long)at, psm_result_str(status), psm_result_str(expected), detail,
                detail_part != NULL ? detail_part : "");
    }
    CHECK_EQ(status, expected);
    CHECK(detail_part == NULL || strstr(detail, detail_part) != NULL);
    chain_len = psm_verify_result_chain_len(v);
    CHECK(chain_len >= 1);
    CHECK(psm_verify_result_chain_get(v, chain_len) == NULL);
    psm_verify_result_free(v);
    return chain_len;
}
