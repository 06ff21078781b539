//! Private keys: generation, public keys, PKCS#10 requests and raw signatures.
//!
//! Keys travel between these functions and the store as unencrypted PKCS#8
//! DER in zeroizing buffers; the store seals them ([`super::seal`]) before
//! they touch the disk. Nothing here logs or formats key material.

use std::net::IpAddr;

use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Signer};
use openssl::stack::Stack;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509Name, X509NameBuilder, X509Req};
use psm::{Code, Error};
use zeroize::Zeroizing;

/// Longest subject DN string we parse; real DNs are a few hundred bytes.
pub const MAX_DN_LEN: usize = 4096;
/// Most subject alternative names one request may carry.
pub const MAX_CSR_SANS: usize = 1000;
/// Longest DNS name (RFC 1035: 253 characters in text form).
const MAX_DNS_NAME_LEN: usize = 253;
/// Longest email address (RFC 5321 path limit).
const MAX_EMAIL_LEN: usize = 254;

/// The key types psmd generates (`PSM_KEY_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    EcP256,
    EcP384,
    Ed25519,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyType {
    pub const ALL: &'static [KeyType] = &[
        KeyType::EcP256,
        KeyType::EcP384,
        KeyType::Ed25519,
        KeyType::Rsa2048,
        KeyType::Rsa3072,
        KeyType::Rsa4096,
    ];

    /// The signature algorithm a CSR or a default signature uses for this type.
    pub fn default_sig_alg(self) -> SigAlg {
        match self {
            KeyType::EcP256 => SigAlg::EcdsaSha256,
            KeyType::EcP384 => SigAlg::EcdsaSha384,
            KeyType::Ed25519 => SigAlg::Ed25519,
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => SigAlg::RsaPkcs1Sha256,
        }
    }
}

/// Raw signature algorithms for [`sign`] (`PSM_SIG_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigAlg {
    /// ECDSA over SHA-256, signature DER-encoded (`Ecdsa-Sig-Value`).
    EcdsaSha256,
    /// ECDSA over SHA-384, signature DER-encoded.
    EcdsaSha384,
    /// Pure Ed25519 (RFC 8032) over the whole message.
    Ed25519,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1Sha256,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (RFC 8017).
    RsaPssSha256,
}

/// A subject alternative name for a certificate request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum San {
    /// A DNS name in ASCII (internationalized names as A-labels, `xn--...`);
    /// a leading `*.` wildcard label is allowed.
    Dns(String),
    Ip(IpAddr),
    /// An RFC 822 mailbox in ASCII (`local@domain`).
    Email(String),
}

/// Generates a fresh key and returns it as unencrypted PKCS#8 DER.
///
/// RSA generation takes from tens of milliseconds (2048) to seconds (4096):
/// callers run this on the worker pool.
pub fn generate(kt: KeyType) -> Result<Zeroizing<Vec<u8>>, Error> {
    let pkey = match kt {
        KeyType::EcP256 => ec_key(Nid::X9_62_PRIME256V1),
        KeyType::EcP384 => ec_key(Nid::SECP384R1),
        KeyType::Ed25519 => PKey::generate_ed25519(),
        KeyType::Rsa2048 => Rsa::generate(2048).and_then(PKey::from_rsa),
        KeyType::Rsa3072 => Rsa::generate(3072).and_then(PKey::from_rsa),
        KeyType::Rsa4096 => Rsa::generate(4096).and_then(PKey::from_rsa),
    }
    .map_err(|e| internal(&format!("generating a {kt:?} key"), e))?;
    pkcs8_of(&pkey)
}

fn ec_key(curve: Nid) -> Result<PKey<Private>, ErrorStack> {
    let group = EcGroup::from_curve_name(curve)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

/// Serializes a key as PKCS#8 DER straight into a zeroizing buffer.
pub(crate) fn pkcs8_of(pkey: &PKey<Private>) -> Result<Zeroizing<Vec<u8>>, Error> {
    pkey.private_key_to_pkcs8().map(Zeroizing::new).map_err(|e| internal("encoding a private key", e))
}

/// Loads a PKCS#8 private key. The error never echoes the input.
pub(crate) fn load_pkcs8(pkcs8: &[u8]) -> Result<PKey<Private>, Error> {
    // The OpenSSL error stack says nothing useful about a bad key and the
    // message must not hint at its contents, so it is dropped.
    PKey::private_key_from_pkcs8(pkcs8)
        .map_err(|_| Error::new(Code::PSM_ERR_DECODE, "the private key is not valid PKCS#8 DER"))
}

/// Which of our key types a stored key is. Keys imported from PKCS#12 may be
/// of a type psmd does not generate (RSA-1024, P-521, ...): UNSUPPORTED.
pub fn key_type(pkcs8: &[u8]) -> Result<KeyType, Error> {
    let pkey = load_pkcs8(pkcs8)?;
    match pkey.id() {
        Id::EC => {
            let curve = pkey
                .ec_key()
                .ok()
                .and_then(|ec| ec.group().curve_name())
                .ok_or_else(|| Error::new(Code::PSM_ERR_UNSUPPORTED, "EC key on an unnamed curve"))?;
            match curve {
                Nid::X9_62_PRIME256V1 => Ok(KeyType::EcP256),
                Nid::SECP384R1 => Ok(KeyType::EcP384),
                other => Err(Error::new(
                    Code::PSM_ERR_UNSUPPORTED,
                    format!("EC key on curve {}", other.short_name().unwrap_or("(unknown)")),
                )),
            }
        }
        Id::ED25519 => Ok(KeyType::Ed25519),
        Id::RSA => match pkey.bits() {
            2048 => Ok(KeyType::Rsa2048),
            3072 => Ok(KeyType::Rsa3072),
            4096 => Ok(KeyType::Rsa4096),
            bits => Err(Error::new(Code::PSM_ERR_UNSUPPORTED, format!("RSA key of {bits} bits"))),
        },
        _ => Err(Error::new(Code::PSM_ERR_UNSUPPORTED, format!("{} key", kind_name(&pkey)))),
    }
}

/// The key's SubjectPublicKeyInfo DER: what a certificate carries, so the
/// store binds an imported certificate to its key by comparing these bytes.
pub fn public_key_der(pkcs8: &[u8]) -> Result<Vec<u8>, Error> {
    let pkey = load_pkcs8(pkcs8)?;
    pkey.public_key_to_der().map_err(|e| internal("encoding a public key", e))
}

/// Builds a PKCS#10 certificate request signed by the key.
///
/// `subject_dn` is an RFC 4514 string, most specific attribute first, as
/// LDAP and NSS's certutil write it: "CN=Alice,O=Example Org,C=DE". As RFC
/// 4514 says, the encoded name lists the RDNs in the reverse order (C, O,
/// CN), which is also how `openssl req -subject -nameopt RFC2253` prints it
/// back. The signature uses SHA-256 (P-256, RSA), SHA-384 (P-384), SHA-512
/// (P-521) or pure EdDSA.
pub fn make_csr(pkcs8: &[u8], subject_dn: &str, sans: &[San]) -> Result<Vec<u8>, Error> {
    let pkey = load_pkcs8(pkcs8)?;
    let subject = build_name(subject_dn)?;
    let md = csr_digest(&pkey)?;
    let ctx = "building the certificate request";
    let mut req = X509Req::builder().map_err(|e| internal(ctx, e))?;
    req.set_version(0).map_err(|e| internal(ctx, e))?;
    req.set_subject_name(&subject).map_err(|e| internal(ctx, e))?;
    req.set_pubkey(&pkey).map_err(|e| internal(ctx, e))?;
    if !sans.is_empty() {
        let ext = build_san(sans, &req.x509v3_context(None))?;
        let mut exts = Stack::new().map_err(|e| internal(ctx, e))?;
        exts.push(ext).map_err(|e| internal(ctx, e))?;
        req.add_extensions(&exts).map_err(|e| internal(ctx, e))?;
    }
    req.sign(&pkey, md).map_err(|e| internal("signing the certificate request", e))?;
    req.build().to_der().map_err(|e| internal("encoding the certificate request", e))
}

fn csr_digest(pkey: &PKey<Private>) -> Result<MessageDigest, Error> {
    match pkey.id() {
        Id::EC => match pkey.ec_key().ok().and_then(|ec| ec.group().curve_name()) {
            Some(Nid::SECP384R1) => Ok(MessageDigest::sha384()),
            Some(Nid::SECP521R1) => Ok(MessageDigest::sha512()),
            _ => Ok(MessageDigest::sha256()),
        },
        Id::RSA => Ok(MessageDigest::sha256()),
        // EdDSA hashes internally; X509_REQ_sign wants the null digest.
        Id::ED25519 | Id::ED448 => Ok(MessageDigest::null()),
        _ => Err(Error::new(
            Code::PSM_ERR_UNSUPPORTED,
            format!("cannot sign a certificate request with a {} key", kind_name(pkey)),
        )),
    }
}

fn build_san(
    sans: &[San],
    ctx: &openssl::x509::X509v3Context<'_>,
) -> Result<openssl::x509::X509Extension, Error> {
    if sans.len() > MAX_CSR_SANS {
        return Err(invalid(format!(
            "{} subject alternative names; at most {MAX_CSR_SANS} are allowed",
            sans.len()
        )));
    }
    let mut ext = SubjectAlternativeName::new();
    for san in sans {
        match san {
            San::Dns(name) => {
                check_dns_name(name)?;
                ext.dns(name);
            }
            San::Email(addr) => {
                check_email(addr)?;
                ext.email(addr);
            }
            San::Ip(ip) => {
                ext.ip(&ip.to_string());
            }
        }
    }
    ext.build(ctx).map_err(|e| internal("encoding the subject alternative names", e))
}

fn check_dns_name(name: &str) -> Result<(), Error> {
    let body = name.strip_prefix("*.").unwrap_or(name);
    let ok = !body.is_empty()
        && name.len() <= MAX_DNS_NAME_LEN
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "DNS name {name:?} is not a valid host name (ASCII letters, digits, '-', dots; \
             internationalized names as xn-- A-labels; only a leading \"*.\" wildcard)"
        )))
    }
}

fn check_email(addr: &str) -> Result<(), Error> {
    let ok = addr.len() <= MAX_EMAIL_LEN
        && addr.bytes().all(|b| b.is_ascii_graphic() && b != b',')
        && matches!(addr.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("email address {addr:?} is not a valid ASCII address of the form local@domain")))
    }
}

/// Signs `data` with the key, never exposing it.
///
/// The algorithm must fit the key: ECDSA needs an EC key (any curve; the
/// digest is the one named), Ed25519 an Ed25519 key, RSA algorithms an RSA
/// key. ECDSA signatures are DER-encoded as X.509 and CMS carry them.
pub fn sign(pkcs8: &[u8], alg: SigAlg, data: &[u8]) -> Result<Vec<u8>, Error> {
    LoadedKey::load(pkcs8)?.sign(alg, data)
}

/// A private key parsed once for many signatures: OpenSSL 3's PKCS#8
/// decoder costs ~300 µs, twenty times an ECDSA signature. Or a key on a
/// PKCS#11 token, whose operations OpenSSL hands to the token.
pub struct LoadedKey {
    pkey: PKey<Private>,
    on_token: bool,
}

impl LoadedKey {
    pub fn load(pkcs8: &[u8]) -> Result<LoadedKey, Error> {
        load_pkcs8(pkcs8).map(|pkey| LoadedKey { pkey, on_token: false })
    }

    /// A key on a token (`crate::pkcs11::ossl::token_pkey`): every
    /// operation is a call to the token.
    pub fn on_token(pkey: PKey<Private>) -> LoadedKey {
        LoadedKey { pkey, on_token: true }
    }

    pub fn is_on_token(&self) -> bool {
        self.on_token
    }

    /// See [`sign`].
    pub fn sign(&self, alg: SigAlg, data: &[u8]) -> Result<Vec<u8>, Error> {
        sign_with(&self.pkey, alg, data)
    }

    /// The key itself, for OpenSSL operations that take one (CMS).
    pub fn pkey(&self) -> &PKey<Private> {
        &self.pkey
    }

    /// Whether a signature takes tens of microseconds (EC, Ed25519) rather
    /// than hundreds or more (RSA), so it may run on the event loop.
    pub fn signs_fast(&self) -> bool {
        !self.on_token && matches!(self.pkey.id(), Id::EC | Id::ED25519)
    }
}

fn sign_with(pkey: &PKey<Private>, alg: SigAlg, data: &[u8]) -> Result<Vec<u8>, Error> {
    let fits = matches!(
        (alg, pkey.id()),
        (SigAlg::EcdsaSha256 | SigAlg::EcdsaSha384, Id::EC)
            | (SigAlg::Ed25519, Id::ED25519)
            | (SigAlg::RsaPkcs1Sha256 | SigAlg::RsaPssSha256, Id::RSA)
    );
    if !fits {
        return Err(invalid(format!(
            "signature algorithm {alg:?} cannot be used with a {} key",
            kind_name(pkey)
        )));
    }
    let ctx = "signing";
    let mut signer = match alg {
        SigAlg::EcdsaSha256 | SigAlg::RsaPkcs1Sha256 | SigAlg::RsaPssSha256 => {
            Signer::new(MessageDigest::sha256(), pkey)
        }
        SigAlg::EcdsaSha384 => Signer::new(MessageDigest::sha384(), pkey),
        SigAlg::Ed25519 => Signer::new_without_digest(pkey),
    }
    .map_err(|e| internal(ctx, e))?;
    match alg {
        SigAlg::RsaPkcs1Sha256 => signer.set_rsa_padding(Padding::PKCS1).map_err(|e| internal(ctx, e))?,
        SigAlg::RsaPssSha256 => {
            signer.set_rsa_padding(Padding::PKCS1_PSS).map_err(|e| internal(ctx, e))?;
            signer.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH).map_err(|e| internal(ctx, e))?;
            signer.set_rsa_mgf1_md(MessageDigest::sha256()).map_err(|e| internal(ctx, e))?;
        }
        _ => {}
    }
    signer.sign_oneshot_to_vec(data).map_err(|e| internal(ctx, e))
}

/// A human name for the key's algorithm, for error messages.
fn kind_name(pkey: &PKey<Private>) -> String {
    match pkey.id() {
        Id::EC => match pkey.ec_key().ok().and_then(|ec| ec.group().curve_name()) {
            Some(Nid::X9_62_PRIME256V1) => "EC P-256".into(),
            Some(Nid::SECP384R1) => "EC P-384".into(),
            Some(Nid::SECP521R1) => "EC P-521".into(),
            _ => "EC".into(),
        },
        Id::ED25519 => "Ed25519".into(),
        Id::ED448 => "Ed448".into(),
        Id::RSA => format!("RSA-{}", pkey.bits()),
        Id::RSA_PSS => "RSA-PSS".into(),
        Id::DSA => "DSA".into(),
        _ => "unknown".into(),
    }
}

// ---- subject DNs -------------------------------------------------------

/// Attribute names accepted in a subject DN: RFC 4514's table plus the
/// ones certificate requests commonly carry. Matched case-insensitively.
const DN_ATTRIBUTES: &[(&str, Nid)] = &[
    ("CN", Nid::COMMONNAME),
    ("O", Nid::ORGANIZATIONNAME),
    ("OU", Nid::ORGANIZATIONALUNITNAME),
    ("C", Nid::COUNTRYNAME),
    ("L", Nid::LOCALITYNAME),
    ("ST", Nid::STATEORPROVINCENAME),
    ("STREET", Nid::STREETADDRESS),
    ("DC", Nid::DOMAINCOMPONENT),
    ("UID", Nid::USERID),
    ("serialNumber", Nid::SERIALNUMBER),
    ("title", Nid::TITLE),
    ("GN", Nid::GIVENNAME),
    ("givenName", Nid::GIVENNAME),
    ("SN", Nid::SURNAME),
    ("surname", Nid::SURNAME),
    ("emailAddress", Nid::PKCS9_EMAILADDRESS),
    ("E", Nid::PKCS9_EMAILADDRESS),
];

/// One `type=value` pair of a DN string, value unescaped.
#[derive(Debug, PartialEq, Eq)]
struct DnAttribute {
    name: &'static str,
    nid: Nid,
    value: String,
}

fn build_name(dn: &str) -> Result<X509Name, Error> {
    let attrs = parse_dn(dn)?;
    let ctx = "building the subject name";
    let mut name = X509NameBuilder::new().map_err(|e| internal(ctx, e))?;
    // RFC 4514 writes the last RDN of the encoded sequence first.
    for attr in attrs.iter().rev() {
        name.append_entry_by_nid(attr.nid, &attr.value).map_err(|e| {
            invalid(format!(
                "subject DN attribute {}={:?} was rejected (too long, or characters its type \
                 does not allow): {e}",
                attr.name, attr.value
            ))
        })?;
    }
    Ok(name.build())
}

/// Parses an RFC 4514 DN string into its attributes, in the order written.
///
/// Supported: `,` between RDNs, the backslash escapes of RFC 4514 (`\,`,
/// `\+`, `\"`, `\\`, `\<`, `\>`, `\;`, `\=`, `\ `, `\#` and `\XX` hex bytes
/// of UTF-8), and spaces around names and values, which are ignored unless
/// escaped. Refused: multi-valued RDNs (`+`), quoted or `#hex` values, `;`
/// as a separator.
fn parse_dn(dn: &str) -> Result<Vec<DnAttribute>, Error> {
    if dn.len() > MAX_DN_LEN {
        return Err(invalid(format!("subject DN is {} bytes long; at most {MAX_DN_LEN} allowed", dn.len())));
    }
    if dn.trim().is_empty() {
        return Err(invalid("subject DN is empty; give at least one attribute such as CN=name"));
    }
    let mut attrs = Vec::new();
    let mut rest = dn.as_bytes();
    loop {
        let (attr, tail) = parse_attribute(rest, attrs.len() + 1)?;
        attrs.push(attr);
        match tail {
            Some(t) => rest = t,
            None => break,
        }
    }
    Ok(attrs)
}

/// Parses one `type=value`; returns what follows the separating comma, or
/// None at the end of the string.
fn parse_attribute(input: &[u8], position: usize) -> Result<(DnAttribute, Option<&[u8]>), Error> {
    let eq = input.iter().position(|&b| b == b'=' || b == b',');
    let (raw_name, after) = match eq {
        Some(i) if input[i] == b'=' => (&input[..i], &input[i + 1..]),
        _ => {
            let shown = String::from_utf8_lossy(&input[..eq.unwrap_or(input.len())]);
            let shown = shown.trim();
            return Err(invalid(if shown.is_empty() {
                format!("subject DN attribute {position} is empty (a stray comma?)")
            } else {
                format!("subject DN attribute {position} ({shown:?}) has no '='; write it as TYPE=value")
            }));
        }
    };
    let raw_name =
        std::str::from_utf8(raw_name).map_err(|_| invalid("subject DN is not valid UTF-8"))?.trim();
    if raw_name.is_empty() {
        return Err(invalid(format!("subject DN attribute {position} has no type before '='")));
    }
    let (name, nid) =
        DN_ATTRIBUTES.iter().find(|(n, _)| n.eq_ignore_ascii_case(raw_name)).copied().ok_or_else(|| {
            let known: Vec<&str> = DN_ATTRIBUTES.iter().map(|(n, _)| *n).collect();
            invalid(format!(
                "subject DN attribute type {raw_name:?} is not supported; use one of {}",
                known.join(", ")
            ))
        })?;

    let (value, tail) = parse_value(after, name)?;
    if value.is_empty() {
        return Err(invalid(format!("subject DN attribute {name} has an empty value")));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(invalid(format!(
            "subject DN attribute {name} contains the control character U+{:04X}",
            c as u32
        )));
    }
    if nid == Nid::COUNTRYNAME && !(value.len() == 2 && value.bytes().all(|b| b.is_ascii_alphabetic())) {
        return Err(invalid(format!("country C={value:?} must be a two-letter ISO 3166 code such as DE")));
    }
    if nid == Nid::PKCS9_EMAILADDRESS {
        check_email(&value)?;
    }
    Ok((DnAttribute { name, nid, value }, tail))
}

/// Reads an attribute value up to an unescaped comma, unescaping it and
/// dropping unescaped spaces at either end.
fn parse_value<'a>(input: &'a [u8], name: &str) -> Result<(String, Option<&'a [u8]>), Error> {
    let mut out: Vec<u8> = Vec::new();
    // Length of `out` up to its last escaped or non-space byte: what is kept
    // when unescaped trailing spaces are trimmed.
    let mut significant = 0;
    let mut i = 0;
    while i < input.len() && input[i] == b' ' {
        i += 1;
    }
    if input.get(i) == Some(&b'#') {
        return Err(invalid(format!("subject DN attribute {name}: #hex-encoded values are not supported")));
    }
    while i < input.len() {
        let b = input[i];
        match b {
            b',' => {
                out.truncate(significant);
                return Ok((utf8_value(out, name)?, Some(&input[i + 1..])));
            }
            b'\\' => {
                let next = *input.get(i + 1).ok_or_else(|| {
                    invalid(format!("subject DN attribute {name}: the value ends with a lone backslash"))
                })?;
                if b",+\"\\<>;= #".contains(&next) {
                    out.push(next);
                    i += 2;
                } else if let Some(byte) = input.get(i + 1..i + 3).and_then(hex_pair) {
                    out.push(byte);
                    i += 3;
                } else {
                    return Err(invalid(format!(
                        "subject DN attribute {name}: bad escape \"\\{}\"; escape special characters \
                         as \\, \\+ \\\" \\\\ \\< \\> \\; \\= or as \\XX hex",
                        next as char
                    )));
                }
                significant = out.len();
            }
            b'+' => {
                return Err(invalid(format!(
                    "subject DN attribute {name}: multi-valued RDNs ('+') are not supported; \
                     write a literal plus as \\+"
                )));
            }
            b'"' | b';' => {
                return Err(invalid(format!(
                    "subject DN attribute {name}: unescaped '{}' in the value; write it as \\{}",
                    b as char, b as char
                )));
            }
            _ => {
                out.push(b);
                if b != b' ' {
                    significant = out.len();
                }
                i += 1;
            }
        }
    }
    out.truncate(significant);
    Ok((utf8_value(out, name)?, None))
}

fn hex_pair(pair: &[u8]) -> Option<u8> {
    let s = std::str::from_utf8(pair).ok()?;
    if s.len() == 2 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        u8::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

fn utf8_value(bytes: Vec<u8>, name: &str) -> Result<String, Error> {
    String::from_utf8(bytes).map_err(|_| {
        invalid(format!("subject DN attribute {name}: the \\XX escapes do not form valid UTF-8"))
    })
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(Code::PSM_ERR_INVALID_ARGUMENT, message)
}

fn internal(what: &str, e: ErrorStack) -> Error {
    Error::new(Code::PSM_ERR_INTERNAL, format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::sign::Verifier;

    fn names(dn: &str) -> Vec<(&'static str, String)> {
        parse_dn(dn).unwrap().into_iter().map(|a| (a.name, a.value)).collect()
    }

    fn code(r: Result<impl Sized, Error>) -> Code {
        match r {
            Ok(_) => Code::PSM_OK,
            Err(e) => e.code,
        }
    }

    #[test]
    fn dn_parses_in_written_order_with_aliases_and_spaces() {
        assert_eq!(
            names("CN=Alice Example, o=Example Org ,C=DE,emailAddress=alice@example.com"),
            vec![
                ("CN", "Alice Example".into()),
                ("O", "Example Org".into()),
                ("C", "DE".into()),
                ("emailAddress", "alice@example.com".into()),
            ]
        );
        assert_eq!(names("E=a@b.c"), vec![("E", "a@b.c".into())]);
    }

    #[test]
    fn dn_unescapes_rfc4514_escapes() {
        assert_eq!(
            names(r"CN=Smith\, John,O=A\+B\=C"),
            vec![("CN", "Smith, John".into()), ("O", "A+B=C".into())]
        );
        assert_eq!(names(r"CN=\ padded\ "), vec![("CN", " padded ".into())]);
        assert_eq!(names(r"CN=J\C3\BCrgen"), vec![("CN", "Jürgen".into())]);
        assert_eq!(names(r"CN=back\\slash"), vec![("CN", r"back\slash".into())]);
        assert_eq!(names("CN=Jürgen"), vec![("CN", "Jürgen".into())]);
    }

    #[test]
    fn dn_rejects_bad_input_with_invalid_argument() {
        for bad in [
            "",
            "   ",
            "CN=",
            "CN= ,O=x",
            "=x",
            "CN=a,,O=b",
            "CN=a,",
            "CN",
            "XX=a",
            "CN=a+OU=b",
            "CN=\"quoted\"",
            r"CN=bad\escape",
            r"CN=a\",
            r"CN=\FF",
            "C=Germany",
            "emailAddress=not an email",
            "CN=a\u{1}b",
            "CN=#0403",
            "CN=a;O=b",
        ] {
            let err = parse_dn(bad).expect_err(bad);
            assert_eq!(err.code, Code::PSM_ERR_INVALID_ARGUMENT, "{bad:?}");
            assert!(!err.message.is_empty());
        }
        let long = format!("CN={}", "a".repeat(MAX_DN_LEN));
        assert_eq!(code(parse_dn(&long)), Code::PSM_ERR_INVALID_ARGUMENT);
        // OpenSSL's upper bound for CN is 64 characters.
        let key = generate(KeyType::EcP256).unwrap();
        let err = make_csr(&key, &format!("CN={}", "a".repeat(65)), &[]).unwrap_err();
        assert_eq!(err.code, Code::PSM_ERR_INVALID_ARGUMENT);
    }

    #[test]
    fn unknown_attribute_error_names_it_and_the_supported_ones() {
        let err = parse_dn("CN=a,FOO=b").unwrap_err();
        assert!(err.message.contains("\"FOO\""), "{}", err.message);
        assert!(err.message.contains("emailAddress"), "{}", err.message);
    }

    #[test]
    fn every_key_type_generates_and_reports_its_type() {
        for &kt in KeyType::ALL {
            let key = generate(kt).unwrap();
            assert_eq!(key_type(&key).unwrap(), kt);
            let spki = public_key_der(&key).unwrap();
            assert!(PKey::public_key_from_der(&spki).is_ok());
        }
    }

    #[test]
    fn csr_has_the_key_subject_in_reverse_order_and_verifies() {
        let key = generate(KeyType::EcP256).unwrap();
        let der = make_csr(&key, "CN=Alice,O=Org,C=DE", &[San::Dns("a.example".into())]).unwrap();
        let req = X509Req::from_der(&der).unwrap();
        let pubkey = req.public_key().unwrap();
        assert!(req.verify(&pubkey).unwrap());
        assert_eq!(pubkey.public_key_to_der().unwrap(), public_key_der(&key).unwrap());
        let order: Vec<Nid> = req.subject_name().entries().map(|e| e.object().nid()).collect();
        assert_eq!(order, vec![Nid::COUNTRYNAME, Nid::ORGANIZATIONNAME, Nid::COMMONNAME]);
    }

    #[test]
    fn csr_rejects_bad_sans() {
        let key = generate(KeyType::Ed25519).unwrap();
        for san in [
            San::Dns("".into()),
            San::Dns("bad name.example".into()),
            San::Dns("a..example".into()),
            San::Dns("a.*.example".into()),
            San::Dns("bücher.example".into()),
            San::Email("no-at-sign".into()),
            San::Email("a,b@example.com".into()),
        ] {
            assert_eq!(
                code(make_csr(&key, "CN=x", std::slice::from_ref(&san))),
                Code::PSM_ERR_INVALID_ARGUMENT,
                "{san:?}"
            );
        }
        let many = vec![San::Dns("a.example".into()); MAX_CSR_SANS + 1];
        assert_eq!(code(make_csr(&key, "CN=x", &many)), Code::PSM_ERR_INVALID_ARGUMENT);
    }

    fn verify(key: &[u8], alg: SigAlg, data: &[u8], sig: &[u8]) -> bool {
        let pkey = PKey::public_key_from_der(&public_key_der(key).unwrap()).unwrap();
        let mut v = match alg {
            SigAlg::Ed25519 => Verifier::new_without_digest(&pkey).unwrap(),
            SigAlg::EcdsaSha384 => Verifier::new(MessageDigest::sha384(), &pkey).unwrap(),
            _ => Verifier::new(MessageDigest::sha256(), &pkey).unwrap(),
        };
        if alg == SigAlg::RsaPssSha256 {
            v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
            v.set_rsa_pss_saltlen(RsaPssSaltlen::custom(32)).unwrap();
            v.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
        }
        v.verify_oneshot(sig, data).unwrap_or(false)
    }

    #[test]
    fn signatures_verify_and_fail_on_other_data() {
        let cases = [
            (KeyType::EcP256, SigAlg::EcdsaSha256),
            (KeyType::EcP384, SigAlg::EcdsaSha384),
            (KeyType::EcP256, SigAlg::EcdsaSha384),
            (KeyType::Ed25519, SigAlg::Ed25519),
            (KeyType::Rsa2048, SigAlg::RsaPkcs1Sha256),
            (KeyType::Rsa2048, SigAlg::RsaPssSha256),
        ];
        for (kt, alg) in cases {
            let key = generate(kt).unwrap();
            let sig = sign(&key, alg, b"hello").unwrap();
            assert!(verify(&key, alg, b"hello", &sig), "{kt:?} {alg:?}");
            assert!(!verify(&key, alg, b"hellO", &sig), "{kt:?} {alg:?}");
        }
    }

    #[test]
    fn ecdsa_signature_is_der() {
        let key = generate(KeyType::EcP256).unwrap();
        let sig = sign(&key, SigAlg::EcdsaSha256, b"x").unwrap();
        assert!(openssl::ecdsa::EcdsaSig::from_der(&sig).is_ok());
        assert_eq!(sig[0], 0x30);
    }

    #[test]
    fn algorithm_that_does_not_fit_the_key_is_invalid_argument() {
        let ed = generate(KeyType::Ed25519).unwrap();
        let err = sign(&ed, SigAlg::EcdsaSha256, b"x").unwrap_err();
        assert_eq!(err.code, Code::PSM_ERR_INVALID_ARGUMENT);
        assert!(err.message.contains("Ed25519"), "{}", err.message);
        let ec = generate(KeyType::EcP256).unwrap();
        for alg in [SigAlg::Ed25519, SigAlg::RsaPkcs1Sha256, SigAlg::RsaPssSha256] {
            assert_eq!(code(sign(&ec, alg, b"x")), Code::PSM_ERR_INVALID_ARGUMENT);
        }
        let rsa = generate(KeyType::Rsa2048).unwrap();
        assert_eq!(code(sign(&rsa, SigAlg::EcdsaSha256, b"x")), Code::PSM_ERR_INVALID_ARGUMENT);
    }

    #[test]
    fn garbage_key_is_decode_error_without_echo() {
        let err = sign(b"\x30\x03secret", SigAlg::Ed25519, b"x").unwrap_err();
        assert_eq!(err.code, Code::PSM_ERR_DECODE);
        assert!(!err.message.contains("secret"));
        assert_eq!(code(public_key_der(b"")), Code::PSM_ERR_DECODE);
    }
}
