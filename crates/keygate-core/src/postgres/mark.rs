//! The change log's marks: each version's mark is a digest of the previous mark,
//! the version and its changes, so a mark stands for the whole history up to its
//! version. A process compares marks as well as versions: after a failover that
//! lost the last commits, new commits reuse the lost versions, and only the marks
//! tell the two histories apart (the epoch is kept by a promoted replica).

use sha2::{Digest, Sha256};

// Version 0 (an empty store) has the empty mark, the schema's default.

/// The mark of `version`, whose changes are `json` (empty for an imported store), after `previous`.
pub(super) fn next(previous: &str, version: i64, json: &str) -> String {
    let digest = Sha256::new()
        .chain_update(previous.as_bytes())
        .chain_update(b" ")
        .chain_update(version.to_string().as_bytes())
        .chain_update(b" ")
        .chain_update(json.as_bytes())
        .finalize();
    hex::encode(digest.get(..16).unwrap_or_default())
}

/// What an import's mark digests in place of changes (it writes no change row): random,
/// so that no two imports share a mark, whatever they hold.
pub(super) fn unique() -> crate::error::Result<String> {
    Ok(format!("import {}", crate::secret::random_hex::<16>()?))
}

/// Whether `rows` (version, mark, changes) run on from `mark` at `version` without
/// a gap, each mark following from the one before.
pub(super) fn follows<'a>(mut mark: &'a str, mut version: i64, rows: &'a [(i64, String, String)]) -> bool {
    for (v, row_mark, json) in rows {
        if version.checked_add(1) != Some(*v) || next(mark, *v, json) != *row_mark {
            return false;
        }
        mark = row_mark;
        version = *v;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "";

    #[test]
    fn a_mark_stands_for_the_history_up_to_its_version() {
        let one = next(ORIGIN, 1, "[a]");
        let two = next(&one, 2, "[b]");
        assert_eq!(one.len(), 32);
        assert_ne!(next(ORIGIN, 1, "[c]"), one, "other changes, another mark");
        assert_ne!(next(&next(ORIGIN, 1, "[c]"), 2, "[b]"), two, "the same change on another history, another mark");
        let rows = vec![(1, one.clone(), "[a]".to_string()), (2, two.clone(), "[b]".to_string())];
        assert!(follows(ORIGIN, 0, &rows));
        assert!(follows(&one, 1, rows.get(1..).unwrap_or_default()));
        assert!(!follows(&one, 0, &rows), "another starting mark");
        assert!(!follows(ORIGIN, 0, rows.get(1..).unwrap_or_default()), "a gap");
        let forged = vec![(1, one, "[a]".to_string()), (2, two, "[x]".to_string())];
        assert!(!follows(ORIGIN, 0, &forged), "a change that does not give its mark");
    }
}
