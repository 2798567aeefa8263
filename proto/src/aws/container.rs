//! Container credentials (Amazon ECS task roles, EKS Pod Identity): a
//! JSON document served over plain HTTP at
//! `http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, or at
//! `$AWS_CONTAINER_CREDENTIALS_FULL_URI`, with the header
//! `Authorization: $AWS_CONTAINER_AUTHORIZATION_TOKEN` (or the contents of
//! `$AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`) when set. The credentials
//! are temporary; the chain fetches them again before they expire.

use serde::Deserialize;

use super::credentials::{AwsCredentials, Env};
use crate::wire::Secret;

/// The ECS agent's fixed address for relative URIs.
const ECS_HOST: &str = "http://169.254.170.2";

/// The document's fields (AWS's names).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Document {
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
    expiration: Option<String>,
}

/// The endpoint the environment names, if any.
pub fn endpoint(env: &Env) -> Option<String> {
    env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .map(|rel| format!("{ECS_HOST}{rel}"))
        .or_else(|| env("AWS_CONTAINER_CREDENTIALS_FULL_URI"))
}

/// Fetches the credentials; `Ok(None)` when the environment names no
/// container endpoint.
pub async fn fetch(env: &Env) -> Result<Option<AwsCredentials>, String> {
    let Some(url) = endpoint(env) else {
        return Ok(None);
    };
    let token = match (
        env("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
        env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
    ) {
        (Some(t), _) => Some(t),
        (None, Some(path)) => Some(
            std::fs::read_to_string(&path)
                .map_err(|e| format!("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {path}: {e}"))?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    let headers: Vec<(&str, String)> = token.into_iter().map(|t| ("authorization", t)).collect();
    let body = super::http::get(env, &url, &headers)
        .await
        .map_err(|e| format!("container credentials: {e}"))?;
    parse(&body).map(Some)
}

/// The credentials in a container endpoint's answer.
fn parse(body: &[u8]) -> Result<AwsCredentials, String> {
    let doc: Document = serde_json::from_slice(body)
        .map_err(|_| "container credentials: not the expected JSON document".to_owned())?;
    let expires = match doc.expiration {
        Some(t) => Some(
            humantime::parse_rfc3339_weak(&t)
                .map_err(|_| "container credentials: unreadable Expiration".to_owned())?,
        ),
        None => None,
    };
    Ok(AwsCredentials {
        access_key_id: doc.access_key_id,
        secret_access_key: Secret::new(doc.secret_access_key),
        session_token: doc.token.map(Secret::new),
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::credentials::tests::env_of;

    #[test]
    fn documents() {
        let c = parse(br#"{"AccessKeyId":"ASIAX","SecretAccessKey":"sek","Token":"tok","Expiration":"2026-12-01T23:00:00Z","RoleArn":"arn:aws:iam::1:role/r"}"#).unwrap();
        assert_eq!(c.access_key_id, "ASIAX");
        assert_eq!(
            c.expires,
            Some(humantime::parse_rfc3339("2026-12-01T23:00:00Z").unwrap())
        );
        let err = parse(br#"{"SecretAccessKey":"sek"}"#).unwrap_err();
        assert!(!err.contains("sek"), "{err}");
    }

    #[test]
    fn endpoints() {
        let rel = env_of(&[(
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "/v2/credentials/x",
        )]);
        assert_eq!(
            endpoint(&rel).as_deref(),
            Some("http://169.254.170.2/v2/credentials/x")
        );
        let full = env_of(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/c")]);
        assert_eq!(endpoint(&full).as_deref(), Some("http://127.0.0.1:9/c"));
        assert_eq!(endpoint(&env_of(&[])), None);
    }
}
