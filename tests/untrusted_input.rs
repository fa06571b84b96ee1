//! Untrusted input never panics: config text, whatever it holds, is a config
//! or an error that names the problem.

use std::path::Path;

use proptest::prelude::*;
use streetwatch::config::Config;

/// A valid config with `value` put where a number, string or list goes.
fn config_with(key: &str, value: &str) -> String {
    format!(
        r#"
[node]
id = "n1"
[mqtt]
url = "mqtt://127.0.0.1:1883"
{mqtt}
[[camera]]
id = "c1"
url = "rtsp://cam/1"
{camera}
"#,
        mqtt = key
            .strip_prefix("mqtt.")
            .map(|k| format!("{k} = {value}"))
            .unwrap_or_default(),
        camera = key
            .strip_prefix("camera.")
            .map(|k| format!("{k} = {value}"))
            .unwrap_or_default(),
    )
}

fn values() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("-inf".to_string()),
        "\"[^\"\\\\\n]{0,40}\"",
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("true".to_string()),
        "\"[a-z/:]{0,8}\\$\\{SW_TEST_SURELY_UNSET_[A-Z]{1,4}\\}[a-z]{0,4}\"",
        "\"[a-z]{0,8}\\$\\$\\{[A-Z]{0,4}\\}\"",
        "\"\\$\\{[^}\"\\\\\n]{0,12}\"",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_is_a_config_or_an_error(text in "(?s).{0,400}") {
        let _ = Config::from_str_at(&text, Path::new("/etc/streetwatch/streetwatch.toml"));
    }

    #[test]
    fn any_value_of_a_known_key_is_accepted_or_named(
        key in prop_oneof![
            Just("mqtt.max_packet_bytes"),
            Just("mqtt.max_inflight"),
            Just("mqtt.keep_alive_s"),
            Just("mqtt.stats_interval_s"),
            Just("mqtt.topic_prefix"),
            Just("camera.fps"),
            Just("camera.url"),
        ],
        value in values(),
    ) {
        let text = config_with(key, &value);
        if let Err(e) = Config::from_str_at(&text, Path::new("/etc/streetwatch/streetwatch.toml")) {
            let field = key.rsplit('.').next().unwrap();
            let message = e.to_string();
            prop_assert!(message.contains(field) || message.contains("streetwatch.toml"), "{key} = {value}: {message}");
            // `camera.url` is set twice by `config_with`: that duplicate is the error.
            if value.contains("${SW_TEST_SURELY_UNSET_") && key != "camera.url" {
                // An unset variable is named with the key that refers to it.
                prop_assert!(message.contains(&format!("`{}`", key.replace("camera.", "camera[c1]."))), "{message}");
            }
        }
    }
}
