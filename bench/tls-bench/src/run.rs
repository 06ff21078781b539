//! `tls-bench run`: the three measurements, each against its own server
//! process, and the report.
//!
//! Placement (issue 4): moving between the two vCPUs costs far more than a
//! relay hop, so latency runs with everything on one CPU, and throughput
//! and handshakes with the server on the other CPU (on loopback the sender
//! is often the bottleneck; it gets a CPU of its own). The client (this
//! process), psmd, the relay and stunnel always share the first CPU, so
//! "client-side CPU" is what that CPU spent.

use crate::Res;
use crate::certs::{self, Files};
use crate::client::{self, KINDS, Kind, Rustls, Via};
use crate::procs::{self, Helper};
use crate::server::Mode;
use crate::sys;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const GIB: f64 = (1u64 << 30) as f64;
/// Untimed handshakes and round trips before each timed series.
const WARMUP_HANDSHAKES: usize = 20;
const WARMUP_ROUND_TRIPS: usize = 1000;

#[derive(Clone, Debug)]
pub struct Opts {
    pub bytes: u64,
    /// Timed streams per client, after one untimed round.
    pub runs: usize,
    /// Length of each handshake series.
    pub seconds: f64,
    pub round_trips: usize,
    pub host: String,
    pub stunnel: bool,
    /// Where the certificates and stunnel's files go (default: a fresh
    /// temporary directory, removed at the end).
    pub dir: Option<PathBuf>,
    pub sections: Sections,
    /// Handshakes with the server on the client's CPU too: every CPU cycle
    /// then shows in the rate, instead of the cross-CPU wakeups.
    pub handshakes_on_one_cpu: bool,
    /// Which clients to measure.
    pub clients: Vec<Kind>,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            bytes: 1 << 30,
            runs: 3,
            seconds: 3.0,
            round_trips: 20_000,
            host: "localhost".to_string(),
            stunnel: true,
            dir: None,
            sections: Sections { throughput: true, handshakes: true, latency: true },
            handshakes_on_one_cpu: false,
            clients: KINDS.to_vec(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Sections {
    throughput: bool,
    handshakes: bool,
    latency: bool,
}

impl Sections {
    pub fn parse(list: &str) -> Res<Sections> {
        let mut s = Sections { throughput: false, handshakes: false, latency: false };
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "throughput" => s.throughput = true,
                "handshakes" => s.handshakes = true,
                "latency" => s.latency = true,
                _ => return Err(format!("--only: unknown section '{name}'").into()),
            }
        }
        Ok(s)
    }
}

/// psmd, as the benchmark reaches it.
struct Psm {
    client: psm::Client,
    /// psmd's pid, for its CPU time; None if it could not be learnt.
    pid: Option<i32>,
}

struct Env<'a> {
    opts: &'a Opts,
    dir: PathBuf,
    files: Files,
    /// The client's CPU (and psmd's and stunnel's), and the server's when
    /// it runs apart.
    near: usize,
    far: usize,
    rustls: Rustls,
    psm: Result<Psm, String>,
    stunnel: Result<PathBuf, String>,
}

/// A directory removed on drop when we made it.
struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub fn run(opts: &Opts) -> Res<ExitCode> {
    sys::tune_malloc();
    let cpus = sys::allowed_cpus()?;
    let near = *cpus.first().ok_or("no CPU to run on")?;
    let far = cpus.get(1).copied().unwrap_or(near);
    // Before any thread starts: they all inherit it.
    sys::pin(0, near)?;

    let work = match &opts.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            WorkDir { path: d.clone(), remove: false }
        }
        None => {
            let path = std::env::temp_dir().join(format!("tls-bench.{}", std::process::id()));
            std::fs::create_dir(&path)?;
            WorkDir { path, remove: true }
        }
    };
    let files = certs::generate(&work.path)?;
    let rustls = Rustls::new(&files.ca, &opts.host)?;
    let psm = match opts.clients.contains(&Kind::Psm) {
        true => connect_psm(&std::fs::read(&files.ca)?, near),
        false => Err("skipped (--clients)".to_string()),
    };
    let stunnel = match (opts.stunnel && opts.clients.contains(&Kind::Stunnel), procs::find_stunnel()) {
        (false, _) => Err("skipped (--no-stunnel, --clients)".to_string()),
        (true, None) => Err("skipped: no stunnel4 or stunnel on PATH ($STUNNEL)".to_string()),
        (true, Some(p)) => Ok(p),
    };
    let env = Env { opts, dir: work.path.clone(), files, near, far, rustls, psm, stunnel };

    println!("TLS channels: psm (psmd runs TLS, the client reads a Unix socket) against in-process");
    println!("rustls (the baseline); references: relay (tls-bench relay, the least a process shaped");
    println!("like psmd does: rustls to a Unix socket, thread per connection) and stunnel4 in client");
    println!("mode. One rustls server on loopback; TLS 1.3 as negotiated by default; resumption off");
    println!("on the server; goals from issue 4, reported, never enforced");
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!(
            "(load average before the run: {}; other work on the machine skews every figure)",
            load.join(" ")
        );
    }
    if near == far {
        println!("(one CPU available: the placements below collapse onto CPU {near})");
    }
    if let Err(e) = &env.psm {
        println!("psm rows: {e}");
    } else if env.psm.as_ref().is_ok_and(|p| p.pid.is_none()) {
        println!("psm rows: psmd's pid is unknown; its CPU time is not counted");
    }
    println!();

    let mut baseline_ok = true;
    if opts.sections.throughput {
        baseline_ok &= throughput(&env)?;
    }
    if opts.sections.handshakes {
        baseline_ok &= handshakes(&env)?;
    }
    if opts.sections.latency {
        baseline_ok &= latency(&env)?;
    }
    Ok(if baseline_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Connects to psmd and makes it trust the benchmark's CA for TLS servers.
fn connect_psm(ca_pem: &[u8], cpu: usize) -> Result<Psm, String> {
    let flags = psm::ConnectFlags { no_spawn: true, no_dialogs: true };
    let client = psm::Client::connect("tls-bench", flags).map_err(|e| format!("no psmd: {e}"))?;
    // A CA left by an earlier run against the same psmd holds the nickname.
    if let Ok(old) = client.cert_find("bench-ca")
        && old.subject.contains("psm tls-bench CA")
    {
        let _ = client.cert_delete(&old.sha256_hex, false);
    }
    client
        .cert_import(ca_pem, Some("bench-ca"), psm::proto::TRUST_CA_TLS_SERVER)
        .map_err(|e| format!("importing the benchmark CA into psmd failed: {e}"))?;
    let pid = client
        .status_json()
        .ok()
        .and_then(|j| json_field(&j, "pid").and_then(|p| p.parse().ok()))
        .filter(|&pid| pid > 0);
    if let Some(pid) = pid {
        // run.sh starts psmd pinned already; this makes sure.
        if let Err(e) = sys::pin_process(pid, cpu) {
            eprintln!("tls-bench: pinning psmd ({pid}) to CPU {cpu}: {e}");
        }
    }
    Ok(Psm { client, pid })
}

/// A string or number field of a flat JSON object; enough for psmd's
/// status and channel info.
fn json_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let start = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = json[start..].trim_start();
    match rest.strip_prefix('"') {
        Some(s) => s.split('"').next(),
        None => rest.split([',', '}']).next().map(str::trim),
    }
}

/// One client's row of a section: its samples, or why it has none.
struct Row<T> {
    kind: Kind,
    result: Result<Vec<T>, String>,
}

impl<T> Row<T> {
    fn value(&self, f: impl Fn(&[T]) -> f64) -> Option<f64> {
        self.result.as_ref().ok().filter(|s| !s.is_empty()).map(|s| f(s))
    }
}

/// The relay and stunnel of one section, each pointed at its server.
struct Peers {
    relay: Result<Helper, String>,
    stunnel: Result<Helper, String>,
}

impl Peers {
    /// Starts them on the client's CPU; `tag` names their files.
    fn start(env: &Env, tag: &str, server_port: u16) -> Peers {
        let relay = match env.opts.clients.contains(&Kind::Relay) {
            false => Err("skipped (--clients)".to_string()),
            true => procs::relay(&env.dir, tag, &env.opts.host, server_port, env.near)
                .map_err(|e| format!("error: {e}")),
        };
        let stunnel = env.stunnel.as_ref().map_err(Clone::clone).and_then(|bin| {
            procs::stunnel(bin, &env.dir, tag, &env.files.ca, server_port, env.near)
                .map_err(|e| format!("error: {e}"))
        });
        Peers { relay, stunnel }
    }
}

/// The rows of a section, in the order of KINDS.
fn rows<T>(env: &Env, peers: &Peers) -> Vec<Row<T>> {
    KINDS
        .into_iter()
        .map(|kind| {
            let result = match kind {
                _ if !env.opts.clients.contains(&kind) => Err("skipped (--clients)".to_string()),
                Kind::Rustls => Ok(Vec::new()),
                Kind::Psm => env.psm.as_ref().map(|_| Vec::new()).map_err(Clone::clone),
                Kind::Relay => peers.relay.as_ref().map(|_| Vec::new()).map_err(Clone::clone),
                Kind::Stunnel => peers.stunnel.as_ref().map(|_| Vec::new()).map_err(Clone::clone),
            };
            Row { kind, result }
        })
        .collect()
}

fn row<T>(rows: &[Row<T>], kind: Kind) -> &Row<T> {
    rows.iter().find(|r| r.kind == kind).expect("every kind has a row")
}

/// How `kind` reaches the server on `port`, and the other processes whose
/// CPU time counts as the client's.
fn via<'a>(env: &'a Env, kind: Kind, port: u16, peers: &'a Peers) -> (Via<'a>, Vec<i32>) {
    match (kind, &env.psm, &peers.relay, &peers.stunnel) {
        (Kind::Psm, Ok(p), _, _) => (Via::Psm(&p.client, &env.opts.host, port), p.pid.into_iter().collect()),
        (Kind::Relay, _, Ok(r), _) => (Via::Relay(r.path.as_deref().expect("relay socket")), vec![r.pid()]),
        (Kind::Stunnel, _, _, Ok(s)) => (Via::Stunnel(s.port), vec![s.pid()]),
        _ => (Via::Rustls(&env.rustls, port), Vec::new()),
    }
}

/// Turns the rows of the relay and stunnel into errors if they logged
/// any: both close the client's connection when their TLS fails, which
/// looks like the server's clean close to the client.
fn check_peer_logs<T>(env: &Env, tag: &str, rows: &mut [Row<T>]) {
    for row in rows.iter_mut().filter(|r| r.result.is_ok()) {
        if let Kind::Relay | Kind::Stunnel = row.kind
            && let Some(errors) = procs::logged_errors(&env.dir, row.kind.name(), tag)
        {
            row.result = Err(format!("{} reported errors: {errors}", row.kind.name()));
        }
    }
}

/// CPU time of this process plus `others`.
fn cpu_of(others: &[i32]) -> Res<Duration> {
    let mut t = sys::self_cpu();
    for &pid in others {
        t += sys::proc_cpu(pid)?;
    }
    Ok(t)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Whether a row has an error, not just a reason to be skipped.
fn failed<T>(row: &Row<T>) -> bool {
    matches!(&row.result, Err(e) if !e.starts_with("skipped"))
}

fn fail_label(e: &str) -> String {
    if e.starts_with("skipped") || e.starts_with("no psmd") { e.to_string() } else { format!("error: {e}") }
}

/// A psm ssl_connect that psmd refuses as unsupported is news, not an error.
fn psm_error(e: &(dyn std::error::Error + Send + Sync + 'static)) -> String {
    match e.downcast_ref::<psm::Error>() {
        Some(pe) if pe.code == psm::Code::PSM_ERR_UNSUPPORTED => {
            format!("skipped: psmd does not support TLS channels yet ({pe})")
        }
        _ => e.to_string(),
    }
}

fn record_error<T>(row: &mut Row<T>, e: &(dyn std::error::Error + Send + Sync + 'static)) {
    row.result = Err(if row.kind == Kind::Psm { psm_error(e) } else { e.to_string() });
}

struct Goal {
    label: String,
    value: Option<f64>,
    at_least: bool,
    target: f64,
    unit: &'static str,
}

impl Goal {
    fn print(&self) {
        let op = if self.at_least { ">=" } else { "<=" };
        let goal = format!("(goal: {op} {:.2}{})", self.target, self.unit);
        match self.value {
            Some(v) => {
                let met = if self.at_least { v >= self.target } else { v <= self.target };
                let verdict = if met { "PASS" } else { "MISS" };
                // Three decimals: a 0.849x must not read as the 0.85x it misses.
                println!("{} = {v:.3}{} {goal} {verdict}", self.label, self.unit);
            }
            None => println!("{} = n/a {goal}", self.label),
        }
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?).filter(|r| r.is_finite())
}

struct Stream {
    bytes: u64,
    wall: Duration,
    cpu: Duration,
}

/// The reference rows against the baseline, without goals: "(relay /
/// rustls MB/s = 0.98x, stunnel / rustls MB/s = 0.40x; ...)", or with
/// `difference` "(relay p50 - rustls = +7.10 us, ...)".
fn references(what: &str, of: impl Fn(Kind) -> Option<f64>, base: Option<f64>, difference: bool) {
    let parts: Vec<String> = [Kind::Relay, Kind::Stunnel]
        .into_iter()
        .filter_map(|k| {
            let (v, b) = (of(k)?, base?);
            Some(match difference {
                true => format!("{} {what} - rustls = {:+.2} us", k.name(), v - b),
                false => format!("{} / rustls {what} = {:.2}x", k.name(), v / b),
            })
        })
        .collect();
    if !parts.is_empty() {
        println!("({}; references, no goal)", parts.join(", "));
    }
}

/// Prints a row's error, or nothing if it has samples.
fn print_unavailable<T>(row: &Row<T>) -> bool {
    match &row.result {
        Ok(s) if !s.is_empty() => false,
        Ok(_) => {
            println!("{:<8} no samples", row.kind.name());
            true
        }
        Err(e) => {
            println!("{:<8} {}", row.kind.name(), fail_label(e));
            true
        }
    }
}

const PLACEMENT_NEAR: &str = "client, psmd, relay and stunnel";

/// Bulk throughput: one stream of `bytes` per run and client, the rounds
/// interleaved so drift hits every client alike.
fn throughput(env: &Env) -> Res<bool> {
    let o = env.opts;
    let server = procs::server(&env.dir, Mode::Stream(o.bytes), env.far)?;
    let peers = Peers::start(env, "stream", server.port);
    let mut rows: Vec<Row<Stream>> = rows(env, &peers);
    let mut buf = vec![0u8; client::READ_BUF];
    for round in 0..=o.runs {
        for row in rows.iter_mut() {
            let Ok(samples) = &mut row.result else { continue };
            let (via, others) = via(env, row.kind, server.port, &peers);
            let measured = (|| -> Res<Stream> {
                let cpu0 = cpu_of(&others)?;
                let t0 = Instant::now();
                let bytes = via.stream(&mut buf)?;
                let wall = t0.elapsed();
                Ok(Stream { bytes, wall, cpu: cpu_of(&others)? - cpu0 })
            })();
            match measured {
                Ok(s) if s.bytes != o.bytes => {
                    row.result = Err(format!("the stream ended after {} of {} bytes", s.bytes, o.bytes));
                }
                Ok(s) if round > 0 => samples.push(s),
                Ok(_) => {}
                Err(e) => record_error(row, &*e),
            }
        }
    }
    drop(server);
    check_peer_logs(env, "stream", &mut rows);

    let each = |s: &[Stream]| -> Vec<f64> {
        s.iter().map(|s| s.bytes as f64 / s.wall.as_secs_f64() / 1e6).collect()
    };
    let mbps = |s: &[Stream]| median(each(s));
    let cpu_per_gib = |s: &[Stream]| {
        let cpu: f64 = s.iter().map(|s| s.cpu.as_secs_f64()).sum();
        cpu / (s.iter().map(|s| s.bytes as f64).sum::<f64>() / GIB)
    };
    println!(
        "== TLS bulk throughput: one {} MiB stream per client and run, {} runs (+1 untimed)",
        o.bytes >> 20,
        o.runs
    );
    println!("   placement: server on CPU {}; {PLACEMENT_NEAR} on CPU {}", env.far, env.near);
    println!("   MB/s: median (range); CPU-s/GiB: the client process plus psmd, relay or stunnel");
    println!("{:<8} {:>10} {:>19} {:>10}", "client", "MB/s", "(min - max)", "CPU-s/GiB");
    for row in &rows {
        if print_unavailable(row) {
            continue;
        }
        if let Ok(s) = &row.result {
            let e = each(s);
            let min = e.iter().copied().fold(f64::INFINITY, f64::min);
            let max = e.iter().copied().fold(0.0, f64::max);
            let range = format!("({min:.0} - {max:.0})");
            println!("{:<8} {:>10.1} {:>19} {:>10.3}", row.kind.name(), mbps(s), range, cpu_per_gib(s));
        }
    }
    let [rustls, psm, stunnel] = [Kind::Rustls, Kind::Psm, Kind::Stunnel].map(|k| row(&rows, k));
    let goal = |label: &str, value, at_least, target| Goal {
        label: label.to_string(),
        value,
        at_least,
        target,
        unit: "x",
    };
    goal("psm / rustls MB/s", ratio(psm.value(mbps), rustls.value(mbps)), true, 0.9).print();
    goal("psm / stunnel MB/s", ratio(psm.value(mbps), stunnel.value(mbps)), true, 2.0).print();
    goal("psm / rustls CPU-s/GiB", ratio(psm.value(cpu_per_gib), rustls.value(cpu_per_gib)), false, 1.5)
        .print();
    references("MB/s", |k| row(&rows, k).value(mbps), rustls.value(mbps), false);
    references("CPU-s/GiB", |k| row(&rows, k).value(cpu_per_gib), rustls.value(cpu_per_gib), false);
    println!();
    Ok(!failed(rustls))
}

struct Series {
    count: usize,
    wall: Duration,
    cpu: Duration,
}

/// Full handshakes per second, one connection after the other.
fn handshakes(env: &Env) -> Res<bool> {
    let o = env.opts;
    let server_cpu = if o.handshakes_on_one_cpu { env.near } else { env.far };
    let server = procs::server(&env.dir, Mode::Handshake, server_cpu)?;
    let peers = Peers::start(env, "handshake", server.port);
    let mut rows: Vec<Row<Series>> = rows(env, &peers);
    let length = Duration::from_secs_f64(o.seconds);
    for row in rows.iter_mut() {
        let Ok(samples) = &mut row.result else { continue };
        let (via, others) = via(env, row.kind, server.port, &peers);
        let measured = (|| -> Res<Series> {
            for _ in 0..WARMUP_HANDSHAKES {
                via.handshake()?;
            }
            let cpu0 = cpu_of(&others)?;
            let t0 = Instant::now();
            let mut count = 0;
            while t0.elapsed() < length {
                via.handshake()?;
                count += 1;
            }
            let wall = t0.elapsed();
            Ok(Series { count, wall, cpu: cpu_of(&others)? - cpu0 })
        })();
        match measured {
            Ok(s) => samples.push(s),
            Err(e) => record_error(row, &*e),
        }
    }
    // What the clients negotiated, for the record.
    let rustls_params = negotiated_rustls(env, server.port);
    let psm_params = negotiated_psm(env, server.port);
    drop(server);
    check_peer_logs(env, "handshake", &mut rows);

    let rate = |s: &[Series]| s[0].count as f64 / s[0].wall.as_secs_f64();
    let cpu_ms = |s: &[Series]| s[0].cpu.as_secs_f64() * 1e3 / s[0].count.max(1) as f64;
    println!("== TLS full handshakes: connect, handshake, server's close_notify; {} s per client", o.seconds);
    println!("   placement: server on CPU {server_cpu}; {PLACEMENT_NEAR} on CPU {}", env.near);
    if let Some(p) = rustls_params {
        println!("   rustls negotiated {p}");
    }
    if let Some(p) = psm_params {
        println!("   psm negotiated    {p}");
    }
    println!("{:<8} {:>12} {:>12} {:>16}", "client", "handshakes", "per second", "CPU-ms each");
    for row in &rows {
        if print_unavailable(row) {
            continue;
        }
        if let Ok(s) = &row.result {
            println!("{:<8} {:>12} {:>12.0} {:>16.3}", row.kind.name(), s[0].count, rate(s), cpu_ms(s));
        }
    }
    let [rustls, psm] = [Kind::Rustls, Kind::Psm].map(|k| row(&rows, k));
    Goal {
        label: "psm / rustls handshakes/s".to_string(),
        value: ratio(psm.value(rate), rustls.value(rate)),
        at_least: true,
        target: 0.85,
        unit: "x",
    }
    .print();
    if let Some(r) = ratio(psm.value(cpu_ms), rustls.value(cpu_ms)) {
        println!("(psm / rustls CPU per handshake = {r:.2}x, no goal)");
    }
    references("handshakes/s", |k| row(&rows, k).value(rate), rustls.value(rate), false);
    if row(&rows, Kind::Stunnel).value(rate).is_some() {
        println!("(stunnel's OpenSSL offers X25519 only, not X25519MLKEM768: cheaper key exchange)");
    }
    println!();
    Ok(!failed(rustls))
}

fn negotiated_rustls(env: &Env, port: u16) -> Option<String> {
    env.rustls.describe(port).ok()
}

fn negotiated_psm(env: &Env, port: u16) -> Option<String> {
    let psm = env.psm.as_ref().ok()?;
    let ch = psm.client.ssl_connect(&env.opts.host, port, &psm::proto::SslOpts::default()).ok()?;
    let info = psm.client.ssl_info_json(&ch).ok()?;
    let field = |k| json_field(&info, k).unwrap_or("?").to_string();
    Some(format!("{} {} {}", field("version"), field("cipher_suite"), field("key_exchange_group")))
}

/// 1-byte request/response round trips on one connection, everything on
/// one CPU.
fn latency(env: &Env) -> Res<bool> {
    let o = env.opts;
    let server = procs::server(&env.dir, Mode::Echo, env.near)?;
    let peers = Peers::start(env, "echo", server.port);
    let mut rows: Vec<Row<u64>> = rows(env, &peers);
    for row in rows.iter_mut() {
        let Ok(samples) = &mut row.result else { continue };
        let (via, _) = via(env, row.kind, server.port, &peers);
        samples.resize(o.round_trips, 0);
        match via.round_trips(WARMUP_ROUND_TRIPS, samples) {
            Ok(()) => samples.sort_unstable(),
            Err(e) => record_error(row, &*e),
        }
    }
    drop(server);
    check_peer_logs(env, "echo", &mut rows);

    let pct = |s: &[u64], p: usize| s[(s.len() * p / 100).min(s.len() - 1)] as f64 / 1e3;
    let p50 = |s: &[u64]| pct(s, 50);
    println!(
        "== TLS 1-byte round trip: {} per client on one connection (+{WARMUP_ROUND_TRIPS} untimed)",
        o.round_trips
    );
    println!("   placement: server, {PLACEMENT_NEAR} all on CPU {}", env.near);
    println!("{:<8} {:>10} {:>10} {:>10}", "client", "p50 us", "p99 us", "added p50");
    let rustls = row(&rows, Kind::Rustls);
    let base = rustls.value(p50);
    for row in &rows {
        if print_unavailable(row) {
            continue;
        }
        if let Ok(s) = &row.result {
            let added = base.map_or("".to_string(), |b| format!("{:+.2}", p50(s) - b));
            println!("{:<8} {:>10.2} {:>10.2} {:>10}", row.kind.name(), p50(s), pct(s, 99), added);
        }
    }
    let added = |kind| Some(row(&rows, kind).value(p50)? - base?);
    Goal {
        label: "psm p50 - rustls p50".to_string(),
        value: added(Kind::Psm),
        at_least: false,
        target: 10.0,
        unit: " us",
    }
    .print();
    references("p50", |k| row(&rows, k).value(p50), base, true);
    println!();
    Ok(!failed(rustls))
}
