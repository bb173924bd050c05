//! The manager's state: which keys are held and who waits for each.
//!
//! Every method here runs with the manager's mutex held and does only
//! bookkeeping. Wakers taken out of the state come back to the caller, who
//! wakes or drops them once the mutex is released: both may run arbitrary
//! code, which could even re-enter the manager.

use std::borrow::Borrow;
use std::collections::hash_map::{Entry, HashMap};
use std::task::Waker;

use slab::Slab;

use crate::diagnostics::{HeldKey, Stats, Timings};
use crate::hashed::{BuildStoredHash, Hashed, KeyHash, Lookup, Probe};
use crate::hot::{HotKey, HotKeys};
use crate::queue::{self, Handoff, Owner, Slot, WaitQueue, Waiter, WaiterState};
use crate::trace::{self, Caller, Origin};

/// The capacity, in keys and in waiters, up to which a shard keeps the room
/// it grew, so that steady traffic never reallocates; room beyond it that
/// has emptied out is given back. With `u64` keys, what a shard may keep is
/// about 1.3 KiB.
const KEPT: usize = 32;

/// The state behind the manager's mutex.
#[derive(Debug)]
pub(crate) struct State<K> {
    /// Every held key, with the queue of waiters behind its holder. A key
    /// is in the map exactly as long as it is held, so idle keys cost
    /// nothing. Keys are stored and looked
    /// up with their hash, computed once outside the mutex.
    keys: Keys<K>,
    /// The waiters of every key; a [`Slot`] indexes here.
    waiters: Slab<Waiter>,
    /// Counted under the mutex held anyway: no atomic operation.
    counts: Counts,
    /// The waits and holds measured (nothing without `diagnostics`).
    timings: Timings,
    /// The keys most contended, once released free (nothing without
    /// `diagnostics`).
    hot: HotKeys<K>,
}

/// [`Stats`] less its acquisitions, which are the releases plus the keys
/// held now: one counter fewer keeps an idle shard in two cache lines.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    releases: u64,
    contended: u64,
    handoffs: u64,
    cancellations: u64,
    busy: u64,
}

/// The outcome of [`State::poll_waiter`].
#[derive(Debug)]
pub(crate) enum WaiterPoll {
    /// The lock was handed to this waiter; its slot is now free.
    Granted,
    /// Still queued, woken through the polling task's waker; holds the
    /// waker it replaced, if any, to drop once the mutex is released.
    Waiting(Option<Waker>),
}

/// A waker taken out of the state, to be woken or dropped once the mutex is
/// released.
#[must_use = "the waker must be woken or dropped after unlocking"]
#[derive(Debug)]
pub(crate) enum Deferred {
    Nothing,
    /// The next waiter, just granted the lock.
    Wake(Waker),
    /// The waker of a waiter that left the queue.
    Drop(Waker),
}

impl Deferred {
    /// Whether there is nothing to run.
    pub(crate) fn is_nothing(&self) -> bool {
        matches!(self, Deferred::Nothing)
    }

    /// Wakes or drops the waker. Call only with the mutex released.
    #[inline]
    pub(crate) fn run(self) {
        match self {
            Deferred::Nothing => {}
            Deferred::Wake(waker) => waker.wake(),
            Deferred::Drop(waker) => drop(waker),
        }
    }
}

/// The key an owner waits for, if it waits: for the reports.
pub(crate) type Waits<'a, K> = dyn Fn(Owner) -> Option<K> + 'a;

/// A shard's held keys, each with the queue of its waiters.
type Keys<K> = HashMap<Hashed<K>, WaitQueue, BuildStoredHash>;

/// The probe that finds `key`, whose hash is `hash`, in a shard's map.
fn probe<'q, Q: ?Sized>(key: &'q Q, hash: KeyHash) -> Lookup<'q, Q> {
    Lookup { key, hash }
}

impl<K> State<K> {
    pub(crate) fn new() -> Self {
        Self {
            keys: HashMap::default(),
            waiters: Slab::new(),
            counts: Counts::default(),
            timings: Timings::default(),
            hot: HotKeys::default(),
        }
    }

    /// Adds this shard's counts (and, with `diagnostics`, histograms) to
    /// `total`, in place: a `Stats` is 2.6 KB, and adding a shard's empty
    /// histograms without `diagnostics` would be work for nothing.
    pub(crate) fn add_stats(&self, total: &mut Stats) {
        let Counts {
            releases,
            contended,
            handoffs,
            cancellations,
            busy,
        } = self.counts;
        total.acquisitions += releases + self.keys.len() as u64;
        total.releases += releases;
        total.contended += contended;
        total.handoffs += handoffs;
        total.cancellations += cancellations;
        total.busy += busy;
        self.timings.add_to(total);
    }

    /// Counts a request refused without waiting.
    pub(crate) fn count_busy(&mut self) {
        self.counts.busy += 1;
    }

    /// The number of keys held.
    pub(crate) fn locked_count(&self) -> usize {
        self.keys.len()
    }

    /// Whether the waiter in `slot` has been handed its key.
    pub(crate) fn is_granted(&self, slot: Slot) -> bool {
        self.waiters[slot.index()].is_granted()
    }

    /// A clone of the waker of the waiter in `slot`, if it has one.
    pub(crate) fn waker_of(&self, slot: Slot) -> Option<Waker> {
        self.waiters.get(slot.index())?.waker().cloned()
    }

    /// Clones of every waiter's waker.
    pub(crate) fn wakers(&self) -> Vec<Waker> {
        let wakers = self.waiters.iter().filter_map(|(_, waiter)| waiter.waker());
        wakers.cloned().collect()
    }

    /// The number of waiters queued, plus those granted but not yet polled.
    pub(crate) fn waiter_count(&self) -> usize {
        self.waiters.len()
    }
}

impl<K: Eq> State<K> {
    /// Gives back the capacity that keys and waiters no longer use.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.keys.shrink_to_fit();
        if self.waiters.is_empty() {
            // A slab keeps vacant entries below the highest one in use.
            self.waiters = Slab::new();
        } else {
            self.waiters.shrink_to_fit();
        }
    }

    /// The holder and waiters of `key`: 0 when it is free.
    pub(crate) fn queue_len<Q>(&self, key: &Q, hash: KeyHash) -> usize
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.keys
            .get(&probe(key, hash) as &dyn Probe<Q>)
            .map_or(0, |queue| 1 + queue.len())
    }

    /// The owner that marked `key` as its own, if `key` is held by one.
    pub(crate) fn owner_of(&self, key: &K, hash: KeyHash) -> Option<Owner> {
        self.keys.get(&probe(key, hash) as &dyn Probe<K>)?.owner
    }

    /// Marks `key`, which the caller holds, as held by `owner`.
    pub(crate) fn mark(&mut self, key: &K, hash: KeyHash, owner: Owner) {
        if let Some(queue) = self.keys.get_mut(&probe(key, hash) as &dyn Probe<K>) {
            queue.owner = Some(owner);
        }
    }

    pub(crate) fn is_locked<Q>(&self, key: &Q, hash: KeyHash) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.keys.contains_key(&probe(key, hash) as &dyn Probe<Q>)
    }

    /// Takes `key` for `caller` if it is free. Never queues.
    pub(crate) fn try_lock(&mut self, key: K, hash: KeyHash, caller: Caller) -> bool {
        match self.keys.entry(Hashed { key, hash }) {
            Entry::Vacant(entry) => {
                entry.insert(WaitQueue::new(Origin::now(caller)));
                true
            }
            Entry::Occupied(_) => false,
        }
    }

    /// Enqueues a request for `key` unless `max_waiters` already wait for it
    /// (then returns their number and changes nothing): a waiter that
    /// already holds the key if it is free, or one queued, without a waker
    /// yet, behind everyone waiting.
    pub(crate) fn enqueue(
        &mut self,
        key: K,
        hash: KeyHash,
        max_waiters: usize,
        caller: Caller,
    ) -> Result<Slot, usize> {
        let origin = Origin::now(caller);
        match self.keys.entry(Hashed { key, hash }) {
            Entry::Vacant(entry) => {
                entry.insert(WaitQueue::new(origin));
                Ok(queue::insert_granted(&mut self.waiters, origin))
            }
            Entry::Occupied(mut entry) => {
                let queue = entry.get_mut();
                if queue.len() >= max_waiters {
                    let waiters = queue.len();
                    self.count_busy();
                    return Err(waiters);
                }
                self.counts.contended += 1;
                Ok(queue.push_back(&mut self.waiters, None, origin))
            }
        }
    }

    /// Takes `key` if it is free (`None`); otherwise queues a waiter behind
    /// everyone already waiting (`Some`), woken through a clone of `waker`,
    /// or without a waker until the first [`State::poll_waiter`].
    ///
    /// The clone is made here, under the mutex: a waker's `clone` must not
    /// call back into the manager. If it panics, nothing has changed.
    pub(crate) fn lock_or_enqueue(
        &mut self,
        key: K,
        hash: KeyHash,
        waker: Option<&Waker>,
        caller: Caller,
    ) -> Option<Slot> {
        let origin = Origin::now(caller);
        match self.keys.entry(Hashed { key, hash }) {
            Entry::Vacant(entry) => {
                entry.insert(WaitQueue::new(origin));
                None
            }
            Entry::Occupied(mut entry) => {
                let waker = waker.cloned();
                self.counts.contended += 1;
                Some(entry.get_mut().push_back(&mut self.waiters, waker, origin))
            }
        }
    }

    /// Takes the grant of the waiter in `slot`, or makes sure the waiter is
    /// woken through `waker`, cloning it (under the mutex) unless the one
    /// stored already wakes the same task.
    pub(crate) fn poll_waiter(&mut self, slot: Slot, waker: &Waker) -> WaiterPoll {
        let WaiterState::Queued { waker: stored } = self.waiters[slot.index()].state() else {
            self.remove_waiter(slot);
            return WaiterPoll::Granted;
        };
        if stored
            .as_ref()
            .is_some_and(|stored| stored.will_wake(waker))
        {
            return WaiterPoll::Waiting(None);
        }
        WaiterPoll::Waiting(stored.replace(waker.clone()))
    }

    /// Removes the waiter in `slot`, queued on `key` (whose hash is
    /// `hash`), whose future was dropped. If the lock had already been
    /// handed to it, it passes on.
    ///
    /// # Panics
    ///
    /// Panics if `key` is not held, which happens only when `K`'s `Eq` is
    /// inconsistent: the map's copy of the key, found by the same hash, is
    /// not equal to it.
    pub(crate) fn cancel(&mut self, key: &K, hash: KeyHash, slot: Slot) -> Deferred {
        self.counts.cancellations += 1;
        if self.is_granted(slot) {
            // Woken, but dropped before taking the lock: hand it on.
            self.remove_waiter(slot);
            return self.release(key, hash);
        }
        let queue = self
            .keys
            .get_mut(&probe(key, hash) as &dyn Probe<K>)
            .expect("lock-manager: a waiter's key was lost; is its `Eq` inconsistent?");
        let (waker, since) = queue.remove(&mut self.waiters, slot);
        let waited = trace::between(since, trace::now());
        queue.heat.waited(waited);
        self.timings.abandoned(waited);
        self.trim_waiters();
        waker.map_or(Deferred::Nothing, Deferred::Drop)
    }

    /// Frees the slab entry of a waiter no longer queued.
    fn remove_waiter(&mut self, slot: Slot) {
        self.waiters.remove(slot.index());
        self.trim_waiters();
    }

    /// Gives back a slab grown past [`KEPT`] once its last waiter is gone.
    /// (A slab cannot move its entries, so it is freed only when empty.)
    fn trim_waiters(&mut self) {
        if self.waiters.is_empty() && self.waiters.capacity() > KEPT {
            self.waiters = Slab::new();
        }
    }

    /// Gives back map room grown past [`KEPT`] once less than an eighth of
    /// it is in use, keeping twice what is: so a resize, up or down, always
    /// follows at least as many inserts or removals as it moves entries.
    fn trim_keys(&mut self) {
        let capacity = self.keys.capacity();
        if capacity > KEPT && self.keys.len() * 8 < capacity {
            self.keys.shrink_to(self.keys.len() * 2);
        }
    }

    /// Releases `key`, whose hash is `hash`: hands it straight to the
    /// oldest waiter, or forgets the key when nobody waits.
    pub(crate) fn release(&mut self, key: &K, hash: KeyHash) -> Deferred {
        // One hash lookup either way in the common cases: a shard where
        // nobody waits removes the key at once; one with waiters looks the
        // key up, hands it on in place, and removes it only if its own
        // queue turns out empty. With `diagnostics`, one clock read ends
        // the hold and, on a hand-off, the wait, and begins the next hold.
        let now = trace::now();
        let handed = if self.waiters.is_empty() {
            None
        } else {
            let Some(queue) = self.keys.get_mut(&probe(key, hash) as &dyn Probe<K>) else {
                // Only reachable through an inconsistent `Eq`.
                return Deferred::Nothing;
            };
            queue.grant_front(&mut self.waiters, now)
        };
        match handed {
            Some(Handoff {
                waker,
                held_since,
                waited,
            }) => {
                self.counts.releases += 1;
                self.counts.handoffs += 1;
                self.timings.held(held_since, now);
                self.timings.waited(waited);
                waker.map_or(Deferred::Nothing, Deferred::Wake)
            }
            None => {
                let probe = &probe(key, hash) as &dyn Probe<K>;
                // The map's copy of the key goes to the hot keys (with
                // `diagnostics`) if it saw contention.
                let removed = self.keys.remove_entry(probe).map(|(held, queue)| {
                    if queue.heat.is_hot() {
                        self.hot.cooled(held.key, held.hash, queue.heat);
                    }
                    queue
                });
                if let Some(queue) = removed {
                    self.counts.releases += 1;
                    self.timings.held(queue.holder().since, now);
                    self.trim_keys();
                }
                Deferred::Nothing
            }
        }
    }
}

impl<K: Eq + Clone> State<K> {
    /// Appends the keys most contended in this shard to `hot`: those held
    /// now that saw contention, and those its sketch tracks (nothing
    /// without `diagnostics`).
    pub(crate) fn report_hot(&self, hot: &mut Vec<HotKey<K>>) {
        let held = (self.keys.iter()).map(|(Hashed { key, .. }, queue)| (key, queue.heat));
        self.hot.report(held, hot);
    }

    /// Appends every key held in this shard to `held`; `waits` names the
    /// key an owner waits for.
    pub(crate) fn report(&self, held: &mut Vec<HeldKey<K>>, waits: &Waits<'_, K>) {
        let keys = self.keys.iter();
        held.extend(keys.map(|(Hashed { key, .. }, queue)| self.held_key(key, queue, waits)));
    }

    /// The report on `key`, if it is held.
    pub(crate) fn report_one<Q>(
        &self,
        key: &Q,
        hash: KeyHash,
        waits: &Waits<'_, K>,
    ) -> Option<HeldKey<K>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let (Hashed { key, .. }, queue) = self
            .keys
            .get_key_value(&probe(key, hash) as &dyn Probe<Q>)?;
        Some(self.held_key(key, queue, waits))
    }

    fn held_key(&self, key: &K, queue: &WaitQueue, waits: &Waits<'_, K>) -> HeldKey<K> {
        let holder = queue.holder();
        let oldest = queue.oldest(&self.waiters);
        HeldKey {
            key: key.clone(),
            waiters: queue.len(),
            held_for: trace::age(holder.since),
            held_by: holder.caller.location(),
            oldest_waiter: oldest.and_then(|oldest| trace::age(oldest.since)),
            oldest_waiter_from: oldest.and_then(|oldest| oldest.caller.location()),
            holder_waits_for: queue.owner.and_then(waits),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;
    use std::hash::BuildHasherDefault;

    fn state() -> State<u64> {
        State::new()
    }

    #[test]
    fn a_held_u64_key_takes_32_bytes_of_map_entry() {
        // What the memory per held key rests on: the key and its hash, then
        // its queue's ends and length; with `diagnostics`, its holder's
        // `Instant` and call site, and its contention, too.
        let entry = if cfg!(feature = "diagnostics") {
            72
        } else {
            32
        };
        assert_eq!(std::mem::size_of::<(Hashed<u64>, WaitQueue)>(), entry);
    }

    /// The hash of `key`, as the manager computes it.
    fn hash(key: u64) -> KeyHash {
        KeyHash::of(&BuildHasherDefault::<DefaultHasher>::default(), &key)
    }

    fn try_lock(state: &mut State<u64>, key: u64) -> bool {
        state.try_lock(key, hash(key), Caller::here())
    }

    fn release(state: &mut State<u64>, key: u64) {
        state.release(&key, hash(key)).run();
    }

    fn cancel(state: &mut State<u64>, key: u64, slot: Slot) {
        state.cancel(&key, hash(key), slot).run();
    }

    /// Queues `n` waiters on key 0, which must be held.
    fn queue(state: &mut State<u64>, n: usize) -> Vec<Slot> {
        (0..n)
            .map(|_| {
                state
                    .lock_or_enqueue(0, hash(0), None, Caller::here())
                    .expect("key 0 is held")
            })
            .collect()
    }

    #[test]
    fn released_keys_give_their_room_back() {
        let mut state = state();
        for key in 0..2_000 {
            assert!(try_lock(&mut state, key));
        }
        let mut trims = 0;
        for key in 0..2_000 {
            let before = state.keys.capacity();
            release(&mut state, key);
            let (len, now) = (state.keys.len(), state.keys.capacity());
            // Never more than eight times the room in use, once past `KEPT`.
            assert!(now <= KEPT || len * 8 >= now, "{len} keys in {now}");
            // (A removal that leaves a tombstone lowers the capacity by one
            // without moving anything.)
            if now + 1 < before {
                trims += 1;
                assert!(len * 8 < before, "trimmed {len} keys in {before}");
                assert!(now >= 2 * len, "trimmed {len} keys to {now}");
            }
        }
        assert!(trims > 0);
        assert!(state.keys.capacity() <= KEPT);
        let mut stats = Stats::default();
        state.add_stats(&mut stats);
        assert_eq!(stats.releases, 2_000);
    }

    #[test]
    fn waiters_give_their_room_back_once_gone() {
        let mut state = state();
        let waker = Waker::noop();
        assert!(try_lock(&mut state, 0));
        let slots = queue(&mut state, 1_000);
        // Half leave the queue, the other half are handed the key in turn.
        for (i, &slot) in slots.iter().enumerate() {
            if i % 2 == 0 {
                cancel(&mut state, 0, slot);
            }
        }
        assert!(state.waiters.capacity() >= 1_000, "kept while in use");
        for &slot in slots.iter().skip(1).step_by(2) {
            release(&mut state, 0);
            let granted = state.poll_waiter(slot, waker);
            assert!(matches!(granted, WaiterPoll::Granted));
        }
        assert_eq!(state.waiter_count(), 0);
        assert_eq!(state.waiters.capacity(), 0, "freed with the last waiter");
        release(&mut state, 0);
        assert_eq!(state.locked_count(), 0);
    }

    #[test]
    fn a_granted_waiter_that_leaves_gives_the_room_back() {
        let mut state = state();
        assert!(try_lock(&mut state, 0));
        let slots = queue(&mut state, 100);
        for &slot in &slots[..99] {
            cancel(&mut state, 0, slot);
        }
        release(&mut state, 0); // hands 0 to the last waiter
        cancel(&mut state, 0, slots[99]); // which passes it on, to nobody
        assert_eq!(state.waiters.capacity(), 0);
        assert_eq!(state.locked_count(), 0);
    }

    #[test]
    fn steady_traffic_keeps_its_room() {
        let mut state = state();
        let mut room = None;
        for _ in 0..3 {
            assert!(try_lock(&mut state, 0));
            for slot in queue(&mut state, KEPT) {
                cancel(&mut state, 0, slot);
            }
            for key in 1..=KEPT as u64 {
                assert!(try_lock(&mut state, key));
            }
            for key in 0..=KEPT as u64 {
                release(&mut state, key);
            }
            let now = (state.keys.capacity(), state.waiters.capacity());
            assert!(now.0 > 0 && now.1 == KEPT, "{now:?}");
            assert_eq!(*room.get_or_insert(now), now, "reallocated");
        }
    }

    #[test]
    fn a_granted_waiter_frees_its_slot_when_it_takes_the_key() {
        let mut state = state();
        assert!(try_lock(&mut state, 0));
        let slots = queue(&mut state, 2);
        release(&mut state, 0);
        assert_eq!(state.waiter_count(), 2, "granted, not yet polled");
        let granted = state.poll_waiter(slots[0], Waker::noop());
        assert!(matches!(granted, WaiterPoll::Granted));
        assert_eq!(state.waiter_count(), 1);
        // The freed slot goes to the next waiter, which waits its turn.
        let reused = queue(&mut state, 1)[0];
        assert_eq!(reused, slots[0]);
        let waiting = state.poll_waiter(reused, Waker::noop());
        assert!(matches!(waiting, WaiterPoll::Waiting(None)));
        for slot in [slots[1], reused] {
            release(&mut state, 0);
            assert!(matches!(
                state.poll_waiter(slot, Waker::noop()),
                WaiterPoll::Granted
            ));
        }
        release(&mut state, 0);
        assert_eq!((state.locked_count(), state.waiter_count()), (0, 0));
    }
}
