/* key_null_arguments_are_rejected: every pointer argument of the token,
 * key, PKCS#12 and SDR functions is NULL-checked (PSM_ERR_NULL_PARAMETER, a
 * message naming NULL, outputs untouched, the connection and the token
 * unchanged), while NULL where the header gives it a meaning works as
 * documented: no nickname, no SANs, empty data, "ask for the password"
 * (which psm cannot do yet). Strings that are not UTF-8 are
 * PSM_ERR_INVALID_ARGUMENT. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <stdlib.h>
#include <string.h>

/* A recognisable non-NULL value an untouched output keeps. */
#define UNTOUCHED ((void *)&sentinel)

static int sentinel;

static const uint8_t data[] = "some data";
static const char *const sans[] = {"dns:www.example.test"};

static void token(psm_conn *conn)
{
    CHECK_NULL_REJECTED(psm_token_login(NULL, "pw"));
    CHECK_NULL_REJECTED(psm_token_login(NULL, NULL));
    CHECK_NULL_REJECTED(psm_token_logout(NULL));
    CHECK_NULL_REJECTED(psm_token_set_password(NULL, NULL, "pw"));
    CHECK_NULL_REJECTED(psm_token_set_password(NULL, "old", "new"));
    /* No password was set by any of that. */
    CHECK_OK(psm_token_login(conn, NULL));

    CHECK_EQ(psm_token_login(conn, "\xff"), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_token_set_password(conn, NULL, "\xff\xfe"), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_token_set_password(conn, "\xc3", "new"), PSM_ERR_INVALID_ARGUMENT);
    CHECK_OK(psm_token_login(conn, NULL)); /* still no password */
}

static void generate(psm_conn *conn)
{
    const char *null_san[] = {"dns:www.example.test", NULL};
    uint8_t *csr = UNTOUCHED;
    size_t len = 99;

    CHECK_NULL_REJECTED(psm_key_generate(NULL, PSM_KEY_EC_P256, "CN=x", NULL, &csr, &len));
    CHECK_NULL_REJECTED(psm_key_generate(conn, PSM_KEY_EC_P256, NULL, NULL, &csr, &len));
    CHECK_NULL_REJECTED(psm_key_generate(conn, PSM_KEY_EC_P256, "CN=x", NULL, NULL, &len));
    CHECK_NULL_REJECTED(psm_key_generate(conn, PSM_KEY_EC_P256, "CN=x", "nick", &csr, NULL));
    CHECK_NULL_REJECTED(
        psm_key_generate_with_sans(NULL, PSM_KEY_EC_P256, "CN=x", sans, 1, NULL, &csr, &len));
    CHECK_NULL_REJECTED(
        psm_key_generate_with_sans(conn, PSM_KEY_EC_P256, NULL, sans, 1, NULL, &csr, &len));
    CHECK_NULL_REJECTED(
        psm_key_generate_with_sans(conn, PSM_KEY_EC_P256, "CN=x", NULL, 1, NULL, &csr, &len));
    CHECK_NULL_REJECTED(
        psm_key_generate_with_sans(conn, PSM_KEY_EC_P256, "CN=x", null_san, 2, NULL, &csr, &len));
    CHECK_NULL_REJECTED(
        psm_key_generate_with_sans(conn, PSM_KEY_EC_P256, "CN=x", sans, 1, NULL, NULL, &len));
    CHECK_NULL_REJECTED(
        psm_key_generate_with_sans(conn, PSM_KEY_EC_P256, "CN=x", sans, 1, NULL, &csr, NULL));
    CHECK(csr == UNTOUCHED && len == 99);

    CHECK_EQ(psm_key_generate(conn, PSM_KEY_EC_P256, "CN=\xff", NULL, &csr, &len),
             PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_key_generate(conn, PSM_KEY_EC_P256, "CN=x", "\xff", &csr, &len),
             PSM_ERR_INVALID_ARGUMENT);
    CHECK(csr == UNTOUCHED && len == 99);

    /* NULL where NULL means something: no nickname; no SANs (with n_sans 0). */
    csr = NULL;
    CHECK_OK(psm_key_generate(conn, PSM_KEY_EC_P256, "CN=x", NULL, &csr, &len));
    psm_free(csr);
    csr = NULL;
    CHECK_OK(psm_key_generate_with_sans(conn, PSM_KEY_EC_P256, "CN=x", NULL, 0, NULL, &csr, &len));
    psm_free(csr);
}

static void sign(psm_conn *conn, const psm_cert *cert)
{
    uint8_t *sig = UNTOUCHED;
    size_t len = 99;
    const uint32_t alg = PSM_SIG_ECDSA_SHA256;

    CHECK_NULL_REJECTED(psm_key_sign(NULL, cert, alg, data, sizeof data, &sig, &len));
    CHECK_NULL_REJECTED(psm_key_sign(conn, NULL, alg, data, sizeof data, &sig, &len));
    CHECK_NULL_REJECTED(psm_key_sign(conn, cert, alg, NULL, sizeof data, &sig, &len));
    CHECK_NULL_REJECTED(psm_key_sign(conn, cert, alg, data, sizeof data, NULL, &len));
    CHECK_NULL_REJECTED(psm_key_sign(conn, cert, alg, data, sizeof data, &sig, NULL));
    CHECK(sig == UNTOUCHED && len == 99);

    /* NULL with length 0 is empty data, which can be signed. */
    sig = NULL;
    CHECK_OK(psm_key_sign(conn, cert, alg, NULL, 0, &sig, &len));
    CHECK(sig != NULL && len > 0);
    psm_free(sig);
}

static void pkcs12(psm_conn *conn, const psm_cert *cert)
{
    size_t p12_len = 0;
    uint8_t *p12 = pki_read("alice.p12", &p12_len);
    psm_cert *out = UNTOUCHED;
    uint8_t *exported = UNTOUCHED;
    size_t len = 99;

    CHECK_NULL_REJECTED(psm_pkcs12_import(NULL, p12, p12_len, "alice pw", &out));
    CHECK_NULL_REJECTED(psm_pkcs12_import(conn, NULL, p12_len, "alice pw", &out));
    CHECK_NULL_REJECTED(psm_pkcs12_import(conn, p12, p12_len, "alice pw", NULL));
    CHECK(out == UNTOUCHED);
    CHECK_EQ(psm_pkcs12_import(conn, p12, p12_len, "\xff", &out), PSM_ERR_INVALID_ARGUMENT);
    /* NULL as the password would ask the user. */
    CHECK_EQ(psm_pkcs12_import(conn, p12, p12_len, NULL, &out), PSM_ERR_NO_UI);
    CHECK(out == UNTOUCHED);

    CHECK_NULL_REJECTED(psm_pkcs12_export(NULL, cert, "pw", &exported, &len));
    CHECK_NULL_REJECTED(psm_pkcs12_export(conn, NULL, "pw", &exported, &len));
    CHECK_NULL_REJECTED(psm_pkcs12_export(conn, cert, "pw", NULL, &len));
    CHECK_NULL_REJECTED(psm_pkcs12_export(conn, cert, "pw", &exported, NULL));
    CHECK_EQ(psm_pkcs12_export(conn, cert, "\xff", &exported, &len), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_pkcs12_export(conn, cert, NULL, &exported, &len), PSM_ERR_NO_UI);
    CHECK(exported == UNTOUCHED && len == 99);

    /* None of that imported anything. */
    CHECK_EQ(psm_cert_find(conn, "Alice p12", &out), PSM_ERR_NOT_FOUND);
    free(p12);
}

static void sdr(psm_conn *conn)
{
    uint8_t *out = UNTOUCHED;
    size_t len = 99;
    uint8_t *blob = NULL;
    size_t blob_len = 0;

    CHECK_NULL_REJECTED(psm_sdr_encrypt(NULL, data, sizeof data, &out, &len));
    CHECK_NULL_REJECTED(psm_sdr_encrypt(conn, NULL, sizeof data, &out, &len));
    CHECK_NULL_REJECTED(psm_sdr_encrypt(conn, data, sizeof data, NULL, &len));
    CHECK_NULL_REJECTED(psm_sdr_encrypt(conn, data, sizeof data, &out, NULL));
    CHECK_NULL_REJECTED(psm_sdr_decrypt(NULL, data, sizeof data, &out, &len));
    CHECK_NULL_REJECTED(psm_sdr_decrypt(conn, NULL, sizeof data, &out, &len));
    CHECK_NULL_REJECTED(psm_sdr_decrypt(conn, data, sizeof data, NULL, &len));
    CHECK_NULL_REJECTED(psm_sdr_decrypt(conn, data, sizeof data, &out, NULL));
    CHECK(out == UNTOUCHED && len == 99);

    /* NULL with length 0: an empty secret seals and opens. */
    CHECK_OK(psm_sdr_encrypt(conn, NULL, 0, &blob, &blob_len));
    out = NULL;
    CHECK_OK(psm_sdr_decrypt(conn, blob, blob_len, &out, &len));
    CHECK_EQ(len, 0);
    psm_free(out);
    psm_free(blob);
}

int main(void)
{
    psm_conn *conn = NULL;
    psm_cert *cert = NULL;

    CHECK_OK(psm_connect("key_null_arguments", PSM_CONNECT_NO_SPAWN | PSM_CONNECT_NO_DIALOGS, &conn));
    cert = generate_and_issue(conn, PSM_KEY_EC_P256, "null-arguments", NULL);
    token(conn);
    generate(conn);
    sign(conn, cert);
    pkcs12(conn, cert);
    sdr(conn);
    CHECK_OK(psm_ping(conn)); /* none of that hurt the connection */
    psm_cert_free(cert);
    psm_conn_free(conn);
    return 0;
}
