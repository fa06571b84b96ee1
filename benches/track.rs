//! Per-frame cost of the tracker on a busy street: 100 objects on screen at
//! 5 fps, moving on straight lines with detector jitter, appearing and
//! disappearing, with missed detections and false positives.
//!
//! The detections are generated up front (a fixed seed), so every run sees
//! the same frames. `tracker/…` measures `Tracker::update` alone;
//! `pipeline/…` measures what a camera does per frame after detection:
//! the tracker plus every rule of three zones (all six rules) with still
//! regions from the scene model.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use streetwatch::analytics::{CameraRules, Observation, Region, RuleEnv, TrackedObject};
use streetwatch::config::ZoneConfig;
use streetwatch::detect::manifest::{DEFAULT_MANIFEST, Manifest};
use streetwatch::geom::{Detection, PxBox};
use streetwatch::track::{Tracker, TrackerConfig};

const FPS: u32 = 5;
const FRAMES: u32 = 3000; // 10 minutes of stream time
const OBJECTS: usize = 100;
const FALSE_POSITIVES: usize = 3;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (self.next() >> 40) as f32 / (1u64 << 24) as f32 * (hi - lo)
    }
    fn chance(&mut self, p: f32) -> bool {
        self.range(0.0, 1.0) < p
    }
}

struct Object {
    class_id: usize,
    centre: [f32; 2],
    size: [f32; 2],
    velocity: [f32; 2],
    dies_at: f32,
}

/// The area objects live in: a 1080p street, or a crowd packed into a
/// quarter of it (congestion: many overlapping boxes).
#[derive(Clone, Copy)]
struct Area {
    w: f32,
    h: f32,
}

fn spawn(rng: &mut Rng, area: Area, now: f32) -> Object {
    let (class_id, size, speed) = match rng.range(0.0, 1.0) {
        p if p < 0.6 => (0, [rng.range(30.0, 60.0), rng.range(80.0, 160.0)], 80.0),
        p if p < 0.7 => (1, [rng.range(50.0, 80.0), rng.range(60.0, 90.0)], 150.0),
        _ => (2, [rng.range(140.0, 240.0), rng.range(90.0, 140.0)], 300.0),
    };
    // A third stand still (parked, waiting, vending).
    let velocity = if rng.chance(0.33) {
        [0.0, 0.0]
    } else {
        let angle = rng.range(0.0, std::f32::consts::TAU);
        let s = rng.range(0.2, 1.0) * speed;
        [s * angle.cos(), s * angle.sin()]
    };
    Object {
        class_id,
        centre: [rng.range(0.0, area.w), rng.range(0.0, area.h)],
        size,
        velocity,
        dies_at: now + rng.range(5.0, 60.0),
    }
}

fn scene(area: Area, seed: u64) -> Vec<Vec<Detection>> {
    let mut rng = Rng(seed);
    let mut objects: Vec<Object> = (0..OBJECTS).map(|_| spawn(&mut rng, area, 0.0)).collect();
    let dt = 1.0 / FPS as f32;
    let mut frames = Vec::with_capacity(FRAMES as usize);
    for n in 0..FRAMES {
        let now = n as f32 * dt;
        let mut dets = Vec::with_capacity(OBJECTS + FALSE_POSITIVES);
        for o in &mut objects {
            o.centre[0] += o.velocity[0] * dt;
            o.centre[1] += o.velocity[1] * dt;
            let outside =
                !(0.0..area.w).contains(&o.centre[0]) || !(0.0..area.h).contains(&o.centre[1]);
            if outside || now >= o.dies_at {
                *o = spawn(&mut rng, area, now);
            }
            // The detector misses 5 % of objects on any frame.
            if rng.chance(0.05) {
                continue;
            }
            let [cx, cy] = [
                o.centre[0] + rng.range(-2.0, 2.0),
                o.centre[1] + rng.range(-2.0, 2.0),
            ];
            let [w, h] = [
                o.size[0] + rng.range(-3.0, 3.0),
                o.size[1] + rng.range(-3.0, 3.0),
            ];
            let score = if rng.chance(0.8) {
                rng.range(0.6, 0.95)
            } else {
                rng.range(0.15, 0.6)
            };
            dets.push(Detection {
                class_id: o.class_id,
                score,
                bbox: PxBox([cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]),
            });
        }
        for _ in 0..FALSE_POSITIVES {
            let [cx, cy] = [rng.range(0.0, area.w), rng.range(0.0, area.h)];
            dets.push(Detection {
                class_id: (rng.next() % 3) as usize,
                score: rng.range(0.5, 0.7),
                bbox: PxBox([cx - 30.0, cy - 40.0, cx + 30.0, cy + 40.0]),
            });
        }
        frames.push(dets);
    }
    frames
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracker");
    for (name, area) in [
        (
            "update 100 objects 1920x1080",
            Area {
                w: 1920.0,
                h: 1080.0,
            },
        ),
        (
            "update 100 objects crowd 960x540",
            Area { w: 960.0, h: 540.0 },
        ),
    ] {
        let frames = scene(area, 0x5eed_1234);
        let period = Duration::from_secs(u64::from(FRAMES / FPS));
        let mut tracker = Tracker::new(TrackerConfig::default());
        // Warm up to a steady state (every object confirmed).
        for (n, dets) in frames.iter().enumerate().take(50) {
            tracker.update(Duration::from_secs(n as u64) / FPS, dets);
        }
        let mut n = 50u32;
        group.bench_function(name, |b| {
            b.iter(|| {
                // Loop the clip with time still going forward: the scene jumps
                // once per loop, the tracker is never reset.
                let i = n % FRAMES;
                let pts = period * (n / FRAMES) + Duration::from_secs(u64::from(i)) / FPS;
                tracker.update(pts, black_box(&frames[i as usize]));
                n += 1;
            })
        });
        let confirmed = tracker.confirmed().filter(|t| t.visible()).count();
        eprintln!("{name}: {confirmed} visible confirmed tracks after {n} frames");
    }
    group.finish();
}

/// Three zones that together carry all six rules, over a 1080p view.
const ZONES: &str = r#"
[[zone]]
id = "carriageway"
polygon = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]
inertia = 2
[zone.congestion]
classes = ["person", "bicycle", "car"]
levels = { light = 10, moderate = 20, heavy = 30 }
occupancy = { light = 0.2, moderate = 0.4, heavy = 0.6 }
max_speed = 1.0
min_duration_s = 5
update_interval_s = 10
[zone.street_vending]
object_classes = ["umbrella", "dining table"]
min_dwell_s = 60

[[zone]]
id = "pavement"
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 0.55], [0.0, 0.55]]
[zone.illegal_parking]
classes = ["bicycle", "motorcycle"]
min_stationary_s = 30
[zone.litter]
classes = ["cup", "bottle"]
dwell_s = 10

[[zone]]
id = "shop_fronts"
polygon = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
[zone.outside_business]
object_classes = ["chair", "dining table"]
min_dwell_s = 120
[zone.piled_materials]
min_area = 0.005
"#;

fn zones() -> Vec<ZoneConfig> {
    #[derive(serde::Deserialize)]
    struct Zones {
        zone: Vec<ZoneConfig>,
    }
    let z: Zones = toml::from_str(ZONES).expect("bench zones parse");
    for zone in &z.zone {
        zone.validate().expect("bench zones are valid");
    }
    z.zone
}

/// Five still regions (two litter-sized, three pile-sized), as the scene model reports them.
fn regions() -> Vec<Region> {
    [
        [300.0, 800.0, 330.0, 830.0],
        [1500.0, 300.0, 1525.0, 322.0],
        [100.0, 600.0, 400.0, 800.0],
        [800.0, 100.0, 1000.0, 250.0],
        [1200.0, 700.0, 1500.0, 900.0],
    ]
    .into_iter()
    .enumerate()
    .map(|(i, bbox)| Region {
        id: i as u64 + 1,
        area: (bbox[2] - bbox[0]) * (bbox[3] - bbox[1]) / (1920.0 * 1080.0),
        bbox: PxBox(bbox),
        since: Duration::ZERO,
        appeared: Duration::ZERO,
        hidden: 0.0,
        cleared: 0.0,
    })
    .collect()
}

fn bench_pipeline(c: &mut Criterion) {
    let labels = Manifest::parse(DEFAULT_MANIFEST, std::path::Path::new("built-in"))
        .expect("built-in manifest")
        .labels;
    let area = Area {
        w: 1920.0,
        h: 1080.0,
    };
    let frames = scene(area, 0x5eed_1234);
    let regions = regions();
    let mut group = c.benchmark_group("pipeline");
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut rules = CameraRules::new(
        &zones(),
        &labels,
        RuleEnv {
            still: Duration::from_secs(2),
        },
        jiff::tz::TimeZone::UTC,
    );
    let mut tracks: Vec<TrackedObject> = Vec::new();
    let start = std::time::SystemTime::now();
    let period = Duration::from_secs(u64::from(FRAMES / FPS));
    let mut events = 0usize;
    let mut n = 0u32;
    group.bench_function("tracker + all rules, 100 objects 1920x1080", |b| {
        b.iter(|| {
            let i = n % FRAMES;
            let pts = period * (n / FRAMES) + Duration::from_secs(u64::from(i)) / FPS;
            let dets = black_box(&frames[i as usize]);
            tracker.update(pts, dets);
            tracks.clear();
            tracks.extend(tracker.confirmed().map(TrackedObject::from));
            let obs = Observation {
                pts,
                captured_at: start + pts,
                width: 1920,
                height: 1080,
                detections: dets,
                tracks: &tracks,
                regions: &regions,
            };
            events += rules.observe(&obs).len();
            n += 1;
        })
    });
    eprintln!("pipeline: {events} events over {n} frames");
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = bench, bench_pipeline
}
criterion_main!(benches);
