//! Three stores on one database (three hosts on PostgreSQL, three handles on one SQLite
//! file) make random admin calls (users, roles, keys created, patched, rotated, suspended,
//! revoked, deleted), by turns and at once; at checkpoints every store has applied what a
//! store opened afresh reads, and then every store, and that fresh one (which reads the
//! tables, not the change log), must answer every key's calls alike and list the same
//! state. What a store applies from the change log and what the tables hold may never part.
//! Seeded (`KEYGATE_AGREE_SEED`, `KEYGATE_AGREE_OPS`): a seed repeats the calls made, but
//! the calls made at once interleave as their threads run, so not every outcome.

mod common;

use std::time::{Duration, Instant};

use common::pg::Db;
use common::seeded::{env_number, Rng};
use keygate_core::{Call, ErrorCode, KeyPatch, KeyStore, NewKey, Options, UserInput};

const DAY: i64 = 86_400_000;

const USERS: &[&str] = &["svc", "ops", "batch", "audit", "edge"];
const ROLES: &[&str] = &["reader", "writer", "admin", "dav"];
const RIGHTS: &[&str] = &["session:*", "session:userLogon", "data:get*", "data:*", "*:*", "admin:*", "dav=GET /dav/**", "mail:send?"];
const RULES: &[&str] =
    &["session:*", "session:userLogon", "data:getRecord", "data:*", "ip=10.0.0.0/8", "ip=192.168.1.1", "dav=GET /dav/**", "*:get*"];
const STATES: &[&str] = &["active", "suspended", "revoked"];

/// The calls every key is asked at a checkpoint.
/// A call: service, api and the caller's address.
type Asked = (&'static [u8], &'static [u8], Option<&'static [u8]>);

const CALLS: &[Asked] = &[
    (b"session", b"userLogon", Some(b"10.0.0.1")),
    (b"session", b"userLogoff", None),
    (b"data", b"getRecord", Some(b"192.168.1.1")),
    (b"data", b"putRecord", Some(b"10.1.2.3")),
    (b"admin", b"restart", None),
    (b"mail", b"sendX", Some(b"10.0.0.9")),
];

/// A key some host created: its id and secret (a rotation adds the new secret; the old one
/// stays asked, as callers keep sending it).
struct Issued {
    id: String,
    secret: String,
}

/// One random admin call on `store`; errors a caller can get (unknown user, a role in use, a
/// revoked key reinstated, …) are fine, a store error or `INTERNAL` is not.
fn random_call(rng: &mut Rng, store: &KeyStore, keys: &mut Vec<Issued>, now: i64) {
    let outcome: keygate_core::Result<()> = match rng.below(10) {
        0 => store.put_role(rng.name(ROLES), &rng.some_of(RIGHTS, 3), Some("alice")).map(drop),
        1 | 2 => {
            let status = *rng.pick(&["active", "active", "suspended"]);
            let input = UserInput {
                id: rng.name(USERS).to_string(),
                status: Some(status.into()),
                rights: rng.some_of(RIGHTS, 3),
                roles: rng.some_of(ROLES, 2),
            };
            store.put_user(&input, Some("alice")).map(drop)
        }
        3 => match rng.below(2) {
            0 => store.delete_user(rng.name(USERS), None).map(drop),
            _ => store.delete_role(rng.name(ROLES), None).map(drop),
        },
        4 | 5 => {
            let input = NewKey {
                user_id: rng.name(USERS).to_string(),
                description: format!("key {}", keys.len()),
                expires_at: Some(now + (1 + rng.below(30) as i64) * DAY),
                rules: rng.some_of(RULES, 3),
                state: (rng.below(5) == 0).then(|| "suspended".to_string()),
            };
            store.create_key(&input, Some("alice")).map(|issued| keys.push(Issued { id: issued.key.id, secret: issued.secret }))
        }
        _ if keys.is_empty() => Ok(()),
        6 => {
            let id = keys[rng.below(keys.len())].id.clone();
            store.set_state(&id, rng.name(STATES), Some("bob")).map(drop)
        }
        7 => {
            let id = keys[rng.below(keys.len())].id.clone();
            let patch = KeyPatch {
                rules: (rng.below(2) == 0).then(|| rng.some_of(RULES, 3)),
                expires_at: (rng.below(2) == 0).then(|| Some(now + (1 + rng.below(30) as i64) * DAY)),
                description: (rng.below(3) == 0).then(|| "patched".to_string()),
                expected_updated_at: None,
            };
            store.update_key(&id, &patch, None).map(drop)
        }
        8 => {
            let id = keys[rng.below(keys.len())].id.clone();
            store
                .rotate_key(&id, *rng.pick(&[0.0, 60.0]), None)
                .map(|issued| keys.push(Issued { id: issued.key.id, secret: issued.secret }))
        }
        _ => {
            let id = keys[rng.below(keys.len())].id.clone();
            store.delete_key(&id, None).map(drop)
        }
    };
    if let Err(e) = outcome {
        let caller_error = !matches!(
            e.code,
            ErrorCode::Internal | ErrorCode::StoreIo | ErrorCode::StoreCorrupt | ErrorCode::StoreUnavailable | ErrorCode::StoreLocked
        );
        assert!(caller_error, "an admin call failed as the store's fault: {:?} {}", e.code, e.message);
    }
}

/// Every key's answers to every call, and the listed state, as `store` gives them.
fn answers(store: &KeyStore, keys: &[Issued]) -> String {
    let mut out = String::new();
    for key in keys {
        for &(service, api, ip) in CALLS {
            let reason = store.check(Call { secret: key.secret.as_bytes(), service, api, ip }).reason;
            out.push_str(&format!("{} {} {}: {reason:?}\n", key.id, String::from_utf8_lossy(service), String::from_utf8_lossy(api)));
        }
    }
    for key in store.list_keys(&Default::default()).unwrap() {
        out.push_str(&format!(
            "key {} {} {} {} {:?} {} {}\n",
            key.id, key.user_id, key.state, key.expires_at, key.rules, key.description, key.updated_at
        ));
    }
    for user in store.list_users().unwrap() {
        out.push_str(&format!("user {user:?}\n"));
    }
    for role in store.list_roles().unwrap() {
        out.push_str(&format!("role {role:?}\n"));
    }
    out
}

/// Waits until every host has applied `version` (what a fresh load read).
fn settle(version: i64, hosts: &[KeyStore]) {
    let start = Instant::now();
    while hosts.iter().any(|h| h.health().applied_version < version) {
        assert!(start.elapsed() < Duration::from_secs(10), "hosts never reached version {version}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The first line where `a` and `b` differ.
fn first_difference(a: &str, b: &str) -> String {
    a.lines().zip(b.lines()).find(|(x, y)| x != y).map_or_else(|| "(one is longer)".into(), |(x, y)| format!("{x}\n  vs\n{y}"))
}

/// The stores' options: no purge (a key expires a day after creation at the earliest).
fn options() -> Options {
    Options { purge_expired_after_days: Some(1e6), ..Default::default() }
}

/// Runs the random calls on three stores `open` opens, checking them at checkpoints
/// against each other and a fourth opened afresh.
fn random_calls_agree(open: impl Fn() -> KeyStore) {
    // The clock is the system's: a fixed one would differ from what the database is told.
    let now = keygate_core::internals::system_now();
    let hosts: Vec<KeyStore> = (0..3).map(|_| open()).collect();
    let seed = env_number("KEYGATE_AGREE_SEED", 0x6b67_6167_7265);
    let ops = env_number("KEYGATE_AGREE_OPS", 800);
    let mut rng = Rng(seed);
    let mut keys: Vec<Issued> = Vec::new();
    let mut checkpoints = 0;
    let mut done = 0;
    while done < ops {
        let what = format!("seed {seed:#x}, after {done} calls");
        if rng.below(4) == 0 {
            // At once: each host makes a few calls on a thread of its own.
            let seeds: Vec<u64> = hosts.iter().map(|_| rng.next()).collect();
            let made: Vec<Vec<Issued>> = std::thread::scope(|scope| {
                let runs: Vec<_> = hosts
                    .iter()
                    .zip(seeds)
                    .map(|(host, seed)| {
                        let known: Vec<Issued> = keys.iter().map(|k| Issued { id: k.id.clone(), secret: k.secret.clone() }).collect();
                        scope.spawn(move || {
                            let mut rng = Rng(seed);
                            let mut mine = known;
                            let before = mine.len();
                            for _ in 0..4 {
                                random_call(&mut rng, host, &mut mine, now);
                            }
                            mine.split_off(before)
                        })
                    })
                    .collect();
                runs.into_iter().map(|run| run.join().unwrap()).collect()
            });
            keys.extend(made.into_iter().flatten());
            done += 12;
        } else {
            let host = &hosts[rng.below(hosts.len())];
            random_call(&mut rng, host, &mut keys, now);
            done += 1;
        }
        if rng.below(10) == 0 || done >= ops {
            let fresh = open();
            settle(fresh.health().applied_version, &hosts);
            let first = answers(&hosts[0], &keys);
            for (i, host) in hosts.iter().enumerate().skip(1) {
                let other = answers(host, &keys);
                assert!(first == other, "{what}: host {i} differs from host 0:\n{}", first_difference(&first, &other));
            }
            let loaded = answers(&fresh, &keys);
            fresh.close().unwrap();
            assert!(first == loaded, "{what}: the hosts differ from a fresh load:\n{}", first_difference(&first, &loaded));
            checkpoints += 1;
        }
    }
    for host in &hosts {
        host.close().unwrap();
    }
    eprintln!("{done} admin calls, {} keys, {checkpoints} checkpoints", keys.len());
    assert!(checkpoints >= 5 && keys.len() >= 20, "too little exercised: {checkpoints} checkpoints, {} keys", keys.len());
}

#[test]
fn random_admin_calls_from_three_postgres_hosts_leave_each_answering_as_a_fresh_load_would() {
    let Some(db) = Db::new() else { return };
    random_calls_agree(|| KeyStore::open(&db.url(), options()).unwrap());
}

#[test]
fn random_admin_calls_through_three_handles_on_one_sqlite_file_leave_each_answering_as_a_fresh_load_would() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let path = path.to_str().unwrap().to_string();
    random_calls_agree(|| KeyStore::open(&path, options()).unwrap());
}
