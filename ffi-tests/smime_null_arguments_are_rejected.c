/* smime_null_arguments_are_rejected: every pointer argument of the
 * psm_smime_* functions is NULL-checked (PSM_ERR_NULL_PARAMETER, a message
 * naming NULL, outputs untouched), including an entry of a recipient list
 * and a buffer that is NULL with a length; NULL where the header gives it
 * a meaning works (no From address, no detached content, an empty
 * message); the result getters and free functions take NULL. */

#include "check.h"
#include "fixture.h"
#include "smime_fixture.h"

#include <psm.h>

#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

/* A recognisable non-NULL value an untouched output keeps. */
#define UNTOUCHED ((void *)&sentinel)

static int sentinel;

static const uint8_t msg[] = "Content-Type: text/plain\r\n\r\nhello\r\n";
#define MSG_LEN (sizeof msg - 1)

static void sign_and_encrypt(psm_conn *conn, const psm_cert *alice)
{
    const psm_cert *to[1] = {alice};
    const psm_cert *null_entry[2] = {alice, NULL};
    uint8_t *out = UNTOUCHED;
    size_t len = 99;

    CHECK_NULL_REJECTED(psm_smime_sign(NULL, alice, msg, MSG_LEN, 0, &out, &len));
    CHECK_NULL_REJECTED(psm_smime_sign(conn, NULL, msg, MSG_LEN, 0, &out, &len));
    CHECK_NULL_REJECTED(psm_smime_sign(conn, alice, NULL, MSG_LEN, 0, &out, &len));
    CHECK_NULL_REJECTED(psm_smime_sign(conn, alice, msg, MSG_LEN, 0, NULL, &len));
    CHECK_NULL_REJECTED(psm_smime_sign(conn, alice, msg, MSG_LEN, 0, &out, NULL));

    CHECK_NULL_REJECTED(psm_smime_encrypt(NULL, to, 1, msg, MSG_LEN, 0, &out, &len));
    CHECK_NULL_REJECTED(psm_smime_encrypt(conn, NULL, 1, msg, MSG_LEN, 0, &out, &len));
    CHECK_NULL_REJECTED(psm_smime_encrypt(conn, null_entry, 2, msg, MSG_LEN, 0, &out, &len));
    CHECK_NULL_REJECTED(psm_smime_encrypt(conn, to, 1, NULL, MSG_LEN, 0, &out, &len));
    CHECK_NULL_REJECTED(psm_smime_encrypt(conn, to, 1, msg, MSG_LEN, 0, NULL, &len));
    CHECK_NULL_REJECTED(psm_smime_encrypt(conn, to, 1, msg, MSG_LEN, 0, &out, NULL));

    CHECK_NULL_REJECTED(psm_smime_decrypt(NULL, msg, MSG_LEN, &out, &len));
    CHECK_NULL_REJECTED(psm_smime_decrypt(conn, NULL, MSG_LEN, &out, &len));
    CHECK_NULL_REJECTED(psm_smime_decrypt(conn, msg, MSG_LEN, NULL, &len));
    CHECK_NULL_REJECTED(psm_smime_decrypt(conn, msg, MSG_LEN, &out, NULL));

    CHECK_NULL_REJECTED(psm_smime_certs_only(NULL, to, 1, 0, &out, &len));
    CHECK_NULL_REJECTED(psm_smime_certs_only(conn, NULL, 1, 0, &out, &len));
    CHECK_NULL_REJECTED(psm_smime_certs_only(conn, null_entry, 2, 0, &out, &len));
    CHECK_NULL_REJECTED(psm_smime_certs_only(conn, to, 1, 0, NULL, &len));
    CHECK_NULL_REJECTED(psm_smime_certs_only(conn, to, 1, 0, &out, NULL));
    CHECK(out == UNTOUCHED && len == 99);

    /* An empty message is a message (NULL with length 0). */
    out = NULL;
    CHECK_OK(psm_smime_sign(conn, alice, NULL, 0, PSM_SMIME_BINARY, &out, &len));
    CHECK(out != NULL && len > 0);
    psm_free(out);
}

static void verify_and_decrypt(psm_conn *conn, const psm_cert *alice)
{
    psm_smime_result *res = UNTOUCHED;
    psm_cert_list *certs = UNTOUCHED;
    uint8_t *signed_msg = NULL;
    size_t signed_len = 0;

    CHECK_NULL_REJECTED(psm_smime_verify(NULL, msg, MSG_LEN, NULL, 0, &res));
    CHECK_NULL_REJECTED(psm_smime_verify(conn, NULL, MSG_LEN, NULL, 0, &res));
    CHECK_NULL_REJECTED(psm_smime_verify(conn, msg, MSG_LEN, NULL, 5, &res));
    CHECK_NULL_REJECTED(psm_smime_verify(conn, msg, MSG_LEN, NULL, 0, NULL));

    CHECK_NULL_REJECTED(psm_smime_verify_from(NULL, msg, MSG_LEN, NULL, 0, "a@b", 0, &res));
    CHECK_NULL_REJECTED(psm_smime_verify_from(conn, NULL, MSG_LEN, NULL, 0, "a@b", 0, &res));
    CHECK_NULL_REJECTED(psm_smime_verify_from(conn, msg, MSG_LEN, NULL, 5, "a@b", 0, &res));
    CHECK_NULL_REJECTED(psm_smime_verify_from(conn, msg, MSG_LEN, NULL, 0, "a@b", 0, NULL));

    CHECK_NULL_REJECTED(psm_smime_decrypt_verify(NULL, msg, MSG_LEN, NULL, 0, &res));
    CHECK_NULL_REJECTED(psm_smime_decrypt_verify(conn, NULL, MSG_LEN, NULL, 0, &res));
    CHECK_NULL_REJECTED(psm_smime_decrypt_verify(conn, msg, MSG_LEN, NULL, 0, NULL));

    CHECK_NULL_REJECTED(psm_smime_read_certs(NULL, msg, MSG_LEN, &certs));
    CHECK_NULL_REJECTED(psm_smime_read_certs(conn, NULL, MSG_LEN, &certs));
    CHECK_NULL_REJECTED(psm_smime_read_certs(conn, msg, MSG_LEN, NULL));
    CHECK(res == UNTOUCHED && certs == UNTOUCHED);

    /* NULL detached content and NULL From: an opaque message, no address check. */
    CHECK_OK(psm_smime_sign(conn, alice, msg, MSG_LEN, 0, &signed_msg, &signed_len));
    res = NULL;
    CHECK_OK(psm_smime_verify_from(conn, signed_msg, signed_len, NULL, 0, NULL, 0, &res));
    CHECK_EQ(psm_smime_result_status(res), PSM_OK);
    psm_smime_result_free(res);
    psm_free(signed_msg);
}

static void streams(psm_conn *conn, const psm_cert *alice)
{
    const psm_cert *to[1] = {alice};
    const psm_cert *null_entry[1] = {NULL};
    psm_smime_result *res = UNTOUCHED;
    char path[4096];
    int in;
    int out;

    fixture_path("null-args.in", path, sizeof path);
    file_write(path, msg, MSG_LEN);
    in = open(path, O_RDONLY);
    CHECK(in >= 0);
    out = open("/dev/null", O_WRONLY);
    CHECK(out >= 0);

    CHECK_NULL_REJECTED(psm_smime_sign_stream(NULL, alice, 0, in, out));
    CHECK_NULL_REJECTED(psm_smime_sign_stream(conn, NULL, 0, in, out));

    CHECK_NULL_REJECTED(psm_smime_encrypt_stream(NULL, to, 1, 0, in, out));
    CHECK_NULL_REJECTED(psm_smime_encrypt_stream(conn, NULL, 1, 0, in, out));
    CHECK_NULL_REJECTED(psm_smime_encrypt_stream(conn, null_entry, 1, 0, in, out));

    CHECK_NULL_REJECTED(psm_smime_verify_stream(NULL, in, out, NULL, 0, NULL, 0, &res));
    CHECK_NULL_REJECTED(psm_smime_verify_stream(conn, in, out, NULL, 5, NULL, 0, &res));
    CHECK_NULL_REJECTED(psm_smime_verify_stream(conn, in, out, NULL, 0, NULL, 0, NULL));

    CHECK_NULL_REJECTED(psm_smime_decrypt_stream(NULL, in, out, NULL, 0, &res));
    CHECK_NULL_REJECTED(psm_smime_decrypt_stream(conn, in, out, NULL, 0, NULL));
    CHECK(res == UNTOUCHED);

    /* Nothing was read: the input is still all there for a real call. */
    CHECK_OK(psm_smime_sign_stream(conn, alice, 0, in, out));
    close(in);
    close(out);
}

static void result_getters(void)
{
    const uint8_t *data = UNTOUCHED;
    size_t len = 99;

    CHECK_EQ(psm_smime_result_status(NULL), PSM_ERR_NULL_PARAMETER);
    CHECK_EQ(psm_smime_result_status_now(NULL), PSM_ERR_NULL_PARAMETER);
    CHECK(psm_smime_result_detail(NULL) != NULL && psm_smime_result_detail(NULL)[0] == '\0');
    CHECK(psm_smime_result_signer(NULL) == NULL);
    CHECK_EQ(psm_smime_result_chain_len(NULL), 0);
    CHECK(psm_smime_result_chain_get(NULL, 0) == NULL);
    CHECK_EQ(psm_smime_result_signing_time(NULL), 0);
    CHECK_EQ(psm_smime_result_is_signed(NULL), 0);
    CHECK_EQ(psm_smime_result_is_encrypted(NULL), 0);
    CHECK(psm_smime_result_digest(NULL) != NULL && psm_smime_result_digest(NULL)[0] == '\0');
    CHECK(psm_smime_result_cipher(NULL) != NULL && psm_smime_result_cipher(NULL)[0] == '\0');
    CHECK_NULL_REJECTED(psm_smime_result_content(NULL, &data, &len));
    CHECK(data == UNTOUCHED && len == 99);
    psm_smime_result_free(NULL);
}

static void result_content_outputs(psm_conn *conn, const psm_cert *alice)
{
    psm_smime_result *res = NULL;
    uint8_t *signed_msg = NULL;
    size_t signed_len = 0;
    const uint8_t *data = UNTOUCHED;
    size_t len = 99;

    CHECK_OK(psm_smime_sign(conn, alice, msg, MSG_LEN, 0, &signed_msg, &signed_len));
    CHECK_OK(psm_smime_verify(conn, signed_msg, signed_len, NULL, 0, &res));
    CHECK_NULL_REJECTED(psm_smime_result_content(res, NULL, &len));
    CHECK_NULL_REJECTED(psm_smime_result_content(res, &data, NULL));
    CHECK(data == UNTOUCHED && len == 99);
    CHECK(psm_smime_result_chain_get(res, psm_smime_result_chain_len(res)) == NULL);
    CHECK_OK(psm_smime_result_content(res, &data, &len));
    CHECK_EQ(len, MSG_LEN);
    CHECK(memcmp(data, msg, len) == 0);
    psm_smime_result_free(res);
    psm_free(signed_msg);
}

int main(void)
{
    smime_people people;
    psm_conn *conn = smime_connect("smime_null_arguments", &people);

    sign_and_encrypt(conn, people.alice);
    verify_and_decrypt(conn, people.alice);
    streams(conn, people.alice);
    result_getters();
    result_content_outputs(conn, people.alice);
    /* The connection is still good after all that. */
    CHECK_OK(psm_ping(conn));

    smime_people_free(&people);
    psm_conn_free(conn);
    return 0;
}
