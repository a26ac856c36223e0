//! The durable store: one SQLite file (WAL mode) shared by several processes.
//! Every admin call is one `BEGIN IMMEDIATE` transaction that first reads what
//! other processes changed (the `changes` table), then writes its own rows, a
//! change row per entity and its audit entries, and commits before returning.
//! All keys live in memory; a maintenance thread notices other processes'
//! commits (`PRAGMA data_version`), flushes `lastUsedAt` and purges long-expired keys.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};

use crate::audit::{verify, AuditDraft, AuditEntry, AuditQuery, AuditReport, GENESIS};
use crate::backend::{Backend, Catchup};
use crate::error::{Error, ErrorCode, Result};
use crate::model::{check_name_shape, parse_key_id, KeyState, UserStatus, KEY_ID_PREFIX};
use crate::registry::{Change, KeyRecord, Registry, RoleRecord, UserRecord};
use crate::secret::{encode_id, Prefix};
use crate::store::AuditAction;
use crate::store::{Inner, KeyStore, Options, Task};

/// Schema version written to `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;
const DEFAULT_PURGE_AFTER_DAYS: f64 = 7.0;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const POLL_EVERY: Duration = Duration::from_millis(10);
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// While the store cannot vouch it is current: how often to try catching up
/// again when nothing in the file changed (a change in the file tries at once).
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Change rows kept for processes catching up; one further behind reloads everything.
const CHANGES_KEPT: i64 = 100_000;

const SCHEMA: &str = "
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE roles (name TEXT PRIMARY KEY, rights TEXT NOT NULL);
CREATE TABLE users (id TEXT PRIMARY KEY, status TEXT NOT NULL, rights TEXT NOT NULL, roles TEXT NOT NULL);
CREATE TABLE keys (
  id BLOB PRIMARY KEY,
  seq INTEGER NOT NULL,
  user_id TEXT NOT NULL,
  description TEXT NOT NULL,
  state TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  last_used_at INTEGER,
  hint TEXT NOT NULL,
  digest BLOB NOT NULL UNIQUE,
  rules TEXT NOT NULL
);
CREATE INDEX keys_by_user ON keys(user_id);
CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, id TEXT NOT NULL, op TEXT NOT NULL);
CREATE TABLE audit (
  seq INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  actor TEXT,
  action TEXT NOT NULL,
  key_id TEXT,
  user_id TEXT,
  detail TEXT NOT NULL,
  hash BLOB NOT NULL
);
CREATE INDEX audit_by_key ON audit(key_id);
CREATE INDEX audit_by_user ON audit(user_id);
";

/// The tables and columns of `SCHEMA`, checked (read-only) before anything is
/// written to an existing file (and damaged on purpose by the store_load fuzzer).
pub const TABLES: [(&str, &[&str]); 6] = [
    ("meta", &["name", "value"]),
    ("roles", &["name", "rights"]),
    ("users", &["id", "status", "rights", "roles"]),
    (
        "keys",
        &[
            "id",
            "seq",
            "user_id",
            "description",
            "state",
            "expires_at",
            "created_at",
            "updated_at",
            "last_used_at",
            "hint",
            "digest",
            "rules",
        ],
    ),
    ("changes", &["seq", "kind", "id", "op"]),
    ("audit", &["seq", "at", "actor", "action", "key_id", "user_id", "detail", "hash"]),
];

fn store_error(path: &Path, what: &str, e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as C;
    let code = match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            C::DatabaseBusy | C::DatabaseLocked => ErrorCode::StoreLocked,
            C::DatabaseCorrupt | C::NotADatabase => ErrorCode::StoreCorrupt,
            _ => ErrorCode::StoreIo,
        },
        _ => ErrorCode::StoreIo,
    };
    let hint = match code {
        ErrorCode::StoreLocked => " (another process holds the store's write lock)",
        ErrorCode::StoreCorrupt => " (not a keygate store, or a damaged one)",
        _ => "",
    };
    Error::new(code, format!("{what} {}: {e}{hint}", path.display()))
}

/// An error while reading the store's own rows: anything the file itself
/// causes (a value of the wrong type, invalid UTF-8, a missing table or column,
/// damaged pages) is `STORE_CORRUPT`; only locks and I/O are not.
fn read_error(path: &Path, what: &str, e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as C;
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                C::DatabaseBusy
                    | C::DatabaseLocked
                    | C::SystemIoFailure
                    | C::CannotOpen
                    | C::PermissionDenied
                    | C::DiskFull
                    | C::OutOfMemory
                    | C::ReadOnly
                    | C::OperationInterrupted
                    | C::NoLargeFileSupport
                    | C::FileLockingProtocolFailed
            ) =>
        {
            store_error(path, what, e)
        }
        _ => corrupt(path, format!("{e} (while {what} the store)")),
    }
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::StoreCorrupt, format!("store {} is damaged: {what}", path.display()))
}

fn join(list: &[String]) -> String {
    list.join("\n")
}

fn split(text: String) -> Vec<String> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').map(str::to_string).collect()
    }
}

fn key_id_text(id: &[u8; 16]) -> String {
    encode_id(KEY_ID_PREFIX, id)
}

struct Db {
    conn: Connection,
    /// Last `changes.seq` this process has applied.
    last_seen: i64,
    /// The state in memory cannot be trusted: the next catch-up reads everything.
    needs_reload: bool,
}

pub struct SqliteBackend {
    path: PathBuf,
    /// Admin transactions (held from `begin` to `commit`), catch-up and reads.
    db: Mutex<Option<Db>>,
    /// A second connection for work that must never wait behind (or inside) an
    /// admin transaction, nor hold the in-memory state while it does I/O:
    /// flushing `lastUsedAt` and backups.
    aux: Mutex<Option<Connection>>,
}

impl SqliteBackend {
    fn with_db<T>(&self, f: impl FnOnce(&mut Db) -> Result<T>) -> Result<T> {
        let mut guard = self.db.lock();
        match guard.as_mut() {
            Some(db) => f(db),
            None => Err(Error::new(ErrorCode::StoreIo, "the store is closed")),
        }
    }

    fn with_aux<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        match self.aux.lock().as_ref() {
            Some(conn) => f(conn),
            None => Err(Error::new(ErrorCode::StoreIo, "the store is closed")),
        }
    }

    fn err(&self, what: &str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
        let what = what.to_string();
        move |e| store_error(&self.path, &what, e)
    }
}

/// Ends a transaction a failure (or a defect) left open, so that the next one can begin.
fn end_open_transaction(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

fn read_user(row: &Row) -> rusqlite::Result<(String, String, String, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn user_record(path: &Path, (id, status, rights, roles): (String, String, String, String)) -> Result<UserRecord> {
    let status = UserStatus::parse(&status).map_err(|e| corrupt(path, e.message))?;
    stored_name(path, "a user id", &id)?;
    let roles = split(roles);
    for role in &roles {
        stored_name(path, "a role name", role)?;
    }
    Ok(UserRecord { id, status, rights: split(rights), roles })
}

fn role_record(path: &Path, name: String, rights: String) -> Result<RoleRecord> {
    stored_name(path, "a role name", &name)?;
    Ok(RoleRecord { name, rights: split(rights) })
}

/// A stored id or name keygate could have written (never bidi controls, newlines, empty).
fn stored_name(path: &Path, what: &str, name: &str) -> Result<()> {
    check_name_shape(what, name).map_err(|e| corrupt(path, e.message))
}

/// The instants JavaScript's Date can hold (±8.64e15 ms): keygate never writes others.
const MAX_DATE_MS: i64 = 8_640_000_000_000_000;

fn stored_instant(path: &Path, what: &str, ms: i64) -> Result<i64> {
    if ms.unsigned_abs() > MAX_DATE_MS as u64 {
        return Err(corrupt(path, format!("a key's {what} ({ms}) is not a representable date")));
    }
    Ok(ms)
}

const KEY_COLUMNS: &str = "id, seq, user_id, description, state, expires_at, created_at, updated_at, last_used_at, hint, digest, rules";

type KeyRow = (Vec<u8>, i64, String, String, String, i64, i64, i64, Option<i64>, String, Vec<u8>, String);

fn read_key(row: &Row) -> rusqlite::Result<KeyRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
        row.get(11)?,
    ))
}

fn key_record(path: &Path, row: KeyRow) -> Result<KeyRecord> {
    let (id, seq, user_id, description, state, expires_at, created_at, updated_at, last_used_at, hint, digest, rules) = row;
    let id: [u8; 16] = id.try_into().map_err(|_| corrupt(path, "a key id is not 16 bytes"))?;
    let digest: [u8; 32] = digest.try_into().map_err(|_| corrupt(path, "a key digest is not 32 bytes"))?;
    let hint: [u8; 4] = hint
        .into_bytes()
        .try_into()
        .ok()
        .filter(|hint: &[u8; 4]| hint.iter().all(u8::is_ascii_alphanumeric))
        .ok_or_else(|| corrupt(path, "a key hint is not 4 letters or digits"))?;
    let state = KeyState::parse(&state).map_err(|e| corrupt(path, e.message))?;
    stored_name(path, "a key's user id", &user_id)?;
    let seq = u64::try_from(seq).map_err(|_| corrupt(path, "a key's sequence number is negative"))?;
    Ok(KeyRecord {
        id,
        seq,
        user_id,
        description,
        state,
        expires_at: stored_instant(path, "expiry", expires_at)?,
        created_at: stored_instant(path, "creation time", created_at)?,
        updated_at: stored_instant(path, "update time", updated_at)?,
        last_used_at: last_used_at.map(|at| stored_instant(path, "last use", at)).transpose()?,
        hint,
        digest,
        rules: split(rules),
    })
}

/// Reads the whole state; a row it cannot load is `STORE_CORRUPT` (never a crash).
fn load(path: &Path, conn: &Connection) -> Result<Registry> {
    catch_unwind(AssertUnwindSafe(|| load_rows(path, conn)))
        .unwrap_or_else(|_| Err(corrupt(path, "a stored row could not be loaded (an internal error while reading it)")))
}

fn load_rows(path: &Path, conn: &Connection) -> Result<Registry> {
    let e = |what: &'static str| move |err| read_error(path, what, err);
    let mut registry = Registry::default();
    let fail = |err: Error| corrupt(path, err.message);
    let mut roles = conn.prepare("SELECT name, rights FROM roles").map_err(e("reading roles of"))?;
    let rows = roles.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(e("reading roles of"))?;
    for row in rows {
        let (name, rights) = row.map_err(e("reading roles of"))?;
        registry.apply(Change::PutRole(role_record(path, name, rights)?)).map_err(fail)?;
    }
    let mut users = conn.prepare("SELECT id, status, rights, roles FROM users").map_err(e("reading users of"))?;
    for row in users.query_map([], read_user).map_err(e("reading users of"))? {
        let record = user_record(path, row.map_err(e("reading users of"))?)?;
        registry.apply(Change::PutUser(record)).map_err(fail)?;
    }
    let mut keys = conn.prepare(&format!("SELECT {KEY_COLUMNS} FROM keys")).map_err(e("reading keys of"))?;
    for row in keys.query_map([], read_key).map_err(e("reading keys of"))? {
        let record = key_record(path, row.map_err(e("reading keys of"))?)?;
        registry.apply(Change::PutKey(record)).map_err(fail)?;
    }
    Ok(registry)
}

fn max_change(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| r.get(0))
}

/// What other processes changed after `db.last_seen`, as changes to apply (in order).
/// `db.last_seen` moves only when every change was read.
fn changes_since(path: &Path, db: &mut Db) -> Result<Catchup> {
    let e = |err| read_error(path, "reading changes of", err);
    let latest = max_change(&db.conn).map_err(e)?;
    if latest <= db.last_seen && !db.needs_reload {
        return Ok(Catchup::Nothing);
    }
    let oldest: i64 = db.conn.query_row("SELECT coalesce(min(seq), 0) FROM changes", [], |r| r.get(0)).map_err(e)?;
    if db.needs_reload || oldest > db.last_seen.saturating_add(1) {
        let registry = load(path, &db.conn)?;
        db.last_seen = latest;
        db.needs_reload = false;
        return Ok(Catchup::Reload(Box::new(registry)));
    }
    let mut rows = Vec::new();
    {
        let mut stmt = db.conn.prepare_cached("SELECT kind, id, op FROM changes WHERE seq > ?1 ORDER BY seq").map_err(e)?;
        let iter =
            stmt.query_map([db.last_seen], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))).map_err(e)?;
        for row in iter {
            rows.push(row.map_err(e)?);
        }
    }
    let mut changes = Vec::with_capacity(rows.len());
    for (kind, id, op) in rows {
        let change = match (kind.as_str(), op.as_str()) {
            ("user", "delete") => Some(Change::DeleteUser(id)),
            ("role", "delete") => Some(Change::DeleteRole(id)),
            ("key", "delete") => parse_key_id(&id).map(Change::DeleteKey),
            ("user", _) => db
                .conn
                .query_row("SELECT id, status, rights, roles FROM users WHERE id = ?1", [&id], read_user)
                .optional()
                .map_err(e)?
                .map(|row| user_record(path, row))
                .transpose()?
                .map(Change::PutUser),
            ("role", _) => db
                .conn
                .query_row("SELECT name, rights FROM roles WHERE name = ?1", [&id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .optional()
                .map_err(e)?
                .map(|(name, rights)| role_record(path, name, rights))
                .transpose()?
                .map(Change::PutRole),
            ("key", _) => match parse_key_id(&id) {
                Some(raw) => db
                    .conn
                    .query_row(&format!("SELECT {KEY_COLUMNS} FROM keys WHERE id = ?1"), [raw.as_slice()], read_key)
                    .optional()
                    .map_err(e)?
                    .map(|row| key_record(path, row))
                    .transpose()?
                    .map(Change::PutKey),
                None => None,
            },
            _ => return Err(corrupt(path, format!("unknown change {kind}/{op}"))),
        };
        changes.extend(change);
    }
    db.last_seen = latest;
    Ok(Catchup::Changes(changes))
}

fn log_change(conn: &Connection, kind: &str, id: &str, op: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO changes (kind, id, op) VALUES (?1, ?2, ?3)")?.execute(params![kind, id, op])?;
    Ok(())
}

fn write_change(conn: &Connection, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::PutUser(u) => {
            conn.prepare_cached(
                "INSERT INTO users (id, status, rights, roles) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET status = excluded.status, rights = excluded.rights, roles = excluded.roles",
            )?
            .execute(params![u.id, u.status.as_str(), join(&u.rights), join(&u.roles)])?;
            log_change(conn, "user", &u.id, "put")
        }
        Change::DeleteUser(id) => {
            conn.prepare_cached("DELETE FROM keys WHERE user_id = ?1")?.execute([id])?;
            conn.prepare_cached("DELETE FROM users WHERE id = ?1")?.execute([id])?;
            log_change(conn, "user", id, "delete")
        }
        Change::PutRole(r) => {
            conn.prepare_cached(
                "INSERT INTO roles (name, rights) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET rights = excluded.rights",
            )?
            .execute(params![r.name, join(&r.rights)])?;
            log_change(conn, "role", &r.name, "put")
        }
        Change::DeleteRole(name) => {
            conn.prepare_cached("DELETE FROM roles WHERE name = ?1")?.execute([name])?;
            let holders: Vec<(String, String)> = conn
                .prepare_cached("SELECT id, roles FROM users WHERE instr(char(10) || roles || char(10), char(10) || ?1 || char(10)) > 0")?
                .query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (id, roles) in holders {
                let kept: Vec<String> = split(roles).into_iter().filter(|r| r != name).collect();
                conn.prepare_cached("UPDATE users SET roles = ?2 WHERE id = ?1")?.execute(params![id, join(&kept)])?;
            }
            log_change(conn, "role", name, "delete")
        }
        Change::PutKey(k) => {
            conn.prepare_cached(&format!(
                "INSERT INTO keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT(id) DO UPDATE SET user_id = excluded.user_id, description = excluded.description,
                   state = excluded.state, expires_at = excluded.expires_at, updated_at = excluded.updated_at,
                   rules = excluded.rules,
                   last_used_at = CASE WHEN keys.last_used_at IS NULL THEN excluded.last_used_at
                                       WHEN excluded.last_used_at IS NULL THEN keys.last_used_at
                                       ELSE max(keys.last_used_at, excluded.last_used_at) END"
            ))?
            .execute(params![
                k.id.as_slice(),
                k.seq as i64,
                k.user_id,
                k.description,
                k.state.as_str(),
                k.expires_at,
                k.created_at,
                k.updated_at,
                k.last_used_at,
                String::from_utf8_lossy(&k.hint),
                k.digest.as_slice(),
                join(&k.rules),
            ])?;
            log_change(conn, "key", &key_id_text(&k.id), "put")
        }
        Change::DeleteKey(id) => {
            conn.prepare_cached("DELETE FROM keys WHERE id = ?1")?.execute([id.as_slice()])?;
            log_change(conn, "key", &key_id_text(id), "delete")
        }
    }
}

/// Largest audit sequence number a store may hold: SQLite integers are i64.
const MAX_AUDIT_SEQ: u64 = i64::MAX as u64 - 1;

fn audit_head(conn: &Connection) -> rusqlite::Result<(u64, [u8; 32])> {
    let seq: Option<String> = conn.query_row("SELECT value FROM meta WHERE name = 'audit_seq'", [], |r| r.get(0)).optional()?;
    let hash: Option<String> = conn.query_row("SELECT value FROM meta WHERE name = 'audit_hash'", [], |r| r.get(0)).optional()?;
    let seq = seq.and_then(|s| s.parse().ok()).unwrap_or(0);
    let hash = hash.and_then(|h| from_hex(&h)).unwrap_or(GENESIS);
    Ok((seq, hash))
}

/// The recorded audit head must be one the next write can extend: a number no
/// smaller than the last entry's (smaller, the next entry would collide with a
/// kept one) and far from overflowing, and a hash in hex. A head ahead of the
/// entries is a removed tail, which `verifyAudit` reports; the store still opens.
fn check_audit_head(path: &Path, conn: &Connection) -> Result<()> {
    let read = |e| read_error(path, "reading the audit head of", e);
    let meta =
        |name: &str| conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| r.get::<_, String>(0)).optional().map_err(read);
    let seq = match meta("audit_seq")? {
        None => 0,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|&seq| seq <= MAX_AUDIT_SEQ)
            .ok_or_else(|| corrupt(path, "its recorded audit head is not a valid sequence number"))?,
    };
    if meta("audit_hash")?.is_some_and(|text| from_hex(&text).is_none()) {
        return Err(corrupt(path, "its recorded audit hash is not 64 hex digits"));
    }
    let last: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM audit", [], |r| r.get(0)).map_err(read)?;
    if u64::try_from(last).map_or(true, |last| last > seq) {
        return Err(corrupt(path, format!("its audit trail has entries (up to {last}) beyond its recorded head ({seq})")));
    }
    Ok(())
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn write_audit(conn: &Connection, drafts: Vec<AuditDraft>) -> rusqlite::Result<()> {
    if drafts.is_empty() {
        return Ok(());
    }
    let (mut seq, mut prev) = audit_head(conn)?;
    for draft in drafts {
        seq = seq.checked_add(1).filter(|&next| next <= MAX_AUDIT_SEQ).ok_or(rusqlite::Error::IntegralValueOutOfRange(0, i64::MAX))?;
        let entry = AuditEntry::seal(&prev, seq, draft);
        conn.prepare_cached(
            "INSERT INTO audit (seq, at, actor, action, key_id, user_id, detail, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            entry.seq as i64,
            entry.at,
            entry.actor,
            entry.action,
            entry.key_id,
            entry.user_id,
            entry.detail.to_string(),
            entry.hash.as_slice()
        ])?;
        prev = entry.hash;
    }
    let mut put = conn.prepare_cached("INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)")?;
    put.execute(params!["audit_seq", seq.to_string()])?;
    put.execute(params!["audit_hash", to_hex(&prev)])?;
    Ok(())
}

/// One audit row (`seq, at, actor, action, key_id, user_id, detail, hash`).
fn read_audit(row: &Row) -> rusqlite::Result<AuditEntry> {
    let detail: String = row.get(6)?;
    let hash: Vec<u8> = row.get(7)?;
    Ok(AuditEntry {
        seq: row.get::<_, i64>(0)? as u64,
        at: row.get(1)?,
        actor: row.get(2)?,
        action: row.get(3)?,
        key_id: row.get(4)?,
        user_id: row.get(5)?,
        // An unparsable detail is kept as text so that verification reports it.
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        hash: hash.try_into().unwrap_or([0; 32]),
    })
}

impl Backend for SqliteBackend {
    fn begin(&self) -> Result<()> {
        self.with_db(|db| {
            end_open_transaction(&db.conn);
            db.conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| store_error(&self.path, "locking", e))
        })
    }

    fn changes(&self) -> Result<Catchup> {
        self.with_db(|db| changes_since(&self.path, db))
    }

    fn resync(&self) {
        let _ = self.with_db(|db| {
            db.needs_reload = true;
            Ok(())
        });
    }

    fn commit(&self, changes: &[Change], audit: Vec<AuditDraft>) -> Result<()> {
        self.with_db(|db| {
            let written = (|| -> rusqlite::Result<i64> {
                for change in changes {
                    write_change(&db.conn, change)?;
                }
                write_audit(&db.conn, audit)?;
                let latest = max_change(&db.conn)?;
                if latest % 1024 == 0 {
                    // Keep only the change rows a running process may still need.
                    db.conn.execute("DELETE FROM changes WHERE seq <= ?1", [latest.saturating_sub(CHANGES_KEPT)])?;
                }
                db.conn.execute_batch("COMMIT")?;
                Ok(latest)
            })();
            match written {
                Ok(latest) => {
                    db.last_seen = latest;
                    Ok(())
                }
                Err(e) => {
                    let _ = db.conn.execute_batch("ROLLBACK");
                    Err(store_error(&self.path, "writing", e))
                }
            }
        })
    }

    fn rollback(&self) {
        let _ = self.with_db(|db| {
            let _ = db.conn.execute_batch("ROLLBACK");
            Ok(())
        });
    }

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.with_db(|db| {
            let e = self.err("reading the audit trail of");
            let mut stmt = db
                .conn
                .prepare_cached(
                    "SELECT seq, at, actor, action, key_id, user_id, detail, hash FROM audit
                     WHERE (?1 IS NULL OR key_id = ?1) AND (?2 IS NULL OR user_id = ?2) AND (?3 IS NULL OR at >= ?3)
                       AND (?5 IS NULL OR at <= ?5) AND (?6 IS NULL OR action = ?6)
                       AND (?7 IS NULL OR instr(lower(actor), lower(?7)) > 0)
                     ORDER BY seq DESC LIMIT ?4",
                )
                .map_err(|err| store_error(&self.path, "reading the audit trail of", err))?;
            let limit = query.limit.unwrap_or(100) as i64;
            let action = query.action.map(AuditAction::as_str);
            stmt.query_map(params![query.key_id, query.user_id, query.since, limit, query.until, action, query.actor], read_audit)
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(e)
        })
    }

    fn verify_audit(&self) -> Result<AuditReport> {
        self.with_db(|db| {
            let e = |err| store_error(&self.path, "reading the audit trail of", err);
            db.conn.execute_batch("BEGIN").map_err(e)?;
            let result = (|| {
                let head = audit_head(&db.conn)?;
                let mut stmt = db.conn.prepare("SELECT seq, at, actor, action, key_id, user_id, detail, hash FROM audit ORDER BY seq")?;
                let entries: Vec<AuditEntry> = stmt.query_map([], read_audit)?.collect::<rusqlite::Result<_>>()?;
                Ok(verify(entries.iter(), Some(head), None))
            })();
            let _ = db.conn.execute_batch("COMMIT");
            result.map_err(e)
        })
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn poll(&self) -> Result<Catchup> {
        self.with_db(|db| {
            end_open_transaction(&db.conn);
            db.conn.execute_batch("BEGIN").map_err(|e| store_error(&self.path, "reading", e))?;
            let result = changes_since(&self.path, db);
            let _ = db.conn.execute_batch("COMMIT");
            result
        })
    }

    fn flush_uses(&self, uses: &[([u8; 16], i64)]) -> Result<()> {
        self.with_aux(|conn| {
            let write = (|| -> rusqlite::Result<()> {
                conn.execute_batch("BEGIN IMMEDIATE")?;
                let mut stmt = conn.prepare_cached("UPDATE keys SET last_used_at = max(coalesce(last_used_at, ?2), ?2) WHERE id = ?1")?;
                for (id, at) in uses {
                    stmt.execute(params![&id[..], at])?;
                }
                conn.execute_batch("COMMIT")
            })();
            write.map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                store_error(&self.path, "recording key use in", e)
            })
        })
    }

    fn stored_uses(&self, id: Option<&[u8; 16]>) -> Result<Vec<([u8; 16], i64)>> {
        self.with_db(|db| {
            let e = |err| store_error(&self.path, "reading", err);
            let mut out = Vec::new();
            let mut push = |raw: Vec<u8>, at: i64| {
                if let Ok(id) = raw.try_into() {
                    out.push((id, at));
                }
            };
            match id {
                Some(id) => {
                    let row: Option<(Vec<u8>, i64)> = db
                        .conn
                        .query_row("SELECT id, last_used_at FROM keys WHERE id = ?1 AND last_used_at IS NOT NULL", [&id[..]], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })
                        .optional()
                        .map_err(e)?;
                    if let Some((raw, at)) = row {
                        push(raw, at);
                    }
                }
                None => {
                    let mut stmt = db.conn.prepare_cached("SELECT id, last_used_at FROM keys WHERE last_used_at IS NOT NULL").map_err(e)?;
                    let rows = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))).map_err(e)?;
                    for row in rows {
                        let (raw, at) = row.map_err(e)?;
                        push(raw, at);
                    }
                }
            }
            Ok(out)
        })
    }

    fn backup(&self, to: &Path) -> Result<()> {
        if to.exists() {
            return Err(Error::new(ErrorCode::StoreIo, format!("backup target {} already exists", to.display())));
        }
        self.with_aux(|conn| {
            // SQLite's online backup: a consistent copy while other processes keep writing.
            conn.backup(rusqlite::MAIN_DB, to, None).map_err(|e| store_error(to, "cannot back up to", e))
        })
    }

    fn close(&self) {
        if let Some(aux) = self.aux.lock().take() {
            let _ = aux.close();
        }
        if let Some(db) = self.db.lock().take() {
            // Fold the WAL into the main file, so a closed store is one self-contained file.
            let _ = db.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
            let _ = db.conn.close();
        }
    }
}

/// What a read-only look at an existing file found.
enum Found {
    /// An SQLite file with no tables and no schema version: a new store is made in it.
    Empty,
    /// A keygate store, every row read and loaded.
    Store { registry: Box<Registry>, last_seen: i64 },
}

/// Refuses a file that is not a keygate store this version can read — garbage,
/// a damaged file, another application's database, a store from a newer keygate,
/// a row this version cannot load — reading it whole through a read-only
/// connection, so that nothing is written to a file it refuses.
fn inspect(path: &Path, conn: &Connection) -> Result<Found> {
    let read = |e| read_error(path, "reading", e);
    conn.execute_batch("BEGIN").map_err(read)?;
    let found = (|| {
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(read)?;
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(read)?;
        check_version(path, version, tables)?;
        if version == 0 {
            return Ok(Found::Empty);
        }
        check_schema(path, conn)?;
        read_meta(path, conn)?;
        check_audit_head(path, conn)?;
        // Damage in pages the load never reads (indexes, the audit trail, free pages):
        // ~60 ms on a 100,000-key store, a fifth of its open.
        let check: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0)).map_err(read)?;
        if check != "ok" {
            return Err(corrupt(path, format!("SQLite's check of its pages failed: {check}")));
        }
        let registry = load(path, conn)?;
        let last_seen = max_change(conn).map_err(read)?;
        Ok(Found::Store { registry: Box::new(registry), last_seen })
    })();
    end_open_transaction(conn);
    found
}

/// Refuses a schema version this keygate cannot read; version 0 is accepted only without tables (a new store).
fn check_version(path: &Path, version: i64, tables: i64) -> Result<()> {
    if version > SCHEMA_VERSION {
        return Err(corrupt(path, format!("it was written by a newer keygate (schema {version}; this one reads up to {SCHEMA_VERSION})")));
    }
    if version == 0 && tables > 0 {
        return Err(corrupt(path, "it is an SQLite database of something else (no keygate schema version)"));
    }
    if version < 0 {
        return Err(corrupt(path, format!("it is an SQLite database of something else (schema version {version})")));
    }
    Ok(())
}

/// Every table and column keygate reads is there (a foreign file that happens to
/// carry schema version 1, a dropped table or column, are refused before any write).
fn check_schema(path: &Path, conn: &Connection) -> Result<()> {
    let read = |e| read_error(path, "reading the schema of", e);
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)").map_err(read)?;
    let mut kind = conn.prepare("SELECT type FROM sqlite_master WHERE name = ?1").map_err(read)?;
    for (table, columns) in TABLES {
        // A view in a table's place could compute anything (even never end).
        match kind.query_row([table], |r| r.get::<_, String>(0)).optional().map_err(read)? {
            Some(kind) if kind == "table" => {}
            Some(kind) => {
                return Err(corrupt(path, format!("its {table} is a {kind}, not a table (not a keygate store, or a damaged one)")))
            }
            None => return Err(corrupt(path, format!("it has no {table} table (not a keygate store, or a damaged one)"))),
        }
        let present: HashSet<String> = stmt.query_map([table], |r| r.get(0)).and_then(|rows| rows.collect()).map_err(read)?;
        if present.is_empty() {
            return Err(corrupt(path, format!("it has no {table} table (not a keygate store, or a damaged one)")));
        }
        if let Some(missing) = columns.iter().find(|c| !present.contains(**c)) {
            return Err(corrupt(path, format!("its {table} table has no {missing} column (not a keygate store, or a damaged one)")));
        }
    }
    Ok(())
}

/// The key prefix recorded in the store and the lifetime limit recorded at creation (if one was given then).
fn read_meta(path: &Path, conn: &Connection) -> Result<(Prefix, Option<f64>)> {
    let read = |e| read_error(path, "reading", e);
    let stored: String = conn
        .query_row("SELECT value FROM meta WHERE name = 'key_prefix'", [], |r| r.get(0))
        .optional()
        .map_err(read)?
        .ok_or_else(|| corrupt(path, "its key prefix is missing"))?;
    let prefix = Prefix::new(&stored).map_err(|_| corrupt(path, "its key prefix is invalid"))?;
    let max_days: Option<f64> = conn
        .query_row("SELECT value FROM meta WHERE name = 'max_lifetime_days'", [], |r| r.get::<_, String>(0))
        .optional()
        .map_err(read)?
        .and_then(|v| v.parse().ok());
    Ok((prefix, max_days))
}

/// Creates the schema in a new file, or checks an existing file's version and
/// schema. Returns the key prefix recorded in the store and the lifetime limit
/// recorded at creation (if one was given then).
fn migrate(path: &Path, conn: &Connection, wanted_prefix: Option<&str>, wanted_max_days: Option<f64>) -> Result<(Prefix, Option<f64>)> {
    let e = |what: &'static str| move |err| store_error(path, what, err);
    let read = |err| read_error(path, "reading", err);
    conn.execute_batch("BEGIN IMMEDIATE").map_err(e("locking"))?;
    let result = (|| {
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(read)?;
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(read)?;
        check_version(path, version, tables)?;
        if version == 0 {
            let prefix = match wanted_prefix {
                Some(p) => Prefix::new(p)?,
                None => Prefix::default(),
            };
            conn.execute_batch(SCHEMA).map_err(e("creating"))?;
            conn.execute("INSERT INTO meta (name, value) VALUES ('key_prefix', ?1)", [prefix.as_str()]).map_err(e("creating"))?;
            if let Some(days) = wanted_max_days {
                conn.execute("INSERT INTO meta (name, value) VALUES ('max_lifetime_days', ?1)", [days.to_string()])
                    .map_err(e("creating"))?;
            }
            conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}")).map_err(e("creating"))?;
        } else {
            check_schema(path, conn)?;
        }
        let (prefix, max_days) = read_meta(path, conn)?;
        if let Some(wanted) = wanted_prefix {
            if wanted != prefix.as_str() {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    format!("keyPrefix {wanted:?} differs from {:?}, the prefix this store was created with", prefix.as_str()),
                ));
            }
        }
        Ok((prefix, max_days))
    })();
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute_batch(end).map_err(e("writing"))?;
    result
}

fn connect(path: &Path, flags: OpenFlags) -> Result<Connection> {
    connect_to(path, path, flags)
}

/// Opens `target` (a path, or a `file:` URI for `path`); errors name `path`.
fn connect_to(path: &Path, target: impl AsRef<Path>, flags: OpenFlags) -> Result<Connection> {
    let conn = Connection::open_with_flags(target, flags).map_err(|e| store_error(path, "cannot open", e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| store_error(path, "cannot open", e))?;
    Ok(conn)
}

/// A read-only connection that leaves the file and its directory exactly as they
/// were. Without a `-wal` file beside it, no process has the store open and the
/// file holds everything: it is read as immutable (no lock, no `-wal`/`-shm`
/// created). Otherwise an ordinary read-only connection joins the processes using it.
fn connect_read_only(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if !Path::new(&wal).exists() {
        if let Some(uri) = immutable_uri(path) {
            return connect_to(path, uri, flags | OpenFlags::SQLITE_OPEN_URI);
        }
    }
    connect(path, flags)
}

/// Whether the file starts with a header SQLite can read and write: its
/// 16-byte magic string, and file-format read/write versions 1 (legacy) or 2
/// (WAL) at bytes 18 and 19 — with a higher write version SQLite opens the file
/// read-only, and only the first write would say so. A file that cannot be
/// read is left to SQLite, which reports why.
fn has_sqlite_header(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut header = Vec::with_capacity(20);
    std::fs::File::open(path)?.take(20).read_to_end(&mut header)?;
    let versions_ok = matches!(header.get(18..20), Some([1 | 2, 1 | 2]));
    Ok(header.get(..16) == Some(b"SQLite format 3\0".as_slice()) && versions_ok)
}

/// `file:<path>?immutable=1`, the path percent-encoded; `None` for a path that is not UTF-8.
fn immutable_uri(path: &Path) -> Option<String> {
    let text = path.to_str()?;
    let mut uri = String::from("file:");
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"/._~-".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    Some(uri)
}

impl KeyStore {
    /// Opens (or creates) the durable store at `path`. An existing file is read
    /// whole, read-only, before anything is written to it: a file that is not a
    /// keygate store this version can load is refused (`STORE_CORRUPT`) and left
    /// byte for byte as it was. A missing or zero-length file becomes a new store.
    pub fn open(path: &str, options: Options) -> Result<KeyStore> {
        let path = PathBuf::from(path);
        if path.as_os_str().is_empty() {
            return Err(Error::new(ErrorCode::InvalidArgument, "the store path is empty"));
        }
        if path.is_dir() {
            return Err(Error::new(ErrorCode::StoreIo, format!("cannot open {}: it is a directory", path.display())));
        }
        if let Some(days) = options.max_lifetime_days {
            crate::store::check_lifetime_days(days)?;
        }
        if let Some(prefix) = &options.key_prefix {
            Prefix::new(prefix)?;
        }
        let purge_days = options.purge_expired_after_days.unwrap_or(DEFAULT_PURGE_AFTER_DAYS);
        if !(purge_days.is_finite() && purge_days >= 0.0) {
            return Err(Error::new(ErrorCode::InvalidArgument, format!("purgeExpiredAfterDays {purge_days} must be 0 or more")));
        }
        let existing = std::fs::metadata(&path).is_ok_and(|m| m.len() > 0);
        if existing && has_sqlite_header(&path).is_ok_and(|has| !has) {
            // SQLite would take a file shorter than its header for an empty
            // database and write over it.
            return Err(corrupt(&path, "it is not an SQLite database (no SQLite header)"));
        }
        let found = if existing { inspect(&path, &connect_read_only(&path)?)? } else { Found::Empty };
        let conn = connect(&path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        if conn.is_readonly(rusqlite::MAIN_DB).map_err(|e| store_error(&path, "cannot open", e))? {
            return Err(Error::new(
                ErrorCode::StoreIo,
                format!("cannot open {} for writing: the file or its directory is read-only", path.display()),
            ));
        }
        let mode: String =
            conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(|e| store_error(&path, "cannot switch to WAL", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::new(ErrorCode::StoreIo, format!("cannot use WAL mode for {} (got {mode})", path.display())));
        }
        conn.execute_batch("PRAGMA synchronous = FULL").map_err(|e| store_error(&path, "cannot configure", e))?;
        let (prefix, recorded_max_days) = migrate(&path, &conn, options.key_prefix.as_deref(), options.max_lifetime_days)?;
        // The limit given when the store was created applies to every process that does not set its own.
        let mut options = options;
        options.max_lifetime_days = options.max_lifetime_days.or(recorded_max_days);
        let (registry, last_seen) = match found {
            // Read before the write connection existed: what changed since is caught
            // up by the purge below, a write that starts by reading other processes' changes.
            Found::Store { registry, last_seen } => (*registry, last_seen),
            // A new store (made here or, at the same moment, by another process).
            Found::Empty => {
                conn.execute_batch("BEGIN").map_err(|e| read_error(&path, "reading", e))?;
                let loaded = load(&path, &conn)
                    .and_then(|registry| max_change(&conn).map(|latest| (registry, latest)).map_err(|e| read_error(&path, "reading", e)));
                end_open_transaction(&conn);
                loaded?
            }
        };
        let aux = connect(&path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        let backend = SqliteBackend {
            path: path.clone(),
            db: Mutex::new(Some(Db { conn, last_seen, needs_reload: false })),
            aux: Mutex::new(Some(aux)),
        };
        let store = KeyStore::with_backend(&options, prefix, registry, Box::new(backend))?;
        let purge_after_ms = (purge_days * 86_400_000.0) as i64;
        store.purge_expired(purge_after_ms)?;
        let weak = store.downgrade();
        let handle = std::thread::Builder::new()
            .name("keygate-store".into())
            .spawn(move || maintain(&weak, &path, purge_after_ms))
            .map_err(|e| Error::new(ErrorCode::StoreIo, format!("cannot start the store thread: {e}")))?;
        store.set_maintenance(handle);
        Ok(store)
    }
}

/// The maintenance thread's own view of the file.
struct Watcher {
    /// A read-only connection to notice other processes' commits (`None`: to be opened).
    reader: Option<Connection>,
    /// `PRAGMA data_version` when last looked (`None`: catch up at the next look).
    seen_version: Option<i64>,
    last_attempt: Instant,
    last_flush: Instant,
    last_purge: Instant,
}

/// The store's background work: notice other processes' commits, flush uses,
/// purge. It never ends silently: a failure of any task is reported (once per
/// episode), a failure to follow other processes' changes fails the store closed
/// until a later catch-up succeeds, and a defect is caught and does the same.
fn maintain(store: &Weak<Inner>, path: &Path, purge_after_ms: i64) {
    let long_ago = Instant::now().checked_sub(RETRY_EVERY).unwrap_or_else(Instant::now);
    let mut watcher =
        Watcher { reader: None, seen_version: None, last_attempt: long_ago, last_flush: Instant::now(), last_purge: Instant::now() };
    loop {
        std::thread::sleep(POLL_EVERY);
        let Some(store) = store.upgrade() else { return };
        if store.is_closed() {
            return;
        }
        let ran = catch_unwind(AssertUnwindSafe(|| tick(&store, path, &mut watcher, purge_after_ms)));
        if ran.is_err() {
            watcher.reader = None;
            watcher.seen_version = None;
            store.sync_failed(Error::new(ErrorCode::Internal, "internal error in the store's background thread; it starts over"));
        }
    }
}

fn tick(store: &Inner, path: &Path, watcher: &mut Watcher, purge_after_ms: i64) {
    let retry_due = watcher.last_attempt.elapsed() >= RETRY_EVERY;
    if watcher.reader.is_none() && (store.is_current() || retry_due) {
        watcher.last_attempt = Instant::now();
        match connect(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX) {
            Ok(conn) => {
                watcher.reader = Some(conn);
                watcher.seen_version = None;
            }
            Err(error) => store.sync_failed(error),
        }
    }
    if let Some(reader) = &watcher.reader {
        match reader.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0)) {
            Ok(version) => {
                let retry = !store.is_current() && retry_due;
                if watcher.seen_version != Some(version) || retry {
                    watcher.seen_version = Some(version);
                    watcher.last_attempt = Instant::now();
                    // Reports its own failure and recovery.
                    let _ = store.poll();
                }
            }
            Err(e) => {
                watcher.reader = None;
                store.sync_failed(read_error(path, "watching", e));
            }
        }
    }
    if watcher.last_flush.elapsed() >= FLUSH_EVERY {
        watcher.last_flush = Instant::now();
        store.report(Task::LastUsed, &store.flush_uses());
    }
    if watcher.last_purge.elapsed() >= PURGE_EVERY {
        watcher.last_purge = Instant::now();
        store.report(Task::Purge, &store.purge_expired(purge_after_ms).map(|_| ()));
    }
}
