//! `orders-ops`: what the Makefile's targets do. `cargo ops <command>` runs it from the checkout
//! (`.cargo/config.toml`); `make run`, `make test`, `make bench`, `make doctor` and the others call
//! it.

mod bench;
mod build_profile;
mod doctor;
mod lattice;
mod layout;
mod patches;
mod process;
mod test;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::lattice::Lattice;
use crate::layout::{Instance, Layout};

#[derive(Debug, Parser)]
#[command(name = "orders-ops", about = "Operations of the orders lattice")]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// One lattice instance: run, test, bench, ha or bench-ha (each with its own ports and state
    /// in .state/<instance>).
    Lattice {
        #[command(subcommand)]
        action: Action,
    },
    /// Every test: unit, integration, contracts, end-to-end on the `test` lattice, faults, and the
    /// replicated lattice's faults.
    Test,
    /// The benchmark: the lattice against the native build (`run`), or the replicated lattice
    /// with 1 and 3 replicas (`ha`).
    Bench {
        #[arg(default_value = "run", value_parser = ["run", "ha"])]
        lattice: String,
    },
    /// Is this machine ready for `make run` and `make test`, and is a lattice in the way.
    Doctor,
    /// Makes the patched copies of upstream crates (scripts/patches) and the cargo
    /// configuration that substitutes them, unless the diffs are unchanged.
    PatchDeps,
    /// Writes the cargo configuration that builds the crates only wash and our tools reach with
    /// less optimisation.
    BuildProfile {
        /// The configuration file to write.
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Starts NATS, wadm and the host(s), and deploys the application (unchanged: left running).
    Up { instance: String },
    /// Stops every process of the instance (state kept).
    Down { instance: String },
    /// Stops the instance and wipes its state.
    Clean { instance: String },
    /// What runs, what NATS holds, and the application's state as wadm sees it.
    Status { instance: String },
    /// Waits until every link is served.
    Ready { instance: String },
    /// The instance's NATS alone, with its identities and secrets (the native benchmark's).
    Nats { instance: String },
    /// Backs up a stopped instance's state (default: into .state/backups).
    Backup {
        instance: String,
        archive: Option<PathBuf>,
    },
    /// Puts a backup in place of a stopped instance's state (which is backed up first).
    Restore { instance: String, archive: PathBuf },
    /// SIGKILL to a process, what it started and its supervisor, as a machine crash; it stays
    /// down until `revive`.
    Kill { instance: String, process: String },
    /// Starts a killed process again, as it was started.
    Revive { instance: String, process: String },
    /// SIGKILL to a process and what it started; its supervisor starts it again.
    Crash { instance: String, process: String },
}

fn main() {
    forget_what_cargo_run_set();
    if let Err(error) = run(Cli::parse()) {
        eprintln!("orders-ops: {error:#}");
        std::process::exit(1);
    }
}

/// `cargo ops` (cargo run) hands this process the variables it sets for a package's binary. The
/// cargo commands this tool runs would inherit them, and build scripts that watch them (ring's
/// watches CARGO_MANIFEST_DIR and CARGO_PKG_NAME) would run again and rebuild everything above
/// them, then once more at the next plain `make build`.
fn forget_what_cargo_run_set() {
    let set_by_cargo_run = |name: &str| {
        matches!(
            name,
            "CARGO"
                | "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "OUT_DIR"
        ) || name.starts_with("CARGO_PKG_")
    };
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| set_by_cargo_run(name))
        .collect();
    for name in names {
        std::env::remove_var(name);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let layout = Layout::find()?;
    match cli.command {
        Top::Lattice { action } => act(layout, action),
        Top::Test => test::all(&layout),
        Top::Bench { lattice } => bench::compare(&layout, &lattice),
        Top::Doctor => doctor::check(&layout),
        Top::PatchDeps => patches::prepare(&layout),
        Top::BuildProfile { out } => build_profile::write(&layout, &out),
    }
}

fn act(layout: Layout, action: Action) -> anyhow::Result<()> {
    let on = |instance: &str| Lattice::new(layout.clone(), Instance::named(instance)?);
    match action {
        Action::Up { instance } => on(&instance)?.up(),
        Action::Down { instance } => {
            on(&instance)?.down();
            Ok(())
        }
        Action::Clean { instance } => on(&instance)?.clean(),
        Action::Status { instance } => on(&instance)?.status(),
        Action::Ready { instance } => on(&instance)?.ready(),
        Action::Nats { instance } => on(&instance)?.nats_alone(),
        Action::Backup { instance, archive } => on(&instance)?.backup(archive),
        Action::Restore { instance, archive } => on(&instance)?.restore(&archive),
        Action::Kill { instance, process } => {
            on(&instance)?.processes.kill_with_supervisor(&process)
        }
        Action::Revive { instance, process } => on(&instance)?.revive(&process),
        Action::Crash { instance, process } => on(&instance)?.processes.crash(&process),
    }
}
