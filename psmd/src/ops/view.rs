//! Read-only dialogs: a certificate, and what protects a TLS channel
//! (PSM's "Security Advisor"). Each runs on a blocking thread and replies
//! `Done` once the user closed the dialog.

use crate::dialog::PageKind;
use crate::ops::cert::{apply_policy, describe, trust_set};
use crate::ops::smime::BlockingJob;
use crate::pki::verify::{self, Name, Status, Usage};
use crate::prompt::Question;
use crate::store::parse_fingerprint;
use psm::proto::{
    CertUsage, Reply, TRUST_CA_CODE, TRUST_CA_EMAIL, TRUST_CA_TLS_CLIENT, TRUST_CA_TLS_SERVER,
    TRUST_DISTRUSTED, TRUST_PEER_EMAIL, TRUST_PEER_TLS,
};
use psm::{Code, Error};
use serde_json::{Value, json};

fn show(
    jc: &crate::ops::smime::JobCtx<'_>,
    kind: PageKind,
    message: String,
    details: Value,
) -> Result<Reply, Error> {
    jc.ctx.prompts.ask(jc.to, Question { kind, message, details, choices: Vec::new() })?;
    Ok(Reply::Done)
}

/// The usage a certificate is best judged for, by its extended key usage.
fn usage_of(eku: Option<&Vec<String>>) -> (CertUsage, Usage, &'static str) {
    let has = |p: &str| eku.is_some_and(|e| e.iter().any(|x| x == p));
    if has("emailProtection") && !has("serverAuth") {
        (CertUsage::EmailSigner, Usage::EmailSigner, "signing e-mail")
    } else if has("clientAuth") && !has("serverAuth") {
        (CertUsage::TlsClient, Usage::TlsClient, "identifying a TLS client")
    } else {
        (CertUsage::TlsServer, Usage::TlsServer, "identifying a TLS server")
    }
}

fn trust_words(bits: u32) -> Vec<&'static str> {
    [
        (TRUST_CA_TLS_SERVER, "vouching for web and other TLS servers"),
        (TRUST_CA_TLS_CLIENT, "vouching for TLS clients"),
        (TRUST_CA_EMAIL, "vouching for e-mail senders"),
        (TRUST_CA_CODE, "vouching for code"),
        (TRUST_PEER_TLS, "this TLS server itself"),
        (TRUST_PEER_EMAIL, "this e-mail sender itself"),
        (TRUST_DISTRUSTED, "nothing: you distrust it"),
    ]
    .into_iter()
    .filter(|(b, _)| bits & b != 0)
    .map(|(_, w)| w)
    .collect()
}

/// `CertView`: a stored certificate, its chain and what psm makes of it now.
pub fn cert_view(sha256_hex: String) -> BlockingJob {
    Box::new(move |jc| {
        let fp = parse_fingerprint(&sha256_hex)?;
        let policy = jc.ctx.policy();
        let details = {
            let store = jc.ctx.lock_store();
            let info = store.get(&fp)?;
            let (cu, usage, words) = usage_of(info.ext_key_usage.as_ref());
            let mut set = trust_set(&store, cu)?;
            apply_policy(&mut set, &policy);
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let (valid, verdict, chain) = if info.is_ca {
                // An authority is judged by the trust the user gave it.
                let ca_bits = TRUST_CA_TLS_SERVER | TRUST_CA_TLS_CLIENT | TRUST_CA_EMAIL | TRUST_CA_CODE;
                let in_date =
                    (info.not_before..=info.not_after).contains(&i64::try_from(now).unwrap_or(i64::MAX));
                let distrusted = info.trust & TRUST_DISTRUSTED != 0 || policy.distrusted.contains(&fp);
                let trusted = info.trust & ca_bits != 0 && !distrusted;
                let verdict = match (trusted, in_date) {
                    (true, true) => {
                        "A certificate authority you trust: psm accepts what it vouches for.".to_string()
                    }
                    (true, false) => {
                        "A certificate authority you trust, but outside its validity period.".to_string()
                    }
                    (false, _) if distrusted => "A certificate authority you distrust.".to_string(),
                    (false, _) => "A certificate authority you do not trust (psm ignores it).".to_string(),
                };
                (trusted && in_date, verdict, vec![info.clone()])
            } else {
                let v = verify::verify(&info.der, usage, Name::None, now, &set);
                let chain = v.chain.iter().map(|d| describe(&store, d)).collect::<Result<Vec<_>, _>>()?;
                let valid = v.status == Status::Valid;
                let verdict = if valid {
                    format!("psm verified this certificate for {words}.")
                } else {
                    format!("psm could not verify this certificate for {words}: {}.", v.detail)
                };
                (valid, verdict, chain)
            };
            json!({
                "certificate": info,
                "chain": if chain.is_empty() { vec![info.clone()] } else { chain },
                "valid": valid,
                "verdict": verdict,
                "trust": trust_words(info.trust),
            })
        };
        let message = "A certificate psm holds.".to_string();
        show(jc, PageKind::CertView, message, details)
    })
}

/// `SslShowInfo`: what protects one TLS channel, from its info JSON.
pub fn security_info(info_json: String) -> BlockingJob {
    Box::new(move |jc| {
        let info: Value = serde_json::from_str(&info_json)
            .map_err(|e| Error::new(Code::PSM_ERR_INTERNAL, format!("channel info: {e}")))?;
        if info["mode"] == "plain" {
            return Err(Error::new(
                Code::PSM_ERR_INVALID_ARGUMENT,
                "this channel is plain TCP (no TLS yet): nothing protects it",
            ));
        }
        let host = info["server_name"].as_str().or(info["client_address"].as_str()).unwrap_or("").to_string();
        let port = info["port"].as_u64().or(info["local_port"].as_u64()).unwrap_or(0);
        let result = info["verification"]["result"].as_str().unwrap_or("");
        let how = info["verification"]["override"].as_str();
        let verified = result == "PSM_OK";
        let leaf = &info["peer_certificates"][0];
        let (summary, identity) = if verified {
            (
                format!("psm verified that this is {host}."),
                format!(
                    "{host} proved it holds the key of a certificate issued to {} by {}, an authority you trust \
                     to vouch for servers.",
                    leaf["subject"].as_str().unwrap_or("?"),
                    leaf["issuer"].as_str().unwrap_or("?")
                ),
            )
        } else if let Some(how) = how {
            (
                format!("psm could not verify {host}; you accepted its certificate ({how})."),
                format!(
                    "psm could not verify the certificate ({}), so this may not be {host}: you told psm to connect \
                     {}.",
                    info["verification"]["detail"].as_str().unwrap_or(result),
                    if how == "always" { "to it always" } else { "this time" }
                ),
            )
        } else {
            (format!("The server's identity was not verified ({result})."), String::new())
        };
        let details = json!({
            "host": host,
            "port": port,
            "protocol": info["version"],
            "cipher_suite": info["cipher_suite"],
            "group": info["key_exchange_group"],
            "chain": info["peer_certificates"],
            "verified": verified,
            "summary": summary,
            "identity": identity,
            "client_cert": info["client_certificate"]["subject"],
        });
        show(jc, PageKind::SecurityInfo, format!("The security of your connection to {host}."), details)
    })
}

/// Verdicts on messages psmd gave, newest last: a session may have psm
/// show one again in its dialog, and only its own.
#[derive(Default)]
pub struct Verdicts {
    kept: std::sync::Mutex<std::collections::VecDeque<(u64, u64, psm::proto::SmimeInfo)>>,
    next: std::sync::atomic::AtomicU64,
}

/// Verdicts kept (all sessions); older ones can no longer be shown.
const VERDICTS_KEPT: usize = 256;

impl Verdicts {
    /// Keeps `info` (without its content) for `session`; returns its id.
    pub fn keep(&self, session: u64, info: &psm::proto::SmimeInfo) -> u64 {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let mut copy = info.clone();
        copy.content = psm::proto::ByteBuf::new();
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.push_back((session, id, copy));
        while kept.len() > VERDICTS_KEPT {
            kept.pop_front();
        }
        id
    }

    fn get(&self, session: u64, id: u64) -> Option<psm::proto::SmimeInfo> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.iter().find(|(s, i, _)| *s == session && *i == id).map(|(_, _, info)| info.clone())
    }
}

/// `SmimeShowInfo`: psm's own verdict on a message, in words.
pub fn message_info(result_id: u64) -> BlockingJob {
    Box::new(move |jc| {
        let info = jc.ctx.smime_results.get(jc.to.session_id, result_id).ok_or_else(|| {
            Error::new(
                Code::PSM_ERR_NOT_FOUND,
                format!("no verdict {result_id} in this session (psm keeps the last {VERDICTS_KEPT})"),
            )
        })?;
        let good = info.status == Code::PSM_OK;
        let signer = info.signer.as_ref().map(|s| s.subject.clone()).unwrap_or_default();
        let summary = match (info.signed, good) {
            (true, true) => format!("A good signature by {signer}."),
            (true, false) => format!("psm does not vouch for this signature: {}.", info.detail),
            (false, _) if info.encrypted => "Encrypted, not signed: psm cannot tell who sent it.".to_string(),
            (false, _) => info.detail.clone(),
        };
        let why = if info.signed && good {
            let anchor = info.chain.last().map(|c| c.subject.clone()).unwrap_or_default();
            format!(
                "The message is exactly what {signer} signed ({}). Their certificate was valid for e-mail when \
                 they signed, and it leads to {anchor}, an authority you trust to vouch for e-mail senders.",
                info.digest
            )
        } else {
            String::new()
        };
        let details = json!({
            "summary": summary,
            "good": good,
            "why": why,
            "signed": info.signed,
            "encrypted": info.encrypted,
            "cipher": info.cipher,
            "digest": info.digest,
            "signing_time": info.signing_time,
            "status_now": format!("{:?}", info.status_now),
            "now_ok": info.status_now == Code::PSM_OK,
            "chain": info.chain,
        });
        show(jc, PageKind::MessageInfo, "What protects this message.".to_string(), details)
    })
}
