/* token_pkcs11_list_login_find_and_sign: with a policy naming SoftHSM and
 * a token made for the test (make-softhsm-token.sh), the C API lists psm's
 * soft token first and then the SoftHSM token with its label, maker,
 * model, serial, module, flags and URI; a wrong PIN is
 * PSM_ERR_BAD_PASSWORD and the right one logs the token in (the flags say
 * so); the token's certificate is found by its PKCS#11 URI, marked with
 * its token and key; psm_key_sign signs with the key on the token (OpenSSL
 * verifies against the certificate); after psm_token_logout_from the same
 * signature is PSM_ERR_LOGIN_REQUIRED on a connection psm may not ask
 * through. NULL arguments are refused. psmd is started by libpsm for this
 * test, with SOFTHSM2_CONF and PSM_POLICY in its environment. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const psm_token *find_label(const psm_tokens *l, const char *label)
{
    size_t i;

    for (i = 0; i < psm_tokens_len(l); i++)
        if (strcmp(psm_token_label(psm_tokens_get(l, i)), label) == 0)
            return psm_tokens_get(l, i);
    return NULL;
}

static uint32_t flags_now(psm_conn *conn, const char *label)
{
    psm_tokens *l = NULL;
    uint32_t flags;

    CHECK_OK(psm_token_list(conn, &l));
    CHECK(find_label(l, label) != NULL);
    flags = psm_token_flags(find_label(l, label));
    psm_tokens_free(l);
    return flags;
}

int main(void)
{
    char dir[4096], path[4200];
    psm_conn *conn = NULL;
    psm_tokens *tokens = NULL;
    const psm_token *soft, *t;
    psm_cert *cert = NULL;
    uint8_t *sig = (uint8_t *)"untouched";
    size_t sig_len = 0;
    static const uint8_t msg[] = "signed on a token";

    pki_make("PSM_SOFTHSM_TOKEN", "softhsm", dir, sizeof dir);
    CHECK((size_t)snprintf(path, sizeof path, "%s/softhsm2.conf", dir) < sizeof path);
    CHECK(setenv("SOFTHSM2_CONF", path, 1) == 0);
    CHECK((size_t)snprintf(path, sizeof path, "%s/etc/policy.toml", dir) < sizeof path);
    CHECK(setenv("PSM_POLICY", path, 1) == 0);
    CHECK_OK(psm_connect("token_pkcs11_list_login_find_and_sign", PSM_CONNECT_NO_DIALOGS, &conn));

    CHECK_OK(psm_token_list(conn, &tokens));
    CHECK(psm_tokens_len(tokens) >= 2);
    soft = psm_tokens_get(tokens, 0);
    CHECK((psm_token_flags(soft) & PSM_TOKEN_SOFT) != 0);
    CHECK(psm_token_module(soft) == NULL);
    t = find_label(tokens, "psm-c");
    CHECK(t != NULL);
    CHECK_EQ(strcmp(psm_token_manufacturer(t), "SoftHSM project"), 0);
    CHECK_EQ(strcmp(psm_token_model(t), "SoftHSM v2"), 0);
    CHECK(strlen(psm_token_serial(t)) > 0);
    CHECK(psm_token_module(t) != NULL && strstr(psm_token_module(t), "softhsm2") != NULL);
    CHECK((psm_token_flags(t) & (PSM_TOKEN_INITIALIZED | PSM_TOKEN_LOGIN_REQUIRED)) ==
          (PSM_TOKEN_INITIALIZED | PSM_TOKEN_LOGIN_REQUIRED));
    CHECK((psm_token_flags(t) & (PSM_TOKEN_LOGGED_IN | PSM_TOKEN_SOFT)) == 0);
    CHECK(strncmp(psm_token_uri(t), "pkcs11:", 7) == 0 && strstr(psm_token_uri(t), "token=psm-c") != NULL);
    CHECK(psm_tokens_get(tokens, psm_tokens_len(tokens)) == NULL);

    /* Wrong PIN, then the right one; the PIN is in no error. */
    CHECK_EQ(psm_token_login_to(conn, t, "0000"), PSM_ERR_BAD_PASSWORD);
    CHECK(strstr(psm_last_error(), "0000") == NULL);
    CHECK_OK(psm_token_login_to(conn, t, "1234"));
    CHECK((flags_now(conn, "psm-c") & PSM_TOKEN_LOGGED_IN) != 0);

    /* The token's certificate by URI, marked with its token. */
    CHECK_OK(psm_cert_find(conn, "pkcs11:token=psm-c;object=c-cert;type=cert", &cert));
    CHECK_EQ(strcmp(psm_cert_token(cert), "psm-c"), 0);
    CHECK(psm_cert_uri(cert) != NULL && strstr(psm_cert_uri(cert), "object=c-cert") != NULL);
    CHECK(psm_cert_has_private_key(cert));
    CHECK_EQ(strcmp(psm_cert_subject(cert), "CN=C Token User"), 0);

    CHECK((size_t)snprintf(path, sizeof path, "%s/cert.pem", dir) < sizeof path);
    sign_and_verify(conn, cert, path, PSM_SIG_ECDSA_SHA256, msg, sizeof msg - 1);
    sign_and_verify(conn, cert, path, PSM_SIG_ECDSA_SHA256, msg, 0);

    /* Logged out: the key needs the PIN again, and nobody may be asked. */
    CHECK_OK(psm_token_logout_from(conn, t));
    CHECK((flags_now(conn, "psm-c") & PSM_TOKEN_LOGGED_IN) == 0);
    CHECK_EQ(psm_key_sign(conn, cert, PSM_SIG_ECDSA_SHA256, msg, sizeof msg - 1, &sig, &sig_len),
             PSM_ERR_LOGIN_REQUIRED);
    CHECK(strstr(psm_last_error(), "psm-c") != NULL);
    CHECK_EQ(strcmp((const char *)sig, "untouched"), 0);

    /* NULL arguments. */
    CHECK_NULL_REJECTED(psm_token_list(NULL, &tokens));
    CHECK_NULL_REJECTED(psm_token_list(conn, NULL));
    CHECK_NULL_REJECTED(psm_token_login_to(conn, NULL, "1234"));
    CHECK_NULL_REJECTED(psm_token_logout_from(NULL, t));
    CHECK(psm_tokens_len(NULL) == 0);
    CHECK(psm_tokens_get(NULL, 0) == NULL);
    CHECK(psm_token_label(NULL) == NULL && psm_token_uri(NULL) == NULL);
    CHECK(psm_token_flags(NULL) == 0 && psm_token_slot(NULL) == 0);
    CHECK(psm_cert_token(NULL) == NULL && psm_cert_uri(NULL) == NULL);
    psm_tokens_free(NULL);

    psm_cert_free(cert);
    psm_tokens_free(tokens);
    psm_conn_free(conn);
    return 0;
}
