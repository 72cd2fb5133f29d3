//! orders-nats-monitor: a lattice's durable consumers, from its NATS servers' monitoring
//! endpoints (see the library). What `make status` shows, what `make run` waits for before it
//! calls the lattice ready, and what the benchmark waits for before it reads NATS's counters.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The monitoring endpoints, comma-separated (`http://127.0.0.1:8222`, client port + 4000).
    monitors: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connections, streams, and each durable consumer's backlog.
    Show,
    /// Exits 0 when no durable consumer has work waiting or in hand, 1 otherwise.
    Drained,
    /// Exits 0 when each named durable consumer has a pull waiting (someone reads it), 1 otherwise.
    Pulling { names: Vec<String> },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let report = orders_nats_monitor::read(&cli.monitors).await;
    let ok = match cli.command {
        Command::Show => {
            println!("NATS: {} connections", report.connections);
            for stream in &report.streams {
                println!("  stream {}: {} messages", stream.name, stream.messages);
                for c in &stream.consumers {
                    println!(
                        "    consumer {}: {} waiting, {} being handled, {} redelivered",
                        c.name, c.pending, c.in_hand, c.redelivered
                    );
                }
            }
            true
        }
        Command::Drained => report.drained(),
        Command::Pulling { names } => {
            let pulling = report.pulling();
            let all = names.iter().all(|name| pulling.contains(&name.as_str()));
            if !all {
                eprintln!("durable consumers pulling: {pulling:?}");
            }
            all
        }
    };
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
