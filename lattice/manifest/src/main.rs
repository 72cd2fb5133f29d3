//! `orders-manifest`: every deployed copy of `wadm.yaml` is derived from the one we keep, never
//! edited by hand.
//!
//!   orders-manifest render  --nats-port P --http-port P [--nats-servers N --replicas N --hosts N]
//!                           [--overlay FILE] [--providers-as-processes] wadm.yaml    (a local instance)
//!   orders-manifest cluster --settings deploy/k8s/cluster.yaml wadm.yaml           (Kubernetes)
//!   orders-manifest refs    --settings deploy/k8s/cluster.yaml wadm.yaml           (what to push where)
//!   orders-manifest schema                                                          (wadm's OAM JSON schema)
//!   orders-manifest data-plane wadm.yaml          (the streams, subjects, buckets and secret configs the
//!                                                  data plane's NATS permissions cover, as orders-nats-auth flags)

mod cluster;
mod data_plane;
mod oam;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::cluster::ClusterSettings;
use crate::oam::{Application, LocalInstance};

#[derive(Parser)]
#[command(about = "Derives the deployed copies of wadm.yaml")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The manifest for a local lattice instance on its own ports, artifacts as absolute file:// paths.
    Render {
        #[arg(long)]
        nats_port: u16,
        #[arg(long)]
        http_port: u16,
        /// NATS servers of the instance's cluster, on consecutive ports from `nats_port`.
        #[arg(long, default_value_t = 1)]
        nats_servers: u16,
        /// Copies the JetStream providers keep of each stream and bucket they create.
        #[arg(long, default_value_t = 1)]
        replicas: u16,
        /// Hosts of the instance (labelled `host: "1"`, `"2"`...): with more than one, everything
        /// runs on every host and each host has its own HTTP listener, from `http_port` on.
        #[arg(long, default_value_t = 1)]
        hosts: u16,
        /// An application fragment merged in: its new components are added, the traits of
        /// components that already exist are appended (the benchmark adds hello world this way).
        #[arg(long)]
        overlay: Option<PathBuf>,
        /// Runs every capability our host would serve in its process (`wasmcloud+builtin://`) as
        /// a provider process instead, from its archive.
        #[arg(long)]
        providers_as_processes: bool,
        manifest: PathBuf,
    },
    /// The manifest for the Kubernetes lattice: pinned OCI refs, providers on every host, the hub's
    /// JetStream domain, the HTTP listener on all interfaces.
    Cluster {
        #[arg(long)]
        settings: PathBuf,
        manifest: PathBuf,
    },
    /// One line per artifact the cluster pulls, `<name> <local file> <OCI ref>`: every component,
    /// then the host image (deploy/k8s/push.sh builds and pushes them).
    Refs {
        #[arg(long)]
        settings: PathBuf,
        manifest: PathBuf,
    },
    /// wadm's OAM JSON schema (draft-07), generated from wadm-types, the crate wadm itself parses with.
    Schema,
    /// What the data plane uses on the broker, as `orders-nats-auth issue` flags, one per line.
    DataPlane { manifest: PathBuf },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Render {
            nats_port,
            http_port,
            nats_servers,
            replicas,
            hosts,
            overlay,
            providers_as_processes,
            manifest,
        } => {
            let mut app = Application::read(&manifest)?;
            if let Some(overlay) = overlay {
                app.merge(Application::read(&overlay)?)?;
            }
            if providers_as_processes {
                app.builtins_as_processes()?;
            }
            app.resolve_local_files(&directory_of(&manifest)?)?;
            app.use_local_instance(&LocalInstance {
                nats_port,
                nats_servers,
                replicas,
                http_port,
                hosts,
            })?;
            print!("{}", app.to_yaml()?);
        }
        Command::Cluster { settings, manifest } => {
            let settings = ClusterSettings::read(&settings)?;
            let mut app = Application::read(&manifest)?;
            settings.adapt(&mut app)?;
            print!("{}{}", cluster::GENERATED_HEADER, app.to_yaml()?);
        }
        Command::Refs { settings, manifest } => {
            let settings = ClusterSettings::read(&settings)?;
            let app = Application::read(&manifest)?;
            let root = directory_of(&manifest)?;
            for artifact in app.local_artifacts()? {
                println!(
                    "{} {} {}",
                    artifact.name,
                    root.join(&artifact.relative_path).display(),
                    settings.oci_ref(&artifact.name)
                );
            }
            println!(
                "{} {} {}",
                cluster::HOST_IMAGE,
                root.join(cluster::HOST_IMAGE_ARCHIVE).display(),
                settings.host_image()
            );
        }
        Command::DataPlane { manifest } => {
            let plane = data_plane::of(&Application::read(&manifest)?)?;
            for arg in plane.to_args() {
                println!("{arg}");
            }
        }
        Command::Schema => {
            let schema = schemars::schema_for!(wadm_types::Manifest);
            println!("{}", serde_json::to_string_pretty(&schema)?);
        }
    }
    Ok(())
}

fn directory_of(manifest: &Path) -> Result<PathBuf> {
    let absolute = std::fs::canonicalize(manifest)
        .with_context(|| format!("cannot find {}", manifest.display()))?;
    Ok(absolute
        .parent()
        .expect("a file has a directory")
        .to_path_buf())
}
