/* cert_verify_distrusted_ca_is_distrusted: a certificate whose only path
 * goes through a distrusted CA, the root or an intermediate, is
 * PSM_ERR_CERT_DISTRUSTED (psm.h: PSM_TRUST_DISTRUSTED is "never trusted,
 * whatever else says so (also as part of a chain)"), not merely
 * PSM_ERR_CERT_UNKNOWN_ISSUER: the user should hear that they distrusted
 * it. Distrust also beats the CA bits still set beside it. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

int main(void)
{
    psm_conn *conn = NULL;
    psm_cert *root = NULL;
    psm_cert *intermediate = NULL;
    psm_cert *server = NULL;
    psm_cert *deep = NULL;

    CHECK_OK(psm_connect("cert_verify_distrusted_ca", PSM_CONNECT_NO_SPAWN, &conn));
    root = pki_import(conn, "root.pem", NULL, PSM_TRUST_CA_TLS_SERVER);
    intermediate = pki_import(conn, "intermediate.pem", NULL, 0);
    server = pki_import(conn, "server.pem", NULL, 0);
    deep = pki_import(conn, "deep.pem", NULL, 0);
    expect_verdict(conn, server, PSM_USAGE_TLS_SERVER, "www.example.test", 0, PSM_OK, NULL);
    expect_verdict(conn, deep, PSM_USAGE_TLS_SERVER, "deep.example.test", 0, PSM_OK, NULL);

    /* The intermediate: only the certificates below it are affected. */
    CHECK_OK(psm_cert_change_trust(conn, intermediate, PSM_TRUST_DISTRUSTED, 0));
    expect_verdict(conn, deep, PSM_USAGE_TLS_SERVER, "deep.example.test", 0,
                   PSM_ERR_CERT_DISTRUSTED, "PSM Test Intermediate");
    expect_verdict(conn, server, PSM_USAGE_TLS_SERVER, "www.example.test", 0, PSM_OK, NULL);
    CHECK_OK(psm_cert_set_trust(conn, intermediate, 0));

    /* The root, its CA bit still set beside the distrust. */
    CHECK_OK(psm_cert_change_trust(conn, root, PSM_TRUST_DISTRUSTED, 0));
    expect_verdict(conn, server, PSM_USAGE_TLS_SERVER, "www.example.test", 0,
                   PSM_ERR_CERT_DISTRUSTED, "PSM Test Root");
    expect_verdict(conn, deep, PSM_USAGE_TLS_SERVER, "deep.example.test", 0,
                   PSM_ERR_CERT_DISTRUSTED, "PSM Test Root");
    /* Distrust alone. */
    CHECK_OK(psm_cert_set_trust(conn, root, PSM_TRUST_DISTRUSTED));
    expect_verdict(conn, server, PSM_USAGE_TLS_SERVER, "www.example.test", 0,
                   PSM_ERR_CERT_DISTRUSTED, "PSM Test Root");

    /* Undone: valid again. */
    CHECK_OK(psm_cert_set_trust(conn, root, PSM_TRUST_CA_TLS_SERVER));
    expect_verdict(conn, server, PSM_USAGE_TLS_SERVER, "www.example.test", 0, PSM_OK, NULL);

    psm_cert_free(deep);
    psm_cert_free(server);
    psm_cert_free(intermediate);
    psm_cert_free(root);
    psm_conn_free(conn);
    return 0;
}
