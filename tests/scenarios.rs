//! Scenario clips run end to end: the daemon decodes a clip composed from the
//! real photos and video (a cup dropped on the road, a crowd gathering, a
//! barrier and a motorcycle appearing in a still street, five minutes of a
//! street where walkers drop litter beside parked bicycles and a car), runs
//! the real model and the zone rules, and publishes to a real mosquitto; the
//! events must be what the clip's ground truth says.
//!
//! Each scenario is `tests/scenarios/NAME.toml`: the recipe and ground truth
//! that `tests/support/make_scenarios.py` renders into
//! `$CACHE/media/scenarios/NAME.mp4` (`deploy/setup.sh test-assets`), a
//! `[daemon] camera` snippet appended to the camera's config, and the
//! `[[expect]]` entries checked here (see `tests/scenarios/README.md`).

mod common;
#[path = "support/litter_report.rs"]
mod litter_report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use litter_report::{iou, overlap};

/// One `tests/scenarios/NAME.toml` (its `[recipe]` is the generator's business).
#[derive(Debug, Deserialize)]
struct Scenario {
    scenario: Meta,
    truth: Truth,
    daemon: DaemonPart,
    #[serde(default)]
    expect: Vec<Expect>,
}

#[derive(Debug, Deserialize)]
struct Meta {
    name: String,
    clip: String,
}

#[derive(Debug, Default, Deserialize)]
struct Truth {
    #[serde(default)]
    zone: Vec<TruthZone>,
    #[serde(default)]
    object: Vec<TruthObject>,
    #[serde(default)]
    count: Vec<TruthCount>,
}

#[derive(Debug, Deserialize)]
struct TruthZone {
    id: String,
    polygon: Vec<[f64; 2]>,
}

/// A pasted object: what it is, where (normalised: a still object's `box`, or
/// a moving one's `path` of `[t, x0, y0, x1, y1]`), from when until when.
#[derive(Debug, Deserialize)]
struct TruthObject {
    id: String,
    class: String,
    #[serde(rename = "box")]
    bbox: Option<[f64; 4]>,
    #[serde(default)]
    path: Vec<[f64; 5]>,
    appear_s: f64,
    remove_s: Option<f64>,
    /// What it is to the rules (`litter`, `walker`, …).
    what: Option<String>,
    /// Litter: who dropped it.
    thrown_by: Option<ThrownBy>,
}

/// Who dropped an item: a walker of the recipe (its id), or someone of the
/// background video, by where the detector sees them at a moment.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ThrownBy {
    Walker(String),
    Seen {
        #[serde(rename = "box")]
        bbox: [f64; 4],
        at_s: f64,
    },
}

impl TruthObject {
    /// The box of a still object.
    fn still_box(&self) -> [f64; 4] {
        self.bbox
            .unwrap_or_else(|| panic!("truth object {} has no box: it moves", self.id))
    }
}

/// How many objects of `class` stand in `zone`: `steps` = [[from_s, count], …].
#[derive(Debug, Deserialize)]
struct TruthCount {
    zone: String,
    class: String,
    steps: Vec<(f64, u32)>,
}

impl TruthCount {
    fn at(&self, t: f64) -> u32 {
        self.steps
            .iter()
            .take_while(|(from, _)| *from <= t)
            .last()
            .map_or(0, |(_, n)| *n)
    }
}

#[derive(Debug, Deserialize)]
struct DaemonPart {
    /// TOML appended after the `[[camera]]` table.
    camera: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Phases {
    One(String),
    Many(Vec<String>),
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phases::One(p) => f.write_str(p),
            Phases::Many(ps) => f.write_str(&ps.join("|")),
        }
    }
}

impl Phases {
    fn matches(&self, phase: &str) -> bool {
        match self {
            Phases::One(p) => p == "any" || p == phase,
            Phases::Many(ps) => ps.iter().any(|p| p == phase),
        }
    }
}

/// What the published events must show. The events it is about are those of
/// `type`, `phase` (a name, a list, or "any"), `zone` (if given) whose
/// `attributes` include `attributes`; every other key is a check on them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// A name for `same_incident_as`.
    id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    zone: Option<String>,
    phase: Phases,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    /// Exactly this many such events.
    count: Option<usize>,
    /// At least this many.
    min_count: Option<usize>,
    /// Every one has its `stream_time_s` in [a, b].
    within_s: Option<[f64; 2]>,
    /// There is one, and the first has its `stream_time_s` in [a, b].
    first_within_s: Option<[f64; 2]>,
    /// Every one has an object whose box overlaps this truth object's box…
    overlaps: Option<String>,
    /// …and is of this class.
    class: Option<String>,
    /// Every one belongs to the incident of the one event `id` matched.
    same_incident_as: Option<String>,
    /// Every one's `attributes.level` is the level this zone's true count
    /// (thresholds from the zone's `congestion.levels`) gives at some moment
    /// of [t - lag_s, t].
    level_from_truth: Option<String>,
    lag_s: Option<f64>,
}

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

fn load(name: &str) -> (Scenario, String) {
    let path = scenario_dir().join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let s: Scenario = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(s.scenario.name, name, "{}", path.display());
    (s, text)
}

/// The rendered clip, checked to come from the committed recipe.
fn clip(s: &Scenario, committed: &str) -> PathBuf {
    let name = &s.scenario.name;
    let rendered = common::cached(&format!("media/scenarios/{name}.toml"));
    let used = std::fs::read_to_string(&rendered).unwrap();
    assert!(
        used == committed,
        "{} was rendered from another version of tests/scenarios/{name}.toml: \
         run `deploy/setup.sh test-assets`",
        rendered.display()
    );
    common::cached(&format!("media/scenarios/{}", s.scenario.clip))
}

/// The zones of the `[daemon]` snippet, as parsed TOML tables.
fn snippet_zones(s: &Scenario) -> Vec<toml::Table> {
    let t: toml::Table = toml::from_str(&s.daemon.camera)
        .unwrap_or_else(|e| panic!("{}: [daemon] camera: {e}", s.scenario.name));
    t.get("camera")
        .and_then(|c| c.get("zone"))
        .and_then(|z| z.as_array())
        .map(|zs| zs.iter().filter_map(|z| z.as_table().cloned()).collect())
        .unwrap_or_default()
}

/// The ground truth's zones are the ones the daemon is given.
fn check_zones_agree(s: &Scenario) {
    let zones = snippet_zones(s);
    for tz in &s.truth.zone {
        let z = zones
            .iter()
            .find(|z| z.get("id").and_then(|v| v.as_str()) == Some(tz.id.as_str()))
            .unwrap_or_else(|| panic!("truth zone {} is not in [daemon] camera", tz.id));
        let poly: Vec<[f64; 2]> = z["polygon"]
            .clone()
            .try_into()
            .unwrap_or_else(|e| panic!("zone {} polygon: {e}", tz.id));
        assert_eq!(poly, tz.polygon, "zone {}: daemon and truth differ", tz.id);
    }
}

fn config(broker: &str, outbox: &Path, camera: &str, clip: &Path, snippet: &str) -> String {
    format!(
        r#"
[node]
id = "scenarios"

[mqtt]
url = "{broker}"
topic_prefix = "swtest"

[outbox]
path = "{outbox}"

[[camera]]
id = "{camera}"
url = "{clip}"
fps = 5

{snippet}
"#,
        outbox = outbox.display(),
        clip = clip.display(),
    )
}

/// Runs the daemon over the clip with `snippet`; the events it published, in order.
fn run(s: &Scenario, clip: &Path, snippet: &str) -> Vec<Value> {
    run_counting(s, clip, snippet).0
}

/// Frames the camera's pipeline looked at, and of those, frames the detector ran on.
#[derive(Debug, Clone, Copy)]
struct Looked {
    frames: u64,
    inferences: u64,
}

/// [`run`], with what the daemon's closing summary says of the camera.
fn run_counting(s: &Scenario, clip: &Path, snippet: &str) -> (Vec<Value>, Looked) {
    let broker = common::Mosquitto::start();
    let sub = common::Subscriber::connect(broker.port, "swtest/+/events/#");
    let dir = tempfile::tempdir().unwrap();
    let name = &s.scenario.name;
    let cfg = common::write_config(
        dir.path(),
        &config(
            &broker.url(),
            &dir.path().join("outbox.sqlite"),
            name,
            clip,
            snippet,
        ),
    );
    let stderr = common::run_daemon_to_end(&cfg, "warn");
    let line = stderr
        .lines()
        .find(|l| l.contains(&format!("camera {name}:")))
        .unwrap_or_else(|| panic!("no summary of camera {name}:\n{stderr}"));
    let inferences = common::number_before(line, " analysed");
    let looked = Looked {
        frames: inferences + common::number_before(line, " held by the motion gate"),
        inferences,
    };
    let events = sub
        .drain(Duration::from_secs(2))
        .iter()
        .map(|m| {
            let v: Value = serde_json::from_slice(&m.payload).unwrap_or_else(|e| {
                panic!(
                    "{}: not JSON ({e}): {}",
                    m.topic,
                    String::from_utf8_lossy(&m.payload)
                )
            });
            common::assert_schema_valid(&v);
            assert_eq!(
                m.topic,
                format!(
                    "swtest/scenarios/events/{name}/{}",
                    v["type"].as_str().unwrap()
                ),
                "{v}"
            );
            v
        })
        .collect();
    (events, looked)
}

fn time(e: &Value) -> f64 {
    e["stream_time_s"].as_f64().unwrap()
}

fn boxes(e: &Value) -> Vec<(String, [f64; 4])> {
    e["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let b: Vec<f64> = o["box"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            (
                o["class"].as_str().unwrap().to_string(),
                [b[0], b[1], b[2], b[3]],
            )
        })
        .collect()
}

/// `levels = { light = 3, … }` of the zone's congestion rule, highest first.
fn levels(s: &Scenario, zone: &str) -> Vec<(String, u32)> {
    let z = snippet_zones(s)
        .into_iter()
        .find(|z| z.get("id").and_then(|v| v.as_str()) == Some(zone))
        .unwrap_or_else(|| panic!("no zone {zone} in [daemon] camera"));
    let mut out: Vec<(String, u32)> = z["congestion"]["levels"]
        .as_table()
        .unwrap_or_else(|| panic!("zone {zone} has no congestion.levels"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_integer().unwrap() as u32))
        .collect();
    out.sort_by_key(|l| std::cmp::Reverse(l.1));
    out
}

fn level_of(levels: &[(String, u32)], count: u32) -> Option<&str> {
    levels
        .iter()
        .find(|(_, n)| count >= *n)
        .map(|(l, _)| l.as_str())
}

/// Every expectation the events break, each with the reason.
fn unmet(s: &Scenario, events: &[Value]) -> Vec<String> {
    let mut failures = Vec::new();
    let mut fail = |i: usize, e: &Expect, why: String| {
        let label = e.id.clone().unwrap_or_else(|| format!("#{}", i + 1));
        failures.push(format!("expect {label} ({} {}): {why}", e.kind, e.phase));
    };
    let selected = |e: &Expect| -> Vec<&Value> {
        events
            .iter()
            .filter(|v| v["type"] == e.kind.as_str())
            .filter(|v| e.phase.matches(v["phase"].as_str().unwrap_or("")))
            .filter(|v| e.zone.as_deref().is_none_or(|z| v["zone"] == z))
            .filter(|v| {
                e.attributes
                    .iter()
                    .all(|(k, want)| v["attributes"][k].as_str() == Some(want.as_str()))
            })
            .collect()
    };
    let incident_of = |id: &str| -> Option<String> {
        let e = s.expect.iter().find(|e| e.id.as_deref() == Some(id))?;
        let got = selected(e);
        match got.as_slice() {
            [one] => one["incident"].as_str().map(str::to_string),
            _ => None,
        }
    };

    for (i, e) in s.expect.iter().enumerate() {
        let got = selected(e);
        let times: Vec<f64> = got.iter().map(|v| time(v)).collect();
        if let Some(n) = e.count
            && got.len() != n
        {
            fail(
                i,
                e,
                format!("{} events (at {times:?} s), expected {n}", got.len()),
            );
        }
        if let Some(n) = e.min_count
            && got.len() < n
        {
            fail(i, e, format!("{} events, expected at least {n}", got.len()));
        }
        if let Some([a, b]) = e.within_s
            && let Some(t) = times.iter().find(|t| !(a..=b).contains(*t))
        {
            fail(
                i,
                e,
                format!("one at {t} s, outside [{a}, {b}] (all: {times:?})"),
            );
        }
        if let Some([a, b]) = e.first_within_s {
            match times.iter().copied().reduce(f64::min) {
                None => fail(i, e, "none".into()),
                Some(t) if !(a..=b).contains(&t) => {
                    fail(i, e, format!("the first is at {t} s, not in [{a}, {b}]"))
                }
                _ => {}
            }
        }
        if let Some(id) = &e.overlaps {
            let truth = s
                .truth
                .object
                .iter()
                .find(|o| &o.id == id)
                .unwrap_or_else(|| panic!("overlaps = {id:?}: no such truth object"));
            for v in &got {
                let hit = boxes(v).iter().any(|(class, b)| {
                    overlap(b, &truth.still_box()) && e.class.as_ref().is_none_or(|c| c == class)
                });
                if !hit {
                    fail(
                        i,
                        e,
                        format!(
                            "the event at {} s has no {}object on {id} {:?}: {:?}",
                            time(v),
                            e.class.as_ref().map_or(String::new(), |c| format!("{c} ")),
                            truth.still_box(),
                            boxes(v)
                        ),
                    );
                }
            }
        }
        if let Some(id) = &e.same_incident_as {
            match incident_of(id) {
                None => fail(i, e, format!("`{id}` did not match exactly one event")),
                Some(inc) => {
                    if let Some(v) = got.iter().find(|v| v["incident"] != inc.as_str()) {
                        fail(
                            i,
                            e,
                            format!("the event at {} s is not of incident {inc}", time(v)),
                        );
                    }
                }
            }
        }
        if let Some(zone) = &e.level_from_truth {
            let truth = s
                .truth
                .count
                .iter()
                .find(|c| &c.zone == zone)
                .unwrap_or_else(|| panic!("level_from_truth = {zone:?}: no [[truth.count]]"));
            let levels = levels(s, zone);
            let lag = e.lag_s.unwrap_or(0.0);
            for v in &got {
                let t = time(v);
                // the true count over [t - lag, t]: at t - lag and at every step inside
                let counts: Vec<u32> = std::iter::once(truth.at(t - lag))
                    .chain(
                        truth
                            .steps
                            .iter()
                            .filter(|(from, _)| (t - lag..=t).contains(from))
                            .map(|(_, n)| *n),
                    )
                    .collect();
                let said = v["attributes"]["level"].as_str();
                if !counts.iter().any(|n| level_of(&levels, *n) == said) {
                    fail(
                        i,
                        e,
                        format!(
                            "level {said:?} at {t} s; the true {} count was {counts:?} over [{:.1}, {t}]",
                            truth.class,
                            t - lag
                        ),
                    );
                }
            }
        }
    }
    // Nothing the scenario does not speak of.
    for v in events {
        let known = s.expect.iter().any(|e| {
            v["type"] == e.kind.as_str() && e.zone.as_deref().is_none_or(|z| v["zone"] == z)
        });
        if !known {
            failures.push(format!(
                "unexpected {} event in zone {} at {} s",
                v["type"],
                v["zone"],
                time(v)
            ));
        }
    }
    failures
}

/// One line per event, for failure messages.
fn listing(events: &[Value]) -> String {
    events
        .iter()
        .map(|v| {
            // UUID v7: the end is the random part
            let incident = v["incident"].as_str().unwrap_or("?");
            format!(
                "  {:>6.2} s  {} {} zone={} incident=…{} attributes={} metrics={} objects={:?}",
                time(v),
                v["type"].as_str().unwrap_or("?"),
                v["phase"].as_str().unwrap_or("?"),
                v["zone"].as_str().unwrap_or("?"),
                &incident[incident.len().saturating_sub(8)..],
                v.get("attributes").unwrap_or(&Value::Null),
                v["metrics"],
                boxes(v)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn run_scenario(name: &str) {
    let (s, text) = load(name);
    check_zones_agree(&s);
    let clip = clip(&s, &text);
    let events = run(&s, &clip, &s.daemon.camera);
    let failures = unmet(&s, &events);
    assert!(
        failures.is_empty(),
        "scenario {name}:\n{}\nevents:\n{}",
        failures.join("\n"),
        listing(&events)
    );
}

#[test]
fn litter_dropped_on_the_road_is_reported_once_and_resolved() {
    run_scenario("litter_drop");
}

#[test]
fn growing_crowd_raises_congestion_at_the_true_level() {
    run_scenario("crowd_growth");
}

#[test]
fn objects_that_appear_in_a_still_street_are_found_without_motion() {
    run_scenario("static_object");
}

/// The incidents of a run as the city sees them, without ids: (type, zone, phase)
/// in order of time, with the event's stream time.
fn incidents(events: &[Value]) -> Vec<(String, String, String, f64)> {
    let mut all: Vec<_> = events
        .iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or("?").to_string();
            (s("type"), s("zone"), s("phase"), time(v))
        })
        .collect();
    all.sort_by(|a, b| a.3.total_cmp(&b.3));
    all
}

/// The static-street clips (nothing or little moves): with the motion gate on
/// (only motion inside the zones counts, re-checks every `recheck_s`), the
/// detector runs on at most a third of the frames, and the incidents are the
/// ones of the run with every frame detected, each within `recheck_s` of it;
/// both runs meet the scenario's expectations.
#[test]
fn static_clips_give_the_same_incidents_gated_with_a_third_of_the_inferences() {
    for name in ["static_object"] {
        let (s, text) = load(name);
        check_zones_agree(&s);
        let clip = clip(&s, &text);
        let on = s.daemon.camera.clone();
        assert_eq!(on.matches("motion_gate = true").count(), 1, "{name}: {on}");
        let off = on.replace("motion_gate = true", "motion_gate = false");
        let ((events_off, off_n), (events_on, on_n)) = std::thread::scope(|scope| {
            let a = scope.spawn(|| run_counting(&s, &clip, &off));
            let b = scope.spawn(|| run_counting(&s, &clip, &on));
            (a.join().unwrap(), b.join().unwrap())
        });
        println!(
            "{name}: gate off {} inferences / {} frames; gate on {} / {} ({:.1}× fewer)",
            off_n.inferences,
            off_n.frames,
            on_n.inferences,
            on_n.frames,
            off_n.inferences as f64 / on_n.inferences.max(1) as f64
        );
        let story = format!(
            "gate off:\n{}\ngate on:\n{}",
            listing(&events_off),
            listing(&events_on)
        );
        for (side, events) in [("off", &events_off), ("on", &events_on)] {
            let failures = unmet(&s, events);
            assert!(
                failures.is_empty(),
                "{name}, gate {side}: {failures:?}\n{story}"
            );
        }
        assert_eq!(
            off_n.inferences, off_n.frames,
            "{name}: gate off runs every frame"
        );
        assert_eq!(
            on_n.frames, off_n.frames,
            "{name}: the same frames looked at"
        );
        assert!(
            on_n.inferences * 3 <= on_n.frames,
            "{name}: gate on ran {} inferences on {} frames\n{story}",
            on_n.inferences,
            on_n.frames
        );
        let (a, b) = (incidents(&events_off), incidents(&events_on));
        let same = a.len() == b.len()
            && a.iter().zip(&b).all(|(x, y)| {
                (&x.0, &x.1, &x.2) == (&y.0, &y.1, &y.2)
                    && (x.3 - y.3).abs() <= 2.0 + GATE_TOLERANCE_S
            });
        assert!(same, "{name}: gate off and on differ\n{story}");
    }
}

/// The planted litter of a scenario (truth objects with `what = "litter"`) and
/// the people in it, as the litter report takes them.
fn litter_truth(s: &Scenario) -> (Vec<litter_report::Item>, Vec<litter_report::Person>) {
    let still = |id: &str, b: [f64; 4], from: f64, until: f64| litter_report::Person {
        id: id.to_string(),
        path: vec![
            [from, b[0], b[1], b[2], b[3]],
            [until, b[0], b[1], b[2], b[3]],
        ],
    };
    let mut people: Vec<litter_report::Person> = s
        .truth
        .object
        .iter()
        .filter(|o| o.class == "person")
        .map(|o| match o.bbox {
            Some(b) => still(&o.id, b, o.appear_s, o.remove_s.unwrap_or(f64::MAX)),
            None => litter_report::Person {
                id: o.id.clone(),
                path: o.path.clone(),
            },
        })
        .collect();
    let mut items = Vec::new();
    for o in s
        .truth
        .object
        .iter()
        .filter(|o| o.what.as_deref() == Some("litter"))
    {
        let thrown_by = match &o.thrown_by {
            None => None,
            Some(ThrownBy::Walker(id)) => Some(id.clone()),
            Some(ThrownBy::Seen { bbox, at_s }) => {
                // Seen there for a moment around the drop.
                let id = format!("{}'s thrower", o.id);
                people.push(still(&id, *bbox, at_s - 0.5, at_s + 0.5));
                Some(id)
            }
        };
        items.push(litter_report::Item {
            id: o.id.clone(),
            bbox: o.still_box(),
            appear_s: o.appear_s,
            remove_s: o.remove_s,
            thrown_by,
        });
    }
    (items, people)
}

/// `dwell_s` and `clear_s` of the zone's litter rule in the `[daemon]` snippet.
fn litter_timing(s: &Scenario, zone: &str) -> litter_report::Timing {
    let z = snippet_zones(s)
        .into_iter()
        .find(|z| z.get("id").and_then(|v| v.as_str()) == Some(zone))
        .unwrap_or_else(|| panic!("no zone {zone} in [daemon] camera"));
    let secs = |key: &str| {
        z["litter"][key]
            .as_float()
            .unwrap_or_else(|| panic!("zone {zone}: litter.{key} must be given"))
    };
    litter_report::Timing {
        dwell_s: secs("dwell_s"),
        clear_s: secs("clear_s"),
    }
}

/// With the motion gate on, the detector skips frames where nothing moves and
/// looks again at least every `recheck_s`: a track can be confirmed, or a
/// walker seen to have left, a frame or two later than with every frame
/// detected. Litter incidents of the two runs may be this far apart (two
/// analysed frames at 5 fps).
const GATE_TOLERANCE_S: f64 = 0.4;

/// The street clip (5 min 20 s): every item dropped beside the parked bicycles,
/// beside the parked car or on the cobbles is reported once, after its dwell,
/// and resolved after it is picked up; nothing else is (the man standing still,
/// the bicycle parked and taken away, the cloud, the walkers crossing items);
/// the walker who dropped an item is named when the event names anyone. The
/// same with the motion gate on. The figures go into tests/scenarios/README.md.
#[test]
fn street_litter_is_found_where_it_lies_with_the_gate_off_and_on() {
    let (s, text) = load("street_litter");
    check_zones_agree(&s);
    let clip = clip(&s, &text);
    let off = s.daemon.camera.clone();
    assert_eq!(off.matches("motion_gate = false").count(), 1, "{off}");
    let on = off.replace("motion_gate = false", "motion_gate = true");
    let ((events_off, off_n), (events_on, on_n)) = std::thread::scope(|scope| {
        let a = scope.spawn(|| run_counting(&s, &clip, &off));
        let b = scope.spawn(|| run_counting(&s, &clip, &on));
        (a.join().unwrap(), b.join().unwrap())
    });
    println!(
        "street_litter: gate off {} inferences / {} frames; gate on {} / {}",
        off_n.inferences, off_n.frames, on_n.inferences, on_n.frames
    );
    let (items, people) = litter_truth(&s);
    let timing = litter_timing(&s, "street");
    let off = litter_report::measure(&items, &people, timing, &events_off);
    let on = litter_report::measure(&items, &people, timing, &events_on);
    let table = format!(
        "| motion gate | found / planted | false incidents | start delay after dwell_s (s) | \
         resolution delay after removal + clear_s (s) | thrower named |\n\
         |---|---|---|---|---|---|\n{}\n{}",
        off.row("off"),
        on.row("on")
    );
    println!(
        "{table}\ngate off:\n{}gate on:\n{}",
        off.details(),
        on.details()
    );
    let story = format!(
        "{table}\ngate off:\n{}{}\ngate on:\n{}{}",
        off.details(),
        listing(&events_off),
        on.details(),
        listing(&events_on)
    );
    for events in [&events_off, &events_on] {
        let other: Vec<&Value> = events
            .iter()
            .filter(|v| v["type"] != "litter" || v["zone"] != "street")
            .collect();
        assert!(other.is_empty(), "events of no rule here: {other:?}");
    }
    assert!(
        off.problems.is_empty(),
        "gate off: {:#?}\n{story}",
        off.problems
    );
    assert!(
        on.problems.is_empty(),
        "gate on: {:#?}\n{story}",
        on.problems
    );
    let diff = litter_report::differences(&off, &on, GATE_TOLERANCE_S);
    assert!(
        diff.is_empty(),
        "gate off and on differ: {diff:#?}\n{story}"
    );
}

/// A truth zone as a daemon zone with a congestion rule (updates at most every 5 s).
fn congestion_zone(
    zone: &TruthZone,
    classes: &[&str],
    [light, moderate, heavy]: [u32; 3],
    min_duration_s: f64,
    clear_duration_s: f64,
) -> String {
    format!(
        r#"
[[camera.zone]]
id = "{}"
polygon = {:?}

[camera.zone.congestion]
classes = {classes:?}
levels.light = {light}
levels.moderate = {moderate}
levels.heavy = {heavy}
min_duration_s = {min_duration_s:?}
clear_duration_s = {clear_duration_s:?}
update_interval_s = 5
"#,
        zone.id, zone.polygon
    )
}

/// The crowd clip through a congestion rule that starts at six people: the
/// counts the daemon reports are the ones the clip was built with.
#[test]
fn crowd_clip_counts_match_its_ground_truth() {
    let (s, text) = load("crowd_growth");
    check_zones_agree(&s);
    let clip = clip(&s, &text);
    let zone = &s.truth.zone[0];
    let truth = &s.truth.count[0];
    assert_eq!(
        (truth.zone.as_str(), truth.class.as_str()),
        (zone.id.as_str(), "person")
    );
    let snippet = congestion_zone(zone, &["person"], [6, 8, 10], 2.0, 5.0);
    let events = run(&s, &clip, &snippet);
    let list = listing(&events);
    assert!(events.iter().all(|v| v["type"] == "congestion"), "{list}");

    // One incident: six stand there from 15 s (+ min_duration_s), ten from 25 s,
    // none from 35 s (+ clear_duration_s).
    let starts: Vec<&Value> = events.iter().filter(|v| v["phase"] == "start").collect();
    assert_eq!(starts.len(), 1, "{list}");
    let start = starts[0];
    assert!((17.0..=18.0).contains(&time(start)), "{list}");
    let ends: Vec<&Value> = events.iter().filter(|v| v["phase"] == "end").collect();
    assert_eq!(ends.len(), 1, "{list}");
    assert!((40.0..=41.0).contains(&time(ends[0])), "{list}");
    assert!(
        events.iter().all(|v| v["incident"] == start["incident"]),
        "{list}"
    );
    let ten = events
        .iter()
        .find(|v| v["phase"] == "update" && v["metrics"]["count"] == 10.0)
        .unwrap_or_else(|| panic!("no update with the ten people: {list}"));
    assert!((25.0..=26.0).contains(&time(ten)), "{list}");

    // Each count said is the true one, and each person reported is one of the
    // people standing there at that moment.
    for v in events.iter().filter(|v| v["phase"] != "end") {
        let t = time(v);
        assert_eq!(
            v["metrics"]["count"].as_f64(),
            Some(truth.at(t) as f64),
            "{list}"
        );
        let standing: Vec<&TruthObject> = s
            .truth
            .object
            .iter()
            .filter(|o| o.class == "person" && o.appear_s <= t && o.remove_s.is_none_or(|r| t < r))
            .collect();
        for (class, b) in boxes(v) {
            assert_eq!(class, "person");
            assert!(
                standing.iter().any(|o| iou(&b, &o.still_box()) >= 0.5),
                "a person at {t} s that no truth object is: {b:?}\n{list}"
            );
        }
    }
}

/// An event as the daemon publishes it, for checking the checks above.
fn event(kind: &str, zone: &str, phase: &str, incident: &str, t: f64, extra: Value) -> Value {
    let mut v = serde_json::json!({
        "type": kind, "zone": zone, "phase": phase, "incident": incident,
        "stream_time_s": t, "objects": [], "metrics": {},
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

/// The expectations fail exactly when the events say something else than the
/// ground truth (checked on hand-made events: the rules are the daemon's).
#[test]
fn expectations_hold_only_for_what_the_truth_says() {
    let (litter, _) = load("litter_drop");
    let cup =
        serde_json::json!([{"class": "cup", "score": 0.5, "box": [0.435, 0.452, 0.469, 0.507]}]);
    let thrown = serde_json::json!({"objects": cup, "attributes": {"cause": "thrown"}});
    let good = vec![
        event("litter", "pavement", "start", "a", 16.0, thrown.clone()),
        event(
            "litter",
            "pavement",
            "end",
            "a",
            38.6,
            serde_json::json!({}),
        ),
    ];
    assert_eq!(unmet(&litter, &good), Vec::<String>::new());
    let elsewhere = serde_json::json!({"objects": [{"class": "cup", "score": 0.5, "box": [0.1, 0.1, 0.2, 0.2]}],
        "attributes": {"cause": "thrown"}});
    for (why, events) in [
        (
            "late start",
            vec![
                event("litter", "pavement", "start", "a", 17.4, thrown.clone()),
                good[1].clone(),
            ],
        ),
        (
            "two starts",
            vec![
                good[0].clone(),
                event("litter", "pavement", "start", "b", 16.4, thrown.clone()),
                good[1].clone(),
            ],
        ),
        (
            "wrong place",
            vec![
                event("litter", "pavement", "start", "a", 16.0, elsewhere),
                good[1].clone(),
            ],
        ),
        (
            "no cause",
            vec![
                event(
                    "litter",
                    "pavement",
                    "start",
                    "a",
                    16.0,
                    serde_json::json!({"objects": cup}),
                ),
                good[1].clone(),
            ],
        ),
        (
            "other incident ends",
            vec![
                good[0].clone(),
                event(
                    "litter",
                    "pavement",
                    "end",
                    "b",
                    38.6,
                    serde_json::json!({}),
                ),
            ],
        ),
        (
            "early end",
            vec![
                good[0].clone(),
                event(
                    "litter",
                    "pavement",
                    "end",
                    "a",
                    30.0,
                    serde_json::json!({}),
                ),
            ],
        ),
        ("never ends", vec![good[0].clone()]),
        (
            "other zone",
            vec![
                good[0].clone(),
                good[1].clone(),
                event("litter", "lawn", "start", "c", 20.0, thrown.clone()),
            ],
        ),
    ] {
        assert!(!unmet(&litter, &events).is_empty(), "{why} passed");
    }

    let (crowd, _) = load("crowd_growth");
    let level = |l: &str| serde_json::json!({"attributes": {"level": l}});
    let good = vec![
        event("congestion", "lawn", "start", "c", 7.2, level("light")),
        event("congestion", "lawn", "update", "c", 17.2, level("moderate")),
        event("congestion", "lawn", "update", "c", 27.2, level("heavy")),
        event(
            "congestion",
            "lawn",
            "end",
            "c",
            40.2,
            serde_json::json!({}),
        ),
    ];
    assert_eq!(unmet(&crowd, &good), Vec::<String>::new());
    let mut heavy_early = good.clone();
    heavy_early[1] = event("congestion", "lawn", "update", "c", 17.2, level("heavy"));
    let mut moderate_late = good.clone();
    moderate_late.insert(
        3,
        event("congestion", "lawn", "update", "c", 38.0, level("heavy")),
    );
    moderate_late.insert(
        3,
        event("congestion", "lawn", "update", "c", 44.0, level("moderate")),
    );
    let mut start_moderate = good.clone();
    start_moderate[0] = event("congestion", "lawn", "start", "c", 7.2, level("moderate"));
    for (why, events) in [
        ("heavy with six people", heavy_early),
        ("moderate with nobody left", moderate_late),
        ("moderate with three", start_moderate),
        (
            "no heavy",
            vec![good[0].clone(), good[1].clone(), good[3].clone()],
        ),
    ] {
        assert!(!unmet(&crowd, &events).is_empty(), "{why} passed");
    }
}

/// The still clip through a congestion rule where one motorcycle is enough:
/// the daemon sees the motorcycle from the moment it appears to the clip's end,
/// where the ground truth puts it, although nothing moves in between.
#[test]
fn still_clip_motorcycle_is_seen_where_and_when_the_truth_says() {
    let (s, text) = load("static_object");
    check_zones_agree(&s);
    let clip = clip(&s, &text);
    let zone = s.truth.zone.iter().find(|z| z.id == "kerb_right").unwrap();
    let moto = s
        .truth
        .object
        .iter()
        .find(|o| o.id == "motorcycle")
        .unwrap();
    let snippet = congestion_zone(zone, &["motorcycle", "bicycle"], [1, 2, 3], 0.0, 1.0);
    let events = run(&s, &clip, &snippet);
    let list = listing(&events);
    let [start, end] = events.as_slice() else {
        panic!("expected one start and its end:\n{list}");
    };
    assert_eq!(
        (&start["phase"], &end["phase"]),
        (&"start".into(), &"end".into()),
        "{list}"
    );
    assert_eq!(start["incident"], end["incident"], "{list}");
    // The tracker gives an id after three matched frames (0.4 s at 5 fps).
    assert!(
        (moto.appear_s..=moto.appear_s + 0.6).contains(&time(start)),
        "{list}"
    );
    assert!(time(end) >= 29.5, "it ends only with the clip:\n{list}");
    match boxes(start).as_slice() {
        [(class, b)] => {
            assert_eq!(class, "motorcycle", "{list}");
            assert!(iou(b, &moto.still_box()) >= 0.8, "{list}");
        }
        _ => panic!("one motorcycle, nothing else:\n{list}"),
    }
}

/// The events a perfect litter rule would publish for the street clip: each
/// item's start 0.4 s after its dwell, the walker who dropped it named where
/// they were then, and its end 1.5 s after its removal and `clear_s`.
fn perfect_street_events(s: &Scenario) -> Vec<Value> {
    let (items, people) = litter_truth(s);
    let timing = litter_timing(s, "street");
    let mut events = Vec::new();
    for (k, item) in items.iter().enumerate() {
        let id = format!("i{k}");
        let start = item.appear_s + timing.dwell_s + 0.4;
        let mut objects =
            vec![serde_json::json!({"class": "static_change", "score": 1.0, "box": item.bbox})];
        let cause = match &item.thrown_by {
            Some(w) => {
                let who = people.iter().find(|p| &p.id == w).unwrap();
                let b = who.box_at(item.appear_s).unwrap();
                objects.push(serde_json::json!({"class": "person", "score": 0.8, "box": b, "role": "thrower"}));
                "thrown"
            }
            None => "appeared",
        };
        events.push(event(
            "litter",
            "street",
            "start",
            &id,
            start,
            serde_json::json!({"objects": objects, "attributes": {"cause": cause}}),
        ));
        let (end, reason) = match item.remove_s {
            Some(r) => (r + timing.clear_s + 1.5, "resolved"),
            None => (319.8, "stream_ended"),
        };
        events.push(event(
            "litter",
            "street",
            "end",
            &id,
            end,
            serde_json::json!({"attributes": {"reason": reason}}),
        ));
    }
    events.sort_by(|a, b| time(a).total_cmp(&time(b)));
    events
}

/// The litter report counts exactly what the truth says (checked on
/// hand-made events): every planted item found, nothing false, the right
/// walkers named; and each way of getting it wrong is a failure.
#[test]
fn the_litter_report_holds_only_for_what_the_truth_says() {
    let (s, _) = load("street_litter");
    let (items, people) = litter_truth(&s);
    let timing = litter_timing(&s, "street");
    let measure = |events: &[Value]| litter_report::measure(&items, &people, timing, events);
    let good = perfect_street_events(&s);
    let r = measure(&good);
    assert_eq!(r.problems, Vec::<String>::new());
    assert_eq!((r.found.len(), r.planted), (items.len(), items.len()));
    assert_eq!(r.attributed, r.thrown);
    assert!(r.thrown >= 5, "the street has walkers who drop litter");
    assert!(litter_report::differences(&r, &r, GATE_TOLERANCE_S).is_empty());

    let nth_start = |events: &[Value], n: usize| {
        events
            .iter()
            .enumerate()
            .filter(|(_, e)| e["phase"] == "start")
            .nth(n)
            .map(|(i, _)| i)
            .unwrap()
    };
    let thrown_start = nth_start(&good, 0);
    assert_eq!(good[thrown_start]["attributes"]["cause"], "thrown");
    let appeared = good
        .iter()
        .position(|e| e["phase"] == "start" && e["attributes"]["cause"] == "appeared")
        .expect("an item that appeared with nobody near");
    let removed_end = good
        .iter()
        .position(|e| e["attributes"]["reason"] == "resolved")
        .unwrap();
    let mut cases: Vec<(&str, Vec<Value>)> = Vec::new();
    let mut missed = good.clone();
    let id = missed[thrown_start]["incident"].clone();
    missed.retain(|e| e["incident"] != id);
    cases.push(("a missed item", missed));
    let mut false_one = good.clone();
    false_one.push(event(
        "litter",
        "street",
        "start",
        "x",
        100.0,
        serde_json::json!({"objects": [{"class": "static_change", "box": [0.9, 0.9, 0.95, 0.95]}], "attributes": {"cause": "appeared"}}),
    ));
    cases.push(("a false incident", false_one));
    let mut twice = good.clone();
    let mut again = good[thrown_start].clone();
    again["incident"] = "again".into();
    again["stream_time_s"] = (time(&again) + 2.0).into();
    twice.push(again);
    cases.push(("a second incident about one item", twice));
    let mut late = good.clone();
    late[thrown_start]["stream_time_s"] = (time(&late[thrown_start]) + 4.0).into();
    cases.push(("a late start", late));
    let mut early_end = good.clone();
    early_end[removed_end]["stream_time_s"] = (time(&early_end[removed_end]) - 6.0).into();
    cases.push(("an end before the removal", early_end));
    let mut unresolved = good.clone();
    unresolved.remove(removed_end);
    cases.push(("a removed item never resolved", unresolved));
    let mut wrong = good.clone();
    wrong[thrown_start]["objects"][1]["box"] = serde_json::json!([0.9, 0.1, 0.95, 0.3]);
    cases.push(("someone else named", wrong));
    let mut accused = good.clone();
    accused[appeared]["attributes"]["cause"] = "thrown".into();
    cases.push(("an item nobody dropped said thrown", accused));
    for (why, events) in cases {
        assert!(!measure(&events).problems.is_empty(), "{why} passed");
    }

    // Not naming the thrower is counted, not failed.
    let mut unnamed = good.clone();
    unnamed[thrown_start]["attributes"]["cause"] = "appeared".into();
    let r2 = measure(&unnamed);
    assert!(r2.problems.is_empty(), "{:?}", r2.problems);
    assert_eq!(r2.attributed, r.attributed - 1);

    // Two runs differ when an incident differs, or a time by more than the tolerance.
    assert!(!litter_report::differences(&r, &r2, GATE_TOLERANCE_S).is_empty());
    let mut shifted = good.clone();
    shifted[thrown_start]["stream_time_s"] = (time(&shifted[thrown_start]) + 0.2).into();
    assert!(litter_report::differences(&r, &measure(&shifted), GATE_TOLERANCE_S).is_empty());
    shifted[thrown_start]["stream_time_s"] = (time(&shifted[thrown_start]) + 0.6).into();
    assert!(!litter_report::differences(&r, &measure(&shifted), GATE_TOLERANCE_S).is_empty());
}
