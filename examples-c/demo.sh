#!/bin/sh
# psm in one minute: `make demo` runs this as `sh examples-c/demo.sh BUILD_DIR`.
# Everything happens in a private runtime directory that is removed at the
# end, so it neither needs nor disturbs a psmd the user already runs.

set -eu

BUILD=${1:?usage: sh examples-c/demo.sh BUILD_DIR (e.g. target/release)}
BUILD=$(cd "$BUILD" && pwd)
EXAMPLES=$(cd "$(dirname "$0")" && pwd)
SIZE_MIB=64

for f in "$BUILD/psmd" "$EXAMPLES/psm-status" "$EXAMPLES/psm-sha256"; do
    [ -x "$f" ] || { echo "demo: $f is missing; run 'make examples' first" >&2; exit 1; }
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/psm-demo.XXXXXX")
chmod 700 "$dir"

cleanup() {
    status=$?
    trap - EXIT INT TERM
    pid=$(cat "$dir/psm/daemon.lock" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        echo "== stopping psmd (pid $pid) with SIGTERM"
        kill -TERM "$pid" 2>/dev/null || true
        # psmd removes its socket on the way out; wait for that.
        i=0
        while [ -S "$dir/psm/control" ] && [ $i -lt 50 ]; do
            sleep 0.1
            i=$((i + 1))
        done
    fi
    rm -rf "$dir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# libpsm finds the daemon's socket through PSM_SOCKET and, when nothing
# listens there, starts the daemon it names in PSM_DAEMON.
export PSM_SOCKET="$dir/psm/control"
export PSM_DAEMON="$BUILD/psmd"
export PSM_PROFILE="$dir/profile"
echo "== private runtime directory: $dir (socket $PSM_SOCKET)"

echo "== psm-status: no psmd is running; libpsm starts one on demand"
"$EXAMPLES/psm-status"
echo

echo "== psm-sha256 of a ${SIZE_MIB} MiB file, streamed through a data channel"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$dir/big.bin"
(cd "$dir" && "$EXAMPLES/psm-sha256" big.bin) > "$dir/psm.sum"
(cd "$dir" && sha256sum big.bin) > "$dir/coreutils.sum"
echo "psm-sha256: $(cat "$dir/psm.sum")"
echo "sha256sum:  $(cat "$dir/coreutils.sum")"
if cmp -s "$dir/psm.sum" "$dir/coreutils.sum"; then
    echo "identical"
else
    echo "demo: psm-sha256 and sha256sum disagree" >&2
    exit 1
fi
echo

echo "== psm-status again: the same daemon, which has now served more requests"
"$EXAMPLES/psm-status" | tee "$dir/status.txt"
served=$(sed -n 's/.*"requests_served":\([0-9]*\).*/\1/p' "$dir/status.txt")
echo "requests_served is now ${served:-unknown}"
echo
