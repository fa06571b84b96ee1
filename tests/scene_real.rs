//! The scene model on real frames.
//!
//! - A real object (a crop of scenetext05.jpg: a yellow barrier with its sign,
//!   on road) is pasted on the empty cobbled street of leuvenB.jpg, played as a
//!   still camera at 5 fps with sensor-like noise: reported once still, where
//!   it is, and gone once removed.
//! - The sample video vtest.avi (people walking on a campus road, 79 s),
//!   decoded by the `ffmpeg` command line at the daemon's default 5 fps: the
//!   walkers are motion, not static regions; the few regions are small and lie
//!   on people who stand still, as the real detector confirms.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use image::RgbImage;
use image::imageops::{self, FilterType};
use streetwatch::detect::{Detector, DetectorOptions, RgbView};
use streetwatch::geom::PxBox;
use streetwatch::scene::{SceneConfig, SceneModel, SceneUpdate, StaticRegion};

const FPS: u64 = 5;

fn pts(n: u64) -> Duration {
    Duration::from_millis(n * 1000 / FPS)
}

fn iou(a: PxBox, b: [f32; 4]) -> f32 {
    a.iou(&PxBox(b))
}

/// ±3 grey levels of deterministic per-frame noise (xorshift), like a sensor's:
/// a still photo repeated byte for byte would be an unrealistically quiet camera.
fn add_noise(img: &mut RgbImage, frame: u64) {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ frame.wrapping_mul(0xD1B5_4A32_D192_ED03);
    for px in img.pixels_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let d = (x % 7) as i16 - 3;
        for c in &mut px.0 {
            *c = (*c as i16 + d).clamp(0, 255) as u8;
        }
    }
}

#[test]
fn an_object_pasted_on_a_real_street_is_found_and_its_removal_seen() {
    let street = streetwatch::detect::load_image(&common::media("leuvenB.jpg")).unwrap();
    let source = streetwatch::detect::load_image(&common::media("scenetext05.jpg")).unwrap();
    // The barrier's right half with part of its NO PARKING sign, bars and road.
    let crop = imageops::crop_imm(&source, 440, 270, 280, 280).to_image();
    let object = imageops::resize(&crop, 60, 60, FilterType::Triangle);
    let (ox, oy) = (340u32, 450u32);
    let truth = [ox as f32, oy as f32, (ox + 60) as f32, (oy + 60) as f32];
    let (put, lift, end) = (5 * FPS, 15 * FPS, 20 * FPS);

    let cfg = SceneConfig::default();
    let still_s = cfg.still_s;
    let mut model = SceneModel::new(cfg);
    let mut ups: Vec<SceneUpdate> = Vec::new();
    for n in 0..end {
        let mut frame = street.clone();
        if (put..lift).contains(&n) {
            imageops::replace(&mut frame, &object, ox as i64, oy as i64);
        }
        add_noise(&mut frame, n);
        ups.push(model.update(pts(n), frame.width(), frame.height(), frame.as_raw()));
    }

    for (n, u) in ups.iter().enumerate().take(put as usize) {
        assert!(
            u.regions.is_empty(),
            "frame {n} (empty street): {:?}",
            u.regions
        );
    }
    let first = ups
        .iter()
        .position(|u| !u.regions.is_empty())
        .expect("the object is found");
    let delay = pts(first as u64) - pts(put);
    eprintln!("found {:.1} s after it was put down", delay.as_secs_f64());
    assert!(
        delay.as_secs_f64() <= still_s + 1.0,
        "found {delay:?} after it was put down"
    );
    let region = &ups[first].regions[0];
    for (n, u) in ups.iter().enumerate().take(lift as usize).skip(first) {
        assert_eq!(u.regions.len(), 1, "frame {n}: {:?}", u.regions);
        let r = &u.regions[0];
        assert_eq!(r.id, region.id, "frame {n}: the id changed");
        assert!(
            iou(r.bbox, truth) >= 0.5,
            "frame {n}: {:?} vs truth {truth:?} (IoU {:.2})",
            r.bbox,
            iou(r.bbox, truth)
        );
    }
    let last = &ups[lift as usize - 1].regions[0];
    eprintln!(
        "region {:?} area {:.4}, IoU {:.2} with the truth",
        last.bbox,
        last.area,
        iou(last.bbox, truth)
    );
    let gone = (lift as usize..end as usize)
        .find(|&n| ups[n].regions.is_empty())
        .expect("the region goes away");
    // The clean street is seen at once (the region is not seen any more) and
    // the region goes once it has been seen for `still_s`.
    for (n, u) in ups.iter().enumerate().take(gone).skip(lift as usize + 1) {
        assert!(
            u.regions.iter().all(|r| r.cleared >= 0.9),
            "frame {n}: the street is clean, yet {:?}",
            u.regions
        );
    }
    let after = pts(gone as u64) - pts(lift);
    assert!(
        after.as_secs_f64() <= still_s + 1.0,
        "gone {after:?} after removal"
    );
    for (n, u) in ups.iter().enumerate().skip(gone) {
        assert!(
            u.regions.is_empty(),
            "frame {n} (street clean): {:?}",
            u.regions
        );
    }
    assert!(ups[put as usize].motion > 0.0 && ups[lift as usize].motion > 0.0);
}

/// Frames of vtest.avi at 5 fps, decoded by the ffmpeg command line to raw RGB.
fn vtest_frames(seconds: u64, mut each: impl FnMut(u64, &[u8])) -> (u32, u32) {
    let (w, h) = (768u32, 576u32);
    let mut child = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(common::media("vtest.avi"))
        .args(["-vf", &format!("fps={FPS}"), "-t", &seconds.to_string()])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("ffmpeg must be installed (make setup)");
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let mut n = 0;
    while out.read_exact(&mut buf).is_ok() {
        each(n, &buf);
        n += 1;
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(n, seconds * FPS, "frames decoded");
    (w, h)
}

/// The share of `region` that lies inside `other`.
fn covered(region: PxBox, other: PxBox) -> f32 {
    region.covered_by(&other)
}

#[test]
fn people_walking_in_real_video_are_motion_not_static_regions() {
    let mut det = Detector::open(&DetectorOptions::for_model(common::default_model()))
        .expect("default model opens");
    let mut model = SceneModel::new(SceneConfig::default());
    let mut motions = Vec::new();
    // (time, region, covered by a detected person?)
    let mut seen: Vec<(f64, StaticRegion, bool)> = Vec::new();
    let seconds = 79;
    vtest_frames(seconds, |n, rgb| {
        let u = model.update(pts(n), 768, 576, rgb);
        motions.push(u.motion);
        if u.regions.is_empty() {
            return;
        }
        let people: Vec<PxBox> = det
            .detect(RgbView {
                width: 768,
                height: 576,
                data: rgb,
            })
            .unwrap()
            .detections
            .iter()
            .filter(|d| det.label(d.class_id) == "person")
            .map(|d| d.bbox)
            .collect();
        // A region that shows the clean picture again (someone who stood
        // there walked on) is kept for `still_s` but not seen: not counted.
        for r in u.regions.into_iter().filter(|r| r.hidden + r.cleared < 0.5) {
            let person = people.iter().any(|p| covered(r.bbox, *p) >= 0.5);
            eprintln!(
                "{:.1} s: region {} {:?} area {:.4} person: {person}",
                pts(n).as_secs_f64(),
                r.id,
                r.bbox,
                r.area
            );
            seen.push((pts(n).as_secs_f64(), r, person));
        }
    });
    let moving = motions.iter().skip(1).filter(|&&m| m > 0.0).count();
    let mean = motions.iter().sum::<f32>() / motions.len() as f32;
    let ids: std::collections::BTreeSet<u64> = seen.iter().map(|s| s.1.id).collect();
    let unexplained: Vec<_> = seen.iter().filter(|s| !s.2).collect();
    eprintln!(
        "{} frames: motion > 0 in {moving}, mean motion {mean:.4}; {} region-frames ({} ids), {} not on a person",
        motions.len(),
        seen.len(),
        ids.len(),
        unexplained.len()
    );
    // People walk through the whole clip: nearly every frame has motion.
    assert!(
        moving as f32 >= 0.95 * (motions.len() - 1) as f32,
        "motion in {moving} frames"
    );
    // The clip has no dropped object, but it does have people who stop for a few
    // seconds (a static region once still for `still_s`, by design: the rules drop
    // regions under a tracked person), a fluttering tape and, at the very end, a
    // car's tailgate opening (real, still changes). Measured with FFmpeg 5.1:
    // 39 region-frames in view of 395 (6 ids), 33 of them on a person the
    // model finds (the others: a person the model misses behind a sign post,
    // the tape, the tailgate); a region whose person walked on is kept, not
    // seen, for `still_s` more. The bounds leave room for another decoder's
    // rounding, not for walkers turning into regions.
    let frames_with_regions: std::collections::BTreeSet<u64> = seen
        .iter()
        .map(|s| (s.0 * FPS as f64).round() as u64)
        .collect();
    assert!(
        frames_with_regions.len() as f32 <= 0.2 * motions.len() as f32,
        "{} frames with regions",
        frames_with_regions.len()
    );
    assert!(ids.len() <= 8, "{} regions", ids.len());
    let largest = seen.iter().map(|s| s.1.area).fold(0.0f32, f32::max);
    assert!(largest <= 0.003, "a region of {largest} of the frame");
    assert!(
        unexplained.len() as f32 <= 0.3 * seen.len() as f32,
        "{} of {} region-frames not on a person: {unexplained:?}",
        unexplained.len(),
        seen.len()
    );
}
