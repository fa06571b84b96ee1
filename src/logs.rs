//! What the daemon writes on stderr: the logs (`tracing`, text or JSON lines,
//! filtered by `RUST_LOG`) and the binary's own lines (the run summary, a fatal
//! error) in the same format, so that with `--log-format json` every line on
//! stderr is one JSON object.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// JSON lines instead of text.
static JSON: AtomicBool = AtomicBool::new(false);

/// Chooses JSON lines or text for everything written from now on.
pub fn set_json(json: bool) {
    JSON.store(json, Relaxed);
}

/// Installs the log subscriber on stderr in the chosen format (`RUST_LOG`, default
/// `info`, ONNX Runtime and rumqttc at `warn`).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ort=warn,rumqttc=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if JSON.load(Relaxed) {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// One line of the binary's own: `streetwatch: {text}`, or a JSON object shaped
/// like the log lines (`timestamp`, `level`, `fields` with `message`, `target`).
pub fn line(level: &str, text: &str, fields: serde_json::Value) -> String {
    if !JSON.load(Relaxed) {
        return format!("streetwatch: {text}");
    }
    let mut fields = match fields {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    fields.insert("message".into(), text.into());
    serde_json::json!({
        "timestamp": crate::event::rfc3339(std::time::SystemTime::now()),
        "level": level,
        "fields": fields,
        "target": "streetwatch",
    })
    .to_string()
}

/// Writes [`line`] on stderr.
pub fn say(level: &str, text: &str, fields: serde_json::Value) {
    eprintln!("{}", line(level, text, fields));
}
