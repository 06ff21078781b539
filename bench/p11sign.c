/* p11sign-bench: ECDSA P-256 signatures with a key on a PKCS#11 token
 * (SoftHSM), made through psmd against the same signature made by calling
 * the module in-process.
 *
 *   p11sign-bench MODULE TOKEN PIN CERT_DER [N]   (default N 5000)
 *
 * run.sh makes the token: TOKEN (label) with user PIN, an EC P-256 key pair
 * generated on it with CKA_ID 01 and label "bench", and a certificate for
 * that key, with the same id and label, whose DER is also in CERT_DER.
 * The labels must be plain (nothing to percent-encode in a PKCS#11 URI).
 *
 * In-process: dlopen MODULE, C_Initialize, find the slot whose token is
 * TOKEN, open a session, C_Login, find the private key with CKA_ID 01;
 * then per signature what an application holding the module does: SHA-256
 * of the 32-byte message (OpenSSL) + C_SignInit(CKM_ECDSA) + C_Sign.
 *
 * psm: psmd loads the module itself (the policy run.sh writes lists it);
 * psm_token_list finds TOKEN, psm_token_login_to logs in with PIN,
 * psm_cert_find("pkcs11:token=TOKEN;object=bench") finds the certificate,
 * then per signature psm_key_sign(PSM_SIG_ECDSA_SHA256) + psm_free. psm
 * mode connects to the user's psmd ($PSM_SOCKET), starting it if needed.
 *
 * The first signature of each side is checked with OpenSSL against the
 * public key of CERT_DER (and psm's certificate must be CERT_DER), so
 * neither can pass with garbage. Every call is timed on its own
 * (CLOCK_MONOTONIC, after an untimed warm-up) as in sign-bench: the median
 * and 99th percentile in microseconds and the throughput of the whole run.
 * If the psm half fails, its reason is printed, the in-process row is
 * still shown, and the exit status is 1.
 *
 * Built with P11SIGN_TOKEN_API=0 (bench/Makefile does so when psm.h has no
 * psm_token_list yet), the psm half only says it is missing. */

#define _POSIX_C_SOURCE 200809L

#include "bench.h"

#include <psm.h>

#include <p11-kit/pkcs11.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef P11SIGN_TOKEN_API
#define P11SIGN_TOKEN_API 1
#endif

#define DEFAULT_CALLS 5000
#define MESSAGE_LEN 32
/* What run.sh gives the key and the certificate on the token. */
#define KEY_ID 0x01
#define OBJECT_LABEL "bench"
/* P-256: r || s from CKM_ECDSA. */
#define RAW_SIG_LEN 64
#define MAX_SIG_LEN 128
#define MAX_SLOTS 64
#define MAX_CERT_BYTES (64 * 1024)

/* The module, called in-process. */
struct p11 {
    void *lib;
    CK_FUNCTION_LIST_PTR f;
    int initialized;
    CK_SESSION_HANDLE session;
    int have_session;
    CK_OBJECT_HANDLE key;
    /* The last signature (raw r || s). */
    CK_BYTE sig[MAX_SIG_LEN];
    CK_ULONG sig_len;
};

struct psm_signer {
    psm_conn *conn;
    const psm_cert *cert;
    /* Keep the last signature for the check, else free it at once. */
    int keep;
    uint8_t *sig;
    size_t sig_len;
};

static const unsigned char message[MESSAGE_LEN] = "psm p11sign-bench 32-byte text!";

static void print_openssl_error(const char *what)
{
    fprintf(stderr, "p11sign-bench: %s failed (OpenSSL):\n", what);
    ERR_print_errors_fp(stderr);
}

static void print_ckr(const char *what, CK_RV rv)
{
    fprintf(stderr, "p11sign-bench: in-process %s failed: CKR 0x%08lx\n", what, (unsigned long)rv);
}

/* Reads the certificate run.sh wrote to the token. */
static X509 *read_cert(const char *path)
{
    static unsigned char buf[MAX_CERT_BYTES];
    const unsigned char *p = buf;
    FILE *f = fopen(path, "rb");
    size_t len;
    X509 *x509;

    if (f == NULL) {
        perror(path);
        return NULL;
    }
    len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    x509 = d2i_X509(NULL, &p, (long)len);
    if (x509 == NULL)
        print_openssl_error("reading the certificate");
    return x509;
}

/* Whether der (an ECDSA-Sig-Value, as psm returns it) is a signature of
 * the message by the key of x509. */
static int verify_der(X509 *x509, const unsigned char *der, size_t len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok;

    ok = md != NULL &&
         EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, X509_get0_pubkey(x509)) == 1 &&
         EVP_DigestVerify(md, der, len, message, sizeof message) == 1;
    if (!ok)
        ERR_print_errors_fp(stderr);
    EVP_MD_CTX_free(md);
    return ok;
}

/* The same for a raw r || s signature, as CKM_ECDSA makes it. */
static int verify_raw(X509 *x509, const unsigned char *raw, size_t len)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)(len / 2), NULL);
    BIGNUM *s = BN_bin2bn(raw + len / 2, (int)(len / 2), NULL);
    unsigned char *der = NULL;
    int der_len = -1;
    int ok = 0;

    if (len == RAW_SIG_LEN && sig != NULL && r != NULL && s != NULL &&
        ECDSA_SIG_set0(sig, r, s) == 1) {
        r = s = NULL; /* sig owns them */
        der_len = i2d_ECDSA_SIG(sig, &der);
    }
    if (der_len > 0)
        ok = verify_der(x509, der, (size_t)der_len);
    OPENSSL_free(der);
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return ok;
}

/* ---- in-process ---- */

/* Copies a blank-padded PKCS#11 label into a C string. */
static void label_string(char *out, const CK_UTF8CHAR *label, size_t len)
{
    while (len > 0 && label[len - 1] == ' ')
        len--;
    memcpy(out, label, len);
    out[len] = '\0';
}

/* Loads the module, logs in to TOKEN and finds the key. */
static int p11_open(struct p11 *p, const char *module, const char *token, const char *pin)
{
    CK_RV (*get)(CK_FUNCTION_LIST_PTR_PTR) = NULL;
    CK_SLOT_ID slots[MAX_SLOTS];
    CK_ULONG n = MAX_SLOTS, i, found = 0;
    CK_SLOT_ID slot = 0;
    int have_slot = 0;
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_BYTE id = KEY_ID;
    CK_ATTRIBUTE query[2];
    CK_RV rv;

    p->lib = dlopen(module, RTLD_NOW | RTLD_LOCAL);
    if (p->lib == NULL) {
        fprintf(stderr, "p11sign-bench: dlopen %s: %s\n", module, dlerror());
        return -1;
    }
    /* POSIX: the way to turn dlsym's object pointer into a function pointer. */
    *(void **)(&get) = dlsym(p->lib, "C_GetFunctionList");
    if (get == NULL || (rv = get(&p->f)) != CKR_OK) {
        fprintf(stderr, "p11sign-bench: %s has no usable C_GetFunctionList\n", module);
        return -1;
    }
    if ((rv = p->f->C_Initialize(NULL)) != CKR_OK) {
        print_ckr("C_Initialize", rv);
        return -1;
    }
    p->initialized = 1;
    if ((rv = p->f->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK) {
        print_ckr("C_GetSlotList", rv);
        return -1;
    }
    for (i = 0; i < n && !have_slot; i++) {
        CK_TOKEN_INFO info;
        char label[sizeof info.label + 1];

        if (p->f->C_GetTokenInfo(slots[i], &info) != CKR_OK)
            continue;
        label_string(label, info.label, sizeof info.label);
        if (strcmp(label, token) == 0) {
            slot = slots[i];
            have_slot = 1;
        }
    }
    if (!have_slot) {
        fprintf(stderr, "p11sign-bench: %s has no token labelled %s (is SOFTHSM2_CONF set?)\n",
                module, token);
        return -1;
    }
    if ((rv = p->f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &p->session)) != CKR_OK) {
        print_ckr("C_OpenSession", rv);
        return -1;
    }
    p->have_session = 1;
    rv = p->f->C_Login(p->session, CKU_USER, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)strlen(pin));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
        print_ckr("C_Login", rv);
        return -1;
    }
    query[0].type = CKA_CLASS;
    query[0].pValue = &cls;
    query[0].ulValueLen = sizeof cls;
    query[1].type = CKA_ID;
    query[1].pValue = &id;
    query[1].ulValueLen = sizeof id;
    if ((rv = p->f->C_FindObjectsInit(p->session, query, 2)) != CKR_OK) {
        print_ckr("C_FindObjectsInit", rv);
        return -1;
    }
    rv = p->f->C_FindObjects(p->session, &p->key, 1, &found);
    (void)p->f->C_FindObjectsFinal(p->session);
    if (rv != CKR_OK || found != 1) {
        fprintf(stderr, "p11sign-bench: token %s has no private key with CKA_ID %02x\n", token,
                KEY_ID);
        return -1;
    }
    return 0;
}

static void p11_close(struct p11 *p)
{
    if (p->have_session)
        (void)p->f->C_CloseSession(p->session);
    if (p->initialized)
        (void)p->f->C_Finalize(NULL);
    if (p->lib != NULL)
        dlclose(p->lib);
}

static int sign_inprocess(void *ctx)
{
    struct p11 *p = ctx;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
    CK_RV rv;

    if (SHA256(message, sizeof message, digest) == NULL) {
        print_openssl_error("SHA256");
        return -1;
    }
    if ((rv = p->f->C_SignInit(p->session, &mech, p->key)) != CKR_OK) {
        print_ckr("C_SignInit", rv);
        return -1;
    }
    p->sig_len = sizeof p->sig;
    if ((rv = p->f->C_Sign(p->session, digest, sizeof digest, p->sig, &p->sig_len)) != CKR_OK) {
        print_ckr("C_Sign", rv);
        return -1;
    }
    return 0;
}

static int bench_inprocess(const char *module, const char *token, const char *pin, X509 *cert,
                           long calls, uint64_t *samples, struct result *r)
{
    struct p11 p;
    int status = -1;

    memset(&p, 0, sizeof p);
    if (p11_open(&p, module, token, pin) != 0 || sign_inprocess(&p) != 0)
        goto cleanup;
    if (!verify_raw(cert, p.sig, p.sig_len)) {
        fprintf(stderr, "p11sign-bench: the in-process signature does not verify against the "
                        "certificate\n");
        goto cleanup;
    }
    if (run_timed(sign_inprocess, &p, calls, samples, r) != 0)
        goto cleanup;
    status = 0;

cleanup:
    p11_close(&p);
    return status;
}

/* ---- psm ---- */

#if P11SIGN_TOKEN_API

static void print_psm_error(const char *what, psm_result res)
{
    const char *detail = psm_last_error();

    fprintf(stderr, "p11sign-bench: psm half: %s failed: %s: %s\n", what, psm_result_str(res),
            detail != NULL ? detail : "");
}

static int sign_psm(void *ctx)
{
    struct psm_signer *s = ctx;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    psm_result res;

    res = psm_key_sign(s->conn, s->cert, PSM_SIG_ECDSA_SHA256, message, sizeof message, &sig,
                       &sig_len);
    if (res != PSM_OK) {
        print_psm_error("psm_key_sign", res);
        return -1;
    }
    if (s->keep) {
        psm_free(s->sig);
        s->sig = sig;
        s->sig_len = sig_len;
    } else {
        psm_free(sig);
    }
    return 0;
}

/* Finds TOKEN among psmd's tokens and logs in to it with PIN. */
static int psm_login(psm_conn *conn, const char *token, const char *pin)
{
    psm_tokens *list = NULL;
    const psm_token *t = NULL;
    psm_result res;
    size_t i, n;
    int status = -1;

    res = psm_token_list(conn, &list);
    if (res != PSM_OK) {
        print_psm_error("psm_token_list", res);
        return -1;
    }
    n = psm_tokens_len(list);
    for (i = 0; i < n && t == NULL; i++) {
        const psm_token *candidate = psm_tokens_get(list, i);
        const char *label = candidate != NULL ? psm_token_label(candidate) : NULL;

        if (label != NULL && strcmp(label, token) == 0)
            t = candidate;
    }
    if (t == NULL) {
        fprintf(stderr,
                "p11sign-bench: psm half: psmd lists no token %s among its %lu (is the module in "
                "the policy's pkcs11.modules, and SOFTHSM2_CONF set for psmd?):",
                token, (unsigned long)n);
        for (i = 0; i < n; i++) {
            const psm_token *other = psm_tokens_get(list, i);
            const char *label = other != NULL ? psm_token_label(other) : NULL;
            fprintf(stderr, " \"%s\"", label != NULL ? label : "?");
        }
        fprintf(stderr, "\n");
        goto cleanup;
    }
    res = psm_token_login_to(conn, t, pin);
    if (res != PSM_OK) {
        print_psm_error("psm_token_login_to", res);
        goto cleanup;
    }
    status = 0;

cleanup:
    psm_tokens_free(list);
    return status;
}

static int bench_psm(const char *token, const char *pin, X509 *x509, long calls, uint64_t *samples,
                     struct result *r)
{
    char uri[256];
    psm_conn *conn = NULL;
    psm_cert *cert = NULL;
    struct psm_signer s = {NULL, NULL, 1, NULL, 0};
    const uint8_t *der = NULL;
    size_t der_len = 0;
    unsigned char *want = NULL;
    int want_len;
    psm_result res;
    int status = -1;

    res = psm_connect("p11sign-bench", 0, &conn);
    if (res != PSM_OK) {
        print_psm_error("connecting to psmd", res);
        goto cleanup;
    }
    if (psm_login(conn, token, pin) != 0)
        goto cleanup;
    snprintf(uri, sizeof uri, "pkcs11:token=%s;object=%s", token, OBJECT_LABEL);
    res = psm_cert_find(conn, uri, &cert);
    if (res != PSM_OK) {
        char what[sizeof uri + 32];
        snprintf(what, sizeof what, "psm_cert_find(\"%s\")", uri);
        print_psm_error(what, res);
        goto cleanup;
    }
    want_len = i2d_X509(x509, &want);
    res = psm_cert_der(cert, &der, &der_len);
    if (res != PSM_OK) {
        print_psm_error("psm_cert_der", res);
        goto cleanup;
    }
    if (want_len <= 0 || der_len != (size_t)want_len || memcmp(der, want, der_len) != 0) {
        fprintf(stderr,
                "p11sign-bench: psm half: psm found a certificate for %s that is not the one "
                "on the token\n",
                uri);
        goto cleanup;
    }
    s.conn = conn;
    s.cert = cert;
    if (sign_psm(&s) != 0)
        goto cleanup;
    if (!verify_der(x509, s.sig, s.sig_len)) {
        fprintf(stderr, "p11sign-bench: psm half: psm's signature does not verify against the "
                        "certificate\n");
        goto cleanup;
    }
    s.keep = 0;
    if (run_timed(sign_psm, &s, calls, samples, r) != 0)
        goto cleanup;
    status = 0;

cleanup:
    OPENSSL_free(want);
    psm_free(s.sig);
    psm_cert_free(cert);
    psm_conn_free(conn);
    return status;
}

#else /* !P11SIGN_TOKEN_API */

static int bench_psm(const char *token, const char *pin, X509 *x509, long calls, uint64_t *samples,
                     struct result *r)
{
    (void)token;
    (void)pin;
    (void)x509;
    (void)calls;
    (void)samples;
    (void)r;
    fprintf(stderr, "p11sign-bench: psm half: this libpsm has no token API (psm_token_list, "
                    "psm_token_login_to): rebuild against a psm.h that declares them\n");
    return -1;
}

#endif /* P11SIGN_TOKEN_API */

/* ---- main ---- */

static void print_row(const struct result *r)
{
    printf("%-11s %8ld %10.1f %10.1f %10.0f\n", r->name, r->calls, r->p50_us, r->p99_us,
           r->ops_per_s);
}

int main(int argc, char **argv)
{
    struct result local = {"in-process", 0, 0, 0, 0};
    struct result psm = {"psm", 0, 0, 0, 0};
    long calls = DEFAULT_CALLS;
    uint64_t *samples = NULL;
    X509 *cert = NULL;
    int psm_ok;
    int status = EXIT_FAILURE;

    if (argc > 5) {
        char *end;
        calls = strtol(argv[5], &end, 10);
        if (*end != '\0')
            calls = 0;
    }
    if (argc < 5 || argc > 6 || calls < 10) {
        fprintf(stderr, "usage: p11sign-bench MODULE TOKEN PIN CERT_DER [N >= 10]\n");
        goto cleanup;
    }
    samples = malloc((size_t)calls * sizeof samples[0]);
    if (samples == NULL) {
        perror("p11sign-bench: malloc");
        goto cleanup;
    }
    cert = read_cert(argv[4]);
    if (cert == NULL)
        goto cleanup;

    if (bench_inprocess(argv[1], argv[2], argv[3], cert, calls, samples, &local) != 0)
        goto cleanup;
    psm_ok = bench_psm(argv[2], argv[3], cert, calls, samples, &psm) == 0;

    printf("%-11s %8s %10s %10s %10s\n", "signer", "calls", "p50 us", "p99 us", "ops/s");
    print_row(&local);
    if (psm_ok)
        print_row(&psm);
    else
        printf("%-11s (failed: the reason is on stderr)\n", "psm");
    printf("\n");
    if (psm_ok) {
        /* Throughput is what the goal is about; the median ratio is shown
         * too, as one stall (a timer tick on a shared CPU) moves ops/s. */
        printf("psm/in-process %.2f by ops/s, %.2f by median latency (goal >= 0.70)\n",
               psm.ops_per_s / local.ops_per_s, local.p50_us / psm.p50_us);
        status = EXIT_SUCCESS;
    } else {
        printf("psm/in-process n/a: the psm half failed (goal >= 0.70)\n");
    }

cleanup:
    X509_free(cert);
    free(samples);
    return status;
}
