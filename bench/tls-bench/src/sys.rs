//! The operating-system odds and ends of a benchmark: CPU placement, CPU
//! time of this and other processes, glibc's heap tuning, listening ports.

use crate::Res;
use std::io;
use std::time::Duration;

/// Large buffers are allocated and freed all the time by a TLS sender; with
/// glibc's defaults the heap is trimmed and grown again over and over (tens
/// of thousands of page faults per GiB). Every process of the benchmark
/// that moves bulk data calls this first.
pub fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes parameters of glibc's allocator; called
    // before the benchmark's threads start.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        // Setting the trim threshold freezes the mmap threshold at 128 KiB;
        // keep big buffers on the heap too (32 MiB is glibc's maximum).
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
}

/// The CPUs this process may run on, in order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        set
    };
    // SAFETY: CPU_ISSET reads the set; the index is below CPU_SETSIZE.
    Ok((0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect())
}

/// Pins one thread (`tid`; 0 = the calling thread) to `cpu`. Async-signal
/// safe, so usable between fork and exec.
pub fn pin(tid: libc::pid_t, cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data, filled by CPU_ZERO/CPU_SET.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(tid, size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Pins every thread of process `pid` to `cpu` (`taskset -a -p`). Threads
/// it starts later inherit the placement of the thread starting them.
pub fn pin_process(pid: i32, cpu: usize) -> io::Result<()> {
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        if let Some(tid) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) {
            match pin(tid, cpu) {
                // A thread that exited meanwhile.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                r => r?,
            }
        }
    }
    Ok(())
}

/// User plus system CPU time of this process, all threads.
pub fn self_cpu() -> Duration {
    // SAFETY: rusage is plain data; getrusage fills it.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(us(ru.ru_utime) + us(ru.ru_stime))
}

/// User plus system CPU time of process `pid`, all threads (utime and stime
/// of /proc/PID/stat, in clock ticks).
pub fn proc_cpu(pid: i32) -> Res<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields are counted
    // from the last ')'. After it: state (field 3) ... utime (14), stime (15).
    let rest = stat.rsplit_once(')').ok_or("malformed /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).ok_or("short /proc/PID/stat")?.parse::<u64>()?
        + fields.get(12).ok_or("short /proc/PID/stat")?.parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// Whether some IPv4 TCP socket listens on `port` (/proc/net/tcp). Lets the
/// benchmark wait for stunnel without connecting to it, which would make
/// stunnel open a TLS connection to the server.
pub fn listening(port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else { return false };
    table.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let local_port = f.get(1).and_then(|a| a.rsplit_once(':')).map(|(_, p)| p);
        f.get(3) == Some(&"0A") && local_port.and_then(|p| u16::from_str_radix(p, 16).ok()) == Some(port)
    })
}

/// A TCP port on 127.0.0.1 that nobody listens on right now.
pub fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
