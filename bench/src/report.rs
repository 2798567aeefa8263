//! The report of a bench run, as one JSON object or a table for people.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::breakdown::Breakdown;
use super::procstat::Usage;
use super::tally::Tally;

/// The whole result of one bench run.
#[derive(Debug, Clone)]
pub struct Report {
    /// `grpc`, `json`, ...
    pub mode: &'static str,
    /// Calls in flight at once.
    pub concurrency: u16,
    /// Calls made before measuring.
    pub warmup: u64,
    /// The measured calls.
    pub tally: Tally,
    /// `--breakdown`: where the ok calls' time went.
    pub breakdown: Option<Breakdown>,
    /// The measured window: first call started to last call completed.
    pub window: Duration,
    /// Request QoS in the MQTT modes; `None` (the gateway's) otherwise.
    pub qos: Option<u8>,
    /// Payload size of every call.
    pub payload_bytes: usize,
    /// Number of devices called.
    pub targets: usize,
    /// Method called.
    pub method: String,
    /// Deadline of each call.
    pub timeout: Duration,
    /// `--label`.
    pub label: Option<String>,
    /// The watched processes' usage during the window.
    pub usage: Vec<Usage>,
    /// Clock ticks per second used for CPU seconds.
    pub clk_tck: u64,
}

impl Report {
    /// Ok calls per second over the measured window.
    pub fn throughput(&self) -> f64 {
        let secs = self.window.as_secs_f64();
        if secs > 0.0 {
            self.tally.ok() as f64 / secs
        } else {
            0.0
        }
    }

    /// The report as one JSON object (see `thingcall bench --help`).
    pub fn json(&self) -> Value {
        let [p50, p90, p99, p999, max] = self.tally.percentiles_us();
        let mut obj = json!({
            "mode": self.mode,
            "concurrency": self.concurrency,
            "warmup": self.warmup,
            "count": self.tally.count(),
            "duration_s": round(self.window.as_secs_f64(), 6),
            "throughput_per_s": round(self.throughput(), 3),
            "latency_us": {
                "p50": p50, "p90": p90, "p99": p99, "p999": p999, "max": max,
                "mean": round(self.tally.mean_us(), 3),
            },
            "outcomes": self.tally.outcomes(),
            "errors": self.tally.errors(),
            "qos": self.qos,
            "payload_bytes": self.payload_bytes,
            "targets": self.targets,
            "method": self.method,
            "timeout_s": self.timeout.as_secs_f64(),
            "label": self.label,
        });
        let fields = obj.as_object_mut().expect("an object");
        let cpu: Map<String, Value> = self
            .usage
            .iter()
            .filter_map(|u| Some((u.name.clone(), json!(round(u.cpu_s?, 3)))))
            .collect();
        if !cpu.is_empty() {
            let calls = self.tally.count().max(1) as f64;
            let per_call: Map<String, Value> = cpu
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), json!(round(v.as_f64()? * 1e6 / calls, 2)))))
                .collect();
            fields.insert("cpu_us_per_call".into(), Value::Object(per_call));
            fields.insert("cpu_s".into(), Value::Object(cpu));
            fields.insert("clk_tck".into(), self.clk_tck.into());
        }
        let rss: Map<String, Value> = self
            .usage
            .iter()
            .filter_map(|u| Some((u.name.clone(), json!(u.peak_rss_kib?))))
            .collect();
        if let Some(gateway) = rss.get("gateway") {
            fields.insert("gateway_peak_rss_kib".into(), gateway.clone());
        }
        if !rss.is_empty() {
            fields.insert("peak_rss_kib".into(), Value::Object(rss));
        }
        if let Some(b) = &self.breakdown {
            fields.insert("breakdown_us".into(), b.json());
        }
        obj
    }

    /// The report as a small table for people.
    pub fn table(&self) -> String {
        let [p50, p90, p99, p999, max] = self.tally.percentiles_us();
        let mut t = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(t, "{k:<14}{v}");
        };
        let qos = self.qos.map_or("gateway's".to_owned(), |q| q.to_string());
        row("mode", self.mode.to_owned());
        row(
            "calls",
            format!(
                "{} in {:.3} s, concurrency {}, {} target(s), method {}, payload {} B, qos {qos}",
                self.tally.count(),
                self.window.as_secs_f64(),
                self.concurrency,
                self.targets,
                self.method,
                self.payload_bytes,
            ),
        );
        row("throughput", format!("{:.1} ok calls/s", self.throughput()));
        row(
            "latency (µs)",
            format!("p50 {p50}  p90 {p90}  p99 {p99}  p99.9 {p999}  max {max}"),
        );
        let outcomes: Vec<String> = self
            .tally
            .outcomes()
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        row("outcomes", outcomes.join("  "));
        for u in &self.usage {
            let calls = self.tally.count().max(1) as f64;
            let cpu = u.cpu_s.map_or("gone".to_owned(), |s| {
                format!("{s:.2} s CPU, {:.1} µs/call", s * 1e6 / calls)
            });
            let rss = u
                .peak_rss_kib
                .map_or(String::new(), |k| format!(", peak RSS {k} KiB"));
            row(&u.name, format!("{cpu}{rss}"));
        }
        if let Some(label) = &self.label {
            row("label", label.clone());
        }
        if let Some(b) = &self.breakdown {
            t.push_str(&b.table(self.tally.ok()));
        }
        t
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breakdown::tests::sample_breakdown;
    use crate::tally::tests::sample_tally;

    fn sample() -> Report {
        let a = sample_tally();
        Report {
            mode: "grpc",
            concurrency: 8,
            warmup: 0,
            tally: a,
            breakdown: None,
            window: Duration::from_secs(2),
            qos: None,
            payload_bytes: 16,
            targets: 2,
            method: "echo".into(),
            timeout: Duration::from_secs(10),
            label: Some("run 1".into()),
            usage: vec![
                Usage {
                    name: "gateway".into(),
                    cpu_s: Some(0.5),
                    peak_rss_kib: Some(2048),
                },
                Usage {
                    name: "broker".into(),
                    cpu_s: Some(0.25),
                    peak_rss_kib: None,
                },
            ],
            clk_tck: 100,
        }
    }

    #[test]
    fn json_shape() {
        let j = sample().json();
        assert_eq!(j["mode"], "grpc");
        assert_eq!(j["concurrency"], 8);
        assert_eq!(j["count"], 1001);
        assert_eq!(j["duration_s"], 2.0);
        assert_eq!(j["throughput_per_s"], 450.0);
        for k in ["p50", "p90", "p99", "p999", "max", "mean"] {
            assert!(j["latency_us"][k].is_number(), "{k}");
        }
        assert_eq!(j["outcomes"]["ok"], 900);
        assert_eq!(j["outcomes"]["DEVICE_STATUS_500"], 100);
        assert_eq!(j["errors"], 101);
        assert_eq!(j["qos"], Value::Null);
        assert_eq!(j["payload_bytes"], 16);
        assert_eq!(j["targets"], 2);
        assert_eq!(j["method"], "echo");
        assert_eq!(j["label"], "run 1");
        assert_eq!(j["cpu_s"]["gateway"], 0.5);
        assert_eq!(j["cpu_s"]["broker"], 0.25);
        assert_eq!(j["gateway_peak_rss_kib"], 2048);
        assert_eq!(j["clk_tck"], 100);
        // 0.5 s over 1001 calls.
        assert_eq!(j["cpu_us_per_call"]["gateway"], 499.5);

        let mut bare = sample();
        bare.usage.clear();
        bare.qos = Some(0);
        let j = bare.json();
        assert!(j.get("cpu_s").is_none() && j.get("gateway_peak_rss_kib").is_none());
        assert_eq!(j["qos"], 0);
        assert!(j.get("breakdown_us").is_none());
    }

    #[test]
    fn breakdown_when_asked() {
        let mut r = sample();
        r.breakdown = Some(sample_breakdown());
        let j = r.json();
        assert_eq!(j["breakdown_us"]["calls"], 100);
        assert_eq!(j["breakdown_us"]["gateway"]["p50"], 300);
        assert_eq!(j["latency_us"], sample().json()["latency_us"]);
        let t = r.table();
        assert!(t.starts_with(&sample().table()), "{t}");
        assert!(
            t.contains("broker+network") && t.contains("100 of 900 ok calls"),
            "{t}"
        );
    }

    #[test]
    fn table_names_every_figure() {
        let t = sample().table();
        for needle in [
            "grpc",
            "450.0 ok calls/s",
            "DEVICE_STATUS_500 100",
            "ok 900",
            "gateway",
            "2048 KiB",
            "499.5 µs/call",
            "run 1",
        ] {
            assert!(t.contains(needle), "{needle} missing from\n{t}");
        }
    }
}
