//! What this build is and what it finds on this box, for `--version`: the
//! version and git commit (recorded by `build.rs`), the ONNX Runtime version the
//! library it would load reports, the libavcodec version, and the default
//! model's sha256 against its pin.

use std::path::Path;

use crate::detect::{self, manifest};

/// The `--version` text, one fact per line.
pub fn report() -> String {
    let mut out = format!(
        "streetwatch {} (commit {})\n",
        env!("CARGO_PKG_VERSION"),
        env!("STREETWATCH_GIT_COMMIT")
    );
    let ort = detect::runtime_path(None);
    match detect::runtime_version(&ort) {
        Ok(v) => out += &format!("ONNX Runtime {v} ({})\n", ort.display()),
        Err(e) => out += &format!("ONNX Runtime: {e}\n"),
    }
    let avcodec = ffmpeg_next::codec::version();
    out += &format!(
        "FFmpeg libavcodec {}.{}.{}\n",
        avcodec >> 16,
        (avcodec >> 8) & 0xff,
        avcodec & 0xff
    );
    let model = manifest::default_model_path();
    let pinned = manifest::default_model_sha256();
    out += &match sha256_file(&model) {
        Ok(sum) if sum == pinned => format!("default model {} sha256 {sum}\n", model.display()),
        Ok(sum) => format!(
            "default model {} sha256 {sum} (differs from the pinned {pinned})\n",
            model.display()
        ),
        Err(e) => format!(
            "default model {}: {e} (pinned sha256 {pinned})\n",
            model.display()
        ),
    };
    out
}

/// The sha256 of a file, lower-case hex.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            super::sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
