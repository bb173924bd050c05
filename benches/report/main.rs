//! `bench-report`: the results of a run of the suite (`scripts/bench.sh`)
//! as `benches/RESULTS.md` and its charts.
//!
//! ```text
//! cargo run --release -p lock-manager-benches --bin bench-report -- TARGET_DIR [RESULTS_MD CHARTS_DIR]
//! ```
//!
//! Reads criterion's estimates under `TARGET_DIR/criterion` and what the
//! other benches and the script leave in `TARGET_DIR/bench-results`;
//! writes the tables to RESULTS_MD (default `benches/RESULTS.md`) and the
//! charts to CHARTS_DIR (default `docs/charts`: README.md shows one, and
//! the published package holds `docs/`, not `benches/`). Every ratio
//! comes from figures of that one run.

mod charts;
mod format;
mod markdown;
// Shared with the benches, which use what the report does not.
#[allow(dead_code)]
#[path = "../common/names.rs"]
mod names;
mod results;
mod targets;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::{env, fs, process};

/// Writes the report, or says why it could not.
fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<PathBuf> = env::args_os().skip(1).map(PathBuf::from).collect();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (target, out, charts) = match args.as_slice() {
        [target] => (target, here.join("RESULTS.md"), here.join("../docs/charts")),
        [target, out, charts] => (target, out.clone(), charts.clone()),
        _ => {
            eprintln!("usage: bench-report TARGET_DIR [RESULTS_MD CHARTS_DIR]");
            process::exit(2);
        }
    };
    let results = results::Results::read(target);
    // Say so rather than overwrite the last report with empty tables.
    if results.is_empty() {
        eprintln!("bench-report: no results under {}", target.display());
        process::exit(1);
    }
    if let Some(line) = markdown::contended_line(&results) {
        println!("{line}");
    }
    let targets = targets::targets(&results);
    let md = markdown::results_md(&results, &targets);
    fs::create_dir_all(out.parent().unwrap_or(Path::new(".")))?;
    fs::write(&out, md)?;
    eprintln!("wrote {}", out.display());
    charts::draw(&results, &charts)
}
