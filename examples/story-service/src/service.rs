//! The HTTP service: stories in SQLite, one lock per story.
//!
//! - `POST /stories/{id}/lines` with `{"line": "..."}` appends a line:
//!   read the story, do some async work, write it back. Two appends to one
//!   story that overlap without a lock both read the old lines, and the
//!   second write drops the first one's line: a lost update. Under the
//!   story's lock they take turns.
//! - `GET /stories/{id}` reads a story. No lock: each write is a single
//!   SQLite transaction, so a read sees a story before or after any write.
//! - `POST /moves` with `{"from": 1, "to": 2}` moves a page (the last line)
//!   from one story to the other, under both stories' locks at once.
//! - `GET /locks` reports the lock manager's counters and held keys.
//! - `GET /metrics` reports them to Prometheus (see `metrics.rs`).
//!
//! A request that cannot get its lock soon enough is answered
//! `503 Service Unavailable` with a `Retry-After` header: when too many
//! already queue for the story (`max_waiters`), at once; when it has waited
//! `wait` in the queue, then. Only the wait is limited, never the work
//! under the lock.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lock_manager::{Busy, LockManager, OwnedLockGuard, OwnedMultiLockGuard};
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::timeout;

use crate::metrics;
use crate::store::{Store, StoreError};

/// How the service locks, and how long it works under the lock.
#[derive(Clone, Debug)]
pub struct Config {
    /// Whether to take the story locks at all (`--no-lock` turns them off,
    /// to show the lost updates).
    pub lock: bool,
    /// The longest a request waits for its locks before a 503.
    pub wait: Duration,
    /// How many requests may queue for a story behind its holder; one more
    /// is refused at once with a 503.
    pub max_waiters: usize,
    /// The async work between reading a story and writing it back.
    pub work: Duration,
}

/// What every handler shares.
#[derive(Clone)]
struct App {
    config: Config,
    store: Store,
    // Keyed by story id, a `u64`: the manager hashes the key on every
    // acquire and clones it into its map while held, and a `u64` hashes in
    // a few instructions and clones as a plain copy, where a `String` key
    // would hash its bytes and allocate on every lock.
    locks: Arc<LockManager<u64>>,
    /// Reads `locks` at each scrape of `/metrics`.
    metrics: Arc<Registry>,
}

/// The service's routes over `store`, taking its story locks in `locks`
/// (which the operator drill shares, to hold a story from outside).
pub fn router(config: Config, store: Store, locks: Arc<LockManager<u64>>) -> Router {
    let app = App {
        config,
        store,
        metrics: Arc::new(metrics::registry(Arc::clone(&locks))),
        locks,
    };
    Router::new()
        .route("/stories/{id}", get(read_story))
        .route("/stories/{id}/lines", post(append_line))
        .route("/moves", post(move_page))
        .route("/locks", get(lock_report))
        .route("/metrics", get(metrics_report))
        .with_state(app)
}

#[derive(Deserialize)]
struct NewLine {
    line: String,
}

#[derive(Deserialize)]
struct Move {
    from: u64,
    to: u64,
}

async fn read_story(State(app): State<App>, Path(id): Path<u64>) -> Result<Json<Value>, Failure> {
    let lines = app.store.read(id).await?;
    Ok(Json(json!({ "id": id, "lines": lines })))
}

async fn append_line(
    State(app): State<App>,
    Path(id): Path<u64>,
    Json(new): Json<NewLine>,
) -> Result<Json<Value>, Failure> {
    let guard = app.lock_story(id).await?;
    let App { store, config, .. } = app;
    run_to_completion(async move {
        let mut lines = store.read(id).await?;
        // Stands for real async work between the read and the write: a
        // call to another service, a spell check. Without the lock, other
        // appends to this story read the same lines meanwhile.
        tokio::time::sleep(config.work).await;
        lines.push(new.line);
        let count = lines.len();
        store.write(id, lines).await?;
        // Named here so that the task owns the guard: the lock is released
        // after the write, wherever the handler is by then.
        drop(guard);
        Ok(Json(json!({ "id": id, "lines": count })))
    })
    .await
}

async fn move_page(State(app): State<App>, Json(page): Json<Move>) -> Result<Json<Value>, Failure> {
    if page.from == page.to {
        return Err(Failure::SameStory);
    }
    let guard = app.lock_stories(page.from, page.to).await?;
    let App { store, config, .. } = app;
    run_to_completion(async move {
        let mut from = store.read(page.from).await?;
        let mut to = store.read(page.to).await?;
        tokio::time::sleep(config.work).await;
        let line = from.pop().ok_or(Failure::NothingToMove)?;
        to.push(line.clone());
        store.write_both((page.from, from), (page.to, to)).await?;
        drop(guard);
        Ok(Json(
            json!({ "from": page.from, "to": page.to, "line": line }),
        ))
    })
    .await
}

/// The manager's view as JSON, through the library's `serde` feature: its
/// counters with the distributions of waits and holds, every story held
/// with its waiters, and the most contended stories. The ages, call sites,
/// distributions and hot stories are empty (null) unless the `diagnostics`
/// feature is on.
async fn lock_report(State(app): State<App>) -> Json<Value> {
    Json(json!({
        "lock": app.config.lock,
        "stats": app.locks.stats(),
        "held": app.locks.snapshot(),
        "hot": app.locks.hot_keys(metrics::HOT_KEYS),
    }))
}

/// The manager's counters, histograms and hot keys in the Prometheus text
/// exposition format, read at the time of the scrape.
async fn metrics_report(State(app): State<App>) -> Response {
    match metrics::encode(&app.metrics) {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics",
        )
            .into_response(),
    }
}

impl App {
    /// The lock of story `id`, or a refusal; `None` with locking off.
    ///
    /// The owned forms hold an `Arc` of the manager rather than borrow it,
    /// so that the guard can move into the task of `run_to_completion`.
    async fn lock_story(&self, id: u64) -> Result<Option<OwnedLockGuard<u64>>, Refused> {
        if !self.config.lock {
            return Ok(None);
        }
        let bounded = self
            .locks
            .acquire_owned(id)
            .enqueue_bounded(self.config.max_waiters);
        self.admit(bounded).await.map(Some)
    }

    /// The locks of two stories, taken as one request: two moves between
    /// the same stories in opposite directions cannot deadlock.
    async fn lock_stories(
        &self,
        first: u64,
        second: u64,
    ) -> Result<Option<OwnedMultiLockGuard<u64>>, Refused> {
        if !self.config.lock {
            return Ok(None);
        }
        let bounded = self
            .locks
            .acquire_many_owned([first, second])
            .enqueue_bounded(self.config.max_waiters);
        self.admit(bounded).await.map(Some)
    }

    /// Sheds load, then waits for the lock for at most `config.wait`.
    ///
    /// `enqueue_bounded` refuses at once when the queue is full, and
    /// otherwise takes the request's place in the queue right then. Past
    /// that, `timeout` drops the waiting future when time is up, which
    /// leaves the queue cleanly (the manager's futures are cancel-safe).
    async fn admit<F: Future>(&self, bounded: Result<F, Busy>) -> Result<F::Output, Refused> {
        let waiting = bounded.map_err(|_| Refused::Busy)?;
        timeout(self.config.wait, waiting)
            .await
            .map_err(|_| Refused::WaitTimeout)
    }
}

/// Runs the work done under a lock in a task of its own and waits for it.
///
/// When a client hangs up, hyper drops the handler's future. Were the work
/// part of it, a drop while a write is in flight on the blocking pool would
/// release the lock before the write lands, and the next holder could read
/// the story without it and write over it. In its own task the work, and
/// the guard moved into it, always run to the end. Only waiting for the
/// lock may be cut short, since that is cancel-safe.
async fn run_to_completion<T: Send + 'static>(
    work: impl Future<Output = Result<T, Failure>> + Send + 'static,
) -> Result<T, Failure> {
    tokio::spawn(work)
        .await
        .map_err(|join| Failure::Internal(join.into()))?
}

/// Why a request got no lock.
#[derive(Debug)]
enum Refused {
    /// Too many requests already queue for the story.
    Busy,
    /// It queued for `config.wait` without getting the lock.
    WaitTimeout,
}

/// Every answer but a success.
#[derive(Debug)]
enum Failure {
    Refused(Refused),
    SameStory,
    NothingToMove,
    Internal(StoreError),
}

impl From<Refused> for Failure {
    fn from(refused: Refused) -> Self {
        Self::Refused(refused)
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Self::Internal(error)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, message, refused) = match self {
            Self::Refused(Refused::Busy) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many requests wait for this story".to_owned(),
                Some("busy"),
            ),
            Self::Refused(Refused::WaitTimeout) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "timed out waiting for this story".to_owned(),
                Some("wait-timeout"),
            ),
            Self::SameStory => (
                StatusCode::BAD_REQUEST,
                "a page moves between two different stories".to_owned(),
                None,
            ),
            Self::NothingToMove => (
                StatusCode::CONFLICT,
                "the story has no page to move".to_owned(),
                None,
            ),
            Self::Internal(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string(), None),
        };
        let body = Json(json!({ "error": message, "refused": refused }));
        if refused.is_some() {
            // Nothing was done: the client may send the same request again.
            (status, [(header::RETRY_AFTER, "1")], body).into_response()
        } else {
            (status, body).into_response()
        }
    }
}
