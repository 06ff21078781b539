//! The dialog tests' side of psm's HTML dialogs: an application that lets
//! psm show dialogs and records its events, and a plain HTTP/1.1 client
//! that sends exactly the bytes a test wants (forged Host, Origin, ...).

use psm::proto::Event;
use psm::{Client, ConnectFlags};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A client that shows dialogs: its events (dialogs to open, dialogs done)
/// arrive on `events`, from whichever of its threads waits on psmd.
pub struct DialogApp {
    pub client: Client,
    pub events: Receiver<Event>,
}

impl DialogApp {
    pub fn connect(socket: &std::path::Path, name: &str) -> DialogApp {
        let client =
            Client::connect_to(socket, name, ConnectFlags { no_spawn: true, no_dialogs: false }).unwrap();
        let (tx, events) = channel();
        let tx = Mutex::new(tx);
        client.set_event_handler(Some(Arc::new(move |e: Event| {
            let _ = tx.lock().unwrap().send(e);
        })));
        DialogApp { client, events }
    }

    /// The next dialog: (id, url, width, height).
    pub fn next_dialog(&self) -> (u64, String, u32, u32) {
        loop {
            match self.events.recv_timeout(super::PATIENCE) {
                Ok(Event::Dialog { id, url, width, height, .. }) => return (id, url, width, height),
                Ok(_) => continue,
                Err(e) => panic!("no dialog came: {e}"),
            }
        }
    }

    /// Waits for the `DialogDone` of dialog `id`.
    pub fn wait_done(&self, id: u64) {
        loop {
            match self.events.recv_timeout(super::PATIENCE) {
                Ok(Event::DialogDone { id: done }) if done == id => return,
                Ok(_) => continue,
                Err(e) => panic!("dialog {id} never ended: {e}"),
            }
        }
    }
}

/// A response as it came.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The form's nonce in a dialog page.
    pub fn nonce(&self) -> String {
        let at =
            self.body.find("name=\"nonce\" value=\"").unwrap_or_else(|| panic!("no nonce in {}", self.body));
        let rest = &self.body[at + 20..];
        rest[..rest.find('"').unwrap()].to_string()
    }

    /// The `name=value` of the cookie the response sets.
    pub fn cookie(&self) -> String {
        let c = self.header("set-cookie").unwrap_or_else(|| panic!("no cookie set: {:?}", self.headers));
        c.split(';').next().unwrap().to_string()
    }
}

/// "http://127.0.0.1:PORT/PATH" → (port, path).
pub fn split_url(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://127.0.0.1:").unwrap_or_else(|| panic!("not a loopback URL: {url}"));
    let slash = rest.find('/').unwrap();
    (rest[..slash].parse().unwrap(), rest[slash..].to_string())
}

/// Sends `raw` to the dialog server and reads the whole response.
pub fn exchange(port: u16, raw: &[u8]) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    parse(&out)
}

pub fn parse(out: &[u8]) -> Response {
    let text = String::from_utf8_lossy(out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Response { status, headers, body: body.to_string() }
}

/// A GET of `url` with the right Host, plus `extra` header lines.
pub fn get(url: &str, extra: &[&str]) -> Response {
    let (port, path) = split_url(url);
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    exchange(port, req.as_bytes())
}

/// A form POST to `url` as psm's own page would send it (Host, Origin,
/// form type), plus `extra` header lines (a second Origin overrides none:
/// pass `origin` None to send none).
pub fn post(url: &str, origin: Option<&str>, extra: &[&str], form: &str) -> Response {
    let (port, path) = split_url(url);
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
        form.len()
    );
    if let Some(o) = origin {
        req.push_str(&format!("Origin: {o}\r\n"));
    }
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.push_str(form);
    exchange(port, req.as_bytes())
}

/// psm's own origin for a dialog URL.
pub fn origin_of(url: &str) -> String {
    let (port, _) = split_url(url);
    format!("http://127.0.0.1:{port}")
}
