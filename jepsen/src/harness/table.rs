//! The verdict table printed after a run, one row per cell.

use std::fmt::Write as _;

use super::cell::CellResult;
use crate::checker::Verdict;

/// How a cell's row reads in the verdict column.
pub fn verdict_word(r: &CellResult) -> &'static str {
    if r.passed() {
        "PASS"
    } else {
        "FAILED"
    }
}

/// The checker's verdict, or why there is none.
fn checker_word(r: &CellResult) -> String {
    match &r.report {
        Some(rep) => rep.verdict.to_string(),
        None => "no history".into(),
    }
}

/// A short list of anomaly kinds with counts, then other problems.
fn findings(r: &CellResult) -> String {
    let mut parts = Vec::new();
    if let Some(rep) = &r.report {
        for (kind, n) in &rep.anomaly_counts {
            parts.push(format!("{kind}×{n}"));
        }
        if rep.verdict == Verdict::Vacuous {
            parts.push(format!("vacuous: {}", rep.vacuity.join("; ")));
        }
        for u in &rep.unknown {
            parts.push(format!("unknown: {u}"));
        }
    }
    for p in &r.problems {
        parts.push(p.clone());
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// The verdict table as Markdown (readable in a terminal, pastable into RESULTS.md).
pub fn render(results: &[CellResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| cell | verdict | checker | secs | ops | ok | fail | info | anomalies / problems | history |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        let stats = r.report.as_ref().map(|rep| &rep.stats);
        let num = |f: fn(&crate::checker::Stats) -> usize| {
            stats.map_or_else(|| "-".to_owned(), |s| f(s).to_string())
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            verdict_word(r),
            checker_word(r),
            r.elapsed.as_secs(),
            num(|s| s.operations),
            num(|s| s.ok),
            num(|s| s.fail),
            num(|s| s.info),
            findings(r).replace('|', "/"),
            r.history.display()
        );
    }
    out
}
