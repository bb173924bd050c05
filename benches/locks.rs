//! Throughput of every peer in the same process (issue 4, scenarios 1-5).
//!
//! 1. `uncontended`: one task, one key, acquire and release in a loop.
//! 2. `churn-u64` / `churn-string`: a new key every cycle (`u64`, or an owned
//!    29-byte `String` built for each call; `key-only` times building it).
//! 3. `contended`: 64 tasks on a 2-worker tokio runtime, one key, a tiny
//!    critical section.
//! 4. `spread`: the same, keys uniform over 1,024.
//! 5. `hot`: the same, keys Zipf(1.0) over 10,000.
//!
//! Scenarios 1 and 2 poll by hand with a no-op waker (every acquire
//! completes on its first poll); 3 to 5 run on tokio. Every result is per
//! acquire-and-release; `scripts/bench.sh` turns them into the results
//! table. The floor is not a lock (see `common::Floor`).

#[macro_use]
mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};

use common::{key_sequences, now, string_key, Peer, Zipf};

/// Tasks in the multi-task scenarios.
const TASKS: usize = 64;
/// Acquires per task in one criterion iteration of a multi-task scenario.
const OPS_PER_TASK: u64 = 256;
/// Length of each task's pre-drawn key sequence.
const KEYS_PER_TASK: usize = 4096;

fn uncontended<P: Peer<u64>>(group: &mut BenchmarkGroup<'_, WallTime>) {
    let peer = P::create();
    group.bench_function(P::NAME, |b| b.iter(|| drop(now(peer.lock(black_box(7))))));
}

fn churn_u64<P: Peer<u64>>(group: &mut BenchmarkGroup<'_, WallTime>) {
    let peer = P::create();
    let mut next = 0u64;
    group.bench_function(P::NAME, |b| {
        b.iter(|| {
            next = next.wrapping_add(1);
            drop(now(peer.lock(black_box(next))));
        })
    });
}

fn churn_string<P: Peer<String>>(group: &mut BenchmarkGroup<'_, WallTime>) {
    let peer = P::create();
    let mut next = 0u64;
    group.bench_function(P::NAME, |b| {
        b.iter(|| {
            next = next.wrapping_add(1);
            drop(now(peer.lock(string_key(black_box(next)))));
        })
    });
}

fn single_task(c: &mut Criterion) {
    let mut group = c.benchmark_group("uncontended");
    group.throughput(Throughput::Elements(1));
    for_each_peer!(u64, P => { uncontended::<P>(&mut group); });
    group.finish();

    let mut group = c.benchmark_group("churn-u64");
    group.throughput(Throughput::Elements(1));
    for_each_peer!(u64, P => { churn_u64::<P>(&mut group); });
    group.finish();

    let mut group = c.benchmark_group("churn-string");
    group.throughput(Throughput::Elements(1));
    for_each_peer!(String, P => { churn_string::<P>(&mut group); });
    // What building the owned key alone costs; every row above includes it.
    let mut next = 0u64;
    group.bench_function("key-only", |b| {
        b.iter(|| {
            next = next.wrapping_add(1);
            drop(black_box(string_key(black_box(next))));
        })
    });
    group.finish();
}

/// Spawns `TASKS` tasks, each acquiring and releasing `ops` keys from its
/// own sequence with a tiny critical section, and times them all.
fn run_tasks<P: Peer<u64>>(
    rt: &tokio::runtime::Runtime,
    peer: &Arc<P>,
    keys: &Arc<Vec<Vec<u64>>>,
    ops: u64,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let peer = Arc::clone(peer);
                let keys = Arc::clone(keys);
                tokio::spawn(async move {
                    let keys = &keys[task];
                    let mut sum = 0u64;
                    for i in 0..ops as usize {
                        let key = keys[i % keys.len()];
                        let guard = peer.lock(key).await;
                        // The critical section.
                        sum = sum.wrapping_add(black_box(key));
                        drop(guard);
                    }
                    sum
                })
            })
            .collect();
        for task in tasks {
            black_box(task.await.expect("bench task panicked"));
        }
        start.elapsed()
    })
}

fn multi_task<P: Peer<u64>>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    keys: &Arc<Vec<Vec<u64>>>,
) {
    let peer = Arc::new(P::create());
    group.bench_function(P::NAME, |b| {
        b.iter_custom(|iters| run_tasks(rt, &peer, keys, iters * OPS_PER_TASK))
    });
}

fn many_tasks(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    let zipf = Zipf::new(10_000, 1.0);
    let scenarios = [
        ("contended", key_sequences(TASKS, 1, |_| 0)),
        (
            "spread",
            key_sequences(TASKS, KEYS_PER_TASK, |rng| rng.below(1024)),
        ),
        (
            "hot",
            key_sequences(TASKS, KEYS_PER_TASK, |rng| zipf.sample(rng)),
        ),
    ];
    for (name, keys) in scenarios {
        let keys = Arc::new(keys);
        let mut group = c.benchmark_group(name);
        group
            .throughput(Throughput::Elements(TASKS as u64 * OPS_PER_TASK))
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .measurement_time(Duration::from_secs(3));
        for_each_peer!(u64, P => { multi_task::<P>(&mut group, &rt, &keys); });
        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = single_task, many_tasks
}
criterion_main!(benches);
