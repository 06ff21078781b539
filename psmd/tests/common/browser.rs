//! A real browser for the dialog tests: Debian's headless Chromium driven
//! through chromedriver's W3C WebDriver HTTP API, with a fresh profile.
//! Each test gets its own chromedriver and session; both end on drop.

use base64::Engine;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

/// Where the screenshots go: `target/dialog-screenshots/` of the workspace.
pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dialog-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // chromedriver may keep the connection open: read the head, then
    // exactly the body it announces (a length, or chunks).
    let mut r = std::io::BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        use std::io::BufRead;
        if r.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let lower = head.to_ascii_lowercase();
    let json = if lower.contains("transfer-encoding: chunked") {
        use std::io::BufRead;
        let mut out = Vec::new();
        loop {
            let mut len = String::new();
            r.read_line(&mut len).unwrap();
            let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk).unwrap();
            out.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    } else {
        let n = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or_else(|| panic!("webdriver response without a length: {head}"));
        let mut body = vec![0u8; n];
        r.read_exact(&mut body).unwrap();
        String::from_utf8_lossy(&body).into_owned()
    };
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("webdriver sent no JSON ({e}): {json}"))
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width` x `height`.
    /// Panics when they are not installed: `make test-deps` installs them.
    pub fn start(width: u32, height: u32) -> Browser {
        assert!(
            std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists(),
            "the dialog browser tests need Debian's chromium and chromium-driver (make test-deps)"
        );
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        super::wait_until("chromedriver listens", || TcpStream::connect(("127.0.0.1", port)).is_ok());
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                    "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={width},{height}"),
                ],
            },
        }}});
        let r = http(port, "POST", "/session", Some(&caps));
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromium did not start: {r}"))
            .to_string();
        Browser { driver, port, session, _profile: profile }
    }

    fn cmd(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        let r = http(self.port, method, &format!("/session/{}{what}", self.session), body.as_ref());
        if r["value"].get("error").is_some() {
            panic!("webdriver {method} {what}: {}", r["value"]);
        }
        r["value"].clone()
    }

    pub fn open(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn source(&self) -> String {
        self.cmd("GET", "/source", None).as_str().unwrap_or_default().to_string()
    }

    fn element(&self, css: &str) -> String {
        let v = self.cmd("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        v.as_object().and_then(|o| o.values().next()).and_then(|v| v.as_str()).unwrap().to_string()
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.cmd("POST", &format!("/element/{e}/value"), Some(json!({ "text": text })));
    }

    pub fn click(&self, css: &str) {
        let e = self.element(css);
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    /// Saves a PNG of the window as `target/dialog-screenshots/NAME.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Waits until the page's source contains `text`.
    pub fn wait_for_text(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + super::PATIENCE;
        loop {
            let page = self.source();
            if page.contains(text) {
                return page;
            }
            if std::time::Instant::now() > deadline {
                self.screenshot("failed");
                panic!("the page never showed {text:?}; it shows:\n{page}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            http(self.port, "DELETE", &format!("/session/{}", self.session), None)
        });
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
