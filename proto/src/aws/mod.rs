//! AWS IoT Core over MQTT over WebSockets with IAM credentials (feature
//! `aws`): SigV4 presigned URLs ([`sigv4`]), the credential chain
//! ([`chain`]: environment, shared files, web identity through STS,
//! container endpoint, refreshed before expiry), and the per-connect signing hook for rumqttc ([`iot`]).

pub mod chain;
mod container;
pub mod credentials;
pub mod http;
pub mod iot;
pub mod sigv4;
mod web_identity;
