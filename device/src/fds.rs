//! Open files for processes that hold one socket per peer: the simulator
//! (one MQTT connection per device) and the gateway's port (one per caller
//! connection). Both raise their soft open-file limit to the hard one at
//! start, as servers do, and size themselves from what they got; the
//! simulator refuses a device count it could not connect, instead of
//! failing devices one by one with `EMFILE` half-way through.
//!
//! Raising a hard limit needs privileges this code never asks for: see
//! `docs/scale.md` ("Live connections") for `ulimit -n`, systemd's
//! `LimitNOFILE=` and containers.

/// Descriptors a process running devices keeps for itself besides its
/// devices' sockets: stdio, the async runtime's poller and wake-ups, the
/// signal handlers' pipe, an OTLP exporter's connection, certificate files
/// read while connecting, and a reconnecting device's socket while its old
/// one closes.
pub const DEVICE_HEADROOM: u64 = 64;

/// Raises the soft open-file limit to the hard one and returns the limit
/// now in force (1024 when it cannot be read).
pub fn raise_open_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(_) => rlimit::Resource::NOFILE.get_soft().unwrap_or(1024),
    }
}

/// How many devices, one connection each, fit under an open-file `limit`.
pub fn devices_that_fit(limit: u64) -> u64 {
    limit.saturating_sub(DEVICE_HEADROOM)
}

/// Checks that `devices` connections fit under the open-file `limit` of
/// this process; the error says how many fit and how to get more.
pub fn check_device_count(devices: usize, limit: u64) -> Result<(), String> {
    let fit = devices_that_fit(limit);
    if devices as u64 <= fit {
        return Ok(());
    }
    Err(format!(
        "{devices} devices need {} open files, but this process may open {limit} \
         (its hard limit, `ulimit -Hn`), so at most {fit} devices fit: raise the hard \
         limit (docs/scale.md, \"Live connections\") or split the devices over several \
         simulators with distinct --id-prefix",
        devices as u64 + DEVICE_HEADROOM
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_fit_under_the_limit_less_headroom() {
        assert_eq!(devices_that_fit(20_000), 20_000 - DEVICE_HEADROOM);
        assert_eq!(devices_that_fit(10), 0);
        assert!(check_device_count(19_936, 20_000).is_ok());
        let err = check_device_count(19_937, 20_000).unwrap_err();
        assert!(err.contains("19937 devices need 20001 open files"), "{err}");
        assert!(err.contains("at most 19936 devices fit"), "{err}");
        assert!(check_device_count(1, 10).is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let limit = raise_open_file_limit();
        let (soft, hard) = rlimit::Resource::NOFILE.get().expect("getrlimit");
        assert_eq!(soft, limit);
        // A hard limit above the kernel's nr_open cannot be reached.
        assert!(soft == hard || hard == rlimit::INFINITY, "{soft} of {hard}");
    }
}
