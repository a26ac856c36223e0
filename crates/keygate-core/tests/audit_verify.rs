//! `audit::verify`: the hash chain of the audit trail, checked entry by entry.
//! Each damage is reported with the first bad sequence number and what is wrong.

use keygate_core::internals::{verify, AuditDraft, GENESIS};
use keygate_core::{AuditEntry, AuditReport};
use serde_json::json;

const T0: i64 = 1_800_000_000_000;

/// A chain of `n` entries (seq 1..=n), each sealed on the previous hash.
/// A named way to damage one audit entry.
type Alteration = (&'static str, fn(&mut AuditEntry));

fn chain(n: u64) -> Vec<AuditEntry> {
    let mut prev = GENESIS;
    (1..=n)
        .map(|seq| {
            let draft = AuditDraft {
                at: T0 + seq as i64 * 60_000,
                actor: (seq % 2 == 0).then(|| format!("admin-{seq}")),
                action: if seq % 3 == 0 { "setState".into() } else { "putUser".into() },
                key_id: (seq % 3 == 0).then(|| format!("key_{seq:032x}")),
                user_id: Some(format!("user-{seq}")),
                detail: json!({ "state": ["active", format!("state-{seq}")] }),
            };
            let entry = AuditEntry::seal(&prev, seq, draft);
            prev = entry.hash;
            entry
        })
        .collect()
}

/// What the log records beside its entries: the last sequence number and hash.
fn head(entries: &[AuditEntry]) -> Option<(u64, [u8; 32])> {
    entries.last().map(|e| (e.seq, e.hash))
}

fn bad(entries: u64, first_bad_seq: u64, problem: &str) -> AuditReport {
    AuditReport { ok: false, entries, first_bad_seq: Some(first_bad_seq), problem: Some(problem.to_string()) }
}

fn good(entries: u64) -> AuditReport {
    AuditReport { ok: true, entries, first_bad_seq: None, problem: None }
}

#[test]
fn an_intact_chain_verifies_with_its_count() {
    let entries = chain(8);
    assert_eq!(verify(entries.iter(), head(&entries), None), good(8));
    assert_eq!(verify(entries.iter(), None, None), good(8), "without a recorded head too");
    assert_eq!(verify(std::iter::empty(), Some((0, GENESIS)), None), good(0), "an empty log");
}

#[test]
fn an_altered_entry_is_reported_by_its_seq_whatever_field_changed() {
    let original = chain(8);
    let alterations: [Alteration; 7] = [
        ("at", |e| e.at += 1),
        ("actor", |e| e.actor = Some("mallory".into())),
        // An absent actor hashes differently from an empty one.
        ("actor absent/empty", |e| e.actor = if e.actor.is_some() { None } else { Some(String::new()) }),
        ("action", |e| e.action = "deleteKey".into()),
        ("key id", |e| e.key_id = Some("key_other".into())),
        ("user id", |e| e.user_id = None),
        ("detail", |e| e.detail = json!({ "state": ["active", "active"] })),
    ];
    for seq in [1u64, 4, 8] {
        for (what, alter) in alterations {
            let mut entries = original.clone();
            alter(&mut entries[seq as usize - 1]);
            assert_ne!(entries, original, "{what} at {seq}: the alteration changed something");
            assert_eq!(
                verify(entries.iter(), head(&original), None),
                bad(seq - 1, seq, &format!("entry {seq} was altered")),
                "{what} altered in entry {seq}"
            );
        }
    }
}

#[test]
fn an_altered_entry_with_its_hash_recomputed_breaks_the_next_link() {
    let mut entries = chain(8);
    entries[3].detail = json!({ "state": ["active", "innocent"] });
    entries[3] = AuditEntry::seal(&entries[2].hash, 4, entries[3].draft());
    assert_eq!(verify(entries.iter(), None, None), bad(4, 5, "entry 5 was altered"));
}

#[test]
fn a_removed_entry_is_reported_missing() {
    let original = chain(8);
    for seq in [1u64, 2, 5] {
        let entries: Vec<_> = original.iter().filter(|e| e.seq != seq).cloned().collect();
        assert_eq!(
            verify(entries.iter(), head(&original), None),
            bad(seq - 1, seq, &format!("entry {seq} is missing")),
            "entry {seq} removed"
        );
    }
}

#[test]
fn a_removed_tail_is_caught_by_the_recorded_head() {
    let original = chain(8);
    let recorded = head(&original);
    let shortened = &original[..6];
    assert_eq!(
        verify(shortened.iter(), recorded, None),
        bad(6, 7, "the log ends at entry 6 but entry 8 was written"),
        "the last two entries removed"
    );
    assert_eq!(
        verify(std::iter::empty(), recorded, None),
        bad(0, 1, "the log ends at entry 0 but entry 8 was written"),
        "every entry removed"
    );
    // A log with no entry written has no last entry to compare with its head's hash: the report
    // counts no entry, whatever hash the head records (no "one fewer than none verified").
    assert_eq!(verify(std::iter::empty(), Some((0, [7; 32])), None), good(0), "an empty log");
    // The chain alone cannot tell a shortened log from a younger one: that is what the head is for.
    assert_eq!(verify(shortened.iter(), None, None), good(6));
}

/// An entry added past the recorded head, sealed on the chain as keygate would seal it (the hash
/// has no secret key): the first entry past the head is the first bad one, and the entries up to
/// the head are the ones verified, as when the added entry's hash is wrong. The report named an
/// entry after the last one, which does not exist.
#[test]
fn an_entry_sealed_past_the_recorded_head_is_reported_by_its_own_seq() {
    let original = chain(8);
    let recorded = head(&original);
    let mut grown = original.clone();
    let added = AuditEntry::seal(&original[7].hash, 9, original[7].draft());
    grown.push(added);
    let past = "entry 9 is past the recorded head (entry 8): it was added behind keygate's back, or the head was set back";
    assert_eq!(verify(grown.iter(), recorded, None), bad(8, 9, past));
    let copied = AuditEntry { seq: 9, ..original[7].clone() };
    let mut unsealed = original.clone();
    unsealed.push(copied);
    assert_eq!(verify(unsealed.iter(), recorded, None), bad(8, 9, "entry 9 was altered"), "an entry copied past the head");
    // Two entries added: still the first past the head.
    let again = AuditEntry::seal(&grown[8].hash, 10, original[7].draft());
    grown.push(again);
    assert_eq!(verify(grown.iter(), recorded, None), bad(8, 9, past), "two entries added");
}

#[test]
fn a_last_entry_replaced_with_a_valid_looking_one_is_caught_by_the_recorded_head() {
    let original = chain(8);
    let mut entries = original.clone();
    entries[7].actor = Some("mallory".into());
    entries[7] = AuditEntry::seal(&entries[6].hash, 8, entries[7].draft());
    // Entry 8 is the one that no longer matches what was written: the report names it (not
    // a 9th entry that never existed), with the 7 before it verified.
    assert_eq!(
        verify(entries.iter(), head(&original), None),
        bad(7, 8, "the chain does not end at the recorded head: entry 8 is not the last entry written (it, or an earlier entry, was altered and the rest sealed again, or the head was rewritten)"),
    );
    let mut rewritten = head(&original);
    if let Some((_, hash)) = rewritten.as_mut() {
        hash[0] ^= 1;
    }
    assert_eq!(
        verify(original.iter(), rewritten, None),
        bad(7, 8, "the chain does not end at the recorded head: entry 8 is not the last entry written (it, or an earlier entry, was altered and the rest sealed again, or the head was rewritten)"),
        "the recorded head's hash changed"
    );
    assert_eq!(verify(entries.iter(), head(&entries), None), good(8), "with its own head it is self-consistent");
}

/// The hash has no secret key: an entry altered in the middle, every later entry sealed
/// again and the head rewritten, verifies. Only a head kept elsewhere shows it: the entry
/// at the kept head's number no longer has the kept hash (the README says so).
#[test]
fn a_chain_sealed_again_from_an_altered_entry_verifies_and_only_a_head_kept_elsewhere_shows_it() {
    let original = chain(8);
    let kept = head(&original);
    let mut prev = original[2].hash;
    let mut forged = original[..3].to_vec();
    for (i, entry) in original[3..].iter().enumerate() {
        let mut draft = entry.draft();
        if i == 0 {
            draft.actor = Some("mallory".into());
        }
        let sealed = AuditEntry::seal(&prev, entry.seq, draft);
        prev = sealed.hash;
        forged.push(sealed);
    }
    assert_eq!(verify(forged.iter(), head(&forged), None), good(8));
    assert_ne!(forged.last().map(|e| (e.seq, e.hash)), kept);
}

#[test]
fn a_reordered_pair_is_reported_at_the_first_place_out_of_order() {
    let original = chain(8);
    // Given out of order: entry 4 arrives where 3 belongs.
    let mut swapped = original.clone();
    swapped.swap(2, 3);
    assert_eq!(verify(swapped.iter(), head(&original), None), bad(2, 3, "entry 3 is missing"));

    // Contents swapped under their sequence numbers (what an edit of two rows does).
    let mut relabelled = original.clone();
    relabelled.swap(2, 3);
    relabelled[2].seq = 3;
    relabelled[3].seq = 4;
    assert_eq!(verify(relabelled.iter(), head(&original), None), bad(2, 3, "entry 3 was altered"));
}

#[test]
fn a_window_of_the_latest_entries_is_checked_from_its_first_entry() {
    let original = chain(10);
    let window = &original[4..];
    assert_eq!(verify(window.iter(), head(&original), Some(5)), good(6));
    let mut altered = window.to_vec();
    altered[2].actor = Some("mallory".into());
    assert_eq!(verify(altered.iter(), head(&original), Some(5)), bad(2, 7, "entry 7 was altered"));
    // Without the window start, the same entries are a log whose first four are missing.
    assert_eq!(verify(window.iter(), head(&original), None), bad(0, 1, "entry 1 is missing"));
    // A window starting at entry 1 is the whole log: entry 1 too is checked against the genesis
    // hash (the in-memory store verifies an untrimmed log so), not trusted as an anchor.
    let mut first_altered = original.clone();
    first_altered[0].actor = Some("mallory".into());
    assert_eq!(verify(first_altered.iter(), head(&original), Some(1)), bad(0, 1, "entry 1 was altered"));
    assert_eq!(verify(original.iter(), head(&original), Some(1)), good(10));
}

/// The seal is a stored format: a trail written by one keygate must verify under the next, so
/// each entry's hash is pinned here as computed outside keygate (Python's hashlib over the
/// layout audit.rs describes: the previous hash, seq and at as big-endian 64-bit numbers, an
/// absent text as one 0 byte, a present one as 1, then each text as its length, a big-endian
/// 64-bit number, and its bytes; the detail as compact JSON with its names in order).
/// A change to that layout fails here, not on a user's upgraded store.
#[test]
fn entries_are_sealed_in_the_stored_format_a_trail_written_earlier_verifies_with() {
    let first = AuditEntry::seal(
        &GENESIS,
        1,
        AuditDraft {
            at: T0,
            actor: None,
            action: "putUser".into(),
            key_id: None,
            user_id: Some("alice".into()),
            detail: json!({ "created": { "status": "active", "rights": [], "roles": [] } }),
        },
    );
    assert_eq!(first.hash_hex(), "f100dbe6d66a23a07d5c1a6d28c0b1c4c2eead9e4ad9e6ea9e491d224f1368a9");
    let second = AuditEntry::seal(
        &first.hash,
        2,
        AuditDraft {
            at: T0 + 60_000,
            actor: Some("admin".into()),
            action: "setState".into(),
            key_id: Some("key_00000000000000000000000000000001".into()),
            user_id: Some("alice".into()),
            detail: json!({ "state": ["active", "revoked"] }),
        },
    );
    assert_eq!(second.hash_hex(), "2c2217b2dc643060cf608497243db04d8ba6cc6166f48907ccc8437e007f2cd1");
    let written = [first, second];
    assert_eq!(verify(written.iter(), head(&written), None), good(2));
}

/// Each text is sealed with its length, so moving the boundary between two of them (an actor
/// "ad" with action "minsetState" for "admin" with "setState") changes the hash: the alteration is reported.
#[test]
fn text_moved_from_one_field_to_the_next_is_reported_altered() {
    let original = chain(4);
    let mut shifted = original.clone();
    let entry = &mut shifted[1];
    let actor = entry.actor.clone().unwrap_or_default();
    let (kept, moved) = actor.split_at(2);
    entry.action = format!("{moved}{}", entry.action);
    entry.actor = Some(kept.to_string());
    assert_eq!(verify(shifted.iter(), head(&original), None), bad(1, 2, "entry 2 was altered"));
}
