//! `bench-report TARGET_DIR [RESULTS_MD CHARTS_DIR]`: a run of the suite as
//! `benches/RESULTS.md` and charts in `docs/charts` (the package holds `docs/`).

mod charts;
mod format;
mod markdown;
#[allow(dead_code)] // Shared with the benches, which use what the report does not.
#[path = "../common/names.rs"]
mod names;
mod results;
mod targets;
#[cfg(test)]
mod tests;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::{env, fs, process};

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
    fs::create_dir_all(out.parent().unwrap_or(Path::new(".")))?;
    fs::write(&out, markdown::results_md(&results))?;
    eprintln!("wrote {}", out.display());
    charts::draw(&results, &charts)
}
