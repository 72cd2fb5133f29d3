//! A wadm application manifest, edited as a YAML tree so that every field we do not touch
//! (comments aside) reaches the derived copy unchanged, and checked against wadm's own types
//! before it is written.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_yaml::{Mapping, Value};

/// Artifacts in the kept manifest are `file://` paths relative to it.
const LOCAL_PREFIX: &str = "file://./";
/// A capability our host serves in its own process.
const BUILTIN_PREFIX: &str = "wasmcloud+builtin://";
/// Each capability our host serves in process. The provider archive of the same code,
/// `build/providers/<name>.par.gz` (`make build`), is what a host without it runs (upstream's
/// host), or anyone who wants the capability in a process of its own (`render
/// --providers-as-processes`).
const BUILTINS: [&str; 3] = ["http-server", "keyvalue-jetstream", "messaging-jetstream"];

pub struct Application {
    root: Value,
}

/// A component or provider whose artifact is a local file.
pub struct LocalArtifact {
    pub name: String,
    pub relative_path: String,
}

impl Application {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(yaml: &str) -> Result<Self> {
        Ok(Self {
            root: serde_yaml::from_str(yaml).context("not YAML")?,
        })
    }

    /// The manifest as YAML, refused if wadm would not parse it.
    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml::from_value::<wadm_types::Manifest>(self.root.clone())
            .context("the derived manifest is not a valid wadm manifest")?;
        Ok(serde_yaml::to_string(&self.root)?)
    }

    pub fn set_version(&mut self, version: &str) -> Result<()> {
        let annotations = self
            .root
            .get_mut("metadata")
            .and_then(|m| m.get_mut("annotations"))
            .and_then(Value::as_mapping_mut)
            .ok_or_else(|| anyhow!("metadata.annotations is missing"))?;
        annotations.insert("version".into(), version.into());
        Ok(())
    }

    /// The manifest as a YAML tree.
    pub fn root(&self) -> &Value {
        &self.root
    }

    fn components(&self) -> Result<&Vec<Value>> {
        self.root
            .get("spec")
            .and_then(|s| s.get("components"))
            .and_then(Value::as_sequence)
            .ok_or_else(|| anyhow!("spec.components is missing"))
    }

    fn components_mut(&mut self) -> Result<&mut Vec<Value>> {
        self.root
            .get_mut("spec")
            .and_then(|s| s.get_mut("components"))
            .and_then(Value::as_sequence_mut)
            .ok_or_else(|| anyhow!("spec.components is missing"))
    }

    /// Adds the overlay's new components; of those that already exist, appends the traits and
    /// sets the properties of the named configs the overlay names (the benchmark lifts the HTTP
    /// server's rate limits this way).
    pub fn merge(&mut self, overlay: Application) -> Result<()> {
        let components = self.components_mut()?;
        for addition in overlay.components()? {
            let name = name_of(addition)?;
            match components
                .iter_mut()
                .find(|c| name_of(c).is_ok_and(|n| n == name))
            {
                None => components.push(addition.clone()),
                Some(existing) => {
                    merge_config_properties(existing, addition)?;
                    let extra = addition
                        .get("traits")
                        .and_then(Value::as_sequence)
                        .cloned()
                        .unwrap_or_default();
                    let traits = existing
                        .as_mapping_mut()
                        .expect("a named component is a mapping")
                        .entry("traits".into())
                        .or_insert_with(|| Value::Sequence(Vec::new()));
                    traits
                        .as_sequence_mut()
                        .ok_or_else(|| anyhow!("{name}: traits is not a list"))?
                        .extend(extra);
                }
            }
        }
        Ok(())
    }

    pub fn local_artifacts(&self) -> Result<Vec<LocalArtifact>> {
        let mut artifacts = Vec::new();
        for component in self.components()? {
            if let Some(path) = image_of(component).and_then(|i| i.strip_prefix(LOCAL_PREFIX)) {
                artifacts.push(LocalArtifact {
                    name: name_of(component)?.to_string(),
                    relative_path: path.to_string(),
                });
            }
        }
        Ok(artifacts)
    }

    /// `file://./x` becomes `file://<root>/x`: wash resolves relative paths against its working
    /// directory, not the manifest's.
    pub fn resolve_local_files(&mut self, root: &Path) -> Result<()> {
        let root = root.display().to_string();
        self.replace_images(|_, image| {
            Ok(image
                .strip_prefix(LOCAL_PREFIX)
                .map(|path| format!("file://{root}/{path}")))
        })
    }

    /// Every capability of our host's (`wasmcloud+builtin://`) as its provider archive instead.
    pub fn builtins_as_processes(&mut self) -> Result<()> {
        self.replace_images(|name, image| {
            let Some(builtin) = image.strip_prefix(BUILTIN_PREFIX) else {
                return Ok(None);
            };
            if !BUILTINS.contains(&builtin) {
                bail!("{name}: our host serves no builtin `{builtin}`");
            }
            Ok(Some(format!(
                "{LOCAL_PREFIX}build/providers/{builtin}.par.gz"
            )))
        })
    }

    /// Every `file://` image replaced by `oci_ref(component name)`.
    pub fn replace_local_images(&mut self, oci_ref: impl Fn(&str) -> String) -> Result<()> {
        self.replace_images(|name, image| {
            Ok(image.starts_with(LOCAL_PREFIX).then(|| oci_ref(name)))
        })
    }

    fn replace_images(
        &mut self,
        replace: impl Fn(&str, &str) -> Result<Option<String>>,
    ) -> Result<()> {
        for component in self.components_mut()? {
            let name = name_of(component)?.to_string();
            let Some(properties) = component
                .get_mut("properties")
                .and_then(Value::as_mapping_mut)
            else {
                continue;
            };
            let Some(image) = properties.get("image").and_then(Value::as_str) else {
                continue;
            };
            if let Some(new_image) = replace(&name, image)? {
                properties.insert("image".into(), new_image.into());
            }
        }
        Ok(())
    }

    /// The local instance's NATS servers and HTTP listeners (tools/ops/src/layout.rs): providers reach
    /// NATS on 127.0.0.1 from `nats_port` on, and keep `replicas` of what they create; the HTTP
    /// server listens on 127.0.0.1:`http_port`. With several hosts, every part runs on every host,
    /// except the HTTP server: one on each host, the n-th listening on `http_port + n - 1` (they
    /// share one machine's ports).
    pub fn use_local_instance(&mut self, instance: &LocalInstance) -> Result<()> {
        let cluster_uri: Vec<String> = (0..instance.nats_servers)
            .map(|i| format!("nats://127.0.0.1:{}", instance.nats_port + i))
            .collect();
        let mut listeners = 0;
        self.edit_provider_config(|properties| {
            if properties.contains_key("cluster_uri") {
                properties.insert("cluster_uri".into(), cluster_uri.join(",").into());
                properties.insert("replicas".into(), instance.replicas.to_string().into());
            }
            if properties.contains_key("address") {
                properties.insert(
                    "address".into(),
                    format!("127.0.0.1:{}", instance.http_port).into(),
                );
                listeners += 1;
            }
        })?;
        if listeners != 1 {
            bail!("expected one HTTP listener (`address`) in the providers' config, found {listeners}");
        }
        if instance.hosts > 1 {
            self.run_on_every_host(|_| true)?;
            self.listen_on_every_host(instance.http_port, instance.hosts)?;
        }
        Ok(())
    }

    /// The HTTP server provider replaced by one copy per host (`<name>-<n>`, on each host
    /// labelled `host: "<n>"`), each with its listener config (`<config>-<n>`) on its own
    /// port, `http_port + n - 1`, and the same links.
    fn listen_on_every_host(&mut self, http_port: u16, hosts: u16) -> Result<()> {
        let components = self.components_mut()?;
        let position = components
            .iter_mut()
            .position(|c| listener_config(c).is_some())
            .ok_or_else(|| anyhow!("no HTTP listener (`address`) in the providers' config"))?;
        let server = components.remove(position);
        for n in 1..=hosts {
            let mut copy = server.clone();
            let name = format!("{}-{n}", name_of(&server)?);
            let config = listener_config(&mut copy).expect("found above");
            let config_name = format!("{}-{n}", name_of(config)?);
            config["name"] = config_name.into();
            config["properties"]["address"] = format!("127.0.0.1:{}", http_port + n - 1).into();
            copy["name"] = name.into();
            let traits = copy["traits"]
                .as_sequence_mut()
                .ok_or_else(|| anyhow!("the HTTP server has no traits"))?;
            let scaler = traits
                .iter_mut()
                .find(|t| t["type"].as_str().is_some_and(|t| t.ends_with("scaler")))
                .ok_or_else(|| anyhow!("the HTTP server has no scaler"))?;
            // A daemonscaler: placed at once on a host that (re)joins with the label, where a
            // spreadscaler would wait for a killed host's instance to expire first.
            *scaler = serde_yaml::from_str(&format!(
                "{{type: daemonscaler, properties: {{instances: 1, spread: \
                 [{{name: host-{n}, weight: 100, requirements: {{host: '{n}'}}}}]}}}}"
            ))?;
            // wadm wants each link's inline config (one with properties) named once in the whole
            // manifest; configs named only by reference stay as they are.
            let links = traits.iter_mut().filter(|t| t["type"] == "link");
            for link in links {
                for side in ["source", "target"] {
                    let configs = link
                        .get_mut("properties")
                        .and_then(|p| p.get_mut(side))
                        .and_then(|s| s.get_mut("config"))
                        .and_then(Value::as_sequence_mut);
                    for config in configs.into_iter().flatten() {
                        if config.get("properties").is_some() {
                            config["name"] = format!("{}-{n}", name_of(config)?).into();
                        }
                    }
                }
            }
            components.insert(position + usize::from(n - 1), copy);
        }
        Ok(())
    }

    /// Runs `edit` on the `properties` of every named config of every capability provider.
    pub fn edit_provider_config(&mut self, mut edit: impl FnMut(&mut Mapping)) -> Result<()> {
        for component in self.components_mut()? {
            if component.get("type").and_then(Value::as_str) != Some("capability") {
                continue;
            }
            let configs = component
                .get_mut("properties")
                .and_then(|p| p.get_mut("config"))
                .and_then(Value::as_sequence_mut);
            for config in configs.into_iter().flatten() {
                if let Some(properties) =
                    config.get_mut("properties").and_then(Value::as_mapping_mut)
                {
                    edit(properties);
                }
            }
        }
        Ok(())
    }

    /// The parts `which` selects run on every host (a daemonscaler) instead of a fixed number
    /// of instances somewhere: each host then serves them on its own, and losing a host leaves
    /// the others serving.
    pub fn run_on_every_host(&mut self, which: impl Fn(&Value) -> bool) -> Result<()> {
        for component in self.components_mut()? {
            if !which(component) {
                continue;
            }
            let traits = component.get_mut("traits").and_then(Value::as_sequence_mut);
            for spread in traits
                .into_iter()
                .flatten()
                .filter(|t| t.get("type").and_then(Value::as_str) == Some("spreadscaler"))
            {
                spread
                    .as_mapping_mut()
                    .expect("a trait with a type is a mapping")
                    .insert("type".into(), "daemonscaler".into());
            }
        }
        Ok(())
    }
}

/// Sets, in `existing`'s named configs, the properties `addition` gives for configs of the same name.
fn merge_config_properties(existing: &mut Value, addition: &Value) -> Result<()> {
    let overrides = addition
        .get("properties")
        .and_then(|p| p.get("config"))
        .and_then(Value::as_sequence);
    for config in overrides.into_iter().flatten() {
        let name = name_of(config)?;
        let target = existing
            .get_mut("properties")
            .and_then(|p| p.get_mut("config"))
            .and_then(Value::as_sequence_mut)
            .and_then(|configs| {
                configs
                    .iter_mut()
                    .find(|c| name_of(c).is_ok_and(|n| n == name))
            })
            .and_then(|c| c.get_mut("properties"))
            .and_then(Value::as_mapping_mut)
            .ok_or_else(|| {
                anyhow!("the overlay sets config `{name}`, which has no properties here")
            })?;
        let properties = config.get("properties").and_then(Value::as_mapping);
        for (key, value) in properties.into_iter().flatten() {
            target.insert(key.clone(), value.clone());
        }
    }
    Ok(())
}

/// A local instance's NATS servers, hosts and HTTP port (see [`Application::use_local_instance`]).
pub struct LocalInstance {
    pub nats_port: u16,
    pub nats_servers: u16,
    pub replicas: u16,
    pub http_port: u16,
    pub hosts: u16,
}

/// The named config of `component` that holds an HTTP listener's `address`.
fn listener_config(component: &mut Value) -> Option<&mut Value> {
    component
        .get_mut("properties")?
        .get_mut("config")?
        .as_sequence_mut()?
        .iter_mut()
        .find(|c| c.get("properties").and_then(|p| p.get("address")).is_some())
}

fn name_of(component: &Value) -> Result<&str> {
    component
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("a component has no name"))
}

fn image_of(component: &Value) -> Option<&str> {
    component.get("properties")?.get("image")?.as_str()
}

/// Every artifact `wadm.yaml` names, in its order.
#[cfg(test)]
pub const ARTIFACTS: [&str; 7] = [
    "billing",
    "order",
    "notify",
    "web",
    "http-server",
    "messaging",
    "keyvalue",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> Application {
        Application::parse(include_str!("../../../wadm.yaml")).unwrap()
    }

    fn yaml_of(app: &Application) -> String {
        app.to_yaml().unwrap()
    }

    #[test]
    fn the_kept_manifest_is_a_valid_wadm_manifest() {
        yaml_of(&kept());
    }

    #[test]
    fn a_local_instance_gets_its_own_ports_and_absolute_paths() {
        let mut app = kept();
        app.resolve_local_files(Path::new("/checkout")).unwrap();
        app.use_local_instance(&LocalInstance {
            nats_port: 14222,
            nats_servers: 1,
            replicas: 1,
            http_port: 18000,
            hosts: 1,
        })
        .unwrap();
        let yaml = yaml_of(&app);
        assert!(yaml.contains("address: 127.0.0.1:18000"));
        assert!(yaml.contains("cluster_uri: nats://127.0.0.1:14222"));
        assert!(!yaml.contains(":4222\n") && !yaml.contains(":8000\n"));
        assert!(yaml.contains("file:///checkout/build/components/billing.wasm"));
        assert!(!yaml.contains("file://./"));
    }

    #[test]
    fn a_replicated_instance_runs_everything_on_every_host_and_one_http_listener_per_host() {
        let links = |component: &Value| {
            component["traits"]
                .as_sequence()
                .unwrap()
                .iter()
                .filter(|t| t["type"] == "link")
                .count()
        };
        let kept = kept();
        let kept_server = kept
            .components()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "http-server")
            .unwrap();
        let mut app = Application::parse(&kept.to_yaml().unwrap()).unwrap();
        app.use_local_instance(&LocalInstance {
            nats_port: 25222,
            nats_servers: 3,
            replicas: 3,
            http_port: 29000,
            hosts: 2,
        })
        .unwrap();
        let yaml = yaml_of(&app);
        assert!(yaml.contains(
            "cluster_uri: nats://127.0.0.1:25222,nats://127.0.0.1:25223,nats://127.0.0.1:25224"
        ));
        assert_eq!(yaml.matches("replicas: '3'").count(), 2, "{yaml}");
        let components = app.components().unwrap();
        assert!(!components.iter().any(|c| c["name"] == "http-server"));
        for (n, port) in [(1, 29000), (2, 29001)] {
            let server = components
                .iter()
                .find(|c| c["name"] == format!("http-server-{n}").as_str())
                .unwrap();
            let config = &server["properties"]["config"][0];
            assert_eq!(config["name"], format!("http-server-listener-{n}").as_str());
            assert_eq!(
                config["properties"]["address"],
                format!("127.0.0.1:{port}").as_str()
            );
            let spread = &server["traits"][0]["properties"]["spread"][0];
            assert_eq!(spread["requirements"]["host"], format!("{n}").as_str());
            assert_eq!(links(server), links(kept_server));
        }
        // wadm wants each inline link config named once.
        assert!(
            yaml.contains("name: path-create-user-1") && yaml.contains("name: path-create-user-2")
        );
        assert!(!yaml.contains("name: path-create-user\n"));
        // Every part on every host, but each listener on its own.
        assert_eq!(yaml.matches("type: spreadscaler").count(), 0);
        assert_eq!(yaml.matches("type: daemonscaler").count(), components.len());
    }

    #[test]
    fn an_overlay_adds_components_and_appends_links_to_existing_ones() {
        let overlay = Application::parse(
                "spec:\n  components:\n\
                 \x20   - name: hello\n      type: component\n      properties: {image: file://./hello.wasm}\n\
                 \x20   - name: http-server\n      traits:\n        - type: link\n          properties: {target: {name: hello}, namespace: wasi, package: http, interfaces: [incoming-handler]}\n",
        )
        .unwrap();
        let mut app = kept();
        let links_before = app.components().unwrap().len();
        app.merge(overlay).unwrap();
        let components = app.components().unwrap();
        assert_eq!(components.len(), links_before + 1);
        let http = components
            .iter()
            .find(|c| name_of(c).unwrap() == "http-server")
            .unwrap();
        let last = http["traits"].as_sequence().unwrap().last().unwrap();
        assert_eq!(last["properties"]["target"]["name"], "hello");
        yaml_of(&app);
    }

    #[test]
    fn an_overlay_sets_properties_of_an_existing_named_config() {
        let overlay = Application::parse(
            "spec:\n  components:\n\
             \x20   - name: http-server\n      properties:\n        config:\n\
             \x20         - name: http-server-listener\n            properties: {rate_per_client: \"0\"}\n",
        )
        .unwrap();
        let mut app = kept();
        app.merge(overlay).unwrap();
        let yaml = yaml_of(&app);
        assert!(yaml.contains("rate_per_client: '0'"), "{yaml}");
        assert!(
            yaml.contains("routing_mode: path"),
            "the other properties stay"
        );
    }

    #[test]
    fn every_capability_is_our_hosts_own_unless_asked_to_run_as_processes() {
        let image = |app: &Application, name: &str| {
            image_of(
                app.components()
                    .unwrap()
                    .iter()
                    .find(|c| c["name"] == name)
                    .unwrap(),
            )
            .unwrap()
            .to_string()
        };
        // (the component in wadm.yaml, our host's builtin and its provider archive)
        let capabilities = [
            ("http-server", "http-server"),
            ("keyvalue", "keyvalue-jetstream"),
            ("messaging", "messaging-jetstream"),
        ];
        let mut app = kept();
        for (name, builtin) in capabilities {
            assert_eq!(image(&app, name), format!("wasmcloud+builtin://{builtin}"));
        }
        app.builtins_as_processes().unwrap();
        app.resolve_local_files(Path::new("/checkout")).unwrap();
        for (name, archive) in capabilities {
            assert_eq!(
                image(&app, name),
                format!("file:///checkout/build/providers/{archive}.par.gz")
            );
        }
    }

    #[test]
    fn a_builtin_our_host_does_not_serve_is_refused() {
        let mut app = Application::parse(
            "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata: {name: x, annotations: {version: v1}}\n\
             spec:\n  components:\n    - name: nats\n      type: capability\n      properties: {image: wasmcloud+builtin://messaging-nats}\n",
        )
        .unwrap();
        assert!(app.builtins_as_processes().is_err());
    }

    #[test]
    fn every_local_artifact_is_listed_once() {
        let mut app = kept();
        app.builtins_as_processes().unwrap();
        let names: Vec<_> = app
            .local_artifacts()
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, ARTIFACTS);
    }
}
