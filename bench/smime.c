/* smime-bench: S/MIME through psmd against OpenSSL doing the same work.
 *
 *   smime-bench DIR [SECONDS [BYTES]]   (defaults 2 and 100M)
 *
 * DIR holds what run.sh made with the openssl CLI: ca.pem (the CA),
 * rsa.{pem,key,p12} and p256.{pem,key,p12} (e-mail certificates it
 * issued, PKCS#12 password "smime-bench"). The CA is imported into psmd
 * trusted for e-mail, the PKCS#12 files with their keys, so psm and
 * OpenSSL sign with the very same key and certificate.
 *
 * 1. A 1 KiB MIME entity, SECONDS per figure: psm_smime_sign (opaque
 *    S/MIME, SHA-256, signer certificate and CA included) against
 *    in-process OpenSSL CMS_sign + SMIME_write_CMS with the same flags;
 *    psm_smime_verify of psm's signed message against SMIME_read_CMS +
 *    CMS_verify of the same message, chain included: an X509_STORE
 *    holding the CA, purpose S/MIME signing, content written out (psm
 *    also checks the chain, and returns the content).
 * 2. A BYTES-byte MIME entity (CRLF lines of base64 text) in a file:
 *    psm_smime_sign_stream (RSA-2048) and psm_smime_encrypt_stream
 *    (AES-256-GCM to the RSA-2048 certificate), file to file, against
 *    `openssl cms -sign -stream -nodetach` and `openssl cms -encrypt
 *    -aes-256-gcm -stream` on the same file with the same key and
 *    certificates, best of RUNS each, interleaved (a smaller message
 *    instead when psm is too slow for BYTES: see PROBE_BYTES). With
 *    $PSMD_PID, psmd's peak resident memory before and after its stream
 *    runs (VmHWM, reset first through /proc/PID/clear_refs when allowed).
 *    The last psm outputs are checked with the openssl CLI, untimed.
 *
 * $OPENSSL names the openssl program (default: openssl on PATH). */

#define _POSIX_C_SOURCE 200809L

#include "bench.h"

#include <psm.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_SECONDS 2
#define DEFAULT_BYTES (100L << 20)
/* Best of this many runs for each stream figure (the machine is noisy). */
#define RUNS 3
/* Untimed calls before each ops/s figure (connection, caches, CPU clock). */
#define WARMUP_CALLS 20
#define SMALL_MESSAGE_LEN 1024
/* The PKCS#12 files are only a way into psmd; the password guards nothing. */
#define PKCS12_PASSWORD "smime-bench"
/* Largest certificate or PKCS#12 file read from DIR. */
#define MAX_FILE (64 * 1024)
#define MAX_PATH 4096
/* The stream part first times psm on a message this large (a warm-up
 * too); when psm would take longer than the budget for one run on the big
 * message, the streams are measured on this one instead, and say so, so
 * that `make bench` stays short while psm is that slow. */
#define PROBE_BYTES (4L << 20)
#define STREAM_BUDGET_SECONDS 10
/* Base64 characters per line of the big message, as MIME writes them. */
#define LINE_CHARS 76
#define WRITE_CHUNK (1 << 20)
#define MIB (1024.0 * 1024.0)

static const char mime_header[] = "Content-Type: text/plain; charset=us-ascii\r\n\r\n";

/* One signing key: psm's handle on it and OpenSSL's copy. */
struct keyset {
    const char *label; /* "RSA-2048" */
    const char *name;  /* file name stem in DIR: "rsa" */
    psm_cert *cert;
    X509 *x509;
    EVP_PKEY *pkey;
};

typedef STACK_OF(X509) x509_stack;

/* Everything one ops/s figure needs. */
struct small {
    psm_conn *conn;
    struct keyset *ks;
    x509_stack *chain; /* the CA, sent along as psm does */
    X509_STORE *store; /* the CA, trusted */
    const unsigned char *msg;
    size_t msg_len;
    uint8_t *signed_msg; /* psm's signature of msg, for both verifiers */
    size_t signed_len;
};

typedef int (*op_fn)(struct small *s);

static const char *dir;
static const char *openssl_cmd = "openssl";

static void print_psm_error(const char *what, psm_result res)
{
    const char *detail = psm_last_error();

    fprintf(stderr, "smime-bench: %s failed: %s: %s\n", what, psm_result_str(res),
            detail != NULL ? detail : "");
}

static void print_openssl_error(const char *what)
{
    fprintf(stderr, "smime-bench: %s failed (OpenSSL):\n", what);
    ERR_print_errors_fp(stderr);
}

static int path_in_dir(char *buf, const char *name, const char *suffix)
{
    int n = snprintf(buf, MAX_PATH, "%s/%s%s", dir, name, suffix);

    if (n < 0 || n >= MAX_PATH) {
        fprintf(stderr, "smime-bench: the directory name %s is too long\n", dir);
        return -1;
    }
    return 0;
}

/* Reads DIR/name+suffix (at most MAX_FILE bytes) into buf. */
static int read_small_file(const char *name, const char *suffix, unsigned char *buf, size_t *len)
{
    char path[MAX_PATH];
    FILE *f;

    if (path_in_dir(path, name, suffix) != 0)
        return -1;
    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "smime-bench: opening %s: %s\n", path, strerror(errno));
        return -1;
    }
    *len = fread(buf, 1, MAX_FILE, f);
    if (ferror(f) || !feof(f) || *len == 0) {
        fprintf(stderr, "smime-bench: %s is unreadable, empty or over %d bytes\n", path, MAX_FILE);
        fclose(f);
        return -1;
    }
    fclose(f);
    return 0;
}

static int parse_long(const char *s, long min, long *out)
{
    char *end;
    long mult = 1;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (*end == 'K' || *end == 'k')
        mult = 1L << 10;
    else if (*end == 'M' || *end == 'm')
        mult = 1L << 20;
    else if (*end == 'G' || *end == 'g')
        mult = 1L << 30;
    if (mult != 1)
        end++;
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > LONG_MAX / mult || v * mult < min)
        return -1;
    *out = v * mult;
    return 0;
}

/* ---- setup: the CA and the keys, in psmd and in OpenSSL ---- */

static X509 *read_cert_pem(const char *name)
{
    char path[MAX_PATH];
    BIO *b;
    X509 *x = NULL;

    if (path_in_dir(path, name, ".pem") != 0)
        return NULL;
    b = BIO_new_file(path, "r");
    if (b != NULL)
        x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    if (x == NULL)
        print_openssl_error(path);
    return x;
}

static EVP_PKEY *read_key_pem(const char *name)
{
    char path[MAX_PATH];
    BIO *b;
    EVP_PKEY *k = NULL;

    if (path_in_dir(path, name, ".key") != 0)
        return NULL;
    b = BIO_new_file(path, "r");
    if (b != NULL)
        k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (k == NULL)
        print_openssl_error(path);
    return k;
}

static int import_ca(psm_conn *conn)
{
    unsigned char pem[MAX_FILE];
    size_t len = 0;
    psm_cert *ca = NULL;
    psm_result res;

    if (read_small_file("ca", ".pem", pem, &len) != 0)
        return -1;
    res = psm_cert_import(conn, pem, len, NULL, PSM_TRUST_CA_EMAIL, &ca);
    psm_cert_free(ca);
    if (res != PSM_OK) {
        print_psm_error("psm_cert_import (the CA)", res);
        return -1;
    }
    return 0;
}

/* Imports DIR/<name>.p12 into psmd and reads the same key and certificate
 * for OpenSSL; checks they are one key. */
static int load_key(psm_conn *conn, struct keyset *ks)
{
    unsigned char p12[MAX_FILE];
    size_t len = 0;
    const uint8_t *der = NULL;
    size_t der_len = 0;
    const unsigned char *p;
    X509 *from_psm = NULL;
    int status = -1;
    psm_result res;

    if (read_small_file(ks->name, ".p12", p12, &len) != 0)
        goto cleanup;
    res = psm_pkcs12_import(conn, p12, len, PKCS12_PASSWORD, &ks->cert);
    if (res != PSM_OK) {
        print_psm_error("psm_pkcs12_import", res);
        goto cleanup;
    }
    ks->x509 = read_cert_pem(ks->name);
    ks->pkey = read_key_pem(ks->name);
    if (ks->x509 == NULL || ks->pkey == NULL)
        goto cleanup;
    res = psm_cert_der(ks->cert, &der, &der_len);
    if (res != PSM_OK) {
        print_psm_error("psm_cert_der", res);
        goto cleanup;
    }
    p = der;
    from_psm = d2i_X509(NULL, &p, (long)der_len);
    if (from_psm == NULL || X509_cmp(from_psm, ks->x509) != 0 ||
        EVP_PKEY_eq(X509_get0_pubkey(ks->x509), ks->pkey) != 1) {
        fprintf(stderr, "smime-bench: psm's %s certificate is not the one in %s\n", ks->label, dir);
        goto cleanup;
    }
    status = 0;

cleanup:
    X509_free(from_psm);
    return status;
}

/* ---- 1 KiB: the four signers and verifiers ---- */

static int sign_psm(struct small *s)
{
    uint8_t *out = NULL;
    size_t out_len = 0;
    psm_result res;

    res = psm_smime_sign(s->conn, s->ks->cert, s->msg, s->msg_len, 0, &out, &out_len);
    if (res != PSM_OK) {
        print_psm_error("psm_smime_sign", res);
        return -1;
    }
    psm_free(out);
    return 0;
}

/* What psmd does for psm_smime_sign (opaque, streamed out, CRLF lines). */
static int sign_openssl(struct small *s)
{
    const int flags = CMS_PARTIAL | CMS_STREAM;
    BIO *in = BIO_new_mem_buf(s->msg, (int)s->msg_len);
    BIO *out = BIO_new(BIO_s_mem());
    CMS_ContentInfo *cms = NULL;
    int ok;

    ok = in != NULL && out != NULL &&
         (cms = CMS_sign(NULL, NULL, s->chain, NULL, (unsigned)flags)) != NULL &&
         CMS_add1_signer(cms, s->ks->x509, s->ks->pkey, EVP_sha256(), (unsigned)flags) != NULL &&
         SMIME_write_CMS(out, cms, in, CMS_STREAM | CMS_CRLFEOL) == 1;
    CMS_ContentInfo_free(cms);
    BIO_free(out);
    BIO_free(in);
    if (!ok) {
        print_openssl_error("CMS_sign");
        return -1;
    }
    return 0;
}

static int verify_psm(struct small *s)
{
    psm_smime_result *r = NULL;
    psm_result res;

    res = psm_smime_verify(s->conn, s->signed_msg, s->signed_len, NULL, 0, &r);
    if (res != PSM_OK) {
        print_psm_error("psm_smime_verify", res);
        return -1;
    }
    res = psm_smime_result_status(r);
    if (res != PSM_OK) {
        fprintf(stderr, "smime-bench: psm_smime_verify: %s: %s\n", psm_result_str(res),
                psm_smime_result_detail(r));
        psm_smime_result_free(r);
        return -1;
    }
    psm_smime_result_free(r);
    return 0;
}

/* Signature, chain up to the trusted CA (purpose S/MIME signing), content out. */
static int verify_openssl(struct small *s)
{
    BIO *in = BIO_new_mem_buf(s->signed_msg, (int)s->signed_len);
    BIO *out = BIO_new(BIO_s_mem());
    BIO *content = NULL;
    CMS_ContentInfo *cms = NULL;
    int ok;

    ok = in != NULL && out != NULL && (cms = SMIME_read_CMS(in, &content)) != NULL &&
         CMS_verify(cms, NULL, s->store, content, out, 0) == 1;
    CMS_ContentInfo_free(cms);
    BIO_free(content);
    BIO_free(out);
    BIO_free(in);
    if (!ok) {
        print_openssl_error("CMS_verify");
        return -1;
    }
    return 0;
}

/* Calls op for `seconds` after a warm-up; its ops/s into *ops_per_s. */
static int run_for(op_fn op, struct small *s, long seconds, double *ops_per_s)
{
    uint64_t start, end, deadline;
    long calls = 0;
    int i;

    for (i = 0; i < WARMUP_CALLS; i++)
        if (op(s) != 0)
            return -1;
    start = now_ns();
    deadline = start + (uint64_t)seconds * 1000000000u;
    do {
        if (op(s) != 0)
            return -1;
        calls++;
        end = now_ns();
    } while (end < deadline);
    *ops_per_s = (double)calls * 1e9 / (double)(end - start);
    return 0;
}

static void print_ops(const char *what, const char *label, double psm, double local)
{
    printf("smime %-6s 1KiB %-8s: psm %6.0f ops/s  openssl in-process %6.0f ops/s  ratio %.2f "
           "(goal >= 0.7)\n",
           what, label, psm, local, psm / local);
    fflush(stdout);
}

static int bench_small(struct small *s, long seconds)
{
    double psm_ops = 0, local_ops = 0;
    psm_result res;

    res =
        psm_smime_sign(s->conn, s->ks->cert, s->msg, s->msg_len, 0, &s->signed_msg, &s->signed_len);
    if (res != PSM_OK) {
        print_psm_error("psm_smime_sign", res);
        return -1;
    }
    /* OpenSSL must accept what psm signed, and psm what it signed itself. */
    if (verify_openssl(s) != 0 || verify_psm(s) != 0)
        return -1;

    if (run_for(sign_psm, s, seconds, &psm_ops) != 0 ||
        run_for(sign_openssl, s, seconds, &local_ops) != 0)
        return -1;
    print_ops("sign", s->ks->label, psm_ops, local_ops);
    if (run_for(verify_psm, s, seconds, &psm_ops) != 0 ||
        run_for(verify_openssl, s, seconds, &local_ops) != 0)
        return -1;
    print_ops("verify", s->ks->label, psm_ops, local_ops);
    return 0;
}

/* ---- the big message through a stream ---- */

/* A MIME entity of exactly `bytes` bytes: a header, then CRLF lines of
 * base64 characters (an attachment's look), made fast and reproducibly. */
static int write_big_message(const char *path, long bytes)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char *buf = malloc(WRITE_CHUNK);
    uint64_t x = 0x9e3779b97f4a7c15u;
    long left = bytes - (long)(sizeof mime_header - 1);
    long col = 0;
    FILE *f = NULL;
    int status = -1;

    if (buf == NULL || left < 0) {
        fprintf(stderr, "smime-bench: no memory, or %ld bytes is too small a message\n", bytes);
        goto cleanup;
    }
    f = fopen(path, "wb");
    if (f == NULL || fwrite(mime_header, 1, sizeof mime_header - 1, f) != sizeof mime_header - 1)
        goto io_error;
    while (left > 0) {
        size_t n = left < WRITE_CHUNK ? (size_t)left : WRITE_CHUNK;
        size_t i;
        for (i = 0; i < n; i++) {
            if (col == LINE_CHARS) {
                buf[i] = '\r';
            } else if (col == LINE_CHARS + 1) {
                buf[i] = '\n';
                col = -1;
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf[i] = (unsigned char)b64[x & 63];
            }
            col++;
        }
        if (fwrite(buf, 1, n, f) != n)
            goto io_error;
        left -= (long)n;
    }
    if (fclose(f) != 0) {
        f = NULL;
        goto io_error;
    }
    f = NULL;
    status = 0;
    goto cleanup;

io_error:
    fprintf(stderr, "smime-bench: writing %s: %s\n", path, strerror(errno));
cleanup:
    if (f != NULL)
        fclose(f);
    free(buf);
    return status;
}

/* Copies a small log file to stderr (what a failed command said). */
static void show_log(const char *path)
{
    char line[512];
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return;
    while (fgets(line, sizeof line, f) != NULL)
        fputs(line, stderr);
    fclose(f);
}

/* Runs argv (the openssl CLI, cmp) with stdout to /dev/null, and stderr to
 * `log` when not NULL (shown if the command fails); its wall time in *ns. */
static int run_command(char *const argv[], const char *log, uint64_t *ns)
{
    uint64_t t0 = now_ns();
    int wstatus;
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        perror("smime-bench: fork");
        return -1;
    }
    if (pid == 0) {
        int out = open("/dev/null", O_WRONLY);
        int err = log != NULL ? open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600) : -1;
        if (out >= 0)
            dup2(out, STDOUT_FILENO);
        if (err >= 0)
            dup2(err, STDERR_FILENO);
        execvp(argv[0], argv);
        fprintf(stderr, "smime-bench: running %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    while (waitpid(pid, &wstatus, 0) < 0)
        if (errno != EINTR) {
            perror("smime-bench: waitpid");
            return -1;
        }
    *ns = now_ns() - t0;
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
        if (log != NULL)
            show_log(log);
        fprintf(stderr, "smime-bench: %s %s %s failed\n", argv[0], argv[1], argv[2]);
        return -1;
    }
    return 0;
}

/* One psm stream run, in to out, timed; with `encrypt`, to ks's certificate. */
static int run_psm_stream(psm_conn *conn, const struct keyset *ks, int encrypt, const char *in,
                          const char *out, uint64_t *ns)
{
    const psm_cert *recipients[1];
    int in_fd, out_fd;
    uint64_t t0;
    psm_result res;

    recipients[0] = ks->cert;
    in_fd = open(in, O_RDONLY);
    out_fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in_fd < 0 || out_fd < 0) {
        fprintf(stderr, "smime-bench: opening %s or %s: %s\n", in, out, strerror(errno));
        if (in_fd >= 0)
            close(in_fd);
        if (out_fd >= 0)
            close(out_fd);
        return -1;
    }
    t0 = now_ns();
    if (encrypt)
        res = psm_smime_encrypt_stream(conn, recipients, 1, 0, in_fd, out_fd);
    else
        res = psm_smime_sign_stream(conn, ks->cert, 0, in_fd, out_fd);
    *ns = now_ns() - t0;
    close(in_fd);
    if (close(out_fd) != 0 && res == PSM_OK) {
        fprintf(stderr, "smime-bench: writing %s: %s\n", out, strerror(errno));
        return -1;
    }
    if (res != PSM_OK) {
        print_psm_error(encrypt ? "psm_smime_encrypt_stream" : "psm_smime_sign_stream", res);
        return -1;
    }
    return 0;
}

/* A process's peak resident memory (VmHWM) in KiB; -1 when unreadable. */
static long read_hwm(long pid)
{
    char path[64];
    char line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

/* Makes VmHWM start again from the current RSS (Linux 4.0+); 0 if it did. */
static int reset_hwm(long pid)
{
    char path[64];
    FILE *f;
    int ok;

    snprintf(path, sizeof path, "/proc/%ld/clear_refs", pid);
    f = fopen(path, "w");
    if (f == NULL)
        return -1;
    ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static long file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* "100 MiB", "64 KiB", "5000 bytes". */
static const char *size_words(long bytes, char *buf, size_t len)
{
    if (bytes >= (1L << 20) && bytes % (1L << 20) == 0)
        snprintf(buf, len, "%ld MiB", bytes >> 20);
    else if (bytes >= 1024 && bytes % 1024 == 0)
        snprintf(buf, len, "%ld KiB", bytes >> 10);
    else
        snprintf(buf, len, "%ld bytes", bytes);
    return buf;
}

static double mib_per_s(long bytes, uint64_t ns)
{
    return (double)bytes / MIB / ((double)ns / 1e9);
}

/* One stream figure: psm's call and the CLI command doing the same. */
struct stream_op {
    const char *what; /* "sign" */
    int encrypt;
    char **cli_argv;
    char **check_argv; /* reads psm's output back, untimed */
    uint64_t probe_ns; /* psm on the probe message */
};

/* The files every stream run uses, in DIR. */
struct stream_files {
    char msg[MAX_PATH];
    char probe[MAX_PATH];
    char psm_out[MAX_PATH];
    char cli_out[MAX_PATH];
    char decrypted[MAX_PATH];
    char log[MAX_PATH];
    char cert[MAX_PATH];
    char key[MAX_PATH];
    char ca[MAX_PATH];
};

static int bench_stream(psm_conn *conn, const struct keyset *rsa, struct stream_op *op,
                        const struct stream_files *f, const char *in, long bytes)
{
    uint64_t best_psm = UINT64_MAX, best_cli = UINT64_MAX, ns = 0;
    char size[32];
    int run;

    /* psm and the CLI take turns, so a noisy moment hurts both. */
    for (run = 0; run < RUNS; run++) {
        if (run_psm_stream(conn, rsa, op->encrypt, in, f->psm_out, &ns) != 0)
            return -1;
        if (ns < best_psm)
            best_psm = ns;
        if (run_command(op->cli_argv, f->log, &ns) != 0)
            return -1;
        if (ns < best_cli)
            best_cli = ns;
    }
    printf("smime %-7s %s stream: psm %6.1f MiB/s  openssl cms CLI %6.1f MiB/s  ratio %.2f "
           "(goal >= 0.9)  [best of %d; output %.1f / %.1f MiB]\n",
           op->what, size_words(bytes, size, sizeof size), mib_per_s(bytes, best_psm),
           mib_per_s(bytes, best_cli), (double)best_cli / (double)best_psm, RUNS,
           (double)file_size(f->psm_out) / MIB, (double)file_size(f->cli_out) / MIB);
    fflush(stdout);
    /* psm's last output must be what it claims: OpenSSL reads it back. */
    return run_command(op->check_argv, f->log, &ns);
}

static int bench_streams(psm_conn *conn, const struct keyset *rsa, long bytes, long psmd_pid)
{
    struct stream_files f;
    char *ossl = (char *)openssl_cmd;
    char *sign_argv[] = {ossl,     "cms",     "-sign", "-stream", "-nodetach", "-md",
                         "sha256", "-signer", f.cert,  "-inkey",  f.key,       "-certfile",
                         f.ca,     "-in",     f.msg,   "-out",    f.cli_out,   NULL};
    char *verify_argv[] = {ossl,        "cms", "-verify", "-CAfile", f.ca,        "-purpose",
                           "smimesign", "-in", f.psm_out, "-out",    "/dev/null", NULL};
    char *encrypt_argv[] = {ossl,  "cms",  "-encrypt", "-aes-256-gcm", "-stream", "-in",
                            f.msg, "-out", f.cli_out,  f.cert,         NULL};
    char *decrypt_argv[] = {ossl,   "cms", "-decrypt", "-inkey", f.key,       "-recip",
                            f.cert, "-in", f.psm_out,  "-out",   f.decrypted, NULL};
    char *compare_argv[] = {"cmp", "-s", f.msg, f.decrypted, NULL};
    struct stream_op ops[2] = {
        {"sign", 0, sign_argv, verify_argv, 0},
        {"encrypt", 1, encrypt_argv, decrypt_argv, 0},
    };
    long probe_bytes = bytes < PROBE_BYTES ? bytes : PROBE_BYTES;
    long hwm0 = -1, hwm1 = -1;
    char size[32], probe_size[32];
    double slowest = 0;
    int reset = -1;
    uint64_t ns = 0;
    int i;

    if (path_in_dir(f.msg, "big-message", "") != 0 || path_in_dir(f.probe, "probe", "") != 0 ||
        path_in_dir(f.psm_out, "psm-out", "") != 0 || path_in_dir(f.cli_out, "cli-out", "") != 0 ||
        path_in_dir(f.decrypted, "decrypted", "") != 0 ||
        path_in_dir(f.log, "openssl-cli.log", "") != 0 ||
        path_in_dir(f.cert, rsa->name, ".pem") != 0 || path_in_dir(f.key, rsa->name, ".key") != 0 ||
        path_in_dir(f.ca, "ca", ".pem") != 0)
        return -1;
    if (psmd_pid > 0) {
        reset = reset_hwm(psmd_pid);
        hwm0 = read_hwm(psmd_pid);
    }

    /* The probe (also a warm-up) says how long psm would take on the big
     * message; when over the budget, everything is measured on the probe. */
    if (write_big_message(f.probe, probe_bytes) != 0)
        return -1;
    for (i = 0; i < 2; i++) {
        if (run_psm_stream(conn, rsa, ops[i].encrypt, f.probe, f.psm_out, &ops[i].probe_ns) != 0)
            return -1;
        double projected = (double)ops[i].probe_ns / 1e9 * (double)bytes / (double)probe_bytes;
        if (projected > slowest)
            slowest = projected;
    }
    if (slowest > STREAM_BUDGET_SECONDS) {
        printf("smime streams: psm on a %s probe: sign %.1f MiB/s, encrypt %.1f MiB/s; a %s run "
               "would take %.0f s, over the %d s budget: measured on the %s probe instead\n",
               size_words(probe_bytes, probe_size, sizeof probe_size),
               mib_per_s(probe_bytes, ops[0].probe_ns), mib_per_s(probe_bytes, ops[1].probe_ns),
               size_words(bytes, size, sizeof size), slowest, STREAM_BUDGET_SECONDS, probe_size);
        if (rename(f.probe, f.msg) != 0) {
            fprintf(stderr, "smime-bench: renaming %s: %s\n", f.probe, strerror(errno));
            return -1;
        }
        bytes = probe_bytes;
    } else if (unlink(f.probe) != 0 || write_big_message(f.msg, bytes) != 0) {
        return -1;
    }

    for (i = 0; i < 2; i++)
        if (bench_stream(conn, rsa, &ops[i], &f, f.msg, bytes) != 0)
            return -1;
    if (psmd_pid > 0)
        hwm1 = read_hwm(psmd_pid);
    if (run_command(compare_argv, NULL, &ns) != 0) {
        fprintf(stderr, "smime-bench: psm's encrypted message does not decrypt to its input\n");
        return -1;
    }
    if (psmd_pid <= 0) {
        printf("smime psmd peak RSS: skipped (no $PSMD_PID)\n");
    } else if (hwm0 < 0 || hwm1 < 0) {
        printf("smime psmd peak RSS: skipped (/proc/%ld/status unreadable)\n", psmd_pid);
    } else {
        printf("smime psmd peak RSS over the psm stream runs, %s message: VmHWM %.1f -> %.1f MiB "
               "(%+.1f MiB)%s\n",
               size_words(bytes, size, sizeof size), hwm0 / 1024.0, hwm1 / 1024.0,
               (hwm1 - hwm0) / 1024.0,
               reset == 0 ? "" : " [VmHWM not reset: includes earlier peaks]");
    }
    unlink(f.msg);
    unlink(f.psm_out);
    unlink(f.cli_out);
    unlink(f.decrypted);
    unlink(f.log);
    return 0;
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    struct keyset keys[2] = {
        {.label = "RSA-2048", .name = "rsa"},
        {.label = "P-256", .name = "p256"},
    };
    unsigned char small_msg[SMALL_MESSAGE_LEN];
    long seconds = DEFAULT_SECONDS;
    long bytes = DEFAULT_BYTES;
    long psmd_pid = 0;
    const char *env;
    psm_conn *conn = NULL;
    x509_stack *chain = NULL;
    X509_STORE *store = NULL;
    X509 *ca = NULL;
    int status = EXIT_FAILURE;
    psm_result res;
    size_t k, i;

    if (argc < 2 || argc > 4 || (argc > 2 && parse_long(argv[2], 1, &seconds) != 0) ||
        (argc > 3 && parse_long(argv[3], 4096, &bytes) != 0)) {
        fprintf(stderr, "usage: smime-bench DIR [SECONDS >= 1 [BYTES >= 4096, K/M/G suffixes]]\n");
        return EXIT_FAILURE;
    }
    dir = argv[1];
    env = getenv("OPENSSL");
    if (env != NULL && env[0] != '\0')
        openssl_cmd = env;
    env = getenv("PSMD_PID");
    if (env != NULL && env[0] != '\0' && parse_long(env, 1, &psmd_pid) != 0) {
        fprintf(stderr, "smime-bench: PSMD_PID=%s is not a process id\n", env);
        return EXIT_FAILURE;
    }

    /* A 1 KiB MIME entity of CRLF text lines. */
    memcpy(small_msg, mime_header, sizeof mime_header - 1);
    for (i = sizeof mime_header - 1; i < sizeof small_msg; i++) {
        if (i % 64 == 62)
            small_msg[i] = '\r';
        else if (i % 64 == 63)
            small_msg[i] = '\n';
        else
            small_msg[i] = (unsigned char)('a' + i % 26);
    }

    ca = read_cert_pem("ca");
    chain = sk_X509_new_null();
    store = X509_STORE_new();
    if (ca == NULL || chain == NULL || store == NULL || !sk_X509_push(chain, ca) ||
        !X509_up_ref(ca) || !X509_STORE_add_cert(store, ca)) {
        print_openssl_error("loading the CA");
        goto cleanup;
    }
    res = psm_connect("smime-bench", 0, &conn);
    if (res != PSM_OK) {
        print_psm_error("connecting to psmd", res);
        goto cleanup;
    }
    if (import_ca(conn) != 0)
        goto cleanup;
    for (k = 0; k < 2; k++)
        if (load_key(conn, &keys[k]) != 0)
            goto cleanup;

    for (k = 0; k < 2; k++) {
        struct small s = {conn, &keys[k], chain, store, small_msg, sizeof small_msg, NULL, 0};
        int failed = bench_small(&s, seconds) != 0;
        psm_free(s.signed_msg);
        if (failed)
            goto cleanup;
    }
    if (bench_streams(conn, &keys[0], bytes, psmd_pid) != 0)
        goto cleanup;
    status = EXIT_SUCCESS;

cleanup:
    for (k = 0; k < 2; k++) {
        psm_cert_free(keys[k].cert);
        X509_free(keys[k].x509);
        EVP_PKEY_free(keys[k].pkey);
    }
    psm_conn_free(conn);
    X509_STORE_free(store);
    sk_X509_pop_free(chain, X509_free);
    X509_free(ca);
    return status;
}
