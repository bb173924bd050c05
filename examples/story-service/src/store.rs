//! The stories, kept in a SQLite database file.
//!
//! One row per story: its id and its lines as a JSON array. SQLite calls
//! block, so every call runs on tokio's blocking pool (`spawn_blocking`),
//! never on the threads that drive the async tasks. The one connection sits
//! in a `std::sync::Mutex`, held only for the statements of one call: a call
//! is short and never awaits, which is exactly when a blocking mutex is the
//! right tool. Each call is one transaction, so a reader always sees a whole
//! story, before or after a write.
//!
//! The store knows nothing of the lock manager. A read followed by a write
//! is two calls, with the lock released in between unless the caller holds
//! the story's lock: that gap is where updates are lost.

use std::error::Error;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

/// Whatever went wrong below the HTTP layer: SQLite, JSON or a lost task.
pub type StoreError = Box<dyn Error + Send + Sync>;

/// A handle on the database, cheap to clone (one per request).
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (or creates) the database at `path`, with its table.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        // Write-ahead logging: a commit appends to the log instead of
        // rewriting pages in place, and `synchronous = NORMAL` syncs that
        // log at checkpoints only, safe against a crash of this process
        // (not of the machine). Fast commits, as a busy service wants.
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if mode != "wal" {
            return Err(format!("{}: SQLite refused write-ahead logging", path.display()).into());
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Another process (a `sqlite3` shell looking at the file) may hold
        // the database for a moment: wait for it rather than fail at once.
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS stories (id INTEGER PRIMARY KEY, lines TEXT NOT NULL)",
            (),
        )?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The lines of story `id`; a story never written has none.
    pub async fn read(&self, id: u64) -> Result<Vec<String>, StoreError> {
        self.call(move |conn| read_lines(conn, id)).await
    }

    /// Replaces the lines of story `id`.
    pub async fn write(&self, id: u64, lines: Vec<String>) -> Result<(), StoreError> {
        self.call(move |conn| write_lines(conn, id, &lines)).await
    }

    /// Replaces the lines of two stories in one transaction: both are
    /// written or neither is, whatever happens to the caller meanwhile.
    pub async fn write_both(
        &self,
        (first, first_lines): (u64, Vec<String>),
        (second, second_lines): (u64, Vec<String>),
    ) -> Result<(), StoreError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            write_lines(&tx, first, &first_lines)?;
            write_lines(&tx, second, &second_lines)?;
            Ok(tx.commit()?)
        })
        .await
    }

    /// Runs `f` on the connection on the blocking pool and waits for it.
    ///
    /// Once started, `f` runs to its end even if the awaiting task is
    /// dropped: a write may land after its caller is gone (which is why the
    /// service keeps its locks until the write is done, see
    /// `run_to_completion`).
    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic in another call cannot leave the connection half
            // updated (its transaction is rolled back), so a poisoned mutex
            // is safe to use.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await?
    }
}

fn read_lines(conn: &Connection, id: u64) -> Result<Vec<String>, StoreError> {
    let json: Option<String> = conn
        .query_row(
            "SELECT lines FROM stories WHERE id = ?1",
            [row_id(id)],
            |row| row.get(0),
        )
        .optional()?;
    match json {
        Some(json) => Ok(serde_json::from_str(&json)?),
        None => Ok(Vec::new()),
    }
}

fn write_lines(conn: &Connection, id: u64, lines: &[String]) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO stories (id, lines) VALUES (?1, ?2)
         ON CONFLICT (id) DO UPDATE SET lines = excluded.lines",
        (row_id(id), serde_json::to_string(lines)?),
    )?;
    Ok(())
}

/// A story id as SQLite stores it: SQLite's integers are signed, so the
/// id's 64 bits are kept as they are (ids past `i64::MAX` read as negative
/// in the file), one row per id all the same.
fn row_id(id: u64) -> i64 {
    id.cast_signed()
}
