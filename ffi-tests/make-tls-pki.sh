#!/bin/sh
# make-tls-pki.sh DIR: certificates for the TLS tests, made with the openssl
# command line into DIR (created). Valid from now for ten years, so
# openssl s_server and psmd both accept them today.
#
#   ca.{pem,key}            "PSM TLS Test CA": the tests import it with PSM_TRUST_CA_TLS_SERVER
#   server.{pem,key}        "localhost" (SAN DNS:localhost, IP 127.0.0.1, IP ::1), serverAuth,
#                           issued by the CA
#   server-chain.pem        server.pem then ca.pem
#   server.p12              server.key and server.pem, password "server pw" (psm as a TLS server)
#   client.{pem,key}        "PSM TLS Test Client", clientAuth, issued by the CA
#   client.p12              client.key, client.pem and ca.pem, password "client pw"
#   stranger-ca.{pem,key}   "PSM Stranger CA", never imported by the tests
#   stranger.{pem,key}      "localhost" as server.pem, issued by the stranger CA
#
# Keys are P-256, PKCS#8 PEM, unencrypted. Exits non-zero, with openssl's
# complaint on stderr, if anything fails.

set -eu

dir=${1:?usage: make-tls-pki.sh DIR}
mkdir -p "$dir"
cd "$dir"

cat > ext.cnf <<'EOF'
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
authorityKeyIdentifier = keyid

[client_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
EOF

key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

# ca NAME SUBJECT: a self-signed CA.
ca() {
    key "$1.key"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
    openssl x509 -req -in "$1.csr" -signkey "$1.key" -set_serial 1 -days 3650 \
        -extfile ext.cnf -extensions ca_ext -out "$1.pem" 2>/dev/null
}

# leaf NAME SUBJECT EXTENSIONS CA SERIAL
leaf() {
    key "$1.key"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA "$4.pem" -CAkey "$4.key" -set_serial "$5" \
        -days 3650 -extfile ext.cnf -extensions "$3" -out "$1.pem" 2>/dev/null
}

ca ca "/O=PSM Tests/CN=PSM TLS Test CA"
leaf server "/O=PSM Tests/CN=localhost" server_ext ca 1001
leaf client "/O=PSM Tests/CN=PSM TLS Test Client" client_ext ca 1002
ca stranger-ca "/O=PSM Tests/CN=PSM Stranger CA"
leaf stranger "/O=PSM Tests/CN=localhost" server_ext stranger-ca 2001

cat server.pem ca.pem > server-chain.pem
openssl pkcs12 -export -inkey server.key -in server.pem -name "TLS test server" \
    -passout "pass:server pw" -out server.p12
openssl pkcs12 -export -inkey client.key -in client.pem -certfile ca.pem \
    -name "TLS test client" -passout "pass:client pw" -out client.p12
