//! Memory follows what is held and queued at once, never how many distinct
//! keys were ever locked. A counting allocator measures this thread's live
//! heap bytes.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use crate::common::Task;
use lock_manager::LockManager;

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    // `try_with`: the allocator also runs while thread locals are torn down.
    let _ = LIVE.try_with(|live| live.set(live.get() + delta));
    if delta > 0 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
    }
}

// SAFETY: defers every call to `System` unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as isize));
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn live() -> isize {
    LIVE.with(Cell::get)
}

/// How many allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn a_request_for_up_to_four_u64_keys_allocates_nothing() {
    use futures::FutureExt;
    let locks = LockManager::with_shards(4);
    let keys = |n: u64, round: u64| (0..n).map(move |k| round * 100 + k);
    // The shards' maps grow to hold the keys once; after that, nothing.
    for round in 0..10 {
        drop(locks.acquire_many(keys(5, round)).now_or_never());
    }
    for n in 1..=4 {
        let count = allocations(|| {
            for round in 0..10 {
                let guard = locks.acquire_many(keys(n, round)).now_or_never();
                drop(guard.expect("free"));
                drop(locks.try_acquire_many(keys(n, round)).expect("free"));
                let bounded = locks.acquire_many(keys(n, round)).enqueue_bounded(0);
                drop(bounded.expect("free").now_or_never().expect("held"));
            }
        });
        assert_eq!(count, 0, "{n} keys");
    }
    // Five keys or more live on the heap.
    let count = allocations(|| drop(locks.acquire_many(keys(5, 0)).now_or_never()));
    assert!(count > 0);
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn a_million_distinct_keys_leave_memory_flat() {
    let locks = LockManager::new();
    let cycle = |key: u64| drop(locks.try_acquire(key).expect("free"));
    for key in 0..1_000 {
        cycle(key);
    }
    let warm = live();
    for key in 1_000..1_000_000 {
        cycle(key);
    }
    assert_eq!(live(), warm, "a released key left memory behind");
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn string_keys_and_contention_leave_memory_flat() {
    let locks = LockManager::new();
    let task = Task::new();
    let cycle = |i: u32| {
        let key = format!("story-{i:08}-with-a-longer-name");
        let holder = locks.try_acquire(key.clone()).expect("free");
        let mut waiter = locks.acquire(key.clone());
        let mut cancelled = locks.acquire(key);
        assert!(task.poll(&mut waiter).is_pending());
        assert!(task.poll(&mut cancelled).is_pending());
        drop(holder); // hand-off to `waiter`
        drop(cancelled); // cancelled while queued
        assert!(task.poll(&mut waiter).is_ready());
    };
    for i in 0..1_000 {
        cycle(i);
    }
    let warm = live();
    for i in 1_000..100_000 {
        cycle(i);
    }
    assert_eq!(live(), warm, "a cycle left memory behind");
    assert_eq!(
        format!("{locks:?}"),
        "LockManager { locked: 0, waiters: 0 }"
    );
}

/// 100,000 keys held and 100,000 waiters queued on one more, all gone
/// again: the manager gives the room back by itself, and `shrink_to_fit`
/// the little it keeps for steady traffic.
#[test]
fn a_burst_gives_its_memory_back() {
    let locks = LockManager::new();
    let task = Task::new();
    let baseline = live();

    let holders: Vec<_> = (1..=100_000u64).map(|key| locks.try_acquire(key)).collect();
    let holder = locks.try_acquire(0);
    let mut waiters: Vec<_> = (0..100_000).map(|_| locks.acquire(0)).collect();
    for waiter in &mut waiters {
        assert!(task.poll(waiter).is_pending());
    }
    let peak = live();
    drop(waiters);
    drop(holder);
    drop(holders);
    assert_eq!(locks.locked_count(), 0);
    let kept = live();

    locks.shrink_to_fit();
    let shrunk = live();
    assert!(
        peak - baseline > 4_000_000,
        "the burst took {}",
        peak - baseline
    );
    assert!(kept - baseline < 65_536, "kept {} bytes", kept - baseline);
    assert!(
        shrunk - baseline < 8_192,
        "left {} bytes",
        shrunk - baseline
    );
}

/// What the per-waiter memory target rests on, besides the 24-byte slab
/// entry (checked in `src/queue.rs`).
#[test]
#[cfg(target_pointer_width = "64")]
fn futures_and_guards_stay_small() {
    use lock_manager::{
        Acquire, AcquireMany, AcquireOwned, LockGuard, MultiLockGuard, OwnedLockGuard,
    };
    use std::mem::size_of;
    // With `diagnostics`, the future also keeps its caller's location.
    let extra = if cfg!(feature = "diagnostics") { 8 } else { 0 };
    assert_eq!(size_of::<Acquire<'static, u64>>(), 24 + extra);
    // The guard keeps the key's 32-bit hash, so that releasing never hashes;
    // the `Option` that lets it convert into a multi-key guard costs nothing.
    assert_eq!(size_of::<LockGuard<'static, u64>>(), 24);
    // An `Arc` is one pointer too: the owned forms are no larger.
    assert_eq!(size_of::<AcquireOwned<u64>>(), 24 + extra);
    assert_eq!(size_of::<OwnedLockGuard<u64>>(), 24);
    // Four keys and their claims in place (72 bytes under one tag), which
    // a task awaiting the future and holding the guard moves: the sizes
    // ARCHITECTURE.md's "What a multi-key request costs" quotes.
    assert_eq!(size_of::<AcquireMany<'static, u64>>(), 112 + extra);
    assert_eq!(size_of::<MultiLockGuard<'static, u64>>(), 88);
}
