//! What the outbox does with SQLite's errors: which may pass by themselves,
//! which mean the file is damaged, and moving a damaged file aside.

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

/// SQLite's primary error code of `e`, if it is one of SQLite's.
fn code(e: &rusqlite::Error) -> Option<ErrorCode> {
    e.sqlite_error_code()
}

/// The file is not a database or is malformed: it will not get better.
pub fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        code(e),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// The condition may pass by itself: a lock held by another process, a full disk, an
/// I/O error, a file system mounted read-only.
pub fn may_pass(e: &rusqlite::Error) -> bool {
    matches!(
        code(e),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::ReadOnly
        )
    )
}

/// Renames the damaged outbox `path` (and its WAL) to `{path}.damaged-{ms}` and deletes
/// its shared-memory index; where it went.
pub fn move_aside(path: &Path, now_ms: i64) -> std::io::Result<PathBuf> {
    let aside = suffixed(path, &format!(".damaged-{now_ms}"));
    std::fs::rename(path, &aside)?;
    let wal = suffixed(path, "-wal");
    if wal.exists() {
        std::fs::rename(&wal, suffixed(&aside, "-wal"))?;
    }
    let _ = std::fs::remove_file(suffixed(path, "-shm"));
    Ok(aside)
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
