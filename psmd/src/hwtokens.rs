//! The tokens behind the PKCS#11 modules the policy names, as psmd's
//! requests use them: listing, certificates in lists and finds, the
//! private key of a token certificate, login with the PIN (given, or asked
//! through the prompt machinery), and a watcher thread that reports
//! insertion and removal and logs idle tokens out.
//!
//! A token's login belongs to psmd as a whole, as the card's own state
//! does: PKCS#11 logs in a token for an application, not for one of its
//! sessions. psm never keeps a PIN: it hands it to `C_Login` and wipes it.
//! The policy's idle timeout (`token.idle_timeout_secs`) bounds how long a
//! token stays logged in unused, and removal logs it out (the card does).
//!
//! Every call into a module goes through [`crate::pkcs11::Module`], which
//! runs it on the module's own thread with a timeout: a hung module fails
//! its callers after [`crate::tls::PKCS11_TIMEOUT`] and blocks nothing else.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use psm::proto::{self, CertInfo, PromptKind};
use psm::{Code, Error};
use zeroize::Zeroizing;

use crate::dialog::PageKind;
use crate::pkcs11::{self, Module, Pkcs11Uri, Presence, PresenceChange, TokenKey};
use crate::pki::keys::SigAlg;
use crate::pool::ReplyTo;
use crate::prompt::{Check, Question};
use crate::tls::TlsContext;

/// How long a listing of the tokens' certificates is reused. Objects on a
/// card rarely change while it is in; insertion, removal, login and logout
/// clear the listing at once.
const CERTS_TTL: Duration = Duration::from_secs(5);
/// How often the watcher looks for inserted and removed tokens.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Wrong PINs psm lets the user type in one question before giving up
/// (the token counts them too, and may lock itself sooner).
const PIN_TRIES: u32 = 3;

/// A certificate on a token.
pub struct TokenCert {
    pub module: Arc<Module>,
    pub cert: pkcs11::TokenCertificate,
    pub sha256: [u8; 32],
    /// As applications see it: marked with its token and URI.
    pub info: CertInfo,
}

/// A token private key and the certificate it belongs to.
#[derive(Clone)]
pub struct KeyRef {
    pub module: Arc<Module>,
    pub key: TokenKey,
    pub cert: Arc<TokenCert>,
}

/// Every certificate on the tokens present.
pub type Listing = Arc<Vec<Arc<TokenCert>>>;

#[derive(Default)]
struct State {
    /// Bumped by everything that makes cached listings and keys stale.
    generation: u64,
    certs: Option<(Instant, u64, Listing)>,
    keys: HashMap<[u8; 32], (u64, KeyRef)>,
    /// When each logged-in token (module, slot) was last used.
    last_use: HashMap<(PathBuf, u64), Instant>,
}

/// The PKCS#11 side of [`TlsContext`]: caches and login bookkeeping.
#[derive(Default)]
pub struct HwTokens {
    state: Mutex<State>,
    /// Taken for a login that asks the user, so two requests needing the
    /// same token do not ask for its PIN twice: the second finds it logged
    /// in. Never taken by the event loop.
    login: Mutex<()>,
}

impl HwTokens {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets every listing and key found: a token came, went, or logged
    /// in or out (a login shows keys a token hides until then).
    pub fn invalidate(&self) {
        let stale = {
            let mut st = self.state();
            st.generation += 1;
            (st.certs.take(), std::mem::take(&mut st.keys))
        };
        // Dropped unlocked: they may hold the last reference to a module
        // the policy no longer names, whose unloading (C_Finalize) may take
        // up to its timeout, and the event loop takes this lock.
        drop(stale);
    }

    fn used(&self, token: &pkcs11::TokenInfo) {
        self.state().last_use.insert((token.module.clone(), token.slot), Instant::now());
    }

    /// A token key found before and still valid, without asking any module.
    pub fn ready_key(&self, cert_sha256: &[u8; 32]) -> Option<KeyRef> {
        let st = self.state();
        st.keys.get(cert_sha256).filter(|(g, _)| *g == st.generation).map(|(_, k)| k.clone())
    }
}

/// A call running this long means the module is slow or hung (or waits
/// for a PIN pad): listings leave it out rather than queue behind it.
const BUSY: Duration = Duration::from_millis(200);

/// The loaded modules not busy with a long call, for listings that must
/// not wait for one (a hung module must not slow down certificate lists
/// of the soft token); each left out is logged.
fn answering_modules(ctx: &TlsContext) -> Vec<Arc<Module>> {
    let mut all = ctx.pkcs11_modules();
    all.retain(|m| {
        let busy = m.busy_for(BUSY);
        if busy {
            tracing::debug!(module = %m.path().display(), "busy with a long call: left out of this listing");
        }
        !busy
    });
    all
}

/// The URI of a token as applications name it.
pub fn token_uri(t: &pkcs11::TokenInfo) -> String {
    pkcs11::uri::token_uri(t)
}

fn token_flags(t: &pkcs11::TokenInfo, logged_in: bool) -> u32 {
    let f = &t.flags;
    [
        (logged_in, proto::TOKEN_LOGGED_IN),
        (f.login_required, proto::TOKEN_LOGIN_REQUIRED),
        (f.protected_authentication_path, proto::TOKEN_PIN_PAD),
        (f.write_protected, proto::TOKEN_WRITE_PROTECTED),
        (f.user_pin_count_low, proto::TOKEN_PIN_COUNT_LOW),
        (f.user_pin_final_try, proto::TOKEN_PIN_FINAL_TRY),
        (f.user_pin_locked, proto::TOKEN_PIN_LOCKED),
        (f.token_initialized, proto::TOKEN_INITIALIZED),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .fold(0, |acc, (_, bit)| acc | bit)
}

/// The entry of psm's own soft token in token lists.
pub const SOFT_TOKEN_LABEL: &str = "psm soft token";

fn soft_token(ctx: &TlsContext, session: u64) -> proto::TokenInfo {
    let (has_password, _) = ctx.token.summary();
    let logged_in = ctx.token.master(session).is_ok();
    let mut flags = proto::TOKEN_SOFT | proto::TOKEN_INITIALIZED;
    if has_password {
        flags |= proto::TOKEN_LOGIN_REQUIRED;
    }
    if logged_in {
        flags |= proto::TOKEN_LOGGED_IN;
    }
    proto::TokenInfo {
        uri: soft_token_uri(),
        label: SOFT_TOKEN_LABEL.into(),
        manufacturer: "psm".into(),
        model: "soft token".into(),
        serial: String::new(),
        module: String::new(),
        module_description: String::new(),
        slot: 0,
        slot_description: String::new(),
        flags,
    }
}

fn soft_token_uri() -> String {
    "pkcs11:model=soft%20token;manufacturer=psm;token=psm%20soft%20token".into()
}

/// `TokenList`: the soft token (as `session` sees it), then every token in
/// a slot of a loaded module. A module that fails is logged and left out.
pub fn list(ctx: &TlsContext, session: u64) -> Vec<proto::TokenInfo> {
    let mut out = vec![soft_token(ctx, session)];
    for m in answering_modules(ctx) {
        let tokens = match m.tokens() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(module = %m.path().display(), "PKCS#11 module left out of the token list: {}", e.message);
                continue;
            }
        };
        for t in tokens {
            let logged_in = t.flags.token_initialized && m.logged_in(&t).unwrap_or(false);
            out.push(proto::TokenInfo {
                uri: token_uri(&t),
                flags: token_flags(&t, logged_in),
                label: t.label,
                manufacturer: t.manufacturer,
                model: t.model,
                serial: t.serial,
                module: t.module.display().to_string(),
                module_description: t.library.description.clone(),
                slot: t.slot,
                slot_description: t.slot_description,
            });
        }
    }
    out
}

/// The one token `uri` names, with its module.
fn find_token(ctx: &TlsContext, uri: &str) -> Result<(Arc<Module>, pkcs11::TokenInfo), Error> {
    let mut found = pkcs11::matching_tokens(&ctx.pkcs11_modules(), &Pkcs11Uri::parse(uri)?)?;
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::new(Code::PSM_ERR_NOT_FOUND, "no token present matches the PKCS#11 URI")),
        n => Err(Error::new(
            Code::PSM_ERR_INVALID_ARGUMENT,
            format!("{n} tokens match the PKCS#11 URI; add serial= or token= to name one"),
        )),
    }
}

/// Whether `uri` names psm's soft token rather than a module's token.
pub fn is_soft_token(uri: &str) -> bool {
    Pkcs11Uri::parse(uri).is_ok_and(|u| {
        u.token.as_deref() == Some(SOFT_TOKEN_LABEL) && u.manufacturer.as_deref().is_none_or(|m| m == "psm")
    })
}

/// Logs in to a module's token: with `pin`, or on its PIN pad, or by
/// asking the user at `to` (again after a wrong PIN). Being logged in
/// already is success, as it is for the card.
pub fn login(
    ctx: &TlsContext,
    session: u64,
    to: Option<ReplyTo>,
    module: &Module,
    token: &pkcs11::TokenInfo,
    pin: Option<Zeroizing<String>>,
    purpose: &str,
) -> Result<(), Error> {
    if !token.flags.login_required || module.logged_in(token)? {
        ctx.hw.used(token);
        return Ok(());
    }
    let _one_at_a_time = ctx.hw.login.lock().unwrap_or_else(|p| p.into_inner());
    if module.logged_in(token)? {
        // Another request logged it in while this one waited.
        ctx.hw.used(token);
        return Ok(());
    }
    let result = match (pin, to) {
        (Some(pin), _) => module.login(token, Some(pin)),
        (None, _) if token.flags.protected_authentication_path => module.login(token, None),
        (None, Some(to)) => {
            let q = Question {
                kind: PageKind::Prompt(PromptKind::Password),
                message: format!("Enter the PIN of your token \"{}\": {purpose}.", token.label),
                details: serde_json::json!({
                    "token": token.label,
                    "manufacturer": token.manufacturer,
                    "model": token.model,
                    "serial": token.serial,
                    "purpose": purpose,
                    "pin": true,
                }),
                choices: Vec::new(),
            };
            ctx.prompts.ask_until(to, q, PIN_TRIES, |pin| {
                match module.login(token, Some(Zeroizing::new(pin.0.clone()))) {
                    Ok(()) => Check::Accept,
                    Err(e) if e.code == Code::PSM_ERR_BAD_PASSWORD => {
                        Check::Retry(Error::new(Code::PSM_ERR_BAD_PASSWORD, "That PIN was wrong."))
                    }
                    Err(e) => Check::Fail(e),
                }
            })
        }
        (None, None) => Err(Error::new(
            Code::PSM_ERR_LOGIN_REQUIRED,
            format!(
                "token \"{}\" needs its PIN to {purpose}: log in first (psm_token_login_to), or let psm ask \
                 (a prompt handler, or dialogs)",
                token.label
            ),
        )),
    };
    match &result {
        Ok(()) => {
            tracing::info!(token = %token.label, module = %token.module.display(), "PKCS#11 token logged in");
            ctx.hw.invalidate();
            ctx.hw.used(token);
            ctx.token.changed();
        }
        // The module may still finish the login after psm stopped waiting:
        // the idle timeout then logs the token out.
        Err(e) if e.code == Code::PSM_ERR_TIMEOUT => ctx.hw.used(token),
        Err(_) => {}
    }
    ctx.audit.record_result(session, "token-login", || token.label.clone(), &result);
    result
}

/// `TokenLoginTo` for a module's token.
pub fn login_to(
    ctx: &TlsContext,
    session: u64,
    to: Option<ReplyTo>,
    uri: &str,
    pin: Option<Zeroizing<String>>,
) -> Result<(), Error> {
    let (module, token) = find_token(ctx, uri)?;
    login(ctx, session, to, &module, &token, pin, "log in")
}

/// `TokenLogoutFrom` for a module's token.
pub fn logout_from(ctx: &TlsContext, uri: &str) -> Result<(), Error> {
    let (module, token) = find_token(ctx, uri)?;
    module.logout(&token)?;
    log_out_done(ctx, &token, "asked");
    Ok(())
}

fn log_out_done(ctx: &TlsContext, token: &pkcs11::TokenInfo, why: &str) {
    tracing::info!(token = %token.label, why, "PKCS#11 token logged out");
    ctx.hw.state().last_use.remove(&(token.module.clone(), token.slot));
    ctx.hw.invalidate();
    ctx.token.changed();
}

/// Every certificate on every token present, listed at most
/// [`CERTS_TTL`] ago. Modules that fail are logged and skipped.
pub fn certificates(ctx: &TlsContext) -> Listing {
    listing(ctx, false)
}

/// The listing; with `wait`, modules busy with a long call are waited for
/// (up to their timeout) instead of left out. Only a listing of every
/// module is kept for reuse.
fn listing(ctx: &TlsContext, wait: bool) -> Listing {
    let generation = {
        let st = ctx.hw.state();
        if let Some((at, g, certs)) = &st.certs
            && *g == st.generation
            && at.elapsed() < CERTS_TTL
        {
            return certs.clone();
        }
        st.generation
    };
    let any = Pkcs11Uri::default();
    let mut out = Vec::new();
    let modules = if wait { ctx.pkcs11_modules() } else { answering_modules(ctx) };
    let complete = modules.len() == ctx.pkcs11_modules().len();
    for m in modules {
        let tokens = match m.tokens() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(module = %m.path().display(), "cannot list PKCS#11 tokens: {}", e.message);
                continue;
            }
        };
        for t in tokens.into_iter().filter(|t| t.flags.token_initialized) {
            let certs = match m.certificates(&t, &any) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(token = %t.label, "cannot list the token's certificates: {}", e.message);
                    continue;
                }
            };
            for cert in certs {
                match describe(&m, cert) {
                    Ok(c) => out.push(Arc::new(c)),
                    Err(e) => tracing::debug!(token = %t.label, "token certificate skipped: {}", e.message),
                }
            }
        }
    }
    let out = Arc::new(out);
    let mut st = ctx.hw.state();
    if st.generation == generation && complete {
        st.certs = Some((Instant::now(), generation, out.clone()));
    }
    out
}

fn describe(module: &Arc<Module>, cert: pkcs11::TokenCertificate) -> Result<TokenCert, Error> {
    let parsed = crate::pki::cert::parse(&cert.der)?;
    let has_key = module.has_key_pair(&cert.token, &cert.object.id)?;
    let nickname = format!("{}:{}", cert.token.label, cert.object.label);
    let mut info = parsed.info(&nickname, 0, false, has_key);
    info.token = cert.token.label.clone();
    info.uri = pkcs11::uri::object_uri(&cert.token, &cert.object);
    Ok(TokenCert { module: module.clone(), sha256: parsed.sha256, cert, info })
}

/// The token certificate with this SHA-256, if a token present holds it.
pub fn cert_by_sha256(ctx: &TlsContext, sha256: &[u8; 32]) -> Option<Arc<TokenCert>> {
    let find = |l: Listing| l.iter().find(|c| c.sha256 == *sha256).cloned();
    // A key's certificate is worth waiting for: its module may be busy
    // with another signature (a smart card's RSA takes a second).
    find(certificates(ctx)).or_else(|| find(listing(ctx, true)))
}

/// Token certificates for a `CertFind` query: a PKCS#11 URI (searched on
/// the tokens it names), "sha256:<hex>", an e-mail address, or a
/// "token:object" nickname.
pub fn find(ctx: &TlsContext, query: &str) -> Result<Vec<Arc<TokenCert>>, Error> {
    if pkcs11::is_pkcs11_uri(query) {
        let uri = Pkcs11Uri::parse(query)?;
        if uri.object_type.is_some_and(|t| t != pkcs11::ObjectType::Certificate) {
            return Err(Error::new(
                Code::PSM_ERR_INVALID_ARGUMENT,
                "the PKCS#11 URI names objects that are not certificates (type=cert names certificates)",
            ));
        }
        return Ok(certificates(ctx)
            .iter()
            .filter(|c| uri.matches_token(&c.cert.token) && uri.matches_object(&c.cert.object))
            .cloned()
            .collect());
    }
    let all = certificates(ctx);
    let found = if query.starts_with("sha256:") {
        let fp = crate::store::parse_fingerprint(query)?;
        all.iter().filter(|c| c.sha256 == fp).cloned().collect()
    } else if query.contains('@') {
        let email = crate::pki::cert::normalize_email(query);
        all.iter().filter(|c| c.info.emails.contains(&email)).cloned().collect()
    } else {
        all.iter().filter(|c| c.info.nickname == query).cloned().collect()
    };
    Ok(found)
}

/// A certificate as `psm_cert_find` names it: the store's first (marked
/// with the token that holds it too, if one does), then the tokens'. A
/// PKCS#11 URI is looked up on the tokens it names only. The store is not
/// held while the tokens answer.
pub fn find_cert(ctx: &TlsContext, query: &str) -> Result<CertInfo, Error> {
    let tokens = !ctx.pkcs11_modules().is_empty();
    if !pkcs11::is_pkcs11_uri(query) {
        let stored = ctx.lock_store().find(query);
        match stored {
            Ok(mut c) => {
                if tokens {
                    merge_into(std::slice::from_mut(&mut c), &certificates(ctx));
                }
                return Ok(c);
            }
            Err(e) if e.code != Code::PSM_ERR_NOT_FOUND || !tokens => return Err(e),
            Err(_) => {}
        }
    }
    let found = find(ctx, query)?;
    if pkcs11::is_pkcs11_uri(query) && found.len() > 1 {
        return Err(Error::new(
            Code::PSM_ERR_INVALID_ARGUMENT,
            format!(
                "{} certificates match the PKCS#11 URI; name one with token=, object= or id=",
                found.len()
            ),
        ));
    }
    // Like the store's e-mail lookup: the one valid longest.
    let best = found.iter().max_by_key(|c| c.info.not_after).ok_or_else(|| {
        Error::new(
            Code::PSM_ERR_NOT_FOUND,
            format!("no certificate in psm or on a token matches \"{query}\""),
        )
    })?;
    Ok(best.info.clone())
}

/// The token key of the certificate `cert_sha256`, the token logged in
/// (asking the user at `to` if needed and allowed). `Ok(None)`: no token
/// holds that certificate.
pub fn key_for(
    ctx: &TlsContext,
    session: u64,
    to: Option<ReplyTo>,
    cert_sha256: &[u8; 32],
    purpose: &str,
) -> Result<Option<KeyRef>, Error> {
    if let Some(k) = ctx.hw.ready_key(cert_sha256) {
        ctx.hw.used(&k.key.token);
        return Ok(Some(k));
    }
    let Some(cert) = cert_by_sha256(ctx, cert_sha256) else { return Ok(None) };
    let module = cert.module.clone();
    let token = &cert.cert.token;
    if cert.cert.object.id.is_empty() {
        return Err(Error::new(
            Code::PSM_ERR_NOT_FOUND,
            format!(
                "certificate {} on token \"{}\" has no CKA_ID to find its key by",
                cert.info.nickname, token.label
            ),
        ));
    }
    login(ctx, session, to, &module, token, None, purpose)?;
    // Keys found under the login state of now: a removal or logout that
    // comes while they are looked up makes them stale, and they are then
    // not kept.
    let generation = ctx.hw.state().generation;
    let uri = Pkcs11Uri {
        serial: Some(token.serial.clone()),
        token: Some(token.label.clone()),
        id: Some(cert.cert.object.id.clone()),
        object_type: Some(pkcs11::ObjectType::PrivateKey),
        ..Default::default()
    };
    let key = pkcs11::find_key(std::slice::from_ref(&module), &uri)?;
    let k = KeyRef { module, key, cert };
    let mut st = ctx.hw.state();
    if st.generation == generation {
        st.keys.insert(*cert_sha256, (generation, k.clone()));
    }
    Ok(Some(k))
}

/// Signs `data` with a token key: DER for ECDSA, as the soft token's. A
/// login lost behind psm's back (removal, the token's own timeout) forgets
/// the keys found, to be found again after the next login.
pub fn sign(ctx: &TlsContext, key: &KeyRef, alg: SigAlg, data: &[u8]) -> Result<Vec<u8>, Error> {
    let sig = key.module.sign(&key.key, alg, data).inspect_err(|e| {
        if e.code == Code::PSM_ERR_LOGIN_REQUIRED {
            ctx.hw.invalidate();
        }
    })?;
    ctx.hw.used(&key.key.token);
    match alg {
        SigAlg::EcdsaSha256 | SigAlg::EcdsaSha384 => pkcs11::sign::ecdsa_raw_to_der(&sig),
        _ => Ok(sig),
    }
}

/// Marks the stored certificates of a listing that a token holds too with
/// that token (and its key, when the token has it).
pub fn merge_into(listing: &mut [CertInfo], token_certs: &[Arc<TokenCert>]) {
    for c in token_certs {
        if let Some(stored) = listing.iter_mut().find(|s| s.sha256_hex == c.info.sha256_hex) {
            stored.token = c.info.token.clone();
            stored.uri = c.info.uri.clone();
            stored.has_private_key |= c.info.has_private_key;
        }
    }
}

/// Completes a store listing made with `filter` (`CERTS_*`) with the
/// tokens present: stored certificates a token holds too are marked with
/// it, and the tokens' certificates that match the filter are added.
pub fn add_token_certs(ctx: &TlsContext, listing: &mut Vec<CertInfo>, filter: u32) {
    if ctx.pkcs11_modules().is_empty() {
        return;
    }
    let on_tokens = certificates(ctx);
    merge_into(listing, &on_tokens);
    for c in on_tokens.iter() {
        if crate::store::matches_filter(&c.info, filter)
            && !listing.iter().any(|s| s.sha256_hex == c.info.sha256_hex)
        {
            listing.push(c.info.clone());
        }
    }
}

/// Watches the modules' slots: reports insertions and removals (as
/// TOKEN_CHANGED to every application), forgets what a removed token
/// showed, and logs out tokens left unused longer than the policy allows.
pub fn spawn_watcher(ctx: Arc<TlsContext>) {
    // What is present now is no news: the first look happens before psmd
    // serves anyone, so a token pulled out right after start is reported.
    let mut presence = Presence::default();
    let first = ctx.pkcs11_modules();
    presence.poll(&first);
    let mut watched: Vec<PathBuf> = first.iter().map(|m| m.path().to_path_buf()).collect();
    let spawned = std::thread::Builder::new().name("pkcs11-watch".into()).spawn(move || {
        loop {
            std::thread::sleep(POLL_INTERVAL);
            // A module busy with a long call (a PIN pad, a hung token) is
            // left alone: asking it would wait behind that call.
            let all = ctx.pkcs11_modules();
            let paths: Vec<PathBuf> = all.iter().map(|m| m.path().to_path_buf()).collect();
            let modules: Vec<Arc<Module>> = all.iter().filter(|m| !m.busy_for(POLL_INTERVAL)).cloned().collect();
            if paths != watched {
                // A reload changed the modules: start over, without
                // announcing every token of a new module as inserted.
                presence = Presence::default();
                presence.poll(&modules);
                watched = paths;
                ctx.hw.invalidate();
                continue;
            }
            let changes = presence.poll(&modules);
            for change in &changes {
                match change {
                    PresenceChange::Inserted { module, slot } => {
                        tracing::info!(module = %module.display(), slot, "PKCS#11 token inserted")
                    }
                    PresenceChange::Removed { module, slot } => {
                        tracing::info!(module = %module.display(), slot, "PKCS#11 token removed; it is logged out");
                        ctx.hw.state().last_use.remove(&(module.clone(), *slot));
                    }
                }
            }
            if !changes.is_empty() {
                ctx.hw.invalidate();
                ctx.token.changed();
                ctx.mailbox.post(crate::mailbox::LoopMsg::Changed);
            }
            log_out_idle(&ctx, &all);
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the PKCS#11 token watcher: {e}");
    }
}

/// Logs out the tokens unused for longer than the policy's idle timeout.
fn log_out_idle(ctx: &TlsContext, all: &[Arc<Module>]) {
    let idle = Duration::from_secs(ctx.policy().idle_timeout_secs);
    let stale: Vec<(PathBuf, u64)> = ctx
        .hw
        .state()
        .last_use
        .iter()
        .filter(|(_, at)| at.elapsed() >= idle)
        .map(|(k, _)| k.clone())
        .collect();
    for (path, slot) in stale {
        let Some(m) = all.iter().find(|m| m.path() == path) else {
            ctx.hw.state().last_use.remove(&(path, slot));
            continue;
        };
        if m.busy_for(POLL_INTERVAL) {
            continue; // next time: logging out would wait behind its call
        }
        let Ok(tokens) = m.tokens() else { continue };
        match tokens.iter().find(|t| t.slot == slot) {
            Some(t) => match m.logout(t) {
                Ok(()) => {
                    log_out_done(ctx, t, "idle");
                    ctx.mailbox.post(crate::mailbox::LoopMsg::Changed);
                }
                Err(e) => tracing::warn!(token = %t.label, "cannot log out an idle token: {}", e.message),
            },
            None => {
                ctx.hw.state().last_use.remove(&(path, slot));
            }
        }
    }
}

/// The token key as an OpenSSL key (for CMS): OpenSSL hands each private
/// key operation to the token.
pub fn openssl_key(key: &KeyRef) -> Result<crate::pki::keys::LoadedKey, Error> {
    let pkey = pkcs11::ossl::token_pkey(key.module.clone(), key.key.clone(), &key.cert.cert.der)?;
    Ok(crate::pki::keys::LoadedKey::on_token(pkey))
}
