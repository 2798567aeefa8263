//! A broker login: a username and a password that never shows up in a log,
//! an error message or a `Debug` print. The gateway, the device SDK and the
//! simulator read it from the same sources: the password from a file (a
//! mounted secret) or from an environment variable, never from a flag, so
//! it never appears in a process listing.

use std::fmt;
use std::path::Path;

/// A secret string; `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// MQTT username and password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The MQTT username.
    pub username: String,
    /// The MQTT password.
    pub password: Secret,
}

impl Credentials {
    /// The login from its sources: `username`, and the password from
    /// `password_file` (its first line, without the line break) or from
    /// `password_env` (the value of an environment variable), not both.
    /// `Ok(None)` when none is given; the error is one line naming what is
    /// wrong and never the password.
    pub fn from_sources(
        username: Option<&str>,
        password_file: Option<&Path>,
        password_env: Option<&str>,
    ) -> Result<Option<Credentials>, String> {
        let password = match (password_file, password_env) {
            (Some(_), Some(_)) => {
                return Err(
                    "give the MQTT password in a file or in the environment, not both".into(),
                )
            }
            (Some(path), None) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("MQTT password file {}: {e}", path.display()))?;
                Some(text.lines().next().unwrap_or_default().to_owned())
            }
            (None, Some(value)) => Some(value.to_owned()),
            (None, None) => None,
        };
        match (username, password) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err("an MQTT password needs an MQTT username".into()),
            (Some(""), _) => Err("the MQTT username is empty".into()),
            (Some(user), password) => Ok(Some(Credentials {
                username: user.to_owned(),
                password: Secret::new(password.unwrap_or_default()),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let c = Credentials {
            username: "gw".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.password.to_string(), "<redacted>");
        assert_eq!(c.password.expose(), "hunter2");
    }

    #[test]
    fn sources() {
        let dir = std::env::temp_dir().join(format!("tc-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "s3cret\nignored\n").unwrap();
        let got = Credentials::from_sources(Some("gw"), Some(&file), None)
            .unwrap()
            .unwrap();
        assert_eq!(got.password.expose(), "s3cret");
        let got = Credentials::from_sources(Some("gw"), None, Some("env"))
            .unwrap()
            .unwrap();
        assert_eq!(got.password.expose(), "env");
        let got = Credentials::from_sources(Some("gw"), None, None)
            .unwrap()
            .unwrap();
        assert_eq!(got.password.expose(), "");
        assert_eq!(Credentials::from_sources(None, None, None), Ok(None));
        for bad in [
            Credentials::from_sources(None, None, Some("x")),
            Credentials::from_sources(Some(""), None, Some("x")),
            Credentials::from_sources(Some("gw"), Some(&file), Some("x")),
            Credentials::from_sources(Some("gw"), Some(&dir.join("missing")), None),
        ] {
            let err = bad.expect_err("refused");
            assert!(!err.contains("s3cret") && !err.contains('\n'), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
