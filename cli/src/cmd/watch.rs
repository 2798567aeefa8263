//! `thingcall watch`: prints the gateway's device event stream, one line
//! per event, until the stream ends or Ctrl-C.

use thingcall_client::{exit, CallError};

use super::{write_stdout, Failure};
use crate::cli::{Output, WatchArgs};
use crate::format::event;

/// Streams until the gateway closes the stream (exit 0), Ctrl-C (exit 0),
/// the reader goes away (exit 0) or the stream fails (its error's code).
pub async fn run(
    gateway: &super::Gateway<'_>,
    args: WatchArgs,
    output: Output,
) -> Result<u8, Failure> {
    let pattern = args.pattern.unwrap_or_default();
    let watching = async {
        let mut client = gateway.connect().await?;
        let mut stream = client.watch(&pattern, args.events).await?;
        while let Some(ev) = stream.message().await.map_err(CallError::from)? {
            let mut line = match output {
                Output::Json => event::json(&ev).to_string(),
                Output::Text => event::line(&ev),
            };
            line.push('\n');
            if !write_stdout(line.as_bytes())? {
                break;
            }
        }
        Ok::<u8, Failure>(exit::OK)
    };
    tokio::select! {
        result = watching => result,
        _ = tokio::signal::ctrl_c() => Ok(exit::OK),
    }
}
