//! One lattice instance: NATS (JetStream), wadm, the wasmCloud host and the orders application on
//! it, started, deployed, inspected, backed up and stopped.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::layout::{Instance, Layout};
use crate::process::{command, output, run, say, succeeds, wait_for, Processes, Start};

mod backup;
mod deploy;

/// The lattice's name on NATS (wasmCloud's `lattice` / `WASMCLOUD_LATTICE`).
const LATTICE: &str = "default";
pub struct Lattice {
    pub layout: Layout,
    pub instance: Instance,
    pub processes: Processes,
    /// Structured logs: wadm, the host and our providers log one JSON object a line
    /// (`LOG_FORMAT=json`; NATS has no such format and keeps its own).
    json_logs: bool,
    /// Traces on (`ORDERS_TRACES`, on unless a benchmark's lattice).
    traces: bool,
}

impl Lattice {
    pub fn new(layout: Layout, instance: Instance) -> anyhow::Result<Self> {
        let state = layout.state(&instance.name);
        let supervisor = match std::env::var("ORDERS_SUPERVISE").as_deref() {
            Ok("on") | Err(_) => Some(layout.bin("orders-supervisor")),
            Ok("off") => None,
            Ok(other) => bail!("ORDERS_SUPERVISE={other}: on or off"),
        };
        let traces = match std::env::var("ORDERS_TRACES").as_deref() {
            Ok("on") => true,
            Ok("off") => false,
            Err(_) => !instance.is_bench(),
            Ok(other) => bail!("ORDERS_TRACES={other}: on or off"),
        };
        Ok(Self {
            processes: Processes::of(state, supervisor),
            json_logs: std::env::var("LOG_FORMAT").as_deref() == Ok("json"),
            traces,
            layout,
            instance,
        })
    }

    pub fn state(&self) -> &Path {
        &self.processes.state
    }

    fn logs(&self) -> &Path {
        &self.processes.logs
    }

    /// The instance's NATS credentials (docs/security.md): one creds file per identity, made by
    /// orders-nats-auth.
    pub fn auth(&self) -> PathBuf {
        self.state().join("nats")
    }

    /// The admin identity's credentials: what people, the tests and every wash command here use.
    pub fn admin_creds(&self) -> PathBuf {
        self.auth().join("admin.creds")
    }

    /// The instance's key configuration: an HMAC secret for API keys and an admin token.
    pub fn secrets(&self) -> PathBuf {
        self.state().join("secrets")
    }

    pub fn admin_token(&self) -> anyhow::Result<String> {
        let file = self.secrets().join("admin-token");
        Ok(std::fs::read_to_string(&file)
            .with_context(|| format!("{}", file.display()))?
            .trim_end()
            .to_owned())
    }

    /// A wash command on this instance's lattice, as the admin identity.
    fn wash<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(&self, args: I) -> Command {
        let mut wash = command(self.layout.wash(), args);
        wash.args(["--ctl-host", "127.0.0.1", "--ctl-port"])
            .arg(self.instance.nats_port.to_string())
            .env("WASH_CTL_CREDS", self.admin_creds())
            .env("WASH_KEYS", self.layout.wash_keys())
            .env("RUST_BACKTRACE", "0");
        wash
    }

    /// What wash answers as JSON, or nothing if it fails.
    fn wash_json(&self, args: &[&str]) -> Option<Value> {
        let mut wash = self.wash(args);
        wash.args(["-o", "json"]);
        serde_json::from_str(&output(&mut wash).ok()?).ok()
    }

    /// orders-admin on this instance's NATS, as the admin identity.
    fn admin(&self) -> Command {
        let mut admin = command(self.layout.bin("orders-admin"), ["--nats"]);
        admin
            .arg(self.instance.nats_urls())
            .arg("--creds")
            .arg(self.admin_creds());
        admin
    }

    // ------------------------------------------------------------------ start

    /// Starts NATS, the trace receiver, wadm and the hosts, puts the key configuration and
    /// deploys the application, then prints where everything is.
    pub fn up(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.state().join("jetstream"))?;
        self.issue_credentials()?;
        self.start_nats()?;
        self.start_telemetry()?;
        self.replicate_lattice_state()?;
        for index in 0..self.instance.wadm_names().len() {
            self.start_wadm(index)?;
        }
        for index in 0..self.instance.hosts {
            self.start_host(index)?;
        }
        wait_for("the hosts to join the lattice", 60, self.logs(), || {
            self.hosts_up()
        })?;
        self.ensure_secrets()?;
        self.put_auth_config()?;
        self.deploy()?;
        self.print_banner();
        Ok(())
    }

    /// The instance's NATS alone, with its identities and secrets: what `make bench`'s native
    /// build runs on.
    pub fn nats_alone(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.state().join("jetstream"))?;
        self.issue_credentials()?;
        self.start_nats()?;
        self.ensure_secrets()
    }

    /// The authority (operator, accounts) made once, users issued anew on every start with the
    /// permissions the current manifest implies (orders-manifest data-plane: its streams,
    /// subjects, buckets and secret configs).
    fn issue_credentials(&self) -> anyhow::Result<()> {
        let manifest = self.layout.root.join("wadm.yaml");
        let plane =
            output(command(self.layout.bin("orders-manifest"), ["data-plane"]).arg(&manifest))?;
        run(
            command(self.layout.bin("orders-nats-auth"), ["issue", "--dir"])
                .arg(self.auth())
                .args(["--lattice", LATTICE])
                .args(plane.lines()),
        )
    }

    /// One NATS server, or the replicated instance's cluster: each server with its own store,
    /// routes to the others on loopback, and JetStream clustered.
    fn start_nats(&self) -> anyhow::Result<()> {
        // wRPC subscribes and unsubscribes a reply subject for every call; with NATS's
        // subscription cache on, each of those walks the whole cache (profile in
        // docs/benchmark.md), so it is off. The included file makes NATS trust only our
        // operator's accounts: no anonymous connection.
        std::fs::write(
            self.state().join("nats.conf"),
            "disable_sublist_cache: true\ninclude \"nats/server.conf\"\n",
        )?;
        for index in 0..self.instance.nats_servers {
            self.start_nats_server(index)?;
        }
        let ports = self.instance.nats_port..self.instance.nats_port + self.instance.nats_servers;
        wait_for(
            &format!("NATS on ports {}-{}", ports.start, ports.end - 1),
            20,
            self.logs(),
            || ports.clone().all(listening),
        )?;
        if self.instance.nats_servers > 1 {
            wait_for(
                "the NATS cluster to elect its JetStream leader",
                60,
                self.logs(),
                || self.jetstream_clustered(),
            )?;
        }
        // One client's JetStream request answered in the lattice account before the trace
        // receiver, wadm and the hosts connect at once. A server enables JetStream for an account
        // when the account's first client connects, and takes that account's requests from other
        // clients before it has finished: with a new store it then checks that it can write there
        // by creating the account's streams directory and removing it again (nats-server,
        // Account.EnableJetStream), so a stream another client creates in that moment fails
        // ("could not create storage directory") and wadm, which creates its buckets at start,
        // exited with it. Once one client has been answered, the set-up is over. On a restarted
        // cluster the same request also waits until every stream's replicas have elected a
        // leader; before that, the host and wadm would take their buckets for missing and fail to
        // create them ("stream name already in use with a different configuration").
        wait_for(
            "JetStream in the lattice account (and every stream's leader)",
            60,
            self.logs(),
            || succeeds(self.admin().arg("streams")),
        )
    }

    fn start_nats_server(&self, index: u16) -> anyhow::Result<()> {
        let instance = &self.instance;
        let state = self.state().display().to_string();
        let mut args: Vec<String> = vec![
            "-c".into(),
            format!("{state}/nats.conf"),
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            (instance.nats_port + index).to_string(),
            "-m".into(),
            (instance.monitor_port() + index).to_string(),
            "-js".into(),
            "-sd".into(),
        ];
        if instance.nats_servers == 1 {
            args.extend([
                format!("{state}/jetstream"),
                "-n".into(),
                format!("orders-{}", instance.name),
            ]);
        } else {
            let routes: Vec<String> = (0..instance.nats_servers)
                .map(|server| format!("nats-route://127.0.0.1:{}", instance.route_port(server)))
                .collect();
            args.extend([
                format!("{state}/jetstream/{}", index + 1),
                "-n".into(),
                format!("orders-{}-{}", instance.name, index + 1),
                "--cluster_name".into(),
                format!("orders-{}", instance.name),
                "--cluster".into(),
                format!("nats://127.0.0.1:{}", instance.route_port(index)),
                "--routes".into(),
                routes.join(","),
            ]);
        }
        self.processes.start(Start {
            name: &instance.nats_names()[usize::from(index)],
            program: &self.layout.nats_server(),
            args,
            env: Vec::new(),
            wasmcloud_host: false,
        })
    }

    /// A cluster takes JetStream requests once its servers have elected a meta leader.
    fn jetstream_clustered(&self) -> bool {
        let url = format!("http://127.0.0.1:{}/jsz", self.instance.monitor_port());
        get_json(&url).is_some_and(|jsz| {
            let meta = &jsz["meta_cluster"];
            meta["leader"]
                .as_str()
                .is_some_and(|leader| !leader.is_empty())
                && meta["cluster_size"].as_u64() == Some(u64::from(self.instance.nats_servers))
        })
    }

    /// wadm and the host create their streams and buckets with one replica whatever the cluster
    /// (ours are created with the instance's replicas: `replicas` in the providers' config). So on
    /// a cluster's first start, before any host exists, wadm starts alone, creates its streams and
    /// stops; they are raised to the instance's replicas and the hosts' buckets are created so (a
    /// host uses the buckets it finds). No host is ever restarted behind wadm's back: wadm would
    /// keep commanding the hosts it saw go until it gave them up, a minute later, and place
    /// nothing meanwhile. wadm's streams, still empty, are created again rather than raised: its
    /// event intake (a stream sourcing the hosts' events) stops receiving when the stream it
    /// sources is raised, and wadm, hearing no heartbeat, would drop every live host a minute
    /// later.
    fn replicate_lattice_state(&self) -> anyhow::Result<()> {
        let replicas = self.instance.replicas;
        if replicas <= 1 {
            return Ok(());
        }
        let streams: Vec<Value> = output(self.admin().arg("streams"))?
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        let lattice_data = format!("KV_LATTICEDATA_{LATTICE}");
        let replicated = streams.iter().any(|s| s["stream"] == lattice_data.as_str())
            && streams
                .iter()
                .all(|s| s["replicas"].as_u64() >= Some(u64::from(replicas)));
        if replicated {
            return Ok(());
        }
        say(format!(
            "creating wadm's streams and the hosts' buckets with {replicas} replicas (they make theirs with one)"
        ));
        self.start_wadm(0)?;
        wait_for("wadm to create its streams", 60, self.logs(), || {
            succeeds(
                self.wash(["app", "list", "-o", "json"])
                    .stdout(std::process::Stdio::null()),
            )
        })?;
        for wadm in self.instance.wadm_names() {
            self.processes.stop(&wadm);
        }
        output(
            self.admin()
                .args([
                    "replicate",
                    &replicas.to_string(),
                    "--host-buckets-of",
                    LATTICE,
                ])
                .arg("--recreate-empty"),
        )
        .map(drop)
    }

    /// Where the host and our providers export their spans over OTLP/HTTP: to our receiver
    /// unless OTEL_EXPORTER_OTLP_ENDPOINT names a collector of the user's.
    fn otlp_endpoint(&self) -> Option<String> {
        std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .ok()
            .filter(|endpoint| !endpoint.is_empty())
    }

    /// Our receiver also serves /metrics: NATS's monitoring endpoint for the streams' lag, and
    /// payment results read as the admin identity (the one identity that may subscribe to them
    /// besides notify).
    fn start_telemetry(&self) -> anyhow::Result<()> {
        if !self.traces || self.otlp_endpoint().is_some() {
            return Ok(());
        }
        let instance = &self.instance;
        self.processes.start(Start {
            name: "telemetry",
            program: &self.layout.bin("orders-telemetry"),
            args: vec![
                "--listen".into(),
                format!("127.0.0.1:{}", instance.telemetry_port()),
                "--nats-monitor".into(),
                format!("http://127.0.0.1:{}", instance.monitor_port()),
                "--nats".into(),
                instance.nats_urls(),
                "--creds".into(),
                self.admin_creds().display().to_string(),
            ],
            env: Vec::new(),
            wasmcloud_host: false,
        })
    }

    /// The server the i-th wadm or host speaks to first (it moves to another if that one goes).
    fn nats_port_for(&self, index: u16) -> u16 {
        self.instance.nats_port + index % self.instance.nats_servers
    }

    fn start_wadm(&self, index: usize) -> anyhow::Result<()> {
        let index = u16::try_from(index)?;
        self.processes.start(Start {
            name: &self.instance.wadm_names()[usize::from(index)],
            program: &self.layout.bin("orders-wadm"),
            args: vec![
                "--nats-server".into(),
                format!("127.0.0.1:{}", self.nats_port_for(index)),
                "--nats-creds-file".into(),
                self.auth().join("wadm.creds").display().to_string(),
            ],
            env: vec![
                ("RUST_LOG".into(), "info".into()),
                ("WADM_STRUCTURED_LOGGING".into(), self.json_logs.to_string()),
            ],
            wasmcloud_host: false,
        })
    }

    /// The host's control connection is the host identity; its RPC connection, which it also
    /// hands to every provider, is the data plane (rpc). Label `host` tells the hosts apart, for
    /// what is placed on one of them (the `ha` instance's HTTP listeners).
    fn start_host(&self, index: u16) -> anyhow::Result<()> {
        let name = &self.instance.host_names()[usize::from(index)];
        // The host unpacks every provider archive into $TMPDIR/wasmcloudcache/<host id>/, and a
        // host has a new id at each start: in /tmp that piled up 60 MB a start, never removed.
        // Here each host has its own directory, emptied before it starts, never while it runs (it
        // starts a provider that died again from there); its supervisor removes a dead host's
        // part.
        let tmp = self.state().join("tmp").join(name);
        if !self.processes.running(name) {
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp)?;
        }
        let otlp = self
            .otlp_endpoint()
            .unwrap_or_else(|| format!("http://127.0.0.1:{}", self.instance.telemetry_port()));
        let auth = self.auth();
        // The settings are the environment of the supervisor too, which reaches the lattice as
        // the host does to announce a dead host.
        let env = [
            ("TMPDIR", tmp.display().to_string()),
            ("WASMCLOUD_NATS_HOST", "127.0.0.1".into()),
            ("WASMCLOUD_NATS_PORT", self.nats_port_for(index).to_string()),
            (
                "WASMCLOUD_CTL_CREDS",
                auth.join("host.creds").display().to_string(),
            ),
            (
                "WASMCLOUD_RPC_CREDS",
                auth.join("rpc.creds").display().to_string(),
            ),
            ("WASMCLOUD_LATTICE", LATTICE.into()),
            ("WASMCLOUD_ALLOW_FILE_LOAD", "true".into()),
            (
                "WASMCLOUD_STRUCTURED_LOGGING_ENABLED",
                self.json_logs.to_string(),
            ),
            ("WASMCLOUD_OBSERVABILITY_ENABLED", self.traces.to_string()),
            ("WASMCLOUD_METRICS_ENABLED", "false".into()),
            ("WASMCLOUD_LOGS_ENABLED", "false".into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp),
            ("WASMCLOUD_LABEL_instance", self.instance.name.clone()),
            ("WASMCLOUD_LABEL_host", (index + 1).to_string()),
        ];
        self.processes.start(Start {
            name,
            program: &self.layout.bin("orders-host"),
            args: Vec::new(),
            env: env.map(|(key, value)| (key.to_owned(), value)).to_vec(),
            wasmcloud_host: true,
        })
    }

    fn hosts_up(&self) -> bool {
        self.wash_json(&["get", "hosts"]).is_some_and(|hosts| {
            hosts["hosts"]
                .as_array()
                .is_some_and(|hosts| hosts.len() >= usize::from(self.instance.hosts))
        })
    }

    /// The API key secret and the admin token, made on first start from the OS's random source,
    /// kept in `secrets/` (0700, files 0600) and never printed. Only the token's SHA-256 reaches
    /// the lattice.
    fn ensure_secrets(&self) -> anyhow::Result<()> {
        use base64::Engine as _;
        let secrets = self.secrets();
        create_private_dir(&secrets)?;
        let random = |bytes: usize| -> anyhow::Result<Vec<u8>> {
            let mut buffer = vec![0; bytes];
            getrandom::fill(&mut buffer).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
            Ok(buffer)
        };
        let secret = secrets.join("api-key-secret");
        if !non_empty(&secret) {
            write_private(&secret, &format!("{}\n", hex::encode(random(32)?)))?;
        }
        let token = secrets.join("admin-token");
        if !non_empty(&token) {
            let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random(32)?);
            write_private(&token, &format!("ola_{encoded}\n"))?;
        }
        Ok(())
    }

    /// The named config `orders-auth` that billing, order and notify read (wadm.yaml names it
    /// without properties, so it never lands in the manifest).
    fn put_auth_config(&self) -> anyhow::Result<()> {
        let secret = std::fs::read_to_string(self.secrets().join("api-key-secret"))?;
        let token_sha256 = hex::encode(Sha256::digest(self.admin_token()?.as_bytes()));
        output(&mut self.wash([
            "config".to_owned(),
            "put".into(),
            "orders-auth".into(),
            format!("api_key_secret={}", secret.trim_end()),
            format!("admin_token_sha256={token_sha256}"),
        ]))
        .map(drop)
    }

    // ------------------------------------------------------------------ inspect, stop

    /// What runs, what NATS holds (its monitoring endpoint: connections, streams, and each
    /// durable consumer's backlog), and the application's state as wadm sees it.
    pub fn status(&self) -> anyhow::Result<()> {
        for name in self.instance.processes() {
            let processes = &self.processes;
            match (processes.running(&name), processes.child_pid(&name)) {
                (false, _) => println!("{name}: stopped"),
                (true, Some(child)) => println!(
                    "{name}: running (pid {child}, under its supervisor, pid {})",
                    processes.pid(&name).unwrap_or_default()
                ),
                (true, None) => println!(
                    "{name}: running (pid {})",
                    processes.pid(&name).unwrap_or_default()
                ),
            }
        }
        if self.processes.running(&self.instance.nats_names()[0]) {
            let _ = run(&mut command(
                self.layout.bin("orders-nats-monitor"),
                [self.instance.monitor_urls().as_str(), "show"],
            ));
        }
        if self.processes.running(&self.instance.host_names()[0]) {
            let _ = run(&mut self.wash(["app", "status", "orders"]));
        }
        Ok(())
    }

    /// Hosts first (their providers stop with them), then wadm, NATS and the trace receiver;
    /// then any other process a pid file of the instance names, so that nothing started for the
    /// instance outlives `down`.
    pub fn down(&self) {
        let instance = &self.instance;
        let layout_order = instance
            .host_names()
            .into_iter()
            .chain(instance.wadm_names())
            .chain(instance.nats_names())
            .chain(["telemetry".to_owned()]);
        for name in layout_order.chain(self.processes.recorded()) {
            self.processes.stop(&name);
        }
    }

    /// `down`, and the instance's state wiped.
    pub fn clean(&self) -> anyhow::Result<()> {
        self.down();
        if self.state().exists() {
            std::fs::remove_dir_all(self.state())?;
        }
        say(format!("state of '{}' wiped", self.instance.name));
        Ok(())
    }

    fn refuse_if_running(&self) -> anyhow::Result<()> {
        for name in self.instance.processes() {
            if let Some(pid) = self
                .processes
                .pid(&name)
                .filter(|_| self.processes.running(&name))
            {
                bail!(
                    "the '{}' lattice is running ({name}, pid {pid}): stop it first (make down)",
                    self.instance.name
                );
            }
        }
        Ok(())
    }

    /// Starts one killed process again, as it was started.
    pub fn revive(&self, name: &str) -> anyhow::Result<()> {
        let instance = &self.instance;
        if let Some(index) = instance.nats_names().iter().position(|n| n == name) {
            return self.start_nats_server(u16::try_from(index)?);
        }
        if let Some(index) = instance.wadm_names().iter().position(|n| n == name) {
            return self.start_wadm(index);
        }
        if let Some(index) = instance.host_names().iter().position(|n| n == name) {
            return self.start_host(u16::try_from(index)?);
        }
        bail!(
            "'{}' has no process '{name}' ({})",
            instance.name,
            instance.processes().join(" ")
        )
    }
}

/// Whether something listens on the loopback's `port`.
pub fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        std::time::Duration::from_millis(500),
    )
    .is_ok()
}

/// A JSON document served over plain HTTP, or nothing.
pub fn get_json(url: &str) -> Option<Value> {
    ureq::get(url).call().ok()?.body_mut().read_json().ok()
}

fn non_empty(path: &Path) -> bool {
    path.metadata().is_ok_and(|meta| meta.len() > 0)
}

fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    Ok(())
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(text.as_bytes())?;
    Ok(())
}
