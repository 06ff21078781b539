//! The user's own preferences, `config.toml`, merged into the system
//! policy: only ever stricter than the policy, never for a setting the
//! policy locks.
//!
//! The file is `$PSM_CONFIG`, else `$XDG_CONFIG_HOME/psm/config.toml`, else
//! `~/.config/psm/config.toml`, and is written like the policy (same
//! sections and names) with only the settings marked "user" in the table
//! of [`super`]. It is the user's own file: psmd reads it whoever owns it,
//! and a broken one never stops psmd. Its problems are logged and shown in
//! Status (`policy.user_config.problems`), and the settings read before
//! (at start: none) stay.
//!
//! A value a user may set only tightens: a later minimum TLS version, no
//! overrides or fewer kinds of them, no export, a required or longer
//! password, a shorter idle timeout, no application password prompts, the
//! audit log on. A looser value than the policy's is ignored, as is any
//! value of a setting the policy locks (`[locked] settings = [...]`); each
//! is logged and listed in `policy.user_config.ignored`. No request lets an
//! application change a setting: what an application asks for (the TLS
//! version of one connection) is raised to the effective setting.

use super::{Policy, status_bit};
use std::path::{Path, PathBuf};

/// Largest config file read.
const MAX_CONFIG: u64 = 1024 * 1024;

/// A user's config as read: the values it sets over the defaults, and
/// which settings it sets.
#[derive(Clone, Debug, Default)]
pub struct UserConfig {
    pub source: Option<PathBuf>,
    pub sha256: Option<String>,
    values: Policy,
    set: Vec<&'static str>,
}

/// What became of the user's config, for Status and the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Where psmd looks for it (None: no home directory to look in).
    pub path: Option<PathBuf>,
    /// The file whose settings are in force, and its SHA-256 (None: no
    /// file, or none read well yet).
    pub source: Option<PathBuf>,
    pub sha256: Option<String>,
    /// Settings whose value is the user's.
    pub applied: Vec<String>,
    /// Why each other setting of the file is not used.
    pub ignored: Vec<String>,
    /// Why the file as it is now could not be used at all.
    pub problems: Vec<String>,
}

impl Report {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path.as_ref().map(|p| p.display().to_string()),
            "source": self.source.as_ref().map(|p| p.display().to_string()),
            "sha256": self.sha256,
            "applied": self.applied,
            "ignored": self.ignored,
            "problems": self.problems,
        })
    }

    /// Logs what is wrong or left out, so that the user finds it in the
    /// journal as well as in `psm policy show`.
    pub fn log(&self) {
        let path = self.path.as_ref().map_or(String::new(), |p| p.display().to_string());
        if !self.problems.is_empty() {
            tracing::warn!(
                "your config {path} is not used ({}): {}",
                if self.source.is_some() { "the settings read before stay" } else { "the defaults apply" },
                self.problems.join("; ")
            );
        }
        for note in &self.ignored {
            tracing::warn!("your config {path}: {note}");
        }
        if !self.applied.is_empty() {
            tracing::info!(config = %path, settings = ?self.applied, "user settings in force");
        }
    }
}

/// `$PSM_CONFIG`, else `$XDG_CONFIG_HOME/psm/config.toml`, else
/// `~/.config/psm/config.toml`; None without a home directory.
pub fn path() -> Option<PathBuf> {
    let var = |n: &str| std::env::var_os(n).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = var("PSM_CONFIG") {
        return Some(p);
    }
    if let Some(d) = var("XDG_CONFIG_HOME").filter(|d| d.is_absolute()) {
        return Some(d.join("psm/config.toml"));
    }
    var("HOME").map(|h| h.join(".config/psm/config.toml"))
}

/// Reads the config at `path`: empty when there is none; every problem
/// (with its line) when it cannot be used.
pub fn load(path: &Path) -> Result<UserConfig, Vec<String>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(UserConfig::default()),
        Err(e) => return Err(vec![format!("cannot be read: {e}")]),
    };
    if !meta.is_file() {
        return Err(vec!["is not a regular file".into()]);
    }
    if meta.len() > MAX_CONFIG {
        return Err(vec![format!("is {} bytes; a config is at most 1 MiB", meta.len())]);
    }
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("cannot be read: {e}")])?;
    let (values, set) = super::parse_user(&text)
        .map_err(|problems| problems.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    Ok(UserConfig { source: Some(path.to_path_buf()), sha256: values.sha256.clone(), values, set })
}

/// The effective policy: the system's, with each setting the user's config
/// sets taken from it when the policy neither locks it nor is stricter.
pub fn merge(system: &Policy, config: &UserConfig, path: Option<&Path>, problems: &[String]) -> Policy {
    let mut eff = system.clone();
    let mut report = Report {
        path: path.map(Path::to_path_buf),
        source: config.source.clone(),
        sha256: config.sha256.clone(),
        problems: problems.to_vec(),
        ..Report::default()
    };
    let (mine, policy) = (config.values.to_json(), system.to_json());
    // In the order of the settings table, whatever the file's order.
    for (setting, _) in super::SETTINGS.iter().filter(|(s, _)| config.set.contains(s)) {
        let (section, key) = setting.split_once('.').unwrap_or((setting, ""));
        let value = &mine[section][key];
        let why = if system.locked.iter().any(|l| l == setting) {
            Err(format!("the policy locks it at {}", policy[section][key]))
        } else {
            tighten(setting, &mut eff, &config.values)
        };
        match why {
            Ok(()) => report.applied.push(setting.to_string()),
            Err(why) => report.ignored.push(format!("{setting} = {value} is ignored: {why}")),
        }
    }
    eff.user = report;
    eff
}

/// Takes the user's value of `setting` into `eff` if it is at least as
/// strict as the policy's; else says why not.
fn tighten(setting: &str, eff: &mut Policy, mine: &Policy) -> Result<(), String> {
    // A switch the user may turn only to `strict`.
    fn only(to: &mut bool, mine: bool, strict: bool, why: &str) -> Result<(), String> {
        if mine == strict || *to != strict {
            *to = mine;
            Ok(())
        } else {
            Err(why.to_string())
        }
    }
    match setting {
        "tls.min_version"
            if mine.min_tls == psm::proto::TLS_1_3
                && eff.cipher_suites.as_ref().is_some_and(|s| s.iter().all(|s| !s.starts_with("TLS13_"))) =>
        {
            Err("the policy's cipher suites are all TLS 1.2 ones: no connection could be made".into())
        }
        "tls.min_version" if mine.min_tls >= eff.min_tls => {
            eff.min_tls = mine.min_tls;
            Ok(())
        }
        "tls.min_version" => Err("the policy requires TLS 1.3".into()),
        "overrides.allowed" => only(
            &mut eff.overrides_allowed,
            mine.overrides_allowed,
            false,
            "the policy lets no one accept certificate errors",
        ),
        "overrides.errors" if mine.overridable & !eff.overridable == 0 => {
            eff.overridable = mine.overridable;
            Ok(())
        }
        "overrides.errors" => {
            let extra: Vec<&str> = super::ERROR_NAMES
                .iter()
                .filter(|(_, s)| mine.overridable & !eff.overridable & status_bit(*s) != 0)
                .map(|(n, _)| *n)
                .collect();
            Err(format!("the policy does not let users accept {}", extra.join(", ")))
        }
        "pkcs12.export" => {
            only(&mut eff.pkcs12_export, mine.pkcs12_export, false, "the policy forbids exporting keys")
        }
        "token.app_password_prompts" => only(
            &mut eff.app_password_prompts,
            mine.app_password_prompts,
            false,
            "the policy keeps applications from asking for the token password",
        ),
        "token.password_required" => only(
            &mut eff.password_required,
            mine.password_required,
            true,
            "the policy requires a token password",
        ),
        "audit.enabled" => only(&mut eff.audit, mine.audit, true, "the policy keeps the audit log on"),
        "token.min_password_length" if mine.min_password_length >= eff.min_password_length => {
            eff.min_password_length = mine.min_password_length;
            Ok(())
        }
        "token.min_password_length" => {
            Err(format!("the policy requires at least {} characters", eff.min_password_length))
        }
        "token.idle_timeout_secs" if mine.idle_timeout_secs <= eff.idle_timeout_secs => {
            eff.idle_timeout_secs = mine.idle_timeout_secs;
            Ok(())
        }
        "token.idle_timeout_secs" => {
            Err(format!("the policy ends a login after {} seconds at most", eff.idle_timeout_secs))
        }
        other => Err(format!("{other} is not a user setting")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> UserConfig {
        let (values, set) = super::super::parse_user(text).unwrap();
        UserConfig { source: Some("/home/u/.config/psm/config.toml".into()), sha256: None, values, set }
    }

    #[test]
    fn users_may_only_tighten_and_never_a_locked_setting() {
        let system = super::super::parse(
            "[tls]\nmin_version = \"1.3\"\n[token]\nidle_timeout_secs = 600\nmin_password_length = 8\n\
             [overrides]\nerrors = [\"expired\", \"name-mismatch\"]\n[locked]\nsettings = [\"pkcs12.export\"]\n",
        )
        .unwrap();
        let mine = config(
            "[tls]\nmin_version = \"1.2\"\n[token]\nidle_timeout_secs = 60\nmin_password_length = 4\n\
             [overrides]\nerrors = [\"expired\"]\n[pkcs12]\nexport = false\n[audit]\nenabled = true\n",
        );
        let eff = merge(&system, &mine, None, &[]);
        assert_eq!(eff.min_tls, psm::proto::TLS_1_3);
        assert_eq!(eff.idle_timeout_secs, 60);
        assert_eq!(eff.min_password_length, 8);
        assert_eq!(eff.overridable, status_bit(crate::pki::verify::Status::Expired));
        assert!(eff.pkcs12_export && eff.audit);
        assert_eq!(eff.user.applied, ["overrides.errors", "token.idle_timeout_secs", "audit.enabled"]);
        assert_eq!(eff.user.ignored.len(), 3, "{:?}", eff.user.ignored);
        assert!(
            eff.user
                .ignored
                .iter()
                .any(|n| n.starts_with("pkcs12.export = false") && n.contains("locks it at true"))
        );
        assert!(eff.user.ignored.iter().any(|n| n.starts_with("tls.min_version = \"1.2\"")));
        let looser = config("[overrides]\nerrors = [\"unknown-issuer\"]\n");
        let eff = merge(&system, &looser, None, &[]);
        assert!(eff.user.ignored[0].contains("accept unknown-issuer"), "{:?}", eff.user.ignored);
        // TLS 1.3 only where the policy allows only TLS 1.2 suites would
        // leave no connection possible.
        let tls12 =
            super::super::parse("[tls]\ncipher_suites = [\"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\"]\n");
        let eff = merge(&tls12.unwrap(), &config("[tls]\nmin_version = \"1.3\"\n"), None, &[]);
        assert_eq!(eff.min_tls, psm::proto::TLS_1_2);
        assert!(eff.user.ignored[0].contains("all TLS 1.2"), "{:?}", eff.user.ignored);
    }

    #[test]
    fn a_user_config_holds_only_user_settings() {
        let p = super::super::parse_user(
            "[applications]\nallowed = [\"/bin/sh\"]\n[tls]\nmin_versoin = \"1.3\"\n[locked]\nsettings = []\n",
        )
        .unwrap_err();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].message.contains("administrator's alone") && p[0].line == 2, "{p:?}");
        assert!(p[1].message.contains("did you mean \"min_version\"") && p[1].line == 4, "{p:?}");
        assert_eq!(p[2].line, 6);
    }
}
