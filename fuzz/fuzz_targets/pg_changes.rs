#![no_main]
// The checks live in src/lib.rs, shared with crates/keygate-core/tests/fuzz_replay.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| keygate_fuzz::pg_changes(data));
