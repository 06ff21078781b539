/* cert_verify_reports_why: psm_cert_verify returns PSM_OK whenever it
 * could judge the certificate, with the verdict as the result's status and
 * the reason in words: valid (the chain leaf first, anchor last), unknown
 * issuer, expired, not yet valid (checked `at` an earlier time), name
 * mismatch, wrong usage, distrusted leaf, revoked once the CA's CRL is
 * imported. A trusted peer is valid without a chain. CRLs: garbage is
 * PSM_ERR_DECODE, an older CRL than the one held is refused. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <stdlib.h>
#include <string.h>

/* 2023-06-01T00:00:00Z: before the leaves' notBefore (2024-01-01). */
#define BEFORE_LEAVES 1685577600LL
/* 2030-01-01T00:00:00Z: inside every current certificate's validity. */
#define IN_2030 1893456000LL

static void valid_chain(psm_conn *conn, psm_cert *server, psm_cert *root)
{
    psm_verify_result *v = NULL;
    const psm_cert *leaf;
    const psm_cert *anchor;

    CHECK_OK(psm_cert_verify(conn, server, PSM_USAGE_TLS_SERVER, "www.example.test", 0, &v));
    CHECK_EQ(psm_verify_result_status(v), PSM_OK);
    CHECK(strstr(psm_verify_result_detail(v), "valid") != NULL);
    CHECK_EQ(psm_verify_result_chain_len(v), 2);
    leaf = psm_verify_result_chain_get(v, 0);
    anchor = psm_verify_result_chain_get(v, 1);
    CHECK(leaf != NULL && anchor != NULL);
    CHECK(psm_verify_result_chain_get(v, 2) == NULL);
    CHECK(psm_verify_result_chain_get(v, SIZE_MAX) == NULL);
    /* The chain's certificates are the store's, with their nicknames and trust. */
    CHECK_EQ(strcmp(psm_cert_sha256_hex(leaf), psm_cert_sha256_hex(server)), 0);
    CHECK_EQ(strcmp(psm_cert_sha256_hex(anchor), psm_cert_sha256_hex(root)), 0);
    CHECK_EQ(strcmp(psm_cert_nickname(anchor), "PSM Test Root"), 0);
    CHECK_EQ(psm_cert_trust(anchor), PSM_TRUST_CA_TLS_SERVER | PSM_TRUST_CA_EMAIL);
    CHECK_EQ(psm_cert_is_ca(anchor), 1);
    /* A lent chain certificate works as an argument. */
    CHECK_EQ(expect_verdict(conn, leaf, PSM_USAGE_TLS_SERVER, NULL, IN_2030, PSM_OK, NULL), 2);
    psm_verify_result_free(v);

    /* No name: any name is fine. An IP address it does not have is not. */
    CHECK_EQ(expect_verdict(conn, server, PSM_USAGE_TLS_SERVER, NULL, 0, PSM_OK, NULL), 2);
    CHECK_EQ(expect_verdict(conn, server, PSM_USAGE_TLS_SERVER, "", 0, PSM_OK, NULL), 2);
    expect_verdict(conn, server, PSM_USAGE_TLS_SERVER, "192.0.2.1", 0, PSM_ERR_CERT_NAME_MISMATCH,
                   "192.0.2.1");
}

static void chain_through_an_intermediate(psm_conn *conn)
{
    psm_cert *deep = pki_import(conn, "deep.pem", NULL, 0);
    psm_cert *intermediate = NULL;
    psm_verify_result *v = NULL;

    /* The intermediate is not known yet: no path. */
    expect_verdict(conn, deep, PSM_USAGE_TLS_SERVER, "deep.example.test", 0,
                   PSM_ERR_CERT_UNKNOWN_ISSUER, "PSM Test Intermediate");
    /* Known, untrusted itself: the path goes through it to the root. */
    intermediate = pki_import(conn, "intermediate.pem", NULL, 0);
    CHECK_OK(psm_cert_verify(conn, deep, PSM_USAGE_TLS_SERVER, "deep.example.test", 0, &v));
    CHECK_EQ(psm_verify_result_status(v), PSM_OK);
    CHECK_EQ(psm_verify_result_chain_len(v), 3);
    CHECK_EQ(strcmp(psm_cert_nickname(psm_verify_result_chain_get(v, 0)), "deep.example.test"), 0);
    CHECK_EQ(strcmp(psm_cert_nickname(psm_verify_result_chain_get(v, 1)), "PSM Test Intermediate"),
             0);
    CHECK_EQ(strcmp(psm_cert_nickname(psm_verify_result_chain_get(v, 2)), "PSM Test Root"), 0);
    CHECK(psm_verify_result_chain_get(v, 3) == NULL);
    psm_verify_result_free(v);
    /* A CA certificate is not a TLS server. */
    expect_verdict(conn, intermediate, PSM_USAGE_TLS_SERVER, NULL, 0, PSM_ERR_CERT_WRONG_USAGE,
                   NULL);

    psm_cert_free(intermediate);
    psm_cert_free(deep);
}

static void failures_say_why(psm_conn *conn, psm_cert *server)
{
    psm_cert *expired = pki_import(conn, "expired.pem", NULL, 0);
    psm_cert *stranger = pki_import(conn, "stranger.pem", NULL, 0);
    psm_cert *alice = pki_import(conn, "alice.pem", NULL, 0);
    psm_cert *root = NULL;

    CHECK_EQ(expect_verdict(conn, expired, PSM_USAGE_TLS_SERVER, "old.example.test", 0,
                            PSM_ERR_CERT_EXPIRED, "expired"),
             1);
    /* ... but valid at a time inside its validity. */
    expect_verdict(conn, expired, PSM_USAGE_TLS_SERVER, "old.example.test", 1593561600LL, PSM_OK,
                   NULL);
    expect_verdict(conn, server, PSM_USAGE_TLS_SERVER, "www.example.test", BEFORE_LEAVES,
                   PSM_ERR_CERT_NOT_YET_VALID, "2024-01-01");
    expect_verdict(conn, server, PSM_USAGE_TLS_SERVER, "mail.example.test", 0,
                   PSM_ERR_CERT_NAME_MISMATCH, "mail.example.test");
    CHECK_EQ(expect_verdict(conn, stranger, PSM_USAGE_TLS_SERVER, "stranger.example.test", 0,
                            PSM_ERR_CERT_UNKNOWN_ISSUER, "PSM Other Root"),
             1);
    /* A server certificate for email, an email certificate for TLS. */
    expect_verdict(conn, server, PSM_USAGE_EMAIL_SIGNER, NULL, 0, PSM_ERR_CERT_WRONG_USAGE, NULL);
    expect_verdict(conn, alice, PSM_USAGE_TLS_SERVER, NULL, 0, PSM_ERR_CERT_WRONG_USAGE, NULL);
    expect_verdict(conn, server, PSM_USAGE_CODE_SIGNING, NULL, 0, PSM_ERR_CERT_WRONG_USAGE, NULL);

    /* Email: the address's domain in any case; someone else's address is a mismatch. */
    expect_verdict(conn, alice, PSM_USAGE_EMAIL_SIGNER, "alice@example.com", 0, PSM_OK, NULL);
    expect_verdict(conn, alice, PSM_USAGE_EMAIL_RECIPIENT, "alice@EXAMPLE.com", 0, PSM_OK, NULL);
    expect_verdict(conn, alice, PSM_USAGE_EMAIL_SIGNER, "bob@example.com", 0,
                   PSM_ERR_CERT_NAME_MISMATCH, NULL);

    /* Trust is per usage: a root trusted for TLS only does not vouch for email. */
    root = cert_must_find(conn, "PSM Test Root");
    CHECK_OK(psm_cert_change_trust(conn, root, 0, PSM_TRUST_CA_EMAIL));
    expect_verdict(conn, alice, PSM_USAGE_EMAIL_SIGNER, "alice@example.com", 0,
                   PSM_ERR_CERT_UNKNOWN_ISSUER, NULL);
    CHECK_OK(psm_cert_change_trust(conn, root, PSM_TRUST_CA_EMAIL, 0));
    expect_verdict(conn, alice, PSM_USAGE_EMAIL_SIGNER, "alice@example.com", 0, PSM_OK, NULL);
    psm_cert_free(root);

    /* An explicitly trusted peer needs no chain; distrust beats everything. */
    CHECK_OK(psm_cert_set_trust(conn, stranger, PSM_TRUST_PEER_TLS));
    CHECK_EQ(expect_verdict(conn, stranger, PSM_USAGE_TLS_SERVER, "stranger.example.test", 0,
                            PSM_OK, NULL),
             1);
    expect_verdict(conn, stranger, PSM_USAGE_TLS_SERVER, "www.example.test", 0,
                   PSM_ERR_CERT_NAME_MISMATCH, NULL);
    CHECK_OK(psm_cert_set_trust(conn, stranger, PSM_TRUST_PEER_TLS | PSM_TRUST_DISTRUSTED));
    expect_verdict(conn, stranger, PSM_USAGE_TLS_SERVER, "stranger.example.test", 0,
                   PSM_ERR_CERT_DISTRUSTED, "distrusted");
    CHECK_OK(psm_cert_set_trust(conn, server, PSM_TRUST_DISTRUSTED));
    expect_verdict(conn, server, PSM_USAGE_TLS_SERVER, "www.example.test", 0,
                   PSM_ERR_CERT_DISTRUSTED, NULL);
    CHECK_OK(psm_cert_set_trust(conn, server, 0));
    expect_verdict(conn, server, PSM_USAGE_TLS_SERVER, "www.example.test", 0, PSM_OK, NULL);

    psm_cert_free(alice);
    psm_cert_free(stranger);
    psm_cert_free(expired);
}

static void crl_revokes(psm_conn *conn)
{
    static const uint8_t garbage[] = "not a CRL";
    psm_cert *revoked = pki_import(conn, "revoked.pem", NULL, 0);
    psm_cert *server = cert_must_find(conn, "www.example.test");
    size_t len = 0;
    uint8_t *crl = NULL;

    expect_verdict(conn, revoked, PSM_USAGE_TLS_SERVER, "revoked.example.test", 0, PSM_OK, NULL);

    CHECK_EQ(psm_crl_import(conn, garbage, sizeof garbage - 1), PSM_ERR_DECODE);
    CHECK_EQ(psm_crl_import(conn, garbage, 0), PSM_ERR_DECODE);
    crl = pki_read("server.der", &len); /* a certificate is not a CRL */
    CHECK_EQ(psm_crl_import(conn, crl, len), PSM_ERR_DECODE);
    free(crl);

    crl = pki_read("crl.pem", &len);
    CHECK_OK(psm_crl_import(conn, crl, len));
    CHECK_OK(psm_crl_import(conn, crl, len)); /* the same one again: fine */
    free(crl);
    expect_verdict(conn, revoked, PSM_USAGE_TLS_SERVER, "revoked.example.test", 0,
                   PSM_ERR_CERT_REVOKED, "revoked");
    /* Its siblings are not on the list. */
    expect_verdict(conn, server, PSM_USAGE_TLS_SERVER, "www.example.test", 0, PSM_OK, NULL);

    /* The DER form of the same CRL is accepted; an older CRL is refused
     * (it would un-revoke), and the revocation stands. */
    crl = pki_read("crl.der", &len);
    CHECK_OK(psm_crl_import(conn, crl, len));
    free(crl);
    crl = pki_read("crl-old.der", &len);
    CHECK_EQ(psm_crl_import(conn, crl, len), PSM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(psm_last_error(), "newer") != NULL);
    free(crl);
    expect_verdict(conn, revoked, PSM_USAGE_TLS_SERVER, "revoked.example.test", 0,
                   PSM_ERR_CERT_REVOKED, NULL);

    psm_cert_free(server);
    psm_cert_free(revoked);
}

static void bad_arguments(psm_conn *conn, psm_cert *server)
{
    psm_verify_result *v = NULL;

    CHECK_EQ(psm_cert_verify(conn, server, 0, NULL, 0, &v), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_cert_verify(conn, server, 6, NULL, 0, &v), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_cert_verify(conn, server, PSM_USAGE_TLS_SERVER, NULL, -1, &v),
             PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_cert_verify(conn, server, PSM_USAGE_TLS_SERVER, "\xff\xfe", 0, &v),
             PSM_ERR_INVALID_ARGUMENT);
    CHECK(v == NULL);
}

int main(void)
{
    psm_conn *conn = NULL;
    psm_cert *root = NULL;
    psm_cert *server = NULL;

    CHECK_OK(psm_connect("cert_verify", PSM_CONNECT_NO_SPAWN, &conn));
    server = pki_import(conn, "server.pem", NULL, 0);
    /* Before its root is trusted: nobody vouches for it. */
    expect_verdict(conn, server, PSM_USAGE_TLS_SERVER, "www.example.test", 0,
                   PSM_ERR_CERT_UNKNOWN_ISSUER, NULL);
    root = pki_import(conn, "root.pem", NULL, PSM_TRUST_CA_TLS_SERVER | PSM_TRUST_CA_EMAIL);

    valid_chain(conn, server, root);
    chain_through_an_intermediate(conn);
    failures_say_why(conn, server);
    crl_revokes(conn);
    bad_arguments(conn, server);

    psm_cert_free(server);
    psm_cert_free(root);
    psm_conn_free(conn);
    return 0;
}
