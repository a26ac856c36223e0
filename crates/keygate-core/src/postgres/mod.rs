//! The shared store: one PostgreSQL database shared by processes on many hosts.
//! Every admin call is one transaction that locks the meta row (`FOR UPDATE`,
//! so writers of all hosts go one at a time), catches up with what others
//! committed, writes its rows, a `keygate_changes` row under the next version
//! and its mark (a digest of the history up to it: `mark.rs`),
//! its hash-chained audit rows and the meta row, notifies (`pg_notify`) and
//! commits before returning. Each process keeps a second connection that
//! LISTENs, heartbeats and catches up strictly in version order (`watch.rs`);
//! its background writes (`lastUsedAt`, purging) go on the write connection, from
//! a thread of their own (`maintain.rs`), so that the listener never waits on them.
//! I/O runs on two current-thread tokio runtimes the backend owns, one per
//! connection, so that each connection is driven by the thread waiting for its
//! answer (not handed between threads on every round trip); every wait is
//! bounded by the connect or statement timeout.
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | [`PgBackend`]: the `Backend` over the two connections; the cursor |
//! | `open.rs` | opening: options, connections, schema, the snapshot, the threads |
//! | `connect.rs` | the URL, TLS (rustls), connections and their errors |
//! | `schema.rs` | the tables and the meta row; reading the whole state |
//! | `tables.rs` | keygate's tables checked at open: none, all as keygate makes them, or damaged |
//! | `codec.rs` | records ↔ rows and change JSON; the statements that write a change |
//! | `audit.rs` | the audit table and its head |
//! | `mark.rs` | the change log's marks: a digest of the history up to each version |
//! | `uses.rs` | `lastUsedAt` written in a stable lock order |
//! | `watch.rs` | the listener thread: notifications, heartbeat, reconnects; the guard thread: failing closed |
//! | `maintain.rs` | the maintenance thread: flushing `lastUsedAt`, purging expired keys, pruning the change log |

mod audit;
mod codec;
mod connect;
mod maintain;
mod mark;
mod open;
mod schema;
mod tables;
mod uses;
mod watch;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use parking_lot::{Condvar, Mutex};
use tokio::runtime::Runtime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement, ToStatement};

use self::codec::{decode_changes, encode_changes, statements, Param};
use self::connect::Target;
pub(crate) use self::open::{is_postgres_url, open};
use crate::audit::{AuditDraft, AuditEntry, AuditQuery, AuditReport};
use crate::backend::{Backend, Catchup, Liveness, UsesOf};
use crate::error::{Error, ErrorCode, Result};
use crate::registry::Change;

/// The changes of one `keygate_changes` row's JSON text, as a catch-up reads them: for the
/// fuzz target `pg_changes` (through `internals`); `STORE_CORRUPT` for a row keygate could
/// not have written.
pub fn decode_pg_changes(json: &str) -> Result<Vec<Change>> {
    decode_changes(json)
}

/// The JSON text of a `keygate_changes` row holding `changes`, as a write logs them.
pub fn encode_pg_changes(changes: &[Change]) -> String {
    encode_changes(changes)
}

/// A runtime and where to connect: every database call goes through [`Net::run`].
pub(super) struct Net {
    rt: Arc<Runtime>,
    target: Arc<Target>,
    /// The tasks driving this runtime's connections (see [`Net::end_connections`]).
    drivers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Fired by `close` on the listener's `Net` (see `Backend::stopping`): its calls under way
    /// and to come end at once. Without it, `close` waited for the listener thread's round: a
    /// catch-up's read (up to `statementTimeoutMs`), a heartbeat (750 ms) or a reconnect (up to
    /// `connectTimeoutMs`) to a server that stopped answering, with nothing to write (measured
    /// with both timeouts 8,000 ms: 8.2 s for a reconnect, 16.9 s for a catch-up waiting for a
    /// table another session locked).
    ///
    /// Fired on the write connection's `Net` too, as `close` begins (see `Backend::closing`),
    /// but only calls made inside [`cut_by_close`] (the maintenance thread's purge) see it:
    /// `close` flushes `lastUsedAt` on that connection, and a flush under way is waited for.
    stop: Stop,
    /// Whether every call sees [`Net::stop`] (the listener's), or only those inside
    /// [`cut_by_close`] (the write connection's).
    stops_every_call: bool,
    /// Set when [`Net::stop`] ended a call under way (see [`Net::take_cut`]).
    cut: AtomicBool,
}

thread_local! {
    /// Set while this thread runs [`cut_by_close`]'s work.
    static CUT_BY_CLOSE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `work` with the write connection's calls made on this thread ended at once by `close`
/// (`STORE_IO` "the store is closing"; see [`Net::stop`]), as the listener's are: for the
/// maintenance thread's purge (and prune), which nothing is lost by cutting short (the next
/// open, or another process, does it). `close` joined that thread, and so waited the purge out:
/// against a database that stopped answering, its statement (up to `statementTimeoutMs`) and
/// then a new write connection (up to `connectTimeoutMs`), 16.2 s measured with both 8,000 ms;
/// against a change log another session locked, the prune's statement.
pub(super) fn cut_by_close<T>(work: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            CUT_BY_CLOSE.with(|cut| cut.set(self.0));
        }
    }
    let _restore = Restore(CUT_BY_CLOSE.with(|cut| cut.replace(true)));
    work()
}

/// See [`Net::stop`]: once fired, stays fired.
#[derive(Default)]
struct Stop {
    fired: AtomicBool,
    wake: tokio::sync::Notify,
}

impl Stop {
    fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        self.wake.notify_waiters();
    }

    /// Ends once fired (at once if it was) when `applies`; never otherwise.
    async fn fired_if(&self, applies: bool) {
        if applies {
            self.fired().await;
        } else {
            std::future::pending::<()>().await;
        }
    }

    /// Ends once fired (at once if it was).
    async fn fired(&self) {
        loop {
            let mut woken = std::pin::pin!(self.wake.notified());
            // Registered before the flag is read: a `fire` in between wakes it.
            woken.as_mut().enable();
            if self.fired.load(Ordering::Acquire) {
                return;
            }
            woken.await;
        }
    }
}

/// What a call of a `Net` whose [`Net::stop`] fired answers.
fn stopped(what: &str, name: &str) -> Error {
    Error::new(ErrorCode::StoreIo, format!("{what} {name}: the store is closing"))
}

impl Net {
    /// `stops_every_call`: see [`Net::stops_every_call`].
    fn new(rt: Arc<Runtime>, target: Arc<Target>, stops_every_call: bool) -> Net {
        Net { rt, target, drivers: Mutex::default(), stop: Stop::default(), stops_every_call, cut: AtomicBool::new(false) }
    }

    /// What a call [`Net::stop`] ended under way answers; noted for [`Net::take_cut`].
    fn cut_short(&self, what: &str) -> Error {
        self.cut.store(true, Ordering::Release);
        stopped(what, &self.target.name)
    }

    /// Whether [`Net::stop`] ended a call under way since this was last asked: its statement may
    /// still run on the server (see [`Net::cancel_running`]).
    fn take_cut(&self) -> bool {
        self.cut.swap(false, Ordering::AcqRel)
    }

    /// Whether a call made now, on this thread, ends once [`Net::stop`] fires.
    fn stop_applies(&self) -> bool {
        self.stops_every_call || CUT_BY_CLOSE.with(std::cell::Cell::get)
    }

    /// Runs one database call to its end, waiting at most the statement timeout.
    fn run<T>(&self, what: &str, call: impl Future<Output = std::result::Result<T, tokio_postgres::Error>>) -> Result<T> {
        self.run_within(self.target.statement_timeout, what, call)
    }

    /// Runs one database call to its end, waiting at most `limit`.
    fn run_within<T>(
        &self,
        limit: Duration,
        what: &str,
        call: impl Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        self.finish(limit, what, async { call.await.map_err(|e| self.target.error(what, &e)) })
    }

    /// Runs a call whose errors are keygate's already to its end, waiting at most `limit`.
    fn finish<T>(&self, limit: Duration, what: &str, call: impl Future<Output = Result<T>>) -> Result<T> {
        let applies = self.stop_applies();
        let call = async {
            tokio::select! {
                biased;
                done = call => done,
                () = self.stop.fired_if(applies) => Err(self.cut_short(what)),
            }
        };
        finish_within(&self.rt, limit, call).unwrap_or_else(|| {
            Err(Error::new(ErrorCode::StoreUnavailable, format!("{what} {}: no answer within {} ms", self.target.name, limit.as_millis())))
        })
    }

    /// Runs `sql` and hands each row to `each` as it arrives, without holding
    /// the result: a big table is bounded by progress (a row, or the start of
    /// the answer, within the statement timeout), not by its size.
    fn for_each_row<S: ToStatement + ?Sized>(
        &self,
        what: &str,
        client: &Client,
        sql: &S,
        params: &[&(dyn ToSql + Sync)],
        mut each: impl FnMut(&Row) -> Result<()>,
    ) -> Result<()> {
        let limit = self.target.statement_timeout;
        let stalled =
            || Error::new(ErrorCode::StoreUnavailable, format!("{what} {}: no answer within {} ms", self.target.name, limit.as_millis()));
        let read = async {
            let rows = tokio::time::timeout(limit, client.query_raw(sql, params.iter().copied())).await.map_err(|_| stalled())?;
            let mut rows = std::pin::pin!(rows.map_err(|e| self.target.error(what, &e))?);
            loop {
                match tokio::time::timeout(limit, rows.next()).await {
                    Err(_) => return Err(stalled()),
                    Ok(None) => return Ok(()),
                    Ok(Some(row)) => each(&row.map_err(|e| self.target.error(what, &e))?)?,
                }
            }
        };
        let applies = self.stop_applies();
        self.rt.block_on(async {
            tokio::select! {
                biased;
                done = read => done,
                () = self.stop.fired_if(applies) => Err(self.cut_short(what)),
            }
        })
    }
}

/// How many times [`finish_within`] lets the runtime's other tasks run before it gives up.
const LAST_LOOKS: usize = 4;

/// Drives `call` on `rt` to its end, waiting at most `limit`; `None` if it did not end.
/// When the limit is reached, a last look: the answer may be in the socket already, unread
/// only because the timer fired in the same turn of the runtime (a process resumed after a
/// pause: both are due at once, and this call is polled first). The connection's task is
/// let run, and the call polled, a few times more; without this a committed write could
/// fail as "may or may not have been committed".
fn finish_within<F: Future>(rt: &Runtime, limit: Duration, call: F) -> Option<F::Output> {
    rt.block_on(async {
        let mut call = std::pin::pin!(call);
        if let Ok(done) = tokio::time::timeout(limit, call.as_mut()).await {
            return Some(done);
        }
        for _ in 0..LAST_LOOKS {
            tokio::task::yield_now().await;
            if let std::task::Poll::Ready(done) = std::future::poll_fn(|cx| std::task::Poll::Ready(call.as_mut().poll(cx))).await {
                return Some(done);
            }
        }
        None
    })
}

/// Where this process stands in the change log.
struct Cursor {
    /// The database's epoch when the state was read (a restore or failover to
    /// another database changes it: then everything is read afresh).
    epoch: String,
    /// The last version applied.
    version: i64,
    /// That version's mark (see `mark.rs`).
    mark: String,
    /// The state in memory cannot be trusted: the next catch-up reads everything.
    needs_reload: bool,
}

/// Where the database's change log stands: its epoch, version and the version's mark.
pub(super) struct Position {
    epoch: String,
    version: i64,
    mark: String,
}

impl Position {
    /// The position in a row's first three columns (epoch, version, mark), as the
    /// queries that read the meta row select them.
    fn read(row: &Row) -> std::result::Result<Position, tokio_postgres::Error> {
        Ok(Position { epoch: row.try_get(0)?, version: row.try_get(1)?, mark: row.try_get(2)? })
    }
}

impl Cursor {
    fn at(position: Position) -> Cursor {
        Cursor { epoch: position.epoch, version: position.version, mark: position.mark, needs_reload: false }
    }

    /// Whether the database stands where this process does: nothing to catch up.
    fn is_at(&self, position: &Position) -> bool {
        self.epoch == position.epoch && self.version == position.version && self.mark == position.mark
    }
}

/// The meta row as an admin transaction locked it.
#[derive(Clone)]
struct Locked {
    /// The thread whose admin call opened the transaction: only it may use the
    /// connection until the transaction ends (see `Shared::with_writer`).
    owner: std::thread::ThreadId,
    epoch: String,
    version: i64,
    mark: String,
    audit_head: (u64, [u8; 32]),
}

/// The write connection, its prepared statements, and the open transaction's lock.
struct Writer {
    client: Client,
    prepared: HashMap<&'static str, Statement>,
    locked: Option<Locked>,
}

impl Writer {
    fn statement(&mut self, net: &Net, sql: &'static str) -> Result<Statement> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = net.run("preparing a statement for", self.client.prepare(sql))?;
        self.prepared.insert(sql, statement.clone());
        Ok(statement)
    }

    /// One statement of a write: `sql` prepared, with its parameters (and its SQL, which names its table).
    fn write_of(&mut self, net: &Net, sql: &'static str, params: Vec<Param>) -> Result<Write> {
        Ok((self.statement(net, sql)?, params, sql))
    }
}

/// When the process last knew it was current: a heartbeat that found the database where
/// the process stands, a catch-up that read what it had missed, its own write, or a
/// notification naming exactly where it stands. Not a reconnect, another notification, or a
/// heartbeat that found the database moved on: each proves the database reachable, not that
/// the process has what was committed (a catch-up after them may keep timing out, on a change
/// log another session locks, say).
struct Contact {
    at: Instant,
    wall: i64,
}

/// What the backend and its threads (listener, guard, maintenance) share.
pub(super) struct Shared {
    /// The listener's runtime (the listener thread waits in it for notifications).
    net: Net,
    /// The write connection's own runtime: an admin call's thread drives the
    /// connection itself while it waits, with no other thread to wake on the way.
    writer_net: Net,
    /// This process, in its change rows.
    token: String,
    cursor: Mutex<Cursor>,
    writer: Mutex<Option<Writer>>,
    /// Signalled whenever the write connection is handed back (see `Shared::with_writer`).
    writer_free: Condvar,
    /// The listener thread's connection: notifications, heartbeats and catch-up only.
    listener: Mutex<Option<Client>>,
    connected: AtomicBool,
    contact: Mutex<Contact>,
    fail_closed_after: Duration,
    /// A catch-up could not reach the database (see `Shared::poll`).
    poll_lost: AtomicBool,
    /// Why the listener's last attempt to reconnect failed (`None` once connected): the
    /// message of a store failing closed says it (a replica reached: LISTEN refused).
    reconnect_failure: Mutex<Option<String>>,
    closed: AtomicBool,
    /// Set (and `helpers_wake` signalled) when the listener thread ends: the guard and
    /// maintenance threads end too.
    helpers_stop: Mutex<bool>,
    helpers_wake: Condvar,
    /// Signalled by `close` (see `Backend::stopping`): the listener stops waiting for
    /// notifications at once instead of up to a heartbeat's period (250 ms) later.
    stopping: tokio::sync::Notify,
}

/// The store's epoch as processes compare it: the random one made with the store, and the
/// database's identity, which a restore into a new database (pg_restore) changes and a
/// promoted physical replica keeps.
macro_rules! epoch_sql {
    () => {
        "m.epoch || ':' || (SELECT oid::text FROM pg_database WHERE datname = current_database())"
    };
}
pub(super) use epoch_sql;

/// The meta row locked, with the last audit entry's number and the last change row's version: a
/// head the write cannot extend (entries or change rows added past it behind keygate's back) is
/// refused before anything is written, and so is a schema a newer keygate raised since this one opened.
const LOCK_META: &str = concat!(
    "SELECT ",
    epoch_sql!(),
    ", m.version, m.audit_seq, m.audit_hash, m.mark, (SELECT max(seq) FROM keygate_audit),",
    " (SELECT max(version) FROM keygate_changes), m.schema_version FROM keygate_meta m WHERE m.id = 1 FOR UPDATE OF m"
);
/// A page of the change rows after a version, up to another, in version order.
const CHANGES_PAGE: &str =
    "SELECT version, mark, changes FROM keygate_changes WHERE version > $1 AND version <= $2 ORDER BY version LIMIT $3";
/// Change rows read per statement. Each page is small, so the server reads it in the
/// primary key's order and sends its first row at once: asked for all of them, it may
/// choose to sort them all first (with no statistics yet, say), and 100,000 rows took
/// longer than a short statement timeout, so that a process far behind never caught up.
const CHANGES_PER_PAGE: i64 = 1_000;
const INSERT_CHANGE: &str = codec::one_row!("INSERT INTO keygate_changes (version, token, at, changes, mark) VALUES ($1, $2, $3, $4, $5)");
/// How long connections being ended (by `close`, or a write connection dropped after a
/// failed call) are given, at most, to say goodbye to the server before they are cut. A
/// connection says goodbye at once unless it still awaits an answer (a server that stopped
/// answering); `close` and admin calls run on the host's event loop.
const GOODBYE_WAIT: Duration = Duration::from_millis(200);
const NOTIFY: &str = "SELECT pg_notify('keygate', $1)";
/// The meta row, then the first page of the changes after a version up to the meta row's
/// version, in one snapshot (one statement; see [`CHANGES_PAGE`] for why a page).
const POLL: &str = concat!(
    "(SELECT ",
    epoch_sql!(),
    ", m.version, m.mark, NULL::bigint, NULL::text, NULL::text FROM keygate_meta m WHERE m.id = 1)
     UNION ALL
     (SELECT NULL, NULL, NULL, c.version, c.mark, c.changes FROM keygate_changes c
      WHERE c.version > $1 AND c.version <= (SELECT version FROM keygate_meta WHERE id = 1) ORDER BY c.version LIMIT $2)"
);

impl Shared {
    fn touch(&self) {
        let mut contact = self.contact.lock();
        contact.at = Instant::now();
        contact.wall = crate::clock::system_now();
    }

    fn since_contact(&self) -> Duration {
        self.contact.lock().at.elapsed()
    }

    /// Whether `close` (or the flush at the process's exit) has begun (see `Backend::closing`).
    fn closing(&self) -> bool {
        self.writer_net.stop.fired.load(Ordering::Acquire)
    }

    /// Tells the guard and maintenance threads to end (see `helpers_stop`).
    fn stop_helpers(&self) {
        *self.helpers_stop.lock() = true;
        self.helpers_wake.notify_all();
    }

    /// Waits up to `wait`, or until the guard and maintenance threads are told to end;
    /// whether they are.
    fn helpers_stopped_within(&self, wait: Duration) -> bool {
        let mut stop = self.helpers_stop.lock();
        if !*stop {
            self.helpers_wake.wait_for(&mut stop, wait);
        }
        *stop
    }

    /// Ends the write connection unless a write is open on it: after a defect in the
    /// maintenance thread, whatever its session may still hold (the maintenance lock)
    /// goes with it. A write open on it is another thread's, ended by that thread.
    fn end_idle_writer(&self) {
        let mut guard = self.writer.lock();
        if guard.as_ref().is_some_and(|w| w.locked.is_none()) {
            *guard = None;
            Net::end_connections(&[&self.writer_net], Instant::now() + GOODBYE_WAIT);
        }
    }

    fn connect_writer(&self) -> Result<Writer> {
        let (client, _notifications) = self.writer_net.connect()?;
        Ok(Writer { client, prepared: HashMap::new(), locked: None })
    }

    /// Runs `f` on the write connection (connecting first if needed); a failure
    /// drops the connection (its state is unknown; the server rolls back what was open).
    ///
    /// An admin transaction spans several calls (`begin`, `changes`, `commit` or
    /// `rollback`), and admin calls run on more than one thread (the maintenance
    /// thread purges expired keys). Between those calls the connection is inside
    /// that transaction, so any other thread (reading the audit trail, say) waits
    /// here until it ends — else its statements would run inside the transaction,
    /// and its COMMIT would end it early, releasing the meta row's lock. The wait
    /// is bounded by the statement timeout.
    fn with_writer<T>(&self, f: impl FnOnce(&Net, &mut Writer) -> Result<T>) -> Result<T> {
        let mut guard = self.writer.lock();
        let me = std::thread::current().id();
        let deadline = Instant::now() + self.net.target.statement_timeout;
        let held_by_another =
            |writer: &Option<Writer>| writer.as_ref().and_then(|w| w.locked.as_ref()).is_some_and(|locked| locked.owner != me);
        while held_by_another(&guard) {
            // A last look once the deadline has passed: a write that ended just then is not waited out in vain.
            if self.writer_free.wait_until(&mut guard, deadline).timed_out() && held_by_another(&guard) {
                return Err(Error::gave_up_waiting(format!(
                    "{}: another admin call held the write connection for over {} ms",
                    self.net.target.name,
                    self.net.target.statement_timeout.as_millis()
                )));
            }
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::new(ErrorCode::StoreIo, "the store is closed"));
        }
        if let Some(lost) = guard.take_if(|w| w.client.is_closed()) {
            if lost.locked.is_some() {
                // The server rolled the open write back with the connection: the call fails, changing nothing.
                self.writer_free.notify_all();
                return Err(write_lost(self));
            }
        }
        let writer = match guard.as_mut() {
            Some(writer) => writer,
            None => guard.insert(self.connect_writer()?),
        };
        let result = f(&self.writer_net, writer);
        if result.is_err() {
            // A statement `close` cut short (the purge's) still runs on the server: its backend,
            // waiting for a lock, would not notice the connection end, and stayed queued (holding
            // the maintenance lock) until the lock was let go, then ran it.
            let cut = self.writer_net.take_cut();
            if let Some(w) = guard.as_ref().filter(|_| cut) {
                self.writer_net.cancel_running(&w.client, GOODBYE_WAIT);
            }
            *guard = None;
            // Nothing drives this runtime until the next write: ended now, the dropped
            // connection says goodbye (or is cut), so that its session, perhaps inside a
            // transaction holding keygate_meta's row after a call that timed out here,
            // does not linger on the server holding every host's writes back.
            Net::end_connections(&[&self.writer_net], Instant::now() + GOODBYE_WAIT);
        }
        if guard.as_ref().is_none_or(|w| w.locked.is_none()) {
            self.writer_free.notify_all();
        }
        result
    }

    /// Runs `f` on the write connection when no write is open on it (a read, or
    /// `begin`). The connection is driven only while it is used, so one the server
    /// ended since (a restart, `pg_terminate_backend`: an I/O error or SQLSTATE
    /// 57P01/57P02/57P03, both `STORE_UNAVAILABLE`) is found lost only now: then it
    /// is replaced once, within the connect and statement timeouts, and the call
    /// is not failed for a connection it never needed.
    fn with_writer_replacing_lost<T>(&self, f: impl Fn(&Net, &mut Writer) -> Result<T>) -> Result<T> {
        let kept = self.writer.lock().as_ref().is_some_and(|w| w.locked.is_none());
        match self.with_writer(&f) {
            // Not after a wait for a lock or connection another holds: the connection
            // answered, and a second try would wait as long again.
            Err(e) if kept && e.code == ErrorCode::StoreUnavailable && !e.gave_up_waiting => self.with_writer(&f),
            done => done,
        }
    }

    /// What follows `cursor`, given where the database stands and the change rows
    /// (version, mark, changes) after the cursor up to its version, read in one
    /// snapshot: the changes when they are all there and run on from the cursor's
    /// mark, otherwise the whole state afresh.
    fn catch_up(
        &self,
        net: &Net,
        client: &Client,
        in_transaction: bool,
        at: Position,
        rows: Vec<(i64, String, String)>,
    ) -> Result<Catchup> {
        let mut cursor = self.cursor.lock();
        let reaches =
            rows.last().map_or((cursor.version, cursor.mark.as_str()), |(v, m, _)| (*v, m.as_str())) == (at.version, at.mark.as_str());
        let follows = mark::follows(&cursor.mark, cursor.version, &rows);
        if cursor.needs_reload || at.epoch != cursor.epoch || !reaches || !follows {
            // A restore or failover (another epoch; the version backwards; the same
            // versions with other marks: commits lost), or history pruned past the cursor.
            // Ahead by a version with no change row (a copy into the store), on from where
            // this process stands: nothing it applied is undone, and the reload is no failure.
            let only_ahead = at.epoch == cursor.epoch && at.version > rows.last().map_or(cursor.version, |row| row.0) && follows;
            let elsewhere = (at.epoch != cursor.epoch || !reaches || !follows) && !only_ahead;
            // A change row without a mark after the cursor: only a keygate from before marks
            // (schema 1) writes one, still running against the database this one upgraded.
            let unmarked = rows.iter().find(|(_, mark, _)| mark.is_empty()).map(|(version, _, _)| *version);
            let told = |only_ahead: bool| {
                let message = if only_ahead {
                    format!("{} is ahead by a write that logged no changes (a copy into it): reading it afresh", self.net.target.name)
                } else if let Some(version) = unmarked {
                    format!(
                        "{} holds change {version} without a mark, as only a keygate older than schema 2 writes: one still runs against it \
                         (stop or upgrade it: each change it writes makes this process read the whole state afresh), or an older dump was restored",
                        self.net.target.name
                    )
                } else {
                    format!(
                        "{} stands on another history than this process (a restore, a failover, or changes pruned past it)",
                        self.net.target.name
                    )
                };
                Error { only_ahead, ..Error::new(ErrorCode::StoreUnavailable, message) }
            };
            // Known stale until the load succeeds: a load that fails must not be taken for
            // a look that merely could not reach the database (see `poll`).
            if !cursor.needs_reload && !in_transaction {
                // Found here, outside a write: an error, so that the store fails closed before
                // the load (which may take seconds, or wait on a table another session locked)
                // rather than answer from a state it knows is stale until the load ends; it
                // then asks again at once, and that look reads the whole state (`Inner::sync`).
                // A write's own look loads at once instead: its transaction would not survive
                // an error, and checks cannot run meanwhile in the process making the call.
                cursor.needs_reload = true;
                return Err(told(only_ahead));
            }
            cursor.needs_reload = true;
            let (registry, position) = schema::load(net, client, !in_transaction)?;
            *cursor = Cursor::at(position);
            // Still told when found by a write, or by the look that ends an outage (the process
            // failed closed for want of word, and the database came back on another history).
            return Ok(Catchup::Reload(Box::new(registry), elsewhere.then(|| told(false))));
        }
        if rows.is_empty() {
            return Ok(Catchup::Nothing);
        }
        let mut changes = Vec::new();
        for (_, _, json) in &rows {
            changes.extend(decode_changes(json)?);
        }
        cursor.version = at.version;
        cursor.mark = at.mark;
        Ok(Catchup::Changes(changes))
    }

    /// Catch-up outside a write, on the listener's connection. When the database
    /// cannot be reached and the process heard from it within `failClosedAfterMs`,
    /// the answer is `Nothing`: the store keeps answering from what it holds for
    /// that long by design, and the listener thread (told through `poll_lost`)
    /// reconnects, or fails the store closed once the bound has passed. Not when
    /// what it holds is known stale (a reload is due: a restore, history pruned past
    /// the cursor, changes it could not apply): then the error stands, and the store
    /// fails closed at once rather than answer from that state for as long as each
    /// reload keeps failing after a fresh contact.
    fn poll(&self) -> Result<Catchup> {
        match self.look() {
            Err(e)
                if e.code == ErrorCode::StoreUnavailable
                    && !self.cursor.lock().needs_reload
                    && self.since_contact() <= self.fail_closed_after =>
            {
                self.poll_lost.store(true, Ordering::Release);
                Ok(Catchup::Nothing)
            }
            answer => answer,
        }
    }

    fn look(&self) -> Result<Catchup> {
        let guard = self.listener.lock();
        let Some(client) = guard.as_ref() else {
            return Err(Error::new(ErrorCode::StoreUnavailable, format!("not connected to {}", self.net.target.name)));
        };
        let after = self.cursor.lock().version;
        let mut meta = None;
        let mut changes = Vec::new();
        // Streamed: a process far behind is bounded by progress, not by how much it missed.
        self.net.for_each_row("reading changes of", client, POLL, &[&after, &CHANGES_PER_PAGE], |row| {
            // A change row has a version; the meta row has none. Changes out of order
            // would not follow the cursor's mark: everything is then read afresh.
            let read = (|| {
                match row.try_get::<_, Option<i64>>(3)? {
                    Some(v) => changes.push((v, row.try_get(4)?, row.try_get(5)?)),
                    None => meta = Some(Position::read(row)?),
                }
                Ok::<_, tokio_postgres::Error>(())
            })();
            read.map_err(|e| codec::corrupt(format!("a change row: {e}")))
        })?;
        let meta = meta.ok_or_else(|| codec::corrupt("its keygate_meta row is missing"))?;
        if changes.len() as i64 == CHANGES_PER_PAGE {
            read_changes(&self.net, client, CHANGES_PAGE, after, meta.version, &mut changes)?;
        }
        self.touch();
        let caught_up = self.catch_up(&self.net, client, false, meta, changes);
        if caught_up.is_ok() {
            // A reload of a big store can take longer than failClosedAfterMs: its rows were contact all along.
            self.touch();
        }
        caught_up
    }
}

/// Appends to `rows` the change rows after the last one in it (or after `after`) up to
/// `upto`, in version order, a page at a time (see [`CHANGES_PAGE`]). Stops at `upto`, or
/// at a page that comes back short: rows missing (pruned) leave a gap, which the caller
/// finds (see [`Shared::catch_up`]).
fn read_changes<S: ToStatement + ?Sized>(
    net: &Net,
    client: &Client,
    page: &S,
    after: i64,
    upto: i64,
    rows: &mut Vec<(i64, String, String)>,
) -> Result<()> {
    let mut from = rows.last().map_or(after, |row| row.0);
    while from < upto {
        let before = rows.len();
        net.for_each_row("reading changes of", client, page, &[&from, &upto, &CHANGES_PER_PAGE], |row| {
            let read = (|| Ok::<_, tokio_postgres::Error>((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))();
            rows.push(read.map_err(|e| codec::corrupt(format!("a change row: {e}")))?);
            Ok(())
        })?;
        match rows.last() {
            Some(last) if (rows.len() - before) as i64 == CHANGES_PER_PAGE && last.0 > from => from = last.0,
            _ => break,
        }
    }
    Ok(())
}

/// The backend of `KeyStore::open('postgres://…')`.
pub struct PgBackend {
    shared: Arc<Shared>,
}

/// Records a copied store's `maxLifetimeDays` (a whole number of days; the column is a double).
const SET_MAX_LIFETIME_DAYS: &str = codec::one_row!("UPDATE keygate_meta SET max_lifetime_days = $1::bigint WHERE id = 1");

/// Statements pipelined per round trip of a write (see `PgBackend::write`).
const WRITE_BATCH: usize = 500;

/// Rows to keep in `keygate_changes` for processes catching up; one further behind reloads.
const CHANGES_KEPT: i64 = 100_000;

impl PgBackend {
    fn lock_meta(&self) -> Result<()> {
        self.shared.with_writer_replacing_lost(|net, w| {
            w.locked = None;
            let lock = w.statement(net, LOCK_META)?;
            let client = &w.client;
            let (_, row) =
                net.run("locking", async { tokio::try_join!(client.batch_execute(&net.target.begin), client.query_opt(&lock, &[])) })?;
            // No row to lock: deleted, or hidden from keygate's role by a row-level security
            // policy (`FOR UPDATE` takes only the rows an UPDATE could). Not the server gone.
            let row = row.ok_or_else(|| {
                codec::corrupt(
                    "its keygate_meta row (id 1) is missing, or a row-level security policy hides it from updates: no write can be made"
                        .to_string(),
                )
            })?;
            let read = (|| {
                Ok::<_, tokio_postgres::Error>((
                    row.try_get::<_, String>(0)?,
                    row.try_get::<_, i64>(1)?,
                    row.try_get(2)?,
                    row.try_get::<_, String>(3)?,
                    row.try_get::<_, String>(4)?,
                    row.try_get::<_, Option<i64>>(5)?,
                    row.try_get::<_, Option<i64>>(6)?,
                    row.try_get::<_, i32>(7)?,
                ))
            })();
            let (epoch, version, seq, hash, mark, last, last_change, schema_version) =
                read.map_err(|e| codec::corrupt(format!("its keygate_meta row: {e}")))?;
            // Rows of this keygate's shape would be read by the newer one as its own.
            if schema_version > schema::SCHEMA_VERSION {
                return Err(schema::written_by_newer(schema_version));
            }
            schema::change_log_extendable(version, last_change)?;
            // Refused, the call fails and the connection is dropped: the server ends the transaction.
            let audit_head = audit::extendable(seq, &hash, last)?;
            w.locked = Some(Locked { owner: std::thread::current().id(), epoch, version, mark, audit_head });
            Ok(())
        })
    }
}

/// One statement of a write: prepared, its parameters, and its SQL (which names its table).
type Write = (Statement, Vec<Param>, &'static str);

/// Sends `batch` (pipelined: one round trip) and waits for every answer. A failed
/// statement's error names the table it writes.
fn send<'a>(net: &'a Net, client: &'a Client, batch: &'a [Write]) -> impl Future<Output = Result<Vec<u64>>> + 'a {
    futures_util::future::try_join_all(batch.iter().map(move |(statement, params, sql)| async move {
        client
            .execute_raw(statement, params.iter().map(Param::as_sql))
            .await
            .map_err(|e| net.target.error(&format!("writing {} of", codec::table_written(sql)), &e))
    }))
}

/// The write `begin` opened is gone: its connection failed (and the server rolled
/// it back) and a new one, with no write open, would take its place.
fn write_lost(shared: &Shared) -> Error {
    Error::new(
        ErrorCode::StoreUnavailable,
        format!("the connection to {} was lost during the write; nothing of it was committed", shared.net.target.name),
    )
}

/// A write whose connection was lost (or timed out) after its statements and COMMIT
/// were sent: the server may have committed it or not. Not retried; the error says so.
/// A lock wait the server ended (`55P03`) aborted the transaction: nothing was committed.
fn outcome_unknown(e: Error) -> Error {
    if e.code != ErrorCode::StoreUnavailable || e.gave_up_waiting {
        return e;
    }
    Error::new(
        e.code,
        format!(
            "{}; the write and its COMMIT had been sent, so it may or may not have been committed: read the store before repeating it",
            e.message
        ),
    )
}

/// What an admin transaction leaves in `keygate_changes` for other processes.
enum Logged {
    /// Its changes, under the next version: others apply them.
    Changes,
    /// No row: others see a gap at the next version and read the whole state
    /// afresh (an imported store, too large to hand over as one change).
    Gap,
}

impl PgBackend {
    /// Ends the write `begin` opened: the changes' rows, the change log, the audit
    /// entries `seal` makes from the locked head, the meta row (the next version and
    /// the audit head) and the notification, sent together with the COMMIT. `max_lifetime_days`
    /// (a copy's) is recorded in the meta row too.
    fn write(
        &self,
        changes: &[Change],
        logged: Logged,
        max_lifetime_days: Option<u32>,
        seal: impl FnOnce(audit::Head) -> Result<(Vec<AuditEntry>, audit::Head)>,
    ) -> Result<()> {
        let shared = &self.shared;
        shared.with_writer(|net, w| {
            let locked = w.locked.take().ok_or_else(|| write_lost(shared))?;
            // Only a meta row changed by hand stands at i64::MAX: refused, never wrapped to a version behind it.
            let version = locked
                .version
                .checked_add(1)
                .ok_or_else(|| codec::corrupt(format!("its version {} leaves no room for the next", locked.version)))?;
            let (entries, (seq, hash)) = seal(locked.audit_head)?;
            let mut writes: Vec<Write> = Vec::new();
            for change in changes {
                for (sql, params) in statements(change) {
                    writes.push(w.write_of(net, sql, params)?);
                }
            }
            let json = match logged {
                Logged::Changes => encode_changes(changes),
                // Nothing to hand over: no row makes a gap, and listeners read the whole state.
                Logged::Gap => String::new(),
            };
            let mark = match logged {
                Logged::Changes => mark::next(&locked.mark, version, &json),
                // No changes to digest: the mark would be the same for every copy into the same
                // empty store (any new store's is one mark), and a process that applied one copy
                // would take another (a lost copy made again after a failover, a restored backup
                // holding another copy) for where it stands. A random one stands for this import alone.
                Logged::Gap => mark::next(&locked.mark, version, &mark::unique()?),
            };
            if let Logged::Changes = logged {
                let now = crate::clock::system_now();
                writes.push(w.write_of(
                    net,
                    INSERT_CHANGE,
                    vec![
                        Param::Int(version),
                        Param::Text(shared.token.clone()),
                        Param::Int(now),
                        Param::Text(json),
                        Param::Text(mark.clone()),
                    ],
                )?);
            }
            for entry in entries {
                writes.push(w.write_of(
                    net,
                    audit::INSERT,
                    vec![
                        Param::Int(i64::try_from(entry.seq).unwrap_or(i64::MAX)),
                        Param::Int(entry.at),
                        Param::OptText(entry.actor),
                        Param::Text(entry.action),
                        Param::OptText(entry.key_id),
                        Param::OptText(entry.user_id),
                        Param::Text(entry.detail.to_string()),
                        Param::Bytes(entry.hash.to_vec()),
                    ],
                )?);
            }
            if let Some(days) = max_lifetime_days {
                writes.push(w.write_of(net, SET_MAX_LIFETIME_DAYS, vec![Param::Int(i64::from(days))])?);
            }
            writes.push(w.write_of(
                net,
                audit::SET_HEAD,
                vec![
                    Param::Int(version),
                    Param::Int(i64::try_from(seq).unwrap_or(i64::MAX)),
                    Param::Text(audit::head_hex(&hash)),
                    Param::Text(mark.clone()),
                ],
            )?);
            // Only where the log stands, never the change: any role that can connect to the
            // database may LISTEN (and read it) or NOTIFY (and forge it), so listeners read
            // the changes from `keygate_changes`, which only keygate's role can write.
            let payload = format!("{} {version} {mark}", locked.epoch);
            writes.push(w.write_of(net, NOTIFY, vec![Param::Text(payload)])?);
            let client = &w.client;
            // Pipelined in batches, each bounded by the statement timeout: a large write (a
            // copy of a big store) is bounded by its progress, not its size. Until the last
            // batch no COMMIT is sent, so a failure before it commits nothing (the connection
            // is dropped and the server rolls the transaction back).
            // `writes` always ends with the meta row and the notification: the COMMIT is sent.
            let limit = net.target.statement_timeout;
            let mut batches = writes.chunks(WRITE_BATCH).peekable();
            while let Some(batch) = batches.next() {
                if batches.peek().is_some() {
                    net.finish(limit, "writing", send(net, client, batch))?;
                } else {
                    // The last batch goes together with the COMMIT: one round trip for a small
                    // write. Should a statement fail, the server aborts the transaction and the
                    // COMMIT ends it as a rollback; the statement's error is the answer.
                    let commit = async { client.batch_execute("COMMIT").await.map_err(|e| net.target.error("writing", &e)) };
                    net.finish(limit, "writing", async { tokio::try_join!(send(net, client, batch), commit) }).map_err(outcome_unknown)?;
                }
            }
            let mut cursor = shared.cursor.lock();
            cursor.version = version;
            cursor.mark = mark;
            drop(cursor);
            shared.touch();
            Ok(())
        })
    }
}

impl Backend for PgBackend {
    /// Locks the meta row (a lost connection kept from before is replaced once:
    /// see `Shared::with_writer_replacing_lost`).
    fn begin(&self) -> Result<()> {
        self.lock_meta()
    }

    fn changes(&self) -> Result<Catchup> {
        self.shared.with_writer(|net, w| {
            let locked = w.locked.clone().ok_or_else(|| write_lost(&self.shared))?;
            let after = self.shared.cursor.lock().version;
            let mut rows = Vec::new();
            if locked.version > after {
                let page = w.statement(net, CHANGES_PAGE)?;
                read_changes(net, &w.client, &page, after, locked.version, &mut rows)?;
            }
            let at = Position { epoch: locked.epoch, version: locked.version, mark: locked.mark };
            self.shared.catch_up(net, &w.client, true, at, rows)
        })
    }

    fn resync(&self) {
        self.shared.cursor.lock().needs_reload = true;
    }

    fn closing(&self) {
        // The maintenance thread's purge under way (see `cut_by_close`) ends at once: close
        // would wait for it, first for the write connection it holds, then to join the thread.
        self.shared.writer_net.stop.fire();
    }

    fn stopping(&self) {
        // A permit if the listener is not waiting yet: its next wait ends at once.
        self.shared.stopping.notify_one();
        // Its calls on the database too (a catch-up, a heartbeat, a reconnect): close then
        // waits for none of them. The write connection's are left alone: close flushes on it.
        self.shared.net.stop.fire();
    }

    fn commit(&self, changes: &[Change], drafts: Vec<AuditDraft>) -> Result<()> {
        self.write(changes, Logged::Changes, None, |head| audit::seal(head, drafts))
    }

    fn import(&self, changes: &[Change], entries: &[AuditEntry], max_lifetime_days: u32) -> Result<()> {
        // Sealed elsewhere: kept as they are, the last one the head.
        self.write(changes, Logged::Gap, Some(max_lifetime_days), |head| {
            Ok((entries.to_vec(), entries.last().map_or(head, |last| (last.seq, last.hash))))
        })
    }

    fn rollback(&self) {
        let mut guard = self.shared.writer.lock();
        if let Some(w) = guard.as_mut() {
            // Only a write whose `begin` succeeded is open (a failed call drops the connection).
            if w.locked.take().is_some() && self.shared.writer_net.run("rolling back", w.client.batch_execute("ROLLBACK")).is_err() {
                *guard = None;
            }
        }
        self.shared.writer_free.notify_all();
    }

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.shared.with_writer_replacing_lost(|net, w| audit::select(net, &w.client, query))
    }

    fn verify_audit(&self) -> Result<AuditReport> {
        self.shared.with_writer_replacing_lost(|net, w| audit::verify_all(net, &w.client))
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn poll(&self) -> Result<Catchup> {
        self.shared.poll()
    }

    fn flush_uses(&self, uses: &[([u8; 16], i64)]) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        // Not waiting for a database the listener has lost: the uses are kept for a later flush.
        if !self.shared.connected.load(Ordering::Acquire) {
            return Err(Error::new(ErrorCode::StoreUnavailable, format!("not connected to {}", self.shared.net.target.name)));
        }
        // On the write connection: on the listener's, a flush waiting for a row lock another
        // session holds would hold back the heartbeat queued behind it.
        self.shared.with_writer_replacing_lost(|net, w| uses::record(net, &w.client, uses))
    }

    fn stored_uses(&self, of: UsesOf<'_>) -> Result<Vec<([u8; 16], i64)>> {
        // A read shows what it holds rather than wait for a database it has lost.
        if !self.shared.connected.load(Ordering::Acquire) {
            return Err(Error::new(ErrorCode::StoreUnavailable, format!("not connected to {}", self.shared.net.target.name)));
        }
        self.shared.with_writer_replacing_lost(|net, w| {
            let rows = match of {
                UsesOf::Key(id) => net.run(
                    "reading",
                    w.client
                        .query("SELECT id, last_used_at FROM keygate_keys WHERE id = $1 AND last_used_at IS NOT NULL", &[&id.as_slice()]),
                )?,
                UsesOf::Keys(ids) => {
                    let ids: Vec<&[u8]> = ids.iter().map(|id| id.as_slice()).collect();
                    net.run(
                        "reading",
                        w.client
                            .query("SELECT id, last_used_at FROM keygate_keys WHERE id = ANY($1) AND last_used_at IS NOT NULL", &[&ids]),
                    )?
                }
                UsesOf::User(user_id) => net.run(
                    "reading",
                    w.client
                        .query("SELECT id, last_used_at FROM keygate_keys WHERE user_id = $1 AND last_used_at IS NOT NULL", &[&user_id]),
                )?,
                UsesOf::All => {
                    net.run("reading", w.client.query("SELECT id, last_used_at FROM keygate_keys WHERE last_used_at IS NOT NULL", &[]))?
                }
            };
            Ok(rows
                .iter()
                .filter_map(|row| {
                    let id: Vec<u8> = row.try_get(0).ok()?;
                    Some((id.try_into().ok()?, row.try_get(1).ok()?))
                })
                .collect())
        })
    }

    fn backup(&self, _to: &std::path::Path) -> Result<()> {
        Err(Error::new(
            ErrorCode::InvalidArgument,
            "a PostgreSQL store is backed up with PostgreSQL's own tools (pg_dump, base backups), not store.backup",
        ))
    }

    fn cursor_version(&self) -> i64 {
        self.shared.cursor.lock().version
    }

    fn liveness(&self, _now: i64) -> Liveness {
        let (since, wall) = {
            let contact = self.shared.contact.lock();
            (contact.at.elapsed(), contact.wall)
        };
        Liveness {
            connected: self.shared.connected.load(Ordering::Acquire) && since <= self.shared.fail_closed_after,
            lag_ms: since.as_secs_f64() * 1000.0,
            last_contact_at: Some(wall),
        }
    }

    fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.connected.store(false, Ordering::Release);
        *self.shared.writer.lock() = None;
        *self.shared.listener.lock() = None;
        // A dropped client's connection says goodbye to the server only when its task
        // next runs, and nothing runs these runtimes any more (the store's threads have
        // ended): run them until the connections have ended, so that the server's
        // connections end with `close`, not when the store is collected.
        Net::end_connections(&[&self.shared.writer_net, &self.shared.net], Instant::now() + GOODBYE_WAIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime like the connections' (current-thread), its clock paused: it jumps to the next timer.
    fn paused_runtime() -> Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap()
    }

    #[test]
    fn an_answer_delivered_as_the_limit_is_reached_is_taken_not_given_up() {
        let rt = paused_runtime();
        let limit = Duration::from_millis(100);
        // Another task (as a connection's) delivers the answer at the very instant the limit is reached.
        let (answer, answered) = tokio::sync::oneshot::channel();
        rt.spawn(async move {
            tokio::time::sleep(limit).await;
            let _ = answer.send(7);
        });
        assert_eq!(finish_within(&rt, limit, answered).map(|r| r.ok()), Some(Some(7)));
    }

    #[test]
    fn a_call_unanswered_after_its_limit_and_the_last_looks_is_given_up() {
        let rt = paused_runtime();
        let (_answer, answered) = tokio::sync::oneshot::channel::<i32>();
        assert!(finish_within(&rt, Duration::from_millis(100), answered).is_none());
        let (answer, answered) = tokio::sync::oneshot::channel::<i32>();
        rt.spawn(async move {
            tokio::time::sleep(Duration::from_millis(101)).await;
            let _ = answer.send(7);
        });
        assert!(finish_within(&rt, Duration::from_millis(100), answered).is_none(), "an answer after the limit is not waited for");
    }
}
