//! What every bench binary shares: the peers behind one trait, hand
//! polling, seeded key generators and where results go.
//!
//! Each bench file includes this with `#[macro_use] mod common;`; not every
//! binary uses every item.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hash, RandomState};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use lock_manager::LockManager;

pub mod names;

/// What a key must be for every peer.
pub trait Key: Clone + Hash + Eq + Send + Sync + 'static {}
impl<T: Clone + Hash + Eq + Send + Sync + 'static> Key for T {}

/// A keyed async lock under test: `lock(key).await` gives a guard that
/// holds the key until dropped.
///
/// Every `lock` and `lock_pair` below is `#[inline]`, so that each lock is
/// measured as its users call it: a wrapper left out of line returns its
/// future through memory, and the task's copy of it waits for the stores
/// that just wrote it (ARCHITECTURE.md, "What a multi-key request costs").
pub trait Peer<K: Key>: Send + Sync + 'static {
    /// The name used in bench ids and the results table.
    const NAME: &'static str;
    /// Whether waiters on one key are served strictly first come, first
    /// served (what the "fastest FIFO peer" target compares against).
    const FIFO: bool;
    /// The floor is not a lock: its `lock` never waits and excludes nobody.
    const IS_LOCK: bool = true;

    fn create() -> Self;

    fn lock(&self, key: K) -> impl Future<Output = impl Send + '_> + Send + '_;

    /// Locks two distinct keys together; dropping the guard releases both.
    /// No peer but this crate can ask for both at once, so the default is
    /// the usual deadlock-free way: the smaller key first, then the larger.
    #[inline]
    fn lock_pair(&self, a: K, b: K) -> impl Future<Output = impl Send + '_> + Send + '_
    where
        K: Ord,
    {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        async move {
            let lo = self.lock(lo).await;
            let hi = self.lock(hi).await;
            (lo, hi)
        }
    }
}

// ---------------------------------------------------------------------------
// This crate.

/// `lock_manager::LockManager<K>` with its default hasher.
pub struct Ours<K>(pub LockManager<K>);

impl<K: Key> Peer<K> for Ours<K> {
    const NAME: &'static str = names::OURS.name;
    const FIFO: bool = names::OURS.fifo;

    fn create() -> Self {
        Ours(LockManager::new())
    }

    #[inline]
    fn lock(&self, key: K) -> impl Future<Output = impl Send + '_> + Send + '_ {
        self.0.acquire(key)
    }

    /// One request for both keys, in whatever order they come.
    #[inline]
    fn lock_pair(&self, a: K, b: K) -> impl Future<Output = impl Send + '_> + Send + '_
    where
        K: Ord,
    {
        self.0.acquire_many([a, b])
    }
}

/// This crate taking a pair's keys one by one: two plain `acquire`s, the
/// smaller key first, then the larger (the trait's default `lock_pair`, as
/// the peers do), where [`Ours`] asks for both with `acquire_many`. Their
/// difference is what one request for both costs. `for_each_peer!` leaves it
/// out: for one key it is [`Ours`] again, so only the scenarios whose
/// operations lock pairs run it.
pub struct OursOneByOne<K>(pub LockManager<K>);

impl<K: Key> Peer<K> for OursOneByOne<K> {
    const NAME: &'static str = names::OURS_ONE_BY_ONE.name;
    const FIFO: bool = names::OURS_ONE_BY_ONE.fifo;

    fn create() -> Self {
        OursOneByOne(LockManager::new())
    }

    #[inline]
    fn lock(&self, key: K) -> impl Future<Output = impl Send + '_> + Send + '_ {
        self.0.acquire(key)
    }
}

/// This crate with its state in a single shard: one mutex for every key, as
/// the peers have. Only the scaling bench uses it.
pub struct OursOneShard<K>(pub LockManager<K>);

impl<K: Key> Peer<K> for OursOneShard<K> {
    const NAME: &'static str = names::OURS_ONE_SHARD.name;
    const FIFO: bool = names::OURS_ONE_SHARD.fifo;

    fn create() -> Self {
        OursOneShard(LockManager::with_shards(1))
    }

    #[inline]
    fn lock(&self, key: K) -> impl Future<Output = impl Send + '_> + Send + '_ {
        self.0.acquire(key)
    }

    /// One request for both keys, in whatever order they come.
    #[inline]
    fn lock_pair(&self, a: K, b: K) -> impl Future<Output = impl Send + '_> + Send + '_
    where
        K: Ord,
    {
        self.0.acquire_many([a, b])
    }
}

// ---------------------------------------------------------------------------
// The floor: not a lock at all.

/// `parking_lot::Mutex<HashMap<K, ()>>`: insert on lock, remove on unlock,
/// nothing else. It never waits, so it excludes nobody; it is the cost of
/// the bookkeeping any keyed lock with this API must do (one hash insert, one
/// hash remove, one key clone for the guard to remove it with).
pub struct Floor<K>(parking_lot::Mutex<HashMap<K, ()>>);

pub struct FloorGuard<'a, K: Key> {
    floor: &'a Floor<K>,
    key: K,
}

impl<K: Key> Drop for FloorGuard<'_, K> {
    fn drop(&mut self) {
        self.floor.0.lock().remove(&self.key);
    }
}

impl<K: Key> Peer<K> for Floor<K> {
    const NAME: &'static str = names::FLOOR.name;
    const FIFO: bool = names::FLOOR.fifo;
    const IS_LOCK: bool = false;

    fn create() -> Self {
        Floor(parking_lot::Mutex::new(HashMap::new()))
    }

    #[inline]
    fn lock(&self, key: K) -> impl Future<Output = impl Send + '_> + Send + '_ {
        let mut key = Some(key);
        std::future::poll_fn(move |_| {
            let key = key.take().expect("floor future polled after completion");
            self.0.lock().insert(key.clone(), ());
            Poll::Ready(FloorGuard { floor: self, key })
        })
    }
}

/// The floor split as this crate splits its state: [`default_shards`]
/// `parking_lot::Mutex<HashMap<K, ()>>` shards, the key's shard chosen by
/// one hash of it, then insert on lock and remove on unlock in that shard.
/// The guard keeps its shard, so a cycle hashes three times (to choose, to
/// insert, to remove) where this crate hashes once. Each shard has cache
/// lines of its own, as this crate's do, so that neighbours never contend.
pub struct ShardedFloor<K> {
    shards: Box<[FloorShard<K>]>,
    hasher: RandomState,
}

#[repr(align(128))]
struct FloorShard<K>(parking_lot::Mutex<HashMap<K, ()>>);

pub struct ShardedFloorGuard<'a, K: Key> {
    shard: &'a parking_lot::Mutex<HashMap<K, ()>>,
    key: K,
}

impl<K: Key> Drop for ShardedFloorGuard<'_, K> {
    fn drop(&mut self) {
        self.shard.lock().remove(&self.key);
    }
}

impl<K: Key> Peer<K> for ShardedFloor<K> {
    const NAME: &'static str = names::SHARDED_FLOOR.name;
    const FIFO: bool = names::SHARDED_FLOOR.fifo;
    const IS_LOCK: bool = false;

    fn create() -> Self {
        ShardedFloor {
            shards: (0..default_shards())
                .map(|_| FloorShard(Default::default()))
                .collect(),
            hasher: RandomState::new(),
        }
    }

    #[inline]
    fn lock(&self, key: K) -> impl Future<Output = impl Send + '_> + Send + '_ {
        let mut key = Some(key);
        std::future::poll_fn(move |_| {
            let key = key.take().expect("floor future polled after completion");
            // The shard count is a power of two: the top bits choose.
            let bits = self.shards.len().trailing_zeros();
            let index = self
                .hasher
                .hash_one(&key)
                .checked_shr(64 - bits)
                .unwrap_or(0);
            let shard = &self.shards[index as usize].0;
            shard.lock().insert(key.clone(), ());
            Poll::Ready(ShardedFloorGuard { shard, key })
        })
    }
}

/// How many shards `LockManager::new` makes, as its docs give it: sixteen
/// per core, rounded up to a power of two, at most 1,024.
pub fn default_shards() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    (cores * 16).next_power_of_two().min(1024)
}

// ---------------------------------------------------------------------------
// The recipe: a map of reference-counted async mutexes.

/// An async mutex the recipe can keep per key.
pub trait AsyncMutex: Default + Send + Sync + 'static {
    type Guard: Send;
    fn lock_arc(this: Arc<Self>) -> impl Future<Output = Self::Guard> + Send;
}

impl AsyncMutex for tokio::sync::Mutex<()> {
    type Guard = tokio::sync::OwnedMutexGuard<()>;
    fn lock_arc(this: Arc<Self>) -> impl Future<Output = Self::Guard> + Send {
        this.lock_owned()
    }
}

impl AsyncMutex for async_lock::Mutex<()> {
    type Guard = async_lock::MutexGuardArc<()>;
    fn lock_arc(this: Arc<Self>) -> impl Future<Output = Self::Guard> + Send {
        // `lock_arc` clones the `Arc` itself; the future owns everything.
        async_lock::Mutex::lock_arc(&this)
    }
}

impl AsyncMutex for futures::lock::Mutex<()> {
    type Guard = futures::lock::OwnedMutexGuard<()>;
    fn lock_arc(this: Arc<Self>) -> impl Future<Output = Self::Guard> + Send {
        this.lock_owned()
    }
}

/// The common recipe: `Mutex<HashMap<K, Arc<M>>>`, the per-key mutex created
/// on first use and the map entry removed by the guard that drops the last
/// `Arc` (clean-up on guard drop). The outer mutex is `parking_lot`'s, the
/// same as this crate's, so that only the design differs.
///
/// Like most hand-written versions it leaves an entry behind when the last
/// user is a waiter that gets cancelled after the holder released; the
/// next lock and release of that key removes it.
pub struct Recipe<K, M> {
    map: parking_lot::Mutex<HashMap<K, Arc<M>>>,
}

pub struct RecipeGuard<'a, K: Key, M: AsyncMutex> {
    recipe: &'a Recipe<K, M>,
    key: K,
    inner: Option<M::Guard>,
}

impl<K: Key, M: AsyncMutex> Drop for RecipeGuard<'_, K, M> {
    fn drop(&mut self) {
        // Unlock first (this hands over or wakes the next waiter), then
        // remove the entry if nobody else holds its `Arc`.
        drop(self.inner.take());
        let mut map = self.recipe.map.lock();
        if map
            .get(&self.key)
            .is_some_and(|mutex| Arc::strong_count(mutex) == 1)
        {
            map.remove(&self.key);
        }
    }
}

impl<K: Key, M: AsyncMutex> Recipe<K, M> {
    fn create() -> Self {
        Recipe {
            map: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    #[inline]
    async fn lock(&self, key: K) -> RecipeGuard<'_, K, M> {
        let mutex = {
            let mut map = self.map.lock();
            match map.get(&key) {
                Some(mutex) => Arc::clone(mutex),
                None => {
                    let mutex = Arc::new(M::default());
                    map.insert(key.clone(), Arc::clone(&mutex));
                    mutex
                }
            }
        };
        let inner = M::lock_arc(mutex).await;
        RecipeGuard {
            recipe: self,
            key,
            inner: Some(inner),
        }
    }
}

macro_rules! recipe_peer {
    ($mutex:ty, $lock:expr) => {
        impl<K: Key> Peer<K> for Recipe<K, $mutex> {
            const NAME: &'static str = $lock.name;
            const FIFO: bool = $lock.fifo;

            fn create() -> Self {
                Recipe::create()
            }

            #[inline]
            fn lock(&self, key: K) -> impl Future<Output = impl Send + '_> + Send + '_ {
                Recipe::lock(self, key)
            }
        }
    };
}

recipe_peer!(tokio::sync::Mutex<()>, names::TOKIO_RECIPE);
recipe_peer!(async_lock::Mutex<()>, names::ASYNC_LOCK_RECIPE);
recipe_peer!(futures::lock::Mutex<()>, names::FUTURES_LOCK_RECIPE);

pub type TokioRecipe<K> = Recipe<K, tokio::sync::Mutex<()>>;
pub type AsyncLockRecipe<K> = Recipe<K, async_lock::Mutex<()>>;
pub type FuturesRecipe<K> = Recipe<K, futures::lock::Mutex<()>>;

// ---------------------------------------------------------------------------
// Published crates.

/// `lockable::LockableHashMap<K, ()>` with `async_lock(key, no_limit)`.
pub struct Lockable<K: Key>(lockable::LockableHashMap<K, ()>);

impl<K: Key> Peer<K> for Lockable<K> {
    const NAME: &'static str = names::LOCKABLE.name;
    const FIFO: bool = names::LOCKABLE.fifo;

    fn create() -> Self {
        Lockable(lockable::LockableHashMap::new())
    }

    #[inline]
    fn lock(&self, key: K) -> impl Future<Output = impl Send + '_> + Send + '_ {
        use lockable::InfallibleUnwrap;
        async move {
            self.0
                .async_lock(key, lockable::AsyncLimit::no_limit())
                .await
                .infallible_unwrap()
        }
    }
}

/// `keyed_lock::async::KeyedLock<K>` (`lock(key).await`).
pub struct KeyedLock<K: Key>(keyed_lock::r#async::KeyedLock<K>);

impl<K: Key> Peer<K> for KeyedLock<K> {
    const NAME: &'static str = names::KEYED_LOCK.name;
    const FIFO: bool = names::KEYED_LOCK.fifo;

    fn create() -> Self {
        KeyedLock(keyed_lock::r#async::KeyedLock::new())
    }

    #[inline]
    fn lock(&self, key: K) -> impl Future<Output = impl Send + '_> + Send + '_ {
        self.0.lock(key)
    }
}

/// `key_mutex::tokio::KeyMutex<K, ()>` (a `DashMap` of tokio mutexes).
pub struct KeyMutex<K: Key>(key_mutex::tokio::KeyMutex<K, ()>);

impl<K: Key> Peer<K> for KeyMutex<K> {
    const NAME: &'static str = names::KEY_MUTEX.name;
    const FIFO: bool = names::KEY_MUTEX.fifo;

    fn create() -> Self {
        KeyMutex(key_mutex::tokio::KeyMutex::new())
    }

    #[inline]
    fn lock(&self, key: K) -> impl Future<Output = impl Send + '_> + Send + '_ {
        self.0.lock(key)
    }
}

// ---------------------------------------------------------------------------
// References: one plain mutex, not keyed.

/// One async mutex for the whole process, the key ignored: every caller
/// locks the same mutex. Not a peer (it cannot lock two keys apart), so
/// `for_each_peer!` leaves it out; it is a reference for scenarios where
/// every task locks one key (`contended`, the fairness bench), where it is
/// what a keyed lock costs at best: the hand-off alone, no map.
pub struct Single<M>(M);

macro_rules! reference {
    ($mutex:ty, $lock:expr) => {
        impl<K: Key> Peer<K> for Single<$mutex> {
            const NAME: &'static str = $lock.name;
            const FIFO: bool = $lock.fifo;

            fn create() -> Self {
                Single(<$mutex>::default())
            }

            #[inline]
            fn lock(&self, key: K) -> impl Future<Output = impl Send + '_> + Send + '_ {
                drop(key);
                self.0.lock()
            }
        }
    };
}

reference!(tokio::sync::Mutex<()>, names::REF_TOKIO_MUTEX);
reference!(async_lock::Mutex<()>, names::REF_ASYNC_LOCK_MUTEX);
reference!(futures::lock::Mutex<()>, names::REF_FUTURES_MUTEX);

pub type RefTokioMutex = Single<tokio::sync::Mutex<()>>;
pub type RefAsyncLockMutex = Single<async_lock::Mutex<()>>;
pub type RefFuturesMutex = Single<futures::lock::Mutex<()>>;

/// Runs `$body` once for every peer, with `$p` naming the peer's type for
/// keys of type `$k`. This crate comes first and the floor last.
#[allow(unused_macros)]
macro_rules! for_each_peer {
    ($k:ty, $p:ident => $body:block) => {{
        {
            type $p = crate::common::Ours<$k>;
            $body
        }
        {
            type $p = crate::common::TokioRecipe<$k>;
            $body
        }
        {
            type $p = crate::common::AsyncLockRecipe<$k>;
            $body
        }
        {
            type $p = crate::common::FuturesRecipe<$k>;
            $body
        }
        {
            type $p = crate::common::Lockable<$k>;
            $body
        }
        {
            type $p = crate::common::KeyedLock<$k>;
            $body
        }
        {
            type $p = crate::common::KeyMutex<$k>;
            $body
        }
        {
            type $p = crate::common::Floor<$k>;
            $body
        }
    }};
}

// ---------------------------------------------------------------------------
// Hand polling.

/// Polls `future` once with a no-op waker.
pub fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    future.poll(&mut cx)
}

/// The median of `values` (the mean of the middle two for an even count).
///
/// # Panics
///
/// Panics if `values` is empty.
pub fn median(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty(), "the median of nothing");
    values.sort_unstable_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Runs a future that must complete on its first poll (an uncontended
/// acquire), without any runtime.
///
/// Always inlined, so that the future is polled where it was built, as an
/// `.await` in an async fn does. Out of line, a future was copied into this
/// frame right after the caller wrote it, and a 16-byte load of the copy
/// waited on the caller's narrower stores: about 10 ns per call for
/// lock-manager's 24-byte future (`perf annotate` of `now`), nothing for
/// futures laid out otherwise, so the call measured the layout, not the
/// lock.
#[inline(always)]
pub fn now<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match poll_once(future.as_mut()) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("expected the future to complete at once"),
    }
}

/// A fixed set of futures pinned in place, each of which can be polled or
/// dropped on its own, in place: what a queue of waiters looks like when
/// every waiter is polled by hand.
pub struct Slots<F> {
    slots: Box<[Option<F>]>,
}

impl<F: Future> Slots<F> {
    pub fn new(futures: impl IntoIterator<Item = F>) -> Self {
        Slots {
            slots: futures.into_iter().map(Some).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    fn pinned(&mut self, index: usize) -> Pin<&mut Option<F>> {
        // SAFETY: the boxed slice is never reallocated or moved out of, so
        // a future in it stays at the same address until it is dropped in
        // place (by `Pin::set` below or by the slice's own drop).
        unsafe { Pin::new_unchecked(&mut self.slots[index]) }
    }

    /// Polls the future at `index` once; `None` if it was dropped.
    pub fn poll(&mut self, index: usize) -> Option<Poll<F::Output>> {
        self.pinned(index).as_pin_mut().map(poll_once)
    }

    /// Drops the future at `index` in place (a cancellation if it waits).
    pub fn cancel(&mut self, index: usize) {
        self.pinned(index).set(None);
    }
}

// ---------------------------------------------------------------------------
// Keys.

/// A seeded xorshift64* generator.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // Any non-zero state works; mix the seed so 0, 1, 2... differ.
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; bias is negligible here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Two distinct values, uniform over the ordered pairs in `0..n`
    /// (`n` at least 2).
    pub fn distinct_pair(&mut self, n: u64) -> (u64, u64) {
        let a = self.below(n);
        // Uniform over the other n - 1 values: skip over `a`.
        let b = self.below(n - 1);
        (a, if b >= a { b + 1 } else { b })
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf(s) over ranks `0..n` (rank 0 the hottest), by inverting a table of
/// the cumulative distribution.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for rank in 1..=n {
            sum += 1.0 / (rank as f64).powf(s);
            cdf.push(sum);
        }
        for p in &mut cdf {
            *p /= sum;
        }
        Zipf { cdf }
    }

    pub fn sample(&self, rng: &mut XorShift) -> u64 {
        let u = rng.unit();
        self.cdf.partition_point(|&p| p < u).min(self.cdf.len() - 1) as u64
    }
}

/// Tasks in the multi-task scenarios (`locks.rs`, `pairs.rs`).
pub const TASKS: usize = 64;
/// Length of each task's pre-drawn key sequence.
pub const KEYS_PER_TASK: usize = 4096;
/// Keys the `spread` and `pairs` scenarios draw from.
pub const SPREAD_KEYS: u64 = 1024;
/// Keys the `pairs-16` scenario draws from: few, so that pairs overlap.
pub const PAIRS_16_KEYS: u64 = 16;

/// What one operation of a multi-task scenario locks: one key, or a pair of
/// distinct keys. One harness runs both, so the scenarios differ only here.
pub trait Op: Copy + Send + Sync + 'static {
    /// Whether an operation locks a pair of keys: then this crate runs a
    /// second time, taking them one by one (`common::OursOneByOne`).
    const PAIR: bool;
    /// Locks every key of the operation; dropping the guard releases them.
    /// Inlined, as `Peer`'s methods are (see `common::Peer`).
    fn lock<P: Peer<u64>>(self, peer: &P) -> impl Future<Output = impl Send + '_> + Send + '_;
    /// What the critical section reads.
    fn value(self) -> u64;
}

impl Op for u64 {
    const PAIR: bool = false;

    #[inline]
    fn lock<P: Peer<u64>>(self, peer: &P) -> impl Future<Output = impl Send + '_> + Send + '_ {
        peer.lock(self)
    }

    fn value(self) -> u64 {
        self
    }
}

impl Op for (u64, u64) {
    const PAIR: bool = true;

    #[inline]
    fn lock<P: Peer<u64>>(self, peer: &P) -> impl Future<Output = impl Send + '_> + Send + '_ {
        peer.lock_pair(self.0, self.1)
    }

    fn value(self) -> u64 {
        self.0
    }
}

/// Spawns `TASKS` tasks, each running `ops` operations from its own
/// sequence (lock, a tiny critical section, release), and times them all:
/// the multi-task scenarios of `locks.rs` and `pairs.rs`.
pub fn run_tasks<P: Peer<u64>, T: Op>(
    rt: &tokio::runtime::Runtime,
    peer: &Arc<P>,
    keys: &Arc<Vec<Vec<T>>>,
    ops: u64,
) -> std::time::Duration {
    rt.block_on(async {
        let start = std::time::Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let peer = Arc::clone(peer);
                let keys = Arc::clone(keys);
                tokio::spawn(async move {
                    let keys = &keys[task];
                    let mut sum = 0u64;
                    for i in 0..ops as usize {
                        let op = keys[i % keys.len()];
                        let guard = op.lock(&*peer).await;
                        // The critical section.
                        sum = sum.wrapping_add(std::hint::black_box(op.value()));
                        drop(guard);
                    }
                    sum
                })
            })
            .collect();
        for task in tasks {
            std::hint::black_box(task.await.expect("bench task panicked"));
        }
        start.elapsed()
    })
}

/// Key sequences, one per task, drawn before timing starts so that sampling
/// costs nothing in the timed loop. Tasks cycle through their sequence. An
/// item is one operation's keys: a `u64`, or a pair of them.
pub fn key_sequences<T>(
    tasks: usize,
    len: usize,
    mut draw: impl FnMut(&mut XorShift) -> T,
) -> Vec<Vec<T>> {
    (0..tasks)
        .map(|task| {
            let mut rng = XorShift::new(0x5EED + task as u64);
            (0..len).map(|_| draw(&mut rng)).collect()
        })
        .collect()
}

/// A 29-byte owned key, `user-session-` and 16 hex digits: what a caller
/// locking by session or path builds for each call. One allocation.
pub fn string_key(n: u64) -> String {
    const PREFIX: &str = "user-session-";
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut key = String::with_capacity(PREFIX.len() + 16);
    key.push_str(PREFIX);
    for shift in (0..16).rev() {
        key.push(HEX[((n >> (shift * 4)) & 0xF) as usize] as char);
    }
    key
}

// ---------------------------------------------------------------------------
// Results.

/// Whether the binary was started by `cargo bench` (which passes `--bench`).
/// Under `cargo test --benches` the custom-harness benches only say so and
/// return: they measure, they do not test, and a debug build is no place
/// for timings.
pub fn started_by_cargo_bench() -> bool {
    if std::env::args().any(|arg| arg == "--bench") {
        return true;
    }
    eprintln!("skipped: run this with `cargo bench` (or scripts/bench.sh)");
    false
}

/// A positive integer from the environment variable `name`, or `default`:
/// how the custom-harness benches are sized.
pub fn env_count(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => match text.trim().parse() {
            Ok(n) if n > 0 => n,
            _ => panic!("{name} must be a positive integer, not {text:?}"),
        },
        Err(_) => default,
    }
}

/// Whether to run `peer`: all peers, unless `$LOCK_MANAGER_BENCH_PEERS`
/// lists some (comma-separated names). Used by the custom-harness benches.
pub fn selected(peer: &str) -> bool {
    match std::env::var("LOCK_MANAGER_BENCH_PEERS") {
        Ok(list) if !list.trim().is_empty() => list.split(',').any(|name| name.trim() == peer),
        _ => true,
    }
}

/// The workspace's `target/bench-results`. Not a relative path: cargo runs
/// benches in `benches/`, this crate's folder.
const DEFAULT_RESULTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-results");

/// Where the custom-harness benches write their tab-separated results for
/// `scripts/bench.sh`: `$LOCK_MANAGER_BENCH_OUT`, or [`DEFAULT_RESULTS_DIR`].
pub fn results_dir() -> PathBuf {
    let dir = std::env::var_os("LOCK_MANAGER_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RESULTS_DIR));
    std::fs::create_dir_all(&dir).expect("create the bench results folder");
    dir
}

/// Writes `rows` (already tab-separated) under a header to `name` in
/// [`results_dir`].
pub fn write_results(name: &str, header: &str, rows: &[String]) {
    let path = results_dir().join(name);
    let mut text = String::from(header);
    text.push('\n');
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    std::fs::write(&path, text).expect("write bench results");
    eprintln!("wrote {}", path.display());
}
