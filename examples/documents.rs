//! Nested locking with `extend`, and deadlocks refused instead of hung.
//!
//! A document store keeps each document in one folder, and each folder
//! lists its documents. Two operations need locks they can only name
//! after reading under another lock:
//!
//! - **move** a document: lock the document, read which folder it is in
//!   (true only while the document is locked), then `extend` the guard
//!   with that folder and the destination, and move it;
//! - **rename** a folder: lock the folder, read its list of documents
//!   (true only while the folder is locked), then `extend` the guard with
//!   those documents, and rewrite each one's path.
//!
//! A move takes a document, then folders; a rename takes a folder, then
//! documents: the opposite order. When a move holds document 7 and waits
//! for folder 2 while the rename of folder 2 holds it and waits for
//! document 7, neither could ever go on. The manager sees the cycle the
//! moment the second wait would close it and refuses that `extend` with
//! `Deadlock`; the caller drops its guard, so the other goes on, and starts
//! over, as a database transaction does when it loses a deadlock. An
//! **audit** locks two folders with a plain `acquire_many`, which cannot
//! fail: when its wait closes a cycle, the youngest `extend` in the cycle
//! is refused in its place.
//!
//! 64 tasks on tokio's multi-thread runtime run random operations. Every
//! update is a read, a yield and a write of plain data behind per-entity
//! `std::sync::Mutex`es, which guard only each single read or write: the
//! lock manager provides the exclusion from the read to the write. At the
//! end it checks that every document is in exactly one folder, that the
//! folder lists and the documents agree, that no update was lost (each
//! document and folder was written exactly as many times as operations
//! touched it), that nothing is still locked, and that the refusals the
//! tasks retried are the manager's `stats().deadlocks`.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example documents
//! ```

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use lock_manager::{LockManager, MultiLockGuard};

const FOLDERS: usize = 8;
const DOCUMENTS: usize = 64;
const TASKS: usize = 64;
/// Operations per task, each retried until it succeeds.
const OPERATIONS: usize = 100;
/// The whole run must end within this: a deadlock that was not refused
/// would hang it.
const LIMIT: Duration = Duration::from_secs(60);

/// What the manager locks. Any `Eq + Hash + Clone` type serves as a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Doc(usize),
    Folder(usize),
}

#[derive(Clone, Debug)]
struct Document {
    folder: usize,
    /// The folder's name and the document's own: rewritten by a rename.
    path: String,
    /// Writes so far: one per operation that touched the document.
    version: u64,
}

#[derive(Clone, Debug)]
struct Folder {
    name: String,
    documents: BTreeSet<usize>,
    renames: u64,
    /// Writes so far: one per operation that touched the folder.
    version: u64,
}

/// The data, and the locks that guard it.
struct Store {
    locks: LockManager<Key>,
    documents: Vec<Mutex<Document>>,
    folders: Vec<Mutex<Folder>>,
    /// Per document and per folder, the operations that wrote it, counted
    /// with atomic adds that need no lock: a lost update leaves a version
    /// behind its count.
    document_writes: Vec<AtomicU64>,
    folder_writes: Vec<AtomicU64>,
    tally: Tally,
}

#[derive(Default)]
struct Tally {
    moves: AtomicU64,
    renames: AtomicU64,
    audits: AtomicU64,
    /// Extends refused with `Deadlock`, each followed by a retry.
    refused: AtomicU64,
    /// The first refusal, to show what one says.
    first: OnceLock<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn path(folder: &str, document: usize) -> String {
    format!("/{folder}/doc-{document}.txt")
}

impl Store {
    /// Documents dealt round-robin into the folders.
    fn new() -> Self {
        let folder_name = |f: usize| format!("folder-{f}");
        let folders = (0..FOLDERS).map(|f| Folder {
            name: folder_name(f),
            documents: (f..DOCUMENTS).step_by(FOLDERS).collect(),
            renames: 0,
            version: 0,
        });
        let documents = (0..DOCUMENTS).map(|d| Document {
            folder: d % FOLDERS,
            path: path(&folder_name(d % FOLDERS), d),
            version: 0,
        });
        Self {
            locks: LockManager::new(),
            documents: documents.map(Mutex::new).collect(),
            folders: folders.map(Mutex::new).collect(),
            document_writes: (0..DOCUMENTS).map(|_| AtomicU64::new(0)).collect(),
            folder_writes: (0..FOLDERS).map(|_| AtomicU64::new(0)).collect(),
            tally: Tally::default(),
        }
    }

    /// A copy of a document: the first half of an update.
    fn document(&self, d: usize) -> Document {
        lock(&self.documents[d]).clone()
    }

    /// The second half: writes the document back one version up, after
    /// checking that nobody wrote it since `read`.
    fn put_document(&self, d: usize, read: u64, mut document: Document) {
        let mut stored = lock(&self.documents[d]);
        assert_eq!(stored.version, read, "document {d} changed under its lock");
        document.version = read + 1;
        *stored = document;
        self.document_writes[d].fetch_add(1, Ordering::Relaxed);
    }

    fn folder(&self, f: usize) -> Folder {
        lock(&self.folders[f]).clone()
    }

    fn put_folder(&self, f: usize, read: u64, mut folder: Folder) {
        let mut stored = lock(&self.folders[f]);
        assert_eq!(stored.version, read, "folder {f} changed under its lock");
        folder.version = read + 1;
        *stored = folder;
        self.folder_writes[f].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refused extend, keeping the first one's message.
    fn refused(&self, deadlock: impl ToString) {
        self.tally.refused.fetch_add(1, Ordering::Relaxed);
        let _ = self.tally.first.set(deadlock.to_string());
    }

    /// Moves document `d` to folder `to` (possibly the one it is in).
    async fn move_document(&self, d: usize, to: usize) {
        loop {
            // A multi-key guard from the start, or a single-key one
            // converted: either can be extended.
            let mut guard: MultiLockGuard<'_, Key> = if d % 2 == 0 {
                self.locks.acquire_many([Key::Doc(d)]).await
            } else {
                self.locks.acquire(Key::Doc(d)).await.into()
            };
            // Only known while the document is locked: a move elsewhere
            // could change it a moment later.
            let from = self.document(d).folder;
            if let Err(deadlock) = guard.extend([Key::Folder(from), Key::Folder(to)]).await {
                // The guard still holds the document: let it go, so that
                // whoever waits for it goes on, and start over.
                drop(guard);
                self.refused(deadlock);
                tokio::task::yield_now().await;
                continue;
            }

            let document = self.document(d);
            assert_eq!(document.folder, from, "document {d} moved under its lock");
            let mut source = self.folder(from);
            tokio::task::yield_now().await;
            assert!(
                source.documents.remove(&d),
                "folder {from} lost document {d}"
            );
            self.put_folder(from, source.version, source);

            let mut target = self.folder(to);
            tokio::task::yield_now().await;
            assert!(
                target.documents.insert(d),
                "document {d} already in folder {to}"
            );
            let (read, name) = (target.version, target.name.clone());
            self.put_folder(to, read, target);

            tokio::task::yield_now().await;
            let moved = Document {
                folder: to,
                path: path(&name, d),
                ..document
            };
            self.put_document(d, moved.version, moved);
            self.tally.moves.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }

    /// Renames folder `f`, rewriting the path of every document in it.
    async fn rename_folder(&self, f: usize) {
        loop {
            let mut guard = self.locks.acquire_many([Key::Folder(f)]).await;
            // Only known while the folder is locked.
            let listed: Vec<usize> = self.folder(f).documents.into_iter().collect();
            let documents = listed.iter().map(|&d| Key::Doc(d));
            if let Err(deadlock) = guard.extend(documents).await {
                drop(guard);
                self.refused(deadlock);
                tokio::task::yield_now().await;
                continue;
            }

            let mut folder = self.folder(f);
            tokio::task::yield_now().await;
            folder.renames += 1;
            folder.name = format!("folder-{f}.{}", folder.renames);
            let name = folder.name.clone();
            self.put_folder(f, folder.version, folder);
            for d in listed {
                let mut document = self.document(d);
                assert_eq!(
                    document.folder, f,
                    "document {d} left folder {f} under its lock"
                );
                tokio::task::yield_now().await;
                document.path = path(&name, d);
                self.put_document(d, document.version, document);
            }
            self.tally.renames.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }

    /// Locks two folders at once with a plain `acquire_many` and checks
    /// that no document is listed in both; counts as a write of both.
    async fn audit(&self, a: usize, b: usize) {
        let _guard = self
            .locks
            .acquire_many([Key::Folder(a), Key::Folder(b)])
            .await;
        let (first, second) = (self.folder(a), self.folder(b));
        tokio::task::yield_now().await;
        if a != b {
            let both: Vec<_> = first.documents.intersection(&second.documents).collect();
            assert!(both.is_empty(), "documents {both:?} in folders {a} and {b}");
        }
        self.put_folder(a, first.version, first);
        if a != b {
            self.put_folder(b, second.version, second);
        }
        self.tally.audits.fetch_add(1, Ordering::Relaxed);
    }

    /// At the end, with every task done.
    fn check(&self) {
        let folders: Vec<Folder> = (0..FOLDERS).map(|f| self.folder(f)).collect();
        for d in 0..DOCUMENTS {
            let document = self.document(d);
            let listed: Vec<usize> = (0..FOLDERS)
                .filter(|&f| folders[f].documents.contains(&d))
                .collect();
            assert_eq!(
                listed,
                [document.folder],
                "document {d} is in folder {} and listed by {listed:?}",
                document.folder
            );
            let name = &folders[document.folder].name;
            assert_eq!(document.path, path(name, d), "document {d}'s path is stale");
            let writes = self.document_writes[d].load(Ordering::Relaxed);
            assert_eq!(document.version, writes, "lost update on document {d}");
        }
        let listed: usize = folders.iter().map(|f| f.documents.len()).sum();
        assert_eq!(
            listed, DOCUMENTS,
            "folders list documents that do not exist"
        );
        for (f, folder) in folders.iter().enumerate() {
            let writes = self.folder_writes[f].load(Ordering::Relaxed);
            assert_eq!(folder.version, writes, "lost update on folder {f}");
        }
    }
}

/// SplitMix64: enough randomness for the example, without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// One task's operations: mostly moves, some renames, a few audits.
async fn worker(store: Arc<Store>, seed: u64) {
    let mut rng = Rng(seed);
    for _ in 0..OPERATIONS {
        match rng.below(100) {
            0..=69 => {
                let (d, to) = (rng.below(DOCUMENTS), rng.below(FOLDERS));
                store.move_document(d, to).await;
            }
            70..=89 => store.rename_folder(rng.below(FOLDERS)).await,
            _ => store.audit(rng.below(FOLDERS), rng.below(FOLDERS)).await,
        }
    }
}

/// Runs every task to the end.
async fn run(store: &Arc<Store>) {
    let tasks: Vec<_> = (0..TASKS as u64)
        .map(|seed| tokio::spawn(worker(Arc::clone(store), seed)))
        .collect();
    for task in tasks {
        task.await.expect("a task panicked");
    }
}

#[tokio::main]
async fn main() {
    let store = Arc::new(Store::new());
    let started = Instant::now();
    if tokio::time::timeout(LIMIT, run(&store)).await.is_err() {
        // Print what is held, then fail: the tasks stay stuck, so exit.
        eprintln!("held: {:?}", store.locks.snapshot());
        eprintln!("stats: {:?}", store.locks.stats());
        panic!(
            "documents: not done within {} s: a deadlock was not refused?",
            LIMIT.as_secs()
        );
    }
    let elapsed = started.elapsed();

    store.check();
    assert_eq!(store.locks.locked_count(), 0, "a key is still locked");
    let tally = &store.tally;
    let (moves, renames, audits) = (
        tally.moves.load(Ordering::Relaxed),
        tally.renames.load(Ordering::Relaxed),
        tally.audits.load(Ordering::Relaxed),
    );
    assert_eq!(
        moves + renames + audits,
        (TASKS * OPERATIONS) as u64,
        "an operation is missing"
    );
    let refused = tally.refused.load(Ordering::Relaxed);
    let deadlocks = store.locks.stats().deadlocks;
    assert_eq!(
        deadlocks, refused,
        "stats().deadlocks against the refusals retried"
    );

    println!(
        "documents: {TASKS} tasks, {moves} moves, {renames} renames and {audits} audits \
         of {DOCUMENTS} documents in {FOLDERS} folders in {:.2} s",
        elapsed.as_secs_f64()
    );
    println!("  {refused} deadlocks refused and retried (stats().deadlocks = {deadlocks})");
    if let Some(first) = tally.first.get() {
        println!("  the first: {first}");
    }
    println!("  every document in one folder, the lists agree, no update lost, nothing locked");
}
