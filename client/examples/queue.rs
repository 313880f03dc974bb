//! Two producers and two consumers share a queue; a priority item jumps ahead.
//!
//! `cargo run -p zabkeeper-client --example queue -- 127.0.0.1:2281`

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
    let dir = "/examples/queue";
    let mut producers = Vec::new();
    for p in 0..2 {
        producers.push(tokio::spawn(async move {
            let q = Queue::new(&connect().await?, dir);
            for i in 0..5 {
                q.put(format!("job {p}.{i}")).await?;
            }
            Ok::<_, Error>(())
        }));
    }
    let q = Queue::new(&connect().await?, dir);
    q.put_with_priority("urgent job", 0).await?;
    let mut consumers = Vec::new();
    for c in 0..2 {
        consumers.push(tokio::spawn(async move {
            let q = Queue::new(&connect().await?, dir);
            // Blocks on a child watch; gives up after a quiet second.
            while let Some(item) = q.take_timeout(Some(Duration::from_secs(1))).await? {
                println!("consumer {c}: {}", String::from_utf8_lossy(&item));
            }
            Ok::<_, Error>(())
        }));
    }
    for t in producers.into_iter().chain(consumers) {
        t.await.expect("task")?;
    }
    Ok(())
}
