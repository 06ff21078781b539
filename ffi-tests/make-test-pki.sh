#!/bin/sh
# make-test-pki.sh DIR: a small PKI for the certificate tests, made with the
# openssl command line into DIR (created). Fixed validity dates, so a test
# can verify "at" any time it likes and compare dates with openssl's.
#
#   root.{pem,der,key}     "PSM Test Root", CA, 2020-01-01 .. 2049-12-31
#   server.{pem,der}       "www.example.test" (SAN DNS), serverAuth, issued by the
#                          root, 2024-01-01 .. 2049-12-31, serial 1001
#   expired.pem            "old.example.test", 2020-01-01 .. 2021-01-01
#   alice.pem              "Alice Example", alice@Example.COM, emailProtection
#   revoked.pem            "revoked.example.test", on crl.{pem,der}
#   intermediate.pem       "PSM Test Intermediate", a CA issued by the root
#   deep.pem               "deep.example.test", issued by the intermediate
#   crl.{pem,der}          the root's v2 CRL (with a CRL number) revoking revoked.pem
#   crl-old.der            an earlier CRL of the root (lastUpdate 2024-01-01)
#   other-root.pem         "PSM Other Root", never imported by the tests
#   stranger.pem           "stranger.example.test", issued by other-root
#   same-1.pem, same-2.pem two self-signed certificates, both CN "Same Name"
#   high-serial.pem        self-signed, serial 0x8badf00d (a leading 00 in DER)
#   chain.pem              server.pem then root.pem
#   chain.p7b              the same two as DER PKCS#7 certs-only
#   chain-pem.p7b          the same as PEM PKCS#7
#   empty.p7b              DER PKCS#7 certs-only with no certificates (a CRL only)
#   rsa.{pem,key}          "rsa.example.test", an RSA-2048 leaf issued by the root
#   ed25519.{pem,key}      "ed25519.example.test", an Ed25519 leaf issued by the root
#   alice.p12              alice's key, alice.pem and root.pem, friendly name "Alice p12",
#                          password "alice pw" (OpenSSL 3's default: AES-256-CBC, PBKDF2)
#   alice-legacy.p12       the same with -legacy (RC2-40 for the certificates, 3DES for the key)
#   alice-3des.p12         the same, all 3DES (what older NSS and Windows write)
#   alice-nopw.p12         the same, password ""
#   alice-nokey.p12        alice.pem and root.pem only, no key
#   rsa.p12, ed25519.p12   their key and certificate, password "p12 pw"
#
# The private keys are in PKCS#8 PEM, unencrypted (*.key).
#
# Exits non-zero, with openssl's complaint on stderr, if anything fails.

set -eu

dir=${1:?usage: make-test-pki.sh DIR}
mkdir -p "$dir"
cd "$dir"
mkdir -p ca-db
: > ca-db/index.txt
echo 1000 > ca-db/serial
echo 1000 > ca-db/crlnumber

cat > ca.cnf <<'EOF'
[ca]
default_ca = test_ca

[test_ca]
dir = .
database = ./ca-db/index.txt
serial = ./ca-db/serial
crlnumber = ./ca-db/crlnumber
new_certs_dir = ./ca-db
certificate = ./root.pem
private_key = ./root.key
default_md = sha256
default_crl_days = 30
policy = any_policy
unique_subject = no
copy_extensions = none
email_in_dn = yes

# The order of the subject's attributes (openssl ca rebuilds the DN from it).
[any_policy]
organizationName = optional
commonName = supplied
emailAddress = optional

[req]
distinguished_name = req_dn
prompt = no

[req_dn]
CN = unused

[root_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[intermediate_ext]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[server_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:$ENV::SAN_DNS
authorityKeyIdentifier = keyid

[email_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = emailProtection
subjectAltName = email:alice@Example.COM
authorityKeyIdentifier = keyid

[self_ext]
basicConstraints = CA:FALSE
subjectAltName = DNS:same.example.test
EOF

SAN_DNS=unused
export SAN_DNS

# key FILE: a P-256 key, or (KEY_ALG=rsa2048|ed25519) another kind.
KEY_ALG=ec
key() {
    case $KEY_ALG in
    rsa2048) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null ;;
    ed25519) openssl genpkey -algorithm ED25519 -out "$1" 2>/dev/null ;;
    *) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null ;;
    esac
}

# csr KEY SUBJECT OUT
csr() {
    openssl req -new -config ca.cnf -key "$1" -subj "$2" -out "$3"
}

# root NAME SUBJECT: a self-signed CA with fixed dates.
root() {
    key "$1.key"
    csr "$1.key" "$2" "$1.csr"
    openssl ca -batch -config ca.cnf -selfsign -keyfile "$1.key" -in "$1.csr" \
        -extensions root_ext -startdate 20200101000000Z -enddate 20491231235959Z \
        -notext -out "$1.pem" 2>/dev/null
}

# leaf NAME SUBJECT EXTENSIONS START END [CA]
leaf() {
    key "$1.key"
    csr "$1.key" "$2" "$1.csr"
    openssl ca -batch -config ca.cnf -cert "${6:-root}.pem" -keyfile "${6:-root}.key" \
        -in "$1.csr" -extensions "$3" -startdate "$4" -enddate "$5" -notext -out "$1.pem" \
        2>/dev/null
}

root root "/O=PSM Tests/CN=PSM Test Root"
openssl x509 -in root.pem -outform DER -out root.der

SAN_DNS=www.example.test leaf server "/O=PSM Tests/CN=www.example.test" server_ext \
    20240101000000Z 20491231235959Z
openssl x509 -in server.pem -outform DER -out server.der
SAN_DNS=old.example.test leaf expired "/CN=old.example.test" server_ext \
    20200101000000Z 20210101000000Z
leaf alice "/CN=Alice Example" email_ext 20240101000000Z 20491231235959Z
SAN_DNS=revoked.example.test leaf revoked "/CN=revoked.example.test" server_ext \
    20240101000000Z 20491231235959Z

leaf intermediate "/O=PSM Tests/CN=PSM Test Intermediate" intermediate_ext \
    20200101000000Z 20491231235959Z
SAN_DNS=deep.example.test leaf deep "/CN=deep.example.test" server_ext \
    20240101000000Z 20491231235959Z intermediate

# An older CRL first (an explicit, earlier lastUpdate), then the current one.
openssl ca -batch -config ca.cnf -gencrl -crl_lastupdate 20240101000000Z \
    -crl_nextupdate 20240201000000Z -out crl-old.pem 2>/dev/null
openssl crl -in crl-old.pem -outform DER -out crl-old.der
openssl ca -batch -config ca.cnf -revoke revoked.pem -crl_reason keyCompromise 2>/dev/null
openssl ca -batch -config ca.cnf -gencrl -out crl.pem 2>/dev/null
openssl crl -in crl.pem -outform DER -out crl.der

# A second root with a leaf of its own: nothing in the store vouches for it.
root other-root "/O=PSM Tests/CN=PSM Other Root"
SAN_DNS=stranger.example.test leaf stranger "/CN=stranger.example.test" server_ext \
    20240101000000Z 20491231235959Z other-root

for i in 1 2; do
    openssl req -x509 -config ca.cnf -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "same-$i.key" -subj "/CN=Same Name" -extensions self_ext -days 3650 \
        -set_serial "$i" -out "same-$i.pem" 2>/dev/null
done
openssl req -x509 -config ca.cnf -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout high-serial.key -subj "/CN=High Serial" -extensions self_ext -days 3650 \
    -set_serial 0x8badf00d -out high-serial.pem 2>/dev/null

cat server.pem root.pem > chain.pem
openssl crl2pkcs7 -nocrl -certfile chain.pem -outform DER -out chain.p7b
openssl crl2pkcs7 -nocrl -certfile chain.pem -out chain-pem.p7b
openssl crl2pkcs7 -in crl.pem -outform DER -out empty.p7b

# Leaves with other kinds of keys, for PKCS#12 and signing.
SAN_DNS=rsa.example.test KEY_ALG=rsa2048 leaf rsa "/CN=rsa.example.test" server_ext \
    20240101000000Z 20491231235959Z
SAN_DNS=ed25519.example.test KEY_ALG=ed25519 leaf ed25519 "/CN=ed25519.example.test" \
    server_ext 20240101000000Z 20491231235959Z
KEY_ALG=ec # sh may keep an assignment made for a function call

# p12 OUT PASSWORD [OPTION...]: alice's key and certificate with the root.
p12() {
    out=$1
    pass=$2
    shift 2
    openssl pkcs12 -export -inkey alice.key -in alice.pem -certfile root.pem -name "Alice p12" \
        -passout "pass:$pass" -out "$out" "$@"
}
p12 alice.p12 "alice pw"
p12 alice-legacy.p12 "alice pw" -legacy
p12 alice-3des.p12 "alice pw" -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1
p12 alice-nopw.p12 ""
p12 alice-nokey.p12 "alice pw" -nokeys
for name in rsa ed25519; do
    openssl pkcs12 -export -inkey "$name.key" -in "$name.pem" -name "$name p12" \
        -passout "pass:p12 pw" -out "$name.p12"
done
