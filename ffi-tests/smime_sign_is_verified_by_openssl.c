/* smime_sign_is_verified_by_openssl: what psm_smime_sign makes, `openssl
 * cms -verify -purpose smimesign` accepts against the test root, and the
 * content it recovers is the message with CRLF line ends (RFC 8551's
 * canonical form), byte for byte. Every form: an opaque S/MIME entity,
 * multipart/signed (detached), DER opaque and detached, without the
 * certificates; with SHA-256, SHA-384, SHA-512 and RSA-PSS for Alice's RSA
 * key, ECDSA for Carol's P-256 key. openssl's print of the structure shows
 * the algorithm the flags asked for, and psm_smime_verify agrees. */

#include "check.h"
#include "fixture.h"
#include "smime_fixture.h"

#include <psm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sign_case {
    const char *label;
    int carol; /* 0: Alice (RSA), 1: Carol (EC) */
    uint32_t flags;
    const char *mentions; /* in `openssl cms -cmsout -print` */
    const char *digest;   /* psm_smime_result_digest */
};

static const struct sign_case cases[] = {
    {"alice-opaque", 0, 0, "rsaEncryption", "sha256"},
    {"alice-detached", 0, PSM_SMIME_DETACHED, "algorithm: sha256", "sha256"},
    {"alice-der", 0, PSM_SMIME_DER, "pkcs7-signedData", "sha256"},
    {"alice-der-detached", 0, PSM_SMIME_DER | PSM_SMIME_DETACHED, "pkcs7-signedData", "sha256"},
    {"alice-no-certs", 0, PSM_SMIME_DER | PSM_SMIME_NO_CERTS, "pkcs7-signedData", "sha256"},
    {"alice-sha384", 0, PSM_SMIME_SHA384, "algorithm: sha384", "sha384"},
    {"alice-sha512-detached", 0, PSM_SMIME_SHA512 | PSM_SMIME_DETACHED, "algorithm: sha512",
     "sha512"},
    {"alice-pss", 0, PSM_SMIME_RSA_PSS, "rsassaPss", "sha256"},
    {"alice-pss-sha384-der-detached", 0,
     PSM_SMIME_RSA_PSS | PSM_SMIME_SHA384 | PSM_SMIME_DER | PSM_SMIME_DETACHED, "rsassaPss",
     "sha384"},
    {"carol-opaque", 1, 0, "ecdsa-with-SHA256", "sha256"},
    {"carol-detached", 1, PSM_SMIME_DETACHED, "ecdsa-with-SHA256", "sha256"},
    {"carol-sha384-der", 1, PSM_SMIME_SHA384 | PSM_SMIME_DER, "ecdsa-with-SHA384", "sha384"},
    {"carol-der-detached", 1, PSM_SMIME_DER | PSM_SMIME_DETACHED, "ecdsa-with-SHA256", "sha256"},
};

#define CASES (sizeof cases / sizeof cases[0])

static void run(psm_conn *conn, const smime_people *people, const struct sign_case *c)
{
    const psm_cert *signer = c->carol ? people->carol : people->alice;
    int der = (c->flags & PSM_SMIME_DER) != 0;
    int detached = (c->flags & PSM_SMIME_DETACHED) != 0;
    char name[256];
    char signed_path[4096];
    char recovered_path[4096];
    char content_path[4096];
    char args[16384];
    uint8_t *out = NULL;
    size_t out_len = 0;
    psm_smime_result *res = NULL;
    const uint8_t *content = NULL;
    size_t content_len = 0;
    psm_result r;

    fprintf(stderr, "-- %s\n", c->label);
    r = psm_smime_sign(conn, signer, (const uint8_t *)smime_message_lf, strlen(smime_message_lf),
                       c->flags, &out, &out_len);
    if (r != PSM_OK)
        fprintf(stderr, "psm_smime_sign, case %s\n", c->label);
    CHECK_OK(r);
    CHECK(out != NULL && out_len > 0);
    if (!der)
        CHECK(strstr((const char *)out, detached ? "multipart/signed" : "smime-type=signed-data") !=
                  NULL ||
              !"the S/MIME entity says what it is");

    snprintf(name, sizeof name, "%s.%s", c->label, der ? "der" : "eml");
    fixture_path(name, signed_path, sizeof signed_path);
    snprintf(name, sizeof name, "%s.recovered", c->label);
    fixture_path(name, recovered_path, sizeof recovered_path);
    fixture_path("content.crlf", content_path, sizeof content_path);
    file_write(signed_path, out, out_len);
    file_write(content_path, smime_message_crlf, strlen(smime_message_crlf));

    /* A detached DER signature covers the content given beside it, as is
     * (-binary: openssl must not canonicalize it a second time). */
    CHECK((size_t)snprintf(args, sizeof args,
                           "cms -verify -CAfile root.pem -purpose smimesign -inform %s -in '%s' "
                           "-out '%s'%s%s%s%s%s",
                           der ? "DER" : "SMIME", signed_path, recovered_path,
                           der ? " -binary" : "", der && detached ? " -content '" : "",
                           der && detached ? content_path : "", der && detached ? "'" : "",
                           (c->flags & PSM_SMIME_NO_CERTS) ? " -certfile alice.pem" : "") <
          sizeof args);
    openssl_must(args);
    CHECK(file_equals(recovered_path, smime_message_crlf, strlen(smime_message_crlf)));
    cms_print_mentions(signed_path, der ? "DER" : "SMIME", c->mentions);

    /* psm reads its own output the same way. */
    r = psm_smime_verify(conn, out, out_len,
                         der && detached ? (const uint8_t *)smime_message_crlf : NULL,
                         der && detached ? strlen(smime_message_crlf) : 0, &res);
    CHECK_OK(r);
    if (psm_smime_result_status(res) != PSM_OK)
        fprintf(stderr, "psm_smime_verify of %s: %s\n", c->label, psm_smime_result_detail(res));
    CHECK_EQ(psm_smime_result_status(res), PSM_OK);
    CHECK_EQ(psm_smime_result_is_signed(res), 1);
    CHECK(strcmp(psm_smime_result_digest(res), c->digest) == 0);
    CHECK(psm_smime_result_signer(res) != NULL);
    CHECK(strcmp(psm_cert_sha256_hex(psm_smime_result_signer(res)), psm_cert_sha256_hex(signer)) ==
          0);
    CHECK(psm_smime_result_signing_time(res) > 0);
    CHECK_OK(psm_smime_result_content(res, &content, &content_len));
    if (!(der && detached)) {
        CHECK_EQ(content_len, strlen(smime_message_crlf));
        CHECK(memcmp(content, smime_message_crlf, content_len) == 0);
    }
    psm_smime_result_free(res);
    psm_free(out);
}

int main(void)
{
    smime_people people;
    psm_conn *conn = smime_connect("smime_sign", &people);
    size_t i;

    for (i = 0; i < CASES; i++)
        run(conn, &people, &cases[i]);

    smime_people_free(&people);
    psm_conn_free(conn);
    return 0;
}
