//! What the platform (the host, our capability providers, the lattice tools) and the application
//! (the components and their tools) agree on, so that neither imports the other: how a NATS
//! server list is written, NATS subject wildcards and the headers of a dead letter, keys made of
//! tokens and how the key-value provider stores them, and the JSON body of an HTTP error.
//!
//! Nothing here knows an application's messages, subjects or buckets; a change to `schema/`
//! rebuilds no provider. It builds natively and for `wasm32-wasip2`.

pub mod http;
pub mod keys;

/// Where the broker is.
pub mod broker {
    /// The servers of a NATS URL list as every part of the lattice is given it
    /// (`nats://127.0.0.1:25222,nats://127.0.0.1:25223`): a client tries them in turn, so it
    /// connects while any one server of a cluster is up (and then learns the others from it).
    pub fn servers(urls: &str) -> Vec<&str> {
        urls.split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .collect()
    }

    /// How long a consumer waits before a message is delivered again after its `attempt`-th
    /// failure: 100 ms, doubling up to 5 s (the messaging provider's, and the native build's).
    pub fn redelivery_backoff(attempt: u64) -> std::time::Duration {
        let exponent = u32::try_from(attempt.saturating_sub(1).min(6)).unwrap_or(6);
        std::time::Duration::from_millis(100 * 2u64.pow(exponent))
            .min(std::time::Duration::from_secs(5))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn redelivery_backoff_doubles_from_100_ms_up_to_5_s() {
            let waits: Vec<u128> = (1..=8)
                .map(|a| super::redelivery_backoff(a).as_millis())
                .collect();
            assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        }

        #[test]
        fn a_url_list_names_each_server_once_and_one_url_names_one() {
            assert_eq!(
                super::servers("nats://a:1, nats://b:2,"),
                ["nats://a:1", "nats://b:2"]
            );
            assert_eq!(super::servers("nats://a:1"), ["nats://a:1"]);
        }
    }
}

/// Broker subjects as NATS reads them, and the dead letters of the messaging provider.
pub mod subjects {
    /// The messaging provider -> `deadletter.<consumer>`: a message that consumer gave up on, its
    /// payload as published.
    pub const DEAD_LETTER_PREFIX: &str = "deadletter.";
    /// A dead letter's header: the subject its message was first published on.
    pub const ORIGINAL_SUBJECT_HEADER: &str = "Orders-Original-Subject";
    /// A dead letter's header: the handler's last error.
    pub const FAILURE_HEADER: &str = "Orders-Failure";

    /// Whether `pattern` (NATS wildcards: `*` one token, a last `>` the rest) matches `subject`.
    /// `subject` may be a filter with wildcards itself: it matches only if the pattern covers
    /// every subject the filter does (a `>` in it is matched only by a `>` in the pattern).
    pub fn matches(pattern: &str, subject: &str) -> bool {
        let mut subject_tokens = subject.split('.');
        for expected in pattern.split('.') {
            match (expected, subject_tokens.next()) {
                (_, None | Some("")) => return false,
                (">", Some(_)) => return true,
                (_, Some(">")) => return false,
                ("*", Some(_)) => {}
                (literal, Some(token)) if literal == token => {}
                _ => return false,
            }
        }
        subject_tokens.next().is_none()
    }

    #[cfg(test)]
    mod tests {
        use super::matches;

        #[test]
        fn a_pattern_matches_as_nats_matches_subjects_and_covers_a_filter_only_wholly() {
            assert!(matches("orders.*.*", "orders.ab.o-1"));
            assert!(matches("orders.>", "orders.ab.o-1"));
            assert!(matches("orders.*.*", "orders.*.o-1"), "a narrower filter");
            assert!(!matches("orders.*", "orders.ab.o-1"));
            assert!(!matches("orders.*.*", "orders.>"), "a wider filter");
            assert!(matches("orders.>", "orders.>"));
            assert!(!matches("orders.*", "orders."));
            assert!(!matches("orders.ab", "orders.ac"));
        }
    }
}
