//! A coordinator holds three workers at a barrier, then they meet at a double barrier.
//!
//! `cargo run -p zabkeeper-client --example barrier -- 127.0.0.1:2281`

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
    let coordinator = connect().await?;
    let gate = Barrier::new(&coordinator, "/examples/barrier/gate");
    gate.set().await?;
    let mut workers = Vec::new();
    for w in 0..3 {
        workers.push(tokio::spawn(async move {
            let zk = connect().await?;
            Barrier::new(&zk, "/examples/barrier/gate")
                .wait(None)
                .await?;
            println!("worker {w} passed the gate");
            let round = DoubleBarrier::new(&zk, "/examples/barrier/round", 3);
            round.enter(None).await?;
            println!("worker {w} entered with the others");
            tokio::time::sleep(Duration::from_millis(100 * w)).await;
            round.leave(None).await?;
            println!("worker {w} left with the others");
            Ok::<_, Error>(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("opening the gate");
    gate.remove().await?;
    for t in workers {
        t.await.expect("worker")?;
    }
    Ok(())
}
