//! Hostile and malformed input on the control socket: each bad connection
//! is answered or closed on its own, other clients keep being served, and
//! the daemon's memory stays flat.

mod common;

use common::{Daemon, RawConn, wait_until};
use psm::Code;
use psm::proto::{MAX_FRAME, Reply, Request, ServerFrame};
use std::io::Write;

#[test]
fn unknown_request_kind_gets_an_error_reply_and_the_connection_lives() {
    let d = Daemon::start();
    let mut raw = d.raw();
    raw.hello();
    // id 7, variant index 200: a request from some future client.
    raw.send_body(&[7, 0xc8, 0x01, 1, 2, 3]);
    match raw.recv() {
        Some(ServerFrame::Reply { id: 7, result: Err(e) }) => {
            assert_eq!(e.code, Code::PSM_ERR_UNSUPPORTED);
            assert!(e.message.contains("request kind 200"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    raw.send(8, Request::Ping);
    assert_eq!(raw.recv(), Some(ServerFrame::Reply { id: 8, result: Ok(Reply::Pong) }));
}

#[test]
fn malformed_body_gets_a_protocol_error_for_its_id() {
    let d = Daemon::start();
    let mut raw = d.raw();
    raw.hello();
    // id 9, Random (variant 3) with its length cut off; then trailing junk after a Ping.
    raw.send_body(&[9, 3]);
    raw.send_body(&[10, 1, 0xee]);
    for want in [9, 10] {
        match raw.recv() {
            Some(ServerFrame::Reply { id, result: Err(e) }) if id == want => {
                assert_eq!(e.code, Code::PSM_ERR_PROTOCOL)
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn requests_before_hello_are_refused() {
    let d = Daemon::start();
    let mut raw = d.raw();
    raw.send(1, Request::Status);
    match raw.recv() {
        Some(ServerFrame::Reply { id: 1, result: Err(e) }) => assert_eq!(e.code, Code::PSM_ERR_PROTOCOL),
        other => panic!("{other:?}"),
    }
    raw.hello();
    raw.send(2, common::hello_request());
    match raw.recv() {
        Some(ServerFrame::Reply { id: 2, result: Err(e) }) => assert!(e.message.contains("already")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn hello_without_a_common_version_is_refused() {
    let d = Daemon::start();
    let mut raw = d.raw();
    raw.send(1, Request::Hello { version_min: 50, version_max: 60, app_name: "future".into(), flags: 0 });
    match raw.recv() {
        Some(ServerFrame::Reply { id: 1, result: Err(e) }) => assert_eq!(e.code, Code::PSM_ERR_UNSUPPORTED),
        other => panic!("{other:?}"),
    }
}

#[test]
fn length_0xffffffff_closes_only_that_connection() {
    let d = Daemon::start();
    let good = d.client();
    let mut bad = d.raw();
    bad.send_raw(&[0xff, 0xff, 0xff, 0xff]);
    assert!(bad.closed_without_reply());
    good.ping().unwrap();
    assert_eq!(d.status()["sessions"], 2, "good client + observer");
}

#[test]
fn length_just_over_max_frame_is_refused_and_max_frame_is_read() {
    let d = Daemon::start();
    let mut bad = d.raw();
    bad.hello();
    bad.send_raw(&(MAX_FRAME as u32 + 1).to_be_bytes());
    assert!(bad.closed_without_reply());

    // A frame of exactly MAX_FRAME bytes is accepted (and, being junk, answered).
    let mut big = d.raw();
    big.hello();
    let mut body = vec![0u8; MAX_FRAME];
    body[0] = 3; // id 3
    body[1] = 4; // Digest
    big.send_body(&body);
    match big.recv() {
        Some(ServerFrame::Reply { id: 3, result: Err(e) }) => assert_eq!(e.code, Code::PSM_ERR_PROTOCOL),
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_closes_only_that_connection() {
    let d = Daemon::start();
    let good = d.client();
    let mut bad = d.raw();
    // A frame whose body is not even a varint id.
    bad.send_body(&[0xff; 12]);
    assert!(bad.closed_without_reply());
    let mut noise = d.raw();
    let mut junk = [0u8; 4096];
    getrandom::fill(&mut junk).unwrap();
    junk[0] = 0xff; // make the first length oversized: it must be closed
    noise.send_raw(&junk);
    assert!(noise.closed_without_reply());
    good.ping().unwrap();
}

#[test]
fn half_a_frame_then_silence_stalls_only_its_own_connection() {
    let d = Daemon::start();
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut s = d.raw();
        s.send_raw(&1000u32.to_be_bytes());
        s.send_raw(&[0u8; 100]);
        stalled.push(s);
    }
    let good = d.client();
    for _ in 0..100 {
        good.ping().unwrap();
    }
    assert_eq!(d.status()["sessions"], 22, "20 stalled + good + observer");
    drop(stalled);
    wait_until("stalled sessions are dropped", || d.status()["sessions"] == 2);
}

#[test]
fn memory_stays_flat_under_many_hostile_connections() {
    let d = Daemon::start();
    let good = d.client();
    // Warm up allocator pools with one round first.
    let round = |n: usize| {
        for i in 0..n {
            let mut c = RawConn::connect(&d.socket());
            match i % 4 {
                0 => c.send_raw(&[0xff; 4]),
                1 => c.send_body(&[0xff; 20]),
                2 => {
                    // Announce a near-maximal frame, send half of it, vanish.
                    c.send_raw(&(MAX_FRAME as u32).to_be_bytes());
                    let _ = c.stream.write_all(&vec![1u8; MAX_FRAME / 2]);
                }
                _ => {
                    c.hello();
                    c.send_body(&[1, 0xc8, 0x01]);
                    let _ = c.recv();
                }
            }
        }
        wait_until("hostile sessions are gone", || d.status()["sessions"] == 2);
    };
    round(100);
    let before = d.rss_kib();
    round(400);
    let after = d.rss_kib();
    good.ping().unwrap();
    assert!(after < before + 16 * 1024, "RSS grew from {before} KiB to {after} KiB");
}

#[test]
fn a_client_that_never_reads_is_throttled_without_losing_replies() {
    let d = Daemon::start();
    let mut greedy = d.raw();
    greedy.hello();
    const N: u64 = 300_000;
    // Write all requests from another thread while nobody reads replies: the
    // daemon must stop reading us once its output queue is full, not buffer
    // without bound.
    let mut writer = greedy.stream.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        let mut out = Vec::new();
        for id in 1..=N {
            psm::proto::encode_request(&psm::proto::RequestFrame { id, request: Request::Ping }, &mut out)
                .unwrap();
        }
        writer.write_all(&out).unwrap();
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let good = d.client();
    good.ping().unwrap();
    let rss = d.rss_kib();
    for id in 1..=N {
        assert_eq!(greedy.recv(), Some(ServerFrame::Reply { id, result: Ok(Reply::Pong) }));
    }
    t.join().unwrap();
    assert!(rss < 64 * 1024, "daemon RSS {rss} KiB while a client did not read");
}

#[test]
fn clients_waiting_while_the_daemon_is_out_of_descriptors_are_served_later() {
    let d = Daemon::start_limited(&[], Some(40));
    // Fill the descriptor table; connections past it wait in the backlog
    // because accept() fails with EMFILE.
    let mut held: Vec<RawConn> = (0..60).map(|_| RawConn::connect(&d.socket())).collect();
    let mut last = held.pop().unwrap();
    last.send(1, common::hello_request());
    // Free descriptors: psmd must retry accept by itself (the listener is
    // edge-triggered and no new client arrives to wake it).
    drop(held);
    match last.recv() {
        Some(ServerFrame::Reply { id: 1, result: Ok(Reply::Hello { .. }) }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn closing_a_channel_answers_a_finish_parked_on_it() {
    let d = Daemon::start();
    let mut raw = d.raw();
    raw.hello();
    raw.send(1, Request::DigestStream { alg: psm::proto::HashAlg::Sha256 });
    let channel = match raw.recv() {
        Some(ServerFrame::Reply { id: 1, result: Ok(Reply::Channel { channel }) }) => channel,
        other => panic!("{other:?}"),
    };
    // The input never ends, so Finish parks; Close must not strand it.
    raw.send(2, Request::ChannelFinish { channel });
    raw.send(3, Request::ChannelClose { channel });
    let mut got = [raw.recv().unwrap(), raw.recv().unwrap()];
    got.sort_by_key(|f| match f {
        ServerFrame::Reply { id, .. } => *id,
        ServerFrame::Event(_) => 0,
    });
    match &got[0] {
        ServerFrame::Reply { id: 2, result: Err(e) } => assert_eq!(e.code, Code::PSM_ERR_INVALID_ARGUMENT),
        other => panic!("{other:?}"),
    }
    assert_eq!(got[1], ServerFrame::Reply { id: 3, result: Ok(Reply::Done) });
    assert_eq!(d.status()["channels"], 0);
}
