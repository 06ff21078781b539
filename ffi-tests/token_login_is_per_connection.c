/* token_login_is_per_connection: a fresh token has no password and is
 * unlocked for everyone (a login with or without a password succeeds).
 * Once psm_token_set_password gives it one, every other connection must
 * log in before it uses a private key, SDR or PKCS#12
 * (PSM_ERR_LOGIN_REQUIRED), while the one that set it stays logged in; psm_token_login(NULL) cannot prompt
 * and says so, a wrong password is PSM_ERR_BAD_PASSWORD after a delay, the
 * right one unlocks that connection only, and psm_token_logout locks it
 * again. Certificates need no login. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PASSWORD "correct horse"
#define LOCKED PSM_ERR_LOGIN_REQUIRED

/* A recognisable non-NULL value an untouched output keeps. */
#define UNTOUCHED_P12 ((uint8_t *)&sentinel)

static uint8_t sentinel;

/* psmd's penalty for a wrong password is 1 s; allow for clock granularity. */
#define WRONG_PASSWORD_MIN_MS 900

static const uint8_t message[] = "a message to sign";

static long long now_ms(void)
{
    struct timespec ts;

    CHECK_EQ(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static psm_result try_sign(psm_conn *conn, const psm_cert *cert)
{
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    psm_result r =
        psm_key_sign(conn, cert, PSM_SIG_ECDSA_SHA256, message, sizeof message, &sig, &sig_len);

    CHECK((r == PSM_OK) == (sig != NULL));
    psm_free(sig);
    return r;
}

static psm_result try_sdr(psm_conn *conn)
{
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    psm_result r = psm_sdr_encrypt(conn, message, sizeof message, &blob, &blob_len);

    psm_free(blob);
    return r;
}

/* Every key operation of a connection that has not logged in fails with
 * PSM_ERR_LOGIN_REQUIRED; certificate operations work. */
static void locked_out(psm_conn *conn, const psm_cert *cert)
{
    uint8_t *csr = NULL;
    size_t csr_len = 0;
    uint8_t *p12 = UNTOUCHED_P12;
    size_t p12_len = 0;
    size_t file_len = 0;
    uint8_t *file = pki_read("alice.p12", &file_len);
    psm_cert *out = NULL;
    psm_cert *found = NULL;

    CHECK_EQ(try_sign(conn, cert), LOCKED);
    CHECK(strstr(psm_last_error(), "log in") != NULL);
    CHECK_EQ(try_sdr(conn), LOCKED);
    CHECK_EQ(psm_key_generate(conn, PSM_KEY_EC_P256, "CN=Locked Out", NULL, &csr, &csr_len),
             LOCKED);
    CHECK(csr == NULL);
    CHECK_EQ(psm_pkcs12_export(conn, cert, "pw", &p12, &p12_len), LOCKED);
    CHECK(p12 == UNTOUCHED_P12);
    CHECK_EQ(psm_pkcs12_import(conn, file, file_len, "alice pw", &out), LOCKED);
    CHECK(out == NULL);
    free(file);

    found = cert_must_find(conn, psm_cert_nickname(cert));
    CHECK_EQ(psm_cert_has_private_key(found), 1);
    psm_cert_free(found);
}

static void unlocked(psm_conn *conn, const psm_cert *cert)
{
    CHECK_OK(try_sign(conn, cert));
    CHECK_OK(try_sdr(conn));
}

int main(void)
{
    psm_conn *setter = NULL;
    psm_conn *a = NULL;
    psm_conn *b = NULL;
    psm_cert *cert = NULL;
    long long started;

    CHECK_OK(psm_connect("token_login_setter", PSM_CONNECT_NO_SPAWN | PSM_CONNECT_NO_DIALOGS, &setter));
    CHECK_OK(psm_connect("token_login_a", PSM_CONNECT_NO_SPAWN | PSM_CONNECT_NO_DIALOGS, &a));
    CHECK_OK(psm_connect("token_login_b", PSM_CONNECT_NO_SPAWN | PSM_CONNECT_NO_DIALOGS, &b));
    cert = generate_and_issue(setter, PSM_KEY_EC_P256, "token-login", NULL);

    /* No password yet: everyone is in, whatever they log in with. */
    unlocked(a, cert);
    unlocked(b, cert);
    CHECK_OK(psm_token_login(a, NULL));
    CHECK_OK(psm_token_login(a, "anything at all"));
    CHECK_OK(psm_token_logout(a));
    unlocked(a, cert); /* a logout cannot lock a token without a password */

    /* psm cannot ask for the new password yet. */
    CHECK_EQ(psm_token_set_password(setter, NULL, NULL), PSM_ERR_NO_UI);
    unlocked(b, cert);
    CHECK_OK(psm_token_set_password(setter, NULL, PASSWORD));

    /* Locked for everyone but the connection that set it, which proved it
     * knows both passwords; its logout locks it too. */
    locked_out(a, cert);
    locked_out(b, cert);
    unlocked(setter, cert);
    CHECK_OK(psm_token_logout(setter));
    locked_out(setter, cert);

    /* NULL would prompt: not possible, so still locked, and at once. */
    started = now_ms();
    CHECK_EQ(psm_token_login(a, NULL), LOCKED);
    CHECK(now_ms() - started < WRONG_PASSWORD_MIN_MS);
    CHECK_EQ(try_sdr(a), LOCKED);

    /* A wrong password costs time (against guessing) and unlocks nothing. */
    started = now_ms();
    CHECK_EQ(psm_token_login(a, "Correct horse"), PSM_ERR_BAD_PASSWORD);
    CHECK(now_ms() - started >= WRONG_PASSWORD_MIN_MS);
    CHECK_EQ(psm_token_login(a, ""), PSM_ERR_BAD_PASSWORD);
    locked_out(a, cert);

    /* The right one unlocks this connection and no other. */
    CHECK_OK(psm_token_login(a, PASSWORD));
    unlocked(a, cert);
    locked_out(b, cert);
    locked_out(setter, cert);

    /* Each connection logs in on its own; one logging out leaves the other. */
    CHECK_OK(psm_token_login(b, PASSWORD));
    unlocked(b, cert);
    CHECK_OK(psm_token_logout(b));
    locked_out(b, cert);
    unlocked(a, cert);
    CHECK_OK(psm_token_logout(b)); /* logging out twice is harmless */

    /* A second login, even a wrong one, does not undo the first. */
    CHECK_OK(psm_token_login(a, PASSWORD));
    unlocked(a, cert);
    CHECK_EQ(psm_token_login(a, "wrong"), PSM_ERR_BAD_PASSWORD);
    unlocked(a, cert);

    CHECK_OK(psm_token_logout(a));
    locked_out(a, cert);

    psm_cert_free(cert);
    psm_conn_free(b);
    psm_conn_free(a);
    psm_conn_free(setter);
    return 0;
}
