//! `Send`, `Sync`, `Unpin` and `'static`, asserted at compile time, negative
//! cases included; and the `Debug` output, pinned.
#![cfg(not(loom))]

use std::cell::Cell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock};

use lock_manager::{Acquire, AcquireOwned, LockGuard, LockManager, OwnedLockGuard};

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
}

#[test]
fn owned_futures_and_guards_are_static() {
    is_static::<AcquireOwned<String>>();
    is_static::<OwnedLockGuard<u64>>();
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
    assert!(format!("{acquire:?}").starts_with(r#"Acquire { progress: Waiting { key: "secret""#));
}

/// A key whose `Hash` runs while the manager's mutex is held, and prints the
/// manager from there.
#[derive(Clone, PartialEq, Eq)]
struct Spy;

static SPIED: OnceLock<LockManager<Spy>> = OnceLock::new();
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl std::hash::Hash for Spy {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {
        let printed = format!("{:?}", SPIED.get().unwrap());
        SEEN.lock().unwrap().push(printed);
    }
}

#[test]
fn debug_does_not_block_while_the_manager_is_busy() {
    let locks = SPIED.get_or_init(LockManager::new);
    drop(locks.try_acquire(Spy));
    // `Hash` also runs outside the mutex, to pick the key's shard.
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
