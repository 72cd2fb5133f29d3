//! Who connects to the lattice's NATS, and what each may publish and subscribe to.
//!
//! The control plane (the host's control connection, wadm) and the people who operate the lattice
//! (wash, the tests, the benchmark) use the whole account: deploying, linking and configuring is
//! their job. The data plane is one identity, `rpc`: the host's RPC connection, whose credentials
//! the host hands to every provider it starts. It gets what serving components needs and nothing
//! of the control interface beyond two read-only questions, so a compromised provider cannot
//! start, stop or relink anything, nor read the host's or wadm's state.

use serde_json::{json, Value};

/// What the application's data plane uses on the broker (from the manifest: `orders-manifest
/// data-plane` prints it as the flags `orders-nats-auth issue` reads).
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct DataPlane {
    /// The lattice name, the first token of its wRPC subjects.
    #[arg(long, default_value = "default")]
    pub lattice: String,
    /// JetStream streams the providers create and consume (`--stream`, repeatable).
    #[arg(long = "stream")]
    pub streams: Vec<String>,
    /// Key-value buckets the providers open (JetStream streams `KV_<bucket>`; `--bucket`).
    #[arg(long = "bucket")]
    pub buckets: Vec<String>,
    /// Application subjects published into those streams (`--subject`).
    #[arg(long = "subject")]
    pub subjects: Vec<String>,
    /// Named configs that hold secrets, which the data plane may not read (`--secret-config`).
    #[arg(long = "secret-config")]
    pub secret_configs: Vec<String>,
}

impl DataPlane {
    /// The flags that give this plane to `orders-nats-auth issue`, all but `--lattice`, which is
    /// the caller's (one manifest serves every lattice).
    pub fn to_args(&self) -> Vec<String> {
        let flag = |flag: &str, values: &[String]| {
            values
                .iter()
                .flat_map(|v| [format!("--{flag}"), v.clone()])
                .collect::<Vec<_>>()
        };
        [
            flag("stream", &self.streams),
            flag("bucket", &self.buckets),
            flag("subject", &self.subjects),
            flag("secret-config", &self.secret_configs),
        ]
        .concat()
    }
}

#[cfg(test)]
impl DataPlane {
    /// A small plane for the crate's tests.
    pub(crate) fn example() -> Self {
        Self {
            lattice: "default".into(),
            streams: vec!["ORDERS".into()],
            buckets: vec!["billing".into()],
            subjects: vec!["orders.placed".into()],
            secret_configs: vec!["orders-auth".into()],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// The host's control connection: control interface, events, the host's own buckets.
    Host,
    /// wadm: deploys applications through the control interface, keeps its own streams.
    Wadm,
    /// People and their tools: wash, the end-to-end tests, the benchmark.
    Admin,
    /// The data plane: the host's RPC connection and every provider.
    Rpc,
}

/// Subjects allowed and denied (a denial wins); an empty allow list allows everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Rule,
    pub subscribe: Rule,
}

impl Rule {
    pub(crate) fn to_json(&self) -> Value {
        let mut rule = json!({});
        if !self.allow.is_empty() {
            rule["allow"] = json!(self.allow);
        }
        if !self.deny.is_empty() {
            rule["deny"] = json!(self.deny);
        }
        rule
    }
}

impl Identity {
    pub const ALL: [Identity; 4] = [Self::Host, Self::Wadm, Self::Admin, Self::Rpc];

    pub fn name(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Wadm => "wadm",
            Self::Admin => "admin",
            Self::Rpc => "rpc",
        }
    }

    /// The creds file of the identity in an instance's auth folder.
    pub fn creds_file(self) -> String {
        format!("{}.creds", self.name())
    }

    /// What the identity may do; `None` for the whole lattice account.
    pub fn permissions(self, plane: &DataPlane) -> Option<Permissions> {
        match self {
            Self::Host | Self::Wadm | Self::Admin => None,
            Self::Rpc => Some(data_plane_permissions(plane)),
        }
    }
}

fn data_plane_permissions(plane: &DataPlane) -> Permissions {
    let lattice = &plane.lattice;
    let control = format!("wasmbus.ctl.v1.{lattice}");
    // Serving and calling components: wRPC under the lattice's name, the host-provider protocol
    // (links, health, shutdown, config updates), and the replies of both.
    let rpc = [
        format!("{lattice}.>"),
        format!("wasmbus.rpc.{lattice}.>"),
        "_INBOX.>".to_string(),
    ];
    let mut publish: Vec<String> = rpc.to_vec();
    // The link keeper's two read-only questions (providers/support/src/links.rs).
    publish.push(format!("{control}.link.get"));
    publish.push(format!("{control}.config.get.*"));
    publish.extend(plane.subjects.iter().cloned());
    // JetStream, for the application's own streams and buckets only: not the host's
    // (LATTICEDATA, CONFIGDATA), nor wadm's.
    publish.extend(
        ["$JS.API.INFO", "$JS.ACK.>", "$JS.FC.>"]
            .into_iter()
            .map(String::from),
    );
    let kv_streams = plane.buckets.iter().map(|b| format!("KV_{b}"));
    for stream in plane.streams.iter().cloned().chain(kv_streams) {
        publish.extend([
            format!("$JS.API.STREAM.*.{stream}"),
            format!("$JS.API.STREAM.MSG.*.{stream}"),
            format!("$JS.API.CONSUMER.*.{stream}"),
            format!("$JS.API.CONSUMER.*.{stream}.>"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.>"),
            format!("$JS.API.DIRECT.GET.{stream}"),
            format!("$JS.API.DIRECT.GET.{stream}.>"),
        ]);
    }
    publish.extend(plane.buckets.iter().map(|b| format!("$KV.{b}.>")));
    Permissions {
        publish: Rule {
            allow: publish,
            deny: plane
                .secret_configs
                .iter()
                .map(|name| format!("{control}.config.get.{name}"))
                .collect(),
        },
        subscribe: Rule {
            allow: rpc.to_vec(),
            deny: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane() -> DataPlane {
        DataPlane::example()
    }

    #[test]
    fn a_plane_passed_as_flags_reads_back_the_same() {
        #[derive(clap::Parser)]
        struct Issue {
            #[command(flatten)]
            plane: DataPlane,
        }
        let plane = plane();
        let args = [vec!["issue".to_string()], plane.to_args()].concat();
        assert_eq!(
            <Issue as clap::Parser>::try_parse_from(args).unwrap().plane,
            plane
        );
    }

    /// The subjects of `rule` allowed that `keep` selects.
    fn allowed(rule: &Rule, keep: impl Fn(&str) -> bool) -> Vec<&str> {
        rule.allow
            .iter()
            .map(String::as_str)
            .filter(|s| keep(s))
            .collect()
    }

    #[test]
    fn the_control_plane_and_people_use_the_whole_account() {
        for identity in [Identity::Host, Identity::Wadm, Identity::Admin] {
            assert_eq!(identity.permissions(&plane()), None);
        }
    }

    #[test]
    fn the_data_plane_asks_the_control_interface_only_for_links_and_plain_configs() {
        let rpc = Identity::Rpc.permissions(&plane()).unwrap();
        let control = allowed(&rpc.publish, |s| s.starts_with("wasmbus.ctl"));
        assert_eq!(
            control,
            [
                "wasmbus.ctl.v1.default.link.get",
                "wasmbus.ctl.v1.default.config.get.*"
            ]
        );
        assert_eq!(
            rpc.publish.deny,
            ["wasmbus.ctl.v1.default.config.get.orders-auth"]
        );
        assert!(allowed(&rpc.subscribe, |s| s.starts_with("wasmbus.ctl")).is_empty());
    }

    #[test]
    fn the_data_plane_reaches_only_the_applications_streams_and_buckets() {
        let rpc = Identity::Rpc.permissions(&plane()).unwrap();
        let jetstream = allowed(&rpc.publish, |s| {
            s.starts_with("$JS.API.") && s != "$JS.API.INFO"
        });
        assert!(jetstream
            .iter()
            .all(|s| s.contains(".ORDERS") || s.contains(".KV_billing")));
        assert!(rpc.publish.allow.contains(&"$KV.billing.>".to_string()));
        assert!(rpc.publish.allow.contains(&"orders.placed".to_string()));
    }
}
