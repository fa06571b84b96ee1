//! Still-image source: a folder, or a glob of file names in one folder, of JPEG/PNG files
//! played as a video at the camera's fps (replays, snapshot-only cameras).
//!
//! Files are taken in name order; frame `i` has stream time `i / fps`. The list
//! is read again at each pass, so a snapshot camera's new files are seen on the
//! next loop. A file that cannot be decoded is counted and skipped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Frame, FrameSource, SourceError};
use crate::monitor::CameraStats;

const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// True if `url` names an image folder or a glob (`*`/`?` in the file name) rather than a video.
pub fn is_image_url(url: &str) -> bool {
    if url.contains("://") || url.starts_with("/dev/") {
        return false;
    }
    let p = Path::new(url);
    p.is_dir()
        || p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(['*', '?']))
}

/// `*` matches any run of characters, `?` one character.
fn wildcard(pattern: &[char], name: &[char]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some('*'), _) => {
            wildcard(&pattern[1..], name) || (!name.is_empty() && wildcard(pattern, &name[1..]))
        }
        (Some('?'), Some(_)) => wildcard(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => wildcard(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// The JPEG/PNG files `url` names, sorted.
pub fn list_images(url: &str) -> std::io::Result<Vec<PathBuf>> {
    let p = Path::new(url);
    let (dir, pattern): (&Path, Option<Vec<char>>) = if p.is_dir() {
        (p, None)
    } else {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        (
            p.parent().unwrap_or(Path::new(".")),
            Some(name.chars().collect()),
        )
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let ext_ok = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        let name_ok = pattern
            .as_ref()
            .is_none_or(|pat| wildcard(pat, &name.chars().collect::<Vec<_>>()));
        if ext_ok && name_ok && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Plays image files as frames.
pub struct ImageSource {
    camera: String,
    files: Vec<PathBuf>,
    next: usize,
    interval: Duration,
    stats: Arc<CameraStats>,
    opened_at: SystemTime,
}

impl ImageSource {
    pub fn open(
        camera: &str,
        url: &str,
        fps: f64,
        stats: Arc<CameraStats>,
    ) -> Result<Self, SourceError> {
        let open_err = |message: String| SourceError::Open {
            camera: camera.to_string(),
            url: super::mask_credentials(url),
            message,
        };
        let files = list_images(url).map_err(|e| open_err(e.to_string()))?;
        if files.is_empty() {
            return Err(open_err("no .jpg, .jpeg or .png file".into()));
        }
        Ok(Self {
            camera: camera.to_string(),
            files,
            next: 0,
            interval: Duration::from_secs_f64(1.0 / fps),
            stats,
            opened_at: SystemTime::now(),
        })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

impl FrameSource for ImageSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        while let Some(path) = self.files.get(self.next) {
            let index = self.next as u64;
            self.next += 1;
            let img = match image::open(path) {
                Ok(img) => img.into_rgb8(),
                Err(e) => {
                    CameraStats::add(&self.stats.decode_errors, 1);
                    tracing::warn!(camera = %self.camera, file = %path.display(), error = %e, "image skipped");
                    continue;
                }
            };
            CameraStats::add(&self.stats.frames_decoded, 1);
            CameraStats::add(&self.stats.frames_sampled, 1);
            let pts = self.interval * index as u32;
            return Ok(Some(Frame {
                width: img.width(),
                height: img.height(),
                data: img.into_raw(),
                pts,
                captured_at: self.opened_at + pts,
                index,
                decoded: None,
            }));
        }
        Ok(None)
    }

    fn is_live(&self) -> bool {
        false
    }

    fn frame_interval(&self) -> Duration {
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(p: &str, n: &str) -> bool {
        wildcard(
            &p.chars().collect::<Vec<_>>(),
            &n.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn wildcards() {
        assert!(w("*.jpg", "a.jpg"));
        assert!(w("cam-??.png", "cam-07.png"));
        assert!(!w("cam-??.png", "cam-7.png"));
        assert!(w("snap*2026*.jpg", "snap-2026-11-26.jpg"));
        assert!(!w("*.jpg", "a.png"));
    }
}
