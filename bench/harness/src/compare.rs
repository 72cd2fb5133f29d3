//! Reports side by side: each figure's median [min - max] per report, the first report against
//! the last as a ratio, and, when the last is the native build's, the platform's targets: what
//! the lattice may cost against the same services written as plain processes.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// A figure: its label, where the report keeps it, its decimals.
const FIGURES: &[(&str, &str, usize)] = &[
    ("GET /Hello per s", "/summary/hello_per_s", 0),
    (
        "POST /Order per s, alone",
        "/summary/order_posts_alone_per_s",
        0,
    ),
    (
        "orders settled per s (max rate)",
        "/summary/orders_per_s",
        0,
    ),
    (
        "busy account's orders per s",
        "/summary/busy_account_orders_per_s",
        0,
    ),
    ("CPU ms per hello request", "/summary/cpu_ms_per_hello", 2),
    (
        "CPU ms per POST /Order alone",
        "/summary/cpu_ms_per_order_post_alone",
        2,
    ),
    ("CPU ms per settled order", "/summary/cpu_ms_per_order", 2),
    (
        "NATS messages per settled order",
        "/summary/nats_messages_per_order",
        1,
    ),
    (
        "p99 POST -> notified, half rate (ms)",
        "/pipeline_fixed_rate/notified_p99_ms",
        1,
    ),
    (
        "orders refused, unpaid, unfinished",
        "/summary/lost_or_refused",
        0,
    ),
];

/// The platform's targets against the native build: a figure of [`FIGURES`], and how the
/// lattice's median must compare with the native build's.
const AGAINST_NATIVE: &[(&str, Bound)] = &[
    ("CPU ms per settled order", Bound::AtMostTimes(1.5)),
    ("orders settled per s (max rate)", Bound::AtLeastTimes(0.60)),
    ("POST /Order per s, alone", Bound::AtLeastTimes(0.33)),
    ("NATS messages per settled order", Bound::AtMostTimes(1.25)),
];

/// The lattice's own p99 from POST to notification at half its max rate, at most (ms).
const NOTIFIED_P99_MS: f64 = 20.0;

#[derive(Clone, Copy)]
enum Bound {
    AtMostTimes(f64),
    AtLeastTimes(f64),
}

/// Where the report keeps the figure of [`FIGURES`] labelled `label`.
fn pointer_of(label: &str) -> &'static str {
    FIGURES
        .iter()
        .find(|(figure, _, _)| *figure == label)
        .map(|(_, pointer, _)| *pointer)
        .expect("every target is a figure")
}

/// A figure's median, and its min and max when the report has several runs of it.
fn figure(report: &Value, pointer: &str) -> Option<(f64, Option<(f64, f64)>)> {
    let value = report.pointer(pointer)?;
    match value.get("median") {
        Some(median) => Some((
            median.as_f64()?,
            Some((value["min"].as_f64()?, value["max"].as_f64()?)),
        )),
        None => Some((value.as_f64()?, None)),
    }
}

/// The report's column title: the build, and for a lattice its layout's last part (e.g. the
/// replicas).
fn title(report: &Value) -> String {
    let settings = &report["settings"];
    if settings["build"] == "native" {
        return "native build".into();
    }
    let layout = settings["lattice"].as_str().unwrap_or("lattice");
    let last = layout.rsplit(", ").next().unwrap_or(layout);
    last.split(" of ").next().unwrap_or(last).to_string()
}

pub fn table(paths: &[PathBuf]) -> Result<String> {
    if paths.len() < 2 {
        bail!("compare needs two reports or more");
    }
    let reports: Vec<Value> = paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{} is no report", path.display()))
        })
        .collect::<Result<_>>()?;
    let (first, last) = (&reports[0], &reports[reports.len() - 1]);
    let mut t = String::new();
    let _ = write!(t, "{:38}", "medians [min - max]");
    for report in &reports {
        let _ = write!(t, "{:>26}", title(report));
    }
    let _ = writeln!(t, "{:>12}", "first/last");
    for (label, pointer, decimals) in FIGURES {
        let _ = write!(t, "{label:38}");
        for report in &reports {
            let cell = match figure(report, pointer) {
                Some((median, Some((min, max)))) => {
                    format!("{median:.decimals$} [{min:.decimals$}-{max:.decimals$}]")
                }
                Some((median, None)) => format!("{median:.decimals$}"),
                None => "-".into(),
            };
            let _ = write!(t, "{cell:>26}");
        }
        let ratio = figure(first, pointer)
            .zip(figure(last, pointer))
            .filter(|(_, (last, _))| *last != 0.0)
            .map_or("-".to_string(), |((a, _), (b, _))| format!("{:.2}", a / b));
        let _ = writeln!(t, "{ratio:>12}");
    }
    if last["settings"]["build"] == "native" {
        let _ = writeln!(
            t,
            "\nthe platform's price: {} against the native build",
            title(first)
        );
        for (label, bound) in AGAINST_NATIVE {
            let pointer = pointer_of(label);
            let (Some((lattice, _)), Some((native, _))) =
                (figure(first, pointer), figure(last, pointer))
            else {
                continue;
            };
            let ratio = lattice / native;
            let (met, wanted) = match *bound {
                Bound::AtMostTimes(times) => (ratio <= times, format!("at most {times:.2}x")),
                Bound::AtLeastTimes(times) => (ratio >= times, format!("at least {times:.2}x")),
            };
            let _ = writeln!(
                t,
                "  {label:36} {ratio:>6.2}x native   target {wanted:<14} {}",
                if met { "met" } else { "MISSED" }
            );
        }
        if let Some((p99, _)) = figure(first, "/pipeline_fixed_rate/notified_p99_ms") {
            let _ = writeln!(
                t,
                "  {:36} {p99:>6.1} ms       target at most {NOTIFIED_P99_MS:.0} ms   {}",
                "p99 POST -> notified, half rate",
                if p99 <= NOTIFIED_P99_MS {
                    "met"
                } else {
                    "MISSED"
                }
            );
        }
        let lost = |r: &Value| figure(r, "/summary/lost_or_refused").map_or(-1.0, |(n, _)| n);
        let _ = writeln!(
            t,
            "  {:36} lattice {}, native {}   {}",
            "orders lost or doubled",
            lost(first),
            lost(last),
            if lost(first) == 0.0 && lost(last) == 0.0 {
                "met"
            } else {
                "MISSED"
            }
        );
    }
    let _ = writeln!(
        t,
        "reports: {}",
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::{pointer_of, AGAINST_NATIVE};

    #[test]
    fn every_target_against_the_native_build_is_a_figure_of_the_table() {
        for (label, _) in AGAINST_NATIVE {
            assert!(pointer_of(label).starts_with('/'), "{label}");
        }
    }
}
