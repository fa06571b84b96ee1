//! The incidents still open: the latest `start`/`update` event of each, kept
//! in table `open_incident` in the same transaction that stores the event and
//! removed with the one that stores its `end`. Rows are independent of
//! delivery: an open incident stays here after its events are acknowledged.
//!
//! A run that stops cleanly ends every incident, so the table is empty after
//! it. A run that died (power cut, kill -9, a crash) leaves its open incidents
//! here; the next run ends them ([`Outbox::open_incidents`], then
//! [`crate::event::Event::ended_by_restart`]), so the brain's retained
//! open-incident topics are cleared and no incident stays open for ever.

use rusqlite::{Transaction, params};

use super::{Outbox, OutboxError};
use crate::event::{Event, Phase};

/// Keeps `event` (its stored `payload`) as its incident's latest, or forgets the
/// incident on its `end`. Part of the transaction that stores the event.
pub(super) fn record(tx: &Transaction, event: &Event, payload: &[u8]) -> rusqlite::Result<()> {
    match event.phase {
        Phase::Start | Phase::Update => tx.execute(
            "INSERT OR REPLACE INTO open_incident (incident, camera, event) VALUES (?1, ?2, ?3)",
            params![event.incident, event.camera, payload],
        )?,
        Phase::End => tx.execute(
            "DELETE FROM open_incident WHERE incident = ?1",
            params![event.incident],
        )?,
    };
    Ok(())
}

impl Outbox {
    /// The latest stored event of every incident that has not ended, oldest
    /// incident first. Rows that no longer read as events (written by a version
    /// with another schema) are skipped and removed.
    pub fn open_incidents(&self) -> Result<Vec<Event>, OutboxError> {
        let rows: Vec<(String, Vec<u8>)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT incident, event FROM open_incident ORDER BY rowid")
                .map_err(|e| self.err(e))?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect::<Result<_, _>>())
                .map_err(|e| self.err(e))?
        };
        let mut open = Vec::with_capacity(rows.len());
        for (incident, payload) in rows {
            match serde_json::from_slice::<Event>(&payload) {
                Ok(event) => open.push(event),
                Err(e) => {
                    tracing::warn!(incident, error = %e, "an open incident stored by another version cannot be read; forgotten");
                    self.conn
                        .execute(
                            "DELETE FROM open_incident WHERE incident = ?1",
                            params![incident],
                        )
                        .map_err(|e| self.err(e))?;
                }
            }
        }
        Ok(open)
    }
}

impl Outbox {
    /// Ends, at the clock's time of day, every incident an earlier run left open
    /// (it died before it could): each `end` is stored like any event, so it is
    /// published in order and clears the incident's retained topic. How many were
    /// ended; a failure is logged and leaves them for the next start.
    pub fn end_left_open(&mut self, topic_prefix: &str) -> usize {
        let open = match self.open_incidents() {
            Ok(open) => open,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the incidents an earlier run left open");
                return 0;
            }
        };
        let now = self.clock.wall();
        let mut ended = 0;
        for last in open {
            let end = last.ended_by_restart(now);
            match self.commit(end, topic_prefix) {
                Ok(e) => {
                    tracing::info!(camera = %e.camera, zone = %e.zone, incident = %e.incident, kind = %e.kind, started_at = %e.started_at, "incident left open by an earlier run ended (stream_ended)");
                    ended += 1;
                }
                Err(e) => {
                    tracing::error!(error = %e, incident = %last.incident, "cannot end an incident left open by an earlier run; tried again at the next start");
                    break;
                }
            }
        }
        ended
    }
}
