//! The audit trail in the file: the `audit` table (one hash-chained row per entry)
//! and its head recorded in `meta` (`audit_seq`, `audit_hash`: the last entry's
//! number and hash, so that a removed tail is noticed). Appending entries inside
//! an admin transaction, querying them, verifying the chain.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{corrupt, read_error};
use crate::audit::{hash_from_hex, hash_to_hex, verify, AuditDraft, AuditEntry, AuditQuery, AuditReport, GENESIS};
use crate::error::Result;
use crate::store::AuditAction;

/// Largest audit sequence number a store may hold: SQLite integers are i64.
const MAX_AUDIT_SEQ: u64 = i64::MAX as u64 - 1;

/// A value of the audit head as recorded in `meta`.
enum Recorded<T> {
    Missing,
    Valid(T),
    /// Present, but not a value keygate writes.
    Invalid,
}

impl<T> Recorded<T> {
    fn parse(text: Option<String>, parse: impl FnOnce(&str) -> Option<T>) -> Recorded<T> {
        match text {
            None => Recorded::Missing,
            Some(text) => parse(&text).map_or(Recorded::Invalid, Recorded::Valid),
        }
    }
}

/// The recorded audit head, read once and judged by two policies: [`Head::or_genesis`]
/// for writing and verifying, [`Head::check`] before a store is opened.
pub(super) struct Head {
    seq: Recorded<u64>,
    hash: Recorded<[u8; 32]>,
}

impl Head {
    pub(super) fn read(conn: &Connection) -> rusqlite::Result<Head> {
        // Cached: the store thread reads the head every time it looks for other processes' changes.
        let meta = |name: &str| {
            conn.prepare_cached("SELECT value FROM meta WHERE name = ?1")?.query_row([name], |r| r.get::<_, String>(0)).optional()
        };
        Ok(Head {
            seq: Recorded::parse(meta("audit_seq")?, |text| text.parse().ok()),
            hash: Recorded::parse(meta("audit_hash")?, hash_from_hex),
        })
    }

    /// Lenient: a value missing or unreadable counts as the start of the chain
    /// (verification then reports where the chain and the head disagree).
    pub(super) fn or_genesis(&self) -> (u64, [u8; 32]) {
        let seq = match self.seq {
            Recorded::Valid(seq) => seq,
            Recorded::Missing | Recorded::Invalid => 0,
        };
        let hash = match self.hash {
            Recorded::Valid(hash) => hash,
            Recorded::Missing | Recorded::Invalid => GENESIS,
        };
        (seq, hash)
    }

    /// Strict: the head must be one the next write can extend — a number no
    /// smaller than the last entry's (smaller, the next entry would collide with a
    /// kept one) and far from overflowing, and a hash in hex. A head ahead of the
    /// entries is a removed tail, which `verifyAudit` reports; the store still opens.
    pub(super) fn check(&self, path: &Path, conn: &Connection) -> Result<()> {
        let seq = match self.seq {
            Recorded::Missing => 0,
            // `append` numbers the next entry seq + 1, which must not pass MAX_AUDIT_SEQ.
            Recorded::Valid(seq) if seq < MAX_AUDIT_SEQ => seq,
            Recorded::Valid(_) | Recorded::Invalid => return Err(corrupt(path, "its recorded audit head is not a valid sequence number")),
        };
        if let Recorded::Invalid = self.hash {
            return Err(corrupt(path, "its recorded audit hash is not 64 hex digits"));
        }
        let last: i64 = conn
            .query_row("SELECT coalesce(max(seq), 0) FROM audit", [], |r| r.get(0))
            .map_err(|e| read_error(path, "reading the audit head of", e))?;
        if u64::try_from(last).map_or(true, |last| last > seq) {
            return Err(corrupt(path, format!("its audit trail has entries (up to {last}) beyond its recorded head ({seq})")));
        }
        Ok(())
    }
}

/// The audit head (number and hash of the last entry) a process remembers with the state it
/// read: see [`holds`].
pub(super) type Mark = (u64, [u8; 32]);

/// The head of the chain in the file now (lenient, as [`Head::or_genesis`]).
pub(super) fn mark(conn: &Connection) -> rusqlite::Result<Mark> {
    Ok(Head::read(conn)?.or_genesis())
}

/// Whether the chain in the file still holds the entry `mark` names: true while the file is the
/// one the mark was read from, grown by later entries. False once an older copy was restored
/// into it (the entry is gone, or another one has its number), whatever was written since.
pub(super) fn holds(conn: &Connection, (seq, hash): Mark) -> rusqlite::Result<bool> {
    if seq == 0 {
        // The empty chain: every chain extends it.
        return Ok(true);
    }
    let Ok(seq) = i64::try_from(seq) else {
        return Ok(false);
    };
    let found = conn
        .prepare_cached("SELECT hash FROM audit WHERE seq = ?1")?
        .query_row([seq], |r| Ok(matches!(r.get_ref(0)?, ValueRef::Blob(stored) if stored == hash.as_slice())))
        .optional()?;
    Ok(found == Some(true))
}

pub(super) fn append(conn: &Connection, drafts: Vec<AuditDraft>) -> rusqlite::Result<()> {
    if drafts.is_empty() {
        return Ok(());
    }
    let (mut seq, mut prev) = Head::read(conn)?.or_genesis();
    for draft in drafts {
        seq = seq.checked_add(1).filter(|&next| next <= MAX_AUDIT_SEQ).ok_or(rusqlite::Error::IntegralValueOutOfRange(0, i64::MAX))?;
        let entry = AuditEntry::seal(&prev, seq, draft);
        insert(conn, &entry)?;
        prev = entry.hash;
    }
    set_head(conn, seq, &prev)
}

fn insert(conn: &Connection, entry: &AuditEntry) -> rusqlite::Result<()> {
    let seq = i64::try_from(entry.seq).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, i64::MAX))?;
    conn.prepare_cached(
        "INSERT INTO audit (seq, at, actor, action, key_id, user_id, detail, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        seq,
        entry.at,
        entry.actor,
        entry.action,
        entry.key_id,
        entry.user_id,
        entry.detail.to_string(),
        entry.hash.as_slice()
    ])?;
    Ok(())
}

fn set_head(conn: &Connection, seq: u64, hash: &[u8; 32]) -> rusqlite::Result<()> {
    let mut put = conn.prepare_cached("INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)")?;
    put.execute(params!["audit_seq", seq.to_string()])?;
    put.execute(params!["audit_hash", hash_to_hex(hash)])?;
    Ok(())
}

/// Writes entries sealed elsewhere (a copied store's trail) as they are, and
/// records the last as the head.
pub(super) fn import(conn: &Connection, entries: &[AuditEntry]) -> rusqlite::Result<()> {
    for entry in entries {
        insert(conn, entry)?;
    }
    match entries.last() {
        Some(last) => set_head(conn, last.seq, &last.hash),
        None => Ok(()),
    }
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

/// One audit row to verify: a row holding a value keygate cannot read (of another type,
/// invalid UTF-8: written behind its back) is an altered entry, in its place in the chain —
/// its hash stands for none that any content seals to — not an error ending the verification.
fn read_to_verify(row: &Row) -> rusqlite::Result<AuditEntry> {
    match read_audit(row) {
        Err(
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::Utf8Error(..),
        ) => Ok(AuditEntry {
            seq: row.get::<_, i64>(0)? as u64,
            at: 0,
            actor: None,
            action: String::new(),
            key_id: None,
            user_id: None,
            detail: serde_json::Value::Null,
            hash: [0; 32],
        }),
        read => read,
    }
}

/// The entries matching `query`, newest first.
pub(super) fn select(conn: &Connection, query: &AuditQuery) -> rusqlite::Result<Vec<AuditEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, at, actor, action, key_id, user_id, detail, hash FROM audit
         WHERE (?1 IS NULL OR key_id = ?1) AND (?2 IS NULL OR user_id = ?2) AND (?3 IS NULL OR at >= ?3)
           AND (?5 IS NULL OR at <= ?5) AND (?6 IS NULL OR action = ?6)
           AND (?7 IS NULL OR instr(lower(actor), lower(?7)) > 0)
         ORDER BY seq DESC LIMIT ?4",
    )?;
    let limit = query.limit.unwrap_or(100) as i64;
    let action = query.action.map(AuditAction::as_str);
    let entries = stmt.query_map(params![query.key_id, query.user_id, query.since, limit, query.until, action, query.actor], read_audit)?;
    entries.collect()
}

/// Verifies the whole chain against the recorded head (inside a read transaction).
pub(super) fn verify_all(conn: &Connection) -> rusqlite::Result<AuditReport> {
    let head = Head::read(conn)?.or_genesis();
    let mut stmt = conn.prepare("SELECT seq, at, actor, action, key_id, user_id, detail, hash FROM audit ORDER BY seq")?;
    let entries: Vec<AuditEntry> = stmt.query_map([], read_to_verify)?.collect::<rusqlite::Result<_>>()?;
    Ok(verify(entries.iter(), Some(head), None))
}
