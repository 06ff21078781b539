/* psm-certutil: list, show, import, trust, delete and verify the
 * certificates in psmd's store, and import CRLs.
 *
 *   $ psm-certutil import root.pem --trust ca-tls,ca-email
 *   imported "Example Root" (sha256:3c0a...)
 *   $ psm-certutil list --ca
 *   NICKNAME                         TRUST       EXPIRES     EMAIL
 *   Example Root                     C,C,        2049-12-31  -
 *   $ psm-certutil verify www.example.com --usage tls-server --name www.example.com
 *   VALID: valid for TLS server authentication as www.example.com; path: ...
 *
 * NAME is anything psm_cert_find accepts: a nickname, an email address or
 * sha256:<hex>. Run with -h for every command. Each command is a function
 * in the table at the bottom; it parses its own arguments, connects, and
 * returns the exit status.
 */

#define _POSIX_C_SOURCE 200809L

#include <psm.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Exit statuses: success (and, for verify, a valid certificate), failure
 * (including an invalid certificate), and a command line we do not understand. */
#define EXIT_OK 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2

/* Largest file import and crl-import read; certificate bundles and CRLs
 * of big public CAs stay well below it. */
#define MAX_INPUT_SIZE (64 * 1024 * 1024)

static const char *prog = "psm-certutil";

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

static psm_result open_conn(psm_conn **conn)
{
    psm_result r = psm_connect(prog, PSM_CONNECT_NO_DIALOGS, conn);

    if (r != PSM_OK)
        report("connecting to psmd", NULL, r);
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
        size_t i;

        if (*p == '+' || *p == '-') {
            sign = *p++;
            len--;
        }
        for (i = 0; i < TRUST_WORDS; i++) {
            if (strlen(trust_words[i].word) == len && strncmp(p, trust_words[i].word, len) == 0)
                break;
        }
        if (i == TRUST_WORDS || (sign != 0 && edits == NULL)) {
            fprintf(stderr, "%s: unknown trust flag \"%.*s\" in \"%s\" (flags: ", prog,
                    (int)(len + (sign != 0)), p - (sign != 0), text);
            for (i = 0; i < TRUST_WORDS; i++)
                fprintf(stderr, "%s%s", i > 0 ? "," : "", trust_words[i].word);
            fprintf(stderr, ")\n");
            return -1;
        }
        if (sign == '+')
            edits[0] |= trust_words[i].bit;
        else if (sign == '-')
            edits[1] |= trust_words[i].bit;
        else
            *bits |= trust_words[i].bit;
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
    uint32_t trust = 0;
    int status = EXIT_FAILED;
    int a;
    psm_result r;

    for (a = 0; a < argc; a++) {
        if (strcmp(argv[a], "--nickname") == 0 && a + 1 < argc) {
            nickname = argv[++a];
        } else if (strcmp(argv[a], "--trust") == 0 && a + 1 < argc) {
            if (parse_trust(argv[++a], &trust, NULL) != 0)
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
    uint32_t usage = 0;
    int64_t at = 0;
    int status = EXIT_FAILED;
    psm_result verdict;
    size_t i;
    int a;
    psm_result r;

    for (a = 0; a < argc; a++) {
        if (strcmp(argv[a], "--usage") == 0 && a + 1 < argc) {
            a++;
            for (i = 0; i < sizeof usage_words / sizeof usage_words[0]; i++) {
                if (strcmp(argv[a], usage_words[i].word) == 0)
                    usage = usage_words[i].usage;
            }
            if (usage == 0)
                return usage_error("verify: unknown usage", argv[a]);
        } else if (strcmp(argv[a], "--name") == 0 && a + 1 < argc) {
            host = argv[++a];
        } else if (strcmp(argv[a], "--at") == 0 && a + 1 < argc) {
            char *end = NULL;
            errno = 0;
            at = (int64_t)strtoll(argv[++a], &end, 10);
            if (errno != 0 || end == argv[a] || *end != '\0' || at <= 0)
                return usage_error("verify: --at wants a positive unix time, not", argv[a]);
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

/* The commands. Key and PKCS#12 commands (keygen, p12-import, p12-export)
 * join here as psm.h grows them: a row and a function. */
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
};

#define COMMANDS (sizeof commands / sizeof commands[0])

static void print_usage(FILE *out)
{
    size_t i;

    fprintf(out, "usage: %s COMMAND [ARG...]\n\ncommands:\n", prog);
    for (i = 0; i < COMMANDS; i++)
        fprintf(out, "  %s %s\n      %s\n", commands[i].name, commands[i].args, commands[i].help);
    fprintf(out, "\n"
                 "NAME   a nickname, an email address, or sha256:<hex>\n"
                 "FLAGS  comma-separated: ca-tls, ca-tls-client, ca-email, ca-code,\n"
                 "       peer-tls, peer-email, distrust; or none\n"
                 "USAGE  tls-server, tls-client, email-signer, email-recipient, code-signing\n"
                 "TRUST  as NSS certutil shows it, \"SSL,S/MIME,code\": C trusted CA,\n"
                 "       T trusted client CA, P trusted peer, p distrusted, u private key\n");
}

int main(int argc, char **argv)
{
    size_t i;
    int status;

    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    for (i = 0; i < COMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            break;
    }
    if (i == COMMANDS)
        return usage_error("unknown command", argv[1]);

    status = commands[i].run(argc - 2, argv + 2);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "%s: writing to stdout: %s\n", prog, strerror(errno));
        status = EXIT_FAILED;
    }
    return status;
}
