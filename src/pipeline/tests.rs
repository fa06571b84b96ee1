//! The camera pipeline driven frame by frame: synthetic frames for the scene
//! model, scripted detector results, a hand-moved clock.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::clock::ManualClock;
use crate::geom::PxBox;

const PERSON: usize = 0;
const BICYCLE: usize = 1;
const FPS: u64 = 5;
const W: u32 = 320;
const H: u32 = 240;

fn labels() -> Vec<String> {
    ["person", "bicycle", "cup"].map(String::from).to_vec()
}

fn zone(toml_text: &str) -> ZoneConfig {
    toml::from_str(toml_text).expect("zone TOML")
}

/// Options for a 320×240 camera; `gate`: the motion gate with a 2 s re-check.
fn options(gate: bool, zones: Vec<ZoneConfig>) -> PipelineOptions {
    PipelineOptions {
        node: "pole".into(),
        camera: "gate-cam".into(),
        tracker: TrackerConfig::default(),
        scene: Some(SceneConfig::default()),
        gate: gate.then_some(GateOptions {
            motion_threshold: 0.002,
            recheck: Duration::from_secs(2),
            zones_only: true,
        }),
        zones,
        site: Default::default(),
        labels: labels(),
        rule_env: RuleEnv {
            still: Duration::from_secs(2),
        },
        tz: jiff::tz::TimeZone::UTC,
        timed: false,
        privacy: Some(crate::evidence::Policy::default()),
    }
}

struct Rig {
    pipeline: CameraPipeline,
    stats: Arc<CameraStats>,
    clock: ManualClock,
    n: u64,
}

impl Rig {
    fn new(opts: PipelineOptions) -> Self {
        let stats = Arc::new(CameraStats::default());
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        Self {
            pipeline: CameraPipeline::new(opts, stats.clone(), clock.shared()),
            stats,
            clock,
            n: 0,
        }
    }

    /// The next frame: a still, flat grey picture unless `paint` changes it.
    fn frame(&mut self, paint: impl Fn(&mut [u8])) -> Frame {
        let pts = Duration::from_millis(self.n * 1000 / FPS);
        self.n += 1;
        let mut data = vec![96u8; (W * H * 3) as usize];
        paint(&mut data);
        Frame {
            width: W,
            height: H,
            data,
            pts,
            captured_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + pts,
            index: self.n,
            decoded: None,
        }
    }

    /// One still frame; `found`: what the detector finds if it is asked.
    /// Returns whether the detector was asked, and the events.
    fn step(&mut self, found: &[Detection]) -> (bool, Vec<Outgoing>) {
        self.step_painted(|_| {}, found)
    }

    /// Like [`Rig::step`], the frame painted by `paint`.
    fn step_painted(
        &mut self,
        paint: impl Fn(&mut [u8]),
        found: &[Detection],
    ) -> (bool, Vec<Outgoing>) {
        let frame = self.frame(paint);
        self.clock.advance(Duration::from_millis(1000 / FPS));
        match self.pipeline.frame(&frame) {
            Step::Done(out) => (false, out),
            Step::Detect => (
                true,
                self.pipeline.detected(Detected::Found {
                    detections: found.to_vec(),
                    inference: Duration::from_millis(20),
                }),
            ),
        }
    }
}

fn person_at(x: f32) -> Detection {
    Detection {
        class_id: PERSON,
        score: 0.9,
        bbox: PxBox([x, 100.0, x + 30.0, 180.0]),
    }
}

/// Paints the pixels of `[x0, y0, x1, y1]` one grey level.
fn fill(d: &mut [u8], [x0, y0, x1, y1]: [u32; 4], level: u8) {
    for y in y0..y1 {
        for x in x0..x1 {
            let p = ((y * W + x) * 3) as usize;
            d[p..p + 3].fill(level);
        }
    }
}

fn bicycle() -> Detection {
    Detection {
        class_id: BICYCLE,
        score: 0.8,
        bbox: PxBox([200.0, 150.0, 260.0, 200.0]),
    }
}

#[test]
fn a_one_frame_false_positive_followed_by_gated_frames_is_never_confirmed() {
    let mut rig = Rig::new(options(true, vec![]));
    // The detector's mistake on the first frame, then nothing moves for 30 s. The
    // next frame is looked at (the mistake is an undecided track) and finds nothing;
    // after that the gate holds every frame but the 2-second re-checks.
    let (asked, _) = rig.step(&[person_at(100.0)]);
    assert!(asked, "the first frame always goes to the detector");
    let mut asked_at: Vec<u64> = Vec::new();
    for i in 1..150 {
        let (asked, out) = rig.step(&[]);
        if asked {
            asked_at.push(i);
        }
        assert!(out.is_empty());
        assert!(
            rig.pipeline.tracks().is_empty(),
            "frame {i}: {:?}",
            rig.pipeline.tracks()
        );
    }
    // Frame 1, then re-checks every 2 s (10 frames at 5 fps) after it, and only those.
    let want: Vec<u64> = std::iter::once(1).chain((11..150).step_by(10)).collect();
    assert_eq!(asked_at, want);
    let s = rig.stats.snapshot();
    assert_eq!((s.frames_analysed, s.frames_gated), (16, 134));
}

#[test]
fn a_real_object_stays_tracked_through_held_frames_and_its_rule_fires() {
    let parking = zone(
        "id = \"kerb\"\npolygon = [[0, 0], [1, 0], [1, 1], [0, 1]]\n\
         [illegal_parking]\nmin_stationary_s = 5\n",
    );
    let mut rig = Rig::new(options(true, vec![parking]));
    let mut out = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    let mut confirmed_at = None;
    for i in 0..60 {
        let (_, evs) = rig.step(&[bicycle()]);
        out.extend(evs);
        ids.extend(rig.pipeline.tracks().iter().map(|t| t.id));
        if confirmed_at.is_none() && !rig.pipeline.tracks().is_empty() {
            confirmed_at = Some(i);
        }
    }
    // Undecided, it is looked at on consecutive frames: confirmed on the third.
    assert_eq!(confirmed_at, Some(2));
    assert_eq!(
        ids.into_iter().collect::<Vec<_>>(),
        vec![1],
        "one object, one id"
    );
    let phases: Vec<_> = out.iter().map(|o| o.event.phase).collect();
    assert_eq!(phases, vec![Phase::Start], "{out:?}");
    let start = &out[0];
    assert!(start.evidence, "a start carries its frame as evidence");
    assert_eq!(start.event.kind, "illegal_parking");
    assert_eq!(
        (start.event.node.as_str(), start.event.camera.as_str()),
        ("pole", "gate-cam")
    );
    assert!(rig.stats.snapshot().frames_gated > 40);
    // The stream ends: the incident ends with it, without evidence.
    let ends = rig.pipeline.finish();
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].event.phase, Phase::End);
    assert_eq!(ends[0].event.attributes["reason"], "stream_ended");
    assert!(!ends[0].evidence);
    assert_eq!(ends[0].event.incident, start.event.incident);
}

#[test]
fn motion_wakes_the_detector_before_the_recheck() {
    let mut rig = Rig::new(options(true, vec![]));
    rig.step(&[]);
    let (asked, _) = rig.step(&[]);
    assert!(!asked, "nothing moved");
    // A block of the picture changes: that is motion.
    let frame = rig.frame(|d| {
        for y in 50..120 {
            for x in 50..150 {
                let p = ((y * W + x) * 3) as usize;
                d[p..p + 3].copy_from_slice(&[250, 250, 250]);
            }
        }
    });
    assert!(matches!(rig.pipeline.frame(&frame), Step::Detect));
}

/// Only motion inside the zones wakes the detector (the left half is a zone here);
/// with `zones_only` off, motion anywhere does; with no zone, motion anywhere does.
#[test]
fn only_motion_inside_the_zones_wakes_the_detector() {
    let left = zone(
        r#"id = "left"
polygon = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]"#,
    );
    let right_block = |d: &mut [u8]| fill(d, [220, 60, 300, 140], 250);
    let left_block = |d: &mut [u8]| fill(d, [20, 60, 100, 140], 250);
    let cases: [(&str, bool, Vec<ZoneConfig>, bool, bool); 4] = [
        ("zones only", true, vec![left.clone()], false, true),
        ("whole picture", false, vec![left.clone()], true, true),
        ("no zone", true, vec![], true, true),
        ("no zone, whole picture", false, vec![], true, true),
    ];
    for (name, zones_only, zones, right_wakes, left_wakes) in cases {
        for (block, wakes) in [
            (&right_block as &dyn Fn(&mut [u8]), right_wakes),
            (&left_block, left_wakes),
        ] {
            let mut opts = options(true, zones.clone());
            opts.gate.as_mut().unwrap().zones_only = zones_only;
            let mut rig = Rig::new(opts);
            rig.step(&[]);
            assert!(!rig.step(&[]).0, "{name}: nothing moved");
            let frame = rig.frame(block);
            let asked = matches!(rig.pipeline.frame(&frame), Step::Detect);
            assert_eq!(asked, wakes, "{name}");
        }
    }
}

#[test]
fn without_the_gate_every_frame_is_detected() {
    let mut rig = Rig::new(options(false, vec![]));
    for _ in 0..20 {
        assert!(rig.step(&[]).0);
    }
    assert_eq!(rig.stats.snapshot().frames_gated, 0);
}

#[test]
fn a_skipped_frame_changes_nothing_but_the_scene_model() {
    let mut rig = Rig::new(options(false, vec![]));
    for _ in 0..3 {
        rig.step(&[person_at(100.0)]);
    }
    assert_eq!(rig.pipeline.tracks().len(), 1);
    let frame = rig.frame(|_| {});
    assert!(matches!(rig.pipeline.frame(&frame), Step::Detect));
    assert!(rig.pipeline.detected(Detected::Skipped).is_empty());
    let s = rig.stats.snapshot();
    assert_eq!((s.frames_analysed, s.detections), (3, 3));
    // A result without a frame that asked for it is ignored.
    assert!(
        rig.pipeline
            .detected(Detected::Found {
                detections: vec![person_at(5.0)],
                inference: Duration::ZERO
            })
            .is_empty()
    );
    assert_eq!(rig.stats.snapshot().frames_analysed, 3);
}

#[test]
fn timed_cameras_measure_capture_to_detection_latency_on_the_injected_clock() {
    let mut opts = options(false, vec![]);
    opts.timed = true;
    let mut rig = Rig::new(opts);
    // The clock runs 200 ms ahead of each frame's capture time when its result arrives.
    rig.step(&[]);
    rig.step(&[]);
    let s = rig.stats.snapshot();
    assert_eq!(s.latency_frames, 2);
    assert_eq!(s.latency_max_us, 200_000);
}

#[test]
fn event_ids_are_time_ordered_uuids_from_the_clock() {
    let parking = zone(
        "id = \"kerb\"\npolygon = [[0, 0], [1, 0], [1, 1], [0, 1]]\n\
         [illegal_parking]\nmin_stationary_s = 1\n",
    );
    let mut rig = Rig::new(options(false, vec![parking]));
    let mut out = Vec::new();
    for _ in 0..20 {
        out.extend(rig.step(&[bicycle()]).1);
    }
    let start = &out[0].event;
    let id = uuid::Uuid::parse_str(&start.id).unwrap();
    assert_eq!(id.get_version_num(), 7);
    let (secs, _) = id.get_timestamp().unwrap().to_unix();
    assert!((1_800_000_000..1_800_000_010).contains(&secs), "{secs}");
    assert_eq!((start.schema.as_str(), start.seq), (SCHEMA, 0));
}

#[test]
fn a_cup_put_down_beside_a_parked_bicycle_is_litter_with_the_gate_off_and_on() {
    let litter = zone(
        "id = \"kerb\"\npolygon = [[0, 0], [1, 0], [1, 1], [0, 1]]\n\
         [litter]\ndwell_s = 4\nclear_s = 2\n",
    );
    let mut runs = Vec::new();
    for gate in [false, true] {
        let mut rig = Rig::new(options(gate, vec![litter.clone()]));
        let mut out = Vec::new();
        // The bicycle is parked at 4 s (after the scene model's warm-up); a cup
        // is put down under its saddle, inside its box, at 10 s and taken away
        // at 20 s.
        for i in 0..150u64 {
            let t = i as f64 / FPS as f64;
            let paint = |d: &mut [u8]| {
                if t >= 4.0 {
                    fill(d, [205, 155, 255, 178], 30);
                }
                if (10.0..20.0).contains(&t) {
                    fill(d, [225, 184, 237, 196], 240);
                }
            };
            let found = if t >= 4.0 { vec![bicycle()] } else { vec![] };
            out.extend(rig.step_painted(paint, &found).1);
        }
        let got: Vec<(f64, Phase)> = out
            .iter()
            .map(|o| (o.event.stream_time_s, o.event.phase))
            .collect();
        let [start, end] = out.as_slice() else {
            panic!("gate {gate}: one cup, one incident: {got:?}");
        };
        assert_eq!(start.event.kind, "litter");
        // Counted from when it came to rest, not from when it was reported.
        assert_eq!(start.event.stream_time_s, 14.0, "{got:?}");
        let [x0, y0, x1, y1] = start.event.objects[0].bbox.0;
        let cup = [
            225.0 / W as f32,
            184.0 / H as f32,
            237.0 / W as f32,
            196.0 / H as f32,
        ];
        assert!(
            PxBox([x0, y0, x1, y1]).iou(&PxBox(cup)) > 0.3,
            "the cup, not the bicycle: {:?}",
            start.event.objects[0].bbox
        );
        assert_eq!(end.event.attributes["reason"], "resolved");
        runs.push(got);
    }
    assert_eq!(runs[0], runs[1], "the gate changes nothing");
}

#[test]
fn without_the_gate_results_taken_behind_the_next_look_give_the_same_events() {
    let parking = || {
        vec![zone(
            "id = \"kerb\"\npolygon = [[0, 0], [1, 0], [1, 1], [0, 1]]\n\
             [illegal_parking]\nmin_stationary_s = 2\n",
        )]
    };
    // A bicycle parks for 6 s; a person walks by meanwhile. The frame after the one the
    // bicycle is first seen on has no picture: if it took that frame's result, the
    // bicycle would be parked from a frame later.
    const NO_PICTURE: u64 = 12;
    let found = |i: u64| -> Vec<Detection> {
        let mut d = Vec::new();
        if (NO_PICTURE - 1..NO_PICTURE + 29).contains(&i) {
            d.push(bicycle());
        }
        if (15..25).contains(&i) {
            d.push(person_at(10.0 * i as f32));
        }
        d
    };
    let summary = |out: &[Outgoing]| -> Vec<(String, Phase, f64)> {
        out.iter()
            .map(|o| (o.event.kind.clone(), o.event.phase, o.event.stream_time_s))
            .collect()
    };
    let frames = 80;

    // One frame at a time.
    let mut one = Rig::new(options(false, parking()));
    let mut one_out = Vec::new();
    for i in 0..frames {
        if i == NO_PICTURE {
            let frame = one.frame(|_| {});
            one.clock.advance(Duration::from_millis(1000 / FPS));
            assert!(matches!(one.pipeline.frame(&frame), Step::Detect));
            assert!(one.pipeline.detected(Detected::Skipped).is_empty());
            continue;
        }
        one_out.extend(one.step(&found(i)).1);
    }

    // Frame i+1 looked at before frame i's result is taken.
    let mut ahead = Rig::new(options(false, parking()));
    assert!(ahead.pipeline.looks_ahead());
    assert!(!Rig::new(options(true, parking())).pipeline.looks_ahead());
    let mut ahead_out = Vec::new();
    let mut asked = std::collections::VecDeque::new();
    for i in 0..frames {
        let frame = ahead.frame(|_| {});
        ahead.clock.advance(Duration::from_millis(1000 / FPS));
        assert!(matches!(ahead.pipeline.frame(&frame), Step::Detect));
        if i == NO_PICTURE {
            // Skipped at once, behind the frame still at the detector.
            assert_eq!(asked.len(), 1);
            ahead.pipeline.skip_newest();
            continue;
        }
        asked.push_back(i);
        if asked.len() == 2 {
            let j = asked.pop_front().unwrap();
            ahead_out.extend(ahead.pipeline.detected(Detected::Found {
                detections: found(j),
                inference: Duration::from_millis(20),
            }));
        }
    }
    for j in asked {
        ahead_out.extend(ahead.pipeline.detected(Detected::Found {
            detections: found(j),
            inference: Duration::from_millis(20),
        }));
    }
    // A result with no frame waiting for it changes nothing.
    assert!(ahead.pipeline.detected(Detected::Skipped).is_empty());
    // The open incident ends at the last frame each saw: results went to their frames.
    one_out.extend(one.pipeline.finish());
    ahead_out.extend(ahead.pipeline.finish());

    assert_eq!(
        summary(&one_out),
        [
            ("illegal_parking".to_string(), Phase::Start, 4.2),
            ("illegal_parking".to_string(), Phase::End, 15.8)
        ],
        "{one_out:?}"
    );
    assert_eq!(summary(&ahead_out), summary(&one_out));
    let (a, o) = (ahead.stats.snapshot(), one.stats.snapshot());
    assert_eq!(
        (a.frames_analysed, a.detections),
        (o.frames_analysed, o.detections)
    );
}
