//! PKCS#12 (.p12/.pfx) files: reading what browsers, Windows and OpenSSL
//! write, old and new, and writing files they all read.
//!
//! Old software (Firefox before 2020, Windows before Server 2019, `openssl
//! pkcs12 -legacy`) protects certificates with RC2-40 and keys with 3DES.
//! OpenSSL 3 implements RC2 only in its "legacy" provider, so [`parse`]
//! loads that provider once and keeps it for the life of the process.

use std::fmt;
use std::sync::OnceLock;

use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::provider::Provider;
use openssl::stack::Stack;
use openssl::x509::{X509, X509Ref};
use psm::{Code, Error};
use x509_parser::der_parser::ber::{BerObject, BerObjectContent, parse_ber};
use zeroize::Zeroizing;

use super::keys;

/// PBKDF2 iterations for the files we write. A reader runs the KDF three
/// times (MAC, key bag, certificate bag), in every program that opens the
/// file, so the count is a cost paid on each import everywhere. 10,000
/// keeps that to a few milliseconds and is five times OpenSSL 3's default
/// of 2,048. NSS 3.87 writes 600,000, OWASP's figure for PBKDF2-SHA256:
/// about 0.27 s to read on an AMD EPYC core, and 60 times the work for
/// someone guessing the password of a stolen file. Raising the count is
/// this one constant (and MAC_ITERATIONS).
pub const PBE_ITERATIONS: u32 = 10_000;
/// Iterations of the SHA-256 MAC key derivation (the PKCS#12 KDF).
pub const MAC_ITERATIONS: u32 = 10_000;
/// Largest iteration count we accept in a file we read. OpenSSL has no
/// limit; a hostile file with 2^31 iterations would hold a worker thread
/// for hours. Real files use 1 to 600,000 (NSS today).
pub const MAX_READ_ITERATIONS: u64 = 2_000_000;
/// How deep the iteration scan follows DER nested in OCTET STRINGs
/// (PFX → AuthenticatedSafe → SafeContents → bag is four levels).
const MAX_SCAN_DEPTH: usize = 8;

/// What a PKCS#12 file held.
pub struct Parsed {
    /// The private key as unencrypted PKCS#8 DER, if the file had one.
    pub key_pkcs8: Option<Zeroizing<Vec<u8>>>,
    /// The certificate matching the key (DER).
    pub cert: Option<Vec<u8>>,
    /// All other certificates (DER), usually the issuer chain. A file with
    /// no key has every certificate here.
    pub ca: Vec<Vec<u8>>,
    /// The friendlyName of the key's certificate, the nickname NSS and
    /// Windows gave it.
    pub friendly_name: Option<String>,
}

impl fmt::Debug for Parsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parsed")
            .field("key_pkcs8", &self.key_pkcs8.as_ref().map(|_| "<redacted>"))
            .field("cert", &self.cert.as_ref().map(|c| format!("{} bytes", c.len())))
            .field("ca", &self.ca.len())
            .field("friendly_name", &self.friendly_name)
            .finish()
    }
}

/// The legacy provider, or why it could not be loaded. Never unloaded: a
/// provider that went away under a running parse would crash it.
static LEGACY_PROVIDER: OnceLock<Result<Provider, String>> = OnceLock::new();

/// Loads OpenSSL's legacy provider (RC2, RC4, DES...) into the default
/// library context, keeping the default provider available too.
fn legacy_provider() -> Result<(), &'static str> {
    LEGACY_PROVIDER
        .get_or_init(|| Provider::try_load(None, "legacy", true).map_err(|e| e.to_string()))
        .as_ref()
        .map(|_| ())
        .map_err(String::as_str)
}

/// Whether files using RC2 can be read in this process (for diagnostics).
pub fn legacy_supported() -> bool {
    legacy_provider().is_ok()
}

/// Reads a DER PKCS#12 file.
///
/// Errors: a wrong password is PSM_ERR_BAD_PASSWORD. So is a file whose MAC
/// fails for any other reason: the MAC is the only integrity check, and
/// OpenSSL cannot tell a wrong password from altered content. Input that is
/// not PKCS#12 is PSM_ERR_DECODE; an algorithm OpenSSL lacks (RC2 without
/// the legacy provider, for one) is PSM_ERR_UNSUPPORTED.
pub fn parse(p12_der: &[u8], password: &str) -> Result<Parsed, Error> {
    check_password(password)?;
    // A failed load is reported only if the file turns out to need it.
    let legacy = legacy_provider();
    let p12 = Pkcs12::from_der(p12_der)
        .map_err(|_| Error::new(Code::PSM_ERR_DECODE, "the data is not a PKCS#12 (.p12/.pfx) file"))?;
    check_iterations(p12_der)?;
    let parsed = p12.parse2(password).map_err(|e| classify(&e, legacy))?;

    let key_pkcs8 = parsed.pkey.as_ref().map(keys::pkcs8_of).transpose()?;
    let friendly_name =
        parsed.cert.as_ref().and_then(|c| c.alias()).map(|a| String::from_utf8_lossy(a).into_owned());
    let cert = parsed.cert.as_deref().map(to_der).transpose()?;
    let mut ca = Vec::new();
    for c in parsed.ca.iter().flatten() {
        ca.push(to_der(c)?);
    }
    Ok(Parsed { key_pkcs8, cert, ca, friendly_name })
}

fn to_der(cert: &X509Ref) -> Result<Vec<u8>, Error> {
    cert.to_der().map_err(|e| Error::new(Code::PSM_ERR_INTERNAL, format!("encoding a certificate: {e}")))
}

/// Maps OpenSSL's error stack from PKCS12_parse to our codes. The stack
/// names functions and reasons, never the password.
fn classify(e: &ErrorStack, legacy: Result<(), &str>) -> Error {
    // Library and reason codes from OpenSSL's pkcs12err.h and evperr.h.
    const LIB_PKCS12: i32 = 35;
    const LIB_EVP: i32 = 6;
    const PKCS12_R_MAC_VERIFY_FAILURE: i32 = 113;
    const PKCS12_R_MAC_GENERATION_ERROR: i32 = 109;
    const PKCS12_R_PKCS12_CIPHERFINAL_ERROR: i32 = 116;
    const EVP_R_UNSUPPORTED_ALGORITHM: i32 = 156;
    const EVP_R_UNKNOWN_CIPHER: i32 = 160;
    const EVP_R_UNSUPPORTED_CIPHER: i32 = 107;
    const EVP_R_UNKNOWN_DIGEST: i32 = 161;
    const EVP_R_UNSUPPORTED_KEYLENGTH: i32 = 123;
    const EVP_R_UNSUPPORTED_PRF: i32 = 125;
    // ERR_R_UNSUPPORTED: 268 with ERR_RFLAG_COMMON, shared by all libraries.
    const ERR_R_UNSUPPORTED: i32 = 268 | (2 << 18);

    let has = |lib: i32, reason: i32| {
        e.errors().iter().any(|x| x.library_code() == lib && x.reason_code() == reason)
    };
    let unsupported = e.errors().iter().any(|x| {
        x.reason_code() == ERR_R_UNSUPPORTED
            || (x.library_code() == LIB_EVP
                && [
                    EVP_R_UNSUPPORTED_ALGORITHM,
                    EVP_R_UNKNOWN_CIPHER,
                    EVP_R_UNSUPPORTED_CIPHER,
                    EVP_R_UNKNOWN_DIGEST,
                    EVP_R_UNSUPPORTED_KEYLENGTH,
                    EVP_R_UNSUPPORTED_PRF,
                ]
                .contains(&x.reason_code()))
    });

    if unsupported {
        return match legacy {
            Err(why) => Error::new(
                Code::PSM_ERR_UNSUPPORTED,
                format!(
                    "the PKCS#12 file uses an algorithm OpenSSL does not provide without its legacy \
                     provider (RC2, as old Firefox, Windows and `openssl pkcs12 -legacy` wrote), and \
                     the legacy provider could not be loaded ({why}); install OpenSSL's legacy module \
                     (ossl-modules/legacy.so) or re-export the file with AES"
                ),
            ),
            Ok(()) => Error::new(
                Code::PSM_ERR_UNSUPPORTED,
                format!("the PKCS#12 file uses an unsupported algorithm: {e}"),
            ),
        };
    }
    if has(LIB_PKCS12, PKCS12_R_MAC_VERIFY_FAILURE) && !has(LIB_PKCS12, PKCS12_R_MAC_GENERATION_ERROR) {
        return Error::new(Code::PSM_ERR_BAD_PASSWORD, "the password for the PKCS#12 file is wrong");
    }
    if has(LIB_PKCS12, PKCS12_R_PKCS12_CIPHERFINAL_ERROR) {
        // Bad padding after decryption: files without a MAC show a wrong
        // password only here.
        return Error::new(
            Code::PSM_ERR_BAD_PASSWORD,
            "the PKCS#12 file could not be decrypted with this password",
        );
    }
    Error::new(Code::PSM_ERR_DECODE, format!("the PKCS#12 file is damaged or malformed: {e}"))
}

/// Refuses files whose key derivations would run for minutes or hours.
///
/// Every iteration count in a PKCS#12 file (MacData, PBEParameter,
/// PBKDF2-params) is an INTEGER right after the salt OCTET STRING in a
/// SEQUENCE. The scan looks for that shape in the unencrypted structure,
/// following DER wrapped in OCTET STRINGs; what it cannot parse it leaves
/// to OpenSSL.
fn check_iterations(p12_der: &[u8]) -> Result<(), Error> {
    match max_iterations(p12_der, 0) {
        Some(n) if n > MAX_READ_ITERATIONS => Err(Error::new(
            Code::PSM_ERR_UNSUPPORTED,
            format!(
                "the PKCS#12 file asks for {n} key derivation iterations; more than \
                 {MAX_READ_ITERATIONS} are refused"
            ),
        )),
        _ => Ok(()),
    }
}

fn max_iterations(der: &[u8], depth: usize) -> Option<u64> {
    if depth > MAX_SCAN_DEPTH {
        return None;
    }
    let mut rest = der;
    let mut max = None;
    while !rest.is_empty() {
        let (tail, obj) = parse_ber(rest).ok()?;
        max = max.max(scan_object(&obj, depth));
        rest = tail;
    }
    max
}

fn scan_object(obj: &BerObject<'_>, depth: usize) -> Option<u64> {
    match &obj.content {
        BerObjectContent::Sequence(items) | BerObjectContent::Set(items) => {
            let mut max = None;
            for pair in items.windows(2) {
                if let (BerObjectContent::OctetString(_), BerObjectContent::Integer(n)) =
                    (&pair[0].content, &pair[1].content)
                {
                    max = max.max(Some(integer_value(n)));
                }
            }
            items.iter().map(|o| scan_object(o, depth)).fold(max, Option::max)
        }
        BerObjectContent::OctetString(inner) => max_iterations(inner, depth + 1),
        BerObjectContent::Tagged(_, _, inner) => scan_object(inner, depth),
        BerObjectContent::Unknown(any) if obj.header.is_constructed() => max_iterations(any.data, depth + 1),
        _ => None,
    }
}

/// An unsigned INTEGER's value, saturating at u64::MAX.
fn integer_value(bytes: &[u8]) -> u64 {
    let digits: Vec<u8> = bytes.iter().copied().skip_while(|&b| b == 0).collect();
    if digits.len() > 8 { u64::MAX } else { digits.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b)) }
}

/// Writes a PKCS#12 file with the key, its certificate and the chain.
///
/// Key and certificates are encrypted with AES-256-CBC under PBKDF2 with
/// HMAC-SHA256 ([`PBE_ITERATIONS`]), the MAC is HMAC-SHA256: OpenSSL 3's
/// defaults, which OpenSSL 1.1+ and NSS (Firefox, `pk12util`) read. Old
/// Windows and macOS keychains want 3DES files, which we do not write. The
/// friendly name goes on both the key and the certificate, with a
/// localKeyID tying them together.
pub fn build(
    key_pkcs8: &[u8],
    cert_der: &[u8],
    ca: &[Vec<u8>],
    friendly_name: Option<&str>,
    password: &str,
) -> Result<Vec<u8>, Error> {
    check_password(password)?;
    let pkey = keys::load_pkcs8(key_pkcs8)?;
    let cert = X509::from_der(cert_der)
        .map_err(|_| Error::new(Code::PSM_ERR_DECODE, "the certificate to export is not valid DER"))?;
    let matches = cert.public_key().map(|k| k.public_eq(&pkey)).unwrap_or(false);
    if !matches {
        return Err(Error::new(
            Code::PSM_ERR_INVALID_ARGUMENT,
            "the certificate does not belong to the private key",
        ));
    }
    let internal =
        |e: ErrorStack| Error::new(Code::PSM_ERR_INTERNAL, format!("building the PKCS#12 file: {e}"));

    let mut builder = Pkcs12::builder();
    builder
        .pkey(&pkey)
        .cert(&cert)
        .key_algorithm(Nid::AES_256_CBC)
        .cert_algorithm(Nid::AES_256_CBC)
        .key_iter(PBE_ITERATIONS)
        .mac_iter(MAC_ITERATIONS)
        .mac_md(MessageDigest::sha256());
    if !ca.is_empty() {
        let mut stack = Stack::new().map_err(internal)?;
        for (i, der) in ca.iter().enumerate() {
            let c = X509::from_der(der).map_err(|_| {
                Error::new(Code::PSM_ERR_DECODE, format!("chain certificate {} is not valid DER", i + 1))
            })?;
            stack.push(c).map_err(internal)?;
        }
        builder.ca(stack);
    }
    if let Some(name) = friendly_name {
        if name.contains('\0') {
            return Err(Error::new(
                Code::PSM_ERR_INVALID_ARGUMENT,
                "the friendly name contains a NUL character",
            ));
        }
        builder.name(name);
    }
    builder.build2(password).and_then(|p| p.to_der()).map_err(internal)
}

/// OpenSSL takes passwords as C strings: an embedded NUL would truncate
/// the password (and panics inside the openssl crate).
fn check_password(password: &str) -> Result<(), Error> {
    if password.contains('\0') {
        Err(Error::new(Code::PSM_ERR_INVALID_ARGUMENT, "the password contains a NUL character"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::keys::{KeyType, generate};
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::pkey::PKey;
    use openssl::x509::X509NameBuilder;

    /// A self-signed certificate for `key` (DER).
    fn self_signed(key: &[u8], cn: &str) -> Vec<u8> {
        let pkey = PKey::private_key_from_pkcs8(key).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap()).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&pkey).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
        let md = if pkey.id() == openssl::pkey::Id::ED25519 {
            MessageDigest::null()
        } else {
            MessageDigest::sha256()
        };
        b.sign(&pkey, md).unwrap();
        b.build().to_der().unwrap()
    }

    fn code(r: Result<impl Sized, Error>) -> Code {
        match r {
            Ok(_) => Code::PSM_OK,
            Err(e) => e.code,
        }
    }

    #[test]
    fn round_trip_keeps_key_cert_chain_and_name() {
        let key = generate(KeyType::EcP256).unwrap();
        let cert = self_signed(&key, "leaf");
        let ca_key = generate(KeyType::Ed25519).unwrap();
        let ca = vec![self_signed(&ca_key, "ca")];
        let p12 = build(&key, &cert, &ca, Some("Jürgen's key"), "s3cret").unwrap();
        let parsed = parse(&p12, "s3cret").unwrap();
        assert_eq!(parsed.key_pkcs8.as_deref().map(|k| k.as_slice()), Some(key.as_slice()));
        assert_eq!(parsed.cert.as_deref(), Some(cert.as_slice()));
        assert_eq!(parsed.ca, ca);
        assert_eq!(parsed.friendly_name.as_deref(), Some("Jürgen's key"));
    }

    #[test]
    fn empty_password_round_trips() {
        let key = generate(KeyType::Ed25519).unwrap();
        let cert = self_signed(&key, "empty");
        let p12 = build(&key, &cert, &[], None, "").unwrap();
        let parsed = parse(&p12, "").unwrap();
        assert_eq!(parsed.cert.as_deref(), Some(cert.as_slice()));
        assert_eq!(parsed.friendly_name, None);
        assert_eq!(code(parse(&p12, "x")), Code::PSM_ERR_BAD_PASSWORD);
    }

    #[test]
    fn wrong_password_is_bad_password() {
        let key = generate(KeyType::EcP256).unwrap();
        let p12 = build(&key, &self_signed(&key, "a"), &[], None, "right").unwrap();
        let err = parse(&p12, "wrong").unwrap_err();
        assert_eq!(err.code, Code::PSM_ERR_BAD_PASSWORD);
        assert!(!err.message.contains("wrong\""));
    }

    #[test]
    fn garbage_and_truncation_are_decode_errors() {
        let key = generate(KeyType::EcP256).unwrap();
        let p12 = build(&key, &self_signed(&key, "a"), &[], None, "pw").unwrap();
        assert_eq!(code(parse(&p12[..p12.len() / 2], "pw")), Code::PSM_ERR_DECODE);
        assert_eq!(code(parse(b"", "pw")), Code::PSM_ERR_DECODE);
        assert_eq!(code(parse(b"hello, not a p12 file", "pw")), Code::PSM_ERR_DECODE);
        assert_eq!(code(parse(&self_signed(&key, "a"), "pw")), Code::PSM_ERR_DECODE);
    }

    #[test]
    fn nul_in_password_or_name_is_invalid_argument() {
        let key = generate(KeyType::EcP256).unwrap();
        let cert = self_signed(&key, "a");
        assert_eq!(code(build(&key, &cert, &[], None, "a\0b")), Code::PSM_ERR_INVALID_ARGUMENT);
        assert_eq!(code(build(&key, &cert, &[], Some("a\0b"), "pw")), Code::PSM_ERR_INVALID_ARGUMENT);
        assert_eq!(code(parse(b"x", "a\0b")), Code::PSM_ERR_INVALID_ARGUMENT);
    }

    #[test]
    fn certificate_of_another_key_is_refused() {
        let key = generate(KeyType::EcP256).unwrap();
        let other = generate(KeyType::EcP256).unwrap();
        let err = build(&key, &self_signed(&other, "b"), &[], None, "pw").unwrap_err();
        assert_eq!(err.code, Code::PSM_ERR_INVALID_ARGUMENT);
    }

    #[test]
    fn debug_output_redacts_the_key() {
        let key = generate(KeyType::Ed25519).unwrap();
        let p12 = build(&key, &self_signed(&key, "a"), &[], Some("n"), "pw").unwrap();
        let shown = format!("{:?}", parse(&p12, "pw").unwrap());
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains(&format!("{:?}", key.as_slice())));
    }

    #[test]
    fn our_files_use_the_iterations_we_promise() {
        let key = generate(KeyType::EcP256).unwrap();
        let p12 = build(&key, &self_signed(&key, "a"), &[], None, "pw").unwrap();
        assert_eq!(max_iterations(&p12, 0), Some(u64::from(PBE_ITERATIONS.max(MAC_ITERATIONS))));
    }

    #[test]
    fn huge_iteration_count_is_refused_before_deriving() {
        let key = generate(KeyType::EcP256).unwrap();
        let pkey = PKey::private_key_from_pkcs8(&key).unwrap();
        let cert = X509::from_der(&self_signed(&key, "a")).unwrap();
        let mut b = Pkcs12::builder();
        b.pkey(&pkey).cert(&cert).key_iter(1).mac_iter(MAX_READ_ITERATIONS as u32 + 1);
        let p12 = b.build2("pw").unwrap().to_der().unwrap();
        let err = parse(&p12, "pw").unwrap_err();
        assert_eq!(err.code, Code::PSM_ERR_UNSUPPORTED, "{err}");
        assert!(
            err.message.contains(&format!("{} key derivation iterations", MAX_READ_ITERATIONS + 1)),
            "{err}"
        );
        assert_eq!(integer_value(&[0x00, 0x7f, 0, 0, 0]), 0x7f00_0000);
        assert_eq!(integer_value(&[1; 9]), u64::MAX);
    }
}
