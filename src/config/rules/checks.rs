//! What a zone's rules, the tracker and the scene model accept: ranges and
//! the classes each rule names. Errors are `(key suffix, message)`; the
//! config names the camera and zone in front.

use super::super::polygon;
use super::{Levels, SceneConfig, TimeWindow, TrackerConfig, ZoneConfig};

impl ZoneConfig {
    /// Every `(key suffix, class name)` the zone's rules refer to.
    pub fn classes(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut add = |key: &str, list: &[String]| {
            out.extend(list.iter().map(|c| (key.to_string(), c.clone())));
        };
        if let Some(r) = &self.litter {
            add("litter.classes", &r.classes);
            add("litter.thrower_classes", &r.thrower_classes);
        }
        if let Some(r) = &self.congestion {
            add("congestion.classes", &r.classes);
        }
        if let Some(r) = &self.illegal_parking {
            add("illegal_parking.classes", &r.classes);
        }
        for (name, r) in [
            ("street_vending", &self.street_vending),
            ("outside_business", &self.outside_business),
        ] {
            if let Some(r) = r {
                add(&format!("{name}.people_classes"), &r.people_classes);
                add(&format!("{name}.object_classes"), &r.object_classes);
            }
        }
        out
    }

    /// Checks ranges; errors are `(key suffix after the zone, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: &str| Err((k.to_string(), m.to_string()));
        if self.polygon.len() < 3 {
            return err("polygon", "needs at least three [x, y] corners");
        }
        if let Some(p) = self
            .polygon
            .iter()
            .find(|[x, y]| !(0.0..=1.0).contains(x) || !(0.0..=1.0).contains(y))
        {
            return Err((
                "polygon".into(),
                format!(
                    "corner {p:?} is outside 0..1 (coordinates are fractions of the image width and height)"
                ),
            ));
        }
        polygon::check(&self.polygon).map_err(|m| ("polygon".to_string(), m))?;
        if self.inertia > 1000 {
            return err("inertia", "must be at most 1000 frames");
        }
        for w in &self.schedule {
            TimeWindow::parse(w).map_err(|m| ("schedule".to_string(), m))?;
        }
        let secs = |key: String, v: f64| -> Result<(), (String, String)> {
            if v.is_finite() && (0.0..=7.0 * 86_400.0).contains(&v) {
                Ok(())
            } else {
                Err((key, "must be between 0 and 604800 seconds".into()))
            }
        };
        let area = |key: String, v: f32| -> Result<(), (String, String)> {
            if v.is_finite() && v > 0.0 && v <= 1.0 {
                Ok(())
            } else {
                Err((key, "must be a fraction of the frame area in (0, 1]".into()))
            }
        };
        if let Some(r) = &self.litter {
            if r.classes.is_empty() && !r.static_change {
                return err(
                    "litter.classes",
                    "litter needs detector classes or static_change = true (or both)",
                );
            }
            area("litter.min_area".into(), r.min_area)?;
            area("litter.max_area".into(), r.max_area)?;
            if r.min_area >= r.max_area {
                return err("litter.max_area", "must be larger than litter.min_area");
            }
            secs("litter.dwell_s".into(), r.dwell_s)?;
            secs("litter.clear_s".into(), r.clear_s)?;
            secs("litter.cooldown_s".into(), r.cooldown_s)?;
            if !(r.thrower_distance.is_finite() && r.thrower_distance >= 0.0) {
                return err(
                    "litter.thrower_distance",
                    "must be ≥ 0 (person box heights)",
                );
            }
        }
        if let Some(r) = &self.congestion {
            if r.classes.is_empty() {
                return err("congestion.classes", "must not be empty");
            }
            check_levels("congestion.levels", &r.levels, 1.0, f64::MAX)?;
            if let Some(o) = &r.occupancy {
                check_levels("congestion.occupancy", o, 0.0, 1.0)?;
            }
            if let Some(s) = r.max_speed
                && !(s.is_finite() && s > 0.0)
            {
                return err(
                    "congestion.max_speed",
                    "must be > 0 (box heights per second)",
                );
            }
            secs("congestion.min_duration_s".into(), r.min_duration_s)?;
            secs("congestion.clear_duration_s".into(), r.clear_duration_s)?;
            secs("congestion.update_interval_s".into(), r.update_interval_s)?;
            secs("congestion.cooldown_s".into(), r.cooldown_s)?;
        }
        if let Some(r) = &self.illegal_parking {
            if r.classes.is_empty() {
                return err("illegal_parking.classes", "must not be empty");
            }
            if r.min_count == 0 {
                return err("illegal_parking.min_count", "must be at least 1");
            }
            secs(
                "illegal_parking.min_stationary_s".into(),
                r.min_stationary_s,
            )?;
            secs("illegal_parking.clear_s".into(), r.clear_s)?;
            secs(
                "illegal_parking.update_interval_s".into(),
                r.update_interval_s,
            )?;
            secs("illegal_parking.cooldown_s".into(), r.cooldown_s)?;
        }
        for (name, r) in [
            ("street_vending", &self.street_vending),
            ("outside_business", &self.outside_business),
        ] {
            let Some(r) = r else { continue };
            if r.min_people == 0 && r.min_objects == 0 {
                return Err((
                    format!("{name}.min_people"),
                    "min_people and min_objects cannot both be 0".into(),
                ));
            }
            if r.min_people > 0 && r.people_classes.is_empty() {
                return Err((
                    format!("{name}.people_classes"),
                    "must not be empty when min_people > 0".into(),
                ));
            }
            if r.min_objects > 0 && r.object_classes.is_empty() && !r.static_change {
                return Err((
                    format!("{name}.object_classes"),
                    "min_objects > 0 needs object_classes or static_change = true".into(),
                ));
            }
            for w in &r.hours {
                TimeWindow::parse(w).map_err(|m| (format!("{name}.hours"), m))?;
            }
            secs(format!("{name}.min_dwell_s"), r.min_dwell_s)?;
            secs(format!("{name}.clear_s"), r.clear_s)?;
            secs(format!("{name}.update_interval_s"), r.update_interval_s)?;
            secs(format!("{name}.cooldown_s"), r.cooldown_s)?;
        }
        if let Some(r) = &self.piled_materials {
            area("piled_materials.min_area".into(), r.min_area)?;
            secs("piled_materials.min_duration_s".into(), r.min_duration_s)?;
            secs("piled_materials.clear_s".into(), r.clear_s)?;
            secs("piled_materials.cooldown_s".into(), r.cooldown_s)?;
        }
        Ok(())
    }

    /// Whether any rule of the zone reads still regions from the scene model.
    pub fn uses_static_change(&self) -> bool {
        self.litter.as_ref().is_some_and(|r| r.static_change)
            || self
                .street_vending
                .as_ref()
                .is_some_and(|r| r.static_change)
            || self
                .outside_business
                .as_ref()
                .is_some_and(|r| r.static_change)
            || self.piled_materials.is_some()
    }
}

fn check_levels(key: &str, l: &Levels, min: f64, max: f64) -> Result<(), (String, String)> {
    let ok = |v: f64| v.is_finite() && v >= min && v <= max;
    if !(ok(l.light) && ok(l.moderate) && ok(l.heavy)) {
        return Err((
            key.to_string(),
            format!("light, moderate and heavy must be between {min} and {max}"),
        ));
    }
    if !(l.light <= l.moderate && l.moderate <= l.heavy) {
        return Err((
            key.to_string(),
            "must rise: light ≤ moderate ≤ heavy".to_string(),
        ));
    }
    Ok(())
}

impl TrackerConfig {
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (k, v) in [
            ("high_score", self.high_score),
            ("low_score", self.low_score),
            ("new_track_score", self.new_track_score),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err((format!("tracker.{k}"), "must be between 0 and 1".into()));
            }
        }
        if self.low_score > self.high_score {
            return Err((
                "tracker.low_score".into(),
                "must not be above tracker.high_score".into(),
            ));
        }
        if self.confirm_frames == 0 || self.confirm_frames > 100 {
            return Err((
                "tracker.confirm_frames".into(),
                "must be between 1 and 100".into(),
            ));
        }
        if !(self.lost_timeout_s.is_finite() && (0.0..=600.0).contains(&self.lost_timeout_s)) {
            return Err((
                "tracker.lost_timeout_s".into(),
                "must be between 0 and 600 seconds".into(),
            ));
        }
        Ok(())
    }
}

impl SceneConfig {
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (k, v) in [
            ("recheck_s", self.recheck_s),
            ("still_s", self.still_s),
            ("absorb_s", self.absorb_s),
        ] {
            if !(v.is_finite() && (0.0..=86_400.0).contains(&v)) {
                return Err((
                    format!("scene.{k}"),
                    "must be between 0 and 86400 seconds".into(),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.motion_threshold) {
            return Err((
                "scene.motion_threshold".into(),
                "must be a fraction between 0 and 1".into(),
            ));
        }
        if self.diff_threshold == 0 {
            return Err(("scene.diff_threshold".into(), "must be at least 1".into()));
        }
        Ok(())
    }
}
