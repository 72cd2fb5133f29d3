//! Writes the cargo configuration that lowers the optimisation of crates no order or host waits
//! on.
//!
//! A cold build on 2 cores keeps both cores busy from start to end, so only less compile work
//! makes it shorter. The build's packages fall into three groups by what runs them:
//!
//! - the wash CLI (opt-level 0 for the crates only it reaches). wash (lattice/wash) is built in
//!   the workspace's dependency graph, so the crates it shares with the rest are compiled once,
//!   for all of them. About 230 crates are wash's alone (its OCI, registry, keyring, Docker and
//!   project-template support); they only ever run inside `wash`, whose work (a deploy, a call,
//!   packaging a provider) waits on NATS and the disk.
//! - the control plane and the operator's tools (opt-level 1 for them and the crates only they
//!   and wash reach): wadm, which places what wadm.yaml asks for and reacts to hosts coming and
//!   going, and our command-line tools. They act on a deploy or a command, never on an order's
//!   path.
//! - everything else: the host (its runtime, and Cranelift, which compiles each component when it
//!   starts), the providers, the telemetry receiver, the benchmark and the tests. These keep the
//!   release profile, and so does every crate any of them reaches.
//!
//! Which crates fall where follows from the dependency graph as cargo resolves it for the whole
//! build (features unified), so it is computed from `cargo tree`, never listed by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::bail;

use crate::layout::Layout;
use crate::process::{command, output};

/// The workspace package whose dependency is the wash CLI.
const WASH_ROOT: &str = "orders-wash";
/// The workspace packages of the control plane and the operator's tools.
const TOOL_ROOTS: [&str; 4] = [
    "orders-wadm",
    "orders-admin",
    "orders-manifest",
    "orders-nats-auth",
];

/// A package as `cargo tree` names it: `name vX.Y.Z`.
type Package = String;

/// The roots and edges of the build's graph (every default member, features unified).
#[derive(Debug, Default)]
struct Graph {
    roots: Vec<Package>,
    edges: BTreeMap<Package, BTreeSet<Package>>,
}

impl Graph {
    /// Reads `cargo tree --prefix depth --format {p}`: each line a depth and a package, a package
    /// one deeper than the line before being its dependency.
    fn from_tree(tree: &str) -> Self {
        let mut graph = Self::default();
        let mut path: Vec<Package> = Vec::new();
        for line in tree.lines() {
            let digits = line.chars().take_while(char::is_ascii_digit).count();
            let Ok(depth) = line[..digits].parse::<usize>() else {
                continue;
            };
            let package = line[digits..]
                .split(' ')
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            if !package.contains(" v") {
                continue;
            }
            path.truncate(depth);
            if depth == 0 {
                graph.roots.push(package.clone());
            } else if let Some(parent) = path.last() {
                graph
                    .edges
                    .entry(parent.clone())
                    .or_default()
                    .insert(package.clone());
            }
            path.push(package);
        }
        graph
    }

    fn reachable<'a>(&self, starts: impl IntoIterator<Item = &'a Package>) -> BTreeSet<Package> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<Package> = starts.into_iter().cloned().collect();
        while let Some(package) = todo.pop() {
            if seen.insert(package.clone()) {
                todo.extend(self.edges.get(&package).into_iter().flatten().cloned());
            }
        }
        seen
    }

    /// The profile: wash's own crates at opt-level 0, the tools' own at 1.
    fn profile(&self) -> anyhow::Result<String> {
        let name_of = |package: &Package| package.split(" v").next().unwrap_or_default().to_owned();
        let wash: Vec<&Package> = self
            .roots
            .iter()
            .filter(|r| name_of(r) == WASH_ROOT)
            .collect();
        let tools: Vec<&Package> = self
            .roots
            .iter()
            .filter(|r| TOOL_ROOTS.contains(&name_of(r).as_str()))
            .collect();
        if wash.is_empty() || tools.len() != TOOL_ROOTS.len() {
            bail!("{WASH_ROOT} and {TOOL_ROOTS:?} must all be in the build's dependency graph");
        }
        let runtime = self.reachable(
            self.roots
                .iter()
                .filter(|root| !wash.contains(root) && !tools.contains(root)),
        );
        let tool_only: BTreeSet<Package> = self
            .reachable(tools.iter().copied())
            .difference(&runtime)
            .cloned()
            .collect();
        let wash_only: BTreeSet<Package> = self
            .reachable(wash.iter().copied())
            .into_iter()
            .filter(|p| !runtime.contains(p) && !tool_only.contains(p) && !wash.contains(&p))
            .collect();
        let mut text = String::from(
            "# Generated by `orders-ops build-profile` from the dependency graph: the crates only the wash\n\
             # CLI reaches at opt-level 0, those only the control plane and our tools reach at opt-level 1.\n\
             # Everything else keeps the release profile.\n",
        );
        for (packages, level) in [(&wash_only, 0), (&tool_only, 1)] {
            for package in packages {
                let (name, version) = package.split_once(" v").unwrap_or((package, ""));
                text.push_str(&format!(
                    "[profile.release.package.\"{name}@{version}\"]\nopt-level = {level}\n"
                ));
            }
        }
        Ok(text)
    }
}

/// Writes the profile to `out` unless it already says the same (a rewritten file would make
/// cargo rebuild).
pub fn write(layout: &Layout, out: &Path) -> anyhow::Result<()> {
    let patches = layout.cache.join("patches/config.toml");
    let tree = output(
        command("cargo", ["--config"])
            .arg(patches)
            .args([
                "tree",
                "-e",
                "normal,build",
                "--prefix",
                "depth",
                "--format",
                "{p}",
            ])
            .current_dir(&layout.root)
            // cargo's own progress (the crates it downloads on a first run) goes to the terminal.
            .stderr(std::process::Stdio::inherit()),
    )?;
    let profile = Graph::from_tree(&tree).profile()?;
    if std::fs::read_to_string(out).ok().as_deref() != Some(profile.as_str()) {
        std::fs::write(out, profile)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crates_only_wash_reaches_go_unoptimised_and_crates_only_tools_reach_lightly() {
        let tree = "\
0orders-host v0.1.0 (/w/lattice/host)
1tokio v1.0.0
0orders-wash v0.1.0 (/w/lattice/wash)
1wash v0.43.0
2oci-client v0.1.0
2tokio v1.0.0
2clap v4.0.0
0orders-wadm v0.1.0 (/w/lattice/wadm)
1wadm v0.21.1
2clap v4.0.0
1tokio v1.0.0
0orders-admin v0.1.0 (/w/tools/admin)
1clap v4.0.0
0orders-manifest v0.1.0 (/w/lattice/manifest)
0orders-nats-auth v0.1.0 (/w/lattice/nats-auth)
";
        let profile = Graph::from_tree(tree).profile().unwrap();
        assert!(profile.contains("[profile.release.package.\"wash@0.43.0\"]\nopt-level = 0\n"));
        assert!(profile.contains("[profile.release.package.\"oci-client@0.1.0\"]\nopt-level = 0\n"));
        assert!(profile.contains("[profile.release.package.\"clap@4.0.0\"]\nopt-level = 1\n"));
        assert!(profile.contains("[profile.release.package.\"wadm@0.21.1\"]\nopt-level = 1\n"));
        assert!(
            !profile.contains("tokio"),
            "the host reaches tokio: release profile"
        );
        assert!(
            !profile.contains("orders-wash@"),
            "the root itself is left as it is"
        );
    }

    #[test]
    fn a_graph_without_wash_or_a_tool_is_refused() {
        let tree = "0orders-host v0.1.0 (/w/lattice/host)\n1tokio v1.0.0\n";
        assert!(Graph::from_tree(tree).profile().is_err());
    }
}
