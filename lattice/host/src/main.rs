//! `orders-host`: a wasmCloud 1.9 host (the `wasmcloud-host` 0.27 library) behind a small launcher.
//!
//! The official `wasmcloud` binary is neither in the cargo registry nor downloadable on our machines,
//! so we build the same host from its library. Settings use the official binary's `WASMCLOUD_*`
//! environment variables and flags, so `wash up --host-path`, the Kubernetes operator's contract and
//! people's habits keep working.

mod embedded;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tracing_subscriber::util::SubscriberInitExt as _;
use wasmcloud_host::url::Url;
use wasmcloud_host::wasmbus::{Features, Host, HostConfig};

/// A connection's user JWT and key pair, as the host library takes them.
type Credentials = (Option<String>, Option<Arc<nkeys::KeyPair>>);

/// wasmCloud 1.9 host for the orders lattice.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// NATS server host for both control and RPC traffic.
    #[arg(long, env = "WASMCLOUD_NATS_HOST", default_value = "127.0.0.1")]
    nats_host: String,
    /// NATS server port for both control and RPC traffic.
    #[arg(long, env = "WASMCLOUD_NATS_PORT", default_value_t = 4222)]
    nats_port: u16,
    /// Overrides the NATS host for control-interface traffic.
    #[arg(long, env = "WASMCLOUD_CTL_HOST")]
    ctl_host: Option<String>,
    /// Overrides the NATS port for control-interface traffic.
    #[arg(long, env = "WASMCLOUD_CTL_PORT")]
    ctl_port: Option<u16>,
    /// Overrides the NATS host for RPC traffic between components and providers.
    #[arg(long, env = "WASMCLOUD_RPC_HOST")]
    rpc_host: Option<String>,
    /// Overrides the NATS port for RPC traffic between components and providers.
    #[arg(long, env = "WASMCLOUD_RPC_PORT")]
    rpc_port: Option<u16>,
    /// A NATS creds file (JWT and seed) for both connections.
    #[arg(long, env = "WASMCLOUD_NATS_CREDS")]
    nats_creds: Option<PathBuf>,
    /// A NATS creds file for the control-interface connection.
    #[arg(long, env = "WASMCLOUD_CTL_CREDS")]
    ctl_creds: Option<PathBuf>,
    /// Require TLS on the control-interface connection.
    #[arg(long, env = "WASMCLOUD_CTL_TLS")]
    ctl_tls: bool,
    /// A NATS creds file for the RPC connection (and so for every provider).
    #[arg(long, env = "WASMCLOUD_RPC_CREDS")]
    rpc_creds: Option<PathBuf>,
    /// Require TLS on the RPC connection.
    #[arg(long, env = "WASMCLOUD_RPC_TLS")]
    rpc_tls: bool,
    /// Extra certificate authorities (PEM files, comma-separated) for OCI registries. NATS TLS
    /// trusts the system's authorities and `SSL_CERT_FILE`, as upstream.
    #[arg(
        long = "tls-ca-path",
        env = "WASMCLOUD_TLS_CA_PATH",
        value_delimiter = ','
    )]
    tls_ca_paths: Vec<PathBuf>,
    /// Timeout of one RPC call, in milliseconds.
    #[arg(long, env = "WASMCLOUD_RPC_TIMEOUT_MS", default_value_t = 4000)]
    rpc_timeout_ms: u64,
    /// The lattice this host joins.
    #[arg(
        short = 'x',
        long,
        env = "WASMCLOUD_LATTICE",
        default_value = "default"
    )]
    lattice: String,
    /// JetStream domain of the hub (Kubernetes hosts run behind a leaf node).
    #[arg(long, env = "WASMCLOUD_JS_DOMAIN")]
    js_domain: Option<String>,
    /// Seed of the host's server key pair; a fresh key is generated when absent.
    #[arg(long, env = "WASMCLOUD_HOST_SEED", hide_env_values = true)]
    host_seed: Option<String>,
    /// Allow `file://` component and provider references (local development).
    #[arg(long, env = "WASMCLOUD_ALLOW_FILE_LOAD")]
    allow_file_load: bool,
    /// JSON logs instead of human-readable lines.
    #[arg(long, env = "WASMCLOUD_STRUCTURED_LOGGING_ENABLED")]
    enable_structured_logging: bool,
    /// Log level (`error`, `warn`, `info`, `debug`, `trace`); `RUST_LOG` adds per-crate directives.
    #[arg(long, env = "WASMCLOUD_LOG_LEVEL", default_value = "info")]
    log_level: tracing::Level,
    #[command(flatten)]
    observability: Observability,
    /// Comma-separated experimental features (e.g. `builtin-http-server,builtin-messaging-nats`).
    #[arg(long, env = "WASMCLOUD_EXPERIMENTAL_FEATURES", value_delimiter = ',')]
    experimental_features: Vec<String>,
    /// Address of the admin endpoint serving `/livez` and `/readyz`.
    #[arg(long, env = "WASMCLOUD_HTTP_ADMIN")]
    http_admin: Option<SocketAddr>,
    /// Host labels as `key=value`; `WASMCLOUD_LABEL_<key>=<value>` variables are added too.
    #[arg(short = 'l', long = "label")]
    labels: Vec<String>,
    /// Delay between asking a provider to stop and killing it, in milliseconds.
    #[arg(long, env = "WASMCLOUD_PROV_SHUTDOWN_DELAY_MS", default_value_t = 300)]
    provider_shutdown_delay_ms: u64,
    /// Longest a component invocation may run before the host abandons it, in milliseconds.
    /// Each component runs at most its `instances` invocations at once, and a call its caller
    /// abandoned mid-way can leave the host's side waiting; until this ends it, it holds one of
    /// those places (docs/troubleshooting.md). Upstream's default is 10 minutes; ours is 30 s,
    /// far above any of our handlers and the HTTP clients' patience.
    #[arg(
        long,
        env = "WASMCLOUD_MAX_EXECUTION_TIME_MS",
        default_value_t = 30_000
    )]
    max_execution_time_ms: u64,
    /// Allow OCI references tagged `latest`.
    #[arg(long, env = "WASMCLOUD_OCI_ALLOW_LATEST")]
    allow_latest: bool,
    /// Comma-separated OCI registries reachable over plain HTTP.
    #[arg(long, env = "WASMCLOUD_OCI_ALLOWED_INSECURE", value_delimiter = ',')]
    allowed_insecure: Vec<String>,
    /// The one OCI registry the user and password below are for (the Kubernetes operator sets
    /// all three from its registry credentials Secret).
    #[arg(long, env = "WASMCLOUD_OCI_REGISTRY", requires_all = ["oci_user", "oci_password"])]
    oci_registry: Option<String>,
    /// User for `oci_registry`.
    #[arg(long, env = "WASMCLOUD_OCI_REGISTRY_USER", requires = "oci_registry")]
    oci_user: Option<String>,
    /// Password for `oci_registry`.
    #[arg(
        long,
        env = "WASMCLOUD_OCI_REGISTRY_PASSWORD",
        requires = "oci_registry",
        hide_env_values = true
    )]
    oci_password: Option<String>,
}

/// OpenTelemetry export (OTLP), with the official host's flags and variables. The host hands the
/// same settings to every provider it starts, so they export to the same place.
#[derive(Debug, clap::Args)]
struct Observability {
    /// Export traces, metrics and logs (each can be switched off below).
    #[arg(long, env = "WASMCLOUD_OBSERVABILITY_ENABLED")]
    enable_observability: bool,
    /// Export traces (on with `--enable-observability` unless `false`).
    #[arg(long, env = "WASMCLOUD_TRACING_ENABLED")]
    enable_traces: Option<bool>,
    /// Export metrics.
    #[arg(long, env = "WASMCLOUD_METRICS_ENABLED")]
    enable_metrics: Option<bool>,
    /// Export logs.
    #[arg(long, env = "WASMCLOUD_LOGS_ENABLED")]
    enable_logs: Option<bool>,
    /// The OTLP endpoint of every signal (default `http://127.0.0.1:4318`).
    #[arg(
        long = "override-observability-endpoint",
        env = "OTEL_EXPORTER_OTLP_ENDPOINT"
    )]
    endpoint: Option<String>,
    /// The OTLP endpoint of traces.
    #[arg(
        long = "override-traces-endpoint",
        env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )]
    traces_endpoint: Option<String>,
    /// The OTLP endpoint of metrics.
    #[arg(
        long = "override-metrics-endpoint",
        env = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
    )]
    metrics_endpoint: Option<String>,
    /// The OTLP endpoint of logs.
    #[arg(
        long = "override-logs-endpoint",
        env = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"
    )]
    logs_endpoint: Option<String>,
    /// `http` (OTLP/HTTP with protobuf) or `grpc`.
    #[arg(
        long = "observability-protocol",
        env = "WASMCLOUD_OBSERVABILITY_PROTOCOL",
        default_value = "http"
    )]
    protocol: wasmcloud_core::OtelProtocol,
    /// The most detailed spans exported. Upstream's default is `debug` (a dozen spans per call);
    /// `info` keeps one span per invocation and per call a component makes.
    #[arg(long, env = "WASMCLOUD_TRACE_LEVEL", default_value = "info")]
    trace_level: tracing::Level,
    /// A sampler by its OpenTelemetry name (e.g. `parentbased_traceidratio`).
    #[arg(long, env = "OTEL_TRACES_SAMPLER")]
    traces_sampler: Option<String>,
    /// The sampler's argument (e.g. `0.1`).
    #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG")]
    traces_sampler_arg: Option<String>,
}

impl Observability {
    fn otel_config(&self) -> wasmcloud_core::OtelConfig {
        wasmcloud_core::OtelConfig {
            enable_observability: self.enable_observability,
            enable_traces: self.enable_traces,
            enable_metrics: self.enable_metrics,
            enable_logs: self.enable_logs,
            observability_endpoint: self.endpoint.clone(),
            traces_endpoint: self.traces_endpoint.clone(),
            metrics_endpoint: self.metrics_endpoint.clone(),
            logs_endpoint: self.logs_endpoint.clone(),
            protocol: self.protocol,
            trace_level: self.trace_level.into(),
            traces_sampler: self.traces_sampler.clone(),
            traces_sampler_arg: self.traces_sampler_arg.clone(),
            ..Default::default()
        }
    }
}

impl Args {
    fn nats_url(&self, host: &Option<String>, port: Option<u16>) -> anyhow::Result<Url> {
        let host = host.as_deref().unwrap_or(&self.nats_host);
        let port = port.unwrap_or(self.nats_port);
        Url::parse(&format!("nats://{host}:{port}")).context("invalid NATS address")
    }

    fn labels(&self) -> anyhow::Result<HashMap<String, String>> {
        let from_flags = self.labels.iter().map(|label| {
            label
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("label `{label}` is not key=value"))
        });
        let from_env = std::env::vars()
            .filter_map(|(k, v)| Some((k.strip_prefix("WASMCLOUD_LABEL_")?.to_lowercase(), v)))
            .map(Ok);
        from_env.chain(from_flags).collect()
    }

    /// The credentials of one connection: its own creds file, else the shared one, else none.
    fn credentials(&self, creds: &Option<PathBuf>) -> anyhow::Result<Credentials> {
        let Some(path) = creds.as_ref().or(self.nats_creds.as_ref()) else {
            return Ok((None, None));
        };
        let credentials = orders_nats_creds::Credentials::read(path)?;
        let key = credentials.key_pair()?;
        Ok((Some(credentials.jwt), Some(Arc::new(key))))
    }

    fn into_host_config(self) -> anyhow::Result<HostConfig> {
        let host_key = self
            .host_seed
            .as_deref()
            .map(nkeys::KeyPair::from_seed)
            .transpose()
            .context("WASMCLOUD_HOST_SEED is not a valid seed")?
            .map(Arc::new);
        let (ctl_jwt, ctl_key) = self.credentials(&self.ctl_creds)?;
        let (rpc_jwt, rpc_key) = self.credentials(&self.rpc_creds)?;
        let oci_opts = wasmcloud_host::OciConfig {
            additional_ca_paths: self.tls_ca_paths.clone(),
            allow_latest: self.allow_latest,
            allowed_insecure: self.allowed_insecure.clone(),
            oci_registry: self.oci_registry.clone(),
            oci_user: self.oci_user.clone(),
            oci_password: self.oci_password.clone(),
        };
        Ok(HostConfig {
            ctl_nats_url: self.nats_url(&self.ctl_host, self.ctl_port)?,
            ctl_jwt,
            ctl_key,
            ctl_tls: self.ctl_tls,
            rpc_nats_url: self.nats_url(&self.rpc_host, self.rpc_port)?,
            rpc_jwt,
            rpc_key,
            rpc_tls: self.rpc_tls,
            rpc_timeout: Duration::from_millis(self.rpc_timeout_ms),
            lattice: self.lattice.as_str().into(),
            js_domain: self.js_domain.clone(),
            labels: self.labels()?,
            host_key,
            provider_shutdown_delay: Some(Duration::from_millis(self.provider_shutdown_delay_ms)),
            oci_opts,
            allow_file_load: self.allow_file_load,
            enable_structured_logging: self.enable_structured_logging,
            log_level: self.log_level.into(),
            otel_config: self.observability.otel_config(),
            experimental_features: self
                .experimental_features
                .iter()
                .map(|f| Features::from(f.as_str()))
                .sum(),
            http_admin: self.http_admin,
            max_execution_time: Duration::from_millis(self.max_execution_time_ms),
            embedded_providers: embedded::providers(),
            ..HostConfig::default()
        })
    }
}

/// How many times a start that found JetStream electing a leader is tried (a second apart).
const START_ATTEMPTS: u32 = 30;
/// Which try this process is (1 when unset): carried across `exec` by the environment.
const START_ATTEMPT_VAR: &str = "ORDERS_HOST_START_ATTEMPT";
/// Start failures that pass within seconds on a NATS cluster: a bucket answers only once its
/// replicas have a leader, so a host started while one is being elected (a server just lost, or
/// back) can neither create its buckets ("stream name already in use with a different
/// configuration") nor read them (the request times out).
const TRANSIENT_START_FAILURES: [&str; 2] = [
    "failed to create bucket",
    "failed to read keys of lattice data bucket",
];

/// Whether a failed start is worth another try, and which try comes next.
fn next_start_attempt(error: &str, attempt: u32) -> Option<u32> {
    let transient = TRANSIENT_START_FAILURES.iter().any(|f| error.contains(f));
    (transient && attempt < START_ATTEMPTS).then_some(attempt + 1)
}

/// Replaces this process with a fresh start of the same binary and arguments, as a supervisor
/// would restart it: `Host::new` fails some steps after it spawned the host's tasks, so a second
/// try in the same process would run beside the first one's leftovers. The pid stays the same,
/// so whatever watches it (orders-ops, a container runtime) sees one host.
fn start_again(attempt: u32) -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(START_ATTEMPT_VAR, attempt.to_string())
        .exec()
        .into()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Logs to stderr, plus the OpenTelemetry export when it is on (wasmCloud's own set-up, so the
    // host's spans, metrics and logs are what upstream's binary exports).
    let (dispatch, _flush_on_exit) = wasmcloud_tracing::configure_observability(
        "wasmcloud-host",
        &args.observability.otel_config(),
        args.enable_structured_logging,
        None::<&std::path::Path>,
        Some(&args.log_level.into()),
        Some(&args.observability.trace_level.into()),
    )
    .context("failed to set up logging and OpenTelemetry")?;
    dispatch.try_init().context("logging set up twice")?;
    let config = args.into_host_config()?;
    let attempt = std::env::var(START_ATTEMPT_VAR)
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let (host, shutdown) = match Host::new(config).await {
        Ok(started) => started,
        Err(e) => {
            let error = format!("{e:#}");
            let Some(next) = next_start_attempt(&error, attempt) else {
                return Err(e).context("failed to start the wasmCloud host");
            };
            tracing::warn!(
                attempt,
                "the host's buckets are not available yet, starting again in 1 s: {error}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
            return Err(start_again(next)).context("failed to start the host again");
        }
    };
    tracing::info!("host started");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted, stopping"),
        _ = terminate.recv() => tracing::info!("terminated, stopping"),
        stopped = host.stopped() => { stopped.context("host failed")?; }
    }
    shutdown.await.context("failed to shut the host down")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A creds file for a new user whose JWT reads `h.<name>.s`; its path and the user's key.
    fn creds_file(name: &str) -> (String, String) {
        let user = nkeys::KeyPair::new_user();
        let creds =
            orders_nats_creds::Credentials::new(format!("h.{name}.s"), user.seed().unwrap());
        let path =
            std::env::temp_dir().join(format!("orders-host-{name}-{}.creds", std::process::id()));
        std::fs::write(&path, creds.to_creds_file()).unwrap();
        (path.display().to_string(), user.public_key())
    }

    fn config(args: &[&str]) -> HostConfig {
        Args::try_parse_from([&["orders-host"], args].concat())
            .unwrap()
            .into_host_config()
            .unwrap()
    }

    /// RUSTSEC-2026-0086, -0089, -0094 and -0095 are bugs of Winch, wasmtime's baseline compiler:
    /// ours is built without it (Cranelift alone), so no configuration can select it.
    #[test]
    fn the_host_compiles_components_with_cranelift_and_has_no_winch() {
        let engine = |strategy| {
            let mut config = wasmtime::Config::new();
            config.strategy(strategy);
            wasmtime::Engine::new(&config)
        };
        assert!(engine(wasmtime::Strategy::Cranelift).is_ok());
        let winch = engine(wasmtime::Strategy::Winch).expect_err("no Winch compiler");
        assert!(winch.to_string().contains("winch"), "{winch}");
    }

    /// Wasmtime's pooling allocator, which the host's runtime uses, gives a memory slot to one
    /// instance after another (RUSTSEC-2026-0088 was data leaking between them): whatever an
    /// instance wrote, the next one in the slot finds its memory as its module declares it. One
    /// slot, so every instance reuses it; each instance dirties its data image, the zeroes
    /// around it, and every other page of 4 MiB it grows, past the bytes the allocator resets
    /// with `memset` (the rest it hands back to the kernel).
    #[test]
    fn every_instance_in_a_reused_slot_finds_its_memory_as_declared() {
        const WASM_PAGE: usize = 64 * 1024;
        const HOST_PAGE: usize = 4096;
        const IMAGE: std::ops::Range<usize> = WASM_PAGE..WASM_PAGE + 16 * 1024;
        const SEED: u8 = 0x5A;
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_memories(1)
            .total_core_instances(1)
            .max_memory_size(8 << 20)
            .linear_memory_keep_resident(64 << 10);
        let mut config = wasmtime::Config::new();
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        let engine = wasmtime::Engine::new(&config).unwrap();
        let seeded = format!("\\{SEED:02x}").repeat(IMAGE.len());
        let wat = format!(
            r#"(module (memory (export "memory") 2 128) (data (i32.const {}) "{seeded}"))"#,
            IMAGE.start
        );
        let module = wasmtime::Module::new(&engine, wat).unwrap();

        for instance_number in 0..4 {
            let mut store = wasmtime::Store::new(&engine, ());
            let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
            let memory = instance.get_memory(&mut store, "memory").unwrap();
            assert_eq!(memory.grow(&mut store, 64).unwrap(), 2, "it had 2 pages");
            let bytes = memory.data_mut(&mut store);
            let unexpected = bytes
                .iter()
                .enumerate()
                .filter(|(at, byte)| **byte != if IMAGE.contains(at) { SEED } else { 0 })
                .count();
            assert_eq!(
                unexpected, 0,
                "instance {instance_number} found others' bytes"
            );

            bytes[..2 * WASM_PAGE].fill(0xA5);
            for page in bytes[2 * WASM_PAGE..].chunks_mut(HOST_PAGE).step_by(2) {
                page.fill(0xA5);
            }
        }
    }

    #[test]
    fn one_creds_file_authenticates_both_connections_as_upstream() {
        let (path, user) = creds_file("both");
        let config = config(&["--nats-creds", &path]);
        assert_eq!(config.ctl_jwt.as_deref(), Some("h.both.s"));
        assert_eq!(config.rpc_jwt.as_deref(), Some("h.both.s"));
        assert_eq!(config.ctl_key.unwrap().public_key(), user);
    }

    #[test]
    fn each_connection_may_have_an_identity_of_its_own() {
        let (shared, _) = creds_file("shared");
        let (rpc, rpc_user) = creds_file("rpc");
        let config = config(&["--nats-creds", &shared, "--rpc-creds", &rpc]);
        assert_eq!(config.ctl_jwt.as_deref(), Some("h.shared.s"));
        assert_eq!(config.rpc_jwt.as_deref(), Some("h.rpc.s"));
        assert_eq!(config.rpc_key.unwrap().public_key(), rpc_user);
    }

    #[test]
    fn without_credentials_the_host_connects_anonymously() {
        let config = config(&[]);
        assert!(config.ctl_jwt.is_none() && config.rpc_key.is_none());
    }

    #[test]
    fn the_otlp_endpoint_reaches_the_host_config_which_hands_it_to_every_provider() {
        let config = config(&[
            "--enable-observability",
            "--enable-metrics=false",
            "--override-observability-endpoint",
            "http://127.0.0.1:14318",
        ]);
        assert!(config.otel_config.traces_enabled());
        assert!(!config.otel_config.metrics_enabled());
        assert_eq!(
            config.otel_config.traces_endpoint(),
            "http://127.0.0.1:14318/v1/traces"
        );
    }

    /// As wasmcloud-operator 0.5 hands a host its registry credentials Secret.
    #[test]
    fn the_operators_registry_credentials_reach_the_oci_client() {
        let config = config(&[
            "--oci-registry",
            "registry.example:5000",
            "--oci-user",
            "orders",
            "--oci-password",
            "secret",
        ]);
        assert_eq!(
            config.oci_opts.oci_registry.as_deref(),
            Some("registry.example:5000")
        );
        assert_eq!(config.oci_opts.oci_user.as_deref(), Some("orders"));
        assert_eq!(config.oci_opts.oci_password.as_deref(), Some("secret"));
    }

    #[test]
    fn a_registry_user_without_its_registry_and_password_is_refused() {
        assert!(Args::try_parse_from(["orders-host", "--oci-user", "orders"]).is_err());
        assert!(
            Args::try_parse_from(["orders-host", "--oci-registry", "registry.example:5000"])
                .is_err()
        );
    }

    #[test]
    fn without_observability_nothing_is_exported() {
        assert!(!config(&[]).otel_config.traces_enabled());
    }

    #[test]
    fn a_start_that_found_the_cluster_electing_is_tried_again_up_to_a_limit() {
        let timed_out = "failed to read keys of lattice data bucket: timed out";
        assert_eq!(next_start_attempt(timed_out, 1), Some(2));
        assert_eq!(
            next_start_attempt(
                "failed to create bucket 'LATTICEDATA_x': stream name already in use",
                7
            ),
            Some(8)
        );
        assert_eq!(next_start_attempt(timed_out, START_ATTEMPTS), None);
    }

    #[test]
    fn a_start_that_failed_for_another_reason_is_not_tried_again() {
        assert_eq!(
            next_start_attempt("failed to connect to NATS: authorization violation", 1),
            None
        );
    }
}
