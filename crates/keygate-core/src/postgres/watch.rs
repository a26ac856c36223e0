//! The listener thread: it waits for notifications on its own connection,
//! heartbeats when none come (a short query every 250 ms; a half-open connection
//! is noticed within about a second), and on a notification ahead of the cursor,
//! a heartbeat that sees the version moved, or a reconnect, catches up through
//! `Inner::try_poll` (strictly in version order; a gap reloads; not while a write of
//! this process is open, which catches up itself). It reconnects with jittered
//! backoff (50 ms – 2 s). It does nothing else: flushing `lastUsedAt` and purging
//! run on the maintenance thread (`maintain.rs`), on the write connection, so that
//! nothing this host holds the write connection for (an audit trail being read) and
//! no row lock another session holds keeps it from its heartbeat. A
//! third thread, the guard, fails the store closed when it has not heard from the
//! database for longer than `failClosedAfterMs`: on time even while the listener
//! waits on a catch-up, bounded only by `statementTimeoutMs`, which may be longer
//! than that bound.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;

use super::connect::CHANNEL;
use super::{epoch_sql, Position, Shared};
use crate::error::{Error, ErrorCode};
use crate::store::Inner;

const HEARTBEAT_EVERY: Duration = Duration::from_millis(250);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(750);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// While the store fails closed: how often to try catching up again.
const RETRY_EVERY: Duration = Duration::from_millis(250);

struct Watcher {
    /// The listener's notifications (`None`: disconnected).
    notifications: Option<UnboundedReceiver<String>>,
    /// Something was committed that this process has not applied.
    behind: bool,
    /// Connected in this round: catch up before waiting for notifications (what was
    /// committed while away sent none to this connection).
    just_connected: bool,
    backoff: Duration,
    next_attempt: Instant,
    last_heartbeat: Instant,
    last_retry: Instant,
}

enum Flow {
    Continue,
    Stop,
}

/// The thread's body: rounds until the store is closed or dropped, then ends the
/// guard and maintenance threads (see [`guard`], `maintain::maintain`), and waits for
/// them: `close` joins this thread alone. A defect in a round is caught: the
/// connection is dropped and the store fails closed until a later catch-up succeeds.
pub(super) fn watch(
    store: &Weak<Inner>,
    shared: &Arc<Shared>,
    notifications: UnboundedReceiver<String>,
    helpers: [std::thread::JoinHandle<()>; 2],
) {
    follow(store, shared, notifications);
    shared.stop_helpers();
    for helper in helpers {
        let _ = helper.join();
    }
}

/// The guard thread's body: fails the store closed once it has not heard from the
/// database for longer than `failClosedAfterMs`, waking at that instant. The
/// listener thread checks the bound too, but only between the steps of its round,
/// and a catch-up may wait up to `statementTimeoutMs` (for a table another session
/// locked, or a lost server): longer than the bound, checks would answer meanwhile
/// from a state nothing is following.
///
/// A bound shorter than a heartbeat's period and timeout (1 s) is kept by the
/// listener alone, as it always was, and by the guard at 1 s: a quiet database is
/// heard from only at each heartbeat, and the guard would otherwise fail the store
/// closed (and make it read everything afresh) between any two of them.
pub(super) fn guard(store: &Weak<Inner>, shared: &Shared) {
    let bound = shared.fail_closed_after.max(HEARTBEAT_EVERY + HEARTBEAT_TIMEOUT);
    loop {
        {
            let Some(inner) = store.upgrade() else { return };
            if inner.is_closed() {
                return;
            }
            fail_closed_if_silent(&inner, shared, bound);
        }
        // Until just past the bound; once past it (failing closed already), a whole bound:
        // contact regained meanwhile sets the next deadline no earlier than that.
        let silent = shared.since_contact();
        let wait = match bound.checked_sub(silent) {
            Some(left) => left + Duration::from_millis(1),
            None => bound,
        };
        if shared.helpers_stopped_within(wait) {
            return;
        }
    }
}

/// The listener's rounds (see [`watch`]).
fn follow(store: &Weak<Inner>, shared: &Arc<Shared>, notifications: UnboundedReceiver<String>) {
    let now = Instant::now();
    let mut watcher = Watcher {
        notifications: Some(notifications),
        behind: true,
        just_connected: false,
        backoff: BACKOFF_MIN,
        next_attempt: now,
        last_heartbeat: now,
        last_retry: now,
    };
    loop {
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        match catch_unwind(AssertUnwindSafe(|| watcher.round(store, shared))) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Stop) => return,
            Err(_) => {
                watcher.disconnect(shared);
                let Some(inner) = store.upgrade() else { return };
                inner.sync_failed(Error::new(ErrorCode::Internal, "internal error in the store's listener thread; it starts over"));
            }
        }
    }
}

/// A random duration in [d/2, d].
fn jitter(d: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let fraction = match crate::secret::random_bytes(&mut byte) {
        Ok(()) => f64::from(byte.first().copied().unwrap_or(0)) / 255.0,
        Err(_) => 1.0,
    };
    d.mul_f64(0.5 + fraction / 2.0)
}

impl Watcher {
    fn round(&mut self, store: &Weak<Inner>, shared: &Shared) -> Flow {
        if let Some(inner) = store.upgrade() {
            fail_closed_if_silent(&inner, shared, shared.fail_closed_after);
        }
        if self.notifications.is_none() {
            let now = Instant::now();
            if now >= self.next_attempt {
                self.reconnect(shared);
            } else {
                std::thread::sleep((self.next_attempt - now).min(BACKOFF_MIN));
            }
        }
        if self.notifications.is_some() && !std::mem::take(&mut self.just_connected) {
            self.listen(shared);
        }
        if self.notifications.is_some() && self.last_heartbeat.elapsed() >= HEARTBEAT_EVERY {
            self.heartbeat(shared);
        }
        // The store is held only outside the runtime (its last handle may drop here).
        let Some(inner) = store.upgrade() else { return Flow::Stop };
        if inner.is_closed() {
            return Flow::Stop;
        }
        let connected = self.notifications.is_some();
        let retry = !inner.is_current() && self.last_retry.elapsed() >= RETRY_EVERY;
        // Reports its own failure (and fails closed) and recovery. Not while a write of this
        // process is open (it catches up itself): tried again next round, heartbeating meanwhile.
        let polled = if connected && (self.behind || retry) { inner.try_poll() } else { None };
        if let Some(polled) = polled {
            self.last_retry = Instant::now();
            if shared.poll_lost.swap(false, Ordering::AcqRel) {
                // It could not look (still within failClosedAfterMs): reconnect and catch up then.
                self.disconnect(shared);
            } else if polled.is_ok() {
                self.behind = false;
            } else if shared.listener.lock().as_ref().is_none_or(tokio_postgres::Client::is_closed) {
                self.disconnect(shared);
            }
        }
        // Again after this round's waits (its listen, heartbeat and catch-up).
        fail_closed_if_silent(&inner, shared, shared.fail_closed_after);
        Flow::Continue
    }

    /// Waits up to the next heartbeat for notifications: one ahead of the cursor (or from
    /// another epoch) means catching up; one naming exactly where this process stands (its
    /// own write's, or another's it has applied) is contact, as a heartbeat finding the same.
    fn listen(&mut self, shared: &Shared) {
        let Some(notifications) = self.notifications.as_mut() else { return };
        let wait = HEARTBEAT_EVERY.saturating_sub(self.last_heartbeat.elapsed()).max(Duration::from_millis(1));
        let heard = shared.net.rt.block_on(async {
            // `close` is waiting for this thread: heard nothing (the round then ends it).
            let first = tokio::select! {
                first = tokio::time::timeout(wait, notifications.recv()) => first,
                () = shared.stopping.notified() => return Err(()),
            };
            Ok(first.map(|first| {
                first.map(|first| {
                    let mut all = vec![first];
                    while let Ok(more) = notifications.try_recv() {
                        all.push(more);
                    }
                    all
                })
            }))
        });
        let Ok(heard) = heard else { return };
        match heard {
            // A hint, which any role may send: contact only when it names where this process
            // stands and nothing heard says it is behind (see `Shared::touch`).
            Ok(Some(payloads)) => {
                let mut where_we_stand = false;
                for payload in payloads {
                    // `<epoch> <version> <mark>` (see `PgBackend::write`); only a hint to look: anyone
                    // connected may send one, and the changes are read from the table.
                    let mut parts = payload.splitn(3, ' ');
                    let (Some(epoch), Some(version), Some(mark)) =
                        (parts.next(), parts.next().and_then(|v| v.parse::<i64>().ok()), parts.next())
                    else {
                        continue;
                    };
                    let cursor = shared.cursor.lock();
                    if epoch != cursor.epoch || version > cursor.version || (version == cursor.version && mark != cursor.mark) {
                        self.behind = true;
                    } else if version == cursor.version {
                        where_we_stand = true;
                    }
                }
                // Without it, a bound under the heartbeat's period would fail a current process
                // closed whenever a notification cut the wait short.
                if where_we_stand && !self.behind {
                    shared.touch();
                }
            }
            // The connection ended.
            Ok(None) => self.disconnect(shared),
            Err(_) => {}
        }
    }

    /// A short query: proves the connection alive (or finds it half-open) and
    /// notices a version moved without a notification. Contact only when the
    /// database stands where this process does: one that moved on is contact once
    /// the catch-up it calls for has read the changes.
    fn heartbeat(&mut self, shared: &Shared) {
        self.last_heartbeat = Instant::now();
        let answer = {
            let guard = shared.listener.lock();
            let Some(client) = guard.as_ref() else { return };
            shared.net.run_within(
                HEARTBEAT_TIMEOUT,
                "heartbeat to",
                client.query_one(concat!("SELECT ", epoch_sql!(), ", m.version, m.mark FROM keygate_meta m WHERE m.id = 1"), &[]),
            )
        };
        match answer {
            Ok(row) => {
                // Another epoch, version or mark: moved on, restored, or failed over.
                if Position::read(&row).ok().is_none_or(|at| !shared.cursor.lock().is_at(&at)) {
                    self.behind = true;
                } else {
                    shared.touch();
                }
            }
            Err(_) => self.disconnect(shared),
        }
    }

    /// Connects and LISTENs again. While the store still answers, the attempt ends
    /// by the time it must fail closed, so that it fails closed on time.
    fn reconnect(&mut self, shared: &Shared) {
        let to_bound = shared.fail_closed_after.saturating_sub(shared.since_contact());
        let limit = if to_bound.is_zero() {
            shared.net.target.connect_timeout
        } else {
            shared.net.target.connect_timeout.min(to_bound.max(BACKOFF_MIN))
        };
        let connected = shared.net.connect_within(limit).and_then(|(client, notifications)| {
            shared.net.run_within(limit, "listening on", client.batch_execute(&format!("LISTEN {CHANNEL}")))?;
            Ok((client, notifications))
        });
        match connected {
            Ok((client, notifications)) => {
                *shared.listener.lock() = Some(client);
                self.notifications = Some(notifications);
                shared.connected.store(true, Ordering::Release);
                // Not contact yet: what was committed meanwhile is unknown until the catch-up below reads it.
                self.backoff = BACKOFF_MIN;
                self.last_heartbeat = Instant::now();
                // Anything may have been committed while it was away: caught up in this round.
                self.behind = true;
                self.just_connected = true;
                *shared.reconnect_failure.lock() = None;
            }
            Err(e) => {
                *shared.reconnect_failure.lock() = Some(e.message);
                self.schedule_reconnect();
            }
        }
    }

    fn disconnect(&mut self, shared: &Shared) {
        *shared.listener.lock() = None;
        self.notifications = None;
        shared.connected.store(false, Ordering::Release);
        self.schedule_reconnect();
    }

    fn schedule_reconnect(&mut self) {
        self.next_attempt = Instant::now() + jitter(self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}

/// Fails the store closed once it has not heard from the database for longer than
/// `bound` (`failClosedAfterMs`, or the guard's). The silence is measured with the
/// registry held (see `Inner::sync_failed_if`): a catch-up that the guard thread
/// raced, having heard from the database and applied what it read, is not failed
/// after the fact.
fn fail_closed_if_silent(inner: &Inner, shared: &Shared, bound: Duration) {
    // Looked at first without the registry: taking it for writing every round would wait out
    // whatever holds it for reading (a copy's snapshot), and hold back the heartbeat meanwhile.
    if !inner.is_current() || shared.since_contact() <= bound {
        return;
    }
    inner.sync_failed_if(|| {
        let silent = shared.since_contact();
        (silent > bound).then(|| {
            let why = shared.reconnect_failure.lock().as_ref().map(|failure| format!(" (the last attempt to reconnect: {failure})"));
            Error::new(
                ErrorCode::StoreUnavailable,
                format!(
                    "no word from {} for {} ms (failClosedAfterMs){}; checks answer store_unavailable until it is back",
                    shared.net.target.name,
                    silent.as_millis(),
                    why.unwrap_or_default()
                ),
            )
        })
    });
}
