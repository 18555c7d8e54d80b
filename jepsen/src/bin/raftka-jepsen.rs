//! `raftka-jepsen`: runs fault-injection cells against real nodes and prints a verdict table.
//!
//! Normally started by `jepsen/run`, inside the client namespace of a network built by
//! `jepsen/netns.sh up`. Exit status: 0 when every cell passed (with `--canary NAME=BIN`: when
//! every canary cell was caught, i.e. its checker found anomalies), 1 otherwise, 2 on bad
//! arguments.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use raftka_jepsen::harness::cell::{run_cell, slug, CellResult, CellSpec};
use raftka_jepsen::harness::profile;
use raftka_jepsen::harness::table;
use raftka_jepsen::harness::topology::Topology;

/// Run Raftka fault-injection cells (workload × nemesis) and check their histories.
#[derive(Debug, Parser)]
#[command(name = "raftka-jepsen", version)]
struct Args {
    /// The raftka-node binary.
    #[arg(long)]
    bin: PathBuf,
    /// Where each cell's directory (history, report, node logs) goes.
    #[arg(long)]
    results: PathBuf,
    /// `ci` (about 5 minutes) or `full` (about an hour).
    #[arg(long, default_value = "ci")]
    profile: String,
    /// Seed of every schedule and client choice; random when absent. A cell re-runs from it.
    #[arg(long)]
    seed: Option<u64>,
    /// Run only these cells (`workload/nemesis`, e.g. `queue/kill-one`); repeatable.
    #[arg(long = "cell")]
    cells: Vec<String>,
    /// Run the canary cell of NAME with the canary build BIN instead of the profile;
    /// repeatable. Each must be reported FAILED.
    #[arg(long = "canary", value_name = "NAME=BIN")]
    canaries: Vec<String>,
    /// Number of nodes the cluster starts with.
    #[arg(long, default_value_t = 5)]
    nodes: u64,
    /// Spare slots for nodes that join later (membership cells); the network must have been
    /// built for `nodes + spares` nodes.
    #[arg(long, default_value_t = 0)]
    spares: u64,
    /// Only list the cells that would run.
    #[arg(long)]
    list: bool,
}

fn cells(args: &Args) -> Result<Vec<CellSpec>, String> {
    if !args.canaries.is_empty() {
        let mut out = Vec::new();
        for item in &args.canaries {
            let (name, bin) = item
                .split_once('=')
                .ok_or_else(|| format!("--canary {item}: expected NAME=BIN"))?;
            out.push(
                profile::canary(name, &PathBuf::from(bin))
                    .ok_or_else(|| format!("unknown canary '{name}'"))?,
            );
        }
        return Ok(filter(out, &args.cells));
    }
    let all = profile::profile(&args.profile, &args.bin)
        .ok_or_else(|| format!("unknown profile '{}' (ci or full)", args.profile))?;
    if args.cells.is_empty() {
        return Ok(all);
    }
    let mut out = Vec::new();
    for name in &args.cells {
        match all.iter().find(|c| &c.name == name) {
            Some(c) => out.push(c.clone()),
            None => out.push(
                profile::ad_hoc(name, &args.profile, &args.bin)
                    .ok_or_else(|| format!("unknown cell '{name}'"))?,
            ),
        }
    }
    Ok(out)
}

fn filter(cells: Vec<CellSpec>, names: &[String]) -> Vec<CellSpec> {
    if names.is_empty() {
        return cells;
    }
    cells
        .into_iter()
        .filter(|c| names.contains(&c.name))
        .collect()
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cells = match cells(&args) {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => {
            eprintln!("raftka-jepsen: no cell selected");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("raftka-jepsen: {e}");
            return ExitCode::from(2);
        }
    };
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000_000)
            .unwrap_or(1)
    });
    if args.list {
        for c in &cells {
            println!(
                "{} ({} s, {} faults)",
                c.name,
                c.duration.as_secs(),
                c.nemesis.faults.len()
            );
        }
        return ExitCode::SUCCESS;
    }
    let canary_mode = !args.canaries.is_empty();
    let topology = Topology {
        nodes: args.nodes,
        spares: args.spares,
    };
    if let Some(c) = cells.iter().find(|c| c.nemesis.changes_membership()) {
        if args.spares == 0 {
            eprintln!(
                "raftka-jepsen: cell {} adds nodes: it needs --spares (jepsen/run passes 3)",
                c.name
            );
            return ExitCode::from(2);
        }
    }
    let pid_dir = args.results.join("pids");
    eprintln!(
        "raftka-jepsen: seed {seed}, {} cell(s), results in {}",
        cells.len(),
        args.results.display()
    );
    let mut results: Vec<CellResult> = Vec::new();
    for (i, spec) in cells.iter().enumerate() {
        eprintln!(
            "[{}/{}] {} ({} s of clients, nemesis {})",
            i + 1,
            cells.len(),
            spec.name,
            spec.duration.as_secs(),
            spec.nemesis.name
        );
        let dir = args.results.join(slug(&spec.name));
        let r = run_cell(spec, seed, &dir, &pid_dir, topology);
        eprintln!(
            "    {} in {} s: {}",
            table::verdict_word(&r),
            r.elapsed.as_secs(),
            r.report
                .as_ref()
                .map(|rep| rep.summary().lines().next().unwrap_or("").to_owned())
                .unwrap_or_else(|| r.problems.join("; "))
        );
        if r.passed() {
            // Keep logs and histories; drop the bulky node data of cells that passed.
            for id in topology.slots() {
                let _ = std::fs::remove_dir_all(dir.join(format!("node-{id}")).join("data"));
            }
        }
        results.push(r);
    }
    println!();
    print!("{}", table::render(&results));
    println!();
    let passed = results.iter().filter(|r| r.passed()).count();
    let failed = results.len() - passed;
    let mode = if canary_mode {
        "--canary".to_owned()
    } else {
        format!("--profile {}", args.profile)
    };
    println!("seed {seed}; re-run one cell with: jepsen/run {mode} --seed {seed} --cell NAME");
    // The last line is always `N passed, N failed`; in canary mode the line before says whether
    // every canary was caught, which is what decides the exit status there.
    let caught = results.iter().filter(|r| r.has_anomalies()).count();
    if canary_mode {
        println!(
            "canaries: {caught} of {} caught (the checker found anomalies)",
            results.len()
        );
    }
    println!("{passed} passed, {failed} failed");
    if canary_mode {
        return if caught == results.len() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
