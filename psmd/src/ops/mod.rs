//! Request handlers, one module per request family. Each is a plain
//! function of its arguments; the event loop knows nothing of what they do.

pub mod cert;
pub mod core;
pub mod crypto;
pub mod debug;
pub mod key;
pub mod smime;
pub mod tls;
pub mod token;
pub mod view;
