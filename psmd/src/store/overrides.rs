//! Certificate overrides: the user accepted a server certificate that
//! failed verification. Each is bound to the host, the port, the
//! certificate's SHA-256 and the kinds of error it had, so it never covers
//! another certificate, another port, or a new kind of problem.

use super::{Store, db_error};
use psm::Error;
use rusqlite::{OptionalExtension, params};

/// A stored override: host, port, certificate SHA-256, error bits, and
/// when it was added (unix seconds).
pub type OverrideRow = (String, u16, [u8; 32], u32, i64);

impl Store {
    /// The error bits accepted for this certificate at `host`:`port`, if any.
    pub fn override_bits(&self, host: &str, port: u16, sha256: &[u8; 32]) -> Result<Option<u32>, Error> {
        let mut stmt = self
            .db
            .prepare_cached("SELECT error_bits FROM overrides WHERE host = ?1 AND port = ?2 AND sha256 = ?3")
            .map_err(db_error)?;
        stmt.query_row(params![host, port, sha256], |r| r.get(0)).optional().map_err(db_error)
    }

    /// Remembers that the user accepts `error_bits` for this certificate at
    /// `host`:`port`, replacing an earlier decision for the same triple.
    pub fn put_override(
        &mut self,
        host: &str,
        port: u16,
        sha256: &[u8; 32],
        error_bits: u32,
    ) -> Result<(), Error> {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.db
            .execute(
                "INSERT OR REPLACE INTO overrides (host, port, sha256, error_bits, added) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![host, port, sha256, error_bits, now as i64],
            )
            .map_err(db_error)?;
        Ok(())
    }

    /// Every override: (host, port, certificate SHA-256, error bits, added).
    pub fn overrides(&self) -> Result<Vec<OverrideRow>, Error> {
        let mut stmt = self
            .db
            .prepare_cached("SELECT host, port, sha256, error_bits, added FROM overrides ORDER BY host, port")
            .map_err(db_error)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .map_err(db_error)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_error)
    }

    /// Forgets the overrides for `host`:`port` (every certificate); how many.
    pub fn delete_overrides(&mut self, host: &str, port: u16) -> Result<usize, Error> {
        self.db
            .execute("DELETE FROM overrides WHERE host = ?1 AND port = ?2", params![host, port])
            .map_err(db_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_is_bound_to_host_port_and_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("p")).unwrap();
        let sha = [7u8; 32];
        store.put_override("Example.COM", 443, &sha, 0b101).unwrap();
        assert_eq!(store.override_bits("example.com", 443, &sha).unwrap(), Some(0b101));
        assert_eq!(store.override_bits("example.com", 8443, &sha).unwrap(), None);
        assert_eq!(store.override_bits("example.org", 443, &sha).unwrap(), None);
        assert_eq!(store.override_bits("example.com", 443, &[8u8; 32]).unwrap(), None);
        store.put_override("example.com", 443, &sha, 0b1).unwrap();
        assert_eq!(store.override_bits("example.com", 443, &sha).unwrap(), Some(0b1));
    }
}
