//! What a run leaves in `criterion/` and `bench-results/` (the benches' and the script's files).

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use crate::names::{Lock, FLOOR, KEY_ONLY, OURS, OURS_ONE_BY_ONE, PEERS, REFERENCES, SCENARIOS};

pub type Row = HashMap<String, String>;

/// Criterion's medians, as a table of `id`, `name` and `ns` (per operation).
pub const CRITERION: &str = "criterion.tsv";

/// The queue bench's phases; a phase's columns are named without the hyphen.
pub const PHASES: [&str; 3] = ["enqueue", "cancel", "hand-off"];

#[derive(Default)]
pub struct Results {
    /// The tables ([`CRITERION`] among them), and the script's one-line files.
    tables: HashMap<String, Vec<Row>>,
    run: HashMap<String, String>,
}

impl Results {
    /// A missing file leaves its part empty: a partial run still reports.
    pub fn read(target: &Path) -> Results {
        let mut results = read_files(&target.join("bench-results"));
        let times = criterion_times(&target.join("criterion"));
        if !times.is_empty() {
            results.tables.insert(CRITERION.into(), times);
        }
        results
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    pub fn table(&self, name: &str) -> &[Row] {
        self.tables.get(name).map_or(&[], Vec::as_slice)
    }

    pub fn run(&self, name: &str) -> &str {
        self.run.get(name).map_or("?", String::as_str)
    }

    fn find(&self, file: &str, keys: [(&str, &str); 2], value: &str) -> Option<f64> {
        let is = |r: &&Row| keys.iter().all(|(column, key)| cell(r, column) == *key);
        self.table(file).iter().find(is).map(|r| number(r, value))
    }

    pub fn time(&self, id: &str, name: &str) -> Option<f64> {
        self.find(CRITERION, [("id", id), ("name", name)], "ns")
    }

    pub fn memory(&self, name: &str, metric: &str) -> Option<f64> {
        self.find("memory.tsv", [("peer", name), ("metric", metric)], "value")
    }

    /// The fastest peer but this crate and the floor (no lock), FIFO if `fifo`.
    pub fn fastest(&self, id: &str, fifo: bool) -> Option<(f64, &'static str)> {
        let rival = |l: &&Lock| ![OURS.name, FLOOR.name].contains(&l.name) && l.fifo >= fifo;
        let time = |lock: &Lock| Some((self.time(id, lock.name)?, lock.name));
        let times = PEERS.iter().filter(rival).filter_map(time);
        times.min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)))
    }
}

/// Every lock the benches time, in the report's order.
pub fn locks() -> impl Iterator<Item = &'static Lock> {
    let others = PEERS.iter().chain(&REFERENCES);
    let others = others.filter(|lock| lock.name != OURS.name);
    [&OURS, &OURS_ONE_BY_ONE].into_iter().chain(others)
}

/// Every name a criterion group may hold: the locks, then the key alone.
pub fn criterion_names() -> impl Iterator<Item = &'static str> {
    locks().map(|lock| lock.name).chain([KEY_ONLY])
}

/// Criterion's median per element of every benchmark that ran.
fn criterion_times(dir: &Path) -> Vec<Row> {
    let ids = SCENARIOS.iter().map(|s| s.id);
    let benches = ids.flat_map(|id| criterion_names().map(move |name| (id, name)));
    let median = |(id, name): (&str, &str)| {
        let base = dir.join(id).join(name).join("new");
        let json = |file| -> Option<serde_json::Value> {
            serde_json::from_str(&fs::read_to_string(base.join(file)).ok()?).ok()
        };
        let (meta, estimates) = (json("benchmark.json")?, json("estimates.json")?);
        // Elements per iteration, where the bench sets a throughput.
        let elements = meta["throughput"]["Elements"].as_f64().unwrap_or(1.0);
        let ns = estimates["median"]["point_estimate"].as_f64()? / elements;
        let cells = [("id", id), ("name", name), ("ns", &ns.to_string())];
        let cell = |(column, text): (&str, &str)| (column.to_string(), text.to_string());
        Some(Row::from(cells.map(cell)))
    };
    benches.filter_map(median).collect()
}

/// The benches' `.csv` and `.tsv` tables in `dir`, and the script's files.
pub fn read_files(dir: &Path) -> Results {
    let mut results = Results::default();
    let entries = fs::read_dir(dir).into_iter().flatten().flatten();
    for path in entries.map(|e| e.path()) {
        let (Some(name), Ok(text)) = (path.file_name(), fs::read_to_string(&path)) else {
            continue;
        };
        let name = name.to_string_lossy().into_owned();
        let sep = match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => ',',
            Some("tsv") => '\t',
            _ => {
                results.run.insert(name, text.trim().into());
                continue;
            }
        };
        let mut lines = text.lines().filter(|line| !line.trim().is_empty());
        let header: Vec<&str> = lines.next().unwrap_or("").split(sep).collect();
        let cell = |(h, c): (&&str, &str)| (h.to_string(), c.to_string());
        let row = |line: &str| header.iter().zip(line.split(sep)).map(cell).collect();
        results.tables.insert(name, lines.map(row).collect());
    }
    results
}

/// A cell; a missing column is a bug in the bench, so it stops the report.
pub fn cell<'a>(row: &'a Row, column: &str) -> &'a str {
    let text = row.get(column).map(String::as_str);
    text.unwrap_or_else(|| panic!("no `{column}` column"))
}

pub fn number(row: &Row, column: &str) -> f64 {
    let text = cell(row, column);
    let parsed = text.parse();
    parsed.unwrap_or_else(|_| panic!("`{column}` is not a number: {text:?}"))
}
