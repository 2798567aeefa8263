//! `--breakdown`: where each ok call's time went. The latency the bench
//! measures is one number; the gateway's reply says how much of it the
//! device spent executing (`exec-us`) and how long the gateway waited for
//! the reply, so each call splits into the caller <-> gateway hop plus the
//! gateway's own work, the MQTT path through the broker, and the device.
//! Without a gateway (raw-mqtt, conn-per-request) only the device and
//! everything else remain. Kept per worker and merged, like the latency.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use super::tally::{latency_histogram, micros, quantiles_us};

/// What a reply said about where its time went, read only with
/// `--breakdown` so the hot path does no extra work without it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// The gateway's `elapsed`: from receiving the call to the device's
    /// reply arriving (gateway modes only).
    pub gateway: Option<Duration>,
    /// The device's own execution time (its `exec-us`).
    pub device: Option<Duration>,
}

/// One part of a call's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// Caller's latency minus the gateway's elapsed: the HTTP hop both
    /// ways and the gateway's work before publishing and after the reply.
    Gateway,
    /// The gateway's elapsed (or, without a gateway, the caller's latency)
    /// minus the device time: publish, broker, delivery and the way back.
    Network,
    /// The device's execution time.
    Device,
}

impl Component {
    /// The key under `breakdown_us` in the JSON report.
    pub fn key(self) -> &'static str {
        match self {
            Component::Gateway => "gateway",
            Component::Network => "network",
            Component::Device => "device",
        }
    }

    /// The row name in the table.
    pub fn label(self) -> &'static str {
        match self {
            Component::Gateway => "gateway+caller",
            Component::Network => "broker+network",
            Component::Device => "device",
        }
    }
}

/// One histogram (µs) per component, over the ok calls whose reply carried
/// every figure the mode needs; calls without them are left out, so all
/// histograms hold the same calls.
#[derive(Debug, Clone)]
pub struct Breakdown {
    /// `None` in the modes without a gateway.
    gateway: Option<Histogram<u64>>,
    network: Histogram<u64>,
    device: Histogram<u64>,
}

impl Breakdown {
    /// An empty breakdown; `through_gateway` says whether the calls go
    /// through the gateway (and so have a gateway component).
    pub fn new(through_gateway: bool) -> Breakdown {
        Breakdown {
            gateway: through_gateway.then(latency_histogram),
            network: latency_histogram(),
            device: latency_histogram(),
        }
    }

    /// Records an ok call that took `total` as the caller measured it;
    /// returns whether `figures` had what the mode needs. A component that
    /// would come out negative (clocks of separate processes rounding
    /// differently) counts as 0.
    pub fn record(&mut self, total: Duration, figures: Figures) -> bool {
        let Some(device) = figures.device else {
            return false;
        };
        let beyond_device = match &mut self.gateway {
            Some(gateway) => {
                let Some(elapsed) = figures.gateway else {
                    return false;
                };
                gateway.saturating_record(micros(total.saturating_sub(elapsed)));
                elapsed
            }
            None => total,
        };
        self.network
            .saturating_record(micros(beyond_device.saturating_sub(device)));
        self.device.saturating_record(micros(device));
        true
    }

    /// Adds `other`'s calls to these (both made by the same [`Breakdown::new`]).
    pub fn merge(&mut self, other: Breakdown) {
        const SAME: &str = "histograms with the same bounds add up";
        if let (Some(mine), Some(theirs)) = (&mut self.gateway, &other.gateway) {
            mine.add(theirs).expect(SAME);
        }
        self.network.add(&other.network).expect(SAME);
        self.device.add(&other.device).expect(SAME);
    }

    /// Calls with figures.
    pub fn calls(&self) -> u64 {
        self.device.len()
    }

    /// The components that apply, in table order, with p50, p90, p99 and
    /// p99.9 in µs (zeros without calls, like the latency).
    pub fn percentiles_us(&self) -> Vec<(Component, [u64; 4])> {
        let parts = [
            (Component::Gateway, self.gateway.as_ref()),
            (Component::Network, Some(&self.network)),
            (Component::Device, Some(&self.device)),
        ];
        parts
            .into_iter()
            .filter_map(|(c, h)| Some((c, quantiles_us(h?))))
            .collect()
    }

    /// `{"gateway": {"p50":..,"p90":..,"p99":..,"p999":..}, "network": ..,
    /// "device": .., "calls": n}`, without the components that do not apply.
    pub fn json(&self) -> Value {
        let mut obj = Map::new();
        for (c, [p50, p90, p99, p999]) in self.percentiles_us() {
            obj.insert(
                c.key().to_owned(),
                json!({"p50": p50, "p90": p90, "p99": p99, "p999": p999}),
            );
        }
        obj.insert("calls".to_owned(), self.calls().into());
        Value::Object(obj)
    }

    /// The table printed after the report's, for `ok` ok calls in all.
    pub fn table(&self, ok: u64) -> String {
        let mut t = String::from("\n");
        if self.calls() == 0 {
            let _ = writeln!(t, "{:<20}none", "breakdown (µs)");
        } else {
            let _ = writeln!(
                t,
                "{:<20}{:>8}{:>8}{:>8}{:>8}",
                "breakdown (µs)", "p50", "p90", "p99", "p99.9"
            );
            for (c, [p50, p90, p99, p999]) in self.percentiles_us() {
                let _ = writeln!(t, "{:<20}{p50:>8}{p90:>8}{p99:>8}{p999:>8}", c.label());
            }
        }
        let _ = writeln!(
            t,
            "{:<20}{} of {ok} ok calls",
            "calls with figures",
            self.calls()
        );
        t
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// Through a gateway: 100 calls of 1000 µs where the gateway waited
    /// 700 µs and the device ran 100 µs, split over two workers, plus one
    /// call without a device time.
    pub fn sample_breakdown() -> Breakdown {
        let mut a = Breakdown::new(true);
        let mut b = Breakdown::new(true);
        let figures = Figures {
            gateway: Some(us(700)),
            device: Some(us(100)),
        };
        for i in 0..100 {
            let w = if i % 2 == 0 { &mut a } else { &mut b };
            assert!(w.record(us(1000), figures));
        }
        let no_device = Figures {
            gateway: Some(us(700)),
            device: None,
        };
        assert!(!b.record(us(1000), no_device));
        a.merge(b);
        a
    }

    #[test]
    fn splits_a_call_through_the_gateway() {
        let b = sample_breakdown();
        assert_eq!(b.calls(), 100);
        let rows = b.percentiles_us();
        let parts: Vec<_> = rows.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            parts,
            [Component::Gateway, Component::Network, Component::Device]
        );
        assert_eq!(rows[0].1, [300; 4]);
        assert_eq!(rows[1].1, [600; 4]);
        assert_eq!(rows[2].1, [100; 4]);
    }

    #[test]
    fn without_a_gateway_the_rest_is_network() {
        let mut b = Breakdown::new(false);
        // A gateway figure is ignored; a missing device time leaves the call out.
        let with = Figures {
            gateway: Some(us(1)),
            device: Some(us(250)),
        };
        assert!(b.record(us(1000), with));
        assert!(!b.record(us(1000), Figures::default()));
        let rows = b.percentiles_us();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], (Component::Network, [750; 4]));
        assert_eq!(rows[1], (Component::Device, [250; 4]));
        assert_eq!(b.calls(), 1);
    }

    #[test]
    fn negative_parts_count_as_zero() {
        let mut b = Breakdown::new(true);
        let odd = Figures {
            gateway: Some(us(1200)),
            device: Some(us(1300)),
        };
        assert!(b.record(us(1000), odd));
        let rows = b.percentiles_us();
        assert_eq!(rows[0].1, [0; 4]);
        assert_eq!(rows[1].1, [0; 4]);
        assert_eq!(rows[2].1[0], 1300);
        // A gateway mode needs the gateway's elapsed too.
        let no_elapsed = Figures {
            gateway: None,
            device: Some(us(1)),
        };
        assert!(!b.record(us(1000), no_elapsed));
        assert_eq!(b.calls(), 1);
    }

    #[test]
    fn json_and_table() {
        let j = sample_breakdown().json();
        assert_eq!(j["calls"], 100);
        assert_eq!(j["gateway"]["p50"], 300);
        assert_eq!(j["network"]["p999"], 600);
        assert_eq!(j["device"]["p90"], 100);
        let j = Breakdown::new(false).json();
        assert!(j.get("gateway").is_none(), "{j}");
        assert_eq!(j["calls"], 0);
        assert_eq!(j["device"]["p99"], 0);

        let t = sample_breakdown().table(101);
        for needle in [
            "breakdown (µs)",
            "p99.9",
            "gateway+caller",
            "broker+network",
            "device",
            "100 of 101 ok calls",
        ] {
            assert!(t.contains(needle), "{needle} missing from\n{t}");
        }
        let t = Breakdown::new(false).table(5);
        assert!(
            !t.contains("gateway+caller") && !t.contains("device "),
            "{t}"
        );
        assert!(t.contains("0 of 5 ok calls") && t.contains("none"), "{t}");
        assert!(!t.contains("p50"), "{t}");
    }
}
