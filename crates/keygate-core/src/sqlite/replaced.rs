//! A store file replaced under a running process: another file renamed over its path
//! (a backup put back with `mv`), a symbolic link switched to another file, or the file
//! moved or removed. The process's
//! connections still read and write the file they opened, but SQLite finds the `-wal`
//! and `-shm` files by path, so it now shares them with whatever file the path names:
//! its reads would mix two stores' pages, and its writes would land in the log the
//! new file is read with. So once the path names another file, the store fails closed
//! and writes nothing through these connections until the path names its file again.
//! As it notices, it tries once to fold the log into the old file (the log then holds the
//! old file's last pages, which the new file must not be read with); its close leaves
//! the log alone (see `SqliteBackend::replaced` and `close`). A file truncated in place (its
//! SQLite header gone) fails the store closed the same way (see [`truncated`]), as does its
//! `-wal` or `-shm` file deleted or replaced (see [`detached`]).

use std::path::{Path, PathBuf};

use rusqlite::{ffi, Connection};

use crate::error::{shown_path, Error, ErrorCode, Result};

/// Whether the path `conn`'s main file was opened by now names another file, or
/// nothing (SQLite's own test: the inode its descriptor holds against the path's).
/// SQLite answers false where its VFS cannot tell (Windows).
pub(super) fn has_moved(conn: &Connection) -> bool {
    let mut moved: std::ffi::c_int = 0;
    // SAFETY: `conn` is an open connection; SQLITE_FCNTL_HAS_MOVED writes one int.
    let rc = unsafe { ffi::sqlite3_file_control(conn.handle(), c"main".as_ptr(), ffi::SQLITE_FCNTL_HAS_MOVED, (&raw mut moved).cast()) };
    rc == ffi::SQLITE_OK && moved != 0
}

/// The store's path as the caller gave it, and the file it named when the store was
/// opened. SQLite resolves symbolic links at open and watches the file they led to, so a
/// link switched to another file (`ln -sfn backup.db keys.db`) escapes its test: the path
/// is followed again at every look.
pub(super) struct Named {
    /// Made absolute at open (links kept): a later `chdir` of the process changes nothing.
    path: PathBuf,
    /// Device and inode of the file SQLite opened; `None` where they cannot be read (then
    /// only SQLite's test applies).
    file: Option<(u64, u64)>,
    /// The `-wal` and `-shm` files beside the file SQLite opened, as each was at open (`None`
    /// where it could not be read). SQLite opens them once, by path; one deleted (or replaced)
    /// under the process is made anew by the next process to open the store, which then shares
    /// no log or locks with this one (see [`detached`]).
    wal: Option<Sidecar>,
    shm: Option<Sidecar>,
}

/// A file beside the store's, and the file (device, inode) its path named at open.
struct Sidecar {
    path: PathBuf,
    file: (u64, u64),
}

impl Sidecar {
    fn at_open(opened: &Path, suffix: &str) -> Option<Sidecar> {
        let path = super::open::beside(opened, suffix);
        identity(&path).map(|file| Sidecar { path, file })
    }

    /// Whether its path no longer names the file it named at open.
    fn is_gone(&self) -> bool {
        identity(&self.path) != Some(self.file)
    }
}

impl Named {
    /// `path` as `conn` opened it: the file is the one at the name SQLite resolved, which
    /// [`has_moved`] vouches still names it.
    pub(super) fn at_open(path: &Path, conn: &Connection) -> Named {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let opened = conn.path().map(Path::new);
        Named {
            path: absolute,
            file: opened.and_then(identity),
            wal: opened.and_then(|opened| Sidecar::at_open(opened, "-wal")),
            shm: opened.and_then(|opened| Sidecar::at_open(opened, "-shm")),
        }
    }

    fn still_names_the_file(&self) -> bool {
        self.file.is_none_or(|file| identity(&self.path) == Some(file))
    }
}

#[cfg(unix)]
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(_path: &Path) -> Option<(u64, u64)> {
    None
}

/// The store's checks of its file, at every look and before every write: [`moved`], then
/// [`truncated`] and [`detached`]. Truncation first: a connection that first reads the emptied
/// file deletes the `-wal` beside it, so a truncated store may also look detached, and what
/// happened (and what to do: restore a backup) is the truncation.
pub(super) fn vouch(path: &Path, named: &Named, conn: &Connection) -> Result<()> {
    moved(path, named, conn)?;
    damaged(path, named, conn)
}

/// The checks of a file still at its path: [`truncated`], then [`detached`] (see [`vouch`]).
pub(super) fn damaged(path: &Path, named: &Named, conn: &Connection) -> Result<()> {
    truncated(path, conn)?;
    detached(path, named)
}

/// `STORE_IO` when the `-wal` or `-shm` file this process opened is no longer the one beside
/// the store (`rm keys.db-shm`, say). This process goes on using the one it holds, while the next
/// process to open the store makes a new one: with its own `-shm` it shares no locks with this
/// one, and each would write over the other's log, or commit (a revocation, say) where this one
/// never looks. So the store fails closed and writes nothing.
fn detached(path: &Path, named: &Named) -> Result<()> {
    if [&named.wal, &named.shm].into_iter().flatten().any(Sidecar::is_gone) {
        return Err(Error::new(
            ErrorCode::StoreIo,
            format!(
                "the -wal or -shm file of store {} was deleted or replaced while open: this process writes nothing to \
                 the store and its checks answer store_unavailable; stop every process that has it open, then open it again",
                shown_path(path)
            ),
        ));
    }
    Ok(())
}

/// Whether the `-shm` file this process maps is no longer the one beside the store: its log's
/// index then says nothing of the log the other processes write, and a checkpoint at close
/// would copy their pages into the file as if they were this process's (see `close`).
pub(super) fn shm_detached(named: &Named) -> bool {
    named.shm.as_ref().is_some_and(Sidecar::is_gone)
}

/// `STORE_CORRUPT` when the file `conn` opened no longer begins with an SQLite header: it was
/// truncated (`truncate -s 0`, `: > keys.db`) or written over in place. Nothing wakes the
/// processes then (the log and its index are as they were): they would go on answering from
/// memory, and a write whose pages all lie in the log or its cache would be acknowledged into a
/// log that the next process to open the file deletes (SQLite drops the log of an empty file).
/// Read through SQLite's own descriptor (20 bytes, every 10 ms): closing one of ours would drop
/// the process's locks. The magic string and the WAL versions never change in a keygate store.
fn truncated(path: &Path, conn: &Connection) -> Result<()> {
    if super::open::header_through(conn).is_some_and(|header| !super::open::is_sqlite_header(&header)) {
        return Err(Error::new(
            ErrorCode::StoreCorrupt,
            format!(
                "store {} was truncated or overwritten while open: the file no longer begins with an SQLite header; \
                 this process writes nothing to it and its checks answer store_unavailable; stop every process \
                 that has it open and restore the store from a backup",
                shown_path(path)
            ),
        ));
    }
    Ok(())
}

/// `STORE_IO` naming what happened, when the path no longer names the file `conn` opened.
pub(super) fn moved(path: &Path, named: &Named, conn: &Connection) -> Result<()> {
    if has_moved(conn) || !named.still_names_the_file() {
        return Err(Error::new(
            ErrorCode::StoreIo,
            format!(
                "store {} was replaced, moved or removed while open (a file renamed over it, say): this process \
                 still holds the file it opened and writes nothing through it; close the store and open it again \
                 to use the file there now",
                shown_path(path)
            ),
        ));
    }
    Ok(())
}
