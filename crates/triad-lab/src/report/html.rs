//! `index.html`: one self-contained page (no network: styles inline, charts as inline SVG) with
//! the machine, the verdicts at a glance, and per experiment its charts, Gantt charts, table,
//! verdicts and method.
//!
//! A short script at the end of the page checks that every chart has drawn something (its SVG
//! has a size and shapes in it) and writes the count into the page and into `<body>`'s
//! `data-charts-*` attributes, so a headless browser can tell whether the charts rendered.

use std::fmt::Write;

use super::markdown::summary_table;
use super::svg;
use crate::results::{Chart, ExperimentReport, LabReport, Outcome, Table};

const STYLE: &str = "
body { font: 15px/1.5 system-ui, sans-serif; color: #222; max-width: 1000px; margin: 2em auto; padding: 0 1em; }
h1 { margin-bottom: .2em; } h2 { margin-top: 2.4em; border-bottom: 2px solid #ddd; padding-bottom: .2em; }
.machine { color: #555; margin: 0; padding-left: 1.2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.verdict { font-weight: 600; padding: 0 .4em; border-radius: 3px; white-space: nowrap; }
.confirmed { background: #d8f0dc; color: #17602a; } .refuted { background: #f8d9d6; color: #8a1f11; }
.depends { background: #fbeec8; color: #7a5300; } .within-noise { background: #e3ecf5; color: #2a4d6e; }
figure { margin: 1.4em 0; } figure svg { max-width: 100%; height: auto; border: 1px solid #eee; display: block; }
figcaption { font-weight: 600; margin-bottom: .3em; } figcaption small { font-weight: normal; color: #777; }
.legend { font-size: 13px; margin-top: .3em; } .legend span { margin-right: 1.2em; white-space: nowrap; }
.legend i { display: inline-block; width: .9em; height: .9em; margin-right: .35em; vertical-align: -.1em; }
.quote { color: #666; } .note { color: #555; border-left: 3px solid #ccc; padding-left: .6em; }
.meta { color: #666; } nav a { margin-right: .8em; } .failed { color: #8a1f11; }
#render-check { color: #888; font-size: 13px; margin-top: 3em; }
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
  document.body.setAttribute('data-charts-total', String(figures.length));
  document.body.setAttribute('data-charts-rendered', String(rendered));
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
    out.push_str("<nav>");
    for experiment in &report.experiments {
        let _ = write!(out, "<a href=\"#{0}\">{0}</a>", escape(&experiment.id));
    }
    out.push_str("</nav>\n<h2>The seed's claims, measured</h2>\n");
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
    for experiment in &report.experiments {
        out.push_str(&section(experiment));
    }
    let _ = writeln!(
        out,
        "<p id=\"render-check\">Charts not checked (scripts are off).</p>\n<script>{RENDER_CHECK}</script>\n</body></html>"
    );
    out
}

fn summary(report: &LabReport) -> String {
    let table = summary_table(report);
    let mut out = String::from("<table><tr>");
    for column in &table.columns {
        let _ = write!(out, "<th>{}</th>", escape(column));
    }
    out.push_str("</tr>\n");
    for experiment in &report.experiments {
        for verdict in &experiment.verdicts {
            let _ = writeln!(
                out,
                "<tr><td><a href=\"#{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&verdict.claim),
                badge(verdict.outcome),
                escape(&verdict.evidence),
                id = escape(&experiment.id),
            );
        }
    }
    out.push_str("</table>\n");
    out
}

fn badge(outcome: Outcome) -> String {
    format!(
        "<span class=\"verdict {}\">{}</span>",
        outcome.word().replace(' ', "-"),
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
        out.push_str("<table><tr><th>the seed says</th><th>verdict</th><th>measured</th></tr>\n");
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
        out.push_str("</table>\n");
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
    let mut out = String::from("<table><tr>");
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
    out.push_str("</table>\n");
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
