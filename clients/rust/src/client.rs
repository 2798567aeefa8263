//! A typed client for the gateway's `DeviceGateway` service that speaks in
//! [`CallError`]s, so callers get the gateway's reason instead of a bare
//! gRPC status, and that hides paging.

use std::time::Duration;

use thingcall_proto::v1::device_gateway_client::DeviceGatewayClient;
use thingcall_proto::v1::{
    Device, DeviceEvent, GetDeviceRequest, InvokeManyEvent, InvokeManyRequest, InvokeRequest,
    InvokeResponse, ListDevicesRequest, WatchDeviceRequest,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request};

use crate::direct::Direct;
use crate::error::{error_chain, reason, CallError};
use crate::transport::Transport;

/// How long to wait for the TCP connection to the gateway. Without a bound
/// an unroutable address would hang for the operating system's timeout
/// (minutes) before reporting `UNREACHABLE`.
pub const GATEWAY_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the endpoint for `server` (`http://host:port`, `https://...` or
/// `unix:/path`) with the settings every thingcall caller wants, chiefly
/// TCP_NODELAY: with Nagle on, small request/reply pairs stall for tens of
/// milliseconds. Public so callers can connect lazily or tune it further.
pub fn endpoint(server: &str) -> Result<Endpoint, CallError> {
    endpoint_with(server, &TlsOptions::default())
}

/// TLS to an `https://` gateway. By default the platform's root
/// certificates are trusted and no client certificate is sent.
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// PEM CA certificate(s) to trust instead of the platform's roots
    /// (for a gateway with a private CA, like `curl --cacert`).
    pub ca_pem: Option<Vec<u8>>,
    /// PEM client certificate and key, for a gateway that authenticates
    /// callers by certificate (`--tls-client-ca`).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field("identity", &self.identity.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// [`endpoint`] with TLS options for `https://` URLs.
pub fn endpoint_with(server: &str, tls: &TlsOptions) -> Result<Endpoint, CallError> {
    let invalid = |why: String| {
        CallError::new(
            reason::INVALID_ARGUMENT,
            format!("invalid server URL {server:?}: {why}"),
            Code::InvalidArgument,
        )
    };
    let endpoint =
        Endpoint::from_shared(server.to_owned()).map_err(|e| invalid(error_chain(&e)))?;
    if !server.starts_with("unix:") {
        match endpoint.uri().scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(invalid("expected http://HOST:PORT".to_owned())),
        }
    }
    let endpoint = endpoint
        .tcp_nodelay(true)
        .connect_timeout(GATEWAY_CONNECT_TIMEOUT);
    if endpoint.uri().scheme_str() != Some("https") {
        return Ok(endpoint);
    }
    let mut config = ClientTlsConfig::new();
    config = match &tls.ca_pem {
        Some(pem) => config.ca_certificate(Certificate::from_pem(pem)),
        None => config.with_native_roots(),
    };
    if let Some((cert, key)) = &tls.identity {
        config = config.identity(Identity::from_pem(cert, key));
    }
    endpoint
        .tls_config(config)
        .map_err(|e| invalid(error_chain(&e)))
}

/// A connection to one gateway. Cheap to clone: clones share the HTTP/2
/// connection, which is how concurrent calls should be made. Under it is a
/// [`Transport`]: the [`Direct`] h2c connection for `http://` gateways
/// (the cheapest per call), tonic's `Channel` for the rest.
#[derive(Debug, Clone)]
pub struct Client {
    inner: DeviceGatewayClient<Transport>,
    /// The same connection when it is [`Direct`]: `invoke` runs on it
    /// without tonic's generated client (see `unary.rs`).
    direct: Option<Direct>,
    /// `authorization: Bearer TOKEN`, sent with every request when set.
    token: Option<MetadataValue<Ascii>>,
}

impl Client {
    /// Connects to `server`, e.g. `http://127.0.0.1:8080`, eagerly, so a
    /// gateway that is not there is reported as `UNREACHABLE` right away.
    /// `http://` uses the [`Direct`] transport; `https://` and `unix:` a
    /// tonic `Channel`. Both remake a dropped connection on the next call.
    pub async fn connect(server: &str) -> Result<Client, CallError> {
        Client::connect_with(server, &TlsOptions::default()).await
    }

    /// [`Client::connect`] with TLS options for an `https://` gateway.
    pub async fn connect_with(server: &str, tls: &TlsOptions) -> Result<Client, CallError> {
        let endpoint = endpoint_with(server, tls)?;
        if Direct::serves(server) {
            return Ok(Client::with_transport(Direct::connect(server).await?));
        }
        let channel = endpoint.connect().await.map_err(|e| {
            CallError::unreachable(format!("cannot connect to {server}: {}", error_chain(&e)))
        })?;
        Ok(Client::new(channel))
    }

    /// Wraps an existing channel, for callers (and tests) that build their
    /// own, e.g. in-process or lazily connected.
    pub fn new(channel: Channel) -> Client {
        Client::with_transport(channel)
    }

    /// Wraps an existing transport: a [`Direct`] connection or a `Channel`.
    pub fn with_transport(transport: impl Into<Transport>) -> Client {
        let transport = transport.into();
        let direct = match &transport {
            Transport::Direct(d) => Some(d.clone()),
            Transport::Channel(_) => None,
        };
        Client {
            inner: DeviceGatewayClient::new(transport),
            direct,
            token: None,
        }
    }

    /// Sends `token` (a JWT or an API key) as `authorization: Bearer` with
    /// every call, for gateways that authenticate callers. The token is
    /// marked sensitive, so HTTP/2 never indexes it in its header tables.
    pub fn with_token(mut self, token: &str) -> Result<Client, CallError> {
        let mut value: MetadataValue<Ascii> =
            format!("Bearer {}", token.trim()).parse().map_err(|_| {
                CallError::new(
                    reason::INVALID_ARGUMENT,
                    "the token has characters a header cannot carry",
                    Code::InvalidArgument,
                )
            })?;
        value.set_sensitive(true);
        self.token = Some(value);
        Ok(self)
    }

    /// `message` as a request carrying the token.
    fn request<T>(&self, message: T) -> Request<T> {
        let mut req = Request::new(message);
        if let Some(token) = &self.token {
            req.metadata_mut().insert("authorization", token.clone());
        }
        req
    }

    /// Runs one method on one device. A device-reported failure is not an
    /// error: it comes back as `Ok` with the device's `status`.
    pub async fn invoke(&mut self, req: InvokeRequest) -> Result<InvokeResponse, CallError> {
        let req = self.request(req);
        if let Some(direct) = &mut self.direct {
            return Ok(crate::unary::invoke(direct, req).await?);
        }
        Ok(self.inner.invoke(req).await?.into_inner())
    }

    /// Runs one method on many devices (`req.targets`, or the glob
    /// `req.pattern`): one `result` event per device as its call ends, then
    /// a `summary`. Dropping the stream cancels the fan-out: the gateway
    /// starts no more calls. Read it with [`tonic::Streaming::message`].
    pub async fn invoke_many(
        &mut self,
        req: InvokeManyRequest,
    ) -> Result<tonic::Streaming<InvokeManyEvent>, CallError> {
        let req = self.request(req);
        Ok(self.inner.invoke_many(req).await?.into_inner())
    }

    /// One device's presence as the gateway last saw it.
    pub async fn get_device(&mut self, id: &str) -> Result<Device, CallError> {
        let req = GetDeviceRequest {
            target: id.to_owned(),
        };
        let req = self.request(req);
        Ok(self.inner.get_device(req).await?.into_inner())
    }

    /// Every device matching `pattern` (exact id or glob; empty = all),
    /// following `next_page_token` to the last page so callers never see
    /// paging.
    pub async fn list_devices(&mut self, pattern: &str) -> Result<Vec<Device>, CallError> {
        let mut devices = Vec::new();
        let mut page_token = String::new();
        loop {
            let req = ListDevicesRequest {
                target: pattern.to_owned(),
                page_size: 0,
                page_token: page_token.clone(),
            };
            let req = self.request(req);
            let page = self.inner.list_devices(req).await?.into_inner();
            devices.extend(page.devices);
            if page.next_page_token.is_empty() {
                return Ok(devices);
            }
            if page.next_page_token == page_token {
                // A gateway bug would otherwise make this loop forever.
                return Err(CallError::new(
                    "INTERNAL",
                    format!("the gateway returned the same page token twice: {page_token:?}"),
                    Code::Internal,
                ));
            }
            page_token = page.next_page_token;
        }
    }

    /// Current state of every device matching `pattern`, then changes as
    /// they happen; with `include_events` also the devices' own events. Read
    /// it with [`tonic::Streaming::message`]; errors on the stream convert
    /// with `CallError::from`.
    pub async fn watch(
        &mut self,
        pattern: &str,
        include_events: bool,
    ) -> Result<tonic::Streaming<DeviceEvent>, CallError> {
        let req = WatchDeviceRequest {
            target: pattern.to_owned(),
            include_events,
        };
        let req = self.request(req);
        Ok(self.inner.watch_device(req).await?.into_inner())
    }

    /// The generated client, for request metadata, deadlines or RPCs this
    /// wrapper does not cover (requests made through it carry no token:
    /// set `authorization` in their metadata).
    pub fn raw(&mut self) -> &mut DeviceGatewayClient<Transport> {
        &mut self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_accepts_http_urls() {
        let ep = endpoint("http://127.0.0.1:8080").unwrap();
        assert_eq!(ep.uri().port_u16(), Some(8080));
    }

    #[test]
    fn endpoint_rejects_urls_without_scheme() {
        let err = endpoint("127.0.0.1:8080").unwrap_err();
        assert_eq!(err.reason, "INVALID_ARGUMENT");
        let err = endpoint("not a url").unwrap_err();
        assert_eq!(err.reason, "INVALID_ARGUMENT");
    }

    #[tokio::test]
    async fn connect_to_nothing_is_unreachable() {
        // Port 1 on loopback: nothing listens there in any sane setup.
        let err = Client::connect("http://127.0.0.1:1").await.unwrap_err();
        assert_eq!(err.reason, "UNREACHABLE");
        assert_eq!(err.exit_code(), 69);
        assert!(err.message.contains("127.0.0.1:1"), "{}", err.message);
    }

    #[test]
    fn client_is_send_and_sync() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Client>();
    }
}
