/* pkcs12_export_is_read_by_openssl_and_reimports: psm_pkcs12_export writes
 * a PKCS#12 file that `openssl pkcs12` reads with the password (and not
 * without it): AES-256-CBC with PBKDF2 and HMAC-SHA-256, a SHA-256 MAC, the
 * certificate under its nickname and the private key that belongs to it.
 * For every key type, a key deleted from psm comes back from its export
 * (same certificate, nickname and key: it signs again). "" is a password
 * like any other; NULL would prompt (PSM_ERR_NO_UI); a certificate without
 * a key in psm is PSM_ERR_NOT_FOUND. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PASSWORD "export pw"

/* A recognisable non-NULL value an untouched output keeps. */
#define UNTOUCHED ((uint8_t *)&sentinel)

static uint8_t sentinel;

static const uint8_t message[] = "signed before and after the round trip";

static char output[64 * 1024];

/* Runs a shell command (printf-style) into `output`; returns its exit status. */
static int shell(const char *format, ...)
{
    char command[16384];
    va_list args;
    int n;

    va_start(args, format);
    n = vsnprintf(command, sizeof command, format, args);
    va_end(args);
    CHECK(n >= 0 && (size_t)n < sizeof command);
    return command_run(command, output, sizeof output);
}

/* Exports `cert` with `password` into <fixture>/<name>.p12; returns the bytes. */
static uint8_t *export_to(psm_conn *conn, const psm_cert *cert, const char *password,
                          const char *name, char *path, size_t cap, size_t *len)
{
    char file[128];
    uint8_t *p12 = NULL;

    CHECK_OK(psm_pkcs12_export(conn, cert, password, &p12, len));
    CHECK(p12 != NULL && *len > 0);
    snprintf(file, sizeof file, "%s.p12", name);
    fixture_path(file, path, cap);
    file_write(path, p12, *len);
    return p12;
}

/* openssl reads the file with the password, sees how it is protected, and
 * finds the certificate (issued as <fixture>/<name>.pem) with its key. */
static void openssl_reads(const char *p12_path, const char *password, const char *name,
                          const char *nickname)
{
    char cert_pem[4096];
    char passin[256];
    char from_cert[4096];
    char friendly[256];

    issued_pem_path(name, cert_pem, sizeof cert_pem);
    snprintf(passin, sizeof passin, "pass:%s", password);

    CHECK_EQ(shell("openssl pkcs12 -info -nodes -in '%s' -passin '%s' 2>&1", p12_path, passin), 0);
    CHECK(strstr(output, "MAC: sha256") != NULL);
    CHECK(strstr(output, "PBES2, PBKDF2, AES-256-CBC") != NULL);
    CHECK(strstr(output, "PRF hmacWithSHA256") != NULL);
    CHECK(strstr(output, "-----BEGIN CERTIFICATE-----") != NULL);
    CHECK(strstr(output, "-----BEGIN PRIVATE KEY-----") != NULL);
    snprintf(friendly, sizeof friendly, "friendlyName: %s\n", nickname);
    CHECK(strstr(output, friendly) != NULL);

    /* The key in the file belongs to the certificate. */
    CHECK_EQ(shell("openssl x509 -in '%s' -pubkey -noout", cert_pem), 0);
    CHECK(strlen(output) < sizeof from_cert);
    strcpy(from_cert, output);
    CHECK_EQ(shell("openssl pkcs12 -in '%s' -passin '%s' -nocerts -nodes 2>/dev/null | "
                   "openssl pkey -pubout",
                   p12_path, passin),
             0);
    CHECK_EQ(strcmp(output, from_cert), 0);

    /* Not without the password. */
    CHECK(shell("openssl pkcs12 -info -nodes -in '%s' -passin 'pass:%s wrong' 2>&1", p12_path,
                password) != 0);
}

static void round_trip(psm_conn *conn, uint32_t type, uint32_t alg, const char *name)
{
    char nickname[128];
    char path[4096];
    char cert_pem[4096];
    char sha256[65];
    size_t len = 0;
    psm_cert *cert;
    psm_cert *back = NULL;
    uint8_t *p12;
    uint8_t *sig = NULL;
    size_t sig_len = 0;

    fprintf(stderr, "%s\n", name);
    snprintf(nickname, sizeof nickname, "Exported %s", name);
    cert = generate_and_issue(conn, type, name, nickname);
    issued_pem_path(name, cert_pem, sizeof cert_pem);
    sign_and_verify(conn, cert, cert_pem, alg, message, sizeof message);

    p12 = export_to(conn, cert, PASSWORD, name, path, sizeof path, &len);
    openssl_reads(path, PASSWORD, name, nickname);

    /* Gone from psm: no key to sign with. */
    strcpy(sha256, psm_cert_sha256_hex(cert));
    CHECK_OK(psm_cert_delete_with_key(conn, cert));
    CHECK_EQ(psm_key_sign(conn, cert, alg, message, sizeof message, &sig, &sig_len),
             PSM_ERR_NOT_FOUND);

    /* Back from the export: the same certificate, name and key. */
    CHECK_OK(psm_pkcs12_import(conn, p12, len, PASSWORD, &back));
    CHECK_EQ(strcmp(psm_cert_sha256_hex(back), sha256), 0);
    CHECK_EQ(strcmp(psm_cert_nickname(back), nickname), 0);
    CHECK_EQ(psm_cert_has_private_key(back), 1);
    sign_and_verify(conn, back, cert_pem, alg, message, sizeof message);
    sign_and_verify(conn, cert, cert_pem, alg, message, sizeof message); /* the old handle too */

    psm_free(p12);
    psm_cert_free(back);
    psm_cert_free(cert);
}

static void passwords(psm_conn *conn)
{
    char path[4096];
    size_t len = 99;
    uint8_t *p12 = UNTOUCHED;
    psm_cert *cert = generate_and_issue(conn, PSM_KEY_EC_P256, "passwords", "Passwords");
    psm_cert *server = pki_import(conn, "server.pem", NULL, 0);
    psm_cert *back = NULL;

    CHECK_EQ(psm_pkcs12_export(conn, cert, NULL, &p12, &len), PSM_ERR_NO_UI);
    CHECK(p12 == UNTOUCHED && len == 99);
    CHECK_EQ(psm_pkcs12_export(conn, server, PASSWORD, &p12, &len), PSM_ERR_NOT_FOUND);
    CHECK(p12 == UNTOUCHED && len == 99);

    /* The empty password, and one with spaces and non-ASCII letters. */
    p12 = export_to(conn, cert, "", "empty-password", path, sizeof path, &len);
    openssl_reads(path, "", "passwords", "Passwords");
    CHECK_EQ(psm_pkcs12_import(conn, p12, len, "x", &back), PSM_ERR_BAD_PASSWORD);
    CHECK_OK(psm_pkcs12_import(conn, p12, len, "", &back));
    CHECK_EQ(strcmp(psm_cert_sha256_hex(back), psm_cert_sha256_hex(cert)), 0);
    psm_cert_free(back);
    back = NULL;
    psm_free(p12);

    p12 = export_to(conn, cert, "sp\xc3\xa4ter mal", "utf8-password", path, sizeof path, &len);
    openssl_reads(path, "sp\xc3\xa4ter mal", "passwords", "Passwords");
    CHECK_OK(psm_pkcs12_import(conn, p12, len, "sp\xc3\xa4ter mal", &back));
    psm_cert_free(back);
    psm_free(p12);

    psm_cert_free(server);
    psm_cert_free(cert);
}

/* A key that came from a legacy file leaves in the modern format. */
static void legacy_in_modern_out(psm_conn *conn)
{
    char path[4096];
    char alice_pem[4096];
    char copy[4096];
    size_t in_len = 0;
    uint8_t *in = pki_read("alice-legacy.p12", &in_len);
    size_t len = 0;
    uint8_t *p12;
    psm_cert *cert = NULL;

    CHECK_OK(psm_pkcs12_import(conn, in, in_len, "alice pw", &cert));
    p12 = export_to(conn, cert, PASSWORD, "alice-modern", path, sizeof path, &len);
    /* openssl_reads finds the certificate where issue_for_csr would put it. */
    pki_path("alice.pem", alice_pem, sizeof alice_pem);
    issued_pem_path("alice-modern", copy, sizeof copy);
    free(in);
    in = file_read(alice_pem, &in_len);
    file_write(copy, in, in_len);
    openssl_reads(path, PASSWORD, "alice-modern", "Alice p12");
    CHECK(strstr(output, "RC2") == NULL);
    free(in);
    psm_free(p12);
    psm_cert_free(cert);
}

int main(void)
{
    psm_conn *conn = NULL;

    CHECK_OK(psm_connect("pkcs12_export", PSM_CONNECT_NO_SPAWN | PSM_CONNECT_NO_DIALOGS, &conn));
    round_trip(conn, PSM_KEY_EC_P256, PSM_SIG_ECDSA_SHA256, "p256");
    round_trip(conn, PSM_KEY_EC_P384, PSM_SIG_ECDSA_SHA384, "p384");
    round_trip(conn, PSM_KEY_ED25519, PSM_SIG_ED25519, "ed25519");
    round_trip(conn, PSM_KEY_RSA_2048, PSM_SIG_RSA_PSS_SHA256, "rsa2048");
    passwords(conn);
    legacy_in_modern_out(conn);
    psm_conn_free(conn);
    return 0;
}
