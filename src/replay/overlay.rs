//! One annotated replay frame: the picture with people's heads masked, every
//! zone outlined (red and marked `ACTIVE` while it has an open incident, else
//! its rule's colour), confirmed tracks with their ids, the subjects of open
//! incidents in yellow, a banner for each incident that started or ended in
//! the last few seconds, and whether the motion gate held the frame.
//!
//! In: [`Tapped`] frames, in order. Out: RGB pictures. Pure: the incidents'
//! state is kept from the frames' events.

use std::collections::BTreeMap;
use std::time::Duration;

use image::RgbImage;

use crate::config::{CameraConfig, ZoneConfig};
use crate::draw::{Corner, Painter, colour};
use crate::event::{EventObject, Phase};
use crate::evidence::{Policy, privacy};
use crate::pipeline::task::Tapped;
use crate::preview::zone_colour;

/// How long a banner stays, stream time.
pub const BANNER: Duration = Duration::from_secs(4);

/// An incident that has started and not ended.
#[derive(Debug, Clone)]
struct Open {
    zone: String,
    objects: Vec<EventObject>,
}

pub struct Overlay {
    camera: String,
    zones: Vec<ZoneConfig>,
    labels: Vec<String>,
    privacy: Option<Policy>,
    /// Open incidents by id.
    open: BTreeMap<String, Open>,
    /// Banners and when they go.
    banners: Vec<(Duration, String)>,
    font: Option<ab_glyph::FontArc>,
}

impl Overlay {
    pub fn new(cam: &CameraConfig, labels: Vec<String>, privacy: Option<Policy>) -> Self {
        let font = crate::draw::font()
            .map_err(|e| tracing::warn!(error = %e, "annotated video drawn without labels"))
            .ok();
        Self {
            camera: cam.id.clone(),
            zones: cam.zones.clone(),
            labels,
            privacy,
            open: BTreeMap::new(),
            banners: Vec::new(),
            font,
        }
    }

    /// Zones with an open incident.
    pub fn active_zones(&self) -> Vec<&str> {
        let mut z: Vec<&str> = self.open.values().map(|o| o.zone.as_str()).collect();
        z.sort_unstable();
        z.dedup();
        z
    }

    /// Takes the frame's events into account, then draws it.
    pub fn draw(&mut self, t: &Tapped) -> RgbImage {
        let now = t.frame.pts;
        for ev in &t.events {
            match ev.phase {
                Phase::Start | Phase::Update => {
                    self.open.insert(
                        ev.incident.clone(),
                        Open {
                            zone: ev.zone.clone(),
                            objects: ev.objects.clone(),
                        },
                    );
                }
                Phase::End => {
                    self.open.remove(&ev.incident);
                }
            }
            if ev.phase != Phase::Update {
                let text = format!(
                    "{} {} in {} at {}",
                    ev.kind.replace('_', " "),
                    if ev.phase == Phase::Start {
                        "started"
                    } else {
                        "ended"
                    },
                    ev.zone,
                    crate::evidence::clock(now)
                );
                self.banners.push((now + BANNER, text));
            }
        }
        self.banners.retain(|(until, _)| *until > now);

        let (w, h) = (t.frame.width, t.frame.height);
        let mut img = RgbImage::from_raw(w, h, t.frame.data.clone())
            .unwrap_or_else(|| RgbImage::new(w.max(1), h.max(1)));
        let objects: Vec<EventObject> = self
            .open
            .values()
            .flat_map(|o| o.objects.iter().cloned())
            .collect();
        if let Some(policy) = &self.privacy {
            let seen = t.detections.iter().map(|d| {
                let label = self.labels.get(d.class_id).map_or("?", String::as_str);
                (label, d.bbox.to_frac(w, h))
            });
            let masked = privacy::regions(policy, seen, &objects);
            privacy::mask(
                &mut img,
                &masked,
                &privacy::subjects(policy, &objects),
                policy.method,
            );
        }
        let Some(font) = &self.font else {
            return img;
        };
        let active = self.active_zones();
        let mut p = Painter::new(&mut img, font);
        crate::preview::draw_zones_with(&mut p, &self.zones, |z| {
            if active.contains(&z.id.as_str()) {
                (colour::RED, " · ACTIVE")
            } else {
                (zone_colour(z), "")
            }
        });
        for tr in t.tracks.iter().filter(|t| t.visible) {
            let label = self.labels.get(tr.class_id).map_or("?", String::as_str);
            p.tagged(
                &tr.bbox.to_frac(w, h),
                &format!("#{} {label}", tr.id),
                colour::of_class(tr.class_id),
            );
        }
        for o in objects.iter().filter(|o| o.role.is_none()) {
            p.rect(&o.bbox, colour::YELLOW);
        }
        let mut y = p.style.line as i32 * 2;
        for (_, text) in &self.banners {
            let r = p.label(
                (p.style.line as i32 * 2, y),
                text,
                colour::WHITE,
                colour::RED,
            );
            y = r.bottom() + 2;
        }
        let gate = if t.held {
            "motion gate: held (detector skipped)"
        } else {
            "detector ran"
        };
        p.corner(Corner::BottomRight, gate);
        p.corner(
            Corner::BottomLeft,
            &format!("{} · {}", self.camera, crate::evidence::clock(now)),
        );
        img
    }
}
