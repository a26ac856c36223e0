//! The audit trail: one entry per change, with time, actor, the operation, the
//! key or user it touched and what changed — never a secret or its digest.
//! Entries are hash-chained: each entry's hash covers the previous hash and the
//! entry's own fields, so an altered or removed entry breaks the chain.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::model::Key;
use crate::registry::{Change, KeyRecord, Registry, RoleRecord, UserRecord};
use crate::store::AuditAction;

/// An entry before the log gives it its place (sequence number and hash).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditDraft {
    pub at: i64,
    pub actor: Option<String>,
    pub action: String,
    pub key_id: Option<String>,
    pub user_id: Option<String>,
    /// What changed: `{ field: [before, after] }`, or the fields of what was created/deleted.
    pub detail: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: i64,
    pub actor: Option<String>,
    pub action: String,
    pub key_id: Option<String>,
    pub user_id: Option<String>,
    pub detail: Value,
    pub hash: [u8; 32],
}

/// Filter of `KeyStore::audit`.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub action: Option<AuditAction>,
    /// Entries whose actor contains this text, ASCII letters matched in either case
    /// (as SQLite's `lower` does, so that both stores agree). Empty text is refused
    /// (`INVALID_ARGUMENT`): every actor contains it.
    pub actor: Option<String>,
    pub key_id: Option<String>,
    pub user_id: Option<String>,
    /// Entries at or after this instant.
    pub since: Option<i64>,
    /// Entries at or before this instant.
    pub until: Option<i64>,
    /// Entries numbered below this one: the page after an entry already read (its `seq`),
    /// which `until` cannot give when more entries than a page share one instant.
    pub before_seq: Option<u64>,
    pub limit: Option<usize>,
}

/// Result of verifying the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub ok: bool,
    pub entries: u64,
    /// The first entry found altered, or the first sequence number missing.
    pub first_bad_seq: Option<u64>,
    pub problem: Option<String>,
}

pub const GENESIS: [u8; 32] = [0; 32];

/// [`AuditQuery::before_seq`] as the SQL stores compare it (a signed 64-bit column): a bound
/// above every number they hold stays above them all.
pub(crate) fn seq_bound(before: u64) -> i64 {
    i64::try_from(before).unwrap_or(i64::MAX)
}

/// An audit hash as text: 64 lower-case hex digits, as the API shows entries
/// and the durable store records the head of its chain.
pub(crate) fn hash_to_hex(hash: &[u8; 32]) -> String {
    hex::encode(hash)
}

/// Reads back what [`hash_to_hex`] wrote (hex digits of either case); `None` for anything else.
pub(crate) fn hash_from_hex(text: &str) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text, &mut hash).ok()?;
    Some(hash)
}

fn field(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

/// An optional field: a presence byte, then the field (so absent ≠ empty).
fn optional(hasher: &mut Sha256, value: Option<&str>) {
    match value {
        None => hasher.update([0u8]),
        Some(text) => {
            hasher.update([1u8]);
            field(hasher, text.as_bytes());
        }
    }
}

/// The chained hash of an entry: length-prefixed fields after the previous hash.
pub fn chain_hash(prev: &[u8; 32], seq: u64, draft: &AuditDraft) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(draft.at.to_be_bytes());
    optional(&mut h, draft.actor.as_deref());
    field(&mut h, draft.action.as_bytes());
    optional(&mut h, draft.key_id.as_deref());
    optional(&mut h, draft.user_id.as_deref());
    field(&mut h, draft.detail.to_string().as_bytes());
    h.finalize().into()
}

impl AuditEntry {
    pub fn seal(prev: &[u8; 32], seq: u64, draft: AuditDraft) -> AuditEntry {
        let hash = chain_hash(prev, seq, &draft);
        AuditEntry {
            seq,
            at: draft.at,
            actor: draft.actor,
            action: draft.action,
            key_id: draft.key_id,
            user_id: draft.user_id,
            detail: draft.detail,
            hash,
        }
    }

    /// The entry's hash as 64 lower-case hex digits.
    pub fn hash_hex(&self) -> String {
        hash_to_hex(&self.hash)
    }

    pub fn draft(&self) -> AuditDraft {
        AuditDraft {
            at: self.at,
            actor: self.actor.clone(),
            action: self.action.clone(),
            key_id: self.key_id.clone(),
            user_id: self.user_id.clone(),
            detail: self.detail.clone(),
        }
    }

    pub fn matches(&self, query: &AuditQuery) -> bool {
        query.key_id.as_ref().is_none_or(|k| self.key_id.as_ref() == Some(k))
            && query.user_id.as_ref().is_none_or(|u| self.user_id.as_ref() == Some(u))
            && query.since.is_none_or(|since| self.at >= since)
            && query.until.is_none_or(|until| self.at <= until)
            && query.before_seq.is_none_or(|before| self.seq < before)
            && query.action.is_none_or(|action| self.action == action.as_str())
            && query
                .actor
                .as_ref()
                .is_none_or(|part| self.actor.as_ref().is_some_and(|actor| actor.to_ascii_lowercase().contains(&part.to_ascii_lowercase())))
    }
}

/// Verifies entries given in sequence order; `expected_head` is the hash and
/// count the log recorded beside the entries (to notice removal at the end).
/// `window_start` is the first sequence number of a log that keeps only its
/// latest entries (the in-memory store): the chain is checked from there.
pub fn verify<'a>(
    entries: impl Iterator<Item = &'a AuditEntry>,
    expected_head: Option<(u64, [u8; 32])>,
    window_start: Option<u64>,
) -> AuditReport {
    let mut entries = entries.peekable();
    let mut chain = Chain::default();
    if let (Some(start), Some(first)) = (window_start, entries.peek()) {
        if start > 1 && first.seq == start {
            // Trust the first retained entry's own hash as the anchor of the window.
            chain = Chain { prev: first.hash, expected_seq: start + 1, count: 1 };
            entries.next();
        }
    }
    for entry in entries {
        if let Err(report) = chain.step(entry) {
            return report;
        }
    }
    chain.end(expected_head)
}

/// The chain as verified so far: the hash the next entry must extend, its number, and how many
/// entries were found sound.
struct Chain {
    prev: [u8; 32],
    expected_seq: u64,
    count: u64,
}

impl Default for Chain {
    fn default() -> Chain {
        Chain { prev: GENESIS, expected_seq: 1, count: 0 }
    }
}

impl Chain {
    fn bad(&self, seq: u64, problem: String, count: u64) -> AuditReport {
        AuditReport { ok: false, entries: count, first_bad_seq: Some(seq), problem: Some(problem) }
    }

    /// Takes the next entry; the report once it is not the one the chain expects.
    fn step(&mut self, entry: &AuditEntry) -> Result<(), AuditReport> {
        let expected_seq = self.expected_seq;
        if entry.seq != expected_seq {
            return Err(self.bad(expected_seq, format!("entry {expected_seq} is missing"), self.count));
        }
        if chain_hash(&self.prev, entry.seq, &entry.draft()) != entry.hash {
            return Err(self.bad(entry.seq, format!("entry {} was altered", entry.seq), self.count));
        }
        self.prev = entry.hash;
        self.expected_seq += 1;
        self.count += 1;
        Ok(())
    }

    /// The report once every entry was taken, checked against the head recorded beside them.
    fn end(self, expected_head: Option<(u64, [u8; 32])>) -> AuditReport {
        let count = self.count;
        if let Some((head_seq, head_hash)) = expected_head {
            let last = self.expected_seq - 1;
            if head_seq < last {
                // The first entry past the head is the first keygate never wrote, however well it
                // is sealed (the hash has no secret key); the ones up to the head were verified.
                let first_past = head_seq + 1;
                let past = last - head_seq;
                return self.bad(
                    first_past,
                    format!("entry {first_past} is past the recorded head (entry {head_seq}): it was added behind keygate's back, or the head was set back"),
                    count.saturating_sub(past),
                );
            }
            if head_seq != last {
                return self.bad(last + 1, format!("the log ends at entry {last} but entry {head_seq} was written"), count);
            }
            if count > 0 && head_hash != self.prev {
                // The right number of entries, but the last is not the one written: it (or an earlier
                // one, with every entry after it sealed again) was altered, or the head was rewritten.
                // Which entry was altered first cannot be told from the chain alone.
                return self.bad(
                    last,
                    format!("the chain does not end at the recorded head: entry {last} is not the last entry written (it, or an earlier entry, was altered and the rest sealed again, or the head was rewritten)"),
                    count - 1,
                );
            }
        }
        AuditReport { ok: true, entries: count, first_bad_seq: None, problem: None }
    }
}

/// Largest sequence number an audit entry may have: the durable stores keep it in an i64.
pub(crate) const MAX_AUDIT_SEQ: u64 = i64::MAX as u64 - 1;

/// Judges a durable store's recorded audit head before the store is opened and before each
/// write: `seq` and `hash` as recorded (`None`: present, but not a value keygate writes) and
/// `last`, the number of the last stored entry (0 for none). The head must be one the next
/// write can extend — a number no smaller than the last entry's (smaller, the next entry would
/// collide with a kept one: entries were added past the head behind keygate's back, or the head
/// was set back) and far from overflowing, and a hash. A head ahead of the entries is a removed
/// tail, which verification reports; the store still opens. The error says what is wrong (the
/// store makes it `STORE_CORRUPT`).
pub(crate) fn extendable_head(seq: Option<u64>, hash: Option<[u8; 32]>, last: i64) -> Result<(u64, [u8; 32]), String> {
    // The next entry is numbered seq + 1, which must not pass MAX_AUDIT_SEQ.
    let Some(seq) = seq.filter(|&seq| seq < MAX_AUDIT_SEQ) else {
        return Err("its recorded audit head is not a valid sequence number".into());
    };
    let Some(hash) = hash else {
        return Err("its recorded audit hash is not 64 hex digits".into());
    };
    if u64::try_from(last).map_or(true, |last| last > seq) {
        return Err(format!("its audit trail has entries (up to {last}) beyond its recorded head ({seq})"));
    }
    Ok((seq, hash))
}

/// What is wrong with an entry holding a value keygate cannot read ([`Damaged::Unreadable`]).
const UNREADABLE: &str = "it holds a value keygate cannot read (of another type than keygate writes, or text that is not UTF-8)";

/// A stored audit row that is no entry keygate writes (changed behind its back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Damaged {
    /// Numbered below 1: keygate numbers entries from 1.
    Numbered(i64),
    /// Entry `seq` holds a time JavaScript's Date cannot hold.
    Time { seq: u64, at: i64 },
    /// Entry `seq` holds a value keygate cannot read (of another type, say).
    Unreadable(u64),
    /// Numbered with something other than a whole number (what, as [`Damaged::describe`] says it):
    /// only in a table rebuilt behind keygate's back, whose `seq` column takes any value.
    Unnumbered(String),
}

impl Damaged {
    /// A row whose values keygate cannot read, numbered `seq`.
    pub(crate) fn unreadable(seq: i64) -> Damaged {
        stored_place(seq, 0).map_or_else(|damaged| damaged, |(seq, _)| Damaged::Unreadable(seq))
    }

    /// What is wrong, as reading the trail reports it (`STORE_CORRUPT`).
    pub(crate) fn describe(&self) -> String {
        match self {
            Damaged::Numbered(seq) => format!("an audit entry is numbered {seq} (keygate numbers entries from 1)"),
            Damaged::Time { seq, at } => format!("audit entry {seq}'s time ({at}) is not a representable date"),
            Damaged::Unreadable(seq) => format!("audit entry {seq}: {UNREADABLE}"),
            Damaged::Unnumbered(what) => format!("an audit entry is numbered with {what}, not a whole number"),
        }
    }
}

/// A stored entry's number and time, as keygate writes them: numbered from 1, at an instant
/// JavaScript's Date can hold.
pub(crate) fn stored_place(seq: i64, at: i64) -> Result<(u64, i64), Damaged> {
    let seq = u64::try_from(seq).ok().filter(|&seq| seq >= 1).ok_or(Damaged::Numbered(seq))?;
    if !crate::time::is_date(at) {
        return Err(Damaged::Time { seq, at });
    }
    Ok((seq, at))
}

/// An audit row's values as the durable stores keep them, in their column order: seq, at,
/// actor, action, key_id, user_id, detail (JSON text), hash.
pub(crate) type StoredRow = (i64, i64, Option<String>, String, Option<String>, Option<String>, String, Vec<u8>);

/// The entry a stored row holds, or (its number or time) what keygate never writes in it.
pub(crate) fn stored_entry((seq, at, actor, action, key_id, user_id, detail, hash): StoredRow) -> Result<AuditEntry, Damaged> {
    let (seq, at) = stored_place(seq, at)?;
    Ok(AuditEntry {
        seq,
        at,
        actor,
        action,
        key_id,
        user_id,
        // An unparsable detail is kept as text so that verification reports it.
        detail: serde_json::from_str(&detail).unwrap_or(Value::String(detail)),
        hash: hash.try_into().unwrap_or(GENESIS),
    })
}

/// Verifies a durable store's trail as its rows are read, in sequence order, one at a time
/// ([`StoredChain::push`]), against its recorded head ([`StoredChain::finish`]): a trail of any
/// length is verified holding one entry at a time (collected first, a trail of millions of
/// entries took gigabytes of the process's memory while it was verified). A damaged row is an
/// altered entry in its place in the chain (its hash stands for no content any entry seals
/// to), and the report says what is wrong with a time no Date holds; a row numbered below 1
/// stands before entry 1, where verification stops.
#[derive(Default)]
pub(crate) struct StoredChain {
    chain: Chain,
    /// The report once the first problem is found: the rows after it are not looked at.
    found: Option<AuditReport>,
    first_damaged: Option<Damaged>,
}

impl StoredChain {
    /// Takes the next row (rows come in sequence order); false once the report is known, so
    /// that the rest need not be read.
    pub(crate) fn push(&mut self, row: Result<AuditEntry, Damaged>) -> bool {
        if self.found.is_some() {
            return false;
        }
        let entry = match row {
            Ok(entry) => entry,
            // Numbered below 1: first in sequence order, before any entry was verified.
            Err(Damaged::Numbered(seq)) => {
                self.found = Some(AuditReport {
                    ok: false,
                    entries: 0,
                    first_bad_seq: Some(1),
                    problem: Some(format!("an entry is numbered {seq}, before entry 1 (keygate numbers entries from 1)")),
                });
                return false;
            }
            // Where it stands in sequence order, the entry the chain expects next is not there.
            Err(Damaged::Unnumbered(what)) => {
                let expected = self.chain.expected_seq;
                self.found = Some(self.chain.bad(
                    expected,
                    format!("an entry is numbered with {what}, not a whole number, where entry {expected} should be (keygate numbers entries 1, 2, 3…)"),
                    self.chain.count,
                ));
                return false;
            }
            Err(damaged @ (Damaged::Time { seq, .. } | Damaged::Unreadable(seq))) => {
                self.first_damaged.get_or_insert(damaged);
                AuditEntry {
                    seq,
                    at: 0,
                    actor: None,
                    action: String::new(),
                    key_id: None,
                    user_id: None,
                    detail: Value::Null,
                    hash: GENESIS,
                }
            }
        };
        if let Err(report) = self.chain.step(&entry) {
            self.found = Some(report);
            return false;
        }
        true
    }

    /// The report, the trail's end checked against `head`, the head recorded beside it.
    pub(crate) fn finish(self, head: (u64, [u8; 32])) -> AuditReport {
        let mut report = match self.found {
            Some(report) => report,
            None => self.chain.end(Some(head)),
        };
        // What is wrong with the entry's values, when it is the one reported: the operator hears
        // why it cannot be verified, not only that it was altered.
        let why = match self.first_damaged {
            Some(Damaged::Time { seq, at }) => Some((seq, format!("its time ({at}) is not a representable date"))),
            Some(Damaged::Unreadable(seq)) => Some((seq, UNREADABLE.to_owned())),
            _ => None,
        };
        if let Some((seq, why)) = why.filter(|&(seq, _)| report.first_bad_seq == Some(seq)) {
            report.problem = Some(format!("entry {seq} was altered: {why}"));
        }
        report
    }
}

fn key_fields(r: &KeyRecord) -> Value {
    json!({
        "userId": r.user_id,
        "description": r.description,
        "state": r.state.as_str(),
        "expiresAt": crate::time::iso8601(r.expires_at),
        "rules": r.rules,
        "hint": String::from_utf8_lossy(&r.hint),
    })
}

fn diff(before: &Value, after: &Value) -> Value {
    let mut out = Map::new();
    if let (Value::Object(b), Value::Object(a)) = (before, after) {
        for (name, new) in a {
            let old = b.get(name).unwrap_or(&Value::Null);
            if old != new {
                out.insert(name.clone(), json!([old, new]));
            }
        }
    }
    Value::Object(out)
}

fn user_fields(r: &UserRecord) -> Value {
    json!({ "status": r.status.as_str(), "rights": r.rights, "roles": r.roles })
}

fn role_fields(r: &RoleRecord) -> Value {
    json!({ "rights": r.rights })
}

/// A rotation's two entries name each other: the new key's (`created`) gets `rotatedFrom`, the
/// old key's `rotatedTo`, so the trail alone tells which key replaced which (the old key's
/// entry may otherwise record no change at all, when its overlap reaches past its expiry).
/// `drafts` are a rotation's, as `rotate_key` commits them: the new key, then the old.
pub fn link_rotation(drafts: &mut [AuditDraft]) {
    if let [new, old] = drafts {
        if let (Some(new_id), Some(old_id), Value::Object(created), Value::Object(changed)) =
            (new.key_id.clone(), old.key_id.clone(), &mut new.detail, &mut old.detail)
        {
            created.insert("rotatedFrom".to_string(), Value::String(old_id));
            changed.insert("rotatedTo".to_string(), Value::String(new_id));
        }
    }
}

/// Describes one change against the state it is about to change: one entry,
/// plus one per key that a user's deletion takes with it (so each key's own
/// history ends with its deletion).
pub fn describe(registry: &Registry, change: &Change, operation: &str, actor: Option<&str>, at: i64) -> Vec<AuditDraft> {
    let main = describe_one(registry, change, operation, actor, at);
    let mut drafts = vec![main];
    if let Change::DeleteUser(id) = change {
        for key in keys_of_user(registry, id) {
            drafts.push(AuditDraft {
                at,
                actor: actor.map(str::to_string),
                action: operation.to_string(),
                key_id: Some(key.id.to_string()),
                user_id: Some(id.clone()),
                detail: json!({ "deleted": key_fields(&crate::registry::record_of(key)) }),
            });
        }
    }
    drafts
}

/// The keys of user `id`, newest first as `listKeys` orders them. The registry's own order is
/// where each key sits in its table (placed by its secret's hint): random, so the same calls
/// on two stores, or on one store before and after a reopen, would record different trails.
fn keys_of_user<'a>(registry: &'a Registry, id: &str) -> Vec<&'a Key> {
    let mut keys: Vec<&Key> = registry.keys().filter(|k| *k.user_id == *id).collect();
    keys.sort_by(|a, b| Key::newest_first(a, b));
    keys
}

fn describe_one(registry: &Registry, change: &Change, operation: &str, actor: Option<&str>, at: i64) -> AuditDraft {
    let mut draft = AuditDraft {
        at,
        actor: actor.map(str::to_string),
        action: operation.to_string(),
        key_id: None,
        user_id: None,
        detail: Value::Null,
    };
    match change {
        Change::PutKey(new) => {
            draft.key_id = Some(new.id.to_string());
            draft.user_id = Some(new.user_id.clone());
            draft.detail = match registry.key_by_id(&new.id) {
                Some(old) => diff(&key_fields(&crate::registry::record_of(old)), &key_fields(new)),
                None => json!({ "created": key_fields(new) }),
            };
        }
        Change::DeleteKey(id) => {
            draft.key_id = Some(id.to_string());
            let old = registry.key_by_id(id);
            draft.user_id = old.map(|k| k.user_id.to_string());
            draft.detail = json!({ "deleted": old.map(|k| key_fields(&crate::registry::record_of(k))) });
        }
        Change::PutUser(new) => {
            draft.user_id = Some(new.id.clone());
            draft.detail = match registry.user(&new.id) {
                Some(old) => diff(&user_fields(&user_record(old)), &user_fields(new)),
                None => json!({ "created": user_fields(new) }),
            };
        }
        Change::DeleteUser(id) => {
            draft.user_id = Some(id.clone());
            let keys: Vec<String> = keys_of_user(registry, id).into_iter().map(|k| k.id.to_string()).collect();
            // What was deleted, as a key's deletion records the whole key: the trail alone tells
            // what the user could do, and lets it be made again.
            let deleted = registry.user(id).map(|old| user_fields(&user_record(old)));
            draft.detail = json!({ "deleted": deleted, "deletedKeys": keys });
        }
        Change::PutRole(new) => {
            draft.detail = match registry.role(&new.name) {
                Some(old) => json!({ "role": new.name, "changes": diff(&json!({ "rights": old.rights.texts() }), &role_fields(new)) }),
                None => json!({ "role": new.name, "created": role_fields(new) }),
            };
        }
        Change::DeleteRole(name) => {
            // By id, as `listUsers` orders them: the registry's own order is its hash table's,
            // which differs between stores (and across a reopen) holding the same users.
            let mut holders: Vec<&str> = registry.users().filter(|u| u.roles.iter().any(|r| **r == **name)).map(|u| &*u.id).collect();
            holders.sort_unstable();
            let deleted = registry.role(name).map(|old| json!({ "rights": old.rights.texts() }));
            draft.detail = json!({ "role": name, "deleted": deleted, "removedFromUsers": holders });
        }
    }
    draft
}

pub fn user_record(user: &crate::model::User) -> UserRecord {
    UserRecord {
        id: user.id.to_string(),
        status: user.status,
        rights: user.rights.texts(),
        roles: user.roles.iter().map(|r| r.to_string()).collect(),
    }
}
