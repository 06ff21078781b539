//! The soft token's rows: the password-wrapped master key, and private keys
//! sealed under the master key (bound to their row id).

use super::{Store, db_error};
use crate::pki::seal::{self, KdfParams, TokenKey};
use psm::{Code, Error};
use rusqlite::{OptionalExtension, params};
use zeroize::Zeroizing;

/// Associated data binding the wrapped master key to its purpose.
const MASTER_AAD: &[u8] = b"psm-token-master";

/// The token row: how to turn the password into the key that unwraps the
/// master key, and how to tell a wrong password.
pub struct TokenRow {
    pub kdf: KdfParams,
    pub check: Vec<u8>,
    pub wrapped_master: Vec<u8>,
    pub has_password: bool,
}

impl TokenRow {
    /// The master key, if `password` is right.
    pub fn unlock(&self, password: &str) -> Result<Option<TokenKey>, Error> {
        let pw_key = seal::derive(password, &self.kdf)?;
        if !seal::verify_check(&pw_key, &self.check) {
            return Ok(None);
        }
        seal::open_key(&pw_key, MASTER_AAD, &self.wrapped_master).map(Some)
    }

    /// A row protecting `master` with `password` (fresh salt).
    pub fn protect(master: &TokenKey, password: &str) -> Result<TokenRow, Error> {
        let kdf = KdfParams::new_random()?;
        let pw_key = seal::derive(password, &kdf)?;
        Ok(TokenRow {
            check: seal::make_check(&pw_key)?,
            wrapped_master: seal::seal_key(&pw_key, MASTER_AAD, master)?,
            kdf,
            has_password: !password.is_empty(),
        })
    }
}

/// A stored private key, still sealed.
pub struct KeyRow {
    pub id: i64,
    pub key_type: String,
    pub sealed: Vec<u8>,
}

impl KeyRow {
    pub fn open(&self, master: &TokenKey) -> Result<Zeroizing<Vec<u8>>, Error> {
        seal::open(master, &seal::record_aad(self.id, "key"), &self.sealed).map_err(|_| {
            Error::new(Code::PSM_ERR_INTERNAL, "a stored private key does not decrypt under the token's key")
        })
    }
}

impl Store {
    pub fn token(&self) -> Result<Option<TokenRow>, Error> {
        let row: Option<(String, Vec<u8>, Vec<u8>, bool)> = self
            .db
            .query_row(
                "SELECT kdf, check_value, wrapped_master, has_password FROM token WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(db_error)?;
        row.map(|(kdf, check, wrapped_master, has_password)| {
            Ok(TokenRow { kdf: kdf.parse()?, check, wrapped_master, has_password })
        })
        .transpose()
    }

    /// Writes the token row in one statement: a password change is atomic
    /// (the old row or the new one, never a mix).
    pub fn put_token(&mut self, row: &TokenRow) -> Result<(), Error> {
        self.db
            .execute(
                "INSERT INTO token (id, kdf, check_value, wrapped_master, has_password) VALUES (1, ?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET kdf = ?1, check_value = ?2, wrapped_master = ?3, has_password = ?4",
                params![row.kdf.to_string(), row.check, row.wrapped_master, row.has_password],
            )
            .map_err(db_error)?;
        Ok(())
    }

    /// Stores a private key sealed under `master`; an existing key with the
    /// same public key is kept (importing it again changes nothing).
    pub fn put_key(
        &mut self,
        master: &TokenKey,
        spki_sha256: &[u8; 32],
        key_type: &str,
        pkcs8: &[u8],
        nickname: Option<&str>,
    ) -> Result<(), Error> {
        let tx = self.db.transaction().map_err(db_error)?;
        let exists = tx
            .query_row("SELECT 1 FROM keys WHERE spki_sha256 = ?1", [spki_sha256], |_| Ok(()))
            .optional()
            .map_err(db_error)?;
        if exists.is_none() {
            tx.execute(
                "INSERT INTO keys (spki_sha256, key_type, sealed, nickname, added) VALUES (?1, ?2, x'', ?3, strftime('%s'))",
                params![spki_sha256, key_type, nickname],
            )
            .map_err(db_error)?;
            let id = tx.last_insert_rowid();
            let sealed = seal::seal(master, &seal::record_aad(id, "key"), pkcs8)?;
            tx.execute("UPDATE keys SET sealed = ?1 WHERE id = ?2", params![sealed, id]).map_err(db_error)?;
        }
        tx.commit().map_err(db_error)
    }

    pub fn key_for_spki(&self, spki_sha256: &[u8; 32]) -> Result<Option<KeyRow>, Error> {
        let mut stmt = self
            .db
            .prepare_cached("SELECT id, key_type, sealed FROM keys WHERE spki_sha256 = ?1")
            .map_err(db_error)?;
        stmt.query_row([spki_sha256], |r| {
            Ok(KeyRow { id: r.get(0)?, key_type: r.get(1)?, sealed: r.get(2)? })
        })
        .optional()
        .map_err(db_error)
    }

    /// The SPKI hash of a stored certificate.
    pub fn cert_spki(&self, sha256: &[u8; 32]) -> Result<[u8; 32], Error> {
        let mut stmt =
            self.db.prepare_cached("SELECT spki_sha256 FROM certs WHERE sha256 = ?1").map_err(db_error)?;
        stmt.query_row([sha256], |r| r.get(0))
            .optional()
            .map_err(db_error)?
            .ok_or_else(|| Error::new(Code::PSM_ERR_NOT_FOUND, "no such certificate in the store"))
    }

    /// Every stored key, still sealed (for checks after a crash).
    pub fn key_rows(&self) -> Result<Vec<KeyRow>, Error> {
        let mut stmt = self.db.prepare("SELECT id, key_type, sealed FROM keys").map_err(db_error)?;
        let rows = stmt
            .query_map([], |r| Ok(KeyRow { id: r.get(0)?, key_type: r.get(1)?, sealed: r.get(2)? }))
            .map_err(db_error)?;
        rows.collect::<Result<_, _>>().map_err(db_error)
    }
}
