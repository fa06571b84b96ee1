//! The outbox's tables, created on first open, and the upgrade of outboxes
//! written by earlier versions (in place: nothing stored is lost).

use std::path::Path;

use rusqlite::Connection;

/// What an opened outbox holds: (events, evidence JPEGs, their bytes).
pub(super) struct Counts {
    pub depth: u64,
    pub evidence_depth: u64,
    pub evidence_bytes: u64,
}

/// Opens (creating or upgrading) the outbox at `path` and counts what it holds.
pub(super) fn open(path: &Path) -> rusqlite::Result<(Connection, Counts)> {
    let conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS outbox (
                 seq     INTEGER PRIMARY KEY,
                 id      TEXT NOT NULL,
                 topic   TEXT NOT NULL,
                 payload BLOB NOT NULL,
                 stored_ms INTEGER NOT NULL,
                 camera  TEXT,
                 captured_ms INTEGER
             );
             CREATE INDEX IF NOT EXISTS outbox_stored_ms ON outbox (stored_ms);
             CREATE TABLE IF NOT EXISTS evidence (
                 id    TEXT PRIMARY KEY,
                 seq   INTEGER NOT NULL UNIQUE,
                 topic TEXT NOT NULL,
                 jpeg  BLOB NOT NULL,
                 stored_ms INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS counters (
                 name  TEXT PRIMARY KEY,
                 value INTEGER NOT NULL
             );
             INSERT OR IGNORE INTO counters (name, value) VALUES ('seq', 0);
             INSERT OR IGNORE INTO counters (name, value) VALUES ('dropped', 0);
             INSERT OR IGNORE INTO counters (name, value) VALUES ('evidence_dropped', 0);",
    )?;
    // Outboxes written before events recorded their camera and capture time.
    let has_camera: bool = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('outbox') WHERE name = 'camera'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_camera {
        conn.execute_batch(
            "ALTER TABLE outbox ADD COLUMN camera TEXT;
                 ALTER TABLE outbox ADD COLUMN captured_ms INTEGER;",
        )?;
    }
    let depth: i64 = conn.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?;
    let (evidence_depth, evidence_bytes): (i64, i64) = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(length(jpeg)), 0) FROM evidence",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((
        conn,
        Counts {
            depth: depth as u64,
            evidence_depth: evidence_depth as u64,
            evidence_bytes: evidence_bytes as u64,
        },
    ))
}
