//! What one client may hold and how fast it may ask: open connections per IP address, and token
//! buckets (GCRA, the `governor` crate) per IP address and per credential.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimit;

/// Open connections per client IP address, at most `max` each.
pub struct Connections {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping it frees its place.
pub struct Admitted {
    connections: Arc<Connections>,
    client: IpAddr,
}

impl Connections {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::default(),
        })
    }

    /// A place for a new connection from `client`, or `None` when it holds `max` already.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Option<Admitted> {
        let mut open = self.open.lock().expect("no panics while the lock is held");
        let count = open.entry(client).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Admitted {
            connections: Arc::clone(self),
            client,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .expect("no panics while the lock is held");
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// A token bucket per key (client address, credential); `None` inside means no limit.
pub struct Buckets<K: Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    pub fn new(limit: Option<RateLimit>) -> Self {
        Self {
            limiter: limit.map(|limit| {
                RateLimiter::keyed(Quota::per_second(limit.per_second).allow_burst(limit.burst))
            }),
        }
    }

    /// Takes a token for `key`, or says how long until one is there.
    pub fn take(&self, key: &K) -> Result<(), Duration> {
        match &self.limiter {
            None => Ok(()),
            Some(limiter) => limiter
                .check_key(key)
                .map_err(|not_until| not_until.wait_time_from(limiter.clock().now())),
        }
    }

    /// Drops the buckets of keys that are full again, so that memory follows the active clients.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn a_client_holds_at_most_its_share_of_connections_and_gets_them_back() {
        let connections = Connections::new(2);
        let first = connections.admit(ip(1)).unwrap();
        let _second = connections.admit(ip(1)).unwrap();
        assert!(connections.admit(ip(1)).is_none());
        assert!(
            connections.admit(ip(2)).is_some(),
            "other clients are not affected"
        );
        drop(first);
        assert!(connections.admit(ip(1)).is_some());
    }

    #[test]
    fn a_burst_passes_then_requests_wait_for_the_rate() {
        let limit = RateLimit {
            per_second: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(3).unwrap(),
        };
        let buckets = Buckets::new(Some(limit));
        for _ in 0..3 {
            assert_eq!(buckets.take(&ip(1)), Ok(()));
        }
        let wait = buckets.take(&ip(1)).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(buckets.take(&ip(2)), Ok(()), "each key has its own bucket");
    }

    #[test]
    fn without_a_limit_everything_passes() {
        let buckets = Buckets::<IpAddr>::new(None);
        for _ in 0..10_000 {
            assert_eq!(buckets.take(&ip(1)), Ok(()));
        }
        buckets.forget_idle();
    }
}
