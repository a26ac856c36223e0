//! Records ↔ the database: a change list as the JSON of a `keygate_changes` row
//! (and of a notification), rows of the entity tables as records, and the
//! statements that write a change. A row or a change keygate could not have
//! written is `STORE_CORRUPT`, never a crash.

use serde_json::{json, Value};
use tokio_postgres::Row;

use crate::error::{Error, ErrorCode, Result};
use crate::model::{check_name_shape, KeyId, KeyState, UserStatus};
use crate::registry::{stored_key_seq, Change, KeyRecord, RoleRecord, UserRecord};

pub(super) fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::StoreCorrupt, format!("the PostgreSQL store holds data keygate cannot load: {what}"))
}

fn instant(what: &str, ms: i64) -> Result<i64> {
    if !crate::time::is_date(ms) {
        return Err(corrupt(format!("a key's {what} ({ms}) is not a representable date")));
    }
    Ok(ms)
}

fn name(what: &str, text: String) -> Result<String> {
    check_name_shape(what, &text).map_err(|e| corrupt(e.message))?;
    Ok(text)
}

pub(super) fn user_record(id: String, status: &str, rights: Vec<String>, roles: Vec<String>) -> Result<UserRecord> {
    let status = UserStatus::parse(status).map_err(|e| corrupt(e.message))?;
    let roles = roles.into_iter().map(|r| name("a role name", r)).collect::<Result<_>>()?;
    Ok(UserRecord { id: name("a user id", id)?, status, rights, roles })
}

pub(super) fn role_record(role: String, rights: Vec<String>) -> Result<RoleRecord> {
    Ok(RoleRecord { name: name("a role name", role)?, rights })
}

/// A key's fields as stored, before they are checked.
pub(super) struct RawKey {
    pub id: Vec<u8>,
    pub seq: i64,
    pub user_id: String,
    pub description: String,
    pub state: String,
    pub expires_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_used_at: Option<i64>,
    pub hint: String,
    pub digest: Vec<u8>,
    pub rules: Vec<String>,
}

pub(super) fn key_record(raw: RawKey) -> Result<KeyRecord> {
    let id = KeyId::from_bytes(raw.id.try_into().map_err(|_| corrupt("a key id is not 16 bytes"))?);
    let digest: [u8; 32] = raw.digest.try_into().map_err(|_| corrupt("a key digest is not 32 bytes"))?;
    let hint: [u8; 4] = raw
        .hint
        .into_bytes()
        .try_into()
        .ok()
        .filter(|hint: &[u8; 4]| hint.iter().all(u8::is_ascii_alphanumeric))
        .ok_or_else(|| corrupt("a key hint is not 4 letters or digits"))?;
    Ok(KeyRecord {
        id,
        seq: stored_key_seq(raw.seq)
            .ok_or_else(|| corrupt(format!("a key's sequence number ({}) is negative or leaves no room for the next key's", raw.seq)))?,
        user_id: name("a key's user id", raw.user_id)?,
        description: raw.description,
        state: KeyState::parse(&raw.state).map_err(|e| corrupt(e.message))?,
        expires_at: instant("expiry", raw.expires_at)?,
        created_at: instant("creation time", raw.created_at)?,
        updated_at: instant("update time", raw.updated_at)?,
        last_used_at: raw.last_used_at.map(|at| instant("last use", at)).transpose()?,
        hint,
        digest,
        rules: raw.rules,
    })
}

pub(super) const KEY_COLUMNS: &str =
    "id, seq, user_id, description, state, expires_at, created_at, updated_at, last_used_at, hint, digest, rules";

/// A row of `SELECT {KEY_COLUMNS} FROM keygate_keys`.
pub(super) fn key_row(row: &Row) -> Result<KeyRecord> {
    let raw = (|| {
        Ok::<_, tokio_postgres::Error>(RawKey {
            id: row.try_get(0)?,
            seq: row.try_get(1)?,
            user_id: row.try_get(2)?,
            description: row.try_get(3)?,
            state: row.try_get(4)?,
            expires_at: row.try_get(5)?,
            created_at: row.try_get(6)?,
            updated_at: row.try_get(7)?,
            last_used_at: row.try_get(8)?,
            hint: row.try_get(9)?,
            digest: row.try_get(10)?,
            rules: row.try_get(11)?,
        })
    })()
    .map_err(|e| corrupt(format!("a key row: {e}")))?;
    key_record(raw)
}

// ---- changes as JSON ---------------------------------------------------------

fn change_json(change: &Change) -> Value {
    match change {
        Change::PutUser(u) => json!({"op": "putUser", "id": u.id, "status": u.status.as_str(), "rights": u.rights, "roles": u.roles}),
        Change::DeleteUser(id) => json!({"op": "deleteUser", "id": id}),
        Change::PutRole(r) => json!({"op": "putRole", "name": r.name, "rights": r.rights}),
        Change::DeleteRole(name) => json!({"op": "deleteRole", "name": name}),
        Change::PutKey(k) => json!({
            "op": "putKey",
            "id": k.id.to_string(),
            "seq": k.seq,
            "userId": k.user_id,
            "description": k.description,
            "state": k.state.as_str(),
            "expiresAt": k.expires_at,
            "createdAt": k.created_at,
            "updatedAt": k.updated_at,
            "lastUsedAt": k.last_used_at,
            "hint": String::from_utf8_lossy(&k.hint),
            "digest": hex::encode(k.digest),
            "rules": k.rules,
        }),
        Change::DeleteKey(id) => json!({"op": "deleteKey", "id": id.to_string()}),
    }
}

/// The JSON text of one admin call's changes (a `keygate_changes` row).
pub(super) fn encode_changes(changes: &[Change]) -> String {
    Value::Array(changes.iter().map(change_json).collect()).to_string()
}

fn text(value: &Value, field: &str) -> Result<String> {
    value.get(field).and_then(Value::as_str).map(str::to_string).ok_or_else(|| corrupt(format!("a change has no text {field}")))
}

fn int(value: &Value, field: &str) -> Result<i64> {
    value.get(field).and_then(Value::as_i64).ok_or_else(|| corrupt(format!("a change has no integer {field}")))
}

fn texts(value: &Value, field: &str) -> Result<Vec<String>> {
    value
        .get(field)
        .and_then(Value::as_array)
        .and_then(|items| items.iter().map(|item| item.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
        .ok_or_else(|| corrupt(format!("a change has no list of texts {field}")))
}

fn key_id(text: &str) -> Result<KeyId> {
    text.parse().map_err(|_| corrupt("a change names a malformed key id"))
}

fn decode_change(value: &Value) -> Result<Change> {
    Ok(match text(value, "op")?.as_str() {
        "putUser" => {
            Change::PutUser(user_record(text(value, "id")?, &text(value, "status")?, texts(value, "rights")?, texts(value, "roles")?)?)
        }
        "deleteUser" => Change::DeleteUser(name("a user id", text(value, "id")?)?),
        "putRole" => Change::PutRole(role_record(text(value, "name")?, texts(value, "rights")?)?),
        "deleteRole" => Change::DeleteRole(name("a role name", text(value, "name")?)?),
        "putKey" => {
            let last_used_at = match value.get("lastUsedAt") {
                None | Some(Value::Null) => None,
                Some(_) => Some(int(value, "lastUsedAt")?),
            };
            Change::PutKey(key_record(RawKey {
                id: key_id(&text(value, "id")?)?.as_bytes().to_vec(),
                seq: int(value, "seq")?,
                user_id: text(value, "userId")?,
                description: text(value, "description")?,
                state: text(value, "state")?,
                expires_at: int(value, "expiresAt")?,
                created_at: int(value, "createdAt")?,
                updated_at: int(value, "updatedAt")?,
                last_used_at,
                hint: text(value, "hint")?,
                digest: hex::decode(text(value, "digest")?).map_err(|_| corrupt("a change's key digest is not hex"))?,
                rules: texts(value, "rules")?,
            })?)
        }
        "deleteKey" => Change::DeleteKey(key_id(&text(value, "id")?)?),
        other => return Err(corrupt(format!("a change of unknown kind {}", crate::error::quote(other)))),
    })
}

/// The changes of one `keygate_changes` row.
pub(super) fn decode_changes(json: &str) -> Result<Vec<Change>> {
    let value: Value = serde_json::from_str(json).map_err(|e| corrupt(format!("a change row is not JSON ({e})")))?;
    value.as_array().ok_or_else(|| corrupt("a change row is not a list"))?.iter().map(decode_change).collect()
}

// ---- writing a change ----------------------------------------------------------

/// One statement of a change's write, with its parameters.
pub(super) enum Param {
    Text(String),
    Bytes(Vec<u8>),
    Int(i64),
    OptInt(Option<i64>),
    OptText(Option<String>),
    Texts(Vec<String>),
}

impl Param {
    pub(super) fn as_sql(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        match self {
            Param::Text(v) => v,
            Param::Bytes(v) => v,
            Param::Int(v) => v,
            Param::OptInt(v) => v,
            Param::OptText(v) => v,
            Param::Texts(v) => v,
        }
    }
}

/// A statement that must change exactly one row, made to fail when it changes none:
/// a trigger that returns NULL (a `BEFORE` trigger missing its `RETURN NEW`) or a
/// row-level security policy would otherwise drop keygate's write without a word, and
/// the transaction would commit the change log and audit entry of a change its table
/// never got (hosts that read the table later would not see it: a revoked key allowed).
/// The division by a count of zero (SQLSTATE `22012`) aborts the transaction before its
/// COMMIT, in the same round trip; keygate divides nowhere else but in [`one_row_or_gone!`] and
/// [`every_row!`] (`Target::error`).
macro_rules! one_row {
    ($sql:literal) => {
        concat!("WITH written AS (", $sql, " RETURNING 1) SELECT 1 / count(*)::int FROM written")
    };
}
pub(super) use one_row;

/// [`one_row!`] for a `DELETE` of the row `$gone` says is absent (read, as the whole statement
/// reads, as it was before the delete): a row already gone (deleted by other means, which
/// running processes do not hear of) is deleted as asked, and its change logged so that they
/// apply it; only a row left in place was dropped by a trigger, rule or policy.
macro_rules! one_row_or_gone {
    ($delete:literal, $gone:literal) => {
        concat!("WITH written AS (", $delete, " RETURNING 1) SELECT 1 / (count(*)::int + (", $gone, ")::int) FROM written")
    };
}

/// A statement that must change every row its condition selects, made to fail (as
/// [`one_row!`]) when it changes fewer: the main query counts the rows as they stood
/// before the statement (it does not see its `WITH`'s changes). A trigger skipping some
/// of them would otherwise leave a deleted user's keys, or a deleted role in its holders'
/// rows, for hosts opened later to read.
macro_rules! every_row {
    ($sql:literal, $table:literal, $condition:literal) => {
        concat!(
            "WITH written AS (",
            $sql,
            " WHERE ",
            $condition,
            " RETURNING 1) SELECT 1 / ((SELECT count(*) FROM written) = (SELECT count(*) FROM ",
            $table,
            " WHERE ",
            $condition,
            "))::int"
        )
    };
}

/// The table a statement writes (its first `keygate_` name), for its error message.
pub(super) fn table_written(sql: &str) -> &str {
    sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).find(|word| word.starts_with("keygate_")).unwrap_or("a keygate table")
}

pub(super) const PUT_USER: &str = one_row!(
    "INSERT INTO keygate_users (id, status, rights, roles) VALUES ($1, $2, $3, $4)
     ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, rights = EXCLUDED.rights, roles = EXCLUDED.roles"
);
pub(super) const DELETE_USER_KEYS: &str = every_row!("DELETE FROM keygate_keys", "keygate_keys", "user_id = $1");
pub(super) const DELETE_USER: &str =
    one_row_or_gone!("DELETE FROM keygate_users WHERE id = $1", "NOT EXISTS (SELECT 1 FROM keygate_users WHERE id = $1)");
pub(super) const PUT_ROLE: &str =
    one_row!("INSERT INTO keygate_roles (name, rights) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET rights = EXCLUDED.rights");
pub(super) const DELETE_ROLE: &str =
    one_row_or_gone!("DELETE FROM keygate_roles WHERE name = $1", "NOT EXISTS (SELECT 1 FROM keygate_roles WHERE name = $1)");
pub(super) const DROP_ROLE_FROM_USERS: &str =
    every_row!("UPDATE keygate_users SET roles = array_remove(roles, $1)", "keygate_users", "$1 = ANY(roles)");
pub(super) const PUT_KEY: &str = one_row!(
    "INSERT INTO keygate_keys (id, seq, user_id, description, state, expires_at, created_at, updated_at, last_used_at, hint, digest, rules)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id, description = EXCLUDED.description, state = EXCLUDED.state,
       expires_at = EXCLUDED.expires_at, updated_at = EXCLUDED.updated_at, rules = EXCLUDED.rules,
       last_used_at = GREATEST(keygate_keys.last_used_at, EXCLUDED.last_used_at)"
);
pub(super) const DELETE_KEY: &str =
    one_row_or_gone!("DELETE FROM keygate_keys WHERE id = $1", "NOT EXISTS (SELECT 1 FROM keygate_keys WHERE id = $1)");

/// The statements (SQL and parameters) that write `change` to the entity tables.
pub(super) fn statements(change: &Change) -> Vec<(&'static str, Vec<Param>)> {
    match change {
        Change::PutUser(u) => vec![(
            PUT_USER,
            vec![
                Param::Text(u.id.clone()),
                Param::Text(u.status.as_str().to_string()),
                Param::Texts(u.rights.clone()),
                Param::Texts(u.roles.clone()),
            ],
        )],
        Change::DeleteUser(id) => vec![(DELETE_USER_KEYS, vec![Param::Text(id.clone())]), (DELETE_USER, vec![Param::Text(id.clone())])],
        Change::PutRole(r) => vec![(PUT_ROLE, vec![Param::Text(r.name.clone()), Param::Texts(r.rights.clone())])],
        Change::DeleteRole(name) => {
            vec![(DELETE_ROLE, vec![Param::Text(name.clone())]), (DROP_ROLE_FROM_USERS, vec![Param::Text(name.clone())])]
        }
        Change::PutKey(k) => vec![(
            PUT_KEY,
            vec![
                Param::Bytes(k.id.as_bytes().to_vec()),
                Param::Int(k.seq as i64),
                Param::Text(k.user_id.clone()),
                Param::Text(k.description.clone()),
                Param::Text(k.state.as_str().to_string()),
                Param::Int(k.expires_at),
                Param::Int(k.created_at),
                Param::Int(k.updated_at),
                Param::OptInt(k.last_used_at),
                Param::Text(String::from_utf8_lossy(&k.hint).into_owned()),
                Param::Bytes(k.digest.to_vec()),
                Param::Texts(k.rules.clone()),
            ],
        )],
        Change::DeleteKey(id) => vec![(DELETE_KEY, vec![Param::Bytes(id.as_bytes().to_vec())])],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_survive_their_json() {
        let key = KeyRecord {
            id: KeyId::from_bytes([7; 16]),
            seq: 3,
            user_id: "alice".into(),
            description: "ci \"deploy\"".into(),
            state: KeyState::Suspended,
            expires_at: 1_900_000_000_000,
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_001,
            last_used_at: Some(1_700_000_000_002),
            hint: *b"Ab12",
            digest: [9; 32],
            rules: vec!["api:orders:*".into()],
        };
        let changes = vec![
            Change::PutRole(RoleRecord { name: "ops".into(), rights: vec!["api:*:*".into()] }),
            Change::PutUser(UserRecord { id: "alice".into(), status: UserStatus::Active, rights: vec![], roles: vec!["ops".into()] }),
            Change::PutKey(key.clone()),
            Change::PutKey(KeyRecord { last_used_at: None, ..key }),
            Change::DeleteKey(KeyId::from_bytes([7; 16])),
            Change::DeleteRole("ops".into()),
            Change::DeleteUser("alice".into()),
        ];
        assert_eq!(decode_changes(&encode_changes(&changes)).unwrap(), changes);
    }

    #[test]
    fn malformed_changes_are_corrupt_not_a_crash() {
        for text in ["", "{}", "[{}]", "[{\"op\":\"putKey\"}]", "[{\"op\":\"deleteKey\",\"id\":\"key_x\"}]", "[{\"op\":\"nope\"}]"] {
            assert_eq!(decode_changes(text).unwrap_err().code, ErrorCode::StoreCorrupt, "{text}");
        }
    }
}
