//! Deploying the application on a lattice: only when the manifest or the artifacts changed,
//! then waiting until every link is served; and the banner of `make run`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use sha2::{Digest as _, Sha256};

use super::Lattice;
use crate::process::{command, output, run, say, succeeds, wait_for, within};

/// The durable consumers the messaging provider must be pulling for before the application
/// counts as live.
const DURABLE_CONSUMERS: [&str; 4] = ["billing", "billing-refunds", "notify", "notify-deadletters"];

impl Lattice {
    /// Deploys the manifest rendered for this instance, unless that exact manifest and those
    /// exact artifacts are already deployed; a changed build replaces the running application.
    pub(super) fn deploy(&self) -> anyhow::Result<()> {
        let manifest = self.state().join("wadm.yaml");
        let root = &self.layout.root;
        let mut render = command(self.layout.bin("orders-manifest"), ["render"]);
        render
            .args(["--nats-port", &self.instance.nats_port.to_string()])
            .args(["--http-port", &self.instance.http_port.to_string()])
            .args(["--nats-servers", &self.instance.nats_servers.to_string()])
            .args(["--replicas", &self.instance.replicas.to_string()])
            .args(["--hosts", &self.instance.hosts.to_string()]);
        // The benchmark's lattice also serves the hello-world floor behind the same HTTP server,
        // and the tests' lattice the isolation probe (tests/probe).
        if self.instance.is_bench() {
            render
                .arg("--overlay")
                .arg(root.join("bench/hello.wadm.yaml"));
        }
        if self.instance.name == "test" {
            render
                .arg("--overlay")
                .arg(root.join("tests/probe/probe.wadm.yaml"));
        }
        // ORDERS_PROVIDERS=processes: the HTTP server as a provider process of its own.
        match std::env::var("ORDERS_PROVIDERS").as_deref() {
            Err(_) | Ok("in-host") => {}
            Ok("processes") => {
                render.arg("--providers-as-processes");
            }
            Ok(other) => bail!("ORDERS_PROVIDERS={other}: in-host or processes"),
        }
        render.arg(root.join("wadm.yaml"));
        std::fs::write(&manifest, output(&mut render)?)?;
        let fingerprint = self.fingerprint(&manifest)?;
        let deployed = self.state().join("deployed");
        // A lattice started again redeploys what wadm kept: give it a moment before replacing
        // anything.
        if std::fs::read_to_string(&deployed).is_ok_and(|kept| kept.trim() == fingerprint)
            && within(30, || self.app_live().is_ok())
        {
            say("application unchanged and deployed");
            return Ok(());
        }
        if succeeds(&mut self.wash(["app", "get", "orders"])) {
            // wadm is still placing what it kept on hosts that just started (a restored lattice
            // has no record of what was deployed): let it finish, so that its undeploy knows
            // every part it placed.
            within(30, || self.app_deployed());
            say("replacing the deployed application");
            self.remove_app(&manifest)?;
        }
        for attempt in 1..=3 {
            say(format!("deploying {}", manifest.display()));
            run(&mut self.wash(["app".as_ref(), "deploy".as_ref(), manifest.as_os_str()]))?;
            if let Err(timeout) =
                wait_for("the application to be Deployed", 180, self.logs(), || {
                    self.app_deployed()
                })
            {
                eprintln!("{timeout}");
                let _ = run(&mut self.wash(["app", "status", "orders"]));
                if attempt == 3 {
                    bail!("the application never became Deployed");
                }
                say(format!("deploying again (attempt {attempt})"));
                self.remove_app(&manifest)?;
                continue;
            }
            // wadm reports Deployed once the lattice holds the links, not once the providers took
            // them; a provider that missed one takes it from the lattice within seconds
            // (providers/support, links.rs). Calls through every provider link prove them.
            if within(40, || self.links_live().is_ok()) {
                std::fs::write(&deployed, format!("{fingerprint}\n"))?;
                say("application deployed");
                return Ok(());
            }
            let why = self.links_live().err().unwrap_or_default();
            say(format!(
                "a link is still not served (attempt {attempt}: {why}): deploying again"
            ));
            self.remove_app(&manifest)?;
        }
        bail!(
            "the providers never served every link; see {}",
            self.logs().join("host.log").display()
        )
    }

    /// What is deployed: the rendered manifest, the components and the provider archives.
    fn fingerprint(&self, manifest: &Path) -> anyhow::Result<String> {
        let build = self.layout.root.join("build");
        let mut hash = Sha256::new();
        hash.update(std::fs::read(manifest)?);
        for (folder, extension) in [("components", ".wasm"), ("providers", ".par.gz")] {
            let mut files: Vec<PathBuf> = std::fs::read_dir(build.join(folder))
                .with_context(|| format!("{}: run make build", build.join(folder).display()))?
                .filter_map(|entry| Some(entry.ok()?.path()))
                .filter(|path| path.to_string_lossy().ends_with(extension))
                .collect();
            files.sort();
            for file in files {
                hash.update(std::fs::read(file)?);
            }
        }
        Ok(hex::encode(&hash.finalize()[..8]))
    }

    fn app_status(&self) -> Option<String> {
        let status = self.wash_json(&["app", "status", "orders"])?;
        Some(status["status"]["status"]["type"].as_str()?.to_owned())
    }

    fn app_deployed(&self) -> bool {
        self.app_status().as_deref() == Some("deployed")
    }

    fn app_live(&self) -> Result<(), String> {
        if !self.app_deployed() {
            return Err("not deployed".into());
        }
        self.links_live()
    }

    /// Every link a provider serves, exercised: each path through the HTTP server reaches its
    /// component and each component its buckets and streams (orders-admin ready says how), and
    /// the messaging provider pulls for every durable consumer. The error is the last line the
    /// failing check printed.
    pub fn links_live(&self) -> Result<(), String> {
        let secrets = self.secrets();
        let mut ready = command(self.layout.bin("orders-admin"), ["ready", "--listeners"]);
        ready
            .arg(self.instance.http_urls())
            .arg("--admin-token-file")
            .arg(secrets.join("admin-token"))
            .arg("--api-key-secret-file")
            .arg(secrets.join("api-key-secret"));
        if self.instance.is_bench() {
            ready.args(["--also", "GET /Hello 200"]);
        }
        if self.instance.name == "test" {
            ready.args(["--also", "GET /Probe 200"]);
        }
        let mut pulling = command(
            self.layout.bin("orders-nats-monitor"),
            [self.instance.monitor_urls().as_str(), "pulling"],
        );
        pulling.args(DURABLE_CONSUMERS);
        for check in [&mut ready, &mut pulling] {
            let result = check
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| e.to_string())?;
            if !result.status.success() {
                let printed = String::from_utf8_lossy(&result.stderr).into_owned()
                    + &String::from_utf8_lossy(&result.stdout);
                return Err(printed.lines().last().unwrap_or("failed").to_owned());
            }
        }
        Ok(())
    }

    /// Waits until every link is served (`ready`).
    pub fn ready(&self) -> anyhow::Result<()> {
        wait_for("the providers to serve every link", 60, self.logs(), || {
            self.links_live().is_ok()
        })
    }

    /// Undeploys and deletes the application, and waits until its providers have stopped and
    /// wadm has removed its named configurations. wadm removes those in the background: a deploy
    /// racing the removal loses configurations it has just put, and its providers then wait for
    /// them forever ("Config orders-messaging_jetstream does not exist").
    fn remove_app(&self, manifest: &Path) -> anyhow::Result<()> {
        // Asked until wadm says so: a wadm that has just started (a restored lattice) may not
        // take the request yet, and would go on placing the application, starting again at once
        // every provider stopped below.
        let undeployed = within(60, || {
            succeeds(&mut self.wash(["app", "undeploy", "orders"]));
            self.app_status().as_deref() == Some("undeployed")
        });
        if !undeployed {
            eprintln!("timed out after 60s waiting for wadm to report the application undeployed");
        }
        if !within(60, || self.no_providers()) {
            self.stop_leftover_providers()?;
        }
        succeeds(&mut self.wash(["app", "delete", "orders"]));
        let configs = config_names(&std::fs::read_to_string(manifest)?);
        let gone = within(30, || {
            configs.iter().all(|name| {
                let named = format!("orders-{}", name.replace('-', "_"));
                !succeeds(&mut self.wash(["config", "get", &named]))
            })
        });
        if !gone {
            eprintln!(
                "timed out after 30s waiting for wadm to remove the application's configurations"
            );
        }
        Ok(())
    }

    /// A lattice started from kept (or restored) state has wadm placing the application again
    /// while it is being replaced: a provider whose start was under way when the application was
    /// undeployed keeps running with nobody to stop it. Those are stopped by hand, until none
    /// runs: wadm may still start one of the replaced application after a first round of stops.
    fn stop_leftover_providers(&self) -> anyhow::Result<()> {
        say("stopping providers started while the application was undeployed");
        wait_for("the old providers to stop", 60, self.logs(), || {
            let Some(providers) = self.providers() else {
                return false;
            };
            for (host, provider) in &providers {
                succeeds(&mut self.wash(["stop", "provider", provider, "--host-id", host]));
            }
            if !providers.is_empty() {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            providers.is_empty()
        })
    }

    /// Every provider the hosts run, as (host id, provider id); `None` when no host answered.
    fn providers(&self) -> Option<Vec<(String, String)>> {
        let inventory = self.wash_json(&["get", "inventory"])?;
        let empty = Vec::new();
        let providers = inventory["inventories"]
            .as_array()?
            .iter()
            .flat_map(|host| {
                let host_id = host["host_id"].as_str().unwrap_or_default().to_owned();
                host["providers"]
                    .as_array()
                    .unwrap_or(&empty)
                    .iter()
                    .filter_map(move |provider| {
                        Some((host_id.clone(), provider["id"].as_str()?.to_owned()))
                    })
            })
            .collect();
        Some(providers)
    }

    fn no_providers(&self) -> bool {
        self.providers()
            .is_some_and(|providers| providers.is_empty())
    }

    pub(super) fn print_banner(&self) {
        let instance = &self.instance;
        let http = instance.http_port;
        let secrets = self.secrets();
        let auth = self.auth();
        let ctl = format!("--ctl-host 127.0.0.1 --ctl-port {}", instance.nats_port);
        let wash = self.layout.wash();
        let wash = wash.display();
        let make_lattice = if instance.name == "run" {
            String::new()
        } else {
            format!(" LATTICE={}", instance.name)
        };
        let every_host = if instance.hosts > 1 {
            format!(
                "\n    every host    {}   (each host's own HTTP listener: any one serves the whole API)",
                instance.http_urls()
            )
        } else {
            String::new()
        };
        let traces = if self.processes.running("telemetry") {
            format!(
                "curl -s 'http://127.0.0.1:{}/traces?order_id=<id>&format=tree'   (orders-telemetry)",
                instance.telemetry_port()
            )
        } else if let (true, Some(endpoint)) = (self.traces, self.otlp_endpoint()) {
            format!("exported to {endpoint}")
        } else {
            "off (ORDERS_TRACES=off)".into()
        };
        println!(
            r#"
  orders is up ({name})
    console       http://127.0.0.1:{http}/   (open it in a browser)
    base URL      http://127.0.0.1:{http}   (POST /CreateUser /DepositCash /Order /Refund /RotateKey, GET /Balance?user= /Statement?user= /List /OrderStatus?order_id=)
    contract      http://127.0.0.1:{http}/openapi.json   (OpenAPI 3.1){every_host}
    quick start   README.md, Quick start: a fresh user, a deposit, orders paid and refused
    API keys      POST /CreateUser answers the user's key once; send it as  Authorization: Bearer <key>
                    curl -s -X POST 127.0.0.1:{http}/CreateUser -d "{{\"user\":\"Pavel-$RANDOM\"}}"
    admin token   in {secrets}/admin-token (GET /List of everyone, any user's balance, key recovery)
                    curl -s 127.0.0.1:{http}/List -H "Authorization: Bearer $(cat {secrets}/admin-token)"
    NATS          {nats}   (subjects orders.placed.<partition>.<order id>, refunds.requested.<partition>.<order id>, payments.settled, payments.refunded)
                  no anonymous clients: creds files per identity in {auth} (admin.creds for people)
    traces        {traces}
    logs          {logs}
    look inside   export WASH_CTL_CREDS={auth}/admin.creds
                  {wash} get hosts {ctl}
                  {wash} get inventory {ctl}
                  {wash} app list {ctl}
    stop          make down{make_lattice}   (keeps state)   |   make clean (wipes it)"#,
            name = instance.name,
            secrets = secrets.display(),
            auth = auth.display(),
            nats = instance.nats_urls(),
            logs = self.logs().display(),
        );
    }
}

/// The names of the named configurations a manifest declares (`config:` then `- name: <name>`).
fn config_names(manifest: &str) -> Vec<String> {
    let mut names: Vec<String> = manifest
        .lines()
        .zip(manifest.lines().skip(1))
        .filter(|(line, _)| line.trim() == "config:")
        .filter_map(|(_, next)| Some(next.trim().strip_prefix("- name:")?.trim().to_owned()))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifests_named_configurations_are_found_once_each() {
        let manifest = "\
spec:
  components:
    - name: billing
      properties:
        config:
          - name: billing-settings
      traits:
        - type: link
          properties:
            target:
              config:
                - name: billing-settings
            source:
              config:
                - name: http-route
";
        assert_eq!(config_names(manifest), ["billing-settings", "http-route"]);
    }
}
