//! A store file replaced under a running process: another file renamed over its path
//! (a backup put back with `mv`), or the file moved or removed. The process's
//! connections still read and write the file they opened, but SQLite finds the `-wal`
//! and `-shm` files by path, so it now shares them with whatever file the path names:
//! its reads would mix two stores' pages, and its writes would land in the log the
//! new file is read with. So once the path names another file, the store fails closed
//! and writes nothing through these connections until the path names its file again.
//! As it notices, it tries once to fold the log into the old file (the log then holds the
//! old file's last pages, which the new file must not be read with); its close leaves
//! the log alone (see `SqliteBackend::replaced` and `close`).

use std::path::Path;

use rusqlite::{ffi, Connection};

use crate::error::{Error, ErrorCode, Result};

/// Whether the path `conn`'s main file was opened by now names another file, or
/// nothing (SQLite's own test: the inode its descriptor holds against the path's).
/// SQLite answers false where its VFS cannot tell (Windows).
pub(super) fn has_moved(conn: &Connection) -> bool {
    let mut moved: std::ffi::c_int = 0;
    // SAFETY: `conn` is an open connection; SQLITE_FCNTL_HAS_MOVED writes one int.
    let rc = unsafe { ffi::sqlite3_file_control(conn.handle(), c"main".as_ptr(), ffi::SQLITE_FCNTL_HAS_MOVED, (&raw mut moved).cast()) };
    rc == ffi::SQLITE_OK && moved != 0
}

/// `STORE_IO` naming what happened, when the path no longer names the file `conn` opened.
pub(super) fn vouch(path: &Path, conn: &Connection) -> Result<()> {
    if has_moved(conn) {
        return Err(Error::new(
            ErrorCode::StoreIo,
            format!(
                "store {} was replaced, moved or removed while open (a file renamed over it, say): this process \
                 still holds the file it opened and writes nothing through it; close the store and open it again \
                 to use the file there now",
                path.display()
            ),
        ));
    }
    Ok(())
}
