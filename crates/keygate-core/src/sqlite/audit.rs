//! The audit trail in the file: the `audit` table (one hash-chained row per entry)
//! and its head recorded in `meta` (`audit_seq`, `audit_hash`: the last entry's
//! number and hash, so that a removed tail is noticed). Appending entries inside
//! an admin transaction, querying them, verifying the chain.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{corrupt, read_error};
use crate::audit::{
    extendable_head, hash_from_hex, hash_to_hex, seq_bound, stored_entry, AuditDraft, AuditEntry, AuditQuery, AuditReport, Damaged,
    StoredChain, GENESIS, MAX_AUDIT_SEQ,
};
use crate::error::Result;

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
/// for writing and verifying, [`Head::check`] before a store is opened and before each write.
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

    /// Strict: the head must be one the next write can extend ([`extendable_head`]: a
    /// missing value is the start of the chain, an unreadable one is not).
    pub(super) fn check(&self, path: &Path, conn: &Connection) -> Result<()> {
        let seq = match self.seq {
            Recorded::Missing => Some(0),
            Recorded::Valid(seq) => Some(seq),
            Recorded::Invalid => None,
        };
        let hash = match self.hash {
            Recorded::Missing => Some(GENESIS),
            Recorded::Valid(hash) => Some(hash),
            Recorded::Invalid => None,
        };
        // max() of a rebuilt table's column may be text, a blob or a fraction.
        let last = conn
            .query_row("SELECT coalesce(max(seq), 0) FROM audit", [], |r| Ok(entry_number(r.get_ref(0)?)))
            .map_err(|e| read_error(path, "reading the audit head of", e))?
            .map_err(|what: String| corrupt(path, Damaged::Unnumbered(what).describe()))?;
        extendable_head(seq, hash, last).map(drop).map_err(|problem| corrupt(path, problem))
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
    ])
    .and_then(super::changes::one_row)
}

fn set_head(conn: &Connection, seq: u64, hash: &[u8; 32]) -> rusqlite::Result<()> {
    let mut put = conn.prepare_cached("INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)")?;
    put.execute(params!["audit_seq", seq.to_string()]).and_then(super::changes::one_row)?;
    put.execute(params!["audit_hash", hash_to_hex(hash)]).and_then(super::changes::one_row)
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

/// A stored entry number, or what it is when it is no whole number, for messages: a number as it
/// is (never a secret), any other value by its type only (text written behind keygate's back may be anything).
fn entry_number(value: ValueRef<'_>) -> std::result::Result<i64, String> {
    match value {
        ValueRef::Integer(seq) => Ok(seq),
        ValueRef::Null => Err("nothing (NULL)".into()),
        ValueRef::Real(number) => Err(format!("a floating-point number ({number:?})")),
        ValueRef::Text(_) => Err("text".into()),
        ValueRef::Blob(_) => Err("a blob".into()),
    }
}

/// One audit row (`seq, at, actor, action, key_id, user_id, detail, hash`): an entry, or
/// (inside) a number or time keygate never writes.
fn read_audit(row: &Row) -> rusqlite::Result<std::result::Result<AuditEntry, Damaged>> {
    if let Err(what) = entry_number(row.get_ref(0)?) {
        return Ok(Err(Damaged::Unnumbered(what)));
    }
    Ok(stored_entry((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?)))
}

/// One audit row to verify: a row holding a value keygate cannot read (of another type,
/// invalid UTF-8: written behind its back), or a number or time it never writes, is damage
/// in its place in the chain ([`StoredChain`]), not an error ending the verification.
fn read_to_verify(row: &Row) -> rusqlite::Result<std::result::Result<AuditEntry, Damaged>> {
    match read_audit(row) {
        Err(
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::Utf8Error(..),
        ) => Ok(Err(Damaged::unreadable(row.get(0)?))),
        read => read,
    }
}

/// The statement selecting the entries `query` asks for, newest first, and its parameters. Only
/// the filters given are in it: a term such as `(?1 IS NULL OR key_id = ?1)` hides the column
/// from SQLite's planner, which then walks the whole trail from its newest entry (a key with one
/// old entry, or none, read every row: a million rows, half a second of a blocked event loop),
/// where `key_id = ?1` walks only that key's entries in `audit_by_key` (`user_id`: `audit_by_user`).
fn audit_statement(query: &AuditQuery) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut terms: Vec<&str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let mut filter = |term: &'static str, value: Option<Value>| {
        if let Some(value) = value {
            terms.push(term);
            values.push(value);
        }
    };
    filter("key_id = ?", query.key_id.clone().map(Value::Text));
    filter("user_id = ?", query.user_id.clone().map(Value::Text));
    filter("at >= ?", query.since.map(Value::Integer));
    filter("at <= ?", query.until.map(Value::Integer));
    filter("action = ?", query.action.map(|action| Value::Text(action.as_str().to_string())));
    filter("instr(lower(actor), lower(?)) > 0", query.actor.clone().map(Value::Text));
    filter("seq < ?", query.before_seq.map(|before| Value::Integer(seq_bound(before))));
    let limit = i64::try_from(query.limit.unwrap_or(100)).unwrap_or(i64::MAX);
    values.push(Value::Integer(limit));
    let filters = if terms.is_empty() { String::new() } else { format!(" WHERE {}", terms.join(" AND ")) };
    let sql = format!("SELECT seq, at, actor, action, key_id, user_id, detail, hash FROM audit{filters} ORDER BY seq DESC LIMIT ?");
    (sql, values)
}

/// The entries matching `query`, newest first. A row keygate cannot read, or one whose
/// number or time it never writes, is `STORE_CORRUPT`.
pub(super) fn select(path: &Path, conn: &Connection, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
    let read = |e| read_error(path, "reading the audit trail of", e);
    let (sql, values) = audit_statement(query);
    let mut stmt = conn.prepare_cached(&sql).map_err(read)?;
    let entries = stmt.query_map(rusqlite::params_from_iter(values), read_audit).map_err(read)?;
    entries.map(|entry| entry.map_err(read)?.map_err(|damaged| corrupt(path, damaged.describe()))).collect()
}

/// Verifies the whole chain against the recorded head (inside a read transaction).
pub(super) fn verify_all(conn: &Connection) -> rusqlite::Result<AuditReport> {
    let head = Head::read(conn)?.or_genesis();
    let mut stmt = conn.prepare("SELECT seq, at, actor, action, key_id, user_id, detail, hash FROM audit ORDER BY seq")?;
    // One row at a time: the trail grows for as long as the store lives.
    let mut chain = StoredChain::default();
    for row in stmt.query_map([], read_to_verify)? {
        if !chain.push(row?) {
            break;
        }
    }
    Ok(chain.finish(head))
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;
    use crate::store::AuditAction;

    fn draft(key_id: &str, user_id: &str) -> AuditDraft {
        AuditDraft {
            at: 1_800_000_000_000,
            actor: Some("admin".into()),
            action: "setState".into(),
            key_id: Some(key_id.into()),
            user_id: Some(user_id.into()),
            detail: serde_json::Value::Null,
        }
    }

    /// Rows SQLite stepped through for `query` (the virtual machine's steps: a few per row read).
    fn steps(conn: &Connection, query: &AuditQuery) -> (usize, i32) {
        let (sql, values) = audit_statement(query);
        let mut stmt = conn.prepare(&sql).unwrap();
        let found = stmt.query_map(rusqlite::params_from_iter(values), |_| Ok(())).unwrap().count();
        (found, stmt.get_status(StatementStatus::VmStep))
    }

    /// The trail of a busy store: one key's and one user's only entries are its first, under
    /// 5,000 entries of another key. Asked for them, the query reads their index entries, not
    /// the trail: a filter spelt `(?1 IS NULL OR key_id = ?1)` read all 5,001 rows (about 60,000
    /// steps; half a second of a blocked event loop for a million entries).
    #[test]
    fn a_key_or_user_filter_reads_that_key_or_users_entries_not_the_whole_trail() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(Path::new(":memory:"), &conn, None, None).unwrap();
        conn.execute_batch("BEGIN").unwrap();
        append(&conn, vec![draft("key_old", "old-user")]).unwrap();
        append(&conn, (0..5000).map(|_| draft("key_busy", "busy-user")).collect()).unwrap();
        conn.execute_batch("COMMIT").unwrap();
        let all = || AuditQuery::default();
        let cases = [
            ("a key", AuditQuery { key_id: Some("key_old".into()), ..all() }, 1),
            ("a key without entries", AuditQuery { key_id: Some("key_none".into()), ..all() }, 0),
            ("a user", AuditQuery { user_id: Some("old-user".into()), ..all() }, 1),
            ("a user, paged", AuditQuery { user_id: Some("old-user".into()), before_seq: Some(4000), ..all() }, 1),
            ("a key and an action", AuditQuery { key_id: Some("key_old".into()), action: Some(AuditAction::SetState), ..all() }, 1),
        ];
        for (what, query, expected) in cases {
            let (found, steps) = steps(&conn, &query);
            assert_eq!(found, expected, "{what}");
            assert!(steps < 200, "{what}: {steps} steps for {found} entries (the whole trail read)");
        }
        // The newest page with no filter stops at its limit.
        let (found, steps) = steps(&conn, &AuditQuery { limit: Some(10), ..all() });
        assert_eq!(found, 10);
        assert!(steps < 500, "{steps} steps for the newest 10 entries");
    }

    /// Counts the bytes the current thread holds in the heap while [`peak_heap_of`] runs a
    /// closure: the other tests' threads allocate meanwhile, uncounted.
    mod counting {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        pub(super) struct Counting;

        thread_local! {
            static COUNTING: Cell<bool> = const { Cell::new(false) };
            static HELD: Cell<isize> = const { Cell::new(0) };
            static PEAK: Cell<isize> = const { Cell::new(0) };
        }

        fn add(bytes: isize) {
            if COUNTING.with(Cell::get) {
                let held = HELD.with(|held| {
                    held.set(held.get() + bytes);
                    held.get()
                });
                PEAK.with(|peak| peak.set(peak.get().max(held)));
            }
        }

        // SAFETY: every call is passed to the system allocator unchanged; only counted beside it.
        unsafe impl GlobalAlloc for Counting {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                add(layout.size() as isize);
                // SAFETY: the caller's arguments, as `GlobalAlloc` requires them, passed on unchanged.
                unsafe { System.alloc(layout) }
            }
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                add(-(layout.size() as isize));
                // SAFETY: the caller's arguments, as `GlobalAlloc` requires them, passed on unchanged.
                unsafe { System.dealloc(ptr, layout) }
            }
            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
                add(new_size as isize - layout.size() as isize);
                // SAFETY: the caller's arguments, as `GlobalAlloc` requires them, passed on unchanged.
                unsafe { System.realloc(ptr, layout, new_size) }
            }
        }

        /// The most heap `run` held at once on this thread, in bytes, beyond what it started with.
        pub(super) fn peak_heap_of<T>(run: impl FnOnce() -> T) -> (T, isize) {
            HELD.with(|held| held.set(0));
            PEAK.with(|peak| peak.set(0));
            COUNTING.with(|counting| counting.set(true));
            let result = run();
            COUNTING.with(|counting| counting.set(false));
            (result, PEAK.with(Cell::get))
        }
    }

    #[global_allocator]
    static HEAP: counting::Counting = counting::Counting;

    #[test]
    fn verifying_a_long_trail_holds_one_entry_at_a_time_not_the_whole_trail() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(Path::new("test.db"), &conn, None, None).unwrap();
        let entries = 20_000;
        conn.execute_batch("BEGIN").unwrap();
        let detail = serde_json::json!({ "created": { "userId": "svc-requests", "description": "nightly import of the day's requests", "rules": ["session:*", "ip=10.0.0.0/8"] } });
        let drafts = (0..entries).map(|n| AuditDraft {
            at: 1_700_000_000_000 + n,
            actor: Some("alice".into()),
            action: "createKey".into(),
            key_id: Some(format!("key_{n}")),
            user_id: Some("svc-requests".into()),
            detail: detail.clone(),
        });
        append(&conn, drafts.collect()).unwrap();
        conn.execute_batch("COMMIT").unwrap();
        let (report, peak) = counting::peak_heap_of(|| verify_all(&conn).unwrap());
        assert!(report.ok, "{report:?}");
        assert_eq!(report.entries, entries as u64);
        // Measured before: 20,000 entries held at once, about 20 MB; a trail of millions took gigabytes.
        assert!(peak < 1_000_000, "verifying {entries} entries held {peak} bytes at once");
    }
}
