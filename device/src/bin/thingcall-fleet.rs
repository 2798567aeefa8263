#![forbid(unsafe_code)]
//! `thingcall-fleet`: puts retained presence for many devices on a broker
//! (or clears it) over one connection, to try a gateway with a fleet far
//! larger than one machine can connect. See `docs/scale.md`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use thingcall_device::fleet::{load, FleetPlan};
use thingcall_proto::wire::BrokerUrl;

/// Exit status for bad flags or values (BSD `EX_USAGE`).
const EX_USAGE: u8 = 64;
/// Exit status when the broker cannot be reached (BSD `EX_UNAVAILABLE`).
const EX_UNAVAILABLE: u8 = 69;

/// Publishes retained online presence for devices <ID_PREFIX>1..<ID_PREFIX>N
/// over one MQTT connection, so a gateway tracks a fleet with no device
/// connected (calls to them time out). --clear removes the same documents.
/// Prints one line when the broker has stored them all.
#[derive(Debug, Parser)]
#[command(name = "thingcall-fleet", version)]
struct Cli {
    /// Broker URL: mqtt://host:port or mqtts://host:port.
    #[arg(
        long,
        env = "THINGCALL_MQTT_URL",
        default_value = "mqtt://127.0.0.1:1883"
    )]
    mqtt_url: String,
    /// Number of devices.
    #[arg(long, default_value_t = 1_000_000)]
    devices: u64,
    /// Prefix of the device ids.
    #[arg(long, default_value = "fleet-")]
    id_prefix: String,
    /// Topic root shared with the gateway.
    #[arg(long, env = "THINGCALL_TOPIC_ROOT", default_value = "thingcall")]
    topic_root: String,
    /// Methods each device's presence lists (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "echo,reboot")]
    methods: Vec<String>,
    /// Clear the retained presence of these devices instead.
    #[arg(long)]
    clear: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let broker = match BrokerUrl::parse(&cli.mqtt_url) {
        Ok(b) if b.websocket.is_none() => b,
        Ok(_) => return usage("--mqtt-url: WebSockets are not supported here"),
        Err(e) => return usage(&e),
    };
    let plan = FleetPlan {
        broker,
        prefix: cli.id_prefix,
        count: cli.devices,
        topic_root: cli.topic_root,
        methods: cli.methods,
        clear: cli.clear,
    };
    if let Err(e) = plan.validate() {
        return usage(&e);
    }
    let what = if plan.clear { "cleared" } else { "loaded" };
    let total = plan.count;
    match load(&plan, |n| {
        eprintln!("thingcall-fleet: {n} of {total} published")
    })
    .await
    {
        Ok(done) => {
            let secs = done.took.max(Duration::from_millis(1)).as_secs_f64();
            println!(
                "{what} {} retained presence documents ({}..{}) in {:.1} s ({:.0}/s)",
                done.published,
                plan.device(1),
                plan.device(plan.count),
                secs,
                done.published as f64 / secs
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("thingcall-fleet: {e}");
            ExitCode::from(EX_UNAVAILABLE)
        }
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("thingcall-fleet: {message}");
    ExitCode::from(EX_USAGE)
}
