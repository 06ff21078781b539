/* sdr_round_trips_and_rejects_altered_blobs: psm_sdr_decrypt gives back
 * what psm_sdr_encrypt sealed, from 0 bytes to the 64 KiB maximum, on any
 * connection to the token; the blob hides the secret and differs every
 * time. A blob with any bit changed, cut short, extended, or not a blob at
 * all is PSM_ERR_DECODE; a secret over 64 KiB is PSM_ERR_INVALID_ARGUMENT.
 * Failures leave the outputs untouched. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SDR (64 * 1024)

/* A recognisable non-NULL value an untouched output keeps. */
#define UNTOUCHED ((uint8_t *)&sentinel)

static uint8_t sentinel;

static uint8_t *seal(psm_conn *conn, const uint8_t *data, size_t len, size_t *blob_len)
{
    uint8_t *blob = NULL;

    CHECK_OK(psm_sdr_encrypt(conn, data, len, &blob, blob_len));
    CHECK(blob != NULL);
    CHECK(*blob_len > len); /* a nonce and a tag at least */
    return blob;
}

static void opens_to(psm_conn *conn, const uint8_t *blob, size_t blob_len, const uint8_t *data,
                     size_t len)
{
    uint8_t *plain = NULL;
    size_t plain_len = 99;

    CHECK_OK(psm_sdr_decrypt(conn, blob, blob_len, &plain, &plain_len));
    CHECK(plain != NULL); /* even for an empty secret: a buffer to psm_free */
    CHECK_EQ(plain_len, len);
    CHECK(len == 0 || memcmp(plain, data, len) == 0);
    psm_free(plain);
}

static void does_not_open(psm_conn *conn, const uint8_t *blob, size_t blob_len)
{
    uint8_t *plain = UNTOUCHED;
    size_t plain_len = 99;

    CHECK_EQ(psm_sdr_decrypt(conn, blob, blob_len, &plain, &plain_len), PSM_ERR_DECODE);
    CHECK(psm_last_error()[0] != '\0');
    CHECK(plain == UNTOUCHED && plain_len == 99);
}

static int contains(const uint8_t *hay, size_t hay_len, const uint8_t *needle, size_t len)
{
    size_t i;

    for (i = 0; len > 0 && i + len <= hay_len; i++)
        if (memcmp(hay + i, needle, len) == 0)
            return 1;
    return 0;
}

static void round_trips(psm_conn *conn, psm_conn *other, const uint8_t *data)
{
    static const size_t sizes[] = {0, 1, 16, 17, 1000, MAX_SDR - 1, MAX_SDR};
    size_t i;

    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t blob_len = 0;
        size_t again_len = 0;
        uint8_t *blob = seal(conn, data, sizes[i], &blob_len);
        uint8_t *again = seal(conn, data, sizes[i], &again_len);

        fprintf(stderr, "%zu bytes: a blob of %zu\n", sizes[i], blob_len);
        opens_to(conn, blob, blob_len, data, sizes[i]);
        opens_to(other, blob, blob_len, data, sizes[i]); /* the token's, not the connection's */
        opens_to(conn, again, again_len, data, sizes[i]);
        CHECK(again_len != blob_len || memcmp(again, blob, blob_len) != 0);
        if (sizes[i] >= 16)
            CHECK(!contains(blob, blob_len, data, 16));
        psm_free(again);
        psm_free(blob);
    }
}

static void altered(psm_conn *conn, const uint8_t *data)
{
    size_t blob_len = 0;
    uint8_t *blob = seal(conn, data, 100, &blob_len);
    uint8_t *copy = malloc(blob_len + 1);
    size_t i;
    int bit;

    CHECK(copy != NULL);
    /* Every bit of every byte: the whole blob is authenticated. */
    for (i = 0; i < blob_len; i++) {
        for (bit = 0; bit < 8; bit += 3) {
            memcpy(copy, blob, blob_len);
            copy[i] ^= (uint8_t)(1u << bit);
            does_not_open(conn, copy, blob_len);
        }
    }
    memcpy(copy, blob, blob_len);
    does_not_open(conn, copy, blob_len - 1);
    does_not_open(conn, copy + 1, blob_len - 1);
    copy[blob_len] = 0;
    does_not_open(conn, copy, blob_len + 1);
    does_not_open(conn, copy, 0);
    does_not_open(conn, NULL, 0);
    does_not_open(conn, data, blob_len);
    opens_to(conn, copy, blob_len, data, 100); /* the copy itself is fine */
    free(copy);
    psm_free(blob);
}

static void too_large(psm_conn *conn, const uint8_t *data)
{
    uint8_t *blob = UNTOUCHED;
    size_t blob_len = 99;

    CHECK_EQ(psm_sdr_encrypt(conn, data, MAX_SDR + 1, &blob, &blob_len), PSM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(psm_last_error(), "65536") != NULL);
    CHECK(blob == UNTOUCHED && blob_len == 99);
    CHECK(psm_sdr_encrypt(conn, data, 2 * 1024 * 1024, &blob, &blob_len) != PSM_OK);
    CHECK(blob == UNTOUCHED && blob_len == 99);
    CHECK(psm_sdr_decrypt(conn, data, 2 * 1024 * 1024, &blob, &blob_len) != PSM_OK);
    CHECK(blob == UNTOUCHED && blob_len == 99);
    CHECK_OK(psm_ping(conn));
}

int main(void)
{
    psm_conn *conn = NULL;
    psm_conn *other = NULL;
    uint8_t *data = malloc(2 * 1024 * 1024);

    CHECK(data != NULL);
    fill_pattern(data, 2 * 1024 * 1024, 0, 42);
    CHECK_OK(psm_connect("sdr", PSM_CONNECT_NO_SPAWN, &conn));
    CHECK_OK(psm_connect("sdr_other", PSM_CONNECT_NO_SPAWN, &other));
    round_trips(conn, other, data);
    altered(conn, data);
    too_large(conn, data);
    psm_conn_free(other);
    psm_conn_free(conn);
    free(data);
    return 0;
}
