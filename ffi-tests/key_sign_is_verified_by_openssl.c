/* key_sign_is_verified_by_openssl: psm_key_sign with every algorithm that
 * fits each key type (generated in psm or imported from PKCS#12) makes a
 * signature `openssl dgst -verify` / `openssl pkeyutl -verify` accepts for
 * the certificate's public key, and rejects for other data; empty and
 * large inputs work; PKCS#1 v1.5 and Ed25519 are deterministic. An
 * algorithm that does not fit the key, or is unknown, is
 * PSM_ERR_INVALID_ARGUMENT; input beyond what one request carries fails
 * cleanly; the signature output is untouched on failure. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Just under the 1 MiB a request may carry. */
#define LARGE (1000 * 1000)
/* Beyond it. */
#define TOO_LARGE (2 * 1024 * 1024)

/* A recognisable non-NULL value an untouched output keeps. */
#define UNTOUCHED ((uint8_t *)&sentinel)

static uint8_t sentinel;

enum kind { EC, ED25519, RSA };

struct key {
    const char *name; /* the certificate file: <fixture>/<name>.pem or the PKI's */
    enum kind kind;
    psm_cert *cert;
    char pem[4096];
};

static const uint32_t fits[][3] = {
    [EC] = {PSM_SIG_ECDSA_SHA256, PSM_SIG_ECDSA_SHA384, 0},
    [ED25519] = {PSM_SIG_ED25519, 0, 0},
    [RSA] = {PSM_SIG_RSA_PKCS1_SHA256, PSM_SIG_RSA_PSS_SHA256, 0},
};

static const uint32_t all_algs[] = {PSM_SIG_ECDSA_SHA256, PSM_SIG_ECDSA_SHA384, PSM_SIG_ED25519,
                                    PSM_SIG_RSA_PKCS1_SHA256, PSM_SIG_RSA_PSS_SHA256};

static int alg_fits(enum kind kind, uint32_t alg)
{
    size_t i;

    for (i = 0; fits[kind][i] != 0; i++)
        if (fits[kind][i] == alg)
            return 1;
    return 0;
}

static void generated(psm_conn *conn, struct key *k, uint32_t type)
{
    k->cert = generate_and_issue(conn, type, k->name, NULL);
    issued_pem_path(k->name, k->pem, sizeof k->pem);
}

/* The PKI's NAME.p12 (password "p12 pw"), whose certificate is NAME.pem. */
static void imported(psm_conn *conn, struct key *k)
{
    char file[128];
    size_t len = 0;
    uint8_t *p12;

    snprintf(file, sizeof file, "%s.p12", k->name);
    p12 = pki_read(file, &len);
    CHECK_OK(psm_pkcs12_import(conn, p12, len, "p12 pw", &k->cert));
    CHECK_EQ(psm_cert_has_private_key(k->cert), 1);
    free(p12);
    snprintf(file, sizeof file, "%s.pem", k->name);
    pki_path(file, k->pem, sizeof k->pem);
}

static uint8_t *sign(psm_conn *conn, const struct key *k, uint32_t alg, const uint8_t *data,
                     size_t len, size_t *sig_len)
{
    uint8_t *sig = NULL;

    CHECK_OK(psm_key_sign(conn, k->cert, alg, data, len, &sig, sig_len));
    CHECK(sig != NULL && *sig_len > 0);
    return sig;
}

static void signs_with_every_fitting_alg(psm_conn *conn, const struct key *k, const uint8_t *large)
{
    static const uint8_t binary[] = {0, 1, 2, 0, 0xff, 0x80, 0};
    static const uint8_t text[] = "The quick brown fox jumps over the lazy dog";
    size_t i;

    for (i = 0; fits[k->kind][i] != 0; i++) {
        uint32_t alg = fits[k->kind][i];
        uint8_t *sig;
        uint8_t *again;
        size_t sig_len = 0;
        size_t again_len = 0;

        fprintf(stderr, "%s, algorithm %u\n", k->name, (unsigned)alg);
        sign_and_verify(conn, k->cert, k->pem, alg, text, sizeof text - 1);
        sign_and_verify(conn, k->cert, k->pem, alg, binary, sizeof binary);
        if (alg != PSM_SIG_ED25519) {
            sign_and_verify(conn, k->cert, k->pem, alg, NULL, 0);
        } else {
            /* `openssl pkeyutl -rawin` (3.0) cannot read an empty message. */
            sig = sign(conn, k, alg, NULL, 0, &sig_len);
            CHECK_EQ(sig_len, 64);
            psm_free(sig);
        }
        sign_and_verify(conn, k->cert, k->pem, alg, large, LARGE);

        /* The check itself can fail: not for other data. */
        sig = sign(conn, k, alg, text, sizeof text - 1, &sig_len);
        CHECK(!openssl_verifies(k->pem, alg, text, sizeof text - 2, sig, sig_len));
        CHECK(!openssl_verifies(k->pem, alg, binary, sizeof binary, sig, sig_len));

        /* Deterministic schemes give the same signature twice. */
        again = sign(conn, k, alg, text, sizeof text - 1, &again_len);
        if (alg == PSM_SIG_ED25519 || alg == PSM_SIG_RSA_PKCS1_SHA256)
            CHECK(again_len == sig_len && memcmp(again, sig, sig_len) == 0);
        psm_free(again);
        psm_free(sig);
    }
}

static void refuses_unfitting_algs(psm_conn *conn, const struct key *k)
{
    static const uint32_t unknown[] = {0, PSM_SIG_RSA_PSS_SHA256 + 1, 0xffffffffu};
    static const uint8_t data[] = "data";
    uint8_t *sig = UNTOUCHED;
    size_t sig_len = 99;
    size_t i;

    for (i = 0; i < sizeof all_algs / sizeof all_algs[0]; i++) {
        if (alg_fits(k->kind, all_algs[i]))
            continue;
        CHECK_EQ(psm_key_sign(conn, k->cert, all_algs[i], data, sizeof data, &sig, &sig_len),
                 PSM_ERR_INVALID_ARGUMENT);
        CHECK(psm_last_error()[0] != '\0');
        CHECK(sig == UNTOUCHED && sig_len == 99);
    }
    for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        CHECK_EQ(psm_key_sign(conn, k->cert, unknown[i], data, sizeof data, &sig, &sig_len),
                 PSM_ERR_INVALID_ARGUMENT);
        CHECK(sig == UNTOUCHED && sig_len == 99);
    }
}

int main(void)
{
    psm_conn *conn = NULL;
    uint8_t *large = malloc(TOO_LARGE);
    uint8_t *sig = UNTOUCHED;
    size_t sig_len = 99;
    struct key keys[] = {
        {"gen-p256", EC, NULL, ""},         {"gen-p384", EC, NULL, ""},
        {"gen-ed25519", ED25519, NULL, ""}, {"gen-rsa2048", RSA, NULL, ""},
        {"gen-rsa3072", RSA, NULL, ""},     {"rsa", RSA, NULL, ""},
        {"ed25519", ED25519, NULL, ""},
    };
    size_t n = sizeof keys / sizeof keys[0];
    size_t i;

    CHECK(large != NULL);
    fill_pattern(large, TOO_LARGE, 0, 7);
    CHECK_OK(psm_connect("key_sign", PSM_CONNECT_NO_SPAWN, &conn));
    generated(conn, &keys[0], PSM_KEY_EC_P256);
    generated(conn, &keys[1], PSM_KEY_EC_P384);
    generated(conn, &keys[2], PSM_KEY_ED25519);
    generated(conn, &keys[3], PSM_KEY_RSA_2048);
    generated(conn, &keys[4], PSM_KEY_RSA_3072);
    imported(conn, &keys[5]);
    imported(conn, &keys[6]);

    for (i = 0; i < n; i++) {
        signs_with_every_fitting_alg(conn, &keys[i], large);
        refuses_unfitting_algs(conn, &keys[i]);
    }

    /* More than a request carries: an error, not a broken connection. */
    CHECK(psm_key_sign(conn, keys[0].cert, PSM_SIG_ECDSA_SHA256, large, TOO_LARGE, &sig,
                       &sig_len) != PSM_OK);
    CHECK(sig == UNTOUCHED && sig_len == 99);
    CHECK_OK(psm_ping(conn));
    sign_and_verify(conn, keys[0].cert, keys[0].pem, PSM_SIG_ECDSA_SHA256, large, LARGE);

    for (i = 0; i < n; i++)
        psm_cert_free(keys[i].cert);
    psm_conn_free(conn);
    free(large);
    return 0;
}
