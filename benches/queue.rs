//! Queue scaling (issue 4, scenario 6): Q = 1,000 / 10,000 / 100,000
//! waiters on one key, polled by hand with a no-op waker, no runtime.
//!
//! For each peer and Q, timed separately:
//! - `enqueue`: the first poll of each of Q fresh acquire futures while the
//!   key is held (each joins the queue);
//! - `cancel`: dropping every other waiter (Q/2 cancellations);
//! - `hand-off`: releasing the holder, then polling the remaining Q/2
//!   waiters oldest first, each taking the key and releasing it at once.
//!
//! Each run does this twice on one new peer: `cold`, the first burst
//! (which pays for growing whatever holds the waiters), then `warm`, a
//! second burst of the same size that can reuse that memory. The targets
//! are judged on the cold numbers; warm shows what growth costs.
//!
//! The futures live in place in one boxed slice, so no timing includes an
//! allocation or free of a future itself. Each (peer, Q) is rebuilt and
//! measured several times and the median per phase is kept; a peer whose
//! costs grow with Q gets fewer repetitions at large Q to bound the run.
//! The repetitions alternate between the peers, one peer further along the
//! list each time, so that a slow spell of this shared machine (which can
//! last seconds and cost half again) falls on every peer alike, not on
//! whichever ran during it. A burst may then reuse memory that another
//! peer's burst just freed: allocated in a fresh process, lock-manager's
//! slab faults in new pages as it grows, and its enqueue at Q = 100,000
//! costs about 1.4x its cost at 1,000 (run it alone with
//! `LOCK_MANAGER_BENCH_PEERS=lock-manager`); interleaved, about the same.
//!
//! A custom harness rather than criterion: every phase needs a fresh queue
//! built outside the timing, and one peer's drain is quadratic (seconds at
//! Q = 100,000), which criterion's minimum sample counts would multiply.

#[macro_use]
mod common;

use std::task::Poll;
use std::time::{Duration, Instant};

use common::{median, now, Peer, Slots};

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const KEY: u64 = 42;
/// Repetitions wanted per (peer, Q), and the time after which no new one
/// starts.
const REPS: usize = 7;
const BUDGET: Duration = Duration::from_secs(4);

struct Phases {
    enqueue: Duration,
    cancel: Duration,
    handoff: Duration,
}

/// Builds a queue of `q` waiters behind a holder and times the three phases.
fn burst<P: Peer<u64>>(peer: &P, q: usize) -> Phases {
    let holder = now(peer.lock(KEY));
    let mut slots = Slots::new((0..q).map(|_| peer.lock(KEY)));

    let start = Instant::now();
    for i in 0..q {
        match slots.poll(i) {
            Some(Poll::Pending) => {}
            _ => panic!("{}: waiter {i} did not queue", P::NAME),
        }
    }
    let enqueue = start.elapsed();

    let start = Instant::now();
    for i in (1..q).step_by(2) {
        slots.cancel(i);
    }
    let cancel = start.elapsed();

    let start = Instant::now();
    drop(holder);
    for i in (0..q).step_by(2) {
        match slots.poll(i) {
            Some(Poll::Ready(guard)) => drop(guard),
            _ => panic!("{}: waiter {i} was not handed the key in turn", P::NAME),
        }
        slots.cancel(i);
    }
    let handoff = start.elapsed();

    drop(slots);
    Phases {
        enqueue,
        cancel,
        handoff,
    }
}

/// The six medians of one cold and one warm burst of `q` waiters, each in
/// ns per operation: enqueue, cancel and hand-off, cold then warm.
type Sample = [f64; 6];

/// A peer to measure, once per repetition.
struct Entry {
    name: &'static str,
    bursts: fn(usize) -> Sample,
}

fn entry<P: Peer<u64>>() -> Option<Entry> {
    if !common::selected(P::NAME) {
        return None;
    }
    if !P::IS_LOCK {
        println!("{:<20} (not a lock: nothing ever queues)", P::NAME);
        return None;
    }
    Some(Entry {
        name: P::NAME,
        bursts: bursts::<P>,
    })
}

/// A cold and a warm burst of `q` waiters on one new peer.
fn bursts<P: Peer<u64>>(q: usize) -> Sample {
    let peer = P::create();
    let cold = burst(&peer, q);
    let warm = burst(&peer, q);
    let per_op = |d: Duration, ops: usize| d.as_nanos() as f64 / ops as f64;
    let phases = |p: &Phases| {
        [
            per_op(p.enqueue, q),
            per_op(p.cancel, q / 2),
            per_op(p.handoff, q - q / 2),
        ]
    };
    let (cold, warm) = (phases(&cold), phases(&warm));
    [cold[0], cold[1], cold[2], warm[0], warm[1], warm[2]]
}

/// Runs every entry's bursts of `q` waiters up to [`REPS`] times each,
/// alternating between entries and rotating their order; an entry stops
/// early once it has spent [`BUDGET`]. Returns each entry's samples.
fn measure(entries: &[Entry], q: usize) -> Vec<Vec<Sample>> {
    let mut samples = vec![Vec::new(); entries.len()];
    let mut spent = vec![Duration::ZERO; entries.len()];
    for rep in 0..REPS {
        for offset in 0..entries.len() {
            let i = (rep + offset) % entries.len();
            if rep > 0 && spent[i] >= BUDGET {
                continue;
            }
            let start = Instant::now();
            samples[i].push((entries[i].bursts)(q));
            spent[i] += start.elapsed();
        }
    }
    samples
}

fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let mut entries = Vec::new();
    for_each_peer!(u64, P => { entries.extend(entry::<P>()); });
    let mut rows = Vec::new();
    for q in SIZES {
        for (entry, samples) in entries.iter().zip(measure(&entries, q)) {
            let runs = samples.len();
            let m: Vec<f64> = (0..6)
                .map(|phase| median(samples.iter().map(|s| s[phase]).collect()))
                .collect();
            println!(
                "{:<20} Q={q:<7} cold: enqueue {:>8.1} cancel {:>6.1} hand-off {:>8.1} | warm: enqueue {:>8.1} cancel {:>6.1} hand-off {:>8.1} ns ({runs} runs)",
                entry.name, m[0], m[1], m[2], m[3], m[4], m[5]
            );
            rows.push(format!(
                "{}\t{q}\t{:.2}\t{:.2}\t{:.2}\t{:.2}\t{:.2}\t{:.2}\t{runs}",
                entry.name, m[0], m[1], m[2], m[3], m[4], m[5]
            ));
        }
    }
    common::write_results(
        "queue.tsv",
        "peer\tq\tenqueue_ns\tcancel_ns\thandoff_ns\twarm_enqueue_ns\twarm_cancel_ns\twarm_handoff_ns\truns",
        &rows,
    );
}
