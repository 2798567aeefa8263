//! `thingcall devices` and `thingcall device`: the gateway's presence view.

use thingcall_client::exit;

use super::{write_stdout, Failure};
use crate::cli::{DeviceArgs, DevicesArgs, Output};
use crate::format::device;

/// Every matching device, sorted by id (the gateway sorts too, but the
/// table must not depend on it).
pub async fn list(
    gateway: &super::Gateway<'_>,
    args: DevicesArgs,
    output: Output,
) -> Result<u8, Failure> {
    let mut client = gateway.connect().await?;
    let mut devices = client
        .list_devices(args.pattern.as_deref().unwrap_or_default())
        .await?;
    devices.sort_by(|a, b| a.id.cmp(&b.id));
    let text = match output {
        Output::Json => format!("{}\n", device::json_array(&devices)),
        Output::Text => device::table(&devices),
    };
    write_stdout(text.as_bytes())?;
    Ok(exit::OK)
}

/// One device; an unknown id is whatever error the gateway answers
/// (typically NOT_FOUND, exit 70).
pub async fn show(
    gateway: &super::Gateway<'_>,
    args: DeviceArgs,
    output: Output,
) -> Result<u8, Failure> {
    let mut client = gateway.connect().await?;
    let found = client.get_device(&args.id).await?;
    let text = match output {
        Output::Json => format!("{}\n", device::device_fields(&found)),
        Output::Text => device::details(&found),
    };
    write_stdout(text.as_bytes())?;
    Ok(exit::OK)
}
