//! Five tasks share a semaphore of two permits.
//!
//! `cargo run -p zabkeeper-client --example semaphore -- 127.0.0.1:2281`

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
    let mut tasks = Vec::new();
    for worker in 0..5 {
        tasks.push(tokio::spawn(async move {
            let zk = connect().await?;
            let sem = Semaphore::new(&zk, "/examples/semaphore", 2);
            let permit = sem.acquire(None).await?.expect("no timeout");
            println!(
                "worker {worker} has a permit ({} held)",
                sem.holders().await?
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            permit.release().await?;
            zk.close().await
        }));
    }
    for t in tasks {
        t.await.expect("worker")?;
    }
    Ok(())
}
