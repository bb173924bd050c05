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

use crate::clock::{self, Stamp};
use crate::diagnostics::{HeldKey, Stats};
use crate::hashed::{BuildStoredHash, Hashed, KeyHash, Lookup, Probe};
use crate::notice::Notice;
use crate::queue::{self, Slot, WaitQueue, Waiter, WaiterState};

/// The capacity, in keys and in waiters, up to which a shard keeps the room
/// it grew, so that steady traffic never reallocates; room beyond it that
/// has emptied out is given back. With `u64` keys, what a shard may keep is
/// about 1.3 KiB.
const KEPT: usize = 32;

/// The state behind the manager's mutex.
#[derive(Debug)]
pub(crate) struct State<K> {
    /// Every held key, with the queue of waiters behind its holder kept in
    /// the map's key (see [`Hashed`]). A key is in the map exactly as long
    /// as it is held, so idle keys cost nothing. Keys are stored and looked
    /// up with their hash, computed once outside the mutex.
    keys: Keys<K>,
    /// The waiters of every key; a [`Slot`] indexes here.
    waiters: Slab<Waiter>,
    /// Counted under the mutex held anyway: no atomic operation.
    counts: Counts,
}

/// [`Stats`] less its acquisitions, which are the releases plus the keys
/// held now: one counter fewer keeps an idle shard in two cache lines.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    releases: u64,
    contended: u64,
    handoffs: u64,
    cancellations: u64,
}

/// The outcome of [`State::lock_or_enqueue`].
#[derive(Debug)]
pub(crate) enum Enqueue {
    /// The key was free and is now held by the caller.
    Locked,
    /// The key is held; the caller waits in this slot, without a waker
    /// until it supplies one through [`State::poll_waiter`].
    Queued(Slot),
}

/// The outcome of [`State::poll_waiter`].
#[derive(Debug)]
pub(crate) enum WaiterPoll {
    /// The lock was handed to this waiter; its slot is now free.
    Granted,
    /// Still queued, and its stored waker wakes the polling task.
    Waiting,
    /// Still queued, but its stored waker is another task's (or missing)
    /// and no fresh one was supplied: clone one outside the mutex and call
    /// again.
    NeedsWaker,
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

/// A shard's held keys, each with the queue of its waiters.
type Keys<K> = HashMap<Hashed<K, WaitQueue>, (), BuildStoredHash>;

/// The map key of `key`, whose hash is `hash`, were it taken at `now`.
fn held<K>(key: K, hash: KeyHash, now: Stamp) -> Hashed<K, WaitQueue> {
    Hashed {
        key,
        hash,
        value: WaitQueue::new(now),
    }
}

/// The queue of `key`, whose hash is `hash`, if `key` is held.
// The queue's cells are no part of the map key's `Hash` or `Eq`.
#[allow(clippy::mutable_key_type)]
fn queue_of<'a, K, Q>(keys: &'a Keys<K>, key: &Q, hash: KeyHash) -> Option<&'a WaitQueue>
where
    K: Borrow<Q> + Eq,
    Q: Eq + ?Sized,
{
    let (held, ()) = keys.get_key_value(&Lookup { key, hash } as &dyn Probe<Q>)?;
    Some(&held.value)
}

impl<K> State<K> {
    pub(crate) fn new() -> Self {
        Self {
            keys: HashMap::default(),
            waiters: Slab::new(),
            counts: Counts::default(),
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        let Counts {
            releases,
            contended,
            handoffs,
            cancellations,
        } = self.counts;
        Stats {
            acquisitions: releases + self.keys.len() as u64,
            releases,
            contended,
            handoffs,
            cancellations,
        }
    }

    /// The number of keys held.
    pub(crate) fn locked_count(&self) -> usize {
        self.keys.len()
    }

    /// The number of waiters queued, plus those granted but not yet polled:
    /// the slab's entries, less one taken off the shard's `notice` and not
    /// yet collected.
    pub(crate) fn waiter_count(&self, notice: &Notice) -> usize {
        self.waiters.len() - usize::from(notice.holds_taken())
    }
}

impl<K: Eq> State<K> {
    /// Gives back the capacity that keys and waiters no longer use.
    pub(crate) fn shrink_to_fit(&mut self, notice: &Notice) {
        self.collect_taken(notice);
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
        queue_of(&self.keys, key, hash).map_or(0, |queue| 1 + queue.len())
    }

    pub(crate) fn is_locked<Q>(&self, key: &Q, hash: KeyHash) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.keys
            .contains_key(&Lookup { key, hash } as &dyn Probe<Q>)
    }

    /// Takes `key` if it is free. Never queues.
    pub(crate) fn try_lock(&mut self, key: K, hash: KeyHash) -> bool {
        match self.keys.entry(held(key, hash, clock::now())) {
            Entry::Vacant(entry) => {
                entry.insert(());
                true
            }
            Entry::Occupied(_) => false,
        }
    }

    /// Places a request for `key` unless `max_waiters` already wait for it
    /// (then returns their number and changes nothing): a waiter that
    /// already holds the key if it is free, or one queued, without a waker
    /// yet, behind everyone waiting.
    pub(crate) fn place(
        &mut self,
        key: K,
        hash: KeyHash,
        max_waiters: usize,
    ) -> Result<Slot, usize> {
        let now = clock::now();
        match self.keys.entry(held(key, hash, now)) {
            Entry::Vacant(entry) => {
                entry.insert(());
                Ok(queue::insert_granted(&mut self.waiters, now))
            }
            Entry::Occupied(entry) => {
                let queue = &entry.key().value;
                if queue.len() >= max_waiters {
                    return Err(queue.len());
                }
                self.counts.contended += 1;
                Ok(queue.push_back(&mut self.waiters, None, now))
            }
        }
    }

    /// Takes `key` if it is free; otherwise queues a waiter behind everyone
    /// already waiting, woken through the waker taken from `waker`.
    ///
    /// The waker is cloned by the caller, outside the mutex (cloning runs
    /// foreign code), and only when contention is expected, so that the
    /// uncontended path never clones. Without one the waiter is queued
    /// without a waker, for the caller to install through
    /// [`State::poll_waiter`]; a waker left unused stays in `waker`, for
    /// the caller to drop once unlocked.
    pub(crate) fn lock_or_enqueue(
        &mut self,
        key: K,
        hash: KeyHash,
        waker: &mut Option<Waker>,
    ) -> Enqueue {
        let now = clock::now();
        match self.keys.entry(held(key, hash, now)) {
            Entry::Vacant(entry) => {
                entry.insert(());
                Enqueue::Locked
            }
            Entry::Occupied(entry) => {
                self.counts.contended += 1;
                let queue = &entry.key().value;
                Enqueue::Queued(queue.push_back(&mut self.waiters, waker.take(), now))
            }
        }
    }

    /// Takes the grant of the waiter in `slot`, or makes sure the waiter is
    /// woken through `waker`.
    ///
    /// When the stored waker must change, the new one is taken from `fresh`
    /// and the old one is left there, so that the caller drops it unlocked.
    /// `notice` is the shard's, which may still post a grant.
    pub(crate) fn poll_waiter(
        &mut self,
        slot: Slot,
        waker: &Waker,
        fresh: &mut Option<Waker>,
        notice: &Notice,
    ) -> WaiterPoll {
        let WaiterState::Queued { waker: stored } = self.waiters[slot.index()].state() else {
            notice.withdraw(slot);
            self.remove_waiter(slot);
            return WaiterPoll::Granted;
        };
        if stored
            .as_ref()
            .is_some_and(|stored| stored.will_wake(waker))
        {
            return WaiterPoll::Waiting;
        }
        match fresh.take() {
            Some(new) => {
                *fresh = stored.replace(new);
                WaiterPoll::Waiting
            }
            None => WaiterPoll::NeedsWaker,
        }
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
    pub(crate) fn cancel(
        &mut self,
        key: &K,
        hash: KeyHash,
        slot: Slot,
        notice: &Notice,
    ) -> Deferred {
        self.counts.cancellations += 1;
        if self.waiters[slot.index()].is_granted() {
            // Woken, but dropped before taking the lock: hand it on.
            notice.withdraw(slot);
            self.remove_waiter(slot);
            return self.release(key, hash, notice);
        }
        let queue = queue_of(&self.keys, key, hash)
            .expect("lock-manager: a waiter's key was lost; is its `Eq` inconsistent?");
        let waker = queue.remove(&mut self.waiters, slot);
        self.trim_waiters();
        waker.map_or(Deferred::Nothing, Deferred::Drop)
    }

    /// Frees the slot of a waiter that took its grant off the shard's
    /// `notice`, if one did since the last collection.
    fn collect_taken(&mut self, notice: &Notice) {
        if let Some(slot) = notice.collect() {
            self.remove_waiter(slot);
        }
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
    /// oldest waiter, posting its slot on the shard's `notice`, or forgets
    /// the key when nobody waits.
    pub(crate) fn release(&mut self, key: &K, hash: KeyHash, notice: &Notice) -> Deferred {
        // Most often the slot of the holder itself, handed the key.
        self.collect_taken(notice);
        // One hash lookup either way in the common cases: a shard where
        // nobody waits removes the key at once; one with waiters looks the
        // key up, hands it on in place, and removes it only if its own
        // queue turns out empty.
        let handed = if self.waiters.is_empty() {
            None
        } else {
            let Some(queue) = queue_of(&self.keys, key, hash) else {
                // Only reachable through an inconsistent `Eq`.
                return Deferred::Nothing;
            };
            queue.grant_front(&mut self.waiters)
        };
        match handed {
            Some((slot, waker)) => {
                if let Some(taken) = notice.post(slot) {
                    // Taken since collected above, under another key.
                    self.remove_waiter(taken);
                }
                self.counts.releases += 1;
                self.counts.handoffs += 1;
                waker.map_or(Deferred::Nothing, Deferred::Wake)
            }
            None => {
                if self
                    .keys
                    .remove(&Lookup { key, hash } as &dyn Probe<K>)
                    .is_some()
                {
                    self.counts.releases += 1;
                    self.trim_keys();
                }
                Deferred::Nothing
            }
        }
    }
}

impl<K: Clone> State<K> {
    /// Appends every key held in this shard to `held`.
    pub(crate) fn report(&self, held: &mut Vec<HeldKey<K>>) {
        held.extend(self.keys.keys().map(
            |Hashed {
                 key, value: queue, ..
             }| HeldKey {
                key: key.clone(),
                waiters: queue.len(),
                held_for: clock::age(queue.held_since()),
                oldest_waiter: queue.oldest_since(&self.waiters).and_then(clock::age),
            },
        ));
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
    #[cfg(not(feature = "timing"))]
    fn a_held_u64_key_takes_24_bytes_of_map_entry() {
        // What the memory target per held key rests on: the key, its hash
        // and its queue's three words, packed into one struct.
        assert_eq!(std::mem::size_of::<(Hashed<u64, WaitQueue>, ())>(), 24);
    }

    /// The hash of `key`, as the manager computes it.
    fn hash(key: u64) -> KeyHash {
        KeyHash::of(&BuildHasherDefault::<DefaultHasher>::default(), &key)
    }

    fn try_lock(state: &mut State<u64>, key: u64) -> bool {
        state.try_lock(key, hash(key))
    }

    /// Releases `key`, posting a hand-off on a notice nobody reads.
    fn release(state: &mut State<u64>, key: u64) {
        state.release(&key, hash(key), &Notice::default()).run();
    }

    fn cancel(state: &mut State<u64>, key: u64, slot: Slot) {
        state
            .cancel(&key, hash(key), slot, &Notice::default())
            .run();
    }

    /// Queues `n` waiters on key 0, which must be held.
    fn queue(state: &mut State<u64>, n: usize) -> Vec<Slot> {
        (0..n)
            .map(|_| match state.lock_or_enqueue(0, hash(0), &mut None) {
                Enqueue::Queued(slot) => slot,
                Enqueue::Locked => panic!("key 0 is free"),
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
        assert_eq!(state.stats().releases, 2_000);
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
        // Every other one takes its grant off the notice, which its release
        // collects; the others lock to take it.
        let notice = Notice::default();
        for (i, &slot) in slots.iter().skip(1).step_by(2).enumerate() {
            state.release(&0, hash(0), &notice).run();
            if i % 2 == 1 {
                assert!(notice.take(slot));
            } else {
                let granted = state.poll_waiter(slot, waker, &mut None, &notice);
                assert!(matches!(granted, WaiterPoll::Granted));
            }
        }
        assert!(state.waiters.capacity() >= 1_000, "a taken slot in use");
        assert_eq!(state.waiter_count(&notice), 0);
        state.release(&0, hash(0), &notice).run();
        assert_eq!(state.waiters.capacity(), 0);
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

    /// Key 0 taken, `n` waiters queued on it, and the key released: the
    /// first of them is granted, and posted on the notice.
    fn handed_to_the_first_of(n: usize) -> (State<u64>, Notice, Vec<Slot>) {
        let mut state = state();
        let notice = Notice::default();
        assert!(try_lock(&mut state, 0));
        let slots = queue(&mut state, n);
        state.release(&0, hash(0), &notice).run();
        (state, notice, slots)
    }

    #[test]
    fn a_taken_grant_is_collected_by_the_next_release() {
        let (mut state, notice, slots) = handed_to_the_first_of(2);
        assert!(notice.names(slots[0]) && !notice.holds_taken());
        assert_eq!(state.waiter_count(&notice), 2, "granted, not yet taken");
        assert!(notice.take(slots[0]));
        assert!(!notice.take(slots[0]), "taken once");
        assert!(notice.holds_taken());
        assert_eq!(state.waiter_count(&notice), 1, "taken: the holder now");
        assert_eq!(state.waiters.len(), 2, "not yet collected");
        // Its release frees the slot and hands the key on.
        state.release(&0, hash(0), &notice).run();
        assert!(notice.names(slots[1]) && !notice.holds_taken());
        assert_eq!(state.waiters.len(), 1);
        assert!(notice.take(slots[1]));
        // Another key's release collects it too.
        assert!(try_lock(&mut state, 1));
        state.release(&1, hash(1), &notice).run();
        assert_eq!((state.waiters.len(), notice.holds_taken()), (0, false));
        release(&mut state, 0);
        assert_eq!(state.locked_count(), 0);
    }

    #[test]
    fn a_post_replacing_a_taken_grant_frees_its_slot() {
        let mut state = state();
        let notice = Notice::default();
        for key in [0, 1] {
            assert!(try_lock(&mut state, key));
        }
        let first = queue(&mut state, 1)[0];
        let second = match state.lock_or_enqueue(1, hash(1), &mut None) {
            Enqueue::Queued(slot) => slot,
            Enqueue::Locked => panic!("key 1 is held"),
        };
        state.release(&0, hash(0), &notice).run();
        assert!(notice.take(first));
        // Key 1's release replaces the taken post.
        state.release(&1, hash(1), &notice).run();
        assert!(notice.names(second) && !notice.holds_taken());
        assert_eq!(state.waiters.len(), 1);
        assert_eq!(notice.post(second), None, "nothing taken to free");
    }

    #[test]
    fn shrinking_collects_a_taken_grant() {
        let (mut state, notice, slots) = handed_to_the_first_of(1);
        assert!(notice.take(slots[0]));
        state.shrink_to_fit(&notice);
        assert_eq!(state.waiters.capacity(), 0);
        assert!(!notice.holds_taken());
        release(&mut state, 0);
    }

    #[test]
    fn freeing_a_slot_not_taken_withdraws_its_post() {
        let waker = Waker::noop();
        for by_cancel in [false, true] {
            let (mut state, notice, slots) = handed_to_the_first_of(1);
            let first = slots[0];
            assert!(notice.names(first));
            if by_cancel {
                // Dropped before taking the key: hands it on, to nobody.
                state.cancel(&0, hash(0), first, &notice).run();
                assert_eq!(state.locked_count(), 0);
                assert!(try_lock(&mut state, 0));
            } else {
                let granted = state.poll_waiter(first, waker, &mut None, &notice);
                assert!(matches!(granted, WaiterPoll::Granted));
            }
            assert!(!notice.names(first));
            // The freed slot goes to the next waiter, which must not find
            // the old grant.
            let reused = queue(&mut state, 1)[0];
            assert_eq!(reused, first);
            assert!(!notice.take(reused));
        }
    }

    #[test]
    fn withdrawing_leaves_another_slot_posted() {
        let (_state, notice, slots) = handed_to_the_first_of(2);
        notice.withdraw(slots[1]);
        assert!(notice.names(slots[0]));
    }
}
