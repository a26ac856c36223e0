//! Changes that came with their notifications (each with its mark), kept by
//! version until a catch-up applies them (then it needs no query). Only versions after the cursor are
//! kept: this process hears its own commits too, and those are applied already —
//! kept, they would pile up to the bound in a process that only writes, and
//! crowd out the changes of others.

use std::collections::BTreeMap;

/// Changes kept from notifications, waiting to be applied (a process further behind reads the table).
const KEPT: usize = 10_000;

#[derive(Default)]
pub(super) struct Heard {
    /// Version → (mark, change JSON).
    by_version: BTreeMap<i64, (String, String)>,
}

impl Heard {
    /// Keeps the mark and change JSON of `version` when it is after `applied` (the
    /// cursor), first dropping what the cursor has passed; at most [`KEPT`] changes.
    pub(super) fn keep(&mut self, applied: i64, version: i64, mark: &str, json: &str) {
        self.forget_through(applied);
        if version > applied && self.by_version.len() < KEPT {
            self.by_version.insert(version, (mark.to_string(), json.to_string()));
        }
    }

    /// The changes (version, mark, JSON) from `applied + 1` on, without a gap,
    /// removed from what is kept; `None` when the next one was not heard.
    pub(super) fn take_after(&mut self, applied: i64) -> Option<Vec<(i64, String, String)>> {
        self.forget_through(applied);
        let mut run = Vec::new();
        let mut last = applied;
        while let Some((mark, json)) = self.by_version.remove(&(last + 1)) {
            last += 1;
            run.push((last, mark, json));
        }
        (!run.is_empty()).then_some(run)
    }

    pub(super) fn clear(&mut self) {
        self.by_version.clear();
    }

    fn forget_through(&mut self, applied: i64) {
        while self.by_version.first_key_value().is_some_and(|(v, _)| *v <= applied) {
            self.by_version.pop_first();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_only_writes_keeps_none_of_its_own_changes() {
        let mut heard = Heard::default();
        // Its cursor moves with each commit; the notification of that commit arrives after.
        for version in 1..=(KEPT as i64 + 10) {
            heard.keep(version, version, "m", "[]");
        }
        assert_eq!(heard.by_version.len(), 0);
        // So another process's change is still kept, and taken without a query.
        let applied = KEPT as i64 + 10;
        heard.keep(applied, applied + 1, "m", "[\"theirs\"]");
        assert_eq!(heard.take_after(applied), Some(vec![(applied + 1, "m".to_string(), "[\"theirs\"]".to_string())]));
    }

    #[test]
    fn an_own_notification_heard_before_the_cursor_moved_is_dropped_once_it_has() {
        let mut heard = Heard::default();
        heard.keep(4, 5, "m", "[\"mine\"]");
        // The commit's answer moved the cursor to 5; another process commits 6.
        heard.keep(5, 6, "m", "[\"theirs\"]");
        assert_eq!(heard.by_version.keys().copied().collect::<Vec<_>>(), vec![6]);
        assert_eq!(heard.take_after(5), Some(vec![(6, "m".to_string(), "[\"theirs\"]".to_string())]));
    }

    #[test]
    fn only_a_run_without_a_gap_right_after_the_cursor_is_taken() {
        let mut heard = Heard::default();
        for version in [3, 4, 6] {
            heard.keep(2, version, "m", &version.to_string());
        }
        assert_eq!(heard.take_after(2), Some(vec![(3, "m".to_string(), "3".to_string()), (4, "m".to_string(), "4".to_string())]));
        // Version 5 was not heard: the table is read instead.
        assert_eq!(heard.take_after(4), None);
    }

    #[test]
    fn what_is_kept_is_bounded() {
        let mut heard = Heard::default();
        for version in 1..=(KEPT as i64 * 2) {
            heard.keep(0, version, "m", "[]");
        }
        assert_eq!(heard.by_version.len(), KEPT);
    }
}
