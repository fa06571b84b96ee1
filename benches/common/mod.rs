//! Bench fixtures: real frames in camera sizes, from the set-up cache.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

pub fn cached(rel: &str) -> PathBuf {
    let p = streetwatch::cache_dir().join(rel);
    assert!(
        p.exists(),
        "{} is missing: run `make setup` first",
        p.display()
    );
    p
}

/// Frame 200 of vtest.avi (768×576, a campus road), decoded by the ffmpeg CLI.
pub fn vtest_frame() -> image::RgbImage {
    vtest_frame_at(200)
}

/// Frame `n` of vtest.avi, decoded by the ffmpeg CLI.
pub fn vtest_frame_at(n: u32) -> image::RgbImage {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("f.png");
    let select = format!("select='eq(n\\,{n})'");
    let ok = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-i"])
        .arg(cached("media/vtest.avi"))
        .args(["-vf", &select, "-frames:v", "1"])
        .arg(&png)
        .status()
        .expect("ffmpeg runs")
        .success();
    assert!(ok, "ffmpeg could not extract a vtest frame");
    streetwatch::detect::load_image(&png).unwrap()
}

/// A 1920×1080 frame: ultralytics zidane.jpg (1280×720) scaled up, as a 1080p camera sends.
pub fn full_hd_frame() -> image::RgbImage {
    let img = streetwatch::detect::load_image(&cached("media/zidane.jpg")).unwrap();
    image::imageops::resize(&img, 1920, 1080, image::imageops::FilterType::Triangle)
}
