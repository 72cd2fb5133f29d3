//! NATS authentication for one lattice instance, in the decentralized (JWT) form that NATS, the
//! wasmCloud host, wadm and wash all accept:
//!
//! - an **operator** the NATS server trusts, and under it
//! - the **system account** (the server's own subjects) and the **lattice account**, with
//!   JetStream, of which every identity is a user;
//! - one **user** per [`Identity`]: a JWT the account signs, stating the user's permissions, and the
//!   user's seed, written together as a standard creds file.
//!
//! The server learns the operator and the accounts from the config [`Authority::server_config`]
//! writes (memory resolver, accounts preloaded), refuses anonymous connections, and enforces the
//! permissions each user's JWT states.
//!
//! Why our own issuer: `nsc`, NATS's tool for this, is in none of the registries we can reach;
//! the crate `nats-jwt` 0.3 writes neither operator JWTs nor JetStream limits (without which the
//! account has no JetStream), and `nats-io-jwt` 0.1 rewrites its own sources in cargo's registry
//! at build time. The claims are a few JSON fields; signing is `nkeys`, which the host uses too.

mod identity;
pub mod jwt;

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::Path;

use anyhow::{Context as _, Result};
use nkeys::KeyPair;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use identity::{DataPlane, Identity, Permissions, Rule};
pub use orders_nats_creds::Credentials;

/// The keys that make a lattice instance's trust: created once, kept, so that the lattice account
/// (whose public key names JetStream's store for it) stays the same from one start to the next.
#[derive(Serialize, Deserialize)]
pub struct Authority {
    operator: String,
    system_account: String,
    account: String,
}

/// The file, in an instance's auth folder, that keeps the [`Authority`]'s seeds.
const AUTHORITY_FILE: &str = "authority.json";
/// The NATS server config the issuer writes beside the creds files.
pub const SERVER_CONFIG_FILE: &str = "server.conf";

impl Authority {
    /// The authority kept in `dir`, made (and kept) on first use.
    pub fn load_or_create(dir: &Path) -> Result<Self> {
        let path = dir.join(AUTHORITY_FILE);
        if path.exists() {
            let text = fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            return serde_json::from_str(&text)
                .with_context(|| format!("{} is not an authority file", path.display()));
        }
        let seed = |key: KeyPair| key.seed().expect("a generated key pair has its seed");
        let authority = Self {
            operator: seed(KeyPair::new_operator()),
            system_account: seed(KeyPair::new_account()),
            account: seed(KeyPair::new_account()),
        };
        write_secret(&path, &serde_json::to_string_pretty(&authority)?)?;
        Ok(authority)
    }

    fn keys(&self) -> Result<(KeyPair, KeyPair, KeyPair)> {
        let key = |seed: &str| KeyPair::from_seed(seed).context("a seed in the authority file");
        Ok((
            key(&self.operator)?,
            key(&self.system_account)?,
            key(&self.account)?,
        ))
    }

    /// The lattice account's public key: JetStream keeps the account's streams under this name.
    pub fn account_public_key(&self) -> Result<String> {
        Ok(self.keys()?.2.public_key())
    }

    /// The NATS server config that trusts this authority: the operator's JWT, the system account,
    /// and both accounts' JWTs preloaded into the memory resolver.
    pub fn server_config(&self) -> Result<String> {
        let (operator, system, account) = self.keys()?;
        let operator_jwt = jwt::sign(
            &operator,
            &operator.public_key(),
            "orders-lattice",
            json!({ "type": "operator", "version": 2, "system_account": system.public_key() }),
        )?;
        // -1: unlimited. JetStream is on for an account only when its storage limits say so; the
        // server refuses JetStream in the system account.
        let mut limits = json!({
            "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
            "wildcards": true, "conn": -1, "leaf": -1,
        });
        let sign_account = |account: &KeyPair, name: &str, limits: &serde_json::Value| {
            let claims = json!({ "type": "account", "version": 2, "limits": limits });
            jwt::sign(&operator, &account.public_key(), name, claims)
        };
        let system_jwt = sign_account(&system, "SYS", &limits)?;
        for jetstream_limit in ["mem_storage", "disk_storage", "streams", "consumer"] {
            limits[jetstream_limit] = json!(-1);
        }
        let account_jwt = sign_account(&account, "ORDERS", &limits)?;
        Ok(format!(
            "# Written by orders-nats-auth; every client must present a user JWT of these accounts.\n\
             operator: \"{operator_jwt}\"\n\
             system_account: \"{system}\"\n\
             resolver: MEMORY\n\
             resolver_preload: {{\n  {system}: \"{system_jwt}\"\n  {account}: \"{account_jwt}\"\n}}\n",
            system = system.public_key(),
            account = account.public_key(),
        ))
    }

    /// A new user of the lattice account for `identity`, with the permissions it has on `plane`.
    pub fn user(&self, identity: Identity, plane: &DataPlane) -> Result<Credentials> {
        let (_, _, account) = self.keys()?;
        let user = KeyPair::new_user();
        let mut nats =
            json!({ "type": "user", "version": 2, "subs": -1, "data": -1, "payload": -1 });
        if let Some(permissions) = identity.permissions(plane) {
            nats["pub"] = permissions.publish.to_json();
            nats["sub"] = permissions.subscribe.to_json();
        }
        let token = jwt::sign(&account, &user.public_key(), identity.name(), nats)?;
        Ok(Credentials::new(token, user.seed()?))
    }

    /// Writes `dir`'s server config and one creds file per identity, each readable by its owner
    /// alone. Users are issued anew every time, so their permissions are always the current ones;
    /// the authority stays.
    pub fn issue(&self, dir: &Path, plane: &DataPlane) -> Result<()> {
        write_secret(&dir.join(SERVER_CONFIG_FILE), &self.server_config()?)?;
        for identity in Identity::ALL {
            let creds = self.user(identity, plane)?;
            write_secret(&dir.join(identity.creds_file()), &creds.to_creds_file())?;
        }
        Ok(())
    }
}

/// Creates `dir` readable by its owner alone (0700), if it is missing.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Writes `text` to `path` with mode 0600, replacing the file (never widening an old mode).
fn write_secret(path: &Path, text: &str) -> Result<()> {
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane() -> DataPlane {
        DataPlane::example()
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("nats-auth-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        create_private_dir(&dir).unwrap();
        dir
    }

    #[test]
    fn the_authority_is_made_once_and_kept() {
        let dir = scratch("kept");
        let first = Authority::load_or_create(&dir).unwrap();
        let again = Authority::load_or_create(&dir).unwrap();
        assert_eq!(
            first.account_public_key().unwrap(),
            again.account_public_key().unwrap()
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn every_secret_file_is_readable_by_its_owner_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = scratch("modes");
        Authority::load_or_create(&dir)
            .unwrap()
            .issue(&dir, &plane())
            .unwrap();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let files: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 2 + Identity::ALL.len());
        for file in files {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_user_is_signed_by_the_lattice_account_and_states_its_permissions() {
        let dir = scratch("user");
        let authority = Authority::load_or_create(&dir).unwrap();
        let creds = authority.user(Identity::Rpc, &plane()).unwrap();
        let claims = jwt::verified_claims(&creds.jwt).unwrap();
        assert_eq!(claims["iss"], authority.account_public_key().unwrap());
        assert_eq!(claims["sub"], creds.key_pair().unwrap().public_key());
        assert_eq!(claims["name"], "rpc");
        let allowed = claims["nats"]["pub"]["allow"].as_array().unwrap();
        assert!(allowed.contains(&json!("orders.placed")));
        assert!(!allowed.contains(&json!("wasmbus.ctl.>")));
        let admin =
            jwt::verified_claims(&authority.user(Identity::Admin, &plane()).unwrap().jwt).unwrap();
        assert!(admin["nats"].get("pub").is_none(), "the whole account");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_server_trusts_the_operator_and_preloads_both_accounts() {
        let dir = scratch("server");
        let authority = Authority::load_or_create(&dir).unwrap();
        let config = authority.server_config().unwrap();
        let account = authority.account_public_key().unwrap();
        assert!(config.contains("resolver: MEMORY"));
        let account_line = config
            .lines()
            .find(|l| l.trim_start().starts_with(&account))
            .expect("the lattice account is preloaded");
        let account_jwt = account_line.split('"').nth(1).unwrap();
        let claims = jwt::verified_claims(account_jwt).unwrap();
        assert_eq!(claims["nats"]["limits"]["disk_storage"], -1, "JetStream on");
        fs::remove_dir_all(dir).unwrap();
    }
}
