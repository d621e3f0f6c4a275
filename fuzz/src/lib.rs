//! Fuzz harness support for satchel-core.
//!
//! The properties live in [`checks`], one module per target; `fuzz_targets/*.rs` are one-line
//! wrappers around them. `core/tests/fuzz_corpus.rs` compiles the same `checks` module (with
//! `#[path]`) and replays every file under `corpus/` and `regressions/` on stable, so each
//! crash ever found stays a test.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checks;
