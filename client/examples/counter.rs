//! Four tasks increment one counter by compare-and-set.
//!
//! `cargo run -p zabkeeper-client --example counter -- 127.0.0.1:2281`

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
    let path = "/examples/counter";
    let start = Counter::new(&connect().await?, path).get().await?;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(tokio::spawn(async move {
            let counter = Counter::new(&connect().await?, path);
            for _ in 0..25 {
                counter.add(1).await?;
            }
            Ok::<_, Error>(())
        }));
    }
    for t in tasks {
        t.await.expect("task")?;
    }
    let end = Counter::new(&connect().await?, path).get().await?;
    println!("counter went from {start} to {end} (+{})", end - start);
    assert_eq!(end - start, 100);
    Ok(())
}
