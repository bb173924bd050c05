//! Blocking on an acquire future, for synchronous threads that share a
//! manager with async tasks: the thread parks until its future is ready,
//! or until a deadline passes (then the future is dropped, which gives up
//! its place as any dropped future does).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

use crate::error::TimedOut;

/// Wakes a parked thread. (The manager wakes only by value, so the default
/// `wake_by_ref` serves.)
struct Unparker(Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// This thread's waker: it unparks the thread.
fn thread_waker() -> Waker {
    thread_local! {
        static WAKER: Waker = Waker::from(Arc::new(Unparker(thread::current())));
    }
    // Made afresh only while this thread's locals are being torn down.
    WAKER
        .try_with(Waker::clone)
        .unwrap_or_else(|_| Waker::from(Arc::new(Unparker(thread::current()))))
}

/// Polls `future` on this thread until it is ready, parking in between, or
/// until `deadline` (if any) has passed: then drops it. It is polled once
/// more after the deadline, so a lock handed over just before it is taken,
/// not passed on. Spurious unparks only cause a spurious poll, which
/// changes nothing.
pub(crate) fn wait<F: Future + Unpin>(
    mut future: F,
    deadline: Option<Instant>,
) -> Result<F::Output, TimedOut> {
    let waker = thread_waker();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = Pin::new(&mut future).poll(&mut cx) {
            return Ok(output);
        }
        match deadline {
            None => thread::park(),
            Some(deadline) => {
                let left = deadline
                    .checked_duration_since(Instant::now())
                    .ok_or(TimedOut)?;
                thread::park_timeout(left);
            }
        }
    }
}
