//! `KeyStore::audit`'s filters and paging, each on both stores: the in-memory window and SQLite's query.

use keygate_core::{AuditAction, AuditQuery, ErrorCode, KeyStore, KeyView, NewKey, Options, UserInput};

const T0: i64 = 1_800_000_000_000;

/// Four changes a second apart: putRole by "Alice Admin", putUser by "bob",
/// createKey by nobody, setState by "ALICE"; returns the key id.
fn seed(store: &KeyStore) -> String {
    store.set_now(Some(T0));
    store.put_role("reader", &["data:*".into()], Some("Alice Admin")).unwrap();
    store.set_now(Some(T0 + 1000));
    store.put_user(&UserInput { id: "svc".into(), rights: vec!["*:*".into()], ..Default::default() }, Some("bob")).unwrap();
    store.set_now(Some(T0 + 2000));
    let issued = store
        .create_key(
            &NewKey { user_id: "svc".into(), description: "k".into(), expires_at: Some(T0 + 86_400_000), ..Default::default() },
            None,
        )
        .unwrap();
    store.set_now(Some(T0 + 3000));
    store.set_state(&issued.key.id, "suspended", Some("ALICE")).unwrap();
    issued.key.id
}

/// The actions of the entries the query selects, newest first.
fn actions(store: &KeyStore, query: AuditQuery) -> Vec<String> {
    store.audit(&query).unwrap().into_iter().map(|e| e.action).collect()
}

fn each_filter(store: &KeyStore) {
    let key_id = seed(store);
    let all = || AuditQuery::default();
    assert_eq!(actions(store, all()), ["setState", "createKey", "putUser", "putRole"]);
    assert_eq!(actions(store, AuditQuery { action: Some(AuditAction::PutUser), ..all() }), ["putUser"]);
    assert_eq!(actions(store, AuditQuery { action: Some(AuditAction::DeleteKey), ..all() }), Vec::<String>::new());
    assert_eq!(actions(store, AuditQuery { actor: Some("alice".into()), ..all() }), ["setState", "putRole"], "a part, either case");
    assert_eq!(actions(store, AuditQuery { actor: Some("ce ad".into()), ..all() }), ["putRole"]);
    assert_eq!(actions(store, AuditQuery { actor: Some("%".into()), ..all() }), Vec::<String>::new(), "no wildcards");
    // Every actor contains the empty text: an unset variable would list everyone's changes.
    let empty = store.audit(&AuditQuery { actor: Some(String::new()), ..all() }).unwrap_err();
    assert_eq!(empty.code, ErrorCode::InvalidArgument, "{}", empty.message);
    assert!(empty.message.contains("actor filter is empty"), "{}", empty.message);
    assert_eq!(actions(store, AuditQuery { actor: Some(" ".into()), ..all() }), ["putRole"], "a space is some text");
    assert_eq!(actions(store, AuditQuery { key_id: Some(key_id), ..all() }), ["setState", "createKey"]);
    assert_eq!(actions(store, AuditQuery { user_id: Some("svc".into()), ..all() }), ["setState", "createKey", "putUser"]);
    assert_eq!(actions(store, AuditQuery { since: Some(T0 + 1000), ..all() }), ["setState", "createKey", "putUser"]);
    assert_eq!(actions(store, AuditQuery { until: Some(T0 + 1000), ..all() }), ["putUser", "putRole"], "until is inclusive");
    assert_eq!(actions(store, AuditQuery { since: Some(T0 + 1000), until: Some(T0 + 2000), ..all() }), ["createKey", "putUser"]);
    assert_eq!(actions(store, AuditQuery { limit: Some(1), user_id: Some("svc".into()), ..all() }), ["setState"]);
    let together = AuditQuery { action: Some(AuditAction::SetState), actor: Some("alice".into()), since: Some(T0), ..all() };
    assert_eq!(actions(store, together), ["setState"]);
    assert_eq!(actions(store, AuditQuery { before_seq: Some(3), ..all() }), ["putUser", "putRole"], "below, not at");
    assert_eq!(actions(store, AuditQuery { before_seq: Some(4), limit: Some(1), ..all() }), ["createKey"]);
    assert_eq!(actions(store, AuditQuery { before_seq: Some(3), user_id: Some("svc".into()), ..all() }), ["putUser"]);
    assert_eq!(actions(store, AuditQuery { before_seq: Some(1), ..all() }), Vec::<String>::new());
    assert_eq!(actions(store, AuditQuery { before_seq: Some(u64::MAX), ..all() }).len(), 4, "past every number a store holds");
}

/// Entries sharing one instant (a frozen clock, or a purge): `until` gives the same page
/// again, `before_seq` the next one.
fn pages_of_one_instant(store: &KeyStore) {
    store.set_now(Some(T0));
    for i in 0..7 {
        store.put_user(&UserInput { id: format!("u{i}"), ..Default::default() }, None).unwrap();
    }
    let seqs = |query: AuditQuery| store.audit(&query).unwrap().into_iter().map(|e| e.seq).collect::<Vec<_>>();
    let first = seqs(AuditQuery { limit: Some(3), ..AuditQuery::default() });
    assert_eq!(first, [7, 6, 5]);
    assert_eq!(seqs(AuditQuery { until: Some(T0), limit: Some(3), ..AuditQuery::default() }), first);
    assert_eq!(seqs(AuditQuery { before_seq: Some(5), limit: Some(3), ..AuditQuery::default() }), [4, 3, 2]);
    assert_eq!(seqs(AuditQuery { before_seq: Some(2), limit: Some(3), ..AuditQuery::default() }), [1]);
}

#[test]
fn pages_of_one_instant_in_memory() {
    pages_of_one_instant(&KeyStore::in_memory(Options::default()).unwrap());
}

#[test]
fn pages_of_one_instant_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    pages_of_one_instant(&KeyStore::open(path.to_str().unwrap(), Options::default()).unwrap());
}

#[test]
fn each_filter_in_memory() {
    each_filter(&KeyStore::in_memory(Options { now: Some(T0), ..Options::default() }).unwrap());
}

#[test]
fn each_filter_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    each_filter(&KeyStore::open(path.to_str().unwrap(), Options { now: Some(T0), ..Options::default() }).unwrap());
}

#[test]
fn an_unknown_action_name_is_invalid_argument() {
    assert_eq!(AuditAction::parse("setState").unwrap(), AuditAction::SetState);
    // A secret pasted as the action is refused like any other name, and not echoed.
    let secret = keygate_core::internals::generate(&keygate_core::internals::Prefix::default()).unwrap().text;
    for name in ["", "SetState", "nope", secret.as_str()] {
        let error = AuditAction::parse(name).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidArgument, "{name:?}");
    }
    assert!(!AuditAction::parse(&secret).unwrap_err().message.contains(&secret[3..]));
}

/// A rotation's two entries name each other, also when the old key's own fields do not change
/// (its overlap reaches past its expiry), and on reading back from the file.
fn rotations_link_their_keys(store: &KeyStore) {
    let old = seed(store);
    store.set_state(&old, "active", None).unwrap();
    let overlap_past_expiry = 10.0 * 86_400.0;
    let new = store.rotate_key(&old, overlap_past_expiry, Some("ops")).unwrap().key.id;
    let entries = store.audit(&AuditQuery { action: Some(AuditAction::RotateKey), ..AuditQuery::default() }).unwrap();
    // Newest first: the old key's entry follows the new key's.
    let [of_old, of_new] = entries.as_slice() else { panic!("two rotateKey entries, got {entries:?}") };
    assert_eq!(of_new.key_id.as_deref(), Some(new.as_str()));
    assert_eq!(of_new.detail["rotatedFrom"], old.as_str());
    assert!(of_new.detail["created"].is_object(), "{:?}", of_new.detail);
    assert_eq!(of_old.key_id.as_deref(), Some(old.as_str()));
    assert_eq!(of_old.detail, serde_json::json!({ "rotatedTo": new }), "nothing else of the old key changed");
    let revoked_at_once = store.rotate_key(&new, 0.0, None).unwrap().key.id;
    let entries = store.audit(&AuditQuery { key_id: Some(new.clone()), limit: Some(1), ..AuditQuery::default() }).unwrap();
    assert_eq!(entries[0].detail["rotatedTo"], revoked_at_once.as_str());
    assert_eq!(entries[0].detail["state"], serde_json::json!(["active", "revoked"]));
    // Other calls name no rotation.
    let others = store.audit(&AuditQuery::default()).unwrap();
    for e in others.iter().filter(|e| e.action != "rotateKey") {
        assert!(e.detail.get("rotatedTo").is_none() && e.detail.get("rotatedFrom").is_none(), "{e:?}");
    }
    assert!(store.verify_audit().unwrap().ok);
}

#[test]
fn rotations_link_their_keys_in_memory() {
    rotations_link_their_keys(&KeyStore::in_memory(Options { now: Some(T0), ..Options::default() }).unwrap());
}

#[test]
fn rotations_link_their_keys_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let path = path.to_str().unwrap();
    rotations_link_their_keys(&KeyStore::open(path, Options { now: Some(T0), ..Options::default() }).unwrap());
    let reopened = KeyStore::open(path, Options { now: Some(T0 + 5000), ..Options::default() }).unwrap();
    let entries = reopened.audit(&AuditQuery { action: Some(AuditAction::RotateKey), ..AuditQuery::default() }).unwrap();
    assert_eq!(entries.len(), 4);
    assert!(entries.iter().all(|e| e.detail.get("rotatedTo").or_else(|| e.detail.get("rotatedFrom")).is_some()), "{entries:?}");
}

/// Each change's entry records what it did, as the README promises: `{ created: … }` with the
/// whole user, role or key, `{ field: [before, after] }` for a change, `{ deleted: … }` with the
/// whole user, role or key (a role's holders, a user's keys, newest first, each key in an entry of
/// its own), so that the trail alone tells what a deleted one could do.
fn entries_record_what_each_change_did(store: &KeyStore) {
    use serde_json::json;
    store.set_now(Some(T0));
    store.put_role("reader", &["data:*".into()], None).unwrap();
    store.put_role("writer", &["data:write".into()], None).unwrap();
    store.put_role("reader", &["data:read".into()], None).unwrap();
    let user = |id: &str, rights: &[&str], roles: &[&str]| UserInput {
        id: id.into(),
        rights: rights.iter().map(|r| r.to_string()).collect(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..Default::default()
    };
    store.put_user(&user("svc", &["app:*"], &["reader"]), None).unwrap();
    store.put_user(&user("bob", &[], &["writer"]), None).unwrap();
    store.put_user(&user("alice", &[], &["reader", "writer"]), None).unwrap();
    store.put_user(&user("svc", &["app:read"], &["reader"]), None).unwrap();
    let key = |description: &str| NewKey {
        user_id: "svc".into(),
        description: description.into(),
        expires_at: Some(T0 + 86_400_000),
        rules: vec!["app:read".into()],
        ..Default::default()
    };
    store.set_now(Some(T0 + 1000));
    let older = store.create_key(&key("older"), None).unwrap().key;
    store.set_now(Some(T0 + 2000));
    let newer = store.create_key(&key("newer"), None).unwrap().key;
    store.delete_role("reader", None).unwrap();
    store.delete_user("svc", None).unwrap();

    let trail = store.audit(&AuditQuery::default()).unwrap();
    let details: Vec<(&str, Option<&str>, Option<&str>, &serde_json::Value)> =
        trail.iter().rev().map(|e| (e.action.as_str(), e.user_id.as_deref(), e.key_id.as_deref(), &e.detail)).collect();
    let key_fields = |k: &KeyView| {
        json!({
            "userId": "svc",
            "description": k.description,
            "state": "active",
            "expiresAt": "2027-01-16T08:00:00.000Z",
            "rules": ["app:read"],
            "hint": k.hint,
        })
    };
    let expected = [
        ("putRole", None, None, json!({ "role": "reader", "created": { "rights": ["data:*"] } })),
        ("putRole", None, None, json!({ "role": "writer", "created": { "rights": ["data:write"] } })),
        ("putRole", None, None, json!({ "role": "reader", "changes": { "rights": [["data:*"], ["data:read"]] } })),
        ("putUser", Some("svc"), None, json!({ "created": { "status": "active", "rights": ["app:*"], "roles": ["reader"] } })),
        ("putUser", Some("bob"), None, json!({ "created": { "status": "active", "rights": [], "roles": ["writer"] } })),
        ("putUser", Some("alice"), None, json!({ "created": { "status": "active", "rights": [], "roles": ["reader", "writer"] } })),
        ("putUser", Some("svc"), None, json!({ "rights": [["app:*"], ["app:read"]] })),
        ("createKey", Some("svc"), Some(older.id.as_str()), json!({ "created": key_fields(&older) })),
        ("createKey", Some("svc"), Some(newer.id.as_str()), json!({ "created": key_fields(&newer) })),
        (
            "deleteRole",
            None,
            None,
            json!({ "role": "reader", "deleted": { "rights": ["data:read"] }, "removedFromUsers": ["alice", "svc"] }),
        ),
        (
            "deleteUser",
            Some("svc"),
            None,
            json!({
                "deleted": { "status": "active", "rights": ["app:read"], "roles": [] },
                "deletedKeys": [newer.id, older.id],
            }),
        ),
        ("deleteUser", Some("svc"), Some(newer.id.as_str()), json!({ "deleted": key_fields(&newer) })),
        ("deleteUser", Some("svc"), Some(older.id.as_str()), json!({ "deleted": key_fields(&older) })),
    ];
    assert_eq!(details.len(), expected.len(), "{details:#?}");
    for (found, (action, user_id, key_id, detail)) in details.iter().zip(expected.iter()) {
        assert_eq!(*found, (*action, *user_id, *key_id, detail), "{details:#?}");
    }
    assert!(store.verify_audit().unwrap().ok);
}

#[test]
fn entries_record_what_each_change_did_in_memory() {
    entries_record_what_each_change_did(&KeyStore::in_memory(Options { now: Some(T0), ..Options::default() }).unwrap());
}

#[test]
fn entries_record_what_each_change_did_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let path = path.to_str().unwrap();
    entries_record_what_each_change_did(&KeyStore::open(path, Options { now: Some(T0), ..Options::default() }).unwrap());
    // Read back from the file as written.
    let reopened = KeyStore::open(path, Options { now: Some(T0 + 5000), ..Options::default() }).unwrap();
    assert_eq!(reopened.audit(&AuditQuery::default()).unwrap().len(), 13);
    assert!(reopened.verify_audit().unwrap().ok);
}
