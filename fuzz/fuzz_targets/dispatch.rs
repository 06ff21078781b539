//! The daemon's request dispatcher on arbitrary frames: one session, frames
//! split from the input by the real frame reader, every outcome carried out
//! the way the event loop would (pool work run inline, channels fed and
//! finished). Nothing may panic, whatever the order of requests.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psm::proto::FrameReader;
use psmd::session::{Outcome, Session, Shared};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// One store for the whole run, in a directory removed at exit by the OS's
/// tmp cleaning; requests may fill it, which is part of what is fuzzed.
fn token() -> Arc<psmd::token::TokenState> {
    static TOKEN: OnceLock<Arc<psmd::token::TokenState>> = OnceLock::new();
    TOKEN
        .get_or_init(|| {
            let store = store();
            let mut store = store.lock().unwrap();
            Arc::new(psmd::token::TokenState::init(&mut store).expect("fuzz token"))
        })
        .clone()
}

fn store() -> Arc<Mutex<psmd::store::Store>> {
    static STORE: OnceLock<Arc<Mutex<psmd::store::Store>>> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("psm-fuzz-store-{}", std::process::id()));
            Arc::new(Mutex::new(psmd::store::Store::open(&dir).expect("fuzz store")))
        })
        .clone()
}

/// TLS state with a mailbox nobody reads: handshakes are not started here
/// (they would make network connections), only their requests are decoded.
fn tls() -> Arc<psmd::tls::TlsContext> {
    static TLS: OnceLock<Arc<psmd::tls::TlsContext>> = OnceLock::new();
    TLS.get_or_init(|| {
        let mailbox = Arc::new(psmd::mailbox::Mailbox::new(Arc::new(|| {})));
        let prompts = psmd::prompt::Prompts::new(mailbox.clone(), None, std::time::Duration::from_secs(1));
        Arc::new(psmd::tls::TlsContext::new(store(), token(), prompts, mailbox))
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let stats = Shared {
        started: Instant::now(),
        sessions: 1,
        channels: 0,
        requests_served: 0,
        requests_failed: 0,
        operations: Default::default(),
        test_hooks: false,
        workers: 1,
        store: store(),
        token: token(),
        tls: tls(),
    };
    let mut session = Session::new(1, 1, 0);
    let mut reader = FrameReader::new();
    reader.push(data);
    let mut channels = Vec::new();
    let mut fds = std::collections::VecDeque::new();
    while let Ok(Some(body)) = reader.next_frame() {
        let Ok((_id, outcome)) = session.handle_frame(&stats, body, &mut fds) else { return };
        match outcome {
            Outcome::Reply(_)
            | Outcome::FinishChannel(_)
            | Outcome::CloseChannel(_)
            | Outcome::Tls(_)
            | Outcome::StepUp(_)
            | Outcome::SslInfo(_)
            | Outcome::SslPeerCerts(_)
            | Outcome::SslShow(_)
            | Outcome::Stream { .. }
            | Outcome::PolicyReload
            | Outcome::Status => {}
            // S/MIME parsing and checking, as a blocking thread runs it
            // (no prompts: nobody would answer).
            Outcome::Blocking { job, .. } => {
                let to = psmd::pool::ReplyTo { token: 0, session_id: 1, request_id: 0 };
                let _ = job(&psmd::ops::smime::JobCtx { ctx: &stats.tls, to, can_prompt: false });
            }
            Outcome::Work(work) => {
                let _ = work();
            }
            Outcome::OpenChannel(mut op) => {
                op.input(body);
                channels.push(op);
            }
        }
    }
    for mut op in channels {
        let _ = op.finish();
    }
});
