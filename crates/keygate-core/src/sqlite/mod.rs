//! The durable store: one SQLite file (WAL mode) shared by several processes.
//! Every admin call is one `BEGIN IMMEDIATE` transaction that first reads what
//! other processes changed (the `changes` table), then writes its own rows, a
//! change row per entity and its audit entries, and commits before returning.
//! All keys live in memory; a maintenance thread notices other processes'
//! commits (`PRAGMA data_version`), flushes `lastUsedAt` and purges long-expired keys.
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | [`SqliteBackend`]: the `Backend` over the file's two connections, and its errors |
//! | `open.rs` | opening: the read-only inspection, then the write connection |
//! | `access.rs` | which access to the store's files this process lacks, for the errors of an open |
//! | `schema.rs` | the tables, the schema version and `meta`; creating and checking them |
//! | `rows.rs` | rows ↔ records, and loading the whole state |
//! | `changes.rs` | the `changes` table: writing a change, reading others' |
//! | `audit.rs` | the `audit` table and its recorded head |
//! | `replaced.rs` | noticing the file replaced under the process (a backup renamed over it), or truncated |
//! | `backup.rs` | the backup file's partial name, renamed to the one asked for only once complete |
//! | `maintain.rs` | the maintenance thread |

mod access;
mod audit;
mod backup;
mod changes;
mod maintain;
mod open;
mod replaced;
mod rows;
mod schema;

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

pub use self::schema::TABLES;
use crate::audit::{AuditDraft, AuditEntry, AuditQuery, AuditReport};
use crate::backend::{Backend, Catchup, UsesOf};
use crate::error::{shown_path, Error, ErrorCode, Result};
use crate::registry::Change;

/// Change rows kept for processes catching up; one further behind reloads everything.
const CHANGES_KEPT: i64 = 100_000;

/// An SQLite error as a keygate error: `STORE_LOCKED` for a lock another process
/// holds too long, `STORE_CORRUPT` for a damaged file, `STORE_IO` otherwise.
fn store_error(path: &Path, what: &str, e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as C;
    if let rusqlite::Error::StatementChangedRows(n) = e {
        return Error::new(
            ErrorCode::StoreCorrupt,
            format!(
                "{what} {}: a statement changed {n} rows, not as many as keygate writes; a trigger added to the file drops or multiplies keygate's writes, so nothing was written",
                shown_path(path)
            ),
        );
    }
    let code = match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            C::DatabaseBusy | C::DatabaseLocked => ErrorCode::StoreLocked,
            C::DatabaseCorrupt | C::NotADatabase => ErrorCode::StoreCorrupt,
            _ => ErrorCode::StoreIo,
        },
        _ => ErrorCode::StoreIo,
    };
    let hint = match code {
        ErrorCode::StoreLocked => " (another process holds the store's write lock)".to_string(),
        ErrorCode::StoreCorrupt => " (not a keygate store, or a damaged one)".to_string(),
        // SQLite names neither the file nor the access it lacked.
        _ if matches!(&e, rusqlite::Error::SqliteFailure(f, _) if matches!(f.code, C::CannotOpen | C::ReadOnly | C::PermissionDenied)) => {
            access::missing_access(path).map_or(String::new(), |missing| format!(": {missing}"))
        }
        _ => String::new(),
    };
    Error::new(code, format!("{what} {}: {e}{hint}", shown_path(path)))
}

/// An error while reading the store's own rows: anything the file itself
/// causes (a value of the wrong type, invalid UTF-8, a missing table or column,
/// damaged pages) is `STORE_CORRUPT`; only locks and I/O are not.
fn read_error(path: &Path, what: &str, e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as C;
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                C::DatabaseBusy
                    | C::DatabaseLocked
                    | C::SystemIoFailure
                    | C::CannotOpen
                    | C::PermissionDenied
                    | C::DiskFull
                    | C::OutOfMemory
                    | C::ReadOnly
                    | C::OperationInterrupted
                    | C::NoLargeFileSupport
                    | C::FileLockingProtocolFailed
            ) =>
        {
            store_error(path, what, e)
        }
        _ => corrupt(path, format!("{e} (while {what} the store)")),
    }
}

/// Refuses, before anything is opened or looked at, a name SQLite would not take
/// for a plain file path: `""` (a private temporary database), `":memory:"`, or a
/// `file:` URI (any case). The bundled SQLite is built with URI names on
/// (`SQLITE_USE_URI`), so leaving `SQLITE_OPEN_URI` out of the open flags does not
/// stop it reading `file:…?mode=memory` or `file:/other/path`; keygate's own
/// checks (does the file exist, the read-only look before opening, a backup never
/// overwrites) look at the literal path, and such a name would slip past them.
/// `what` is `store` or `backup`; the error is `INVALID_ARGUMENT`.
pub(crate) fn check_file_path(path: &Path, what: &str) -> Result<()> {
    let bytes = path.as_os_str().as_encoded_bytes();
    let problem = if bytes.is_empty() {
        format!("the {what} path is empty: give a file path")
    } else if bytes == b":memory:" {
        let instead = if what == "store" { " (KeyStore.inMemory() makes a store that lives in memory)" } else { "" };
        format!("the {what} path \":memory:\" is SQLite's name for an in-memory database, not a file: give a file path{instead}")
    } else if bytes.get(..5).is_some_and(|start| start.eq_ignore_ascii_case(b"file:")) {
        format!(
            "the {what} path {} is an SQLite URI, not a file path: give the file's path, without file: and \
             ?options (./dev.db, not file:./dev.db); for a file whose name begins with file:, write ./file:…",
            shown_path(path)
        )
    } else {
        return Ok(());
    };
    Err(Error::new(ErrorCode::InvalidArgument, problem))
}

/// A database name too long for SQLite, which refuses one with only "unable to open database
/// file", however much room the operating system would give it: a store or backup deep in a
/// directory tree, through a short link into one, or through one and back out with `..`, could
/// not be opened and no message said why.
pub(crate) struct TooLong {
    /// The name's length once resolved; `None` when it grew too long on the way.
    length: Option<usize>,
    /// The longest name SQLite opens.
    longest: usize,
}

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let longest = self.longest;
        match self.length {
            Some(length) => write!(f, "its path is {length} bytes long (absolute, symbolic links followed)")?,
            None => write!(
                f,
                "its path grows too long as SQLite resolves it (made absolute, symbolic links and `..` followed one part at a time)"
            )?,
        }
        write!(f, ", and SQLite opens no database whose path is longer than {longest} bytes")
    }
}

/// Whether `path` is too long for SQLite, asked of SQLite itself: its default VFS's
/// `xFullPathname`, as its pager calls it before opening a database, then the pager's own room
/// for `-journal`. `None` when the name fits, or when resolving it fails for another reason (a
/// directory that may not be read): the open itself then says what is wrong.
#[cfg(unix)]
fn too_long_for_sqlite(path: &Path) -> Option<TooLong> {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: with a null name sqlite3_vfs_find initialises SQLite if need be and returns its
    // default VFS, a static object SQLite never frees, or null.
    let vfs = unsafe { rusqlite::ffi::sqlite3_vfs_find(std::ptr::null()) };
    if vfs.is_null() {
        return None;
    }
    // SAFETY: `vfs` points to that VFS; `mxPathname` is a plain field of it.
    let most = unsafe { (*vfs).mxPathname };
    let longest = usize::try_from(most).ok()?.saturating_sub("-journal".len());
    match resolved_length(vfs, &name, most.checked_add(1)?) {
        Some(length) => (length > longest).then_some(TooLong { length: Some(length), longest }),
        // SQLite says only SQLITE_CANTOPEN, whether the name outgrew its room on the way or a
        // directory could not be read: with room for any name Linux takes, only the latter fails.
        None => resolved_length(vfs, &name, 4097).map(|_| TooLong { length: None, longest }),
    }
}

/// The length of `name` as the VFS's `xFullPathname` resolves it into `room` bytes; `None` when it fails.
#[cfg(unix)]
fn resolved_length(vfs: *mut rusqlite::ffi::sqlite3_vfs, name: &std::ffi::CStr, room: std::ffi::c_int) -> Option<usize> {
    // SAFETY: the caller's `vfs` is SQLite's default VFS, a static object; a plain field of it.
    let full_pathname = unsafe { (*vfs).xFullPathname }?;
    let mut resolved = vec![0u8; usize::try_from(room).ok()?];
    // SAFETY: `name` ends in NUL; `resolved` holds `room` bytes, which the VFS writes within.
    let rc = unsafe { full_pathname(vfs, name.as_ptr(), room, resolved.as_mut_ptr().cast()) };
    if rc != rusqlite::ffi::SQLITE_OK && rc != rusqlite::ffi::SQLITE_OK_SYMLINK {
        return None;
    }
    Some(resolved.iter().position(|&byte| byte == 0).unwrap_or(resolved.len()))
}

#[cfg(not(unix))]
fn too_long_for_sqlite(_: &Path) -> Option<TooLong> {
    None
}

/// Options that open a file for writing and, should they create it, make it readable and
/// writable by its owner only (0600 on Unix); the caller says whether they may create it.
fn owner_only() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// SQLite's online backup of `conn` into the empty file at `partial`: a consistent copy while
/// other processes keep writing. Errors name `to`, the file asked for. The target is opened with
/// explicit flags (rusqlite's `Connection::backup` would open it with its defaults,
/// `SQLITE_OPEN_URI` among them) and closed before this returns.
fn copy_into(conn: &Connection, partial: &Path, to: &Path) -> Result<()> {
    let e = |err| store_error(to, "cannot back up to", err);
    if let Some(too_long) = too_long_for_sqlite(partial) {
        return Err(Error::new(
            ErrorCode::StoreIo,
            format!(
                "cannot back up to {}: the copy is written first beside it, to {}, and {too_long}: back up to a directory \
                 with a shorter path",
                shown_path(to),
                shown_path(partial)
            ),
        ));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut target = Connection::open_with_flags(partial, flags).map_err(e)?;
    let copy = Backup::new(conn, &mut target).map_err(e)?;
    // All pages in one step, under one read transaction of the source (in WAL mode it holds no
    // writer back). Copied a few pages per step, the backup starts over whenever any other
    // connection commits between two steps: a store that some process writes more often than a
    // backup takes (gateways flushing `lastUsedAt` every second) was never backed up.
    match copy.step(-1).map_err(e)? {
        StepResult::Done => Ok(()),
        // As rusqlite's `Connection::backup`: a lock in the way fails the backup.
        StepResult::Locked => Err(e(sqlite_failure(rusqlite::ffi::SQLITE_LOCKED))),
        _ => Err(e(sqlite_failure(rusqlite::ffi::SQLITE_BUSY))),
    }
}

fn sqlite_failure(code: std::ffi::c_int) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
}

/// `STORE_CORRUPT`: the file is not a keygate store this version can load.
fn corrupt(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::StoreCorrupt, format!("store {} is damaged: {what}", shown_path(path)))
}

/// The main connection and where this process stands in the change log.
struct Db {
    conn: Connection,
    /// Last `changes.seq` this process has applied.
    last_seen: i64,
    /// The audit head of the file as of that state: the change log's numbers alone cannot tell
    /// an older copy restored into the file once as many changes were made after it.
    audit_mark: audit::Mark,
    /// The change log's id (`meta.log_id`) as of that state: a copy of the store
    /// (`KeyStore::copy`) holds the same audit chain but a log numbered afresh, under another id.
    log_id: Option<String>,
    /// The state in memory cannot be trusted: the next catch-up reads everything.
    needs_reload: bool,
}

/// The backend of `KeyStore::open`: changes and audit entries written to the
/// file in the admin call's own transaction, other processes' changes read back
/// from the `changes` table.
pub struct SqliteBackend {
    path: PathBuf,
    /// Admin transactions (held from `begin` to `commit`), catch-up and reads.
    db: Mutex<Option<Db>>,
    /// A second connection for work that must never wait behind (or inside) an
    /// admin transaction, nor hold the in-memory state while it does I/O:
    /// flushing `lastUsedAt` and backups.
    aux: Mutex<Option<Connection>>,
    /// Whether the log beside the path was folded into this process's file since the
    /// path last named it (see `replaced`): tried once, at the first look that finds the
    /// file replaced, never at close.
    folded: std::sync::atomic::AtomicBool,
    /// The path as given and the file it named at open (see `replaced::Named`).
    named: replaced::Named,
}

impl SqliteBackend {
    fn with_db<T>(&self, f: impl FnOnce(&mut Db) -> Result<T>) -> Result<T> {
        let mut guard = self.db.lock();
        match guard.as_mut() {
            Some(db) => f(db),
            None => Err(Error::new(ErrorCode::StoreIo, "the store is closed")),
        }
    }

    fn with_aux<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        match self.aux.lock().as_ref() {
            Some(conn) => f(conn),
            None => Err(Error::new(ErrorCode::StoreIo, "the store is closed")),
        }
    }

    /// Ends the write `begin` opened: `write`, then COMMIT, the cursor moved past
    /// this process's own changes; on any error, ROLLBACK and nothing of it is kept.
    fn finish_write(&self, what: &str, write: impl FnOnce(&Connection) -> rusqlite::Result<()>) -> Result<()> {
        self.with_db(|db| {
            let written = (|| -> rusqlite::Result<(i64, audit::Mark)> {
                write(&db.conn)?;
                let latest = changes::latest(&db.conn)?;
                // The audit head moves with the log: left at the one before this write, a
                // restore of a copy taken just before it (plus as many changes of another
                // process) would still hold it and end the log at the same number.
                let head = audit::mark(&db.conn)?;
                reserve_log_index(&db.conn)?;
                db.conn.execute_batch("COMMIT")?;
                Ok((latest, head))
            })();
            match written {
                Ok((latest, head)) => {
                    db.last_seen = latest;
                    db.audit_mark = head;
                    Ok(())
                }
                Err(e) => {
                    let _ = db.conn.execute_batch("ROLLBACK");
                    Err(store_error(&self.path, what, e))
                }
            }
        })
    }

    /// An error (`STORE_IO`) once the store's path no longer names the file `conn` opened.
    fn vouch(&self, conn: &Connection) -> Result<()> {
        replaced::vouch(&self.path, &self.named, conn)
    }

    fn err(&self, what: &str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
        let what = what.to_string();
        move |e| store_error(&self.path, &what, e)
    }

    /// Takes the write lock (`wait`: up to the busy timeout, else `STORE_LOCKED` at once), then
    /// refuses (`STORE_CORRUPT`, nothing written) a store whose audit head the write could not
    /// extend, as open does: entries another process added past it behind keygate's back would
    /// collide with the next one.
    fn begin_write(&self, wait: bool) -> Result<()> {
        self.with_db(|db| {
            end_open_transaction(&db.conn);
            begin_immediate(&db.conn, wait).map_err(|e| store_error(&self.path, "locking", e))?;
            let checked = self.vouch(&db.conn).and_then(|()| {
                let head = audit::Head::read(&db.conn).map_err(|e| read_error(&self.path, "reading the audit head of", e))?;
                head.check(&self.path, &db.conn)
            });
            if checked.is_err() {
                let _ = db.conn.execute_batch("ROLLBACK");
            }
            checked
        })
    }

    /// Writes `lastUsedAt` on the second connection; `wait`: for another process's write
    /// lock, up to the busy timeout (else `STORE_LOCKED` at once, for the background thread).
    fn write_uses(&self, uses: &[([u8; 16], i64)], wait: bool) -> Result<()> {
        self.with_aux(|conn| {
            let what = "recording key use in";
            begin_immediate(conn, wait).map_err(self.err(what))?;
            let write = self.vouch(conn).and_then(|()| {
                let mut stmt = conn
                    .prepare_cached("UPDATE keys SET last_used_at = max(coalesce(last_used_at, ?2), ?2) WHERE id = ?1")
                    .map_err(self.err(what))?;
                for (id, at) in uses {
                    stmt.execute(params![&id[..], at]).map_err(self.err(what))?;
                }
                conn.execute_batch("COMMIT").map_err(self.err(what))
            });
            if write.is_err() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            write
        })
    }
}

/// Frames of the log that the log's index (the `-shm` file) is grown to hold beyond the frames the
/// `-wal` file already has room for, before a commit: more than one COMMIT writes (the pages a
/// transaction changes beyond SQLite's page cache, 2 MB, reach the log before it).
const LOG_INDEX_HEADROOM: u64 = 4096;
/// SQLite's unit of the log's index: a region of 32 KiB, indexing 4,096 frames (the first region 4,062).
const LOG_INDEX_REGION: std::ffi::c_int = 32 * 1024;

/// Grows the log's index (`-shm`) ahead of a commit, so that the commit never has to grow it.
/// SQLite writes and syncs a commit's frames to the `-wal` first and only then indexes them; an
/// index that cannot grow at that point (a full disk: the file takes 32 KiB more each 4,096
/// frames) fails the COMMIT while the log holds the whole transaction, and the next process to
/// read the log afresh (after a crash, or once every process has closed with the disk still
/// full) takes it as committed: an admin call that threw would have changed the store after
/// all. Grown here instead, through SQLite's own mapping of the file (a descriptor of ours,
/// closed, would drop the process's locks), a failure comes before anything is committed.
fn reserve_log_index(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::ffi;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let Some(log) = conn.path().filter(|p| !p.is_empty()).map(|p| open::beside(Path::new(p), "-wal")) else {
        return Ok(());
    };
    // Every frame of this commit follows the last one SQLite indexed, never beyond the end of the
    // file by more than the commit's own frames (an empty or missing log: none yet).
    let frames_in_file = std::fs::metadata(&log).map_or(0, |m| m.len().saturating_sub(32) / (page_size.max(512) as u64 + 24));
    // The region that indexes frame n (counted from 1): (n + 4096 - 4062 - 1) / 4096.
    let region = (frames_in_file + LOG_INDEX_HEADROOM + 33) / 4096;
    let Ok(region) = std::ffi::c_int::try_from(region) else {
        return Ok(());
    };
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: `conn` is an open connection; SQLITE_FCNTL_FILE_POINTER writes the `sqlite3_file*`
    // of its "main" database (owned by SQLite, valid while `conn` is open) into `file`.
    let rc = unsafe { ffi::sqlite3_file_control(conn.handle(), c"main".as_ptr(), ffi::SQLITE_FCNTL_FILE_POINTER, (&raw mut file).cast()) };
    if rc != ffi::SQLITE_OK || file.is_null() {
        return Ok(());
    }
    // SAFETY: `file` is the live `sqlite3_file` SQLite gave above, in WAL mode (its log index
    // open, this connection holding the write lock); `xShmMap` with the region size SQLite's
    // log uses maps regions 0..=`region` of the index, growing the file (zero-filled, as SQLite
    // grows it) where it is shorter, and writes the region's address into `mapped` (unused:
    // SQLite's log finds the region mapped when it reaches it).
    let rc = unsafe {
        let methods = (*file).pMethods;
        if methods.is_null() || (*methods).iVersion < 2 {
            return Ok(());
        }
        let Some(map) = (*methods).xShmMap else { return Ok(()) };
        let mut mapped: *mut std::ffi::c_void = std::ptr::null_mut();
        map(file, region, LOG_INDEX_REGION, 1, &raw mut mapped)
    };
    if rc == ffi::SQLITE_OK {
        return Ok(());
    }
    let os = std::io::Error::last_os_error();
    let why = match os.raw_os_error() {
        Some(errno) if errno != 0 => format!(": {os}"),
        _ => String::new(),
    };
    Err(rusqlite::Error::SqliteFailure(
        ffi::Error::new(rc),
        Some(format!("cannot grow the log's index (the -shm file) for this write{why}; nothing was written")),
    ))
}

/// `BEGIN IMMEDIATE` on `conn`: with `wait`, waiting for another process's write lock up to
/// the busy timeout; without, failing at once (`SQLITE_BUSY`) when another process holds it.
fn begin_immediate(conn: &Connection, wait: bool) -> rusqlite::Result<()> {
    if wait {
        return conn.execute_batch("BEGIN IMMEDIATE");
    }
    let _ = conn.busy_handler(None);
    let begun = conn.execute_batch("BEGIN IMMEDIATE");
    let _ = conn.busy_handler(Some(open::wait_for_lock));
    begun
}

/// Ends a transaction a failure (or a defect) left open, so that the next one can begin.
fn end_open_transaction(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

impl Backend for SqliteBackend {
    /// Takes the write lock, then refuses (`STORE_CORRUPT`, nothing written) a store whose
    /// audit head the write could not extend, as open does: entries another process added past
    /// it behind keygate's back would collide with the next one.
    fn begin(&self) -> Result<()> {
        self.begin_write(true)
    }

    fn begin_without_waiting(&self) -> Result<()> {
        self.begin_write(false)
    }

    // Always right after `begin`, which has just vouched for the file inside the same transaction.
    fn changes(&self) -> Result<Catchup> {
        self.with_db(|db| changes::since(&self.path, db, false))
    }

    fn resync(&self) {
        let _ = self.with_db(|db| {
            db.needs_reload = true;
            Ok(())
        });
    }

    fn commit(&self, changes: &[Change], audit: Vec<AuditDraft>) -> Result<()> {
        self.finish_write("writing", |conn| {
            for change in changes {
                changes::write(conn, change)?;
            }
            audit::append(conn, audit)?;
            let latest = changes::latest(conn)?;
            if latest % 1024 == 0 {
                // Keep only the change rows a running process may still need.
                conn.execute("DELETE FROM changes WHERE seq <= ?1", [latest.saturating_sub(CHANGES_KEPT)])?;
            }
            Ok(())
        })
    }

    fn import(&self, changes: &[Change], audit: &[AuditEntry], max_lifetime_days: u32) -> Result<()> {
        self.finish_write("copying into", |conn| {
            for change in changes {
                changes::write(conn, change)?;
            }
            schema::record_max_lifetime_days(conn, max_lifetime_days)?;
            audit::import(conn, audit)
        })
    }

    fn rollback(&self) {
        let _ = self.with_db(|db| {
            let _ = db.conn.execute_batch("ROLLBACK");
            Ok(())
        });
    }

    // Reads run on the second connection: an admin call of another thread (the
    // maintenance thread's purge) may hold a transaction open on the first, and a
    // read there would see its uncommitted rows, or fail to BEGIN inside it.
    // A row of the wrong type (written behind keygate's back) is STORE_CORRUPT, as at open.
    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.with_aux(|conn| {
            self.vouch(conn)?;
            audit::select(&self.path, conn, query)
        })
    }

    fn verify_audit(&self) -> Result<AuditReport> {
        self.with_aux(|conn| {
            self.vouch(conn)?;
            conn.execute_batch("BEGIN").map_err(self.err("reading the audit trail of"))?;
            let result = audit::verify_all(conn);
            let _ = conn.execute_batch("COMMIT");
            result.map_err(|e| read_error(&self.path, "reading the audit trail of", e))
        })
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn poll(&self) -> Result<Catchup> {
        self.with_db(|db| {
            end_open_transaction(&db.conn);
            self.vouch(&db.conn)?;
            db.conn.execute_batch("BEGIN").map_err(|e| store_error(&self.path, "reading", e))?;
            let result = changes::since(&self.path, db, true);
            let _ = db.conn.execute_batch("COMMIT");
            result
        })
    }

    fn flush_uses(&self, uses: &[([u8; 16], i64)]) -> Result<()> {
        self.write_uses(uses, true)
    }

    fn flush_uses_without_waiting(&self, uses: &[([u8; 16], i64)]) -> Result<()> {
        self.write_uses(uses, false)
    }

    fn stored_uses(&self, of: UsesOf<'_>) -> Result<Vec<([u8; 16], i64)>> {
        self.with_aux(|conn| {
            self.vouch(conn)?;
            let e = |err| store_error(&self.path, "reading", err);
            // One statement per case, each naming its column: the keys the call shows, found
            // through their index (the key's id, `keys_by_user`), or every used key.
            let by_id = "SELECT id, last_used_at FROM keys WHERE id = ?1 AND last_used_at IS NOT NULL";
            let (sql, param): (&str, Option<&dyn rusqlite::ToSql>) = match &of {
                UsesOf::Key(id) => (by_id, Some(id)),
                // A page's keys, each through the key's id: at most a page's worth of lookups.
                UsesOf::Keys(ids) => {
                    let mut stmt = conn.prepare_cached(by_id).map_err(e)?;
                    let mut out = Vec::new();
                    for id in ids.iter() {
                        let at: Option<i64> = stmt.query_row([id], |r| r.get(1)).optional().map_err(e)?;
                        out.extend(at.map(|at| (*id, at)));
                    }
                    return Ok(out);
                }
                UsesOf::User(user_id) => {
                    ("SELECT id, last_used_at FROM keys WHERE user_id = ?1 AND last_used_at IS NOT NULL", Some(user_id))
                }
                UsesOf::All => ("SELECT id, last_used_at FROM keys WHERE last_used_at IS NOT NULL", None),
            };
            let mut stmt = conn.prepare_cached(sql).map_err(e)?;
            let rows =
                stmt.query_map(rusqlite::params_from_iter(param), |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))).map_err(e)?;
            let mut out = Vec::new();
            for row in rows {
                let (raw, at) = row.map_err(e)?;
                if let Ok(id) = raw.try_into() {
                    out.push((id, at));
                }
            }
            Ok(out)
        })
    }

    fn backup(&self, to: &Path) -> Result<()> {
        check_file_path(to, "backup")?;
        backup::write_new(to, |partial| {
            self.with_aux(|conn| {
                // Through a replaced file's connection, a copy would mix two stores' pages.
                self.vouch(conn)?;
                copy_into(conn, partial, to)
            })
        })
    }

    fn cursor_version(&self) -> i64 {
        self.with_db(|db| Ok(db.last_seen)).unwrap_or(0)
    }

    /// Asked by the maintenance thread at every look; never waits behind an admin
    /// transaction (which asks for itself, in `begin`).
    fn replaced(&self) -> Option<Error> {
        use std::sync::atomic::Ordering;
        let db = self.db.try_lock()?;
        let conn = &db.as_ref()?.conn;
        let Err(error) = replaced::moved(&self.path, &self.named, conn) else {
            self.folded.store(false, Ordering::Relaxed);
            // A file truncated in place: nothing to fold (the log is all that is left of its
            // last pages).
            return replaced::damaged(&self.path, &self.named, conn).err();
        };
        // The log beside the path holds this process's (the old file's) pages: folded into
        // the old file now, within 10 ms of the replacement, before a process opening the new
        // file is likely to have read or written it. Later (at close, say) it may hold that
        // process's commits to the new file, which a checkpoint would carry off into the old one.
        // Tried once only: a later try, the first having been kept from finishing by a reader
        // of the new file, would carry off what that file's processes have committed since.
        if !self.folded.load(Ordering::Relaxed) && conn.is_autocommit() {
            self.folded.store(true, Ordering::Relaxed);
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
        }
        Some(error)
    }

    fn close(&self) {
        // With its -shm deleted, this process's index of the log is no longer the other
        // processes': a checkpoint (this one's, or SQLite's own as the last connection closes)
        // would copy pages they wrote over into the file as this process's. The log is left as is.
        let detached = replaced::shm_detached(&self.named);
        if let Some(aux) = self.aux.lock().take() {
            if detached {
                let _ = aux.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true);
            }
            let _ = aux.close();
        }
        if let Some(db) = self.db.lock().take() {
            if detached {
                let _ = db.conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true);
                let _ = db.conn.close();
                return;
            }
            // Fold the WAL into the main file, so a closed store is one self-contained file.
            // Not once another file was renamed over its path: the log beside the path may then
            // hold commits to the new file, which this would copy into the old file and drop
            // from the log (the old file's own pages were folded when the replacement was
            // noticed, see `replaced`). SQLite's own close skips a moved file likewise.
            if !replaced::has_moved(&db.conn) {
                let _ = db.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
            }
            let _ = db.conn.close();
        }
    }
}
