//! A running process on a shared PostgreSQL store must not keep answering from a state
//! the database no longer holds once it had a chance to look: after a failover that lost
//! commits, or a restore of a backup of the same store (same epoch, same database), a
//! key the database says is revoked must not stay allowed.
//!
//! Each test makes its own database under a random name and drops it. Without a server
//! answering at 127.0.0.1:5432, each test says so and passes.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate_core::{Call, KeyStore, Options, Reason};

const SERVER: &str = "127.0.0.1:5432";

fn server_answers() -> bool {
    let addr: SocketAddr = SERVER.parse().unwrap();
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

fn psql_command(database: &str, sql: &str) -> Command {
    let mut command = Command::new("psql");
    command.args(["-h", "127.0.0.1", "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql]);
    command
}

fn psql(database: &str, sql: &str) -> String {
    let out = psql_command(database, sql).output().expect("psql runs");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A database of its own, dropped (with whatever is connected to it) at the end.
struct Db {
    name: String,
}

impl Db {
    fn new() -> Option<Db> {
        if !server_answers() {
            eprintln!("skipped: no PostgreSQL answers at {SERVER}");
            return None;
        }
        let mut bytes = [0u8; 6];
        getrandom::fill(&mut bytes).unwrap();
        let name = format!("keygate_test_{}", hex::encode(bytes));
        psql("postgres", &format!("CREATE DATABASE {name}"));
        Some(Db { name })
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}?sslmode=disable", self.name)
    }

    fn sql(&self, sql: &str) -> String {
        psql(&self.name, sql)
    }

    /// A backup of keygate's tables (as pg_dump would take it), kept in schema `name`.
    fn back_up(&self, name: &str) {
        let copies: String = TABLES.iter().map(|t| format!("CREATE TABLE {name}.{t} AS SELECT * FROM public.{t};")).collect();
        self.sql(&format!("BEGIN ISOLATION LEVEL REPEATABLE READ; CREATE SCHEMA {name}; {copies} COMMIT"));
    }

    /// The backup in schema `name` restored over keygate's tables in one transaction, as an
    /// operator would with psql (a data-only restore): every table replaced, nothing else touched.
    fn restore(&self, name: &str) {
        let refill: String = TABLES.iter().map(|t| format!("INSERT INTO public.{t} SELECT * FROM {name}.{t};")).collect();
        self.sql(&format!("BEGIN; TRUNCATE {}; {refill} COMMIT", TABLES.map(|t| format!("public.{t}")).join(", ")));
    }

    /// Where the change log stands: version and mark.
    fn position(&self) -> String {
        self.sql("SELECT version || ' ' || mark FROM keygate_meta")
    }
}

const TABLES: [&str; 6] = ["keygate_meta", "keygate_roles", "keygate_users", "keygate_keys", "keygate_changes", "keygate_audit"];

impl Drop for Db {
    fn drop(&mut self) {
        let _ = psql_command("postgres", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).output();
    }
}

/// A TCP proxy in front of the server that can be told to stop forwarding (leaving
/// connections open: half-open, as a dead network or a primary gone away looks).
struct Proxy {
    port: u16,
    forwarding: Arc<AtomicBool>,
}

impl Proxy {
    fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let forwarding = Arc::new(AtomicBool::new(true));
        let flag = forwarding.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if !flag.load(Ordering::SeqCst) {
                    std::mem::forget(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(SERVER) else { continue };
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                    let flag = flag.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            let Ok(n) = from.read(&mut buf) else { return };
                            if n == 0 {
                                return;
                            }
                            if !flag.load(Ordering::SeqCst) {
                                continue;
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Proxy { port, forwarding }
    }

    fn url(&self, db: &Db) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}?sslmode=disable", self.port, db.name)
    }
}

fn open(url: &str) -> KeyStore {
    KeyStore::open(url, Options::default()).unwrap()
}

fn check(store: &KeyStore, secret: &str) -> Reason {
    store.check(Call { secret: secret.as_bytes(), service: b"session", api: b"userLogon", ip: None }).reason
}

/// What a process that opens the database now answers.
fn fresh(db: &Db, secret: &str) -> Reason {
    let store = open(&db.url());
    let reason = check(&store, secret);
    store.close().unwrap();
    reason
}

/// Waits (up to `within`) until `store` answers `want` for `secret`; panics naming what it answered.
fn wait_for_answer(what: &str, store: &KeyStore, secret: &str, want: Reason, within: Duration) {
    let start = Instant::now();
    loop {
        let got = check(store, secret);
        if got == want {
            return;
        }
        assert!(start.elapsed() < within, "{what}: still answers {got:?} after {within:?}, where a fresh open answers {want:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Two stores to copy from, holding the same key (same secret): active in the first,
/// revoked in the second. Returns them and the secret.
fn sources() -> (KeyStore, KeyStore, String) {
    let active = KeyStore::in_memory(Options::default()).unwrap();
    let (id, secret) = common::seed_with(&active, &["session:*"]);
    let revoked = KeyStore::in_memory(Options::default()).unwrap();
    KeyStore::copy(&active, &revoked).unwrap();
    revoked.set_state(&id, "revoked", Some("alice")).unwrap();
    assert_eq!(check(&active, &secret), Reason::Allowed);
    assert_eq!(check(&revoked, &secret), Reason::Revoked);
    (active, revoked, secret)
}

/// A copy into a new store (`KeyStore::copy`, `keygate copy`) is acknowledged and followed,
/// then lost in a failover (asynchronous replication: the promoted replica is as before it,
/// same epoch); the operator finds the store empty and copies again, from a source that
/// meanwhile revoked the key. A process that applied the lost copy, cut off meanwhile,
/// comes back to the same version: only the mark could tell the histories apart, and the
/// README promises that it does ("one that applied a lost commit sees another history and
/// reloads the whole state"). A copy is written without a change row, and its mark was the
/// same for any copy into the same empty store: the process kept the lost copy's state.
#[test]
fn a_lost_copy_copied_again_from_another_source_is_noticed() {
    let Some(db) = Db::new() else { return };
    let (active, revoked, secret) = sources();
    let first = open(&db.url());
    let proxy = Proxy::start();
    let follower = KeyStore::open(&proxy.url(&db), Options { fail_closed_after_ms: Some(30_000.0), ..Default::default() }).unwrap();
    let before = db.sql("SELECT version || ',' || audit_seq || ',''' || audit_hash || ''',''' || mark || '''' FROM keygate_meta");

    KeyStore::copy(&active, &first).unwrap();
    wait_for_answer("the follower, after the copy", &follower, &secret, Reason::Allowed, Duration::from_secs(5));
    let lost_position = db.position();
    first.close().unwrap();

    proxy.forwarding.store(false, Ordering::SeqCst);
    // The promoted replica: as before the copy, same epoch; no notification.
    let mut parts = before.splitn(4, ',');
    let (version, seq, hash, mark) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    db.sql(&format!(
        "BEGIN; DELETE FROM keygate_changes; DELETE FROM keygate_audit; DELETE FROM keygate_keys; DELETE FROM keygate_users;
         DELETE FROM keygate_roles;
         UPDATE keygate_meta SET version = {version}, audit_seq = {seq}, audit_hash = {hash}, mark = {mark}; COMMIT"
    ));
    // Copied again, on the new primary, from the source as it is now.
    let other = open(&db.url());
    KeyStore::copy(&revoked, &other).unwrap();
    assert_eq!(check(&other, &secret), Reason::Revoked);
    other.close().unwrap();
    let taken_position = db.position();
    proxy.forwarding.store(true, Ordering::SeqCst);

    let want = fresh(&db, &secret);
    assert_eq!(want, Reason::Revoked);
    // The heartbeat timed out (about a second), the follower reconnects with backoff (up to 2 s)
    // and catches up: it has had every chance to look well within 10 s.
    wait_for_answer(
        &format!("the follower, the lost copy at {lost_position:?} and the new one at {taken_position:?}"),
        &follower,
        &secret,
        want,
        Duration::from_secs(10),
    );
    follower.close().unwrap();
}

/// The same without a failover: an operator restores, in place and in one transaction, a
/// backup of the same store taken when it held another copy (a migration redone: copy,
/// back up, restore the empty store's backup, copy again from an older source). Same
/// database, same epoch, same version; the process that follows the store sees the
/// database's position unchanged and keeps the key the restored backup has revoked.
#[test]
fn a_restored_backup_holding_another_copy_at_the_same_version_is_noticed() {
    let Some(db) = Db::new() else { return };
    let (active, revoked, secret) = sources();
    let host = open(&db.url());
    db.back_up("empty");
    KeyStore::copy(&revoked, &host).unwrap();
    db.back_up("with_revoked");
    host.close().unwrap();

    db.restore("empty");
    let host = open(&db.url());
    KeyStore::copy(&active, &host).unwrap();
    let follower = open(&db.url());
    assert_eq!(check(&follower, &secret), Reason::Allowed);
    let followed = db.position();

    db.restore("with_revoked");
    let restored = db.position();
    let want = fresh(&db, &secret);
    assert_eq!(want, Reason::Revoked);
    wait_for_answer(
        &format!("the follower, at {followed:?} before the restore, the restored backup at {restored:?}"),
        &follower,
        &secret,
        want,
        Duration::from_secs(3),
    );
    wait_for_answer("the copying host", &host, &secret, want, Duration::from_secs(3));
    follower.close().unwrap();
    host.close().unwrap();
}

/// The control: a backup of the same store restored in place after ordinary admin calls
/// (change rows, so marks that differ) at the same version is noticed by its mark.
#[test]
fn a_restored_backup_with_other_changes_at_the_same_version_is_noticed() {
    let Some(db) = Db::new() else { return };
    let host = open(&db.url());
    let (id, secret) = common::seed_with(&host, &["session:*"]);
    db.back_up("seeded");
    host.set_state(&id, "revoked", Some("alice")).unwrap();
    db.back_up("with_revoked");
    db.restore("seeded");
    // The same version as the backup with the key revoked, by another change.
    let other = open(&db.url());
    other.set_state(&id, "suspended", Some("bob")).unwrap();
    let follower = open(&db.url());
    assert_eq!(check(&follower, &secret), Reason::Suspended);
    other.set_state(&id, "active", Some("bob")).unwrap();
    wait_for_answer("the follower, before the restore", &follower, &secret, Reason::Allowed, Duration::from_secs(3));
    // One version behind the follower: the same version after one more change in the backup.
    db.restore("with_revoked");
    host.put_role("r", &["session:*".into()], Some("alice")).unwrap();
    let want = fresh(&db, &secret);
    assert_eq!(want, Reason::Revoked);
    wait_for_answer("the follower", &follower, &secret, want, Duration::from_secs(3));
    for store in [host, other, follower] {
        store.close().unwrap();
    }
}
