//! Per-key FIFO wait queues, linked through the indices of one shared slab.
//!
//! This is a plain data structure: no locking and no waking happen here. The
//! caller holds the manager's mutex and decides what to do with the wakers
//! handed back, once that mutex is released.

use std::num::NonZeroU32;
use std::task::Waker;

use slab::Slab;

/// The slab index of a waiter, stored plus one so that `Option<Slot>` fits
/// in four bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot(NonZeroU32);

impl Slot {
    #[track_caller]
    fn new(index: usize) -> Self {
        u32::try_from(index)
            .ok()
            .and_then(|index| index.checked_add(1))
            .and_then(NonZeroU32::new)
            .map(Slot)
            .expect("lock-manager supports at most u32::MAX - 1 waiters at once")
    }

    pub(crate) fn index(self) -> usize {
        // Lossless: `usize` is at least 32 bits on every target std supports.
        (self.0.get() - 1) as usize
    }
}

/// A waiter's entry in the slab.
///
/// May only be read or written while the manager's mutex is held.
#[derive(Debug)]
pub(crate) enum Waiter {
    /// Linked into its key's queue, to be woken through `waker` when it
    /// reaches the front and the lock is handed to it.
    Queued {
        waker: Waker,
        prev: Option<Slot>,
        next: Option<Slot>,
    },
    /// Unlinked from its queue: the key is held on this waiter's behalf
    /// until its future is polled (and takes the guard) or dropped (and
    /// hands the key on).
    Granted,
}

/// The waiters queued on one held key, oldest first.
///
/// The holder of the key is not in the queue: a key's queue exists exactly
/// as long as the key is held.
#[derive(Debug, Default)]
pub(crate) struct WaitQueue {
    head: Option<Slot>,
    tail: Option<Slot>,
    len: u32,
}

impl WaitQueue {
    /// The number of waiters, the holder not counted.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// Appends a waiter woken through `waker`, in O(1).
    ///
    /// # Panics
    ///
    /// Panics if the slab would need an index past `u32::MAX - 1`.
    #[track_caller]
    pub(crate) fn push_back(&mut self, waiters: &mut Slab<Waiter>, waker: Waker) -> Slot {
        let slot = Slot::new(waiters.vacant_key());
        waiters.insert(Waiter::Queued {
            waker,
            prev: self.tail,
            next: None,
        });
        match self.tail {
            Some(tail) => set_next(waiters, tail, Some(slot)),
            None => self.head = Some(slot),
        }
        self.tail = Some(slot);
        self.len += 1;
        slot
    }

    /// Hands the lock to the oldest waiter, in O(1): unlinks it, marks it
    /// [`Waiter::Granted`] and returns the waker to wake once unlocked.
    pub(crate) fn grant_front(&mut self, waiters: &mut Slab<Waiter>) -> Option<Waker> {
        let slot = self.head?;
        let (waker, _, next) = take_queued(waiters, slot, Waiter::Granted);
        self.head = next;
        match next {
            Some(next) => set_prev(waiters, next, None),
            None => self.tail = None,
        }
        self.len -= 1;
        Some(waker)
    }

    /// Unlinks the queued waiter at `slot` and frees its slab entry, in O(1),
    /// returning its waker so that it can be dropped once unlocked.
    pub(crate) fn remove(&mut self, waiters: &mut Slab<Waiter>, slot: Slot) -> Waker {
        let Waiter::Queued { waker, prev, next } = waiters.remove(slot.index()) else {
            unreachable!("only a queued waiter is linked into a queue");
        };
        match prev {
            Some(prev) => set_next(waiters, prev, next),
            None => self.head = next,
        }
        match next {
            Some(next) => set_prev(waiters, next, prev),
            None => self.tail = prev,
        }
        self.len -= 1;
        waker
    }
}

/// Replaces the queued waiter at `slot` with `with`, returning its parts.
fn take_queued(
    waiters: &mut Slab<Waiter>,
    slot: Slot,
    with: Waiter,
) -> (Waker, Option<Slot>, Option<Slot>) {
    match std::mem::replace(&mut waiters[slot.index()], with) {
        Waiter::Queued { waker, prev, next } => (waker, prev, next),
        Waiter::Granted => unreachable!("a granted waiter is not linked into a queue"),
    }
}

fn links(waiters: &mut Slab<Waiter>, slot: Slot) -> (&mut Option<Slot>, &mut Option<Slot>) {
    match &mut waiters[slot.index()] {
        Waiter::Queued { prev, next, .. } => (prev, next),
        Waiter::Granted => unreachable!("a granted waiter is not linked into a queue"),
    }
}

fn set_prev(waiters: &mut Slab<Waiter>, slot: Slot, to: Option<Slot>) {
    *links(waiters, slot).0 = to;
}

fn set_next(waiters: &mut Slab<Waiter>, slot: Slot, to: Option<Slot>) {
    *links(waiters, slot).1 = to;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Noop;

    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    /// Distinct wakers; a waker's index in the list identifies its waiter.
    fn wakers(n: usize) -> Vec<Waker> {
        (0..n).map(|_| Waker::from(Arc::new(Noop))).collect()
    }

    fn tag_of(wakers: &[Waker], w: &Waker) -> usize {
        wakers.iter().position(|x| x.will_wake(w)).unwrap()
    }

    /// Walks the queue front to back, checking the back links on the way.
    fn order(queue: &WaitQueue, waiters: &Slab<Waiter>) -> Vec<Slot> {
        let mut out = Vec::new();
        let mut prev = None;
        let mut cursor = queue.head;
        while let Some(slot) = cursor {
            let Waiter::Queued {
                prev: back, next, ..
            } = &waiters[slot.index()]
            else {
                panic!("granted waiter in queue");
            };
            assert_eq!(*back, prev, "broken back link at {slot:?}");
            out.push(slot);
            prev = Some(slot);
            cursor = *next;
        }
        assert_eq!(queue.tail, prev, "tail is not the last waiter");
        assert_eq!(queue.len(), out.len());
        out
    }

    #[test]
    fn slot_round_trips_and_fits_four_bytes() {
        assert_eq!(Slot::new(0).index(), 0);
        assert_eq!(Slot::new(41).index(), 41);
        assert_eq!(std::mem::size_of::<Option<Slot>>(), 4);
    }

    #[test]
    #[should_panic(expected = "at most u32::MAX - 1 waiters")]
    fn slot_past_u32_panics_clearly() {
        Slot::new(u32::MAX as usize);
    }

    #[test]
    fn grants_in_push_order() {
        let tags = wakers(3);
        let mut waiters = Slab::new();
        let mut queue = WaitQueue::default();
        let slots: Vec<_> = tags
            .iter()
            .map(|w| queue.push_back(&mut waiters, w.clone()))
            .collect();
        assert_eq!(order(&queue, &waiters), slots);
        for (tag, slot) in slots.iter().enumerate() {
            let woken = queue.grant_front(&mut waiters).unwrap();
            assert_eq!(tag_of(&tags, &woken), tag);
            assert!(matches!(waiters[slot.index()], Waiter::Granted));
        }
        assert!(queue.grant_front(&mut waiters).is_none());
        assert_eq!(order(&queue, &waiters), []);
    }

    #[test]
    fn remove_keeps_the_order_of_the_rest() {
        let tags = wakers(4);
        for victim in 0..4 {
            let mut waiters = Slab::new();
            let mut queue = WaitQueue::default();
            let mut slots: Vec<_> = tags
                .iter()
                .map(|w| queue.push_back(&mut waiters, w.clone()))
                .collect();
            let removed = queue.remove(&mut waiters, slots.remove(victim));
            assert_eq!(tag_of(&tags, &removed), victim);
            assert_eq!(order(&queue, &waiters), slots);
            assert_eq!(waiters.len(), 3);
        }
    }

    #[test]
    fn reused_slot_joins_at_the_back() {
        let tags = wakers(3);
        let mut waiters = Slab::new();
        let mut queue = WaitQueue::default();
        let a = queue.push_back(&mut waiters, tags[0].clone());
        let b = queue.push_back(&mut waiters, tags[1].clone());
        queue.remove(&mut waiters, a);
        let c = queue.push_back(&mut waiters, tags[2].clone());
        assert_eq!(c, a, "the slab reuses the freed index");
        assert_eq!(order(&queue, &waiters), [b, c]);
    }
}
