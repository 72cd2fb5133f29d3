//! `make test`: unit tests of the native crates (cores, common, providers, with the JetStream
//! bucket's integration tests on a real nats-server), then end-to-end tests on a private lattice
//! on non-default ports (Rust through HTTP and NATS, the shell blocks of the docs, the fault
//! tests, newman, the console in chromium, the OpenAPI contract fuzzed by schemathesis; the
//! AsyncAPI and OpenAPI documents are validated first), which is stopped at the end, pass or fail;
//! last, the fault tests of the replicated lattice (`ha`: three NATS servers, two hosts), killing
//! servers and hosts while orders flow. JUnit reports of newman, the browser test and schemathesis
//! go to `.state/test/reports`.

use std::path::Path;
use std::process::Command;

use anyhow::Context as _;

use crate::lattice::Lattice;
use crate::layout::{Instance, Layout};
use crate::process::{command, run, say};

pub fn all(layout: &Layout) -> anyhow::Result<()> {
    let test = Lattice::new(layout.clone(), Instance::named("test")?)?;
    let ha = Lattice::new(layout.clone(), Instance::named("ha")?)?;
    let result = stages(layout, &test, &ha);
    for lattice in [&test, &ha] {
        let logs = lattice.state().join("logs");
        if result.is_err() && logs.is_dir() {
            // CI keeps only the output (a clean clone's .state is gone with it).
            say(format!(
                "the {} lattice's last warnings and errors ({})",
                lattice.instance.name,
                logs.display()
            ));
            print_warnings(&logs);
        }
        if lattice.state().exists() {
            say(format!(
                "stopping the {} lattice (logs kept in {})",
                lattice.instance.name,
                logs.display()
            ));
            lattice.down();
        }
    }
    result
}

/// The native workspace's cargo, through our patched dependencies and build profile.
fn cargo(layout: &Layout) -> Command {
    let mut cargo = Command::new("cargo");
    cargo.args(layout.cargo_config()).current_dir(&layout.root);
    cargo
}

fn stages(layout: &Layout, test: &Lattice, ha: &Lattice) -> anyhow::Result<()> {
    let root = &layout.root;
    let venv = layout.venv();
    let ops = std::env::current_exe()?;
    // What every stage below reads: where the tools are.
    let tools = [
        ("NATS_SERVER_BIN", layout.nats_server()),
        ("ORDERS_WASH", layout.wash()),
        ("ORDERS_MANIFEST_TOOL", layout.bin("orders-manifest")),
        ("ORDERS_ADMIN_TOOL", layout.bin("orders-admin")),
        ("ORDERS_OPS_TOOL", ops),
    ];
    for (name, path) in tools {
        std::env::set_var(name, path);
    }
    std::env::set_var("PYTHONDONTWRITEBYTECODE", "1");

    say("unit and integration tests (native crates; the operations tool)");
    run(cargo(layout).args(["test", "--release"]))?;
    run(Command::new("cargo")
        .args(["test", "--release", "--quiet", "--manifest-path"])
        .arg(root.join("tools/ops/Cargo.toml")))?;

    say("fuzzing the parsers, decoders and the ledger (proptest, seed corpus in components/fuzz/tests)");
    run(cargo(layout).args(["test", "--release", "-p", "orders-fuzz"]))?;

    say("Kubernetes deployment: offline validation of deploy/k8s, then that it catches planted mistakes");
    let python = venv.join("bin/python");
    run(command(&python, ["deploy/k8s/validate.py"]).current_dir(root))?;
    run(command(&python, ["-m", "unittest", "test_validate"]).current_dir(root.join("deploy/k8s")))?;
    say("the Kubernetes host image: what push.sh would push, the image it builds run as the operator runs it, serving the console through its built-in HTTP server");
    run(
        command(&python, ["-m", "unittest", "-v", "test_host_image"])
            .current_dir(root.join("deploy/k8s")),
    )?;

    say("the contracts: asyncapi/asyncapi.yaml (broker) and openapi/openapi.yaml (HTTP) validated");
    run(command("node", ["asyncapi/validate.cjs"])
        .env("NODE_PATH", layout.node_modules())
        .current_dir(root))?;
    run(command(
        venv.join("bin/openapi-spec-validator"),
        ["openapi/openapi.yaml"],
    )
    .current_dir(root))?;

    let instance = &test.instance;
    say(format!(
        "starting a private lattice (NATS {}, HTTP {})",
        instance.nats_port, instance.http_port
    ));
    // Stopped, not wiped, at the end: its logs stay in .state/test/logs for a look after a failure.
    test.clean()?;
    test.up()?;
    let state = test.state();
    let base_url = format!("http://127.0.0.1:{}", instance.http_port);
    let admin_token = test.admin_token()?;
    let lattice_env = [
        ("ORDERS_BASE_URL", base_url.clone()),
        (
            "ORDERS_NATS_URL",
            format!("nats://127.0.0.1:{}", instance.nats_port),
        ),
        ("ORDERS_CTL_PORT", instance.nats_port.to_string()),
        (
            "ORDERS_MANIFEST",
            state.join("wadm.yaml").display().to_string(),
        ),
        (
            "ORDERS_TELEMETRY_URL",
            format!("http://127.0.0.1:{}", instance.telemetry_port()),
        ),
        // The tests speak to NATS and wash as the admin identity; the security tests also try
        // the data plane's (rpc) credentials.
        (
            "ORDERS_NATS_CREDS",
            test.admin_creds().display().to_string(),
        ),
        ("WASH_CTL_CREDS", test.admin_creds().display().to_string()),
        ("WASH_RPC_CREDS", test.admin_creds().display().to_string()),
        (
            "ORDERS_NATS_RPC_CREDS",
            test.auth().join("rpc.creds").display().to_string(),
        ),
        ("ORDERS_ADMIN_TOKEN", admin_token.clone()),
    ];
    for (name, value) in lattice_env {
        std::env::set_var(name, value);
    }

    say("end-to-end tests (Rust, through HTTP and NATS)");
    run(cargo(layout).args([
        "test",
        "--release",
        "--test",
        "e2e",
        "--",
        "--ignored",
        "--test-threads",
        "4",
    ]))?;

    say("every shell block of README.md and docs/, as written (the README's twice in a row)");
    run(cargo(layout).args([
        "test",
        "--release",
        "--test",
        "docs",
        "--",
        "--ignored",
        "--nocapture",
    ]))?;

    say("fault tests (they stop parts of the lattice, so they run alone)");
    run(cargo(layout).args([
        "test",
        "--release",
        "--test",
        "faults",
        "--",
        "--ignored",
        "--test-threads",
        "1",
        "--nocapture",
    ]))?;

    let reports = state.join("reports");
    std::fs::create_dir_all(&reports)?;
    say("end-to-end tests (newman, the Postman collection; JUnit report in .state/test/reports)");
    postman_collection(layout, &base_url, &admin_token, &reports.join("newman.xml"))?;

    say("the console in a real browser (headless chromium; screenshot in .state/test/reports/console.png)");
    run(command(
        "node",
        [
            "--test",
            "--test-reporter=spec",
            "--test-reporter-destination=stdout",
            "--test-reporter=junit",
        ],
    )
    .arg(format!(
        "--test-reporter-destination={}",
        reports.join("browser.xml").display()
    ))
    .arg("tests/browser/console.test.cjs")
    .env("NODE_PATH", layout.node_modules())
    .env("ORDERS_SCREENSHOT", reports.join("console.png"))
    .current_dir(root))?;

    say(
        "the API fuzzed against the lattice from its contract (schemathesis; openapi/openapi.yaml)",
    );
    fuzz_the_contract(layout, test, &base_url)?;

    // The host serves the HTTP server, messaging and key-value in its process (locally and in the
    // Kubernetes host image); ORDERS_PROVIDERS=processes runs the same providers as processes,
    // over wRPC.
    say("the capabilities as provider processes (ORDERS_PROVIDERS=processes): redeployed so, every path served, the Postman collection again");
    std::env::set_var("ORDERS_PROVIDERS", "processes");
    let redeployed = test.up();
    std::env::remove_var("ORDERS_PROVIDERS");
    redeployed?;
    postman_collection(
        layout,
        &base_url,
        &admin_token,
        &reports.join("newman-http-server-process.xml"),
    )?;

    say("the test lattice's books after every test above: each balance against its ledger, each debit against its notification (orders-admin audit)");
    run(&mut command(
        layout.bin("orders-admin"),
        ["audit", "--wait", "30"],
    ))?;

    say("the replicated lattice (3 NATS servers, 2 hosts): a server, a host, both, and two servers killed while orders flow; backup and restore");
    test.down();
    ha.clean()?;
    ha.up()?;
    let instance = &ha.instance;
    let ha_env = [
        (
            "ORDERS_BASE_URL",
            format!("http://127.0.0.1:{}", instance.http_port),
        ),
        ("ORDERS_NATS_URL", instance.nats_urls()),
        ("ORDERS_HA_LISTENERS", instance.http_urls()),
        ("ORDERS_HA_MONITORS", instance.monitor_urls()),
        ("ORDERS_NATS_CREDS", ha.admin_creds().display().to_string()),
        ("ORDERS_ADMIN_TOKEN", ha.admin_token()?),
    ];
    for (name, value) in ha_env {
        std::env::set_var(name, value);
    }
    run(cargo(layout).args([
        "test",
        "--release",
        "--test",
        "ha",
        "--",
        "--ignored",
        "--test-threads",
        "1",
        "--nocapture",
    ]))
}

/// The Postman collection, for a fresh user, with its JUnit report at `report`.
fn postman_collection(
    layout: &Layout,
    base_url: &str,
    admin_token: &str,
    report: &Path,
) -> anyhow::Result<()> {
    let user = format!("Pavel-{}", unique());
    run(command(
        layout.node_modules().join(".bin/newman"),
        [
            "run",
            "postman/orders.postman_collection.json",
            "-e",
            "postman/test.postman_environment.json",
        ],
    )
    .arg("--env-var")
    .arg(format!("baseUrl={base_url}"))
    .arg("--env-var")
    .arg(format!("user={user}"))
    .arg("--env-var")
    .arg(format!("adminToken={admin_token}"))
    .args(["--bail", "-r", "cli,junit", "--reporter-junit-export"])
    .arg(report)
    .current_dir(&layout.root))
}

/// schemathesis drives the API from openapi/openapi.yaml. Every request carries the key of a user
/// made for the run; tests/contract/orders_hooks.py points half of the generated requests at that
/// user and checks that refused requests change nothing. It runs under the per-credential rate
/// limit (100/s), so that what is tested is the API, not 429. The examples that failed once are
/// kept outside the checkout and tried first on every later run. It runs in .state/test, where it
/// keeps its cache of failures (`st replay <id>` there reproduces one).
fn fuzz_the_contract(layout: &Layout, test: &Lattice, base_url: &str) -> anyhow::Result<()> {
    let user = format!("fuzz-{}", unique());
    let created: serde_json::Value = ureq::post(format!("{base_url}/CreateUser"))
        .send_json(serde_json::json!({ "user": user }))
        .context("POST /CreateUser for the fuzzer's user")?
        .body_mut()
        .read_json()?;
    let key = created["api_key"]
        .as_str()
        .context("/CreateUser answered no api_key")?;
    let root = &layout.root;
    run(command(layout.venv().join("bin/schemathesis"), ["run"])
        .arg(root.join("openapi/openapi.yaml"))
        .args(["--url", base_url, "-H"])
        .arg(format!("Authorization: Bearer {key}"))
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args([
            "--workers",
            "1",
            "--max-examples",
            "50",
            "--rate-limit",
            "80/s",
        ])
        .arg("--generation-database")
        .arg(layout.cache.join("schemathesis-examples"))
        .args([
            "--report",
            "junit",
            "--report-junit-path",
            "reports/schemathesis.xml",
        ])
        .env("SCHEMATHESIS_HOOKS", "orders_hooks")
        .env("PYTHONPATH", root.join("tests/contract"))
        .env("ORDERS_FUZZ_USER", &user)
        .env(
            "ORDERS_MONITOR_URL",
            format!("http://127.0.0.1:{}", test.instance.monitor_port()),
        )
        .current_dir(test.state()))
}

/// A name part no earlier run used: nanoseconds since the epoch.
fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos())
}

/// The last 40 warnings and errors of the logs in `logs`, without colours, cut at 400 characters.
fn print_warnings(logs: &Path) {
    let Ok(entries) = std::fs::read_dir(logs) else {
        return;
    };
    let mut files: Vec<_> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    files.sort();
    let lines: Vec<String> = files
        .iter()
        .filter(|file| file.extension().is_some_and(|ext| ext == "log"))
        .filter_map(|file| std::fs::read(file).ok())
        .flat_map(|bytes| {
            String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|line| line.contains("WARN") || line.contains("ERROR"))
                .map(|line| without_colours(line).chars().take(400).collect())
                .collect::<Vec<String>>()
        })
        .collect();
    for line in &lines[lines.len().saturating_sub(40)..] {
        println!("{line}");
    }
}

/// `line` without its ANSI colour sequences (`ESC [ … m`).
fn without_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coloured_log_line_is_printed_plain() {
        assert_eq!(
            without_colours("\x1b[2m2026\x1b[0m \x1b[33m WARN\x1b[0m slow"),
            "2026  WARN slow"
        );
    }
}
