//! `streetwatch bench`: how many cameras like the configured ones this box
//! sustains, from what each stage of one camera really costs here.
//!
//! In: a configuration (its cameras' sources, zones, model and detector), a
//! measuring time, optionally one clip for every camera. Out: a [`Report`]
//! with the time each stage takes per second of video (decode, scene model
//! and motion gate, inference, tracking + rules, event encoding for publish)
//! and the number of such cameras the box takes with its headroom.
//!
//! The shell ([`measure`]) plays each enabled camera's source through the
//! camera's own [`CameraPipeline`] and the configured detector on this thread,
//! one stage after another, timing each; files are read as fast as they are
//! analysed and the time is scaled to their stream time, live sources run in
//! their own time. The core ([`Costs::sizing`]) is pure: the detector runs
//! on every core at once and serves one frame at a time, everything else
//! spreads over the cores, so one camera takes
//! `inference + (decode + scene + rules + publish) / cores` of the box per
//! second of video, and the box sustains `⌊1 / that⌋` cameras without drops.
//! A second inference beside the first (`[detector] runs`) is not counted: it
//! adds 1.1–1.2× on a loaded two-core box (`make bench`), a margin the count
//! keeps rather than spends.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::detect::{DetectError, Detector, RgbView};
use crate::monitor::CameraStats;
use crate::node::options;
use crate::pipeline::{CameraPipeline, Detected, Step};
use crate::source::SourceError;
use crate::source::ffmpeg::{RgbMaker, Watchdog};
use crate::source::runner::{DefaultOpener, Opener};

#[derive(Debug, thiserror::Error)]
pub enum SizingError {
    #[error(transparent)]
    Detector(#[from] DetectError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the configuration has no enabled camera to measure (enable one, or give --clip)")]
    NoCamera,
    #[error("camera {camera}: no frame analysed in {seconds} s (is the source sending?)")]
    NoFrames { camera: String, seconds: f64 },
}

/// Seconds each stage takes per second of one camera's video.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Costs {
    pub decode: f64,
    pub scene: f64,
    pub inference: f64,
    pub rules: f64,
    pub publish: f64,
}

/// What the box takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sizing {
    /// Share of the whole box one camera takes (1.0 = all of it).
    pub per_camera: f64,
    /// Cameras sustained without drops.
    pub cameras: u32,
    /// Share of the box left with that many cameras.
    pub headroom: f64,
}

impl Costs {
    /// How many such cameras `cores` cores sustain (see the module documentation).
    pub fn sizing(&self, cores: usize) -> Sizing {
        let spread = (self.decode + self.scene + self.rules + self.publish) / cores.max(1) as f64;
        let per_camera = self.inference + spread;
        let cameras = if per_camera > 0.0 {
            (1.0 / per_camera).floor().min(f64::from(u32::MAX)) as u32
        } else {
            u32::MAX
        };
        Sizing {
            per_camera,
            cameras,
            headroom: (1.0 - per_camera * f64::from(cameras)).max(0.0),
        }
    }

    /// The mean of several cameras' costs.
    pub fn mean(all: &[Costs]) -> Costs {
        let n = all.len().max(1) as f64;
        let sum = |f: fn(&Costs) -> f64| all.iter().map(f).sum::<f64>() / n;
        Costs {
            decode: sum(|c| c.decode),
            scene: sum(|c| c.scene),
            inference: sum(|c| c.inference),
            rules: sum(|c| c.rules),
            publish: sum(|c| c.publish),
        }
    }
}

/// One camera's measurement.
#[derive(Debug, Clone)]
pub struct CameraRun {
    pub camera: String,
    pub fps: f64,
    /// Seconds of video played.
    pub stream_s: f64,
    pub frames_decoded: u64,
    pub frames_analysed: u64,
    /// Frames that ran through the detector (the others the motion gate held).
    pub inferences: u64,
    pub costs: Costs,
}

/// Everything `streetwatch bench` prints.
#[derive(Debug, Clone)]
pub struct Report {
    pub cores: usize,
    pub runs: Vec<CameraRun>,
    pub sizing: Sizing,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |s: f64| s * 1000.0;
        writeln!(
            f,
            "per camera, milliseconds of work per second of video ({} cores):",
            self.cores
        )?;
        writeln!(
            f,
            "{:<16} {:>5} {:>8} {:>8} {:>7} {:>9} {:>7} {:>8} {:>7}",
            "camera",
            "fps",
            "analysed",
            "decode",
            "scene",
            "inference",
            "rules",
            "publish",
            "gated"
        )?;
        for r in &self.runs {
            let c = r.costs;
            let gated = 1.0 - r.inferences as f64 / r.frames_analysed.max(1) as f64;
            writeln!(
                f,
                "{:<16} {:>5.1} {:>8} {:>8.1} {:>7.1} {:>9.1} {:>7.2} {:>8.2} {:>6.0}%",
                r.camera,
                r.fps,
                r.frames_analysed,
                ms(c.decode),
                ms(c.scene),
                ms(c.inference),
                ms(c.rules),
                ms(c.publish),
                gated * 100.0
            )?;
        }
        let s = self.sizing;
        if s.cameras == 0 {
            return writeln!(
                f,
                "one such camera takes {:.1} % of this box: it cannot keep up with even one (lower its fps, turn on the motion gate, or use a smaller model)",
                s.per_camera * 100.0
            );
        }
        writeln!(
            f,
            "one such camera takes {:.1} % of this box: it sustains {} of them without drops, {:.0} % headroom left",
            s.per_camera * 100.0,
            s.cameras,
            s.headroom * 100.0
        )
    }
}

/// Measures each enabled camera of `config` (or `clip` in place of each camera's
/// source) for `seconds` and sizes the box.
pub fn measure(config: &Config, seconds: f64, clip: Option<&Path>) -> Result<Report, SizingError> {
    let mut detector = Detector::open(&options::detector(config))?;
    let labels = detector.manifest().labels.clone();
    let cameras: Vec<_> = config
        .cameras
        .iter()
        .filter(|c| c.enabled || clip.is_some())
        .collect();
    if cameras.is_empty() {
        return Err(SizingError::NoCamera);
    }
    let mut runs = Vec::new();
    for cam in cameras {
        let mut source_opts = options::source(cam);
        if let Some(clip) = clip {
            source_opts.url = clip.display().to_string();
        }
        // Every frame as fast as it is analysed; stream time scales the figures.
        source_opts.realtime = false;
        let mut pipe_opts = options::pipeline(config, cam, &labels);
        pipe_opts.timed = false;
        let stats = Arc::new(CameraStats::default());
        let mut pipeline = CameraPipeline::new(pipe_opts, stats.clone(), crate::clock::system());
        let dog = Watchdog::new();
        let mut source = DefaultOpener.open(&source_opts, &stats, &dog)?;
        let mut rgb = RgbMaker::new();
        let (mut spent, mut inferences, mut analysed) = (Costs::default(), 0u64, 0u64);
        let (mut first, mut last) = (None, Duration::ZERO);
        let started = Instant::now();
        while started.elapsed().as_secs_f64() < seconds {
            let t = Instant::now();
            let Some(mut frame) = source.next_frame()? else {
                break;
            };
            spent.decode += t.elapsed().as_secs_f64();
            first.get_or_insert(frame.pts);
            last = frame.pts;
            analysed += 1;
            let t = Instant::now();
            let step = pipeline.frame(&frame);
            spent.scene += t.elapsed().as_secs_f64();
            let events = match step {
                Step::Done(events) => events,
                Step::Detect => {
                    // A frame the scene model saw as grey only (`from_luma`) gets its
                    // RGB now, as the camera task makes it: part of decoding.
                    let t = Instant::now();
                    if let Err(message) = frame.make_rgb(&mut rgb) {
                        return Err(SizingError::Source(SourceError::Read {
                            camera: cam.id.clone(),
                            message,
                        }));
                    }
                    spent.decode += t.elapsed().as_secs_f64();
                    let t = Instant::now();
                    let found = detector.detect(RgbView {
                        width: frame.width,
                        height: frame.height,
                        data: &frame.data,
                    })?;
                    spent.inference += t.elapsed().as_secs_f64();
                    inferences += 1;
                    let t = Instant::now();
                    let events = pipeline.detected(Detected::Found {
                        detections: found.detections,
                        inference: found.elapsed,
                    });
                    spent.rules += t.elapsed().as_secs_f64();
                    events
                }
            };
            let t = Instant::now();
            for out in &events {
                std::hint::black_box(serde_json::to_vec(&out.event).unwrap_or_default());
            }
            spent.publish += t.elapsed().as_secs_f64();
        }
        let frame_s = source.frame_interval().as_secs_f64();
        let stream_s = first.map_or(0.0, |f| (last - f).as_secs_f64() + frame_s);
        if analysed == 0 || stream_s <= 0.0 {
            return Err(SizingError::NoFrames {
                camera: cam.id.clone(),
                seconds,
            });
        }
        let per = |v: f64| v / stream_s;
        runs.push(CameraRun {
            camera: cam.id.clone(),
            fps: cam.fps,
            stream_s,
            frames_decoded: stats.snapshot().frames_decoded,
            frames_analysed: analysed,
            inferences,
            costs: Costs {
                decode: per(spent.decode),
                scene: per(spent.scene),
                inference: per(spent.inference),
                rules: per(spent.rules),
                publish: per(spent.publish),
            },
        });
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let costs = Costs::mean(&runs.iter().map(|r| r.costs).collect::<Vec<_>>());
    Ok(Report {
        cores,
        sizing: costs.sizing(cores),
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cameras_sustained_follow_the_costs() {
        let c = |decode, scene, inference, rules| Costs {
            decode,
            scene,
            inference,
            rules,
            publish: 0.0,
        };
        // (costs, cores, cameras, per camera)
        let cases = [
            // 5 fps × 20 ms inference = 0.1 of the box; decode 0.02 s/s over 2 cores.
            (c(0.02, 0.0, 0.1, 0.0), 2, 9, 0.11),
            (c(0.0, 0.0, 0.1, 0.0), 2, 10, 0.1),
            // Gated: a tenth of the inferences, decode and scene dominate.
            (c(0.04, 0.01, 0.01, 0.002), 2, 27, 0.036),
            (c(0.04, 0.01, 0.01, 0.002), 4, 43, 0.023),
            (c(0.0, 0.0, 1.5, 0.0), 2, 0, 1.5),
        ];
        for (costs, cores, cameras, per_camera) in cases {
            let s = costs.sizing(cores);
            assert_eq!(s.cameras, cameras, "{costs:?} on {cores}");
            assert!((s.per_camera - per_camera).abs() < 1e-9, "{s:?}");
            assert!((0.0..=1.0).contains(&s.headroom) || cameras == 0, "{s:?}");
        }
    }

    #[test]
    fn nothing_to_do_is_no_limit_and_means_average() {
        assert_eq!(Costs::default().sizing(2).cameras, u32::MAX);
        let a = Costs {
            decode: 0.02,
            inference: 0.1,
            ..Costs::default()
        };
        let b = Costs {
            decode: 0.04,
            inference: 0.2,
            ..Costs::default()
        };
        let m = Costs::mean(&[a, b]);
        assert!((m.decode - 0.03).abs() < 1e-12 && (m.inference - 0.15).abs() < 1e-12);
    }
}
