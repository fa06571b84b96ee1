//! The rumqttc side: one face for MQTT 3.1.1 and MQTT 5. rumqttc has a
//! client per protocol version; the rest of the publisher sees [`Message`]s
//! going out, [`Wire`] events coming in, and (in [`gate`]) the [`Outlet`]
//! every publish goes through and the task that polls the event loop.
//!
//! The client handle is private to this module and [`gate`]: nothing reaches
//! rumqttc but through the gate.
//!
//! With MQTT 5 every message carries its content type, and messages that
//! lose their meaning with time (stats) carry a message expiry. What MQTT 5
//! tells besides is handed on: the broker's maximum packet size (CONNACK), a
//! PUBACK's reason code, why the broker closed the connection.
//! [`packet_size`] is the size a publish has on the wire, to keep it within
//! the broker's limit.

use std::time::Duration;

use rumqttc::v5;

use super::window::Qos;
use super::{Protocol, PublisherOptions, Secret};

mod flap;
mod gate;

pub use flap::{UNSTABLE_AFTER, likely_cause};
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
    /// Connected; with MQTT 5, the largest packet the broker takes, if it says.
    ConnAck {
        max_packet: Option<u32>,
    },
    /// rumqttc wrote a publish with this packet id (0 for QoS 0).
    Published(u16),
    /// The broker acknowledged `pkid` with reason `code` (MQTT 5; always 0 with
    /// 3.1.1, which has none): 0x80 and above is a refusal.
    PubAck {
        pkid: u16,
        code: u8,
    },
    Message {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
    DisconnectSent,
    Other,
}

/// Why a connection failed or ended, as far as the protocol tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Another client connected with the same client id (MQTT 5 says so).
    SessionTakenOver,
    /// The broker says the node is not authorized (bad credentials, an ACL).
    NotAuthorized,
    /// A packet over the broker's (or the client's) size limit.
    PacketTooLarge,
    /// Anything else: a closed socket, a timeout, an unreachable host.
    Other,
}

/// A failed `poll`: the connection is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub cause: Cause,
}

/// An MQTT 5 PUBACK reason code's name, for logs and alerts.
pub fn reason_name(code: u8) -> &'static str {
    match code {
        0x00 => "success",
        0x10 => "no matching subscribers",
        0x80 => "unspecified error",
        0x83 => "implementation specific error",
        0x87 => "not authorized",
        0x90 => "topic name invalid",
        0x91 => "packet identifier in use",
        0x97 => "quota exceeded",
        0x99 => "payload format invalid",
        _ => "unknown reason",
    }
}

/// Bytes a variable byte integer takes.
fn varint_len(n: usize) -> usize {
    match n {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// The size on the wire of a publish of `payload` bytes on a topic of `topic` bytes.
pub fn packet_size(
    protocol: Protocol,
    topic: usize,
    payload: usize,
    qos: Qos,
    meta: Meta,
) -> usize {
    let mut rest = 2 + topic + payload;
    if qos == Qos::AtLeastOnce {
        rest += 2;
    }
    if protocol == Protocol::V5 {
        // Content type, payload format indicator, and the expiry if any.
        let props = 3 + meta.content_type.len() + 2 + if meta.expiry_s.is_some() { 5 } else { 0 };
        rest += varint_len(props) + props;
    }
    1 + varint_len(rest) + rest
}

impl Message {
    /// Its size on the wire.
    pub fn size(&self, protocol: Protocol) -> usize {
        packet_size(
            protocol,
            self.topic.len(),
            self.payload.len(),
            self.qos,
            self.meta,
        )
    }
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
        Event::Incoming(Packet::ConnAck(_)) => Wire::ConnAck { max_packet: None },
        Event::Incoming(Packet::PubAck(a)) => Wire::PubAck {
            pkid: a.pkid,
            code: 0,
        },
        Event::Incoming(Packet::Publish(p)) => Wire::Message {
            topic: p.topic,
            payload: p.payload.to_vec(),
            retain: p.retain,
        },
        Event::Outgoing(Outgoing::Publish(pkid)) => Wire::Published(pkid),
        Event::Outgoing(Outgoing::Disconnect) => Wire::DisconnectSent,
        _ => Wire::Other,
    }
}

/// The reason code of an MQTT 5 PUBACK.
fn puback_code(r: v5::mqttbytes::v5::PubAckReason) -> u8 {
    use v5::mqttbytes::v5::PubAckReason as R;
    match r {
        R::Success => 0x00,
        R::NoMatchingSubscribers => 0x10,
        R::UnspecifiedError => 0x80,
        R::ImplementationSpecificError => 0x83,
        R::NotAuthorized => 0x87,
        R::TopicNameInvalid => 0x90,
        R::PacketIdentifierInUse => 0x91,
        R::QuotaExceeded => 0x97,
        R::PayloadFormatInvalid => 0x99,
    }
}

fn wire_v5(ev: v5::Event) -> Wire {
    use rumqttc::Outgoing;
    use v5::Event;
    use v5::mqttbytes::v5::Packet;
    match ev {
        Event::Incoming(Packet::ConnAck(c)) => Wire::ConnAck {
            max_packet: c.properties.and_then(|p| p.max_packet_size),
        },
        Event::Incoming(Packet::PubAck(a)) => Wire::PubAck {
            pkid: a.pkid,
            code: puback_code(a.reason),
        },
        Event::Incoming(Packet::Publish(p)) => Wire::Message {
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            payload: p.payload.to_vec(),
            retain: p.retain,
        },
        Event::Outgoing(Outgoing::Publish(pkid)) => Wire::Published(pkid),
        Event::Outgoing(Outgoing::Disconnect) => Wire::DisconnectSent,
        _ => Wire::Other,
    }
}

fn failure_v4(e: rumqttc::ConnectionError) -> Failure {
    use rumqttc::{ConnectReturnCode as C, ConnectionError as E};
    let cause = match &e {
        E::ConnectionRefused(C::NotAuthorized | C::BadUserNamePassword) => Cause::NotAuthorized,
        _ if e.to_string().contains("too large") => Cause::PacketTooLarge,
        _ => Cause::Other,
    };
    Failure {
        message: e.to_string(),
        cause,
    }
}

fn failure_v5(e: v5::ConnectionError) -> Failure {
    use v5::mqttbytes::v5::{ConnectReturnCode as C, DisconnectReasonCode as D};
    use v5::{ConnectionError as E, StateError as S};
    let cause = match &e {
        E::MqttState(S::ServerDisconnect { reason_code, .. }) => match reason_code {
            D::SessionTakenOver => Cause::SessionTakenOver,
            D::NotAuthorized => Cause::NotAuthorized,
            D::PacketTooLarge => Cause::PacketTooLarge,
            _ => Cause::Other,
        },
        E::MqttState(S::OutgoingPacketTooLarge { .. }) => Cause::PacketTooLarge,
        E::ConnectionRefused(C::NotAuthorized | C::BadUserNamePassword) => Cause::NotAuthorized,
        _ => Cause::Other,
    };
    Failure {
        message: e.to_string(),
        cause,
    }
}

impl WireLoop {
    /// The next event; an error means the connection is down (poll again to reconnect).
    pub async fn poll(&mut self) -> Result<Wire, Failure> {
        match self {
            WireLoop::V4(el) => el.poll().await.map(wire_v4).map_err(failure_v4),
            WireLoop::V5(el) => el.poll().await.map(wire_v5).map_err(failure_v5),
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
                Ok(Wire::ConnAck { .. }) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(format!("cannot connect to {target}: {}", e.message)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_sizes_are_what_rumqttc_writes() {
        for (topic, payload, qos, meta) in [
            ("a/b", 0, Qos::AtLeastOnce, Meta::JSON),
            (
                "sw/pole-1/evidence/0190",
                30_000,
                Qos::AtLeastOnce,
                Meta::JPEG,
            ),
            (
                "sw/n/stats",
                1500,
                Qos::AtMostOnce,
                Meta {
                    expiry_s: Some(60),
                    ..Meta::JSON
                },
            ),
            ("t", 200_000, Qos::AtLeastOnce, Meta::JSON),
            ("t", 16_370, Qos::AtLeastOnce, Meta::JPEG),
        ] {
            let body = vec![0u8; payload];
            let (q4, q5) = match qos {
                Qos::AtLeastOnce => (rumqttc::QoS::AtLeastOnce, v5::mqttbytes::QoS::AtLeastOnce),
                Qos::AtMostOnce => (rumqttc::QoS::AtMostOnce, v5::mqttbytes::QoS::AtMostOnce),
            };
            let mut p4 = rumqttc::Publish::new(topic, q4, body.clone());
            p4.pkid = 1;
            assert_eq!(
                packet_size(Protocol::V311, topic.len(), payload, qos, meta),
                p4.size()
            );
            let props = v5::mqttbytes::v5::PublishProperties {
                content_type: Some(meta.content_type.to_string()),
                message_expiry_interval: meta.expiry_s,
                payload_format_indicator: Some(1),
                ..Default::default()
            };
            let mut p5 = v5::mqttbytes::v5::Publish::new(topic, q5, body, Some(props));
            p5.pkid = 1;
            assert_eq!(
                packet_size(Protocol::V5, topic.len(), payload, qos, meta),
                p5.size(),
                "{topic} {payload}"
            );
        }
    }
}
