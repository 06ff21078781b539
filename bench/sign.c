/* sign-bench: psm_key_sign through psmd against the same signature made
 * in-process with OpenSSL and made by ssh-agent, for EC P-256 and RSA-2048,
 * then two psm clients signing at once against one.
 *
 *   sign-bench [N_P256 [N_RSA [SECONDS]]]   (defaults 5000, 2000, 2)
 *
 * The keys are made here with OpenSSL and imported into psmd as PKCS#12, so
 * psm and the in-process baseline sign with the very same key. ssh-agent
 * signs with keys of the same type that it already holds: the agent at
 * $SSH_AUTH_SOCK (run.sh starts a private one and ssh-adds one key of each
 * type); without $SSH_AUTH_SOCK those rows are skipped. The agent is driven
 * over its own protocol, one connection, no process per signature.
 *
 * Every call signs the same 32-byte message and is timed on its own
 * (CLOCK_MONOTONIC); rows show the median and 99th percentile in
 * microseconds and the throughput of the whole run; a psm_ping row shows
 * the round trip every psm call pays. psm mode connects to the user's psmd
 * ($PSM_SOCKET), starting it if needed. */

#define _POSIX_C_SOURCE 200809L

#include "bench.h"

#include <psm.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pkcs12.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CALLS_P256 5000
#define DEFAULT_CALLS_RSA 2000
#define DEFAULT_SECONDS 2
#define PING_CALLS 5000
#define MESSAGE_LEN 32
#define CONCURRENT_CLIENTS 2
/* The PKCS#12 is only a way into psmd; its password guards nothing. */
#define PKCS12_PASSWORD "sign-bench"
/* Largest signature either key makes (RSA-2048: 256 bytes). */
#define MAX_SIG_LEN 512

/* ssh-agent protocol (draft-miller-ssh-agent): a uint32 big-endian length,
 * then the message, whose first byte is its type. */
#define SSH_AGENT_FAILURE 5
#define SSH2_AGENTC_REQUEST_IDENTITIES 11
#define SSH2_AGENT_IDENTITIES_ANSWER 12
#define SSH2_AGENTC_SIGN_REQUEST 13
#define SSH2_AGENT_SIGN_RESPONSE 14
#define SSH_AGENT_RSA_SHA2_256 2
/* ssh-agent's own limit on a message. */
#define AGENT_MAX_MESSAGE (256 * 1024)
#define AGENT_MAX_REQUEST 4096

/* One kind of key, and everything each signer needs for it. */
struct keyset {
    const char *label;        /* "P-256" */
    int rsa;                  /* else EC P-256 */
    uint32_t psm_alg;         /* PSM_SIG_* */
    const char *ssh_type;     /* the agent's key type name */
    uint32_t ssh_flags;       /* SSH2_AGENTC_SIGN_REQUEST flags */
    const char *ssh_sig_type; /* the signature type the agent must answer with */
    long calls;
    EVP_PKEY *pkey;
    psm_cert *cert;
    char query[7 + 64 + 1]; /* "sha256:<hex>" for psm_cert_find */
    struct result psm;
    struct result local;
    struct result agent;
    int agent_ran;
};

struct psm_signer {
    psm_conn *conn;
    const psm_cert *cert;
    uint32_t alg;
};

struct agent_signer {
    int fd;
    unsigned char request[AGENT_MAX_REQUEST];
    size_t request_len;
    unsigned char *reply; /* AGENT_MAX_MESSAGE bytes */
    size_t reply_len;
};

/* A client thread of the concurrency run. */
struct worker {
    const char *query;
    pthread_barrier_t *start;
    double seconds;
    long ops;
    double ops_per_s;
    int status;
};

static const unsigned char message[MESSAGE_LEN] = "psm sign-bench 32-byte message!";

static void print_psm_error(const char *what, psm_result res)
{
    const char *detail = psm_last_error();

    fprintf(stderr, "sign-bench: %s failed: %s: %s\n", what, psm_result_str(res),
            detail != NULL ? detail : "");
}

static void print_openssl_error(const char *what)
{
    fprintf(stderr, "sign-bench: %s failed (OpenSSL):\n", what);
    ERR_print_errors_fp(stderr);
}

/* ---- the key, its certificate and its PKCS#12 ---- */

static X509 *self_signed(EVP_PKEY *pkey, const char *cn)
{
    X509 *x = X509_new();
    X509_NAME *name;

    if (x == NULL || !X509_set_version(x, 2) ||
        !ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(now_ns() & 0x7fffffff)) ||
        X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), 86400) == NULL || !X509_set_pubkey(x, pkey))
        goto fail;
    name = X509_get_subject_name(x);
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                    0) ||
        !X509_set_issuer_name(x, name) || X509_sign(x, pkey, EVP_sha256()) <= 0)
        goto fail;
    return x;

fail:
    print_openssl_error("making a self-signed certificate");
    X509_free(x);
    return NULL;
}

/* Makes ks->pkey with OpenSSL and imports it with a self-signed certificate
 * into psmd as PKCS#12; ks->cert is the certificate psm returns. */
static int make_key(psm_conn *conn, struct keyset *ks)
{
    char cn[64];
    X509 *x509 = NULL;
    PKCS12 *p12 = NULL;
    unsigned char *der = NULL;
    const uint8_t *cert_der = NULL;
    size_t cert_len = 0;
    unsigned char digest[32];
    int len;
    int status = -1;
    psm_result res;
    int i;

    ks->pkey = ks->rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    if (ks->pkey == NULL) {
        print_openssl_error("generating a key");
        goto cleanup;
    }
    snprintf(cn, sizeof cn, "sign-bench %s %ld", ks->label, (long)getpid());
    x509 = self_signed(ks->pkey, cn);
    if (x509 == NULL)
        goto cleanup;
    p12 = PKCS12_create(PKCS12_PASSWORD, cn, ks->pkey, x509, NULL, 0, 0, 0, 0, 0);
    if (p12 == NULL || (len = i2d_PKCS12(p12, &der)) <= 0) {
        print_openssl_error("writing the PKCS#12");
        goto cleanup;
    }
    res = psm_pkcs12_import(conn, der, (size_t)len, PKCS12_PASSWORD, &ks->cert);
    if (res != PSM_OK) {
        print_psm_error("psm_pkcs12_import", res);
        goto cleanup;
    }
    if (!psm_cert_has_private_key(ks->cert)) {
        fprintf(stderr, "sign-bench: psm imported the %s certificate without its key\n", ks->label);
        goto cleanup;
    }
    res = psm_cert_der(ks->cert, &cert_der, &cert_len);
    if (res != PSM_OK) {
        print_psm_error("psm_cert_der", res);
        goto cleanup;
    }
    if (!EVP_Digest(cert_der, cert_len, digest, NULL, EVP_sha256(), NULL)) {
        print_openssl_error("hashing the certificate");
        goto cleanup;
    }
    memcpy(ks->query, "sha256:", 7);
    for (i = 0; i < 32; i++)
        snprintf(ks->query + 7 + 2 * i, 3, "%02x", digest[i]);
    status = 0;

cleanup:
    OPENSSL_free(der);
    PKCS12_free(p12);
    X509_free(x509);
    return status;
}

/* Checks one psm signature against the public key of the certificate psm
 * holds, and that this is the key the in-process baseline signs with. */
static int check_psm_signature(psm_conn *conn, struct keyset *ks)
{
    const uint8_t *der = NULL;
    const unsigned char *p;
    size_t der_len = 0;
    X509 *x509 = NULL;
    EVP_MD_CTX *md = NULL;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    int status = -1;
    psm_result res;

    res = psm_key_sign(conn, ks->cert, ks->psm_alg, message, sizeof message, &sig, &sig_len);
    if (res != PSM_OK) {
        print_psm_error("psm_key_sign", res);
        goto cleanup;
    }
    res = psm_cert_der(ks->cert, &der, &der_len);
    if (res != PSM_OK) {
        print_psm_error("psm_cert_der", res);
        goto cleanup;
    }
    p = der;
    x509 = d2i_X509(NULL, &p, (long)der_len);
    md = EVP_MD_CTX_new();
    if (x509 == NULL || md == NULL ||
        EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, X509_get0_pubkey(x509)) != 1) {
        print_openssl_error("reading psm's certificate");
        goto cleanup;
    }
    if (EVP_DigestVerify(md, sig, sig_len, message, sizeof message) != 1) {
        fprintf(stderr, "sign-bench: psm's %s signature does not verify against its certificate\n",
                ks->label);
        ERR_print_errors_fp(stderr);
        goto cleanup;
    }
    if (EVP_PKEY_eq(X509_get0_pubkey(x509), ks->pkey) != 1) {
        fprintf(stderr, "sign-bench: psm's %s certificate is not for the key made here\n",
                ks->label);
        goto cleanup;
    }
    status = 0;

cleanup:
    EVP_MD_CTX_free(md);
    X509_free(x509);
    psm_free(sig);
    return status;
}

/* ---- the three signers ---- */

static int sign_psm(void *ctx)
{
    struct psm_signer *s = ctx;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    psm_result res;

    res = psm_key_sign(s->conn, s->cert, s->alg, message, sizeof message, &sig, &sig_len);
    if (res != PSM_OK) {
        print_psm_error("psm_key_sign", res);
        return -1;
    }
    psm_free(sig);
    return 0;
}

/* What an application holding the key would do per signature. */
static int sign_local(void *ctx)
{
    EVP_PKEY *pkey = ctx;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char sig[MAX_SIG_LEN];
    size_t sig_len = sizeof sig;
    int ok;

    ok = md != NULL && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
         EVP_DigestSign(md, sig, &sig_len, message, sizeof message) == 1;
    EVP_MD_CTX_free(md);
    if (!ok) {
        print_openssl_error("EVP_DigestSign");
        return -1;
    }
    return 0;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Reads an SSH string at *pos of buf (len bytes): its bytes and length. */
static int get_string(const unsigned char *buf, size_t len, size_t *pos, const unsigned char **s,
                      size_t *s_len)
{
    uint32_t n;

    if (len - *pos < 4)
        return -1;
    n = get_u32(buf + *pos);
    if (len - *pos - 4 < n)
        return -1;
    *s = buf + *pos + 4;
    *s_len = n;
    *pos += 4 + (size_t)n;
    return 0;
}

/* Sends the framed request in a->request and reads one reply message (its
 * body, without the length) into a->reply. */
static int agent_call(struct agent_signer *a)
{
    unsigned char len[4];
    uint32_t n;

    if (transfer_all(a->fd, a->request, a->request_len, 1) != 0 ||
        transfer_all(a->fd, len, sizeof len, 0) != 0) {
        perror("sign-bench: talking to ssh-agent");
        return -1;
    }
    n = get_u32(len);
    if (n == 0 || n > AGENT_MAX_MESSAGE) {
        fprintf(stderr, "sign-bench: ssh-agent sent a %lu-byte message\n", (unsigned long)n);
        return -1;
    }
    if (transfer_all(a->fd, a->reply, n, 0) != 0) {
        perror("sign-bench: reading from ssh-agent");
        return -1;
    }
    a->reply_len = n;
    return 0;
}

static int sign_agent(void *ctx)
{
    struct agent_signer *a = ctx;

    if (agent_call(a) != 0)
        return -1;
    if (a->reply[0] != SSH2_AGENT_SIGN_RESPONSE) {
        fprintf(stderr, "sign-bench: ssh-agent answered a sign request with message type %d\n",
                a->reply[0]);
        return -1;
    }
    return 0;
}

static int agent_connect(const char *path)
{
    struct sockaddr_un addr;
    int fd;

    if (strlen(path) >= sizeof addr.sun_path) {
        fprintf(stderr, "sign-bench: SSH_AUTH_SOCK %s is too long\n", path);
        return -1;
    }
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        fprintf(stderr, "sign-bench: connecting to ssh-agent at %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Asks the agent for its keys and builds, in a->request, the sign request
 * for the first one of type ks->ssh_type. */
static int agent_prepare(struct agent_signer *a, const struct keyset *ks)
{
    const unsigned char *blob = NULL;
    size_t blob_len = 0;
    size_t pos = 5;
    size_t need;
    uint32_t nkeys;
    unsigned char *p;

    put_u32(a->request, 1);
    a->request[4] = SSH2_AGENTC_REQUEST_IDENTITIES;
    a->request_len = 5;
    if (agent_call(a) != 0)
        return -1;
    if (a->reply[0] != SSH2_AGENT_IDENTITIES_ANSWER || a->reply_len < 5) {
        fprintf(stderr, "sign-bench: ssh-agent answered the identities request with type %d\n",
                a->reply[0]);
        return -1;
    }
    for (nkeys = get_u32(a->reply + 1); nkeys > 0 && blob == NULL; nkeys--) {
        const unsigned char *key, *comment, *type;
        size_t key_len, comment_len, type_len, kpos = 0;

        if (get_string(a->reply, a->reply_len, &pos, &key, &key_len) != 0 ||
            get_string(a->reply, a->reply_len, &pos, &comment, &comment_len) != 0 ||
            get_string(key, key_len, &kpos, &type, &type_len) != 0) {
            fprintf(stderr, "sign-bench: ssh-agent's identities answer is malformed\n");
            return -1;
        }
        if (type_len == strlen(ks->ssh_type) && memcmp(type, ks->ssh_type, type_len) == 0) {
            blob = key;
            blob_len = key_len;
        }
    }
    if (blob == NULL) {
        fprintf(stderr, "sign-bench: ssh-agent holds no %s key (ssh-add one)\n", ks->ssh_type);
        return -1;
    }
    /* byte type, string key blob, string data, uint32 flags */
    need = 1 + 4 + blob_len + 4 + MESSAGE_LEN + 4;
    if (4 + need > sizeof a->request) {
        fprintf(stderr, "sign-bench: the agent's %s key blob is too large\n", ks->ssh_type);
        return -1;
    }
    p = a->request;
    put_u32(p, (uint32_t)need);
    p[4] = SSH2_AGENTC_SIGN_REQUEST;
    put_u32(p + 5, (uint32_t)blob_len);
    memcpy(p + 9, blob, blob_len);
    p += 9 + blob_len;
    put_u32(p, MESSAGE_LEN);
    memcpy(p + 4, message, MESSAGE_LEN);
    put_u32(p + 4 + MESSAGE_LEN, ks->ssh_flags);
    a->request_len = 4 + need;
    return 0;
}

/* Signs once and checks the agent used the expected algorithm (for RSA:
 * rsa-sha2-256, not SHA-1 ssh-rsa). */
static int agent_check(struct agent_signer *a, const struct keyset *ks)
{
    const unsigned char *sig, *type;
    size_t sig_len, type_len, pos = 1, spos = 0;

    if (sign_agent(a) != 0)
        return -1;
    if (get_string(a->reply, a->reply_len, &pos, &sig, &sig_len) != 0 ||
        get_string(sig, sig_len, &spos, &type, &type_len) != 0) {
        fprintf(stderr, "sign-bench: ssh-agent's sign response is malformed\n");
        return -1;
    }
    if (type_len != strlen(ks->ssh_sig_type) || memcmp(type, ks->ssh_sig_type, type_len) != 0) {
        fprintf(stderr, "sign-bench: ssh-agent signed with %.*s, expected %s\n", (int)type_len,
                (const char *)type, ks->ssh_sig_type);
        return -1;
    }
    return 0;
}

static int bench_agent(const char *sock, struct keyset *ks, uint64_t *samples)
{
    struct agent_signer a;
    int status = -1;

    memset(&a, 0, sizeof a);
    a.fd = -1;
    a.reply = malloc(AGENT_MAX_MESSAGE);
    if (a.reply == NULL) {
        perror("sign-bench: malloc");
        goto cleanup;
    }
    a.fd = agent_connect(sock);
    if (a.fd < 0 || agent_prepare(&a, ks) != 0 || agent_check(&a, ks) != 0)
        goto cleanup;
    if (run_timed(sign_agent, &a, ks->calls, samples, &ks->agent) != 0)
        goto cleanup;
    ks->agent_ran = 1;
    status = 0;

cleanup:
    if (a.fd >= 0)
        close(a.fd);
    free(a.reply);
    return status;
}

/* ---- concurrency: clients signing P-256 at once, each on its own conn ---- */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    psm_conn *conn = NULL;
    psm_cert *cert = NULL;
    uint64_t start, end, deadline;
    psm_result res;
    int ready = 0;
    int i;

    w->status = -1;
    res = psm_connect("sign-bench", 0, &conn);
    if (res != PSM_OK)
        print_psm_error("psm_connect", res);
    else if ((res = psm_cert_find(conn, w->query, &cert)) != PSM_OK)
        print_psm_error("psm_cert_find", res);
    else
        ready = 1;
    for (i = 0; ready && i < MAX_WARMUP_CALLS; i++) {
        struct psm_signer s = {conn, cert, PSM_SIG_ECDSA_SHA256};
        if (sign_psm(&s) != 0)
            ready = 0;
    }
    /* Everyone waits, ready or not, so no thread is left at the barrier. */
    pthread_barrier_wait(w->start);
    if (!ready)
        goto cleanup;

    start = now_ns();
    deadline = start + (uint64_t)(w->seconds * 1e9);
    w->ops = 0;
    do {
        struct psm_signer s = {conn, cert, PSM_SIG_ECDSA_SHA256};
        if (sign_psm(&s) != 0)
            goto cleanup;
        w->ops++;
        end = now_ns();
    } while (end < deadline);
    w->ops_per_s = (double)w->ops * 1e9 / (double)(end - start);
    w->status = 0;

cleanup:
    psm_cert_free(cert);
    psm_conn_free(conn);
    return NULL;
}

/* Runs n clients for `seconds`; their summed ops/s into *ops_per_s. */
static int bench_clients(int n, const char *query, double seconds, double *ops_per_s)
{
    pthread_t threads[CONCURRENT_CLIENTS];
    struct worker workers[CONCURRENT_CLIENTS];
    pthread_barrier_t start;
    int started = 0;
    int status = -1;
    int i;

    if (pthread_barrier_init(&start, NULL, (unsigned)n) != 0) {
        fprintf(stderr, "sign-bench: pthread_barrier_init failed\n");
        return -1;
    }
    for (i = 0; i < n; i++) {
        struct worker w = {query, &start, seconds, 0, 0, -1};
        workers[i] = w;
        if (pthread_create(&threads[i], NULL, worker_main, &workers[i]) != 0) {
            fprintf(stderr, "sign-bench: pthread_create failed\n");
            /* The barrier would wait for this thread forever. */
            abort();
        }
        started++;
    }
    *ops_per_s = 0;
    status = 0;
    for (i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
        if (workers[i].status != 0)
            status = -1;
        *ops_per_s += workers[i].ops_per_s;
    }
    pthread_barrier_destroy(&start);
    return status;
}

/* ---- main ---- */

static int ping_p50(psm_conn *conn, uint64_t *samples, struct result *r)
{
    long i;
    uint64_t start = now_ns();

    for (i = 0; i < PING_CALLS; i++) {
        uint64_t t0 = now_ns();
        psm_result res = psm_ping(conn);
        if (res != PSM_OK) {
            print_psm_error("psm_ping", res);
            return -1;
        }
        samples[i] = now_ns() - t0;
    }
    summarize(r, samples, PING_CALLS, now_ns() - start);
    return 0;
}

static void print_row(const char *key, const struct result *r)
{
    printf("%-9s %-11s %8ld %10.1f %10.1f %10.0f\n", key, r->name, r->calls, r->p50_us, r->p99_us,
           r->ops_per_s);
}

static int parse_arg(const char *s, long min, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*end != '\0' || v < min)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    struct keyset keys[2] = {
        {.label = "P-256",
         .psm_alg = PSM_SIG_ECDSA_SHA256,
         .ssh_type = "ecdsa-sha2-nistp256",
         .ssh_sig_type = "ecdsa-sha2-nistp256",
         .calls = DEFAULT_CALLS_P256},
        {.label = "RSA-2048",
         .rsa = 1,
         .psm_alg = PSM_SIG_RSA_PKCS1_SHA256,
         .ssh_type = "ssh-rsa",
         .ssh_flags = SSH_AGENT_RSA_SHA2_256,
         .ssh_sig_type = "rsa-sha2-256",
         .calls = DEFAULT_CALLS_RSA},
    };
    const char *agent_sock = getenv("SSH_AUTH_SOCK");
    long seconds = DEFAULT_SECONDS;
    long max_calls = PING_CALLS;
    psm_conn *conn = NULL;
    uint64_t *samples = NULL;
    struct result ping = {"psm_ping", 0, 0, 0, 0};
    double one = 0, two = 0;
    int status = EXIT_FAILURE;
    psm_result res;
    size_t k;

    if ((argc > 1 && parse_arg(argv[1], 10, &keys[0].calls) != 0) ||
        (argc > 2 && parse_arg(argv[2], 10, &keys[1].calls) != 0) ||
        (argc > 3 && parse_arg(argv[3], 1, &seconds) != 0) || argc > 4) {
        fprintf(stderr, "usage: sign-bench [N_P256 >= 10 [N_RSA >= 10 [SECONDS >= 1]]]\n");
        goto cleanup;
    }
    if (agent_sock != NULL && agent_sock[0] == '\0')
        agent_sock = NULL;
    for (k = 0; k < 2; k++)
        if (keys[k].calls > max_calls)
            max_calls = keys[k].calls;
    samples = malloc((size_t)max_calls * sizeof samples[0]);
    if (samples == NULL) {
        perror("sign-bench: malloc");
        goto cleanup;
    }

    res = psm_connect("sign-bench", 0, &conn);
    if (res != PSM_OK) {
        print_psm_error("connecting to psmd", res);
        goto cleanup;
    }
    for (k = 0; k < 2; k++) {
        struct keyset *ks = &keys[k];
        struct psm_signer s = {conn, NULL, ks->psm_alg};

        ks->psm.name = "psm";
        ks->local.name = "in-process";
        ks->agent.name = "ssh-agent";
        if (make_key(conn, ks) != 0 || check_psm_signature(conn, ks) != 0)
            goto cleanup;
        s.cert = ks->cert;
        if (run_timed(sign_psm, &s, ks->calls, samples, &ks->psm) != 0 ||
            run_timed(sign_local, ks->pkey, ks->calls, samples, &ks->local) != 0)
            goto cleanup;
        if (agent_sock != NULL && bench_agent(agent_sock, ks, samples) != 0)
            goto cleanup;
    }
    if (ping_p50(conn, samples, &ping) != 0)
        goto cleanup;
    if (bench_clients(1, keys[0].query, (double)seconds, &one) != 0 ||
        bench_clients(CONCURRENT_CLIENTS, keys[0].query, (double)seconds, &two) != 0)
        goto cleanup;

    printf("%-9s %-11s %8s %10s %10s %10s\n", "key", "signer", "calls", "p50 us", "p99 us",
           "ops/s");
    for (k = 0; k < 2; k++) {
        print_row(keys[k].label, &keys[k].psm);
        print_row(keys[k].label, &keys[k].local);
        if (keys[k].agent_ran)
            print_row(keys[k].label, &keys[k].agent);
        else
            printf("%-9s %-11s (skipped: no SSH_AUTH_SOCK)\n", keys[k].label, "ssh-agent");
    }
    print_row("-", &ping);
    printf("\n");
    for (k = 0; k < 2; k++) {
        const struct keyset *ks = &keys[k];
        printf("%-9s psm / in-process = %.2fx (goal >= 0.7x)", ks->label,
               ks->psm.ops_per_s / ks->local.ops_per_s);
        if (ks->agent_ran)
            printf(", psm / ssh-agent = %.2fx (goal >= 3x)",
                   ks->psm.ops_per_s / ks->agent.ops_per_s);
        printf("\n");
    }
    printf("P-256     %d clients, %lds each: 1 client %.0f ops/s, %d clients %.0f ops/s = %.2fx "
           "(goal close to 2x)\n",
           CONCURRENT_CLIENTS, seconds, one, CONCURRENT_CLIENTS, two, two / one);
    status = EXIT_SUCCESS;

cleanup:
    for (k = 0; k < 2; k++) {
        psm_cert_free(keys[k].cert);
        EVP_PKEY_free(keys[k].pkey);
    }
    psm_conn_free(conn);
    free(samples);
    return status;
}
