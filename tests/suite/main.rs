//! The test suite, one module per concern, in one test binary: linked
//! once instead of once per file, which makes the first `cargo test` about
//! a fifth faster. Run one concern with a filter: `cargo test --test suite
//! many::`. The loom models are a crate of their own (`tests/loom/`), built
//! only under `--cfg loom`.
#![cfg(not(loom))]

#[macro_use]
mod common;

mod auto_traits;
mod blocking;
mod bounded;
mod deadlines;
mod diagnostics;
mod extend;
mod hot;
mod layers;
mod many;
mod memory;
mod misuse;
mod model;
mod nesting;
mod runtimes;
mod seed;
mod semantics;
mod stress;
mod transfers;
