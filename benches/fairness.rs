//! Fairness on one hot key: how long each acquire waits, not only how many
//! acquires a second; and the same hot key without an `.await` inside, run
//! the same way, against one `tokio::sync::Mutex` (issue 8, targets 1 and 2).
//!
//! 64 tasks on a 2-worker tokio runtime lock one key, `FAIRNESS_OPS` times
//! each in all (default 10,000). In the `yield` section each task notes the
//! time from asking for the lock to getting it; holding it, the task reads
//! a shared counter, yields to the runtime (`tokio::task::yield_now`: an
//! `.await` inside the critical section, as real ones have) and writes the
//! counter back plus one. The `tight` section does the same, 4x as many
//! times, without the yield and without timing each wait: the `contended`
//! scenario of `benches/locks.rs`. A lock that let two tasks in at once would lose an
//! update: every run checks the count at the end and panics if any was
//! lost.
//!
//! Run for every keyed peer (the floor is left out: it is not a lock) and
//! for three references, not peers, one mutex that every task locks:
//! `tokio::sync::Mutex<()>` (FIFO), `async_lock::Mutex<()>` and
//! `futures::lock::Mutex<()>` (which lets a running task barge ahead of the
//! waiters it woke).
//!
//! Rounds: the acquires are split over `FAIRNESS_ROUNDS` rounds (default
//! 5); each round runs every lock once, starting one lock further along the
//! list each time, so that every lock meets the same moments of a busy
//! machine. Reported for each lock: ns per op (wall time over the round's
//! acquires, the inverse of throughput), the median over the rounds; the
//! ratio to the tokio mutex, the median over the rounds of the ratio within
//! each round, which a noisy neighbour touching one round does not move;
//! and (`yield` only) the wait of one acquire over every round: the mean,
//! p50, p99 and the max, with the median over the rounds of each round's
//! max.
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
//! No criterion: one run prints a markdown table per section and writes
//! `fairness.csv` (`yield`) and `fairness-tight.csv` (to
//! `$LOCK_MANAGER_BENCH_OUT`, by default `target/bench-results`) for
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

use common::{median, names, Peer, RefAsyncLockMutex, RefFuturesMutex, RefTokioMutex};

/// Tasks, all on one key.
const TASKS: usize = 64;
/// Acquires per task, over all rounds, unless `FAIRNESS_OPS` says
/// otherwise: 640,000 per lock, about 1 µs each with the yield on 2 cores,
/// some 10 s for the whole run.
const DEFAULT_OPS: u64 = 10_000;
/// Rounds unless `FAIRNESS_ROUNDS` says otherwise.
const DEFAULT_ROUNDS: u64 = 5;
/// Acquires per task of the untimed warm-up before the first round.
const WARM_UP_OPS: u64 = 100;
/// The one key every task locks.
const KEY: u64 = 0;

/// What a task does while it holds the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    /// Read the counter, `yield_now().await`, write it back: the fairness
    /// scenario, every wait timed.
    Yield,
    /// Read the counter and write it back, no `.await` and no timing: the
    /// `contended` scenario.
    Tight,
}

impl Section {
    const ALL: [Section; 2] = [Section::Yield, Section::Tight];

    fn name(self) -> &'static str {
        match self {
            Section::Yield => "yield",
            Section::Tight => "tight",
        }
    }

    /// Acquires per task per round, for `ops` in the `Yield` section: the
    /// tight section, some 6x faster, runs 4x as many, so that a round
    /// lasts long enough to measure.
    fn ops(self, ops: u64) -> u64 {
        match self {
            Section::Yield => ops,
            Section::Tight => 4 * ops,
        }
    }

    fn csv(self) -> &'static str {
        match self {
            Section::Yield => "fairness.csv",
            Section::Tight => "fairness-tight.csv",
        }
    }
}

/// One run: its wall time and every wait (unsorted, none for `Tight`), in
/// ns.
type Run = (u128, Vec<u64>);

/// A lock to measure: `run` runs it once, on a fresh instance.
struct Entry {
    name: &'static str,
    kind: &'static str,
    fifo: bool,
    run: fn(&tokio::runtime::Runtime, u64, Section) -> Run,
}

/// What one lock measured in one section, over every round.
struct Row {
    name: &'static str,
    kind: &'static str,
    fifo: bool,
    /// Acquires per task per round.
    ops_per_round: u64,
    /// Each round's wall time, in ns.
    walls: Vec<u128>,
    /// Each round's longest wait, in ns (empty for `Tight`).
    round_maxima: Vec<u64>,
    /// Every acquire's wait in ns over all rounds, sorted (empty for
    /// `Tight`).
    waits: Vec<u64>,
    /// The median over the rounds of its ns per op over the tokio mutex's
    /// in the same round, if that was run.
    vs_ref_tokio: Option<f64>,
}

impl Row {
    fn round_ns_per_op(&self, round: usize) -> f64 {
        self.walls[round] as f64 / (TASKS as u64 * self.ops_per_round) as f64
    }

    fn ns_per_op(&self) -> f64 {
        median(
            (0..self.walls.len())
                .map(|r| self.round_ns_per_op(r))
                .collect(),
        )
    }

    fn total_ops(&self) -> u64 {
        TASKS as u64 * self.ops_per_round * self.walls.len() as u64
    }

    /// Nearest rank: the smallest wait that at least `p` of all waits
    /// are no longer than.
    fn wait(&self, p: f64) -> Option<u64> {
        let n = self.waits.len();
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n.max(1));
        self.waits.get(rank - 1).copied()
    }

    fn mean_wait(&self) -> Option<f64> {
        (!self.waits.is_empty())
            .then(|| self.waits.iter().map(|&w| w as f64).sum::<f64>() / self.waits.len() as f64)
    }

    fn max_wait(&self) -> Option<u64> {
        self.waits.last().copied()
    }

    fn typical_max_wait(&self) -> Option<u64> {
        (!self.round_maxima.is_empty())
            .then(|| median(self.round_maxima.iter().map(|&m| m as f64).collect()) as u64)
    }
}

/// Runs `ops_per_task` acquires in each of `TASKS` tasks on one fresh `P`.
fn run<P: Peer<u64>>(rt: &tokio::runtime::Runtime, ops_per_task: u64, section: Section) -> Run {
    let peer = Arc::new(P::create());
    let counter = Arc::new(AtomicU64::new(0));
    let (wall_ns, per_task) = rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let peer = Arc::clone(&peer);
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let timed = section == Section::Yield;
                    let mut waits =
                        Vec::with_capacity(if timed { ops_per_task as usize } else { 0 });
                    for _ in 0..ops_per_task {
                        let asked = timed.then(Instant::now);
                        let guard = peer.lock(KEY).await;
                        if let Some(asked) = asked {
                            waits.push(asked.elapsed().as_nanos() as u64);
                        }
                        // Read, (give the worker away,) write back: the
                        // lock alone orders these (hence `Relaxed`), and two
                        // holders at once would lose an update.
                        let value = counter.load(Ordering::Relaxed);
                        if timed {
                            tokio::task::yield_now().await;
                        }
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

/// `P` as an entry, unless `LOCK_MANAGER_BENCH_PEERS` leaves it out.
fn entry<P: Peer<u64>>(kind: &'static str) -> Option<Entry> {
    common::selected(P::NAME).then_some(Entry {
        name: P::NAME,
        kind,
        fifo: P::FIFO,
        run: run::<P>,
    })
}

/// Runs every entry once per round in `section`, rotating the order.
fn measure(
    rt: &tokio::runtime::Runtime,
    entries: &[Entry],
    section: Section,
    ops_per_round: u64,
    rounds: u64,
) -> Vec<Row> {
    let mut rows: Vec<Row> = entries
        .iter()
        .map(|e| Row {
            name: e.name,
            kind: e.kind,
            fifo: e.fifo,
            ops_per_round,
            walls: Vec::new(),
            round_maxima: Vec::new(),
            waits: Vec::new(),
            vs_ref_tokio: None,
        })
        .collect();
    // Warm up the runtime's workers and each lock's own allocations.
    for e in entries {
        (e.run)(rt, WARM_UP_OPS.min(ops_per_round), section);
    }
    let n = entries.len();
    for round in 0..rounds as usize {
        for i in (0..n).map(|i| (i + round) % n) {
            let (wall_ns, waits) = (entries[i].run)(rt, ops_per_round, section);
            let row = &mut rows[i];
            row.walls.push(wall_ns);
            if let Some(&max) = waits.iter().max() {
                row.round_maxima.push(max);
            }
            row.waits.extend(waits);
        }
    }
    if let Some(tokio) = rows
        .iter()
        .position(|r| r.name == <RefTokioMutex as Peer<u64>>::NAME)
    {
        let reference: Vec<f64> = (0..rounds as usize)
            .map(|r| rows[tokio].round_ns_per_op(r))
            .collect();
        for row in &mut rows {
            let ratios = reference
                .iter()
                .enumerate()
                .map(|(r, tokio)| row.round_ns_per_op(r) / tokio)
                .collect();
            row.vs_ref_tokio = Some(median(ratios));
        }
    }
    for row in &mut rows {
        row.waits.sort_unstable();
        eprintln!(
            "{:<6} {:<22} {:>9.1} ns/op{}{}",
            section.name(),
            row.name,
            row.ns_per_op(),
            row.vs_ref_tokio
                .map(|v| format!(" ({v:.2}x the tokio mutex)"))
                .unwrap_or_default(),
            match (
                row.mean_wait(),
                row.wait(0.5),
                row.wait(0.99),
                row.max_wait()
            ) {
                (Some(mean), Some(p50), Some(p99), Some(max)) => format!(
                    "  wait mean {}, p50 {}, p99 {}, max {} (round max, median {})",
                    fmt_ns(mean as u64),
                    fmt_ns(p50),
                    fmt_ns(p99),
                    fmt_ns(max),
                    fmt_ns(row.typical_max_wait().unwrap_or(max)),
                ),
                _ => String::new(),
            },
        );
    }
    rows
}

fn fmt_ns(ns: u64) -> String {
    match ns {
        0..10_000 => format!("{ns} ns"),
        10_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        _ => format!("{:.1} ms", ns as f64 / 1e6),
    }
}

fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let ops_per_task = common::env_count("FAIRNESS_OPS", DEFAULT_OPS);
    let rounds = common::env_count("FAIRNESS_ROUNDS", DEFAULT_ROUNDS).min(ops_per_task);
    let ops_per_round = ops_per_task / rounds;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    eprintln!(
        "one key, {TASKS} tasks x {ops_per_round} acquires x {rounds} rounds on 2 workers; \
         critical section: read, yield_now, write (yield) or read, write (tight)"
    );

    let mut entries = Vec::new();
    for_each_peer!(u64, P => {
        // The floor excludes nobody: it would lose updates by design.
        if P::IS_LOCK {
            entries.extend(entry::<P>(names::KIND_PEER));
        }
    });
    entries.extend(entry::<RefTokioMutex>(names::KIND_REFERENCE));
    entries.extend(entry::<RefAsyncLockMutex>(names::KIND_REFERENCE));
    entries.extend(entry::<RefFuturesMutex>(names::KIND_REFERENCE));

    for section in Section::ALL {
        let ops_per_round = section.ops(ops_per_round);
        let rows = measure(&rt, &entries, section, ops_per_round, rounds);
        print_table(section, &rows, ops_per_round, rounds);
        write_csv(section, &rows);
    }
}

fn print_table(section: Section, rows: &[Row], ops_per_round: u64, rounds: u64) {
    let opt = |ns: Option<u64>| ns.map(fmt_ns).unwrap_or_default();
    println!();
    println!(
        "Fairness, `{}`: one key, {TASKS} tasks x {ops_per_round} acquires x {rounds} rounds, \
         2 tokio workers",
        section.name()
    );
    println!();
    println!(
        "| Lock | Kind | FIFO | ns / op | vs tokio mutex | wait mean | wait p50 | wait p99 \
         | wait max | round max, median |"
    );
    println!("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        println!(
            "| {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} |",
            row.name,
            row.kind,
            if row.fifo { "yes" } else { "no" },
            row.ns_per_op(),
            row.vs_ref_tokio
                .map(|v| format!("{v:.2}x"))
                .unwrap_or_default(),
            opt(row.mean_wait().map(|m| m as u64)),
            opt(row.wait(0.5)),
            opt(row.wait(0.99)),
            opt(row.max_wait()),
            opt(row.typical_max_wait()),
        );
    }
    println!();
}

fn write_csv(section: Section, rows: &[Row]) {
    let opt = |v: Option<String>| v.unwrap_or_default();
    let mut csv = String::from(
        "kind,name,fifo,tasks,ops_per_task,rounds,total_ops,wall_ns,ns_per_op,vs_ref_tokio,\
         wait_mean_ns,wait_p50_ns,wait_p99_ns,wait_max_ns,wait_max_round_median_ns\n",
    );
    for row in rows {
        assert!(!row.name.contains(','), "a name with a comma: {}", row.name);
        csv.push_str(&format!(
            "{},{},{},{TASKS},{},{},{},{},{:.1},{},{},{},{},{},{}\n",
            row.kind,
            row.name,
            row.fifo,
            row.ops_per_round * row.walls.len() as u64,
            row.walls.len(),
            row.total_ops(),
            row.walls.iter().sum::<u128>(),
            row.ns_per_op(),
            opt(row.vs_ref_tokio.map(|v| format!("{v:.4}"))),
            opt(row.mean_wait().map(|m| format!("{m:.0}"))),
            opt(row.wait(0.5).map(|w| w.to_string())),
            opt(row.wait(0.99).map(|w| w.to_string())),
            opt(row.max_wait().map(|w| w.to_string())),
            opt(row.typical_max_wait().map(|w| w.to_string())),
        ));
    }
    let path = common::results_dir().join(section.csv());
    std::fs::write(&path, csv).unwrap_or_else(|e| panic!("write {}: {e}", section.csv()));
    eprintln!("wrote {}", path.display());
}
