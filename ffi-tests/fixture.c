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

void fixture_path(const char *name, char *out, size_t cap)
{
    CHECK((size_t)snprintf(out, cap, "%s/%s", fixture_dir(), name) < cap);
}

uint8_t *file_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long size;

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

void file_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    if (f == NULL)
        perror(path);
    CHECK(f != NULL);
    CHECK_EQ(fwrite(data, 1, len, f), len);
    CHECK_EQ(fclose(f), 0);
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

const char *certutil_run(int status, const char *needle, const char *args, char *out, size_t cap)
{
    char command[8192];
    const char *examples = getenv("PSM_EXAMPLES");
    int got;

    CHECK(examples != NULL && examples[0] != '\0');
    CHECK((size_t)snprintf(command, sizeof command, "cd '%s' && '%s/psm-certutil' %s 2>&1",
                           pki_dir(), examples, args) < sizeof command);
    got = command_run(command, out, cap);
    fprintf(stderr, "$ psm-certutil %s   (exit %d)\n%s", args, got, out);
    CHECK_EQ(got, status);
    if (needle != NULL && strstr(out, needle) == NULL)
        fprintf(stderr, "(expected the output to contain \"%s\")\n", needle);
    CHECK(needle == NULL || strstr(out, needle) != NULL);
    return out;
}

void pki_make(const char *script_var, const char *subdir, char *dir, size_t cap)
{
    char command[8192];
    char output[4096];
    const char *script = getenv(script_var);

    if (script == NULL || script[0] == '\0')
        fprintf(stderr, "$%s names no PKI script\n", script_var);
    CHECK(script != NULL && script[0] != '\0');
    CHECK((size_t)snprintf(dir, cap, "%s/%s", fixture_dir(), subdir) < cap);
    CHECK((size_t)snprintf(command, sizeof command, "sh '%s' '%s' 2>&1", script, dir) <
          sizeof command);
    if (command_run(command, output, sizeof output) != 0) {
        fprintf(stderr, "`%s` failed:\n%s\n", command, output);
        CHECK(!"the PKI script succeeds");
    }
}

const char *pki_dir(void)
{
    static char dir[4096];

    if (dir[0] == '\0')
        pki_make("PSM_TEST_PKI", "pki", dir, sizeof dir);
    return dir;
}

void pki_path(const char *name, char *out, size_t cap)
{
    CHECK((size_t)snprintf(out, cap, "%s/%s", pki_dir(), name) < cap);
}

uint8_t *pki_read(const char *name, size_t *len)
{
    char path[4096];

    pki_path(name, path, sizeof path);
    return file_read(path, len);
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

/* Runs a shell command that must succeed; on failure prints what it said. */
static void command_must_succeed(const char *command)
{
    char output[4096];

    if (command_run(command, output, sizeof output) != 0) {
        fprintf(stderr, "`%s` failed:\n%s\n", command, output);
        CHECK(!"the command succeeds");
    }
}

psm_cert *issue_for_csr(psm_conn *conn, const uint8_t *csr, size_t csr_len, const char *name)
{
    char der_path[4096];
    char pem_path[4096];
    char base[4096];
    char root[4096];
    char command[16384];
    char file[256];
    uint8_t *pem;
    size_t pem_len = 0;
    psm_cert *cert = NULL;

    CHECK((size_t)snprintf(file, sizeof file, "%s.csr.der", name) < sizeof file);
    fixture_path(file, der_path, sizeof der_path);
    fixture_path(name, base, sizeof base);
    pki_path("root", root, sizeof root);
    file_write(der_path, csr, csr_len);
    CHECK((size_t)snprintf(command, sizeof command,
                           "openssl req -inform DER -in '%s' -out '%s.csr.pem' 2>&1 && "
                           "openssl x509 -req -in '%s.csr.pem' -CA '%s.pem' -CAkey '%s.key' "
                           "-CAserial '%s/serial' -CAcreateserial -days 365 "
                           "-copy_extensions copy -out '%s.pem' 2>&1",
                           der_path, base, base, root, root, fixture_dir(), base) < sizeof command);
    command_must_succeed(command);

    issued_pem_path(name, pem_path, sizeof pem_path);
    pem = file_read(pem_path, &pem_len);
    CHECK_OK(psm_cert_import(conn, pem, pem_len, NULL, 0, &cert));
    CHECK(cert != NULL);
    free(pem);
    return cert;
}

void issued_pem_path(const char *name, char *out, size_t cap)
{
    CHECK((size_t)snprintf(out, cap, "%s/%s.pem", fixture_dir(), name) < cap);
}

psm_cert *generate_and_issue(psm_conn *conn, uint32_t key_type, const char *name,
                             const char *nickname)
{
    char subject[256];
    uint8_t *csr = NULL;
    size_t csr_len = 0;
    psm_cert *cert;

    CHECK((size_t)snprintf(subject, sizeof subject, "CN=%s,O=PSM Tests", name) < sizeof subject);
    CHECK_OK(psm_key_generate(conn, key_type, subject, nickname, &csr, &csr_len));
    CHECK(csr != NULL && csr_len > 0);
    cert = issue_for_csr(conn, csr, csr_len, name);
    psm_free(csr);
    CHECK_EQ(psm_cert_has_private_key(cert), 1);
    return cert;
}

int openssl_verifies(const char *cert_pem, uint32_t alg, const uint8_t *data, size_t len,
                     const uint8_t *sig, size_t sig_len)
{
    char data_path[4096];
    char sig_path[4096];
    char pub_path[4096];
    char command[16384];
    char output[4096];
    const char *how;
    int status;

    fixture_path("verify.data", data_path, sizeof data_path);
    fixture_path("verify.sig", sig_path, sizeof sig_path);
    fixture_path("verify.pub", pub_path, sizeof pub_path);
    file_write(data_path, data, len);
    file_write(sig_path, sig, sig_len);
    switch (alg) {
    case PSM_SIG_ECDSA_SHA256:
    case PSM_SIG_RSA_PKCS1_SHA256:
        how = "dgst -sha256";
        break;
    case PSM_SIG_ECDSA_SHA384:
        how = "dgst -sha384";
        break;
    case PSM_SIG_RSA_PSS_SHA256:
        /* The salt length psm.h promises, not openssl's "whatever it is". */
        how = "dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 "
              "-sigopt rsa_mgf1_md:sha256";
        break;
    case PSM_SIG_ED25519:
        how = "pkeyutl -rawin";
        break;
    default:
        CHECK(!"a known PSM_SIG_* algorithm");
        return 0;
    }
    if (alg == PSM_SIG_ED25519)
        CHECK((size_t)snprintf(command, sizeof command,
                               "openssl x509 -in '%s' -pubkey -noout > '%s' && openssl %s -verify "
                               "-pubin -inkey '%s' -sigfile '%s' -in '%s' 2>&1",
                               cert_pem, pub_path, how, pub_path, sig_path,
                               data_path) < sizeof command);
    else
        CHECK((size_t)snprintf(command, sizeof command,
                               "openssl x509 -in '%s' -pubkey -noout > '%s' && openssl %s -verify "
                               "'%s' -signature '%s' '%s' 2>&1",
                               cert_pem, pub_path, how, pub_path, sig_path,
                               data_path) < sizeof command);
    status = command_run(command, output, sizeof output);
    if (status != 0)
        fprintf(stderr, "`%s` (exit %d):\n%s\n", command, status, output);
    return status == 0;
}

void sign_and_verify(psm_conn *conn, const psm_cert *cert, const char *cert_pem, uint32_t alg,
                     const uint8_t *data, size_t len)
{
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    psm_result r = psm_key_sign(conn, cert, alg, data, len, &sig, &sig_len);
    int verified;

    if (r != PSM_OK)
        fprintf(stderr, "signing with \"%s\", algorithm %u\n", psm_cert_nickname(cert),
                (unsigned)alg);
    CHECK_OK(r);
    CHECK(sig != NULL && sig_len > 0);
    verified = openssl_verifies(cert_pem, alg, data, len, sig, sig_len);
    if (!verified)
        fprintf(stderr, "openssl rejects the signature by \"%s\", algorithm %u\n",
                psm_cert_nickname(cert), (unsigned)alg);
    CHECK(verified);
    psm_free(sig);
}
