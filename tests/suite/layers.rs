//! The modules of `src/` form layers that only point down: reading the
//! `crate::` paths each file uses (outside comments), no module reaches,
//! directly or through others, back to itself. The plain queue and the
//! state at the bottom never depend on the manager or the futures above.

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

/// A cycle through `module`, if one is reachable from it.
fn cycle_from(
    graph: &BTreeMap<String, BTreeSet<String>>,
    module: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(at) = path.iter().position(|m| m == module) {
        let mut cycle = path[at..].to_vec();
        cycle.push(module.to_owned());
        return Some(cycle);
    }
    if done.contains(module) {
        return None;
    }
    path.push(module.to_owned());
    for next in graph.get(module).into_iter().flatten() {
        if let Some(cycle) = cycle_from(graph, next, path, done) {
            return Some(cycle);
        }
    }
    path.pop();
    done.insert(module.to_owned());
    None
}

#[test]
fn modules_import_each_other_without_a_cycle() {
    let graph = imports();
    assert!(graph.contains_key("manager") && graph.contains_key("queue"));
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, module, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_state_layers_never_reach_the_manager() {
    let graph = imports();
    for bottom in [
        "clock",
        "contention",
        "diagnostics",
        "hashed",
        "notice",
        "queue",
        "state",
        "shards",
        "sync",
    ] {
        let mut seen = BTreeSet::new();
        let mut stack = vec![bottom.to_owned()];
        while let Some(module) = stack.pop() {
            for next in graph.get(&module).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        for top in ["manager", "acquire", "guard", "many", "blocking", "global"] {
            assert!(!seen.contains(top), "{bottom} reaches {top}: {seen:?}");
        }
    }
}
