//! The native build (`orders-native`): billing, order and notify started as three processes on
//! the benchmark's NATS server, each on its own port, and the paths each serves, from the
//! services' own endpoint lists.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::processes::Process;

/// The services, each with the endpoints it serves.
const SERVICES: [(&str, &[&str]); 3] = [
    ("billing", billing_core::service::ENDPOINTS),
    ("order", order_core::service::ENDPOINTS),
    ("notify", notify_core::service::ENDPOINTS),
];

/// The running services; dropping this stops them.
pub struct NativeServices {
    children: Vec<(String, Child)>,
    /// Each path with the base URL of the service that serves it.
    pub routes: Vec<(String, String)>,
}

impl NativeServices {
    /// Starts the services with the instance's data-plane identity and key configuration, the
    /// first on `first_port`, and waits until each answers.
    pub async fn start(
        binary: &Path,
        state_dir: &Path,
        nats_urls: &str,
        first_port: u16,
    ) -> Result<Self> {
        let logs = state_dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let mut services = Self {
            children: Vec::new(),
            routes: Vec::new(),
        };
        for (port, (name, endpoints)) in (first_port..).zip(SERVICES) {
            let log = std::fs::File::create(logs.join(format!("native-{name}.log")))?;
            let child = Command::new(binary)
                .arg(name)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--nats", nats_urls])
                .arg("--creds")
                .arg(state_dir.join("nats/rpc.creds"))
                .arg("--secrets")
                .arg(state_dir.join("secrets"))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .with_context(|| format!("cannot start {}", binary.display()))?;
            services.children.push((name.to_string(), child));
            let base = format!("http://127.0.0.1:{port}");
            services.routes.extend(
                endpoints
                    .iter()
                    .map(|endpoint| (path_of(endpoint).to_string(), base.clone())),
            );
            if name == "order" {
                // The floor is measured on the process that takes the orders.
                services.routes.push(("/Hello".into(), base.clone()));
            }
            wait_until_answering(&base, name).await?;
        }
        Ok(services)
    }

    pub fn processes(&self) -> Vec<Process> {
        self.children
            .iter()
            .map(|(name, child)| Process::new(format!("native {name}"), child.id()))
            .collect()
    }
}

impl Drop for NativeServices {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `/List` of an endpoint as a service lists it (`GET /List?user=&limit=&after=`).
fn path_of(endpoint: &str) -> &str {
    let path = endpoint.rsplit(' ').next().unwrap_or(endpoint);
    path.split('?').next().unwrap_or(path)
}

async fn wait_until_answering(base: &str, name: &str) -> Result<()> {
    let http = orders_e2e::http_client(Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(answer) = http.get(format!("{base}/")).send().await {
            if answer.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("native {name} did not answer on {base} within 30 s (see its log)");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_endpoint_is_routed_by_its_path_alone() {
        assert_eq!(super::path_of("GET /List?user=&limit=&after="), "/List");
        assert_eq!(super::path_of("POST /Order"), "/Order");
    }
}
