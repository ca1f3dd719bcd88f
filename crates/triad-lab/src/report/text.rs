//! Plain-text tables for the terminal (and, with pipes, for Markdown).
//!
//! A terminal gets short lines: each experiment's table (split into column groups that fit the
//! width, the first column repeated), one line per claim with its verdict and key figure, cut
//! to the width; at the end the seed's tables measured, and the verdicts counted. With no width
//! ([`Style::width`] `None`, `--verbose`) everything is printed in full. Widths are display
//! columns: the seed's Chinese words take two each.

use unicode_width::UnicodeWidthStr;

use super::seed_table::{SeedTable, tables};
use crate::results::{ExperimentReport, Implementation, LabReport, Outcome, Table, Verdict};

/// How to print: colours, and the widest a line may be (`None`: print everything in full).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// ANSI colours on the verdict words.
    pub color: bool,
    /// The terminal's width; `None` prints every claim, evidence and note in full.
    pub width: Option<usize>,
}

/// The widest a claim is printed in the summary table of `--verbose`.
const SUMMARY_CLAIM_CHARS: usize = 72;

/// How many display columns `text` takes.
pub fn width_of(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

/// `text` cut to at most `width` display columns, with an ellipsis when cut.
pub fn cut(text: &str, width: usize) -> String {
    if width_of(text) <= width {
        return text.to_owned();
    }
    let mut kept = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        kept.push(c);
        used += w;
    }
    format!("{}…", kept.trim_end())
}

/// One row per claim, short enough for a terminal: experiment, verdict, claim (shortened).
pub fn summary(report: &LabReport) -> Table {
    let mut summary = Table::new(["experiment", "verdict", "the seed's claim"]);
    for experiment in &report.experiments {
        for verdict in &experiment.verdicts {
            summary.row([
                experiment.id.clone(),
                verdict.outcome.word().to_owned(),
                cut(&verdict.claim, SUMMARY_CLAIM_CHARS),
            ]);
        }
    }
    summary
}

/// Renders `table` with aligned columns, a rule under the headings, and two leading spaces.
pub fn table(table: &Table) -> String {
    let widths: Vec<usize> = (0..table.columns.len())
        .map(|column| {
            std::iter::once(&table.columns[column])
                .chain(table.rows.iter().map(|row| &row[column]))
                .map(|cell| width_of(cell))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell}{}", " ".repeat(width - width_of(cell))))
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

/// `table` in blocks no wider than `width`: as many columns as fit in each, the first column
/// repeated in every block; a column too wide even alone with the first has its cells cut.
pub fn fitted(source: &Table, width: usize) -> String {
    let columns = source.columns.len();
    if columns == 0 {
        return String::new();
    }
    let column_width = |column: usize| {
        std::iter::once(&source.columns[column])
            .chain(source.rows.iter().map(|row| &row[column]))
            .map(|cell| width_of(cell))
            .max()
            .unwrap_or(0)
    };
    // Two leading spaces, then two between columns.
    let first = column_width(0).min(width / 2);
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut used = 2 + first;
    for column in 1..columns {
        let wanted = 2 + column_width(column);
        match groups.last_mut() {
            Some(group) if used + wanted <= width => group.push(column),
            _ => {
                groups.push(vec![column]);
                used = 2 + first;
            }
        }
        used += wanted;
    }
    if groups.is_empty() {
        groups.push(Vec::new());
    }
    let mut out = String::new();
    for (index, group) in groups.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        let room = width.saturating_sub(2 + first + 2);
        let pick = |cells: &[String]| -> Vec<String> {
            std::iter::once(cut(&cells[0], first))
                .chain(group.iter().map(|&c| cut(&cells[c], room.max(8))))
                .collect()
        };
        let mut block = Table::new(pick(&source.columns));
        for row in &source.rows {
            block.row(pick(row));
        }
        out.push_str(&table(&block));
    }
    out
}

/// The verdict word, coloured when `color`.
fn word(outcome: Outcome, color: bool) -> String {
    if !color {
        return outcome.word().to_owned();
    }
    format!("\x1b[{}m{}\x1b[0m", colour_code(outcome), outcome.word())
}

fn colour_code(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Confirmed => "32",
        Outcome::Refuted => "31",
        Outcome::Depends => "33",
        Outcome::WithinNoise => "36",
    }
}

/// The first check of a verdict's evidence (up to its first `;`), with how many others follow:
/// the key figure of a one-line claim.
pub fn key_figure(verdict: &Verdict) -> String {
    let mut parts = verdict.evidence.split("; ");
    let first = parts.next().unwrap_or_default().trim();
    let more = parts.count();
    if more == 0 {
        first.to_owned()
    } else {
        format!("{first} (+{more} more)")
    }
}

/// One claim on one line: verdict, claim, key figure, within `width` (the colour codes take
/// no columns). The figure keeps up to half the room, more when the claim is short.
fn claim_line(verdict: &Verdict, color: bool, width: usize) -> String {
    const WORD: usize = 12;
    let plain = verdict.outcome.word();
    let padding = " ".repeat(WORD.saturating_sub(width_of(plain)));
    let room = width.saturating_sub(2 + WORD + 1);
    let figure = key_figure(verdict);
    let most = (room / 2).max(room.saturating_sub(width_of(&verdict.claim) + 3));
    let figure = cut(&figure, most);
    let claim = cut(&verdict.claim, room.saturating_sub(width_of(&figure) + 3));
    format!(
        "  {}{padding} {claim} — {figure}",
        word(verdict.outcome, color)
    )
}

/// An experiment's block: title, table, verdicts (and, in full, notes).
pub fn experiment(report: &ExperimentReport, style: &Style) -> String {
    // The id and time first: a cut line loses only the end of the title.
    let title = format!(
        "{} ({:.1} s, seed §{}) — {}",
        report.id, report.elapsed_s, report.seed_section, report.title
    );
    let Some(width) = style.width else {
        let mut out = format!("{title}\n");
        out.push_str(&table(&report.table));
        for verdict in &report.verdicts {
            out.push_str(&format!(
                "  claim: {} → {}: {}\n",
                verdict.claim,
                word(verdict.outcome, style.color),
                verdict.evidence
            ));
        }
        for note in &report.notes {
            out.push_str(&format!("  note: {note}\n"));
        }
        return out;
    };
    let mut out = format!("{}\n", cut(&title, width));
    out.push_str(&fitted(&report.table, width));
    for verdict in &report.verdicts {
        out.push_str(&claim_line(verdict, style.color, width));
        out.push('\n');
    }
    if !report.notes.is_empty() {
        out.push_str(&cut(
            &format!(
                "  ({} note(s) and the full evidence: report.md, or --verbose)",
                report.notes.len()
            ),
            width,
        ));
        out.push('\n');
    }
    out
}

/// A seed table for the terminal: per aspect two lines, the seed's words (in English) and then
/// the figures, `R` for Rust and `Py` for CPython.
fn seed_table(seed: &SeedTable, width: usize) -> String {
    let mut grid = Table::new(std::iter::once("").chain(seed.columns.iter().map(|(_, en)| *en)));
    for row in &seed.rows {
        grid.row(
            std::iter::once(row.aspect_en.to_owned()).chain(row.cells.iter().map(|cell| {
                if cell.seed_en.is_empty() {
                    "(not in the seed)".to_owned()
                } else {
                    format!("“{}”", cell.seed_en)
                }
            })),
        );
        if row.cells.iter().all(|cell| cell.measured.is_empty()) {
            continue;
        }
        grid.row(
            std::iter::once(String::new()).chain(row.cells.iter().map(|cell| {
                cell.measured
                    .iter()
                    .map(|(implementation, figure)| {
                        let who = match implementation {
                            Implementation::Rust => "R",
                            Implementation::Python => "Py",
                        };
                        format!("{who} {figure}")
                    })
                    .collect::<Vec<_>>()
                    .join(" · ")
            })),
        );
    }
    format!("{}\n{}", cut(seed.title, width), fitted(&grid, width))
}

/// The seed's tables with this run's figures (the files say what each figure is).
pub fn seed_tables(report: &LabReport, width: usize) -> String {
    let mut out = String::new();
    for seed in tables(report) {
        out.push_str(&seed_table(&seed, width));
    }
    out.push_str(&cut(
        "  “…”: the seed's cell (in English); R: Rust, Py: CPython; what each figure is: \
         report.md",
        width,
    ));
    out.push('\n');
    out.push_str(&decisions(report, width));
    out
}

/// The seed's quick decision table (§9): per row the job, the model it recommends, the best
/// measured here and the verdict (the evidence is in report.md).
fn decisions(report: &LabReport, width: usize) -> String {
    let mut grid = Table::new(["job", "the seed recommends", "best here", "verdict"]);
    for row in super::decision_table::rows(report) {
        grid.row([
            row.job.1.to_owned(),
            row.recommended.1.to_owned(),
            super::decision_table::best_text(&row),
            row.outcome
                .map_or("not judged".to_owned(), |o| o.word().to_owned()),
        ]);
    }
    format!(
        "{}\n{}",
        cut("The seed's quick decision table (§9), measured", width),
        fitted(&grid, width)
    )
}

/// How many claims got each verdict.
pub fn counts(report: &LabReport) -> Vec<(Outcome, usize)> {
    Outcome::ALL
        .iter()
        .map(|&outcome| {
            let n = report
                .experiments
                .iter()
                .flat_map(|e| &e.verdicts)
                .filter(|v| v.outcome == outcome)
                .count();
            (outcome, n)
        })
        .collect()
}

/// The verdicts counted, and a bar of them (each verdict its own shade, and colour).
pub fn verdict_counts(report: &LabReport, color: bool, width: usize) -> String {
    let counts = counts(report);
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    let listed: Vec<String> = counts
        .iter()
        .map(|(outcome, n)| format!("{n} {}", word(*outcome, color)))
        .collect();
    let mut out = format!("Verdicts on {total} claims: {}\n", listed.join(", "));
    let bar_width = width.saturating_sub(4).min(60);
    if total > 0 && bar_width > 0 {
        let mut bar = String::from("  ");
        for ((outcome, n), shade) in counts.iter().zip(['█', '▓', '▒', '░']) {
            let cells = (n * bar_width).div_ceil(total).min(bar_width);
            let segment: String = std::iter::repeat_n(shade, cells).collect();
            if color {
                bar.push_str(&format!("\x1b[{}m{segment}\x1b[0m", colour_code(*outcome)));
            } else {
                bar.push_str(&segment);
            }
        }
        out.push_str(&bar);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_claims_are_shortened_on_a_character_boundary() {
        assert_eq!(cut("短い", 5), "短い");
        assert_eq!(cut("进程切换开销大约", 9), "进程切换…");
        assert_eq!(width_of("进程"), 4);
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

    #[test]
    fn chinese_cells_line_up_by_display_width() {
        let mut t = Table::new(["aspect", "x"]);
        t.row(["切换开销", "1"]);
        t.row(["GIL", "2"]);
        let text = table(&t);
        let columns: Vec<usize> = text
            .lines()
            .skip(2)
            .map(|line| width_of(&line[..line.rfind(' ').unwrap()]))
            .collect();
        assert_eq!(columns[0], columns[1], "{text}");
    }

    #[test]
    fn a_claim_line_keeps_its_figure_and_fits() {
        let verdict = Verdict {
            claim: "A process pool runs CPU-bound work truly in parallel, and fast, on every \
                    machine one may think of."
                .to_owned(),
            quote: "进程池".to_owned(),
            outcome: Outcome::WithinNoise,
            evidence: "speed-up of 2 processes: Rust 1.93× (1.80-2.01×); CPython 1.50×".to_owned(),
        };
        let line = claim_line(&verdict, false, 100);
        assert!(width_of(&line) <= 100, "{line}");
        assert!(line.starts_with("  within noise "), "{line}");
        assert!(line.contains("Rust 1.93×"), "{line}");
        let roomy = claim_line(&verdict, false, 200);
        assert!(roomy.contains(&verdict.claim), "{roomy}");
        assert!(roomy.ends_with("(+1 more)"), "{roomy}");
    }

    #[test]
    fn a_wide_table_is_split_into_blocks_that_fit() {
        let mut t = Table::new([
            "variant",
            "a long heading one",
            "a long heading two",
            "three",
        ]);
        t.row(["serial", "1.000 s ±0%", "2.000 s ±0%", "x"]);
        let text = fitted(&t, 40);
        assert!(text.lines().all(|l| width_of(l) <= 40), "{text}");
        assert_eq!(text.matches("serial").count(), 2, "{text}");
        for heading in ["a long heading one", "a long heading two", "three"] {
            assert!(text.contains(heading), "{text}");
        }
        let narrow = fitted(&t, 20);
        assert!(narrow.lines().all(|l| width_of(l) <= 20), "{narrow}");
    }
}
