/* digest_known_vectors: psm_digest gives the FIPS 180 test-vector digests
 * for SHA-1/256/384/512 ("abc", "", the 448-bit message and a million 'a',
 * which is past the inline limit and so streamed by the library); a large
 * input equals the psm_digest_stream result; a short out buffer and an
 * unknown algorithm are refused without writing the outputs. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <stdlib.h>
#include <string.h>

#define MILLION 1000000
/* Past the 512 KiB the daemon takes inline. */
#define LARGE (3 * 1024 * 1024)

struct vector {
    uint32_t alg;
    size_t digest_len;
    const char *abc;
    const char *empty;
    const char *two_blocks; /* "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq" */
    const char *million_a;
};

/* Digests as hex, split in 64-character pieces. */
static const struct vector vectors[] = {
    {
        PSM_HASH_SHA1,
        20,
        "a9993e364706816aba3e25717850c26c9cd0d89d",
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
        "34aa973cd4c4daa4f61eeb2bdbad27316534016f",
    },
    {
        PSM_HASH_SHA256,
        32,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
    },
    {
        PSM_HASH_SHA384,
        48,
        "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
        "8086072ba1e7cc2358baeca134c825a7",
        "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da"
        "274edebfe76f65fbd51ad2f14898b95b",
        "3391fdddfc8dc7393707a65b1b4709397cf8b1d162af05abfe8f450de5f36bc6"
        "b0455a8520bc4e6f5fe95b1fe3c8452b",
        "9d0e1809716474cb086e834e310a4a1ced149e9c00f248527972cec5704c2a5b"
        "07b8b3dc38ecc4ebae97ddd87f3d8985",
    },
    {
        PSM_HASH_SHA512,
        64,
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
        "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
        "204a8fc6dda82f0a0ced7beb8e08a41657c16ef468b228a8279be331a703c335"
        "96fd15c13b1b07f9aa1d3bea57789ca031ad85c7a71dd70354ec631238ca3445",
        "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973eb"
        "de0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b",
    },
};

/* psm_digest of data as hex; checks the reported length. */
static void digest_hex(psm_conn *conn, const struct vector *v, const uint8_t *data, size_t len,
                       char *hex)
{
    uint8_t out[64];
    size_t out_len = 0;

    CHECK_OK(psm_digest(conn, v->alg, data, len, out, sizeof out, &out_len));
    CHECK_EQ(out_len, v->digest_len);
    to_hex(out, out_len, hex);
}

static void check_hex(const char *actual, const char *expected)
{
    if (strcmp(actual, expected) != 0)
        fprintf(stderr, "digest %s\nexpected %s\n", actual, expected);
    CHECK(strcmp(actual, expected) == 0);
}

int main(void)
{
    static const char two_blocks[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    psm_conn *conn = NULL;
    uint8_t *million_a = malloc(MILLION);
    uint8_t *large = malloc(LARGE);
    char hex[129];
    char streamed[129];
    uint8_t out[64];
    size_t out_len = 12345;
    size_t i;

    CHECK(million_a != NULL && large != NULL);
    memset(million_a, 'a', MILLION);
    fill_pattern(large, LARGE, 0, 7);
    CHECK_OK(psm_connect("digest_known_vectors", PSM_CONNECT_NO_SPAWN, &conn));

    for (i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        const struct vector *v = &vectors[i];

        digest_hex(conn, v, (const uint8_t *)"abc", 3, hex);
        check_hex(hex, v->abc);
        digest_hex(conn, v, (const uint8_t *)"", 0, hex);
        check_hex(hex, v->empty);
        digest_hex(conn, v, NULL, 0, hex); /* NULL data is fine when len is 0 */
        check_hex(hex, v->empty);
        digest_hex(conn, v, (const uint8_t *)two_blocks, strlen(two_blocks), hex);
        check_hex(hex, v->two_blocks);
        digest_hex(conn, v, million_a, MILLION, hex);
        check_hex(hex, v->million_a);
        stream_digest_hex(conn, v->alg, million_a, MILLION, streamed);
        check_hex(streamed, v->million_a);

        digest_hex(conn, v, large, LARGE, hex);
        stream_digest_hex(conn, v->alg, large, LARGE, streamed);
        check_hex(hex, streamed);

        /* One byte short: refused, outputs untouched. */
        CHECK_EQ(
            psm_digest(conn, v->alg, (const uint8_t *)"abc", 3, out, v->digest_len - 1, &out_len),
            PSM_ERR_BUFFER_TOO_SMALL);
        CHECK_EQ(out_len, 12345);
        CHECK(strlen(psm_last_error()) > 0);
    }

    CHECK_EQ(psm_digest(conn, 0, (const uint8_t *)"abc", 3, out, sizeof out, &out_len),
             PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(psm_digest(conn, 99, (const uint8_t *)"abc", 3, out, sizeof out, &out_len),
             PSM_ERR_INVALID_ARGUMENT);
    CHECK_EQ(out_len, 12345);
    CHECK_EQ(psm_digest(conn, PSM_HASH_SHA256, NULL, 3, out, sizeof out, &out_len),
             PSM_ERR_NULL_PARAMETER);

    psm_conn_free(conn);
    free(million_a);
    free(large);
    return 0;
}
