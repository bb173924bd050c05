//! Keyed async locks: one exclusive lock per key, granted in strict FIFO
//! order, on any executor.
//!
//! A [`LockManager`] serializes work on the same key (several tasks
//! updating the same file, row or story) while work on different keys runs
//! in parallel. There is nothing to register: any key can be locked, and a
//! key is forgotten the moment it is released with nobody waiting.
//!
//! ```
//! use lock_manager::LockManager;
//!
//! # futures::executor::block_on(async {
//! let locks = LockManager::new();
//!
//! // Hold a key with a guard...
//! let guard = locks.acquire("story-1").await;
//! assert!(locks.is_locked("story-1"));
//! drop(guard);
//!
//! // ...or run a body under it; the lock is released however the body ends.
//! let words = locks.with_lock("story-1", || async { 1200 }).await;
//! assert_eq!(words, 1200);
//! assert_eq!(locks.locked_count(), 0);
//! # });
//! ```
//!
//! # Examples in the repository
//!
//! - `examples/tokio.rs`, `async_std.rs`, `smol.rs` and `futures.rs`: the
//!   classic use on each runtime: many tasks read, modify and write a few
//!   files, losing updates without the manager and none with it.
//! - `examples/threads.rs`: async tasks and plain threads share keys, guards
//!   move between them, and threads give up at their deadline.
//! - `examples/single_flight.rs`: a small library built on the manager:
//!   concurrent loads of one key coalesced into one, a cancelled or failed
//!   load handed to the next caller.
//! - `examples/stuck.rs` (`--features diagnostics`): finding a stuck key,
//!   and the code holding it, with [`LockManager::snapshot`].
//! - `examples/story-service/`: a web service (axum, SQLite) that times out
//!   lock waits, sheds load with `enqueue_bounded` and reports its locks,
//!   with a load driver that checks no update is lost.
//!
//! # Guarantees
//!
//! - **Exclusive**: at most one guard per key exists at any time.
//! - **FIFO per key**: callers are served in the order they arrive. A
//!   release hands the key straight to the oldest waiter, before that
//!   waiter even runs, so no newcomer can overtake it; [`try_acquire`]
//!   never barges past a queue either. A caller arrives when it calls
//!   [`with_lock`](LockManager::with_lock) or [`with_locks`]; an acquire
//!   future, lazy as Rust futures are, arrives at its first poll, or when
//!   [`enqueue`](SingleAcquire::enqueue) is called on it.
//! - **Isolation**: different keys never wait for each other.
//! - **Deadlock-free multi-key locking**: [`acquire_many`] takes several
//!   keys one at a time in one order shared by every request (the keys'
//!   hashes), so its callers never deadlock among themselves whatever order
//!   they list their keys in, and FIFO holds on every key.
//! - **Cancel safety**: dropping a waiting future removes it from its queue
//!   in O(1); dropping one that was already handed the lock passes the lock
//!   on. `timeout(acquire(key))` is correct on every runtime.
//! - **Bounded memory**: memory follows the number of keys held and waiters
//!   queued at once, never the number of distinct keys ever locked.
//! - **Runtime-agnostic**: no executor, timer or thread of its own; it works
//!   on tokio, async-std, smol, `futures::executor` or a hand-written loop.
//!
//! [`try_acquire`]: LockManager::try_acquire
//! [`acquire_many`]: LockManager::acquire_many
//! [`with_locks`]: LockManager::with_locks
//!
//! # One shape for every form
//!
//! Four methods acquire: [`acquire`](LockManager::acquire),
//! [`try_acquire`], [`acquire_many`] and
//! [`try_acquire_many`](LockManager::try_acquire_many), each with an
//! `_owned` form on `Arc<LockManager>` whose future and guard borrow
//! nothing (for spawned tasks); [`with_lock`](LockManager::with_lock) and
//! [`with_locks`] run a body under the lock. Everything else is a method of
//! the future an acquire returns:
//!
//! ```
//! use std::time::Duration;
//! use lock_manager::{Error, LockManager};
//!
//! fn update(locks: &LockManager<u64>, id: u64) -> Result<(), Error> {
//!     let queued = locks.acquire(id).enqueue_bounded(16)?; // Busy if 16 wait already
//!     let _guard = queued.wait_timeout(Duration::from_secs(1))?; // TimedOut
//!     Ok(())
//! }
//! # update(&LockManager::new(), 1).unwrap();
//! ```
//!
//! - [`enqueue`](SingleAcquire::enqueue) arrives now rather than at the
//!   first poll, and [`enqueue_bounded`](SingleAcquire::enqueue_bounded)
//!   does so unless too many wait already ([`Busy`]): load shedding;
//! - [`wait`](SingleAcquire::wait) blocks a thread until the lock is
//!   handed over, [`wait_timeout`](SingleAcquire::wait_timeout) and
//!   [`wait_deadline`](SingleAcquire::wait_deadline) give up in time
//!   ([`TimedOut`]).
//!
//! Every guard implements [`Guard`] (its keys and its manager), and a
//! single-key guard converts into a multi-key one with `.into()`, which
//! takes more keys with [`extend`](MultiGuard::extend) (a future with the
//! same `enqueue` and `wait` methods) or
//! [`try_extend`](MultiGuard::try_extend). [`Busy`], [`TimedOut`] and
//! [`Deadlock`] convert into [`Error`].
//!
//! # Tasks and threads
//!
//! One manager serves async tasks and plain threads alike, in one FIFO
//! queue per key: a task awaits `acquire(key)`, a thread calls
//! `acquire(key).wait()`. Owned guards are `Send`: one taken by a task can
//! be released by a thread, and the other way round. Never call `wait`
//! from inside an async task: it blocks the executor's thread, which the
//! holder's task may need to finish.
//!
//! Dropping a future cancels it, whatever drops it. A smol `Task` dropped
//! without `.detach()` drops its future, and a guard moved into it is
//! released at once (tokio's and async-std's handles detach instead).
//!
//! # Nesting and re-entrancy
//!
//! To hold one key and then take more (keys found only after locking, such
//! as the folder a document is in), nest through the guard: turn it into a
//! multi-key guard (`.into()`, or start with [`acquire_many`]) and call
//! [`extend`](MultiGuard::extend). While an extend waits, the manager knows
//! who it waits for; a wait that would close a cycle (two callers
//! extending toward each other's keys) is refused at once with
//! [`Deadlock`], and the guard keeps what it held before. Retry as a
//! database transaction does: drop the guard, so that the others go on,
//! and start over.
//!
//! ```
//! use lock_manager::{Deadlock, LockManager};
//!
//! /// Moves `doc` to `to`: the folder it leaves is known only under its lock.
//! async fn move_document(locks: &LockManager<String>, doc: &str, to: &str) {
//!     loop {
//!         let mut guard = locks.acquire_many([doc.to_owned()]).await;
//!         let from = "folder-1".to_owned(); // read under the lock of `doc`
//!         match guard.extend([from, to.to_owned()]).await {
//!             Ok(()) => return, // move it, then drop the guard
//!             Err(Deadlock { .. }) => continue, // the guard drops: retry
//!         }
//!     }
//! }
//! # futures::executor::block_on(move_document(&LockManager::new(), "doc-7", "folder-2"));
//! ```
//!
//! - **What is seen**: every extend, and every [`acquire_many`] request
//!   past its first key once any extend has waited on the manager. A
//!   cycle among them is refused when the wait that closes it begins (the
//!   youngest extend waiting in it, if a plain `acquire_many` closed it),
//!   and never a wait without a cycle. `acquire_many` requests alone take
//!   keys in one order and never deadlock among themselves.
//! - **What is not**: a plain [`acquire`](LockManager::acquire) made while
//!   the task holds another guard. The crate cannot tell that the two
//!   belong together, so callers that nest that way must take their keys in
//!   one global order (say, ascending ids), or hang.
//! - **Acquiring a key the caller already holds** through the same guard
//!   is free: `extend` skips it. Through a second, plain acquire it waits
//!   for good: the lock is not re-entrant, so that acquire queues behind
//!   the caller's own guard. Where a wait might come back around, give it
//!   a deadline ([`wait_timeout`](SingleAcquire::wait_timeout), or the
//!   runtime's `timeout` around the future).
//!
//! # Diagnostics
//!
//! [`LockManager::stats`] counts acquisitions, contended acquisitions,
//! hand-offs and cancellations at no measurable cost.
//! [`LockManager::snapshot`] lists the keys held right now with their
//! waiters, and [`LockManager::held`] reports one key alone.
//!
//! The `diagnostics` cargo feature (off by default) measures the rest, the
//! answers to "which lock is stuck, which code holds it, and how long do
//! waits usually take?":
//!
//! - each held key's holder and oldest waiter, by call site (every acquire
//!   method is `#[track_caller]`) and age: "held by src/store.rs:42 for
//!   3.1 s, 2 waiting, the oldest from src/api.rs:88" (`examples/stuck.rs`);
//! - in [`Stats`], [`Histogram`]s of wait times (contended acquires, from
//!   joining the queue to the hand-off or to the drop that gave up, those
//!   given up apart too) and of hold times, with sums and quantiles, in the
//!   buckets a Prometheus histogram has;
//! - [`LockManager::hot_keys`]: the keys with the most contended
//!   acquisitions, and how long they were waited for.
//!
//! It costs a clock read on every acquire and release, 24 bytes more per
//! waiter (an `Instant` and a call site), 40 more per held key (those, and
//! its contention), 8 more per future, and per shard three histograms and
//! the hot keys (about 2.8 KB);
//! `benches/README.md` in the repository has the figures. Without it those
//! fields are `None` and the histograms empty; [`DIAGNOSTICS`] tells a
//! program which build it runs.
//!
//! A helper that acquires for its caller keeps the caller's site only if
//! it is a `#[track_caller]` plain `fn` that returns the future: an
//! `async fn` cannot pass the caller on (rustc ignores the attribute
//! there, with a warning), so every report would name the helper's line.
//!
//! ```
//! use lock_manager::{Acquire, LockManager};
//!
//! /// Locks one story; reports name the line that called this.
//! #[track_caller]
//! fn lock_story(locks: &LockManager<u64>, story: u64) -> Acquire<'_, u64> {
//!     locks.acquire(story)
//! }
//!
//! # futures::executor::block_on(async {
//! let locks = LockManager::new();
//! let (acquire, line) = (lock_story(&locks, 7), line!());
//! let _guard = acquire.await;
//! if let Some(site) = locks.held(&7).unwrap().held_by {
//!     assert_eq!(site.line(), line); // this line, not the helper's
//! }
//! # });
//! ```
//!
//! The `serde` feature (off by default) implements `Serialize` for
//! [`Stats`], [`Histogram`], [`HeldKey`] and [`HotKey`], and `Deserialize`
//! for [`Stats`] and [`Histogram`]; [`Stats`] documents the shape. Keys
//! serialize as `K` does: an `Arc<str>` key needs serde's own `rc` feature
//! (`serde = { version = "1", features = ["rc"] }` in the application's
//! `Cargo.toml`).
//!
//! # When to use something else
//!
//! - One lock guarding one value: use an async mutex (`tokio::sync::Mutex`,
//!   `async_lock::Mutex`) that owns the value.
//! - Critical sections that never `.await`: a `std::sync::Mutex` per key (or
//!   a sharded map) is cheaper than any async lock.
//! - Several processes or machines: this is an in-process lock; use the
//!   filesystem's or the database's locks, or a lock service.
//!
//! # Implementation
//!
//! The state is split into shards by key hash (sixteen per core by
//! default, see [`LockManager::with_shards`]), each a mutex over a
//! `HashMap` from every held key to its wait queue and a [`slab`] of that
//! shard's waiters. A queue is a doubly linked list threaded through slab
//! indices, its two ends kept in the map, so joining, leaving and handing
//! over are O(1) whatever its length. A key is hashed once per acquire,
//! outside the mutexes, and its hash is kept with it: an uncontended
//! acquire and release is one map lookup each under one shard's mutex and
//! allocates nothing beyond the map's own growth (and a clone of the key).
//! A queued waiter's waker is cloned under the mutex; wakers are woken and
//! dropped only after it is released, so a waker whose `wake` or `drop`
//! calls back into the manager cannot deadlock it. `ARCHITECTURE.md` in the
//! repository says how each part works and why it is there.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub,
    clippy::undocumented_unsafe_blocks
)]
#![doc(test(attr(deny(warnings))))]

// Declared in the order the manager's methods appear on its page:
// construction, then acquiring, then queries and reports.
mod manager;

mod acquire;
mod extend;
mod many;
mod report;

mod diagnostics;
mod error;
mod global;
mod graph;
mod guard;
mod hashed;
mod histogram;
mod hot;
mod queue;
#[cfg(feature = "serde")]
mod serialize;
mod shards;
mod small;
mod state;
mod sync;
mod take;
mod trace;
mod wait;

pub use acquire::{Acquire, AcquireOwned, SingleAcquire};
pub use diagnostics::{HeldKey, Stats};
pub use error::{Busy, Deadlock, Error, TimedOut};
pub use extend::Extend;
pub use global::{global, is_locked, queue_len, with_lock};
pub use guard::{
    Guard, LockGuard, MultiGuard, MultiLockGuard, OwnedLockGuard, OwnedMultiLockGuard, SingleGuard,
};
pub use histogram::Histogram;
pub use hot::HotKey;
pub use manager::{LockManager, ManagerRef};
pub use many::{AcquireMany, AcquireManyOwned, MultiAcquire};

/// Whether the `diagnostics` cargo feature is on: whether [`Stats`]'s
/// histograms and [`HeldKey`]'s ages and call sites are measured, so that
/// an empty histogram means "nothing waited" rather than "not measured".
///
/// # Examples
///
/// ```
/// let locks = lock_manager::LockManager::new();
/// drop(locks.try_acquire(1));
/// assert_eq!(locks.stats().holds.count(), u64::from(lock_manager::DIAGNOSTICS));
/// ```
pub const DIAGNOSTICS: bool = cfg!(feature = "diagnostics");

/// Runs the README's examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
