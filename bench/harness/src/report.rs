//! The benchmark's figures: one JSON document (kept for tracking over time) and the same figures
//! as a table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::pipeline::PipelineFigures;
use crate::wrk::HttpFigures;

/// The targets, as ratios measured in one run on one machine.
pub const ORDER_TO_HELLO_TARGET: f64 = 0.70;
pub const PIPELINE_TO_HELLO_TARGET: f64 = 0.50;
pub const NOTIFIED_P99_TARGET_MS: f64 = 50.0;

#[derive(Serialize)]
pub struct Report {
    pub started_at: String,
    pub commit: String,
    pub machine: Machine,
    pub settings: Settings,
    pub hello: HttpFigures,
    pub order: HttpFigures,
    pub pipeline_max_rate: PipelineFigures,
    pub pipeline_fixed_rate: PipelineFigures,
    pub ratios: Ratios,
    pub targets_met: Targets,
    pub peak_rss_mib: BTreeMap<String, f64>,
    /// CPU seconds each process used per phase, in run order (2 cores = at most 2 s per second).
    pub cpu_seconds: Vec<PhaseCpu>,
}

#[derive(Serialize)]
pub struct PhaseCpu {
    pub phase: String,
    /// Requests or orders the phase completed (0: not a measured phase).
    pub units: u64,
    pub wall_seconds: f64,
    pub by_process: BTreeMap<String, f64>,
    /// CPU milliseconds the whole lattice spent per request or order: steadier from run to run
    /// than throughput, which moves with whatever else the machine is doing.
    pub cpu_ms_per_unit: Option<f64>,
}

impl PhaseCpu {
    pub fn new(
        phase: &str,
        units: u64,
        wall_seconds: f64,
        by_process: BTreeMap<String, f64>,
    ) -> Self {
        let cpu_ms_per_unit =
            (units > 0).then(|| by_process.values().sum::<f64>() * 1e3 / units as f64);
        Self {
            phase: phase.to_string(),
            units,
            wall_seconds,
            by_process,
            cpu_ms_per_unit,
        }
    }
}

#[derive(Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
}

#[derive(Serialize)]
pub struct Settings {
    pub connections: usize,
    pub seconds_per_http_phase: u64,
    pub warmup_seconds: u64,
    pub users: usize,
}

#[derive(Serialize)]
pub struct Ratios {
    pub order_rps_to_hello_rps: f64,
    pub pipeline_orders_per_s_to_hello_rps: f64,
}

#[derive(Serialize)]
pub struct Targets {
    pub order_rps_at_least_70_percent_of_hello: bool,
    pub pipeline_at_least_50_percent_of_hello: bool,
    pub notified_p99_at_most_50_ms_at_half_max_rate: bool,
}

impl Report {
    pub fn ratios(hello: &HttpFigures, order: &HttpFigures, pipeline: &PipelineFigures) -> Ratios {
        Ratios {
            order_rps_to_hello_rps: order.requests_per_s / hello.requests_per_s,
            pipeline_orders_per_s_to_hello_rps: pipeline.processed_per_s / hello.requests_per_s,
        }
    }

    pub fn targets(ratios: &Ratios, half_rate: &PipelineFigures) -> Targets {
        Targets {
            order_rps_at_least_70_percent_of_hello: ratios.order_rps_to_hello_rps
                >= ORDER_TO_HELLO_TARGET,
            pipeline_at_least_50_percent_of_hello: ratios.pipeline_orders_per_s_to_hello_rps
                >= PIPELINE_TO_HELLO_TARGET,
            notified_p99_at_most_50_ms_at_half_max_rate: half_rate.notified_p99_ms
                <= NOTIFIED_P99_TARGET_MS,
        }
    }

    pub fn table(&self) -> String {
        let mut t = String::new();
        let m = &self.machine;
        let _ = writeln!(
            t,
            "machine: {} cpus ({}), {:.0} GiB, Linux {}; commit {}; {}",
            m.cpus, m.cpu_model, m.memory_gib, m.kernel, self.commit, self.started_at
        );
        let _ = writeln!(
            t,
            "\n{:<34} {:>10} {:>9} {:>9} {:>7}",
            format!("HTTP (wrk, {} connections)", self.settings.connections),
            "req/s",
            "p50 ms",
            "p99 ms",
            "errors"
        );
        for (name, f) in [
            ("GET /Hello (floor)", &self.hello),
            ("POST /Order", &self.order),
        ] {
            let _ = writeln!(
                t,
                "{name:<34} {:>10.0} {:>9.2} {:>9.2} {:>7}",
                f.requests_per_s, f.p50_ms, f.p99_ms, f.errors
            );
        }
        let _ = writeln!(
            t,
            "\n{:<26} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6}",
            "pipeline (POST -> ...)",
            "orders",
            "done/s",
            "paid p50",
            "paid p99",
            "note p50",
            "note p99",
            "note max",
            "lost"
        );
        for f in [&self.pipeline_max_rate, &self.pipeline_fixed_rate] {
            let _ = writeln!(
                t,
                "{:<26} {:>7} {:>9.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>6}",
                f.pace,
                f.orders,
                f.processed_per_s,
                f.paid_p50_ms,
                f.paid_p99_ms,
                f.notified_p50_ms,
                f.notified_p99_ms,
                f.notified_max_ms,
                f.refused + f.not_paid + f.unfinished
            );
        }
        for f in [&self.pipeline_max_rate, &self.pipeline_fixed_rate] {
            for (reason, count) in &f.refusals {
                let _ = writeln!(t, "  {}: {count} POST(s) not accepted: {reason}", f.pace);
            }
        }
        let r = &self.ratios;
        let g = &self.targets_met;
        let mark = |met: bool| if met { "met" } else { "MISSED" };
        let _ = writeln!(t, "\nratios and targets");
        let _ = writeln!(
            t,
            "  POST /Order req/s / hello req/s        {:>6.1}%  (target >= 70%: {})",
            r.order_rps_to_hello_rps * 100.0,
            mark(g.order_rps_at_least_70_percent_of_hello)
        );
        let _ = writeln!(
            t,
            "  pipeline orders/s / hello req/s        {:>6.1}%  (target >= 50%: {})",
            r.pipeline_orders_per_s_to_hello_rps * 100.0,
            mark(g.pipeline_at_least_50_percent_of_hello)
        );
        let _ = writeln!(
            t,
            "  p99 POST -> notification at half rate  {:>6.1} ms (target <= 50 ms: {})",
            self.pipeline_fixed_rate.notified_p99_ms,
            mark(g.notified_p99_at_most_50_ms_at_half_max_rate)
        );
        let _ = writeln!(t, "\npeak RSS (MiB)");
        for (name, mib) in &self.peak_rss_mib {
            let _ = writeln!(t, "  {name:<30} {mib:>8.1}");
        }
        let _ = writeln!(t, "\nCPU seconds by phase");
        for phase in &self.cpu_seconds {
            let parts: Vec<_> = phase
                .by_process
                .iter()
                .filter(|(_, s)| **s >= 0.05)
                .map(|(p, s)| format!("{p} {s:.1}"))
                .collect();
            let per_unit = phase
                .cpu_ms_per_unit
                .map(|ms| format!(" = {ms:.2} CPU ms each"))
                .unwrap_or_default();
            let _ = writeln!(
                t,
                "  {:<20} {:>5.1} s wall: {}{per_unit}",
                phase.phase,
                phase.wall_seconds,
                parts.join(", ")
            );
        }
        t
    }
}
