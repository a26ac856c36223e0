//! Helpers shared by the integration tests (each test file includes this module).
#![allow(dead_code)]

pub mod pg;
pub mod reference;
pub mod seeded;
pub mod world;

use std::sync::atomic::{AtomicBool, Ordering};

use std::time::{Duration, Instant};

use keygate_core::{AuditQuery, Call, ErrorCode, KeyStore, NewKey, Reason, UserInput};

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// 200 admin calls refused (an unknown role) and 200 written, on this thread, while
/// another thread reads and verifies the audit trail without pause: every read must
/// succeed and find the chain whole. An admin call holds its transaction open across
/// several backend calls, so a read run inside it failed (or ended it early). Returns
/// the number of entries written.
pub fn audit_reads_beside_admin_calls(store: &KeyStore) -> u64 {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut reads = 0;
            while !done.load(Ordering::Acquire) {
                let report = store.verify_audit().unwrap();
                assert!(report.ok, "{report:?}");
                store.audit(&Default::default()).unwrap();
                reads += 1;
            }
            reads
        });
        // Set however this thread leaves, a failed assertion included: left unset, the reader
        // looped on and the scope waited for it, so a broken write hung the test instead of failing it.
        let stop_reader = StopOnDrop(&done);
        for i in 0..200 {
            let refused = store.put_user(&UserInput { id: format!("u{i}"), roles: vec!["ghost".into()], ..Default::default() }, None);
            assert_eq!(refused.unwrap_err().code, ErrorCode::UnknownRole);
            store.put_role(&format!("r{i}"), &["api:*".into()], None).unwrap();
        }
        drop(stop_reader);
        assert!(reader.join().unwrap() > 0);
    });
    200
}

/// Stores user `svc` (all rights) and one key of it, expiring in a day, with
/// these rules; both calls are audited as `alice`. Returns the key's id and secret.
pub fn seed_with(store: &KeyStore, rules: &[&str]) -> (String, String) {
    store.put_user(&UserInput { id: "svc".into(), rights: vec!["*:*".into()], ..Default::default() }, Some("alice")).unwrap();
    let issued = store
        .create_key(
            &NewKey {
                user_id: "svc".into(),
                description: "nightly".into(),
                expires_at: Some(keygate_core::internals::system_now() + world::DAY),
                rules: world::strings(rules),
                state: None,
            },
            Some("alice"),
        )
        .unwrap();
    (issued.key.id, issued.secret)
}

/// The instant the purge tests' stores are frozen at.
pub const PURGE_T0: i64 = 1_800_000_000_000;

/// An in-memory store, its clock at [`PURGE_T0`], with user `u`, `expired` keys that
/// expire a day later and one that expires five days later (its id returned): opened
/// nine days on, the first have been expired for eight days (past the default seven),
/// the last for four. The store to copy into the store under test.
pub fn store_with_expiring_keys(expired: usize) -> (KeyStore, String) {
    let store = KeyStore::in_memory(keygate_core::Options { now: Some(PURGE_T0), ..Default::default() }).unwrap();
    store.put_user(&UserInput { id: "u".into(), ..Default::default() }, None).unwrap();
    let key = |days: i64| NewKey {
        user_id: "u".into(),
        description: String::new(),
        expires_at: Some(PURGE_T0 + days * world::DAY),
        rules: vec![],
        state: None,
    };
    for _ in 0..expired {
        store.create_key(&key(1), None).unwrap();
    }
    let kept = store.create_key(&key(5), None).unwrap().key.id;
    (store, kept)
}

/// Two stores on one backend: `reader`'s `health().applied_version` moves to the version of
/// `writer`'s revocation only once `reader`'s checks answer from it. A check in progress on
/// `reader` holds its state while the revocation arrives: the backend's cursor has then moved,
/// the registry has not, and health used to report the cursor. Closes both stores.
pub fn health_follows_what_checks_see(writer: &KeyStore, reader: &KeyStore) {
    let (id, secret) = seed_with(writer, &["session:*"]);
    let call = Call { secret: secret.as_bytes(), service: b"session", api: b"userLogon", ip: None };
    let wait_for = |want: Reason| {
        let start = Instant::now();
        while reader.check(call).reason != want {
            assert!(start.elapsed() < Duration::from_secs(10), "the change never arrived");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    wait_for(Reason::Allowed);
    // The reader's watcher runs its first maintenance in the round that brought the key: with
    // nothing to purge it takes no write lock, so the check held open below cannot hold that
    // lock back from the writer's revocation (a purge that began a write would wait for the
    // registry the check holds, and the revocation for the purge, until its lock timeout).
    let before = reader.health().applied_version;
    assert_eq!(before, writer.health().applied_version);
    let pending = reader.begin_check(secret.as_bytes());
    writer.set_state(&id, "revoked", None).unwrap();
    let revoked_at = writer.health().applied_version;
    assert_eq!(revoked_at, before + 1);
    // The reader's watcher reads the revocation meanwhile, and waits to apply it.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(reader.health().applied_version, before, "the revocation is not applied yet");
    assert_eq!(pending.check(call).reason, Reason::Allowed, "decided as of the version health reported");
    wait_for(Reason::Revoked);
    // Recorded before the registry is released: as soon as a check sees the change.
    assert_eq!(reader.health().applied_version, revoked_at);
    writer.close().unwrap();
    reader.close().unwrap();
}

/// The longest of the `health()` calls made every 20 ms for `over` (monitoring asks it from
/// the event loop: it must never wait for the store's I/O).
pub fn slowest_health_over(store: &KeyStore, over: Duration) -> Duration {
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    while start.elapsed() < over {
        let asked = Instant::now();
        let _ = store.health();
        slowest = slowest.max(asked.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    slowest
}

/// A check of the key `seed_with` made (its rules `session:*`, maybe an IP range holding 10.1.2.3).
pub fn seeded_check(store: &KeyStore, secret: &str) -> Reason {
    store.check(Call { secret: secret.as_bytes(), service: b"session", api: b"userLogon", ip: Some(b"10.1.2.3") }).reason
}

/// Waits (up to `within`) until `store` answers `want` to [`seeded_check`] of `secret`;
/// panics naming what it answered.
pub fn wait_for_answer(what: &str, store: &KeyStore, secret: &str, want: Reason, within: Duration) {
    let start = Instant::now();
    loop {
        let got = seeded_check(store, secret);
        if got == want {
            return;
        }
        assert!(start.elapsed() < within, "{what}: still answers {got:?} after {within:?}, where a fresh open answers {want:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// An open store (holding `secret`'s key) whose audit table, `table`, another host or process
/// gives an entry past the recorded head behind keygate's back (`run`: SQL on the store's
/// database, answering the first column of the first row). Every write would collide with it:
/// admin calls are refused with `STORE_CORRUPT` naming both numbers, nothing written, while
/// checks go on (the keys are not in doubt) and verification fails at the entry; once the
/// row is gone, writes go on. The same in both stores.
pub fn an_audit_row_past_the_head_refuses_writes(store: &KeyStore, secret: &str, table: &str, run: impl Fn(&str) -> String) {
    let head = store.audit(&AuditQuery { limit: Some(1), ..Default::default() }).unwrap()[0].seq;
    let next = head + 1;
    run(&format!(
        "INSERT INTO {table} (seq, at, actor, action, key_id, user_id, detail, hash)
         SELECT seq + 1, at, actor, action, key_id, user_id, detail, hash FROM {table} WHERE seq = {head}"
    ));
    for _ in 0..2 {
        let refused = store.put_user(&UserInput { id: "late".into(), ..Default::default() }, Some("alice")).unwrap_err();
        assert_eq!(refused.code, ErrorCode::StoreCorrupt, "{}", refused.message);
        let named = format!("its audit trail has entries (up to {next}) beyond its recorded head ({head})");
        assert!(refused.message.contains(&named), "{}", refused.message);
    }
    assert!(store.get_user("late").unwrap().is_none(), "nothing applied");
    assert_eq!(run(&format!("SELECT count(*) FROM {table}")), next.to_string(), "nothing written");
    assert_eq!(seeded_check(store, secret), Reason::Allowed);
    let report = store.verify_audit().unwrap();
    assert_eq!((report.ok, report.first_bad_seq), (false, Some(next)), "{report:?}");

    run(&format!("DELETE FROM {table} WHERE seq = {next}"));
    store.put_user(&UserInput { id: "late".into(), ..Default::default() }, Some("alice")).unwrap();
    let report = store.verify_audit().unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries, next);
}

/// Audit rows of a store (at least three entries, in `table`) edited behind keygate's back
/// (`run`, as above) to a number or a time keygate never writes: numbered below 1, or at an
/// instant JavaScript's Date cannot hold (it would be listed as an Invalid Date, and a
/// negative number as 18446744073709552000). Each is damage: listing it is `STORE_CORRUPT`
/// naming it (entries around it still list), and verification fails naming it. The same in
/// both stores.
pub fn audit_rows_keygate_never_writes_are_damage(store: &KeyStore, table: &str, run: impl Fn(&str) -> String) {
    let all = AuditQuery { limit: Some(1_000), ..Default::default() };
    let newest = AuditQuery { limit: Some(1), ..Default::default() };
    let at = run(&format!("SELECT at FROM {table} WHERE seq = 2"));
    let out_of_range = |at: &str| {
        (
            format!("UPDATE {table} SET at = {at} WHERE seq = 2"),
            format!("audit entry 2's time ({at}) is not a representable date"),
            (Some(2), format!("entry 2 was altered: its time ({at}) is not a representable date")),
        )
    };
    let numbered = |seq: i64| {
        (
            format!("UPDATE {table} SET seq = {seq} WHERE seq = 2"),
            format!("an audit entry is numbered {seq} (keygate numbers entries from 1)"),
            (Some(1), format!("an entry is numbered {seq}, before entry 1 (keygate numbers entries from 1)")),
        )
    };
    for (damage, listed, (first_bad_seq, problem)) in [
        out_of_range("9000000000000000000"),
        out_of_range("8640000000000001"),
        out_of_range("-8640000000000001"),
        numbered(-2),
        numbered(0),
    ] {
        run(&damage);
        let error = store.audit(&all).unwrap_err();
        assert_eq!(error.code, ErrorCode::StoreCorrupt, "{damage}: {}", error.message);
        assert!(error.message.contains(&listed), "{damage}: {}", error.message);
        assert_eq!(store.audit(&newest).unwrap().len(), 1, "{damage}: the entries after it still list");
        let report = store.verify_audit().unwrap();
        assert_eq!(
            (report.ok, report.first_bad_seq, report.problem.as_deref()),
            (false, first_bad_seq, Some(problem.as_str())),
            "{damage}"
        );
        run(&format!("UPDATE {table} SET seq = 2, at = {at} WHERE seq <= 2 AND seq <> 1"));
        assert!(store.verify_audit().unwrap().ok, "{damage}: repaired");
    }
    // The last instant a Date holds is one keygate could have written: listed (the entry was altered all the same).
    run(&format!("UPDATE {table} SET at = 8640000000000000 WHERE seq = 2"));
    let listed = store.audit(&all).unwrap();
    assert_eq!(listed.iter().find(|e| e.seq == 2).map(|e| e.at), Some(8_640_000_000_000_000));
    let report = store.verify_audit().unwrap();
    assert_eq!((report.ok, report.first_bad_seq), (false, Some(2)), "{report:?}");
    run(&format!("UPDATE {table} SET at = {at} WHERE seq = 2"));
    assert_eq!(store.audit(&all).unwrap().len(), 3);
    assert!(store.verify_audit().unwrap().ok);
}
