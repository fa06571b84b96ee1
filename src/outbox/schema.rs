//! The outbox's tables, created on first open, and the upgrade of outboxes
//! written by earlier versions (in place: nothing stored is lost).
//!
//! On every open the `seq` counter is checked against the highest `seq`
//! stored anywhere (events, evidence, dead letters): a counter behind it (a
//! file restored from a backup, edited by hand) would make every later commit
//! fail on the primary key, so it is moved up to it.

use std::path::Path;

use rusqlite::Connection;

/// What an opened outbox holds: (events, evidence JPEGs, their bytes).
pub(super) struct Counts {
    pub depth: u64,
    pub evidence_depth: u64,
    pub evidence_bytes: u64,
    /// The seq counter lagged behind what is stored: (counter, highest stored seq).
    pub repaired: Option<(u64, u64)>,
    /// The counter as it is now (after a repair).
    pub last_seq: u64,
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
             CREATE TABLE IF NOT EXISTS dead_letter (
                 seq     INTEGER NOT NULL,
                 part    TEXT NOT NULL,
                 id      TEXT NOT NULL,
                 topic   TEXT NOT NULL,
                 payload BLOB NOT NULL,
                 reason  TEXT NOT NULL,
                 stored_ms INTEGER NOT NULL,
                 dead_ms INTEGER NOT NULL,
                 PRIMARY KEY (seq, part)
             );
             CREATE TABLE IF NOT EXISTS counters (
                 name  TEXT PRIMARY KEY,
                 value INTEGER NOT NULL
             );
             INSERT OR IGNORE INTO counters (name, value) VALUES ('seq', 0);
             INSERT OR IGNORE INTO counters (name, value) VALUES ('dropped', 0);
             INSERT OR IGNORE INTO counters (name, value) VALUES ('evidence_dropped', 0);
             INSERT OR IGNORE INTO counters (name, value) VALUES ('dead_lettered', 0);",
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
    let repaired = repair_seq(&conn)?;
    let last_seq: i64 =
        conn.query_row("SELECT value FROM counters WHERE name = 'seq'", [], |r| {
            r.get(0)
        })?;
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
            repaired,
            last_seq: last_seq as u64,
        },
    ))
}

/// The highest seq stored in any table (0 if none).
fn max_stored_seq(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT MAX(COALESCE((SELECT MAX(seq) FROM outbox), 0),
                    COALESCE((SELECT MAX(seq) FROM evidence), 0),
                    COALESCE((SELECT MAX(seq) FROM dead_letter), 0))",
        [],
        |r| r.get(0),
    )
}

/// Moves the seq counter up to the highest stored seq if it lags; what it was and is.
fn repair_seq(conn: &Connection) -> rusqlite::Result<Option<(u64, u64)>> {
    let counter: i64 =
        conn.query_row("SELECT value FROM counters WHERE name = 'seq'", [], |r| {
            r.get(0)
        })?;
    let stored = max_stored_seq(conn)?;
    if counter >= stored {
        return Ok(None);
    }
    conn.execute(
        "UPDATE counters SET value = ?1 WHERE name = 'seq'",
        rusqlite::params![stored],
    )?;
    Ok(Some((counter as u64, stored as u64)))
}

/// The highest seq a damaged outbox still tells (its counter or its rows), best effort:
/// a new outbox goes on from there, so consumers see no seq twice.
pub(super) fn salvage_seq(path: &Path) -> Option<u64> {
    let conn =
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    let counter: Option<i64> = conn
        .query_row("SELECT value FROM counters WHERE name = 'seq'", [], |r| {
            r.get(0)
        })
        .ok();
    let stored: Option<i64> = conn
        .query_row("SELECT MAX(seq) FROM outbox", [], |r| r.get(0))
        .ok()
        .flatten();
    counter
        .into_iter()
        .chain(stored)
        .max()
        .map(|v| v.max(0) as u64)
}

/// Starts a new outbox's seq counter at `seq`.
pub(super) fn start_seq_at(conn: &Connection, seq: u64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE counters SET value = MAX(value, ?1) WHERE name = 'seq'",
        rusqlite::params![seq as i64],
    )?;
    Ok(())
}
