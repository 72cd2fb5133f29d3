//! `make bench`: what an order costs on the lattice compared with the platform's floor, measured
//! side by side in one run on one machine (only ratios travel between machines).
//!
//! 1. `GET /Hello` (a hello-world component behind the same HTTP provider) with wrk: the floor;
//! 2. `POST /Order` with wrk, same connections, users pre-funded so every order is paid;
//! 3. the whole pipeline: N orders at max rate, then at a fixed rate of half the sustained max,
//!    timed from POST to payment result on the broker and to the notification stored for `/List`;
//! 4. peak RSS and CPU seconds of NATS, wadm, the host and each provider.
//!
//! scripts/bench.sh starts the lattice and runs this with ORDERS_BASE_URL / ORDERS_NATS_URL set.

mod pipeline;
mod processes;
mod report;
mod wrk;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Parser;
use orders_e2e::Lattice;

use crate::pipeline::{Pace, Pipeline};
use crate::report::{Machine, PhaseCpu, Report, Settings};
use crate::wrk::Load;

#[derive(Parser)]
#[command(about = "Benchmarks the orders lattice against a hello-world floor")]
struct Args {
    /// The lattice instance's state directory (pid files of NATS, wadm and the host).
    #[arg(long)]
    state_dir: PathBuf,
    /// Directory of the wrk Lua scripts.
    #[arg(long)]
    wrk_scripts: PathBuf,
    /// Where the JSON report is written.
    #[arg(long)]
    out: PathBuf,
    /// HTTP connections (wrk) and concurrent clients (pipeline at max rate).
    #[arg(long, default_value_t = 50)]
    connections: usize,
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    #[arg(long, default_value_t = 5)]
    warmup_seconds: u64,
    /// Orders pushed through the pipeline per pace.
    #[arg(long, default_value_t = 10_000)]
    orders: usize,
    /// The fixed-rate phase lasts at most this long (fewer orders when the rate is low).
    #[arg(long, default_value_t = 60)]
    fixed_rate_max_seconds: u64,
    /// Orders per second for the fixed-rate phase (default: half the sustained max).
    #[arg(long)]
    fixed_rate: Option<f64>,
    #[arg(long, default_value_t = 64)]
    users: usize,
    #[arg(long, env = "ORDERS_COMMIT", default_value = "unknown")]
    commit: String,
    /// When the run began (UTC, RFC 3339), for the record.
    #[arg(long, env = "ORDERS_BENCH_STARTED", default_value = "unknown")]
    started_at: String,
}

/// Each user gets the largest deposit allowed; orders are of 1, so none is refused for money.
const DEPOSIT: i64 = 1_000_000_000;

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let lattice = Lattice::from_env();
    let processes = processes::of_instance(&args.state_dir)?;
    let mut cpu_seconds = Vec::new();
    // Ends a phase: what each process spent since `before` (a snapshot and its time), and per
    // request or order when the phase served `units` of them.
    let mut phase = |name: &str, units: u64, before: &(Instant, BTreeMap<String, f64>)| {
        let after = (Instant::now(), processes::cpu_snapshot(&processes));
        cpu_seconds.push(PhaseCpu::new(
            name,
            units,
            (after.0 - before.0).as_secs_f64(),
            after
                .1
                .iter()
                .map(|(p, s)| (p.clone(), s - before.1.get(p).copied().unwrap_or(0.0)))
                .collect(),
        ));
        after
    };

    let user_prefix = orders_e2e::unique("bench");
    step(&format!("funding {} users", args.users));
    for n in 0..args.users {
        lattice
            .create_user(&format!("{user_prefix}-{n}"), DEPOSIT)
            .await;
    }

    let load = |url: &str, script: &'static str, script_args: Vec<String>, seconds: u64| {
        let url = format!("{}{url}", lattice.base_url);
        let load = Load {
            url: &url,
            script,
            script_args: &script_args,
            connections: args.connections,
            duration: Duration::from_secs(seconds),
        };
        load.run(&args.wrk_scripts)
    };
    let keys: Vec<String> = (0..args.users)
        .map(|n| lattice.key(&format!("{user_prefix}-{n}")))
        .collect();
    let order_args = [
        vec![user_prefix.clone(), args.users.to_string()],
        keys.clone(),
    ]
    .concat();

    let mut cpu = (Instant::now(), processes::cpu_snapshot(&processes));
    step("GET /Hello: warm-up, then measured");
    load("/Hello", "report.lua", vec![], args.warmup_seconds)?;
    cpu = phase("warm-up hello", 0, &cpu);
    let hello = load("/Hello", "report.lua", vec![], args.seconds)?;
    cpu = phase("GET /Hello", hello.requests, &cpu);
    println!("    {hello:?}");

    step("POST /Order: warm-up, then measured");
    load(
        "/Order",
        "order.lua",
        order_args.clone(),
        args.warmup_seconds,
    )?;
    let pipeline = Pipeline {
        base_url: lattice.base_url.clone(),
        nats: lattice.nats().await,
        user_prefix: user_prefix.clone(),
        keys,
    };
    drain(&pipeline.nats).await?;
    cpu = phase("warm-up order", 0, &cpu);
    let order = load("/Order", "order.lua", order_args, args.seconds)?;
    // Not per order: the pipeline settles these orders during and after this phase.
    cpu = phase("POST /Order", 0, &cpu);
    println!("    {order:?}");
    step("waiting for billing and notify to settle the orders wrk placed");
    drain(&pipeline.nats).await?;
    cpu = phase("drain after wrk", 0, &cpu);

    step(&format!("pipeline: {} orders at max rate", args.orders));
    let max_rate = pipeline
        .run(
            Pace::MaxRate {
                concurrency: args.connections,
            },
            args.orders,
        )
        .await?;
    cpu = phase("pipeline max rate", max_rate.orders as u64, &cpu);
    println!("    {max_rate:?}");

    let rate = args
        .fixed_rate
        .unwrap_or((max_rate.processed_per_s / 2.0).max(1.0));
    let fixed_orders = args
        .orders
        .min((rate * args.fixed_rate_max_seconds as f64) as usize)
        .max(1);
    step(&format!("pipeline: {fixed_orders} orders at {rate:.0}/s"));
    let fixed_rate = pipeline
        .run(Pace::FixedRate { per_second: rate }, fixed_orders)
        .await?;
    phase("pipeline fixed rate", fixed_rate.orders as u64, &cpu);
    println!("    {fixed_rate:?}");

    let ratios = Report::ratios(&hello, &order, &max_rate);
    let report = Report {
        started_at: args.started_at,
        commit: args.commit,
        machine: machine()?,
        settings: Settings {
            connections: args.connections,
            seconds_per_http_phase: args.seconds,
            warmup_seconds: args.warmup_seconds,
            users: args.users,
        },
        targets_met: Report::targets(&ratios, &fixed_rate),
        ratios,
        hello,
        order,
        pipeline_max_rate: max_rate,
        pipeline_fixed_rate: fixed_rate,
        peak_rss_mib: processes
            .iter()
            .filter_map(|p| Some((p.name.clone(), p.peak_rss_mib()?)))
            .collect(),
        cpu_seconds,
    };
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)?;
    println!("\n{}", report.table());
    println!("figures written to {}", args.out.display());
    Ok(())
}

fn step(what: &str) {
    eprintln!("==> {what}");
}

/// Waits until billing and notify have settled everything on the broker.
async fn drain(nats: &async_nats::Client) -> Result<()> {
    let js = async_nats::jetstream::new(nats.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let mut pending = 0;
        for (stream, consumer) in [
            ("ORDERS", "billing"),
            ("ORDERS", "notify-orders"),
            ("PAYMENTS", "notify"),
        ] {
            let info = js
                .get_stream(stream)
                .await?
                .consumer_info(consumer)
                .await
                .map_err(|e| anyhow::anyhow!("consumer {consumer} on {stream}: {e}"))?;
            pending += info.num_pending + info.num_ack_pending as u64;
        }
        if pending == 0 {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("{pending} messages still pending after 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn machine() -> Result<Machine> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo")?;
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    let mem_kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    Ok(Machine {
        cpus: std::thread::available_parallelism()?.get(),
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_default(),
        memory_gib: mem_kib / 1024.0 / 1024.0,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")?
            .trim()
            .to_string(),
    })
}
