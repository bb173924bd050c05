//! Memory (issue 4, scenario 7), counted by a global allocator that tracks
//! live heap bytes and allocation calls. Single-threaded, no runtime:
//! futures are polled by hand with a no-op waker (whose clones allocate
//! nothing, as with tokio's or any `Arc`-based waker).
//!
//! For every peer:
//! - `held key`: heap bytes per held `u64` key, N keys held at once (the
//!   guards' own storage excluded; their size is shown apart);
//! - `waiter`: bytes per queued waiter on one key, Q waiters: the future's
//!   own size plus the heap its first poll takes;
//! - `burst left`: heap bytes still allocated after a burst of 10,000
//!   held keys and 10,000 waiters on one key has been released (the floor:
//!   the keys alone);
//! - `allocs/cycle`: allocation calls per acquire-and-release on a new key
//!   every cycle, after a warm-up, for `u64` keys and for owned 29-byte
//!   `String` keys (building the `String` is one of them; `by lock` is what
//!   remains);
//! - `allocs/waiter`: allocation calls per waiter enqueued and handed the
//!   key, at Q = 10,000.

#[macro_use]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::Relaxed};
use std::task::Poll;

use common::{names, now, string_key, Ours, Peer, Slots};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            ALLOCS.fetch_add(1, Relaxed);
            LIVE.fetch_add(layout.size() as isize, Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            ALLOCS.fetch_add(1, Relaxed);
            LIVE.fetch_add(layout.size() as isize, Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            ALLOCS.fetch_add(1, Relaxed);
            LIVE.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Relaxed)
}

fn allocs() -> usize {
    ALLOCS.load(Relaxed)
}

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const BURST: usize = 100_000;
const CYCLES: u64 = 100_000;
const WARM_UP: u64 = 1_000;

/// One measured value for the table: (peer, metric, value).
struct Out {
    rows: Vec<String>,
}

impl Out {
    fn put(&mut self, peer: &str, metric: &str, value: f64) {
        println!("{peer:<20} {metric:<28} {value:>12.2}");
        self.rows.push(format!("{peer}\t{metric}\t{value:.3}"));
    }
}

fn size_of_future<F>(_: &Slots<F>) -> usize {
    std::mem::size_of::<F>()
}

fn held_keys<P: Peer<u64>>(out: &mut Out) {
    for n in SIZES {
        let peer = P::create();
        let mut guards = Vec::with_capacity(n);
        let before = live();
        for key in 0..n as u64 {
            guards.push(now(peer.lock(key)));
        }
        let bytes = live() - before;
        out.put(
            P::NAME,
            &format!("held_key_bytes_{n}"),
            bytes as f64 / n as f64,
        );
        if n == SIZES[0] {
            out.put(
                P::NAME,
                "guard_size",
                std::mem::size_of_val(&guards[0]) as f64,
            );
        }
    }
}

fn waiters<P: Peer<u64>>(out: &mut Out) {
    for q in SIZES {
        let peer = P::create();
        let holder = now(peer.lock(0));
        let before = live();
        let mut slots = Slots::new((0..q).map(|_| peer.lock(0)));
        let storage = live() - before;
        let allocs_before = allocs();
        for i in 0..q {
            assert!(
                matches!(slots.poll(i), Some(Poll::Pending)),
                "waiter did not queue"
            );
        }
        let heap = live() - before - storage;
        let future = size_of_future(&slots);
        out.put(
            P::NAME,
            &format!("waiter_bytes_{q}"),
            future as f64 + heap as f64 / q as f64,
        );
        if q == SIZES[0] {
            out.put(P::NAME, "future_size", future as f64);
        }
        if q == 10_000 {
            // Hand the key down the whole queue, counting allocations.
            drop(holder);
            for i in 0..q {
                match slots.poll(i) {
                    Some(Poll::Ready(guard)) => drop(guard),
                    _ => panic!("{}: waiter {i} was not handed the key", P::NAME),
                }
                slots.cancel(i);
            }
            out.put(
                P::NAME,
                "allocs_per_waiter",
                (allocs() - allocs_before) as f64 / q as f64,
            );
        } else {
            drop(slots);
            drop(holder);
        }
    }
}

fn burst<P: Peer<u64>>(out: &mut Out) {
    let peer = P::create();
    let before = live();
    burst_on(&peer);
    out.put(P::NAME, "burst_left_bytes", (live() - before) as f64);
}

/// The same burst on this crate, then `shrink_to_fit`.
fn burst_then_shrink(out: &mut Out) {
    let peer = Ours::<u64>::create();
    let before = live();
    burst_on(&peer);
    peer.0.shrink_to_fit();
    out.put(
        Ours::<u64>::NAME,
        "burst_left_after_shrink_bytes",
        (live() - before) as f64,
    );
}

/// 100,000 keys held and 100,000 waiters on one more, all released again.
fn burst_on<P: Peer<u64>>(peer: &P) {
    {
        let guards: Vec<_> = (1..=BURST as u64).map(|key| now(peer.lock(key))).collect();
        let holder = now(peer.lock(0));
        // The floor never queues: its burst is the held keys alone.
        let waiters = if P::IS_LOCK { BURST } else { 0 };
        let mut slots = Slots::new((0..waiters).map(|_| peer.lock(0)));
        for i in 0..waiters {
            assert!(
                matches!(slots.poll(i), Some(Poll::Pending)),
                "waiter did not queue"
            );
        }
        // Waiters leave first (the recipes' clean-up needs the holder to go
        // last), then the holder and the other keys are released.
        drop(slots);
        drop(holder);
        drop(guards);
    }
}

fn churn_u64<P: Peer<u64>>(out: &mut Out) {
    let peer = P::create();
    for key in 0..WARM_UP {
        drop(now(peer.lock(key)));
    }
    let before = allocs();
    for key in WARM_UP..WARM_UP + CYCLES {
        drop(now(peer.lock(key)));
    }
    out.put(
        P::NAME,
        "allocs_per_cycle_u64",
        (allocs() - before) as f64 / CYCLES as f64,
    );
}

fn churn_string<P: Peer<String>>(out: &mut Out) {
    let peer = P::create();
    for n in 0..WARM_UP {
        drop(now(peer.lock(string_key(n))));
    }
    let before = allocs();
    for n in WARM_UP..WARM_UP + CYCLES {
        drop(now(peer.lock(string_key(n))));
    }
    out.put(
        P::NAME,
        "allocs_per_cycle_string",
        (allocs() - before) as f64 / CYCLES as f64,
    );
}

fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let mut out = Out { rows: Vec::new() };

    let before = allocs();
    for n in 0..CYCLES {
        drop(std::hint::black_box(string_key(n)));
    }
    out.put(
        names::KEY_ONLY,
        "allocs_per_cycle_string",
        (allocs() - before) as f64 / CYCLES as f64,
    );

    for_each_peer!(u64, P => {
        if common::selected(P::NAME) {
            held_keys::<P>(&mut out);
            if P::IS_LOCK {
                waiters::<P>(&mut out);
            }
            burst::<P>(&mut out);
            churn_u64::<P>(&mut out);
        }
    });
    if common::selected(Ours::<u64>::NAME) {
        burst_then_shrink(&mut out);
    }
    for_each_peer!(String, P => {
        if common::selected(P::NAME) {
            churn_string::<P>(&mut out);
        }
    });
    common::write_results("memory.tsv", "peer\tmetric\tvalue", &out.rows);
}
