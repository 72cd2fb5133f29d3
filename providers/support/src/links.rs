//! Keeps a provider's links in step with the lattice's.
//!
//! The host hands a provider its links once: those it knows when it starts the provider, then each
//! new one as a single fire-and-forget NATS publication. A link published after the host gathered
//! the start-up links but before the provider subscribed is lost, and so is one the provider
//! failed to take (a bucket it could not open yet): the SDK only logs that. wadm then reports the
//! application Deployed, since the lattice holds the link, while the provider answers that
//! component `NoSuchStore` (or never consumes for it) until someone redeploys. Seen in CI.
//!
//! So every provider asks the lattice (the control interface's `link.get`, `config.get`) for its
//! links now and then, takes those it does not serve, and lets go of those the lattice no longer
//! holds (only when two rounds in a row say so: a link put between the query and the comparison
//! must not be dropped).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use tracing::{debug, info, warn};
use wasmcloud_control_interface::{Client as CtlClient, ClientBuilder as CtlClientBuilder, Link};
use wasmcloud_provider_sdk::core::InterfaceLinkDefinition;
use wasmcloud_provider_sdk::provider::receive_link_for_provider;
use wasmcloud_provider_sdk::{Provider, ProviderConnection};

use crate::LinkKey;

/// A provider the keeper can compare with the lattice.
pub trait ServesLinks: Provider + Clone + Send + Sync + 'static {
    /// Which ends of links the provider is (messaging is both: it delivers to handlers and takes
    /// publications).
    const ENDS: &'static [End];
    /// The links this provider serves right now at `end`, by (component at the other end, link
    /// name).
    fn served_links(&self, end: End) -> impl Future<Output = HashSet<LinkKey>> + Send;

    /// Called once the links the host knew at the provider's start have all been handed to it.
    /// A provider that must not serve before it knows its links starts serving here (the HTTP
    /// server: a request for a path not routed yet would be answered 404 while the provider is
    /// starting, as after a host restart).
    fn start_up_links_taken(&self) {}
}

/// Which end of a link a provider is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    /// The provider calls the component (messaging delivers to handlers).
    Source,
    /// The component calls the provider (key-value).
    Target,
}

/// Pauses between rounds: soon after start-up (where links get lost), then every 10 seconds.
fn pauses() -> impl Iterator<Item = Duration> {
    [1, 2, 4, 8]
        .into_iter()
        .chain(std::iter::repeat(10))
        .map(Duration::from_secs)
}

/// The keeper for `provider`, which `connection` serves: run it for as long as the provider runs.
pub async fn keep_links_in_step<P: ServesLinks>(provider: P, connection: ProviderConnection) {
    let ctl = CtlClientBuilder::new((*connection.nats).clone())
        .lattice(connection.lattice.to_string())
        .build();
    let ends: Vec<Me> = P::ENDS
        .iter()
        .map(|&end| Me {
            id: connection.provider_key().to_string(),
            end,
        })
        .collect();
    let mut extra_last_round: HashMap<End, HashSet<LinkKey>> = HashMap::new();
    for pause in pauses() {
        tokio::time::sleep(pause).await;
        let lattice_links = match lattice_links(&ctl).await {
            Ok(links) => links,
            // No host answered (restarting, or the lattice is busy): the next round asks again.
            Err(e) => {
                debug!("could not compare links with the lattice: {e}");
                continue;
            }
        };
        for me in &ends {
            let extra = extra_last_round.entry(me.end).or_default();
            *extra = one_round(&provider, &connection, &ctl, me, &lattice_links, extra).await;
        }
    }
}

/// The provider as its links name it: its id, and the end of its links it is.
struct Me {
    id: String,
    end: End,
}

impl Me {
    /// The key the provider serves `link` under, if `link` is one of its own.
    fn key_of(&self, link: &Link) -> Option<LinkKey> {
        let other = match self.end {
            End::Target if link.target() == self.id => link.source_id(),
            End::Source if link.source_id() == self.id => link.target(),
            _ => return None,
        };
        Some((other.to_string(), link.name().to_string()))
    }

    /// A definition naming the link served under `(component, name)`, enough to delete it.
    fn definition(&self, (component, name): &LinkKey) -> InterfaceLinkDefinition {
        let (source_id, target) = match self.end {
            End::Source => (self.id.clone(), component.clone()),
            End::Target => (component.clone(), self.id.clone()),
        };
        InterfaceLinkDefinition {
            source_id,
            target,
            name: name.clone(),
            ..Default::default()
        }
    }
}

async fn lattice_links(ctl: &CtlClient) -> Result<Vec<Link>, String> {
    ctl.get_links()
        .await
        .map_err(|e| e.to_string())?
        .into_data()
        .ok_or_else(|| "the host answered link.get without links".to_string())
}

/// One comparison at one end; returns the links served but not in the lattice, for the next round.
async fn one_round<P: ServesLinks>(
    provider: &P,
    connection: &ProviderConnection,
    ctl: &CtlClient,
    me: &Me,
    lattice_links: &[Link],
    extra_last_round: &HashSet<LinkKey>,
) -> HashSet<LinkKey> {
    let served = provider.served_links(me.end).await;
    let plan = Plan::new(me, lattice_links, &served, extra_last_round);
    for link in plan.take {
        let definition = match resolve(ctl, me, link).await {
            Ok(definition) => definition,
            Err(e) => {
                warn!("cannot take a missed link yet: {e}");
                continue;
            }
        };
        warn!(
            source = %definition.source_id, target = %definition.target, link = %definition.name,
            "taking a link the lattice holds but this provider missed"
        );
        if let Err(e) = receive_link_for_provider(provider, connection, definition).await {
            warn!("taking a missed link failed: {e}");
        }
    }
    for key in &plan.let_go {
        let definition = me.definition(key);
        info!(source = %definition.source_id, target = %definition.target, link = %definition.name,
            "letting go of a link the lattice no longer holds");
        let deleted = match me.end {
            End::Source => provider.delete_link_as_source(&definition).await,
            End::Target => provider.delete_link_as_target(&definition).await,
        };
        if let Err(e) = deleted {
            warn!("letting go of a link failed: {e}");
        }
        connection
            .delete_link(&definition.source_id, &definition.target)
            .await;
    }
    plan.extra
}

/// What one round does, decided from the lattice's links and the provider's.
#[derive(Debug)]
struct Plan<'a> {
    /// Links of the lattice the provider does not serve, one per key: a component may link to
    /// the same provider through several interfaces under one link name, served as one.
    take: Vec<&'a Link>,
    /// Served but missing from the lattice in this round and the one before.
    let_go: Vec<LinkKey>,
    /// Served but missing from the lattice in this round.
    extra: HashSet<LinkKey>,
}

impl<'a> Plan<'a> {
    fn new(
        me: &Me,
        lattice: &'a [Link],
        served: &HashSet<LinkKey>,
        extra_last_round: &HashSet<LinkKey>,
    ) -> Self {
        let mut in_lattice = HashSet::new();
        let mut take = Vec::new();
        for link in lattice {
            let Some(key) = me.key_of(link) else {
                continue;
            };
            if !served.contains(&key) && !in_lattice.contains(&key) {
                take.push(link);
            }
            in_lattice.insert(key);
        }
        let extra: HashSet<LinkKey> = served.difference(&in_lattice).cloned().collect();
        let let_go = extra.intersection(extra_last_round).cloned().collect();
        Self {
            take,
            let_go,
            extra,
        }
    }
}

/// The link with its named configurations resolved the way the host resolves them: merged in the
/// order the link lists them, a later one overriding an earlier one.
async fn resolve(ctl: &CtlClient, me: &Me, link: &Link) -> Result<InterfaceLinkDefinition, String> {
    let names = match me.end {
        End::Source => link.source_config(),
        End::Target => link.target_config(),
    };
    let mut merged = HashMap::new();
    for name in names {
        let answer = ctl.get_config(name).await.map_err(|e| e.to_string())?;
        match answer.into_data() {
            Some(config) => merged.extend(config),
            None => return Err(format!("configuration `{name}` not found")),
        }
    }
    let mut definition = InterfaceLinkDefinition {
        source_id: link.source_id().to_string(),
        target: link.target().to_string(),
        name: link.name().to_string(),
        wit_namespace: link.wit_namespace().to_string(),
        wit_package: link.wit_package().to_string(),
        interfaces: link.interfaces().clone(),
        ..Default::default()
    };
    match me.end {
        End::Source => definition.source_config = merged,
        End::Target => definition.target_config = merged,
    }
    Ok(definition)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(source: &str, target: &str, package: &str) -> Link {
        serde_json::from_value(serde_json::json!({
            "source_id": source, "target": target, "name": "default",
            "wit_namespace": "wasi", "wit_package": package, "interfaces": ["store"],
            "source_config": [], "target_config": [format!("{source}-bucket")],
        }))
        .unwrap()
    }

    fn key(component: &str) -> LinkKey {
        (component.to_string(), "default".to_string())
    }

    /// The source and target of the link `me` would let go of under `key`.
    fn ends(me: &Me, key: &LinkKey) -> (String, String) {
        let definition = me.definition(key);
        (definition.source_id, definition.target)
    }

    fn me(id: &str, end: End) -> Me {
        Me {
            id: id.to_string(),
            end,
        }
    }

    #[test]
    fn a_lattice_link_the_provider_does_not_serve_is_taken_once_per_key() {
        let lattice = [
            link("billing", "kv", "keyvalue"),
            link("billing", "kv", "keyvalue-cas"),
            link("notify", "kv", "keyvalue"),
            link("billing", "messaging", "messaging"),
        ];
        let served = HashSet::from([key("notify")]);
        let plan = Plan::new(&me("kv", End::Target), &lattice, &served, &HashSet::new());
        assert_eq!(plan.take.len(), 1, "{plan:?}");
        assert_eq!(plan.take[0].source_id(), "billing");
        assert!(plan.extra.is_empty() && plan.let_go.is_empty());
    }

    #[test]
    fn a_served_link_is_let_go_only_after_two_rounds_without_it_in_the_lattice() {
        let kv = me("kv", End::Target);
        let lattice = [link("notify", "kv", "keyvalue")];
        let served = HashSet::from([key("notify"), key("gone")]);
        let first = Plan::new(&kv, &lattice, &served, &HashSet::new());
        assert!(first.let_go.is_empty());
        assert_eq!(first.extra, HashSet::from([key("gone")]));
        let second = Plan::new(&kv, &lattice, &served, &first.extra);
        assert_eq!(second.let_go, vec![key("gone")]);
        assert_eq!(ends(&kv, &second.let_go[0]), ("gone".into(), "kv".into()));
    }

    #[test]
    fn a_source_provider_serves_its_links_under_the_target_component() {
        let messaging = me("messaging", End::Source);
        let lattice = [link("messaging", "billing", "messaging")];
        let plan = Plan::new(&messaging, &lattice, &HashSet::new(), &HashSet::new());
        assert_eq!(plan.take.len(), 1);
        let served = HashSet::from([key("billing"), key("notify")]);
        let plan = Plan::new(
            &messaging,
            &lattice,
            &served,
            &HashSet::from([key("notify")]),
        );
        assert!(plan.take.is_empty());
        assert_eq!(
            ends(&messaging, &plan.let_go[0]),
            ("messaging".into(), "notify".into())
        );
    }

    #[test]
    fn a_link_whose_other_end_is_this_provider_in_the_wrong_role_is_not_its_own() {
        let kv = me("kv", End::Target);
        assert_eq!(kv.key_of(&link("kv", "billing", "keyvalue")), None);
        assert_eq!(
            kv.key_of(&link("billing", "kv", "keyvalue")),
            Some(key("billing"))
        );
    }
}
