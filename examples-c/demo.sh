#!/bin/sh
# psm in one minute: `make demo` runs this as `sh examples-c/demo.sh BUILD_DIR`.
# Everything happens in a private runtime directory that is removed at the
# end, so it neither needs nor disturbs a psmd the user already runs.

set -eu

BUILD=${1:?usage: sh examples-c/demo.sh BUILD_DIR (e.g. target/release)}
BUILD=$(cd "$BUILD" && pwd)
EXAMPLES=$(cd "$(dirname "$0")" && pwd)
SIZE_MIB=64

for f in "$BUILD/psmd" "$EXAMPLES/psm-status" "$EXAMPLES/psm-sha256" \
    "$EXAMPLES/psm-certutil" "$EXAMPLES/psm-fetch" "$EXAMPLES/psm-mail"; do
    [ -x "$f" ] || { echo "demo: $f is missing; run 'make examples' first" >&2; exit 1; }
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/psm-demo.XXXXXX")
chmod 700 "$dir"

cleanup() {
    status=$?
    trap - EXIT INT TERM
    server=$(cat "$dir/s_server.pid" 2>/dev/null || true)
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
        echo "== stopping the TLS server (pid $server)"
        kill -TERM "$server" 2>/dev/null || true
    fi
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
echo

echo "== psm-fetch: HTTPS through psmd, against a local TLS server"
# A throwaway CA and a certificate for localhost, made with openssl.
mkdir "$dir/tls"
(
    cd "$dir/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj "/CN=psm demo CA" -keyout ca.key -out ca.pem \
        -addext "keyUsage=critical,keyCertSign" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
        -extfile server.ext -out server.pem 2>/dev/null
)
# openssl picks a free port (-accept 0) and says which on its first line.
openssl s_server -www -accept 0 -cert "$dir/tls/server.pem" -key "$dir/tls/server.key" \
    > "$dir/s_server.log" 2>&1 < /dev/null &
echo $! > "$dir/s_server.pid"
port=
i=0
while [ -z "$port" ] && [ $i -lt 100 ]; do
    sleep 0.1
    port=$(sed -n 's/^ACCEPT .*:\([0-9][0-9]*\)$/\1/p' "$dir/s_server.log")
    i=$((i + 1))
done
[ -n "$port" ] || { echo "demo: openssl s_server did not start:" >&2; cat "$dir/s_server.log" >&2; exit 1; }
echo "openssl s_server -www listens on port $port"

echo "-- without its CA, psm refuses the server (and says why):"
if "$EXAMPLES/psm-fetch" "https://localhost:$port/" > /dev/null; then
    echo "demo: psm-fetch accepted a server whose CA psm does not know" >&2
    exit 1
fi
echo "-- psm-certutil import ca.pem --trust ca-tls:"
"$EXAMPLES/psm-certutil" import "$dir/tls/ca.pem" --trust ca-tls
echo "-- psm-fetch https://localhost:$port/ (on stderr the status and security info, then the page):"
"$EXAMPLES/psm-fetch" "https://localhost:$port/" > "$dir/page.html"
head -n 4 "$dir/page.html" | sed 's/^/    /'
echo
echo

echo "== psm-mail: a signed and encrypted e-mail from Alice to Bob"
# A CA and two people (RSA, emailProtection, their address as an rfc822Name
# SAN), made with openssl; their keys go into psm as PKCS#12 files (one psm
# holds both here; in life each has their own).
mkdir "$dir/mail"
(
    cd "$dir/mail"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj "/CN=psm demo mail CA" -keyout ca.key -out ca.pem \
        -addext "keyUsage=critical,keyCertSign" 2>/dev/null
    for who in alice bob; do
        openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$who" -keyout "$who.key" \
            -out "$who.csr" 2>/dev/null
        printf 'subjectAltName=email:%s@example.org\nextendedKeyUsage=emailProtection\nkeyUsage=critical,digitalSignature,keyEncipherment\n' \
            "$who" > "$who.ext"
        openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
            -extfile "$who.ext" -out "$who.pem" 2>/dev/null
        openssl pkcs12 -export -inkey "$who.key" -in "$who.pem" -name "$who" \
            -passout pass:demo -out "$who.p12"
    done
    printf 'From: alice@example.org\nTo: bob@example.org\nSubject: lunch\nContent-Type: text/plain\n\nTuesday at noon?\n' \
        > note.eml
)
echo "-- psm-certutil import ca.pem --trust ca-email, and both PKCS#12 files:"
"$EXAMPLES/psm-certutil" import "$dir/mail/ca.pem" --trust ca-email
"$EXAMPLES/psm-certutil" import-p12 "$dir/mail/alice.p12" --password demo
"$EXAMPLES/psm-certutil" import-p12 "$dir/mail/bob.p12" --password demo
(
    cd "$dir/mail"
    echo "-- Alice signs, then encrypts to Bob and herself:"
    "$EXAMPLES/psm-mail" sign --signer alice@example.org note.eml note.signed.eml
    "$EXAMPLES/psm-mail" encrypt --to bob@example.org --to alice@example.org \
        note.signed.eml note.p7m.eml
    echo "$(grep -m1 '^Content-Type' note.p7m.eml) ($(wc -c < note.p7m.eml) bytes)"
    echo "-- Bob decrypts it and checks the signature inside:"
    "$EXAMPLES/psm-mail" decrypt --verify --from alice@example.org note.p7m.eml note.txt 2>&1
    echo "-- what Bob reads:"
    tr -d '\r' < note.txt | sed 's/^/    /'
    echo "-- openssl cms -verify accepts what psm signed:"
    openssl cms -verify -inform SMIME -in note.signed.eml -CAfile ca.pem -purpose smimesign \
        -out /dev/null
)
