//! Plain (session-consistent) reads are not linearizable and stay out of the
//! register search; what they promise is the session guarantee of issue 4: a read
//! never returns older state than its session had already seen. In zxid terms: a
//! plain read must not miss a write to its key whose zxid is at or below the
//! highest zxid its session had seen when it sent the read.

use crate::error::{Error, Result};
use std::collections::HashMap;

/// A plain read as its session saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRead {
    pub key: String,
    /// The highest zxid the session had seen when it sent the read.
    pub seen: i64,
    /// The mzxid of the node it read.
    pub mzxid: i64,
}

/// Checks plain reads: none misses a write to its key at or below what its session
/// had already seen. `writes`: every zxid known to have modified each key (from
/// successful write answers and from the mzxid of any read).
pub fn check_sessions(reads: &[SessionRead], writes: &HashMap<String, Vec<i64>>) -> Result<()> {
    for r in reads {
        if let Some(zs) = writes.get(&r.key) {
            if let Some(&missed) = zs.iter().find(|&&z| z > r.mzxid && z <= r.seen) {
                return Err(Error::StaleRead {
                    key: r.key.clone(),
                    seen: r.seen,
                    mzxid: r.mzxid,
                    missed,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_reads_must_not_miss_writes_they_had_seen() {
        let writes = HashMap::from([("/k".to_string(), vec![10, 20, 30])]);
        let ok = [SessionRead {
            key: "/k".into(),
            seen: 25,
            mzxid: 20,
        }];
        check_sessions(&ok, &writes).unwrap();
        let stale = [SessionRead {
            key: "/k".into(),
            seen: 25,
            mzxid: 10,
        }];
        assert_eq!(
            check_sessions(&stale, &writes),
            Err(Error::StaleRead {
                key: "/k".into(),
                seen: 25,
                mzxid: 10,
                missed: 20
            })
        );
    }
}
