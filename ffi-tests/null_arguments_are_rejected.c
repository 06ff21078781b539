/* null_arguments_are_rejected: every pointer argument of every function is
 * NULL-checked (PSM_ERR_NULL_PARAMETER, outputs untouched, objects still
 * usable); getters and free functions take NULL harmlessly; psm_result_str
 * has a text for every code, known or not; unknown psm_connect flags are
 * refused. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <string.h>

static const uint32_t codes[] = {
    PSM_OK,
    PSM_ERR_NULL_PARAMETER,
    PSM_ERR_PANIC,
    PSM_ERR_INVALID_ARGUMENT,
    PSM_ERR_BUFFER_TOO_SMALL,
    PSM_ERR_IO,
    PSM_ERR_PROTOCOL,
    PSM_ERR_DISCONNECTED,
    PSM_ERR_TIMEOUT,
    PSM_ERR_DAEMON_START,
    PSM_ERR_PERMISSION_DENIED,
    PSM_ERR_POLICY,
    PSM_ERR_NOT_FOUND,
    PSM_ERR_EXISTS,
    PSM_ERR_DECODE,
    PSM_ERR_UNSUPPORTED,
    PSM_ERR_BAD_PASSWORD,
    PSM_ERR_LOGIN_REQUIRED,
    PSM_ERR_NO_UI,
    PSM_ERR_USER_CANCELLED,
    PSM_ERR_DIALOG_TIMEOUT,
    PSM_ERR_INTERNAL,
    PSM_ERR_BUSY,
    PSM_ERR_CERT_UNKNOWN_ISSUER,
    PSM_ERR_CERT_EXPIRED,
    PSM_ERR_CERT_NOT_YET_VALID,
    PSM_ERR_CERT_NAME_MISMATCH,
    PSM_ERR_CERT_REVOKED,
    PSM_ERR_CERT_BAD_SIGNATURE,
    PSM_ERR_CERT_WRONG_USAGE,
    PSM_ERR_CERT_DISTRUSTED,
    PSM_ERR_CERT_INVALID,
    PSM_ERR_DNS,
    PSM_ERR_CONNECT,
    PSM_ERR_TLS_HANDSHAKE,
    PSM_ERR_TLS_ALERT,
    PSM_ERR_SMIME_BAD_SIGNATURE,
    PSM_ERR_SMIME_NO_KEY,
};

static void every_code_has_a_text(void)
{
    static const uint32_t unknown[] = {23, 99, 109, 204, 302, 9999, 0xffffffffu};
    size_t n = sizeof codes / sizeof codes[0];
    size_t i;
    size_t j;

    for (i = 0; i < n; i++) {
        const char *s = psm_result_str(codes[i]);
        CHECK(s != NULL && s[0] != '\0');
        /* Distinct codes, distinct texts: a message never hides which one it was. */
        for (j = 0; j < i; j++)
            CHECK(strcmp(s, psm_result_str(codes[j])) != 0);
    }
    for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = psm_result_str(unknown[i]);
        CHECK(s != NULL && s[0] != '\0');
    }
}

static void getters_and_frees_take_null(void)
{
    uint32_t w = 7;
    uint32_t h = 7;

    CHECK_EQ(psm_conn_fd(NULL), -1);
    CHECK_EQ(psm_stream_fd(NULL), -1);
    CHECK_EQ(psm_event_kind(NULL), 0);
    CHECK(psm_event_dialog_url(NULL) == NULL);
    psm_event_dialog_size(NULL, &w, &h);
    CHECK_EQ(w, 0);
    CHECK_EQ(h, 0);
    psm_event_dialog_size(NULL, NULL, NULL);
    psm_free(NULL);
    psm_conn_free(NULL);
    psm_event_free(NULL);
    psm_stream_free(NULL);
    CHECK(psm_version() != NULL);
    CHECK(psm_last_error() != NULL);
}

static void connect_checks_its_arguments(void)
{
    psm_conn *conn = NULL;
    const char *sock = fixture_socket();

    CHECK_NULL_REJECTED(psm_connect(NULL, 0, &conn));
    CHECK_NULL_REJECTED(psm_connect("null_arguments", 0, NULL));
    CHECK_NULL_REJECTED(psm_connect_to(NULL, "null_arguments", 0, &conn));
    CHECK_NULL_REJECTED(psm_connect_to(sock, NULL, 0, &conn));
    CHECK_NULL_REJECTED(psm_connect_to(sock, "null_arguments", 0, NULL));
    CHECK(conn == NULL);

    CHECK_EQ(psm_connect("null_arguments", 1u << 7, &conn), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_connect("null_arguments", 0xffffffffu, &conn), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_connect_to(sock, "null_arguments", 1u << 31, &conn), PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_connect("\xff\xfe not UTF-8", PSM_CONNECT_NO_SPAWN, &conn),
             PSM_ERR_INVALID_ARGUMENT);
    CHECK(conn == NULL);

    CHECK_OK(psm_connect_to(sock, "null_arguments", PSM_CONNECT_NO_SPAWN, &conn));
    psm_conn_free(conn);
}

static void calls_check_their_arguments(psm_conn *conn)
{
    static const uint8_t abc[] = "abc";
    char *json = NULL;
    uint8_t buf[64];
    size_t len = 99;
    psm_event *ev = NULL;

    CHECK_NULL_REJECTED(psm_ping(NULL));
    CHECK_NULL_REJECTED(psm_status_json(NULL, &json));
    CHECK_NULL_REJECTED(psm_status_json(conn, NULL));
    CHECK(json == NULL);

    CHECK_NULL_REJECTED(psm_random(NULL, buf, sizeof buf));
    CHECK_NULL_REJECTED(psm_random(conn, NULL, sizeof buf));

    CHECK_NULL_REJECTED(psm_digest(NULL, PSM_HASH_SHA256, abc, 3, buf, sizeof buf, &len));
    CHECK_NULL_REJECTED(psm_digest(conn, PSM_HASH_SHA256, NULL, 3, buf, sizeof buf, &len));
    CHECK_NULL_REJECTED(psm_digest(conn, PSM_HASH_SHA256, abc, 3, NULL, sizeof buf, &len));
    CHECK_NULL_REJECTED(psm_digest(conn, PSM_HASH_SHA256, abc, 3, buf, sizeof buf, NULL));
    CHECK_EQ(len, 99);

    CHECK_NULL_REJECTED(psm_next_event(NULL, 0, &ev));
    CHECK_NULL_REJECTED(psm_next_event(conn, 0, NULL));
    CHECK(ev == NULL);

    CHECK_OK(psm_ping(conn)); /* none of that hurt the connection */
}

static void streams_check_their_arguments(psm_conn *conn)
{
    psm_stream *s = NULL;
    uint8_t *out = NULL;
    size_t len = 99;

    CHECK_NULL_REJECTED(psm_digest_stream(NULL, PSM_HASH_SHA256, &s));
    CHECK_NULL_REJECTED(psm_digest_stream(conn, PSM_HASH_SHA256, NULL));
    CHECK(s == NULL);

    CHECK_OK(psm_digest_stream(conn, PSM_HASH_SHA256, &s));
    write_all(psm_stream_fd(s), "abc", 3);
    CHECK_NULL_REJECTED(psm_stream_finish(NULL, &out, &len));
    CHECK_NULL_REJECTED(psm_stream_finish(s, NULL, &len));
    CHECK_NULL_REJECTED(psm_stream_finish(s, &out, NULL));
    CHECK(out == NULL && len == 99);

    /* The rejected calls did not consume the stream. */
    CHECK(psm_stream_fd(s) >= 0);
    CHECK_OK(psm_stream_finish(s, &out, &len));
    CHECK_EQ(len, 32);
    CHECK_EQ(out[0], 0xba); /* SHA-256("abc") = ba7816bf... */
    psm_free(out);
    psm_stream_free(s);
}

int main(void)
{
    psm_conn *conn = NULL;

    every_code_has_a_text();
    getters_and_frees_take_null();
    connect_checks_its_arguments();

    CHECK_OK(psm_connect("null_arguments", PSM_CONNECT_NO_SPAWN, &conn));
    calls_check_their_arguments(conn);
    streams_check_their_arguments(conn);
    psm_conn_free(conn);
    return 0;
}
