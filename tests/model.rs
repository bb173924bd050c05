//! Model-based property test: random sequences of operations on a few keys,
//! driven by hand-polled futures, each step compared with a reference
//! model of per-key FIFO queues (the holder at the front).
//!
//! After every step the test checks, for every key, `is_locked` and
//! `queue_len`; `locked_count` and the number of waiters the manager's
//! `Debug` reports; the exact wake count of every waker ever handed to the
//! manager (only the new head of a queue is woken, once, through the waker
//! of its latest poll); the number of clones of each waker the manager
//! still holds (one per queued future whose latest poll used it); which
//! `with_lock` bodies run; and, on every poll, whether the future is ready:
//! only the head of its key's queue, and only once polled. At the end it
//! drops whatever is left and checks that the manager is empty.
//!
//! `PROPTEST_CASES` overrides the number of cases (5,000 by default).
#![cfg(not(loom))]

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use lock_manager::{Acquire, LockGuard, LockManager};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};

const KEYS: u8 = 3;
const MAX_OPS: usize = 60;

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
    /// Polls a live future.
    Poll { future: usize, waker: WakerChoice },
    /// Drops a live future: unpolled, queued, granted but not yet polled,
    /// or a `with_lock` whose body runs.
    DropFuture { future: usize },
    /// Drops a guard.
    DropGuard { guard: usize },
    /// `try_acquire`; the guard, if any, joins the others.
    TryAcquire { key: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    let waker = prop_oneof![
        3 => Just(WakerChoice::Same),
        1 => Just(WakerChoice::New),
        1 => (0..8usize).prop_map(WakerChoice::Shared),
    ];
    prop_oneof![
        4 => (0..KEYS, prop::bool::weighted(0.3), prop::bool::weighted(0.8))
            .prop_map(|(key, with_lock, poll)| Op::Create { key, with_lock, poll }),
        4 => (0..16usize, waker).prop_map(|(future, waker)| Op::Poll { future, waker }),
        2 => (0..16usize).prop_map(|future| Op::DropFuture { future }),
        2 => (0..16usize).prop_map(|guard| Op::DropGuard { guard }),
        1 => (0..KEYS).prop_map(|key| Op::TryAcquire { key }),
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
    WithLock {
        future: Pin<Box<dyn Future<Output = ()> + 'a>>,
        started: Rc<Cell<bool>>,
        /// Set when the running body is dropped: the key's `queue_len`
        /// at that moment.
        body_dropped: Rc<Cell<Option<usize>>>,
    },
}

/// Lives in a `with_lock` body; records `queue_len` when the body's future
/// is dropped, to check that it is dropped before the lock is released.
struct BodyProbe<'a> {
    locks: &'a Locks,
    key: u8,
    out: Rc<Cell<Option<usize>>>,
}

impl Drop for BodyProbe<'_> {
    fn drop(&mut self) {
        self.out.set(Some(self.locks.queue_len(&self.key)));
    }
}

/// Where a live future stands in the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Never polled: in no queue.
    Unpolled,
    /// Queued behind the head; the manager stores the waker of `task`.
    Waiting { task: usize },
    /// At the head of its queue, handed the key, not polled since.
    Granted,
    /// A `with_lock` at the head whose body runs (and never finishes).
    Running,
}

struct LiveFuture<'a> {
    id: usize,
    key: u8,
    kind: Kind<'a>,
    /// The task of its latest poll.
    task: Option<usize>,
    state: State,
}

struct LiveGuard<'a> {
    id: usize,
    guard: LockGuard<'a, u8>,
}

/// The manager under test, everything alive that uses it, and the model.
struct Harness<'a> {
    locks: &'a Locks,
    tasks: Vec<Task>,
    futures: Vec<LiveFuture<'a>>,
    guards: Vec<LiveGuard<'a>>,
    /// The model: per key, the ids of the holder (front) and the waiters.
    queues: [VecDeque<usize>; KEYS as usize],
    /// Expected wake count of each task.
    wakes: Vec<usize>,
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
            wakes: Vec::new(),
            next_id: 0,
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

    fn apply(&mut self, op: Op) -> Check {
        match op {
            Op::Create {
                key,
                with_lock,
                poll,
            } => {
                self.create(key, with_lock);
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
        }
        self.check()
    }

    fn create(&mut self, key: u8, with_lock: bool) {
        let id = self.next_id();
        let kind = if with_lock {
            let started = Rc::new(Cell::new(false));
            let body_dropped = Rc::new(Cell::new(None));
            let flag = started.clone();
            let (locks, out) = (self.locks, body_dropped.clone());
            let future = self.locks.with_lock(key, move || async move {
                let _probe = BodyProbe { locks, key, out };
                flag.set(true);
                std::future::pending::<()>().await;
            });
            Kind::WithLock {
                future: Box::pin(future),
                started,
                body_dropped,
            }
        } else {
            Kind::Acquire(self.locks.acquire(key))
        };
        self.futures.push(LiveFuture {
            id,
            key,
            kind,
            task: None,
            state: State::Unpolled,
        });
    }

    /// Polls future `index` with `task`'s waker and checks the outcome
    /// against the model.
    fn poll(&mut self, index: usize, task: usize) -> Check {
        let waker = self.tasks[task].waker.clone();
        let mut cx = Context::from_waker(&waker);
        let future = &mut self.futures[index];
        future.task = Some(task);
        let (id, key, before) = (future.id, future.key, future.state);

        // What the model expects: the new state, `None` for a guard.
        let queue = &mut self.queues[usize::from(key)];
        let is_acquire = matches!(future.kind, Kind::Acquire(_));
        let expected = match before {
            State::Unpolled if queue.is_empty() => {
                queue.push_back(id);
                if is_acquire {
                    None
                } else {
                    Some(State::Running)
                }
            }
            State::Unpolled | State::Waiting { .. } => {
                if before == State::Unpolled {
                    queue.push_back(id);
                }
                Some(State::Waiting { task })
            }
            State::Granted if is_acquire => None,
            State::Granted | State::Running => Some(State::Running),
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
            Kind::WithLock { future: body, .. } => {
                prop_assert!(body.as_mut().poll(&mut cx).is_pending());
                future.state = expected.expect("a with_lock future never completes");
            }
        }
        Ok(())
    }

    /// The holder of `key` left: the model hands the key to the next
    /// waiter, whose latest waker must be woken once.
    fn release(&mut self, key: u8) {
        self.queue(key).pop_front();
        if let Some(&next) = self.queue(key).front() {
            let future = self
                .futures
                .iter_mut()
                .find(|f| f.id == next)
                .expect("only futures wait behind the head");
            let State::Waiting { task } = future.state else {
                panic!("model: a non-waiting future behind the head");
            };
            future.state = State::Granted;
            self.wakes[task] += 1;
        }
    }

    fn drop_future(&mut self, index: usize) -> Check {
        let future = self.futures.remove(index);
        let (id, key, state) = (future.id, future.key, future.state);
        let body_dropped = match &future.kind {
            Kind::WithLock { body_dropped, .. } => Some(body_dropped.clone()),
            Kind::Acquire(_) => None,
        };
        drop(future);
        if let Some(body_dropped) = body_dropped {
            // A running body is dropped first, while the key is still held
            // for it: the queue is as long as before the drop.
            let expected = (state == State::Running).then(|| self.queue(key).len());
            prop_assert_eq!(
                body_dropped.get(),
                expected,
                "queue_len of key {} when the body of with_lock future {} was dropped",
                key,
                id
            );
        }
        match state {
            State::Unpolled => {}
            State::Waiting { .. } => {
                let queue = self.queue(key);
                let at = queue.iter().position(|&x| x == id).expect("queued");
                prop_assert!(at > 0, "model: a waiting future at the head");
                queue.remove(at);
            }
            State::Granted | State::Running => {
                prop_assert_eq!(self.queue(key).front(), Some(&id));
                self.release(key);
            }
        }
        Ok(())
    }

    fn drop_guard(&mut self, index: usize) -> Check {
        let LiveGuard { id, guard } = self.guards.remove(index);
        let key = *guard.key();
        drop(guard);
        prop_assert_eq!(self.queue(key).front(), Some(&id));
        self.release(key);
        Ok(())
    }

    fn try_acquire(&mut self, key: u8) -> Check {
        let free = self.queue(key).is_empty();
        match self.locks.try_acquire(key) {
            Some(guard) => {
                prop_assert!(free, "try_acquire took key {} while held", key);
                let id = self.next_id();
                self.queue(key).push_back(id);
                self.guards.push(LiveGuard { id, guard });
            }
            None => prop_assert!(!free, "try_acquire failed on free key {}", key),
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
        // Waiters in the slab: the queued ones and those granted, unpolled.
        let waiters = self
            .futures
            .iter()
            .filter(|f| matches!(f.state, State::Waiting { .. } | State::Granted))
            .count();
        prop_assert_eq!(debug_counts(locks), (locked, waiters), "Debug: {:?}", locks);

        for (index, task) in self.tasks.iter().enumerate() {
            prop_assert_eq!(task.wakes(), self.wakes[index], "wakes of task {}", index);
            let stored = self
                .futures
                .iter()
                .filter(|f| f.state == State::Waiting { task: index })
                .count();
            prop_assert_eq!(
                task.clones_elsewhere(),
                stored,
                "clones of task {}'s waker held by the manager",
                index
            );
        }
        for future in &self.futures {
            if let Kind::WithLock { started, .. } = &future.kind {
                prop_assert_eq!(
                    started.get(),
                    future.state == State::Running,
                    "body of with_lock future {} started in state {:?}",
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

fn run(ops: &Ops) -> Check {
    let locks = Locks::new();
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
        // Failing cases are saved to tests/model.proptest-regressions and
        // replayed first on the next run.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn matches_the_fifo_model(ops in prop::collection::vec(op(), 0..=MAX_OPS).prop_map(Ops)) {
        run(&ops)?;
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
    run(&ops).unwrap();
}
