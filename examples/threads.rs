//! Async tasks and plain threads sharing one `LockManager`.
//!
//! A photo library keeps a counter of edits per album. Tokio tasks and
//! worker threads (think of a CPU-heavy thumbnailer) edit the same albums,
//! each edit a read, a pause and a write under the album's lock: both kinds
//! of caller wait in one FIFO queue per album, so no edit is lost.
//!
//! Threads block with `acquire(k).wait()`; tasks take their place with
//! `acquire_owned(k).enqueue()` and spawn the future. It also shows a guard
//! moving from a task to a thread and back, and, while a task holds an
//! album for a long export, a thread that gives up after a timeout
//! (`wait_timeout`) and one that locks albums in turn under one deadline
//! (`wait_deadline`).
//!
//! Run it with:
//!
//! ```text
//! cargo run --example threads
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use lock_manager::LockManager;

const ALBUMS: u32 = 3;
/// Edits per thread.
const EDITS: usize = 100;
const THREADS: usize = 4;
/// Tasks, one edit each.
const TASKS: usize = 800;

/// Per-album edit counters, updated by read, pause, write: without the
/// album's lock, two editors would write the same count and lose an edit.
#[derive(Default)]
struct Albums([AtomicUsize; ALBUMS as usize]);

impl Albums {
    fn edit(&self, album: u32) {
        let counter = &self.0[album as usize];
        let read = counter.load(Ordering::Relaxed);
        thread::yield_now();
        counter.store(read + 1, Ordering::Relaxed);
    }

    fn total(&self) -> usize {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

#[tokio::main]
async fn main() {
    let locks = Arc::new(LockManager::<u32>::new());
    let albums = Arc::new(Albums::default());

    // Threads block on the acquire future with `wait()`: the guard is held
    // to the end of the loop body.
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (locks, albums) = (Arc::clone(&locks), Arc::clone(&albums));
            thread::spawn(move || {
                for edit in 0..EDITS {
                    let album = ((t + edit) % ALBUMS as usize) as u32;
                    let _guard = locks.acquire(album).wait();
                    albums.edit(album);
                }
            })
        })
        .collect();
    // Tasks take their place in the queue with `enqueue()` when spawned, in
    // this loop's order, then move the `'static` owned future into the task.
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let album = (i % ALBUMS as usize) as u32;
            let albums = Arc::clone(&albums);
            let queued = locks.acquire_owned(album).enqueue();
            tokio::spawn(async move {
                let _guard = queued.await;
                albums.edit(album);
                tokio::task::yield_now().await;
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("an edit task panicked");
    }
    let threads = tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .for_each(|t| t.join().expect("an editor thread panicked"))
    });
    threads.await.unwrap();
    let edits = TASKS + THREADS * EDITS;
    assert_eq!(albums.total(), edits, "an edit was lost");
    println!("threads: {edits} edits by {TASKS} tasks and {THREADS} threads, none lost");

    // A guard taken by a task is released by a thread...
    let guard = locks.acquire_owned(0).await;
    let (send, receive) = mpsc::channel();
    let thread = thread::spawn(move || {
        let guard: lock_manager::OwnedLockGuard<u32> = receive.recv().unwrap();
        println!(
            "  album {} locked by a task, released by a thread",
            guard.key()
        );
    });
    send.send(guard).unwrap();
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .unwrap()
        .unwrap();
    // ...and one taken by a thread is released by a task.
    let taken = Arc::clone(&locks);
    let guard = tokio::task::spawn_blocking(move || taken.acquire_owned(1).wait())
        .await
        .unwrap();
    tokio::spawn(async move { drop(guard) }).await.unwrap();
    assert_eq!(locks.locked_count(), 0);

    // A task holds album 2 for a long export; a thread waits 20 ms at most.
    let export = locks.acquire_owned(2).await;
    let impatient = Arc::clone(&locks);
    let waited = tokio::task::spawn_blocking(move || {
        impatient
            .acquire(2)
            .wait_timeout(Duration::from_millis(20))
            .map(drop)
    });
    match waited.await.unwrap() {
        Ok(()) => unreachable!("the export still holds album 2"),
        Err(timed_out) => println!("  a thread gave up on album 2: {timed_out}"),
    }

    // A thread that locks albums one after another gives the whole batch
    // one deadline, not each album a fresh timeout. It gets albums 0 and 1,
    // times out on album 2, and `collect` drops the guards it had.
    let batch = Arc::clone(&locks);
    let locked = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_millis(30);
        (0..ALBUMS)
            .map(|album| batch.acquire(album).wait_deadline(deadline))
            .collect::<Result<Vec<_>, _>>()
            .map(drop)
    });
    match locked.await.unwrap() {
        Ok(()) => unreachable!("the export still holds album 2"),
        Err(timed_out) => println!("  a thread locking every album in turn: {timed_out}"),
    }
    assert_eq!(locks.locked_count(), 1, "only the export holds an album");
    drop(export);
    assert_eq!(locks.locked_count(), 0);
}
