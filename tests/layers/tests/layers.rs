use orders_layers::{arrows, broken_rule, Arrow, Crate};

/// Read when the test runs, not compiled in: the compiled test is shared by every checkout that
/// uses the same target directory, and must read the one being tested.
fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo test sets {name}"))
}

fn workspace_metadata() -> serde_json::Value {
    metadata_of("Cargo.toml")
}

/// `cargo metadata` of the workspace whose manifest is `manifest`, relative to the checkout.
fn metadata_of(manifest: &str) -> serde_json::Value {
    let checkout = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("../..");
    let output = std::process::Command::new(var("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(checkout.join(manifest))
        .current_dir(&checkout)
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

fn arrow(from: &str, to: &str, dev: bool) -> Arrow {
    let at = |folder: &str| Crate {
        name: folder.rsplit('/').next().unwrap().to_string(),
        folder: folder.to_string(),
    };
    Arrow {
        from: at(from),
        to: at(to),
        dev,
    }
}

#[test]
fn the_operations_tool_imports_no_crate_of_the_workspace() {
    let ops = metadata_of("tools/ops/Cargo.toml");
    let dependencies = ops["packages"][0]["dependencies"].as_array().unwrap();
    assert!(dependencies.len() > 3, "its dependencies were read");
    let local: Vec<&str> = dependencies
        .iter()
        .filter(|dependency| dependency["path"].is_string())
        .filter_map(|dependency| dependency["name"].as_str())
        .collect();
    assert!(
        local.is_empty(),
        "orders-ops imports workspace crates: {local:?}"
    );
}

#[test]
fn every_arrow_between_the_workspace_crates_runs_the_right_way() {
    let all = arrows(&workspace_metadata());
    assert!(
        all.len() > 20,
        "the workspace's arrows were read: {} found",
        all.len()
    );
    let broken: Vec<String> = all.iter().filter_map(broken_rule).collect();
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

/// Whether `from` importing `to` breaks a rule of the layers.
fn breaks(from: &str, to: &str) -> bool {
    broken_rule(&arrow(from, to, false)).is_some()
}

/// Whether `from` importing `to` in its tests only (a dev-dependency) breaks a rule.
fn breaks_in_tests(from: &str, to: &str) -> bool {
    broken_rule(&arrow(from, to, true)).is_some()
}

#[test]
fn a_provider_that_imports_the_application_breaks_the_layers() {
    assert!(breaks("providers/http-server", "components/domain"));
    assert!(breaks_in_tests("lattice/host", "tools/admin"));
}

#[test]
fn a_tool_or_a_benchmark_that_reaches_into_a_provider_breaks_the_layers() {
    assert!(breaks("tools/admin", "providers/keyvalue-jetstream"));
    assert!(breaks("bench/harness", "providers/keyvalue-jetstream"));
    assert!(breaks("lattice/host", "providers/support"));
}

#[test]
fn the_application_reaches_the_platform_through_the_conventions_only() {
    assert!(!breaks("components/domain", "lattice/conventions"));
    assert!(breaks("tools/admin", "lattice/nats-auth"));
}

#[test]
fn the_platform_may_start_a_nats_server_in_its_own_tests_only() {
    assert!(!breaks_in_tests("providers/support", "tests/nats-server"));
    assert!(breaks("providers/support", "tests/nats-server"));
}

#[test]
fn the_host_may_serve_a_provider_in_its_process_but_not_reach_into_what_providers_share() {
    assert!(!breaks("lattice/host", "providers/http-server"));
    assert!(breaks("lattice/host", "providers/support"));
    assert!(breaks("lattice/wadm", "providers/http-server"));
}

#[test]
fn providers_share_their_support_crate() {
    assert!(!breaks("providers/http-server", "providers/support"));
}
