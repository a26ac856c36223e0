//! Opening a store: a read-only look at an existing file first (every row read,
//! nothing written to a file it refuses), then the write connection, the schema
//! created or checked, and the maintenance thread started.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};

use super::audit::{self, Head};
use super::changes;
use super::maintain::maintain;
use super::replaced::Named;
use super::rows::load;
use super::schema::{examine, log_id, migrate};
use super::{check_file_path, corrupt, end_open_transaction, owner_only, read_error, store_error, too_long_for_sqlite, Db, SqliteBackend};
use crate::error::{shown_path, Error, ErrorCode, Result};
use crate::registry::Registry;
use crate::store::{KeyStore, Options};

pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection waiting for another process's lock sleeps between tries.
const BUSY_RETRY: Duration = Duration::from_millis(1);

/// The busy handler of keygate's connections: tries the lock again every [`BUSY_RETRY`], however
/// long it has waited, for up to [`BUSY_TIMEOUT`] (then `SQLITE_BUSY`: `STORE_LOCKED`). SQLite's
/// own (`busy_timeout`) sleeps longer between tries the longer it has waited, up to 100 ms, so
/// under steady contention the writer that has waited longest tries least often and loses the
/// lock to every newcomer: measured, with 12 processes writing back to back (each write about a
/// millisecond), calls waited up to 5 s and one failed with `STORE_LOCKED`.
pub(super) fn wait_for_lock(count: i32) -> bool {
    thread_local! {
        /// When this thread's current wait began (SQLite counts the tries of one wait from 0).
        static WAITING_SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    let now = Instant::now();
    let since = WAITING_SINCE.with(|since| {
        let began = if count == 0 { now } else { since.get().unwrap_or(now) };
        since.set(Some(began));
        began
    });
    if now.saturating_duration_since(since) >= BUSY_TIMEOUT {
        return false;
    }
    std::thread::sleep(BUSY_RETRY);
    true
}

impl KeyStore {
    /// Opens (or creates) the durable store at `path`. An existing file is read
    /// whole, read-only, before anything is written to it: a file that is not a
    /// keygate store this version can load is refused (`STORE_CORRUPT`) and left
    /// byte for byte as it was. A missing or zero-length file becomes a new store.
    /// A `postgres://` or `postgresql://` URL opens the shared PostgreSQL store instead.
    pub fn open(path: &str, options: Options) -> Result<KeyStore> {
        if crate::postgres::is_postgres_url(path) {
            return crate::postgres::open(path, options);
        }
        let path = PathBuf::from(path);
        check_store_path(&path)?;
        crate::store::check_options(&options)?;
        let purge_days = crate::store::purge_after_days(options.purge_expired_after_days)?;
        let length = file_length(&path)?;
        check_path_length(&path)?;
        let found = look_before_writing(&path, length)?;
        if options.create == Some(false) && matches!(found, Found::Empty) {
            return Err(no_store(&path, length));
        }
        if length.is_none() {
            create_private(&path)?;
        }
        let conn = connect_writer(&path)?;
        let (prefix, recorded_max_days) = migrate(&path, &conn, options.key_prefix.as_deref(), options.max_lifetime_days)?;
        // The limit given when the store was created applies to every process that does not set its own.
        let mut options = options;
        options.max_lifetime_days = options.max_lifetime_days.or(recorded_max_days);
        let created = matches!(found, Found::Empty);
        let Loaded { registry, last_seen, audit_mark, log_id } = loaded_state(&path, &conn, found)?;
        let aux = connect_aux(&path)?;
        let db = Db { conn, last_seen, audit_mark, log_id, needs_reload: false };
        let store = KeyStore::with_backend(&options, prefix, registry, Box::new(new_backend(&path, db, aux)), created)?;
        start_store(store, path, purge_days)
    }
}

/// Refuses a store path that is not a file's (a directory, a device, a FIFO, a socket) before
/// anything is opened.
fn check_store_path(path: &Path) -> Result<()> {
    check_file_path(path, "store")?;
    if path.is_dir() {
        return Err(Error::new(ErrorCode::StoreIo, format!("cannot open {}: it is a directory", shown_path(path))));
    }
    // A device reports size 0, as an empty file does: taken for a new store, a disk's first
    // pages would be written over (and SQLite's -journal made beside it, in /dev).
    check_regular(path, path)
}

/// Refuses, before anything is made or opened, a store path whose name as SQLite opens it is
/// too long for SQLite (see `too_long_for_sqlite`): the open failed only after the new store's
/// empty file had been made, and a short link to the directory does not help (SQLite follows it).
fn check_path_length(path: &Path) -> Result<()> {
    let Some(too_long) = too_long_for_sqlite(path) else {
        return Ok(());
    };
    Err(Error::new(
        ErrorCode::StoreIo,
        format!("cannot open {}: {too_long}: keep the store in a directory with a shorter path", shown_path(path)),
    ))
}

/// The store file's length; `None` when there is no file.
fn file_length(path: &Path) -> Result<Option<u64>> {
    // Only a file that is not there is missing: one this process may not reach (a directory it
    // may not enter) was taken for none, "no keygate store at …: there is no such file".
    match std::fs::metadata(path) {
        Ok(meta) => Ok(Some(meta.len())),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => Ok(None),
        Err(e) => {
            let missing = super::access::missing_access(path).map_or(String::new(), |missing| format!(": {missing}"));
            Err(Error::new(ErrorCode::StoreIo, format!("cannot open {}: {e}{missing}", shown_path(path))))
        }
    }
}

/// What is in the file at `path` (`length` long), read before anything is written to it: a
/// file that is not a keygate store this version can load is refused, and left as it was.
fn look_before_writing(path: &Path, length: Option<u64>) -> Result<Found> {
    // An empty file beside a log that holds pages is a store whose file was truncated (a new
    // store writes its first page to the file itself before it has a log): SQLite would
    // delete that log, the store's last pages (perhaps all of them, and the log running
    // processes still write to), and make a new store in the file.
    if truncated_beside_log(path) {
        return Err(corrupt(
            path,
            "the file is empty but its -wal beside it is not (the file was truncated): restore the store from a \
             backup; to make a new store there instead, remove the -wal and -shm files first",
        ));
    }
    check_beside(path, path)?;
    // No file, or an empty one: a new store is made in it.
    if length.is_none_or(|len| len == 0) {
        return Ok(Found::Empty);
    }
    let reader = connect_read_only(path)?;
    // SQLite would take a file shorter than its header for an empty database, and a
    // stale WAL (another database's, say) beside a file that is not one for that
    // database, and write over the file. The header is read through SQLite's own
    // descriptor: closing one of ours would drop the POSIX locks SQLite holds for any
    // store of this process on the file (another worker's, say), after which another
    // process's close deletes the WAL under it and its commits reach no one else.
    if header_through(&reader).is_some_and(|header| !is_sqlite_header(&header)) {
        return Err(corrupt(path, "it is not an SQLite database (no SQLite header)"));
    }
    inspect(path, &reader)
}

/// The error of `create: false` where no store is (`length`: the file's, `None` when there is none).
fn no_store(path: &Path, length: Option<u64>) -> Error {
    let what = match length {
        None => "there is no such file",
        Some(0) => "the file is empty",
        Some(_) => "the file holds no tables",
    };
    Error::new(ErrorCode::StoreIo, format!("no keygate store at {}: {what}", shown_path(path)))
}

/// The write connection to the store file, which is there: refused unless it is the regular
/// file it was, writable, in WAL mode, with no `-wal` or `-shm` beside it others may change.
fn connect_writer(path: &Path) -> Result<Connection> {
    // Again just before SQLite's own look (a hot -journal is played back at the first read).
    check_beside(path, path)?;
    // Without SQLITE_OPEN_CREATE: the file is there (it was, or was just made owner-only), and
    // one removed since is not made again (0644, or despite `create: false`).
    let conn = connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    // The file SQLite opened (its links resolved), should a link have been switched meanwhile.
    let opened = conn.path().filter(|p| !p.is_empty()).map(PathBuf::from);
    if let Some(opened) = &opened {
        check_regular(path, opened)?;
    }
    if conn.is_readonly(rusqlite::MAIN_DB).map_err(|e| store_error(path, "cannot open", e))? {
        let missing = super::access::missing_access(path).unwrap_or_else(|| "the file or its directory is read-only".to_string());
        return Err(Error::new(ErrorCode::StoreIo, format!("cannot open {} for writing: {missing}", shown_path(path))));
    }
    let mode: String =
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(|e| store_error(path, "cannot switch to WAL", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::new(ErrorCode::StoreIo, format!("cannot use WAL mode for {} (got {mode})", shown_path(path))));
    }
    conn.execute_batch("PRAGMA synchronous = FULL").map_err(|e| store_error(path, "cannot configure", e))?;
    // Its -wal and -shm are open now: one made by another user since the look above.
    if let Some(opened) = &opened {
        check_beside(path, opened)?;
    }
    Ok(conn)
}

/// The state a store opens with, and where it stands in the store's log.
struct Loaded {
    registry: Registry,
    last_seen: i64,
    audit_mark: audit::Mark,
    log_id: Option<String>,
}

/// The state of the store: what the look before writing read, or, for a new store, what is
/// in it now (through `conn`, after `migrate`).
fn loaded_state(path: &Path, conn: &Connection, found: Found) -> Result<Loaded> {
    let (registry, last_seen, audit_mark, log_id) = match found {
        // Read before the write connection existed: what changed since is caught
        // up by `start_store`, before the store is handed out.
        Found::Store { registry, last_seen, audit_mark, log_id } => (*registry, last_seen, audit_mark, log_id),
        // A new store (made here or, at the same moment, by another process).
        Found::Empty => {
            conn.execute_batch("BEGIN").map_err(|e| read_error(path, "reading", e))?;
            let loaded = load(path, conn).and_then(|registry| {
                let (last_seen, audit_mark, log_id) = position(conn).map_err(|e| read_error(path, "reading", e))?;
                Ok((registry, last_seen, audit_mark, log_id))
            });
            end_open_transaction(conn);
            loaded?
        }
    };
    // A store made before the log id was recorded has one since `migrate` (this process's, or
    // another's opening it at the same moment): the log the state read stands in, not another
    // one, which the first look would report as a copy restored under this process.
    let log_id = match log_id {
        Some(id) => Some(id),
        None => super::schema::log_id(conn).map_err(|e| read_error(path, "reading", e))?,
    };
    Ok(Loaded { registry, last_seen, audit_mark, log_id })
}

/// The second connection (see `SqliteBackend::aux`).
fn connect_aux(path: &Path) -> Result<Connection> {
    let aux = connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    // Its log opened now, while the file is whole: a connection's first read of a file found
    // empty deletes the -wal beside it (the store's last pages, should the file be truncated
    // later), and this one's first use may come long after (a `lastUsedAt` flush).
    aux.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0)).map_err(|e| read_error(path, "reading", e))?;
    Ok(aux)
}

/// The backend of a store opened through `db` (the write connection, and the state read) and `aux`.
fn new_backend(path: &Path, db: Db, aux: Connection) -> SqliteBackend {
    let named = Named::at_open(path, &db.conn);
    SqliteBackend {
        path: path.to_path_buf(),
        db: Mutex::new(Some(db)),
        aux: Mutex::new(Some(aux)),
        folded: std::sync::atomic::AtomicBool::new(false),
        named,
    }
}

/// Catches `store` up with other processes' commits, purges what is due and starts its
/// maintenance thread: then it is handed out.
fn start_store(store: KeyStore, path: PathBuf, purge_days: f64) -> Result<KeyStore> {
    let purge_after_ms = (purge_days * 86_400_000.0) as i64;
    // Other processes' commits since the look before writing (a revocation among them) are seen
    // before `open` returns: the purge below no longer catches up when nothing is due.
    store.catch_up()?;
    store.purge_expired(purge_after_ms)?;
    let weak = store.downgrade();
    let handle = std::thread::Builder::new()
        .name("keygate-store".into())
        .spawn(move || maintain(&weak, &path, purge_after_ms))
        .map_err(|e| Error::new(ErrorCode::StoreIo, format!("cannot start the store thread: {e}")))?;
    store.set_maintenance(handle);
    Ok(store)
}

/// What a read-only look at an existing file found.
enum Found {
    /// An SQLite file with no tables and no schema version: a new store is made in it.
    Empty,
    /// A keygate store, every row read and loaded.
    Store { registry: Box<Registry>, last_seen: i64, audit_mark: audit::Mark, log_id: Option<String> },
}

/// Refuses a file that is not a keygate store this version can read — garbage,
/// a damaged file, another application's database, a store from a newer keygate,
/// a row this version cannot load — reading it whole through a read-only
/// connection, so that nothing is written to a file it refuses.
fn inspect(path: &Path, conn: &Connection) -> Result<Found> {
    let read = |e| read_error(path, "reading", e);
    conn.execute_batch("BEGIN").map_err(read)?;
    let found = (|| {
        if examine(path, conn)?.is_none() {
            return Ok(Found::Empty);
        }
        Head::read(conn).map_err(|e| read_error(path, "reading the audit head of", e))?.check(path, conn)?;
        changes::check_room(path, conn)?;
        // Damage in pages the load never reads (indexes, the audit trail, free pages):
        // ~60 ms on a 100,000-key store, a fifth of its open.
        let check: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0)).map_err(read)?;
        if check != "ok" {
            return Err(corrupt(path, format!("SQLite's check of its pages failed: {check}")));
        }
        let registry = load(path, conn)?;
        let (last_seen, audit_mark, log_id) = position(conn).map_err(read)?;
        Ok(Found::Store { registry: Box::new(registry), last_seen, audit_mark, log_id })
    })();
    end_open_transaction(conn);
    found
}

/// Where the state just loaded stands: the last change, the audit head and the log's id (see `Db`).
fn position(conn: &Connection) -> rusqlite::Result<(i64, audit::Mark, Option<String>)> {
    Ok((changes::latest(conn)?, audit::mark(conn)?, log_id(conn)?))
}

/// Refuses a store path that names something other than a regular file (a device, a FIFO, a
/// socket): nothing missing is refused here. Errors name `path`.
fn check_regular(path: &Path, target: &Path) -> Result<()> {
    match std::fs::metadata(target) {
        Ok(meta) if !meta.is_file() && !meta.is_dir() => Err(Error::new(
            ErrorCode::StoreIo,
            format!("cannot open {}: it is not a regular file (a device, FIFO or socket)", shown_path(path)),
        )),
        _ => Ok(()),
    }
}

/// Refuses a `-wal`, `-shm` or `-journal` beside the store file (`target`, links resolved) that
/// lets someone the store file does not read or change the store: SQLite takes whatever file is
/// at those names (it refuses only a symbolic link), so another user who made them first, in a
/// directory others may write to (`/tmp`), would read every page the store writes, could write
/// pages of their own (a `-journal` is played back into the file at the first read: a whole
/// store of theirs, their keys in it) and, by cutting the `-shm` short, kill the process
/// (SIGBUS). Checked before SQLite's first look and again once it has the files open (one made
/// in the instant between is caught then, except in a process run as root: SQLite gives a root
/// process's files the store file's owner). Refused: one that is not
/// a regular file; one owned by another user than the store file's and this process's (unless
/// the store file is itself writable by group or others, who may then write it anyway); one
/// readable or writable by group or others where the store file is not. Errors name `path`.
#[cfg(unix)]
fn check_beside(path: &Path, target: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let target = std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
    // A store file not made yet is made by this process, owner-only.
    let (owner, mode) = std::fs::metadata(&target).map_or((euid, 0o600), |store| (store.uid(), store.mode()));
    for suffix in ["-wal", "-shm", "-journal"] {
        let side_path = beside(&target, suffix);
        let Ok(side) = std::fs::symlink_metadata(&side_path) else {
            continue;
        };
        let problem = if !side.file_type().is_file() {
            "is not a regular file".to_string()
        } else if side.uid() != owner && side.uid() != euid && mode & 0o022 == 0 {
            format!("is owned by another user (uid {}) than the store file (uid {owner})", side.uid())
        } else if side.mode() & 0o077 & !mode != 0 {
            // This process's own that others may only read (a store made before files were
            // owner-only, then chmod'ed while in use, keeps 0644 files beside it): given the
            // store's mode, not refused. One others may write may hold pages of theirs.
            let own = side.uid() == euid && side.uid() == owner;
            if own && side.mode() & 0o022 & !mode == 0 && tighten(&side_path, side.mode() & 0o777 & !(0o077 & !mode)) {
                continue;
            }
            format!("lets others read or write it (mode {:o}) where the store file does not (mode {:o})", side.mode() & 0o777, mode & 0o777)
        } else {
            continue;
        };
        return Err(Error::new(
            ErrorCode::StoreIo,
            format!(
                "cannot open {}: the {suffix} file beside it {problem}, so whoever wrote it could read and change the store. \
                 If it is the store's own (left by a process that stopped without closing it, it may hold committed changes), \
                 give it the store file's owner and mode; else, with every process stopped, remove it. Keep the store in a \
                 directory only its users may write to",
                shown_path(path)
            ),
        ));
    }
    Ok(())
}

/// Gives the regular file at `path` (never a symbolic link put in its place) `mode`; false if it
/// cannot. Through no descriptor that can read or write the file: closing one drops every POSIX
/// lock the process holds on it, so another store of this process on the same file (a worker's)
/// lost SQLite's locks on the `-shm`, and the next process to open the store took the `-shm` for
/// unused and cut it short under this one (SIGBUS).
#[cfg(target_os = "linux")]
fn tighten(path: &Path, mode: u32) -> bool {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // An O_PATH descriptor does no I/O, and Linux drops no lock when it is closed.
    let Ok(file) = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_PATH | libc::O_NOFOLLOW).open(path) else {
        return false;
    };
    // A symbolic link is opened itself (O_NOFOLLOW), and refused here.
    if !file.metadata().is_ok_and(|meta| meta.is_file()) {
        return false;
    }
    // The file the descriptor holds, by its /proc name (fchmod refuses an O_PATH descriptor).
    let by_descriptor = format!("/proc/self/fd/{}", file.as_raw_fd());
    std::fs::set_permissions(by_descriptor, std::fs::Permissions::from_mode(mode)).is_ok()
}

/// As on Linux (see there), by name: `AT_SYMLINK_NOFOLLOW` changes a symbolic link put in the
/// file's place, not what it points to.
#[cfg(all(unix, not(target_os = "linux")))]
fn tighten(path: &Path, mode: u32) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(name) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let Ok(mode) = libc::mode_t::try_from(mode) else {
        return false;
    };
    // SAFETY: `name` is a NUL-terminated path that outlives the call; fchmodat reads nothing else.
    unsafe { libc::fchmodat(libc::AT_FDCWD, name.as_ptr(), mode, libc::AT_SYMLINK_NOFOLLOW) == 0 }
}

#[cfg(not(unix))]
fn check_beside(_: &Path, _: &Path) -> Result<()> {
    Ok(())
}

/// Makes the new store's file readable by its owner only (0600 on Unix; SQLite would make it
/// 0644): it holds digests, users, rules and the audit trail, which are no one else's to read.
/// SQLite gives the `-wal` and `-shm` beside it the same mode. A file another process made
/// meanwhile is taken as it is.
fn create_private(path: &Path) -> Result<()> {
    let created = match owner_only().create_new(true).open(path) {
        // A symbolic link to a file not there yet (`create_new` never follows one): SQLite would
        // make that file, with its own mode, so it is made here, through the link; one made
        // meanwhile is opened as it is (neither truncated nor its mode changed).
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && path.metadata().is_err() => owner_only().create(true).open(path),
        other => other,
    };
    match created {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(Error::new(ErrorCode::StoreIo, format!("cannot create {}: {err}", shown_path(path)))),
    }
}

pub(super) fn connect(path: &Path, flags: OpenFlags) -> Result<Connection> {
    connect_to(path, path, flags)
}

/// Opens `target` (a path, or a `file:` URI for `path`); errors name `path`.
fn connect_to(path: &Path, target: impl AsRef<Path>, flags: OpenFlags) -> Result<Connection> {
    let target = target.as_ref();
    let conn = Connection::open_with_flags(target, flags).map_err(|e| store_error(path, "cannot open", without_target(e, target)))?;
    conn.busy_handler(Some(wait_for_lock)).map_err(|e| store_error(path, "cannot open", e))?;
    Ok(conn)
}

/// `e` without the name rusqlite adds to a failed open's message (`unable to open database file:
/// file:keys.db?immutable=1`): the error names the store's path already, and a `file:` URI shown
/// there looked like one given by the caller, which keygate refuses.
fn without_target(e: rusqlite::Error, target: &Path) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(f, Some(message)) => {
            let named = format!(": {}", target.display());
            let message = message.strip_suffix(named.as_str()).map_or(message.clone(), str::to_string);
            rusqlite::Error::SqliteFailure(f, Some(message))
        }
        other => other,
    }
}

/// A read-only connection that leaves the file and its directory exactly as they
/// were. Without a `-wal` file beside it, no process has the store open and the
/// file holds everything: it is read as immutable (no lock, no `-wal`/`-shm`
/// created). Otherwise an ordinary read-only connection joins the processes using it.
fn connect_read_only(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if !has_wal(path) {
        if let Some(uri) = immutable_uri(path) {
            return connect_to(path, uri, flags | OpenFlags::SQLITE_OPEN_URI);
        }
    }
    connect(path, flags)
}

/// The file SQLite keeps beside the database file `path` under `suffix` (`-wal`, `-shm`, `-journal`).
pub(super) fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Whether a `-wal` file is beside the store file: some connection, perhaps of this process, has it open.
fn has_wal(path: &Path) -> bool {
    beside(path, "-wal").exists()
}

/// Whether the store file is empty while a `-wal` that is not is beside it: a store whose file
/// was truncated, whose log a new connection's first read would delete.
pub(super) fn truncated_beside_log(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() == 0) && has_wal_pages(path)
}

/// Whether a `-wal` file that is not empty is beside the store file.
fn has_wal_pages(path: &Path) -> bool {
    std::fs::metadata(beside(path, "-wal")).is_ok_and(|m| m.len() > 0)
}

/// Whether `header` (a file's first 20 bytes) is one SQLite can read and write: its
/// 16-byte magic string, and file-format read/write versions 1 (legacy) or 2 (WAL) at
/// bytes 18 and 19 — with a higher write version SQLite opens the file read-only, and
/// only the first write would say so.
pub(super) fn is_sqlite_header(header: &[u8]) -> bool {
    let versions_ok = matches!(header.get(18..20), Some([1 | 2, 1 | 2]));
    header.get(..16) == Some(b"SQLite format 3\0".as_slice()) && versions_ok
}

/// The first 20 bytes of the main file of `conn`, read through the descriptor SQLite opened
/// for it (before any statement: nothing of the WAL is read), zero-filled past the end of a
/// shorter file; `None` when SQLite cannot say (the caller then leaves it to SQLite).
pub(super) fn header_through(conn: &Connection) -> Option<[u8; 20]> {
    use rusqlite::ffi;
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: `conn` is an open connection; SQLITE_FCNTL_FILE_POINTER writes the `sqlite3_file*`
    // of its "main" database (owned by SQLite, valid while `conn` is open) into `file`.
    let rc = unsafe { ffi::sqlite3_file_control(conn.handle(), c"main".as_ptr(), ffi::SQLITE_FCNTL_FILE_POINTER, (&raw mut file).cast()) };
    if rc != ffi::SQLITE_OK || file.is_null() {
        return None;
    }
    // SAFETY: `file` is the live `sqlite3_file` SQLite gave above; its methods (when set) are
    // the VFS's, and `xRead` reads at most 20 bytes into `header`, which holds 20. A short
    // read zero-fills the rest and says so (SQLITE_IOERR_SHORT_READ).
    unsafe {
        let methods = (*file).pMethods;
        if methods.is_null() {
            return None;
        }
        let read = (*methods).xRead?;
        let mut header = [0u8; 20];
        match read(file, header.as_mut_ptr().cast(), 20, 0) {
            ffi::SQLITE_OK | ffi::SQLITE_IOERR_SHORT_READ => Some(header),
            _ => None,
        }
    }
}

/// `file:<path>?immutable=1`, the path percent-encoded; `None` for a path that is not UTF-8.
fn immutable_uri(path: &Path) -> Option<String> {
    let text = path.to_str()?;
    let mut uri = String::from("file:");
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"/._~-".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    Some(uri)
}
