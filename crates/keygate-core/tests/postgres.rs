//! The PostgreSQL store against the machine's server (127.0.0.1:5432, user
//! postgres, trust; see common/pg.rs for the variables that change it): each test makes its own database under a random name and
//! drops it. Without a server answering there, each test says so and passes.

mod common;

use common::pg::{host, mark_after, port, psql, psql_command, psql_quietly, server, user, Db};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate_core::{Call, ErrorCode, KeyStore, NewKey, Options, Reason, UserInput};

const DAY: i64 = 86_400_000;

impl Db {
    /// Where the change log stands: version and mark.
    fn position(&self) -> String {
        self.sql("SELECT version || ' ' || mark FROM keygate_meta")
    }

    /// A psql session of its own running `sql` (a lock taken, then a long sleep), returned
    /// once `taken` answers `1`; the session ends, and its locks with it, when the
    /// [`Holder`] is dropped.
    fn hold(&self, sql: &str, taken: &str) -> Holder {
        let session = psql_command(&self.name, sql).env("PGAPPNAME", HOLDER_APP).stdout(std::process::Stdio::null()).spawn().unwrap();
        let holder = Holder { session, db: self.name.clone() };
        let start = Instant::now();
        while self.sql(taken) != "1" {
            assert!(start.elapsed() < Duration::from_secs(10), "the holder never took the lock");
            std::thread::sleep(Duration::from_millis(20));
        }
        holder
    }

    /// [`Db::hold`] on the meta row: every admin write waits for it.
    fn hold_meta_row(&self) -> Holder {
        self.hold_rows_of("keygate_meta")
    }

    /// [`Db::hold`] on the whole of `table` (ACCESS EXCLUSIVE: not even read; as a VACUUM FULL
    /// or an ALTER TABLE holds it).
    fn hold_table(&self, table: &str) -> Holder {
        self.hold(
            &format!("BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(20)"),
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%LOCK TABLE {table} %' AND wait_event = 'PgSleep' AND datname = current_database()"
            ),
        )
    }

    /// [`Db::hold`] on every row of `table`.
    fn hold_rows_of(&self, table: &str) -> Holder {
        self.hold(
            &format!("BEGIN; SELECT 1 FROM {table} FOR UPDATE; SELECT pg_sleep(20)"),
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%FROM {table} FOR UPDATE%' AND wait_event = 'PgSleep' AND datname = current_database()"
            ),
        )
    }
}

/// `application_name` of [`Db::hold`]'s sessions.
const HOLDER_APP: &str = "keygate_test_holder";

/// A session holding a lock (see [`Db::hold`]), ended when dropped: its psql killed,
/// and its server backend terminated (busy in a statement, it would not notice its
/// client gone and would hold the lock until the statement ends).
struct Holder {
    session: std::process::Child,
    db: String,
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.session.kill();
        let _ = self.session.wait();
        psql_quietly(
            "postgres",
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND application_name = '{HOLDER_APP}'",
                self.db
            ),
        );
    }
}

fn open(url: &str) -> keygate_core::Result<KeyStore> {
    KeyStore::open(url, Options::default())
}

/// Options failing closed after `fail_closed_after_ms`, each statement and connect attempt
/// bounded by `timeout_ms`.
fn bounded(fail_closed_after_ms: f64, timeout_ms: f64) -> Options {
    Options {
        fail_closed_after_ms: Some(fail_closed_after_ms),
        statement_timeout_ms: Some(timeout_ms),
        connect_timeout_ms: Some(timeout_ms),
        ..Default::default()
    }
}

/// User `svc` and one key of it (see `common::seed_with`).
fn seed(store: &KeyStore) -> (String, String) {
    common::seed_with(store, &["session:*"])
}

fn reason(store: &KeyStore, secret: &str) -> Reason {
    store.check(Call { secret: secret.as_bytes(), service: b"session", api: b"userLogon", ip: None }).reason
}

/// Waits (up to 10 s) until `store` answers `want` for `secret`.
fn wait_for(store: &KeyStore, secret: &str, want: Reason) -> Duration {
    let start = Instant::now();
    loop {
        let got = reason(store, secret);
        if got == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still {got:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_new_database_gets_the_schema_and_admin_calls_are_committed_before_they_return() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    let (id, secret) = seed(&store);
    assert_eq!(reason(&store, &secret), Reason::Allowed);
    // Committed: another session sees it at once.
    assert_eq!(db.sql("SELECT state FROM keygate_keys"), "active");
    assert_eq!(db.sql("SELECT version FROM keygate_meta"), "2");
    assert_eq!(db.sql("SELECT count(*) FROM keygate_changes"), "2");
    store.set_state(&id, "suspended", Some("bob")).unwrap();
    assert_eq!(db.sql("SELECT state FROM keygate_keys"), "suspended");
    assert_eq!(reason(&store, &secret), Reason::Suspended);
    let report = store.verify_audit().unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(store.audit(&Default::default()).unwrap().len(), 3);
    let health = store.health();
    assert!(health.connected);
    assert_eq!(health.applied_version, 3);
    store.close().unwrap();

    // Reopened: the same state, the schema checked not recreated.
    let reopened = open(&db.url()).unwrap();
    assert_eq!(reason(&reopened, &secret), Reason::Suspended);
    assert_eq!(reopened.get_key(&id).unwrap().unwrap().state, "suspended");
    assert!(reopened.verify_audit().unwrap().ok);
    reopened.close().unwrap();
}

#[test]
fn secrets_are_never_stored_only_their_digest() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    let (_, secret) = seed(&store);
    let body = secret.split_once('_').unwrap().1;
    let dump = db.sql(
        "SELECT string_agg(t::text, ' ') FROM (SELECT row_to_json(k)::text AS t FROM keygate_keys k
         UNION ALL SELECT changes FROM keygate_changes UNION ALL SELECT row_to_json(a)::text FROM keygate_audit a) x",
    );
    assert!(!dump.is_empty());
    assert!(!dump.contains(body), "the secret is not stored");
    store.close().unwrap();
}

#[test]
fn two_stores_on_one_database_see_each_others_changes_within_milliseconds() {
    let Some(db) = Db::new() else { return };
    let writer = open(&db.url()).unwrap();
    let reader = open(&db.url()).unwrap();
    let (id, secret) = seed(&writer);
    wait_for(&reader, &secret, Reason::Allowed);
    writer.set_state(&id, "revoked", None).unwrap();
    let took = wait_for(&reader, &secret, Reason::Revoked);
    eprintln!("revocation visible on the other store after {took:?}");
    // And the other way round: the reader writes, the writer catches up at its next write.
    reader.put_role("ops", &["api:*".into()], None).unwrap();
    let start = Instant::now();
    while writer.get_role("ops").unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(writer.health().applied_version, reader.health().applied_version);
    assert!(writer.verify_audit().unwrap().ok);
    writer.close().unwrap();
    reader.close().unwrap();
}

#[test]
fn health_reports_a_version_only_once_checks_answer_from_it() {
    let Some(db) = Db::new() else { return };
    common::health_follows_what_checks_see(&open(&db.url()).unwrap(), &open(&db.url()).unwrap());
}

/// How many of the checks made every 10 ms from now until `until` (after `since`) allow `secret`, of how many.
fn allowed_between(store: &KeyStore, secret: &str, since: Instant, until: Duration) -> (usize, usize) {
    let (mut allowed, mut checks) = (0, 0);
    while since.elapsed() < until {
        checks += 1;
        if reason(store, secret) == Reason::Allowed {
            allowed += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (allowed, checks)
}

#[test]
fn health_never_waits_for_a_reload_in_progress() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    let (_, secret) = seed(&store);
    assert_eq!(reason(&store, &secret), Reason::Allowed);
    let lock = db.hold_table("keygate_keys");
    // A restore elsewhere: the heartbeat sees another epoch, and the reload waits for the lock.
    db.sql("UPDATE keygate_meta SET epoch = 'restored'");
    std::thread::sleep(Duration::from_millis(600));
    let slowest = common::slowest_health_over(&store, Duration::from_millis(2500));
    drop(lock);
    store.close().unwrap();
    assert!(slowest < Duration::from_millis(100), "health() took {slowest:?}: it waited for a reload's I/O");
}

/// A restore elsewhere (another epoch, the key revoked) while the tables a reload reads are
/// locked: the store knows it is stale from the first look. It used to count that look as
/// contact and each failed reload as a connection lost within failClosedAfterMs, so it never
/// failed closed and kept allowing the key for as long as the lock was held.
#[test]
fn a_store_that_knows_it_is_stale_fails_closed_while_its_reload_keeps_failing() {
    let Some(db) = Db::new() else { return };
    let store = KeyStore::open(&db.url(), bounded(1000.0, 300.0)).unwrap();
    let (_, secret) = seed(&store);
    assert_eq!(reason(&store, &secret), Reason::Allowed);
    let lock = db.hold_table("keygate_users");
    db.sql("BEGIN; UPDATE keygate_keys SET state = 'revoked'; UPDATE keygate_meta SET epoch = 'restored'; COMMIT");
    let restored = Instant::now();
    // The heartbeat (every 250 ms) notices, and the reload's first statement times out.
    std::thread::sleep(Duration::from_millis(1500));
    let (allowed, checks) = allowed_between(&store, &secret, restored, Duration::from_secs(4));
    let health = store.health();
    drop(lock);
    wait_for(&store, &secret, Reason::Revoked);
    store.close().unwrap();
    assert_eq!(allowed, 0, "{allowed} of {checks} checks allowed a key the restore revoked, 1.5-4 s after it; health {health:?}");
    assert!(!health.connected, "{health:?}");
}

/// The same restore, with a statement timeout longer than the test looks: the store knows it
/// is stale from its first look after the restore, and fails closed then, not once its reload
/// has failed. It used to answer from what it held while the reload waited (two attempts, each
/// up to `statementTimeoutMs`, 10 s with the defaults), allowing the key the restore revoked.
#[test]
fn a_store_that_finds_it_is_stale_fails_closed_before_its_reload_not_after() {
    let Some(db) = Db::new() else { return };
    let store = KeyStore::open(&db.url(), bounded(20_000.0, 3000.0)).unwrap();
    let (_, secret) = seed(&store);
    assert_eq!(reason(&store, &secret), Reason::Allowed);
    let lock = db.hold_table("keygate_users");
    db.sql("BEGIN; UPDATE keygate_keys SET state = 'revoked'; UPDATE keygate_meta SET epoch = 'restored'; COMMIT");
    let restored = Instant::now();
    // The heartbeat (every 250 ms) notices; the reload's first statement waits up to 3 s.
    std::thread::sleep(Duration::from_millis(1000));
    let (allowed, checks) = allowed_between(&store, &secret, restored, Duration::from_millis(2500));
    let health = store.health();
    drop(lock);
    wait_for(&store, &secret, Reason::Revoked);
    store.close().unwrap();
    assert_eq!(allowed, 0, "{allowed} of {checks} checks allowed a key the restore revoked, 1-2.5 s after it; health {health:?}");
    assert!(!health.connected, "{health:?}");
}

/// Change N, written by another process: a key of a user this process does not know (it
/// cannot be applied), then the revocation of a key. The store applies part of it, and its
/// reload cannot read the users table. It used to take the failed reload for a look that
/// could not reach the database: health reported N, connected, while checks allowed the key
/// N revokes.
#[test]
fn a_change_that_cannot_be_applied_or_reloaded_fails_closed_and_health_stays_before_it() {
    let Some(db) = Db::new() else { return };
    let writer = open(&db.url()).unwrap();
    let (id, secret) = seed(&writer);
    writer.close().unwrap();
    let reader = KeyStore::open(&db.url(), bounded(5000.0, 1000.0)).unwrap();
    wait_for(&reader, &secret, Reason::Allowed);
    let before = reader.health().applied_version;
    assert_eq!(before.to_string(), db.sql("SELECT version FROM keygate_meta"));
    let created: serde_json::Value = serde_json::from_str(
        &db.sql(&format!("SELECT changes FROM keygate_changes WHERE changes LIKE '%{id}%' ORDER BY version DESC LIMIT 1")),
    )
    .unwrap();
    let record = created.as_array().unwrap()[0].clone();
    let mut ghost = record.clone();
    ghost["userId"] = "ghost".into();
    let mut revoked = record;
    revoked["state"] = "revoked".into();
    let json = serde_json::Value::Array(vec![ghost, revoked]).to_string();
    let version = before + 1;
    let mark = mark_after(&db.sql("SELECT mark FROM keygate_meta"), version, &json);
    let lock = db.hold_table("keygate_users");
    db.sql(&format!(
        "BEGIN; UPDATE keygate_keys SET state = 'revoked';
         INSERT INTO keygate_changes (version, token, at, changes, mark) VALUES ({version}, 'other', 0, '{}', '{mark}');
         UPDATE keygate_meta SET version = {version}, mark = '{mark}'; COMMIT",
        json.replace('\'', "''")
    ));
    let written = Instant::now();
    let mut samples = Vec::new();
    while written.elapsed() < Duration::from_secs(5) {
        samples.push((written.elapsed(), reason(&reader, &secret), reader.health()));
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(lock);
    wait_for(&reader, &secret, Reason::Revoked);
    assert_eq!(reader.health().applied_version, version);
    reader.close().unwrap();
    let reported_early = samples.iter().find(|(_, seen, health)| *seen == Reason::Allowed && health.applied_version >= version);
    assert!(reported_early.is_none(), "health reported version {version} while checks allowed the key it revokes: {reported_early:?}");
    // Noticed within a heartbeat, the batch fails, the reload waits out its statement timeout (1 s).
    let late =
        samples.iter().find(|(at, seen, health)| *at >= Duration::from_secs(3) && (*seen != Reason::StoreUnavailable || health.connected));
    assert!(late.is_none(), "not failed closed 3 s after the change: {late:?}");
}

#[test]
fn a_changed_epoch_or_pruned_history_reloads_everything() {
    let Some(db) = Db::new() else { return };
    let a = open(&db.url()).unwrap();
    let b = open(&db.url()).unwrap();
    let (id, secret) = seed(&a);
    wait_for(&b, &secret, Reason::Allowed);

    // A restore elsewhere: the epoch changes (and the rows with it).
    b.close().unwrap();
    a.set_state(&id, "suspended", None).unwrap();
    let b = open(&db.url()).unwrap();
    db.sql("UPDATE keygate_keys SET state = 'active'; UPDATE keygate_meta SET epoch = 'restored'");
    wait_for(&b, &secret, Reason::Allowed);
    wait_for(&a, &secret, Reason::Allowed);

    // History pruned past a cursor: the change rows are gone, the state is not.
    db.sql("UPDATE keygate_keys SET state = 'revoked'; UPDATE keygate_meta SET version = version + 5; DELETE FROM keygate_changes");
    wait_for(&a, &secret, Reason::Revoked);
    wait_for(&b, &secret, Reason::Revoked);
    a.close().unwrap();
    b.close().unwrap();
}

/// A key row numbered `i64::MAX`, written by other means: it used to load, and the next key
/// created took a number no store holds (written as a negative one), a row that its own
/// writer's next open, and every other host, then refused.
#[test]
fn a_key_sequence_number_with_no_room_for_the_next_key_s_is_store_corrupt_at_open() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    seed(&store);
    store.close().unwrap();
    db.sql("UPDATE keygate_keys SET seq = 9223372036854775807");
    let error = open(&db.url()).err().unwrap_or_else(|| panic!("the store opened"));
    assert_eq!(error.code, ErrorCode::StoreCorrupt, "{}", error.message);
    assert!(error.message.contains("sequence number"), "{}", error.message);
    db.sql("UPDATE keygate_keys SET seq = 1");
    open(&db.url()).unwrap().close().unwrap();
}

/// The limit recorded at creation, made unreadable in the database: it used to be read as no
/// limit (the default, 730 days, when the column no longer held a number) or as the caller's
/// mistake (`INVALID_ARGUMENT` for a `maxLifetimeDays` the caller never gave).
#[test]
fn a_recorded_max_lifetime_it_cannot_use_is_store_corrupt_at_open() {
    let Some(db) = Db::new() else { return };
    let store = KeyStore::open(&db.url(), Options { max_lifetime_days: Some(30.0), ..Default::default() }).unwrap();
    seed(&store);
    store.close().unwrap();
    for (damage, named) in [
        ("UPDATE keygate_meta SET max_lifetime_days = 'NaN'", "maxLifetimeDays"),
        ("UPDATE keygate_meta SET max_lifetime_days = -1", "maxLifetimeDays"),
        ("UPDATE keygate_meta SET max_lifetime_days = 1.5", "maxLifetimeDays"),
        (
            "ALTER TABLE keygate_meta ALTER COLUMN max_lifetime_days TYPE text; UPDATE keygate_meta SET max_lifetime_days = '30 days'",
            "column keygate_meta.max_lifetime_days is of type text",
        ),
    ] {
        db.sql(damage);
        let error = open(&db.url()).err().unwrap_or_else(|| panic!("{damage}: the store opened"));
        assert_eq!(error.code, ErrorCode::StoreCorrupt, "{damage}: {}", error.message);
        assert!(error.message.contains(named), "{damage}: {}", error.message);
    }
    db.sql("ALTER TABLE keygate_meta ALTER COLUMN max_lifetime_days TYPE double precision USING 30");
    assert_eq!(open(&db.url()).unwrap().max_lifetime_days(), 30, "repaired");
}

/// A meta row changed by hand: a schema version keygate never writes (0 or below) used to open as
/// the current one, and a version at i64::MAX made the next write's version wrap to one behind
/// every host's (an overflow panic in a build that checks).
#[test]
fn a_meta_row_keygate_never_writes_is_refused_and_nothing_is_written() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    seed(&store);
    store.close().unwrap();
    for damage in ["UPDATE keygate_meta SET schema_version = 0", "UPDATE keygate_meta SET schema_version = -1"] {
        db.sql(damage);
        let error = open(&db.url()).err().unwrap_or_else(|| panic!("{damage}: the store opened"));
        assert_eq!(error.code, ErrorCode::StoreCorrupt, "{damage}: {}", error.message);
        assert!(error.message.contains("schema version"), "{damage}: {}", error.message);
    }
    db.sql("UPDATE keygate_meta SET schema_version = 2");
    db.sql("UPDATE keygate_meta SET version = 9223372036854775807");
    let store = open(&db.url()).unwrap();
    let error = store.put_user(&UserInput { id: "late".into(), ..Default::default() }, None).unwrap_err();
    assert_eq!(error.code, ErrorCode::StoreCorrupt, "{}", error.message);
    assert!(error.message.contains("leaves no room"), "{}", error.message);
    assert!(store.get_user("late").unwrap().is_none(), "nothing applied");
    store.close().unwrap();
    assert_eq!(db.sql("SELECT count(*) FROM keygate_users WHERE id = 'late'").trim(), "0", "nothing written");
    assert_eq!(db.sql("SELECT version FROM keygate_meta").trim(), "9223372036854775807");
}

/// Every table's rows, as one digest: whether anything changed.
const FINGERPRINT: &str = "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
     SELECT 'meta ' || row_to_json(t)::text AS x FROM keygate_meta t UNION ALL SELECT 'audit ' || row_to_json(t)::text FROM keygate_audit t
     UNION ALL SELECT 'keys ' || row_to_json(t)::text FROM keygate_keys t UNION ALL SELECT 'users ' || row_to_json(t)::text FROM keygate_users t
     UNION ALL SELECT 'roles ' || row_to_json(t)::text FROM keygate_roles t UNION ALL SELECT 'changes ' || row_to_json(t)::text FROM keygate_changes t) s";

/// Audit rows written behind keygate's back, as the SQLite store takes them. An entry past the
/// recorded head (added by hand, or by a restore of tables from different moments), or a head
/// no write can extend: refused at open, nothing in the database changed (it used to open, and
/// every admin write then failed as a duplicate key, `STORE_IO`); added by another host while
/// the store is open: its writes are refused with `STORE_CORRUPT`, nothing written. A row
/// numbered below 1 or at a time no Date holds (listed as 18446744073709552000, or an Invalid
/// Date): `STORE_CORRUPT` to list, and verification fails naming it.
#[test]
fn audit_rows_written_behind_the_store_s_back_are_refused_as_the_sqlite_store_refuses_them() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    store.put_role("ops", &["api:*".into()], None).unwrap();
    let (_, secret) = seed(&store);
    store.close().unwrap();
    let past_the_head =
        "INSERT INTO keygate_audit SELECT seq + 1, at, actor, action, key_id, user_id, detail, hash FROM keygate_audit WHERE seq = 3";
    for (damage, named, undo) in [
        (past_the_head, "its audit trail has entries (up to 4) beyond its recorded head (3)", "DELETE FROM keygate_audit WHERE seq = 4"),
        (
            "UPDATE keygate_meta SET audit_seq = 0",
            "its audit trail has entries (up to 3) beyond its recorded head (0)",
            "UPDATE keygate_meta SET audit_seq = 3",
        ),
        (
            "UPDATE keygate_meta SET audit_seq = -1",
            "its recorded audit head is not a valid sequence number",
            "UPDATE keygate_meta SET audit_seq = 3",
        ),
        (
            "UPDATE keygate_meta SET audit_seq = 9223372036854775806",
            "its recorded audit head is not a valid sequence number",
            "UPDATE keygate_meta SET audit_seq = 3",
        ),
        (
            "UPDATE keygate_meta SET audit_hash = 'zz', audit_seq = 3",
            "its recorded audit hash is not 64 hex digits",
            "UPDATE keygate_meta SET audit_hash = encode((SELECT hash FROM keygate_audit WHERE seq = 3), 'hex')",
        ),
    ] {
        db.sql(damage);
        let before = db.sql(FINGERPRINT);
        let error = open(&db.url()).err().unwrap_or_else(|| panic!("{damage}: the store opened"));
        assert_eq!(error.code, ErrorCode::StoreCorrupt, "{damage}: {}", error.message);
        assert!(error.message.contains(named), "{damage}: {}", error.message);
        assert_eq!(db.sql(FINGERPRINT), before, "{damage}: the database changed");
        db.sql(undo);
    }

    let store = open(&db.url()).unwrap();
    common::audit_rows_keygate_never_writes_are_damage(&store, "keygate_audit", |sql| db.sql(sql));
    let version = db.sql("SELECT version FROM keygate_meta");
    common::an_audit_row_past_the_head_refuses_writes(&store, &secret, "keygate_audit", |sql| {
        if sql.starts_with("DELETE") {
            assert_eq!(db.sql("SELECT version FROM keygate_meta"), version, "nothing written");
        }
        db.sql(sql)
    });
    store.close().unwrap();
}

/// Change-log rows past the recorded version (added by hand, or by a restore of tables from
/// different moments), as audit rows past the head are taken: the next write would take a
/// version one of them holds. Found by a store already open, its writes are refused with
/// `STORE_CORRUPT` naming both numbers, nothing written, while checks go on; refused at open,
/// the database left as it was. Both used to go ahead, and every admin write then failed as a
/// duplicate key (`STORE_IO`, 23505) until someone found the row.
#[test]
fn change_rows_past_the_recorded_version_are_refused_as_audit_rows_past_the_head_are() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    let (_, secret) = seed(&store);
    let version: i64 = db.sql("SELECT version FROM keygate_meta").parse().unwrap();
    db.sql(&format!(
        "INSERT INTO keygate_changes SELECT version + 1, token, at, changes, mark FROM keygate_changes WHERE version = {version}"
    ));
    let named = format!("its change log has entries (up to {}) beyond its recorded version ({version})", version + 1);
    let before = db.sql(FINGERPRINT);
    let error = store.put_user(&UserInput { id: "late".into(), ..Default::default() }, None).unwrap_err();
    assert_eq!(error.code, ErrorCode::StoreCorrupt, "{}", error.message);
    assert!(error.message.contains(&named), "{}", error.message);
    assert!(store.get_user("late").unwrap().is_none(), "nothing applied");
    assert_eq!(db.sql(FINGERPRINT), before, "nothing written");
    assert_eq!(reason(&store, &secret), Reason::Allowed, "checks go on");
    store.close().unwrap();

    // (Closing wrote the check's lastUsedAt.)
    let before = db.sql(FINGERPRINT);
    let error = open(&db.url()).err().expect("the store opened");
    assert_eq!(error.code, ErrorCode::StoreCorrupt, "{}", error.message);
    assert!(error.message.contains(&named), "{}", error.message);
    assert_eq!(db.sql(FINGERPRINT), before, "the database changed");

    db.sql(&format!("DELETE FROM keygate_changes WHERE version = {}", version + 1));
    let store = open(&db.url()).unwrap();
    store.put_user(&UserInput { id: "late".into(), ..Default::default() }, None).unwrap();
    store.close().unwrap();
}

/// A newer keygate that upgraded the schema while this one runs (the meta row says schema 3):
/// this process's writes would put rows of the older shape into tables the newer keygate reads
/// as its own. They are refused with `STORE_CORRUPT` naming the schema, as an open is, and
/// nothing is written; checks go on. They used to be committed.
#[test]
fn writes_under_a_schema_a_newer_keygate_raised_are_refused() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    let (_, secret) = seed(&store);
    db.sql("UPDATE keygate_meta SET schema_version = 3");
    let before = db.sql(FINGERPRINT);
    let error = store.put_user(&UserInput { id: "late".into(), ..Default::default() }, None).unwrap_err();
    assert_eq!(error.code, ErrorCode::StoreCorrupt, "{}", error.message);
    assert!(error.message.contains("written by a newer keygate (schema 3"), "{}", error.message);
    assert!(store.get_user("late").unwrap().is_none(), "nothing applied");
    assert_eq!(db.sql(FINGERPRINT), before, "nothing written");
    assert_eq!(reason(&store, &secret), Reason::Allowed, "checks go on");
    store.close().unwrap();
}

/// The audit trail's table locked whole (a `VACUUM FULL`, an `ALTER TABLE`): verification,
/// a read-only transaction with no `lock_timeout`, gives up as a call with no answer does, within
/// `statementTimeoutMs` on the kept connection, then a new connection and one more try. It used
/// to wait out a `COMMIT` on the stalled connection after each try, another `statementTimeoutMs`
/// each: 4.4 s with both timeouts at 1,000 ms.
#[test]
fn verifying_the_audit_trail_while_its_table_is_locked_gives_up_within_the_timeouts() {
    let Some(db) = Db::new() else { return };
    let store = KeyStore::open(&db.url(), bounded(5_000.0, 1_000.0)).unwrap();
    seed(&store);
    let lock = db.hold_table("keygate_audit");
    let start = Instant::now();
    let error = store.verify_audit().unwrap_err();
    let took = start.elapsed();
    drop(lock);
    assert_eq!(error.code, ErrorCode::StoreUnavailable, "{}", error.message);
    assert!(took < Duration::from_millis(3_000), "took {took:?}: {}", error.message);
    assert!(store.verify_audit().unwrap().ok, "verifies once the lock is gone");
    store.close().unwrap();
}

/// Tables whose constraints were dropped (a bad migration, a data-only restore into tables made
/// by hand) holding one key twice: a revoked key's digest under another, active key, or one id
/// in two rows. The store used to open and a check found whichever row it came to first. One
/// id in two rows needs the primary key dropped, which the table check refuses first.
#[test]
fn a_key_stored_twice_is_store_corrupt_at_open() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    let (_, secret) = seed(&store);
    store.close().unwrap();
    db.sql("ALTER TABLE keygate_keys DROP CONSTRAINT keygate_keys_digest_key");
    let copy = |id: &str, digest: &str| {
        format!(
            "INSERT INTO keygate_keys SELECT {id}, seq + 1, user_id, description, 'active', expires_at, created_at, updated_at,
             last_used_at, hint, {digest}, rules FROM keygate_keys"
        )
    };
    for (what, damage, named) in [
        ("the same digest", copy("'\\xee000000000000000000000000000001'::bytea", "digest"), "has the same secret digest as another key"),
        (
            "the same id",
            format!("ALTER TABLE keygate_keys DROP CONSTRAINT keygate_keys_pkey; {}", copy("id", "'\\x00'::bytea || substr(digest, 2)")),
            "keygate_keys has no primary key or unique index on id",
        ),
    ] {
        db.sql(&format!("BEGIN; UPDATE keygate_keys SET state = 'revoked'; {damage}; COMMIT"));
        let error = open(&db.url()).err().unwrap_or_else(|| panic!("{what}: the store opened"));
        assert_eq!(error.code, ErrorCode::StoreCorrupt, "{what}: {}", error.message);
        assert!(error.message.contains(named), "{what}: {}", error.message);
        db.sql("DELETE FROM keygate_keys WHERE state = 'active'");
    }
    db.sql("ALTER TABLE keygate_keys ADD PRIMARY KEY (id)");
    let store = open(&db.url()).unwrap();
    assert_eq!(reason(&store, &secret), Reason::Revoked);
    store.close().unwrap();
}

/// A TCP proxy in front of the server that can be told to stop forwarding
/// (leaving connections open: half-open, as a dead network looks).
struct Proxy {
    port: u16,
    forwarding: Arc<AtomicBool>,
}

impl Proxy {
    fn start() -> Proxy {
        Proxy::start_paced(None)
    }

    /// Forwards at most `bytes_per_second` each way when given: a slow link.
    fn start_paced(bytes_per_second: Option<u32>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let forwarding = Arc::new(AtomicBool::new(true));
        let flag = forwarding.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if !flag.load(Ordering::SeqCst) {
                    // Accepted and never answered.
                    std::mem::forget(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(server()) else { continue };
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
                                // Swallow everything from now on.
                                continue;
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                return;
                            }
                            if let Some(rate) = bytes_per_second {
                                std::thread::sleep(Duration::from_secs_f64(n as f64 / f64::from(rate)));
                            }
                        }
                    });
                }
            }
        });
        Proxy { port, forwarding }
    }

    fn url(&self, db: &Db) -> String {
        format!("postgres://{}@127.0.0.1:{}/{}?sslmode=disable", user(), self.port, db.name)
    }
}

/// A store that takes longer to read than the statement timeout (a slow link
/// here; a big store anywhere) opens and reloads: the timeout bounds each wait
/// for the next rows, not the whole read.
#[test]
fn a_store_slower_to_read_than_the_statement_timeout_opens_and_reloads() {
    let Some(db) = Db::new() else { return };
    let writer = open(&db.url()).unwrap();
    let (_, secret) = seed(&writer);
    writer.close().unwrap();
    // 5,000 more keys (about 1 MB as rows), written in bulk.
    let now = keygate_core::internals::system_now();
    db.sql(&format!(
        "INSERT INTO keygate_keys (id, seq, user_id, description, state, expires_at, created_at, updated_at, last_used_at, hint, digest, rules)
         SELECT decode(md5('id' || i), 'hex'), 100 + i, 'svc', 'bulk key ' || i, 'active', {}, {now}, {now}, NULL, 'abcd',
                decode(md5('a' || i) || md5('b' || i), 'hex'), ARRAY['session:*', 'data:queryExec', 'apps/com.hornbill.core/*:*']
         FROM generate_series(1, 5000) i",
        now + DAY
    ));
    let proxy = Proxy::start_paced(Some(500_000));
    let timeout = Duration::from_millis(500);
    let options = Options { statement_timeout_ms: Some(timeout.as_millis() as f64), ..Default::default() };
    let started = Instant::now();
    let store = KeyStore::open(&proxy.url(&db), options).unwrap();
    let took = started.elapsed();
    assert!(took > timeout, "the link is slow enough for the test to mean something: opened in {took:?}");
    assert_eq!(store.key_count(), 5001);
    assert_eq!(reason(&store, &secret), Reason::Allowed);
    // A restore elsewhere (a new epoch, every key revoked): the whole state is read again, as slowly.
    db.sql("UPDATE keygate_keys SET state = 'revoked'; UPDATE keygate_meta SET epoch = 'restored'");
    wait_for(&store, &secret, Reason::Revoked);
    assert_eq!(store.key_count(), 5001);
    assert!(store.health().connected);
    store.close().unwrap();
}

#[test]
fn a_store_that_lost_the_database_fails_closed_after_fail_closed_after_ms_and_recovers() {
    let Some(db) = Db::new() else { return };
    let proxy = Proxy::start();
    let store = KeyStore::open(&proxy.url(&db), bounded(1500.0, 1000.0)).unwrap();
    let (_, secret) = seed(&store);
    assert_eq!(reason(&store, &secret), Reason::Allowed);
    proxy.forwarding.store(false, Ordering::SeqCst);
    let lost = Instant::now();
    // Within the bound the store answers from what it holds ...
    assert_eq!(reason(&store, &secret), Reason::Allowed);
    // ... and past it, store_unavailable.
    let took = wait_for(&store, &secret, Reason::StoreUnavailable);
    eprintln!("failed closed {:?} after the network stopped", lost.elapsed());
    assert!(took >= Duration::from_millis(1000), "not before the bound: {took:?}");
    assert!(!store.health().connected);
    // An admin call is bounded too: STORE_UNAVAILABLE, not a hang.
    let started = Instant::now();
    let error = store.put_role("ops", &[], None).unwrap_err();
    assert_eq!(error.code, ErrorCode::StoreUnavailable, "{error}");
    assert!(started.elapsed() < Duration::from_secs(5), "bounded: {:?}", started.elapsed());
    proxy.forwarding.store(true, Ordering::SeqCst);
    wait_for(&store, &secret, Reason::Allowed);
    assert!(store.health().connected);
    store.close().unwrap();
}

/// Another host's commit whose change row this host cannot read yet (a VACUUM FULL, CLUSTER
/// or ALTER TABLE holds `keygate_changes`): the heartbeat finds the version moved, and the
/// catch-up waits for the lock (nine tenths of `statementTimeoutMs`), the listener following
/// nothing meanwhile. The bound was checked only between the listener's steps, so a store
/// answered from what it held for that long, well past `failClosedAfterMs`; the guard thread
/// keeps it on time.
#[test]
fn a_listener_held_up_longer_than_fail_closed_after_ms_fails_closed_on_time() {
    let Some(db) = Db::new() else { return };
    let writer = open(&db.url()).unwrap();
    let (_, secret) = seed(&writer);
    writer.close().unwrap();
    let options = Options {
        fail_closed_after_ms: Some(1000.0),
        statement_timeout_ms: Some(8000.0),
        connect_timeout_ms: Some(1000.0),
        ..Default::default()
    };
    let host = KeyStore::open(&db.url(), options).unwrap();
    assert_eq!(reason(&host, &secret), Reason::Allowed);
    let lock = db.hold_table("keygate_changes");
    db.sql("UPDATE keygate_meta SET version = version + 1");
    let moved = Instant::now();
    // From 2.5 s after the version moved (a heartbeat within 250 ms, failing closed 1 s after
    // the last word heard before it), until 6 s (the catch-up waits 7.2 s).
    while moved.elapsed() < Duration::from_millis(2500) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (allowed, checks) = allowed_between(&host, &secret, moved, Duration::from_secs(6));
    let health = host.health();
    drop(lock);
    // The change row is missing (no keygate wrote that version): the whole state is read afresh.
    wait_for(&host, &secret, Reason::Allowed);
    host.close().unwrap();
    assert_eq!(allowed, 0, "{allowed} of {checks} checks allowed while the store could not catch up, 2.5-6 s after; health {health:?}");
    assert!(!health.connected, "{health:?}");
}

/// How many of the checks made every 10 ms from now until `until` (after `since`) answered
/// `store_unavailable`, of how many.
fn unavailable_between(store: &KeyStore, secret: &str, since: Instant, until: Duration) -> (usize, usize) {
    let (mut unavailable, mut checks) = (0, 0);
    while since.elapsed() < until {
        checks += 1;
        if reason(store, secret) == Reason::StoreUnavailable {
            unavailable += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (unavailable, checks)
}

/// Options failing closed after one second, each statement bounded by eight: a flush or purge
/// waiting for a row lock waits 7.2 s (nine tenths), far past the bound.
fn quick_to_fail_closed_slow_to_time_out() -> Options {
    Options {
        fail_closed_after_ms: Some(1000.0),
        statement_timeout_ms: Some(8000.0),
        connect_timeout_ms: Some(1000.0),
        ..Default::default()
    }
}

/// Another session holds every key row, so the `lastUsedAt` flush waits for them for seconds
/// (as it waits for the write connection behind an admin reading a long audit trail). The
/// flush ran on the listener thread, between its heartbeats: the store heard nothing for that
/// long and failed closed after `failClosedAfterMs`, denying every check although the database
/// answered all along. The listener never waits on it now; the flush lands once the lock goes.
#[test]
fn a_last_used_flush_held_up_by_a_row_lock_never_fails_the_store_closed() {
    let Some(db) = Db::new() else { return };
    let admin = open(&db.url()).unwrap();
    let (_, secret) = seed(&admin);
    admin.close().unwrap();
    let host = KeyStore::open(&db.url(), quick_to_fail_closed_slow_to_time_out()).unwrap();
    let lock = db.hold_rows_of("keygate_keys");
    let held = Instant::now();
    // The key is used all along: the host's next flush (within a second) waits for the lock.
    let (unavailable, checks) = unavailable_between(&host, &secret, held, Duration::from_secs(5));
    let health = host.health();
    let flushed_while_held = db.sql("SELECT last_used_at IS NOT NULL FROM keygate_keys");
    drop(lock);
    let released = Instant::now();
    while db.sql("SELECT last_used_at IS NOT NULL FROM keygate_keys") != "t" {
        assert!(released.elapsed() < Duration::from_secs(10), "lastUsedAt not written 10 s after the lock went");
        std::thread::sleep(Duration::from_millis(20));
    }
    host.close().unwrap();
    assert_eq!(flushed_while_held, "f", "the flush was not held up by the lock: the test shows nothing");
    assert_eq!(unavailable, 0, "{unavailable} of {checks} checks answered store_unavailable while a flush waited");
    assert!(health.connected, "{health:?}");
}

/// The same with the purge: opened with a key expired past `purgeExpiredAfterDays` while
/// another session holds every key row, the first purge's delete waits for the lock. It ran on
/// the listener thread too, and failed the store closed the same way.
#[test]
fn a_purge_held_up_by_a_row_lock_never_fails_the_store_closed() {
    let Some(db) = Db::new() else { return };
    let (source, kept) = common::store_with_expiring_keys(1);
    let target = open(&db.url()).unwrap();
    KeyStore::copy(&source, &target).unwrap();
    target.close().unwrap();
    let lock = db.hold_rows_of("keygate_keys");
    let options = Options { now: Some(common::PURGE_T0 + 9 * DAY), ..quick_to_fail_closed_slow_to_time_out() };
    let host = KeyStore::open(&db.url(), options).unwrap();
    let opened = Instant::now();
    // Checks would answer `expired` (the clock is nine days on): the flag they read instead.
    let (mut unavailable, mut looks) = (0, 0);
    while opened.elapsed() < Duration::from_secs(5) {
        looks += 1;
        if !host.is_current() {
            unavailable += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let health = host.health();
    let keys_while_held = db.sql("SELECT count(*) FROM keygate_keys");
    drop(lock);
    let released = Instant::now();
    while host.key_count() > 1 {
        assert!(released.elapsed() < Duration::from_secs(10), "not purged 10 s after the lock went");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(host.get_key(&kept).unwrap().is_some());
    host.close().unwrap();
    assert_eq!(keys_while_held, "2", "the purge was not held up by the lock: the test shows nothing");
    assert_eq!(db.sql("SELECT count(*) FROM keygate_keys"), "1");
    assert_eq!(unavailable, 0, "{unavailable} of {looks} looks found the store failing closed while a purge waited");
    assert!(health.connected, "{health:?}");
}

/// A bound shorter than the heartbeat's period: a quiet database is heard from only at each
/// heartbeat (every 250 ms), so the guard thread that keeps the bound while the listener is held
/// up must not fail the store closed between two of them (as the listener never did).
#[test]
fn a_fail_closed_bound_under_the_heartbeat_period_does_not_fail_a_quiet_store_closed() {
    let Some(db) = Db::new() else { return };
    let store = KeyStore::open(&db.url(), bounded(100.0, 1000.0)).unwrap();
    let (_, secret) = seed(&store);
    let (allowed, checks) = allowed_between(&store, &secret, Instant::now(), Duration::from_secs(3));
    store.close().unwrap();
    // Failing closed between heartbeats failed most checks; a heartbeat the shared server is slow
    // to answer (over 750 ms) may fail a few.
    assert!(allowed * 10 >= checks * 9, "{} of {checks} checks of a quiet, reachable store failed", checks - allowed);
}

/// A host that lost the network for a moment while another host suspended a user, and then
/// cannot read the change log (a VACUUM FULL, CLUSTER or ALTER TABLE holds `keygate_changes`).
/// Each reconnect counted as word from the database although the catch-up after it timed out,
/// so the host never failed closed and kept allowing the user's key for as long as the lock was
/// held, far past `failClosedAfterMs`.
#[test]
fn a_host_that_cannot_read_the_changes_after_reconnecting_fails_closed_after_the_bound() {
    let Some(db) = Db::new() else { return };
    let writer = open(&db.url()).unwrap();
    let (_, secret) = seed(&writer);
    let proxy = Proxy::start();
    let host = KeyStore::open(&proxy.url(&db), bounded(2000.0, 500.0)).unwrap();
    assert_eq!(reason(&host, &secret), Reason::Allowed);
    proxy.forwarding.store(false, Ordering::SeqCst);
    let lost = Instant::now();
    let suspended = UserInput { id: "svc".into(), status: Some("suspended".into()), rights: vec!["*:*".into()], ..Default::default() };
    writer.put_user(&suspended, None).unwrap();
    let lock = db.hold_table("keygate_changes");
    // Back within the bound: the host reconnects, and each catch-up waits for the lock.
    proxy.forwarding.store(true, Ordering::SeqCst);
    assert!(lost.elapsed() < Duration::from_millis(1500), "the network came back after {:?}", lost.elapsed());
    while lost.elapsed() < Duration::from_millis(3500) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (allowed, checks) = allowed_between(&host, &secret, lost, Duration::from_secs(7));
    let health = host.health();
    drop(lock);
    wait_for(&host, &secret, Reason::UserInactive);
    host.close().unwrap();
    writer.close().unwrap();
    assert_eq!(allowed, 0, "{allowed} of {checks} checks allowed a key whose user was suspended, 3.5-7 s after; health {health:?}");
    assert!(!health.connected, "{health:?}");
}

/// A notification that names exactly where the process stands (another host's, once applied, or
/// its own write's, echoed) is word that it is current, as a heartbeat finding the same: it cuts
/// the listener's wait short, and a bound under the heartbeat's period would otherwise fail the
/// store closed at each one.
#[test]
fn a_notification_naming_where_the_process_stands_is_contact_under_a_short_bound() {
    let Some(db) = Db::new() else { return };
    let store = KeyStore::open(&db.url(), bounded(100.0, 1000.0)).unwrap();
    let (_, secret) = seed(&store);
    let notify =
        "SELECT pg_notify('keygate', (SELECT m.epoch || ':' || (SELECT oid::text FROM pg_database WHERE datname = current_database()) \
                  || ' ' || m.version || ' ' || m.mark FROM keygate_meta m WHERE m.id = 1))";
    let start = Instant::now();
    let (allowed, checks) = std::thread::scope(|scope| {
        scope.spawn(|| {
            while start.elapsed() < Duration::from_secs(3) {
                db.sql(notify);
                std::thread::sleep(Duration::from_millis(30));
            }
        });
        allowed_between(&store, &secret, start, Duration::from_secs(3))
    });
    store.close().unwrap();
    assert!(allowed * 10 >= checks * 9, "{} of {checks} checks of a current, notified store failed", checks - allowed);
}

#[test]
fn an_unreachable_database_is_store_unavailable_within_the_connect_timeout() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let started = Instant::now();
    let options = Options { connect_timeout_ms: Some(500.0), ..Default::default() };
    let error =
        KeyStore::open(&format!("postgres://postgres:hunter2secret@127.0.0.1:{port}/x?sslmode=disable"), options).err().expect("refused");
    assert_eq!(error.code, ErrorCode::StoreUnavailable, "{error}");
    assert!(!error.message.contains("hunter2secret"), "no password in errors: {error}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // A server that accepts and never answers: bounded as well.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = Instant::now();
    let options = Options { connect_timeout_ms: Some(500.0), ..Default::default() };
    let error = KeyStore::open(&format!("postgres://postgres@127.0.0.1:{port}/x?sslmode=disable"), options).err().expect("refused");
    assert_eq!(error.code, ErrorCode::StoreUnavailable, "{error}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[test]
fn hostile_urls_and_options_get_clear_errors() {
    for (url, code) in [
        ("postgres://u:pw-in-url@127.0.0.1/x?sslmode=sometimes", ErrorCode::InvalidArgument),
        ("postgres://u:pw-in-url@127.0.0.1/x?bogus=1", ErrorCode::InvalidArgument),
        ("postgres://u:pw-in-url@127.0.0.1:notaport/x", ErrorCode::InvalidArgument),
        ("postgresql://u:pw-in-url@[::1/x", ErrorCode::InvalidArgument),
        ("postgres://u:pw-in-url@127.0.0.1/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", ErrorCode::InvalidArgument),
    ] {
        let error = KeyStore::open(url, Options::default()).err().expect("refused");
        assert_eq!(error.code, code, "{url}: {error}");
        assert!(!error.message.contains("pw-in-url"), "{url}: {error}");
    }
    for options in [
        Options { fail_closed_after_ms: Some(0.0), ..Default::default() },
        Options { connect_timeout_ms: Some(f64::NAN), ..Default::default() },
        Options { statement_timeout_ms: Some(-1.0), ..Default::default() },
    ] {
        let error = KeyStore::open("postgres://127.0.0.1/x", options).err().expect("refused");
        assert_eq!(error.code, ErrorCode::InvalidArgument, "{error}");
    }
}

#[test]
fn a_read_only_session_is_refused_at_open() {
    let Some(db) = Db::new() else { return };
    db.sql(&format!("ALTER DATABASE {} SET default_transaction_read_only = on", db.name));
    let error = open(&db.url()).err().expect("refused");
    assert_eq!(error.code, ErrorCode::InvalidArgument, "{error}");
    assert!(error.message.contains("read-only"), "{error}");
}

#[test]
fn a_different_key_prefix_is_refused() {
    let Some(db) = Db::new() else { return };
    open(&db.url()).unwrap().close().unwrap();
    let error = KeyStore::open(&db.url(), Options { key_prefix: Some("zz".into()), ..Default::default() }).err().expect("refused");
    assert_eq!(error.code, ErrorCode::InvalidArgument, "{error}");
}

#[test]
fn tls_through_rustls_encrypts_and_verify_full_refuses_an_untrusted_certificate() {
    let Some(db) = Db::new() else { return };
    if db.sql("SHOW ssl") != "on" {
        eprintln!("skipped: the server has no TLS");
        return;
    }
    let url = db.url().replace("sslmode=disable", "sslmode=require");
    let store = open(&url).unwrap();
    seed(&store);
    let encrypted = db.sql(&format!(
        "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = '{}' AND a.application_name = 'keygate'",
        db.name
    ));
    assert_eq!(encrypted, "t", "both connections use TLS");
    store.close().unwrap();
    // The machine's certificate is self-signed: not trusted, so verify-full refuses it.
    let error = open(&db.url().replace("sslmode=disable", "sslmode=verify-full")).err().expect("refused");
    assert_eq!(error.code, ErrorCode::StoreUnavailable, "{error}");
}

/// A table dropped or renamed, a column dropped or retyped by other means: a dropped meta
/// table used to read as a new database, and creating the schema over the other tables
/// failed as `STORE_IO` ("relation already exists"); the others failed only when read, or
/// not at all (a column keygate reads through a cast). Refused before anything is written,
/// naming what is wrong, as the SQLite store refuses a dropped table or column.
#[test]
fn a_table_or_column_dropped_or_retyped_is_store_corrupt_at_open_and_nothing_is_written() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    seed(&store);
    store.close().unwrap();
    db.back_up("pristine");
    for (damage, named) in [
        ("DROP TABLE keygate_meta", "keygate_meta is missing"),
        ("ALTER TABLE keygate_meta RENAME TO keygate_meta_old", "keygate_meta is missing"),
        ("DROP TABLE keygate_audit", "keygate_audit is missing"),
        ("ALTER TABLE keygate_keys DROP COLUMN hint", "keygate_keys.hint is missing"),
        ("ALTER TABLE keygate_keys ALTER COLUMN seq TYPE integer", "keygate_keys.seq is of type int4, not int8"),
        (
            "ALTER TABLE keygate_users ALTER COLUMN rights TYPE text USING array_to_string(rights, ',')",
            "keygate_users.rights is of type text",
        ),
        ("ALTER TABLE keygate_meta DROP COLUMN audit_hash", "keygate_meta.audit_hash is missing"),
    ] {
        db.restore_afresh("pristine");
        db.sql(damage);
        let before = db.fingerprint();
        let error = open(&db.url()).err().unwrap_or_else(|| panic!("{damage}: the store opened"));
        assert_eq!(error.code, ErrorCode::StoreCorrupt, "{damage}: {}", error.message);
        assert!(error.message.contains(named), "{damage}: {}", error.message);
        assert_eq!(db.fingerprint(), before, "{damage}: the database was written to");
    }
    // A column added by other means is no damage.
    db.restore_afresh("pristine");
    db.sql("ALTER TABLE keygate_keys ADD COLUMN note text");
    open(&db.url()).unwrap().close().unwrap();
}

/// A primary key keygate's statements rely on, dropped by other means: the meta row is read
/// as the one row with id 1, and users, roles and keys are written with `ON CONFLICT` on
/// theirs. Without it, a copied meta row made every open fail as `STORE_UNAVAILABLE` ("query
/// returned an unexpected number of rows", as if the server were down), and a store opened
/// on the others with every write of them failing as `STORE_IO` (42P10), a user or role
/// stored twice loading as whichever row came last. Refused at open, naming it, before
/// anything is written; a unique index in the primary key's place is no damage.
#[test]
fn a_primary_key_dropped_is_store_corrupt_at_open_and_nothing_is_written() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    seed(&store);
    store.put_role("reader", &["session:*".into()], None).unwrap();
    store.close().unwrap();
    db.back_up("pristine");
    for (damage, named) in [
        (
            "ALTER TABLE keygate_meta DROP CONSTRAINT keygate_meta_pkey; INSERT INTO keygate_meta SELECT * FROM keygate_meta",
            "keygate_meta has no primary key or unique index on id",
        ),
        (
            "ALTER TABLE keygate_users DROP CONSTRAINT keygate_users_pkey; INSERT INTO keygate_users SELECT id, 'suspended', rights, roles FROM keygate_users",
            "keygate_users has no primary key or unique index on id",
        ),
        ("ALTER TABLE keygate_roles DROP CONSTRAINT keygate_roles_pkey", "keygate_roles has no primary key or unique index on name"),
        ("ALTER TABLE keygate_keys DROP CONSTRAINT keygate_keys_pkey", "keygate_keys has no primary key or unique index on id"),
    ] {
        db.restore_afresh("pristine");
        db.sql(damage);
        let before = db.sql("SELECT (SELECT count(*) FROM keygate_meta) || ' ' || (SELECT count(*) FROM keygate_users)");
        let error = open(&db.url()).err().unwrap_or_else(|| panic!("{damage}: the store opened"));
        assert_eq!(error.code, ErrorCode::StoreCorrupt, "{damage}: {}", error.message);
        assert!(error.message.contains(named), "{damage}: {}", error.message);
        assert_eq!(db.sql("SELECT (SELECT count(*) FROM keygate_meta) || ' ' || (SELECT count(*) FROM keygate_users)"), before);
    }
    db.restore_afresh("pristine");
    db.sql("ALTER TABLE keygate_roles DROP CONSTRAINT keygate_roles_pkey; CREATE UNIQUE INDEX roles_by_name ON keygate_roles (name)");
    let store = open(&db.url()).unwrap();
    store.put_role("reader", &["data:*".into()], None).unwrap();
    store.close().unwrap();
}

/// A newer keygate's schema may have columns this one does not know of, or lack some it
/// does: the open says the database was written by a newer keygate (as before the tables
/// were checked), not that its tables were damaged.
#[test]
fn a_newer_schema_is_named_as_such_even_when_its_columns_differ() {
    let Some(db) = Db::new() else { return };
    open(&db.url()).unwrap().close().unwrap();
    db.sql("UPDATE keygate_meta SET schema_version = 3; ALTER TABLE keygate_keys DROP COLUMN hint");
    let error = open(&db.url()).err().expect("the store opened");
    assert_eq!(error.code, ErrorCode::StoreCorrupt, "{}", error.message);
    assert!(error.message.contains("written by a newer keygate (schema 3"), "{}", error.message);
}

/// A primary key dropped under a running store: its upserts then fail as `STORE_CORRUPT`
/// (the tables are no longer as keygate made them), not `STORE_IO`.
#[test]
fn a_primary_key_dropped_under_a_running_store_is_store_corrupt() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    seed(&store);
    db.sql("ALTER TABLE keygate_roles DROP CONSTRAINT keygate_roles_pkey");
    let refused = store.put_role("reader", &["session:*".into()], None).unwrap_err();
    assert_eq!(refused.code, ErrorCode::StoreCorrupt, "{}", refused.message);
    assert!(store.list_roles().unwrap().is_empty(), "nothing applied");
    store.close().unwrap();
}

/// A column retyped under a running store, then its connections replaced (a restart, say):
/// the admin calls that write the column send a value of the type keygate made it, which the
/// driver refuses before the server sees it. That is `STORE_CORRUPT` (as the server's own
/// refusals of a retyped column are), not `STORE_UNAVAILABLE` with "the write and its COMMIT
/// had been sent, so it may or may not have been committed", nor is it tried again on a new
/// connection as a lost one would be; nothing is written.
#[test]
fn a_column_retyped_under_a_running_store_fails_its_writes_as_store_corrupt() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    seed(&store);
    db.sql("ALTER TABLE keygate_keys ALTER COLUMN seq TYPE integer");
    let ended = db.sql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'keygate'",
        db.name
    ));
    assert_eq!(ended, "2");
    let before = db.sql("SELECT count(*) FROM keygate_keys");
    for _ in 0..2 {
        let new_key = NewKey {
            user_id: "svc".into(),
            description: String::new(),
            expires_at: Some(keygate_core::internals::system_now() + DAY),
            rules: vec!["session:*".into()],
            state: None,
        };
        let refused = store.create_key(&new_key, None).unwrap_err();
        assert_eq!(refused.code, ErrorCode::StoreCorrupt, "{}", refused.message);
        assert!(!refused.message.contains("may or may not"), "{}", refused.message);
    }
    assert_eq!(db.sql("SELECT count(*) FROM keygate_keys"), before, "nothing written");
    store.close().unwrap();
}

/// A column dropped under a running store: what it reads then fails as `STORE_CORRUPT`
/// (the tables are no longer as keygate made them), not `STORE_IO`, and the store fails closed.
#[test]
fn a_column_dropped_under_a_running_store_is_reported_as_store_corrupt() {
    let Some(db) = Db::new() else { return };
    let reported: Arc<std::sync::Mutex<Vec<ErrorCode>>> = Arc::default();
    let sink = reported.clone();
    let on_error: keygate_core::OnError = Arc::new(move |incident: &keygate_core::Incident| sink.lock().unwrap().push(incident.error.code));
    let store = KeyStore::open(&db.url(), Options { on_error: Some(on_error), ..Default::default() }).unwrap();
    let (_, secret) = seed(&store);
    assert_eq!(reason(&store, &secret), Reason::Allowed);
    db.sql("ALTER TABLE keygate_keys DROP COLUMN hint; UPDATE keygate_meta SET epoch = 'elsewhere'");
    wait_for(&store, &secret, Reason::StoreUnavailable);
    let start = Instant::now();
    while !reported.lock().unwrap().contains(&ErrorCode::StoreCorrupt) {
        assert!(start.elapsed() < Duration::from_secs(10), "reported {:?}", reported.lock().unwrap());
        std::thread::sleep(Duration::from_millis(5));
    }
    let refused = store.put_user(&UserInput { id: "late".into(), ..Default::default() }, None).unwrap_err();
    assert_eq!(refused.code, ErrorCode::StoreCorrupt, "{}", refused.message);
    store.close().unwrap();
}

/// `close` used to return only once the listener's wait for notifications ran out: up
/// to a heartbeat's period (250 ms) per store, just after an open almost all of it.
#[test]
fn close_returns_without_waiting_out_the_listener_s_wait() {
    let Some(db) = Db::new() else { return };
    open(&db.url()).unwrap().close().unwrap();
    for _ in 0..5 {
        let store = open(&db.url()).unwrap();
        let start = Instant::now();
        store.close().unwrap();
        let took = start.elapsed();
        assert!(took < Duration::from_millis(150), "close took {took:?}");
    }
}

#[test]
fn terminated_connections_are_replaced_and_nothing_is_missed() {
    let Some(db) = Db::new() else { return };
    let a = open(&db.url()).unwrap();
    let b = open(&db.url()).unwrap();
    let (id, secret) = seed(&a);
    wait_for(&b, &secret, Reason::Allowed);
    // Every keygate connection of this database, the listeners and the writers, killed.
    let killed = db.sql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'keygate'",
        db.name
    ));
    // Each store holds two connections; one may be between a drop and its replacement (a heartbeat
    // timing out on this loaded machine), so at least one per store was killed, not always four.
    let killed: u32 = killed.parse().unwrap();
    assert!((2..=4).contains(&killed), "{killed} connections killed");
    // The next admin call does not fail for it, and the other store follows.
    a.set_state(&id, "suspended", None).unwrap();
    let took = wait_for(&b, &secret, Reason::Suspended);
    eprintln!("change seen after the listener was killed: {took:?}");
    b.set_state(&id, "revoked", None).unwrap();
    wait_for(&a, &secret, Reason::Revoked);
    assert!(a.health().connected && b.health().connected);
    assert_eq!(a.health().applied_version, b.health().applied_version);
    a.close().unwrap();
    b.close().unwrap();
}

/// A listener that comes back after losing its connection catches up at once: what was committed
/// while it was away sent it no notification, so waiting for one (up to the next heartbeat,
/// 250 ms) would leave a revocation unseen for that long.
#[test]
fn a_listener_back_from_a_lost_connection_catches_up_at_once() {
    let Some(db) = Db::new() else { return };
    let a = open(&db.url()).unwrap();
    let (id, secret) = seed(&a);
    let b = open(&db.url()).unwrap();
    wait_for(&b, &secret, Reason::Allowed);
    // No new connection until the revocation is committed; b's two (the newest) cut.
    psql("postgres", &format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", db.name));
    let killed = psql(
        "postgres",
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM (SELECT pid FROM pg_stat_activity WHERE datname = '{}' \
         AND application_name = 'keygate' ORDER BY backend_start DESC LIMIT 2) AS newest",
            db.name
        ),
    );
    assert_eq!(killed, "2");
    let start = Instant::now();
    while b.health().connected {
        assert!(start.elapsed() < Duration::from_secs(5), "b never noticed its listener was gone");
        std::thread::sleep(Duration::from_millis(1));
    }
    a.set_state(&id, "revoked", None).unwrap();
    psql("postgres", &format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", db.name));
    let start = Instant::now();
    while !b.health().connected {
        assert!(start.elapsed() < Duration::from_secs(10), "b never reconnected");
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = wait_for(&b, &secret, Reason::Revoked);
    assert!(took < Duration::from_millis(150), "the revocation was seen {took:?} after b reconnected");
    a.close().unwrap();
    b.close().unwrap();
}

#[test]
fn changes_too_large_for_a_notification_are_read_from_the_table_in_order() {
    let Some(db) = Db::new() else { return };
    let a = open(&db.url()).unwrap();
    let b = open(&db.url()).unwrap();
    // About 12 kB of rights: more than a notification carries.
    let many: Vec<String> = (0..300).map(|i| format!("service{i:04}:someApiNameThatIsLong*")).collect();
    a.put_role("big", &many, None).unwrap();
    a.put_role("small", &["api:*".into()], None).unwrap();
    let start = Instant::now();
    while b.get_role("small").unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(b.get_role("big").unwrap().unwrap().rights.len(), 300, "the large change was applied, before the small one");
    a.close().unwrap();
    b.close().unwrap();
}

/// Figures, not assertions: `cargo test --release -p keygate-core --test postgres -- --ignored --nocapture figures`.
#[test]
#[ignore = "a measurement; run by hand in release mode"]
fn figures() {
    let Some(db) = Db::new() else { return };
    let writer = open(&db.url()).unwrap();
    let reader = open(&db.url()).unwrap();
    writer.put_user(&UserInput { id: "svc".into(), rights: vec!["*:*".into()], ..Default::default() }, None).unwrap();
    let new_key = || NewKey {
        user_id: "svc".into(),
        description: "bench".into(),
        expires_at: Some(keygate_core::internals::system_now() + DAY),
        rules: vec![],
        state: None,
    };
    let n = 2_000;
    let start = Instant::now();
    let mut issued = Vec::new();
    for _ in 0..n {
        issued.push(writer.create_key(&new_key(), None).unwrap());
    }
    let took = start.elapsed();
    eprintln!("durable createKey: {:.0}/s ({n} in {took:?})", f64::from(n) / took.as_secs_f64());
    let mut visible = Vec::new();
    for key in issued.iter().take(200) {
        wait_for(&reader, &key.secret, Reason::Allowed);
        writer.set_state(&key.key.id, "revoked", None).unwrap();
        visible.push(wait_for(&reader, &key.secret, Reason::Revoked));
    }
    visible.sort();
    let pick = |q: f64| visible[((visible.len() - 1) as f64 * q) as usize];
    eprintln!("revocation visible in the other store: p50 {:?}, p99 {:?}, max {:?}", pick(0.5), pick(0.99), pick(1.0));
    writer.close().unwrap();
    reader.close().unwrap();
    let start = Instant::now();
    let reopened = open(&db.url()).unwrap();
    eprintln!("open with {} keys: {:?}", reopened.key_count(), start.elapsed());
    reopened.close().unwrap();
}

#[test]
fn a_write_the_server_refuses_changes_nothing_there_or_in_memory() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    let (id, secret) = seed(&store);
    // The server refuses the audit row, after the key's row was written in the same transaction.
    db.sql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by a trigger'; END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON keygate_audit FOR EACH ROW EXECUTE FUNCTION refuse();",
    );
    let error = store.set_state(&id, "revoked", None).unwrap_err();
    assert_eq!(error.code, ErrorCode::StoreIo, "{error}");
    assert_eq!(db.sql("SELECT state FROM keygate_keys"), "active");
    assert_eq!(db.sql("SELECT version FROM keygate_meta"), "2");
    assert_eq!(reason(&store, &secret), Reason::Allowed);
    db.sql("DROP TRIGGER refuse ON keygate_audit");
    store.set_state(&id, "revoked", None).unwrap();
    assert_eq!(reason(&store, &secret), Reason::Revoked);
    assert_eq!(db.sql("SELECT state FROM keygate_keys"), "revoked");
    assert!(store.verify_audit().unwrap().ok);
    store.close().unwrap();
}

/// A `BEFORE` trigger that returns NULL (one missing its `RETURN NEW`) skips the row
/// without an error. Were the write committed anyway, its change log row and audit entry
/// would say the key was revoked while its row stayed active: hosts running would deny it,
/// a host opened later would allow it.
#[test]
fn a_trigger_that_drops_keygate_writes_fails_them_and_commits_nothing() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    let (id, secret) = seed(&store);
    let before =
        db.sql("SELECT (SELECT version FROM keygate_meta), (SELECT count(*) FROM keygate_changes), (SELECT count(*) FROM keygate_audit)");
    db.sql(
        "CREATE FUNCTION skip_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
         CREATE TRIGGER skip_update BEFORE UPDATE ON keygate_keys FOR EACH ROW EXECUTE FUNCTION skip_row();",
    );
    let error = store.set_state(&id, "revoked", None).unwrap_err();
    assert_eq!(error.code, ErrorCode::StoreCorrupt, "{error}");
    assert!(error.message.contains("writing keygate_keys of") && error.message.contains("changed no row"), "{error}");
    assert_eq!(db.sql("SELECT state FROM keygate_keys"), "active");
    assert_eq!(
        db.sql("SELECT (SELECT version FROM keygate_meta), (SELECT count(*) FROM keygate_changes), (SELECT count(*) FROM keygate_audit)"),
        before
    );
    assert_eq!(reason(&store, &secret), Reason::Allowed, "the failed revocation is not kept in memory either");

    // A skipped delete, and a skipped audit entry (the key's own row written before it).
    db.sql("CREATE TRIGGER skip_delete BEFORE DELETE ON keygate_keys FOR EACH ROW EXECUTE FUNCTION skip_row();");
    let error = store.delete_key(&id, None).unwrap_err();
    assert_eq!(error.code, ErrorCode::StoreCorrupt, "{error}");
    db.sql("CREATE TRIGGER skip_insert BEFORE INSERT ON keygate_audit FOR EACH ROW EXECUTE FUNCTION skip_row();");
    let user = UserInput { id: "bob".into(), ..Default::default() };
    let error = store.put_user(&user, None).unwrap_err();
    assert_eq!(error.code, ErrorCode::StoreCorrupt, "{error}");
    assert!(error.message.contains("writing keygate_audit of"), "{error}");
    assert_eq!(db.sql("SELECT count(*) FROM keygate_users WHERE id = 'bob'"), "0");
    assert_eq!(
        db.sql("SELECT (SELECT version FROM keygate_meta), (SELECT count(*) FROM keygate_changes), (SELECT count(*) FROM keygate_audit)"),
        before
    );

    db.sql("DROP TRIGGER skip_update ON keygate_keys; DROP TRIGGER skip_delete ON keygate_keys; DROP TRIGGER skip_insert ON keygate_audit");
    store.set_state(&id, "revoked", None).unwrap();
    assert_eq!(db.sql("SELECT state FROM keygate_keys"), "revoked");
    let later = open(&db.url()).unwrap();
    assert_eq!(reason(&later, &secret), Reason::Revoked);
    assert!(later.verify_audit().unwrap().ok);
    later.close().unwrap();
    store.close().unwrap();
}

/// A rule `DO INSTEAD NOTHING` drops a write without an error, as a trigger returning NULL does.
#[test]
fn a_rule_that_drops_keygate_writes_fails_them() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    let (id, secret) = seed(&store);
    db.sql("CREATE RULE keep_keys AS ON DELETE TO keygate_keys DO INSTEAD NOTHING");
    let error = store.delete_key(&id, None).unwrap_err();
    assert!(matches!(error.code, ErrorCode::StoreIo | ErrorCode::StoreCorrupt), "{error}");
    assert_eq!(db.sql("SELECT count(*) FROM keygate_keys"), "1");
    assert_eq!(reason(&store, &secret), Reason::Allowed);
    db.sql("DROP RULE keep_keys ON keygate_keys");
    assert!(store.delete_key(&id, None).unwrap());
    assert_eq!(db.sql("SELECT count(*) FROM keygate_keys"), "0");
    store.close().unwrap();
}

/// The statements of a write that change several rows (a deleted user's keys, a deleted role
/// in its holders' rows) fail too when a trigger skips some of them. Committed, the rows left
/// behind would be read by hosts opened later: keys of a missing user (a store that no longer
/// opens), or a role held again, with its rights, once a role of the same name is made.
#[test]
fn a_trigger_that_drops_some_rows_of_a_write_fails_it_and_commits_nothing() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    store.put_role("ops", &["billing:*".into()], None).unwrap();
    store.put_user(&UserInput { id: "u1".into(), roles: vec!["ops".into()], ..Default::default() }, None).unwrap();
    store.put_user(&UserInput { id: "u2".into(), roles: vec!["ops".into()], ..Default::default() }, None).unwrap();
    let (_, secret) = seed(&store);
    let spare = NewKey {
        user_id: "svc".into(),
        description: "spare".into(),
        expires_at: Some(keygate_core::internals::system_now() + DAY),
        ..Default::default()
    };
    store.create_key(&spare, None).unwrap();
    let counts = "SELECT (SELECT version FROM keygate_meta), (SELECT count(*) FROM keygate_changes), (SELECT count(*) FROM keygate_audit)";
    let before = db.sql(counts);
    db.sql(
        "CREATE FUNCTION skip_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
         CREATE TRIGGER skip_u2 BEFORE UPDATE ON keygate_users FOR EACH ROW WHEN (OLD.id = 'u2') EXECUTE FUNCTION skip_row();
         CREATE TRIGGER skip_key BEFORE DELETE ON keygate_keys FOR EACH ROW WHEN (OLD.description = 'nightly')
           EXECUTE FUNCTION skip_row();",
    );
    let error = store.delete_role("ops", None).unwrap_err();
    assert_eq!(error.code, ErrorCode::StoreCorrupt, "{error}");
    assert!(error.message.contains("writing keygate_users of"), "{error}");
    let error = store.delete_user("svc", None).unwrap_err();
    assert_eq!(error.code, ErrorCode::StoreCorrupt, "{error}");
    assert!(error.message.contains("writing keygate_keys of"), "{error}");
    assert_eq!(db.sql(counts), before);
    assert_eq!(db.sql("SELECT count(*) FROM keygate_roles"), "1");
    assert_eq!(db.sql("SELECT count(*) FROM keygate_keys"), "2");
    assert!(store.get_role("ops").unwrap().is_some() && store.get_user("svc").unwrap().is_some());
    assert_eq!(reason(&store, &secret), Reason::Allowed);

    db.sql("DROP TRIGGER skip_u2 ON keygate_users; DROP TRIGGER skip_key ON keygate_keys");
    assert!(store.delete_role("ops", None).unwrap());
    assert!(store.delete_user("svc", None).unwrap());
    assert_eq!(db.sql("SELECT count(*) FROM keygate_users WHERE 'ops' = ANY(roles)"), "0");
    assert_eq!(db.sql("SELECT count(*) FROM keygate_keys"), "0");
    let later = open(&db.url()).unwrap();
    assert_eq!(later.get_user("u2").unwrap().unwrap().roles, Vec::<String>::new());
    later.close().unwrap();
    store.close().unwrap();
}

/// The meta row every admin write locks first, gone from under a running store (deleted, or
/// hidden by a row-level security policy, under which `FOR UPDATE` finds no row) is
/// `STORE_CORRUPT` naming it, not `STORE_UNAVAILABLE` ("query returned an unexpected number of
/// rows", as if the server were down, and retried on a new connection as such).
#[test]
fn an_admin_write_finding_no_meta_row_to_lock_is_store_corrupt() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    seed(&store);
    db.sql("CREATE TABLE meta_kept AS SELECT * FROM keygate_meta; DELETE FROM keygate_meta");
    let error = store.put_user(&UserInput { id: "bob".into(), ..Default::default() }, None).unwrap_err();
    assert_eq!(error.code, ErrorCode::StoreCorrupt, "{error}");
    assert!(error.message.contains("keygate_meta row"), "{error}");
    assert_eq!(db.sql("SELECT count(*) FROM keygate_users WHERE id = 'bob'"), "0");
    let _ = store.close();
}

/// A proxy that forwards everything but the server's notifications (`A` messages),
/// as a pooler in transaction mode loses them.
fn deaf_proxy() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(mut server) = TcpStream::connect(server()) else { continue };
            let (mut client_in, mut server_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || std::io::copy(&mut client_in, &mut server_out));
            std::thread::spawn(move || {
                // Server to client: typed messages (a type byte, then a length that counts itself).
                loop {
                    let mut head = [0u8; 5];
                    if server.read_exact(&mut head).is_err() {
                        return;
                    }
                    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
                    let mut body = vec![0u8; len - 4];
                    if server.read_exact(&mut body).is_err() {
                        return;
                    }
                    if head[0] != b'A' && (client.write_all(&head).is_err() || client.write_all(&body).is_err()) {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn a_connection_that_does_not_deliver_notifications_is_refused_at_open() {
    let Some(db) = Db::new() else { return };
    let port = deaf_proxy();
    let url = format!("postgres://{}@127.0.0.1:{port}/{}?sslmode=disable", user(), db.name);
    let started = Instant::now();
    let error = KeyStore::open(&url, Options { connect_timeout_ms: Some(1000.0), ..Default::default() }).err().expect("refused");
    assert_eq!(error.code, ErrorCode::InvalidArgument, "{error}");
    assert!(error.message.contains("notifications"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn two_writers_at_once_lose_nothing_and_the_versions_are_contiguous() {
    let Some(db) = Db::new() else { return };
    let stores: Vec<KeyStore> = (0..2).map(|_| open(&db.url()).unwrap()).collect();
    std::thread::scope(|scope| {
        for (w, store) in stores.iter().enumerate() {
            scope.spawn(move || {
                for i in 0..150 {
                    store.put_role(&format!("w{w}-{i}"), &["api:*".into()], None).unwrap();
                }
            });
        }
    });
    assert_eq!(db.sql("SELECT count(*), min(version), max(version) FROM keygate_changes"), "300|1|300");
    assert_eq!(db.sql("SELECT version FROM keygate_meta"), "300");
    let start = Instant::now();
    while stores.iter().any(|s| s.health().applied_version != 300) {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(1));
    }
    for store in &stores {
        assert_eq!(store.list_roles().unwrap().len(), 300);
        let report = store.verify_audit().unwrap();
        assert!(report.ok && report.entries == 300, "{report:?}");
    }
    for store in stores {
        store.close().unwrap();
    }
}

/// Options whose `on_error` collects what the store reports.
fn reporting() -> (Options, Arc<std::sync::Mutex<Vec<keygate_core::Incident>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let on_error: keygate_core::OnError = Arc::new(move |i: &keygate_core::Incident| sink.lock().unwrap().push(i.clone()));
    (Options { on_error: Some(on_error), ..Default::default() }, seen)
}

/// A store whose listener cannot reconnect fails closed saying why the last attempt failed
/// (here the database refuses connections; after a failover, a replica refusing LISTEN),
/// not only that nothing was heard.
#[test]
fn a_store_failing_closed_says_why_it_could_not_reconnect() {
    let Some(db) = Db::new() else { return };
    let (mut options, seen) = reporting();
    options.fail_closed_after_ms = Some(1500.0);
    let store = KeyStore::open(&db.url(), options).unwrap();
    let (_, secret) = seed(&store);
    psql("postgres", &format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", db.name));
    psql("postgres", &format!("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}'", db.name));
    wait_for(&store, &secret, Reason::StoreUnavailable);
    // Told by the background thread just after checks fail closed.
    let told_closed = || seen.lock().unwrap().iter().find(|i| i.error.message.contains("failClosedAfterMs")).cloned();
    let start = Instant::now();
    while told_closed().is_none() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    psql("postgres", &format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", db.name));
    let failed_closed = told_closed();
    let message = failed_closed.expect("failing closed is reported").error.message;
    assert!(message.contains("the last attempt to reconnect:") && message.contains("not currently accepting connections"), "{message}");
    wait_for(&store, &secret, Reason::Allowed);
    store.close().unwrap();
}

#[test]
fn stores_flushing_last_used_of_the_same_keys_at_once_neither_deadlock_nor_fail_close() {
    let Some(db) = Db::new() else { return };
    const STORES: usize = 6;
    const KEYS: usize = 40;
    const ROUNDS: usize = 4;
    let admin = open(&db.url()).unwrap();
    admin.put_user(&UserInput { id: "svc".into(), rights: vec!["*:*".into()], ..Default::default() }, None).unwrap();
    let secrets: Vec<String> = (0..KEYS)
        .map(|i| {
            let key = NewKey {
                user_id: "svc".into(),
                description: format!("k{i}"),
                expires_at: Some(keygate_core::internals::system_now() + DAY),
                rules: vec!["session:*".into()],
                state: None,
            };
            admin.create_key(&key, None).unwrap().secret
        })
        .collect();
    admin.close().unwrap();
    let secrets = Arc::new(secrets);
    for round in 0..ROUNDS {
        let start = Arc::new(std::sync::Barrier::new(STORES));
        let threads: Vec<_> = (0..STORES)
            .map(|n| {
                let (url, secrets, start) = (db.url(), secrets.clone(), start.clone());
                std::thread::spawn(move || {
                    let (options, seen) = reporting();
                    let store = KeyStore::open(&url, options).unwrap();
                    // Each store uses the keys in its own order, so its flushes list them in that order.
                    let mut order: Vec<usize> = (0..KEYS).collect();
                    order.rotate_left(n * KEYS / STORES);
                    if n % 2 == 1 {
                        order.reverse();
                    }
                    start.wait();
                    let until = Instant::now() + Duration::from_millis(2_500);
                    while Instant::now() < until {
                        for &i in &order {
                            assert_eq!(reason(&store, &secrets[i]), Reason::Allowed);
                        }
                    }
                    start.wait();
                    let closed = store.close();
                    let seen = seen.lock().unwrap().iter().map(ToString::to_string).collect::<Vec<_>>();
                    (closed, seen)
                })
            })
            .collect();
        for thread in threads {
            let (closed, seen) = thread.join().unwrap();
            assert!(closed.is_ok(), "round {round}: close: {closed:?}");
            assert!(seen.is_empty(), "round {round}: reported {seen:?}");
        }
    }
    // Every key's use was written.
    assert_eq!(db.sql("SELECT count(*) FROM keygate_keys WHERE last_used_at IS NOT NULL"), KEYS.to_string());
}

/// Terminates the store's write connection ("t" when done): connected before the listener at
/// open (`first_since_open`), after it once replaced.
fn terminate_write_connection(db: &Db, first_since_open: bool) -> String {
    let order = if first_since_open { "ASC" } else { "DESC" };
    db.sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM (SELECT pid FROM pg_stat_activity WHERE datname = '{}'
         AND application_name = 'keygate' ORDER BY backend_start {order} LIMIT 1) w",
        db.name
    ))
}

#[test]
fn an_admin_call_right_after_its_connection_was_terminated_reconnects_and_succeeds() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    let (id, secret) = seed(&store);
    for round in 0..20 {
        let killed = terminate_write_connection(&db, round == 0);
        assert_eq!(
            killed,
            "t",
            "round {round}: {}",
            db.sql("SELECT pid, backend_start, query FROM pg_stat_activity WHERE application_name = 'keygate'")
        );
        let state = if round % 2 == 0 { "suspended" } else { "active" };
        store.set_state(&id, state, Some("ops")).unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        assert_eq!(db.sql("SELECT state FROM keygate_keys"), state);
    }
    assert_eq!(reason(&store, &secret), Reason::Allowed);
    store.close().unwrap();
}

#[test]
fn close_ends_the_store_s_connections_on_the_server() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    seed(&store);
    let count = || db.sql(&format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'keygate'", db.name));
    assert_eq!(count(), "2", "the write connection and the listener");
    store.close().unwrap();
    // Still held (a host's store may be collected much later), yet its connections are gone:
    // `close` has said goodbye on both, and the server's backends end (a shared, loaded
    // server may take a moment to take them off pg_stat_activity).
    let deadline = Instant::now() + Duration::from_secs(10);
    while count() != "0" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        count(),
        "0",
        "{}",
        db.sql(&format!(
            "SELECT pid, state, backend_start, state_change, wait_event, query FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'keygate'",
            db.name
        ))
    );
    let _ = store.close();
}

/// A store's threads (listener, guard, maintenance) use its two connections only, and end
/// when its last handle is dropped without `close`: the connections end with them.
#[test]
fn a_store_keeps_two_connections_and_dropped_without_close_ends_them() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    let (_, secret) = seed(&store);
    let count = || db.sql(&format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'keygate'", db.name));
    assert_eq!(reason(&store, &secret), Reason::Allowed);
    let used = Instant::now();
    // The maintenance thread flushes the use (about once a second) on the write connection.
    while db.sql("SELECT last_used_at IS NOT NULL FROM keygate_keys") != "t" {
        assert!(used.elapsed() < Duration::from_secs(10), "the use was not flushed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(count(), "2", "the write connection and the listener");
    let _ = store.close();
    let deadline = Instant::now() + Duration::from_secs(10);
    while count() != "0" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(count(), "0", "the store's threads kept its connections after it was dropped");
}

#[test]
fn reads_right_after_the_write_connection_was_terminated_reconnect_and_succeed() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    let (id, _) = seed(&store);
    let written = store.audit(&keygate_core::AuditQuery::default()).unwrap().len();
    for round in 0..10 {
        // The write connection reads the audit trail. Only the thread using it drives it, so
        // its loss is found by the read itself, which must not fail for it.
        assert_eq!(terminate_write_connection(&db, round == 0), "t", "round {round}");
        std::thread::sleep(Duration::from_millis(50));
        if round % 2 == 0 {
            let entries = store.audit(&keygate_core::AuditQuery::default()).unwrap_or_else(|e| panic!("round {round}: {e:?}"));
            assert_eq!(entries.len(), written, "round {round}");
        } else {
            let report = store.verify_audit().unwrap_or_else(|e| panic!("round {round}: {e:?}"));
            assert!(report.ok, "round {round}: {report:?}");
        }
    }
    // And the connection the reads replaced serves the next write.
    store.set_state(&id, "suspended", Some("ops")).unwrap();
    assert_eq!(db.sql("SELECT state FROM keygate_keys"), "suspended");
    store.close().unwrap();
}

/// An admin transaction spans several backend calls; reads of the audit trail
/// from another thread (as the maintenance thread's purge runs beside the
/// JavaScript thread) wait for it to end rather than run inside it. Before,
/// `verifyAudit` failed with 25001 about one run in three, and its COMMIT could
/// end another thread's write early.
#[test]
fn reads_from_another_thread_never_run_inside_an_open_admin_transaction() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    let written = common::audit_reads_beside_admin_calls(&store);
    let report = store.verify_audit().unwrap();
    assert!(report.ok && report.entries == written, "{report:?}");
    assert_eq!(db.sql("SELECT count(*), min(version), max(version) FROM keygate_changes"), "200|1|200");
    store.close().unwrap();
}

/// An in-memory store with a user and `n` active keys; the secret of the last one.
fn store_of_keys(n: usize) -> (KeyStore, String) {
    let store = KeyStore::in_memory(Options::default()).unwrap();
    store.put_user(&UserInput { id: "svc".into(), rights: vec!["*:*".into()], ..Default::default() }, None).unwrap();
    let mut secret = String::new();
    for i in 0..n {
        let new = NewKey {
            user_id: "svc".into(),
            description: format!("key {i}"),
            expires_at: Some(keygate_core::internals::system_now() + DAY),
            rules: vec![],
            state: None,
        };
        secret = store.create_key(&new, None).unwrap().secret;
    }
    (store, secret)
}

/// Keys in the copy: sending them all in one round trip takes seconds, far over the timeout below.
const LARGE_COPY_KEYS: usize = 30_000;
/// Each round trip of the copy's transaction must finish within this.
const SHORT_STATEMENT_TIMEOUT_MS: f64 = 500.0;

#[test]
fn a_large_copy_is_one_transaction_bounded_by_its_progress_not_its_size() {
    let Some(db) = Db::new() else { return };
    let (source, secret) = store_of_keys(LARGE_COPY_KEYS);
    let options = || Options { statement_timeout_ms: Some(SHORT_STATEMENT_TIMEOUT_MS), ..Default::default() };
    let target = KeyStore::open(&db.url(), options()).unwrap();
    let started = Instant::now();
    let report = KeyStore::copy(&source, &target).unwrap();
    // Reported, not asserted: what the old single round trip would have had to fit in the timeout.
    eprintln!("copied {} keys in {:?} (statement timeout {SHORT_STATEMENT_TIMEOUT_MS} ms)", report.keys, started.elapsed());
    assert_eq!(report.keys, LARGE_COPY_KEYS);
    assert_eq!(reason(&target, &secret), Reason::Allowed);
    assert_eq!(db.sql("SELECT count(*) FROM keygate_keys"), LARGE_COPY_KEYS.to_string());
    target.close().unwrap();
    let reopened = KeyStore::open(&db.url(), options()).unwrap();
    assert_eq!(reopened.key_count(), LARGE_COPY_KEYS);
    assert_eq!(reason(&reopened, &secret), Reason::Allowed);
    reopened.close().unwrap();
}

/// Entries of a long audit trail (rows written by SQL: a chain that breaks at entry 2).
const LONG_TRAIL: i64 = 200_000;

/// Reading the audit trail is bounded by its progress, as opening is: a trail far longer
/// than one statement timeout's worth of rows is listed, verified and copied, never
/// `STORE_UNAVAILABLE` for its length.
#[test]
fn a_long_audit_trail_is_read_in_full_whatever_the_statement_timeout() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    store.put_user(&UserInput { id: "u0".into(), ..Default::default() }, None).unwrap();
    store.close().unwrap();
    db.sql(&format!(
        "INSERT INTO keygate_audit SELECT g, 1800000000000 + g, 'actor-' || g, 'putUser', NULL, 'user-' || g,
           '{{\"created\":{{\"rights\":[\"session:*\",\"data:entityBrowseRecords2\"],\"roles\":[\"reader\"],\"status\":\"active\"}}}}',
           sha256(g::text::bytea) FROM generate_series(2, {LONG_TRAIL}) g;
         UPDATE keygate_meta SET audit_seq = {LONG_TRAIL}"
    ));
    let store = KeyStore::open(&db.url(), Options { statement_timeout_ms: Some(100.0), ..Default::default() }).unwrap();
    let all = keygate_core::AuditQuery { limit: Some(usize::MAX), ..Default::default() };
    assert_eq!(store.audit(&all).unwrap().len(), LONG_TRAIL as usize);
    let report = store.verify_audit().unwrap();
    assert_eq!((report.ok, report.first_bad_seq), (false, Some(2)), "{report:?}");
    // The copy reads the whole trail, then refuses it for what verification found.
    let error = KeyStore::copy(&store, &KeyStore::in_memory(Options::default()).unwrap()).unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidArgument, "{error}");
    assert!(error.message.contains("fails verification"), "{error}");
    store.close().unwrap();
}

/// An audit query is read in batches of rows found from where the last ended: across their
/// edges it gives what one statement would, in order, with every filter and `beforeSeq`.
#[test]
fn audit_queries_longer_than_a_batch_return_every_entry_in_order() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    store.put_user(&UserInput { id: "u0".into(), ..Default::default() }, None).unwrap();
    store.close().unwrap();
    const ENTRIES: u64 = 3_500;
    db.sql(&format!(
        "INSERT INTO keygate_audit SELECT g, 1800000000000 + g, 'actor-' || (g % 4), 'putUser', NULL, 'user-' || (g % 3), '{{}}',
           sha256(g::text::bytea) FROM generate_series(2, {ENTRIES}) g;
         UPDATE keygate_meta SET audit_seq = {ENTRIES}"
    ));
    let store = open(&db.url()).unwrap();
    let seqs = |query: keygate_core::AuditQuery| store.audit(&query).unwrap().into_iter().map(|e| e.seq).collect::<Vec<_>>();
    let expected = |keep: &dyn Fn(u64) -> bool, before: u64, limit: usize| -> Vec<u64> {
        (2..before.min(ENTRIES + 1)).rev().filter(|&g| keep(g)).take(limit).collect()
    };
    let all = keygate_core::AuditQuery { limit: Some(usize::MAX), ..Default::default() };
    let mut everything = expected(&|_| true, u64::MAX, usize::MAX);
    everything.push(1);
    assert_eq!(seqs(all.clone()), everything, "the whole trail, newest first");
    // Limits at and around the batch size, and past two batches.
    for limit in [999, 1_000, 1_001, 2_000, 2_345] {
        let query = keygate_core::AuditQuery { limit: Some(limit), ..Default::default() };
        assert_eq!(seqs(query), expected(&|_| true, u64::MAX, limit), "limit {limit}");
    }
    let by_user =
        keygate_core::AuditQuery { user_id: Some("user-1".into()), limit: Some(1_100), before_seq: Some(3_400), ..Default::default() };
    assert_eq!(seqs(by_user), expected(&|g| g % 3 == 1, 3_400, 1_100));
    let by_actor = keygate_core::AuditQuery {
        actor: Some("ACTOR-2".into()),
        limit: Some(usize::MAX),
        since: Some(1_800_000_000_500),
        ..Default::default()
    };
    assert_eq!(seqs(by_actor), expected(&|g| g % 4 == 2 && g >= 500, u64::MAX, usize::MAX));
    store.close().unwrap();
}

#[test]
fn a_large_copy_refused_after_its_first_batches_leaves_the_target_empty() {
    let Some(db) = Db::new() else { return };
    let (source, secret) = store_of_keys(3_000);
    let target = open(&db.url()).unwrap();
    // Refuses a key row well after the first batches of the transaction were sent and written.
    db.sql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.seq > 2500 THEN RAISE EXCEPTION 'refused by a trigger'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON keygate_keys FOR EACH ROW EXECUTE FUNCTION refuse();",
    );
    let error = KeyStore::copy(&source, &target).unwrap_err();
    assert_eq!(error.code, ErrorCode::StoreIo, "{error}");
    assert_eq!(db.sql("SELECT count(*) FROM keygate_keys"), "0");
    assert_eq!(db.sql("SELECT count(*) FROM keygate_users"), "0");
    assert_eq!(db.sql("SELECT count(*) FROM keygate_audit"), "0");
    assert_eq!(target.key_count(), 0);
    assert_eq!(reason(&target, &secret), Reason::UnknownKey);
    db.sql("DROP TRIGGER refuse ON keygate_keys");
    assert_eq!(KeyStore::copy(&source, &target).unwrap().keys, 3_000);
    assert_eq!(reason(&target, &secret), Reason::Allowed);
    target.close().unwrap();
}

/// A failover to a replica that missed the last commit keeps the epoch, and the
/// next commit takes the lost commit's version: only the change log's marks tell
/// the two histories apart. A process that applied the lost commit reads the
/// whole state afresh instead of keeping a key the database no longer has. The
/// follower is cut off (a proxy that stops forwarding) while the history is
/// replaced, so that it sees only the end: the same version, another mark.
#[test]
fn a_lost_commit_whose_version_is_taken_again_is_noticed_by_its_mark() {
    let Some(db) = Db::new() else { return };
    let a = open(&db.url()).unwrap();
    let (_, kept) = seed(&a);
    let proxy = Proxy::start();
    let follower = KeyStore::open(&proxy.url(&db), Options { fail_closed_after_ms: Some(30_000.0), ..Default::default() }).unwrap();
    let other = open(&db.url()).unwrap();
    let before = db.sql("SELECT version || ',' || audit_seq || ',''' || audit_hash || ''',''' || mark || '''' FROM keygate_meta");
    let ids_before = db.sql("SELECT string_agg('''' || encode(id, 'hex') || '''', ',') FROM keygate_keys");
    let lost = a
        .create_key(
            &NewKey { user_id: "svc".into(), description: "lost".into(), expires_at: Some(far()), rules: vec![], state: None },
            None,
        )
        .unwrap()
        .secret;
    wait_for(&follower, &lost, Reason::Allowed);
    a.close().unwrap();

    proxy.forwarding.store(false, Ordering::SeqCst);
    // The promoted replica: as before the lost commit, same epoch; no notification.
    let (version, rest) = before.split_once(',').unwrap();
    let (seq, rest) = rest.split_once(',').unwrap();
    let (hash, mark) = rest.split_once(',').unwrap();
    db.sql(&format!(
        "BEGIN; DELETE FROM keygate_changes WHERE version > {version}; DELETE FROM keygate_audit WHERE seq > {seq};
         DELETE FROM keygate_keys WHERE encode(id, 'hex') NOT IN ({ids_before});
         UPDATE keygate_meta SET version = {version}, audit_seq = {seq}, audit_hash = {hash}, mark = {mark}; COMMIT"
    ));
    // A host that writes on the new primary takes the lost version.
    let taken = other
        .create_key(&NewKey { user_id: "svc".into(), description: "new".into(), expires_at: Some(far()), rules: vec![], state: None }, None)
        .unwrap()
        .secret;
    let lost_version = version.parse::<i64>().unwrap() + 1;
    assert_eq!(db.sql("SELECT version FROM keygate_meta"), lost_version.to_string(), "the lost version, taken again");
    proxy.forwarding.store(true, Ordering::SeqCst);

    wait_for(&follower, &taken, Reason::Allowed);
    wait_for(&follower, &lost, Reason::UnknownKey);
    assert_eq!(reason(&follower, &kept), Reason::Allowed);
    let ids = |s: &KeyStore| s.list_keys(&Default::default()).unwrap().into_iter().map(|k| k.id).collect::<Vec<_>>();
    assert_eq!(ids(&follower), ids(&other));
    follower.close().unwrap();
    other.close().unwrap();
}

fn far() -> i64 {
    keygate_core::internals::system_now() + 30 * common::world::DAY
}

#[test]
fn a_schema_1_database_is_upgraded_at_open_and_keeps_working() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    let (id, secret) = seed(&store);
    store.close().unwrap();
    db.sql("ALTER TABLE keygate_meta DROP COLUMN mark; ALTER TABLE keygate_changes DROP COLUMN mark; UPDATE keygate_meta SET schema_version = 1");
    let store = open(&db.url()).unwrap();
    assert_eq!(db.sql("SELECT schema_version FROM keygate_meta"), "2");
    assert_eq!(reason(&store, &secret), Reason::Allowed);
    let follower = open(&db.url()).unwrap();
    store.set_state(&id, "revoked", None).unwrap();
    wait_for(&follower, &secret, Reason::Revoked);
    assert!(store.verify_audit().unwrap().ok);
    store.close().unwrap();
    follower.close().unwrap();
}

/// A keygate from before marks (schema 1), still running against a database a newer one
/// upgraded, writes change rows without a mark. Processes of this one read the whole state
/// afresh after each, and say so naming the cause, not "another history" (a restore or a
/// failover the operator would look for in vain).
#[test]
fn a_change_without_a_mark_from_an_older_keygate_still_running_is_named() {
    let Some(db) = Db::new() else { return };
    let (options, seen) = reporting();
    let store = KeyStore::open(&db.url(), options).unwrap();
    let (_, secret) = seed(&store);
    let version: i64 = db.sql("SELECT version FROM keygate_meta").parse().unwrap();
    // As a schema-1 keygate writes: the row, its change (the mark left to the column's default)
    // and the meta row's version; it knows nothing of the meta row's mark.
    db.sql(&format!(
        "BEGIN; INSERT INTO keygate_roles (name, rights) VALUES ('old', '{{session:*}}');
         INSERT INTO keygate_changes (version, token, at, changes) VALUES ({next}, 'old', 0, '[{{\"op\":\"putRole\",\"name\":\"old\",\"rights\":[\"session:*\"]}}]');
         UPDATE keygate_meta SET version = {next}; COMMIT",
        next = version + 1
    ));
    let start = Instant::now();
    while store.get_role("old").unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(10), "the older keygate's change not applied within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(reason(&store, &secret), Reason::Allowed);
    // Told by the background thread once the whole state is read afresh, just after checks see it.
    while seen.lock().unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "the change without a mark was not told within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    let told: Vec<(bool, String)> = seen.lock().unwrap().iter().map(|i| (i.recovered, i.error.message.clone())).collect();
    let named = format!("holds change {} without a mark, as only a keygate older than schema 2 writes", version + 1);
    assert!(matches!(told.first(), Some((false, lost)) if lost.contains(&named) && !lost.contains("another history")), "{told:?}");
    store.close().unwrap();
}

/// A process cut off while others wrote much catches up through a slow link:
/// reading what it missed is bounded by progress (each row within the statement
/// timeout), not by its size, so it neither fails closed nor gives up and reads
/// everything afresh after `failClosedAfterMs`.
#[test]
fn a_process_far_behind_on_a_slow_link_catches_up_without_failing_closed() {
    let Some(db) = Db::new() else { return };
    let writer = open(&db.url()).unwrap();
    let proxy = Proxy::start_paced(Some(500_000));
    let options = Options { statement_timeout_ms: Some(500.0), fail_closed_after_ms: Some(60_000.0), ..Default::default() };
    let follower = KeyStore::open(&proxy.url(&db), options).unwrap();
    proxy.forwarding.store(false, Ordering::SeqCst);
    // About 1.5 MB of change rows: some 3 s through the link.
    let rights: Vec<String> = (0..60).map(|i| format!("service{i:0>80}:api{i:0>20}*")).collect();
    for i in 0..200 {
        writer.put_role(&format!("role{i}"), &rights, None).unwrap();
    }
    let missed: i64 = db.sql("SELECT sum(length(changes)) FROM keygate_changes").parse().unwrap();
    assert!(missed > 1_000_000, "{missed} bytes missed");
    proxy.forwarding.store(true, Ordering::SeqCst);
    let start = Instant::now();
    while follower.list_roles().unwrap().len() < 200 {
        assert!(start.elapsed() < Duration::from_secs(30), "not caught up within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(follower.health().connected);
    follower.close().unwrap();
    writer.close().unwrap();
}

/// A role of the cluster with no privilege on keygate's tables: it can still
/// connect (PUBLIC's CONNECT), LISTEN and NOTIFY. Dropped at the end.
struct Intruder {
    role: String,
}

impl Intruder {
    fn new() -> Intruder {
        let mut bytes = [0u8; 6];
        getrandom::fill(&mut bytes).unwrap();
        let role = format!("keygate_intruder_{}", hex::encode(bytes));
        psql("postgres", &format!("CREATE ROLE {role} LOGIN"));
        Intruder { role }
    }

    /// Runs each of `sql` (one command each) as the intruder on `db`; returns psql's
    /// output, notifications included.
    fn sql(&self, db: &Db, sql: &[&str]) -> String {
        let (host, port) = (host(), port().to_string());
        let mut args = vec!["-X", "-h", &host, "-p", &port, "-U", &self.role, "-d", &db.name, "-v", "ON_ERROR_STOP=1", "-At"];
        for command in sql {
            args.extend(["-c", command]);
        }
        let out = Command::new("psql").args(args).output().expect("psql runs");
        assert!(out.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Intruder {
    fn drop(&mut self) {
        psql_quietly("postgres", &format!("DROP ROLE IF EXISTS {}", self.role));
    }
}

/// Another role of the cluster, with no privilege on keygate's tables, LISTENs
/// on keygate's channel, hears a revocation (epoch, version, mark and the
/// revoked key's record), and NOTIFYs the next version: the same key, active,
/// with the mark that change would have. No process may take it: the change log
/// in the database says revoked.
#[test]
fn a_forged_notification_from_another_role_never_reinstates_a_revoked_key() {
    let Some(db) = Db::new() else { return };
    let intruder = Intruder::new();
    let store = open(&db.url()).unwrap();
    let (id, secret) = seed(&store);
    // Listens while the revocation is made (psql prints what it heard after the sleep).
    let heard = std::thread::scope(|scope| {
        let listening = scope.spawn(|| intruder.sql(&db, &["LISTEN keygate", "SELECT pg_sleep(1.5)"]));
        std::thread::sleep(Duration::from_millis(500));
        store.set_state(&id, "revoked", None).unwrap();
        listening.join().unwrap()
    });
    assert_eq!(reason(&store, &secret), Reason::Revoked);
    let payload = heard
        .lines()
        .find_map(|line| line.strip_prefix("Asynchronous notification \"keygate\" with payload \""))
        .and_then(|rest| rest.rsplit_once("\" received from server process"))
        .map(|(payload, _)| payload.to_string())
        .unwrap_or_else(|| panic!("the revocation was heard: {heard}"));
    // The notification says where the log stands, and nothing of the change (any role may hear it).
    let digest = db.sql("SELECT encode(digest, 'hex') FROM keygate_keys");
    assert!(!payload.contains(&digest) && !payload.contains("svc"), "a notification carries a key's record: {payload}");
    let mut parts = payload.splitn(4, ' ');
    let (epoch, version, mark) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    // The revoked key's record (its holder knows it, or an earlier keygate sent it in notifications).
    let json = db.sql("SELECT changes FROM keygate_changes ORDER BY version DESC LIMIT 1");
    let forged_version = version.parse::<i64>().unwrap() + 1;
    let forged_json =
        json.replace("\"state\": \"revoked\"", "\"state\": \"active\"").replace("\"state\":\"revoked\"", "\"state\":\"active\"");
    assert_ne!(forged_json, json);
    let forged = format!("{epoch} {forged_version} {} {forged_json}", mark_after(mark, forged_version, &forged_json));
    intruder.sql(&db, &[&format!("SELECT pg_notify('keygate', '{}')", forged.replace('\'', "''"))]);
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(600) {
        assert_eq!(reason(&store, &secret), Reason::Revoked, "a forged notification reinstated the key");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(db.sql("SELECT state FROM keygate_keys"), "revoked");
    store.close().unwrap();
}

/// The network stops answering (half-open) while the store still answers from
/// memory (failClosedAfterMs not reached): an admin call is STORE_UNAVAILABLE,
/// bounded by the timeouts. Prints how long it took against them.
#[test]
fn an_admin_call_on_a_half_open_connection_is_bounded_by_the_timeouts() {
    let Some(db) = Db::new() else { return };
    let proxy = Proxy::start();
    let store = KeyStore::open(&proxy.url(&db), bounded(60_000.0, 1000.0)).unwrap();
    seed(&store);
    proxy.forwarding.store(false, Ordering::SeqCst);
    for _ in 0..3 {
        let started = Instant::now();
        let error = store.put_role("ops", &[], None).unwrap_err();
        let took = started.elapsed();
        eprintln!("admin call on a half-open connection: {took:?} ({})", error.message);
        assert_eq!(error.code, ErrorCode::StoreUnavailable, "{error}");
        // The listener thread may hold the store waiting on the same server (a statement
        // timeout), then the kept connection times out, then a new one cannot connect.
        assert!(took < Duration::from_millis(3_500), "2 × statement 1000 ms + connect 1000 ms, took {took:?}");
    }
    store.close().unwrap();
}

/// `close` waits for its connections to say goodbye, but not for a server that stopped
/// answering: it runs on the host's event loop.
#[test]
fn closing_the_store_on_a_half_open_connection_is_bounded() {
    let Some(db) = Db::new() else { return };
    let proxy = Proxy::start();
    let store = KeyStore::open(&proxy.url(&db), bounded(60_000.0, 500.0)).unwrap();
    let (_, secret) = seed(&store);
    // A use to flush at close, then a heartbeat left unanswered.
    assert_eq!(reason(&store, &secret), Reason::Allowed);
    proxy.forwarding.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(400));
    let started = Instant::now();
    store.close().unwrap();
    let took = started.elapsed();
    eprintln!("close on a half-open connection: {took:?}");
    // Each wait is bounded: the flush (it may first wait for the write connection), the
    // listener thread's round (its statements or a connect attempt), 500 ms each; then
    // connections that cannot say goodbye are cut after 200 ms. Measured: 1.5–2.6 s.
    assert!(took < Duration::from_millis(4_000), "took {took:?}");
    assert!(store.is_closed());
}

/// Each connection through a [`goodbye_proxy`]: whether the client sent LISTEN, and
/// whether the last thing it sent before its end was Terminate (a goodbye).
#[derive(Default)]
struct Goodbyes {
    accepted: usize,
    ended: Vec<(bool, bool)>,
}

/// A proxy that forwards everything and notes how each connection ended.
fn goodbye_proxy() -> (u16, Arc<std::sync::Mutex<Goodbyes>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Goodbyes::default()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(mut server) = TcpStream::connect(server()) else { continue };
            record.lock().unwrap().accepted += 1;
            let (mut client_out, mut server_in) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let record = record.clone();
            std::thread::spawn(move || {
                let (mut listens, mut tail) = (false, Vec::new());
                let mut buf = [0u8; 16384];
                while let Ok(n @ 1..) = client.read(&mut buf) {
                    listens |= buf[..n].windows(6).any(|w| w == b"LISTEN");
                    tail.extend_from_slice(&buf[..n]);
                    tail.drain(..tail.len().saturating_sub(5));
                    if server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                record.lock().unwrap().ended.push((listens, tail == [b'X', 0, 0, 0, 4]));
                let _ = server.shutdown(std::net::Shutdown::Both);
            });
            std::thread::spawn(move || std::io::copy(&mut server_in, &mut client_out));
        }
    });
    (port, seen)
}

/// A write connection still waiting for an answer at close (its statement timed out on a
/// lock held elsewhere) is cut after 200 ms; the listener, which can say goodbye within a
/// round trip, still does. It was cut unheard: the write connection's wait used up the
/// deadline before the listener's runtime ran at all.
#[test]
fn close_says_goodbye_on_the_listener_while_the_write_connection_awaits_an_answer() {
    let Some(db) = Db::new() else { return };
    let (port, seen) = goodbye_proxy();
    let url = format!("postgres://{}@127.0.0.1:{port}/{}?sslmode=disable", user(), db.name);
    let store = KeyStore::open(&url, Options { statement_timeout_ms: Some(500.0), ..Default::default() }).unwrap();
    let (id, _) = seed(&store);
    let holder = db.hold_meta_row();
    let refused = store.set_state(&id, "suspended", None).unwrap_err();
    assert_eq!(refused.code, ErrorCode::StoreUnavailable, "{refused}");
    let started = Instant::now();
    store.close().unwrap();
    let took = started.elapsed();
    // Every connection has ended (said goodbye or been cut) once close returns.
    let start = Instant::now();
    loop {
        let seen = seen.lock().unwrap();
        if seen.ended.len() == seen.accepted {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "a connection never ended: {:?}", seen.ended);
        drop(seen);
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(holder);
    let ended = seen.lock().unwrap().ended.clone();
    assert!(ended.iter().any(|&(listens, goodbye)| listens && goodbye), "the listener was cut without a goodbye: {ended:?}");
    assert!(took < Duration::from_secs(2), "close took {took:?}");
}

/// An admin call that gives up waiting for the meta row's lock (held by another
/// session) leaves nothing of it queued on the server: the server ends the wait too,
/// instead of granting the lock to a backend whose call failed long before, once the
/// holder lets go. The store goes on once the lock is free.
#[test]
fn an_admin_call_that_times_out_on_a_lock_leaves_no_wait_on_the_server() {
    let Some(db) = Db::new() else { return };
    let store = KeyStore::open(&db.url(), Options { statement_timeout_ms: Some(1000.0), ..Default::default() }).unwrap();
    let (id, _) = seed(&store);
    let holder = db.hold_meta_row();
    let started = Instant::now();
    let refused = store.set_state(&id, "suspended", None).unwrap_err();
    assert_eq!(refused.code, ErrorCode::StoreUnavailable, "{refused}");
    assert!(refused.message.contains("for a lock another connection holds"), "{refused}");
    // One wait of 900 ms, not a second one on a new connection (1.8 s at least).
    assert!(started.elapsed() < Duration::from_millis(1400), "the call waited {:?}", started.elapsed());
    let waiting = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'keygate' AND wait_event_type = 'Lock'",
        db.name
    );
    let start = Instant::now();
    while db.sql(&waiting) != "0" {
        assert!(start.elapsed() < Duration::from_secs(3), "a backend of the failed call still waits for the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(holder);
    // A key's row held elsewhere: the wait ends in the write itself, sent with its COMMIT,
    // and the error says plainly that nothing changed (the server aborted the transaction).
    let key_row = db.hold_rows_of("keygate_keys");
    let refused = store.set_state(&id, "suspended", None).unwrap_err();
    assert_eq!(refused.code, ErrorCode::StoreUnavailable, "{refused}");
    assert!(refused.message.contains("for a lock another connection holds"), "{refused}");
    assert!(!refused.message.contains("may or may not have been committed"), "{refused}");
    assert_eq!(db.sql("SELECT state FROM keygate_keys"), "active");
    drop(key_row);
    store.set_state(&id, "suspended", None).unwrap();
    assert_eq!(db.sql("SELECT state FROM keygate_keys"), "suspended");
}

/// One thread makes admin calls without pause while another closes the store:
/// no panic, no hang; every call after close fails, and nothing acknowledged is lost.
#[test]
fn closing_the_store_while_another_thread_writes_loses_nothing_acknowledged() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    seed(&store);
    let acknowledged = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut acknowledged = Vec::new();
            for i in 0..10_000 {
                match store.put_role(&format!("r{i}"), &["api:*".into()], None) {
                    Ok(_) => acknowledged.push(format!("r{i}")),
                    Err(_) => break,
                }
            }
            acknowledged
        });
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        store.close().unwrap();
        assert!(started.elapsed() < Duration::from_secs(6), "close waited {:?}", started.elapsed());
        writer.join().unwrap()
    });
    assert!(!acknowledged.is_empty());
    assert!(store.put_role("late", &[], None).is_err());
    let stored = db.sql("SELECT count(*) FROM keygate_roles WHERE name LIKE 'r%'").parse::<usize>().unwrap();
    assert!(stored >= acknowledged.len(), "acknowledged {} roles, {stored} stored", acknowledged.len());
    let reopened = open(&db.url()).unwrap();
    assert!(reopened.verify_audit().unwrap().ok);
    reopened.close().unwrap();
}

/// Opened and closed a moment later (as `keygate init` on a URL does): the maintenance
/// thread's first purge, cut short by the close, is no incident. It was reported
/// ("purge failed: STORE_IO: the store is closed") in some runs, on stderr for the CLI.
#[test]
fn closing_right_after_open_reports_no_incident() {
    let Some(db) = Db::new() else { return };
    open(&db.url()).unwrap().close().unwrap();
    for i in 0..30 {
        let (options, seen) = reporting();
        let store = KeyStore::open(&db.url(), options).unwrap();
        // The first purge comes as the maintenance thread starts, within milliseconds of opening.
        std::thread::sleep(Duration::from_millis(2 * i));
        store.close().unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let seen = seen.lock().unwrap();
        assert!(seen.is_empty(), "{:?}", seen.iter().map(|i| i.error.message.clone()).collect::<Vec<_>>());
    }
}

/// Any role that can connect may take keygate's schema lock (advisory locks need
/// no privilege): opening then fails within its timeouts, and the error says
/// what it was waiting for, not the ROLLBACK that followed.
#[test]
fn a_schema_lock_held_elsewhere_fails_open_naming_the_lock() {
    let Some(db) = Db::new() else { return };
    let holder = db
        .hold(
            "SELECT pg_advisory_lock(1801912321), pg_sleep(30)",
            // This database's only: other tests' stores take the same lock in theirs as they open.
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()",
        );
    let options = Options { statement_timeout_ms: Some(500.0), ..Default::default() };
    let Err(refused) = KeyStore::open(&db.url(), options) else { panic!("opened while the schema lock was held") };
    drop(holder);
    assert_eq!(refused.code, ErrorCode::StoreUnavailable);
    assert!(refused.message.contains("locking the schema"), "{}", refused.message);
}

/// Long-expired keys are purged (by the listener thread, soon after open) in writes of
/// at most 10,000 keys: a store holding millions of them would otherwise plan, audit and
/// encode them all while holding `keygate_meta`'s row, past the server's idle bound.
#[test]
fn a_purge_of_many_keys_is_made_in_writes_of_at_most_ten_thousand() {
    const EXPIRED: usize = 25_001;
    let Some(db) = Db::new() else { return };
    let (source, kept) = common::store_with_expiring_keys(EXPIRED);
    let target = open(&db.url()).unwrap();
    KeyStore::copy(&source, &target).unwrap();
    target.close().unwrap();
    let version_before: i64 = db.sql("SELECT version FROM keygate_meta").parse().unwrap();

    let started = Instant::now();
    let store = KeyStore::open(&db.url(), Options { now: Some(common::PURGE_T0 + 9 * DAY), ..Default::default() }).unwrap();
    while store.key_count() > 1 {
        assert!(started.elapsed() < Duration::from_secs(60), "{} keys left", store.key_count());
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("purged {EXPIRED} keys within {:?} of opening", started.elapsed());
    assert!(store.get_key(&kept).unwrap().is_some());
    // 10,000 + 10,000 + 5,001: three writes, each a version of the change log.
    let writes = db.sql(&format!("SELECT count(*) FROM keygate_changes WHERE version > {version_before}"));
    assert_eq!(writes, "3");
    let purges = db.sql("SELECT count(*) FROM keygate_audit WHERE action = 'purgeExpired'");
    assert_eq!(purges, EXPIRED.to_string());
    assert!(store.verify_audit().unwrap().ok);
    store.close().unwrap();
}

/// A process 99,000 changes behind (written by another process that sent no
/// notification: its heartbeat finds them) catches up through the change rows within
/// a statement timeout of 100 ms, neither failing closed nor reporting an incident: the
/// rows stream in version order. The join it used to read them with sorted every row
/// before sending the first, which took longer than that.
#[test]
fn a_process_far_behind_catches_up_within_a_short_statement_timeout() {
    const BEHIND: i64 = 99_000;
    let Some(db) = Db::new() else { return };
    let rights: Vec<String> = (0..10).map(|i| format!("service{i:0>50}:api*")).collect();
    let writer = open(&db.url()).unwrap();
    writer.put_role("r", &rights, None).unwrap();
    writer.close().unwrap();
    // The follower's own COMMIT below waits for no disk flush: on a loaded machine (other tests
    // creating databases, each a checkpoint) one took over 100 ms, which is not what this test is about.
    db.sql(&format!("ALTER DATABASE {} SET synchronous_commit = off", db.name));
    let (options, incidents) = reporting();
    let follower = KeyStore::open(&db.url(), Options { statement_timeout_ms: Some(100.0), ..options }).unwrap();
    // The last change written again and again under the next versions, each with the mark keygate would give it.
    db.sql(&format!(
        "WITH RECURSIVE chain(version, mark, json) AS (
           SELECT m.version, m.mark, c.changes FROM keygate_meta m JOIN keygate_changes c ON c.version = m.version
           UNION ALL
           SELECT version + 1, encode(substr(sha256(convert_to(mark || ' ' || (version + 1) || ' ' || json, 'UTF8')), 1, 16), 'hex'), json
           FROM chain WHERE version < (SELECT version + {BEHIND} FROM keygate_meta)
         )
         INSERT INTO keygate_changes (version, token, at, changes, mark)
         SELECT version, 'another process', 0, json, mark FROM chain WHERE version > (SELECT version FROM keygate_meta);
         UPDATE keygate_meta SET version = c.version, mark = c.mark FROM (SELECT version, mark FROM keygate_changes ORDER BY version DESC LIMIT 1) c"
    ));
    let bytes: i64 = db.sql("SELECT sum(length(changes)) FROM keygate_changes").parse().unwrap();
    let started = Instant::now();
    // A write made now (most often before the heartbeat has looked) catches up first, inside its transaction.
    follower.put_user(&UserInput { id: "after".into(), ..Default::default() }, None).unwrap();
    let target: i64 = db.sql("SELECT version FROM keygate_meta").parse().unwrap();
    while follower.health().applied_version != target {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not caught up within 60 s: {:?}, {:?}",
            follower.health(),
            incidents.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("caught up with {BEHIND} changes ({bytes} bytes) in {:?}", started.elapsed());
    assert!(follower.health().connected);
    assert_eq!(follower.get_role("r").unwrap().unwrap().rights, rights);
    assert!(incidents.lock().unwrap().is_empty(), "{:?}", incidents.lock().unwrap());
    follower.close().unwrap();
}

// A running process must not keep answering from a state the database no longer holds once
// it had a chance to look: after a failover that lost commits, or a restore of a backup of
// the same store (same epoch, same database), a key the database says is revoked must not
// stay allowed.

/// What a process that opens the database now answers.
fn fresh(db: &Db, secret: &str) -> Reason {
    let store = open(&db.url()).unwrap();
    let answer = reason(&store, secret);
    store.close().unwrap();
    answer
}

/// Two stores to copy from, holding the same key (same secret): active in the first,
/// revoked in the second. Returns them and the secret.
fn sources() -> (KeyStore, KeyStore, String) {
    let active = KeyStore::in_memory(Options::default()).unwrap();
    let (id, secret) = common::seed_with(&active, &["session:*"]);
    let revoked = KeyStore::in_memory(Options::default()).unwrap();
    KeyStore::copy(&active, &revoked).unwrap();
    revoked.set_state(&id, "revoked", Some("alice")).unwrap();
    assert_eq!(reason(&active, &secret), Reason::Allowed);
    assert_eq!(reason(&revoked, &secret), Reason::Revoked);
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
    let first = open(&db.url()).unwrap();
    let proxy = Proxy::start();
    let follower = KeyStore::open(&proxy.url(&db), Options { fail_closed_after_ms: Some(30_000.0), ..Default::default() }).unwrap();
    let before = db.sql("SELECT version || ',' || audit_seq || ',''' || audit_hash || ''',''' || mark || '''' FROM keygate_meta");

    KeyStore::copy(&active, &first).unwrap();
    common::wait_for_answer("the follower, after the copy", &follower, &secret, Reason::Allowed, Duration::from_secs(5));
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
    let other = open(&db.url()).unwrap();
    KeyStore::copy(&revoked, &other).unwrap();
    assert_eq!(reason(&other, &secret), Reason::Revoked);
    other.close().unwrap();
    let taken_position = db.position();
    proxy.forwarding.store(true, Ordering::SeqCst);

    let want = fresh(&db, &secret);
    assert_eq!(want, Reason::Revoked);
    // The heartbeat timed out (about a second), the follower reconnects with backoff (up to 2 s)
    // and catches up: it has had every chance to look well within 10 s.
    common::wait_for_answer(
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
    let host = open(&db.url()).unwrap();
    db.back_up("empty");
    KeyStore::copy(&revoked, &host).unwrap();
    db.back_up("with_revoked");
    host.close().unwrap();

    db.restore("empty");
    let host = open(&db.url()).unwrap();
    KeyStore::copy(&active, &host).unwrap();
    let follower = open(&db.url()).unwrap();
    assert_eq!(reason(&follower, &secret), Reason::Allowed);
    let followed = db.position();

    db.restore("with_revoked");
    let restored = db.position();
    let want = fresh(&db, &secret);
    assert_eq!(want, Reason::Revoked);
    common::wait_for_answer(
        &format!("the follower, at {followed:?} before the restore, the restored backup at {restored:?}"),
        &follower,
        &secret,
        want,
        Duration::from_secs(3),
    );
    common::wait_for_answer("the copying host", &host, &secret, want, Duration::from_secs(3));
    follower.close().unwrap();
    host.close().unwrap();
}

/// The control: a backup of the same store restored in place after ordinary admin calls
/// (change rows, so marks that differ) at the same version is noticed by its mark.
#[test]
fn a_restored_backup_with_other_changes_at_the_same_version_is_noticed() {
    let Some(db) = Db::new() else { return };
    let host = open(&db.url()).unwrap();
    let (id, secret) = common::seed_with(&host, &["session:*"]);
    db.back_up("seeded");
    host.set_state(&id, "revoked", Some("alice")).unwrap();
    db.back_up("with_revoked");
    db.restore("seeded");
    // The same version as the backup with the key revoked, by another change.
    let other = open(&db.url()).unwrap();
    other.set_state(&id, "suspended", Some("bob")).unwrap();
    let (options, seen) = reporting();
    let follower = KeyStore::open(&db.url(), options).unwrap();
    assert_eq!(reason(&follower, &secret), Reason::Suspended);
    other.set_state(&id, "active", Some("bob")).unwrap();
    common::wait_for_answer("the follower, before the restore", &follower, &secret, Reason::Allowed, Duration::from_secs(3));
    // One version behind the follower: the same version after one more change in the backup.
    db.restore("with_revoked");
    host.put_role("r", &["session:*".into()], Some("alice")).unwrap();
    let want = fresh(&db, &secret);
    assert_eq!(want, Reason::Revoked);
    common::wait_for_answer("the follower", &follower, &secret, want, Duration::from_secs(3));
    // The recovery is told just after the reload is applied (and checks see it): waited for.
    let start = Instant::now();
    while seen.lock().unwrap().len() < 2 && start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(2));
    }
    // Told, though it reloaded at once: changes it had applied (the key made active) are undone.
    let told: Vec<(bool, String)> = seen.lock().unwrap().iter().map(|i| (i.recovered, i.error.message.clone())).collect();
    assert!(matches!(told.as_slice(), [(false, lost), (true, _)] if lost.contains("another history")), "{told:?}");
    for store in [host, other, follower] {
        store.close().unwrap();
    }
}

/// A row deleted by other means (a DBA's `DELETE`, which running processes do not hear of) is
/// still deleted through keygate: its `DELETE` finds no row, which is no trigger dropping the
/// write, and the deletion reaches every process.
#[test]
fn a_row_deleted_by_hand_is_deleted_through_keygate_all_the_same() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    let follower = open(&db.url()).unwrap();
    let (id, secret) = seed(&store);
    wait_for(&follower, &secret, Reason::Allowed);
    db.sql("DELETE FROM keygate_keys");
    assert!(store.delete_key(&id, None).unwrap());
    assert_eq!(reason(&store, &secret), Reason::UnknownKey);
    wait_for(&follower, &secret, Reason::UnknownKey);
    db.sql("DELETE FROM keygate_users");
    assert!(store.delete_user("svc", None).unwrap());
    store.put_role("reader", &["session:*".into()], None).unwrap();
    db.sql("DELETE FROM keygate_roles");
    assert!(store.delete_role("reader", None).unwrap());
    follower.close().unwrap();
    store.close().unwrap();
}

/// A copy into a store other hosts follow (`keygate copy` while they run) is no failure: it
/// writes no change row, so they read the whole state afresh, as designed; onError hears nothing.
#[test]
fn a_copy_into_a_followed_store_is_not_reported_as_a_failure() {
    let Some(db) = Db::new() else { return };
    let (options, seen) = reporting();
    let follower = KeyStore::open(&db.url(), options).unwrap();
    let target = open(&db.url()).unwrap();
    let source = KeyStore::in_memory(Options::default()).unwrap();
    let (_, secret) = seed(&source);
    KeyStore::copy(&source, &target).unwrap();
    wait_for(&follower, &secret, Reason::Allowed);
    std::thread::sleep(Duration::from_millis(300));
    let told: Vec<String> = seen.lock().unwrap().iter().map(|i| i.error.message.clone()).collect();
    assert!(told.is_empty(), "{told:?}");
    for store in [follower, target] {
        store.close().unwrap();
    }
}

/// Rows of keygate_audit read through its primary key, and scans of its by-user and by-key
/// indexes, as the server's statistics count them (other sessions' counts arrive within
/// seconds: a backend sends them once idle).
fn audit_index_use(db: &Db) -> (i64, i64) {
    let row = db.sql(
        "SELECT coalesce(sum(idx_tup_read) FILTER (WHERE indexrelname = 'keygate_audit_pkey'), 0) || ' ' ||
                coalesce(sum(idx_scan) FILTER (WHERE indexrelname IN ('keygate_audit_by_user', 'keygate_audit_by_key')), 0)
         FROM pg_stat_user_indexes WHERE relname = 'keygate_audit'",
    );
    let (pkey, by) = row.split_once(' ').unwrap();
    (pkey.parse().unwrap(), by.parse().unwrap())
}

/// A user (or key) whose entries are all old, under 100,000 newer entries of others: a page of
/// its entries reads them through its index in `seq` order. With indexes on `user_id` and
/// `key_id` alone, the planner (which takes the user's 3% of the trail as spread evenly) walked
/// the primary key back from the newest entry, reading the whole trail for the page: 79 ms at
/// 200,000 entries, where SQLite's index (which holds the rowid, `seq`) reads 100 entries.
#[test]
fn a_page_of_one_users_or_keys_old_entries_does_not_walk_the_whole_trail() {
    let Some(db) = Db::new() else { return };
    let store = open(&db.url()).unwrap();
    db.sql(
        "INSERT INTO keygate_audit (seq, at, actor, action, key_id, user_id, detail, hash)
         SELECT s, 1800000000000 + s, 'admin', 'setState', CASE WHEN s <= 3000 THEN 'key_old' ELSE 'key_busy' END,
                CASE WHEN s <= 3000 THEN 'old' ELSE 'busy' END, 'null', decode(repeat('00', 32), 'hex')
         FROM generate_series(1, 103000) s;
         ANALYZE keygate_audit",
    );
    for query in [
        keygate_core::AuditQuery { user_id: Some("old".into()), limit: Some(100), ..Default::default() },
        keygate_core::AuditQuery { key_id: Some("key_old".into()), limit: Some(100), ..Default::default() },
    ] {
        let before = audit_index_use(&db);
        let page = store.audit(&query).unwrap();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), (2901..=3000).rev().collect::<Vec<u64>>());
        // Wait for the statistics of the read to arrive: one index or the other moved.
        let start = Instant::now();
        let after = loop {
            let now = audit_index_use(&db);
            if now != before || start.elapsed() > Duration::from_secs(20) {
                break now;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_ne!(after, before, "the server's statistics never counted the read");
        assert!(after.0 - before.0 < 1000, "{query:?} read {} entries through the primary key", after.0 - before.0);
    }
    store.close().unwrap();
}
