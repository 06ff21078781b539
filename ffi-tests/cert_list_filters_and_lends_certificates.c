/* cert_list_filters_and_lends_certificates: psm_cert_list_query returns
 * the store's certificates sorted by nickname, all (filter 0) or those
 * matching any PSM_CERTS_* bit given; unknown bits are
 * PSM_ERR_INVALID_ARGUMENT. The certificates a list lends out stay valid,
 * with every getter, until the list is freed (even after the store
 * changes), work as arguments of other calls, and an index out of range
 * gives NULL. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <stdint.h>
#include <string.h>

/* The nicknames of a fresh list for `filter`, joined with ",". */
static void names(psm_conn *conn, uint32_t filter, char *out, size_t cap)
{
    psm_cert_list *list = NULL;
    size_t i;

    CHECK_OK(psm_cert_list_query(conn, filter, &list));
    out[0] = '\0';
    for (i = 0; i < psm_cert_list_len(list); i++) {
        const psm_cert *c = psm_cert_list_get(list, i);
        CHECK(c != NULL);
        CHECK(strlen(out) + strlen(psm_cert_nickname(c)) + 2 <= cap);
        if (i > 0)
            strcat(out, ",");
        strcat(out, psm_cert_nickname(c));
    }
    psm_cert_list_free(list);
}

#define CHECK_NAMES(conn, filter, expected)                                                        \
    do {                                                                                           \
        char got_[1024];                                                                           \
        names((conn), (filter), got_, sizeof got_);                                                \
        if (strcmp(got_, (expected)) != 0)                                                         \
            fprintf(stderr, "filter %#x: got \"%s\"\n", (unsigned)(filter), got_);                 \
        CHECK_EQ(strcmp(got_, (expected)), 0);                                                     \
    } while (0)

static void filters_select(psm_conn *conn)
{
    CHECK_NAMES(conn, 0, "");
    psm_cert_free(pki_import(conn, "root.pem", NULL, PSM_TRUST_CA_TLS_SERVER));
    psm_cert_free(pki_import(conn, "server.pem", NULL, 0));
    psm_cert_free(pki_import(conn, "alice.pem", NULL, 0));
    psm_cert_free(pki_import(conn, "other-root.pem", "another root", 0));

    CHECK_NAMES(conn, 0, "Alice Example,PSM Test Root,another root,www.example.test");
    CHECK_NAMES(conn, PSM_CERTS_CA, "PSM Test Root,another root");
    CHECK_NAMES(conn, PSM_CERTS_PEOPLE, "Alice Example");
    CHECK_NAMES(conn, PSM_CERTS_SERVERS, "www.example.test");
    CHECK_NAMES(conn, PSM_CERTS_PEOPLE | PSM_CERTS_SERVERS, "Alice Example,www.example.test");
    CHECK_NAMES(conn, PSM_CERTS_CA | PSM_CERTS_SERVERS,
                "PSM Test Root,another root,www.example.test");
    CHECK_NAMES(conn, PSM_CERTS_USER, ""); /* no private keys here */
    CHECK_NAMES(conn, PSM_CERTS_USER | PSM_CERTS_CA | PSM_CERTS_PEOPLE | PSM_CERTS_SERVERS,
                "Alice Example,PSM Test Root,another root,www.example.test");
}

static void unknown_filter_bits_are_refused(psm_conn *conn)
{
    psm_cert_list *list = NULL;

    CHECK_EQ(psm_cert_list_query(conn, 1u << 4, &list), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_cert_list_query(conn, 0xffffffffu, &list), PSM_ERR_INVALID_ARGUMENT);
    CHECK(list == NULL);
}

static void lent_certificates_live_as_long_as_the_list(psm_conn *conn)
{
    psm_cert_list *list = NULL;
    psm_cert_list *other = NULL;
    const psm_cert *first = NULL;
    const psm_cert *last = NULL;
    const char *nickname = NULL;
    const uint8_t *der = NULL;
    size_t der_len = 0;
    size_t n;
    size_t i;

    CHECK_OK(psm_cert_list_query(conn, 0, &list));
    n = psm_cert_list_len(list);
    CHECK_EQ(n, 4);
    first = psm_cert_list_get(list, 0);
    last = psm_cert_list_get(list, n - 1);
    CHECK(first != NULL && last != NULL && first != last);
    /* The same index lends the same certificate every time. */
    CHECK(psm_cert_list_get(list, 0) == first);

    /* Out of range: NULL, however far out. */
    CHECK(psm_cert_list_get(list, n) == NULL);
    CHECK(psm_cert_list_get(list, n + 1) == NULL);
    CHECK(psm_cert_list_get(list, SIZE_MAX) == NULL);

    /* Strings and DER borrowed from a lent certificate stay put while the
     * store changes under the list: it is a snapshot. */
    nickname = psm_cert_nickname(first);
    CHECK_EQ(strcmp(nickname, "Alice Example"), 0);
    CHECK_OK(psm_cert_der(first, &der, &der_len));
    CHECK(der_len > 0 && der[0] == 0x30);
    CHECK_OK(psm_cert_delete(conn, first)); /* a lent certificate as an argument */
    CHECK_OK(psm_cert_set_trust(conn, last, PSM_TRUST_PEER_TLS));
    CHECK_EQ(strcmp(nickname, "Alice Example"), 0);
    CHECK_EQ(strcmp(psm_cert_nickname(first), "Alice Example"), 0);
    CHECK_EQ(psm_cert_trust(last), 0);
    CHECK_EQ(psm_cert_list_len(list), n);

    /* A second list sees the change; the first still does not. */
    CHECK_OK(psm_cert_list_query(conn, 0, &other));
    CHECK_EQ(psm_cert_list_len(other), n - 1);
    CHECK_EQ(psm_cert_trust(psm_cert_list_get(other, n - 2)), PSM_TRUST_PEER_TLS);
    psm_cert_list_free(other);

    for (i = 0; i < n; i++) {
        const psm_cert *c = psm_cert_list_get(list, i);
        CHECK(psm_cert_subject(c)[0] != '\0');
        CHECK(psm_cert_issuer(c)[0] != '\0');
        CHECK_EQ(strlen(psm_cert_sha256_hex(c)), 64);
        CHECK(psm_cert_not_before(c) < psm_cert_not_after(c));
    }
    psm_cert_list_free(list);
}

int main(void)
{
    psm_conn *conn = NULL;

    CHECK_OK(psm_connect("cert_list", PSM_CONNECT_NO_SPAWN, &conn));
    filters_select(conn);
    unknown_filter_bits_are_refused(conn);
    lent_certificates_live_as_long_as_the_list(conn);
    psm_conn_free(conn);
    return 0;
}
