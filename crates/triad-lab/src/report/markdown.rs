//! `report.md`: the machine, the seed's own tables with this run's figures, the verdicts
//! counted and every claim, then each experiment's method, table, verdicts and notes.

use std::fmt::Write;

use super::decision_table;
use super::seed_table::{self, SeedTable};
use super::text::counts;
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
    out.push_str("## The seed's tables, measured on this machine\n");
    for table in seed_table::tables(report) {
        out.push_str(&seed(&table));
    }
    out.push_str(&decisions(report));
    out.push_str("\n## Summary\n\n");
    let listed: Vec<String> = counts(report)
        .iter()
        .map(|(outcome, n)| format!("{n} {}", outcome.word()))
        .collect();
    let _ = writeln!(out, "**Verdicts:** {}.\n", listed.join(", "));
    let _ = writeln!(out, "{}\n", super::VERDICT_RULE);
    out.push_str(&table(&summary_table(report)));
    for failure in &report.failures {
        let _ = writeln!(out, "\n**{} failed:** {}", failure.id, failure.error);
    }
    for experiment in &report.experiments {
        let _ = writeln!(
            out,
            "\n<a id=\"{0}\"></a>\n\n## {0} — {1}\n\nSeed §{2} · {3:.1} s\n\n**Method.** {4}\n",
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

/// One of the seed's tables: its words in each cell, this run's figures, and a link to the
/// experiment behind them (its title says what the figures are).
fn seed(table: &SeedTable) -> String {
    let mut out = format!("\n### {}\n\n|  |", table.title);
    for (words, gloss) in &table.columns {
        let _ = write!(out, " {words} ({gloss}) |");
    }
    let _ = writeln!(out, "\n|{}", "---|".repeat(table.columns.len() + 1));
    for row in &table.rows {
        let aspect = if row.aspect.is_empty() {
            format!("{} (not in the seed's table)", row.aspect_en)
        } else {
            format!("{} ({})", row.aspect, row.aspect_en)
        };
        let _ = write!(out, "| {} |", escape(&aspect));
        for cell in &row.cells {
            let mut parts = Vec::new();
            if !cell.seed.is_empty() {
                parts.push(format!("「{}」 {}", cell.seed, cell.seed_en));
            }
            let figures: Vec<String> = cell
                .measured
                .iter()
                .map(|(implementation, figure)| format!("{} **{figure}**", implementation.label()))
                .collect();
            if !figures.is_empty() {
                parts.push(figures.join(" · "));
            }
            if cell.experiment.is_empty() {
                parts.push(format!("_{}_", cell.what));
            } else {
                parts.push(format!("[{}](#{})", cell.what, cell.experiment));
            }
            let _ = write!(out, " {} |", escape(&parts.join(" <br> ")));
        }
        out.push('\n');
    }
    out
}

/// The seed's quick decision table (§9): its rows, the best model measured for each, the
/// verdict and the evidence.
fn decisions(report: &LabReport) -> String {
    let mut out = String::from(
        "\n## The seed's quick decision table (§9), measured\n\n| job | CPU · IO wait · \
         concurrency | the seed recommends | best here | verdict | evidence |\n\
         |---|---|---|---|---|---|\n",
    );
    for row in decision_table::rows(report) {
        let profile: Vec<String> = row
            .profile
            .iter()
            .map(|(words, en)| format!("{words} ({en})"))
            .collect();
        let verdict = row
            .outcome
            .map_or("not judged".to_owned(), |o| format!("**{}**", o.word()));
        let source = if row.experiment.is_empty() {
            String::new()
        } else {
            format!(" [{0}](#{0})", row.experiment)
        };
        let _ = writeln!(
            out,
            "| {} ({}) | {} | {} ({}) — {} | {} | {} | {} <br> _{}_{} |",
            row.job.0,
            row.job.1,
            profile.join(" · "),
            row.recommended.0,
            row.recommended.1,
            row.reason.1,
            escape(&decision_table::best_text(&row)),
            verdict,
            escape(&row.evidence),
            escape(row.note),
            source
        );
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
