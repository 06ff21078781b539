#!/bin/sh
# with-psmd.sh TEST [ARG...]: runs one C test against a psmd of its own.
#
# Makes a private runtime directory (mode 0700), points libpsm at it
# (PSM_SOCKET, PSM_DAEMON), starts `$PSMD --daemon` there unless
# PSM_FIXTURE_NO_DAEMON=1, runs the test, then stops every psmd serving
# that socket (the one started here and any the test auto-started) and
# removes the directory. Exits with the test's status.
#
# Environment: PSMD (required) the psmd binary; PSM_FIXTURE_NO_DAEMON=1 to
# leave starting the daemon to the test. The test sees PSM_SOCKET,
# PSM_DAEMON and PSM_FIXTURE_DIR (the private directory, for its files).

set -u

: "${PSMD:?with-psmd.sh: set PSMD to the psmd binary}"
[ $# -ge 1 ] || { echo "usage: with-psmd.sh TEST [ARG...]" >&2; exit 2; }

# How long psmd gets to exit after SIGTERM before it gets SIGKILL (tenths of a second).
STOP_WAIT=50

dir=$(mktemp -d "${TMPDIR:-/tmp}/psm-ffi-test.XXXXXX") || exit 1
chmod 700 "$dir"
export PSM_SOCKET="$dir/psm/control"
export PSM_DAEMON="$PSMD"
export PSM_PROFILE="$dir/profile"
export PSM_FIXTURE_DIR="$dir"

# A zombie (killed, not yet reaped by init) counts as gone.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    state=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null)
    [ "$state" != Z ]
}

# The kernel's name for the daemon: its file name, cut to 15 characters.
PSMD_COMM=$(basename "$PSMD" | cut -c1-15)
is_psmd() {
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$PSMD_COMM" ]
}

# The daemon of record, plus any psmd whose command line names our socket
# (the directory name is unique, so this never touches anyone else's).
daemon_pids() {
    cat "$dir/psm/daemon.lock" 2>/dev/null
    grep -l -a -F -e "$PSM_SOCKET" /proc/[0-9]*/cmdline 2>/dev/null |
        sed -n 's|^/proc/\([0-9]*\)/cmdline$|\1|p'
}

stop_daemons() {
    for pid in $(daemon_pids | sort -u); do
        if ! alive "$pid" || ! is_psmd "$pid"; then
            continue
        fi
        kill -TERM "$pid" 2>/dev/null
        i=0
        while alive "$pid" && [ $i -lt $STOP_WAIT ]; do
            sleep 0.1
            i=$((i + 1))
        done
        if alive "$pid"; then
            echo "with-psmd.sh: psmd $pid ignored SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null
        fi
    done
}

cleanup() {
    status=$?
    trap - EXIT HUP INT TERM
    stop_daemons
    if [ "$status" -ne 0 ]; then
        for log in "$dir/fixture-psmd.log" "$dir/psm/psmd.log"; do
            [ -s "$log" ] || continue
            echo "---- $log" >&2
            cat "$log" >&2
        done
    fi
    rm -rf "$dir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "${PSM_FIXTURE_NO_DAEMON:-0}" != 1 ]; then
    # Returns once the socket is bound; the forked daemon then records its pid.
    if ! "$PSMD" --daemon --socket "$PSM_SOCKET" 2>>"$dir/fixture-psmd.log"; then
        echo "with-psmd.sh: $PSMD --daemon --socket $PSM_SOCKET failed" >&2
        exit 1
    fi
    i=0
    until [ -s "$dir/psm/daemon.lock" ]; do
        if [ $i -ge 50 ]; then
            echo "with-psmd.sh: psmd wrote no pid to $dir/psm/daemon.lock" >&2
            exit 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
fi

"$@"
