//! The outbox's bounds: at most `max_events` undelivered events, none older
//! than `max_age` (by the wall clock at which each was stored, moved with
//! the clock's jumps in this run), and at most
//! `max_evidence_bytes` of evidence JPEGs. Beyond them the oldest go first;
//! every drop is counted in the `counters` table in the same transaction.

use rusqlite::{Transaction, params};

use super::{Outbox, OutboxError};

/// How much the outbox may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_events: u64,
    pub max_age: std::time::Duration,
    /// Evidence JPEGs kept at most, in bytes.
    pub max_evidence_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_events: 1_000_000,
            max_age: std::time::Duration::from_secs(30 * 24 * 3600),
            max_evidence_bytes: 512 << 20,
        }
    }
}

/// Messages dropped by the limits in one enforcement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Events dropped.
    pub count: u64,
    /// Highest seq of an event dropped.
    pub last_seq: u64,
    /// Evidence JPEGs dropped (with their events, or alone for the byte limit).
    pub evidence: u64,
    /// Highest seq whose evidence was dropped.
    pub evidence_last_seq: u64,
}

/// Evidence rows with `seq <= up_to`: (count, bytes, highest seq).
fn evidence_up_to(tx: &Transaction<'_>, up_to: i64) -> rusqlite::Result<(u64, u64, u64)> {
    tx.query_row(
        "SELECT COUNT(*), COALESCE(SUM(length(jpeg)), 0), COALESCE(MAX(seq), 0)
         FROM evidence WHERE seq <= ?1",
        params![up_to],
        |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        },
    )
}

impl Outbox {
    /// Whether more is stored than `max_events` or `max_evidence_bytes` allows.
    pub fn over_capacity(&self) -> bool {
        self.depth > self.limits.max_events || self.evidence_bytes > self.limits.max_evidence_bytes
    }

    /// Drops the oldest events beyond `max_events` and those older than `max_age`, with
    /// their evidence; then the oldest evidence beyond `max_evidence_bytes`.
    pub fn enforce_limits(&mut self) -> Result<Dropped, OutboxError> {
        let cutoff = self.now_ms() - self.limits.max_age.as_millis().min(i64::MAX as u128) as i64;
        let depth = self.depth;
        let overflow = depth.saturating_sub(self.limits.max_events);
        let (evidence_bytes, max_evidence_bytes) =
            (self.evidence_bytes, self.limits.max_evidence_bytes);
        let tx = self.conn.transaction().map_err(|e| OutboxError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        let result = (|| {
            let mut dropped = Dropped::default();
            // Every rule drops a prefix in seq order: the rows beyond `max_events`, and the
            // rows before the first one that is not too old (never a younger one, even
            // where stored times are out of seq order, as after a clock set back).
            let young: Option<i64> = tx.query_row(
                "SELECT MIN(seq) FROM outbox WHERE stored_ms >= ?1",
                params![cutoff],
                |r| r.get(0),
            )?;
            let by_age: i64 = match young {
                Some(seq) => tx.query_row(
                    "SELECT COUNT(*) FROM outbox WHERE seq < ?1",
                    params![seq],
                    |r| r.get(0),
                )?,
                None => depth as i64,
            };
            let n = (by_age as u64).max(overflow);
            let mut evidence_cut: i64 = 0;
            if n > 0 {
                let last_seq: i64 = tx.query_row(
                    "SELECT MAX(seq) FROM (SELECT seq FROM outbox ORDER BY seq LIMIT ?1)",
                    params![n as i64],
                    |r| r.get(0),
                )?;
                let count = tx.execute("DELETE FROM outbox WHERE seq <= ?1", params![last_seq])?;
                dropped.count = count as u64;
                dropped.last_seq = last_seq as u64;
                evidence_cut = last_seq;
            }
            // Evidence outlives its event until acknowledged: the age rule applies to it too.
            let young: Option<i64> = tx.query_row(
                "SELECT MIN(seq) FROM evidence WHERE stored_ms >= ?1",
                params![cutoff],
                |r| r.get(0),
            )?;
            let old: Option<i64> = tx.query_row(
                "SELECT MAX(seq) FROM evidence WHERE seq < ?1",
                params![young.unwrap_or(i64::MAX)],
                |r| r.get(0),
            )?;
            evidence_cut = evidence_cut.max(old.unwrap_or(0));
            let (_, mut freed, _) = evidence_up_to(&tx, evidence_cut)?;
            if evidence_bytes.saturating_sub(freed) > max_evidence_bytes {
                let mut stmt = tx.prepare(
                    "SELECT seq, length(jpeg) FROM evidence WHERE seq > ?1 ORDER BY seq",
                )?;
                let mut rows = stmt.query(params![evidence_cut])?;
                while let Some(row) = rows.next()? {
                    evidence_cut = row.get(0)?;
                    freed += row.get::<_, i64>(1)? as u64;
                    if evidence_bytes.saturating_sub(freed) <= max_evidence_bytes {
                        break;
                    }
                }
            }
            let (count, _, last) = evidence_up_to(&tx, evidence_cut)?;
            if count > 0 {
                tx.execute(
                    "DELETE FROM evidence WHERE seq <= ?1",
                    params![evidence_cut],
                )?;
                dropped.evidence = count;
                dropped.evidence_last_seq = last;
            }
            tx.execute(
                "UPDATE counters SET value = value + ?1 WHERE name = 'dropped'",
                params![dropped.count as i64],
            )?;
            tx.execute(
                "UPDATE counters SET value = value + ?1 WHERE name = 'evidence_dropped'",
                params![dropped.evidence as i64],
            )?;
            Ok((dropped, freed))
        })();
        let done = result.and_then(|d| tx.commit().map(|()| d));
        let (dropped, freed) = done.map_err(|e| self.err(e))?;
        self.depth = self.depth.saturating_sub(dropped.count);
        if dropped.evidence > 0 {
            self.evidence_depth = self.evidence_depth.saturating_sub(dropped.evidence);
            self.evidence_bytes = self.evidence_bytes.saturating_sub(freed);
        }
        Ok(dropped)
    }

    /// Events dropped by the limits since the outbox was created.
    pub fn dropped_total(&self) -> Result<u64, OutboxError> {
        self.counter("dropped")
    }

    /// Evidence JPEGs dropped by the limits since the outbox was created.
    pub fn evidence_dropped_total(&self) -> Result<u64, OutboxError> {
        self.counter("evidence_dropped")
    }
}
