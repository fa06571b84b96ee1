//! Pictures of what a camera sees, for the people who set it up: every zone
//! outlined with its id and rules, the detections with their labels, scores
//! and anchor points (green when the point is inside a zone, so the object
//! counts there), and a legend. `streetwatch preview` and
//! `streetwatch detect --annotate` draw them; replays draw on top of them.
//!
//! In: a frame, the camera's zones, the detector's result and the model's
//! labels. Out: the frame, drawn on, with people's heads masked as in
//! evidence ([`crate::evidence::privacy`]). Pure but for [`grab`], which reads
//! one frame from a camera's source.

use std::sync::Arc;

use image::{Rgb, RgbImage};

use crate::analytics::Zone;
use crate::config::{Anchor, ZoneConfig};
use crate::draw::{Corner, Painter, colour};
use crate::evidence::{Policy, privacy};
use crate::geom::{Detection, FracBox};
use crate::monitor::CameraStats;
use crate::source::runner::{DefaultOpener, Opener, SourceOptions};
use crate::source::{Frame, SourceError};

/// The rules a zone has, by their config names.
pub fn rules_of(z: &ZoneConfig) -> Vec<&'static str> {
    [
        ("litter", z.litter.is_some()),
        ("congestion", z.congestion.is_some()),
        ("illegal_parking", z.illegal_parking.is_some()),
        ("street_vending", z.street_vending.is_some()),
        ("outside_business", z.outside_business.is_some()),
        ("piled_materials", z.piled_materials.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect()
}

/// A zone's colour: its first rule's.
pub fn zone_colour(z: &ZoneConfig) -> Rgb<u8> {
    rules_of(z)
        .first()
        .map_or(colour::WHITE, |r| colour::of_rule(r))
}

pub fn anchor_name(a: Anchor) -> &'static str {
    match a {
        Anchor::BottomCenter => "bottom_center",
        Anchor::Center => "center",
        Anchor::TopCenter => "top_center",
    }
}

/// The point of `b` (fractions) that `anchor` names.
pub fn anchor_point(b: &FracBox, anchor: Anchor) -> (f64, f64) {
    let x = (b[0] + b[2]) as f64 / 2.0;
    let y = match anchor {
        Anchor::BottomCenter => b[3].max(b[1]),
        Anchor::Center => (b[1] + b[3]) / 2.0,
        Anchor::TopCenter => b[1].min(b[3]),
    } as f64;
    (x, y)
}

/// Each zone's outline, with a tab at its top-most corner: `id: rule, rule`.
pub fn draw_zones(p: &mut Painter<'_>, zones: &[ZoneConfig]) {
    draw_zones_with(p, zones, |z| (zone_colour(z), ""));
}

/// [`draw_zones`], each zone in the colour `look` gives it, its tab's text followed by
/// the suffix `look` gives.
pub fn draw_zones_with<'z>(
    p: &mut Painter<'_>,
    zones: &'z [ZoneConfig],
    look: impl Fn(&'z ZoneConfig) -> (Rgb<u8>, &'static str),
) {
    for z in zones {
        p.polygon(&z.polygon, look(z).0);
    }
    let (w, h) = p.img.dimensions();
    for z in zones {
        let Some([x, y]) = z
            .polygon
            .iter()
            .min_by(|a, b| a[1].total_cmp(&b[1]).then(a[0].total_cmp(&b[0])))
        else {
            continue;
        };
        let (c, suffix) = look(z);
        let text = format!("{}: {}{suffix}", z.id, rules_of(z).join(", "));
        let (_, lh) = p.label_size(&text);
        let at = (
            (x * w as f64).round() as i32,
            (y * h as f64).round() as i32 - lh as i32 - p.style.line as i32,
        );
        p.label(at, &text, crate::draw::text_on(c), c);
    }
}

/// Each detection's box with `label score`, and, for every anchor the zones use, its
/// anchor point: green inside a zone with that anchor, grey outside all.
pub fn draw_detections(
    p: &mut Painter<'_>,
    detections: &[Detection],
    labels: &[String],
    zones: &[ZoneConfig],
    size: (u32, u32),
) {
    let shapes: Vec<(Zone, Anchor)> = zones
        .iter()
        .map(|z| (Zone::new(z.id.clone(), &z.polygon), z.anchor))
        .collect();
    let mut anchors: Vec<Anchor> = zones.iter().map(|z| z.anchor).collect();
    anchors.dedup();
    let r = (p.style.line as i32 + 2).max(3);
    for d in detections {
        let b = d.bbox.to_frac(size.0, size.1);
        let label = labels.get(d.class_id).map_or("?", String::as_str);
        p.tagged(
            &b,
            &format!("{label} {:.2}", d.score),
            colour::of_class(d.class_id),
        );
        for a in &anchors {
            let (x, y) = anchor_point(&b, *a);
            let inside = shapes
                .iter()
                .any(|(z, za)| za == a && z.contains(x as f32, y as f32));
            p.dot((x, y), r, if inside { colour::GREEN } else { colour::GREY });
        }
    }
}

/// The legend of a preview: one line per zone, then what the dots mean.
pub fn legend(zones: &[ZoneConfig]) -> Vec<(Rgb<u8>, String)> {
    let mut out: Vec<(Rgb<u8>, String)> = zones
        .iter()
        .map(|z| {
            let rules = rules_of(z);
            let rules = if rules.is_empty() {
                "no rules".to_string()
            } else {
                rules.join(", ")
            };
            (
                zone_colour(z),
                format!("zone {}: {rules} (anchor {})", z.id, anchor_name(z.anchor)),
            )
        })
        .collect();
    if !zones.is_empty() {
        out.push((colour::GREEN, "anchor point inside a zone".into()));
        out.push((colour::GREY, "anchor point outside every zone".into()));
    }
    out
}

/// What `preview` draws on a frame.
pub struct Preview<'a> {
    pub camera: &'a str,
    pub zones: &'a [ZoneConfig],
    pub detections: &'a [Detection],
    pub labels: &'a [String],
    /// `None`: nothing masked (`[privacy] enabled = false`).
    pub privacy: Option<&'a Policy>,
}

impl Preview<'_> {
    /// Masks, zones, detections, the camera's id and the legend, on `img`.
    pub fn draw(&self, img: &mut RgbImage, font: &ab_glyph::FontArc) {
        let size = img.dimensions();
        if let Some(policy) = self.privacy {
            let seen = self.detections.iter().map(|d| {
                let label = self.labels.get(d.class_id).map_or("?", String::as_str);
                (label, d.bbox.to_frac(size.0, size.1))
            });
            let masked = privacy::regions(policy, seen, &[]);
            privacy::mask(img, &masked, &[], policy.method);
        }
        let mut p = Painter::new(img, font);
        draw_zones(&mut p, self.zones);
        draw_detections(&mut p, self.detections, self.labels, self.zones, size);
        p.corner(Corner::BottomRight, self.camera);
        p.legend(Corner::TopRight, &legend(self.zones));
    }
}

/// The first frame of a camera's source (a file, a stream, an image folder).
pub fn grab(source: &SourceOptions) -> Result<Frame, SourceError> {
    let stats = Arc::new(CameraStats::default());
    let watchdog = crate::source::ffmpeg::Watchdog::new();
    // The picture is drawn on: RGB from the decoder, not the scene model's grey.
    let source = &SourceOptions {
        grey_width: None,
        ..source.clone()
    };
    let mut src = DefaultOpener.open(source, &stats, &watchdog)?;
    src.next_frame()?.ok_or_else(|| SourceError::Open {
        camera: source.camera.clone(),
        url: source.url.clone(),
        message: "the source ended before its first frame".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(id: &str, anchor: Anchor, litter: bool) -> ZoneConfig {
        let text = format!(
            "id = \"{id}\"\npolygon = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]\n{}",
            if litter { "[litter]\n" } else { "" }
        );
        let mut z: ZoneConfig = toml::from_str(&text).unwrap();
        z.anchor = anchor;
        z
    }

    #[test]
    fn zones_are_described_by_their_rules_and_anchor() {
        let z = zone("kerb", Anchor::Center, true);
        assert_eq!(rules_of(&z), vec!["litter"]);
        assert_eq!(zone_colour(&z), colour::ORANGE);
        let l = legend(&[z, zone("empty", Anchor::BottomCenter, false)]);
        assert_eq!(l[0].1, "zone kerb: litter (anchor center)");
        assert_eq!(l[1].1, "zone empty: no rules (anchor bottom_center)");
        assert_eq!(l.len(), 4);
        assert!(legend(&[]).is_empty());
    }

    #[test]
    fn anchor_points_are_where_the_anchor_says() {
        let b = FracBox([0.2, 0.1, 0.4, 0.5]);
        for (a, want) in [
            (Anchor::BottomCenter, (0.3, 0.5)),
            (Anchor::Center, (0.3, 0.3)),
            (Anchor::TopCenter, (0.3, 0.1)),
        ] {
            let (x, y) = anchor_point(&b, a);
            assert!(
                (x - want.0).abs() < 1e-6 && (y - want.1).abs() < 1e-6,
                "{a:?}"
            );
        }
    }
}
