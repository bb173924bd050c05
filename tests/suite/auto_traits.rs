//! `Send`, `Sync`, `Unpin` and `'static`, asserted at compile time, negative
//! cases included; and the `Debug` output, pinned.
use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::marker::{PhantomData, PhantomPinned};
use std::panic::{catch_unwind, RefUnwindSafe, UnwindSafe};
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock};

use futures::FutureExt;
use lock_manager::{
    Acquire, AcquireMany, AcquireManyOwned, AcquireOwned, Extend, LockGuard, LockManager,
    MultiLockGuard, OwnedLockGuard, OwnedMultiLockGuard,
};

fn send<T: Send>() {}
fn sync<T: Sync>() {}
fn unpin<T: Unpin>() {}
fn is_static<T: 'static>() {}

/// Fails to compile (ambiguous `_`) when `$ty` implements `$trait`.
macro_rules! assert_not_impl {
    ($ty:ty: $trait:path) => {
        const _: fn() = || {
            trait Ambiguous<A> {
                fn item() {}
            }
            impl<T: ?Sized> Ambiguous<()> for T {}
            impl<T: ?Sized + $trait> Ambiguous<u8> for T {}
            let _ = <$ty as Ambiguous<_>>::item;
        };
    };
}

/// A key that may move between threads but not be shared by them.
#[derive(Clone, PartialEq, Eq, Hash)]
struct SendOnly(u8, PhantomData<Cell<()>>);

#[test]
fn everything_is_send_sync_and_unpin_for_ordinary_keys() {
    send::<LockManager<String>>();
    sync::<LockManager<String>>();
    send::<Acquire<'_, String>>();
    sync::<Acquire<'_, String>>();
    unpin::<Acquire<'_, String>>();
    send::<AcquireOwned<String>>();
    sync::<AcquireOwned<String>>();
    unpin::<AcquireOwned<String>>();
    send::<LockGuard<'_, String>>();
    sync::<LockGuard<'_, String>>();
    send::<OwnedLockGuard<String>>();
    sync::<OwnedLockGuard<String>>();
    unpin::<LockGuard<'_, String>>();
    unpin::<OwnedLockGuard<String>>();
}

#[test]
fn owned_futures_and_guards_are_static() {
    is_static::<AcquireOwned<String>>();
    is_static::<OwnedLockGuard<u64>>();
}

/// Every guard as a trait object that still moves between threads.
#[test]
fn guards_as_trait_objects_stay_send_and_sync() {
    type AnyGuard<'a> =
        dyn lock_manager::Guard<Key = String, Hasher = RandomState> + Send + Sync + 'a;
    let locks = Arc::new(LockManager::<String>::new());
    let guards: [Box<AnyGuard<'_>>; 4] = [
        Box::new(locks.try_acquire("a".into()).unwrap()),
        Box::new(locks.try_acquire_owned("b".into()).unwrap()),
        Box::new(locks.try_acquire_many(["c".into()]).unwrap()),
        Box::new(locks.try_acquire_many_owned(["d".into()]).unwrap()),
    ];
    send::<Box<AnyGuard<'static>>>();
    sync::<Box<AnyGuard<'static>>>();
    std::thread::scope(|s| {
        s.spawn(move || drop(guards));
    });
    assert_eq!(locks.locked_count(), 0);
}

/// The value's type, for the futures whose type cannot be named.
fn send_and_static<T: Send + 'static>(_: &T) {}

/// The value's type is `Send`, for the futures whose type cannot be named.
fn send_value<T: Send>(_: &T) {}

#[test]
fn with_lock_futures_are_send_and_the_spawnable_recipe_is_static() {
    let locks = Arc::new(LockManager::<String>::new());
    send_value(&locks.with_lock("a".into(), || async {}));
    send_value(&locks.with_locks(["a".into()], || async {}));
    // The spawnable `with_lock`: an owned future placed at once, awaited in
    // a task of its own.
    let queued = locks.acquire_owned("a".into()).enqueue();
    send_and_static(&async move {
        let _guard = queued.await;
    });
    let queued = locks.acquire_many_owned(["a".into()]).enqueue();
    send_and_static(&async move {
        let _guard = queued.await;
    });
    send_and_static(&lock_manager::with_lock("auto-traits/a", || async {}));
    assert_eq!(locks.locked_count(), 0, "every dropped future let go");
    assert!(!lock_manager::is_locked("auto-traits/a"));
}

fn std_error<T: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn the_errors_are_plain_values() {
    send::<lock_manager::TimedOut>();
    sync::<lock_manager::TimedOut>();
    is_static::<lock_manager::TimedOut>();
    send::<lock_manager::Busy>();
    sync::<lock_manager::Busy>();
    std_error::<lock_manager::TimedOut>();
    std_error::<lock_manager::Busy>();
    // The error either converts into, for `?` and `Box<dyn Error + Send +
    // Sync>` alike.
    std_error::<lock_manager::Error>();
    unpin::<lock_manager::Error>();
    // A deadlock names its keys, and still moves into a boxed error.
    std_error::<lock_manager::Deadlock<u64>>();
    std_error::<lock_manager::Error<u64>>();
    unpin::<lock_manager::Deadlock<u64>>();
}

/// An extend borrows its guard mutably: it is `Send` and `Sync` as the
/// guard is, and `Unpin` whatever the key, as the other futures.
#[test]
fn extend_futures_are_send_sync_and_unpin_as_the_other_futures() {
    send::<Extend<'_, &LockManager<String>>>();
    sync::<Extend<'_, &LockManager<String>>>();
    unpin::<Extend<'_, &LockManager<String>>>();
    send::<Extend<'_, Arc<LockManager<String>>>>();
    sync::<Extend<'_, Arc<LockManager<String>>>>();
    unpin::<Extend<'_, Arc<LockManager<String>>>>();
    unpin::<Extend<'_, &LockManager<Pinned>>>();
    send::<Extend<'_, &LockManager<SendOnly>>>();
    send::<Extend<'_, Arc<LockManager<SendOnly>>>>();
    // Awaited in a task that owns its guard: spawnable.
    let locks = Arc::new(LockManager::<String>::new());
    let owned = locks.clone();
    send_and_static(&async move {
        let mut guard = owned.acquire_many_owned(["a".into()]).await;
        guard.extend(["b".into()]).await
    });
}

assert_not_impl!(Extend<'static, &'static LockManager<SendOnly>>: Sync);
assert_not_impl!(Extend<'static, Arc<LockManager<SendOnly>>>: Sync);
assert_not_impl!(Extend<'static, &'static LockManager<Rc<str>>>: Send);
assert_not_impl!(Extend<'static, Arc<LockManager<Rc<str>>>>: Send);

#[test]
fn extend_debug_prints_the_new_keys_only() {
    let locks = LockManager::new();
    let mut guard = locks.try_acquire_many(["held"]).unwrap();
    let other = locks.try_acquire("b").unwrap();
    let mut extend = guard.extend(["b", "held", "b"]);
    assert_eq!(
        format!("{extend:?}"),
        r#"Extend { progress: Unpolled(["b"]), .. }"#
    );
    assert!((&mut extend).now_or_never().is_none());
    assert_eq!(
        format!("{extend:?}"),
        r#"Extend { progress: Waiting { keys: ["b"], held: 0 }, .. }"#
    );
    drop(other);
    assert_eq!((&mut extend).now_or_never(), Some(Ok(())));
    assert_eq!(format!("{extend:?}"), "Extend { progress: Done, .. }");
}

/// An extend stored with no bounds of its own, as `Embedded` stores the
/// other futures, and dropped where no bound is at hand.
struct EmbeddedExtend<'g, 'a, K, S> {
    extend: Option<Extend<'g, &'a LockManager<K, S>>>,
}

fn drop_unbounded<K, S>(embedded: EmbeddedExtend<'_, '_, K, S>) {
    drop(embedded);
}

#[test]
fn a_struct_stores_an_extend_without_bounds_of_its_own() {
    let locks = LockManager::new();
    let mut guard = locks.try_acquire_many([1]).unwrap();
    let holder = locks.try_acquire(2).unwrap();
    let embedded = EmbeddedExtend {
        extend: Some(guard.extend([2, 3]).enqueue()),
    };
    assert!(embedded.extend.is_some());
    assert_eq!(locks.queue_len(&2), 2);
    drop_unbounded(embedded); // leaves the queue, gives back what it took
    assert_eq!(locks.queue_len(&2), 1);
    assert_eq!(locks.locked_count(), 2);
    assert_eq!(guard.keys(), [1]);
    drop(holder);
}

#[test]
fn multi_key_futures_and_guards_are_send_sync_and_unpin_for_ordinary_keys() {
    send::<AcquireMany<'_, String>>();
    sync::<AcquireMany<'_, String>>();
    unpin::<AcquireMany<'_, String>>();
    send::<AcquireManyOwned<String>>();
    sync::<AcquireManyOwned<String>>();
    unpin::<AcquireManyOwned<String>>();
    send::<MultiLockGuard<'_, String>>();
    sync::<MultiLockGuard<'_, String>>();
    send::<OwnedMultiLockGuard<String>>();
    sync::<OwnedMultiLockGuard<String>>();
    unpin::<MultiLockGuard<'_, String>>();
    unpin::<OwnedMultiLockGuard<String>>();
    is_static::<AcquireManyOwned<String>>();
    is_static::<OwnedMultiLockGuard<u64>>();
}

/// A key that is not `Unpin`: nothing of it is pinned, so the futures stay
/// `Unpin` (they can be polled in place through `&mut`).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Pinned(u8, PhantomPinned);

#[test]
fn multi_key_futures_are_unpin_whatever_the_key() {
    unpin::<AcquireMany<'_, Pinned>>();
    unpin::<AcquireManyOwned<Pinned>>();
}

#[test]
fn multi_key_futures_and_guards_with_send_only_keys_still_move() {
    send::<AcquireMany<'_, SendOnly>>();
    send::<AcquireManyOwned<SendOnly>>();
    send::<MultiLockGuard<'_, SendOnly>>();
    send::<OwnedMultiLockGuard<SendOnly>>();
}

#[test]
fn keys_only_shared_under_the_mutex_keep_the_manager_sync() {
    // The manager only touches keys under its mutex: Send keys suffice.
    sync::<LockManager<SendOnly>>();
    send::<AcquireOwned<SendOnly>>();
    send::<OwnedLockGuard<SendOnly>>();
}

// A guard lends out `&K`, so it is `Sync` only when `K` is.
assert_not_impl!(LockGuard<'static, SendOnly>: Sync);
assert_not_impl!(OwnedLockGuard<SendOnly>: Sync);
// Keys that cannot leave their thread pin everything to it.
assert_not_impl!(LockManager<Rc<str>>: Send);
assert_not_impl!(LockManager<Rc<str>>: Sync);
assert_not_impl!(AcquireOwned<Rc<str>>: Send);
assert_not_impl!(OwnedLockGuard<Rc<str>>: Send);
// The same for several keys: a multi-key guard lends out `&[K]`.
assert_not_impl!(MultiLockGuard<'static, SendOnly>: Sync);
assert_not_impl!(OwnedMultiLockGuard<SendOnly>: Sync);
assert_not_impl!(AcquireMany<'static, Rc<str>>: Send);
assert_not_impl!(AcquireManyOwned<Rc<str>>: Send);
assert_not_impl!(MultiLockGuard<'static, Rc<str>>: Send);
assert_not_impl!(OwnedMultiLockGuard<Rc<str>>: Send);

#[test]
fn debug_prints_counts_and_never_keys() {
    let locks = LockManager::new();
    assert_eq!(
        format!("{locks:?}"),
        "LockManager { locked: 0, waiters: 0 }"
    );
    let guard = locks.try_acquire("secret").unwrap();
    let mut acquire = locks.acquire("secret");
    assert!(futures::FutureExt::now_or_never(&mut acquire).is_none());
    assert_eq!(
        format!("{locks:?}"),
        "LockManager { locked: 1, waiters: 1 }"
    );
    assert_eq!(format!("{guard:?}"), r#"LockGuard { key: "secret", .. }"#);
    assert_eq!(
        format!("{acquire:?}"),
        r#"Acquire { progress: Queued("secret"), .. }"#
    );
    drop(guard);
    assert_eq!(
        format!("{acquire:?}"),
        r#"Acquire { progress: Granted("secret"), .. }"#
    );
    drop(futures::FutureExt::now_or_never(&mut acquire).unwrap());
    assert_eq!(format!("{acquire:?}"), "Acquire { progress: Done, .. }");
}

/// A key whose `Eq`, which runs under its shard's mutex, prints the future
/// parked in [`PARKED`], if any.
#[derive(Clone, Debug)]
struct Peek(u8);

impl std::hash::Hash for Peek {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

static PARKED: Mutex<Option<AcquireOwned<Peek>>> = Mutex::new(None);
static PEEKED: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl PartialEq for Peek {
    fn eq(&self, other: &Self) -> bool {
        if let Some(parked) = PARKED.lock().unwrap().as_ref() {
            PEEKED.lock().unwrap().push(format!("{parked:?}"));
        }
        self.0 == other.0
    }
}

impl Eq for Peek {}

#[test]
fn a_future_whose_shard_is_busy_prints_as_waiting_without_blocking() {
    let locks = Arc::new(LockManager::with_shards(1));
    let holder = locks.try_acquire_owned(Peek(1)).unwrap();
    let mut waiting = locks.acquire_owned(Peek(1));
    assert!((&mut waiting).now_or_never().is_none());
    *PARKED.lock().unwrap() = Some(waiting);
    // Compares `Peek(1)` with the held copy, under the shard's mutex.
    assert!(locks.try_acquire(Peek(1)).is_none());
    let waiting = PARKED.lock().unwrap().take().unwrap();
    assert_eq!(
        *PEEKED.lock().unwrap(),
        [r#"Acquire { progress: Waiting(Peek(1)), .. }"#]
    );
    assert_eq!(
        format!("{waiting:?}"),
        r#"Acquire { progress: Queued(Peek(1)), .. }"#
    );
    drop((waiting, holder));
}

#[test]
fn owned_debug_prints_as_borrowed_with_the_key_of_futures_and_guards_only() {
    let locks = Arc::new(LockManager::new());
    let unpolled = locks.acquire_owned("secret");
    assert_eq!(
        format!("{unpolled:?}"),
        r#"Acquire { progress: Unpolled("secret"), .. }"#
    );
    let guard = locks.try_acquire_owned("secret").unwrap();
    assert_eq!(format!("{guard:?}"), r#"LockGuard { key: "secret", .. }"#);
}

#[test]
fn multi_key_debug_prints_the_keys_of_futures_and_guards_only() {
    let locks = Arc::new(LockManager::new());
    let guard = locks.acquire_many(["secret"]).now_or_never().unwrap();
    assert_eq!(
        format!("{guard:?}"),
        r#"MultiLockGuard { keys: ["secret"], .. }"#
    );

    let unpolled = locks.acquire_many(["secret", "secret"]);
    assert_eq!(
        format!("{unpolled:?}"),
        r#"AcquireMany { progress: Unpolled(["secret"]), .. }"#
    );
    let mut waiting = locks.acquire_many_owned(["secret"]);
    assert!((&mut waiting).now_or_never().is_none());
    assert_eq!(
        format!("{waiting:?}"),
        r#"AcquireMany { progress: Waiting { keys: ["secret"], held: 0 }, .. }"#
    );
    assert_eq!(
        format!("{locks:?}"),
        "LockManager { locked: 1, waiters: 1 }"
    );

    drop(guard);
    let owned = (&mut waiting).now_or_never().unwrap();
    assert_eq!(
        format!("{owned:?}"),
        r#"MultiLockGuard { keys: ["secret"], .. }"#
    );
    assert_eq!(format!("{waiting:?}"), "AcquireMany { progress: Done, .. }");
}

/// A key whose `Eq` runs while the manager's mutex is held (comparing it
/// with the copy of a held key), and prints the manager from there.
#[derive(Clone)]
struct Spy;

impl std::hash::Hash for Spy {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

static SPIED: OnceLock<LockManager<Spy>> = OnceLock::new();
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl PartialEq for Spy {
    fn eq(&self, _: &Self) -> bool {
        let printed = format!("{:?}", SPIED.get().unwrap());
        SEEN.lock().unwrap().push(printed);
        true
    }
}

impl Eq for Spy {}

#[test]
fn debug_does_not_block_while_the_manager_is_busy() {
    let locks = SPIED.get_or_init(LockManager::new);
    let held = locks.try_acquire(Spy).unwrap();
    assert!(locks.try_acquire(Spy).is_none());
    drop(held);
    let seen = SEEN.lock().unwrap();
    assert!(
        seen.contains(&"LockManager { state: <locked> }".to_string()),
        "{seen:?}"
    );
}

#[test]
fn owned_guards_keep_the_manager_alive() {
    let locks = Arc::new(LockManager::new());
    let guard = locks.try_acquire_owned(1).unwrap();
    let weak = Arc::downgrade(&locks);
    drop(locks);
    assert!(weak.upgrade().is_some());
    drop(guard);
    assert!(weak.upgrade().is_none());
}

fn unwind_safe<T: UnwindSafe>() {}
fn ref_unwind_safe<T: RefUnwindSafe>() {}

#[test]
fn the_manager_its_futures_and_guards_are_unwind_safe() {
    ref_unwind_safe::<LockManager<String>>();
    unwind_safe::<LockManager<String>>();
    unwind_safe::<Acquire<'_, String>>();
    unwind_safe::<AcquireOwned<String>>();
    unwind_safe::<LockGuard<'_, String>>();
    unwind_safe::<OwnedLockGuard<String>>();
    unwind_safe::<AcquireMany<'_, String>>();
    unwind_safe::<AcquireManyOwned<String>>();
    unwind_safe::<MultiLockGuard<'_, String>>();
    unwind_safe::<OwnedMultiLockGuard<String>>();
}

// A key that is not unwind-safe makes nothing unwind-safe by accident.
assert_not_impl!(LockManager<Cell<u8>>: RefUnwindSafe);

#[test]
fn catch_unwind_takes_the_manager_its_futures_and_guards_as_they_are() {
    let locks = LockManager::new();
    // A body that panics while holding a key: the key is released.
    let panicked = catch_unwind(|| {
        let _guard = locks.try_acquire("a").unwrap();
        panic!("the body failed");
    });
    assert!(panicked.is_err());
    assert!(!locks.is_locked("a"));

    // Owned futures and guards move in and out.
    let locks = Arc::new(LockManager::new());
    let acquire = locks.acquire_owned(1);
    let guard = catch_unwind(move || futures::executor::block_on(acquire)).unwrap();
    let many = locks.acquire_many_owned([2, 3]);
    let both = catch_unwind(move || futures::executor::block_on(many)).unwrap();
    assert!(catch_unwind(move || drop((guard, both))).is_ok());
    assert_eq!(locks.locked_count(), 0);
}

/// A library's type that stores every public future and guard, generic and
/// with no bounds of its own: it compiles only while their definitions
/// carry none either.
struct Embedded<'a, K, S> {
    acquire: Option<Acquire<'a, K, S>>,
    acquire_owned: Option<AcquireOwned<K, S>>,
    guard: Option<LockGuard<'a, K, S>>,
    owned_guard: Option<OwnedLockGuard<K, S>>,
    many: Option<AcquireMany<'a, K, S>>,
    many_owned: Option<AcquireManyOwned<K, S>>,
    multi: Option<MultiLockGuard<'a, K, S>>,
    owned_multi: Option<OwnedMultiLockGuard<K, S>>,
}

impl<K, S> Embedded<'_, K, S> {
    /// The keys its guards hold, read without any bound on `K` or `S`.
    fn held(&self) -> usize {
        let single = [
            self.guard.as_ref().map(LockGuard::key),
            self.owned_guard.as_ref().map(OwnedLockGuard::key),
        ];
        let multi = [
            self.multi.as_ref().map(MultiLockGuard::keys),
            self.owned_multi.as_ref().map(OwnedMultiLockGuard::keys),
        ];
        single.iter().flatten().count()
            + multi.iter().flatten().map(|keys| keys.len()).sum::<usize>()
    }

    /// Whether any future is still stored.
    fn waiting(&self) -> bool {
        self.acquire.is_some()
            || self.acquire_owned.is_some()
            || self.many.is_some()
            || self.many_owned.is_some()
    }
}

#[test]
fn a_struct_stores_every_future_and_guard_without_bounds_of_its_own() {
    let locks = Arc::new(LockManager::new());
    let embedded = Embedded {
        acquire: Some(locks.acquire(1)),
        acquire_owned: Some(locks.acquire_owned(2)),
        guard: locks.try_acquire(3),
        owned_guard: locks.try_acquire_owned(4),
        many: Some(locks.acquire_many([5, 6])),
        many_owned: Some(locks.acquire_many_owned([7])),
        multi: locks.try_acquire_many([8, 9]),
        owned_multi: locks.try_acquire_many_owned([10]),
    };
    assert_eq!(embedded.held(), 5);
    assert!(embedded.waiting());
    assert_eq!(locks.locked_count(), 5);
    drop(embedded); // drops every guard and future, with no bounds at hand
    assert_eq!(locks.locked_count(), 0);
}
