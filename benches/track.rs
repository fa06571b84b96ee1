//! Per-frame cost of the tracker on a busy street: 100 objects on screen at
//! 5 fps, moving on straight lines with detector jitter, appearing and
//! disappearing, with missed detections and false positives.
//!
//! The detections are generated up front (a fixed seed), so every run sees
//! the same frames and the bench measures `Tracker::update` alone.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use streetwatch::detect::Detection;
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
                bbox: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
            });
        }
        for _ in 0..FALSE_POSITIVES {
            let [cx, cy] = [rng.range(0.0, area.w), rng.range(0.0, area.h)];
            dets.push(Detection {
                class_id: (rng.next() % 3) as usize,
                score: rng.range(0.5, 0.7),
                bbox: [cx - 30.0, cy - 40.0, cx + 30.0, cy + 40.0],
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

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = bench
}
criterion_main!(benches);
