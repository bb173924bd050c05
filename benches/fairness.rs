//! Fairness on one hot key: how long each acquire waits, not only how many
//! acquires a second.
//!
//! 64 tasks on a 2-worker tokio runtime lock one key, `FAIRNESS_OPS` times
//! each (default 10,000). Each task notes the time from asking for the lock
//! to getting it; holding it, the task reads a shared counter, yields to the
//! runtime (`tokio::task::yield_now`: an `.await` inside the critical
//! section, as real ones have) and writes the counter back plus one. A lock
//! that let two tasks in at once would lose an update: the run checks the
//! count at the end and panics if any was lost.
//!
//! Run for every keyed peer (the floor is left out: it is not a lock) and
//! for three references, not peers, one mutex that every task locks:
//! `tokio::sync::Mutex<()>` (FIFO), `async_lock::Mutex<()>` and
//! `futures::lock::Mutex<()>` (which lets a running task barge ahead of the
//! waiters it woke). Reported for each: ns per op (wall time over all
//! acquires, the inverse of throughput) and the wait of one acquire: the
//! mean, p50, p99 and the max, over every acquire of the run.
//!
//! What the numbers mean for a user: the max is the longest any one caller
//! waited. Under a FIFO lock a waiter has at most 63 others ahead of it, so
//! its wait is bounded by their 63 critical sections (plus whatever the OS
//! takes away from the workers): a save queued on a busy key is served in
//! its turn and cannot be starved. A barging lock can do as many ops a
//! second or more (the task that just released takes the lock again, no
//! hand-off), but a waiter can lose that race again and again: its median
//! and p99 look tiny, since the task holding it runs acquire after acquire
//! unhindered, while the others wait for it; one writer waits far longer
//! than the others, up to a large part of the whole run.
//!
//! No criterion: one run prints a markdown table and writes `fairness.csv`
//! (to `$LOCK_MANAGER_BENCH_OUT`, by default `target/bench-results`) for
//! `scripts/bench.sh`. `LOCK_MANAGER_BENCH_PEERS` picks peers and
//! references by name, as for the other custom benches.
//!
//! ```text
//! FAIRNESS_OPS=500 cargo bench -p lock-manager-benches --bench fairness
//! ```

#[macro_use]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::{Peer, RefAsyncLockMutex, RefFuturesMutex, RefTokioMutex};

/// Tasks, all on one key.
const TASKS: usize = 64;
/// Acquires per task unless `FAIRNESS_OPS` says otherwise: 640,000 per
/// lock, about 1 µs each on 2 cores, some 10 s for the whole run.
const DEFAULT_OPS: u64 = 10_000;
/// Acquires per task of the untimed warm-up before each measured run.
const WARM_UP_OPS: u64 = 100;
/// The one key every task locks.
const KEY: u64 = 0;

struct Row {
    name: &'static str,
    kind: &'static str,
    fifo: bool,
    ops_per_task: u64,
    wall_ns: u128,
    /// Every acquire's wait in ns, sorted.
    waits: Vec<u64>,
}

impl Row {
    fn total_ops(&self) -> u64 {
        self.waits.len() as u64
    }

    fn ns_per_op(&self) -> f64 {
        self.wall_ns as f64 / self.total_ops() as f64
    }

    /// Nearest rank: the smallest wait that at least `p` of all waits
    /// are no longer than.
    fn wait(&self, p: f64) -> u64 {
        let n = self.waits.len();
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        self.waits[rank - 1]
    }

    fn mean_wait(&self) -> f64 {
        self.waits.iter().map(|&w| w as f64).sum::<f64>() / self.waits.len() as f64
    }

    fn max_wait(&self) -> u64 {
        *self.waits.last().expect("no acquire measured")
    }
}

/// Runs `ops_per_task` acquires in each of `TASKS` tasks on one fresh `P`;
/// returns the wall time and every wait (unsorted), in ns.
fn run<P: Peer<u64>>(rt: &tokio::runtime::Runtime, ops_per_task: u64) -> (u128, Vec<u64>) {
    let peer = Arc::new(P::create());
    let counter = Arc::new(AtomicU64::new(0));
    let (wall_ns, per_task) = rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let peer = Arc::clone(&peer);
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let mut waits = Vec::with_capacity(ops_per_task as usize);
                    for _ in 0..ops_per_task {
                        let asked = Instant::now();
                        let guard = peer.lock(KEY).await;
                        waits.push(asked.elapsed().as_nanos() as u64);
                        // Read, give the worker away, write back: the lock
                        // alone orders these (hence `Relaxed`), and two
                        // holders at once would lose an update.
                        let value = counter.load(Ordering::Relaxed);
                        tokio::task::yield_now().await;
                        counter.store(value + 1, Ordering::Relaxed);
                        drop(guard);
                    }
                    waits
                })
            })
            .collect();
        let mut per_task = Vec::with_capacity(TASKS);
        for task in tasks {
            per_task.push(task.await.expect("fairness task panicked"));
        }
        (start.elapsed().as_nanos(), per_task)
    });
    let expected = TASKS as u64 * ops_per_task;
    let counted = counter.load(Ordering::Relaxed);
    assert_eq!(
        counted,
        expected,
        "{}: {} lost updates: two tasks held the lock at once",
        P::NAME,
        expected - counted
    );
    (wall_ns, per_task.concat())
}

/// Measures `P`, unless `LOCK_MANAGER_BENCH_PEERS` leaves it out.
fn measure<P: Peer<u64>>(
    rt: &tokio::runtime::Runtime,
    kind: &'static str,
    ops_per_task: u64,
) -> Option<Row> {
    if !common::selected(P::NAME) {
        return None;
    }
    // Warm up the runtime's workers and the lock's own allocations.
    run::<P>(rt, WARM_UP_OPS.min(ops_per_task));
    let (wall_ns, mut waits) = run::<P>(rt, ops_per_task);
    waits.sort_unstable();
    let row = Row {
        name: P::NAME,
        kind,
        fifo: P::FIFO,
        ops_per_task,
        wall_ns,
        waits,
    };
    eprintln!(
        "{:<22} {:>9.1} ns/op  wait mean {}, p50 {}, p99 {}, max {}",
        row.name,
        row.ns_per_op(),
        fmt_ns(row.mean_wait() as u64),
        fmt_ns(row.wait(0.5)),
        fmt_ns(row.wait(0.99)),
        fmt_ns(row.max_wait()),
    );
    Some(row)
}

fn fmt_ns(ns: u64) -> String {
    match ns {
        0..10_000 => format!("{ns} ns"),
        10_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        _ => format!("{:.1} ms", ns as f64 / 1e6),
    }
}

fn ops_per_task() -> u64 {
    match std::env::var("FAIRNESS_OPS") {
        Ok(text) => match text.trim().parse() {
            Ok(ops) if ops > 0 => ops,
            _ => panic!("FAIRNESS_OPS must be a positive integer, not {text:?}"),
        },
        Err(_) => DEFAULT_OPS,
    }
}

fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let ops_per_task = ops_per_task();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    eprintln!(
        "one key, {TASKS} tasks x {ops_per_task} acquires on 2 workers; \
         critical section: read, yield_now, write"
    );

    let mut rows = Vec::new();
    let mut add = |row: Option<Row>| rows.extend(row);
    for_each_peer!(u64, P => {
        // The floor excludes nobody: it would lose updates by design.
        if P::IS_LOCK {
            add(measure::<P>(&rt, "peer", ops_per_task));
        }
    });
    add(measure::<RefTokioMutex>(&rt, "reference", ops_per_task));
    add(measure::<RefAsyncLockMutex>(&rt, "reference", ops_per_task));
    add(measure::<RefFuturesMutex>(&rt, "reference", ops_per_task));

    println!();
    println!(
        "Fairness: one key, {TASKS} tasks x {ops_per_task} acquires, 2 tokio workers, \
         `yield_now` inside the critical section"
    );
    println!();
    println!("| Lock | Kind | FIFO | ns / op | wait mean | wait p50 | wait p99 | wait max |");
    println!("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for row in &rows {
        println!(
            "| {} | {} | {} | {:.1} | {} | {} | {} | {} |",
            row.name,
            row.kind,
            if row.fifo { "yes" } else { "no" },
            row.ns_per_op(),
            fmt_ns(row.mean_wait() as u64),
            fmt_ns(row.wait(0.5)),
            fmt_ns(row.wait(0.99)),
            fmt_ns(row.max_wait()),
        );
    }
    println!();

    let mut csv = String::from(
        "kind,name,fifo,tasks,ops_per_task,total_ops,wall_ns,ns_per_op,\
         wait_mean_ns,wait_p50_ns,wait_p99_ns,wait_max_ns\n",
    );
    for row in &rows {
        assert!(!row.name.contains(','), "a name with a comma: {}", row.name);
        csv.push_str(&format!(
            "{},{},{},{TASKS},{},{},{},{:.1},{:.0},{},{},{}\n",
            row.kind,
            row.name,
            row.fifo,
            row.ops_per_task,
            row.total_ops(),
            row.wall_ns,
            row.ns_per_op(),
            row.mean_wait(),
            row.wait(0.5),
            row.wait(0.99),
            row.max_wait(),
        ));
    }
    let path = common::results_dir().join("fairness.csv");
    std::fs::write(&path, csv).expect("write fairness.csv");
    eprintln!("wrote {}", path.display());
}
