/* cert_import_accepts_pem_der_p7b_and_rejects_garbage: psm_cert_import
 * takes PEM (one or several certificates), DER and PKCS#7 certs-only (DER
 * and PEM) and returns the first certificate with the nickname and trust it
 * was given; every certificate of the input is stored, all or none.
 * Garbage, truncated input and a PKCS#7 without certificates are
 * PSM_ERR_DECODE; a nickname that names another certificate is
 * PSM_ERR_EXISTS; derived nicknames never clash ("CN #2"); importing a
 * certificate again changes nothing but a non-zero trust. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <stdlib.h>
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

static void empty_the_store(psm_conn *conn)
{
    psm_cert_list *list = NULL;
    size_t i;

    CHECK_OK(psm_cert_list_query(conn, 0, &list));
    for (i = 0; i < psm_cert_list_len(list); i++)
        CHECK_OK(psm_cert_delete(conn, psm_cert_list_get(list, i)));
    psm_cert_list_free(list);
    CHECK_EQ(store_size(conn), 0);
}

/* The import must fail with `expected` and leave the store as it was. */
static void import_fails(psm_conn *conn, const uint8_t *data, size_t len, const char *nickname,
                         psm_result expected)
{
    psm_cert *cert = NULL;
    size_t before = store_size(conn);

    CHECK_EQ(psm_cert_import(conn, data, len, nickname, 0, &cert), expected);
    CHECK(cert == NULL);
    CHECK(psm_last_error()[0] != '\0');
    CHECK_EQ(store_size(conn), before);
}

static void each_format_is_accepted(psm_conn *conn)
{
    psm_cert *root = pki_import(conn, "root.der", "my root", PSM_TRUST_CA_TLS_SERVER);
    psm_cert *server = NULL;
    psm_cert *from_p7b = NULL;
    psm_cert *found = NULL;
    char *server_sha = NULL;

    CHECK_EQ(strcmp(psm_cert_nickname(root), "my root"), 0);
    CHECK_EQ(psm_cert_trust(root), PSM_TRUST_CA_TLS_SERVER);
    CHECK_EQ(psm_cert_is_ca(root), 1);
    CHECK_EQ(store_size(conn), 1);

    /* Two certificates in one PEM file: the first comes back, both are stored. */
    server = pki_import(conn, "chain.pem", NULL, PSM_TRUST_PEER_TLS);
    CHECK_EQ(strcmp(psm_cert_nickname(server), "www.example.test"), 0);
    CHECK_EQ(psm_cert_trust(server), PSM_TRUST_PEER_TLS);
    CHECK_EQ(psm_cert_is_ca(server), 0);
    CHECK_EQ(store_size(conn), 2);
    /* The root was already there: its nickname and trust stay. */
    found = cert_must_find(conn, "my root");
    CHECK_EQ(strcmp(psm_cert_sha256_hex(found), psm_cert_sha256_hex(root)), 0);
    CHECK_EQ(psm_cert_trust(found), PSM_TRUST_CA_TLS_SERVER);
    psm_cert_free(found);
    server_sha = malloc(strlen(psm_cert_sha256_hex(server)) + 1);
    CHECK(server_sha != NULL);
    strcpy(server_sha, psm_cert_sha256_hex(server));
    psm_cert_free(server);

    /* PKCS#7 certs-only, DER and PEM, holding the same two: nothing new. */
    from_p7b = pki_import(conn, "chain.p7b", NULL, 0);
    CHECK_EQ(strcmp(psm_cert_sha256_hex(from_p7b), server_sha), 0);
    CHECK_EQ(strcmp(psm_cert_nickname(from_p7b), "www.example.test"), 0);
    CHECK_EQ(psm_cert_trust(from_p7b), PSM_TRUST_PEER_TLS); /* trust 0 changes nothing */
    psm_cert_free(from_p7b);
    from_p7b = pki_import(conn, "chain-pem.p7b", NULL, 0);
    CHECK_EQ(strcmp(psm_cert_sha256_hex(from_p7b), server_sha), 0);
    psm_cert_free(from_p7b);
    CHECK_EQ(store_size(conn), 2);

    free(server_sha);
    psm_cert_free(root);
}

static void p7b_brings_in_every_certificate(psm_conn *conn)
{
    psm_cert *server = NULL;
    psm_cert *root = NULL;

    server = pki_import(conn, "chain.p7b", NULL, 0);
    CHECK_EQ(strcmp(psm_cert_nickname(server), "www.example.test"), 0);
    CHECK_EQ(store_size(conn), 2);
    root = cert_must_find(conn, "PSM Test Root"); /* nickname derived from the CN */
    CHECK_EQ(psm_cert_is_ca(root), 1);
    CHECK_EQ(psm_cert_trust(root), 0); /* trust applies to the first one only */
    psm_cert_free(root);
    psm_cert_free(server);
}

static void importing_again_is_idempotent(psm_conn *conn)
{
    psm_cert *first = pki_import(conn, "alice.pem", NULL, 0);
    psm_cert *again = NULL;
    size_t n = store_size(conn);

    /* Same certificate, other nickname: not an error, nothing renamed. */
    again = pki_import(conn, "alice.pem", "Alice again", 0);
    CHECK_EQ(strcmp(psm_cert_sha256_hex(again), psm_cert_sha256_hex(first)), 0);
    CHECK_EQ(strcmp(psm_cert_nickname(again), "Alice Example"), 0);
    CHECK_EQ(store_size(conn), n);
    psm_cert_free(again);

    /* Non-zero trust on a re-import is applied. */
    again = pki_import(conn, "alice.pem", NULL, PSM_TRUST_PEER_EMAIL);
    CHECK_EQ(psm_cert_trust(again), PSM_TRUST_PEER_EMAIL);
    CHECK_EQ(current_trust(conn, first), PSM_TRUST_PEER_EMAIL);
    CHECK_EQ(store_size(conn), n);
    psm_cert_free(again);
    psm_cert_free(first);
}

static void nicknames_are_unique(psm_conn *conn)
{
    psm_cert *a = pki_import(conn, "same-1.pem", NULL, 0);
    psm_cert *b = pki_import(conn, "same-2.pem", NULL, 0);
    size_t len = 0;
    uint8_t *data = NULL;

    CHECK_EQ(strcmp(psm_cert_nickname(a), "Same Name"), 0);
    CHECK_EQ(strcmp(psm_cert_nickname(b), "Same Name #2"), 0);

    /* An explicit nickname that another certificate has is refused. */
    data = pki_read("high-serial.pem", &len);
    import_fails(conn, data, len, "Same Name", PSM_ERR_EXISTS);
    CHECK(strstr(psm_last_error(), "Same Name") != NULL);
    import_fails(conn, data, len, "", PSM_ERR_INVALID_ARGUMENT);
    import_fails(conn, data, len, "with@sign", PSM_ERR_INVALID_ARGUMENT);
    import_fails(conn, data, len, "sha256:abc", PSM_ERR_INVALID_ARGUMENT);
    import_fails(conn, data, len, "line\nbreak", PSM_ERR_INVALID_ARGUMENT);
    import_fails(conn, data, len, "\xff\xfe not UTF-8", PSM_ERR_INVALID_ARGUMENT);
    free(data);

    psm_cert_free(b);
    psm_cert_free(a);
}

static void bad_input_is_a_decode_error(psm_conn *conn)
{
    static const uint8_t garbage[] = "this is not a certificate\n";
    static const uint8_t pem_garbage[] = "-----BEGIN CERTIFICATE-----\n"
                                         "bm90IGEgY2VydGlmaWNhdGUK\n"
                                         "-----END CERTIFICATE-----\n";
    static const uint8_t zeros[64] = {0};
    size_t der_len = 0;
    uint8_t *der = pki_read("server.der", &der_len);
    size_t pem_len = 0;
    uint8_t *pem = pki_read("server.pem", &pem_len);
    size_t p7_len = 0;
    uint8_t *empty_p7 = pki_read("empty.p7b", &p7_len);
    size_t chain_len = 0;
    uint8_t *chain = pki_read("chain.pem", &chain_len);
    uint8_t *mixed = NULL;
    size_t mixed_len;

    import_fails(conn, garbage, sizeof garbage - 1, NULL, PSM_ERR_DECODE);
    import_fails(conn, pem_garbage, sizeof pem_garbage - 1, NULL, PSM_ERR_DECODE);
    import_fails(conn, zeros, sizeof zeros, NULL, PSM_ERR_DECODE);
    import_fails(conn, garbage, 0, NULL, PSM_ERR_DECODE);
    /* Truncated: DER cut short, DER with a byte too many, PEM cut in half. */
    import_fails(conn, der, der_len - 1, NULL, PSM_ERR_DECODE);
    import_fails(conn, der, der_len / 2, NULL, PSM_ERR_DECODE);
    der[der_len] = 0; /* pki_read allocates one spare byte */
    import_fails(conn, der, der_len + 1, NULL, PSM_ERR_DECODE);
    import_fails(conn, pem, pem_len / 2, NULL, PSM_ERR_DECODE);
    /* A PKCS#7 bundle with no certificate in it (just a CRL). */
    import_fails(conn, empty_p7, p7_len, NULL, PSM_ERR_DECODE);
    CHECK(strstr(psm_last_error(), "no certificates") != NULL);

    /* A good certificate followed by a bad one: all or none. */
    mixed_len = chain_len + sizeof pem_garbage - 1;
    mixed = malloc(mixed_len);
    CHECK(mixed != NULL);
    memcpy(mixed, chain, chain_len);
    memcpy(mixed + chain_len, pem_garbage, sizeof pem_garbage - 1);
    import_fails(conn, mixed, mixed_len, NULL, PSM_ERR_DECODE);

    free(mixed);
    free(chain);
    free(empty_p7);
    free(pem);
    free(der);
}

static void unknown_trust_bits_are_refused(psm_conn *conn)
{
    psm_cert *cert = NULL;
    size_t len = 0;
    uint8_t *data = pki_read("stranger.pem", &len);

    CHECK_EQ(psm_cert_import(conn, data, len, NULL, 1u << 20, &cert), PSM_ERR_INVALID_ARGUMENT);
    CHECK(cert == NULL);
    free(data);
}

int main(void)
{
    psm_conn *conn = NULL;

    CHECK_OK(psm_connect("cert_import", PSM_CONNECT_NO_SPAWN, &conn));
    /* The tests run with no system anchors: the store starts empty. */
    CHECK_EQ(store_size(conn), 0);

    bad_input_is_a_decode_error(conn);
    CHECK_EQ(store_size(conn), 0);
    p7b_brings_in_every_certificate(conn);
    empty_the_store(conn);
    each_format_is_accepted(conn);
    importing_again_is_idempotent(conn);
    nicknames_are_unique(conn);
    unknown_trust_bits_are_refused(conn);
    psm_conn_free(conn);
    return 0;
}
