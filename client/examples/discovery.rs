//! Instances register a service; a cache follows them joining and leaving.
//!
//! `cargo run -p zabkeeper-client --example discovery -- 127.0.0.1:2281`

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
    let observer = connect().await?;
    let discovery = ServiceDiscovery::new(&observer, "/examples/services");
    let mut cache = discovery.cache("api").await?;
    let mut sessions = Vec::new();
    for i in 0..3u16 {
        let zk = connect().await?;
        let me = Instance::new(&format!("api-{i}"), "127.0.0.1", 8080 + i).with("zone", "a");
        let registration = ServiceDiscovery::new(&zk, "/examples/services")
            .register("api", &me)
            .await?;
        sessions.push((zk, registration));
    }
    cache
        .wait_until(|v| v.len() == 3, Duration::from_secs(5))
        .await;
    for _ in 0..4 {
        let i = cache.round_robin().expect("instances");
        println!("round robin -> {} at {}:{}", i.id, i.address, i.port);
    }
    println!("random -> {:?}", cache.random().map(|i| i.id));
    // An instance goes with its session.
    let (zk, _registration) = sessions.remove(0);
    zk.close().await?;
    cache
        .wait_until(|v| v.len() == 2, Duration::from_secs(5))
        .await;
    println!(
        "after one left: {:?}",
        cache.instances().iter().map(|i| &i.id).collect::<Vec<_>>()
    );
    Ok(())
}
