//! A bad configuration refuses to start: exit code 2 and a message naming the key.

mod common;

use std::process::{Command, Output};

const GOOD: &str = r#"
[node]
id = "test-node"

[mqtt]
url = "mqtt://127.0.0.1:1"

[outbox]
path = "outbox.sqlite"

[[camera]]
id = "gate"
url = "clip.mp4"
fps = 2

[[camera.zone]]
id = "road"
polygon = [[0, 0], [1, 0], [1, 1], [0, 1]]

[camera.zone.congestion]
classes = ["person"]
levels = { light = 3, moderate = 6, heavy = 9 }
"#;

fn run(args: &[&str], config: &str) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write_config(dir.path(), config);
    let out = Command::new(common::bin())
        .args(args)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

fn assert_refused(args: &[&str], config: &str, needles: &[&str]) {
    let (out, stderr) = run(args, config);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "expected {n:?} in: {stderr}");
    }
}

#[test]
fn unknown_key_exits_2_naming_it() {
    for cmd in ["run", "check-config"] {
        assert_refused(
            &[cmd],
            &GOOD.replace("fps = 2", "fps = 2\nframerate = 5"),
            &["unknown field `framerate`", "streetwatch.toml"],
        );
    }
}

#[test]
fn missing_camera_url_exits_2_naming_it() {
    assert_refused(
        &["run"],
        &GOOD.replace("url = \"clip.mp4\"\n", ""),
        &["missing field `url`"],
    );
}

#[test]
fn out_of_range_values_exit_2_naming_the_key() {
    assert_refused(
        &["run"],
        &GOOD.replace("fps = 2", "fps = -1"),
        &["camera[gate].fps"],
    );
    assert_refused(
        &["run"],
        &GOOD.replace("[1, 0], [1, 1], [0, 1]]", "[1, 1]]"),
        &["camera[gate].zone[road].polygon", "three"],
    );
    assert_refused(
        &["run"],
        &GOOD.replace("mqtt://127.0.0.1:1", "tcp://127.0.0.1:1"),
        &["mqtt.url", "mqtt://"],
    );
}

#[test]
fn unset_environment_variable_exits_2_naming_it() {
    assert_refused(
        &["run"],
        &GOOD.replace(
            "mqtt://127.0.0.1:1",
            "mqtt://${SW_TEST_SURELY_UNSET_BROKER}",
        ),
        &["SW_TEST_SURELY_UNSET_BROKER"],
    );
}

#[test]
fn class_the_model_does_not_know_exits_2_naming_the_key() {
    common::default_model();
    assert_refused(
        &["check-config"],
        &GOOD.replace("classes = [\"person\"]", "classes = [\"persn\"]"),
        &["camera[gate].zone[road].congestion.classes", "\"persn\""],
    );
}

#[test]
fn good_config_checks_ok_with_the_real_model() {
    common::default_model();
    let (out, stderr) = run(&["check-config"], GOOD);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ok") && stdout.contains("nanodet-m-416"),
        "{stdout}"
    );
}
