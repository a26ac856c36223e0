//! The maintenance thread of a durable store: it notices other processes' commits
//! (`PRAGMA data_version` on its own read-only connection) and catches up with
//! them, notices the file replaced under it, retries while the store fails closed,
//! flushes `lastUsedAt` and purges long-expired keys.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Weak;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::open::connect;
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

/// The maintenance thread's own view of the file.
struct Watcher {
    /// A read-only connection to notice other processes' commits (`None`: to be opened).
    reader: Option<Connection>,
    /// `PRAGMA data_version` when last looked (`None`: catch up at the next look).
    seen_version: Option<i64>,
    last_attempt: Instant,
    last_flush: Instant,
    last_purge: Instant,
}

/// The store's background work: notice other processes' commits, flush uses,
/// purge. It never ends silently: a failure of any task is reported (once per
/// episode), a failure to follow other processes' changes fails the store closed
/// until a later catch-up succeeds, and a defect is caught and does the same.
pub(super) fn maintain(store: &Weak<Inner>, path: &Path, purge_after_ms: i64) {
    let long_ago = Instant::now().checked_sub(RETRY_EVERY).unwrap_or_else(Instant::now);
    let mut watcher =
        Watcher { reader: None, seen_version: None, last_attempt: long_ago, last_flush: Instant::now(), last_purge: Instant::now() };
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
    if watcher.reader.is_none() && (store.is_current() || retry_due) {
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
    if watcher.last_flush.elapsed() >= FLUSH_EVERY {
        watcher.last_flush = Instant::now();
        store.report(Task::LastUsed, &store.flush_uses());
    }
    if watcher.last_purge.elapsed() >= PURGE_EVERY {
        watcher.last_purge = Instant::now();
        store.report(Task::Purge, &store.purge_expired(purge_after_ms).map(|_| ()));
    }
}
