//! CPU time and peak memory of other processes (the gateway, the broker),
//! read from Linux's /proc: `utime + stime` of `/proc/PID/stat` in clock
//! ticks, and `VmHWM` of `/proc/PID/status` in KiB.

use std::io;

/// Clock ticks per second assumed when `getconf CLK_TCK` cannot be run
/// (the value on every common Linux configuration).
pub const DEFAULT_CLK_TCK: u64 = 100;

/// User plus system CPU time in clock ticks from a `/proc/PID/stat` line.
/// The command name (field 2) may hold spaces and parentheses, so fields
/// are counted from the last `)`: utime and stime are fields 14 and 15.
pub fn parse_stat_ticks(line: &str) -> Option<u64> {
    let after_comm = &line[line.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace();
    // after_comm starts at field 3 (state); utime is field 14.
    let utime: u64 = fields.nth(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmHWM` (peak resident set size) in KiB from a `/proc/PID/status` text.
pub fn parse_vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// CPU ticks used so far by `pid`.
pub fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat_ticks(&text).ok_or_else(|| io::Error::other(format!("unreadable /proc/{pid}/stat")))
}

/// Peak RSS of `pid` in KiB since it started.
pub fn peak_rss_kib(pid: u32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_hwm_kib(&text)
        .ok_or_else(|| io::Error::other(format!("no VmHWM in /proc/{pid}/status")))
}

/// Clock ticks per second from `getconf CLK_TCK`, or [`DEFAULT_CLK_TCK`].
pub fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_CLK_TCK)
}

/// What one watched process used during the measured window.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// Name given on the command line (`gateway`, `broker`, ...).
    pub name: String,
    /// CPU seconds during the window; `None` when the process was gone.
    pub cpu_s: Option<f64>,
    /// Peak RSS in KiB since the process started, read at the end.
    pub peak_rss_kib: Option<u64>,
}

/// CPU counters of the watched processes at the start of the window.
#[derive(Debug)]
pub struct Watch {
    start: Vec<(String, u32, u64)>,
    clk_tck: u64,
}

impl Watch {
    /// Reads every process's counters now; a pid that cannot be read is an
    /// error naming it, so a typo does not silently yield no figures.
    pub fn start(pids: &[(String, u32)], clk_tck: u64) -> Result<Watch, String> {
        let start = pids
            .iter()
            .map(|(name, pid)| {
                cpu_ticks(*pid)
                    .map(|t| (name.clone(), *pid, t))
                    .map_err(|e| format!("cannot read the {name} process {pid}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Watch { start, clk_tck })
    }

    /// Clock ticks per second used for the conversion.
    pub fn clk_tck(&self) -> u64 {
        self.clk_tck
    }

    /// What each process used since [`Watch::start`].
    pub fn finish(&self) -> Vec<Usage> {
        self.start
            .iter()
            .map(|(name, pid, before)| Usage {
                name: name.clone(),
                cpu_s: cpu_ticks(*pid)
                    .ok()
                    .map(|after| after.saturating_sub(*before) as f64 / self.clk_tck as f64),
                peak_rss_kib: peak_rss_kib(*pid).ok(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line() {
        let line = "4242 (thingcall-ser) S 1 4242 4242 0 -1 4194560 2000 0 0 0 \
                    1234 567 0 0 20 0 9 0 555 123456789 3000 18446744073709551615";
        assert_eq!(parse_stat_ticks(line), Some(1234 + 567));
        // A command name with spaces and parentheses.
        let odd = "7 (a b) (c)) R 1 7 7 0 -1 0 0 0 0 0 10 5 0 0 20 0 1 0 1 1 1";
        assert_eq!(parse_stat_ticks(odd), Some(15));
        assert_eq!(parse_stat_ticks("7 (x) R 1 2"), None);
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn status_text() {
        let text =
            "Name:\tthingcall\nVmPeak:\t  200000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_vm_hwm_kib(text), Some(12345));
        assert_eq!(parse_vm_hwm_kib("Name:\tx\n"), None);
    }

    #[test]
    fn own_process() {
        let me = std::process::id();
        let tck = clock_ticks_per_second();
        assert!(tck > 0);
        let watch = Watch::start(&[("me".to_owned(), me)], tck).unwrap();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        let usage = watch.finish();
        assert_eq!(usage[0].name, "me");
        assert!(usage[0].cpu_s.unwrap() >= 0.0);
        assert!(usage[0].peak_rss_kib.unwrap() > 0);
        assert!(Watch::start(&[("gone".to_owned(), u32::MAX)], tck).is_err());
    }
}
