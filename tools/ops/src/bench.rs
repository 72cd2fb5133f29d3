//! `make bench`: the benchmark harness (bench/harness) against a private lattice with the
//! application and the hello-world floor, then against the native build (the same services as
//! plain processes, bench/native) on the same NATS set-up, then the two side by side: what the
//! platform costs. `make bench LATTICE=ha`: the `bench-ha` lattice once per replica count in
//! `BENCH_REPLICAS` ("1 3"), each on fresh state, then the runs side by side: what replication
//! costs. Figures go to the terminal and to `.state/bench-results/<time>-<instance>-<build>.json`.
//! `BENCH_ARGS="--orders 2000 --seconds 10 --connections 50"` is passed to the harness.

use std::path::PathBuf;

use crate::lattice::Lattice;
use crate::layout::{Instance, Layout};
use crate::process::{command, output, run, say};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Build {
    Lattice,
    Native,
}

pub fn compare(layout: &Layout, lattice: &str) -> anyhow::Result<()> {
    // Outside .state/bench*, which every run wipes.
    let results = layout.root.join(".state/bench-results");
    std::fs::create_dir_all(&results)?;
    let mut reports = Vec::new();
    if lattice == "ha" {
        let counts = std::env::var("BENCH_REPLICAS").unwrap_or_else(|_| "1 3".into());
        for replicas in counts.split_whitespace() {
            std::env::set_var("ORDERS_REPLICAS", replicas);
            reports.push(one_run(layout, "bench-ha", Build::Lattice, &results)?);
        }
        std::env::remove_var("ORDERS_REPLICAS");
        say("what replication costs: the runs side by side");
    } else {
        reports.push(one_run(layout, "bench", Build::Lattice, &results)?);
        reports.push(one_run(layout, "bench", Build::Native, &results)?);
        say("what the platform costs: the lattice against the native build");
    }
    run(command(layout.bin("orders-bench"), ["compare"]).args(&reports))?;
    std::fs::copy(&reports[0], results.join("latest.json"))?;
    Ok(())
}

/// One benchmark on fresh state of `instance`, of the lattice or of the native build on the
/// instance's NATS alone; the report's path. The instance is stopped afterwards, pass or fail.
fn one_run(
    layout: &Layout,
    instance: &str,
    build: Build,
    results: &std::path::Path,
) -> anyhow::Result<PathBuf> {
    let lattice = Lattice::new(layout.clone(), Instance::named(instance)?)?;
    let result = measure(&lattice, build, results);
    say(format!(
        "stopping the benchmark (logs kept in {})",
        lattice.state().join("logs").display()
    ));
    lattice.down();
    result
}

fn measure(lattice: &Lattice, build: Build, results: &std::path::Path) -> anyhow::Result<PathBuf> {
    let (layout, instance) = (&lattice.layout, &lattice.instance);
    let started = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let kind = match build {
        Build::Lattice => "lattice",
        Build::Native => "native",
    };
    let out = results.join(format!(
        "{}-{}-r{}-{kind}.json",
        started.replace(':', ""),
        instance.name,
        instance.replicas
    ));
    lattice.clean()?;
    let mut harness = command(layout.bin("orders-bench"), ["run", "--state-dir"]);
    harness
        .arg(lattice.state())
        .arg("--wrk-scripts")
        .arg(layout.root.join("bench/wrk"))
        .arg("--out")
        .arg(&out);
    let described = match build {
        Build::Native => {
            say(format!(
                "starting NATS alone for the native build ({})",
                instance.nats_port
            ));
            lattice.nats_alone()?;
            harness
                .arg("--native")
                .arg(layout.bin("orders-native"))
                .arg("--native-port")
                .arg((instance.http_port + 101).to_string());
            format!(
                "native: billing, order and notify as processes, {} NATS server(s)",
                instance.nats_servers
            )
        }
        Build::Lattice => {
            say(format!(
                "starting a fresh benchmark lattice '{}' ({} NATS server(s) from {}, {} host(s), {} replica(s); HTTP {})",
                instance.name, instance.nats_servers, instance.nats_port, instance.hosts, instance.replicas, instance.http_port
            ));
            lattice.up()?;
            format!(
                "{}: {} NATS server(s), {} host(s), {} replica(s) of every stream and bucket",
                instance.name, instance.nats_servers, instance.hosts, instance.replicas
            )
        }
    };
    if let Ok(args) = std::env::var("BENCH_ARGS") {
        harness.args(args.split_whitespace());
    }
    let commit = output(command("git", ["rev-parse", "--short", "HEAD"]).current_dir(&layout.root))
        .map(|commit| commit.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    // The load enters through the first host's HTTP listener; every host's component instances
    // take their share of it, as wRPC subscribers of the same queue groups. The native build's
    // services each listen on their own port; the harness sends each path there.
    let nats = [
        ("ORDERS_NATS_URL", instance.nats_urls()),
        (
            "ORDERS_NATS_CREDS",
            lattice.admin_creds().display().to_string(),
        ),
    ];
    run(harness
        .envs(nats.clone())
        .env(
            "ORDERS_BASE_URL",
            format!("http://127.0.0.1:{}", instance.http_port),
        )
        .env("ORDERS_MONITOR_URLS", instance.monitor_urls())
        .env("ORDERS_ADMIN_TOKEN", lattice.admin_token()?)
        .env("ORDERS_COMMIT", commit)
        .env("ORDERS_BENCH_STARTED", &started)
        .env("ORDERS_BENCH_LATTICE", described))?;
    say("the books after the run: each balance against its ledger, each debit against its notification");
    run(command(layout.bin("orders-admin"), ["audit", "--wait", "30"]).envs(nats))?;
    Ok(out)
}
