//! A web service that keeps stories in SQLite and serializes the updates of
//! each story with a `LockManager<u64>`, and a load driver that checks no
//! acknowledged update is lost. See README.md.
//!
//! ```text
//! story-service check [OPTIONS]   serve on an ephemeral port, drive it, check
//! story-service serve [OPTIONS]   serve until stopped
//! story-service drive [OPTIONS]   drive a service started with `serve`
//! story-service drill [OPTIONS]   hold a story, time clients out, check /metrics
//! ```

mod client;
mod drill;
mod driver;
mod metrics;
mod service;
mod store;

use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use lock_manager::LockManager;
use tokio::net::TcpListener;

use crate::store::Store;

const USAGE: &str = "\
usage: story-service <check|serve|drive|drill|help> [OPTIONS]

  check    start the service on an ephemeral port of 127.0.0.1, drive it,
           check every acknowledged append is stored once; exits 1 if not
  serve    run the service (default --addr 127.0.0.1:3000)
  drive    drive a running service at --addr, then check it
  drill    the operator drill (needs --features diagnostics): start the
           service on an ephemeral port, hold story 7's lock while clients
           time out on it and others use stories 1 to 4, then scrape and
           parse GET /metrics; exits 1 unless its wait histograms count
           every 503 after a wait and its hot keys list story 7 first

service options (check, serve, drill):
  --no-lock            take no story locks, to see updates lost
  --wait-ms N          longest wait for a lock before a 503 [20]
  --max-waiters N      most requests queued per story; more get a 503 [8]
  --work-ms N          async work between a story's read and write [3]
  --db PATH            the SQLite file (serve) [story-service.db in the temp dir]
driver options (check, drive):
  --clients N          concurrent clients [32]
  --requests N         requests per client [50]
  --addr ADDR          where the service listens (serve, drive)";

/// Any error that ends a command.
type AnyError = Box<dyn Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    if matches!(command.as_str(), "help" | "--help" | "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let outcome = match Options::parse(args) {
        Ok(options) => match command.as_str() {
            "check" => check(options).await,
            "serve" => serve(options).await,
            "drive" => drive(options).await,
            "drill" => drill(options).await,
            _ => Err(USAGE.into()),
        },
        Err(error) => Err(format!("{error}\n\n{USAGE}").into()),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("story-service: {error}");
        ExitCode::from(2)
    })
}

/// Starts the service on a fresh database and an ephemeral port, drives it
/// from this process over 127.0.0.1, and judges what it stored.
async fn check(options: Options) -> Result<ExitCode, AnyError> {
    let (dir, store) = fresh_store()?;

    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let config = options.service;
    println!(
        "story-service check on {addr}: wait limit {} ms, at most {} waiters, {} ms of work",
        config.wait.as_millis(),
        config.max_waiters,
        config.work.as_millis(),
    );
    let app = service::router(config, store, Arc::new(LockManager::new()));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let summary = driver::drive(addr, options.driver).await;
    // Every request has been answered: stop serving, which closes the
    // database, and remove it.
    server.abort();
    let _ = server.await;
    std::fs::remove_dir_all(&dir)?;
    Ok(report(&summary?))
}

/// The operator drill (see drill.rs): on a fresh database and an
/// ephemeral port, one story held by this process past the wait limit while
/// clients time out on it, then `GET /metrics` scraped and judged.
async fn drill(options: Options) -> Result<ExitCode, AnyError> {
    if !lock_manager::DIAGNOSTICS {
        return Err(
            "the drill reads the wait histograms and the hot keys, which the lock \
                    manager measures only with its diagnostics feature: run \
                    `cargo run -p story-service --features diagnostics -- drill`"
                .into(),
        );
    }
    if !options.service.lock {
        return Err("the drill holds a story's lock: --no-lock makes no sense there".into());
    }
    if (options.service.max_waiters as u64) < drill::STUCK_CLIENTS {
        return Err(format!(
            "the drill needs --max-waiters {} or more: each of its clients of the held story \
             must queue for it",
            drill::STUCK_CLIENTS
        )
        .into());
    }
    let (dir, store) = fresh_store()?;
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let wait = options.service.wait;
    // Shared with the service, so that the drill can hold a story itself.
    let locks = Arc::new(LockManager::new());
    let app = service::router(options.service, store, Arc::clone(&locks));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let outcome = drill::run(addr, &locks, wait).await;
    server.abort();
    let _ = server.await;
    std::fs::remove_dir_all(&dir)?;
    let outcome = outcome?;
    outcome.print();
    let problems = outcome.problems();
    if !problems.is_empty() {
        println!("FAILED: {}", problems.join("; "));
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "ok: /metrics parses, counts the wait of every 503, and lists story {} hottest",
        drill::STUCK
    );
    Ok(ExitCode::SUCCESS)
}

/// An empty database in a directory of its own in the temp dir.
fn fresh_store() -> Result<(PathBuf, Store), AnyError> {
    let dir = std::env::temp_dir().join(format!("story-service-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = Store::open(&dir.join("stories.db"))?;
    Ok((dir, store))
}

/// Serves until the process is stopped.
async fn serve(options: Options) -> Result<ExitCode, AnyError> {
    let addr = options.addr.unwrap_or(([127, 0, 0, 1], 3000).into());
    let db = options
        .db
        .unwrap_or_else(|| std::env::temp_dir().join("story-service.db"));
    let store = Store::open(&db)?;
    let listener = TcpListener::bind(addr).await?;
    println!("listening on http://{addr}, stories in {}", db.display());
    let locks = Arc::new(LockManager::new());
    axum::serve(listener, service::router(options.service, store, locks)).await?;
    Ok(ExitCode::SUCCESS)
}

/// Drives a service started with `serve`. Its stories should start empty:
/// lines left by an earlier run count as never acknowledged.
async fn drive(options: Options) -> Result<ExitCode, AnyError> {
    let addr = options.addr.ok_or("drive needs --addr")?;
    Ok(report(&driver::drive(addr, options.driver).await?))
}

/// Prints the summary and the verdict; failure if anything went wrong.
fn report(summary: &driver::Summary) -> ExitCode {
    summary.print();
    let problems = summary.problems();
    if !problems.is_empty() {
        println!("FAILED: {}", problems.join("; "));
        return ExitCode::FAILURE;
    }
    if summary.lock {
        println!("ok: every acknowledged append is stored exactly once");
    } else {
        println!("ok: without the lock, lost updates are the expected outcome");
    }
    ExitCode::SUCCESS
}

/// The command line, every option of every command.
struct Options {
    addr: Option<SocketAddr>,
    db: Option<PathBuf>,
    service: service::Config,
    driver: driver::Config,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, AnyError> {
        let mut options = Options {
            addr: None,
            db: None,
            service: service::Config {
                lock: true,
                wait: Duration::from_millis(20),
                max_waiters: 8,
                work: Duration::from_millis(3),
            },
            driver: driver::Config {
                clients: 32,
                requests: 50,
            },
        };
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--no-lock" => options.service.lock = false,
                "--wait-ms" => options.service.wait = Duration::from_millis(parsed(value()?)?),
                "--max-waiters" => options.service.max_waiters = parsed(value()?)?,
                "--work-ms" => options.service.work = Duration::from_millis(parsed(value()?)?),
                "--db" => options.db = Some(value()?.into()),
                "--clients" => options.driver.clients = parsed(value()?)?,
                "--requests" => options.driver.requests = parsed(value()?)?,
                "--addr" => options.addr = Some(parsed(value()?)?),
                _ => return Err(format!("unknown option {flag}").into()),
            }
        }
        Ok(options)
    }
}

/// Parses an option's value.
fn parsed<T: FromStr>(text: String) -> Result<T, AnyError> {
    text.parse()
        .map_err(|_| format!("cannot parse {text:?}").into())
}
