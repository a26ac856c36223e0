//! Another process with write access to keygate's PostgreSQL database damages it at
//! random: rows changed to values of any type keygate never writes (empty, huge, out of
//! range, NULL, arrays of other shapes), rows copied, deleted, columns dropped or retyped,
//! tables dropped, primary keys dropped (and rows stored twice), change-log rows of any JSON. The SQLite store's loader is fuzzed for
//! the same (`fuzz/`); this is its counterpart against the machine's real server, seeded
//! and repeatable (`KEYGATE_HOSTILE_SEED`, `KEYGATE_HOSTILE_CASES`).
//!
//! Whatever the damage: opening the store gives a store or `STORE_CORRUPT` (never a panic,
//! never `INTERNAL`), and a refused database is left exactly as it was; a store that opened
//! answers every read, and never allows a key whose own rows say it may not be used. A store
//! already running when the damage lands never panics nor reports `INTERNAL`.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pg::{mark_after, Db, TABLES};
use common::seeded::{env_number, Rng};
use keygate_core::{Call, ErrorCode, Incident, KeyStore, NewKey, Options, Reason, UserInput};

const DAY: i64 = 86_400_000;

// ---- what a hostile writer puts in each type of column -----------------------------

const NOW_MS: &str = "(extract(epoch from now()) * 1000)::bigint";

const TEXTS: &[&str] = &[
    "''",
    "' '",
    "'ghost'",
    "'svc'",
    "'ops'",
    "'reader'",
    "'active'",
    "'revoked'",
    "'suspended'",
    "'disabled'",
    "'ACTIVE'",
    "'active '",
    "repeat('a', 300)",
    "repeat('a', 100000)",
    "E'caf\\u00e9'",
    "'\u{1F980}'",
    "E'a\\nb'",
    "E'\\t'",
    "'kg'",
    "'kg_'",
    "'%s%n'",
    "'\"'",
    "'{}'",
    "'[]'",
    "'null'",
    "md5('x')",
    "'AAAA'",
    "'A'",
    "'AAAAA'",
    "'zz'",
    "(SELECT hint FROM keygate_keys ORDER BY seq DESC LIMIT 1)",
    "NULL",
];

const BIGINTS: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "-9223372036854775808",
    "9223372036854775807",
    "8640000000000000",
    "8640000000000001",
    "-8640000000000000",
    "-8640000000000001",
    NOW_MS,
    "(extract(epoch from now()) * 1000)::bigint + 86400000",
    "(extract(epoch from now()) * 1000)::bigint - 1",
    "2147483648",
    "(SELECT max(seq) FROM keygate_keys)",
    "NULL",
];

const INTEGERS: &[&str] = &["0", "1", "2", "3", "-1", "2147483647", "-2147483648", "NULL"];

const DOUBLES: &[&str] = &["'NaN'", "'Infinity'", "'-Infinity'", "-1", "0", "'-0'", "1", "1.5", "30", "730", "1e308", "NULL"];

const BYTEAS: &[&str] = &[
    "''::bytea",
    "'\\x00'::bytea",
    "decode(repeat('00', 15), 'hex')",
    "decode(repeat('ab', 16), 'hex')",
    "decode(repeat('ab', 17), 'hex')",
    "decode(repeat('00', 32), 'hex')",
    "decode(repeat('ff', 33), 'hex')",
    "sha256('x')",
    "(SELECT digest FROM keygate_keys ORDER BY seq LIMIT 1)",
    "(SELECT id FROM keygate_keys ORDER BY seq LIMIT 1)",
    "NULL",
];

const TEXT_ARRAYS: &[&str] = &[
    "'{}'",
    "'{\"\"}'",
    "'{NULL}'",
    "'{{a,b},{c,d}}'",
    "'[0:1]={session:*,admin:*}'",
    "array_fill('svc:api'::text, ARRAY[1001])",
    "array_fill('session:*'::text, ARRAY[3])",
    "'{\"*:*\"}'",
    "'{\"  session:* \"}'",
    "'{\"dav=GET /x\"}'",
    "'{\"dav=PROPFIND /dav/**\"}'",
    "'{\"ip=10.0.0.0/8\"}'",
    "'{\"ip=999.1.1.1\"}'",
    "'{\":\"}'",
    "'{\"session:*\",\"session:*\"}'",
    "'{ghost}'",
    "'{reader}'",
    "'{reader,reader}'",
    "array_fill('reader'::text, ARRAY[100])",
    "'{kg_abc}'",
    "ARRAY[repeat('a', 300)]",
    "NULL",
];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Bigint,
    Integer,
    Double,
    Bytea,
    TextArray,
}

fn values(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Text => TEXTS,
        Kind::Bigint => BIGINTS,
        Kind::Integer => INTEGERS,
        Kind::Double => DOUBLES,
        Kind::Bytea => BYTEAS,
        Kind::TextArray => TEXT_ARRAYS,
    }
}

/// keygate's tables: each column and its type, and the order rows are picked in.
fn columns(table: &str) -> (&'static [(&'static str, Kind)], &'static str) {
    use Kind::*;
    match table {
        "keygate_meta" => (
            &[
                ("schema_version", Integer),
                ("epoch", Text),
                ("version", Bigint),
                ("key_prefix", Text),
                ("max_lifetime_days", Double),
                ("audit_seq", Bigint),
                ("audit_hash", Text),
                ("mark", Text),
            ],
            "id",
        ),
        "keygate_roles" => (&[("name", Text), ("rights", TextArray)], "name"),
        "keygate_users" => (&[("id", Text), ("status", Text), ("rights", TextArray), ("roles", TextArray)], "id"),
        "keygate_keys" => (
            &[
                ("id", Bytea),
                ("seq", Bigint),
                ("user_id", Text),
                ("description", Text),
                ("state", Text),
                ("expires_at", Bigint),
                ("created_at", Bigint),
                ("updated_at", Bigint),
                ("last_used_at", Bigint),
                ("hint", Text),
                ("digest", Bytea),
                ("rules", TextArray),
            ],
            "seq",
        ),
        "keygate_changes" => (&[("version", Bigint), ("token", Text), ("at", Bigint), ("changes", Text), ("mark", Text)], "version"),
        _ => (
            &[
                ("seq", Bigint),
                ("at", Bigint),
                ("actor", Text),
                ("action", Text),
                ("key_id", Text),
                ("user_id", Text),
                ("detail", Text),
                ("hash", Bytea),
            ],
            "seq",
        ),
    }
}

/// The columns a check's answer hangs on.
const DECIDING: &[(&str, &str)] = &[
    ("keygate_keys", "state"),
    ("keygate_keys", "user_id"),
    ("keygate_keys", "expires_at"),
    ("keygate_keys", "digest"),
    ("keygate_keys", "hint"),
    ("keygate_keys", "rules"),
    ("keygate_users", "id"),
    ("keygate_users", "status"),
    ("keygate_users", "rights"),
    ("keygate_users", "roles"),
    ("keygate_roles", "name"),
    ("keygate_roles", "rights"),
];

/// What a retyped column becomes (`USING` its old value, as text or as something else).
const RETYPES: &[&str] = &[
    "text USING {c}::text",
    "varchar(5) USING left({c}::text, 5)",
    "integer USING 1",
    "numeric USING 1",
    "bytea USING '\\x01'::bytea",
    "text[] USING ARRAY[{c}::text]",
    "bigint[] USING ARRAY[1]",
    "boolean USING true",
    "jsonb USING to_jsonb({c})",
];

/// A row of `table` picked by its position (`n`): its `ctid`, so any row can be named.
fn row_of(table: &str, order: &str, n: usize) -> String {
    format!("ctid = (SELECT ctid FROM {table} ORDER BY {order} OFFSET {n} LIMIT 1)")
}

/// One damage a hostile writer makes.
#[derive(Debug)]
enum Damage {
    /// SQL run by psql in one transaction of its own.
    Sql(String),
    /// A change row (`changes`, its JSON) written after the last one, the meta row moved to
    /// it: with the mark keygate would give it (`marked`: a running store takes the row as the
    /// next change) or another. The mark depends on the meta row when the damage is made.
    LoggedChange { changes: String, marked: bool },
}

/// One random damage.
fn damage(rng: &mut Rng, change_json: &str) -> Damage {
    // Half the time a column a check's answer hangs on, else any column of any table.
    let (table, column) = if rng.below(2) == 0 {
        *rng.pick(DECIDING)
    } else {
        let table = *rng.pick(&TABLES);
        (table, rng.pick(columns(table).0).0)
    };
    let (cols, order) = columns(table);
    let kind = cols.iter().find(|(c, _)| *c == column).map_or(Kind::Text, |(_, kind)| *kind);
    let value = *rng.pick(values(kind));
    let null_first = if value == "NULL" { format!("ALTER TABLE {table} ALTER COLUMN {column} DROP NOT NULL; ") } else { String::new() };
    let sql = match rng.below(20) {
        0..=6 => format!("{null_first}UPDATE {table} SET {column} = {value} WHERE {}", row_of(table, order, rng.below(5))),
        7..=8 => format!("{null_first}UPDATE {table} SET {column} = {value}"),
        9 => format!("DELETE FROM {table} WHERE {}", row_of(table, order, rng.below(5))),
        10 => format!("DELETE FROM {table}"),
        11 => copied_row(rng, table),
        12 => format!("ALTER TABLE {table} DROP COLUMN {column}"),
        13 => format!("ALTER TABLE {table} ALTER COLUMN {column} TYPE {}", rng.pick(RETYPES).replace("{c}", column)),
        14 => match rng.below(4) {
            0 => format!("DROP TABLE {table}"),
            1 => format!("ALTER TABLE {table} RENAME TO {table}_old"),
            2 => format!("ALTER TABLE {table} ADD COLUMN extra text NOT NULL DEFAULT 'x'"),
            // Its rows copied too, half the time: a second meta row, a user or role stored twice.
            _ if rng.below(2) == 0 => format!("ALTER TABLE {table} DROP CONSTRAINT {table}_pkey"),
            _ => format!("ALTER TABLE {table} DROP CONSTRAINT {table}_pkey; INSERT INTO {table} SELECT * FROM {table}"),
        },
        15 => match rng.below(4) {
            0 => "UPDATE keygate_meta SET version = version + 1".into(),
            1 => "UPDATE keygate_meta SET epoch = 'elsewhere'".into(),
            2 => "UPDATE keygate_meta SET mark = 'x'".into(),
            _ => "UPDATE keygate_meta SET version = version - 1".into(),
        },
        _ => return Damage::LoggedChange { changes: hostile_changes(rng, change_json), marked: rng.below(4) != 0 },
    };
    Damage::Sql(sql)
}

/// A row of `table` copied under a new primary key (and, for a key, a new digest unless
/// the copy is to collide with another key's hint or sequence number).
fn copied_row(rng: &mut Rng, table: &str) -> String {
    match table {
        "keygate_keys" => {
            let digest = if rng.below(4) == 0 { "digest" } else { "sha256(random()::text::bytea)" };
            let seq = if rng.below(2) == 0 { "seq" } else { "seq + 1000" };
            format!(
                "INSERT INTO keygate_keys (id, seq, user_id, description, state, expires_at, created_at, updated_at, last_used_at, hint, digest, rules)
                 SELECT decode(md5(random()::text), 'hex'), {seq}, user_id, description, state, expires_at, created_at, updated_at,
                        last_used_at, hint, {digest}, rules FROM keygate_keys ORDER BY seq LIMIT 1 OFFSET {}",
                rng.below(5)
            )
        }
        "keygate_users" => "INSERT INTO keygate_users SELECT upper(id), status, rights, roles FROM keygate_users".into(),
        "keygate_roles" => "INSERT INTO keygate_roles SELECT upper(name) || 'X', rights FROM keygate_roles".into(),
        "keygate_audit" => {
            "INSERT INTO keygate_audit SELECT seq + 1000, at, actor, action, key_id, user_id, detail, hash FROM keygate_audit".into()
        }
        "keygate_changes" => "INSERT INTO keygate_changes SELECT version + 1000, token, at, changes, mark FROM keygate_changes".into(),
        _ => "UPDATE keygate_meta SET id = 2".into(),
    }
}

/// Where a raw hostile value goes in a change's text (see [`hostile_changes`]).
const HOSTILE: &str = "__hostile__";

/// The JSON a hostile change row holds: a real change list (`json`) with a field of one
/// change replaced, removed or the text itself cut; or JSON keygate never writes.
fn hostile_changes(rng: &mut Rng, json: &str) -> String {
    const VALUES: &[&str] = &[
        "null",
        "\"\"",
        "\"ghost\"",
        "\"revoked\"",
        "\"active\"",
        "-1",
        "1e400",
        "1.5",
        "9223372036854775807",
        "-9223372036854775808",
        "18446744073709551616",
        "true",
        "[]",
        "{}",
        "[null]",
        "[\"*:*\"]",
        "[1]",
        "\"zz\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"putKey\"",
        "\"deleteKey\"",
        "\"putUser\"",
        "\"deleteUser\"",
        "\"putRole\"",
        "\"deleteRole\"",
        "\"other\"",
    ];
    match rng.below(10) {
        0 => rng.pick(&["[]", "{}", "null", "[[]]", "[{}]", "\"x\"", "[1]", ""]).to_string(),
        1 => format!("{}{}", "[".repeat(300), "]".repeat(300)),
        2 => json.chars().take(rng.below(json.chars().count().max(1))).collect(),
        3 => format!("[{json}]"),
        _ => {
            let Ok(serde_json::Value::Array(mut list)) = serde_json::from_str::<serde_json::Value>(json) else { return json.into() };
            if list.is_empty() {
                return json.into();
            }
            let at = rng.below(list.len());
            let original = list[at].clone();
            let mut raw_value = None;
            if let Some(change) = list.get_mut(at).and_then(|c| c.as_object_mut()) {
                // One of the fields keygate wrote in this change.
                let fields: Vec<String> = change.keys().cloned().collect();
                if !fields.is_empty() {
                    let field = rng.pick(&fields).clone();
                    if rng.below(4) == 0 {
                        change.remove(&field);
                    } else {
                        change.insert(field, serde_json::Value::String(HOSTILE.into()));
                        raw_value = Some(*rng.pick(VALUES));
                    }
                }
            }
            if rng.below(3) == 0 {
                list.push(original);
            }
            let out = serde_json::Value::Array(list).to_string();
            // The raw value put in the text: 1e400 and lone surrogates are not `Value`s.
            match raw_value {
                Some(value) => out.replacen(&format!("\"{HOSTILE}\""), value, 1),
                None => out,
            }
        }
    }
}

/// Runs one damage; `false` when the server refused it (a NOT NULL column set to NULL, a
/// type it cannot convert, a table already gone), which changes nothing.
fn apply_damage(db: &Db, damage: &Damage) -> bool {
    let sql = match damage {
        Damage::Sql(sql) => sql.clone(),
        Damage::LoggedChange { changes, marked } => {
            // The meta row as the damages before this one left it (a missing table or column: refused).
            let position = db.try_sql("SELECT version || ' ' || mark FROM keygate_meta");
            let Some((version, mark)) = position.as_deref().and_then(|p| p.split_once(' ')) else { return false };
            let Ok(version) = version.parse::<i64>() else { return false };
            let next = version.saturating_add(1);
            let new_mark = if *marked { mark_after(mark, next, changes) } else { "unmarked".into() };
            let quoted = changes.replace('\'', "''");
            format!(
                "INSERT INTO keygate_changes (version, token, at, changes, mark) VALUES ({next}, 'other', {NOW_MS}, '{quoted}', '{new_mark}');
                 UPDATE keygate_meta SET version = {next}, mark = '{new_mark}';
                 SELECT pg_notify('keygate', (SELECT epoch FROM keygate_meta) || ' ' || {next} || ' ' || '{new_mark}')"
            )
        }
    };
    db.try_sql(&format!("BEGIN; {sql}; COMMIT")).is_some()
}

// ---- the world damaged, and what it must still hold -----------------------------------

/// The pristine world: users, roles and keys in every state, and their secrets.
struct World {
    secrets: Vec<String>,
}

fn build_world(store: &KeyStore) -> World {
    let user = |id: &str, rights: &[&str], roles: &[&str]| UserInput {
        id: id.into(),
        rights: rights.iter().map(|s| s.to_string()).collect(),
        roles: roles.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    store.put_role("reader", &["session:*".into(), "data:get*".into()], None).unwrap();
    store.put_user(&user("svc", &["*:*"], &[]), Some("alice")).unwrap();
    store.put_user(&user("ops", &[], &["reader"]), Some("alice")).unwrap();
    store.put_user(&user("idle", &["session:*"], &[]), None).unwrap();
    let now = keygate_core::internals::system_now();
    let mut secrets = Vec::new();
    let mut key = |user: &str, rules: &[&str], state: Option<&str>| {
        let issued = store
            .create_key(
                &NewKey {
                    user_id: user.into(),
                    description: "hostile".into(),
                    expires_at: Some(now + 30 * DAY),
                    rules: rules.iter().map(|s| s.to_string()).collect(),
                    state: state.map(str::to_string),
                },
                Some("alice"),
            )
            .unwrap();
        secrets.push(issued.secret);
        issued.key.id
    };
    key("svc", &["session:*"], None);
    key("ops", &[], None);
    let revoked = key("svc", &["session:userLogon"], None);
    key("idle", &["session:*", "ip=10.0.0.0/8"], None);
    key("svc", &["dav=GET /dav/**", "session:*"], Some("suspended"));
    store.set_state(&revoked, "revoked", Some("alice")).unwrap();
    store.put_user(&UserInput { status: Some("suspended".into()), ..user("idle", &["session:*"], &[]) }, None).unwrap();
    World { secrets }
}

/// The call every check asks: one each key's rules allow.
fn call(secret: &str) -> Call<'_> {
    Call { secret: secret.as_bytes(), service: b"session", api: b"userLogon", ip: Some(b"10.0.0.1") }
}

/// What the database says of `secret`'s key: whether its rows let it be used at all (its
/// row found by digest active and unexpired, its user's row active).
fn rows_let_it_be_used(db: &Db, secret: &str) -> bool {
    let digest = hex::encode(keygate_core::internals::digest(secret.as_bytes()));
    let sql = format!(
        "SELECT count(*) FROM keygate_keys k JOIN keygate_users u ON u.id = k.user_id
         WHERE k.digest = '\\x{digest}'::bytea AND k.state = 'active' AND k.expires_at > {NOW_MS} AND u.status = 'active'"
    );
    // A table or column the damage took away: nothing in the rows lets it be used.
    db.try_sql(&sql).is_some_and(|n| n != "0")
}

/// Incidents a store reported, as `code: message`.
type Reported = Arc<Mutex<Vec<(ErrorCode, String)>>>;

fn options(reported: &Reported) -> Options {
    let sink = reported.clone();
    let on_error: keygate_core::OnError = Arc::new(move |incident: &Incident| {
        sink.lock().unwrap().push((incident.error.code, incident.error.message.clone()));
    });
    Options {
        on_error: Some(on_error),
        fail_closed_after_ms: Some(2000.0),
        statement_timeout_ms: Some(5000.0),
        connect_timeout_ms: Some(5000.0),
        purge_expired_after_days: Some(1e6),
        ..Default::default()
    }
}

fn assert_no_internal(reported: &Reported, what: &str) {
    let internal: Vec<_> = reported.lock().unwrap().iter().filter(|(code, _)| *code == ErrorCode::Internal).cloned().collect();
    assert!(internal.is_empty(), "{what}: INTERNAL reported: {internal:?}");
}

/// Every read a store answers; none may panic, none may be `INTERNAL`.
fn read_everything(store: &KeyStore, world: &World, what: &str) {
    let codes = [
        store.list_users().err(),
        store.list_roles().err(),
        store.list_keys(&Default::default()).err(),
        store.get_user("svc").err(),
        store.effective_rights("ops").err(),
        store.audit(&Default::default()).err(),
        store.verify_audit().err(),
    ];
    for error in codes.into_iter().flatten() {
        assert_ne!(error.code, ErrorCode::Internal, "{what}: {}", error.message);
    }
    if let Ok(keys) = store.list_keys(&Default::default()) {
        for key in &keys {
            if let Err(e) = store.get_key(&key.id) {
                assert_ne!(e.code, ErrorCode::Internal, "{what}: {}", e.message);
            }
        }
    }
    for secret in &world.secrets {
        let _ = store.explain(call(secret));
    }
    let _ = store.health();
}

/// Opens the damaged database: a store, which must answer every read and allow no key its
/// rows forbid, or `STORE_CORRUPT` with the database left as it was.
fn open_damaged(db: &Db, world: &World, what: &str) {
    let before = db.fingerprint();
    let reported = Reported::default();
    match KeyStore::open(&db.url(), options(&reported)) {
        Ok(store) => {
            read_everything(&store, world, what);
            for secret in &world.secrets {
                if store.check(call(secret)).reason == Reason::Allowed {
                    assert!(rows_let_it_be_used(db, secret), "{what}: a key its rows forbid was allowed");
                }
            }
            if let Err(e) = store.close() {
                assert_ne!(e.code, ErrorCode::Internal, "{what}: {}", e.message);
            }
            assert_no_internal(&reported, what);
        }
        Err(e) => {
            assert_eq!(e.code, ErrorCode::StoreCorrupt, "{what}: {}", e.message);
            for secret in &world.secrets {
                assert!(!e.message.contains(secret.as_str()), "{what}: a secret in the error");
            }
            assert_eq!(db.fingerprint(), before, "{what}: a refused database was written to ({})", e.message);
        }
    }
}

/// A store running on the pristine world when the damage lands: it must go on answering
/// (any answer, `store_unavailable` included) without a panic or `INTERNAL`, and close.
fn damage_under_a_running_store(db: &Db, world: &World, damages: &[Damage], what: &str) -> bool {
    let reported = Reported::default();
    let store = KeyStore::open(&db.url(), options(&reported)).unwrap();
    assert_eq!(store.check(call(&world.secrets[0])).reason, Reason::Allowed, "{what}: the pristine world");
    let applied = damages.iter().filter(|d| apply_damage(db, d)).count() > 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(150) {
        for secret in &world.secrets {
            let _ = store.check(call(secret));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    read_everything(&store, world, what);
    if let Err(e) = store.close() {
        assert_ne!(e.code, ErrorCode::Internal, "{what}: {}", e.message);
    }
    assert_no_internal(&reported, what);
    applied
}

#[test]
fn a_database_damaged_at_random_opens_or_is_store_corrupt_and_never_crashes_a_store() {
    let Some(db) = Db::new() else { return };
    let store = KeyStore::open(&db.url(), Options::default()).unwrap();
    let world = build_world(&store);
    store.close().unwrap();
    db.back_up("pristine");
    let change_json = db.sql("SELECT changes FROM keygate_changes WHERE changes LIKE '%putKey%' ORDER BY version DESC LIMIT 1");

    let seed = env_number("KEYGATE_HOSTILE_SEED", 0x6b67_686f_7374);
    let cases = env_number("KEYGATE_HOSTILE_CASES", 120);
    let mut rng = Rng(seed);
    let (mut opened_damaged, mut running_damaged) = (0, 0);
    for case in 0..cases {
        let damages: Vec<Damage> = (0..1 + rng.below(3)).map(|_| damage(&mut rng, &change_json)).collect();
        let what = format!("seed {seed:#x}, case {case}: {damages:?}");
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            db.restore_afresh("pristine");
            if case % 3 == 2 {
                if damage_under_a_running_store(&db, &world, &damages, &what) {
                    running_damaged += 1;
                }
            } else if damages.iter().filter(|d| apply_damage(&db, d)).count() > 0 {
                opened_damaged += 1;
            }
            open_damaged(&db, &world, &what);
        }));
        if std::env::var_os("KEYGATE_HOSTILE_VERBOSE").is_some() {
            eprintln!("{:>6} ms  {what}", started.elapsed().as_millis());
        }
        if let Err(panic) = outcome {
            let message = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            panic!("{what}\n{}", message.unwrap_or_default());
        }
    }
    eprintln!("{cases} cases: {opened_damaged} damaged then opened, {running_damaged} damaged under a running store");
    // Most damages are ones the server takes: the test exercises the store, not psql.
    assert!(opened_damaged + running_damaged > cases / 2, "only {opened_damaged} + {running_damaged} of {cases} damages took");
}
