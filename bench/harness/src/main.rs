//! `make bench`: what an order costs on the lattice compared with the platform's floor, measured
//! side by side in one run on one machine (only ratios travel between machines).
//!
//! First, `GET /List?user=` of one user while notify's bucket holds 1,000 notifications, then
//! 100,000 (`--list-sizes`): listing one user's must not slow down with everyone's.
//!
//! After a warm-up, each of `--runs` rounds measures, one after the other:
//! 1. `GET /Hello` (a hello-world component behind the same HTTP provider) with wrk: the floor;
//! 2. `POST /Order` alone with wrk, same connections, users pre-funded so every order is paid:
//!    billing's consumer paused meanwhile, then resumed and the backlog drained;
//! 3. `POST /Order` again, billing and notify settling the orders meanwhile; the backlog drained;
//! 4. the whole pipeline: N orders at max rate, each timed from POST to payment result on the
//!    broker and to the notification stored for `/List`;
//! 5. a busy account: M orders of one user from 8 clients at once (its orders contend for one
//!    balance);
//!
//! each phase with the CPU seconds of every lattice process (NATS, wadm, the hosts, each
//! provider) and the messages NATS received. Then once, N orders at a fixed rate of half the
//! median max rate (latency at a load the lattice keeps up with). The report gives every run and
//! the medians with their min–max, which say more than any single run on a shared machine.
//!
//! With `--native`, the same phases measure the native build instead (`orders-native`: the same
//! services as plain processes on the same NATS; this starts them), and `orders-bench compare`
//! puts the two reports side by side: what the platform costs.
//!
//! `orders-ops bench` (tools/ops) starts the lattice (or its NATS server alone, for the native
//! build) and runs this with ORDERS_BASE_URL / ORDERS_NATS_URL set.

mod compare;
mod listing;
mod native;
mod nats_counters;
mod pause;
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

use crate::nats_counters::NatsCounters;
use crate::pipeline::{Pace, Pipeline, PipelineFigures};
use crate::processes::Process;
use crate::report::{Machine, PhaseCpu, Report, Run, Settings, Summary};
use crate::wrk::Load;

#[derive(Parser)]
#[command(about = "Benchmarks the orders lattice against a hello-world floor and a native build")]
enum Command {
    /// Runs the benchmark on a lattice that is up (or on the native build, with `--native`).
    Run(Box<Args>),
    /// Puts reports side by side (medians [min - max]), the first against the last; when the
    /// last is the native build's, with the platform's targets against it.
    Compare { reports: Vec<PathBuf> },
}

#[derive(clap::Args)]
struct Args {
    /// The lattice instance's state directory (pid files of NATS, wadm and the hosts).
    #[arg(long)]
    state_dir: PathBuf,
    /// Directory of the wrk Lua scripts.
    #[arg(long)]
    wrk_scripts: PathBuf,
    /// Where the JSON report is written.
    #[arg(long)]
    out: PathBuf,
    /// NATS monitoring endpoints, comma-separated (every server of the lattice).
    #[arg(long, env = "ORDERS_MONITOR_URLS")]
    nats_monitors: String,
    /// Rounds of hello, POST /Order and pipeline phases; the report gives their medians.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// HTTP connections (wrk) and concurrent clients (pipeline at max rate).
    #[arg(long, default_value_t = 50)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 5)]
    warmup_seconds: u64,
    /// Orders pushed through the pipeline in each run at max rate, and at the fixed rate.
    #[arg(long, default_value_t = 4_000)]
    orders: usize,
    /// Orders of one account, placed by 8 clients at once, in each run.
    #[arg(long, default_value_t = 1_000)]
    hot_orders: usize,
    /// The fixed-rate phase lasts at most this long (fewer orders when the rate is low).
    #[arg(long, default_value_t = 30)]
    fixed_rate_max_seconds: u64,
    /// Orders per second for the fixed-rate phase (default: half the median max rate).
    #[arg(long)]
    fixed_rate: Option<f64>,
    #[arg(long, default_value_t = 64)]
    users: usize,
    /// Notifications stored in all when `GET /List?user=` is timed, ascending.
    #[arg(long, value_delimiter = ',', default_value = "1000,100000")]
    list_sizes: Vec<usize>,
    /// `GET /List?user=` requests timed at each size.
    #[arg(long, default_value_t = 200)]
    list_requests: usize,
    #[arg(long, env = "ORDERS_COMMIT", default_value = "unknown")]
    commit: String,
    /// When the run began (UTC, RFC 3339), for the record.
    #[arg(long, env = "ORDERS_BENCH_STARTED", default_value = "unknown")]
    started_at: String,
    /// The lattice's layout, for the record (`orders-ops bench`: instance, servers, hosts, replicas).
    #[arg(long, env = "ORDERS_BENCH_LATTICE", default_value = "unknown")]
    lattice: String,
    /// Measures the native build instead: this `orders-native` binary, started here as billing,
    /// order and notify on the instance's NATS server (which must be up without a lattice).
    #[arg(long)]
    native: Option<PathBuf>,
    /// The first of the native services' three HTTP ports.
    #[arg(long, default_value_t = 28101)]
    native_port: u16,
}

/// Orders of the user whose notifications are listed.
const LISTED_ORDERS: usize = 20;

/// Clients placing the busy account's orders at once.
const HOT_CLIENTS: usize = 8;

/// Each user gets the largest deposit allowed; orders are of 1, so none is refused for money.
const DEPOSIT: i64 = 1_000_000_000;

/// What the lattice had spent at one moment: CPU seconds per process and messages NATS received.
struct Snapshot {
    at: Instant,
    cpu: BTreeMap<String, f64>,
    messages: u64,
}

/// Takes snapshots; the difference of two is what a phase cost.
struct Meter {
    processes: Vec<Process>,
    nats: NatsCounters,
}

impl Meter {
    async fn snapshot(&self) -> Result<Snapshot> {
        Ok(Snapshot {
            at: Instant::now(),
            cpu: processes::cpu_snapshot(&self.processes),
            messages: self.nats.messages_in().await?,
        })
    }

    /// Ends a phase that began at `before` and served `units` requests or orders (0: not per
    /// unit).
    /// `orders` orders through `pipeline` from `concurrency` clients at max rate, measured as
    /// the phase `name`; the streams are drained after.
    async fn at_max_rate(
        &self,
        pipeline: &Pipeline,
        name: &str,
        concurrency: usize,
        orders: usize,
    ) -> Result<(PipelineFigures, PhaseCpu)> {
        let before = self.snapshot().await?;
        let figures = pipeline.run(Pace::MaxRate { concurrency }, orders).await?;
        let cost = self.phase(name, figures.orders as u64, &before).await?;
        println!("    {}", figures.in_words());
        drain(&pipeline.nats).await?;
        Ok((figures, cost))
    }

    async fn phase(&self, name: &str, units: u64, before: &Snapshot) -> Result<PhaseCpu> {
        let after = self.snapshot().await?;
        let spent = after
            .cpu
            .iter()
            .map(|(p, s)| (p.clone(), s - before.cpu.get(p).copied().unwrap_or(0.0)))
            .collect();
        Ok(PhaseCpu::new(
            name,
            units,
            (after.at - before.at).as_secs_f64(),
            spent,
            after.messages.saturating_sub(before.messages),
        ))
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    match Command::parse() {
        Command::Run(args) => run(*args).await,
        Command::Compare { reports } => {
            println!("{}", compare::table(&reports)?);
            Ok(())
        }
    }
}

async fn run(args: Args) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let mut lattice = Lattice::from_env();
    let mut processes = processes::of_instance(&args.state_dir)?;
    let native = match &args.native {
        Some(binary) => {
            step("starting the native build: billing, order and notify as processes");
            let services = native::NativeServices::start(
                binary,
                &args.state_dir,
                &lattice.nats_url,
                args.native_port,
            )
            .await?;
            lattice = lattice.with_routes(services.routes.clone());
            processes.extend(services.processes());
            Some(services)
        }
        None => None,
    };
    let meter = Meter {
        processes,
        nats: NatsCounters::new(&args.nats_monitors),
    };

    let user_prefix = orders_e2e::unique("bench");
    step(&format!("funding {} users", args.users));
    for n in 0..args.users {
        lattice
            .create_user(&format!("{user_prefix}-{n}"), DEPOSIT)
            .await;
    }

    step(&format!(
        "GET /List?user= of one user with {LISTED_ORDERS} notifications, among {} notifications in all",
        args.list_sizes
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", then ")
    ));
    let list = listing::Listing {
        lattice: &lattice,
        reader: format!("{user_prefix}-reader"),
        readers_orders: LISTED_ORDERS,
        requests: args.list_requests,
    }
    .run(&args.list_sizes)
    .await?;

    let load = |url: &str, script: &'static str, script_args: Vec<String>, seconds: u64| {
        let url = lattice.url(url);
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
    let pipeline = Pipeline {
        order_url: lattice.url("/Order"),
        nats: lattice.nats().await,
        user_prefix: user_prefix.clone(),
        keys,
    };
    // The busy account: every order for user 0 (a merchant, or a user with many devices).
    let hot_account = Pipeline {
        keys: pipeline.keys[..1].to_vec(),
        ..pipeline.clone()
    };
    let js = async_nats::jetstream::new(pipeline.nats.clone());

    step("warm-up: GET /Hello, then POST /Order, then the backlog drained");
    let before = meter.snapshot().await?;
    load("/Hello", "report.lua", vec![], args.warmup_seconds)?;
    load(
        "/Order",
        "order.lua",
        order_args.clone(),
        args.warmup_seconds,
    )?;
    drain(&pipeline.nats).await?;
    let mut other_phases = vec![meter.phase("warm-up", 0, &before).await?];

    let mut runs = Vec::new();
    for run in 1..=args.runs {
        step(&format!(
            "run {run} of {}: GET /Hello for {} s",
            args.runs, args.seconds
        ));
        let before = meter.snapshot().await?;
        let hello = load("/Hello", "report.lua", vec![], args.seconds)?;
        let hello_cost = meter.phase("GET /Hello", hello.requests, &before).await?;
        println!("    {}", hello.in_words());

        step(&format!(
            "run {run}: POST /Order alone for {} s (billing paused)",
            args.seconds
        ));
        pause::pause_settling(&js, Duration::from_secs(args.seconds + 60)).await?;
        let before = meter.snapshot().await?;
        let order_alone = load("/Order", "order.lua", order_args.clone(), args.seconds)?;
        let order_alone_cost = meter
            .phase("POST /Order alone", order_alone.requests, &before)
            .await?;
        pause::resume_settling(&js).await?;
        println!("    {}", order_alone.in_words());
        drain(&pipeline.nats).await?;

        step(&format!(
            "run {run}: POST /Order for {} s, the pipeline settling them meanwhile",
            args.seconds
        ));
        let before = meter.snapshot().await?;
        let order = load("/Order", "order.lua", order_args.clone(), args.seconds)?;
        // Not per order: billing and notify settle these orders during and after the phase.
        let order_cost = meter.phase("POST /Order", 0, &before).await?;
        println!("    {}", order.in_words());
        drain(&pipeline.nats).await?;

        step(&format!(
            "run {run}: the pipeline, {} orders at max rate",
            args.orders
        ));
        let (max_rate, pipeline_cost) = meter
            .at_max_rate(
                &pipeline,
                "pipeline max rate",
                args.connections,
                args.orders,
            )
            .await?;

        step(&format!(
            "run {run}: a busy account, {} orders of one user from {HOT_CLIENTS} clients",
            args.hot_orders
        ));
        let (hot, hot_cost) = meter
            .at_max_rate(&hot_account, "busy account", HOT_CLIENTS, args.hot_orders)
            .await?;
        runs.push(Run {
            hello,
            order_alone,
            order,
            pipeline_max_rate: max_rate,
            busy_account: hot,
            phases: vec![
                hello_cost,
                order_alone_cost,
                order_cost,
                pipeline_cost,
                hot_cost,
            ],
        });
    }
    let summary = Summary::of(&runs);

    let rate = args
        .fixed_rate
        .unwrap_or((summary.orders_per_s.median / 2.0).max(1.0));
    let fixed_orders = args
        .orders
        .min((rate * args.fixed_rate_max_seconds as f64) as usize)
        .max(1);
    let settings = Settings {
        build: if native.is_some() {
            "native"
        } else {
            "lattice"
        },
        lattice: args.lattice,
        runs: args.runs,
        connections: args.connections,
        seconds_per_http_phase: args.seconds,
        warmup_seconds: args.warmup_seconds,
        orders_per_pipeline_run: args.orders,
        busy_account_orders_per_run: args.hot_orders,
        users: args.users,
        fixed_rate_asked_per_s: args.fixed_rate,
    };
    step(&format!(
        "the pipeline, {fixed_orders} orders at {rate:.0}/s ({})",
        settings.fixed_rate_in_words()
    ));
    let before = meter.snapshot().await?;
    let fixed_rate = pipeline
        .run(Pace::FixedRate { per_second: rate }, fixed_orders)
        .await?;
    other_phases.push(
        meter
            .phase("pipeline fixed rate", fixed_rate.orders as u64, &before)
            .await?,
    );
    println!("    {}", fixed_rate.in_words());

    let report = Report {
        started_at: args.started_at,
        commit: args.commit,
        machine: machine()?,
        targets_met: (settings.build == "lattice")
            .then(|| Report::targets(&summary, &settings, &fixed_rate, &list)),
        settings,
        list,
        summary,
        runs,
        pipeline_fixed_rate: fixed_rate,
        other_phases,
        peak_rss_mib: meter
            .processes
            .iter()
            .filter_map(|p| Some((p.name.clone(), p.peak_rss_mib()?)))
            .collect(),
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
        for (stream, consumer) in [("ORDERS", "billing"), ("PAYMENTS", "notify")] {
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
