/* cert_delete_removes_from_store: psm_cert_delete and
 * psm_cert_delete_with_key take the certificate out of the store (no
 * lookup finds it, lists do not show it); deleting it again is
 * PSM_ERR_NOT_FOUND; the handle itself stays usable, and importing it
 * again brings it back. Deleting one certificate leaves the others. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <string.h>

static size_t store_size(psm_conn *conn)
{
    psm_cert_list *list = NULL;
    size_t n;

    CHECK_OK(psm_cert_list_query(conn, 0, &list));
    n = psm_cert_list_len(list);
    psm_cert_list_free(list);
    return n;
}

static void gone(psm_conn *conn, const char *query)
{
    psm_cert *cert = NULL;

    CHECK_EQ(psm_cert_find(conn, query, &cert), PSM_ERR_NOT_FOUND);
    CHECK(cert == NULL);
}

int main(void)
{
    psm_conn *conn = NULL;
    psm_cert *server = NULL;
    psm_cert *alice = NULL;
    psm_cert *root = NULL;
    psm_cert *back = NULL;
    const uint8_t *der = NULL;
    size_t der_len = 0;
    char query[80];

    CHECK_OK(psm_connect("cert_delete", PSM_CONNECT_NO_SPAWN, &conn));
    root = pki_import(conn, "root.pem", NULL, PSM_TRUST_CA_TLS_SERVER);
    server = pki_import(conn, "server.pem", NULL, 0);
    alice = pki_import(conn, "alice.pem", NULL, 0);
    CHECK_EQ(store_size(conn), 3);

    CHECK_OK(psm_cert_delete(conn, server));
    gone(conn, "www.example.test");
    snprintf(query, sizeof query, "sha256:%s", psm_cert_sha256_hex(server));
    gone(conn, query);
    CHECK_EQ(store_size(conn), 2);
    CHECK_EQ(psm_cert_delete(conn, server), PSM_ERR_NOT_FOUND);
    CHECK(strstr(psm_last_error(), psm_cert_sha256_hex(server)) != NULL);
    CHECK_EQ(psm_cert_delete_with_key(conn, server), PSM_ERR_NOT_FOUND);

    /* The handle is a snapshot: still readable, still verifiable. */
    CHECK_EQ(strcmp(psm_cert_nickname(server), "www.example.test"), 0);
    CHECK_OK(psm_cert_der(server, &der, &der_len));
    CHECK_EQ(
        expect_verdict(conn, server, PSM_USAGE_TLS_SERVER, "www.example.test", 0, PSM_OK, NULL), 2);

    /* Imported again: back, under its derived nickname, with no trust. */
    CHECK_OK(psm_cert_import(conn, der, der_len, NULL, 0, &back));
    CHECK_EQ(strcmp(psm_cert_nickname(back), "www.example.test"), 0);
    CHECK_EQ(strcmp(psm_cert_sha256_hex(back), psm_cert_sha256_hex(server)), 0);
    CHECK_EQ(store_size(conn), 3);
    psm_cert_free(back);

    /* With its key: a certificate without a key in psmd goes just the same. */
    CHECK_EQ(psm_cert_has_private_key(alice), 0);
    CHECK_OK(psm_cert_delete_with_key(conn, alice));
    gone(conn, "Alice Example");
    gone(conn, "alice@example.com");
    CHECK_EQ(psm_cert_delete_with_key(conn, alice), PSM_ERR_NOT_FOUND);
    CHECK_EQ(psm_cert_delete(conn, alice), PSM_ERR_NOT_FOUND);

    /* The others are untouched. */
    CHECK_EQ(store_size(conn), 2);
    CHECK_EQ(current_trust(conn, root), PSM_TRUST_CA_TLS_SERVER);
    CHECK_OK(psm_cert_delete(conn, root));
    gone(conn, "PSM Test Root");
    /* Without its root the server no longer verifies. */
    CHECK_EQ(expect_verdict(conn, server, PSM_USAGE_TLS_SERVER, "www.example.test", 0,
                            PSM_ERR_CERT_UNKNOWN_ISSUER, NULL),
             1);
    CHECK_EQ(store_size(conn), 1);

    psm_cert_free(alice);
    psm_cert_free(server);
    psm_cert_free(root);
    psm_conn_free(conn);
    return 0;
}
