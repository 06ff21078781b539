/* random_fills_buffers: psm_random fills buffers larger than one reply
 * (the library splits them), two calls differ, length 0 works and a NULL
 * buffer is rejected. */

#include "check.h"

#include <psm.h>

#include <stdlib.h>
#include <string.h>

/* Bigger than the daemon's per-reply maximum (64 KiB), so it takes several. */
#define BIG (1024 * 1024)

static int all_zero(const uint8_t *buf, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        if (buf[i] != 0)
            return 0;
    return 1;
}

int main(void)
{
    psm_conn *conn = NULL;
    uint8_t *a = calloc(BIG, 1);
    uint8_t *b = calloc(BIG, 1);
    uint8_t small[16] = {0};

    CHECK(a != NULL && b != NULL);
    CHECK_OK(psm_connect("random_fills_buffers", PSM_CONNECT_NO_SPAWN, &conn));

    CHECK_OK(psm_random(conn, a, BIG));
    CHECK_OK(psm_random(conn, b, BIG));
    CHECK(!all_zero(a, BIG));
    /* The tail too: every chunk of the split request was filled. */
    CHECK(!all_zero(a + BIG - 4096, 4096));
    CHECK(!all_zero(b + BIG - 4096, 4096));
    CHECK(memcmp(a, b, BIG) != 0);

    CHECK_OK(psm_random(conn, small, 0));
    CHECK(all_zero(small, sizeof small));
    CHECK_OK(psm_random(conn, small, 1));
    CHECK_EQ(psm_random(conn, NULL, 16), PSM_ERR_NULL_PARAMETER);
    CHECK_OK(psm_random(conn, NULL, 0)); /* like psm_digest's data */
    CHECK_EQ(psm_random(NULL, small, sizeof small), PSM_ERR_NULL_PARAMETER);

    psm_conn_free(conn);
    free(a);
    free(b);
    return 0;
}
