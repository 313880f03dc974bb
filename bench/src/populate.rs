//! `populate`: a big tree for the memory and restart targets: `parents` persistent nodes
//! under a root, each with `children` children of `value_size` bytes, created pipelined
//! over `clients` sessions with `pipeline` requests in flight each.

use crate::session::Session;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub struct Shape {
    pub root: String,
    pub parents: u64,
    pub children: u64,
    pub value_size: usize,
    pub pipeline: usize,
}

/// Creates the tree; returns (nodes created, seconds).
pub async fn run<S: Session>(sessions: &[S], shape: &Shape) -> Result<(u64, f64), String> {
    let first = sessions.first().ok_or("no sessions")?;
    let t0 = Instant::now();
    first
        .create(&shape.root, Bytes::new())
        .await
        .map_err(|e| format!("create {}: {e}", shape.root))?;
    let root = Arc::new(shape.root.clone());
    // Parents first, then children, each phase pipelined over every session.
    let parents = pipelined(sessions, shape.pipeline, shape.parents, {
        let root = root.clone();
        move |i| (format!("{root}/p{i}"), Bytes::new())
    })
    .await?;
    let value = Bytes::from(vec![b'd'; shape.value_size]);
    let per = shape.children;
    let children = pipelined(sessions, shape.pipeline, shape.parents * per, {
        let root = root.clone();
        move |i| (format!("{root}/p{}/c{}", i / per, i % per), value.clone())
    })
    .await?;
    Ok((1 + parents + children, t0.elapsed().as_secs_f64()))
}

async fn pipelined<S: Session>(
    sessions: &[S],
    pipeline: usize,
    count: u64,
    make: impl Fn(u64) -> (String, Bytes) + Send + Sync + 'static,
) -> Result<u64, String> {
    let next = Arc::new(AtomicU64::new(0));
    let make = Arc::new(make);
    let mut tasks = Vec::new();
    for s in sessions {
        for _ in 0..pipeline.max(1) {
            let (s, next, make) = (s.clone(), next.clone(), make.clone());
            tasks.push(tokio::spawn(async move {
                let mut made = 0u64;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return Ok::<u64, String>(made);
                    }
                    let (path, data) = make(i);
                    s.create(&path, data)
                        .await
                        .map_err(|e| format!("create {path}: {e}"))?;
                    made += 1;
                }
            }));
        }
    }
    let mut made = 0;
    for t in tasks {
        made += t.await.map_err(|e| e.to_string())??;
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::fake::FakeSession;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn creates_parents_then_children() {
        let fake = FakeSession::default();
        let shape = Shape {
            root: "/t".into(),
            parents: 7,
            children: 13,
            value_size: 10,
            pipeline: 3,
        };
        let (n, _) = run(&[fake.clone(), fake.clone()], &shape).await.unwrap();
        assert_eq!(n, 1 + 7 + 7 * 13);
        assert_eq!(fake.len() as u64, n);
    }
}
