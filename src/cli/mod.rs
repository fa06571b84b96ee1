//! The bodies of the subcommands that make pictures: `detect`, `preview`, `replay`.
//! Each reads its inputs, calls the library and writes its outputs; `main.rs`
//! parses the command line and maps errors to exit codes.

pub mod detect;
pub mod preview;
pub mod replay;

use std::path::Path;

use anyhow::Context;

/// Writes `img` as a JPEG at `quality` to `path`.
pub fn write_jpeg(path: &Path, img: &image::RgbImage, quality: u8) -> anyhow::Result<()> {
    let bytes = streetwatch::evidence::jpeg(img.as_raw(), img.width(), img.height(), quality)
        .with_context(|| format!("encoding {}", path.display()))?;
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
