//! The daemon's start-up and run-time errors (request errors are `psm::Error`).

use std::fmt;

#[derive(Debug)]
pub enum DaemonError {
    /// Another psmd owns this socket directory.
    AlreadyRunning(String),
    /// The socket directory or file is unsafe or unusable.
    Socket(String),
    /// Anything else the operating system refused.
    Os(String),
    /// The store could not be opened or upgraded.
    Store(String),
    /// The system policy exists but was refused.
    Policy(String),
}

impl DaemonError {
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::AlreadyRunning(_) => 3,
            DaemonError::Socket(_) => 4,
            DaemonError::Os(_) => 1,
            DaemonError::Store(_) => 5,
            DaemonError::Policy(_) => 6,
        }
    }

    pub fn os(what: &str, e: impl fmt::Display) -> DaemonError {
        DaemonError::Os(format!("{what}: {e}"))
    }
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonError::AlreadyRunning(s) => write!(f, "already running: {s}"),
            DaemonError::Socket(s) | DaemonError::Os(s) => f.write_str(s),
            DaemonError::Store(s) => write!(f, "store: {s}"),
            DaemonError::Policy(s) => write!(f, "policy: {s}"),
        }
    }
}

impl std::error::Error for DaemonError {}

impl From<psm::Error> for DaemonError {
    fn from(e: psm::Error) -> DaemonError {
        DaemonError::Socket(e.message)
    }
}
