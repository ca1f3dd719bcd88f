//! `index.html`: one self-contained page (no network: styles inline, charts as inline SVG).
//!
//! Its first screen answers: the verdicts counted (and a bar of them), then a card per
//! experiment with its headline figure, a thumbnail of its first chart and a link to its
//! section; then the seed's own tables with this run's figures in their cells; then every
//! claim with one short measured phrase (the full evidence folded in a `<details>`); then per
//! experiment its method, charts, Gantt charts, table, verdicts and notes. Wide tables scroll
//! inside their own box, so the page itself never scrolls sideways on a phone; `@media print`
//! drops the navigation and keeps figures and rows whole.
//!
//! A short script at the end of the page checks that every chart has drawn something (its SVG
//! has a size and shapes in it) and writes the count into the page and into `<body>`'s
//! `data-charts-*` attributes, with what the first screen shows (`data-cards`,
//! `data-seed-figures`, …) and how far the page overflows its width (`data-body-overflow`), so a
//! headless browser can tell whether the page rendered as it should.

use std::fmt::Write;

use super::decision_table;
use super::seed_table::{self, SeedTable};
use super::svg;
use super::text::{counts, key_figure};
use crate::results::{Chart, ExperimentReport, LabReport, Outcome, Table};

const STYLE: &str = "
body { font: 15px/1.5 system-ui, sans-serif; color: #222; max-width: 1000px; margin: 2em auto; padding: 0 1em; overflow-wrap: break-word; }
h1 { margin-bottom: .2em; } h2 { margin-top: 2.4em; border-bottom: 2px solid #ddd; padding-bottom: .2em; }
.machine { color: #555; margin: 0; padding-left: 1.2em; }
.scroll { overflow-x: auto; max-width: 100%; margin: .8em 0; }
table { border-collapse: collapse; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.verdict { font-weight: 600; padding: 0 .4em; border-radius: 3px; white-space: nowrap; }
.confirmed { background: #d8f0dc; color: #17602a; } .refuted { background: #f8d9d6; color: #8a1f11; }
.depends { background: #fbeec8; color: #7a5300; } .within-noise { background: #e3ecf5; color: #2a4d6e; }
.bar { display: flex; height: 16px; border-radius: 4px; overflow: hidden; margin: .5em 0 1.2em; }
.bar span { display: block; } .bar .confirmed { background: #3c9a52; } .bar .refuted { background: #c8473a; }
.bar .depends { background: #d9a521; } .bar .within-noise { background: #6f93b8; }
.counts .verdict { margin-right: .4em; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: .8em; }
.card { display: block; border: 1px solid #ddd; border-radius: 6px; padding: .6em .8em; color: inherit; text-decoration: none; background: #fff; min-width: 0; }
.card:hover { border-color: #888; } .card h3 { margin: 0; font-size: 15px; }
.card .title { color: #666; font-size: 13px; margin: .1em 0 .3em; }
.card .headline { font-size: 13px; margin: .3em 0; overflow-wrap: anywhere; }
.card .tally { font-size: 12px; margin: .3em 0 0; } .card .tally .verdict { font-weight: 500; }
.thumb svg { width: 100%; height: auto; max-height: 150px; display: block; }
table.seed td { min-width: 9em; } .seed .words { font-weight: 600; } .seed .gloss { color: #666; font-size: 12px; }
.seed .figures { margin-top: .2em; } .seed a { font-size: 12px; color: #557; }
details summary { cursor: pointer; } details p { margin: .3em 0 0; color: #444; }
figure { margin: 1.4em 0; } figure svg { max-width: 100%; height: auto; border: 1px solid #eee; display: block; }
figcaption { font-weight: 600; margin-bottom: .3em; } figcaption small { font-weight: normal; color: #777; }
.legend { font-size: 13px; margin-top: .3em; } .legend span { margin-right: 1.2em; white-space: nowrap; }
.legend i { display: inline-block; width: .9em; height: .9em; margin-right: .35em; vertical-align: -.1em; }
.quote { color: #666; } .note { color: #555; border-left: 3px solid #ccc; padding-left: .6em; }
.meta { color: #666; } nav { display: flex; flex-wrap: wrap; gap: .2em .8em; } .failed { color: #8a1f11; }
#render-check { color: #888; font-size: 13px; margin-top: 3em; }
@media (max-width: 600px) { body { margin: 1em auto; font-size: 14px; } th, td { padding: .2em .35em; } h2 { margin-top: 1.8em; } }
@media print { nav, #render-check, .thumb { display: none; } body { max-width: none; margin: 0; }
  a { color: inherit; text-decoration: none; } .scroll { overflow: visible; }
  figure, .card, tr { break-inside: avoid; } h2 { break-after: avoid; } }
";

const RENDER_CHECK: &str = "
(function () {
  var figures = document.querySelectorAll('figure.chart');
  var rendered = 0;
  figures.forEach(function (figure) {
    var svg = figure.querySelector('svg');
    if (!svg || svg.classList.contains('chart-error')) { return; }
    var box = svg.getBoundingClientRect();
    var shapes = svg.querySelectorAll('rect, polyline, path, circle, line').length;
    if (box.width > 0 && box.height > 0 && shapes > 3) {
      rendered += 1;
      figure.setAttribute('data-rendered', 'yes');
    } else {
      figure.setAttribute('data-rendered', 'no');
    }
  });
  var page = document.documentElement;
  var count = function (selector) { return String(document.querySelectorAll(selector).length); };
  var cards = document.querySelectorAll('.cards .card');
  var seen = {
    'data-charts-total': String(figures.length),
    'data-charts-rendered': String(rendered),
    'data-viewport': String(page.clientWidth),
    'data-body-overflow': String(Math.max(0, page.scrollWidth - page.clientWidth)),
    'data-cards': String(cards.length),
    'data-cards-shown': String(Array.prototype.filter.call(cards, function (card) {
      var box = card.getBoundingClientRect();
      return box.width > 0 && box.right <= page.clientWidth + 1;
    }).length),
    'data-verdict-counts': count('.counts .verdict'),
    'data-seed-tables': count('table.seed'),
    'data-seed-figures': count('table.seed .figures b'),
    'data-decision-rows': count('table.decision tr.row'),
    'data-decision-verdicts': count('table.decision tr.row .verdict')
  };
  Object.keys(seen).forEach(function (name) { document.body.setAttribute(name, seen[name]); });
  // Inside a frame (a test's narrow window), the frame's page hears the same.
  if (window.parent !== window) { window.parent.postMessage(seen, '*'); }
  document.getElementById('render-check').textContent =
    rendered + ' of ' + figures.length + ' charts rendered in this browser.';
})();
";

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The whole page.
pub fn render(report: &LabReport) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>triad lab — {} run</title><style>{STYLE}</style></head><body>\n",
        escape(&report.scale)
    );
    let _ = write!(
        out,
        "<h1>triad lab</h1><p class=\"meta\">{} run · {} experiment(s) in {:.1} s · schema {}</p><ul class=\"machine\">",
        escape(&report.scale),
        report.experiments.len(),
        report.elapsed_s,
        escape(&report.schema)
    );
    for line in report.machine.header_lines() {
        let _ = write!(out, "<li>{}</li>", escape(&line));
    }
    out.push_str("</ul>\n");
    for note in &report.notes {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(note));
    }
    out.push_str(&at_a_glance(report));
    out.push_str("<h2 id=\"seed-tables\">The seed's tables, measured on this machine</h2>\n");
    for table in seed_table::tables(report) {
        out.push_str(&seed(&table));
    }
    out.push_str(&decisions(report));
    out.push_str("<h2 id=\"claims\">The seed's claims, measured</h2>\n");
    let _ = writeln!(out, "<p class=\"meta\">{}</p>", escape(super::VERDICT_RULE));
    out.push_str(&summary(report));
    for failure in &report.failures {
        let _ = writeln!(
            out,
            "<p class=\"failed\"><b>{}</b> failed: {}</p>",
            escape(&failure.id),
            escape(&failure.error)
        );
    }
    out.push_str("<nav>");
    for experiment in &report.experiments {
        let _ = write!(out, "<a href=\"#{0}\">{0}</a>", escape(&experiment.id));
    }
    out.push_str("</nav>\n");
    for experiment in &report.experiments {
        out.push_str(&section(experiment));
    }
    let _ = writeln!(
        out,
        "<p id=\"render-check\">Charts not checked (scripts are off).</p>\n<script>{RENDER_CHECK}</script>\n</body></html>"
    );
    out
}

/// The verdicts counted, a bar of them, and a card per experiment.
fn at_a_glance(report: &LabReport) -> String {
    let counts = counts(report);
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    let mut out = format!(
        "<section id=\"at-a-glance\"><h2>At a glance</h2><p class=\"counts\">{total} claims \
         of the seed, judged on this machine: "
    );
    for (outcome, n) in &counts {
        let _ = write!(
            out,
            "<span class=\"verdict {}\">{n} {}</span>",
            css_class(*outcome),
            outcome.word()
        );
    }
    out.push_str("</p><div class=\"bar\" role=\"img\" aria-label=\"verdicts\">");
    for (outcome, n) in counts.iter().filter(|(_, n)| *n > 0) {
        let _ = write!(
            out,
            "<span class=\"{}\" style=\"flex: {n}\" title=\"{n} {}\"></span>",
            css_class(*outcome),
            outcome.word()
        );
    }
    out.push_str("</div>\n<div class=\"cards\">\n");
    for experiment in &report.experiments {
        out.push_str(&card(report, experiment));
    }
    out.push_str("</div></section>\n");
    out
}

/// One experiment at a glance: its headline figure, its first chart small, its verdicts.
fn card(lab: &LabReport, experiment: &ExperimentReport) -> String {
    let mut out = format!(
        "<a class=\"card\" href=\"#{id}\"><h3>{id}</h3><p class=\"title\">{}</p>\
         <p class=\"headline\">{}</p>",
        escape(&experiment.title),
        escape(&super::headline(lab, experiment)),
        id = escape(&experiment.id),
    );
    if let Some(chart) = experiment.charts.first() {
        let _ = write!(out, "<div class=\"thumb\">{}</div>", svg::chart(chart).svg);
    }
    out.push_str("<p class=\"tally\">");
    for outcome in Outcome::ALL {
        let n = experiment
            .verdicts
            .iter()
            .filter(|v| v.outcome == outcome)
            .count();
        if n > 0 {
            let _ = write!(
                out,
                "<span class=\"verdict {}\">{n} {}</span> ",
                css_class(outcome),
                outcome.word()
            );
        }
    }
    out.push_str("</p></a>\n");
    out
}

/// One of the seed's tables: its words in each cell, this run's figures under them, and a
/// link to the experiment behind them.
fn seed(table: &SeedTable) -> String {
    let mut out = format!(
        "<h3 id=\"{}\">{}</h3><div class=\"scroll\"><table class=\"seed\"><tr><th></th>",
        table.id,
        escape(table.title)
    );
    for (words, gloss) in &table.columns {
        let _ = write!(
            out,
            "<th>{} <span class=\"gloss\">{}</span></th>",
            escape(words),
            escape(gloss)
        );
    }
    out.push_str("</tr>\n");
    for row in &table.rows {
        let aspect = if row.aspect.is_empty() {
            format!(
                "{} <span class=\"gloss\">(not in the seed's table)</span>",
                escape(row.aspect_en)
            )
        } else {
            format!(
                "{} <span class=\"gloss\">{}</span>",
                escape(row.aspect),
                escape(row.aspect_en)
            )
        };
        let _ = write!(out, "<tr><th>{aspect}</th>");
        for cell in &row.cells {
            out.push_str("<td>");
            if !cell.seed.is_empty() {
                let _ = write!(
                    out,
                    "<div class=\"words\">「{}」 <span class=\"gloss\">{}</span></div>",
                    escape(cell.seed),
                    escape(cell.seed_en)
                );
            }
            out.push_str("<div class=\"figures\">");
            for (implementation, figure) in &cell.measured {
                let _ = write!(
                    out,
                    "{} <b>{}</b><br>",
                    implementation.label(),
                    escape(figure)
                );
            }
            out.push_str("</div>");
            if !cell.experiment.is_empty() {
                let _ = write!(
                    out,
                    "<a href=\"#{0}\" title=\"{1}\">{1} ({0})</a>",
                    escape(cell.experiment),
                    escape(&cell.what)
                );
            } else {
                let _ = write!(out, "<span class=\"gloss\">{}</span>", escape(&cell.what));
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table></div>\n");
    out
}

/// Every claim: one short measured phrase, the full evidence folded.
fn summary(report: &LabReport) -> String {
    let mut out = String::from(
        "<div class=\"scroll\"><table><tr><th>experiment</th><th>the seed's claim</th>\
         <th>verdict</th><th>measured</th></tr>\n",
    );
    for experiment in &report.experiments {
        for verdict in &experiment.verdicts {
            let _ = writeln!(
                out,
                "<tr><td><a href=\"#{id}\">{id}</a></td><td>{}</td><td>{}</td><td><details>\
                 <summary>{}</summary><p>{}</p></details></td></tr>",
                escape(&verdict.claim),
                badge(verdict.outcome),
                escape(&key_figure(verdict)),
                escape(&verdict.evidence),
                id = escape(&experiment.id),
            );
        }
    }
    out.push_str("</table></div>\n");
    out
}

/// The seed's quick decision table (§9): its rows, the best model measured for each, the
/// verdict, and the evidence folded.
fn decisions(report: &LabReport) -> String {
    let mut out = String::from(
        "<h2 id=\"decision-table\">The seed's quick decision table (§9), measured</h2>\
         <div class=\"scroll\"><table class=\"decision\"><tr><th>job</th><th>CPU · IO wait · \
         concurrency</th><th>the seed recommends</th><th>best here</th><th>verdict</th>\
         <th>evidence</th></tr>\n",
    );
    for row in decision_table::rows(report) {
        let profile: Vec<String> = row
            .profile
            .iter()
            .map(|(words, en)| {
                format!(
                    "{} <span class=\"gloss\">{}</span>",
                    escape(words),
                    escape(en)
                )
            })
            .collect();
        let source = if row.experiment.is_empty() {
            String::new()
        } else {
            format!(" <a href=\"#{0}\">{0}</a>", escape(row.experiment))
        };
        let _ = writeln!(
            out,
            "<tr class=\"row\"><th>{} <span class=\"gloss\">{}</span></th><td>{}</td>\
             <td>{} <span class=\"gloss\">{} — {}</span></td><td>{}</td><td>{}</td>\
             <td><details><summary>{}</summary><p>{}</p></details>{}</td></tr>",
            escape(row.job.0),
            escape(row.job.1),
            profile.join(" · "),
            escape(row.recommended.0),
            escape(row.recommended.1),
            escape(row.reason.1),
            escape(&decision_table::best_text(&row)),
            row.outcome
                .map_or("<span class=\"gloss\">not judged</span>".to_owned(), badge),
            escape(row.note),
            escape(&row.evidence),
            source,
        );
    }
    out.push_str("</table></div>\n");
    out
}

fn css_class(outcome: Outcome) -> String {
    outcome.word().replace(' ', "-")
}

fn badge(outcome: Outcome) -> String {
    format!(
        "<span class=\"verdict {}\">{}</span>",
        css_class(outcome),
        outcome.word()
    )
}

fn section(experiment: &ExperimentReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<section id=\"{id}\"><h2>{id} — {}</h2><p class=\"meta\">seed §{} · {:.1} s</p><p>{}</p>",
        escape(&experiment.title),
        escape(&experiment.seed_section),
        experiment.elapsed_s,
        escape(&experiment.method),
        id = escape(&experiment.id),
    );
    for chart in &experiment.charts {
        out.push_str(&figure(chart));
    }
    for timeline in &experiment.timelines {
        let _ = writeln!(
            out,
            "<figure class=\"chart gantt\"><figcaption>{}</figcaption>{}</figure>",
            escape(&timeline.title),
            svg::gantt(timeline)
        );
    }
    out.push_str(&table(&experiment.table));
    if !experiment.verdicts.is_empty() {
        out.push_str(
            "<div class=\"scroll\"><table><tr><th>the seed says</th><th>verdict</th>\
             <th>measured</th></tr>\n",
        );
        for verdict in &experiment.verdicts {
            let _ = writeln!(
                out,
                "<tr><td>{}<br><span class=\"quote\">「{}」</span></td><td>{}</td><td>{}</td></tr>",
                escape(&verdict.claim),
                escape(&verdict.quote),
                badge(verdict.outcome),
                escape(&verdict.evidence)
            );
        }
        out.push_str("</table></div>\n");
    }
    for note in &experiment.notes {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(note));
    }
    out.push_str("</section>\n");
    out
}

/// A chart with its title above and its legend below, both HTML so that they wrap and never
/// cover the data.
fn figure(chart: &Chart) -> String {
    let drawn = svg::chart(chart);
    let mut out = format!(
        "<figure class=\"chart\"><figcaption>{}",
        escape(&chart.title)
    );
    if drawn.hidden > 0 {
        let _ = write!(
            out,
            " <small>({} value(s) at or below zero cannot be shown on the log axis)</small>",
            drawn.hidden
        );
    }
    out.push_str("</figcaption>");
    out.push_str(&drawn.svg);
    out.push_str("<div class=\"legend\">");
    for (index, series) in chart.series.iter().enumerate() {
        let _ = write!(
            out,
            "<span><i style=\"background:{}\"></i>{}</span>",
            svg::css_colour(index),
            escape(&series.label)
        );
    }
    out.push_str("</div></figure>\n");
    out
}

fn table(table: &Table) -> String {
    let mut out = String::from("<div class=\"scroll\"><table><tr>");
    for column in &table.columns {
        let _ = write!(out, "<th>{}</th>", escape(column));
    }
    out.push_str("</tr>\n");
    for row in &table.rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table></div>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
