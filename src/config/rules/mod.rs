//! `[[camera.zone]]` and the rules a zone carries, plus the per-camera
//! `[camera.tracker]` and `[camera.scene]` tables. Documented key by key in
//! `docs/rules.md`.

use serde::{Deserialize, Serialize};

mod checks;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub id: String,
    /// Corners in normalised image coordinates: `[[x, y], …]`, 0..1, at least three.
    pub polygon: Vec<[f64; 2]>,
    /// The point of an object's box that must be inside the polygon.
    #[serde(default)]
    pub anchor: Anchor,
    /// Consecutive analysed frames an object must be inside before it counts as in.
    #[serde(default = "default_inertia")]
    pub inertia: u32,
    /// Local times of day when the zone's rules apply (`"HH:MM-HH:MM"`, may wrap
    /// midnight); empty = always. Outside them open incidents end.
    #[serde(default)]
    pub schedule: Vec<String>,
    #[serde(default)]
    pub litter: Option<LitterConfig>,
    #[serde(default)]
    pub congestion: Option<CongestionConfig>,
    #[serde(default)]
    pub illegal_parking: Option<ParkingConfig>,
    #[serde(default)]
    pub street_vending: Option<DwellConfig>,
    #[serde(default)]
    pub outside_business: Option<DwellConfig>,
    #[serde(default)]
    pub piled_materials: Option<PilesConfig>,
    /// The grid this zone belongs to, when not the camera's (a view across a boundary).
    #[serde(default)]
    pub grid: Option<String>,
    /// The zone's street address, when not the camera's.
    #[serde(default)]
    pub address: Option<String>,
}

fn default_inertia() -> u32 {
    1
}

/// `anchor`: which point of a box decides whether the object is in a zone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// Where a person or vehicle touches the ground.
    #[default]
    BottomCenter,
    Center,
    TopCenter,
}

/// `litter`: an item that appears on the ground and stays.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LitterConfig {
    /// Detector labels that are litter (a city's litter model has its own).
    #[serde(default)]
    pub classes: Vec<String>,
    /// New still regions found by the scene model count as items too (model-agnostic).
    #[serde(default = "default_true")]
    pub static_change: bool,
    /// Smallest and largest still region taken as an item, fraction of the frame area.
    #[serde(default = "default_litter_min_area")]
    pub min_area: f32,
    #[serde(default = "default_litter_max_area")]
    pub max_area: f32,
    /// An item must stay this long before the incident starts.
    #[serde(default = "default_litter_dwell_s")]
    pub dwell_s: f64,
    /// The spot must be clean this long before the incident ends (`resolved`).
    #[serde(default = "default_litter_clear_s")]
    pub clear_s: f64,
    /// A track of these classes next to the item when it appeared, that then walked
    /// away, is named as the one who threw it.
    #[serde(default = "default_person")]
    pub thrower_classes: Vec<String>,
    /// "Next to": item within this many of the person's box heights of the person's box.
    #[serde(default = "default_thrower_distance")]
    pub thrower_distance: f32,
    /// After an incident ends, the same spot starts no new one for this long.
    #[serde(default = "default_cooldown_s")]
    pub cooldown_s: f64,
}

fn default_litter_min_area() -> f32 {
    0.0002
}
fn default_litter_max_area() -> f32 {
    0.01
}
fn default_litter_dwell_s() -> f64 {
    10.0
}
fn default_litter_clear_s() -> f64 {
    10.0
}
fn default_person() -> Vec<String> {
    vec!["person".into()]
}
fn default_thrower_distance() -> f32 {
    0.5
}
fn default_cooldown_s() -> f64 {
    30.0
}
fn default_true() -> bool {
    true
}

/// `levels` / `occupancy`: thresholds of the three congestion levels.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    pub light: f64,
    pub moderate: f64,
    pub heavy: f64,
}

/// `congestion`: too many objects, too much of the zone covered, moving too slowly.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CongestionConfig {
    /// Detector labels that count (people for a crowd; cars, buses, trucks for traffic).
    #[serde(default = "default_person")]
    pub classes: Vec<String>,
    /// Object counts at which each level begins.
    pub levels: Levels,
    /// Optional: fraction of the zone covered by the objects' boxes at which each level begins.
    #[serde(default)]
    pub occupancy: Option<Levels>,
    /// Optional: when the median speed of the counted objects (box heights per second)
    /// is above this, traffic is flowing and it is not congestion.
    #[serde(default)]
    pub max_speed: Option<f64>,
    /// The condition must hold this long before the incident starts…
    #[serde(default = "default_min_duration_s")]
    pub min_duration_s: f64,
    /// …and be gone this long before it ends (hysteresis).
    #[serde(default = "default_clear_duration_s")]
    pub clear_duration_s: f64,
    /// At most one `update` this often, when the level or count changed.
    #[serde(default = "default_update_interval_s")]
    pub update_interval_s: f64,
    /// After an end, no new start for this long.
    #[serde(default)]
    pub cooldown_s: f64,
}

fn default_min_duration_s() -> f64 {
    5.0
}
fn default_clear_duration_s() -> f64 {
    10.0
}
fn default_update_interval_s() -> f64 {
    30.0
}

/// `illegal_parking`: vehicles standing still in a no-parking zone.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ParkingConfig {
    #[serde(default = "default_parking_classes")]
    pub classes: Vec<String>,
    /// An object must stand still this long to count as parked.
    #[serde(default = "default_parking_stationary_s")]
    pub min_stationary_s: f64,
    /// The incident starts when at least this many are parked.
    #[serde(default = "default_one")]
    pub min_count: u32,
    #[serde(default = "default_clear_duration_s")]
    pub clear_s: f64,
    #[serde(default = "default_update_interval_s")]
    pub update_interval_s: f64,
    #[serde(default)]
    pub cooldown_s: f64,
}

fn default_parking_classes() -> Vec<String> {
    vec!["bicycle".into(), "motorcycle".into()]
}
fn default_parking_stationary_s() -> f64 {
    60.0
}
fn default_one() -> u32 {
    1
}

/// `street_vending` / `outside_business`: people and still objects that stay.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DwellConfig {
    #[serde(default = "default_person")]
    pub people_classes: Vec<String>,
    /// Detector labels of the stall or the goods (tables, chairs, umbrellas…).
    #[serde(default)]
    pub object_classes: Vec<String>,
    /// New still regions found by the scene model count as objects too.
    #[serde(default = "default_true")]
    pub static_change: bool,
    /// People and objects must stay this long.
    #[serde(default = "default_dwell_s")]
    pub min_dwell_s: f64,
    #[serde(default = "default_one")]
    pub min_people: u32,
    #[serde(default = "default_one")]
    pub min_objects: u32,
    /// Local times of day when this rule applies (`"HH:MM-HH:MM"`); empty = the zone's schedule.
    #[serde(default)]
    pub hours: Vec<String>,
    #[serde(default = "default_dwell_clear_s")]
    pub clear_s: f64,
    #[serde(default = "default_dwell_update_s")]
    pub update_interval_s: f64,
    #[serde(default)]
    pub cooldown_s: f64,
}

fn default_dwell_s() -> f64 {
    300.0
}
fn default_dwell_clear_s() -> f64 {
    60.0
}
fn default_dwell_update_s() -> f64 {
    300.0
}

/// `piled_materials`: a large new still region.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PilesConfig {
    /// Smallest region, fraction of the frame area.
    #[serde(default = "default_piles_min_area")]
    pub min_area: f32,
    #[serde(default = "default_piles_duration_s")]
    pub min_duration_s: f64,
    #[serde(default = "default_clear_duration_s")]
    pub clear_s: f64,
    #[serde(default = "default_cooldown_s")]
    pub cooldown_s: f64,
}

fn default_piles_min_area() -> f32 {
    0.01
}
fn default_piles_duration_s() -> f64 {
    120.0
}

/// `[camera.tracker]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerConfig {
    /// Detections at or above are matched first.
    pub high_score: f32,
    /// Detections between this and `high_score` only keep confirmed tracks alive.
    pub low_score: f32,
    /// An unmatched detection at or above starts a new (tentative) track.
    pub new_track_score: f32,
    /// Frames a new track must be matched in a row before it gets an id.
    pub confirm_frames: u32,
    /// A track unseen this long is forgotten.
    pub lost_timeout_s: f64,
}

impl Default for TrackerConfig {
    /// The documented defaults; `node` maps these keys onto the tracker, and a test
    /// there checks they equal the tracker's own defaults.
    fn default() -> Self {
        Self {
            high_score: 0.4,
            low_score: 0.1,
            new_track_score: 0.45,
            confirm_frames: 3,
            lost_timeout_s: 2.0,
        }
    }
}

/// `[camera.scene]`: the clean-reference model and the motion gate.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SceneConfig {
    /// Build the reference and find still changes (needed by `static_change` rules).
    pub enabled: bool,
    /// Skip the detector on frames where nothing moves…
    pub motion_gate: bool,
    /// …but run it at least this often, so still objects are re-checked.
    pub recheck_s: f64,
    /// Fraction of the picture that must change between frames to count as motion.
    pub motion_threshold: f32,
    /// Only motion inside the camera's zones counts (all of the picture when it has none).
    pub motion_in_zones: bool,
    /// Grey-level difference from the reference that counts as a change.
    pub diff_threshold: u8,
    /// A change must stay still this long to be reported.
    pub still_s: f64,
    /// A still change older than this becomes part of the reference.
    pub absorb_s: f64,
    /// Make the grey image from the decoder's luma plane: frames the detector does
    /// not see are never converted to RGB.
    pub from_luma: bool,
}

impl Default for SceneConfig {
    /// The documented defaults; `node` maps these keys onto the scene model, and a
    /// test there checks they equal the model's own defaults.
    fn default() -> Self {
        Self {
            enabled: true,
            motion_gate: false,
            recheck_s: 2.0,
            motion_threshold: 0.002,
            motion_in_zones: true,
            diff_threshold: 25,
            still_s: 2.0,
            absorb_s: 1800.0,
            from_luma: false,
        }
    }
}

/// A `"HH:MM-HH:MM"` window, in minutes after midnight (`end` < `start` wraps midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    pub start: u16,
    pub end: u16,
}

impl TimeWindow {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a time window like \"07:00-19:30\"");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let hm = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
        };
        let (start, end) = (hm(a).ok_or_else(bad)?, hm(b).ok_or_else(bad)?);
        if start == end {
            return Err(format!("{s:?} is empty (start = end)"));
        }
        Ok(Self { start, end })
    }

    pub fn contains(&self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_windows_parse_and_wrap_midnight() {
        let day = TimeWindow::parse("07:00-19:30").unwrap();
        assert!(day.contains(7 * 60));
        assert!(day.contains(19 * 60 + 29));
        assert!(!day.contains(19 * 60 + 30));
        let night = TimeWindow::parse("22:00-06:00").unwrap();
        assert!(night.contains(23 * 60));
        assert!(night.contains(60));
        assert!(!night.contains(12 * 60));
        for bad in ["7-19", "07:00", "25:00-01:00", "07:60-08:00", "08:00-08:00"] {
            assert!(TimeWindow::parse(bad).is_err(), "{bad}");
        }
        assert!(
            TimeWindow::parse("00:00-24:00")
                .unwrap()
                .contains(23 * 60 + 59)
        );
    }
}
