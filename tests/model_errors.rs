//! A model that cannot be used stops start-up (`run`) and `check-config` with
//! exit code 2 and a message naming the file and the problem; execution
//! providers are tried in the configured order.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn config(model: &Path, extra_model: &str, detector: &str) -> String {
    format!(
        r#"
[node]
id = "test-node"

[mqtt]
url = "mqtt://127.0.0.1:1"

[model]
path = "{}"
{extra_model}

[detector]
{detector}

[outbox]
path = "outbox.sqlite"

[[camera]]
id = "gate"
url = "clip.mp4"

[[camera.zone]]
id = "road"
polygon = [[0, 0], [1, 0], [1, 1], [0, 1]]

[camera.zone.congestion]
levels.light = 3
levels.moderate = 6
levels.heavy = 9
"#,
        model.display()
    )
}

fn run(cmd: &str, dir: &Path, text: &str) -> (Output, String) {
    let path = common::write_config(dir, text);
    let out = Command::new(common::bin())
        .arg(cmd)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

/// Both start-up and check-config refuse with exit code 2 and every needle in the message.
fn assert_refused(dir: &Path, text: &str, needles: &[&str]) {
    for cmd in ["check-config", "run"] {
        let (out, stderr) = run(cmd, dir, text);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {stderr}");
        let error = stderr
            .lines()
            .find(|l| l.starts_with("streetwatch: error:"))
            .unwrap_or_else(|| panic!("{cmd}: no error line in {stderr}"));
        for n in needles {
            assert!(error.contains(n), "{cmd}: expected {n:?} in: {error}");
        }
    }
}

#[test]
fn missing_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("litter-v3.onnx");
    assert_refused(
        dir.path(),
        &config(&model, "", ""),
        &["model file", "litter-v3.onnx", "not found"],
    );
}

#[test]
fn a_file_that_is_not_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("notes.onnx");
    std::fs::write(&model, "this is a text file, not a model\n").unwrap();
    std::fs::copy(
        common::cached("models/variants/yolov8.toml"),
        dir.path().join("notes.toml"),
    )
    .unwrap();
    assert_refused(
        dir.path(),
        &config(&model, "", ""),
        &["notes.onnx", "cannot load it (is it an ONNX model?)"],
    );
}

#[test]
fn wrong_input_rank() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::cached("models/variants/broken_rank.onnx");
    assert_refused(
        dir.path(),
        &config(&model, "", ""),
        &["broken_rank.onnx", "input \"flat\" has rank 3", "rank-4"],
    );
}

#[test]
fn unknown_output_layout() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::cached("models/variants/broken_layout.onnx");
    assert_refused(
        dir.path(),
        &config(&model, "", ""),
        &[
            "broken_layout.onnx",
            "unknown output layout",
            "features [1, 3549, 84, 1]",
            "output.format",
        ],
    );
}

#[test]
fn label_count_differs_from_class_count() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("three.toml");
    let text = std::fs::read_to_string(common::cached("models/variants/yolov8.toml")).unwrap();
    let labels = text.lines().find(|l| l.starts_with("labels = ")).unwrap();
    std::fs::write(
        &manifest,
        text.replace(labels, r#"labels = ["person", "litter", "cart"]"#),
    )
    .unwrap();
    let model = common::cached("models/variants/yolov8.onnx");
    assert_refused(
        dir.path(),
        &config(
            &model,
            &format!("manifest = \"{}\"", manifest.display()),
            "",
        ),
        &["yolov8.onnx", "80 classes", "3 labels"],
    );
}

#[test]
fn a_model_without_manifest_or_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("anonymous.onnx");
    std::os::unix::fs::symlink(common::cached("models/variants/yolov8.onnx"), &model).unwrap();
    assert_refused(
        dir.path(),
        &config(&model, "", ""),
        &["anonymous.onnx", "no manifest", "anonymous.toml"],
    );
}

#[test]
fn unavailable_provider_is_logged_and_the_next_one_chosen() {
    // The PyPI ONNX Runtime build has no CUDA: cuda fails with a reason, cpu runs.
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        &common::default_model(),
        "",
        r#"providers = ["cuda", "cpu"]"#,
    );
    let (out, stderr) = run("check-config", dir.path(), &text);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("on cpu"), "{stdout}");
    let failed = stderr
        .lines()
        .find(|l| l.contains("execution provider not usable"))
        .unwrap_or_else(|| panic!("no provider failure logged: {stderr}"));
    assert!(
        failed.contains("provider=cuda") && failed.contains("reason="),
        "{failed}"
    );
}

#[test]
fn no_usable_provider_exits_2_with_each_reason() {
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        &common::default_model(),
        "",
        r#"providers = ["tensorrt", "cuda"]"#,
    );
    assert_refused(
        dir.path(),
        &text,
        &["with any configured provider", "tensorrt:", "cuda:"],
    );
    let text = config(&common::default_model(), "", r#"providers = ["tpu"]"#);
    let (out, stderr) = run("check-config", dir.path(), &text);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown variant `tpu`"), "{stderr}");
    assert!(stderr.contains("providers = [\"tpu\"]"), "{stderr}");
}
