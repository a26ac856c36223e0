//! Replays the fuzz corpora and crash regressions kept in fuzz/ through the same
//! checks the libFuzzer targets run (fuzz/src/lib.rs), on stable Rust, so the
//! inputs that once found a defect stay checked by `cargo test` and `npm test`.

#[path = "../../../fuzz/src/lib.rs"]
mod checks;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("rule_parse", checks::rule_parse),
    ("ip_parse", checks::ip_parse),
    ("secret_check", checks::secret_check),
    ("glob_match", checks::glob_match),
    ("dav_match", checks::dav_match),
    ("decision", checks::decision),
    ("decision_dav", checks::decision_dav),
    ("store_load", checks::store_load),
    ("store_catch_up", checks::store_catch_up),
    ("pg_changes", checks::pg_changes),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// Runs every kept input of one target; returns (inputs run, failures as "path: message").
fn replay(target: &str, check: Target) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut count = 0;
    for kind in ["corpus", "regressions"] {
        for file in files_in(&fuzz_dir().join(kind).join(target)) {
            let data = std::fs::read(&file).unwrap();
            count += 1;
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&data))) {
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                let name = file.strip_prefix(fuzz_dir()).unwrap_or(&file).display().to_string();
                failures.push(format!("fuzz/{name}: {message}"));
            }
        }
    }
    (count, failures)
}

fn run(target: &str) {
    let check = TARGETS.iter().find(|(name, _)| *name == target).unwrap().1;
    let (count, failures) = replay(target, check);
    assert!(count > 0, "no corpus for {target} in {}", fuzz_dir().display());
    assert!(failures.is_empty(), "{} of {count} kept inputs of {target} fail:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn replay_rule_parse() {
    run("rule_parse");
}

#[test]
fn replay_ip_parse() {
    run("ip_parse");
}

#[test]
fn replay_secret_check() {
    run("secret_check");
}

#[test]
fn replay_glob_match() {
    run("glob_match");
}

#[test]
fn replay_dav_match() {
    run("dav_match");
}

#[test]
fn replay_decision() {
    run("decision");
}

#[test]
fn replay_decision_dav() {
    run("decision_dav");
}

#[test]
fn replay_store_load() {
    run("store_load");
}

#[test]
fn replay_store_catch_up() {
    run("store_catch_up");
}

#[test]
fn replay_pg_changes() {
    run("pg_changes");
}
