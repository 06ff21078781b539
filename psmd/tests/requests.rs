//! The requests of the foundation, end to end through the Rust client and a
//! real psmd: ping, status, random, digests (inline and streamed), slow
//! requests on the worker pool, and cleanup when a session ends.

mod common;

use common::{Daemon, wait_until};
use psm::proto::{HashAlg, Request, ServerFrame};
use psm::{Code, transport};
use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn ping_and_status_report_the_daemon() {
    let d = Daemon::start();
    let c = d.client();
    for _ in 0..100 {
        c.ping().unwrap();
    }
    let s: serde_json::Value = serde_json::from_str(&c.status_json().unwrap()).unwrap();
    assert_eq!(s["pid"], d.pid());
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["sessions"], 2, "this client + the fixture's observer");
    assert_eq!(s["channels"], 0);
    assert!(s["requests_served"].as_u64().unwrap() >= 101);
    assert!(s["uptime_secs"].is_u64());
    assert_eq!(c.daemon_version(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn random_fills_large_buffers_with_fresh_bytes() {
    let d = Daemon::start();
    let c = d.client();
    let mut a = vec![0u8; 300_000];
    let mut b = vec![0u8; 300_000];
    c.random(&mut a).unwrap();
    c.random(&mut b).unwrap();
    assert_ne!(a, b);
    assert!(a.iter().filter(|&&x| x == 0).count() < 300_000 / 128, "too many zero bytes");
    c.random(&mut []).unwrap();
}

#[test]
fn oversized_random_request_is_refused() {
    let d = Daemon::start();
    let mut raw = d.raw();
    raw.hello();
    raw.send(1, Request::Random { len: psm::proto::MAX_RANDOM + 1 });
    match raw.recv() {
        Some(ServerFrame::Reply { id: 1, result: Err(e) }) => {
            assert_eq!(e.code, Code::PSM_ERR_INVALID_ARGUMENT)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn digests_match_fips_180_vectors() {
    let d = Daemon::start();
    let c = d.client();
    let cases = [
        (HashAlg::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (HashAlg::Sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            HashAlg::Sha384,
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
        ),
        (
            HashAlg::Sha512,
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ),
    ];
    for (alg, want) in cases {
        assert_eq!(hex(&c.digest(alg, b"abc").unwrap()), want, "{alg:?}");
    }
    assert_eq!(
        hex(&c.digest(HashAlg::Sha256, b"").unwrap()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn inline_pool_and_streamed_digests_agree() {
    let d = Daemon::start();
    let c = d.client();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    // Sizes that run on the loop, on the pool, and through a channel.
    for len in [10, 100_000, psm::proto::MAX_INLINE_DIGEST, 3_000_000] {
        let whole = c.digest(HashAlg::Sha512, &data[..len]).unwrap();
        let stream = c.digest_stream(HashAlg::Sha512).unwrap();
        transport::send_all(stream.fd(), &data[..len]).unwrap();
        assert_eq!(stream.finish().unwrap(), whole, "len {len}");
    }
}

#[test]
fn many_streams_interleaved_each_get_their_own_digest() {
    let d = Daemon::start();
    let c = d.client();
    let streams: Vec<_> = (0..20).map(|_| c.digest_stream(HashAlg::Sha256).unwrap()).collect();
    for round in 0..50u8 {
        for (i, s) in streams.iter().enumerate() {
            transport::send_all(s.fd(), &[i as u8 ^ round; 1000]).unwrap();
        }
    }
    assert_eq!(d.status()["channels"], 20);
    for (i, s) in streams.into_iter().enumerate() {
        let mut want = Vec::new();
        for round in 0..50u8 {
            want.extend_from_slice(&[i as u8 ^ round; 1000]);
        }
        assert_eq!(s.finish().unwrap(), c.digest(HashAlg::Sha256, &want).unwrap());
    }
    assert_eq!(d.status()["channels"], 0);
}

#[test]
fn dropped_stream_is_closed_in_the_daemon() {
    let d = Daemon::start();
    let c = d.client();
    let s = c.digest_stream(HashAlg::Sha1).unwrap();
    transport::send_all(s.fd(), b"partial").unwrap();
    assert_eq!(d.status()["channels"], 1);
    drop(s);
    wait_until("the channel is closed", || d.status()["channels"] == 0);
    c.ping().unwrap();
}

#[test]
fn finishing_an_unknown_channel_is_not_found() {
    let d = Daemon::start();
    let mut raw = d.raw();
    raw.hello();
    raw.send(5, Request::ChannelFinish { channel: 12345 });
    match raw.recv() {
        Some(ServerFrame::Reply { id: 5, result: Err(e) }) => assert_eq!(e.code, Code::PSM_ERR_NOT_FOUND),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_session_cannot_name_another_sessions_channel() {
    let d = Daemon::start();
    let mut owner = d.raw();
    owner.hello();
    owner.send(1, Request::DigestStream { alg: HashAlg::Sha256 });
    let channel = match owner.recv() {
        Some(ServerFrame::Reply { id: 1, result: Ok(psm::proto::Reply::Channel { channel }) }) => channel,
        other => panic!("{other:?}"),
    };
    let mut other = d.raw();
    other.hello();
    other.send(2, Request::ChannelClose { channel });
    match other.recv() {
        Some(ServerFrame::Reply { id: 2, result: Err(e) }) => assert_eq!(e.code, Code::PSM_ERR_NOT_FOUND),
        other => panic!("{other:?}"),
    }
    assert_eq!(d.status()["channels"], 1);
}

#[test]
fn a_dead_session_frees_its_channels() {
    let d = Daemon::start();
    let mut raw = d.raw();
    raw.hello();
    let mut fds = VecDeque::new();
    for id in 1..=5 {
        raw.send(id, Request::DigestStream { alg: HashAlg::Sha256 });
    }
    // Collect the replies and the descriptors that came with them.
    let mut got = 0;
    let mut buf = [0u8; 4096];
    while got < 5 {
        let n = transport::recv_with_fds(raw.stream.as_raw_fd(), &mut buf, &mut fds).unwrap();
        assert!(n > 0);
        got = fds.len();
    }
    assert_eq!(d.status()["channels"], 5);
    assert_eq!(d.status()["sessions"], 2, "raw + observer");
    drop(raw);
    wait_until("the session and its channels are gone", || {
        let s = d.status();
        s["channels"] == 0 && s["sessions"] == 1
    });
}

#[test]
fn a_slow_request_blocks_neither_other_clients_nor_the_same_connection() {
    let d = Daemon::start();
    let slow = d.client();
    let finished = Arc::new(AtomicBool::new(false));
    let (s2, f2) = (slow.clone(), finished.clone());
    let sleeper = std::thread::spawn(move || {
        let r = s2.debug_sleep(5_000);
        f2.store(true, Ordering::SeqCst);
        r
    });
    // Give the sleep request time to reach a worker (not a timing assertion:
    // the checks below hold whenever it arrives).
    std::thread::sleep(std::time::Duration::from_millis(50));
    let other = d.client();
    for _ in 0..20 {
        other.ping().unwrap();
        slow.ping().unwrap(); // same connection: its reply overtakes the sleep's
    }
    assert!(!finished.load(Ordering::SeqCst), "pings should not have waited for the 5 s request");
    sleeper.join().unwrap().unwrap();
}

#[test]
fn test_hooks_are_refused_without_the_flag() {
    let rt = common::RuntimeDir::new();
    let _child = common::Reaped(
        common::psmd_command()
            .arg("--socket")
            .arg(rt.socket())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("psmd is up", || std::os::unix::net::UnixStream::connect(rt.socket()).is_ok());
    let c =
        psm::Client::connect_to(&rt.socket(), "t", psm::ConnectFlags { no_spawn: true, no_dialogs: true })
            .unwrap();
    assert_eq!(c.debug_sleep(1).unwrap_err().code, Code::PSM_ERR_PERMISSION_DENIED);
}

#[test]
fn one_client_shared_by_threads_gets_every_reply() {
    let d = Daemon::start();
    let c = d.client();
    let threads: Vec<_> = (0..8u8)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..300u32 {
                    let data = [t, (i % 256) as u8];
                    let a = c.digest(HashAlg::Sha256, &data).unwrap();
                    let mut h = sha2_local(&data);
                    assert_eq!(a, std::mem::take(&mut h));
                    c.ping().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn sha2_local(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}
