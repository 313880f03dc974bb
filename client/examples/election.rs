//! Three candidates elect a leader; the leader resigns and the next takes over.
//!
//! `cargo run -p zabkeeper-client --example election -- 127.0.0.1:2281`

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
    let dir = "/examples/election";
    let observer = LeaderElection::new(&connect().await?, dir);
    let mut candidates = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        let zk = connect().await?;
        candidates.push(LeaderElection::new(&zk, dir).join(name).await?);
    }
    for round in 0..3 {
        let mut leader = candidates.remove(0);
        assert!(
            leader
                .wait_for(Role::Leader, Some(Duration::from_secs(10)))
                .await
        );
        let info = observer.leader().await?.expect("a leader");
        println!(
            "round {round}: leader {} ({})",
            info.id,
            String::from_utf8_lossy(&info.payload)
        );
        leader.resign().await?;
    }
    Ok(())
}
