//! A running process whose file is replaced under it (a restore, `.restore` of another
//! keygate file, or another file renamed over its path) must not keep answering from the
//! state it read before: a key revoked in the file now there must never be reported allowed
//! once it had a chance to look.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{seeded_check as check, wait_for_answer};
use keygate_core::{KeyStore, Options, Reason};

fn open(path: &Path) -> KeyStore {
    KeyStore::open(path.to_str().unwrap(), Options::default()).unwrap()
}

/// What a process that opens `path` now answers.
fn fresh(path: &Path, secret: &str) -> Reason {
    let store = open(path);
    let reason = check(&store, secret);
    store.close().unwrap();
    reason
}

/// Restores `backup` into `path` as an operator would under running processes (`.restore`).
fn restore(path: &Path, backup: &Path) {
    let mut operator = rusqlite::Connection::open(path).unwrap();
    operator.busy_timeout(Duration::from_secs(5)).unwrap();
    operator.restore(rusqlite::MAIN_DB, backup, None::<fn(rusqlite::backup::Progress)>).unwrap();
}

/// `keys.db` seeded (user `svc`, one key), with a role put and deleted: its change log
/// stands at 4, while a copy of it (`KeyStore::copy`: one change per role, user and key)
/// numbers its log up to 2 only. Returns the store, the key's id and secret.
fn store_with_a_longer_log(path: &Path) -> (KeyStore, String, String) {
    let store = open(path);
    let (id, secret) = common::seed_with(&store, &["session:*", "ip=10.0.0.0/8"]);
    store.put_role("tmp", &["session:*".into()], None).unwrap();
    assert!(store.delete_role("tmp", None).unwrap());
    (store, id, secret)
}

/// `keygate copy keys.db moved.db`, the store used at its new place (the key revoked there,
/// then a role put under each of `after`), then moved back with `.restore` under a process
/// that still has `keys.db` open. The copy holds the same audit chain (same numbers and
/// hashes), so the chain in the file still holds the entry the process last read; but its
/// change log is numbered afresh.
fn a_copy_of_the_store_restored_over_it_is_read_afresh(after: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let (path, moved) = (dir.path().join("keys.db"), dir.path().join("moved.db"));
    let (source, id, secret) = store_with_a_longer_log(&path);
    let follower = open(&path);
    assert_eq!(check(&follower, &secret), Reason::Allowed);

    let target = open(&moved);
    KeyStore::copy(&source, &target).unwrap();
    target.set_state(&id, "revoked", None).unwrap();
    for role in after {
        target.put_role(role, &["session:*".into()], None).unwrap();
    }
    target.close().unwrap();
    restore(&path, &moved);

    assert_eq!(fresh(&path, &secret), Reason::Revoked, "the file holds the key revoked");
    wait_for_answer("the follower", &follower, &secret, Reason::Revoked, Duration::from_secs(2));
    wait_for_answer("the source's own handle", &source, &secret, Reason::Revoked, Duration::from_secs(2));
}

/// The copy's log, one change after the revocation, ends at the very number the process read up to.
#[test]
fn a_copy_of_the_store_restored_over_it_is_read_afresh_when_its_log_ends_where_the_process_stood() {
    a_copy_of_the_store_restored_over_it_is_read_afresh(&["after"]);
}

/// More changes made at the new place than the process's log had: the process reads only
/// the copy's changes numbered past its own place, and misses the revocation numbered before it.
#[test]
fn a_copy_of_the_store_restored_over_it_is_read_afresh_when_its_log_ends_past_where_the_process_stood() {
    a_copy_of_the_store_restored_over_it_is_read_afresh(&["after-1", "after-2", "after-3"]);
}

/// A process's own write moves its place in the change log, but (until it next looks at the
/// file) not the audit entry it remembers: that stays the one before its write. A backup
/// taken just before that write, restored at once with one new change of another process in
/// it, ends the log at the same number and its chain holds the remembered entry, so the
/// process keeps what it wrote (here: the key it activated, which the file holds suspended).
/// The window is the time until the process's next look (its watcher, every 10 ms), so the
/// scenario is tried several times: one stale answer is the defect.
#[test]
fn a_restore_right_after_this_process_wrote_is_read_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let admin = open(&path);
    let (id, secret) = common::seed_with(&admin, &["session:*", "ip=10.0.0.0/8"]);
    let mut stale = 0;
    let tries = 20;
    for attempt in 0..tries {
        admin.set_state(&id, "suspended", None).unwrap();
        // Let the admin's watcher take in its own write.
        std::thread::sleep(Duration::from_millis(50));
        let backup = dir.path().join(format!("backup-{attempt}.db"));
        admin.backup(backup.to_str().unwrap()).unwrap();
        // The backup as it stands after the restore and one change of another process.
        let other = open(&backup);
        other.put_role(&format!("other-{attempt}"), &["session:*".into()], None).unwrap();
        other.close().unwrap();

        admin.set_state(&id, "active", None).unwrap();
        restore(&path, &backup);

        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(fresh(&path, &secret), Reason::Suspended, "the file holds the key suspended");
        if check(&admin, &secret) == Reason::Allowed {
            // The next attempt's write of the whole key brings the file and memory in line again.
            stale += 1;
        }
    }
    assert_eq!(stale, 0, "{stale} of {tries} tries left the admin answering allowed for a key the file holds suspended");
}

/// Two restores in quick succession (an older backup, then a still older one with a
/// revocation written into it): whichever the process looks at, it ends with the last.
#[test]
fn two_restores_in_quick_succession_end_with_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let admin = open(&path);
    let (id, secret) = common::seed_with(&admin, &["session:*", "ip=10.0.0.0/8"]);
    let older = dir.path().join("older.db");
    admin.backup(older.to_str().unwrap()).unwrap();
    admin.put_role("r1", &["session:*".into()], None).unwrap();
    let newer = dir.path().join("newer.db");
    admin.backup(newer.to_str().unwrap()).unwrap();
    admin.put_role("r2", &["session:*".into()], None).unwrap();
    let follower = open(&path);
    // The older copy, revoked and brought back to the log's length by other changes.
    let edited = open(&older);
    edited.set_state(&id, "revoked", None).unwrap();
    edited.put_role("x", &["session:*".into()], None).unwrap();
    edited.close().unwrap();
    for _ in 0..5 {
        restore(&path, &newer);
        restore(&path, &older);
    }
    assert_eq!(fresh(&path, &secret), Reason::Revoked);
    wait_for_answer("the follower", &follower, &secret, Reason::Revoked, Duration::from_secs(2));
    wait_for_answer("the admin", &admin, &secret, Reason::Revoked, Duration::from_secs(2));
}

/// `keys.db` in `dir`, open and seeded (`common::seed_with`), and the path of `other` beside
/// it. Returns both paths, the store, the key's id and secret.
fn seeded_beside(dir: &Path, other: &str) -> (PathBuf, PathBuf, KeyStore, String, String) {
    let path = dir.join("keys.db");
    let store = open(&path);
    let (id, secret) = common::seed_with(&store, &["session:*", "ip=10.0.0.0/8"]);
    (path, dir.join(other), store, id, secret)
}

/// `keys.db` in `dir`, seeded and open, and its backup with the key revoked in it, renamed over
/// it (`mv backup.db keys.db`) once `before_the_rename` has run on the store. Returns once the
/// store has failed closed: the path, the store (the replaced process) and the key's secret.
fn replaced_by_its_revoking_backup(dir: &Path, before_the_rename: impl FnOnce(&KeyStore, &str)) -> (PathBuf, KeyStore, String) {
    let (path, backup, store, id, secret) = seeded_beside(dir, "backup.db");
    store.backup(backup.to_str().unwrap()).unwrap();
    let edited = open(&backup);
    edited.set_state(&id, "revoked", None).unwrap();
    edited.close().unwrap();
    before_the_rename(&store, &secret);
    std::fs::rename(&backup, &path).unwrap();
    wait_for_answer("the process whose file was replaced", &store, &secret, Reason::StoreUnavailable, Duration::from_secs(2));
    (path, store, secret)
}

/// A backup put back by renaming it over the store's path (`mv backup.db keys.db`) under a
/// running process. Its connections keep the file they opened, but SQLite finds the `-wal`
/// and `-shm` by path, so they would share the new file's: the process must stop answering
/// from the old file (it fails closed) and write nothing through it; closed and opened again
/// (the operator's restart after the `mv`), it answers from the new file.
#[test]
fn a_file_renamed_over_the_store_fails_the_process_closed_until_it_opens_the_store_again() {
    let dir = tempfile::tempdir().unwrap();
    let (path, admin, secret) =
        replaced_by_its_revoking_backup(dir.path(), |admin, secret| assert_eq!(check(admin, secret), Reason::Allowed));
    assert!(!admin.health().connected, "health still reports the store connected");
    let refused = admin.put_role("through-the-old-file", &["session:*".into()], None).unwrap_err();
    assert_eq!(refused.code, keygate_core::ErrorCode::StoreIo, "{}", refused.message);
    assert!(refused.message.contains("replaced, moved or removed while open"), "{}", refused.message);
    assert!(admin.backup(dir.path().join("mixed.db").to_str().unwrap()).is_err(), "backed up through the old file");
    assert!(admin.audit(&keygate_core::AuditQuery::default()).is_err(), "read the audit trail through the old file");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(check(&admin, &secret), Reason::StoreUnavailable, "answered again while the path names another file");

    admin.close().unwrap();
    let reopened = open(&path);
    assert_eq!(check(&reopened, &secret), Reason::Revoked, "the new file, as it was renamed in");
    assert!(reopened.get_role("through-the-old-file").unwrap().is_none());
    reopened.close().unwrap();
}

/// The file moved away and back (a rename undone) is the store's file again: the process,
/// failing closed meanwhile, reads it afresh and answers again.
#[test]
fn a_store_file_moved_away_and_back_is_answered_from_again() {
    let dir = tempfile::tempdir().unwrap();
    let (path, away, admin, _, secret) = seeded_beside(dir.path(), "away.db");
    // Past the background thread's first look, which opens its own connection (a file
    // missing then fails that open, and the store closed, however it was noticed).
    std::thread::sleep(Duration::from_millis(200));
    std::fs::rename(&path, &away).unwrap();
    wait_for_answer("the process whose file was moved", &admin, &secret, Reason::StoreUnavailable, Duration::from_secs(2));
    std::fs::rename(&away, &path).unwrap();
    wait_for_answer("the process whose file is back", &admin, &secret, Reason::Allowed, Duration::from_secs(3));
    admin.put_role("after", &["session:*".into()], None).unwrap();
    admin.close().unwrap();
    assert_eq!(fresh(&path, &secret), Reason::Allowed);
}

/// The process whose file was replaced is closed (the README's advice: close it and
/// open again) while another handle already uses the new file and has committed to it. The
/// close's checkpoint reads the log beside the path, which holds the new file's commits, and
/// must not carry them off into the old file.
#[test]
fn closing_the_replaced_process_keeps_what_another_handle_wrote_to_the_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, old, _) = replaced_by_its_revoking_backup(dir.path(), |_, _| ());

    let new = open(&path);
    new.put_role("written-to-the-new-file", &["session:*".into()], None).unwrap();
    old.close().unwrap();
    assert!(new.get_role("written-to-the-new-file").unwrap().is_some());
    new.close().unwrap();
    let reopened = open(&path);
    assert!(
        reopened.get_role("written-to-the-new-file").unwrap().is_some(),
        "a commit to the new file was lost when the old process closed"
    );
    reopened.close().unwrap();
}

/// Not a test: the other process of the test below, which runs the test binary for it (it
/// does nothing without `KEYGATE_CHILD_STORE`, and is ignored in a normal run). Opens the
/// store at `KEYGATE_CHILD_STORE`, puts role `r1`, says so, waits for a line, puts `r2`, waits
/// for a line, closes, says so.
#[test]
#[ignore]
fn child_writing_to_the_new_file() {
    use std::io::{BufRead, Write};
    let Ok(path) = std::env::var("KEYGATE_CHILD_STORE") else { return };
    let store = open(Path::new(&path));
    store.put_role("r1", &["session:*".into()], None).unwrap();
    println!("written r1");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    store.put_role("r2", &["session:*".into()], None).unwrap();
    println!("written r2");
    std::io::stdout().flush().unwrap();
    line.clear();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    store.close().unwrap();
    println!("closed");
    std::io::stdout().flush().unwrap();
}

/// The same across processes: another process opened the new file and committed to it,
/// then the replaced process is closed (as the README advises), then the other goes on.
#[test]
fn closing_the_replaced_process_keeps_what_another_process_wrote_to_the_new_file() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let (path, old, _) = replaced_by_its_revoking_backup(dir.path(), |_, _| ());

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writing_to_the_new_file", "--ignored", "--nocapture", "--test-threads=1"])
        .env("KEYGATE_CHILD_STORE", &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("written r1") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
    }
    old.close().unwrap();
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    while !line.contains("written r2") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
    }
    // A process opening the file now must see what the live one committed (the old process's
    // close must not have unlinked the -wal/-shm that one is still using).
    let third = open(&path);
    let r2_seen_live = third.get_role("r2").unwrap().is_some();
    third.close().unwrap();
    writeln!(child.stdin.as_mut().unwrap(), "close").unwrap();
    while !line.contains("closed") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
    }
    assert!(child.wait().unwrap().success());
    let reopened = open(&path);
    let r1 = reopened.get_role("r1").unwrap().is_some();
    let r2 = reopened.get_role("r2").unwrap().is_some();
    reopened.close().unwrap();
    assert!(r2_seen_live, "a process opening the new file did not see a commit of the live process using it");
    assert!(r1 && r2, "the other process's commits to the new file: r1 kept {r1}, r2 kept {r2}");
}

/// What the replaced process committed just before the rename (its pages still in the log
/// beside the path) must not reach the new file, which a process opens after the old one
/// noticed (before or after the old one is closed).
#[test]
fn the_old_files_last_commits_do_not_reach_the_new_file() {
    for close_old_first in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (path, old, secret) = replaced_by_its_revoking_backup(dir.path(), |old, _| {
            old.put_role("after-the-backup", &["session:*".into()], None).unwrap();
        });
        std::thread::sleep(Duration::from_millis(50));
        if close_old_first {
            old.close().unwrap();
        }
        let new = open(&path);
        assert_eq!(check(&new, &secret), Reason::Revoked, "close_old_first {close_old_first}");
        assert!(new.get_role("after-the-backup").unwrap().is_none(), "close_old_first {close_old_first}");
        new.close().unwrap();
        if !close_old_first {
            old.close().unwrap();
        }
        assert_eq!(fresh(&path, &secret), Reason::Revoked, "close_old_first {close_old_first}");
    }
}

/// The store opened through a symbolic link, and the link switched to a restored copy
/// (`ln -sfn backup.db keys.db`, done by a rename: an atomic switch). SQLite resolved the
/// link at open and watches the file it led to, which is still there: the process must
/// notice the path now names another file all the same, and fail closed until reopened.
#[cfg(unix)]
#[test]
fn a_symbolic_link_to_the_store_switched_to_another_file_fails_the_process_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (link, real, backup) = (dir.path().join("keys.db"), dir.path().join("a.db"), dir.path().join("b.db"));
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let store = open(&link);
    let (id, secret) = common::seed_with(&store, &["session:*", "ip=10.0.0.0/8"]);
    store.backup(backup.to_str().unwrap()).unwrap();
    let edited = open(&backup);
    edited.set_state(&id, "revoked", None).unwrap();
    edited.close().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(check(&store, &secret), Reason::Allowed, "failed closed while the link named the file it opened");
    let switched = dir.path().join("keys.db.new");
    std::os::unix::fs::symlink(&backup, &switched).unwrap();
    std::fs::rename(&switched, &link).unwrap();
    assert_eq!(fresh(&link, &secret), Reason::Revoked);
    wait_for_answer("the process whose link was switched", &store, &secret, Reason::StoreUnavailable, Duration::from_secs(2));
    assert_eq!(store.put_role("through-the-old-file", &["session:*".into()], None).unwrap_err().code, keygate_core::ErrorCode::StoreIo);
    store.close().unwrap();
    assert_eq!(fresh(&link, &secret), Reason::Revoked);
    assert_eq!(fresh(&real, &secret), Reason::Allowed, "the old file keeps what it had");
}
