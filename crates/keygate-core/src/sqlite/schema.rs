//! The schema: its tables, its version (`PRAGMA user_version`) and the settings
//! recorded in `meta`; creating it in a new file, and checking that an existing
//! file holds a keygate store this version reads.

use std::collections::HashSet;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::{corrupt, read_error, store_error};
use crate::error::{quote, Error, ErrorCode, Result};
use crate::secret::Prefix;
use crate::store::check_lifetime_days;

/// Schema version written to `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;

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

/// Settings recorded in the store: its key prefix, and the lifetime limit given
/// when it was created (if one was).
pub(super) type Meta = (Prefix, Option<f64>);

/// Checks that the file holds a keygate store this version reads: its schema
/// version, every table and column, its recorded settings. `None` for an SQLite
/// file with no schema version and no tables, where a new store is made.
pub(super) fn examine(path: &Path, conn: &Connection) -> Result<Option<Meta>> {
    let read = |e| read_error(path, "reading", e);
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(read)?;
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(read)?;
    check_version(path, version, tables)?;
    // keygate never sets it: a file another application has claimed, before it made any table,
    // is not made a store (keygate's tables added to it).
    let application: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(read)?;
    if application != 0 {
        return Err(corrupt(path, format!("it is another application's SQLite database (application_id {application})")));
    }
    if version == 0 {
        return Ok(None);
    }
    check_schema(path, conn)?;
    read_meta(path, conn).map(Some)
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
fn read_meta(path: &Path, conn: &Connection) -> Result<Meta> {
    let read = |e| read_error(path, "reading", e);
    let stored: String = conn
        .query_row("SELECT value FROM meta WHERE name = 'key_prefix'", [], |r| r.get(0))
        .optional()
        .map_err(read)?
        .ok_or_else(|| corrupt(path, "its key prefix is missing"))?;
    let prefix = Prefix::new(&stored).map_err(|_| corrupt(path, "its key prefix is invalid"))?;
    let max_days: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE name = 'max_lifetime_days'", [], |r| r.get::<_, String>(0))
        .optional()
        .map_err(read)?;
    // Never left out when unreadable: the default (730 days) would allow expiries the store's limit refuses.
    let max_days = match max_days {
        Some(text) => {
            let days: f64 =
                text.parse().map_err(|_| corrupt(path, format!("its recorded maxLifetimeDays {} is not a number", quote(&text))))?;
            check_lifetime_days(days).map_err(|e| corrupt(path, format!("its recorded {}", e.message)))?;
            Some(days)
        }
        None => None,
    };
    Ok((prefix, max_days))
}

/// Creates the schema in a new file, or checks an existing file's (see [`examine`]),
/// under the write lock. Returns the settings recorded in the store.
pub(super) fn migrate(path: &Path, conn: &Connection, wanted_prefix: Option<&str>, wanted_max_days: Option<f64>) -> Result<Meta> {
    let e = |what: &'static str| move |err| store_error(path, what, err);
    conn.execute_batch("BEGIN IMMEDIATE").map_err(e("locking"))?;
    let result = (|| {
        let (prefix, max_days) = match examine(path, conn)? {
            Some(meta) => {
                // A store made before the log id was recorded gets one (processes that have it
                // open then read it afresh once).
                record_log_id(conn).map_err(|err| store_error(path, "writing", err))?;
                meta
            }
            None => {
                create(path, conn, wanted_prefix, wanted_max_days)?;
                read_meta(path, conn)?
            }
        };
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

/// Records the `maxLifetimeDays` of a store filled by a copy (in the copy's transaction), as
/// [`create`] records one given at creation.
pub(super) fn record_max_lifetime_days(conn: &Connection, days: u32) -> rusqlite::Result<()> {
    conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('max_lifetime_days', ?1)", [days.to_string()])?;
    Ok(())
}

/// Writes the schema and the settings of a new store, then its schema version.
fn create(path: &Path, conn: &Connection, wanted_prefix: Option<&str>, wanted_max_days: Option<f64>) -> Result<()> {
    let e = |err| store_error(path, "creating", err);
    let prefix = match wanted_prefix {
        Some(p) => Prefix::new(p)?,
        None => Prefix::default(),
    };
    conn.execute_batch(SCHEMA).map_err(e)?;
    conn.execute("INSERT INTO meta (name, value) VALUES ('key_prefix', ?1)", [prefix.as_str()]).map_err(e)?;
    if let Some(days) = wanted_max_days {
        conn.execute("INSERT INTO meta (name, value) VALUES ('max_lifetime_days', ?1)", [days.to_string()]).map_err(e)?;
    }
    record_log_id(conn).map_err(e)?;
    conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}")).map_err(e)?;
    Ok(())
}

/// The id of the store's change log (`meta.log_id`, random, made with the store): a backup
/// keeps it, a copy (`KeyStore::copy`, another store) has its own. The log's numbers only
/// say where a process stands within one log. `None` in a store made before it was recorded.
pub(super) fn log_id(conn: &Connection) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM meta WHERE name = 'log_id'")?.query_row([], |r| r.get(0)).optional()
}

/// Records a new random log id unless the store has one (under the write lock).
fn record_log_id(conn: &Connection) -> rusqlite::Result<()> {
    let id = crate::secret::random_hex::<16>().map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.message.into()))?;
    conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('log_id', ?1)", [id])?;
    Ok(())
}
