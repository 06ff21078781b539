//! One session per connected application: who it is, what it holds, and
//! the dispatch of its requests to the op handlers.

use crate::channel::ChannelOp;
use crate::ops;
use crate::pool::Work;
use crate::store::Store;
use psm::proto::{FrameError, Reply, Request, RequestFrame, decode_request};
use psm::{Code, Error};
use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What every request may read: daemon-wide figures for Status and the
/// store. Owned by the event loop; handlers get `&Shared`.
pub struct Shared {
    pub started: Instant,
    pub sessions: usize,
    pub channels: usize,
    pub requests_served: u64,
    /// Replies that were errors.
    pub requests_failed: u64,
    /// Replies by request kind: (succeeded, failed).
    pub operations: std::collections::BTreeMap<&'static str, (u64, u64)>,
    pub test_hooks: bool,
    pub workers: usize,
    /// The user's store. Handlers touch it only from the worker pool, so a
    /// slow disk never stalls the event loop.
    pub store: Arc<Mutex<Store>>,
    /// Who is logged in to the soft token.
    pub token: Arc<crate::token::TokenState>,
    /// TLS channels' shared state (resumption, trust, prompts).
    pub tls: Arc<crate::tls::TlsContext>,
}

/// What the event loop must do for a request.
pub enum Outcome {
    Reply(Result<Reply, Error>),
    /// Run on the worker pool; the result is the reply.
    Work(Work),
    /// Create a data channel running this operation; reply `Channel` with its fd.
    OpenChannel(Box<dyn ChannelOp>),
    /// Reply with the channel's result once its input has ended.
    FinishChannel(u64),
    CloseChannel(u64),
    /// Set up a TLS (or plain) channel on a handshake thread.
    Tls(ops::tls::Start),
    /// Start TLS on a plain channel.
    StepUp(u64),
    SslInfo(u64),
    SslPeerCerts(u64),
    /// Show the channel's security in a dialog.
    SslShow(u64),
    /// Daemon status, with the sessions and channels only the loop sees.
    Status,
    /// Run on a blocking thread (may wait for the user); the result is the reply.
    Blocking {
        job: ops::smime::BlockingJob,
        can_prompt: bool,
    },
    /// Open a data channel whose operation runs on a blocking thread.
    Stream {
        job: ops::smime::StreamJob,
        can_prompt: bool,
    },
    /// Read the system policy again.
    PolicyReload,
}

pub struct Session {
    pub id: u64,
    pub pid: i32,
    pub uid: u32,
    /// Set by Hello; nothing else is served before it.
    pub app_name: Option<String>,
    pub hello_flags: u32,
    pub version: u16,
    /// Open data channels: channel id → slab token of the channel.
    pub channels: HashMap<u64, usize>,
    /// Requests on the worker pool not answered yet.
    pub inflight: usize,
    /// TLS handshakes running for this session.
    pub handshakes: usize,
    /// The application's executable (`/proc/PID/exe` at connect time).
    pub exe: Option<String>,
    pub connected: Instant,
    /// The kind of each request not answered yet, for the counters.
    pub pending_kinds: HashMap<u64, &'static str>,
}

impl Session {
    fn blocking(&self, job: ops::smime::BlockingJob) -> Outcome {
        Outcome::Blocking { job, can_prompt: self.can_ask() }
    }

    /// Whether the application answers prompts itself.
    pub fn has_prompt_handler(&self) -> bool {
        self.hello_flags & psm::proto::HELLO_HAS_PROMPT_HANDLER != 0
    }

    /// Whether psm can ask this application's user anything: through its
    /// prompt handler or psm's dialogs.
    pub fn can_ask(&self) -> bool {
        self.hello_flags & (psm::proto::HELLO_HAS_PROMPT_HANDLER | psm::proto::HELLO_CAN_SHOW_DIALOGS) != 0
    }

    /// How psm's questions reach this application's user.
    pub fn ui(&self) -> crate::prompt::SessionUi {
        crate::prompt::SessionUi {
            app: self.app_name.clone().unwrap_or_default(),
            pid: self.pid,
            exe: self.exe.clone(),
            handler: self.has_prompt_handler(),
            dialogs: self.hello_flags & psm::proto::HELLO_CAN_SHOW_DIALOGS != 0,
        }
    }
}

/// The reply to a policy or config check: every problem with its line.
fn problems(found: Option<Vec<crate::policy::Problem>>) -> Outcome {
    let found = found.unwrap_or_default();
    Outcome::Reply(Ok(Reply::Problems(found.into_iter().map(|p| (p.line as u32, p.message)).collect())))
}

/// TLS options raised to what the policy requires (`tls.min_version`).
fn policy_opts(stats: &Shared, mut opts: psm::proto::SslOpts) -> psm::proto::SslOpts {
    let min = stats.tls.policy().min_tls;
    let asked = if opts.min_version == 0 { psm::proto::TLS_1_2 } else { opts.min_version };
    opts.min_version = asked.max(min);
    opts
}

impl Session {
    pub fn new(id: u64, pid: i32, uid: u32) -> Session {
        Session {
            id,
            pid,
            uid,
            app_name: None,
            hello_flags: 0,
            version: 0,
            channels: HashMap::new(),
            inflight: 0,
            handshakes: 0,
            exe: std::fs::read_link(format!("/proc/{pid}/exe")).ok().map(|p| p.display().to_string()),
            connected: Instant::now(),
            pending_kinds: HashMap::new(),
        }
    }

    /// Decodes and dispatches one frame body: `Ok((request id, outcome))`,
    /// or `Err(why)` when the frame is so broken the connection must close.
    /// `fds` holds the descriptors received on the connection, oldest
    /// first; a request that carries one takes it.
    pub fn handle_frame(
        &mut self,
        stats: &Shared,
        body: &[u8],
        fds: &mut VecDeque<OwnedFd>,
    ) -> Result<(u64, Outcome), FrameError> {
        match decode_request(body) {
            Ok(RequestFrame { id, request }) => {
                let fd = if request.fd_count() > 0 { fds.pop_front() } else { None };
                self.pending_kinds.insert(id, request.kind());
                Ok((id, self.dispatch(stats, request, fd)))
            }
            Err(FrameError::UnknownKind { id, kind }) => Ok((
                id,
                Outcome::Reply(Err(Error::new(
                    Code::PSM_ERR_UNSUPPORTED,
                    format!(
                        "request kind {kind} is unknown to psmd {}; upgrade psmd",
                        env!("CARGO_PKG_VERSION")
                    ),
                ))),
            )),
            Err(FrameError::Malformed { id }) => {
                Ok((id, Outcome::Reply(Err(Error::new(Code::PSM_ERR_PROTOCOL, "malformed request")))))
            }
            Err(e) => Err(e),
        }
    }

    pub fn dispatch(&mut self, stats: &Shared, request: Request, fd: Option<OwnedFd>) -> Outcome {
        tracing::trace!(session = self.id, kind = request.kind(), "request");
        if self.app_name.is_none() && !matches!(request, Request::Hello { .. }) {
            return Outcome::Reply(Err(Error::new(
                Code::PSM_ERR_PROTOCOL,
                "the first request must be Hello",
            )));
        }
        match request {
            Request::Hello { version_min, version_max, app_name, flags } => {
                if !stats.tls.policy().allows_app(self.exe.as_deref()) {
                    tracing::warn!(session = self.id, exe = ?self.exe, "application refused by the policy");
                    return Outcome::Reply(Err(Error::new(
                        Code::PSM_ERR_POLICY,
                        format!(
                            "the security policy does not allow {} to use psm",
                            self.exe.as_deref().unwrap_or("this program (its executable is unknown)")
                        ),
                    )));
                }
                let reply = ops::core::hello(self, version_min, version_max, app_name, flags);
                if reply.is_ok() {
                    stats.tls.prompts.set_session(self.id, self.ui());
                }
                if reply.is_ok()
                    && let Some(name) = &self.app_name
                {
                    stats.tls.audit.session(self.id, Some((name, self.pid, self.exe.as_deref())));
                }
                Outcome::Reply(reply)
            }
            Request::Ping => Outcome::Reply(Ok(Reply::Pong)),
            Request::Status => Outcome::Status,
            Request::Random { len } => Outcome::Reply(ops::crypto::random(len)),
            Request::Digest { alg, data } => ops::crypto::digest(alg, data),
            Request::DigestStream { alg } => Outcome::OpenChannel(ops::crypto::digest_stream(alg)),
            Request::ChannelFinish { channel } => Outcome::FinishChannel(channel),
            Request::ChannelClose { channel } => Outcome::CloseChannel(channel),
            Request::DebugSleep { ms } => ops::debug::sleep(stats, ms),
            Request::CertImport { data, nickname, trust } => ops::cert::import(stats, data, nickname, trust),
            Request::CertFind { query } => ops::cert::find(stats, query),
            Request::CertList { filter } => ops::cert::list(stats, filter),
            Request::CertChangeTrust { sha256_hex, set, clear } => {
                ops::cert::change_trust(stats, sha256_hex, set, clear)
            }
            Request::CertDelete { sha256_hex, with_key } => {
                ops::cert::delete(stats, self.id, sha256_hex, with_key)
            }
            Request::CertVerify { der, usage, name, at } => ops::cert::verify(stats, der, usage, name, at),
            Request::CrlImport { data } => ops::cert::import_crl(stats, data),
            Request::TokenLogin { password: None } if self.can_ask() => {
                self.blocking(ops::token::login_asking())
            }
            Request::TokenLogin { password } => ops::token::login(stats, self.id, password),
            Request::TokenLogout => ops::token::logout(stats, self.id),
            Request::TokenSetPassword { old, new: None } if self.can_ask() => {
                self.blocking(ops::token::set_password_asking(old))
            }
            Request::TokenSetPassword { old, new } => ops::token::set_password(stats, self.id, old, new),
            Request::TokenList => ops::token::list(self.id),
            Request::TokenLoginTo { token, pin } => {
                ops::token::login_to(stats, self.id, token, pin, self.can_ask())
            }
            Request::TokenLogoutFrom { token } => ops::token::logout_from(stats, self.id, token),
            Request::KeyGenerate { kind, subject_dn, nickname, sans } => {
                ops::key::generate(stats, self.id, kind, subject_dn, nickname, sans)
            }
            Request::KeyCsr { sha256_hex, subject_dn, sans } => {
                ops::key::csr(stats, self.id, sha256_hex, subject_dn, sans)
            }
            Request::KeySign { sha256_hex, alg, data }
                if crate::store::parse_fingerprint(&sha256_hex)
                    .is_ok_and(|fp| stats.tls.policy().must_confirm(&fp)) =>
            {
                self.blocking(ops::key::sign_confirmed(sha256_hex, alg, data))
            }
            Request::KeySign { sha256_hex, alg, data } => {
                ops::key::sign(stats, self.id, sha256_hex, alg, data, self.can_ask())
            }
            Request::Pkcs12Import { data, password: None } if self.can_ask() => {
                self.blocking(ops::key::pkcs12_import_asking(data))
            }
            Request::Pkcs12Export { sha256_hex, password: None }
                if self.can_ask() && stats.tls.policy().pkcs12_export =>
            {
                self.blocking(ops::key::pkcs12_export_asking(sha256_hex))
            }
            Request::Pkcs12Import { data, password } => {
                ops::key::pkcs12_import(stats, self.id, data, password)
            }
            Request::Pkcs12Export { sha256_hex, password } => {
                ops::key::pkcs12_export(stats, self.id, sha256_hex, password)
            }
            Request::SdrEncrypt { data } => ops::key::sdr_encrypt(stats, self.id, data),
            Request::SdrDecrypt { data } => ops::key::sdr_decrypt(stats, self.id, data),
            Request::SslConnect { host, port, opts } => {
                ops::tls::connect(self, host, port, policy_opts(stats, opts), false)
            }
            Request::TlsOpenPlain { host, port, opts } => {
                ops::tls::connect(self, host, port, policy_opts(stats, opts), true)
            }
            Request::SslWrapFd { server_name, opts } => {
                ops::tls::wrap(self, fd, server_name, policy_opts(stats, opts))
            }
            Request::SslAcceptFd { sha256_hex, opts } => {
                ops::tls::accept(self, fd, sha256_hex, policy_opts(stats, opts))
            }
            Request::PolicyReload => Outcome::PolicyReload,
            Request::OverrideList => ops::cert::override_list(stats),
            Request::OverrideDelete { host, port } => ops::cert::override_delete(stats, host, port),
            Request::PolicyCheck { text } => match crate::policy::parse(&text) {
                Err(p) => problems(Some(p)),
                // A policy psmd could run: what it would mean with this store.
                Ok(policy) => {
                    let store = stats.store.clone();
                    let line = text
                        .lines()
                        .position(|l| l.trim_start().starts_with("distrusted"))
                        .map_or(1, |i| i + 1);
                    Outcome::Work(Box::new(move || {
                        let store = store.lock().unwrap_or_else(|p| p.into_inner());
                        let warnings = ops::cert::policy_warnings(&store, &policy)?;
                        Ok(Reply::Problems(warnings.into_iter().map(|w| (line as u32, w)).collect()))
                    }))
                }
            },
            Request::ConfigCheck { text } => problems(crate::policy::parse_user(&text).err()),
            Request::SslStepUp { channel } => Outcome::StepUp(channel),
            Request::SslInfo { channel } => Outcome::SslInfo(channel),
            Request::SslPeerCerts { channel } => Outcome::SslPeerCerts(channel),
            Request::SslShowInfo { channel } => Outcome::SslShow(channel),
            Request::CertView { sha256_hex } => self.blocking(ops::view::cert_view(sha256_hex)),
            Request::SmimeShowInfo { result_id } => self.blocking(ops::view::message_info(result_id)),
            Request::SetPromptHandler { enabled } => {
                let reply = ops::tls::set_prompt_handler(self, enabled);
                stats.tls.prompts.set_session(self.id, self.ui());
                Outcome::Reply(Ok(reply))
            }
            Request::PromptAnswer { id, answer } => {
                Outcome::Reply(stats.tls.prompts.answer(self.id, id, answer).map(|_| Reply::Done))
            }
            Request::SmimeSign { signer, flags, data } => {
                match ops::smime::sign_on_loop(&stats.tls, self.id, &signer, flags, &data) {
                    Some(result) => Outcome::Reply(result),
                    None => self.blocking(ops::smime::sign(signer, flags, data)),
                }
            }
            Request::SmimeVerify { data, content, from, flags } => {
                self.blocking(ops::smime::verify(data, content.map(|c| c.into_vec()), from, flags))
            }
            Request::SmimeEncrypt { recipients, flags, data } => {
                self.blocking(ops::smime::encrypt(recipients, flags, data))
            }
            Request::SmimeDecrypt { data, from, flags } => {
                self.blocking(ops::smime::decrypt(data, from, flags))
            }
            Request::SmimeCertsOnly { certs, flags } => self.blocking(ops::smime::certs_only(certs, flags)),
            Request::SmimeReadCerts { data } => self.blocking(ops::smime::read_certs(data)),
            Request::SmimeStream { op, flags } => {
                Outcome::Stream { job: ops::smime::stream(op, flags), can_prompt: self.can_ask() }
            }
        }
    }
}
