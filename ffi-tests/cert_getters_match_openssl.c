/* cert_getters_match_openssl: every getter of a psm_cert says what
 * `openssl x509` says about the same certificate (subject, issuer, serial,
 * SHA-256 fingerprint, validity dates, email, CA or not), psm_cert_der
 * gives back the very bytes imported, and importing that DER again finds
 * the same certificate. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What openssl prints for `openssl x509 -in FILE -noout ARGS`, after the
 * first '=' when there is one ("subject=..."), into out. */
static void openssl_says(const char *file, const char *args, char *out, size_t cap)
{
    char path[4096];
    char command[8192];
    char line[1024];
    const char *eq;

    pki_path(file, path, sizeof path);
    CHECK((size_t)snprintf(command, sizeof command, "openssl x509 -in '%s' -noout %s", path, args) <
          sizeof command);
    command_output(command, line, sizeof line);
    eq = strchr(line, '=');
    CHECK(strlen(eq != NULL ? eq + 1 : line) < cap);
    strcpy(out, eq != NULL ? eq + 1 : line);
}

/* openssl's notBefore/notAfter ("Jan  1 00:00:00 2024 GMT") in unix seconds. */
static long long openssl_date(const char *file, const char *which)
{
    char path[4096];
    char command[8192];
    char line[64];

    pki_path(file, path, sizeof path);
    CHECK((size_t)snprintf(command, sizeof command,
                           "date -u +%%s -d \"$(openssl x509 -in '%s' -noout -%s | cut -d= -f2)\"",
                           path, which) < sizeof command);
    command_output(command, line, sizeof line);
    return strtoll(line, NULL, 10);
}

/* Whether openssl finds basicConstraints cA=TRUE. */
static int openssl_says_ca(const char *file)
{
    char path[4096];
    char command[8192];
    char output[1024];

    pki_path(file, path, sizeof path);
    CHECK((size_t)snprintf(command, sizeof command,
                           "openssl x509 -in '%s' -noout -ext basicConstraints",
                           path) < sizeof command);
    CHECK_EQ(command_run(command, output, sizeof output), 0);
    return strstr(output, "CA:TRUE") != NULL;
}

/* Hex without colons and leading zero bytes, in lower case: the serial
 * number's value, whichever way it is written. */
static void normalize_hex(const char *in, char *out)
{
    size_t n = 0;

    for (; *in != '\0'; in++) {
        if (*in == ':')
            continue;
        if (n == 0 && *in == '0' && in[1] != '\0')
            continue;
        out[n++] = (char)tolower((unsigned char)*in);
    }
    out[n] = '\0';
}

/* An email address with its domain in lower case, as psm keeps it. */
static void lower_domain(char *email)
{
    char *at = strrchr(email, '@');

    for (; at != NULL && *at != '\0'; at++)
        *at = (char)tolower((unsigned char)*at);
}

static void check_cert(psm_conn *conn, const char *file, const char *der_file)
{
    psm_cert *cert = pki_import(conn, file, NULL, PSM_TRUST_PEER_EMAIL);
    psm_cert *again = NULL;
    psm_cert *found = NULL;
    char want[1024];
    char got[1024];
    const uint8_t *der = NULL;
    size_t der_len = 0;
    uint8_t *file_der = NULL;
    size_t file_der_len = 0;
    uint8_t digest[32];
    size_t digest_len = 0;
    char digest_hex[65];

    fprintf(stderr, "checking %s\n", file);

    openssl_says(file, "-subject -nameopt oneline,-space_eq", want, sizeof want);
    CHECK_EQ(strcmp(psm_cert_subject(cert), want), 0);
    openssl_says(file, "-issuer -nameopt oneline,-space_eq", want, sizeof want);
    CHECK_EQ(strcmp(psm_cert_issuer(cert), want), 0);

    openssl_says(file, "-serial", want, sizeof want);
    normalize_hex(want, want);
    normalize_hex(psm_cert_serial_hex(cert), got);
    CHECK_EQ(strcmp(got, want), 0);

    openssl_says(file, "-fingerprint -sha256", want, sizeof want);
    normalize_hex(want, want);
    CHECK_EQ(strlen(psm_cert_sha256_hex(cert)), 64);
    normalize_hex(psm_cert_sha256_hex(cert), got);
    CHECK_EQ(strcmp(got, want), 0);

    CHECK_EQ(psm_cert_not_before(cert), openssl_date(file, "startdate"));
    CHECK_EQ(psm_cert_not_after(cert), openssl_date(file, "enddate"));

    /* -email prints the addresses, one a line, or nothing. */
    openssl_says(file, "-email", want, sizeof want);
    if (want[0] == '\0') {
        CHECK(psm_cert_email(cert) == NULL);
    } else {
        lower_domain(want);
        CHECK(psm_cert_email(cert) != NULL);
        CHECK_EQ(strcmp(psm_cert_email(cert), want), 0);
    }

    CHECK_EQ(psm_cert_is_ca(cert), openssl_says_ca(file));

    CHECK_EQ(psm_cert_trust(cert), PSM_TRUST_PEER_EMAIL);
    CHECK_EQ(psm_cert_has_private_key(cert), 0);
    CHECK_EQ(psm_cert_is_builtin(cert), 0);

    /* The DER is the file's, byte for byte, and hashes to the fingerprint. */
    CHECK_OK(psm_cert_der(cert, &der, &der_len));
    file_der = pki_read(der_file, &file_der_len);
    CHECK_EQ(der_len, file_der_len);
    CHECK(memcmp(der, file_der, der_len) == 0);
    CHECK_OK(psm_digest(conn, PSM_HASH_SHA256, der, der_len, digest, sizeof digest, &digest_len));
    to_hex(digest, digest_len, digest_hex);
    CHECK_EQ(strcmp(digest_hex, psm_cert_sha256_hex(cert)), 0);

    /* Round trip: the DER imports as the same certificate. */
    CHECK_OK(psm_cert_import(conn, der, der_len, NULL, 0, &again));
    CHECK_EQ(strcmp(psm_cert_sha256_hex(again), psm_cert_sha256_hex(cert)), 0);
    CHECK_EQ(strcmp(psm_cert_nickname(again), psm_cert_nickname(cert)), 0);
    found = cert_must_find(conn, psm_cert_nickname(cert));
    CHECK_EQ(strcmp(psm_cert_subject(found), psm_cert_subject(cert)), 0);
    CHECK_EQ(psm_cert_not_after(found), psm_cert_not_after(cert));

    psm_cert_free(found);
    psm_cert_free(again);
    free(file_der);
    psm_cert_free(cert);
}

/* DER copies of the PEM files, made with openssl. */
static void make_der(const char *name)
{
    char in[4096];
    char command[8192];
    char line[256];

    pki_path(name, in, sizeof in);
    CHECK((size_t)snprintf(command, sizeof command,
                           "openssl x509 -in '%s' -outform DER -out '%s.der'", in,
                           in) < sizeof command);
    command_output(command, line, sizeof line);
}

/* What make-test-pki.sh wrote, as a cross-check of openssl's reading. */
static void fixed_fields_are_as_made(psm_conn *conn)
{
    psm_cert *server = cert_must_find(conn, "www.example.test");
    psm_cert *high = cert_must_find(conn, "High Serial");

    CHECK_EQ(psm_cert_not_before(server), 1704067200LL); /* 2024-01-01T00:00:00Z */
    CHECK_EQ(psm_cert_not_after(server), 2524607999LL);  /* 2049-12-31T23:59:59Z */
    CHECK_EQ(strcmp(psm_cert_serial_hex(server), "1001"), 0);
    CHECK_EQ(strcmp(psm_cert_subject(server), "O=PSM Tests, CN=www.example.test"), 0);
    CHECK_EQ(strcmp(psm_cert_issuer(server), "O=PSM Tests, CN=PSM Test Root"), 0);
    /* keyUsage digitalSignature, extendedKeyUsage serverAuth (make-test-pki.sh). */
    {
        uint32_t ku = 0;
        CHECK_EQ(psm_cert_key_usage(server, &ku), 1);
        CHECK_EQ(ku, 1u);
        CHECK(strcmp(psm_cert_ext_key_usage(server), "serverAuth") == 0);
        CHECK_EQ(psm_cert_key_usage(NULL, &ku), 0);
        CHECK(psm_cert_ext_key_usage(NULL) == NULL);
    }
    /* Without the DER INTEGER's sign byte, as openssl shows it (8BADF00D). */
    CHECK_EQ(strcmp(psm_cert_serial_hex(high), "8badf00d"), 0);
    psm_cert_free(high);
    psm_cert_free(server);
}

int main(void)
{
    static const char *const files[] = {"root.pem",    "server.pem",      "alice.pem",
                                        "expired.pem", "high-serial.pem", "same-1.pem"};
    psm_conn *conn = NULL;
    char der_name[64];
    size_t i;

    CHECK_OK(psm_connect("cert_getters", PSM_CONNECT_NO_SPAWN, &conn));
    for (i = 0; i < sizeof files / sizeof files[0]; i++) {
        make_der(files[i]);
        snprintf(der_name, sizeof der_name, "%s.der", files[i]);
        check_cert(conn, files[i], der_name);
    }

    fixed_fields_are_as_made(conn);
    psm_conn_free(conn);
    return 0;
}
