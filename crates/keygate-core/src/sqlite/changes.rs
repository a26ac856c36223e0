//! The `changes` table: one row per entity an admin transaction wrote (kind, id,
//! put or delete), numbered in commit order. Writing a change (its entity's row
//! and its change row), and reading what other processes changed since this one
//! last looked.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{join, key_record, load, read_key, read_user, role_record, split, user_record, KEY_COLUMNS};
use super::{audit, corrupt, read_error, schema, Db};
use crate::backend::Catchup;
use crate::error::{quote, shown_path, Error, ErrorCode, Result};
use crate::model::KeyId;
use crate::registry::Change;

pub(super) fn latest(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| r.get(0))
}

/// Change numbers a store may have used and still be opened: the rest is room for
/// the changes still to come. Keygate numbers them from 1, so only a row written by
/// hand stands this high.
const MAX_OPEN_SEQ: i64 = i64::MAX - (1 << 32);

/// Refuses (read-only, at open) a change log numbered so high that the next change
/// could not be numbered: SQLite would refuse the write as `SQLITE_FULL`, a
/// `STORE_IO` that no space freed would cure. The highest number ever used is the
/// larger of the last row's and the one `sqlite_sequence` keeps for `AUTOINCREMENT`.
pub(super) fn check_room(path: &Path, conn: &Connection) -> Result<()> {
    let read = |err| read_error(path, "reading changes of", err);
    let mut used = latest(conn).map_err(read)?;
    // Absent only if no table of the file has AUTOINCREMENT (a changes table made by other means).
    let kept: bool = conn
        .query_row("SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_sequence'", [], |r| r.get(0))
        .map_err(read)?;
    if kept {
        let sequence: i64 = conn
            .query_row("SELECT coalesce(max(CAST(seq AS INTEGER)), 0) FROM sqlite_sequence WHERE name = 'changes'", [], |r| r.get(0))
            .map_err(read)?;
        used = used.max(sequence);
    }
    if used > MAX_OPEN_SEQ {
        return Err(corrupt(path, format!("its change log is numbered up to {used}, which leaves no room for the changes to come")));
    }
    Ok(())
}

/// What other processes changed after `db.last_seen`, as changes to apply (in order).
/// `db.last_seen` moves only when every change was read. A put is read as its row is
/// now; a put whose row is gone reads as a delete (as a later change of the same entity,
/// or of a key's user, would have it): the row is not in the file, so neither is the
/// entity, and keeping the one in memory would answer for a user, role or key the file
/// no longer holds. A copy restored into the file is told (see [`restored_error`]): found by
/// the background thread's look (`outside_write`), as an error first, so that the process
/// fails closed while it reads the file afresh; found by a write's own look, or while the
/// process already fails closed, with the state read afresh at once.
pub(super) fn since(path: &Path, db: &mut Db, outside_write: bool) -> Result<Catchup> {
    let e = |err| read_error(path, "reading changes of", err);
    let latest = latest(&db.conn).map_err(e)?;
    // An older copy restored into the file, then as many new changes as it went back, leaves
    // the log at the number read up to; but the audit chain no longer holds the entry it had.
    let head = audit::mark(&db.conn).map_err(e)?;
    // Another store's copy restored into the file (`KeyStore::copy`: the same audit chain, but
    // its log numbered afresh) is another log: its numbers say nothing of where this process stands.
    let log_id = schema::log_id(&db.conn).map_err(e)?;
    let other_log = log_id != db.log_id;
    let other_trail = !other_log && head != db.audit_mark && !audit::holds(&db.conn, db.audit_mark).map_err(e)?;
    let restored = other_log || other_trail;
    if latest == db.last_seen && !db.needs_reload && !restored {
        db.audit_mark = head;
        return Ok(Catchup::Nothing);
    }
    let oldest: i64 = db.conn.query_row("SELECT coalesce(min(seq), 0) FROM changes", [], |r| r.get(0)).map_err(e)?;
    // A log that ends before this process's place in it was put back (an older copy restored
    // into the file): the numbers after it are taken again by other changes, so none of them
    // can be told applied or not, and everything is read afresh.
    let went_back = restored || latest < db.last_seen;
    let sign = if other_log {
        "it holds another change log than the one this process read"
    } else if other_trail {
        "its audit trail no longer holds the entry this process last read"
    } else {
        "its change log ends before where this process stood"
    };
    if went_back && outside_write && !db.needs_reload {
        db.needs_reload = true;
        return Err(restored_error(path, sign));
    }
    if went_back || db.needs_reload || oldest > db.last_seen.saturating_add(1) {
        let registry = load(path, &db.conn)?;
        db.last_seen = latest;
        db.audit_mark = head;
        db.log_id = log_id;
        db.needs_reload = false;
        return Ok(Catchup::Reload(Box::new(registry), went_back.then(|| restored_error(path, sign))));
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
            ("key", "delete") => id.parse().ok().map(Change::DeleteKey),
            ("user", "put") => db
                .conn
                .query_row("SELECT id, status, rights, roles FROM users WHERE id = ?1", [&id], read_user)
                .optional()
                .map_err(e)?
                .map(|row| user_record(path, row))
                .transpose()?
                .map_or(Change::DeleteUser(id), Change::PutUser)
                .into(),
            ("role", "put") => db
                .conn
                .query_row("SELECT name, rights FROM roles WHERE name = ?1", [&id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .optional()
                .map_err(e)?
                .map(|(name, rights)| role_record(path, name, rights))
                .transpose()?
                .map_or(Change::DeleteRole(id), Change::PutRole)
                .into(),
            ("key", "put") => match id.parse::<KeyId>().ok() {
                Some(raw) => db
                    .conn
                    .query_row(&format!("SELECT {KEY_COLUMNS} FROM keys WHERE id = ?1"), [raw.as_bytes().as_slice()], read_key)
                    .optional()
                    .map_err(e)?
                    .map(|row| key_record(path, row))
                    .transpose()?
                    .map_or(Change::DeleteKey(raw), Change::PutKey)
                    .into(),
                None => None,
            },
            // Not read as a put: one naming a deleted user would keep it and its keys. The caller reads everything afresh.
            _ => return Err(corrupt(path, format!("unknown change {}/{}", quote(&kind), quote(&op)))),
        };
        changes.extend(change);
    }
    db.last_seen = latest;
    db.audit_mark = head;
    Ok(Catchup::Changes(changes))
}

/// A copy of the store restored into the file under this process (`.restore` of a backup): an
/// error, so that the episode is reported (`Inner::sync` reads the file afresh at once, and
/// reports the recovery) as the PostgreSQL store reports another history. Whatever was changed
/// after that copy, a revocation among it, is undone in every running process: the operator
/// must hear of it, to make those changes again.
fn restored_error(path: &Path, sign: &str) -> Error {
    Error::new(
        ErrorCode::StoreUnavailable,
        format!(
            "store {} was restored from another copy while open ({sign}): reading it afresh; what was changed after that copy \
             (a revocation among it) is undone: check it and make it again",
            shown_path(path)
        ),
    )
}

fn log_change(conn: &Connection, kind: &str, id: &str, op: &str) -> rusqlite::Result<()> {
    one_row(conn.prepare_cached("INSERT INTO changes (kind, id, op) VALUES (?1, ?2, ?3)")?.execute(params![kind, id, op])?)
}

/// Refuses a statement that changed no row where keygate writes one: a trigger added to
/// the file (`RAISE(IGNORE)`) dropped it, and the transaction must not commit the rest
/// (the change logged, the audit entry) without it (`store_error` says so).
pub(super) fn one_row(changed: usize) -> rusqlite::Result<()> {
    every_row(1, changed)
}

/// Refuses a statement that changed another number of rows than the `expected` ones it writes.
fn every_row(expected: usize, changed: usize) -> rusqlite::Result<()> {
    match changed {
        n if n == expected => Ok(()),
        n => Err(rusqlite::Error::StatementChangedRows(n)),
    }
}

/// [`one_row`] for a `DELETE` of the row `still_there` counts: a row already gone (deleted by
/// other means, which running processes do not see) is deleted as asked, and the change is
/// logged so that they apply it; only a row left in place was dropped by a trigger.
fn deleted(conn: &Connection, changed: usize, still_there: &str, id: impl rusqlite::ToSql) -> rusqlite::Result<()> {
    if changed == 0 && conn.prepare_cached(still_there)?.query_row([id], |r| r.get::<_, i64>(0))? == 0 {
        return Ok(());
    }
    one_row(changed)
}

pub(super) fn write(conn: &Connection, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::PutUser(u) => {
            conn.prepare_cached(
                "INSERT INTO users (id, status, rights, roles) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET status = excluded.status, rights = excluded.rights, roles = excluded.roles",
            )?
            .execute(params![u.id, u.status.as_str(), join(&u.rights), join(&u.roles)])
            .and_then(one_row)?;
            log_change(conn, "user", &u.id, "put")
        }
        Change::DeleteUser(id) => {
            // Every key of the user: one a trigger skipped would be left to a user no longer there.
            let held: usize = conn.prepare_cached("SELECT count(*) FROM keys WHERE user_id = ?1")?.query_row([id], |r| r.get(0))?;
            every_row(held, conn.prepare_cached("DELETE FROM keys WHERE user_id = ?1")?.execute([id])?)?;
            let changed = conn.prepare_cached("DELETE FROM users WHERE id = ?1")?.execute([id])?;
            deleted(conn, changed, "SELECT count(*) FROM users WHERE id = ?1", id)?;
            log_change(conn, "user", id, "delete")
        }
        Change::PutRole(r) => {
            conn.prepare_cached(
                "INSERT INTO roles (name, rights) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET rights = excluded.rights",
            )?
            .execute(params![r.name, join(&r.rights)])
            .and_then(one_row)?;
            log_change(conn, "role", &r.name, "put")
        }
        Change::DeleteRole(name) => {
            let changed = conn.prepare_cached("DELETE FROM roles WHERE name = ?1")?.execute([name])?;
            deleted(conn, changed, "SELECT count(*) FROM roles WHERE name = ?1", name)?;
            let holders: Vec<(String, String)> = conn
                .prepare_cached("SELECT id, roles FROM users WHERE instr(char(10) || roles || char(10), char(10) || ?1 || char(10)) > 0")?
                .query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (id, roles) in holders {
                let kept: Vec<String> = split(roles).into_iter().filter(|r| r != name).collect();
                one_row(conn.prepare_cached("UPDATE users SET roles = ?2 WHERE id = ?1")?.execute(params![id, join(&kept)])?)?;
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
                k.id.as_bytes().as_slice(),
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
            ])
            .and_then(one_row)?;
            log_change(conn, "key", &k.id.to_string(), "put")
        }
        Change::DeleteKey(id) => {
            let changed = conn.prepare_cached("DELETE FROM keys WHERE id = ?1")?.execute([id.as_bytes().as_slice()])?;
            deleted(conn, changed, "SELECT count(*) FROM keys WHERE id = ?1", id.as_bytes().as_slice())?;
            log_change(conn, "key", &id.to_string(), "delete")
        }
    }
}
