//! Every shell block of README.md and docs/*.md, run as written against the running lattice (the
//! one `make test` starts), so that a command that no longer works as written fails the tests.
//!
//! The documents speak of the lattice `make run` starts; here the same commands go to the test
//! lattice: its HTTP, NATS and trace receiver addresses and its `.state/test` take the place of
//! `make run`'s (`127.0.0.1:8000`, `127.0.0.1:4222`, `127.0.0.1:4318`, `.state/run/`), and wash
//! is pointed at its NATS port. Nothing else in a block changes.
//!
//! The README's blocks run twice in a row, each time in a fresh shell, as a reader pasting its
//! quick start twice would. Each document of the manual then runs in a shell that ran the
//! README's blocks first, since it continues from the quick start (`$API`, `$AUTH`, `call`).

mod blocks;

use std::path::PathBuf;
use std::process::Command;

use blocks::{shell_blocks, with_checks, EXPECT_FUNCTION};

/// How long one shell may take: the slowest block waits 5 s for traces to arrive.
const SHELL_TIMEOUT_S: u32 = 180;

fn root() -> PathBuf {
    orders_e2e::checkout()
}

fn read(document: &str) -> String {
    std::fs::read_to_string(root().join(document)).unwrap_or_else(|e| panic!("{document}: {e}"))
}

/// The documents whose blocks run: the README, then the manual in name order.
fn documents() -> Vec<String> {
    let mut manual: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ is there")
        .map(|entry| entry.expect("a readable entry").file_name())
        .map(|name| format!("docs/{}", name.to_string_lossy()))
        .filter(|name| name.ends_with(".md"))
        .collect();
    manual.sort();
    std::iter::once("README.md".to_string())
        .chain(manual)
        .collect()
}

/// The blocks of `document` that run, checked, with a line saying where each comes from.
fn runnable(document: &str) -> (String, usize) {
    let blocks = shell_blocks(&read(document)).unwrap_or_else(|why| panic!("{document}: {why}"));
    let mut script = String::new();
    let mut count = 0;
    for block in blocks.iter().filter(|block| block.not_run.is_none()) {
        script.push_str(&format!("echo '### {document}:{}'\n", block.line));
        script.push_str(&with_checks(&block.code));
        count += 1;
    }
    (script, count)
}

/// An address `host:port` of a URL from the environment, or `default` when the variable is unset.
fn address_from_env(variable: &str, default: &str) -> String {
    std::env::var(variable)
        .ok()
        .and_then(|url| {
            let first = url.split(',').next()?.to_string();
            Some(first.split("://").last()?.trim_end_matches('/').to_string())
        })
        .unwrap_or_else(|| default.to_string())
}

/// `script` with `make run`'s addresses and state folder replaced by the test lattice's.
fn for_the_test_lattice(script: &str) -> String {
    let instance = std::env::var("ORDERS_INSTANCE").unwrap_or_else(|_| "test".into());
    script
        .replace(
            "127.0.0.1:8000",
            &address_from_env("ORDERS_BASE_URL", "127.0.0.1:18000"),
        )
        .replace(
            "127.0.0.1:4222",
            &address_from_env("ORDERS_NATS_URL", "127.0.0.1:14222"),
        )
        .replace(
            "127.0.0.1:4318",
            &address_from_env("ORDERS_TELEMETRY_URL", "127.0.0.1:14318"),
        )
        .replace(".state/run/", &format!(".state/{instance}/"))
}

/// Runs `script` in a fresh bash in the checkout; panics with everything it printed if it fails.
fn run(name: &str, script: &str) {
    let nats = address_from_env("ORDERS_NATS_URL", "127.0.0.1:14222");
    let nats_port = nats.rsplit(':').next().unwrap_or("14222").to_string();
    let full = format!(
        "set -euo pipefail\n{EXPECT_FUNCTION}{}",
        for_the_test_lattice(script)
    );
    let output = Command::new("timeout")
        .arg(SHELL_TIMEOUT_S.to_string())
        .args(["bash", "-c", &full])
        .current_dir(root())
        .env("WASMCLOUD_CTL_PORT", &nats_port)
        .env("WASMCLOUD_RPC_PORT", &nats_port)
        .output()
        .expect("bash runs");
    let printed = format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("=== {name}\n{printed}");
    assert!(
        output.status.success(),
        "{name} failed ({}); what it printed:\n{printed}",
        output.status
    );
}

#[test]
fn every_document_marks_its_blocks_that_are_not_run_with_a_reason() {
    for document in documents() {
        shell_blocks(&read(&document)).unwrap_or_else(|why| panic!("{document}: {why}"));
    }
}

#[test]
#[ignore = "drives a running lattice: `make test` starts one and runs these"]
fn every_shell_block_of_the_readme_and_the_manual_works_as_written() {
    let (quick_start, readme_blocks) = runnable("README.md");
    assert!(
        readme_blocks >= 1,
        "the README's quick start is a block that runs"
    );
    for attempt in ["first", "second"] {
        run(&format!("README.md, {attempt} time"), &quick_start);
    }
    let mut ran = readme_blocks;
    for document in documents().into_iter().skip(1) {
        let (script, count) = runnable(&document);
        if count > 0 {
            run(&document, &format!("{quick_start}{script}"));
            ran += count;
        }
    }
    println!("{ran} blocks ran");
}
