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
