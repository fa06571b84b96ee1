//! The evidence annotation and the masks the pipeline describes, from one
//! analysed frame with scripted detections.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::clock::ManualClock;
use crate::config::ZoneConfig;
use crate::event::{MaskKind, Phase};
use crate::geom::{Detection, FracBox, PxBox};
use crate::monitor::CameraStats;
use crate::pipeline::{Detected, Step};
use crate::source::Frame;
use crate::track::TrackerConfig;

const T0: u64 = 1_800_000_000;

fn options(privacy: Option<Policy>, timed: bool) -> PipelineOptions {
    let zone: ZoneConfig = toml::from_str(
        "id = \"kerb\"\npolygon = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]\n[litter]\n",
    )
    .unwrap();
    PipelineOptions {
        node: "pole".into(),
        camera: "gate-cam".into(),
        tracker: TrackerConfig::default(),
        scene: None,
        gate: None,
        zones: vec![zone],
        site: Default::default(),
        labels: ["person", "bicycle", "cup"].map(String::from).to_vec(),
        rule_env: crate::analytics::RuleEnv {
            still: Duration::from_secs(2),
        },
        tz: jiff::tz::TimeZone::fixed(jiff::tz::offset(8)),
        timed,
        privacy,
    }
}

/// A pipeline that has analysed one 200×100 frame, 754 s into the stream, where the
/// detector found a person and a cup.
fn analysed(privacy: Option<Policy>, timed: bool) -> CameraPipeline {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(T0));
    let mut p = CameraPipeline::new(
        options(privacy, timed),
        Arc::new(CameraStats::default()),
        clock.shared(),
    );
    let pts = Duration::from_secs(754);
    let frame = Frame {
        width: 200,
        height: 100,
        data: vec![90; 200 * 100 * 3],
        pts,
        captured_at: SystemTime::UNIX_EPOCH + Duration::from_secs(T0),
        index: 0,
        decoded: None,
    };
    assert!(matches!(p.frame(&frame), Step::Detect));
    p.detected(Detected::Found {
        detections: vec![
            Detection {
                class_id: 0,
                score: 0.9,
                bbox: PxBox([20.0, 10.0, 40.0, 90.0]),
            },
            Detection {
                class_id: 2,
                score: 0.7,
                bbox: PxBox([100.0, 80.0, 110.0, 90.0]),
            },
        ],
        inference: Duration::from_millis(20),
    });
    p
}

fn litter_start(objects: Vec<EventObject>) -> Event {
    Event {
        schema: crate::event::SCHEMA.into(),
        id: "e".into(),
        seq: 0,
        node: "pole".into(),
        camera: "gate-cam".into(),
        zone: "kerb".into(),
        site: Default::default(),
        kind: "litter".into(),
        phase: Phase::Start,
        incident: "i".into(),
        ts: "2027-01-15T08:00:05.000Z".into(),
        started_at: "2027-01-15T08:00:05.000Z".into(),
        ended_at: None,
        stream_time_s: 754.2,
        objects,
        metrics: Default::default(),
        attributes: [("source".to_string(), "static_change".to_string())].into(),
        evidence: None,
        masked: Vec::new(),
    }
}

fn cup() -> EventObject {
    EventObject {
        class: "cup".into(),
        score: 0.7,
        bbox: FracBox([0.5, 0.8, 0.55, 0.9]),
        track_id: Some(4),
        role: None,
    }
}

#[test]
fn a_snapshot_masks_the_head_of_every_person() {
    let p = analysed(Some(Policy::default()), false);
    let masks = p.masks(&[]);
    assert_eq!(masks.len(), 1, "{masks:?}");
    assert_eq!(masks[0].what, MaskKind::Head);
    assert_eq!(masks[0].bbox, FracBox([0.1, 0.1, 0.2, 0.3]));
    assert!(analysed(None, false).masks(&[]).is_empty());
}

#[test]
fn the_evidence_of_an_event_reads_what_where_and_when() {
    let p = analysed(Some(Policy::default()), false);
    let thrower = EventObject {
        role: Some("thrower".into()),
        class: "person".into(),
        bbox: FracBox([0.7, 0.1, 0.8, 0.6]),
        ..cup()
    };
    let ann = p.annotation(&litter_start(vec![cup(), thrower.clone()]));
    assert_eq!(ann.subjects, vec![(cup().bbox, "cup 0.70".to_string())]);
    assert_eq!(ann.others, vec![(thrower.bbox, "thrower".to_string())]);
    assert_eq!(ann.zone.len(), 4);
    assert_eq!(ann.camera, "gate-cam");
    assert_eq!(ann.kept, vec![cup().bbox]);
    // A file: the stream time.
    assert_eq!(ann.caption, "litter · static change · 00:12:34");
    assert_eq!(ann.masked.len(), 2, "the passer-by and the thrower");
    // A live camera: the local time of the event (UTC+8 here).
    let live = analysed(Some(Policy::default()), true);
    let ann = live.annotation(&litter_start(vec![cup()]));
    assert_eq!(ann.caption, "litter · static change · 16:00:05");
    // Where the event's site has an address, the corner gives it beside the camera.
    let mut at_kerb = litter_start(vec![cup()]);
    at_kerb.site.address = Some("12 Jingmi Rd".into());
    assert_eq!(p.annotation(&at_kerb).camera, "gate-cam · 12 Jingmi Rd");
    // Privacy off: nothing masked.
    let ann = analysed(None, false).annotation(&litter_start(vec![cup()]));
    assert!(ann.masked.is_empty());
}
