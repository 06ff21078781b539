//! S/MIME (CMS) interop fixtures: a small PKI made at run time, wrappers
//! around the `openssl cms` CLI (OpenSSL 3.0) and around `gpgsm` (GnuPG
//! 2.2.40) in a private, non-interactive GNUPGHOME, and the location of the
//! `cryptography_vectors` PKCS#7 samples.
//!
//! Everything here shells out to the real peers so that psm's output is
//! checked against independent implementations. Helpers panic with a clear
//! message when a fixture cannot be set up; the functions that run a peer
//! on a message return its outcome ([`CmdOut`], [`GpgsmVerify`]) so that
//! tests can assert failures too.
//!
//! Known limits of the peers on this machine (checked by hand, see the
//! individual functions):
//! - `openssl cms` 3.0 has no `-untrusted`: intermediates go in with
//!   `-certfile`, and a CRL goes into the `-CAfile` (see
//!   [`SmimePki::ca_with_crl_pem`]) because there is no `-CRLfile` either.
//! - gpgsm 2.2.40 reads only DER or its own PEM armour, never a MIME
//!   message: use [`smime_parts`] (or [`Gpgsm::verify_smime`]) first.
//! - gpgsm 2.2.40 can decrypt neither AuthEnvelopedData (AES-GCM: "error
//!   getting IV: Buffer too short") nor RSA-OAEP key transport ("No secret
//!   key"); it encrypts with AES-128-CBC EnvelopedData and PKCS#1 v1.5 key
//!   transport by default.
//! - gpgsm 2.2.40 accepts RSA-PSS signatures only with salt length = hash
//!   length (OpenSSL's default "max" salt is rejected and gpgsm then even
//!   crashes with a double free); [`openssl_cms_sign`] uses `digest` salt.
//! - gpgsm 2.2.40 cannot import a PKCS#12 file encrypted with PBES2/AES
//!   (the OpenSSL 3 default), and segfaults importing any PKCS#12 with an
//!   EC key: RSA identities go in through [`Entity::p12_legacy`]
//!   (PBE-SHA1-3DES, SHA-1 MAC), EC ones as an unprotected gpg-agent key
//!   file written directly (see [`Gpgsm::import_secret`]).

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, BigNumContext, MsbOption};
use openssl::ec::{EcGroup, EcKey, PointConversionForm};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509NameBuilder};
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// The password of every PKCS#12 file made here.
pub const P12_PASSWORD: &str = "test";

/// The pinned `cryptography-vectors` release (PyPI).
pub const CRYPTOGRAPHY_VECTORS_VERSION: &str = "50.0.2";

const DAY: i64 = 86400;

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn asn1_time(unix: i64) -> Asn1Time {
    Asn1Time::from_unix(unix).unwrap()
}

/// `YYMMDDHHMMSSZ` (UTCTime, as `openssl ca`'s index.txt wants it).
fn utc_time(unix: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let days = unix.div_euclid(DAY);
    let secs = unix.rem_euclid(DAY);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{:02}{:02}{:02}{:02}{:02}{:02}Z", y % 100, m, d, secs / 3600, secs % 3600 / 60, secs % 60)
}

fn write(path: &Path, data: &[u8]) {
    std::fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Runs a command to completion (stdin from `input`, or /dev/null).
fn run(mut cmd: Command, input: Option<&[u8]>) -> CmdOut {
    let shown = format!("{cmd:?}");
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {shown}: {e}"));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        // A thread, so a child that writes before reading cannot deadlock us.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("wait {shown}: {e}"));
    CmdOut {
        ok: out.status.success(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        command: shown,
    }
}

/// What a peer CLI run produced.
#[derive(Debug, Clone)]
pub struct CmdOut {
    /// Exit status 0.
    pub ok: bool,
    /// Raw standard output (the message, the plaintext, the content...).
    pub stdout: Vec<u8>,
    /// Standard error, lossily decoded.
    pub stderr: String,
    /// The command line, for failure messages.
    pub command: String,
}

impl CmdOut {
    /// Panics with the command and its stderr unless it succeeded; returns stdout.
    pub fn expect_ok(self, what: &str) -> Vec<u8> {
        assert!(self.ok, "{what} failed: {}\n{}", self.command, self.stderr);
        self.stdout
    }
}

/// Encoding of a CMS message as the `openssl cms -inform/-outform` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A MIME entity: multipart/signed or application/pkcs7-mime (base64).
    Smime,
    /// Raw DER (or BER) ContentInfo.
    Der,
    /// `-----BEGIN CMS-----` armour.
    Pem,
}

impl Form {
    /// The `openssl cms` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Form::Smime => "SMIME",
            Form::Der => "DER",
            Form::Pem => "PEM",
        }
    }
}

/// A certificate with its key and the files made for it.
pub struct Entity {
    /// Short name: "root", "intermediate", "alice", ...
    pub name: &'static str,
    /// rfc822Name in the SAN, for end entities.
    pub email: Option<String>,
    pub cert: X509,
    pub key: PKey<Private>,
    /// Certificate, PEM.
    pub cert_pem: PathBuf,
    /// Private key, unencrypted PKCS#8 PEM.
    pub key_pem: PathBuf,
    /// PKCS#12 (end entities only; empty path for CAs): key, certificate and
    /// chain, password [`P12_PASSWORD`], PBES2/PBKDF2/AES-256-CBC with an
    /// HMAC-SHA-256 MAC: OpenSSL 3 reads it without the legacy provider.
    pub p12: PathBuf,
    /// The same content for gpgsm 2.2.40, which cannot import PBES2: key
    /// bag PBE-SHA1-3DES, certificate bag unencrypted, SHA-1 MAC (still
    /// readable by OpenSSL 3's default provider).
    pub p12_legacy: PathBuf,
    /// The issuer's certificate, PEM (None for the root).
    pub issuer_pem: Option<PathBuf>,
}

impl Entity {
    /// Certificate, DER.
    pub fn cert_der(&self) -> Vec<u8> {
        self.cert.to_der().unwrap()
    }

    /// Private key, PKCS#8 DER.
    pub fn key_der(&self) -> Vec<u8> {
        self.key.private_key_to_pkcs8().unwrap()
    }

    /// The PKCS#12 file's bytes (modern algorithms).
    pub fn p12_der(&self) -> Vec<u8> {
        read(&self.p12)
    }

    /// SHA-1 fingerprint of the certificate, upper-case hex without colons:
    /// how gpgsm names a certificate (GOODSIG, VALIDSIG, trustlist.txt).
    pub fn sha1_fpr(&self) -> String {
        hex::encode_upper(self.cert.digest(MessageDigest::sha1()).unwrap())
    }

    /// Serial number, upper-case hex.
    pub fn serial_hex(&self) -> String {
        self.cert.serial_number().to_bn().unwrap().to_hex_str().unwrap().to_string()
    }

    /// True for an EC key (carol).
    pub fn is_ec(&self) -> bool {
        self.key.id() == Id::EC
    }

    /// The email address; panics for a CA.
    pub fn email(&self) -> &str {
        self.email.as_deref().unwrap_or_else(|| panic!("{} has no email", self.name))
    }
}

/// The test S/MIME PKI: root -> intermediate -> five end entities, all files
/// in one directory.
pub struct SmimePki {
    pub dir: PathBuf,
    /// "psm S/MIME Test CA", RSA 2048, self-signed, valid from 2 years ago
    /// for 10 years from now.
    pub root: Entity,
    /// "psm S/MIME Test Intermediate CA", RSA 2048, pathlen 0, same validity.
    pub intermediate: Entity,
    /// alice@example.com, RSA 2048, valid now.
    pub alice: Entity,
    /// bob@example.com, RSA 2048, valid now.
    pub bob: Entity,
    /// carol@example.com, EC P-256 (digitalSignature, keyAgreement), valid now.
    pub carol: Entity,
    /// dave@example.com, RSA 2048, EXPIRED: valid from 400 to 30 days ago.
    pub dave: Entity,
    /// eve@example.com, RSA 2048, valid now but REVOKED (keyCompromise,
    /// yesterday) in [`SmimePki::crl_pem`].
    pub eve: Entity,
    /// The intermediate's CRL (v2, CRL number 1, next update in 30 days)
    /// listing eve, PEM.
    pub crl_pem: PathBuf,
    /// The same CRL, DER.
    pub crl_der: PathBuf,
    /// Intermediate then root, PEM: what `-certfile` wants.
    pub chain_pem: PathBuf,
    /// Root then the intermediate's CRL, PEM: a `-CAfile` for
    /// `openssl cms -verify -crl_check` (OpenSSL 3.0's cms has no -CRLfile).
    pub ca_with_crl_pem: PathBuf,
}

fn new_rsa() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn new_p256() -> PKey<Private> {
    PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap())
        .unwrap()
}

struct CertSpec<'a> {
    cn: &'a str,
    email: Option<&'a str>,
    ca: bool,
    not_before: i64,
    not_after: i64,
    key: PKey<Private>,
}

fn random_serial() -> Asn1Integer {
    let mut bn = BigNum::new().unwrap();
    // 127 bits with the top bit set: positive, 16 bytes.
    bn.rand(127, MsbOption::ONE, false).unwrap();
    Asn1Integer::from_bn(&bn).unwrap()
}

fn build_cert(spec: &CertSpec<'_>, issuer: Option<(&X509, &PKey<Private>)>) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "psm test").unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, spec.cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&random_serial()).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&*name, |(c, _)| c.subject_name())).unwrap();
    b.set_not_before(&asn1_time(spec.not_before)).unwrap();
    b.set_not_after(&asn1_time(spec.not_after)).unwrap();
    b.set_pubkey(&spec.key).unwrap();
    if spec.ca {
        let mut bc = BasicConstraints::new();
        bc.critical().ca();
        if issuer.is_some() {
            bc.pathlen(0);
        }
        b.append_extension(bc.build().unwrap()).unwrap();
        b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build().unwrap()).unwrap();
    } else {
        b.append_extension(BasicConstraints::new().critical().build().unwrap()).unwrap();
        let mut ku = KeyUsage::new();
        ku.critical().digital_signature();
        if spec.key.id() == Id::EC {
            ku.key_agreement();
        } else {
            ku.non_repudiation().key_encipherment();
        }
        b.append_extension(ku.build().unwrap()).unwrap();
        b.append_extension(ExtendedKeyUsage::new().email_protection().build().unwrap()).unwrap();
    }
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(issuer.map(|(c, _)| &**c), None)).unwrap();
    b.append_extension(ski).unwrap();
    if let Some((ic, _)) = issuer {
        let aki = AuthorityKeyIdentifier::new().keyid(true).build(&b.x509v3_context(Some(ic), None)).unwrap();
        b.append_extension(aki).unwrap();
    }
    if let Some(email) = spec.email {
        let san = SubjectAlternativeName::new()
            .email(email)
            .build(&b.x509v3_context(issuer.map(|(c, _)| &**c), None))
            .unwrap();
        b.append_extension(san).unwrap();
    }
    b.sign(issuer.map_or(&spec.key, |(_, k)| k), MessageDigest::sha256()).unwrap();
    b.build()
}

/// `&str`, `&Path`, `&String`... as the `&OsStr` that [`Gpgsm::run`] takes.
pub fn os<S: AsRef<OsStr> + ?Sized>(s: &S) -> &OsStr {
    s.as_ref()
}

fn openssl() -> Command {
    Command::new("openssl")
}

impl SmimePki {
    /// Generates the whole PKI into `dir` (created if missing): about 1 s,
    /// mostly RSA key generation and PKCS#12 PBKDF2.
    pub fn new(dir: &Path) -> SmimePki {
        std::fs::create_dir_all(dir).unwrap();
        let dir = dir.to_path_buf();
        let t = now();
        let ca_from = t - 730 * DAY;
        let ca_to = t + 3650 * DAY;

        let save = |name: &'static str, email: Option<&str>, cert: X509, key: PKey<Private>| -> Entity {
            let cert_pem = dir.join(format!("{name}.pem"));
            let key_pem = dir.join(format!("{name}.key"));
            write(&cert_pem, &cert.to_pem().unwrap());
            write(&key_pem, &key.private_key_to_pem_pkcs8().unwrap());
            std::fs::set_permissions(&key_pem, std::fs::Permissions::from_mode(0o600)).unwrap();
            Entity {
                name,
                email: email.map(str::to_string),
                cert,
                key,
                cert_pem,
                key_pem,
                p12: PathBuf::new(),
                p12_legacy: PathBuf::new(),
                issuer_pem: None,
            }
        };

        let root_key = new_rsa();
        let root_cert = build_cert(
            &CertSpec {
                cn: "psm S/MIME Test CA",
                email: None,
                ca: true,
                not_before: ca_from,
                not_after: ca_to,
                key: root_key.clone(),
            },
            None,
        );
        let root = save("root", None, root_cert, root_key);

        let int_key = new_rsa();
        let int_cert = build_cert(
            &CertSpec {
                cn: "psm S/MIME Test Intermediate CA",
                email: None,
                ca: true,
                not_before: ca_from,
                not_after: ca_to,
                key: int_key.clone(),
            },
            Some((&root.cert, &root.key)),
        );
        let mut intermediate = save("intermediate", None, int_cert, int_key);
        intermediate.issuer_pem = Some(root.cert_pem.clone());

        let chain_pem = dir.join("chain.pem");
        let mut chain = intermediate.cert.to_pem().unwrap();
        chain.extend(root.cert.to_pem().unwrap());
        write(&chain_pem, &chain);

        let leaf = |name: &'static str, cn: &str, ec: bool, from: i64, to: i64| -> Entity {
            let email = format!("{name}@example.com");
            let key = if ec { new_p256() } else { new_rsa() };
            let cert = build_cert(
                &CertSpec {
                    cn,
                    email: Some(&email),
                    ca: false,
                    not_before: from,
                    not_after: to,
                    key: key.clone(),
                },
                Some((&intermediate.cert, &intermediate.key)),
            );
            let mut e = save(name, Some(&email), cert, key);
            e.issuer_pem = Some(intermediate.cert_pem.clone());
            e.p12 = dir.join(format!("{name}.p12"));
            e.p12_legacy = dir.join(format!("{name}-legacy.p12"));
            // gpgsm 2.2.40 fails on some (~5%) valid 3DES-encrypted certificate
            // bags ("decryption failed; trying charset ..."), so the legacy
            // file leaves the certificates unencrypted.
            for (out, keypbe, certpbe, mac) in [
                (&e.p12, "AES-256-CBC", "AES-256-CBC", "sha256"),
                (&e.p12_legacy, "PBE-SHA1-3DES", "NONE", "sha1"),
            ] {
                let mut c = openssl();
                c.args(["pkcs12", "-export", "-passout"])
                    .arg(format!("pass:{P12_PASSWORD}"))
                    .args(["-name", cn, "-keypbe", keypbe, "-certpbe", certpbe, "-macalg", mac, "-in"])
                    .arg(&e.cert_pem)
                    .arg("-inkey")
                    .arg(&e.key_pem)
                    .arg("-certfile")
                    .arg(&chain_pem)
                    .arg("-out")
                    .arg(out);
                run(c, None).expect_ok("openssl pkcs12 -export");
            }
            e
        };
        let valid_from = t - DAY;
        let valid_to = t + 365 * DAY;
        let alice = leaf("alice", "Alice", false, valid_from, valid_to);
        let bob = leaf("bob", "Bob", false, valid_from, valid_to);
        let carol = leaf("carol", "Carol", true, valid_from, valid_to);
        let dave = leaf("dave", "Dave (expired)", false, t - 400 * DAY, t - 30 * DAY);
        let eve = leaf("eve", "Eve (revoked)", false, valid_from, valid_to);

        // CRL from the intermediate listing eve, through `openssl ca -gencrl`.
        let ca_dir = dir.join("ca-db");
        std::fs::create_dir_all(&ca_dir).unwrap();
        let index = format!(
            "R\t{}\t{},keyCompromise\t{}\tunknown\t/O=psm test/CN=Eve (revoked)\n",
            utc_time(valid_to),
            utc_time(t - DAY),
            eve.serial_hex()
        );
        write(&ca_dir.join("index.txt"), index.as_bytes());
        write(&ca_dir.join("crlnumber"), b"01\n");
        let conf = format!(
            "[ca]\ndefault_ca=d\n[d]\ndatabase={}\ncrlnumber={}\ndefault_md=sha256\ndefault_crl_days=30\n\
             crl_extensions=crl_ext\n[crl_ext]\nauthorityKeyIdentifier=keyid:always\n",
            ca_dir.join("index.txt").display(),
            ca_dir.join("crlnumber").display()
        );
        let conf_path = ca_dir.join("ca.cnf");
        write(&conf_path, conf.as_bytes());
        let crl_pem = dir.join("intermediate.crl.pem");
        let crl_der = dir.join("intermediate.crl.der");
        let mut c = openssl();
        c.args(["ca", "-gencrl", "-batch", "-config"])
            .arg(&conf_path)
            .arg("-cert")
            .arg(&intermediate.cert_pem)
            .arg("-keyfile")
            .arg(&intermediate.key_pem)
            .arg("-out")
            .arg(&crl_pem);
        run(c, None).expect_ok("openssl ca -gencrl");
        let mut c = openssl();
        c.args(["crl", "-outform", "DER", "-in"]).arg(&crl_pem).arg("-out").arg(&crl_der);
        run(c, None).expect_ok("openssl crl -outform DER");

        let ca_with_crl_pem = dir.join("root+crl.pem");
        let mut both = root.cert.to_pem().unwrap();
        both.extend(read(&crl_pem));
        write(&ca_with_crl_pem, &both);

        SmimePki {
            dir,
            root,
            intermediate,
            alice,
            bob,
            carol,
            dave,
            eve,
            crl_pem,
            crl_der,
            chain_pem,
            ca_with_crl_pem,
        }
    }

    /// The five end entities, in order alice, bob, carol, dave, eve.
    pub fn leaves(&self) -> [&Entity; 5] {
        [&self.alice, &self.bob, &self.carol, &self.dave, &self.eve]
    }

    /// Root CA certificate, PEM path (the `-CAfile` / trust anchor).
    pub fn ca_pem(&self) -> &Path {
        &self.root.cert_pem
    }

    /// Intermediate CA certificate, PEM path.
    pub fn intermediate_pem(&self) -> &Path {
        &self.intermediate.cert_pem
    }

    /// The CRL, DER bytes.
    pub fn crl_der_bytes(&self) -> Vec<u8> {
        read(&self.crl_der)
    }
}

// ---------------------------------------------------------------------------
// openssl cms
// ---------------------------------------------------------------------------

/// `openssl cms -verify -binary -inform FORM -in MSG [-content C] -CAfile CA`:
/// stdout = the signed content. `-binary` makes the
/// detached content count byte for byte (no LF -> CRLF translation). The
/// signer's intermediate must be in the message or passed through
/// [`openssl_cms_verify_with`] `["-certfile", chain]`.
pub fn openssl_cms_verify(msg: &Path, form: Form, detached_content: Option<&Path>, ca_file: &Path) -> CmdOut {
    openssl_cms_verify_with(msg, form, detached_content, ca_file, &[])
}

/// [`openssl_cms_verify`] with extra arguments appended, e.g.
/// `["-certfile", chain]`, `["-crl_check"]` (with
/// [`SmimePki::ca_with_crl_pem`] as CA file), `["-attime", "<unix>"]`,
/// `["-purpose", "smimesign"]`, `["-signer", "out.pem"]`.
pub fn openssl_cms_verify_with(
    msg: &Path,
    form: Form,
    detached_content: Option<&Path>,
    ca_file: &Path,
    extra: &[&str],
) -> CmdOut {
    openssl_cms_verify_mode(msg, form, detached_content, ca_file, true, extra)
}

/// [`openssl_cms_verify_with`], choosing `-binary` or text mode. Text mode
/// is how a mail reader checks a multipart/signed entity: OpenSSL 3.0's
/// MIME splitter in `-binary` mode turns the part's CRLF line ends into LF
/// before digesting, so a canonical (CRLF) part would not verify.
pub fn openssl_cms_verify_mode(
    msg: &Path,
    form: Form,
    detached_content: Option<&Path>,
    ca_file: &Path,
    binary: bool,
    extra: &[&str],
) -> CmdOut {
    let mut c = openssl();
    c.args(["cms", "-verify"]);
    if binary {
        c.arg("-binary");
    }
    c.args(["-inform", form.as_str(), "-in"]).arg(msg);
    if let Some(content) = detached_content {
        c.arg("-content").arg(content);
    }
    c.arg("-CAfile").arg(ca_file).args(extra);
    run(c, None)
}

/// How [`openssl_cms_sign`] signs.
#[derive(Debug, Clone)]
pub struct SignOptions<'a> {
    /// Detached (multipart/signed for SMIME) rather than opaque (`-nodetach`).
    pub detached: bool,
    /// `-md`: "sha256" (default), "sha384", "sha512", ...
    pub digest: &'a str,
    /// RSA-PSS with salt length = digest length (`-keyopt
    /// rsa_padding_mode:pss -keyopt rsa_pss_saltlen:digest`); gpgsm 2.2.40
    /// rejects any other salt length.
    pub pss: bool,
    /// Output encoding.
    pub form: Form,
    /// `-binary`: sign the bytes as they are (default true). When false,
    /// OpenSSL canonicalises text to CRLF first (S/MIME text mode).
    pub binary: bool,
    /// Add the intermediate (`-certfile`) so verifiers need only the root
    /// (default true).
    pub include_chain: bool,
    /// Anything else, e.g. `["-noattr"]`, `["-cades"]`, `["-nosmimecap"]`.
    pub extra: &'a [&'a str],
}

impl Default for SignOptions<'_> {
    fn default() -> Self {
        SignOptions {
            detached: true,
            digest: "sha256",
            pss: false,
            form: Form::Smime,
            binary: true,
            include_chain: true,
            extra: &[],
        }
    }
}

/// `openssl cms -sign`: stdout = the signed message in `opts.form`.
pub fn openssl_cms_sign(content: &Path, signer: &Entity, opts: &SignOptions<'_>) -> CmdOut {
    let mut c = openssl();
    c.args(["cms", "-sign", "-md", opts.digest, "-outform", opts.form.as_str(), "-in"])
        .arg(content)
        .arg("-signer")
        .arg(&signer.cert_pem)
        .arg("-inkey")
        .arg(&signer.key_pem);
    if opts.pss {
        // -keyopt applies to the preceding -signer.
        c.args(["-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:digest"]);
    }
    if !opts.detached {
        c.arg("-nodetach");
    }
    if opts.binary {
        c.arg("-binary");
    }
    if opts.include_chain {
        // Only the issuer: every -certfile certificate gets embedded.
        if let Some(p) = &signer.issuer_pem {
            c.arg("-certfile").arg(p);
        }
    }
    c.args(opts.extra);
    run(c, None)
}

/// `openssl cms -encrypt -CIPHER -recip R [-keyopt rsa_padding_mode:oaep]...`:
/// stdout = the message in `form`. `cipher` is an `openssl enc` name
/// without the dash: "aes-256-gcm" and "aes-128-gcm" make
/// AuthEnvelopedData (id-smime-ct-authEnvelopedData, 1.2.840.113549.1.9.16.1.23),
/// "aes-256-cbc"/"aes-128-cbc"/"des-ede3-cbc" make EnvelopedData. `oaep`
/// applies to RSA recipients (RSAES-OAEP with default SHA-1 parameters);
/// an EC recipient (carol) always gets ECDH KeyAgreeRecipientInfo.
pub fn openssl_cms_encrypt(
    content: &Path,
    recipients: &[&Entity],
    cipher: &str,
    oaep: bool,
    form: Form,
) -> CmdOut {
    assert!(!recipients.is_empty(), "openssl_cms_encrypt: no recipients");
    let mut c = openssl();
    c.args(["cms", "-encrypt", "-binary", "-outform", form.as_str()])
        .arg(format!("-{cipher}"))
        .arg("-in")
        .arg(content);
    for r in recipients {
        c.arg("-recip").arg(&r.cert_pem);
        if oaep && !r.is_ec() {
            // -keyopt applies to the preceding -recip.
            c.args(["-keyopt", "rsa_padding_mode:oaep"]);
        }
    }
    run(c, None)
}

/// `openssl cms -decrypt` as `recipient`: stdout = the plaintext.
pub fn openssl_cms_decrypt(msg: &Path, form: Form, recipient: &Entity) -> CmdOut {
    openssl_cms_decrypt_with_key(msg, form, &recipient.cert_pem, &recipient.key_pem)
}

/// `openssl cms -decrypt -binary -inform FORM -in MSG -recip CERT -inkey KEY`.
pub fn openssl_cms_decrypt_with_key(msg: &Path, form: Form, cert: &Path, key: &Path) -> CmdOut {
    let mut c = openssl();
    c.args(["cms", "-decrypt", "-binary", "-inform", form.as_str(), "-in"])
        .arg(msg)
        .arg("-recip")
        .arg(cert)
        .arg("-inkey")
        .arg(key);
    run(c, None)
}

/// `openssl cms -cmsout -print`: a text dump to assert algorithms on, e.g.
/// contains "id-smime-ct-authEnvelopedData", "aes-256-gcm", "rsaesOaep",
/// "rsassaPss", "sha256".
pub fn openssl_cms_print(msg: &Path, form: Form) -> String {
    let mut c = openssl();
    c.args(["cms", "-cmsout", "-print", "-inform", form.as_str(), "-in"]).arg(msg);
    String::from_utf8_lossy(&run(c, None).expect_ok("openssl cms -cmsout -print")).into_owned()
}

/// Re-encodes a CMS message as DER (`openssl cms -cmsout -outform DER`);
/// for multipart/signed this is the signature part only.
pub fn cms_to_der(msg: &Path, form: Form) -> Vec<u8> {
    let mut c = openssl();
    c.args(["cms", "-cmsout", "-outform", "DER", "-inform", form.as_str(), "-in"]).arg(msg);
    run(c, None).expect_ok("openssl cms -cmsout -outform DER")
}

// ---------------------------------------------------------------------------
// MIME
// ---------------------------------------------------------------------------

/// An S/MIME message taken apart for tools that want DER.
#[derive(Debug, Clone)]
pub struct SmimeParts {
    /// The CMS ContentInfo, DER (base64-decoded body of
    /// application/pkcs7-mime, or of the application/pkcs7-signature part).
    pub der: Vec<u8>,
    /// For multipart/signed: the first body part exactly as signed (its
    /// MIME headers and body, up to but excluding the CRLF before the next
    /// boundary), with bare LF turned into CRLF (RFC 8551 canonical form).
    pub content: Option<Vec<u8>>,
}

/// Headers (up to the first empty line, CRLF or LF) and the body after it.
fn split_headers(entity: &[u8]) -> (String, &[u8]) {
    let mut start = 0;
    while start < entity.len() {
        let end = entity[start..].iter().position(|&b| b == b'\n').map_or(entity.len(), |i| start + i + 1);
        let line = &entity[start..end];
        if line == b"\n" || line == b"\r\n" {
            return (String::from_utf8_lossy(&entity[..start]).into_owned(), &entity[end..]);
        }
        start = end;
    }
    (String::from_utf8_lossy(entity).into_owned(), &[])
}

/// The parameter `name` of the header `header` (unfolded, case-insensitive).
fn header_param(headers: &str, header: &str, name: &str) -> Option<String> {
    let unfolded = headers.replace("\r\n", "\n").replace("\n ", " ").replace("\n\t", " ");
    let line = unfolded
        .lines()
        .find(|l| l.get(..header.len() + 1).is_some_and(|h| h.eq_ignore_ascii_case(&format!("{header}:"))))?;
    if name.is_empty() {
        return Some(line[header.len() + 1..].split(';').next().unwrap().trim().to_ascii_lowercase());
    }
    for p in line[header.len() + 1..].split(';').skip(1) {
        let (k, v) = p.split_once('=')?;
        if k.trim().eq_ignore_ascii_case(name) {
            return Some(v.trim().trim_matches('"').to_string());
        }
    }
    None
}

fn base64_body(body: &[u8]) -> Vec<u8> {
    let text: String = String::from_utf8_lossy(body).chars().filter(|c| !c.is_ascii_whitespace()).collect();
    openssl::base64::decode_block(&text).unwrap_or_else(|e| panic!("bad base64 in S/MIME body: {e}"))
}

fn canonical_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' && (i == 0 || data[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// Takes an S/MIME message (application/pkcs7-mime or multipart/signed,
/// base64 transfer encoding) apart into DER and, for multipart/signed, the
/// signed content. Panics on anything else.
pub fn smime_parts(msg: &[u8]) -> SmimeParts {
    let (headers, body) = split_headers(msg);
    let ctype = header_param(&headers, "Content-Type", "").unwrap_or_default();
    if ctype == "multipart/signed" {
        let boundary =
            header_param(&headers, "Content-Type", "boundary").expect("multipart/signed without boundary");
        let delim = format!("--{boundary}");
        let d = delim.as_bytes();
        // Delimiter lines: at the start of a line.
        let mut starts = Vec::new();
        let mut i = 0;
        while i + d.len() <= body.len() {
            if &body[i..i + d.len()] == d && (i == 0 || body[i - 1] == b'\n') {
                starts.push(i);
                i += d.len();
            } else {
                i += 1;
            }
        }
        assert!(starts.len() >= 3, "multipart/signed: expected 2 parts, found {} delimiters", starts.len());
        let part = |k: usize| -> &[u8] {
            let mut s = starts[k] + d.len();
            // Skip transport padding and the line break after the delimiter.
            while s < body.len() && (body[s] == b' ' || body[s] == b'\t') {
                s += 1;
            }
            if body[s..].starts_with(b"\r\n") {
                s += 2;
            } else if body[s..].starts_with(b"\n") {
                s += 1;
            }
            // The line break before the next delimiter belongs to it.
            let mut e = starts[k + 1] - 1;
            if e > s && body[e - 1] == b'\r' {
                e -= 1;
            }
            &body[s..e]
        };
        let content = canonical_crlf(part(0));
        let (sig_headers, sig_body) = split_headers(part(1));
        let sig_type = header_param(&sig_headers, "Content-Type", "").unwrap_or_default();
        assert!(
            sig_type == "application/pkcs7-signature" || sig_type == "application/x-pkcs7-signature",
            "multipart/signed second part is {sig_type:?}"
        );
        SmimeParts { der: base64_body(sig_body), content: Some(content) }
    } else if ctype == "application/pkcs7-mime" || ctype == "application/x-pkcs7-mime" {
        SmimeParts { der: base64_body(body), content: None }
    } else {
        panic!("not an S/MIME message: Content-Type {ctype:?}");
    }
}

// ---------------------------------------------------------------------------
// gpgsm
// ---------------------------------------------------------------------------

/// What `gpgsm --verify` said.
#[derive(Debug, Clone)]
pub struct GpgsmVerify {
    /// Exit status 0.
    pub ok: bool,
    /// `--status-fd` lines without the "[GNUPG:] " prefix, e.g.
    /// "NEWSIG", "GOODSIG <fpr> <subject DN>", "VALIDSIG <fpr> <date>
    /// <sig-time> <cert-not-after> 0 0 <pk-algo: 1 RSA, 301 ECDSA>
    /// <hash-algo: 8 SHA-256> 00", "TRUST_FULLY 0 shell"; on failure
    /// "BADSIG <fpr> <dn>" (exit 1), "ERRSIG ...", "ERROR verify.leave ..."
    /// (exit 2). An EXPIRED signer cert (dave) gives "EXPKEYSIG <fpr> <dn>"
    /// instead of GOODSIG, yet still VALIDSIG, TRUST_FULLY and exit 0! A
    /// revoked one (eve) verifies fully, since CRL checks are off here.
    pub status: Vec<String>,
    /// The human-readable log ("Good signature from ...", errors).
    pub log: String,
    /// For an opaque signature, the signed content; empty for detached.
    pub content: Vec<u8>,
}

impl GpgsmVerify {
    /// The first status line with this keyword, split on spaces (keyword first).
    pub fn status_line(&self, keyword: &str) -> Option<Vec<String>> {
        self.status
            .iter()
            .map(|l| l.split(' ').map(str::to_string).collect::<Vec<_>>())
            .find(|w| w.first().map(String::as_str) == Some(keyword))
    }

    /// A GOODSIG line was emitted (the cryptographic check passed).
    pub fn goodsig(&self) -> bool {
        self.status_line("GOODSIG").is_some()
    }

    /// The signer certificate's SHA-1 fingerprint from VALIDSIG (upper-case
    /// hex): VALIDSIG means the signature and the chain up to a trusted root
    /// checked out.
    pub fn validsig_fpr(&self) -> Option<String> {
        self.status_line("VALIDSIG").map(|w| w[1].clone())
    }

    /// TRUST_FULLY was emitted (chain to a root in trustlist.txt).
    pub fn trust_fully(&self) -> bool {
        self.status_line("TRUST_FULLY").is_some()
    }

    /// Panics unless exit 0, GOODSIG, VALIDSIG by `signer` and TRUST_FULLY.
    pub fn assert_good_from(&self, signer: &Entity) {
        let ctx = || format!("status:\n{}\nlog:\n{}", self.status.join("\n"), self.log);
        assert!(self.ok, "gpgsm --verify failed\n{}", ctx());
        assert!(self.goodsig(), "no GOODSIG\n{}", ctx());
        assert_eq!(
            self.validsig_fpr().as_deref(),
            Some(&*signer.sha1_fpr()),
            "VALIDSIG not by {}\n{}",
            signer.name,
            ctx()
        );
        assert!(self.trust_fully(), "no TRUST_FULLY\n{}", ctx());
    }
}

/// gpgsm in a private GNUPGHOME: root trusted, CRL/OCSP checks and dirmngr
/// off, all PKI certificates imported, alice's (PKCS#12) and carol's
/// secret keys available. Its gpg-agent is killed on drop.
///
/// Every call is non-interactive: `--batch --pinentry-mode loopback
/// --passphrase-fd 0` with [`P12_PASSWORD`] on stdin (alice's imported key
/// is protected with it; carol's is unprotected).
pub struct Gpgsm {
    home: PathBuf,
}

impl Gpgsm {
    /// Sets up `home_dir` (created, mode 0700; keep the path short, the
    /// agent's socket lives in it and a Unix socket path has ~107 bytes):
    /// gpgsm.conf (`disable-crl-checks`, `disable-ocsp`, `disable-dirmngr`),
    /// gpg-agent.conf (`allow-loopback-pinentry`; `s2k-count 65536`, the
    /// minimum, so protecting/unprotecting alice's key takes ms, not ~0.5-1.3 s), trustlist.txt
    /// (`<root SHA-1> S`), imports root, intermediate and every leaf
    /// certificate, alice's `p12_legacy` and carol's key. About 30 ms.
    pub fn new(home_dir: &Path, pki: &SmimePki) -> Gpgsm {
        std::fs::create_dir_all(home_dir).unwrap();
        std::fs::set_permissions(home_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let home = home_dir.canonicalize().unwrap();
        assert!(
            home.join("S.gpg-agent.extra").as_os_str().len() < 100,
            "GNUPGHOME {} is too long for the agent's socket",
            home.display()
        );
        write(&home.join("gpgsm.conf"), b"disable-crl-checks\ndisable-ocsp\ndisable-dirmngr\n");
        write(&home.join("gpg-agent.conf"), b"allow-loopback-pinentry\ns2k-count 65536\n");
        write(&home.join("trustlist.txt"), format!("{} S\n", pki.root.sha1_fpr()).as_bytes());
        let g = Gpgsm { home };
        let mut certs: Vec<&Path> = vec![&pki.root.cert_pem, &pki.intermediate.cert_pem];
        certs.extend(pki.leaves().iter().map(|e| e.cert_pem.as_path()));
        g.import_certs(&certs);
        g.import_secret(&pki.alice);
        g.import_secret(&pki.carol);
        g
    }

    /// The GNUPGHOME.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// `gpgsm --homedir H --batch --pinentry-mode loopback --passphrase-fd 0
    /// --status-fd 2 ARGS` with the password on stdin. stdout is the data;
    /// stderr mixes "[GNUPG:] " status lines and the log.
    pub fn run(&self, args: &[&OsStr]) -> CmdOut {
        let mut c = Command::new("gpgsm");
        c.arg("--homedir")
            .arg(&self.home)
            .args([
                "--batch",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase-fd",
                "0",
                "--status-fd",
                "2",
            ])
            .args(args);
        run(c, Some(format!("{P12_PASSWORD}\n").as_bytes()))
    }

    /// `gpgsm --import FILES` (certificates, PEM or DER).
    pub fn import_certs(&self, files: &[&Path]) {
        let mut args = vec![os("--import")];
        args.extend(files.iter().map(|p| p.as_os_str()));
        self.run(&args).expect_ok("gpgsm --import certificates");
    }

    /// Makes `e`'s secret key usable by gpgsm. RSA: `gpgsm --import
    /// e.p12_legacy` (loopback pinentry; the one passphrase on stdin answers
    /// both the PKCS#12 password and the new protection passphrase, so the
    /// key ends up protected with [`P12_PASSWORD`]). EC: gpgsm 2.2.40
    /// segfaults on EC PKCS#12, so the key is written as an unprotected
    /// canonical S-expression to private-keys-v1.d/<keygrip>.key, the
    /// keygrip coming from `gpgsm --with-colons --with-keygrip -k FPR`.
    pub fn import_secret(&self, e: &Entity) {
        if !e.is_ec() {
            let out = self.run(&[os("--import"), os(&e.p12_legacy)]);
            assert!(
                out.ok && out.stderr.contains("secret keys imported: 1"),
                "gpgsm --import {}: {}",
                e.p12_legacy.display(),
                out.stderr
            );
            return;
        }
        let fpr = e.sha1_fpr();
        let listing = self.run(&[os("--with-colons"), os("--with-keygrip"), os("-k"), os(&fpr)]);
        let listing = String::from_utf8_lossy(&listing.expect_ok("gpgsm -k")).into_owned();
        let grip = listing
            .lines()
            .find_map(|l| l.strip_prefix("grp:").map(|r| r.trim_matches(':').to_string()))
            .unwrap_or_else(|| panic!("no keygrip for {} in:\n{listing}", e.name));
        let ec = e.key.ec_key().unwrap();
        let group = ec.group();
        assert_eq!(group.curve_name(), Some(Nid::X9_62_PRIME256V1), "only P-256 is mapped");
        let mut ctx = BigNumContext::new().unwrap();
        let q = ec.public_key().to_bytes(group, PointConversionForm::UNCOMPRESSED, &mut ctx).unwrap();
        let d = ec.private_key().to_vec_padded(32).unwrap();
        let atom = |b: &[u8]| {
            let mut v = format!("{}:", b.len()).into_bytes();
            v.extend_from_slice(b);
            v
        };
        let mut sexp = b"(".to_vec();
        sexp.extend(atom(b"private-key"));
        sexp.extend(b"(");
        sexp.extend(atom(b"ecc"));
        for (k, v) in [(&b"curve"[..], &b"NIST P-256"[..]), (b"q", &q), (b"d", &d)] {
            sexp.extend(b"(");
            sexp.extend(atom(k));
            sexp.extend(atom(v));
            sexp.extend(b")");
        }
        sexp.extend(b"))");
        let dir = self.home.join("private-keys-v1.d");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let path = dir.join(format!("{grip}.key"));
        write(&path, &sexp);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// `gpgsm --verify SIG [CONTENT]` for a DER (or gpgsm-PEM) signature;
    /// opaque signatures also get `-o -` so the content comes back. Not
    /// for MIME messages: see [`Gpgsm::verify_smime`].
    pub fn verify(&self, msg: &Path, detached_content: Option<&Path>) -> GpgsmVerify {
        let mut args: Vec<&OsStr> = Vec::new();
        if detached_content.is_none() {
            args.extend([os("-o"), os("-")]);
        }
        args.extend([os("--verify"), os(msg)]);
        if let Some(c) = detached_content {
            args.push(c.as_os_str());
        }
        let out = self.run(&args);
        let mut status = Vec::new();
        let mut log = String::new();
        for line in out.stderr.lines() {
            match line.strip_prefix("[GNUPG:] ") {
                Some(s) => status.push(s.to_string()),
                None => {
                    log.push_str(line);
                    log.push('\n');
                }
            }
        }
        GpgsmVerify { ok: out.ok, status, log, content: out.stdout }
    }

    /// Verifies an S/MIME message (application/pkcs7-mime or
    /// multipart/signed) by splitting it with [`smime_parts`] into files in
    /// `scratch` (a directory) and calling [`Gpgsm::verify`].
    pub fn verify_smime(&self, msg: &Path, scratch: &Path) -> GpgsmVerify {
        let parts = smime_parts(&read(msg));
        let stem = msg.file_name().unwrap().to_string_lossy();
        let der = scratch.join(format!("{stem}.gpgsm-sig.der"));
        write(&der, &parts.der);
        match parts.content {
            Some(content) => {
                let c = scratch.join(format!("{stem}.gpgsm-content"));
                write(&c, &content);
                self.verify(&der, Some(&c))
            }
            None => self.verify(&der, None),
        }
    }

    /// `gpgsm -u SIGNER (--sign | --detach-sign) CONTENT`: returns DER
    /// SignedData (BER indefinite-length encoding, SHA-256, RSA PKCS#1 v1.5 or
    /// ECDSA, signed attributes contentType, signingTime,
    /// smimeCapabilities, messageDigest; certificates: signer +
    /// intermediate, not the root, as `--include-certs -2` does). Opaque
    /// embeds the content. Without `--armor` on purpose: gpgsm's armour is
    /// "-----BEGIN SIGNED MESSAGE-----", which is neither PEM CMS nor
    /// S/MIME. Wrap with `openssl cms -cmsout -inform DER -outform SMIME`
    /// if a MIME form is needed. `signer`: email or SHA-1 fingerprint.
    pub fn sign(&self, content: &Path, signer: &str, detached: bool) -> Vec<u8> {
        let op = if detached { "--detach-sign" } else { "--sign" };
        self.run(&[os("-u"), os(signer), os(op), os(content)]).expect_ok("gpgsm sign")
    }

    /// `gpgsm -r R... --encrypt CONTENT`: DER EnvelopedData, AES-128-CBC,
    /// RSA PKCS#1 v1.5 KeyTransRecipientInfo (issuerAndSerialNumber).
    /// Recipients: email or fingerprint; they must chain to the root.
    pub fn encrypt(&self, content: &Path, recipients: &[&str]) -> Vec<u8> {
        let mut args: Vec<&OsStr> = Vec::new();
        for r in recipients {
            args.extend([os("-r"), os(*r)]);
        }
        args.extend([os("--encrypt"), os(content)]);
        self.run(&args).expect_ok("gpgsm --encrypt")
    }

    /// `gpgsm --decrypt MSG` (DER): stdout = plaintext, stderr = status
    /// lines and log. `ok` here means a "[GNUPG:] DECRYPTION_OKAY" status
    /// line, NOT the exit code: gpgsm 2.2.40 tries the RecipientInfos in
    /// order and exits 2 after a NO_SECKEY for someone else's RecipientInfo
    /// even when it then decrypts with its own key (and DER sorts the SET
    /// OF RecipientInfos, so the order is random across PKIs).
    /// Works for RSA PKCS#1 v1.5 to alice with AES-CBC/3DES; fails
    /// (DECRYPTION_FAILED) on AuthEnvelopedData, RSA-OAEP and (2.2.40 has
    /// no ECDH) anything to carol only.
    pub fn decrypt(&self, msg: &Path) -> CmdOut {
        let mut out = self.run(&[os("--decrypt"), os(msg)]);
        out.ok = out.stderr.lines().any(|l| l == "[GNUPG:] DECRYPTION_OKAY");
        out
    }
}

impl Drop for Gpgsm {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&self.home)
            .args(["--kill", "all"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // gpgconf returns before the agent is gone; it removes its socket
        // on the way out, so wait for that (no panic in drop if it hangs).
        let socket = self.home.join("S.gpg-agent");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while socket.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

// ---------------------------------------------------------------------------
// cryptography_vectors
// ---------------------------------------------------------------------------

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("target"),
    }
}

/// The `cryptography_vectors` package directory (it holds `pkcs7/` and
/// `x509/custom/ca/`), from a venv at `<target>/py-vectors` with
/// `cryptography-vectors==50.0.2`, installed there on first use (`python3
/// -m venv`, then pip; a ~56 MB wheel). A file lock keeps concurrent test
/// processes from installing twice. Panics if it cannot be installed.
pub fn cryptography_vectors() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let venv = target_dir().join("py-vectors");
        std::fs::create_dir_all(venv.parent().unwrap()).unwrap();
        let lock = std::fs::File::create(venv.with_extension("lock")).unwrap();
        lock.lock().unwrap();
        let python = venv.join("bin").join("python");
        let locate = || -> Option<PathBuf> {
            let mut c = Command::new(&python);
            c.args([
                "-c",
                "import importlib.metadata as m, os, cryptography_vectors as v; \
                 print(m.version('cryptography-vectors')); print(os.path.dirname(v.__file__))",
            ]);
            if !python.exists() {
                return None;
            }
            let out = run(c, None);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let mut lines = text.lines();
            match (out.ok, lines.next(), lines.next()) {
                (true, Some(v), Some(d)) if v == CRYPTOGRAPHY_VECTORS_VERSION => Some(PathBuf::from(d)),
                _ => None,
            }
        };
        if let Some(d) = locate() {
            return d;
        }
        if !python.exists() {
            let mut c = Command::new("python3");
            c.args(["-m", "venv"]).arg(&venv);
            let out = run(c, None);
            assert!(out.ok, "cryptography_vectors: python3 -m venv {} failed:\n{}", venv.display(), out.stderr);
        }
        let mut c = Command::new(&python);
        c.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("cryptography-vectors=={CRYPTOGRAPHY_VECTORS_VERSION}"));
        let out = run(c, None);
        assert!(
            out.ok,
            "cryptography_vectors: pip install cryptography-vectors=={CRYPTOGRAPHY_VECTORS_VERSION} into {} failed \
             (no network to PyPI?); these tests need it:\n{}",
            venv.display(),
            out.stderr
        );
        locate().unwrap_or_else(|| panic!("cryptography_vectors: installed but not importable from {}", venv.display()))
    })
    .clone()
}

/// One EnvelopedData sample from `cryptography_vectors/pkcs7/`.
#[derive(Debug, Clone)]
pub struct EnvelopedVector {
    /// Path relative to the package directory.
    pub file: &'static str,
    pub form: Form,
    /// (certificate, key) relative to the package directory that decrypts
    /// it, or None when the recipient's key is not shipped.
    pub recipient: Option<(&'static str, &'static str)>,
    /// The exact plaintext, when it can be decrypted.
    pub plaintext: Option<&'static [u8]>,
    /// Key transport, content cipher and anything odd.
    pub note: &'static str,
}

/// The EnvelopedData samples of cryptography-vectors 50.0.2 and which
/// shipped key opens them (checked with `openssl cms -decrypt -inform PEM
/// -inkey x509/custom/ca/rsa_key.pem -recip x509/custom/ca/rsa_ca.pem`).
/// `rsa_ca.pem` is "CN=cryptography CA", serial E712D3A0A56ED6C9.
pub fn enveloped_vectors() -> Vec<EnvelopedVector> {
    const CERT: &str = "x509/custom/ca/rsa_ca.pem";
    const KEY: &str = "x509/custom/ca/rsa_key.pem";
    vec![
        EnvelopedVector {
            file: "pkcs7/enveloped-rsa-oaep.pem",
            form: Form::Pem,
            recipient: Some((CERT, KEY)),
            plaintext: Some(b"Hello, world!"),
            note: "RSAES-OAEP (default SHA-1/MGF1-SHA-1 parameters, empty SEQUENCE) + AES-128-CBC",
        },
        EnvelopedVector {
            file: "pkcs7/enveloped-triple-des.pem",
            form: Form::Pem,
            recipient: Some((CERT, KEY)),
            plaintext: Some(b"Hello, World!\r\n"),
            note: "RSA PKCS#1 v1.5 + DES-EDE3-CBC",
        },
        EnvelopedVector {
            file: "pkcs7/enveloped-no-content.der",
            form: Form::Der,
            recipient: Some((CERT, KEY)),
            plaintext: None,
            note: "RSA PKCS#1 v1.5 + AES-128-CBC, encryptedContent ABSENT (detached): \
                   openssl fails with 'no content'; a decoder must report missing content",
        },
        EnvelopedVector {
            file: "pkcs7/enveloped.pem",
            form: Form::Pem,
            recipient: None,
            plaintext: None,
            note: "RSA PKCS#1 v1.5 + DES-EDE3-CBC, two recipients issued by 'Sample LAMPS \
                   Certificate Authority' (RFC 9216 sample keys, not shipped): parse-only",
        },
    ]
}
