//! The one mutex the crate uses, and its one atomic flag (the graph's),
//! swapped for a model checker's or the standard library's where the fast
//! one cannot run.
//!
//! Every variant offers the same two calls: `lock` (which ignores poisoning:
//! the state is consistent whenever a panic can leave the critical section)
//! and `try_lock`.

#[cfg(not(any(loom, miri)))]
pub(crate) use parking_lot::{Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicBool;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::AtomicBool;

#[cfg(any(loom, miri))]
pub(crate) use self::checked::{Mutex, MutexGuard};

#[cfg(any(loom, miri))]
mod checked {
    #[cfg(loom)]
    use loom::sync as imp;
    // parking_lot's pointer tricks fail miri's strict-provenance mode.
    #[cfg(not(loom))]
    use std::sync as imp;

    pub(crate) use imp::MutexGuard;

    #[derive(Debug)]
    pub(crate) struct Mutex<T>(imp::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(imp::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }

        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            match self.0.try_lock() {
                Ok(guard) => Some(guard),
                Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        }
    }
}
