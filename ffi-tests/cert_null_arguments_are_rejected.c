/* cert_null_arguments_are_rejected: every pointer argument of every
 * certificate function is NULL-checked (PSM_ERR_NULL_PARAMETER, a message
 * naming NULL, outputs untouched, the store unchanged); the getters and
 * free functions take NULL harmlessly. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NULLP PSM_ERR_NULL_PARAMETER

/* A recognisable non-NULL value an untouched output keeps. */
#define UNTOUCHED ((void *)&sentinel)

static int sentinel;

static void getters_and_frees_take_null(void)
{
    const uint8_t *der = UNTOUCHED;
    size_t len = 99;

    CHECK(psm_cert_nickname(NULL) == NULL);
    CHECK(psm_cert_subject(NULL) == NULL);
    CHECK(psm_cert_issuer(NULL) == NULL);
    CHECK(psm_cert_serial_hex(NULL) == NULL);
    CHECK(psm_cert_sha256_hex(NULL) == NULL);
    CHECK(psm_cert_email(NULL) == NULL);
    CHECK_EQ(psm_cert_not_before(NULL), 0);
    CHECK_EQ(psm_cert_not_after(NULL), 0);
    CHECK_EQ(psm_cert_has_private_key(NULL), 0);
    CHECK_EQ(psm_cert_trust(NULL), 0);
    CHECK_EQ(psm_cert_is_ca(NULL), 0);
    CHECK_EQ(psm_cert_is_builtin(NULL), 0);
    CHECK_NULL_REJECTED(psm_cert_der(NULL, &der, &len));
    CHECK(der == UNTOUCHED && len == 99);

    CHECK_EQ(psm_cert_list_len(NULL), 0);
    CHECK(psm_cert_list_get(NULL, 0) == NULL);
    CHECK(psm_cert_list_get(NULL, SIZE_MAX) == NULL);

    CHECK_EQ(psm_verify_result_status(NULL), NULLP);
    CHECK(psm_verify_result_detail(NULL) == NULL);
    CHECK_EQ(psm_verify_result_chain_len(NULL), 0);
    CHECK(psm_verify_result_chain_get(NULL, 0) == NULL);

    psm_cert_free(NULL);
    psm_cert_list_free(NULL);
    psm_verify_result_free(NULL);
}

static void calls_check_their_arguments(psm_conn *conn, psm_cert *cert)
{
    size_t pem_len = 0;
    uint8_t *pem = pki_read("alice.pem", &pem_len);
    size_t crl_len = 0;
    uint8_t *crl = pki_read("crl.der", &crl_len);
    psm_cert *out = UNTOUCHED;
    psm_cert_list *list = UNTOUCHED;
    psm_verify_result *v = UNTOUCHED;
    const uint8_t *der = UNTOUCHED;
    size_t len = 99;

    CHECK_NULL_REJECTED(psm_cert_import(NULL, pem, pem_len, NULL, 0, &out));
    CHECK_NULL_REJECTED(psm_cert_import(conn, NULL, pem_len, NULL, 0, &out));
    /* NULL with length 0 is an empty input, not a NULL argument. */
    CHECK_EQ(psm_cert_import(conn, NULL, 0, NULL, 0, &out), PSM_ERR_DECODE);
    CHECK_NULL_REJECTED(psm_cert_import(conn, pem, pem_len, NULL, 0, NULL));
    CHECK_NULL_REJECTED(psm_cert_import(conn, pem, pem_len, "nick", 0, NULL));
    CHECK(out == UNTOUCHED);

    CHECK_NULL_REJECTED(psm_cert_find(NULL, "PSM Test Root", &out));
    CHECK_NULL_REJECTED(psm_cert_find(conn, NULL, &out));
    CHECK_NULL_REJECTED(psm_cert_find(conn, "PSM Test Root", NULL));
    CHECK(out == UNTOUCHED);

    CHECK_NULL_REJECTED(psm_cert_list_query(NULL, 0, &list));
    CHECK_NULL_REJECTED(psm_cert_list_query(conn, 0, NULL));
    CHECK(list == UNTOUCHED);

    CHECK_NULL_REJECTED(psm_cert_der(cert, NULL, &len));
    CHECK_NULL_REJECTED(psm_cert_der(cert, &der, NULL));
    CHECK(der == UNTOUCHED && len == 99);

    CHECK_NULL_REJECTED(psm_cert_set_trust(NULL, cert, PSM_TRUST_CA_CODE));
    CHECK_NULL_REJECTED(psm_cert_set_trust(conn, NULL, PSM_TRUST_CA_CODE));
    CHECK_NULL_REJECTED(psm_cert_change_trust(NULL, cert, PSM_TRUST_CA_CODE, 0));
    CHECK_NULL_REJECTED(psm_cert_change_trust(conn, NULL, PSM_TRUST_CA_CODE, 0));
    CHECK_EQ(current_trust(conn, cert), PSM_TRUST_CA_TLS_SERVER);

    CHECK_NULL_REJECTED(psm_cert_delete(NULL, cert));
    CHECK_NULL_REJECTED(psm_cert_delete(conn, NULL));
    CHECK_NULL_REJECTED(psm_cert_delete_with_key(NULL, cert));
    CHECK_NULL_REJECTED(psm_cert_delete_with_key(conn, NULL));
    psm_cert_free(cert_must_find(conn, "PSM Test Root"));

    CHECK_NULL_REJECTED(psm_cert_verify(NULL, cert, PSM_USAGE_TLS_SERVER, NULL, 0, &v));
    CHECK_NULL_REJECTED(psm_cert_verify(conn, NULL, PSM_USAGE_TLS_SERVER, NULL, 0, &v));
    CHECK_NULL_REJECTED(psm_cert_verify(conn, cert, PSM_USAGE_TLS_SERVER, NULL, 0, NULL));
    CHECK_NULL_REJECTED(psm_cert_verify(conn, cert, PSM_USAGE_TLS_SERVER, "x", 0, NULL));
    CHECK(v == UNTOUCHED);

    CHECK_NULL_REJECTED(psm_crl_import(NULL, crl, crl_len));
    CHECK_NULL_REJECTED(psm_crl_import(conn, NULL, crl_len));
    CHECK_EQ(psm_crl_import(conn, NULL, 0), PSM_ERR_DECODE); /* empty, not NULL */

    /* NULL where NULL means something: no nickname, no name. */
    out = NULL;
    CHECK_OK(psm_cert_import(conn, pem, pem_len, NULL, 0, &out));
    CHECK_EQ(strcmp(psm_cert_nickname(out), "Alice Example"), 0);
    psm_cert_free(out);
    v = NULL;
    CHECK_OK(psm_cert_verify(conn, cert, PSM_USAGE_TLS_SERVER, NULL, 0, &v));
    psm_verify_result_free(v);

    CHECK_OK(psm_ping(conn)); /* none of that hurt the connection */
    free(crl);
    free(pem);
}

int main(void)
{
    psm_conn *conn = NULL;
    psm_cert *root = NULL;

    getters_and_frees_take_null();
    CHECK_OK(psm_connect("cert_null_arguments", PSM_CONNECT_NO_SPAWN, &conn));
    root = pki_import(conn, "root.pem", NULL, PSM_TRUST_CA_TLS_SERVER);
    calls_check_their_arguments(conn, root);
    psm_cert_free(root);
    psm_conn_free(conn);
    return 0;
}
