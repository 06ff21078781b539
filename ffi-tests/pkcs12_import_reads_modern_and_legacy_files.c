/* pkcs12_import_reads_modern_and_legacy_files: psm_pkcs12_import reads
 * what `openssl pkcs12 -export` writes, by default (AES-256-CBC, PBKDF2),
 * with -legacy (RC2-40 and 3DES), all 3DES, and with an empty password:
 * the key lands in the token, the certificate comes back under the file's
 * friendly name with its private key, the CA certificates in the file are
 * stored too, and the key signs (openssl verifies against alice.pem).
 * Importing the same file again changes nothing. A wrong password is
 * PSM_ERR_BAD_PASSWORD, NULL PSM_ERR_NO_UI (no prompt yet), garbage or a
 * truncated file PSM_ERR_DECODE; each failure leaves the store unchanged
 * and *out untouched. A file without a key imports its certificates. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PASSWORD "alice pw"

/* A recognisable non-NULL value an untouched output keeps. */
#define UNTOUCHED ((psm_cert *)&sentinel)

static int sentinel;

static const uint8_t message[] = "signed with an imported key";

static size_t store_size(psm_conn *conn)
{
    psm_cert_list *list = NULL;
    size_t n;

    CHECK_OK(psm_cert_list_query(conn, 0, &list));
    n = psm_cert_list_len(list);
    psm_cert_list_free(list);
    return n;
}

/* Imports the PKI's `file`, which must hold alice's key and certificate and the root. */
static void imports_alice(psm_conn *conn, const char *file, const char *password)
{
    char alice_pem[4096];
    size_t len = 0;
    uint8_t *p12 = pki_read(file, &len);
    psm_cert *cert = NULL;
    psm_cert *again = NULL;
    psm_cert *root = NULL;
    psm_cert_list *mine = NULL;
    psm_result r;

    fprintf(stderr, "%s\n", file);
    r = psm_pkcs12_import(conn, p12, len, password, &cert);
    CHECK_OK(r);
    CHECK_EQ(strcmp(psm_cert_nickname(cert), "Alice p12"), 0);
    CHECK_EQ(strcmp(psm_cert_email(cert), "alice@example.com"), 0);
    CHECK_EQ(psm_cert_has_private_key(cert), 1);
    CHECK_EQ(store_size(conn), 2);
    root = cert_must_find(conn, "PSM Test Root");
    CHECK_EQ(psm_cert_has_private_key(root), 0);
    CHECK_EQ(psm_cert_trust(root), 0); /* a PKCS#12 file grants no trust */

    pki_path("alice.pem", alice_pem, sizeof alice_pem);
    sign_and_verify(conn, cert, alice_pem, PSM_SIG_ECDSA_SHA256, message, sizeof message);

    /* Again: the same certificate, nothing new. */
    CHECK_OK(psm_pkcs12_import(conn, p12, len, password, &again));
    CHECK_EQ(strcmp(psm_cert_sha256_hex(again), psm_cert_sha256_hex(cert)), 0);
    CHECK_EQ(strcmp(psm_cert_nickname(again), "Alice p12"), 0);
    CHECK_EQ(store_size(conn), 2);
    CHECK_OK(psm_cert_list_query(conn, PSM_CERTS_USER, &mine));
    CHECK_EQ(psm_cert_list_len(mine), 1);
    psm_cert_list_free(mine);

    /* Clean up for the next file, the key too. */
    CHECK_OK(psm_cert_delete_with_key(conn, cert));
    CHECK_OK(psm_cert_delete(conn, root));
    CHECK_EQ(store_size(conn), 0);
    psm_cert_free(root);
    psm_cert_free(again);
    psm_cert_free(cert);
    free(p12);
}

/* psm_pkcs12_import must fail with `expected`, leaving *out and the store alone. */
static void refused(psm_conn *conn, const uint8_t *p12, size_t len, const char *password,
                    psm_result expected)
{
    psm_cert *out = UNTOUCHED;
    size_t before = store_size(conn);

    CHECK_EQ(psm_pkcs12_import(conn, p12, len, password, &out), expected);
    CHECK(psm_last_error()[0] != '\0');
    CHECK(out == UNTOUCHED);
    CHECK_EQ(store_size(conn), before);
}

static void bad_input(psm_conn *conn)
{
    static const uint8_t garbage[] = "this is not a PKCS#12 file";
    size_t len = 0;
    uint8_t *p12 = pki_read("alice.p12", &len);
    size_t pem_len = 0;
    uint8_t *pem = pki_read("alice.pem", &pem_len);
    size_t legacy_len = 0;
    uint8_t *legacy = pki_read("alice-legacy.p12", &legacy_len);

    refused(conn, p12, len, "wrong", PSM_ERR_BAD_PASSWORD);
    CHECK(strstr(psm_last_error(), "password") != NULL);
    refused(conn, p12, len, "", PSM_ERR_BAD_PASSWORD);
    refused(conn, p12, len, "ALICE PW", PSM_ERR_BAD_PASSWORD);
    refused(conn, legacy, legacy_len, "wrong", PSM_ERR_BAD_PASSWORD);
    refused(conn, p12, len, NULL, PSM_ERR_NO_UI);

    refused(conn, garbage, sizeof garbage, PASSWORD, PSM_ERR_DECODE);
    refused(conn, garbage, 0, PASSWORD, PSM_ERR_DECODE);
    refused(conn, pem, pem_len, PASSWORD, PSM_ERR_DECODE); /* a certificate is not a .p12 */
    refused(conn, p12, len / 2, PASSWORD, PSM_ERR_DECODE);
    refused(conn, p12, len - 1, PASSWORD, PSM_ERR_DECODE);
    /* One bit flipped in the middle: the MAC does not match. It cannot tell
     * that from a wrong password, so either answer will do. */
    p12[len / 2] ^= 0x01;
    {
        psm_cert *out = UNTOUCHED;
        psm_result r = psm_pkcs12_import(conn, p12, len, PASSWORD, &out);
        CHECK(r == PSM_ERR_BAD_PASSWORD || r == PSM_ERR_DECODE);
        CHECK(out == UNTOUCHED);
    }
    CHECK_EQ(store_size(conn), 0);
    free(legacy);
    free(pem);
    free(p12);
}

/* alice-nokey.p12 holds certificates only. */
static void no_key(psm_conn *conn)
{
    size_t len = 0;
    uint8_t *p12 = pki_read("alice-nokey.p12", &len);
    psm_cert *cert = NULL;
    uint8_t *sig = NULL;
    size_t sig_len = 0;

    CHECK_OK(psm_pkcs12_import(conn, p12, len, PASSWORD, &cert));
    CHECK_EQ(psm_cert_has_private_key(cert), 0);
    CHECK(strstr(psm_cert_subject(cert), "Alice Example") != NULL);
    CHECK_EQ(
        psm_key_sign(conn, cert, PSM_SIG_ECDSA_SHA256, message, sizeof message, &sig, &sig_len),
        PSM_ERR_NOT_FOUND);
    psm_cert_free(cert);
    free(p12);
}

int main(void)
{
    psm_conn *conn = NULL;

    CHECK_OK(psm_connect("pkcs12_import", PSM_CONNECT_NO_SPAWN | PSM_CONNECT_NO_DIALOGS, &conn));
    bad_input(conn);
    imports_alice(conn, "alice.p12", PASSWORD);
    imports_alice(conn, "alice-legacy.p12", PASSWORD);
    imports_alice(conn, "alice-3des.p12", PASSWORD);
    imports_alice(conn, "alice-nopw.p12", "");
    no_key(conn);
    psm_conn_free(conn);
    return 0;
}
