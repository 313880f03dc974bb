//! Three tasks, each with its own session, take turns on one lock; each holder checks its fencing token against the highest seen.
//!
//! `cargo run -p zabkeeper-client --example lock -- 127.0.0.1:2281`

use std::time::Duration;

use zabkeeper_client::recipes::*;
use zabkeeper_client::{Client, ConnectOptions, Error};

fn servers() -> String {
    std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2281".to_string())
}

async fn connect() -> Result<Client, Error> {
    Client::connect(&servers(), ConnectOptions::default()).await
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let highest = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let mut tasks = Vec::new();
    for worker in 0..3 {
        let highest = highest.clone();
        tasks.push(tokio::spawn(async move {
            let zk = connect().await?;
            let lock = Lock::new(&zk, "/examples/lock");
            for round in 0..3 {
                let guard = lock.acquire(Some(Duration::from_secs(10))).await?.ok_or(Error::OperationTimeout)?;
                let token = guard.fencing_token();
                // A protected resource refuses tokens lower than the highest it saw.
                let prev = highest.fetch_max(token, std::sync::atomic::Ordering::SeqCst);
                assert!(token > prev, "stale token");
                println!("worker {worker} round {round}: holding with token {token}");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = guard.lost() => { println!("worker {worker}: session lost"); return Ok(()); }
                }
                guard.release().await?;
            }
            zk.close().await
        }));
    }
    for t in tasks {
        t.await.expect("worker")?;
    }
    Ok(())
}
