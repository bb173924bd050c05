//! The waits-for graph of the requests that hold keys while they wait for
//! more: a multi-key guard growing with `extend`, and, once any `extend`
//! has had to wait, a multi-key request past its first key. Each such
//! request, an **owner**, waits for the owners holding the keys it waits
//! for; a wait that would close a cycle is refused at once.
//!
//! Plain requests pay nothing here: an owner marks the keys it holds in
//! their map entries (four bytes the entry had spare) each time it starts
//! to wait, and a release or hand-off clears the mark. Until the first
//! `extend` waits, multi-key requests do not register at all (one atomic
//! load on their waiting path): multi-key requests alone take keys in one
//! order and cannot form a cycle. The first `extend` to wait wakes every
//! waiter, so that each multi-key request already waiting while holding
//! keys polls again and registers.
//!
//! Lock order: this graph's mutex, then a shard's; never the other way.

use std::panic::Location;
use std::sync::atomic::Ordering;
use std::task::Waker;

use slab::Slab;

use crate::error::Deadlock;
use crate::hashed::KeyHash;
use crate::queue::Owner;
use crate::shards::{Shards, WaiterRef};
use crate::sync::{AtomicBool, Mutex};
use crate::trace::Caller;

/// The registered owners, behind one mutex: only owners take it.
#[derive(Debug)]
pub(crate) struct Graph<K> {
    /// Set for good when the first `extend` waits: from then on,
    /// multi-key requests register too.
    nesting: AtomicBool,
    owners: Mutex<Owners<K>>,
}

#[derive(Debug)]
struct Owners<K> {
    records: Slab<Record<K>>,
    /// Waits begun so far: orders them, so that the youngest is known.
    waits: u64,
    /// Refusals delivered to their extends, for `Stats`.
    refused: u64,
}

#[derive(Debug)]
struct Record<K> {
    /// An `extend` (which may be refused) or a multi-key request (which
    /// may not).
    extend: bool,
    /// The keys it waits for, each with its waiter: one, or several of
    /// one hash. Empty while it does not wait.
    waiting: Vec<(K, WaiterRef)>,
    /// When its current wait began, in `Owners::waits`.
    since: u64,
    /// Who asked for it (zero-sized without the `diagnostics` feature).
    caller: Caller,
    /// The cycle it was refused for, by a wait it could not see.
    refused: Option<Refusal<K>>,
}

/// A refused wait's cycle: the key each owner on it waits for, and with
/// `diagnostics`, the call site of each owner's request.
#[derive(Debug)]
pub(crate) struct Refusal<K> {
    keys: Vec<K>,
    callers: Vec<&'static Location<'static>>,
}

impl<K> From<Refusal<K>> for Deadlock<K> {
    fn from(Refusal { keys, callers }: Refusal<K>) -> Self {
        Deadlock { keys, callers }
    }
}

impl<K> Graph<K> {
    pub(crate) fn new() -> Self {
        Self {
            nesting: AtomicBool::new(false),
            owners: Mutex::new(Owners {
                records: Slab::new(),
                waits: 0,
                refused: 0,
            }),
        }
    }

    /// Whether multi-key requests must register their waits.
    pub(crate) fn nesting(&self) -> bool {
        self.nesting.load(Ordering::Acquire)
    }

    /// The waits refused as deadlocks so far.
    pub(crate) fn refused(&self) -> u64 {
        self.owners.lock().refused
    }

    /// The cycle `owner` was refused for, if another request's wait chose
    /// it as the victim; it then waits no more.
    pub(crate) fn take_refusal(&self, owner: Owner) -> Option<Refusal<K>> {
        let mut owners = self.owners.lock();
        let refusal = owners.records[owner.index()].refused.take()?;
        // Counted as it reaches its extend, which may end first otherwise.
        owners.refused += 1;
        Some(refusal)
    }

    /// The first key each waiting owner waits for, for the reports: none,
    /// without taking the mutex, on a manager where nothing ever nested.
    pub(crate) fn waits(&self) -> Vec<(Owner, K)>
    where
        K: Clone,
    {
        if !self.nesting() {
            return Vec::new();
        }
        let owners = self.owners.lock();
        let records = owners.records.iter();
        let firsts = records.filter_map(|(index, record)| Some((index, record.waiting.first()?)));
        firsts
            .map(|(index, (key, _))| (Owner::new(index), key.clone()))
            .collect()
    }

    /// Ends `owner`'s wait, and any refusal of it: to call before it
    /// leaves its queue or gives back keys, so that no walk reads a wait
    /// that is gone, and no later wait finds this one's refusal.
    pub(crate) fn stop_waiting(&self, owner: Owner) {
        let mut owners = self.owners.lock();
        let record = &mut owners.records[owner.index()];
        record.waiting.clear();
        record.refused = None;
    }

    /// The number of owners registered.
    #[cfg(test)]
    pub(crate) fn owners(&self) -> usize {
        self.owners.lock().records.len()
    }

    /// Forgets `owner`, once no key is marked with it any more.
    pub(crate) fn forget(&self, owner: Owner) {
        self.owners.lock().records.remove(owner.index());
    }
}

impl<K: Eq + Clone> Graph<K> {
    /// Lets multi-key requests know that requests now nest, the first
    /// time: wakes every waiter, so that a multi-key request already
    /// waiting while it holds keys polls again and registers. (A request
    /// that queued before seeing the flag queued before this pass locked
    /// its shard, so the pass finds it.)
    pub(crate) fn open<S>(&self, shards: &Shards<K, S>) {
        if !self.nesting() && !self.nesting.swap(true, Ordering::AcqRel) {
            for shard in shards.iter() {
                let wakers: Vec<Waker> = shard.read(|state| state.wakers());
                wakers.into_iter().for_each(Waker::wake);
            }
        }
    }

    /// Records that `owner` (registered now if `None`), an `extend` or a
    /// multi-key request, holds `held` and waits for `waiting`, and looks
    /// for a cycle through it.
    ///
    /// A cycle found is refused at once: an `extend` is refused itself; a
    /// multi-key request, which cannot fail, refuses the youngest `extend`
    /// in the cycle instead, which is woken. Either way the refused one
    /// waits no more, and finds its refusal with [`Graph::take_refusal`]
    /// (before its next wait), then leaves its queue.
    pub(crate) fn wait<'k, S>(
        &self,
        shards: &Shards<K, S>,
        owner: &mut Option<Owner>,
        extend: bool,
        caller: Caller,
        held: impl Iterator<Item = (&'k K, KeyHash)>,
        waiting: Vec<(K, WaiterRef)>,
    ) where
        K: 'k,
    {
        let mut owners = self.owners.lock();
        let id = *owner.get_or_insert_with(|| {
            Owner::new(owners.records.insert(Record {
                extend,
                waiting: Vec::new(),
                since: 0,
                caller,
                refused: None,
            }))
        });
        if owners.records[id.index()].refused.is_some() {
            // Refused while it polled: it waits no more.
            return;
        }
        for (key, hash) in held {
            shards.of(hash).mark(key, hash, id);
        }
        let record = &owners.records[id.index()];
        let (old, new) = (record.waiting.iter(), waiting.iter());
        // A poll while it waits on the same waiters is the same wait.
        if old
            .map(|(_, waiter)| waiter)
            .ne(new.map(|(_, waiter)| waiter))
        {
            owners.waits += 1;
            owners.records[id.index()].since = owners.waits;
        }
        let record = &mut owners.records[id.index()];
        record.extend = extend;
        record.caller = caller;
        record.waiting = waiting;
        let Some(cycle) = owners.cycle(shards, id) else {
            return;
        };
        let keys = cycle.iter().map(|(_, key)| key.clone()).collect();
        let callers = (cycle.iter())
            .filter_map(|(owner, _)| owners.records[owner.index()].caller.location())
            .collect();
        // There is always an `extend` in the cycle: multi-key requests
        // alone take keys in one order.
        let victim = if extend {
            id
        } else {
            (cycle.iter().map(|&(owner, _)| owner))
                .filter(|owner| owners.records[owner.index()].extend)
                .max_by_key(|owner| owners.records[owner.index()].since)
                .expect("lock-manager: a cycle of multi-key requests alone")
        };
        let record = &mut owners.records[victim.index()];
        let wakers: Vec<Waker> = record
            .waiting
            .drain(..)
            .filter_map(|(_, waiter)| {
                shards
                    .of(waiter.hash)
                    .read(|state| state.waker_of(waiter.slot))
            })
            .collect();
        record.refused = Some(Refusal { keys, callers });
        drop(owners);
        if !extend {
            wakers.into_iter().for_each(Waker::wake);
        }
    }
}

impl<K: Eq + Clone> Owners<K> {
    /// A cycle of waits through `from`, as each owner on it with the key it
    /// waits for; `None` if there is none.
    fn cycle<S>(&self, shards: &Shards<K, S>, from: Owner) -> Option<Vec<(Owner, K)>> {
        let mut path = Vec::new();
        let mut seen = vec![from];
        self.walk(shards, from, from, &mut path, &mut seen)
            .then_some(path)
    }

    /// Depth first from `node`, which waits: `true` if a chain of waits
    /// leads back to `from`, left in `path`.
    fn walk<S>(
        &self,
        shards: &Shards<K, S>,
        from: Owner,
        node: Owner,
        path: &mut Vec<(Owner, K)>,
        seen: &mut Vec<Owner>,
    ) -> bool {
        for (key, waiter) in &self.records[node.index()].waiting {
            // The key's holder, if an owner: the mark is cleared when the
            // key passes on, so a wait already granted leads nowhere.
            let hash = waiter.hash;
            let Some(holder) = shards.of(hash).read(|state| state.owner_of(key, hash)) else {
                continue;
            };
            path.push((node, key.clone()));
            if holder == from {
                return true;
            }
            if !seen.contains(&holder) {
                seen.push(holder);
                if self.walk(shards, from, holder, path, seen) {
                    return true;
                }
            }
            path.pop();
        }
        false
    }
}
