//! Server cost from `/proc`: CPU time from `/proc/PID/stat`, memory from `/proc/PID/status`.
//!
//! `stat`'s second field (the command name) may hold spaces and parentheses, so fields
//! are counted after the last `)`: there `utime` and `stime` are the 12th and 13th
//! (fields 14 and 15 of proc(5)), in clock ticks.

use std::path::Path;

/// user + system CPU seconds of a process.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let text =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    parse_cpu_ticks(&text).map(|t| t as f64 / clock_ticks_per_second())
}

/// user + system CPU seconds summed over processes; `None` if there are none or one is gone.
pub fn cpu_seconds_sum(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| cpu_seconds(p)).sum()
}

/// (current RSS, peak RSS) in KiB summed over processes; `None` if there are none or one is gone.
pub fn rss_kib_sum(pids: &[u32]) -> Option<(u64, u64)> {
    if pids.is_empty() {
        return None;
    }
    pids.iter()
        .map(|&p| rss_kib(p))
        .try_fold((0, 0), |(r, h), x| x.map(|(a, b)| (r + a, h + b)))
}

/// CPU seconds of this process (the load generator itself).
pub fn own_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_ticks(&text).map(|t| t as f64 / clock_ticks_per_second())
}

/// (current RSS, peak RSS) in KiB.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let text =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    parse_rss(&text)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

pub(crate) fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

pub(crate) fn parse_rss(status: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    let rss = field("VmRSS:")?;
    Some((rss, field("VmHWM:").unwrap_or(rss)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_fields_after_a_tricky_name() {
        let stat = "4242 (zab keeper) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert_eq!(parse_cpu_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn rss_lines() {
        let status = "Name:\tzabkeeper\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t3\n";
        assert_eq!(parse_rss(status), Some((10240, 20480)));
        assert_eq!(parse_rss("Name: x\n"), None);
    }

    #[test]
    fn reads_our_own_process() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).is_some());
        let (rss, peak) = rss_kib(pid).unwrap();
        assert!(rss > 0 && peak >= rss);
        assert!(own_cpu_seconds().unwrap() >= 0.0);
        let two = rss_kib_sum(&[pid, pid]).unwrap();
        assert!(two.0 > rss && two.1 >= two.0);
        assert!(cpu_seconds_sum(&[pid, pid]).unwrap() >= cpu_seconds(pid).unwrap());
        assert_eq!(cpu_seconds_sum(&[]), None);
        assert_eq!(rss_kib_sum(&[pid, u32::MAX]), None);
    }
}
