//! `make bench`: streaming-digest throughput through psmd against hashing
//! the same bytes in this process with the same SHA-256 code (the sha2
//! crate that psmd uses). Connects like any application ($PSM_SOCKET).
//!
//! Usage: digest_bench [MiB]   (default 2048)

use psm::proto::HashAlg;
use psm::{Client, ConnectFlags, transport};
use sha2::Digest;
use std::time::Instant;

const CHUNK: usize = 1024 * 1024;

fn main() -> Result<(), psm::Error> {
    let mib: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2048);
    let buf: Vec<u8> = (0..64 * CHUNK).map(|i| (i * 31 + i / 4093) as u8).collect();
    let total = mib * CHUNK;
    let client = Client::connect("digest-bench", ConnectFlags { no_spawn: true, no_dialogs: true })?;

    let pieces = || (0..total / CHUNK).map(|i| &buf[(i * CHUNK) % buf.len()..][..CHUNK]);

    // Warm-up of both paths (page faults, socket buffers, CPU frequency).
    let mut h = sha2::Sha256::new();
    pieces().take(64).for_each(|p| h.update(p));
    std::hint::black_box(h.finalize());

    let t = Instant::now();
    let mut h = sha2::Sha256::new();
    pieces().for_each(|p| h.update(p));
    let local = h.finalize().to_vec();
    let local_secs = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let stream = client.digest_stream(HashAlg::Sha256)?;
    for p in pieces() {
        transport::send_all(stream.fd(), p).map_err(|e| psm::Error::io("writing the channel", e))?;
    }
    let remote = stream.finish()?;
    let remote_secs = t.elapsed().as_secs_f64();

    assert_eq!(local, remote, "psmd and in-process digests differ");
    let gbs = |secs: f64| total as f64 / secs / 1e9;
    println!("streaming SHA-256 of {mib} MiB:");
    println!("  {:<28} {:>8.3} GB/s", "in-process (sha2)", gbs(local_secs));
    println!("  {:<28} {:>8.3} GB/s", "psm_digest_stream via psmd", gbs(remote_secs));
    println!("  {:<28} {:>8.2}x   (goal >= 0.80x)", "ratio psmd / in-process", local_secs / remote_secs);
    Ok(())
}
