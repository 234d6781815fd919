//! Is the database we write still the database at the configured path?
//!
//! SQLite writes through its open file descriptor. If the file is deleted,
//! moved away or replaced (an operator's `rm`, a restore copied over it, a
//! misdirected `mv`), every commit still succeeds, into a file nobody will
//! ever open again: the daemon would answer `200 OK` for notifications that
//! are gone after the next restart. So the writer compares the device and
//! inode of the files it opened with what the path names now, before each
//! batch (refuse it) and after each commit (answer 503 instead of 200), the
//! checkpointer does so ten times a second (so the ERROR comes even when no
//! notification arrives), and `/readyz` and the watchdog see it through the
//! writer's probe. Nothing is written while the files differ; if the very
//! same file comes back to its path (moved back), writing resumes.
//!
//! The `-wal` file is watched the same way: committed transactions live in
//! it until a checkpoint, so losing it loses them just as surely.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use thiserror::Error;

/// Identity of a file: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "device {} inode {}", self.dev, self.ino)
    }
}

/// The identity of the file at `path`, asking the kernel for the inode
/// number only (`statx` with `STATX_INO`; the device always comes).
///
/// Not `std::fs::metadata`, which asks for every field: a query of a
/// file's timestamps makes the kernel stamp its next write with a
/// fine-grained time (multigrain timestamps, Linux 6.13), so the writer's
/// check after every commit made every WAL write change the WAL's mtime,
/// and ext4 then wrote the inode to disk in each commit's `fdatasync`: a
/// second synchronous write per commit (issue 18, eleventh pass). Unasked,
/// the mtime moves with the coarse clock, a few times per 1 000 commits.
fn file_id(path: &Path) -> std::io::Result<FileId> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a NUL-terminated path and a `statx` buffer the kernel fills.
    let stx = unsafe {
        let mut stx: libc::statx = std::mem::zeroed();
        if libc::statx(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_STATX_SYNC_AS_STAT,
            libc::STATX_INO,
            &mut stx,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        stx
    };
    Ok(FileId {
        dev: libc::makedev(stx.stx_dev_major, stx.stx_dev_minor),
        ino: stx.stx_ino,
    })
}

/// Why the database the daemon writes is not the one at its path.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FileFault {
    #[error("database file {path} is no longer at its path (deleted or moved away while open): refusing writes that would be lost; restore it or restart the daemon")]
    Gone { path: String },
    #[error("database file {path} was replaced by another file ({was} became {now}): refusing writes into the old one; restart the daemon to use the new file")]
    Replaced {
        path: String,
        was: FileId,
        now: FileId,
    },
    #[error("cannot check database file {path}: {error}")]
    Unreadable { path: String, error: String },
}

/// The identities of the database files as opened, and whether they are
/// still at their paths.
pub struct FileWatch {
    db: (PathBuf, FileId),
    /// The WAL, once it exists (SQLite creates it with the first write and
    /// keeps it while any connection is open).
    wal: Mutex<(PathBuf, Option<FileId>)>,
    /// The fault last seen, to log each change once.
    fault: Mutex<Option<FileFault>>,
}

impl FileWatch {
    /// Records the identity of the database (and its WAL) at `path`, just
    /// after the writer opened it.
    pub fn new(path: &Path) -> std::io::Result<FileWatch> {
        let db = file_id(path)?;
        let wal_path = wal_path(path);
        let wal = file_id(&wal_path).ok();
        Ok(FileWatch {
            db: (path.to_owned(), db),
            wal: Mutex::new((wal_path, wal)),
            fault: Mutex::new(None),
        })
    }

    /// Compares the opened files with their paths now. Logs an ERROR when a
    /// fault appears (once) and an INFO when it goes away.
    pub fn check(&self) -> Result<(), FileFault> {
        let found = self.compare();
        let mut last = self.fault.lock().expect("file fault");
        match (&found, last.as_ref()) {
            (Err(now), before) if before != Some(now) => {
                tracing::error!(error = %now, "database file fault: notifications are answered 503, /readyz fails and the watchdog is not fed");
            }
            (Ok(()), Some(_)) => {
                tracing::info!(path = %self.db.0.display(), "database file is back at its path; writing again");
            }
            _ => {}
        }
        *last = found.as_ref().err().cloned();
        found
    }

    /// The fault last seen by [`FileWatch::check`], without checking again.
    pub fn fault(&self) -> Option<FileFault> {
        self.fault.lock().expect("file fault").clone()
    }

    fn compare(&self) -> Result<(), FileFault> {
        same(&self.db.0, Some(self.db.1))?;
        let mut wal = self.wal.lock().expect("wal identity");
        match wal.1 {
            Some(id) => same(&wal.0, Some(id)),
            None => {
                // Not created yet when we opened: learn it now.
                wal.1 = file_id(&wal.0).ok();
                Ok(())
            }
        }
    }
}

fn same(path: &Path, was: Option<FileId>) -> Result<(), FileFault> {
    let Some(was) = was else { return Ok(()) };
    let shown = path.display().to_string();
    match file_id(path) {
        Ok(now) if now == was => Ok(()),
        Ok(now) => Err(FileFault::Replaced {
            path: shown,
            was,
            now,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(FileFault::Gone { path: shown }),
        Err(e) => Err(FileFault::Unreadable {
            path: shown,
            error: e.to_string(),
        }),
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_id_is_the_device_and_inode_std_reports() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        for path in [file.as_path(), dir.path(), Path::new("/")] {
            let m = std::fs::metadata(path).unwrap();
            assert_eq!(
                file_id(path).unwrap(),
                FileId {
                    dev: m.dev(),
                    ino: m.ino()
                },
                "{}",
                path.display()
            );
        }
        let missing = file_id(&dir.path().join("missing")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        let nul = file_id(Path::new("a\0b")).unwrap_err();
        assert_eq!(nul.kind(), std::io::ErrorKind::InvalidInput);
    }

    #[test]
    fn notices_deleted_replaced_and_moved_back_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = crate::store::open_writer(&path).unwrap();
        let watch = FileWatch::new(&path).unwrap();
        assert_eq!(watch.check(), Ok(()));

        std::fs::rename(&path, dir.path().join("aside.db")).unwrap();
        assert!(matches!(watch.check(), Err(FileFault::Gone { .. })));
        assert!(watch.fault().is_some());
        std::fs::rename(dir.path().join("aside.db"), &path).unwrap();
        assert_eq!(watch.check(), Ok(()), "the same file back: fine again");
        assert!(watch.fault().is_none());

        std::fs::copy(&path, dir.path().join("copy.db")).unwrap();
        std::fs::rename(dir.path().join("copy.db"), &path).unwrap();
        let err = watch.check().unwrap_err();
        assert!(matches!(err, FileFault::Replaced { .. }), "{err}");
        assert!(err.to_string().contains("replaced"), "{err}");

        let wal = wal_path(&path);
        assert!(wal.exists(), "WAL mode keeps a -wal file while open");
        drop(conn);
    }

    #[test]
    fn a_deleted_wal_is_a_fault_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let _conn = crate::store::open_writer(&path).unwrap();
        let watch = FileWatch::new(&path).unwrap();
        std::fs::remove_file(wal_path(&path)).unwrap();
        let err = watch.check().unwrap_err();
        assert!(err.to_string().contains("t.db-wal"), "{err}");
    }
}
