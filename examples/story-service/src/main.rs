//! A web service that keeps stories in SQLite and serializes the updates of
//! each story with a `LockManager<u64>`.
//!
//! ```text
//! story-service serve [OPTIONS]   serve until stopped
//! ```

mod service;
mod store;

use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::store::Store;

const USAGE: &str = "\
usage: story-service <serve|help> [OPTIONS]

  serve    run the service (default --addr 127.0.0.1:3000)

options:
  --no-lock            take no story locks, to see updates lost
  --wait-ms N          longest wait for a lock before a 503 [20]
  --max-waiters N      most requests queued per story; more get a 503 [8]
  --work-ms N          async work between a story's read and write [3]
  --db PATH            the SQLite file (serve) [story-service.db in the temp dir]
  --addr ADDR          where the service listens";

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
            "serve" => serve(options).await,
            _ => Err(USAGE.into()),
        },
        Err(error) => Err(format!("{error}\n\n{USAGE}").into()),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("story-service: {error}");
        ExitCode::from(2)
    })
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
    axum::serve(listener, service::router(options.service, store)).await?;
    Ok(ExitCode::SUCCESS)
}

/// The command line, every option of every command.
struct Options {
    addr: Option<SocketAddr>,
    db: Option<PathBuf>,
    service: service::Config,
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
        };
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--no-lock" => options.service.lock = false,
                "--wait-ms" => options.service.wait = Duration::from_millis(parsed(value()?)?),
                "--max-waiters" => options.service.max_waiters = parsed(value()?)?,
                "--work-ms" => options.service.work = Duration::from_millis(parsed(value()?)?),
                "--db" => options.db = Some(value()?.into()),
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
