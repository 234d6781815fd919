//! The writer's SQLite VFS, `ipnsync-gather`: the unix VFS, except that a
//! WAL file's writes are gathered and reach the kernel as one `pwrite`
//! per commit instead of two per frame.
//!
//! Why: SQLite writes each WAL frame as two `pwrite`s, its 24-byte header
//! and then the page. A commit of the writer is about 20 frames (the
//! right-most pages of every b-tree it touched), so about 40 system calls
//! each copying a little into the same page-cache pages, before the one
//! `fdatasync` (issue 18, tenth pass: 2.6 `pwrite`s per notification).
//! One `pwrite` of the same bytes costs a quarter of that on this
//! machine's ext4.
//!
//! What makes it safe (**rule `gathered-until-sync`**):
//! - Writes that follow each other in the file are kept in memory and
//!   written, in one call, before anything else touches the file: a sync,
//!   a read, a truncation, a size or file-control query, a close, or a
//!   write somewhere else. So every byte is in the file before the
//!   `fdatasync` that makes a commit durable, and before the writer itself
//!   reads the WAL back (a transaction larger than the page cache).
//! - Other connections read only frames a commit has published in the WAL
//!   index, which SQLite updates after the commit's sync. Hence the rule's
//!   condition: **only a connection that keeps `synchronous=FULL` opens
//!   with this VFS** (`store::open_sqlite_writer`, the only one). Under
//!   `NORMAL` a commit publishes its frames without a sync, and readers
//!   could read bytes still gathered here.
//! - A failed write comes back as the error of the call that flushed it
//!   (the commit's sync, typically): the commit fails, as when the disk
//!   refuses a `pwrite` directly, and no 2xx is sent.
//! - A transaction that spilled frames and then rolled back leaves them
//!   gathered until the next call on the file, which writes them first:
//!   the unix VFS would have written them at once. Either way they lie
//!   beyond the last commit and carry no commit mark, so no reader and no
//!   recovery uses them, and anything written after them at the same
//!   offset lands after them.
//!
//! The database file, the rollback journal and everything else open
//! through the unix VFS untouched: this VFS hands them to it directly.

use std::ffi::{c_int, c_void, CStr};
use std::sync::OnceLock;

use rusqlite::ffi;

/// The VFS's name, for `sqlite3_open_v2`.
pub const NAME: &CStr = c"ipnsync-gather";

/// At most this many bytes are gathered, then written and gathering
/// starts again (a commit of the writer is ~80 KiB). The unix VFS writes
/// less than 128 KiB per call (`seekAndWriteFd` keeps the low 17 bits of
/// the length): a longer write would come back as `SQLITE_FULL`.
const MAX_GATHERED: usize = 120 * 1024;

/// A WAL file opened through this VFS: the unix VFS's own file object
/// follows it in the same allocation (`inner`).
#[repr(C)]
struct GatherFile {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    gathered: Vec<u8>,
    /// The file offset of `gathered[0]`.
    at: i64,
}

/// Where the unix VFS's file object starts in ours (8-byte aligned).
const INNER_OFFSET: usize = std::mem::size_of::<GatherFile>().next_multiple_of(8);

/// Registers the VFS (once per process) and returns its name. `None`
/// when SQLite has no default VFS to wrap (never on Linux): the caller
/// then opens with the default, unchanged.
pub fn name() -> Option<&'static str> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // SAFETY: `sqlite3_vfs_find(NULL)` returns the default VFS or
            // NULL; the copy below only changes our fields, and the
            // registered struct lives for the whole process (leaked).
            unsafe {
                let unix = ffi::sqlite3_vfs_find(std::ptr::null());
                if unix.is_null() {
                    return false;
                }
                let mut vfs: ffi::sqlite3_vfs = *unix;
                vfs.pNext = std::ptr::null_mut();
                vfs.zName = NAME.as_ptr();
                vfs.pAppData = unix.cast();
                vfs.szOsFile = c_int::try_from(INNER_OFFSET).expect("small") + (*unix).szOsFile;
                vfs.xOpen = Some(open);
                let vfs = Box::leak(Box::new(vfs));
                ffi::sqlite3_vfs_register(vfs, 0) == ffi::SQLITE_OK
            }
        })
        .then(|| NAME.to_str().expect("ASCII"))
}

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let unix = (*vfs).pAppData.cast::<ffi::sqlite3_vfs>();
    let x_open = (*unix).xOpen.expect("the unix VFS opens files");
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // Not a WAL: the unix VFS's own file object, in our allocation
        // (which is larger than it needs).
        return x_open(unix, name, file, flags, out_flags);
    }
    let inner = file
        .cast::<u8>()
        .add(INNER_OFFSET)
        .cast::<ffi::sqlite3_file>();
    let rc = x_open(unix, name, inner, flags, out_flags);
    if rc != ffi::SQLITE_OK {
        // SQLite calls no method of a file whose `pMethods` is NULL.
        (*file).pMethods = std::ptr::null();
        return rc;
    }
    std::ptr::write(
        file.cast::<GatherFile>(),
        GatherFile {
            base: ffi::sqlite3_file {
                pMethods: methods(),
            },
            inner,
            gathered: Vec::new(),
            at: 0,
        },
    );
    ffi::SQLITE_OK
}

fn methods() -> &'static ffi::sqlite3_io_methods {
    static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
        iVersion: 3,
        xClose: Some(close),
        xRead: Some(read),
        xWrite: Some(write),
        xTruncate: Some(truncate),
        xSync: Some(sync),
        xFileSize: Some(file_size),
        xLock: Some(lock),
        xUnlock: Some(unlock),
        xCheckReservedLock: Some(check_reserved_lock),
        xFileControl: Some(file_control),
        xSectorSize: Some(sector_size),
        xDeviceCharacteristics: Some(device_characteristics),
        xShmMap: Some(shm_map),
        xShmLock: Some(shm_lock),
        xShmBarrier: Some(shm_barrier),
        xShmUnmap: Some(shm_unmap),
        xFetch: Some(fetch),
        xUnfetch: Some(unfetch),
    };
    &METHODS
}

unsafe fn gather<'a>(file: *mut ffi::sqlite3_file) -> &'a mut GatherFile {
    &mut *file.cast::<GatherFile>()
}

unsafe fn inner_methods(g: &GatherFile) -> &'static ffi::sqlite3_io_methods {
    &*(*g.inner).pMethods
}

/// Writes what is gathered; the error of that write, if any.
unsafe fn flush(g: &mut GatherFile) -> c_int {
    if g.gathered.is_empty() {
        return ffi::SQLITE_OK;
    }
    let write = inner_methods(g).xWrite.expect("files write");
    let len = c_int::try_from(g.gathered.len()).expect("at most MAX_GATHERED");
    let rc = write(g.inner, g.gathered.as_ptr().cast(), len, g.at);
    #[cfg(test)]
    tests::INNER_WRITES.with(|n| n.set(n.get() + 1));
    g.gathered.clear();
    rc
}

/// Flushes, then runs `then` unless the flush failed.
unsafe fn flushed(g: &mut GatherFile, then: impl FnOnce(&mut GatherFile) -> c_int) -> c_int {
    match flush(g) {
        ffi::SQLITE_OK => then(g),
        rc => rc,
    }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let g = gather(file);
    let flushed = flush(g);
    let closed = (inner_methods(g).xClose.expect("files close"))(g.inner);
    std::ptr::drop_in_place(&mut g.gathered);
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amt: c_int,
    at: i64,
) -> c_int {
    flushed(gather(file), |g| {
        (inner_methods(g).xRead.expect("files read"))(g.inner, buf, amt, at)
    })
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    at: i64,
) -> c_int {
    let g = gather(file);
    let len = usize::try_from(amt).unwrap_or(0);
    let follows = !g.gathered.is_empty()
        && at == g.at + g.gathered.len() as i64
        && g.gathered.len() + len <= MAX_GATHERED;
    if !follows {
        let rc = flush(g);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        if len > MAX_GATHERED {
            return (inner_methods(g).xWrite.expect("files write"))(g.inner, buf, amt, at);
        }
        g.at = at;
        if g.gathered.capacity() == 0 {
            // Once, at its final size: no reallocation while a commit is
            // gathered.
            g.gathered.reserve_exact(MAX_GATHERED);
        }
    }
    g.gathered
        .extend_from_slice(std::slice::from_raw_parts(buf.cast::<u8>(), len));
    ffi::SQLITE_OK
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    flushed(gather(file), |g| {
        (inner_methods(g).xTruncate.expect("files truncate"))(g.inner, size)
    })
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    flushed(gather(file), |g| {
        (inner_methods(g).xSync.expect("files sync"))(g.inner, flags)
    })
}

unsafe extern "C" fn file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    flushed(gather(file), |g| {
        (inner_methods(g).xFileSize.expect("files have sizes"))(g.inner, size)
    })
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    flushed(gather(file), |g| {
        (inner_methods(g).xFileControl.expect("files take controls"))(g.inner, op, arg)
    })
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let g = gather(file);
    (inner_methods(g).xLock.expect("files lock"))(g.inner, level)
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let g = gather(file);
    (inner_methods(g).xUnlock.expect("files unlock"))(g.inner, level)
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    let g = gather(file);
    (inner_methods(g).xCheckReservedLock.expect("files lock"))(g.inner, out)
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    let g = gather(file);
    (inner_methods(g).xSectorSize.expect("files have sectors"))(g.inner)
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    let g = gather(file);
    (inner_methods(g)
        .xDeviceCharacteristics
        .expect("files have devices"))(g.inner)
}

// SQLite never maps or fetches a WAL file through these (the WAL index
// belongs to the database file); they forward for completeness.

unsafe extern "C" fn shm_map(
    file: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    let g = gather(file);
    match inner_methods(g).xShmMap {
        Some(f) => f(g.inner, region, size, extend, out),
        None => ffi::SQLITE_IOERR,
    }
}

unsafe extern "C" fn shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    let g = gather(file);
    match inner_methods(g).xShmLock {
        Some(f) => f(g.inner, offset, n, flags),
        None => ffi::SQLITE_IOERR,
    }
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    let g = gather(file);
    if let Some(f) = inner_methods(g).xShmBarrier {
        f(g.inner);
    }
}

unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    let g = gather(file);
    match inner_methods(g).xShmUnmap {
        Some(f) => f(g.inner, delete),
        None => ffi::SQLITE_OK,
    }
}

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    at: i64,
    amt: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // A fetched page must show what was written: flush first.
    flushed(gather(file), |g| match inner_methods(g).xFetch {
        Some(f) => f(g.inner, at, amt, out),
        None => {
            *out = std::ptr::null_mut();
            ffi::SQLITE_OK
        }
    })
}

unsafe extern "C" fn unfetch(file: *mut ffi::sqlite3_file, at: i64, page: *mut c_void) -> c_int {
    let g = gather(file);
    match inner_methods(g).xUnfetch {
        Some(f) => f(g.inner, at, page),
        None => ffi::SQLITE_OK,
    }
}

#[cfg(test)]
mod tests;
