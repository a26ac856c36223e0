//! The lookup by hint (#14), attacked with real, well-formed secrets that share hints:
//! whatever the order of puts, rotations, deletions of keys and of their users, and
//! rebuilding the registry from its records (a reload or copy), `authenticate` answers
//! exactly what the documented order does — `malformed_key` for a bad checksum whatever
//! the store, then `store_unavailable`, then the key or `unknown_key`.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use keygate_core::internals::{authenticate, generate, record_of, Change, KeyRecord, Prefix, Registry, UserRecord};
use keygate_core::{KeyId, KeyState, Reason, UserStatus};
use proptest::prelude::*;

const T0: i64 = 1_800_000_000_000;
const USERS: [&str; 2] = ["alice", "bob"];

/// Well-formed secrets in groups that share a hint (found by the birthday bound: about
/// 30 groups among 30,000 secrets of 62^4 hints), at most 8 groups.
fn secrets_sharing_hints() -> &'static Vec<String> {
    static SECRETS: OnceLock<Vec<String>> = OnceLock::new();
    SECRETS.get_or_init(|| {
        let mut by_hint: HashMap<[u8; 4], Vec<String>> = HashMap::new();
        for _ in 0..30_000 {
            let issued = generate(&Prefix::default()).expect("a secret");
            by_hint.entry(issued.hint).or_default().push(issued.text);
        }
        let mut groups: Vec<Vec<String>> = by_hint.into_values().filter(|group| group.len() > 1).collect();
        groups.sort();
        groups.truncate(8);
        assert!(groups.len() >= 4, "too few shared hints to test ({})", groups.len());
        groups.into_iter().flatten().collect()
    })
}

/// `secret` with a checksum character that is not part of the hint changed: the same
/// hint (so the same candidates), a checksum that no longer matches.
fn with_bad_checksum(secret: &str) -> Vec<u8> {
    let mut bytes = secret.as_bytes().to_vec();
    let at = bytes.len() - 6;
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    bytes
}

#[derive(Debug, Clone)]
enum Op {
    /// Key `id` (of user `user`) now has secret `secret` (a new key or a rotation).
    Put {
        id: u8,
        user: usize,
        secret: usize,
    },
    DeleteKey(u8),
    /// Deleting a user deletes its keys; the user is then put back, with no keys.
    DeleteUser(usize),
    /// The registry rebuilt from its records, in another order (a reload or copy).
    Reload,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        4 => (0u8..6, 0..USERS.len(), 0usize..64).prop_map(|(id, user, secret)| Op::Put { id, user, secret }),
        2 => (0u8..6).prop_map(Op::DeleteKey),
        1 => (0..USERS.len()).prop_map(Op::DeleteUser),
        1 => Just(Op::Reload),
    ];
    proptest::collection::vec(op, 1..40)
}

fn user(n: usize) -> Change {
    Change::PutUser(UserRecord { id: USERS[n].into(), status: UserStatus::Active, rights: vec!["*:*".into()], roles: vec![] })
}

fn record(id: u8, user: usize, secret: &str) -> KeyRecord {
    let bytes = secret.as_bytes();
    KeyRecord {
        id: KeyId::from_bytes([id; 16]),
        seq: u64::from(id),
        user_id: USERS[user].into(),
        description: String::new(),
        state: KeyState::Active,
        expires_at: T0 + 1,
        created_at: T0,
        updated_at: T0,
        last_used_at: None,
        hint: *bytes.last_chunk::<4>().expect("a secret"),
        digest: keygate_core::internals::digest(bytes),
        rules: vec![],
    }
}

fn fresh_registry() -> Registry {
    let mut registry = Registry::default();
    for n in 0..USERS.len() {
        registry.apply(user(n)).expect("a user");
    }
    registry
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn authenticate_answers_the_documented_order_whatever_the_history(ops in ops()) {
        let secrets = secrets_sharing_hints();
        let prefix = Prefix::default();
        let mut registry = fresh_registry();
        // The model: each key id's user and secret.
        let mut model: BTreeMap<u8, (usize, usize)> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Put { id, user, secret } => {
                    let secret = secret % secrets.len();
                    // A secret is one key's only (digests are unique in a store).
                    if model.iter().any(|(&other, &(_, s))| s == secret && other != id) {
                        continue;
                    }
                    registry.apply(Change::PutKey(record(id, user, &secrets[secret]))).expect("a key");
                    model.insert(id, (user, secret));
                }
                Op::DeleteKey(id) => {
                    registry.apply(Change::DeleteKey(KeyId::from_bytes([id; 16]))).expect("a deletion");
                    model.remove(&id);
                }
                Op::DeleteUser(n) => {
                    registry.apply(Change::DeleteUser(USERS[n].into())).expect("a deletion");
                    registry.apply(user(n)).expect("a user");
                    model.retain(|_, &mut (owner, _)| owner != n);
                }
                Op::Reload => {
                    let mut records: Vec<KeyRecord> = registry.keys().map(record_of).collect();
                    records.reverse();
                    registry = fresh_registry();
                    for record in records {
                        registry.apply(Change::PutKey(record)).expect("a key");
                    }
                }
            }
            prop_assert_eq!(registry.key_count(), model.len());
            for (n, secret) in secrets.iter().enumerate() {
                let owner = model.iter().find(|(_, &(_, s))| s == n).map(|(&id, _)| KeyId::from_bytes([id; 16]));
                let found = authenticate(&registry, &prefix, || true, secret.as_bytes()).map(|key| key.id);
                prop_assert_eq!(found, owner.ok_or(Reason::UnknownKey), "{}", secret);
                let unavailable = authenticate(&registry, &prefix, || false, secret.as_bytes()).map(|key| key.id);
                prop_assert_eq!(unavailable, Err(Reason::StoreUnavailable));
                for available in [true, false] {
                    let bad = authenticate(&registry, &prefix, || available, &with_bad_checksum(secret)).map(|key| key.id);
                    prop_assert_eq!(bad, Err(Reason::MalformedKey));
                }
            }
        }
    }
}
