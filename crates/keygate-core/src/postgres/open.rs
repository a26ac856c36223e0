//! Opening a PostgreSQL store: the options checked, the URL parsed, the write
//! connection made and the server checked (a primary, not a replica), the schema
//! created or checked, the listener connected and LISTENing (and a notification
//! seen to arrive: a pooler in transaction mode cannot deliver them) before the
//! snapshot is read, what was committed since caught up, then the store's threads
//! started: the guard, the maintenance thread and the listener, which ends the other two.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::Client;

use super::connect::{Target, CHANNEL};
use super::maintain::maintain;
use super::schema;
use super::watch::{guard, watch};
use super::{Contact, Cursor, Net, PgBackend, Shared, Writer, NOTIFY};
use crate::error::{Error, ErrorCode, Result};
use crate::secret::random_hex;
use crate::store::{check_options, purge_after_days, timeout_ms, KeyStore, Options};

/// Whether `path` names a PostgreSQL database rather than a file.
pub(crate) fn is_postgres_url(path: &str) -> bool {
    let lower = path.get(..13).unwrap_or(path).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// A timeout option as a duration (see `timeout_ms`).
fn timeout(value: Option<f64>, name: &str) -> Result<Duration> {
    Ok(Duration::from_secs_f64(timeout_ms(value, name)? / 1000.0))
}

/// Opens (or creates) the store in the database at `url`.
pub(crate) fn open(url: &str, options: Options) -> Result<KeyStore> {
    check_options(&options)?;
    let purge_days = purge_after_days(options.purge_expired_after_days)?;
    let fail_closed_after = timeout(options.fail_closed_after_ms, "failClosedAfterMs")?;
    let connect_timeout = timeout(options.connect_timeout_ms, "connectTimeoutMs")?;
    let statement_timeout = timeout(options.statement_timeout_ms, "statementTimeoutMs")?;
    let target = Target::parse(url, connect_timeout, statement_timeout)?;
    let target = Arc::new(target);
    let net = Net::new(runtime()?, target.clone(), true);
    let writer_net = Net::new(runtime()?, target, false);
    let (client, _) = writer_net.connect()?;
    schema::check_writable(&writer_net, &client)?;
    let meta =
        schema::ensure(&writer_net, &client, options.key_prefix.as_deref(), options.max_lifetime_days, options.create != Some(false))?;
    // LISTEN before the snapshot: whatever commits after it is notified.
    let (listener, mut notifications) = net.connect()?;
    net.run("listening on", listener.batch_execute(&format!("LISTEN {CHANNEL}")))?;
    let token = random_hex::<8>()?;
    probe(&net, &writer_net, &client, &mut notifications, &token)?;
    let (registry, position) = schema::load(&writer_net, &client, true)?;
    let shared = Arc::new(Shared {
        net,
        writer_net,
        token,
        cursor: Mutex::new(Cursor::at(position)),
        writer: Mutex::new(Some(Writer { client, prepared: Default::default(), locked: None })),
        writer_free: Default::default(),
        listener: Mutex::new(Some(listener)),
        connected: AtomicBool::new(true),
        contact: Mutex::new(Contact { at: Instant::now(), wall: crate::clock::system_now() }),
        fail_closed_after,
        poll_lost: AtomicBool::new(false),
        reconnect_failure: Mutex::new(None),
        closed: AtomicBool::new(false),
        helpers_stop: Mutex::new(false),
        stopping: tokio::sync::Notify::new(),
        helpers_wake: Default::default(),
    });
    let mut options = options;
    // The limit given when the store was created applies to every process that does not set its own.
    options.max_lifetime_days = options.max_lifetime_days.or(meta.max_lifetime_days);
    let store = KeyStore::with_backend(&options, meta.prefix, registry, Box::new(PgBackend { shared: shared.clone() }), meta.created)?;
    // What other hosts committed after the snapshot's start (reading a big store takes a
    // while: a revocation among them) is seen before `open` returns, not at the listener
    // thread's first round after it (its notifications wait unread until then).
    store.catch_up()?;
    let weak = store.downgrade();
    let purge_after_ms = (purge_days * 86_400_000.0) as i64;
    // The guard and maintenance threads end with the store's listener: should a thread
    // not start, those already started are told to end at once.
    let stop = shared.clone();
    let cannot_start = |e: std::io::Error| {
        stop.stop_helpers();
        Error::new(ErrorCode::StoreIo, format!("cannot start the store thread: {e}"))
    };
    let guarded = (weak.clone(), shared.clone());
    let guard_thread = std::thread::Builder::new()
        .name("keygate-postgres-guard".into())
        .spawn(move || guard(&guarded.0, &guarded.1))
        .map_err(cannot_start)?;
    let maintained = (weak.clone(), shared.clone());
    let maintenance_thread = std::thread::Builder::new()
        .name("keygate-postgres-maintenance".into())
        .spawn(move || maintain(&maintained.0, &maintained.1, purge_after_ms))
        .map_err(cannot_start)?;
    let handle = std::thread::Builder::new()
        .name("keygate-postgres".into())
        .spawn(move || watch(&weak, &shared, notifications, [guard_thread, maintenance_thread]))
        .map_err(cannot_start)?;
    store.set_maintenance(handle);
    Ok(store)
}

/// A current-thread runtime for one connection.
fn runtime() -> Result<Arc<tokio::runtime::Runtime>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::new(ErrorCode::StoreIo, format!("cannot start the store's I/O runtime: {e}")))?;
    Ok(Arc::new(rt))
}

/// Sends a notification from the write connection and waits for the listener to
/// receive it: a pooler in transaction mode (or anything else that breaks LISTEN)
/// is refused here rather than leaving the process deaf to other hosts.
fn probe(net: &Net, writer_net: &Net, writer: &Client, notifications: &mut UnboundedReceiver<String>, token: &str) -> Result<()> {
    let expected = format!("probe {token}");
    writer_net.run("notifying", writer.execute(NOTIFY, &[&expected]))?;
    let limit = net.target.connect_timeout;
    let heard = net.rt.block_on(async {
        tokio::time::timeout(limit, async {
            while let Some(payload) = notifications.recv().await {
                if payload == expected {
                    return true;
                }
            }
            false
        })
        .await
    });
    if heard != Ok(true) {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!(
                "{} does not deliver notifications to a LISTENing session (within {} ms): keygate needs a direct connection or a pooler in session mode, not transaction mode",
                net.target.name,
                limit.as_millis()
            ),
        ));
    }
    Ok(())
}
