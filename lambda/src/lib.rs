#![forbid(unsafe_code)]
//! thingcall behind AWS Lambda, where the AWS sample's function ran: API
//! Gateway REST and HTTP API events and ALB events become HTTP requests to
//! the gateway's own router (the seed's `GET /invoke`, Invoke, ListDevices,
//! GetDevice, InvokeMany), so one core serves every surface.
//!
//! The gateway starts once per execution environment and keeps its one
//! MQTT session between invocations: calls after the first pay no
//! connect. Between invocations Lambda freezes the process, and a frozen
//! process misses its keep-alives. A ticker notices the freeze (its ticks
//! stop), and the next invocation checks the link before anything is
//! published:
//! - frozen for less than the keep-alive: one round trip to the broker
//!   (a SUBSCRIBE and its SUBACK). It proves the link, and everything the
//!   broker sent during the freeze (presence changes) is handled by then;
//! - longer, or no answer within the keep-alive: the broker has probably
//!   dropped the connection, so reconnect at once. Presence learned before
//!   turns provisional until the retained presence is re-delivered, as
//!   after any reconnect.
//!
//! Streaming routes (`/v1/events`, `/v1/devices/{id}/events`) need a
//! long-lived connection, which Lambda responses do not give: use the
//! gateway on ECS or Kubernetes for them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use lambda_http::{Body, Request, Response};
use thingcall_server::{Config, Running};
use tower::ServiceExt;

/// How often the freeze detector ticks; a gap of more than
/// [`FROZEN_AFTER`] between ticks means the process was frozen.
const TICK: Duration = Duration::from_millis(100);
/// A tick late by this much was a freeze, not a busy scheduler.
const FROZEN_AFTER: Duration = Duration::from_millis(1000);

/// What an invocation did about the link before handling its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkCheck {
    /// Not frozen since the last invocation: nothing to check.
    Fresh,
    /// Frozen for less than the keep-alive; one round trip proved the link.
    Verified,
    /// Frozen for longer, or the round trip failed: reconnected.
    Reconnected,
    /// No MQTT session within the wait: the request runs anyway and gets
    /// the gateway's `BROKER_UNAVAILABLE`.
    Down,
}

/// One execution environment's gateway.
pub struct Function {
    running: Running,
    app: axum::Router,
    keep_alive: Duration,
    /// How long an invocation waits for an MQTT session.
    connect_wait: Duration,
    started: Instant,
    /// Milliseconds since `started` of the detector's last tick.
    last_tick: Arc<AtomicU64>,
    /// The longest freeze the ticker saw end since the last invocation (it
    /// may tick after a thaw before the invocation looks).
    frozen: Arc<parking_lot::Mutex<Duration>>,
    /// What the last invocation did about the link.
    last_check: parking_lot::Mutex<LinkCheck>,
    ticker: tokio::task::JoinHandle<()>,
}

impl Function {
    /// Starts the gateway from `config` on a loopback port of its own
    /// (the router is called directly; the port only keeps the gateway's
    /// usual shape) and connects to the broker once.
    pub async fn start(mut config: Config) -> anyhow::Result<Function> {
        // Without a URL the gateway would start its embedded broker, which
        // no device can reach in a Lambda environment.
        if config.mqtt_url.is_none() {
            anyhow::bail!(
                "THINGCALL_MQTT_URL is not set: give the broker, e.g. wss://<endpoint>/mqtt for AWS IoT Core"
            );
        }
        config.listen = ([127, 0, 0, 1], 0).into();
        let keep_alive = config.mqtt_keep_alive;
        let started = Instant::now();
        let running = thingcall_server::start(config).await?;
        let app = running.app();
        let last_tick = Arc::new(AtomicU64::new(0));
        let frozen = Arc::new(parking_lot::Mutex::new(Duration::ZERO));
        let ticker = tokio::spawn(tick(started, last_tick.clone(), frozen.clone()));
        let function = Function {
            running,
            app,
            keep_alive,
            connect_wait: Duration::from_secs(5),
            started,
            last_tick,
            frozen,
            last_check: parking_lot::Mutex::new(LinkCheck::Fresh),
            ticker,
        };
        let connected = function.wait_connected().await;
        tracing::info!(
            connected,
            ms = started.elapsed().as_millis() as u64,
            "cold start: one MQTT session for this execution environment"
        );
        Ok(function)
    }

    /// What the last invocation did about the link before its request.
    pub fn last_check(&self) -> LinkCheck {
        *self.last_check.lock()
    }

    /// The running gateway (its core, metrics and link).
    pub fn running(&self) -> &Running {
        &self.running
    }

    /// Handles one event: checks the link if the process was frozen, then
    /// hands the request to the gateway's router.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let seen = std::mem::take(&mut *self.frozen.lock());
        let gap = self.since_last_tick().max(seen);
        let check = if gap >= FROZEN_AFTER {
            self.after_freeze(gap).await
        } else {
            LinkCheck::Fresh
        };
        *self.last_check.lock() = check;
        let (mut parts, body) = request.into_parts();
        if let Some(uri) = without_stage(&parts) {
            parts.uri = uri;
        }
        let request =
            lambda_http::http::Request::from_parts(parts, axum::body::Body::from(body.to_vec()));
        let response = match self.app.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        let bytes = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                tracing::warn!(error = %e, "the response body broke off");
                Default::default()
            }
        };
        let body = match String::from_utf8(bytes.to_vec()) {
            Ok(text) if text.is_empty() => Body::Empty,
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        };
        Response::from_parts(parts, body)
    }

    /// What to do about the link after a freeze of `gap`, and doing it.
    pub async fn after_freeze(&self, gap: Duration) -> LinkCheck {
        let t = Instant::now();
        let check = if gap < self.keep_alive {
            match tokio::time::timeout(self.keep_alive, self.running.link.verify()).await {
                Ok(Ok(())) => LinkCheck::Verified,
                _ => self.reconnect().await,
            }
        } else {
            self.reconnect().await
        };
        tracing::info!(
            frozen_ms = gap.as_millis() as u64,
            ?check,
            check_ms = t.elapsed().as_millis() as u64,
            "thawed: the MQTT link checked before publishing"
        );
        check
    }

    async fn reconnect(&self) -> LinkCheck {
        let mut sessions = self.running.gateway.connected();
        self.running.link.reconnect();
        // Down first (the old session ends), then up again.
        let cycle = async {
            let _ = sessions.wait_for(|up| !*up).await;
            let _ = sessions.wait_for(|up| *up).await;
        };
        match tokio::time::timeout(self.connect_wait, cycle).await {
            Ok(()) => LinkCheck::Reconnected,
            Err(_) => LinkCheck::Down,
        }
    }

    async fn wait_connected(&self) -> bool {
        tokio::time::timeout(self.connect_wait, self.running.wait_connected())
            .await
            .is_ok()
    }

    fn since_last_tick(&self) -> Duration {
        let last = Duration::from_millis(self.last_tick.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// Stops the gateway (tests; Lambda ends environments by itself).
    pub async fn stop(self) {
        self.ticker.abort();
        self.running.stop().await;
    }
}

/// The request's URI without API Gateway's stage (`/prod/invoke` ->
/// `/invoke`): lambda_http puts the stage in front of the path, and the
/// gateway's routes are the sample's, with no stage. `None` when there is
/// none to take off.
fn without_stage(parts: &lambda_http::http::request::Parts) -> Option<lambda_http::http::Uri> {
    use lambda_http::request::RequestContext;
    let stage = match parts.extensions.get::<RequestContext>()? {
        RequestContext::ApiGatewayV1(c) => c.stage.as_deref(),
        RequestContext::ApiGatewayV2(c) => c.stage.as_deref(),
        _ => None,
    }?;
    if stage == "$default" {
        return None;
    }
    let path = parts.uri.path();
    let rest = path.strip_prefix('/')?.strip_prefix(stage)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let rest = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    let mut uri = lambda_http::http::uri::Builder::new().path_and_query(path_and_query);
    if let Some(scheme) = parts.uri.scheme() {
        uri = uri.scheme(scheme.clone());
    }
    if let Some(authority) = parts.uri.authority() {
        uri = uri.authority(authority.clone());
    }
    uri.build().ok()
}

/// Records the time every [`TICK`]: a freeze shows as a gap, which the
/// tick after it also notes in `frozen`.
async fn tick(started: Instant, last: Arc<AtomicU64>, frozen: Arc<parking_lot::Mutex<Duration>>) {
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        let now = started.elapsed();
        let gap = now.saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
        if gap >= FROZEN_AFTER {
            let mut longest = frozen.lock();
            *longest = (*longest).max(gap);
        }
        last.store(now.as_millis() as u64, Ordering::Relaxed);
    }
}
