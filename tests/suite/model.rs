//! Model-based property test: random sequences of operations on a few keys,
//! driven by hand-polled futures, each step compared with a reference
//! model of per-key FIFO queues (the holder at the front).
//!
//! Single-key futures (`acquire`, `with_lock`), multi-key ones
//! (`acquire_many`, `with_locks`, over random keys with duplicates) and
//! the `try_acquire` and `try_acquire_many` guards share the queues. A
//! future arrives at its first poll, or earlier at `enqueue` or
//! `enqueue_bounded` (refused, changing nothing, when one of its keys has
//! too many waiters: the first such key in the manager's order gives the
//! `Busy`; a no-op on a future placed already); a `with_lock(s)` future
//! arrives when called. `try_acquire_many` takes all its keys or none.
//!
//! A multi-key request takes its distinct keys one at a time, in the
//! manager's order of their hashes: arriving, it takes each free key until
//! the first one held, joins the back of that key's queue and goes no
//! further (the keys after it are neither held nor queued for). When that
//! key is handed to it, its next poll takes it and walks on in the same
//! way; it is ready once it holds every key. So it waits in one queue at a
//! time, exactly as a single-key future does: one waiter, holding one
//! clone of the waker of its latest poll (none if placed and not polled
//! since), woken once through it when handed the key it waits for. Every
//! guard is kept as a `MultiLockGuard` (a single-key one converted with
//! `into`).
//!
//! A guard grows with `try_extend` (all or nothing) and `extend`: a future
//! that borrows the guard, so the harness drives it inside an `async`
//! block that owns the guard (no `unsafe`), and gets the guard back when
//! the extend completes or is dropped. An extend arrives at its first poll
//! or `enqueue`, leaves out the keys its guard holds, and walks the others
//! as a multi-key request does, under the guard's id: ready with `Ok` once
//! the guard holds them all; dropped, it leaves its queue and gives back
//! the keys it took, the guard keeping what it held.
//!
//! The model keeps the manager's waits-for graph exactly as the manager
//! sees it. A node is a guard with its extends, from the first recorded
//! wait of one, or a multi-key request (`acquire_many`, `with_locks`; its
//! node passes to its guard), from a wait recorded while it holds a key.
//! Every wait of an extend is recorded, and a multi-key request's only
//! once an extend has waited on the manager: the first such wait wakes
//! every waiter that has a waker, so that these requests poll again. A
//! wait is recorded at each pending poll (or arrival without one), and
//! marks every key the node holds; a release or hand-off clears the key's
//! mark, so a key handed to a node stays unmarked until the node's next
//! recorded wait. A node waits for the node that marked the key it waits
//! for. A recorded wait that closes a cycle is refused: an extend's own
//! (its poll returns `Err(Deadlock)` with the cycle's keys; at `enqueue`,
//! its next poll does), and for a multi-key request's, which cannot fail,
//! the extend on the cycle whose wait began last (polls while it waits
//! for the same key renew nothing), woken through its waiter's waker, its
//! next poll returning the refusal. A refused extend leaves as a dropped
//! one does; `Stats::deadlocks` counts the refusals returned, not those
//! dropped with their extend. Each refusal must close a cycle of real
//! waits (each node behind the head of its key's queue, which the next
//! one heads), and after every step no cycle of real waits may remain
//! among nodes whose current wait is recorded and not refused: the
//! manager's graph lags the real one only until each node on it polls.
//!
//! Each case draws the manager's hasher from a seed, so that cases see
//! every order of the keys and a failing case replays in the same one.
//! The model learns the order first from a second manager with the same
//! hasher: with key `a` held, `acquire_many([a, b])` polled once holds `b`
//! exactly when `b` comes first. (The probe fails the case if two keys are
//! taken in one step, as keys of equal hash are: a 32-bit collision among
//! three keys that the model leaves out.)
//!
//! After every step the test checks, for every key, `is_locked` and
//! `queue_len`; `locked_count` and the number of waiters the manager's
//! `Debug` reports (queued, or granted and not polled since); `stats()` in
//! full (and with `diagnostics`, a wait measured per hand-off and a hold
//! per release); the wake count of every waker ever handed to the manager
//! (only the new head of a queue is woken, once, through the waker of its
//! latest poll: so a request handed a key is always woken unless it was
//! placed and never polled since); the number of clones of each waker the
//! manager still holds (one per waiting future whose latest poll used it);
//! which `with_lock` and `with_locks` bodies run; the keys of every guard;
//! no cycle of recorded waits; and, on every poll, whether the future is
//! ready, and an extend's outcome (`Ok`, or the keys of the cycle). At the
//! end it drops whatever is left and checks that the manager is empty.
//!
//! A quarter of the cases draw their steps from a mix that favours
//! multi-key requests and extends. `PROPTEST_CASES` overrides the number
//! of cases (5,000 by default); with `--nocapture`, the random test
//! prints how often each extend path was taken.
use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures::task::noop_waker;
use lock_manager::{Acquire, AcquireMany, Deadlock, LockManager, MultiLockGuard, Stats};
use proptest::prelude::*;
use proptest::test_runner::{
    contextualize_config, FileFailurePersistence, TestCaseError, TestRunner,
};

const KEYS: u8 = 3;
const MAX_OPS: usize = 60;
/// The most keys, duplicates included, passed to one `acquire_many`.
const MAX_MANY: usize = 4;

/// The keys in the order in which a multi-key request takes them: the
/// order of their hashes in the manager.
type Order = [u8; KEYS as usize];

/// A set of distinct keys, one bit per key.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct KeySet(u8);

impl KeySet {
    fn of(keys: &[u8]) -> Self {
        Self(keys.iter().fold(0, |set, &key| set | 1 << key))
    }

    fn contains(self, key: u8) -> bool {
        self.0 & 1 << key != 0
    }

    fn iter(self) -> impl Iterator<Item = u8> {
        (0..KEYS).filter(move |&key| self.contains(key))
    }

    /// The keys in `order`.
    fn in_order(self, order: Order) -> impl Iterator<Item = u8> {
        order.into_iter().filter(move |&key| self.contains(key))
    }

    fn len(self) -> usize {
        self.0.count_ones() as usize
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
    /// Makes a live `acquire` or `acquire_many` future arrive now, without
    /// a poll: `enqueue`, or `enqueue_bounded(bound)`. Does nothing to a
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
    /// Takes a live guard into a new `extend` over `keys` (which may name
    /// keys it holds); polls it at once with a new task if `poll`. The
    /// extend is then a live future like the others (`Place` calls its
    /// `enqueue`, whatever the bound); done or dropped, it gives the guard
    /// back.
    Extend {
        guard: usize,
        keys: KeyList,
        poll: bool,
    },
    /// `try_extend` of a live guard over `keys`: all or nothing.
    TryExtend { guard: usize, keys: KeyList },
}

/// How often each kind of step is drawn, in the order of `Op`'s variants.
type Weights = [u32; 10];

/// The mix of most cases.
const MIXED: Weights = [4, 3, 4, 2, 2, 2, 1, 1, 3, 1];

/// The mix of a quarter of the cases, for the waits-for graph: many
/// multi-key requests and extends, polled often, and few single-key
/// requests. (A refusal needs a cycle of waiting extends; a victim of a
/// multi-key request's wait, one registered after an extend waited; and
/// the extend of its guard, that it then completes.)
const NESTING: Weights = [1, 4, 6, 2, 2, 3, 1, 2, 5, 1];

fn op(weights: Weights) -> impl Strategy<Value = Op> {
    let [create, create_many, poll, place, drop_future, drop_guard, try_acquire, try_many, extend, try_extend] =
        weights;
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
        create => (0..KEYS, prop::bool::weighted(0.3), prop::bool::weighted(0.8))
            .prop_map(|(key, with_lock, poll)| Op::Create { key, with_lock, poll }),
        create_many => (keys(), prop::bool::weighted(0.3), prop::bool::weighted(0.8))
            .prop_map(|(keys, with_locks, poll)| Op::CreateMany { keys, with_locks, poll }),
        poll => (0..16usize, waker).prop_map(|(future, waker)| Op::Poll { future, waker }),
        place => (0..16usize, prop::option::weighted(0.5, 0..3usize))
            .prop_map(|(future, bound)| Op::Place { future, bound }),
        drop_future => (0..16usize).prop_map(|future| Op::DropFuture { future }),
        drop_guard => (0..16usize).prop_map(|guard| Op::DropGuard { guard }),
        try_acquire => (0..KEYS).prop_map(|key| Op::TryAcquire { key }),
        try_many => keys().prop_map(|keys| Op::TryMany { keys }),
        extend => (0..16usize, keys(), prop::bool::weighted(0.7))
            .prop_map(|(guard, keys, poll)| Op::Extend { guard, keys, poll }),
        try_extend => (0..16usize, keys()).prop_map(|(guard, keys)| Op::TryExtend { guard, keys }),
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

/// The manager's hasher: std's SipHash with fixed keys, fed a seed first,
/// so that each seed gives its own order of the keys' hashes, the same in
/// every manager built with it.
#[derive(Clone, Copy, Debug)]
struct Seeded(u64);

impl BuildHasher for Seeded {
    type Hasher = DefaultHasher;

    fn build_hasher(&self) -> DefaultHasher {
        let mut hasher = DefaultHasher::new();
        hasher.write_u64(self.0);
        hasher
    }
}

type Locks = LockManager<u8, Seeded>;

type Guard<'a> = MultiLockGuard<'a, u8, Seeded>;

/// What the future driving an extend gives back: the guard, and the
/// extend's outcome (`None` if it was dropped before it completed).
type Extended<'a> = (Guard<'a>, Option<Result<(), Deadlock<u8>>>);

/// What the future driving an extend does when next polled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    /// Polls the extend with the poll's waker.
    Poll,
    /// Calls `enqueue` on it; stays pending.
    Enqueue,
    /// Drops it, and completes with the guard.
    Drop,
}

/// An `extend` of `guard` over `keys`, inside a future that owns the guard
/// (the extend borrows it mutably: an `async` block holds both without
/// `unsafe`) and obeys `command` at each poll; it completes with the guard
/// once the extend completes or is dropped.
async fn extending(
    mut guard: Guard<'_>,
    keys: Vec<u8>,
    command: Rc<Cell<Command>>,
) -> Extended<'_> {
    let outcome = {
        let mut extend = Some(guard.extend(keys));
        std::future::poll_fn(|cx| match command.get() {
            Command::Poll => {
                let extend = extend.as_mut().expect("an extend polled after its drop");
                Pin::new(extend).poll(cx).map(Some)
            }
            Command::Enqueue => {
                extend = extend.take().map(|extend| extend.enqueue());
                Poll::Pending
            }
            Command::Drop => {
                drop(extend.take());
                Poll::Ready(None)
            }
        })
        .await
    };
    (guard, outcome)
}

enum Kind<'a> {
    Acquire(Acquire<'a, u8, Seeded>),
    Many(AcquireMany<'a, u8, Seeded>),
    /// A guard's `extend`: the guard is inside `future` until it completes.
    Extend {
        future: Pin<Box<dyn Future<Output = Extended<'a>> + 'a>>,
        command: Rc<Cell<Command>>,
        /// The keys the guard held when the extend was made.
        guard_keys: KeySet,
    },
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

/// Where a live future stands in the model. A multi-key request in any
/// state holds the keys before a point in the hash order and is in no
/// queue of the keys after it; while it waits, it is queued on the key at
/// that point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Never polled nor placed: in no queue.
    Unpolled,
    /// Placed (`enqueue`, or a `with_lock(s)` when called) behind the head
    /// of the queue of the key it waits for, never polled since: its
    /// waiter has no waker.
    Queued,
    /// Queued behind the head of the queue of the key it waits for; its
    /// waiter stores the waker of `task`.
    Waiting { task: usize },
    /// At the head of the queue of the key it waited for, handed the key,
    /// not polled since: its waiter is still in the manager. (A single-key
    /// future placed while its key was free is granted at once.)
    Granted,
    /// Multi-key: placed while every key was free, so it took them all
    /// there and then, with no waiter left; not polled since.
    Taken,
    /// A `with_lock(s)` holding all its keys, whose body runs (and never
    /// finishes).
    Running,
}

impl State {
    /// Whether the future has a waiter in the manager's slab (which is what
    /// a drop counts as a cancellation).
    fn has_waiter(self) -> bool {
        matches!(self, State::Queued | State::Waiting { .. } | State::Granted)
    }

    /// Whether it waits behind the head of a queue.
    fn waits(self) -> bool {
        matches!(self, State::Queued | State::Waiting { .. })
    }
}

struct LiveFuture<'a> {
    /// An extend's is its guard's: it holds and waits as the guard.
    id: usize,
    /// The keys as the caller listed them, duplicates and order kept.
    list: KeyList,
    /// Its distinct keys: one for `acquire` and `with_lock`; for an
    /// extend, those its guard did not hold when it was made.
    keys: KeySet,
    /// `acquire_many`, `with_locks` or an extend.
    many: bool,
    kind: Kind<'a>,
    /// The task of its latest poll.
    task: Option<usize>,
    state: State,
}

impl LiveFuture<'_> {
    /// Whether it may be a node of the waits-for graph: `Some(true)` for an
    /// extend, `Some(false)` for a multi-key request (`acquire_many` or
    /// `with_locks`, once nesting was seen and while it holds a key),
    /// `None` for a single-key one.
    fn node(&self) -> Option<bool> {
        match self.kind {
            Kind::Extend { .. } => Some(true),
            _ if self.many => Some(false),
            _ => None,
        }
    }
}

/// A live guard: a single-key one is kept converted into a multi-key one,
/// which holds its key as it did.
struct LiveGuard<'a> {
    id: usize,
    guard: Guard<'a>,
}

/// A record of the waits-for graph, as the manager keeps it: made at a
/// request's first recorded wait (an extend's is its guard's, kept by the
/// guard, so a multi-key request's passes to its guard and then to the
/// guard's extends), forgotten when the request or guard is dropped.
#[derive(Clone, Debug)]
struct Node {
    /// Whether its latest recorded wait was an extend's.
    extend: bool,
    /// The key of its latest recorded wait; cleared when that extend or
    /// request leaves (dropped, or refused), completes, or is refused as
    /// a victim. Left as it was from the key's hand-off to the next poll:
    /// the key is then its own, unmarked, so it leads nowhere.
    waiting: Option<u8>,
    /// When its current wait began, in `Harness::waits`: its first
    /// recording, not renewed by later polls while it waits for that key.
    since: u64,
    /// The cycle it was refused for, until its next poll returns it (and
    /// `Stats::deadlocks` counts it) or it leaves. Meanwhile its waits are
    /// not recorded.
    refused: Option<Vec<u8>>,
}

/// How often each new path was taken, in this thread (the proptest cases
/// run on the test's thread), printed at the end of the random test.
#[derive(Debug, Default)]
struct Coverage {
    extends: usize,
    /// Extends of a guard whose request had registered in the graph.
    extends_of_registered: usize,
    /// Extends that completed with `Ok`.
    extended: usize,
    /// Polls of an extend that stayed pending.
    extend_pending: usize,
    /// The first extend wait of a manager, which wakes every waiter.
    opens: usize,
    /// Multi-key requests registered (a first recorded wait).
    registered: usize,
    /// An extend refused at the poll whose wait closed the cycle.
    refused_at_poll: usize,
    /// An extend refused at its `enqueue`, returned by its next poll.
    refused_at_enqueue: usize,
    /// An extend refused as the victim of a multi-key request's wait.
    refused_as_victim: usize,
    /// Of those, the victims picked among several extends on the cycle.
    victims_picked: usize,
    /// Refusals returned by a poll after the refused extend was handed
    /// its key.
    refused_then_granted: usize,
    /// Refused extends dropped before the poll that would return it.
    refusals_dropped: usize,
    /// Refusals returned by a poll, with the cycle's length.
    cycle_lengths: BTreeMap<usize, usize>,
    try_extend_taken: usize,
    try_extend_refused: usize,
}

thread_local! {
    static COVERAGE: RefCell<Coverage> = RefCell::default();
}

fn cover(count: impl FnOnce(&mut Coverage)) {
    COVERAGE.with(|coverage| count(&mut coverage.borrow_mut()));
}

/// The manager under test, everything alive that uses it, and the model.
struct Harness<'a> {
    locks: &'a Locks,
    /// The keys in the order a multi-key request takes them.
    order: Order,
    tasks: Vec<Task>,
    futures: Vec<LiveFuture<'a>>,
    guards: Vec<LiveGuard<'a>>,
    /// The model: per key, the ids of the holder (front) and the waiters.
    queues: [VecDeque<usize>; KEYS as usize],
    /// What the model counts of `Stats`: a key acquired each time an id
    /// reaches the front of its queue, released each time it leaves it,
    /// contended each time an id joins a queue behind others, handed off
    /// when it passes from one id to the next, cancelled when a future is
    /// dropped with a waiter.
    counts: Stats,
    /// Waiters dropped while queued (not yet handed their key): with
    /// `diagnostics`, the abandoned waits.
    abandoned: u64,
    /// The requests that queued for each key: with `diagnostics`, its
    /// count among the hot keys (exact: the sketch tracks more keys than
    /// the model has).
    hot: [u64; KEYS as usize],
    /// Expected wake count of each task.
    wakes: Vec<usize>,
    next_id: usize,
    /// The waits-for graph as the manager sees it, by request or guard id.
    nodes: BTreeMap<usize, Node>,
    /// Per key, the node that marked it: set, on every key a node holds,
    /// each time the node's wait is recorded; cleared when the key is
    /// released or handed on. So a key handed to a node is unmarked until
    /// its next recorded wait.
    marks: [Option<usize>; KEYS as usize],
    /// Set for good at the first recorded extend wait: multi-key requests
    /// record their waits from then on.
    nesting: bool,
    /// Waits recorded so far: orders them, so that the youngest is known.
    waits: u64,
}

type Check = Result<(), TestCaseError>;

impl<'a> Harness<'a> {
    fn new(locks: &'a Locks, order: Order) -> Self {
        Self {
            locks,
            order,
            tasks: Vec::new(),
            futures: Vec::new(),
            guards: Vec::new(),
            queues: Default::default(),
            counts: Stats::default(),
            abandoned: 0,
            hot: Default::default(),
            wakes: Vec::new(),
            next_id: 0,
            nodes: BTreeMap::new(),
            marks: [None; KEYS as usize],
            nesting: false,
            waits: 0,
        }
    }

    fn new_task(&mut self) -> usize {
        self.tasks.push(Task::new());
        self.wakes.push(0);
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
        if queue.is_empty() {
            self.counts.acquisitions += 1;
        } else {
            self.counts.contended += 1;
            self.hot[usize::from(key)] += 1;
        }
        queue.push_back(id);
    }

    /// The walk of future `id` through `keys` in hash order, from where it
    /// stands (holding the keys whose queue it is in): takes each free key,
    /// and joins the queue of the first one held, with `task`'s waker (or
    /// none): its new state. `None` once it holds them all.
    fn walk(&mut self, id: usize, keys: KeySet, task: Option<usize>) -> Option<State> {
        for key in keys.in_order(self.order) {
            let queue = &self.queues[usize::from(key)];
            match queue.iter().position(|&x| x == id) {
                Some(0) => {}
                Some(_) => panic!("model: future {id} walks on while it waits for key {key}"),
                None => {
                    let held = !queue.is_empty();
                    self.join(key, id);
                    if held {
                        return Some(task.map_or(State::Queued, |task| State::Waiting { task }));
                    }
                }
            }
        }
        None
    }

    fn apply(&mut self, op: Op) -> Check {
        match op {
            Op::Create {
                key,
                with_lock,
                poll,
            } => {
                self.create(&[key], false, with_lock)?;
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
                self.create(keys.as_slice(), true, with_locks)?;
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
            Op::Extend { guard, keys, poll } => {
                if !self.guards.is_empty() {
                    self.extend(guard % self.guards.len(), keys.as_slice(), poll)?;
                }
            }
            Op::TryExtend { guard, keys } => {
                if !self.guards.is_empty() {
                    self.try_extend(guard % self.guards.len(), keys.as_slice())?;
                }
            }
        }
        self.check()
    }

    /// Creates an `acquire` (`many` false, one key) or `acquire_many`
    /// future over `list`, or the `with_lock` or `with_locks` future of a
    /// body that awaits forever.
    fn create(&mut self, list: &[u8], many: bool, with_body: bool) -> Check {
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
        if many && state.waits() {
            self.many_waits(id, keys)?;
        }
        self.futures.push(LiveFuture {
            id,
            list: KeyList::new(list.to_vec()),
            keys,
            many,
            kind,
            task: None,
            state,
        });
        Ok(())
    }

    /// Future `id` on `keys` arrives without being polled: its new state.
    /// A single-key future whose key is free is granted it; a multi-key one
    /// that finds every key free takes them all.
    fn arrive(&mut self, id: usize, keys: KeySet, many: bool) -> State {
        self.walk(id, keys, None)
            .unwrap_or(if many { State::Taken } else { State::Granted })
    }

    /// Calls `enqueue` (or `enqueue_bounded(bound)`) on `acquire` or
    /// `acquire_many` future `index`: a no-op unless it is unpolled; else it
    /// arrives, unless one of its keys has `bound` waiters or more, which
    /// refuses it (the future is gone) and changes nothing.
    fn place(&mut self, index: usize, bound: Option<usize>) -> Check {
        if let Kind::Extend { .. } = self.futures[index].kind {
            return self.enqueue_extend(index);
        }
        let LiveFuture {
            id,
            list,
            keys,
            many,
            kind,
            task,
            state,
        } = self.futures.remove(index);
        // The waiters of the first key in hash order at its bound; a
        // future placed already is returned as it is, never refused.
        let busy = bound
            .filter(|_| state == State::Unpolled)
            .and_then(|bound| {
                keys.in_order(self.order)
                    .filter_map(|key| self.queues[usize::from(key)].len().checked_sub(1))
                    .find(|&waiters| waiters >= bound)
            });
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
            other @ (Kind::Body { .. } | Kind::Extend { .. }) => Ok(other),
        };
        let kind = match outcome {
            Ok(kind) => kind,
            Err(refused) => {
                prop_assert_eq!(
                    Some(refused.waiters()),
                    busy,
                    "enqueue_bounded({:?}) refused future {} on keys {:?} in state {:?}: {}",
                    bound,
                    id,
                    list,
                    state,
                    refused
                );
                self.counts.busy += 1;
                return Ok(());
            }
        };
        prop_assert_eq!(
            busy,
            None,
            "enqueue_bounded({:?}) admitted future {} on keys {:?} past its bound",
            bound,
            id,
            list
        );
        let (state, arrived) = match (&kind, state) {
            (Kind::Acquire(_) | Kind::Many(_), State::Unpolled) => {
                (self.arrive(id, keys, many), true)
            }
            (_, state) => (state, false),
        };
        let future = LiveFuture {
            id,
            list,
            keys,
            many,
            kind,
            task,
            state,
        };
        self.futures.insert(index, future);
        if arrived && many && state.waits() {
            self.many_waits(id, keys)?;
        }
        Ok(())
    }

    /// Calls `enqueue` on extend `index`: a no-op unless it is unpolled;
    /// else it arrives, and if it must wait, its wait is recorded (and
    /// refused, if it closes a cycle: the refusal comes with its next
    /// poll).
    fn enqueue_extend(&mut self, index: usize) -> Check {
        let future = &mut self.futures[index];
        let (id, keys, state) = (future.id, future.keys, future.state);
        let Kind::Extend {
            future: extend,
            command,
            ..
        } = &mut future.kind
        else {
            unreachable!("not an extend");
        };
        command.set(Command::Enqueue);
        let waker = noop_waker();
        let enqueued = extend.as_mut().poll(&mut Context::from_waker(&waker));
        if enqueued.is_ready() {
            // Leaked: the manager may be inconsistent.
            std::mem::forget(enqueued);
            return Err(TestCaseError::fail(format!(
                "the future driving extend {id} completed at its enqueue"
            )));
        }
        if state == State::Unpolled {
            let state = self.arrive(id, keys, true);
            self.futures[index].state = state;
            if state.waits() {
                self.extend_waits(id, keys)?;
                if self.nodes[&id].refused.is_some() {
                    cover(|c| c.refused_at_enqueue += 1);
                }
            }
        }
        Ok(())
    }

    /// Polls future `index` with `task`'s waker and checks the outcome
    /// against the model: ready exactly when it then holds every key.
    fn poll(&mut self, index: usize, task: usize) -> Check {
        let future = &self.futures[index];
        if let Kind::Extend { .. } = future.kind {
            return self.poll_extend(index, task);
        }
        let (id, keys, before, many) = (future.id, future.keys, future.state, future.many);
        let has_body = matches!(future.kind, Kind::Body { .. });

        // What the model expects: the new state, `None` for a guard.
        let expected = match before {
            // Arrives, or takes the key handed to it and walks on.
            State::Unpolled | State::Granted => self.walk(id, keys, Some(task)),
            State::Queued | State::Waiting { .. } => Some(State::Waiting { task }),
            State::Taken => None,
            State::Running => Some(State::Running),
        };
        let expected = match expected {
            None if has_body => Some(State::Running),
            expected => expected,
        };

        let waker = self.tasks[task].waker.clone();
        let mut cx = Context::from_waker(&waker);
        let future = &mut self.futures[index];
        future.task = Some(task);
        let guard = match &mut future.kind {
            Kind::Acquire(acquire) => match Pin::new(acquire).poll(&mut cx) {
                Poll::Ready(guard) => Some(guard.into()),
                Poll::Pending => None,
            },
            Kind::Many(acquire) => match Pin::new(acquire).poll(&mut cx) {
                Poll::Ready(guard) => Some(guard),
                Poll::Pending => None,
            },
            Kind::Body { future: body, .. } => {
                prop_assert!(
                    body.as_mut().poll(&mut cx).is_pending(),
                    "with_lock(s) future {} completed",
                    id
                );
                None
            }
            Kind::Extend { .. } => unreachable!("polled by poll_extend"),
        };
        match (guard, expected) {
            (Some(guard), None) => {
                let guard_keys = KeySet::of(guard.keys());
                let distinct = guard.keys().len();
                if guard_keys != keys || distinct != keys.len() {
                    // Leaked: the manager may be inconsistent.
                    std::mem::forget(guard);
                    return Err(TestCaseError::fail(format!(
                        "future {id} on keys {keys:?} gave a guard of {guard_keys:?} \
                         ({distinct} keys)"
                    )));
                }
                self.futures.remove(index);
                self.guards.push(LiveGuard { id, guard });
                self.stop_waiting(id);
            }
            (None, Some(state)) => {
                future.state = state;
                if many && state.waits() {
                    self.many_waits(id, keys)?;
                }
                if state == State::Running && before != State::Running {
                    // A `with_locks` that took its last key.
                    self.stop_waiting(id);
                }
            }
            (Some(guard), Some(state)) => {
                std::mem::forget(guard);
                return Err(TestCaseError::fail(format!(
                    "future {id} on keys {keys:?} became ready in state {before:?}; \
                     the model expects {state:?}"
                )));
            }
            (None, None) => {
                return Err(TestCaseError::fail(format!(
                    "future {id} on keys {keys:?} stayed pending in state {before:?}, \
                     though it holds every key"
                )));
            }
        }
        Ok(())
    }

    /// Polls extend `index` with `task`'s waker and checks the outcome
    /// against the model: a refusal made since its last poll (as a victim,
    /// or at its `enqueue`) is returned at once, and the extend leaves;
    /// else it walks on as a multi-key request does, and is ready with
    /// `Ok` once its guard holds every key; if it must wait, its wait is
    /// recorded, and refused with `Err` if it closes a cycle.
    fn poll_extend(&mut self, index: usize, task: usize) -> Check {
        let future = &mut self.futures[index];
        future.task = Some(task);
        let (id, keys, before) = (future.id, future.keys, future.state);

        // What the model expects: `None` while pending, else the outcome
        // (the keys of the cycle if refused).
        let refusal = self.nodes.get_mut(&id).and_then(|node| node.refused.take());
        let expected = if let Some(cycle) = refusal {
            if before == State::Granted {
                cover(|c| c.refused_then_granted += 1);
            }
            self.counts.deadlocks += 1;
            self.leave(id, keys, before);
            Some(Err(cycle))
        } else {
            let after = match before {
                State::Unpolled | State::Granted => self.walk(id, keys, Some(task)),
                State::Queued | State::Waiting { .. } => Some(State::Waiting { task }),
                State::Taken => None,
                State::Running => unreachable!("an extend has no body"),
            };
            match after {
                None => {
                    self.stop_waiting(id);
                    Some(Ok(()))
                }
                Some(state) => {
                    // Waiting with this task's waker, woken with the others
                    // if its wait is the first.
                    self.futures[index].state = state;
                    self.extend_waits(id, keys)?;
                    let refusal = self.nodes.get_mut(&id).and_then(|node| node.refused.take());
                    refusal.map(|cycle| {
                        cover(|c| c.refused_at_poll += 1);
                        self.counts.deadlocks += 1;
                        self.leave(id, keys, state);
                        Err(cycle)
                    })
                }
            }
        };

        let waker = self.tasks[task].waker.clone();
        let mut cx = Context::from_waker(&waker);
        let Kind::Extend {
            future: extend,
            command,
            guard_keys,
        } = &mut self.futures[index].kind
        else {
            unreachable!("not an extend");
        };
        let guard_keys = *guard_keys;
        command.set(Command::Poll);
        match (extend.as_mut().poll(&mut cx), expected) {
            (Poll::Pending, None) => {
                cover(|c| c.extend_pending += 1);
                Ok(())
            }
            (Poll::Pending, Some(expected)) => Err(TestCaseError::fail(format!(
                "extend {id} on keys {keys:?} stayed pending in state {before:?}; \
                 the model expects {expected:?}"
            ))),
            (Poll::Ready((guard, outcome)), expected) => {
                self.futures.remove(index);
                let held = KeySet::of(guard.keys());
                // The guard goes back to the others, even on a failure, to
                // be leaked with them.
                self.guards.push(LiveGuard { id, guard });
                let outcome = outcome.map(|outcome| outcome.map_err(|e| e.keys().to_vec()));
                prop_assert!(
                    outcome.is_some() && outcome == expected,
                    "extend {} on keys {:?} in state {:?} gave {:?}; the model expects {:?}",
                    id,
                    keys,
                    before,
                    outcome,
                    expected
                );
                // Grown by the keys, or as it was.
                let grown = KeySet(guard_keys.0 | keys.0);
                let expected = if outcome == Some(Ok(())) {
                    grown
                } else {
                    guard_keys
                };
                prop_assert_eq!(held, expected, "keys of the guard of extend {}", id);
                match outcome {
                    Some(Ok(())) => cover(|c| c.extended += 1),
                    Some(Err(cycle)) => {
                        cover(|c| *c.cycle_lengths.entry(cycle.len()).or_default() += 1)
                    }
                    None => {}
                }
                Ok(())
            }
        }
    }

    /// The key among `keys` that `id` waits for: the one in whose queue it
    /// stands behind the head.
    fn waited_key(&self, id: usize, keys: KeySet) -> Option<u8> {
        keys.iter().find(|&key| {
            self.queues[usize::from(key)]
                .iter()
                .skip(1)
                .any(|&x| x == id)
        })
    }

    /// The keys `id` holds: those whose queue it heads (granted but not
    /// polled yet included).
    fn held_by(&self, id: usize) -> KeySet {
        KeySet(
            (0..KEYS)
                .filter(|&key| self.queues[usize::from(key)].front() == Some(&id))
                .fold(0, |set, key| set | 1 << key),
        )
    }

    /// A multi-key request's wait, begun or renewed by a poll, or at its
    /// arrival without one: recorded once an extend has waited, if it
    /// holds a key.
    fn many_waits(&mut self, id: usize, keys: KeySet) -> Check {
        if self.nesting && self.held_by(id).len() > 0 {
            let key = self
                .waited_key(id, keys)
                .expect("model: a wait with no key");
            self.record(id, false, key)?;
        }
        Ok(())
    }

    /// An extend's wait, begun or renewed: the first one of the manager
    /// wakes every waiter that has a waker (so that multi-key requests
    /// poll again, and register); then it is recorded.
    fn extend_waits(&mut self, id: usize, keys: KeySet) -> Check {
        if !self.nesting {
            self.nesting = true;
            cover(|c| c.opens += 1);
            for future in &self.futures {
                if let State::Waiting { task } = future.state {
                    self.wakes[task] += 1;
                }
            }
        }
        let key = self
            .waited_key(id, keys)
            .expect("model: a wait with no key");
        self.record(id, true, key)
    }

    /// The manager records that node `id` (an extend's guard if `extend`,
    /// else a multi-key request) waits for `key`: it marks every key `id`
    /// holds, and looks for a cycle through it, following from each node
    /// the key it waits for to the node that marked it. A cycle found is
    /// refused at once: the extend itself, or, for a multi-key request,
    /// which cannot fail, the youngest extend in the cycle (whose wait was
    /// recorded last), woken through its waiter's waker if it has one.
    fn record(&mut self, id: usize, extend: bool, key: u8) -> Check {
        if !extend && !self.nodes.contains_key(&id) {
            cover(|c| c.registered += 1);
        }
        if self
            .nodes
            .get(&id)
            .is_some_and(|node| node.refused.is_some())
        {
            // Refused already: it waits no more.
            return Ok(());
        }
        for held in self.held_by(id).iter() {
            self.marks[usize::from(held)] = Some(id);
        }
        let node = self.nodes.entry(id).or_insert(Node {
            extend,
            waiting: None,
            since: 0,
            refused: None,
        });
        if node.waiting != Some(key) {
            // A new wait; a poll while it waits for the same key renews
            // nothing.
            self.waits += 1;
            node.since = self.waits;
        }
        (node.extend, node.waiting) = (extend, Some(key));
        let Some(cycle) = self.cycle_from(id) else {
            return Ok(());
        };
        // The manager's graph lags the real one, never leads it: each
        // node on the cycle waits behind the head of its key's queue, and
        // the next one heads it.
        for (at, &(node, key)) in cycle.iter().enumerate() {
            let next = cycle[(at + 1) % cycle.len()].0;
            let queue = &self.queues[usize::from(key)];
            prop_assert!(
                queue.front() == Some(&next) && queue.iter().skip(1).any(|&x| x == node),
                "model: a cycle {:?} of waits that are not real",
                cycle
            );
        }
        let victim = if extend {
            id
        } else {
            let extends: Vec<usize> = (cycle.iter().map(|&(node, _)| node))
                .filter(|node| self.nodes[node].extend)
                .collect();
            if extends.len() > 1 {
                cover(|c| c.victims_picked += 1);
            }
            let victim = extends
                .into_iter()
                .max_by_key(|node| self.nodes[node].since);
            prop_assert!(
                victim.is_some(),
                "model: a cycle {:?} of multi-key requests alone",
                cycle
            );
            victim.unwrap()
        };
        let node = self.nodes.get_mut(&victim).unwrap();
        node.waiting = None;
        node.refused = Some(cycle.iter().map(|&(_, key)| key).collect());
        if !extend {
            cover(|c| c.refused_as_victim += 1);
            let future = self
                .futures
                .iter()
                .find(|f| f.id == victim && f.node() == Some(true))
                .expect("model: a victim with no extend");
            match future.state {
                State::Waiting { task } => self.wakes[task] += 1,
                State::Queued => {}
                state => panic!("model: victim {victim} in state {state:?}"),
            }
        }
        Ok(())
    }

    /// The cycle of recorded waits through node `from`, if any, as each
    /// node on it with the key it waits for. A node waits for one key, so
    /// that the walk has one way to go.
    fn cycle_from(&self, from: usize) -> Option<Vec<(usize, u8)>> {
        let mut path = Vec::new();
        let mut node = from;
        loop {
            let key = self.nodes[&node].waiting?;
            let holder = self.marks[usize::from(key)]?;
            path.push((node, key));
            if holder == from {
                return Some(path);
            }
            if path.iter().any(|&(node, _)| node == holder) {
                return None;
            }
            node = holder;
        }
    }

    /// Extend or request `id` in `state` leaves: its recorded wait (and
    /// any refusal) ends if it arrived, it leaves the queue it waits in
    /// (a cancellation, if it has a waiter) and gives back the keys of
    /// `keys` it holds.
    fn leave(&mut self, id: usize, keys: KeySet, state: State) {
        if state != State::Unpolled {
            self.stop_waiting(id);
        }
        if state.has_waiter() {
            self.counts.cancellations += 1;
        }
        for key in keys.iter() {
            let queue = self.queue(key);
            match queue.iter().position(|&x| x == id) {
                Some(0) => self.release(key),
                Some(at) => {
                    queue.remove(at);
                    self.abandoned += 1;
                }
                None => {}
            }
        }
    }

    /// The recorded wait of node `id`, if any, ends, and any refusal of it:
    /// when its extend or request leaves, or completes.
    fn stop_waiting(&mut self, id: usize) {
        if let Some(node) = self.nodes.get_mut(&id) {
            (node.waiting, node.refused) = (None, None);
        }
    }

    /// The manager forgets node `id`, if it had one, once it has released
    /// its keys.
    fn forget(&mut self, id: usize) -> Check {
        if self.nodes.remove(&id).is_some() {
            prop_assert!(
                !self.marks.contains(&Some(id)),
                "model: node {} forgotten while a key is marked with it: {:?}",
                id,
                self.marks
            );
        }
        Ok(())
    }

    /// The holder of `key` left: the model hands the key to the next
    /// waiter, which is woken, once, through the waker of its latest poll
    /// (if it was polled since it was placed).
    fn release(&mut self, key: u8) {
        self.queue(key).pop_front();
        self.marks[usize::from(key)] = None;
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
                state => panic!("model: a future in state {state:?} behind the head"),
            }
        }
    }

    /// Drops future `index`; an extend gives its guard back, with the
    /// keys it held before the extend.
    fn drop_future(&mut self, index: usize) -> Check {
        let mut future = self.futures.remove(index);
        let (id, keys, state, node) = (future.id, future.keys, future.state, future.node());
        let body_dropped = match &mut future.kind {
            Kind::Body { body_dropped, .. } => Some(body_dropped.clone()),
            Kind::Acquire(_) | Kind::Many(_) => None,
            Kind::Extend {
                future: extend,
                command,
                ..
            } => {
                command.set(Command::Drop);
                let waker = noop_waker();
                match extend.as_mut().poll(&mut Context::from_waker(&waker)) {
                    Poll::Ready((guard, outcome)) => {
                        self.guards.push(LiveGuard { id, guard });
                        prop_assert!(outcome.is_none(), "a dropped extend completed");
                    }
                    Poll::Pending => {
                        std::mem::forget(future);
                        return Err(TestCaseError::fail(format!(
                            "the future driving extend {id} kept its guard at the drop"
                        )));
                    }
                }
                if self
                    .nodes
                    .get(&id)
                    .is_some_and(|node| node.refused.is_some())
                {
                    cover(|c| c.refusals_dropped += 1);
                }
                None
            }
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
        // Hands on every key held, leaves the queue it waits in; a
        // multi-key request (or a running `with_locks`, with its guard) is
        // then forgotten by the graph. An extend's node is its guard's.
        self.leave(id, keys, state);
        if node == Some(false) {
            self.forget(id)?;
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
        self.forget(id)
    }

    /// Takes guard `index` into a new extend over `list`, polled at once
    /// with a new task if `poll`.
    fn extend(&mut self, index: usize, list: &[u8], poll: bool) -> Check {
        let LiveGuard { id, guard } = self.guards.remove(index);
        let guard_keys = KeySet::of(guard.keys());
        cover(|c| c.extends += 1);
        if let Some(node) = self.nodes.get(&id) {
            assert!(
                node.refused.is_none(),
                "model: a refusal outlived its extend"
            );
            if !node.extend {
                cover(|c| c.extends_of_registered += 1);
            }
        }
        let command = Rc::new(Cell::new(Command::Poll));
        let future = Box::pin(extending(guard, list.to_vec(), command.clone()));
        self.futures.push(LiveFuture {
            id,
            list: KeyList::new(list.to_vec()),
            keys: KeySet(KeySet::of(list).0 & !guard_keys.0),
            many: true,
            kind: Kind::Extend {
                future,
                command,
                guard_keys,
            },
            task: None,
            state: State::Unpolled,
        });
        if poll {
            let task = self.new_task();
            self.poll(self.futures.len() - 1, task)?;
        }
        Ok(())
    }

    /// `try_extend` of guard `index` over `list`: takes the keys it does
    /// not hold if they are all free, else nothing.
    fn try_extend(&mut self, index: usize, list: &[u8]) -> Check {
        let LiveGuard { id, guard } = &mut self.guards[index];
        let id = *id;
        let new = KeySet(KeySet::of(list).0 & !KeySet::of(guard.keys()).0);
        let taken = guard.try_extend(list.iter().copied());
        let free = new.iter().all(|key| self.queue(key).is_empty());
        prop_assert_eq!(
            taken,
            free,
            "try_extend({:?}) of guard {} with keys {:?} free",
            list,
            id,
            new
        );
        if taken {
            cover(|c| c.try_extend_taken += 1);
            for key in new.iter() {
                self.join(key, id);
            }
        } else {
            cover(|c| c.try_extend_refused += 1);
            self.counts.busy += 1;
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
            None => {
                prop_assert!(!free, "try_acquire failed on free key {}", key);
                self.counts.busy += 1;
            }
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
            None => {
                prop_assert!(!free, "try_acquire_many failed on free keys {:?}", keys);
                self.counts.busy += 1;
            }
        }
        Ok(())
    }

    /// The model's own invariant for a live future: it holds the keys
    /// before a point in the hash order, waits (in the states that do) for
    /// the key at that point, and is in no queue of the keys after it.
    fn check_model(&self, future: &LiveFuture<'_>) {
        let (id, state) = (future.id, future.state);
        let mut reached = true;
        let mut waiting = false;
        for key in future.keys.in_order(self.order) {
            let at = self.queues[usize::from(key)].iter().position(|&x| x == id);
            assert!(
                reached || at.is_none(),
                "model: future {id} ({state:?}) in the queue of {key}, past its point"
            );
            reached &= at == Some(0);
            waiting |= at.is_some_and(|at| at > 0);
        }
        assert_eq!(
            waiting,
            state.waits(),
            "model: future {id} in state {state:?}"
        );
        if matches!(state, State::Taken | State::Running) {
            assert!(reached, "model: future {id} in state {state:?}");
        }
        if state == State::Unpolled {
            // An extend's id is its guard's, in the queues of its keys.
            let anywhere = match future.kind {
                Kind::Extend { .. } => future
                    .keys
                    .iter()
                    .any(|key| self.queues[usize::from(key)].contains(&id)),
                _ => self.queues.iter().any(|queue| queue.contains(&id)),
            };
            assert!(!anywhere, "model: unpolled future {id} in a queue");
        }
    }

    /// No hang: no cycle of real waits (each request waiting behind the
    /// head of a queue, headed by the next) among extends and multi-key
    /// requests whose current wait the manager has recorded, unrefused. A
    /// request left out has yet to be polled since it was handed a key or
    /// woken to register; polled, it would record its wait and break the
    /// cycle.
    fn check_no_hang(&self) -> Check {
        let recorded: BTreeMap<usize, u8> = self
            .futures
            .iter()
            .filter(|f| f.node().is_some())
            .filter_map(|f| {
                let key = self.waited_key(f.id, f.keys)?;
                let node = self.nodes.get(&f.id)?;
                (node.waiting == Some(key) && node.refused.is_none()).then_some((f.id, key))
            })
            .collect();
        for &start in recorded.keys() {
            let mut path = Vec::new();
            let mut node = start;
            while let Some(&key) = recorded.get(&node) {
                path.push((node, key));
                node = *self.queues[usize::from(key)].front().unwrap();
                prop_assert!(
                    node != start,
                    "a cycle of recorded waits that no refusal broke: {:?}",
                    path
                );
                if path.len() > recorded.len() {
                    break;
                }
            }
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
        let mut stats = locks.stats();
        // With `diagnostics`, one wait measured per hand-off and per waiter
        // dropped while queued (those abandoned), and one hold per release;
        // nothing measured without it.
        let measured = |count| if lock_manager::DIAGNOSTICS { count } else { 0 };
        let abandoned = stats.abandoned.count();
        prop_assert_eq!(abandoned, measured(self.abandoned), "abandoned");
        let waits = measured(stats.handoffs + self.abandoned);
        prop_assert_eq!(stats.waits.count(), waits, "waits");
        prop_assert_eq!(stats.holds.count(), measured(stats.releases), "holds");
        (stats.waits, stats.abandoned, stats.holds) = Default::default();
        let mut hot = [0; KEYS as usize];
        for key in locks.hot_keys(usize::MAX) {
            prop_assert_eq!(key.error, 0, "a hot key overcounted: {:?}", key);
            hot[usize::from(key.key)] = key.contended;
        }
        let expected = self
            .hot
            .map(|count| if lock_manager::DIAGNOSTICS { count } else { 0 });
        prop_assert_eq!(hot, expected, "hot keys");
        prop_assert_eq!(stats, self.counts, "stats");
        // Waiters in the slab: the queued ones and those granted, unpolled;
        // one per future, multi-key or not.
        let waiters = self.futures.iter().filter(|f| f.state.has_waiter()).count();
        prop_assert_eq!(
            debug_counts(locks),
            (locked, waiters),
            "(locked, waiters) in the Debug of {:?}",
            locks
        );

        for (index, task) in self.tasks.iter().enumerate() {
            // A waiting future holds one clone of its latest waker, which
            // the hand-off takes to wake it.
            let waiting = self
                .futures
                .iter()
                .filter(|f| f.state == State::Waiting { task: index })
                .count();
            prop_assert_eq!(
                task.clones_elsewhere(),
                waiting,
                "clones of task {}'s waker held by the manager",
                index
            );
            prop_assert_eq!(task.wakes(), self.wakes[index], "wakes of task {}", index);
        }
        for LiveGuard { id, guard } in &self.guards {
            let held = self.held_by(*id);
            prop_assert_eq!(KeySet::of(guard.keys()), held, "keys of guard {}", id);
            prop_assert_eq!(guard.keys().len(), held.len(), "keys of guard {}", id);
        }
        self.check_no_hang()?;
        for future in &self.futures {
            self.check_model(future);
            if let Kind::Body { started, .. } = &future.kind {
                prop_assert_eq!(
                    started.get(),
                    future.state == State::Running,
                    "body of with_lock(s) future {} started in state {:?}",
                    future.id,
                    future.state
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

/// The order in which a manager with `shards` shards hashing with `hasher`
/// takes the keys, found on a manager of its own (so that the one under
/// test starts with its counters at zero): with key `a` held,
/// `acquire_many([a, b])` polled once takes `b` and queues on `a` if `b`
/// comes first, and otherwise queues on `a` without touching `b`. Fails if
/// that is no strict order, as when two keys of equal hash are taken in
/// one step.
fn hash_order(shards: usize, hasher: Seeded) -> Result<Order, TestCaseError> {
    let locks = Locks::with_shards_and_hasher(shards, hasher);
    let task = Task::new();
    let mut cx = Context::from_waker(&task.waker);
    // `first[a][b]`: `a` is taken before `b`.
    let mut first = [[false; KEYS as usize]; KEYS as usize];
    for a in 0..KEYS {
        for b in (0..KEYS).filter(|&b| b != a) {
            let held = locks.try_acquire(a);
            prop_assert!(held.is_some(), "probe: key {} not free", a);
            let mut both = locks.acquire_many([a, b]);
            prop_assert!(
                Pin::new(&mut both).poll(&mut cx).is_pending(),
                "probe: acquire_many([{}, {}]) ready while {} is held",
                a,
                b,
                a
            );
            prop_assert_eq!(locks.queue_len(&a), 2, "probe: not queued on {}", a);
            first[usize::from(b)][usize::from(a)] = locks.is_locked(&b);
            drop(both);
            drop(held);
            prop_assert_eq!(locks.locked_count(), 0, "probe: keys left held");
        }
    }
    prop_assert_eq!(task.clones_elsewhere(), 0, "probe: a waker clone leaked");
    let mut order: Order = std::array::from_fn(|key| key as u8);
    order.sort_by_key(|&key| Reverse(first[usize::from(key)].iter().filter(|&&x| x).count()));
    for (i, &a) in order.iter().enumerate() {
        for &b in &order[i + 1..] {
            let (a_first, b_first) = (
                first[usize::from(a)][usize::from(b)],
                first[usize::from(b)][usize::from(a)],
            );
            prop_assert!(
                a_first && !b_first,
                "probe: keys {} and {} in no strict order (of equal hash?): {:?}",
                a,
                b,
                first
            );
        }
    }
    Ok(order)
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

/// Runs `ops` on a manager with `shards` shards, hashing with the hasher of
/// `seed`: with one shard, a multi-key request locks one mutex; with many,
/// its keys lie in different shards.
fn run(shards: usize, seed: u64, ops: &Ops) -> Check {
    let hasher = Seeded(seed);
    let order = hash_order(shards, hasher)?;
    let locks = Locks::with_shards_and_hasher(shards, hasher);
    let mut harness = Harness::new(&locks, order);
    harness
        .check()
        .map_err(within(format_args!("hash order {order:?}, at the start")))?;
    for (step, &op) in ops.0.iter().enumerate() {
        harness.apply(op).map_err(within(format_args!(
            "hash order {order:?}, at step {step}, {op:?}"
        )))?;
    }
    harness.drain().map_err(within(format_args!(
        "hash order {order:?}, while dropping what was left"
    )))
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(5000)
}

/// The random cases, each `(shards, seed, ops)`, run as `proptest!` would
/// run them, then a report of how often the extend paths were taken (seen
/// with `--nocapture`).
#[test]
fn matches_the_fifo_model() {
    let mut config = contextualize_config(ProptestConfig {
        cases: cases(),
        // Failing cases are saved to tests/suite/model.proptest-regressions
        // and replayed first on the next run.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    });
    config.test_name = Some(concat!(module_path!(), "::matches_the_fifo_model"));
    config.source_file = Some(file!());
    let strategy = (
        prop_oneof![Just(1), Just(64)],
        any::<u64>(),
        prop_oneof![
            3 => prop::collection::vec(op(MIXED), 0..=MAX_OPS),
            1 => prop::collection::vec(op(NESTING), 0..=MAX_OPS),
        ]
        .prop_map(Ops),
    );
    let mut runner = TestRunner::new(config);
    if let Err(error) = runner.run(&strategy, |(shards, seed, ops)| run(shards, seed, &ops)) {
        panic!("{error}\n{runner}");
    }
    COVERAGE.with(|coverage| eprintln!("extend paths taken: {:#?}", coverage.borrow()));
}

/// Runs a scripted walk in each of the six orders of the keys (the first
/// seeds that give them), with one shard and with many.
fn run_in_every_order(ops: &Ops) {
    let mut orders = Vec::new();
    for seed in 0..1000 {
        let order = hash_order(1, Seeded(seed)).unwrap();
        if !orders.contains(&order) {
            orders.push(order);
            for shards in [1, 64] {
                run(shards, seed, ops).unwrap();
            }
            if orders.len() == 6 {
                return;
            }
        }
    }
    panic!("seeds 0 to 999 give only the orders {orders:?}");
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
    run_in_every_order(&ops);
}

/// A fixed walk through the multi-key paths the random cases must reach,
/// in every order of the keys: duplicates; a request that takes the keys
/// before a held one and leaves those after it untouched, then dropped;
/// one handed the key it waits for and dropped unpolled; one handed a
/// key, polled, walking on to wait for the next one still held (in the
/// orders that have one), moved to another task; a `with_locks` queued at
/// its call, handed its key without a wake-up; and the empty set.
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
        // Takes the keys before 1, queued on 1; dropped: gives them back.
        many(&[2, 1, 0, 2], false),
        DropFuture { future: 0 },
        // Takes 0 if it comes first, queued on 1; handed 1, woken, then
        // dropped unpolled: 1 passes on, to nobody.
        many(&[1, 0], false),
        DropGuard { guard: 0 },
        DropFuture { future: 0 },
        // Two requests queue behind three guards, on their first keys.
        TryAcquire { key: 0 },
        TryAcquire { key: 1 },
        TryAcquire { key: 2 },
        many(&[0, 1, 2], false),
        many(&[2, 0], true),
        // The first moves to another task; the guards go one by one, and
        // it is polled in between: handed its first key, it walks on,
        // taking the free keys and queueing on the next one held.
        Poll {
            future: 0,
            waker: New,
        },
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
        DropGuard { guard: 0 },
        Poll {
            future: 0,
            waker: Same,
        },
        // The `with_locks`, placed at its call, gets a waker; then the
        // first request's guard (in the orders where it completed) hands
        // it its key.
        Poll {
            future: 1,
            waker: New,
        },
        DropGuard { guard: 0 },
        Poll {
            future: 0,
            waker: Shared(0),
        },
        DropFuture { future: 0 },
        many(&[], false),
        DropGuard { guard: 0 },
    ]);
    run_in_every_order(&ops);
}

/// A fixed walk through the single-key placing paths the random cases must
/// reach: a bounded enqueue refused and admitted, `enqueue` on a placed
/// future (and on a `with_lock`) doing nothing, a placed future handed the
/// key without a wake-up, then dropped unpolled or polled to its guard,
/// and a `with_lock` queued at its call.
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
        // A `with_lock`, queued at its call behind the others; placing it:
        // a no-op.
        create(0, true, false),
        place(2, Some(0)),
        // The second placed one is handed the key, dropped unpolled: on to
        // the lazy one, woken.
        DropGuard { guard: 0 },
        DropFuture { future: 0 },
        Poll {
            future: 0,
            waker: Same,
        },
        // Then the `with_lock`, handed the key without a wake-up; its body
        // runs, and is dropped.
        DropGuard { guard: 0 },
        Poll {
            future: 0,
            waker: Shared(0),
        },
        DropFuture { future: 0 },
    ]);
    run_in_every_order(&ops);
}

/// A fixed walk through the multi-key placing paths the random cases must
/// reach, in every order of the keys: a request placed while every key is
/// free, holding them all with no waiter, polled to its guard or dropped;
/// the empty set placed under a bound of 0; bounded requests refused by the
/// first key in the caller's order at the bound (even one the walk would
/// not reach yet); a request placed behind waiters, handed its first key
/// without a wake-up, then polled with a waker between hand-offs, walking
/// on and waiting again (in the orders that have it); and `with_locks`
/// holding every key from its call, or queued at it.
#[test]
fn scripted_place_many_walk() {
    use Op::*;
    use WakerChoice::*;
    let placed = |keys: &[u8], with_locks| CreateMany {
        keys: KeyList::new(keys.to_vec()),
        with_locks,
        poll: false,
    };
    let create = |key| Create {
        key,
        with_lock: false,
        poll: true,
    };
    let place = |future, bound| Place { future, bound };
    let poll = |future, waker| Poll { future, waker };
    let ops = Ops(vec![
        // Every key free: takes them all at the call; its guard at the
        // first poll.
        placed(&[2, 0, 2], false),
        place(0, Some(0)),
        poll(0, New),
        // Takes 1 at the call; dropped unpolled, it gives 1 back.
        placed(&[1], false),
        place(0, None),
        DropFuture { future: 0 },
        // The empty set, under a bound of 0.
        placed(&[], false),
        place(0, Some(0)),
        poll(0, New),
        DropGuard { guard: 1 },
        // A waiter on 2 and two on 0, behind the first guard.
        create(2),
        create(0),
        create(0),
        // Refused by 0, the first key in the caller's order with two
        // waiters (1 is free).
        placed(&[1, 0, 2], false),
        place(3, Some(2)),
        // Refused by 2 at one waiter, though 0 has two.
        placed(&[2, 0], false),
        place(3, Some(1)),
        // A waiter on 1, behind a guard.
        TryAcquire { key: 1 },
        create(1),
        // A request placed behind them all: queued on its first key with
        // no waker, the keys after it untouched.
        placed(&[0, 1, 2], false),
        place(4, None),
        // The guards go: the waiters are handed their keys and woken; the
        // first one on 0, dropped unpolled, hands it to the second.
        DropGuard { guard: 0 },
        DropGuard { guard: 0 },
        DropFuture { future: 1 },
        poll(0, Same),
        poll(0, Same),
        poll(0, Same),
        // Their guards go one at a time (0, 1, then 2), the request polled
        // after each: handed its first key without a wake-up, it then
        // walks on, waiting with a waker for the next key still held.
        DropGuard { guard: 1 },
        poll(0, New),
        DropGuard { guard: 1 },
        poll(0, Same),
        DropGuard { guard: 0 },
        poll(0, Same),
        DropGuard { guard: 0 },
        // A `with_locks` holding its keys from the call: its body runs at
        // the first poll. Another, queued at its call; handed the key
        // without a wake-up when the first is dropped, then polled.
        placed(&[1, 2], true),
        poll(0, New),
        placed(&[2, 0], true),
        DropFuture { future: 0 },
        poll(0, New),
    ]);
    run_in_every_order(&ops);
}

/// A fixed walk through the extend paths the random cases must reach, in
/// every order of the keys (the comments follow the orders where 0 comes
/// before 1): the first extend wait, waking every waiter; a multi-key
/// request registering when polled again, its wait closing a cycle of
/// three, and the extend on it that began to wait last refused and woken
/// (though the other one was polled since), its refusal returned by its
/// next poll, or, in the second walk, dropped with it, a new extend of
/// its guard going on as if none had been; extends refused at their poll,
/// one of them of the guard of the registered request; one refused at its
/// `enqueue`, the refusal returned by its next poll; and `try_extend`
/// refused and taking keys.
#[test]
fn scripted_extend_walk() {
    use Op::*;
    use WakerChoice::*;
    let keys = |keys: &[u8]| KeyList::new(keys.to_vec());
    let extend = |guard, list: &[u8], poll| Extend {
        guard,
        keys: keys(list),
        poll,
    };
    let poll = |future| Poll {
        future,
        waker: Same,
    };
    let prefix = vec![
        // Guards B on 1 and C on 2; request M takes 0, waits for 1.
        TryMany { keys: keys(&[1]) },
        TryMany { keys: keys(&[2]) },
        CreateMany {
            keys: keys(&[0, 1]),
            with_locks: false,
            poll: true,
        },
        // E1 (of B) waits for 2, the first extend wait: M is woken. E2
        // (of C) waits for 0, which M holds unmarked: no cycle yet.
        extend(0, &[2], true),
        extend(0, &[0], true),
        // E1 polled again: the same wait. M, polled, registers: its wait
        // closes M -> B -> C -> M, and E2, which began to wait last, is
        // refused and woken.
        poll(1),
        poll(0),
    ];
    let mut returned = prefix.clone();
    returned.extend([
        // E2's poll returns the refusal; C keeps 2, and goes: E1 is
        // handed 2, and B holds 1 and 2.
        poll(2),
        DropGuard { guard: 0 },
        poll(1),
        // B's extend to 0, held by M, which waits for 1: refused at once.
        extend(0, &[0], true),
        // B goes: M takes 1, its guard holds 0 and 1.
        DropGuard { guard: 0 },
        poll(0),
        // Guard C2 on 2; M's guard waits for it (E3), then C2's extend to
        // 1, placed, closes the cycle: refused at its enqueue, returned
        // by its poll.
        TryMany { keys: keys(&[2]) },
        extend(0, &[2, 0], true),
        extend(0, &[1], false),
        Place {
            future: 1,
            bound: None,
        },
        Poll {
            future: 1,
            waker: New,
        },
        // C2 cannot take 0, held by M's guard; once E3 and that guard are
        // gone, it takes 0 and 1 at once.
        TryExtend {
            guard: 0,
            keys: keys(&[0]),
        },
        DropFuture { future: 0 },
        DropGuard { guard: 1 },
        TryExtend {
            guard: 0,
            keys: keys(&[0, 1, 2]),
        },
    ]);
    let mut dropped = prefix;
    dropped.extend([
        // E2 dropped with its refusal; C's next extends know nothing of
        // it: the empty one is ready, the one to 0 closes C -> M -> B ->
        // C and is refused at its poll.
        DropFuture { future: 2 },
        extend(0, &[], true),
        extend(0, &[0], true),
    ]);
    run_in_every_order(&Ops(returned));
    run_in_every_order(&Ops(dropped));
}
