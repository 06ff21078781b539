/* tls_fixture.c: the helpers declared in tls_fixture.h. */

#include "tls_fixture.h"

#include "check.h"
#include "fixture.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

/* Ports tried before s_server_start gives up (another process may take
 * the free port we found before s_server binds it). */
#define PORT_ATTEMPTS 5

/* How long s_server may take to listen. */
#define LISTEN_WAIT_MS 10000

/* Servers still running, killed at exit so a failed test leaves none
 * behind; what they wrote to stderr is shown then (a test stops the servers
 * it is done with, so one still running at exit means the test failed). */
#define MAX_SERVERS 16
static pid_t running[MAX_SERVERS];
static s_server running_server[MAX_SERVERS];

const char *tls_pki_dir(void)
{
    static char dir[4096];

    if (dir[0] == '\0')
        pki_make("PSM_TLS_PKI", "tls-pki", dir, sizeof dir);
    return dir;
}

void tls_pki_path(const char *name, char *out, size_t cap)
{
    CHECK((size_t)snprintf(out, cap, "%s/%s", tls_pki_dir(), name) < cap);
}

psm_cert *tls_trust_ca(psm_conn *conn)
{
    char path[4096];
    psm_cert *ca = NULL;
    size_t len = 0;
    uint8_t *pem;

    tls_pki_path("ca.pem", path, sizeof path);
    pem = file_read(path, &len);
    CHECK_OK(psm_cert_import(conn, pem, len, "TLS test CA", PSM_TRUST_CA_TLS_SERVER, &ca));
    CHECK(ca != NULL);
    free(pem);
    return ca;
}

psm_cert *tls_import_p12(psm_conn *conn, const char *name, const char *password)
{
    char path[4096];
    psm_cert *cert = NULL;
    size_t len = 0;
    uint8_t *p12;

    tls_pki_path(name, path, sizeof path);
    p12 = file_read(path, &len);
    CHECK_OK(psm_pkcs12_import(conn, p12, len, password, &cert));
    CHECK(cert != NULL);
    CHECK_EQ(psm_cert_has_private_key(cert), 1);
    free(p12);
    return cert;
}

void tls_pki_sha256(const char *name, char *out, size_t cap)
{
    char path[4096];
    char command[8192];
    char line[512];
    const char *p;
    size_t n = 0;

    tls_pki_path(name, path, sizeof path);
    CHECK((size_t)snprintf(command, sizeof command,
                           "openssl x509 -in '%s' -noout -fingerprint -sha256",
                           path) < sizeof command);
    command_output(command, line, sizeof line);
    p = strchr(line, '=');
    CHECK(p != NULL);
    for (p++; *p != '\0'; p++) {
        if (*p == ':')
            continue;
        CHECK(n + 1 < cap);
        out[n++] = (char)tolower((unsigned char)*p);
    }
    out[n] = '\0';
    CHECK_EQ(n, 64);
}

/* Copies what the server wrote to stderr to ours. No CHECK: this also runs
 * from the exit handler. */
static void print_stderr_of(const s_server *server)
{
    char buf[4096];
    size_t n;
    FILE *f = fopen(server->err_path, "r");

    fprintf(stderr, "---- openssl s_server (port %u) said:\n", (unsigned)server->port);
    if (f != NULL) {
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            fwrite(buf, 1, n, stderr);
        fclose(f);
    }
    fprintf(stderr, "----\n");
}

static void kill_running(void)
{
    int i;

    for (i = 0; i < MAX_SERVERS; i++) {
        if (running[i] > 0) {
            kill(running[i], SIGKILL);
            waitpid(running[i], NULL, 0);
            running[i] = 0;
            print_stderr_of(&running_server[i]);
        }
    }
}

static void track(const s_server *server, pid_t pid, int add)
{
    static int registered;
    int i;

    if (!registered) {
        CHECK_EQ(atexit(kill_running), 0);
        registered = 1;
    }
    for (i = 0; i < MAX_SERVERS; i++) {
        if (add ? running[i] == 0 : running[i] == pid) {
            running[i] = add ? pid : 0;
            if (add)
                running_server[i] = *server;
            return;
        }
    }
    CHECK(!add);
}

/* A TCP port nobody listens on right now: bind port 0 and ask the kernel. */
static uint16_t free_port(void)
{
    struct sockaddr_in6 addr;
    socklen_t len = sizeof addr;
    int fd = socket(AF_INET6, SOCK_STREAM, 0);

    CHECK(fd >= 0);
    memset(&addr, 0, sizeof addr);
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_any;
    CHECK_EQ(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    close(fd);
    return ntohs(addr.sin6_port);
}

/* True if process `pid` holds the socket with this inode. */
static int owns_socket(pid_t pid, unsigned long inode)
{
    char want[64];
    char path[128];
    char link[128];
    int fd;

    snprintf(want, sizeof want, "socket:[%lu]", inode);
    for (fd = 0; fd < 1024; fd++) {
        ssize_t n;
        snprintf(path, sizeof path, "/proc/%ld/fd/%d", (long)pid, fd);
        n = readlink(path, link, sizeof link - 1);
        if (n <= 0)
            continue;
        link[n] = '\0';
        if (strcmp(link, want) == 0)
            return 1;
    }
    return 0;
}

/* True once `pid` itself listens on TCP `port` (IPv6 or IPv4): an entry in
 * state 0A (LISTEN) in /proc/net/tcp[6] whose socket the process holds, so
 * another process that happens to listen there does not count. */
static int listening(pid_t pid, uint16_t port)
{
    static const char *const tables[] = {"/proc/net/tcp6", "/proc/net/tcp"};
    size_t t;

    for (t = 0; t < sizeof tables / sizeof tables[0]; t++) {
        char line[512];
        FILE *f = fopen(tables[t], "r");
        if (f == NULL)
            continue;
        while (fgets(line, sizeof line, f) != NULL) {
            char local[64];
            char state[8];
            unsigned long inode;
            const char *colon;
            /* "sl local rem st tx:rx tr:when retrnsmt uid timeout inode" */
            if (sscanf(line, " %*s %63s %*s %7s %*s %*s %*s %*s %*s %lu", local, state, &inode) !=
                3)
                continue;
            colon = strrchr(local, ':');
            if (colon == NULL || strtoul(colon + 1, NULL, 16) != port || strcmp(state, "0A") != 0)
                continue;
            if (owns_socket(pid, inode)) {
                fclose(f);
                return 1;
            }
        }
        fclose(f);
    }
    return 0;
}

static void redirect(const char *path, int target, int flags)
{
    int fd = open(path, flags, 0600);

    if (fd < 0 || dup2(fd, target) < 0)
        _exit(127);
    close(fd);
}

/* Forks `openssl s_server` on `port`; returns its pid. */
static pid_t spawn(s_server *server, uint16_t port, const char *options, const char *stdin_path,
                   const char *stdout_path, int stdin_pipe[2])
{
    char command[16384];
    pid_t pid;

    CHECK((size_t)snprintf(command, sizeof command,
                           "cd '%s' && exec openssl s_server -quiet -naccept 1 -accept %u %s",
                           tls_pki_dir(), (unsigned)port, options) < sizeof command);
    fflush(NULL);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* Dies with the test, even one killed by ctest's timeout. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (stdin_path != NULL) {
            redirect(stdin_path, STDIN_FILENO, O_RDONLY);
        } else {
            if (dup2(stdin_pipe[0], STDIN_FILENO) < 0)
                _exit(127);
            close(stdin_pipe[0]);
            close(stdin_pipe[1]);
        }
        redirect(stdout_path != NULL ? stdout_path : "/dev/null", STDOUT_FILENO,
                 O_WRONLY | O_CREAT | O_TRUNC);
        redirect(server->err_path, STDERR_FILENO, O_WRONLY | O_CREAT | O_TRUNC);
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    return pid;
}

void s_server_start(s_server *server, const char *options, const char *stdin_path,
                    const char *stdout_path)
{
    static int started;
    int attempt;

    /* A server that died must fail the test, not kill it with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    memset(server, 0, sizeof *server);
    server->stdin_fd = -1;
    CHECK((size_t)snprintf(server->err_path, sizeof server->err_path, "%s/s_server-%d.err",
                           fixture_dir(), started++) < sizeof server->err_path);
    for (attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
        int stdin_pipe[2] = {-1, -1};
        int waited;

        if (stdin_path == NULL)
            CHECK_EQ(pipe(stdin_pipe), 0);
        server->port = free_port();
        server->pid = spawn(server, server->port, options, stdin_path, stdout_path, stdin_pipe);
        track(server, server->pid, 1);
        if (stdin_path == NULL) {
            close(stdin_pipe[0]);
            server->stdin_fd = stdin_pipe[1];
        }
        for (waited = 0; waited < LISTEN_WAIT_MS; waited += 10) {
            if (listening(server->pid, server->port))
                return;
            if (s_server_wait(server, 0) != -1)
                break; /* it exited: most likely someone took the port */
            sleep_ms(10);
        }
        print_stderr_of(server);
        s_server_stop(server, 0);
        CHECK(waited < LISTEN_WAIT_MS);
    }
    CHECK(!"openssl s_server listens on one of the free ports");
}

void s_server_send(s_server *server, const char *text)
{
    size_t len = strlen(text);

    CHECK(server->stdin_fd >= 0);
    while (len > 0) {
        ssize_t n = write(server->stdin_fd, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n > 0);
        text += n;
        len -= (size_t)n;
    }
}

int s_server_wait(s_server *server, int timeout_ms)
{
    int waited = 0;

    if (server->pid <= 0)
        return -1;
    for (;;) {
        int status;
        pid_t r = waitpid(server->pid, &status, WNOHANG);
        CHECK(r >= 0);
        if (r == server->pid) {
            track(server, server->pid, 0);
            server->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (waited >= timeout_ms)
            return -1;
        sleep_ms(10);
        waited += 10;
    }
}

void s_server_stop(s_server *server, int show)
{
    if (server->stdin_fd >= 0) {
        close(server->stdin_fd);
        server->stdin_fd = -1;
    }
    if (server->pid > 0) {
        kill(server->pid, SIGTERM);
        waitpid(server->pid, NULL, 0);
        track(server, server->pid, 0);
        server->pid = 0;
    }
    if (show)
        print_stderr_of(server);
}

psm_ssl *tls_connect_ok(psm_conn *conn, uint16_t port, const psm_ssl_opts *opts)
{
    psm_ssl *ssl = NULL;
    psm_result r = psm_ssl_connect(conn, "localhost", port, opts, &ssl);

    if (r != PSM_OK)
        fprintf(stderr, "psm_ssl_connect to localhost:%u\n", (unsigned)port);
    CHECK_OK(r);
    CHECK(ssl != NULL);
    CHECK(psm_ssl_fd(ssl) >= 0);
    return ssl;
}

static void wait_for(int fd, int for_write)
{
    for (;;) {
        fd_set set;
        struct timeval tv;
        int n;

        FD_ZERO(&set);
        FD_SET(fd, &set);
        tv.tv_sec = TLS_TEST_WAIT_MS / 1000;
        tv.tv_usec = 0;
        n = select(fd + 1, for_write ? NULL : &set, for_write ? &set : NULL, NULL, &tv);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            fprintf(stderr, "channel fd %d not %s after %d ms\n", fd,
                    for_write ? "writable" : "readable", TLS_TEST_WAIT_MS);
        CHECK_EQ(n, 1);
        return;
    }
}

void wait_readable(int fd)
{
    wait_for(fd, 0);
}

void wait_writable(int fd)
{
    wait_for(fd, 1);
}

void channel_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = (const uint8_t *)buf;

    while (len > 0) {
        ssize_t n;
        wait_writable(fd);
        n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (n < 0)
            perror("send to a TLS channel");
        CHECK(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

void channel_read_exact(int fd, void *buf, size_t len)
{
    uint8_t *p = (uint8_t *)buf;

    while (len > 0) {
        ssize_t n;
        wait_readable(fd);
        n = recv(fd, p, len, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (n < 0)
            perror("recv from a TLS channel");
        if (n == 0)
            fprintf(stderr, "the channel ended with %zu bytes still expected\n", len);
        CHECK(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

size_t channel_read_to_eof(int fd, char *buf, size_t cap)
{
    char chunk[16384];
    size_t total = 0;

    CHECK(cap > 0);
    for (;;) {
        ssize_t n;
        wait_readable(fd);
        n = recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (n < 0)
            perror("recv from a TLS channel");
        CHECK(n >= 0);
        if (n == 0)
            break;
        if (total < cap - 1) {
            size_t keep = (size_t)n < cap - 1 - total ? (size_t)n : cap - 1 - total;
            memcpy(buf + total, chunk, keep);
        }
        total += (size_t)n;
    }
    buf[total < cap - 1 ? total : cap - 1] = '\0';
    return total;
}

void json_str(const char *json, const char *path, char *out, size_t cap)
{
    char pattern[128];
    const char *at = json;
    const char *part = path;
    size_t n = 0;

    /* Each part of the path is looked for after the previous one. */
    for (;;) {
        const char *dot = strchr(part, '.');
        size_t len = dot != NULL ? (size_t)(dot - part) : strlen(part);
        CHECK(len + 4 < sizeof pattern);
        snprintf(pattern, sizeof pattern, "\"%.*s\":", (int)len, part);
        at = strstr(at, pattern);
        if (at == NULL)
            fprintf(stderr, "no \"%s\" in %s\n", path, json);
        CHECK(at != NULL);
        at += strlen(pattern);
        if (dot == NULL)
            break;
        part = dot + 1;
    }
    if (strncmp(at, "null", 4) == 0) {
        CHECK(cap > 4);
        strcpy(out, "null");
        return;
    }
    CHECK(*at == '"');
    for (at++; *at != '"'; at++) {
        CHECK(*at != '\0');
        if (*at == '\\')
            at++;
        CHECK(n + 1 < cap);
        out[n++] = *at;
    }
    out[n] = '\0';
}

char *ssl_info(psm_conn *conn, const psm_ssl *ssl)
{
    char *json = NULL;

    CHECK_OK(psm_ssl_info_json(conn, ssl, &json));
    CHECK(json != NULL);
    fprintf(stderr, "psm_ssl_info_json: %s\n", json);
    return json;
}
