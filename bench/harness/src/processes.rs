//! The lattice's processes (NATS, wadm, the host and the providers it started) and what they
//! cost: peak resident memory and CPU time, read from /proc.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Linux reports CPU time in clock ticks of 1/100 s (USER_HZ) on every architecture we run on.
const TICKS_PER_SECOND: f64 = 100.0;

pub struct Process {
    pub name: String,
    pid: u32,
}

/// Every process of the instance from its pid files (NATS, wadm, the hosts, the trace receiver:
/// `nats`, `host` on one node, `nats-1`.. and `host-1`.. on the replicated lattice; NATS alone
/// under the native build), then each host's children: the providers, named by their executable and, with several hosts, their host.
/// A process run under its supervisor is the one in `<name>.child-pid` (`<name>.pid` is then the
/// supervisor's, which only waits).
pub fn of_instance(state_dir: &Path) -> Result<Vec<Process>> {
    let mut processes = Vec::new();
    for entry in std::fs::read_dir(state_dir)
        .with_context(|| format!("no {} (is the bench lattice up?)", state_dir.display()))?
        .flatten()
    {
        let file = entry.path();
        if file.extension().is_some_and(|e| e == "pid") {
            let supervised = file.with_extension("child-pid");
            let pid_file = if supervised.exists() {
                supervised
            } else {
                file.clone()
            };
            let name = file.file_stem().unwrap_or_default().to_string_lossy();
            processes.push(Process {
                name: name.into_owned(),
                pid: std::fs::read_to_string(&pid_file)?.trim().parse()?,
            });
        }
    }
    let hosts: Vec<(String, u32)> = processes
        .iter()
        .filter(|p| p.name.starts_with("host"))
        .map(|p| (p.name.clone(), p.pid))
        .collect();
    if processes.is_empty() {
        bail!(
            "no pid file in {} (is the bench lattice up?)",
            state_dir.display()
        );
    }
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let parent = stat_field(pid, 4);
        let Some((host, _)) = hosts.iter().find(|(_, h)| parent == Some(u64::from(*h))) else {
            continue;
        };
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let file = exe.file_name().unwrap_or_default().to_string_lossy();
        let name = provider_name(&file).unwrap_or_else(|| format!("pid {pid}"));
        processes.push(Process {
            name: if hosts.len() > 1 {
                format!("{name} ({host})")
            } else {
                name
            },
            pid,
        });
    }
    processes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(processes)
}

/// The host unpacks a provider archive to a file named after its path, e.g.
/// `_work_main_build_providers_http_server_par_gz`; that becomes `provider http-server`.
fn provider_name(file: &str) -> Option<String> {
    let archive = file.rsplit_once("_providers_")?.1;
    let name = archive.strip_suffix("_par_gz").unwrap_or(archive);
    Some(format!("provider {}", name.replace('_', "-")))
}

impl Process {
    pub fn new(name: String, pid: u32) -> Self {
        Self { name, pid }
    }

    /// The most memory the process has held resident since it started (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib / 1024.0)
    }

    /// User + system CPU seconds used so far.
    pub fn cpu_seconds(&self) -> f64 {
        let ticks = stat_field(self.pid, 14).unwrap_or(0) + stat_field(self.pid, 15).unwrap_or(0);
        ticks as f64 / TICKS_PER_SECOND
    }
}

/// CPU seconds per process at one moment; the difference of two is what a phase cost.
pub fn cpu_snapshot(processes: &[Process]) -> BTreeMap<String, f64> {
    processes
        .iter()
        .map(|p| (p.name.clone(), p.cpu_seconds()))
        .collect()
}

/// Field `n` (1-based, as in proc(5)) of /proc/<pid>/stat; the command name may contain spaces, so
/// counting starts after its closing parenthesis.
fn stat_field(pid: u32, n: usize) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(n - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_named_after_their_archive() {
        assert_eq!(
            provider_name("_work_main_build_providers_keyvalue_jetstream_par_gz").as_deref(),
            Some("provider keyvalue-jetstream")
        );
        assert_eq!(provider_name("orders-host"), None);
    }
}
