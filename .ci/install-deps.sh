#!/bin/sh
# Installs what `make test` needs beyond the Rust toolchain, only when it is
# missing: cmake (ffi-tests), a C/C++ compiler, python3 and setpriv (the
# other-uid test), sha256sum (C tests compare with it), OpenSSL's headers
# (the openssl crate) and its command line tool (interop tests), gpgsm
# (S/MIME interop), python3's venv (the cryptography-vectors corpus), and
# Debian's chromium + chromium-driver (the dialog tests in a real browser).
set -eu
missing=""
command -v cmake >/dev/null 2>&1 || missing="$missing cmake"
command -v cc >/dev/null 2>&1 || missing="$missing gcc"
command -v c++ >/dev/null 2>&1 || missing="$missing g++"
command -v make >/dev/null 2>&1 || missing="$missing make"
[ -x /usr/bin/python3 ] || missing="$missing python3"
command -v setpriv >/dev/null 2>&1 || missing="$missing util-linux"
command -v sha256sum >/dev/null 2>&1 || missing="$missing coreutils"
command -v taskset >/dev/null 2>&1 || missing="$missing util-linux"
command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
pkg-config --exists openssl 2>/dev/null || missing="$missing libssl-dev"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
# S/MIME interop: gpgsm (with its agent), and a venv for cryptography-vectors.
command -v gpgsm >/dev/null 2>&1 || missing="$missing gpgsm"
command -v gpg-agent >/dev/null 2>&1 || missing="$missing gpg-agent"
command -v gpgconf >/dev/null 2>&1 || missing="$missing gpgconf"
python3 -m venv --help >/dev/null 2>&1 || missing="$missing python3-venv"
# psm's HTML dialogs in a real browser: headless Chromium and chromedriver.
[ -x /usr/bin/chromium ] || missing="$missing chromium"
[ -x /usr/bin/chromedriver ] || missing="$missing chromium-driver"
# PKCS#11 tokens: SoftHSM as the token, pkcs11-tool to fill it, and the
# header the test's hanging wrapper module is compiled against.
[ -f /usr/lib/softhsm/libsofthsm2.so ] || missing="$missing softhsm2"
command -v softhsm2-util >/dev/null 2>&1 || missing="$missing softhsm2"
command -v pkcs11-tool >/dev/null 2>&1 || missing="$missing opensc"
[ -f /usr/include/p11-kit-1/p11-kit/pkcs11.h ] || missing="$missing libp11-kit-dev"
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "missing:$missing (install them, or run as root so make test can)" >&2
        exit 1
    fi
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq $missing >/dev/null
fi
for comp in rustfmt clippy; do
    if ! cargo "$( [ $comp = rustfmt ] && echo fmt || echo clippy )" --version >/dev/null 2>&1; then
        rustup component add "$comp"
    fi
done
