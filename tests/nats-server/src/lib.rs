//! A throwaway `nats-server` with JetStream for tests: the real server (from `NATS_SERVER_BIN`,
//! the project's venv, or PATH) on a free loopback port, with its own store, stopped and wiped
//! when dropped.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
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
    pub async fn start_with<S: AsRef<OsStr>>(args: &[S]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = std::env::temp_dir().join(format!("nats-test-{port}-{}", std::process::id()));
        let child = Command::new(binary())
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (make test installs it; or set NATS_SERVER_BIN)");
        // Owned by the guard from here on, so the server is stopped and reaped on every path.
        let server = Self {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            store,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nats-server did not listen on {port}");
    }
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
