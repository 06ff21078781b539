//! The system's trust anchors (`SSL_CERT_FILE` / `SSL_CERT_DIR`, else
//! Debian's bundle or `/etc/ssl/certs`), read as the built-in set.

use crate::pki::cert::{self, Parsed};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::path::{Path, PathBuf};

const DEFAULT_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const DEFAULT_DIR: &str = "/etc/ssl/certs";

/// Every parseable CA certificate of the system store; others are skipped
/// with a debug log.
pub fn system_anchors() -> Vec<Parsed> {
    let var = |n: &str| std::env::var_os(n).filter(|v| !v.is_empty());
    let mut files: Vec<PathBuf> = Vec::new();
    match (var("SSL_CERT_FILE"), var("SSL_CERT_DIR")) {
        (None, None) if Path::new(DEFAULT_BUNDLE).exists() => files.push(DEFAULT_BUNDLE.into()),
        (None, None) => files.extend(dir_files(Path::new(DEFAULT_DIR))),
        (file, dirs) => {
            files.extend(file.map(PathBuf::from));
            if let Some(dirs) = dirs {
                for d in std::env::split_paths(&dirs) {
                    files.extend(dir_files(&d));
                }
            }
        }
    }
    let mut out: Vec<Parsed> = Vec::new();
    for f in files {
        let Ok(data) = std::fs::read(&f) else { continue };
        for der in CertificateDer::pem_slice_iter(&data).flatten() {
            match cert::parse(&der) {
                Ok(p) if p.is_ca => {
                    if !out.iter().any(|o| o.sha256 == p.sha256) {
                        out.push(p);
                    }
                }
                Ok(_) => tracing::debug!(file = %f.display(), "skipping a non-CA certificate"),
                Err(e) => tracing::debug!(file = %f.display(), "skipping a certificate: {e}"),
            }
        }
    }
    out
}

fn dir_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<PathBuf> = rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    v.sort();
    v
}
