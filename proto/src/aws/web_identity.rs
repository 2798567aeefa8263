//! Web identity credentials (EKS IAM roles for service accounts, or any
//! OIDC token): the token in `AWS_WEB_IDENTITY_TOKEN_FILE` is exchanged for
//! temporary credentials of `AWS_ROLE_ARN` by STS `AssumeRoleWithWebIdentity`
//! (a call that needs no signature: the token is the proof). The file is
//! read again at every exchange, because the platform rotates the token.
//!
//! STS is `https://sts.<AWS_REGION>.amazonaws.com` (the global
//! `sts.amazonaws.com` without a region), or `AWS_ENDPOINT_URL_STS` /
//! `AWS_ENDPOINT_URL` as the AWS SDKs read them. The token goes in the
//! POST body, never in a URL.

use super::credentials::{AwsCredentials, Env};
use super::sigv4::uri_encode;
use crate::wire::Secret;

/// What the environment names for the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebIdentity {
    /// The file holding the OIDC token.
    pub token_file: String,
    /// The role to assume.
    pub role_arn: String,
    /// The session name CloudTrail shows.
    pub session_name: String,
    /// The STS endpoint.
    pub endpoint: String,
}

impl WebIdentity {
    /// From `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN` (with
    /// `AWS_ROLE_SESSION_NAME`); `Ok(None)` without a token file.
    pub fn from_env(env: &Env) -> Result<Option<WebIdentity>, String> {
        let Some(token_file) = env("AWS_WEB_IDENTITY_TOKEN_FILE") else {
            return Ok(None);
        };
        let role_arn = env("AWS_ROLE_ARN")
            .ok_or("AWS_WEB_IDENTITY_TOKEN_FILE needs AWS_ROLE_ARN (the role to assume)")?;
        let session_name = env("AWS_ROLE_SESSION_NAME")
            .unwrap_or_else(|| format!("thingcall-{}", std::process::id()));
        let endpoint = env("AWS_ENDPOINT_URL_STS")
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .unwrap_or_else(
                || match env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")) {
                    Some(region) => format!("https://sts.{region}.amazonaws.com"),
                    None => "https://sts.amazonaws.com".to_owned(),
                },
            );
        Ok(Some(WebIdentity {
            token_file,
            role_arn,
            session_name,
            endpoint,
        }))
    }

    /// Exchanges the token for credentials (`env` for `AWS_CA_BUNDLE`).
    pub async fn fetch(&self, env: &Env) -> Result<AwsCredentials, String> {
        let token = std::fs::read_to_string(&self.token_file)
            .map_err(|e| format!("AWS_WEB_IDENTITY_TOKEN_FILE {}: {e}", self.token_file))?;
        let form = format!(
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
            uri_encode(&self.role_arn),
            uri_encode(&self.session_name),
            uri_encode(token.trim())
        );
        let url = format!("{}/", self.endpoint.trim_end_matches('/'));
        let body = super::http::post_form(env, &url, form)
            .await
            .map_err(|e| format!("STS AssumeRoleWithWebIdentity: {e}"))?;
        parse(&String::from_utf8_lossy(&body))
    }
}

/// The credentials in STS's XML answer.
fn parse(xml: &str) -> Result<AwsCredentials, String> {
    let field = |name: &str| {
        element(xml, name)
            .ok_or_else(|| format!("STS AssumeRoleWithWebIdentity: no {name} in the answer"))
    };
    let expiration = field("Expiration")?;
    Ok(AwsCredentials {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: Secret::new(field("SecretAccessKey")?),
        session_token: Some(Secret::new(field("SessionToken")?)),
        expires: Some(
            humantime::parse_rfc3339_weak(&expiration)
                .map_err(|_| "STS AssumeRoleWithWebIdentity: unreadable Expiration".to_owned())?,
        ),
    })
}

/// The text of the first `<name>...</name>`, XML entities resolved.
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{name}>"))?;
    let text = xml[start..start + len].trim();
    Some(
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::credentials::tests::env_of;

    const ANSWER: &str = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:iot:gw</SubjectFromWebIdentityToken>
    <Credentials>
      <SessionToken>FwoGZXIvYXdzE&amp;x/y+z=</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2026-12-02T00:00:00Z</Expiration>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"#;

    #[test]
    fn answers() {
        let c = parse(ANSWER).unwrap();
        assert_eq!(c.access_key_id, "ASIAIOSFODNN7EXAMPLE");
        assert_eq!(c.session_token.unwrap().expose(), "FwoGZXIvYXdzE&x/y+z=");
        assert_eq!(
            c.expires,
            Some(humantime::parse_rfc3339("2026-12-02T00:00:00Z").unwrap())
        );
        let err = parse("<Error><Code>AccessDenied</Code></Error>").unwrap_err();
        assert!(err.contains("no Expiration"), "{err}");
    }

    #[test]
    fn settings() {
        assert_eq!(WebIdentity::from_env(&env_of(&[])), Ok(None));
        assert!(WebIdentity::from_env(&env_of(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")])).is_err());
        let w = WebIdentity::from_env(&env_of(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/gw"),
            ("AWS_REGION", "eu-west-1"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(w.endpoint, "https://sts.eu-west-1.amazonaws.com");
        assert!(w.session_name.starts_with("thingcall-"));
    }
}
