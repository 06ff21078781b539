//! psmd, the per-user Personal Security Manager daemon.
//!
//! `run` binds the control socket ([`listener`]), hardens and optionally
//! daemonizes the process ([`process`]), then hands everything to the mio
//! [`event_loop`]. Each connected application is a [`session::Session`];
//! requests are dispatched to the op handlers in [`ops`], slow ones run on
//! the [`pool`], and bulk data flows through [`channel`]s.

pub mod audit;
pub mod channel;
pub mod dialog;
pub mod error;
pub mod event_loop;
pub mod hwtokens;
pub mod listener;
pub mod logging;
pub mod mailbox;
pub mod ops;
pub mod pkcs11;
pub mod pki;
pub mod policy;
pub mod pool;
pub mod process;
pub mod prompt;
pub mod session;
pub mod store;
pub mod tls;
pub mod token;

pub use error::DaemonError;

use clap::Parser;
use std::path::PathBuf;

/// psmd owns the user's certificates, private keys and trust decisions and
/// does every PKI operation (TLS channels, S/MIME, signing) for the
/// applications that link libpsm, which start it on first use. With
/// systemd, psmd.socket starts it instead and psmd takes the socket over
/// (LISTEN_FDS).
///
/// The system policy, /etc/psm/policy.toml ($PSM_POLICY), is read at start
/// and again on SIGHUP; psmd does not start with one it cannot trust or read.
///
/// Environment: PSM_SOCKET and XDG_RUNTIME_DIR (the socket), PSM_PROFILE and
/// XDG_DATA_HOME (the store), PSM_POLICY (the policy file), SSL_CERT_FILE
/// and SSL_CERT_DIR (the system's CA certificates), PSM_LOG (log level).
///
/// Exit status: 0 stopped cleanly (SIGTERM, SIGINT), 1 system error, 3
/// another psmd already serves the socket, 4 the socket or its directory is
/// unsafe or unusable, 5 the store could not be opened, 6 the policy file
/// was refused.
#[derive(Parser, Debug, Clone)]
#[command(name = "psmd", version, about = "Personal Security Manager daemon (one per user)", long_about)]
pub struct Options {
    /// Control socket path (default: $PSM_SOCKET, else $XDG_RUNTIME_DIR/psm/control,
    /// else /tmp/psm-$UID/control).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Detach: fork once the socket is bound; the first process exits 0
    /// when the daemon accepts connections (used by libpsm's auto-start).
    #[arg(long)]
    pub daemon: bool,
    /// More log output (-v debug, -vv trace). Logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Enable requests that exist only for tests (DebugSleep).
    #[arg(long, hide = true)]
    pub test_hooks: bool,
    /// Profile directory holding the store (default: $PSM_PROFILE, else
    /// $XDG_DATA_HOME/psm, else ~/.local/share/psm).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Worker threads for slow requests (default: number of CPUs, at least 2).
    #[arg(long)]
    pub workers: Option<usize>,
    /// How long a question (dialog or prompt) waits for the user before it
    /// fails with PSM_ERR_DIALOG_TIMEOUT, in seconds.
    #[arg(long, env = "PSM_PROMPT_TIMEOUT", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub prompt_timeout: u64,
    /// Descriptors passed by socket activation (`LISTEN_FDS`), if any: set
    /// by main, not a command-line option.
    #[arg(skip)]
    pub activated: Option<u32>,
    /// Print this manual page (roff, section 8) and exit.
    #[arg(long, hide = true)]
    pub man: bool,
}

pub fn run(opts: Options) -> Result<(), DaemonError> {
    process::harden()?;
    // A policy that exists but cannot be read or is wrong stops psmd: it
    // never runs with less than the administrator set (fail closed).
    // The user's own config, on the other hand, never stops psmd.
    let policy = policy::Sources::load(policy::path(), policy::user::path())
        .map_err(|e| DaemonError::Policy(e.message))?;
    let signals = event_loop::Signals::install()?;
    let activated = match opts.activated {
        Some(1) => Some(listener::adopt(process::LISTEN_FD)?),
        Some(n) => {
            return Err(DaemonError::Socket(format!(
                "socket activation passed {n} descriptors; psmd listens on exactly one (one ListenStream= in psmd.socket)"
            )));
        }
        None => None,
    };
    let socket = match &activated {
        Some(b) => b.path.clone(),
        None => opts.socket.clone().unwrap_or_else(psm::transport::default_socket_path),
    };
    let bound = match activated.map(Ok).unwrap_or_else(|| listener::bind(&socket)) {
        // Auto-start lost a race with a psmd started some other way: the
        // socket is served, which is all the spawning application wanted.
        Err(DaemonError::AlreadyRunning(why)) if opts.daemon => {
            tracing::info!("not starting: {why}");
            return Ok(());
        }
        r => r?,
    };
    tracing::info!(socket = %socket.display(), pid = std::process::id(), "psmd listening");
    if opts.daemon {
        // The first process records the daemon's pid before it exits, so the
        // pid is there as soon as the spawner sees us ready.
        process::detach(|child| bound.record_pid(child))?;
    } else {
        bound.record_pid(std::process::id());
    }
    let workers =
        opts.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()).max(2));
    let profile = opts.profile.clone().unwrap_or_else(store::default_profile_dir);
    let mut store = store::Store::open(&profile).map_err(|e| DaemonError::Store(e.to_string()))?;
    let added =
        store.sync_builtins(&store::system_anchors()).map_err(|e| DaemonError::Store(e.to_string()))?;
    tracing::info!(profile = %profile.display(), builtins_added = added, "store open");
    let token = token::TokenState::init(&mut store).map_err(|e| DaemonError::Store(e.to_string()))?;
    let config = event_loop::Config {
        test_hooks: opts.test_hooks,
        workers,
        store,
        token,
        policy,
        dialog_dir: socket.parent().map(std::path::Path::to_path_buf),
        prompt_timeout: std::time::Duration::from_secs(opts.prompt_timeout),
    };
    let result = event_loop::EventLoop::new(bound, signals, config)?.run();
    tracing::info!("psmd stopped");
    result
}
