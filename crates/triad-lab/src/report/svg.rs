//! Charts as inline SVG, drawn with plotters: line charts, grouped bar charts and Gantt charts
//! of task timelines.
//!
//! A log axis is drawn as a linear axis over log10 of the values, with tick labels turned back
//! into values: one drawing path serves every combination of scales. Values that a log axis
//! cannot show (zero or negative) are left out, and the chart says how many.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::results::{Chart, ChartKind, Point, Scale, Timeline};

const WIDTH: u32 = 760;
const HEIGHT: u32 = 380;

/// Series colours, chosen to stay apart for readers with the common colour-vision deficits.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(120, 120, 120),
    RGBColor(240, 228, 66),
];

/// The colour of series (or task) `index`.
fn colour(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// Draws `chart` as an `<svg>` element.
pub fn chart(chart: &Chart) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let drawn = match chart.kind {
            ChartKind::Line => line_chart(&root, chart),
            ChartKind::Bar => bar_chart(&root, chart),
        };
        if let Err(error) = drawn.and_then(|()| root.present().map_err(|e| e.to_string())) {
            return error_svg(&chart.title, &error);
        }
    }
    svg
}

/// Draws `timeline` as a Gantt chart: one row per lane, one bar per span, coloured by task.
pub fn gantt(timeline: &Timeline) -> String {
    let mut svg = String::new();
    {
        let rows = timeline.lanes.len().max(1);
        let height = (90 + 34 * rows as u32).min(900);
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        if let Err(error) =
            gantt_chart(&root, timeline).and_then(|()| root.present().map_err(|e| e.to_string()))
        {
            return error_svg(&timeline.title, &error);
        }
    }
    svg
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Maps a value onto an axis: itself, or its log10 (`None` when a log axis cannot show it).
fn to_axis(scale: Scale, value: f64) -> Option<f64> {
    match scale {
        Scale::Linear => value.is_finite().then_some(value),
        Scale::Log => (value > 0.0 && value.is_finite()).then(|| value.log10()),
    }
}

/// A tick label for an axis position. A log axis that spans a decade or more is labelled at
/// powers of ten only.
fn tick_label(scale: Scale, span: f64, position: f64) -> String {
    match scale {
        Scale::Linear => compact_number(position),
        Scale::Log if span >= 1.0 && (position - position.round()).abs() > 1e-6 => String::new(),
        Scale::Log => compact_number(10f64.powf(position)),
    }
}

/// A number in at most about four characters of digits: 1.5k, 20M, 0.003, 3e-7.
fn compact_number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude == 0.0 {
        return "0".to_owned();
    }
    let trimmed = |text: String| {
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            text
        }
    };
    for (limit, suffix) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if magnitude >= limit {
            return format!("{}{suffix}", trimmed(format!("{:.2}", value / limit)));
        }
    }
    if magnitude >= 1e-3 {
        trimmed(format!("{value:.3}"))
    } else {
        format!("{value:.0e}")
    }
}

/// The range covering `values`, padded, never empty.
fn padded_range(values: impl Iterator<Item = f64>, from_zero: bool) -> (f64, f64) {
    let (mut low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !low.is_finite() || !high.is_finite() {
        return (0.0, 1.0);
    }
    if from_zero {
        low = low.min(0.0);
    }
    if (high - low).abs() < 1e-12 {
        let pad = if high == 0.0 { 1.0 } else { high.abs() * 0.1 };
        return (low - pad, high + pad);
    }
    let pad = (high - low) * 0.06;
    (
        if from_zero && low == 0.0 {
            0.0
        } else {
            low - pad
        },
        high + pad,
    )
}

/// A point placed on the axes: position, and the ends of its error bar.
#[derive(Debug, Clone, Copy)]
struct Placed {
    x: f64,
    y: f64,
    low: f64,
    high: f64,
}

/// A point placed on the axes, or `None` when an axis cannot show it.
fn on_axes(chart: &Chart, point: &Point, x_scale: Scale) -> Option<Placed> {
    let x = to_axis(x_scale, point.x)?;
    let y = to_axis(chart.y_scale, point.y)?;
    let low = point
        .low
        .and_then(|v| to_axis(chart.y_scale, v))
        .unwrap_or(y)
        .min(y);
    let high = point
        .high
        .and_then(|v| to_axis(chart.y_scale, v))
        .unwrap_or(y)
        .max(y);
    Some(Placed { x, y, low, high })
}

fn hidden_caption(title: &str, hidden: usize) -> String {
    if hidden == 0 {
        title.to_owned()
    } else {
        format!("{title} ({hidden} value(s) ≤ 0 not shown on the log axis)")
    }
}

fn line_chart(root: &Area<'_>, chart: &Chart) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut hidden = 0;
    let mut series: Vec<(usize, &str, Vec<Placed>)> = Vec::new();
    for (index, s) in chart.series.iter().enumerate() {
        let points: Vec<_> = s
            .points
            .iter()
            .filter_map(|p| {
                let mapped = on_axes(chart, p, chart.x_scale);
                hidden += usize::from(mapped.is_none());
                mapped
            })
            .collect();
        series.push((index, &s.label, points));
    }
    let all = || series.iter().flat_map(|(_, _, points)| points.iter());
    let x_range = padded_range(all().map(|p| p.x), false);
    let y_range = padded_range(
        all().flat_map(|p| [p.low, p.high]),
        chart.y_scale == Scale::Linear,
    );
    let mut context = ChartBuilder::on(root)
        .caption(hidden_caption(&chart.title, hidden), ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)
        .map_err(|e| e.to_string())?;
    let x_format = |v: &f64| tick_label(chart.x_scale, x_range.1 - x_range.0, *v);
    let y_format = |v: &f64| tick_label(chart.y_scale, y_range.1 - y_range.0, *v);
    context
        .configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .x_label_formatter(&x_format)
        .y_label_formatter(&y_format)
        .light_line_style(RGBColor(246, 246, 246))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (index, label, points) in &series {
        let style = colour(*index).stroke_width(2);
        context
            .draw_series(LineSeries::new(points.iter().map(|p| (p.x, p.y)), style))
            .map_err(|e| e.to_string())?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        context
            .draw_series(
                points
                    .iter()
                    .map(|p| Circle::new((p.x, p.y), 3, colour(*index).filled())),
            )
            .map_err(|e| e.to_string())?;
        context
            .draw_series(
                points
                    .iter()
                    .filter(|p| p.high > p.low)
                    .map(|p| ErrorBar::new_vertical(p.x, p.low, p.y, p.high, colour(*index), 6)),
            )
            .map_err(|e| e.to_string())?;
    }
    legend(&mut context)
}

fn bar_chart(root: &Area<'_>, chart: &Chart) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let groups = chart.categories.len().max(1);
    let width = 0.8 / chart.series.len().max(1) as f64;
    let mut hidden = 0;
    let mut bars = Vec::new();
    for (index, s) in chart.series.iter().enumerate() {
        for point in &s.points {
            match on_axes(chart, point, Scale::Linear) {
                Some(placed) => {
                    let left = placed.x - 0.4 + width * index as f64;
                    bars.push((index, left, placed));
                }
                None => hidden += 1,
            }
        }
    }
    let (base, top) = match chart.y_scale {
        Scale::Linear => padded_range(bars.iter().flat_map(|b| [b.2.y, b.2.high]), true),
        Scale::Log => {
            let (low, high) =
                padded_range(bars.iter().flat_map(|b| [b.2.y, b.2.low, b.2.high]), false);
            (low.floor(), high)
        }
    };
    let mut context = ChartBuilder::on(root)
        .caption(hidden_caption(&chart.title, hidden), ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5..(groups as f64 - 0.5), base..top)
        .map_err(|e| e.to_string())?;
    let x_format = |v: &f64| {
        let index = v.round();
        if (v - index).abs() < 1e-6 && index >= 0.0 {
            chart
                .categories
                .get(index as usize)
                .cloned()
                .unwrap_or_default()
        } else {
            String::new()
        }
    };
    let y_format = |v: &f64| tick_label(chart.y_scale, top - base, *v);
    context
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups * 2 + 1)
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .x_label_formatter(&x_format)
        .y_label_formatter(&y_format)
        .light_line_style(RGBColor(246, 246, 246))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (index, s) in chart.series.iter().enumerate() {
        let style = colour(index).filled();
        context
            .draw_series(
                bars.iter()
                    .filter(|b| b.0 == index)
                    .map(|b| Rectangle::new([(b.1, base), (b.1 + width * 0.92, b.2.y)], style)),
            )
            .map_err(|e| e.to_string())?
            .label(s.label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], style));
        context
            .draw_series(
                bars.iter()
                    .filter(|b| b.0 == index && b.2.high > b.2.low)
                    .map(|b| {
                        ErrorBar::new_vertical(
                            b.1 + width * 0.46,
                            b.2.low,
                            b.2.y,
                            b.2.high,
                            BLACK.mix(0.7),
                            5,
                        )
                    }),
            )
            .map_err(|e| e.to_string())?;
    }
    legend(&mut context)
}

type Cartesian =
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>;

fn legend<'a>(context: &mut ChartContext<'a, SVGBackend<'a>, Cartesian>) -> Result<(), String> {
    context
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| format!("{e:?}"))
}

fn gantt_chart(root: &Area<'_>, timeline: &Timeline) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let rows = timeline.lanes.len().max(1);
    let end_ms = timeline
        .lanes
        .iter()
        .flat_map(|lane| lane.spans.iter())
        .map(|span| span.end_ns as f64 / 1e6)
        .fold(0.0, f64::max)
        .max(1e-3);
    let mut context = ChartBuilder::on(root)
        .caption(timeline.title.as_str(), ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(110)
        .build_cartesian_2d(0.0..end_ms * 1.02, -0.5..(rows as f64 - 0.5))
        .map_err(|e| e.to_string())?;
    let lane_label = |v: &f64| {
        let index = v.round();
        if (v - index).abs() < 1e-6 && index >= 0.0 {
            timeline
                .lanes
                .get(rows - 1 - index as usize)
                .map(|lane| lane.label.clone())
                .unwrap_or_default()
        } else {
            String::new()
        }
    };
    let time_label = |v: &f64| compact_number(*v);
    context
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(rows * 2 + 1)
        .x_desc("time (ms)")
        .y_label_formatter(&lane_label)
        .x_label_formatter(&time_label)
        .light_line_style(RGBColor(246, 246, 246))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (row, lane) in timeline.lanes.iter().enumerate() {
        let y = (rows - 1 - row) as f64;
        context
            .draw_series(lane.spans.iter().map(|span| {
                let start = span.start_ns as f64 / 1e6;
                let end = (span.end_ns as f64 / 1e6).max(start + end_ms * 0.002);
                Rectangle::new(
                    [(start, y - 0.35), (end, y + 0.35)],
                    colour(span.task as usize).filled(),
                )
            }))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A small SVG that says why a chart could not be drawn (so the page still shows the rest).
fn error_svg(title: &str, error: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart-error\" width=\"{WIDTH}\" height=\"60\"><text x=\"10\" y=\"30\">{}: chart not drawn: {}</text></svg>",
        super::html::escape(title),
        super::html::escape(error)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Lane, Series, TimelineSpan};

    fn series(label: &str, points: &[(f64, f64)]) -> Series {
        Series {
            label: label.to_owned(),
            points: points
                .iter()
                .map(|&(x, y)| Point {
                    x,
                    y,
                    low: Some(y * 0.9),
                    high: Some(y * 1.1),
                })
                .collect(),
        }
    }

    #[test]
    fn a_log_log_line_chart_draws_every_series() {
        let chart = Chart {
            title: "cost".into(),
            kind: ChartKind::Line,
            x_label: "n".into(),
            y_label: "µs".into(),
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            categories: vec![],
            series: vec![
                series("select", &[(10.0, 1.0), (1000.0, 100.0)]),
                series("epoll", &[(10.0, 0.5), (1000.0, 0.0)]),
            ],
        };
        let svg = super::chart(&chart);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("select") && svg.contains("epoll"));
        assert!(
            svg.contains("1 value(s)"),
            "the zero on a log axis is counted"
        );
        assert!(svg.matches("<polyline").count() >= 2);
    }

    #[test]
    fn a_bar_chart_labels_its_categories() {
        let chart = Chart {
            title: "switch".into(),
            kind: ChartKind::Bar,
            x_label: "".into(),
            y_label: "ns".into(),
            y_scale: Scale::Log,
            categories: vec!["thread".into(), "process".into()],
            series: vec![series("Rust", &[(0.0, 2000.0), (1.0, 5000.0)])],
            ..Chart::default()
        };
        let svg = super::chart(&chart);
        assert!(svg.contains("thread") && svg.contains("process"));
        assert!(svg.matches("<rect").count() >= 2);
    }

    #[test]
    fn a_gantt_chart_has_one_bar_per_span() {
        let span = |task, start_ns, end_ns| TimelineSpan {
            task,
            start_ns,
            end_ns,
            cpu: Some(0),
        };
        let timeline = Timeline {
            title: "two threads, one core".into(),
            lanes: vec![
                Lane {
                    label: "task A".into(),
                    spans: vec![span(0, 0, 2_000_000), span(0, 4_000_000, 6_000_000)],
                },
                Lane {
                    label: "task B".into(),
                    spans: vec![span(1, 2_000_000, 4_000_000)],
                },
            ],
        };
        let svg = gantt(&timeline);
        assert!(svg.contains("task A") && svg.contains("task B"));
        let filled =
            svg.matches("fill=\"#0072B2\"").count() + svg.matches("fill=\"#D55E00\"").count();
        assert!(filled >= 3, "{svg}");
    }

    #[test]
    fn numbers_are_compact() {
        assert_eq!(compact_number(1500.0), "1.5k");
        assert_eq!(compact_number(20e6), "20M");
        assert_eq!(compact_number(0.25), "0.25");
        assert_eq!(compact_number(3e-7), "3e-7");
        assert_eq!(compact_number(0.0), "0");
    }
}
