//! Remote commands: `{prefix}/{node}/cmd/{verb}` in, `{prefix}/{node}/cmd/result` out.
//!
//! Parsing is strict and total: any payload yields either a [`Command`] or an
//! error that goes back as a result; nothing is changed by a command that
//! was not understood.
//!
//! Retained messages are never commands: a retained command would run again
//! after every reconnection (and on every node that subscribes later). They
//! are ignored, and the reason logged.
//!
//! Dispatch: a command that parses goes to the node as a [`ControlRequest`];
//! each waits for its outcome on its own task (at most 30 s), so a slow
//! `reload` holds up nothing else. At most [`MAX_IN_PROGRESS`] commands are
//! in progress at once; more are answered at once with an error (a flood of
//! commands costs a bounded amount of work). Results (and a snapshot's JPEG, published
//! just before its result) wait here until the link is up, then go out
//! through the publisher's [`Outlet`] like every other message.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::PublisherOptions;
use super::link::{Message, Meta, Outlet};
use super::window::Qos;

/// Largest command payload accepted; larger ones get an error result.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// A command the node understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Re-read the config file and apply camera changes.
    Reload,
    /// Publish a JPEG of the camera's next frame.
    Snapshot { camera: String },
    /// Start a camera (again).
    CameraEnable { camera: String },
    /// Stop a camera until it is enabled again.
    CameraDisable { camera: String },
}

impl Command {
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Reload => "reload",
            Command::Snapshot { .. } => "snapshot",
            Command::CameraEnable { .. } => "camera/enable",
            Command::CameraDisable { .. } => "camera/disable",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    camera: Option<String>,
}

/// A request id, when one could be read, and why the command was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub id: Option<String>,
    pub error: String,
}

/// Parses the verb (the topic after `cmd/`) and payload. An empty payload is `{}`.
pub fn parse(verb: &str, payload: &[u8]) -> Result<(Option<String>, Command), Refused> {
    let refuse = |id: Option<String>, error: String| Refused { id, error };
    if payload.len() > MAX_PAYLOAD {
        return Err(refuse(
            None,
            format!(
                "payload of {} bytes is larger than {MAX_PAYLOAD}",
                payload.len()
            ),
        ));
    }
    let value: Value = if payload.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(payload)
            .map_err(|e| refuse(None, format!("payload is not JSON: {e}")))?
    };
    // Salvage the id for the error result even when the rest is wrong.
    let id = value
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| s.len() <= 128)
        .map(str::to_string);
    let body: Body = serde_json::from_value(value)
        .map_err(|e| refuse(id.clone(), format!("bad command body: {e}")))?;
    if body.id.as_ref().is_some_and(|s| s.len() > 128) {
        return Err(refuse(None, "id is longer than 128 characters".into()));
    }
    let camera = || {
        body.camera
            .clone()
            .ok_or_else(|| refuse(id.clone(), format!("{verb} needs a \"camera\"")))
    };
    let cmd = match verb {
        "reload" => Command::Reload,
        "snapshot" => Command::Snapshot { camera: camera()? },
        "camera/enable" => Command::CameraEnable { camera: camera()? },
        "camera/disable" => Command::CameraDisable { camera: camera()? },
        other => {
            return Err(refuse(
                id,
                format!(
                    "unknown command {:?} (known: reload, snapshot, camera/enable, camera/disable)",
                    other.chars().take(64).collect::<String>()
                ),
            ));
        }
    };
    Ok((body.id, cmd))
}

/// What the supervisor answers.
#[derive(Debug)]
pub struct Reply {
    pub result: Value,
    /// Binary to publish before the result: (topic suffix after `{prefix}/{node}/`, bytes).
    pub attachment: Option<(String, Vec<u8>)>,
}

/// A command on its way to the supervisor.
#[derive(Debug)]
pub struct ControlRequest {
    pub command: Command,
    pub reply: oneshot::Sender<Result<Reply, String>>,
}

/// The result document published on `cmd/result`.
pub fn result_json(id: Option<&str>, verb: &str, outcome: Result<&Value, &str>) -> Value {
    match outcome {
        Ok(result) => serde_json::json!({
            "schema": crate::wire::COMMAND_RESULT, "id": id, "verb": verb, "ok": true, "result": result,
        }),
        Err(error) => serde_json::json!({
            "schema": crate::wire::COMMAND_RESULT, "id": id, "verb": verb, "ok": false, "error": error,
        }),
    }
}

/// How long the node has to answer a command.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// Results (and attachments) kept while the link is down, at most; older ones go first.
const MAX_WAITING: usize = 64;

/// Commands handed to the node and not answered yet, at most.
pub const MAX_IN_PROGRESS: usize = 8;

/// A command's outcome on its way back to the publisher.
pub(crate) struct Done {
    id: Option<String>,
    verb: String,
    outcome: Result<Reply, String>,
}

/// Commands on their way to the node, and their results on their way out.
pub(crate) struct Dispatch {
    /// Where commands go; `None`: every command is answered with an error.
    control: Option<mpsc::Sender<ControlRequest>>,
    /// Outcomes come back here from the tasks that wait for them.
    done_tx: mpsc::Sender<Done>,
    done_rx: mpsc::Receiver<Done>,
    /// Results and attachments not yet handed to the link, oldest first.
    waiting: VecDeque<Message>,
    /// Commands handed to the node whose outcome has not come back.
    in_progress: usize,
}

impl Dispatch {
    pub fn new(control: Option<mpsc::Sender<ControlRequest>>) -> Self {
        let (done_tx, done_rx) = mpsc::channel(16);
        Self {
            control,
            done_tx,
            done_rx,
            waiting: VecDeque::new(),
            in_progress: 0,
        }
    }

    /// A message arrived on `topic`: if it is a command, parse it and hand it to the
    /// node; a refused one is answered at once. Retained messages are ignored.
    pub fn received(&mut self, opts: &PublisherOptions, topic: &str, payload: &[u8], retain: bool) {
        let Some(verb) = topic.strip_prefix(&opts.command_prefix()) else {
            return;
        };
        if verb == "result" {
            return;
        }
        let verb: String = verb.chars().take(64).collect();
        if retain {
            tracing::warn!(verb = %verb, "retained command ignored: it would run again after every reconnection; publish commands without retain (and clear the retained one)");
            return;
        }
        let (id, command) = match parse(&verb, payload) {
            Ok(parsed) => parsed,
            Err(refused) => {
                tracing::warn!(verb = %verb.chars().take(64).collect::<String>(), error = %refused.error, "command refused");
                let outcome = Err(refused.error);
                return self.finished(
                    opts,
                    Done {
                        id: refused.id,
                        verb,
                        outcome,
                    },
                );
            }
        };
        tracing::info!(verb = command.verb(), id = ?id, "command received");
        let Some(control) = self.control.clone() else {
            let outcome = Err("this node takes no commands".into());
            return self.finished(opts, Done { id, verb, outcome });
        };
        if self.in_progress >= MAX_IN_PROGRESS {
            tracing::warn!(verb = %verb, "command refused: too many in progress");
            let outcome = Err(format!(
                "too many commands in progress ({MAX_IN_PROGRESS}); try again when they are answered"
            ));
            return self.finished(opts, Done { id, verb, outcome });
        }
        self.in_progress += 1;
        let done_tx = self.done_tx.clone();
        tokio::spawn(async move {
            let (reply, rx) = oneshot::channel();
            let outcome = match control.send(ControlRequest { command, reply }).await {
                Err(_) => Err("the node is shutting down".to_string()),
                Ok(()) => match tokio::time::timeout(ANSWER_WITHIN, rx).await {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(_)) => Err("the node is shutting down".to_string()),
                    Err(_) => Err("no answer within 30 s".to_string()),
                },
            };
            let _ = done_tx.send(Done { id, verb, outcome }).await;
        });
    }

    /// The next outcome from the node (never `None`: the dispatch holds a sender).
    pub async fn next_done(&mut self) -> Option<Done> {
        let done = self.done_rx.recv().await;
        self.in_progress = self.in_progress.saturating_sub(1);
        done
    }

    /// Queues the result of `done` (after its attachment, if any).
    pub fn finished(&mut self, opts: &PublisherOptions, done: Done) {
        let Done { id, verb, outcome } = done;
        let doc = match outcome {
            Ok(reply) => {
                if let Some((suffix, bytes)) = reply.attachment {
                    self.waiting.push_back(Message {
                        topic: format!("{}/{}/{suffix}", opts.topic_prefix, opts.node),
                        payload: bytes,
                        qos: Qos::AtLeastOnce,
                        retain: true,
                        meta: Meta::JPEG,
                    });
                }
                result_json(id.as_deref(), &verb, Ok(&reply.result))
            }
            Err(e) => result_json(id.as_deref(), &verb, Err(&e)),
        };
        let topic = format!("{}result", opts.command_prefix());
        let payload = serde_json::to_vec(&doc).expect("result encodes");
        self.waiting.push_back(Message::json(topic, payload, false));
        while self.waiting.len() > MAX_WAITING {
            if let Some(m) = self.waiting.pop_front() {
                tracing::warn!(topic = %m.topic, "broker unreachable too long: command result dropped");
            }
        }
    }

    /// Hands the waiting results to the link, oldest first, while it takes them.
    pub fn flush(&mut self, out: &mut Outlet) {
        while let Some(m) = self.waiting.front() {
            if !out.send(m.clone()) {
                return;
            }
            self.waiting.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_commands_parse() {
        assert_eq!(parse("reload", b"").unwrap(), (None, Command::Reload));
        assert_eq!(
            parse("camera/disable", br#"{"id": "r1", "camera": "gate"}"#).unwrap(),
            (
                Some("r1".into()),
                Command::CameraDisable {
                    camera: "gate".into()
                }
            )
        );
    }

    #[test]
    fn garbage_is_refused_with_the_id_when_readable() {
        for (verb, payload, needle) in [
            ("reload", &b"{not json"[..], "not JSON"),
            ("reboot", br#"{"id": "r2"}"#, "unknown command"),
            ("snapshot", br#"{"id": "r3"}"#, "needs a \"camera\""),
            (
                "snapshot",
                br#"{"id": "r4", "camera": 7}"#,
                "bad command body",
            ),
            ("reload", br#"{"id": "r5", "force": true}"#, "unknown field"),
            ("reload", b"[1, 2]", "bad command body"),
        ] {
            let e = parse(verb, payload).unwrap_err();
            assert!(e.error.contains(needle), "{verb} {payload:?}: {e:?}");
        }
        assert_eq!(
            parse("reboot", br#"{"id": "r2"}"#)
                .unwrap_err()
                .id
                .as_deref(),
            Some("r2")
        );
        let huge = vec![b' '; MAX_PAYLOAD + 1];
        assert!(parse("reload", &huge).unwrap_err().error.contains("larger"));
    }

    fn results(d: &Dispatch) -> Vec<Value> {
        d.waiting
            .iter()
            .map(|m| serde_json::from_slice(&m.payload).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_flood_of_commands_costs_a_bounded_amount_of_work() {
        let opts = crate::mqtt::test_options(crate::mqtt::Protocol::V311);
        let (control_tx, mut control_rx) = mpsc::channel(64);
        let mut d = Dispatch::new(Some(control_tx));
        for n in 0..20 {
            let body = format!(r#"{{"id": "c{n}"}}"#);
            d.received(&opts, "sw/n/cmd/reload", body.as_bytes(), false);
        }
        // The node gets MAX_IN_PROGRESS of them; the rest are answered at once.
        let mut held = Vec::new();
        for _ in 0..MAX_IN_PROGRESS {
            held.push(control_rx.recv().await.unwrap());
        }
        tokio::task::yield_now().await;
        assert!(control_rx.try_recv().is_err(), "no more reach the node");
        let refused = results(&d);
        assert_eq!(refused.len(), 20 - MAX_IN_PROGRESS);
        for r in &refused {
            assert_eq!(r["ok"], false);
            assert!(
                r["error"].as_str().unwrap().contains("too many commands"),
                "{r}"
            );
        }
        assert_eq!(refused[0]["id"], format!("c{MAX_IN_PROGRESS}"));

        // One answered: there is room for one more.
        let answer = Reply {
            result: Value::Null,
            attachment: None,
        };
        held.pop().unwrap().reply.send(Ok(answer)).unwrap();
        let done = d.next_done().await.unwrap();
        d.finished(&opts, done);
        d.received(&opts, "sw/n/cmd/reload", br#"{"id": "late"}"#, false);
        assert_eq!(control_rx.recv().await.unwrap().command, Command::Reload);
    }

    #[tokio::test]
    async fn retained_commands_are_ignored() {
        let opts = crate::mqtt::test_options(crate::mqtt::Protocol::V311);
        let (control_tx, mut control_rx) = mpsc::channel(4);
        let mut d = Dispatch::new(Some(control_tx));
        d.received(
            &opts,
            "sw/n/cmd/camera/disable",
            br#"{"camera": "gate"}"#,
            true,
        );
        tokio::task::yield_now().await;
        assert!(control_rx.try_recv().is_err(), "not run");
        assert!(
            d.waiting.is_empty(),
            "not answered either: nobody asked just now"
        );
        d.received(
            &opts,
            "sw/n/cmd/camera/disable",
            br#"{"camera": "gate"}"#,
            false,
        );
        assert_eq!(
            control_rx.recv().await.unwrap().command,
            Command::CameraDisable {
                camera: "gate".into()
            }
        );
    }

    proptest::proptest! {
        #[test]
        fn any_command_payload_parses_or_is_refused(
            verb in "(reload|snapshot|camera/enable|camera/disable|[a-z/]{0,12})",
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
        ) {
            let _ = parse(&verb, &payload);
        }

        #[test]
        fn json_shaped_payloads_never_panic(
            verb in "(reload|snapshot|camera/enable|camera/disable)",
            id in proptest::option::of(".{0,200}"),
            camera in proptest::option::of(".{0,80}"),
            extra in proptest::option::of("[a-z]{1,8}"),
        ) {
            let mut doc = serde_json::Map::new();
            if let Some(id) = &id {
                doc.insert("id".into(), id.clone().into());
            }
            if let Some(camera) = &camera {
                doc.insert("camera".into(), camera.clone().into());
            }
            if let Some(extra) = &extra {
                doc.insert(extra.clone(), Value::Bool(true));
            }
            let payload = serde_json::to_vec(&doc).unwrap();
            match parse(&verb, &payload) {
                Ok((got, _)) => proptest::prop_assert_eq!(got, id),
                Err(refused) => proptest::prop_assert!(!refused.error.is_empty()),
            }
        }
    }
}
