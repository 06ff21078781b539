/* key_generate_makes_a_csr_for_every_key_type: psm_key_generate returns a
 * PKCS#10 request that `openssl req -verify` accepts, for the subject given
 * (RFC 4514 order: most significant last, escapes and UTF-8 allowed), with
 * a key of the type asked for and a new key every time;
 * psm_key_generate_with_sans puts dns:, ip: (v4 and v6) and email: names
 * in its subjectAltName. Bad key types, DNs and SANs are
 * PSM_ERR_INVALID_ARGUMENT with the output untouched. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <stdio.h>
#include <string.h>

#define SUBJECT "CN=Alice,O=Example,C=DE"

static const struct {
    uint32_t type;
    const char *name;
    const char *openssl_says; /* in `openssl req -text` */
} key_types[] = {
    {PSM_KEY_EC_P256, "P-256", "NIST CURVE: P-256"},
    {PSM_KEY_EC_P384, "P-384", "NIST CURVE: P-384"},
    {PSM_KEY_ED25519, "Ed25519", "Public Key Algorithm: ED25519"},
    {PSM_KEY_RSA_2048, "RSA-2048", "Public-Key: (2048 bit)"},
    {PSM_KEY_RSA_3072, "RSA-3072", "Public-Key: (3072 bit)"},
    /* About a second: once is enough. */
    {PSM_KEY_RSA_4096, "RSA-4096", "Public-Key: (4096 bit)"},
};

static char text[64 * 1024];

/* Writes the request to <fixture>/NAME.csr.der and has openssl check its
 * signature and print it (subject in RFC 4514 form, then the text) into `text`. */
static void openssl_reads(const uint8_t *csr, size_t len, const char *name)
{
    char path[4096];
    char file[128];
    char command[8192];
    int status;

    snprintf(file, sizeof file, "%s.csr.der", name);
    fixture_path(file, path, sizeof path);
    file_write(path, csr, len);
    CHECK((size_t)snprintf(command, sizeof command,
                           "openssl req -inform DER -in '%s' -noout -verify -subject "
                           "-nameopt RFC2253,-esc_msb -text 2>&1",
                           path) < sizeof command);
    status = command_run(command, text, sizeof text);
    if (status != 0)
        fprintf(stderr, "`%s` (exit %d):\n%s\n", command, status, text);
    CHECK_EQ(status, 0);
    CHECK(strstr(text, "verify OK") != NULL);
}

static void contains(const char *needle)
{
    if (strstr(text, needle) == NULL)
        fprintf(stderr, "expected \"%s\" in:\n%s\n", needle, text);
    CHECK(strstr(text, needle) != NULL);
}

/* The public key of the request openssl_reads wrote last, as PEM into out. */
static void public_key(const char *name, char *out, size_t cap)
{
    char path[4096];
    char file[128];
    char command[8192];

    snprintf(file, sizeof file, "%s.csr.der", name);
    fixture_path(file, path, sizeof path);
    CHECK((size_t)snprintf(command, sizeof command,
                           "openssl req -inform DER -in '%s' -noout -pubkey",
                           path) < sizeof command);
    CHECK_EQ(command_run(command, out, cap), 0);
    CHECK(strstr(out, "PUBLIC KEY") != NULL);
}

static void every_key_type(psm_conn *conn)
{
    size_t i;

    for (i = 0; i < sizeof key_types / sizeof key_types[0]; i++) {
        uint8_t *csr = NULL;
        size_t len = 0;

        fprintf(stderr, "%s\n", key_types[i].name);
        CHECK_OK(psm_key_generate(conn, key_types[i].type, SUBJECT, NULL, &csr, &len));
        CHECK(csr != NULL && len > 0);
        CHECK_EQ(csr[0], 0x30); /* a DER SEQUENCE */
        openssl_reads(csr, len, key_types[i].name);
        contains("subject=" SUBJECT "\n");
        contains(key_types[i].openssl_says);
        psm_free(csr);
    }
}

static void new_key_every_time(psm_conn *conn)
{
    static char first[4096];
    static char second[4096];
    uint8_t *csr = NULL;
    size_t len = 0;

    CHECK_OK(psm_key_generate(conn, PSM_KEY_ED25519, SUBJECT, NULL, &csr, &len));
    openssl_reads(csr, len, "again-1");
    public_key("again-1", first, sizeof first);
    psm_free(csr);
    CHECK_OK(psm_key_generate(conn, PSM_KEY_ED25519, SUBJECT, NULL, &csr, &len));
    openssl_reads(csr, len, "again-2");
    public_key("again-2", second, sizeof second);
    psm_free(csr);
    CHECK(strcmp(first, second) != 0);
}

static void subjects(psm_conn *conn)
{
    uint8_t *csr = NULL;
    size_t len = 0;

    CHECK_OK(psm_key_generate(conn, PSM_KEY_EC_P256, "CN=Doe\\, John,OU=R\\+D,O=Example", NULL,
                              &csr, &len));
    openssl_reads(csr, len, "escaped");
    contains("subject=CN=Doe\\, John,OU=R\\+D,O=Example\n");
    psm_free(csr);

    CHECK_OK(psm_key_generate(conn, PSM_KEY_EC_P256, "CN=J\xc3\xbcrgen M\xc3\xbcller,C=DE", NULL,
                              &csr, &len));
    openssl_reads(csr, len, "utf8");
    contains("subject=CN=J\xc3\xbcrgen M\xc3\xbcller,C=DE\n");
    psm_free(csr);

    CHECK_OK(psm_key_generate(conn, PSM_KEY_EC_P256, "emailAddress=alice@example.test,CN=Alice",
                              NULL, &csr, &len));
    openssl_reads(csr, len, "email");
    contains("subject=emailAddress=alice@example.test,CN=Alice\n");
    psm_free(csr);
}

static void sans(psm_conn *conn)
{
    const char *names[] = {"dns:www.example.test", "ip:192.0.2.1", "ip:2001:db8::1",
                           "email:alice@example.test", "dns:*.example.test"};
    uint8_t *csr = NULL;
    size_t len = 0;

    CHECK_OK(psm_key_generate_with_sans(conn, PSM_KEY_EC_P384, SUBJECT, names,
                                        sizeof names / sizeof names[0], NULL, &csr, &len));
    openssl_reads(csr, len, "sans");
    contains("subject=" SUBJECT "\n");
    contains("X509v3 Subject Alternative Name:");
    contains("DNS:www.example.test, IP Address:192.0.2.1, IP Address:2001:DB8:0:0:0:0:0:1, "
             "email:alice@example.test, DNS:*.example.test");
    psm_free(csr);

    /* None: no subjectAltName at all (sans may be NULL when n_sans is 0). */
    CHECK_OK(psm_key_generate_with_sans(conn, PSM_KEY_EC_P256, SUBJECT, NULL, 0, NULL, &csr, &len));
    openssl_reads(csr, len, "no-sans");
    CHECK(strstr(text, "Subject Alternative Name") == NULL);
    psm_free(csr);
}

/* A refused request: PSM_ERR_INVALID_ARGUMENT, a message, the output untouched. */
static void refused(psm_conn *conn, uint32_t type, const char *subject, const char *san)
{
    uint8_t *csr = NULL;
    size_t len = 99;
    psm_result r = psm_key_generate_with_sans(conn, type, subject, &san, san != NULL ? 1 : 0, NULL,
                                              &csr, &len);

    if (r != PSM_ERR_INVALID_ARGUMENT)
        fprintf(stderr, "type %u, subject \"%s\", SAN \"%s\"\n", (unsigned)type, subject,
                san != NULL ? san : "(none)");
    CHECK_EQ(r, PSM_ERR_INVALID_ARGUMENT);
    CHECK(psm_last_error()[0] != '\0');
    CHECK(csr == NULL && len == 99);
}

static void bad_requests(psm_conn *conn)
{
    refused(conn, 0, SUBJECT, NULL);
    refused(conn, PSM_KEY_RSA_4096 + 1, SUBJECT, NULL);
    refused(conn, 0xffffffffu, SUBJECT, NULL);

    refused(conn, PSM_KEY_EC_P256, "", NULL);
    refused(conn, PSM_KEY_EC_P256, "Alice", NULL);
    refused(conn, PSM_KEY_EC_P256, "CN=", NULL);
    refused(conn, PSM_KEY_EC_P256, "XX=unknown type", NULL);
    refused(conn, PSM_KEY_EC_P256, "C=Germany", NULL);
    refused(conn, PSM_KEY_EC_P256, "CN=a+OU=b", NULL);
    refused(conn, PSM_KEY_EC_P256, "CN=\xff\xfe", NULL); /* not UTF-8 */
    CHECK(strstr(psm_last_error(), "UTF-8") != NULL);

    refused(conn, PSM_KEY_EC_P256, SUBJECT, "uri:https://example.test/");
    refused(conn, PSM_KEY_EC_P256, SUBJECT, "www.example.test");
    refused(conn, PSM_KEY_EC_P256, SUBJECT, "ip:192.0.2.300");
    refused(conn, PSM_KEY_EC_P256, SUBJECT, "ip:www.example.test");
    refused(conn, PSM_KEY_EC_P256, SUBJECT, "dns:");
    refused(conn, PSM_KEY_EC_P256, SUBJECT, "dns:not a host name");
    refused(conn, PSM_KEY_EC_P256, SUBJECT, "email:");
    refused(conn, PSM_KEY_EC_P256, SUBJECT, "DNS:www.example.test"); /* the prefix is lower case */
}

int main(void)
{
    psm_conn *conn = NULL;
    psm_cert_list *mine = NULL;

    CHECK_OK(psm_connect("key_generate", PSM_CONNECT_NO_SPAWN, &conn));
    every_key_type(conn);
    new_key_every_time(conn);
    subjects(conn);
    sans(conn);
    bad_requests(conn);

    /* Keys without certificates are not certificates: nothing is "mine" yet. */
    CHECK_OK(psm_cert_list_query(conn, PSM_CERTS_USER, &mine));
    CHECK_EQ(psm_cert_list_len(mine), 0);
    psm_cert_list_free(mine);
    CHECK_OK(psm_ping(conn));
    psm_conn_free(conn);
    return 0;
}
