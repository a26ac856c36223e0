//! The durable store: persistence, refusal of files it cannot use, the audit
//! chain, and two handles on one file seeing each other's changes.

use std::time::{Duration, Instant};

use keygate_core::{Call, ErrorCode, KeyStore, NewKey, Options, Reason, UserInput};

const DAY: i64 = 86_400_000;

fn open(path: &std::path::Path) -> keygate_core::Result<KeyStore> {
    KeyStore::open(path.to_str().unwrap(), Options::default())
}

fn seed(store: &KeyStore) -> (String, String) {
    store.put_user(&UserInput { id: "svc".into(), rights: vec!["*:*".into()], ..Default::default() }, Some("alice")).unwrap();
    let issued = store
        .create_key(
            &NewKey {
                user_id: "svc".into(),
                description: "nightly".into(),
                expires_at: Some(keygate_core::clock::system_now() + DAY),
                rules: vec!["session:*".into(), "ip=10.0.0.0/8".into()],
                state: None,
            },
            Some("alice"),
        )
        .unwrap();
    (issued.key.id, issued.secret)
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
    assert_eq!((key.state, key.rules.clone(), key.description.as_str()), ("suspended", vec!["session:*".to_string(), "ip=10.0.0.0/8".to_string()], "nightly"));
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
