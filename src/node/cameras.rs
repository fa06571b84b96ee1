//! Which cameras run, with no I/O: the decisions behind `camera/enable`,
//! `camera/disable`, `reload` and the restart of a camera whose thread died.
//!
//! [`CameraSet`] holds the configuration in force, the cameras running (each
//! run with its own generation, so the end of an old run is never taken for
//! the end of a new one), the cameras disabled by command, and the restarts
//! waiting for their backoff. Every method returns the [`Action`]s the node
//! must carry out — start this camera, stop that one — and the node does
//! exactly that, so the set is tested here without a camera, a model or a
//! broker.
//!
//! Reload compares the typed configuration sections (`PartialEq`): a change
//! to anything but `[[camera]]` needs a restart and changes nothing; a camera
//! whose table changed is restarted, a new one started, a removed one
//! stopped, an unchanged one left alone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::config::{CameraConfig, Config};

/// A camera that ran this long before its thread died starts its backoff afresh.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// The first restart of a camera whose thread died comes 1–2 s later (long enough
/// for the `error` state to be published), then 2–4 s, … up to a minute.
const RESTART_MIN: Duration = Duration::from_secs(2);
const RESTART_MAX: Duration = Duration::from_secs(60);

/// What the node must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a run of this camera (with the configuration now in force).
    Start { camera: String, generation: u64 },
    /// Stop the camera's current run.
    Stop { camera: String },
}

/// What a reload changed, as the command's result reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reloaded {
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    pub restarted: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    generation: u64,
    started: Instant,
}

/// The node's cameras and the decisions about them.
pub struct CameraSet {
    config: Config,
    running: HashMap<String, Run>,
    /// Stopped by `camera/disable` until `camera/enable` (or until removed from the config).
    disabled: HashSet<String>,
    /// Cameras whose thread died, and when they start again.
    restarts: BTreeMap<String, Instant>,
    backoff: HashMap<String, Backoff>,
    generation: u64,
}

impl CameraSet {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            running: HashMap::new(),
            disabled: HashSet::new(),
            restarts: BTreeMap::new(),
            backoff: HashMap::new(),
            generation: 0,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn camera(&self, id: &str) -> Option<&CameraConfig> {
        self.config.cameras.iter().find(|c| c.id == id)
    }

    /// Whether `id` has a run going now.
    pub fn is_running(&self, id: &str) -> bool {
        self.running.contains_key(id)
    }

    /// Whether the node still has something to wait for: a camera running, one
    /// disabled (it may be enabled again) or a restart due.
    pub fn active(&self) -> bool {
        !self.running.is_empty() || !self.disabled.is_empty() || !self.restarts.is_empty()
    }

    /// The next restart that is due, if any.
    pub fn next_restart(&self) -> Option<Instant> {
        self.restarts.values().min().copied()
    }

    /// Starts every enabled camera of the configuration.
    pub fn start_configured(&mut self, now: Instant) -> Vec<Action> {
        let ids: Vec<String> = self
            .config
            .cameras
            .iter()
            .filter(|c| c.enabled)
            .map(|c| c.id.clone())
            .collect();
        ids.into_iter().map(|id| self.start(id, now)).collect()
    }

    fn start(&mut self, camera: String, now: Instant) -> Action {
        self.generation += 1;
        self.restarts.remove(&camera);
        self.running.insert(
            camera.clone(),
            Run {
                generation: self.generation,
                started: now,
            },
        );
        Action::Start {
            camera,
            generation: self.generation,
        }
    }

    /// Stops `id` if it runs or waits for a restart; `Some` if it ran.
    fn stop(&mut self, id: &str) -> Option<Action> {
        self.restarts.remove(id);
        self.running.remove(id).map(|_| Action::Stop {
            camera: id.to_string(),
        })
    }

    fn known(&self, id: &str) -> Result<(), String> {
        match self.camera(id) {
            Some(_) => Ok(()),
            None => Err(format!("no camera {id:?} on this node")),
        }
    }

    /// `camera/disable`: stops the camera until it is enabled. The flag tells whether
    /// anything changed.
    pub fn disable(&mut self, id: &str) -> Result<(Vec<Action>, bool), String> {
        self.known(id)?;
        let waiting = self.restarts.contains_key(id);
        let stop = self.stop(id);
        let changed = self.disabled.insert(id.to_string()) || stop.is_some() || waiting;
        Ok((stop.into_iter().collect(), changed))
    }

    /// `camera/enable`: starts the camera unless it runs.
    pub fn enable(&mut self, id: &str, now: Instant) -> Result<(Vec<Action>, bool), String> {
        self.known(id)?;
        self.disabled.remove(id);
        if self.running.contains_key(id) {
            return Ok((Vec::new(), false));
        }
        Ok((vec![self.start(id.to_string(), now)], true))
    }

    /// A run ended by itself (its source ended or failed for good). `false` if it was
    /// not the current run of the camera (an older run winding down after a restart).
    pub fn ended(&mut self, id: &str, generation: u64) -> bool {
        let current = self
            .running
            .get(id)
            .is_some_and(|r| r.generation == generation);
        if current {
            self.running.remove(id);
        }
        current
    }

    /// A run ended because a thread of the camera died: it starts again after its
    /// backoff. Returns the wait, or `None` if that was not the current run.
    pub fn died(&mut self, id: &str, generation: u64, now: Instant) -> Option<Duration> {
        let run = *self
            .running
            .get(id)
            .filter(|r| r.generation == generation)?;
        self.running.remove(id);
        let backoff = self
            .backoff
            .entry(id.to_string())
            .or_insert_with(|| Backoff::new(RESTART_MIN, RESTART_MAX));
        if now.saturating_duration_since(run.started) >= HEALTHY_RUN {
            backoff.reset();
        }
        let wait = backoff.next_delay();
        self.restarts.insert(id.to_string(), now + wait);
        Some(wait)
    }

    /// Restarts whose wait is over.
    pub fn due(&mut self, now: Instant) -> Vec<Action> {
        let due: Vec<String> = self
            .restarts
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        due.into_iter().map(|id| self.start(id, now)).collect()
    }

    /// `reload`: takes `new` if only `[[camera]]` tables changed. `labels` are the
    /// model's, for the classes rules name.
    pub fn reload(
        &mut self,
        new: Config,
        labels: &[String],
        now: Instant,
    ) -> Result<(Vec<Action>, Reloaded), String> {
        let old = &self.config;
        let sections = [
            ("node", old.node == new.node),
            ("mqtt", old.mqtt == new.mqtt),
            ("model", old.model == new.model),
            ("detector", old.detector == new.detector),
            ("outbox", old.outbox == new.outbox),
            ("evidence", old.evidence == new.evidence),
        ];
        let changed: Vec<&str> = sections
            .iter()
            .filter(|(_, same)| !same)
            .map(|(name, _)| *name)
            .collect();
        if !changed.is_empty() {
            return Err(format!(
                "changes to [{}] need a restart; nothing was changed",
                changed.join("], [")
            ));
        }
        for (key, class) in new.referenced_classes() {
            if !labels.contains(&class) {
                return Err(format!(
                    "`{key}`: class {class:?} is not a label of the model; nothing was changed"
                ));
            }
        }
        let old = std::mem::replace(&mut self.config, new);
        let mut actions = Vec::new();
        let mut report = Reloaded::default();
        for cam in &old.cameras {
            if self.camera(&cam.id).is_none() {
                actions.extend(self.stop(&cam.id));
                self.disabled.remove(&cam.id);
                report.stopped.push(cam.id.clone());
            }
        }
        for cam in self.config.cameras.clone() {
            let same = old.cameras.contains(&cam);
            let live = self.running.contains_key(&cam.id) || self.restarts.contains_key(&cam.id);
            if same && (live || !cam.enabled) {
                continue;
            }
            let was_running = self.stop(&cam.id);
            let stopped = was_running.is_some();
            actions.extend(was_running);
            if cam.enabled && !self.disabled.contains(&cam.id) {
                actions.push(self.start(cam.id.clone(), now));
                if stopped {
                    report.restarted.push(cam.id.clone());
                } else {
                    report.started.push(cam.id.clone());
                }
            } else if stopped {
                report.stopped.push(cam.id.clone());
            }
        }
        Ok((actions, report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const LABELS: [&str; 3] = ["person", "bicycle", "cup"];

    fn labels() -> Vec<String> {
        LABELS.iter().map(|s| s.to_string()).collect()
    }

    fn config(cameras: &str) -> Config {
        let text = format!(
            "[node]\nid = \"n\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n\
             [outbox]\npath = \"/tmp/o.sqlite\"\n{cameras}"
        );
        Config::from_str_at(&text, Path::new("/etc/streetwatch/t.toml")).unwrap()
    }

    fn cam(id: &str, extra: &str) -> String {
        format!("[[camera]]\nid = \"{id}\"\nurl = \"{id}.mp4\"\n{extra}\n")
    }

    fn started(actions: &[Action]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Start { camera, .. } => Some(camera.as_str()),
                _ => None,
            })
            .collect()
    }

    fn stopped(actions: &[Action]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Stop { camera } => Some(camera.as_str()),
                _ => None,
            })
            .collect()
    }

    fn generation(a: &Action) -> u64 {
        match a {
            Action::Start { generation, .. } => *generation,
            _ => panic!("not a start: {a:?}"),
        }
    }

    #[test]
    fn enabled_cameras_start_and_the_set_ends_when_they_have() {
        let t0 = Instant::now();
        let mut set = CameraSet::new(config(&format!(
            "{}{}",
            cam("a", ""),
            cam("b", "enabled = false")
        )));
        let start = set.start_configured(t0);
        assert_eq!(started(&start), ["a"]);
        assert!(set.active());
        assert!(set.ended("a", generation(&start[0])));
        assert!(!set.active(), "nothing runs, nothing is disabled");
    }

    #[test]
    fn disable_and_enable() {
        let t0 = Instant::now();
        let mut set = CameraSet::new(config(&cam("a", "")));
        set.start_configured(t0);
        let (actions, changed) = set.disable("a").unwrap();
        assert_eq!((stopped(&actions), changed), (vec!["a"], true));
        // A disabled camera keeps the node waiting: it may be enabled again.
        assert!(set.active() && !set.is_running("a"));
        assert_eq!(set.disable("a").unwrap(), (vec![], false));
        let (actions, changed) = set.enable("a", t0).unwrap();
        assert_eq!((started(&actions), changed), (vec!["a"], true));
        assert_eq!(set.enable("a", t0).unwrap(), (vec![], false));
        assert!(
            set.disable("nope")
                .unwrap_err()
                .contains("no camera \"nope\"")
        );
        assert!(set.enable("nope", t0).is_err());
    }

    #[test]
    fn the_end_of_an_old_run_does_not_stop_the_new_one() {
        let t0 = Instant::now();
        let mut set = CameraSet::new(config(&cam("a", "")));
        let first = generation(&set.start_configured(t0)[0]);
        set.disable("a").unwrap();
        let second = generation(&set.enable("a", t0).unwrap().0[0]);
        assert_ne!(first, second);
        // The first run winds down after the second started.
        assert!(!set.ended("a", first));
        assert!(set.is_running("a"));
        assert!(set.ended("a", second));
    }

    #[test]
    fn a_dead_camera_restarts_after_a_growing_backoff() {
        let t0 = Instant::now();
        let mut set = CameraSet::new(config(&cam("a", "")));
        let mut gen_ = generation(&set.start_configured(t0)[0]);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..4 {
            let wait = set.died("a", gen_, now).unwrap();
            waits.push(wait);
            assert!(set.active() && !set.is_running("a"));
            assert!(set.due(now + wait - Duration::from_millis(1)).is_empty());
            now += wait;
            let again = set.due(now);
            assert_eq!(started(&again), ["a"]);
            gen_ = generation(&again[0]);
        }
        // Nominal waits 2, 4, 8, 16 s, each drawn between half and all of it.
        for (w, nominal) in waits.iter().zip([2000u64, 4000, 8000, 16000]) {
            let nominal = Duration::from_millis(nominal);
            assert!(*w >= nominal / 2 && *w <= nominal, "{waits:?}");
        }
        // After a healthy run the backoff starts afresh.
        now += HEALTHY_RUN;
        let wait = set.died("a", gen_, now).unwrap();
        assert!(wait <= RESTART_MIN, "{wait:?}");
        // Disabling a camera that waits for its restart cancels the restart.
        set.disable("a").unwrap();
        assert!(set.due(now + Duration::from_secs(5)).is_empty());
        // A stale run's death changes nothing.
        assert_eq!(set.died("a", gen_, now), None);
    }

    #[test]
    fn reload_starts_stops_and_restarts_only_what_changed() {
        let t0 = Instant::now();
        let mut set = CameraSet::new(config(&format!(
            "{}{}{}",
            cam("keep", ""),
            cam("change", ""),
            cam("drop", "")
        )));
        set.start_configured(t0);
        set.disable("keep").unwrap();
        let new = config(&format!(
            "{}{}{}",
            cam("keep", ""),
            cam("change", "fps = 2"),
            cam("new", "")
        ));
        let (actions, report) = set.reload(new, &labels(), t0).unwrap();
        assert_eq!(
            report,
            Reloaded {
                started: vec!["new".into()],
                stopped: vec!["drop".into()],
                restarted: vec!["change".into()],
            }
        );
        assert_eq!(stopped(&actions), ["drop", "change"]);
        assert_eq!(started(&actions), ["change", "new"]);
        // The disabled camera stays disabled.
        assert!(!set.is_running("keep"));
        assert_eq!(set.camera("change").unwrap().fps, 2.0);
    }

    #[test]
    fn reload_refuses_what_needs_a_restart_and_changes_nothing() {
        let t0 = Instant::now();
        let mut set = CameraSet::new(config(&cam("a", "")));
        set.start_configured(t0);
        let mut new = config(&format!("{}{}", cam("a", "fps = 1"), cam("b", "")));
        new.mqtt.topic_prefix = "elsewhere".into();
        new.outbox.max_events = 5;
        let err = set.reload(new, &labels(), t0).unwrap_err();
        assert!(err.contains("[mqtt], [outbox] need a restart"), "{err}");
        assert_eq!(set.camera("a").unwrap().fps, 5.0);
        assert!(set.camera("b").is_none());

        let zone = "[[camera.zone]]\nid = \"z\"\npolygon = [[0, 0], [1, 0], [1, 1]]\n\
                    [camera.zone.litter]\nclasses = [\"bottle\"]\n";
        let err = set
            .reload(config(&cam("a", zone)), &labels(), t0)
            .unwrap_err();
        assert!(err.contains("camera[a].zone[z].litter.classes"), "{err}");
        assert!(set.camera("a").unwrap().zones.is_empty());
    }

    #[test]
    fn reload_of_the_same_file_touches_nothing() {
        let t0 = Instant::now();
        let text = format!("{}{}", cam("a", ""), cam("b", "enabled = false"));
        let mut set = CameraSet::new(config(&text));
        set.start_configured(t0);
        let (actions, report) = set.reload(config(&text), &labels(), t0).unwrap();
        assert!(actions.is_empty(), "{actions:?}");
        assert_eq!(report, Reloaded::default());
    }
}
