//! The manager's state split into shards by key, each behind its own mutex,
//! and every rule for taking those mutexes. An operation on one key locks
//! its shard, does the bookkeeping of `state.rs`, unlocks, and only then
//! wakes or drops the waker it took out; a multi-key request locks every
//! shard it touches at once, in index order. FIFO order is per key and a
//! key lives in one shard, so sharding changes no guarantee.

use std::hash::{BuildHasher, Hash};
use std::num::NonZeroUsize;
use std::panic::{self, AssertUnwindSafe};
use std::sync::OnceLock;
use std::task::Waker;

use crate::hashed::KeyHash;
use crate::queue::{Owner, Slot};
use crate::small::{Pairs, Small};
use crate::state::{State, WaiterPoll};
use crate::sync::{Mutex, MutexGuard};
use crate::trace::Caller;

/// One shard: its state behind its own mutex, alone on its cache lines, so
/// that threads working on neighbouring shards do not slow each other down.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Shard<K> {
    mutex: Mutex<State<K>>,
}

impl<K> Shard<K> {
    fn new() -> Self {
        Self {
            mutex: Mutex::new(State::new()),
        }
    }

    /// The shard's state, its mutex held until the guard is dropped.
    fn state(&self) -> MutexGuard<'_, State<K>> {
        self.mutex.lock()
    }

    /// Runs `f` on the state, under the mutex: for queries and reports.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&State<K>) -> R) -> R {
        f(&self.state())
    }

    /// Counts a request refused without waiting.
    pub(crate) fn count_busy(&self) {
        self.state().count_busy();
    }

    /// The keys held and the waiters present, or `None` rather than wait
    /// for the mutex: for `Debug`, which never blocks.
    pub(crate) fn try_counts(&self) -> Option<(usize, usize)> {
        let state = self.mutex.try_lock()?;
        Some((state.locked_count(), state.waiter_count()))
    }
}

impl<K: Eq> Shard<K> {
    /// Gives back the room that keys and waiters no longer use.
    pub(crate) fn shrink_to_fit(&self) {
        self.state().shrink_to_fit();
    }

    /// Marks `key`, which the caller holds, as held by `owner`.
    pub(crate) fn mark(&self, key: &K, hash: KeyHash, owner: Owner) {
        self.state().mark(key, hash, owner);
    }
}

#[derive(Debug)]
pub(crate) struct Shards<K, S> {
    shards: Box<[Shard<K>]>,
    /// `log2(shards.len())`: a key's shard is the top bits of its hash.
    bits: u32,
    /// The manager's hasher, run once per key of each request: see
    /// [`KeyHash`].
    hasher: S,
    /// [`Shards::release_key`], [`Shards::release_keys`] and
    /// [`Shards::cancel_waiter`], chosen here, where `K: Eq` is known, so
    /// that the guards and futures that run them when dropped need no
    /// bounds of their own. A multi-key guard makes one call through
    /// `release_all`, not one through `release` per key.
    release: fn(&Self, &K, KeyHash),
    release_all: fn(&Self, &Pairs<K, Claim>),
    cancel: fn(&Self, &K, WaiterRef),
}

impl<K: Eq, S> Shards<K, S> {
    /// `count` shards (a power of two, at least 1), keys spread over them
    /// by their hash with `hasher`.
    pub(crate) fn new(count: usize, hasher: S) -> Self {
        debug_assert!(count.is_power_of_two());
        Self {
            shards: (0..count).map(|_| Shard::new()).collect(),
            bits: count.trailing_zeros(),
            hasher,
            release: Self::release_key,
            release_all: Self::release_keys,
            cancel: Self::cancel_waiter,
        }
    }
}

impl<K, S> Shards<K, S> {
    /// Releases `key`, handing it to the oldest waiter if there is one.
    #[inline]
    pub(crate) fn release(&self, key: &K, hash: KeyHash) {
        (self.release)(self, key, hash);
    }

    /// Releases each of `keys` (a guard's keys and claims, passed whole so
    /// that the guard's drop stays small enough to inline), handing each to
    /// its oldest waiter: every key, even after a waker's `wake` panicked,
    /// then the first panic propagates.
    #[inline]
    pub(crate) fn release_all(&self, keys: &Pairs<K, Claim>) {
        (self.release_all)(self, keys);
    }

    /// Removes a waiter on `key` whose future was dropped, passing the key
    /// on if it had been handed over.
    #[inline]
    pub(crate) fn cancel(&self, key: &K, waiter: WaiterRef) {
        (self.cancel)(self, key, waiter);
    }

    /// The index of the shard that holds a key whose hash is `hash`.
    /// Shard indices grow with the hash, so sorting keys by it sorts them
    /// by shard.
    fn index_of(&self, hash: KeyHash) -> ShardIndex {
        match self.bits {
            0 => 0,
            bits => hash.top(bits),
        }
    }

    /// The shard that holds a key whose hash is `hash`.
    pub(crate) fn of(&self, hash: KeyHash) -> &Shard<K> {
        self.get(self.index_of(hash))
    }

    fn get(&self, index: ShardIndex) -> &Shard<K> {
        &self.shards[index as usize]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Shard<K>> {
        self.shards.iter()
    }

    pub(crate) fn hasher(&self) -> &S {
        &self.hasher
    }
}

impl<K, S: BuildHasher> Shards<K, S> {
    /// Hashes `key` with the manager's hasher.
    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> KeyHash {
        KeyHash::of(&self.hasher, key)
    }
}

/// The operations on one key. Each takes the key's hash, computed once
/// when its request was made, and runs any waker only after unlocking.
impl<K: Eq, S> Shards<K, S> {
    /// Takes `key` for `caller` if it is free, with a copy of it in the
    /// map; else counts the refusal.
    pub(crate) fn try_lock(&self, key: &K, hash: KeyHash, caller: Caller) -> bool
    where
        K: Clone,
    {
        let candidate = key.clone();
        let mut state = self.of(hash).state();
        let taken = state.try_lock(candidate, hash, caller);
        if !taken {
            // Counted here, not in `State::try_lock`: there, the compiler
            // stopped inlining the map's removal into `State::release`, and
            // an uncontended acquire and release took 418 instructions, not
            // 370 (`scripts/instructions.sh`).
            state.count_busy();
        }
        taken
    }

    /// Locks `key` at once (`None`), or queues a waiter (`Some`), woken
    /// through a clone of `waker` (without one, until its first poll): for
    /// a single-key future, and for each key a multi-key request reaches
    /// that has a hash of its own.
    ///
    /// Out of line, like [`poll_waiter`](Self::poll_waiter) (and release,
    /// called through a pointer): once `acquire_many` also called them, the
    /// compiler inlined them into the single-key future and guard, and an
    /// uncontended acquire and release took 55 ns instead of 42 ns
    /// (`cargo bench --bench locks -- uncontended`).
    #[inline(never)]
    pub(crate) fn lock_or_enqueue(
        &self,
        key: &K,
        hash: KeyHash,
        waker: Option<&Waker>,
        caller: Caller,
    ) -> Option<Slot>
    where
        K: Clone,
    {
        let candidate = key.clone();
        self.of(hash)
            .state()
            .lock_or_enqueue(candidate, hash, waker, caller)
    }

    /// Enqueues a waiter for `key` (granted at once if the key is free, else
    /// queued without a waker), unless `max_waiters` already wait: then
    /// returns their number.
    pub(crate) fn enqueue(
        &self,
        key: &K,
        hash: KeyHash,
        max_waiters: usize,
        caller: Caller,
    ) -> Result<Slot, usize>
    where
        K: Clone,
    {
        let candidate = key.clone();
        self.of(hash)
            .state()
            .enqueue(candidate, hash, max_waiters, caller)
    }

    /// Takes the grant of `waiter` (`true`), or makes sure it is woken
    /// through `waker` (`false`).
    #[inline(never)]
    pub(crate) fn poll_waiter(&self, waiter: WaiterRef, waker: &Waker) -> bool {
        let outcome = self.of(waiter.hash).state().poll_waiter(waiter.slot, waker);
        match outcome {
            WaiterPoll::Granted => true,
            // Dropped after the mutex, as a waker's drop runs foreign code.
            WaiterPoll::Waiting(replaced) => {
                drop(replaced);
                false
            }
        }
    }

    /// See [`Shards::release`].
    fn release_key(&self, key: &K, hash: KeyHash) {
        let deferred = self.of(hash).state().release(key, hash);
        deferred.run();
    }

    /// See [`Shards::release_all`].
    fn release_keys(&self, keys: &Pairs<K, Claim>) {
        let Pairs::Two([k0, k1], [c0, c1]) = keys else {
            return self.release_each(keys);
        };
        // The most common guard, without the loop: both keys released, then
        // the first panic resumed. A panic of the second release is the
        // first one unless the first release panicked too, so the second,
        // uncaught, is a tail call.
        let first = panic::catch_unwind(AssertUnwindSafe(|| self.release_key(k0, c0.hash)));
        if let Err(payload) = first {
            let _ = panic::catch_unwind(AssertUnwindSafe(|| self.release_key(k1, c1.hash)));
            panic::resume_unwind(payload);
        }
        self.release_key(k1, c1.hash);
    }

    /// [`release_keys`](Self::release_keys) of any number of keys but two.
    #[inline(never)]
    fn release_each(&self, keys: &Pairs<K, Claim>) {
        let (keys, claims) = keys.as_slices();
        for_each_to_the_end(keys.iter().zip(claims), |(key, claim)| {
            self.release_key(key, claim.hash);
        });
    }

    /// See [`Shards::cancel`].
    fn cancel_waiter(&self, key: &K, waiter: WaiterRef) {
        let deferred = self
            .of(waiter.hash)
            .state()
            .cancel(key, waiter.hash, waiter.slot);
        deferred.run();
    }
}

impl<K, S> Shards<K, S> {
    /// Whether `waiter` has been handed its key, or `None` rather than wait
    /// for the mutex: for `Debug`, which never blocks.
    pub(crate) fn is_granted(&self, waiter: WaiterRef) -> Option<bool> {
        let state = self.of(waiter.hash).mutex.try_lock()?;
        Some(state.is_granted(waiter.slot))
    }
}

/// Calls `f` on every item, even after one of the calls panicked, then
/// resumes the first panic: one key's failure must not leave the others
/// locked.
pub(crate) fn for_each_to_the_end<T>(items: impl IntoIterator<Item = T>, mut f: impl FnMut(T)) {
    let mut first_panic = None;
    for item in items {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| f(item))) {
            first_panic.get_or_insert(payload);
        }
    }
    if let Some(payload) = first_panic {
        panic::resume_unwind(payload);
    }
}

/// A multi-key request's claim on one of its keys: the key's hash, and its
/// waiter while it waits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Claim {
    /// The key's hash, which orders the request's keys and names the shard.
    pub(crate) hash: KeyHash,
    /// The request's waiter on the key (queued, or granted but not yet
    /// taken), or `None` while it holds the key.
    pub(crate) slot: Option<Slot>,
}

impl<K: Eq, S> Shards<K, S> {
    /// Takes or queues for each of `keys`, which share one hash and so one
    /// shard, in one critical section: a free key is held at once, a held
    /// one gets a waiter woken through a clone of `waker` (or without a
    /// waker, until the first poll); `claims` (one per key, at the same
    /// position) records which, and `*reached` counts the keys done, so that
    /// a key's `Eq` panicking halfway leaves a record of what to undo.
    /// Returns whether any key was queued.
    ///
    /// Keys of one hash are taken in one step so that two requests for the
    /// same keys of equal hash can never each take one and wait for the
    /// other. The manager's copies are cloned before locking. Cold: two
    /// keys of a request share a 32-bit hash only by chance (or a poor
    /// `Hash`); a key alone goes through [`lock_or_enqueue`](Self::lock_or_enqueue).
    #[cold]
    pub(crate) fn lock_or_enqueue_run(
        &self,
        keys: &[K],
        claims: &mut [Claim],
        waker: Option<&Waker>,
        caller: Caller,
        reached: &mut usize,
    ) -> bool
    where
        K: Clone,
    {
        // Declared first, so that copies left by a panic are dropped with
        // the mutex released.
        let copies: Small<K> = keys.iter().cloned().collect();
        let mut state = self.of(claims[0].hash).state();
        for (copy, claim) in copies.into_iter().zip(&mut *claims) {
            claim.slot = state.lock_or_enqueue(copy, claim.hash, waker, caller);
            *reached += 1;
        }
        claims.iter().any(|claim| claim.slot.is_some())
    }

    /// Takes every one of `keys` if all are free, in one critical section
    /// over every shard they touch; else changes nothing but the count of
    /// requests refused. `claims` holds the keys' hashes, one per key at the same
    /// position.
    ///
    /// The keys must be sorted by hash and free of duplicates: the shards
    /// are then locked in increasing index order, so two requests never
    /// wait for each other's shard mutexes. The manager's copies of the
    /// keys are cloned before locking.
    pub(crate) fn try_lock_all(&self, keys: &[K], claims: &mut [Claim], caller: Caller) -> bool
    where
        K: Clone,
    {
        // Declared first, so dropped last: refused copies are dropped with
        // the mutexes released.
        let copies: Small<K> = keys.iter().cloned().collect();
        let mut last = None;
        let states = claims
            .iter()
            .map(|claim| self.index_of(claim.hash))
            .filter(|&index| last.replace(index) != Some(index))
            .map(|index| (index, self.get(index).state()))
            .collect();
        let mut taking = Taking {
            shards: self,
            states,
            keys,
            claims,
            to_undo: 0,
        };
        // Checked before anything changes, so that a refusal leaves no
        // trace.
        for (key, claim) in keys.iter().zip(taking.claims.iter()) {
            let index = self.index_of(claim.hash);
            let state = state_of(&mut taking.states, index);
            if state.is_locked(key, claim.hash) {
                state.count_busy();
                return false;
            }
        }
        for (i, copy) in copies.into_iter().enumerate() {
            let hash = taking.claims[i].hash;
            let state = state_of(&mut taking.states, self.index_of(hash));
            // Queued only if the key's `Hash` and `Eq` disagree; the
            // request, left waiting, then gives it up.
            taking.claims[i].slot = state.lock_or_enqueue(copy, hash, None, caller);
            taking.to_undo = i + 1;
        }
        taking.to_undo = 0;
        true
    }
}

/// The shards whose mutexes [`Shards::try_lock_all`] holds, and the keys
/// taken so far: given up again if a key's `Eq` panics halfway.
struct Taking<'a, 'l, K: Eq, S> {
    shards: &'a Shards<K, S>,
    states: Small<(ShardIndex, MutexGuard<'a, State<K>>)>,
    keys: &'l [K],
    claims: &'l mut [Claim],
    to_undo: usize,
}

/// The state of shard `index`, among those whose mutexes are held.
fn state_of<'s, K>(
    states: &'s mut Small<(ShardIndex, MutexGuard<'_, State<K>>)>,
    index: ShardIndex,
) -> &'s mut State<K> {
    let (_, state) = states
        .as_mut_slice()
        .iter_mut()
        .find(|(held, _)| *held == index)
        .expect("every shard of the request is locked");
    state
}

impl<K: Eq, S> Drop for Taking<'_, '_, K, S> {
    fn drop(&mut self) {
        for (key, claim) in self.keys.iter().zip(&self.claims[..self.to_undo]) {
            let state = state_of(&mut self.states, self.shards.index_of(claim.hash));
            // Nobody else reached these keys meanwhile: no waker to run.
            let deferred = match claim.slot {
                None => state.release(key, claim.hash),
                Some(slot) => state.cancel(key, claim.hash, slot),
            };
            debug_assert!(deferred.is_nothing());
        }
    }
}

/// A shard's position: 16 bits, as there are at most [`MAX_SHARDS`].
pub(crate) type ShardIndex = u16;

/// Where a queued waiter lives: its key's hash, which names its shard, and
/// its slot there.
///
/// Recorded when the waiter is queued, so that finding it again never
/// depends on hashing its key: a key whose hash changes (breaking the
/// `Hash` contract) must not reach into another shard and touch another
/// key's waiter that happens to have the same slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WaiterRef {
    pub(crate) hash: KeyHash,
    pub(crate) slot: Slot,
}

/// The number of shards used when none is asked for: sixteen per core,
/// rounded up to a power of two, at most 1,024.
///
/// Measured on 16 cores (benches/scaling.rs, threads on distinct keys), 16
/// threads ran 2.5x, 4.0x and 4.2x as fast as one with 64, 256 and 1,024
/// shards; a shard costs 128 bytes when idle.
pub(crate) fn default_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        count_for(std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
    })
}

fn count_for(cores: usize) -> usize {
    (cores * 16).next_power_of_two().min(1024)
}

/// More shards than this only cost memory.
pub(crate) const MAX_SHARDS: usize = 1 << 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashed::tests::{Fixed, Identity};
    use std::collections::hash_map::RandomState;
    use std::collections::HashSet;
    use std::hash::BuildHasherDefault;

    fn shard_of<S: BuildHasher>(shards: &Shards<u64, S>, key: u64) -> usize {
        usize::from(shards.index_of(shards.hash(&key)))
    }

    #[test]
    fn sequential_keys_spread_over_every_shard() {
        let shards = Shards::<u64, _>::new(16, RandomState::new());
        let mut hits = [0; 16];
        for key in 0..16_000 {
            hits[shard_of(&shards, key)] += 1;
        }
        // Perfectly even would be 1,000 each.
        assert!(hits.iter().all(|&n| (500..1_500).contains(&n)), "{hits:?}");
    }

    #[test]
    fn a_key_and_its_borrowed_form_share_a_shard() {
        let shards = Shards::<String, _>::new(64, RandomState::new());
        for n in 0..100 {
            let owned = format!("story-{n}");
            assert_eq!(shards.hash(&owned), shards.hash(owned.as_str()));
        }
    }

    #[test]
    fn an_idle_shard_takes_two_cache_lines() {
        // 44 with `diagnostics`: its three histograms take 2,568 bytes, its
        // hot keys 24 more (and 16 keys' worth on the heap, once used).
        let lines = if cfg!(feature = "diagnostics") { 44 } else { 2 };
        assert_eq!(std::mem::size_of::<Shard<u64>>(), 64 * lines);
    }

    #[test]
    fn the_shard_is_the_top_bits_of_the_hash() {
        let shards = Shards::<u64, _>::new(16, Fixed::default());
        for key in 0..1000_u64 {
            let hash = shards.hash(&key);
            assert_eq!(shards.index_of(hash), hash.top(4));
            assert!(std::ptr::eq(shards.of(hash), shards.get(hash.top(4))));
        }
    }

    /// Asserts that `keys` fall evenly on as many shards as give each 64 or
    /// more (at most 16): each gets between half and twice its share.
    fn assert_spread<Q: Hash, S: BuildHasher + Default>(
        what: &str,
        keys: impl IntoIterator<Item = Q>,
    ) {
        let keys: Vec<Q> = keys.into_iter().collect();
        let count = (keys.len() / 64).min(16);
        let count = 1 << count.ilog2();
        let shards = Shards::<u64, _>::new(count, S::default());
        let mut hits = vec![0; count];
        for key in &keys {
            hits[usize::from(shards.index_of(shards.hash(key)))] += 1;
        }
        let share = keys.len() / count;
        assert!(
            hits.iter().all(|&n| share / 2 <= n && n <= share * 2),
            "{what}: {hits:?}"
        );
    }

    #[test]
    fn keys_of_every_kind_spread_over_every_shard() {
        assert_spread::<_, Fixed>("u8", 0..=u8::MAX);
        assert_spread::<_, Fixed>("u64", 0..1024_u64);
        assert_spread::<_, Fixed>("(u32, u32)", (0..1024_u32).map(|n| (n % 7, n)));
        assert_spread::<_, Fixed>("one byte", (0..=u8::MAX).map(|b| vec![b]));
        assert_spread::<_, Fixed>("stories", (0..1024).map(|n| format!("story-{n}")));
    }

    #[test]
    fn keys_spread_even_with_an_identity_hasher() {
        type Ident = BuildHasherDefault<Identity>;
        assert_spread::<_, Ident>("small u64", 0..1024_u64);
        // Multiples of a power of two: only high bits differ.
        assert_spread::<_, Ident>("u64 << 32", (0..1024_u64).map(|n| n << 32));
        assert_spread::<_, Ident>("u64 << 8", (0..1024_u64).map(|n| n << 8));
    }

    #[test]
    fn every_one_of_16_shards_gets_some_of_the_256_one_byte_strings() {
        let shards = Shards::<u64, _>::new(16, Fixed::default());
        let hit: HashSet<_> = (0..=u8::MAX)
            .map(|b| shards.index_of(shards.hash(&[b][..])))
            .collect();
        assert_eq!(hit.len(), 16);
    }

    #[test]
    fn the_default_count_is_sixteen_shards_a_core_rounded_up_to_a_power_of_two() {
        for (cores, shards) in [
            (1, 16),
            (2, 32),
            (3, 64),
            (4, 64),
            (5, 128),
            (64, 1024),
            (1000, 1024),
        ] {
            assert_eq!(count_for(cores), shards, "{cores} cores");
        }
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        assert_eq!(default_count(), count_for(cores));
    }

    #[test]
    fn one_shard_takes_every_key() {
        let shards = Shards::<u64, _>::new(1, RandomState::new());
        assert!((0..100).all(|key| shard_of(&shards, key) == 0));
    }
}
