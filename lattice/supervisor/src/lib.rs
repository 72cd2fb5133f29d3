//! `orders-supervisor`: keeps one lattice process running.
//!
//! `make run` starts NATS, wadm, the wasmCloud host and the trace receiver each under a
//! supervisor. The supervised process runs in a process group of its own (a host and the
//! provider processes it starts); whenever it dies, whatever is left of that group is killed and
//! the process is started again, at once after a long run and with a growing pause when it keeps
//! dying young. SIGTERM or SIGINT stops the process (SIGTERM to its group, SIGKILL after a grace
//! period) and then the supervisor; if the supervisor itself is killed, the kernel sends its
//! process SIGTERM (the parent-death signal), so nothing outlives both.
//!
//! A wasmCloud host needs one thing more. A host that crashed never says it stopped, so wadm keeps
//! counting the dead host's components and providers as running (and keeps commanding it) until
//! it has missed heartbeats for about a minute and a half, and places nothing on the new host
//! meanwhile. The supervisor knows better: it gives each start of a host a key of its own, and
//! when that host dies it publishes the host's `host_stopped` event on its behalf, as the host
//! does itself on a clean stop. wadm then places the application on the new host as soon as that
//! one starts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

/// How long a process must have run for its death to count as a crash of a healthy process
/// (started again at once) rather than a failure to start (started again after a growing pause).
pub const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// The pause before starting again a process that ran long enough.
pub const FIRST_PAUSE: Duration = Duration::from_millis(250);
/// The longest pause between two starts of a process that keeps dying young.
pub const LONGEST_PAUSE: Duration = Duration::from_secs(10);

/// The pauses between the starts of a supervised process.
#[derive(Debug, Default)]
pub struct Restarts {
    /// Deaths in a row of a process that had run less than [`HEALTHY_RUN`].
    young_deaths: u32,
}

impl Restarts {
    /// The pause before the next start, after a process died having run for `ran`.
    pub fn pause_after(&mut self, ran: Duration) -> Duration {
        if ran >= HEALTHY_RUN {
            self.young_deaths = 0;
            return FIRST_PAUSE;
        }
        let pause = FIRST_PAUSE.saturating_mul(1 << self.young_deaths.min(8));
        self.young_deaths += 1;
        pause.min(LONGEST_PAUSE)
    }
}

/// One start of a wasmCloud host: its key, and where it reaches the lattice (read from the
/// `WASMCLOUD_*` variables the host itself reads, so both agree).
#[derive(Debug, Clone)]
pub struct HostStart {
    seed: String,
    pub host_id: String,
    pub lattice: String,
    pub nats_url: String,
    pub creds: Option<PathBuf>,
    pub labels: HashMap<String, String>,
}

impl HostStart {
    /// A start with a fresh host key, for a host configured by `vars` (the environment).
    pub fn new(vars: &HashMap<String, String>) -> anyhow::Result<Self> {
        let key = nkeys::KeyPair::new_server();
        let var = |names: &[&str]| names.iter().find_map(|n| vars.get(*n)).cloned();
        let host =
            var(&["WASMCLOUD_CTL_HOST", "WASMCLOUD_NATS_HOST"]).unwrap_or("127.0.0.1".into());
        let port = var(&["WASMCLOUD_CTL_PORT", "WASMCLOUD_NATS_PORT"]).unwrap_or("4222".into());
        let labels = vars
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.strip_prefix("WASMCLOUD_LABEL_")?.to_lowercase(),
                    v.clone(),
                ))
            })
            .collect();
        Ok(Self {
            seed: key.seed().context("a new host key has a seed")?,
            host_id: key.public_key(),
            lattice: var(&["WASMCLOUD_LATTICE"]).unwrap_or("default".into()),
            nats_url: format!("nats://{host}:{port}"),
            creds: var(&["WASMCLOUD_CTL_CREDS", "WASMCLOUD_NATS_CREDS"]).map(PathBuf::from),
            labels,
        })
    }

    /// The variables that give the host this start's key.
    pub fn env(&self) -> [(&'static str, &str); 1] {
        [("WASMCLOUD_HOST_SEED", &self.seed)]
    }

    /// The subject of the host's lattice events of kind `kind` (`wasmbus.evt.<lattice>.<kind>`).
    pub fn event_subject(&self, kind: &str) -> String {
        format!("wasmbus.evt.{}.{kind}", self.lattice)
    }

    /// The `host_stopped` event the host would have published had it stopped cleanly: a
    /// CloudEvent whose source is the host's id, with the host's labels.
    pub fn stopped_event(&self, event_id: &str) -> serde_json::Value {
        serde_json::json!({
            "specversion": "1.0",
            "id": event_id,
            "type": "com.wasmcloud.lattice.host_stopped",
            "source": self.host_id,
            "datacontenttype": "application/json",
            "data": { "labels": self.labels, "reason": "the host process died; its supervisor started a new host" },
        })
    }

    /// Publishes [`Self::stopped_event`] on the lattice, as the host's own (control) identity.
    pub async fn announce_stopped(&self) -> anyhow::Result<()> {
        let options = match &self.creds {
            Some(path) => async_nats::ConnectOptions::with_credentials_file(path.clone())
                .await
                .with_context(|| format!("reading {}", path.display()))?,
            None => async_nats::ConnectOptions::new(),
        };
        let nats = options
            .connection_timeout(Duration::from_secs(2))
            .connect(&self.nats_url)
            .await
            .with_context(|| format!("connecting to {}", self.nats_url))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let event = self.stopped_event(&format!("{}-stopped-{nanos}", self.host_id));
        nats.publish(self.event_subject("host_stopped"), event.to_string().into())
            .await?;
        nats.flush()
            .await
            .context("flushing the host_stopped event")?;
        Ok(())
    }

    /// Where this start unpacked its providers (`$TMPDIR/wasmcloudcache/<host id>`, wasmcloud-core):
    /// nobody uses it once the host is dead.
    pub fn provider_cache(&self) -> PathBuf {
        std::env::temp_dir()
            .join("wasmcloudcache")
            .join(&self.host_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_ran_long_is_started_again_at_once() {
        let mut restarts = Restarts::default();
        assert_eq!(restarts.pause_after(HEALTHY_RUN), FIRST_PAUSE);
        assert_eq!(restarts.pause_after(Duration::from_secs(3600)), FIRST_PAUSE);
    }

    #[test]
    fn a_process_that_keeps_dying_young_waits_longer_each_time_up_to_a_limit() {
        let mut restarts = Restarts::default();
        let pauses: Vec<Duration> = (0..10)
            .map(|_| restarts.pause_after(Duration::from_secs(1)))
            .collect();
        assert_eq!(pauses[0], FIRST_PAUSE);
        assert_eq!(pauses[1], FIRST_PAUSE * 2);
        assert_eq!(pauses[2], FIRST_PAUSE * 4);
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(pauses[9], LONGEST_PAUSE);
        assert_eq!(
            restarts.pause_after(HEALTHY_RUN),
            FIRST_PAUSE,
            "a healthy run resets it"
        );
    }

    fn host_vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_host_start_has_a_key_of_its_own_handed_to_the_host() {
        let vars = host_vars(&[]);
        let (first, second) = (
            HostStart::new(&vars).unwrap(),
            HostStart::new(&vars).unwrap(),
        );
        assert_ne!(first.host_id, second.host_id);
        let [(name, seed)] = first.env();
        assert_eq!(name, "WASMCLOUD_HOST_SEED");
        assert_eq!(
            nkeys::KeyPair::from_seed(seed).unwrap().public_key(),
            first.host_id
        );
    }

    #[test]
    fn a_host_start_reaches_the_lattice_the_way_the_host_does() {
        let start = HostStart::new(&host_vars(&[
            ("WASMCLOUD_NATS_HOST", "127.0.0.1"),
            ("WASMCLOUD_NATS_PORT", "14222"),
            ("WASMCLOUD_CTL_PORT", "14223"),
            ("WASMCLOUD_CTL_CREDS", "/state/nats/host.creds"),
            ("WASMCLOUD_LATTICE", "orders"),
            ("WASMCLOUD_LABEL_instance", "test"),
        ]))
        .unwrap();
        assert_eq!(
            start.nats_url, "nats://127.0.0.1:14223",
            "the control connection's"
        );
        assert_eq!(start.creds, Some("/state/nats/host.creds".into()));
        assert_eq!(
            start.event_subject("host_stopped"),
            "wasmbus.evt.orders.host_stopped"
        );
        assert_eq!(start.labels["instance"], "test");
    }

    #[test]
    fn the_stopped_event_is_the_cloud_event_a_host_publishes_when_it_stops() {
        let start = HostStart::new(&host_vars(&[("WASMCLOUD_LABEL_host", "2")])).unwrap();
        let event = start.stopped_event("e-1");
        assert_eq!(event["type"], "com.wasmcloud.lattice.host_stopped");
        assert_eq!(event["source"], start.host_id.as_str());
        assert_eq!(event["id"], "e-1");
        assert_eq!(event["data"]["labels"]["host"], "2");
    }
}
