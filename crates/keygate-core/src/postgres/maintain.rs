//! The maintenance thread: it flushes `lastUsedAt` about once a second (backing off to
//! once a minute while the server refuses the flush), and purges expired keys and
//! prunes old change rows about once a minute, under an advisory lock so that one host
//! does it. Both run on the write connection, so they may wait
//! for it (an admin call's transaction, an audit trail being read) and for row locks
//! another session holds, up to `statementTimeoutMs`: on a thread of their own, the
//! listener thread's heartbeat, notifications and catch-up never wait on them (done
//! between its heartbeats, they kept it from hearing the database, and the store
//! failed closed while the database answered). The thread opens no connection of its
//! own: a process keeps two.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::{Duration, Instant};

use super::{Shared, CHANGES_KEPT};
use crate::error::{Error, ErrorCode, Result};
use crate::incident::Task;
use crate::store::Inner;

const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// While the server refuses the flush (`STORE_IO`: a role granted only `SELECT`, a full
/// disk), each next one waits twice as long, up to this: such a refusal lasts until an
/// operator acts, and each attempt is an `ERROR` in the server's log. The uses are kept.
const FLUSH_REFUSED_MAX: Duration = Duration::from_secs(60);
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// While the listener is disconnected: how often to look whether it is back.
const RECHECK_EVERY: Duration = Duration::from_millis(100);
/// The advisory lock key of purging and pruning (one host at a time).
const MAINTENANCE_LOCK: i64 = 0x6b67_0002;
/// Takes the maintenance lock if no other host holds it, and reads the server's clock (ms
/// since the epoch).
const LOCK_AND_READ_THE_CLOCK: &str = "SELECT pg_try_advisory_lock($1), (extract(epoch FROM clock_timestamp()) * 1000)::int8";
/// Change rows no process catching up needs: one further behind reloads.
const PRUNE: &str = "DELETE FROM keygate_changes WHERE version <= (SELECT version FROM keygate_meta WHERE id = 1) - $1";

/// The thread's body: rounds until the store is closed or dropped, or the listener
/// thread ends (it tells this thread to stop, see `watch::watch`).
pub(super) fn maintain(store: &Weak<Inner>, shared: &Shared, purge_after_ms: i64) {
    let mut last_flush = Instant::now();
    let mut flush_every = FLUSH_EVERY;
    let mut last_purge: Option<Instant> = None;
    loop {
        {
            // Held only for the round: dropping the last handle elsewhere ends the thread.
            let Some(inner) = store.upgrade() else { return };
            // Nor once close (or the exit) has begun: it flushes the uses itself, and a flush begun
            // here would take them back from it after its own failed, and make close wait that
            // one out too before joining this thread (close took three `statementTimeoutMs`).
            if inner.is_closed() || shared.closing() {
                return;
            }
            // Only while the listener is connected: with the database lost, each task would
            // wait out the timeouts to fail (the uses are kept for a later flush).
            if shared.connected.load(Ordering::Acquire) {
                if last_flush.elapsed() >= flush_every {
                    last_flush = Instant::now();
                    let refused = run(&inner, shared, Task::LastUsed, || inner.flush_uses());
                    flush_every = if refused { flush_every.saturating_mul(2).min(FLUSH_REFUSED_MAX) } else { FLUSH_EVERY };
                }
                if last_purge.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                    last_purge = Some(Instant::now());
                    // Cut short by close rather than waited out (see `cut_by_close`).
                    run(&inner, shared, Task::Purge, || super::cut_by_close(|| purge_and_prune(&inner, shared, purge_after_ms)));
                }
            }
        }
        let wait = flush_every.saturating_sub(last_flush.elapsed()).max(RECHECK_EVERY);
        if shared.helpers_stopped_within(wait) {
            return;
        }
    }
}

/// Runs one task and reports its outcome. A defect in it is caught, as the listener
/// thread's are: the write connection is ended unless a write is open on it (the
/// maintenance lock its session may hold goes with it), and the store fails closed
/// until a catch-up has read the whole state afresh (a purge cut short may have
/// committed what memory lacks). True when the server refused the task (`STORE_IO`).
fn run(inner: &Inner, shared: &Shared, task: Task, work: impl FnOnce() -> Result<()>) -> bool {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(outcome) => {
            // A task close cut short (see `cut_by_close`) before the store was marked closed,
            // during close's own flush: no failure to tell, as one after it is not.
            if outcome.is_err() && shared.closing() {
                return false;
            }
            inner.report(task, &outcome);
            outcome.is_err_and(|e| e.code == ErrorCode::StoreIo)
        }
        Err(_) => {
            shared.end_idle_writer();
            inner.sync_failed(Error::new(
                ErrorCode::Internal,
                format!("internal error in the store's maintenance thread ({}); it goes on", task.as_str()),
            ));
            false
        }
    }
}

/// Purges expired keys and prunes change rows no process needs, on one host at a
/// time: a session advisory lock on the write connection (another host holding it
/// skips the round). A failed statement drops the connection, and the lock goes with
/// its session; should that happen during the purge, the prune runs on the new
/// connection unlocked (harmless: another host's prune deletes the same rows) and the
/// unlock finds nothing to release.
fn purge_and_prune(inner: &Inner, shared: &Shared, purge_after_ms: i64) -> Result<()> {
    let (locked, server_now) = shared.with_writer_replacing_lost(|net, w| {
        let row = net.run("locking maintenance of", w.client.query_one(LOCK_AND_READ_THE_CLOCK, &[&MAINTENANCE_LOCK]))?;
        Ok((row.try_get(0).unwrap_or(false), row.try_get::<_, i64>(1).unwrap_or(i64::MIN)))
    })?;
    if !locked {
        return Ok(());
    }
    // By the earlier of this host's clock and the server's: one host whose clock runs ahead
    // would otherwise purge, for every host, keys that have not been expired that long.
    let purged = inner.purge_expired_by_the_earlier_clock(purge_after_ms, server_now).map(|_| ());
    let pruned = shared.with_writer(|net, w| {
        net.run("pruning changes of", w.client.execute(PRUNE, &[&CHANGES_KEPT]))?;
        net.run("unlocking maintenance of", w.client.execute("SELECT pg_advisory_unlock($1)", &[&MAINTENANCE_LOCK]))?;
        Ok(())
    });
    purged.and(pruned)
}
