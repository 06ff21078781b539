//! S/MIME 4.0 (RFC 8551) and CMS (RFC 5652, AuthEnvelopedData RFC 5083)
//! over OpenSSL: signing, signature checking, encryption, decryption and
//! certs-only messages. Free of daemon state: the op handlers find keys and
//! certificates and judge the signer's chain with psm's own verifier;
//! OpenSSL checks only the signature over the content.
//!
//! Input and output go through BIOs, so signing and encrypting stream: a
//! message of any size passes through in bounded memory. Reading a message
//! (verify, decrypt) parses the whole structure, as OpenSSL must.

pub mod detach;
pub mod ffi;

use ffi::{Bio, Cms};
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKeyRef, Private};
use openssl::stack::Stack;
use openssl::x509::{X509, X509Ref};
use psm::proto::{
    SMIME_BINARY, SMIME_CBC, SMIME_DER, SMIME_DETACHED, SMIME_NO_CERTS, SMIME_PEM, SMIME_RSA_OAEP,
    SMIME_RSA_PSS, SMIME_SHA384, SMIME_SHA512,
};
use psm::{Code, Error};
use std::ffi::c_uint;

/// Signers checked in one message; a message with more is refused (each
/// costs a signature check, and real mail has one or two).
pub const MAX_SIGNERS: usize = 16;
/// RecipientInfos looked at in one message (a mailing list's worth).
pub const MAX_RECIPIENT_INFOS: usize = 4096;
/// Recipients one message is encrypted to.
pub const MAX_RECIPIENTS: usize = 1024;

const CMS_DETACHED: c_uint = openssl_sys::CMS_DETACHED;
const CMS_BINARY: c_uint = openssl_sys::CMS_BINARY;
const CMS_NOCERTS: c_uint = openssl_sys::CMS_NOCERTS;
const CMS_STREAM: c_uint = openssl_sys::CMS_STREAM;
const CMS_PARTIAL: c_uint = openssl_sys::CMS_PARTIAL;
const CMS_KEY_PARAM: c_uint = openssl_sys::CMS_KEY_PARAM;
const CMS_CRLFEOL: c_uint = openssl_sys::CMS_CRLFEOL;
const CMS_NO_SIGNER_CERT_VERIFY: c_uint = openssl_sys::CMS_NO_SIGNER_CERT_VERIFY;
const CMS_NOSIGS: c_uint = openssl_sys::CMS_NOSIGS;

// OpenSSL's CMS reason codes (cmserr.h) that say what was wrong.
const ERR_LIB_CMS: i32 = 46;
const CMS_R_CONTENT_VERIFY_ERROR: i32 = 109;
const CMS_R_DECRYPT_ERROR: i32 = 112;
const CMS_R_NO_CONTENT: i32 = 127;
const CMS_R_SIGNER_CERTIFICATE_NOT_FOUND: i32 = 138;
const CMS_R_UNKNOWN_CIPHER: i32 = 148;
const CMS_R_UNKNOWN_DIGEST_ALGORITHM: i32 = 149;
const CMS_R_UNSUPPORTED_CONTENT_TYPE: i32 = 152;
const CMS_R_VERIFICATION_FAILURE: i32 = 158;
const CMS_R_CIPHER_AEAD_SET_TAG_ERROR: i32 = 184;

/// How a message is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An S/MIME MIME entity, ready to be a message body (CRLF lines).
    Smime,
    Der,
    Pem,
}

impl Format {
    pub fn from_flags(flags: u32) -> Result<Format, Error> {
        match (flags & SMIME_DER != 0, flags & SMIME_PEM != 0) {
            (false, false) => Ok(Format::Smime),
            (true, false) => Ok(Format::Der),
            (false, true) => Ok(Format::Pem),
            (true, true) => Err(invalid("PSM_SMIME_DER and PSM_SMIME_PEM exclude each other")),
        }
    }
}

fn invalid(m: impl Into<String>) -> Error {
    Error::new(Code::PSM_ERR_INVALID_ARGUMENT, m)
}

/// OpenSSL's errors in one line, for details (they never hold key bytes).
fn openssl_words(e: &openssl::error::ErrorStack) -> String {
    let words: Vec<String> =
        e.errors().iter().map(|e| e.reason().map_or_else(|| e.code().to_string(), str::to_string)).collect();
    if words.is_empty() { "no reason given".into() } else { words.join("; ") }
}

fn has_reason(e: &openssl::error::ErrorStack, reason: i32) -> bool {
    e.errors().iter().any(|e| e.library_code() == ERR_LIB_CMS && e.reason_code() == reason)
}

fn internal(what: &str, e: openssl::error::ErrorStack) -> Error {
    Error::new(Code::PSM_ERR_INTERNAL, format!("{what}: {}", openssl_words(&e)))
}

fn write(
    cms: &Cms,
    format: Format,
    out: &Bio<'_>,
    data: Option<&Bio<'_>>,
    flags: c_uint,
) -> Result<(), openssl::error::ErrorStack> {
    match format {
        Format::Smime => cms.write(ffi::WriteForm::Smime, out, data, flags | CMS_CRLFEOL),
        Format::Der => cms.write(ffi::WriteForm::Der, out, data, flags),
        Format::Pem => cms.write(ffi::WriteForm::Pem, out, data, flags),
    }
}

/// What signs: a certificate, its key, and the CA certificates to include.
pub struct Signer<'a> {
    pub cert: &'a X509Ref,
    pub key: &'a PKeyRef<Private>,
    pub chain: &'a [X509],
}

/// The digest `flags` ask for (SHA-256 by default; Ed25519 signs SHA-512
/// digests, RFC 8419).
fn digest_for(flags: u32, key: &PKeyRef<Private>) -> Result<MessageDigest, Error> {
    if key.id() == Id::ED25519 {
        return Ok(MessageDigest::sha512());
    }
    match (flags & SMIME_SHA384 != 0, flags & SMIME_SHA512 != 0) {
        (false, false) => Ok(MessageDigest::sha256()),
        (true, false) => Ok(MessageDigest::sha384()),
        (false, true) => Ok(MessageDigest::sha512()),
        (true, true) => Err(invalid("PSM_SMIME_SHA384 and PSM_SMIME_SHA512 exclude each other")),
    }
}

fn content_flags(flags: u32) -> c_uint {
    if flags & SMIME_BINARY != 0 { CMS_BINARY } else { 0 }
}

/// Signs what `input` holds into `output`: opaque SignedData, or with
/// `SMIME_DETACHED` a multipart/signed entity (or a bare detached
/// signature for DER/PEM). Signing time and SMIMECapabilities are signed
/// attributes; unless `SMIME_BINARY`, lines are made CRLF first (RFC 8551
/// 3.1.1), so what is signed is what a reader will check.
///
/// `whole` is the content when it is held in memory (`input` reads the
/// same bytes; an empty one for an input known to be empty, which OpenSSL
/// cannot stream): the structure is then finished first and written
/// after, which for a short message costs less than OpenSSL's streaming
/// BIO chain. None: stream.
pub fn sign(
    signer: &Signer<'_>,
    flags: u32,
    input: &Bio<'_>,
    whole: Option<&[u8]>,
    output: &Bio<'_>,
) -> Result<(), Error> {
    let format = Format::from_flags(flags)?;
    let md = digest_for(flags, signer.key)?;
    let pss = flags & SMIME_RSA_PSS != 0;
    if pss && signer.key.id() != Id::RSA {
        return Err(invalid("PSM_SMIME_RSA_PSS needs an RSA key"));
    }
    let detached = flags & SMIME_DETACHED != 0;
    if detached && flags & SMIME_BINARY != 0 && format == Format::Smime {
        // The signed part of a multipart/signed entity is MIME text, which
        // mail transport may re-encode; RFC 8551 3.1 wants it canonical.
        return Err(invalid(
            "binary content cannot be the signed part of a multipart/signed entity: sign it opaque, \
             or as a detached DER or PEM signature",
        ));
    }
    // Streaming writes the content as it signs. Two cases finish the
    // structure first instead: a detached DER/PEM signature (OpenSSL's
    // stream encoder would embed the content; finishing digests it into a
    // null sink, still in bounded memory), and an opaque RSASSA-PSS one
    // (OpenSSL 3.0 cannot stream it: its own `cms -sign -stream -nodetach`
    // fails the same way), which holds the content in memory.
    let opaque_pss = pss && !detached;
    let bare_detached = detached && format != Format::Smime;
    // A multipart/signed entity is always streamed: OpenSSL finishes it
    // while writing the content as its first part (written after being
    // finished, it would be signed twice), and it streams an empty one.
    let multipart = detached && format == Format::Smime;
    let stream = multipart || (!opaque_pss && !bare_detached && whole.is_none());
    let mut f = CMS_PARTIAL | content_flags(flags);
    if stream {
        f |= CMS_STREAM;
    }
    if detached {
        f |= CMS_DETACHED;
    }
    if flags & SMIME_NO_CERTS != 0 {
        f |= CMS_NOCERTS;
    }
    let mut chain = Stack::new().map_err(|e| internal("stack", e))?;
    if flags & SMIME_NO_CERTS == 0 {
        for c in signer.chain {
            chain.push(c.clone()).map_err(|e| internal("stack", e))?;
        }
    }
    let mut cms = Cms::sign_partial(Some(&chain), f).map_err(|e| internal("starting the signature", e))?;
    let key_flags = if pss { f | CMS_KEY_PARAM } else { f };
    let ctx = cms.add_signer(signer.cert, signer.key, md, key_flags).map_err(|e| {
        Error::new(
            Code::PSM_ERR_UNSUPPORTED,
            format!("this certificate and key cannot sign S/MIME: {}", openssl_words(&e)),
        )
    })?;
    if pss {
        // SAFETY: the context of the signer just added to `cms`, alive.
        unsafe { ffi::set_rsa_padding(ctx, ffi::RSA_PKCS1_PSS_PADDING, None) }
            .map_err(|e| internal("RSASSA-PSS", e))?;
    }
    if !stream {
        return finish_then_write(&mut cms, format, input, output, f).map_err(|e| write_error("signing", e));
    }
    write(&cms, format, output, Some(input), f).map_err(|e| write_error("signing", e))
}

/// Finishes a structure over all of `input`, then writes it.
fn finish_then_write(
    cms: &mut Cms,
    format: Format,
    input: &Bio<'_>,
    output: &Bio<'_>,
    flags: c_uint,
) -> Result<(), openssl::error::ErrorStack> {
    let flags = flags & !(CMS_PARTIAL | CMS_STREAM);
    cms.finalize(input, flags)?;
    // (Never a multipart/signed entity: `sign` streams those.)
    write(cms, format, output, None, flags)
}

/// A failed streaming write: the input or output broke, or OpenSSL did.
fn write_error(what: &str, e: openssl::error::ErrorStack) -> Error {
    if e.errors().is_empty() {
        Error::new(Code::PSM_ERR_IO, format!("{what}: the data channel broke"))
    } else {
        internal(what, e)
    }
}

/// Encrypts what `input` holds to `recipients`: AES-256-GCM
/// AuthEnvelopedData by default, AES-256-CBC EnvelopedData with
/// `SMIME_CBC`. RSA recipients get key transport (v1.5, or OAEP with
/// SHA-256 under `SMIME_RSA_OAEP`), EC recipients ECDH key agreement.
/// `whole` as for [`sign`].
pub fn encrypt(
    recipients: &[X509],
    flags: u32,
    input: &Bio<'_>,
    whole: Option<&[u8]>,
    output: &Bio<'_>,
) -> Result<(), Error> {
    let format = Format::from_flags(flags)?;
    if recipients.is_empty() {
        return Err(invalid("no recipients"));
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(invalid(format!(
            "{} recipients; psm encrypts to at most {MAX_RECIPIENTS}",
            recipients.len()
        )));
    }
    let cipher = if flags & SMIME_CBC != 0 {
        openssl::symm::Cipher::aes_256_cbc()
    } else {
        openssl::symm::Cipher::aes_256_gcm()
    };
    let mut f = CMS_PARTIAL | content_flags(flags);
    if whole.is_none() {
        f |= CMS_STREAM;
    }
    let mut cms = Cms::encrypt_partial(cipher, f).map_err(|e| internal("starting the encryption", e))?;
    for r in recipients {
        let id = r.public_key().map(|k| k.id()).ok();
        let oaep = id == Some(Id::RSA) && flags & SMIME_RSA_OAEP != 0;
        let ecdh = id == Some(Id::EC);
        let rf = if oaep || ecdh { f | CMS_KEY_PARAM } else { f };
        let ctx = cms.add_recipient(r, rf).map_err(|e| {
            Error::new(
                Code::PSM_ERR_UNSUPPORTED,
                format!("cannot encrypt to {}: {}", subject(r), openssl_words(&e)),
            )
        })?;
        if ecdh {
            // dhSinglePass-stdDH-sha256kdf-scheme rather than OpenSSL's
            // default SHA-1 KDF (RFC 5753; RFC 8551 recommends SHA-256).
            // SAFETY: the context of the recipient just added to `cms`, alive.
            unsafe { ffi::set_ecdh_kdf(ctx, MessageDigest::sha256()) }
                .map_err(|e| internal("ECDH KDF", e))?;
        }
        if oaep {
            // SAFETY: the context of the recipient just added to `cms`, alive.
            unsafe { ffi::set_rsa_padding(ctx, ffi::RSA_PKCS1_OAEP_PADDING, Some(MessageDigest::sha256())) }
                .map_err(|e| internal("RSAES-OAEP", e))?;
        }
    }
    if whole.is_some() {
        return finish_then_write(&mut cms, format, input, output, f)
            .map_err(|e| write_error("encrypting", e));
    }
    write(&cms, format, output, Some(input), f).map_err(|e| write_error("encrypting", e))
}

/// A certs-only message (RFC 8551 3.6) carrying `certs`.
pub fn certs_only(certs: &[X509], flags: u32) -> Result<Vec<u8>, Error> {
    let format = Format::from_flags(flags)?;
    let mut st = Stack::new().map_err(|e| internal("stack", e))?;
    for c in certs {
        st.push(c.clone()).map_err(|e| internal("stack", e))?;
    }
    let cms =
        Cms::sign_partial(Some(&st), CMS_PARTIAL | CMS_DETACHED).map_err(|e| internal("certs-only", e))?;
    let out = Bio::mem().map_err(|e| internal("bio", e))?;
    write(&cms, format, &out, None, CMS_DETACHED).map_err(|e| internal("certs-only", e))?;
    Ok(out.mem_contents())
}

pub fn subject(c: &X509Ref) -> String {
    c.subject_name()
        .entries()
        .map(|e| {
            let k = e.object().nid().short_name().unwrap_or("?");
            let v = e.data().to_string().unwrap_or_default();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What kind of CMS content a message is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Signed,
    Enveloped,
    AuthEnveloped,
    Other(String),
}

/// A parsed message.
pub struct Message {
    pub cms: Cms,
    /// The signed content of a multipart/signed entity.
    pub detached: Option<Vec<u8>>,
}

/// Largest detached part read out of a multipart/signed entity.
const MAX_DETACHED_PART: usize = 1 << 30;

impl Message {
    /// Reads an S/MIME entity, DER or PEM (told apart by their first bytes).
    pub fn parse(data: &[u8]) -> Result<Message, Error> {
        let start = data.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(data.len());
        let body = &data[start..];
        if body.is_empty() {
            return Err(Error::new(Code::PSM_ERR_DECODE, "the message is empty"));
        }
        let bio = Bio::slice(data).map_err(|e| internal("bio", e))?;
        let decode = |what: &str, e: openssl::error::ErrorStack| {
            Error::new(
                Code::PSM_ERR_DECODE,
                format!("not a readable {what} CMS message: {}", openssl_words(&e)),
            )
        };
        if body[0] == 0x30 {
            let cms = Cms::read_der(&Bio::slice(body).map_err(|e| internal("bio", e))?)
                .map_err(|e| decode("DER", e))?;
            return Ok(Message { cms, detached: None });
        }
        if body.starts_with(b"-----BEGIN") {
            let cms = Cms::read_pem(&bio).map_err(|e| decode("PEM", e))?;
            return Ok(Message { cms, detached: None });
        }
        let (cms, bcont) = Cms::read_smime(&bio).map_err(|e| decode("S/MIME", e))?;
        let detached = match bcont {
            Some(b) => Some(b.read_all(MAX_DETACHED_PART).ok_or_else(|| {
                Error::new(Code::PSM_ERR_DECODE, "the signed part is larger than psm reads in one message")
            })?),
            None => None,
        };
        Ok(Message { cms, detached })
    }

    pub fn kind(&self) -> Kind {
        match self.cms.type_nid() {
            ffi::NID_PKCS7_SIGNED => Kind::Signed,
            ffi::NID_PKCS7_ENVELOPED => Kind::Enveloped,
            ffi::NID_AUTH_ENVELOPED => Kind::AuthEnveloped,
            ffi::NID_PKCS7_DATA => Kind::Other("data (neither signed nor encrypted)".into()),
            _ => Kind::Other(self.cms.type_text()),
        }
    }

    pub fn certs(&self) -> Vec<X509> {
        self.cms.certs()
    }
}

/// What checking the signature (not the signer's chain) found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SigOutcome {
    Good,
    /// The signature over the signed attributes does not verify.
    BadSignature,
    /// The content's digest does not match the signed one.
    ContentAltered,
    /// The signer's certificate is neither in the message nor given.
    SignerUnknown,
    /// An algorithm or structure psm does not handle.
    Unsupported,
}

pub struct SigCheck {
    pub outcome: SigOutcome,
    pub detail: String,
    pub signer: Option<X509>,
    /// Certificates the message carries.
    pub certs: Vec<X509>,
    pub signing_time: Option<i64>,
    pub digest: String,
}

fn unix_time(t: &openssl::asn1::Asn1TimeRef) -> Option<i64> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(t).ok()?;
    Some(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

/// Checks the signature of a SignedData `msg` over its content (or
/// `content`, for a detached signature given apart), writing the content
/// to `out`. `extra` are certificates to look for the signer among, besides
/// the message's own. The signer's chain is the caller's business.
pub fn check_signature(
    msg: &mut Message,
    content: Option<&[u8]>,
    content_bio: Option<&Bio<'_>>,
    out: Option<&Bio<'_>>,
    extra: &[X509],
    flags: u32,
) -> Result<SigCheck, Error> {
    let n = msg.cms.signer_count();
    let certs = msg.certs();
    let mut check = SigCheck {
        outcome: SigOutcome::Good,
        detail: String::new(),
        signer: None,
        certs,
        signing_time: msg.cms.signing_time(0).and_then(unix_time),
        digest: msg.cms.signer_digest(0),
    };
    check.signer = check.certs.iter().chain(extra).find(|c| msg.cms.signer_matches(0, c)).cloned();
    if n == 0 {
        return Err(Error::new(
            Code::PSM_ERR_SMIME_NOT_SIGNED,
            "the message has no signature (a certs-only message?)",
        ));
    }
    if n > MAX_SIGNERS {
        check.outcome = SigOutcome::Unsupported;
        check.detail = format!("the message has {n} signatures; psm checks at most {MAX_SIGNERS}");
        return Ok(check);
    }
    if (content.is_some() || content_bio.is_some()) && !msg.cms.is_detached() {
        // Checking other content than the one signed would let a message
        // carry what it likes next to somebody's old signed message.
        return Err(invalid(
            "content was given apart, but the message carries its own: it is not a detached signature",
        ));
    }
    let (econtent, econtent_name) = msg.cms.econtent_type();
    if econtent != ffi::NID_PKCS7_DATA {
        check.outcome = SigOutcome::Unsupported;
        check.detail = format!("the signed content is {econtent_name}, not a message");
        return Ok(check);
    }
    let mut st = Stack::new().map_err(|e| internal("stack", e))?;
    for c in extra {
        st.push(c.clone()).map_err(|e| internal("stack", e))?;
    }
    let f = CMS_NO_SIGNER_CERT_VERIFY | content_flags(flags);
    let given = content.or(msg.detached.as_deref());
    let given_bio = match given {
        Some(c) => Some(Bio::slice(c).map_err(|e| internal("bio", e))?),
        None => None,
    };
    let dcont = content_bio.or(given_bio.as_ref());
    let Err(e) = msg.cms.verify(Some(&st), dcont, out, f) else {
        check.detail = format!(
            "the signature by {} is intact",
            check.signer.as_deref().map_or_else(|| "the signer".into(), subject)
        );
        return Ok(check);
    };
    if has_reason(&e, CMS_R_NO_CONTENT) {
        return Err(invalid("this is a detached signature: give the content it signs"));
    }
    (check.outcome, check.detail) = if has_reason(&e, CMS_R_CONTENT_VERIFY_ERROR) {
        (
            SigOutcome::ContentAltered,
            "the content was changed after it was signed (its digest does not match the signed one)"
                .to_string(),
        )
    } else if has_reason(&e, CMS_R_VERIFICATION_FAILURE) {
        (SigOutcome::BadSignature, "the signature does not verify with the signer's public key".to_string())
    } else if has_reason(&e, CMS_R_SIGNER_CERTIFICATE_NOT_FOUND) {
        (
            SigOutcome::SignerUnknown,
            "the signer's certificate is neither in the message nor in psm".to_string(),
        )
    } else if has_reason(&e, CMS_R_UNKNOWN_DIGEST_ALGORITHM) || has_reason(&e, CMS_R_UNSUPPORTED_CONTENT_TYPE)
    {
        (
            SigOutcome::Unsupported,
            format!("the message uses an algorithm psm does not support: {}", openssl_words(&e)),
        )
    } else {
        (SigOutcome::BadSignature, format!("the signature could not be checked: {}", openssl_words(&e)))
    };
    // An opaque message whose signature failed still shows its content
    // (marked bad by the outcome), as mail readers do.
    if let Some(out) = out
        && dcont.is_none()
        && out.mem_contents().is_empty()
    {
        let _ = msg.cms.verify(Some(&st), None, Some(out), f | CMS_NOSIGS);
    }
    Ok(check)
}

/// Decrypts an (Auth)EnvelopedData `msg` for `cert` with `key` into `out`;
/// `dcont` is the encrypted content when it was detached.
pub fn decrypt(
    msg: &mut Message,
    key: &PKeyRef<Private>,
    cert: &X509Ref,
    dcont: Option<&Bio<'_>>,
    out: &Bio<'_>,
    flags: u32,
) -> Result<(), Error> {
    let aead = msg.kind() == Kind::AuthEnveloped;
    msg.cms.decrypt(key, cert, dcont, out, content_flags(flags)).map_err(|e| {
        // OpenSSL reports a GCM tag mismatch by the final read failing,
        // with nothing on its error queue.
        let tag = aead && e.errors().is_empty();
        if tag
            || has_reason(&e, CMS_R_CIPHER_AEAD_SET_TAG_ERROR)
            || has_reason(&e, CMS_R_CONTENT_VERIFY_ERROR)
        {
            Error::new(
                Code::PSM_ERR_SMIME_CONTENT_ALTERED,
                "the encrypted content was altered (its authentication tag does not match)",
            )
        } else if has_reason(&e, CMS_R_UNKNOWN_CIPHER) {
            Error::new(
                Code::PSM_ERR_UNSUPPORTED,
                format!("the message uses a cipher psm does not support: {}", openssl_words(&e)),
            )
        } else if has_reason(&e, CMS_R_DECRYPT_ERROR) {
            Error::new(
                Code::PSM_ERR_DECODE,
                "the message could not be decrypted: it is damaged, or not really for this key",
            )
        } else {
            Error::new(
                Code::PSM_ERR_DECODE,
                format!("the message could not be decrypted: {}", openssl_words(&e)),
            )
        }
    })
}

/// The Content-Type of a MIME entity that is not S/MIME at all (say
/// text/plain, or multipart/mixed), to say so rather than "cannot decode".
pub fn not_smime_type(data: &[u8]) -> Option<String> {
    let start = data.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(data.len());
    let body = &data[start..];
    if body.first() == Some(&0x30) || body.starts_with(b"-----BEGIN") {
        return None;
    }
    let head_end = find(body, b"\r\n\r\n").or_else(|| find(body, b"\n\n"))?;
    let head = String::from_utf8_lossy(&body[..head_end.min(64 * 1024)]).to_ascii_lowercase();
    let at = head.find("content-type:")?;
    let value = head[at + "content-type:".len()..].trim_start();
    let t: String = value.chars().take_while(|c| !c.is_whitespace() && *c != ';').collect();
    let smime = ["application/pkcs7-mime", "application/x-pkcs7-mime", "multipart/signed"];
    (!t.is_empty() && !smime.contains(&t.as_str())).then_some(t)
}

/// What an S/MIME entity wraps, by its Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inner {
    Signed,
    Encrypted,
}

/// Whether `entity` is a MIME entity whose Content-Type is S/MIME
/// (multipart/signed, or application/pkcs7-mime), so that a decrypted
/// message can be unwrapped further in the same call. The entity must
/// start with a well-formed header block: a DER body that merely contains
/// the words does not count.
pub fn looks_smime(entity: &[u8]) -> bool {
    smime_entity(entity).is_some()
}

/// As [`looks_smime`], saying whether the entity is signed or encrypted
/// (its `smime-type`; signed when it does not say).
pub fn smime_entity(entity: &[u8]) -> Option<Inner> {
    const MAX_HEAD: usize = 64 * 1024;
    let mut content_type: Option<String> = None;
    let mut current: Option<(String, String)> = None;
    let mut rest = &entity[..entity.len().min(MAX_HEAD)];
    loop {
        let nl = rest.iter().position(|&b| b == b'\n')?;
        let line = &rest[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        rest = &rest[nl + 1..];
        if line.is_empty() {
            break;
        }
        if !line.iter().all(|b| b.is_ascii() && (!b.is_ascii_control() || *b == b'\t')) {
            return None;
        }
        let text = String::from_utf8_lossy(line).into_owned();
        if text.starts_with([' ', '\t']) {
            // A folded continuation of the previous header.
            let (_, v) = current.as_mut()?;
            v.push(' ');
            v.push_str(text.trim());
            continue;
        }
        if let Some((name, value)) = current.take()
            && name == "content-type"
        {
            content_type = Some(value);
        }
        let (name, value) = text.split_once(':')?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        current = Some((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    if let Some((name, value)) = current
        && name == "content-type"
    {
        content_type = Some(value);
    }
    let ct = content_type?.to_ascii_lowercase();
    let media = ct.split(';').next().unwrap_or("").trim().to_string();
    match media.as_str() {
        "multipart/signed" => Some(Inner::Signed),
        "application/pkcs7-mime" | "application/x-pkcs7-mime" => {
            let encrypted = ct.split(';').skip(1).any(|p| {
                let p = p.trim().replace('"', "");
                p == "smime-type=enveloped-data" || p == "smime-type=authenveloped-data"
            });
            Some(if encrypted { Inner::Encrypted } else { Inner::Signed })
        }
        _ => None,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests;
