//! `raftka`: the Raftka command-line tool.

mod bench;

use clap::{Parser, Subcommand};

/// Raftka's command-line tool.
#[derive(Parser)]
#[command(
    name = "raftka",
    version,
    about = "Command-line tool for Raftka, a Raft-replicated event log"
)]
struct Cli {
    /// Nodes to talk to, comma-separated host:port; the CLI fails over between them.
    #[arg(
        long,
        env = "RAFTKA_BOOTSTRAP",
        default_value = "127.0.0.1:19091",
        value_delimiter = ',',
        global = true
    )]
    bootstrap: Vec<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmarks that measure and then verify what they measured.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let client = match raftka_client::Client::new(&cli.bootstrap) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("raftka: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Bench(b) => bench::run(client, b).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raftka: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
