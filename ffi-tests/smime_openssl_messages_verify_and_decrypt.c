/* smime_openssl_messages_verify_and_decrypt: messages the openssl command
 * line makes, psm reads:
 *  - signed by Alice (RSA) and Carol (ECDSA), opaque, multipart/signed and
 *    detached DER: psm_smime_verify says PSM_OK and gives back the content;
 *    with the right From address too, PSM_ERR_SMIME_ADDRESS_MISMATCH with
 *    another;
 *  - one byte of the signed content flipped (in DER, in multipart/signed,
 *    in detached content): PSM_ERR_SMIME_CONTENT_ALTERED or
 *    PSM_ERR_SMIME_BAD_SIGNATURE, never PSM_OK;
 *  - signed by someone whose root psm does not trust: not PSM_OK
 *    (PSM_ERR_CERT_UNKNOWN_ISSUER), though the signature is intact;
 *  - encrypted with AES-256-CBC and AES-256-GCM, to Alice by RSA v1.5 and
 *    OAEP, to Carol by ECDH: psm_smime_decrypt gives back the content;
 *    signed then encrypted: psm_smime_decrypt_verify gives both verdicts;
 *  - encrypted for Dave, whose key psm does not hold: PSM_ERR_SMIME_NO_KEY;
 *    AES-GCM with its tag altered: PSM_ERR_SMIME_CONTENT_ALTERED. */

#include "check.h"
#include "fixture.h"
#include "smime_fixture.h"

#include <psm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char lf_path[4096];
static char crlf_path[4096];

/* Runs `openssl cms ARGS` that must succeed, writing to fixture file
 * `out_name`, and returns that file's contents (free()). */
static uint8_t *openssl_make(const char *args, const char *out_name, size_t *len)
{
    char path[4096];
    char command[16384];

    fixture_path(out_name, path, sizeof path);
    CHECK((size_t)snprintf(command, sizeof command, "cms -out '%s' %s", path, args) <
          sizeof command);
    openssl_must(command);
    return file_read(path, len);
}

/* psm_smime_verify_from must read the message and give `expected`. */
static psm_smime_result *verify(psm_conn *conn, const uint8_t *msg, size_t len, const char *content,
                                const char *from, psm_result expected)
{
    psm_smime_result *res = NULL;

    CHECK_OK(psm_smime_verify_from(conn, msg, len, (const uint8_t *)content,
                                   content != NULL ? strlen(content) : 0, from, 0, &res));
    CHECK(res != NULL);
    fprintf(stderr, "    verdict %s: %s\n", psm_result_str(psm_smime_result_status(res)),
            psm_smime_result_detail(res));
    CHECK_EQ(psm_smime_result_status(res), expected);
    CHECK_EQ(psm_smime_result_is_signed(res), 1);
    return res;
}

/* The result's content must be the CRLF message. */
static void content_is_message(const psm_smime_result *res)
{
    const uint8_t *content = NULL;
    size_t len = 0;

    CHECK_OK(psm_smime_result_content(res, &content, &len));
    if (len != strlen(smime_message_crlf) || memcmp(content, smime_message_crlf, len) != 0)
        fprintf(stderr, "content (%zu bytes):\n%.*s\n", len, (int)len, (const char *)content);
    CHECK_EQ(len, strlen(smime_message_crlf));
    CHECK(memcmp(content, smime_message_crlf, len) == 0);
}

/* Verifying must find the message altered: never PSM_OK. */
static void verify_altered(psm_conn *conn, const uint8_t *msg, size_t len, const char *content)
{
    psm_smime_result *res = NULL;
    psm_result status;

    CHECK_OK(psm_smime_verify(conn, msg, len, (const uint8_t *)content,
                              content != NULL ? strlen(content) : 0, &res));
    status = psm_smime_result_status(res);
    fprintf(stderr, "    altered: %s: %s\n", psm_result_str(status), psm_smime_result_detail(res));
    CHECK(status == PSM_ERR_SMIME_CONTENT_ALTERED || status == PSM_ERR_SMIME_BAD_SIGNATURE);
    psm_smime_result_free(res);
}

/* Flips the case of the first "Tuesday" in msg (which must hold one). */
static void flip_content_byte(uint8_t *msg, size_t len)
{
    size_t i;

    for (i = 0; i + 7 <= len; i++) {
        if (memcmp(msg + i, "Tuesday", 7) == 0) {
            msg[i] ^= 0x20;
            return;
        }
    }
    CHECK(!"the signed content is in the message as it is");
}

static void signed_messages(psm_conn *conn)
{
    psm_smime_result *res;
    uint8_t *msg;
    size_t len = 0;
    char args[16384];
    char altered[1024];

    fprintf(stderr, "-- opaque, by Alice\n");
    CHECK((size_t)snprintf(args, sizeof args,
                           "-sign -nodetach -signer alice.pem -inkey alice.key -in '%s'",
                           lf_path) < sizeof args);
    msg = openssl_make(args, "opaque.eml", &len);
    res = verify(conn, msg, len, NULL, NULL, PSM_OK);
    content_is_message(res);
    CHECK(strcmp(psm_cert_email(psm_smime_result_signer(res)), "alice@example.test") == 0);
    CHECK(psm_smime_result_signing_time(res) > 0);
    CHECK_EQ(psm_smime_result_chain_len(res), 2);
    psm_smime_result_free(res);
    psm_smime_result_free(verify(conn, msg, len, NULL, "alice@example.test", PSM_OK));
    psm_smime_result_free(
        verify(conn, msg, len, NULL, "carol@example.test", PSM_ERR_SMIME_ADDRESS_MISMATCH));
    free(msg);

    fprintf(stderr, "-- multipart/signed, by Carol\n");
    CHECK((size_t)snprintf(args, sizeof args, "-sign -signer carol.pem -inkey carol.key -in '%s'",
                           lf_path) < sizeof args);
    msg = openssl_make(args, "detached.eml", &len);
    CHECK(strstr((const char *)msg, "multipart/signed") != NULL);
    res = verify(conn, msg, len, NULL, "carol@example.test", PSM_OK);
    content_is_message(res);
    CHECK(strcmp(psm_smime_result_digest(res), "sha256") == 0);
    psm_smime_result_free(res);
    flip_content_byte(msg, len);
    verify_altered(conn, msg, len, NULL);
    free(msg);

    fprintf(stderr, "-- opaque DER, by Carol, content altered\n");
    CHECK(
        (size_t)snprintf(args, sizeof args,
                         "-sign -nodetach -binary -outform DER -signer carol.pem -inkey carol.key "
                         "-in '%s'",
                         crlf_path) < sizeof args);
    msg = openssl_make(args, "opaque.der", &len);
    psm_smime_result_free(verify(conn, msg, len, NULL, NULL, PSM_OK));
    flip_content_byte(msg, len);
    verify_altered(conn, msg, len, NULL);
    free(msg);

    fprintf(stderr, "-- detached DER, by Alice with SHA-384\n");
    CHECK(
        (size_t)snprintf(args, sizeof args,
                         "-sign -binary -md sha384 -outform DER -signer alice.pem -inkey alice.key "
                         "-in '%s'",
                         crlf_path) < sizeof args);
    msg = openssl_make(args, "detached.der", &len);
    res = verify(conn, msg, len, smime_message_crlf, "alice@example.test", PSM_OK);
    CHECK(strcmp(psm_smime_result_digest(res), "sha384") == 0);
    psm_smime_result_free(res);
    CHECK(strlen(smime_message_crlf) < sizeof altered);
    strcpy(altered, smime_message_crlf);
    flip_content_byte((uint8_t *)altered, strlen(altered));
    verify_altered(conn, msg, len, altered);
    free(msg);

    fprintf(stderr, "-- opaque, by a stranger psm does not trust\n");
    CHECK((size_t)snprintf(args, sizeof args,
                           "-sign -nodetach -signer stranger.pem -inkey stranger.key -in '%s'",
                           lf_path) < sizeof args);
    msg = openssl_make(args, "stranger.eml", &len);
    res = verify(conn, msg, len, NULL, NULL, PSM_ERR_CERT_UNKNOWN_ISSUER);
    CHECK(psm_smime_result_signer(res) != NULL);
    psm_smime_result_free(res);
    free(msg);
}

/* psm_smime_decrypt of what `openssl cms ARGS` made must give the message. */
static void decrypts(psm_conn *conn, const char *args, const char *out_name, const char *cipher)
{
    psm_smime_result *res = NULL;
    uint8_t *msg;
    uint8_t *out = NULL;
    size_t out_len = 0;
    size_t len = 0;

    fprintf(stderr, "-- %s\n", out_name);
    msg = openssl_make(args, out_name, &len);
    CHECK_OK(psm_smime_decrypt(conn, msg, len, &out, &out_len));
    CHECK_EQ(out_len, strlen(smime_message_crlf));
    CHECK(memcmp(out, smime_message_crlf, out_len) == 0);
    psm_free(out);

    /* The same through decrypt_verify: an unsigned message, decrypted. */
    CHECK_OK(psm_smime_decrypt_verify(conn, msg, len, NULL, 0, &res));
    CHECK_EQ(psm_smime_result_status(res), PSM_OK);
    CHECK_EQ(psm_smime_result_is_encrypted(res), 1);
    CHECK_EQ(psm_smime_result_is_signed(res), 0);
    CHECK(strcmp(psm_smime_result_cipher(res), cipher) == 0);
    content_is_message(res);
    psm_smime_result_free(res);
    free(msg);
}

static void encrypted_messages(psm_conn *conn)
{
    psm_smime_result *res = NULL;
    uint8_t *msg;
    uint8_t *out = NULL;
    size_t out_len = 0;
    size_t len = 0;
    char args[16384];
    char signed_path[4096];

#define ENCRYPT(options, name, cipher)                                                             \
    do {                                                                                           \
        CHECK((size_t)snprintf(args, sizeof args, "-encrypt -in '%s' %s", lf_path, options) <      \
              sizeof args);                                                                        \
        decrypts(conn, args, name, cipher);                                                        \
    } while (0)

    ENCRYPT("-aes256 alice.pem", "alice-cbc.eml", "EnvelopedData");
    ENCRYPT("-aes-256-gcm alice.pem", "alice-gcm.eml", "AuthEnvelopedData");
    ENCRYPT("-aes256 -recip alice.pem -keyopt rsa_padding_mode:oaep", "alice-oaep.eml",
            "EnvelopedData");
    ENCRYPT("-aes256 carol.pem", "carol-cbc.eml", "EnvelopedData");
    ENCRYPT("-aes-256-gcm -outform DER carol.pem", "carol-gcm.der", "AuthEnvelopedData");
    ENCRYPT("-aes-128-cbc dave.pem carol.pem", "dave-and-carol.eml", "EnvelopedData");
#undef ENCRYPT

    fprintf(stderr, "-- signed by Alice, then encrypted to Carol\n");
    fixture_path("signed-inner.eml", signed_path, sizeof signed_path);
    CHECK((size_t)snprintf(args, sizeof args,
                           "cms -sign -nodetach -signer alice.pem -inkey alice.key -in '%s' "
                           "-out '%s'",
                           lf_path, signed_path) < sizeof args);
    openssl_must(args);
    CHECK((size_t)snprintf(args, sizeof args, "-encrypt -aes-256-gcm -in '%s' carol.pem",
                           signed_path) < sizeof args);
    msg = openssl_make(args, "signed-encrypted.eml", &len);
    CHECK_OK(psm_smime_decrypt_verify(conn, msg, len, "alice@example.test", PSM_SMIME_VERIFY_INNER,
                                      &res));
    fprintf(stderr, "    verdict %s: %s\n", psm_result_str(psm_smime_result_status(res)),
            psm_smime_result_detail(res));
    CHECK_EQ(psm_smime_result_status(res), PSM_OK);
    CHECK_EQ(psm_smime_result_is_encrypted(res), 1);
    CHECK_EQ(psm_smime_result_is_signed(res), 1);
    CHECK(strcmp(psm_cert_email(psm_smime_result_signer(res)), "alice@example.test") == 0);
    content_is_message(res);
    psm_smime_result_free(res);
    res = NULL;
    CHECK_OK(psm_smime_decrypt_verify(conn, msg, len, "dave@example.test", PSM_SMIME_VERIFY_INNER,
                                      &res));
    CHECK_EQ(psm_smime_result_status(res), PSM_ERR_SMIME_ADDRESS_MISMATCH);
    psm_smime_result_free(res);
    free(msg);

    fprintf(stderr, "-- for Dave only\n");
    CHECK((size_t)snprintf(args, sizeof args, "-encrypt -aes256 -in '%s' dave.pem", lf_path) <
          sizeof args);
    msg = openssl_make(args, "dave.eml", &len);
    out = (uint8_t *)&out_len; /* must stay untouched */
    CHECK_EQ(psm_smime_decrypt(conn, msg, len, &out, &out_len), PSM_ERR_SMIME_NO_KEY);
    CHECK(out == (uint8_t *)&out_len);
    free(msg);

    fprintf(stderr, "-- AES-GCM, tag altered\n");
    CHECK((size_t)snprintf(args, sizeof args,
                           "-encrypt -aes-256-gcm -binary -outform DER -in '%s' alice.pem",
                           crlf_path) < sizeof args);
    msg = openssl_make(args, "altered-gcm.der", &len);
    msg[len - 1] ^= 0x01; /* the last byte of the mac, the last field */
    out = NULL;
    CHECK_EQ(psm_smime_decrypt(conn, msg, len, &out, &out_len), PSM_ERR_SMIME_CONTENT_ALTERED);
    CHECK(out == NULL);
    free(msg);
}

int main(void)
{
    smime_people people;
    psm_conn *conn = smime_connect("smime_openssl_messages", &people);

    fixture_path("message.lf", lf_path, sizeof lf_path);
    fixture_path("message.crlf", crlf_path, sizeof crlf_path);
    file_write(lf_path, smime_message_lf, strlen(smime_message_lf));
    file_write(crlf_path, smime_message_crlf, strlen(smime_message_crlf));

    signed_messages(conn);
    encrypted_messages(conn);

    smime_people_free(&people);
    psm_conn_free(conn);
    return 0;
}
