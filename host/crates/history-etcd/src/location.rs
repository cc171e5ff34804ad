//! `etcd://host:port[,host:port…][/prefix]`: where the shared store lives.

use std::fmt;
use std::str::FromStr;

/// The prefix used when the location names none.
pub const DEFAULT_PREFIX: &str = "/potter";

/// Endpoints (`host:port`, tried in turn by the client) and the key prefix everything lives under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdLocation {
    pub endpoints: Vec<String>,
    /// Starts with `/`, never ends with one (`/potter`, `/teams/payments`).
    pub prefix: String,
}

/// Why a `--store etcd://...` text is not a location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store location `{text}`: {reason} (expected etcd://host:port[,host:port...][/prefix])")]
pub struct LocationError {
    pub text: String,
    pub reason: String,
}

impl FromStr for EtcdLocation {
    type Err = LocationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason: &str| LocationError {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = text
            .strip_prefix("etcd://")
            .ok_or_else(|| fail("it does not start with etcd://"))?;
        let (hosts, prefix) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, ""),
        };
        let mut endpoints = Vec::new();
        for endpoint in hosts.split(',') {
            let (host, port) = endpoint
                .rsplit_once(':')
                .ok_or_else(|| fail(&format!("endpoint `{endpoint}` has no :port")))?;
            if host.is_empty() {
                return Err(fail(&format!("endpoint `{endpoint}` has no host")));
            }
            if port.parse::<u16>().map_or(true, |port| port == 0) {
                return Err(fail(&format!("endpoint `{endpoint}` has no valid port")));
            }
            endpoints.push(endpoint.to_owned());
        }
        let prefix = prefix.trim_end_matches('/');
        if prefix.contains("//") {
            return Err(fail("the prefix has an empty segment"));
        }
        Ok(EtcdLocation {
            endpoints,
            prefix: if prefix.is_empty() {
                DEFAULT_PREFIX.to_owned()
            } else {
                prefix.to_owned()
            },
        })
    }
}

impl fmt::Display for EtcdLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "etcd://{}{}", self.endpoints.join(","), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints_and_prefix() {
        let location: EtcdLocation = "etcd://10.0.0.1:2379,10.0.0.2:2379/teams/payments/".parse().unwrap();
        assert_eq!(location.endpoints, ["10.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(location.prefix, "/teams/payments");
        assert_eq!(location.to_string(), "etcd://10.0.0.1:2379,10.0.0.2:2379/teams/payments");
        let bare: EtcdLocation = "etcd://localhost:2379".parse().unwrap();
        assert_eq!(bare.prefix, DEFAULT_PREFIX);
    }

    #[test]
    fn refuses_malformed_locations_naming_the_part() {
        for (text, part) in [
            ("http://a:1", "etcd://"),
            ("etcd://a", "no :port"),
            ("etcd://:2379", "no host"),
            ("etcd://a:0", "valid port"),
            ("etcd://a:x/p", "valid port"),
            ("etcd://a:1//p", "empty segment"),
        ] {
            let error = text.parse::<EtcdLocation>().unwrap_err().to_string();
            assert!(error.contains(part) && error.contains(text), "{text}: {error}");
        }
    }
}
