//! Model-based property test: random sequences of operations on a few keys,
//! driven by hand-polled futures, each step compared with a reference
//! model of per-key FIFO queues (the holder at the front).
//!
//! Single-key futures (`acquire`, `with_lock`), multi-key ones
//! (`acquire_many`, `with_locks`, over random keys with duplicates) and
//! the `try_acquire` and `try_acquire_many` guards share the queues. A
//! future arrives at its first poll, or earlier at `enqueue` or
//! `enqueue_bounded` (refused, changing nothing, when a key has too many
//! waiters; a no-op on a future placed already); a `with_lock(s)` future
//! arrives when called. A multi-key request is in the queue of each of its
//! distinct keys from its arrival, holds a key while at the front of its
//! queue, and is ready exactly when it is at the front of all of them.
//! Every guard is kept as a `MultiLockGuard` (a single-key one converted
//! with `into`).
//!
//! After every step the test checks, for every key, `is_locked` and
//! `queue_len`; `locked_count` and the number of waiters the manager's
//! `Debug` reports; `stats()`, all but its cancellations (and with
//! `diagnostics`, a wait measured per hand-off and a hold per release); the wake count of every waker ever handed to the
//! manager (only the new head of a queue is woken, once, through the waker
//! of its latest poll); the number of clones of each waker the manager
//! still holds (one per queued future whose latest poll used it); which
//! `with_lock` and `with_locks` bodies run; and, on every poll, whether the
//! future is ready: only the head of every queue it is in, and only once
//! polled. At the end it drops whatever is left and checks that the
//! manager is empty.
//!
//! A multi-key request keeps its waker on one of its queued keys only, in
//! an order of its own, so it may be handed a key without a wake-up: for
//! the tasks that poll such requests the wake and clone counts are checked
//! within bounds, and every request holding all its keys must have been
//! woken since its latest poll (its task could sleep forever otherwise).
//!
//! `PROPTEST_CASES` overrides the number of cases (5,000 by default).
use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use lock_manager::{Acquire, AcquireMany, LockManager, MultiLockGuard, Stats};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};

const KEYS: u8 = 3;
const MAX_OPS: usize = 60;
/// The most keys, duplicates included, passed to one `acquire_many`.
const MAX_MANY: usize = 4;

/// A set of distinct keys, one bit per key.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct KeySet(u8);

impl KeySet {
    fn of(keys: &[u8]) -> Self {
        Self(keys.iter().fold(0, |set, &key| set | 1 << key))
    }

    fn iter(self) -> impl Iterator<Item = u8> {
        (0..KEYS).filter(move |&key| self.0 & 1 << key != 0)
    }

    fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn minus(self, other: KeySet) -> KeySet {
        KeySet(self.0 & !other.0)
    }

    fn and(self, other: KeySet) -> KeySet {
        KeySet(self.0 & other.0)
    }

    fn filter(self, keep: impl Fn(u8) -> bool) -> KeySet {
        KeySet(
            self.iter()
                .filter(|&key| keep(key))
                .fold(0, |set, key| set | 1 << key),
        )
    }

    /// The key of a single-key future.
    fn only(self) -> u8 {
        assert_eq!(self.len(), 1, "model: not a single key");
        self.0.trailing_zeros() as u8
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// The keys passed to one `acquire_many`, duplicates and order kept; `Copy`
/// so that `Op` stays `Copy`.
#[derive(Clone, Copy)]
struct KeyList {
    len: usize,
    keys: [u8; MAX_MANY],
}

impl KeyList {
    fn new(list: Vec<u8>) -> Self {
        let mut keys = [0; MAX_MANY];
        keys[..list.len()].copy_from_slice(&list);
        Self {
            len: list.len(),
            keys,
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.keys[..self.len]
    }
}

impl fmt::Debug for KeyList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt(f)
    }
}

/// Which waker a poll uses.
#[derive(Clone, Copy, Debug)]
enum WakerChoice {
    /// The one the future was last polled with (a new one if never polled).
    Same,
    /// A new task's: the future moved to another task.
    New,
    /// An existing task's (picked modulo the number of tasks), possibly one
    /// that other futures use as well.
    Shared(usize),
}

/// One step of a test case. Futures and guards are picked by position,
/// modulo the number alive; a step that finds none does nothing.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// Creates an `acquire` future, or a `with_lock` one whose body awaits
    /// forever; polls it at once with a new task if `poll`.
    Create {
        key: u8,
        with_lock: bool,
        poll: bool,
    },
    /// Creates an `acquire_many` future over `keys`, or a `with_locks` one
    /// whose body awaits forever; polls it at once with a new task if
    /// `poll`.
    CreateMany {
        keys: KeyList,
        with_locks: bool,
        poll: bool,
    },
    /// Polls a live future.
    Poll { future: usize, waker: WakerChoice },
    /// Places a live `acquire` or `acquire_many` future in its queues now:
    /// `enqueue`, or `enqueue_bounded(bound)`. Does nothing to a
    /// `with_lock(s)` future, which has no such method.
    Place { future: usize, bound: Option<usize> },
    /// Drops a live future: unpolled, queued, granted but not yet polled,
    /// holding some of its keys, or a `with_lock(s)` whose body runs.
    DropFuture { future: usize },
    /// Drops a guard.
    DropGuard { guard: usize },
    /// `try_acquire`; the guard, if any, joins the others.
    TryAcquire { key: u8 },
    /// `try_acquire_many` over `keys`: all or nothing; the guard, if any,
    /// joins the others.
    TryMany { keys: KeyList },
}

fn op() -> impl Strategy<Value = Op> {
    let waker = prop_oneof![
        3 => Just(WakerChoice::Same),
        1 => Just(WakerChoice::New),
        1 => (0..8usize).prop_map(WakerChoice::Shared),
    ];
    let keys = || {
        prop_oneof![
            1 => Just(Vec::new()),
            6 => prop::collection::vec(0..KEYS, 1..=MAX_MANY),
        ]
        .prop_map(KeyList::new)
    };
    prop_oneof![
        4 => (0..KEYS, prop::bool::weighted(0.3), prop::bool::weighted(0.8))
            .prop_map(|(key, with_lock, poll)| Op::Create { key, with_lock, poll }),
        3 => (keys(), prop::bool::weighted(0.3), prop::bool::weighted(0.8))
            .prop_map(|(keys, with_locks, poll)| Op::CreateMany { keys, with_locks, poll }),
        4 => (0..16usize, waker).prop_map(|(future, waker)| Op::Poll { future, waker }),
        2 => (0..16usize, prop::option::weighted(0.5, 0..3usize))
            .prop_map(|(future, bound)| Op::Place { future, bound }),
        2 => (0..16usize).prop_map(|future| Op::DropFuture { future }),
        2 => (0..16usize).prop_map(|guard| Op::DropGuard { guard }),
        1 => (0..KEYS).prop_map(|key| Op::TryAcquire { key }),
        1 => keys().prop_map(|keys| Op::TryMany { keys }),
    ]
}

/// A waker that counts its wake-ups.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A task polled by hand: its counter and its waker.
struct Task {
    counter: Arc<Counter>,
    waker: Waker,
}

impl Task {
    fn new() -> Self {
        let counter = Arc::new(Counter::default());
        let waker = Waker::from(counter.clone());
        Self { counter, waker }
    }

    fn wakes(&self) -> usize {
        self.counter.0.load(SeqCst)
    }

    /// Clones of the waker held by the manager: the task itself holds the
    /// counter and one waker.
    fn clones_elsewhere(&self) -> usize {
        Arc::strong_count(&self.counter) - 2
    }
}

type Locks = LockManager<u8>;

enum Kind<'a> {
    Acquire(Acquire<'a, u8>),
    Many(AcquireMany<'a, u8>),
    /// `with_lock` or `with_locks`.
    Body {
        future: Pin<Box<dyn Future<Output = ()> + 'a>>,
        started: Rc<Cell<bool>>,
        /// Set when the running body is dropped: the `queue_len` of each of
        /// its keys at that moment.
        body_dropped: Rc<Cell<Option<Vec<usize>>>>,
    },
}

/// Lives in a `with_lock(s)` body; records the `queue_len` of its keys when
/// the body's future is dropped, to check that it is dropped before any of
/// them is released.
struct BodyProbe<'a> {
    locks: &'a Locks,
    keys: KeySet,
    out: Rc<Cell<Option<Vec<usize>>>>,
}

impl Drop for BodyProbe<'_> {
    fn drop(&mut self) {
        let lens = self.keys.iter().map(|key| self.locks.queue_len(&key));
        self.out.set(Some(lens.collect()));
    }
}

/// A `with_lock(s)` body on `keys`: records that it started, then awaits
/// forever. The probe is made inside, so that it exists only once the body
/// runs.
async fn body(
    locks: &Locks,
    keys: KeySet,
    started: Rc<Cell<bool>>,
    out: Rc<Cell<Option<Vec<usize>>>>,
) {
    let _probe = BodyProbe { locks, keys, out };
    started.set(true);
    std::future::pending::<()>().await;
}

/// Where a live future stands in the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Never polled nor placed: in no queue.
    Unpolled,
    /// Single-key: placed (`enqueue`, or a `with_lock` when called) behind
    /// the head, never polled since: the manager has no waker for it.
    Queued,
    /// Single-key: queued behind the head; the manager stores the waker of
    /// `task`.
    Waiting { task: usize },
    /// Single-key: at the head of its queue, handed the key, not polled
    /// since.
    Granted,
    /// Multi-key: in the queue of each of its keys, and last polled, with
    /// `task`'s waker, while it did not hold `unheld`; `wakes` was `task`'s
    /// wake count then. `queued`: the keys it found held when placed (its
    /// waiters in the manager's slab are among them).
    Many {
        task: usize,
        unheld: KeySet,
        queued: KeySet,
        wakes: usize,
    },
    /// Multi-key: placed in the queue of each of its keys (`enqueue`, or a
    /// `with_locks` when called), never polled since: the manager has no
    /// waker for it. `queued` as for `Many`.
    Placed { queued: KeySet },
    /// A `with_lock(s)` holding all its keys, whose body runs (and never
    /// finishes).
    Running,
}

struct LiveFuture<'a> {
    id: usize,
    /// Its distinct keys: one for `acquire` and `with_lock`.
    keys: KeySet,
    /// `acquire_many` or `with_locks`.
    many: bool,
    kind: Kind<'a>,
    /// The task of its latest poll.
    task: Option<usize>,
    state: State,
}

/// A live guard: a single-key one is kept converted into a multi-key one,
/// which holds its key as it did.
struct LiveGuard<'a> {
    id: usize,
    guard: MultiLockGuard<'a, u8>,
}

/// The wake-ups a multi-key request in `state` added to its task since its
/// latest poll, at least and at most: one once it holds all its keys (the
/// key it waited for was handed over, which wakes it), none while it holds
/// none of the keys it lacked at that poll, and either in between (it
/// waits for one of them, in an order of its own). `None` if it is not
/// waiting.
fn many_wakes(state: State, held: KeySet) -> Option<(usize, usize, usize)> {
    let State::Many { task, unheld, .. } = state else {
        return None;
    };
    let granted = unheld.and(held);
    Some((
        task,
        usize::from(granted == unheld),
        usize::from(!granted.is_empty()),
    ))
}

/// Counts an id joining `queue`, as `Stats` does.
fn count_join(counts: &mut Stats, queue: &VecDeque<usize>) {
    if queue.is_empty() {
        counts.acquisitions += 1;
    } else {
        counts.contended += 1;
    }
}

/// The futures waiting with one task's waker: single-key ones, and
/// multi-key ones with the bounds of their wake-ups (see [`many_wakes`]).
#[derive(Default)]
struct Waits {
    singles: usize,
    many: usize,
    least: usize,
    most: usize,
}

/// The manager under test, everything alive that uses it, and the model.
struct Harness<'a> {
    locks: &'a Locks,
    tasks: Vec<Task>,
    futures: Vec<LiveFuture<'a>>,
    guards: Vec<LiveGuard<'a>>,
    /// The model: per key, the ids of the holder (front) and the waiters.
    queues: [VecDeque<usize>; KEYS as usize],
    /// What the model counts of `Stats`: a key acquired each time an id
    /// reaches the front of its queue, released each time it leaves it,
    /// contended each time an id joins a queue behind others.
    counts: Stats,
    /// Expected wake count of each task from single-key futures.
    wakes: Vec<usize>,
    /// Wake-ups of each task from the earlier waits of multi-key requests,
    /// at least and at most: in doubt only where two of them waited with
    /// the task at once, each maybe woken.
    settled: Vec<(usize, usize)>,
    next_id: usize,
}

type Check = Result<(), TestCaseError>;

impl<'a> Harness<'a> {
    fn new(locks: &'a Locks) -> Self {
        Self {
            locks,
            tasks: Vec::new(),
            futures: Vec::new(),
            guards: Vec::new(),
            queues: Default::default(),
            counts: Stats::default(),
            wakes: Vec::new(),
            settled: Vec::new(),
            next_id: 0,
        }
    }

    fn new_task(&mut self) -> usize {
        self.tasks.push(Task::new());
        self.wakes.push(0);
        self.settled.push((0, 0));
        self.tasks.len() - 1
    }

    fn next_id(&mut self) -> usize {
        self.next_id += 1;
        self.next_id
    }

    fn queue(&mut self, key: u8) -> &mut VecDeque<usize> {
        &mut self.queues[usize::from(key)]
    }

    /// `id` joins the queue of `key`: its holder if it is free.
    fn join(&mut self, key: u8, id: usize) {
        let queue = &mut self.queues[usize::from(key)];
        count_join(&mut self.counts, queue);
        queue.push_back(id);
    }

    /// The keys among `keys` whose queue `id` heads.
    fn held(&self, id: usize, keys: KeySet) -> KeySet {
        keys.filter(|key| self.queues[usize::from(key)].front() == Some(&id))
    }

    fn apply(&mut self, op: Op) -> Check {
        match op {
            Op::Create {
                key,
                with_lock,
                poll,
            } => {
                self.create(&[key], false, with_lock);
                if poll {
                    let task = self.new_task();
                    self.poll(self.futures.len() - 1, task)?;
                }
            }
            Op::CreateMany {
                keys,
                with_locks,
                poll,
            } => {
                self.create(keys.as_slice(), true, with_locks);
                if poll {
                    let task = self.new_task();
                    self.poll(self.futures.len() - 1, task)?;
                }
            }
            Op::Poll { future, waker } => {
                if self.futures.is_empty() {
                    return Ok(());
                }
                let index = future % self.futures.len();
                let task = match (waker, self.futures[index].task) {
                    (WakerChoice::Same, Some(task)) => task,
                    (WakerChoice::Same | WakerChoice::New, _) => self.new_task(),
                    (WakerChoice::Shared(_), None) if self.tasks.is_empty() => self.new_task(),
                    (WakerChoice::Shared(pick), _) => pick % self.tasks.len(),
                };
                self.poll(index, task)?;
            }
            Op::Place { future, bound } => {
                if !self.futures.is_empty() {
                    self.place(future % self.futures.len(), bound)?;
                }
            }
            Op::DropFuture { future } => {
                if !self.futures.is_empty() {
                    self.drop_future(future % self.futures.len())?;
                }
            }
            Op::DropGuard { guard } => {
                if !self.guards.is_empty() {
                    self.drop_guard(guard % self.guards.len())?;
                }
            }
            Op::TryAcquire { key } => self.try_acquire(key)?,
            Op::TryMany { keys } => self.try_many(keys.as_slice())?,
        }
        self.check()
    }

    /// Creates an `acquire` (`many` false, one key) or `acquire_many`
    /// future over `list`, or the `with_lock` or `with_locks` future of a
    /// body that awaits forever.
    fn create(&mut self, list: &[u8], many: bool, with_body: bool) {
        let id = self.next_id();
        let keys = KeySet::of(list);
        let kind = if with_body {
            let started = Rc::new(Cell::new(false));
            let body_dropped = Rc::new(Cell::new(None));
            let (flag, locks, out) = (started.clone(), self.locks, body_dropped.clone());
            let body = move || body(locks, keys, flag, out);
            let future: Pin<Box<dyn Future<Output = ()> + 'a>> = if many {
                Box::pin(self.locks.with_locks(list.to_vec(), body))
            } else {
                Box::pin(self.locks.with_lock(list[0], body))
            };
            Kind::Body {
                future,
                started,
                body_dropped,
            }
        } else if many {
            Kind::Many(self.locks.acquire_many(list.to_vec()))
        } else {
            Kind::Acquire(self.locks.acquire(list[0]))
        };
        // `with_lock(s)` arrives when called; the others at their first
        // poll or `enqueue`.
        let state = if with_body {
            self.arrive(id, keys, many)
        } else {
            State::Unpolled
        };
        self.futures.push(LiveFuture {
            id,
            keys,
            many,
            kind,
            task: None,
            state,
        });
    }

    /// Future `id` on `keys` arrives in their queues without being polled:
    /// its new state.
    fn arrive(&mut self, id: usize, keys: KeySet, many: bool) -> State {
        for key in keys.iter() {
            self.join(key, id);
        }
        let held = self.held(id, keys);
        match (many, held == keys) {
            (true, _) => State::Placed {
                queued: keys.minus(held),
            },
            (false, true) => State::Granted,
            (false, false) => State::Queued,
        }
    }

    /// Calls `enqueue` (or `enqueue_bounded(bound)`) on `acquire` or
    /// `acquire_many` future `index`: a no-op unless it is unpolled; else it
    /// arrives, unless a key of it has `bound` waiters or more, which
    /// refuses it (the future is gone) and changes nothing.
    fn place(&mut self, index: usize, bound: Option<usize>) -> Check {
        let LiveFuture {
            id,
            keys,
            many,
            kind,
            task,
            state,
        } = self.futures.remove(index);
        let at_bound: Vec<usize> = keys
            .iter()
            .map(|key| &self.queues[usize::from(key)])
            .filter(|queue| !queue.is_empty())
            .map(|queue| queue.len() - 1)
            .filter(|&waiters| bound.is_some_and(|bound| waiters >= bound))
            .collect();
        // A future placed already is returned as it is, never refused.
        let refused = state == State::Unpolled && !at_bound.is_empty();
        let outcome = match kind {
            Kind::Acquire(acquire) => match bound {
                None => Ok(acquire.enqueue()),
                Some(bound) => acquire.enqueue_bounded(bound),
            }
            .map(Kind::Acquire),
            Kind::Many(acquire) => match bound {
                None => Ok(acquire.enqueue()),
                Some(bound) => acquire.enqueue_bounded(bound),
            }
            .map(Kind::Many),
            body @ Kind::Body { .. } => Ok(body),
        };
        let kind = match outcome {
            Ok(kind) => kind,
            Err(busy) => {
                prop_assert!(
                    refused,
                    "enqueue_bounded({:?}) refused future {} on keys {:?} in state {:?}: {}",
                    bound,
                    id,
                    keys,
                    state,
                    busy
                );
                prop_assert!(
                    at_bound.contains(&busy.waiters()),
                    "Busy reports {} waiters; the keys at their bound have {:?}",
                    busy.waiters(),
                    at_bound
                );
                return Ok(());
            }
        };
        prop_assert!(
            !refused,
            "enqueue_bounded({:?}) admitted future {} on keys {:?} past its bound",
            bound,
            id,
            keys
        );
        let state = match (&kind, state) {
            (Kind::Acquire(_) | Kind::Many(_), State::Unpolled) => self.arrive(id, keys, many),
            (_, state) => state,
        };
        let future = LiveFuture {
            id,
            keys,
            many,
            kind,
            task,
            state,
        };
        self.futures.insert(index, future);
        Ok(())
    }

    /// Polls future `index` with `task`'s waker and checks the outcome
    /// against the model.
    fn poll(&mut self, index: usize, task: usize) -> Check {
        if self.futures[index].many {
            return self.poll_many(index, task);
        }
        let waker = self.tasks[task].waker.clone();
        let mut cx = Context::from_waker(&waker);
        let future = &mut self.futures[index];
        future.task = Some(task);
        let (id, key, before) = (future.id, future.keys.only(), future.state);

        // What the model expects: the new state, `None` for a guard.
        let queue = &mut self.queues[usize::from(key)];
        let is_acquire = matches!(future.kind, Kind::Acquire(_));
        let expected = match before {
            State::Unpolled if queue.is_empty() => {
                count_join(&mut self.counts, queue);
                queue.push_back(id);
                if is_acquire {
                    None
                } else {
                    Some(State::Running)
                }
            }
            State::Unpolled | State::Queued | State::Waiting { .. } => {
                if before == State::Unpolled {
                    count_join(&mut self.counts, queue);
                    queue.push_back(id);
                }
                Some(State::Waiting { task })
            }
            State::Granted if is_acquire => None,
            State::Granted | State::Running => Some(State::Running),
            State::Many { .. } | State::Placed { .. } => {
                unreachable!("model: a single-key future in {before:?}")
            }
        };

        match &mut future.kind {
            Kind::Acquire(acquire) => match Pin::new(acquire).poll(&mut cx) {
                Poll::Ready(guard) => {
                    prop_assert_eq!(
                        expected,
                        None,
                        "future {} on key {} became ready in state {:?}",
                        id,
                        key,
                        before
                    );
                    prop_assert_eq!(guard.key(), &key);
                    self.futures.remove(index);
                    let guard = guard.into();
                    self.guards.push(LiveGuard { id, guard });
                }
                Poll::Pending => {
                    let Some(state) = expected else {
                        return Err(TestCaseError::fail(format!(
                            "future {id} on key {key} stayed pending in state {before:?}, \
                             though it heads the queue"
                        )));
                    };
                    future.state = state;
                }
            },
            Kind::Body { future: body, .. } => {
                prop_assert!(body.as_mut().poll(&mut cx).is_pending());
                future.state = expected.expect("a with_lock future never completes");
            }
            Kind::Many(_) => unreachable!("model: `many` not set"),
        }
        Ok(())
    }

    /// Polls multi-key future `index` with `task`'s waker: it must be ready
    /// exactly when it heads the queue of every one of its keys.
    fn poll_many(&mut self, index: usize, task: usize) -> Check {
        self.settle(index);
        let future = &self.futures[index];
        let (id, keys, before) = (future.id, future.keys, future.state);
        let queued = match before {
            State::Unpolled => {
                // Joins the queue of every key at once.
                for key in keys.iter() {
                    self.join(key, id);
                }
                keys.minus(self.held(id, keys))
            }
            State::Many { queued, .. } | State::Placed { queued } => queued,
            _ => KeySet::default(),
        };
        let held = self.held(id, keys);
        let ready = held == keys;
        let waiting = State::Many {
            task,
            unheld: keys.minus(held),
            queued,
            wakes: self.tasks[task].wakes(),
        };

        let waker = self.tasks[task].waker.clone();
        let mut cx = Context::from_waker(&waker);
        let future = &mut self.futures[index];
        future.task = Some(task);
        match &mut future.kind {
            Kind::Many(acquire) => match Pin::new(acquire).poll(&mut cx) {
                Poll::Ready(guard) => {
                    prop_assert!(
                        ready,
                        "future {} on keys {:?} became ready in state {:?}, holding only {:?}",
                        id,
                        keys,
                        before,
                        held
                    );
                    prop_assert_eq!(KeySet::of(guard.keys()), keys, "the guard's keys");
                    prop_assert_eq!(guard.keys().len(), keys.len(), "duplicates in the guard");
                    self.futures.remove(index);
                    self.guards.push(LiveGuard { id, guard });
                }
                Poll::Pending => {
                    prop_assert!(
                        !ready,
                        "future {} on keys {:?} stayed pending in state {:?}, \
                         though it heads every queue",
                        id,
                        keys,
                        before
                    );
                    future.state = waiting;
                }
            },
            Kind::Body { future: body, .. } => {
                prop_assert!(body.as_mut().poll(&mut cx).is_pending());
                future.state = if ready { State::Running } else { waiting };
            }
            Kind::Acquire(_) => unreachable!("model: `many` set"),
        }
        Ok(())
    }

    /// Ends the wait of multi-key future `index`, about to be polled again
    /// or dropped: the wake-ups it added to its task become settled. Where
    /// their number is in doubt, the task's clones tell it, unless another
    /// wait on the task is in doubt too (see `check`).
    fn settle(&mut self, index: usize) {
        let future = &self.futures[index];
        let held = self.held(future.id, future.keys);
        let Some((task, mut least, mut most)) = many_wakes(future.state, held) else {
            return;
        };
        let others = self.waits(task, Some(future.id));
        if least != most && others.least == others.most {
            let clones = self.tasks[task].clones_elsewhere();
            let woken = others.singles + others.many + 1 - others.least - clones;
            (least, most) = (woken, woken);
        }
        self.settled[task].0 += least;
        self.settled[task].1 += most;
    }

    /// The futures now waiting with `task`'s waker, but `except`.
    fn waits(&self, task: usize, except: Option<usize>) -> Waits {
        let mut waits = Waits::default();
        for future in self.futures.iter().filter(|f| Some(f.id) != except) {
            if future.state == (State::Waiting { task }) {
                waits.singles += 1;
            }
            let held = self.held(future.id, future.keys);
            if let Some((of, least, most)) = many_wakes(future.state, held) {
                if of == task {
                    waits.many += 1;
                    waits.least += least;
                    waits.most += most;
                }
            }
        }
        waits
    }

    /// The holder of `key` left: the model hands the key to the next
    /// waiter. A single-key future's latest waker must be woken once; a
    /// multi-key request just holds one more key.
    fn release(&mut self, key: u8) {
        self.queue(key).pop_front();
        self.counts.releases += 1;
        if let Some(&next) = self.queue(key).front() {
            self.counts.acquisitions += 1;
            self.counts.handoffs += 1;
            let future = self
                .futures
                .iter_mut()
                .find(|f| f.id == next)
                .expect("only futures wait behind the head");
            match future.state {
                State::Waiting { task } => {
                    future.state = State::Granted;
                    self.wakes[task] += 1;
                }
                // Nobody to wake: it was never polled since it arrived.
                State::Queued => future.state = State::Granted,
                State::Many { .. } | State::Placed { .. } => {}
                state => panic!("model: a future in state {state:?} behind the head"),
            }
        }
    }

    fn drop_future(&mut self, index: usize) -> Check {
        self.settle(index);
        let future = self.futures.remove(index);
        let (id, keys, state) = (future.id, future.keys, future.state);
        let body_dropped = match &future.kind {
            Kind::Body { body_dropped, .. } => Some(body_dropped.clone()),
            Kind::Acquire(_) | Kind::Many(_) => None,
        };
        drop(future);
        if let Some(body_dropped) = body_dropped {
            // A running body is dropped first, while its keys are still held
            // for it: the queues are as long as before the drop.
            let expected = (state == State::Running)
                .then(|| keys.iter().map(|key| self.queue(key).len()).collect());
            prop_assert_eq!(
                body_dropped.take(),
                expected,
                "queue_len of keys {:?} when the body of future {} was dropped",
                keys,
                id
            );
        }
        match state {
            State::Unpolled => {}
            State::Queued | State::Waiting { .. } => {
                let key = keys.only();
                let queue = self.queue(key);
                let at = queue.iter().position(|&x| x == id).expect("queued");
                prop_assert!(at > 0, "model: a waiting future at the head");
                queue.remove(at);
            }
            State::Granted | State::Running | State::Many { .. } | State::Placed { .. } => {
                // Hands on every key held, leaves every other queue.
                for key in keys.iter() {
                    let queue = self.queue(key);
                    let at = queue.iter().position(|&x| x == id).expect("queued");
                    if at == 0 {
                        self.release(key);
                    } else {
                        queue.remove(at);
                    }
                }
            }
        }
        Ok(())
    }

    fn drop_guard(&mut self, index: usize) -> Check {
        let LiveGuard { id, guard } = self.guards.remove(index);
        let keys = KeySet::of(guard.keys());
        drop(guard);
        for key in keys.iter() {
            prop_assert_eq!(self.queue(key).front(), Some(&id));
            self.release(key);
        }
        Ok(())
    }

    fn try_acquire(&mut self, key: u8) -> Check {
        let free = self.queue(key).is_empty();
        match self.locks.try_acquire(key) {
            Some(guard) => {
                prop_assert!(free, "try_acquire took key {} while held", key);
                let id = self.next_id();
                self.join(key, id);
                let guard = guard.into();
                self.guards.push(LiveGuard { id, guard });
            }
            None => prop_assert!(!free, "try_acquire failed on free key {}", key),
        }
        Ok(())
    }

    fn try_many(&mut self, keys: &[u8]) -> Check {
        let set = KeySet::of(keys);
        let free = set.iter().all(|key| self.queue(key).is_empty());
        match self.locks.try_acquire_many(keys.iter().copied()) {
            Some(guard) => {
                prop_assert!(free, "try_acquire_many({:?}) took a held key", keys);
                prop_assert_eq!(guard.keys().len(), set.len(), "duplicates not merged");
                prop_assert_eq!(KeySet::of(guard.keys()), set);
                let id = self.next_id();
                for key in set.iter() {
                    self.join(key, id);
                }
                self.guards.push(LiveGuard { id, guard });
            }
            None => prop_assert!(!free, "try_acquire_many failed on free keys {:?}", keys),
        }
        Ok(())
    }

    /// Compares everything observable with the model.
    fn check(&self) -> Check {
        let locks = self.locks;
        for key in 0..KEYS {
            let queue = &self.queues[usize::from(key)];
            prop_assert_eq!(
                locks.is_locked(&key),
                !queue.is_empty(),
                "is_locked({})",
                key
            );
            prop_assert_eq!(locks.queue_len(&key), queue.len(), "queue_len({})", key);
        }
        let locked = self.queues.iter().filter(|q| !q.is_empty()).count();
        prop_assert_eq!(locks.locked_count(), locked, "locked_count");
        // Cancellations are left out: whether a dropped multi-key request
        // had taken a key handed to it is the manager's business.
        let mut stats = locks.stats();
        stats.cancellations = 0;
        // With `diagnostics`, one wait measured per hand-off and one hold
        // per release; nothing measured without it.
        let measured = cfg!(feature = "diagnostics");
        let (waits, holds) = (stats.waits.count(), stats.holds.count());
        prop_assert_eq!(waits, if measured { stats.handoffs } else { 0 }, "waits");
        prop_assert_eq!(holds, if measured { stats.releases } else { 0 }, "holds");
        (stats.waits, stats.holds) = Default::default();
        prop_assert_eq!(stats, self.counts, "stats");
        // Waiters in the slab: the queued ones and those granted, unpolled.
        // A multi-key request has one for each key it waits for, and may
        // still have one for each key handed to it since it was placed.
        let (mut least, mut most) = (0, 0);
        for future in &self.futures {
            match future.state {
                State::Queued | State::Waiting { .. } | State::Granted => {
                    (least, most) = (least + 1, most + 1);
                }
                State::Many { queued, .. } | State::Placed { queued } => {
                    least += future.keys.minus(self.held(future.id, future.keys)).len();
                    most += queued.len();
                }
                State::Unpolled | State::Running => {}
            }
        }
        let (debug_locked, waiters) = debug_counts(locks);
        prop_assert_eq!(debug_locked, locked, "Debug: {:?}", locks);
        in_range(
            waiters,
            least,
            most,
            format_args!("waiters in the Debug of {locks:?}"),
        )?;

        for (index, task) in self.tasks.iter().enumerate() {
            // A queued future holds one clone of its latest waker; a
            // multi-key one holds it until the key it waits for is handed
            // over, which takes the clone to wake it.
            let waits = self.waits(index, None);
            let clones = task.clones_elsewhere();
            let most = waits.singles + waits.many - waits.least;
            let least = waits.singles + waits.many - waits.most;
            in_range(
                clones,
                least,
                most,
                format_args!("clones of task {index}'s waker held by the manager"),
            )?;
            // So the clones tell how many of those multi-key requests were
            // woken; earlier waits may leave a doubt (`settled`).
            let woken = waits.singles + waits.many - clones;
            let (least, most) = self.settled[index];
            let exact = self.wakes[index] + woken;
            in_range(
                task.wakes(),
                exact + least,
                exact + most,
                format_args!("wakes of task {index}"),
            )?;
        }
        for future in &self.futures {
            if let Kind::Body { started, .. } = &future.kind {
                prop_assert_eq!(
                    started.get(),
                    future.state == State::Running,
                    "body of with_lock(s) future {} started in state {:?}",
                    future.id,
                    future.state
                );
            }
            // Liveness: a request that holds all its keys is polled again
            // only if it was woken.
            if let State::Many { task, wakes, .. } = future.state {
                prop_assert!(
                    self.held(future.id, future.keys) != future.keys
                        || self.tasks[task].wakes() > wakes,
                    "future {} holds all its keys {:?} but task {} was not woken since \
                     its latest poll",
                    future.id,
                    future.keys,
                    task
                );
            }
        }
        Ok(())
    }

    fn drain_guard(&mut self, id: usize) -> Check {
        let index = self.guards.iter().position(|x| x.id == id).unwrap();
        self.drop_guard(index)
            .and_then(|()| self.check())
            .map_err(within(format_args!("dropping guard {id}")))
    }

    /// Drops every future and guard left, oldest first, checking each step;
    /// then the manager must be empty.
    fn drain(&mut self) -> Check {
        while !self.futures.is_empty() || !self.guards.is_empty() {
            let oldest_future = self.futures.iter().map(|f| f.id).min();
            let oldest_guard = self.guards.iter().map(|g| g.id).min();
            match (oldest_future, oldest_guard) {
                (Some(f), Some(g)) if g < f => self.drain_guard(g)?,
                (None, Some(g)) => self.drain_guard(g)?,
                (Some(f), _) => {
                    let index = self.futures.iter().position(|x| x.id == f).unwrap();
                    let state = self.futures[index].state;
                    self.drop_future(index)
                        .and_then(|()| self.check())
                        .map_err(within(format_args!("dropping future {f} ({state:?})")))?;
                }
                (None, None) => unreachable!(),
            }
        }
        prop_assert!(self.queues.iter().all(VecDeque::is_empty));
        prop_assert_eq!(self.locks.locked_count(), 0);
        prop_assert_eq!(debug_counts(self.locks), (0, 0));
        for task in &self.tasks {
            prop_assert_eq!(task.clones_elsewhere(), 0, "a waker clone leaked");
        }
        Ok(())
    }
}

impl Drop for Harness<'_> {
    /// Leaks whatever a failed case left alive: the manager may be
    /// inconsistent by then, and a second panic while unwinding would abort
    /// the test binary before proptest could shrink the case. (After a
    /// passing case, `drain` has left nothing.)
    fn drop(&mut self) {
        std::mem::forget(std::mem::take(&mut self.futures));
        std::mem::forget(std::mem::take(&mut self.guards));
    }
}

/// Prefixes a failure's message with where it happened.
fn within(what: impl fmt::Display) -> impl FnOnce(TestCaseError) -> TestCaseError {
    move |error| match error {
        TestCaseError::Fail(reason) => TestCaseError::fail(format!("{what}: {}", reason.message())),
        other => other,
    }
}

/// Checks that `least <= value <= most`, as an equality where they agree.
fn in_range(value: usize, least: usize, most: usize, what: fmt::Arguments<'_>) -> Check {
    if least == most {
        prop_assert_eq!(value, least, "{}", what);
    } else {
        prop_assert!(
            (least..=most).contains(&value),
            "{}: {}, expected {}..={}",
            what,
            value,
            least,
            most
        );
    }
    Ok(())
}

/// The `locked` and `waiters` counts from the manager's `Debug` output.
fn debug_counts(locks: &Locks) -> (usize, usize) {
    let text = format!("{locks:?}");
    let field = |name: &str| -> usize {
        let start = text
            .find(name)
            .unwrap_or_else(|| panic!("no `{name}` in {text}"))
            + name.len();
        text[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or_else(|_| panic!("no count after `{name}` in {text}"))
    };
    (field("locked: "), field("waiters: "))
}

/// A sequence of operations, printed one per line when a case fails.
#[derive(Clone)]
struct Ops(Vec<Op>);

impl fmt::Debug for Ops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[")?;
        for op in &self.0 {
            writeln!(f, "    {op:?},")?;
        }
        write!(f, "]")
    }
}

/// Runs `ops` on a manager with `shards` shards: with one, a multi-key
/// request locks one mutex; with many, the keys lie in different shards
/// whose mutexes it holds together.
fn run(shards: usize, ops: &Ops) -> Check {
    let locks = Locks::with_shards(shards);
    let mut harness = Harness::new(&locks);
    harness.check()?;
    for (step, &op) in ops.0.iter().enumerate() {
        harness
            .apply(op)
            .map_err(within(format_args!("at step {step}, {op:?}")))?;
    }
    harness
        .drain()
        .map_err(within("while dropping what was left"))
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(5000)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        // Failing cases are saved to tests/suite/model.proptest-regressions
        // and replayed first on the next run.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn matches_the_fifo_model(
        shards in prop_oneof![Just(1), Just(64)],
        ops in prop::collection::vec(op(), 0..=MAX_OPS).prop_map(Ops),
    ) {
        run(shards, &ops)?;
    }
}

/// A fixed walk through the paths the random cases must reach: a hand-off
/// to a re-polled waiter, a granted waiter dropped unpolled, a `with_lock`
/// dropped midway, and `try_acquire` refused while a waiter is owed the key.
#[test]
fn scripted_walk() {
    use Op::*;
    use WakerChoice::*;
    let ops = Ops(vec![
        TryAcquire { key: 0 },
        Create {
            key: 0,
            with_lock: false,
            poll: true,
        },
        Create {
            key: 0,
            with_lock: true,
            poll: true,
        },
        Create {
            key: 0,
            with_lock: false,
            poll: true,
        },
        Poll {
            future: 0,
            waker: New,
        },
        DropGuard { guard: 0 },
        TryAcquire { key: 0 },
        DropFuture { future: 0 },
        Poll {
            future: 0,
            waker: Same,
        },
        Create {
            key: 1,
            with_lock: false,
            poll: true,
        },
        DropFuture { future: 0 },
        Poll {
            future: 0,
            waker: Shared(0),
        },
    ]);
    for shards in [1, 64] {
        run(shards, &ops).unwrap();
    }
}

/// A fixed walk through the multi-key paths the random cases must reach:
/// duplicates, a request partly granted and dropped, one handed all its
/// keys and dropped unpolled, one handed its keys one at a time and polled
/// in between, then moved to another task, a `with_locks` dropped while
/// its body runs, and the empty set.
#[test]
fn scripted_many_walk() {
    use Op::*;
    use WakerChoice::*;
    let many = |keys: &[u8], with_locks| CreateMany {
        keys: KeyList::new(keys.to_vec()),
        with_locks,
        poll: true,
    };
    let ops = Ops(vec![
        TryAcquire { key: 1 },
        // Holds 0 and 2, queued on 1; dropped.
        many(&[2, 1, 0, 2], false),
        DropFuture { future: 0 },
        // Holds 0, queued on 1; handed 1, then dropped unpolled.
        many(&[1, 0], false),
        DropGuard { guard: 0 },
        DropFuture { future: 0 },
        // Two requests queue behind three guards.
        TryAcquire { key: 0 },
        TryAcquire { key: 1 },
        TryAcquire { key: 2 },
        many(&[0, 1, 2], false),
        many(&[2, 0], true),
        Poll {
            future: 0,
            waker: New,
        },
        DropGuard { guard: 0 },
        DropGuard { guard: 0 },
        Poll {
            future: 0,
            waker: Same,
        },
        DropGuard { guard: 0 },
        Poll {
            future: 0,
            waker: Same,
        },
        // The first request's guard hands 0 and 2 to the `with_locks`.
        DropGuard { guard: 0 },
        Poll {
            future: 0,
            waker: Shared(0),
        },
        DropFuture { future: 0 },
        many(&[], false),
        DropGuard { guard: 0 },
    ]);
    for shards in [1, 64] {
        run(shards, &ops).unwrap();
    }
}

/// A fixed walk through the placing paths the random cases must reach: a
/// bounded enqueue refused and admitted, `enqueue` on a placed future (and
/// on a `with_lock`) doing nothing, a placed future handed the key without
/// a wake-up, then dropped unpolled or polled to its guard, a placed
/// multi-key request holding its free key from the call, a `with_lock`
/// queued at its call, and the empty set placed.
#[test]
fn scripted_place_walk() {
    use Op::*;
    use WakerChoice::*;
    let create = |key, with_lock, poll| Create {
        key,
        with_lock,
        poll,
    };
    let place = |future, bound| Place { future, bound };
    let ops = Ops(vec![
        TryAcquire { key: 0 },
        // Refused: the key is held, and a bound of 0 admits no waiter.
        create(0, false, false),
        place(0, Some(0)),
        // Queued at the call; a second one refused at one waiter.
        create(0, false, false),
        place(0, None),
        create(0, false, false),
        place(1, Some(1)),
        // Admitted under a looser bound; then placed again: no-ops.
        create(0, false, false),
        place(1, Some(2)),
        place(0, Some(0)),
        place(1, None),
        // A lazy one, queued at its poll behind both.
        create(0, false, true),
        // The key passes to the first placed one, which nobody wakes.
        DropGuard { guard: 0 },
        Poll {
            future: 0,
            waker: New,
        },
        // Holds 1 from the call, queued on 0.
        CreateMany {
            keys: KeyList::new(vec![1, 0]),
            with_locks: false,
            poll: false,
        },
        place(2, None),
        // Queued on 1 at its call, behind the request; placing it: no-op.
        create(1, true, false),
        place(3, Some(0)),
        // The second placed one is handed 0, dropped unpolled: on to the
        // lazy one, woken.
        DropGuard { guard: 0 },
        DropFuture { future: 0 },
        Poll {
            future: 0,
            waker: Same,
        },
        // Then the request, placed, holds both without a wake-up.
        DropGuard { guard: 0 },
        Poll {
            future: 0,
            waker: New,
        },
        // Then the `with_lock`, whose body runs and is dropped.
        DropGuard { guard: 0 },
        Poll {
            future: 0,
            waker: Shared(0),
        },
        DropFuture { future: 0 },
        // The empty set, placed under a bound of 0.
        CreateMany {
            keys: KeyList::new(Vec::new()),
            with_locks: false,
            poll: false,
        },
        place(0, Some(0)),
        Poll {
            future: 0,
            waker: New,
        },
    ]);
    for shards in [1, 64] {
        run(shards, &ops).unwrap();
    }
}
