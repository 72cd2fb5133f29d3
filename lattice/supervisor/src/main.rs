//! `orders-supervisor [--wasmcloud-host] --name NAME --pid-file FILE -- COMMAND [ARG...]`
//!
//! Runs COMMAND and starts it again whenever it dies (the crate's documentation says how);
//! FILE always holds the pid of the running COMMAND, which is also its process group.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use orders_supervisor::{HostStart, Restarts};
use tokio::signal::unix::{signal, SignalKind};

/// Keeps one lattice process running.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The process's name in what the supervisor logs.
    #[arg(long)]
    name: String,
    /// Where the running process's pid is written (`orders-ops lattice crash` kills that pid's group).
    #[arg(long)]
    pid_file: PathBuf,
    /// The process is a wasmCloud host: each start gets a key of its own, and a host that died
    /// is announced to the lattice as stopped (its `host_stopped` event), so wadm places its work
    /// on the next one at once.
    #[arg(long)]
    wasmcloud_host: bool,
    /// How long a process asked to stop (SIGTERM) has before it is killed, in milliseconds.
    #[arg(long, default_value_t = 8000)]
    stop_grace_ms: u64,
    /// The process to run, with its arguments.
    #[arg(trailing_var_arg = true, required = true)]
    command: Vec<OsString>,
}

/// Why the supervisor stops.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Terminated,
    Interrupted,
}

// One thread: the parent-death signal is tied to the thread that spawned the child, and this
// thread lives as long as the supervisor.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut restarts = Restarts::default();
    let vars: HashMap<String, String> = std::env::vars().collect();
    loop {
        let host = args
            .wasmcloud_host
            .then(|| HostStart::new(&vars))
            .transpose()?;
        let mut child = spawn(&args.command, host.as_ref())
            .with_context(|| format!("starting {}", args.name))?;
        let pid = child.id().context("a started process has a pid")? as i32;
        write_pid(&args.pid_file, pid)?;
        let started = Instant::now();
        let stop = tokio::select! {
            status = child.wait() => {
                let ran = started.elapsed();
                log(&args.name, &format!("pid {pid} exited ({}) after {:.1} s", describe(status), ran.as_secs_f64()));
                // What the process started (a host's providers) goes with it.
                signal_group(pid, libc::SIGKILL);
                if let Some(host) = &host {
                    announce_dead_host(&args.name, host).await;
                }
                let pause = restarts.pause_after(ran);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {
                        log(&args.name, &format!("starting it again (after {} ms)", pause.as_millis()));
                        continue;
                    }
                    _ = terminate.recv() => Stop::Terminated,
                    _ = interrupt.recv() => Stop::Interrupted,
                }
            }
            _ = terminate.recv() => {
                stop_child(&args.name, &mut child, pid, Duration::from_millis(args.stop_grace_ms)).await;
                Stop::Terminated
            }
            _ = interrupt.recv() => {
                stop_child(&args.name, &mut child, pid, Duration::from_millis(args.stop_grace_ms)).await;
                Stop::Interrupted
            }
        };
        let _ = std::fs::remove_file(&args.pid_file);
        log(&args.name, &format!("supervisor stopped ({stop:?})"));
        return Ok(());
    }
}

fn spawn(command: &[OsString], host: Option<&HostStart>) -> std::io::Result<tokio::process::Child> {
    let mut process = tokio::process::Command::new(&command[0]);
    process.args(&command[1..]).process_group(0);
    if let Some(host) = host {
        process.envs(host.env());
    }
    // SAFETY: prctl is async-signal-safe and touches only the child's own attributes.
    unsafe {
        process.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    process.spawn()
}

/// Asks the process and its group to stop; kills them after `grace`.
async fn stop_child(name: &str, child: &mut tokio::process::Child, pid: i32, grace: Duration) {
    signal_group(pid, libc::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        log(
            name,
            &format!(
                "pid {pid} still running {} s after SIGTERM: killed",
                grace.as_secs()
            ),
        );
    }
    signal_group(pid, libc::SIGKILL);
    let _ = child.wait().await;
}

fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: a plain system call; a group that is already gone answers ESRCH, which is fine.
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// Tells wadm the dead host is gone (retried while NATS is unreachable, for at most 30 s: the
/// next host cannot start without NATS either) and removes the providers it unpacked.
async fn announce_dead_host(name: &str, host: &HostStart) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match host.announce_stopped().await {
            Ok(()) => {
                log(name, &format!("announced host {} as stopped", host.host_id));
                break;
            }
            Err(e) if Instant::now() < deadline => {
                log(
                    name,
                    &format!(
                        "announcing host {} as stopped failed, trying again: {e:#}",
                        host.host_id
                    ),
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                log(name, &format!("host {} could not be announced as stopped (wadm gives it up after its missed heartbeats): {e:#}", host.host_id));
                break;
            }
        }
    }
    let _ = std::fs::remove_dir_all(host.provider_cache());
}

/// Replaces the pid file in one step, so a reader never sees it half written.
fn write_pid(path: &Path, pid: i32) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, format!("{pid}\n"))
        .and_then(|()| std::fs::rename(&partial, path))
        .with_context(|| format!("writing {}", path.display()))
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("status {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            _ => status.to_string(),
        },
        Err(e) => format!("unknown: {e}"),
    }
}

/// One line on stderr, which orders-ops appends to the process's log.
fn log(name: &str, message: &str) {
    eprintln!("[orders-supervisor {name}] {message}");
}
