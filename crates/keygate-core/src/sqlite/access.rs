//! Which access to the store's files this process lacks, for the errors of an open that
//! failed for want of it. SQLite says only "unable to open database file" or "attempt to write
//! a readonly database", whichever file it was (the store file, its `-wal` or `-shm`, or the
//! directory it makes them in): an operator running a process under a user of its own (a
//! gateway given as little access as possible) could not tell what to grant.

use std::path::Path;

use super::open::beside;

/// What this process may not do that a store at `path` needs, as a clause for an error
/// message (`this process (uid 65534) may not write the store file …`); `None` when it may do
/// everything (the failure had another cause). Asks the kernel (`faccessat`, by the effective
/// ids): nothing is opened, so no lock SQLite holds on the files is dropped.
#[cfg(unix)]
pub(super) fn missing_access(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let who = format!("this process (uid {euid})");
    // SQLite makes the `-wal` and `-shm` beside the file a symbolic link leads to, not beside the
    // link: the access asked about is that directory's (the link's, asked about before, was the
    // wrong one to name and could miss the one lacking).
    let path = &link_followed(path);
    let described = |file: &Path| {
        std::fs::metadata(file)
            .map_or(String::new(), |m| format!(" (owner uid {}, group {}, mode {:o})", m.uid(), m.gid(), m.mode() & 0o777))
    };
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match std::fs::metadata(directory) {
        Ok(meta) if meta.is_dir() => {
            if let Some(problem) = denied(directory, libc::X_OK) {
                return Some(format!(
                    "{who} may not enter its directory {}{}{problem}",
                    crate::error::shown_path(directory),
                    described(directory)
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Some(format!(
                "{who} may not reach its directory {} (it may not enter one above it)",
                crate::error::shown_path(directory)
            ));
        }
        _ => return None,
    }
    if std::fs::symlink_metadata(path).is_err() {
        return None;
    }
    if let Some(problem) = denied(path, libc::R_OK) {
        return Some(format!("{who} may not read the store file{}{problem}", described(path)));
    }
    if let Some(problem) = denied(path, libc::W_OK) {
        return Some(format!(
            "{who} may not write the store file{}{problem}; every process that opens a store needs to write it, a \
             gateway that only checks keys included (it records lastUsedAt)",
            described(path)
        ));
    }
    for suffix in ["-wal", "-shm"] {
        let side = beside(path, suffix);
        if std::fs::symlink_metadata(&side).is_ok() {
            if let Some(problem) = denied(&side, libc::R_OK | libc::W_OK) {
                return Some(format!("{who} may not read and write the {suffix} file beside it{}{problem}", described(&side)));
            }
        } else if let Some(problem) = denied(directory, libc::W_OK) {
            return Some(format!(
                "{who} may not write its directory {}{}{problem}, where SQLite makes the {suffix} file while the store is open",
                crate::error::shown_path(directory),
                described(directory)
            ));
        }
    }
    None
}

/// `path`, or the file it names when it is a symbolic link (a chain of them followed), where
/// each link's target is read without reaching it: a target this process may not reach is still
/// the one whose access is missing (`canonicalize` would fail there). Left as given when a link
/// cannot be read, or when the chain is longer than the kernel follows (40 links).
#[cfg(unix)]
fn link_followed(path: &Path) -> std::path::PathBuf {
    let mut file = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&file) {
            Ok(meta) if meta.file_type().is_symlink() => {}
            _ => return file,
        }
        let Ok(target) = std::fs::read_link(&file) else { return path.to_path_buf() };
        // A relative target is relative to the link's own directory (`join` keeps an absolute one).
        file = file.parent().map_or_else(|| target.clone(), |parent| parent.join(&target));
    }
    path.to_path_buf()
}

#[cfg(not(unix))]
pub(super) fn missing_access(_: &Path) -> Option<String> {
    None
}

/// Why `file` may not be accessed with `mode` (`R_OK`, `W_OK`, `X_OK`), as a clause (empty for
/// plain permission; `: it is on a read-only file system`), or `None` when it may be (or the
/// kernel cannot say).
#[cfg(unix)]
fn denied(file: &Path, mode: libc::c_int) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(file.as_os_str().as_bytes()).ok()?;
    // SAFETY: `name` is a NUL-terminated path that outlives the call; faccessat reads nothing else.
    if unsafe { libc::faccessat(libc::AT_FDCWD, name.as_ptr(), mode, libc::AT_EACCESS) } == 0 {
        return None;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => Some(String::new()),
        Some(libc::EROFS) => Some(": it is on a read-only file system".to_string()),
        _ => None,
    }
}
