//! The modules of `src/` form layers that only point down, in the order
//! ARCHITECTURE.md documents: reading the `crate::` paths each file uses
//! (outside comments), no module uses one of its own layer or above.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Each module of `src/` with the modules its code names as `crate::name`
/// or `crate::{name, ...}`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    for entry in fs::read_dir(src).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.extension().map_or(true, |ext| ext != "rs") {
            continue;
        }
        let module = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(&path).expect("a source file");
        // Comments dropped, lines joined: a `use crate::{..}` may span lines.
        let code: String = text
            .lines()
            .map(|line| line.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(" ");
        let mut uses = BTreeSet::new();
        for (at, _) in code.match_indices("crate::") {
            for name in first_segments(&code[at + "crate::".len()..]) {
                if name != module {
                    uses.insert(name);
                }
            }
        }
        graph.insert(module, uses);
    }
    graph
}

/// The modules named at the start of `path`, the text after a `crate::`:
/// one for `name::...`, each item's first segment for `{a, b::c, ...}`.
fn first_segments(path: &str) -> Vec<String> {
    let ident = |text: &str| -> String {
        text.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = path.strip_prefix('{') else {
        return vec![ident(path)];
    };
    // Split the group at its top-level commas, up to its closing brace.
    let (mut names, mut depth, mut item_start) = (Vec::new(), 0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                names.push(ident(&group[item_start..i]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                names.push(ident(&group[item_start..i]));
                item_start = i + 1;
            }
            _ => {}
        }
    }
    names.retain(|name| !name.is_empty());
    names
}

#[test]
fn grouped_imports_name_each_module() {
    assert_eq!(first_segments("shards::{Claim, Shards};"), ["shards"]);
    assert_eq!(
        first_segments("{error::Busy, guard::{A, B}, manager}; use"),
        ["error", "guard", "manager"]
    );
    assert_eq!(first_segments("{a, b,}"), ["a", "b"]);
}

/// The layers of `src/`, bottom first, as ARCHITECTURE.md lists them: a
/// module may use only modules of the layers below its own.
const LAYERS: &[&[&str]] = &[
    // Plain data and helpers: no locking, no waiting.
    &["error", "hashed", "histogram", "small", "sync", "trace"],
    // The reports; one key's wait queue, linked through a slab; parking a
    // thread on a future.
    &["diagnostics", "hot", "queue", "wait"],
    // One shard's bookkeeping, run under its mutex; the reports' `serde`.
    &["serialize", "state"],
    // The shards, and every rule for taking their mutexes.
    &["shards"],
    // Who waits for whom among the requests that nest.
    &["graph"],
    // The manager and its construction; the two ways to hold it.
    &["manager"],
    // What a caller holds; what the manager reports.
    &["guard", "report"],
    // Taking several keys in order, for a multi-key request or an extend.
    &["take"],
    // The ways to acquire, guards that take more keys, and the
    // process-wide manager.
    &["acquire", "many", "extend", "global"],
    // The crate root only declares and re-exports.
    &["lib"],
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("src/{module}.rs is in no layer: add it to LAYERS"))
}

#[test]
fn every_module_uses_only_the_layers_below_its_own() {
    let graph = imports();
    assert!(graph.contains_key("manager") && graph.contains_key("queue"));
    for (module, uses) in &graph {
        let layer = layer_of(module);
        for used in uses {
            assert!(
                layer_of(used) < layer,
                "{module} (layer {layer}) uses {used} (layer {})",
                layer_of(used)
            );
        }
    }
}
