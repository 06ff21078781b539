/* cert_find_by_nickname_email_and_fingerprint: psm_cert_find takes a
 * nickname (exactly), an email address (the domain in any case) or
 * "sha256:<hex>" (either case); anything else is PSM_ERR_NOT_FOUND, and a
 * malformed fingerprint PSM_ERR_INVALID_ARGUMENT. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <ctype.h>
#include <string.h>

/* `query` must find the certificate whose fingerprint is `sha256`. */
static void finds(psm_conn *conn, const char *query, const char *sha256)
{
    psm_cert *cert = cert_must_find(conn, query);

    CHECK_EQ(strcmp(psm_cert_sha256_hex(cert), sha256), 0);
    psm_cert_free(cert);
}

static void not_found(psm_conn *conn, const char *query)
{
    psm_cert *cert = NULL;

    CHECK_EQ(psm_cert_find(conn, query, &cert), PSM_ERR_NOT_FOUND);
    CHECK(cert == NULL);
    CHECK(psm_last_error()[0] != '\0');
}

int main(void)
{
    psm_conn *conn = NULL;
    psm_cert *alice = NULL;
    psm_cert *server = NULL;
    psm_cert *root = NULL;
    psm_cert *cert = NULL;
    char query[128];
    size_t i;

    CHECK_OK(psm_connect("cert_find", PSM_CONNECT_NO_SPAWN, &conn));
    alice = pki_import(conn, "alice.pem", NULL, 0);
    server = pki_import(conn, "server.pem", "web server", 0);
    root = pki_import(conn, "root.pem", NULL, 0);

    /* Nicknames: given or derived from the CN, matched exactly. */
    finds(conn, "web server", psm_cert_sha256_hex(server));
    finds(conn, "Alice Example", psm_cert_sha256_hex(alice));
    finds(conn, "PSM Test Root", psm_cert_sha256_hex(root));
    not_found(conn, "www.example.test"); /* the CN, but not its nickname */
    not_found(conn, "web");
    not_found(conn, "Web Server");
    not_found(conn, "");

    /* Email: the certificate says alice@Example.COM; the domain's case
     * does not matter. */
    CHECK_EQ(strcmp(psm_cert_email(alice), "alice@example.com"), 0);
    finds(conn, "alice@example.com", psm_cert_sha256_hex(alice));
    finds(conn, "alice@Example.COM", psm_cert_sha256_hex(alice));
    finds(conn, "alice@EXAMPLE.com", psm_cert_sha256_hex(alice));
    not_found(conn, "bob@example.com");
    not_found(conn, "alice@example.org");

    /* Fingerprints, in lower and upper case. */
    snprintf(query, sizeof query, "sha256:%s", psm_cert_sha256_hex(server));
    finds(conn, query, psm_cert_sha256_hex(server));
    for (i = strlen("sha256:"); query[i] != '\0'; i++)
        query[i] = (char)toupper((unsigned char)query[i]);
    finds(conn, query, psm_cert_sha256_hex(server));
    not_found(conn, "sha256:"
                    "0000000000000000000000000000000000000000000000000000000000000000");
    CHECK_EQ(psm_cert_find(conn, "sha256:1234", &cert), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_cert_find(conn, "sha256:not hex", &cert), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_cert_find(conn, "\xff\xfe not UTF-8", &cert), PSM_ERR_INVALID_ARGUMENT);
    CHECK(cert == NULL);

    /* After a delete, none of the three names finds it. */
    CHECK_OK(psm_cert_delete(conn, alice));
    not_found(conn, "Alice Example");
    not_found(conn, "alice@example.com");
    snprintf(query, sizeof query, "sha256:%s", psm_cert_sha256_hex(alice));
    not_found(conn, query);

    psm_cert_free(root);
    psm_cert_free(server);
    psm_cert_free(alice);
    psm_conn_free(conn);
    return 0;
}
