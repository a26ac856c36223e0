//! keygate's tables as an open finds them, before anything is written: none of them (a new
//! database), all of them as keygate makes them, or damaged (a table, a column, a type or a
//! primary key not as keygate made it): `STORE_CORRUPT` naming what is wrong.

use tokio_postgres::Client;

use super::codec::corrupt;
use super::schema::{written_by_newer, SCHEMA_VERSION};
use super::Net;
use crate::error::Result;

/// keygate's tables and the type (`pg_type.typname`) of each column, as `SCHEMA` and the
/// migrations make them (`schema.rs`). Checked at every open, so a mismatch here fails
/// every test that opens a PostgreSQL store.
const TABLES: &[(&str, &[(&str, &str)])] = &[
    (
        "keygate_meta",
        &[
            ("id", "int4"),
            ("schema_version", "int4"),
            ("epoch", "text"),
            ("version", "int8"),
            ("key_prefix", "text"),
            ("max_lifetime_days", "float8"),
            ("audit_seq", "int8"),
            ("audit_hash", "text"),
            ("mark", "text"),
        ],
    ),
    ("keygate_roles", &[("name", "text"), ("rights", "_text")]),
    ("keygate_users", &[("id", "text"), ("status", "text"), ("rights", "_text"), ("roles", "_text")]),
    (
        "keygate_keys",
        &[
            ("id", "bytea"),
            ("seq", "int8"),
            ("user_id", "text"),
            ("description", "text"),
            ("state", "text"),
            ("expires_at", "int8"),
            ("created_at", "int8"),
            ("updated_at", "int8"),
            ("last_used_at", "int8"),
            ("hint", "text"),
            ("digest", "bytea"),
            ("rules", "_text"),
        ],
    ),
    ("keygate_changes", &[("version", "int8"), ("token", "text"), ("at", "int8"), ("changes", "text"), ("mark", "text")]),
    (
        "keygate_audit",
        &[
            ("seq", "int8"),
            ("at", "int8"),
            ("actor", "text"),
            ("action", "text"),
            ("key_id", "text"),
            ("user_id", "text"),
            ("detail", "text"),
            ("hash", "bytea"),
        ],
    ),
];

/// Columns schema 1 lacks, added by its migration.
const ADDED_BY_MIGRATION: &[(&str, &str)] = &[("keygate_meta", "mark"), ("keygate_changes", "mark")];

/// Columns keygate's statements need unique (a primary key, or a unique index in its place):
/// the meta row is read as the one row with id 1, the others are written `ON CONFLICT` on them.
const UNIQUE: &[(&str, &str)] = &[("keygate_meta", "id"), ("keygate_roles", "name"), ("keygate_users", "id"), ("keygate_keys", "id")];

/// Whether keygate's tables are there (`false`: none is, a new database). Some but not all
/// of them, a column missing or of another type, a primary key keygate relies on missing, is
/// `STORE_CORRUPT`, refused before anything is written (as the SQLite store refuses a dropped
/// table or column): creating the schema over what is left would fail half-way, and reading
/// or writing it would fail on every reload or admin call.
pub(super) fn examine(net: &Net, client: &Client) -> Result<bool> {
    let names: Vec<&str> = TABLES.iter().map(|(table, _)| *table).collect();
    let rows = net.run(
        "reading the schema of",
        client.query(
            "SELECT t.name, a.attname::text, ty.typname::text,
                    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum
                            AND i.indisunique AND i.indimmediate AND i.indisvalid AND i.indpred IS NULL)
             FROM unnest($1::text[]) AS t(name)
             LEFT JOIN pg_attribute a ON a.attrelid = to_regclass(t.name) AND a.attnum > 0 AND NOT a.attisdropped
             LEFT JOIN pg_type ty ON ty.oid = a.atttypid",
            &[&names],
        ),
    )?;
    let mut found: Vec<(String, String, String, bool)> = Vec::new();
    for row in &rows {
        let read = (|| {
            Ok::<_, tokio_postgres::Error>((
                row.try_get(0)?,
                row.try_get::<_, Option<String>>(1)?,
                row.try_get::<_, Option<String>>(2)?,
                row.try_get::<_, bool>(3)?,
            ))
        })();
        let (table, column, type_name, unique) = read.map_err(|e| corrupt(format!("its tables: {e}")))?;
        if let (Some(column), Some(type_name)) = (column, type_name) {
            found.push((table, column, type_name, unique));
        }
    }
    let has_table = |table: &str| found.iter().any(|(t, _, _, _)| t == table);
    if !names.iter().any(|table| has_table(table)) {
        return Ok(false);
    }
    let Some(damage) = damage_in(&found) else { return Ok(true) };
    // A newer keygate's tables may differ from these: said as such (the schema version is read
    // after this check), not as damage.
    if found.iter().any(|(t, c, ty, _)| t == "keygate_meta" && c == "schema_version" && ty == "int4") {
        let newest = net.run("reading the schema of", client.query_one("SELECT max(schema_version) FROM keygate_meta", &[]));
        if let Some(version) = newest.ok().and_then(|row| row.try_get::<_, Option<i32>>(0).ok().flatten()) {
            if version > SCHEMA_VERSION {
                return Err(written_by_newer(version));
            }
        }
    }
    Err(corrupt(damage))
}

/// What [`examine`] found unlike [`TABLES`] and [`UNIQUE`], if anything.
fn damage_in(found: &[(String, String, String, bool)]) -> Option<String> {
    let column = |table: &str, column: &str| found.iter().find(|(t, c, _, _)| t == table && c == column);
    for (table, columns) in TABLES {
        if !found.iter().any(|(t, _, _, _)| t == table) {
            return Some(format!("its table {table} is missing (other keygate tables are there)"));
        }
        for (name, wanted) in *columns {
            match column(table, name) {
                Some((_, _, type_name, _)) if type_name != wanted => {
                    return Some(format!("column {table}.{name} is of type {type_name}, not {wanted}"));
                }
                Some(_) => {}
                None if ADDED_BY_MIGRATION.contains(&(*table, *name)) => {}
                None => return Some(format!("column {table}.{name} is missing")),
            }
        }
    }
    UNIQUE
        .iter()
        .find(|(table, name)| !column(table, name).is_some_and(|(_, _, _, unique)| *unique))
        .map(|(table, name)| format!("its table {table} has no primary key or unique index on {name}"))
}
