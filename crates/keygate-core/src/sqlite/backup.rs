//! A backup file that appears whole or not at all: the copy is written under a partial
//! name beside the target and given the target's name only once it is complete, without
//! replacing anything found there. A backup that fails, or whose process is killed, never
//! leaves a file under the name asked for: a half-written copy there would block the next
//! backup to that name ("already exists") and could be restored as if it were whole.

use std::path::{Path, PathBuf};

use super::open::beside;
use crate::error::{shown_path, Error, ErrorCode, Result};

/// Infix of the partial name: `<target>.keygate-partial-<8 hex digits>`.
const PARTIAL_INFIX: &str = ".keygate-partial-";

/// The files SQLite may make beside a database it writes (`<partial>-journal`, …): the partial
/// name is this call's own, so these are too.
const SQLITE_SIDE_FILES: [&str; 3] = ["-journal", "-wal", "-shm"];

/// Writes a new file at `to` through `copy`, which fills the (empty, existing) file at the
/// path it is given and closes it before returning. Refuses a name that exists, a dangling
/// link included. On any failure nothing is left at `to`, at the partial name or beside it.
pub(crate) fn write_new(to: &Path, copy: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if std::fs::symlink_metadata(to).is_ok() {
        return Err(taken(to));
    }
    let partial = create_partial(to)?;
    let written = copy(&partial).and_then(|()| sync_file(&partial, to)).and_then(|()| publish(&partial, to));
    // Linked or not, the partial name goes; after a link the file lives on under `to`. So do the
    // files SQLite keeps beside it: a copy that failed half-way (a full disk) leaves its
    // rollback journal, which SQLite does not delete when the rollback cannot be written.
    let _ = std::fs::remove_file(&partial);
    for suffix in SQLITE_SIDE_FILES {
        let _ = std::fs::remove_file(beside(&partial, suffix));
    }
    if written.is_ok() {
        sync_directory(to);
    }
    written
}

/// Why `to`, found taken, is refused: a directory is named as one, since an operator who gave a
/// directory meant "put the backup in there" and "already exists" would not tell them otherwise.
fn taken(to: &Path) -> Error {
    let shown = shown_path(to);
    if to.is_dir() {
        return Error::new(ErrorCode::StoreIo, format!("backup target {shown} is a directory: name the new backup file"));
    }
    Error::new(ErrorCode::StoreIo, format!("backup target {shown} already exists"))
}

fn io_error(to: &Path, err: std::io::Error) -> Error {
    Error::new(ErrorCode::StoreIo, format!("cannot back up to {}: {err}", shown_path(to)))
}

/// A new, empty file beside `to` under a name no other backup uses.
fn create_partial(to: &Path) -> Result<PathBuf> {
    let Some(name) = to.file_name() else {
        return Err(Error::new(ErrorCode::StoreIo, format!("cannot back up to {}: not a file name", shown_path(to))));
    };
    for _ in 0..16 {
        let partial = format!("{}{PARTIAL_INFIX}{}", name_start(name), crate::secret::random_hex::<4>()?);
        let partial = to.with_file_name(partial);
        // Readable by its owner only, as the store's own file (the backup holds the same rows).
        match super::owner_only().create_new(true).open(&partial) {
            Ok(_) => return Ok(partial),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(io_error(to, err)),
        }
    }
    Err(Error::new(ErrorCode::StoreIo, format!("cannot back up to {}: no free partial name beside it", shown_path(to))))
}

/// The start of the target's name that the partial name begins with: short enough that the
/// partial name fits where the target's does (most file systems allow 255 bytes).
fn name_start(name: &std::ffi::OsStr) -> String {
    let mut start = String::new();
    for c in name.to_string_lossy().chars() {
        if start.len() + c.len_utf8() > 120 {
            break;
        }
        start.push(c);
    }
    start
}

fn sync_file(path: &Path, to: &Path) -> Result<()> {
    // Opened for writing: Windows flushes only a handle with write access.
    std::fs::OpenOptions::new().write(true).open(path).and_then(|file| file.sync_all()).map_err(|err| io_error(to, err))
}

/// Gives the complete copy the name `to`: a hard link, which fails rather than replace
/// whatever appeared there meanwhile. Where the file system has no hard links, a rename
/// after one more look (a file appearing between the two would be replaced).
fn publish(partial: &Path, to: &Path) -> Result<()> {
    match std::fs::hard_link(partial, to) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Err(taken(to)),
        Err(link_error) => {
            if std::fs::symlink_metadata(to).is_ok() {
                return Err(taken(to));
            }
            std::fs::rename(partial, to).map_err(|_| io_error(to, link_error))
        }
    }
}

/// Makes the new name durable with the file (best effort: some systems refuse to open a directory).
fn sync_directory(to: &Path) {
    #[cfg(unix)]
    {
        let parent = to.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if let Ok(dir) = std::fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = to;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn a_finished_copy_appears_under_its_name_and_nothing_else_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("bk.db");
        write_new(&to, |partial| {
            assert!(partial.file_name().unwrap().to_string_lossy().starts_with("bk.db.keygate-partial-"));
            assert!(!to.exists(), "the name appeared before the copy was complete");
            std::fs::write(partial, b"whole").map_err(|e| io_error(partial, e))
        })
        .unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"whole");
        assert_eq!(names_in(dir.path()), ["bk.db"]);
    }

    #[test]
    fn a_failed_copy_leaves_no_file_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("bk.db");
        let err = write_new(&to, |partial| {
            std::fs::write(partial, b"half").unwrap();
            Err(Error::new(ErrorCode::StoreIo, "disk full"))
        })
        .unwrap_err();
        assert_eq!(err.message, "disk full");
        assert_eq!(names_in(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn a_failed_copy_leaves_no_journal_beside_the_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("bk.db");
        write_new(&to, |partial| {
            // What SQLite leaves when a write of the copy fails (a full disk) and so does the rollback.
            std::fs::write(beside(partial, "-journal"), b"hot").unwrap();
            Err(Error::new(ErrorCode::StoreIo, "database or disk is full"))
        })
        .unwrap_err();
        assert_eq!(names_in(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn a_name_taken_while_copying_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("bk.db");
        let err = write_new(&to, |partial| {
            std::fs::write(&to, b"someone else's").unwrap();
            std::fs::write(partial, b"ours").map_err(|e| io_error(partial, e))
        })
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::StoreIo);
        assert!(err.message.contains("already exists"), "{}", err.message);
        assert_eq!(std::fs::read(&to).unwrap(), b"someone else's");
        assert_eq!(names_in(dir.path()), ["bk.db"]);
    }

    #[test]
    fn an_existing_name_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("bk.db");
        std::fs::write(&to, b"old").unwrap();
        let err = write_new(&to, |_| panic!("copied over an existing name")).unwrap_err();
        assert!(err.message.contains("already exists"), "{}", err.message);
        assert_eq!(names_in(dir.path()), ["bk.db"]);
    }

    #[test]
    fn a_directory_is_refused_as_a_directory_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("backups");
        std::fs::create_dir(&to).unwrap();
        let err = write_new(&to, |_| panic!("copied over a directory")).unwrap_err();
        assert_eq!(err.code, ErrorCode::StoreIo);
        assert!(err.message.ends_with("backups is a directory: name the new backup file"), "{}", err.message);
        assert_eq!(names_in(dir.path()), ["backups"]);
        assert_eq!(names_in(&to), Vec::<String>::new());
    }

    #[test]
    fn a_relative_name_gets_its_partial_file_in_the_working_directory() {
        let partial = create_partial(Path::new("rel-backup-test.db")).unwrap();
        let name = partial.to_string_lossy().into_owned();
        std::fs::remove_file(&partial).unwrap();
        assert!(name.starts_with("rel-backup-test.db.keygate-partial-"), "{name}");
        assert!(!name.contains('/'), "{name}");
    }

    #[test]
    fn a_name_as_long_as_the_file_system_allows_still_gets_a_partial_name_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join(format!("{}.db", "é".repeat(125)));
        write_new(&to, |partial| {
            assert!(partial.file_name().unwrap().len() < 160, "{}", partial.display());
            std::fs::write(partial, b"whole").map_err(|e| io_error(partial, e))
        })
        .unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"whole");
    }

    #[test]
    fn a_path_without_a_file_name_is_refused() {
        let err = write_new(Path::new("/nonexistent-keygate-dir/.."), |_| panic!("copied")).unwrap_err();
        assert_eq!(err.code, ErrorCode::StoreIo);
        assert!(err.message.contains("not a file name"), "{}", err.message);
    }
}
