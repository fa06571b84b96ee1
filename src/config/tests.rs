//! The configuration file: parsing, defaults, relative paths and the keys errors name.

use super::*;

const GOOD: &str = r#"
[node]
id = "pole-17"
[mqtt]
url = "mqtt://127.0.0.1:1883"
[outbox]
path = "/tmp/x.sqlite"
[[camera]]
id = "gate"
url = "clip.mp4"
fps = 4
[[camera.zone]]
id = "road"
polygon = [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]
[camera.zone.congestion]
levels = { light = 3, moderate = 6, heavy = 10 }
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_str_at(text, Path::new("/etc/streetwatch/test.toml"))
}

#[test]
fn good_config_parses_with_defaults_and_resolves_paths() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.mqtt.topic_prefix, "streetwatch");
    assert_eq!(c.cameras[0].url, "/etc/streetwatch/clip.mp4");
    let zone = &c.cameras[0].zones[0];
    assert_eq!(zone.anchor, Anchor::BottomCenter);
    assert_eq!(zone.inertia, 1);
    let crowd = zone.congestion.as_ref().unwrap();
    assert_eq!(crowd.classes, vec!["person".to_string()]);
    assert_eq!(crowd.levels.light, 3.0);
    assert_eq!(crowd.min_duration_s, 5.0);
    assert!(c.cameras[0].scene.enabled && !c.cameras[0].scene.motion_gate);
    assert_eq!(c.cameras[0].tracker.confirm_frames, 3);
    assert_eq!(
        c.referenced_classes(),
        vec![(
            "camera[gate].zone[road].congestion.classes".to_string(),
            "person".to_string()
        )]
    );
}

#[test]
fn unknown_key_is_named() {
    let err = parse(&GOOD.replace("fps = 4", "fsp = 4")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unknown field `fsp`"), "{msg}");
}

#[test]
fn missing_url_is_named() {
    let err = parse(&GOOD.replace("url = \"clip.mp4\"", "")).unwrap_err();
    assert!(err.to_string().contains("missing field `url`"), "{err}");
}

#[test]
fn bad_values_name_their_key() {
    for (from, to, key) in [
        ("fps = 4", "fps = 0", "camera[gate].fps"),
        ("id = \"road\"", "id = \"ro ad\"", "camera[gate].zone[0].id"),
        (
            "[1, 1], [0, 1]]",
            "[1, 1.5], [0, 1]]",
            "camera[gate].zone[road].polygon",
        ),
        (
            "moderate = 6",
            "moderate = 2",
            "camera[gate].zone[road].congestion.levels",
        ),
        (
            "polygon = [[0, 0.5]",
            "schedule = [\"7-19\"]\npolygon = [[0, 0.5]",
            "camera[gate].zone[road].schedule",
        ),
        (
            "fps = 4",
            "fps = 4\n[camera.tracker]\nlow_score = 0.9",
            "camera[gate].tracker.low_score",
        ),
        (
            "fps = 4",
            "fps = 4\n[camera.scene]\nrecheck_s = -1",
            "camera[gate].scene.recheck_s",
        ),
        (
            "id = \"pole-17\"",
            "id = \"pole-17\"\ntimezone = \"Mars/Olympus\"",
            "node.timezone",
        ),
        (
            "[camera.zone.congestion]",
            "[camera.zone.piled_materials]\n[camera.scene]\nenabled = false\n[camera.zone.congestion]",
            "camera[gate].scene.enabled",
        ),
        ("mqtt://127.0.0.1:1883", "http://127.0.0.1:1883", "mqtt.url"),
    ] {
        let err = parse(&GOOD.replace(from, to)).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key: k, .. } if k == key),
            "{to}: {err}"
        );
    }
}

#[test]
fn source_options_parse_and_are_checked() {
    let c = parse(GOOD).unwrap();
    let cam = &c.cameras[0];
    assert_eq!((cam.stall_timeout_s, cam.reconnect_max_s), (10.0, 30.0));
    assert_eq!(cam.hwaccel, HwAccel::None);
    assert_eq!(cam.rtsp_transport, RtspTransport::Tcp);
    assert!(!cam.looping && !cam.realtime);
    let text = GOOD.replace(
        "fps = 4",
        "fps = 4\nloop = true\nrealtime = true\nhwaccel = \"v4l2m2m\"\nrtsp_transport = \"udp\"\nstall_timeout_s = 3\nreconnect_max_s = 8",
    );
    let cam = &parse(&text).unwrap().cameras[0];
    assert!(cam.looping && cam.realtime);
    assert_eq!(cam.hwaccel, HwAccel::V4l2m2m);
    assert_eq!(cam.rtsp_transport, RtspTransport::Udp);
    assert_eq!((cam.stall_timeout_s, cam.reconnect_max_s), (3.0, 8.0));

    assert_eq!((cam.decode, cam.decoder_threads), (DecodeMode::Sampled, 0));
    let text = GOOD.replace(
        "fps = 4",
        "fps = 4\ndecode = \"keyframes\"\ndecoder_threads = 2",
    );
    let cam = &parse(&text).unwrap().cameras[0];
    assert_eq!(
        (cam.decode, cam.decoder_threads),
        (DecodeMode::Keyframes, 2)
    );
    let err = parse(&GOOD.replace("fps = 4", "fps = 4\ndecoder_threads = 17")).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "camera[gate].decoder_threads"),
        "{err}"
    );

    let err = parse(&GOOD.replace("fps = 4", "fps = 4\nhwaccel = \"gpu\"")).unwrap_err();
    assert!(err.to_string().contains("unknown variant `gpu`"), "{err}");
    let err = parse(&GOOD.replace("fps = 4", "fps = 4\nstall_timeout_s = 0")).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "camera[gate].stall_timeout_s"),
        "{err}"
    );
}

#[test]
fn max_pixels_defaults_to_4k_and_must_be_positive() {
    assert_eq!(parse(GOOD).unwrap().cameras[0].max_pixels, 3840 * 2160);
    let text = GOOD.replace("fps = 4", "fps = 4\nmax_pixels = 921600");
    assert_eq!(parse(&text).unwrap().cameras[0].max_pixels, 1280 * 720);
    for bad in ["0", "-5"] {
        let text = GOOD.replace("fps = 4", &format!("fps = 4\nmax_pixels = {bad}"));
        let err = parse(&text).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key, .. } if key == "camera[gate].max_pixels"),
            "{bad}: {err}"
        );
    }
    let err = parse(&GOOD.replace("fps = 4", "fps = 4\nmax_pixels = \"4k\"")).unwrap_err();
    assert!(err.to_string().contains("max_pixels"), "{err}");
}

#[test]
fn batching_keys_default_to_off_and_are_checked() {
    let c = parse(GOOD).unwrap();
    assert_eq!((c.detector.max_batch, c.detector.max_wait_ms), (1, 5));
    assert_eq!(c.detector.runs, 0, "the runs at once follow the provider");
    let text = format!("[detector]\nmax_batch = 4\nmax_wait_ms = 8\nruns = 1\n{GOOD}");
    let c = parse(&text).unwrap();
    assert_eq!((c.detector.max_batch, c.detector.max_wait_ms), (4, 8));
    assert_eq!(c.detector.runs, 1);
    for (line, key) in [
        ("max_batch = 0", "detector.max_batch"),
        ("max_batch = 65", "detector.max_batch"),
        ("max_wait_ms = 1001", "detector.max_wait_ms"),
        ("runs = 9", "detector.runs"),
    ] {
        let err = parse(&format!("[detector]\n{line}\n{GOOD}")).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key: k, .. } if k == key),
            "{line}: {err}"
        );
    }
}

#[test]
fn duplicate_camera_ids_are_refused() {
    let text = format!("{GOOD}\n[[camera]]\nid = \"gate\"\nurl = \"other.mp4\"\n");
    let err = parse(&text).unwrap_err();
    assert!(err.to_string().contains("used twice"), "{err}");
}

/// `GOOD` with `username` set in `[mqtt]`, parsed with `env` as the environment.
fn parse_env(username: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let text = GOOD.replace(
        "url = \"mqtt://127.0.0.1:1883\"",
        &format!("url = \"mqtt://127.0.0.1:1883\"\nusername = \"{username}\""),
    );
    Config::parse_with_env(&text, Path::new("/etc/streetwatch/test.toml"), env)
}

#[test]
fn environment_values_stay_one_string_whatever_they_hold() {
    for value in [
        "pole\"17",
        "line1\nline2",
        "x\"\n]\n[mqtt]\nurl = \"mqtt://evil:1\"\n[node]\nid = \"evil\"",
        "a = 1 # not a comment",
        "${NOT_EXPANDED_TWICE}",
    ] {
        let v = value.to_string();
        let c = parse_env("${SW_USER}", &move |n| (n == "SW_USER").then(|| v.clone()))
            .unwrap_or_else(|e| panic!("{value:?}: {e}"));
        assert_eq!(c.mqtt.username.as_deref(), Some(value));
        assert_eq!(c.mqtt.url, "mqtt://127.0.0.1:1883");
        assert_eq!(c.node.id, "pole-17");
    }
    let c = parse_env("${SW_USER:-guest}-$${literal}", &|_| None).unwrap();
    assert_eq!(c.mqtt.username.as_deref(), Some("guest-${literal}"));
}

#[test]
fn references_in_comments_are_not_expanded_and_unset_ones_name_the_key() {
    let text = GOOD.replace(
        "[outbox]",
        "# password from ${SW_SURELY_UNSET_IN_COMMENT}\n[outbox]",
    );
    let c = Config::parse_with_env(&text, Path::new("/x.toml"), &|_| None).unwrap();
    assert_eq!(c.node.id, "pole-17");
    let err = parse_env("${MQTT_USER}", &|_| None).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { key, message, .. }
            if key == "mqtt.username" && message.contains("MQTT_USER is not set")),
        "{err}"
    );
    let err = GOOD.replace("url = \"clip.mp4\"", "url = \"${CAM_URL}\"");
    let err = Config::parse_with_env(&err, Path::new("/x.toml"), &|_| None).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "camera[gate].url"),
        "{err}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Whatever a variable holds, the config has the same keys: the value is one string.
    #[test]
    fn any_environment_value_is_one_string(value in "(?s).{1,80}") {
        let v = value.clone();
        match parse_env("${SW_USER}", &move |n| (n == "SW_USER").then(|| v.clone())) {
            Ok(c) => {
                proptest::prop_assert_eq!(c.mqtt.username.as_deref(), Some(value.as_str()));
                proptest::prop_assert_eq!(c.cameras.len(), 1);
                proptest::prop_assert_eq!(&c.node.id, "pole-17");
            }
            Err(e) => proptest::prop_assert!(false, "{value:?}: {e}"),
        }
    }
}
