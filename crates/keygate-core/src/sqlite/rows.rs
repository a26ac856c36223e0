//! Rows ↔ records: how roles, users and keys are laid out in their tables, and
//! the checks a row must pass to be loaded (a row keygate could not have written
//! is `STORE_CORRUPT`, never a crash); reading the whole state.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use rusqlite::{Connection, Row};

use super::{corrupt, read_error};
use crate::error::{Error, Result};
use crate::model::{check_name_shape, KeyId, KeyState, UserStatus};
use crate::registry::{stored_key_seq, Change, KeyRecord, Registry, RoleRecord, UserRecord};

/// A list column: its items one per line.
pub(super) fn join(list: &[String]) -> String {
    list.join("\n")
}

pub(super) fn split(text: String) -> Vec<String> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').map(str::to_string).collect()
    }
}

pub(super) fn read_user(row: &Row) -> rusqlite::Result<(String, String, String, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

pub(super) fn user_record(path: &Path, (id, status, rights, roles): (String, String, String, String)) -> Result<UserRecord> {
    let status = UserStatus::parse(&status).map_err(|e| corrupt(path, e.message))?;
    stored_name(path, "a user id", &id)?;
    let roles = split(roles);
    for role in &roles {
        stored_name(path, "a role name", role)?;
    }
    Ok(UserRecord { id, status, rights: split(rights), roles })
}

pub(super) fn role_record(path: &Path, name: String, rights: String) -> Result<RoleRecord> {
    stored_name(path, "a role name", &name)?;
    Ok(RoleRecord { name, rights: split(rights) })
}

/// A stored id or name keygate could have written (never bidi controls, newlines, empty).
pub(super) fn stored_name(path: &Path, what: &str, name: &str) -> Result<()> {
    check_name_shape(what, name).map_err(|e| corrupt(path, e.message))
}

fn stored_instant(path: &Path, what: &str, ms: i64) -> Result<i64> {
    if !crate::time::is_date(ms) {
        return Err(corrupt(path, format!("a key's {what} ({ms}) is not a representable date")));
    }
    Ok(ms)
}

pub(super) const KEY_COLUMNS: &str =
    "id, seq, user_id, description, state, expires_at, created_at, updated_at, last_used_at, hint, digest, rules";

pub(super) type KeyRow = (Vec<u8>, i64, String, String, String, i64, i64, i64, Option<i64>, String, Vec<u8>, String);

pub(super) fn read_key(row: &Row) -> rusqlite::Result<KeyRow> {
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

pub(super) fn key_record(path: &Path, row: KeyRow) -> Result<KeyRecord> {
    let (id, seq, user_id, description, state, expires_at, created_at, updated_at, last_used_at, hint, digest, rules) = row;
    let id = KeyId::from_bytes(id.try_into().map_err(|_| corrupt(path, "a key id is not 16 bytes"))?);
    let digest: [u8; 32] = digest.try_into().map_err(|_| corrupt(path, "a key digest is not 32 bytes"))?;
    let hint: [u8; 4] = hint
        .into_bytes()
        .try_into()
        .ok()
        .filter(|hint: &[u8; 4]| hint.iter().all(u8::is_ascii_alphanumeric))
        .ok_or_else(|| corrupt(path, "a key hint is not 4 letters or digits"))?;
    let state = KeyState::parse(&state).map_err(|e| corrupt(path, e.message))?;
    stored_name(path, "a key's user id", &user_id)?;
    let seq = stored_key_seq(seq)
        .ok_or_else(|| corrupt(path, format!("a key's sequence number ({seq}) is negative or leaves no room for the next key's")))?;
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
pub(super) fn load(path: &Path, conn: &Connection) -> Result<Registry> {
    catch_unwind(AssertUnwindSafe(|| load_rows(path, conn)))
        .unwrap_or_else(|_| Err(corrupt(path, "a stored row could not be loaded (an internal error while reading it)")))
}

pub(super) fn load_rows(path: &Path, conn: &Connection) -> Result<Registry> {
    let e = |what: &'static str| move |err| read_error(path, what, err);
    let mut registry = Registry::default();
    // The count sizes the tables before the rows come. Not the largest rowid: a store that
    // created and deleted millions of keys over the years keeps it high, and room for 2^24 keys
    // cost one live key 300 MB. Counting walks the table's pages once; the load reads them anyway.
    let expected_keys = conn.query_row("SELECT count(*) FROM keys", [], |r| r.get::<_, i64>(0)).ok();
    registry.reserve_keys(expected_keys.and_then(|n| usize::try_from(n).ok()).unwrap_or(0));
    let fail = |err: Error| corrupt(path, err.message);
    let mut roles = conn.prepare("SELECT name, rights FROM roles").map_err(e("reading roles of"))?;
    let rows = roles.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(e("reading roles of"))?;
    for row in rows {
        let (name, rights) = row.map_err(e("reading roles of"))?;
        registry.load(Change::PutRole(role_record(path, name, rights)?)).map_err(fail)?;
    }
    let mut users = conn.prepare("SELECT id, status, rights, roles FROM users").map_err(e("reading users of"))?;
    for row in users.query_map([], read_user).map_err(e("reading users of"))? {
        let record = user_record(path, row.map_err(e("reading users of"))?)?;
        registry.load(Change::PutUser(record)).map_err(fail)?;
    }
    let mut keys = conn.prepare(&format!("SELECT {KEY_COLUMNS} FROM keys")).map_err(e("reading keys of"))?;
    for row in keys.query_map([], read_key).map_err(e("reading keys of"))? {
        let record = key_record(path, row.map_err(e("reading keys of"))?)?;
        registry.load(Change::PutKey(record)).map_err(fail)?;
    }
    Ok(registry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyStore, NewKey, Options, UserInput};

    /// A store whose only key holds a rowid left high by keys long deleted (SQLite numbers a new
    /// row past the largest one there is): its load makes room for one key, not for 2^24.
    #[test]
    fn a_high_rowid_left_by_deleted_keys_does_not_size_the_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.db");
        let store = KeyStore::open(path.to_str().unwrap(), Options::default()).unwrap();
        store.put_user(&UserInput { id: "svc".into(), rights: vec!["*:*".into()], ..Default::default() }, None).unwrap();
        let new_key = NewKey {
            user_id: "svc".into(),
            description: "the last of many".into(),
            expires_at: Some(crate::internals::system_now() + 86_400_000),
            rules: vec![],
            state: None,
        };
        store.create_key(&new_key, None).unwrap();
        store.close().unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("UPDATE keys SET rowid = 16777216").unwrap();
        let registry = load_rows(&path, &conn).unwrap();
        assert_eq!(registry.key_count(), 1);
        let (by_hint, by_id) = registry.key_room();
        assert!(by_hint < 1_000 && by_id < 1_000, "room for {by_hint} and {by_id} keys");
    }
}
