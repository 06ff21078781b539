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
    CHECK_EQ(PSM_OK, 0);
    CHECK(flags != 0 && algs[3] != 0 && events[6] != 0);

    CHECK(strlen(version()) > 0);
    CHECK(strlen(result_str(r)) > 0);
    free_fn(NULL);
    CHECK_EQ(conn_fd(NULL), -1);
    return 0;
}
