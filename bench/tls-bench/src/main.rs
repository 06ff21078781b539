//! tls-bench: psm's TLS channels measured against in-process rustls and
//! against stunnel4 doing the same wrapping, all talking to one small
//! rustls server on loopback (`make bench` runs it; see bench/run.sh).
//!
//!   tls-bench [run] [--bytes N[K|M|G]] [--runs N] [--seconds S] [--round-trips N]
//!                   [--host NAME] [--no-stunnel] [--dir DIR] [--only LIST]
//!                   [--handshakes-on-one-cpu] [--clients rustls,psm,relay,stunnel] [--clients rustls,psm,relay,stunnel]
//!   tls-bench server --dir DIR --mode stream|handshake|echo [--bytes N]
//!   tls-bench relay --dir DIR --socket PATH --port N [--host NAME]
//!   tls-bench certs DIR
//!
//! `run` measures bulk throughput of one stream (MB/s, and the client-side
//! CPU seconds per GiB: the client plus psmd, or plus stunnel), full
//! handshakes per second and the 1-byte round trip, each next to the
//! in-process baseline measured in the same run, and the ratio against the
//! goals of issue 4 (reported, never enforced). psm rows need a running
//! psmd at $PSM_SOCKET (the default socket otherwise); it is not started.
//! LIST is a comma-separated subset of throughput,handshakes,latency.
//! Placement: latency runs with everything on the first CPU; throughput and
//! handshakes with the server on the second (for handshakes on the first
//! too with --handshakes-on-one-cpu: the rate then shows all CPU spent
//! rather than the wakeups across CPUs).
//!
//! `server` is the TLS server the run starts (one per section, pinned to a
//! CPU); `certs` writes a fresh CA and server certificate into DIR.

mod certs;
mod client;
mod procs;
mod relay;
mod run;
mod server;
mod sys;

use std::path::PathBuf;
use std::process::ExitCode;

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const USAGE: &str = "usage:
  tls-bench [run] [--bytes N[K|M|G]] [--runs N] [--seconds S] [--round-trips N]
                  [--host NAME] [--no-stunnel] [--dir DIR] [--only throughput,handshakes,latency]
                  [--handshakes-on-one-cpu] [--clients rustls,psm,relay,stunnel]
  tls-bench server --dir DIR --mode stream|handshake|echo [--bytes N]
  tls-bench relay --dir DIR --socket PATH --port N [--host NAME]
  tls-bench certs DIR";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tls-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(args: &[String]) -> Res<ExitCode> {
    match args.first().map(String::as_str) {
        Some("server") => {
            let mut a = Args::new(&args[1..]);
            let dir = a.value("--dir")?.map(PathBuf::from).ok_or("server: --dir is required")?;
            let bytes = a.value("--bytes")?.map(|v| parse_size(&v)).transpose()?.unwrap_or(0);
            let mode = server::Mode::parse(&a.value("--mode")?.ok_or("server: --mode is required")?, bytes)?;
            a.finish()?;
            server::serve(&dir, mode)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("relay") => {
            let mut a = Args::new(&args[1..]);
            let dir = a.value("--dir")?.map(PathBuf::from).ok_or("relay: --dir is required")?;
            let socket = a.value("--socket")?.map(PathBuf::from).ok_or("relay: --socket is required")?;
            let host = a.value("--host")?.unwrap_or_else(|| "localhost".to_string());
            let port = a.value("--port")?.ok_or("relay: --port is required")?;
            a.finish()?;
            let port = port.parse().map_err(|_| format!("relay: bad port {port}"))?;
            relay::serve(&socket, &certs::Files::in_dir(&dir).ca, &host, port)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("certs") => {
            let [_, dir] = args else { return Err(USAGE.into()) };
            certs::generate(dir.as_ref())?;
            Ok(ExitCode::SUCCESS)
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some("run") => run_command(&args[1..]),
        _ => run_command(args),
    }
}

fn run_command(args: &[String]) -> Res<ExitCode> {
    let mut a = Args::new(args);
    let mut o = run::Opts::default();
    if let Some(v) = a.value("--bytes")? {
        o.bytes = parse_size(&v)?;
    }
    if let Some(v) = a.value("--runs")? {
        o.runs = v.parse().map_err(|_| format!("--runs: not a number: {v}"))?;
    }
    if let Some(v) = a.value("--seconds")? {
        o.seconds = v.parse().map_err(|_| format!("--seconds: not a number: {v}"))?;
    }
    if let Some(v) = a.value("--round-trips")? {
        o.round_trips = v.parse().map_err(|_| format!("--round-trips: not a number: {v}"))?;
    }
    if let Some(v) = a.value("--host")? {
        o.host = v;
    }
    if let Some(v) = a.value("--dir")? {
        o.dir = Some(PathBuf::from(v));
    }
    if let Some(v) = a.value("--only")? {
        o.sections = run::Sections::parse(&v)?;
    }
    if let Some(v) = a.value("--clients")? {
        o.clients = v
            .split(',')
            .map(|n| client::Kind::parse(n.trim()).ok_or_else(|| format!("--clients: unknown client '{n}'")))
            .collect::<Result<_, _>>()?;
    }
    o.stunnel = !a.flag("--no-stunnel");
    o.handshakes_on_one_cpu = a.flag("--handshakes-on-one-cpu");
    a.finish()?;
    if o.bytes == 0 || o.runs == 0 || o.round_trips < 100 || o.seconds.is_nan() || o.seconds <= 0.0 {
        return Err("--bytes, --runs and --seconds must be positive, --round-trips at least 100".into());
    }
    run::run(&o)
}

/// "1073741824", "64K", "256M", "1G" (binary multiples).
fn parse_size(s: &str) -> Res<u64> {
    let (digits, mult) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = digits.parse().map_err(|_| format!("not a size: {s}"))?;
    Ok(n.checked_mul(mult).ok_or_else(|| format!("too large: {s}"))?)
}

/// `--name value` options and `--flag`s, in any order.
struct Args {
    rest: Vec<String>,
}

impl Args {
    fn new(args: &[String]) -> Args {
        Args { rest: args.to_vec() }
    }

    fn value(&mut self, name: &str) -> Res<Option<String>> {
        let Some(i) = self.rest.iter().position(|a| a == name) else { return Ok(None) };
        if i + 1 >= self.rest.len() {
            return Err(format!("{name} needs a value\n{USAGE}").into());
        }
        let v = self.rest.remove(i + 1);
        self.rest.remove(i);
        Ok(Some(v))
    }

    fn flag(&mut self, name: &str) -> bool {
        let Some(i) = self.rest.iter().position(|a| a == name) else { return false };
        self.rest.remove(i);
        true
    }

    fn finish(self) -> Res<()> {
        match self.rest.first() {
            None => Ok(()),
            Some(a) => Err(format!("unexpected argument '{a}'\n{USAGE}").into()),
        }
    }
}
