/* cert_certutil_end_to_end: the psm-certutil example, run as a user
 * would, through import, list, show, trust, verify, crl-import and delete:
 * what it prints agrees with the library, and its exit status is 0 on
 * success (for verify: only for a valid certificate), 1 on failure and 2
 * for a command line it does not understand. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OK 0
#define FAILED 1
#define USAGE 2

/* 2023-06-01T00:00:00Z: before the test leaves' notBefore. */
#define BEFORE_LEAVES "1685577600"

static char output[64 * 1024];

/* certutil_run into `output`. */
static const char *run(int status, const char *needle, const char *args)
{
    return certutil_run(status, needle, args, output, sizeof output);
}

/* The line of `text` that starts with `prefix`, into line; fails if none. */
static void line_starting(const char *text, const char *prefix, char *line, size_t cap)
{
    const char *p = text;

    while (p != NULL && *p != '\0') {
        size_t len = strcspn(p, "\n");
        if (strncmp(p, prefix, strlen(prefix)) == 0) {
            CHECK(len < cap);
            memcpy(line, p, len);
            line[len] = '\0';
            return;
        }
        p = p[len] == '\n' ? p + len + 1 : NULL;
    }
    fprintf(stderr, "no line starting with \"%s\"\n", prefix);
    CHECK(!"line found");
}

/* `list` must show NICKNAME with these trust letters, expiry and email. */
static void listed(const char *list, const char *nickname, const char *letters, const char *expires,
                   const char *email)
{
    char prefix[128];
    char line[512];
    char got_nickname[128];
    char got_letters[32];
    char got_expires[32];
    char got_email[128];
    size_t width;

    snprintf(prefix, sizeof prefix, "%s ", nickname);
    line_starting(list, prefix, line, sizeof line);
    /* The nickname may contain spaces: the other columns are the last three words. */
    CHECK_EQ(
        sscanf(line + strlen(nickname), " %31s %31s %127s", got_letters, got_expires, got_email),
        3);
    width = strlen(nickname);
    memcpy(got_nickname, line, width);
    got_nickname[width] = '\0';
    CHECK_EQ(strcmp(got_nickname, nickname), 0);
    CHECK_EQ(strcmp(got_letters, letters), 0);
    CHECK_EQ(strcmp(got_expires, expires), 0);
    CHECK_EQ(strcmp(got_email, email), 0);
}

static void not_listed(const char *list, const char *nickname)
{
    char prefix[128];
    const char *p = list;

    snprintf(prefix, sizeof prefix, "\n%s ", nickname);
    CHECK(strstr(p, prefix) == NULL);
}

static int count_lines(const char *text)
{
    int n = 0;

    for (; *text != '\0'; text++)
        n += *text == '\n';
    return n;
}

static void command_line_errors(void)
{
    run(OK, "usage: psm-certutil COMMAND", "-h");
    CHECK(strstr(output, "list") && strstr(output, "show") && strstr(output, "import") &&
          strstr(output, "trust") && strstr(output, "delete") && strstr(output, "verify") &&
          strstr(output, "crl-import"));
    run(OK, "usage:", "--help");
    run(USAGE, "usage:", "");
    run(USAGE, "unknown command", "frobnicate");
    run(USAGE, NULL, "list --everything");
    run(USAGE, NULL, "show");
    run(USAGE, NULL, "show a b");
    run(USAGE, NULL, "import");
    run(USAGE, "bogus", "import root.pem --trust ca-tls,bogus");
    run(USAGE, NULL, "trust web");
    run(USAGE, NULL, "verify web");
    run(USAGE, "tls-sever", "verify web --usage tls-sever");
    run(USAGE, NULL, "verify web --usage tls-server --at yesterday");
    run(USAGE, NULL, "delete");
    run(USAGE, NULL, "crl-import");
}

static void imports(psm_conn *conn)
{
    char expected[256];
    psm_cert *web = NULL;

    run(OK, "NICKNAME", "list");
    CHECK_EQ(count_lines(output), 1); /* just the header: no anchors in this store */

    run(OK, "imported \"PSM Test Root\"", "import root.pem --trust ca-tls,ca-email");
    run(OK, "imported \"web\"", "import chain.p7b --nickname web");
    web = cert_must_find(conn, "web");
    snprintf(expected, sizeof expected, "(sha256:%s)", psm_cert_sha256_hex(web));
    CHECK(strstr(output, expected) != NULL);
    psm_cert_free(web);
    run(OK, "imported \"Alice Example\"", "import alice.pem");

    run(FAILED, psm_result_str(PSM_ERR_DECODE), "import ca.cnf");
    CHECK(strstr(output, "importing \"ca.cnf\" failed") != NULL);
    run(FAILED, psm_result_str(PSM_ERR_DECODE), "import empty.p7b");
    run(FAILED, psm_result_str(PSM_ERR_EXISTS), "import same-1.pem --nickname web");
    run(FAILED, "no-such-file.pem", "import no-such-file.pem");
}

static void lists_and_shows(psm_conn *conn)
{
    const char *list;
    char expected[256];
    psm_cert *web = cert_must_find(conn, "web");
    const uint8_t *der = NULL;
    size_t der_len = 0;

    list = run(OK, NULL, "list");
    CHECK_EQ(count_lines(list), 4);
    listed(list, "Alice Example", ",,", "2049-12-31", "alice@example.com");
    listed(list, "PSM Test Root", "C,C,", "2049-12-31", "-");
    listed(list, "web", ",,", "2049-12-31", "-");

    list = run(OK, NULL, "list --ca");
    CHECK_EQ(count_lines(list), 2);
    listed(list, "PSM Test Root", "C,C,", "2049-12-31", "-");
    list = run(OK, NULL, "list --people");
    CHECK_EQ(count_lines(list), 2);
    listed(list, "Alice Example", ",,", "2049-12-31", "alice@example.com");
    list = run(OK, NULL, "list --servers --people");
    CHECK_EQ(count_lines(list), 3);
    not_listed(list, "PSM Test Root");
    list = run(OK, NULL, "list --mine");
    CHECK_EQ(count_lines(list), 1);

    run(OK, "Nickname:     web\n", "show web");
    CHECK(strstr(output, "Subject:      O=PSM Tests, CN=www.example.test\n") != NULL);
    CHECK(strstr(output, "Issuer:       O=PSM Tests, CN=PSM Test Root\n") != NULL);
    CHECK(strstr(output, "Serial:       1001\n") != NULL);
    CHECK(strstr(output, "Email:        -\n") != NULL);
    CHECK(strstr(output, "Not before:   2024-01-01 00:00:00 UTC\n") != NULL);
    CHECK(strstr(output, "Not after:    2049-12-31 23:59:59 UTC\n") != NULL);
    CHECK(strstr(output, "Trust:        ,, (none)\n") != NULL);
    CHECK(strstr(output, "CA:           no\n") != NULL);
    CHECK(strstr(output, "Private key:  no\n") != NULL);
    CHECK(strstr(output, "Built in:     no\n") != NULL);
    CHECK_OK(psm_cert_der(web, &der, &der_len));
    snprintf(expected, sizeof expected, "DER size:     %zu bytes\n", der_len);
    CHECK(strstr(output, expected) != NULL);
    snprintf(expected, sizeof expected, "SHA-256:      %s\n", psm_cert_sha256_hex(web));
    CHECK(strstr(output, expected) != NULL);

    /* Any name psm_cert_find takes. */
    snprintf(expected, sizeof expected, "show sha256:%s", psm_cert_sha256_hex(web));
    run(OK, "Nickname:     web\n", expected);
    run(OK, "Nickname:     Alice Example\n", "show alice@EXAMPLE.com");
    CHECK(strstr(output, "Email:        alice@example.com\n") != NULL);
    run(OK, "Trust:        C,C, (ca-tls,ca-email)\n", "show 'PSM Test Root'");
    CHECK(strstr(output, "CA:           yes\n") != NULL);
    run(FAILED, psm_result_str(PSM_ERR_NOT_FOUND), "show nobody");
    psm_cert_free(web);
}

static void verifies(void)
{
    run(OK, "VALID: ", "verify web --usage tls-server --name www.example.test");
    CHECK(strncmp(output, "VALID: ", 7) == 0);
    CHECK(strstr(output, "\n  0: web [O=PSM Tests, CN=www.example.test]\n") != NULL);
    CHECK(strstr(output, "\n  1: PSM Test Root [O=PSM Tests, CN=PSM Test Root]\n") != NULL);
    run(OK, "VALID: ", "verify web --usage tls-server");
    run(OK, "VALID: ", "verify alice@example.com --usage email-signer --name alice@example.com");

    run(FAILED, psm_result_str(PSM_ERR_CERT_NAME_MISMATCH),
        "verify web --usage tls-server --name other.example.test");
    CHECK(strncmp(output, "INVALID (", 9) == 0);
    CHECK(strstr(output, "other.example.test") != NULL); /* the detail */
    CHECK(strstr(output, "\n  0: web [") != NULL);
    run(FAILED, psm_result_str(PSM_ERR_CERT_NOT_YET_VALID),
        "verify web --usage tls-server --at " BEFORE_LEAVES);
    run(FAILED, psm_result_str(PSM_ERR_CERT_WRONG_USAGE), "verify web --usage email-signer");
    run(FAILED, psm_result_str(PSM_ERR_NOT_FOUND), "verify nobody --usage tls-server");
}

static void trusts(psm_conn *conn)
{
    psm_cert *web = cert_must_find(conn, "web");

    run(OK, "\"web\": trust Pp,p,p (peer-tls,distrust)", "trust web peer-tls,distrust");
    CHECK_EQ(current_trust(conn, web), PSM_TRUST_PEER_TLS | PSM_TRUST_DISTRUSTED);
    run(FAILED, psm_result_str(PSM_ERR_CERT_DISTRUSTED),
        "verify web --usage tls-server --name www.example.test");

    run(OK, "\"web\": trust P,,C (ca-code,peer-tls)", "trust web +ca-code,-distrust");
    CHECK_EQ(current_trust(conn, web), PSM_TRUST_PEER_TLS | PSM_TRUST_CA_CODE);
    run(OK, "VALID: ", "verify web --usage tls-server --name www.example.test");

    run(USAGE, "either all flags", "trust web +ca-code,distrust");
    run(USAGE, "bogus", "trust web +bogus");
    run(OK, "\"web\": trust ,, (none)", "trust web none");
    CHECK_EQ(current_trust(conn, web), 0);
    run(OK, "\"PSM Test Root\": trust CT,C,", "trust 'PSM Test Root' +ca-tls-client");
    run(FAILED, psm_result_str(PSM_ERR_NOT_FOUND), "trust nobody none");
    psm_cert_free(web);
}

static void revokes(void)
{
    run(OK, "imported \"revoked.example.test\"", "import revoked.pem");
    run(OK, "VALID: ", "verify revoked.example.test --usage tls-server");
    run(OK, "imported the CRL in crl.pem", "crl-import crl.pem");
    run(FAILED, psm_result_str(PSM_ERR_CERT_REVOKED),
        "verify revoked.example.test --usage tls-server");
    run(FAILED, "a newer CRL", "crl-import crl-old.der");
    run(FAILED, psm_result_str(PSM_ERR_DECODE), "crl-import root.pem");
    run(FAILED, "no-such-file.crl", "crl-import no-such-file.crl");
}

static void deletes(psm_conn *conn)
{
    psm_cert *cert = NULL;
    const char *list;

    run(OK, "deleted \"web\"\n", "delete web");
    CHECK_EQ(psm_cert_find(conn, "web", &cert), PSM_ERR_NOT_FOUND);
    run(FAILED, psm_result_str(PSM_ERR_NOT_FOUND), "delete web");
    run(OK, "deleted \"Alice Example\"\n", "delete alice@example.com --with-key");
    CHECK_EQ(psm_cert_find(conn, "Alice Example", &cert), PSM_ERR_NOT_FOUND);

    list = run(OK, NULL, "list");
    CHECK_EQ(count_lines(list), 3);
    listed(list, "PSM Test Root", "CT,C,", "2049-12-31", "-");
    listed(list, "revoked.example.test", ",,", "2049-12-31", "-");
}

int main(void)
{
    psm_conn *conn = NULL;

    CHECK_OK(psm_connect("cert_certutil", PSM_CONNECT_NO_SPAWN, &conn));
    command_line_errors();
    imports(conn);
    lists_and_shows(conn);
    verifies();
    trusts(conn);
    revokes();
    deletes(conn);
    psm_conn_free(conn);
    return 0;
}
