//! The psm wire protocol, shared by libpsm and psmd.
//!
//! A control connection carries frames: a `u32` big-endian length followed by
//! that many bytes of postcard. The client sends [`RequestFrame`]s; the daemon
//! sends [`ServerFrame`]s (replies, which may come out of order, and
//! unsolicited events). Bulk data goes over data channels: socketpairs whose
//! client end travels with the reply that opens them (`SCM_RIGHTS`).

mod frame;
mod msg;

pub use frame::{
    FrameError, FrameReader, MAX_FRAME, decode_request, decode_server_frame, encode_frame, encode_request,
    encode_server_frame,
};
pub use msg::*;
pub use serde_bytes::ByteBuf;

/// Oldest and newest protocol versions this build speaks.
pub const PROTOCOL_MIN: u16 = 1;
pub const PROTOCOL_MAX: u16 = 1;
