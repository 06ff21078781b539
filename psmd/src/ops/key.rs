//! Private keys in the soft token: generation with a CSR, signing,
//! PKCS#12 import and export, and SDR. Keys are unsealed only inside these
//! handlers, on the pool, and never leave psmd.

use crate::dialog::PageKind;
use crate::ops::smime::BlockingJob;
use crate::pki::{cert, keys, pkcs12, seal};
use crate::prompt::{Check, Question};
use crate::session::{Outcome, Shared};
use crate::store::{Store, parse_fingerprint};
use crate::token::TokenState;
use psm::proto::{KeyKind, PromptKind, Reply, Secret, SigKind};
use psm::{Code, Error};
use sha2::Digest;
use std::sync::Mutex;

/// Largest secret SDR seals: it is for passwords, not files.
pub const MAX_SDR: usize = 64 * 1024;
/// Associated data of SDR blobs: they open only as SDR.
const SDR_AAD: &[u8] = b"psm-sdr-v1";

fn work(f: impl FnOnce() -> Result<Reply, Error> + Send + 'static) -> Outcome {
    Outcome::Work(Box::new(f))
}

fn key_type(kind: KeyKind) -> keys::KeyType {
    match kind {
        KeyKind::EcP256 => keys::KeyType::EcP256,
        KeyKind::EcP384 => keys::KeyType::EcP384,
        KeyKind::Ed25519 => keys::KeyType::Ed25519,
        KeyKind::Rsa2048 => keys::KeyType::Rsa2048,
        KeyKind::Rsa3072 => keys::KeyType::Rsa3072,
        KeyKind::Rsa4096 => keys::KeyType::Rsa4096,
    }
}

fn sig_alg(alg: SigKind) -> keys::SigAlg {
    match alg {
        SigKind::EcdsaSha256 => keys::SigAlg::EcdsaSha256,
        SigKind::EcdsaSha384 => keys::SigAlg::EcdsaSha384,
        SigKind::Ed25519 => keys::SigAlg::Ed25519,
        SigKind::RsaPkcs1Sha256 => keys::SigAlg::RsaPkcs1Sha256,
        SigKind::RsaPssSha256 => keys::SigAlg::RsaPssSha256,
    }
}

fn parse_san(s: &str) -> Result<keys::San, Error> {
    let bad = || {
        Error::new(
            Code::PSM_ERR_INVALID_ARGUMENT,
            format!("SAN \"{s}\" must be dns:NAME, ip:ADDRESS or email:ADDRESS"),
        )
    };
    let (kind, value) = s.split_once(':').ok_or_else(bad)?;
    match kind {
        "dns" => Ok(keys::San::Dns(value.to_string())),
        "ip" => value.parse().map(keys::San::Ip).map_err(|_| bad()),
        "email" => Ok(keys::San::Email(value.to_string())),
        _ => Err(bad()),
    }
}

fn spki_sha256(pkcs8: &[u8]) -> Result<[u8; 32], Error> {
    Ok(sha2::Sha256::digest(keys::public_key_der(pkcs8)?).into())
}

pub fn generate(
    shared: &Shared,
    session: u64,
    kind: KeyKind,
    subject_dn: String,
    nickname: Option<String>,
    sans: Vec<String>,
) -> Outcome {
    if let Some(n) = &nickname
        && let Err(e) = crate::store::check_nickname(n)
    {
        return Outcome::Reply(Err(e));
    }
    let (store, token) = (shared.store.clone(), shared.token.clone());
    work(move || {
        let master = token.master(session)?;
        let sans = sans.iter().map(|s| parse_san(s)).collect::<Result<Vec<_>, _>>()?;
        let kt = key_type(kind);
        let pkcs8 = keys::generate(kt)?;
        let csr = keys::make_csr(&pkcs8, &subject_dn, &sans)?;
        let spki = spki_sha256(&pkcs8)?;
        let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
        store.put_key(&master, &spki, &format!("{kt:?}"), &pkcs8, nickname.as_deref())?;
        tracing::info!(session, kind = ?kind, "generated a key");
        Ok(Reply::Bytes(csr))
    })
}

/// `KeyCsr`: a request for the key of a stored certificate.
pub fn csr(
    shared: &Shared,
    session: u64,
    sha256_hex: String,
    subject_dn: String,
    sans: Vec<String>,
) -> Outcome {
    let (store, token) = (shared.store.clone(), shared.token.clone());
    work(move || {
        let fp = parse_fingerprint(&sha256_hex)?;
        let sans = sans.iter().map(|s| parse_san(s)).collect::<Result<Vec<_>, _>>()?;
        let row = {
            let store = store.lock().unwrap_or_else(|p| p.into_inner());
            store.key_for_spki(&store.cert_spki(&fp)?)?
        };
        let row = row.ok_or_else(|| {
            Error::new(Code::PSM_ERR_NOT_FOUND, "psm holds no private key for this certificate")
        })?;
        let pkcs8 = row.open(&*token.master(session)?)?;
        Ok(Reply::Bytes(keys::make_csr(&pkcs8, &subject_dn, &sans)?))
    })
}

pub fn sign(
    shared: &Shared,
    session: u64,
    sha256_hex: String,
    alg: SigKind,
    data: Vec<u8>,
    can_prompt: bool,
) -> Outcome {
    let fp = match parse_fingerprint(&sha256_hex) {
        Ok(fp) => fp,
        Err(e) => return Outcome::Reply(Err(e)),
    };
    // A key used before, whose signatures take microseconds, signs right
    // here: a trip through the pool would cost more than the signature.
    let audit = move |ctx: &crate::tls::TlsContext, r: &Result<Reply, Error>| {
        ctx.audit.record_result(session, "key-sign", || hex::encode(fp), r);
    };
    if let Some(key) = shared.token.cached_signer(session, &fp).filter(|k| k.signs_fast()) {
        let r = key.sign(sig_alg(alg), &data).map(Reply::Bytes);
        audit(&shared.tls, &r);
        return Outcome::Reply(r);
    }
    let ctx = shared.tls.clone();
    // A token key found before signs on the pool; the token's thread makes
    // the call.
    if let Some(key) = ctx.hw.ready_key(&fp) {
        return work(move || {
            let r = crate::hwtokens::sign(&ctx, &key, sig_alg(alg), &data).map(Reply::Bytes);
            audit(&ctx, &r);
            r
        });
    }
    if !ctx.pkcs11_modules().is_empty() && shared.token.cached_signer(session, &fp).is_none() {
        // Perhaps a token's key, whose PIN psm may have to ask for: a job
        // that may wait for the user.
        let job: BlockingJob = Box::new(move |jc| {
            let to = jc.can_prompt.then_some(jc.to);
            let r = sign_any(jc.ctx, to, session, &fp, alg, &data);
            audit(jc.ctx, &r);
            r
        });
        return Outcome::Blocking { job, can_prompt };
    }
    work(move || {
        let r = sign_with_store(&ctx.store, &ctx.token, session, &fp, alg, &data);
        audit(&ctx, &r);
        r
    })
}

/// Signs with the key of the certificate `fp`: psm's soft token's when the
/// store holds it, else that of the token holding the certificate, logged
/// in first (asking the user at `to`, if given, for its PIN).
fn sign_any(
    ctx: &crate::tls::TlsContext,
    to: Option<crate::pool::ReplyTo>,
    session: u64,
    fp: &[u8; 32],
    alg: SigKind,
    data: &[u8],
) -> Result<Reply, Error> {
    match sign_with_store(&ctx.store, &ctx.token, session, fp, alg, data) {
        Err(e) if e.code == Code::PSM_ERR_NOT_FOUND => {
            match crate::hwtokens::key_for(ctx, session, to, fp, "sign data")? {
                Some(key) => crate::hwtokens::sign(ctx, &key, sig_alg(alg), data).map(Reply::Bytes),
                None => Err(e),
            }
        }
        r => r,
    }
}

/// `KeySign` with a key the policy wants each use of confirmed: the user
/// is asked in psm's dialog first.
pub fn sign_confirmed(sha256_hex: String, alg: SigKind, data: Vec<u8>) -> BlockingJob {
    Box::new(move |jc| {
        let fp = parse_fingerprint(&sha256_hex)?;
        let session = jc.to.session_id;
        let to = jc.can_prompt.then_some(jc.to);
        let r = crate::token::confirm_key_use(jc.ctx, jc.to, &fp, "sign data")
            .and_then(|()| sign_any(jc.ctx, to, session, &fp, alg, &data));
        jc.ctx.audit.record_result(session, "key-sign", || hex::encode(fp), &r);
        r
    })
}

fn sign_with_store(
    store: &std::sync::Arc<std::sync::Mutex<crate::store::Store>>,
    token: &crate::token::TokenState,
    session: u64,
    fp: &[u8; 32],
    alg: SigKind,
    data: &[u8],
) -> Result<Reply, Error> {
    let (spki, row) = {
        let store = store.lock().unwrap_or_else(|p| p.into_inner());
        let spki = store.cert_spki(fp)?;
        (spki, store.key_for_spki(&spki)?)
    };
    let row = row.ok_or_else(|| {
        Error::new(Code::PSM_ERR_NOT_FOUND, "psm holds no private key for this certificate")
    })?;
    let key = token.key(session, &spki, &row)?;
    token.remember_signer(fp, key.clone());
    Ok(Reply::Bytes(key.sign(sig_alg(alg), data)?))
}

fn no_password() -> Error {
    Error::new(
        Code::PSM_ERR_NO_UI,
        "a PKCS#12 password is needed: pass it, or let psm ask (a prompt handler, or dialogs)",
    )
}

pub fn pkcs12_import(shared: &Shared, session: u64, data: Vec<u8>, password: Option<Secret>) -> Outcome {
    let (store, token) = (shared.store.clone(), shared.token.clone());
    work(move || {
        let password = password.ok_or_else(no_password)?;
        import_p12(&store, &token, session, &data, &password.0)
    })
}

/// `Pkcs12Import` without a password: psm asks the user, again after a
/// wrong one.
pub fn pkcs12_import_asking(data: Vec<u8>) -> BlockingJob {
    Box::new(move |jc| {
        let ctx = jc.ctx;
        ctx.token.master(jc.to.session_id)?;
        let q = Question {
            kind: PageKind::Prompt(PromptKind::Password),
            message: "Enter the password that protects the PKCS#12 file you import.".into(),
            details: serde_json::json!({ "token": "the PKCS#12 file", "purpose": "import a PKCS#12 file" }),
            choices: Vec::new(),
        };
        let mut reply = None;
        ctx.prompts.ask_until(jc.to, q, crate::token::PASSWORD_TRIES, |pw| {
            match import_p12(&ctx.store, &ctx.token, jc.to.session_id, &data, &pw.0) {
                Ok(r) => {
                    reply = Some(r);
                    Check::Accept
                }
                Err(e) if e.code == Code::PSM_ERR_BAD_PASSWORD => {
                    Check::Retry(Error::new(Code::PSM_ERR_BAD_PASSWORD, "That password was wrong."))
                }
                Err(e) => Check::Fail(e),
            }
        })?;
        reply.ok_or_else(|| Error::new(Code::PSM_ERR_INTERNAL, "the import ended without a result"))
    })
}

fn import_p12(
    store: &Mutex<Store>,
    token: &TokenState,
    session: u64,
    data: &[u8],
    password: &str,
) -> Result<Reply, Error> {
    {
        let master = token.master(session)?;
        let p12 = pkcs12::parse(data, password)?;
        let mut ders: Vec<Vec<u8>> = p12.cert.iter().cloned().collect();
        ders.extend(p12.ca.iter().cloned());
        if ders.is_empty() {
            return Err(Error::new(Code::PSM_ERR_DECODE, "the PKCS#12 file holds no certificate"));
        }
        let parsed = ders.iter().map(|d| cert::parse(d)).collect::<Result<Vec<_>, _>>()?;
        if let (Some(key), Some(_)) = (&p12.key_pkcs8, &p12.cert)
            && spki_sha256(key)? != parsed[0].spki_sha256
        {
            return Err(Error::new(
                Code::PSM_ERR_DECODE,
                "the PKCS#12 key does not belong to its certificate",
            ));
        }
        let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = &p12.key_pkcs8 {
            let kt = keys::key_type(key).map(|k| format!("{k:?}")).unwrap_or_else(|_| "imported".into());
            store.put_key(&master, &spki_sha256(key)?, &kt, key, None)?;
        }
        let name = p12.friendly_name.as_deref().filter(|n| !n.trim().is_empty());
        let certs = match store.import_certs(&parsed, name, 0) {
            Err(e) if e.code == Code::PSM_ERR_EXISTS || e.code == Code::PSM_ERR_INVALID_ARGUMENT => {
                store.import_certs(&parsed, None, 0)?
            }
            r => r?,
        };
        Ok(Reply::Certs(certs))
    }
}

pub fn pkcs12_export(shared: &Shared, session: u64, sha256_hex: String, password: Option<Secret>) -> Outcome {
    if !shared.tls.policy().pkcs12_export {
        return Outcome::Reply(Err(Error::new(
            Code::PSM_ERR_POLICY,
            "the security policy does not allow private keys to be exported",
        )));
    }
    let (store, token) = (shared.store.clone(), shared.token.clone());
    work(move || {
        let password = password.ok_or_else(no_password)?;
        export_p12(&store, &token, session, &sha256_hex, &password.0)
    })
}

/// `Pkcs12Export` without a password: psm asks the user for one (twice).
pub fn pkcs12_export_asking(sha256_hex: String) -> BlockingJob {
    Box::new(move |jc| {
        let ctx = jc.ctx;
        ctx.token.master(jc.to.session_id)?;
        let q = Question {
            kind: PageKind::Prompt(PromptKind::NewPassword),
            message: "Choose a password to protect the exported private key. Whoever has the file and \
                      this password has your key."
                .into(),
            details: serde_json::json!({ "title": "Protect the exported key", "purpose": "export a PKCS#12 file", "min_length": 1 }),
            choices: Vec::new(),
        };
        let mut reply = None;
        ctx.prompts.ask_until(jc.to, q, crate::token::PASSWORD_TRIES, |pw| {
            if pw.0.is_empty() {
                return Check::Retry(Error::new(
                    Code::PSM_ERR_INVALID_ARGUMENT,
                    "The password must not be empty.",
                ));
            }
            match export_p12(&ctx.store, &ctx.token, jc.to.session_id, &sha256_hex, &pw.0) {
                Ok(r) => {
                    reply = Some(r);
                    Check::Accept
                }
                Err(e) => Check::Fail(e),
            }
        })?;
        reply.ok_or_else(|| Error::new(Code::PSM_ERR_INTERNAL, "the export ended without a result"))
    })
}

fn export_p12(
    store: &Mutex<Store>,
    token: &TokenState,
    session: u64,
    sha256_hex: &str,
    password: &str,
) -> Result<Reply, Error> {
    {
        let fp = parse_fingerprint(sha256_hex)?;
        let (info, row) = {
            let store = store.lock().unwrap_or_else(|p| p.into_inner());
            let info = store.get(&fp)?;
            let row = store.key_for_spki(&store.cert_spki(&fp)?)?;
            (info, row)
        };
        let row = row.ok_or_else(|| {
            Error::new(Code::PSM_ERR_NOT_FOUND, "psm holds no private key for this certificate")
        })?;
        let pkcs8 = row.open(&*token.master(session)?)?;
        Ok(Reply::Bytes(pkcs12::build(&pkcs8, &info.der, &[], Some(&info.nickname), password)?))
    }
}

pub fn sdr_encrypt(shared: &Shared, session: u64, data: Vec<u8>) -> Outcome {
    let token = shared.token.clone();
    work(move || {
        if data.len() > MAX_SDR {
            return Err(Error::new(
                Code::PSM_ERR_INVALID_ARGUMENT,
                format!("SDR seals at most {MAX_SDR} bytes"),
            ));
        }
        Ok(Reply::Bytes(seal::seal(&*token.master(session)?, SDR_AAD, &data)?))
    })
}

pub fn sdr_decrypt(shared: &Shared, session: u64, data: Vec<u8>) -> Outcome {
    let token = shared.token.clone();
    work(move || {
        let master = token.master(session)?;
        let plain = seal::open(&master, SDR_AAD, &data).map_err(|_| {
            Error::new(Code::PSM_ERR_DECODE, "not an SDR blob of this token (or it was altered)")
        })?;
        Ok(Reply::Bytes(plain.to_vec()))
    })
}
