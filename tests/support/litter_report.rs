//! Litter incidents measured against a scenario's ground truth: which planted
//! items were reported and when, which incidents are about nothing planted,
//! how long after its dwell each started and after its removal each ended,
//! and whether the event names the walker who dropped the item.
//!
//! Pure: truth and published events in, a [`Report`] out (used by
//! `tests/scenarios.rs`, and tested there on hand-made events).

use serde_json::Value;

/// How far a start may come before `appear + dwell_s` (a region's rest time is
/// measured on the analysed frames, 0.2 s apart) and how late after it.
pub const START_EARLY_S: f64 = 0.5;
pub const START_LATE_S: f64 = 3.0;
/// How far an end may come before `remove + clear_s`, and how late after it
/// (an item keeps its spot for one more second after its last sighting).
pub const END_EARLY_S: f64 = 0.5;
pub const END_LATE_S: f64 = 3.0;
/// Smallest IoU between the event's thrower box and the walker's true box.
const THROWER_IOU: f64 = 0.3;

/// A planted item: a truth object with `what = "litter"`.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    /// Normalised `[x0, y0, x1, y1]`.
    pub bbox: [f64; 4],
    pub appear_s: f64,
    pub remove_s: Option<f64>,
    /// The walker who dropped it (`None`: it appeared with nobody near).
    pub thrown_by: Option<String>,
}

/// Someone walking or standing in the clip.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    /// `[t, x0, y0, x1, y1]`: the true box at each point of the path; in between
    /// it moves in a straight line. In view from the first time to the last.
    pub path: Vec<[f64; 5]>,
}

impl Person {
    /// The true box at `t`, if the person is in view then.
    pub fn box_at(&self, t: f64) -> Option<[f64; 4]> {
        let first = self.path.first()?;
        let last = self.path.last()?;
        if t < first[0] || t >= last[0] {
            return None;
        }
        let k = self.path.windows(2).find(|w| w[1][0] > t)?;
        let (a, b) = (k[0], k[1]);
        let f = if b[0] > a[0] {
            (t - a[0]) / (b[0] - a[0])
        } else {
            0.0
        };
        Some(std::array::from_fn(|i| {
            a[i + 1] + f * (b[i + 1] - a[i + 1])
        }))
    }
}

/// The litter rule's timing, from the zone's config.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub dwell_s: f64,
    pub clear_s: f64,
}

/// One litter incident as the published events tell it.
#[derive(Debug, Clone)]
pub struct Incident {
    pub incident: String,
    pub start_s: f64,
    pub item_box: [f64; 4],
    pub cause: String,
    pub thrower_box: Option<[f64; 4]>,
    pub end_s: Option<f64>,
    pub end_reason: Option<String>,
}

/// A planted item and the incident about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub item: String,
    pub start_delay_s: f64,
    /// `end − (remove + clear_s)`, for an item that was taken away.
    pub end_delay_s: Option<f64>,
    pub cause: String,
    /// The walker the event names (their true box matches the thrower's).
    pub thrower: Option<String>,
    /// The end's reason (`None`: no end).
    pub ended: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub planted: usize,
    pub found: Vec<Found>,
    pub missed: Vec<String>,
    /// Incidents about nothing planted (or a second one about the same item).
    pub false_incidents: Vec<String>,
    /// Planted items with a thrower, and how many events named them.
    pub thrown: usize,
    pub attributed: usize,
    /// Everything that fails the scenario, one line each.
    pub problems: Vec<String>,
}

/// The litter incidents of `events` (type `litter`), in order of their start.
pub fn incidents(events: &[Value]) -> Vec<Incident> {
    let mut out: Vec<Incident> = Vec::new();
    for e in events.iter().filter(|e| e["type"] == "litter") {
        let id = e["incident"].as_str().unwrap_or_default().to_string();
        let t = e["stream_time_s"].as_f64().unwrap_or(f64::NAN);
        match e["phase"].as_str() {
            Some("start") => {
                let objects = e["objects"].as_array().cloned().unwrap_or_default();
                let item = objects.iter().find(|o| o.get("role").is_none());
                let thrower = objects.iter().find(|o| o["role"] == "thrower").map(box_of);
                out.push(Incident {
                    incident: id,
                    start_s: t,
                    item_box: item.map(box_of).unwrap_or_default(),
                    cause: e["attributes"]["cause"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    thrower_box: thrower,
                    end_s: None,
                    end_reason: None,
                });
            }
            Some("end") => {
                if let Some(i) = out.iter_mut().find(|i| i.incident == id) {
                    i.end_s = Some(t);
                    i.end_reason = e["attributes"]["reason"].as_str().map(str::to_string);
                }
            }
            _ => {}
        }
    }
    out
}

fn box_of(o: &Value) -> [f64; 4] {
    let b = &o["box"];
    std::array::from_fn(|i| b[i].as_f64().unwrap_or(f64::NAN))
}

fn area(b: &[f64; 4]) -> f64 {
    (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0)
}

fn intersection(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    area(&[
        a[0].max(b[0]),
        a[1].max(b[1]),
        a[2].min(b[2]),
        a[3].min(b[3]),
    ])
}

pub fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let i = intersection(a, b);
    let u = area(a) + area(b) - i;
    if u > 0.0 { i / u } else { 0.0 }
}

/// The same thing: the boxes share at least half of the smaller one, and
/// neither is many times the other (IoU ≥ 0.1).
pub fn overlap(a: &[f64; 4], b: &[f64; 4]) -> bool {
    intersection(a, b) >= 0.5 * area(a).min(area(b)) && iou(a, b) >= 0.1
}

/// The person whose true box best matches `b` at some moment of `[from, to]`.
fn who(people: &[Person], b: &[f64; 4], from: f64, to: f64) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    let steps = ((to - from) / 0.1).ceil().max(0.0) as usize;
    for k in 0..=steps {
        let t = from + k as f64 * 0.1;
        for p in people {
            if let Some(pb) = p.box_at(t) {
                let v = iou(b, &pb);
                if v >= THROWER_IOU && best.is_none_or(|(bv, _)| v > bv) {
                    best = Some((v, &p.id));
                }
            }
        }
    }
    best.map(|(_, id)| id.to_string())
}

/// Every incident of `events` matched to the planted `items`.
pub fn measure(items: &[Item], people: &[Person], timing: Timing, events: &[Value]) -> Report {
    let mut r = Report {
        planted: items.len(),
        thrown: items.iter().filter(|i| i.thrown_by.is_some()).count(),
        ..Report::default()
    };
    let mut taken: Vec<Option<&Incident>> = vec![None; items.len()];
    let incidents = incidents(events);
    for inc in &incidents {
        let lies =
            |i: &Item| i.appear_s <= inc.start_s && i.remove_s.is_none_or(|r| inc.start_s < r);
        let best = items
            .iter()
            .enumerate()
            .filter(|(_, i)| lies(i) && overlap(&i.bbox, &inc.item_box))
            .max_by(|a, b| iou(&a.1.bbox, &inc.item_box).total_cmp(&iou(&b.1.bbox, &inc.item_box)));
        match best {
            Some((k, _)) if taken[k].is_none() => taken[k] = Some(inc),
            Some((k, _)) => r.false_incidents.push(format!(
                "a second incident about {} at {:.1} s",
                items[k].id, inc.start_s
            )),
            None => r.false_incidents.push(format!(
                "an incident about nothing planted at {:.1} s, box {:?}",
                inc.start_s, inc.item_box
            )),
        }
    }
    for (item, inc) in items.iter().zip(&taken) {
        let Some(inc) = inc else {
            r.missed.push(item.id.clone());
            continue;
        };
        let due = item.appear_s + timing.dwell_s;
        let start_delay_s = inc.start_s - due;
        if !(-START_EARLY_S..=START_LATE_S).contains(&start_delay_s) {
            r.problems.push(format!(
                "{}: started at {:.1} s, {start_delay_s:+.1} s after its dwell",
                item.id, inc.start_s
            ));
        }
        let end_delay_s = match item.remove_s {
            Some(removed) => match (inc.end_s, inc.end_reason.as_deref()) {
                (Some(end), Some("resolved")) => {
                    let d = end - (removed + timing.clear_s);
                    if !(-END_EARLY_S..=END_LATE_S).contains(&d) {
                        r.problems.push(format!(
                            "{}: resolved at {end:.1} s, {d:+.1} s after removal + clear_s",
                            item.id
                        ));
                    }
                    Some(d)
                }
                (end, reason) => {
                    r.problems.push(format!(
                        "{}: taken away at {removed:.1} s, but the incident ended at {end:?} ({reason:?})",
                        item.id
                    ));
                    None
                }
            },
            None => {
                if inc
                    .end_reason
                    .as_deref()
                    .is_some_and(|w| w != "stream_ended")
                {
                    r.problems.push(format!(
                        "{}: lies there to the end, but the incident ended at {:?} ({:?})",
                        item.id, inc.end_s, inc.end_reason
                    ));
                }
                None
            }
        };
        let thrower = inc
            .thrower_box
            .and_then(|b| who(people, &b, item.appear_s - 3.0, inc.start_s));
        match (&item.thrown_by, inc.cause.as_str()) {
            (Some(w), "thrown") if thrower.as_ref() == Some(w) => r.attributed += 1,
            (_, "thrown") => r.problems.push(format!(
                "{}: names {thrower:?} as its thrower; it was {:?}",
                item.id, item.thrown_by
            )),
            _ => {}
        }
        r.found.push(Found {
            item: item.id.clone(),
            start_delay_s,
            end_delay_s,
            cause: inc.cause.clone(),
            thrower,
            ended: inc.end_reason.clone(),
        });
    }
    for id in &r.missed {
        r.problems.push(format!("{id}: never reported"));
    }
    for f in &r.false_incidents {
        r.problems.push(format!("false incident: {f}"));
    }
    r
}

impl Report {
    /// `min … max` of some delays, or `–`.
    fn range(v: impl Iterator<Item = f64>) -> String {
        let v: Vec<f64> = v.collect();
        match (
            v.iter().copied().reduce(f64::min),
            v.iter().copied().reduce(f64::max),
        ) {
            (Some(a), Some(b)) => format!("{a:.1} … {b:.1}"),
            _ => "–".into(),
        }
    }

    /// One row of the table in `tests/scenarios/README.md`.
    pub fn row(&self, label: &str) -> String {
        format!(
            "| {label} | {} / {} | {} | {} | {} | {} / {} |",
            self.found.len(),
            self.planted,
            self.false_incidents.len(),
            Self::range(self.found.iter().map(|f| f.start_delay_s)),
            Self::range(self.found.iter().filter_map(|f| f.end_delay_s)),
            self.attributed,
            self.thrown,
        )
    }

    /// What each incident said, one line per planted item.
    pub fn details(&self) -> String {
        let mut s = String::new();
        for f in &self.found {
            s += &format!(
                "  {:<16} start {:+.1} s after dwell, end {} after removal + clear_s, cause {}, thrower {:?}\n",
                f.item,
                f.start_delay_s,
                f.end_delay_s
                    .map_or("–".to_string(), |d| format!("{d:+.1} s")),
                f.cause,
                f.thrower
            );
        }
        for m in &self.missed {
            s += &format!("  {m:<16} missed\n");
        }
        for f in &self.false_incidents {
            s += &format!("  false: {f}\n");
        }
        s
    }
}

/// The incidents of two runs of the same clip tell the same story: the same
/// items, phases, end reasons, causes and throwers, and the same false
/// incidents; each start and end at most `tolerance_s` apart.
pub fn differences(a: &Report, b: &Report, tolerance_s: f64) -> Vec<String> {
    let story = |r: &Report| -> Vec<String> {
        r.found
            .iter()
            .map(|f| {
                format!(
                    "{}: {:?}, cause {}, thrower {:?}",
                    f.item, f.ended, f.cause, f.thrower
                )
            })
            .collect()
    };
    let (sa, sb) = (story(a), story(b));
    let mut out = Vec::new();
    if sa != sb || a.missed != b.missed {
        out.push(format!("different incidents:\n  {sa:?}\n  {sb:?}"));
    }
    if a.false_incidents.len() != b.false_incidents.len() {
        out.push(format!(
            "false incidents: {:?} and {:?}",
            a.false_incidents, b.false_incidents
        ));
    }
    for (x, y) in a
        .found
        .iter()
        .zip(&b.found)
        .filter(|(x, y)| x.item == y.item)
    {
        if (x.start_delay_s - y.start_delay_s).abs() > tolerance_s {
            out.push(format!(
                "{}: starts {:+.1} s and {:+.1} s after the dwell",
                x.item, x.start_delay_s, y.start_delay_s
            ));
        }
        if let (Some(p), Some(q)) = (x.end_delay_s, y.end_delay_s)
            && (p - q).abs() > tolerance_s
        {
            out.push(format!(
                "{}: ends {p:+.1} s and {q:+.1} s after removal",
                x.item
            ));
        }
    }
    out
}
