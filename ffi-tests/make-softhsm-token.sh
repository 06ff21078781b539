#!/bin/sh
# make-softhsm-token.sh DIR: a SoftHSM token for the PKCS#11 tests, made
# with softhsm2-util, pkcs11-tool and the openssl command line into DIR:
#
#   softhsm2.conf      a private SoftHSM configuration (tokens in DIR/tokens)
#   token "psm-c"      user PIN 1234, SO PIN 87654321, holding an EC P-256 key
#                      pair generated on it (id 01, label "c-key") and
#                      cert.der (id 01, label "c-cert")
#   ca.{pem,key}       "PSM Token Test CA", which issued cert.pem
#   cert.{pem,der}     "C Token User", c-user@token.test, for the token's key
#   etc/policy.toml    a policy naming SoftHSM (pkcs11.modules); etc/ is 0755
#                      and the file 0644, as psmd demands
set -eu

dir=${1:?usage: make-softhsm-token.sh DIR}
module=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
mkdir -p "$dir/tokens" "$dir/etc"
chmod 755 "$dir" "$dir/etc"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
    "$dir/tokens" >"$dir/softhsm2.conf"
export SOFTHSM2_CONF="$dir/softhsm2.conf"

softhsm2-util --init-token --free --label psm-c --so-pin 87654321 --pin 1234 >/dev/null
p11() {
    pkcs11-tool --module "$module" --token-label psm-c --login --pin 1234 "$@"
}
p11 --keypairgen --key-type EC:prime256v1 --id 01 --label c-key --usage-sign >/dev/null
p11 --read-object --type pubkey --id 01 -o "$dir/pub.der" >/dev/null
openssl pkey -pubin -inform DER -in "$dir/pub.der" -out "$dir/pub.pem"

openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=PSM Token Test CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl x509 -new -force_pubkey "$dir/pub.pem" -subj "/CN=C Token User" -days 365 \
    -set_serial 7 -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -extfile /dev/stdin -out "$dir/cert.pem" <<'EXT'
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth, emailProtection
subjectAltName = email:c-user@token.test
EXT
openssl x509 -in "$dir/cert.pem" -outform DER -out "$dir/cert.der"
p11 --write-object "$dir/cert.der" --type cert --id 01 --label c-cert >/dev/null

printf '[pkcs11]\nmodules = ["%s"]\n' "$module" >"$dir/etc/policy.toml"
chmod 644 "$dir/etc/policy.toml"
