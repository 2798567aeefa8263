//! `thingcall invoke-many`: one method on many devices through InvokeMany,
//! with a progress bar for a person at a terminal and a summary at the end
//! (or, with `-o json`, one JSON object per event).

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use thingcall_client::proto::{
    invoke_many_event::Kind, AbortPolicy, Contract, DeviceResult, InvokeManyRequest, OfflinePolicy,
    Ramp,
};
use thingcall_client::{exit, CallError};

use super::invoke::read_payload;
use super::{write_stdout, Failure};
use crate::cli::{InvokeManyArgs, Output};
use crate::format::fanout;

/// Streams the fan-out: exit 0 when it completed with every device OK,
/// 1 when any failed or it was aborted (the summary says which), the
/// refusal's own code when the gateway refused it whole.
pub async fn run(
    gateway: &super::Gateway<'_>,
    args: InvokeManyArgs,
    output: Output,
) -> Result<u8, Failure> {
    let req = request(args)?;
    let total = (!req.targets.is_empty()).then_some(req.targets.len() as u64);
    let mut client = gateway.connect().await?;
    let mut stream = client.invoke_many(req).await?;
    let bar = progress(total, output);
    let mut failures: Vec<DeviceResult> = Vec::new();
    let mut failed = 0u32;
    let streaming = async {
        while let Some(ev) = stream.message().await.map_err(CallError::from)? {
            match ev.kind {
                Some(Kind::Result(r)) => {
                    bar.inc(1);
                    if r.outcome != "OK" {
                        failed += 1;
                        bar.set_message(format!("{failed} failed"));
                    }
                    if output == Output::Json {
                        let line = format!("{}\n", fanout::result_json(&r));
                        if !write_stdout(line.as_bytes())? {
                            return Ok(None);
                        }
                    } else if r.outcome != "OK" && failures.len() < fanout::LISTED_FAILURES {
                        failures.push(r);
                    }
                }
                Some(Kind::Summary(s)) => return Ok(Some(s)),
                None => {}
            }
        }
        Err(Failure::Call {
            err: CallError::new(
                "INTERNAL",
                "the gateway ended the fan-out without a summary",
                tonic::Code::Internal,
            ),
            verbose: false,
        })
    };
    let summary = tokio::select! {
        s = streaming => s,
        _ = tokio::signal::ctrl_c() => {
            bar.finish_and_clear();
            return Err(Failure::local(
                "cancelled: the gateway starts no more calls; calls already sent finish on their own",
                1,
            ));
        }
    };
    bar.finish_and_clear();
    let Some(summary) = summary? else {
        return Ok(exit::OK);
    };
    let text = match output {
        Output::Json => format!("{}\n", fanout::summary_json(&summary)),
        Output::Text => fanout::report(&failures, summary.failed, &summary),
    };
    write_stdout(text.as_bytes())?;
    Ok(if summary.failed == 0 && summary.ended == "COMPLETED" {
        exit::OK
    } else {
        exit::DEVICE_STATUS
    })
}

/// A bar (with a known number of devices) or a counter (a glob), on stderr
/// only for a person at a terminal; hidden otherwise.
fn progress(total: Option<u64>, output: Output) -> ProgressBar {
    if output == Output::Json || !thingcall_bench::progress::allowed() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let template = match total {
        Some(_) => "[{bar:30}] {pos}/{len} devices  {msg}  {per_sec}  {elapsed}",
        None => "{spinner} {pos} devices  {msg}  {per_sec}  {elapsed}",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// The request the flags describe; `@FILE` reads ids, one per line
/// (blank lines and `#` comments skipped).
fn request(args: InvokeManyArgs) -> Result<InvokeManyRequest, Failure> {
    let payload = read_payload(&args.body)?;
    let (targets, pattern) = match args.targets.strip_prefix('@') {
        Some(path) => (read_ids(Path::new(path))?, String::new()),
        None => (Vec::new(), args.targets),
    };
    let duration = |flag: &str, d: Duration| {
        prost_types::Duration::try_from(d)
            .map_err(|_| Failure::local(format!("--{flag} is out of range"), exit::USAGE))
    };
    let offline = match args.offline.as_str() {
        "skip" => OfflinePolicy::Skip,
        "wait" => OfflinePolicy::Wait,
        _ => OfflinePolicy::Report,
    };
    Ok(InvokeManyRequest {
        targets,
        pattern,
        method: args.method,
        payload: payload.into(),
        timeout: Some(duration("timeout", args.timeout)?),
        connect_timeout: args
            .connect_timeout
            .map(|d| duration("connect-timeout", d))
            .transpose()?,
        content_type: args.content_type.unwrap_or_default(),
        metadata: args.metadata.into_iter().collect(),
        contract: match args.contract.as_deref() {
            Some("seed") => Contract::Seed,
            Some(_) => Contract::Native,
            None => Contract::Unspecified,
        } as i32,
        offline: offline as i32,
        max_concurrency: args.max_concurrency,
        rate: args.rate,
        ramp: args.ramp.map(|(start_rate, factor, step_successes)| Ramp {
            start_rate,
            factor,
            step_successes,
        }),
        abort: args.abort.map(|(failure_ratio, min_results)| AbortPolicy {
            failure_ratio,
            min_results,
        }),
        idempotency_key: args.idempotency_key.unwrap_or_default(),
    })
}

fn read_ids(path: &Path) -> Result<Vec<String>, Failure> {
    let text = if path.as_os_str() == "-" {
        let mut buf = String::new();
        std::io::stdin()
            .lock()
            .read_to_string(&mut buf)
            .map(|_| buf)
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| {
        Failure::local(
            format!("cannot read device ids from {}: {e}", path.display()),
            exit::USAGE,
        )
    })?;
    let ids: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        return Err(Failure::local(
            format!("{} lists no device ids", path.display()),
            exit::USAGE,
        ));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn args(extra: &[&str]) -> InvokeManyArgs {
        let argv = ["thingcall", "invoke-many"]
            .into_iter()
            .chain(extra.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::InvokeMany(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_make_the_request() {
        let r = request(args(&[
            "pump-*",
            "reboot",
            "--rate",
            "100",
            "--max-concurrency",
            "50",
            "--ramp",
            "10,2,50",
            "--abort",
            "0.1,20",
            "--offline",
            "skip",
            "--idempotency-key",
            "k",
            "--payload",
            "1",
        ]))
        .unwrap();
        assert_eq!(
            (r.pattern.as_str(), r.method.as_str()),
            ("pump-*", "reboot")
        );
        assert!(r.targets.is_empty());
        assert_eq!((r.rate, r.max_concurrency), (100.0, 50));
        assert_eq!(r.ramp.unwrap().step_successes, 50);
        assert_eq!(r.abort.unwrap().min_results, 20);
        assert_eq!(r.offline, OfflinePolicy::Skip as i32);
        assert_eq!(r.idempotency_key, "k");
        assert_eq!(&r.payload[..], b"1");
        assert_eq!(r.timeout.unwrap().seconds, 5);
    }

    #[test]
    fn at_file_reads_ids() {
        let path = std::env::temp_dir().join(format!("thingcall-ids-{}", std::process::id()));
        std::fs::write(&path, "a\n\n# comment\n b \n").unwrap();
        let r = request(args(&[&format!("@{}", path.display()), "m"])).unwrap();
        assert_eq!(r.targets, ["a", "b"]);
        assert!(r.pattern.is_empty());
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(matches!(
            request(args(&[&format!("@{}", path.display()), "m"])),
            Err(Failure::Local { exit: 2, .. })
        ));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn malformed_controls_are_usage_errors() {
        for bad in [
            ["--ramp", "10,2"],
            ["--abort", "half"],
            ["--offline", "never"],
        ] {
            let argv = ["thingcall", "invoke-many", "p-*", "m", bad[0], bad[1]];
            assert!(Cli::try_parse_from(argv).is_err(), "{bad:?}");
        }
    }
}
