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

fn measure<P: Peer<u64>>(rows: &mut Vec<String>) {
    if !common::selected(P::NAME) {
        return;
    }
    if !P::IS_LOCK {
        println!("{:<20} (not a lock: nothing ever queues)", P::NAME);
        return;
    }
    for q in SIZES {
        // Per op, in ns: cold enqueue, cancel, hand-off, then the same warm.
        let mut samples: [Vec<f64>; 6] = Default::default();
        let started = Instant::now();
        while samples[0].len() < REPS && (samples[0].is_empty() || started.elapsed() < BUDGET) {
            let peer = P::create();
            let cold = burst(&peer, q);
            let warm = burst(&peer, q);
            for (i, phases) in [cold, warm].iter().enumerate() {
                samples[3 * i].push(phases.enqueue.as_nanos() as f64 / q as f64);
                samples[3 * i + 1].push(phases.cancel.as_nanos() as f64 / (q / 2) as f64);
                samples[3 * i + 2].push(phases.handoff.as_nanos() as f64 / (q - q / 2) as f64);
            }
        }
        let runs = samples[0].len();
        let m: Vec<f64> = samples.into_iter().map(median).collect();
        println!(
            "{:<20} Q={q:<7} cold: enqueue {:>8.1} cancel {:>6.1} hand-off {:>8.1} | warm: enqueue {:>8.1} cancel {:>6.1} hand-off {:>8.1} ns ({runs} runs)",
            P::NAME, m[0], m[1], m[2], m[3], m[4], m[5]
        );
        rows.push(format!(
            "{}\t{q}\t{:.2}\t{:.2}\t{:.2}\t{:.2}\t{:.2}\t{:.2}\t{runs}",
            P::NAME,
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5]
        ));
    }
}

fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let mut rows = Vec::new();
    for_each_peer!(u64, P => { measure::<P>(&mut rows); });
    common::write_results(
        "queue.tsv",
        "peer\tq\tenqueue_ns\tcancel_ns\thandoff_ns\twarm_enqueue_ns\twarm_cancel_ns\twarm_handoff_ns\truns",
        &rows,
    );
}
