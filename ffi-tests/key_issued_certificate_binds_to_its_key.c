/* key_issued_certificate_binds_to_its_key: importing the certificate a CA
 * issued for a psm_key_generate request binds it to the key
 * (psm_cert_has_private_key, PSM_CERTS_USER, signing works) under the
 * nickname given at generation (unless the import names it); two
 * certificates for one key (a renewal) share it, and
 * psm_cert_delete_with_key keeps a key another certificate still uses.
 * Certificates whose key psm does not hold cannot sign or be exported
 * (PSM_ERR_NOT_FOUND). */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <stdlib.h>
#include <string.h>

static const uint8_t message[] = "signed by a bound key";

static char pem_path[4096];

/* The PEM file issue_for_csr wrote for `name`. */
static const char *issued(const char *name)
{
    issued_pem_path(name, pem_path, sizeof pem_path);
    return pem_path;
}

static uint8_t *generate(psm_conn *conn, const char *subject, const char *nickname, size_t *len)
{
    uint8_t *csr = NULL;

    CHECK_OK(psm_key_generate(conn, PSM_KEY_EC_P256, subject, nickname, &csr, len));
    return csr;
}

static int is_mine(psm_conn *conn, const psm_cert *cert)
{
    psm_cert_list *mine = NULL;
    int found = 0;
    size_t i;

    CHECK_OK(psm_cert_list_query(conn, PSM_CERTS_USER, &mine));
    for (i = 0; i < psm_cert_list_len(mine); i++) {
        const psm_cert *c = psm_cert_list_get(mine, i);
        CHECK_EQ(psm_cert_has_private_key(c), 1);
        found |= strcmp(psm_cert_sha256_hex(c), psm_cert_sha256_hex(cert)) == 0;
    }
    psm_cert_list_free(mine);
    return found;
}

static void cannot_sign(psm_conn *conn, const psm_cert *cert)
{
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    uint8_t *p12 = NULL;
    size_t p12_len = 0;

    CHECK_EQ(
        psm_key_sign(conn, cert, PSM_SIG_ECDSA_SHA256, message, sizeof message, &sig, &sig_len),
        PSM_ERR_NOT_FOUND);
    CHECK(sig == NULL);
    CHECK_EQ(psm_pkcs12_export(conn, cert, "pw", &p12, &p12_len), PSM_ERR_NOT_FOUND);
    CHECK(p12 == NULL);
}

static void nicknames(psm_conn *conn)
{
    uint8_t *csr = NULL;
    size_t len = 0;
    psm_cert *cert = NULL;
    psm_cert *found = NULL;

    /* Before its certificate comes, a key is nothing psm_cert_find finds. */
    csr = generate(conn, "CN=Bound,O=PSM Tests", "My Signing Key", &len);
    CHECK_EQ(psm_cert_find(conn, "My Signing Key", &found), PSM_ERR_NOT_FOUND);
    cert = issue_for_csr(conn, csr, len, "bound");
    psm_free(csr);
    CHECK_EQ(strcmp(psm_cert_nickname(cert), "My Signing Key"), 0);
    CHECK_EQ(psm_cert_has_private_key(cert), 1);
    CHECK(is_mine(conn, cert));
    found = cert_must_find(conn, "My Signing Key");
    CHECK_EQ(psm_cert_has_private_key(found), 1);
    CHECK_EQ(strcmp(psm_cert_sha256_hex(found), psm_cert_sha256_hex(cert)), 0);
    sign_and_verify(conn, found, issued("bound"), PSM_SIG_ECDSA_SHA256, message, sizeof message);
    psm_cert_free(found);
    psm_cert_free(cert);

    /* No nickname at generation: derived from the subject, as for any import. */
    cert = generate_and_issue(conn, PSM_KEY_EC_P256, "unnamed-key", NULL);
    CHECK_EQ(strcmp(psm_cert_nickname(cert), "unnamed-key"), 0);
    CHECK(is_mine(conn, cert));
    psm_cert_free(cert);

    /* Two keys asked for the same nickname: the second certificate gets another. */
    cert = generate_and_issue(conn, PSM_KEY_EC_P256, "twin-1", "Twin");
    found = generate_and_issue(conn, PSM_KEY_EC_P256, "twin-2", "Twin");
    CHECK_EQ(strcmp(psm_cert_nickname(cert), "Twin"), 0);
    CHECK(strcmp(psm_cert_nickname(found), "Twin") != 0);
    CHECK(strncmp(psm_cert_nickname(found), "Twin", 4) == 0);
    CHECK_EQ(psm_cert_has_private_key(found), 1);
    psm_cert_free(found);
    psm_cert_free(cert);
}

/* A nickname given at import wins over the key's. */
static void explicit_nickname(psm_conn *conn)
{
    uint8_t *csr = NULL;
    size_t csr_len = 0;
    uint8_t *pem = NULL;
    size_t pem_len = 0;
    psm_cert *cert = NULL;
    psm_cert *renamed = NULL;

    csr = generate(conn, "CN=Renamed,O=PSM Tests", "from the key", &csr_len);
    cert = issue_for_csr(conn, csr, csr_len, "renamed");
    psm_free(csr);
    CHECK_OK(psm_cert_delete(conn, cert));
    pem = file_read(issued("renamed"), &pem_len);
    CHECK_OK(psm_cert_import(conn, pem, pem_len, "from the import", 0, &renamed));
    CHECK_EQ(strcmp(psm_cert_nickname(renamed), "from the import"), 0);
    CHECK_EQ(psm_cert_has_private_key(renamed), 1);
    free(pem);
    psm_cert_free(renamed);
    psm_cert_free(cert);
}

/* A second certificate for the same request (a renewal) uses the same key. */
static void renewal(psm_conn *conn)
{
    uint8_t *csr = NULL;
    size_t csr_len = 0;
    uint8_t *pem = NULL;
    size_t pem_len = 0;
    psm_cert *first = NULL;
    psm_cert *second = NULL;
    psm_cert *back = NULL;

    csr = generate(conn, "CN=Renewed,O=PSM Tests", "Renewed", &csr_len);
    first = issue_for_csr(conn, csr, csr_len, "renewed-1");
    second = issue_for_csr(conn, csr, csr_len, "renewed-2");
    psm_free(csr);
    CHECK(strcmp(psm_cert_sha256_hex(first), psm_cert_sha256_hex(second)) != 0);
    CHECK_EQ(psm_cert_has_private_key(second), 1);
    sign_and_verify(conn, first, issued("renewed-1"), PSM_SIG_ECDSA_SHA256, message,
                    sizeof message);
    sign_and_verify(conn, second, issued("renewed-2"), PSM_SIG_ECDSA_SHA256, message,
                    sizeof message);

    /* The key stays while the renewal still needs it. */
    CHECK_OK(psm_cert_delete_with_key(conn, first));
    cannot_sign(conn, first);
    sign_and_verify(conn, second, issued("renewed-2"), PSM_SIG_ECDSA_SHA256, message,
                    sizeof message);

    /* psm_cert_delete keeps the key: importing the certificate again binds it again. */
    CHECK_OK(psm_cert_delete(conn, second));
    cannot_sign(conn, second);
    pem = file_read(issued("renewed-2"), &pem_len);
    CHECK_OK(psm_cert_import(conn, pem, pem_len, NULL, 0, &back));
    CHECK_EQ(psm_cert_has_private_key(back), 1);
    sign_and_verify(conn, back, issued("renewed-2"), PSM_SIG_ECDSA_SHA256, message, sizeof message);
    psm_cert_free(back);
    back = NULL;

    /* psm_cert_delete_with_key of the last one: the key is gone for good. */
    CHECK_OK(psm_cert_delete_with_key(conn, second));
    CHECK_OK(psm_cert_import(conn, pem, pem_len, NULL, 0, &back));
    CHECK_EQ(psm_cert_has_private_key(back), 0);
    CHECK(!is_mine(conn, back));
    cannot_sign(conn, back);
    free(pem);
    psm_cert_free(back);
    psm_cert_free(second);
    psm_cert_free(first);
}

int main(void)
{
    psm_conn *conn = NULL;
    psm_cert *server = NULL;

    CHECK_OK(psm_connect("key_binds", PSM_CONNECT_NO_SPAWN, &conn));
    nicknames(conn);
    explicit_nickname(conn);
    renewal(conn);

    /* Someone else's certificate: psm has no key for it. */
    server = pki_import(conn, "server.pem", NULL, 0);
    CHECK_EQ(psm_cert_has_private_key(server), 0);
    CHECK(!is_mine(conn, server));
    cannot_sign(conn, server);
    psm_cert_free(server);
    psm_conn_free(conn);
    return 0;
}
