/* cert_objects_outlive_their_connection: certificates, lists and verify
 * results are snapshots that owe nothing to the connection or to each
 * other: freed in any order (the connection first, the list before a
 * certificate found separately, the verify result before the certificate
 * it judged), each stays fully readable until its own free. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <string.h>

/* Every getter of a live certificate answers, and says it is the server's. */
static void reads_as_server(const psm_cert *c)
{
    const uint8_t *der = NULL;
    size_t len = 0;

    CHECK_EQ(strcmp(psm_cert_nickname(c), "www.example.test"), 0);
    CHECK_EQ(strcmp(psm_cert_subject(c), "O=PSM Tests, CN=www.example.test"), 0);
    CHECK_EQ(strcmp(psm_cert_issuer(c), "O=PSM Tests, CN=PSM Test Root"), 0);
    CHECK_EQ(strcmp(psm_cert_serial_hex(c), "1001"), 0);
    CHECK_EQ(strlen(psm_cert_sha256_hex(c)), 64);
    CHECK(psm_cert_email(c) == NULL);
    CHECK_EQ(psm_cert_not_before(c), 1704067200LL);
    CHECK_EQ(psm_cert_not_after(c), 2524607999LL);
    CHECK_EQ(psm_cert_has_private_key(c), 0);
    CHECK_EQ(psm_cert_is_ca(c), 0);
    CHECK_EQ(psm_cert_is_builtin(c), 0);
    CHECK_OK(psm_cert_der(c, &der, &len));
    CHECK(len > 100 && der[0] == 0x30);
}

static void connection_freed_first(void)
{
    psm_conn *conn = NULL;
    psm_cert *server = NULL;
    psm_cert *root = NULL;
    psm_cert_list *list = NULL;
    psm_verify_result *v = NULL;
    const psm_cert *lent = NULL;
    const char *detail = NULL;

    CHECK_OK(psm_connect("cert_objects", PSM_CONNECT_NO_SPAWN, &conn));
    root = pki_import(conn, "root.pem", NULL, PSM_TRUST_CA_TLS_SERVER);
    server = pki_import(conn, "server.pem", NULL, 0);
    CHECK_OK(psm_cert_list_query(conn, 0, &list));
    CHECK_OK(psm_cert_verify(conn, server, PSM_USAGE_TLS_SERVER, "www.example.test", 0, &v));
    detail = psm_verify_result_detail(v);
    psm_conn_free(conn);

    reads_as_server(server);
    CHECK_EQ(psm_cert_trust(root), PSM_TRUST_CA_TLS_SERVER);
    CHECK_EQ(psm_cert_list_len(list), 2);
    lent = psm_cert_list_get(list, 1);
    reads_as_server(lent);
    CHECK_EQ(psm_verify_result_status(v), PSM_OK);
    CHECK(strstr(detail, "valid") != NULL);
    CHECK_EQ(psm_verify_result_chain_len(v), 2);
    reads_as_server(psm_verify_result_chain_get(v, 0));
    CHECK_EQ(psm_cert_is_ca(psm_verify_result_chain_get(v, 1)), 1);

    /* Frees in an order unrelated to the order of creation. */
    psm_cert_free(server);
    reads_as_server(lent);
    reads_as_server(psm_verify_result_chain_get(v, 0));
    psm_cert_list_free(list);
    reads_as_server(psm_verify_result_chain_get(v, 0));
    psm_cert_free(root);
    CHECK_EQ(psm_cert_is_ca(psm_verify_result_chain_get(v, 1)), 1);
    psm_verify_result_free(v);
}

static void list_and_results_freed_before_certificates(void)
{
    psm_conn *conn = NULL;
    psm_cert *found = NULL;
    psm_cert_list *list = NULL;
    psm_verify_result *v = NULL;
    psm_verify_result *w = NULL;

    CHECK_OK(psm_connect("cert_objects", PSM_CONNECT_NO_SPAWN, &conn));
    CHECK_OK(psm_cert_list_query(conn, PSM_CERTS_SERVERS, &list));
    found = cert_must_find(conn, "www.example.test");
    CHECK_OK(psm_cert_verify(conn, psm_cert_list_get(list, 0), PSM_USAGE_TLS_SERVER, NULL, 0, &v));
    CHECK_OK(psm_cert_verify(conn, found, PSM_USAGE_TLS_SERVER, NULL, 0, &w));
    psm_cert_list_free(list);
    reads_as_server(found);
    CHECK_EQ(psm_verify_result_status(v), PSM_OK); /* its certificate's list is gone */
    reads_as_server(psm_verify_result_chain_get(v, 0));
    psm_verify_result_free(v);
    psm_verify_result_free(w);
    reads_as_server(found);

    /* The connection goes; the certificate still works with a new one. */
    psm_conn_free(conn);
    conn = NULL;
    reads_as_server(found);
    CHECK_OK(psm_connect("cert_objects", PSM_CONNECT_NO_SPAWN, &conn));
    CHECK_EQ(expect_verdict(conn, found, PSM_USAGE_TLS_SERVER, "www.example.test", 0, PSM_OK, NULL),
             2);
    CHECK_OK(psm_cert_change_trust(conn, found, PSM_TRUST_PEER_TLS, 0));
    CHECK_EQ(current_trust(conn, found), PSM_TRUST_PEER_TLS);
    psm_conn_free(conn);
    reads_as_server(found);
    psm_cert_free(found);
}

int main(void)
{
    connection_freed_first();
    list_and_results_freed_before_certificates();
    return 0;
}
