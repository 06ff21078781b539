//! TLS data channels ("SSL wrap"). An application asks for a secure
//! connection and gets a plaintext data channel; psmd runs TLS with rustls.
//!
//! - [`handshake`]: resolving, connecting (directly or through an HTTP
//!   proxy) and the handshake, on a thread of its own per connection, since
//!   a handshake may wait for DNS, a slow server or the user's answer;
//! - [`verifier`]: the server certificate, checked against the store's
//!   trust settings and the user's overrides, asking the user when allowed;
//! - [`client_auth`]: client certificates from the store, keys used inside psmd;
//! - [`relay`]: after the handshake, the event loop moves bytes between the
//!   application's channel and the network, with bounded buffers;
//! - [`info`]: what `SslInfo` reports.

pub mod client_auth;
pub mod handshake;
pub mod info;
pub mod relay;
pub mod token_key;
pub mod verifier;

pub use handshake::{Established, HandshakeDone};

use crate::mailbox::Mailbox;
use crate::pki::verify::TrustSet;
use crate::prompt::Prompts;
use crate::store::Store;
use crate::token::TokenState;
use psm::proto::CertUsage;
use psm::{Code, Error};
use rustls::client::ClientSessionMemoryCache;
use rustls::crypto::CryptoProvider;
use rustls::server::ServerSessionMemoryCache;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A verification result: code, detail, and the override used ("once",
/// "always") if any.
pub type Verification = (Code, String, Option<&'static str>);

/// Servers whose TLS sessions psmd remembers for resumption, shared by all
/// applications.
const RESUMPTION_CACHE_SERVERS: usize = 1024;
/// Sessions remembered per certificate psmd presents as a server.
const SERVER_SESSIONS_PER_CERT: usize = 256;
/// Handshakes (each on its own thread) running at once.
pub const MAX_HANDSHAKES: usize = 512;

/// A value and the store generation it was built at.
type Generational<T> = (u64, Arc<T>);

/// How long one PKCS#11 call may take before its module counts as hung.
pub const PKCS11_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The PKCS#11 modules loaded for the policy in force.
#[derive(Default)]
pub struct Pkcs11State {
    pub paths: Vec<std::path::PathBuf>,
    pub modules: Option<crate::pkcs11::Modules>,
    pub errors: Vec<(std::path::PathBuf, String)>,
}

/// What every TLS connection shares: the crypto provider, the resumption
/// caches, the verifier's view of the store, and the way to ask the user.
pub struct TlsContext {
    pub provider: Arc<CryptoProvider>,
    /// Client sessions for resumption, and the store generation they were
    /// made under: a change of trust settings (a CRL, a distrust) empties it.
    resumption: Mutex<(u64, Arc<ClientSessionMemoryCache>)>,
    /// How the certificate of each resumable session was accepted.
    verdicts: Mutex<HashMap<String, Verification>>,
    /// Server-side session caches, one per certificate presented: rustls
    /// resumes a server session without looking at the certificate, so a
    /// shared cache would let a client resume into a listener presenting
    /// another certificate.
    server_sessions: Mutex<HashMap<[u8; 32], Arc<ServerSessionMemoryCache>>>,
    pub store: Arc<Mutex<Store>>,
    pub token: Arc<TokenState>,
    pub prompts: Arc<Prompts>,
    pub mailbox: Arc<Mailbox>,
    /// Shared by every client connection (rustls resumes only between
    /// connections with the same instances).
    pub verifier: Arc<verifier::SharedVerifier>,
    pub client_certs: Arc<client_auth::SharedClientCerts>,
    pub threads: Arc<handshake::Threads>,
    /// The trust set of each usage and the store generation it was built at.
    trust: Mutex<[Option<Generational<TrustSet>>; 5]>,
    /// S/MIME signers' and recipients' certificates, checked and ready.
    pub smime: crate::ops::smime::Cache,
    /// Verdicts on messages given to each session, for `SmimeShowInfo`.
    pub smime_results: crate::ops::view::Verdicts,
    /// The PKCS#11 modules the policy names, as loaded.
    pub pkcs11: Mutex<Pkcs11State>,
    /// What psmd knows of the tokens in those modules' slots.
    pub hw: crate::hwtokens::HwTokens,
    /// What is wrong, though psmd runs it, with the policy in force (it
    /// distrusts every anchor): logged and shown in Status.
    pub policy_warnings: Mutex<Vec<String>>,
    /// The audit log (when the policy turns it on).
    pub audit: crate::audit::Audit,
    /// The provider cut down to the policy's suites and groups, and the
    /// policy hash it was made for.
    policy_provider: Mutex<Option<(Option<String>, Arc<CryptoProvider>)>>,
    /// The system policy in force (replaced whole on reload).
    policy: std::sync::RwLock<Arc<crate::policy::Policy>>,
    running: AtomicUsize,
}

impl TlsContext {
    pub fn new(
        store: Arc<Mutex<Store>>,
        token: Arc<TokenState>,
        prompts: Arc<Prompts>,
        mailbox: Arc<Mailbox>,
    ) -> TlsContext {
        // aws-lc-rs with X25519MLKEM768 preferred, the rustls default.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        TlsContext {
            verifier: Arc::new(verifier::SharedVerifier { provider: provider.clone() }),
            client_certs: Arc::new(client_auth::SharedClientCerts),
            provider,
            resumption: Mutex::new((
                u64::MAX,
                Arc::new(ClientSessionMemoryCache::new(RESUMPTION_CACHE_SERVERS)),
            )),
            verdicts: Mutex::new(HashMap::new()),
            server_sessions: Mutex::new(HashMap::new()),
            store,
            token,
            prompts,
            mailbox,
            threads: Arc::new(handshake::Threads::default()),
            trust: Mutex::new(Default::default()),
            smime: Default::default(),
            smime_results: Default::default(),
            pkcs11: Default::default(),
            hw: Default::default(),
            policy_warnings: Default::default(),
            policy: Default::default(),
            audit: Default::default(),
            policy_provider: Mutex::new(None),
            running: AtomicUsize::new(0),
        }
    }

    /// The crypto provider for new connections: rustls's default, with
    /// only the cipher suites and key exchange groups the policy allows,
    /// in its order.
    pub fn tls_provider(&self) -> Arc<CryptoProvider> {
        let policy = self.policy();
        if policy.cipher_suites.is_none() && policy.groups.is_none() {
            return self.provider.clone();
        }
        let mut cached = self.policy_provider.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((hash, p)) = &*cached
            && *hash == policy.sha256
        {
            return p.clone();
        }
        let mut p = (*self.provider).clone();
        if let Some(names) = &policy.cipher_suites {
            p.cipher_suites = names
                .iter()
                .filter_map(|n| {
                    self.provider.cipher_suites.iter().find(|s| format!("{:?}", s.suite()) == *n).copied()
                })
                .collect();
        }
        if let Some(names) = &policy.groups {
            p.kx_groups = names
                .iter()
                .filter_map(|n| {
                    self.provider.kx_groups.iter().find(|g| format!("{:?}", g.name()) == *n).copied()
                })
                .collect();
        }
        let p = Arc::new(p);
        *cached = Some((policy.sha256.clone(), p.clone()));
        p
    }

    /// The system policy in force.
    pub fn policy(&self) -> Arc<crate::policy::Policy> {
        self.policy.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `p` in force; true if it differs from the policy it replaces.
    pub fn set_policy(&self, p: crate::policy::Policy) -> bool {
        self.token.set_idle_timeout(p.idle_timeout_secs);
        self.prompts.set_app_passwords(p.app_password_prompts);
        self.audit.configure(None, p.audit);
        let mut cur = self.policy.write().unwrap_or_else(|p| p.into_inner());
        let changed = **cur != p;
        *cur = Arc::new(p);
        drop(cur);
        self.load_modules();
        let warnings =
            crate::ops::cert::policy_warnings(&self.lock_store(), &self.policy()).unwrap_or_default();
        for w in &warnings {
            tracing::error!("policy: {w}");
        }
        *self.policy_warnings.lock().unwrap_or_else(|p| p.into_inner()) = warnings;
        if changed {
            // Everything judged under the old trust settings is judged again:
            // trust sets, S/MIME verdicts, and TLS sessions to resume.
            *self.trust.lock().unwrap_or_else(|p| p.into_inner()) = Default::default();
            self.smime.clear();
            self.resumption.lock().unwrap_or_else(|p| p.into_inner()).0 = u64::MAX;
        }
        changed
    }

    /// Loads the PKCS#11 modules the policy names when the list changed
    /// (at start and on reload); the ones that fail are reported in Status
    /// and the others carry on. No other module is ever loaded.
    fn load_modules(&self) {
        let wanted = self.policy().pkcs11_modules.clone();
        let mut st = self.pkcs11.lock().unwrap_or_else(|p| p.into_inner());
        if st.paths == wanted && (st.modules.is_some() || wanted.is_empty()) {
            return;
        }
        st.paths = wanted.clone();
        st.errors.clear();
        st.modules = None;
        // Keys and certificates found on the modules let go of are stale.
        self.hw.invalidate();
        if wanted.is_empty() {
            return;
        }
        let mut modules = crate::pkcs11::Modules::new(&wanted, PKCS11_TIMEOUT);
        for (path, e) in modules.load_all() {
            tracing::warn!(module = %path.display(), "PKCS#11 module not loaded: {}", e.message);
            st.errors.push((path, e.message));
        }
        tracing::info!(loaded = modules.loaded().len(), "PKCS#11 modules from the policy");
        st.modules = Some(modules);
    }

    /// The loaded PKCS#11 modules, to call without holding any lock: a
    /// module may take up to its timeout to answer.
    pub fn pkcs11_modules(&self) -> Vec<Arc<crate::pkcs11::Module>> {
        let st = self.pkcs11.lock().unwrap_or_else(|p| p.into_inner());
        st.modules.as_ref().map(|m| m.loaded().to_vec()).unwrap_or_default()
    }

    /// The modules for Status: each path the policy names, loaded or why not.
    pub fn pkcs11_json(&self) -> serde_json::Value {
        let st = self.pkcs11.lock().unwrap_or_else(|p| p.into_inner());
        let loaded: Vec<&Arc<crate::pkcs11::Module>> =
            st.modules.iter().flat_map(|m| m.loaded().iter()).collect();
        let list: Vec<serde_json::Value> = st
            .paths
            .iter()
            .map(|p| {
                let canonical = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
                let error = st.errors.iter().find(|(e, _)| e == p).map(|(_, m)| m.clone());
                let module = loaded.iter().find(|m| m.path() == canonical);
                // A call running past the timeout: the module is hung, and
                // its calls fail at once until that one returns.
                let hung = module
                    .and_then(|m| m.hung())
                    .map(|(call, for_)| serde_json::json!({ "call": call, "seconds": for_.as_secs() }));
                serde_json::json!({
                    "path": p.display().to_string(),
                    "loaded": error.is_none() && module.is_some(),
                    "error": error,
                    "hung": hung,
                })
            })
            .collect();
        serde_json::json!({ "modules": list })
    }

    pub fn lock_store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store's trust settings for TLS servers, rebuilt only after the
    /// store changed.
    pub fn server_trust(&self) -> Result<Arc<TrustSet>, Error> {
        let store = self.lock_store();
        self.trust_for(&store, CertUsage::TlsServer)
    }

    /// The store's trust settings for `usage` (the caller holds the store),
    /// rebuilt only after the store changed.
    pub fn trust_for(&self, store: &Store, usage: CertUsage) -> Result<Arc<TrustSet>, Error> {
        let generation = store.generation();
        let slot = match usage {
            CertUsage::TlsServer => 0,
            CertUsage::TlsClient => 1,
            CertUsage::EmailSigner => 2,
            CertUsage::EmailRecipient => 3,
            CertUsage::CodeSigning => 4,
        };
        let mut cached = self.trust.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((g, set)) = &cached[slot]
            && *g == generation
        {
            return Ok(set.clone());
        }
        let mut set = crate::ops::cert::trust_set(store, usage)?;
        crate::ops::cert::apply_policy(&mut set, &self.policy());
        let set = Arc::new(set);
        cached[slot] = Some((generation, set.clone()));
        Ok(set)
    }

    /// The server session cache for connections presenting `cert`.
    pub fn server_sessions(&self, cert: &[u8; 32]) -> Arc<ServerSessionMemoryCache> {
        let mut caches = self.server_sessions.lock().unwrap_or_else(|p| p.into_inner());
        if caches.len() >= RESUMPTION_CACHE_SERVERS && !caches.contains_key(cert) {
            caches.clear();
        }
        caches.entry(*cert).or_insert_with(|| ServerSessionMemoryCache::new(SERVER_SESSIONS_PER_CERT)).clone()
    }

    /// The resumption cache, emptied first if the store changed since.
    pub fn resumption_cache(&self) -> Result<Arc<ClientSessionMemoryCache>, Error> {
        let generation = self.lock_store().generation();
        let mut cache = self.resumption.lock().unwrap_or_else(|p| p.into_inner());
        if cache.0 != generation {
            *cache = (generation, Arc::new(ClientSessionMemoryCache::new(RESUMPTION_CACHE_SERVERS)));
            self.verdicts.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        Ok(cache.1.clone())
    }

    pub fn remember_verification(&self, host: &str, v: Verification) {
        let mut verdicts = self.verdicts.lock().unwrap_or_else(|p| p.into_inner());
        if verdicts.len() >= RESUMPTION_CACHE_SERVERS {
            verdicts.clear();
        }
        verdicts.insert(host.to_ascii_lowercase(), v);
    }

    pub fn remembered_verification(&self, host: &str) -> Option<Verification> {
        self.verdicts.lock().unwrap_or_else(|p| p.into_inner()).get(&host.to_ascii_lowercase()).cloned()
    }

    /// Counts a handshake thread in; `PSM_ERR_BUSY` past the limit.
    fn enter(&self) -> Result<(), Error> {
        if self.running.fetch_add(1, Ordering::AcqRel) >= MAX_HANDSHAKES {
            self.running.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::new(
                Code::PSM_ERR_BUSY,
                format!("{MAX_HANDSHAKES} TLS handshakes are already running; try again"),
            ));
        }
        Ok(())
    }

    fn leave(&self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Seconds since 1970, for the verifier.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
