use super::*;

fn docs(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(file)
}

fn validator(file: &str) -> jsonschema::Validator {
    let schema = schemas()
        .into_iter()
        .find(|(f, _)| *f == file)
        .map(|(_, s)| s)
        .expect("a schema of that name");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("a valid JSON Schema")
}

#[test]
fn committed_schemas_are_the_generated_ones() {
    let write = std::env::var_os("STREETWATCH_WRITE_SCHEMA").is_some();
    let mut stale = Vec::new();
    for (file, schema) in schemas() {
        let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if write {
            std::fs::write(docs(file), &generated).unwrap();
        }
        if std::fs::read_to_string(docs(file)).unwrap_or_default() != generated {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "stale in docs/: {stale:?}; regenerate with \
         STREETWATCH_WRITE_SCHEMA=1 cargo test --lib committed_schemas"
    );
}

#[test]
fn every_published_schema_names_its_major_version() {
    for (file, schema) in schemas() {
        if file == "command.schema.json" {
            continue; // taken in, not published
        }
        let name = schema["properties"]["schema"]["const"]
            .as_str()
            .unwrap_or_else(|| panic!("{file} has no const `schema`"));
        let (stem, major) = name.rsplit_once('/').unwrap();
        assert!(stem.starts_with("streetwatch."), "{file}: {name}");
        assert!(major.parse::<u32>().is_ok(), "{file}: {name}");
        assert!(
            schema["required"]
                .as_array()
                .is_some_and(|r| r.contains(&"schema".into())),
            "{file}: `schema` must be required"
        );
    }
}

#[test]
fn published_payloads_allow_fields_a_newer_node_adds() {
    for (file, schema) in schemas() {
        let closed = serde_json::to_string(&schema)
            .unwrap()
            .contains(r#""additionalProperties":false"#);
        // The node refuses a command it does not fully understand.
        let want_closed = file == "command.schema.json";
        assert_eq!(closed, want_closed, "{file}");
    }
}

#[test]
fn the_nodes_camera_status_and_command_results_match_their_schemas() {
    use crate::monitor::CameraState;
    let ts = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
    let v = validator("camera_status.schema.json");
    for state in [
        CameraState::Connecting,
        CameraState::Online,
        CameraState::Error("camera gate: cannot open x".into()),
    ] {
        let doc = crate::monitor::camera_status_json(&state, ts);
        assert!(v.is_valid(&doc), "{doc}");
        let typed: CameraStatus = serde_json::from_value(doc).unwrap();
        assert_eq!(typed.schema, CAMERA_STATUS);
    }
    let v = validator("command_result.schema.json");
    let ok = serde_json::json!({"camera": "gate", "enabled": false});
    for doc in [
        crate::mqtt::commands::result_json(Some("r1"), "camera/disable", Ok(&ok)),
        crate::mqtt::commands::result_json(None, "reboot", Err("unknown command")),
    ] {
        assert!(v.is_valid(&doc), "{doc}");
        let typed: CommandResult = serde_json::from_value(doc).unwrap();
        assert_eq!(typed.schema, COMMAND_RESULT);
    }
}

#[test]
fn a_wrong_payload_is_refused() {
    let v = validator("camera_status.schema.json");
    for bad in [
        serde_json::json!({"schema": "streetwatch.camera_status/2", "state": "online", "ts": "2026-01-01T00:00:00Z"}),
        serde_json::json!({"schema": CAMERA_STATUS, "state": "sleeping", "ts": "2026-01-01T00:00:00Z"}),
        serde_json::json!({"schema": CAMERA_STATUS, "state": "online"}),
        serde_json::json!({"schema": CAMERA_STATUS, "state": "online", "ts": "yesterday"}),
    ] {
        assert!(!v.is_valid(&bad), "{bad}");
    }
}

#[test]
fn asyncapi_names_every_topic_and_schema() {
    let doc = std::fs::read_to_string(docs("asyncapi.yaml")).unwrap();
    assert!(doc.contains("asyncapi: 3.0.0"));
    for (file, _) in schemas() {
        assert!(doc.contains(&format!("$ref: '{file}'")), "{file}");
    }
    for topic in [
        "events/{camera}/{type}'",
        "evidence/{event_id}'",
        "incidents/{incident}'",
        "status'",
        "info'",
        "cameras/{camera}/status'",
        "stats'",
        "alerts'",
        "snapshots/{camera}'",
        "cmd/{verb}'",
        "cmd/result'",
    ] {
        let address = format!("address: '{{prefix}}/{{node}}/{topic}");
        assert!(doc.contains(&address), "{address}");
    }
    // Every operation states its QoS and retain flag.
    let operations = doc.split("\noperations:").nth(1).unwrap();
    let operations = operations.split("\ncomponents:").next().unwrap();
    let actions = operations.matches("action:").count();
    assert_eq!(actions, 11);
    assert_eq!(operations.matches("mqtt: {qos: ").count(), actions);
}
