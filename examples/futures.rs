//! Lost updates on `futures`' own `ThreadPool`, and owned guards handed
//! from one task to another.
//!
//! Four "story" files each hold a counter of the updates applied to them.
//! Two hundred tasks on a `futures::executor::ThreadPool` each add one to a
//! story's counter: a reader task reads the file, yields, and hands the new
//! value to a writer task that writes it back. Without a lock, readers that
//! read the same story before any write lands all write the same number, and
//! all but one of their updates are lost. With the story's lock held from the
//! read to the write, every update lands.
//!
//! What this example adds to the others: the lock belongs to the guard, not
//! to a task. Each reader takes an `OwnedLockGuard` with `acquire_owned` on
//! an `Arc<LockManager<usize>>` and moves it into the writer task it spawns,
//! which may run on another of the pool's threads; the story is released
//! when the writer drops the guard.
//!
//! `futures` 0.3 has no async file I/O and no `yield_now`, and this example
//! uses no other runtime. So the tasks read and write with blocking
//! `std::fs` calls (tolerable for files this small on a pool of threads, but
//! use a runtime's async file I/O or a blocking-task pool in real code), and
//! a small hand-written `YieldNow` future sits between the read and the write
//! to let the other tasks interleave.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example futures
//! ```

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::executor::{block_on, ThreadPool};
use futures::future::try_join_all;
use futures::task::SpawnExt;
use lock_manager::LockManager;

/// How many story files there are.
const STORIES: usize = 4;
/// How many updates are attempted in each run, spread evenly over the stories.
const UPDATES: usize = 200;
/// Threads in the pool: more than one, so guards really cross threads.
const THREADS: usize = 4;

fn main() -> io::Result<()> {
    let pool = ThreadPool::builder()
        .pool_size(THREADS)
        .name_prefix("story-pool-")
        .create()?;
    let dir = std::env::temp_dir().join(format!("lock-manager-futures-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;

    // Run both, then clean up whatever happened, then report.
    let outcome = both_runs(&pool, &dir);
    std::fs::remove_dir_all(&dir)?;
    let (unlocked, locked) = outcome?;

    println!("futures ThreadPool ({THREADS} threads): {UPDATES} updates to {STORIES} stories");
    report("without a lock:", unlocked);
    report("with a lock:", locked);
    assert_eq!(locked, UPDATES, "updates were lost under the lock");
    Ok(())
}

/// Runs the workload without the lock manager, then with it; returns how
/// many updates each run applied.
fn both_runs(pool: &ThreadPool, dir: &Path) -> io::Result<(usize, usize)> {
    let unlocked = run(pool, dir, None)?;

    let locks = Arc::new(LockManager::new());
    let locked = run(pool, dir, Some(Arc::clone(&locks)))?;
    // Every guard was dropped by its writer task, so no story is still held.
    assert_eq!(locks.locked_count(), 0);

    Ok((unlocked, locked))
}

/// Writes fresh stories, spawns one reader task per update on the pool and
/// blocks until they all finish; returns the sum of the final counters.
fn run(pool: &ThreadPool, dir: &Path, locks: Option<Arc<LockManager<usize>>>) -> io::Result<usize> {
    for story in 0..STORIES {
        std::fs::write(story_path(dir, story), render(story, 0))?;
    }

    let mut readers = Vec::with_capacity(UPDATES);
    for update in 0..UPDATES {
        let story = update % STORIES;
        let reader = add_one(
            pool.clone(),
            dir.to_path_buf(),
            story,
            update,
            locks.clone(),
        );
        readers.push(pool.spawn_with_handle(reader).expect("the pool is running"));
    }
    // Each reader finishes after its writer, so this waits for both.
    block_on(try_join_all(readers))?;

    let mut applied = 0;
    for story in 0..STORIES {
        applied += read_updates(&story_path(dir, story))?;
    }
    Ok(applied)
}

/// One read-modify-write of a story, split over two tasks: this one reads,
/// and a writer task it spawns writes.
async fn add_one(
    pool: ThreadPool,
    dir: PathBuf,
    story: usize,
    update: usize,
    locks: Option<Arc<LockManager<usize>>>,
) -> io::Result<()> {
    // Taken before the read; tasks on other stories never wait for it.
    let guard = match &locks {
        Some(locks) => Some(locks.acquire_owned(story).await),
        None => None,
    };

    let path = story_path(&dir, story);
    let updates = read_updates(&path)?;

    // Let other tasks run between the read and the write, as any real work
    // here (a network call, a slow edit) would.
    YieldNow::default().await;

    // The guard moves into the writer, so the story stays locked until the
    // write is done, whichever thread the writer runs on.
    let writer = pool
        .spawn_with_handle(async move {
            let written = write_updates(&dir, story, update, updates + 1);
            drop(guard); // releases the story, if it was locked
            written
        })
        .expect("the pool is running");
    writer.await
}

/// A future that is pending once, asking to be polled again at once: the
/// task goes to the back of the pool's queue and the others run first.
#[derive(Default)]
struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn story_path(dir: &Path, story: usize) -> PathBuf {
    dir.join(format!("story-{story}.txt"))
}

/// A story file: a title line and a counter line.
fn render(story: usize, updates: usize) -> String {
    format!("title: Story {story}\nupdates: {updates}\n")
}

/// Reads a story's counter.
fn read_updates(path: &Path) -> io::Result<usize> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .find_map(|line| line.strip_prefix("updates: "))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no `updates:` line"))
}

/// Writes a story's counter: a scratch file renamed over the story, so that
/// no reader ever sees a half-written file. That makes each write atomic,
/// but not the read-modify-write: that is the lock's job.
fn write_updates(dir: &Path, story: usize, update: usize, updates: usize) -> io::Result<()> {
    let scratch = dir.join(format!("story-{story}.{update}.tmp"));
    std::fs::write(&scratch, render(story, updates))?;
    std::fs::rename(&scratch, story_path(dir, story))
}

fn report(run: &str, applied: usize) {
    let lost = UPDATES - applied;
    println!("  {run:<16} {UPDATES} attempted, {applied:>3} applied, {lost:>3} lost");
}
