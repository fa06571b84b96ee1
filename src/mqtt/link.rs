//! One face for MQTT 3.1.1 and MQTT 5: rumqttc has a client per protocol
//! version; the publisher talks to [`Link`] and hears [`Wire`] events.
//!
//! With MQTT 5 every message carries its content type, and messages that
//! lose their meaning with time (stats) carry a message expiry.

use std::time::{Duration, SystemTime};

use rumqttc::v5;

use super::{Protocol, PublisherOptions, Secret, status_payload};

/// What is published, for its MQTT 5 properties.
#[derive(Debug, Clone, Copy)]
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

/// Broker events the publisher cares about, whatever the protocol version.
#[derive(Debug)]
pub enum Wire {
    ConnAck,
    /// rumqttc wrote a publish with this packet id.
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
pub enum Link {
    V4(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

/// The event loop, polled on its own task (boxed: the two differ much in size).
pub enum WireLoop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<v5::EventLoop>),
}

impl Link {
    /// Queues a publish; `false` if rumqttc's request queue is full.
    pub fn try_publish(
        &self,
        topic: String,
        at_least_once: bool,
        retain: bool,
        payload: Vec<u8>,
        meta: Meta,
    ) -> bool {
        match self {
            Link::V4(c) => {
                let qos = if at_least_once {
                    rumqttc::QoS::AtLeastOnce
                } else {
                    rumqttc::QoS::AtMostOnce
                };
                c.try_publish(topic, qos, retain, payload).is_ok()
            }
            Link::V5(c) => {
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

    pub fn try_subscribe(&self, filter: String) -> bool {
        match self {
            Link::V4(c) => c.try_subscribe(filter, rumqttc::QoS::AtLeastOnce).is_ok(),
            Link::V5(c) => c
                .try_subscribe(filter, v5::mqttbytes::QoS::AtLeastOnce)
                .is_ok(),
        }
    }

    pub fn try_disconnect(&self) -> bool {
        match self {
            Link::V4(c) => c.try_disconnect().is_ok(),
            Link::V5(c) => c.try_disconnect().is_ok(),
        }
    }
}

impl WireLoop {
    /// The next event; an error means the connection is down (poll again to reconnect).
    pub async fn poll(&mut self) -> Result<Wire, String> {
        use rumqttc::Outgoing;
        match self {
            WireLoop::V4(el) => {
                use rumqttc::{Event, Packet};
                Ok(match el.poll().await.map_err(|e| e.to_string())? {
                    Event::Incoming(Packet::ConnAck(_)) => Wire::ConnAck,
                    Event::Incoming(Packet::PubAck(a)) => Wire::PubAck(a.pkid),
                    Event::Incoming(Packet::Publish(p)) => Wire::Message {
                        topic: p.topic,
                        payload: p.payload.to_vec(),
                    },
                    Event::Outgoing(Outgoing::Publish(pkid)) => Wire::Published(pkid),
                    Event::Outgoing(Outgoing::Disconnect) => Wire::DisconnectSent,
                    _ => Wire::Other,
                })
            }
            WireLoop::V5(el) => {
                use v5::Event;
                use v5::mqttbytes::v5::Packet;
                Ok(match el.poll().await.map_err(|e| e.to_string())? {
                    Event::Incoming(Packet::ConnAck(_)) => Wire::ConnAck,
                    Event::Incoming(Packet::PubAck(a)) => Wire::PubAck(a.pkid),
                    Event::Incoming(Packet::Publish(p)) => Wire::Message {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.to_vec(),
                    },
                    Event::Outgoing(Outgoing::Publish(pkid)) => Wire::Published(pkid),
                    Event::Outgoing(Outgoing::Disconnect) => Wire::DisconnectSent,
                    _ => Wire::Other,
                })
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
/// when `started_at` is given, the Last Will (`offline`, retained).
pub fn connect(
    opts: &PublisherOptions,
    client_id: &str,
    started_at: Option<SystemTime>,
    cap: usize,
) -> (Link, WireLoop) {
    let (host, port) = (opts.broker.host.as_str(), opts.broker.port);
    let will = started_at.map(|t| (opts.status_topic(), status_payload("offline", t)));
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
            (Link::V4(c), WireLoop::V4(Box::new(el)))
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
            (Link::V5(c), WireLoop::V5(Box::new(el)))
        }
    }
}

/// Seconds a stats report stays meaningful: two intervals.
pub fn stats_expiry(interval: Duration) -> Option<u32> {
    Some((interval.as_secs() * 2).clamp(2, u32::MAX as u64) as u32)
}
