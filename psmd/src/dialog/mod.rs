//! psm's HTML dialogs: questions for the user (token password, a server
//! certificate psm cannot verify, which client certificate to send, ...)
//! and read-only views (a certificate, a connection's security), served on
//! loopback for the application to show in an HTML window.
//!
//! PSM 1.x did this with credentials in URLs, state changes over GET and
//! unbounded HTTP. Here:
//! - the URL carries a single-use 256-bit token bound to one dialog of one
//!   session (only its SHA-256 is kept); an unknown token is 404, one whose
//!   dialog ended is 410;
//! - the first GET binds the dialog to that browser with an HttpOnly,
//!   SameSite=Strict cookie; another browser loading the URL gets 410;
//! - answers are POSTs carrying the form's nonce, which is single-use too,
//!   from the same origin: `Origin` must be psmd's (or `null`, which is what
//!   browsers send under `no-referrer`, with `Sec-Fetch-Site: same-origin`),
//!   and `Sec-Fetch-Site` must never be cross-site; nothing is ever changed
//!   by a GET;
//! - `Host` must be the address and port psmd bound, or `localhost` with
//!   that port (DNS rebinding gets 403);
//! - every response carries a strict Content-Security-Policy (no script but
//!   the hashed `window.close()`, `frame-ancestors 'none'`),
//!   `Cache-Control: no-store`, `Referrer-Policy: no-referrer`,
//!   `X-Content-Type-Options: nosniff`; never CORS headers;
//! - sizes, deadlines and a connection cap are enforced before tiny_http
//!   sees a byte ([`front`]);
//! - passwords typed in a page go to the waiting request and nowhere else:
//!   not in logs, URLs or any process's arguments.

pub mod front;
mod pages;

use crate::prompt::{Lookup, Prompts, Verdict, random32, token_hash};
use psm::proto::{PromptKind, Secret};
use psm::{Code, Error};
use serde::Serialize;
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;
use zeroize::Zeroizing;

pub use pages::Page;

/// Threads answering tiny_http's requests.
const HANDLERS: usize = 4;
/// How long a page waits for its answer to be checked (a password's KDF).
const VERDICT_WAIT: Duration = Duration::from_secs(60);
const COOKIE: &str = "psm_dialog";

/// What a dialog shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum PageKind {
    /// A question that a prompt handler could answer instead.
    Prompt(PromptKind),
    /// A read-only certificate viewer.
    CertView,
    /// What protects a TLS connection (PSM's Security Advisor).
    SecurityInfo,
    /// What protects a signed or encrypted message, by psm's own verdict.
    MessageInfo,
}

impl PageKind {
    pub fn is_password(self) -> bool {
        matches!(self, PageKind::Prompt(PromptKind::Password | PromptKind::NewPassword))
    }

    pub fn prompt_kind(self) -> Option<PromptKind> {
        match self {
            PageKind::Prompt(k) => Some(k),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PageKind::Prompt(PromptKind::ServerTrust) => "server-trust",
            PageKind::Prompt(PromptKind::ClientCert) => "client-cert",
            PageKind::Prompt(PromptKind::Password) => "password",
            PageKind::Prompt(PromptKind::NewPassword) => "new-password",
            PageKind::Prompt(PromptKind::Confirm) => "confirm",
            PageKind::CertView => "cert-view",
            PageKind::SecurityInfo => "security-info",
            PageKind::MessageInfo => "message-info",
        }
    }

    /// The window size the dialog asks for.
    pub fn size(self) -> (u32, u32) {
        match self {
            PageKind::Prompt(PromptKind::Password) => (560, 520),
            PageKind::Prompt(PromptKind::NewPassword) => (560, 620),
            PageKind::Prompt(PromptKind::Confirm) => (560, 420),
            PageKind::Prompt(PromptKind::ClientCert) => (640, 520),
            PageKind::Prompt(PromptKind::ServerTrust) => (720, 760),
            PageKind::CertView | PageKind::SecurityInfo | PageKind::MessageInfo => (720, 720),
        }
    }
}

/// The running dialog server.
pub struct DialogServer {
    port: u16,
    /// Accepted `Host` values and the matching origins.
    hosts: Vec<String>,
    origins: Vec<String>,
    backend: PathBuf,
    pub stats: Arc<front::FrontStats>,
}

impl DialogServer {
    /// Binds 127.0.0.1 on an ephemeral port (and [::1] on the same port when
    /// the machine has IPv6), tiny_http on a private Unix socket in
    /// `socket_dir`, and starts the threads.
    pub fn start(prompts: Weak<Prompts>, socket_dir: Option<&Path>) -> Result<DialogServer, Error> {
        let io = |what: &str, e: std::io::Error| {
            Error::new(Code::PSM_ERR_IO, format!("dialog server: {what}: {e}"))
        };
        let v4 = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .map_err(|e| io("binding 127.0.0.1", e))?;
        let port = v4.local_addr().map_err(|e| io("reading the port", e))?.port();
        let mut listeners = vec![v4];
        let mut hosts = vec![format!("127.0.0.1:{port}"), format!("localhost:{port}")];
        if let Ok(v6) = TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port))) {
            listeners.push(v6);
            hosts.push(format!("[::1]:{port}"));
        }
        let origins = hosts.iter().map(|h| format!("http://{h}")).collect();
        let dir = match socket_dir {
            Some(d) => d.to_path_buf(),
            None => private_dir().map_err(|e| io("making a private directory", e))?,
        };
        let backend = dir.join("dialogs");
        let _ = std::fs::remove_file(&backend);
        let unix =
            std::os::unix::net::UnixListener::bind(&backend).map_err(|e| io("binding its socket", e))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&backend, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io("securing its socket", e))?;
        let http = tiny_http::Server::from_listener(unix, None)
            .map_err(|e| Error::new(Code::PSM_ERR_IO, format!("dialog server: {e}")))?;
        let http = Arc::new(http);
        let server = DialogServer { port, hosts, origins, backend, stats: Arc::default() };
        let shared = Arc::new(Handler {
            hosts: server.hosts.clone(),
            origins: server.origins.clone(),
            prompts,
            pages: pages::Pages::new()?,
        });
        for i in 0..HANDLERS {
            let (http, h) = (http.clone(), shared.clone());
            std::thread::Builder::new()
                .name(format!("psmd-dialog-{i}"))
                .spawn(move || {
                    while let Ok(req) = http.recv() {
                        h.handle(req);
                    }
                })
                .map_err(|e| io("starting a thread", e))?;
        }
        let (backend, stats) = (server.backend.clone(), server.stats.clone());
        std::thread::Builder::new()
            .name("psmd-dialog-front".into())
            .spawn(move || front::run(listeners, backend, limits(), stats))
            .map_err(|e| io("starting a thread", e))?;
        tracing::info!(port, "dialog server listening on loopback");
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A dialog's address.
    pub fn url(&self, token_hex: &str) -> String {
        format!("http://127.0.0.1:{}/d/{token_hex}", self.port)
    }
}

/// The guard's limits, with a connection cap that leaves most descriptors
/// to the applications' sessions and channels.
fn limits() -> front::Limits {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct we pass.
    let nofile =
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 { lim.rlim_cur } else { 1024 };
    let d = front::Limits::default();
    let cap = usize::try_from(nofile / 4).unwrap_or(d.max_conns).clamp(16, d.max_conns);
    front::Limits { max_conns: cap, ..d }
}

/// A 0700 directory of our own, for when psmd was given none.
fn private_dir() -> std::io::Result<PathBuf> {
    let base = std::env::temp_dir().join(format!("psmd-dialogs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(&base)?;
    Ok(base)
}

struct Handler {
    hosts: Vec<String>,
    origins: Vec<String>,
    prompts: Weak<Prompts>,
    pages: pages::Pages,
}

/// A response before the security headers go on.
struct Reply {
    status: u16,
    body: String,
    content_type: &'static str,
    cookie: Option<String>,
    allow: Option<&'static str>,
}

impl Reply {
    fn html(status: u16, body: String) -> Reply {
        Reply { status, body, content_type: "text/html; charset=utf-8", cookie: None, allow: None }
    }
}

fn header<'a>(req: &'a tiny_http::Request, name: &str) -> Option<&'a str> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn cookie_of(req: &tiny_http::Request) -> Option<[u8; 32]> {
    let all = header(req, "cookie")?;
    all.split(';').filter_map(|kv| kv.trim().split_once('=')).find(|(k, _)| *k == COOKIE).and_then(
        |(_, v)| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(v, &mut out).ok().map(|_| out)
        },
    )
}

/// Constant-time equality of two secrets.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Handler {
    fn handle(&self, mut req: tiny_http::Request) {
        let reply = self.route(&mut req);
        let _ = req.respond(self.finish(reply));
    }

    fn finish(&self, r: Reply) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
        let h = |k: &str, v: &str| {
            tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("a valid header")
        };
        let mut resp = tiny_http::Response::from_data(r.body.into_bytes())
            .with_status_code(r.status)
            .with_header(h("Content-Type", r.content_type))
            .with_header(h("Content-Security-Policy", &pages::csp()))
            .with_header(h("Cache-Control", "no-store"))
            .with_header(h("Referrer-Policy", "no-referrer"))
            .with_header(h("X-Content-Type-Options", "nosniff"))
            .with_header(h("X-Frame-Options", "DENY"))
            .with_header(h("Cross-Origin-Opener-Policy", "same-origin"))
            .with_header(h("Cross-Origin-Resource-Policy", "same-origin"))
            .with_header(h("Connection", "close"));
        if let Some(c) = r.cookie {
            resp = resp.with_header(h("Set-Cookie", &c));
        }
        if let Some(a) = r.allow {
            resp = resp.with_header(h("Allow", a));
        }
        resp
    }

    fn message(&self, status: u16, title: &str, text: &str) -> Reply {
        Reply::html(status, self.pages.message(title, text))
    }

    fn route(&self, req: &mut tiny_http::Request) -> Reply {
        // DNS rebinding: a page of another site whose name now points at
        // 127.0.0.1 sends its own name as Host.
        if !header(req, "host").is_some_and(|h| self.hosts.iter().any(|a| a.eq_ignore_ascii_case(h))) {
            return self.message(
                403,
                "Forbidden",
                "This address is psm's, and only psm's own pages are served here.",
            );
        }
        if header(req, "sec-fetch-site").is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) {
            return self.message(403, "Forbidden", "Another site may not open psm's dialogs.");
        }
        let path = req.url().split('?').next().unwrap_or("").to_string();
        let method = req.method().clone();
        if path == "/s/psm.css" {
            return match method {
                tiny_http::Method::Get | tiny_http::Method::Head => Reply {
                    status: 200,
                    body: pages::CSS.to_string(),
                    content_type: "text/css; charset=utf-8",
                    cookie: None,
                    allow: None,
                },
                _ => Reply { allow: Some("GET"), ..self.message(405, "Method not allowed", "") },
            };
        }
        let Some(token) = path.strip_prefix("/d/").and_then(parse_token) else {
            return self.message(404, "Not found", "There is no such page.");
        };
        let token_hash = token_hash(&token);
        let Some(prompts) = self.prompts.upgrade() else {
            return self.message(503, "Unavailable", "psm is stopping.");
        };
        match method {
            tiny_http::Method::Get => self.get(&prompts, req, &token_hash),
            tiny_http::Method::Post => self.post(&prompts, req, &token_hash),
            _ => Reply {
                allow: Some("GET, POST"),
                ..self.message(
                    405,
                    "Method not allowed",
                    "Dialogs are loaded with GET and answered with POST.",
                )
            },
        }
    }

    fn get(&self, prompts: &Prompts, req: &tiny_http::Request, token_hash: &[u8; 32]) -> Reply {
        let cookie = cookie_of(req);
        let path = req.url().split('?').next().unwrap_or("").to_string();
        prompts.with_dialog(token_hash, |found| match found {
            Lookup::Open(_, web, _) => {
                let mut set = None;
                match (&web.cookie, cookie) {
                    (None, _) => {
                        let c = random32();
                        web.cookie = Some(c);
                        set = Some(format!(
                            "{COOKIE}={}; Path={path}; HttpOnly; SameSite=Strict",
                            hex::encode(c)
                        ));
                    }
                    (Some(mine), Some(theirs)) if same(mine, &theirs) => {}
                    _ => return self.message(410, "Already open", "This dialog is open in another window."),
                }
                let body = self.pages.form(&web.page, &hex::encode(web.nonce), web.note.as_deref());
                match body {
                    Ok(body) => Reply { cookie: set, ..Reply::html(200, body) },
                    Err(e) => self.message(500, "Error", &e.message),
                }
            }
            Lookup::Ended => self.message(410, "Gone", "This dialog has ended. You may close this window."),
            Lookup::Unknown => self.message(404, "Not found", "There is no such dialog."),
        })
    }

    fn post(&self, prompts: &Prompts, req: &mut tiny_http::Request, token_hash: &[u8; 32]) -> Reply {
        // Answers come only from psm's own page. Under `Referrer-Policy:
        // no-referrer` a browser sends `Origin: null` even for its own
        // form; then `Sec-Fetch-Site` (which no page can forge) must say
        // the form was psm's.
        let ours = match header(req, "origin") {
            Some("null") => {
                header(req, "sec-fetch-site").is_some_and(|s| s.eq_ignore_ascii_case("same-origin"))
            }
            Some(o) => self.origins.iter().any(|a| a.eq_ignore_ascii_case(o)),
            None => false,
        };
        if !ours {
            return self.message(403, "Forbidden", "Answers are accepted only from psm's own dialog page.");
        }
        if !header(req, "content-type").is_some_and(|t| {
            t.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")
        }) {
            return self.message(415, "Unsupported", "Answers are HTML forms.");
        }
        let cookie = cookie_of(req);
        let mut body = Zeroizing::new(Vec::new());
        if req.as_reader().take(64 * 1024).read_to_end(&mut body).is_err() {
            return self.message(400, "Bad request", "The answer could not be read.");
        }
        let form: Vec<(String, Zeroizing<String>)> = form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), Zeroizing::new(v.into_owned())))
            .collect();
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let nonce = field("nonce").and_then(|n| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(n, &mut out).ok().map(|_| out)
        });
        // Under the dialog's lock: check who asks, consume the nonce, and
        // make the answer; then wait for its verdict without the lock.
        let decided = prompts.with_dialog(token_hash, |found| {
            let (id, web) = match found {
                Lookup::Open(id, web, _) => (id, web),
                Lookup::Ended => {
                    return Err(self.message(
                        410,
                        "Gone",
                        "This dialog has ended. You may close this window.",
                    ));
                }
                Lookup::Unknown => return Err(self.message(404, "Not found", "There is no such dialog.")),
            };
            let owner = matches!((&web.cookie, &cookie), (Some(a), Some(b)) if same(a, b));
            if !owner {
                return Err(self.message(403, "Forbidden", "This dialog belongs to another window."));
            }
            if web.checking {
                return Err(self.message(409, "Busy", "Your answer is being checked."));
            }
            if !nonce.is_some_and(|n| same(&n, &web.nonce)) {
                return Err(self.message(
                    403,
                    "Stale form",
                    "This form was already sent, or is not psm's. Load the dialog again.",
                ));
            }
            // The nonce is spent, whatever happens next.
            web.nonce = random32();
            let page = web.page.clone();
            let value = match answer_of(&page, &field) {
                Ok(v) => v,
                Err(note) => {
                    web.note = Some(note);
                    return Ok((id, None, page));
                }
            };
            web.checking = true;
            Ok((id, Some(value), page))
        });
        let (id, value, page) = match decided {
            Ok(x) => x,
            Err(reply) => return reply,
        };
        let Some(value) = value else {
            // A mistake the page itself catches (passwords that differ): the form again.
            return self.form_again(prompts, token_hash, &page);
        };
        let verdict = prompts.answer_dialog(id, value).and_then(|rx| {
            rx.recv_timeout(VERDICT_WAIT)
                .map_err(|_| Error::new(Code::PSM_ERR_TIMEOUT, "psm took too long to check the answer"))
        });
        match verdict {
            Ok(Verdict::Done) => Reply::html(200, self.pages.done()),
            Ok(Verdict::Retry(_)) => self.form_again(prompts, token_hash, &page),
            Ok(Verdict::Failed(why)) => self.message(200, "Not done", &why),
            Err(e) => self.message(500, "Error", &e.message),
        }
    }

    fn form_again(&self, prompts: &Prompts, token_hash: &[u8; 32], page: &Page) -> Reply {
        prompts.with_dialog(token_hash, |found| match found {
            Lookup::Open(_, web, _) => {
                match self.pages.form(page, &hex::encode(web.nonce), web.note.as_deref()) {
                    Ok(body) => Reply::html(200, body),
                    Err(e) => self.message(500, "Error", &e.message),
                }
            }
            _ => self.message(410, "Gone", "This dialog has ended. You may close this window."),
        })
    }
}

/// The answer a form gives: `Ok(None)` is a cancel; `Err(note)` a mistake
/// to show above the form again.
fn answer_of<'a>(page: &Page, field: &dyn Fn(&str) -> Option<&'a str>) -> Result<Option<Secret>, String> {
    if field("action") == Some("cancel") {
        return Ok(None);
    }
    match page.kind {
        PageKind::Prompt(PromptKind::Password) => {
            Ok(Some(Secret(field("password").unwrap_or_default().to_string())))
        }
        PageKind::Prompt(PromptKind::NewPassword) => {
            let (a, b) = (field("password").unwrap_or_default(), field("confirm").unwrap_or_default());
            if a != b {
                return Err("The two passwords differ; type the same password twice.".into());
            }
            Ok(Some(Secret(a.to_string())))
        }
        PageKind::CertView | PageKind::SecurityInfo | PageKind::MessageInfo => {
            Ok(Some(Secret("close".into())))
        }
        PageKind::Prompt(_) => match field("choice") {
            Some(c) if page.choices.iter().any(|x| x == c) => Ok(Some(Secret(c.to_string()))),
            _ => Err("Choose one of the answers.".into()),
        },
    }
}

fn parse_token(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then_some(())?;
    hex::decode_to_slice(s, &mut out).ok().map(|_| out)
}
