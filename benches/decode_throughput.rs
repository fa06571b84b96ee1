//! Decode throughput of our FFmpeg source against the `ffmpeg` command line on
//! the same 1080p H.264 file, in the same run.
//!
//! `cargo bench --bench decode_throughput` — the clip (`vtest_1080p.mp4`: the
//! sample video scaled to 1920×1080, libx264) is made once with the `ffmpeg`
//! command line and cached next to the sample media. Each side runs 3 times,
//! alternating; the best time counts. Our source is measured at a camera's
//! analytic rate (5 fps: every frame decoded, 1 in 2 converted to RGB) and at
//! 60 fps (every frame converted to RGB, which `ffmpeg -f null` never does).
//!
//! Run without `--bench` (as `cargo test --all-targets` does) it only decodes a
//! few frames of the sample video, to prove it still works.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streetwatch::monitor::CameraStats;
use streetwatch::source::FrameSource;
use streetwatch::source::ffmpeg::FfmpegSource;

/// Rounds per side; the machine may be shared, so the best round counts.
const ROUNDS: usize = 5;

fn clip() -> PathBuf {
    let media = streetwatch::cache_dir().join("media");
    let out = media.join("vtest_1080p.mp4");
    if out.exists() {
        return out;
    }
    let src = media.join("vtest.avi");
    assert!(
        src.exists(),
        "{} is missing: run `make setup`",
        src.display()
    );
    eprintln!("making {} (once) …", out.display());
    let tmp = media.join("vtest_1080p.partial.mp4");
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&src)
        .args([
            "-vf",
            "scale=1920:1080",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "23",
            "-pix_fmt",
            "yuv420p",
            "-an",
        ])
        .arg(&tmp)
        .status()
        .expect("ffmpeg must be installed")
        .success();
    assert!(ok, "encoding the 1080p clip failed");
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// CPU time (user + system, all threads) this process has used, from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // USER_HZ is 100 on Linux.
    Duration::from_millis((f.iter().sum::<u64>()) * 10)
}

/// One measured run: frames, wall time, CPU time.
#[derive(Clone, Copy)]
struct Run {
    frames: u64,
    wall: Duration,
    cpu: Duration,
}

/// Decodes up to `limit` frames with our source.
fn ours(path: &Path, fps: f64, limit: u64) -> Run {
    let stats = Arc::new(CameraStats::default());
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let mut src = FfmpegSource::open("bench", path.to_str().unwrap(), fps, stats.clone())
        .expect("opening the clip");
    let decoded = || {
        stats
            .frames_decoded
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    while decoded() < limit {
        match src.next_frame().expect("decoding") {
            Some(f) => {
                std::hint::black_box(&f.data);
            }
            None => break,
        }
    }
    Run {
        frames: decoded(),
        wall: t0.elapsed(),
        cpu: cpu_time() - cpu0,
    }
}

/// `ffmpeg -benchmark -i FILE -f null -`: wall time, and CPU time as ffmpeg reports it.
fn reference(path: &Path) -> Run {
    let t0 = Instant::now();
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-benchmark", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg must be installed");
    let wall = t0.elapsed();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ffmpeg failed on {}: {log}",
        path.display()
    );
    // "bench: utime=1.234s stime=0.056s rtime=0.789s"
    let field = |name: &str| -> f64 {
        log.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.trim_end_matches('s').parse().ok())
            .unwrap_or(0.0)
    };
    let frames = log
        .rsplit("frame=")
        .next()
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Run {
        frames,
        wall,
        cpu: Duration::from_secs_f64(field("utime=") + field("stime=")),
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    if !bench {
        let path = streetwatch::cache_dir().join("media/vtest.mp4");
        let run = ours(&path, 5.0, 10);
        assert!(run.frames >= 10, "{} frames decoded", run.frames);
        println!(
            "decode_throughput: smoke run, {} frames in {:?} (run `cargo bench` to measure)",
            run.frames, run.wall
        );
        return;
    }
    let path = clip();
    // (label, fps): our source at a camera's analytic rate and with every frame to RGB.
    let cases = [("fps = 1 ", 1.0), ("fps = 5 ", 5.0), ("fps = 60", 60.0)];
    let mut best_ref: Option<Run> = None;
    let mut best: Vec<Option<Run>> = vec![None; cases.len()];
    let keep = |slot: &mut Option<Run>, r: Run| {
        if slot.is_none_or(|b| r.wall < b.wall) {
            *slot = Some(r);
        }
    };
    for round in 1..=ROUNDS {
        let r = reference(&path);
        let mut line = format!("round {round}: ffmpeg {:.2} s", r.wall.as_secs_f64());
        keep(&mut best_ref, r);
        for (i, (label, fps)) in cases.iter().enumerate() {
            let o = ours(&path, *fps, u64::MAX);
            assert_eq!(o.frames, r.frames, "both decode every frame");
            line += &format!(", ours {label} {:.2} s", o.wall.as_secs_f64());
            keep(&mut best[i], o);
        }
        println!("{line}");
    }
    let r = best_ref.unwrap();
    let per_s = |run: Run| run.frames as f64 / run.wall.as_secs_f64();
    let cpu_ms = |run: Run| run.cpu.as_secs_f64() * 1000.0 / run.frames as f64;
    println!(
        "clip: {} ({} frames, 1920x1080 H.264), best of {ROUNDS}",
        path.display(),
        r.frames
    );
    println!(
        "ffmpeg -i FILE -f null -     : {:6.1} frames/s, {:5.2} ms CPU/frame",
        per_s(r),
        cpu_ms(r)
    );
    for ((label, _), o) in cases.iter().zip(best) {
        let o = o.unwrap();
        println!(
            "streetwatch source, {label} : {:6.1} frames/s, {:5.2} ms CPU/frame, throughput ratio {:.2}",
            per_s(o),
            cpu_ms(o),
            per_s(o) / per_s(r)
        );
    }
}
