//! `orders-nats-auth`: the NATS credentials of a lattice instance.
//!
//!   orders-nats-auth issue --dir DIR [--lattice default] [data plane: --stream S --bucket B
//!                          --subject S --secret-config NAME …, as `orders-manifest data-plane` prints]
//!   orders-nats-auth describe FILE.creds
//!   orders-nats-auth account --dir DIR     (the lattice account's public key: its JetStream folder)
//!
//! `issue` makes the authority once (kept in DIR) and writes, every time, DIR/server.conf for
//! nats-server and one creds file per identity (host, wadm, admin, rpc), mode 0600 in a 0700
//! folder. Nothing secret is ever printed.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use orders_nats_auth::{create_private_dir, jwt, Authority, Credentials, DataPlane};

#[derive(Parser)]
#[command(about = "The NATS credentials of a lattice instance")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes the server config and a creds file per identity into DIR.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        plane: DataPlane,
    },
    /// Prints who a creds file is and what it may do (never its seed).
    Describe { creds: PathBuf },
    /// Prints the public key of the lattice account kept in DIR (made if missing).
    Account {
        #[arg(long)]
        dir: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Issue { dir, plane } => {
            create_private_dir(&dir)?;
            Authority::load_or_create(&dir)?.issue(&dir, &plane)?;
        }
        Command::Account { dir } => {
            create_private_dir(&dir)?;
            println!("{}", Authority::load_or_create(&dir)?.account_public_key()?);
        }
        Command::Describe { creds } => {
            let claims = jwt::verified_claims(&Credentials::read(&creds)?.jwt)?;
            let nats = &claims["nats"];
            let rule = |side: &str| match nats.get(side) {
                Some(rule) if rule.get("allow").is_some() || rule.get("deny").is_some() => {
                    rule.to_string()
                }
                _ => "everything in the account".to_string(),
            };
            println!("identity   {}", claims["name"].as_str().unwrap_or("?"));
            println!("user       {}", claims["sub"].as_str().unwrap_or("?"));
            println!("account    {}", claims["iss"].as_str().unwrap_or("?"));
            println!("publish    {}", rule("pub"));
            println!("subscribe  {}", rule("sub"));
        }
    }
    Ok(())
}
