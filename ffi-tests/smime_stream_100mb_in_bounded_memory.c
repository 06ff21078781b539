/* smime_stream_100mb_in_bounded_memory: a 100 MiB file is signed (a
 * detached DER signature) and encrypted (AES-256-GCM to Alice, DER) with
 * the _stream functions, file descriptor to file descriptor. `openssl cms
 * -verify` accepts the signature over the file, psm_smime_verify_stream
 * too, and `openssl cms -decrypt` gives back a file with the input's
 * SHA-256. Meanwhile psmd's peak resident memory (VmHWM in
 * /proc/PID/status, reset to the resident size first) grows by less than
 * 64 MiB: the message never sits in psmd's memory whole. */

#include "check.h"
#include "fixture.h"
#include "smime_fixture.h"

#include <psm.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FILE_SIZE ((uint64_t)100 * 1024 * 1024)
#define CHUNK (1024 * 1024)
/* What psmd's peak RSS may grow by while it handles all of that. */
#define MAX_HWM_GROWTH_KB (64 * 1024)

static uint8_t chunk[CHUNK];

/* VmHWM of pid, in kB. */
static long long vm_hwm_kb(pid_t pid)
{
    char path[64];
    char line[256];
    long long kb = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    f = fopen(path, "r");
    CHECK(f != NULL);
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "VmHWM: %lld kB", &kb) == 1)
            break;
    }
    fclose(f);
    CHECK(kb > 0);
    return kb;
}

/* Resets pid's VmHWM to its current resident size (proc(5), clear_refs
 * "5"): psmd's peak so far (its start, a token login's key derivation)
 * would hide a message held in memory whole. */
static void reset_hwm(pid_t pid)
{
    char path[64];
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/clear_refs", (long)pid);
    f = fopen(path, "w");
    if (f == NULL)
        perror(path);
    CHECK(f != NULL);
    CHECK(fputs("5", f) >= 0);
    CHECK_EQ(fclose(f), 0);
}

/* sha256sum FILE, as hex into out (65 bytes). */
static void sha256sum(const char *path, char *out)
{
    char command[4200];
    char line[256];

    CHECK((size_t)snprintf(command, sizeof command, "sha256sum '%s'", path) < sizeof command);
    command_output(command, line, sizeof line);
    CHECK(strlen(line) > 64 && line[64] == ' ');
    memcpy(out, line, 64);
    out[64] = '\0';
}

static int open_read(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        perror(path);
    CHECK(fd >= 0);
    return fd;
}

static int open_write(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        perror(path);
    CHECK(fd >= 0);
    return fd;
}

static void report_hwm(const char *when, pid_t pid, long long before)
{
    long long now = vm_hwm_kb(pid);
    fprintf(stderr, "psmd VmHWM %s: %lld kB (+%lld kB)\n", when, now, now - before);
    CHECK(now - before < MAX_HWM_GROWTH_KB);
}

int main(void)
{
    smime_people people;
    psm_conn *conn = smime_connect("smime_stream_100mb", &people);
    const psm_cert *to[1];
    psm_smime_result *res = NULL;
    char big[4096];
    char sig[4096];
    char enc[4096];
    char dec[4096];
    char args[16384];
    char in_hex[65];
    char out_hex[65];
    uint8_t *signature;
    size_t sig_len = 0;
    uint64_t done;
    long long hwm_before;
    pid_t pid;
    FILE *f;
    int in;
    int out;

    pid = (pid_t)status_int(conn, "pid");
    CHECK_EQ(pid, fixture_daemon_pid());
    fprintf(stderr, "psmd (pid %ld) VmHWM so far: %lld kB\n", (long)pid, vm_hwm_kb(pid));
    reset_hwm(pid);
    hwm_before = vm_hwm_kb(pid);
    fprintf(stderr, "psmd VmHWM reset to its VmRSS: %lld kB\n", hwm_before);

    fixture_path("big.bin", big, sizeof big);
    fixture_path("big.p7s", sig, sizeof sig);
    fixture_path("big.p7m", enc, sizeof enc);
    fixture_path("big.decrypted", dec, sizeof dec);
    f = fopen(big, "wb");
    CHECK(f != NULL);
    for (done = 0; done < FILE_SIZE; done += CHUNK) {
        fill_pattern(chunk, CHUNK, done, 7);
        CHECK_EQ(fwrite(chunk, 1, CHUNK, f), CHUNK);
    }
    CHECK_EQ(fclose(f), 0);
    sha256sum(big, in_hex);

    /* Sign: the content streams through psmd; out comes the signature. */
    in = open_read(big);
    out = open_write(sig);
    CHECK_OK(psm_smime_sign_stream(conn, people.alice,
                                   PSM_SMIME_DETACHED | PSM_SMIME_DER | PSM_SMIME_BINARY, in, out));
    CHECK_EQ(close(in), 0);
    CHECK_EQ(close(out), 0);
    report_hwm("after signing", pid, hwm_before);
    CHECK((size_t)snprintf(args, sizeof args,
                           "cms -verify -CAfile root.pem -purpose smimesign -inform DER -binary "
                           "-in '%s' -content '%s' -out /dev/null",
                           sig, big) < sizeof args);
    openssl_must(args);

    /* psm verifies the detached signature, the content streaming again. */
    signature = file_read(sig, &sig_len);
    in = open_read(big);
    CHECK_OK(psm_smime_verify_stream(conn, in, -1, signature, sig_len, "alice@example.test",
                                     PSM_SMIME_BINARY, &res));
    CHECK_EQ(close(in), 0);
    fprintf(stderr, "psm_smime_verify_stream: %s\n", psm_smime_result_detail(res));
    CHECK_EQ(psm_smime_result_status(res), PSM_OK);
    psm_smime_result_free(res);
    free(signature);
    report_hwm("after verifying", pid, hwm_before);

    /* Encrypt: 100 MiB in, a little more out. */
    to[0] = people.alice;
    in = open_read(big);
    out = open_write(enc);
    CHECK_OK(psm_smime_encrypt_stream(conn, to, 1, PSM_SMIME_DER | PSM_SMIME_BINARY, in, out));
    CHECK_EQ(close(in), 0);
    CHECK_EQ(close(out), 0);
    report_hwm("after encrypting", pid, hwm_before);
    CHECK((size_t)snprintf(args, sizeof args,
                           "cms -decrypt -inform DER -binary -in '%s' -recip alice.pem "
                           "-inkey alice.key -out '%s'",
                           enc, dec) < sizeof args);
    openssl_must(args);
    sha256sum(dec, out_hex);
    fprintf(stderr, "sha256 of the input %s, of what openssl decrypted %s\n", in_hex, out_hex);
    CHECK(strcmp(in_hex, out_hex) == 0);

    CHECK_EQ(unlink(big), 0);
    CHECK_EQ(unlink(enc), 0);
    CHECK_EQ(unlink(dec), 0);
    smime_people_free(&people);
    psm_conn_free(conn);
    return 0;
}
