/* token_password_change_and_removal: psm_token_set_password needs the
 * current password (a wrong one is PSM_ERR_BAD_PASSWORD and changes
 * nothing; a NULL new one would prompt: PSM_ERR_NO_UI); after a change the
 * old password fails and the new one works, also after psmd restarts;
 * keys and SDR blobs made before stay usable (only the wrapping of the
 * token's key changes), and a connection logged in before stays logged
 * in. "" removes the password: the token is unlocked for everyone again. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <signal.h>
#include <string.h>

#define FIRST "first password"
#define SECOND "second password"
#define EXIT_WAIT_MS 10000

static const uint8_t secret[] = "a saved password";
static const uint8_t message[] = "a message to sign";

/* The certificate of the test's key, as the test root issued it. */
static char cert_pem[4096];

static psm_conn *connect_new(void)
{
    psm_conn *conn = NULL;

    CHECK_OK(psm_connect("token_password_change", PSM_CONNECT_NO_SPAWN | PSM_CONNECT_NO_DIALOGS, &conn));
    return conn;
}

/* The blob decrypts to `secret` on conn. */
static void opens(psm_conn *conn, const uint8_t *blob, size_t blob_len)
{
    uint8_t *plain = NULL;
    size_t plain_len = 0;

    CHECK_OK(psm_sdr_decrypt(conn, blob, blob_len, &plain, &plain_len));
    CHECK_EQ(plain_len, sizeof secret);
    CHECK(memcmp(plain, secret, sizeof secret) == 0);
    psm_free(plain);
}

static void signs(psm_conn *conn, const psm_cert *cert)
{
    sign_and_verify(conn, cert, cert_pem, PSM_SIG_ECDSA_SHA256, message, sizeof message);
}

/* A new connection: locked, `wrong` does not open it, `right` does. */
static void password_is(const char *right, const char *wrong, const psm_cert *cert,
                        const uint8_t *blob, size_t blob_len)
{
    psm_conn *conn = connect_new();
    uint8_t *out = NULL;
    size_t out_len = 0;

    CHECK_EQ(psm_sdr_decrypt(conn, blob, blob_len, &out, &out_len), PSM_ERR_LOGIN_REQUIRED);
    if (wrong != NULL)
        CHECK_EQ(psm_token_login(conn, wrong), PSM_ERR_BAD_PASSWORD);
    CHECK_OK(psm_token_login(conn, right));
    opens(conn, blob, blob_len);
    signs(conn, cert);
    psm_conn_free(conn);
}

/* SIGTERM to psmd, then a psm_connect that starts it again on the same profile. */
static psm_conn *restart_daemon(void)
{
    pid_t pid = fixture_daemon_pid();
    psm_conn *conn = NULL;

    CHECK_EQ(kill(pid, SIGTERM), 0);
    CHECK(wait_process_gone(pid, EXIT_WAIT_MS));
    CHECK_OK(psm_connect("token_password_change", PSM_CONNECT_NO_DIALOGS, &conn));
    CHECK(fixture_daemon_pid() != pid);
    return conn;
}

int main(void)
{
    psm_conn *setter = connect_new();
    psm_conn *early = connect_new();
    psm_conn *conn = NULL;
    psm_cert *cert = NULL;
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    psm_result r;

    cert = generate_and_issue(setter, PSM_KEY_EC_P256, "token-password", NULL);
    issued_pem_path("token-password", cert_pem, sizeof cert_pem);
    CHECK_OK(psm_sdr_encrypt(setter, secret, sizeof secret, &blob, &blob_len));

    /* Without a password the old one may be NULL (or ""). */
    CHECK_OK(psm_token_set_password(setter, NULL, FIRST));
    CHECK_OK(psm_token_login(early, FIRST));
    password_is(FIRST, SECOND, cert, blob, blob_len);

    /* Changing it needs the current one; failures change nothing. */
    CHECK_OK(psm_token_login(setter, FIRST));
    CHECK_EQ(psm_token_set_password(setter, SECOND, "third"), PSM_ERR_BAD_PASSWORD);
    CHECK_EQ(psm_token_set_password(setter, "", "third"), PSM_ERR_BAD_PASSWORD);
    CHECK_EQ(psm_token_set_password(setter, FIRST, NULL), PSM_ERR_NO_UI);
    /* NULL for the old password would prompt; logged in or not, psm
     * cannot (the header promises only "may be NULL when the token has no
     * password", not which error this is). */
    r = psm_token_set_password(setter, NULL, "third");
    CHECK(r == PSM_ERR_LOGIN_REQUIRED || r == PSM_ERR_NO_UI);
    password_is(FIRST, "third", cert, blob, blob_len);

    CHECK_OK(psm_token_set_password(setter, FIRST, SECOND));
    password_is(SECOND, FIRST, cert, blob, blob_len);
    /* Logged in before the change: still in (the token's key is the same). */
    opens(early, blob, blob_len);
    signs(early, cert);

    /* The change is on disk: a restarted psmd wants the new password. */
    psm_conn_free(early);
    psm_conn_free(setter);
    early = setter = NULL;
    conn = restart_daemon();
    password_is(SECOND, FIRST, cert, blob, blob_len);

    /* "" removes it: everyone is in again without logging in. */
    CHECK_EQ(psm_token_set_password(conn, FIRST, ""), PSM_ERR_BAD_PASSWORD);
    CHECK_OK(psm_token_set_password(conn, SECOND, ""));
    psm_conn_free(conn);
    conn = connect_new();
    CHECK_OK(psm_token_login(conn, NULL));
    opens(conn, blob, blob_len);
    signs(conn, cert);
    psm_conn_free(conn);

    conn = restart_daemon();
    opens(conn, blob, blob_len);
    signs(conn, cert);
    /* And a password can be set again, with NULL or "" as the old one. */
    CHECK_OK(psm_token_set_password(conn, "", FIRST));
    password_is(FIRST, SECOND, cert, blob, blob_len);

    psm_free(blob);
    psm_cert_free(cert);
    psm_conn_free(conn);
    return 0;
}
