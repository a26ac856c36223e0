//! The durable store: persistence, refusal of files it cannot use, the audit
//! chain, and two handles on one file seeing each other's changes.

mod common;

use std::time::{Duration, Instant};

use keygate_core::{Call, ErrorCode, KeyStore, Options, Reason};

fn open(path: &std::path::Path) -> keygate_core::Result<KeyStore> {
    KeyStore::open(path.to_str().unwrap(), Options::default())
}

/// User `svc` and one key of it (see `common::seed_with`).
fn seed(store: &KeyStore) -> (String, String) {
    common::seed_with(store, &["session:*", "ip=10.0.0.0/8"])
}

fn allowed(store: &KeyStore, secret: &str) -> Reason {
    store.check(Call { secret: secret.as_bytes(), service: b"session", api: b"userLogon", ip: Some(b"10.1.2.3") }).reason
}

#[test]
fn changes_survive_reopening_and_the_file_holds_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let store = open(&path).unwrap();
    let (id, secret) = seed(&store);
    store.set_state(&id, "suspended", None).unwrap();
    store.close().unwrap();
    let reopened = open(&path).unwrap();
    let key = reopened.get_key(&id).unwrap().unwrap();
    assert_eq!(
        (key.state, key.rules.clone(), key.description.as_str()),
        ("suspended", vec!["session:*".to_string(), "ip=10.0.0.0/8".to_string()], "nightly")
    );
    assert_eq!(allowed(&reopened, &secret), Reason::Suspended);
    reopened.set_state(&id, "active", None).unwrap();
    assert_eq!(allowed(&reopened, &secret), Reason::Allowed);
    reopened.close().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let body = &secret.as_bytes()[3..];
    assert!(!bytes.windows(body.len()).any(|w| w == body), "the secret is not in the file");
}

#[test]
fn files_it_cannot_use_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    assert_eq!(open(&garbage).err().unwrap().code, ErrorCode::StoreCorrupt);
    assert_eq!(std::fs::read(&garbage).unwrap(), vec![0x5a; 8192]);
    assert_eq!(open(dir.path()).err().unwrap().code, ErrorCode::StoreIo, "a directory");
    assert_eq!(open(&dir.path().join("missing/keys.db")).err().unwrap().code, ErrorCode::StoreIo);

    let newer = dir.path().join("newer.db");
    open(&newer).unwrap().close().unwrap();
    rusqlite::Connection::open(&newer).unwrap().execute_batch("PRAGMA user_version = 99").unwrap();
    let before = std::fs::read(&newer).unwrap();
    let err = open(&newer).err().unwrap();
    assert_eq!(err.code, ErrorCode::StoreCorrupt);
    assert!(err.message.contains("newer keygate"), "{}", err.message);
    assert_eq!(std::fs::read(&newer).unwrap(), before);

    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign).unwrap().execute_batch("CREATE TABLE t (x)").unwrap();
    assert_eq!(open(&foreign).err().unwrap().code, ErrorCode::StoreCorrupt);
}

#[test]
fn audit_chain_reports_the_first_altered_or_missing_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let store = open(&path).unwrap();
    let (id, _) = seed(&store);
    store.set_state(&id, "revoked", Some("bob")).unwrap();
    let entries = store.audit(&Default::default()).unwrap();
    assert_eq!(entries.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["setState", "createKey", "putUser"]);
    assert_eq!(entries[0].actor.as_deref(), Some("bob"));
    assert_eq!(entries[0].detail["state"], serde_json::json!(["active", "revoked"]));
    assert!(store.verify_audit().unwrap().ok);
    store.close().unwrap();

    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2", []).unwrap();
    drop(db);
    let store = open(&path).unwrap();
    let report = store.verify_audit().unwrap();
    assert_eq!((report.ok, report.first_bad_seq), (false, Some(2)));
    assert_eq!(report.problem.as_deref(), Some("entry 2 was altered"));
    store.close().unwrap();

    // A value of another type than keygate writes: the report says why the entry cannot be verified.
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute("UPDATE audit SET actor = CAST('alice' AS BLOB) WHERE seq = 2", []).unwrap();
    drop(db);
    let store = open(&path).unwrap();
    let report = store.verify_audit().unwrap();
    assert_eq!((report.ok, report.first_bad_seq), (false, Some(2)));
    assert_eq!(
        report.problem.as_deref(),
        Some("entry 2 was altered: it holds a value keygate cannot read (of another type than keygate writes, or text that is not UTF-8)")
    );
    store.close().unwrap();

    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute("UPDATE audit SET actor = 'alice' WHERE seq = 2", []).unwrap();
    db.execute("DELETE FROM audit WHERE seq = 3", []).unwrap();
    drop(db);
    let store = open(&path).unwrap();
    let report = store.verify_audit().unwrap();
    assert_eq!((report.ok, report.first_bad_seq), (false, Some(3)), "a removed last entry is noticed");
}

#[test]
fn a_second_handle_sees_changes_through_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let admin = open(&path).unwrap();
    let (id, secret) = seed(&admin);
    let integration = open(&path).unwrap();
    assert_eq!(allowed(&integration, &secret), Reason::Allowed);
    admin.set_state(&id, "revoked", None).unwrap();
    let start = Instant::now();
    while allowed(&integration, &secret) != Reason::Revoked {
        assert!(start.elapsed() < Duration::from_secs(2), "the change never arrived");
        std::thread::sleep(Duration::from_millis(1));
    }
    // A writer first applies what others changed, so its own plan sees it.
    let err = integration.set_state(&id, "active", None).unwrap_err();
    assert_eq!(err.code, ErrorCode::RevokedIsFinal);
}

#[test]
fn health_reports_a_version_only_once_checks_answer_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    common::health_follows_what_checks_see(&open(&path).unwrap(), &open(&path).unwrap());
}

/// An admin call waits (up to the 5 s busy timeout) for another process's write lock on the
/// file: `health()`, asked meanwhile, answers at once (it used to wait for the connection the
/// admin call holds).
#[test]
fn health_never_waits_behind_a_write_waiting_for_the_file_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let store = open(&path).unwrap();
    seed(&store);
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| store.put_role("ops", &["api:*".into()], None));
        std::thread::sleep(Duration::from_millis(200));
        let slowest = common::slowest_health_over(&store, Duration::from_millis(1500));
        other.execute_batch("ROLLBACK").unwrap();
        let written = writer.join().unwrap();
        assert!(slowest < Duration::from_millis(100), "health() took {slowest:?}");
        written.unwrap();
    });
    store.close().unwrap();
}

#[test]
fn a_process_too_far_behind_reloads_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let behind = open(&path).unwrap();
    let (_, secret) = seed(&behind);
    // In one transaction, as seen from outside: a change with a change row, a change with
    // none, and every older change row pruned away (as after 100,000 later changes). Only
    // reading the whole state afresh shows the second change.
    let mut db = rusqlite::Connection::open(&path).unwrap();
    let tx = db.transaction().unwrap();
    tx.execute("INSERT INTO users (id, status, rights, roles) VALUES ('late', 'active', '', '')", []).unwrap();
    tx.execute("INSERT INTO changes (kind, id, op) VALUES ('user', 'svc', 'put')", []).unwrap();
    tx.execute("INSERT INTO changes (kind, id, op) VALUES ('user', 'late', 'put')", []).unwrap();
    tx.execute("UPDATE keys SET state = 'suspended'", []).unwrap();
    tx.execute("DELETE FROM changes WHERE seq < (SELECT max(seq) FROM changes)", []).unwrap();
    tx.commit().unwrap();
    let start = Instant::now();
    while allowed(&behind, &secret) != Reason::Suspended || behind.get_user("late").unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(2), "the lagging handle never reloaded");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(behind.list_users().unwrap().len(), 2);
}

// ---- damaged rows and files: STORE_CORRUPT at open, fail closed while running ----

use std::sync::{Arc, Mutex};

use keygate_core::{Incident, Task};

fn key_id_text(raw: &[u8; 16]) -> String {
    keygate_core::KeyId::from_bytes(*raw).to_string()
}

fn raw_id(id: &str) -> [u8; 16] {
    *id.parse::<keygate_core::KeyId>().unwrap().as_bytes()
}

/// Options whose `on_error` collects what the store reports.
fn reporting() -> (Options, Arc<Mutex<Vec<Incident>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let options = Options { on_error: Some(Arc::new(move |i: &Incident| sink.lock().unwrap().push(i.clone()))), ..Default::default() };
    (options, seen)
}

/// `sql` run on the file by another connection: the first column of its first row as text
/// (empty for a statement that returns none).
fn sql_on(path: &std::path::Path, sql: &str) -> String {
    let db = rusqlite::Connection::open(path).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut statement = db.prepare(sql).unwrap();
    if statement.column_count() == 0 {
        statement.execute([]).unwrap();
        return String::new();
    }
    match statement.query_row([], |r| r.get::<_, rusqlite::types::Value>(0)).unwrap() {
        rusqlite::types::Value::Integer(n) => n.to_string(),
        rusqlite::types::Value::Text(text) => text,
        other => panic!("{sql}: {other:?}"),
    }
}

/// Audit rows written behind keygate's back while the store is open, as the PostgreSQL store
/// takes them: an entry past the recorded head refuses writes with `STORE_CORRUPT` naming the
/// numbers, as open refuses such a file (they were a UNIQUE constraint's `STORE_IO`), nothing
/// written; a row numbered below 1 or at a time no Date holds (listed as 18446744073709552000,
/// or an Invalid Date) is `STORE_CORRUPT` to list, and verification fails naming it.
#[test]
fn audit_rows_written_behind_the_store_s_back_are_refused_as_the_postgres_store_refuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let store = open(&path).unwrap();
    store.put_role("ops", &["api:*".into()], None).unwrap();
    let (_, secret) = seed(&store);
    common::audit_rows_keygate_never_writes_are_damage(&store, "audit", |sql| sql_on(&path, sql));
    common::an_audit_row_past_the_head_refuses_writes(&store, &secret, "audit", |sql| sql_on(&path, sql));
    store.close().unwrap();
}

/// What another writer does: statements in one transaction, straight to the file.
fn write_directly(path: &std::path::Path, statements: &[(&str, Vec<rusqlite::types::Value>)]) {
    let mut db = rusqlite::Connection::open(path).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    let tx = db.transaction().unwrap();
    for (sql, params) in statements {
        tx.execute(sql, rusqlite::params_from_iter(params.iter())).unwrap();
    }
    tx.commit().unwrap();
}

/// A copy of key `from` with a fresh id and digest and the given rules, and its change row.
fn bad_key_row(from: &[u8; 16], rules: &str) -> ([u8; 16], Vec<(&'static str, Vec<rusqlite::types::Value>)>) {
    let mut id = [0u8; 16];
    id[0] = 0xee;
    id[15] = 0x01;
    let digest = vec![0xabu8; 32];
    let copy = "INSERT INTO keys (id, seq, user_id, description, state, expires_at, created_at, updated_at, last_used_at, hint, digest, rules)
                SELECT ?1, seq + 1000, user_id, description, state, expires_at, created_at, updated_at, last_used_at, hint, ?2, ?3 FROM keys WHERE id = ?4";
    let statements = vec![
        (copy, vec![id.to_vec().into(), digest.into(), rules.to_string().into(), from.to_vec().into()]),
        ("INSERT INTO changes (kind, id, op) VALUES ('key', ?1, 'put')", vec![key_id_text(&id).into()]),
    ];
    (id, statements)
}

fn wait_until(what: &str, done: impl FnMut() -> bool) {
    wait_for(what, 5, done)
}

fn wait_for(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(seconds), "{what}: not within {seconds} s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn sidecars(path: &std::path::Path) -> Vec<String> {
    ["-wal", "-shm", "-journal"].iter().map(|s| format!("{}{s}", path.display())).filter(|p| std::path::Path::new(p).exists()).collect()
}

#[test]
fn a_row_it_cannot_load_makes_open_store_corrupt_and_leaves_the_file_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.db");
    let store = open(&source).unwrap();
    let (id, _) = seed(&store);
    store.close().unwrap();
    let id = raw_id(&id);
    type Damage = Vec<(&'static str, Vec<rusqlite::types::Value>)>;
    let id_param = || -> rusqlite::types::Value { id.to_vec().into() };
    let damages: Vec<(&str, Damage)> = vec![
        ("a rule with a space", vec![("UPDATE keys SET rules = 'a b:c' WHERE id = ?1", vec![id_param()])]),
        ("a non-ASCII rule", vec![("UPDATE keys SET rules = 'éé' WHERE id = ?1", vec![id_param()])]),
        ("a non-ASCII right", vec![("UPDATE users SET rights = 'Grö:x'", vec![])]),
        ("a state keygate does not know", vec![("UPDATE keys SET state = 'bogus' WHERE id = ?1", vec![id_param()])]),
        ("a user status keygate does not know", vec![("UPDATE users SET status = 'gone'", vec![])]),
        ("a 3-byte key id", vec![("UPDATE keys SET id = X'010203' WHERE id = ?1", vec![id_param()])]),
        ("a 5-byte digest", vec![("UPDATE keys SET digest = X'0102030405' WHERE id = ?1", vec![id_param()])]),
        ("invalid UTF-8 in a description", vec![("UPDATE keys SET description = CAST(X'C328FF' AS TEXT) WHERE id = ?1", vec![id_param()])]),
        ("invalid UTF-8 in a user id", vec![("UPDATE users SET id = CAST(X'FF' AS TEXT)", vec![])]),
        ("a number where text belongs", vec![("UPDATE keys SET state = 7 WHERE id = ?1", vec![id_param()])]),
        ("text where a number belongs", vec![("UPDATE keys SET expires_at = 'soon' WHERE id = ?1", vec![id_param()])]),
        ("a key whose user is missing", vec![("DELETE FROM users", vec![])]),
        ("a dropped table", vec![("DROP TABLE roles", vec![])]),
        ("a dropped column", vec![("ALTER TABLE keys DROP COLUMN hint", vec![])]),
        ("a missing key prefix", vec![("DELETE FROM meta WHERE name = 'key_prefix'", vec![])]),
        ("an expiry no date can hold", vec![("UPDATE keys SET expires_at = 9223372036854775807 WHERE id = ?1", vec![id_param()])]),
        ("a creation time no date can hold", vec![("UPDATE keys SET created_at = -9223372036854775808 WHERE id = ?1", vec![id_param()])]),
        // Accepted once, it made the next key created get a number no store can hold: a row its
        // own writer then refused, failing every other process closed and every later open.
        (
            "a sequence number that leaves no room for the next key's",
            vec![("UPDATE keys SET seq = 9223372036854775807 WHERE id = ?1", vec![id_param()])],
        ),
        // SQLite refuses the next AUTOINCREMENT number (SQLITE_FULL): every write was STORE_IO "disk full".
        (
            "a change number that leaves no room for the next change's",
            vec![("INSERT INTO changes (seq, kind, id, op) VALUES (9223372036854775807, 'user', 'svc', 'put')", vec![])],
        ),
        (
            "a change number kept by sqlite_sequence that leaves no room for the next change's",
            vec![
                ("INSERT INTO changes (seq, kind, id, op) VALUES (9223372036854775807, 'user', 'svc', 'put')", vec![]),
                ("DELETE FROM changes WHERE seq = 9223372036854775807", vec![]),
            ],
        ),
        // A table rebuilt without its constraints (a bad migration) holding one key twice: which
        // row a check found would decide, the revoked one or the other.
        (
            "another key with a revoked key's secret digest",
            vec![
                ("CREATE TABLE loose AS SELECT * FROM keys", vec![]),
                ("DROP TABLE keys", vec![]),
                ("ALTER TABLE loose RENAME TO keys", vec![]),
                (
                    "INSERT INTO keys SELECT X'ee000000000000000000000000000001', seq + 1, user_id, description, 'active', expires_at,
                     created_at, updated_at, last_used_at, hint, digest, rules FROM keys WHERE id = ?1",
                    vec![id_param()],
                ),
                ("UPDATE keys SET state = 'revoked' WHERE id = ?1", vec![id_param()]),
            ],
        ),
        (
            "a key id stored twice",
            vec![
                ("CREATE TABLE loose AS SELECT * FROM keys", vec![]),
                ("DROP TABLE keys", vec![]),
                ("ALTER TABLE loose RENAME TO keys", vec![]),
                (
                    "INSERT INTO keys SELECT id, seq, user_id, description, 'active', expires_at, created_at, updated_at,
                     last_used_at, hint, X'00' || substr(digest, 2), rules FROM keys WHERE id = ?1",
                    vec![id_param()],
                ),
                ("UPDATE keys SET state = 'revoked' WHERE id = ?1 AND rowid = 1", vec![id_param()]),
            ],
        ),
        // The same for a user or a role: a user stored active and suspended loaded as the row read last.
        (
            "a user id stored twice",
            vec![
                ("CREATE TABLE loose AS SELECT * FROM users", vec![]),
                ("DROP TABLE users", vec![]),
                ("ALTER TABLE loose RENAME TO users", vec![]),
                ("INSERT INTO users SELECT id, 'suspended', rights, roles FROM users", vec![]),
            ],
        ),
        (
            "a role name stored twice",
            vec![
                ("CREATE TABLE loose AS SELECT * FROM roles", vec![]),
                ("DROP TABLE roles", vec![]),
                ("ALTER TABLE loose RENAME TO roles", vec![]),
                ("INSERT INTO roles (name, rights) VALUES ('ops', 'session:*'), ('ops', '*:*')", vec![]),
            ],
        ),
        ("a hint that is not base62", vec![("UPDATE keys SET hint = 'é€' WHERE id = ?1", vec![id_param()])]),
        (
            "a user id with a newline",
            vec![("UPDATE users SET id = 'sv' || char(10) || 'c'", vec![]), ("UPDATE keys SET user_id = 'sv' || char(10) || 'c'", vec![])],
        ),
        (
            "a user id with a bidi control",
            vec![("UPDATE users SET id = 'svc' || char(8238)", vec![]), ("UPDATE keys SET user_id = 'svc' || char(8238)", vec![])],
        ),
        ("an empty role name", vec![("INSERT INTO roles (name, rights) VALUES ('', '')", vec![])]),
        (
            "a view in the keys table's place",
            vec![
                ("ALTER TABLE keys RENAME TO keys_old", vec![]),
                (
                    "CREATE VIEW keys AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT k.* FROM keys_old k, n",
                    vec![],
                ),
            ],
        ),
        // Read as no limit at all (the default, 730 days) or blamed on the caller's options.
        (
            "a recorded maxLifetimeDays that is not a number",
            vec![("INSERT OR REPLACE INTO meta (name, value) VALUES ('max_lifetime_days', '30 days')", vec![])],
        ),
        (
            "a recorded maxLifetimeDays out of range",
            vec![("INSERT OR REPLACE INTO meta (name, value) VALUES ('max_lifetime_days', '0')", vec![])],
        ),
        ("an audit head behind its entries", vec![("UPDATE meta SET value = '0' WHERE name = 'audit_seq'", vec![])]),
        (
            "an audit entry past its head",
            vec![(
                "INSERT INTO audit SELECT seq + 1, at, actor, action, key_id, user_id, detail, hash FROM audit
                 WHERE seq = (SELECT max(seq) FROM audit)",
                vec![],
            )],
        ),
        // The next entry would be numbered past MAX_AUDIT_SEQ: every write was STORE_IO.
        (
            "an audit head that leaves no room for the next entry",
            vec![("UPDATE meta SET value = '9223372036854775806' WHERE name = 'audit_seq'", vec![])],
        ),
        ("an audit head near overflow", vec![("UPDATE meta SET value = '18446744073709551615' WHERE name = 'audit_seq'", vec![])]),
        ("an audit hash that is not hex", vec![("UPDATE meta SET value = 'zz' WHERE name = 'audit_hash'", vec![])]),
    ];
    for (i, (what, statements)) in damages.iter().enumerate() {
        let file = dir.path().join(format!("damaged-{i}.db"));
        std::fs::copy(&source, &file).unwrap();
        write_directly(&file, statements);
        let before = std::fs::read(&file).unwrap();
        assert_eq!(sidecars(&file), Vec::<String>::new(), "{what}: set-up left a sidecar file");
        let error = open(&file).err().unwrap_or_else(|| panic!("{what}: the store opened"));
        assert_eq!(error.code, ErrorCode::StoreCorrupt, "{what}: {}", error.message);
        assert!(error.message.contains(file.to_str().unwrap()), "{what}: the message names the file: {}", error.message);
        assert!(std::fs::read(&file).unwrap() == before, "{what}: the file changed");
        assert_eq!(sidecars(&file), Vec::<String>::new(), "{what}: a sidecar file was created");
    }
}

#[test]
fn a_foreign_database_with_schema_version_1_is_store_corrupt_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.db");
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute_batch(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO customers (name) VALUES ('Ada'); PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(db);
    let before = std::fs::read(&path).unwrap();
    let error = open(&path).err().unwrap();
    assert_eq!(error.code, ErrorCode::StoreCorrupt, "{}", error.message);
    assert!(error.message.contains("no meta table"), "{}", error.message);
    assert!(std::fs::read(&path).unwrap() == before, "the file changed (switched to WAL?)");
    assert_eq!(sidecars(&path), Vec::<String>::new());
}

#[test]
fn a_zero_length_file_becomes_a_new_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").unwrap();
    let store = open(&path).unwrap();
    seed(&store);
    store.close().unwrap();
    assert_eq!(open(&path).unwrap().list_users().unwrap().len(), 1);
}

#[test]
fn a_bad_row_from_another_writer_fails_the_store_closed_until_it_is_fixed_and_no_revocation_is_missed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let (options, seen) = reporting();
    let store = KeyStore::open(path.to_str().unwrap(), options).unwrap();
    let (first, first_secret) = seed(&store);
    let (second, second_secret) = seed(&store);
    assert_eq!(allowed(&store, &first_secret), Reason::Allowed);
    let generation = || store.signals().generation.load(std::sync::atomic::Ordering::Acquire);
    let before = generation();

    let (bad, statements) = bad_key_row(&raw_id(&first), "a b:c");
    write_directly(&path, &statements);
    wait_until("the store fails closed", || allowed(&store, &first_secret) == Reason::StoreUnavailable);
    assert_ne!(generation(), before, "the memo was told");
    assert_ne!(store.signals().flags.load(std::sync::atomic::Ordering::Acquire), 0, "the memo is off");
    assert_eq!(
        store.explain(Call { secret: second_secret.as_bytes(), service: b"session", api: b"x", ip: None }).reason,
        Reason::StoreUnavailable
    );
    assert_eq!(allowed(&store, "kg_not-a-secret"), Reason::MalformedKey, "step 1 still comes first");
    // An admin call cannot plan on stale state either: refused, nothing written.
    let refused = store.set_state(&second, "suspended", None).unwrap_err();
    assert_eq!(refused.code, ErrorCode::StoreCorrupt, "{}", refused.message);

    // A healthy writer revokes the second key meanwhile: never answered from stale state.
    write_directly(
        &path,
        &[
            ("UPDATE keys SET state = 'revoked' WHERE id = ?1", vec![raw_id(&second).to_vec().into()]),
            ("INSERT INTO changes (kind, id, op) VALUES ('key', ?1, 'put')", vec![second.clone().into()]),
        ],
    );
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(allowed(&store, &second_secret), Reason::StoreUnavailable, "still closed while the bad row is there");

    // The bad row is repaired: the store catches up, revocation included, and opens again.
    write_directly(
        &path,
        &[
            ("UPDATE keys SET rules = 'session:*' WHERE id = ?1", vec![bad.to_vec().into()]),
            ("INSERT INTO changes (kind, id, op) VALUES ('key', ?1, 'put')", vec![key_id_text(&bad).into()]),
        ],
    );
    wait_until("the store recovers", || allowed(&store, &first_secret) == Reason::Allowed);
    assert_eq!(allowed(&store, &second_secret), Reason::Revoked);
    assert_eq!(store.signals().flags.load(std::sync::atomic::Ordering::Acquire), 0, "the memo is on again");
    assert_eq!(store.key_count(), 3);

    // The recovery is told by the background thread just after checks answer again.
    wait_until("the recovery is told", || seen.lock().unwrap().len() >= 2);
    let seen = seen.lock().unwrap();
    let summary: Vec<(Task, ErrorCode, bool)> = seen.iter().map(|i| (i.task, i.error.code, i.recovered)).collect();
    assert_eq!(summary, [(Task::Sync, ErrorCode::StoreCorrupt, false), (Task::Sync, ErrorCode::StoreCorrupt, true)], "once per episode");
    let message = seen.first().unwrap().error.message.clone();
    assert!(message.contains("a b:c") && message.contains(path.to_str().unwrap()), "{message}");
}

#[test]
fn a_row_read_wrong_while_running_fails_closed_and_a_repair_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let (options, seen) = reporting();
    let store = KeyStore::open(path.to_str().unwrap(), options).unwrap();
    let (id, secret) = seed(&store);
    let raw: rusqlite::types::Value = raw_id(&id).to_vec().into();
    let change = ("INSERT INTO changes (kind, id, op) VALUES ('key', ?1, 'put')", vec![id.clone().into()]);
    for (damage, value) in [
        ("UPDATE keys SET state = 'bogus' WHERE id = ?1", "'active'"),
        ("UPDATE keys SET description = CAST(X'FF' AS TEXT) WHERE id = ?1", "'ok'"),
    ] {
        write_directly(&path, &[(damage, vec![raw.clone()]), change.clone()]);
        wait_until("the store fails closed", || allowed(&store, &secret) == Reason::StoreUnavailable);
        let repair = damage.replace("'bogus'", value).replace("CAST(X'FF' AS TEXT)", value);
        let repair: &'static str = Box::leak(repair.into_boxed_str());
        write_directly(&path, &[(repair, vec![raw.clone()]), change.clone()]);
        wait_until("the store recovers", || allowed(&store, &secret) == Reason::Allowed);
    }
    // The last recovery is told by the background thread just after checks answer again.
    wait_until("the last recovery is told", || seen.lock().unwrap().len() >= 4);
    assert_eq!(seen.lock().unwrap().iter().map(|i| i.recovered).collect::<Vec<_>>(), [false, true, false, true]);
}

/// A change row whose op keygate never writes (an operator's hand, another program) used to be
/// read as a put: one naming a user deleted from the tables kept the user, and its keys, in
/// memory. The store cannot tell what it means, so it reads the tables afresh.
#[test]
fn a_change_of_an_unknown_op_is_read_from_the_tables_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let (options, seen) = reporting();
    let store = KeyStore::open(path.to_str().unwrap(), options).unwrap();
    let (_, secret) = seed(&store);
    assert_eq!(allowed(&store, &secret), Reason::Allowed);
    write_directly(
        &path,
        &[
            ("DELETE FROM keys WHERE user_id = 'svc'", vec![]),
            ("DELETE FROM users WHERE id = 'svc'", vec![]),
            ("INSERT INTO changes (kind, id, op) VALUES ('user', 'svc', 'frob')", vec![]),
        ],
    );
    wait_until("the deleted user's key is unknown", || allowed(&store, &secret) == Reason::UnknownKey);
    assert!(store.get_user("svc").unwrap().is_none());
    // The recovery is told just after the reload is applied (and checks see it): waited for.
    wait_until("the recovery is told", || seen.lock().unwrap().len() >= 2);
    // Read afresh at once, but checks answered store_unavailable meanwhile: one episode, told.
    let told: Vec<(bool, String)> = seen.lock().unwrap().iter().map(|i| (i.recovered, i.error.message.clone())).collect();
    assert!(matches!(told.as_slice(), [(false, unknown), (true, _)] if unknown.contains("unknown change")), "{told:?}");
}

/// A put change whose row is gone (another writer logged a deletion as a put) reads as a
/// delete: the store forgets the user (its keys with it), role or key, as a fresh load of the
/// file would, instead of answering `allowed` from the one it held (found by store_catch_up).
#[test]
fn a_put_whose_row_is_gone_reads_as_a_delete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let store = open(&path).unwrap();
    let (id, secret) = seed(&store);
    store.put_role("ops", &["admin:*".into()], None).unwrap();
    let user = keygate_core::UserInput { id: "op".into(), status: None, rights: Vec::new(), roles: vec!["ops".into()] };
    store.put_user(&user, None).unwrap();
    let new_key = keygate_core::NewKey {
        user_id: "op".into(),
        description: "ops key".into(),
        expires_at: Some(store.now() + 86_400_000),
        rules: Vec::new(),
        state: None,
    };
    let ops_secret = store.create_key(&new_key, None).unwrap().secret;
    let admin = |secret: &str| store.check(Call { secret: secret.as_bytes(), service: b"admin", api: b"x", ip: None }).reason;
    assert_eq!(admin(&ops_secret), Reason::Allowed);
    let (_, other_secret) = common::seed_with(&store, &["session:*"]);
    // Each as its own commit of another writer; an admin call of this process catches up.
    let put = |kind: &str, id: &str| {
        ("INSERT INTO changes (kind, id, op) VALUES (?1, ?2, 'put')", vec![kind.to_string().into(), id.to_string().into()])
    };
    write_directly(&path, &[("DELETE FROM keys WHERE id = ?1", vec![raw_id(&id).to_vec().into()]), put("key", &id)]);
    store.put_role("catch-up", &[], None).unwrap();
    assert_eq!(allowed(&store, &secret), Reason::UnknownKey, "a key whose row is gone");
    assert_eq!(allowed(&store, &other_secret), Reason::Allowed);
    write_directly(&path, &[("DELETE FROM roles WHERE name = 'ops'", vec![]), put("role", "ops")]);
    store.put_role("catch-up", &[], None).unwrap();
    assert!(store.get_role("ops").unwrap().is_none());
    assert_eq!(admin(&ops_secret), Reason::UserLacksRight, "a role whose row is gone");
    // Its other key's row stays: a file no fresh process would load, and no key to answer for.
    write_directly(&path, &[("DELETE FROM users WHERE id = 'svc'", vec![]), put("user", "svc")]);
    store.put_role("catch-up", &[], None).unwrap();
    assert!(store.get_user("svc").unwrap().is_none());
    assert_eq!(allowed(&store, &other_secret), Reason::UnknownKey, "the key of a user whose row is gone");
    assert!(store.is_current());
    store.close().unwrap();
}

#[test]
fn a_flush_that_cannot_write_is_reported_once_and_its_uses_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let (options, seen) = reporting();
    let store = KeyStore::open(path.to_str().unwrap(), options).unwrap();
    let (id, secret) = seed(&store);
    // Another process holds the write lock longer than the busy timeout (5 s).
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    assert_eq!(allowed(&store, &secret), Reason::Allowed);
    let used_at = store.get_key(&id).unwrap().unwrap().last_used_at.unwrap();
    // The flush waits out the busy timeout (5 s) before it fails.
    wait_for("the failed flush is reported", 10, || !seen.lock().unwrap().is_empty());
    assert_eq!(allowed(&store, &secret), Reason::Allowed, "checks do not depend on the flush");
    blocker.execute_batch("COMMIT").unwrap();
    wait_until("the recovery is reported", || seen.lock().unwrap().len() == 2);
    let summary: Vec<(Task, ErrorCode, bool)> = seen.lock().unwrap().iter().map(|i| (i.task, i.error.code, i.recovered)).collect();
    assert_eq!(summary, [(Task::LastUsed, ErrorCode::StoreLocked, false), (Task::LastUsed, ErrorCode::StoreLocked, true)]);
    let stored: Option<i64> = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT last_used_at FROM keys WHERE id = ?1", [raw_id(&id).to_vec()], |r| r.get(0))
        .unwrap();
    assert!(stored.is_some_and(|at| at >= used_at), "the use that could not be written at first is on disk: {stored:?}");
}

/// A close whose own flush failed (the write lock held by another process past the busy
/// timeout) reports that and gives up: it flushed those uses once more after the background
/// thread ended, a second wait of the busy timeout (of `statementTimeoutMs` on PostgreSQL, with
/// the server gone) that the documented bound on close during an outage leaves out. The lock is
/// released as soon as close has failed, so that a second try would be seen writing the use.
#[test]
fn a_close_whose_own_flush_failed_does_not_wait_out_a_second_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let (options, seen) = reporting();
    let store = KeyStore::open(path.to_str().unwrap(), options).unwrap();
    let (id, secret) = seed(&store);
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    // Noted, and taken by close's own flush before the background thread's round (once a second).
    assert_eq!(allowed(&store, &secret), Reason::Allowed);
    let closing = &store;
    std::thread::scope(|scope| {
        scope.spawn(move || {
            wait_for("close begins its closing", 30, || closing.is_closed());
            blocker.execute_batch("ROLLBACK").unwrap();
        });
        store.close().unwrap();
    });
    let summary: Vec<(Task, ErrorCode, bool)> = seen.lock().unwrap().iter().map(|i| (i.task, i.error.code, i.recovered)).collect();
    assert_eq!(summary, [(Task::LastUsed, ErrorCode::StoreLocked, false)]);
    let stored: Option<i64> = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT last_used_at FROM keys WHERE id = ?1", [raw_id(&id).to_vec()], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, None, "close flushed a second time after its own flush had failed");
}

#[test]
fn a_store_copied_into_an_empty_file_keeps_its_keys_and_its_audit_chain() {
    let dir = tempfile::tempdir().unwrap();
    let source = open(&dir.path().join("a.db")).unwrap();
    let (id, secret) = seed(&source);
    assert_eq!(allowed(&source, &secret), Reason::Allowed);
    let target_path = dir.path().join("b.db");
    let target = open(&target_path).unwrap();
    let report = KeyStore::copy(&source, &target).unwrap();
    assert_eq!((report.users, report.keys, report.audit_entries), (1, 1, 2));
    let trail = source.audit(&Default::default()).unwrap();
    assert_eq!(target.audit(&Default::default()).unwrap(), trail);
    assert_eq!(allowed(&target, &secret), Reason::Allowed);
    target.close().unwrap();
    let reopened = open(&target_path).unwrap();
    let report = reopened.verify_audit().unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(reopened.get_key(&id).unwrap().unwrap().id, id);
    assert_eq!(allowed(&reopened, &secret), Reason::Allowed);
    // Not empty any more: refused, and nothing written.
    let refused = KeyStore::copy(&source, &reopened).unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidArgument);
    assert_eq!(reopened.audit(&Default::default()).unwrap(), trail);
}

/// An in-memory store keeps only its latest 1,000 audit entries. Copied into a durable
/// store, that window is numbered afresh from 1 (each entry sealed again, its content
/// kept), so the copy's `verifyAudit` passes; it used to report "entry 1 is missing".
#[test]
fn a_copy_of_an_in_memory_store_past_its_audit_window_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let source = KeyStore::in_memory(Options::default()).unwrap();
    let (id, secret) = seed(&source);
    for i in 0..1_500 {
        source.set_state(&id, if i % 2 == 0 { "suspended" } else { "active" }, Some("ops")).unwrap();
    }
    let window = source.audit(&keygate_core::AuditQuery { limit: Some(5_000), ..Default::default() }).unwrap();
    assert_eq!(window.len(), 1_000);
    assert!(window.last().unwrap().seq > 1, "the source's window begins past entry 1");
    let path = dir.path().join("copy.db");
    let target = open(&path).unwrap();
    let report = KeyStore::copy(&source, &target).unwrap();
    assert_eq!(report.audit_entries, 1_000);
    let copied = target.audit(&keygate_core::AuditQuery { limit: Some(5_000), ..Default::default() }).unwrap();
    // Newest first, numbered 1,000 down to 1; each entry's content kept.
    assert_eq!(copied.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=1_000).rev().collect::<Vec<u64>>());
    for (copy, original) in copied.iter().zip(&window) {
        assert_eq!(
            (copy.at, &copy.actor, &copy.action, &copy.key_id, &copy.user_id, &copy.detail),
            (original.at, &original.actor, &original.action, &original.key_id, &original.user_id, &original.detail)
        );
    }
    assert_eq!(target.verify_audit().unwrap(), keygate_core::AuditReport { ok: true, entries: 1_000, first_bad_seq: None, problem: None });
    // The trail goes on from there, and the file verifies when reopened.
    assert_eq!(allowed(&target, &secret), Reason::Allowed);
    target.set_state(&id, "suspended", None).unwrap();
    target.close().unwrap();
    let reopened = open(&path).unwrap();
    let report = reopened.verify_audit().unwrap();
    assert!(report.ok && report.entries == 1_001, "{report:?}");
    // Copied back into memory: the report counts what the target keeps, and its window verifies.
    let memory = KeyStore::in_memory(Options::default()).unwrap();
    assert_eq!(KeyStore::copy(&reopened, &memory).unwrap().audit_entries, 1_000);
    assert!(memory.verify_audit().unwrap().ok);
}

/// A store whose audit trail fails verification is not copied: the copy would no longer
/// show it (a removed last entry leaves no trace once the copy's head is set to the entry
/// before it; an in-memory window renumbered would hide a gap before it). The target is
/// left empty, and no in-memory store in between can carry the trail onward.
#[test]
fn a_store_whose_audit_trail_fails_verification_is_not_copied() {
    let dir = tempfile::tempdir().unwrap();
    for (name, tamper) in [
        ("first entry removed", "DELETE FROM audit WHERE seq = 1"),
        ("an entry altered", "UPDATE audit SET actor = 'nobody' WHERE seq = 2"),
        ("last entry removed", "DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)"),
    ] {
        let source_path = dir.path().join(format!("{name}.db"));
        let source = open(&source_path).unwrap();
        let (id, _) = seed(&source);
        source.set_state(&id, "suspended", None).unwrap();
        source.set_state(&id, "active", None).unwrap();
        source.close().unwrap();
        write_directly(&source_path, &[(tamper, vec![])]);
        let source = open(&source_path).unwrap();
        let broken = source.verify_audit().unwrap();
        assert!(!broken.ok, "{name}");
        let targets = [open(&dir.path().join(format!("{name}.copy.db"))).unwrap(), KeyStore::in_memory(Options::default()).unwrap()];
        for target in &targets {
            let refused = KeyStore::copy(&source, target).unwrap_err();
            assert_eq!(refused.code, ErrorCode::InvalidArgument, "{name}: {refused}");
            assert!(refused.message.contains(broken.problem.as_deref().unwrap()), "{name}: {refused}");
            assert_eq!(target.key_count(), 0, "{name}");
            assert!(target.audit(&Default::default()).unwrap().is_empty(), "{name}");
        }
    }
}

/// An admin call of one thread (the maintenance thread's purge, say) holds a
/// transaction open across several backend calls; audit reads from another
/// thread run beside it, never inside it (they used to fail to BEGIN there).
#[test]
fn audit_reads_from_another_thread_never_run_inside_an_open_admin_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("keys.db")).unwrap();
    let written = common::audit_reads_beside_admin_calls(&store);
    let report = store.verify_audit().unwrap();
    assert!(report.ok && report.entries == written, "{report:?}");
    store.close().unwrap();
}

/// The purge deletes long-expired keys in writes of at most 10,000 keys (see
/// `PURGE_BATCH`; the PostgreSQL tests count the writes): every key is still purged
/// and audited, and a key not expired long enough stays.
#[test]
fn a_purge_of_more_keys_than_one_write_takes_purges_and_audits_them_all() {
    const EXPIRED: usize = 25_001;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let (source, kept) = common::store_with_expiring_keys(EXPIRED);
    let target = open(&path).unwrap();
    KeyStore::copy(&source, &target).unwrap();
    target.close().unwrap();

    let nine_days_on = common::PURGE_T0 + 9 * common::world::DAY;
    let reopened = KeyStore::open(path.to_str().unwrap(), Options { now: Some(nine_days_on), ..Default::default() }).unwrap();
    assert_eq!(reopened.key_count(), 1);
    assert!(reopened.get_key(&kept).unwrap().is_some());
    let purges = reopened
        .audit(&keygate_core::AuditQuery {
            action: Some(keygate_core::AuditAction::PurgeExpired),
            limit: Some(100_000),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(purges.len(), EXPIRED);
    assert!(reopened.verify_audit().unwrap().ok);
}

/// Every file in `dir` with its bytes.
fn files_in(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// SQLite takes `""`, `":memory:"` and `file:` URIs (the bundled build reads URIs
/// whatever the open flags) for something other than the file they seem to name,
/// and keygate's checks look at the literal path: a backup to `""`, `":memory:"` or
/// `file:…?mode=memory` returned Ok and wrote nothing, one to `file:<existing backup>`
/// overwrote it, and `open("file:<another app's database>")` was refused but left
/// that database switched to WAL. Each is now `INVALID_ARGUMENT` before anything is
/// opened, and no file changes.
#[test]
fn sqlite_special_names_are_refused_by_open_and_backup_and_no_file_changes() {
    let live = tempfile::tempdir().unwrap();
    let store = open(&live.path().join("keys.db")).unwrap();
    seed(&store);
    let dir = tempfile::tempdir().unwrap();
    let old_backup = dir.path().join("old-backup.db");
    store.backup(old_backup.to_str().unwrap()).unwrap();
    let existing = dir.path().join("existing.db");
    let other = open(&existing).unwrap();
    seed(&other);
    other.close().unwrap();
    rusqlite::Connection::open(dir.path().join("other-app.db"))
        .unwrap()
        .execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount INTEGER); INSERT INTO invoices (amount) VALUES (42)")
        .unwrap();
    let before = files_in(dir.path());
    assert_eq!(before.keys().collect::<Vec<_>>(), ["existing.db", "old-backup.db", "other-app.db"]);

    let d = dir.path().display();
    let names = [
        String::new(),
        ":memory:".into(),
        format!("file:{d}/new.db"),
        format!("file:{d}/new.db?mode=memory"),
        format!("File:{d}/new.db"),
        format!("FILE:{d}/new.db"),
        format!("file:{d}/old-backup.db"),
        format!("file:{d}/other-app.db"),
        format!("file:{d}/existing.db"),
        "file:new.db".into(),
    ];
    for name in &names {
        let err = store.backup(name).err().unwrap_or_else(|| panic!("backup({name:?}) returned Ok"));
        assert_eq!(err.code, ErrorCode::InvalidArgument, "backup({name:?}): {}", err.message);
        assert!(err.message.contains("give a file path") || err.message.contains("give the file's path"), "{}", err.message);
        match KeyStore::open(name, Options::default()) {
            Ok(opened) => panic!("open({name:?}) opened a store, created = {}", opened.created()),
            Err(err) => assert_eq!(err.code, ErrorCode::InvalidArgument, "open({name:?}): {}", err.message),
        }
    }
    let err = KeyStore::open(&format!("file:{d}/other-app.db"), Options::default()).err().unwrap();
    assert!(err.message.contains("SQLite URI") && err.message.contains("other-app.db"), "{}", err.message);
    assert!(KeyStore::open(":memory:", Options::default()).err().unwrap().message.contains("in-memory"));
    assert_eq!(files_in(dir.path()), before, "no file was created or changed");
    assert!(!std::path::Path::new("new.db").exists(), "nothing was written in the working directory");
    store.close().unwrap();
}

/// `backup` never writes through an existing name, a dangling link included (it had looked
/// whether the target existed, and a dangling link does not: SQLite then created the file the
/// link points to).
#[cfg(unix)]
#[test]
fn backup_never_writes_through_an_existing_name_a_dangling_link_included() {
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::open(dir.path().join("live.db").to_str().unwrap(), Options::default()).unwrap();
    let link = dir.path().join("link.db");
    let pointed_at = dir.path().join("pointed-at.db");
    std::os::unix::fs::symlink(&pointed_at, &link).unwrap();
    let err = store.backup(link.to_str().unwrap()).unwrap_err();
    assert_eq!(err.code, ErrorCode::StoreIo, "{}", err.message);
    assert!(err.message.contains("already exists"), "{}", err.message);
    assert!(!pointed_at.exists(), "the backup wrote through the dangling link");

    // A target in a directory that does not exist: refused, and nothing is created.
    let nowhere = dir.path().join("missing-dir").join("b.db");
    assert_eq!(store.backup(nowhere.to_str().unwrap()).unwrap_err().code, ErrorCode::StoreIo);
    assert!(!dir.path().join("missing-dir").exists());
}

/// An operator restores an older backup into the file while processes have it open (SQLite's
/// backup API, as `sqlite3 keys.db ".restore backup.db"` does): the change log goes back to the
/// backup's last number, below where the running processes stand. A revocation written through
/// keygate afterwards takes a number they believe they have applied already: it used to be
/// skipped (the process kept allowing the revoked key), and so were all later changes up to
/// the number it stood at.
#[test]
fn a_change_log_restored_to_an_earlier_number_is_read_afresh_and_no_later_revocation_is_missed() {
    let (dir, admin, (first, first_secret)) = seeded_with_backup();
    let (path, backup) = (dir.path().join("keys.db"), dir.path().join("backup.db"));
    // Made after the backup: the restored file does not hold it.
    let (_, second_secret) = seed(&admin);
    for i in 0..5 {
        admin.put_role(&format!("r{i}"), &["session:*".into()], None).unwrap();
    }
    let follower = open(&path).unwrap();
    assert_eq!(allowed(&follower, &first_secret), Reason::Allowed);
    assert_eq!(allowed(&follower, &second_secret), Reason::Allowed);

    restore(&path, &backup);

    // Revoked through keygate, by a process that opens the restored file (the CLI, say).
    let cli = open(&path).unwrap();
    cli.set_state(&first, "revoked", None).unwrap();
    cli.close().unwrap();
    wait_until("the follower sees the revocation", || allowed(&follower, &first_secret) == Reason::Revoked);
    wait_until("the admin handle sees the revocation", || allowed(&admin, &first_secret) == Reason::Revoked);
    assert_eq!(allowed(&follower, &second_secret), Reason::UnknownKey, "the restored file does not hold the second key");
    assert_eq!(allowed(&admin, &second_secret), Reason::UnknownKey, "the restored file does not hold the second key");
    // The admin handle writes on from the restored state.
    admin.put_role("after", &["session:*".into()], None).unwrap();
    wait_until("the follower sees the admin's next change", || follower.list_roles().unwrap().iter().any(|r| r.name == "after"));
}

/// Plain writes by another process grow the audit trail past the entry a follower last read: the
/// follower takes them as changes, never as a restored copy (which would have it refuse checks
/// while it reads the whole file afresh, and report the restore to `on_error`).
#[test]
fn writes_by_another_process_are_caught_up_without_a_restore_being_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let admin = open(&path).unwrap();
    let (id, secret) = seed(&admin);
    let (options, seen) = reporting();
    let follower = KeyStore::open(path.to_str().unwrap(), options).unwrap();
    assert_eq!(allowed(&follower, &secret), Reason::Allowed);
    for i in 0..20 {
        admin.put_role(&format!("r{i}"), &["session:*".into()], None).unwrap();
        wait_until("the follower sees the role", || follower.list_roles().unwrap().iter().any(|r| r.name == format!("r{i}")));
        assert_eq!(allowed(&follower, &secret), Reason::Allowed, "a check while catching up, after role r{i}");
    }
    admin.set_state(&id, "revoked", None).unwrap();
    wait_until("the follower sees the revocation", || allowed(&follower, &secret) == Reason::Revoked);
    assert!(seen.lock().unwrap().is_empty(), "{:?}", seen.lock().unwrap());
}

/// A store `keys.db` in a new directory, seeded (`seed`), and its backup `backup.db` made then.
fn seeded_with_backup() -> (tempfile::TempDir, KeyStore, (String, String)) {
    let dir = tempfile::tempdir().unwrap();
    let admin = open(&dir.path().join("keys.db")).unwrap();
    let seeded = seed(&admin);
    admin.backup(dir.path().join("backup.db").to_str().unwrap()).unwrap();
    (dir, admin, seeded)
}

/// Restores `backup` into `path` as an operator would under running processes (`.restore`).
fn restore(path: &std::path::Path, backup: &std::path::Path) {
    let mut operator = rusqlite::Connection::open(path).unwrap();
    operator.busy_timeout(Duration::from_secs(5)).unwrap();
    operator.restore(rusqlite::MAIN_DB, backup, None::<fn(rusqlite::backup::Progress)>).unwrap();
}

/// The case the change log's numbers cannot tell: an older copy restored and, before a process
/// looks again, as many new changes made as the restore went back. The log then ends at the
/// number the process has read up to, so only the audit chain shows the file is another one.
/// Made deterministic by restoring a copy that already holds those new changes, in one step.
#[test]
fn a_restore_followed_by_as_many_changes_as_it_went_back_is_read_afresh() {
    let (dir, admin, (first, first_secret)) = seeded_with_backup();
    let (path, backup) = (dir.path().join("keys.db"), dir.path().join("backup.db"));
    // Two changes after the backup: the restored copy goes back by two.
    admin.put_role("gone-1", &["session:*".into()], None).unwrap();
    admin.put_role("gone-2", &["session:*".into()], None).unwrap();
    let follower = open(&path).unwrap();
    assert_eq!(allowed(&follower, &first_secret), Reason::Allowed);

    // The copy as it stands after the restore and two new changes, one of them a revocation.
    let edited = open(&backup).unwrap();
    edited.set_state(&first, "revoked", None).unwrap();
    edited.put_role("after", &["session:*".into()], None).unwrap();
    edited.close().unwrap();
    restore(&path, &backup);

    wait_until("the follower sees the revocation", || allowed(&follower, &first_secret) == Reason::Revoked);
    wait_until("the admin handle sees the revocation", || allowed(&admin, &first_secret) == Reason::Revoked);
    let roles = |store: &KeyStore| store.list_roles().unwrap().into_iter().map(|r| r.name).collect::<Vec<_>>();
    assert_eq!(roles(&follower), ["after"], "the restored file's roles, not the ones it went back over");
    assert_eq!(roles(&admin), ["after"]);
}

/// A use recorded in memory and not yet flushed survives this process reading the whole state
/// afresh (a reload: far behind, a restore, a failed catch-up, a PostgreSQL reconnection): the
/// reloaded registry holds the file's older `lastUsedAt`, and keeping that would lose the use for
/// good (the next flush writes the reloaded value) and show `lastUsedAt` going backwards.
#[test]
fn a_use_not_yet_flushed_survives_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let store = open(&path).unwrap();
    let (id, secret) = seed(&store);
    assert_eq!(allowed(&store, &secret), Reason::Allowed);
    let used_at = store.get_key(&id).unwrap().unwrap().last_used_at;
    assert!(used_at.is_some());
    // Another writer's change, every older change row pruned (as after 100,000 later changes):
    // only a reload of everything shows it.
    let mut db = rusqlite::Connection::open(&path).unwrap();
    let tx = db.transaction().unwrap();
    tx.execute("INSERT INTO users (id, status, rights, roles) VALUES ('late', 'active', '', '')", []).unwrap();
    tx.execute("INSERT INTO changes (kind, id, op) VALUES ('user', 'svc', 'put')", []).unwrap();
    tx.execute("INSERT INTO changes (kind, id, op) VALUES ('user', 'late', 'put')", []).unwrap();
    tx.execute("DELETE FROM changes WHERE seq < (SELECT max(seq) FROM changes)", []).unwrap();
    tx.commit().unwrap();
    wait_for("the reload", 5, || store.get_user("late").unwrap().is_some());
    assert_eq!(store.get_key(&id).unwrap().unwrap().last_used_at, used_at, "lastUsedAt after the reload");
    store.close().unwrap();
    let reopened = open(&path).unwrap();
    assert_eq!(reopened.get_key(&id).unwrap().unwrap().last_used_at, used_at, "lastUsedAt after reopening");
    reopened.close().unwrap();
}

/// A trigger added to the file that drops keygate's writes (`RAISE(IGNORE)`) fails the write,
/// and nothing of it is committed: not the change logged for other processes, not the audit entry.
#[test]
fn a_trigger_that_drops_keygate_writes_fails_them_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let store = open(&path).unwrap();
    let (id, secret) = seed(&store);
    let counts = "SELECT (SELECT count(*) FROM changes) || ' ' || (SELECT count(*) FROM audit)";
    let before = sql_on(&path, counts);
    sql_on(&path, "CREATE TRIGGER skip_update BEFORE UPDATE ON keys BEGIN SELECT RAISE(IGNORE); END");
    let error = store.set_state(&id, "revoked", None).unwrap_err();
    assert_eq!(error.code, ErrorCode::StoreCorrupt, "{error}");
    assert!(error.message.contains("a trigger added to the file"), "{error}");
    assert_eq!(sql_on(&path, "SELECT state FROM keys"), "active");
    assert_eq!(sql_on(&path, counts), before);
    assert_eq!(allowed(&store, &secret), Reason::Allowed);

    sql_on(&path, "CREATE TRIGGER skip_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(IGNORE); END");
    let error = store.put_user(&keygate_core::UserInput { id: "bob".into(), ..Default::default() }, None).unwrap_err();
    assert_eq!(error.code, ErrorCode::StoreCorrupt, "{error}");
    assert_eq!(sql_on(&path, "SELECT count(*) FROM users WHERE id = 'bob'"), "0");
    assert_eq!(sql_on(&path, counts), before);

    sql_on(&path, "DROP TRIGGER skip_update");
    sql_on(&path, "DROP TRIGGER skip_audit");
    store.set_state(&id, "revoked", None).unwrap();
    store.close().unwrap();
    let reopened = open(&path).unwrap();
    assert_eq!(allowed(&reopened, &secret), Reason::Revoked);
    assert!(reopened.verify_audit().unwrap().ok);
    reopened.close().unwrap();
}

/// The statements of a write that change several rows (a deleted user's keys, a deleted role in
/// its holders' rows) fail too when a trigger added to the file skips some of them: the rows left
/// would be keys of a missing user (a file that no longer opens), or a role held again, with its
/// rights, once a role of the same name is made.
#[test]
fn a_trigger_that_drops_some_rows_of_a_write_fails_it_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let store = open(&path).unwrap();
    store.put_role("ops", &["billing:*".into()], None).unwrap();
    store.put_user(&keygate_core::UserInput { id: "u1".into(), roles: vec!["ops".into()], ..Default::default() }, None).unwrap();
    store.put_user(&keygate_core::UserInput { id: "u2".into(), roles: vec!["ops".into()], ..Default::default() }, None).unwrap();
    let (_, secret) = seed(&store);
    let spare = keygate_core::NewKey {
        user_id: "svc".into(),
        description: "spare".into(),
        expires_at: Some(keygate_core::internals::system_now() + 86_400_000),
        ..Default::default()
    };
    store.create_key(&spare, None).unwrap();
    let counts = "SELECT (SELECT count(*) FROM changes) || ' ' || (SELECT count(*) FROM audit)";
    let before = sql_on(&path, counts);
    sql_on(&path, "CREATE TRIGGER skip_u2 BEFORE UPDATE ON users WHEN old.id = 'u2' BEGIN SELECT RAISE(IGNORE); END");
    sql_on(&path, "CREATE TRIGGER skip_key BEFORE DELETE ON keys WHEN old.description = 'spare' BEGIN SELECT RAISE(IGNORE); END");
    let error = store.delete_role("ops", None).unwrap_err();
    assert_eq!(error.code, ErrorCode::StoreCorrupt, "{error}");
    assert!(error.message.contains("a trigger added to the file"), "{error}");
    let error = store.delete_user("svc", None).unwrap_err();
    assert_eq!(error.code, ErrorCode::StoreCorrupt, "{error}");
    assert_eq!(sql_on(&path, counts), before);
    assert_eq!(sql_on(&path, "SELECT count(*) FROM roles"), "1");
    assert_eq!(sql_on(&path, "SELECT count(*) FROM keys"), "2");
    assert!(store.get_role("ops").unwrap().is_some() && store.get_user("svc").unwrap().is_some());
    assert_eq!(allowed(&store, &secret), Reason::Allowed);

    sql_on(&path, "DROP TRIGGER skip_u2");
    sql_on(&path, "DROP TRIGGER skip_key");
    assert!(store.delete_role("ops", None).unwrap());
    assert!(store.delete_user("svc", None).unwrap());
    store.close().unwrap();
    let reopened = open(&path).unwrap();
    assert_eq!(reopened.get_user("u2").unwrap().unwrap().roles, Vec::<String>::new());
    assert!(reopened.verify_audit().unwrap().ok);
    reopened.close().unwrap();
}

/// A row deleted by other means (an operator's `sqlite3 … DELETE FROM keys`, which running
/// processes do not see) is still deleted through keygate: its DELETE finds no row, which is
/// no trigger dropping the write, and the deletion reaches the running processes.
#[test]
fn a_row_deleted_by_hand_is_deleted_through_keygate_all_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let store = open(&path).unwrap();
    let (id, secret) = seed(&store);
    let other = common::seed_with(&store, &["session:*"]);
    sql_on(&path, "DELETE FROM keys WHERE seq = (SELECT min(seq) FROM keys)");
    assert_eq!(allowed(&store, &secret), Reason::Allowed, "running processes do not see it");
    assert!(store.delete_key(&id, None).unwrap());
    assert_eq!(allowed(&store, &secret), Reason::UnknownKey);
    sql_on(&path, "DELETE FROM users");
    assert!(store.delete_user("svc", None).unwrap());
    assert!(store.get_key(&other.0).unwrap().is_none());
    // A row still there that a trigger keeps is refused all the same.
    let (kept, _) = seed(&store);
    sql_on(&path, "CREATE TRIGGER keep_keys BEFORE DELETE ON keys BEGIN SELECT RAISE(IGNORE); END");
    assert_eq!(store.delete_key(&kept, None).unwrap_err().code, ErrorCode::StoreCorrupt);
    assert!(store.get_key(&kept).unwrap().is_some());
    store.close().unwrap();
}

/// A directory under `root` whose path leaves exactly room for `/<name>` in `total` bytes, made
/// of components at most 200 bytes long (file systems allow 255).
#[cfg(unix)]
fn directory_for_path_of(root: &std::path::Path, total: usize, name: &str) -> std::path::PathBuf {
    let mut dir = root.join(total.to_string());
    let mut left = total - dir.as_os_str().len() - 1 - name.len();
    while left > 0 {
        // Each component costs its length and a slash; none may be left 0 bytes long.
        let mut length = left.saturating_sub(1).min(200);
        if left - length - 1 == 1 {
            length -= 1;
        }
        dir.push("d".repeat(length));
        left -= length + 1;
    }
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(dir.join(name).as_os_str().len(), total);
    dir
}

/// SQLite opens no database whose path, made absolute with its links followed, is longer than
/// 504 bytes (its 512-byte limit less room for `-journal`), though Linux allows 4,095: such an
/// open failed with only "unable to open database file", after the new store's empty file had
/// been made (which the CLI then reported as "the file is empty"), and a short link to the
/// directory failed the same way. Now each is refused before anything is made, saying why; a
/// backup whose partial file would be too long likewise.
#[cfg(unix)]
#[test]
fn a_path_too_long_for_sqlite_is_refused_saying_so_and_nothing_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();

    let fits = directory_for_path_of(&root, 504, "k.db").join("k.db");
    let store = open(&fits).unwrap();
    seed(&store);
    store.close().unwrap();
    let reopened = open(&fits).unwrap();
    assert!(reopened.get_user("svc").unwrap().is_some());
    reopened.close().unwrap();

    let too_long = directory_for_path_of(&root, 505, "k.db");
    let link = root.join("short");
    std::os::unix::fs::symlink(&too_long, &link).unwrap();
    for path in [too_long.join("k.db"), link.join("k.db")] {
        let err = open(&path).err().unwrap();
        assert_eq!(err.code, ErrorCode::StoreIo, "{}", err.message);
        assert!(err.message.contains("is 505 bytes long") && err.message.contains("longer than 504 bytes"), "{}", err.message);
        assert_eq!(std::fs::read_dir(&too_long).unwrap().count(), 0, "nothing was made for {}", path.display());
    }

    // Through a directory too deep for SQLite and back out with `..`: short once resolved, but
    // SQLite resolves it one part at a time and gives up on the way.
    let deep = directory_for_path_of(&root, 620, "k.db");
    let back_out = deep.join("..").join("k.db");
    let err = open(&back_out).err().unwrap();
    assert_eq!(err.code, ErrorCode::StoreIo, "{}", err.message);
    assert!(
        err.message.contains("grows too long as SQLite resolves it") && err.message.contains("longer than 504 bytes"),
        "{}",
        err.message
    );
    assert!(!deep.parent().unwrap().join("k.db").exists(), "nothing was made");

    let live = open(&root.join("live.db")).unwrap();
    seed(&live);
    let backup_fits = directory_for_path_of(&root, 470, "b.db").join("b.db");
    live.backup(backup_fits.to_str().unwrap()).unwrap();
    assert!(open(&backup_fits).unwrap().get_user("svc").unwrap().is_some());
    let backup_dir = directory_for_path_of(&root, 490, "b.db");
    let err = live.backup(backup_dir.join("b.db").to_str().unwrap()).unwrap_err();
    assert_eq!(err.code, ErrorCode::StoreIo, "{}", err.message);
    assert!(err.message.contains("longer than 504 bytes") && err.message.contains("shorter path"), "{}", err.message);
    assert_eq!(std::fs::read_dir(&backup_dir).unwrap().count(), 0, "the backup left nothing");
    live.close().unwrap();
}

/// An `audit` table rebuilt behind keygate's back with a `seq` column that takes any value
/// (keygate's is the rowid, which takes whole numbers only): an entry numbered with a fraction
/// or NULL is damage where it stands in sequence order (verification fails at the entry expected
/// there, listing it is `STORE_CORRUPT` naming what it is numbered with); text or a blob sorts
/// after every number, as the largest, and the open's check of the head refuses the store. The
/// message names the value's type, never the text (which may be anything, a secret pasted).
#[test]
fn an_audit_entry_numbered_with_no_whole_number_is_damage_where_it_stands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let store = open(&path).unwrap();
    for role in ["a", "b", "c", "d", "e", "f"] {
        store.put_role(role, &["api:*".into()], None).unwrap();
    }
    store.close().unwrap();
    let pristine = std::fs::read(&path).unwrap();
    let rebuilt = "ALTER TABLE audit RENAME TO audit_before;
        CREATE TABLE audit (seq, at INTEGER NOT NULL, actor TEXT, action TEXT NOT NULL, key_id TEXT, user_id TEXT, detail TEXT NOT NULL, hash BLOB NOT NULL);
        INSERT INTO audit SELECT * FROM audit_before;
        DROP TABLE audit_before;";
    let tampered = |damage: &str| {
        std::fs::write(&path, &pristine).unwrap();
        rusqlite::Connection::open(&path).unwrap().execute_batch(&format!("{rebuilt}{damage}")).unwrap();
        open(&path)
    };
    let untouched = tampered("").unwrap();
    assert!(untouched.verify_audit().unwrap().ok, "the rebuilt table as such is no damage");
    untouched.close().unwrap();
    let all = keygate_core::AuditQuery::default();
    for (damage, first_bad_seq, what) in [
        ("UPDATE audit SET seq = 4.5 WHERE seq = 5", 5, "a floating-point number (4.5)"),
        ("UPDATE audit SET seq = 5.0 WHERE seq = 5", 5, "a floating-point number (5.0)"),
        // NULL sorts before every number: first in sequence order, where entry 1 belongs.
        ("UPDATE audit SET seq = NULL WHERE seq = 5", 1, "nothing (NULL)"),
    ] {
        let store = tampered(damage).unwrap();
        let problem = format!(
            "an entry is numbered with {what}, not a whole number, where entry {first_bad_seq} should be (keygate numbers entries 1, 2, 3…)"
        );
        assert_eq!(
            store.verify_audit().unwrap(),
            keygate_core::AuditReport { ok: false, entries: first_bad_seq - 1, first_bad_seq: Some(first_bad_seq), problem: Some(problem) },
            "{damage}"
        );
        let error = store.audit(&all).unwrap_err();
        assert_eq!(error.code, ErrorCode::StoreCorrupt, "{damage}: {}", error.message);
        assert!(
            error.message.contains(&format!("an audit entry is numbered with {what}, not a whole number")),
            "{damage}: {}",
            error.message
        );
        store.close().unwrap();
    }
    let pasted = "written by hand";
    for (damage, what) in [
        (format!("UPDATE audit SET seq = '{pasted}' WHERE seq = 5"), "text"),
        ("UPDATE audit SET seq = x'05' WHERE seq = 5".to_string(), "a blob"),
        ("UPDATE audit SET seq = 1e300 WHERE seq = 5".to_string(), "a floating-point number (1e300)"),
    ] {
        let Err(error) = tampered(&damage) else { panic!("{damage}: opened") };
        assert_eq!(error.code, ErrorCode::StoreCorrupt, "{damage}: {}", error.message);
        assert!(
            error.message.contains(&format!("an audit entry is numbered with {what}, not a whole number")),
            "{damage}: {}",
            error.message
        );
        assert!(!error.message.contains(pasted), "{damage}: {}", error.message);
    }
}
