//! The schema, versioned with `PRAGMA user_version`. Each migration runs in
//! its own transaction; a new version appends a step, never edits one.

use super::db_error;
use psm::{Code, Error};
use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: certificates, names for lookup, keys, CRLs, the token.
    r#"
    CREATE TABLE certs (
        id          INTEGER PRIMARY KEY,
        sha256      BLOB NOT NULL UNIQUE,
        der         BLOB NOT NULL,
        nickname    TEXT NOT NULL UNIQUE,
        subject     TEXT NOT NULL,
        is_ca       INTEGER NOT NULL,
        not_after   INTEGER NOT NULL,
        spki_sha256 BLOB NOT NULL,
        trust       INTEGER NOT NULL DEFAULT 0,
        builtin     INTEGER NOT NULL DEFAULT 0,
        added       INTEGER NOT NULL
    );
    CREATE INDEX certs_spki ON certs(spki_sha256);
    CREATE TABLE cert_names (
        cert_id INTEGER NOT NULL REFERENCES certs(id) ON DELETE CASCADE,
        kind    TEXT NOT NULL CHECK (kind IN ('email', 'dns', 'ip')),
        value   TEXT NOT NULL COLLATE NOCASE
    );
    CREATE INDEX cert_names_lookup ON cert_names(kind, value);
    CREATE TABLE keys (
        id          INTEGER PRIMARY KEY,
        spki_sha256 BLOB NOT NULL UNIQUE,
        key_type    TEXT NOT NULL,
        sealed      BLOB NOT NULL,
        nickname    TEXT,
        added       INTEGER NOT NULL
    );
    CREATE TABLE crls (
        id          INTEGER PRIMARY KEY,
        sha256      BLOB NOT NULL UNIQUE,
        issuer      TEXT NOT NULL,
        der         BLOB NOT NULL,
        this_update INTEGER NOT NULL,
        next_update INTEGER
    );
    CREATE INDEX crls_issuer ON crls(issuer);
    CREATE TABLE token (
        id             INTEGER PRIMARY KEY CHECK (id = 1),
        kdf            TEXT NOT NULL,
        check_value    BLOB NOT NULL,
        wrapped_master BLOB NOT NULL,
        has_password   INTEGER NOT NULL
    );
    "#,
    // 2: the user's "accept this server certificate anyway" decisions.
    r#"
    CREATE TABLE overrides (
        host       TEXT NOT NULL COLLATE NOCASE,
        port       INTEGER NOT NULL,
        sha256     BLOB NOT NULL,
        error_bits INTEGER NOT NULL,
        added      INTEGER NOT NULL,
        PRIMARY KEY (host, port, sha256)
    );
    "#,
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

pub fn migrate(db: &mut Connection) -> Result<(), Error> {
    let current: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(db_error)?;
    if current > VERSION {
        return Err(Error::new(
            Code::PSM_ERR_UNSUPPORTED,
            format!("the store has schema version {current}, newer than this psmd's {VERSION}; upgrade psmd"),
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = db.transaction().map_err(db_error)?;
        tx.execute_batch(sql).map_err(db_error)?;
        tx.pragma_update(None, "user_version", i as i64 + 1).map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        tracing::info!(version = i + 1, "store schema migrated");
    }
    Ok(())
}
