//! Seed-driven simulation tests.
//!
//! Each test runs 1,000 seeds by default; `ZAB_SIM_SEEDS=N` runs N seeds and
//! `ZAB_SIM_SEED=S` replays exactly seed S with its trace printed. A failing
//! seed is replayed with tracing and reported as `replay with ZAB_SIM_SEED=S`.

use super::{Sim, SimOptions, SimStats};

/// Runs the seeds and returns what they exercised in total.
fn run_seeds(name: &str, opts: impl Fn() -> SimOptions) -> SimStats {
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
        println!("{:?}", sim.stats());
        return SimStats {
            leaders: u64::MAX,
            ..SimStats::default()
        };
    }
    let mut total = SimStats::default();
    let seeds = std::env::var("ZAB_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1000);
    for seed in 0..seeds {
        let mut sim = Sim::new(seed, opts(), false);
        if let Err(e) = sim.run() {
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
        total += sim.stats().clone();
    }
    println!("{name}: {seeds} seeds: {total:?}");
    total
}

/// The chaos must reach the paths the invariants are about (only checked
/// over the default 1,000 seeds or more).
fn assert_exercised(s: &SimStats, snapshots_and_truncs: bool) {
    if s.leaders == u64::MAX
        || std::env::var("ZAB_SIM_SEEDS").is_ok_and(|n| n.parse::<u64>().unwrap_or(0) < 1000)
    {
        return;
    }
    assert!(
        s.leaders > 1000 && s.delivered > 10_000 && s.crashes > 100,
        "{s:?}"
    );
    if snapshots_and_truncs {
        assert!(s.truncs > 0 && s.snapshots > 0, "{s:?}");
    }
}

#[test]
fn sim_three_servers() {
    let s = run_seeds("sim_three_servers", || SimOptions::chaos(3));
    assert_exercised(&s, true);
}

#[test]
fn sim_five_servers() {
    let s = run_seeds("sim_five_servers", || SimOptions::chaos(5));
    assert_exercised(&s, true);
}

#[test]
fn sim_lossy_elections() {
    let s = run_seeds("sim_lossy_elections", || SimOptions {
        vote_drop: 400,
        vote_dup: 300,
        crash: 30,
        restart: 100,
        ..SimOptions::chaos(5)
    });
    assert_exercised(&s, false);
}

#[test]
fn sim_whole_cluster_restarts() {
    let s = run_seeds("sim_whole_cluster_restarts", || SimOptions {
        crash_all: 20,
        restart: 200,
        propose: 500,
        ..SimOptions::chaos(3)
    });
    assert_exercised(&s, true);
    assert!(
        s.leaders == u64::MAX || s.crash_alls > 100 || std::env::var("ZAB_SIM_SEEDS").is_ok(),
        "{s:?}"
    );
}

#[test]
fn sim_heavy_churn() {
    // Frequent crashes and link breaks during sync, a one-txn DIFF window.
    let s = run_seeds("sim_heavy_churn", || SimOptions {
        crash: 60,
        restart: 150,
        break_link: 60,
        partition: 30,
        max_disk_delay: 60,
        diff_window: 1,
        ..SimOptions::chaos(5)
    });
    assert_exercised(&s, true);
}

#[test]
fn sim_replays_exactly_from_its_seed() {
    let run = |seed| {
        let mut sim = Sim::new(seed, SimOptions::chaos(3), true);
        sim.run().expect("run");
        (sim.trace().to_vec(), sim.stats().clone())
    };
    let (a, sa) = run(42);
    let (b, sb) = run(42);
    assert!(a.len() > 100);
    assert_eq!(a, b);
    assert_eq!(sa, sb);
    assert_ne!(a, run(43).0);
}
