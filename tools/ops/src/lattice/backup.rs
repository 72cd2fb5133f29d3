//! Backing up a stopped lattice instance and restoring it.

use std::path::{Path, PathBuf};

use anyhow::bail;

use super::{create_private_dir, Lattice};
use crate::process::{command, output, run, say, succeeds};

/// What a backup holds: JetStream's store (streams, key-value buckets, wadm's and the host's
/// state), the authority whose account names that store, and the API key secret and admin token
/// (without them every user's key would stop working). Credentials are issued anew at every start
/// and logs are not state, so neither is kept.
const STATE_PARTS: [&str; 3] = ["jetstream", "nats/authority.json", "secrets"];

impl Lattice {
    fn backups(&self) -> PathBuf {
        self.layout.root.join(".state/backups")
    }

    fn has_state(&self) -> bool {
        self.state().join("jetstream").is_dir()
            && self.state().join("nats/authority.json").is_file()
    }

    /// A backup of the stopped instance: what a restart keeps. NATS must be stopped: its store
    /// is only consistent on disk when no server writes it.
    pub fn backup(&self, archive: Option<PathBuf>) -> anyhow::Result<()> {
        self.refuse_if_running()?;
        if !self.has_state() {
            bail!(
                "'{}' has no state to back up ({})",
                self.instance.name,
                self.state().display()
            );
        }
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let archive = archive.unwrap_or_else(|| {
            self.backups().join(format!(
                "orders-{}-{}.tar.gz",
                self.instance.name,
                compact(&now)
            ))
        });
        if let Some(folder) = archive.parent() {
            std::fs::create_dir_all(folder)?;
        }
        // A description first, so `tar -xOf <archive> orders-backup.json` tells what an archive
        // holds.
        let about = tempdir_in(&std::env::temp_dir(), "orders-backup")?;
        let nats_version = output(&mut command(self.layout.nats_server(), ["--version"]))?;
        let description = serde_json::json!({
            "instance": self.instance.name,
            "nats_server": nats_version.trim(),
            "created": now,
        });
        std::fs::write(about.join("orders-backup.json"), format!("{description}\n"))?;
        let partial = PathBuf::from(format!("{}.partial", archive.display()));
        let packed = run(command("tar", ["-czf"])
            .arg(&partial)
            .arg("-C")
            .arg(&about)
            .arg("orders-backup.json")
            .arg("-C")
            .arg(self.state())
            .args(STATE_PARTS));
        let _ = std::fs::remove_dir_all(&about);
        packed?;
        set_private(&partial)?;
        std::fs::rename(&partial, &archive)?;
        let size = std::fs::metadata(&archive)?.len();
        say(format!(
            "backed up '{}' to {} ({})",
            self.instance.name,
            archive.display(),
            human_size(size)
        ));
        Ok(())
    }

    /// Puts a backup in place of the stopped instance's state, after backing up the state it
    /// replaces, so a restore can itself be undone.
    pub fn restore(&self, archive: &Path) -> anyhow::Result<()> {
        self.refuse_if_running()?;
        if !archive.is_file() {
            bail!("no such backup: {}", archive.display());
        }
        // Unpacked beside the state it replaces, so that moving it there is a rename on one file
        // system (the system's temporary folder is often another).
        let unpacked = tempdir_in(&self.layout.root.join(".state"), "restore")?;
        let result = self.restore_from(archive, &unpacked);
        let _ = std::fs::remove_dir_all(&unpacked);
        result
    }

    fn restore_from(&self, archive: &Path, unpacked: &Path) -> anyhow::Result<()> {
        let not_a_backup =
            |why: &str| anyhow::anyhow!("{} is not an orders backup ({why})", archive.display());
        if !succeeds(
            command("tar", ["-xzf"])
                .arg(archive)
                .arg("-C")
                .arg(unpacked),
        ) {
            return Err(not_a_backup("not a readable .tar.gz"));
        }
        for part in ["orders-backup.json"].iter().chain(&STATE_PARTS) {
            if !unpacked.join(part).exists() {
                return Err(not_a_backup(&format!("it lacks {part}")));
            }
        }
        if self.has_state() {
            let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
            self.backup(Some(self.backups().join(format!(
                "orders-{}-before-restore-{}.tar.gz",
                self.instance.name,
                compact(&now)
            ))))?;
        }
        let state = self.state();
        for part in ["jetstream", "secrets", "nats"] {
            let _ = std::fs::remove_dir_all(state.join(part));
        }
        let _ = std::fs::remove_file(state.join("deployed"));
        std::fs::create_dir_all(state.join("nats"))?;
        for part in STATE_PARTS {
            std::fs::rename(unpacked.join(part), state.join(part))?;
        }
        let about = std::fs::read_to_string(unpacked.join("orders-backup.json"))?;
        say(format!(
            "restored '{}' from {} ({}); start it with make run",
            self.instance.name,
            archive.display(),
            about.trim()
        ));
        Ok(())
    }
}

fn set_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// A new private folder in `parent`.
fn tempdir_in(parent: &Path, prefix: &str) -> anyhow::Result<PathBuf> {
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
    let dir = parent.join(format!(".{prefix}-{}", hex::encode(suffix)));
    create_private_dir(&dir)?;
    Ok(dir)
}

/// `2026-12-07T08:30:00Z` as `20261207T083000Z`, for file names.
fn compact(rfc3339: &str) -> String {
    rfc3339.replace(['-', ':'], "")
}

fn human_size(bytes: u64) -> String {
    match bytes {
        0..=1023 => format!("{bytes} B"),
        1024..=1_048_575 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_carry_a_compact_time_and_sizes_read_as_people_write_them() {
        assert_eq!(compact("2026-12-07T08:30:00Z"), "20261207T083000Z");
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(3 * 1_048_576 / 2), "1.5 MiB");
    }
}
