//! The workspace's layers, by folder, and the arrows allowed between them.
//!
//! - **Platform**: `lattice/` (host, wadm, wash, supervisor, NATS identities, the manifest tool,
//!   and `lattice/conventions`) and `providers/`. It runs any application; it knows none.
//! - **Application**: `components/` (the services, their cores, the component kit, the console)
//!   and `tools/` (orders-admin, orders-telemetry: they read the application's messages).
//! - **Verification**: `tests/` and `bench/`, which drive both from outside.
//!
//! Rules, for every dependency between two workspace crates:
//! 1. A platform crate depends on no application crate, and on a verification crate only for its
//!    own tests (`orders-test-nats` starts a NATS server).
//! 2. Only a provider depends on a provider: everyone else reaches the key-value store and the
//!    broker through NATS, and what they share with a provider lives in `lattice/conventions`.
//!    The one exception is the host, which serves providers in its own process: it depends on a
//!    provider's crate, never on what the providers share among themselves (`providers/support`).
//! 3. The application depends on the platform through `lattice/conventions` only.

use serde_json::Value;

/// The conventions crate: the one platform crate the application may use.
pub const CONVENTIONS: &str = "lattice/conventions";
/// The host, which serves providers in its process.
pub const HOST: &str = "lattice/host";
/// What the providers share among themselves.
pub const PROVIDER_SUPPORT: &str = "providers/support";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Platform,
    Application,
    Verification,
}

/// A workspace crate: its name and its folder relative to the workspace root.
#[derive(Debug, Clone)]
pub struct Crate {
    pub name: String,
    pub folder: String,
}

impl Crate {
    pub fn layer(&self) -> Option<Layer> {
        match self.folder.split('/').next()? {
            "lattice" | "providers" => Some(Layer::Platform),
            "components" | "tools" => Some(Layer::Application),
            "tests" | "bench" => Some(Layer::Verification),
            _ => None,
        }
    }

    fn is_provider(&self) -> bool {
        self.folder.starts_with("providers/")
    }
}

/// One dependency between workspace crates.
#[derive(Debug, Clone)]
pub struct Arrow {
    pub from: Crate,
    pub to: Crate,
    /// Only for the depending crate's tests and benchmarks.
    pub dev: bool,
}

/// Why `arrow` breaks a rule, or `None` when it keeps them all.
pub fn broken_rule(arrow: &Arrow) -> Option<String> {
    let (from, to) = (&arrow.from, &arrow.to);
    let Some((from_layer, to_layer)) = from.layer().zip(to.layer()) else {
        return Some(format!(
            "{} -> {}: a crate outside lattice/, providers/, components/, tools/, tests/ and bench/ has no layer",
            from.folder, to.folder
        ));
    };
    let arrow_text = format!(
        "{} ({}) -> {} ({})",
        from.name, from.folder, to.name, to.folder
    );
    match (from_layer, to_layer) {
        (Layer::Platform, Layer::Application) => {
            return Some(format!(
                "{arrow_text}: the platform depends on the application"
            ))
        }
        (Layer::Platform, Layer::Verification) if !arrow.dev => {
            return Some(format!(
                "{arrow_text}: the platform depends on a test crate outside its tests"
            ))
        }
        (Layer::Application, Layer::Platform) if to.folder != CONVENTIONS => {
            return Some(format!(
                "{arrow_text}: the application uses the platform other than through {CONVENTIONS}"
            ))
        }
        _ => {}
    }
    let host_embeds_provider = from.folder == HOST && to.folder != PROVIDER_SUPPORT;
    if to.is_provider() && !from.is_provider() && !host_embeds_provider {
        return Some(format!(
            "{arrow_text}: only a provider depends on a provider"
        ));
    }
    None
}

/// Every dependency between the workspace's crates, from `cargo metadata --no-deps` output.
pub fn arrows(metadata: &Value) -> Vec<Arrow> {
    let root = metadata["workspace_root"].as_str().unwrap_or_default();
    let crates: Vec<Crate> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|package| Crate {
            name: package["name"].as_str().unwrap_or_default().to_string(),
            folder: package["manifest_path"]
                .as_str()
                .unwrap_or_default()
                .strip_prefix(root)
                .unwrap_or_default()
                .trim_start_matches('/')
                .trim_end_matches("Cargo.toml")
                .trim_end_matches('/')
                .to_string(),
        })
        .collect();
    let by_name = |name: &str| crates.iter().find(|c| c.name == name).cloned();
    metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(&crates)
        .flat_map(|(package, from)| {
            package["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|dependency| {
                    let to = by_name(dependency["name"].as_str()?)?;
                    Some(Arrow {
                        from: from.clone(),
                        to,
                        dev: dependency["kind"].as_str() == Some("dev"),
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect()
}
