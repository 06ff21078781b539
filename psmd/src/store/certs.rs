//! Certificates and their trust settings in the store.

use super::{Store, db_error};
use crate::pki::cert::{self, Parsed, ParsedCrl};
use psm::proto::{
    CERTS_CA, CERTS_PEOPLE, CERTS_SERVERS, CERTS_USER, CertInfo, TRUST_ALL_BITS, TRUST_CA_EMAIL,
    TRUST_CA_TLS_CLIENT, TRUST_CA_TLS_SERVER,
};
use psm::{Code, Error};
use rusqlite::{OptionalExtension, Transaction, params};

/// Trust given to the system's anchors: what a CA in the system bundle is
/// there for.
pub const BUILTIN_TRUST: u32 = TRUST_CA_TLS_SERVER | TRUST_CA_TLS_CLIENT | TRUST_CA_EMAIL;
/// Longest nickname accepted.
pub const MAX_NICKNAME: usize = 256;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn not_found(what: &str) -> Error {
    Error::new(Code::PSM_ERR_NOT_FOUND, format!("no certificate {what} in the store"))
}

/// A certificate as the verifier's trust set needs it.
pub struct TrustRow {
    pub der: Vec<u8>,
    pub sha256: [u8; 32],
    pub trust: u32,
    pub is_ca: bool,
}

/// A stored certificate row, before it is turned into a `CertInfo`.
struct Row {
    der: Vec<u8>,
    nickname: String,
    trust: u32,
    builtin: bool,
    has_key: bool,
}

const ROW_COLUMNS: &str = "c.der, c.nickname, c.trust, c.builtin, \
     EXISTS (SELECT 1 FROM keys k WHERE k.spki_sha256 = c.spki_sha256)";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row { der: r.get(0)?, nickname: r.get(1)?, trust: r.get(2)?, builtin: r.get(3)?, has_key: r.get(4)? })
}

fn to_info(r: Row) -> Result<CertInfo, Error> {
    let p = cert::parse(&r.der)?;
    Ok(p.info(&r.nickname, r.trust, r.builtin, r.has_key))
}

pub fn check_nickname(n: &str) -> Result<(), Error> {
    if n.trim().is_empty() || n.len() > MAX_NICKNAME || n.chars().any(char::is_control) {
        return Err(Error::new(
            Code::PSM_ERR_INVALID_ARGUMENT,
            format!("a nickname must be 1 to {MAX_NICKNAME} bytes without control characters"),
        ));
    }
    if n.starts_with("sha256:") || n.starts_with("pkcs11:") || n.contains('@') {
        return Err(Error::new(
            Code::PSM_ERR_INVALID_ARGUMENT,
            "a nickname may not contain '@' or start with 'sha256:' or 'pkcs11:' (those name other lookups)",
        ));
    }
    Ok(())
}

/// Parses `sha256:<hex>` or bare hex into a fingerprint.
/// Whether `info` matches any of the `CERTS_*` bits of `filter` (0: all).
pub fn matches_filter(info: &CertInfo, filter: u32) -> bool {
    filter == 0
        || (filter & CERTS_USER != 0 && info.has_private_key)
        || (filter & CERTS_CA != 0 && info.is_ca)
        || (filter & CERTS_PEOPLE != 0 && !info.is_ca && !info.emails.is_empty())
        || (filter & CERTS_SERVERS != 0
            && !info.is_ca
            && (!info.dns_names.is_empty() || !info.ip_addresses.is_empty()))
}

pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], Error> {
    let hex_part = s.strip_prefix("sha256:").unwrap_or(s).replace(':', "");
    let bytes = hex::decode(&hex_part).ok().filter(|b| b.len() == 32);
    bytes.map(|b| b.try_into().unwrap()).ok_or_else(|| {
        Error::new(
            Code::PSM_ERR_INVALID_ARGUMENT,
            "a SHA-256 fingerprint is 64 hex digits (optionally 'sha256:')",
        )
    })
}

fn nickname_taken(tx: &Transaction<'_>, n: &str) -> Result<bool, Error> {
    tx.query_row("SELECT 1 FROM certs WHERE nickname = ?1", [n], |_| Ok(()))
        .optional()
        .map_err(db_error)
        .map(|o| o.is_some())
}

/// A free nickname based on `base`: `base`, else `base #2`, `base #3`, ...
fn unique_nickname(tx: &Transaction<'_>, base: &str) -> Result<String, Error> {
    let base: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    let base = if base.trim().is_empty() { "certificate".to_string() } else { base };
    if !nickname_taken(tx, &base)? {
        return Ok(base);
    }
    for i in 2.. {
        let candidate = format!("{base} #{i}");
        if !nickname_taken(tx, &candidate)? {
            return Ok(candidate);
        }
    }
    unreachable!()
}

fn insert(tx: &Transaction<'_>, p: &Parsed, nickname: &str, trust: u32, builtin: bool) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO certs (sha256, der, nickname, subject, is_ca, not_after, spki_sha256, trust, builtin, added)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![p.sha256, p.der, nickname, p.subject, p.is_ca, p.not_after, p.spki_sha256, trust, builtin, now()],
    )
    .map_err(db_error)?;
    let id = tx.last_insert_rowid();
    let mut names = tx
        .prepare_cached("INSERT INTO cert_names (cert_id, kind, value) VALUES (?1, ?2, ?3)")
        .map_err(db_error)?;
    for (kind, values) in [("email", &p.emails), ("dns", &p.dns_names), ("ip", &p.ip_addresses)] {
        for v in values {
            names.execute(params![id, kind, v]).map_err(db_error)?;
        }
    }
    Ok(())
}

impl Store {
    /// Imports certificates in one transaction: all or none. A certificate
    /// already present is left as it is (imports are idempotent), except
    /// that non-zero `trust` is applied to the first one.
    pub fn import_certs(
        &mut self,
        certs: &[Parsed],
        nickname: Option<&str>,
        trust: u32,
    ) -> Result<Vec<CertInfo>, Error> {
        if trust & !TRUST_ALL_BITS != 0 {
            return Err(Error::new(
                Code::PSM_ERR_INVALID_ARGUMENT,
                format!("unknown trust bits {:#x}", trust & !TRUST_ALL_BITS),
            ));
        }
        if let Some(n) = nickname {
            check_nickname(n)?;
        }
        let tx = self.db.transaction().map_err(db_error)?;
        for (i, p) in certs.iter().enumerate() {
            let existing: Option<String> = tx
                .query_row("SELECT nickname FROM certs WHERE sha256 = ?1", [p.sha256], |r| r.get(0))
                .optional()
                .map_err(db_error)?;
            let first = i == 0;
            match existing {
                Some(_) => {
                    if first && trust != 0 {
                        tx.execute("UPDATE certs SET trust = ?1 WHERE sha256 = ?2", params![trust, p.sha256])
                            .map_err(db_error)?;
                    }
                }
                None => {
                    let nick = match nickname.filter(|_| first) {
                        Some(n) if nickname_taken(&tx, n)? => {
                            return Err(Error::new(
                                Code::PSM_ERR_EXISTS,
                                format!("the nickname \"{n}\" is already used by another certificate"),
                            ));
                        }
                        Some(n) => n.to_string(),
                        // A certificate for a generated key takes the name
                        // given at generation.
                        None => {
                            let key_nick: Option<Option<String>> = tx
                                .query_row(
                                    "SELECT nickname FROM keys WHERE spki_sha256 = ?1",
                                    [p.spki_sha256],
                                    |r| r.get(0),
                                )
                                .optional()
                                .map_err(db_error)?;
                            let base = key_nick.flatten().unwrap_or_else(|| p.default_nickname());
                            unique_nickname(&tx, &base)?
                        }
                    };
                    insert(&tx, p, &nick, if first { trust } else { 0 }, false)?;
                }
            }
        }
        tx.commit().map_err(db_error)?;
        certs.iter().map(|p| self.get(&p.sha256)).collect()
    }

    /// Adds the system anchors the store does not have yet (first start, or
    /// new ones after a system update). Existing rows, and the user's
    /// distrust of them, are left alone.
    pub fn sync_builtins(&mut self, anchors: &[Parsed]) -> Result<usize, Error> {
        let tx = self.db.transaction().map_err(db_error)?;
        let mut added = 0;
        for p in anchors {
            let exists = tx
                .query_row("SELECT 1 FROM certs WHERE sha256 = ?1", [p.sha256], |_| Ok(()))
                .optional()
                .map_err(db_error)?;
            if exists.is_none() {
                let nick = unique_nickname(&tx, &p.default_nickname())?;
                insert(&tx, p, &nick, BUILTIN_TRUST, true)?;
                added += 1;
            }
        }
        tx.commit().map_err(db_error)?;
        Ok(added)
    }

    pub fn get(&self, sha256: &[u8; 32]) -> Result<CertInfo, Error> {
        let sql = format!("SELECT {ROW_COLUMNS} FROM certs c WHERE c.sha256 = ?1");
        let r = self.db.query_row(&sql, [sha256], row).optional().map_err(db_error)?;
        to_info(r.ok_or_else(|| not_found(&format!("sha256:{}", hex::encode(sha256))))?)
    }

    /// By `sha256:<hex>`, email address (the newest-expiring match), or nickname.
    pub fn find(&self, query: &str) -> Result<CertInfo, Error> {
        if query.starts_with("sha256:") {
            return self.get(&parse_fingerprint(query)?);
        }
        let r = if query.contains('@') {
            let sql = format!(
                "SELECT {ROW_COLUMNS} FROM certs c JOIN cert_names n ON n.cert_id = c.id
                 WHERE n.kind = 'email' AND n.value = ?1 ORDER BY c.not_after DESC LIMIT 1"
            );
            self.db.query_row(&sql, [cert::normalize_email(query)], row)
        } else {
            let sql = format!("SELECT {ROW_COLUMNS} FROM certs c WHERE c.nickname = ?1");
            self.db.query_row(&sql, [query], row)
        };
        to_info(r.optional().map_err(db_error)?.ok_or_else(|| not_found(&format!("\"{query}\"")))?)
    }

    /// Certificates matching any of the `CERTS_*` bits (0: all), by nickname.
    pub fn list(&self, filter: u32) -> Result<Vec<CertInfo>, Error> {
        let known = CERTS_USER | CERTS_CA | CERTS_PEOPLE | CERTS_SERVERS;
        if filter & !known != 0 {
            return Err(Error::new(
                Code::PSM_ERR_INVALID_ARGUMENT,
                format!("unknown filter bits {:#x}", filter & !known),
            ));
        }
        let sql = format!("SELECT {ROW_COLUMNS} FROM certs c ORDER BY c.nickname");
        let mut stmt = self.db.prepare(&sql).map_err(db_error)?;
        let rows = stmt.query_map([], row).map_err(db_error)?;
        let mut out = Vec::new();
        for r in rows {
            let info = to_info(r.map_err(db_error)?)?;
            if matches_filter(&info, filter) {
                out.push(info);
            }
        }
        Ok(out)
    }

    /// `trust = (trust | set) & !clear` in one statement, so two
    /// applications editing different bits at once both win.
    pub fn change_trust(&mut self, sha256: &[u8; 32], set: u32, clear: u32) -> Result<CertInfo, Error> {
        if (set | clear) & !TRUST_ALL_BITS != 0 {
            return Err(Error::new(Code::PSM_ERR_INVALID_ARGUMENT, "unknown trust bits"));
        }
        let n = self
            .db
            .execute(
                "UPDATE certs SET trust = (trust | ?1) & ~?2 WHERE sha256 = ?3",
                params![set, clear, sha256],
            )
            .map_err(db_error)?;
        if n == 0 {
            return Err(not_found(&format!("sha256:{}", hex::encode(sha256))));
        }
        self.get(sha256)
    }

    /// Deletes a certificate; its private key goes too only with `with_key`
    /// (and only when no other certificate uses that key).
    pub fn delete(&mut self, sha256: &[u8; 32], with_key: bool) -> Result<(), Error> {
        let tx = self.db.transaction().map_err(db_error)?;
        let row: Option<(bool, Vec<u8>)> = tx
            .query_row("SELECT builtin, spki_sha256 FROM certs WHERE sha256 = ?1", [sha256], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(db_error)?;
        let Some((builtin, spki)) = row else {
            return Err(not_found(&format!("sha256:{}", hex::encode(sha256))));
        };
        if builtin {
            return Err(Error::new(
                Code::PSM_ERR_PERMISSION_DENIED,
                "this is one of the system's trust anchors: it can be distrusted, not deleted",
            ));
        }
        tx.execute("DELETE FROM certs WHERE sha256 = ?1", [sha256]).map_err(db_error)?;
        if with_key {
            tx.execute(
                "DELETE FROM keys WHERE spki_sha256 = ?1 AND NOT EXISTS (SELECT 1 FROM certs WHERE spki_sha256 = ?1)",
                [&spki],
            )
            .map_err(db_error)?;
        }
        tx.commit().map_err(db_error)
    }

    /// Stores a CRL, replacing older ones from the same issuer; an older
    /// CRL than the one held is refused (it would un-revoke certificates).
    pub fn import_crl(&mut self, crl: &ParsedCrl) -> Result<(), Error> {
        let tx = self.db.transaction().map_err(db_error)?;
        let newest: Option<i64> = tx
            .query_row("SELECT MAX(this_update) FROM crls WHERE issuer = ?1", [&crl.issuer], |r| r.get(0))
            .map_err(db_error)?;
        if let Some(t) = newest
            && t > crl.this_update
        {
            return Err(Error::new(
                Code::PSM_ERR_INVALID_ARGUMENT,
                format!("a newer CRL from {} is already in the store", crl.issuer),
            ));
        }
        tx.execute("DELETE FROM crls WHERE issuer = ?1 AND sha256 != ?2", params![crl.issuer, crl.sha256])
            .map_err(db_error)?;
        tx.execute(
            "INSERT OR IGNORE INTO crls (sha256, issuer, der, this_update, next_update) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![crl.sha256, crl.issuer, crl.der, crl.this_update, crl.next_update],
        )
        .map_err(db_error)?;
        tx.commit().map_err(db_error)
    }

    /// Every stored certificate's DER with its trust bits, for building the
    /// verifier's trust set.
    pub fn all_with_trust(&self) -> Result<Vec<TrustRow>, Error> {
        let mut stmt =
            self.db.prepare_cached("SELECT der, sha256, trust, is_ca FROM certs").map_err(db_error)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(TrustRow { der: r.get(0)?, sha256: r.get(1)?, trust: r.get(2)?, is_ca: r.get(3)? })
            })
            .map_err(db_error)?;
        rows.collect::<Result<_, _>>().map_err(db_error)
    }

    pub fn crls(&self) -> Result<Vec<Vec<u8>>, Error> {
        let mut stmt = self.db.prepare_cached("SELECT der FROM crls").map_err(db_error)?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(db_error)?;
        rows.collect::<Result<_, _>>().map_err(db_error)
    }
}
