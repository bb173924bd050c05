//! Per-key FIFO wait queues, linked through the indices of one shared slab.
//!
//! This is a plain data structure: no locking and no waking happen here. The
//! caller holds the manager's mutex and decides what to do with the wakers
//! handed back, once that mutex is released.

use std::num::NonZeroU32;
use std::task::Waker;

use slab::Slab;

use crate::trace::{self, Heat, Origin, Span, Stamp};

/// The slab index of a waiter, stored plus one so that `Option<Slot>` fits
/// in four bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot(NonZeroU32);

impl Slot {
    /// Marks a granted waiter in place of its `next` link; no index maps to
    /// it.
    const GRANTED: Slot = Slot(NonZeroU32::MAX);

    #[track_caller]
    fn new(index: usize) -> Self {
        u32::try_from(index)
            .ok()
            .and_then(|index| index.checked_add(1))
            .and_then(NonZeroU32::new)
            .map(Slot)
            .filter(|&slot| slot != Self::GRANTED)
            .expect("lock-manager supports at most 2^32 - 2 waiters per shard")
    }

    pub(crate) fn index(self) -> usize {
        // Lossless: `usize` is at least 32 bits on every target std supports.
        (self.0.get() - 1) as usize
    }
}

/// A request that holds keys while it waits for more, registered in the
/// manager's waits-for graph (`graph.rs`): its index there, plus one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Owner(NonZeroU32);

impl Owner {
    #[track_caller]
    pub(crate) fn new(index: usize) -> Self {
        let id = u32::try_from(index)
            .ok()
            .and_then(|index| index.checked_add(1));
        Owner(
            id.and_then(NonZeroU32::new)
                .expect("lock-manager: too many nested requests"),
        )
    }

    pub(crate) fn index(self) -> usize {
        // Lossless, as for `Slot`.
        (self.0.get() - 1) as usize
    }
}

/// A waiter's entry in the slab, read through [`Waiter::state`].
///
/// Packed into 24 bytes, which is what `slab` then stores: a granted waiter
/// is marked by [`Slot::GRANTED`] in its `next` link, as an enum would cost
/// 8 more bytes per waiter.
///
/// May only be read or written while its shard's mutex is held.
#[derive(Debug)]
pub(crate) struct Waiter {
    /// Wakes the waiter's task when the lock is handed to it; `None` for a
    /// waiter queued before its first poll (a multi-key or bounded request,
    /// or a key a multi-key future does not wait for yet), and once
    /// granted.
    waker: Option<Waker>,
    /// The neighbours in the key's queue, while queued.
    prev: Slot,
    next: Slot,
    /// When it joined the queue, and from where (zero-sized without the
    /// `diagnostics` feature).
    origin: Origin,
}

/// A waiter's state, unpacked.
#[derive(Debug)]
pub(crate) enum WaiterState<'a> {
    /// In its key's queue, to be woken through `waker` when the lock is
    /// handed to it.
    Queued { waker: &'a mut Option<Waker> },
    /// Unlinked from its queue: the key is held on the waiter's behalf
    /// until its future is polled (and takes the guard) or dropped (and
    /// hands the key on), either of which frees the entry.
    Granted,
}

impl Waiter {
    pub(crate) fn state(&mut self) -> WaiterState<'_> {
        if self.is_granted() {
            WaiterState::Granted
        } else {
            WaiterState::Queued {
                waker: &mut self.waker,
            }
        }
    }

    pub(crate) fn is_granted(&self) -> bool {
        self.next == Slot::GRANTED
    }

    /// The waker of a queued waiter that has one.
    pub(crate) fn waker(&self) -> Option<&Waker> {
        self.waker.as_ref()
    }
}

/// Allocates a waiter that holds its key already, in no queue: for a
/// request placed (at `origin`) while the key was free.
///
/// # Panics
///
/// Panics if the slab would need an index past `2^32 - 3`.
#[track_caller]
pub(crate) fn insert_granted(waiters: &mut Slab<Waiter>, origin: Origin) -> Slot {
    let slot = Slot::new(waiters.vacant_key());
    waiters.insert(Waiter {
        waker: None,
        prev: Slot::GRANTED,
        next: Slot::GRANTED,
        origin,
    });
    slot
}

/// A key handed from its holder to the oldest waiter, by
/// [`WaitQueue::grant_front`].
#[derive(Debug)]
pub(crate) struct Handoff {
    /// The waiter's waker, to wake once unlocked; `None` if it has none
    /// yet, and so will find the grant when it supplies one.
    pub(crate) waker: Option<Waker>,
    /// When the previous holder took the key.
    pub(crate) held_since: Stamp,
    /// How long the waiter waited.
    pub(crate) waited: Span,
}

/// The waiters queued on one held key, oldest first: a doubly linked list
/// through the slab, whose two ends are kept here.
///
/// A hand-off reads and writes the head's slab entry and no other, an
/// enqueue the tail's and its own: the ends of a queue are not linked to
/// each other, so a waiter joining at one end and a waiter leaving at the
/// other touch no common cache line. The head's `prev` and the tail's
/// `next` are never read.
///
/// The holder of the key is not in the queue: a key's queue exists exactly
/// as long as the key is held, as the key's value in its shard's map.
#[derive(Debug)]
pub(crate) struct WaitQueue {
    head: Option<Slot>,
    tail: Option<Slot>,
    len: u32,
    /// The holder, if it is an owner that marked the key (in the padding
    /// the entry had: a held `u64` key still takes 32 bytes). Cleared when
    /// the key passes on.
    pub(crate) owner: Option<Owner>,
    /// When the current holder took the key, and from where.
    holder: Origin,
    /// Its contended acquisitions and waits since it was taken free.
    pub(crate) heat: Heat,
}

impl WaitQueue {
    /// The queue of a key taken by `holder`, with nobody waiting.
    pub(crate) fn new(holder: Origin) -> Self {
        Self {
            head: None,
            tail: None,
            len: 0,
            owner: None,
            holder,
            heat: Heat::default(),
        }
    }

    /// When the current holder took the key, and from where.
    pub(crate) fn holder(&self) -> Origin {
        self.holder
    }

    /// When the oldest waiter joined, and from where, if anyone waits.
    pub(crate) fn oldest(&self, waiters: &Slab<Waiter>) -> Option<Origin> {
        self.head.map(|head| waiters[head.index()].origin)
    }

    /// The number of waiters, the holder not counted.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// Appends a waiter that joined at `origin`, woken through `waker`
    /// (which may come later), in O(1).
    ///
    /// # Panics
    ///
    /// Panics if the slab would need an index past `2^32 - 3`.
    #[track_caller]
    #[inline]
    pub(crate) fn push_back(
        &mut self,
        waiters: &mut Slab<Waiter>,
        waker: Option<Waker>,
        origin: Origin,
    ) -> Slot {
        let slot = Slot::new(waiters.vacant_key());
        let prev = match self.tail.replace(slot) {
            None => {
                self.head = Some(slot);
                slot
            }
            Some(tail) => {
                waiters[tail.index()].next = slot;
                tail
            }
        };
        waiters.insert(Waiter {
            waker,
            prev,
            // Never read while it is the tail.
            next: slot,
            origin,
        });
        self.len += 1;
        self.heat.contended();
        slot
    }

    /// Hands the lock, at `now`, to the oldest waiter, in O(1): unlinks
    /// it and marks it granted. `None` if the queue is empty.
    #[inline]
    pub(crate) fn grant_front(
        &mut self,
        waiters: &mut Slab<Waiter>,
        now: Stamp,
    ) -> Option<Handoff> {
        let head = self.head?;
        self.unlink(waiters, head);
        let waiter = &mut waiters[head.index()];
        waiter.next = Slot::GRANTED;
        self.owner = None;
        let previous = std::mem::replace(
            &mut self.holder,
            Origin {
                since: now,
                caller: waiter.origin.caller,
            },
        );
        let waited = trace::between(waiter.origin.since, now);
        self.heat.waited(waited);
        Some(Handoff {
            waker: waiter.waker.take(),
            held_since: previous.since,
            waited,
        })
    }

    /// Unlinks the queued waiter at `slot` and frees its slab entry, in O(1),
    /// returning its waker, to drop once unlocked, and when it joined.
    #[inline]
    pub(crate) fn remove(
        &mut self,
        waiters: &mut Slab<Waiter>,
        slot: Slot,
    ) -> (Option<Waker>, Stamp) {
        self.unlink(waiters, slot);
        let waiter = waiters.remove(slot.index());
        (waiter.waker, waiter.origin.since)
    }

    #[inline]
    fn unlink(&mut self, waiters: &mut Slab<Waiter>, slot: Slot) {
        let Waiter { prev, next, .. } = waiters[slot.index()];
        self.len -= 1;
        if self.len == 0 {
            self.head = None;
            self.tail = None;
        } else if self.head == Some(slot) {
            // The new head's `prev`, now stale, is never read.
            self.head = Some(next);
        } else if self.tail == Some(slot) {
            // Nor the new tail's `next`.
            self.tail = Some(prev);
        } else {
            waiters[prev.index()].next = next;
            waiters[next.index()].prev = prev;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{self, Caller};
    use std::sync::{Arc, Mutex};
    use std::task::Wake;

    /// A waker that logs its tag when woken.
    struct Tagged {
        tag: usize,
        log: Arc<Mutex<Vec<usize>>>,
    }

    impl Wake for Tagged {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.log.lock().unwrap().push(self.tag);
        }
    }

    /// Distinct wakers, tagged with their index, and their shared log.
    fn wakers(n: usize) -> (Vec<Waker>, Arc<Mutex<Vec<usize>>>) {
        let log = Arc::default();
        let wakers = (0..n)
            .map(|tag| {
                let log = Arc::clone(&log);
                Waker::from(Arc::new(Tagged { tag, log }))
            })
            .collect();
        (wakers, log)
    }

    /// Which waiter a waker belongs to: wakes it and reads the log. (Not
    /// `will_wake`, which miri does not answer reliably.)
    fn tag_of(log: &Mutex<Vec<usize>>, waker: Waker) -> usize {
        waker.wake();
        log.lock().unwrap().pop().unwrap()
    }

    /// Walks the queue front to back, checking the links on the way.
    fn order(queue: &WaitQueue, waiters: &Slab<Waiter>) -> Vec<Slot> {
        let Some(head) = queue.head else {
            assert_eq!(queue.tail, None);
            assert_eq!(queue.len(), 0);
            return Vec::new();
        };
        let tail = queue.tail.expect("a queue with a head has a tail");
        let mut out = vec![head];
        loop {
            let last = *out.last().unwrap();
            let waiter = &waiters[last.index()];
            assert!(!waiter.is_granted(), "granted waiter in queue");
            assert!(waiter.waker.is_some(), "queued waiter without a waker");
            if last == tail {
                break;
            }
            assert_eq!(waiters[waiter.next.index()].prev, last, "broken back link");
            out.push(waiter.next);
            assert!(out.len() <= waiters.len(), "the tail is not in the queue");
        }
        assert_eq!(queue.len(), out.len());
        out
    }

    fn origin() -> Origin {
        Origin::now(Caller::here())
    }

    #[test]
    fn slot_round_trips_and_fits_four_bytes() {
        assert_eq!(Slot::new(0).index(), 0);
        assert_eq!(Slot::new(41).index(), 41);
        assert_eq!(std::mem::size_of::<Option<Slot>>(), 4);
    }

    #[test]
    fn records_stay_small() {
        // What the memory target per waiter rests on (the map entry of a
        // held key is pinned in `state`: the owner mark took the queue
        // from 12 to 16 bytes, padding the entry had anyway). With
        // `diagnostics`, each also keeps an `Instant` and a call site, and
        // a queue its key's contention (`Heat`).
        let (queue, waiter) = if cfg!(feature = "diagnostics") {
            (56, 48)
        } else {
            (16, 24)
        };
        assert_eq!(std::mem::size_of::<WaitQueue>(), queue);
        assert_eq!(std::mem::size_of::<Waiter>(), waiter);
    }

    #[test]
    #[should_panic(expected = "at most 2^32 - 2 waiters")]
    fn the_index_of_the_granted_mark_panics_clearly() {
        Slot::new(u32::MAX as usize - 1);
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    #[should_panic(expected = "at most 2^32 - 2 waiters")]
    fn an_index_past_32_bits_panics_clearly() {
        Slot::new(u32::MAX as usize);
    }

    #[test]
    fn the_last_index_is_apart_from_the_granted_mark() {
        let last = Slot::new(u32::MAX as usize - 2);
        assert_eq!(last.index(), u32::MAX as usize - 2);
        assert_ne!(last, Slot::GRANTED);
    }

    #[test]
    fn a_waiter_without_a_waker_is_granted_silently() {
        let mut waiters = Slab::new();
        let mut queue = WaitQueue::new(origin());
        let slot = queue.push_back(&mut waiters, None, origin());
        assert!(!waiters[slot.index()].is_granted());
        assert!(matches!(
            queue.grant_front(&mut waiters, trace::now()),
            Some(Handoff { waker: None, .. })
        ));
        assert!(waiters[slot.index()].is_granted());
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn grants_in_push_order() {
        let (tags, log) = wakers(3);
        let mut waiters = Slab::new();
        let mut queue = WaitQueue::new(origin());
        let slots: Vec<_> = tags
            .iter()
            .map(|w| queue.push_back(&mut waiters, Some(w.clone()), origin()))
            .collect();
        assert_eq!(order(&queue, &waiters), slots);
        for (tag, slot) in slots.iter().enumerate() {
            let Handoff { waker: woken, .. } =
                queue.grant_front(&mut waiters, trace::now()).unwrap();
            assert_eq!(tag_of(&log, woken.unwrap()), tag);
            assert!(waiters[slot.index()].is_granted());
        }
        assert!(queue.grant_front(&mut waiters, trace::now()).is_none());
        assert_eq!(order(&queue, &waiters), []);
    }

    #[test]
    fn remove_keeps_the_order_of_the_rest() {
        let (tags, log) = wakers(4);
        for victim in 0..4 {
            let mut waiters = Slab::new();
            let mut queue = WaitQueue::new(origin());
            let mut slots: Vec<_> = tags
                .iter()
                .map(|w| queue.push_back(&mut waiters, Some(w.clone()), origin()))
                .collect();
            let removed = queue.remove(&mut waiters, slots.remove(victim)).0.unwrap();
            assert_eq!(tag_of(&log, removed), victim);
            assert_eq!(order(&queue, &waiters), slots);
            assert_eq!(waiters.len(), 3);
            // Whichever end moved, a newcomer joins at the back and the
            // rest are served in order.
            slots.push(queue.push_back(&mut waiters, Some(tags[victim].clone()), origin()));
            assert_eq!(order(&queue, &waiters), slots);
            for slot in slots {
                assert!(!waiters[slot.index()].is_granted());
                assert!(queue.grant_front(&mut waiters, trace::now()).is_some());
                assert!(waiters[slot.index()].is_granted());
            }
            assert_eq!(order(&queue, &waiters), []);
        }
    }

    #[test]
    fn reused_slot_joins_at_the_back() {
        let (tags, _) = wakers(3);
        let mut waiters = Slab::new();
        let mut queue = WaitQueue::new(origin());
        let a = queue.push_back(&mut waiters, Some(tags[0].clone()), origin());
        let b = queue.push_back(&mut waiters, Some(tags[1].clone()), origin());
        queue.remove(&mut waiters, a);
        let c = queue.push_back(&mut waiters, Some(tags[2].clone()), origin());
        assert_eq!(c, a, "the slab reuses the freed index");
        assert_eq!(order(&queue, &waiters), [b, c]);
    }
}
