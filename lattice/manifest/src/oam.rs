//! A wadm application manifest, edited as a YAML tree so that every field we do not touch
//! (comments aside) reaches the derived copy unchanged, and checked against wadm's own types
//! before it is written.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_yaml::{Mapping, Value};

/// Artifacts in the kept manifest are `file://` paths relative to it.
const LOCAL_PREFIX: &str = "file://./";

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

    /// The local instance's ports: providers reach NATS on 127.0.0.1:`nats_port`, the HTTP
    /// server listens on 127.0.0.1:`http_port`.
    pub fn use_local_ports(&mut self, nats_port: u16, http_port: u16) -> Result<()> {
        let mut listeners = 0;
        self.edit_provider_config(|properties| {
            if properties.contains_key("cluster_uri") {
                properties.insert(
                    "cluster_uri".into(),
                    format!("nats://127.0.0.1:{nats_port}").into(),
                );
            }
            if properties.contains_key("address") {
                properties.insert("address".into(), format!("127.0.0.1:{http_port}").into());
                listeners += 1;
            }
        })?;
        if listeners != 1 {
            bail!("expected one HTTP listener (`address`) in the providers' config, found {listeners}");
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

    /// Providers run on every host (a daemonscaler) instead of a fixed number of instances:
    /// each host pod then serves HTTP and reaches the broker and the store locally.
    pub fn run_providers_on_every_host(&mut self) -> Result<()> {
        for component in self.components_mut()? {
            if component.get("type").and_then(Value::as_str) != Some("capability") {
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

fn name_of(component: &Value) -> Result<&str> {
    component
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("a component has no name"))
}

fn image_of(component: &Value) -> Option<&str> {
    component.get("properties")?.get("image")?.as_str()
}

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
        app.use_local_ports(14222, 18000).unwrap();
        let yaml = yaml_of(&app);
        assert!(yaml.contains("address: 127.0.0.1:18000"));
        assert!(yaml.contains("cluster_uri: nats://127.0.0.1:14222"));
        assert!(!yaml.contains(":4222\n") && !yaml.contains(":8000\n"));
        assert!(yaml.contains("file:///checkout/build/components/billing.wasm"));
        assert!(!yaml.contains("file://./"));
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
    fn every_local_artifact_is_listed_once() {
        let names: Vec<_> = kept()
            .local_artifacts()
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(
            names,
            [
                "billing",
                "order",
                "notify",
                "web",
                "http-server",
                "messaging",
                "keyvalue"
            ]
        );
    }
}
