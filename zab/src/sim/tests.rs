//! Seed-driven simulation tests.
//!
//! Each test runs 1,000 seeds by default; `ZAB_SIM_SEEDS=N` runs N seeds and
//! `ZAB_SIM_SEED=S` replays exactly seed S with its trace printed. A failing
//! seed is replayed with tracing and reported as `replay with ZAB_SIM_SEED=S`.

use super::{Sim, SimOptions};

fn run_seeds(name: &str, opts: impl Fn() -> SimOptions) {
    if let Some(seed) = std::env::var("ZAB_SIM_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        let mut sim = Sim::new(seed, opts(), true);
        let result = sim.run();
        for line in sim.trace() {
            println!("{line}");
        }
        if let Err(e) = result {
            panic!("{name}: seed {seed} failed: {e}");
        }
        return;
    }
    let seeds = std::env::var("ZAB_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1000);
    for seed in 0..seeds {
        if let Err(e) = Sim::new(seed, opts(), false).run() {
            let mut sim = Sim::new(seed, opts(), true);
            let replay = sim.run();
            let trace = sim.trace();
            let tail = &trace[trace.len().saturating_sub(400)..];
            panic!(
                "{name}: seed {seed} failed: {e}\n(replay: {replay:?})\nreplay with ZAB_SIM_SEED={seed}\nlast {} trace lines:\n{}",
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

#[test]
fn sim_three_servers() {
    run_seeds("sim_three_servers", || SimOptions::chaos(3));
}

#[test]
fn sim_five_servers() {
    run_seeds("sim_five_servers", || SimOptions::chaos(5));
}

#[test]
fn sim_lossy_elections() {
    run_seeds("sim_lossy_elections", || SimOptions {
        vote_drop: 400,
        vote_dup: 300,
        crash: 30,
        restart: 100,
        ..SimOptions::chaos(5)
    });
}

#[test]
fn sim_whole_cluster_restarts() {
    run_seeds("sim_whole_cluster_restarts", || SimOptions {
        crash_all: 20,
        restart: 200,
        propose: 500,
        ..SimOptions::chaos(3)
    });
}
