//! `report.md`: the machine, a summary of verdicts, then each experiment's method, table,
//! verdicts and notes.

use std::fmt::Write;

use crate::results::{LabReport, Table};

/// The whole report as Markdown.
pub fn render(report: &LabReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# triad lab ({} run)\n", report.scale);
    for line in report.machine.header_lines() {
        let _ = writeln!(out, "- {line}");
    }
    let _ = writeln!(
        out,
        "- {} experiment(s) in {:.1} s\n",
        report.experiments.len(),
        report.elapsed_s
    );
    for note in &report.notes {
        let _ = writeln!(out, "> {note}\n");
    }
    out.push_str("## Summary\n\n");
    let _ = writeln!(out, "{}\n", super::VERDICT_RULE);
    out.push_str(&table(&summary_table(report)));
    for failure in &report.failures {
        let _ = writeln!(out, "\n**{} failed:** {}", failure.id, failure.error);
    }
    for experiment in &report.experiments {
        let _ = writeln!(
            out,
            "\n## {} — {}\n\nSeed §{} · {:.1} s\n\n**Method.** {}\n",
            experiment.id,
            experiment.title,
            experiment.seed_section,
            experiment.elapsed_s,
            experiment.method
        );
        out.push_str(&table(&experiment.table));
        if !experiment.verdicts.is_empty() {
            out.push_str("\n| claim (seed) | verdict | evidence |\n|---|---|---|\n");
            for v in &experiment.verdicts {
                let _ = writeln!(
                    out,
                    "| {} <br> 「{}」 | **{}** | {} |",
                    escape(&v.claim),
                    escape(&v.quote),
                    v.outcome.word(),
                    escape(&v.evidence)
                );
            }
        }
        for note in &experiment.notes {
            let _ = writeln!(out, "\n> {note}");
        }
    }
    out
}

/// One row per claim: experiment, claim, verdict, evidence.
pub fn summary_table(report: &LabReport) -> Table {
    let mut summary = Table::new(["experiment", "claim", "verdict", "measured"]);
    for experiment in &report.experiments {
        for v in &experiment.verdicts {
            summary.row([
                experiment.id.clone(),
                v.claim.clone(),
                v.outcome.word().to_owned(),
                v.evidence.clone(),
            ]);
        }
    }
    summary
}

fn table(table: &Table) -> String {
    let mut out = String::new();
    let row = |cells: &[String]| {
        let cells: Vec<String> = cells.iter().map(|c| escape(c)).collect();
        format!("| {} |\n", cells.join(" | "))
    };
    out.push_str(&row(&table.columns));
    out.push_str(&format!("|{}\n", "---|".repeat(table.columns.len())));
    for cells in &table.rows {
        out.push_str(&row(cells));
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
