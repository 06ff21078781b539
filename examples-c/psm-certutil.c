/* psm-certutil: list, show, import, trust, delete and verify the
 * certificates in psmd's store, and import CRLs; generate keys, sign with
 * them, move them in and out as PKCS#12, and set the token password.
 *
 *   $ psm-certutil import root.pem --trust ca-tls,ca-email
 *   imported "Example Root" (sha256:3c0a...)
 *   $ psm-certutil list --ca
 *   NICKNAME                         TRUST       EXPIRES     EMAIL
 *   Example Root                     C,C,        2049-12-31  -
 *   $ psm-certutil verify www.example.com --usage tls-server --name www.example.com
 *   VALID: valid for TLS server authentication as www.example.com; path: ...
 *   $ psm-certutil keygen --type p256 --subject "CN=Alice,O=Example" --out alice.csr
 *   $ psm-certutil --password-file pw.txt sign Alice --alg ecdsa-sha256 --in doc --out doc.sig
 *
 * NAME is anything psm_cert_find accepts: a nickname, an email address or
 * sha256:<hex>. Run with -h for every command. Each command is a function
 * in the table at the bottom; it parses its own arguments, connects (and
 * logs in to the token, given a password before the command), and returns
 * the exit status.
 */

#define _POSIX_C_SOURCE 200809L

#include <psm.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Exit statuses: success (and, for verify, a valid certificate), failure
 * (including an invalid certificate), and a command line we do not understand. */
#define EXIT_OK 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2

/* Largest file import and crl-import read; certificate bundles and CRLs
 * of big public CAs stay well below it. */
#define MAX_INPUT_SIZE (64 * 1024 * 1024)

/* Longest password --password-file reads (its first line). */
#define MAX_PASSWORD 1024

static const char *prog = "psm-certutil";

/* The token password given before the command: open_conn logs in with it. */
static const char *token_password = NULL;

/* "psm-certutil: WHAT [\"ARG\"] failed: <result>: <detail>" */
static void report(const char *what, const char *arg, psm_result r)
{
    /* psm_last_error says what failed and what to do about it; read it
     * before any other psm call on this thread. */
    const char *detail = psm_last_error();

    if (arg != NULL)
        fprintf(stderr, "%s: %s \"%s\" failed: %s", prog, what, arg, psm_result_str(r));
    else
        fprintf(stderr, "%s: %s failed: %s", prog, what, psm_result_str(r));
    fprintf(stderr, "%s%s\n", detail[0] != '\0' ? ": " : "", detail);
}

/* Connects, and logs in to the token when a password came before the
 * command: a login lasts as long as the connection, so it has to happen
 * in the same process as the command that needs it. */
static psm_result open_conn(psm_conn **conn)
{
    psm_result r = psm_connect(prog, PSM_CONNECT_NO_DIALOGS, conn);

    if (r != PSM_OK) {
        report("connecting to psmd", NULL, r);
        return r;
    }
    if (token_password != NULL) {
        r = psm_token_login(*conn, token_password);
        if (r != PSM_OK) {
            report("logging in to the token", NULL, r);
            psm_conn_free(*conn);
            *conn = NULL;
        }
    }
    return r;
}

/* Finds NAME, printing why not. */
static psm_result find(psm_conn *conn, const char *name, psm_cert **cert)
{
    psm_result r = psm_cert_find(conn, name, cert);

    if (r != PSM_OK)
        report("finding", name, r);
    return r;
}

/* "psm-certutil: PROBLEM[: \"ARG\"] (psm-certutil -h for help)"; returns EXIT_USAGE. */
static int usage_error(const char *problem, const char *arg)
{
    if (arg != NULL)
        fprintf(stderr, "%s: %s: \"%s\" (%s -h for help)\n", prog, problem, arg, prog);
    else
        fprintf(stderr, "%s: %s (%s -h for help)\n", prog, problem, prog);
    return EXIT_USAGE;
}

/* The whole of a file (at most MAX_INPUT_SIZE bytes) in a malloc'd buffer. */
static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t cap = 0;
    size_t n = 0;

    if (f == NULL) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return NULL;
    }
    for (;;) {
        size_t got;
        if (n == cap) {
            unsigned char *bigger;
            /* Room for one byte more than the limit tells a file of
             * exactly MAX_INPUT_SIZE bytes from a larger one. */
            if (cap > MAX_INPUT_SIZE) {
                fprintf(stderr, "%s: %s: larger than %d bytes\n", prog, path, MAX_INPUT_SIZE);
                goto fail;
            }
            cap = cap == 0 ? 64 * 1024 : cap * 2;
            if (cap > MAX_INPUT_SIZE)
                cap = (size_t)MAX_INPUT_SIZE + 1;
            bigger = realloc(buf, cap);
            if (bigger == NULL) {
                fprintf(stderr, "%s: %s: out of memory\n", prog, path);
                goto fail;
            }
            buf = bigger;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        goto fail;
    }
    fclose(f);
    *len = n;
    return buf;

fail:
    free(buf);
    fclose(f);
    return NULL;
}

/* Writes len bytes to path (created or truncated); a file left
 * half-written is removed. A `private_file` is readable by its owner only,
 * even if it existed with a wider mode. Returns 0, or -1 after printing why not. */
static int write_file(const char *path, const unsigned char *data, size_t len, int private_file)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, private_file ? 0600 : 0644);
    size_t done = 0;

    if (fd < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return -1;
    }
    if (private_file && fchmod(fd, 0600) != 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        close(fd);
        return -1;
    }
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        done += (size_t)n;
    }
    if (done < len || close(fd) != 0) {
        fprintf(stderr, "%s: writing %s: %s\n", prog, path, strerror(errno));
        if (done < len)
            close(fd);
        unlink(path);
        return -1;
    }
    return 0;
}

/* DER as PEM ("-----BEGIN label-----", base64 in lines of 64, "-----END
 * label-----") in a malloc'd string; NULL if out of memory. */
static char *pem_encode(const char *label, const uint8_t *der, size_t len)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t chars = (len + 2) / 3 * 4;
    char *pem = malloc(chars + chars / 64 + 2 * strlen(label) + 64);
    char *p = pem;
    size_t i;

    if (pem == NULL)
        return NULL;
    p += sprintf(p, "-----BEGIN %s-----\n", label);
    for (i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)der[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)der[i + 1] << 8;
        if (i + 2 < len)
            v |= der[i + 2];
        *p++ = b64[v >> 18 & 63];
        *p++ = b64[v >> 12 & 63];
        *p++ = i + 1 < len ? b64[v >> 6 & 63] : '=';
        *p++ = i + 2 < len ? b64[v & 63] : '=';
        if ((i / 3 + 1) % 16 == 0 || i + 3 >= len)
            *p++ = '\n'; /* 16 groups of 4: 64 characters a line */
    }
    sprintf(p, "-----END %s-----\n", label);
    return pem;
}

/* The first line of path (without its line end) into buf, which has room
 * for MAX_PASSWORD + 2 bytes. Returns 0, or -1 after printing why not. */
static int read_password_file(const char *path, char *buf)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return -1;
    }
    if (fgets(buf, MAX_PASSWORD + 2, f) == NULL)
        buf[0] = '\0'; /* an empty file: the empty password */
    fclose(f);
    n = strcspn(buf, "\r\n");
    if (n > MAX_PASSWORD) {
        fprintf(stderr, "%s: %s: the password is longer than %d bytes\n", prog, path, MAX_PASSWORD);
        return -1;
    }
    buf[n] = '\0';
    return 0;
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

/* Takes `option PASSWORD` or `option-file FILE` at argv[*a] (advancing *a
 * past it): 1 with the password in *pw (read into buf, MAX_PASSWORD + 2
 * bytes, from a file), 0 if argv[*a] is neither, -1 after printing what is
 * wrong. */
static int password_option(const char *option, int argc, char **argv, int *a, char *buf,
                           const char **pw)
{
    size_t len = strlen(option);

    if (value_option(option, argc, argv, a, pw))
        return 1;
    if (strncmp(argv[*a], option, len) == 0 && strcmp(argv[*a] + len, "-file") == 0 &&
        *a + 1 < argc) {
        if (read_password_file(argv[++*a], buf) != 0)
            return -1;
        *pw = buf;
        return 1;
    }
    return 0;
}

/* The index of the row of `table` (`rows` rows of `row_size` bytes) whose
 * first member, its word, is the `len` bytes at `text`; -1 if none. The
 * word tables below share it through WORD_INDEX. */
static int word_index(const void *table, size_t rows, size_t row_size, const char *text, size_t len)
{
    size_t i;

    for (i = 0; i < rows; i++) {
        const char *word = *(const char *const *)((const char *)table + i * row_size);
        if (strlen(word) == len && strncmp(text, word, len) == 0)
            return (int)i;
    }
    return -1;
}

/* word_index of a whole argument in a table (an array) of {word, ...} rows. */
#define WORD_INDEX(table, arg)                                                                     \
    word_index(table, sizeof table / sizeof table[0], sizeof table[0], arg, strlen(arg))

/* Trust bits by the words of --trust and the trust command. */
static const struct {
    const char *word;
    uint32_t bit;
} trust_words[] = {
    {"ca-tls", PSM_TRUST_CA_TLS_SERVER},        /* C in the SSL field */
    {"ca-tls-client", PSM_TRUST_CA_TLS_CLIENT}, /* T in the SSL field */
    {"ca-email", PSM_TRUST_CA_EMAIL},           /* C in the S/MIME field */
    {"ca-code", PSM_TRUST_CA_CODE},             /* C in the code field */
    {"peer-tls", PSM_TRUST_PEER_TLS},           /* P in the SSL field */
    {"peer-email", PSM_TRUST_PEER_EMAIL},       /* P in the S/MIME field */
    {"distrust", PSM_TRUST_DISTRUSTED},         /* p in every field */
};
#define TRUST_WORDS (sizeof trust_words / sizeof trust_words[0])

/* Parses "ca-tls,peer-email" ("none" or "": no bits) into *bits. With
 * `edits` non-NULL, each word may instead be "+word" or "-word"; the bits
 * of those go to edits[0] (set) and edits[1] (clear), and *bits stays 0.
 * Returns 0, or -1 after printing what is wrong. */
static int parse_trust(const char *text, uint32_t *bits, uint32_t *edits)
{
    const char *p = text;
    int plain = 0;
    int signed_words = 0;

    *bits = 0;
    if (edits != NULL)
        edits[0] = edits[1] = 0;
    if (strcmp(text, "none") == 0)
        return 0;
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        char sign = 0;
        int w;
        size_t i;

        if (*p == '+' || *p == '-') {
            sign = *p++;
            len--;
        }
        w = word_index(trust_words, TRUST_WORDS, sizeof trust_words[0], p, len);
        if (w < 0 || (sign != 0 && edits == NULL)) {
            fprintf(stderr, "%s: unknown trust flag \"%.*s\" in \"%s\" (flags: ", prog,
                    (int)(len + (sign != 0)), p - (sign != 0), text);
            for (i = 0; i < TRUST_WORDS; i++)
                fprintf(stderr, "%s%s", i > 0 ? "," : "", trust_words[i].word);
            fprintf(stderr, ")\n");
            return -1;
        }
        if (sign == '+')
            edits[0] |= trust_words[w].bit;
        else if (sign == '-')
            edits[1] |= trust_words[w].bit;
        else
            *bits |= trust_words[w].bit;
        plain += sign == 0;
        signed_words += sign != 0;
        p += len;
        if (*p == ',')
            p++;
    }
    if (plain > 0 && signed_words > 0) {
        fprintf(stderr, "%s: \"%s\": either all flags or all +flag/-flag edits\n", prog, text);
        return -1;
    }
    return 0;
}

/* The trust bits as words ("ca-tls,ca-email", "none") into out. */
static void trust_as_words(uint32_t trust, char *out, size_t cap)
{
    size_t i;

    out[0] = '\0';
    for (i = 0; i < TRUST_WORDS; i++) {
        if ((trust & trust_words[i].bit) == 0)
            continue;
        if (out[0] != '\0')
            strncat(out, ",", cap - strlen(out) - 1);
        strncat(out, trust_words[i].word, cap - strlen(out) - 1);
    }
    if (out[0] == '\0')
        snprintf(out, cap, "none");
}

/* NSS certutil's trust letters, "SSL,S/MIME,code": C trusted CA, T trusted
 * CA for client authentication, P trusted peer, p distrusted, u has its
 * private key in psmd. out needs 16 bytes. */
static void trust_as_letters(const psm_cert *cert, char *out)
{
    uint32_t t = psm_cert_trust(cert);
    int distrusted = (t & PSM_TRUST_DISTRUSTED) != 0;
    int mine = psm_cert_has_private_key(cert);

    out[0] = '\0';
    strcat(out, t & PSM_TRUST_CA_TLS_SERVER ? "C" : "");
    strcat(out, t & PSM_TRUST_CA_TLS_CLIENT ? "T" : "");
    strcat(out, t & PSM_TRUST_PEER_TLS ? "P" : "");
    strcat(out, distrusted ? "p" : "");
    strcat(out, mine ? "u," : ",");
    strcat(out, t & PSM_TRUST_CA_EMAIL ? "C" : "");
    strcat(out, t & PSM_TRUST_PEER_EMAIL ? "P" : "");
    strcat(out, distrusted ? "p" : "");
    strcat(out, mine ? "u," : ",");
    strcat(out, t & PSM_TRUST_CA_CODE ? "C" : "");
    strcat(out, distrusted ? "p" : "");
    strcat(out, mine ? "u" : "");
}

/* Unix seconds as "2049-12-31" (with_time: "2049-12-31 23:59:59 UTC"). */
static void format_time(int64_t t, int with_time, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL ||
        strftime(out, cap, with_time ? "%Y-%m-%d %H:%M:%S UTC" : "%Y-%m-%d", &tm) == 0)
        snprintf(out, cap, "%" PRId64, t);
}

static int cmd_list(int argc, char **argv)
{
    psm_conn *conn = NULL;
    psm_cert_list *list = NULL;
    uint32_t filter = 0;
    int status = EXIT_FAILED;
    size_t i;
    int a;
    psm_result r;

    for (a = 0; a < argc; a++) {
        if (strcmp(argv[a], "--mine") == 0)
            filter |= PSM_CERTS_USER;
        else if (strcmp(argv[a], "--ca") == 0)
            filter |= PSM_CERTS_CA;
        else if (strcmp(argv[a], "--people") == 0)
            filter |= PSM_CERTS_PEOPLE;
        else if (strcmp(argv[a], "--servers") == 0)
            filter |= PSM_CERTS_SERVERS;
        else
            return usage_error("list: unexpected argument", argv[a]);
    }

    if (open_conn(&conn) != PSM_OK)
        goto cleanup;
    r = psm_cert_list_query(conn, filter, &list);
    if (r != PSM_OK) {
        report("listing certificates", NULL, r);
        goto cleanup;
    }

    printf("%-32s %-11s %-11s %s\n", "NICKNAME", "TRUST", "EXPIRES", "EMAIL");
    for (i = 0; i < psm_cert_list_len(list); i++) {
        /* Borrowed from the list: valid until psm_cert_list_free, not freed here. */
        const psm_cert *cert = psm_cert_list_get(list, i);
        const char *email = psm_cert_email(cert);
        char letters[16];
        char expires[32];

        trust_as_letters(cert, letters);
        format_time(psm_cert_not_after(cert), 0, expires, sizeof expires);
        printf("%-32s %-11s %-11s %s\n", psm_cert_nickname(cert), letters, expires,
               email != NULL ? email : "-");
    }
    status = EXIT_OK;

cleanup:
    psm_cert_list_free(list);
    psm_conn_free(conn);
    return status;
}

static int cmd_show(int argc, char **argv)
{
    psm_conn *conn = NULL;
    psm_cert *cert = NULL;
    const uint8_t *der = NULL;
    size_t der_len = 0;
    uint32_t key_usage = 0;
    int status = EXIT_FAILED;
    char letters[16];
    char words[128];
    char not_before[40];
    char not_after[40];
    psm_result r;

    if (argc != 1)
        return usage_error("show: expected one NAME", NULL);

    if (open_conn(&conn) != PSM_OK)
        goto cleanup;
    if (find(conn, argv[0], &cert) != PSM_OK)
        goto cleanup;
    r = psm_cert_der(cert, &der, &der_len);
    if (r != PSM_OK) {
        report("reading the DER of", argv[0], r);
        goto cleanup;
    }

    trust_as_letters(cert, letters);
    trust_as_words(psm_cert_trust(cert), words, sizeof words);
    format_time(psm_cert_not_before(cert), 1, not_before, sizeof not_before);
    format_time(psm_cert_not_after(cert), 1, not_after, sizeof not_after);
    printf("Nickname:     %s\n", psm_cert_nickname(cert));
    printf("Subject:      %s\n", psm_cert_subject(cert));
    printf("Issuer:       %s\n", psm_cert_issuer(cert));
    printf("Serial:       %s\n", psm_cert_serial_hex(cert));
    printf("Email:        %s\n", psm_cert_email(cert) != NULL ? psm_cert_email(cert) : "-");
    printf("Not before:   %s\n", not_before);
    printf("Not after:    %s\n", not_after);
    printf("Trust:        %s (%s)\n", letters, words);
    printf("CA:           %s\n", psm_cert_is_ca(cert) ? "yes" : "no");
    if (psm_cert_key_usage(cert, &key_usage))
        printf("Key usage:    0x%03x\n", (unsigned)key_usage);
    else
        printf("Key usage:    (any)\n");
    printf("Ext. usage:   %s\n",
           psm_cert_ext_key_usage(cert) != NULL ? psm_cert_ext_key_usage(cert) : "(any)");
    printf("Private key:  %s\n", psm_cert_has_private_key(cert) ? "yes" : "no");
    printf("Built in:     %s\n", psm_cert_is_builtin(cert) ? "yes" : "no");
    printf("DER size:     %zu bytes\n", der_len);
    printf("SHA-256:      %s\n", psm_cert_sha256_hex(cert));
    status = EXIT_OK;

cleanup:
    psm_cert_free(cert);
    psm_conn_free(conn);
    return status;
}

static int cmd_import(int argc, char **argv)
{
    psm_conn *conn = NULL;
    psm_cert *cert = NULL;
    unsigned char *data = NULL;
    size_t len = 0;
    const char *file = NULL;
    const char *nickname = NULL;
    const char *value = NULL;
    uint32_t trust = 0;
    int status = EXIT_FAILED;
    int a;
    psm_result r;

    for (a = 0; a < argc; a++) {
        if (value_option("--nickname", argc, argv, &a, &nickname))
            continue;
        if (value_option("--trust", argc, argv, &a, &value)) {
            if (parse_trust(value, &trust, NULL) != 0)
                return EXIT_USAGE;
        } else if (argv[a][0] != '-' && file == NULL) {
            file = argv[a];
        } else {
            return usage_error("import: unexpected argument", argv[a]);
        }
    }
    if (file == NULL)
        return usage_error("import: expected a FILE", NULL);

    data = read_file(file, &len);
    if (data == NULL)
        goto cleanup;
    if (open_conn(&conn) != PSM_OK)
        goto cleanup;
    /* Every certificate in the file is imported; the first comes back. */
    r = psm_cert_import(conn, data, len, nickname, trust, &cert);
    if (r != PSM_OK) {
        report("importing", file, r);
        goto cleanup;
    }
    printf("imported \"%s\" (sha256:%s)\n", psm_cert_nickname(cert), psm_cert_sha256_hex(cert));
    status = EXIT_OK;

cleanup:
    psm_cert_free(cert);
    psm_conn_free(conn);
    free(data);
    return status;
}

static int cmd_trust(int argc, char **argv)
{
    psm_conn *conn = NULL;
    psm_cert *cert = NULL;
    psm_cert *updated = NULL;
    uint32_t trust = 0;
    uint32_t edits[2] = {0, 0};
    int status = EXIT_FAILED;
    char query[80];
    char letters[16];
    char words[128];
    psm_result r;

    if (argc != 2)
        return usage_error("trust: expected NAME FLAGS", NULL);
    if (parse_trust(argv[1], &trust, edits) != 0)
        return EXIT_USAGE;

    if (open_conn(&conn) != PSM_OK)
        goto cleanup;
    if (find(conn, argv[0], &cert) != PSM_OK)
        goto cleanup;
    /* +flag/-flag edits go in one atomic step, so that they do not undo
     * what another application changed meanwhile; plain flags replace. */
    if ((edits[0] | edits[1]) != 0)
        r = psm_cert_change_trust(conn, cert, edits[0], edits[1]);
    else
        r = psm_cert_set_trust(conn, cert, trust);
    if (r != PSM_OK) {
        report("changing the trust of", argv[0], r);
        goto cleanup;
    }

    /* cert is a snapshot from before the change: look again. */
    snprintf(query, sizeof query, "sha256:%s", psm_cert_sha256_hex(cert));
    if (find(conn, query, &updated) != PSM_OK)
        goto cleanup;
    trust_as_letters(updated, letters);
    trust_as_words(psm_cert_trust(updated), words, sizeof words);
    printf("\"%s\": trust %s (%s)\n", psm_cert_nickname(updated), letters, words);
    status = EXIT_OK;

cleanup:
    psm_cert_free(updated);
    psm_cert_free(cert);
    psm_conn_free(conn);
    return status;
}

static int cmd_delete(int argc, char **argv)
{
    psm_conn *conn = NULL;
    psm_cert *cert = NULL;
    const char *name = NULL;
    int with_key = 0;
    int status = EXIT_FAILED;
    int a;
    psm_result r;

    for (a = 0; a < argc; a++) {
        if (strcmp(argv[a], "--with-key") == 0)
            with_key = 1;
        else if (argv[a][0] != '-' && name == NULL)
            name = argv[a];
        else
            return usage_error("delete: unexpected argument", argv[a]);
    }
    if (name == NULL)
        return usage_error("delete: expected a NAME", NULL);

    if (open_conn(&conn) != PSM_OK)
        goto cleanup;
    if (find(conn, name, &cert) != PSM_OK)
        goto cleanup;
    r = with_key ? psm_cert_delete_with_key(conn, cert) : psm_cert_delete(conn, cert);
    if (r != PSM_OK) {
        report("deleting", name, r);
        goto cleanup;
    }
    printf("deleted \"%s\"%s\n", psm_cert_nickname(cert),
           with_key && psm_cert_has_private_key(cert) ? " and its private key" : "");
    status = EXIT_OK;

cleanup:
    psm_cert_free(cert);
    psm_conn_free(conn);
    return status;
}

static const struct {
    const char *word;
    uint32_t usage;
} usage_words[] = {
    {"tls-server", PSM_USAGE_TLS_SERVER},     {"tls-client", PSM_USAGE_TLS_CLIENT},
    {"email-signer", PSM_USAGE_EMAIL_SIGNER}, {"email-recipient", PSM_USAGE_EMAIL_RECIPIENT},
    {"code-signing", PSM_USAGE_CODE_SIGNING},
};

static int cmd_verify(int argc, char **argv)
{
    psm_conn *conn = NULL;
    psm_cert *cert = NULL;
    psm_verify_result *result = NULL;
    const char *name = NULL;
    const char *host = NULL;
    const char *value = NULL;
    uint32_t usage = 0;
    int64_t at = 0;
    int status = EXIT_FAILED;
    psm_result verdict;
    size_t i;
    int w;
    int a;
    psm_result r;

    for (a = 0; a < argc; a++) {
        if (value_option("--name", argc, argv, &a, &host))
            continue;
        if (value_option("--usage", argc, argv, &a, &value)) {
            w = WORD_INDEX(usage_words, value);
            if (w >= 0)
                usage = usage_words[w].usage;
            if (usage == 0)
                return usage_error("verify: unknown usage", value);
        } else if (value_option("--at", argc, argv, &a, &value)) {
            char *end = NULL;
            errno = 0;
            at = (int64_t)strtoll(value, &end, 10);
            if (errno != 0 || end == value || *end != '\0' || at <= 0)
                return usage_error("verify: --at wants a positive unix time, not", value);
        } else if (argv[a][0] != '-' && name == NULL) {
            name = argv[a];
        } else {
            return usage_error("verify: unexpected argument", argv[a]);
        }
    }
    if (name == NULL || usage == 0)
        return usage_error("verify: expected NAME --usage USAGE", NULL);

    if (open_conn(&conn) != PSM_OK)
        goto cleanup;
    if (find(conn, name, &cert) != PSM_OK)
        goto cleanup;
    /* PSM_OK here only means psmd could judge the certificate; the
     * verdict is the result's status. */
    r = psm_cert_verify(conn, cert, usage, host, at, &result);
    if (r != PSM_OK) {
        report("verifying", name, r);
        goto cleanup;
    }
    verdict = psm_verify_result_status(result);
    if (verdict == PSM_OK)
        printf("VALID: %s\n", psm_verify_result_detail(result));
    else
        printf("INVALID (%s): %s\n", psm_result_str(verdict), psm_verify_result_detail(result));
    printf("chain:\n");
    for (i = 0; i < psm_verify_result_chain_len(result); i++) {
        /* Borrowed from the result: valid until psm_verify_result_free. */
        const psm_cert *c = psm_verify_result_chain_get(result, i);
        const char *nickname = psm_cert_nickname(c);
        printf("  %zu: %s [%s]\n", i, nickname[0] != '\0' ? nickname : "(not in the store)",
               psm_cert_subject(c));
    }
    if (verdict == PSM_OK)
        status = EXIT_OK;

cleanup:
    psm_verify_result_free(result);
    psm_cert_free(cert);
    psm_conn_free(conn);
    return status;
}

static int cmd_crl_import(int argc, char **argv)
{
    psm_conn *conn = NULL;
    unsigned char *data = NULL;
    size_t len = 0;
    int status = EXIT_FAILED;
    psm_result r;

    if (argc != 1)
        return usage_error("crl-import: expected one FILE", NULL);

    data = read_file(argv[0], &len);
    if (data == NULL)
        goto cleanup;
    if (open_conn(&conn) != PSM_OK)
        goto cleanup;
    r = psm_crl_import(conn, data, len);
    if (r != PSM_OK) {
        report("importing the CRL in", argv[0], r);
        goto cleanup;
    }
    printf("imported the CRL in %s\n", argv[0]);
    status = EXIT_OK;

cleanup:
    psm_conn_free(conn);
    free(data);
    return status;
}

/* Key types by the words of keygen --type. */
static const struct {
    const char *word;
    uint32_t type;
    const char *name;
} key_types[] = {
    {"p256", PSM_KEY_EC_P256, "P-256"},        {"p384", PSM_KEY_EC_P384, "P-384"},
    {"ed25519", PSM_KEY_ED25519, "Ed25519"},   {"rsa2048", PSM_KEY_RSA_2048, "RSA-2048"},
    {"rsa3072", PSM_KEY_RSA_3072, "RSA-3072"}, {"rsa4096", PSM_KEY_RSA_4096, "RSA-4096"},
};

/* Signature algorithms by the words of sign --alg. */
static const struct {
    const char *word;
    uint32_t alg;
} sig_algs[] = {
    {"ecdsa-sha256", PSM_SIG_ECDSA_SHA256},
    {"ecdsa-sha384", PSM_SIG_ECDSA_SHA384},
    {"ed25519", PSM_SIG_ED25519},
    {"rsa-pkcs1-sha256", PSM_SIG_RSA_PKCS1_SHA256},
    {"rsa-pss-sha256", PSM_SIG_RSA_PSS_SHA256},
};

/* Most --san options keygen takes. */
#define MAX_SANS 64

static int cmd_keygen(int argc, char **argv)
{
    psm_conn *conn = NULL;
    const char *sans[MAX_SANS];
    size_t n_sans = 0;
    const char *subject = NULL;
    const char *nickname = NULL;
    const char *out = NULL;
    const char *value = NULL;
    uint8_t *csr = NULL;
    size_t csr_len = 0;
    char *pem = NULL;
    int type = -1;
    int status = EXIT_FAILED;
    int w;
    int a;
    psm_result r;

    for (a = 0; a < argc; a++) {
        if (value_option("--subject", argc, argv, &a, &subject) ||
            value_option("--nickname", argc, argv, &a, &nickname) ||
            value_option("--out", argc, argv, &a, &out))
            continue;
        if (value_option("--type", argc, argv, &a, &value)) {
            w = WORD_INDEX(key_types, value);
            if (w >= 0)
                type = w;
            if (type < 0)
                return usage_error("keygen: unknown key type", value);
        } else if (value_option("--san", argc, argv, &a, &value)) {
            if (n_sans == MAX_SANS)
                return usage_error("keygen: too many --san options", NULL);
            sans[n_sans++] = value;
        } else {
            return usage_error("keygen: unexpected argument", argv[a]);
        }
    }
    if (type < 0 || subject == NULL || out == NULL)
        return usage_error("keygen: expected --type TYPE --subject DN --out FILE", NULL);

    if (open_conn(&conn) != PSM_OK)
        goto cleanup;
    /* The private key stays in psmd; what comes back is the request to
     * send to a CA. Importing the certificate it issues binds the two. */
    r = psm_key_generate_with_sans(conn, key_types[type].type, subject, sans, n_sans, nickname,
                                   &csr, &csr_len);
    if (r != PSM_OK) {
        report("generating a key for", subject, r);
        goto cleanup;
    }
    pem = pem_encode("CERTIFICATE REQUEST", csr, csr_len);
    if (pem == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto cleanup;
    }
    if (write_file(out, (const unsigned char *)pem, strlen(pem), 0) != 0)
        goto cleanup;
    printf("generated a new %s key; the certificate request for \"%s\" is in %s\n",
           key_types[type].name, subject, out);
    status = EXIT_OK;

cleanup:
    free(pem);
    psm_free(csr);
    psm_conn_free(conn);
    return status;
}

static int cmd_import_p12(int argc, char **argv)
{
    psm_conn *conn = NULL;
    psm_cert *cert = NULL;
    unsigned char *data = NULL;
    size_t len = 0;
    const char *file = NULL;
    const char *password = NULL;
    char password_buf[MAX_PASSWORD + 2];
    int status = EXIT_FAILED;
    int a;
    int got;
    psm_result r;

    for (a = 0; a < argc; a++) {
        got = password_option("--password", argc, argv, &a, password_buf, &password);
        if (got < 0)
            return EXIT_FAILED;
        if (got > 0)
            continue;
        if (argv[a][0] != '-' && file == NULL)
            file = argv[a];
        else
            return usage_error("import-p12: unexpected argument", argv[a]);
    }
    if (file == NULL)
        return usage_error("import-p12: expected a FILE", NULL);

    data = read_file(file, &len);
    if (data == NULL)
        goto cleanup;
    if (open_conn(&conn) != PSM_OK)
        goto cleanup;
    /* NULL would mean "ask the user", which psm cannot do yet. */
    r = psm_pkcs12_import(conn, data, len, password, &cert);
    if (r != PSM_OK) {
        report("importing", file, r);
        goto cleanup;
    }
    printf("imported \"%s\" (sha256:%s)%s\n", psm_cert_nickname(cert), psm_cert_sha256_hex(cert),
           psm_cert_has_private_key(cert) ? " with its private key" : "");
    status = EXIT_OK;

cleanup:
    psm_cert_free(cert);
    psm_conn_free(conn);
    free(data);
    return status;
}

static int cmd_export_p12(int argc, char **argv)
{
    psm_conn *conn = NULL;
    psm_cert *cert = NULL;
    uint8_t *p12 = NULL;
    size_t len = 0;
    const char *name = NULL;
    const char *out = NULL;
    const char *password = NULL;
    char password_buf[MAX_PASSWORD + 2];
    int status = EXIT_FAILED;
    int a;
    int got;
    psm_result r;

    for (a = 0; a < argc; a++) {
        got = password_option("--password", argc, argv, &a, password_buf, &password);
        if (got < 0)
            return EXIT_FAILED;
        if (got > 0)
            continue;
        if (value_option("--out", argc, argv, &a, &out))
            continue;
        if (argv[a][0] != '-' && name == NULL)
            name = argv[a];
        else
            return usage_error("export-p12: unexpected argument", argv[a]);
    }
    if (name == NULL || out == NULL)
        return usage_error("export-p12: expected NAME --out FILE", NULL);

    if (open_conn(&conn) != PSM_OK)
        goto cleanup;
    if (find(conn, name, &cert) != PSM_OK)
        goto cleanup;
    r = psm_pkcs12_export(conn, cert, password, &p12, &len);
    if (r != PSM_OK) {
        report("exporting", name, r);
        goto cleanup;
    }
    /* The file holds the private key: readable by its owner only. */
    if (write_file(out, p12, len, 1) != 0)
        goto cleanup;
    printf("exported \"%s\" and its private key to %s\n", psm_cert_nickname(cert), out);
    status = EXIT_OK;

cleanup:
    psm_free(p12);
    psm_cert_free(cert);
    psm_conn_free(conn);
    return status;
}

static int cmd_login(int argc, char **argv)
{
    psm_conn *conn = NULL;
    const char *password = NULL;
    char password_buf[MAX_PASSWORD + 2];
    int status = EXIT_FAILED;
    int a;
    int got;
    psm_result r;

    for (a = 0; a < argc; a++) {
        got = password_option("--password", argc, argv, &a, password_buf, &password);
        if (got < 0)
            return EXIT_FAILED;
        if (got == 0)
            return usage_error("login: unexpected argument", argv[a]);
    }
    if (password == NULL)
        password = token_password;

    if (open_conn(&conn) != PSM_OK)
        goto cleanup;
    /* Without a password, a login succeeds only for a token that has none
     * (which any password would unlock): ask that first. */
    r = psm_token_login(conn, NULL);
    if (r == PSM_OK) {
        printf("the token has no password: it is always unlocked\n");
        status = EXIT_OK;
        goto cleanup;
    }
    if (r != PSM_ERR_LOGIN_REQUIRED || password == NULL) {
        report("logging in to the token", NULL, r);
        goto cleanup;
    }
    r = psm_token_login(conn, password);
    if (r != PSM_OK) {
        report("logging in to the token", NULL, r);
        goto cleanup;
    }
    printf("logged in to the token (until %s exits)\n", prog);
    status = EXIT_OK;

cleanup:
    psm_conn_free(conn);
    return status;
}

static int cmd_passwd(int argc, char **argv)
{
    psm_conn *conn = NULL;
    const char *old_pw = NULL;
    const char *new_pw = NULL;
    char old_buf[MAX_PASSWORD + 2];
    char new_buf[MAX_PASSWORD + 2];
    int status = EXIT_FAILED;
    int a;
    int got;
    psm_result r;

    for (a = 0; a < argc; a++) {
        got = password_option("--old", argc, argv, &a, old_buf, &old_pw);
        if (got == 0)
            got = password_option("--new", argc, argv, &a, new_buf, &new_pw);
        if (got < 0)
            return EXIT_FAILED;
        if (got == 0)
            return usage_error("passwd: unexpected argument", argv[a]);
    }
    /* psm could ask for a new password itself one day; this tool has no
     * dialogs (PSM_CONNECT_NO_DIALOGS), so it must be given. */
    if (new_pw == NULL)
        return usage_error("passwd: expected --new PASSWORD or --new-file FILE", NULL);
    if (old_pw == NULL)
        old_pw = token_password;

    if (open_conn(&conn) != PSM_OK)
        goto cleanup;
    /* One atomic step: afterwards the old password or the new one works,
     * never neither. A wrong old password costs a second. */
    r = psm_token_set_password(conn, old_pw, new_pw);
    if (r != PSM_OK) {
        report("changing the token password", NULL, r);
        if (r == PSM_ERR_LOGIN_REQUIRED && old_pw == NULL)
            fprintf(stderr, "%s: the token has a password: give it with --old or --old-file\n",
                    prog);
        goto cleanup;
    }
    if (new_pw[0] == '\0')
        printf("the token password is removed: the token is always unlocked\n");
    else
        printf("the token password is %s\n", old_pw != NULL ? "changed" : "set");
    status = EXIT_OK;

cleanup:
    psm_conn_free(conn);
    return status;
}

static int cmd_sign(int argc, char **argv)
{
    psm_conn *conn = NULL;
    psm_cert *cert = NULL;
    unsigned char *data = NULL;
    size_t len = 0;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    const char *name = NULL;
    const char *in = NULL;
    const char *out = NULL;
    const char *value = NULL;
    uint32_t alg = 0;
    int status = EXIT_FAILED;
    int w;
    int a;
    psm_result r;

    for (a = 0; a < argc; a++) {
        if (value_option("--in", argc, argv, &a, &in) ||
            value_option("--out", argc, argv, &a, &out))
            continue;
        if (value_option("--alg", argc, argv, &a, &value)) {
            w = WORD_INDEX(sig_algs, value);
            if (w >= 0)
                alg = sig_algs[w].alg;
            if (alg == 0)
                return usage_error("sign: unknown signature algorithm", value);
        } else if (argv[a][0] != '-' && name == NULL) {
            name = argv[a];
        } else {
            return usage_error("sign: unexpected argument", argv[a]);
        }
    }
    if (name == NULL || alg == 0 || in == NULL || out == NULL)
        return usage_error("sign: expected NAME --alg ALG --in FILE --out SIG", NULL);

    data = read_file(in, &len);
    if (data == NULL)
        goto cleanup;
    if (open_conn(&conn) != PSM_OK)
        goto cleanup;
    if (find(conn, name, &cert) != PSM_OK)
        goto cleanup;
    /* The private key never leaves psmd: the data goes there instead. */
    r = psm_key_sign(conn, cert, alg, data, len, &sig, &sig_len);
    if (r != PSM_OK) {
        report("signing with", name, r);
        goto cleanup;
    }
    if (write_file(out, sig, sig_len, 0) != 0)
        goto cleanup;
    printf("signed %s with \"%s\": %zu bytes in %s\n", in, psm_cert_nickname(cert), sig_len, out);
    status = EXIT_OK;

cleanup:
    psm_free(sig);
    psm_cert_free(cert);
    psm_conn_free(conn);
    free(data);
    return status;
}

/* The commands: a row and a function each. */
static const struct command {
    const char *name;
    const char *args;
    const char *help;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"list", "[--mine|--ca|--people|--servers]...",
     "certificates, by nickname, with trust, expiry and email", cmd_list},
    {"show", "NAME", "every field of a certificate, its DER size and SHA-256", cmd_show},
    {"import", "FILE [--nickname N] [--trust FLAGS]",
     "certificates from PEM, DER or PKCS#7 (.p7b); names and trusts the first", cmd_import},
    {"trust", "NAME FLAGS|+FLAG,-FLAG...", "replace the trust, or set (+) and clear (-) flags",
     cmd_trust},
    {"delete", "NAME [--with-key]", "remove a certificate (and its private key)", cmd_delete},
    {"verify", "NAME --usage USAGE [--name HOST_OR_EMAIL] [--at UNIXTIME]",
     "check a certificate; exit status 0 only when valid", cmd_verify},
    {"crl-import", "FILE", "a CRL (DER or PEM), checked by later verifications", cmd_crl_import},
    {"keygen", "--type TYPE --subject DN [--san SAN]... [--nickname N] --out CSR",
     "a private key in psmd and its certificate request (PEM); import the issued\n"
     "      certificate to bind it (its nickname: N)",
     cmd_keygen},
    {"import-p12", "FILE [--password PW | --password-file F]",
     "a private key and its certificates from PKCS#12 (.p12/.pfx)", cmd_import_p12},
    {"export-p12", "NAME --out FILE [--password PW | --password-file F]",
     "a certificate and its private key as PKCS#12 (file mode 0600)", cmd_export_p12},
    {"login", "[--password PW | --password-file F]",
     "check the token password (a login lasts only as long as this process)", cmd_login},
    {"passwd", "[--old PW | --old-file F] (--new PW | --new-file F)",
     "set, change or (--new \"\") remove the token password", cmd_passwd},
    {"sign", "NAME --alg ALG --in FILE --out SIG",
     "sign FILE with the private key of NAME; the raw signature goes to SIG", cmd_sign},
};

#define COMMANDS (sizeof commands / sizeof commands[0])

static void print_usage(FILE *out)
{
    size_t i;

    fprintf(out,
            "usage: %s COMMAND [ARG...]\n"
            "       %s --password PW | --password-file F COMMAND [ARG...]\n\n"
            "A password before the command logs in to the token first (a login lasts\n"
            "as long as this process): needed for key commands once the token has one.\n\n"
            "commands:\n",
            prog, prog);
    for (i = 0; i < COMMANDS; i++)
        fprintf(out, "  %s %s\n      %s\n", commands[i].name, commands[i].args, commands[i].help);
    fprintf(out, "\n"
                 "NAME   a nickname, an email address, or sha256:<hex>\n"
                 "FLAGS  comma-separated: ca-tls, ca-tls-client, ca-email, ca-code,\n"
                 "       peer-tls, peer-email, distrust; or none\n"
                 "USAGE  tls-server, tls-client, email-signer, email-recipient, code-signing\n"
                 "TRUST  as NSS certutil shows it, \"SSL,S/MIME,code\": C trusted CA,\n"
                 "       T trusted client CA, P trusted peer, p distrusted, u private key\n"
                 "TYPE   p256, p384, ed25519, rsa2048, rsa3072, rsa4096\n"
                 "DN     most significant last: \"CN=Alice,O=Example,C=DE\"\n"
                 "SAN    dns:NAME, ip:ADDRESS or email:ADDRESS\n"
                 "ALG    ecdsa-sha256, ecdsa-sha384 (EC keys), ed25519,\n"
                 "       rsa-pkcs1-sha256, rsa-pss-sha256 (RSA keys)\n"
                 "PW     passwords on the command line are visible to other users of this\n"
                 "       machine (ps, /proc): use them for tests only; --password-file F,\n"
                 "       --old-file F and --new-file F read the first line of F instead\n");
}

int main(int argc, char **argv)
{
    static char password_buf[MAX_PASSWORD + 2];
    size_t i;
    int a = 1;
    int got;
    int status;

    /* Options before the command: the token password. */
    while (a < argc && argv[a][0] == '-' && strcmp(argv[a], "-h") != 0 &&
           strcmp(argv[a], "--help") != 0) {
        got = password_option("--password", argc, argv, &a, password_buf, &token_password);
        if (got < 0)
            return EXIT_FAILED;
        if (got == 0)
            return usage_error(
                a + 1 < argc ? "unknown option" : "unknown option, or no value after it", argv[a]);
        a++;
    }
    if (a >= argc || strcmp(argv[a], "-h") == 0 || strcmp(argv[a], "--help") == 0 ||
        strcmp(argv[a], "help") == 0) {
        print_usage(a >= argc ? stderr : stdout);
        return a >= argc ? EXIT_USAGE : EXIT_OK;
    }
    for (i = 0; i < COMMANDS; i++) {
        if (strcmp(argv[a], commands[i].name) == 0)
            break;
    }
    if (i == COMMANDS)
        return usage_error("unknown command", argv[a]);

    status = commands[i].run(argc - a - 1, argv + a + 1);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "%s: writing to stdout: %s\n", prog, strerror(errno));
        status = EXIT_FAILED;
    }
    return status;
}
