//! HTTP load at a fixed number of connections, measured by wrk; our Lua script (bench/wrk) makes
//! wrk print its figures as JSON.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// What one wrk run measured.
#[derive(Debug, Clone, Serialize)]
pub struct HttpFigures {
    pub requests: u64,
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Connection errors, timeouts and answers with a status >= 400.
    pub errors: u64,
}

#[derive(Deserialize)]
struct WrkOutput {
    requests: u64,
    duration_us: u64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    errors: WrkErrors,
}

#[derive(Deserialize)]
struct WrkErrors {
    connect: u64,
    read: u64,
    write: u64,
    status: u64,
    timeout: u64,
}

pub struct Load<'a> {
    pub url: &'a str,
    /// `report.lua` for GETs, `order.lua` for orders; both live in `scripts_dir`.
    pub script: &'a str,
    pub script_args: &'a [String],
    pub connections: usize,
    pub duration: Duration,
}

impl HttpFigures {
    pub fn in_words(&self) -> String {
        format!(
            "{} requests, {:.0}/s; p50 {:.2} ms, p99 {:.2} ms, slowest {:.1} ms; {} errors",
            self.requests, self.requests_per_s, self.p50_ms, self.p99_ms, self.max_ms, self.errors
        )
    }
}

impl Load<'_> {
    pub fn run(&self, scripts_dir: &Path) -> Result<HttpFigures> {
        let output = Command::new("wrk")
            .current_dir(scripts_dir)
            .args(["-t", "2", "-c", &self.connections.to_string()])
            .args(["-d", &format!("{}s", self.duration.as_secs())])
            .args(["--timeout", "10s", "-s", self.script, self.url])
            .arg("--")
            .args(self.script_args)
            .output()
            .context("cannot run wrk (make bench installs it: apt-get install wrk)")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "wrk failed: {stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let json = stdout
            .lines()
            .find_map(|line| line.strip_prefix("WRK_JSON "))
            .with_context(|| format!("wrk printed no figures: {stdout}"))?;
        let wrk: WrkOutput = serde_json::from_str(json)?;
        let e = &wrk.errors;
        Ok(HttpFigures {
            requests: wrk.requests,
            requests_per_s: wrk.requests as f64 / (wrk.duration_us as f64 / 1e6),
            p50_ms: wrk.p50_us as f64 / 1e3,
            p99_ms: wrk.p99_us as f64 / 1e3,
            max_ms: wrk.max_us as f64 / 1e3,
            errors: e.connect + e.read + e.write + e.status + e.timeout,
        })
    }
}
