/* key_certutil_end_to_end: the key commands of the psm-certutil example,
 * run as a user would: keygen writes a PEM request openssl verifies (and
 * would write byte for byte the same); the certificate openssl issues for
 * it imports with the key; sign makes signatures openssl verifies;
 * export-p12 writes a file only its owner can read and openssl can open;
 * import-p12 takes it (or any .p12) back; passwd sets, changes and removes
 * the token password, and a --password or --password-file before the
 * command logs in for it. Exit status 0 on success, 1 on failure, 2 for a
 * command line it does not understand. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define OK 0
#define FAILED 1
#define USAGE 2

static char output[64 * 1024];

/* certutil_run into `output`. */
static const char *run(int status, const char *needle, const char *args)
{
    return certutil_run(status, needle, args, output, sizeof output);
}

/* Runs a shell command in the PKI directory; returns its exit status. */
static int shell(const char *command_in_pki)
{
    char command[8192];
    static char out[64 * 1024];
    int status;

    CHECK((size_t)snprintf(command, sizeof command, "cd '%s' && %s 2>&1", pki_dir(),
                           command_in_pki) < sizeof command);
    status = command_run(command, out, sizeof out);
    if (status != 0)
        fprintf(stderr, "`%s` (exit %d):\n%s\n", command, status, out);
    return status;
}

static void write_pki_file(const char *name, const char *text)
{
    char path[4096];

    pki_path(name, path, sizeof path);
    file_write(path, text, strlen(text));
}

/* openssl verifies the signature in the PKI's file `sig` of file `data`
 * by the key of certificate `cert`. */
static int verifies(const char *cert, uint32_t alg, const char *data, const char *sig)
{
    char cert_path[4096];
    size_t data_len = 0;
    size_t sig_len = 0;
    uint8_t *d = pki_read(data, &data_len);
    uint8_t *s = pki_read(sig, &sig_len);
    int ok;

    pki_path(cert, cert_path, sizeof cert_path);
    ok = openssl_verifies(cert_path, alg, d, data_len, s, sig_len);
    free(s);
    free(d);
    return ok;
}

static void command_line_errors(void)
{
    run(OK, "usage: psm-certutil COMMAND", "-h");
    CHECK(strstr(output, "psm-certutil --password PW | --password-file F COMMAND") != NULL);
    CHECK(strstr(output, "keygen") && strstr(output, "import-p12") &&
          strstr(output, "export-p12") && strstr(output, "login") && strstr(output, "passwd") &&
          strstr(output, "sign"));
    CHECK(strstr(output, "visible to other users") != NULL);
    run(OK, "usage:", "--password x -h");

    run(USAGE, "unknown option", "--passphrase x list");
    run(USAGE, "no value", "--password");
    run(USAGE, "usage:", "--password x");
    run(FAILED, "no-such-file", "--password-file no-such-file list");

    run(USAGE, NULL, "keygen");
    run(USAGE, NULL, "keygen --type p256 --subject CN=x");
    run(USAGE, NULL, "keygen --subject CN=x --out x.csr");
    run(USAGE, "p521", "keygen --type p521 --subject CN=x --out x.csr");
    run(USAGE, NULL, "keygen --type p256 --subject CN=x --out x.csr extra");
    run(USAGE, NULL, "import-p12");
    run(USAGE, NULL, "import-p12 a.p12 b.p12");
    run(FAILED, "no-such-file", "import-p12 a.p12 --password-file no-such-file");
    run(USAGE, NULL, "export-p12 x");
    run(USAGE, NULL, "export-p12 --out x.p12");
    run(USAGE, NULL, "login extra");
    run(USAGE, "--new", "passwd");
    run(USAGE, "--new", "passwd --old x");
    run(USAGE, NULL, "passwd --new x --bogus");
    run(USAGE, NULL, "sign x --in ca.cnf --out x.sig");
    run(USAGE, "dsa-sha1", "sign x --alg dsa-sha1 --in ca.cnf --out x.sig");
    run(USAGE, NULL, "sign x --alg ecdsa-sha256 --out x.sig");
    run(USAGE, NULL, "sign x --alg ecdsa-sha256 --in ca.cnf");
}

/* keygen TYPE into NAME.csr: openssl verifies it and writes the same PEM. */
static void keygen(const char *type, const char *name, const char *extra)
{
    char args[1024];
    char command[1024];

    snprintf(args, sizeof args, "keygen --type %s --subject 'CN=%s,O=PSM Tests' --out %s.csr%s",
             type, name, name, extra);
    run(OK, "generated a", args);
    CHECK(strstr(output, name) != NULL);
    snprintf(command, sizeof command,
             "openssl req -in %s.csr -noout -verify && "
             "openssl req -in %s.csr -out %s.again.csr && cmp %s.csr %s.again.csr",
             name, name, name, name, name);
    CHECK_EQ(shell(command), 0);
}

/* The test root issues NAME.pem for NAME.csr, with the request's SANs. */
static void issue(const char *name)
{
    char command[1024];

    snprintf(command, sizeof command,
             "openssl x509 -req -in %s.csr -CA root.pem -CAkey root.key -CAserial cli.srl "
             "-CAcreateserial -days 30 -copy_extensions copy -out %s.pem",
             name, name);
    CHECK_EQ(shell(command), 0);
}

static void keys_and_signatures(psm_conn *conn)
{
    psm_cert *cert = NULL;
    const char *list;

    run(FAILED, psm_result_str(PSM_ERR_INVALID_ARGUMENT),
        "keygen --type p256 --subject 'Alice' --out bad.csr");
    run(FAILED, psm_result_str(PSM_ERR_INVALID_ARGUMENT),
        "keygen --type p256 --subject CN=x --san uri:x --out bad.csr");

    /* Every key type, to try every base64 padding. */
    keygen("p256", "cli-p256",
           " --nickname 'CLI Key' --san dns:cli.example.test --san ip:192.0.2.7"
           " --san email:cli@example.test");
    CHECK_EQ(shell("openssl req -in cli-p256.csr -noout -text | grep -q "
                   "'DNS:cli.example.test, IP Address:192.0.2.7, email:cli@example.test'"),
             0);
    keygen("p384", "cli-p384", "");
    keygen("ed25519", "cli-ed25519", "");
    keygen("rsa2048", "cli-rsa2048", " --nickname 'CLI RSA'");

    issue("cli-p256");
    issue("cli-rsa2048");
    run(OK, "imported \"CLI Key\"", "import cli-p256.pem");
    run(OK, "imported \"CLI RSA\"", "import cli-rsa2048.pem");
    list = run(OK, NULL, "list --mine");
    CHECK(strstr(list, "\nCLI Key ") != NULL && strstr(list, "\nCLI RSA ") != NULL);
    CHECK(strstr(list, "u,u,u") != NULL);
    run(OK, "Private key:  yes\n", "show 'CLI Key'");
    cert = cert_must_find(conn, "CLI Key");
    CHECK_EQ(psm_cert_has_private_key(cert), 1);
    psm_cert_free(cert);

    run(OK, "signed ca.cnf with \"CLI Key\"",
        "sign 'CLI Key' --alg ecdsa-sha256 --in ca.cnf --out ca.cnf.sig");
    CHECK(verifies("cli-p256.pem", PSM_SIG_ECDSA_SHA256, "ca.cnf", "ca.cnf.sig"));
    CHECK(!verifies("cli-p256.pem", PSM_SIG_ECDSA_SHA256, "root.pem", "ca.cnf.sig"));
    run(OK, NULL, "sign 'CLI Key' --alg ecdsa-sha384 --in root.der --out root.der.sig");
    CHECK(verifies("cli-p256.pem", PSM_SIG_ECDSA_SHA384, "root.der", "root.der.sig"));
    run(OK, NULL, "sign 'CLI RSA' --alg rsa-pss-sha256 --in root.der --out rsa.sig");
    CHECK(verifies("cli-rsa2048.pem", PSM_SIG_RSA_PSS_SHA256, "root.der", "rsa.sig"));
    run(OK, NULL, "sign 'CLI RSA' --alg rsa-pkcs1-sha256 --in root.der --out rsa.sig");
    CHECK(verifies("cli-rsa2048.pem", PSM_SIG_RSA_PKCS1_SHA256, "root.der", "rsa.sig"));
    write_pki_file("empty", "");
    run(OK, "signed empty", "sign 'CLI Key' --alg ecdsa-sha256 --in empty --out e.sig");
    CHECK(verifies("cli-p256.pem", PSM_SIG_ECDSA_SHA256, "empty", "e.sig"));

    run(FAILED, psm_result_str(PSM_ERR_INVALID_ARGUMENT),
        "sign 'CLI Key' --alg rsa-pss-sha256 --in ca.cnf --out x.sig");
    run(FAILED, psm_result_str(PSM_ERR_NOT_FOUND),
        "sign nobody --alg ecdsa-sha256 --in ca.cnf --out x.sig");
    run(OK, NULL, "import server.pem");
    run(FAILED, psm_result_str(PSM_ERR_NOT_FOUND),
        "sign www.example.test --alg ecdsa-sha256 --in ca.cnf --out x.sig");
    run(FAILED, "no-such-file", "sign 'CLI Key' --alg ecdsa-sha256 --in no-such-file --out x.sig");
    run(FAILED, "no-such-dir", "sign 'CLI Key' --alg ecdsa-sha256 --in ca.cnf --out no-such-dir/x");
}

static void pkcs12(psm_conn *conn)
{
    char path[4096];
    struct stat st;
    psm_cert *cert = NULL;

    write_pki_file("p12.pw", "export pw\n");
    /* Even over a file anyone could read, the key ends up in one only we can. */
    pki_path("cli.p12", path, sizeof path);
    write_pki_file("cli.p12", "old contents");
    CHECK_EQ(chmod(path, 0644), 0);
    run(OK, "exported \"CLI Key\" and its private key to cli.p12",
        "export-p12 'CLI Key' --out cli.p12 --password-file p12.pw");
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);
    CHECK_EQ(shell("openssl pkcs12 -in cli.p12 -info -nodes -passin 'pass:export pw' | "
                   "grep -q 'BEGIN PRIVATE KEY'"),
             0);
    run(FAILED, psm_result_str(PSM_ERR_NO_UI), "export-p12 'CLI Key' --out nopw.p12");
    run(FAILED, psm_result_str(PSM_ERR_NOT_FOUND),
        "export-p12 www.example.test --out server.p12 --password x");

    /* Gone, then back from the file. */
    run(OK, "and its private key", "delete 'CLI Key' --with-key");
    run(FAILED, psm_result_str(PSM_ERR_NOT_FOUND),
        "sign 'CLI Key' --alg ecdsa-sha256 --in ca.cnf --out x.sig");
    run(FAILED, psm_result_str(PSM_ERR_BAD_PASSWORD), "import-p12 cli.p12 --password wrong");
    run(FAILED, psm_result_str(PSM_ERR_NO_UI), "import-p12 cli.p12");
    run(FAILED, psm_result_str(PSM_ERR_DECODE), "import-p12 ca.cnf --password x");
    run(OK, "imported \"CLI Key\"", "import-p12 cli.p12 --password 'export pw'");
    CHECK(strstr(output, "with its private key") != NULL);
    run(OK, NULL, "sign 'CLI Key' --alg ecdsa-sha256 --in ca.cnf --out ca.cnf.sig");
    CHECK(verifies("cli-p256.pem", PSM_SIG_ECDSA_SHA256, "ca.cnf", "ca.cnf.sig"));

    /* Files openssl wrote, the legacy kind too. */
    write_pki_file("alice.pw", "alice pw\r\nthe second line is not part of it\n");
    run(OK, "imported \"Alice p12\"", "import-p12 alice-legacy.p12 --password-file alice.pw");
    CHECK(strstr(output, "with its private key") != NULL);
    cert = cert_must_find(conn, "Alice p12");
    CHECK_EQ(psm_cert_has_private_key(cert), 1);
    psm_cert_free(cert);
    run(OK, NULL, "sign 'Alice p12' --alg ecdsa-sha256 --in ca.cnf --out alice.sig");
    CHECK(verifies("alice.pem", PSM_SIG_ECDSA_SHA256, "ca.cnf", "alice.sig"));
    run(OK, "imported", "import-p12 alice-nopw.p12 --password ''");
}

static void passwords(void)
{
    const char *sign = "sign 'CLI Key' --alg ecdsa-sha256 --in ca.cnf --out ca.cnf.sig";
    char args[512];

    run(OK, "the token has no password", "login");
    run(OK, "the token has no password", "login --password anything");
    write_pki_file("token.pw", "first pw\n");
    write_pki_file("wrong.pw", "First pw\n");
    run(OK, "the token password is set", "passwd --new-file token.pw");

    /* Locked now: key commands need a login in the same process. */
    run(FAILED, psm_result_str(PSM_ERR_LOGIN_REQUIRED), sign);
    run(FAILED, psm_result_str(PSM_ERR_LOGIN_REQUIRED),
        "keygen --type p256 --subject CN=locked --out locked.csr");
    run(FAILED, psm_result_str(PSM_ERR_LOGIN_REQUIRED),
        "export-p12 'CLI Key' --out locked.p12 --password x");
    run(FAILED, psm_result_str(PSM_ERR_LOGIN_REQUIRED), "login");
    run(FAILED, psm_result_str(PSM_ERR_BAD_PASSWORD), "login --password 'First pw'");
    run(OK, "logged in", "login --password 'first pw'");
    run(OK, "logged in", "login --password-file token.pw");
    run(OK, "logged in", "--password-file token.pw login");

    run(FAILED, psm_result_str(PSM_ERR_BAD_PASSWORD), "--password-file wrong.pw list");
    CHECK(strstr(output, "logging in to the token failed") != NULL);
    run(OK, NULL, "list"); /* certificates need no login */
    snprintf(args, sizeof args, "--password 'first pw' %s", sign);
    run(OK, "signed", args);
    CHECK(verifies("cli-p256.pem", PSM_SIG_ECDSA_SHA256, "ca.cnf", "ca.cnf.sig"));
    snprintf(args, sizeof args, "--password-file token.pw %s", sign);
    run(OK, "signed", args);
    run(OK, "generated",
        "--password-file token.pw keygen --type ed25519 --subject CN=unlocked "
        "--out unlocked.csr");

    /* Changing it: the old one from --old or from the login before the command. */
    run(FAILED, psm_result_str(PSM_ERR_BAD_PASSWORD), "passwd --old-file wrong.pw --new second");
    run(OK, "changed", "--password-file token.pw passwd --new 'second pw'");
    snprintf(args, sizeof args, "--password-file token.pw %s", sign);
    run(FAILED, psm_result_str(PSM_ERR_BAD_PASSWORD), args);
    snprintf(args, sizeof args, "--password 'second pw' %s", sign);
    run(OK, "signed", args);

    /* Removed: no login needed any more. */
    run(OK, "removed", "passwd --old 'second pw' --new ''");
    run(OK, "signed", sign);
    run(OK, "the token has no password", "login");
}

int main(void)
{
    psm_conn *conn = NULL;

    CHECK_OK(psm_connect("key_certutil", PSM_CONNECT_NO_SPAWN, &conn));
    command_line_errors();
    keys_and_signatures(conn);
    pkcs12(conn);
    passwords();
    psm_conn_free(conn);
    return 0;
}
