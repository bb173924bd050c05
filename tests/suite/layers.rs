//! The modules of `src/` form layers that only point down, in the order
//! ARCHITECTURE.md documents: reading the `crate::` paths each file uses
//! (outside comments), no module uses one of its own layer or above.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Each module of `src/` with the modules its code names as `crate::name`.
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
        let mut uses = BTreeSet::new();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            for (at, _) in code.match_indices("crate::") {
                let name: String = code[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if name != module {
                    uses.insert(name);
                }
            }
        }
        graph.insert(module, uses);
    }
    graph
}

/// The layers of `src/`, bottom first, as ARCHITECTURE.md lists them: a
/// module may use only modules of the layers below its own.
const LAYERS: &[&[&str]] = &[
    // Plain data and helpers: no locking, no waiting.
    &["error", "hashed", "small", "sync", "trace"],
    // The reports; one key's wait queue, linked through a slab.
    &["diagnostics", "queue"],
    // One shard's bookkeeping, run under its mutex; the reports' `serde`.
    &["serialize", "state"],
    // The shards, and every rule for taking their mutexes.
    &["shards"],
    // The manager: construction, queries, reports.
    &["manager"],
    // What a caller holds, then the ways to get it.
    &["guard"],
    &["acquire", "many", "global"],
    &["blocking"],
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
