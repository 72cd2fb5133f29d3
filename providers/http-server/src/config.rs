//! Provider configuration (wadm.yaml, the provider's `config`). Limits exist so that no client can
//! occupy what others need: a component runs at most `instances` calls at once, so a request is
//! read completely, within a deadline, before it takes one of those places.
//!
//! - `address` (required): where to listen, e.g. `127.0.0.1:8000`;
//! - `routing_mode` (optional): only `path` is served (one link per exact path);
//! - `max_body_bytes` (default 16384): a larger body is a 413;
//! - `body_timeout_ms` (default 5000): a body not complete by then is a 408;
//! - `header_timeout_ms` (default 5000): a connection that has not sent its request's headers by
//!   then is closed;
//! - `invoke_timeout_ms` (default 30000): a component that has not answered by then is a 503;
//! - `max_connections_per_client` (default 1024): further connections from one IP address are
//!   closed at once;
//! - `rate_per_client`, `burst_per_client` (default 1000 and 1000): requests per second per IP
//!   address, and how many may come at once; beyond that a 429 with `Retry-After`;
//! - `rate_per_credential`, `burst_per_credential` (default 100 and 200): the same per
//!   `Authorization` header value (per API key), so one key cannot use up a service.
//!
//! A rate or burst of 0 turns that limit off (the benchmark measures the platform this way).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::{bail, Context as _};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    pub address: SocketAddr,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
    pub header_timeout: Duration,
    pub invoke_timeout: Duration,
    pub max_connections_per_client: usize,
    pub per_client: Option<RateLimit>,
    pub per_credential: Option<RateLimit>,
}

/// A sustained rate (per second) and how many requests may arrive at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl ServerConfig {
    pub fn from_map(config: &HashMap<String, String>) -> anyhow::Result<Self> {
        let number = |key: &str, default: u64| -> anyhow::Result<u64> {
            config.get(key).map_or(Ok(default), |value| {
                value
                    .parse::<u64>()
                    .with_context(|| format!("`{key}` must be a whole number, got `{value}`"))
            })
        };
        let millis = |key: &str, default: u64| -> anyhow::Result<Duration> {
            match number(key, default)? {
                0 => bail!("`{key}` must be at least 1"),
                ms => Ok(Duration::from_millis(ms)),
            }
        };
        let rate = |rate_key: &str, rate: u64, burst_key: &str, burst: u64| {
            let (rate, burst) = (number(rate_key, rate)?, number(burst_key, burst)?);
            let positive = |n: u64| NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX));
            anyhow::Ok(match (positive(rate), positive(burst)) {
                (Some(per_second), Some(burst)) => Some(RateLimit { per_second, burst }),
                _ => None,
            })
        };
        if let Some(mode) = config.get("routing_mode").filter(|m| *m != "path") {
            bail!("routing_mode `{mode}` is not served; this provider routes by exact path");
        }
        let address = config
            .get("address")
            .context("provider config needs `address`, e.g. 127.0.0.1:8000")?;
        Ok(Self {
            address: address
                .parse()
                .with_context(|| format!("`address` `{address}` is not IP:port"))?,
            max_body_bytes: usize::try_from(number(
                "max_body_bytes",
                orders_conventions::http::MAX_BODY_BYTES as u64,
            )?)?,
            body_timeout: millis("body_timeout_ms", 5_000)?,
            header_timeout: millis("header_timeout_ms", 5_000)?,
            invoke_timeout: millis("invoke_timeout_ms", 30_000)?,
            max_connections_per_client: usize::try_from(number(
                "max_connections_per_client",
                1024,
            )?)?
            .max(1),
            per_client: rate("rate_per_client", 1000, "burst_per_client", 1000)?,
            per_credential: rate("rate_per_credential", 100, "burst_per_credential", 200)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orders_provider_support::config_map as map;

    #[test]
    fn an_address_alone_gives_the_documented_defaults() {
        let config = ServerConfig::from_map(&map(&[("address", "127.0.0.1:8000")])).unwrap();
        assert_eq!(config.max_body_bytes, 16 * 1024);
        assert_eq!(config.body_timeout, Duration::from_secs(5));
        assert_eq!(config.max_connections_per_client, 1024);
        let per_key = config.per_credential.unwrap();
        assert_eq!((per_key.per_second.get(), per_key.burst.get()), (100, 200));
    }

    #[test]
    fn a_rate_of_zero_turns_the_limit_off() {
        let config = ServerConfig::from_map(&map(&[
            ("address", "127.0.0.1:8000"),
            ("rate_per_client", "0"),
            ("burst_per_credential", "0"),
        ]))
        .unwrap();
        assert_eq!((config.per_client, config.per_credential), (None, None));
    }

    #[test]
    fn malformed_settings_are_refused() {
        for bad in [
            map(&[]),
            map(&[("address", "localhost")]),
            map(&[("address", "127.0.0.1:8000"), ("routing_mode", "address")]),
            map(&[("address", "127.0.0.1:8000"), ("body_timeout_ms", "0")]),
            map(&[("address", "127.0.0.1:8000"), ("rate_per_client", "-1")]),
        ] {
            assert!(ServerConfig::from_map(&bad).is_err(), "{bad:?}");
        }
    }
}
