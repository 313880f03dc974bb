//! `fsync-probe`: the disk's own cost of one durable write, the physical limit a one-client
//! write latency is compared with.
//!
//! Two shapes, each `count` times `size` bytes then `fdatasync`, in a fresh file in `dir`:
//! * `append`: the file grows with every write, so each `fdatasync` also commits the new
//!   length (what the ZooKeeper anchor's probe did: append 1100 B + fsync);
//! * `prealloc`: writes into a file that was written with zeros and synced first, so the
//!   `fdatasync` carries the data only (what a preallocated txn log segment costs).

use hdrhistogram::Histogram;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

/// Latencies (µs) of one probe shape.
pub struct ProbeResult {
    pub shape: &'static str,
    pub hist: Histogram<u64>,
}

pub fn run(dir: &Path, size: usize, count: usize) -> std::io::Result<Vec<ProbeResult>> {
    let buf = vec![b'x'; size.max(1)];
    let mut out = Vec::new();

    let path = dir.join(format!(
        "zabkeeper-fsync-probe-{}.append",
        std::process::id()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        let mut hist = new_hist();
        for _ in 0..count {
            let t = Instant::now();
            f.write_all(&buf)?;
            f.sync_data()?;
            hist.saturating_record(t.elapsed().as_micros().max(1) as u64);
        }
        Ok::<_, std::io::Error>(hist)
    })();
    let _ = std::fs::remove_file(&path);
    out.push(ProbeResult {
        shape: "append",
        hist: result?,
    });

    let path = dir.join(format!(
        "zabkeeper-fsync-probe-{}.prealloc",
        std::process::id()
    ));
    let result = (|| {
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        let total = buf.len() * count;
        let zeros = vec![0u8; 1 << 20];
        let mut off = 0;
        while off < total {
            let n = zeros.len().min(total - off);
            f.write_all_at(&zeros[..n], off as u64)?;
            off += n;
        }
        f.sync_all()?;
        let mut hist = new_hist();
        for i in 0..count {
            let t = Instant::now();
            f.write_all_at(&buf, (i * buf.len()) as u64)?;
            f.sync_data()?;
            hist.saturating_record(t.elapsed().as_micros().max(1) as u64);
        }
        Ok::<_, std::io::Error>(hist)
    })();
    let _ = std::fs::remove_file(&path);
    out.push(ProbeResult {
        shape: "prealloc",
        hist: result?,
    });
    Ok(out)
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_record_every_write_and_leave_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let results = run(dir.path(), 100, 5).unwrap();
        let shapes: Vec<_> = results.iter().map(|r| r.shape).collect();
        assert_eq!(shapes, ["append", "prealloc"]);
        for r in &results {
            assert_eq!(r.hist.len(), 5);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
