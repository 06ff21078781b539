/* smime_encrypt_is_decrypted_by_openssl: what psm_smime_encrypt makes,
 * `openssl cms -decrypt -recip CERT -inkey KEY` decrypts back to the
 * message with CRLF line ends, for every recipient and only for them:
 * AES-256-GCM AuthEnvelopedData by default and AES-256-CBC EnvelopedData
 * with PSM_SMIME_CBC; RSA key transport (v1.5, and OAEP with
 * PSM_SMIME_RSA_OAEP) to Alice, ECDH to Carol, both at once; S/MIME and
 * DER. openssl's print of the structure shows the algorithms the flags
 * asked for; Dave, who is no recipient, cannot decrypt. */

#include "check.h"
#include "fixture.h"
#include "smime_fixture.h"

#include <psm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALICE 1
#define CAROL 2

struct encrypt_case {
    const char *label;
    int to; /* ALICE and/or CAROL */
    uint32_t flags;
    const char *mentions[2]; /* in `openssl cms -cmsout -print` (NULL: none) */
};

static const struct encrypt_case cases[] = {
    {"alice-gcm", ALICE, 0, {"id-smime-ct-authEnvelopedData", "aes-256-gcm"}},
    {"alice-cbc", ALICE, PSM_SMIME_CBC, {"pkcs7-envelopedData", "aes-256-cbc"}},
    {"alice-oaep-gcm", ALICE, PSM_SMIME_RSA_OAEP, {"rsaesOaep", "aes-256-gcm"}},
    {"alice-oaep-cbc-der",
     ALICE,
     PSM_SMIME_RSA_OAEP | PSM_SMIME_CBC | PSM_SMIME_DER,
     {"rsaesOaep", "aes-256-cbc"}},
    {"carol-gcm", CAROL, 0, {"id-ecPublicKey", "aes-256-gcm"}},
    {"carol-cbc-der", CAROL, PSM_SMIME_CBC | PSM_SMIME_DER, {"id-ecPublicKey", "aes-256-cbc"}},
    {"both-gcm", ALICE | CAROL, 0, {"rsaEncryption", "id-ecPublicKey"}},
    {"both-cbc-der", ALICE | CAROL, PSM_SMIME_CBC | PSM_SMIME_DER, {"aes-256-cbc", NULL}},
};

#define CASES (sizeof cases / sizeof cases[0])

/* `openssl cms -decrypt` of path as `who` (alice, carol, dave); returns its
 * exit status, the content in out_path. */
static int openssl_decrypt(const char *path, int der, const char *who, const char *out_path)
{
    char args[16384];
    char output[8192];
    int status;

    CHECK(
        (size_t)snprintf(args, sizeof args,
                         "cms -decrypt -inform %s -in '%s' -recip %s.pem -inkey %s.key -out '%s'%s",
                         der ? "DER" : "SMIME", path, who, who, out_path,
                         der ? " -binary" : "") < sizeof args);
    status = openssl_run(args, output, sizeof output);
    fprintf(stderr, "`openssl %s`: exit %d\n%s", args, status, output);
    return status;
}

static void run(psm_conn *conn, const smime_people *people, const struct encrypt_case *c)
{
    const psm_cert *recipients[2];
    size_t n = 0;
    int der = (c->flags & PSM_SMIME_DER) != 0;
    char name[256];
    char path[4096];
    char decrypted[4096];
    uint8_t *out = NULL;
    size_t out_len = 0;
    size_t i;
    psm_result r;

    fprintf(stderr, "-- %s\n", c->label);
    if (c->to & ALICE)
        recipients[n++] = people->alice;
    if (c->to & CAROL)
        recipients[n++] = people->carol;
    r = psm_smime_encrypt(conn, recipients, n, (const uint8_t *)smime_message_lf,
                          strlen(smime_message_lf), c->flags, &out, &out_len);
    CHECK_OK(r);
    CHECK(out != NULL && out_len > 0);
    /* Nothing of the message is readable in what psm made. */
    CHECK(strstr((const char *)out, "Tuesday") == NULL);
    if (!der)
        CHECK(strstr((const char *)out, c->flags & PSM_SMIME_CBC
                                            ? "smime-type=enveloped-data"
                                            : "smime-type=authEnveloped-data") != NULL);

    snprintf(name, sizeof name, "%s.%s", c->label, der ? "der" : "eml");
    fixture_path(name, path, sizeof path);
    snprintf(name, sizeof name, "%s.decrypted", c->label);
    fixture_path(name, decrypted, sizeof decrypted);
    file_write(path, out, out_len);
    for (i = 0; i < 2; i++) {
        if (c->mentions[i] != NULL)
            cms_print_mentions(path, der ? "DER" : "SMIME", c->mentions[i]);
    }

    if (c->to & ALICE) {
        CHECK_EQ(openssl_decrypt(path, der, "alice", decrypted), 0);
        CHECK(file_equals(decrypted, smime_message_crlf, strlen(smime_message_crlf)));
    }
    if (c->to & CAROL) {
        CHECK_EQ(openssl_decrypt(path, der, "carol", decrypted), 0);
        CHECK(file_equals(decrypted, smime_message_crlf, strlen(smime_message_crlf)));
    }
    /* Dave is no recipient: his key opens nothing. */
    CHECK(openssl_decrypt(path, der, "dave", decrypted) != 0);
    if (!(c->to & CAROL))
        CHECK(openssl_decrypt(path, der, "carol", decrypted) != 0);
    psm_free(out);
}

int main(void)
{
    smime_people people;
    psm_conn *conn = smime_connect("smime_encrypt", &people);
    size_t i;

    for (i = 0; i < CASES; i++)
        run(conn, &people, &cases[i]);

    smime_people_free(&people);
    psm_conn_free(conn);
    return 0;
}
