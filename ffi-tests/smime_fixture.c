/* smime_fixture.c: the helpers declared in smime_fixture.h. */

#include "smime_fixture.h"

#include "check.h"
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char smime_message_lf[] = "Content-Type: text/plain; charset=us-ascii\n"
                                "\n"
                                "Hello Bob,\n"
                                "the meeting moves to Tuesday.\n"
                                "From the start of a line, a trailing space: \n"
                                "-- \n"
                                "Alice\n";

const char smime_message_crlf[] = "Content-Type: text/plain; charset=us-ascii\r\n"
                                  "\r\n"
                                  "Hello Bob,\r\n"
                                  "the meeting moves to Tuesday.\r\n"
                                  "From the start of a line, a trailing space: \r\n"
                                  "-- \r\n"
                                  "Alice\r\n";

const char *smime_pki_dir(void)
{
    static char dir[4096];

    if (dir[0] == '\0')
        pki_make("PSM_SMIME_PKI", "smime-pki", dir, sizeof dir);
    return dir;
}

void smime_pki_path(const char *name, char *out, size_t cap)
{
    CHECK((size_t)snprintf(out, cap, "%s/%s", smime_pki_dir(), name) < cap);
}

static psm_cert *import_p12(psm_conn *conn, const char *name)
{
    char path[4096];
    psm_cert *cert = NULL;
    size_t len = 0;
    uint8_t *p12;

    smime_pki_path(name, path, sizeof path);
    p12 = file_read(path, &len);
    CHECK_OK(psm_pkcs12_import(conn, p12, len, SMIME_P12_PASSWORD, &cert));
    CHECK(cert != NULL);
    CHECK_EQ(psm_cert_has_private_key(cert), 1);
    free(p12);
    return cert;
}

psm_conn *smime_connect(const char *app_name, smime_people *people)
{
    char path[4096];
    psm_conn *conn = NULL;
    uint8_t *pem;
    size_t len = 0;

    CHECK_OK(psm_connect_to(fixture_socket(), app_name, PSM_CONNECT_NO_SPAWN, &conn));
    smime_pki_path("root.pem", path, sizeof path);
    pem = file_read(path, &len);
    people->root = NULL;
    CHECK_OK(
        psm_cert_import(conn, pem, len, "S/MIME test root", PSM_TRUST_CA_EMAIL, &people->root));
    free(pem);
    people->alice = import_p12(conn, "alice.p12");
    people->carol = import_p12(conn, "carol.p12");
    CHECK(strcmp(psm_cert_email(people->alice), "alice@example.test") == 0);
    CHECK(strcmp(psm_cert_email(people->carol), "carol@example.test") == 0);
    return conn;
}

void smime_people_free(smime_people *people)
{
    psm_cert_free(people->root);
    psm_cert_free(people->alice);
    psm_cert_free(people->carol);
}

int openssl_run(const char *args, char *out, size_t cap)
{
    char command[16384];

    CHECK((size_t)snprintf(command, sizeof command, "cd '%s' && openssl %s 2>&1", smime_pki_dir(),
                           args) < sizeof command);
    return command_run(command, out, cap);
}

void openssl_must(const char *args)
{
    char output[8192];
    int status = openssl_run(args, output, sizeof output);

    if (status != 0)
        fprintf(stderr, "`openssl %s` (exit %d):\n%s\n", args, status, output);
    CHECK_EQ(status, 0);
}

int file_equals(const char *path, const void *data, size_t len)
{
    size_t got_len = 0;
    uint8_t *got = file_read(path, &got_len);
    int same = got_len == len && memcmp(got, data, len) == 0;

    if (!same) {
        size_t i = 0;
        while (i < len && i < got_len && got[i] == ((const uint8_t *)data)[i])
            i++;
        fprintf(stderr, "%s: %zu bytes, expected %zu; they differ from byte %zu\n", path, got_len,
                len, i);
        if (got_len < 4096)
            fprintf(stderr, "---- it holds:\n%.*s\n----\n", (int)got_len, (const char *)got);
    }
    free(got);
    return same;
}

void cms_print_mentions(const char *path, const char *form, const char *needle)
{
    static char output[256 * 1024];
    char args[8192];
    int status;

    CHECK((size_t)snprintf(args, sizeof args, "cms -cmsout -print -inform %s -in '%s'", form,
                           path) < sizeof args);
    status = openssl_run(args, output, sizeof output);
    if (status != 0 || strstr(output, needle) == NULL)
        fprintf(stderr, "`openssl %s` (exit %d) does not mention \"%s\":\n%s\n", args, status,
                needle, output);
    CHECK_EQ(status, 0);
    CHECK(strstr(output, needle) != NULL);
}
