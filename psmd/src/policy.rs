//! Centralized administration: the system policy every application obeys.
//!
//! The policy is a TOML file, `/etc/psm/policy.toml` (`$PSM_POLICY` for
//! tests), written by the administrator. psmd refuses one that others than
//! its owner could have written (its directory included), and one the user
//! owns unless the user is root: a user must not set policy for himself.
//! A policy that exists but cannot be read or parsed stops psmd from
//! starting (fail closed); on reload (SIGHUP, `psm reload`) it is logged
//! and the old policy stays.
//!
//! The user may tighten some settings in his own `config.toml` (see
//! [`user`]): the effective value of a setting is the policy's when the
//! policy locks it, else the user's when he sets it and it is at least as
//! strict as the policy's, else the policy's (or the default). A broken user
//! config never stops psmd. The policy locks settings by name:
//!
//! ```toml
//! [locked]
//! settings = ["tls.min_version", "token.idle_timeout_secs"]
//! ```
//!
//! Only settings a user may set can be locked (the others are the policy's
//! alone already). No request lets an application change a setting; what
//! an application asks for (a TLS version for one connection) is raised to
//! the effective value.
//!
//! Settings (every one enforced, each with a test in psmd/tests/policy.rs;
//! "user": the user's config may set it, only in the direction given, and
//! the policy may lock it):
//!
//! | setting | default | user | effect |
//! |---|---|---|---|
//! | `tls.min_version` = "1.2" / "1.3" | "1.2" | raise | TLS channels refuse older servers |
//! | `tls.cipher_suites` | all of rustls's | no | the suites TLS channels offer and accept (rustls names) |
//! | `tls.groups` | all of rustls's | no | the key exchange groups, in order of preference |
//! | `trust.anchors` | none | no | PEM files or directories of CA certificates always trusted (every usage) |
//! | `trust.distrusted` | none | no | certificates never trusted: SHA-256 fingerprints (hex), or `{ issuer = "C=US, CN=Evil CA", serial = "0a:1b" }` (name syntax: `pki/dn.rs`) |
//! | `overrides.allowed` | true | turn off | whether users may accept certificate errors (once or always) |
//! | `overrides.errors` | all four | fewer | which: "unknown-issuer", "expired", "not-yet-valid", "name-mismatch" |
//! | `pkcs12.export` | true | turn off | whether private keys may be exported |
//! | `token.password_required` | false | turn on | the token password cannot be removed |
//! | `token.min_password_length` | 0 | raise | shortest new token password |
//! | `token.idle_timeout_secs` | 1800 | lower | a session's login ends after this long unused |
//! | `token.app_password_prompts` | true | turn off | whether applications may answer the token-password prompt themselves |
//! | `applications.allowed` | all | no | executables (absolute paths) allowed to connect |
//! | `audit.enabled` | false | turn on | a line per private-key use and trust decision in `audit.log` |
//! | `keys.confirm_use` | none | no | certificates (SHA-256 hex) whose private key is used only after the user allowed it in psm's dialog, each time; `["all"]` for every key |
//! | `pkcs11.modules` | none | no | PKCS#11 modules psmd loads (absolute paths; the file and its directories must not be writable by others); nothing else is ever loaded |
//! | `locked.settings` | none | no | the user settings the user's config cannot change |

pub mod user;

use crate::pki::dn::IssuerSerial;
use crate::pki::verify::Status;
use psm::{Code, Error};
use sha2::Digest;
use std::path::{Path, PathBuf};

/// Where the policy lives unless `$PSM_POLICY` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/psm/policy.toml";
/// Largest policy file read.
const MAX_POLICY: u64 = 1024 * 1024;

/// The effective policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The file it came from and its SHA-256 (None: no policy file).
    pub source: Option<PathBuf>,
    pub sha256: Option<String>,
    /// `TLS_1_2` or `TLS_1_3`.
    pub min_tls: u16,
    pub overrides_allowed: bool,
    /// `Status` bits of the certificate errors users may accept.
    pub overridable: u32,
    pub pkcs12_export: bool,
    pub password_required: bool,
    pub min_password_length: usize,
    pub allowed_apps: Option<Vec<PathBuf>>,
    /// TLS cipher suites and key exchange groups allowed (rustls's names,
    /// in order of preference); None: all the provider has.
    pub cipher_suites: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    /// CA certificates (DER) from `trust.anchors`, and the paths they came from.
    pub anchors: Vec<Vec<u8>>,
    pub anchor_paths: Vec<PathBuf>,
    /// SHA-256 of certificates the policy distrusts.
    pub distrusted: Vec<[u8; 32]>,
    /// Certificates the policy distrusts by issuer and serial number.
    pub distrusted_issuer_serial: Vec<IssuerSerial>,
    /// Certificates (SHA-256) whose private key is used only after the user
    /// confirmed it in psm's dialog, each time (`keys.confirm_use`); `all`
    /// for every key.
    pub confirm_keys: Vec<[u8; 32]>,
    pub confirm_all_keys: bool,
    /// PKCS#11 modules psmd loads (absolute paths); nothing else is ever
    /// loaded, and no application can ask for another.
    pub pkcs11_modules: Vec<PathBuf>,
    pub idle_timeout_secs: u64,
    pub app_password_prompts: bool,
    pub audit: bool,
    /// Settings the policy locks (`locked.settings`): users cannot change them.
    pub locked: Vec<String>,
    /// What became of the user's config (only in the effective policy).
    pub user: user::Report,
}

pub const fn status_bit(s: Status) -> u32 {
    1 << (s as u32)
}

const ERROR_NAMES: [(&str, Status); 4] = [
    ("unknown-issuer", Status::UnknownIssuer),
    ("expired", Status::Expired),
    ("not-yet-valid", Status::NotYetValid),
    ("name-mismatch", Status::NameMismatch),
];

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            source: None,
            sha256: None,
            min_tls: psm::proto::TLS_1_2,
            overrides_allowed: true,
            overridable: ERROR_NAMES.iter().fold(0, |a, (_, s)| a | status_bit(*s)),
            pkcs12_export: true,
            password_required: false,
            min_password_length: 0,
            allowed_apps: None,
            cipher_suites: None,
            groups: None,
            anchors: Vec::new(),
            anchor_paths: Vec::new(),
            distrusted: Vec::new(),
            distrusted_issuer_serial: Vec::new(),
            confirm_keys: Vec::new(),
            confirm_all_keys: false,
            pkcs11_modules: Vec::new(),
            idle_timeout_secs: 30 * 60,
            app_password_prompts: true,
            audit: false,
            locked: Vec::new(),
            user: user::Report::default(),
        }
    }
}

impl Policy {
    /// The effective settings, for Status and `psm policy show`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "source": self.source.as_ref().map(|p| p.display().to_string()),
            "sha256": self.sha256,
            "tls": {
                "min_version": if self.min_tls == psm::proto::TLS_1_3 { "1.3" } else { "1.2" },
                "cipher_suites": self.cipher_suites,
                "groups": self.groups,
            },
            "overrides": {
                "allowed": self.overrides_allowed,
                "errors": ERROR_NAMES.iter().filter(|(_, s)| self.overridable & status_bit(*s) != 0).map(|(n, _)| *n).collect::<Vec<_>>(),
            },
            "pkcs12": { "export": self.pkcs12_export },
            "token": {
                "password_required": self.password_required,
                "min_password_length": self.min_password_length,
                "idle_timeout_secs": self.idle_timeout_secs,
                "app_password_prompts": self.app_password_prompts,
            },
            "trust": {
                "anchors": self.anchor_paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                "anchor_certificates": self.anchors.len(),
                "distrusted": self
                    .distrusted
                    .iter()
                    .map(|fp| serde_json::json!(hex::encode(fp)))
                    .chain(self.distrusted_issuer_serial.iter().map(|e| {
                        serde_json::json!({ "issuer": e.issuer_text, "serial": e.serial_hex() })
                    }))
                    .collect::<Vec<_>>(),
            },
            "audit": { "enabled": self.audit },
            "pkcs11": { "modules": self.pkcs11_modules.iter().map(|p| p.display().to_string()).collect::<Vec<_>>() },
            "keys": {
                "confirm_use": if self.confirm_all_keys {
                    vec![serde_json::json!("all")]
                } else {
                    self.confirm_keys.iter().map(|f| serde_json::json!(hex::encode(f))).collect()
                },
            },
            "applications": { "allowed": self.allowed_apps.as_ref().map(|v| v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>()) },
            "locked": { "settings": self.locked },
            "user_config": self.user.to_json(),
        })
    }

    /// Whether the private key of certificate `sha256` may be used only
    /// after the user confirmed it.
    pub fn must_confirm(&self, sha256: &[u8; 32]) -> bool {
        self.confirm_all_keys || self.confirm_keys.contains(sha256)
    }

    /// Whether a user may accept a certificate whose errors are `bits`.
    pub fn may_override(&self, bits: u32) -> bool {
        self.overrides_allowed && bits & !self.overridable == 0
    }

    /// Refuses a new token password the policy does not allow.
    pub fn check_password(&self, new: &str) -> Result<(), Error> {
        if new.is_empty() && self.password_required {
            return Err(Error::new(Code::PSM_ERR_POLICY, "the security policy requires a token password"));
        }
        if !new.is_empty() && new.chars().count() < self.min_password_length {
            return Err(Error::new(
                Code::PSM_ERR_POLICY,
                format!(
                    "the security policy requires token passwords of at least {} characters",
                    self.min_password_length
                ),
            ));
        }
        Ok(())
    }

    /// Whether an application with this executable may connect.
    pub fn allows_app(&self, exe: Option<&str>) -> bool {
        match &self.allowed_apps {
            None => true,
            Some(list) => exe.is_some_and(|e| list.iter().any(|p| p.as_os_str() == e)),
        }
    }
}

/// One problem in a policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

/// Edit distance, for "did you mean".
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn unknown(what: &str, name: &str, known: &[&str]) -> String {
    let best = known.iter().min_by_key(|k| distance(name, k)).filter(|k| distance(name, k) <= 3);
    match best {
        Some(k) => format!("unknown {what} \"{name}\" (did you mean \"{k}\"?)"),
        None => format!("unknown {what} \"{name}\" (known: {})", known.join(", ")),
    }
}

/// Every setting, and whether a user's config.toml may set it (within the
/// policy's bounds, unless the policy locks it: see [`user`]).
const SETTINGS: [(&str, bool); 17] = [
    ("tls.min_version", true),
    ("tls.cipher_suites", false),
    ("tls.groups", false),
    ("trust.anchors", false),
    ("trust.distrusted", false),
    ("overrides.allowed", true),
    ("overrides.errors", true),
    ("pkcs12.export", true),
    ("token.password_required", true),
    ("token.min_password_length", true),
    ("token.idle_timeout_secs", true),
    ("token.app_password_prompts", true),
    ("applications.allowed", false),
    ("audit.enabled", true),
    ("keys.confirm_use", false),
    ("pkcs11.modules", false),
    ("locked.settings", false),
];

const SECTIONS: [&str; 10] =
    ["tls", "trust", "overrides", "pkcs12", "pkcs11", "token", "applications", "audit", "keys", "locked"];

/// The settings a user may set (and the policy may lock).
fn user_settings() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().filter(|(_, user)| *user).map(|(name, _)| *name)
}

/// Which file is being read: the administrator's policy, or a user's
/// config, which may only hold the settings users may set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Policy,
    User,
}

/// Parses a policy, reporting every problem with its line.
pub fn parse(text: &str) -> Result<Policy, Vec<Problem>> {
    parse_as(text, Kind::Policy).map(|(p, _)| p)
}

/// Parses a user's config: the settings it holds (over the defaults) and
/// their names, or every problem with its line.
pub fn parse_user(text: &str) -> Result<(Policy, Vec<&'static str>), Vec<Problem>> {
    parse_as(text, Kind::User)
}

fn parse_as(text: &str, kind: Kind) -> Result<(Policy, Vec<&'static str>), Vec<Problem>> {
    use toml::de::{DeTable, DeValue};
    let (root, errors) = DeTable::parse_recoverable(text);
    let mut problems: Vec<Problem> = errors
        .iter()
        .map(|e| Problem {
            line: e.span().map_or(1, |s| line_of(text, s.start)),
            message: e.message().trim().to_string(),
        })
        .collect();
    let mut p = Policy::default();
    let mut set: Vec<&'static str> = Vec::new();
    for (section, value) in root.get_ref() {
        let line = line_of(text, section.span().start);
        let name = section.get_ref().as_ref();
        let Some(table) = value.get_ref().as_table() else {
            if SECTIONS.contains(&name) {
                problems.push(Problem { line, message: format!("\"{name}\" must be a section ([{name}])") });
            } else {
                problems.push(Problem { line, message: unknown("section", name, &SECTIONS) });
            }
            continue;
        };
        if !SECTIONS.contains(&name) {
            problems.push(Problem { line, message: unknown("section", name, &SECTIONS) });
            continue;
        }
        let keys: Vec<&str> = SETTINGS
            .iter()
            .filter_map(|(n, _)| n.strip_prefix(name).and_then(|k| k.strip_prefix('.')))
            .collect();
        for (key, v) in table {
            let k = key.get_ref().as_ref();
            let line = line_of(text, key.span().start);
            let mut bad = |m: String| problems.push(Problem { line, message: m });
            let full = format!("{name}.{k}");
            let Some(&(setting, user_may)) = SETTINGS.iter().find(|(n, _)| *n == full) else {
                bad(unknown(&format!("setting in [{name}]"), k, &keys));
                continue;
            };
            if kind == Kind::User && !user_may {
                bad(format!(
                    "{full} is the administrator's alone (in the system policy, {DEFAULT_PATH}); \
                     a user's config cannot set it"
                ));
                continue;
            }
            set.push(setting);
            let v: &DeValue = v.get_ref();
            let want_bool = |bad: &mut dyn FnMut(String)| {
                v.as_bool().or_else(|| {
                    bad(format!("{full} must be true or false, not {}", v.type_str()));
                    None
                })
            };
            match full.as_str() {
                "tls.min_version" => match v.as_str() {
                    Some("1.2") => p.min_tls = psm::proto::TLS_1_2,
                    Some("1.3") => p.min_tls = psm::proto::TLS_1_3,
                    _ => bad(format!("{full} must be \"1.2\" or \"1.3\" (psm speaks no older TLS)")),
                },
                "tls.cipher_suites" | "tls.groups" => {
                    let suites = full == "tls.cipher_suites";
                    let known = if suites { known_suites() } else { known_groups() };
                    let known: Vec<&str> = known.iter().map(String::as_str).collect();
                    let Some(arr) = v.as_array() else {
                        bad(format!(
                            "{full} must be a list of names, e.g. [\"{}\"]",
                            known.first().unwrap_or(&"?")
                        ));
                        continue;
                    };
                    let mut list = Vec::new();
                    for item in arr.iter() {
                        match item.get_ref().as_str() {
                            Some(s) if known.contains(&s) => list.push(s.to_string()),
                            Some(s) => bad(unknown(
                                if suites { "cipher suite" } else { "key exchange group" },
                                s,
                                &known,
                            )),
                            None => bad(format!("{full} lists names")),
                        }
                    }
                    if list.is_empty() && arr.iter().next().is_none() {
                        bad(format!(
                            "{full} is empty: no TLS connection could be made (omit it to allow all)"
                        ));
                    }
                    if suites {
                        p.cipher_suites = Some(list);
                    } else {
                        p.groups = Some(list);
                    }
                }
                "overrides.allowed" => {
                    if let Some(b) = want_bool(&mut bad) {
                        p.overrides_allowed = b;
                    }
                }
                "locked.settings" => {
                    let Some(arr) = v.as_array() else {
                        bad(format!("{full} must be a list of settings, e.g. [\"tls.min_version\"]"));
                        continue;
                    };
                    let names: Vec<&str> = user_settings().collect();
                    for item in arr.iter() {
                        let line = line_of(text, item.span().start);
                        let message = match item.get_ref().as_str() {
                            Some(s) if names.contains(&s) => {
                                if !p.locked.iter().any(|l| l == s) {
                                    p.locked.push(s.to_string());
                                }
                                continue;
                            }
                            Some(s) if SETTINGS.iter().any(|(n, _)| *n == s) => format!(
                                "{full}: {s} is the policy's alone (users cannot set it), so it needs no lock"
                            ),
                            Some(s) => format!("{full}: {}", unknown("setting users may set", s, &names)),
                            None => format!("{full} lists setting names, like \"tls.min_version\""),
                        };
                        problems.push(Problem { line, message });
                    }
                }
                "overrides.errors" => {
                    let Some(arr) = v.as_array() else {
                        bad(format!("{full} must be a list, e.g. [\"expired\"]"));
                        continue;
                    };
                    let mut bits = 0;
                    for item in arr.iter() {
                        let names: Vec<&str> = ERROR_NAMES.iter().map(|(n, _)| *n).collect();
                        match item.get_ref().as_str() {
                            Some(s) => match ERROR_NAMES.iter().find(|(n, _)| *n == s) {
                                Some((_, st)) => bits |= status_bit(*st),
                                None => bad(unknown("certificate error", s, &names)),
                            },
                            None => bad(format!("{full} lists names, like \"expired\"")),
                        }
                    }
                    p.overridable = bits;
                }
                "audit.enabled" => {
                    if let Some(b) = want_bool(&mut bad) {
                        p.audit = b;
                    }
                }
                "pkcs12.export" => {
                    if let Some(b) = want_bool(&mut bad) {
                        p.pkcs12_export = b;
                    }
                }
                "token.app_password_prompts" => {
                    if let Some(b) = want_bool(&mut bad) {
                        p.app_password_prompts = b;
                    }
                }
                "token.password_required" => {
                    if let Some(b) = want_bool(&mut bad) {
                        p.password_required = b;
                    }
                }
                "token.min_password_length" => {
                    match v.as_integer().and_then(|i| i.as_str().parse::<u64>().ok()) {
                        Some(n) if n <= 1024 => p.min_password_length = n as usize,
                        _ => bad(format!("{full} must be a whole number from 0 to 1024")),
                    }
                }
                "token.idle_timeout_secs" => {
                    match v.as_integer().and_then(|i| i.as_str().parse::<u64>().ok()) {
                        Some(n) if (1..=7 * 86_400).contains(&n) => p.idle_timeout_secs = n,
                        _ => {
                            bad(format!("{full} must be a whole number of seconds from 1 to 604800 (a week)"))
                        }
                    }
                }
                "trust.anchors" => {
                    let Some(arr) = v.as_array() else {
                        bad(format!("{full} must be a list of PEM files or directories"));
                        continue;
                    };
                    for item in arr.iter() {
                        match item.get_ref().as_str() {
                            Some(s) if s.starts_with('/') => p.anchor_paths.push(PathBuf::from(s)),
                            _ => bad(format!("{full}: every entry must be an absolute path")),
                        }
                    }
                }
                "trust.distrusted" => {
                    let Some(arr) = v.as_array() else {
                        bad(format!(
                            "{full} must be a list of SHA-256 fingerprints (64 hex digits) \
                             or {{ issuer = \"...\", serial = \"...\" }} tables"
                        ));
                        continue;
                    };
                    for item in arr.iter() {
                        let line = line_of(text, item.span().start);
                        match distrusted_entry(item.get_ref()) {
                            Ok(Distrusted::Sha256(f)) => p.distrusted.push(f),
                            Ok(Distrusted::IssuerSerial(e)) => p.distrusted_issuer_serial.push(e),
                            Err(m) => problems.push(Problem { line, message: format!("{full}: {m}") }),
                        }
                    }
                }
                "keys.confirm_use" => {
                    let Some(arr) = v.as_array() else {
                        bad(format!(
                            "{full} must be a list of certificates' SHA-256 fingerprints (64 hex digits), or [\"all\"]"
                        ));
                        continue;
                    };
                    for item in arr.iter() {
                        let line = line_of(text, item.span().start);
                        match item.get_ref().as_str() {
                            Some("all") => p.confirm_all_keys = true,
                            Some(s) => match crate::store::parse_fingerprint(s) {
                                Ok(f) => p.confirm_keys.push(f),
                                Err(_) => problems.push(Problem {
                                    line,
                                    message: format!(
                                        "{full}: \"{s}\" is not a SHA-256 fingerprint (64 hex digits) or \"all\""
                                    ),
                                }),
                            },
                            None => problems.push(Problem {
                                line,
                                message: format!("{full} lists fingerprints as strings"),
                            }),
                        }
                    }
                }
                "pkcs11.modules" => {
                    let Some(arr) = v.as_array() else {
                        bad(format!(
                            "{full} must be a list of module paths, e.g. [\"/usr/lib/softhsm/libsofthsm2.so\"]"
                        ));
                        continue;
                    };
                    for item in arr.iter() {
                        match item.get_ref().as_str() {
                            Some(s) if s.starts_with('/') => p.pkcs11_modules.push(PathBuf::from(s)),
                            _ => problems.push(Problem {
                                line: line_of(text, item.span().start),
                                message: format!("{full}: every entry must be an absolute path to a module"),
                            }),
                        }
                    }
                }
                "applications.allowed" => {
                    let Some(arr) = v.as_array() else {
                        bad(format!("{full} must be a list of executable paths"));
                        continue;
                    };
                    let mut list = Vec::new();
                    for item in arr.iter() {
                        match item.get_ref().as_str() {
                            Some(s) if s.starts_with('/') => list.push(PathBuf::from(s)),
                            _ => bad(format!("{full}: every entry must be an absolute path")),
                        }
                    }
                    p.allowed_apps = Some(list);
                }
                _ => unreachable!("every key listed above is handled"),
            }
        }
    }
    if !p.overrides_allowed && set.contains(&"overrides.errors") && p.overridable != 0 {
        let line = text.lines().position(|l| l.trim_start().starts_with("errors")).map_or(1, |i| i + 1);
        problems.push(Problem {
            line,
            message: "overrides.errors lists errors users may accept, but overrides.allowed = false: \
                      remove one of them"
                .into(),
        });
    }
    if p.min_tls == psm::proto::TLS_1_3
        && let Some(suites) = &p.cipher_suites
        && !suites.is_empty()
        && suites.iter().all(|s| !s.starts_with("TLS13_"))
    {
        let line =
            text.lines().position(|l| l.trim_start().starts_with("cipher_suites")).map_or(1, |i| i + 1);
        problems.push(Problem {
            line,
            message: "tls.cipher_suites lists only TLS 1.2 suites, but tls.min_version is \"1.3\": no connection could be made"
                .into(),
        });
    }
    if p.allowed_apps.as_ref().is_some_and(|a| a.is_empty()) {
        let line = text.lines().position(|l| l.trim_start().starts_with("allowed")).map_or(1, |i| i + 1);
        problems.push(Problem {
            line,
            message: "applications.allowed is empty: no application could use psm (omit it to allow all)"
                .into(),
        });
    }
    if problems.is_empty() {
        p.sha256 = Some(hex::encode(sha2::Sha256::digest(text.as_bytes())));
        Ok((p, set))
    } else {
        problems.sort_by_key(|p| p.line);
        Err(problems)
    }
}

enum Distrusted {
    Sha256([u8; 32]),
    IssuerSerial(IssuerSerial),
}

/// One `trust.distrusted` entry: a SHA-256 fingerprint as a string, or a
/// table naming the issuer and the serial number.
fn distrusted_entry(item: &toml::de::DeValue<'_>) -> Result<Distrusted, String> {
    if let Some(s) = item.as_str() {
        let h = s.replace(':', "").to_ascii_lowercase();
        return hex::decode(&h)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(Distrusted::Sha256)
            .ok_or_else(|| format!("{s:?} is not a SHA-256 fingerprint (64 hex digits)"));
    }
    let Some(table) = item.as_table() else {
        return Err(format!(
            "an entry is a SHA-256 fingerprint (a string) or {{ issuer = \"...\", serial = \"...\" }}, not {}",
            item.type_str()
        ));
    };
    let (mut issuer, mut serial) = (None, None);
    for (key, value) in table {
        let k = key.get_ref().as_ref();
        let slot = match k {
            "issuer" => &mut issuer,
            "serial" => &mut serial,
            _ => return Err(unknown("key in a distrusted entry", k, &["issuer", "serial"])),
        };
        *slot = Some(value.get_ref().as_str().ok_or_else(|| format!("{k} must be a string"))?);
    }
    match (issuer, serial) {
        (Some(i), Some(s)) => IssuerSerial::parse(i, s).map(Distrusted::IssuerSerial),
        _ => Err("an entry by issuer needs both issuer = \"...\" and serial = \"...\"".into()),
    }
}

/// The cipher suites psm's TLS provider has, by rustls name.
pub fn known_suites() -> Vec<String> {
    rustls::crypto::aws_lc_rs::default_provider()
        .cipher_suites
        .iter()
        .map(|s| format!("{:?}", s.suite()))
        .collect()
}

/// The key exchange groups psm's TLS provider has, by rustls name.
pub fn known_groups() -> Vec<String> {
    rustls::crypto::aws_lc_rs::default_provider()
        .kx_groups
        .iter()
        .map(|g| format!("{:?}", g.name()))
        .collect()
}

/// The policy file's path: `$PSM_POLICY`, else [`DEFAULT_PATH`].
pub fn path() -> PathBuf {
    std::env::var_os("PSM_POLICY").map_or_else(|| PathBuf::from(DEFAULT_PATH), PathBuf::from)
}

/// Loads the policy at `path`: the defaults when there is no file; an
/// error (which must stop psmd, or keep the old policy on reload) when it
/// exists but is unsafe, unreadable or wrong.
pub fn load(path: &Path) -> Result<Policy, Error> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Policy::default()),
        Err(e) => return Err(policy_error(path, format!("cannot be read: {e}"))),
    };
    if !meta.is_file() {
        return Err(policy_error(path, "is not a regular file".into()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(policy_error(
            path,
            format!("is writable by others than its owner (mode {:o}): chmod go-w it", meta.mode() & 0o777),
        ));
    }
    if owned_by_constrained_user(&meta) {
        return Err(policy_error(path, "belongs to the user it would constrain: it must be root's".into()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::metadata(dir)
        && (d.mode() & 0o022 != 0 && d.mode() & 0o1000 == 0 || owned_by_constrained_user(&d))
    {
        return Err(policy_error(path, format!("is in {}, which others than root can write", dir.display())));
    }
    if meta.len() > MAX_POLICY {
        return Err(policy_error(path, format!("is {} bytes; a policy is at most 1 MiB", meta.len())));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| policy_error(path, format!("cannot be read: {e}")))?;
    let mut p = parse(&text).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        policy_error(path, format!("has errors:\n{}", list.join("\n")))
    })?;
    p.source = Some(path.to_path_buf());
    p.anchors = load_anchors(path, &p.anchor_paths)?;
    if p.anchors.iter().any(|a| {
        p.distrusted.contains(&crate::pki::verify::fingerprint(a))
            || p.distrusted_issuer_serial.iter().any(|e| e.matches_der(a))
    }) {
        return Err(policy_error(
            path,
            "both trusts and distrusts the same certificate (trust.anchors, trust.distrusted)".into(),
        ));
    }
    Ok(p)
}

/// The two files the policy in force is made of, as last read well, and
/// what is wrong with the user's config since.
pub struct Sources {
    policy_path: PathBuf,
    config_path: Option<PathBuf>,
    system: Policy,
    user: user::UserConfig,
    user_problems: Vec<String>,
}

impl Sources {
    /// Reads both at start. Only the system policy can fail (psmd must not
    /// start); a broken user config is reported and the defaults used.
    pub fn load(policy_path: PathBuf, config_path: Option<PathBuf>) -> Result<Sources, Error> {
        let system = load(&policy_path)?;
        let mut s =
            Sources { policy_path, config_path, system, user: Default::default(), user_problems: Vec::new() };
        s.read_user();
        Ok(s)
    }

    /// Reads both again; a file that cannot be used leaves what was read
    /// before in force. The error is the system policy's (the user
    /// config's problems are in [`Self::effective`]'s report).
    pub fn reload(&mut self) -> Result<(), Error> {
        self.read_user();
        let p = load(&self.policy_path)?;
        if p.source.is_none() && self.system.source.is_some() {
            // Removing a policy is not something a reload should do
            // quietly: it could as well be a file system gone wrong.
            return Err(Error::new(
                Code::PSM_ERR_POLICY,
                format!(
                    "the policy file {} has disappeared; the policy read before stays in force until psmd restarts",
                    self.policy_path.display()
                ),
            ));
        }
        self.system = p;
        Ok(())
    }

    fn read_user(&mut self) {
        let Some(path) = &self.config_path else { return };
        match user::load(path) {
            Ok(config) => {
                self.user = config;
                self.user_problems.clear();
            }
            Err(problems) => self.user_problems = problems,
        }
    }

    /// The policy in force: the system's, tightened by the user's config.
    pub fn effective(&self) -> Policy {
        user::merge(&self.system, &self.user, self.config_path.as_deref(), &self.user_problems)
    }
}

/// The CA certificates of `trust.anchors`: PEM files, or directories of
/// them. Each file must be as safe as the policy itself.
fn load_anchors(policy: &Path, paths: &[PathBuf]) -> Result<Vec<Vec<u8>>, Error> {
    use std::os::unix::fs::MetadataExt;
    let mut files = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p)
            .map_err(|e| policy_error(policy, format!("names trust anchors {}: {e}", p.display())))?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| policy_error(policy, format!("names trust anchors {}: {e}", p.display())))?
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.is_file())
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(p.clone());
        }
    }
    let mut anchors = Vec::new();
    for f in files {
        let meta = std::fs::metadata(&f)
            .map_err(|e| policy_error(policy, format!("trust anchor {}: {e}", f.display())))?;
        if meta.mode() & 0o022 != 0 || owned_by_constrained_user(&meta) {
            return Err(policy_error(
                policy,
                format!("trusts {}, which others than root can write", f.display()),
            ));
        }
        let data = std::fs::read(&f)
            .map_err(|e| policy_error(policy, format!("trust anchor {}: {e}", f.display())))?;
        let ders = crate::pki::cert::decode_certificates(&data)
            .map_err(|e| policy_error(policy, format!("trust anchor {}: {}", f.display(), e.message)))?;
        for der in ders {
            let parsed = crate::pki::cert::parse(&der)
                .map_err(|e| policy_error(policy, format!("trust anchor {}: {}", f.display(), e.message)))?;
            if !parsed.is_ca {
                return Err(policy_error(
                    policy,
                    format!("trusts {}, which is not a CA certificate", f.display()),
                ));
            }
            anchors.push(der);
        }
    }
    Ok(anchors)
}

/// Whether a file belongs to the user psmd runs for (who must not set
/// policy for himself) rather than to root.
fn owned_by_constrained_user(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    uid != 0 && m.uid() == uid
}

fn policy_error(path: &Path, why: String) -> Error {
    Error::new(Code::PSM_ERR_POLICY, format!("the policy file {} {why}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_with_its_line_and_a_suggestion() {
        let text = "[tls]\nmin_versoin = \"1.3\"\n\n[overides]\nallowed = false\n[pkcs12]\nexport = \"no\"\n";
        let problems = parse(text).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(problems[0].line, 2);
        assert!(problems[0].message.contains("did you mean \"min_version\""), "{}", problems[0]);
        assert_eq!(problems[1].line, 4);
        assert!(problems[1].message.contains("did you mean \"overrides\""), "{}", problems[1]);
        assert_eq!(problems[2].line, 7);
        assert!(problems[2].message.contains("true or false"), "{}", problems[2]);
    }

    #[test]
    fn malformed_toml_and_contradictions_are_errors() {
        let p = parse("[tls\nmin_version = 1.3\n").unwrap_err();
        assert!(!p.is_empty());
        let p = parse("[overrides]\nallowed = false\nerrors = [\"expired\"]\n").unwrap_err();
        assert!(p[0].message.contains("remove one"), "{p:?}");
        let p = parse("[applications]\nallowed = []\n").unwrap_err();
        assert!(p[0].message.contains("empty"), "{p:?}");
        let p = parse("[tls]\nmin_version = \"1.0\"\n").unwrap_err();
        assert!(p[0].message.contains("\"1.2\" or \"1.3\""), "{p:?}");
    }

    #[test]
    fn a_good_policy_is_read_and_hashed() {
        let p = parse(
            "[tls]\nmin_version = \"1.3\"\n[overrides]\nerrors = [\"expired\"]\n[pkcs12]\nexport = false\n\
             [token]\npassword_required = true\nmin_password_length = 8\n[applications]\nallowed = [\"/usr/bin/mail\"]\n",
        )
        .unwrap();
        assert_eq!(p.min_tls, psm::proto::TLS_1_3);
        assert!(p.may_override(status_bit(Status::Expired)));
        assert!(!p.may_override(status_bit(Status::UnknownIssuer)));
        assert!(!p.pkcs12_export);
        assert!(p.check_password("").is_err() && p.check_password("short").is_err());
        assert!(p.check_password("long enough").is_ok());
        assert!(
            p.allows_app(Some("/usr/bin/mail"))
                && !p.allows_app(Some("/usr/bin/other"))
                && !p.allows_app(None)
        );
        assert_eq!(p.sha256.as_ref().map(String::len), Some(64));
        assert_eq!(parse("").unwrap().min_tls, psm::proto::TLS_1_2);
    }
}
