//! SoftHSM tokens for tests that run psmd against a real PKCS#11 module:
//! a private SoftHSM configuration, tokens initialized with the
//! `softhsm2-util` and `pkcs11-tool` command-line tools, keys generated on
//! the tokens and certificates written next to them.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
pub const SO_PIN: &str = "87654321";
pub const USER_PIN: &str = "1234";

/// A SoftHSM configuration and its token directory.
pub struct SoftHsm {
    pub dir: PathBuf,
    pub conf: PathBuf,
}

/// Runs a command that must succeed; its standard output.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl SoftHsm {
    /// A new, empty configuration in `dir` (removed first).
    pub fn create(dir: &Path) -> SoftHsm {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir.join("tokens")).unwrap();
        let conf = dir.join("softhsm2.conf");
        let text = format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        );
        std::fs::write(&conf, text).unwrap();
        SoftHsm { dir: dir.to_path_buf(), conf }
    }

    fn tool(&self, token: &str) -> Command {
        let mut c = Command::new("pkcs11-tool");
        c.env("SOFTHSM2_CONF", &self.conf).args(["--module", MODULE, "--token-label", token]);
        c.args(["--login", "--pin", USER_PIN]);
        c
    }

    pub fn init_token(&self, label: &str) {
        run(Command::new("softhsm2-util").env("SOFTHSM2_CONF", &self.conf).args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            SO_PIN,
            "--pin",
            USER_PIN,
        ]));
    }

    /// Generates a key pair on `token` (`key_type` as pkcs11-tool takes
    /// it: "EC:prime256v1", "rsa:2048") and returns its public key (DER
    /// SubjectPublicKeyInfo). `id` is hex.
    pub fn generate(&self, token: &str, key_type: &str, id: &str, label: &str) -> Vec<u8> {
        let mut keygen = self.tool(token);
        keygen.args(["--keypairgen", "--key-type", key_type, "--id", id, "--label", label, "--usage-sign"]);
        // RSA keys decrypt (key transport), EC keys derive (ECDH key
        // agreement): what S/MIME decryption asks of each.
        keygen.arg(if key_type.starts_with("rsa") { "--usage-decrypt" } else { "--usage-derive" });
        run(&mut keygen);
        let public = self.dir.join(format!("{token}-{id}.pub.der"));
        run(self.tool(token).args(["--read-object", "--type", "pubkey", "--id", id, "-o"]).arg(&public));
        std::fs::read(&public).unwrap()
    }

    /// Writes a certificate (DER) to `token` with the id of its key.
    pub fn write_certificate(&self, token: &str, id: &str, label: &str, der: &[u8]) {
        let path = self.dir.join(format!("{token}-{id}.crt.der"));
        std::fs::write(&path, der).unwrap();
        run(self
            .tool(token)
            .arg("--write-object")
            .arg(&path)
            .args(["--type", "cert", "--id", id, "--label", label]));
    }
}
