//! The chaotic devices: real MQTT clients built with the device SDK
//! (`thingcall-device`), serving one method, `chaos`, whose behaviour for
//! each call comes from the schedule ([`super::plan::device_plan`]) keyed
//! by the call number in the nonce. The SDK's own simulator is left as it
//! is: the chaos lives here, in the harness that checks it.

use std::time::Duration;

use thingcall_device::{spawn_device, DeviceHandle, DeviceOptions, Handlers, Reply, Request};
use thingcall_proto::wire::BrokerUrl;

use super::plan::{device_plan, index_of, Act};

/// The one method the chaos devices serve.
pub const METHOD: &str = "chaos";

/// The id of device number `index` (0-based): `chaos-1`, `chaos-2`, ...
pub fn device_id(index: usize) -> String {
    format!("chaos-{}", index + 1)
}

/// With `--chaos-sabotage`, every this many calls answers another nonce.
pub const SABOTAGE_EVERY: u64 = 100;

/// The `chaos` method: wait the planned latency, then answer the nonce
/// with the planned status, and reboot after the reply when planned. A
/// payload that is no nonce gets status 400, which the checker counts as
/// misrouted (no call of this run sends one). With `sabotage`, every
/// [`SABOTAGE_EVERY`]th call is answered with a neighbour's nonce instead,
/// to show end to end that the checker catches a misroute.
pub fn handlers(seed: u64, sabotage: bool) -> Handlers {
    Handlers::new().method(METHOD, move |req: Request| async move {
        let Some(index) = index_of(&req.payload) else {
            return Reply::status(400, "not a chaos nonce");
        };
        let plan = device_plan(seed, index);
        tokio::time::sleep(plan.latency).await;
        if sabotage && index % SABOTAGE_EVERY == 0 {
            let other = String::from_utf8_lossy(&req.payload).replacen(
                &index.to_string(),
                &(index + 1).to_string(),
                1,
            );
            return Reply::status(plan.status(), other);
        }
        match plan.act {
            Act::Echo => Reply::ok(req.payload),
            Act::Fail => Reply::status(500, req.payload),
            Act::Reboot(downtime) => Reply::ok(req.payload).then_reconnect(downtime),
        }
    })
}

/// Starts `n` devices on `broker` and resolves once every one is online
/// (subscribed, presence acknowledged by the broker), or fails after
/// `within`.
pub async fn start(
    broker: &BrokerUrl,
    n: usize,
    seed: u64,
    sabotage: bool,
    within: Duration,
) -> Result<Vec<DeviceHandle>, String> {
    let handlers = handlers(seed, sabotage);
    let devices: Vec<DeviceHandle> = (0..n)
        .map(|i| spawn_device(DeviceOptions::at(device_id(i), broker), handlers.clone()))
        .collect();
    let online = async {
        for d in &devices {
            d.wait_online().await;
        }
    };
    tokio::time::timeout(within, online).await.map_err(|_| {
        let up = devices.iter().filter(|d| d.is_online()).count();
        format!(
            "only {up} of {n} chaos devices came online on {}:{} within {within:?}",
            broker.host, broker.port
        )
    })?;
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(device_id(0), "chaos-1");
        assert_eq!(device_id(19), "chaos-20");
        assert_eq!(handlers(1, false).names(), [METHOD]);
    }
}
