//! The pair scenarios of `benches/locks.rs` (`pairs`, `pairs-16`: 64 tasks
//! on a 2-worker tokio runtime, each operation locking two distinct keys of
//! 1,024 or of 16) in interleaved rounds, for figures a busy machine moves
//! less: criterion times one lock for seconds, then the next, so a neighbour
//! that slows one of them moves their ratio; here every lock runs once per
//! round, the order rotating, and each ratio is taken within a round, then
//! the median over the rounds (as `fairness.rs` does for one key).
//!
//! Reported for each lock: ns per operation (both keys locked and
//! released; the median over the rounds) and its time over this crate's
//! `acquire_many` in the same round: the median, and the quartiles of the
//! rounds. `lock-manager, 1 by 1` is this crate taking the keys with two
//! `acquire`s (`common::OursOneByOne`); every peer takes the smaller key,
//! then the larger (`Peer::lock_pair`). The tasks are those of `locks.rs`
//! (`common::run_tasks`).
//!
//! No criterion; it prints one table per scenario. `PAIRS_OPS` (operations
//! per task per round, default 2,048) and `PAIRS_ROUNDS` (default 21) size
//! it, `LOCK_MANAGER_BENCH_PEERS` picks the locks (`lock-manager` brings
//! both of this crate's rows):
//!
//! ```text
//! LOCK_MANAGER_BENCH_PEERS=lock-manager,futures-lock-recipe \
//!     cargo bench -p lock-manager-benches --bench pairs
//! ```

#[macro_use]
mod common;

use std::sync::Arc;

use common::{
    key_sequences, median, names, Ours, OursOneByOne, Peer, KEYS_PER_TASK, PAIRS_16_KEYS,
    SPREAD_KEYS, TASKS,
};

/// Operations per task per round unless `PAIRS_OPS` says otherwise: about
/// 25 ms a round for this crate on 2 cores.
const DEFAULT_OPS: u64 = 2048;
/// Rounds unless `PAIRS_ROUNDS` says otherwise.
const DEFAULT_ROUNDS: u64 = 21;

/// Each task's pairs: the same for every lock and every run.
type Pairs = Arc<Vec<Vec<(u64, u64)>>>;

/// One lock under measurement.
struct Entry {
    name: &'static str,
    /// Runs `ops` operations per task, returning the wall time in ns.
    run: fn(&tokio::runtime::Runtime, &Pairs, u64) -> f64,
}

/// `P` as an entry, unless `LOCK_MANAGER_BENCH_PEERS` leaves it out.
fn entry<P: Peer<u64>>() -> Option<Entry> {
    // The floor is not a lock: it excludes nobody.
    (P::IS_LOCK && common::selected(P::NAME)).then_some(Entry {
        name: P::NAME,
        run: run::<P>,
    })
}

/// Runs `ops` operations in each of `TASKS` tasks on one fresh `P`, as
/// `locks.rs` does.
fn run<P: Peer<u64>>(rt: &tokio::runtime::Runtime, pairs: &Pairs, ops: u64) -> f64 {
    let peer = Arc::new(P::create());
    common::run_tasks(rt, &peer, pairs, ops).as_nanos() as f64
}

/// Runs every entry once per round over keys drawn from `keys`, rotating
/// the order, and prints the table.
fn scenario(
    rt: &tokio::runtime::Runtime,
    entries: &[Entry],
    id: &str,
    keys: u64,
    ops: u64,
    rounds: u64,
) {
    let pairs: Pairs = Arc::new(key_sequences(TASKS, KEYS_PER_TASK, |rng| {
        rng.distinct_pair(keys)
    }));
    // Warm up the runtime's workers and each lock's code.
    for e in entries {
        (e.run)(rt, &pairs, ops / 8 + 1);
    }
    let n = entries.len();
    let mut walls = vec![Vec::new(); n];
    for round in 0..rounds as usize {
        for i in (0..n).map(|i| (i + round) % n) {
            walls[i].push((entries[i].run)(rt, &pairs, ops));
        }
    }
    let per_op = (TASKS as u64 * ops) as f64;
    let ours = entries
        .iter()
        .position(|e| e.name == <Ours<u64> as Peer<u64>>::NAME);
    println!("\n{id}: {TASKS} tasks x {ops} operations x {rounds} rounds, pairs of {keys} keys\n");
    println!("| lock | ns/op | ÷ acquire_many (median, quartiles) |");
    println!("| --- | ---: | --- |");
    for (entry, wall) in entries.iter().zip(&walls) {
        let ratio = ours.map_or(String::new(), |ours| {
            let mut ratios: Vec<f64> = wall.iter().zip(&walls[ours]).map(|(w, o)| w / o).collect();
            ratios.sort_unstable_by(f64::total_cmp);
            let quartile = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
            format!(
                "{:.3}x ({:.3}–{:.3})",
                median(ratios.clone()),
                quartile(0.25),
                quartile(0.75)
            )
        });
        let ns = median(wall.clone()) / per_op;
        println!("| {} | {ns:.1} | {ratio} |", entry.name);
    }
}

fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let ops = common::env_count("PAIRS_OPS", DEFAULT_OPS);
    let rounds = common::env_count("PAIRS_ROUNDS", DEFAULT_ROUNDS);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    let mut entries = Vec::new();
    for_each_peer!(u64, P => { entries.extend(entry::<P>()); });
    // With this crate: a name with a comma, which the list cannot hold.
    if common::selected(<Ours<u64> as Peer<u64>>::NAME) {
        entries.push(Entry {
            name: <OursOneByOne<u64> as Peer<u64>>::NAME,
            run: run::<OursOneByOne<u64>>,
        });
    }
    scenario(&rt, &entries, names::PAIRS.id, SPREAD_KEYS, ops, rounds);
    scenario(
        &rt,
        &entries,
        names::PAIRS_16.id,
        PAIRS_16_KEYS,
        ops,
        rounds,
    );
}
