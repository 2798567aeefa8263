//! The five ways of making a call. Each mode connects once ([`Caller`]),
//! hands every worker task its own handle ([`Worker`]), and turns each
//! call's result into an [`Outcome`] (and, with `--breakdown`, the
//! [`Figures`] its reply carried).

mod conn_per_request;
mod grpc;
mod grpc_web;
mod invoke;
mod json;
mod raw_mqtt;

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use thingcall_client::CallError;

use super::args::Mode;
use super::breakdown::Figures;
use super::mqtt::Broker;
use super::tally::Outcome;
use super::Setup;

/// How long past `--timeout` a gateway mode waits for the gateway's answer
/// before counting `CLIENT_TIMEOUT` (the gateway itself answers
/// `DEVICE_TIMEOUT` at the deadline).
pub const GATEWAY_GRACE: Duration = Duration::from_secs(5);

/// What every call sends, built once before the first call.
#[derive(Debug)]
pub struct CallSpec {
    /// Device ids, called round-robin by index.
    pub targets: Vec<String>,
    /// Method name.
    pub method: String,
    /// The payload, the same for every call.
    pub payload: Bytes,
    /// Deadline of each call.
    pub timeout: Duration,
    /// `--breakdown`: read the timing figures of each reply. Off, the
    /// modes skip that work and return empty [`Figures`].
    pub breakdown: bool,
    /// `--idempotency-keys`: this run's key prefix and the next key's number.
    pub keys: Option<(String, AtomicU64)>,
}

/// How one call ended, with what its reply said about where the time went
/// (empty without `--breakdown`, or when the call failed).
#[derive(Debug)]
pub struct Done {
    /// The call's outcome.
    pub outcome: Outcome,
    /// The reply's timing figures.
    pub figures: Figures,
}

impl From<Outcome> for Done {
    fn from(outcome: Outcome) -> Done {
        Done {
            outcome,
            figures: Figures::default(),
        }
    }
}

/// How the MQTT modes reach the broker and address the devices.
#[derive(Clone)]
pub struct MqttSetup {
    /// Broker address and TLS.
    pub broker: Broker,
    /// Topic root of the wire contract.
    pub topic_root: String,
    /// Request QoS (0 or 1).
    pub qos: u8,
}

/// A connected mode, shared by the workers.
pub enum Caller {
    /// gRPC over h2c.
    Grpc(grpc::Grpc),
    /// HTTP/JSON over HTTP/1.1.
    Json(json::Json),
    /// gRPC-web over HTTP/1.1.
    GrpcWeb(Box<grpc_web::GrpcWeb>),
    /// The wire contract over one MQTT connection.
    RawMqtt(raw_mqtt::RawMqtt),
    /// A fresh MQTT connection per call.
    ConnPerRequest(conn_per_request::ConnPerRequest),
}

/// One worker's handle on a [`Caller`].
pub enum Worker {
    /// See [`Caller::Grpc`].
    Grpc(Box<grpc::Worker>),
    /// See [`Caller::Json`].
    Json(json::Worker),
    /// See [`Caller::GrpcWeb`].
    GrpcWeb(Box<grpc_web::Worker>),
    /// See [`Caller::RawMqtt`].
    RawMqtt(raw_mqtt::Worker),
    /// See [`Caller::ConnPerRequest`].
    ConnPerRequest(conn_per_request::Worker),
}

impl Caller {
    /// Connects `mode` for `concurrency` workers: to the gateway at
    /// `server`, or to the broker in `mqtt`. Nothing reachable is
    /// [`Setup::Unreachable`].
    pub async fn connect(
        mode: Mode,
        server: &str,
        spec: Arc<CallSpec>,
        mqtt: MqttSetup,
        concurrency: u16,
    ) -> Result<Caller, Setup> {
        Ok(match mode {
            Mode::Grpc | Mode::GrpcChannel => {
                Caller::Grpc(grpc::Grpc::connect(server, spec, concurrency, mode).await?)
            }
            // Not a task-per-worker mode: see `crate::frames`.
            Mode::H2 => return Err(Setup::Other("--mode h2 has no task workers".into())),
            Mode::Json => Caller::Json(json::Json::connect(server, spec, concurrency).await?),
            Mode::GrpcWeb => {
                Caller::GrpcWeb(Box::new(grpc_web::GrpcWeb::connect(server, spec).await?))
            }
            Mode::RawMqtt => {
                Caller::RawMqtt(raw_mqtt::RawMqtt::connect(spec, mqtt, concurrency).await?)
            }
            Mode::ConnPerRequest => {
                Caller::ConnPerRequest(conn_per_request::ConnPerRequest::connect(spec, mqtt).await?)
            }
        })
    }

    /// The handle of worker number `index`.
    pub fn worker(&self, index: usize) -> Worker {
        match self {
            Caller::Grpc(c) => Worker::Grpc(Box::new(c.worker(index))),
            Caller::Json(c) => Worker::Json(c.worker()),
            Caller::GrpcWeb(c) => Worker::GrpcWeb(Box::new(c.worker())),
            Caller::RawMqtt(c) => Worker::RawMqtt(c.worker()),
            Caller::ConnPerRequest(c) => Worker::ConnPerRequest(c.worker()),
        }
    }

    /// Closes what needs a goodbye (the raw-mqtt connection).
    pub async fn close(self) {
        if let Caller::RawMqtt(c) = self {
            c.close().await;
        }
    }
}

impl Worker {
    /// Makes one call to the target with index `target`.
    pub async fn call(&mut self, target: usize) -> Done {
        match self {
            Worker::Grpc(w) => w.call(target).await,
            Worker::Json(w) => w.call(target).await,
            Worker::GrpcWeb(w) => w.call(target).await,
            Worker::RawMqtt(w) => w.call(target).await,
            Worker::ConnPerRequest(w) => w.call(target).await,
        }
    }
}

/// The outcome of a failed gRPC or gRPC-web call: the gateway's ErrorInfo
/// reason, `TRANSPORT` when the gateway could not be reached, else the
/// gRPC code's name.
pub fn status_outcome(status: tonic::Status) -> Outcome {
    let err = CallError::from(status);
    if err.is_unreachable() {
        Outcome::TRANSPORT
    } else {
        Outcome::named(err.reason)
    }
}

/// Runs `call`, giving up with `CLIENT_TIMEOUT` at `timeout` plus
/// [`GATEWAY_GRACE`].
pub async fn guarded(timeout: Duration, call: impl Future<Output = Done>) -> Done {
    tokio::time::timeout(timeout + GATEWAY_GRACE, call)
        .await
        .unwrap_or_else(|_| Outcome::CLIENT_TIMEOUT.into())
}

/// Checks that the gateway at `server` answers a gRPC connection, for the
/// modes whose own clients connect lazily.
pub async fn probe_gateway(server: &str) -> Result<(), Setup> {
    thingcall_client::Client::connect(server)
        .await
        .map(drop)
        .map_err(Setup::from_call)
}

/// A name for one bench run, `bench-` and 12 hex digits of `id`: client
/// ids, reply topics and idempotency keys of different runs never meet.
pub fn run_id(id: &uuid::Uuid) -> String {
    format!("bench-{}", &id.simple().to_string()[..12])
}

#[cfg(test)]
mod tests {
    use super::invoke::invoke_done;
    use super::*;
    use std::collections::HashMap;
    use tonic::Code;
    use tonic_types::{ErrorDetails, StatusExt};

    #[test]
    fn gateway_reasons_become_outcomes() {
        let status = tonic::Status::with_error_details(
            Code::DeadlineExceeded,
            "no reply",
            ErrorDetails::with_error_info("DEVICE_TIMEOUT", "thingcall", HashMap::new()),
        );
        assert_eq!(status_outcome(status), Outcome::DEVICE_TIMEOUT);
        assert_eq!(
            status_outcome(tonic::Status::not_found("x")).name(),
            "NOT_FOUND"
        );
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let status = tonic::Status::from_error(Box::new(tonic::ConnectError(Box::new(io))));
        assert_eq!(status_outcome(status), Outcome::TRANSPORT);
    }

    #[test]
    fn figures_only_with_breakdown() {
        let reply = |device_nanos: i32| {
            Ok(tonic::Response::new(
                thingcall_client::proto::InvokeResponse {
                    status: 200,
                    elapsed: Some(prost_types::Duration {
                        seconds: 0,
                        nanos: 850_000,
                    }),
                    device_time: Some(prost_types::Duration {
                        seconds: 0,
                        nanos: device_nanos,
                    }),
                    ..Default::default()
                },
            ))
        };
        let done = invoke_done(reply(123_000), false);
        assert_eq!(done.outcome, Outcome::Ok);
        assert_eq!(done.figures, Figures::default());
        let done = invoke_done(reply(123_000), true);
        assert_eq!(
            done.figures,
            Figures {
                gateway: Some(Duration::from_micros(850)),
                device: Some(Duration::from_micros(123)),
            }
        );
        // A negative duration is no figure.
        assert_eq!(invoke_done(reply(-1), true).figures.device, None);
        let failed = invoke_done(Err(tonic::Status::not_found("x")), true);
        assert_eq!(failed.outcome.name(), "NOT_FOUND");
        assert_eq!(failed.figures, Figures::default());
    }
}
