//! A bad configuration refuses to start: exit code 2 and a message naming the
//! key. `check-config` catches what `run` would trip on: 67 bad configs, one
//! table, each with the fragment of the message that names the key (or, for
//! TOML syntax, the line and column).

mod common;

use std::path::Path;
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

/// Files the configs below name, beside the config: a PEM certificate, a file
/// that is not PEM, a folder.
fn fixtures(dir: &Path) {
    std::fs::write(
        dir.join("ca.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(dir.join("plain.txt"), "not a certificate\n").unwrap();
    std::fs::create_dir(dir.join("folder")).unwrap();
}

fn run(args: &[&str], config: &str) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    fixtures(dir.path());
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
fn unset_variable_exits_2_naming_the_key_path() {
    assert_refused(
        &["check-config"],
        &GOOD.replace(
            "url = \"mqtt://127.0.0.1:1\"",
            "url = \"mqtt://127.0.0.1:1\"\nusername = \"${SW_TEST_SURELY_UNSET_USER}\"",
        ),
        &[
            "`mqtt.username`",
            "environment variable SW_TEST_SURELY_UNSET_USER is not set",
        ],
    );
}

#[test]
fn a_variable_cannot_inject_keys_and_comments_are_not_expanded() {
    common::default_model();
    let dir = tempfile::tempdir().unwrap();
    let config = GOOD
        .replace(
            "url = \"mqtt://127.0.0.1:1\"",
            "url = \"mqtt://127.0.0.1:1\"\nusername = \"${SW_TEST_USER}\"",
        )
        .replace(
            "[outbox]",
            "# the password comes from ${SW_TEST_SURELY_UNSET_IN_COMMENT}\n[outbox]",
        );
    let path = common::write_config(dir.path(), &config);
    let out = Command::new(common::bin())
        .args(["check-config", "--config"])
        .arg(&path)
        // Expanded into the text, this would end the string, start a second [mqtt]
        // table (refused as a duplicate) and point the node at another broker.
        .env(
            "SW_TEST_USER",
            "x\"\n]\n[mqtt]\nurl = \"mqtt://evil:1\"\n[node]\nid = \"evil\"",
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
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

/// One bad config: what changes in GOOD, and what the message must say.
struct Bad {
    name: &'static str,
    from: &'static str,
    to: &'static str,
    says: &'static [&'static str],
}

const fn bad(
    name: &'static str,
    from: &'static str,
    to: &'static str,
    says: &'static [&'static str],
) -> Bad {
    Bad {
        name,
        from,
        to,
        says,
    }
}

const BAD: &[Bad] = &[
    // TOML itself: line and column.
    bad("syntax", "fps = 2", "fps = = 2", &["line 14, column 7"]),
    bad(
        "wrong type",
        "fps = 2",
        "fps = \"fast\"",
        &["line 14, column 7", "invalid type"],
    ),
    bad("unclosed table", "[outbox]", "[outbox", &["line 8, column"]),
    bad(
        "unknown key",
        "fps = 2",
        "fps = 2\nframerate = 5",
        &["unknown field `framerate`"],
    ),
    bad(
        "unknown section",
        "[outbox]",
        "[outbx]",
        &["unknown field `outbx`"],
    ),
    bad(
        "missing url",
        "url = \"clip.mp4\"\n",
        "",
        &["missing field `url`"],
    ),
    bad(
        "unknown hwaccel",
        "fps = 2",
        "fps = 2\nhwaccel = \"gpu\"",
        &["unknown variant `gpu`"],
    ),
    bad(
        "unset variable",
        "mqtt://127.0.0.1:1",
        "mqtt://${SW_TEST_SURELY_UNSET_BROKER}",
        &["SW_TEST_SURELY_UNSET_BROKER"],
    ),
    // [node]
    bad(
        "empty node id",
        "id = \"test-node\"",
        "id = \"\"",
        &["`node.id`"],
    ),
    bad(
        "node id with a space",
        "id = \"test-node\"",
        "id = \"pole 17\"",
        &["`node.id`"],
    ),
    bad(
        "unknown time zone",
        "id = \"test-node\"",
        "id = \"test-node\"\ntimezone = \"Mars/Olympus\"",
        &["`node.timezone`"],
    ),
    // [mqtt]
    bad(
        "broker scheme",
        "mqtt://127.0.0.1:1",
        "tcp://127.0.0.1:1",
        &["`mqtt.url`", "mqtt://"],
    ),
    bad(
        "credentials in the url",
        "mqtt://127.0.0.1:1",
        "mqtt://u:p@127.0.0.1:1",
        &["`mqtt.url`"],
    ),
    bad(
        "port out of range",
        "mqtt://127.0.0.1:1",
        "mqtt://127.0.0.1:70000",
        &["`mqtt.url`"],
    ),
    bad(
        "wildcard prefix",
        "url = \"mqtt://127.0.0.1:1\"",
        "url = \"mqtt://127.0.0.1:1\"\ntopic_prefix = \"city/#\"",
        &["`mqtt.topic_prefix`"],
    ),
    bad(
        "plaintext refused",
        "url = \"mqtt://127.0.0.1:1\"",
        "url = \"mqtt://127.0.0.1:1\"\nrequire_tls = true",
        &["`mqtt.url`", "require_tls"],
    ),
    bad(
        "ca file without TLS",
        "url = \"mqtt://127.0.0.1:1\"",
        "url = \"mqtt://127.0.0.1:1\"\nca_file = \"ca.pem\"",
        &["`mqtt.ca_file`"],
    ),
    bad(
        "cert without key",
        "url = \"mqtt://127.0.0.1:1\"",
        "url = \"mqtts://127.0.0.1:1\"\nclient_cert = \"ca.pem\"",
        &["`mqtt.client_cert`"],
    ),
    bad(
        "two password sources",
        "url = \"mqtt://127.0.0.1:1\"",
        "url = \"mqtt://127.0.0.1:1\"\nusername = \"u\"\npassword_env = \"P\"\npassword_file = \"plain.txt\"",
        &["`mqtt.password_env`"],
    ),
    bad(
        "password without user",
        "url = \"mqtt://127.0.0.1:1\"",
        "url = \"mqtt://127.0.0.1:1\"\npassword_file = \"plain.txt\"",
        &["`mqtt.username`"],
    ),
    bad(
        "stats too often",
        "url = \"mqtt://127.0.0.1:1\"",
        "url = \"mqtt://127.0.0.1:1\"\nstats_interval_s = 0.5",
        &["`mqtt.stats_interval_s`"],
    ),
    bad(
        "no inflight",
        "url = \"mqtt://127.0.0.1:1\"",
        "url = \"mqtt://127.0.0.1:1\"\nmax_inflight = 0",
        &["`mqtt.max_inflight`"],
    ),
    bad(
        "password file missing",
        "url = \"mqtt://127.0.0.1:1\"",
        "url = \"mqtt://127.0.0.1:1\"\nusername = \"u\"\npassword_file = \"nope.txt\"",
        &["`mqtt.password_file`", "nope.txt"],
    ),
    bad(
        "password variable unset",
        "url = \"mqtt://127.0.0.1:1\"",
        "url = \"mqtt://127.0.0.1:1\"\nusername = \"u\"\npassword_env = \"SW_TEST_SURELY_UNSET_PASSWORD\"",
        &["`mqtt.password_env`", "SW_TEST_SURELY_UNSET_PASSWORD"],
    ),
    bad(
        "CA file missing",
        "url = \"mqtt://127.0.0.1:1\"",
        "url = \"mqtts://127.0.0.1:1\"\nca_file = \"nope.pem\"",
        &["`mqtt.ca_file`", "nope.pem"],
    ),
    bad(
        "CA file not PEM",
        "url = \"mqtt://127.0.0.1:1\"",
        "url = \"mqtts://127.0.0.1:1\"\nca_file = \"plain.txt\"",
        &["`mqtt.ca_file`", "PEM"],
    ),
    bad(
        "client key missing",
        "url = \"mqtt://127.0.0.1:1\"",
        "url = \"mqtts://127.0.0.1:1\"\nclient_cert = \"ca.pem\"\nclient_key = \"nope.key\"",
        &["`mqtt.client_key`", "nope.key"],
    ),
    // [model], [detector]
    bad(
        "model missing",
        "[outbox]",
        "[model]\npath = \"nope.onnx\"\n[outbox]",
        &["`model.path`", "nope.onnx"],
    ),
    bad(
        "model is a folder",
        "[outbox]",
        "[model]\npath = \"folder\"\n[outbox]",
        &["`model.path`", "is a folder"],
    ),
    bad(
        "manifest missing",
        "[outbox]",
        "[model]\nmanifest = \"nope.toml\"\n[outbox]",
        &["`model.manifest`", "nope.toml"],
    ),
    bad(
        "runtime missing",
        "[outbox]",
        "[detector]\nort_library = \"nope.so\"\n[outbox]",
        &["`detector.ort_library`", "nope.so"],
    ),
    bad(
        "score above 1",
        "[outbox]",
        "[model]\nmin_score = 2\n[outbox]",
        &["`model.min_score`"],
    ),
    bad(
        "IoU of 0",
        "[outbox]",
        "[model]\nnms_iou = 0\n[outbox]",
        &["`model.nms_iou`"],
    ),
    bad(
        "no providers",
        "[outbox]",
        "[detector]\nproviders = []\n[outbox]",
        &["`detector.providers`"],
    ),
    bad(
        "unknown provider",
        "[outbox]",
        "[detector]\nproviders = [\"npu\"]\n[outbox]",
        &["unknown variant `npu`"],
    ),
    bad(
        "batch of 0",
        "[outbox]",
        "[detector]\nmax_batch = 0\n[outbox]",
        &["`detector.max_batch`"],
    ),
    bad(
        "batch wait too long",
        "[outbox]",
        "[detector]\nmax_wait_ms = 5000\n[outbox]",
        &["`detector.max_wait_ms`"],
    ),
    bad(
        "too many inferences at once",
        "[outbox]",
        "[detector]\nruns = 12\n[outbox]",
        &["`detector.runs`", "between 0"],
    ),
    // [outbox], [evidence]
    bad(
        "outbox under a file",
        "path = \"outbox.sqlite\"",
        "path = \"plain.txt/outbox.sqlite\"",
        &["`outbox.path`", "not a folder"],
    ),
    bad(
        "outbox is a folder",
        "path = \"outbox.sqlite\"",
        "path = \"folder\"",
        &["`outbox.path`", "is a folder"],
    ),
    bad(
        "outbox holds nothing",
        "path = \"outbox.sqlite\"",
        "path = \"outbox.sqlite\"\nmax_events = 0",
        &["`outbox.max_events`"],
    ),
    bad(
        "outbox age 0",
        "path = \"outbox.sqlite\"",
        "path = \"outbox.sqlite\"\nmax_age_h = 0",
        &["`outbox.max_age_h`"],
    ),
    bad(
        "JPEG quality 0",
        "[outbox]",
        "[evidence]\nquality = 0\n[outbox]",
        &["`evidence.quality`"],
    ),
    // [[camera]]
    bad(
        "camera id twice",
        "[[camera.zone]]",
        "[[camera]]\nid = \"gate\"\nurl = \"clip.mp4\"\n[[camera.zone]]",
        &["`camera[1].id`", "used twice"],
    ),
    bad(
        "camera id with a slash",
        "id = \"gate\"",
        "id = \"ga/te\"",
        &["`camera[0].id`"],
    ),
    bad(
        "camera fps 0",
        "fps = 2",
        "fps = 0",
        &["`camera[gate].fps`"],
    ),
    bad(
        "empty camera url",
        "url = \"clip.mp4\"",
        "url = \" \"",
        &["`camera[gate].url`"],
    ),
    bad(
        "stall timeout 0",
        "fps = 2",
        "fps = 2\nstall_timeout_s = 0",
        &["`camera[gate].stall_timeout_s`"],
    ),
    bad(
        "tracker scores upside down",
        "[[camera.zone]]",
        "[camera.tracker]\nlow_score = 0.9\n[[camera.zone]]",
        &["`camera[gate].tracker.low_score`"],
    ),
    bad(
        "scene check too fast",
        "[[camera.zone]]",
        "[camera.scene]\nrecheck_s = -1\n[[camera.zone]]",
        &["`camera[gate].scene.recheck_s`"],
    ),
    bad(
        "inertia too high",
        "polygon = [[0, 0]",
        "inertia = 5000\npolygon = [[0, 0]",
        &["`camera[gate].zone[road].inertia`"],
    ),
    bad(
        "camera latitude past the pole",
        "fps = 2",
        "fps = 2\nlocation = { lat = 91.0, lon = 116.4 }",
        &["`camera[gate].location.lat`", "latitude"],
    ),
    bad(
        "camera longitude out of range",
        "fps = 2",
        "fps = 2\nlocation = { lat = 39.9, lon = 216.4 }",
        &["`camera[gate].location.lon`", "longitude"],
    ),
    bad(
        "camera location without lon",
        "fps = 2",
        "fps = 2\nlocation = { lat = 39.9 }",
        &["missing field `lon`", "streetwatch.toml"],
    ),
    bad(
        "camera heading a full turn",
        "fps = 2",
        "fps = 2\nheading_deg = 360",
        &["`camera[gate].heading_deg`"],
    ),
    bad(
        "blank camera grid",
        "fps = 2",
        "fps = 2\ngrid = \" \"",
        &["`camera[gate].grid`", "blank"],
    ),
    bad(
        "blank zone address",
        "polygon = [[0, 0]",
        "address = \"\"\npolygon = [[0, 0]",
        &["`camera[gate].zone[road].address`", "blank"],
    ),
    // [[camera.zone]]
    bad(
        "zone id twice",
        "[camera.zone.congestion]",
        "[[camera.zone]]\nid = \"road\"\npolygon = [[0, 0], [1, 0], [1, 1]]\n[camera.zone.congestion]",
        &["`camera[gate].zone[1].id`", "used twice"],
    ),
    bad(
        "two corners",
        "[1, 0], [1, 1], [0, 1]]",
        "[1, 1]]",
        &["`camera[gate].zone[road].polygon`", "three"],
    ),
    bad(
        "corner outside the frame",
        "[1, 1], [0, 1]]",
        "[1, 1.5], [0, 1]]",
        &["`camera[gate].zone[road].polygon`", "outside"],
    ),
    bad(
        "bow tie",
        "[[0, 0], [1, 0], [1, 1], [0, 1]]",
        "[[0, 0], [1, 1], [1, 0], [0, 1]]",
        &["`camera[gate].zone[road].polygon`", "crosses itself"],
    ),
    bad(
        "corners on a line",
        "[[0, 0], [1, 0], [1, 1], [0, 1]]",
        "[[0, 0], [0.5, 0.5], [1, 1]]",
        &["`camera[gate].zone[road].polygon`", "no area"],
    ),
    bad(
        "a corner twice",
        "[[0, 0], [1, 0], [1, 1], [0, 1]]",
        "[[0, 0], [1, 0], [1, 0], [0, 1]]",
        &["`camera[gate].zone[road].polygon`", "same point"],
    ),
    bad(
        "folds back",
        "[[0, 0], [1, 0], [1, 1], [0, 1]]",
        "[[0, 0], [1, 0], [0.5, 0], [0.5, 1]]",
        &["`camera[gate].zone[road].polygon`", "crosses itself"],
    ),
    bad(
        "bad schedule",
        "polygon = [[0, 0]",
        "schedule = [\"7-19\"]\npolygon = [[0, 0]",
        &["`camera[gate].zone[road].schedule`"],
    ),
    bad(
        "levels not increasing",
        "moderate = 6",
        "moderate = 2",
        &["`camera[gate].zone[road].congestion.levels`"],
    ),
    bad(
        "class the model lacks",
        "classes = [\"person\"]",
        "classes = [\"persn\"]",
        &["`camera[gate].zone[road].congestion.classes`", "\"persn\""],
    ),
    bad(
        "rule class the model lacks, second rule",
        "[camera.zone.congestion]",
        "[camera.zone.illegal_parking]\nclasses = [\"tank\"]\n[camera.zone.congestion]",
        &[
            "`camera[gate].zone[road].illegal_parking.classes`",
            "\"tank\"",
        ],
    ),
];

#[test]
fn check_config_names_the_key_of_every_bad_config() {
    common::default_model();
    let cases: Vec<&Bad> = BAD.iter().collect();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    // Two at a time: most stop at parsing, some load the model.
    let failures: Vec<String> = cases
        .chunks(cases.len().div_ceil(2))
        .map(|chunk| {
            let chunk: Vec<&Bad> = chunk.to_vec();
            std::thread::spawn(move || {
                let mut failed = Vec::new();
                for b in chunk {
                    assert!(
                        GOOD.contains(b.from),
                        "{}: {:?} is not in GOOD",
                        b.name,
                        b.from
                    );
                    let text = GOOD.replacen(b.from, b.to, 1);
                    let (out, stderr) = run(&["check-config"], &text);
                    let missing: Vec<&&str> =
                        b.says.iter().filter(|n| !stderr.contains(**n)).collect();
                    if out.status.code() != Some(2) || !missing.is_empty() {
                        failed.push(format!(
                            "{}: exit {:?}, missing {missing:?} in: {stderr}",
                            b.name,
                            out.status.code()
                        ));
                    }
                }
                failed
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
