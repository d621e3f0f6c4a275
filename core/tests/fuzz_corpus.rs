//! Replays the fuzzers' checked-in inputs on stable: every seed under `fuzz/corpus/<target>/`
//! and every crash ever found under `fuzz/regressions/<target>/` goes through exactly the
//! checks the fuzz targets run (`fuzz/src/checks/`, compiled into this test as a module).
//!
//! A failure names the file; reproduce it under the fuzzer with
//! `cargo +nightly fuzz run <target> fuzz/<dir>/<target>/<file>` (from the repository root,
//! `--fuzz-dir fuzz`), fix the core, and keep the file in `fuzz/regressions/`.

use std::fs;
use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/checks/mod.rs"]
#[allow(unreachable_pub)]
mod checks;

/// `fuzz/` of this repository.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `fuzz/<dir>/<target>/`, sorted; none if the folder does not exist.
fn inputs(dir: &str, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(fuzz_dir().join(dir).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `target`'s check on every input in `dir`; returns how many ran.
fn replay(dir: &str, target: &str) -> usize {
    let check = checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, check)| *check)
        .unwrap_or_else(|| panic!("no target {target}"));
    let files = inputs(dir, target);
    for file in &files {
        let data = fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{} fails its check", file.display());
    }
    files.len()
}

macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {$(
        #[test]
        fn $target() {
            let seeds = replay("corpus", stringify!($target));
            assert!(seeds > 0, "no seed corpus for {}", stringify!($target));
            replay("regressions", stringify!($target));
        }
    )*};
}

replay_tests!(
    request_head,
    path,
    range_and_conditionals,
    connection,
    cache_ops,
    response_head,
    client,
    client_pipeline,
    names,
    proxy_header
);

#[test]
fn every_target_is_replayed_and_every_seed_is_checked_in() {
    assert_eq!(
        checks::TARGETS.len(),
        10,
        "add the new target to replay_tests!"
    );
    for (target, name, data) in checks::seeds::all() {
        let file = fuzz_dir().join("corpus").join(target).join(&name);
        let on_disk = fs::read(&file).unwrap_or_default();
        assert!(
            on_disk == data,
            "{} is missing or stale: run this test's `write_seeds`",
            file.display()
        );
    }
}

/// Writes the seed corpora (`fuzz/corpus/<target>/seed-*`) from `checks::seeds`.
#[test]
#[ignore = "writes files; run with --ignored to regenerate the seed corpora"]
fn write_seeds() {
    for (target, name, data) in checks::seeds::all() {
        let dir = fuzz_dir().join("corpus").join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(name), data).unwrap();
    }
}
