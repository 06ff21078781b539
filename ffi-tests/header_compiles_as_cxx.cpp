// header_compiles_as_cxx: psm.h compiles as C++ (built as C++11 and as
// C++17) with every warning an error: extern "C" linkage, the fixed-size
// psm_result enum, and the signatures the API contract promises. Then it
// links and runs a few calls that need no daemon.

#include <psm.h>
#include <psm.h>

#include "check.h"

#include <cstring>
#include <type_traits>

static_assert(sizeof(psm_result) == 4, "psm_result is 32 bits");
static_assert(std::is_same<decltype(&psm_connect),
                           psm_result (*)(const char *, uint32_t, psm_conn **)>::value,
              "psm_connect signature");
static_assert(
    std::is_same<decltype(&psm_digest), psm_result (*)(psm_conn *, uint32_t, const uint8_t *,
                                                       size_t, uint8_t *, size_t, size_t *)>::value,
    "psm_digest signature");
static_assert(std::is_same<decltype(&psm_stream_finish),
                           psm_result (*)(psm_stream *, uint8_t **, size_t *)>::value,
              "psm_stream_finish signature");
static_assert(std::is_same<decltype(&psm_conn_fd), int32_t (*)(const psm_conn *)>::value,
              "psm_conn_fd signature");
static_assert(std::is_same<decltype(&psm_ssl_connect),
                           psm_result (*)(psm_conn *, const char *, uint16_t, const psm_ssl_opts *,
                                          psm_ssl **)>::value,
              "psm_ssl_connect signature");
static_assert(std::is_same<decltype(&psm_ssl_peer_cert),
                           psm_result (*)(psm_conn *, const psm_ssl *, size_t, psm_cert **)>::value,
              "psm_ssl_peer_cert signature");
static_assert(std::is_same<psm_prompt_cb, psm_result (*)(void *, const psm_prompt *)>::value,
              "psm_prompt_cb type");
static_assert(std::is_same<decltype(&psm_set_prompt_handler),
                           psm_result (*)(psm_conn *, psm_prompt_cb, void *)>::value,
              "psm_set_prompt_handler signature");
static_assert(PSM_TLS_1_2 == 0x0303 && PSM_TLS_1_3 == 0x0304, "TLS versions are the wire numbers");

// A prompt handler written in C++: it must have C linkage to match psm_prompt_cb.
extern "C" psm_result cancel_every_prompt(void *userdata, const psm_prompt *prompt)
{
    (void)userdata;
    (void)prompt;
    return PSM_ERR_USER_CANCELLED;
}

int main()
{
    psm_conn *conn = nullptr;
    psm_result r = PSM_ERR_TIMEOUT;

    switch (r) {
    case PSM_OK:
    case PSM_ERR_DISCONNECTED:
        return 1;
    default:
        break;
    }

    CHECK(std::strlen(psm_version()) > 0);
    CHECK(std::strlen(psm_result_str(PSM_ERR_SMIME_NO_KEY)) > 0);
    psm_free(nullptr);
    psm_conn_free(nullptr);
    CHECK_EQ(psm_conn_fd(nullptr), -1);
    CHECK_EQ(psm_ssl_fd(nullptr), -1);
    CHECK(psm_event_prompt(nullptr) == nullptr);
    CHECK_EQ(psm_set_prompt_handler(nullptr, cancel_every_prompt, nullptr), PSM_ERR_NULL_PARAMETER);
    // Run without a daemon (PSM_FIXTURE_NO_DAEMON=1): nothing to connect to.
    CHECK_EQ(psm_connect("header_compiles_as_cxx", PSM_CONNECT_NO_SPAWN, &conn),
             PSM_ERR_DISCONNECTED);
    CHECK(conn == nullptr);
    return 0;
}
