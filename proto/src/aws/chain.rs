//! The credential chain, in the order of the AWS SDKs: the environment,
//! the shared files' profile, a web identity token exchanged at STS, then
//! the container endpoint. Temporary credentials
//! are kept until shortly before they expire and then fetched again, so a
//! reconnect hours later still signs with valid keys.

use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;

use super::credentials::{self, AwsCredentials, Env};
use super::web_identity::WebIdentity;

/// Fetch again when credentials have less than this left: a signed URL
/// must still be valid when AWS checks it, and clocks drift.
const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// Where the credentials come from, resolved once from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    Environment,
    /// The shared credentials or config file.
    Profile,
    /// A web identity token exchanged at STS (EKS IRSA).
    WebIdentity,
    /// The container credentials endpoint (ECS, EKS Pod Identity).
    Container,
}

/// A credential provider shared by every reconnect of one session.
pub struct Chain {
    env: Env,
    source: Source,
    web_identity: Option<WebIdentity>,
    cached: Mutex<Option<AwsCredentials>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("source", &self.source)
            .finish()
    }
}

impl Chain {
    /// Finds the first source the environment offers; the error is one
    /// line saying none does (or what is wrong with one), naming no secret.
    /// Keys from the environment or a file are read here, so a bad file is
    /// reported at start-up; the container endpoint is asked at the first
    /// connect.
    pub fn resolve(env: Env) -> Result<Chain, String> {
        let mut web_identity = None;
        let (source, cached) = if let Some(c) = credentials::from_env(&env)? {
            (Source::Environment, Some(c))
        } else if let Some(c) = credentials::from_profile(&env)? {
            (Source::Profile, Some(c))
        } else if let Some(w) = WebIdentity::from_env(&env)? {
            web_identity = Some(w);
            (Source::WebIdentity, None)
        } else if super::container::endpoint(&env).is_some() {
            (Source::Container, None)
        } else {
            return Err(
                "no AWS credentials found (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, \
                        AWS_PROFILE and ~/.aws/credentials, or AWS_CONTAINER_CREDENTIALS_*)"
                    .into(),
            );
        };
        Ok(Chain {
            env,
            source,
            web_identity,
            cached: Mutex::new(cached),
        })
    }

    /// Where the credentials come from.
    pub fn source(&self) -> Source {
        self.source
    }

    /// Valid credentials: the kept ones, or fresh ones when they are
    /// missing or about to expire.
    pub async fn credentials(&self) -> Result<AwsCredentials, String> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if fresh(c, SystemTime::now()) {
                return Ok(c.clone());
            }
        }
        let fetched = match self.source {
            Source::Environment => credentials::from_env(&self.env)?,
            Source::Profile => credentials::from_profile(&self.env)?,
            Source::WebIdentity => match &self.web_identity {
                Some(w) => Some(w.fetch(&self.env).await?),
                None => None,
            },
            Source::Container => super::container::fetch(&self.env).await?,
        }
        .ok_or_else(|| format!("AWS credentials from {:?} are gone", self.source))?;
        *cached = Some(fetched.clone());
        Ok(fetched)
    }
}

/// Whether `c` is good for a while longer at `now`.
fn fresh(c: &AwsCredentials, now: SystemTime) -> bool {
    match c.expires {
        None => true,
        Some(t) => t > now + REFRESH_BEFORE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::credentials::tests::env_of;
    use crate::wire::Secret;

    #[test]
    fn the_first_source_wins() {
        let both = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/c"),
        ]);
        assert_eq!(Chain::resolve(both).unwrap().source(), Source::Environment);
        let container = env_of(&[
            ("HOME", "/nonexistent"),
            ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/c"),
        ]);
        assert_eq!(
            Chain::resolve(container).unwrap().source(),
            Source::Container
        );
        let err = Chain::resolve(env_of(&[("HOME", "/nonexistent")])).unwrap_err();
        assert!(err.starts_with("no AWS credentials found"), "{err}");
        let web = env_of(&[
            ("HOME", "/nonexistent"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
        ]);
        assert!(Chain::resolve(web).unwrap_err().contains("AWS_ROLE_ARN"));
    }

    #[test]
    fn temporary_credentials_are_refreshed_before_they_expire() {
        let now = SystemTime::now();
        let mut c = AwsCredentials {
            access_key_id: "ASIA".into(),
            secret_access_key: Secret::new("s"),
            session_token: None,
            expires: None,
        };
        assert!(fresh(&c, now));
        c.expires = Some(now + Duration::from_secs(3600));
        assert!(fresh(&c, now));
        c.expires = Some(now + Duration::from_secs(60));
        assert!(!fresh(&c, now));
    }

    /// An HTTP endpoint on loopback answering its i-th request with
    /// `answer(i)` (a JSON or XML body) and reporting each whole request.
    async fn endpoint(
        count: usize,
        answer: impl Fn(usize) -> String + Send + 'static,
    ) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            for i in 0..count {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut req = Vec::new();
                let mut buf = vec![0; 4096];
                // Read the head, then as much body as it announces.
                loop {
                    let n = sock.read(&mut buf).await.unwrap();
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if req.len() >= end + 4 + len || n == 0 {
                            break;
                        }
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&req).into_owned());
                let body = answer(i);
                let res = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                sock.write_all(res.as_bytes()).await.unwrap();
            }
        });
        (url, rx)
    }

    fn expires_in(secs: u64) -> String {
        humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(secs)).to_string()
    }

    #[tokio::test]
    async fn container_credentials_are_fetched_again_near_expiry() {
        // First answer: valid one more minute (inside the refresh margin);
        // second: valid an hour.
        let lifetimes = [60, 3600];
        let (url, mut requests) = endpoint(2, move |i| {
            format!(
                r#"{{"AccessKeyId":"ASIA{i}","SecretAccessKey":"sek","Token":"tok","Expiration":"{}"}}"#,
                expires_in(lifetimes[i])
            )
        })
        .await;
        let url = format!("{url}/creds");
        let env = env_of(&[
            ("HOME", "/nonexistent"),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer abc"),
        ]);
        let chain = Chain::resolve(env).unwrap();
        assert_eq!(chain.credentials().await.unwrap().access_key_id, "ASIA0");
        let head = requests.recv().await.unwrap();
        assert!(head.starts_with("GET /creds HTTP/1.1"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("authorization: bearer abc"),
            "{head}"
        );
        // About to expire: fetched again.
        assert_eq!(chain.credentials().await.unwrap().access_key_id, "ASIA1");
        requests.recv().await.unwrap();
        // Good for an hour: kept (the endpoint would not answer a third time).
        let kept = chain.credentials().await.unwrap();
        assert_eq!(kept.access_key_id, "ASIA1");
        assert_eq!(kept.session_token.unwrap().expose(), "tok");
    }

    #[tokio::test]
    async fn a_web_identity_token_is_exchanged_at_sts_and_read_again() {
        let (url, mut requests) = endpoint(2, |i| {
            format!(
                "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>\
                 <SessionToken>tok{i}</SessionToken><SecretAccessKey>sek</SecretAccessKey>\
                 <Expiration>{}</Expiration><AccessKeyId>ASIA{i}</AccessKeyId>\
                 </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
                expires_in(60)
            )
        })
        .await;
        let token = std::env::temp_dir().join(format!("tc-web-identity-{}", std::process::id()));
        std::fs::write(&token, "first.jwt\n").unwrap();
        let env = env_of(&[
            ("HOME", "/nonexistent"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().unwrap()),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/gw"),
            ("AWS_ROLE_SESSION_NAME", "gw-1"),
            ("AWS_ENDPOINT_URL_STS", &url),
        ]);
        let chain = Chain::resolve(env).unwrap();
        assert_eq!(chain.source(), Source::WebIdentity);
        let c = chain.credentials().await.unwrap();
        assert_eq!(c.session_token.unwrap().expose(), "tok0");
        let req = requests.recv().await.unwrap();
        assert!(req.starts_with("POST / HTTP/1.1"), "{req}");
        assert!(
            req.contains("Action=AssumeRoleWithWebIdentity")
                && req.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fgw")
                && req.contains("RoleSessionName=gw-1")
                && req.ends_with("WebIdentityToken=first.jwt"),
            "{req}"
        );
        // Near expiry: the rotated token is read and exchanged again.
        std::fs::write(&token, "second.jwt").unwrap();
        assert_eq!(chain.credentials().await.unwrap().access_key_id, "ASIA1");
        assert!(requests
            .recv()
            .await
            .unwrap()
            .ends_with("WebIdentityToken=second.jwt"));
        std::fs::remove_file(&token).unwrap();
    }
}
