/* psm-fetch: an HTTPS GET through psmd, the way an application uses psm's
 * TLS channels.
 *
 *   $ psm-fetch https://localhost:4433/        the body on stdout; the HTTP
 *                                              status and psm's security
 *                                              information on stderr
 *   $ psm-fetch --ask https://self-signed.example/
 *
 * psmd resolves the host, connects, runs TLS and checks the server's
 * certificate against the user's trust settings (psm-certutil edits them);
 * this program only ever sees plaintext, on psm_ssl_fd. It writes the
 * request and reads the answer in one select() loop, as a program with
 * other descriptors to watch would.
 *
 * A certificate psm cannot verify fails with its precise error
 * (PSM_ERR_CERT_UNKNOWN_ISSUER, PSM_ERR_CERT_EXPIRED, ...). With --ask,
 * psm-fetch installs a prompt handler instead: psmd's question is shown on
 * the terminal and the answer (once, always, reject) goes back to psmd.
 * With --dialogs, or when $PSM_BROWSER is set, psmd asks in its own HTML
 * dialog: psm-fetch prints the dialog's URL and starts $PSM_BROWSER on it
 * (e.g. PSM_BROWSER="chromium --app={url}"), then waits for the answer
 * (see psm-dialogs.h). --security shows the connection's security in
 * psm's dialog once the page arrived.
 *
 * Exit status: 0 when the whole response arrived (whatever its HTTP
 * status), 1 on any failure, 2 for a command line it does not understand.
 */

#define _POSIX_C_SOURCE 200809L

#include <psm.h>

#include "psm-dialogs.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define EXIT_OK 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2

/* Longest host name (RFC 1035's 253, with room for an IPv6 literal). */
#define MAX_HOST 256
/* Longest request we build (the path is most of it). */
#define MAX_REQUEST 8192
/* Largest response header we accept. */
#define MAX_HEADER (64 * 1024)
/* Longest chunk-size or trailer line of a chunked body we accept. */
#define MAX_CHUNK_LINE 1024
/* Bytes read from the channel at a time. */
#define READ_CHUNK (64 * 1024)
/* How long the server may stay silent before we give up, in seconds. */
#define IDLE_TIMEOUT_SECS 60

static const char *prog = "psm-fetch";

struct url {
    char host[MAX_HOST];
    uint16_t port;
    const char *path;
};

/* How the end of the body is found (RFC 9112 section 6.3). */
enum body_mode { BODY_UNTIL_CLOSE, BODY_LENGTH, BODY_CHUNKED };

enum chunk_state {
    CHUNK_SIZE,     /* reading the hex size line */
    CHUNK_DATA,     /* copying `remaining` bytes */
    CHUNK_DATA_END, /* the CRLF after the data */
    CHUNK_TRAILER,  /* trailer lines up to an empty one */
    CHUNK_DONE
};

struct response {
    char header[MAX_HEADER + 1];
    size_t header_len;
    int header_done;
    int status;
    enum body_mode mode;
    unsigned long long remaining; /* BODY_LENGTH: of the body; BODY_CHUNKED: of the chunk */
    enum chunk_state chunk;
    char line[MAX_CHUNK_LINE];
    size_t line_len;
    int complete;
};

/* "psm-fetch: WHAT failed: <result>: <detail>" */
static void report(const char *what, psm_result r)
{
    /* Read psm_last_error before any other psm call on this thread. */
    const char *detail = psm_last_error();

    fprintf(stderr, "%s: %s failed: %s%s%s\n", prog, what, psm_result_str(r),
            detail[0] != '\0' ? ": " : "", detail);
}

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: %s [--ask | --dialogs] [--security] https://HOST[:PORT][/PATH]\n"
            "  --ask       ask on the terminal when psm cannot verify the server's certificate\n"
            "  --dialogs   let psm ask in its HTML dialog (the default when PSM_BROWSER is set)\n"
            "  --security  then show the connection's security in psm's dialog\n",
            prog);
}

/* Splits "https://host[:port][/path]" (host may be an [IPv6] literal).
 * Returns 0, or -1 after printing why not. */
static int parse_url(const char *text, struct url *u)
{
    const char *p = text + strlen("https://");
    const char *host_end;
    const char *after;
    size_t host_len;

    if (strncasecmp(text, "https://", strlen("https://")) != 0) {
        fprintf(stderr, "%s: only https:// URLs: \"%s\"\n", prog, text);
        return -1;
    }
    if (*p == '[') {
        host_end = strchr(p, ']');
        if (host_end == NULL) {
            fprintf(stderr, "%s: no ']' after the IPv6 address in \"%s\"\n", prog, text);
            return -1;
        }
        p++;
        after = host_end + 1;
    } else {
        host_end = p + strcspn(p, ":/?#");
        after = host_end;
    }
    host_len = (size_t)(host_end - p);
    if (host_len == 0 || host_len >= sizeof u->host || memchr(p, '@', host_len) != NULL) {
        fprintf(stderr, "%s: no usable host in \"%s\"\n", prog, text);
        return -1;
    }
    memcpy(u->host, p, host_len);
    u->host[host_len] = '\0';

    u->port = 443;
    if (*after == ':') {
        char *end;
        unsigned long port;
        errno = 0;
        port = strtoul(after + 1, &end, 10);
        if (errno != 0 || end == after + 1 || port == 0 || port > 65535 ||
            (*end != '\0' && *end != '/' && *end != '?')) {
            fprintf(stderr, "%s: bad port in \"%s\"\n", prog, text);
            return -1;
        }
        u->port = (uint16_t)port;
        after = end;
    }
    u->path = *after == '\0' ? "/" : after;
    if (*u->path != '/' || strpbrk(u->path, " \r\n\t#") != NULL) {
        fprintf(stderr, "%s: the path must start with '/' and hold no spaces or '#': \"%s\"\n",
                prog, text);
        return -1;
    }
    return 0;
}

/* The request, into buf. Returns its length, or 0 if it does not fit. */
static size_t build_request(const struct url *u, char *buf, size_t cap)
{
    char host[MAX_HOST + 16];
    int n;

    /* An IPv6 literal keeps its brackets in the Host header; the default
     * port is left out, as browsers do. */
    if (strchr(u->host, ':') != NULL)
        n = snprintf(host, sizeof host, "[%s]", u->host);
    else
        n = snprintf(host, sizeof host, "%s", u->host);
    if (u->port != 443)
        n += snprintf(host + n, sizeof host - (size_t)n, ":%u", (unsigned)u->port);
    n = snprintf(buf, cap,
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "User-Agent: psm-fetch/%s\r\n"
                 "Accept: */*\r\n"
                 "Connection: close\r\n"
                 "\r\n",
                 u->path, host, psm_version());
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Writes body bytes to stdout. Returns 0, or -1 after printing why not. */
static int emit(const char *data, size_t len)
{
    if (len > 0 && fwrite(data, 1, len, stdout) != len) {
        fprintf(stderr, "%s: writing to stdout: %s\n", prog, strerror(errno));
        return -1;
    }
    return 0;
}

/* Feeds body bytes of a chunked response through the decoder. */
static int feed_chunked(struct response *r, const char *data, size_t len)
{
    while (len > 0 && r->chunk != CHUNK_DONE) {
        if (r->chunk == CHUNK_DATA) {
            size_t n = len < r->remaining ? len : (size_t)r->remaining;
            if (emit(data, n) != 0)
                return -1;
            data += n;
            len -= n;
            r->remaining -= n;
            if (r->remaining == 0)
                r->chunk = CHUNK_DATA_END;
            continue;
        }
        /* The other states read lines. */
        if (*data != '\n') {
            if (r->line_len + 1 >= sizeof r->line) {
                fprintf(stderr, "%s: a chunk line longer than %d bytes\n", prog, MAX_CHUNK_LINE);
                return -1;
            }
            r->line[r->line_len++] = *data;
            data++;
            len--;
            continue;
        }
        data++;
        len--;
        if (r->line_len > 0 && r->line[r->line_len - 1] == '\r')
            r->line_len--;
        r->line[r->line_len] = '\0';
        if (r->chunk == CHUNK_SIZE) {
            char *end;
            errno = 0;
            r->remaining = strtoull(r->line, &end, 16);
            if (errno != 0 || end == r->line || (*end != '\0' && *end != ';' && *end != ' ')) {
                fprintf(stderr, "%s: bad chunk size line \"%s\"\n", prog, r->line);
                return -1;
            }
            r->chunk = r->remaining == 0 ? CHUNK_TRAILER : CHUNK_DATA;
        } else if (r->chunk == CHUNK_DATA_END) {
            if (r->line_len != 0) {
                fprintf(stderr, "%s: no line end after a chunk's data\n", prog);
                return -1;
            }
            r->chunk = CHUNK_SIZE;
        } else if (r->line_len == 0) { /* CHUNK_TRAILER: the empty line ends it */
            r->chunk = CHUNK_DONE;
        }
        r->line_len = 0;
    }
    r->complete = r->chunk == CHUNK_DONE;
    return 0;
}

static int feed_body(struct response *r, const char *data, size_t len)
{
    switch (r->mode) {
    case BODY_CHUNKED:
        return feed_chunked(r, data, len);
    case BODY_LENGTH:
        if (len > r->remaining)
            len = (size_t)r->remaining; /* a server that sends more is ignored */
        r->remaining -= len;
        r->complete = r->remaining == 0;
        return emit(data, len);
    case BODY_UNTIL_CLOSE:
        break;
    }
    return emit(data, len);
}

/* The value of header `name` (lower-case, with the colon) in the header
 * block, or NULL. */
static const char *header_value(const char *header, const char *name)
{
    const char *line = strchr(header, '\n');

    while (line != NULL && line[1] != '\0') {
        line++;
        if (strncasecmp(line, name, strlen(name)) == 0) {
            const char *v = line + strlen(name);
            while (*v == ' ' || *v == '\t')
                v++;
            return v;
        }
        line = strchr(line, '\n');
    }
    return NULL;
}

/* True if a Transfer-Encoding value (to the end of its line) ends in
 * "chunked", the one coding that says where the body ends. */
static int is_chunked(const char *value)
{
    size_t len = strcspn(value, "\r\n");

    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    return len >= 7 && strncasecmp(value + len - 7, "chunked", 7) == 0;
}

/* Parses the complete header in r->header (up to `end`, the body after it). */
static int parse_header(struct response *r, size_t end)
{
    const char *te;
    const char *cl;
    char saved = r->header[end];

    r->header[end] = '\0';
    if (sscanf(r->header, "HTTP/%*u.%*u %d", &r->status) != 1) {
        fprintf(stderr, "%s: not an HTTP response: \"%.40s\"\n", prog, r->header);
        return -1;
    }
    fprintf(stderr, "== %.*s\n", (int)strcspn(r->header, "\r\n"), r->header);
    te = header_value(r->header, "transfer-encoding:");
    cl = header_value(r->header, "content-length:");
    r->mode = BODY_UNTIL_CLOSE;
    if (r->status / 100 == 1 || r->status == 204 || r->status == 304) {
        r->mode = BODY_LENGTH;
        r->remaining = 0;
    } else if (te != NULL && is_chunked(te)) {
        r->mode = BODY_CHUNKED;
        r->chunk = CHUNK_SIZE;
    } else if (cl != NULL) {
        char *stop;
        errno = 0;
        r->remaining = strtoull(cl, &stop, 10);
        if (errno != 0 || stop == cl) {
            fprintf(stderr, "%s: bad Content-Length\n", prog);
            return -1;
        }
        r->mode = BODY_LENGTH;
    }
    r->complete = r->mode == BODY_LENGTH && r->remaining == 0;
    r->header[end] = saved;
    return 0;
}

/* Feeds bytes read from the channel: the header first, then the body. */
static int feed(struct response *r, const char *data, size_t len)
{
    char *end;
    size_t body_at;
    size_t old_len = r->header_len;

    if (r->header_done)
        return feed_body(r, data, len);
    if (len > MAX_HEADER - r->header_len) {
        fprintf(stderr, "%s: the response header is larger than %d bytes\n", prog, MAX_HEADER);
        return -1;
    }
    memcpy(r->header + r->header_len, data, len);
    r->header_len += len;
    r->header[r->header_len] = '\0';
    end = strstr(r->header, "\r\n\r\n");
    if (end == NULL)
        return 0;
    body_at = (size_t)(end - r->header) + 4;
    r->header_done = 1;
    if (parse_header(r, body_at) != 0)
        return -1;
    /* What came after the header in this read is the start of the body. */
    return feed_body(r, data + (body_at - old_len), len - (body_at - old_len));
}

/* Prints JSON indented by two spaces per level; strings are copied as they are. */
static void print_json(FILE *out, const char *json)
{
    const char *p;
    int depth = 0;
    int in_string = 0;

    for (p = json; *p != '\0'; p++) {
        if (in_string) {
            fputc(*p, out);
            if (*p == '\\' && p[1] != '\0')
                fputc(*++p, out);
            else if (*p == '"')
                in_string = 0;
            continue;
        }
        switch (*p) {
        case '"':
            in_string = 1;
            fputc(*p, out);
            break;
        case '{':
        case '[':
            fputc(*p, out);
            if (p[1] == '}' || p[1] == ']') {
                fputc(*++p, out);
                break;
            }
            fprintf(out, "\n%*s", 2 * ++depth, "");
            break;
        case '}':
        case ']':
            fprintf(out, "\n%*s%c", 2 * --depth, "", *p);
            break;
        case ',':
            fprintf(out, ",\n%*s", 2 * depth, "");
            break;
        case ':':
            fputs(": ", out);
            break;
        default:
            if (!isspace((unsigned char)*p))
                fputc(*p, out);
        }
    }
    fputc('\n', out);
}

static void print_security_info(psm_conn *conn, const psm_ssl *ssl)
{
    char *json = NULL;
    psm_result r = psm_ssl_info_json(conn, ssl, &json);

    if (r != PSM_OK) {
        report("reading the security information", r);
        return;
    }
    fprintf(stderr, "== security information (psm_ssl_info_json)\n");
    print_json(stderr, json);
    psm_free(json);
}

/* --ask: psmd's question on the terminal. Runs inside psm_ssl_connect. An
 * answer that is not one of the choices cancels (returning an error
 * without answering makes libpsm cancel). */
static psm_result ask_on_terminal(void *userdata, const psm_prompt *prompt)
{
    psm_conn *conn = (psm_conn *)userdata;
    char line[256];
    size_t i;
    size_t n = psm_prompt_choice_count(prompt);
    FILE *tty;
    psm_result r;

    if (n == 0)
        return PSM_ERR_NO_UI; /* a password: not asked on a terminal that echoes */
    tty = fopen("/dev/tty", "r");
    if (tty == NULL)
        return PSM_ERR_NO_UI;
    fprintf(stderr, "\n%s\n", psm_prompt_message(prompt));
    for (i = 0; i < n; i++)
        fprintf(stderr, "  %lu) %s\n", (unsigned long)(i + 1), psm_prompt_choice(prompt, i));
    fprintf(stderr, "Your choice (number or word, empty to cancel): ");
    if (fgets(line, sizeof line, tty) == NULL)
        line[0] = '\0';
    fclose(tty);
    line[strcspn(line, "\r\n")] = '\0';
    for (i = 0; i < n; i++) {
        char number[24];
        snprintf(number, sizeof number, "%lu", (unsigned long)(i + 1));
        if (strcmp(line, number) == 0 || strcmp(line, psm_prompt_choice(prompt, i)) == 0)
            break;
    }
    if (i == n)
        return PSM_ERR_USER_CANCELLED;
    r = psm_prompt_answer(conn, prompt, psm_prompt_choice(prompt, i));
    if (r != PSM_OK)
        report("answering psmd", r);
    return r;
}

/* Sends the request and copies the response body to stdout, in one
 * select() loop on the channel. Returns 0, or -1 after printing why not. */
static int exchange(int fd, const char *request, size_t request_len, struct response *resp)
{
    static char buf[READ_CHUNK];
    size_t sent = 0;

    for (;;) {
        fd_set readable;
        fd_set writable;
        struct timeval idle = {IDLE_TIMEOUT_SECS, 0};
        int n;

        FD_ZERO(&readable);
        FD_ZERO(&writable);
        FD_SET(fd, &readable);
        if (sent < request_len)
            FD_SET(fd, &writable);
        n = select(fd + 1, &readable, &writable, NULL, &idle);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "%s: select: %s\n", prog, strerror(errno));
            return -1;
        }
        if (n == 0) {
            fprintf(stderr, "%s: nothing from the server for %d s\n", prog, IDLE_TIMEOUT_SECS);
            return -1;
        }
        if (FD_ISSET(fd, &writable)) {
            /* MSG_NOSIGNAL: a closed channel is an error, not SIGPIPE. */
            ssize_t put = send(fd, request + sent, request_len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (put < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                fprintf(stderr, "%s: sending the request: %s\n", prog, strerror(errno));
                return -1;
            }
            if (put > 0)
                sent += (size_t)put;
        }
        if (FD_ISSET(fd, &readable)) {
            ssize_t got = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                continue;
            if (got < 0) {
                /* ECONNRESET: a truncation or a TLS error; the info says which. */
                fprintf(stderr, "%s: reading the response: %s\n", prog, strerror(errno));
                return -1;
            }
            if (got == 0) {
                /* A clean close (close_notify): complete unless a length said otherwise. */
                if (!resp->header_done || (resp->mode != BODY_UNTIL_CLOSE && !resp->complete)) {
                    fprintf(stderr,
                            "%s: the server closed the connection before the end of "
                            "the response\n",
                            prog);
                    return -1;
                }
                return 0;
            }
            if (feed(resp, buf, (size_t)got) != 0)
                return -1;
            if (resp->complete)
                return 0;
        }
    }
}

int main(int argc, char **argv)
{
    static struct response resp;
    static char request[MAX_REQUEST];
    psm_conn *conn = NULL;
    psm_ssl *ssl = NULL;
    struct url url;
    size_t request_len;
    int ask = 0;
    int dialogs = getenv("PSM_BROWSER") != NULL;
    int security = 0;
    int a = 1;
    int status = EXIT_FAILED;
    psm_result r;

    for (; a < argc && argv[a][0] == '-'; a++) {
        if (strcmp(argv[a], "--ask") == 0) {
            ask = 1;
        } else if (strcmp(argv[a], "--dialogs") == 0) {
            dialogs = 1;
        } else if (strcmp(argv[a], "--security") == 0) {
            security = dialogs = 1;
        } else if (strcmp(argv[a], "-h") == 0 || strcmp(argv[a], "--help") == 0) {
            print_usage(stdout);
            return EXIT_OK;
        } else {
            fprintf(stderr, "%s: unknown option \"%s\"\n", prog, argv[a]);
            print_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (a + 1 != argc) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    if (parse_url(argv[a], &url) != 0)
        return EXIT_USAGE;
    request_len = build_request(&url, request, sizeof request);
    if (request_len == 0) {
        fprintf(stderr, "%s: the URL is too long\n", prog);
        return EXIT_USAGE;
    }

    r = psm_connect(prog, dialogs && !ask ? 0 : PSM_CONNECT_NO_DIALOGS, &conn);
    if (r != PSM_OK) {
        report("connecting to psmd", r);
        goto cleanup;
    }
    if (dialogs && !ask) {
        r = dialog_install(conn, prog);
        if (r != PSM_OK) {
            report("installing the dialog handler", r);
            goto cleanup;
        }
    }
    if (ask) {
        r = psm_set_prompt_handler(conn, ask_on_terminal, conn);
        if (r != PSM_OK) {
            report("installing the prompt handler", r);
            goto cleanup;
        }
    }

    /* psmd connects, runs the handshake and checks the certificate. */
    r = psm_ssl_connect(conn, url.host, url.port, NULL, &ssl);
    if (r != PSM_OK) {
        char what[MAX_HOST + 64];
        snprintf(what, sizeof what, "connecting to %s port %u", url.host, (unsigned)url.port);
        report(what, r);
        goto cleanup;
    }

    if (exchange(psm_ssl_fd(ssl), request, request_len, &resp) == 0) {
        if (fflush(stdout) != 0)
            fprintf(stderr, "%s: writing to stdout: %s\n", prog, strerror(errno));
        else
            status = EXIT_OK;
    }
    print_security_info(conn, ssl);
    if (security) {
        r = psm_ssl_show_info(conn, ssl);
        if (r != PSM_OK)
            report("showing the security information", r);
    }

cleanup:
    psm_ssl_free(ssl); /* close_notify to the server */
    /* An installed handler holds the connection to psmd open. */
    if (conn != NULL && ask) {
        r = psm_set_prompt_handler(conn, NULL, NULL);
        if (r != PSM_OK)
            report("removing the prompt handler", r);
    }
    psm_conn_free(conn);
    return status;
}
