//! S/MIME requests: sign, verify, encrypt, decrypt, certs-only, inline or
//! on a data channel. They run on blocking threads (`Outcome::Blocking`,
//! `Outcome::Stream`), not the worker pool: using a key may have to wait
//! for the user's token password, and a stream lasts as long as the
//! application takes to write it.
//!
//! psm decides who signed and whether to believe it: OpenSSL checks the
//! signature over the content (`pki::smime`), and psm's verifier checks the
//! signer's chain for e-mail at the signing time and now.

use crate::pki::smime::{self, Kind, Message, SigCheck, SigOutcome, Signer, detach, ffi::Bio};
use crate::pki::verify::{self, Name, Usage};
use crate::pki::{cert, keys::LoadedKey};
use crate::pool::ReplyTo;
use crate::store::Store;
use crate::tls::TlsContext;
use openssl::x509::X509;
use psm::proto::{
    CERTS_USER, CertInfo, CertUsage, MAX_INLINE_SMIME, Reply, SMIME_ALL_FLAGS, SMIME_BINARY,
    SMIME_REMEMBER_SIGNER, SMIME_VERIFY_INNER, SmimeInfo, SmimeOp,
};
use psm::{Code, Error};
use std::collections::HashMap;
use std::io::{Read, Seek};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a blocking job runs, and for whom.
pub struct JobCtx<'a> {
    pub ctx: &'a Arc<TlsContext>,
    pub to: ReplyTo,
    /// The application answers prompts (the token password).
    pub can_prompt: bool,
}

impl JobCtx<'_> {
    fn session(&self) -> u64 {
        self.to.session_id
    }
}

pub type BlockingJob = Box<dyn FnOnce(&JobCtx<'_>) -> Result<Reply, Error> + Send>;
pub type StreamJob = Box<dyn FnOnce(&JobCtx<'_>, UnixStream) -> Result<Reply, Error> + Send>;

/// Most CA certificates sent along with a signer's certificate.
const MAX_CHAIN: usize = 5;
/// Largest message a verify or decrypt stream reads: OpenSSL parses the
/// whole structure in memory, so this bounds psmd's memory for one.
pub const MAX_PARSED_MESSAGE: usize = 512 * 1024 * 1024;
/// Wrapping layers unwrapped in one call (signed inside encrypted inside
/// signed: RFC 8551's triple wrapping).
const MAX_LAYERS: usize = 3;

fn check_flags(flags: u32) -> Result<(), Error> {
    if flags & !SMIME_ALL_FLAGS != 0 {
        return Err(Error::new(
            Code::PSM_ERR_INVALID_ARGUMENT,
            format!("unknown PSM_SMIME_* flags {:#x}", flags & !SMIME_ALL_FLAGS),
        ));
    }
    Ok(())
}

fn check_inline(data: &[u8]) -> Result<(), Error> {
    if data.len() > MAX_INLINE_SMIME {
        return Err(Error::new(
            Code::PSM_ERR_INVALID_ARGUMENT,
            format!("{} bytes inline; larger messages go through a stream", data.len()),
        ));
    }
    Ok(())
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn openssl_cert(der: &[u8]) -> Result<X509, Error> {
    X509::from_der(der).map_err(|e| Error::new(Code::PSM_ERR_DECODE, format!("certificate: {e}")))
}

/// Unlocks the token for the job's session, asking the application for
/// the password when it answers prompts.
fn unlock(jc: &JobCtx<'_>, purpose: &str) -> Result<(), Error> {
    let ctx = jc.ctx;
    match ctx.token.master(jc.session()) {
        Ok(_) => return Ok(()),
        Err(e) if e.code != Code::PSM_ERR_LOGIN_REQUIRED => return Err(e),
        Err(e) if !jc.can_prompt => {
            return Err(Error::new(
                Code::PSM_ERR_LOGIN_REQUIRED,
                format!(
                    "{}; {purpose} needs the token: log in first (psm_token_login), or set a prompt handler",
                    e.message
                ),
            ));
        }
        Err(_) => {}
    }
    crate::token::ask_password(ctx, jc.to, jc.session(), purpose)
}

/// A certificate of the store by nickname, e-mail address or
/// "sha256:<hex>" (as `psm_cert_find`).
fn find(store: &Store, query: &str) -> Result<CertInfo, Error> {
    store.find(query)
}

/// The private key of `info`, unsealed for the session.
fn key_of(jc: &JobCtx<'_>, info: &CertInfo, purpose: &str) -> Result<Arc<LoadedKey>, Error> {
    let r = crate::store::parse_fingerprint(&info.sha256_hex)
        .and_then(|fp| crate::token::confirm_key_use(jc.ctx, jc.to, &fp, purpose))
        .and_then(|()| unsealed_key(jc, info, purpose));
    let op = if purpose.contains("sign") { "smime-sign" } else { "smime-decrypt" };
    jc.ctx.audit.record_result(jc.session(), op, || info.sha256_hex.clone(), &r);
    r
}

fn unsealed_key(jc: &JobCtx<'_>, info: &CertInfo, purpose: &str) -> Result<Arc<LoadedKey>, Error> {
    let fp = crate::store::parse_fingerprint(&format!("sha256:{}", info.sha256_hex))?;
    if let Some(key) = jc.ctx.token.cached_signer(jc.session(), &fp) {
        return Ok(key);
    }
    let (spki, row) = {
        let store = jc.ctx.lock_store();
        match store.cert_spki(&fp) {
            Ok(spki) => (Some(spki), store.key_for_spki(&spki)?),
            Err(e) if e.code == Code::PSM_ERR_NOT_FOUND => (None, None),
            Err(e) => return Err(e),
        }
    };
    if row.is_none() && !info.token.is_empty() {
        // The key is on a PKCS#11 token: OpenSSL will hand it each
        // operation; the token logs in first (asking for its PIN).
        let to = jc.can_prompt.then_some(jc.to);
        if let Some(key) = crate::hwtokens::key_for(jc.ctx, jc.session(), to, &fp, purpose)? {
            return crate::hwtokens::openssl_key(&key).map(Arc::new);
        }
    }
    let spki = spki.ok_or_else(|| {
        Error::new(
            Code::PSM_ERR_NOT_FOUND,
            format!("certificate {} is neither in psm nor on a token", info.nickname),
        )
    })?;
    let row = row.ok_or_else(|| {
        Error::new(
            Code::PSM_ERR_NOT_FOUND,
            format!("psm holds no private key for certificate {}", info.nickname),
        )
    })?;
    unlock(jc, purpose)?;
    let key = jc.ctx.token.key(jc.session(), &spki, &row)?;
    jc.ctx.token.remember_signer(&fp, key.clone());
    Ok(key)
}

/// An OpenSSL failure with a key on a PKCS#11 token says only that the
/// private operation failed; the token's own reason (a login needed, a
/// hung module, a refusal) is what the application should see. A lost
/// login also forgets the keys found under it.
fn token_reason<T>(ctx: &TlsContext, key: &LoadedKey, r: Result<T, Error>) -> Result<T, Error> {
    match r {
        Err(e) if key.is_on_token() => {
            let e = crate::pkcs11::ossl::take_error().unwrap_or(e);
            if e.code == Code::PSM_ERR_LOGIN_REQUIRED {
                ctx.hw.invalidate();
            }
            Err(e)
        }
        r => r,
    }
}

/// `der` must be valid for `usage` now: psm neither signs with nor
/// encrypts to a certificate it would reject on the other side.
fn require_valid(
    ctx: &TlsContext,
    store: &Store,
    der: &[u8],
    usage: CertUsage,
    what: &str,
) -> Result<(), Error> {
    let trust = ctx.trust_for(store, usage)?;
    let u = if usage == CertUsage::EmailSigner { Usage::EmailSigner } else { Usage::EmailRecipient };
    let v = verify::verify(der, u, Name::None, now() as u64, &trust);
    if v.is_valid() { Ok(()) } else { Err(Error::new(v.status.code(), format!("{what}: {}", v.detail))) }
}

/// How long a certificate found valid is believed before it is checked
/// again (validity depends on the clock as well as on the store).
const RECHECK: Duration = Duration::from_secs(60);
/// Certificates the cache holds.
const CACHE_ENTRIES: usize = 256;

impl Cache {
    /// Forgets every verdict (the policy's trust settings changed).
    pub fn clear(&self) {
        self.certs.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.verdicts.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.described.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Signers' and recipients' certificates as checked for S/MIME, so that
/// signing a short message costs the signature, not a walk of the store:
/// valid while the store is unchanged, for at most [`RECHECK`].
#[derive(Default)]
pub struct Cache {
    certs: Mutex<HashMap<(String, bool), Checked>>,
    /// Valid signer chains by leaf and the certificates the message carried.
    verdicts: Mutex<HashMap<ChainKey, GoodChain>>,
    /// Certificates as the store describes them, by fingerprint.
    described: Mutex<HashMap<[u8; 32], (u64, CertInfo)>>,
}

/// A signer's certificate and a digest of the certificates presented with it.
type ChainKey = ([u8; 32], [u8; 32]);

/// A signer's chain found valid, and the times it holds for: while every
/// certificate in it is within its validity period (and the store, with
/// its trust settings and CRLs, is unchanged), the verdict is the same.
#[derive(Clone)]
struct GoodChain {
    generation: u64,
    from: i64,
    until: i64,
    verdict: verify::Verdict,
}

/// The verdict on a signer's chain at `at`, from the cache when a valid
/// chain found earlier covers that time.
fn signer_verdict(
    jc: &JobCtx<'_>,
    generation: u64,
    der: &[u8],
    presented: &[Vec<u8>],
    at: i64,
    trust: &verify::TrustSet,
) -> verify::Verdict {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for p in presented {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let key = (verify::fingerprint(der), <[u8; 32]>::from(h.finalize()));
    let cache = &jc.ctx.smime.verdicts;
    if let Some(g) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key)
        && g.generation == generation
        && (g.from..=g.until).contains(&at)
    {
        return g.verdict.clone();
    }
    let v = verify::verify_presented(der, presented, Usage::EmailSigner, Name::None, at.max(0) as u64, trust);
    if v.is_valid() {
        let windows: Option<Vec<(i64, i64)>> =
            v.chain.iter().map(|d| cert::parse(d).ok().map(|p| (p.not_before, p.not_after))).collect();
        if let Some(w) = windows {
            let from = w.iter().map(|x| x.0).max().unwrap_or(i64::MAX);
            let until = w.iter().map(|x| x.1).min().unwrap_or(i64::MIN);
            let mut verdicts = cache.lock().unwrap_or_else(|p| p.into_inner());
            if verdicts.len() >= CACHE_ENTRIES {
                verdicts.clear();
            }
            verdicts.insert(key, GoodChain { generation, from, until, verdict: v.clone() });
        }
    }
    v
}

#[derive(Clone)]
struct Checked {
    generation: u64,
    at: Instant,
    info: Arc<CertInfo>,
    cert: X509,
    /// For a signer: the CA certificates to send along.
    chain: Arc<Vec<X509>>,
}

/// The certificate `query` names, checked for signing (with a key and the
/// chain to send) or for receiving encrypted mail.
fn checked(jc: &JobCtx<'_>, query: &str, signer: bool) -> Result<Checked, Error> {
    let generation = jc.ctx.lock_store().generation();
    let key = (query.to_string(), signer);
    let cache = &jc.ctx.smime.certs;
    if let Some(c) = cached_check(cache, &key, generation) {
        return Ok(c);
    }
    let info = crate::hwtokens::find_cert(jc.ctx, query)?;
    let store = jc.ctx.lock_store();
    let chain = if signer {
        if !info.has_private_key {
            return Err(Error::new(
                Code::PSM_ERR_NOT_FOUND,
                format!("psm holds no private key for certificate {}", info.nickname),
            ));
        }
        require_valid(
            jc.ctx,
            &store,
            &info.der,
            CertUsage::EmailSigner,
            "cannot sign with this certificate",
        )?;
        let cas: Vec<Vec<u8>> =
            store.all_with_trust()?.into_iter().filter(|r| r.is_ca).map(|r| r.der).collect();
        cert::chain_above(&info.der, &cas, MAX_CHAIN)
            .iter()
            .map(|d| openssl_cert(d))
            .collect::<Result<_, _>>()?
    } else {
        let what = format!("cannot encrypt to {}", info.subject);
        require_valid(jc.ctx, &store, &info.der, CertUsage::EmailRecipient, &what)?;
        Vec::new()
    };
    let c = Checked {
        generation,
        at: Instant::now(),
        cert: openssl_cert(&info.der)?,
        info: Arc::new(info),
        chain: Arc::new(chain),
    };
    let mut certs = cache.lock().unwrap_or_else(|p| p.into_inner());
    if certs.len() >= CACHE_ENTRIES {
        certs.clear();
    }
    certs.insert(key, c.clone());
    Ok(c)
}

fn cached_check(
    cache: &Mutex<HashMap<(String, bool), Checked>>,
    key: &(String, bool),
    generation: u64,
) -> Option<Checked> {
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(key)
        .filter(|c| c.generation == generation && c.at.elapsed() < RECHECK)
        .cloned()
}

/// Largest message signed on the event loop.
const SIGN_ON_LOOP_MAX: usize = 16 * 1024;

/// Signs a short message right on the event loop when everything it needs
/// is at hand: the signer checked moments ago, its key unsealed for this
/// session and one that signs in microseconds (EC, Ed25519), the store not
/// busy. A trip to a thread and back would cost more than the signature.
/// None: take the usual way.
pub fn sign_on_loop(
    ctx: &TlsContext,
    session: u64,
    signer: &str,
    flags: u32,
    data: &[u8],
) -> Option<Result<Reply, Error>> {
    if data.len() > SIGN_ON_LOOP_MAX || check_flags(flags).is_err() {
        return None;
    }
    let generation = ctx.store.try_lock().ok()?.generation();
    let c = cached_check(&ctx.smime.certs, &(signer.to_string(), true), generation)?;
    let fp = crate::store::parse_fingerprint(&format!("sha256:{}", c.info.sha256_hex)).ok()?;
    if ctx.policy().must_confirm(&fp) {
        // The user is asked first: that is a blocking job's work.
        return None;
    }
    let key = ctx.token.cached_signer(session, &fp).filter(|k| k.signs_fast())?;
    let run = || {
        let out = Bio::mem().map_err(bio_error)?;
        let input = Bio::slice(data).map_err(bio_error)?;
        let signer = Signer { cert: &c.cert, key: key.pkey(), chain: &c.chain };
        smime::sign(&signer, flags, &input, Some(data), &out)?;
        Ok(Reply::Bytes(out.mem_contents()))
    };
    drop(openssl::error::ErrorStack::get());
    let r = run();
    ctx.audit.record_result(session, "smime-sign", || c.info.sha256_hex.clone(), &r);
    Some(r)
}

struct SignSetup {
    cert: X509,
    chain: Arc<Vec<X509>>,
    key: Arc<LoadedKey>,
}

fn sign_setup(jc: &JobCtx<'_>, signer: &str) -> Result<SignSetup, Error> {
    let c = checked(jc, signer, true)?;
    let key = key_of(jc, &c.info, "signing a message")?;
    Ok(SignSetup { cert: c.cert, chain: c.chain, key })
}

fn recipients_setup(jc: &JobCtx<'_>, recipients: &[String]) -> Result<Vec<X509>, Error> {
    if recipients.len() > smime::MAX_RECIPIENTS {
        return Err(Error::new(
            Code::PSM_ERR_INVALID_ARGUMENT,
            format!("{} recipients; psm encrypts to at most {}", recipients.len(), smime::MAX_RECIPIENTS),
        ));
    }
    recipients.iter().map(|r| checked(jc, r, false).map(|c| c.cert)).collect()
}

fn bio_error(e: openssl::error::ErrorStack) -> Error {
    Error::new(Code::PSM_ERR_INTERNAL, format!("OpenSSL BIO: {e}"))
}

pub fn sign(signer: String, flags: u32, data: Vec<u8>) -> BlockingJob {
    Box::new(move |jc| {
        check_flags(flags)?;
        check_inline(&data)?;
        let s = sign_setup(jc, &signer)?;
        let out = Bio::mem().map_err(bio_error)?;
        let input = Bio::slice(&data).map_err(bio_error)?;
        let signer = Signer { cert: &s.cert, key: s.key.pkey(), chain: &s.chain };
        token_reason(jc.ctx, &s.key, smime::sign(&signer, flags, &input, Some(&data), &out))?;
        tracing::info!(session = jc.session(), "signed a message");
        Ok(Reply::Bytes(out.mem_contents()))
    })
}

pub fn encrypt(recipients: Vec<String>, flags: u32, data: Vec<u8>) -> BlockingJob {
    Box::new(move |jc| {
        check_flags(flags)?;
        check_inline(&data)?;
        let certs = recipients_setup(jc, &recipients)?;
        let out = Bio::mem().map_err(bio_error)?;
        smime::encrypt(&certs, flags, &Bio::slice(&data).map_err(bio_error)?, Some(&data), &out)?;
        Ok(Reply::Bytes(out.mem_contents()))
    })
}

pub fn verify(data: Vec<u8>, content: Option<Vec<u8>>, from: Option<String>, flags: u32) -> BlockingJob {
    Box::new(move |jc| {
        check_flags(flags)?;
        check_inline(&data)?;
        if let Some(c) = &content {
            check_inline(c)?;
        }
        let mut msg = parse_signed(&data)?;
        let info = verify_in_memory(jc, &mut msg, content.as_deref(), from.as_deref(), flags)?;
        Ok(verdict(jc, info))
    })
}

pub fn decrypt(data: Vec<u8>, from: Option<String>, flags: u32) -> BlockingJob {
    Box::new(move |jc| {
        check_flags(flags)?;
        check_inline(&data)?;
        Ok(verdict(jc, decrypt_message(jc, &data, from.as_deref(), flags, 1)?))
    })
}

pub fn certs_only(certs: Vec<String>, flags: u32) -> BlockingJob {
    Box::new(move |jc| {
        check_flags(flags)?;
        if certs.is_empty() || certs.len() > smime::MAX_RECIPIENTS {
            return Err(Error::new(Code::PSM_ERR_INVALID_ARGUMENT, "give 1 to 1024 certificates"));
        }
        let x509s = {
            let store = jc.ctx.lock_store();
            certs.iter().map(|c| openssl_cert(&find(&store, c)?.der)).collect::<Result<Vec<_>, _>>()?
        };
        Ok(Reply::Bytes(smime::certs_only(&x509s, flags)?))
    })
}

pub fn read_certs(data: Vec<u8>) -> BlockingJob {
    Box::new(move |jc| {
        check_inline(&data)?;
        let msg = Message::parse(&data)?;
        if msg.kind() != Kind::Signed {
            return Err(Error::new(Code::PSM_ERR_DECODE, "not a certs-only (SignedData) message"));
        }
        let store = jc.ctx.lock_store();
        let certs = msg
            .certs()
            .iter()
            .map(|c| {
                describe(&store, &c.to_der().map_err(|e| Error::new(Code::PSM_ERR_DECODE, e.to_string()))?)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Reply::Certs(certs))
    })
}

/// Parses a message to verify: one that is MIME but not S/MIME is "not
/// signed", not "cannot decode".
fn parse_signed(data: &[u8]) -> Result<Message, Error> {
    Message::parse(data).map_err(|e| match smime::not_smime_type(data) {
        Some(t) if e.code == Code::PSM_ERR_DECODE => {
            Error::new(Code::PSM_ERR_SMIME_NOT_SIGNED, format!("the message is {t}, not S/MIME"))
        }
        _ => e,
    })
}

use crate::ops::cert::describe;

/// [`describe`] through the cache: signers and their CAs recur, and a
/// store lookup costs more than the rest of a verification.
fn describe_cached(jc: &JobCtx<'_>, store: &Store, der: &[u8]) -> Result<CertInfo, Error> {
    let generation = store.generation();
    let fp = verify::fingerprint(der);
    let cache = &jc.ctx.smime.described;
    if let Some((g, info)) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&fp)
        && *g == generation
    {
        return Ok(info.clone());
    }
    let info = describe(store, der)?;
    let mut described = cache.lock().unwrap_or_else(|p| p.into_inner());
    if described.len() >= CACHE_ENTRIES {
        described.clear();
    }
    described.insert(fp, (generation, info.clone()));
    Ok(info)
}

/// Checks a SignedData: the signature (OpenSSL), then the signer's chain,
/// address and the time it claims (psm's verifier).
fn verify_message(
    jc: &JobCtx<'_>,
    msg: &mut Message,
    content: Option<&[u8]>,
    content_bio: Option<&Bio<'_>>,
    out: Option<&Bio<'_>>,
    from: Option<&str>,
    flags: u32,
) -> Result<SmimeInfo, Error> {
    match msg.kind() {
        Kind::Signed => {}
        Kind::Enveloped | Kind::AuthEnveloped => {
            return Err(Error::new(
                Code::PSM_ERR_SMIME_NOT_SIGNED,
                "the message is encrypted, not signed: decrypt it (with PSM_SMIME_VERIFY_INNER to check a signature inside)",
            ));
        }
        Kind::Other(t) => {
            return Err(Error::new(
                Code::PSM_ERR_SMIME_NOT_SIGNED,
                format!("the message is {t}, not signed"),
            ));
        }
    }
    // The signer's certificate, when the message leaves it out, may be one
    // psm already has (people's certificates remembered earlier).
    let extra = if msg.certs().iter().any(|c| msg.cms.signer_matches(0, c)) {
        Vec::new()
    } else {
        let store = jc.ctx.lock_store();
        store.list(0)?.iter().filter(|c| !c.is_ca).filter_map(|c| X509::from_der(&c.der).ok()).collect()
    };
    let check = smime::check_signature(msg, content, content_bio, out, &extra, flags)?;
    judge(jc, &check, from, flags)
}

/// [`verify_message`] with the content kept in the result.
fn verify_in_memory(
    jc: &JobCtx<'_>,
    msg: &mut Message,
    content: Option<&[u8]>,
    from: Option<&str>,
    flags: u32,
) -> Result<SmimeInfo, Error> {
    let out = Bio::mem().map_err(bio_error)?;
    let mut info = verify_message(jc, msg, content, None, Some(&out), from, flags)?;
    info.content = psm::proto::ByteBuf::from(out.mem_contents());
    Ok(info)
}

fn empty_info() -> SmimeInfo {
    SmimeInfo {
        status: Code::PSM_OK,
        detail: String::new(),
        signed: false,
        encrypted: false,
        signer: None,
        chain: Vec::new(),
        signing_time: 0,
        status_now: Code::PSM_OK,
        digest: String::new(),
        cipher: String::new(),
        content: psm::proto::ByteBuf::new(),
        result_id: 0,
    }
}

/// The reply with a verdict, which psmd keeps for `SmimeShowInfo`.
fn verdict(jc: &JobCtx<'_>, mut info: SmimeInfo) -> Reply {
    info.result_id = jc.ctx.smime_results.keep(jc.session(), &info);
    Reply::Smime(Box::new(info))
}

/// The verdict on a checked signature.
fn judge(jc: &JobCtx<'_>, check: &SigCheck, from: Option<&str>, flags: u32) -> Result<SmimeInfo, Error> {
    let mut info = empty_info();
    info.signed = true;
    info.digest = check.digest.clone();
    info.signing_time = check.signing_time.unwrap_or(0);
    let now = now();
    let store = jc.ctx.lock_store();
    let signer_der = match &check.signer {
        Some(c) => Some(c.to_der().map_err(|e| Error::new(Code::PSM_ERR_DECODE, e.to_string()))?),
        None => None,
    };
    if let Some(der) = &signer_der {
        info.signer = Some(describe_cached(jc, &store, der)?);
    }
    let sig_status = match check.outcome {
        SigOutcome::Good => Code::PSM_OK,
        SigOutcome::BadSignature => Code::PSM_ERR_SMIME_BAD_SIGNATURE,
        SigOutcome::ContentAltered => Code::PSM_ERR_SMIME_CONTENT_ALTERED,
        SigOutcome::SignerUnknown => Code::PSM_ERR_NOT_FOUND,
        SigOutcome::Unsupported => Code::PSM_ERR_UNSUPPORTED,
    };
    info.status = sig_status;
    info.detail = check.detail.clone();
    info.status_now = sig_status;
    let Some(der) = signer_der else { return Ok(info) };

    // The chain at the time the signer claims to have signed (if it is
    // not in the future), and now.
    let trust = jc.ctx.trust_for(&store, CertUsage::EmailSigner)?;
    let presented: Vec<Vec<u8>> = check.certs.iter().filter_map(|c| c.to_der().ok()).collect();
    let at = match check.signing_time {
        Some(t) if t > 0 && t <= now + 300 => t,
        _ => now,
    };
    let generation = store.generation();
    let v_at = signer_verdict(jc, generation, &der, &presented, at, &trust);
    let v_now =
        if at == now { v_at.clone() } else { signer_verdict(jc, generation, &der, &presented, now, &trust) };
    info.chain = v_at.chain.iter().map(|d| describe_cached(jc, &store, d)).collect::<Result<_, _>>()?;
    info.status_now = if sig_status != Code::PSM_OK { sig_status } else { v_now.status.code() };
    if sig_status != Code::PSM_OK {
        return Ok(info);
    }
    let now_bad = matches!(v_now.status, verify::Status::Revoked | verify::Status::Distrusted);
    if !v_at.is_valid() {
        info.status = v_at.status.code();
        info.detail = format!("the signature is intact, but the signer is not trusted: {}", v_at.detail);
    } else if now_bad {
        info.status = v_now.status.code();
        info.detail = format!("the signature is intact, but {}", v_now.detail);
    } else if let Some(from) = from.filter(|f| !f.is_empty())
        && !info.signer.as_ref().is_some_and(|s| carries(s, from))
    {
        info.status = Code::PSM_ERR_SMIME_ADDRESS_MISMATCH;
        let has = info.signer.as_ref().map(|s| s.emails.join(", ")).unwrap_or_default();
        info.detail = if has.is_empty() {
            format!(
                "the signature is intact, but the signer's certificate names no e-mail address, so it cannot vouch for {from}"
            )
        } else {
            format!(
                "the signature is intact, but the signer's certificate is for {has}, not the sender {from}"
            )
        };
    } else {
        let who = info.signer.as_ref().map_or_else(String::new, |s| s.subject.clone());
        info.detail = if v_now.is_valid() {
            format!("good signature by {who}")
        } else {
            format!(
                "good signature by {who}; the certificate was valid when the message was signed ({})",
                v_now.detail
            )
        };
        if flags & SMIME_REMEMBER_SIGNER != 0 && info.signer.as_ref().is_some_and(|s| s.nickname.is_empty()) {
            drop(store);
            let parsed = cert::parse(&der)?;
            let mut store = jc.ctx.lock_store();
            let stored = store.import_certs(&[parsed], None, 0)?;
            info.signer = stored.into_iter().next();
        }
    }
    Ok(info)
}

/// Whether the certificate names `addr`: local part exactly, domain
/// ignoring case (RFC 8550 section 3).
fn carries(c: &CertInfo, addr: &str) -> bool {
    let want = cert::normalize_email(addr);
    c.emails.iter().any(|e| cert::normalize_email(e) == want)
}

/// The content-encryption structure's name, or why `msg` cannot be decrypted.
fn encrypted_kind(msg: &Message) -> Result<&'static str, Error> {
    match msg.kind() {
        Kind::Enveloped => Ok("EnvelopedData"),
        Kind::AuthEnveloped => Ok("AuthEnvelopedData"),
        Kind::Signed => Err(Error::new(
            Code::PSM_ERR_INVALID_ARGUMENT,
            "the message is signed, not encrypted: verify it instead",
        )),
        Kind::Other(t) => {
            Err(Error::new(Code::PSM_ERR_UNSUPPORTED, format!("the message is {t}, not encrypted")))
        }
    }
}

/// Finds which of the user's keys `msg` is for and decrypts it into `out`
/// (`dcont`: its content, when detached). Returns the certificate used.
fn decrypt_to(
    jc: &JobCtx<'_>,
    msg: &mut Message,
    dcont: Option<&Bio<'_>>,
    out: &Bio<'_>,
    flags: u32,
) -> Result<CertInfo, Error> {
    let n = msg.cms.recipient_count();
    if n > smime::MAX_RECIPIENT_INFOS {
        return Err(Error::new(
            Code::PSM_ERR_DECODE,
            format!("the message names {n} recipients; psm reads at most {}", smime::MAX_RECIPIENT_INFOS),
        ));
    }
    let mut mine = {
        let store = jc.ctx.lock_store();
        store.list(CERTS_USER)?.into_iter().filter(|c| c.has_private_key).collect::<Vec<_>>()
    };
    crate::hwtokens::add_token_certs(jc.ctx, &mut mine, CERTS_USER);
    let found = mine.into_iter().find_map(|info| {
        let x = X509::from_der(&info.der).ok()?;
        msg.cms.is_recipient(&x).then_some((info, x))
    });
    let Some((info, x509)) = found else {
        return Err(Error::new(
            Code::PSM_ERR_SMIME_NO_KEY,
            format!(
                "the message is encrypted to {n} recipient(s), none of them a certificate psm holds a key for"
            ),
        ));
    };
    let key = key_of(jc, &info, "decrypting a message")?;
    token_reason(jc.ctx, &key, smime::decrypt(msg, key.pkey(), &x509, dcont, out, flags))?;
    Ok(info)
}

/// Decrypts `data`, the `depth`-th layer of a message (1: the outermost).
fn decrypt_message(
    jc: &JobCtx<'_>,
    data: &[u8],
    from: Option<&str>,
    flags: u32,
    depth: usize,
) -> Result<SmimeInfo, Error> {
    let mut msg = Message::parse(data)?;
    let cipher = encrypted_kind(&msg)?;
    let out = Bio::mem().map_err(bio_error)?;
    let info = decrypt_to(jc, &mut msg, None, &out, flags)?;
    drop(msg);
    let content = out.mem_contents();
    let mut result = if flags & SMIME_VERIFY_INNER != 0 && smime::looks_smime(&content) {
        unwrap_inner(jc, &content, from, flags, depth + 1)?
    } else {
        let mut i = decrypted_with(&info);
        i.content = psm::proto::ByteBuf::from(content);
        i
    };
    result.encrypted = true;
    result.cipher = cipher.into();
    Ok(result)
}

/// Verifies a signed entity found inside a decrypted one, or decrypts an
/// encrypted one in turn: the `depth`-th layer, at most `MAX_LAYERS`.
fn unwrap_inner(
    jc: &JobCtx<'_>,
    entity: &[u8],
    from: Option<&str>,
    flags: u32,
    depth: usize,
) -> Result<SmimeInfo, Error> {
    if depth > MAX_LAYERS {
        return Err(too_deep());
    }
    let mut msg = Message::parse(entity)?;
    match msg.kind() {
        Kind::Signed => verify_in_memory(jc, &mut msg, None, from, flags),
        Kind::Enveloped | Kind::AuthEnveloped => decrypt_message(jc, entity, from, flags, depth),
        Kind::Other(t) => Err(Error::new(Code::PSM_ERR_UNSUPPORTED, format!("the inner message is {t}"))),
    }
}

fn too_deep() -> Error {
    Error::new(Code::PSM_ERR_DECODE, format!("the message is wrapped more than {MAX_LAYERS} times"))
}

/// Waits for the first input byte without consuming it: true when the
/// input ends before any.
fn input_is_empty(sock: &UnixStream) -> Result<bool, Error> {
    let mut b = [0u8; 1];
    loop {
        match nix::sys::socket::recv(sock.as_raw_fd(), &mut b, nix::sys::socket::MsgFlags::MSG_PEEK) {
            Ok(n) => return Ok(n == 0),
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(Error::io("reading the data channel", e.into())),
        }
    }
}

/// How much of a streamed message is read to tell how it is framed.
const HEAD: usize = 4096;

/// The first bytes of `input` (fewer only at its end).
fn read_head(input: &mut dyn Read) -> Result<Vec<u8>, Error> {
    let mut head = Vec::with_capacity(HEAD);
    input.take(HEAD as u64).read_to_end(&mut head).map_err(|e| Error::io("reading the data channel", e))?;
    Ok(head)
}

/// Verifies a message read from `input`, writing its content to `out`:
/// DER, PEM and opaque S/MIME in bounded memory (the content is spooled
/// to an unnamed file, [`detach`]); multipart/signed in memory.
fn verify_streamed(
    jc: &JobCtx<'_>,
    input: impl Read,
    out: &Bio<'_>,
    from: Option<&str>,
    flags: u32,
) -> Result<SmimeInfo, Error> {
    let d = match receive(jc, input)? {
        Incoming::Whole(data) => {
            let mut msg = parse_signed(&data)?;
            drop(data);
            let mut info = verify_in_memory(jc, &mut msg, None, from, flags)?;
            write_bio(out, &std::mem::take(&mut info.content))?;
            return Ok(info);
        }
        Incoming::Detached(d) => d,
    };
    let mut msg = Message::parse(&d.der)?;
    let content = Bio::buffered_fd(d.content.as_fd()).map_err(bio_error)?;
    // The spooled eContent is the bytes that were signed: digest them as
    // they are, as verifying the message whole would.
    verify_message(jc, &mut msg, None, Some(&content), Some(out), from, flags | SMIME_BINARY)
}

/// Decrypts a message read from `input` into `out`, in bounded memory as
/// [`verify_streamed`]; with `SMIME_VERIFY_INNER` the plaintext is spooled
/// and a signed (or encrypted) message in it unwrapped in turn: the
/// `depth`-th layer, at most `MAX_LAYERS`.
fn decrypt_streamed(
    jc: &JobCtx<'_>,
    input: impl Read,
    out: &Bio<'_>,
    from: Option<&str>,
    flags: u32,
    depth: usize,
) -> Result<SmimeInfo, Error> {
    if depth > MAX_LAYERS {
        return Err(too_deep());
    }
    let d = match receive(jc, input)? {
        Incoming::Whole(data) => {
            let mut info = decrypt_message(jc, &data, from, flags, depth)?;
            drop(data);
            write_bio(out, &std::mem::take(&mut info.content))?;
            return Ok(info);
        }
        Incoming::Detached(d) => d,
    };
    let mut msg = Message::parse(&d.der)?;
    let cipher = encrypted_kind(&msg)?;
    let content = Bio::buffered_fd(d.content.as_fd()).map_err(bio_error)?;
    let mut info = if flags & SMIME_VERIFY_INNER == 0 {
        decrypted_with(&decrypt_to(jc, &mut msg, Some(&content), out, flags)?)
    } else {
        let mut plain = detach::spool_file(&spool_dir(jc))?;
        let used = {
            let sink = Bio::buffered_fd(plain.as_fd()).map_err(bio_error)?;
            let used = decrypt_to(jc, &mut msg, Some(&content), &sink, flags)?;
            sink.flush().map_err(|_| Error::new(Code::PSM_ERR_IO, "writing a temporary file"))?;
            used
        };
        let rewind = |f: &mut std::fs::File| {
            f.seek(std::io::SeekFrom::Start(0)).map_err(|e| Error::io("temporary file", e))
        };
        rewind(&mut plain)?;
        let head = read_head(&mut plain)?;
        rewind(&mut plain)?;
        match smime::smime_entity(&head) {
            Some(smime::Inner::Signed) if depth < MAX_LAYERS => verify_streamed(jc, plain, out, from, flags)?,
            Some(smime::Inner::Encrypted) => {
                let mut inner = decrypt_streamed(jc, plain, out, from, flags, depth + 1)?;
                inner.encrypted = true;
                return Ok(inner);
            }
            Some(_) => return Err(too_deep()),
            None => {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = plain.read(&mut buf).map_err(|e| Error::io("temporary file", e))?;
                    if n == 0 {
                        break;
                    }
                    write_bio(out, &buf[..n])?;
                }
                decrypted_with(&used)
            }
        }
    };
    info.encrypted = true;
    info.cipher = cipher.into();
    Ok(info)
}

/// A message arriving on a stream: read whole (multipart/signed, which is
/// MIME rather than BER), or walked with its content spooled ([`detach`]).
enum Incoming {
    Whole(Vec<u8>),
    Detached(detach::Detached),
}

fn receive(jc: &JobCtx<'_>, mut input: impl Read) -> Result<Incoming, Error> {
    let head = read_head(&mut input)?;
    let framing = detach::framing(&head);
    let mut whole = std::io::Cursor::new(head).chain(input);
    if framing == detach::Framing::Other {
        return read_message(&mut whole).map(Incoming::Whole);
    }
    detach::detach(whole, framing, &spool_dir(jc)).map(Incoming::Detached)
}

/// The result of a decryption that found nothing signed inside.
fn decrypted_with(used: &CertInfo) -> SmimeInfo {
    let mut i = empty_info();
    i.detail = format!("decrypted with the key of {}", used.subject);
    i
}

/// Where streams spool: the profile directory.
fn spool_dir(jc: &JobCtx<'_>) -> std::path::PathBuf {
    jc.ctx.lock_store().dir.clone()
}

fn write_bio(out: &Bio<'_>, data: &[u8]) -> Result<(), Error> {
    out.write_all(data).map_err(|_| Error::new(Code::PSM_ERR_IO, "writing the data channel"))
}

/// Reads a whole message (multipart/signed, which is verified in memory).
fn read_message(input: &mut dyn Read) -> Result<Vec<u8>, Error> {
    let mut data = Vec::new();
    let n = input
        .take(MAX_PARSED_MESSAGE as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::io("reading the data channel", e))?;
    if n > MAX_PARSED_MESSAGE {
        return Err(Error::new(
            Code::PSM_ERR_INVALID_ARGUMENT,
            format!(
                "the message is larger than the {} MiB psm reads to verify or decrypt",
                MAX_PARSED_MESSAGE >> 20
            ),
        ));
    }
    Ok(data)
}

/// The stream form of every operation: input from the channel, output to
/// it; the reply is what `ChannelFinish` returns.
pub fn stream(op: SmimeOp, flags: u32) -> StreamJob {
    Box::new(move |jc, mut sock| {
        check_flags(flags)?;
        let result = run_stream(jc, op, flags, &mut sock);
        // End of output (or of a failed one: ChannelFinish tells which).
        let _ = sock.shutdown(std::net::Shutdown::Both);
        result
    })
}

fn run_stream(jc: &JobCtx<'_>, op: SmimeOp, flags: u32, sock: &mut UnixStream) -> Result<Reply, Error> {
    match op {
        SmimeOp::Sign { signer } => {
            let s = sign_setup(jc, &signer)?;
            let empty = input_is_empty(sock)?;
            let fd = sock.as_fd();
            let (input, output) =
                (Bio::buffered_fd(fd).map_err(bio_error)?, Bio::buffered_fd(fd).map_err(bio_error)?);
            let signer = Signer { cert: &s.cert, key: s.key.pkey(), chain: &s.chain };
            token_reason(jc.ctx, &s.key, smime::sign(&signer, flags, &input, empty.then_some(&[]), &output))?;
            output.flush().map_err(|_| Error::new(Code::PSM_ERR_IO, "writing the data channel"))?;
            Ok(Reply::Done)
        }
        SmimeOp::Encrypt { recipients } => {
            let certs = recipients_setup(jc, &recipients)?;
            let empty = input_is_empty(sock)?;
            let fd = sock.as_fd();
            let (input, output) =
                (Bio::buffered_fd(fd).map_err(bio_error)?, Bio::buffered_fd(fd).map_err(bio_error)?);
            smime::encrypt(&certs, flags, &input, empty.then_some(&[]), &output)?;
            output.flush().map_err(|_| Error::new(Code::PSM_ERR_IO, "writing the data channel"))?;
            Ok(Reply::Done)
        }
        SmimeOp::Verify { signature: Some(sig), from } => {
            // Detached: the signature came with the request, the content
            // streams through the digest and is not echoed.
            let mut msg = Message::parse(&sig)?;
            let input = Bio::buffered_fd(sock.as_fd()).map_err(bio_error)?;
            let info = verify_message(jc, &mut msg, None, Some(&input), None, from.as_deref(), flags)?;
            Ok(verdict(jc, info))
        }
        SmimeOp::Verify { signature: None, from } => {
            let reader = sock.try_clone().map_err(|e| Error::io("data channel", e))?;
            let out = Bio::buffered_fd(sock.as_fd()).map_err(bio_error)?;
            let info = verify_streamed(jc, reader, &out, from.as_deref(), flags)?;
            out.flush().map_err(|_| Error::new(Code::PSM_ERR_IO, "writing the data channel"))?;
            Ok(verdict(jc, info))
        }
        SmimeOp::Decrypt { from } => {
            let reader = sock.try_clone().map_err(|e| Error::io("data channel", e))?;
            let out = Bio::buffered_fd(sock.as_fd()).map_err(bio_error)?;
            let info = decrypt_streamed(jc, reader, &out, from.as_deref(), flags, 1)?;
            out.flush().map_err(|_| Error::new(Code::PSM_ERR_IO, "writing the data channel"))?;
            Ok(verdict(jc, info))
        }
    }
}
