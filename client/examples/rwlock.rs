//! Two readers share a read-write lock while a writer waits for both.
//!
//! `cargo run -p zabkeeper-client --example rwlock -- 127.0.0.1:2281`

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
    let (a, b, c) = (connect().await?, connect().await?, connect().await?);
    let dir = "/examples/rwlock";
    let r1 = ReadWriteLock::new(&a, dir)
        .read(None)
        .await?
        .expect("no timeout");
    let r2 = ReadWriteLock::new(&b, dir)
        .read(None)
        .await?
        .expect("no timeout");
    println!("two readers hold the lock together");
    let writer = ReadWriteLock::new(&c, dir);
    let early = writer.write(Some(Duration::from_millis(300))).await?;
    println!(
        "writer while readers hold: {}",
        if early.is_some() {
            "got it (bug!)"
        } else {
            "timed out"
        }
    );
    r1.release().await?;
    r2.release().await?;
    let w = writer
        .write(Some(Duration::from_secs(5)))
        .await?
        .expect("free now");
    println!("writer holds it alone, token {}", w.fencing_token());
    w.release().await?;
    Ok(())
}
