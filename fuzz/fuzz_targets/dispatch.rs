//! The daemon's request dispatcher on arbitrary frames: one session, frames
//! split from the input by the real frame reader, every outcome carried out
//! the way the event loop would (pool work run inline, channels fed and
//! finished). Nothing may panic, whatever the order of requests.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psm::proto::FrameReader;
use psmd::session::{Outcome, Session, Stats};
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    let stats = Stats {
        started: Instant::now(),
        sessions: 1,
        channels: 0,
        requests_served: 0,
        test_hooks: false,
        workers: 1,
    };
    let mut session = Session::new(1, 1, 0);
    let mut reader = FrameReader::new();
    reader.push(data);
    let mut channels = Vec::new();
    while let Ok(Some(body)) = reader.next_frame() {
        let Ok((_id, outcome)) = session.handle_frame(&stats, body) else { return };
        match outcome {
            Outcome::Reply(_) | Outcome::FinishChannel(_) | Outcome::CloseChannel(_) => {}
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
