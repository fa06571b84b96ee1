//! The rumqttc side: one face for MQTT 3.1.1 and MQTT 5. rumqttc has a
//! client per protocol version; the rest of the publisher sees [`Message`]s
//! going out, [`Wire`] events coming in, and (in [`gate`]) the [`Outlet`]
//! every publish goes through and the task that polls the event loop.
//!
//! The client handle is private to this module and [`gate`]: nothing reaches
//! rumqttc but through the gate.
//!
//! With MQTT 5 every message carries its content type, and messages that
//! lose their meaning with time (stats) carry a message expiry.

use std::time::Duration;

use rumqttc::v5;

use super::window::Qos;
use super::{Protocol, PublisherOptions, Secret};

mod gate;

pub use gate::{Note, Outlet, start};

/// What is published, for its MQTT 5 properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub content_type: &'static str,
    /// Seconds after which the broker may discard it undelivered.
    pub expiry_s: Option<u32>,
}

impl Meta {
    pub const JSON: Meta = Meta {
        content_type: "application/json",
        expiry_s: None,
    };
    pub const JPEG: Meta = Meta {
        content_type: "image/jpeg",
        expiry_s: None,
    };
}

/// One publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: Qos,
    pub retain: bool,
    pub meta: Meta,
}

impl Message {
    /// A JSON document, QoS 1.
    pub fn json(topic: String, payload: Vec<u8>, retain: bool) -> Self {
        Self {
            topic,
            payload,
            qos: Qos::AtLeastOnce,
            retain,
            meta: Meta::JSON,
        }
    }
}

/// Broker events the publisher cares about, whatever the protocol version.
#[derive(Debug, Clone, PartialEq)]
pub enum Wire {
    ConnAck,
    /// rumqttc wrote a publish with this packet id (0 for QoS 0).
    Published(u16),
    PubAck(u16),
    Message {
        topic: String,
        payload: Vec<u8>,
    },
    DisconnectSent,
    Other,
}

/// The client handle.
#[derive(Clone)]
enum Client {
    V4(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

/// The event loop, polled on its own task (boxed: the two differ much in size).
pub enum WireLoop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<v5::EventLoop>),
}

impl Client {
    /// Queues a publish; `false` if rumqttc's request queue is full.
    fn try_publish(&self, msg: Message) -> bool {
        let Message {
            topic,
            payload,
            qos,
            retain,
            meta,
        } = msg;
        let at_least_once = qos == Qos::AtLeastOnce;
        match self {
            Client::V4(c) => {
                let qos = if at_least_once {
                    rumqttc::QoS::AtLeastOnce
                } else {
                    rumqttc::QoS::AtMostOnce
                };
                c.try_publish(topic, qos, retain, payload).is_ok()
            }
            Client::V5(c) => {
                let qos = if at_least_once {
                    v5::mqttbytes::QoS::AtLeastOnce
                } else {
                    v5::mqttbytes::QoS::AtMostOnce
                };
                let props = v5::mqttbytes::v5::PublishProperties {
                    content_type: Some(meta.content_type.to_string()),
                    message_expiry_interval: meta.expiry_s,
                    payload_format_indicator: Some(u8::from(meta.content_type != "image/jpeg")),
                    ..Default::default()
                };
                c.try_publish_with_properties(topic, qos, retain, payload, props)
                    .is_ok()
            }
        }
    }

    fn try_subscribe(&self, filter: String) -> bool {
        match self {
            Client::V4(c) => c.try_subscribe(filter, rumqttc::QoS::AtLeastOnce).is_ok(),
            Client::V5(c) => c
                .try_subscribe(filter, v5::mqttbytes::QoS::AtLeastOnce)
                .is_ok(),
        }
    }

    fn try_disconnect(&self) -> bool {
        match self {
            Client::V4(c) => c.try_disconnect().is_ok(),
            Client::V5(c) => c.try_disconnect().is_ok(),
        }
    }
}

fn wire_v4(ev: rumqttc::Event) -> Wire {
    use rumqttc::{Event, Outgoing, Packet};
    match ev {
        Event::Incoming(Packet::ConnAck(_)) => Wire::ConnAck,
        Event::Incoming(Packet::PubAck(a)) => Wire::PubAck(a.pkid),
        Event::Incoming(Packet::Publish(p)) => Wire::Message {
            topic: p.topic,
            payload: p.payload.to_vec(),
        },
        Event::Outgoing(Outgoing::Publish(pkid)) => Wire::Published(pkid),
        Event::Outgoing(Outgoing::Disconnect) => Wire::DisconnectSent,
        _ => Wire::Other,
    }
}

fn wire_v5(ev: v5::Event) -> Wire {
    use rumqttc::Outgoing;
    use v5::Event;
    use v5::mqttbytes::v5::Packet;
    match ev {
        Event::Incoming(Packet::ConnAck(_)) => Wire::ConnAck,
        Event::Incoming(Packet::PubAck(a)) => Wire::PubAck(a.pkid),
        Event::Incoming(Packet::Publish(p)) => Wire::Message {
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            payload: p.payload.to_vec(),
        },
        Event::Outgoing(Outgoing::Publish(pkid)) => Wire::Published(pkid),
        Event::Outgoing(Outgoing::Disconnect) => Wire::DisconnectSent,
        _ => Wire::Other,
    }
}

impl WireLoop {
    /// The next event; an error means the connection is down (poll again to reconnect).
    pub async fn poll(&mut self) -> Result<Wire, String> {
        match self {
            WireLoop::V4(el) => el.poll().await.map(wire_v4).map_err(|e| e.to_string()),
            WireLoop::V5(el) => el.poll().await.map(wire_v5).map_err(|e| e.to_string()),
        }
    }

    /// Forgets every request of the connection that ended: the connection itself, what
    /// was in flight, in the request channel, in `pending` or held on a packet-id
    /// collision. Returns the events rumqttc had buffered and not reported yet.
    fn reset(&mut self) -> Vec<Wire> {
        match self {
            WireLoop::V4(el) => {
                el.clean();
                el.pending.clear();
                el.state.collision = None;
                el.state.events.drain(..).map(wire_v4).collect()
            }
            WireLoop::V5(el) => {
                el.clean();
                el.pending.clear();
                el.state.collision = None;
                el.state.events.drain(..).map(wire_v5).collect()
            }
        }
    }
}

fn transport(opts: &PublisherOptions) -> Option<rumqttc::Transport> {
    opts.broker.tls.then(|| match opts.tls.ca.clone() {
        Some(ca) => rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Simple {
            ca,
            alpn: None,
            client_auth: opts.tls.client_auth.clone(),
        }),
        None => rumqttc::Transport::tls_with_default_config(),
    })
}

/// A client for `opts` with keep-alive, TLS, credentials, a clean session and,
/// when `will` is given, that payload as the retained Last Will on the status topic.
fn connect(
    opts: &PublisherOptions,
    client_id: &str,
    will: Option<Vec<u8>>,
    cap: usize,
) -> (Client, WireLoop) {
    let (host, port) = (opts.broker.host.as_str(), opts.broker.port);
    let will = will.map(|payload| (opts.status_topic(), payload));
    match opts.protocol {
        Protocol::V311 => {
            let mut o = rumqttc::MqttOptions::new(client_id, host, port);
            o.set_keep_alive(opts.keep_alive);
            o.set_clean_session(true);
            o.set_inflight(opts.max_inflight.saturating_add(4));
            // Incoming: commands (oversized ones get an error result up to this size).
            // Outgoing: events and snapshot JPEGs.
            o.set_max_packet_size(4 << 20, 16 << 20);
            if let Some((topic, payload)) = will {
                o.set_last_will(rumqttc::LastWill::new(
                    topic,
                    payload,
                    rumqttc::QoS::AtLeastOnce,
                    true,
                ));
            }
            if let Some(t) = transport(opts) {
                o.set_transport(t);
            }
            if let Some((user, Secret(password))) = &opts.credentials {
                o.set_credentials(user, password);
            }
            let (c, el) = rumqttc::AsyncClient::new(o, cap);
            (Client::V4(c), WireLoop::V4(Box::new(el)))
        }
        Protocol::V5 => {
            let mut o = v5::MqttOptions::new(client_id, host, port);
            o.set_keep_alive(opts.keep_alive);
            o.set_clean_start(true);
            o.set_outgoing_inflight_upper_limit(opts.max_inflight.saturating_add(4));
            o.set_max_packet_size(Some(4 << 20));
            if let Some((topic, payload)) = will {
                let props = v5::mqttbytes::v5::LastWillProperties {
                    delay_interval: None,
                    payload_format_indicator: Some(1),
                    message_expiry_interval: None,
                    content_type: Some(Meta::JSON.content_type.to_string()),
                    response_topic: None,
                    correlation_data: None,
                    user_properties: Vec::new(),
                };
                o.set_last_will(v5::mqttbytes::v5::LastWill::new(
                    topic,
                    payload,
                    v5::mqttbytes::QoS::AtLeastOnce,
                    true,
                    Some(props),
                ));
            }
            if let Some(t) = transport(opts) {
                o.set_transport(t);
            }
            if let Some((user, Secret(password))) = &opts.credentials {
                o.set_credentials(user, password);
            }
            let (c, el) = v5::AsyncClient::new(o, cap);
            (Client::V5(c), WireLoop::V5(Box::new(el)))
        }
    }
}

/// Connects once and disconnects: checks address, TLS and credentials.
pub async fn probe_connection(opts: &PublisherOptions, timeout: Duration) -> Result<(), String> {
    // Its own client id and no Last Will: a running daemon's session and status stay untouched.
    let (client, mut wire) = connect(opts, &format!("{}-check", opts.client_id), None, 4);
    let scheme = if opts.broker.tls { "mqtts" } else { "mqtt" };
    let target = format!("{scheme}://{}:{}", opts.broker.host, opts.broker.port);
    let attempt = async {
        loop {
            match wire.poll().await {
                Ok(Wire::ConnAck) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(format!("cannot connect to {target}: {e}")),
            }
        }
    };
    let result = tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "cannot connect to {target}: no answer in {timeout:?}"
            ))
        });
    if result.is_ok() {
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(1), wire.poll()).await;
    }
    result
}

/// Seconds a stats report stays meaningful: two intervals.
pub fn stats_expiry(interval: Duration) -> Option<u32> {
    Some((interval.as_secs() * 2).clamp(2, u32::MAX as u64) as u32)
}
