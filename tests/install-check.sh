#!/bin/sh
# `make install` into a scratch DESTDIR, then build a C program against the
# installed header and psm.pc, shared and static, and run both with no
# PSM_DAEMON set: each must find and start the installed psmd by itself
# (<prefix>/libexec/psmd beside the library or the program).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
daemon_pid=""
cleanup() {
    [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

prefix=/opt/psm
dest="$work/root"
make -s -C "$top" install PREFIX="$prefix" DESTDIR="$dest" >/dev/null
for f in lib/libpsm.so.0 lib/libpsm.so lib/libpsm.a include/psm.h lib/pkgconfig/psm.pc libexec/psmd \
         lib/systemd/user/psmd.socket lib/systemd/user/psmd.service share/doc/psm/README.md \
         bin/psm share/man/man1/psm.1 share/man/man3/libpsm.3 share/man/man8/psmd.8 \
         share/bash-completion/completions/psm; do
    [ -e "$dest$prefix/$f" ] || { echo "FAIL: $prefix/$f not installed"; exit 1; }
done
grep -q "^ExecStart=$prefix/libexec/psmd\$" "$dest$prefix/lib/systemd/user/psmd.service" ||
    { echo "FAIL: psmd.service does not start $prefix/libexec/psmd"; exit 1; }
if command -v systemd-analyze >/dev/null 2>&1; then
    # The units as systemd reads them (ExecStart must exist: check in DESTDIR).
    sed "s|$prefix|$dest$prefix|" "$dest$prefix/lib/systemd/user/psmd.service" > "$work/psmd.service"
    cp "$dest$prefix/lib/systemd/user/psmd.socket" "$work/psmd.socket"
    # Any complaint (an unknown key is only a warning) fails the check.
    if ! XDG_RUNTIME_DIR="$work" systemd-analyze verify --user "$work/psmd.socket" "$work/psmd.service" \
            >"$work/verify.log" 2>&1 || [ -s "$work/verify.log" ]; then
        echo "FAIL: systemd-analyze verify:"; cat "$work/verify.log"; exit 1
    fi
fi
for page in man1/psm.1 man3/libpsm.3 man8/psmd.8; do
    head -c 4096 "$dest$prefix/share/man/$page" | grep -q '^\.TH ' ||
        { echo "FAIL: $page is not a manual page"; exit 1; }
    if command -v groff >/dev/null 2>&1; then
        groff -man -Tutf8 -ww -z "$dest$prefix/share/man/$page" 2>"$work/groff.log"
        [ -s "$work/groff.log" ] && { echo "FAIL: groff on $page:"; cat "$work/groff.log"; exit 1; }
    fi
done
soname=$(readelf -d "$dest$prefix/lib/libpsm.so.0" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libpsm.so.0 ] || { echo "FAIL: SONAME is '$soname'"; exit 1; }

# pkg-config reads the .pc as installed; point it into DESTDIR.
pc="$work/psm.pc"
sed "s|^prefix=.*|prefix=$dest$prefix|; s|^libdir=.*|libdir=$dest$prefix/lib|; s|^includedir=.*|includedir=$dest$prefix/include|" \
    "$dest$prefix/lib/pkgconfig/psm.pc" > "$pc"
cflags="-I$dest$prefix/include"
libs="-L$dest$prefix/lib -lpsm"
if command -v pkg-config >/dev/null 2>&1; then
    cflags=$(PKG_CONFIG_PATH="$work" pkg-config --cflags psm)
    libs=$(PKG_CONFIG_PATH="$work" pkg-config --libs psm)
fi
mkdir -p "$dest$prefix/bin"
cc -std=c99 -Wall -Wextra -Wpedantic -Werror $cflags "$top/examples-c/psm-status.c" $libs \
    -Wl,-rpath,"$dest$prefix/lib" -o "$dest$prefix/bin/psm-status"
cc -std=c99 -Wall -Wextra -Wpedantic -Werror $cflags "$top/examples-c/psm-status.c" \
    "$dest$prefix/lib/libpsm.a" -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o "$dest$prefix/bin/psm-status-static"

for prog in psm-status psm-status-static; do
    rt="$work/rt-$prog"
    mkdir -m 700 "$rt"
    out=$(env -u PSM_DAEMON PATH=/usr/bin:/bin PSM_SOCKET="$rt/psm/control" PSM_PROFILE="$rt/profile" "$dest$prefix/bin/$prog") || {
        echo "FAIL: $prog could not start the installed psmd"; cat "$rt/psm/psmd.log" 2>/dev/null; exit 1; }
    daemon_pid=$(cat "$rt/psm/daemon.lock")
    exe=$(readlink "/proc/$daemon_pid/exe")
    [ "$exe" = "$dest$prefix/libexec/psmd" ] || { echo "FAIL: $prog started $exe"; exit 1; }
    echo "$out" | grep -q '"sessions"' || { echo "FAIL: $prog printed no status"; exit 1; }
    kill "$daemon_pid"
    daemon_pid=""
    echo "ok: $prog ($( [ $prog = psm-status ] && echo shared || echo static )) started $prefix/libexec/psmd by itself"
done
echo "install check: 2 passed, 0 failed"
