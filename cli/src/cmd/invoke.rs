//! `thingcall invoke`: one call, the device's bytes on stdout unchanged
//! (or, with `-o json`, one object describing the answer), the outcome in
//! the exit code.

use std::io::{IsTerminal, Read};
use std::time::Duration;

use thingcall_client::proto::{Contract, InvokeRequest, InvokeResponse};
use thingcall_client::{exit, CallError};
use tonic::Code;

use super::{write_stdout, Failure};
use crate::cli::{InvokeArgs, Output, PayloadArgs};
use crate::format::{reply as reply_format, time};
use crate::progress;

/// Extra time past `timeout + connect_timeout` before the client stops
/// waiting for a gateway that never answers (the gateway itself reports
/// DEVICE_TIMEOUT well before this).
const GATEWAY_GRACE: Duration = Duration::from_secs(5);

/// Runs the call; `Ok(0)` for a 2xx answer, [`Failure::Status`] (exit 1)
/// for any other status, after the answer was printed.
pub async fn run(
    gateway: &super::Gateway<'_>,
    args: InvokeArgs,
    output: Output,
) -> Result<u8, Failure> {
    let verbose = args.verbose;
    let payload = read_payload(&args.body)?;
    let budget = args
        .timeout
        .saturating_add(args.connect_timeout)
        .saturating_add(GATEWAY_GRACE);
    let req = request(args, payload)?;
    let waiting = format!("{} {}: waiting for the device", req.target, req.method);
    let call = async {
        let mut client = gateway.connect().await?;
        match tokio::time::timeout(budget, client.invoke(req)).await {
            Ok(reply) => reply,
            Err(_) => Err(CallError::new(
                "DEADLINE_EXCEEDED",
                format!(
                    "the gateway did not answer within {}",
                    humantime::format_duration(budget)
                ),
                Code::DeadlineExceeded,
            )),
        }
    };
    let reply = progress::while_waiting(|| waiting, call)
        .await
        .map_err(|err| Failure::Call { err, verbose })?;

    let out = match output {
        Output::Json => format!("{}\n", reply_format::json(&reply)).into_bytes(),
        Output::Text => {
            let mut out = reply.payload.to_vec();
            if std::io::stdout().is_terminal() && !out.is_empty() && !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            out
        }
    };
    write_stdout(&out)?;
    if verbose && output == Output::Text {
        eprintln!("{}", verbose_line(&reply));
    }
    if (200..=299).contains(&reply.status) {
        Ok(exit::OK)
    } else {
        Err(Failure::Status {
            status: reply.status,
            request_id: reply.request_id,
        })
    }
}

/// `--payload`, `--payload-file PATH`, `--payload-file -` (stdin), or empty.
pub fn read_payload(args: &PayloadArgs) -> Result<Vec<u8>, Failure> {
    if let Some(text) = &args.payload {
        return Ok(text.as_bytes().to_vec());
    }
    let Some(path) = &args.payload_file else {
        return Ok(Vec::new());
    };
    let result = if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().lock().read_to_end(&mut buf).map(|_| buf)
    } else {
        std::fs::read(path)
    };
    result.map_err(|e| {
        Failure::local(
            format!("cannot read payload file {}: {e}", path.display()),
            exit::USAGE,
        )
    })
}

/// The request the flags describe. Durations too large for protobuf are a
/// usage error rather than a silent clamp.
fn request(args: InvokeArgs, payload: Vec<u8>) -> Result<InvokeRequest, Failure> {
    let duration = |flag: &str, d: Duration| {
        prost_types::Duration::try_from(d)
            .map_err(|_| Failure::local(format!("--{flag} is out of range"), exit::USAGE))
    };
    Ok(InvokeRequest {
        timeout: Some(duration("timeout", args.timeout)?),
        connect_timeout: Some(duration("connect-timeout", args.connect_timeout)?),
        target: args.target,
        method: args.method,
        payload: payload.into(),
        content_type: args.content_type.unwrap_or_default(),
        idempotency_key: args.idempotency_key.unwrap_or_default(),
        metadata: args.metadata.into_iter().collect(),
        contract: match args.contract.as_deref() {
            Some("seed") => Contract::Seed,
            Some(_) => Contract::Native,
            None => Contract::Unspecified,
        } as i32,
    })
}

/// `status=200 elapsed=1.2ms device_time=0.9ms request_id=...`.
fn verbose_line(reply: &InvokeResponse) -> String {
    format!(
        "status={} elapsed={} device_time={} request_id={}",
        reply.status,
        time::duration(reply.elapsed.as_ref()),
        time::duration(reply.device_time.as_ref()),
        reply.request_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn args(extra: &[&str]) -> InvokeArgs {
        let argv = ["thingcall", "invoke", "demo-1", "echo"]
            .into_iter()
            .chain(extra.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Invoke(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn request_carries_every_flag() {
        let a = args(&[
            "--payload",
            "hi",
            "--timeout",
            "2s",
            "--content-type",
            "text/plain",
            "--metadata",
            "k=v",
            "--idempotency-key",
            "id-1",
        ]);
        let payload = read_payload(&a.body).unwrap();
        let req = request(a, payload).unwrap();
        assert_eq!(req.target, "demo-1");
        assert_eq!(req.method, "echo");
        assert_eq!(&req.payload[..], b"hi");
        assert_eq!(
            req.timeout,
            Some(prost_types::Duration {
                seconds: 2,
                nanos: 0
            })
        );
        assert_eq!(
            req.connect_timeout,
            Some(prost_types::Duration {
                seconds: 0,
                nanos: 0
            })
        );
        assert_eq!(req.content_type, "text/plain");
        assert_eq!(req.idempotency_key, "id-1");
        assert_eq!(req.metadata.get("k").map(String::as_str), Some("v"));
    }

    #[test]
    fn payload_file_is_read_verbatim() {
        let path = std::env::temp_dir().join(format!("thingcall-test-{}", std::process::id()));
        std::fs::write(&path, b"\x00\x01bin\n").unwrap();
        let a = args(&["--payload-file", path.to_str().unwrap()]);
        assert_eq!(read_payload(&a.body).unwrap(), b"\x00\x01bin\n");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn missing_payload_file_is_a_usage_error() {
        let a = args(&["--payload-file", "/nonexistent/thingcall/payload"]);
        match read_payload(&a.body) {
            Err(Failure::Local { exit, message, .. }) => {
                assert_eq!(exit, 2);
                assert!(message.contains("/nonexistent/thingcall/payload"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn verbose_line_format() {
        let reply = InvokeResponse {
            status: 200,
            request_id: "r-1".into(),
            elapsed: Some(prost_types::Duration {
                seconds: 0,
                nanos: 1_200_000,
            }),
            ..Default::default()
        };
        assert_eq!(
            verbose_line(&reply),
            "status=200 elapsed=1.2ms device_time=- request_id=r-1"
        );
    }
}
