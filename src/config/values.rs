//! Value types of the configuration that other stages use as they are: the
//! broker address, the MQTT protocol version, an execution provider's name.

use serde::Deserialize;

/// A parsed `[mqtt] url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl BrokerUrl {
    pub fn parse(url: &str) -> Result<BrokerUrl, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else {
            return Err(format!("{url:?} must start with mqtt:// or mqtts://"));
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('@') {
            return Err("credentials do not belong in the URL".into());
        }
        let default_port = if tls { 8883 } else { 1883 };
        let parse_port = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| format!("port {p:?} is not a number from 1 to 65535"))
        };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed `[`"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, parse_port(p)?),
                None if after.is_empty() => (h, default_port),
                None => return Err(format!("{url:?}: unexpected {after:?} after the host")),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, parse_port(p)?),
                None => (rest, default_port),
            }
        };
        if host.is_empty() || host.contains('/') {
            return Err(format!("{url:?} has no host"));
        }
        if port == 0 {
            return Err("port must not be 0".into());
        }
        Ok(BrokerUrl {
            host: host.to_string(),
            port,
            tls,
        })
    }
}

/// `[mqtt] protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub enum Protocol {
    #[default]
    #[serde(rename = "3.1.1")]
    V311,
    #[serde(rename = "5")]
    V5,
}

/// `[detector] providers`: an execution provider, the hardware ONNX Runtime runs
/// the model on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Tensorrt,
    Cuda,
    Openvino,
    Cpu,
}

/// Every provider streetwatch can ask for, in the usual order of preference.
pub const ALL_PROVIDERS: [Provider; 4] = [
    Provider::Tensorrt,
    Provider::Cuda,
    Provider::Openvino,
    Provider::Cpu,
];

pub fn default_providers() -> Vec<Provider> {
    vec![Provider::Cpu]
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Tensorrt => "tensorrt",
            Provider::Cuda => "cuda",
            Provider::Openvino => "openvino",
            Provider::Cpu => "cpu",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(
            BrokerUrl::parse("mqtt://127.0.0.1:1884").unwrap(),
            BrokerUrl {
                host: "127.0.0.1".into(),
                port: 1884,
                tls: false
            }
        );
        assert_eq!(BrokerUrl::parse("mqtts://brain.city").unwrap().port, 8883);
        assert_eq!(BrokerUrl::parse("mqtt://[::1]:1999").unwrap().host, "::1");
        assert!(BrokerUrl::parse("tcp://x:1").is_err());
        assert!(BrokerUrl::parse("mqtt://x:http").is_err());
        assert!(BrokerUrl::parse("mqtt://u:p@x:1").is_err());
        assert!(BrokerUrl::parse("mqtt://").is_err());
    }
}
