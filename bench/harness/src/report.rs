//! The benchmark's figures: one JSON document (kept for tracking over time: every run, and their
//! medians) and the same figures as a table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::listing::ListFigures;
use crate::pipeline::PipelineFigures;
use crate::wrk::HttpFigures;

/// The targets (issue 11), as ratios of medians measured in one `make bench` on one machine.
pub const CPU_PER_ORDER_TO_HELLO_TARGET: f64 = 3.0;
pub const PIPELINE_TO_HELLO_TARGET: f64 = 0.33;
pub const ORDER_TO_HELLO_TARGET: f64 = 0.70;
pub const MESSAGES_PER_ORDER_TARGET: f64 = 40.0;
pub const BUSY_ACCOUNT_MESSAGES_TARGET: f64 = 2.0;
pub const NOTIFIED_P99_TARGET_MS: f64 = 50.0;
pub const LIST_GROWTH_TARGET: f64 = 2.0;

#[derive(Serialize)]
pub struct Report {
    pub started_at: String,
    pub commit: String,
    pub machine: Machine,
    pub settings: Settings,
    /// Medians over the runs, with min and max.
    pub summary: Summary,
    /// The lattice's targets against its own floor; `None` for the native build, which
    /// `orders-bench compare` judges against instead.
    pub targets_met: Option<Targets>,
    /// `GET /List?user=` at each bucket size.
    pub list: ListFigures,
    pub runs: Vec<Run>,
    pub pipeline_fixed_rate: PipelineFigures,
    /// What the warm-up and the fixed-rate phase cost.
    pub other_phases: Vec<PhaseCpu>,
    pub peak_rss_mib: BTreeMap<String, f64>,
}

/// One round: the floor, POST /Order alone and beside the pipeline, the pipeline at max rate, a
/// busy account, each with what it cost.
#[derive(Serialize)]
pub struct Run {
    pub hello: HttpFigures,
    pub order_alone: HttpFigures,
    pub order: HttpFigures,
    pub pipeline_max_rate: PipelineFigures,
    pub busy_account: PipelineFigures,
    pub phases: Vec<PhaseCpu>,
}

impl Run {
    fn phase(&self, name: &str) -> Option<&PhaseCpu> {
        self.phases.iter().find(|p| p.phase == name)
    }

    fn hello_cost(&self) -> Option<&PhaseCpu> {
        self.phase("GET /Hello")
    }

    fn order_cost(&self) -> Option<&PhaseCpu> {
        self.phase("pipeline max rate")
    }

    fn busy_account_cost(&self) -> Option<&PhaseCpu> {
        self.phase("busy account")
    }

    fn order_alone_cost(&self) -> Option<&PhaseCpu> {
        self.phase("POST /Order alone")
    }

    /// Orders refused, not paid or never notified.
    fn lost_or_refused(&self) -> usize {
        [&self.pipeline_max_rate, &self.busy_account]
            .iter()
            .map(|p| p.refused + p.not_paid + p.unfinished)
            .sum()
    }
}

#[derive(Serialize)]
pub struct PhaseCpu {
    pub phase: String,
    /// Requests or orders the phase completed (0: not counted per unit).
    pub units: u64,
    pub wall_seconds: f64,
    /// CPU seconds each process used (2 cores = at most 2 s per second).
    pub by_process: BTreeMap<String, f64>,
    /// CPU milliseconds the whole lattice spent per request or order: steadier from run to run
    /// than throughput, which moves with whatever else the machine is doing.
    pub cpu_ms_per_unit: Option<f64>,
    /// Messages the NATS server(s) received during the phase (`/varz` in_msgs).
    pub nats_messages: u64,
    pub nats_messages_per_unit: Option<f64>,
}

impl PhaseCpu {
    pub fn new(
        phase: &str,
        units: u64,
        wall_seconds: f64,
        by_process: BTreeMap<String, f64>,
        nats_messages: u64,
    ) -> Self {
        let per_unit = |total: f64| (units > 0).then(|| total / units as f64);
        Self {
            phase: phase.to_string(),
            units,
            wall_seconds,
            cpu_ms_per_unit: per_unit(by_process.values().sum::<f64>() * 1e3),
            by_process,
            nats_messages,
            nats_messages_per_unit: per_unit(nats_messages as f64),
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
    /// `lattice`, or `native`: the same services as plain processes (`orders-native`).
    pub build: &'static str,
    pub lattice: String,
    pub runs: usize,
    pub connections: usize,
    pub seconds_per_http_phase: u64,
    pub warmup_seconds: u64,
    pub orders_per_pipeline_run: usize,
    pub busy_account_orders_per_run: usize,
    pub users: usize,
    /// The fixed-rate phase's rate when it was asked for (`--fixed-rate`); otherwise half the
    /// median max rate, the rate the p99 target is set at.
    pub fixed_rate_asked_per_s: Option<f64>,
}

impl Settings {
    /// What the fixed-rate phase's rate was.
    pub fn fixed_rate_in_words(&self) -> &'static str {
        match self.fixed_rate_asked_per_s {
            Some(_) => "the rate asked for",
            None => "half the median max rate",
        }
    }
}

/// The median of a figure over the runs, and its range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// Of the values that exist (a phase that counted no units has none); NaN when none does.
    pub fn of(values: impl IntoIterator<Item = Option<f64>>) -> Self {
        let mut values: Vec<f64> = values.into_iter().flatten().collect();
        if values.is_empty() {
            return Self {
                median: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        values.sort_by(f64::total_cmp);
        let middle = values.len() / 2;
        let median = if values.len() % 2 == 1 {
            values[middle]
        } else {
            (values[middle - 1] + values[middle]) / 2.0
        };
        Self {
            median,
            min: values[0],
            max: values[values.len() - 1],
        }
    }
}

/// The headline figures. The ratios are taken within each run (its hello phase beside its order
/// phases), then their median: they barely depend on the machine's speed.
#[derive(Serialize)]
pub struct Summary {
    pub hello_per_s: Spread,
    pub order_posts_alone_per_s: Spread,
    pub order_posts_per_s: Spread,
    pub orders_per_s: Spread,
    pub busy_account_orders_per_s: Spread,
    pub cpu_ms_per_hello: Spread,
    pub cpu_ms_per_order_post_alone: Spread,
    pub cpu_ms_per_order: Spread,
    pub cpu_ms_per_busy_account_order: Spread,
    pub nats_messages_per_hello: Spread,
    pub nats_messages_per_order: Spread,
    pub nats_messages_per_busy_account_order: Spread,
    pub cpu_per_order_to_cpu_per_hello: Spread,
    pub orders_per_s_to_hello_per_s: Spread,
    pub order_posts_alone_per_s_to_hello_per_s: Spread,
    pub order_posts_per_s_to_hello_per_s: Spread,
    pub busy_account_messages_to_spread_out_messages: Spread,
    /// Orders refused, not paid or never notified, over every run: always 0 so far.
    pub lost_or_refused: usize,
}

impl Summary {
    pub fn of(runs: &[Run]) -> Self {
        let spread = |f: &dyn Fn(&Run) -> Option<f64>| Spread::of(runs.iter().map(f));
        let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
        Self {
            hello_per_s: spread(&|r| Some(r.hello.requests_per_s)),
            order_posts_alone_per_s: spread(&|r| Some(r.order_alone.requests_per_s)),
            order_posts_per_s: spread(&|r| Some(r.order.requests_per_s)),
            orders_per_s: spread(&|r| Some(r.pipeline_max_rate.processed_per_s)),
            busy_account_orders_per_s: spread(&|r| Some(r.busy_account.processed_per_s)),
            cpu_ms_per_hello: spread(&|r| r.hello_cost()?.cpu_ms_per_unit),
            cpu_ms_per_order_post_alone: spread(&|r| r.order_alone_cost()?.cpu_ms_per_unit),
            cpu_ms_per_order: spread(&|r| r.order_cost()?.cpu_ms_per_unit),
            cpu_ms_per_busy_account_order: spread(&|r| r.busy_account_cost()?.cpu_ms_per_unit),
            nats_messages_per_hello: spread(&|r| r.hello_cost()?.nats_messages_per_unit),
            nats_messages_per_order: spread(&|r| r.order_cost()?.nats_messages_per_unit),
            nats_messages_per_busy_account_order: spread(&|r| {
                r.busy_account_cost()?.nats_messages_per_unit
            }),
            cpu_per_order_to_cpu_per_hello: spread(&|r| {
                ratio(
                    r.order_cost()?.cpu_ms_per_unit,
                    r.hello_cost()?.cpu_ms_per_unit,
                )
            }),
            orders_per_s_to_hello_per_s: spread(&|r| {
                Some(r.pipeline_max_rate.processed_per_s / r.hello.requests_per_s)
            }),
            order_posts_alone_per_s_to_hello_per_s: spread(&|r| {
                Some(r.order_alone.requests_per_s / r.hello.requests_per_s)
            }),
            order_posts_per_s_to_hello_per_s: spread(&|r| {
                Some(r.order.requests_per_s / r.hello.requests_per_s)
            }),
            busy_account_messages_to_spread_out_messages: spread(&|r| {
                ratio(
                    r.busy_account_cost()?.nats_messages_per_unit,
                    r.order_cost()?.nats_messages_per_unit,
                )
            }),
            lost_or_refused: runs.iter().map(Run::lost_or_refused).sum(),
        }
    }
}

#[derive(Serialize)]
pub struct Targets {
    pub cpu_per_order_at_most_3_times_hello: bool,
    pub orders_per_s_at_least_33_percent_of_hello: bool,
    pub order_posts_alone_at_least_70_percent_of_hello: bool,
    pub nats_messages_per_order_at_most_40: bool,
    pub busy_account_messages_at_most_2_times_spread_out: bool,
    /// None when the fixed-rate phase ran at a rate asked for, not at half the max rate.
    pub notified_p99_at_most_50_ms_at_half_max_rate: Option<bool>,
    pub list_at_largest_size_at_most_2_times_smallest: bool,
}

impl Report {
    pub fn targets(
        summary: &Summary,
        settings: &Settings,
        fixed_rate: &PipelineFigures,
        list: &ListFigures,
    ) -> Targets {
        Targets {
            cpu_per_order_at_most_3_times_hello: summary.cpu_per_order_to_cpu_per_hello.median
                <= CPU_PER_ORDER_TO_HELLO_TARGET,
            orders_per_s_at_least_33_percent_of_hello: summary.orders_per_s_to_hello_per_s.median
                >= PIPELINE_TO_HELLO_TARGET,
            order_posts_alone_at_least_70_percent_of_hello: summary
                .order_posts_alone_per_s_to_hello_per_s
                .median
                >= ORDER_TO_HELLO_TARGET,
            nats_messages_per_order_at_most_40: summary.nats_messages_per_order.median
                <= MESSAGES_PER_ORDER_TARGET,
            busy_account_messages_at_most_2_times_spread_out: summary
                .busy_account_messages_to_spread_out_messages
                .median
                <= BUSY_ACCOUNT_MESSAGES_TARGET,
            notified_p99_at_most_50_ms_at_half_max_rate: settings
                .fixed_rate_asked_per_s
                .is_none()
                .then_some(fixed_rate.notified_p99_ms <= NOTIFIED_P99_TARGET_MS),
            list_at_largest_size_at_most_2_times_smallest: list.largest_to_smallest
                <= LIST_GROWTH_TARGET,
        }
    }

    pub fn table(&self) -> String {
        let mut t = String::new();
        let m = &self.machine;
        let _ = writeln!(
            t,
            "machine: {} cpus ({}), {:.0} GiB, Linux {}; commit {}; {}\nlattice: {}",
            m.cpus,
            m.cpu_model,
            m.memory_gib,
            m.kernel,
            self.commit,
            self.started_at,
            self.settings.lattice
        );
        let s = &self.summary;
        let _ = writeln!(
            t,
            "\nmedians of {} runs [min - max]   (wrk: {} connections, {} s per phase; pipeline: {} orders per run)",
            self.runs.len(),
            self.settings.connections,
            self.settings.seconds_per_http_phase,
            self.settings.orders_per_pipeline_run
        );
        let row = |t: &mut String, name: &str, spread: Spread, decimals: usize| {
            let _ = writeln!(
                t,
                "  {name:<44} {:>9.decimals$}  [{:.decimals$} - {:.decimals$}]",
                spread.median, spread.min, spread.max
            );
        };
        row(&mut t, "GET /Hello per s (the floor)", s.hello_per_s, 0);
        row(
            &mut t,
            "POST /Order per s, alone",
            s.order_posts_alone_per_s,
            0,
        );
        row(
            &mut t,
            "POST /Order per s, pipeline settling beside",
            s.order_posts_per_s,
            0,
        );
        row(&mut t, "orders settled per s (max rate)", s.orders_per_s, 0);
        row(
            &mut t,
            "a busy account's orders settled per s",
            s.busy_account_orders_per_s,
            0,
        );
        row(&mut t, "CPU ms per hello request", s.cpu_ms_per_hello, 2);
        row(
            &mut t,
            "CPU ms per POST /Order alone",
            s.cpu_ms_per_order_post_alone,
            2,
        );
        row(&mut t, "CPU ms per settled order", s.cpu_ms_per_order, 2);
        row(
            &mut t,
            "CPU ms per busy account's order",
            s.cpu_ms_per_busy_account_order,
            2,
        );
        row(
            &mut t,
            "NATS messages per hello request",
            s.nats_messages_per_hello,
            1,
        );
        row(
            &mut t,
            "NATS messages per settled order",
            s.nats_messages_per_order,
            1,
        );
        row(
            &mut t,
            "NATS messages per busy account's order",
            s.nats_messages_per_busy_account_order,
            1,
        );
        let _ = writeln!(
            t,
            "  {:<44} {:>9}",
            "orders refused, not paid or unfinished", s.lost_or_refused
        );

        let _ = writeln!(
            t,
            "\nGET /List?user= of one user as the notify bucket grows"
        );
        for size in &self.list.sizes {
            let _ = writeln!(
                t,
                "  {:>7} notifications stored, {} the user's: median {:.2} ms, p99 {:.2} ms",
                size.stored_notifications, size.readers_notifications, size.median_ms, size.p99_ms
            );
        }

        let f = &self.pipeline_fixed_rate;
        let _ = writeln!(
            t,
            "\nthe pipeline at {}: {}",
            self.settings.fixed_rate_in_words(),
            f.in_words()
        );
        for run in &self.runs {
            for (reason, count) in &run.pipeline_max_rate.refusals {
                let _ = writeln!(t, "  max rate: {count} POST(s) not accepted: {reason}");
            }
            for (reason, count) in &run.busy_account.refusals {
                let _ = writeln!(t, "  busy account: {count} POST(s) not accepted: {reason}");
            }
        }
        for (reason, count) in &f.refusals {
            let _ = writeln!(t, "  fixed rate: {count} POST(s) not accepted: {reason}");
        }

        if let Some(g) = &self.targets_met {
            let percent = |ratio: f64| format!("{:.1}%", ratio * 100.0);
            let targets = [
                (
                    "CPU per order / CPU per hello request",
                    format!("{:.1}x", s.cpu_per_order_to_cpu_per_hello.median),
                    format!("<= {CPU_PER_ORDER_TO_HELLO_TARGET}x"),
                    Some(g.cpu_per_order_at_most_3_times_hello),
                ),
                (
                    "orders settled per s / hello per s",
                    percent(s.orders_per_s_to_hello_per_s.median),
                    format!(">= {}", percent(PIPELINE_TO_HELLO_TARGET)),
                    Some(g.orders_per_s_at_least_33_percent_of_hello),
                ),
                (
                    "POST /Order alone per s / hello per s",
                    percent(s.order_posts_alone_per_s_to_hello_per_s.median),
                    format!(">= {}", percent(ORDER_TO_HELLO_TARGET)),
                    Some(g.order_posts_alone_at_least_70_percent_of_hello),
                ),
                (
                    "NATS messages per order",
                    format!("{:.1}", s.nats_messages_per_order.median),
                    format!("<= {MESSAGES_PER_ORDER_TARGET}"),
                    Some(g.nats_messages_per_order_at_most_40),
                ),
                (
                    "busy account's messages / spread-out's",
                    format!(
                        "{:.1}x",
                        s.busy_account_messages_to_spread_out_messages.median
                    ),
                    format!("<= {BUSY_ACCOUNT_MESSAGES_TARGET}x"),
                    Some(g.busy_account_messages_at_most_2_times_spread_out),
                ),
                (
                    "p99 POST -> notification at half rate",
                    format!("{:.1} ms", f.notified_p99_ms),
                    format!("<= {NOTIFIED_P99_TARGET_MS} ms"),
                    g.notified_p99_at_most_50_ms_at_half_max_rate,
                ),
                (
                    "GET /List?user=, most / fewest stored",
                    format!("{:.2}x", self.list.largest_to_smallest),
                    format!("<= {LIST_GROWTH_TARGET}x"),
                    Some(g.list_at_largest_size_at_most_2_times_smallest),
                ),
            ];
            let _ = writeln!(t, "\nratios (medians of each run's own) and targets");
            for (figure, value, target, met) in targets {
                let verdict = match met {
                    Some(true) => "met",
                    Some(false) => "MISSED",
                    None => "not judged: not run at half the max rate",
                };
                let _ = writeln!(
                    t,
                    "  {figure:<40} {value:>9}   (target {target}: {verdict})"
                );
            }
            let _ = writeln!(
                t,
                "  (POST /Order per s / hello per s beside the pipeline: {})",
                percent(s.order_posts_per_s_to_hello_per_s.median)
            );
        }

        let _ = writeln!(t, "\npeak RSS (MiB)");
        for (name, mib) in &self.peak_rss_mib {
            let _ = writeln!(t, "  {name:<40} {mib:>8.1}");
        }
        let _ = writeln!(t, "\nCPU seconds by process, the last run's phases");
        let last = self
            .runs
            .last()
            .map(|r| r.phases.iter())
            .into_iter()
            .flatten();
        for phase in last.chain(&self.other_phases) {
            let parts: Vec<_> = phase
                .by_process
                .iter()
                .filter(|(_, s)| **s >= 0.05)
                .map(|(p, s)| format!("{p} {s:.1}"))
                .collect();
            let _ = writeln!(
                t,
                "  {:<20} {:>5.1} s wall: {}",
                phase.phase,
                phase.wall_seconds,
                parts.join(", ")
            );
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_is_the_median_and_the_range_of_the_values_that_exist() {
        let odd = Spread::of([Some(3.0), None, Some(1.0), Some(2.0)]);
        assert_eq!(
            odd,
            Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0
            }
        );
        assert_eq!(Spread::of([Some(4.0), Some(1.0)]).median, 2.5);
        assert!(Spread::of([None]).median.is_nan());
    }

    #[test]
    fn the_cost_per_unit_is_of_the_whole_lattice() {
        let phase = PhaseCpu::new(
            "pipeline max rate",
            100,
            2.0,
            BTreeMap::from([("nats".into(), 0.2), ("host".into(), 0.3)]),
            4_000,
        );
        assert_eq!(phase.cpu_ms_per_unit, Some(5.0));
        assert_eq!(phase.nats_messages_per_unit, Some(40.0));
        assert_eq!(
            PhaseCpu::new("warm-up", 0, 1.0, BTreeMap::new(), 9).cpu_ms_per_unit,
            None
        );
    }
}
