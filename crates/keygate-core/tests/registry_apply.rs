//! `Registry::apply`: the one way the in-memory state changes. Each kind of
//! `Change` and its effect; a change that does not fit is an error and leaves
//! the registry exactly as it was.

use keygate_core::internals::{
    generate, record_of, user_record, Change, Key, KeyRecord, Prefix, Registry, RoleRecord, SecretDigest, UserRecord,
};
use keygate_core::{ErrorCode, KeyId, KeyState, UserStatus};

const DAY: i64 = 86_400_000;
const T0: i64 = 1_800_000_000_000;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn user(id: &str, status: UserStatus, rights: &[&str], roles: &[&str]) -> UserRecord {
    UserRecord { id: id.into(), status, rights: strings(rights), roles: strings(roles) }
}

fn role(name: &str, rights: &[&str]) -> RoleRecord {
    RoleRecord { name: name.into(), rights: strings(rights) }
}

thread_local! {
    /// The secret of each digest `key` issued (records keep digests only).
    static SECRETS: std::cell::RefCell<std::collections::HashMap<SecretDigest, String>> = Default::default();
}

/// The key the registry finds for the secret behind `digest`, as a check would.
fn by_secret<'r>(registry: &'r Registry, digest: &SecretDigest) -> Option<&'r Key> {
    let secret = SECRETS.with(|secrets| secrets.borrow().get(digest).cloned()).expect("a digest issued by key()");
    registry.key_by_secret(secret.as_bytes())
}

/// A key with a fresh secret; `n` makes its id (and sequence number) distinct.
fn key(n: u8, user_id: &str, rules: &[&str]) -> KeyRecord {
    let secret = generate(&Prefix::default()).unwrap();
    SECRETS.with(|secrets| secrets.borrow_mut().insert(secret.digest, secret.text.clone()));
    KeyRecord {
        id: KeyId::from_bytes([n; 16]),
        seq: u64::from(n),
        user_id: user_id.into(),
        description: format!("key {n}"),
        state: KeyState::Active,
        expires_at: T0 + DAY,
        created_at: T0,
        updated_at: T0,
        last_used_at: None,
        hint: secret.hint,
        digest: secret.digest,
        rules: strings(rules),
    }
}

fn apply(registry: &mut Registry, change: Change) {
    registry.apply(change.clone()).unwrap_or_else(|e| panic!("{change:?} was refused: {e}"));
}

/// Everything observable in a registry, in a stable order.
#[derive(Debug, PartialEq)]
struct Snapshot {
    users: Vec<UserRecord>,
    roles: Vec<RoleRecord>,
    keys: Vec<KeyRecord>,
    next_seq: u64,
    /// The rules and long lists' indexes the rule interner holds: a refused change takes none in.
    interned: (usize, usize),
}

fn snapshot(registry: &Registry) -> Snapshot {
    let mut users: Vec<_> = registry.users().map(user_record).collect();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    let mut roles: Vec<_> = registry.roles().map(|r| RoleRecord { name: r.name.to_string(), rights: r.rights.texts() }).collect();
    roles.sort_by(|a, b| a.name.cmp(&b.name));
    let mut keys: Vec<_> = registry.keys().map(record_of).collect();
    keys.sort_by_key(|k| k.id);
    assert_eq!(keys.len(), registry.key_count());
    for k in &keys {
        assert_eq!(by_secret(registry, &k.digest).map(|found| found.id), Some(k.id), "every key is found by its secret");
    }
    Snapshot { users, roles, keys, next_seq: registry.next_seq(), interned: registry.interned() }
}

/// A registry with two roles, two users and three keys.
fn populated() -> (Registry, Vec<KeyRecord>) {
    let mut r = Registry::default();
    apply(&mut r, Change::PutRole(role("reader", &["data:get*"])));
    apply(&mut r, Change::PutRole(role("writer", &["data:*"])));
    apply(&mut r, Change::PutUser(user("alice", UserStatus::Active, &["session:*"], &["reader", "writer"])));
    apply(&mut r, Change::PutUser(user("bob", UserStatus::Active, &[], &["reader"])));
    let keys = vec![key(1, "alice", &["session:*"]), key(2, "alice", &["ip=10.0.0.0/8"]), key(3, "bob", &[])];
    for k in &keys {
        apply(&mut r, Change::PutKey(k.clone()));
    }
    (r, keys)
}

#[test]
fn put_user_creates_then_replaces_the_whole_user() {
    let mut r = Registry::default();
    apply(&mut r, Change::PutUser(user("alice", UserStatus::Active, &["session:*", "data:get*"], &["reader"])));
    assert_eq!(r.user("alice").map(user_record), Some(user("alice", UserStatus::Active, &["session:*", "data:get*"], &["reader"])));
    apply(&mut r, Change::PutUser(user("alice", UserStatus::Suspended, &["admin:*"], &[])));
    assert_eq!(r.user("alice").map(user_record), Some(user("alice", UserStatus::Suspended, &["admin:*"], &[])));
    assert_eq!(r.users().count(), 1);
}

#[test]
fn put_role_creates_then_replaces_its_rights() {
    let mut r = Registry::default();
    apply(&mut r, Change::PutRole(role("reader", &["data:get*"])));
    assert_eq!(r.role("reader").map(|x| x.rights.texts()), Some(strings(&["data:get*"])));
    apply(&mut r, Change::PutRole(role("reader", &["data:*", "session:*"])));
    assert_eq!(r.role("reader").map(|x| x.rights.texts()), Some(strings(&["data:*", "session:*"])));
    assert_eq!(r.roles().count(), 1);
}

#[test]
fn put_key_adds_a_key_found_by_id_and_digest_and_advances_the_sequence() {
    let (r, keys) = populated();
    assert_eq!(r.key_count(), 3);
    for k in &keys {
        assert_eq!(r.key_by_id(&k.id).map(record_of).as_ref(), Some(k));
        assert_eq!(by_secret(&r, &k.digest).map(|found| found.id), Some(k.id));
    }
    assert_eq!(r.next_seq(), 4, "the next key gets the sequence number after the highest");
}

#[test]
fn put_key_replaces_a_key_by_id_and_keeps_its_latest_use() {
    let (mut r, keys) = populated();
    let old = &keys[0];
    r.key_by_id(&old.id).unwrap().set_last_used_at(Some(T0 + 5_000));
    let mut new = key(1, "alice", &["data:getRecord"]);
    new.state = KeyState::Suspended;
    new.description = "replaced".into();
    new.last_used_at = Some(T0 + 1_000);
    apply(&mut r, Change::PutKey(new.clone()));
    assert_eq!(r.key_count(), 3, "replaced, not added");
    let stored = record_of(r.key_by_id(&old.id).unwrap());
    assert_eq!(stored, KeyRecord { last_used_at: Some(T0 + 5_000), ..new.clone() }, "a replacement does not move lastUsedAt back");
    assert!(by_secret(&r, &old.digest).is_none(), "the old digest no longer finds the key");
    assert_eq!(by_secret(&r, &new.digest).map(|k| k.id), Some(old.id));
}

/// Keys are placed by their secret's last four characters (its hint) and confirmed by
/// digest: keys sharing a hint are each found by their own secret only, also after
/// others of that hint are deleted, and a secret of the same hint that no key has finds none.
#[test]
fn keys_sharing_a_hint_are_each_found_by_their_own_secret_only() {
    let mut r = Registry::default();
    apply(&mut r, Change::PutUser(user("alice", UserStatus::Active, &["session:*"], &[])));
    let secrets: Vec<String> = (0..40).map(|n| format!("kg_{n:0>43}zzzz")).collect();
    for (n, secret) in secrets.iter().enumerate() {
        let mut record = key(n as u8 + 1, "alice", &[]);
        record.hint = *b"zzzz";
        record.digest = keygate_core::internals::digest(secret.as_bytes());
        apply(&mut r, Change::PutKey(record));
    }
    let id_of = |r: &Registry, secret: &String| r.key_by_secret(secret.as_bytes()).map(|k| k.id);
    for (n, secret) in secrets.iter().enumerate() {
        assert_eq!(id_of(&r, secret), Some(KeyId::from_bytes([n as u8 + 1; 16])), "{secret}");
    }
    assert_eq!(r.key_by_secret(b"kg_stranger_with_the_same_hint_zzzz").map(|k| k.id), None);
    assert_eq!(r.key_by_secret(b"zzz").map(|k| k.id), None, "shorter than a hint");
    for n in (0..40).step_by(3) {
        apply(&mut r, Change::DeleteKey(KeyId::from_bytes([n as u8 + 1; 16])));
    }
    for (n, secret) in secrets.iter().enumerate() {
        let expected = (n % 3 != 0).then(|| KeyId::from_bytes([n as u8 + 1; 16]));
        assert_eq!(id_of(&r, secret), expected, "{secret} after deleting every third key");
    }
}

/// The memo (`lib/memo.js`) refuses a secret whose hint has no bit in the store's hint filter
/// without asking the core. A store attaches its filter to a registry already loaded (opened
/// from disk, or reloaded after other processes' changes): every key held then, and every key
/// put after, must have its bit, or its valid secret is refused as an unknown key.
#[test]
fn the_hint_filter_marks_the_keys_held_when_attached_and_those_put_after() {
    let (mut r, keys) = populated();
    let filter = std::sync::Arc::new(keygate_core::memo::HintFilter::default());
    r.attach_hints(filter.clone());
    for k in &keys {
        assert!(filter.may_contain(&k.hint), "{} held when the filter was attached", k.description);
    }
    let later = key(4, "bob", &[]);
    apply(&mut r, Change::PutKey(later.clone()));
    assert!(filter.may_contain(&later.hint), "a key put after the filter was attached");
}

#[test]
fn delete_key_removes_only_that_key() {
    let (mut r, keys) = populated();
    apply(&mut r, Change::DeleteKey(keys[1].id));
    assert!(r.key_by_id(&keys[1].id).is_none());
    assert!(by_secret(&r, &keys[1].digest).is_none());
    assert_eq!(r.key_count(), 2);
    let before = snapshot(&r);
    apply(&mut r, Change::DeleteKey(keys[1].id));
    apply(&mut r, Change::DeleteKey(KeyId::from_bytes([9; 16])));
    assert_eq!(snapshot(&r), before, "deleting a key that is not there changes nothing");
}

#[test]
fn delete_user_removes_the_user_and_its_keys_only() {
    let (mut r, keys) = populated();
    apply(&mut r, Change::DeleteUser("alice".into()));
    assert!(r.user("alice").is_none());
    for k in &keys[..2] {
        assert!(r.key_by_id(&k.id).is_none(), "alice's key {} is gone", k.description);
        assert!(by_secret(&r, &k.digest).is_none());
    }
    assert_eq!(r.key_by_id(&keys[2].id).map(record_of).as_ref(), Some(&keys[2]), "bob's key stays");
    assert_eq!(r.key_count(), 1);
    assert!(r.user("bob").is_some());
    assert_eq!(r.roles().count(), 2, "the roles stay");
}

#[test]
fn delete_role_removes_it_from_every_user_holding_it() {
    let (mut r, _) = populated();
    apply(&mut r, Change::DeleteRole("reader".into()));
    assert!(r.role("reader").is_none());
    assert!(r.role("writer").is_some());
    assert_eq!(r.user("alice").map(user_record), Some(user("alice", UserStatus::Active, &["session:*"], &["writer"])));
    assert_eq!(r.user("bob").map(user_record), Some(user("bob", UserStatus::Active, &[], &[])));
    assert_eq!(r.key_count(), 3, "keys are untouched");
}

#[test]
fn a_change_that_does_not_fit_is_an_error_and_changes_nothing() {
    let (mut r, keys) = populated();
    let before = snapshot(&r);
    let mut bad_rule_update = keys[0].clone();
    bad_rule_update.rules = strings(&["session:*", "not a rule"]);
    bad_rule_update.description = "should not land".into();
    let cases = [
        ("a user right that is not a rule", Change::PutUser(user("carol", UserStatus::Active, &["session"], &[])), ErrorCode::InvalidRule),
        ("an IP rule as a user right", Change::PutUser(user("carol", UserStatus::Active, &["ip=10.0.0.0/8"], &[])), ErrorCode::InvalidRule),
        // Held by no list: refused before it is interned, or the interner would keep it forever.
        (
            "an IP rule no list holds as a user right",
            Change::PutUser(user("carol", UserStatus::Active, &["ip=198.51.100.0/24"], &[])),
            ErrorCode::InvalidRule,
        ),
        (
            "an IP rule no list holds as a role right",
            Change::PutRole(role("auditor", &["audit:*", "ip=198.51.100.7"])),
            ErrorCode::InvalidRule,
        ),
        (
            "an existing user replaced with a bad right",
            Change::PutUser(user("alice", UserStatus::Suspended, &["admin:*", "bad right"], &[])),
            ErrorCode::InvalidRule,
        ),
        ("a role right that is not a rule", Change::PutRole(role("auditor", &["audit:*", ":"])), ErrorCode::InvalidRule),
        ("an existing role replaced with an IP rule", Change::PutRole(role("reader", &["ip=10.0.0.0/8"])), ErrorCode::InvalidRule),
        ("a key rule that is not a rule", Change::PutKey(key(7, "alice", &["ip=not-an-ip"])), ErrorCode::InvalidRule),
        ("an existing key replaced with a bad rule", Change::PutKey(bad_rule_update), ErrorCode::InvalidRule),
        ("a key of a missing user", Change::PutKey(key(8, "nobody", &[])), ErrorCode::StoreCorrupt),
        (
            "a key with rules of a missing user",
            Change::PutKey(key(9, "nobody", &["brand:new", "ip=192.0.2.0/24"])),
            ErrorCode::StoreCorrupt,
        ),
        ("a key whose rules end with a bad one", Change::PutKey(key(10, "alice", &["brand:new", "bad rule"])), ErrorCode::InvalidRule),
        (
            "an existing key moved to a missing user",
            Change::PutKey(KeyRecord { seq: 99, ..key(1, "nobody", &[]) }),
            ErrorCode::StoreCorrupt,
        ),
    ];
    for (what, change, code) in cases {
        let error = r.apply(change).expect_err(what);
        assert_eq!(error.code, code, "{what}: {error}");
        assert_eq!(snapshot(&r), before, "{what}: the registry is as it was");
    }
}

/// A change row naming, as its key's user, a text shaped like a secret (another process can
/// write anything there): the refusal names the user without the secret.
#[test]
fn a_key_of_a_missing_user_named_like_a_secret_is_refused_without_the_secret() {
    let (mut r, _) = populated();
    let secret = generate(&Prefix::default()).unwrap().text;
    let error = r.apply(Change::PutKey(key(11, &secret, &[]))).expect_err("a missing user");
    assert_eq!(error.code, ErrorCode::StoreCorrupt, "{error}");
    assert!(error.message.contains("missing user"), "{error}");
    assert!(!error.message.contains(&secret), "the secret in {error}");
}

/// A store's state as it is loaded (`Registry::load`): a second row of one key, user or role
/// (a table rebuilt without its primary key) is refused, not read as an update: which row came
/// last would decide, e.g. whether a user stored both suspended and active may call at all.
/// Nothing changes, and rows of other ids still load.
#[test]
fn loading_a_key_user_or_role_stored_twice_is_store_corrupt_and_changes_nothing() {
    let (mut r, keys) = populated();
    let before = snapshot(&r);
    let cases = [
        ("a key stored twice", Change::PutKey(KeyRecord { state: KeyState::Revoked, ..keys[0].clone() }), "key "),
        ("a user stored twice", Change::PutUser(user("alice", UserStatus::Suspended, &[], &[])), "user \"alice\""),
        ("a role stored twice", Change::PutRole(role("writer", &["data:get*"])), "role \"writer\""),
    ];
    for (what, change, named) in cases {
        let error = r.load(change).expect_err(what);
        assert_eq!(error.code, ErrorCode::StoreCorrupt, "{what}: {error}");
        assert!(error.message.contains(named) && error.message.contains("stored twice"), "{what}: {error}");
        assert_eq!(snapshot(&r), before, "{what}: the registry is as it was");
    }
    r.load(Change::PutUser(user("carol", UserStatus::Active, &["session:*"], &[]))).unwrap();
    r.load(Change::PutRole(role("auditor", &["audit:*"]))).unwrap();
    r.load(Change::PutKey(key(4, "carol", &[]))).unwrap();
}

/// The rule interner holds each distinct rule once, and a long list's index once, while any
/// list uses them, and forgets them with the last list: a store whose rules change all day does
/// not grow. (`interned` is what the fuzz targets' and these tests' leak checks read.)
#[test]
fn the_interner_holds_the_rules_in_use_and_forgets_them_with_their_last_list() {
    let (mut r, keys) = populated();
    assert_eq!(r.interned(), (4, 0), "data:get*, data:*, session:* (a right and a key rule) and ip=10.0.0.0/8");
    let long: Vec<String> = (0..17).map(|n| format!("svc{n}:call")).collect();
    let long: Vec<&str> = long.iter().map(String::as_str).collect();
    apply(&mut r, Change::PutKey(key(4, "bob", &long)));
    assert_eq!(r.interned(), (21, 1), "a list of 17 rules is indexed");
    apply(&mut r, Change::DeleteKey(keys[0].id));
    assert_eq!(r.interned(), (21, 1), "session:* is still alice's right");
    for id in ["alice", "bob"] {
        apply(&mut r, Change::DeleteUser(id.into()));
    }
    assert_eq!(r.interned(), (2, 0), "the roles' rights stay");
    for name in ["reader", "writer"] {
        apply(&mut r, Change::DeleteRole(name.into()));
    }
    assert_eq!(r.interned(), (0, 0));
}
