//! Plain-text tables for the terminal (and, with pipes, for Markdown).

use crate::results::{ExperimentReport, LabReport, Outcome, Table};

/// The widest a claim is printed in the terminal summary; the full text is in each
/// experiment's block and in the report files.
const SUMMARY_CLAIM_CHARS: usize = 72;

/// One row per claim, short enough for a terminal: experiment, verdict, claim (shortened).
pub fn summary(report: &LabReport) -> Table {
    let mut summary = Table::new(["experiment", "verdict", "the seed's claim"]);
    for experiment in &report.experiments {
        for verdict in &experiment.verdicts {
            summary.row([
                experiment.id.clone(),
                verdict.outcome.word().to_owned(),
                shorten(&verdict.claim, SUMMARY_CLAIM_CHARS),
            ]);
        }
    }
    summary
}

/// `text` cut to at most `limit` characters, with an ellipsis when cut.
fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let kept: String = text.chars().take(limit - 1).collect();
    format!("{}…", kept.trim_end())
}

/// Renders `table` with aligned columns, a rule under the headings, and two leading spaces.
pub fn table(table: &Table) -> String {
    let widths: Vec<usize> = (0..table.columns.len())
        .map(|column| {
            std::iter::once(&table.columns[column])
                .chain(table.rows.iter().map(|row| &row[column]))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("  {}", padded.join("  ").trim_end())
    };
    let mut out = line(&table.columns);
    out.push('\n');
    let rule: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
    out.push_str(&format!("  {}\n", rule.join("  ")));
    for row in &table.rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

/// An experiment's block: title, table, verdicts and notes. `color` adds ANSI colours to the
/// verdict words.
pub fn experiment(report: &ExperimentReport, color: bool) -> String {
    let mut out = format!(
        "{} — {} (seed §{}, {:.1} s)\n",
        report.id, report.title, report.seed_section, report.elapsed_s
    );
    out.push_str(&table(&report.table));
    for verdict in &report.verdicts {
        let word = verdict.outcome.word();
        let word = if color {
            let code = match verdict.outcome {
                Outcome::Confirmed => "32",
                Outcome::Refuted => "31",
                Outcome::Depends => "33",
                Outcome::WithinNoise => "36",
            };
            format!("\x1b[{code}m{word}\x1b[0m")
        } else {
            word.to_owned()
        };
        out.push_str(&format!(
            "  claim: {} → {word}: {}\n",
            verdict.claim, verdict.evidence
        ));
    }
    for note in &report.notes {
        out.push_str(&format!("  note: {note}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_claims_are_shortened_on_a_character_boundary() {
        assert_eq!(shorten("短い", 5), "短い");
        assert_eq!(shorten("进程切换开销大约", 5), "进程切换…");
    }

    #[test]
    fn columns_line_up() {
        let mut t = Table::new(["mode", "time"]);
        t.row(["serial", "1.0 s"]);
        t.row(["threads:2", "0.5 s"]);
        let text = table(&t);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "  mode       time");
        assert_eq!(lines[2], "  serial     1.0 s");
        assert_eq!(lines[3], "  threads:2  0.5 s");
    }
}
