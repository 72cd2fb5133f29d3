//! The supervisor binary around real processes: a dead process is started again, a stop stops
//! both, and a dead host is announced on a real NATS server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use orders_supervisor::HostStart;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orders-supervisor-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn supervise(pid_file: &Path, command: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_orders-supervisor"))
        .args(["--name", "test", "--stop-grace-ms", "2000", "--pid-file"])
        .arg(pid_file)
        .arg("--")
        .args(command)
        .spawn()
        .unwrap()
}

/// The pid in `pid_file` once it names a live process other than `not`.
fn await_pid(pid_file: &Path, not: Option<i32>) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pid = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        if let Some(pid) = pid.filter(|pid| Some(*pid) != not && alive(*pid)) {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "no new process in {}",
            pid_file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: i32) -> bool {
    // A zombie has no cmdline left; a live process has its own.
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

fn kill(pid: i32, signal: i32) {
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

#[test]
fn a_process_killed_is_started_again_and_a_stopped_supervisor_leaves_nothing_running() {
    let dir = scratch("restart");
    let pid_file = dir.join("sleep.pid");
    let mut supervisor = supervise(&pid_file, &["sleep", "600"]);
    let first = await_pid(&pid_file, None);
    kill(first, libc::SIGKILL);
    let second = await_pid(&pid_file, Some(first));
    assert_ne!(first, second);

    kill(supervisor.id() as i32, libc::SIGTERM);
    let status = supervisor.wait().unwrap();
    assert!(
        status.success(),
        "a supervisor asked to stop exits cleanly: {status}"
    );
    assert!(!alive(second), "its process stopped with it");
    assert!(!pid_file.exists(), "and its pid file is gone");
}

#[test]
fn what_a_dead_process_started_is_killed_with_it() {
    let dir = scratch("group");
    let (pid_file, grandchild_file) = (dir.join("sh.pid"), dir.join("grandchild.pid"));
    let script = format!("sleep 600 & echo $! > {}; wait", grandchild_file.display());
    let mut supervisor = supervise(&pid_file, &["sh", "-c", &script]);
    let shell = await_pid(&pid_file, None);
    let grandchild = await_pid(&grandchild_file, None);
    kill(shell, libc::SIGKILL);
    await_pid(&pid_file, Some(shell));
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(grandchild) {
        assert!(
            Instant::now() < deadline,
            "the dead shell's child still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(supervisor.id() as i32, libc::SIGTERM);
    supervisor.wait().unwrap();
}

#[tokio::test]
async fn a_dead_host_is_announced_to_the_lattice_as_stopped() {
    let nats = orders_test_nats::NatsServer::start().await;
    let (host, port) = nats
        .url
        .trim_start_matches("nats://")
        .rsplit_once(':')
        .unwrap();
    let vars = [
        ("WASMCLOUD_NATS_HOST", host),
        ("WASMCLOUD_NATS_PORT", port),
        ("WASMCLOUD_LATTICE", "supervised"),
        ("WASMCLOUD_LABEL_host", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let start = HostStart::new(&vars).unwrap();
    let client = async_nats::connect(&nats.url).await.unwrap();
    let mut events = client.subscribe("wasmbus.evt.supervised.>").await.unwrap();
    client.flush().await.unwrap();

    start.announce_stopped().await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("an event within 5 s")
        .unwrap();
    assert_eq!(
        event.subject.as_str(),
        "wasmbus.evt.supervised.host_stopped"
    );
    let event: serde_json::Value = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(event["source"], start.host_id.as_str());
    assert_eq!(event["data"]["labels"]["host"], "1");
}
