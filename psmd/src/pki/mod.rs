//! PKI building blocks, free of daemon state: certificate parsing,
//! path verification, key generation and signing, PKCS#12, and the soft
//! token's sealing of secrets. The store and the op handlers use them.

pub mod cert;
pub mod dn;
pub mod keys;
pub mod pkcs12;
pub mod seal;
pub mod smime;
pub mod verify;
