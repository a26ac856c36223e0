//! The audit trail in the database: `keygate_audit` (one hash-chained row per
//! entry, sealed exactly as the SQLite store seals them) and its head in the meta
//! row, read under the write lock so that the chain stays one across hosts.

use tokio_postgres::{Client, Row};

use super::codec::{corrupt, one_row};
use super::Net;
use crate::audit::{
    extendable_head, hash_from_hex, hash_to_hex, seq_bound, stored_entry, AuditDraft, AuditEntry, AuditQuery, AuditReport, Damaged,
    StoredChain, GENESIS, MAX_AUDIT_SEQ,
};
use crate::error::Result;
use crate::store::AuditAction;

const COLUMNS: &str = "seq, at, actor, action, key_id, user_id, detail, hash";

/// The most rows one statement of [`select`] reads.
const SELECT_BATCH: i64 = 1000;

/// The recorded head (last entry's number and hash), as verification reads it: an
/// unreadable value counts as the start of the chain (verification reports the disagreement).
pub(super) fn head(seq: i64, hash: &str) -> (u64, [u8; 32]) {
    (u64::try_from(seq).unwrap_or(0), hash_from_hex(hash).unwrap_or(GENESIS))
}

/// The recorded head as a write extends it, judged with `last`, the last stored entry's
/// number (`None`: no entry) — before the store is opened and under each write's lock
/// ([`extendable_head`]): `STORE_CORRUPT` otherwise, naming the numbers.
pub(super) fn extendable(seq: i64, hash: &str, last: Option<i64>) -> Result<(u64, [u8; 32])> {
    extendable_head(u64::try_from(seq).ok(), hash_from_hex(hash), last.unwrap_or(0)).map_err(corrupt)
}

/// An audit head: the last entry's number and hash.
pub(super) type Head = (u64, [u8; 32]);

/// Seals drafts on from `head`; returns the entries and the new head. `STORE_CORRUPT` when
/// they would be numbered past [`MAX_AUDIT_SEQ`] (only a head set by hand stands that near
/// it): refused, as SQLite refuses it, never numbered twice.
pub(super) fn seal(head: Head, drafts: Vec<AuditDraft>) -> Result<(Vec<AuditEntry>, Head)> {
    let (mut seq, mut prev) = head;
    let mut entries = Vec::with_capacity(drafts.len());
    for draft in drafts {
        seq = seq
            .checked_add(1)
            .filter(|&next| next <= MAX_AUDIT_SEQ)
            .ok_or_else(|| corrupt(format!("its audit trail has no entry number left after {seq}")))?;
        let entry = AuditEntry::seal(&prev, seq, draft);
        prev = entry.hash;
        entries.push(entry);
    }
    Ok((entries, (seq, prev)))
}

pub(super) const INSERT: &str =
    one_row!("INSERT INTO keygate_audit (seq, at, actor, action, key_id, user_id, detail, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");

pub(super) const SET_HEAD: &str = one_row!("UPDATE keygate_meta SET version = $1, audit_seq = $2, audit_hash = $3, mark = $4 WHERE id = 1");

pub(super) fn head_hex(hash: &[u8; 32]) -> String {
    hash_to_hex(hash)
}

/// One audit row (`COLUMNS`): an entry, or (inside) a number or time keygate never writes;
/// the error is a value of another type than keygate writes (a column changed by hand).
fn entry(r: &Row) -> std::result::Result<std::result::Result<AuditEntry, Damaged>, tokio_postgres::Error> {
    let stored = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?, r.try_get(6)?, r.try_get(7)?);
    Ok(stored_entry(stored))
}

/// The error of a row whose values are not of the types keygate writes.
fn unreadable(e: tokio_postgres::Error) -> crate::error::Error {
    corrupt(format!("an audit row: {e}"))
}

/// The entries matching `query`, newest first. A row keygate cannot read, or one whose
/// number or time it never writes, is `STORE_CORRUPT` (as in the SQLite store).
pub(super) fn select(net: &Net, client: &Client, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
    // `lower` under the "C" collation changes ASCII letters only, as SQLite's and the in-memory
    // store's do (the database's own collation would change `Ü` too).
    // PostgreSQL text cannot hold a NUL, nor can a stored actor, key id or user id: nothing matches.
    if [&query.key_id, &query.user_id, &query.actor].into_iter().flatten().any(|text| text.contains('\0')) {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM keygate_audit
         WHERE ($1::text IS NULL OR key_id = $1) AND ($2::text IS NULL OR user_id = $2) AND ($3::bigint IS NULL OR at >= $3)
           AND ($5::bigint IS NULL OR at <= $5) AND ($6::text IS NULL OR action = $6)
           AND ($7::text IS NULL OR strpos(lower(actor COLLATE \"C\"), lower($7 COLLATE \"C\")) > 0)
           AND seq <= COALESCE($8::bigint - 1, 9223372036854775807)
         ORDER BY seq DESC LIMIT $4"
    );
    let action = query.action.map(AuditAction::as_str);
    // In batches, each found from where the last ended (`seq` below the last one read), so that
    // each statement's first row comes from the primary key at once. One statement for all
    // rows is planned as a sort of every matching row before the first is sent (on a slow host
    // 180 ms at 200,000 entries, over a short statement timeout); and rows are streamed within
    // a batch, the statement timeout bounding each wait, not the whole read (a copy reads every
    // entry of the trail). Entries are only ever appended, above the bound: the batches agree.
    let mut remaining = i64::try_from(query.limit.unwrap_or(100)).unwrap_or(i64::MAX);
    let mut before = query.before_seq.map(seq_bound);
    let mut entries = Vec::new();
    while remaining > 0 {
        let batch = remaining.min(SELECT_BATCH);
        let read_before = entries.len();
        net.for_each_row(
            "reading the audit trail of",
            client,
            sql.as_str(),
            &[&query.key_id, &query.user_id, &query.since, &batch, &query.until, &action, &query.actor, &before],
            |row| {
                entries.push(entry(row).map_err(unreadable)?.map_err(|damaged| corrupt(damaged.describe()))?);
                Ok(())
            },
        )?;
        let read = i64::try_from(entries.len().saturating_sub(read_before)).unwrap_or(i64::MAX);
        match entries.last() {
            Some(last) if read == batch => before = Some(seq_bound(last.seq)),
            _ => break,
        }
        remaining = remaining.saturating_sub(read);
    }
    Ok(entries)
}

/// Verifies the whole chain against the recorded head, in one snapshot.
pub(super) fn verify_all(net: &Net, client: &Client) -> Result<AuditReport> {
    net.run("reading the audit trail of", client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))?;
    let read = (|| {
        let meta =
            net.run("reading the audit trail of", client.query_one("SELECT audit_seq, audit_hash FROM keygate_meta WHERE id = 1", &[]))?;
        let recorded = head(meta.try_get(0).unwrap_or(0), &meta.try_get::<_, String>(1).unwrap_or_default());
        // Streamed, as `select` is: a trail of any length verifies. A row keygate cannot read,
        // or whose number or time it never writes, is damage in its place in the chain, as in
        // the SQLite store (`StoredChain`), verified as it arrives: held, a long trail took
        // gigabytes of the process's memory.
        let mut chain = StoredChain::default();
        net.for_each_row(
            "reading the audit trail of",
            client,
            format!("SELECT {COLUMNS} FROM keygate_audit ORDER BY seq").as_str(),
            &[],
            |row| {
                let read = match entry(row) {
                    Ok(read) => read,
                    Err(_) => Err(Damaged::unreadable(row.try_get(0).map_err(unreadable)?)),
                };
                // Once the report is known, the rest of the rows are only read past.
                chain.push(read);
                Ok(())
            },
        )?;
        Ok(chain.finish(recorded))
    })();
    // After a failed read the connection is dropped (see `Shared::with_writer`), which ends the
    // transaction; a COMMIT sent behind a read that got no answer (its table locked, a lost
    // server) would only wait out the statement timeout once more.
    if read.is_ok() {
        let _ = net.run("reading the audit trail of", client.batch_execute("COMMIT"));
    }
    read
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn draft(action: &str) -> AuditDraft {
        AuditDraft { at: 0, actor: None, action: action.into(), key_id: None, user_id: None, detail: serde_json::Value::Null }
    }

    #[test]
    fn entries_are_numbered_on_from_the_head_and_chained() {
        let (entries, head) = seal((0, GENESIS), vec![draft("a"), draft("b")]).unwrap();
        assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(entries[1].hash, AuditEntry::seal(&entries[0].hash, 2, draft("b")).hash);
        assert_eq!(head, (2, entries[1].hash));
    }

    #[test]
    fn entries_past_the_last_number_are_refused_not_numbered_twice() {
        let near = (MAX_AUDIT_SEQ - 1, GENESIS);
        let (entries, head) = seal(near, vec![draft("last")]).unwrap();
        assert_eq!((entries[0].seq, head.0), (MAX_AUDIT_SEQ, MAX_AUDIT_SEQ));
        let error = seal(near, vec![draft("last"), draft("one too many")]).unwrap_err();
        assert_eq!(error.code, ErrorCode::StoreCorrupt);
        assert!(error.message.contains("no entry number left"), "{}", error.message);
        assert!(seal((MAX_AUDIT_SEQ, GENESIS), vec![draft("x")]).is_err());
        assert!(seal((u64::MAX, GENESIS), vec![draft("x")]).is_err());
    }
}
