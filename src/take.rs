//! Taking several keys in hash order, one at a time: [`Progress`], the
//! state shared by a multi-key acquire future (`many.rs`) and a guard's
//! extend (`extend.rs`), and its part in the waits-for graph (`graph.rs`)
//! when it holds keys while it waits.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::task::{ready, Context, Poll, Waker};

use crate::error::Busy;
use crate::graph::Graph;
use crate::guard::HeldKeys;
use crate::manager::LockManager;
use crate::queue::Owner;
use crate::shards::{for_each_to_the_end, Claim, Shards, WaiterRef};
use crate::small::{Pairs, Small};
use crate::trace::Caller;

/// A request's keys, its claim on each, and where it is in its life.
pub(crate) struct Progress<K> {
    /// Its keys, each with its claim, sorted by hash without duplicates
    /// (nor, for an extend, keys its guard holds); moved into the guard at
    /// the end.
    keys: Pairs<K, Claim>,
    stage: Stage,
    /// Its record in the waits-for graph, once it has waited while holding
    /// keys (with the guard's, for an extend).
    pub(crate) owner: Option<Owner>,
    /// Who asked (zero-sized without the `diagnostics` feature).
    caller: Caller,
}

#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Taking its keys in order. The keys before `next` are held; those
    /// from `next` to `reached`, all of one hash, are each held or waited
    /// for; the rest are not reached yet. Until it reaches its first key
    /// (`reached` 0) it has not arrived: it is in no queue, and dropping it
    /// does nothing.
    Taking { next: usize, reached: usize },
    /// The guard was handed out, or the request refused or given up.
    Done,
}

/// Prints the stage and the keys, not the internal claims.
impl<K: fmt::Debug> fmt::Debug for Progress<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.keys.firsts();
        match self.stage {
            Stage::Taking { reached: 0, .. } => f.debug_tuple("Unpolled").field(&keys).finish(),
            Stage::Taking { next, .. } => f
                .debug_struct("Waiting")
                .field("keys", &keys)
                .field("held", &next)
                .finish(),
            Stage::Done => f.write_str("Done"),
        }
    }
}

impl<K: Hash + Eq> Progress<K> {
    /// A request of `manager` for `keys` by `caller`, not arrived yet: each
    /// key hashed, the keys sorted by hash and merged, less those `guard`
    /// holds already, for an extend, whose graph record it starts with.
    ///
    /// Inlined into the caller, with the hashing of a two-key request, as
    /// a single-key future's making is: the request is then written where
    /// it will live, where out of line it was built, then moved (see
    /// ARCHITECTURE.md, "What a multi-key request costs").
    #[inline(always)]
    pub(crate) fn new<S: BuildHasher>(
        manager: &LockManager<K, S>,
        keys: impl IntoIterator<Item = K>,
        guard: Option<&HeldKeys<K>>,
        caller: Caller,
    ) -> Self {
        let mut keys = sorted(keys.into_iter().collect(), manager);
        let mut owner = None;
        if let Some(held) = guard {
            let new = keys
                .into_iter()
                .filter(|(key, claim)| !held.contains(key, claim.hash));
            keys = new.collect();
            owner = held.owner;
        }
        let stage = Stage::Taking {
            next: 0,
            reached: 0,
        };
        Self {
            keys,
            stage,
            owner,
            caller,
        }
    }
}

impl<K> Progress<K> {
    /// Whether it has not arrived yet.
    pub(crate) fn is_unpolled(&self) -> bool {
        matches!(self.stage, Stage::Taking { reached: 0, .. })
    }

    /// Whether it is over: handed out, refused or given up.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.stage, Stage::Done)
    }

    /// Moves the keys out, leaving the request done.
    #[inline]
    pub(crate) fn finish(&mut self) -> HeldKeys<K> {
        self.stage = Stage::Done;
        HeldKeys {
            keys: std::mem::take(&mut self.keys),
            owner: self.owner.take(),
        }
    }

    /// Gives up its place and every key it took, leaving it done; runs
    /// when the future is dropped, or an extend is refused.
    #[inline]
    pub(crate) fn cancel<S>(&mut self, shards: &Shards<K, S>, graph: &Graph<K>) {
        if let Stage::Taking { reached, .. } = self.stage {
            self.give_back(reached, shards, graph);
        }
    }

    /// See `cancel`: out of line, so that dropping a request that is over
    /// costs a check.
    #[inline(never)]
    fn give_back<S>(&mut self, reached: usize, shards: &Shards<K, S>, graph: &Graph<K>) {
        self.stage = Stage::Done;
        if let Some(owner) = self.owner {
            // Before it leaves: no walk may read a wait that is gone.
            graph.stop_waiting(owner);
        }
        let (keys, claims) = self.keys.as_slices();
        for_each_to_the_end(
            keys.iter().zip(&claims[..reached]),
            |(key, claim)| match claim.slot {
                None => shards.release(key, claim.hash),
                Some(slot) => shards.cancel(
                    key,
                    WaiterRef {
                        hash: claim.hash,
                        slot,
                    },
                ),
            },
        );
    }
}

impl<K: Eq + Clone> Progress<K> {
    /// Takes the keys in hash order, as far as it can: `Ready` once every
    /// key is held, else `Pending` with a waiter queued on the first key
    /// (or keys of one hash) not handed over yet, woken through `waker`.
    /// Without a waker, it stops at the first key it must wait for, and
    /// the next poll gives that waiter one.
    #[inline(always)]
    pub(crate) fn advance<S>(&mut self, shards: &Shards<K, S>, waker: Option<&Waker>) -> Poll<()> {
        let Stage::Taking { next, reached } = &mut self.stage else {
            unreachable!("advanced after it was done");
        };
        let caller = self.caller;
        if let (0, Pairs::Two([k0, k1], [c0, c1])) = (*reached, &mut self.keys) {
            if c0.hash != c1.hash {
                // The most common request, two keys of hashes of their own,
                // on its first poll: without the loop (see ARCHITECTURE.md,
                // "What a multi-key request costs").
                if take_lone(shards, k0, c0, reached, waker, caller) {
                    return Poll::Pending;
                }
                *next = 1;
                if take_lone(shards, k1, c1, reached, waker, caller) {
                    return Poll::Pending;
                }
                *next = 2;
                return Poll::Ready(());
            }
        }
        let (keys, claims) = self.keys.as_mut_slices();
        // As long as `claims`: no bounds check on each key below.
        let keys = &keys[..claims.len()];
        // The keys it waits for: each handed over yet?
        while *next < *reached {
            let claim = &mut claims[*next];
            if let Some(slot) = claim.slot {
                let Some(waker) = waker else {
                    return Poll::Pending;
                };
                let waiter = WaiterRef {
                    hash: claim.hash,
                    slot,
                };
                if !shards.poll_waiter(waiter, waker) {
                    return Poll::Pending;
                }
                claim.slot = None;
            }
            *next += 1;
        }
        // Then the keys not reached yet, a key (or a run of one hash) at a
        // time. A waiter just queued carries the waker already: no need to
        // poll it again before it is woken.
        while let Some(&Claim { hash, .. }) = claims.get(*reached) {
            let start = *reached;
            let alone = claims[start..].get(1).map_or(true, |c| c.hash != hash);
            let queued = if alone {
                // The common case: a key of a hash of its own.
                take_lone(
                    shards,
                    &keys[start],
                    &mut claims[start],
                    reached,
                    waker,
                    caller,
                )
            } else {
                let same_hash = claims[start + 1..].iter().take_while(|c| c.hash == hash);
                let end = start + 1 + same_hash.count();
                shards.lock_or_enqueue_run(
                    &keys[start..end],
                    &mut claims[start..end],
                    waker,
                    caller,
                    reached,
                )
            };
            if queued {
                return Poll::Pending;
            }
            *next = *reached;
        }
        Poll::Ready(())
    }

    /// After `advance` returned `Pending`: records in the waits-for graph
    /// that the request waits while it holds keys (those of `guard` too,
    /// for an `extend`), if it must (an `extend` always, a multi-key
    /// request once nesting was seen), and looks for a cycle (see
    /// [`Graph::wait`]).
    #[inline]
    pub(crate) fn nest<S>(
        &mut self,
        shards: &Shards<K, S>,
        graph: &Graph<K>,
        guard: Option<&HeldKeys<K>>,
    ) {
        // A multi-key request before any nesting: a check, inline.
        if guard.is_some() || graph.nesting() {
            self.record_wait(shards, graph, guard);
        }
    }

    /// See `nest`.
    #[inline(never)]
    fn record_wait<S>(
        &mut self,
        shards: &Shards<K, S>,
        graph: &Graph<K>,
        guard: Option<&HeldKeys<K>>,
    ) {
        let Stage::Taking { next, reached } = self.stage else {
            return;
        };
        let extend = guard.is_some();
        if extend {
            graph.open(shards);
        }
        let (keys, claims) = self.keys.as_slices();
        let mut held = (keys.iter().zip(claims))
            .take(reached)
            .filter(|(_, claim)| claim.slot.is_none())
            .chain(guard.into_iter().flat_map(HeldKeys::iter))
            .map(|(key, claim)| (key, claim.hash))
            .peekable();
        if held.peek().is_none() && !extend {
            // Waiting for its first key: no one can wait for it.
            return;
        }
        let waiting = (keys.iter().zip(claims))
            .take(reached)
            .skip(next)
            .filter_map(|(key, claim)| {
                let slot = claim.slot?;
                Some((
                    key.clone(),
                    WaiterRef {
                        hash: claim.hash,
                        slot,
                    },
                ))
            })
            .collect();
        graph.wait(shards, &mut self.owner, extend, self.caller, held, waiting)
    }

    /// Arrives now, without a waker, unless it has already: takes the free
    /// keys in order and queues at the first one held (see `advance`),
    /// recording the wait in the graph (see `nest`).
    pub(crate) fn enqueue<S>(
        &mut self,
        shards: &Shards<K, S>,
        graph: &Graph<K>,
        guard: Option<&HeldKeys<K>>,
    ) {
        if self.is_unpolled() && self.advance(shards, None).is_pending() {
            self.nest(shards, graph, guard);
        }
    }

    /// Refuses with [`Busy`] (and counts the refusal) if a key has
    /// `max_waiters` waiters or more now, looking at one key at a time, in
    /// the caller's order.
    pub(crate) fn check_bound<S>(
        &self,
        shards: &Shards<K, S>,
        max_waiters: usize,
    ) -> Result<(), Busy> {
        for (key, claim) in self.keys.iter() {
            let shard = shards.of(claim.hash);
            let queue_len = shard.read(|state| state.queue_len(key, claim.hash));
            match queue_len.checked_sub(1) {
                Some(waiters) if waiters >= max_waiters => {
                    shard.count_busy();
                    return Err(Busy { waiters });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Takes every key if all are free now, all at once; else changes
    /// nothing.
    pub(crate) fn try_take<S>(&mut self, shards: &Shards<K, S>) -> Option<HeldKeys<K>> {
        let (keys, claims) = self.keys.as_mut_slices();
        if !shards.try_lock_all(keys, claims, self.caller) {
            return None;
        }
        self.stage = Stage::Taking {
            next: 0,
            reached: keys.len(),
        };
        // Only a key whose `Hash` and `Eq` disagree can have been queued:
        // the request, dropped, then gives it up.
        let all_held = claims.iter().all(|claim| claim.slot.is_none());
        all_held.then(|| self.finish())
    }

    /// Advances the request; yields the keys once every one is held, its
    /// wait, if any, then over in `graph` too. Inlined into the future's
    /// `poll`, with `advance`, as the single-key future's is:
    /// left to itself the compiler kept them out of line (see
    /// ARCHITECTURE.md, "What a multi-key request costs").
    #[inline(always)]
    #[track_caller]
    pub(crate) fn poll<S>(
        &mut self,
        shards: &Shards<K, S>,
        graph: &Graph<K>,
        cx: &mut Context<'_>,
    ) -> Poll<HeldKeys<K>> {
        if let Stage::Done = self.stage {
            panic!("lock-manager: acquire future polled after completion");
        }
        ready!(self.advance(shards, Some(cx.waker())));
        if let Some(owner) = self.owner {
            graph.stop_waiting(owner);
        }
        Poll::Ready(self.finish())
    }
}

/// Takes `key`, of a hash no other key of its request has, or queues for
/// it: whether it queued. Counts it `reached` either way.
#[inline(always)]
fn take_lone<K: Eq + Clone, S>(
    shards: &Shards<K, S>,
    key: &K,
    claim: &mut Claim,
    reached: &mut usize,
    waker: Option<&Waker>,
    caller: Caller,
) -> bool {
    let slot = shards.lock_or_enqueue(key, claim.hash, waker, caller);
    *reached += 1;
    // A key not reached has no slot: only a queued one needs the store.
    let queued = slot.is_some();
    if queued {
        claim.slot = slot;
    }
    queued
}

/// `keys`, each with its claim, sorted by hash and merged: all outside the
/// mutexes, before the request exists.
#[inline(always)]
fn sorted<K: Hash + Eq, S: BuildHasher>(
    keys: Small<K>,
    manager: &LockManager<K, S>,
) -> Pairs<K, Claim> {
    let Small::Two([a, b]) = keys else {
        return sorted_more(keys, manager);
    };
    // The most common request: inline, without the loop, and built in
    // place, its keys put in order by a select, not a branch: which of two
    // hashes is smaller is a coin toss the CPU would mispredict every
    // other request (see ARCHITECTURE.md, "What a multi-key request
    // costs"; an `Ordering` and a `match` compiled to a branch).
    let (ca, cb) = (claim(&a, manager), claim(&b, manager));
    if ca.hash == cb.hash {
        let mut keys = Pairs::Two([a, b], [ca, cb]);
        merge_duplicates(&mut keys);
        return keys;
    }
    let ((a, ca), (b, cb)) = if ca.hash < cb.hash {
        ((a, ca), (b, cb))
    } else {
        ((b, cb), (a, ca))
    };
    Pairs::Two([a, b], [ca, cb])
}

/// [`sorted`] of any number of keys but two: out of line, so that the
/// hashing of up to four keys is not inlined into every caller.
#[inline(never)]
fn sorted_more<K: Hash + Eq, S: BuildHasher>(
    keys: Small<K>,
    manager: &LockManager<K, S>,
) -> Pairs<K, Claim> {
    let mut keys = keys.paired(|key| claim(key, manager));
    sort_and_merge(&mut keys);
    keys
}

/// A key's claim before the request reaches it.
#[inline(always)]
fn claim<K: Hash, S: BuildHasher>(key: &K, manager: &LockManager<K, S>) -> Claim {
    Claim {
        hash: manager.hash(key),
        slot: None,
    }
}

/// Sorts keys by hash, moving each key's claim with it, and merges
/// duplicate keys.
fn sort_and_merge<K: Eq>(keys: &mut Pairs<K, Claim>) {
    if let Pairs::Heap(..) = keys {
        // Five keys or more, already on the heap.
        let mut pairs: Vec<(K, Claim)> = std::mem::take(keys).into_iter().collect();
        pairs.sort_unstable_by_key(|(_, claim)| claim.hash);
        *keys = pairs.into_iter().collect();
        return merge_duplicates(keys);
    }
    // An insertion sort, which moves both alike; then whether two keys
    // share a hash, in the same pass.
    let (k, c) = keys.as_mut_slices();
    let mut shared_hash = false;
    for i in 1..k.len() {
        let mut j = i;
        while j > 0 && c[j - 1].hash > c[j].hash {
            k.swap(j - 1, j);
            c.swap(j - 1, j);
            j -= 1;
        }
        shared_hash |= j > 0 && c[j - 1].hash == c[j].hash;
    }
    if shared_hash {
        merge_duplicates(keys);
    }
}

/// Drops the later copies of equal keys, among keys sorted by hash.
fn merge_duplicates<K: Eq>(keys: &mut Pairs<K, Claim>) {
    // Equal keys have equal hashes, so a duplicate sits in its hash's run.
    let (k, c) = keys.as_slices();
    let duplicate = |i: usize| {
        (0..i)
            .rev()
            .take_while(|&j| c[j].hash == c[i].hash)
            .any(|j| k[j] == k[i])
    };
    if (1..k.len()).any(duplicate) {
        let keep: Vec<bool> = (0..k.len()).map(|i| !duplicate(i)).collect();
        let pairs = std::mem::take(keys).into_iter().zip(keep);
        *keys = pairs
            .filter_map(|(pair, keep)| keep.then_some(pair))
            .collect();
    }
}
