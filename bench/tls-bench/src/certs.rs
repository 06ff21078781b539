//! The throwaway PKI of one run: a CA and a server certificate it issued
//! for localhost, 127.0.0.1 and ::1, both ECDSA P-256.

use crate::Res;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

pub struct Files {
    /// The CA certificate (PEM): what the clients trust.
    pub ca: PathBuf,
    /// The server's certificate (PEM, leaf only) and key (PKCS#8 PEM).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl Files {
    pub fn in_dir(dir: &Path) -> Files {
        Files {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        }
    }
}

/// Makes a new CA and server certificate and writes them into `dir`.
pub fn generate(dir: &Path) -> Res<Files> {
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name.push(DnType::CommonName, "psm tls-bench CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca = Issuer::new(ca_params, ca_key);

    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])?;
    params.distinguished_name.push(DnType::CommonName, "localhost");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;

    let files = Files::in_dir(dir);
    std::fs::write(&files.ca, ca_cert.pem())?;
    std::fs::write(&files.server_cert, cert.pem())?;
    std::fs::write(&files.server_key, key.serialize_pem())?;
    Ok(files)
}
