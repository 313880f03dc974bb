//! `dump-log` and `dump-snapshot`: a data directory's contents in readable lines.

use super::datadir::{read_snapshot, scan_segment, segment_files, snapshot_files};
use crate::error::{Error, Result};
use crate::tree::DataTree;
use crate::txn::Txn;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Prints every record of the segments at `path` (a segment, `log/` or a data dir).
pub fn log(path: &Path) -> Result<()> {
    let files: Vec<PathBuf> = if path.is_file() {
        vec![path.to_path_buf()]
    } else {
        let dir = if path.join("log").is_dir() {
            path.join("log")
        } else {
            path.to_path_buf()
        };
        segment_files(&dir)?.into_iter().map(|(_, p)| p).collect()
    };
    if files.is_empty() {
        return Err(Error::Tool(format!("no log segment in {}", path.display())));
    }
    let mut out = std::io::stdout().lock();
    for file in files {
        let scan = scan_segment(&file)?;
        writeln!(
            out,
            "# {} base {:#x}, {} records",
            file.display(),
            scan.base,
            scan.records.len()
        )?;
        for r in &scan.records {
            match Txn::decode(&r.payload) {
                Ok(t) => writeln!(
                    out,
                    "{:#x} {} session {:#x} cxid {} {:?}",
                    r.zxid,
                    utc(t.time_ms),
                    t.session_id,
                    t.cxid,
                    t.body
                )?,
                Err(e) => writeln!(out, "{:#x} undecodable txn: {e}", r.zxid)?,
            }
        }
        if let Some((p, _)) = scan.bad {
            writeln!(out, "# stops at a bad record: {p}")?;
        }
    }
    Ok(())
}

/// Prints every node and session of a snapshot (file, or newest valid in a data dir).
pub fn snapshot(path: &Path) -> Result<()> {
    let file = if path.is_file() {
        path.to_path_buf()
    } else {
        let dir = if path.join("snapshot").is_dir() {
            path.join("snapshot")
        } else {
            path.to_path_buf()
        };
        snapshot_files(&dir)?
            .pop()
            .map(|(_, p)| p)
            .ok_or_else(|| Error::Tool(format!("no snapshot in {}", path.display())))?
    };
    let (zxid, tree) = read_snapshot(&file)?.map_err(|p| Error::Tool(p.to_string()))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "# {} zxid {zxid:#x}, {} nodes, {} sessions",
        file.display(),
        tree.node_count(),
        tree.sessions().len()
    )?;
    for (id, timeout) in tree.sessions() {
        writeln!(out, "session {id:#x} timeout {timeout} ms")?;
    }
    let mut failed = None;
    walk(&tree, "/", &mut |path| {
        if failed.is_some() {
            return;
        }
        if let Ok((data, s)) = tree.get_data(path) {
            let r = writeln!(
                out,
                "{path}\n  czxid {:#x} mzxid {:#x} pzxid {:#x} ctime {} mtime {}\n  version {} cversion {} aversion {} ephemeralOwner {:#x} dataLength {} numChildren {}\n  data {}",
                s.czxid,
                s.mzxid,
                s.pzxid,
                utc(s.ctime),
                utc(s.mtime),
                s.version,
                s.cversion,
                s.aversion,
                s.ephemeral_owner,
                s.data_length,
                s.num_children,
                show_bytes(&data)
            );
            if let Err(e) = r {
                failed = Some(e);
            }
        }
    });
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Visits `path` and every node below it, parents first, children sorted.
pub fn walk(tree: &DataTree, path: &str, f: &mut impl FnMut(&str)) {
    f(path);
    if let Ok((mut children, _)) = tree.get_children(path) {
        children.sort();
        for c in children {
            let child = if path == "/" {
                format!("/{c}")
            } else {
                format!("{path}/{c}")
            };
            walk(tree, &child, f);
        }
    }
}

/// Data as text when it is printable UTF-8, else as escaped bytes.
fn show_bytes(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(s) if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => format!("{s:?}"),
        _ => format!("{:?}", bytes::Bytes::copy_from_slice(data)),
    }
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc(1_795_000_000_000), "2026-11-18T11:06:40.000Z");
    }

    #[test]
    fn bytes_shown_as_text_or_escaped() {
        assert_eq!(show_bytes(b"hello"), "\"hello\"");
        assert_eq!(show_bytes(&[0, 255]), "b\"\\0\\xff\"");
    }
}
