//! Throughput of every peer in the same process (issue 4, scenarios 1-5,
//! and `pairs` and `pairs-16`).
//!
//! 1. `uncontended`: one task, one key, acquire and release in a loop.
//! 2. `churn-u64` / `churn-string`: a new key every cycle (`u64`, or an owned
//!    29-byte `String` built for each call; `key-only` times building it).
//! 3. `contended`: 64 tasks on a 2-worker tokio runtime, one key, a tiny
//!    critical section. Beside the peers run two references, not peers:
//!    one plain `tokio::sync::Mutex<()>` (`ref-tokio-mutex`, FIFO) and one
//!    `async_lock::Mutex<()>` (`ref-async-lock-mutex`, not strictly FIFO)
//!    that every task locks, no key and no map (`common::Single`): what
//!    one hot key costs at best, the hand-off alone.
//! 4. `spread`: the same, keys uniform over 1,024.
//!    `pairs`: the same, but each operation locks two distinct keys uniform
//!    over 1,024 (no target of its own in the issue; multi-key locking came
//!    later). This crate asks for both with one `acquire_many`; every
//!    other peer locks the smaller key, then the larger (`Peer::lock_pair`).
//!    So does this crate in a row of its own, `lock-manager, 1 by 1` (two
//!    plain `acquire`s, `common::OursOneByOne`): the gap between its two
//!    rows is what one request for both keys costs.
//!    `pairs-16`: the same as `pairs`, but the two keys drawn from 16, so
//!    that any two operations share a key about a quarter of the time
//!    (1 - C(14,2)/C(16,2) = 0.24; over 1,024 keys, 0.004).
//! 5. `hot`: the same, keys Zipf(1.0) over 10,000.
//!
//! Scenarios 1 and 2 poll by hand with a no-op waker (every acquire
//! completes on its first poll); 3 to 5 and the pairs run on tokio. Every
//! result is per acquire-and-release (for the pairs, per operation: both
//! keys acquired and released); `scripts/bench.sh` turns them into the
//! results table. The floor is not a lock (see `common::Floor`).

#[macro_use]
mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};

use common::{
    key_sequences, names, now, run_tasks, string_key, Op, OursOneByOne, Peer, RefAsyncLockMutex,
    RefTokioMutex, Zipf, KEYS_PER_TASK, PAIRS_16_KEYS, SPREAD_KEYS, TASKS,
};

/// Operations per task in one criterion iteration of a multi-task scenario.
const OPS_PER_TASK: u64 = 256;

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
    let mut group = c.benchmark_group(names::UNCONTENDED.id);
    group.throughput(Throughput::Elements(1));
    for_each_peer!(u64, P => { uncontended::<P>(&mut group); });
    group.finish();

    let mut group = c.benchmark_group(names::CHURN_U64.id);
    group.throughput(Throughput::Elements(1));
    for_each_peer!(u64, P => { churn_u64::<P>(&mut group); });
    group.finish();

    let mut group = c.benchmark_group(names::CHURN_STRING.id);
    group.throughput(Throughput::Elements(1));
    for_each_peer!(String, P => { churn_string::<P>(&mut group); });
    // What building the owned key alone costs; every row above includes it.
    let mut next = 0u64;
    group.bench_function(names::KEY_ONLY, |b| {
        b.iter(|| {
            next = next.wrapping_add(1);
            drop(black_box(string_key(black_box(next))));
        })
    });
    group.finish();
}

fn multi_task<P: Peer<u64>, T: Op>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    keys: &Arc<Vec<Vec<T>>>,
) {
    let peer = Arc::new(P::create());
    group.bench_function(P::NAME, |b| {
        b.iter_custom(|iters| run_tasks(rt, &peer, keys, iters * OPS_PER_TASK))
    });
}

/// Runs one multi-task scenario for every peer, one element per operation,
/// then, where operations lock pairs, for this crate taking the keys one by
/// one, and then for the single-mutex references if `references` (they
/// ignore the key, so they only mean something where every task locks one
/// key).
fn scenario<T: Op>(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    keys: Vec<Vec<T>>,
    references: bool,
) {
    let keys = Arc::new(keys);
    let mut group = c.benchmark_group(name);
    group
        .throughput(Throughput::Elements(TASKS as u64 * OPS_PER_TASK))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for_each_peer!(u64, P => { multi_task::<P, T>(&mut group, rt, &keys); });
    if T::PAIR {
        multi_task::<OursOneByOne<u64>, T>(&mut group, rt, &keys);
    }
    if references {
        multi_task::<RefTokioMutex, T>(&mut group, rt, &keys);
        multi_task::<RefAsyncLockMutex, T>(&mut group, rt, &keys);
    }
    group.finish();
}

fn many_tasks(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    let zipf = Zipf::new(10_000, 1.0);
    let contended = key_sequences(TASKS, 1, |_| 0u64);
    scenario(c, &rt, names::CONTENDED.id, contended, true);
    let spread = key_sequences(TASKS, KEYS_PER_TASK, |rng| rng.below(SPREAD_KEYS));
    scenario(c, &rt, names::SPREAD.id, spread, false);
    let pairs = key_sequences(TASKS, KEYS_PER_TASK, |rng| rng.distinct_pair(SPREAD_KEYS));
    scenario(c, &rt, names::PAIRS.id, pairs, false);
    let pairs_16 = key_sequences(TASKS, KEYS_PER_TASK, |rng| rng.distinct_pair(PAIRS_16_KEYS));
    scenario(c, &rt, names::PAIRS_16.id, pairs_16, false);
    let hot = key_sequences(TASKS, KEYS_PER_TASK, |rng| zipf.sample(rng));
    scenario(c, &rt, names::HOT.id, hot, false);
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
