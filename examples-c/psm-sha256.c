/* psm-sha256: SHA-256 of files through psmd, printed like sha256sum.
 *
 *   $ psm-sha256 FILE...     (no FILE, or "-": standard input)
 *   ba7816bf...  FILE
 *
 * Each input goes through a data channel (psm_digest_stream), so files of
 * any size work without holding them in memory: read a chunk, write it to
 * psm_stream_fd, repeat, then psm_stream_finish returns the digest.
 */

#define _POSIX_C_SOURCE 200809L

#include <psm.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

/* Bytes read from an input and written to the channel at a time. */
#define CHUNK_SIZE (256 * 1024)

static unsigned char chunk[CHUNK_SIZE];

static void report(const char *name, const char *what, psm_result r)
{
    /* Read psm_last_error before any other psm call on this thread. */
    const char *detail = psm_last_error();
    fprintf(stderr, "psm-sha256: %s: %s failed: %s: %s\n", name, what, psm_result_str(r), detail);
}

/* Writes all of buf to the channel. send() with MSG_NOSIGNAL rather than
 * write(): if psmd goes away mid-file we want EPIPE, not a SIGPIPE that
 * kills us. Returns 0, or -1 with errno set. */
static int write_all(int fd, const unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Prints "<hex>  <name>\n" exactly as GNU sha256sum does, including its
 * escaping of names that contain a backslash, newline or carriage return
 * (the line then starts with a backslash). */
static void print_line(const unsigned char *digest, size_t len, const char *name)
{
    size_t i;
    const char *p;

    if (strpbrk(name, "\\\n\r") != NULL)
        putchar('\\');
    for (i = 0; i < len; i++)
        printf("%02x", digest[i]);
    fputs("  ", stdout);
    for (p = name; *p != '\0'; p++) {
        switch (*p) {
        case '\\':
            fputs("\\\\", stdout);
            break;
        case '\n':
            fputs("\\n", stdout);
            break;
        case '\r':
            fputs("\\r", stdout);
            break;
        default:
            putchar(*p);
        }
    }
    putchar('\n');
}

/* Hashes one input ("-" = standard input) and prints its line. Returns 0 on
 * success, -1 after printing why not. */
static int hash_one(psm_conn *conn, const char *name)
{
    psm_stream *stream = NULL;
    uint8_t *digest = NULL;
    size_t digest_len = 0;
    int in = -1;
    int chan;
    int status = -1;
    psm_result r;

    if (strcmp(name, "-") == 0) {
        in = STDIN_FILENO;
    } else {
        in = open(name, O_RDONLY);
        if (in < 0) {
            fprintf(stderr, "psm-sha256: %s: %s\n", name, strerror(errno));
            goto cleanup;
        }
    }

    r = psm_digest_stream(conn, PSM_HASH_SHA256, &stream);
    if (r != PSM_OK) {
        report(name, "opening a digest stream", r);
        goto cleanup;
    }
    chan = psm_stream_fd(stream);

    for (;;) {
        ssize_t n = read(in, chunk, sizeof chunk);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "psm-sha256: %s: %s\n", name, strerror(errno));
            goto cleanup;
        }
        if (n == 0)
            break;
        if (write_all(chan, chunk, (size_t)n) != 0) {
            fprintf(stderr, "psm-sha256: %s: writing to psmd's data channel: %s\n", name,
                    strerror(errno));
            goto cleanup;
        }
    }

    /* Ends the input (shutdown(SHUT_WR)) and waits for the digest. */
    r = psm_stream_finish(stream, &digest, &digest_len);
    if (r != PSM_OK) {
        report(name, "finishing the digest", r);
        goto cleanup;
    }
    print_line(digest, digest_len, name);
    status = 0;

cleanup:
    psm_free(digest);
    psm_stream_free(stream); /* abandons the operation if it did not finish */
    if (in > STDIN_FILENO)
        close(in);
    return status;
}

int main(int argc, char **argv)
{
    psm_conn *conn = NULL;
    int status = EXIT_FAILURE;
    int failures = 0;
    int i;
    psm_result r;

    r = psm_connect("psm-sha256", PSM_CONNECT_NO_DIALOGS, &conn);
    if (r != PSM_OK) {
        report("psmd", "connecting", r);
        goto cleanup;
    }

    if (argc < 2) {
        failures += hash_one(conn, "-") != 0;
    } else {
        for (i = 1; i < argc; i++)
            failures += hash_one(conn, argv[i]) != 0;
    }

    if (fflush(stdout) != 0) {
        perror("psm-sha256: writing to stdout");
        goto cleanup;
    }
    if (failures == 0)
        status = EXIT_SUCCESS;

cleanup:
    psm_conn_free(conn);
    return status;
}
