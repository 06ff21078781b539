/* stream_digest_large_file_matches_sha256sum: a 256 MiB file streamed
 * through psm_digest_stream hashes to what sha256sum says, and so does the
 * psm-sha256 example (byte for byte the same line). Also: a stream finishes
 * once; 20 streams open at once and fed interleaved each get their own
 * digest; freeing an unfinished stream closes its channel in psmd. */

#include "check.h"
#include "fixture.h"

#include <psm.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024 * 1024)
#define FILE_MIB 256
#define STREAMS 20
/* Each interleaved stream's input: under the inline limit, so psm_digest
 * (a different daemon path) can check it. */
#define STREAM_BYTES (256 * 1024)
#define SLICE (16 * 1024)
/* The channel close after psm_stream_free is asynchronous. */
#define CLOSE_WAIT_MS 5000

static void make_file(const char *path, uint8_t *chunk)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int i;

    CHECK(fd >= 0);
    for (i = 0; i < FILE_MIB; i++) {
        fill_pattern(chunk, MIB, (uint64_t)i * MIB, 1);
        CHECK_EQ(write(fd, chunk, MIB), MIB);
    }
    CHECK_EQ(close(fd), 0);
}

static void stream_file(psm_conn *conn, const char *path, uint8_t *chunk, char *hex)
{
    psm_stream *s = NULL;
    uint8_t *digest = NULL;
    size_t digest_len = 0;
    uint8_t *again = NULL;
    size_t again_len = 0;
    int fd = open(path, O_RDONLY);
    ssize_t n;

    CHECK(fd >= 0);
    CHECK_OK(psm_digest_stream(conn, PSM_HASH_SHA256, &s));
    CHECK(psm_stream_fd(s) >= 0);
    while ((n = read(fd, chunk, MIB)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n > 0);
        write_all(psm_stream_fd(s), chunk, (size_t)n);
    }
    close(fd);
    CHECK_OK(psm_stream_finish(s, &digest, &digest_len));
    CHECK_EQ(digest_len, 32);
    to_hex(digest, digest_len, hex);

    /* Finished means finished: no descriptor, no second result. */
    CHECK_EQ(psm_stream_fd(s), -1);
    CHECK_EQ(psm_stream_finish(s, &again, &again_len), PSM_ERR_INVALID_ARGUMENT);
    CHECK(again == NULL && again_len == 0);

    psm_free(digest);
    psm_stream_free(s);
}

static void large_file_matches_sha256sum(psm_conn *conn)
{
    char path[4096];
    char command[8192];
    char expected_line[8192];
    char example_line[8192];
    char hex[129];
    uint8_t *chunk = malloc(MIB);
    const char *examples = getenv("PSM_EXAMPLES");

    CHECK(chunk != NULL);
    CHECK(examples != NULL && examples[0] != '\0');
    snprintf(path, sizeof path, "%s/large.bin", fixture_dir());
    make_file(path, chunk);

    stream_file(conn, path, chunk, hex);
    snprintf(command, sizeof command, "sha256sum '%s'", path);
    command_output(command, expected_line, sizeof expected_line);
    if (strncmp(hex, expected_line, 64) != 0)
        fprintf(stderr, "psm:       %s\nsha256sum: %s\n", hex, expected_line);
    CHECK(strncmp(hex, expected_line, 64) == 0);

    snprintf(command, sizeof command, "%s/psm-sha256", examples);
    if (access(command, X_OK) != 0)
        fprintf(stderr, "%s is missing: build the examples (make examples)\n", command);
    CHECK(access(command, X_OK) == 0);
    snprintf(command, sizeof command, "'%s/psm-sha256' '%s'", examples, path);
    command_output(command, example_line, sizeof example_line);
    if (strcmp(example_line, expected_line) != 0)
        fprintf(stderr, "psm-sha256: %s\nsha256sum:  %s\n", example_line, expected_line);
    CHECK(strcmp(example_line, expected_line) == 0);

    CHECK_EQ(unlink(path), 0);
    free(chunk);
}

static void interleaved_streams_stay_apart(psm_conn *conn)
{
    static const uint32_t algs[] = {PSM_HASH_SHA1, PSM_HASH_SHA256, PSM_HASH_SHA384,
                                    PSM_HASH_SHA512};
    psm_stream *streams[STREAMS] = {NULL};
    uint8_t *inputs[STREAMS];
    size_t lens[STREAMS];
    size_t off;
    int i;

    for (i = 0; i < STREAMS; i++) {
        lens[i] = STREAM_BYTES - (size_t)i * 1000;
        inputs[i] = malloc(lens[i]);
        CHECK(inputs[i] != NULL);
        fill_pattern(inputs[i], lens[i], 0, (uint32_t)i + 100);
        CHECK_OK(psm_digest_stream(conn, algs[i % 4], &streams[i]));
    }
    CHECK_EQ(status_int(conn, "channels"), STREAMS);

    for (off = 0; off < STREAM_BYTES; off += SLICE) {
        for (i = 0; i < STREAMS; i++) {
            size_t n;
            if (off >= lens[i])
                continue;
            n = lens[i] - off < SLICE ? lens[i] - off : SLICE;
            write_all(psm_stream_fd(streams[i]), inputs[i] + off, n);
        }
    }

    /* Finish in the opposite order to the opening. */
    for (i = STREAMS - 1; i >= 0; i--) {
        uint8_t *digest = NULL;
        size_t digest_len = 0;
        uint8_t inline_digest[64];
        size_t inline_len = 0;

        CHECK_OK(psm_stream_finish(streams[i], &digest, &digest_len));
        CHECK_OK(psm_digest(conn, algs[i % 4], inputs[i], lens[i], inline_digest,
                            sizeof inline_digest, &inline_len));
        CHECK_EQ(digest_len, inline_len);
        CHECK(memcmp(digest, inline_digest, digest_len) == 0);
        psm_free(digest);
        psm_stream_free(streams[i]);
        free(inputs[i]);
    }
}

static int wait_channels_zero(psm_conn *conn)
{
    int waited;

    for (waited = 0; waited < CLOSE_WAIT_MS; waited += 20) {
        if (status_int(conn, "channels") == 0)
            return 1;
        sleep_ms(20);
    }
    return status_int(conn, "channels") == 0;
}

static void freeing_unfinished_stream_closes_channel(psm_conn *conn)
{
    psm_stream *fed = NULL;
    psm_stream *idle = NULL;
    uint8_t buf[100 * 1024];

    CHECK(wait_channels_zero(conn));
    CHECK_OK(psm_digest_stream(conn, PSM_HASH_SHA256, &fed));
    CHECK_OK(psm_digest_stream(conn, PSM_HASH_SHA512, &idle));
    fill_pattern(buf, sizeof buf, 0, 3);
    write_all(psm_stream_fd(fed), buf, sizeof buf);
    CHECK_EQ(status_int(conn, "channels"), 2);

    psm_stream_free(fed);
    psm_stream_free(idle);
    CHECK(wait_channels_zero(conn));

    /* The connection is still good for more. */
    CHECK_OK(psm_ping(conn));
}

int main(void)
{
    psm_conn *conn = NULL;

    CHECK_OK(psm_connect("stream_digest_large_file", PSM_CONNECT_NO_SPAWN, &conn));
    large_file_matches_sha256sum(conn);
    interleaved_streams_stay_apart(conn);
    freeing_unfinished_stream_closes_channel(conn);
    psm_conn_free(conn);
    return 0;
}
