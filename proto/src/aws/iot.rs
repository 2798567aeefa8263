//! AWS IoT Core's login over MQTT over WebSockets: the upgrade request's
//! URL presigned with SigV4 for service `iotdevicegateway`, signed again
//! at every connection attempt (a presigned URL is only good for minutes,
//! and temporary credentials change), with `X-Amz-Security-Token`
//! appended after signing as AWS IoT wants (it is not part of the
//! canonical query).
//!
//! rumqttc calls the request modifier installed by [`install`] in
//! `network_connect`, once per connection attempt, before the upgrade
//! request is written; the modifier swaps the request's URI for a freshly
//! signed one. It cannot fail the attempt, so when no credentials can be
//! had it logs why (never a secret) and leaves the URL unsigned: AWS
//! refuses the upgrade and the session retries with backoff.

use std::sync::Arc;
use std::time::SystemTime;

use rumqttc::v5::MqttOptions;

use super::chain::Chain;
use super::sigv4::{empty_payload_hash, presigned_query, uri_encode, Presign};

/// The service name AWS IoT's data plane signs with.
pub const SERVICE: &str = "iotdevicegateway";

/// A log directive every binary adds after `RUST_LOG`'s: tungstenite
/// logs the whole upgrade request at trace level, and with SigV4 that
/// request carries the signature and the session token. The more specific
/// target wins over any broader `trace` the operator asks for.
pub const LOG_CAP: &str = "tungstenite::handshake::client=debug";

/// How long a signed URL is valid: only for the handshake it is made for.
const EXPIRES_SECS: u32 = 300;

/// The clock the signer reads (a function, so a test can move it).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

pub use crate::wire::{aws_iot_region as region_from_host, is_aws_iot_host as is_iot_endpoint};

/// Signs the WebSocket URL of one endpoint.
#[derive(Clone)]
pub struct Signer {
    /// AWS region of the endpoint.
    pub region: String,
    /// Where credentials come from.
    pub chain: Arc<Chain>,
    /// The signing time source.
    pub clock: Clock,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("region", &self.region)
            .field("chain", &self.chain)
            .finish()
    }
}

impl Signer {
    /// A signer for `region` with credentials from `chain`, on the system clock.
    pub fn new(region: impl Into<String>, chain: Arc<Chain>) -> Self {
        Signer {
            region: region.into(),
            chain,
            clock: Arc::new(SystemTime::now),
        }
    }

    /// The presigned form of `uri` (a `wss://` or `ws://` URL whose
    /// `Host` header is `host`): its path with the SigV4 query, then the
    /// session token if any.
    pub async fn sign(&self, uri: &http::Uri, host: &str) -> Result<http::Uri, String> {
        let creds = self.chain.credentials().await?;
        let hash = empty_payload_hash();
        let path = uri.path();
        let mut query = presigned_query(
            &Presign {
                host,
                path,
                region: &self.region,
                service: SERVICE,
                time: (self.clock)(),
                expires: Some(EXPIRES_SECS),
                payload_hash: &hash,
            },
            &creds,
        );
        if let Some(token) = &creds.session_token {
            query.push_str("&X-Amz-Security-Token=");
            query.push_str(&uri_encode(token.expose()));
        }
        let scheme = uri.scheme_str().unwrap_or("wss");
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
        format!("{scheme}://{authority}{path}?{query}")
            .parse()
            .map_err(|_| "the signed URL is not a valid URI".to_owned())
    }
}

/// Makes every connection attempt of `opts` (a `ws://`/`wss://` broker)
/// sign its upgrade request with `signer`.
pub fn install(opts: &mut MqttOptions, signer: Signer) {
    opts.set_request_modifier(move |mut request: http::Request<()>| {
        let signer = signer.clone();
        async move {
            let host = request
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
                .or_else(|| request.uri().host().map(str::to_owned))
                .unwrap_or_default();
            match signer.sign(request.uri(), &host).await {
                Ok(uri) => *request.uri_mut() = uri,
                // The error names the source and never a secret.
                Err(e) => tracing::warn!(error = %e, "cannot sign the AWS IoT WebSocket URL"),
            }
            request
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::credentials::tests::env_of;

    #[tokio::test]
    async fn the_token_follows_the_signature() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
            ("AWS_SESSION_TOKEN", "tok/en+="),
        ]);
        let mut signer = Signer::new("eu-west-1", Arc::new(Chain::resolve(env).unwrap()));
        signer.clock = Arc::new(|| humantime::parse_rfc3339("2026-12-01T22:15:00Z").unwrap());
        let host = "abc123-ats.iot.eu-west-1.amazonaws.com";
        let uri: http::Uri = format!("wss://{host}/mqtt").parse().unwrap();
        let signed = signer.sign(&uri, host).await.unwrap().to_string();
        // The signature is the one without the token (the Python vector
        // of sigv4.rs with X-Amz-Expires=300): the token is not signed.
        assert!(
            signed.starts_with(&format!(
                "wss://{host}/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&"
            )),
            "{signed}"
        );
        assert!(
            signed.ends_with(
                "&X-Amz-Signature=274501652eb7fdf9d57c52887604e35a0fce705846bf44a474651d5c083cdedb\
             &X-Amz-Security-Token=tok%2Fen%2B%3D"
            ),
            "{signed}"
        );
    }
}
