//! The user's store: one SQLite database in the profile directory holding
//! certificates, trust settings, private keys (sealed by the soft token) and
//! CRLs. Every write is one transaction with `synchronous=FULL` in WAL mode,
//! so a kill -9 at any moment leaves each object old or new, never torn.

mod anchors;
mod certs;
mod keys;
mod overrides;
mod schema;

pub use anchors::system_anchors;
pub use certs::{TrustRow, check_nickname, matches_filter, parse_fingerprint};
pub use keys::{KeyRow, TokenRow};

use psm::{Code, Error};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// File name of the database inside the profile directory.
pub const DB_FILE: &str = "psm.db";
/// How long a writer waits for another connection's lock (tests open the
/// database beside a running psmd).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Store {
    db: Connection,
    /// The profile directory (private to the user).
    pub dir: PathBuf,
}

pub(crate) fn db_error(e: rusqlite::Error) -> Error {
    Error::new(Code::PSM_ERR_IO, format!("store: {e}"))
}

/// `$PSM_PROFILE`, else `$XDG_DATA_HOME/psm`, else `~/.local/share/psm`.
pub fn default_profile_dir() -> PathBuf {
    let var = |n: &str| std::env::var_os(n).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = var("PSM_PROFILE") {
        return p;
    }
    if let Some(d) = var("XDG_DATA_HOME") {
        return d.join("psm");
    }
    let home = var("HOME").unwrap_or_else(|| PathBuf::from("/"));
    home.join(".local/share/psm")
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, which is created 0700
    /// and must be private to the user, and brings its schema up to date.
    pub fn open(dir: &Path) -> Result<Store, Error> {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::new(Code::PSM_ERR_IO, format!("creating {}: {e}", parent.display())))?;
        }
        psm::transport::ensure_private_dir(dir)
            .map_err(|e| Error::new(e.code, e.message.replace("socket directory", "profile directory")))?;
        let db = Connection::open(dir.join(DB_FILE)).map_err(db_error)?;
        db.busy_timeout(BUSY_TIMEOUT).map_err(db_error)?;
        db.pragma_update(None, "journal_mode", "WAL").map_err(db_error)?;
        db.pragma_update(None, "synchronous", "FULL").map_err(db_error)?;
        db.pragma_update(None, "foreign_keys", "ON").map_err(db_error)?;
        db.pragma_update(None, "secure_delete", "ON").map_err(db_error)?;
        let mut store = Store { db, dir: dir.to_path_buf() };
        schema::migrate(&mut store.db)?;
        Ok(store)
    }

    /// Changes with every write to the store, so that views built from it
    /// (the verifier's trust set) know when to rebuild.
    pub fn generation(&self) -> u64 {
        self.db.total_changes()
    }

    /// `PRAGMA integrity_check`: "ok" or the problems SQLite found.
    pub fn integrity_check(&self) -> Result<String, Error> {
        self.db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(db_error)
    }
}
