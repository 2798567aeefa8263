//! AWS credentials as values, and the two sources that need no network:
//! the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`) and the shared files (`~/.aws/credentials`,
//! `~/.aws/config`, moved by `AWS_SHARED_CREDENTIALS_FILE` and
//! `AWS_CONFIG_FILE`, profile from `AWS_PROFILE`, default `default`).
//!
//! The secret and the session token are [`Secret`]s: `Debug` never prints
//! them, and no error here names them.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::wire::Secret;

/// How the sources read the environment: a function, so tests give their
/// own variables instead of changing the process's.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process's environment.
pub fn process_env() -> Env {
    Arc::new(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

/// One set of AWS credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// The access key id (an identifier, not a secret, but printed only
    /// by its first four characters).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
    /// When temporary credentials stop working; `None` for long-lived keys.
    pub expires: Option<SystemTime>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.access_key_id.chars().take(4).collect();
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &format_args!("{shown}..."))
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .field("expires", &self.expires)
            .finish()
    }
}

/// Credentials from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and
/// `AWS_SESSION_TOKEN`); `Ok(None)` when neither is set.
pub fn from_env(env: &Env) -> Result<Option<AwsCredentials>, String> {
    match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (None, None) => Ok(None),
        (Some(id), Some(secret)) => Ok(Some(AwsCredentials {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
            session_token: env("AWS_SESSION_TOKEN").map(Secret::new),
            expires: None,
        })),
        _ => Err("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together".into()),
    }
}

/// Credentials of the profile (`AWS_PROFILE`, else `default`) in the
/// shared credentials file, else in the shared config file; `Ok(None)`
/// when neither file has keys for it (a profile that only names a role
/// or an SSO session is not read here).
pub fn from_profile(env: &Env) -> Result<Option<AwsCredentials>, String> {
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".to_owned());
    let home = env("HOME").map(PathBuf::from);
    let file = |var: &str, rel: &str| {
        env(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(rel)))
    };
    // The credentials file names a section `[name]`; the config file
    // names it `[profile name]`, except `[default]`.
    let sources = [
        (
            file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
            profile.clone(),
        ),
        (
            file("AWS_CONFIG_FILE", ".aws/config"),
            if profile == "default" {
                profile.clone()
            } else {
                format!("profile {profile}")
            },
        ),
    ];
    for (path, section) in sources {
        let Some(path) = path else { continue };
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let keys = section_keys(&text, &section);
        let get = |k: &str| {
            keys.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        match (get("aws_access_key_id"), get("aws_secret_access_key")) {
            (Some(id), Some(secret)) => {
                return Ok(Some(AwsCredentials {
                    access_key_id: id,
                    secret_access_key: Secret::new(secret),
                    session_token: get("aws_session_token").map(Secret::new),
                    expires: None,
                }))
            }
            (None, None) => {}
            _ => {
                return Err(format!(
                    "AWS profile {profile:?} in {} has only one of aws_access_key_id and aws_secret_access_key",
                    path.display()
                ))
            }
        }
    }
    Ok(None)
}

/// The `key = value` lines of `[section]` in an INI text; `#` and `;`
/// start comments, keys are compared in lower case.
fn section_keys(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut keys = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.split_whitespace().collect::<Vec<_>>().join(" ") == section;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                keys.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
    }
    keys
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(crate) fn env_of(vars: &[(&str, &str)]) -> Env {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Arc::new(move |name| map.get(name).cloned())
    }

    #[test]
    fn environment() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("AWS_SESSION_TOKEN", "t0ken"),
        ]);
        let c = from_env(&env).unwrap().unwrap();
        assert_eq!(c.secret_access_key.expose(), "s3cr3t");
        assert_eq!(c.session_token.as_ref().unwrap().expose(), "t0ken");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("t0ken") && !shown.contains("AKIDEXAMPLE"),
            "{shown}"
        );
        assert_eq!(from_env(&env_of(&[])), Ok(None));
        let err = from_env(&env_of(&[("AWS_SECRET_ACCESS_KEY", "s3cr3t")])).unwrap_err();
        assert!(!err.contains("s3cr3t"));
    }

    #[test]
    fn shared_files() {
        let dir = std::env::temp_dir().join(format!("tc-aws-profile-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        std::fs::write(
            dir.join(".aws/credentials"),
            "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = d3f\n\n[ops]\nAWS_ACCESS_KEY_ID=AKIDOPS\naws_secret_access_key=0ps\naws_session_token = tok\n",
        )
        .unwrap();
        let config = dir.join("config");
        std::fs::write(
            &config,
            "[profile  cfg ]\naws_access_key_id = AKIDCFG\naws_secret_access_key = cfg\n[profile half]\naws_access_key_id = X\n",
        )
        .unwrap();
        let home = dir.to_str().unwrap();
        let cfg = config.to_str().unwrap();
        let get = |profile: &str| {
            from_profile(&env_of(&[
                ("HOME", home),
                ("AWS_PROFILE", profile),
                ("AWS_CONFIG_FILE", cfg),
            ]))
        };
        assert_eq!(
            get("default").unwrap().unwrap().access_key_id,
            "AKIDDEFAULT"
        );
        let ops = get("ops").unwrap().unwrap();
        assert_eq!(ops.secret_access_key.expose(), "0ps");
        assert_eq!(ops.session_token.unwrap().expose(), "tok");
        assert_eq!(get("cfg").unwrap().unwrap().access_key_id, "AKIDCFG");
        assert_eq!(get("nobody"), Ok(None));
        assert!(get("half").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
