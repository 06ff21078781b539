/* psm-dialogs.h: how an application shows psm's HTML dialogs. Shared by
 * psm-fetch and psm-mail; copy it into your own program.
 *
 * When psmd needs the user (a password, a certificate it cannot verify,
 * which client certificate to send), it serves a dialog on loopback and
 * sends the application a PSM_EVENT_DIALOG with the page's URL. The event
 * handler below runs on the thread blocked in the psm call that needs the
 * answer: it prints the URL and, when $PSM_BROWSER is set, starts that
 * browser on it ("chromium --app={url}": the words of PSM_BROWSER, split
 * on spaces, with {url} replaced, or the URL appended when there is no
 * {url}; no shell is involved). The call returns once the user answered
 * and psmd sent PSM_EVENT_DIALOG_DONE.
 */
#ifndef PSM_EXAMPLES_DIALOGS_H
#define PSM_EXAMPLES_DIALOGS_H

#include <psm.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define DIALOG_MAX_ARGS 16
#define DIALOG_MAX_COMMAND 1024

/* Starts $PSM_BROWSER on url, detached (the browser outlives nothing of
 * ours and is reaped by init). Returns 0 when it was started. */
static int dialog_start_browser(const char *browser, const char *url)
{
    static char words[DIALOG_MAX_COMMAND];
    char *argv[DIALOG_MAX_ARGS + 2];
    char *arg[DIALOG_MAX_ARGS + 2];
    static char expanded[DIALOG_MAX_ARGS][DIALOG_MAX_COMMAND];
    int argc = 0, used_url = 0, i;
    char *save = NULL, *w;
    pid_t child;
    int status;

    if (strlen(browser) >= sizeof words)
        return -1;
    strcpy(words, browser);
    for (w = strtok_r(words, " ", &save); w != NULL && argc < DIALOG_MAX_ARGS; w = strtok_r(NULL, " ", &save))
        arg[argc++] = w;
    if (argc == 0)
        return -1;
    for (i = 0; i < argc; i++) {
        const char *at = strstr(arg[i], "{url}");
        if (at == NULL) {
            argv[i] = arg[i];
            continue;
        }
        if (snprintf(expanded[i], sizeof expanded[i], "%.*s%s%s", (int)(at - arg[i]), arg[i], url, at + 5) >=
            (int)sizeof expanded[i])
            return -1;
        argv[i] = expanded[i];
        used_url = 1;
    }
    if (!used_url)
        argv[argc++] = (char *)url;
    argv[argc] = NULL;
    /* Fork twice so that the browser is not our child to reap. */
    child = fork();
    if (child < 0)
        return -1;
    if (child == 0) {
        pid_t grandchild = fork();
        if (grandchild == 0) {
            setsid();
            execvp(argv[0], argv);
            _exit(127);
        }
        _exit(grandchild < 0 ? 1 : 0);
    }
    if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    return 0;
}

/* The event handler: dialogs to open, dialogs done. */
static void dialog_events(void *userdata, const psm_event *ev)
{
    const char *prog = (const char *)userdata;
    const char *browser = getenv("PSM_BROWSER");
    uint32_t w = 0, h = 0;

    switch (psm_event_kind(ev)) {
    case PSM_EVENT_DIALOG:
        psm_event_dialog_size(ev, &w, &h);
        fprintf(stderr, "%s: psm asks you in a dialog (%lux%lu): %s\n", prog, (unsigned long)w, (unsigned long)h, psm_event_dialog_url(ev));
        if (browser != NULL && browser[0] != '\0') {
            if (dialog_start_browser(browser, psm_event_dialog_url(ev)) != 0)
                fprintf(stderr, "%s: could not start PSM_BROWSER (%s); open the address yourself\n", prog,
                        browser);
        } else {
            fprintf(stderr, "%s: open it in a browser (or set PSM_BROWSER), then answer there\n", prog);
        }
        break;
    case PSM_EVENT_DIALOG_DONE:
        fprintf(stderr, "%s: the dialog is done\n", prog);
        break;
    default:
        break;
    }
}

/* Lets psm show its dialogs on conn (connected without
 * PSM_CONNECT_NO_DIALOGS). */
static psm_result dialog_install(psm_conn *conn, const char *prog)
{
    return psm_set_event_handler(conn, dialog_events, (void *)prog);
}

#endif
