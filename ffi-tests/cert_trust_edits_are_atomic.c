/* cert_trust_edits_are_atomic: psm_cert_set_trust replaces the trust bits
 * and psm_cert_change_trust sets and clears bits in one step, so two
 * applications (two threads on two connections here) toggling different
 * bits 200 times each both win. A psm_cert is a snapshot: a trust change
 * shows in a fresh find, not in the handle. Unknown bits and unknown
 * certificates are refused. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <pthread.h>
#include <string.h>

#define ROUNDS 200

struct editor {
    psm_cert *cert; /* this thread's own handle, from its own connection */
    psm_conn *conn;
    uint32_t bit;
};

/* Sets and clears its bit in turn, ending with it set. */
static void *edit(void *arg)
{
    struct editor *e = arg;
    int i;

    for (i = 0; i < ROUNDS; i++) {
        if (i % 2 == 0)
            CHECK_OK(psm_cert_change_trust(e->conn, e->cert, 0, e->bit));
        else
            CHECK_OK(psm_cert_change_trust(e->conn, e->cert, e->bit, 0));
    }
    return NULL;
}

static void two_editors_both_win(psm_cert *root)
{
    struct editor editors[2];
    pthread_t threads[2];
    psm_conn *check = NULL;
    char query[80];
    int i;

    snprintf(query, sizeof query, "sha256:%s", psm_cert_sha256_hex(root));
    editors[0].bit = PSM_TRUST_CA_TLS_SERVER;
    editors[1].bit = PSM_TRUST_CA_EMAIL;
    for (i = 0; i < 2; i++) {
        editors[i].conn = NULL;
        CHECK_OK(psm_connect("cert_trust_editor", PSM_CONNECT_NO_SPAWN, &editors[i].conn));
        editors[i].cert = cert_must_find(editors[i].conn, query);
    }
    for (i = 0; i < 2; i++)
        CHECK_EQ(pthread_create(&threads[i], NULL, edit, &editors[i]), 0);
    for (i = 0; i < 2; i++)
        CHECK_EQ(pthread_join(threads[i], NULL), 0);

    /* Both bits set, and the bit nobody touched still there. */
    CHECK_OK(psm_connect("cert_trust_check", PSM_CONNECT_NO_SPAWN, &check));
    CHECK_EQ(current_trust(check, root),
             PSM_TRUST_CA_TLS_SERVER | PSM_TRUST_CA_EMAIL | PSM_TRUST_CA_CODE);
    psm_conn_free(check);

    for (i = 0; i < 2; i++) {
        psm_cert_free(editors[i].cert);
        psm_conn_free(editors[i].conn);
    }
}

int main(void)
{
    psm_conn *conn = NULL;
    psm_cert *root = NULL;
    psm_cert *stranger = NULL;
    psm_cert *fresh = NULL;

    CHECK_OK(psm_connect("cert_trust", PSM_CONNECT_NO_SPAWN, &conn));
    root = pki_import(conn, "root.pem", NULL, 0);
    CHECK_EQ(psm_cert_trust(root), 0);

    /* set_trust replaces; the handle keeps what it had when fetched. */
    CHECK_OK(psm_cert_set_trust(conn, root, PSM_TRUST_CA_TLS_SERVER | PSM_TRUST_CA_TLS_CLIENT));
    CHECK_EQ(psm_cert_trust(root), 0);
    CHECK_EQ(current_trust(conn, root), PSM_TRUST_CA_TLS_SERVER | PSM_TRUST_CA_TLS_CLIENT);
    CHECK_OK(psm_cert_set_trust(conn, root, PSM_TRUST_CA_CODE));
    CHECK_EQ(current_trust(conn, root), PSM_TRUST_CA_CODE);
    fresh = cert_must_find(conn, "PSM Test Root");
    CHECK_EQ(psm_cert_trust(fresh), PSM_TRUST_CA_CODE);

    /* change_trust: set and clear in one step; clearing wins over setting. */
    CHECK_OK(psm_cert_change_trust(conn, fresh, PSM_TRUST_PEER_TLS | PSM_TRUST_PEER_EMAIL, 0));
    CHECK_EQ(current_trust(conn, root),
             PSM_TRUST_CA_CODE | PSM_TRUST_PEER_TLS | PSM_TRUST_PEER_EMAIL);
    CHECK_OK(psm_cert_change_trust(conn, fresh, PSM_TRUST_DISTRUSTED, PSM_TRUST_PEER_TLS));
    CHECK_EQ(current_trust(conn, root),
             PSM_TRUST_CA_CODE | PSM_TRUST_PEER_EMAIL | PSM_TRUST_DISTRUSTED);
    CHECK_OK(psm_cert_change_trust(conn, fresh, PSM_TRUST_PEER_TLS, PSM_TRUST_PEER_TLS));
    CHECK_EQ(current_trust(conn, root),
             PSM_TRUST_CA_CODE | PSM_TRUST_PEER_EMAIL | PSM_TRUST_DISTRUSTED);
    CHECK_OK(psm_cert_change_trust(conn, fresh, 0, 0));
    CHECK_OK(psm_cert_change_trust(conn, fresh, 0, PSM_TRUST_PEER_EMAIL | PSM_TRUST_DISTRUSTED));
    CHECK_EQ(current_trust(conn, root), PSM_TRUST_CA_CODE);
    CHECK_EQ(psm_cert_trust(fresh), PSM_TRUST_CA_CODE); /* by chance the same again */
    psm_cert_free(fresh);

    /* Unknown bits: refused, nothing changed. */
    CHECK_EQ(psm_cert_set_trust(conn, root, 1u << 7), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_cert_set_trust(conn, root, 0xffffffffu), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_cert_change_trust(conn, root, 1u << 7, 0), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_cert_change_trust(conn, root, 0, 1u << 31), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(current_trust(conn, root), PSM_TRUST_CA_CODE);

    /* A certificate that is not in the store. */
    stranger = pki_import(conn, "stranger.pem", NULL, 0);
    CHECK_OK(psm_cert_delete(conn, stranger));
    CHECK_EQ(psm_cert_set_trust(conn, stranger, PSM_TRUST_PEER_TLS), PSM_ERR_NOT_FOUND);
    CHECK_EQ(psm_cert_change_trust(conn, stranger, PSM_TRUST_PEER_TLS, 0), PSM_ERR_NOT_FOUND);
    psm_cert_free(stranger);

    two_editors_both_win(root);

    psm_cert_free(root);
    psm_conn_free(conn);
    return 0;
}
