//! `raftka-check`: checks a recorded history file and prints the report.
//!
//! Exit status: 0 valid, 1 invalid, 2 the history (or config) could not be read or the
//! arguments are wrong, 3 unknown, 4 vacuous. Anything but 0 fails the run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use raftka_jepsen::checker::{check, CheckConfig, Verdict};
use raftka_jepsen::history::read_jsonl;

/// Check a Raftka fault-run history (JSON lines) for consistency anomalies.
#[derive(Debug, Parser)]
#[command(name = "raftka-check", version)]
struct Args {
    /// The history file, one JSON event per line.
    history: PathBuf,
    /// A JSON file with checker settings (any subset of the fields of `CheckConfig`); the
    /// flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the report as JSON instead of the human-readable summary.
    #[arg(long)]
    json: bool,
    /// Minimum `ok` sends per key for the run to count.
    #[arg(long)]
    min_ok_sends: Option<usize>,
    /// Minimum `ok` polls returning records, per key, for the run to count.
    #[arg(long)]
    min_ok_polls: Option<usize>,
    /// A process whose polls all belong to the final phase (repeatable).
    #[arg(long = "final-process")]
    final_processes: Vec<u64>,
    /// Do not check the high watermark in real time (clients fetched from followers).
    #[arg(long)]
    no_realtime_hw: bool,
    /// Do not require a final phase.
    #[arg(long)]
    no_final_phase: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match config(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("raftka-check: {e}");
            return ExitCode::from(2);
        }
    };
    let history = match read_jsonl(&args.history) {
        Ok(history) => history,
        Err(e) => {
            eprintln!("raftka-check: {}: {e}", args.history.display());
            return ExitCode::from(2);
        }
    };
    let report = check(&history, &config);
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.summary());
    }
    ExitCode::from(match report.verdict {
        Verdict::Valid => 0,
        Verdict::Invalid => 1,
        Verdict::Unknown => 3,
        Verdict::Vacuous => 4,
    })
}

fn config(args: &Args) -> Result<CheckConfig, String> {
    let mut config = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => CheckConfig::default(),
    };
    if let Some(n) = args.min_ok_sends {
        config.min_ok_sends_per_key = n;
    }
    if let Some(n) = args.min_ok_polls {
        config.min_ok_polls_per_key = n;
    }
    config.final_processes.extend(&args.final_processes);
    config.realtime_high_watermark &= !args.no_realtime_hw;
    config.require_final_phase &= !args.no_final_phase;
    Ok(config)
}
