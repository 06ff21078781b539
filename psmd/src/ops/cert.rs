//! Certificates: import, find, list, trust, delete, verify, CRLs. Every
//! handler runs on the worker pool (the store writes with fsync).

use crate::pki::cert;
use crate::pki::verify::{self, Name, TrustSet, Usage};
use crate::session::{Outcome, Shared};
use crate::store::Store;
use psm::proto::{
    CertUsage, Reply, TRUST_CA_CODE, TRUST_CA_EMAIL, TRUST_CA_TLS_CLIENT, TRUST_CA_TLS_SERVER,
    TRUST_DISTRUSTED, TRUST_PEER_EMAIL, TRUST_PEER_TLS, Verification,
};
use psm::{Code, Error};
use std::sync::{Arc, Mutex, MutexGuard};

/// Runs `f` with the store on the pool.
fn with_store(
    shared: &Shared,
    f: impl FnOnce(&mut Store) -> Result<Reply, Error> + Send + 'static,
) -> Outcome {
    let store = shared.store.clone();
    Outcome::Work(Box::new(move || f(&mut lock(&store))))
}

fn lock(store: &Arc<Mutex<Store>>) -> MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn import(shared: &Shared, data: Vec<u8>, nickname: Option<String>, trust: u32) -> Outcome {
    with_store(shared, move |store| {
        let parsed = cert::decode_certificates(&data)?
            .iter()
            .map(|d| cert::parse(d))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Reply::Certs(store.import_certs(&parsed, nickname.as_deref(), trust)?))
    })
}

/// `CertFind`: the store first, then the tokens.
pub fn find(shared: &Shared, query: String) -> Outcome {
    let ctx = shared.tls.clone();
    Outcome::Work(Box::new(move || Ok(Reply::Certs(vec![crate::hwtokens::find_cert(&ctx, &query)?]))))
}

/// `CertList`: the store's certificates and those on the tokens present.
pub fn list(shared: &Shared, filter: u32) -> Outcome {
    let (ctx, store) = (shared.tls.clone(), shared.store.clone());
    Outcome::Work(Box::new(move || {
        let mut certs = lock(&store).list(filter)?;
        crate::hwtokens::add_token_certs(&ctx, &mut certs, filter);
        Ok(Reply::Certs(certs))
    }))
}

pub fn change_trust(shared: &Shared, sha256_hex: String, set: u32, clear: u32) -> Outcome {
    with_store(shared, move |store| {
        let fp = crate::store::parse_fingerprint(&sha256_hex)?;
        Ok(Reply::Certs(vec![store.change_trust(&fp, set, clear)?]))
    })
}

pub fn delete(shared: &Shared, session: u64, sha256_hex: String, with_key: bool) -> Outcome {
    let token = shared.token.clone();
    with_store(shared, move |store| {
        let fp = crate::store::parse_fingerprint(&sha256_hex)?;
        if with_key {
            // Destroying a private key is a use of the token: a session that
            // may not sign with it may not delete it either.
            token.master(session)?;
        }
        store.delete(&fp, with_key)?;
        token.forget_cert(&fp);
        Ok(Reply::Done)
    })
}

pub fn import_crl(shared: &Shared, data: Vec<u8>) -> Outcome {
    with_store(shared, move |store| {
        store.import_crl(&cert::parse_crl(&data)?)?;
        Ok(Reply::Done)
    })
}

/// The trust bits that make a certificate an anchor, and a peer, for `usage`.
fn usage_bits(usage: CertUsage) -> (u32, u32) {
    match usage {
        CertUsage::TlsServer => (TRUST_CA_TLS_SERVER, TRUST_PEER_TLS),
        CertUsage::TlsClient => (TRUST_CA_TLS_CLIENT, TRUST_PEER_TLS),
        CertUsage::EmailSigner | CertUsage::EmailRecipient => (TRUST_CA_EMAIL, TRUST_PEER_EMAIL),
        CertUsage::CodeSigning => (TRUST_CA_CODE, 0),
    }
}

/// The verifier's view of the store for one usage: anchors, every other
/// known certificate as a possible intermediate, distrust, peers, CRLs.
/// A certificate as the store knows it (nickname, trust), or as parsed
/// when it does not know it.
pub fn describe(store: &Store, der: &[u8]) -> Result<psm::proto::CertInfo, Error> {
    match store.get(&verify::fingerprint(der)) {
        Ok(info) => Ok(info),
        Err(_) => cert::parse(der).map(|p| p.info("", 0, false, false)),
    }
}

/// Adds what the system policy says to a trust set built from the store:
/// its anchors, trusted for every usage, and its distrusted certificates,
/// which nothing the store says can trust again.
pub fn apply_policy(set: &mut TrustSet, policy: &crate::policy::Policy) {
    set.anchors.extend(policy.anchors.iter().cloned());
    set.distrusted.extend(policy.distrusted.iter().copied());
    set.distrusted_issuer_serial.extend(policy.distrusted_issuer_serial.iter().cloned());
    set.trusted_peers.retain(|fp| !policy.distrusted.contains(fp));
}

pub fn trust_set(store: &Store, usage: CertUsage) -> Result<TrustSet, Error> {
    let (ca_bit, peer_bit) = usage_bits(usage);
    let mut set = TrustSet::default();
    for crate::store::TrustRow { der, sha256, trust, is_ca } in store.all_with_trust()? {
        if trust & TRUST_DISTRUSTED != 0 {
            // Still handed to the verifier, so that a path through it is
            // found and refused as distrusted rather than reported as an
            // unknown issuer.
            set.distrusted.insert(sha256);
            if is_ca {
                set.anchors.push(der);
            }
            continue;
        }
        if trust & peer_bit != 0 {
            set.trusted_peers.insert(sha256);
        }
        if trust & ca_bit != 0 {
            set.anchors.push(der);
        } else if is_ca {
            set.intermediates.push(der);
        }
    }
    set.crls = store.crls()?;
    Ok(set)
}

pub fn verify(shared: &Shared, der: Vec<u8>, usage: CertUsage, name: Option<String>, at: i64) -> Outcome {
    let policy = shared.tls.policy();
    with_store(shared, move |store| {
        let leaf = cert::parse(&der)?;
        let at = if at == 0 {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
        } else {
            u64::try_from(at).map_err(|_| Error::new(Code::PSM_ERR_INVALID_ARGUMENT, "time before 1970"))?
        };
        let name = match name.as_deref() {
            None | Some("") => Name::None,
            Some(n) => Name::parse(n),
        };
        let mut set = trust_set(store, usage)?;
        apply_policy(&mut set, &policy);
        let v = verify::verify(&leaf.der, map_usage(usage), name, at, &set);
        let chain = v.chain.iter().map(|d| describe(store, d)).collect::<Result<Vec<_>, _>>()?;
        Ok(Reply::Verification(Verification { status: v.status.code(), detail: v.detail, chain }))
    })
}

fn map_usage(u: CertUsage) -> Usage {
    match u {
        CertUsage::TlsServer => Usage::TlsServer,
        CertUsage::TlsClient => Usage::TlsClient,
        CertUsage::EmailSigner => Usage::EmailSigner,
        CertUsage::EmailRecipient => Usage::EmailRecipient,
        CertUsage::CodeSigning => Usage::CodeSigning,
    }
}

pub fn override_list(shared: &Shared) -> Outcome {
    with_store(shared, |store| {
        let list: Vec<serde_json::Value> = store
            .overrides()?
            .into_iter()
            .map(|(host, port, sha256, bits, added)| {
                serde_json::json!({
                    "host": host, "port": port, "sha256": hex::encode(sha256),
                    "errors": crate::tls::verifier::error_names(bits), "added": added,
                })
            })
            .collect();
        Ok(Reply::Json(serde_json::Value::Array(list).to_string()))
    })
}

pub fn override_delete(shared: &Shared, host: String, port: u16) -> Outcome {
    with_store(shared, move |store| match store.delete_overrides(&host.to_ascii_lowercase(), port)? {
        0 => Err(Error::new(Code::PSM_ERR_NOT_FOUND, format!("no certificate override for {host}:{port}"))),
        _ => Ok(Reply::Done),
    })
}

/// What would be wrong, though not unreadable, in running under `policy`
/// with this store: a policy that distrusts every trust anchor psm knows
/// leaves nothing that can verify.
pub fn policy_warnings(store: &Store, policy: &crate::policy::Policy) -> Result<Vec<String>, Error> {
    const CA_BITS: u32 = psm::proto::TRUST_CA_TLS_SERVER
        | psm::proto::TRUST_CA_TLS_CLIENT
        | psm::proto::TRUST_CA_EMAIL
        | psm::proto::TRUST_CA_CODE;
    let mut anchors: Vec<Vec<u8>> = store
        .all_with_trust()?
        .into_iter()
        .filter(|r| r.trust & CA_BITS != 0 && r.trust & TRUST_DISTRUSTED == 0)
        .map(|r| r.der)
        .collect();
    anchors.extend(policy.anchors.iter().cloned());
    let mut set = TrustSet::default();
    apply_policy(&mut set, policy);
    let left = anchors.iter().filter(|a| !set.is_distrusted(a)).count();
    Ok(if !anchors.is_empty() && left == 0 {
        vec![format!(
            "trust.distrusted distrusts every trust anchor psm knows ({}): no server, client or e-mail \
             certificate can verify while this policy is in force",
            anchors.len()
        )]
    } else {
        Vec::new()
    })
}
