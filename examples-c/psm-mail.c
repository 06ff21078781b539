/* psm-mail: sign, encrypt, decrypt and verify S/MIME messages through psmd.
 *
 *   $ psm-mail sign --signer alice@example.com note.eml note.signed.eml
 *   $ psm-mail encrypt --to bob@example.com --to alice@example.com \
 *         note.signed.eml note.p7m.eml
 *   $ psm-mail decrypt --verify --from alice@example.com note.p7m.eml note.txt
 *   $ psm-mail verify --from alice@example.com note.signed.eml note.txt
 *
 * The private keys never leave psmd: the message goes there instead,
 * through a data channel (the psm_smime_*_stream functions), so a message
 * of any size passes in bounded memory. IN and OUT may be "-" (standard
 * input and output). Certificates are found with psm_cert_find: a
 * nickname, an e-mail address or sha256:<hex>.
 *
 * When a key is needed and the token is locked, psmd asks the prompt
 * handler below for the password: it answers with $PSM_MAIL_PASSWORD if
 * set (never a command-line argument: those are visible to every user of
 * the machine), else cancels.
 *
 * Exit status: 0 on success (for verify, and decrypt --verify, only for a
 * good signature by a signer valid for e-mail), 1 for a signature that is
 * bad or not trusted, 2 for a command line it does not understand or any
 * other failure. OUT is removed unless the exit status is 0.
 */

#define _POSIX_C_SOURCE 200809L

#include <psm.h>

#include "psm-dialogs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXIT_OK 0
#define EXIT_BAD_SIGNATURE 1
#define EXIT_FAILED 2

/* Most --to options encrypt takes. */
#define MAX_RECIPIENTS 32

/* Largest detached signature verify --content reads into memory (a
 * signature with its certificates is a few KiB). */
#define MAX_SIGNATURE_SIZE (1024 * 1024)

/* Password prompts answered per run: psmd asks again after a wrong
 * password, and answering the same one again would only cost time. */
#define MAX_PASSWORD_ANSWERS 1

static const char *prog = "psm-mail";

/* "psm-mail: WHAT [\"ARG\"] failed: <result>: <detail>" */
static void report(const char *what, const char *arg, psm_result r)
{
    /* Read psm_last_error before any other psm call on this thread. */
    const char *detail = psm_last_error();

    if (arg != NULL)
        fprintf(stderr, "%s: %s \"%s\" failed: %s", prog, what, arg, psm_result_str(r));
    else
        fprintf(stderr, "%s: %s failed: %s", prog, what, psm_result_str(r));
    fprintf(stderr, "%s%s\n", detail[0] != '\0' ? ": " : "", detail);
}

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: %s sign [--detached] [--der] --signer NAME IN OUT\n"
            "       %s encrypt --to NAME [--to NAME]... [--cbc] IN OUT\n"
            "       %s decrypt [--verify] [--from EMAIL] IN OUT\n"
            "       %s verify [--from EMAIL] [--content FILE] IN [OUT]\n"
            "\n"
            "  sign      IN is a MIME entity (headers, blank line, body); OUT an opaque\n"
            "            signed entity, with --detached multipart/signed, with --der bare CMS\n"
            "  encrypt   to each NAME (add yourself to read what you sent); AES-256-GCM,\n"
            "            with --cbc AES-256-CBC for older mail programs\n"
            "  decrypt   with your key; --verify also checks a signed message inside\n"
            "  verify    IN is the signed message, or with --content the detached\n"
            "            signature of FILE; the content goes to OUT if given\n"
            "\n"
            "NAME   a nickname, an e-mail address or sha256:<hex>\n"
            "EMAIL  the From address the signer's certificate must carry\n"
            "IN, OUT  files, or - for standard input and output\n"
            "The token password, if psmd asks for it, comes from $PSM_MAIL_PASSWORD.\n",
            prog, prog, prog, prog);
}

/* "psm-mail: PROBLEM[: \"ARG\"] (psm-mail -h for help)"; returns EXIT_FAILED. */
static int usage_error(const char *problem, const char *arg)
{
    if (arg != NULL)
        fprintf(stderr, "%s: %s: \"%s\" (%s -h for help)\n", prog, problem, arg, prog);
    else
        fprintf(stderr, "%s: %s (%s -h for help)\n", prog, problem, prog);
    return EXIT_FAILED;
}

/* Takes `option VALUE` at argv[*a]: 1 with VALUE in *value (advancing *a
 * past it), 0 if argv[*a] is not `option` or has no value after it. */
static int value_option(const char *option, int argc, char **argv, int *a, const char **value)
{
    if (strcmp(argv[*a], option) != 0 || *a + 1 >= argc)
        return 0;
    *value = argv[++*a];
    return 1;
}

/* True for an operand (IN, OUT): not an option, or "-". */
static int is_operand(const char *arg)
{
    return arg[0] != '-' || strcmp(arg, "-") == 0;
}

/* The files a command reads and writes. OUT is created by open_files and
 * removed by close_files unless the command succeeded. */
struct files {
    const char *in_path;
    const char *out_path; /* NULL: no output */
    int in_fd;
    int out_fd;
};

/* Opens IN for reading and OUT (created, or truncated; `private_out`:
 * readable by its owner only) for writing. Returns 0, or -1 after
 * printing why not. */
static int open_files(struct files *f, int private_out)
{
    f->in_fd = -1;
    f->out_fd = -1;
    if (strcmp(f->in_path, "-") == 0) {
        f->in_fd = STDIN_FILENO;
    } else {
        f->in_fd = open(f->in_path, O_RDONLY);
        if (f->in_fd < 0) {
            fprintf(stderr, "%s: %s: %s\n", prog, f->in_path, strerror(errno));
            return -1;
        }
    }
    if (f->out_path == NULL)
        return 0;
    if (strcmp(f->out_path, "-") == 0) {
        f->out_fd = STDOUT_FILENO;
        return 0;
    }
    f->out_fd = open(f->out_path, O_WRONLY | O_CREAT | O_TRUNC, private_out ? 0600 : 0644);
    if (f->out_fd < 0 || (private_out && fchmod(f->out_fd, 0600) != 0)) {
        fprintf(stderr, "%s: %s: %s\n", prog, f->out_path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Closes what open_files opened; removes OUT unless `keep`. Returns
 * `status`, or EXIT_FAILED if writing OUT failed in the end. */
static int close_files(struct files *f, int status)
{
    int to_file = f->out_path != NULL && strcmp(f->out_path, "-") != 0;

    if (f->in_fd > STDERR_FILENO)
        close(f->in_fd);
    if (f->out_fd > STDERR_FILENO && close(f->out_fd) != 0 && status == EXIT_OK) {
        fprintf(stderr, "%s: writing %s: %s\n", prog, f->out_path, strerror(errno));
        status = EXIT_FAILED;
    }
    if (to_file && f->out_fd >= 0 && status != EXIT_OK) {
        unlink(f->out_path);
        fprintf(stderr, "%s: removed %s\n", prog, f->out_path);
    }
    return status;
}

/* The prompt handler: psmd asks for the token password when a command
 * needs a private key and the token is locked. `userdata` is the
 * connection. Returning anything but PSM_OK without answering cancels. */
static psm_result answer_password(void *userdata, const psm_prompt *prompt)
{
    static int answers;
    psm_conn *conn = (psm_conn *)userdata;
    const char *password = getenv("PSM_MAIL_PASSWORD");
    psm_result r;

    if (psm_prompt_kind(prompt) != PSM_PROMPT_PASSWORD)
        return PSM_ERR_NO_UI; /* no other questions come for mail; none asked here */
    if (password == NULL) {
        fprintf(stderr, "%s: %s\n%s: set PSM_MAIL_PASSWORD to answer\n", prog,
                psm_prompt_message(prompt), prog);
        return PSM_ERR_NO_UI;
    }
    if (answers == MAX_PASSWORD_ANSWERS) {
        fprintf(stderr, "%s: the token password in PSM_MAIL_PASSWORD is wrong\n", prog);
        return PSM_ERR_BAD_PASSWORD;
    }
    answers++;
    r = psm_prompt_answer(conn, prompt, password);
    if (r != PSM_OK)
        report("answering the password prompt", NULL, r);
    return r;
}

/* Connects and installs the password prompt handler, or, when
 * $PSM_BROWSER is set, lets psm ask in its own dialog (psm-dialogs.h). */
static psm_result open_conn(psm_conn **conn)
{
    int dialogs = getenv("PSM_BROWSER") != NULL;
    psm_result r = psm_connect(prog, dialogs ? 0 : PSM_CONNECT_NO_DIALOGS, conn);

    if (r != PSM_OK) {
        report("connecting to psmd", NULL, r);
        return r;
    }
    r = dialogs ? dialog_install(*conn, prog) : psm_set_prompt_handler(*conn, answer_password, *conn);
    if (r != PSM_OK) {
        report("installing the prompt handler", NULL, r);
        psm_conn_free(*conn);
        *conn = NULL;
    }
    return r;
}

/* Removes the handler, then frees the connection. */
static void close_conn(psm_conn *conn)
{
    psm_result r;

    if (conn == NULL)
        return;
    r = psm_set_prompt_handler(conn, NULL, NULL);
    if (r != PSM_OK)
        report("removing the prompt handler", NULL, r);
    psm_conn_free(conn);
}

/* Finds NAME, printing why not. */
static psm_result find(psm_conn *conn, const char *name, psm_cert **cert)
{
    psm_result r = psm_cert_find(conn, name, cert);

    if (r != PSM_OK)
        report("finding the certificate of", name, r);
    return r;
}

/* Unix seconds as "2026-11-27 08:41:35 UTC". */
static void format_time(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(out, cap, "%lld", (long long)t);
}

/* Prints what verifying found (to stderr, so OUT may be stdout) and
 * returns the exit status it deserves. */
static int print_verdict(const psm_smime_result *res)
{
    psm_result verdict = psm_smime_result_status(res);
    const psm_cert *signer = psm_smime_result_signer(res);
    int64_t signed_at = psm_smime_result_signing_time(res);
    char when[64];

    if (psm_smime_result_is_encrypted(res))
        fprintf(stderr, "encrypted:  yes (%s)\n", psm_smime_result_cipher(res));
    if (!psm_smime_result_is_signed(res)) {
        fprintf(stderr, "signature:  none: the message is not signed\n");
        return EXIT_BAD_SIGNATURE;
    }
    fprintf(stderr, "verdict:    %s\n", psm_result_str(verdict));
    fprintf(stderr, "detail:     %s\n", psm_smime_result_detail(res));
    fprintf(stderr, "signer:     %s\n",
            signer != NULL ? psm_cert_subject(signer) : "(no certificate for the signer)");
    if (signer != NULL && psm_cert_email(signer) != NULL)
        fprintf(stderr, "address:    %s\n", psm_cert_email(signer));
    if (signed_at != 0) {
        format_time(signed_at, when, sizeof when);
        fprintf(stderr, "signed at:  %s (%s)\n", when, psm_smime_result_digest(res));
    }
    return verdict == PSM_OK ? EXIT_OK : EXIT_BAD_SIGNATURE;
}

static int cmd_sign(int argc, char **argv)
{
    psm_conn *conn = NULL;
    psm_cert *signer = NULL;
    struct files f = {NULL, NULL, -1, -1};
    const char *name = NULL;
    uint32_t flags = 0;
    int status = EXIT_FAILED;
    int a;
    psm_result r;

    for (a = 0; a < argc; a++) {
        if (strcmp(argv[a], "--detached") == 0)
            flags |= PSM_SMIME_DETACHED;
        else if (strcmp(argv[a], "--der") == 0)
            flags |= PSM_SMIME_DER;
        else if (value_option("--signer", argc, argv, &a, &name))
            continue;
        else if (is_operand(argv[a]) && f.in_path == NULL)
            f.in_path = argv[a];
        else if (is_operand(argv[a]) && f.out_path == NULL)
            f.out_path = argv[a];
        else
            return usage_error("sign: unexpected argument", argv[a]);
    }
    if (name == NULL || f.out_path == NULL)
        return usage_error("sign: expected --signer NAME IN OUT", NULL);

    if (open_conn(&conn) != PSM_OK || find(conn, name, &signer) != PSM_OK)
        goto cleanup;
    if (open_files(&f, 0) != 0)
        goto cleanup;
    /* psmd checks that the certificate is valid for signing e-mail now and
     * signs with its key, asking for the token password if need be. */
    r = psm_smime_sign_stream(conn, signer, flags, f.in_fd, f.out_fd);
    if (r != PSM_OK) {
        report("signing with", name, r);
        goto cleanup;
    }
    fprintf(stderr, "signed %s as %s\n", f.in_path, psm_cert_subject(signer));
    status = EXIT_OK;

cleanup:
    status = close_files(&f, status);
    psm_cert_free(signer);
    close_conn(conn);
    return status;
}

static int cmd_encrypt(int argc, char **argv)
{
    psm_conn *conn = NULL;
    psm_cert *recipients[MAX_RECIPIENTS] = {NULL};
    const char *names[MAX_RECIPIENTS];
    const char *name = NULL;
    struct files f = {NULL, NULL, -1, -1};
    size_t n = 0;
    size_t i;
    uint32_t flags = 0;
    int status = EXIT_FAILED;
    int a;
    psm_result r;

    for (a = 0; a < argc; a++) {
        if (strcmp(argv[a], "--cbc") == 0) {
            flags |= PSM_SMIME_CBC;
        } else if (value_option("--to", argc, argv, &a, &name)) {
            if (n == MAX_RECIPIENTS)
                return usage_error("encrypt: too many --to options", NULL);
            names[n++] = name;
        } else if (is_operand(argv[a]) && f.in_path == NULL) {
            f.in_path = argv[a];
        } else if (is_operand(argv[a]) && f.out_path == NULL) {
            f.out_path = argv[a];
        } else {
            return usage_error("encrypt: unexpected argument", argv[a]);
        }
    }
    if (n == 0 || f.out_path == NULL)
        return usage_error("encrypt: expected --to NAME [--to NAME]... IN OUT", NULL);

    if (open_conn(&conn) != PSM_OK)
        goto cleanup;
    for (i = 0; i < n; i++) {
        if (find(conn, names[i], &recipients[i]) != PSM_OK)
            goto cleanup;
    }
    if (open_files(&f, 0) != 0)
        goto cleanup;
    /* Each recipient's certificate must be valid for e-mail encryption. */
    r = psm_smime_encrypt_stream(conn, (const psm_cert *const *)recipients, n, flags, f.in_fd,
                                 f.out_fd);
    if (r != PSM_OK) {
        report("encrypting", f.in_path, r);
        goto cleanup;
    }
    for (i = 0; i < n; i++)
        fprintf(stderr, "encrypted for %s\n", psm_cert_subject(recipients[i]));
    status = EXIT_OK;

cleanup:
    status = close_files(&f, status);
    for (i = 0; i < n; i++)
        psm_cert_free(recipients[i]);
    close_conn(conn);
    return status;
}

static int cmd_decrypt(int argc, char **argv)
{
    psm_conn *conn = NULL;
    psm_smime_result *res = NULL;
    struct files f = {NULL, NULL, -1, -1};
    const char *from = NULL;
    uint32_t flags = 0;
    int status = EXIT_FAILED;
    int a;
    psm_result r;

    for (a = 0; a < argc; a++) {
        if (strcmp(argv[a], "--verify") == 0)
            flags |= PSM_SMIME_VERIFY_INNER;
        else if (value_option("--from", argc, argv, &a, &from))
            continue;
        else if (is_operand(argv[a]) && f.in_path == NULL)
            f.in_path = argv[a];
        else if (is_operand(argv[a]) && f.out_path == NULL)
            f.out_path = argv[a];
        else
            return usage_error("decrypt: unexpected argument", argv[a]);
    }
    if (f.out_path == NULL)
        return usage_error("decrypt: expected IN OUT", NULL);
    if (from != NULL && (flags & PSM_SMIME_VERIFY_INNER) == 0)
        return usage_error("decrypt: --from needs --verify", NULL);

    if (open_conn(&conn) != PSM_OK)
        goto cleanup;
    /* The plaintext is for the owner's eyes only. */
    if (open_files(&f, 1) != 0)
        goto cleanup;
    r = psm_smime_decrypt_stream(conn, f.in_fd, f.out_fd, from, flags, &res);
    if (r != PSM_OK) {
        report("decrypting", f.in_path, r);
        goto cleanup;
    }
    if (flags & PSM_SMIME_VERIFY_INNER)
        status = print_verdict(res);
    else
        status = EXIT_OK;
    if (status == EXIT_OK)
        fprintf(stderr, "decrypted %s (%s)\n", f.in_path, psm_smime_result_cipher(res));

cleanup:
    status = close_files(&f, status);
    psm_smime_result_free(res);
    close_conn(conn);
    return status;
}

/* The whole of a (small) file in a malloc'd buffer. */
static unsigned char *read_small_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return NULL;
    }
    /* One byte more than the limit tells a file at the limit from a larger one. */
    buf = malloc((size_t)MAX_SIGNATURE_SIZE + 1);
    if (buf == NULL) {
        fprintf(stderr, "%s: %s: out of memory\n", prog, path);
        fclose(f);
        return NULL;
    }
    n = fread(buf, 1, (size_t)MAX_SIGNATURE_SIZE + 1, f);
    if (ferror(f) || n > MAX_SIGNATURE_SIZE) {
        fprintf(stderr, "%s: %s: %s\n", prog, path,
                ferror(f) ? strerror(errno) : "larger than a signature can be");
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

static int cmd_verify(int argc, char **argv)
{
    psm_conn *conn = NULL;
    psm_smime_result *res = NULL;
    struct files f = {NULL, NULL, -1, -1};
    unsigned char *signature = NULL;
    size_t sig_len = 0;
    const char *from = NULL;
    const char *content = NULL;
    const char *in = NULL;
    int status = EXIT_FAILED;
    int a;
    psm_result r;

    for (a = 0; a < argc; a++) {
        if (value_option("--from", argc, argv, &a, &from) ||
            value_option("--content", argc, argv, &a, &content))
            continue;
        if (is_operand(argv[a]) && in == NULL)
            in = argv[a];
        else if (is_operand(argv[a]) && f.out_path == NULL)
            f.out_path = argv[a];
        else
            return usage_error("verify: unexpected argument", argv[a]);
    }
    if (in == NULL)
        return usage_error("verify: expected IN", NULL);
    if (content != NULL && f.out_path != NULL)
        return usage_error("verify: with --content, the content is FILE: no OUT", f.out_path);

    /* A detached signature is small and read here; the content it covers
     * streams through psmd. Otherwise IN is the whole signed message. */
    f.in_path = in;
    if (content != NULL) {
        signature = read_small_file(in, &sig_len);
        if (signature == NULL)
            goto cleanup;
        f.in_path = content;
    }
    if (open_conn(&conn) != PSM_OK)
        goto cleanup;
    if (open_files(&f, 0) != 0)
        goto cleanup;
    r = psm_smime_verify_stream(conn, f.in_fd, f.out_fd, signature, sig_len, from, 0, &res);
    if (r != PSM_OK) {
        report("verifying", in, r);
        goto cleanup;
    }
    status = print_verdict(res);

cleanup:
    status = close_files(&f, status);
    psm_smime_result_free(res);
    free(signature);
    close_conn(conn);
    return status;
}

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"sign", cmd_sign},
    {"encrypt", cmd_encrypt},
    {"decrypt", cmd_decrypt},
    {"verify", cmd_verify},
};

#define COMMANDS (sizeof commands / sizeof commands[0])

int main(int argc, char **argv)
{
    size_t i;

    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_FAILED : EXIT_OK;
    }
    for (i = 0; i < COMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 2, argv + 2);
    }
    return usage_error("unknown command", argv[1]);
}
