#!/bin/sh
# make-smime-pki.sh DIR: certificates for the S/MIME tests, made with the
# openssl command line into DIR (created). Valid from now for ten years, so
# psmd signs with them and encrypts to them today.
#
#   root.{pem,key}          "PSM SMIME Test Root": the tests import it with PSM_TRUST_CA_EMAIL
#   alice.{pem,key}         "Alice Example", RSA-2048, alice@example.test (SAN rfc822Name),
#                           emailProtection, digitalSignature + keyEncipherment
#   carol.{pem,key}         "Carol Example", P-256, carol@example.test, emailProtection,
#                           digitalSignature + keyAgreement (ECDH recipients)
#   dave.{pem,key}          "Dave Example", RSA-2048, dave@example.test: a person whose
#                           key psm never holds
#   stranger-root.{pem,key} "PSM Stranger Root", never trusted by the tests
#   stranger.{pem,key}      "Stranger Example", P-256, stranger@example.test, issued by
#                           stranger-root
#   alice.p12, carol.p12    the key, the certificate and root.pem, password "smime pw"
#
# Keys are PKCS#8 PEM, unencrypted. Exits non-zero, with openssl's complaint
# on stderr, if anything fails.

set -eu

dir=${1:?usage: make-smime-pki.sh DIR}
mkdir -p "$dir"
cd "$dir"

cat > ext.cnf <<'EOF'
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

# RSA: signs, and receives keys by key transport.
[rsa_person_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = emailProtection
subjectAltName = email:$ENV::EMAIL
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

# EC: signs (ECDSA), and receives keys by key agreement (ECDH).
[ec_person_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyAgreement
extendedKeyUsage = emailProtection
subjectAltName = email:$ENV::EMAIL
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

EMAIL=unused
export EMAIL

# key FILE rsa|ec
key() {
    case $2 in
    rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null ;;
    ec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null ;;
    esac
}

# root NAME SUBJECT: a self-signed CA.
root() {
    key "$1.key" ec
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
    openssl x509 -req -in "$1.csr" -signkey "$1.key" -set_serial 1 -days 3650 \
        -extfile ext.cnf -extensions ca_ext -out "$1.pem" 2>/dev/null
}

# person NAME SUBJECT EMAIL rsa|ec CA SERIAL
person() {
    key "$1.key" "$4"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
    EMAIL=$3 openssl x509 -req -in "$1.csr" -CA "$5.pem" -CAkey "$5.key" -set_serial "$6" \
        -days 3650 -extfile ext.cnf -extensions "${4}_person_ext" -out "$1.pem" 2>/dev/null
}

root root "/O=PSM Tests/CN=PSM SMIME Test Root"
person alice "/O=PSM Tests/CN=Alice Example" alice@example.test rsa root 1001
person carol "/O=PSM Tests/CN=Carol Example" carol@example.test ec root 1002
person dave "/O=PSM Tests/CN=Dave Example" dave@example.test rsa root 1003
root stranger-root "/O=PSM Tests/CN=PSM Stranger Root"
person stranger "/O=PSM Tests/CN=Stranger Example" stranger@example.test ec stranger-root 2001

for name in alice carol; do
    openssl pkcs12 -export -inkey "$name.key" -in "$name.pem" -certfile root.pem \
        -name "$name" -passout "pass:smime pw" -out "$name.p12"
done
