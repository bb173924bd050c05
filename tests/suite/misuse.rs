//! Misuse, faults and bad input: each case has a defined outcome, and the
//! manager stays consistent and usable for every other key afterwards.
//!
//! Everything here is polled by hand (no runtime), so it also runs under
//! miri (`scripts/miri.sh`). Cases that could deadlock on a regression run
//! on a thread behind a watchdog, so that they fail instead of hanging.
use std::collections::hash_map::RandomState;
use std::fmt::Debug;
use std::hash::{BuildHasher, Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::task::{Poll, RawWaker, RawWakerVTable, Wake, Waker};
use std::time::Duration;

use crate::common::{in_take_order, take_order, Task};
use futures::future::{FusedFuture, FutureExt};
use lock_manager::{Guard, LockManager, OwnedLockGuard};

// ---------------------------------------------------------------------------
// Helpers.

/// The `waiters` count printed by the manager's `Debug`.
fn waiters<K, S>(locks: &LockManager<K, S>) -> usize {
    let debug = format!("{locks:?}");
    let count = debug
        .split("waiters: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no waiter count in {debug}"));
    let digits: String = count.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

/// The text of a panic payload.
fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "<non-string panic>".to_string()
    }
}

/// Runs `f`, expecting it to panic with a message containing `expected`.
#[track_caller]
fn expect_panic<T>(expected: &str, f: impl FnOnce() -> T) {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic containing {expected:?}"),
        Err(payload) => {
            let text = message(payload);
            assert!(
                text.contains(expected),
                "panic {text:?} does not contain {expected:?}"
            );
        }
    }
}

/// Each task's wake count.
fn wakes<const N: usize>(tasks: &[Task; N]) -> [usize; N] {
    std::array::from_fn(|i| tasks[i].wakes())
}

#[track_caller]
fn ready<T>(poll: Poll<T>) -> T {
    match poll {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("expected Ready"),
    }
}

/// Runs `f` on its own thread and fails, instead of hanging, if it does not
/// finish in time: a deadlock on the manager's mutex shows up here.
fn watchdog<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, wait) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = done.send(f());
    });
    match wait.recv_timeout(Duration::from_secs(30)) {
        Ok(value) => {
            worker.join().unwrap();
            value
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the worker sends before it ends"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("deadlock: the body did not finish within 30 s")
        }
    }
}

/// Checks that `key` (held by nobody) locks, queues, hands over and frees
/// normally, leaving `locked_count` as it found it.
#[track_caller]
fn assert_key_works<K, S>(locks: &LockManager<K, S>, key: K)
where
    K: Eq + Hash + Clone + Debug,
    S: BuildHasher,
{
    let before = locks.locked_count();
    let waiters_before = waiters(locks);
    let holder = locks.try_acquire(key.clone()).expect("a fresh key is free");
    let task = Task::new();
    let mut waiter = locks.acquire(key.clone());
    assert!(task.poll(&mut waiter).is_pending());
    assert_eq!(locks.queue_len(&key), 2);
    drop(holder);
    assert_eq!(task.wakes(), 1, "the waiter on {key:?} was woken once");
    drop(ready(task.poll(&mut waiter)));
    assert!(!locks.is_locked(&key));
    assert_eq!(locks.locked_count(), before);
    assert_eq!(waiters(locks), waiters_before);
}

// ---------------------------------------------------------------------------
// Keys whose `Hash`, `Eq` or `Clone` panic.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bomb {
    None,
    Hash,
    Eq,
    Clone,
}

#[derive(Debug)]
struct BombKey {
    id: u32,
    bomb: Bomb,
}

fn key(id: u32) -> BombKey {
    BombKey {
        id,
        bomb: Bomb::None,
    }
}

fn bomb(id: u32, bomb: Bomb) -> BombKey {
    BombKey { id, bomb }
}

impl Hash for BombKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        assert!(self.bomb != Bomb::Hash, "hash exploded");
        self.id.hash(state);
    }
}

impl PartialEq for BombKey {
    fn eq(&self, other: &Self) -> bool {
        assert!(
            self.bomb != Bomb::Eq && other.bomb != Bomb::Eq,
            "eq exploded"
        );
        self.id == other.id
    }
}

impl Eq for BombKey {}

impl Clone for BombKey {
    fn clone(&self) -> Self {
        assert!(self.bomb != Bomb::Clone, "clone exploded");
        Self {
            id: self.id,
            bomb: self.bomb,
        }
    }
}

#[test]
fn a_panicking_hash_reaches_the_caller_and_changes_nothing() {
    let locks = LockManager::new();
    let holder = locks.try_acquire(key(1)).unwrap();
    let task = Task::new();
    let mut waiter = locks.acquire(key(1));
    assert!(task.poll(&mut waiter).is_pending());

    expect_panic("hash exploded", || locks.try_acquire(bomb(2, Bomb::Hash)));
    expect_panic("hash exploded", || locks.is_locked(&bomb(2, Bomb::Hash)));
    expect_panic("hash exploded", || locks.queue_len(&bomb(1, Bomb::Hash)));
    // A key is hashed when its future is made.
    expect_panic("hash exploded", || locks.acquire(bomb(1, Bomb::Hash)));
    expect_panic("hash exploded", || {
        locks.acquire(bomb(1, Bomb::Hash)).enqueue_bounded(9)
    });

    // Nothing changed, and the mutex still works (no poisoning).
    assert_eq!(locks.locked_count(), 1);
    assert_eq!(locks.queue_len(&key(1)), 2);
    assert_eq!(waiters(&locks), 1);
    drop(holder);
    assert_eq!(task.wakes(), 1);
    drop(ready(task.poll(&mut waiter)));
    assert_eq!(locks.locked_count(), 0);
    assert_key_works(&locks, key(1));
    assert_key_works(&locks, key(2));
}

#[test]
fn a_panicking_eq_reaches_the_caller_and_changes_nothing() {
    let locks = LockManager::new();
    let holder = locks.try_acquire(key(1)).unwrap();
    let task = Task::new();
    let mut waiter = locks.acquire(key(1));
    assert!(task.poll(&mut waiter).is_pending());

    // `Eq` runs only against a held key with the same hash.
    expect_panic("eq exploded", || locks.try_acquire(bomb(1, Bomb::Eq)));
    expect_panic("eq exploded", || locks.is_locked(&bomb(1, Bomb::Eq)));
    let mut acquire = locks.acquire(bomb(1, Bomb::Eq));
    expect_panic("eq exploded", || Task::new().poll(&mut acquire));
    assert!(acquire.is_terminated());
    drop(acquire);

    assert_eq!(locks.queue_len(&key(1)), 2);
    assert_eq!(waiters(&locks), 1);
    drop(holder);
    assert_eq!(task.wakes(), 1, "the queue survived the panics");
    drop(ready(task.poll(&mut waiter)));
    assert_eq!(locks.locked_count(), 0);
    assert_key_works(&locks, key(1));
    assert_key_works(&locks, key(3));
}

#[test]
fn a_panicking_clone_reaches_the_caller_and_changes_nothing() {
    let locks = LockManager::new();
    // Free key: the manager clones the key to keep a copy.
    expect_panic("clone exploded", || locks.try_acquire(bomb(1, Bomb::Clone)));
    let mut acquire = locks.acquire(bomb(1, Bomb::Clone));
    expect_panic("clone exploded", || Task::new().poll(&mut acquire));
    assert!(acquire.is_terminated());
    drop(acquire);
    assert_eq!(locks.locked_count(), 0);

    // Contended key: still nothing queued.
    let holder = locks.try_acquire(key(1)).unwrap();
    let mut acquire = locks.acquire(bomb(1, Bomb::Clone));
    expect_panic("clone exploded", || Task::new().poll(&mut acquire));
    drop(acquire);
    assert_eq!(locks.queue_len(&key(1)), 1);
    assert_eq!(waiters(&locks), 0);
    drop(holder);
    assert_eq!(locks.locked_count(), 0);
    assert_key_works(&locks, key(1));
}

/// A key mutated after it was locked, through a shared salt that both its
/// `Hash` and `Eq` read. The manager's own copy (made by `Clone`) keeps the
/// salt it had when copied, so once the salt turns, the caller's key no
/// longer finds the manager's: exactly what an inconsistent `Hash` does.
#[derive(Debug)]
struct Shifty {
    id: u32,
    salt: Arc<AtomicU64>,
}

impl Shifty {
    fn new(id: u32, salt: &Arc<AtomicU64>) -> Self {
        Self {
            id,
            salt: salt.clone(),
        }
    }

    fn salt(&self) -> u64 {
        self.salt.load(Ordering::SeqCst)
    }
}

impl Clone for Shifty {
    fn clone(&self) -> Self {
        let salt = Arc::new(AtomicU64::new(self.salt()));
        Self::new(self.id, &salt)
    }
}

impl Hash for Shifty {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.id, self.salt()).hash(state);
    }
}

impl PartialEq for Shifty {
    fn eq(&self, other: &Self) -> bool {
        (self.id, self.salt()) == (other.id, other.salt())
    }
}

impl Eq for Shifty {}

#[test]
fn a_key_whose_hash_changes_strands_only_its_own_entry() {
    // One shard: with several, a changed hash may also point at another
    // shard (see the next test).
    let locks = LockManager::with_shards(1);
    let salt = Arc::new(AtomicU64::new(0));

    // The key changes, and the manager's copy (a clone, which keeps the
    // old salt) no longer equals it: release finds nothing, though it
    // looks with the hash kept from the acquire. The key stays locked.
    let guard = locks.try_acquire(Shifty::new(1, &salt)).unwrap();
    salt.store(1, Ordering::SeqCst);
    drop(guard);
    assert_eq!(locks.locked_count(), 1, "the stale entry stays");

    // Cancelling a queued waiter whose key changed panics clearly; the
    // waiter stays queued on the stale entry.
    salt.store(2, Ordering::SeqCst);
    let holder = locks.try_acquire(Shifty::new(1, &salt)).unwrap();
    let mut waiter = locks.acquire(Shifty::new(1, &salt));
    assert!(Task::new().poll(&mut waiter).is_pending());
    salt.store(3, Ordering::SeqCst);
    expect_panic("a waiter's key was lost", || drop(waiter));
    drop(holder);
    assert_eq!(locks.locked_count(), 2);
    assert_eq!(waiters(&locks), 1);

    // Other keys, and the same id under a fresh hash, are unaffected.
    let fresh = Arc::new(AtomicU64::new(9));
    assert_key_works(&locks, Shifty::new(2, &fresh));
    assert_key_works(&locks, Shifty::new(1, &fresh));
}

/// With several shards, a key whose hash changed would point at another
/// shard, where its waiter's slot index belongs to some other key's waiter,
/// if the hash were computed again. Whatever the misbehaving key's own
/// fate, that other waiter must keep its waker, its grant and its place.
/// (A waiter is found by the hash recorded when its future was made.)
///
/// No slot is looked at: each shard has its own slab, which starts empty,
/// so on two shards the innocent `v` (the first waiter in its shard, behind
/// a holder) and a `w` queued first in the other shard both sit at index 0.
/// Which shard a salt sends `w`'s key to is unknown, so the scenario runs
/// for every two neighbouring salts of a range, in both orders: once the
/// range reaches both shards (all but certain for 16 salts), some run
/// queues `w` in the other shard and then turns its key towards `v`'s.
/// Every run must leave `v` untouched.
#[test]
fn a_key_whose_hash_changes_never_touches_another_keys_waiter() {
    const SALTS: u64 = 16;
    let turns = (1..SALTS).flat_map(|salt| [(salt - 1, salt), (salt, salt - 1)]);
    for (queued_at, turned_to) in turns {
        for innocent_granted in [false, true] {
            let ctx = format!(
                "salt {queued_at} turned to {turned_to}, innocent_granted = {innocent_granted}"
            );
            let locks = LockManager::with_shards(2);
            let innocent_salt = Arc::new(AtomicU64::new(0));
            let innocent = || Shifty::new(100, &innocent_salt);
            let mut innocent_holder = Some(locks.try_acquire(innocent()).unwrap());
            let v_task = Task::new();
            let mut v = locks.acquire(innocent());
            assert!(v_task.poll(&mut v).is_pending());

            let salt = Arc::new(AtomicU64::new(queued_at));
            let w_holder = locks.try_acquire(Shifty::new(1, &salt)).unwrap();
            let mut w = locks.acquire(Shifty::new(1, &salt));
            assert!(Task::new().poll(&mut w).is_pending());
            if innocent_granted {
                drop(innocent_holder.take());
                assert_eq!(v_task.wakes(), 1, "{ctx}");
            }

            // `w`'s key now hashes elsewhere (for some runs, into `v`'s
            // shard). Poll `w` from another task, drop it, release its key:
            // each may panic or be ignored.
            salt.store(turned_to, Ordering::SeqCst);
            let stolen = catch_unwind(AssertUnwindSafe(|| Task::new().poll(&mut w).is_ready()));
            let _ = catch_unwind(AssertUnwindSafe(|| drop(w)));
            let _ = catch_unwind(AssertUnwindSafe(|| drop(w_holder)));
            drop(innocent_holder);

            // Collected rather than asserted one by one: a broken `v` must
            // be forgotten before panicking, or its drop panics during
            // unwinding.
            let mut problems = Vec::new();
            if matches!(stolen, Ok(true)) {
                problems.push("a waiter on another key was handed `v`'s grant".to_string());
            }
            if v_task.wakes() != 1 {
                problems.push(format!(
                    "`v` was woken {} times through its own waker, not once",
                    v_task.wakes()
                ));
            }
            match catch_unwind(AssertUnwindSafe(|| v_task.poll(&mut v))) {
                Ok(Poll::Ready(guard)) => drop(guard),
                Ok(Poll::Pending) => problems.push("`v` was not granted the key".to_string()),
                Err(panic) => problems.push(format!("polling `v` panicked: {}", message(panic))),
            }
            if !problems.is_empty() {
                std::mem::forget(v);
                panic!("{ctx}: {problems:?}");
            }
            drop(v);
            assert!(!locks.is_locked(&innocent()), "{ctx}");
        }
    }
}

// ---------------------------------------------------------------------------
// Wakers that panic.

struct PanicOnWake;

impl Wake for PanicOnWake {
    fn wake(self: Arc<Self>) {
        panic!("wake exploded");
    }
}

#[test]
fn a_panicking_wake_propagates_from_the_release_after_the_hand_off() {
    let locks = LockManager::new();
    let holder = locks.try_acquire("k").unwrap();
    let bad = Waker::from(Arc::new(PanicOnWake));
    let mut a = locks.acquire("k");
    assert!(a
        .poll_unpin(&mut std::task::Context::from_waker(&bad))
        .is_pending());
    let b_task = Task::new();
    let mut b = locks.acquire("k");
    assert!(b_task.poll(&mut b).is_pending());

    expect_panic("wake exploded", || drop(holder));
    // The key was handed to `a` before its waker ran.
    assert!(locks.is_locked("k"));
    assert_eq!(locks.queue_len("k"), 2);
    assert_eq!(b_task.wakes(), 0);
    assert!(b_task.poll(&mut b).is_pending(), "b must not overtake a");
    let a_guard = ready(Task::new().poll(&mut a));
    assert_eq!(locks.queue_len("k"), 2);

    drop(a_guard);
    assert_eq!(b_task.wakes(), 1);
    drop(ready(b_task.poll(&mut b)));
    assert_eq!(locks.locked_count(), 0);
    assert_eq!(waiters(&locks), 0);
    assert_key_works(&locks, "k");
    assert_key_works(&locks, "other");
}

#[test]
fn a_panicking_wake_propagates_from_a_cancelled_grant_after_the_hand_off() {
    let locks = LockManager::new();
    let holder = locks.try_acquire("k").unwrap();
    let a_task = Task::new();
    let mut a = locks.acquire("k");
    assert!(a_task.poll(&mut a).is_pending());
    let bad = Waker::from(Arc::new(PanicOnWake));
    let mut b = locks.acquire("k");
    assert!(b
        .poll_unpin(&mut std::task::Context::from_waker(&bad))
        .is_pending());

    drop(holder); // granted to `a`
    assert_eq!(a_task.wakes(), 1);
    // `a` gives up its grant: the key passes to `b`, whose waker panics.
    expect_panic("wake exploded", || drop(a));
    assert_eq!(locks.queue_len("k"), 1);
    drop(ready(Task::new().poll(&mut b)));
    assert_eq!(locks.locked_count(), 0);
    assert_eq!(waiters(&locks), 0);
    assert_key_works(&locks, "k");
}

// ---------------------------------------------------------------------------
// Wakers that run code on clone, wake and drop.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Clone,
    Wake,
    WakeByRef,
    Drop,
}

const EVENTS: [Event; 4] = [Event::Clone, Event::Wake, Event::WakeByRef, Event::Drop];

/// What a hooked waker shares between its clones: counts, and the code to
/// run on each event.
struct Hooks {
    counts: [AtomicUsize; 4],
    on: Box<dyn Fn(Event) + Send + Sync>,
}

impl Hooks {
    fn count(&self, event: Event) -> usize {
        self.counts[event as usize].load(Ordering::SeqCst)
    }

    fn fire(&self, event: Event) {
        self.counts[event as usize].fetch_add(1, Ordering::SeqCst);
        (self.on)(event);
    }
}

static HOOKED: RawWakerVTable =
    RawWakerVTable::new(hook_clone, hook_wake, hook_wake_by_ref, hook_drop);

// SAFETY (all four): `data` comes from `Arc::into_raw` of an `Arc<Hooks>`,
// and every `RawWaker` made with this vtable owns one strong count of it.
unsafe fn hook_clone(data: *const ()) -> RawWaker {
    // The hook first: if it panics, no count is taken.
    (*data.cast::<Hooks>()).fire(Event::Clone);
    Arc::increment_strong_count(data.cast::<Hooks>());
    RawWaker::new(data, &HOOKED)
}

unsafe fn hook_wake(data: *const ()) {
    // The count is given back even if the hook panics.
    let hooks = Arc::from_raw(data.cast::<Hooks>());
    hooks.fire(Event::Wake);
}

unsafe fn hook_wake_by_ref(data: *const ()) {
    (*data.cast::<Hooks>()).fire(Event::WakeByRef);
}

unsafe fn hook_drop(data: *const ()) {
    let hooks = Arc::from_raw(data.cast::<Hooks>());
    hooks.fire(Event::Drop);
}

/// A waker that runs `on` for every clone, wake and drop, and the counts.
fn hooked(on: impl Fn(Event) + Send + Sync + 'static) -> (Waker, Arc<Hooks>) {
    let hooks = Arc::new(Hooks {
        counts: Default::default(),
        on: Box::new(on),
    });
    let data = Arc::into_raw(hooks.clone()).cast::<()>();
    // SAFETY: the vtable's contract above; `data` owns one strong count.
    let waker = unsafe { Waker::from_raw(RawWaker::new(data, &HOOKED)) };
    (waker, hooks)
}

fn counts(hooks: &Hooks) -> [usize; 4] {
    EVENTS.map(|event| hooks.count(event))
}

type Locks = LockManager<u32>;

/// Keys the re-entrant hooks use; the scenarios contend on `K`.
const K: u32 = 1;
const STASHED: u32 = 20;

/// Calls back into the manager from a waker's clone, wake or drop: reads
/// its state, locks and frees a free key, takes a key through a future, and
/// drops a guard it was given (which may hand a key over and wake someone).
struct Reenter {
    locks: Weak<Locks>,
    /// Events to react to; the others are only counted.
    on: Vec<Event>,
    /// Guards to drop, one per reaction, last first.
    stash: Mutex<Vec<OwnedLockGuard<u32>>>,
    /// What each reaction saw: `try_acquire(K)` succeeding or not.
    saw: Mutex<Vec<(Event, bool)>>,
    /// Reactions that ran with the manager's mutex held.
    violations: Mutex<Vec<String>>,
}

impl Reenter {
    fn new(locks: &Arc<Locks>, on: &[Event]) -> Arc<Self> {
        Arc::new(Self {
            locks: Arc::downgrade(locks),
            on: on.to_vec(),
            stash: Mutex::default(),
            saw: Mutex::default(),
            violations: Mutex::default(),
        })
    }

    fn waker(self: &Arc<Self>) -> (Waker, Arc<Hooks>) {
        let this = self.clone();
        hooked(move |event| this.react(event))
    }

    fn react(&self, event: Event) {
        if !self.on.contains(&event) {
            return;
        }
        let Some(locks) = self.locks.upgrade() else {
            return;
        };
        // `Debug` never blocks: `<locked>` means this thread holds the
        // mutex (nothing else runs here), and the calls below would
        // deadlock.
        let debug = format!("{locks:?}");
        if debug.contains("<locked>") {
            self.violations
                .lock()
                .unwrap()
                .push(format!("{event:?} ran under the manager's mutex"));
            return;
        }
        let _ = locks.is_locked(&K);
        let _ = locks.queue_len(&K);
        let _ = locks.locked_count();
        drop(locks.try_acquire_owned(100).expect("100 is free"));
        drop(locks.acquire(101).now_or_never().expect("101 is free"));
        let got_k = locks.try_acquire(K).is_some();
        self.saw.lock().unwrap().push((event, got_k));
        let guard = self.stash.lock().unwrap().pop();
        drop(guard);
    }

    /// Fails if any reaction so far ran under the manager's mutex.
    #[track_caller]
    fn assert_clean(&self) {
        let violations = self.violations.lock().unwrap();
        assert!(violations.is_empty(), "{violations:?}");
    }

    /// What each reaction saw; checks [`Reenter::assert_clean`] first.
    #[track_caller]
    fn saw(&self) -> Vec<(Event, bool)> {
        self.assert_clean();
        self.saw.lock().unwrap().clone()
    }
}

/// How many of the clones the manager made of a hooked waker are still
/// alive: neither woken by value nor dropped. The tests never clone a
/// hooked waker themselves; `handles_dropped` is how many of their own
/// handles they dropped, each of which counts a drop too.
fn clones_left(hooks: &Hooks, handles_dropped: usize) -> usize {
    hooks.count(Event::Clone) + handles_dropped
        - hooks.count(Event::Wake)
        - hooks.count(Event::Drop)
}

/// A waiter queued on a held key keeps one clone of its task's waker, made
/// when it is queued (under the shard's mutex, so a waker's `clone` must
/// not call back into the manager) and never again while the task stays
/// the same. Moving to another task's waker clones that one and drops the
/// old clone, only once the mutex is released: the drop hook calls back
/// into the manager, after checking through its `Debug` that no mutex is
/// held (a drop under the mutex is recorded as a violation instead, as
/// calling back would deadlock). The hand-off then wakes the waiter through
/// its newest waker, once, and taking the grant clones nothing.
#[test]
fn a_queued_waiter_clones_its_waker_once_and_drops_the_old_one_outside_the_mutex() {
    watchdog(|| {
        let locks = Arc::new(Locks::new());
        let reenter = Reenter::new(&locks, &[Event::Drop]);
        let (waker, hooks) = reenter.waker();
        let holder = locks.try_acquire_owned(K).unwrap();

        // Queueing on a held key clones the waker once, to keep.
        let mut waiter = locks.acquire_owned(K);
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(waiter.poll_unpin(&mut cx).is_pending());
        assert_eq!(counts(&hooks), [1, 0, 0, 0], "one clone, kept");

        // Spurious polls with the same waker clone nothing.
        for _ in 0..3 {
            assert!(waiter.poll_unpin(&mut cx).is_pending());
        }
        assert_eq!(counts(&hooks), [1, 0, 0, 0], "no clone per poll");

        // Another task's waker: cloned, and the old clone dropped, with the
        // mutex released (the hook re-entered the manager and found `K`
        // still held by `holder`).
        let (other, other_hooks) = reenter.waker();
        let mut other_cx = std::task::Context::from_waker(&other);
        assert!(waiter.poll_unpin(&mut other_cx).is_pending());
        assert_eq!(counts(&other_hooks), [1, 0, 0, 0], "the new waker, cloned");
        assert_eq!(counts(&hooks), [1, 0, 0, 1], "the old clone, dropped");
        assert_eq!(reenter.saw(), [(Event::Drop, false)]);
        assert!(waiter.poll_unpin(&mut other_cx).is_pending());
        assert_eq!(counts(&other_hooks), [1, 0, 0, 0], "no clone per poll");
        assert_eq!(locks.queue_len(&K), 2, "still one waiter");

        // The hand-off wakes through the newest waker only, consuming its
        // clone; taking the grant clones nothing.
        drop(holder);
        assert_eq!(
            counts(&other_hooks)[1] + counts(&other_hooks)[2],
            1,
            "woken once"
        );
        assert_eq!(counts(&hooks), [1, 0, 0, 1], "the old waker was not woken");
        let guard = ready(waiter.poll_unpin(&mut other_cx));
        assert_eq!(other_hooks.count(Event::Clone), 1);
        assert_eq!(clones_left(&hooks, 0), 0);
        assert_eq!(
            clones_left(&other_hooks, 0),
            0,
            "the manager keeps no clone"
        );
        drop(guard);
        assert_eq!(reenter.saw(), [(Event::Drop, false)], "no other drop ran");

        // The test's own handles: dropped here, free to re-enter (and to
        // take the now free `K`).
        drop((waker, other));
        assert_eq!(
            reenter.saw(),
            [
                (Event::Drop, false),
                (Event::Drop, true),
                (Event::Drop, true)
            ]
        );
        assert_eq!(clones_left(&hooks, 1), 0);
        assert_eq!(clones_left(&other_hooks, 1), 0);
        assert_eq!(locks.locked_count(), 0);
        assert_eq!(waiters(&*locks), 0);
        assert_key_works(&*locks, K);
    });
}

/// An acquire that finds its key free takes it without touching the waker:
/// no clone, no wake, no drop. This holds for every way to acquire, and
/// whatever the thread's earlier acquires did (here, one just waited).
#[test]
fn an_acquire_of_a_free_key_clones_no_waker() {
    let locks = Arc::new(Locks::new());
    let (waker, hooks) = hooked(|_| {});
    let mut cx = std::task::Context::from_waker(&waker);

    // An acquire that waited, on this thread, through another waker.
    let holder = locks.try_acquire(K).unwrap();
    let task = Task::new();
    let mut first = locks.acquire(K);
    assert!(task.poll(&mut first).is_pending());
    drop(holder);
    drop(ready(task.poll(&mut first)));

    // Free keys, every way.
    let guard = ready(locks.acquire(K).poll_unpin(&mut cx));
    let owned = ready(locks.acquire_owned(K + 1).poll_unpin(&mut cx));
    let mut bounded = locks.acquire(K + 2).enqueue_bounded(0).expect("free");
    let bounded = ready(bounded.poll_unpin(&mut cx));
    let mut owned_bounded = locks.acquire_owned(K + 3).enqueue_bounded(0).expect("free");
    let owned_bounded = ready(owned_bounded.poll_unpin(&mut cx));
    let many = ready(locks.acquire_many([K + 4, K + 5]).poll_unpin(&mut cx));
    let many_owned = ready(locks.acquire_many_owned([K + 6, K + 7]).poll_unpin(&mut cx));
    let mut many_bounded = locks
        .acquire_many([K + 8, K + 9])
        .enqueue_bounded(0)
        .expect("free");
    let many_bounded = ready(many_bounded.poll_unpin(&mut cx));
    assert_eq!(locks.locked_count(), 10);
    assert_eq!(counts(&hooks), [0, 0, 0, 0], "the waker was not touched");

    drop((guard, owned, bounded, owned_bounded));
    drop((many, many_owned, many_bounded));
    assert_eq!(counts(&hooks), [0, 0, 0, 0]);
    assert_eq!(locks.locked_count(), 0);
    assert_eq!(waiters(&*locks), 0);
}

#[test]
fn a_waker_wake_may_call_back_into_the_manager() {
    watchdog(|| {
        let locks = Arc::new(Locks::new());
        let reenter = Reenter::new(&locks, &[Event::Wake, Event::WakeByRef]);
        let (waker, hooks) = reenter.waker();

        // A guard for the hook to drop, with a waiter of its own behind it.
        let stashed_task = Task::new();
        reenter
            .stash
            .lock()
            .unwrap()
            .push(locks.try_acquire_owned(STASHED).unwrap());
        let mut stashed_waiter = locks.acquire_owned(STASHED);
        assert!(stashed_task.poll(&mut stashed_waiter).is_pending());

        let holder = locks.try_acquire_owned(K).unwrap();
        let mut waiter = locks.acquire_owned(K);
        assert!(waiter
            .poll_unpin(&mut std::task::Context::from_waker(&waker))
            .is_pending());
        drop(holder);
        reenter.assert_clean();
        assert_eq!(counts(&hooks)[1] + counts(&hooks)[2], 1, "woken once");
        // The hook saw the key already handed over: not free to take.
        assert_eq!(reenter.saw().len(), 1);
        assert!(
            !reenter.saw()[0].1,
            "the key was free while its waiter was woken"
        );
        // ... and released the stashed key to its waiter.
        assert_eq!(stashed_task.wakes(), 1);
        drop(ready(stashed_task.poll(&mut stashed_waiter)));
        drop(ready(
            waiter.poll_unpin(&mut std::task::Context::from_waker(&waker)),
        ));

        reenter.assert_clean();
        assert_eq!(locks.locked_count(), 0);
        assert_eq!(waiters(&locks), 0);
        assert_key_works(&*locks, K);
    });
}

#[test]
fn a_waker_drop_may_call_back_into_the_manager() {
    watchdog(|| {
        let locks = Arc::new(Locks::new());
        let reenter = Reenter::new(&locks, &[Event::Drop]);
        let (waker, hooks) = reenter.waker();

        let holder = locks.try_acquire_owned(K).unwrap();
        let mut waiter = locks.acquire_owned(K);
        assert!(waiter
            .poll_unpin(&mut std::task::Context::from_waker(&waker))
            .is_pending());
        assert_eq!(hooks.count(Event::Clone), 1);
        // The hook drops the holder: `K` ends up free, with nobody waiting.
        reenter.stash.lock().unwrap().push(holder);
        drop(waiter); // leaves the queue, dropping the stored waker
        assert_eq!(hooks.count(Event::Drop), 1);
        assert_eq!(reenter.saw(), [(Event::Drop, false)]);
        assert_eq!(locks.locked_count(), 0);
        assert_eq!(waiters(&locks), 0);

        drop(waker);
        reenter.assert_clean();
        assert_key_works(&*locks, K);
    });
}

#[test]
fn a_panicking_waker_drop_propagates_after_the_waiter_left() {
    let locks = LockManager::new();
    let armed = Arc::new(AtomicUsize::new(0));
    let (waker, hooks) = hooked({
        let armed = armed.clone();
        move |event| {
            if event == Event::Drop && armed.load(Ordering::SeqCst) == 1 {
                panic!("drop exploded");
            }
        }
    });
    let holder = locks.try_acquire(K).unwrap();
    let mut waiter = locks.acquire(K);
    assert!(waiter
        .poll_unpin(&mut std::task::Context::from_waker(&waker))
        .is_pending());
    armed.store(1, Ordering::SeqCst);
    expect_panic("drop exploded", || drop(waiter));
    armed.store(0, Ordering::SeqCst);
    assert_eq!(hooks.count(Event::Drop), 1);
    assert_eq!(locks.queue_len(&K), 1, "the waiter left before the panic");
    assert_eq!(waiters(&locks), 0);
    drop(holder);
    assert_eq!(locks.locked_count(), 0);
    assert_key_works(&locks, K);
    drop(waker);
}

/// A waker whose `clone` panics: the panic reaches the poller and nothing
/// changes. A first poll on a held key (which clones the waker to queue
/// the waiter) leaves the future finished and nothing queued; a queued
/// waiter polled from such a task keeps its place and its old waker, and
/// leaves no trace once dropped. The shard's mutex, held while the waker
/// is cloned, stays usable.
#[test]
fn a_panicking_waker_clone_propagates_and_leaves_no_waiter_behind() {
    let locks = LockManager::new();
    let (bad, _hooks) = hooked(|event| {
        if event == Event::Clone {
            panic!("clone exploded");
        }
    });
    let poll_bad = |future: &mut lock_manager::Acquire<'_, u32>| {
        expect_panic("clone exploded", || {
            future.poll_unpin(&mut std::task::Context::from_waker(&bad))
        });
    };
    let holder = locks.try_acquire(K).unwrap();
    let tasks = [Task::new(), Task::new(), Task::new()];
    let [b_task, c_task, d_task] = &tasks;
    let mut b = locks.acquire(K);
    assert!(b_task.poll(&mut b).is_pending());

    // First poll on a held key: the future is left finished, nothing queued.
    let mut a = locks.acquire(K);
    poll_bad(&mut a);
    assert!(a.is_terminated());
    expect_panic("polled after completion", || Task::new().poll(&mut a));
    drop(a);
    assert_eq!(locks.queue_len(&K), 2);
    assert_eq!(waiters(&locks), 1);

    // Already queued, then polled from a task whose waker's clone panics:
    // each keeps its place. `d` is then dropped, `c` served in its turn,
    // woken through the waker it had.
    let mut c = locks.acquire(K);
    assert!(c_task.poll(&mut c).is_pending());
    let mut d = locks.acquire(K);
    assert!(d_task.poll(&mut d).is_pending());
    poll_bad(&mut c);
    poll_bad(&mut d);
    assert!(!c.is_terminated() && !d.is_terminated());
    assert_eq!(locks.queue_len(&K), 4);
    assert_eq!(waiters(&locks), 3);
    drop(d);
    assert_eq!(locks.queue_len(&K), 3, "`d` left the queue");
    assert_eq!(waiters(&locks), 2);

    drop(holder);
    assert_eq!(wakes(&tasks), [1, 0, 0]);
    drop(ready(b_task.poll(&mut b)));
    assert_eq!(wakes(&tasks), [1, 1, 0], "`d` was skipped");
    drop(ready(c_task.poll(&mut c)));
    assert_eq!(locks.locked_count(), 0, "no ghost holds the key");
    assert_eq!(waiters(&locks), 0);
    assert_key_works(&locks, K);
}

// ---------------------------------------------------------------------------
// Futures polled after completion, or polled spuriously.

#[test]
fn polling_after_completion_panics_clearly() {
    let locks = Arc::new(LockManager::new());
    let task = Task::new();

    // Ready at once.
    let mut fast = locks.acquire(1);
    let guard = ready(task.poll(&mut fast));
    assert!(fast.is_terminated());
    expect_panic("polled after completion", || task.poll(&mut fast));
    assert_eq!(locks.queue_len(&1), 1);

    // Ready after waiting, owned.
    let mut slow = locks.acquire_owned(1);
    assert!(!slow.is_terminated());
    assert!(task.poll(&mut slow).is_pending());
    drop(guard);
    let owned = ready(task.poll(&mut slow));
    assert!(slow.is_terminated());
    expect_panic("polled after completion", || task.poll(&mut slow));
    assert_eq!(locks.queue_len(&1), 1, "the panic changed nothing");
    assert_eq!(waiters(&*locks), 0);
    drop((fast, slow));
    assert!(
        locks.is_locked(&1),
        "dropping a finished future releases nothing"
    );
    drop(owned);
    assert_eq!(locks.locked_count(), 0);
    assert_key_works(&*locks, 1);
}

/// Polling a queued waiter again and again, with the waker it was queued
/// with, neither moves it nor adds a waiter nor clones the waker. The
/// waiter with the hooked waker waits second of four, so that a poll that
/// queued it anew (at the back) would show up as it being served late.
#[test]
fn spurious_polls_keep_the_place_and_the_count() {
    let locks = LockManager::new();
    let holder = locks.try_acquire("k").unwrap();
    let tasks = [Task::new(), Task::new(), Task::new()];
    let (hooked_waker, hooks) = hooked(|_| {});
    // In queue order: the first task, the hooked waker, the two others.
    let wakers = [
        tasks[0].waker(),
        &hooked_waker,
        tasks[1].waker(),
        tasks[2].waker(),
    ];
    let woken = || {
        let hooked = hooks.count(Event::Wake) + hooks.count(Event::WakeByRef);
        [tasks[0].wakes(), hooked, tasks[1].wakes(), tasks[2].wakes()]
    };
    let mut futures: Vec<_> = (0..4).map(|_| locks.acquire("k")).collect();
    let mut poll = |i: usize| {
        let mut cx = std::task::Context::from_waker(wakers[i]);
        futures[i].poll_unpin(&mut cx)
    };
    for i in 0..4 {
        assert!(poll(i).is_pending());
    }
    assert_eq!(hooks.count(Event::Clone), 1, "cloned once, when queued");

    for _ in 0..100 {
        for i in 0..4 {
            assert!(poll(i).is_pending());
        }
    }
    assert_eq!(waiters(&locks), 4);
    assert_eq!(locks.queue_len("k"), 5);
    assert_eq!(hooks.count(Event::Clone), 1, "no clone per poll");
    assert_eq!(woken(), [0, 0, 0, 0]);

    // Still granted strictly in first-poll order, one wake each.
    let mut guard = holder;
    for turn in 0..4 {
        drop(guard);
        let mut expected = [0; 4];
        expected[..=turn].fill(1);
        assert_eq!(woken(), expected, "turn {turn}");
        for later in turn + 1..4 {
            for _ in 0..10 {
                assert!(poll(later).is_pending(), "turn {turn}");
            }
        }
        assert_eq!(waiters(&locks), 4 - turn);
        guard = ready(poll(turn));
        assert_eq!(locks.queue_len("k"), 4 - turn);
    }
    drop(guard);
    assert_eq!(woken(), [1; 4]);
    assert_eq!(hooks.count(Event::Clone), 1);
    assert_eq!(locks.locked_count(), 0);
    assert_eq!(waiters(&locks), 0);
    assert_key_works(&locks, "k");
}

// ---------------------------------------------------------------------------
// Leaks.

#[test]
fn a_forgotten_guard_locks_its_key_for_good_and_nothing_else() {
    let locks = LockManager::new();
    std::mem::forget(locks.try_acquire(1).unwrap());
    assert!(locks.is_locked(&1));
    assert!(locks.try_acquire(1).is_none());

    let task = Task::new();
    let mut waiter = locks.acquire(1);
    for _ in 0..3 {
        assert!(task.poll(&mut waiter).is_pending());
    }
    assert_eq!(task.wakes(), 0);
    assert_eq!(locks.queue_len(&1), 2);
    drop(waiter);
    assert_eq!(locks.queue_len(&1), 1);
    assert_eq!(locks.locked_count(), 1);
    assert_eq!(waiters(&locks), 0);
    assert_key_works(&locks, 2);
}

#[test]
fn a_forgotten_queued_future_keeps_the_key_once_it_reaches_the_front() {
    let locks = LockManager::new();
    let holder = locks.try_acquire(1).unwrap();
    let ghost_task = Task::new();
    let mut ghost = locks.acquire(1);
    assert!(ghost_task.poll(&mut ghost).is_pending());
    let task = Task::new();
    let mut behind = locks.acquire(1);
    assert!(task.poll(&mut behind).is_pending());
    std::mem::forget(ghost);
    assert_eq!(locks.queue_len(&1), 3, "still queued");

    drop(holder);
    // Handed to the forgotten future, which never takes it nor gives it on.
    assert_eq!(ghost_task.wakes(), 1);
    assert_eq!(task.wakes(), 0);
    assert!(task.poll(&mut behind).is_pending());
    assert_eq!(locks.queue_len(&1), 2);
    drop(behind);
    assert_eq!(locks.queue_len(&1), 1);
    assert!(locks.try_acquire(1).is_none());
    assert_eq!(locks.locked_count(), 1);
    assert_eq!(waiters(&locks), 1, "the ghost's grant stays");
    assert_key_works(&locks, 2);
}

// ---------------------------------------------------------------------------
// Threads and ownership.

#[test]
fn a_guard_dropped_on_another_thread_hands_over() {
    let locks = LockManager::new();
    let task = Task::new();
    let guard = locks.try_acquire("k").unwrap();
    let mut waiter = locks.acquire("k");
    assert!(task.poll(&mut waiter).is_pending());
    std::thread::scope(|s| s.spawn(move || drop(guard)).join().unwrap());
    assert_eq!(task.wakes(), 1);
    let guard = ready(task.poll(&mut waiter));

    // And back: acquired here, queued there, released here.
    let locks = &locks;
    std::thread::scope(|s| {
        let other = s.spawn(move || {
            let task = Task::new();
            let mut waiter = locks.acquire("k");
            assert!(task.poll(&mut waiter).is_pending());
            waiter
        });
        let mut waiter = other.join().unwrap();
        drop(guard);
        drop(ready(Task::new().poll(&mut waiter)));
    });

    let owned = Arc::new(LockManager::new());
    let guard = owned.try_acquire_owned(7).unwrap();
    let task = Task::new();
    let mut waiter = owned.acquire_owned(7);
    assert!(task.poll(&mut waiter).is_pending());
    std::thread::spawn(move || drop(guard)).join().unwrap();
    assert_eq!(task.wakes(), 1);
    drop(ready(task.poll(&mut waiter)));
    assert_eq!(owned.locked_count(), 0);
    assert_eq!(locks.locked_count(), 0);
    assert_key_works(locks, "other");
}

#[test]
fn owned_guards_and_futures_outlive_every_other_handle() {
    let locks = Arc::new(LockManager::new());
    let weak = Arc::downgrade(&locks);
    let first = locks.try_acquire_owned(1).unwrap();
    let other = locks.try_acquire_owned(2).unwrap();
    let task = Task::new();
    let mut waiter = locks.acquire_owned(1);
    assert!(task.poll(&mut waiter).is_pending());
    let mut unpolled = locks.acquire_owned(3);
    drop(locks);
    assert_eq!(weak.strong_count(), 4, "held by the guards and futures");

    drop(first);
    assert_eq!(task.wakes(), 1);
    let second = ready(task.poll(&mut waiter));
    drop(waiter);
    assert!(second.manager().is_locked(&1));
    assert_eq!(second.manager().locked_count(), 2);
    let third = ready(Task::new().poll(&mut unpolled));
    drop(unpolled);
    drop(second);
    drop(other);
    assert_eq!(third.manager().locked_count(), 1);
    assert_eq!(weak.strong_count(), 1);
    drop(third);
    assert!(weak.upgrade().is_none(), "the last guard freed the manager");
}

// ---------------------------------------------------------------------------
// Slab slot reuse.
//
// A waiter lives in a slot of its shard's slab (a holder that never waited
// takes none), and a slab hands out the slot freed last first: `slab` keeps
// its vacant entries on a LIFO list, deterministically. So each case below
// frees a waiter's slot and then queues a newcomer, who takes that very slot
// by construction, with nothing to peek at: always when both wait on the
// same key (a key lives in one shard), and on a one-shard manager, where
// every key shares one slab, when they wait on different keys. Each case
// also runs on a default manager, where the second key may live in another
// shard's slab.

/// A one-shard manager, where every key shares one slab, and a default one.
fn managers() -> [LockManager<u32>; 2] {
    [LockManager::with_shards(1), LockManager::new()]
}

/// `old` waits on key 1 in slot 0 of its shard and leaves; `new`, queued
/// next on key 1, takes slot 0 again. The hand-off must reach `new` only.
#[test]
fn a_reused_slot_on_the_same_key_is_not_confused_with_its_old_owner() {
    for locks in managers() {
        let holder = locks.try_acquire(1).unwrap();
        let (old_task, new_task) = (Task::new(), Task::new());
        let mut old = locks.acquire(1);
        assert!(old_task.poll(&mut old).is_pending());
        drop(old);

        // In the slot `old` freed: the same shard's slab, on any manager.
        let mut new = locks.acquire(1);
        assert!(new_task.poll(&mut new).is_pending());
        assert_eq!(locks.queue_len(&1), 2);
        assert_eq!(waiters(&locks), 1);

        drop(holder);
        assert_eq!((old_task.wakes(), new_task.wakes()), (0, 1));
        drop(ready(new_task.poll(&mut new)));
        assert_eq!((old_task.wakes(), new_task.wakes()), (0, 1));
        assert_eq!(locks.locked_count(), 0);
        assert_eq!(waiters(&locks), 0);
    }
}

/// `old` waits on key 1 in slot 0 and leaves; `new`, queued next on key 2,
/// takes slot 0 again on the one-shard manager. Releasing key 1 must not
/// grant `new`.
#[test]
fn a_reused_slot_on_another_key_is_not_granted_by_the_old_key() {
    for locks in managers() {
        let one = locks.try_acquire(1).unwrap();
        let two = locks.try_acquire(2).unwrap();
        let (old_task, new_task) = (Task::new(), Task::new());
        let mut old = locks.acquire(1);
        assert!(old_task.poll(&mut old).is_pending());
        drop(old);

        // In the slot `old` freed, on the one-shard manager.
        let mut new = locks.acquire(2);
        assert!(new_task.poll(&mut new).is_pending());

        // Releasing key 1 frees it: the slot now waits on key 2.
        drop(one);
        assert!(!locks.is_locked(&1));
        assert_eq!((old_task.wakes(), new_task.wakes()), (0, 0));
        assert!(new_task.poll(&mut new).is_pending());
        assert_eq!(locks.queue_len(&2), 2);

        drop(two);
        assert_eq!((old_task.wakes(), new_task.wakes()), (0, 1));
        drop(ready(new_task.poll(&mut new)));
        assert_eq!(locks.locked_count(), 0);
        assert_eq!(waiters(&locks), 0);
    }
}

/// `b` leaves from between `a` and `c`, all on key 1, and its slot is taken
/// by `d`, queued next on key 2 (on the one-shard manager); then `c` leaves
/// too, or stays. No link may still lead through `b`'s old slot.
#[test]
fn a_reused_middle_slot_keeps_no_stale_links() {
    for locks in managers() {
        for c_leaves in [false, true] {
            let holder = locks.try_acquire(1).unwrap();
            let other = locks.try_acquire(2).unwrap();
            let tasks = [Task::new(), Task::new(), Task::new(), Task::new()];
            let [first, middle, last, newcomer] = &tasks;
            let mut a = locks.acquire(1);
            assert!(first.poll(&mut a).is_pending());
            let mut b = locks.acquire(1);
            assert!(middle.poll(&mut b).is_pending());
            let mut c = Some(locks.acquire(1));
            assert!(last.poll(c.as_mut().unwrap()).is_pending());
            drop(b);

            // In the slot `b` freed, on the one-shard manager: the middle
            // slot now waits on key 2.
            let mut d = locks.acquire(2);
            assert!(newcomer.poll(&mut d).is_pending());
            if c_leaves {
                drop(c.take());
                assert_eq!(locks.queue_len(&1), 2);
            }

            drop(holder);
            assert_eq!(wakes(&tasks), [1, 0, 0, 0]);
            let guard = ready(first.poll(&mut a));
            drop(guard);
            if c_leaves {
                // Nobody left on key 1.
                assert!(!locks.is_locked(&1));
                assert_eq!(wakes(&tasks), [1, 0, 0, 0]);
            } else {
                // Key 1 goes from `a` straight to `c`, not to `b`'s old slot.
                assert_eq!(wakes(&tasks), [1, 0, 1, 0]);
                assert!(newcomer.poll(&mut d).is_pending());
                let guard = ready(last.poll(c.as_mut().unwrap()));
                assert_eq!(locks.queue_len(&1), 1);
                drop(guard);
                assert!(!locks.is_locked(&1));
            }
            assert_eq!(locks.queue_len(&2), 2);
            assert!(newcomer.poll(&mut d).is_pending());

            drop(other);
            assert_eq!(tasks[3].wakes(), 1);
            drop(ready(newcomer.poll(&mut d)));
            assert_eq!(locks.locked_count(), 0);
            assert_eq!(waiters(&locks), 0);
        }
    }
}

/// `a`, in slot 0 on key 1, is granted the key and gives it up unpolled,
/// freeing slot 0 (the key passes to `b`, in slot 1); `c`, queued next on
/// key 2, takes slot 0 on the one-shard manager. Neither key 1's hand-off
/// nor its release may reach `c`.
#[test]
fn a_granted_slot_given_up_and_reused_is_not_granted_twice() {
    for locks in managers() {
        let holder = locks.try_acquire(1).unwrap();
        let blocker = locks.try_acquire(2).unwrap();
        let tasks = [Task::new(), Task::new(), Task::new()];
        let [granted, next, reuser] = &tasks;
        let mut a = locks.acquire(1);
        assert!(granted.poll(&mut a).is_pending());
        let mut b = locks.acquire(1);
        assert!(next.poll(&mut b).is_pending());

        drop(holder); // granted to `a`...
        assert_eq!(wakes(&tasks), [1, 0, 0]);
        drop(a); // ...who gives it up: it passes to `b`
        assert_eq!(wakes(&tasks), [1, 1, 0]);

        // In the slot `a` freed, on the one-shard manager.
        let mut c = locks.acquire(2);
        assert!(reuser.poll(&mut c).is_pending());

        let guard = ready(next.poll(&mut b));
        drop(guard);
        assert!(!locks.is_locked(&1));
        assert_eq!(wakes(&tasks), [1, 1, 0]);
        assert!(reuser.poll(&mut c).is_pending(), "still waiting on key 2");

        drop(blocker);
        assert_eq!(wakes(&tasks), [1, 1, 1]);
        drop(ready(reuser.poll(&mut c)));
        assert_eq!(locks.locked_count(), 0);
        assert_eq!(waiters(&locks), 0);
    }
}

// ---------------------------------------------------------------------------
// Multi-key requests (`acquire_many`): the same faults, striking at every
// stage of a request that spans several keys and shards.

/// Managers where every key shares one shard, and where keys spread over
/// several shards whose mutexes a request holds together.
fn multi_managers<K: Eq + Hash>() -> [LockManager<K>; 2] {
    [LockManager::with_shards(1), LockManager::with_shards(64)]
}

/// A fuse shared by the keys of one request: their `Eq` calls are counted
/// together, and the call numbered `blow_at` panics, so a sweep over
/// `blow_at` strikes every comparison of a placement in turn. (`Hash` runs
/// once per key, before any mutex is taken; `Eq` runs inside the shards'
/// mutexes, where a panic may find keys already taken or queued on.)
struct Fuse {
    calls: AtomicUsize,
    /// 0: never.
    blow_at: AtomicUsize,
    /// The manager, printed when the fuse blows: `<locked>` shows the panic
    /// struck under a shard's mutex (this test is alone on its manager).
    manager: std::sync::OnceLock<Weak<LockManager<Fused>>>,
    /// Whether the blow struck under a shard's mutex.
    under_mutex: Mutex<Option<bool>>,
}

impl Fuse {
    fn new(blow_at: usize) -> Arc<Self> {
        Arc::new(Self {
            calls: AtomicUsize::new(0),
            blow_at: AtomicUsize::new(blow_at),
            manager: std::sync::OnceLock::new(),
            under_mutex: Mutex::new(None),
        })
    }
}

#[derive(Clone)]
struct Fused {
    id: u32,
    fuse: Arc<Fuse>,
}

fn fused(id: u32, fuse: &Arc<Fuse>) -> Fused {
    Fused {
        id,
        fuse: fuse.clone(),
    }
}

impl Debug for Fused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fused({})", self.id)
    }
}

impl Hash for Fused {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl Fuse {
    /// Counts a call, and blows if it is the call numbered `blow_at`.
    fn tick(&self) {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if call == self.blow_at.load(Ordering::SeqCst) {
            let manager = self.manager.get().and_then(Weak::upgrade);
            let debug = manager.map(|locks| format!("{locks:?}"));
            let locked = debug.is_some_and(|debug| debug.contains("<locked>"));
            *self.under_mutex.lock().unwrap() = Some(locked);
            panic!("eq exploded");
        }
    }
}

impl PartialEq for Fused {
    /// Ticks the fuse of each side once (the map may put its own copy of
    /// a key on either side).
    fn eq(&self, other: &Self) -> bool {
        self.fuse.tick();
        if !Arc::ptr_eq(&self.fuse, &other.fuse) {
            other.fuse.tick();
        }
        self.id == other.id
    }
}

impl Eq for Fused {}

/// The keys of the sweeps' requests: 3 and 4 are held. With eight keys
/// placed in hash order, a held key is almost never placed first, so a
/// panic comparing it strikes with free keys already taken.
const SWEPT: [u32; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

/// The order in which `locks` takes the `SWEPT` keys, by id (asked with
/// keys on a fuse that never blows).
fn swept_order(locks: &LockManager<Fused>) -> [u32; 8] {
    let quiet = Fuse::new(0);
    in_take_order(locks, SWEPT.map(|id| fused(id, &quiet))).map(|key| key.id)
}

/// Sweeps an `Eq` panic over every comparison an eight-key request makes on
/// its first poll with the keys it finds held (3, with a waiter, and 4).
/// Taking its keys one at a time in order, it compares only the first of
/// the two it reaches, and stops there: the panic strikes under that
/// shard's mutex, with the keys before it taken. The panic reaches the
/// poller and leaves the request as it was before that key: holding the
/// keys before it, queued nowhere, not finished. Dropped, it gives them
/// back, and the manager is exactly as before.
#[test]
fn an_eq_panicking_midway_through_a_multi_key_placement_undoes_it() {
    for shards in [1, 64] {
        let mut under_mutex = 0;
        for blow_at in 1.. {
            let locks = Arc::new(LockManager::with_shards(shards));
            let order = swept_order(&locks);
            let stop = *order.iter().find(|id| [3, 4].contains(id)).unwrap();
            let taken: Vec<u32> = order.into_iter().take_while(|&id| id != stop).collect();
            let quiet = Fuse::new(0);
            let held = locks.try_acquire(fused(3, &quiet)).unwrap();
            let other = locks.try_acquire(fused(4, &quiet)).unwrap();
            let w3_task = Task::new();
            let mut w3 = locks.acquire(fused(3, &quiet));
            assert!(w3_task.poll(&mut w3).is_pending());

            let armed = Fuse::new(blow_at);
            armed.manager.set(Arc::downgrade(&locks)).unwrap();
            let mut request = locks.acquire_many(SWEPT.map(|id| fused(id, &armed)));
            let outcome = catch_unwind(AssertUnwindSafe(|| Task::new().poll(&mut request)));
            // Disarmed before looking keys up, which compares them too.
            let calls = armed.calls.load(Ordering::SeqCst);
            armed.blow_at.store(0, Ordering::SeqCst);
            let ctx = format!("{shards} shards, blow_at {blow_at}, order {order:?}");
            for id in SWEPT.into_iter().filter(|id| ![3, 4].contains(id)) {
                let expected = taken.contains(&id);
                assert_eq!(locks.is_locked(&fused(id, &quiet)), expected, "{ctx}: {id}");
            }
            assert_eq!(locks.locked_count(), 2 + taken.len(), "{ctx}");
            let Err(panic) = outcome else {
                // Past the last call: nothing blew, the request waits on
                // `stop` and has not reached the other held key.
                assert!(outcome.unwrap().is_pending(), "{ctx}");
                assert!(armed.under_mutex.lock().unwrap().is_none());
                assert_eq!(
                    (blow_at, calls),
                    (2, 1),
                    "{ctx}: one comparison, with {stop}"
                );
                let queue_lens = (
                    locks.queue_len(&fused(3, &quiet)),
                    locks.queue_len(&fused(4, &quiet)),
                );
                let expected = if stop == 3 { (3, 1) } else { (2, 2) };
                assert_eq!(queue_lens, expected, "{ctx}");
                drop(request);
                assert_eq!(locks.locked_count(), 2, "the request gave its keys back");
                break;
            };
            assert_eq!(message(panic), "eq exploded", "{ctx}");
            assert_eq!((blow_at, calls), (1, 1), "{ctx}");
            if armed.under_mutex.lock().unwrap().expect("the fuse blew") {
                under_mutex += 1;
            }
            // Left before `stop`: not finished, queued nowhere, and polled
            // again it would go on from there.
            assert!(!request.is_terminated(), "{ctx}");
            assert_eq!(locks.queue_len(&fused(3, &quiet)), 2, "{ctx}");
            assert_eq!(locks.queue_len(&fused(4, &quiet)), 1, "{ctx}");
            assert_eq!(waiters(&*locks), 1, "{ctx}");
            drop(request);

            // Exactly as before the request, mutexes unpoisoned.
            assert_eq!(locks.locked_count(), 2, "{ctx}");
            for id in [1, 2, 5, 6, 7, 8] {
                assert!(!locks.is_locked(&fused(id, &quiet)), "{ctx}: {id}");
            }
            assert_eq!(locks.queue_len(&fused(3, &quiet)), 2, "{ctx}");
            assert_eq!(locks.queue_len(&fused(4, &quiet)), 1, "{ctx}");
            assert_eq!(waiters(&*locks), 1, "{ctx}");
            drop(held);
            assert_eq!(w3_task.wakes(), 1, "{ctx}: 3 passes to its old waiter");
            drop(ready(w3_task.poll(&mut w3)));
            drop(other);
            assert_eq!(locks.locked_count(), 0, "{ctx}");
            assert_eq!(waiters(&*locks), 0, "{ctx}");
            for id in 1..=9 {
                assert_key_works(&*locks, fused(id, &quiet));
            }
            let all = locks.acquire_many((1..=9).map(|id| fused(id, &quiet)));
            let all = all.now_or_never().expect("every key is free");
            assert_eq!(locks.locked_count(), 9);
            drop(all);
            assert_eq!(locks.locked_count(), 0, "{ctx}");
        }
        // The one comparison with a held key was struck, under its mutex.
        assert_eq!(under_mutex, 1, "{shards} shards");
    }
}

/// The same sweep over `try_acquire_many` and `enqueue_bounded`, with 4
/// held. `try` looks every key up under all the mutexes before it takes
/// any: one comparison, with 4. `enqueue_bounded` first checks the bound
/// key by key (one comparison, with 4), then takes its keys in order up to
/// 4 and queues there (a second comparison, with 4). Wherever the panic
/// strikes, it reaches the caller and the manager is as before (for `try`,
/// its counters too); past the last comparison, the bounded request holds
/// exactly the keys before 4 and waits on 4.
#[test]
fn an_eq_panicking_midway_through_a_try_or_bounded_many_undoes_it() {
    for shards in [1, 64] {
        for bounded in [false, true] {
            let mut under_mutex = 0;
            for blow_at in 1.. {
                let locks = Arc::new(LockManager::with_shards(shards));
                let order = swept_order(&locks);
                let before_4: Vec<u32> = order.into_iter().take_while(|&id| id != 4).collect();
                let quiet = Fuse::new(0);
                let held = locks.try_acquire(fused(4, &quiet)).unwrap();
                let w4_task = Task::new();
                let mut w4 = locks.acquire(fused(4, &quiet));
                assert!(w4_task.poll(&mut w4).is_pending());
                let stats = locks.stats();

                let armed = Fuse::new(blow_at);
                armed.manager.set(Arc::downgrade(&locks)).unwrap();
                let keys = SWEPT.map(|id| fused(id, &armed));
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    if bounded {
                        let request = locks.acquire_many(keys).enqueue_bounded(8).expect("room");
                        let calls = armed.calls.load(Ordering::SeqCst);
                        // Looking keys up and dropping compare them too.
                        armed.blow_at.store(0, Ordering::SeqCst);
                        Some((request, calls))
                    } else {
                        assert!(locks.try_acquire_many(keys).is_none(), "4 is held");
                        None
                    }
                }));
                let ctx = format!("{shards} shards, bounded {bounded}, blow_at {blow_at}");
                let (blew, admitted) = match outcome {
                    Ok(admitted) => (false, admitted),
                    Err(panic) => {
                        assert_eq!(message(panic), "eq exploded", "{ctx}");
                        (true, None)
                    }
                };
                if blew && armed.under_mutex.lock().unwrap().expect("the fuse blew") {
                    under_mutex += 1;
                }
                if let Some((request, calls)) = admitted {
                    assert_eq!(calls, 2, "{ctx}: the check and the taking compare 4");
                    for id in SWEPT.into_iter().filter(|&id| id != 4) {
                        let expected = before_4.contains(&id);
                        assert_eq!(locks.is_locked(&fused(id, &quiet)), expected, "{ctx}: {id}");
                    }
                    assert_eq!(locks.locked_count(), 1 + before_4.len(), "{ctx}");
                    assert_eq!(locks.queue_len(&fused(4, &quiet)), 3, "{ctx}");
                    assert_eq!(waiters(&*locks), 2, "{ctx}");
                    drop(request);
                } else {
                    assert!(blew || !bounded, "{ctx}");
                }

                assert_eq!(locks.locked_count(), 1, "{ctx}");
                assert_eq!(locks.queue_len(&fused(4, &quiet)), 2, "{ctx}");
                assert_eq!(waiters(&*locks), 1, "{ctx}");
                if !bounded {
                    // A refusal counts itself, and nothing else.
                    let mut refused = stats;
                    refused.busy += u64::from(!blew);
                    assert_eq!(locks.stats(), refused, "{ctx}");
                }
                drop(held);
                assert_eq!(w4_task.wakes(), 1, "{ctx}: 4 passes to its old waiter");
                drop(ready(w4_task.poll(&mut w4)));
                assert_eq!(locks.locked_count(), 0, "{ctx}");
                for id in SWEPT {
                    assert_key_works(&*locks, fused(id, &quiet));
                }
                if !blew {
                    let comparisons = if bounded { 2 } else { 1 };
                    assert_eq!(blow_at, comparisons + 1, "{ctx}");
                    break;
                }
            }
            // Each comparison with 4 was struck, under its mutex: the
            // check, and for a bounded request the taking too.
            let expected = if bounded { 2 } else { 1 };
            assert_eq!(under_mutex, expected, "{shards} shards, bounded {bounded}");
        }
    }
}

/// A `Hash`, `Eq` or `Clone` that panics while a multi-key request is
/// made or takes its keys: the panic reaches the caller, and nothing of the
/// request is left once it is dropped. A `Hash`, and an `Eq` between
/// duplicates (same id, same hash), panic when the request is made, which
/// hashes, sorts and merges the keys: there is no future. The request
/// takes its keys one at a time in order, cloning each and looking it up
/// under its shard's mutex as it reaches it: a `Clone` or an `Eq` (against
/// the held 1) panicking there leaves the future as it was before that
/// key, holding the keys before it in order, queued nowhere, and retrying
/// that key if polled again.
#[test]
fn a_multi_key_request_whose_key_panics_changes_nothing() {
    // The panic, the keys, and the key whose taking panics (`None`: the
    // panic comes when the request is made).
    type Case = (&'static str, &'static [(u32, Bomb)], Option<u32>);
    let cases: [Case; 5] = [
        ("hash exploded", &[(1, Bomb::Hash), (2, Bomb::None)], None),
        ("hash exploded", &[(2, Bomb::None), (1, Bomb::Hash)], None),
        (
            "clone exploded",
            &[(2, Bomb::None), (5, Bomb::Clone)],
            Some(5),
        ),
        // Same id, same hash: compared while merging duplicates.
        ("eq exploded", &[(5, Bomb::None), (5, Bomb::Eq)], None),
        // Compared with the held 1 in the map, under its shard's mutex.
        (
            "eq exploded",
            &[(2, Bomb::None), (1, Bomb::Eq), (5, Bomb::None)],
            Some(1),
        ),
    ];
    for locks in multi_managers() {
        let order = in_take_order(&locks, [1, 2, 5].map(key)).map(|key| key.id);
        for (expected, keys, stop) in cases {
            let ctx = format!("{expected}, order {order:?}");
            // The request's keys that come before `stop` in order.
            let taken: Vec<u32> = stop.map_or(Vec::new(), |stop| {
                let before = order.iter().take_while(|&&id| id != stop);
                before
                    .copied()
                    .filter(|id| keys.iter().any(|&(k, _)| k == *id))
                    .collect()
            });
            let holder = locks.try_acquire(key(1)).unwrap();
            let task = Task::new();
            let mut waiter = locks.acquire(key(1));
            assert!(task.poll(&mut waiter).is_pending());

            // Keys are hashed, sorted and merged when the request is made,
            // and taken when it is first polled.
            let made = catch_unwind(AssertUnwindSafe(|| {
                locks.acquire_many(keys.iter().map(|&(id, b)| bomb(id, b)))
            }));
            match made {
                Err(panic) => {
                    assert_eq!(message(panic), expected, "{ctx}");
                    assert_eq!(stop, None, "{ctx}: made");
                }
                Ok(mut request) => {
                    assert!(stop.is_some(), "{ctx}: made, though it should panic");
                    expect_panic(expected, || Task::new().poll(&mut request));
                    assert!(!request.is_terminated(), "{ctx}");
                    assert_eq!(locks.locked_count(), 1 + taken.len(), "{ctx}");
                    for id in [2, 5] {
                        let held = taken.contains(&id);
                        assert_eq!(locks.is_locked(&key(id)), held, "{ctx}: {id}");
                    }
                    // Polled again, it retries the key that panicked.
                    expect_panic(expected, || Task::new().poll(&mut request));
                    assert_eq!(locks.locked_count(), 1 + taken.len(), "{ctx}");
                    assert_eq!(locks.queue_len(&key(1)), 2, "{ctx}");
                    drop(request);
                }
            }

            assert_eq!(locks.locked_count(), 1, "{ctx}");
            assert_eq!(locks.queue_len(&key(1)), 2, "{ctx}");
            assert_eq!(waiters(&locks), 1, "{ctx}");
            drop(holder);
            assert_eq!(task.wakes(), 1, "{ctx}");
            drop(ready(task.poll(&mut waiter)));
            assert_eq!(locks.locked_count(), 0, "{ctx}");
            for id in [1, 2, 5] {
                assert_key_works(&locks, key(id));
            }
        }
    }
}

/// An extend is made as a multi-key request is, less the keys its guard
/// holds: a key's `Hash`, or its `Eq` against a held key or a duplicate,
/// panics at the call, and the guard holds what it held, each key still
/// working; `try_extend` likewise.
#[test]
fn an_extend_whose_key_panics_at_the_call_leaves_the_guard_as_it_was() {
    let cases: [(&str, [(u32, Bomb); 2]); 3] = [
        ("hash exploded", [(2, Bomb::None), (3, Bomb::Hash)]),
        // Same id, same hash as the held 1: compared while leaving it out.
        ("eq exploded", [(2, Bomb::None), (1, Bomb::Eq)]),
        // Same id, same hash as the other new key: compared while merging.
        ("eq exploded", [(2, Bomb::None), (2, Bomb::Eq)]),
    ];
    for locks in multi_managers() {
        for (expected, keys) in cases {
            let mut guard = locks.try_acquire_many([key(1)]).unwrap();
            let new_keys = || keys.map(|(id, b)| bomb(id, b));
            expect_panic(expected, || drop(guard.extend(new_keys())));
            expect_panic(expected, || guard.try_extend(new_keys()));
            let held: Vec<u32> = guard.keys().iter().map(|key| key.id).collect();
            assert_eq!(held, [1], "{expected}");
            assert_eq!(locks.locked_count(), 1, "{expected}");
            assert_eq!(waiters(&locks), 0, "{expected}");
            // The guard still grows, and gives back all it holds.
            assert!(guard.try_extend([key(2), key(3)]), "{expected}");
            assert_eq!(locks.locked_count(), 3, "{expected}");
            drop(guard);
            assert_eq!(locks.locked_count(), 0, "{expected}");
            for id in 1..=3 {
                assert_key_works(&locks, key(id));
            }
        }
    }
}

/// The guard `acquire_many` or `acquire_many_owned` gives, as one type for
/// the tests that drop either.
fn multi_guard(
    locks: &Arc<Locks>,
    keys: [u32; 2],
    owned: bool,
) -> Box<dyn Guard<Key = u32, Hasher = RandomState> + '_> {
    if owned {
        Box::new(locks.acquire_many_owned(keys).now_or_never().unwrap())
    } else {
        Box::new(locks.acquire_many(keys).now_or_never().unwrap())
    }
}

/// Whichever order the guard releases its keys in, a panicking `wake` on
/// one of them (or both) must not stop the other's hand-off: each key
/// passes to its waiter, and then the panic leaves the drop.
#[test]
fn a_panicking_wake_does_not_stop_a_multi_key_guard_handing_over_every_key() {
    for shards in [1, 64] {
        for owned in [false, true] {
            for bad in [[true, false], [false, true], [true, true]] {
                let ctx = format!("{shards} shards, owned {owned}, bad {bad:?}");
                let locks = Arc::new(Locks::with_shards(shards));
                let guard = multi_guard(&locks, [2, 1], owned);
                let mut keys = guard.keys().to_vec();
                keys.sort_unstable();
                assert_eq!(keys, [1, 2]);
                let tasks = [Task::new(), Task::new()];
                let bad_waker = Waker::from(Arc::new(PanicOnWake));
                let mut next: Vec<_> = [1, 2].map(|k| locks.acquire(k)).into();
                for i in 0..2 {
                    let waker = if bad[i] { &bad_waker } else { tasks[i].waker() };
                    let mut cx = std::task::Context::from_waker(waker);
                    assert!(next[i].poll_unpin(&mut cx).is_pending(), "{ctx}");
                }

                expect_panic("wake exploded", || drop(guard));
                // Both keys were handed over: held by their waiters.
                assert_eq!(locks.queue_len(&1), 1, "{ctx}");
                assert_eq!(locks.queue_len(&2), 1, "{ctx}");
                assert_eq!(waiters(&*locks), 2, "{ctx}: two grants not yet taken");
                for i in 0..2 {
                    let expected = usize::from(!bad[i]);
                    assert_eq!(tasks[i].wakes(), expected, "{ctx}: waiter {i}");
                }
                for mut waiter in next {
                    drop(ready(Task::new().poll(&mut waiter)));
                }
                assert_eq!(locks.locked_count(), 0, "{ctx}");
                assert_eq!(waiters(&*locks), 0, "{ctx}");
                assert_key_works(&*locks, 1);
                assert_key_works(&*locks, 2);
            }
        }
    }
}

/// The same when a request holding two keys and queued on a third (the
/// last it takes) is dropped: both held keys pass on, the place on the
/// third is given up, then the panic leaves the drop.
#[test]
fn a_panicking_wake_does_not_stop_a_dropped_multi_key_request_giving_up_everything() {
    for locks in multi_managers() {
        let [a, b, c] = in_take_order(&locks, [1, 2, 3]);
        let holder = locks.try_acquire(c).unwrap();
        let request_task = Task::new();
        let mut request = locks.acquire_many([1, 2, 3]);
        assert!(request_task.poll(&mut request).is_pending());
        assert!(locks.is_locked(&a) && locks.is_locked(&b));
        let bad = Waker::from(Arc::new(PanicOnWake));
        let mut on_a = locks.acquire(a);
        let mut on_b = locks.acquire(b);
        for waiter in [&mut on_a, &mut on_b] {
            let mut cx = std::task::Context::from_waker(&bad);
            assert!(waiter.poll_unpin(&mut cx).is_pending());
        }
        let wc_task = Task::new();
        let mut on_c = locks.acquire(c);
        assert!(wc_task.poll(&mut on_c).is_pending());
        assert_eq!(locks.queue_len(&c), 3);

        expect_panic("wake exploded", || drop(request));
        assert_eq!(locks.queue_len(&a), 1, "{a} was handed to its waiter");
        assert_eq!(locks.queue_len(&b), 1, "{b} was handed to its waiter");
        assert_eq!(locks.queue_len(&c), 2, "the request left the queue of {c}");
        drop(ready(Task::new().poll(&mut on_a)));
        drop(ready(Task::new().poll(&mut on_b)));
        drop(holder);
        assert_eq!(wc_task.wakes(), 1);
        drop(ready(wc_task.poll(&mut on_c)));
        assert_eq!(request_task.wakes(), 0);
        assert_eq!(locks.locked_count(), 0);
        assert_eq!(waiters(&locks), 0);
    }
}

/// A waker whose `clone` panics, first polling a multi-key request: the
/// request takes its keys in order and must clone the waker to queue on
/// the held one, so the panic strikes there, before it is queued. It
/// reaches the poller and leaves the request as it was before that key:
/// holding the keys before it, queued nowhere. Dropped, the request gives
/// them back; polled again with a good waker instead, it queues on the
/// held key behind the callers that came meanwhile and is served in turn.
#[test]
fn a_panicking_waker_clone_on_a_multi_key_request_leaves_nothing_behind() {
    let (bad, _hooks) = hooked(|event| {
        if event == Event::Clone {
            panic!("clone exploded");
        }
    });
    for repoll in [false, true] {
        for locks in multi_managers() {
            let (first, second) = take_order(&locks, 1, 2);
            for held in [first, second] {
                let ctx = format!("repoll {repoll}, {first} before {second}, {held} held");
                let other = 3 - held;
                let took_other = other == first;
                let holder = locks.try_acquire(held).unwrap();
                let mut request = locks.acquire_many([2, 1]);
                expect_panic("clone exploded", || {
                    request.poll_unpin(&mut std::task::Context::from_waker(&bad))
                });
                assert!(!request.is_terminated(), "{ctx}");
                assert_eq!(locks.is_locked(&other), took_other, "{ctx}");
                assert_eq!(locks.queue_len(&held), 1, "{ctx}: not queued");
                // Later callers on both keys.
                let tasks = [Task::new(), Task::new()];
                let mut on_held = locks.acquire(held);
                let mut on_other = locks.acquire(other);
                assert!(tasks[0].poll(&mut on_held).is_pending(), "{ctx}");
                let other_guard = match tasks[1].poll(&mut on_other) {
                    Poll::Pending => None,
                    Poll::Ready(guard) => Some(guard),
                };
                assert_eq!(other_guard.is_none(), took_other, "{ctx}: {other} free?");

                if repoll {
                    let task = Task::new();
                    assert!(task.poll(&mut request).is_pending(), "{ctx}");
                    assert_eq!(locks.queue_len(&held), 3, "{ctx}: queued behind");
                    drop(holder);
                    assert_eq!((tasks[0].wakes(), task.wakes()), (1, 0), "{ctx}");
                    drop(ready(tasks[0].poll(&mut on_held)));
                    assert_eq!(task.wakes(), 1, "{ctx}");
                    if took_other {
                        let guard = ready(task.poll(&mut request));
                        assert_eq!(guard.keys().len(), 2, "{ctx}");
                        assert!(tasks[1].poll(&mut on_other).is_pending(), "{ctx}");
                        drop(guard);
                    } else {
                        // It takes `held`, then waits for `other`, taken
                        // by the later caller meanwhile.
                        assert!(task.poll(&mut request).is_pending(), "{ctx}");
                        drop(other_guard);
                        assert_eq!(task.wakes(), 2, "{ctx}");
                        assert_eq!(ready(task.poll(&mut request)).keys().len(), 2);
                    }
                    drop(request);
                } else {
                    drop(request);
                    assert_eq!(locks.queue_len(&held), 2, "{ctx}: holder and later caller");
                    drop(other_guard);
                    drop(holder);
                    assert_eq!(tasks[0].wakes(), 1, "{ctx}");
                    drop(ready(tasks[0].poll(&mut on_held)));
                }
                if took_other {
                    assert_eq!(tasks[1].wakes(), 1, "{ctx}");
                    drop(ready(tasks[1].poll(&mut on_other)));
                }
                assert_eq!(locks.locked_count(), 0, "{ctx}: no ghost holds a key");
                assert_eq!(waiters(&locks), 0, "{ctx}");
                assert_key_works(&locks, 1);
                assert_key_works(&locks, 2);
            }
        }
    }
}

#[test]
fn a_forgotten_multi_key_guard_locks_its_keys_for_good_and_nothing_else() {
    for locks in multi_managers() {
        let (first, _) = take_order(&locks, 2, 3);
        std::mem::forget(locks.acquire_many([1, 2]).now_or_never().unwrap());
        assert!(locks.is_locked(&1) && locks.is_locked(&2));
        assert!(locks.try_acquire(2).is_none());

        // Waiters on its keys wait, and can still leave.
        let task = Task::new();
        let mut waiter = locks.acquire(1);
        let mut request = locks.acquire_many([3, 2]);
        for _ in 0..3 {
            assert!(task.poll(&mut waiter).is_pending());
            assert!(task.poll(&mut request).is_pending());
        }
        assert_eq!(task.wakes(), 0);
        assert_eq!(
            locks.is_locked(&3),
            first == 3,
            "the request holds 3 while it waits on 2 exactly when it takes 3 first"
        );
        assert_eq!(locks.queue_len(&2), 2);
        drop(waiter);
        drop(request);
        assert_eq!(locks.queue_len(&1), 1);
        assert_eq!(locks.queue_len(&2), 1);
        assert!(!locks.is_locked(&3));
        assert_eq!(locks.locked_count(), 2);
        assert_eq!(waiters(&locks), 0);
        assert_key_works(&locks, 3);
    }
}

/// A forgotten multi-key request keeps for good each key it was handed
/// (at the front of that key's queue) or took on its way; a key it had not
/// reached yet stays free for everyone.
#[test]
fn a_forgotten_multi_key_request_takes_its_keys_for_good_once_at_the_front() {
    for shards in [1, 64] {
        for waits_on_second in [false, true] {
            let locks = Locks::with_shards(shards);
            let (first, second) = take_order(&locks, 1, 2);
            let held = if waits_on_second { second } else { first };
            let ctx = format!("{shards} shards, {first} before {second}, {held} held");
            let holder = locks.try_acquire(held).unwrap();
            let ghost_task = Task::new();
            let mut ghost = locks.acquire_many([1, 2]);
            assert!(ghost_task.poll(&mut ghost).is_pending());
            let task = Task::new();
            let mut behind = locks.acquire(held);
            assert!(task.poll(&mut behind).is_pending());
            std::mem::forget(ghost);

            drop(holder);
            // Handed to the forgotten request, which never gives it on.
            assert_eq!(ghost_task.wakes(), 1, "{ctx}");
            assert_eq!(task.wakes(), 0, "{ctx}");
            assert!(task.poll(&mut behind).is_pending(), "{ctx}");
            drop(behind);
            assert_eq!(locks.queue_len(&held), 1, "{ctx}");
            if waits_on_second {
                // It took `first` on its way: both are its for good.
                assert_eq!(locks.queue_len(&first), 1, "{ctx}");
                assert_eq!(locks.locked_count(), 2, "{ctx}");
            } else {
                // Never polled again, it never reached `second`.
                assert_eq!(locks.queue_len(&second), 0, "{ctx}");
                assert_eq!(locks.locked_count(), 1, "{ctx}");
                assert_key_works(&locks, second);
            }
            assert_eq!(waiters(&locks), 1, "{ctx}: the ghost's grant stays");
            assert_key_works(&locks, 3);
        }
    }
}

#[test]
fn owned_multi_key_guards_and_futures_outlive_every_other_handle() {
    let locks = Arc::new(LockManager::new());
    let weak = Arc::downgrade(&locks);
    let first = locks.acquire_many_owned([1, 2]).now_or_never().unwrap();
    let task = Task::new();
    let mut waiting = locks.acquire_many_owned([2, 3]);
    assert!(task.poll(&mut waiting).is_pending());
    let mut unpolled = locks.acquire_many_owned([4, 5]);
    drop(locks);
    assert_eq!(weak.strong_count(), 3, "held by the guard and the futures");

    drop(first);
    assert_eq!(task.wakes(), 1);
    let second = ready(task.poll(&mut waiting));
    drop(waiting);
    assert_eq!(second.manager().locked_count(), 2);
    let third = ready(Task::new().poll(&mut unpolled));
    drop(unpolled);
    drop(second);
    assert_eq!(weak.strong_count(), 1);
    assert_eq!(third.manager().locked_count(), 2);
    assert!(third.manager().is_locked(&5));
    drop(third);
    assert!(weak.upgrade().is_none(), "the last guard freed the manager");
}
