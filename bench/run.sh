#!/bin/sh
# `make bench` runs this as `sh bench/run.sh BUILD_DIR [N]`: ping latency of
# psm against a bare ping-pong, with psmd and the benchmark pinned to one
# CPU and then free to use all of them, then the Rust digest benchmark if
# it was built, then psm_key_sign against in-process OpenSSL and a private
# ssh-agent (sign-bench). Everything runs against a private psmd in a
# private runtime directory, removed at the end. N (default 200000) is the
# number of pings per measurement; $N in the environment works too.
# SIGN_P256_N, SIGN_RSA_N and SIGN_SECONDS override sign-bench's defaults.
# Then smime-bench, on a fresh psmd: S/MIME sign and verify of a 1 KiB
# message against in-process OpenSSL CMS, and sign and encrypt streams of
# a large message against the openssl cms CLI, with a CA and keys made
# here with the openssl CLI. SMIME_SECONDS (default 2, per ops/s figure)
# and SMIME_BYTES (100M) override its defaults.
# Last, if it was built, tls-bench: psm's TLS channels against in-process
# rustls, with a minimal relay and stunnel4 (installed with apt-get when
# missing and possible) as references, with a fresh psmd pinned to CPU 0.
# TLS_BYTES (default 1G), TLS_RUNS (3), TLS_SECONDS (3) and TLS_ROUND_TRIPS
# (20000) override its defaults.
# Then p11sign-bench, on a fresh psmd: ECDSA P-256 signatures with a key on
# a SoftHSM token, through psmd against calling SoftHSM in-process (SHA-256
# + C_SignInit + C_Sign). The token ("psm-bench", PIN 1234) lives in a
# private SoftHSM configuration here, the key pair is generated on it with
# pkcs11-tool and its certificate is made with the openssl CLI; psmd gets
# SOFTHSM2_CONF and a system policy ($PSM_POLICY) whose pkcs11.modules
# lists SoftHSM. P11SIGN_N (default 5000) is the number of signatures per
# row. Skipped without SoftHSM, softhsm2-util, pkcs11-tool or openssl.
# BENCH_ONLY=ping (ping-bench and digest_bench), sign, smime, tls or pkcs11
# runs that part alone.

set -eu

BUILD=${1:?usage: sh bench/run.sh BUILD_DIR [N]}
BUILD=$(cd "$BUILD" && pwd)
N=${2:-${N:-200000}}
BENCH=$(cd "$(dirname "$0")" && pwd)

ONLY=${BENCH_ONLY:-}
case $ONLY in
'' | ping | sign | smime | tls | pkcs11) ;;
*) echo "run.sh: BENCH_ONLY=$ONLY; expected ping, sign, smime, tls or pkcs11" >&2; exit 1 ;;
esac

# want PART: whether this run includes PART.
want() {
    [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]
}

for f in "$BUILD/psmd" "$BENCH/ping-bench" "$BENCH/sign-bench" "$BENCH/smime-bench" "$BENCH/p11sign-bench"; do
    [ -x "$f" ] || { echo "run.sh: $f is missing; run 'make bench'" >&2; exit 1; }
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/psm-bench.XXXXXX")
chmod 700 "$dir"
export PSM_SOCKET="$dir/psm/control"
export PSM_DAEMON="$BUILD/psmd"
export PSM_PROFILE="$dir/profile"
daemon=
agent=

# start_daemon [PREFIX...]: starts psmd under PREFIX (e.g. taskset -c 0).
start_daemon() {
    "$@" "$BUILD/psmd" --daemon --socket "$PSM_SOCKET" 2>>"$dir/psmd.log"
    i=0
    until [ -s "$dir/psm/daemon.lock" ]; do
        [ $i -lt 50 ] || { echo "run.sh: psmd recorded no pid" >&2; exit 1; }
        sleep 0.1
        i=$((i + 1))
    done
    daemon=$(cat "$dir/psm/daemon.lock")
}

# A zombie (exited, not yet reaped by init) counts as gone.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    state=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null)
    [ "$state" != Z ]
}

stop_daemon() {
    [ -n "$daemon" ] || return 0
    kill -TERM "$daemon" 2>/dev/null || true
    # Until it has exited it holds the instance lock, and a psmd started
    # meanwhile would find it "already running" and quietly step aside.
    i=0
    while alive "$daemon" && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    alive "$daemon" && kill -KILL "$daemon" 2>/dev/null
    # Nobody holds the file now; empty it so start_daemon waits for the new pid.
    : >"$dir/psm/daemon.lock"
    daemon=
}

have_agent() {
    for tool in ssh-agent ssh-add ssh-keygen; do
        command -v "$tool" >/dev/null 2>&1 || return 1
    done
}

# start_agent: a private ssh-agent (foreground, so $! is its pid) holding
# a fresh ECDSA P-256 and RSA-2048 key, at $dir/ssh/agent.
start_agent() {
    mkdir -m 700 "$dir/ssh"
    ssh-keygen -q -t ecdsa -b 256 -N '' -C sign-bench -f "$dir/ssh/id_ecdsa"
    ssh-keygen -q -t rsa -b 2048 -N '' -C sign-bench -f "$dir/ssh/id_rsa"
    ssh-agent -D -a "$dir/ssh/agent" >/dev/null 2>>"$dir/ssh-agent.log" &
    agent=$!
    i=0
    until [ -S "$dir/ssh/agent" ]; do
        [ $i -lt 50 ] || { echo "run.sh: ssh-agent made no socket" >&2; exit 1; }
        sleep 0.1
        i=$((i + 1))
    done
    SSH_AUTH_SOCK="$dir/ssh/agent" ssh-add -q "$dir/ssh/id_ecdsa" "$dir/ssh/id_rsa"
}

stop_agent() {
    [ -n "$agent" ] || return 0
    kill -TERM "$agent" 2>/dev/null || true
    wait "$agent" 2>/dev/null || true
    agent=
}

cleanup() {
    status=$?
    trap - EXIT INT TERM
    stop_agent
    stop_daemon
    rm -rf "$dir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if want ping; then
    echo "ping round trip, $N calls each; bare = the same frame sizes over a Unix"
    echo "socket to a forked echo server, the floor psm is measured against"
    echo

    if command -v taskset >/dev/null 2>&1; then
        echo "== pinned: psmd and ping-bench (and its echo server) on CPU 0"
        start_daemon taskset -c 0
        taskset -c 0 "$BENCH/ping-bench" "$N"
        stop_daemon
        echo
    else
        echo "== pinned: skipped (no taskset)"
        echo
    fi

    echo "== unpinned"
    start_daemon
    "$BENCH/ping-bench" "$N"
    echo

    if [ -x "$BUILD/examples/digest_bench" ]; then
        echo "== digest_bench (same psmd)"
        "$BUILD/examples/digest_bench"
        echo
    fi
fi

if want sign; then
    [ -n "$daemon" ] || start_daemon
    echo "== sign: psm_key_sign against in-process OpenSSL and ssh-agent (same psmd)"
    set -- "${SIGN_P256_N:-5000}" "${SIGN_RSA_N:-2000}" "${SIGN_SECONDS:-2}"
    if have_agent; then
        start_agent
        SSH_AUTH_SOCK="$dir/ssh/agent" "$BENCH/sign-bench" "$@"
        stop_agent
    else
        echo "(no ssh-agent on PATH: its rows are skipped)"
        SSH_AUTH_SOCK= "$BENCH/sign-bench" "$@"
    fi
    echo
fi
stop_daemon

# make_smime_pki DIR: a CA, and RSA-2048 and P-256 e-mail certificates it
# issued (emailProtection, an rfc822Name), each with its key as PEM and as
# PKCS#12 (password smime-bench), for smime-bench.
make_smime_pki() {
    mkdir -m 700 "$1"
    cat >"$1/ext.cnf" <<'END'
[rsa]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = emailProtection
subjectAltName = email:rsa@smime-bench.example
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[p256]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature,keyAgreement
extendedKeyUsage = emailProtection
subjectAltName = email:p256@smime-bench.example
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
END
    (
        cd "$1" &&
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
                -out ca.pem -days 2 -subj "/CN=smime-bench CA" \
                -addext "basicConstraints=critical,CA:true" \
                -addext "keyUsage=critical,keyCertSign,cRLSign" &&
            openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key &&
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out p256.key || exit 1
        for k in rsa p256; do
            openssl req -new -key $k.key -subj "/CN=smime-bench $k" -out $k.csr &&
                openssl x509 -req -in $k.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
                    -extfile ext.cnf -extensions $k -out $k.pem &&
                openssl pkcs12 -export -inkey $k.key -in $k.pem -passout pass:smime-bench \
                    -out $k.p12 || exit 1
        done
    ) >>"$dir/openssl.log" 2>&1 || { tail -n 5 "$dir/openssl.log" >&2; return 1; }
}

if want smime; then
    echo "== smime: S/MIME through psmd against OpenSSL (fresh psmd)"
    if command -v openssl >/dev/null 2>&1; then
        make_smime_pki "$dir/smime"
        start_daemon
        PSMD_PID=$daemon "$BENCH/smime-bench" "$dir/smime" "${SMIME_SECONDS:-2}" \
            "${SMIME_BYTES:-100M}"
        stop_daemon
    else
        echo "(no openssl on PATH: skipped; it makes the keys and is the stream reference)"
    fi
    echo
fi

have_stunnel() {
    command -v stunnel4 >/dev/null 2>&1 || command -v stunnel >/dev/null 2>&1
}

# install_stunnel: stunnel4 from the Debian archive, as root or with a
# sudo that asks no password; the TLS benchmark skips its rows otherwise.
install_stunnel() {
    command -v apt-get >/dev/null 2>&1 || return 1
    if [ "$(id -u)" = 0 ]; then
        set --
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        set -- sudo -n
    else
        return 1
    fi
    echo "(installing stunnel4 with apt-get for the TLS comparison)"
    # Stale package lists are the usual reason for a first failure.
    for attempt in 1 2; do
        if "$@" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q stunnel4 >>"$dir/apt.log" 2>&1; then
            return 0
        fi
        [ $attempt = 2 ] || "$@" apt-get update -q >>"$dir/apt.log" 2>&1 || break
    done
    tail -n 3 "$dir/apt.log" >&2
    return 1
}

if want tls && [ -x "$BUILD/tls-bench" ]; then
    have_stunnel || install_stunnel || echo "(no stunnel4 and no way to install it: its rows are skipped)"
    # tls-bench places everything itself (psmd's threads included); under
    # taskset psmd starts where it will stay.
    if command -v taskset >/dev/null 2>&1; then
        start_daemon taskset -c 0
    else
        start_daemon
    fi
    "$BUILD/tls-bench" run --dir "$dir/tls" --bytes "${TLS_BYTES:-1G}" --runs "${TLS_RUNS:-3}" \
        --seconds "${TLS_SECONDS:-3}" --round-trips "${TLS_ROUND_TRIPS:-20000}"
    stop_daemon
fi

P11_MODULE=/usr/lib/softhsm/libsofthsm2.so
P11_TOKEN=psm-bench
P11_PIN=1234

have_softhsm() {
    [ -f "$P11_MODULE" ] || return 1
    for tool in softhsm2-util pkcs11-tool openssl; do
        command -v "$tool" >/dev/null 2>&1 || return 1
    done
}

# make_p11_token DIR: a SoftHSM configuration DIR/softhsm2.conf whose token
# $P11_TOKEN (user PIN $P11_PIN) holds an EC P-256 key pair generated on it
# (id 01, label bench) and a certificate for it (the same id and label,
# also in DIR/bench.der) that a throwaway CA issued, for p11sign-bench.
make_p11_token() {
    mkdir -m 700 "$1" "$1/tokens"
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
        "$1/tokens" >"$1/softhsm2.conf"
    (
        export SOFTHSM2_CONF="$1/softhsm2.conf"
        p11() {
            pkcs11-tool --module "$P11_MODULE" --token-label "$P11_TOKEN" "$@"
        }
        cd "$1" &&
            softhsm2-util --init-token --free --label "$P11_TOKEN" --so-pin 87654321 \
                --pin "$P11_PIN" &&
            p11 --login --pin "$P11_PIN" --keypairgen --key-type EC:prime256v1 --id 01 \
                --label bench --usage-sign &&
            p11 --read-object --type pubkey --id 01 -o pub.der &&
            openssl pkey -pubin -inform DER -in pub.der -out pub.pem &&
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
                -out ca.pem -days 2 -subj "/CN=p11sign-bench CA" \
                -addext "basicConstraints=critical,CA:true" \
                -addext "keyUsage=critical,keyCertSign,cRLSign" &&
            openssl x509 -new -subj "/CN=p11sign-bench" -force_pubkey pub.pem -CA ca.pem \
                -CAkey ca.key -days 2 -outform DER -out bench.der &&
            p11 --login --pin "$P11_PIN" --write-object bench.der --type cert --id 01 \
                --label bench
    ) >>"$dir/softhsm.log" 2>&1 || { tail -n 5 "$dir/softhsm.log" >&2; return 1; }
}

# write_p11_policy FILE: a system policy that lets psmd load SoftHSM, in a
# directory only its owner may write, as psmd demands.
write_p11_policy() {
    mkdir -m 755 "$(dirname "$1")"
    printf '[pkcs11]\nmodules = ["%s"]\n' "$P11_MODULE" >"$1"
    chmod 644 "$1"
}

if want pkcs11; then
    echo "== pkcs11: ECDSA P-256 with a key on SoftHSM, psm_key_sign against in-process C_Sign (fresh psmd)"
    if have_softhsm; then
        make_p11_token "$dir/p11"
        write_p11_policy "$dir/p11-etc/policy.toml"
        # Pinned: psmd and the benchmark share CPU 0 (every hand-over
        # between threads is a context switch, not a wake-up of another
        # CPU); then free to use every CPU.
        if command -v taskset >/dev/null 2>&1; then
            echo "-- pinned to CPU 0"
            start_daemon taskset -c 0 env PSM_POLICY="$dir/p11-etc/policy.toml" \
                SOFTHSM2_CONF="$dir/p11/softhsm2.conf"
            SOFTHSM2_CONF="$dir/p11/softhsm2.conf" taskset -c 0 "$BENCH/p11sign-bench" "$P11_MODULE" \
                "$P11_TOKEN" "$P11_PIN" "$dir/p11/bench.der" "${P11SIGN_N:-5000}"
            stop_daemon
            echo "-- unpinned"
        fi
        start_daemon env PSM_POLICY="$dir/p11-etc/policy.toml" SOFTHSM2_CONF="$dir/p11/softhsm2.conf"
        SOFTHSM2_CONF="$dir/p11/softhsm2.conf" "$BENCH/p11sign-bench" "$P11_MODULE" "$P11_TOKEN" \
            "$P11_PIN" "$dir/p11/bench.der" "${P11SIGN_N:-5000}"
        stop_daemon
    else
        echo "(no $P11_MODULE, softhsm2-util, pkcs11-tool or openssl: skipped)"
    fi
    echo
fi
