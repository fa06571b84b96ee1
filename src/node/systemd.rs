//! What the node tells the service manager (systemd), through the
//! `sd_notify` protocol.
//!
//! In: the stages' beats ([`Beats`]), the cameras' states and the outbox
//! file. Out: datagrams on `$NOTIFY_SOCKET`:
//!
//! | message | when |
//! |---|---|
//! | `READY=1` | the model is loaded, the outbox open and the cameras started |
//! | `STATUS=…` | at READY and at every check: cameras online/total, events in the outbox |
//! | `WATCHDOG=1` | at every check (half of `$WATCHDOG_USEC`), only while no watched stage is stuck |
//! | `RELOADING=1` … `READY=1` | around a reload (SIGHUP or the MQTT `reload` command) |
//! | `STOPPING=1` | when the node begins to stop |
//!
//! The pings come from the checks, and a check pings only when [`Pulse`]
//! finds every stage idle or moving: a wedged detector or publisher stops
//! them, and systemd restarts the service `WatchdogSec` later. Checks come
//! every 10 s when systemd asks for no watchdog, to keep `STATUS=` fresh.
//!
//! Without `$NOTIFY_SOCKET` (a developer's shell, most tests) nothing is sent.
//!
//! Where there is no systemd (a container), the same checks can touch a health
//! file instead of pinging: its modification time is the last check that found
//! every stage moving, and `streetwatch health` judges its age ([`health`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::monitor::heartbeat::{Beat, Beats, Probe, Pulse, Sample};
use crate::monitor::{CameraState, CameraStats};
use crate::mqtt::CommitHook;
use crate::outbox::Handover;

/// How often `STATUS=` is refreshed when systemd asks for no watchdog pings.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// The service manager, as this process found it at start-up.
#[derive(Debug)]
pub struct Manager {
    /// `$NOTIFY_SOCKET` was set: systemd listens.
    listening: bool,
    /// `$WATCHDOG_USEC`, when systemd expects pings from this process.
    watchdog: Option<Duration>,
    /// A failed send was logged already (logged once, not at every ping).
    warned: AtomicBool,
    /// Touched at every check that finds every stage moving (containers).
    health_file: Option<PathBuf>,
}

impl Manager {
    /// The service manager of `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` / `$WATCHDOG_PID`.
    pub fn from_env() -> Self {
        Self {
            listening: std::env::var_os("NOTIFY_SOCKET").is_some_and(|v| !v.is_empty()),
            watchdog: sd_notify::watchdog_enabled().filter(|d| !d.is_zero()),
            warned: AtomicBool::new(false),
            health_file: None,
        }
    }

    /// Also touches `file` at every check that finds every stage moving.
    pub fn with_health_file(mut self, file: Option<PathBuf>) -> Self {
        self.health_file = file;
        self
    }

    /// No service manager: nothing is ever sent.
    pub fn none() -> Self {
        Self {
            listening: false,
            watchdog: None,
            warned: AtomicBool::new(false),
            health_file: None,
        }
    }

    /// The watchdog interval systemd asked for, if any.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog.filter(|_| self.listening)
    }

    /// How often the node checks its stages (and pings, when they move).
    pub fn check_every(&self) -> Duration {
        self.watchdog().map_or(STATUS_EVERY, |w| w / 2)
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.listening {
            return;
        }
        if let Err(e) = sd_notify::notify(states)
            && !self.warned.swap(true, Relaxed)
        {
            tracing::warn!(error = %e, "cannot notify the service manager ($NOTIFY_SOCKET)");
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn reloading(&self) {
        let mut states = vec![NotifyState::Reloading];
        // systemd 253+ wants to know when the reload began.
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        self.send(&states);
    }

    /// The reload is over (done or refused): running again.
    pub fn reloaded(&self) {
        self.send(&[NotifyState::Ready]);
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    fn alive(&self, status: &str) {
        if let Some(file) = &self.health_file
            && let Err(e) = std::fs::write(file, format!("{status}\n"))
            && !self.warned.swap(true, Relaxed)
        {
            tracing::warn!(file = %file.display(), error = %e, "cannot write the health file");
        }
        if self.watchdog().is_some() {
            self.send(&[NotifyState::Watchdog, NotifyState::Status(status)]);
        } else {
            self.status(status);
        }
    }
}

/// The publisher's beat, taken through the commit hook it already calls: one unit
/// done per event committed; its backlog is what waits in the handover queue.
pub fn publisher_beat(
    mut on_commit: CommitHook,
    events: &tokio::sync::mpsc::Sender<Handover>,
) -> (CommitHook, Probe) {
    let beat = Arc::new(Beat::default());
    let counted = beat.clone();
    let hook: CommitHook = Box::new(move |ev| {
        counted.done(1);
        on_commit(ev);
    });
    let queue = events.downgrade();
    let probe = Arc::new(move || {
        let waiting = queue
            .upgrade()
            .map_or(0, |q| (q.max_capacity() - q.capacity()) as u64);
        Sample {
            done: beat.sample().done,
            waiting,
        }
    });
    (hook, probe)
}

/// Whether the health file says the node was moving at most `max_age` ago;
/// `Err` says why not.
pub fn health(file: &Path, max_age: Duration, now: SystemTime) -> Result<String, String> {
    let modified = std::fs::metadata(file)
        .and_then(|m| m.modified())
        .map_err(|e| format!("no health file {}: {e}", file.display()))?;
    let age = now.duration_since(modified).unwrap_or_default();
    let status = std::fs::read_to_string(file).unwrap_or_default();
    let status = status.trim();
    if age > max_age {
        return Err(format!(
            "last check that found every stage moving: {:.0} s ago (more than {:.0} s); {status}",
            age.as_secs_f64(),
            max_age.as_secs_f64()
        ));
    }
    Ok(format!("moving {:.0} s ago: {status}", age.as_secs_f64()))
}

/// Cameras online out of those configured, and events in the outbox.
pub fn status_line(online: usize, total: usize, outbox: Option<u64>) -> String {
    let outbox = match outbox {
        Some(n) => format!("{n} event{} in the outbox", if n == 1 { "" } else { "s" }),
        None => "outbox depth unknown".to_string(),
    };
    format!("{online}/{total} cameras online, {outbox}")
}

/// What `STATUS=` reports, read when asked.
pub struct Status {
    cameras: tokio::sync::watch::Receiver<Vec<(String, Arc<CameraStats>)>>,
    outbox: OutboxDepth,
}

impl Status {
    pub fn new(
        cameras: tokio::sync::watch::Receiver<Vec<(String, Arc<CameraStats>)>>,
        outbox: &Path,
    ) -> Self {
        Self {
            cameras,
            outbox: OutboxDepth {
                path: outbox.to_owned(),
                conn: None,
            },
        }
    }

    pub fn line(&mut self) -> String {
        let (online, total) = {
            let list = self.cameras.borrow();
            let online = list
                .iter()
                .filter(|(_, s)| s.state() == CameraState::Online)
                .count();
            (online, list.len())
        };
        status_line(online, total, self.outbox.read())
    }
}

/// Events waiting in the outbox, read through a read-only connection of its own
/// (the publisher owns the outbox and its writing connection).
struct OutboxDepth {
    path: PathBuf,
    conn: Option<rusqlite::Connection>,
}

impl OutboxDepth {
    fn read(&mut self) -> Option<u64> {
        if self.conn.is_none() {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
            self.conn = rusqlite::Connection::open_with_flags(&self.path, flags).ok();
        }
        let conn = self.conn.as_ref()?;
        let n = conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0))
            .ok();
        if n.is_none() {
            self.conn = None;
        }
        n.map(|n| n.max(0) as u64)
    }
}

/// Checks the stages at the manager's pace until `stop`: pings while none is stuck,
/// refreshes `STATUS=` every time, and says in the log when a stage gets stuck and
/// when it moves again.
pub async fn watch(
    manager: Arc<Manager>,
    beats: Beats,
    mut status: Status,
    stop: CancellationToken,
) {
    let mut pulse = Pulse::default();
    let mut ticks = tokio::time::interval(manager.check_every());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_stuck: Vec<&'static str> = Vec::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let stuck = pulse.check(beats.sample());
        let line = status.line();
        if stuck.is_empty() {
            if !was_stuck.is_empty() {
                tracing::warn!(stages = ?was_stuck, "moving again; watchdog pings resume");
            }
            manager.alive(&line);
        } else {
            if stuck != was_stuck {
                tracing::error!(
                    stages = ?stuck,
                    every_s = manager.check_every().as_secs_f64(),
                    "stuck: work waits and nothing was finished since the last check; watchdog pings stop"
                );
            }
            manager.status(&format!("{line}; stuck: {}", stuck.join(", ")));
        }
        was_stuck = stuck;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(
            status_line(2, 3, Some(17)),
            "2/3 cameras online, 17 events in the outbox"
        );
        assert_eq!(
            status_line(1, 1, Some(1)),
            "1/1 cameras online, 1 event in the outbox"
        );
        assert_eq!(
            status_line(0, 2, None),
            "0/2 cameras online, outbox depth unknown"
        );
    }

    #[test]
    fn without_a_socket_there_is_no_watchdog_and_status_is_refreshed_every_10_s() {
        let m = Manager::none();
        assert_eq!(m.watchdog(), None);
        assert_eq!(m.check_every(), STATUS_EVERY);
        let m = Manager {
            listening: true,
            watchdog: Some(Duration::from_secs(30)),
            warned: AtomicBool::new(false),
            health_file: None,
        };
        assert_eq!(m.check_every(), Duration::from_secs(15));
    }

    #[test]
    fn health_is_the_age_of_the_last_check_that_found_every_stage_moving() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("alive");
        let max = Duration::from_secs(30);
        let err = health(&file, max, SystemTime::now()).unwrap_err();
        assert!(err.contains("no health file"), "{err}");
        let m = Manager::none().with_health_file(Some(file.clone()));
        m.alive("1/1 cameras online, 0 events in the outbox");
        let written = std::fs::metadata(&file).unwrap().modified().unwrap();
        let ok = health(&file, max, written + Duration::from_secs(29)).unwrap();
        assert!(ok.contains("1/1 cameras online"), "{ok}");
        let err = health(&file, max, written + Duration::from_secs(31)).unwrap_err();
        assert!(err.contains("31 s ago"), "{err}");
    }

    #[test]
    fn the_outbox_depth_is_read_from_the_file_the_publisher_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.sqlite");
        let mut depth = OutboxDepth {
            path: path.clone(),
            conn: None,
        };
        assert_eq!(depth.read(), None, "no file yet");
        let mut outbox = crate::outbox::Outbox::open(&path).unwrap();
        assert_eq!(depth.read(), Some(0));
        for n in 0..3 {
            let ev = crate::event::sample(&format!("e{n}"), &format!("i{n}"));
            outbox.commit(ev, "sw").unwrap();
        }
        assert_eq!(depth.read(), Some(3));
        outbox.ack(1).unwrap();
        assert_eq!(depth.read(), Some(2));
    }
}
