//! `SceneModel::update` (downscale included) on real frames in camera sizes:
//! ten consecutive frames of vtest.avi (768×576, people walking), and the same
//! frames scaled to 1920×1080, fed in a loop at 5 fps stream time after the
//! warm-up, so every step of the model runs on every frame.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use streetwatch::scene::{SceneConfig, SceneModel};

mod common;

/// Frames 200..210 of vtest.avi as packed RGB, optionally scaled, via the ffmpeg CLI.
fn vtest_frames(size: Option<(u32, u32)>) -> (u32, u32, Vec<Vec<u8>>) {
    let (w, h) = size.unwrap_or((768, 576));
    let mut filter = "select='between(n\\,200\\,209)'".to_string();
    if size.is_some() {
        filter.push_str(&format!(",scale={w}:{h}"));
    }
    let mut child = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-i"])
        .arg(common::cached("media/vtest.avi"))
        .args(["-vf", &filter, "-vsync", "0"])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("ffmpeg runs");
    let mut out = child.stdout.take().unwrap();
    let mut frames = Vec::new();
    loop {
        let mut buf = vec![0u8; (w * h * 3) as usize];
        if out.read_exact(&mut buf).is_err() {
            break;
        }
        frames.push(buf);
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(frames.len(), 10, "ffmpeg could not extract vtest frames");
    (w, h, frames)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("scene");
    for (name, size) in [("768x576", None), ("1920x1080", Some((1920, 1080)))] {
        let (w, h, frames) = vtest_frames(size);
        let mut model = SceneModel::new(SceneConfig::default());
        let mut n = 0u64;
        let mut step = |model: &mut SceneModel| {
            let frame = &frames[n as usize % frames.len()];
            let pts = Duration::from_millis(n * 200);
            n += 1;
            model.update(pts, w, h, std::hint::black_box(frame))
        };
        // Past the warm-up: the full model runs from here on.
        for _ in 0..30 {
            step(&mut model);
        }
        group.bench_function(format!("update {name}"), |b| b.iter(|| step(&mut model)));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = bench
}
criterion_main!(benches);
