//! The dialogs' pages: minijinja templates from `psmd/templates/`, built
//! into the binary. Plain HTML and CSS that work without JavaScript; the
//! only script is the `window.close()` of the page that ends a dialog,
//! allowed by its hash in the Content-Security-Policy.

use super::PageKind;
use base64::Engine;
use minijinja::{Environment, Value, context};
use psm::proto::PromptKind;
use psm::{Code, Error};
use serde::Serialize;
use std::sync::LazyLock;

pub const CSS: &str = include_str!("../../templates/psm.css");
const CLOSE_SCRIPT: &str = "window.close();";

const TEMPLATES: [(&str, &str); 13] = [
    ("base.html", include_str!("../../templates/base.html")),
    ("macros.html", include_str!("../../templates/macros.html")),
    ("password.html", include_str!("../../templates/password.html")),
    ("new_password.html", include_str!("../../templates/new_password.html")),
    ("server_trust.html", include_str!("../../templates/server_trust.html")),
    ("client_cert.html", include_str!("../../templates/client_cert.html")),
    ("confirm.html", include_str!("../../templates/confirm.html")),
    ("cert_view.html", include_str!("../../templates/cert_view.html")),
    ("security_info.html", include_str!("../../templates/security_info.html")),
    ("message_info.html", include_str!("../../templates/message_info.html")),
    ("done.html", include_str!("../../templates/done.html")),
    ("message.html", include_str!("../../templates/message.html")),
    ("psm.css", CSS),
];

/// The Content-Security-Policy of every response: nothing but psm's own
/// style sheet and forms, one hashed script, never framed.
pub fn csp() -> String {
    static CSP: LazyLock<String> = LazyLock::new(|| {
        use sha2::Digest;
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(CLOSE_SCRIPT));
        format!(
            "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'sha256-{hash}'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
    });
    CSP.clone()
}

/// One dialog's content.
#[derive(Debug, Serialize)]
pub struct Page {
    pub kind: PageKind,
    pub message: String,
    pub details: serde_json::Value,
    pub choices: Vec<String>,
    pub app: String,
    pub pid: i32,
    pub exe: Option<String>,
}

pub struct Pages {
    env: Environment<'static>,
}

/// A Unix time as a date people read.
fn when(t: Value) -> String {
    match i64::try_from(t.clone()) {
        Ok(t) => psm::utc_date(t),
        Err(_) => t.to_string(),
    }
}

/// Hex split in byte pairs, as fingerprints are usually shown.
fn colons(s: String) -> String {
    s.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).to_uppercase()).collect::<Vec<_>>().join(":")
}

fn template_of(kind: PageKind) -> &'static str {
    match kind {
        PageKind::Prompt(PromptKind::Password) => "password.html",
        PageKind::Prompt(PromptKind::NewPassword) => "new_password.html",
        PageKind::Prompt(PromptKind::ServerTrust) => "server_trust.html",
        PageKind::Prompt(PromptKind::ClientCert) => "client_cert.html",
        PageKind::Prompt(PromptKind::Confirm) => "confirm.html",
        PageKind::CertView => "cert_view.html",
        PageKind::SecurityInfo => "security_info.html",
        PageKind::MessageInfo => "message_info.html",
    }
}

fn render_error(e: minijinja::Error) -> Error {
    Error::new(Code::PSM_ERR_INTERNAL, format!("a dialog page failed to render: {e}"))
}

impl Pages {
    pub fn new() -> Result<Pages, Error> {
        let mut env = Environment::new();
        for (name, text) in TEMPLATES {
            env.add_template(name, text).map_err(render_error)?;
        }
        env.add_filter("when", when);
        env.add_filter("colons", colons);
        Ok(Pages { env })
    }

    /// A dialog's form (or view), with the nonce its answer must carry.
    pub fn form(&self, page: &Page, nonce: &str, note: Option<&str>) -> Result<String, Error> {
        let t = self.env.get_template(template_of(page.kind)).map_err(render_error)?;
        t.render(context! {
            page => Value::from(minijinja::value::Serde(page)),
            d => Value::from(minijinja::value::Serde(&page.details)),
            nonce => nonce,
            note => note,
        })
        .map_err(render_error)
    }

    pub fn done(&self) -> String {
        self.render_or_text("done.html", context! {}, "Done. You may close this window.")
    }

    pub fn message(&self, title: &str, text: &str) -> String {
        self.render_or_text("message.html", context! { title => title, text => text }, text)
    }

    fn render_or_text(&self, name: &str, ctx: Value, fallback: &str) -> String {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .unwrap_or_else(|_| minijinja::HtmlEscape(fallback).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(kind: PageKind, details: serde_json::Value, choices: &[&str]) -> Page {
        Page {
            kind,
            message: "Say <yes> & go".into(),
            details,
            choices: choices.iter().map(|s| s.to_string()).collect(),
            app: "mail <client>".into(),
            pid: 42,
            exe: Some("/usr/bin/mail".into()),
        }
    }

    #[test]
    fn every_page_renders_escaped_with_its_nonce() {
        let pages = Pages::new().unwrap();
        let cert = serde_json::json!({
            "subject": "CN=<script>", "issuer": "CN=CA", "sha256_hex": "ab".repeat(32), "sha1_hex": "cd".repeat(20),
            "serial_hex": "01", "not_before": 0, "not_after": 1_900_000_000i64, "dns_names": ["x.test"], "emails": []
        });
        let all = [
            page(PageKind::Prompt(PromptKind::Password), serde_json::json!({"token": "psm soft token"}), &[]),
            page(PageKind::Prompt(PromptKind::NewPassword), serde_json::json!({"min_length": 8}), &[]),
            page(
                PageKind::Prompt(PromptKind::ServerTrust),
                serde_json::json!({"host": "h.test", "port": 443, "errors": ["PSM_ERR_CERT_EXPIRED", "odd"], "detail": "d", "chain": [cert]}),
                &["once", "always", "reject"],
            ),
            page(
                PageKind::Prompt(PromptKind::ClientCert),
                serde_json::json!({"certificates": [{"choice": "sha256:00", "nickname": "me", "subject": "CN=me", "issuer": "CN=CA", "not_after": 0}]}),
                &["sha256:00"],
            ),
            page(
                PageKind::Prompt(PromptKind::Confirm),
                serde_json::json!({"certificate": cert}),
                &["allow", "deny"],
            ),
            page(
                PageKind::CertView,
                serde_json::json!({"certificate": cert, "chain": [cert, cert], "valid": true, "verdict": "ok", "trust": ["TLS servers"]}),
                &[],
            ),
            page(
                PageKind::MessageInfo,
                serde_json::json!({"summary": "s", "good": true, "why": "w", "signed": true, "encrypted": true, "cipher": "aes", "digest": "sha256", "signing_time": 0, "status_now": "PSM_OK", "now_ok": true, "chain": [cert]}),
                &[],
            ),
            page(
                PageKind::SecurityInfo,
                serde_json::json!({"host": "h.test", "port": 443, "protocol": "TLS 1.3", "cipher_suite": "AES", "chain": [cert], "verified": true, "summary": "s", "identity": "i"}),
                &[],
            ),
        ];
        for p in &all {
            let html = pages.form(p, "NONCE123", Some("a <note>")).unwrap();
            assert!(html.contains("NONCE123"), "{:?}", p.kind);
            assert!(!html.contains("<script>"), "{:?} let markup through", p.kind);
            assert!(html.contains("mail &lt;client&gt;"), "{:?}", p.kind);
        }
        let trust = pages.form(&all[2], "n", None).unwrap();
        assert!(trust.contains("It has expired.") && trust.contains("odd"), "{trust}");
        assert!(trust.contains("2030-03-17 17:46:40 UTC"), "{trust}");
        assert!(pages.done().contains("<script>window.close();</script>"));
        assert!(csp().contains("frame-ancestors 'none'"));
    }

    #[test]
    fn dates_read_as_dates() {
        assert_eq!(when(Value::from(0)), "1970-01-01 00:00:00 UTC");
        assert_eq!(when(Value::from(951_782_400)), "2000-02-29 00:00:00 UTC");
        assert_eq!(colons("abcd".into()), "AB:CD");
    }
}
