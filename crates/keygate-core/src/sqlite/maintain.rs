//! The maintenance thread of a durable store: it notices other processes' commits
//! (`PRAGMA data_version` on its own read-only connection) and catches up with
//! them, notices the file replaced under it, retries while the store fails closed,
//! flushes `lastUsedAt` and purges long-expired keys.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Weak;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::open::{connect, truncated_beside_log, BUSY_TIMEOUT};
use super::read_error;
use crate::error::{Error, ErrorCode};
use crate::incident::Task;
use crate::store::Inner;

const POLL_EVERY: Duration = Duration::from_millis(10);
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// While the store cannot vouch it is current: how often to try catching up
/// again when nothing in the file changed (a change in the file tries at once).
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// While another process holds the write lock, how often to try flushing `lastUsedAt`
/// again. The flush never waits for the lock: waiting, this thread would not follow other
/// processes' changes meanwhile (a revocation committed just before a long write of
/// another process would go unseen for as long as that write holds the lock).
const FLUSH_RETRY_EVERY: Duration = Duration::from_millis(100);
/// The same for the purge of long-expired keys (an admin write of this process: it holds the
/// writer lock that following other processes' changes takes too, so it must not wait either).
const PURGE_RETRY_EVERY: Duration = Duration::from_millis(500);

/// The maintenance thread's own view of the file.
struct Watcher {
    /// A read-only connection to notice other processes' commits (`None`: to be opened).
    reader: Option<Connection>,
    /// `PRAGMA data_version` when last looked (`None`: catch up at the next look).
    seen_version: Option<i64>,
    last_attempt: Instant,
    last_flush: Instant,
    /// Since when the flush has found another process's write lock in its way (`None`: it has not).
    flush_locked_since: Option<Instant>,
    last_purge: Instant,
    /// As `flush_locked_since`, for the purge.
    purge_locked_since: Option<Instant>,
}

/// The store's background work: notice other processes' commits, flush uses,
/// purge. It never ends silently: a failure of any task is reported (once per
/// episode), a failure to follow other processes' changes fails the store closed
/// until a later catch-up succeeds, and a defect is caught and does the same.
pub(super) fn maintain(store: &Weak<Inner>, path: &Path, purge_after_ms: i64) {
    let long_ago = Instant::now().checked_sub(RETRY_EVERY).unwrap_or_else(Instant::now);
    let mut watcher = Watcher {
        reader: None,
        seen_version: None,
        last_attempt: long_ago,
        last_flush: Instant::now(),
        flush_locked_since: None,
        last_purge: Instant::now(),
        purge_locked_since: None,
    };
    loop {
        std::thread::sleep(POLL_EVERY);
        let Some(store) = store.upgrade() else { return };
        if store.is_closed() {
            return;
        }
        let ran = catch_unwind(AssertUnwindSafe(|| tick(&store, path, &mut watcher, purge_after_ms)));
        if ran.is_err() {
            watcher.reader = None;
            watcher.seen_version = None;
            store.sync_failed(Error::new(ErrorCode::Internal, "internal error in the store's background thread; it starts over"));
        }
    }
}

fn tick(store: &Inner, path: &Path, watcher: &mut Watcher, purge_after_ms: i64) {
    // A file renamed over the store's changes nothing the reader below notices until a
    // process writes to the file now there: looked at directly, every time.
    store.check_file();
    let retry_due = watcher.last_attempt.elapsed() >= RETRY_EVERY;
    // Never a new connection to a truncated file: its first read would delete the log beside it
    // (the store's last pages, which the processes' close folds back into the file).
    if watcher.reader.is_none() && (store.is_current() || retry_due) && !truncated_beside_log(path) {
        watcher.last_attempt = Instant::now();
        match connect(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX) {
            Ok(conn) => {
                watcher.reader = Some(conn);
                watcher.seen_version = None;
            }
            Err(error) => store.sync_failed(error),
        }
    }
    if let Some(reader) = &watcher.reader {
        match reader.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0)) {
            Ok(version) => {
                let retry = !store.is_current() && retry_due;
                if watcher.seen_version != Some(version) || retry {
                    watcher.seen_version = Some(version);
                    watcher.last_attempt = Instant::now();
                    // Reports its own failure and recovery.
                    let _ = store.poll();
                }
            }
            Err(e) => {
                watcher.reader = None;
                store.sync_failed(read_error(path, "watching", e));
            }
        }
    }
    let flush_every = if watcher.flush_locked_since.is_some() { FLUSH_RETRY_EVERY } else { FLUSH_EVERY };
    if watcher.last_flush.elapsed() >= flush_every {
        watcher.last_flush = Instant::now();
        let flushed = store.flush_uses_without_waiting();
        report_unless_briefly_locked(store, Task::LastUsed, &flushed, &mut watcher.flush_locked_since);
    }
    let purge_every = if watcher.purge_locked_since.is_some() { PURGE_RETRY_EVERY } else { PURGE_EVERY };
    if watcher.last_purge.elapsed() >= purge_every {
        watcher.last_purge = Instant::now();
        let purged = store.purge_expired_without_waiting(purge_after_ms).map(|_| ());
        report_unless_briefly_locked(store, Task::Purge, &purged, &mut watcher.purge_locked_since);
    }
}

/// Reports the outcome of a background write that did not wait for the write lock, except
/// while another process's lock has been in its way for less than an admin call would wait
/// for it (`locked_since`: since when it has been): the write is tried again shortly meanwhile.
fn report_unless_briefly_locked(store: &Inner, task: Task, outcome: &crate::error::Result<()>, locked_since: &mut Option<Instant>) {
    match outcome {
        Err(error) if error.code == ErrorCode::StoreLocked => {
            let since = *locked_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= BUSY_TIMEOUT {
                store.report(task, outcome);
            }
        }
        _ => {
            *locked_since = None;
            store.report(task, outcome);
        }
    }
}
