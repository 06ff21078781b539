//! psm: the Personal Security Manager client library.
//!
//! * [`proto`] is the wire protocol shared with `psmd` (frames, messages).
//! * [`client`] is the safe Rust client: connection with auto-start,
//!   request/reply with ids, events, data channels.
//! * [`transport`] holds the platform code (socket paths, peer credentials,
//!   descriptor passing) used by both sides.
//! * `ffi` is the C ABI of `include/psm.h`: thin conversions over `client`.

pub mod client;
pub mod error;
pub mod ffi;
pub mod proto;
pub mod transport;

pub use client::{Client, ConnectFlags, SslChannel, Stream};
pub use error::{Code, Error, Result};

/// A Unix time as people read it: "2027-03-01 12:00:00 UTC" (the civil
/// date by Howard Hinnant's algorithm).
pub fn utc_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", secs / 3600, secs % 3600 / 60, secs % 60)
}
