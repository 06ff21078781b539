/* header_compiles_as_c99: psm.h compiles as strict C99 with every warning an
 * error, twice (include guard), and declares the functions with the
 * signatures the API contract promises: each assignment below stops
 * compiling if one drifts. Then it links and runs a few calls that need no
 * daemon. */

#include <psm.h>
#include <psm.h>

#include "check.h"

#include <string.h>

typedef char psm_result_is_32_bits[sizeof(psm_result) == 4 ? 1 : -1];

/* A psm_prompt_cb: the typedef must accept a plain C function. */
static psm_result answer_nothing(void *userdata, const psm_prompt *prompt)
{
    (void)userdata;
    (void)prompt;
    return PSM_ERR_USER_CANCELLED;
}

int main(void)
{
    const char *(*last_error)(void) = psm_last_error;
    const char *(*result_str)(uint32_t) = psm_result_str;
    const char *(*version)(void) = psm_version;
    void (*free_fn)(void *) = psm_free;
    psm_result (*connect_fn)(const char *, uint32_t, psm_conn **) = psm_connect;
    psm_result (*connect_to)(const char *, const char *, uint32_t, psm_conn **) = psm_connect_to;
    void (*conn_free)(psm_conn *) = psm_conn_free;
    int32_t (*conn_fd)(const psm_conn *) = psm_conn_fd;
    psm_result (*ping)(psm_conn *) = psm_ping;
    psm_result (*status_json)(psm_conn *, char **) = psm_status_json;
    psm_result (*random_bytes)(psm_conn *, uint8_t *, size_t) = psm_random;
    psm_result (*digest)(psm_conn *, uint32_t, const uint8_t *, size_t, uint8_t *, size_t,
                         size_t *) = psm_digest;
    psm_result (*digest_stream)(psm_conn *, uint32_t, psm_stream **) = psm_digest_stream;
    int32_t (*stream_fd)(const psm_stream *) = psm_stream_fd;
    psm_result (*stream_finish)(psm_stream *, uint8_t **, size_t *) = psm_stream_finish;
    void (*stream_free)(psm_stream *) = psm_stream_free;
    psm_result (*next_event)(psm_conn *, int32_t, psm_event **) = psm_next_event;
    uint32_t (*event_kind)(const psm_event *) = psm_event_kind;
    const char *(*event_dialog_url)(const psm_event *) = psm_event_dialog_url;
    void (*event_dialog_size)(const psm_event *, uint32_t *, uint32_t *) = psm_event_dialog_size;
    void (*event_free)(psm_event *) = psm_event_free;
    /* TLS channels and prompts. */
    psm_result (*ssl_opts_new)(psm_ssl_opts **) = psm_ssl_opts_new;
    void (*ssl_opts_free)(psm_ssl_opts *) = psm_ssl_opts_free;
    psm_result (*ssl_opts_set_alpn)(psm_ssl_opts *, const char *const *, size_t) =
        psm_ssl_opts_set_alpn;
    psm_result (*ssl_opts_set_client_cert)(psm_ssl_opts *, const char *) =
        psm_ssl_opts_set_client_cert;
    psm_result (*ssl_opts_set_min_version)(psm_ssl_opts *, uint16_t) = psm_ssl_opts_set_min_version;
    psm_result (*ssl_opts_set_proxy)(psm_ssl_opts *, const char *, uint16_t) =
        psm_ssl_opts_set_proxy;
    psm_result (*ssl_opts_set_timeout)(psm_ssl_opts *, uint32_t) = psm_ssl_opts_set_timeout;
    psm_result (*ssl_connect)(psm_conn *, const char *, uint16_t, const psm_ssl_opts *,
                              psm_ssl **) = psm_ssl_connect;
    psm_result (*ssl_wrap_fd)(psm_conn *, int32_t, const char *, const psm_ssl_opts *, psm_ssl **) =
        psm_ssl_wrap_fd;
    psm_result (*ssl_accept_fd)(psm_conn *, int32_t, const psm_cert *, const psm_ssl_opts *,
                                psm_ssl **) = psm_ssl_accept_fd;
    psm_result (*tls_open_plain)(psm_conn *, const char *, uint16_t, psm_ssl **) =
        psm_tls_open_plain;
    psm_result (*tls_open_plain_opts)(psm_conn *, const char *, uint16_t, const psm_ssl_opts *,
                                      psm_ssl **) = psm_tls_open_plain_opts;
    psm_result (*ssl_step_up)(psm_conn *, psm_ssl *) = psm_ssl_step_up;
    int32_t (*ssl_fd)(const psm_ssl *) = psm_ssl_fd;
    psm_result (*ssl_info_json)(psm_conn *, const psm_ssl *, char **) = psm_ssl_info_json;
    psm_result (*ssl_peer_cert)(psm_conn *, const psm_ssl *, size_t, psm_cert **) =
        psm_ssl_peer_cert;
    void (*ssl_free)(psm_ssl *) = psm_ssl_free;
    const psm_prompt *(*event_prompt)(const psm_event *) = psm_event_prompt;
    psm_result (*set_prompt_handler)(psm_conn *, psm_prompt_cb, void *) = psm_set_prompt_handler;
    psm_result (*set_prompt_events)(psm_conn *, int) = psm_set_prompt_events;
    uint32_t (*prompt_kind)(const psm_prompt *) = psm_prompt_kind;
    uint64_t (*prompt_id)(const psm_prompt *) = psm_prompt_id;
    const char *(*prompt_message)(const psm_prompt *) = psm_prompt_message;
    const char *(*prompt_details_json)(const psm_prompt *) = psm_prompt_details_json;
    size_t (*prompt_choice_count)(const psm_prompt *) = psm_prompt_choice_count;
    const char *(*prompt_choice)(const psm_prompt *, size_t) = psm_prompt_choice;
    psm_result (*prompt_answer)(psm_conn *, const psm_prompt *, const char *) = psm_prompt_answer;
    psm_result (*prompt_answer_id)(psm_conn *, uint64_t, const char *) = psm_prompt_answer_id;
    psm_prompt_cb cb = answer_nothing;
    uint16_t versions[] = {PSM_TLS_1_2, PSM_TLS_1_3};
    uint32_t prompt_kinds[] = {PSM_PROMPT_SERVER_TRUST, PSM_PROMPT_CLIENT_CERT,
                               PSM_PROMPT_PASSWORD};
    psm_result tls_results[] = {PSM_ERR_DNS, PSM_ERR_CONNECT, PSM_ERR_TLS_HANDSHAKE,
                                PSM_ERR_TLS_ALERT, PSM_ERR_TLS_TRUNCATED};
    uint32_t flags = PSM_CONNECT_NO_SPAWN | PSM_CONNECT_NO_DIALOGS;
    uint32_t algs[] = {PSM_HASH_SHA1, PSM_HASH_SHA256, PSM_HASH_SHA384, PSM_HASH_SHA512};
    uint32_t events[] = {PSM_EVENT_DIALOG,        PSM_EVENT_DIALOG_DONE,   PSM_EVENT_PROMPT,
                         PSM_EVENT_STORE_CHANGED, PSM_EVENT_TOKEN_CHANGED, PSM_EVENT_POLICY_CHANGED,
                         PSM_EVENT_SHUTDOWN};
    psm_result r = PSM_ERR_NULL_PARAMETER;

    CHECK(last_error && result_str && version && free_fn && connect_fn && connect_to && conn_free);
    CHECK(conn_fd && ping && status_json && random_bytes && digest && digest_stream && stream_fd);
    CHECK(stream_finish && stream_free && next_event && event_kind && event_dialog_url);
    CHECK(event_dialog_size && event_free);
    CHECK(ssl_opts_new && ssl_opts_free && ssl_opts_set_alpn && ssl_opts_set_client_cert);
    CHECK(ssl_opts_set_min_version && ssl_opts_set_proxy && ssl_opts_set_timeout && ssl_connect);
    CHECK(ssl_wrap_fd && ssl_accept_fd && tls_open_plain && tls_open_plain_opts && ssl_step_up);
    CHECK(ssl_fd && ssl_info_json && ssl_peer_cert && ssl_free && event_prompt);
    CHECK(set_prompt_handler && set_prompt_events && prompt_kind && prompt_id && prompt_message);
    CHECK(prompt_details_json && prompt_choice_count && prompt_choice && prompt_answer);
    CHECK(prompt_answer_id && cb);
    CHECK_EQ(versions[0], 0x0303);
    CHECK_EQ(versions[1], 0x0304);
    CHECK(prompt_kinds[0] != prompt_kinds[1] && prompt_kinds[1] != prompt_kinds[2]);
    CHECK_EQ(tls_results[4], 204);
    CHECK_EQ(ssl_fd(NULL), -1);
    CHECK(event_prompt(NULL) == NULL);
    CHECK_EQ(prompt_kind(NULL), 0);
    CHECK(prompt_choice(NULL, 0) == NULL);
    CHECK_EQ(PSM_OK, 0);
    CHECK(flags != 0 && algs[3] != 0 && events[6] != 0);

    CHECK(strlen(version()) > 0);
    CHECK(strlen(result_str(r)) > 0);
    free_fn(NULL);
    CHECK_EQ(conn_fd(NULL), -1);
    return 0;
}
