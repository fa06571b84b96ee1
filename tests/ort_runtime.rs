//! ONNX Runtime missing or too old: a clear error naming the path and the
//! version needed, exit code 2 — never a panic or an abort.

mod common;

use std::process::Command;

fn detect_with_ort(lib: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(common::bin())
        .arg("detect")
        .arg(common::media("bus.jpg"))
        .env("ORT_DYLIB_PATH", lib)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn missing_library_names_path_and_version() {
    common::default_model();
    let (code, stderr) = detect_with_ort(std::path::Path::new("/nonexistent/libonnxruntime.so"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("/nonexistent/libonnxruntime.so"),
        "{stderr}"
    );
    assert!(stderr.contains("1.31"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn older_library_is_refused_with_both_versions() {
    common::default_model();
    let old = common::cached("onnxruntime-1.22.0/libonnxruntime.so.1.22.0");
    let (code, stderr) = detect_with_ort(&old);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("1.22.0"), "found version named: {stderr}");
    assert!(stderr.contains("1.31"), "needed version named: {stderr}");
    assert!(stderr.contains(&old.display().to_string()), "{stderr}");
}

#[test]
fn a_library_that_is_not_onnx_runtime_is_refused() {
    common::default_model();
    // A real shared library without OrtGetApiBase.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/aarch64-linux-gnu/libm.so.6",
    ]
    .into_iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.exists())
    .expect("libm.so.6");
    let (code, stderr) = detect_with_ort(&libm);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("libm.so.6") && stderr.contains("OrtGetApiBase"),
        "{stderr}"
    );
}
