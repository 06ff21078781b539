/* cert_builtin_anchors_can_be_distrusted_not_deleted: with the system's CA
 * bundle (SSL_CERT_FILE / SSL_CERT_DIR as the machine has them) the store
 * holds built-in anchors: CAs trusted for TLS servers, flagged by
 * psm_cert_is_builtin. Deleting one is PSM_ERR_PERMISSION_DENIED, with or
 * without its key; distrusting one works, survives a restart of psmd and
 * can be undone. Importing one again changes nothing. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

/* psmd's shutdown after SIGTERM. */
#define STOP_WAIT_MS 10000

int main(void)
{
    psm_conn *conn = NULL;
    psm_cert_list *cas = NULL;
    psm_cert *anchor = NULL;
    psm_cert *again = NULL;
    const uint8_t *der = NULL;
    size_t der_len = 0;
    char query[80];
    size_t builtins = 0;
    size_t i;
    uint32_t trust;
    pid_t pid;

    CHECK_OK(psm_connect("cert_builtin", PSM_CONNECT_NO_SPAWN, &conn));
    CHECK_OK(psm_cert_list_query(conn, PSM_CERTS_CA, &cas));
    for (i = 0; i < psm_cert_list_len(cas); i++) {
        const psm_cert *c = psm_cert_list_get(cas, i);
        if (!psm_cert_is_builtin(c))
            continue;
        builtins++;
        CHECK_EQ(psm_cert_is_ca(c), 1);
        CHECK((psm_cert_trust(c) & PSM_TRUST_CA_TLS_SERVER) != 0);
        CHECK_EQ(psm_cert_trust(c) & PSM_TRUST_DISTRUSTED, 0);
        if (anchor == NULL) {
            snprintf(query, sizeof query, "sha256:%s", psm_cert_sha256_hex(c));
            anchor = cert_must_find(conn, query);
        }
    }
    fprintf(stderr, "%zu built-in anchors\n", builtins);
    CHECK(builtins > 0);
    CHECK(anchor != NULL);
    psm_cert_list_free(cas);
    CHECK_EQ(psm_cert_is_builtin(anchor), 1);
    trust = psm_cert_trust(anchor);

    /* Not deletable. */
    CHECK_EQ(psm_cert_delete(conn, anchor), PSM_ERR_PERMISSION_DENIED);
    CHECK(strstr(psm_last_error(), "distrust") != NULL); /* says what to do instead */
    CHECK_EQ(psm_cert_delete_with_key(conn, anchor), PSM_ERR_PERMISSION_DENIED);
    psm_cert_free(cert_must_find(conn, query));

    /* Importing it again: still built in, trust as it was. */
    CHECK_OK(psm_cert_der(anchor, &der, &der_len));
    CHECK_OK(psm_cert_import(conn, der, der_len, "my copy", 0, &again));
    CHECK_EQ(psm_cert_is_builtin(again), 1);
    CHECK_EQ(strcmp(psm_cert_nickname(again), psm_cert_nickname(anchor)), 0);
    CHECK_EQ(psm_cert_trust(again), trust);
    psm_cert_free(again);

    /* Distrusted: the anchor itself no longer verifies. */
    CHECK_OK(psm_cert_set_trust(conn, anchor, PSM_TRUST_DISTRUSTED));
    CHECK_EQ(current_trust(conn, anchor), PSM_TRUST_DISTRUSTED);
    expect_verdict(conn, anchor, PSM_USAGE_TLS_SERVER, NULL, 0, PSM_ERR_CERT_DISTRUSTED, NULL);
    psm_conn_free(conn);
    conn = NULL;

    /* A restarted psmd syncs the system's anchors again; the distrust stays. */
    pid = fixture_daemon_pid();
    CHECK_EQ(kill(pid, SIGTERM), 0);
    CHECK(wait_process_gone(pid, STOP_WAIT_MS));
    CHECK_OK(psm_connect("cert_builtin", 0, &conn)); /* starts psmd anew */
    again = cert_must_find(conn, query);
    CHECK_EQ(psm_cert_is_builtin(again), 1);
    CHECK_EQ(psm_cert_trust(again), PSM_TRUST_DISTRUSTED);
    psm_cert_free(again);

    /* And undone. */
    CHECK_OK(psm_cert_set_trust(conn, anchor, trust));
    CHECK_EQ(current_trust(conn, anchor), trust);
    CHECK_EQ(psm_cert_delete(conn, anchor), PSM_ERR_PERMISSION_DENIED);

    psm_cert_free(anchor);
    psm_conn_free(conn);
    return 0;
}
