//! The operations the drivers run, drawn at random: every way to acquire,
//! each awaited to the end or cancelled somewhere along the way, followed by
//! a critical section that checks exclusion and counts its update; and the
//! FIFO probe.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use futures::future::{self, BoxFuture, Either, FutureExt};
use lock_manager::{Deadlock, Error, Guard, MultiLockGuard, OwnedMultiLockGuard, TimedOut};

use crate::shared::{
    add, bump, distinct, probe_key, Deliberate, Driver, Request, Rng, Shared, HOT, PROBE_WAITERS,
};

/// The async runtimes, each with its own timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rt {
    Tokio,
    AsyncStd,
    Smol,
}

impl Rt {
    pub fn driver(self) -> Driver {
        match self {
            Rt::Tokio => Driver::Tokio,
            Rt::AsyncStd => Driver::AsyncStd,
            Rt::Smol => Driver::Smol,
        }
    }

    async fn sleep(self, duration: Duration) {
        match self {
            Rt::Tokio => tokio::time::sleep(duration).await,
            Rt::AsyncStd => async_std::task::sleep(duration).await,
            Rt::Smol => {
                smol::Timer::after(duration).await;
            }
        }
    }

    async fn yield_now(self) {
        match self {
            Rt::Tokio => tokio::task::yield_now().await,
            Rt::AsyncStd => async_std::task::yield_now().await,
            Rt::Smol => smol::future::yield_now().await,
        }
    }

    /// Runs `fut` as a task of the runtime and waits for it to finish; a
    /// panic in the task resumes here.
    async fn spawn(self, fut: BoxFuture<'static, ()>) {
        match self {
            Rt::Tokio => {
                if let Err(failed) = tokio::spawn(fut).await {
                    panic::resume_unwind(failed.into_panic());
                }
            }
            Rt::AsyncStd => async_std::task::spawn(fut).await,
            // Awaited to the end: a smol `Task` dropped undetached cancels
            // the task, releasing at once a guard moved into it.
            Rt::Smol => smol::spawn(fut).await,
        }
    }

    /// The runtime's own timeout: `None` when `fut` was dropped unfinished.
    async fn timeout<F: Future>(self, duration: Duration, fut: F) -> Option<F::Output> {
        match self {
            Rt::Tokio => tokio::time::timeout(duration, fut).await.ok(),
            Rt::AsyncStd => async_std::future::timeout(duration, fut).await.ok(),
            Rt::Smol => match future::select(pin!(fut), smol::Timer::after(duration)).await {
                Either::Left((output, _)) => Some(output),
                Either::Right(_) => None,
            },
        }
    }
}

/// How an acquire future is awaited.
#[derive(Clone, Copy, Debug)]
enum Wait {
    /// To the end.
    Plain,
    /// Raced against a short timer: often dropped while queued.
    Timer(Duration),
    /// Polled once and dropped if not granted then: queued and left at once.
    Once,
    /// Dropped instead of polled the `n`th time. The second poll usually
    /// follows the hand-off's wake-up, so this drops waiters that were
    /// handed the key but never took it, which a timer rarely does.
    DropOnPoll(u32),
}

impl Wait {
    fn random(rng: &mut Rng) -> Self {
        match rng.below(100) {
            0..=54 => Wait::Plain,
            55..=74 => Wait::Timer(Duration::from_micros(rng.below(500))),
            75..=86 => Wait::Once,
            _ => Wait::DropOnPoll(2 + rng.below(2) as u32),
        }
    }
}

/// Drops the wrapped future instead of polling it a given time (see
/// [`Wait::DropOnPoll`]).
struct DropOnPoll<F> {
    inner: Option<Pin<Box<F>>>,
    polls_left: u32,
}

impl<F: Future> Future for DropOnPoll<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.polls_left -= 1;
        if this.polls_left == 0 {
            this.inner = None;
            return Poll::Ready(None);
        }
        let inner = this.inner.as_mut().expect("polled after completion");
        inner.as_mut().poll(cx).map(Some)
    }
}

/// Awaits `fut` as `wait` says: its output, or `None` if it was dropped
/// first (counted as a cancellation).
async fn obtain<F: Future>(rt: Rt, shared: &Shared, fut: F, wait: Wait) -> Option<F::Output> {
    let output = match wait {
        Wait::Plain => Some(fut.await),
        Wait::Timer(limit) => rt.timeout(limit, fut).await,
        Wait::Once => fut.now_or_never(),
        Wait::DropOnPoll(n) => {
            DropOnPoll {
                inner: Some(Box::pin(fut)),
                polls_left: n,
            }
            .await
        }
    };
    if output.is_none() {
        bump(&shared.tally.cancellations);
    }
    output
}

/// How a critical section ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Ok,
    Err,
    /// Panics before its update, or after it (still holding the lock).
    PanicBefore,
    PanicAfter,
}

/// What a critical section does.
#[derive(Clone, Copy, Debug)]
struct Plan {
    yields: u64,
    sleep: Option<Duration>,
    /// Drops the guard before this yield, leaving the update out.
    abandon_at: Option<u64>,
    ending: Ending,
}

impl Plan {
    /// With `endings`, the body may return `Err` or panic (for `with_lock`);
    /// otherwise it returns `Ok`.
    fn random(rng: &mut Rng, endings: bool) -> Self {
        let yields = rng.below(4);
        Plan {
            yields,
            sleep: rng
                .chance(3)
                .then(|| Duration::from_micros(20 + rng.below(200))),
            abandon_at: (yields > 0 && rng.chance(10)).then(|| rng.below(yields)),
            ending: match endings.then(|| rng.below(10)) {
                Some(0..=1) => Ending::Err,
                Some(2) => Ending::PanicBefore,
                Some(3) => Ending::PanicAfter,
                _ => Ending::Ok,
            },
        }
    }
}

/// The body's own error, returned through `with_lock`.
#[derive(Debug)]
struct BodyError;

/// The critical section on `keys` (sorted, merged), holding `guard`: reads
/// each key's counter, lets other tasks run, and writes it back one up,
/// unless `plan` drops the guard halfway.
async fn critical<G>(
    rt: Rt,
    shared: &Shared,
    keys: &[u64],
    guard: G,
    plan: Plan,
) -> Result<(), BodyError> {
    let inside = shared.enter(keys);
    let seen = shared.read(keys);
    for step in 0..plan.yields {
        if plan.abandon_at == Some(step) {
            drop(inside);
            drop(guard);
            bump(&shared.tally.abandoned);
            return Ok(());
        }
        rt.yield_now().await;
    }
    if let Some(sleep) = plan.sleep {
        rt.sleep(sleep).await;
    }
    if plan.ending == Ending::PanicBefore {
        panic::panic_any(Deliberate);
    }
    shared.write(keys, &seen);
    if plan.ending == Ending::PanicAfter {
        panic::panic_any(Deliberate);
    }
    // Unmarked before the lock is released.
    drop(inside);
    drop(guard);
    match plan.ending {
        Ending::Err => Err(BodyError),
        _ => Ok(()),
    }
}

/// Acquires `keys` through `fut`, awaited as `wait` says, and runs the
/// critical section if it was granted; whether it was.
async fn waited<F>(rt: Rt, shared: &Shared, keys: &[u64], fut: F, wait: Wait, plan: Plan) -> bool
where
    F: Future,
    F::Output: Guard<Key = u64>,
{
    let keys = distinct(keys);
    let request = shared.request(keys.len());
    let Some(guard) = obtain(rt, shared, fut, wait).await else {
        return false;
    };
    request.granted();
    let guard = shared.take(guard, &keys);
    let _ = critical(rt, shared, &keys, guard, plan).await;
    true
}

/// A critical section through `with_lock` (one key) or `with_locks`
/// (several), which may return `Err` or panic: the panic is caught here.
async fn with_lock(rt: Rt, shared: &Shared, keys: &[u64], plan: Plan) {
    let locks = &shared.locks;
    let merged = &distinct(keys);
    let request = shared.request(merged.len());
    let body = move || {
        // Called as soon as the keys are granted, in the same poll.
        request.granted();
        shared.granted_keys(merged.len());
        critical(rt, shared, merged, (), plan)
    };
    let run = match keys {
        [key] => locks.with_lock(*key, body).left_future(),
        _ => locks.with_locks(keys.to_vec(), body).right_future(),
    };
    match AssertUnwindSafe(run).catch_unwind().await {
        Ok(Ok(())) => {}
        Ok(Err(BodyError)) => bump(&shared.tally.errors),
        Err(payload) => shared.panicked(payload, true),
    }
}

/// One operation, drawn from `rng`.
async fn operation(rt: Rt, shared: &Arc<Shared>, rng: &mut Rng) {
    let locks = &shared.locks;
    let key = rng.key();
    let one = [key];
    let keys = rng.keys();
    let wait = Wait::random(rng);
    let plan = Plan::random(rng, false);
    match rng.below(110) {
        0..=13 => {
            waited(rt, shared, &one, locks.acquire(key), wait, plan).await;
        }
        14..=19 => {
            waited(rt, shared, &one, locks.acquire_owned(key), wait, plan).await;
        }
        // A single-key guard converted into a multi-key one.
        20..=23 => {
            let fut = locks.acquire_owned(key).map(OwnedMultiLockGuard::from);
            waited(rt, shared, &one, fut, wait, plan).await;
        }
        24..=33 => {
            let fut = locks.acquire_many(keys.iter().copied());
            waited(rt, shared, &keys, fut, wait, plan).await;
        }
        34..=39 => {
            let fut = locks.acquire_many_owned(keys.clone());
            waited(rt, shared, &keys, fut, wait, plan).await;
        }
        // Load shedding: refused at once when `max` already wait. A bound
        // of 0 admits a single key only if free, which the future then
        // already holds: its first poll must return the guard. (Several
        // keys are looked at one at a time before the request takes its
        // place, and another caller may take one in between.)
        40..=49 => {
            let max = rng.below(4) as usize;
            let wait = if max == 0 { Wait::Once } else { wait };
            let which = rng.below(3);
            let placed = match which {
                0 => locks
                    .acquire(key)
                    .enqueue_bounded(max)
                    .map(|fut| waited(rt, shared, &one, fut, wait, plan).boxed()),
                1 => locks
                    .acquire_owned(key)
                    .enqueue_bounded(max)
                    .map(|fut| waited(rt, shared, &one, fut, wait, plan).boxed()),
                _ => locks
                    .acquire_many(keys.iter().copied())
                    .enqueue_bounded(max)
                    .map(|fut| waited(rt, shared, &keys, fut, wait, plan).boxed()),
            };
            match placed {
                Ok(fut) => {
                    if !fut.await && max == 0 && which < 2 {
                        shared.violation("admitted with a bound of 0, yet not granted at once");
                    }
                }
                Err(busy) => {
                    bump(&shared.tally.busy);
                    if busy.waiters() < max {
                        shared.violation(format_args!(
                            "refused with {} waiters, under the bound {max}",
                            busy.waiters()
                        ));
                    }
                }
            }
        }
        // Never waits: refused whenever a key is held.
        50..=55 => match locks.try_acquire(key) {
            Some(guard) => {
                let guard = shared.take(guard, &[key]);
                let _ = critical(rt, shared, &[key], guard, plan).await;
            }
            None => bump(&shared.tally.try_refused),
        },
        56..=61 => {
            let merged = distinct(&keys);
            match locks.try_acquire_many_owned(keys) {
                Some(guard) => {
                    let guard = shared.take(guard, &merged);
                    let _ = critical(rt, shared, &merged, guard, plan).await;
                }
                None => bump(&shared.tally.try_refused),
            }
        }
        62..=73 => {
            let plan = Plan::random(rng, true);
            let keys = if rng.chance(70) { one.to_vec() } else { keys };
            with_lock(rt, shared, &keys, plan).await;
        }
        // The spawnable `with_lock`: the place taken at the call with
        // `enqueue`, then the owned future moved into a task of its own.
        74..=79 => {
            let shared = Arc::clone(shared);
            let task = if rng.chance(70) {
                let queued = locks.acquire_owned(key).enqueue();
                async move { waited(rt, &shared, &one, queued, wait, plan).await }.boxed()
            } else {
                let queued = locks.acquire_many_owned(keys.clone()).enqueue();
                async move { waited(rt, &shared, &keys, queued, wait, plan).await }.boxed()
            };
            rt.spawn(task.map(drop).boxed()).await;
        }
        // The whole operation under a timeout: cancelled while queued, just
        // after the grant, or in the middle of the body.
        80..=99 => {
            let limit = Duration::from_micros(rng.below(2000));
            let whole = match rng.below(3) {
                0 => waited(rt, shared, &one, locks.acquire(key), Wait::Plain, plan)
                    .map(drop)
                    .boxed(),
                1 => {
                    let fut = locks.acquire_many(keys.iter().copied());
                    waited(rt, shared, &keys, fut, Wait::Plain, plan)
                        .map(drop)
                        .boxed()
                }
                _ => with_lock(rt, shared, &one, Plan::random(rng, true)).boxed(),
            };
            if rt.timeout(limit, whole).await.is_none() {
                bump(&shared.tally.cancellations);
            }
        }
        _ => nested(rt, shared, rng).await,
    }
}

/// What a nesting operation takes: its first keys (one, or a few for
/// `acquire_many`), and the keys it extends its guard with later, in
/// random order, now and then one it holds already (which the extend
/// skips) or one listed twice.
struct Nest {
    first: Vec<u64>,
    more: Vec<u64>,
    /// `first`, then `first` and `more`, sorted and merged.
    held: Vec<u64>,
    all: Vec<u64>,
    /// The keys of `more` that `first` lacks: those the extend takes.
    new: Vec<u64>,
}

impl Nest {
    fn random(rng: &mut Rng) -> Self {
        let first = if rng.chance(40) {
            vec![rng.key()]
        } else {
            rng.keys()
        };
        let mut more = rng.keys();
        if rng.chance(20) {
            let at = rng.below(more.len() as u64 + 1) as usize;
            more.insert(at, first[0]);
        }
        let held = distinct(&first);
        let all = distinct(&[first.as_slice(), &more].concat());
        let new = all
            .iter()
            .filter(|key| !held.contains(key))
            .copied()
            .collect();
        Nest {
            first,
            more,
            held,
            all,
            new,
        }
    }
}

/// Nesting: a guard on a key (a single-key guard converted) or a few
/// (`acquire_many`), marked inside its critical section, then grown with
/// `extend` by more keys in random order: awaited as [`Wait`] says, now
/// and then placed first with `enqueue`. A refused extend (`Deadlock`) or
/// one dropped unfinished leaves the guard holding what it held: checked,
/// and the update on those keys still written before the guard is
/// dropped. A granted one runs the critical section on every key.
///
/// Guards here hold keys while they wait for more, in whatever order the
/// draw gives, so they close cycles with one another and with multi-key
/// requests: each must be refused, or the watchdog finds the drivers stuck.
async fn nested(rt: Rt, shared: &Shared, rng: &mut Rng) {
    let locks = &shared.locks;
    let nest = Nest::random(rng);
    let wait = Wait::random(rng);
    let enqueue = rng.chance(30);
    let plan = Plan::random(rng, false);

    let request = shared.request(nest.held.len());
    let guard: MultiLockGuard<'_, u64> = match nest.first.as_slice() {
        [key] if rng.chance(50) => locks.acquire(*key).await.into(),
        first => locks.acquire_many(first.iter().copied()).await,
    };
    request.granted();
    let mut guard = shared.take(guard, &nest.held);
    let inside = shared.enter(&nest.held);
    let seen = shared.read(&nest.held);
    rt.yield_now().await;

    let request = shared.request(nest.new.len());
    let extend = guard.extend(nest.more.iter().copied());
    let extended = if enqueue {
        obtain(rt, shared, extend.enqueue(), wait).await
    } else {
        obtain(rt, shared, extend, wait).await
    };
    let granted = settle(shared, &nest, &guard, request, extended);
    nothing_left(shared, &mut guard);
    // The first keys stayed held throughout, granted or not.
    shared.write(&nest.held, &seen);
    drop(inside);
    if granted {
        let _ = critical(rt, shared, &nest.all, guard, plan).await;
    }
}

/// Checks what an extend left and counts it, `extended` being its output,
/// or `None` if it was dropped unfinished (counted as a cancellation
/// already): whether the guard now holds every key.
fn settle(
    shared: &Shared,
    nest: &Nest,
    guard: &impl Guard<Key = u64>,
    request: Request<'_>,
    extended: Option<Result<(), Deadlock<u64>>>,
) -> bool {
    match extended {
        Some(Ok(())) => {
            request.granted();
            shared.granted_keys(nest.new.len());
            bump(&shared.tally.extended);
            shared.holds(guard, &nest.all);
            return true;
        }
        Some(Err(deadlock)) => {
            bump(&shared.tally.deadlocks);
            shared.holds(guard, &nest.held);
            // A refusal names its cycle's keys; an extend with nothing new
            // to take never waits, so it cannot be refused.
            if deadlock.keys().is_empty() || nest.new.is_empty() {
                shared.violation(format_args!(
                    "an extend of {:?} by {:?} refused: {deadlock}",
                    nest.held, nest.more
                ));
            }
        }
        None => {
            bump(&shared.tally.extends_dropped);
            shared.holds(guard, &nest.held);
        }
    }
    false
}

/// After an extend, granted, refused or dropped: an extend by no keys has
/// nothing to wait for, so it must be granted at its first poll. A refusal
/// left behind by the last one (chosen as a victim just as it was granted,
/// say) would refuse it instead.
fn nothing_left(shared: &Shared, guard: &mut MultiLockGuard<'_, u64>) {
    match guard.extend(std::iter::empty()).now_or_never() {
        Some(Ok(())) => {}
        other => shared.violation(format_args!(
            "an extend by no keys of a guard of {:?}: {other:?}",
            guard.keys()
        )),
    }
}

/// One async task: operations until the deadline. A panic other than the
/// soak's own is a violation, and the task goes on.
pub async fn worker(rt: Rt, shared: Arc<Shared>, seed: u64) {
    let mut rng = Rng::new(seed);
    while shared.running() {
        let op = AssertUnwindSafe(operation(rt, &shared, &mut rng));
        if let Err(payload) = op.catch_unwind().await {
            shared.panicked(payload, false);
        }
        shared.op_done(rt.driver());
    }
}

/// One async task that probes FIFO order every few milliseconds until the
/// deadline (see [`probe`]).
pub async fn prober(rt: Rt, shared: Arc<Shared>, seed: u64) {
    let mut rng = Rng::new(seed);
    while shared.running() {
        rt.sleep(Duration::from_millis(2 + rng.below(10))).await;
        let probe = AssertUnwindSafe(probe(rt, &shared, &mut rng));
        if let Err(payload) = probe.catch_unwind().await {
            shared.panicked(payload, false);
        }
        shared.op_done(rt.driver());
    }
}

/// Checks FIFO where the order is known: holding a hot key, queues waiters
/// of every kind on it one after another (each polled once, in turn), drops
/// a few of them, releases the key, and checks the rest are granted in the
/// order they queued. Other tasks' waiters may queue in between; only the
/// probe's own order is checked.
async fn probe(rt: Rt, shared: &Shared, rng: &mut Rng) {
    let locks = &shared.locks;
    let hot = [rng.below(HOT)];
    let holder = shared.take(locks.acquire(hot[0]).await, &hot);
    let inside = shared.enter(&hot);
    let hot = hot[0];
    // Each waiter records its number when granted, before it releases the
    // key: the next cannot be granted before then, so the record is the
    // order of the grants.
    let order = Mutex::new(Vec::new());
    let order = &order;
    let mut waiters: Vec<(u64, BoxFuture<'_, ()>)> = Vec::new();
    for number in 0..3 + rng.below(PROBE_WAITERS - 2) {
        let plan = Plan::random(rng, false);
        let granted = move |keys: Vec<u64>| {
            order
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(number);
            keys
        };
        let mut waiter = match rng.below(4) {
            0 => async move {
                let guard = shared.take(locks.acquire(hot).await, &[hot]);
                let keys = granted(vec![hot]);
                let _ = critical(rt, shared, &keys, guard, plan).await;
            }
            .boxed(),
            1 => async move {
                let guard = shared.take(locks.acquire_owned(hot).await, &[hot]);
                let keys = granted(vec![hot]);
                let _ = critical(rt, shared, &keys, guard, plan).await;
            }
            .boxed(),
            // Placed by the call itself, not the first poll.
            2 => {
                let fut = locks.acquire(hot).enqueue();
                async move {
                    let guard = shared.take(fut.await, &[hot]);
                    let keys = granted(vec![hot]);
                    let _ = critical(rt, shared, &keys, guard, plan).await;
                }
                .boxed()
            }
            // With a cold key of its own, listed first. The request takes
            // its keys in the manager's order: that key (always free) then
            // the hot one, or the hot one then that key. Either way its
            // first poll queues it on the hot key, and it is granted as
            // soon as the hot key is handed to it. (A cold key that others
            // use may be held, leaving the request queued on it instead.)
            _ => {
                let keys = distinct(&[probe_key(rt as u64, number), hot]);
                async move {
                    let request = shared.request(keys.len());
                    let guard = locks.acquire_many([keys[1], keys[0]]).await;
                    request.granted();
                    let guard = shared.take(guard, &keys);
                    let keys = granted(keys);
                    let _ = critical(rt, shared, &keys, guard, plan).await;
                }
                .boxed()
            }
        };
        // The first poll joins the queue.
        if futures::poll!(&mut waiter).is_ready() {
            shared.violation(format_args!(
                "probe waiter {number} granted key {hot} while the probe holds it"
            ));
        }
        waiters.push((number, waiter));
    }
    let queued = locks.queue_len(&hot);
    if queued < 1 + waiters.len() {
        shared.violation(format_args!(
            "key {hot}: queue_len {queued} with the probe holding it and {} of its waiters queued",
            waiters.len()
        ));
    }
    // Leaving from the middle of the queue keeps everyone else's order.
    waiters.retain(|_| {
        let keep = !rng.chance(20);
        if !keep {
            bump(&shared.tally.cancellations);
        }
        keep
    });
    let expected: Vec<u64> = waiters.iter().map(|&(number, _)| number).collect();
    drop(inside);
    drop(holder);
    future::join_all(waiters.into_iter().map(|(_, waiter)| waiter)).await;
    let granted = std::mem::take(&mut *order.lock().unwrap_or_else(PoisonError::into_inner));
    if granted != expected {
        shared.violation(format_args!(
            "FIFO: key {hot} granted the probe's waiters in the order {granted:?}, \
             they queued in the order {expected:?}"
        ));
    }
    bump(&shared.tally.probes);
    add(&shared.tally.probed_waiters, expected.len() as u64);
}

/// A plain thread: operations through the blocking forms (and the `try`
/// forms) until the deadline, in the same queues as the async tasks.
pub fn blocking_worker(shared: &Arc<Shared>, seed: u64) {
    let mut rng = Rng::new(seed);
    while shared.running() {
        let op = AssertUnwindSafe(|| blocking_operation(shared, &mut rng));
        if let Err(payload) = panic::catch_unwind(op) {
            shared.panicked(payload, false);
        }
        shared.op_done(Driver::Threads);
    }
}

fn blocking_operation(shared: &Arc<Shared>, rng: &mut Rng) {
    let locks = &shared.locks;
    let key = rng.key();
    let keys = rng.keys();
    let merged = distinct(&keys);
    let plan = Plan::random(rng, false);
    let limit = Duration::from_micros(rng.below(500));
    match rng.below(110) {
        0..=24 => critical_blocking(shared, &[key], locks.acquire(key).wait(), plan),
        25..=34 => {
            if let Some(guard) = timed(shared, 1, || locks.acquire(key).wait_timeout(limit)) {
                critical_blocking(shared, &[key], guard, plan);
            }
        }
        35..=49 => critical_blocking(shared, &[key], locks.acquire_owned(key).wait(), plan),
        50..=64 => {
            let guard = locks.acquire_many(keys).wait();
            critical_blocking(shared, &merged, guard, plan);
        }
        65..=72 => {
            let guard = locks.acquire_many_owned(keys).wait();
            critical_blocking(shared, &merged, guard, plan);
        }
        73..=76 => {
            let wait = || locks.acquire_many(keys).wait_timeout(limit);
            if let Some(guard) = timed(shared, merged.len(), wait) {
                critical_blocking(shared, &merged, guard, plan);
            }
        }
        // One key after another, in order, under one deadline: gives up at
        // the first key not granted in time, releasing those it had.
        77..=84 => {
            let deadline = Instant::now() + limit * 4;
            let in_turn: Result<Vec<_>, TimedOut> = merged
                .iter()
                .map(|&key| {
                    let guard = locks.acquire(key).wait_deadline(deadline)?;
                    Ok(shared.take(guard, &[key]))
                })
                .collect();
            match in_turn {
                Ok(guards) => section(shared, &merged, guards, plan),
                Err(TimedOut) => bump(&shared.tally.cancellations),
            }
        }
        85..=88 => match locks.try_acquire(key) {
            Some(guard) => critical_blocking(shared, &[key], MultiLockGuard::from(guard), plan),
            None => bump(&shared.tally.try_refused),
        },
        89..=92 => match locks.try_acquire_owned(key) {
            Some(guard) => critical_blocking(shared, &[key], guard, plan),
            None => bump(&shared.tally.try_refused),
        },
        93..=99 => match locks.try_acquire_many(keys) {
            Some(guard) => critical_blocking(shared, &merged, guard, plan),
            None => bump(&shared.tally.try_refused),
        },
        _ => nested_blocking(shared, rng, plan, limit),
    }
}

/// [`nested`] on a plain thread: the extend waits with `wait`, with
/// `wait_timeout`, or is placed with `enqueue` and waits to a deadline;
/// `try_extend` now and then, which never waits.
fn nested_blocking(shared: &Shared, rng: &mut Rng, plan: Plan, limit: Duration) {
    let locks = &shared.locks;
    let nest = Nest::random(rng);
    let guard: MultiLockGuard<'_, u64> = match nest.first.as_slice() {
        [key] if rng.chance(50) => locks.acquire(*key).wait().into(),
        first => locks.acquire_many(first.iter().copied()).wait(),
    };
    let mut guard = shared.take(guard, &nest.held);
    let inside = shared.enter(&nest.held);
    let seen = shared.read(&nest.held);
    thread::yield_now();

    let request = shared.request(nest.new.len());
    let more = nest.more.iter().copied();
    let extended = match rng.below(10) {
        0..=3 => Ok(guard.extend(more).wait()),
        4..=6 => guard.extend(more).wait_timeout(limit).map(Ok),
        7..=8 => {
            let deadline = Instant::now() + limit;
            guard.extend(more).enqueue().wait_deadline(deadline).map(Ok)
        }
        // All or nothing, now: a refusal changes nothing.
        _ => {
            if !guard.try_extend(more) {
                bump(&shared.tally.try_refused);
                shared.holds(&guard, &nest.held);
                shared.write(&nest.held, &seen);
                return;
            }
            Ok(Ok(()))
        }
    };
    // `Deadlock` is the refusal; `TimedOut` a cancellation.
    let extended = match extended {
        Ok(extended) => Some(extended),
        Err(Error::Deadlock(deadlock)) => Some(Err(deadlock)),
        Err(Error::TimedOut(TimedOut)) => {
            bump(&shared.tally.cancellations);
            None
        }
        Err(other) => {
            shared.violation(format_args!("an extend failed with {other}"));
            None
        }
    };
    let granted = settle(shared, &nest, &guard, request, extended);
    nothing_left(shared, &mut guard);
    shared.write(&nest.held, &seen);
    drop(inside);
    if granted {
        section(shared, &nest.all, guard, plan);
    }
}

/// A blocking wait with a time limit for `keys` distinct keys: its guard,
/// or `None` (a cancellation) when time ran out.
fn timed<G>(shared: &Shared, keys: usize, wait: impl FnOnce() -> Result<G, TimedOut>) -> Option<G> {
    let request = shared.request(keys);
    let guard = wait().ok();
    match guard {
        Some(_) => request.granted(),
        None => bump(&shared.tally.cancellations),
    }
    guard
}

/// [`critical`] on a plain thread, counting the guard in first.
fn critical_blocking<G: Guard<Key = u64>>(shared: &Shared, keys: &[u64], guard: G, plan: Plan) {
    let guard = shared.take(guard, keys);
    section(shared, keys, guard, plan);
}

/// The critical section on a plain thread, holding `guard` (counted in).
fn section<G>(shared: &Shared, keys: &[u64], guard: G, plan: Plan) {
    let inside = shared.enter(keys);
    let seen = shared.read(keys);
    for step in 0..plan.yields {
        if plan.abandon_at == Some(step) {
            drop(inside);
            drop(guard);
            bump(&shared.tally.abandoned);
            return;
        }
        thread::yield_now();
    }
    if let Some(sleep) = plan.sleep {
        thread::sleep(sleep);
    }
    shared.write(keys, &seen);
    drop(inside);
    drop(guard);
}
