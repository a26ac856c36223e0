//! A registry with one user and one key, for the decision's tests.

use keygate_core::internals::{generate, Change, KeyRecord, Prefix, Registry, UserRecord};
use keygate_core::{KeyId, KeyState, UserStatus};

pub const DAY: i64 = 86_400_000;
pub const T0: i64 = 1_800_000_000_000;
pub const EXPIRES: i64 = T0 + DAY;

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Stores user `svc`.
pub fn put_user(r: &mut Registry, status: UserStatus, rights: Vec<String>, roles: &[&str]) {
    r.apply(Change::PutUser(UserRecord { id: "svc".into(), status, rights, roles: strings(roles) })).unwrap();
}

/// A registry with active user `svc` and one active key of it, expiring at
/// `EXPIRES`; returns the key and its secret.
pub fn world(user_rights: Vec<String>, rules: Vec<String>) -> (Registry, KeyRecord, String) {
    let mut r = Registry::default();
    put_user(&mut r, UserStatus::Active, user_rights, &[]);
    let secret = generate(&Prefix::default()).unwrap();
    let key = KeyRecord {
        id: KeyId::from_bytes([1; 16]),
        seq: 1,
        user_id: "svc".into(),
        description: String::new(),
        state: KeyState::Active,
        expires_at: EXPIRES,
        created_at: T0,
        updated_at: T0,
        last_used_at: None,
        hint: secret.hint,
        digest: secret.digest,
        rules,
    };
    r.apply(Change::PutKey(key.clone())).unwrap();
    (r, key, secret.text)
}
