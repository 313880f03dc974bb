//! Results: computing them from an [`Outcome`] and printing them as text, JSON, or a
//! Markdown row with the ZooKeeper anchor table's columns (plus server RSS).

use crate::driver::Outcome;
use crate::workload::OpKind;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub protocol: String,
    pub servers: String,
    pub op: OpKind,
    pub clients: usize,
    pub pipeline: usize,
    pub value_size: usize,
    pub read_ratio: f64,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub ok: u64,
    pub errors: u64,
    pub ops_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub first_error: Option<String>,
    /// Server user+system CPU over the whole invocation (setup, warm-up, window, cleanup).
    pub server_cpu_s: Option<f64>,
    /// Server CPU over the measured window only, and that per successful request, µs.
    pub server_cpu_window_s: Option<f64>,
    pub server_cpu_us_per_op: Option<f64>,
    /// Server RSS after the run, and its peak (VmHWM), MiB.
    pub server_rss_mib: Option<f64>,
    pub server_peak_rss_mib: Option<f64>,
    /// This load generator's CPU over the whole invocation.
    pub client_cpu_s: Option<f64>,
    pub cleanup_failures: u64,
    /// With `--cache`: client cache hits and misses over the whole run (all clients).
    pub cache_hits: Option<u64>,
    pub cache_misses: Option<u64>,
}

/// ops/s and latency percentiles; an empty histogram gives zeros.
pub fn summarize(out: &Outcome, duration_s: f64) -> (f64, u64, u64, u64, u64) {
    let h = &out.hist;
    let ops = if duration_s > 0.0 {
        out.ok as f64 / duration_s
    } else {
        0.0
    };
    if h.is_empty() {
        return (ops, 0, 0, 0, 0);
    }
    (
        ops,
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
    )
}

fn op_label(op: OpKind, value_size: usize, read_ratio: f64) -> String {
    let size = if value_size > 0 && value_size & 1023 == 0 {
        format!("{} KiB", value_size / 1024)
    } else {
        format!("{value_size} B")
    };
    match op {
        OpKind::Set => format!("set {size} (existing node)"),
        OpKind::Get => format!("get {size}"),
        OpKind::Mixed => {
            let r = (read_ratio * 100.0).round();
            format!("mixed {r}% get / {}% set", 100.0 - r)
        }
        OpKind::Create => format!("create {size}"),
        OpKind::Multi => format!("multi 2x set {size}"),
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

impl Report {
    pub fn text(&self) -> String {
        let mut s = format!(
            "{} {} clients={} pipeline={} value={}B window={}s (+{}s warm-up)\n\
             ops/s {:.0}  p50 {} us  p99 {} us  p99.9 {} us  max {} us  errors {}\n",
            self.protocol,
            op_label(self.op, self.value_size, self.read_ratio),
            self.clients,
            self.pipeline,
            self.value_size,
            self.duration_s,
            self.warmup_s,
            self.ops_per_s,
            self.p50_us,
            self.p99_us,
            self.p999_us,
            self.max_us,
            self.errors
        );
        s.push_str(&format!(
            "CPU s server {} (window {}, {} us/op) / client {}  server RSS {} MiB (peak {} MiB)\n",
            opt(self.server_cpu_s, 1),
            opt(self.server_cpu_window_s, 2),
            opt(self.server_cpu_us_per_op, 1),
            opt(self.client_cpu_s, 1),
            opt(self.server_rss_mib, 1),
            opt(self.server_peak_rss_mib, 1)
        ));
        if let (Some(h), Some(m)) = (self.cache_hits, self.cache_misses) {
            let rate = if h + m > 0 {
                100.0 * h as f64 / (h + m) as f64
            } else {
                0.0
            };
            s.push_str(&format!(
                "client cache: hits {h}  misses {m}  hit rate {rate:.1}%\n"
            ));
        }
        if let Some(e) = &self.first_error {
            s.push_str(&format!("first error: {e}\n"));
        }
        if self.cleanup_failures > 0 {
            s.push_str(&format!(
                "cleanup: {} deletes failed\n",
                self.cleanup_failures
            ));
        }
        s
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("report serializes")
    }

    pub const MARKDOWN_HEADER: &'static str = "| topology | op | clients | pipeline | ops/s | p50 µs | p99 µs | p99.9 µs | max µs | errors | CPU s server / client | server RSS MiB |\n\
                                               |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|";

    pub fn markdown_row(&self, topology: &str) -> String {
        format!(
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} / {} | {} |",
            topology,
            op_label(self.op, self.value_size, self.read_ratio),
            self.clients,
            self.pipeline,
            self.ops_per_s,
            self.p50_us,
            self.p99_us,
            self.p999_us,
            self.max_us,
            self.errors,
            opt(self.server_cpu_s, 1),
            opt(self.client_cpu_s, 1),
            opt(self.server_rss_mib, 0)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::Histogram;

    fn outcome(values: &[u64]) -> Outcome {
        let mut hist = Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for &v in values {
            hist.record(v).unwrap();
        }
        Outcome {
            ok: values.len() as u64,
            errors: 0,
            hist,
            first_error: None,
            issued: vec![],
        }
    }

    #[test]
    fn percentiles_and_rate() {
        let values: Vec<u64> = (1..=1000).collect();
        let (ops, p50, p99, p999, max) = summarize(&outcome(&values), 2.0);
        assert_eq!(ops, 500.0);
        assert_eq!((p50, p99, p999, max), (500, 990, 999, 1000));
        assert_eq!(summarize(&outcome(&[]), 1.0), (0.0, 0, 0, 0, 0));
    }

    #[test]
    fn labels_match_the_anchor_table() {
        assert_eq!(
            op_label(OpKind::Set, 1024, 0.9),
            "set 1 KiB (existing node)"
        );
        assert_eq!(
            op_label(OpKind::Mixed, 1024, 0.9),
            "mixed 90% get / 10% set"
        );
        assert_eq!(op_label(OpKind::Create, 100, 0.9), "create 100 B");
    }

    #[test]
    fn markdown_row_has_every_column() {
        let r = Report {
            protocol: "native".into(),
            servers: "127.0.0.1:1".into(),
            op: OpKind::Get,
            clients: 8,
            pipeline: 1,
            value_size: 1024,
            read_ratio: 0.9,
            warmup_s: 2.0,
            duration_s: 10.0,
            ok: 10,
            errors: 0,
            ops_per_s: 1234.4,
            p50_us: 1,
            p99_us: 2,
            p999_us: 3,
            max_us: 4,
            first_error: None,
            server_cpu_s: Some(1.3),
            server_cpu_window_s: Some(1.0),
            server_cpu_us_per_op: Some(81.0),
            server_rss_mib: None,
            server_peak_rss_mib: None,
            client_cpu_s: Some(0.5),
            cleanup_failures: 0,
            cache_hits: None,
            cache_misses: None,
        };
        let row = r.markdown_row("standalone");
        assert_eq!(
            row,
            "| standalone | get 1 KiB | 8 | 1 | 1234 | 1 | 2 | 3 | 4 | 0 | 1.3 / 0.5 | - |"
        );
        let header_cols = Report::MARKDOWN_HEADER
            .lines()
            .next()
            .unwrap()
            .matches('|')
            .count();
        assert_eq!(row.matches('|').count(), header_cols);
        let j: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(j["op"], "get");
        assert_eq!(j["server_rss_mib"], serde_json::Value::Null);
    }
}
